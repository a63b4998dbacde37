/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The load generator's record stamps and sequence checks (lg_check.c): the
 * value layout round-trips; a consumer's table accepts a sequence read in
 * order and flags a gap, a duplicate, a reordering and a record read from
 * another partition than the one it was written to, each once; the first
 * record must be sequence 0 only when reading from the start; thousands of
 * (connection, partition) keys grow the table without losing any.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "lg_check.h"

static void
test_stamp_round_trip(void **state)
{
	uint8_t v[64];
	struct lg_stamp s;

	(void)state;
	memset(v, 0xee, sizeof(v));
	lg_stamp_write(v, sizeof(v), 123456789012345ull, 0xdeadbeef, 7, 70000, 1ull << 40);
	assert_true(lg_stamp_read(v, sizeof(v), &s));
	assert_true(s.has_seq);
	assert_int_equal(s.due_ns, 123456789012345ull);
	assert_int_equal(s.run, 0xdeadbeef);
	assert_int_equal(s.conn, 7);
	assert_int_equal(s.partition, 70000);
	assert_int_equal(s.seq, 1ull << 40);
	assert_int_equal(v[LG_SEQ_LEN], 0xee); /* nothing written past the fields */

	/* 16..39 bytes: the stamp only. */
	memset(v, 0, sizeof(v));
	lg_stamp_write(v, 20, 42, 1, 2, 3, 4);
	assert_true(lg_stamp_read(v, 20, &s));
	assert_false(s.has_seq);
	assert_int_equal(s.due_ns, 42);
	assert_int_equal(v[16], 0);

	/* Below 16 bytes: nothing, and nothing is read back. */
	memset(v, 0, sizeof(v));
	lg_stamp_write(v, 15, 42, 1, 2, 3, 4);
	assert_int_equal(v[0], 0);
	assert_false(lg_stamp_read(v, 15, &s));
	assert_false(lg_stamp_read(NULL, -1, &s));

	/* A foreign value or a truncated sequenced one is not ours. */
	memcpy(v, "some other producer's bytes.....................", 48);
	assert_false(lg_stamp_read(v, 48, &s));
	lg_stamp_write(v, 48, 1, 1, 1, 1, 1);
	assert_false(lg_stamp_read(v, LG_SEQ_LEN - 1, &s));
}

static struct lg_stamp
st(uint32_t conn, int32_t partition, uint64_t seq)
{
	struct lg_stamp s = {.has_seq = true, .run = 99, .conn = conn, .partition = partition,
			     .seq = seq};
	return s;
}

static void
test_seq_order(void **state)
{
	struct lg_seqtab t;
	struct lg_stamp s;
	uint64_t want;

	(void)state;
	lg_seqtab_init(&t);
	s = st(0, 3, 0);
	assert_int_equal(lg_seq_check(&t, 3, &s, true, &want), LG_SEQ_FIRST);
	for (uint64_t i = 1; i < 100; i++) {
		s = st(0, 3, i);
		assert_int_equal(lg_seq_check(&t, 3, &s, true, &want), LG_SEQ_OK);
	}
	/* Another connection on the same partition has its own sequence. */
	s = st(1, 3, 0);
	assert_int_equal(lg_seq_check(&t, 3, &s, true, &want), LG_SEQ_FIRST);
	/* A gap: 100 and 101 missing. */
	s = st(0, 3, 102);
	assert_int_equal(lg_seq_check(&t, 3, &s, true, &want), LG_SEQ_GAP);
	assert_int_equal(want, 100);
	/* After a break the table follows the new position: 103 is fine. */
	s = st(0, 3, 103);
	assert_int_equal(lg_seq_check(&t, 3, &s, true, &want), LG_SEQ_OK);
	/* A duplicate and a late (reordered) record. */
	s = st(0, 3, 103);
	assert_int_equal(lg_seq_check(&t, 3, &s, true, &want), LG_SEQ_BACKWARDS);
	assert_int_equal(want, 104);
	s = st(0, 3, 100);
	assert_int_equal(lg_seq_check(&t, 3, &s, true, &want), LG_SEQ_BACKWARDS);
	/* Written to partition 3, read from 4. */
	s = st(0, 3, 104);
	assert_int_equal(lg_seq_check(&t, 4, &s, true, &want), LG_SEQ_WRONG_PART);
	/* From the start, a first record must be 0; mid-log any is fine. */
	s = st(5, 1, 17);
	assert_int_equal(lg_seq_check(&t, 1, &s, true, &want), LG_SEQ_GAP);
	s = st(6, 1, 17);
	assert_int_equal(lg_seq_check(&t, 1, &s, false, &want), LG_SEQ_FIRST);
	s = st(6, 1, 18);
	assert_int_equal(lg_seq_check(&t, 1, &s, false, &want), LG_SEQ_OK);
	lg_seqtab_free(&t);
}

static void
test_seq_many_keys(void **state)
{
	struct lg_seqtab t;
	struct lg_stamp s;
	uint64_t want;

	(void)state;
	lg_seqtab_init(&t);
	for (uint64_t round = 0; round < 3; round++)
		for (uint32_t c = 0; c < 64; c++)
			for (int32_t p = 0; p < 100; p++) {
				s = st(c, p, round);
				assert_int_equal(lg_seq_check(&t, p, &s, true, &want),
						 round == 0 ? LG_SEQ_FIRST : LG_SEQ_OK);
			}
	assert_int_equal(t.n, 6400);
	assert_true(t.cap >= 2 * t.n);
	lg_seqtab_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stamp_round_trip),
		cmocka_unit_test(test_seq_order),
		cmocka_unit_test(test_seq_many_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
