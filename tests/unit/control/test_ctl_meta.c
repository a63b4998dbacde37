/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_meta: metadata record round trips (every type), malformed and
 * truncated records refused, the state machine's apply rules (duplicates,
 * stale partition additions, config set/delete/replace, deletes, broker
 * re-registration), snapshot -> restore giving the same state, restore
 * leaving the state alone on a bad batch.
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

#include "ctl_meta.h"

static void
make_id(uint8_t id[16], uint8_t seed)
{
	for (int i = 0; i < 16; i++)
		id[i] = (uint8_t)(seed * 17 + i);
}

static struct ctl_meta_str
S(const char *s)
{
	return (struct ctl_meta_str){.ptr = s, .len = (int32_t)strlen(s)};
}

/* A TOPIC record for @name with @n partitions led by @node and @configs. */
static void
enc_topic(struct ctl_meta_buf *b, uint8_t seed, const char *name, int32_t n, int32_t node,
	const char *configs)
{
	struct ctl_meta_topic t;

	memset(&t, 0, sizeof(t));
	make_id(t.id, seed);
	snprintf(t.name, sizeof(t.name), "%s", name);
	t.n_parts = n;
	t.parts = calloc((size_t)n, sizeof(*t.parts));
	assert_non_null(t.parts);
	for (int32_t i = 0; i < n; i++) {
		t.parts[i].leader = node;
		t.parts[i].n_replicas = 2;
		t.parts[i].replicas[0] = node;
		t.parts[i].replicas[1] = node + 1 + i;
	}
	snprintf(t.configs, sizeof(t.configs), "%s", configs);
	b->len = 0;
	ctl_meta_enc_topic(b, &t);
	assert_int_equal(b->err, 0);
	free(t.parts);
}

static int
apply_buf(struct ctl_meta_state *s, struct ctl_meta_buf *b)
{
	return ctl_meta_apply(s, b->p, b->len);
}

static void
test_topic_round_trip(void **state)
{
	struct ctl_meta_buf b = {0};
	struct ctl_meta_rec r;
	uint8_t id[16];

	(void)state;
	enc_topic(&b, 1, "orders", 3, 7, "cleanup.policy=compact\nsegment.bytes=1048576");
	assert_int_equal(ctl_meta_rec_decode(b.p, b.len, &r), 0);
	make_id(id, 1);
	assert_int_equal(r.type, CTL_META_TOPIC);
	assert_memory_equal(r.id, id, 16);
	assert_int_equal(r.name.len, 6);
	assert_memory_equal(r.name.ptr, "orders", 6);
	assert_int_equal(r.n_parts, 3);
	assert_int_equal(r.parts[2].leader, 7);
	assert_int_equal(r.parts[2].n_replicas, 2);
	assert_int_equal(r.parts[2].replicas[1], 10);
	assert_int_equal(r.n_ops, 2);
	assert_int_equal(r.ops[1].key.len, 13);
	assert_memory_equal(r.ops[1].value.ptr, "1048576", 7);
	ctl_meta_rec_release(&r);
	/* Every shorter prefix is malformed, never a read past the end. */
	for (size_t n = 0; n < b.len; n++) {
		uint8_t *copy = malloc(n ? n : 1);

		memcpy(copy, b.p, n);
		assert_int_equal(ctl_meta_rec_decode(copy, n, &r), -EPROTO);
		free(copy);
	}
	ctl_meta_buf_free(&b);
}

static void
test_other_records_round_trip(void **state)
{
	struct ctl_meta_buf b = {0};
	struct ctl_meta_rec r;
	struct ctl_meta_part parts[2] = {{.leader = 3, .n_replicas = 1, .replicas = {3}},
		{.leader = 4, .n_replicas = 0}};
	struct ctl_meta_cfg_op ops[2] = {
		{.op = CTL_META_OP_SET, .key = S("retention.ms"), .value = S("1000")},
		{.op = CTL_META_OP_DELETE, .key = S("segment.ms"), .value = {NULL, -1}},
	};
	struct ctl_meta_broker br;
	uint8_t id[16];

	(void)state;
	make_id(id, 9);
	ctl_meta_enc_partitions(&b, id, 5, 2, parts);
	assert_int_equal(ctl_meta_rec_decode(b.p, b.len, &r), 0);
	assert_int_equal(r.type, CTL_META_PARTITIONS);
	assert_int_equal(r.first, 5);
	assert_int_equal(r.n_parts, 2);
	assert_int_equal(r.parts[0].replicas[0], 3);
	assert_int_equal(r.parts[1].leader, 4);
	ctl_meta_rec_release(&r);

	b.len = 0;
	ctl_meta_enc_configs(&b, id, true, ops, 2);
	assert_int_equal(ctl_meta_rec_decode(b.p, b.len, &r), 0);
	assert_int_equal(r.type, CTL_META_CONFIGS);
	assert_true(r.replace);
	assert_int_equal(r.n_ops, 2);
	assert_int_equal(r.ops[1].op, CTL_META_OP_DELETE);
	assert_int_equal(r.ops[1].value.len, -1);
	ctl_meta_rec_release(&r);

	b.len = 0;
	ctl_meta_enc_topic_delete(&b, id, "gone");
	assert_int_equal(ctl_meta_rec_decode(b.p, b.len, &r), 0);
	assert_int_equal(r.type, CTL_META_TOPIC_DELETE);
	assert_memory_equal(r.id, id, 16);
	assert_memory_equal(r.name.ptr, "gone", 4);
	ctl_meta_rec_release(&r);

	memset(&br, 0, sizeof(br));
	br.node_id = 42;
	br.n_listeners = 2;
	strcpy(br.listeners[0].name, "PLAINTEXT");
	strcpy(br.listeners[0].host, "127.0.0.1");
	br.listeners[0].port = 9092;
	strcpy(br.listeners[1].name, "INTERNAL");
	strcpy(br.listeners[1].host, "::1");
	br.listeners[1].port = 19093;
	b.len = 0;
	ctl_meta_enc_broker(&b, &br);
	assert_int_equal(ctl_meta_rec_decode(b.p, b.len, &r), 0);
	assert_int_equal(r.type, CTL_META_BROKER);
	assert_int_equal(r.broker.node_id, 42);
	assert_false(r.broker.has_rack);
	assert_int_equal(r.broker.n_listeners, 2);
	assert_string_equal(r.broker.listeners[1].host, "::1");
	assert_int_equal(r.broker.listeners[1].port, 19093);
	ctl_meta_rec_release(&r);

	b.len = 0;
	ctl_meta_enc_imported(&b);
	assert_int_equal(ctl_meta_rec_decode(b.p, b.len, &r), 0);
	assert_int_equal(r.type, CTL_META_IMPORTED);
	ctl_meta_rec_release(&r);

	/* Another format version, an unknown type. */
	b.p[0] = 2;
	assert_int_equal(ctl_meta_rec_decode(b.p, b.len, &r), -EPROTONOSUPPORT);
	b.p[0] = CTL_META_VERSION;
	b.p[1] = 99;
	assert_int_equal(ctl_meta_rec_decode(b.p, b.len, &r), -EPROTONOSUPPORT);
	ctl_meta_buf_free(&b);
}

static void
test_lying_counts(void **state)
{
	/* A TOPIC record claiming 1024 partitions with no bytes behind them. */
	uint8_t rec[2 + 16 + 2 + 1 + 4] = {CTL_META_VERSION, CTL_META_TOPIC};
	struct ctl_meta_rec r;

	(void)state;
	rec[19] = 1;
	rec[20] = 'x';
	rec[23] = 0x04; /* 0x00000400 */
	assert_int_equal(ctl_meta_rec_decode(rec, sizeof(rec), &r), -EPROTO);
	rec[21] = 0x80; /* negative */
	assert_int_equal(ctl_meta_rec_decode(rec, sizeof(rec), &r), -EPROTO);
}

/*
 * The dataplane's partition limit in one record: a topic of
 * CTL_META_MAX_PARTITIONS partitions with CTL_META_MAX_REPLICAS replicas each
 * (the largest TOPIC record) encodes within CTL_META_REC_MAX, decodes and
 * applies; one partition more is refused on both paths.
 */
static void
test_partition_limit(void **state)
{
	struct ctl_meta_state *s = ctl_meta_state_create();
	struct ctl_meta_buf b = {0};
	struct ctl_meta_topic t;
	struct ctl_meta_topic *got;
	struct ctl_meta_part one = {.leader = 1, .n_replicas = 1, .replicas = {1}};
	struct ctl_meta_rec r;
	char cfg[CTL_META_CONFIGS_MAX];
	size_t used = 0;

	(void)state;
	assert_non_null(s);
	assert_int_equal(CTL_META_MAX_PARTITIONS, 16384);
	memset(&t, 0, sizeof(t));
	make_id(t.id, 9);
	memset(t.name, 'w', CTL_META_NAME_MAX);
	t.n_parts = CTL_META_MAX_PARTITIONS;
	t.parts = calloc((size_t)t.n_parts, sizeof(*t.parts));
	assert_non_null(t.parts);
	for (int32_t i = 0; i < t.n_parts; i++) {
		t.parts[i].leader = i;
		t.parts[i].n_replicas = CTL_META_MAX_REPLICAS;
		for (int k = 0; k < CTL_META_MAX_REPLICAS; k++)
			t.parts[i].replicas[k] = i + k;
	}
	/* Configs filling the text limit with the shortest lines (the most bytes encoded). */
	for (int n = 0; used + 5 < sizeof(cfg); n++) {
		used += (size_t)snprintf(cfg + used, sizeof(cfg) - used, "%s%c%c=", used ? "\n" : "",
			'a' + n % 26, 'a' + n / 26);
	}
	snprintf(t.configs, sizeof(t.configs), "%s", cfg);
	ctl_meta_enc_topic(&b, &t);
	assert_int_equal(b.err, 0);
	assert_true(b.len <= CTL_META_REC_MAX);
	assert_true(b.len > (size_t)CTL_META_MAX_PARTITIONS * (5 + 4 * CTL_META_MAX_REPLICAS));
	assert_int_equal(ctl_meta_apply(s, b.p, b.len), 0);
	got = ctl_meta_topic_by_id(s, t.id);
	assert_non_null(got);
	assert_int_equal(got->n_parts, CTL_META_MAX_PARTITIONS);
	assert_int_equal(got->parts[16383].leader, 16383);
	assert_int_equal(got->parts[16383].replicas[15], 16383 + 15);
	/* One more through a PARTITIONS record: over the limit. */
	b.len = 0;
	ctl_meta_enc_partitions(&b, t.id, CTL_META_MAX_PARTITIONS, 1, &one);
	assert_int_equal(apply_buf(s, &b), -EDOM);
	assert_int_equal(got->n_parts, CTL_META_MAX_PARTITIONS);
	/* A TOPIC record of limit + 1 partitions does not decode. */
	t.parts = realloc(t.parts, sizeof(*t.parts) * (CTL_META_MAX_PARTITIONS + 1));
	assert_non_null(t.parts);
	t.parts[CTL_META_MAX_PARTITIONS] = one;
	t.n_parts = CTL_META_MAX_PARTITIONS + 1;
	make_id(t.id, 10);
	t.name[0] = 'v';
	b.len = 0;
	ctl_meta_enc_topic(&b, &t);
	assert_int_equal(b.err, 0);
	assert_int_equal(ctl_meta_rec_decode(b.p, b.len, &r), -EPROTO);
	assert_int_equal(apply_buf(s, &b), -EPROTO);
	assert_int_equal(s->n_topics, 1);
	free(t.parts);
	ctl_meta_buf_free(&b);
	ctl_meta_state_destroy(s);
}

/*
 * Deleted topic ids: remembered by TOPIC_DELETE, the newest
 * CTL_META_MAX_DELETED kept, carried by a snapshot (a DELETED record) and
 * restored in order; a DELETED record that lies about its count is refused.
 */
static void
test_deleted_ids(void **state)
{
	struct ctl_meta_state *s = ctl_meta_state_create();
	struct ctl_meta_state *r = ctl_meta_state_create();
	struct ctl_meta_buf b = {0};
	struct ctl_meta_buf snap = {0};
	struct ctl_meta_rec rec;
	uint8_t id[16];
	uint8_t first[16];
	int n = CTL_META_MAX_DELETED + 3;

	(void)state;
	assert_non_null(s);
	assert_non_null(r);
	for (int i = 0; i < n; i++) {
		char name[16];

		snprintf(name, sizeof(name), "d%d", i);
		enc_topic(&b, 1, name, 1, 1, "");
		memset(b.p + 2, 0, 16);
		memcpy(b.p + 2, &i, sizeof(i)); /* a distinct id per topic */
		memcpy(id, b.p + 2, 16);
		if (i == 0)
			memcpy(first, id, 16);
		assert_int_equal(apply_buf(s, &b), 0);
		assert_false(ctl_meta_topic_deleted(s, id));
		b.len = 0;
		ctl_meta_enc_topic_delete(&b, id, name);
		assert_int_equal(apply_buf(s, &b), 0);
		assert_true(ctl_meta_topic_deleted(s, id));
	}
	assert_int_equal(s->n_deleted, CTL_META_MAX_DELETED);
	assert_false(ctl_meta_topic_deleted(s, first)); /* the oldest forgotten */
	assert_int_equal(ctl_meta_snapshot(s, &snap), 0);
	assert_int_equal(ctl_meta_restore(r, snap.p, snap.len), 0);
	assert_int_equal(r->n_deleted, CTL_META_MAX_DELETED);
	assert_true(ctl_meta_topic_deleted(r, id));
	assert_false(ctl_meta_topic_deleted(r, first));
	/* Restored oldest first: the next deletion pushes out the same id in both. */
	memcpy(id, s->deleted[s->deleted_at], 16);
	assert_true(ctl_meta_topic_deleted(r, id));
	enc_topic(&b, 200, "x", 1, 1, "");
	assert_int_equal(apply_buf(s, &b), 0);
	assert_int_equal(apply_buf(r, &b), 0);
	b.len = 0;
	make_id(first, 200);
	ctl_meta_enc_topic_delete(&b, first, "x");
	assert_int_equal(apply_buf(s, &b), 0);
	assert_int_equal(apply_buf(r, &b), 0);
	assert_false(ctl_meta_topic_deleted(s, id));
	assert_false(ctl_meta_topic_deleted(r, id));
	/* A DELETED record whose count is beyond its bytes or the limit. */
	b.len = 0;
	ctl_meta_enc_deleted(&b, s);
	assert_int_equal(ctl_meta_rec_decode(b.p, b.len - 1, &rec), -EPROTO);
	b.p[2] = 0x7f;
	assert_int_equal(ctl_meta_rec_decode(b.p, b.len, &rec), -EPROTO);
	ctl_meta_buf_free(&b);
	ctl_meta_buf_free(&snap);
	ctl_meta_state_destroy(s);
	ctl_meta_state_destroy(r);
}

static void
test_apply_rules(void **state)
{
	struct ctl_meta_state *s = ctl_meta_state_create();
	struct ctl_meta_buf b = {0};
	struct ctl_meta_part np[2] = {{.leader = 1, .n_replicas = 1, .replicas = {1}},
		{.leader = 1, .n_replicas = 1, .replicas = {1}}};
	struct ctl_meta_cfg_op set[2] = {
		{.op = CTL_META_OP_SET, .key = S("retention.ms"), .value = S("60000")},
		{.op = CTL_META_OP_SET, .key = S("cleanup.policy"), .value = S("delete")},
	};
	struct ctl_meta_cfg_op del = {.op = CTL_META_OP_DELETE, .key = S("cleanup.policy")};
	struct ctl_meta_cfg_op bad = {.op = CTL_META_OP_SET, .key = S("a=b"), .value = S("1")};
	struct ctl_meta_topic *t;
	uint8_t id[16];
	char v[64];

	(void)state;
	assert_non_null(s);
	enc_topic(&b, 1, "a", 2, 1, "segment.bytes=1048576");
	assert_int_equal(apply_buf(s, &b), 0);
	assert_int_equal(apply_buf(s, &b), -EEXIST);       /* same id */
	enc_topic(&b, 2, "a", 1, 1, "");
	assert_int_equal(apply_buf(s, &b), -EEXIST);       /* same name */
	enc_topic(&b, 3, "b", 0, 1, "");
	assert_int_equal(apply_buf(s, &b), -EDOM);         /* no partitions */
	enc_topic(&b, 3, "b", 1, 1, "");
	assert_int_equal(apply_buf(s, &b), 0);
	assert_int_equal(s->n_topics, 2);

	make_id(id, 1);
	b.len = 0;
	ctl_meta_enc_partitions(&b, id, 2, 2, np);
	assert_int_equal(apply_buf(s, &b), 0);
	assert_int_equal(apply_buf(s, &b), -ESTALE);       /* validated against the old count */
	t = ctl_meta_topic_find(s, "a", 1);
	assert_non_null(t);
	assert_int_equal(t->n_parts, 4);
	make_id(id, 77);
	b.len = 0;
	ctl_meta_enc_partitions(&b, id, 0, 1, np);
	assert_int_equal(apply_buf(s, &b), -ENOENT);

	/* Incremental set keeps the others, sorted; delete removes; replace replaces. */
	make_id(id, 1);
	b.len = 0;
	ctl_meta_enc_configs(&b, id, false, set, 2);
	assert_int_equal(apply_buf(s, &b), 0);
	assert_string_equal(t->configs,
		"cleanup.policy=delete\nretention.ms=60000\nsegment.bytes=1048576");
	b.len = 0;
	ctl_meta_enc_configs(&b, id, false, &del, 1);
	assert_int_equal(apply_buf(s, &b), 0);
	assert_string_equal(t->configs, "retention.ms=60000\nsegment.bytes=1048576");
	assert_true(ctl_meta_config_get(t->configs, "segment.bytes", v, sizeof(v)));
	assert_string_equal(v, "1048576");
	assert_false(ctl_meta_config_get(t->configs, "segment.ms", v, sizeof(v)));
	b.len = 0;
	ctl_meta_enc_configs(&b, id, true, &set[1], 1);
	assert_int_equal(apply_buf(s, &b), 0);
	assert_string_equal(t->configs, "cleanup.policy=delete");
	b.len = 0;
	ctl_meta_enc_configs(&b, id, false, &bad, 1);
	assert_int_equal(apply_buf(s, &b), -EBADR);
	assert_string_equal(t->configs, "cleanup.policy=delete");

	/* Delete by id; the name can be created again with another id. */
	b.len = 0;
	ctl_meta_enc_topic_delete(&b, id, "a");
	assert_int_equal(apply_buf(s, &b), 0);
	assert_int_equal(apply_buf(s, &b), -ENOENT);
	assert_null(ctl_meta_topic_find(s, "a", 1));
	assert_int_equal(s->n_topics, 1);
	enc_topic(&b, 4, "a", 1, 1, "");
	assert_int_equal(apply_buf(s, &b), 0);
	assert_string_equal(s->topics[1]->name, "a");
	ctl_meta_state_destroy(s);
	ctl_meta_buf_free(&b);
}

static void
test_brokers(void **state)
{
	struct ctl_meta_state *s = ctl_meta_state_create();
	struct ctl_meta_buf b = {0};
	struct ctl_meta_broker br;

	(void)state;
	memset(&br, 0, sizeof(br));
	br.node_id = 1;
	br.n_listeners = 1;
	strcpy(br.listeners[0].name, "PLAINTEXT");
	strcpy(br.listeners[0].host, "127.0.0.1");
	br.listeners[0].port = 9092;
	ctl_meta_enc_broker(&b, &br);
	assert_int_equal(apply_buf(s, &b), 0);
	br.node_id = 2;
	br.has_rack = true;
	strcpy(br.rack, "r1");
	b.len = 0;
	ctl_meta_enc_broker(&b, &br);
	assert_int_equal(apply_buf(s, &b), 0);
	br.node_id = 1;
	br.listeners[0].port = 9093;
	b.len = 0;
	ctl_meta_enc_broker(&b, &br);
	assert_int_equal(apply_buf(s, &b), 0); /* re-registration replaces */
	assert_int_equal(s->n_brokers, 2);
	assert_int_equal(ctl_meta_broker_find(s, 1)->listeners[0].port, 9093);
	assert_string_equal(ctl_meta_broker_find(s, 2)->rack, "r1");
	assert_null(ctl_meta_broker_find(s, 3));
	ctl_meta_state_destroy(s);
	ctl_meta_buf_free(&b);
}

static void
assert_same_state(const struct ctl_meta_state *a, const struct ctl_meta_state *b)
{
	assert_int_equal(a->n_topics, b->n_topics);
	assert_int_equal(a->n_brokers, b->n_brokers);
	assert_int_equal(a->imported, b->imported);
	for (uint32_t i = 0; i < a->n_topics; i++) {
		const struct ctl_meta_topic *x = a->topics[i];
		const struct ctl_meta_topic *y = b->topics[i];

		assert_string_equal(x->name, y->name);
		assert_memory_equal(x->id, y->id, 16);
		assert_int_equal(x->n_parts, y->n_parts);
		for (int32_t p = 0; p < x->n_parts; p++) {
			assert_int_equal(x->parts[p].leader, y->parts[p].leader);
			assert_int_equal(x->parts[p].n_replicas, y->parts[p].n_replicas);
			assert_memory_equal(x->parts[p].replicas, y->parts[p].replicas,
				sizeof(int32_t) * x->parts[p].n_replicas);
		}
		assert_string_equal(x->configs, y->configs);
	}
	for (uint32_t i = 0; i < a->n_brokers; i++)
		assert_memory_equal(&a->brokers[i], &b->brokers[i], sizeof(a->brokers[i]));
}

static void
test_snapshot_restore(void **state)
{
	struct ctl_meta_state *s = ctl_meta_state_create();
	struct ctl_meta_state *r = ctl_meta_state_create();
	struct ctl_meta_buf b = {0};
	struct ctl_meta_buf snap = {0};
	struct ctl_meta_broker br;
	enum ctl_meta_batch_kind kind;
	char name[32];

	(void)state;
	memset(&br, 0, sizeof(br));
	br.node_id = 5;
	br.n_listeners = 1;
	strcpy(br.listeners[0].name, "PLAINTEXT");
	strcpy(br.listeners[0].host, "localhost");
	br.listeners[0].port = 9092;
	ctl_meta_enc_broker(&b, &br);
	assert_int_equal(apply_buf(s, &b), 0);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "topic-%d", i);
		enc_topic(&b, (uint8_t)(i + 1), name, 1 + i % 7, 5,
			i % 3 ? "retention.ms=1000" : "");
		assert_int_equal(apply_buf(s, &b), 0);
	}
	b.len = 0;
	ctl_meta_enc_imported(&b);
	assert_int_equal(apply_buf(s, &b), 0);
	assert_int_equal(ctl_meta_snapshot(s, &snap), 0);
	assert_int_equal(ctl_meta_batch_check(snap.p, snap.len, &kind), 42);
	assert_int_equal(kind, CTL_META_BATCH_FULL);

	/* Restore replaces whatever was there. */
	enc_topic(&b, 200, "stale", 1, 5, "");
	assert_int_equal(apply_buf(r, &b), 0);
	assert_int_equal(ctl_meta_restore(r, snap.p, snap.len), 0);
	assert_same_state(s, r);
	assert_null(ctl_meta_topic_find(r, "stale", 5));

	/* A damaged batch leaves the state as it was. */
	snap.p[snap.len - 1] ^= 0xff; /* IMPORTED's type byte */
	assert_int_not_equal(ctl_meta_restore(r, snap.p, snap.len), 0);
	snap.p[snap.len - 1] ^= 0xff;
	assert_int_equal(ctl_meta_restore(r, snap.p, snap.len - 1), -EPROTO);
	assert_same_state(s, r);
	/* A DELTA batch is not a snapshot. */
	snap.p[5] = CTL_META_BATCH_DELTA;
	assert_int_equal(ctl_meta_restore(r, snap.p, snap.len), -EPROTO);
	ctl_meta_state_destroy(s);
	ctl_meta_state_destroy(r);
	ctl_meta_buf_free(&b);
	ctl_meta_buf_free(&snap);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topic_round_trip),
		cmocka_unit_test(test_other_records_round_trip),
		cmocka_unit_test(test_lying_counts),
		cmocka_unit_test(test_partition_limit),
		cmocka_unit_test(test_deleted_ids),
		cmocka_unit_test(test_apply_rules),
		cmocka_unit_test(test_brokers),
		cmocka_unit_test(test_snapshot_restore),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
