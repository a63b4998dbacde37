/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slipstream-admin groups: list, describe (committed offset, log end offset
 * and lag per partition with the member that owns it, as
 * kafka-consumer-groups.sh --describe prints them), reset-offsets (dry run
 * unless --execute) and delete.
 *
 * The group APIs go to the group's coordinator (FindCoordinator, key type
 * 0); log end offsets and the offsets a reset moves to come from ListOffsets
 * sent to each partition's leader (Metadata). Members' assignments are the
 * ConsumerProtocolAssignment bytes of DescribeGroups, decoded with the
 * generated codec; groups of other protocol types show no assignment.
 */
#include "adm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define V_METADATA 12
#define V_FIND_COORDINATOR 3 /* v4+ batches keys; one group at a time is enough here */
#define V_DESCRIBE_GROUPS 5
#define V_LIST_GROUPS 4
#define V_OFFSET_FETCH 7 /* v8+ batches groups */
#define V_OFFSET_COMMIT 8
#define V_LIST_OFFSETS 7
#define V_DELETE_GROUPS 2

#define MAX_BROKERS 64
#define MAX_ARGS 256

enum {
	OPT_GROUP = ADM_OPT_FIRST_LOCAL,
	OPT_STATE,
	OPT_TOPIC,
	OPT_ALL_TOPICS,
	OPT_TO_EARLIEST,
	OPT_TO_LATEST,
	OPT_TO_OFFSET,
	OPT_TO_DATETIME,
	OPT_EXECUTE,
	OPT_DRY_RUN,
};

/* One (topic, partition) line of describe or reset-offsets. */
struct row {
	const char *topic; /* kept by the bootstrap connection */
	int32_t partition;
	int64_t committed;  /* -1: no committed offset */
	int64_t leo;        /* log end offset; -1: unknown */
	int64_t target;     /* reset-offsets: the new offset */
	int16_t error;      /* a Kafka error for this partition, 0 if none */
	const char *member; /* "-" when unassigned */
	const char *host;
	const char *client;
};

struct rows {
	struct row *items;
	size_t n, cap;
};

/* Connections to brokers by node id, opened when first needed. */
struct pool {
	const struct adm_opts *o;
	struct adm_conn *boot;
	struct kp_metadata_response md; /* brokers and the topics asked for */
	struct adm_conn conns[MAX_BROKERS];
	int32_t ids[MAX_BROKERS];
	int n;
};

static int
bad_opt(const char *prog)
{
	fprintf(stderr, "Try '%s --help'.\n", prog);
	return ADM_EXIT_USAGE;
}

static int
no_version(const char *api)
{
	fprintf(stderr, "Error: the broker does not serve %s in a version this tool speaks\n", api);
	return ADM_EXIT_UNSUPPORTED;
}

static bool
str_is(const struct kp_str *s, const char *lit)
{
	size_t n = strlen(lit);

	return s->len >= 0 && (size_t)s->len == n && memcmp(s->ptr, lit, n) == 0;
}

static struct row *
rows_find_or_add(struct rows *rs, struct adm_conn *c, const struct kp_str *topic, int32_t part)
{
	struct row *r;

	for (size_t i = 0; i < rs->n; i++) {
		if (rs->items[i].partition == part && str_is(topic, rs->items[i].topic))
			return &rs->items[i];
	}
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 64;
		struct row *n = adm_alloc(c, cap * sizeof(*n));

		if (n == NULL)
			return NULL;
		if (rs->n > 0)
			memcpy(n, rs->items, rs->n * sizeof(*n));
		rs->items = n;
		rs->cap = cap;
	}
	r = &rs->items[rs->n++];
	memset(r, 0, sizeof(*r));
	r->topic = adm_strdup(c, topic);
	if (r->topic == NULL)
		return NULL;
	r->partition = part;
	r->committed = -1;
	r->leo = -1;
	r->target = -1;
	r->member = r->host = r->client = "-";
	return r;
}

static int
cmp_row(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	int c = strcmp(x->topic, y->topic);

	if (c != 0)
		return c;
	return (x->partition > y->partition) - (x->partition < y->partition);
}

/* Metadata of @topics (NULL/0: no topics, only brokers). 0 or an exit code. */
static int
pool_init(struct pool *p, const struct adm_opts *o, struct adm_conn *boot, char **topics, int n)
{
	struct kp_metadata_request req;
	int16_t v = adm_conn_version(boot, KP_API_METADATA, V_METADATA);

	/* p came from calloc; connections opened by an earlier call stay open. */
	p->o = o;
	p->boot = boot;
	if (v < 0)
		return no_version("Metadata");
	kp_metadata_request_init(&req);
	req.allow_auto_topic_creation = false;
	req.topics.count = n;
	if (n > 0) {
		req.topics.items = adm_alloc(boot, sizeof(*req.topics.items) * (size_t)n);
		if (req.topics.items == NULL)
			return ADM_EXIT_CONNECT;
		for (int i = 0; i < n; i++) {
			kp_metadata_request_metadata_request_topic_init(&req.topics.items[i]);
			req.topics.items[i].name = adm_str(topics[i]);
		}
	}
	if (n == 0 && v == 0) {
		/* v0 cannot ask for no topics; all topics it is. */
		req.topics.count = 0;
	}
	if (adm_call(boot, KP_API_METADATA, v, &req, &p->md) < 0)
		return ADM_EXIT_CONNECT;
	return ADM_EXIT_OK;
}

static void
pool_fini(struct pool *p)
{
	for (int i = 0; i < p->n; i++)
		adm_conn_close(&p->conns[i]);
	p->n = 0;
}

/* Connection to @addr ("host:port"): the bootstrap one if it is that broker. */
static struct adm_conn *
pool_get_addr(struct pool *p, int32_t id, const char *addr)
{
	struct adm_conn *c;

	if (strcmp(addr, p->boot->addr) == 0)
		return p->boot;
	for (int i = 0; i < p->n; i++) {
		if (strcmp(p->conns[i].addr, addr) == 0)
			return &p->conns[i];
	}
	if (p->n == MAX_BROKERS) {
		fprintf(stderr, "Error: more than %d brokers\n", MAX_BROKERS);
		return NULL;
	}
	c = &p->conns[p->n];
	if (adm_conn_open(c, addr, p->o->timeout_ms) < 0) {
		adm_conn_close(c);
		return NULL;
	}
	p->ids[p->n++] = id;
	return c;
}

static struct adm_conn *
pool_get(struct pool *p, int32_t node_id)
{
	for (int32_t i = 0; i < p->md.brokers.count; i++) {
		const struct kp_metadata_response_metadata_response_broker *b =
		        &p->md.brokers.items[i];
		char addr[300];

		if (b->node_id != node_id)
			continue;
		snprintf(addr, sizeof(addr), "%.*s:%d", b->host.len > 0 ? b->host.len : 0,
		         b->host.ptr, b->port);
		return pool_get_addr(p, node_id, addr);
	}
	fprintf(stderr, "Error: broker %d is not in the cluster metadata\n", node_id);
	return NULL;
}

/* The group's coordinator into *out. 0 or an exit code (the reason printed). */
static int
coordinator(struct pool *p, const char *group, struct adm_conn **out)
{
	struct kp_find_coordinator_request req;
	struct kp_find_coordinator_response resp;
	int16_t v = adm_conn_version(p->boot, KP_API_FIND_COORDINATOR, V_FIND_COORDINATOR);
	char addr[300], what[300];

	if (v < 0)
		return no_version("FindCoordinator");
	kp_find_coordinator_request_init(&req);
	req.key = adm_str(group);
	req.key_type = 0;
	if (adm_call(p->boot, KP_API_FIND_COORDINATOR, v, &req, &resp) < 0)
		return ADM_EXIT_CONNECT;
	snprintf(what, sizeof(what), "finding the coordinator of group '%s'", group);
	if (adm_report(what, resp.error_code, &resp.error_message) != 0)
		return ADM_EXIT_KAFKA;
	snprintf(addr, sizeof(addr), "%.*s:%d", resp.host.len > 0 ? resp.host.len : 0,
	         resp.host.ptr, resp.port);
	*out = pool_get_addr(p, resp.node_id, addr);
	return *out != NULL ? ADM_EXIT_OK : ADM_EXIT_CONNECT;
}

/* DescribeGroups of one group. 0 or an exit code (errors printed). */
static int
describe_group(struct adm_conn *coord, const char *group,
               struct kp_describe_groups_response_described_group **out)
{
	struct kp_describe_groups_request req;
	struct kp_describe_groups_response *resp;
	struct kp_str g = adm_str(group);
	int16_t v = adm_conn_version(coord, KP_API_DESCRIBE_GROUPS, V_DESCRIBE_GROUPS);
	char what[300];

	if (v < 0)
		return no_version("DescribeGroups");
	resp = adm_alloc(coord, sizeof(*resp));
	if (resp == NULL)
		return ADM_EXIT_CONNECT;
	kp_describe_groups_request_init(&req);
	req.groups.items = &g;
	req.groups.count = 1;
	if (adm_call(coord, KP_API_DESCRIBE_GROUPS, v, &req, resp) < 0)
		return ADM_EXIT_CONNECT;
	if (resp->groups.count != 1) {
		fprintf(stderr, "Error: DescribeGroups answered %d groups for 1\n",
		        resp->groups.count);
		return ADM_EXIT_CONNECT;
	}
	snprintf(what, sizeof(what), "describing group '%s'", group);
	if (adm_report(what, resp->groups.items[0].error_code, NULL) != 0)
		return ADM_EXIT_KAFKA;
	*out = &resp->groups.items[0];
	return ADM_EXIT_OK;
}

/* Committed offsets of every partition the group has one for, into @rs. */
static int
fetch_committed(struct adm_conn *coord, struct adm_conn *keep, const char *group, struct rows *rs)
{
	struct kp_offset_fetch_request req;
	struct kp_offset_fetch_response resp;
	int16_t v = adm_conn_version(coord, KP_API_OFFSET_FETCH, V_OFFSET_FETCH);
	char what[300];

	if (v < 0)
		return no_version("OffsetFetch");
	if (v < 2) {
		/* v0-1 cannot ask for "all topics". */
		fprintf(stderr, "Error: the broker's OffsetFetch is older than v2\n");
		return ADM_EXIT_UNSUPPORTED;
	}
	kp_offset_fetch_request_init(&req);
	req.group_id = adm_str(group);
	req.topics.count = -1;
	if (adm_call(coord, KP_API_OFFSET_FETCH, v, &req, &resp) < 0)
		return ADM_EXIT_CONNECT;
	snprintf(what, sizeof(what), "fetching the offsets of group '%s'", group);
	if (adm_report(what, resp.error_code, NULL) != 0)
		return ADM_EXIT_KAFKA;
	for (int32_t i = 0; i < resp.topics.count; i++) {
		const struct kp_offset_fetch_response_offset_fetch_response_topic *t =
		        &resp.topics.items[i];

		for (int32_t j = 0; j < t->partitions.count; j++) {
			const struct kp_offset_fetch_response_offset_fetch_response_partition *pp =
			        &t->partitions.items[j];
			struct row *r;

			if (pp->committed_offset < 0 && pp->error_code == 0)
				continue;
			r = rows_find_or_add(rs, keep, &t->name, pp->partition_index);
			if (r == NULL)
				return ADM_EXIT_CONNECT;
			r->committed = pp->committed_offset;
			r->error = pp->error_code;
		}
	}
	return ADM_EXIT_OK;
}

/* Add the partitions a member is assigned (ConsumerProtocolAssignment bytes). */
static int
add_assignment(struct rows *rs, struct adm_conn *keep,
               const struct kp_describe_groups_response_described_group_member *m)
{
	struct kp_consumer_protocol_assignment a;
	struct kp_reader r;
	struct kp_arena arena;
	size_t cap;
	void *buf;
	int16_t ver;

	if (m->member_assignment.len < 2)
		return 0;
	kp_reader_init(&r, m->member_assignment.ptr, (size_t)m->member_assignment.len);
	ver = kp_rd_int16(&r);
	if (ver < 0)
		return 0;
	if (ver > 3)
		ver = 3; /* newer versions only add fields at the end */
	cap = (size_t)m->member_assignment.len * 8 + 4096;
	buf = adm_alloc(keep, cap);
	if (buf == NULL)
		return -ENOMEM;
	kp_arena_init(&arena, buf, cap);
	if (kp_consumer_protocol_assignment_decode(&a, ver, &r, &arena) < 0)
		return 0; /* not a consumer assignment: show the member without partitions */
	for (int32_t i = 0; i < a.assigned_partitions.count; i++) {
		const struct kp_consumer_protocol_assignment_topic_partition *tp =
		        &a.assigned_partitions.items[i];

		for (int32_t j = 0; j < tp->partitions.count; j++) {
			struct row *row =
			        rows_find_or_add(rs, keep, &tp->topic, tp->partitions.items[j]);

			if (row == NULL)
				return -ENOMEM;
			row->member = adm_strdup(keep, &m->member_id);
			row->host = adm_strdup(keep, &m->client_host);
			row->client = adm_strdup(keep, &m->client_id);
		}
	}
	return 0;
}

/*
 * ListOffsets at @timestamp (-1 latest, -2 earliest, else ms) for every row,
 * each partition asked of its leader; the result goes to leo (latest) or
 * target. Rows whose topic or partition is unknown get error set.
 */
static int
list_offsets(struct pool *p, struct rows *rs, int64_t timestamp, bool into_leo)
{
	for (int32_t b = 0; b < p->md.brokers.count; b++) {
		int32_t node = p->md.brokers.items[b].node_id;
		struct kp_list_offsets_request req;
		struct kp_list_offsets_response resp;
		struct kp_list_offsets_request_list_offsets_topic *topics;
		struct kp_list_offsets_request_list_offsets_partition *parts;
		struct adm_conn *c = NULL;
		int32_t nt = 0, np = 0;
		int16_t v;

		topics = adm_alloc(p->boot, sizeof(*topics) * (rs->n + 1));
		parts = adm_alloc(p->boot, sizeof(*parts) * (rs->n + 1));
		if (topics == NULL || parts == NULL)
			return ADM_EXIT_CONNECT;
		/* Rows are sorted by topic: one topic entry per run of a topic's rows. */
		for (size_t i = 0; i < rs->n; i++) {
			struct row *r = &rs->items[i];
			int32_t leader = -2;

			for (int32_t t = 0; t < p->md.topics.count && leader == -2; t++) {
				const struct kp_metadata_response_metadata_response_topic *mt =
				        &p->md.topics.items[t];

				if (!str_is(&mt->name, r->topic))
					continue;
				for (int32_t k = 0; k < mt->partitions.count; k++) {
					if (mt->partitions.items[k].partition_index == r->partition)
						leader = mt->partitions.items[k].leader_id;
				}
				if (leader == -2 && r->error == 0)
					r->error = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
			}
			if (leader == -2 && r->error == 0)
				r->error = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
			if (leader != node)
				continue;
			if (nt == 0 || strcmp(topics[nt - 1].name.ptr, r->topic) != 0) {
				kp_list_offsets_request_list_offsets_topic_init(&topics[nt]);
				topics[nt].name = adm_str(r->topic);
				topics[nt].partitions.items = &parts[np];
				topics[nt].partitions.count = 0;
				nt++;
			}
			kp_list_offsets_request_list_offsets_partition_init(&parts[np]);
			parts[np].partition_index = r->partition;
			parts[np].current_leader_epoch = -1;
			parts[np].timestamp = timestamp;
			parts[np].max_num_offsets = 1;
			topics[nt - 1].partitions.count++;
			np++;
		}
		if (nt == 0)
			continue;
		c = pool_get(p, node);
		if (c == NULL)
			return ADM_EXIT_CONNECT;
		v = adm_conn_version(c, KP_API_LIST_OFFSETS, V_LIST_OFFSETS);
		if (v < 0)
			return no_version("ListOffsets");
		kp_list_offsets_request_init(&req);
		req.replica_id = -1;
		req.topics.items = topics;
		req.topics.count = nt;
		if (adm_call(c, KP_API_LIST_OFFSETS, v, &req, &resp) < 0)
			return ADM_EXIT_CONNECT;
		for (int32_t t = 0; t < resp.topics.count; t++) {
			const struct kp_list_offsets_response_list_offsets_topic_response *rt =
			        &resp.topics.items[t];

			for (int32_t k = 0; k < rt->partitions.count; k++) {
				const struct
				        kp_list_offsets_response_list_offsets_partition_response
				                *rp = &rt->partitions.items[k];
				int64_t off = rp->offset;

				if (v == 0)
					off = rp->old_style_offsets.count > 0
					              ? rp->old_style_offsets.items[0]
					              : -1;
				for (size_t i = 0; i < rs->n; i++) {
					struct row *r = &rs->items[i];

					if (r->partition != rp->partition_index ||
					    !str_is(&rt->name, r->topic))
						continue;
					if (rp->error_code != 0)
						r->error = rp->error_code;
					else if (into_leo)
						r->leo = off;
					else
						r->target = off;
				}
			}
		}
	}
	return ADM_EXIT_OK;
}

static void
print_cell_i64(int w, int64_t v, bool last)
{
	if (v < 0)
		printf("%-*s%s", w, "-", last ? "" : " ");
	else
		printf("%-*" PRId64 "%s", w, v, last ? "" : " ");
}

static int
width(int w, const char *s)
{
	int n = (int)strlen(s);

	return n > w ? n : w;
}

int
adm_groups_list(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"state", no_argument, NULL, OPT_STATE},
	        ADM_COMMON_LONGOPTS,
	        {NULL, 0, NULL, 0},
	};
	struct adm_opts o = {0};
	struct adm_conn c;
	struct pool *p;
	bool state = false;
	int ch, rc, kerr = 0;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		rc = adm_common_opt(&o, ch, optarg);
		if (rc < 0)
			return ADM_EXIT_USAGE;
		if (rc > 0)
			continue;
		if (ch == OPT_STATE) {
			state = true;
		} else if (ch == ADM_OPT_HELP) {
			printf("usage: %s [--state] [options]\n\n"
			       "List the consumer groups of every broker in the cluster.\n\n"
			       "  --state                    also print each group's "
			       "state\n" ADM_COMMON_HELP,
			       argv[0]);
			return ADM_EXIT_OK;
		} else {
			return bad_opt(argv[0]);
		}
	}
	if (optind < argc)
		return bad_opt(argv[0]);
	rc = adm_connect(&o, &c);
	if (rc != 0)
		return rc;
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		adm_conn_close(&c);
		return ADM_EXIT_CONNECT;
	}
	rc = pool_init(p, &o, &c, NULL, 0);
	if (rc != 0)
		goto out;
	if (state)
		printf("%-40s %s\n", "GROUP", "STATE");
	for (int32_t b = 0; b < p->md.brokers.count; b++) {
		struct kp_list_groups_request req;
		struct kp_list_groups_response resp;
		struct adm_conn *bc = pool_get(p, p->md.brokers.items[b].node_id);
		int16_t v;

		if (bc == NULL) {
			rc = ADM_EXIT_CONNECT;
			goto out;
		}
		v = adm_conn_version(bc, KP_API_LIST_GROUPS, V_LIST_GROUPS);
		if (v < 0) {
			rc = no_version("ListGroups");
			goto out;
		}
		kp_list_groups_request_init(&req);
		if (adm_call(bc, KP_API_LIST_GROUPS, v, &req, &resp) < 0) {
			rc = ADM_EXIT_CONNECT;
			goto out;
		}
		if (adm_report("listing groups", resp.error_code, NULL) != 0) {
			kerr = ADM_EXIT_KAFKA;
			continue;
		}
		for (int32_t i = 0; i < resp.groups.count; i++) {
			const struct kp_list_groups_response_listed_group *g =
			        &resp.groups.items[i];

			if (state)
				printf("%-40.*s %.*s\n", g->group_id.len, g->group_id.ptr,
				       v >= 4 && g->group_state.len > 0 ? g->group_state.len : 1,
				       v >= 4 && g->group_state.len > 0 ? g->group_state.ptr : "-");
			else
				printf("%.*s\n", g->group_id.len, g->group_id.ptr);
		}
	}
	rc = kerr;
out:
	pool_fini(p);
	free(p);
	adm_conn_close(&c);
	return rc;
}

/* The distinct topic names of @rs, for a Metadata request (kept by @c). */
static char **
row_topics(struct adm_conn *c, const struct rows *rs, int *n)
{
	char **t = adm_alloc(c, sizeof(char *) * (rs->n + 1));

	*n = 0;
	if (t == NULL)
		return NULL;
	for (size_t i = 0; i < rs->n; i++) {
		if (*n == 0 || strcmp(t[*n - 1], rs->items[i].topic) != 0)
			t[(*n)++] = (char *)(uintptr_t)rs->items[i].topic;
	}
	return t;
}

int
adm_groups_describe(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"group", required_argument, NULL, OPT_GROUP},
	        ADM_COMMON_LONGOPTS,
	        {NULL, 0, NULL, 0},
	};
	struct kp_describe_groups_response_described_group *g = NULL;
	struct adm_opts o = {0};
	struct rows rs = {0};
	struct adm_conn c, *coord;
	struct pool *p;
	const char *group = NULL;
	char **topics;
	int ch, rc, nt, wg, wt, wm, wh, wc;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		rc = adm_common_opt(&o, ch, optarg);
		if (rc < 0)
			return ADM_EXIT_USAGE;
		if (rc > 0)
			continue;
		if (ch == OPT_GROUP) {
			group = optarg;
		} else if (ch == ADM_OPT_HELP) {
			printf("usage: %s --group GROUP [options]\n\n"
			       "Per partition the group has an offset for or is assigned: the\n"
			       "committed offset, the log end offset, the lag between them and "
			       "the\n"
			       "member that owns it (consumer id, host, client id); '-' where "
			       "there\n"
			       "is none.\n\n"
			       "  --group GROUP              the consumer group "
			       "(required)\n" ADM_COMMON_HELP,
			       argv[0]);
			return ADM_EXIT_OK;
		} else {
			return bad_opt(argv[0]);
		}
	}
	if (group == NULL || optind < argc) {
		fprintf(stderr, "Error: --group is required\n");
		return bad_opt(argv[0]);
	}
	rc = adm_connect(&o, &c);
	if (rc != 0)
		return rc;
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		adm_conn_close(&c);
		return ADM_EXIT_CONNECT;
	}
	rc = pool_init(p, &o, &c, NULL, 0);
	if (rc != 0)
		goto out;
	rc = coordinator(p, group, &coord);
	if (rc != 0)
		goto out;
	rc = describe_group(coord, group, &g);
	if (rc != 0)
		goto out;
	rc = fetch_committed(coord, &c, group, &rs);
	if (rc != 0)
		goto out;
	if (str_is(&g->protocol_type, "consumer") || g->protocol_type.len <= 0) {
		for (int32_t i = 0; i < g->members.count; i++) {
			if (add_assignment(&rs, &c, &g->members.items[i]) < 0) {
				rc = ADM_EXIT_CONNECT;
				goto out;
			}
		}
	}
	if (str_is(&g->group_state, "Dead") && rs.n == 0) {
		fprintf(stderr, "Error: Consumer group '%s' does not exist.\n", group);
		rc = ADM_EXIT_KAFKA;
		goto out;
	}
	if (g->members.count == 0)
		printf("\nConsumer group '%s' has no active members.\n\n", group);
	if (rs.n > 0)
		qsort(rs.items, rs.n, sizeof(rs.items[0]), cmp_row);
	topics = row_topics(&c, &rs, &nt);
	if (topics == NULL) {
		rc = ADM_EXIT_CONNECT;
		goto out;
	}
	if (nt > 0) {
		/* Partition leaders of the group's topics, then their log end offsets. */
		rc = pool_init(p, &o, &c, topics, nt);
		if (rc == 0)
			rc = list_offsets(p, &rs, -1, true);
		if (rc != 0)
			goto out;
	}
	wg = width(5, group);
	wt = 5, wm = 11, wh = 4, wc = 9;
	for (size_t i = 0; i < rs.n; i++) {
		wt = width(wt, rs.items[i].topic);
		wm = width(wm, rs.items[i].member);
		wh = width(wh, rs.items[i].host);
		wc = width(wc, rs.items[i].client);
	}
	printf("%-*s %-*s %-9s %-15s %-15s %-15s %-*s %-*s %s\n", wg, "GROUP", wt, "TOPIC",
	       "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", wm, "CONSUMER-ID", wh,
	       "HOST", "CLIENT-ID");
	for (size_t i = 0; i < rs.n; i++) {
		const struct row *r = &rs.items[i];
		int64_t lag = r->committed >= 0 && r->leo >= 0 ? r->leo - r->committed : -1;

		if (lag < 0 && r->committed >= 0 && r->leo >= 0)
			lag = 0;
		printf("%-*s %-*s %-9d ", wg, group, wt, r->topic, r->partition);
		print_cell_i64(15, r->committed, false);
		print_cell_i64(15, r->leo, false);
		print_cell_i64(15, lag, false);
		printf("%-*s %-*s %s", wm, r->member, wh, r->host, r->client);
		if (r->error != 0)
			printf(" (%s)", kp_error_name(r->error));
		printf("\n");
	}
	rc = ADM_EXIT_OK;
out:
	pool_fini(p);
	free(p);
	adm_conn_close(&c);
	return rc;
}

/*
 * "YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM|-HH:MM]" to ms since the epoch; no zone
 * means UTC. @return 0 or -EINVAL.
 */
static int
parse_datetime(const char *s, int64_t *ms_out)
{
	struct tm tm;
	const char *p;
	int64_t ms = 0, off = 0;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (p == NULL)
		return -EINVAL;
	if (*p == '.') {
		int digits = 0;

		for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
			if (digits < 3)
				ms = ms * 10 + (*p - '0');
		}
		if (digits == 0)
			return -EINVAL;
		for (; digits < 3; digits++)
			ms *= 10;
	}
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int hh, mm, n = 0;

		if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) != 2 || n != 5 || hh > 23 || mm > 59)
			return -EINVAL;
		off = (int64_t)(hh * 60 + mm) * 60000 * (*p == '+' ? 1 : -1);
		p += 6;
	}
	if (*p != '\0')
		return -EINVAL;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*ms_out = (int64_t)t * 1000 + ms - off;
	return 0;
}

/* "topic" (every partition) or "topic:0,1,2" into rows. */
static int
add_topic_arg(struct rows *rs, struct adm_conn *c, const char *arg, struct pool *p)
{
	const char *colon = strchr(arg, ':');
	struct kp_str name = {
	        .ptr = arg, .len = (int32_t)(colon != NULL ? (size_t)(colon - arg) : strlen(arg))};

	if (name.len == 0)
		return -EINVAL;
	if (colon != NULL) {
		char *list = adm_strdup(
		        c, &(struct kp_str){.ptr = colon + 1, .len = (int32_t)strlen(colon + 1)});
		char *save = NULL;

		if (list == NULL)
			return -ENOMEM;
		for (char *tok = strtok_r(list, ",", &save); tok != NULL;
		     tok = strtok_r(NULL, ",", &save)) {
			int64_t part;

			if (adm_parse_i64(tok, &part) < 0 || part < 0 || part > INT32_MAX)
				return -EINVAL;
			if (rows_find_or_add(rs, c, &name, (int32_t)part) == NULL)
				return -ENOMEM;
		}
		return 0;
	}
	for (int32_t t = 0; t < p->md.topics.count; t++) {
		const struct kp_metadata_response_metadata_response_topic *mt =
		        &p->md.topics.items[t];

		if (mt->name.len != name.len || memcmp(mt->name.ptr, name.ptr, (size_t)name.len))
			continue;
		if (mt->error_code != 0) {
			char what[300];

			snprintf(what, sizeof(what), "topic '%.*s'", name.len, name.ptr);
			adm_report(what, mt->error_code, NULL);
			return -ENOENT;
		}
		for (int32_t k = 0; k < mt->partitions.count; k++) {
			if (rows_find_or_add(rs, c, &name,
			                     mt->partitions.items[k].partition_index) == NULL)
				return -ENOMEM;
		}
		return 0;
	}
	fprintf(stderr, "Error: topic '%.*s': %s\n", name.len, name.ptr,
	        kp_error_name(KP_ERR_UNKNOWN_TOPIC_OR_PARTITION));
	return -ENOENT;
}

enum reset_to { RESET_NONE, RESET_EARLIEST, RESET_LATEST, RESET_OFFSET, RESET_DATETIME };

/* OffsetCommit of every row's target as an admin (generation -1, no member). */
static int
commit_targets(struct adm_conn *coord, const char *group, struct rows *rs)
{
	struct kp_offset_commit_request req;
	struct kp_offset_commit_response resp;
	struct kp_offset_commit_request_offset_commit_request_topic *topics;
	struct kp_offset_commit_request_offset_commit_request_partition *parts;
	int16_t v = adm_conn_version(coord, KP_API_OFFSET_COMMIT, V_OFFSET_COMMIT);
	int32_t nt = 0;
	int kerr = 0;

	if (v < 0)
		return no_version("OffsetCommit");
	topics = adm_alloc(coord, sizeof(*topics) * (rs->n + 1));
	parts = adm_alloc(coord, sizeof(*parts) * (rs->n + 1));
	if (topics == NULL || parts == NULL)
		return ADM_EXIT_CONNECT;
	for (size_t i = 0; i < rs->n; i++) {
		const struct row *r = &rs->items[i];

		if (nt == 0 || strcmp(topics[nt - 1].name.ptr, r->topic) != 0) {
			kp_offset_commit_request_offset_commit_request_topic_init(&topics[nt]);
			topics[nt].name = adm_str(r->topic);
			topics[nt].partitions.items = &parts[i];
			topics[nt].partitions.count = 0;
			nt++;
		}
		kp_offset_commit_request_offset_commit_request_partition_init(&parts[i]);
		parts[i].partition_index = r->partition;
		parts[i].committed_offset = r->target;
		parts[i].committed_leader_epoch = -1;
		parts[i].commit_timestamp = -1;
		parts[i].committed_metadata = adm_str("");
		topics[nt - 1].partitions.count++;
	}
	kp_offset_commit_request_init(&req);
	req.group_id = adm_str(group);
	req.generation_id_or_member_epoch = -1;
	req.member_id = adm_str("");
	req.group_instance_id = adm_str(NULL);
	req.retention_time_ms = -1;
	req.topics.items = topics;
	req.topics.count = nt;
	if (adm_call(coord, KP_API_OFFSET_COMMIT, v, &req, &resp) < 0)
		return ADM_EXIT_CONNECT;
	for (int32_t t = 0; t < resp.topics.count; t++) {
		for (int32_t k = 0; k < resp.topics.items[t].partitions.count; k++) {
			const struct kp_offset_commit_response_offset_commit_response_partition
			        *pp = &resp.topics.items[t].partitions.items[k];
			char what[400];

			snprintf(what, sizeof(what), "committing %.*s-%d",
			         resp.topics.items[t].name.len, resp.topics.items[t].name.ptr,
			         pp->partition_index);
			kerr |= adm_report(what, pp->error_code, NULL);
		}
	}
	return kerr;
}

int
adm_groups_reset_offsets(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"group", required_argument, NULL, OPT_GROUP},
	        {"topic", required_argument, NULL, OPT_TOPIC},
	        {"all-topics", no_argument, NULL, OPT_ALL_TOPICS},
	        {"to-earliest", no_argument, NULL, OPT_TO_EARLIEST},
	        {"to-latest", no_argument, NULL, OPT_TO_LATEST},
	        {"to-offset", required_argument, NULL, OPT_TO_OFFSET},
	        {"to-datetime", required_argument, NULL, OPT_TO_DATETIME},
	        {"execute", no_argument, NULL, OPT_EXECUTE},
	        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
	        ADM_COMMON_LONGOPTS,
	        {NULL, 0, NULL, 0},
	};
	struct kp_describe_groups_response_described_group *g = NULL;
	struct adm_opts o = {0};
	struct rows rs = {0};
	struct adm_conn c, *coord;
	struct pool *p;
	const char *group = NULL;
	const char *topic_args[MAX_ARGS];
	enum reset_to to = RESET_NONE;
	int64_t to_value = 0;
	bool all_topics = false, execute = false;
	int ch, rc, n_topic_args = 0, nt, wg, wt;
	char **topics;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		enum reset_to want = RESET_NONE;

		rc = adm_common_opt(&o, ch, optarg);
		if (rc < 0)
			return ADM_EXIT_USAGE;
		if (rc > 0)
			continue;
		switch (ch) {
		case OPT_GROUP:
			group = optarg;
			break;
		case OPT_TOPIC:
			if (n_topic_args == MAX_ARGS)
				return bad_opt(argv[0]);
			topic_args[n_topic_args++] = optarg;
			break;
		case OPT_ALL_TOPICS:
			all_topics = true;
			break;
		case OPT_TO_EARLIEST:
			want = RESET_EARLIEST;
			break;
		case OPT_TO_LATEST:
			want = RESET_LATEST;
			break;
		case OPT_TO_OFFSET:
			want = RESET_OFFSET;
			if (adm_parse_i64(optarg, &to_value) < 0 || to_value < 0) {
				fprintf(stderr, "Error: --to-offset takes an offset >= 0\n");
				return ADM_EXIT_USAGE;
			}
			break;
		case OPT_TO_DATETIME:
			want = RESET_DATETIME;
			if (parse_datetime(optarg, &to_value) < 0) {
				fprintf(stderr,
				        "Error: --to-datetime takes YYYY-MM-DDTHH:MM:SS[.mmm]"
				        "[Z|+HH:MM|-HH:MM], not '%s'\n",
				        optarg);
				return ADM_EXIT_USAGE;
			}
			break;
		case OPT_EXECUTE:
			execute = true;
			break;
		case OPT_DRY_RUN:
			execute = false;
			break;
		case ADM_OPT_HELP:
			printf("usage: %s --group GROUP (--topic T[:P,P]... | --all-topics)\n"
			       "       (--to-earliest | --to-latest | --to-offset N | "
			       "--to-datetime D)\n"
			       "       [--execute] [options]\n\n"
			       "Show (dry run, the default) or commit (--execute) new offsets for "
			       "a\n"
			       "group. The group must have no active members. --to-offset is held "
			       "to\n"
			       "each partition's earliest..latest; --to-datetime takes the first "
			       "offset\n"
			       "with a timestamp at or after D (the log end when there is "
			       "none).\n\n"
			       "  --group GROUP              the consumer group (required)\n"
			       "  --topic T | T:P,P          a topic (all partitions) or some "
			       "partitions\n"
			       "  --all-topics               every topic the group has offsets "
			       "for\n"
			       "  --to-earliest              the log start\n"
			       "  --to-latest                the log end\n"
			       "  --to-offset N              offset N\n"
			       "  --to-datetime D            YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM]; "
			       "no\n"
			       "                             zone means UTC\n"
			       "  --execute                  commit the offsets (default: dry "
			       "run)\n"
			       "  --dry-run                  only show them\n" ADM_COMMON_HELP,
			       argv[0]);
			return ADM_EXIT_OK;
		default:
			return bad_opt(argv[0]);
		}
		if (want != RESET_NONE) {
			if (to != RESET_NONE) {
				fprintf(stderr, "Error: give one of --to-earliest, --to-latest, "
				                "--to-offset, --to-datetime\n");
				return ADM_EXIT_USAGE;
			}
			to = want;
		}
	}
	if (group == NULL || to == RESET_NONE || (n_topic_args == 0) == !all_topics ||
	    optind < argc) {
		fprintf(stderr, "Error: --group, one --to-* option and either --topic or "
		                "--all-topics are required\n");
		return bad_opt(argv[0]);
	}
	rc = adm_connect(&o, &c);
	if (rc != 0)
		return rc;
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		adm_conn_close(&c);
		return ADM_EXIT_CONNECT;
	}
	rc = pool_init(p, &o, &c, (char **)(uintptr_t)topic_args, all_topics ? 0 : n_topic_args);
	if (rc != 0)
		goto out;
	/* --topic T:P names the topic as "T:P"; ask Metadata for the bare names. */
	if (!all_topics) {
		char **bare = adm_alloc(&c, sizeof(char *) * (size_t)n_topic_args);

		if (bare == NULL) {
			rc = ADM_EXIT_CONNECT;
			goto out;
		}
		for (int i = 0; i < n_topic_args; i++) {
			const char *colon = strchr(topic_args[i], ':');
			struct kp_str s = {.ptr = topic_args[i],
			                   .len = (int32_t)(colon ? (size_t)(colon - topic_args[i])
			                                          : strlen(topic_args[i]))};

			bare[i] = adm_strdup(&c, &s);
		}
		rc = pool_init(p, &o, &c, bare, n_topic_args);
		if (rc != 0)
			goto out;
	}
	rc = coordinator(p, group, &coord);
	if (rc != 0)
		goto out;
	rc = describe_group(coord, group, &g);
	if (rc != 0)
		goto out;
	if (!str_is(&g->group_state, "Empty") && !str_is(&g->group_state, "Dead")) {
		fprintf(stderr,
		        "Error: Assignments can only be reset if the group '%s' is "
		        "inactive, but the current state is %.*s.\n",
		        group, g->group_state.len > 0 ? g->group_state.len : 0, g->group_state.ptr);
		rc = ADM_EXIT_KAFKA;
		goto out;
	}
	if (all_topics) {
		rc = fetch_committed(coord, &c, group, &rs);
		if (rc != 0)
			goto out;
		if (rs.n > 0)
			qsort(rs.items, rs.n, sizeof(rs.items[0]), cmp_row);
		topics = row_topics(&c, &rs, &nt);
		if (topics == NULL) {
			rc = ADM_EXIT_CONNECT;
			goto out;
		}
		if (nt > 0) {
			rc = pool_init(p, &o, &c, topics, nt);
			if (rc != 0)
				goto out;
		}
	} else {
		for (int i = 0; i < n_topic_args; i++) {
			int e = add_topic_arg(&rs, &c, topic_args[i], p);

			if (e == -EINVAL) {
				fprintf(stderr, "Error: --topic '%s' is not TOPIC or TOPIC:P,P\n",
				        topic_args[i]);
				rc = ADM_EXIT_USAGE;
				goto out;
			}
			if (e < 0) {
				rc = e == -ENOMEM ? ADM_EXIT_CONNECT : ADM_EXIT_KAFKA;
				goto out;
			}
		}
		if (rs.n > 0)
			qsort(rs.items, rs.n, sizeof(rs.items[0]), cmp_row);
	}
	if (rs.n == 0) {
		fprintf(stderr, "Error: no partitions to reset for group '%s'\n", group);
		rc = ADM_EXIT_KAFKA;
		goto out;
	}
	switch (to) {
	case RESET_EARLIEST:
		rc = list_offsets(p, &rs, -2, false);
		break;
	case RESET_LATEST:
		rc = list_offsets(p, &rs, -1, false);
		break;
	case RESET_DATETIME:
		rc = list_offsets(p, &rs, -1, true);
		if (rc == 0)
			rc = list_offsets(p, &rs, to_value, false);
		for (size_t i = 0; rc == 0 && i < rs.n; i++) {
			if (rs.items[i].target < 0)
				rs.items[i].target = rs.items[i].leo;
		}
		break;
	case RESET_OFFSET:
		rc = list_offsets(p, &rs, -1, true);
		if (rc == 0)
			rc = list_offsets(p, &rs, -2, false);
		for (size_t i = 0; rc == 0 && i < rs.n; i++) {
			struct row *r = &rs.items[i];
			int64_t lo_ = r->target;

			r->target = to_value;
			if (r->target < lo_)
				r->target = lo_;
			if (r->leo >= 0 && r->target > r->leo)
				r->target = r->leo;
		}
		break;
	default:
		break;
	}
	if (rc != 0)
		goto out;
	for (size_t i = 0; i < rs.n; i++) {
		if (rs.items[i].error != 0 || rs.items[i].target < 0) {
			char what[400];

			snprintf(what, sizeof(what), "offsets of %s-%d", rs.items[i].topic,
			         rs.items[i].partition);
			adm_report(what,
			           rs.items[i].error != 0 ? rs.items[i].error
			                                  : KP_ERR_UNKNOWN_SERVER_ERROR,
			           NULL);
			rc = ADM_EXIT_KAFKA;
		}
	}
	if (rc != 0)
		goto out;
	wg = width(5, group);
	wt = 5;
	for (size_t i = 0; i < rs.n; i++)
		wt = width(wt, rs.items[i].topic);
	printf("%-*s %-*s %-9s %s\n", wg, "GROUP", wt, "TOPIC", "PARTITION", "NEW-OFFSET");
	for (size_t i = 0; i < rs.n; i++)
		printf("%-*s %-*s %-9d %" PRId64 "\n", wg, group, wt, rs.items[i].topic,
		       rs.items[i].partition, rs.items[i].target);
	if (execute)
		rc = commit_targets(coord, group, &rs);
	else
		fprintf(stderr, "Dry run: nothing committed; add --execute to commit these "
		                "offsets.\n");
out:
	pool_fini(p);
	free(p);
	adm_conn_close(&c);
	return rc;
}

int
adm_groups_delete(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"group", required_argument, NULL, OPT_GROUP},
	        ADM_COMMON_LONGOPTS,
	        {NULL, 0, NULL, 0},
	};
	struct adm_opts o = {0};
	struct adm_conn c;
	struct pool *p;
	const char *groups[MAX_ARGS];
	int ch, rc, n = 0, kerr = 0;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		rc = adm_common_opt(&o, ch, optarg);
		if (rc < 0)
			return ADM_EXIT_USAGE;
		if (rc > 0)
			continue;
		if (ch == OPT_GROUP && n < MAX_ARGS) {
			groups[n++] = optarg;
		} else if (ch == ADM_OPT_HELP) {
			printf("usage: %s --group GROUP [--group GROUP]... [options]\n\n"
			       "Delete consumer groups and their committed offsets. A group with\n"
			       "active members is not deleted (NON_EMPTY_GROUP).\n\n"
			       "  --group GROUP              a group to delete "
			       "(repeatable)\n" ADM_COMMON_HELP,
			       argv[0]);
			return ADM_EXIT_OK;
		} else {
			return bad_opt(argv[0]);
		}
	}
	if (n == 0 || optind < argc) {
		fprintf(stderr, "Error: --group is required\n");
		return bad_opt(argv[0]);
	}
	rc = adm_connect(&o, &c);
	if (rc != 0)
		return rc;
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		adm_conn_close(&c);
		return ADM_EXIT_CONNECT;
	}
	rc = pool_init(p, &o, &c, NULL, 0);
	if (rc != 0)
		goto out;
	for (int i = 0; i < n; i++) {
		struct kp_delete_groups_request req;
		struct kp_delete_groups_response resp;
		struct kp_str gs = adm_str(groups[i]);
		struct adm_conn *coord = NULL;
		int16_t v;
		int crc = coordinator(p, groups[i], &coord);

		if (crc == ADM_EXIT_KAFKA) {
			kerr = crc;
			continue;
		}
		if (crc != 0) {
			rc = crc;
			goto out;
		}
		v = adm_conn_version(coord, KP_API_DELETE_GROUPS, V_DELETE_GROUPS);
		if (v < 0) {
			rc = no_version("DeleteGroups");
			goto out;
		}
		kp_delete_groups_request_init(&req);
		req.groups_names.items = &gs;
		req.groups_names.count = 1;
		if (adm_call(coord, KP_API_DELETE_GROUPS, v, &req, &resp) < 0) {
			rc = ADM_EXIT_CONNECT;
			goto out;
		}
		for (int32_t k = 0; k < resp.results.count; k++) {
			char what[300];

			snprintf(what, sizeof(what), "deleting group '%s'", groups[i]);
			if (resp.results.items[k].error_code != 0)
				kerr |= adm_report(what, resp.results.items[k].error_code, NULL);
			else
				printf("Deleted consumer group '%s'.\n", groups[i]);
		}
	}
	rc = kerr;
out:
	pool_fini(p);
	free(p);
	adm_conn_close(&c);
	return rc;
}
