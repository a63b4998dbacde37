/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kafka requests built, and their answers read, by the broker tests of
 * tests/unit/dataplane that drive dp_conn by hand (test_dp_produce.c,
 * test_dp_writers.c), on top of dp_conn_test_util.h's connection g_c: a
 * request frame (header v1 + body), a batch of records "p<part>-<first + i>",
 * a Produce and a Fetch of topic "t", the next response taken out of g_c.got,
 * and the check of a Produce answer.
 *
 * Include it after dp_conn_test_util.h, with PRODUCE_V (the Produce version
 * the test speaks) defined. Test code: its definitions are static to the
 * including file (inline, so a file need not use all of them).
 */
#ifndef SLP_TESTS_DP_REQUEST_TEST_UTIL_H
#define SLP_TESTS_DP_REQUEST_TEST_UTIL_H

#include <stdio.h>
#include <string.h>

#include "kp_api.h"
#include "kp_batch.h"
#include "kp_error.h"

#if !defined(PRODUCE_V) || !defined(SLP_TESTS_DP_CONN_TEST_UTIL_H)
#error "define PRODUCE_V and include dp_conn_test_util.h before dp_request_test_util.h"
#endif

/* The response being read (a copy out of g_c.got) and the arena its decoding uses. */
static uint8_t g_resp[2 * RESP_BYTES];
static struct kp_arena g_arena;
static uint8_t g_arena_buf[1u << 20];

typedef int (*t_encode_fn)(const void *m, int16_t v, struct kp_writer *w);

static inline int
t_enc_produce(const void *m, int16_t v, struct kp_writer *w)
{
	return kp_produce_request_encode(m, v, w);
}

static inline int
t_enc_fetch(const void *m, int16_t v, struct kp_writer *w)
{
	return kp_fetch_request_encode(m, v, w);
}

/*
 * Encode request @m (API @key, version @v, correlation id @corr, client id
 * "t", request header v1) with @enc into @buf (@cap bytes, the caller's).
 * @return the frame's length (without a size prefix, as dp_conn takes it).
 */
static inline uint32_t
t_frame(uint8_t *buf, size_t cap, int16_t key, int16_t v, int32_t corr, t_encode_fn enc,
	const void *m)
{
	struct kp_request_header h = {.request_api_key = key, .request_api_version = v,
		.correlation_id = corr, .client_id = {.ptr = "t", .len = 1}};
	struct kp_writer w;

	kp_writer_init(&w, buf, cap);
	assert_int_equal(kp_request_header_encode(&h, 1, &w), 0);
	assert_int_equal(enc(m, v, &w), 0);
	return (uint32_t)kp_writer_len(&w);
}

/*
 * A batch of @n records "p<part>-<first + i>" (timestamps 1000 + i) into @buf
 * (@cap bytes, the caller's); idempotent (producer @pid, epoch 0, base
 * sequence @seq) when @pid >= 0. @return its size.
 */
static inline size_t
t_batch(uint8_t *buf, size_t cap, int part, int first, int n, int64_t pid, int32_t seq)
{
	struct kp_batch_builder bb;
	size_t size = 0;
	char v[32];

	assert_int_equal(kp_batch_builder_start(&bb, buf, cap, KP_COMPRESSION_NONE), 0);
	if (pid >= 0) {
		bb.producer_id = pid;
		bb.producer_epoch = 0;
		bb.base_sequence = seq;
	}
	for (int i = 0; i < n; i++) {
		int len = snprintf(v, sizeof(v), "p%d-%d", part, first + i);

		assert_int_equal(kp_batch_builder_add(&bb, 1000 + i, NULL, 0, v, (size_t)len, NULL,
			0), 0);
	}
	assert_int_equal(kp_batch_builder_finish(&bb, &size), 0);
	return size;
}

/* Partition @index's data in a Produce: the @len bytes of batches at @recs (borrowed). */
static inline void
t_produce_part(struct kp_produce_request_partition_produce_data *pd, int32_t index,
	const uint8_t *recs, size_t len)
{
	kp_produce_request_partition_produce_data_init(pd);
	pd->index = index;
	pd->records = (struct kp_bytes){.ptr = recs, .len = (int32_t)len};
}

/*
 * A Produce (acks -1, @timeout_ms) of topic "t" into @m and @td, whose
 * partitions are the @np filled in @pd (t_produce_part). @m points at @td and
 * @td at @pd: all three stay the caller's and must outlive the encoding.
 */
static inline void
t_produce(struct kp_produce_request *m, struct kp_produce_request_topic_produce_data *td,
	struct kp_produce_request_partition_produce_data *pd, int np, int32_t timeout_ms)
{
	kp_produce_request_init(m);
	kp_produce_request_topic_produce_data_init(td);
	m->acks = -1;
	m->timeout_ms = timeout_ms;
	td->name = (struct kp_str){.ptr = "t", .len = 1};
	td->partition_data.items = pd;
	td->partition_data.count = np;
	m->topic_data.items = td;
	m->topic_data.count = 1;
}

/*
 * A Fetch (consumer, 1 MiB at most, @max_wait_ms, @min_bytes) of the @np
 * partitions @parts of topic "t", each from @offset, 64 KiB at most, into
 * @m, @ft and @fp (@np entries), which stay the caller's as in t_produce.
 */
static inline void
t_fetch(struct kp_fetch_request *m, struct kp_fetch_request_fetch_topic *ft,
	struct kp_fetch_request_fetch_partition *fp, const int *parts, int np, int64_t offset,
	int32_t max_wait_ms, int32_t min_bytes)
{
	kp_fetch_request_init(m);
	kp_fetch_request_fetch_topic_init(ft);
	m->replica_id = -1;
	m->max_wait_ms = max_wait_ms;
	m->min_bytes = min_bytes;
	m->max_bytes = 1 << 20;
	ft->topic = (struct kp_str){.ptr = "t", .len = 1};
	for (int i = 0; i < np; i++) {
		kp_fetch_request_fetch_partition_init(&fp[i]);
		fp[i].partition = parts[i];
		fp[i].fetch_offset = offset;
		fp[i].partition_max_bytes = 64 * 1024;
	}
	ft->partitions.items = fp;
	ft->partitions.count = np;
	m->topics.items = ft;
	m->topics.count = 1;
}

/* The size prefix of the first response in g_c.got (at least 4 bytes of it there). */
static inline uint32_t
t_got_size(void)
{
	assert_true(g_c.got_len >= 4);
	return (uint32_t)g_c.got[0] << 24 | (uint32_t)g_c.got[1] << 16 |
		(uint32_t)g_c.got[2] << 8 | g_c.got[3];
}

/*
 * Take the first response out of g_c.got (whole there) into g_resp: its
 * correlation id must be @corr; @r reads its body (header v0 skipped) and
 * borrows g_resp until the next call.
 */
static inline void
t_take_response(int32_t corr, struct kp_reader *r)
{
	uint32_t size;

	assert_true(g_c.got_len >= 8);
	size = t_got_size();
	assert_true(size >= 4 && g_c.got_len >= 4 + (size_t)size);
	memcpy(g_resp, g_c.got + 4, size);
	memmove(g_c.got, g_c.got + 4 + size, g_c.got_len - 4 - size);
	g_c.got_len -= 4 + size;
	assert_int_equal((int32_t)((uint32_t)g_resp[0] << 24 | (uint32_t)g_resp[1] << 16 |
		(uint32_t)g_resp[2] << 8 | g_resp[3]), corr);
	kp_reader_init(r, g_resp + 4, size - 4);
}

/*
 * Decode the Produce answer @r reads (into g_arena) and check it: one topic,
 * one partition per request partition @parts (@np) in request order, each
 * with error @want_err and, when NONE, base offset @want_base[i] (NULL: all
 * 0); -1 otherwise.
 */
static inline void
t_produce_answer(struct kp_reader *r, const int *parts, int np, int16_t want_err,
	const int64_t *want_base)
{
	struct kp_produce_response resp;

	kp_arena_init(&g_arena, g_arena_buf, sizeof(g_arena_buf));
	assert_int_equal(kp_produce_response_decode(&resp, PRODUCE_V, r, &g_arena), 0);
	assert_int_equal(resp.responses.count, 1);
	assert_int_equal(resp.responses.items[0].partition_responses.count, np);
	for (int i = 0; i < np; i++) {
		const struct kp_produce_response_partition_produce_response *pr =
			&resp.responses.items[0].partition_responses.items[i];

		assert_int_equal(pr->index, parts[i]); /* in request order */
		assert_int_equal(pr->error_code, want_err);
		assert_int_equal(pr->base_offset, want_err != KP_ERR_NONE ? -1 :
			want_base != NULL ? want_base[i] : 0);
	}
}

#endif /* SLP_TESTS_DP_REQUEST_TEST_UTIL_H */
