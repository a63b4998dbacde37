/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the KIP-227 fetch session cache (dataplane/broker/
 * dp_fetch_session.c): ids and slots, epochs, partitions added, updated and
 * forgotten in order, the partition pool running out, the must-respond rule
 * of incremental responses, and Kafka's eviction rules (stale sessions,
 * sessions older than the eviction time, privileged sessions, size order).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dp_fetch_session.h"

#define EVICT 120000u

static struct kp_uuid
uuid_of(uint8_t v)
{
	struct kp_uuid u;

	memset(u.b, v, sizeof(u.b));
	return u;
}

/* Add @n partitions of topic "t" (by name) to @s. */
static void
add_parts(struct dp_fetch_session_cache *c, struct dp_fetch_session *s, int n)
{
	struct kp_uuid z = uuid_of(0);

	for (int i = 0; i < n; i++)
		assert_int_equal(dp_fetch_session_part_upsert(c, s, &z, "t", 1, i, 0, 1024, NULL),
			0);
}

static void
test_ids_and_find(void **state)
{
	struct dp_fetch_session_cache *c = dp_fetch_session_cache_create(7, 64, EVICT, 42);
	struct dp_fetch_session *s[7];

	(void)state;
	assert_non_null(c);
	for (int i = 0; i < 7; i++) {
		s[i] = dp_fetch_session_new(c, false, false, 1, 1000);
		assert_non_null(s[i]);
		assert_true(s[i]->id > 0);
		assert_int_equal(s[i]->epoch, 1);
		assert_int_equal((uint32_t)s[i]->id % 7, (uint32_t)(s[i] - c->sess));
		for (int j = 0; j < i; j++)
			assert_int_not_equal(s[i]->id, s[j]->id);
		assert_ptr_equal(dp_fetch_session_find(c, s[i]->id), s[i]);
	}
	assert_int_equal(c->used, 7);
	/* Full and nothing evictable (all young, all the same size): no session. */
	assert_null(dp_fetch_session_new(c, false, false, 1, 2000));
	assert_null(dp_fetch_session_find(c, 0));
	assert_null(dp_fetch_session_find(c, -1));
	assert_null(dp_fetch_session_find(c, s[0]->id + 7)); /* same slot, other id */
	int32_t gone = s[3]->id;

	dp_fetch_session_remove(c, s[3]);
	assert_null(dp_fetch_session_find(c, gone));
	assert_int_equal(c->used, 6);
	dp_fetch_session_cache_destroy(c);
}

static void
test_zero_slots(void **state)
{
	struct dp_fetch_session_cache *c = dp_fetch_session_cache_create(0, 0, EVICT, 1);

	(void)state;
	assert_non_null(c);
	assert_null(dp_fetch_session_new(c, false, false, 1, 0));
	assert_null(dp_fetch_session_find(c, 1));
	dp_fetch_session_cache_destroy(c);
}

static void
test_next_epoch(void **state)
{
	(void)state;
	assert_int_equal(dp_fetch_session_next_epoch(0), 1);
	assert_int_equal(dp_fetch_session_next_epoch(5), 6);
	assert_int_equal(dp_fetch_session_next_epoch(INT32_MAX), 1);
	assert_int_equal(dp_fetch_session_next_epoch(-1), -1);
}

static void
test_parts_order_update_forget(void **state)
{
	struct dp_fetch_session_cache *c = dp_fetch_session_cache_create(2, 8, EVICT, 3);
	struct dp_fetch_session *s = dp_fetch_session_new(c, false, false, 3, 0);
	struct kp_uuid z = uuid_of(0);
	struct dp_fetch_session_part *p;
	int32_t want[] = {0, 2};
	int k = 0;

	(void)state;
	assert_non_null(s);
	add_parts(c, s, 3);
	assert_int_equal(s->size, 3);
	assert_int_equal(c->parts_free, 5);
	/* Update keeps the position and takes the new offset and max bytes. */
	assert_int_equal(dp_fetch_session_part_upsert(c, s, &z, "t", 1, 1, 77, 5, &p), 0);
	assert_int_equal(s->size, 3);
	assert_int_equal(p->fetch_offset, 77);
	assert_int_equal(p->max_bytes, 5);
	assert_int_equal(p->high_watermark, -1);
	assert_ptr_equal(dp_fetch_session_part_find(c, s, &z, "t", 1, 1), p);
	assert_null(dp_fetch_session_part_find(c, s, &z, "u", 1, 1));
	assert_null(dp_fetch_session_part_find(c, s, &z, "tt", 2, 1));
	/* Forget the middle one, and one that is not there. */
	dp_fetch_session_part_forget(c, s, &z, "t", 1, 1);
	dp_fetch_session_part_forget(c, s, &z, "t", 1, 9);
	assert_int_equal(s->size, 2);
	for (p = dp_fetch_session_part_at(c, s->head); p != NULL;
		p = dp_fetch_session_part_at(c, p->next))
		assert_int_equal(p->partition, want[k++]);
	assert_int_equal(k, 2);
	assert_int_equal(dp_fetch_session_part_at(c, s->tail)->partition, 2);
	/* Forget head and tail: empty list. */
	dp_fetch_session_part_forget(c, s, &z, "t", 1, 0);
	dp_fetch_session_part_forget(c, s, &z, "t", 1, 2);
	assert_int_equal(s->size, 0);
	assert_int_equal(s->head, -1);
	assert_int_equal(s->tail, -1);
	assert_int_equal(c->parts_free, 8);
	dp_fetch_session_cache_destroy(c);
}

static void
check_order(struct dp_fetch_session_cache *c, struct dp_fetch_session *s, const int32_t *want,
	int n)
{
	struct dp_fetch_session_part *p;
	int k = 0;

	for (p = dp_fetch_session_part_at(c, s->head); p != NULL;
		p = dp_fetch_session_part_at(c, p->next)) {
		assert_true(k < n);
		assert_int_equal(p->partition, want[k]);
		k++;
	}
	assert_int_equal(k, n);
	/* And backwards through prev. */
	for (p = dp_fetch_session_part_at(c, s->tail); p != NULL;
		p = dp_fetch_session_part_at(c, p->prev))
		assert_int_equal(p->partition, want[--k]);
	assert_int_equal(k, 0);
}

static void
test_move_last(void **state)
{
	struct dp_fetch_session_cache *c = dp_fetch_session_cache_create(1, 8, EVICT, 3);
	struct dp_fetch_session *s = dp_fetch_session_new(c, false, false, 4, 0);
	struct kp_uuid z = uuid_of(0);
	const int32_t o1[] = {1, 2, 3, 0};
	const int32_t o2[] = {1, 3, 0, 2};
	const int32_t o3[] = {3, 0, 2, 1};

	(void)state;
	add_parts(c, s, 4);
	dp_fetch_session_part_move_last(c, s, dp_fetch_session_part_find(c, s, &z, "t", 1, 0));
	check_order(c, s, o1, 4);
	dp_fetch_session_part_move_last(c, s, dp_fetch_session_part_find(c, s, &z, "t", 1, 2));
	check_order(c, s, o2, 4);
	dp_fetch_session_part_move_last(c, s, dp_fetch_session_part_find(c, s, &z, "t", 1, 2));
	check_order(c, s, o2, 4); /* already last */
	dp_fetch_session_part_move_last(c, s, dp_fetch_session_part_find(c, s, &z, "t", 1, 1));
	check_order(c, s, o3, 4);
	dp_fetch_session_cache_destroy(c);
}

static void
test_topic_ids(void **state)
{
	struct dp_fetch_session_cache *c = dp_fetch_session_cache_create(2, 8, EVICT, 3);
	struct dp_fetch_session *s = dp_fetch_session_new(c, false, true, 2, 0);
	struct kp_uuid a = uuid_of(1);
	struct kp_uuid b = uuid_of(2);

	(void)state;
	assert_int_equal(dp_fetch_session_part_upsert(c, s, &a, NULL, 0, 0, 0, 1, NULL), 0);
	assert_int_equal(dp_fetch_session_part_upsert(c, s, &b, NULL, 0, 0, 0, 1, NULL), 0);
	assert_int_equal(s->size, 2);
	assert_non_null(dp_fetch_session_part_find(c, s, &a, NULL, 0, 0));
	dp_fetch_session_part_forget(c, s, &a, NULL, 0, 0);
	assert_null(dp_fetch_session_part_find(c, s, &a, NULL, 0, 0));
	assert_non_null(dp_fetch_session_part_find(c, s, &b, NULL, 0, 0));
	dp_fetch_session_cache_destroy(c);
}

static void
test_pool_exhausted(void **state)
{
	struct dp_fetch_session_cache *c = dp_fetch_session_cache_create(2, 3, EVICT, 3);
	struct dp_fetch_session *s1 = dp_fetch_session_new(c, false, false, 2, 0);
	struct dp_fetch_session *s2 = dp_fetch_session_new(c, false, false, 2, 0);
	struct kp_uuid z = uuid_of(0);
	char longname[DP_FETCH_SESSION_TOPIC_MAX + 1];

	(void)state;
	add_parts(c, s1, 2);
	assert_int_equal(dp_fetch_session_part_upsert(c, s2, &z, "x", 1, 0, 0, 1, NULL), 0);
	assert_int_equal(dp_fetch_session_part_upsert(c, s2, &z, "x", 1, 1, 0, 1, NULL), -ENOSPC);
	assert_int_equal(s2->size, 1);
	/* Updating an existing entry needs no new one. */
	assert_int_equal(dp_fetch_session_part_upsert(c, s2, &z, "x", 1, 0, 9, 1, NULL), 0);
	memset(longname, 'n', sizeof(longname));
	assert_int_equal(dp_fetch_session_part_upsert(c, s2, &z, longname, sizeof(longname), 0, 0,
		1, NULL), -EINVAL);
	/* Removing a session returns its entries. */
	dp_fetch_session_remove(c, s1);
	assert_int_equal(c->parts_free, 2);
	assert_int_equal(dp_fetch_session_part_upsert(c, s2, &z, "x", 1, 1, 0, 1, NULL), 0);
	dp_fetch_session_cache_destroy(c);
}

static void
test_must_respond(void **state)
{
	struct dp_fetch_session_cache *c = dp_fetch_session_cache_create(1, 1, EVICT, 3);
	struct dp_fetch_session *s = dp_fetch_session_new(c, false, false, 1, 0);
	struct kp_uuid z = uuid_of(0);
	struct dp_fetch_session_part *p;

	(void)state;
	assert_int_equal(dp_fetch_session_part_upsert(c, s, &z, "t", 1, 0, 0, 1, &p), 0);
	/* Never answered: anything must be sent. */
	assert_true(dp_fetch_session_part_must_respond(p, 0, false, 0, 0, 0));
	dp_fetch_session_part_sent(p, 10, 10, 0);
	assert_false(dp_fetch_session_part_must_respond(p, 0, false, 10, 10, 0));
	assert_true(dp_fetch_session_part_must_respond(p, 0, true, 10, 10, 0));
	assert_true(dp_fetch_session_part_must_respond(p, 3, false, 10, 10, 0));
	assert_true(dp_fetch_session_part_must_respond(p, 0, false, 11, 10, 0));
	assert_true(dp_fetch_session_part_must_respond(p, 0, false, 10, 11, 0));
	assert_true(dp_fetch_session_part_must_respond(p, 0, false, 10, 10, 4));
	dp_fetch_session_cache_destroy(c);
}

/* A stale session (unused longer than the eviction time) is evicted first, whatever its size. */
static void
test_evict_stale(void **state)
{
	struct dp_fetch_session_cache *c = dp_fetch_session_cache_create(2, 64, EVICT, 5);
	struct dp_fetch_session *a = dp_fetch_session_new(c, false, false, 10, 0);
	struct dp_fetch_session *b = dp_fetch_session_new(c, false, false, 10, 0);
	struct dp_fetch_session *n;
	int32_t a_id = a->id;
	int32_t b_id = b->id;

	(void)state;
	add_parts(c, a, 10);
	add_parts(c, b, 10);
	dp_fetch_session_touch(b, 100000);
	/* At 110 s nothing is stale and nothing is old: a small consumer session gets none. */
	assert_null(dp_fetch_session_new(c, false, false, 1, 110000));
	/* At 120.001 s a was unused for more than 120 s: evicted even for a smaller session. */
	n = dp_fetch_session_new(c, false, false, 1, EVICT + 1);
	assert_non_null(n);
	assert_null(dp_fetch_session_find(c, a_id));
	assert_non_null(dp_fetch_session_find(c, b_id));
	assert_int_equal(c->evictions, 1);
	assert_int_equal(c->parts_free, 54);
	dp_fetch_session_cache_destroy(c);
}

/*
 * Not stale, but created longer than the eviction time before its last use:
 * evictable by anyone with a session at least as large (Kafka's
 * evictableByAll); smaller sessions are evicted first.
 */
static void
test_evict_old_by_size(void **state)
{
	struct dp_fetch_session_cache *c = dp_fetch_session_cache_create(2, 64, EVICT, 5);
	struct dp_fetch_session *a = dp_fetch_session_new(c, false, false, 5, 0);
	struct dp_fetch_session *b = dp_fetch_session_new(c, false, false, 3, 0);
	int32_t a_id = a->id;
	int32_t b_id = b->id;
	uint64_t t = 200000;

	(void)state;
	add_parts(c, a, 5);
	add_parts(c, b, 3);
	dp_fetch_session_touch(a, t);
	dp_fetch_session_touch(b, t);
	/* A session of 2 ranks below both: refused. */
	assert_null(dp_fetch_session_new(c, false, false, 2, t + 1));
	/* Equal size 3 ranks below b (new id 0 < b's id): refused. */
	assert_null(dp_fetch_session_new(c, false, false, 3, t + 1));
	/* 4 evicts the smaller b, not a. */
	assert_non_null(dp_fetch_session_new(c, false, false, 4, t + 1));
	assert_null(dp_fetch_session_find(c, b_id));
	assert_non_null(dp_fetch_session_find(c, a_id));
	dp_fetch_session_cache_destroy(c);
}

/*
 * Young sessions: a consumer cannot evict them; a follower (privileged) can
 * evict a consumer's session of no larger size, never a young follower's.
 */
static void
test_evict_privileged(void **state)
{
	struct dp_fetch_session_cache *c = dp_fetch_session_cache_create(2, 64, EVICT, 5);
	struct dp_fetch_session *cons = dp_fetch_session_new(c, false, false, 1, 0);
	struct dp_fetch_session *fol = dp_fetch_session_new(c, true, false, 1, 0);
	int32_t cons_id = cons->id;
	int32_t fol_id = fol->id;

	(void)state;
	add_parts(c, cons, 8);
	add_parts(c, fol, 1);
	assert_null(dp_fetch_session_new(c, false, false, 100, 1000));
	/* Privileged ranks above any unprivileged session, whatever the sizes. */
	assert_non_null(dp_fetch_session_new(c, true, false, 1, 1000));
	assert_null(dp_fetch_session_find(c, cons_id));
	assert_non_null(dp_fetch_session_find(c, fol_id));
	/* Now two young follower sessions: nothing evictable even for a follower. */
	assert_null(dp_fetch_session_new(c, true, false, 1000, 2000));
	dp_fetch_session_cache_destroy(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_and_find),
		cmocka_unit_test(test_zero_slots),
		cmocka_unit_test(test_next_epoch),
		cmocka_unit_test(test_parts_order_update_forget),
		cmocka_unit_test(test_move_last),
		cmocka_unit_test(test_topic_ids),
		cmocka_unit_test(test_pool_exhausted),
		cmocka_unit_test(test_must_respond),
		cmocka_unit_test(test_evict_stale),
		cmocka_unit_test(test_evict_old_by_size),
		cmocka_unit_test(test_evict_privileged),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
