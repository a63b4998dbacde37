/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The load generator's log-linear histogram: bucket layout (contiguous,
 * exact below 256, width at most 1/128 of the value above), percentiles
 * against known distributions, merge, clamping and the empty case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lg_hist.h"

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
test_layout(void **state)
{
	(void)state;
	assert_int_equal(lg_hist_bucket_low(0), 0);
	for (uint32_t i = 0; i + 1 < LG_HIST_BUCKETS; i++) {
		uint64_t lo = lg_hist_bucket_low(i), hi = lg_hist_bucket_high(i);
		assert_true(lo <= hi);
		assert_int_equal(hi + 1, lg_hist_bucket_low(i + 1)); /* contiguous */
		assert_int_equal(lg_hist_bucket_index(lo), i);
		assert_int_equal(lg_hist_bucket_index(hi), i);
		if (i < 256)
			assert_int_equal(lo, hi); /* exact */
		else
			assert_true((hi - lo + 1) * 128 <= lo); /* width <= 1/128 of the value */
	}
	assert_int_equal(lg_hist_bucket_high(LG_HIST_BUCKETS - 1), LG_HIST_MAX - 1);
	assert_int_equal(lg_hist_bucket_index(LG_HIST_MAX - 1), LG_HIST_BUCKETS - 1);
	assert_int_equal(lg_hist_bucket_index(LG_HIST_MAX), LG_HIST_BUCKETS - 1);
	assert_int_equal(lg_hist_bucket_index(UINT64_MAX), LG_HIST_BUCKETS - 1);
	/* Every value maps into the bucket whose range holds it. */
	for (uint64_t v = 0; v < (1u << 16); v++) {
		uint32_t i = lg_hist_bucket_index(v);
		assert_true(lg_hist_bucket_low(i) <= v && v <= lg_hist_bucket_high(i));
	}
	uint64_t s = 88172645463325252ull;
	for (int k = 0; k < 200000; k++) {
		uint64_t v = xorshift(&s) >> (24 + k % 40);
		uint32_t i = lg_hist_bucket_index(v);
		if (v >= LG_HIST_MAX)
			continue;
		assert_true(lg_hist_bucket_low(i) <= v && v <= lg_hist_bucket_high(i));
	}
}

static void
test_percentiles_uniform(void **state)
{
	struct lg_hist *h = malloc(sizeof(*h));
	(void)state;

	assert_non_null(h);
	lg_hist_reset(h);
	/* 1..100000 microseconds in nanoseconds, shuffled order does not matter. */
	for (uint64_t v = 1; v <= 100000; v++)
		lg_hist_record(h, v * 1000);
	assert_int_equal(h->count, 100000);
	assert_int_equal(h->min, 1000);
	assert_int_equal(h->max, 100000000);
	const double ps[] = {1, 25, 50, 90, 99, 99.9, 99.99};
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		double exact = ps[i] / 100.0 * 100000 * 1000;
		double got = (double)lg_hist_percentile(h, ps[i]);
		/* the highest value of the right bucket: not below, at most 1/128 above */
		assert_true(got >= exact);
		assert_true(got <= exact * (1 + 1.0 / 128) + 1);
	}
	assert_int_equal(lg_hist_percentile(h, 0), 1000);
	assert_int_equal(lg_hist_percentile(h, 100), 100000000);
	double mean = lg_hist_mean(h);
	assert_true(mean > 50000.4 * 1000 && mean < 50000.6 * 1000);
	free(h);
}

static void
test_percentiles_bimodal_exact(void **state)
{
	struct lg_hist *h = malloc(sizeof(*h));
	(void)state;

	assert_non_null(h);
	lg_hist_reset(h);
	/* 990 values of 100 and 10 of 200 (both exact buckets): p99 is 100, p99.1 is 200. */
	for (int i = 0; i < 990; i++)
		lg_hist_record(h, 100);
	for (int i = 0; i < 10; i++)
		lg_hist_record(h, 200);
	assert_int_equal(lg_hist_percentile(h, 50), 100);
	assert_int_equal(lg_hist_percentile(h, 99), 100);
	assert_int_equal(lg_hist_percentile(h, 99.1), 200);
	assert_int_equal(lg_hist_percentile(h, 100), 200);
	/* A single large value: every percentile is that value, not its bucket's top. */
	lg_hist_reset(h);
	lg_hist_record(h, 123457);
	assert_int_equal(lg_hist_percentile(h, 50), 123457);
	assert_int_equal(lg_hist_percentile(h, 99.99), 123457);
	free(h);
}

static void
test_merge(void **state)
{
	struct lg_hist *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)), *all = malloc(sizeof(*all));
	uint64_t s = 2463534242ull;
	(void)state;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(all);
	lg_hist_reset(a);
	lg_hist_reset(b);
	lg_hist_reset(all);
	for (int i = 0; i < 50000; i++) {
		uint64_t v = xorshift(&s) % 50000000;
		lg_hist_record(i % 3 ? a : b, v);
		lg_hist_record(all, v);
	}
	lg_hist_merge(a, b);
	assert_int_equal(a->count, all->count);
	assert_int_equal(a->min, all->min);
	assert_int_equal(a->max, all->max);
	assert_memory_equal(a->buckets, all->buckets, sizeof(a->buckets));
	assert_true(a->sum == all->sum || (a->sum - all->sum) / all->sum < 1e-12);
	/* Merging an empty histogram changes nothing (min stays). */
	lg_hist_reset(b);
	lg_hist_merge(a, b);
	assert_int_equal(a->min, all->min);
	assert_int_equal(a->count, all->count);
	free(a);
	free(b);
	free(all);
}

static void
test_clamp_and_empty(void **state)
{
	struct lg_hist *h = malloc(sizeof(*h));
	(void)state;

	assert_non_null(h);
	lg_hist_reset(h);
	assert_int_equal(lg_hist_percentile(h, 50), 0);
	assert_true(lg_hist_mean(h) == 0.0);
	lg_hist_record(h, LG_HIST_MAX * 4);
	lg_hist_record(h, 5);
	assert_int_equal(h->buckets[LG_HIST_BUCKETS - 1], 1);
	assert_int_equal(h->buckets[5], 1);
	assert_int_equal(h->max, LG_HIST_MAX * 4); /* the max itself is not clamped */
	assert_int_equal(lg_hist_percentile(h, 100), LG_HIST_MAX * 4);
	assert_int_equal(lg_hist_percentile(h, 50), 5);
	free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_percentiles_uniform),
		cmocka_unit_test(test_percentiles_bimodal_exact),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_clamp_and_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
