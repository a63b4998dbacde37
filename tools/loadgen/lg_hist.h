/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Latency histogram of the load generator: HdrHistogram-style log-linear
 * buckets, written for Slipstream (no HdrHistogram code).
 *
 * Values (nanoseconds, or any unsigned unit) below 2^LG_HIST_SUB_BITS (256)
 * each have their own bucket, so they are exact. Above, every power of two
 * [2^m, 2^(m+1)) is split into 128 equal buckets, so a bucket's width is at
 * most 1/128 of its lower bound: any value is known to within 0.8%, the same
 * guarantee HdrHistogram gives with two significant digits. Values at or above
 * LG_HIST_MAX (2^40 ns, about 18 minutes) land in the last bucket; min, max,
 * sum and count are kept exactly beside the buckets.
 *
 * A histogram is a plain struct with a fixed array (about 35 KiB): record is
 * a few instructions and never allocates; merge adds two histograms bucket by
 * bucket (how per-thread and per-second histograms are combined). Not thread
 * safe: one writer; readers take a copy or hold the owner's lock.
 */
#ifndef SLP_LG_HIST_H
#define SLP_LG_HIST_H

#include <stdint.h>

#define LG_HIST_SUB_BITS 8					   /* exact below 2^8 */
#define LG_HIST_MAX_BITS 40					   /* values < 2^40 kept */
#define LG_HIST_MAX ((uint64_t)1 << LG_HIST_MAX_BITS)		   /* first clamped value */
#define LG_HIST_HALF (1u << (LG_HIST_SUB_BITS - 1))		   /* 128 buckets per octave */
#define LG_HIST_BUCKETS ((1u << LG_HIST_SUB_BITS) +		   \
			 (LG_HIST_MAX_BITS - LG_HIST_SUB_BITS) * LG_HIST_HALF)

struct lg_hist {
	uint64_t count;			   /* values recorded */
	uint64_t min;			   /* smallest value; UINT64_MAX when empty */
	uint64_t max;			   /* largest value (unclamped); 0 when empty */
	double sum;			   /* sum of values (unclamped), for the mean */
	uint64_t buckets[LG_HIST_BUCKETS]; /* counts; see lg_hist_bucket_index() */
};

/** Empty @h. */
void
lg_hist_reset(struct lg_hist *h);

/** Bucket index of @v (values >= LG_HIST_MAX go to the last bucket). */
static inline uint32_t
lg_hist_bucket_index(uint64_t v)
{
	if (v < (1u << LG_HIST_SUB_BITS))
		return (uint32_t)v;
	if (v >= LG_HIST_MAX)
		return LG_HIST_BUCKETS - 1;
	uint32_t m = 63u - (uint32_t)__builtin_clzll(v); /* msb, >= SUB_BITS */
	uint32_t top = (uint32_t)(v >> (m - (LG_HIST_SUB_BITS - 1))); /* in [HALF, 2*HALF) */
	return (1u << LG_HIST_SUB_BITS) + (m - LG_HIST_SUB_BITS) * LG_HIST_HALF +
	       (top - LG_HIST_HALF);
}

/** Smallest value that falls in bucket @i. */
uint64_t
lg_hist_bucket_low(uint32_t i);

/** Largest value that falls in bucket @i (the last bucket: LG_HIST_MAX - 1). */
uint64_t
lg_hist_bucket_high(uint32_t i);

/** Record one value. */
static inline void
lg_hist_record(struct lg_hist *h, uint64_t v)
{
	h->buckets[lg_hist_bucket_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/** Add every value of @src to @dst (@src is only read). */
void
lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src);

/**
 * The value at percentile @p (0..100): the highest value of the bucket that
 * holds the ceil(p/100 * count)-th smallest value, capped by the recorded max
 * and raised to the recorded min, so p0 is min and p100 is max.
 * @return that value; 0 for an empty histogram.
 */
uint64_t
lg_hist_percentile(const struct lg_hist *h, double p);

/** Mean of the recorded values; 0 when empty. */
double
lg_hist_mean(const struct lg_hist *h);

#endif /* SLP_LG_HIST_H */
