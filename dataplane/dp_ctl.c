/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_ctl: forwarding the group APIs to the control process (see dp_ctl.h).
 *
 * One unix-socket connection, owned by the broker's lcore, driven by a poller
 * every millisecond (non-blocking connect, send, recv: control-plane
 * traffic, so a few syscalls per millisecond on that lcore). Forwarded
 * requests sit in a table of DP_CTL_MAX_INFLIGHT slots; an Envelope's
 * correlation id is (sequence << 10 | slot), so a response finds its slot
 * at once and a stale one (after a reconnect) is recognised. A slot keeps
 * a copy of the client's request, so that it can still be answered with
 * COORDINATOR_NOT_AVAILABLE in the request's own shape when the control
 * process goes away before answering.
 *
 * Cluster metadata (control.metadata=controller; the default, local, keeps the
 * broker's topic table its own, for a dataplane run without the control
 * process, as the tests of the dataplane alone and the benchmarks do): the topic
 * mutations (CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs,
 * IncrementalAlterConfigs) are forwarded the same way and answered by the
 * control process after its metadata log committed them; while it is away
 * they answer NOT_CONTROLLER. The control process pushes metadata batches
 * as EnvelopeResponses with correlation id -1 (never one of ours): they go
 * to the hook dp_meta registered (dataplane/broker/dp_meta.h) before any
 * later answer is relayed, so a client that hears "created" finds the topic.
 */
#include "dp_ctl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_lcore.h>

#include "dp_log.h"
#include "dp_reactor.h"
#include "kp_api.h"
#include "kp_error.h"
#include "net_kernel.h"

#define K_OFFSET_COMMIT 8
#define K_OFFSET_FETCH 9
#define K_FIND_COORDINATOR 10
#define K_JOIN_GROUP 11
#define K_HEARTBEAT 12
#define K_LEAVE_GROUP 13
#define K_SYNC_GROUP 14
#define K_DESCRIBE_GROUPS 15
#define K_LIST_GROUPS 16
#define K_DELETE_GROUPS 42
#define K_OFFSET_DELETE 47
#define K_ENVELOPE 58
#define K_CREATE_TOPICS 19
#define K_DELETE_TOPICS 20
#define K_ALTER_CONFIGS 33
#define K_CREATE_PARTITIONS 37
#define K_INCREMENTAL_ALTER_CONFIGS 44
#define META_PUSH_CORR (-1)

#define DP_CTL_SLOT_BITS 10
#define DP_CTL_MAX_OUT (16u << 20)
#define DP_CTL_MAX_FRAME (64u << 20)

_Static_assert(DP_CTL_MAX_INFLIGHT == 1 << DP_CTL_SLOT_BITS, "slot bits");

/* What the control process serves (versions from the schemas it implements). */
static const struct kp_api_versions_response_api_version ctl_apis[] = {
	{.api_key = K_OFFSET_COMMIT, .min_version = 0, .max_version = 9},
	{.api_key = K_OFFSET_FETCH, .min_version = 0, .max_version = 9},
	{.api_key = K_FIND_COORDINATOR, .min_version = 0, .max_version = 6},
	{.api_key = K_JOIN_GROUP, .min_version = 0, .max_version = 9},
	{.api_key = K_HEARTBEAT, .min_version = 0, .max_version = 4},
	{.api_key = K_LEAVE_GROUP, .min_version = 0, .max_version = 5},
	{.api_key = K_SYNC_GROUP, .min_version = 0, .max_version = 5},
	{.api_key = K_DESCRIBE_GROUPS, .min_version = 0, .max_version = 5},
	{.api_key = K_LIST_GROUPS, .min_version = 0, .max_version = 5},
	{.api_key = K_DELETE_GROUPS, .min_version = 0, .max_version = 2},
	{.api_key = K_OFFSET_DELETE, .min_version = 0, .max_version = 0},
};
#define N_CTL_APIS (sizeof(ctl_apis) / sizeof(ctl_apis[0]))

struct fwd {
	bool used;
	int32_t corr;            /* the Envelope's */
	struct dp_conn *conn;    /* borrowed; @req's generation guards reuse */
	uint64_t req;
	int16_t api_key;
	int16_t version;
	int32_t client_corr;
	uint8_t *body;           /* copy of the request body (malloc'd) */
	uint32_t body_len;
};

static struct {
	const struct dp_config *cfg;
	const struct dp_handler_apis *inner;
	struct dp_handler_apis apis;
	struct kp_api_versions_response_api_version *table;
	char socket_path[108];      /* control.socket.path */
	char dataplane_path[108];   /* control.dataplane.socket.path */
	int fd;                     /* -1: away */
	uint8_t *in;
	size_t in_len;
	size_t in_cap;
	uint8_t *out;
	size_t out_off;
	size_t out_len;
	size_t out_cap;
	uint64_t next_try_tsc;
	uint32_t seq;
	uint32_t next_slot;
	uint32_t n_inflight;
	unsigned int lcore;
	bool said_away;
	bool meta_local;            /* control.metadata=local */
	int (*meta_hook)(void *arg, const uint8_t *buf, size_t len);
	void *meta_hook_arg;
	struct fwd fwd[DP_CTL_MAX_INFLIGHT];
} g = {.fd = -1, .meta_local = true};

int
dp_ctl_config_key(void *arg, const char *key, const char *value)
{
	char *dst = NULL;

	(void)arg;
	if (strcmp(key, "control.metadata") == 0) {
		if (strcmp(value, "local") != 0 && strcmp(value, "controller") != 0)
			return -EINVAL;
		g.meta_local = strcmp(value, "local") == 0;
		return 0;
	}
	if (strcmp(key, "control.socket.path") == 0)
		dst = g.socket_path;
	else if (strcmp(key, "control.dataplane.socket.path") == 0)
		dst = g.dataplane_path;
	else
		return 0; /* the control process's own key: it validates it */
	if (strlen(value) >= sizeof(g.socket_path))
		return -EINVAL;
	snprintf(dst, sizeof(g.socket_path), "%s", value);
	return 0;
}

/* Same derivation as control/ctl_main.c's default_path(). */
static int
default_path(char *dst, size_t cap, const char *log_dirs, const char *suffix)
{
	size_t n = strcspn(log_dirs, ",");
	int w;

	while (n > 1 && log_dirs[n - 1] == '/')
		n--;
	w = snprintf(dst, cap, "%.*s%s", (int)n, log_dirs, suffix);
	return w < 0 || (size_t)w >= cap ? -ENAMETOOLONG : 0;
}

int
dp_ctl_paths(const struct dp_config *cfg)
{
	if ((g.socket_path[0] == '\0' && default_path(g.socket_path, sizeof(g.socket_path),
		cfg->log_dirs, ".control.sock") < 0) ||
		(g.dataplane_path[0] == '\0' && default_path(g.dataplane_path,
		sizeof(g.dataplane_path), cfg->log_dirs, ".dataplane.sock") < 0)) {
		dp_log(DP_LOG_ERROR, "log.dirs is too long for the default control socket paths; "
			"set control.socket.path and control.dataplane.socket.path");
		return -ENAMETOOLONG;
	}
	return 0;
}

const char *
dp_ctl_dataplane_socket_path(void)
{
	return g.dataplane_path;
}

bool
dp_ctl_connected(void)
{
	return g.fd >= 0;
}

bool
dp_ctl_metadata_local(void)
{
	return g.meta_local;
}

void
dp_ctl_meta_hook(int (*fn)(void *arg, const uint8_t *buf, size_t len), void *arg)
{
	g.meta_hook = fn;
	g.meta_hook_arg = arg;
}

static bool
is_meta_api(int16_t key)
{
	return key == K_CREATE_TOPICS || key == K_DELETE_TOPICS || key == K_ALTER_CONFIGS ||
		key == K_CREATE_PARTITIONS || key == K_INCREMENTAL_ALTER_CONFIGS;
}

/* What a forwarded request answers while the control process is away. */
static int16_t
away_error(int16_t key)
{
	/* NOT_CONTROLLER: retriable; Kafka's clients refresh metadata and retry. */
	return is_meta_api(key) ? KP_ERR_NOT_CONTROLLER : KP_ERR_COORDINATOR_NOT_AVAILABLE;
}

static void
free_buf(void *arg, void *buf)
{
	(void)arg;
	free(buf);
}

/* Encode response @msg for (@api_key, @version, @corr) with its size prefix; reply. */
static int
reply_msg(struct dp_conn *conn, uint64_t req, int16_t api_key, int16_t version, int32_t corr,
	const void *msg)
{
	const struct kp_api_desc *d = kp_api_lookup(api_key);
	struct kp_response_header rh;
	int64_t size = d->response.size(msg, version);
	struct kp_writer w;
	uint8_t *buf;
	uint32_t n;

	if (size < 0)
		return (int)size;
	buf = malloc((size_t)size + 32);
	if (buf == NULL)
		return -EAGAIN;
	kp_response_header_init(&rh);
	rh.correlation_id = corr;
	kp_writer_init(&w, buf + 4, (size_t)size + 28);
	if (kp_response_header_encode(&rh, kp_api_response_header_version(d, version), &w) < 0 ||
		d->response.encode(msg, version, &w) < 0) {
		free(buf);
		return -EPROTO;
	}
	n = (uint32_t)kp_writer_len(&w);
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	dp_conn_reply(conn, req, buf, n + 4, free_buf, NULL);
	return 0;
}

/*
 * Answer a group request with @err everywhere it has an error code, in the
 * request's own shape (decoded from @body). Returns 0, or a negative errno
 * for a body that does not decode (the connection is closed).
 */
static int
reply_error(struct dp_conn *conn, uint64_t req, int16_t api_key, int16_t version, int32_t corr,
	const uint8_t *body, uint32_t len, int16_t err)
{
	const struct kp_api_desc *d = kp_api_lookup(api_key);
	size_t cap = 65536 + (size_t)len * 8;
	uint8_t *mem = malloc(cap);
	void *rq;
	void *rs;
	struct kp_reader r;
	struct kp_arena a;
	int rc = -ENOMEM;

	if (mem == NULL)
		return -EAGAIN;
	kp_arena_init(&a, mem, cap);
	kp_reader_init(&r, body, len);
	rq = kp_arena_alloc(&a, d->request.struct_size, 16);
	rs = kp_arena_alloc(&a, d->response.struct_size, 16);
	if (rq == NULL || rs == NULL)
		goto out;
	rc = d->request.decode(rq, version, &r, &a);
	if (rc < 0)
		goto out;
	d->response.init(rs);
	rc = -ENOMEM;
	switch (api_key) {
	case K_JOIN_GROUP: {
		struct kp_join_group_response *m = rs;

		m->error_code = err;
		m->generation_id = -1;
		m->protocol_name.ptr = version >= 7 ? NULL : "";
		m->protocol_name.len = version >= 7 ? -1 : 0;
		m->leader.ptr = "";
		m->leader.len = 0;
		m->member_id = ((struct kp_join_group_request *)rq)->member_id;
		break;
	}
	case K_SYNC_GROUP: {
		struct kp_sync_group_response *m = rs;

		m->error_code = err;
		m->assignment.ptr = (const uint8_t *)"";
		m->assignment.len = 0;
		break;
	}
	case K_HEARTBEAT:
		((struct kp_heartbeat_response *)rs)->error_code = err;
		break;
	case K_LEAVE_GROUP:
		((struct kp_leave_group_response *)rs)->error_code = err;
		break;
	case K_LIST_GROUPS:
		((struct kp_list_groups_response *)rs)->error_code = err;
		break;
	case K_OFFSET_DELETE:
		((struct kp_offset_delete_response *)rs)->error_code = err;
		break;
	case K_OFFSET_COMMIT: {
		struct kp_offset_commit_request *q = rq;
		struct kp_offset_commit_response *m = rs;
		int32_t nt = q->topics.count > 0 ? q->topics.count : 0;

		m->topics.items = kp_arena_alloc(&a, sizeof(*m->topics.items) * (size_t)(nt + 1), 8);
		if (m->topics.items == NULL)
			goto out;
		m->topics.count = nt;
		for (int32_t t = 0; t < nt; t++) {
			const struct kp_offset_commit_request_offset_commit_request_topic *qt =
				&q->topics.items[t];
			struct kp_offset_commit_response_offset_commit_response_topic *mt =
				&m->topics.items[t];
			int32_t np = qt->partitions.count > 0 ? qt->partitions.count : 0;

			kp_offset_commit_response_offset_commit_response_topic_init(mt);
			mt->name = qt->name;
			mt->partitions.items = kp_arena_alloc(&a,
				sizeof(*mt->partitions.items) * (size_t)(np + 1), 8);
			if (mt->partitions.items == NULL)
				goto out;
			mt->partitions.count = np;
			for (int32_t i = 0; i < np; i++) {
				kp_offset_commit_response_offset_commit_response_partition_init(
					&mt->partitions.items[i]);
				mt->partitions.items[i].partition_index =
					qt->partitions.items[i].partition_index;
				mt->partitions.items[i].error_code = err;
			}
		}
		break;
	}
	case K_OFFSET_FETCH: {
		struct kp_offset_fetch_request *q = rq;
		struct kp_offset_fetch_response *m = rs;

		m->error_code = err;
		if (version >= 8) {
			int32_t ng = q->groups.count > 0 ? q->groups.count : 0;

			m->groups.items = kp_arena_alloc(&a,
				sizeof(*m->groups.items) * (size_t)(ng + 1), 8);
			if (m->groups.items == NULL)
				goto out;
			m->groups.count = ng;
			for (int32_t i = 0; i < ng; i++) {
				kp_offset_fetch_response_offset_fetch_response_group_init(
					&m->groups.items[i]);
				m->groups.items[i].group_id = q->groups.items[i].group_id;
				m->groups.items[i].error_code = err;
			}
		} else if (version <= 1) {
			/* No top-level error before v2: every partition carries it. */
			int32_t nt = q->topics.count > 0 ? q->topics.count : 0;

			m->topics.items = kp_arena_alloc(&a,
				sizeof(*m->topics.items) * (size_t)(nt + 1), 8);
			if (m->topics.items == NULL)
				goto out;
			m->topics.count = nt;
			for (int32_t t = 0; t < nt; t++) {
				const struct kp_offset_fetch_request_offset_fetch_request_topic *qt =
					&q->topics.items[t];
				struct kp_offset_fetch_response_offset_fetch_response_topic *mt =
					&m->topics.items[t];
				int32_t np = qt->partition_indexes.count > 0 ?
					qt->partition_indexes.count : 0;

				kp_offset_fetch_response_offset_fetch_response_topic_init(mt);
				mt->name = qt->name;
				mt->partitions.items = kp_arena_alloc(&a,
					sizeof(*mt->partitions.items) * (size_t)(np + 1), 8);
				if (mt->partitions.items == NULL)
					goto out;
				mt->partitions.count = np;
				for (int32_t i = 0; i < np; i++) {
					struct kp_offset_fetch_response_offset_fetch_response_partition *p =
						&mt->partitions.items[i];

					kp_offset_fetch_response_offset_fetch_response_partition_init(p);
					p->partition_index = qt->partition_indexes.items[i];
					p->committed_offset = -1;
					p->metadata.ptr = "";
					p->metadata.len = 0;
					p->error_code = err;
				}
			}
		}
		break;
	}
	case K_DESCRIBE_GROUPS: {
		struct kp_describe_groups_request *q = rq;
		struct kp_describe_groups_response *m = rs;
		int32_t ng = q->groups.count > 0 ? q->groups.count : 0;

		m->groups.items = kp_arena_alloc(&a, sizeof(*m->groups.items) * (size_t)(ng + 1), 8);
		if (m->groups.items == NULL)
			goto out;
		m->groups.count = ng;
		for (int32_t i = 0; i < ng; i++) {
			struct kp_describe_groups_response_described_group *dg = &m->groups.items[i];

			kp_describe_groups_response_described_group_init(dg);
			dg->error_code = err;
			dg->group_id = q->groups.items[i];
			dg->group_state.ptr = dg->protocol_type.ptr = dg->protocol_data.ptr = "";
			dg->group_state.len = dg->protocol_type.len = dg->protocol_data.len = 0;
			dg->members.count = 0;
		}
		break;
	}
	case K_DELETE_GROUPS: {
		struct kp_delete_groups_request *q = rq;
		struct kp_delete_groups_response *m = rs;
		int32_t ng = q->groups_names.count > 0 ? q->groups_names.count : 0;

		m->results.items = kp_arena_alloc(&a, sizeof(*m->results.items) * (size_t)(ng + 1),
			8);
		if (m->results.items == NULL)
			goto out;
		m->results.count = ng;
		for (int32_t i = 0; i < ng; i++) {
			kp_delete_groups_response_deletable_group_result_init(&m->results.items[i]);
			m->results.items[i].group_id = q->groups_names.items[i];
			m->results.items[i].error_code = err;
		}
		break;
	}
	case K_CREATE_TOPICS: {
		struct kp_create_topics_request *q = rq;
		struct kp_create_topics_response *m = rs;
		int32_t nt = q->topics.count > 0 ? q->topics.count : 0;

		m->topics.items = kp_arena_alloc(&a, sizeof(*m->topics.items) * (size_t)(nt + 1), 8);
		if (m->topics.items == NULL)
			goto out;
		m->topics.count = nt;
		for (int32_t i = 0; i < nt; i++) {
			kp_create_topics_response_creatable_topic_result_init(&m->topics.items[i]);
			m->topics.items[i].name = q->topics.items[i].name;
			m->topics.items[i].error_code = err;
			m->topics.items[i].error_message.ptr = NULL;
			m->topics.items[i].error_message.len = -1;
		}
		break;
	}
	case K_DELETE_TOPICS: {
		struct kp_delete_topics_request *q = rq;
		struct kp_delete_topics_response *m = rs;
		int32_t nt = version >= 6 ? q->topics.count : q->topic_names.count;

		if (nt < 0)
			nt = 0;
		m->responses.items = kp_arena_alloc(&a,
			sizeof(*m->responses.items) * (size_t)(nt + 1), 8);
		if (m->responses.items == NULL)
			goto out;
		m->responses.count = nt;
		for (int32_t i = 0; i < nt; i++) {
			struct kp_delete_topics_response_deletable_topic_result *dr =
				&m->responses.items[i];

			kp_delete_topics_response_deletable_topic_result_init(dr);
			dr->error_code = err;
			dr->error_message.ptr = NULL;
			dr->error_message.len = -1;
			if (version >= 6) {
				dr->name = q->topics.items[i].name;
				dr->topic_id = q->topics.items[i].topic_id;
			} else {
				dr->name = q->topic_names.items[i];
			}
		}
		break;
	}
	case K_CREATE_PARTITIONS: {
		struct kp_create_partitions_request *q = rq;
		struct kp_create_partitions_response *m = rs;
		int32_t nt = q->topics.count > 0 ? q->topics.count : 0;

		m->results.items = kp_arena_alloc(&a, sizeof(*m->results.items) * (size_t)(nt + 1),
			8);
		if (m->results.items == NULL)
			goto out;
		m->results.count = nt;
		for (int32_t i = 0; i < nt; i++) {
			kp_create_partitions_response_create_partitions_topic_result_init(
				&m->results.items[i]);
			m->results.items[i].name = q->topics.items[i].name;
			m->results.items[i].error_code = err;
			m->results.items[i].error_message.ptr = NULL;
			m->results.items[i].error_message.len = -1;
		}
		break;
	}
	case K_ALTER_CONFIGS: {
		struct kp_alter_configs_request *q = rq;
		struct kp_alter_configs_response *m = rs;
		int32_t nr = q->resources.count > 0 ? q->resources.count : 0;

		m->responses.items = kp_arena_alloc(&a,
			sizeof(*m->responses.items) * (size_t)(nr + 1), 8);
		if (m->responses.items == NULL)
			goto out;
		m->responses.count = nr;
		for (int32_t i = 0; i < nr; i++) {
			kp_alter_configs_response_alter_configs_resource_response_init(
				&m->responses.items[i]);
			m->responses.items[i].error_code = err;
			m->responses.items[i].error_message.ptr = NULL;
			m->responses.items[i].error_message.len = -1;
			m->responses.items[i].resource_type = q->resources.items[i].resource_type;
			m->responses.items[i].resource_name = q->resources.items[i].resource_name;
		}
		break;
	}
	case K_INCREMENTAL_ALTER_CONFIGS: {
		struct kp_incremental_alter_configs_request *q = rq;
		struct kp_incremental_alter_configs_response *m = rs;
		int32_t nr = q->resources.count > 0 ? q->resources.count : 0;

		m->responses.items = kp_arena_alloc(&a,
			sizeof(*m->responses.items) * (size_t)(nr + 1), 8);
		if (m->responses.items == NULL)
			goto out;
		m->responses.count = nr;
		for (int32_t i = 0; i < nr; i++) {
			kp_incremental_alter_configs_response_alter_configs_resource_response_init(
				&m->responses.items[i]);
			m->responses.items[i].error_code = err;
			m->responses.items[i].error_message.ptr = NULL;
			m->responses.items[i].error_message.len = -1;
			m->responses.items[i].resource_type = q->resources.items[i].resource_type;
			m->responses.items[i].resource_name = q->resources.items[i].resource_name;
		}
		break;
	}
	default:
		rc = -EPROTONOSUPPORT;
		goto out;
	}
	rc = reply_msg(conn, req, api_key, version, corr, rs);
out:
	free(mem);
	return rc;
}

/*
 * The address clients reach this broker's coordinator at, as Kafka answers
 * it: this broker's endpoint on the listener the request came in on (its
 * advertised.listeners entry of that name, else the listener's own host and
 * the port actually bound). A connection with no listener (the unix socket)
 * gets the first non-controller listener's.
 */
static void
coordinator_address(const struct dp_conn *conn, char *host, size_t cap, int32_t *port)
{
	const struct dp_config *cfg = g.cfg;
	const struct dp_listener *l = NULL;
	unsigned int li = 0;

	*port = 0;
	host[0] = '\0';
	if (conn->listener >= 0 && (unsigned int)conn->listener < cfg->n_listeners &&
		!cfg->listener[conn->listener].controller) {
		li = (unsigned int)conn->listener;
		l = &cfg->listener[li];
	}
	for (unsigned int i = 0; i < cfg->n_listeners && l == NULL; i++) {
		if (!cfg->listener[i].controller) {
			l = &cfg->listener[i];
			li = i;
		}
	}
	for (unsigned int i = 0; l != NULL && i < cfg->n_advertised; i++) {
		if (strcmp(cfg->advertised[i].name, l->name) == 0) {
			snprintf(host, cap, "%s", cfg->advertised[i].host);
			*port = cfg->advertised[i].port;
			break;
		}
	}
	if (*port == 0 && l != NULL) {
		snprintf(host, cap, "%s", l->host);
		*port = l->port != 0 ? l->port : net_kernel_listener_port(li);
	}
	if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0)
		snprintf(host, cap, "127.0.0.1");
}

static int
find_coordinator(struct dp_conn *conn, uint64_t req, const struct kp_request_header *h,
	struct kp_reader *r)
{
	_Alignas(64) uint8_t scratch[8192];
	struct kp_find_coordinator_request q;
	struct kp_find_coordinator_response m;
	struct kp_find_coordinator_response_coordinator cs[64];
	int16_t v = h->request_api_version;
	struct kp_arena a;
	char host[256];
	int32_t port;
	int16_t err;

	kp_arena_init(&a, scratch, sizeof(scratch));
	if (kp_find_coordinator_request_decode(&q, v, r, &a) < 0)
		return -EPROTO;
	coordinator_address(conn, host, sizeof(host), &port);
	/* Groups only: transactions have no coordinator here yet. */
	err = g.fd < 0 || q.key_type != 0 ? KP_ERR_COORDINATOR_NOT_AVAILABLE : KP_ERR_NONE;
	kp_find_coordinator_response_init(&m);
	if (v < 4) {
		m.error_code = err;
		m.node_id = err ? -1 : (int32_t)g.cfg->node_id;
		m.host.ptr = err ? "" : host;
		m.host.len = (int32_t)strlen(m.host.ptr);
		m.port = err ? -1 : port;
		return reply_msg(conn, req, K_FIND_COORDINATOR, v, h->correlation_id, &m);
	}
	if (q.coordinator_keys.count > (int32_t)(sizeof(cs) / sizeof(cs[0])))
		return -EPROTO;
	for (int32_t i = 0; i < q.coordinator_keys.count; i++) {
		kp_find_coordinator_response_coordinator_init(&cs[i]);
		cs[i].key = q.coordinator_keys.items[i];
		cs[i].error_code = err;
		cs[i].node_id = err ? -1 : (int32_t)g.cfg->node_id;
		cs[i].host.ptr = err ? "" : host;
		cs[i].host.len = (int32_t)strlen(cs[i].host.ptr);
		cs[i].port = err ? -1 : port;
	}
	m.coordinators.items = cs;
	m.coordinators.count = q.coordinator_keys.count > 0 ? q.coordinator_keys.count : 0;
	return reply_msg(conn, req, K_FIND_COORDINATOR, v, h->correlation_id, &m);
}

/* ---- the connection ---------------------------------------------------- */

static void
fwd_release(struct fwd *f)
{
	free(f->body);
	memset(f, 0, sizeof(*f));
	g.n_inflight--;
}

static void
ctl_away(const char *why)
{
	if (g.fd >= 0) {
		close(g.fd);
		g.fd = -1;
		dp_log(DP_LOG_WARN, "control process channel %s closed (%s): group requests answer "
			"COORDINATOR_NOT_AVAILABLE until it is back", g.socket_path, why);
	}
	g.in_len = 0;
	g.out_off = g.out_len = 0;
	for (unsigned int i = 0; i < DP_CTL_MAX_INFLIGHT; i++) {
		struct fwd *f = &g.fwd[i];

		if (!f->used)
			continue;
		if (f->conn != NULL)
			reply_error(f->conn, f->req, f->api_key, f->version, f->client_corr,
				f->body, f->body_len, away_error(f->api_key));
		fwd_release(f);
	}
	if (g.meta_hook != NULL)
		g.meta_hook(g.meta_hook_arg, NULL, 0); /* the next FULL batch starts over */
	g.next_try_tsc = rte_rdtsc() + rte_get_tsc_hz() / 1000 * DP_CTL_RETRY_MS;
}

static int
grow(uint8_t **buf, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 65536;
	uint8_t *p;

	while (n < need)
		n *= 2;
	if (n == *cap)
		return 0;
	p = realloc(*buf, n);
	if (p == NULL)
		return -ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

static int
flush_out(void)
{
	while (g.fd >= 0 && g.out_off < g.out_len) {
		ssize_t n = send(g.fd, g.out + g.out_off, g.out_len - g.out_off,
			MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n > 0) {
			g.out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -EPIPE;
	}
	g.out_off = g.out_len = 0;
	return 0;
}

/* The client's address as raw bytes (4 or 16), from the peer name text. */
static int
peer_address(struct dp_conn *conn, uint8_t *out)
{
	char name[80];
	char *end;

	dp_conn_peer_name(conn, name, sizeof(name));
	if (name[0] == '[') {
		end = strchr(name, ']');
		if (end == NULL)
			return 0;
		*end = '\0';
		return inet_pton(AF_INET6, name + 1, out) == 1 ? 16 : 0;
	}
	end = strrchr(name, ':');
	if (end != NULL)
		*end = '\0';
	return inet_pton(AF_INET, name, out) == 1 ? 4 : 0;
}

/* A free forwarding slot (its index in *@slot), or NULL. */
static struct fwd *
slot_take(uint32_t *slot)
{
	if (g.n_inflight == DP_CTL_MAX_INFLIGHT || g.out_len > DP_CTL_MAX_OUT)
		return NULL;
	for (uint32_t i = 0; i < DP_CTL_MAX_INFLIGHT; i++) {
		*slot = (g.next_slot + i) % DP_CTL_MAX_INFLIGHT;
		if (!g.fwd[*slot].used) {
			g.next_slot = *slot + 1;
			return &g.fwd[*slot];
		}
	}
	return NULL;
}

/*
 * Queue an Envelope of @inner (@inner_len bytes: a request header and body,
 * borrowed) for slot @slot, with the client's address @addr (@addr_len
 * bytes, 0: none), and record @f as in flight: api key @key, version
 * @version, the client's @conn, @req and @client_corr; @body (malloc'd, the
 * request body, consumed on success) for answering it in its shape later.
 * @return 0, -EAGAIN (no memory), -EPROTO.
 */
static int
queue_envelope(struct fwd *f, uint32_t slot, const uint8_t *inner, size_t inner_len,
	const uint8_t *addr, int32_t addr_len)
{
	struct kp_request_header eh;
	struct kp_envelope_request e;
	struct kp_writer w;
	size_t start;
	int rc;

	kp_envelope_request_init(&e);
	e.request_data.ptr = inner;
	e.request_data.len = (int32_t)inner_len;
	e.request_principal.ptr = NULL;
	e.request_principal.len = -1;
	e.client_host_address.ptr = addr;
	e.client_host_address.len = addr_len;
	kp_request_header_init(&eh);
	eh.request_api_key = K_ENVELOPE;
	eh.request_api_version = 0;
	g.seq = (g.seq + 1) & 0x1fffff;
	eh.correlation_id = (int32_t)(g.seq << DP_CTL_SLOT_BITS | slot);
	eh.client_id.ptr = "slipstream-dataplane";
	eh.client_id.len = (int32_t)strlen(eh.client_id.ptr);
	if (grow(&g.out, &g.out_cap, g.out_len + inner_len + 256) < 0)
		return -EAGAIN;
	start = g.out_len;
	kp_writer_init(&w, g.out + start + 4, g.out_cap - start - 4);
	rc = kp_request_header_write(&eh, &w);
	if (rc == 0)
		rc = kp_envelope_request_encode(&e, 0, &w);
	if (rc < 0 || w.err)
		return -EPROTO;
	{
		uint32_t n = (uint32_t)kp_writer_len(&w);

		g.out[start] = (uint8_t)(n >> 24);
		g.out[start + 1] = (uint8_t)(n >> 16);
		g.out[start + 2] = (uint8_t)(n >> 8);
		g.out[start + 3] = (uint8_t)n;
		g.out_len = start + 4 + n;
	}
	f->used = true;
	f->corr = eh.correlation_id;
	g.n_inflight++;
	return 0;
}

static int
forward(struct dp_conn *conn, uint64_t req, const struct kp_request_header *h,
	struct kp_reader *r)
{
	size_t body_len = kp_reader_remaining(r);
	struct kp_writer w;
	uint8_t addr[16];
	uint8_t *inner;
	size_t inner_cap;
	struct fwd *f = NULL;
	uint32_t slot = 0;
	int rc;

	if ((g.fd < 0 || rte_lcore_id() != g.lcore) && conn == NULL)
		return -ENOTCONN;
	if (g.fd < 0 || rte_lcore_id() != g.lcore)
		return reply_error(conn, req, h->request_api_key, h->request_api_version,
			h->correlation_id, r->p, (uint32_t)body_len, away_error(h->request_api_key));
	f = slot_take(&slot);
	if (f == NULL)
		return -EAGAIN;
	/* The client's frame again: its header (as decoded) and body. */
	inner_cap = body_len + 1024 + (h->client_id.len > 0 ? (size_t)h->client_id.len : 0);
	for (uint32_t i = 0; i < h->unknown_tags.count; i++)
		inner_cap += 16 + (size_t)h->unknown_tags.items[i].data.len;
	inner = malloc(inner_cap);
	f->body = malloc(body_len ? body_len : 1);
	if (inner == NULL || f->body == NULL) {
		free(inner);
		free(f->body);
		f->body = NULL;
		return -EAGAIN;
	}
	memcpy(f->body, r->p, body_len);
	kp_writer_init(&w, inner, inner_cap);
	rc = kp_request_header_write(h, &w);
	kp_wr_raw(&w, r->p, body_len);
	if (rc < 0 || w.err) {
		free(inner);
		free(f->body);
		f->body = NULL;
		return -EPROTO;
	}
	rc = queue_envelope(f, slot, inner, kp_writer_len(&w), addr,
		conn != NULL ? peer_address(conn, addr) : 0);
	free(inner);
	if (rc < 0) {
		free(f->body);
		f->body = NULL;
		return rc;
	}
	f->conn = conn;
	f->req = req;
	f->api_key = h->request_api_key;
	f->version = h->request_api_version;
	f->client_corr = h->correlation_id;
	f->body_len = (uint32_t)body_len;
	if (flush_out() < 0)
		ctl_away("send failed"); /* answers this request too */
	return 0;
}

/* The control process's answer to a topic import (a 2-byte error code). */
static void
import_answered(const struct fwd *f, const struct kp_envelope_response *e)
{
	const char *name = f->body != NULL ? (const char *)f->body : "?";
	int16_t err = e->error_code;

	if (err == 0 && e->response_data.len >= 2)
		err = (int16_t)(e->response_data.ptr[0] << 8 | e->response_data.ptr[1]);
	else if (err == 0)
		err = KP_ERR_UNKNOWN_SERVER_ERROR;
	if (err == KP_ERR_NONE)
		dp_log(DP_LOG_INFO, "metadata: topic %s imported into the metadata log", name);
	else
		dp_log(DP_LOG_ERROR, "metadata: the control process did not import topic %s (%s); "
			"it is kept here", name, kp_error_name(err));
}

/* One EnvelopeResponse from the control process. */
static int
relay(const uint8_t *frame, uint32_t len)
{
	_Alignas(64) uint8_t scratch[1024];
	struct kp_response_header rh;
	struct kp_envelope_response e;
	struct kp_reader r;
	struct kp_arena a;
	struct fwd *f;
	uint8_t *buf;

	kp_arena_init(&a, scratch, sizeof(scratch));
	kp_reader_init(&r, frame, len);
	if (kp_response_header_decode(&rh, kp_api_response_header_version(
		kp_api_lookup(K_ENVELOPE), 0), &r, &a) < 0 ||
		kp_envelope_response_decode(&e, 0, &r, &a) < 0)
		return -EPROTO;
	if (rh.correlation_id == META_PUSH_CORR) {
		if (g.meta_hook == NULL || e.response_data.len < 0)
			return 0;
		return g.meta_hook(g.meta_hook_arg, e.response_data.ptr,
			(size_t)e.response_data.len) < 0 ? -EPROTO : 0;
	}
	f = &g.fwd[(uint32_t)rh.correlation_id % DP_CTL_MAX_INFLIGHT];
	if (!f->used || f->corr != rh.correlation_id)
		return 0; /* answered already (the channel went away and came back) */
	if (f->conn == NULL) {
		/* Our own request (auto-creation, import): the push says the rest. */
		if (f->api_key == DP_CTL_IMPORT_API)
			import_answered(f, &e);
		fwd_release(f);
		return 0;
	}
	if (e.error_code != 0 || e.response_data.len < 4) {
		reply_error(f->conn, f->req, f->api_key, f->version, f->client_corr, f->body,
			f->body_len, e.error_code != 0 ? e.error_code : away_error(f->api_key));
		fwd_release(f);
		return 0;
	}
	buf = malloc((size_t)e.response_data.len + 4);
	if (buf != NULL) {
		uint32_t n = (uint32_t)e.response_data.len;

		buf[0] = (uint8_t)(n >> 24);
		buf[1] = (uint8_t)(n >> 16);
		buf[2] = (uint8_t)(n >> 8);
		buf[3] = (uint8_t)n;
		memcpy(buf + 4, e.response_data.ptr, n);
		dp_conn_reply(f->conn, f->req, buf, n + 4, free_buf, NULL);
	} else {
		reply_error(f->conn, f->req, f->api_key, f->version, f->client_corr, f->body,
			f->body_len, away_error(f->api_key));
	}
	fwd_release(f);
	return 0;
}

static void
try_connect(void)
{
	struct sockaddr_un sa;
	int fd;

	if (rte_rdtsc() < g.next_try_tsc)
		return;
	g.next_try_tsc = rte_rdtsc() + rte_get_tsc_hz() / 1000 * DP_CTL_RETRY_MS;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g.socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (!g.said_away) {
			dp_log(DP_LOG_INFO, "control process not reachable at %s yet (%s); group "
				"requests answer COORDINATOR_NOT_AVAILABLE until it is", g.socket_path,
				strerror(errno));
			g.said_away = true;
		}
		close(fd);
		return;
	}
	g.fd = fd;
	g.said_away = false;
	dp_log(DP_LOG_INFO, "control process connected (%s)", g.socket_path);
}

static int
dp_ctl_poll(void *arg)
{
	int work = 0;

	(void)arg;
	if (g.fd < 0) {
		try_connect();
		return 0;
	}
	if (flush_out() < 0) {
		ctl_away("send failed");
		return 1;
	}
	for (int i = 0; i < 8; i++) {
		ssize_t n;

		if (g.in_cap - g.in_len < 16384 && grow(&g.in, &g.in_cap, g.in_len + 65536) < 0)
			break;
		n = recv(g.fd, g.in + g.in_len, g.in_cap - g.in_len, MSG_DONTWAIT);
		if (n > 0) {
			g.in_len += (size_t)n;
			work++;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		ctl_away(n == 0 ? "closed by the control process" : strerror(errno));
		return 1;
	}
	while (g.in_len >= 4) {
		uint32_t size = (uint32_t)g.in[0] << 24 | (uint32_t)g.in[1] << 16 |
			(uint32_t)g.in[2] << 8 | g.in[3];

		if (size > DP_CTL_MAX_FRAME) {
			ctl_away("oversized frame");
			return 1;
		}
		if (g.in_len < 4 + (size_t)size)
			break;
		if (relay(g.in + 4, size) < 0) {
			ctl_away("malformed response");
			return 1;
		}
		memmove(g.in, g.in + 4 + size, g.in_len - 4 - size);
		g.in_len -= 4 + size;
		work++;
	}
	return work;
}

int
dp_ctl_topic_autocreate(const char *name, size_t len)
{
	struct kp_request_header h;
	struct kp_create_topics_request q;
	struct kp_create_topics_request_creatable_topic t;
	struct kp_reader r;
	struct kp_writer w;
	uint8_t body[512];
	int rc;

	if (g.meta_local || g.fd < 0 || rte_lcore_id() != g.lcore)
		return -ENOTCONN;
	kp_create_topics_request_init(&q);
	kp_create_topics_request_creatable_topic_init(&t);
	t.name.ptr = name;
	t.name.len = (int32_t)len;
	t.num_partitions = -1;     /* num.partitions of the control process */
	t.replication_factor = -1;
	q.topics.items = &t;
	q.topics.count = 1;
	q.timeout_ms = 30000;
	kp_writer_init(&w, body, sizeof(body));
	if (kp_create_topics_request_encode(&q, 4, &w) < 0 || w.err)
		return -EINVAL;
	kp_request_header_init(&h);
	h.request_api_key = K_CREATE_TOPICS;
	h.request_api_version = 4;
	h.correlation_id = 0;
	h.client_id.ptr = "slipstream-dataplane";
	h.client_id.len = (int32_t)strlen(h.client_id.ptr);
	kp_reader_init(&r, body, kp_writer_len(&w));
	rc = forward(NULL, 0, &h, &r);
	return rc < 0 ? rc : -EINPROGRESS;
}

int
dp_ctl_topic_import(const char *name, const uint8_t *rec, size_t len)
{
	struct fwd *f;
	uint8_t *inner;
	uint32_t slot = 0;
	int rc;

	if (g.meta_local || g.fd < 0 || rte_lcore_id() != g.lcore)
		return -ENOTCONN;
	f = slot_take(&slot);
	if (f == NULL)
		return -EAGAIN;
	inner = malloc(8 + len);
	f->body = (uint8_t *)strdup(name); /* for the log line of the answer */
	if (inner == NULL || f->body == NULL) {
		free(inner);
		free(f->body);
		f->body = NULL;
		return -EAGAIN;
	}
	/* key, version 0, correlation id 0 (CTL_META_IMPORT_API's inner frame), the record */
	inner[0] = (uint8_t)(DP_CTL_IMPORT_API >> 8);
	inner[1] = (uint8_t)DP_CTL_IMPORT_API;
	memset(inner + 2, 0, 6);
	memcpy(inner + 8, rec, len);
	rc = queue_envelope(f, slot, inner, 8 + len, NULL, 0);
	free(inner);
	if (rc < 0) {
		free(f->body);
		f->body = NULL;
		return rc;
	}
	f->conn = NULL;
	f->api_key = DP_CTL_IMPORT_API;
	f->body_len = (uint32_t)strlen(name);
	if (flush_out() < 0)
		ctl_away("send failed");
	return -EINPROGRESS;
}

static bool
is_ctl_api(int16_t key)
{
	for (size_t i = 0; i < N_CTL_APIS; i++) {
		if (ctl_apis[i].api_key == key)
			return true;
	}
	return false;
}

static int
dp_ctl_serve(void *arg, struct dp_conn *conn, uint64_t req, const struct kp_request_header *h,
	struct kp_reader *r)
{
	char peer[80];
	int rc = 0;

	(void)arg;
	if (!g.meta_local && is_meta_api(h->request_api_key)) {
		/* The broker's table gives the versions; the control process serves them. */
		rc = -EPROTONOSUPPORT;
		for (int32_t i = 0; i < g.inner->n_apis; i++) {
			if (g.inner->apis[i].api_key == h->request_api_key &&
				h->request_api_version >= g.inner->apis[i].min_version &&
				h->request_api_version <= g.inner->apis[i].max_version)
				rc = 0;
		}
		if (rc == 0)
			rc = forward(conn, req, h, r);
		if (rc < 0 && rc != -EAGAIN) {
			dp_conn_peer_name(conn, peer, sizeof(peer));
			dp_log(DP_LOG_WARN, "closing %s: %s %s v%d request (%s)", peer,
				rc == -EPROTONOSUPPORT ? "unsupported version of a" : "malformed",
				kp_api_lookup(h->request_api_key)->name, h->request_api_version,
				strerror(-rc));
		}
		return rc;
	}
	if (!is_ctl_api(h->request_api_key))
		return g.inner->serve(g.inner->serve_arg, conn, req, h, r);
	for (size_t i = 0; i < N_CTL_APIS; i++) {
		if (ctl_apis[i].api_key == h->request_api_key &&
			(h->request_api_version < ctl_apis[i].min_version ||
				h->request_api_version > ctl_apis[i].max_version))
			rc = -EPROTONOSUPPORT;
	}
	if (rc == 0 && h->request_api_key == K_FIND_COORDINATOR)
		rc = find_coordinator(conn, req, h, r);
	else if (rc == 0)
		rc = forward(conn, req, h, r);
	if (rc < 0 && rc != -EAGAIN) {
		/* The transport closes the connection: say why. */
		dp_conn_peer_name(conn, peer, sizeof(peer));
		dp_log(DP_LOG_WARN, "closing %s: %s %s v%d request (%s)", peer,
			rc == -EPROTONOSUPPORT ? "unsupported version of a" : "malformed",
			kp_api_lookup(h->request_api_key)->name, h->request_api_version,
			strerror(-rc));
	}
	return rc;
}

const struct dp_handler_apis *
dp_ctl_init(const struct dp_config *cfg, const struct dp_handler_apis *inner)
{
	int32_t n = 0;

	g.cfg = cfg;
	g.inner = inner;
	g.lcore = cfg->storage_lcore[0]; /* the broker's lcore: requests are handled there */
	if (dp_ctl_paths(cfg) < 0)
		return NULL;
	g.table = calloc((size_t)inner->n_apis + N_CTL_APIS, sizeof(*g.table));
	if (g.table == NULL)
		return NULL;
	for (int32_t i = 0; i < inner->n_apis; i++) {
		if (!is_ctl_api(inner->apis[i].api_key))
			g.table[n++] = inner->apis[i];
	}
	for (size_t i = 0; i < N_CTL_APIS; i++)
		g.table[n++] = ctl_apis[i];
	g.apis.apis = g.table;
	g.apis.n_apis = n;
	g.apis.serve = dp_ctl_serve;
	g.apis.serve_arg = NULL;
	if (dp_poller_register(g.lcore, "ctl.channel", dp_ctl_poll, NULL, 1000,
		DP_POLLER_EVERY) < 0) {
		free(g.table);
		g.table = NULL;
		return NULL;
	}
	return &g.apis;
}

void
dp_ctl_fini(void)
{
	if (g.fd >= 0)
		close(g.fd);
	g.fd = -1;
	for (unsigned int i = 0; i < DP_CTL_MAX_INFLIGHT; i++) {
		if (g.fwd[i].used)
			fwd_release(&g.fwd[i]);
	}
	free(g.in);
	free(g.out);
	free(g.table);
	g.in = g.out = NULL;
	g.in_len = g.in_cap = g.out_len = g.out_off = g.out_cap = 0;
	g.table = NULL;
}
