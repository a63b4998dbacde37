/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Log-linear latency histogram (see lg_hist.h for the bucket layout and the
 * precision it guarantees).
 */
#include "lg_hist.h"

#include <math.h>
#include <string.h>

void
lg_hist_reset(struct lg_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

uint64_t
lg_hist_bucket_low(uint32_t i)
{
	if (i < (1u << LG_HIST_SUB_BITS))
		return i;
	uint32_t j = i - (1u << LG_HIST_SUB_BITS);
	uint32_t m = LG_HIST_SUB_BITS + j / LG_HIST_HALF; /* octave: [2^m, 2^(m+1)) */
	uint64_t top = LG_HIST_HALF + j % LG_HIST_HALF;
	return top << (m - (LG_HIST_SUB_BITS - 1));
}

uint64_t
lg_hist_bucket_high(uint32_t i)
{
	if (i >= LG_HIST_BUCKETS - 1)
		return LG_HIST_MAX - 1;
	return lg_hist_bucket_low(i + 1) - 1;
}

void
lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src)
{
	if (src->count == 0)
		return;
	for (uint32_t i = 0; i < LG_HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t
lg_hist_percentile(const struct lg_hist *h, double p)
{
	if (h->count == 0)
		return 0;
	if (p <= 0)
		return h->min;
	if (p >= 100)
		return h->max;
	uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (uint32_t i = 0; i < LG_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t v = lg_hist_bucket_high(i);
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

double
lg_hist_mean(const struct lg_hist *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}
