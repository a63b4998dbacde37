/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_coord: the group state machine driven with encoded requests and a fake
 * clock, answers decoded with the generated codecs. The append callback is
 * a fake store: batches queue up until the test completes them (or fails
 * them), and the same batches rebuild a second coordinator, as the
 * __consumer_offsets topic does at start. Also ctl_records: the partition
 * of a group (Kafka's hash) and record round trips.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ctl_coord.h"
#include "ctl_records.h"
#include "kp_api.h"
#include "kp_error.h"

#define MAX_RESP 64
#define MAX_APPEND 64

struct resp {
	uint64_t token;
	uint8_t *buf;
	size_t len;
};

struct append {
	int32_t partition;
	uint8_t *batch;
	size_t len;
	void *cookie;
};

static struct resp g_resp[MAX_RESP];
static int g_n_resp;
static struct append g_app[MAX_APPEND];
static int g_n_app;
static int g_append_fail; /* non-zero: the append callback refuses */
static _Alignas(16) uint8_t g_arena_mem[1 << 20];
static struct kp_arena g_arena;

static void
fake_respond(void *arg, uint64_t token, uint8_t *buf, size_t len)
{
	(void)arg;
	assert_true(g_n_resp < MAX_RESP);
	g_resp[g_n_resp].token = token;
	g_resp[g_n_resp].buf = buf;
	g_resp[g_n_resp].len = len;
	g_n_resp++;
}

static int
fake_append(void *arg, int32_t partition, uint8_t *batch, size_t len, void *cookie)
{
	(void)arg;
	if (g_append_fail) {
		free(batch);
		return -ENOTCONN;
	}
	assert_true(g_n_app < MAX_APPEND);
	g_app[g_n_app].partition = partition;
	g_app[g_n_app].batch = batch;
	g_app[g_n_app].len = len;
	g_app[g_n_app].cookie = cookie;
	g_n_app++;
	return 0;
}

/* Complete every queued append with @err; keep the batches (for replay) when @keep. */
static int
complete_appends(struct ctl_coord *c, int err, int64_t now, struct ctl_coord *replay)
{
	int n = g_n_app;

	g_n_app = 0;
	for (int i = 0; i < n; i++) {
		if (replay != NULL)
			assert_true(ctl_coord_load_batch(replay, g_app[i].batch, g_app[i].len) >= 0);
		ctl_coord_append_done(c, g_app[i].cookie, err, now);
		free(g_app[i].batch);
	}
	return n;
}

static void
reset(void)
{
	for (int i = 0; i < g_n_resp; i++)
		free(g_resp[i].buf);
	g_n_resp = 0;
	for (int i = 0; i < g_n_app; i++)
		free(g_app[i].batch);
	g_n_app = 0;
	g_append_fail = 0;
}

static struct ctl_coord *
coord(void)
{
	struct ctl_coord_cfg cfg = {
		.n_partitions = 50,
		.initial_rebalance_delay_ms = 3000,
		.min_session_timeout_ms = 6000,
		.max_session_timeout_ms = 300000,
		.offsets_retention_ms = 7 * 24 * 3600 * 1000LL,
		.retention_check_ms = 60000,
	};
	struct ctl_coord *c = ctl_coord_create(&cfg, fake_respond, fake_append, NULL);

	assert_non_null(c);
	return c;
}

static struct kp_str
S(const char *s)
{
	struct kp_str r = {.ptr = s, .len = s == NULL ? -1 : (int32_t)strlen(s)};

	return r;
}

/* Encode request @msg (API @key v@ver) and hand it to @c with @token. */
static int
send_req(struct ctl_coord *c, uint64_t token, int16_t key, int16_t ver, const void *msg, int64_t now)
{
	const struct kp_api_desc *d = kp_api_lookup(key);
	struct kp_request_header h;
	uint8_t buf[16384];
	struct kp_writer w;

	kp_request_header_init(&h);
	h.request_api_key = key;
	h.request_api_version = ver;
	h.correlation_id = (int32_t)token;
	h.client_id = S("test-client");
	kp_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(kp_request_header_write(&h, &w), 0);
	assert_int_equal(d->request.encode(msg, ver, &w), 0);
	return ctl_coord_request(c, token, buf, kp_writer_len(&w), "/127.0.0.1", now);
}

/* The decoded response for @token (API @key v@ver), or NULL if none came. */
static void *
resp(uint64_t token, int16_t key, int16_t ver)
{
	const struct kp_api_desc *d = kp_api_lookup(key);

	for (int i = 0; i < g_n_resp; i++) {
		struct kp_response_header rh;
		struct kp_reader r;
		void *m;

		if (g_resp[i].token != token)
			continue;
		kp_arena_init(&g_arena, g_arena_mem, sizeof(g_arena_mem));
		kp_reader_init(&r, g_resp[i].buf, g_resp[i].len);
		assert_int_equal(kp_response_header_decode(&rh, kp_api_response_header_version(d, ver),
			&r, &g_arena), 0);
		assert_int_equal(rh.correlation_id, (int32_t)token);
		m = kp_arena_alloc(&g_arena, d->response.struct_size, 16);
		assert_int_equal(d->response.decode(m, ver, &r, &g_arena), 0);
		g_resp[i].token = UINT64_MAX; /* taken */
		return m;
	}
	return NULL;
}

static struct kp_join_group_request_join_group_request_protocol g_proto = {
	.name = {"range", 5},
	.metadata = {(const uint8_t *)"\0\1\0\0\0\1\0\1t\xff\xff\xff\xff", 13},
};

static int
join(struct ctl_coord *c, uint64_t token, int16_t ver, const char *group, const char *member,
	const char *instance, int32_t session_ms, int64_t now)
{
	struct kp_join_group_request q;

	kp_join_group_request_init(&q);
	q.group_id = S(group);
	q.session_timeout_ms = session_ms;
	q.rebalance_timeout_ms = 10000;
	q.member_id = S(member);
	q.group_instance_id = S(instance);
	q.protocol_type = S("consumer");
	q.protocols.items = &g_proto;
	q.protocols.count = 1;
	return send_req(c, token, 11, ver, &q, now);
}

static int
heartbeat(struct ctl_coord *c, uint64_t token, const char *group, int32_t gen, const char *member,
	int64_t now)
{
	struct kp_heartbeat_request q;

	kp_heartbeat_request_init(&q);
	q.group_id = S(group);
	q.generation_id = gen;
	q.member_id = S(member);
	return send_req(c, token, 12, 3, &q, now);
}

static int16_t
heartbeat_error(struct ctl_coord *c, uint64_t token, const char *group, int32_t gen,
	const char *member, int64_t now)
{
	struct kp_heartbeat_response *r;

	assert_int_equal(heartbeat(c, token, group, gen, member, now), 0);
	r = resp(token, 12, 3);
	assert_non_null(r);
	return r->error_code;
}

static int
sync_req(struct ctl_coord *c, uint64_t token, const char *group, int32_t gen, const char *member,
	const char *const *to, const char *const *assignment, int n, int64_t now)
{
	struct kp_sync_group_request q;
	struct kp_sync_group_request_sync_group_request_assignment a[8];

	kp_sync_group_request_init(&q);
	q.group_id = S(group);
	q.generation_id = gen;
	q.member_id = S(member);
	for (int i = 0; i < n; i++) {
		kp_sync_group_request_sync_group_request_assignment_init(&a[i]);
		a[i].member_id = S(to[i]);
		a[i].assignment.ptr = (const uint8_t *)assignment[i];
		a[i].assignment.len = (int32_t)strlen(assignment[i]);
	}
	q.assignments.items = a;
	q.assignments.count = n;
	return send_req(c, token, 14, 3, &q, now);
}

/* A copy of a kp_str (the response arena is reused by the next resp()). */
static char *
dup(struct kp_str s)
{
	char *p = malloc((size_t)s.len + 1);

	memcpy(p, s.ptr, (size_t)s.len);
	p[s.len] = '\0';
	return p;
}

/* One member joins an empty group (KIP-394 round trip, initial delay); returns its id. */
static char *
join_alone(struct ctl_coord *c, const char *group, int64_t *now)
{
	struct kp_join_group_response *r;
	char *id;

	assert_int_equal(join(c, 1, 7, group, "", NULL, 10000, *now), 0);
	r = resp(1, 11, 7);
	assert_non_null(r);
	assert_int_equal(r->error_code, KP_ERR_MEMBER_ID_REQUIRED);
	assert_true(r->member_id.len > 0);
	assert_memory_equal(r->member_id.ptr, "test-client-", 12);
	id = dup(r->member_id);
	assert_int_equal(join(c, 2, 7, group, id, NULL, 10000, *now), 0);
	assert_null(resp(2, 11, 7)); /* waits for group.initial.rebalance.delay.ms */
	assert_int_equal(ctl_coord_group_state(c, group), CTL_GROUP_PREPARING);
	*now += 2999;
	ctl_coord_tick(c, *now);
	assert_null(resp(2, 11, 7));
	*now += 1;
	ctl_coord_tick(c, *now);
	r = resp(2, 11, 7);
	assert_non_null(r);
	assert_int_equal(r->error_code, 0);
	assert_int_equal(r->generation_id, 1);
	assert_int_equal(r->leader.len, (int32_t)strlen(id));
	assert_int_equal(r->members.count, 1);
	assert_int_equal(r->protocol_name.len, 5);
	assert_int_equal(ctl_coord_group_state(c, group), CTL_GROUP_COMPLETING);
	return id;
}

static void
test_join_sync_single(void **state)
{
	struct ctl_coord *c = coord();
	int64_t now = 1000000;
	const char *to[1];
	const char *as[1] = {"ASSIGN-A"};
	struct kp_sync_group_response *s;
	char *id;

	(void)state;
	reset();
	id = join_alone(c, "g", &now);
	to[0] = id;
	assert_int_equal(sync_req(c, 3, "g", 1, id, to, as, 1, now), 0);
	assert_null(resp(3, 14, 3)); /* waits for the group metadata record */
	assert_int_equal(g_n_app, 1);
	assert_int_equal(g_app[0].partition, ctl_rec_partition_for(&(struct kp_str){"g", 1}, 50));
	complete_appends(c, 0, now, NULL);
	s = resp(3, 14, 3);
	assert_non_null(s);
	assert_int_equal(s->error_code, 0);
	assert_int_equal(s->assignment.len, 8);
	assert_memory_equal(s->assignment.ptr, "ASSIGN-A", 8);
	assert_int_equal(ctl_coord_group_state(c, "g"), CTL_GROUP_STABLE);
	/* Heartbeats: fine; a wrong generation and an unknown member are refused. */
	assert_int_equal(heartbeat_error(c, 4, "g", 1, id, now), 0);
	assert_int_equal(heartbeat_error(c, 5, "g", 0, id, now), KP_ERR_ILLEGAL_GENERATION);
	assert_int_equal(heartbeat_error(c, 6, "g", 1, "nobody", now), KP_ERR_UNKNOWN_MEMBER_ID);
	free(id);
	reset();
	ctl_coord_destroy(c);
}

static void
test_rebalance_two_members(void **state)
{
	struct ctl_coord *c = coord();
	int64_t now = 1000000;
	struct kp_join_group_response *r;
	struct kp_sync_group_response *s;
	const char *to[2];
	const char *as[2] = {"A0", "B1"};
	char *a;
	char *b;

	(void)state;
	reset();
	a = join_alone(c, "g", &now);
	to[0] = a;
	assert_int_equal(sync_req(c, 3, "g", 1, a, to, as, 1, now), 0);
	complete_appends(c, 0, now, NULL);
	assert_non_null(resp(3, 14, 3));
	/* B arrives: the group rebalances; A learns it from its heartbeat. */
	assert_int_equal(join(c, 10, 7, "g", "", NULL, 10000, now), 0);
	r = resp(10, 11, 7);
	b = dup(r->member_id);
	assert_int_equal(join(c, 11, 7, "g", b, NULL, 10000, now), 0);
	assert_int_equal(ctl_coord_group_state(c, "g"), CTL_GROUP_PREPARING);
	assert_int_equal(heartbeat_error(c, 12, "g", 1, a, now), KP_ERR_REBALANCE_IN_PROGRESS);
	assert_null(resp(11, 11, 7));
	/* A rejoins: everyone is in, generation 2 at once (no initial delay now). */
	assert_int_equal(join(c, 13, 7, "g", a, NULL, 10000, now), 0);
	r = resp(13, 11, 7);
	assert_non_null(r);
	assert_int_equal(r->generation_id, 2);
	assert_int_equal(r->members.count, 2); /* A is still the leader */
	assert_int_equal(r->leader.len, (int32_t)strlen(a));
	r = resp(11, 11, 7);
	assert_non_null(r);
	assert_int_equal(r->generation_id, 2);
	assert_int_equal(r->members.count, 0);
	/* B's sync waits for the leader's; the leader's assignment reaches both. */
	assert_int_equal(sync_req(c, 14, "g", 2, b, NULL, NULL, 0, now), 0);
	assert_null(resp(14, 14, 3));
	to[0] = a;
	to[1] = b;
	assert_int_equal(sync_req(c, 15, "g", 2, a, to, as, 2, now), 0);
	assert_null(resp(14, 14, 3));
	complete_appends(c, 0, now, NULL);
	s = resp(14, 14, 3);
	assert_non_null(s);
	assert_int_equal(s->assignment.len, 2);
	assert_memory_equal(s->assignment.ptr, "B1", 2);
	s = resp(15, 14, 3);
	assert_memory_equal(s->assignment.ptr, "A0", 2);
	assert_int_equal(ctl_coord_group_members(c, "g"), 2);
	/* B stops heartbeating: evicted at its session timeout, A must rejoin. */
	for (int i = 1; i <= 11; i++) {
		now += 1000;
		assert_int_equal(heartbeat_error(c, 100 + (uint64_t)i, "g", 2, a, now),
			i <= 10 ? 0 : KP_ERR_REBALANCE_IN_PROGRESS);
		ctl_coord_tick(c, now);
	}
	assert_int_equal(ctl_coord_group_members(c, "g"), 1);
	assert_int_equal(join(c, 200, 7, "g", a, NULL, 10000, now), 0);
	r = resp(200, 11, 7);
	assert_non_null(r);
	assert_int_equal(r->generation_id, 3);
	/* A graceful leave of the last member empties the group (generation bumped). */
	{
		struct kp_leave_group_request q;
		struct kp_leave_group_request_member_identity ids[2];
		struct kp_leave_group_response *l;

		kp_leave_group_request_init(&q);
		q.group_id = S("g");
		kp_leave_group_request_member_identity_init(&ids[0]);
		kp_leave_group_request_member_identity_init(&ids[1]);
		ids[0].member_id = S(a);
		ids[1].member_id = S("ghost");
		q.members.items = ids;
		q.members.count = 2;
		assert_int_equal(send_req(c, 201, 13, 3, &q, now), 0);
		l = resp(201, 13, 3);
		assert_non_null(l);
		assert_int_equal(l->error_code, 0);
		assert_int_equal(l->members.count, 2);
		assert_int_equal(l->members.items[0].error_code, 0);
		assert_int_equal(l->members.items[1].error_code, KP_ERR_UNKNOWN_MEMBER_ID);
	}
	assert_int_equal(ctl_coord_group_state(c, "g"), CTL_GROUP_EMPTY);
	assert_int_equal(ctl_coord_group_generation(c, "g"), 4);
	assert_int_equal(complete_appends(c, 0, now, NULL), 1); /* the empty group's metadata */
	free(a);
	free(b);
	reset();
	ctl_coord_destroy(c);
}

static void
test_static_member(void **state)
{
	struct ctl_coord *c = coord();
	int64_t now = 5000000;
	struct kp_join_group_response *r;
	struct kp_sync_group_response *s;
	const char *to[1];
	const char *as[1] = {"P0P1"};
	char *old;
	char *fresh;

	(void)state;
	reset();
	/* A static member needs no KIP-394 round trip. */
	assert_int_equal(join(c, 1, 7, "gs", "", "inst-1", 10000, now), 0);
	assert_null(resp(1, 11, 7));
	now += 3000;
	ctl_coord_tick(c, now);
	r = resp(1, 11, 7);
	assert_non_null(r);
	assert_int_equal(r->error_code, 0);
	old = dup(r->member_id);
	assert_memory_equal(old, "inst-1-", 7);
	to[0] = old;
	assert_int_equal(sync_req(c, 2, "gs", 1, old, to, as, 1, now), 0);
	complete_appends(c, 0, now, NULL);
	assert_non_null(resp(2, 14, 3));
	/* It restarts: same instance id, no member id. No rebalance, a new id, old one fenced. */
	assert_int_equal(join(c, 3, 7, "gs", "", "inst-1", 10000, now), 0);
	r = resp(3, 11, 7);
	assert_non_null(r);
	assert_int_equal(r->error_code, 0);
	assert_int_equal(r->generation_id, 1);
	fresh = dup(r->member_id);
	assert_string_not_equal(fresh, old);
	assert_int_equal(ctl_coord_group_state(c, "gs"), CTL_GROUP_STABLE);
	complete_appends(c, 0, now, NULL);
	assert_int_equal(sync_req(c, 4, "gs", 1, fresh, NULL, NULL, 0, now), 0);
	s = resp(4, 14, 3);
	assert_non_null(s);
	assert_int_equal(s->error_code, 0);
	assert_memory_equal(s->assignment.ptr, "P0P1", 4);
	{
		struct kp_heartbeat_request q;
		struct kp_heartbeat_response *h;

		kp_heartbeat_request_init(&q);
		q.group_id = S("gs");
		q.generation_id = 1;
		q.member_id = S(old);
		q.group_instance_id = S("inst-1");
		assert_int_equal(send_req(c, 5, 12, 3, &q, now), 0);
		h = resp(5, 12, 3);
		assert_int_equal(h->error_code, KP_ERR_FENCED_INSTANCE_ID);
	}
	free(old);
	free(fresh);
	reset();
	ctl_coord_destroy(c);
}

static int
commit(struct ctl_coord *c, uint64_t token, const char *group, const char *topic, int32_t part,
	int64_t offset, const char *md, int64_t now)
{
	struct kp_offset_commit_request q;
	struct kp_offset_commit_request_offset_commit_request_topic t;
	struct kp_offset_commit_request_offset_commit_request_partition p;

	kp_offset_commit_request_init(&q);
	kp_offset_commit_request_offset_commit_request_topic_init(&t);
	kp_offset_commit_request_offset_commit_request_partition_init(&p);
	q.group_id = S(group);
	q.generation_id_or_member_epoch = -1;
	q.member_id = S("");
	p.partition_index = part;
	p.committed_offset = offset;
	p.committed_metadata = S(md);
	t.name = S(topic);
	t.partitions.items = &p;
	t.partitions.count = 1;
	q.topics.items = &t;
	q.topics.count = 1;
	return send_req(c, token, 8, 8, &q, now);
}

static int16_t
commit_error(uint64_t token)
{
	struct kp_offset_commit_response *r = resp(token, 8, 8);

	assert_non_null(r);
	assert_int_equal(r->topics.count, 1);
	assert_int_equal(r->topics.items[0].partitions.count, 1);
	return r->topics.items[0].partitions.items[0].error_code;
}

static int64_t
fetch_v8(struct ctl_coord *c, uint64_t token, const char *group, const char *topic, int32_t part)
{
	struct kp_offset_fetch_request q;
	struct kp_offset_fetch_request_offset_fetch_request_group g;
	struct kp_offset_fetch_request_offset_fetch_request_topics t;
	struct kp_offset_fetch_response *r;
	int32_t parts[1] = {part};

	kp_offset_fetch_request_init(&q);
	kp_offset_fetch_request_offset_fetch_request_group_init(&g);
	kp_offset_fetch_request_offset_fetch_request_topics_init(&t);
	t.name = S(topic);
	t.partition_indexes.items = parts;
	t.partition_indexes.count = 1;
	g.group_id = S(group);
	g.topics.items = &t;
	g.topics.count = 1;
	q.groups.items = &g;
	q.groups.count = 1;
	assert_int_equal(send_req(c, token, 9, 8, &q, 0), 0);
	r = resp(token, 9, 8);
	assert_non_null(r);
	assert_int_equal(r->groups.count, 1);
	assert_int_equal(r->groups.items[0].error_code, 0);
	assert_int_equal(r->groups.items[0].topics.items[0].partitions.items[0].error_code, 0);
	return r->groups.items[0].topics.items[0].partitions.items[0].committed_offset;
}

static void
test_commit_fetch_reload(void **state)
{
	struct ctl_coord *c = coord();
	struct ctl_coord *again = coord();
	int64_t now = 7000000;

	(void)state;
	reset();
	assert_int_equal(commit(c, 1, "gc", "orders", 3, 42, "m", now), 0);
	assert_null(resp(1, 8, 8)); /* answered once durable */
	assert_int_equal(fetch_v8(c, 2, "gc", "orders", 3), -1);
	assert_int_equal(complete_appends(c, 0, now, again), 1);
	assert_int_equal(commit_error(1), 0);
	assert_int_equal(fetch_v8(c, 3, "gc", "orders", 3), 42);
	assert_int_equal(fetch_v8(c, 4, "gc", "orders", 2), -1);
	/* A failed append: the client sees COORDINATOR_NOT_AVAILABLE, the offset is not kept. */
	assert_int_equal(commit(c, 5, "gc", "orders", 3, 50, "", now), 0);
	complete_appends(c, -EIO, now, NULL);
	assert_int_equal(commit_error(5), KP_ERR_COORDINATOR_NOT_AVAILABLE);
	assert_int_equal(ctl_coord_committed(c, "gc", "orders", 3), 42);
	/* No store at all: the same, at once. */
	g_append_fail = 1;
	assert_int_equal(commit(c, 6, "gc", "orders", 3, 51, "", now), 0);
	assert_int_equal(commit_error(6), KP_ERR_COORDINATOR_NOT_AVAILABLE);
	g_append_fail = 0;
	/* Metadata over 4096 bytes is refused per partition. */
	{
		char *big = malloc(5000);

		memset(big, 'x', 4999);
		big[4999] = '\0';
		assert_int_equal(commit(c, 7, "gc", "orders", 1, 5, big, now), 0);
		assert_int_equal(commit_error(7), KP_ERR_OFFSET_METADATA_TOO_LARGE);
		free(big);
	}
	/* The replayed records rebuilt the committed offset in another coordinator. */
	ctl_coord_loaded(again, now);
	assert_int_equal(fetch_v8(again, 8, "gc", "orders", 3), 42);
	assert_int_equal(ctl_coord_group_state(again, "gc"), CTL_GROUP_EMPTY);
	reset();
	ctl_coord_destroy(c);
	ctl_coord_destroy(again);
}

static void
test_retention_and_delete(void **state)
{
	struct ctl_coord *c = coord();
	struct ctl_coord *replay = coord();
	int64_t now = 9000000;
	int64_t week = 7 * 24 * 3600 * 1000LL;

	(void)state;
	reset();
	assert_int_equal(commit(c, 1, "old", "t", 0, 10, "", now), 0);
	assert_int_equal(commit(c, 2, "keep", "t", 0, 20, "", now + week / 2), 0);
	complete_appends(c, 0, now, replay);
	assert_int_equal(ctl_coord_group_count(c), 2);
	ctl_coord_tick(c, now + week - 1);
	assert_int_equal(ctl_coord_committed(c, "old", "t", 0), 10);
	complete_appends(c, 0, now, replay);
	ctl_coord_tick(c, now + week + 60000);
	/* "old" expired: its offset tombstone and group tombstone are written, it is gone. */
	assert_int_equal(ctl_coord_committed(c, "old", "t", 0), -1);
	assert_int_equal(ctl_coord_group_state(c, "old"), CTL_GROUP_DEAD);
	assert_true(g_n_app >= 1);
	complete_appends(c, 0, now, replay);
	assert_int_equal(ctl_coord_committed(c, "keep", "t", 0), 20);
	/* The topic replayed in order says the same. */
	assert_int_equal(ctl_coord_committed(replay, "old", "t", 0), -1);
	assert_int_equal(ctl_coord_committed(replay, "keep", "t", 0), 20);
	/* DeleteGroups: unknown and deletable groups. */
	{
		struct kp_delete_groups_request q;
		struct kp_str names[2] = {S("keep"), S("nope")};
		struct kp_delete_groups_response *r;

		kp_delete_groups_request_init(&q);
		q.groups_names.items = names;
		q.groups_names.count = 2;
		assert_int_equal(send_req(c, 3, 42, 2, &q, now), 0);
		assert_null(resp(3, 42, 2));
		complete_appends(c, 0, now, replay);
		r = resp(3, 42, 2);
		assert_non_null(r);
		assert_int_equal(r->results.count, 2);
		assert_int_equal(r->results.items[0].error_code, 0);
		assert_int_equal(r->results.items[1].error_code, KP_ERR_GROUP_ID_NOT_FOUND);
	}
	assert_int_equal(ctl_coord_group_count(c), 0);
	assert_int_equal(ctl_coord_committed(replay, "keep", "t", 0), -1);
	reset();
	ctl_coord_destroy(c);
	ctl_coord_destroy(replay);
}

/*
 * KIP-211 for a Stable consumer group: offsets of a topic no member subscribes
 * to expire a retention period after their commit; the subscribed topic's stay.
 */
static void
test_retention_stable_unsubscribed(void **state)
{
	struct ctl_coord_cfg cfg = {
		.n_partitions = 50,
		.initial_rebalance_delay_ms = 3000,
		.min_session_timeout_ms = 6000,
		.max_session_timeout_ms = 300000,
		.offsets_retention_ms = 60000,
		.retention_check_ms = 1000,
	};
	struct ctl_coord *c = ctl_coord_create(&cfg, fake_respond, fake_append, NULL);
	struct ctl_coord *replay = coord();
	/* ConsumerProtocolSubscription v0: topics ["t"], no user data. */
	static const uint8_t sub_v0[] = {0, 0, 0, 0, 0, 1, 0, 1, 't', 0xff, 0xff, 0xff, 0xff};
	const struct kp_bytes saved = g_proto.metadata;
	const char *to[1];
	const char *as[1] = {"A"};
	int64_t now = 5000000;
	int64_t t0 = now;
	uint64_t token = 100;
	char *id;

	(void)state;
	assert_non_null(c);
	reset();
	g_proto.metadata.ptr = sub_v0;
	g_proto.metadata.len = (int32_t)sizeof(sub_v0);
	assert_int_equal(commit(c, 1, "s", "t", 0, 5, "", now), 0);
	assert_int_equal(commit(c, 2, "s", "gone", 0, 6, "", now), 0);
	complete_appends(c, 0, now, replay);
	reset();
	id = join_alone(c, "s", &now);
	to[0] = id;
	assert_int_equal(sync_req(c, 3, "s", 1, id, to, as, 1, now), 0);
	complete_appends(c, 0, now, replay);
	assert_int_equal(ctl_coord_group_state(c, "s"), CTL_GROUP_STABLE);
	reset();
	/* The member heartbeats throughout; the group stays Stable. */
	while (now < t0 + 62000) {
		now += 2000;
		assert_int_equal(heartbeat_error(c, token++, "s", 1, id, now), 0);
		ctl_coord_tick(c, now);
		complete_appends(c, 0, now, replay);
		reset();
		if (now < t0 + 59000)
			assert_int_equal(ctl_coord_committed(c, "s", "gone", 0), 6);
	}
	assert_int_equal(ctl_coord_group_state(c, "s"), CTL_GROUP_STABLE);
	assert_int_equal(ctl_coord_committed(c, "s", "gone", 0), -1);
	assert_int_equal(ctl_coord_committed(c, "s", "t", 0), 5);
	/* The tombstone reached the topic: a reload agrees. */
	assert_int_equal(ctl_coord_committed(replay, "s", "gone", 0), -1);
	assert_int_equal(ctl_coord_committed(replay, "s", "t", 0), 5);
	g_proto.metadata = saved;
	free(id);
	reset();
	ctl_coord_destroy(c);
	ctl_coord_destroy(replay);
}

static void
test_delete_non_empty_and_list(void **state)
{
	struct ctl_coord *c = coord();
	int64_t now = 1000000;
	char *id;

	(void)state;
	reset();
	id = join_alone(c, "busy", &now);
	{
		struct kp_delete_groups_request q;
		struct kp_str names[1] = {S("busy")};
		struct kp_delete_groups_response *r;

		kp_delete_groups_request_init(&q);
		q.groups_names.items = names;
		q.groups_names.count = 1;
		assert_int_equal(send_req(c, 3, 42, 2, &q, now), 0);
		r = resp(3, 42, 2);
		assert_non_null(r);
		assert_int_equal(r->results.items[0].error_code, KP_ERR_NON_EMPTY_GROUP);
	}
	{
		struct kp_list_groups_request q;
		struct kp_list_groups_response *r;
		struct kp_str st[1] = {S("completingrebalance")};

		kp_list_groups_request_init(&q);
		q.states_filter.items = st;
		q.states_filter.count = 1;
		assert_int_equal(send_req(c, 4, 16, 4, &q, now), 0);
		r = resp(4, 16, 4);
		assert_non_null(r);
		assert_int_equal(r->groups.count, 1);
		assert_int_equal(r->groups.items[0].group_state.len, 19);
		st[0] = S("Stable");
		assert_int_equal(send_req(c, 5, 16, 4, &q, now), 0);
		r = resp(5, 16, 4);
		assert_int_equal(r->groups.count, 0);
	}
	{
		struct kp_describe_groups_request q;
		struct kp_str names[2] = {S("busy"), S("nope")};
		struct kp_describe_groups_response *r;

		kp_describe_groups_request_init(&q);
		q.groups.items = names;
		q.groups.count = 2;
		assert_int_equal(send_req(c, 6, 15, 5, &q, now), 0);
		r = resp(6, 15, 5);
		assert_non_null(r);
		assert_int_equal(r->groups.count, 2);
		assert_int_equal(r->groups.items[0].members.count, 1);
		assert_memory_equal(r->groups.items[0].members.items[0].client_host.ptr,
			"/127.0.0.1", 10);
		assert_memory_equal(r->groups.items[1].group_state.ptr, "Dead", 4);
	}
	free(id);
	reset();
	ctl_coord_destroy(c);
}

/* A leader that never sends SyncGroup is removed at the rebalance timeout. */
static void
test_pending_sync_timeout(void **state)
{
	struct ctl_coord *c = coord();
	int64_t now = 1000000;
	struct kp_join_group_response *r;
	char *a;
	char *b;

	(void)state;
	reset();
	assert_int_equal(join(c, 1, 7, "p", "", NULL, 60000, now), 0);
	r = resp(1, 11, 7);
	a = dup(r->member_id);
	assert_int_equal(join(c, 2, 7, "p", "", NULL, 60000, now), 0);
	r = resp(2, 11, 7);
	b = dup(r->member_id);
	assert_int_equal(join(c, 3, 7, "p", a, NULL, 60000, now), 0);
	assert_int_equal(join(c, 4, 7, "p", b, NULL, 60000, now), 0);
	now += 3000;
	ctl_coord_tick(c, now);
	r = resp(3, 11, 7);
	assert_non_null(r);
	assert_int_equal(r->members.count, 2); /* a leads */
	assert_non_null(resp(4, 11, 7));
	/* b syncs and waits; a never does. */
	assert_int_equal(sync_req(c, 5, "p", 1, b, NULL, NULL, 0, now), 0);
	now += 9999;
	ctl_coord_tick(c, now);
	assert_null(resp(5, 14, 3));
	now += 1;
	ctl_coord_tick(c, now);
	/* a is gone; b is told to rejoin and becomes the leader of generation 2. */
	{
		struct kp_sync_group_response *s = resp(5, 14, 3);

		assert_non_null(s);
		assert_int_equal(s->error_code, KP_ERR_REBALANCE_IN_PROGRESS);
	}
	assert_int_equal(ctl_coord_group_members(c, "p"), 1);
	assert_int_equal(join(c, 6, 7, "p", b, NULL, 60000, now), 0);
	r = resp(6, 11, 7);
	assert_non_null(r);
	assert_int_equal(r->generation_id, 2);
	assert_int_equal(r->leader.len, (int32_t)strlen(b));
	free(a);
	free(b);
	reset();
	ctl_coord_destroy(c);
}

static void
test_join_errors(void **state)
{
	struct ctl_coord *c = coord();
	struct kp_join_group_response *r;

	(void)state;
	reset();
	assert_int_equal(join(c, 1, 5, "", "", NULL, 10000, 0), 0);
	r = resp(1, 11, 5);
	assert_int_equal(r->error_code, KP_ERR_INVALID_GROUP_ID);
	assert_int_equal(join(c, 2, 5, "g", "", NULL, 100, 0), 0);
	r = resp(2, 11, 5);
	assert_int_equal(r->error_code, KP_ERR_INVALID_SESSION_TIMEOUT);
	assert_int_equal(join(c, 3, 5, "g", "who", NULL, 10000, 0), 0);
	r = resp(3, 11, 5);
	assert_int_equal(r->error_code, KP_ERR_UNKNOWN_MEMBER_ID);
	/* v3 has no MEMBER_ID_REQUIRED: the member is in at once. */
	assert_int_equal(join(c, 4, 3, "g3", "", NULL, 10000, 0), 0);
	assert_null(resp(4, 11, 3));
	ctl_coord_tick(c, 3000);
	r = resp(4, 11, 3);
	assert_non_null(r);
	assert_int_equal(r->error_code, 0);
	assert_int_equal(r->generation_id, 1);
	/* A malformed request is not answered: the caller handles it. */
	{
		uint8_t junk[8] = {0, 11, 0, 5, 0, 0, 0, 9};

		assert_true(ctl_coord_request(c, 9, junk, sizeof(junk), "/x", 0) < 0);
	}
	reset();
	ctl_coord_destroy(c);
}

static void
test_records(void **state)
{
	struct kp_str g1 = S("my-group");
	struct kp_str g2 = S("console-consumer-12345");
	struct kp_str g3 = S("g\xc3\xa9\xf0\x9f\x98\x80"); /* "gé😀": a surrogate pair in UTF-16 */
	uint8_t buf[256];
	struct kp_writer w;
	struct ctl_rec_key k;
	struct ctl_rec_offset v;
	struct ctl_rec_offset out;

	(void)state;
	/* Values from Java: Utils.abs("my-group".hashCode()) % 50 and so on. */
	assert_int_equal(ctl_rec_partition_for(&g1, 50), 36);
	assert_int_equal(ctl_rec_partition_for(&g2, 50), 6);
	assert_int_equal(ctl_rec_partition_for(&g3, 50), 35);
	kp_writer_init(&w, buf, sizeof(buf));
	ctl_rec_offset_key_encode(&w, &g1, &g2, 7);
	assert_int_equal(ctl_rec_key_decode(buf, kp_writer_len(&w), &k), 0);
	assert_int_equal(k.kind, CTL_REC_OFFSET);
	assert_int_equal(k.partition, 7);
	assert_int_equal(k.topic.len, g2.len);
	/* A key of a version this build does not read (KIP-848 records) is skipped. */
	buf[1] = 9;
	assert_int_equal(ctl_rec_key_decode(buf, kp_writer_len(&w), &k), -EPROTONOSUPPORT);
	assert_int_equal(ctl_rec_key_decode(buf, 3, &k), -EPROTONOSUPPORT);
	buf[1] = 1;
	assert_int_equal(ctl_rec_key_decode(buf, 5, &k), -EPROTO);
	v.offset = 1234;
	v.leader_epoch = 3;
	v.metadata = S("meta");
	v.commit_ts = 99;
	v.expire_ts = -1;
	kp_writer_init(&w, buf, sizeof(buf));
	ctl_rec_offset_encode(&w, &v, 3);
	assert_int_equal(ctl_rec_offset_decode(buf, kp_writer_len(&w), &out), 0);
	assert_int_equal(out.offset, 1234);
	assert_int_equal(out.leader_epoch, 3);
	assert_int_equal(out.commit_ts, 99);
	assert_int_equal(out.metadata.len, 4);
	/* Version 1 (with expireTimestamp), as Kafka 2.0 wrote it. */
	{
		static const uint8_t v1[] = {0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,
			0, 0, 0, 0, 0, 0, 0, 8};

		assert_int_equal(ctl_rec_offset_decode(v1, sizeof(v1), &out), 0);
		assert_int_equal(out.offset, 5);
		assert_int_equal(out.leader_epoch, -1);
		assert_int_equal(out.commit_ts, 7);
		assert_int_equal(out.expire_ts, 8);
		assert_int_equal(ctl_rec_offset_decode(v1, sizeof(v1) - 1, &out), -EPROTO);
		/* ... and written back the same. */
		assert_int_equal(ctl_rec_offset_decode(v1, sizeof(v1), &out), 0);
		kp_writer_init(&w, buf, sizeof(buf));
		ctl_rec_offset_encode(&w, &out, 1);
		assert_int_equal(kp_writer_len(&w), sizeof(v1));
		assert_memory_equal(buf, v1, sizeof(v1));
	}
}

/*
 * Older value versions (control.inter.broker.protocol.version): each
 * GroupMetadataValue version writes its own fields, its size is what it
 * writes, it decodes back; the protocol versions map as Kafka maps them.
 */
static void
test_record_versions(void **state)
{
	struct ctl_rec_member m = {
		.member_id = S("m-1"), .instance_id = S("static-1"), .client_id = S("c"),
		.client_host = S("/127.0.0.1"), .rebalance_timeout_ms = 60000,
		.session_timeout_ms = 10000,
		.subscription = {.ptr = (const uint8_t *)"sub", .len = 3},
		.assignment = {.ptr = (const uint8_t *)"asg", .len = 3},
	};
	struct ctl_rec_group g = {
		.protocol_type = S("consumer"), .generation = 4, .protocol = S("range"),
		.leader = S("m-1"), .state_ts = 1234, .members = &m, .n_members = 1,
	};
	struct ctl_rec_group out;
	uint8_t mem[4096];
	uint8_t buf[512];
	struct kp_writer w;
	struct kp_arena a;
	int16_t gv = -1;
	int16_t ov = -1;
	size_t prev = 0;

	(void)state;
	for (int16_t v = 0; v <= 3; v++) {
		kp_writer_init(&w, buf, sizeof(buf));
		ctl_rec_group_encode(&w, &g, v);
		assert_int_equal(w.err, 0);
		assert_int_equal(kp_writer_len(&w), ctl_rec_group_size(&g, v));
		assert_true(kp_writer_len(&w) > prev); /* each version adds a field */
		prev = kp_writer_len(&w);
		assert_int_equal(buf[1], v);
		kp_arena_init(&a, mem, sizeof(mem));
		assert_int_equal(ctl_rec_group_decode(buf, kp_writer_len(&w), &out, &a), 0);
		assert_int_equal(out.n_members, 1);
		assert_int_equal(out.members[0].client_host.len, 10);
		assert_int_equal(out.members[0].session_timeout_ms, 10000);
		assert_int_equal(out.members[0].rebalance_timeout_ms, v >= 1 ? 60000 : -1);
		assert_int_equal(out.members[0].instance_id.len, v >= 3 ? 8 : -1);
		assert_int_equal(out.state_ts, v >= 2 ? 1234 : -1);
		assert_int_equal(out.members[0].assignment.len, 3);
	}
	kp_writer_init(&w, buf, sizeof(buf));
	ctl_rec_group_encode(&w, &g, 4);
	assert_int_equal(w.err, -EINVAL);

	assert_int_equal(ctl_rec_versions_for("3.7", &gv, &ov), 0);
	assert_int_equal(gv, 3);
	assert_int_equal(ov, 3);
	assert_int_equal(ctl_rec_versions_for("2.3-IV0", &gv, &ov), 0);
	assert_int_equal(gv, 3);
	assert_int_equal(ctl_rec_versions_for("2.2", &gv, &ov), 0);
	assert_int_equal(gv, 2);
	assert_int_equal(ov, 3);
	assert_int_equal(ctl_rec_versions_for("2.1-IV0", &gv, &ov), 0);
	assert_int_equal(gv, 2);
	assert_int_equal(ov, 2);
	assert_int_equal(ctl_rec_versions_for("2.0", &gv, &ov), 0);
	assert_int_equal(gv, 1);
	assert_int_equal(ov, 1);
	assert_int_equal(ctl_rec_versions_for("0.10.1-IV0", &gv, &ov), 0);
	assert_int_equal(gv, 1);
	assert_int_equal(ctl_rec_versions_for("0.10.0", &gv, &ov), 0);
	assert_int_equal(gv, 0);
	gv = ov = 9;
	assert_int_equal(ctl_rec_versions_for("2", &gv, &ov), -EINVAL);
	assert_int_equal(ctl_rec_versions_for("2.2-X", &gv, &ov), -EINVAL);
	assert_int_equal(ctl_rec_versions_for("abc", &gv, &ov), -EINVAL);
	assert_int_equal(ctl_rec_versions_for("2.2 ", &gv, &ov), -EINVAL);
	assert_int_equal(gv, 9);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_join_sync_single),
		cmocka_unit_test(test_rebalance_two_members),
		cmocka_unit_test(test_static_member),
		cmocka_unit_test(test_commit_fetch_reload),
		cmocka_unit_test(test_retention_and_delete),
		cmocka_unit_test(test_retention_stable_unsubscribed),
		cmocka_unit_test(test_delete_non_empty_and_list),
		cmocka_unit_test(test_pending_sync_timeout),
		cmocka_unit_test(test_join_errors),
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_record_versions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
