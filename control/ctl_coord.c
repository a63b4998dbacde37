/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_coord: the classic group coordinator (see ctl_coord.h).
 *
 * Groups live in a list (the control plane handles a few hundred groups at
 * most on one broker; lookups are linear by design, not on any data path).
 * A group owns its members, the KIP-394 member ids handed out and not yet
 * used, and its committed offsets. Requests that cannot be answered at once
 * are parked on the member (join, sync) or on an operation waiting for an
 * append (struct op). Every parked request is answered exactly once: by the
 * state machine, by an error when the member goes away, or when the append
 * completes.
 *
 * The state machine follows Apache Kafka's GroupCoordinator (3.x, classic
 * protocol):
 *   Empty --join--> PreparingRebalance --all joined / rebalance timeout-->
 *   CompletingRebalance --leader's SyncGroup stored--> Stable
 *   any member change in Stable/CompletingRebalance --> PreparingRebalance
 *   last member gone --> Empty (generation bumped).
 * The first rebalance of an Empty group waits group.initial.rebalance.delay.ms,
 * extended by each new member up to the rebalance timeout.
 */
#include "ctl_coord.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl_records.h"
#include "kp_api.h"
#include "kp_batch.h"
#include "kp_error.h"

#define K_OFFSET_COMMIT 8
#define K_OFFSET_FETCH 9
#define K_JOIN_GROUP 11
#define K_HEARTBEAT 12
#define K_LEAVE_GROUP 13
#define K_SYNC_GROUP 14
#define K_DESCRIBE_GROUPS 15
#define K_LIST_GROUPS 16
#define K_DELETE_GROUPS 42
#define K_OFFSET_DELETE 47

struct parked {
	uint64_t token;
	int16_t version;
	int32_t corr;
	bool active;
};

struct proto {
	char *name;
	uint8_t *meta;
	int32_t meta_len;
};

struct member {
	char *id;
	char *instance_id;   /* NULL: dynamic member */
	char *client_id;
	char *client_host;
	int32_t session_timeout_ms;
	int32_t rebalance_timeout_ms;
	struct proto *protos;
	int32_t n_protos;
	uint8_t *assignment;
	int32_t assignment_len;
	int64_t deadline_ms;      /* session expiry */
	struct parked join;
	struct parked sync;
};

struct pending_id {
	char *id;
	int64_t deadline_ms;
};

struct offset {
	char *topic;
	int32_t partition;
	int64_t offset;
	int32_t leader_epoch;
	char *metadata;
	int64_t commit_ts;
};

struct group {
	struct group *next;
	char *id;
	enum ctl_group_state state;
	int32_t generation;
	char *protocol_type;      /* NULL until a member joins (or a simple commit: NULL) */
	char *protocol;           /* selected protocol, NULL when none */
	char *leader;             /* member id, NULL when none */
	struct member **members;
	uint32_t n_members;
	uint32_t cap_members;
	struct pending_id *pending;
	uint32_t n_pending;
	uint32_t cap_pending;
	struct offset *offsets;
	uint32_t n_offsets;
	uint32_t cap_offsets;
	int64_t rebalance_deadline_ms;
	int64_t initial_cap_ms;   /* initial delay may extend up to here */
	bool initial_delay;       /* the first rebalance of an Empty group */
	int64_t state_ts;         /* when the state last changed (currentStateTimestamp) */
	uint64_t member_seq;
};

enum op_kind {
	OP_FIRE,        /* nobody waits (group metadata after a rebalance to Empty) */
	OP_COMMIT,
	OP_SYNC,
	OP_DELETE,      /* OffsetDelete / DeleteGroups / expiry tombstones */
};

struct op_part {
	char *topic;
	int32_t partition;
	int16_t error;
	int64_t offset;
	int32_t leader_epoch;
	char *metadata;
};

struct op {
	enum op_kind kind;
	int16_t api_key;
	struct parked req;
	char *group;
	int32_t generation;
	struct op_part *parts;
	uint32_t n_parts;
	int16_t *group_errors;  /* DeleteGroups: per group of the request */
	char **group_ids;
	uint32_t n_groups;
	int outstanding;
	int err;
	int64_t ts;             /* request time: the commit timestamp stored */
};

struct ctl_coord {
	struct ctl_coord_cfg cfg;
	ctl_coord_respond_fn respond;
	ctl_coord_append_fn append;
	void *arg;
	struct group *groups;
	unsigned int n_groups;
	uint64_t id_seq;
	int64_t next_expiry_ms;
};

/* ---- small helpers ------------------------------------------------------- */

static char *
dup_str(const struct kp_str *s)
{
	char *p;

	if (s->len < 0)
		return NULL;
	p = malloc((size_t)s->len + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, s->ptr, (size_t)s->len);
	p[s->len] = '\0';
	return p;
}

static char *
dup_cstr(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

static uint8_t *
dup_bytes(const void *p, int32_t len)
{
	uint8_t *b = malloc(len > 0 ? (size_t)len : 1);

	if (b != NULL && len > 0)
		memcpy(b, p, (size_t)len);
	return b;
}

static bool
str_eq(const struct kp_str *s, const char *c)
{
	if (s->len < 0 || c == NULL)
		return s->len < 0 && c == NULL;
	return strlen(c) == (size_t)s->len && memcmp(s->ptr, c, (size_t)s->len) == 0;
}

static struct kp_str
kstr(const char *c)
{
	struct kp_str s = {.ptr = c, .len = c == NULL ? -1 : (int32_t)strlen(c)};

	return s;
}

/* "" for NULL: fields that are not nullable on the wire. */
static struct kp_str
kstr0(const char *c)
{
	return kstr(c == NULL ? "" : c);
}

const char *
ctl_group_state_name(enum ctl_group_state s)
{
	switch (s) {
	case CTL_GROUP_EMPTY:
		return "Empty";
	case CTL_GROUP_PREPARING:
		return "PreparingRebalance";
	case CTL_GROUP_COMPLETING:
		return "CompletingRebalance";
	case CTL_GROUP_STABLE:
		return "Stable";
	case CTL_GROUP_DEAD:
		break;
	}
	return "Dead";
}

static void
set_state(struct group *g, enum ctl_group_state s, int64_t now)
{
	g->state = s;
	g->state_ts = now;
}

/* ---- response encoding --------------------------------------------------- */

/* Encode response @msg of @api_key v@version and hand it to the respond callback. */
static void
respond_msg(struct ctl_coord *c, const struct parked *p, int16_t api_key, const void *msg)
{
	const struct kp_api_desc *d = kp_api_lookup(api_key);
	struct kp_response_header rh;
	struct kp_writer w;
	int64_t size = d->response.size(msg, p->version);
	uint8_t *buf;

	if (size < 0) {
		fprintf(stderr, "control: cannot encode %s v%d (%d); no answer sent\n", d->name,
			p->version, (int)size);
		return;
	}
	buf = malloc((size_t)size + 16);
	if (buf == NULL)
		return;
	kp_response_header_init(&rh);
	rh.correlation_id = p->corr;
	kp_writer_init(&w, buf, (size_t)size + 16);
	if (kp_response_header_encode(&rh, kp_api_response_header_version(d, p->version), &w) < 0 ||
		d->response.encode(msg, p->version, &w) < 0) {
		fprintf(stderr, "control: cannot encode %s v%d; no answer sent\n", d->name,
			p->version);
		free(buf);
		return;
	}
	c->respond(c->arg, p->token, buf, kp_writer_len(&w));
}

static void
respond_join(struct ctl_coord *c, struct group *g, struct member *m, struct parked *p,
	int16_t error, const char *member_id, bool with_members, bool skip_assignment)
{
	struct kp_join_group_response r;
	struct kp_join_group_response_join_group_response_member *items = NULL;

	kp_join_group_response_init(&r);
	r.error_code = error;
	r.generation_id = error == 0 && g != NULL ? g->generation : -1;
	r.protocol_type = error == 0 && g != NULL ? kstr(g->protocol_type) : kstr(NULL);
	r.protocol_name = error == 0 && g != NULL ? kstr(g->protocol) : kstr(NULL);
	if (p->version < 7 && r.protocol_name.len < 0)
		r.protocol_name = kstr("");
	r.leader = kstr0(error == 0 && g != NULL ? g->leader : NULL);
	r.member_id = kstr0(member_id);
	r.skip_assignment = skip_assignment;
	if (with_members && g != NULL && g->n_members > 0) {
		items = calloc(g->n_members, sizeof(*items));
		if (items != NULL) {
			for (uint32_t i = 0; i < g->n_members; i++) {
				struct member *o = g->members[i];

				kp_join_group_response_join_group_response_member_init(&items[i]);
				items[i].member_id = kstr(o->id);
				items[i].group_instance_id = kstr(o->instance_id);
				for (int32_t k = 0; k < o->n_protos; k++) {
					if (g->protocol != NULL &&
						strcmp(o->protos[k].name, g->protocol) == 0) {
						items[i].metadata.ptr = o->protos[k].meta;
						items[i].metadata.len = o->protos[k].meta_len;
					}
				}
			}
			r.members.items = items;
			r.members.count = (int32_t)g->n_members;
		}
	}
	respond_msg(c, p, K_JOIN_GROUP, &r);
	free(items);
	p->active = false;
	(void)m;
}

static void
respond_sync(struct ctl_coord *c, struct group *g, struct parked *p, int16_t error,
	const uint8_t *assignment, int32_t len)
{
	struct kp_sync_group_response r;

	kp_sync_group_response_init(&r);
	r.error_code = error;
	r.protocol_type = error == 0 && g != NULL ? kstr(g->protocol_type) : kstr(NULL);
	r.protocol_name = error == 0 && g != NULL ? kstr(g->protocol) : kstr(NULL);
	r.assignment.ptr = assignment;
	r.assignment.len = assignment != NULL ? len : 0;
	if (r.assignment.ptr == NULL)
		r.assignment.ptr = (const uint8_t *)"";
	respond_msg(c, p, K_SYNC_GROUP, &r);
	p->active = false;
}

static void
respond_error_simple(struct ctl_coord *c, const struct parked *p, int16_t api_key, int16_t error)
{
	struct kp_heartbeat_response hb;

	switch (api_key) {
	case K_HEARTBEAT:
		kp_heartbeat_response_init(&hb);
		hb.error_code = error;
		respond_msg(c, p, api_key, &hb);
		break;
	default:
		break;
	}
}

/* ---- groups and members -------------------------------------------------- */

static struct group *
group_find(const struct ctl_coord *c, const struct kp_str *id)
{
	for (struct group *g = c->groups; g != NULL; g = g->next) {
		if (str_eq(id, g->id))
			return g;
	}
	return NULL;
}

static struct group *
group_find_c(const struct ctl_coord *c, const char *id)
{
	struct kp_str s = kstr(id);

	return group_find(c, &s);
}

static struct group *
group_create(struct ctl_coord *c, const struct kp_str *id, int64_t now)
{
	struct group *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->id = dup_str(id);
	if (g->id == NULL) {
		free(g);
		return NULL;
	}
	g->state = CTL_GROUP_EMPTY;
	g->state_ts = now;
	g->next = c->groups;
	c->groups = g;
	c->n_groups++;
	return g;
}

static void
member_free(struct member *m)
{
	if (m == NULL)
		return;
	free(m->id);
	free(m->instance_id);
	free(m->client_id);
	free(m->client_host);
	for (int32_t i = 0; i < m->n_protos; i++) {
		free(m->protos[i].name);
		free(m->protos[i].meta);
	}
	free(m->protos);
	free(m->assignment);
	free(m);
}

static void
group_free(struct group *g)
{
	for (uint32_t i = 0; i < g->n_members; i++)
		member_free(g->members[i]);
	free(g->members);
	for (uint32_t i = 0; i < g->n_pending; i++)
		free(g->pending[i].id);
	free(g->pending);
	for (uint32_t i = 0; i < g->n_offsets; i++) {
		free(g->offsets[i].topic);
		free(g->offsets[i].metadata);
	}
	free(g->offsets);
	free(g->id);
	free(g->protocol_type);
	free(g->protocol);
	free(g->leader);
	free(g);
}

static void
group_remove(struct ctl_coord *c, struct group *g)
{
	for (struct group **pp = &c->groups; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			c->n_groups--;
			group_free(g);
			return;
		}
	}
}

static struct member *
member_find(const struct group *g, const struct kp_str *id)
{
	for (uint32_t i = 0; i < g->n_members; i++) {
		if (str_eq(id, g->members[i]->id))
			return g->members[i];
	}
	return NULL;
}

static struct member *
member_find_static(const struct group *g, const struct kp_str *instance_id)
{
	if (instance_id->len < 0)
		return NULL;
	for (uint32_t i = 0; i < g->n_members; i++) {
		if (g->members[i]->instance_id != NULL && str_eq(instance_id, g->members[i]->instance_id))
			return g->members[i];
	}
	return NULL;
}

static int
member_add(struct group *g, struct member *m)
{
	if (g->n_members == g->cap_members) {
		uint32_t cap = g->cap_members ? g->cap_members * 2 : 8;
		struct member **n = realloc(g->members, sizeof(*n) * cap);

		if (n == NULL)
			return -ENOMEM;
		g->members = n;
		g->cap_members = cap;
	}
	g->members[g->n_members++] = m;
	return 0;
}

static bool
is_leader(const struct group *g, const struct member *m)
{
	return g->leader != NULL && strcmp(g->leader, m->id) == 0;
}

static int
pending_find(const struct group *g, const struct kp_str *id)
{
	for (uint32_t i = 0; i < g->n_pending; i++) {
		if (str_eq(id, g->pending[i].id))
			return (int)i;
	}
	return -1;
}

static void
pending_remove(struct group *g, uint32_t i)
{
	free(g->pending[i].id);
	g->pending[i] = g->pending[--g->n_pending];
}

static int
pending_add(struct group *g, const char *id, int64_t deadline)
{
	if (g->n_pending == g->cap_pending) {
		uint32_t cap = g->cap_pending ? g->cap_pending * 2 : 8;
		struct pending_id *n = realloc(g->pending, sizeof(*n) * cap);

		if (n == NULL)
			return -ENOMEM;
		g->pending = n;
		g->cap_pending = cap;
	}
	g->pending[g->n_pending].id = strdup(id);
	if (g->pending[g->n_pending].id == NULL)
		return -ENOMEM;
	g->pending[g->n_pending++].deadline_ms = deadline;
	return 0;
}

/* A member id as Kafka makes them: clientId (or instance id) + "-" + a UUID. */
static char *
new_member_id(struct ctl_coord *c, const char *prefix)
{
	char buf[300];
	uint64_t a = ++c->id_seq;
	uint64_t b = (uint64_t)(uintptr_t)c ^ (a * 0x9e3779b97f4a7c15ULL);

	snprintf(buf, sizeof(buf), "%.200s-%08" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%04" PRIx64
		"-%012" PRIx64, prefix != NULL ? prefix : "", b >> 32, (b >> 16) & 0xffff,
		b & 0xffff, (a >> 48) & 0xffff, a & (uint64_t)0xffffffffffff);
	return strdup(buf);
}

/* Replace @m's protocols with the request's. */
static int
member_set_protocols(struct member *m, const struct kp_join_group_request *req)
{
	int32_t n = req->protocols.count > 0 ? req->protocols.count : 0;
	struct proto *p = calloc(n > 0 ? (size_t)n : 1, sizeof(*p));

	if (p == NULL)
		return -ENOMEM;
	for (int32_t i = 0; i < n; i++) {
		const struct kp_join_group_request_join_group_request_protocol *q =
			&req->protocols.items[i];

		p[i].name = dup_str(&q->name);
		p[i].meta_len = q->metadata.len > 0 ? q->metadata.len : 0;
		p[i].meta = dup_bytes(q->metadata.ptr, p[i].meta_len);
		if (p[i].name == NULL || p[i].meta == NULL) {
			for (int32_t k = 0; k <= i; k++) {
				free(p[k].name);
				free(p[k].meta);
			}
			free(p);
			return -ENOMEM;
		}
	}
	for (int32_t i = 0; i < m->n_protos; i++) {
		free(m->protos[i].name);
		free(m->protos[i].meta);
	}
	free(m->protos);
	m->protos = p;
	m->n_protos = n;
	return 0;
}

static bool
member_supports(const struct member *m, const char *name)
{
	for (int32_t i = 0; i < m->n_protos; i++) {
		if (strcmp(m->protos[i].name, name) == 0)
			return true;
	}
	return false;
}

/* Same protocols, same order and metadata as the request? */
static bool
protocols_match(const struct member *m, const struct kp_join_group_request *req)
{
	if (req->protocols.count != m->n_protos)
		return false;
	for (int32_t i = 0; i < m->n_protos; i++) {
		const struct kp_join_group_request_join_group_request_protocol *q =
			&req->protocols.items[i];
		int32_t ql = q->metadata.len > 0 ? q->metadata.len : 0;

		if (!str_eq(&q->name, m->protos[i].name) || ql != m->protos[i].meta_len ||
			(ql > 0 && memcmp(q->metadata.ptr, m->protos[i].meta, (size_t)ql) != 0))
			return false;
	}
	return true;
}

static int32_t
max_rebalance_timeout(const struct group *g)
{
	int32_t t = 0;

	for (uint32_t i = 0; i < g->n_members; i++) {
		if (g->members[i]->rebalance_timeout_ms > t)
			t = g->members[i]->rebalance_timeout_ms;
	}
	return t;
}

/* ---- appends -------------------------------------------------------------- */

static struct op *
op_new(enum op_kind kind, int16_t api_key, const struct parked *req, const char *group)
{
	struct op *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return NULL;
	o->kind = kind;
	o->api_key = api_key;
	if (req != NULL)
		o->req = *req;
	o->group = dup_cstr(group);
	return o;
}

static void
op_free(struct op *o)
{
	for (uint32_t i = 0; i < o->n_parts; i++) {
		free(o->parts[i].topic);
		free(o->parts[i].metadata);
	}
	free(o->parts);
	for (uint32_t i = 0; i < o->n_groups; i++)
		free(o->group_ids[i]);
	free(o->group_ids);
	free(o->group_errors);
	free(o->group);
	free(o);
}

struct rec {
	const uint8_t *key;
	size_t key_len;
	const uint8_t *value; /* NULL: tombstone */
	size_t value_len;
};

/* Build one batch of @n records and start appending it for @o. */
static int
append_records(struct ctl_coord *c, int32_t partition, const struct rec *recs, uint32_t n,
	struct op *o, int64_t now)
{
	struct kp_batch_builder b;
	size_t cap = 128;
	size_t size;
	uint8_t *buf;
	int rc;

	for (uint32_t i = 0; i < n; i++)
		cap += recs[i].key_len + recs[i].value_len + 32;
	buf = malloc(cap);
	if (buf == NULL)
		return -ENOMEM;
	rc = kp_batch_builder_start(&b, buf, cap, KP_COMPRESSION_NONE);
	for (uint32_t i = 0; rc == 0 && i < n; i++)
		rc = kp_batch_builder_add(&b, now, recs[i].key, recs[i].key_len, recs[i].value,
			recs[i].value_len, NULL, 0);
	if (rc == 0)
		rc = kp_batch_builder_finish(&b, &size);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	rc = c->append(c->arg, partition, buf, size, o);
	if (rc == 0)
		o->outstanding++;
	return rc;
}

/* Records of one group's metadata (or its tombstone when @tombstone). */
static int
append_group_metadata(struct ctl_coord *c, struct group *g, struct op *o, bool tombstone,
	int64_t now)
{
	struct ctl_rec_group v;
	struct ctl_rec_member *ms = NULL;
	uint8_t kbuf[2 + 2 + 32768];
	struct kp_writer kw;
	struct kp_writer vw;
	struct kp_str gid = kstr(g->id);
	uint8_t *vbuf = NULL;
	struct rec r;
	size_t vsize;
	int rc;

	kp_writer_init(&kw, kbuf, sizeof(kbuf));
	ctl_rec_group_key_encode(&kw, &gid);
	r.key = kbuf;
	r.key_len = kp_writer_len(&kw);
	r.value = NULL;
	r.value_len = 0;
	if (!tombstone) {
		memset(&v, 0, sizeof(v));
		v.protocol_type = kstr0(g->protocol_type);
		v.generation = g->generation;
		v.protocol = kstr(g->protocol);
		v.leader = kstr(g->leader);
		v.state_ts = g->state_ts;
		ms = calloc(g->n_members ? g->n_members : 1, sizeof(*ms));
		if (ms == NULL)
			return -ENOMEM;
		for (uint32_t i = 0; i < g->n_members; i++) {
			struct member *m = g->members[i];

			ms[i].member_id = kstr(m->id);
			ms[i].instance_id = kstr(m->instance_id);
			ms[i].client_id = kstr0(m->client_id);
			ms[i].client_host = kstr0(m->client_host);
			ms[i].rebalance_timeout_ms = m->rebalance_timeout_ms;
			ms[i].session_timeout_ms = m->session_timeout_ms;
			ms[i].subscription.ptr = (const uint8_t *)"";
			ms[i].subscription.len = 0;
			for (int32_t k = 0; k < m->n_protos; k++) {
				if (g->protocol != NULL && strcmp(m->protos[k].name, g->protocol) == 0) {
					ms[i].subscription.ptr = m->protos[k].meta;
					ms[i].subscription.len = m->protos[k].meta_len;
				}
			}
			ms[i].assignment.ptr = m->assignment != NULL ? m->assignment :
								       (const uint8_t *)"";
			ms[i].assignment.len = m->assignment != NULL ? m->assignment_len : 0;
		}
		v.members = ms;
		v.n_members = (int32_t)g->n_members;
		vsize = ctl_rec_group_size(&v, c->cfg.group_value_version);
		vbuf = malloc(vsize);
		if (vbuf == NULL) {
			free(ms);
			return -ENOMEM;
		}
		kp_writer_init(&vw, vbuf, vsize);
		ctl_rec_group_encode(&vw, &v, c->cfg.group_value_version);
		if (vw.err) {
			free(ms);
			free(vbuf);
			return vw.err;
		}
		r.value = vbuf;
		r.value_len = kp_writer_len(&vw);
	}
	rc = append_records(c, ctl_rec_partition_for(&gid, c->cfg.n_partitions), &r, 1, o, now);
	free(ms);
	free(vbuf);
	return rc;
}

/* Group metadata that nobody waits for. */
static void
store_group_fire(struct ctl_coord *c, struct group *g, bool tombstone, int64_t now)
{
	struct op *o = op_new(OP_FIRE, 0, NULL, g->id);

	if (o == NULL)
		return;
	if (append_group_metadata(c, g, o, tombstone, now) < 0 || o->outstanding == 0)
		op_free(o);
}

/* ---- the rebalance state machine ----------------------------------------- */

static void complete_join(struct ctl_coord *c, struct group *g, int64_t now);

static void
prepare_rebalance(struct ctl_coord *c, struct group *g, int64_t now)
{
	if (g->state == CTL_GROUP_COMPLETING) {
		for (uint32_t i = 0; i < g->n_members; i++) {
			struct member *m = g->members[i];

			if (m->sync.active)
				respond_sync(c, g, &m->sync, KP_ERR_REBALANCE_IN_PROGRESS, NULL, 0);
		}
	}
	if (g->state == CTL_GROUP_EMPTY) {
		int64_t delay = c->cfg.initial_rebalance_delay_ms;
		int64_t cap = max_rebalance_timeout(g);

		g->initial_delay = true;
		g->initial_cap_ms = now + cap;
		g->rebalance_deadline_ms = now + (delay < cap ? delay : cap);
	} else if (g->state != CTL_GROUP_PREPARING) {
		g->initial_delay = false;
		g->rebalance_deadline_ms = now + max_rebalance_timeout(g);
	}
	if (g->state != CTL_GROUP_PREPARING)
		set_state(g, CTL_GROUP_PREPARING, now);
}

static bool
all_joined(const struct group *g)
{
	for (uint32_t i = 0; i < g->n_members; i++) {
		if (!g->members[i]->join.active)
			return false;
	}
	return g->n_pending == 0;
}

static void
maybe_complete_join(struct ctl_coord *c, struct group *g, int64_t now)
{
	if (g->state == CTL_GROUP_PREPARING && !g->initial_delay && all_joined(g))
		complete_join(c, g, now);
}

/* Remove member @i, answering whatever it has parked with @error. */
static void
member_remove(struct ctl_coord *c, struct group *g, uint32_t i, int16_t error)
{
	struct member *m = g->members[i];

	if (m->join.active)
		respond_join(c, g, m, &m->join, error, m->id, false, false);
	if (m->sync.active)
		respond_sync(c, g, &m->sync, error, NULL, 0);
	if (is_leader(g, m)) {
		free(g->leader);
		g->leader = NULL;
	}
	member_free(m);
	g->members[i] = g->members[--g->n_members];
}

/* A member left or expired: the rest of the group must rebalance. */
static void
after_member_gone(struct ctl_coord *c, struct group *g, int64_t now)
{
	switch (g->state) {
	case CTL_GROUP_STABLE:
	case CTL_GROUP_COMPLETING:
		prepare_rebalance(c, g, now);
		maybe_complete_join(c, g, now);
		break;
	case CTL_GROUP_PREPARING:
		if (g->n_members == 0)
			g->initial_delay = false;
		maybe_complete_join(c, g, now);
		break;
	default:
		break;
	}
}

static char *
select_protocol(const struct group *g)
{
	const struct member *first = NULL;
	const char *best = NULL;
	int best_votes = -1;

	for (uint32_t i = 0; i < g->n_members; i++) {
		if (g->members[i]->join.active) {
			first = g->members[i];
			break;
		}
	}
	if (first == NULL)
		first = g->n_members ? g->members[0] : NULL;
	if (first == NULL)
		return NULL;
	/* Candidates: every protocol all members support; each member votes its first candidate. */
	for (int32_t k = 0; k < first->n_protos; k++) {
		const char *cand = first->protos[k].name;
		bool all = true;
		int votes = 0;

		for (uint32_t i = 0; i < g->n_members && all; i++)
			all = member_supports(g->members[i], cand);
		if (!all)
			continue;
		for (uint32_t i = 0; i < g->n_members; i++) {
			const struct member *m = g->members[i];

			for (int32_t q = 0; q < m->n_protos; q++) {
				bool cand_all = true;

				for (uint32_t j = 0; j < g->n_members && cand_all; j++)
					cand_all = member_supports(g->members[j], m->protos[q].name);
				if (!cand_all)
					continue;
				if (strcmp(m->protos[q].name, cand) == 0)
					votes++;
				break;
			}
		}
		if (votes > best_votes) {
			best = cand;
			best_votes = votes;
		}
	}
	return best != NULL ? strdup(best) : NULL;
}

static void
complete_join(struct ctl_coord *c, struct group *g, int64_t now)
{
	/* Dynamic members that did not rejoin in time are out (static ones wait for their session). */
	for (uint32_t i = 0; i < g->n_members;) {
		struct member *m = g->members[i];

		if (!m->join.active && m->instance_id == NULL)
			member_remove(c, g, i, KP_ERR_UNKNOWN_MEMBER_ID);
		else
			i++;
	}
	g->initial_delay = false;
	g->generation++;
	free(g->protocol);
	g->protocol = NULL;
	if (g->n_members == 0) {
		free(g->leader);
		g->leader = NULL;
		set_state(g, CTL_GROUP_EMPTY, now);
		store_group_fire(c, g, false, now);
		return;
	}
	g->protocol = select_protocol(g);
	{
		bool leader_ok = false;

		for (uint32_t i = 0; i < g->n_members && g->leader != NULL; i++) {
			if (is_leader(g, g->members[i]) && g->members[i]->join.active)
				leader_ok = true;
		}
		if (!leader_ok) {
			free(g->leader);
			g->leader = NULL;
			for (uint32_t i = 0; i < g->n_members; i++) {
				if (g->members[i]->join.active) {
					g->leader = strdup(g->members[i]->id);
					break;
				}
			}
		}
	}
	for (uint32_t i = 0; i < g->n_members; i++) {
		free(g->members[i]->assignment);
		g->members[i]->assignment = NULL;
		g->members[i]->assignment_len = 0;
	}
	set_state(g, CTL_GROUP_COMPLETING, now);
	/* Members that do not send SyncGroup within the rebalance timeout are removed. */
	g->rebalance_deadline_ms = now + max_rebalance_timeout(g);
	for (uint32_t i = 0; i < g->n_members; i++) {
		struct member *m = g->members[i];

		if (!m->join.active)
			continue;
		m->deadline_ms = now + m->session_timeout_ms;
		respond_join(c, g, m, &m->join, KP_ERR_NONE, m->id, is_leader(g, m), false);
	}
}

/* ---- JoinGroup ------------------------------------------------------------- */

static void
join_error(struct ctl_coord *c, struct parked *p, int16_t error, const char *member_id)
{
	respond_join(c, NULL, NULL, p, error, member_id, false, false);
}

/* A new member joins (a dynamic one, or a static one seen for the first time). */
static void
join_add(struct ctl_coord *c, struct group *g, char *id, const struct kp_join_group_request *req,
	const char *client_id, const char *host, struct parked *p, int32_t rebalance_ms,
	int64_t now)
{
	struct member *m = calloc(1, sizeof(*m));

	if (m == NULL || member_set_protocols(m, req) < 0) {
		free(m);
		free(id);
		join_error(c, p, KP_ERR_UNKNOWN_SERVER_ERROR, "");
		return;
	}
	m->id = id;
	m->instance_id = dup_str(&req->group_instance_id);
	m->client_id = dup_cstr(client_id);
	m->client_host = dup_cstr(host);
	m->session_timeout_ms = req->session_timeout_ms;
	m->rebalance_timeout_ms = rebalance_ms;
	m->deadline_ms = now + m->session_timeout_ms;
	m->join = *p;
	m->join.active = true;
	if (member_add(g, m) < 0) {
		member_free(m);
		join_error(c, p, KP_ERR_UNKNOWN_SERVER_ERROR, "");
		return;
	}
	if (g->protocol_type == NULL)
		g->protocol_type = dup_str(&req->protocol_type);
	if (g->state == CTL_GROUP_PREPARING && g->initial_delay) {
		int64_t d = now + c->cfg.initial_rebalance_delay_ms;
		int64_t cap = now + max_rebalance_timeout(g);

		if (cap > g->initial_cap_ms)
			g->initial_cap_ms = cap;
		g->rebalance_deadline_ms = d < g->initial_cap_ms ? d : g->initial_cap_ms;
	} else {
		prepare_rebalance(c, g, now);
	}
	maybe_complete_join(c, g, now);
}

static void
handle_join(struct ctl_coord *c, struct parked *p, const struct kp_join_group_request *req,
	const char *client_id, const char *host, int64_t now)
{
	int32_t rebalance_ms = p->version >= 1 ? req->rebalance_timeout_ms : req->session_timeout_ms;
	bool unknown = req->member_id.len <= 0;
	struct group *g;
	struct member *m;

	if (req->group_id.len <= 0) {
		join_error(c, p, KP_ERR_INVALID_GROUP_ID, "");
		return;
	}
	if (req->session_timeout_ms < c->cfg.min_session_timeout_ms ||
		req->session_timeout_ms > c->cfg.max_session_timeout_ms) {
		join_error(c, p, KP_ERR_INVALID_SESSION_TIMEOUT, "");
		return;
	}
	if (rebalance_ms <= 0)
		rebalance_ms = req->session_timeout_ms;
	g = group_find(c, &req->group_id);
	if (g == NULL) {
		if (!unknown) {
			join_error(c, p, KP_ERR_UNKNOWN_MEMBER_ID, "");
			return;
		}
		g = group_create(c, &req->group_id, now);
		if (g == NULL) {
			join_error(c, p, KP_ERR_UNKNOWN_SERVER_ERROR, "");
			return;
		}
	}
	/* Protocol type and a protocol every member (and this one) supports. */
	if (req->protocol_type.len <= 0 || req->protocols.count <= 0) {
		join_error(c, p, KP_ERR_INCONSISTENT_GROUP_PROTOCOL, "");
		return;
	}
	if (g->n_members > 0) {
		bool any = false;

		if (!str_eq(&req->protocol_type, g->protocol_type)) {
			join_error(c, p, KP_ERR_INCONSISTENT_GROUP_PROTOCOL, "");
			return;
		}
		for (int32_t i = 0; i < req->protocols.count && !any; i++) {
			char *name = dup_str(&req->protocols.items[i].name);
			bool all = name != NULL;

			for (uint32_t k = 0; k < g->n_members && all; k++) {
				const struct member *o = g->members[k];

				/* The member being replaced or rejoining does not vote against itself. */
				if (!unknown && str_eq(&req->member_id, o->id))
					continue;
				if (o->instance_id != NULL && str_eq(&req->group_instance_id, o->instance_id))
					continue;
				all = member_supports(o, name);
			}
			any = all;
			free(name);
		}
		if (!any) {
			join_error(c, p, KP_ERR_INCONSISTENT_GROUP_PROTOCOL, "");
			return;
		}
	} else if (g->protocol_type != NULL && !str_eq(&req->protocol_type, g->protocol_type)) {
		free(g->protocol_type);
		g->protocol_type = NULL;
	}

	if (unknown) {
		char *id = new_member_id(c, req->group_instance_id.len >= 0 ?
			NULL : client_id);
		struct member *old;

		if (id == NULL) {
			join_error(c, p, KP_ERR_UNKNOWN_SERVER_ERROR, "");
			return;
		}
		if (req->group_instance_id.len >= 0) {
			char *inst = dup_str(&req->group_instance_id);

			free(id);
			id = new_member_id(c, inst);
			free(inst);
			if (id == NULL) {
				join_error(c, p, KP_ERR_UNKNOWN_SERVER_ERROR, "");
				return;
			}
		}
		old = member_find_static(g, &req->group_instance_id);
		if (old != NULL) {
			/* KIP-345: a known static member restarts; the old member id is fenced. */
			bool was_leader = is_leader(g, old);
			bool same = protocols_match(old, req);

			if (old->join.active)
				respond_join(c, g, old, &old->join, KP_ERR_FENCED_INSTANCE_ID, old->id,
					false, false);
			if (old->sync.active)
				respond_sync(c, g, &old->sync, KP_ERR_FENCED_INSTANCE_ID, NULL, 0);
			free(old->id);
			old->id = id;
			if (was_leader) {
				free(g->leader);
				g->leader = strdup(id);
			}
			free(old->client_id);
			old->client_id = dup_cstr(client_id);
			free(old->client_host);
			old->client_host = dup_cstr(host);
			old->session_timeout_ms = req->session_timeout_ms;
			old->rebalance_timeout_ms = rebalance_ms;
			old->deadline_ms = now + old->session_timeout_ms;
			if (!same && member_set_protocols(old, req) < 0) {
				join_error(c, p, KP_ERR_UNKNOWN_SERVER_ERROR, "");
				return;
			}
			if (g->state == CTL_GROUP_STABLE && same) {
				/* No rebalance: the member syncs and gets its old assignment. */
				bool skip = was_leader && p->version >= 9;

				store_group_fire(c, g, false, now);
				respond_join(c, g, old, p, KP_ERR_NONE, id, skip, skip);
				return;
			}
			old->join = *p;
			old->join.active = true;
			if (g->state != CTL_GROUP_PREPARING)
				prepare_rebalance(c, g, now);
			maybe_complete_join(c, g, now);
			return;
		}
		if (req->group_instance_id.len < 0 && p->version >= 4) {
			/* KIP-394: hand out the id; the member must come back with it. */
			if (pending_add(g, id, now + req->session_timeout_ms) < 0) {
				free(id);
				join_error(c, p, KP_ERR_UNKNOWN_SERVER_ERROR, "");
				return;
			}
			join_error(c, p, KP_ERR_MEMBER_ID_REQUIRED, id);
			free(id);
			return;
		}
		join_add(c, g, id, req, client_id, host, p, rebalance_ms, now);
		return;
	}

	/* A known member id. */
	{
		int pi = pending_find(g, &req->member_id);

		if (pi >= 0) {
			char *id = dup_str(&req->member_id);

			pending_remove(g, (uint32_t)pi);
			if (id == NULL) {
				join_error(c, p, KP_ERR_UNKNOWN_SERVER_ERROR, "");
				return;
			}
			join_add(c, g, id, req, client_id, host, p, rebalance_ms, now);
			return;
		}
	}
	m = member_find(g, &req->member_id);
	if (m == NULL) {
		struct member *s = member_find_static(g, &req->group_instance_id);

		join_error(c, p, s != NULL ? KP_ERR_FENCED_INSTANCE_ID : KP_ERR_UNKNOWN_MEMBER_ID,
			"");
		return;
	}
	if (m->instance_id != NULL && req->group_instance_id.len >= 0 &&
		!str_eq(&req->group_instance_id, m->instance_id)) {
		join_error(c, p, KP_ERR_FENCED_INSTANCE_ID, "");
		return;
	}
	m->deadline_ms = now + req->session_timeout_ms;
	m->session_timeout_ms = req->session_timeout_ms;
	m->rebalance_timeout_ms = rebalance_ms;
	switch (g->state) {
	case CTL_GROUP_PREPARING:
		if (member_set_protocols(m, req) < 0) {
			join_error(c, p, KP_ERR_UNKNOWN_SERVER_ERROR, "");
			return;
		}
		if (m->join.active)
			respond_join(c, g, m, &m->join, KP_ERR_REBALANCE_IN_PROGRESS, m->id, false,
				false);
		m->join = *p;
		m->join.active = true;
		maybe_complete_join(c, g, now);
		return;
	case CTL_GROUP_COMPLETING:
		if (protocols_match(m, req)) {
			respond_join(c, g, m, p, KP_ERR_NONE, m->id, is_leader(g, m), false);
			return;
		}
		break;
	case CTL_GROUP_STABLE:
		if (!is_leader(g, m) && protocols_match(m, req)) {
			respond_join(c, g, m, p, KP_ERR_NONE, m->id, false, false);
			return;
		}
		break;
	default:
		join_error(c, p, KP_ERR_UNKNOWN_MEMBER_ID, "");
		return;
	}
	if (member_set_protocols(m, req) < 0) {
		join_error(c, p, KP_ERR_UNKNOWN_SERVER_ERROR, "");
		return;
	}
	m->join = *p;
	m->join.active = true;
	prepare_rebalance(c, g, now);
	maybe_complete_join(c, g, now);
}

/* ---- SyncGroup, Heartbeat, LeaveGroup ------------------------------------ */

/* Common member checks: 0 with *gp and *mp set, or the error to answer. */
static int16_t
check_member(struct ctl_coord *c, const struct kp_str *group, const struct kp_str *member_id,
	const struct kp_str *instance_id, int32_t generation, struct group **gp,
	struct member **mp)
{
	struct group *g = group_find(c, group);
	struct member *m;

	*gp = g;
	*mp = NULL;
	if (group->len <= 0)
		return KP_ERR_INVALID_GROUP_ID;
	if (g == NULL)
		return KP_ERR_UNKNOWN_MEMBER_ID;
	m = member_find(g, member_id);
	if (m == NULL) {
		if (member_find_static(g, instance_id) != NULL)
			return KP_ERR_FENCED_INSTANCE_ID;
		return KP_ERR_UNKNOWN_MEMBER_ID;
	}
	if (instance_id->len >= 0 && (m->instance_id == NULL || !str_eq(instance_id, m->instance_id)))
		return KP_ERR_FENCED_INSTANCE_ID;
	*mp = m;
	if (generation != g->generation)
		return KP_ERR_ILLEGAL_GENERATION;
	return KP_ERR_NONE;
}

static void
handle_sync(struct ctl_coord *c, struct parked *p, const struct kp_sync_group_request *req,
	int64_t now)
{
	struct group *g;
	struct member *m;
	int16_t err = check_member(c, &req->group_id, &req->member_id, &req->group_instance_id,
		req->generation_id, &g, &m);

	if (err == KP_ERR_NONE && p->version >= 5 &&
		((req->protocol_type.len >= 0 && !str_eq(&req->protocol_type, g->protocol_type)) ||
			(req->protocol_name.len >= 0 && !str_eq(&req->protocol_name, g->protocol))))
		err = KP_ERR_INCONSISTENT_GROUP_PROTOCOL;
	if (err != KP_ERR_NONE) {
		respond_sync(c, NULL, p, err, NULL, 0);
		return;
	}
	m->deadline_ms = now + m->session_timeout_ms;
	switch (g->state) {
	case CTL_GROUP_PREPARING:
		respond_sync(c, NULL, p, KP_ERR_REBALANCE_IN_PROGRESS, NULL, 0);
		return;
	case CTL_GROUP_STABLE:
		respond_sync(c, g, p, KP_ERR_NONE, m->assignment, m->assignment_len);
		return;
	case CTL_GROUP_COMPLETING:
		break;
	default:
		respond_sync(c, NULL, p, KP_ERR_UNKNOWN_MEMBER_ID, NULL, 0);
		return;
	}
	if (m->sync.active)
		respond_sync(c, NULL, &m->sync, KP_ERR_REBALANCE_IN_PROGRESS, NULL, 0);
	m->sync = *p;
	m->sync.active = true;
	if (is_leader(g, m)) {
		struct op *o;

		for (int32_t i = 0; i < req->assignments.count; i++) {
			const struct kp_sync_group_request_sync_group_request_assignment *a =
				&req->assignments.items[i];
			struct member *t = member_find(g, &a->member_id);

			if (t == NULL)
				continue;
			free(t->assignment);
			t->assignment_len = a->assignment.len > 0 ? a->assignment.len : 0;
			t->assignment = dup_bytes(a->assignment.ptr, t->assignment_len);
		}
		o = op_new(OP_SYNC, K_SYNC_GROUP, NULL, g->id);
		if (o == NULL) {
			respond_sync(c, NULL, &m->sync, KP_ERR_UNKNOWN_SERVER_ERROR, NULL, 0);
			return;
		}
		o->generation = g->generation;
		if (append_group_metadata(c, g, o, false, now) < 0 || o->outstanding == 0) {
			o->err = -ENOTCONN;
			o->outstanding = 1;
			ctl_coord_append_done(c, o, -ENOTCONN, now);
		}
	}
}

static void
sync_done(struct ctl_coord *c, struct op *o, int64_t now)
{
	struct group *g = group_find_c(c, o->group);

	if (g == NULL || g->state != CTL_GROUP_COMPLETING || g->generation != o->generation)
		return;
	if (o->err != 0) {
		for (uint32_t i = 0; i < g->n_members; i++) {
			struct member *m = g->members[i];

			if (m->sync.active)
				respond_sync(c, NULL, &m->sync, KP_ERR_COORDINATOR_NOT_AVAILABLE, NULL, 0);
			free(m->assignment);
			m->assignment = NULL;
			m->assignment_len = 0;
		}
		prepare_rebalance(c, g, now);
		return;
	}
	set_state(g, CTL_GROUP_STABLE, now);
	for (uint32_t i = 0; i < g->n_members; i++) {
		struct member *m = g->members[i];

		if (m->sync.active)
			respond_sync(c, g, &m->sync, KP_ERR_NONE, m->assignment, m->assignment_len);
	}
}

static void
handle_heartbeat(struct ctl_coord *c, struct parked *p, const struct kp_heartbeat_request *req,
	int64_t now)
{
	struct group *g;
	struct member *m;
	int16_t err = check_member(c, &req->group_id, &req->member_id, &req->group_instance_id,
		req->generation_id, &g, &m);

	if (m != NULL)
		m->deadline_ms = now + m->session_timeout_ms;
	if (err == KP_ERR_NONE) {
		switch (g->state) {
		case CTL_GROUP_PREPARING:
			err = KP_ERR_REBALANCE_IN_PROGRESS;
			break;
		case CTL_GROUP_EMPTY:
		case CTL_GROUP_DEAD:
			err = KP_ERR_UNKNOWN_MEMBER_ID;
			break;
		default:
			break;
		}
	} else if (err == KP_ERR_ILLEGAL_GENERATION && g != NULL && g->state == CTL_GROUP_PREPARING) {
		err = KP_ERR_REBALANCE_IN_PROGRESS;
	}
	respond_error_simple(c, p, K_HEARTBEAT, err);
}

static int16_t
leave_one(struct ctl_coord *c, struct group *g, const struct kp_str *member_id,
	const struct kp_str *instance_id)
{
	struct member *m = NULL;
	int pi;

	if (g == NULL)
		return KP_ERR_UNKNOWN_MEMBER_ID;
	if (instance_id->len >= 0) {
		m = member_find_static(g, instance_id);
		if (m == NULL)
			return KP_ERR_UNKNOWN_MEMBER_ID;
		if (member_id->len > 0 && !str_eq(member_id, m->id))
			return KP_ERR_FENCED_INSTANCE_ID;
	} else {
		pi = pending_find(g, member_id);
		if (pi >= 0) {
			pending_remove(g, (uint32_t)pi);
			return KP_ERR_NONE;
		}
		m = member_find(g, member_id);
		if (m == NULL)
			return KP_ERR_UNKNOWN_MEMBER_ID;
	}
	for (uint32_t i = 0; i < g->n_members; i++) {
		if (g->members[i] == m) {
			member_remove(c, g, i, KP_ERR_UNKNOWN_MEMBER_ID);
			break;
		}
	}
	return KP_ERR_NONE;
}

static void
handle_leave(struct ctl_coord *c, struct parked *p, const struct kp_leave_group_request *req,
	int64_t now)
{
	struct kp_leave_group_response r;
	struct kp_leave_group_response_member_response *items = NULL;
	struct group *g = group_find(c, &req->group_id);
	uint32_t before = g != NULL ? g->n_members : 0;

	kp_leave_group_response_init(&r);
	if (p->version < 3) {
		struct kp_str none = {NULL, -1};

		r.error_code = req->group_id.len <= 0 ? KP_ERR_INVALID_GROUP_ID :
							 leave_one(c, g, &req->member_id, &none);
	} else {
		int32_t n = req->members.count > 0 ? req->members.count : 0;

		items = calloc(n > 0 ? (size_t)n : 1, sizeof(*items));
		if (items == NULL)
			return;
		for (int32_t i = 0; i < n; i++) {
			const struct kp_leave_group_request_member_identity *id = &req->members.items[i];

			kp_leave_group_response_member_response_init(&items[i]);
			items[i].member_id = id->member_id;
			items[i].group_instance_id = id->group_instance_id;
			items[i].error_code = leave_one(c, g, &id->member_id, &id->group_instance_id);
		}
		r.members.items = items;
		r.members.count = n;
		if (req->group_id.len <= 0)
			r.error_code = KP_ERR_INVALID_GROUP_ID;
	}
	if (g != NULL && g->n_members != before)
		after_member_gone(c, g, now);
	respond_msg(c, p, K_LEAVE_GROUP, &r);
	free(items);
}

/* ---- offsets ------------------------------------------------------------- */

static struct offset *
offset_find(const struct group *g, const char *topic, size_t topic_len, int32_t partition)
{
	for (uint32_t i = 0; i < g->n_offsets; i++) {
		struct offset *o = &g->offsets[i];

		if (o->partition == partition && strlen(o->topic) == topic_len &&
			memcmp(o->topic, topic, topic_len) == 0)
			return o;
	}
	return NULL;
}

static int
offset_set(struct group *g, const char *topic, size_t topic_len, int32_t partition, int64_t off,
	int32_t epoch, const char *md, size_t md_len, int64_t ts)
{
	struct offset *o = offset_find(g, topic, topic_len, partition);
	char *m = malloc(md_len + 1);

	if (m == NULL)
		return -ENOMEM;
	memcpy(m, md, md_len);
	m[md_len] = '\0';
	if (o == NULL) {
		if (g->n_offsets == g->cap_offsets) {
			uint32_t cap = g->cap_offsets ? g->cap_offsets * 2 : 16;
			struct offset *n = realloc(g->offsets, sizeof(*n) * cap);

			if (n == NULL) {
				free(m);
				return -ENOMEM;
			}
			g->offsets = n;
			g->cap_offsets = cap;
		}
		o = &g->offsets[g->n_offsets];
		o->topic = malloc(topic_len + 1);
		if (o->topic == NULL) {
			free(m);
			return -ENOMEM;
		}
		memcpy(o->topic, topic, topic_len);
		o->topic[topic_len] = '\0';
		o->partition = partition;
		o->metadata = NULL;
		g->n_offsets++;
	}
	free(o->metadata);
	o->metadata = m;
	o->offset = off;
	o->leader_epoch = epoch;
	o->commit_ts = ts;
	return 0;
}

static void
offset_delete(struct group *g, const char *topic, size_t topic_len, int32_t partition)
{
	struct offset *o = offset_find(g, topic, topic_len, partition);

	if (o == NULL)
		return;
	free(o->topic);
	free(o->metadata);
	*o = g->offsets[--g->n_offsets];
}

/* Encode the OffsetCommitKey of (group, topic, partition) into @buf; returns its length. */
static size_t
offset_key(uint8_t *buf, size_t cap, const char *group, const char *topic, int32_t partition)
{
	struct kp_writer w;
	struct kp_str gs = kstr(group);
	struct kp_str ts = kstr(topic);

	kp_writer_init(&w, buf, cap);
	ctl_rec_offset_key_encode(&w, &gs, &ts, partition);
	return w.err ? 0 : kp_writer_len(&w);
}

/* Append the records of @o's parts (offset values, or tombstones when @tombstones). */
static int
append_parts(struct ctl_coord *c, struct op *o, const char *group, bool tombstones, int64_t now)
{
	struct rec *recs = calloc(o->n_parts ? o->n_parts : 1, sizeof(*recs));
	uint8_t **bufs = calloc(o->n_parts ? o->n_parts : 1, sizeof(*bufs));
	struct kp_str gs = kstr(group);
	uint32_t n = 0;
	int rc = -ENOMEM;

	if (recs == NULL || bufs == NULL)
		goto out;
	for (uint32_t i = 0; i < o->n_parts; i++) {
		struct op_part *pt = &o->parts[i];
		size_t kcap = strlen(group) + strlen(pt->topic) + 16;
		size_t vcap = (pt->metadata != NULL ? strlen(pt->metadata) : 0) + 32;
		struct kp_writer w;
		struct ctl_rec_offset v;

		if (pt->error != KP_ERR_NONE)
			continue;
		bufs[i] = malloc(kcap + vcap);
		if (bufs[i] == NULL)
			goto out;
		recs[n].key = bufs[i];
		recs[n].key_len = offset_key(bufs[i], kcap, group, pt->topic, pt->partition);
		if (!tombstones) {
			v.offset = pt->offset;
			v.leader_epoch = pt->leader_epoch;
			v.metadata = kstr0(pt->metadata);
			v.commit_ts = now;
			v.expire_ts = -1;
			kp_writer_init(&w, bufs[i] + kcap, vcap);
			ctl_rec_offset_encode(&w, &v, c->cfg.offset_value_version);
			recs[n].value = bufs[i] + kcap;
			recs[n].value_len = kp_writer_len(&w);
		}
		n++;
	}
	rc = n == 0 ? 0 : append_records(c, ctl_rec_partition_for(&gs, c->cfg.n_partitions), recs, n,
		o, now);
out:
	for (uint32_t i = 0; bufs != NULL && i < o->n_parts; i++)
		free(bufs[i]);
	free(bufs);
	free(recs);
	return rc;
}

static int16_t
commit_check(struct ctl_coord *c, const struct parked *p, const struct kp_offset_commit_request *req,
	int64_t now)
{
	int32_t gen = p->version >= 1 ? req->generation_id_or_member_epoch : -1;
	struct kp_str empty = {"", 0};
	const struct kp_str *mid = p->version >= 1 ? &req->member_id : &empty;
	struct group *g;
	struct member *m;
	int16_t err;

	if (req->group_id.len <= 0)
		return KP_ERR_INVALID_GROUP_ID;
	g = group_find(c, &req->group_id);
	if (g == NULL) {
		if (gen >= 0)
			return KP_ERR_ILLEGAL_GENERATION;
		return group_create(c, &req->group_id, now) != NULL ? KP_ERR_NONE :
								       KP_ERR_UNKNOWN_SERVER_ERROR;
	}
	if (gen < 0 && g->state == CTL_GROUP_EMPTY)
		return KP_ERR_NONE; /* a simple (assign()) consumer's commit */
	err = check_member(c, &req->group_id, mid, &req->group_instance_id, gen, &g, &m);
	if (err != KP_ERR_NONE)
		return err;
	m->deadline_ms = now + m->session_timeout_ms;
	if (g->state == CTL_GROUP_COMPLETING)
		return KP_ERR_REBALANCE_IN_PROGRESS;
	return KP_ERR_NONE;
}

static void
respond_commit(struct ctl_coord *c, struct op *o)
{
	struct kp_offset_commit_response r;
	struct kp_offset_commit_response_offset_commit_response_topic *topics;
	struct kp_offset_commit_response_offset_commit_response_partition *parts;
	int32_t nt = 0;

	kp_offset_commit_response_init(&r);
	topics = calloc(o->n_parts ? o->n_parts : 1, sizeof(*topics));
	parts = calloc(o->n_parts ? o->n_parts : 1, sizeof(*parts));
	if (topics == NULL || parts == NULL)
		goto out;
	/* Parts are in request order, grouped by topic. */
	for (uint32_t i = 0; i < o->n_parts; i++) {
		struct op_part *pt = &o->parts[i];

		if (nt == 0 || strcmp(topics[nt - 1].name.ptr, pt->topic) != 0) {
			kp_offset_commit_response_offset_commit_response_topic_init(&topics[nt]);
			topics[nt].name = kstr(pt->topic);
			topics[nt].partitions.items = &parts[i];
			topics[nt].partitions.count = 0;
			nt++;
		}
		kp_offset_commit_response_offset_commit_response_partition_init(&parts[i]);
		parts[i].partition_index = pt->partition;
		parts[i].error_code = pt->error;
		if (pt->error == KP_ERR_NONE && o->err != 0)
			parts[i].error_code = KP_ERR_COORDINATOR_NOT_AVAILABLE;
		topics[nt - 1].partitions.count++;
	}
	r.topics.items = topics;
	r.topics.count = nt;
	respond_msg(c, &o->req, K_OFFSET_COMMIT, &r);
out:
	free(topics);
	free(parts);
}

static void
handle_commit(struct ctl_coord *c, struct parked *p, const struct kp_offset_commit_request *req,
	int64_t now)
{
	int16_t err = commit_check(c, p, req, now);
	struct op *o;
	uint32_t n = 0;
	char *group = dup_str(&req->group_id);

	o = op_new(OP_COMMIT, K_OFFSET_COMMIT, p, group);
	free(group);
	if (o == NULL)
		return;
	o->ts = now;
	for (int32_t t = 0; t < req->topics.count; t++)
		n += (uint32_t)(req->topics.items[t].partitions.count > 0 ?
			req->topics.items[t].partitions.count : 0);
	o->parts = calloc(n ? n : 1, sizeof(*o->parts));
	if (o->parts == NULL) {
		op_free(o);
		return;
	}
	for (int32_t t = 0; t < req->topics.count; t++) {
		const struct kp_offset_commit_request_offset_commit_request_topic *tp =
			&req->topics.items[t];

		for (int32_t i = 0; i < tp->partitions.count; i++) {
			const struct kp_offset_commit_request_offset_commit_request_partition *pp =
				&tp->partitions.items[i];
			struct op_part *pt = &o->parts[o->n_parts++];

			pt->topic = dup_str(&tp->name);
			pt->partition = pp->partition_index;
			pt->offset = pp->committed_offset;
			pt->leader_epoch = p->version >= 6 ? pp->committed_leader_epoch : -1;
			pt->metadata = pp->committed_metadata.len >= 0 ?
				dup_str(&pp->committed_metadata) : strdup("");
			pt->error = err;
			if (pt->topic == NULL || pt->metadata == NULL)
				pt->error = KP_ERR_UNKNOWN_SERVER_ERROR;
			else if (err == KP_ERR_NONE && pp->committed_metadata.len >
				c->cfg.max_metadata_bytes)
				pt->error = KP_ERR_OFFSET_METADATA_TOO_LARGE;
			if (pt->topic == NULL)
				pt->topic = strdup("");
		}
	}
	if (append_parts(c, o, o->group, false, now) < 0)
		o->err = -ENOTCONN;
	if (o->outstanding == 0) {
		respond_commit(c, o);
		op_free(o);
	}
}

static void
commit_done(struct ctl_coord *c, struct op *o, int64_t now)
{
	struct group *g = group_find_c(c, o->group);

	if (o->err == 0 && g == NULL)
		g = group_create(c, &(struct kp_str){o->group, (int32_t)strlen(o->group)}, now);
	for (uint32_t i = 0; o->err == 0 && g != NULL && i < o->n_parts; i++) {
		struct op_part *pt = &o->parts[i];

		if (pt->error == KP_ERR_NONE && offset_set(g, pt->topic, strlen(pt->topic),
			pt->partition, pt->offset, pt->leader_epoch, pt->metadata,
			strlen(pt->metadata), o->ts) < 0)
			pt->error = KP_ERR_UNKNOWN_SERVER_ERROR;
	}
	respond_commit(c, o);
}

/* OffsetFetch: one group's answer in v8+ shapes, converted for v0-7 by the caller. */
struct fetch_out {
	struct kp_offset_fetch_response_offset_fetch_response_topics *topics;
	int32_t n_topics;
	struct kp_offset_fetch_response_offset_fetch_response_partitions *parts;
};

static void
fetch_part(struct kp_offset_fetch_response_offset_fetch_response_partitions *pp,
	const struct group *g, const struct kp_str *topic, int32_t partition)
{
	const struct offset *o = g != NULL ? offset_find(g, topic->ptr, (size_t)topic->len,
		partition) : NULL;

	kp_offset_fetch_response_offset_fetch_response_partitions_init(pp);
	pp->partition_index = partition;
	pp->committed_offset = o != NULL ? o->offset : -1;
	pp->committed_leader_epoch = o != NULL ? o->leader_epoch : -1;
	pp->metadata = kstr(o != NULL ? o->metadata : "");
	pp->error_code = KP_ERR_NONE;
}

/* @topics NULL (count -1): every committed offset of the group. */
static int
fetch_group(const struct group *g, const struct kp_offset_fetch_request_offset_fetch_request_topics *topics,
	int32_t n_topics, struct fetch_out *out)
{
	uint32_t np = 0;
	int32_t k = 0;

	memset(out, 0, sizeof(*out));
	if (n_topics >= 0) {
		for (int32_t t = 0; t < n_topics; t++)
			np += (uint32_t)(topics[t].partition_indexes.count > 0 ?
				topics[t].partition_indexes.count : 0);
		out->topics = calloc(n_topics ? (size_t)n_topics : 1, sizeof(*out->topics));
		out->parts = calloc(np ? np : 1, sizeof(*out->parts));
		if (out->topics == NULL || out->parts == NULL)
			return -ENOMEM;
		for (int32_t t = 0; t < n_topics; t++) {
			struct kp_offset_fetch_response_offset_fetch_response_topics *ot =
				&out->topics[t];

			kp_offset_fetch_response_offset_fetch_response_topics_init(ot);
			ot->name = topics[t].name;
			ot->partitions.items = &out->parts[k];
			ot->partitions.count = 0;
			for (int32_t i = 0; i < topics[t].partition_indexes.count; i++) {
				fetch_part(&out->parts[k++], g, &topics[t].name,
					topics[t].partition_indexes.items[i]);
				ot->partitions.count++;
			}
		}
		out->n_topics = n_topics;
		return 0;
	}
	np = g != NULL ? g->n_offsets : 0;
	out->topics = calloc(np ? np : 1, sizeof(*out->topics));
	out->parts = calloc(np ? np : 1, sizeof(*out->parts));
	if (out->topics == NULL || out->parts == NULL)
		return -ENOMEM;
	/* Group by topic: each distinct topic once, its partitions after it. */
	for (uint32_t i = 0; i < np; i++) {
		const char *topic = g->offsets[i].topic;
		bool seen = false;
		struct kp_offset_fetch_response_offset_fetch_response_topics *ot;

		for (int32_t t = 0; t < out->n_topics && !seen; t++)
			seen = strcmp(out->topics[t].name.ptr, topic) == 0;
		if (seen)
			continue;
		ot = &out->topics[out->n_topics++];
		kp_offset_fetch_response_offset_fetch_response_topics_init(ot);
		ot->name = kstr(topic);
		ot->partitions.items = &out->parts[k];
		ot->partitions.count = 0;
		for (uint32_t j = i; j < np; j++) {
			if (strcmp(g->offsets[j].topic, topic) != 0)
				continue;
			fetch_part(&out->parts[k++], g, &ot->name, g->offsets[j].partition);
			ot->partitions.count++;
		}
	}
	return 0;
}

static void
handle_offset_fetch(struct ctl_coord *c, struct parked *p, struct kp_offset_fetch_request *req,
	struct kp_arena *a)
{
	struct kp_offset_fetch_response r;

	kp_offset_fetch_response_init(&r);
	if (p->version >= 8) {
		int32_t ng = req->groups.count > 0 ? req->groups.count : 0;
		struct kp_offset_fetch_response_offset_fetch_response_group *gs =
			calloc(ng ? (size_t)ng : 1, sizeof(*gs));
		struct fetch_out *outs = calloc(ng ? (size_t)ng : 1, sizeof(*outs));

		for (int32_t i = 0; gs != NULL && outs != NULL && i < ng; i++) {
			const struct kp_offset_fetch_request_offset_fetch_request_group *rg =
				&req->groups.items[i];

			kp_offset_fetch_response_offset_fetch_response_group_init(&gs[i]);
			gs[i].group_id = rg->group_id;
			if (fetch_group(group_find(c, &rg->group_id), rg->topics.items,
				rg->topics.count, &outs[i]) < 0)
				gs[i].error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
			gs[i].topics.items = outs[i].topics;
			gs[i].topics.count = outs[i].n_topics;
		}
		if (gs != NULL && outs != NULL) {
			r.groups.items = gs;
			r.groups.count = ng;
			respond_msg(c, p, K_OFFSET_FETCH, &r);
		}
		for (int32_t i = 0; outs != NULL && i < ng; i++) {
			free(outs[i].topics);
			free(outs[i].parts);
		}
		free(outs);
		free(gs);
		return;
	}
	{
		/* v0-7: the same answer in the older shapes (same field layout, other types). */
		struct kp_offset_fetch_request_offset_fetch_request_topics *ts = NULL;
		int32_t nt = req->topics.count;
		struct fetch_out out;
		struct kp_offset_fetch_response_offset_fetch_response_topic *ot = NULL;
		struct kp_offset_fetch_response_offset_fetch_response_partition *op = NULL;
		int32_t k = 0;

		if (nt > 0) {
			ts = kp_arena_alloc(a, sizeof(*ts) * (size_t)nt, 8);
			if (ts == NULL)
				return;
			for (int32_t t = 0; t < nt; t++) {
				ts[t].name = req->topics.items[t].name;
				ts[t].partition_indexes = req->topics.items[t].partition_indexes;
			}
		}
		if (fetch_group(group_find(c, &req->group_id), ts, nt < 0 ? -1 : nt, &out) < 0)
			r.error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
		ot = calloc(out.n_topics ? (size_t)out.n_topics : 1, sizeof(*ot));
		{
			int32_t np = 0;

			for (int32_t t = 0; t < out.n_topics; t++)
				np += out.topics[t].partitions.count;
			op = calloc(np ? (size_t)np : 1, sizeof(*op));
		}
		if (ot != NULL && op != NULL) {
			for (int32_t t = 0; t < out.n_topics; t++) {
				kp_offset_fetch_response_offset_fetch_response_topic_init(&ot[t]);
				ot[t].name = out.topics[t].name;
				ot[t].partitions.items = &op[k];
				ot[t].partitions.count = out.topics[t].partitions.count;
				for (int32_t i = 0; i < out.topics[t].partitions.count; i++) {
					const struct kp_offset_fetch_response_offset_fetch_response_partitions
						*s = &out.topics[t].partitions.items[i];

					kp_offset_fetch_response_offset_fetch_response_partition_init(
						&op[k]);
					op[k].partition_index = s->partition_index;
					op[k].committed_offset = s->committed_offset;
					op[k].committed_leader_epoch = s->committed_leader_epoch;
					op[k].metadata = s->metadata;
					op[k].error_code = s->error_code;
					k++;
				}
			}
			r.topics.items = ot;
			r.topics.count = out.n_topics;
			respond_msg(c, p, K_OFFSET_FETCH, &r);
		}
		free(ot);
		free(op);
		free(out.topics);
		free(out.parts);
	}
}

/* Topics the members of a "consumer" group subscribe to (decoded from their metadata). */
static bool
group_subscribes(const struct group *g, const struct kp_str *topic)
{
	for (uint32_t i = 0; i < g->n_members; i++) {
		const struct member *m = g->members[i];

		for (int32_t k = 0; k < m->n_protos; k++) {
			struct kp_consumer_protocol_subscription s;
			uint8_t scratch[16384];
			struct kp_arena a;
			struct kp_reader r;
			int16_t version;

			if (g->protocol != NULL && strcmp(m->protos[k].name, g->protocol) != 0)
				continue;
			kp_reader_init(&r, m->protos[k].meta, (size_t)m->protos[k].meta_len);
			kp_arena_init(&a, scratch, sizeof(scratch));
			version = kp_rd_int16(&r);
			if (version > 3)
				version = 3;
			if (r.err || kp_consumer_protocol_subscription_decode(&s, version, &r, &a) < 0)
				return true; /* cannot tell: be safe */
			for (int32_t t = 0; t < s.topics.count; t++) {
				if (s.topics.items[t].len == topic->len &&
					memcmp(s.topics.items[t].ptr, topic->ptr, (size_t)topic->len) == 0)
					return true;
			}
		}
	}
	return false;
}

static void
respond_offset_delete(struct ctl_coord *c, struct op *o, int16_t top)
{
	struct kp_offset_delete_response r;
	struct kp_offset_delete_response_offset_delete_response_topic *topics;
	struct kp_offset_delete_response_offset_delete_response_partition *parts;
	int32_t nt = 0;

	kp_offset_delete_response_init(&r);
	r.error_code = top;
	topics = calloc(o->n_parts ? o->n_parts : 1, sizeof(*topics));
	parts = calloc(o->n_parts ? o->n_parts : 1, sizeof(*parts));
	if (topics == NULL || parts == NULL)
		goto out;
	for (uint32_t i = 0; top == KP_ERR_NONE && i < o->n_parts; i++) {
		struct op_part *pt = &o->parts[i];

		if (nt == 0 || strcmp(topics[nt - 1].name.ptr, pt->topic) != 0) {
			topics[nt].name = kstr(pt->topic);
			topics[nt].partitions.items = &parts[i];
			topics[nt].partitions.count = 0;
			nt++;
		}
		parts[i].partition_index = pt->partition;
		parts[i].error_code = pt->error == KP_ERR_NONE && o->err != 0 ?
			KP_ERR_COORDINATOR_NOT_AVAILABLE : pt->error;
		topics[nt - 1].partitions.count++;
	}
	r.topics.items = topics;
	r.topics.count = nt;
	respond_msg(c, &o->req, K_OFFSET_DELETE, &r);
out:
	free(topics);
	free(parts);
}

static void
handle_offset_delete(struct ctl_coord *c, struct parked *p,
	const struct kp_offset_delete_request *req, int64_t now)
{
	struct group *g = group_find(c, &req->group_id);
	char *gid = dup_str(&req->group_id);
	struct op *o = op_new(OP_DELETE, K_OFFSET_DELETE, p, gid);
	uint32_t n = 0;
	int16_t top = KP_ERR_NONE;

	free(gid);
	if (o == NULL)
		return;
	if (req->group_id.len <= 0)
		top = KP_ERR_INVALID_GROUP_ID;
	else if (g == NULL)
		top = KP_ERR_GROUP_ID_NOT_FOUND;
	else if (g->state != CTL_GROUP_EMPTY &&
		(g->protocol_type == NULL || strcmp(g->protocol_type, "consumer") != 0))
		top = KP_ERR_NON_EMPTY_GROUP;
	for (int32_t t = 0; t < req->topics.count; t++)
		n += (uint32_t)(req->topics.items[t].partitions.count > 0 ?
			req->topics.items[t].partitions.count : 0);
	o->parts = calloc(n ? n : 1, sizeof(*o->parts));
	if (o->parts == NULL) {
		op_free(o);
		return;
	}
	for (int32_t t = 0; top == KP_ERR_NONE && t < req->topics.count; t++) {
		const struct kp_offset_delete_request_offset_delete_request_topic *tp =
			&req->topics.items[t];
		bool subscribed = g->state != CTL_GROUP_EMPTY && group_subscribes(g, &tp->name);

		for (int32_t i = 0; i < tp->partitions.count; i++) {
			struct op_part *pt = &o->parts[o->n_parts++];

			pt->topic = dup_str(&tp->name);
			pt->partition = tp->partitions.items[i].partition_index;
			pt->error = subscribed ? KP_ERR_GROUP_SUBSCRIBED_TO_TOPIC : KP_ERR_NONE;
			if (pt->topic == NULL) {
				pt->topic = strdup("");
				pt->error = KP_ERR_UNKNOWN_SERVER_ERROR;
			} else if (!subscribed && offset_find(g, pt->topic, strlen(pt->topic),
				pt->partition) == NULL) {
				/* Nothing stored: Kafka answers NONE and writes nothing. */
				pt->error = KP_ERR_NONE;
			}
		}
	}
	if (top != KP_ERR_NONE) {
		respond_offset_delete(c, o, top);
		op_free(o);
		return;
	}
	/* Forget now (a later commit wins over the tombstone as the later record). */
	for (uint32_t i = 0; i < o->n_parts; i++) {
		if (o->parts[i].error == KP_ERR_NONE)
			offset_delete(g, o->parts[i].topic, strlen(o->parts[i].topic),
				o->parts[i].partition);
	}
	if (append_parts(c, o, o->group, true, now) < 0)
		o->err = -ENOTCONN;
	if (o->outstanding == 0) {
		respond_offset_delete(c, o, KP_ERR_NONE);
		op_free(o);
	}
}

/* ---- DescribeGroups, ListGroups, DeleteGroups ----------------------------- */

static void
handle_describe(struct ctl_coord *c, struct parked *p, const struct kp_describe_groups_request *req)
{
	struct kp_describe_groups_response r;
	int32_t n = req->groups.count > 0 ? req->groups.count : 0;
	struct kp_describe_groups_response_described_group *gs = calloc(n ? (size_t)n : 1,
		sizeof(*gs));
	struct kp_describe_groups_response_described_group_member **ms = calloc(n ? (size_t)n : 1,
		sizeof(*ms));

	if (gs == NULL || ms == NULL)
		goto out;
	kp_describe_groups_response_init(&r);
	for (int32_t i = 0; i < n; i++) {
		const struct group *g = group_find(c, &req->groups.items[i]);
		struct kp_describe_groups_response_described_group *d = &gs[i];
		bool stable;

		kp_describe_groups_response_described_group_init(d);
		d->group_id = req->groups.items[i];
		d->authorized_operations = req->include_authorized_operations ?
			(1 << 3) | (1 << 6) | (1 << 8) : INT32_MIN; /* READ, DELETE, DESCRIBE */
		if (req->groups.items[i].len <= 0) {
			d->error_code = KP_ERR_INVALID_GROUP_ID;
			d->group_state = kstr("");
			d->protocol_type = kstr("");
			d->protocol_data = kstr("");
			continue;
		}
		if (g == NULL) {
			d->group_state = kstr("Dead");
			d->protocol_type = kstr("");
			d->protocol_data = kstr("");
			continue;
		}
		stable = g->state == CTL_GROUP_STABLE;
		d->group_state = kstr(ctl_group_state_name(g->state));
		d->protocol_type = kstr0(g->protocol_type);
		d->protocol_data = kstr0(stable ? g->protocol : NULL);
		ms[i] = calloc(g->n_members ? g->n_members : 1, sizeof(**ms));
		if (ms[i] == NULL)
			goto out;
		for (uint32_t k = 0; k < g->n_members; k++) {
			const struct member *m = g->members[k];
			struct kp_describe_groups_response_described_group_member *dm = &ms[i][k];

			kp_describe_groups_response_described_group_member_init(dm);
			dm->member_id = kstr(m->id);
			dm->group_instance_id = kstr(m->instance_id);
			dm->client_id = kstr0(m->client_id);
			dm->client_host = kstr0(m->client_host);
			dm->member_metadata.ptr = (const uint8_t *)"";
			dm->member_metadata.len = 0;
			dm->member_assignment.ptr = (const uint8_t *)"";
			dm->member_assignment.len = 0;
			if (stable) {
				for (int32_t q = 0; q < m->n_protos; q++) {
					if (g->protocol != NULL &&
						strcmp(m->protos[q].name, g->protocol) == 0) {
						dm->member_metadata.ptr = m->protos[q].meta;
						dm->member_metadata.len = m->protos[q].meta_len;
					}
				}
				if (m->assignment != NULL) {
					dm->member_assignment.ptr = m->assignment;
					dm->member_assignment.len = m->assignment_len;
				}
			}
		}
		d->members.items = ms[i];
		d->members.count = (int32_t)g->n_members;
	}
	r.groups.items = gs;
	r.groups.count = n;
	respond_msg(c, p, K_DESCRIBE_GROUPS, &r);
out:
	for (int32_t i = 0; ms != NULL && i < n; i++)
		free(ms[i]);
	free(ms);
	free(gs);
}

static bool
filter_has(const struct kp_array_str *f, const char *value)
{
	if (f->count <= 0)
		return true;
	for (int32_t i = 0; i < f->count; i++) {
		if (f->items[i].len == (int32_t)strlen(value) &&
			strncasecmp(f->items[i].ptr, value, (size_t)f->items[i].len) == 0)
			return true;
	}
	return false;
}

static void
handle_list(struct ctl_coord *c, struct parked *p, const struct kp_list_groups_request *req)
{
	struct kp_list_groups_response r;
	struct kp_list_groups_response_listed_group *ls = calloc(c->n_groups ? c->n_groups : 1,
		sizeof(*ls));
	int32_t n = 0;

	if (ls == NULL)
		return;
	kp_list_groups_response_init(&r);
	for (struct group *g = c->groups; g != NULL; g = g->next) {
		const char *state = ctl_group_state_name(g->state);

		if (p->version >= 4 && !filter_has(&req->states_filter, state))
			continue;
		if (p->version >= 5 && !filter_has(&req->types_filter, "classic"))
			continue;
		kp_list_groups_response_listed_group_init(&ls[n]);
		ls[n].group_id = kstr(g->id);
		ls[n].protocol_type = kstr0(g->protocol_type);
		ls[n].group_state = kstr(state);
		ls[n].group_type = kstr("classic");
		n++;
	}
	r.groups.items = ls;
	r.groups.count = n;
	respond_msg(c, p, K_LIST_GROUPS, &r);
	free(ls);
}

static void
respond_delete_groups(struct ctl_coord *c, struct op *o)
{
	struct kp_delete_groups_response r;
	struct kp_delete_groups_response_deletable_group_result *rs = calloc(o->n_groups ?
		o->n_groups : 1, sizeof(*rs));

	if (rs == NULL)
		return;
	kp_delete_groups_response_init(&r);
	for (uint32_t i = 0; i < o->n_groups; i++) {
		kp_delete_groups_response_deletable_group_result_init(&rs[i]);
		rs[i].group_id = kstr0(o->group_ids[i]);
		rs[i].error_code = o->group_errors[i] == KP_ERR_NONE && o->err != 0 ?
			KP_ERR_COORDINATOR_NOT_AVAILABLE : o->group_errors[i];
	}
	r.results.items = rs;
	r.results.count = (int32_t)o->n_groups;
	respond_msg(c, &o->req, K_DELETE_GROUPS, &r);
	free(rs);
}

static void
handle_delete_groups(struct ctl_coord *c, struct parked *p,
	const struct kp_delete_groups_request *req, int64_t now)
{
	int32_t n = req->groups_names.count > 0 ? req->groups_names.count : 0;
	struct op *o = op_new(OP_DELETE, K_DELETE_GROUPS, p, NULL);

	if (o == NULL)
		return;
	o->group_ids = calloc(n ? (size_t)n : 1, sizeof(char *));
	o->group_errors = calloc(n ? (size_t)n : 1, sizeof(int16_t));
	if (o->group_ids == NULL || o->group_errors == NULL) {
		op_free(o);
		return;
	}
	o->n_groups = (uint32_t)n;
	o->outstanding = 1; /* held while appends start, so none completes the op early */
	for (int32_t i = 0; i < n; i++) {
		struct group *g = group_find(c, &req->groups_names.items[i]);

		o->group_ids[i] = dup_str(&req->groups_names.items[i]);
		if (req->groups_names.items[i].len <= 0) {
			o->group_errors[i] = KP_ERR_INVALID_GROUP_ID;
		} else if (g == NULL) {
			o->group_errors[i] = KP_ERR_GROUP_ID_NOT_FOUND;
		} else if (g->n_members > 0 || g->state != CTL_GROUP_EMPTY) {
			o->group_errors[i] = KP_ERR_NON_EMPTY_GROUP;
		} else {
			/* One batch per group: the offsets' and the metadata tombstones. */
			struct op_part *parts = calloc(g->n_offsets ? g->n_offsets : 1,
				sizeof(*parts));
			struct op *hold;

			if (parts == NULL) {
				o->group_errors[i] = KP_ERR_UNKNOWN_SERVER_ERROR;
				continue;
			}
			hold = o;
			for (uint32_t k = 0; k < g->n_offsets; k++) {
				parts[k].topic = g->offsets[k].topic;
				parts[k].partition = g->offsets[k].partition;
			}
			{
				struct op_part *save = o->parts;
				uint32_t save_n = o->n_parts;

				o->parts = parts;
				o->n_parts = g->n_offsets;
				if (append_parts(c, hold, g->id, true, now) < 0 ||
					append_group_metadata(c, g, hold, true, now) < 0)
					o->group_errors[i] = KP_ERR_COORDINATOR_NOT_AVAILABLE;
				o->parts = save;
				o->n_parts = save_n;
			}
			free(parts);
			group_remove(c, g);
		}
	}
	ctl_coord_append_done(c, o, 0, now); /* drop the hold */
}

/* ---- completion, timers ------------------------------------------------- */

void
ctl_coord_append_done(struct ctl_coord *c, void *cookie, int err, int64_t now_ms)
{
	struct op *o = cookie;

	if (err != 0 && o->err == 0)
		o->err = err;
	if (--o->outstanding > 0)
		return;
	switch (o->kind) {
	case OP_FIRE:
		break;
	case OP_COMMIT:
		commit_done(c, o, now_ms);
		break;
	case OP_SYNC:
		sync_done(c, o, now_ms);
		break;
	case OP_DELETE:
		if (o->api_key == K_DELETE_GROUPS)
			respond_delete_groups(c, o);
		else if (o->api_key == K_OFFSET_DELETE)
			respond_offset_delete(c, o, KP_ERR_NONE);
		break;
	}
	op_free(o);
}

/*
 * offsets.retention.minutes, KIP-211's rules as Kafka's GroupMetadata applies
 * them: an Empty group's offsets expire a retention period after the later of
 * their commit and the group becoming empty; a Stable "consumer" group keeps
 * the offsets of the topics its members subscribe to and loses the others a
 * retention period after their commit. Other states keep everything.
 */
static void
expire_offsets(struct ctl_coord *c, int64_t now)
{
	for (struct group *g = c->groups, *next; g != NULL; g = next) {
		bool stable_consumer = g->state == CTL_GROUP_STABLE && g->protocol_type != NULL &&
			strcmp(g->protocol_type, "consumer") == 0;
		struct op *o;
		uint32_t n = 0;

		next = g->next;
		if (g->state != CTL_GROUP_EMPTY && !stable_consumer)
			continue;
		o = op_new(OP_FIRE, 0, NULL, g->id);
		if (o == NULL)
			return;
		o->parts = calloc(g->n_offsets ? g->n_offsets : 1, sizeof(*o->parts));
		if (o->parts == NULL) {
			op_free(o);
			return;
		}
		for (uint32_t i = 0; i < g->n_offsets; i++) {
			const struct offset *of = &g->offsets[i];
			int64_t base = of->commit_ts;

			if (!stable_consumer && g->protocol_type != NULL && g->state_ts > base)
				base = g->state_ts;
			if (base + c->cfg.offsets_retention_ms > now)
				continue;
			if (stable_consumer && group_subscribes(g, &(struct kp_str){of->topic,
				(int32_t)strlen(of->topic)}))
				continue;
			o->parts[n].topic = strdup(of->topic);
			o->parts[n].partition = of->partition;
			if (o->parts[n].topic == NULL)
				break;
			n++;
		}
		o->n_parts = n;
		if (n > 0) {
			(void)append_parts(c, o, g->id, true, now);
			for (uint32_t i = 0; i < n; i++)
				offset_delete(g, o->parts[i].topic, strlen(o->parts[i].topic),
					o->parts[i].partition);
		}
		if (o->outstanding == 0)
			op_free(o);
		if (g->n_offsets == 0 && g->n_members == 0 && g->n_pending == 0 &&
			(n > 0 || g->state_ts + c->cfg.offsets_retention_ms <= now)) {
			/* Nothing left: the group goes too (its metadata tombstone). */
			store_group_fire(c, g, true, now);
			group_remove(c, g);
		}
	}
}

void
ctl_coord_tick(struct ctl_coord *c, int64_t now)
{
	for (struct group *g = c->groups; g != NULL; g = g->next) {
		for (uint32_t i = 0; i < g->n_pending;) {
			if (g->pending[i].deadline_ms <= now) {
				pending_remove(g, i);
				if (g->state == CTL_GROUP_PREPARING)
					maybe_complete_join(c, g, now);
			} else {
				i++;
			}
		}
		{
			uint32_t before = g->n_members;

			for (uint32_t i = 0; i < g->n_members;) {
				struct member *m = g->members[i];

				if (!m->join.active && !m->sync.active && m->deadline_ms <= now)
					member_remove(c, g, i, KP_ERR_UNKNOWN_MEMBER_ID);
				else
					i++;
			}
			if (g->n_members != before)
				after_member_gone(c, g, now);
		}
		if (g->state == CTL_GROUP_COMPLETING && g->rebalance_deadline_ms <= now) {
			/* Kafka's pending-sync timeout: whoever has not synced is out. */
			uint32_t before = g->n_members;

			for (uint32_t i = 0; i < g->n_members;) {
				if (!g->members[i]->sync.active)
					member_remove(c, g, i, KP_ERR_UNKNOWN_MEMBER_ID);
				else
					i++;
			}
			if (g->n_members != before)
				after_member_gone(c, g, now);
		}
		if (g->state == CTL_GROUP_PREPARING && g->rebalance_deadline_ms <= now) {
			if (g->initial_delay) {
				g->initial_delay = false;
				/* Initial delay over: wait for all, or the rest of the rebalance timeout. */
				if (g->initial_cap_ms > now && !all_joined(g))
					g->rebalance_deadline_ms = g->initial_cap_ms;
				else
					complete_join(c, g, now);
			} else {
				complete_join(c, g, now);
			}
		}
	}
	if (now >= c->next_expiry_ms) {
		c->next_expiry_ms = now + c->cfg.retention_check_ms;
		expire_offsets(c, now);
	}
}

/* ---- loading ----------------------------------------------------------- */

static int
load_record(struct ctl_coord *c, const struct kp_record *rec)
{
	struct ctl_rec_key k;
	struct group *g;
	int rc;

	if (rec->key == NULL || ctl_rec_key_decode(rec->key, (size_t)rec->key_len, &k) < 0)
		return 0; /* not ours (KIP-848 records, junk): skipped as Kafka skips unknown keys */
	g = group_find(c, &k.group);
	if (k.kind == CTL_REC_OFFSET) {
		struct ctl_rec_offset v;

		if (rec->value == NULL) {
			if (g != NULL)
				offset_delete(g, k.topic.ptr, (size_t)k.topic.len, k.partition);
			return 1;
		}
		if (ctl_rec_offset_decode(rec->value, (size_t)rec->value_len, &v) < 0)
			return 0;
		if (g == NULL)
			g = group_create(c, &k.group, v.commit_ts);
		if (g == NULL)
			return -ENOMEM;
		rc = offset_set(g, k.topic.ptr, (size_t)k.topic.len, k.partition, v.offset,
			v.leader_epoch, v.metadata.ptr != NULL ? v.metadata.ptr : "",
			v.metadata.len > 0 ? (size_t)v.metadata.len : 0, v.commit_ts);
		return rc < 0 ? rc : 1;
	}
	if (rec->value == NULL) {
		/* Group metadata gone; offsets (if any) stay, as in Kafka. */
		if (g != NULL) {
			for (uint32_t i = g->n_members; i > 0; i--)
				member_free(g->members[i - 1]);
			g->n_members = 0;
			if (g->n_offsets == 0)
				group_remove(c, g);
		}
		return 1;
	}
	{
		static _Alignas(64) uint8_t scratch[1 << 16];
		struct ctl_rec_group v;
		struct kp_arena a;

		kp_arena_init(&a, scratch, sizeof(scratch));
		if (ctl_rec_group_decode(rec->value, (size_t)rec->value_len, &v, &a) < 0)
			return 0;
		if (g == NULL)
			g = group_create(c, &k.group, v.state_ts);
		if (g == NULL)
			return -ENOMEM;
		for (uint32_t i = g->n_members; i > 0; i--)
			member_free(g->members[i - 1]);
		g->n_members = 0;
		free(g->protocol_type);
		free(g->protocol);
		free(g->leader);
		g->protocol_type = v.protocol_type.len > 0 ? dup_str(&v.protocol_type) : NULL;
		g->protocol = dup_str(&v.protocol);
		g->leader = dup_str(&v.leader);
		g->generation = v.generation;
		g->state_ts = v.state_ts;
		for (int32_t i = 0; i < v.n_members; i++) {
			const struct ctl_rec_member *rm = &v.members[i];
			struct member *m = calloc(1, sizeof(*m));

			if (m == NULL)
				return -ENOMEM;
			m->id = dup_str(&rm->member_id);
			m->instance_id = dup_str(&rm->instance_id);
			m->client_id = dup_str(&rm->client_id);
			m->client_host = dup_str(&rm->client_host);
			m->session_timeout_ms = rm->session_timeout_ms;
			m->rebalance_timeout_ms = rm->rebalance_timeout_ms > 0 ?
				rm->rebalance_timeout_ms : rm->session_timeout_ms;
			m->protos = calloc(1, sizeof(*m->protos));
			if (m->protos != NULL && g->protocol != NULL) {
				m->protos[0].name = strdup(g->protocol);
				m->protos[0].meta_len = rm->subscription.len > 0 ? rm->subscription.len : 0;
				m->protos[0].meta = dup_bytes(rm->subscription.ptr, m->protos[0].meta_len);
				m->n_protos = 1;
			}
			m->assignment_len = rm->assignment.len > 0 ? rm->assignment.len : 0;
			m->assignment = dup_bytes(rm->assignment.ptr, m->assignment_len);
			if (m->id == NULL || member_add(g, m) < 0) {
				member_free(m);
				return -ENOMEM;
			}
		}
		g->state = g->n_members > 0 ? CTL_GROUP_STABLE : CTL_GROUP_EMPTY;
	}
	return 1;
}

int
ctl_coord_load_batch(struct ctl_coord *c, const uint8_t *batch, size_t len)
{
	struct kp_batch_header h;
	struct kp_record_iter it;
	struct kp_record rec;
	uint8_t *scratch = NULL;
	int n = 0;
	int rc;

	if (kp_batch_header_parse(batch, len, &h) < 0 || kp_batch_crc_check(batch, &h) < 0)
		return -EBADMSG;
	if (h.attributes & 0x20)
		return 0; /* control batch (transaction markers) */
	if (kp_batch_compression(&h) != KP_COMPRESSION_NONE) {
		scratch = malloc(KP_BATCH_MAX_RECORDS_BYTES);
		if (scratch == NULL)
			return -ENOMEM;
	}
	rc = kp_batch_record_iter_init(NULL, &it, batch, &h, scratch,
		scratch != NULL ? KP_BATCH_MAX_RECORDS_BYTES : 0);
	while (rc == 0 && (rc = kp_record_iter_next(&it, &rec)) == 1) {
		int a = load_record(c, &rec);

		if (a < 0) {
			rc = a;
			break;
		}
		n += a;
		rc = 0;
	}
	free(scratch);
	if (rc < 0)
		return rc == -ENOMEM ? rc : -EBADMSG;
	return n;
}

void
ctl_coord_loaded(struct ctl_coord *c, int64_t now)
{
	for (struct group *g = c->groups; g != NULL; g = g->next) {
		for (uint32_t i = 0; i < g->n_members; i++)
			g->members[i]->deadline_ms = now + g->members[i]->session_timeout_ms;
		if (g->state_ts <= 0)
			g->state_ts = now;
	}
	c->next_expiry_ms = now + c->cfg.retention_check_ms;
}

/* ---- dispatch ------------------------------------------------------------ */

struct ctl_coord *
ctl_coord_create(const struct ctl_coord_cfg *cfg, ctl_coord_respond_fn respond,
	ctl_coord_append_fn append, void *arg)
{
	struct ctl_coord *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->cfg = *cfg;
	if (c->cfg.n_partitions <= 0)
		c->cfg.n_partitions = 1;
	if (c->cfg.max_metadata_bytes <= 0)
		c->cfg.max_metadata_bytes = 4096;
	if (c->cfg.retention_check_ms <= 0)
		c->cfg.retention_check_ms = 600000;
	if (c->cfg.offset_value_version < 1 || c->cfg.offset_value_version > 3 ||
		c->cfg.group_value_version < 0 || c->cfg.group_value_version > 3) {
		c->cfg.group_value_version = 3;
		c->cfg.offset_value_version = 3;
	}
	c->respond = respond;
	c->append = append;
	c->arg = arg;
	return c;
}

void
ctl_coord_set_partitions(struct ctl_coord *c, int32_t n_partitions)
{
	if (n_partitions > 0)
		c->cfg.n_partitions = n_partitions;
}

void
ctl_coord_destroy(struct ctl_coord *c)
{
	if (c == NULL)
		return;
	while (c->groups != NULL) {
		struct group *g = c->groups;

		c->groups = g->next;
		group_free(g);
	}
	free(c);
}

int
ctl_coord_request(struct ctl_coord *c, uint64_t token, const uint8_t *frame, size_t len,
	const char *client_host, int64_t now)
{
	const struct kp_api_desc *d;
	struct kp_request_header h;
	struct kp_reader r;
	struct kp_arena a;
	size_t arena_cap = 65536 + len * 8;
	uint8_t *arena = malloc(arena_cap);
	void *msg = NULL;
	struct parked p;
	char *client_id = NULL;
	int rc;

	if (arena == NULL)
		return -ENOMEM;
	kp_arena_init(&a, arena, arena_cap);
	kp_reader_init(&r, frame, len);
	rc = kp_request_header_read(&h, NULL, &r, &a);
	if (rc < 0)
		goto out;
	d = kp_api_lookup(h.request_api_key);
	rc = -EPROTONOSUPPORT;
	if (d == NULL || !kp_api_version_supported(d, h.request_api_version))
		goto out;
	switch (h.request_api_key) {
	case K_OFFSET_COMMIT:
	case K_OFFSET_FETCH:
	case K_JOIN_GROUP:
	case K_HEARTBEAT:
	case K_LEAVE_GROUP:
	case K_SYNC_GROUP:
	case K_DESCRIBE_GROUPS:
	case K_LIST_GROUPS:
	case K_DELETE_GROUPS:
	case K_OFFSET_DELETE:
		break;
	default:
		goto out;
	}
	msg = kp_arena_alloc(&a, d->request.struct_size, 16);
	rc = -ENOMEM;
	if (msg == NULL)
		goto out;
	rc = d->request.decode(msg, h.request_api_version, &r, &a);
	if (rc < 0)
		goto out;
	p.token = token;
	p.version = h.request_api_version;
	p.corr = h.correlation_id;
	p.active = true;
	client_id = dup_str(&h.client_id);
	switch (h.request_api_key) {
	case K_JOIN_GROUP:
		handle_join(c, &p, msg, client_id != NULL ? client_id : "", client_host, now);
		break;
	case K_SYNC_GROUP:
		handle_sync(c, &p, msg, now);
		break;
	case K_HEARTBEAT:
		handle_heartbeat(c, &p, msg, now);
		break;
	case K_LEAVE_GROUP:
		handle_leave(c, &p, msg, now);
		break;
	case K_OFFSET_COMMIT:
		handle_commit(c, &p, msg, now);
		break;
	case K_OFFSET_FETCH:
		handle_offset_fetch(c, &p, msg, &a);
		break;
	case K_OFFSET_DELETE:
		handle_offset_delete(c, &p, msg, now);
		break;
	case K_DESCRIBE_GROUPS:
		handle_describe(c, &p, msg);
		break;
	case K_LIST_GROUPS:
		handle_list(c, &p, msg);
		break;
	case K_DELETE_GROUPS:
		handle_delete_groups(c, &p, msg, now);
		break;
	}
	rc = 0;
out:
	free(client_id);
	free(arena);
	return rc;
}

/* ---- introspection ------------------------------------------------------- */

enum ctl_group_state
ctl_coord_group_state(const struct ctl_coord *c, const char *group)
{
	const struct group *g = group_find_c(c, group);

	return g != NULL ? g->state : CTL_GROUP_DEAD;
}

int32_t
ctl_coord_group_generation(const struct ctl_coord *c, const char *group)
{
	const struct group *g = group_find_c(c, group);

	return g != NULL ? g->generation : -1;
}

int
ctl_coord_group_members(const struct ctl_coord *c, const char *group)
{
	const struct group *g = group_find_c(c, group);

	return g != NULL ? (int)g->n_members : -1;
}

int64_t
ctl_coord_committed(const struct ctl_coord *c, const char *group, const char *topic,
	int32_t partition)
{
	const struct group *g = group_find_c(c, group);
	const struct offset *o = g != NULL ? offset_find(g, topic, strlen(topic), partition) : NULL;

	return o != NULL ? o->offset : -1;
}

unsigned int
ctl_coord_group_count(const struct ctl_coord *c)
{
	return c->n_groups;
}

int
ctl_coord_offsets_foreach(void *coord,
	void (*fn)(void *arg, const char *group, const char *topic, int32_t partition,
		int64_t committed),
	void *arg)
{
	const struct ctl_coord *c = coord;

	for (const struct group *g = c->groups; g != NULL; g = g->next) {
		for (uint32_t i = 0; i < g->n_offsets; i++)
			fn(arg, g->id, g->offsets[i].topic, g->offsets[i].partition,
				g->offsets[i].offset);
	}
	return 0;
}
