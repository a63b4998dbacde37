/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hand-written Kafka wire primitives (kp_wire.h): integer widths and byte
 * order, varints and their malformed forms, strings/bytes/arrays with
 * negative, null and oversized lengths, the sticky reader and writer errors,
 * and the bump arena's bounds.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kp_api.h"
#include "kp_wire.h"

static void
test_fixed_ints(void **state)
{
	static const uint8_t in[] = {0x81, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02,
				     0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x01, 0x00};
	uint8_t out[sizeof(in)];
	struct kp_reader r;
	struct kp_writer w;
	(void)state;

	kp_reader_init(&r, in, sizeof(in));
	assert_int_equal(kp_rd_int8(&r), (int8_t)0x81);
	assert_int_equal(kp_rd_uint16(&r), 0x1234);
	assert_int_equal(kp_rd_uint32(&r), 0xdeadbeefu);
	assert_true(kp_rd_int64(&r) == 0x0102030405060708ll);
	assert_true(kp_rd_bool(&r));
	assert_false(kp_rd_bool(&r));
	assert_int_equal(r.err, 0);
	assert_int_equal(kp_reader_remaining(&r), 0);
	/* reading past the end fails, returns 0 and sticks */
	assert_int_equal(kp_rd_int32(&r), 0);
	assert_int_equal(r.err, -EPROTO);
	assert_int_equal(kp_rd_int8(&r), 0);
	assert_int_equal(r.err, -EPROTO);

	kp_writer_init(&w, out, sizeof(out));
	kp_wr_int8(&w, (int8_t)0x81);
	kp_wr_uint16(&w, 0x1234);
	kp_wr_uint32(&w, 0xdeadbeefu);
	kp_wr_int64(&w, 0x0102030405060708ll);
	kp_wr_bool(&w, true);
	kp_wr_bool(&w, false);
	assert_int_equal(w.err, 0);
	assert_memory_equal(out, in, sizeof(in));
	kp_wr_int8(&w, 1);
	assert_int_equal(w.err, -ENOBUFS);
	assert_int_equal(kp_writer_len(&w), sizeof(in));
}

static void
test_bool_strict_and_float_uuid(void **state)
{
	static const uint8_t two[] = {2};
	uint8_t buf[24];
	struct kp_reader r;
	struct kp_writer w;
	struct kp_uuid u, u2;
	(void)state;

	kp_reader_init(&r, two, 1);
	kp_rd_bool(&r);
	assert_int_equal(r.err, -EPROTO);

	for (int i = 0; i < 16; i++)
		u.b[i] = (uint8_t)(i * 7);
	kp_writer_init(&w, buf, sizeof(buf));
	kp_wr_float64(&w, -1.5);
	kp_wr_uuid(&w, &u);
	assert_int_equal(kp_writer_len(&w), 24);
	assert_int_equal(buf[0], 0xbf); /* IEEE 754 big endian */
	assert_int_equal(buf[1], 0xf8);
	kp_reader_init(&r, buf, sizeof(buf));
	assert_true(kp_rd_float64(&r) == -1.5);
	kp_rd_uuid(&r, &u2);
	assert_memory_equal(u.b, u2.b, 16);
	assert_false(kp_uuid_is_zero(&u2));
}

static void
test_uvarint(void **state)
{
	const uint32_t vals[] = {0, 1, 127, 128, 300, 16383, 16384, 0x0fffffff, 0x10000000,
				 0xffffffffu};
	const size_t sizes[] = {1, 1, 1, 2, 2, 2, 3, 4, 5, 5};
	uint8_t buf[8];
	struct kp_reader r;
	struct kp_writer w;
	(void)state;

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		kp_writer_init(&w, buf, sizeof(buf));
		kp_wr_uvarint(&w, vals[i]);
		assert_int_equal(kp_writer_len(&w), sizes[i]);
		assert_int_equal(kp_uvarint_size(vals[i]), sizes[i]);
		kp_reader_init(&r, buf, kp_writer_len(&w));
		assert_int_equal(kp_rd_uvarint(&r), vals[i]);
		assert_int_equal(r.err, 0);
		assert_int_equal(kp_reader_remaining(&r), 0);
		/* every truncation fails */
		for (size_t k = 0; k < sizes[i]; k++) {
			kp_reader_init(&r, buf, k);
			kp_rd_uvarint(&r);
			assert_int_equal(r.err, -EPROTO);
		}
	}
	/* malformed: 6 bytes, 33+ bits in byte 5, overlong zero continuations */
	static const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
	static const uint8_t wide[] = {0xff, 0xff, 0xff, 0xff, 0x1f};
	static const uint8_t overlong0[] = {0x80, 0x00};
	static const uint8_t overlong1[] = {0x81, 0x80, 0x00};
	const uint8_t *bad[] = {six, wide, overlong0, overlong1};
	const size_t badn[] = {sizeof(six), sizeof(wide), sizeof(overlong0), sizeof(overlong1)};
	for (size_t i = 0; i < 4; i++) {
		kp_reader_init(&r, bad[i], badn[i]);
		assert_int_equal(kp_rd_uvarint(&r), 0);
		assert_int_equal(r.err, -EPROTO);
	}
}

static void
test_signed_varints(void **state)
{
	const int32_t v32[] = {0, -1, 1, -64, 64, INT32_MAX, INT32_MIN};
	const int64_t v64[] = {0, -1, 1, INT64_MAX, INT64_MIN, -1234567890123ll};
	uint8_t buf[16];
	struct kp_reader r;
	struct kp_writer w;
	(void)state;

	for (size_t i = 0; i < sizeof(v32) / sizeof(v32[0]); i++) {
		kp_writer_init(&w, buf, sizeof(buf));
		kp_wr_varint(&w, v32[i]);
		kp_reader_init(&r, buf, kp_writer_len(&w));
		assert_int_equal(kp_rd_varint(&r), v32[i]);
		assert_int_equal(r.err, 0);
	}
	kp_writer_init(&w, buf, sizeof(buf));
	kp_wr_varint(&w, -1);
	assert_int_equal(buf[0], 1); /* zigzag */
	for (size_t i = 0; i < sizeof(v64) / sizeof(v64[0]); i++) {
		kp_writer_init(&w, buf, sizeof(buf));
		kp_wr_varlong(&w, v64[i]);
		kp_reader_init(&r, buf, kp_writer_len(&w));
		assert_true(kp_rd_varlong(&r) == v64[i]);
		assert_int_equal(r.err, 0);
		assert_int_equal(kp_reader_remaining(&r), 0);
	}
	static const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1};
	kp_reader_init(&r, eleven, sizeof(eleven));
	kp_rd_varlong(&r);
	assert_int_equal(r.err, -EPROTO);
}

static void
test_strings(void **state)
{
	struct kp_reader r;
	struct kp_str s;
	(void)state;

	static const uint8_t ok[] = {0, 3, 'a', 'b', 'c'};
	kp_reader_init(&r, ok, sizeof(ok));
	kp_rd_str(&r, false, false, &s);
	assert_int_equal(r.err, 0);
	assert_int_equal(s.len, 3);
	assert_ptr_equal(s.ptr, (const char *)ok + 2); /* borrowed */

	static const uint8_t null16[] = {0xff, 0xff};
	kp_reader_init(&r, null16, 2);
	kp_rd_str(&r, false, true, &s);
	assert_int_equal(r.err, 0);
	assert_int_equal(s.len, -1);
	kp_reader_init(&r, null16, 2);
	kp_rd_str(&r, false, false, &s); /* null where not nullable */
	assert_int_equal(r.err, -EPROTO);

	static const uint8_t neg[] = {0xff, 0xfe};
	kp_reader_init(&r, neg, 2);
	kp_rd_str(&r, false, true, &s);
	assert_int_equal(r.err, -EPROTO);

	static const uint8_t past_end[] = {0, 4, 'a', 'b', 'c'};
	kp_reader_init(&r, past_end, sizeof(past_end));
	kp_rd_str(&r, false, false, &s);
	assert_int_equal(r.err, -EPROTO);
	assert_int_equal(s.len, 0);

	static const uint8_t compact[] = {4, 'a', 'b', 'c', 0};
	kp_reader_init(&r, compact, sizeof(compact));
	kp_rd_str(&r, true, false, &s);
	assert_int_equal(s.len, 3);
	kp_rd_str(&r, true, true, &s); /* 0: null */
	assert_int_equal(r.err, 0);
	assert_int_equal(s.len, -1);

	/* compact length 0x8000 (> 32767) with enough bytes is still malformed */
	size_t n = 3 + 0x8000;
	uint8_t *big = calloc(1, n);
	assert_non_null(big);
	big[0] = 0x81; /* 0x8001 = len + 1 */
	big[1] = 0x80;
	big[2] = 0x02;
	kp_reader_init(&r, big, n);
	kp_rd_str(&r, true, false, &s);
	assert_int_equal(r.err, -EPROTO);
	free(big);
}

static void
test_bytes_and_arrays(void **state)
{
	struct kp_reader r;
	struct kp_bytes b;
	(void)state;

	static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff, 1, 2};
	kp_reader_init(&r, huge, sizeof(huge));
	kp_rd_bytes(&r, false, true, &b);
	assert_int_equal(r.err, -EPROTO);

	static const uint8_t cbytes[] = {3, 9, 8};
	kp_reader_init(&r, cbytes, sizeof(cbytes));
	kp_rd_bytes(&r, true, false, &b);
	assert_int_equal(r.err, 0);
	assert_int_equal(b.len, 2);
	assert_ptr_equal(b.ptr, cbytes + 1);

	/* max compact uvarint length: len+1 = 0xffffffff, far past the end */
	static const uint8_t cmax[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0};
	kp_reader_init(&r, cmax, sizeof(cmax));
	kp_rd_bytes(&r, true, false, &b);
	assert_int_equal(r.err, -EPROTO);

	/* array counts are capped by bytes remaining times the element size */
	static const uint8_t cnt2[] = {0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8};
	kp_reader_init(&r, cnt2, sizeof(cnt2));
	assert_int_equal(kp_rd_array_len(&r, false, false, 4), 2);
	kp_reader_init(&r, cnt2, sizeof(cnt2));
	assert_int_equal(kp_rd_array_len(&r, false, false, 8), 0); /* 16 bytes > 8 left */
	assert_int_equal(r.err, -EPROTO);

	static const uint8_t cneg1[] = {0xff, 0xff, 0xff, 0xff};
	kp_reader_init(&r, cneg1, 4);
	assert_int_equal(kp_rd_array_len(&r, false, true, 1), -1);
	assert_int_equal(r.err, 0);
	kp_reader_init(&r, cneg1, 4);
	assert_int_equal(kp_rd_array_len(&r, false, false, 1), 0);
	assert_int_equal(r.err, -EPROTO);
	static const uint8_t cneg2[] = {0xff, 0xff, 0xff, 0xfe};
	kp_reader_init(&r, cneg2, 4);
	kp_rd_array_len(&r, false, true, 1);
	assert_int_equal(r.err, -EPROTO);
	static const uint8_t ccompact[] = {0};
	kp_reader_init(&r, ccompact, 1);
	assert_int_equal(kp_rd_array_len(&r, true, true, 1), -1);
}

static void
test_writer_errors(void **state)
{
	uint8_t buf[8];
	struct kp_writer w;
	struct kp_str null_s = {NULL, -1};
	struct kp_str long_s = {"x", KP_STR_MAX + 1};
	struct kp_bytes b = {(const uint8_t *)"abcdefghij", 10};
	(void)state;

	kp_writer_init(&w, buf, sizeof(buf));
	kp_wr_str(&w, false, false, &null_s);
	assert_int_equal(w.err, -EINVAL);
	kp_writer_init(&w, buf, sizeof(buf));
	kp_wr_str(&w, true, true, &long_s);
	assert_int_equal(w.err, -EINVAL);
	kp_writer_init(&w, buf, sizeof(buf));
	kp_wr_array_len(&w, true, false, -1);
	assert_int_equal(w.err, -EINVAL);
	kp_writer_init(&w, buf, sizeof(buf));
	kp_wr_bytes(&w, true, false, &b); /* 11 bytes into 8 */
	assert_int_equal(w.err, -ENOBUFS);
	assert_true(kp_writer_len(&w) <= sizeof(buf));
	kp_wr_int8(&w, 0); /* sticky */
	assert_int_equal(w.err, -ENOBUFS);

	kp_writer_init(&w, buf, sizeof(buf));
	kp_wr_str(&w, true, true, &null_s);
	kp_wr_str(&w, false, true, &null_s);
	assert_int_equal(w.err, 0);
	assert_int_equal(kp_writer_len(&w), 3);
	assert_memory_equal(buf, "\x00\xff\xff", 3);
	assert_int_equal(kp_str_size(true, &null_s), 1);
	assert_int_equal(kp_str_size(false, &null_s), 2);
	assert_int_equal(kp_bytes_size(false, &b), 14);
	assert_int_equal(kp_bytes_size(true, &b), 11);
}

static void
test_arena(void **state)
{
	uint8_t mem[100] __attribute__((aligned(64)));
	struct kp_arena a;
	(void)state;

	kp_arena_init(&a, mem, sizeof(mem));
	uint8_t *p1 = kp_arena_alloc(&a, 3, 1);
	uint8_t *p2 = kp_arena_alloc(&a, 8, 8);
	assert_ptr_equal(p1, mem);
	assert_ptr_equal(p2, mem + 8);
	assert_null(kp_arena_alloc(&a, 100, 1));
	assert_null(kp_arena_alloc(&a, SIZE_MAX, 8));
	assert_null(kp_arena_alloc(&a, SIZE_MAX - 7, 8));
	assert_non_null(kp_arena_alloc(&a, 84, 1));
	assert_null(kp_arena_alloc(&a, 1, 1));
	assert_non_null(kp_arena_alloc(&a, 0, 1));
	kp_arena_reset(&a);
	assert_ptr_equal(kp_arena_alloc(&a, 100, 1), mem);

	struct kp_tags t = {NULL, 0};
	kp_arena_reset(&a);
	assert_int_equal(kp_tags_add(&t, 5, mem, 1, 2, &a), 0);
	assert_int_equal(kp_tags_add(&t, 9, mem, 0, 1, &a), 0);
	assert_int_equal(t.count, 2);
	assert_int_equal(t.items[1].tag, 9);
	struct kp_tags t2 = {NULL, 0};
	assert_int_equal(kp_tags_add(&t2, 1, mem, 1, 1000, &a), -ENOMEM);
}

/* kp_error_seen(): every ErrorCode field a response encoder writes, for its API. */
static int16_t g_seen_api[16];
static int16_t g_seen_code[16];
static int g_seen;

static void
seen(int16_t api_key, int16_t code)
{
	if (g_seen < 16) {
		g_seen_api[g_seen] = api_key;
		g_seen_code[g_seen] = code;
	}
	g_seen++;
}

static void
test_error_hook(void **state)
{
	struct kp_produce_response pr;
	struct kp_produce_response_topic_produce_response t;
	struct kp_produce_response_partition_produce_response p[2];
	struct kp_offset_fetch_response of;
	uint8_t buf[1024];
	struct kp_writer w;

	(void)state;
	kp_produce_response_init(&pr);
	kp_produce_response_topic_produce_response_init(&t);
	kp_produce_response_partition_produce_response_init(&p[0]);
	kp_produce_response_partition_produce_response_init(&p[1]);
	p[1].index = 1;
	p[1].error_code = 3;
	t.name = (struct kp_str){.ptr = "t", .len = 1};
	t.partition_responses.items = p;
	t.partition_responses.count = 2;
	pr.responses.items = &t;
	pr.responses.count = 1;
	kp_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(kp_produce_response_encode(&pr, 9, &w), 0); /* no hook: nothing */
	kp_error_hook = seen;
	kp_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(kp_produce_response_encode(&pr, 9, &w), 0);
	assert_int_equal(g_seen, 2);
	assert_int_equal(g_seen_api[0], 0);
	assert_int_equal(g_seen_code[0], 0);
	assert_int_equal(g_seen_code[1], 3);
	/* A field absent in the version is not counted: OffsetFetch's top-level error is v2+. */
	kp_offset_fetch_response_init(&of);
	of.error_code = 16;
	g_seen = 0;
	kp_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(kp_offset_fetch_response_encode(&of, 1, &w), 0);
	assert_int_equal(g_seen, 0);
	kp_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(kp_offset_fetch_response_encode(&of, 2, &w), 0);
	assert_int_equal(g_seen, 1);
	assert_int_equal(g_seen_api[0], 9);
	assert_int_equal(g_seen_code[0], 16);
	/* Requests are not counted. */
	g_seen = 0;
	kp_writer_init(&w, buf, sizeof(buf));
	{
		struct kp_heartbeat_request hb;

		kp_heartbeat_request_init(&hb);
		hb.group_id = (struct kp_str){.ptr = "g", .len = 1};
		hb.member_id = (struct kp_str){.ptr = "m", .len = 1};
		assert_int_equal(kp_heartbeat_request_encode(&hb, 0, &w), 0);
	}
	assert_int_equal(g_seen, 0);
	kp_error_hook = NULL;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed_ints),
		cmocka_unit_test(test_bool_strict_and_float_uuid),
		cmocka_unit_test(test_uvarint),
		cmocka_unit_test(test_signed_varints),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_bytes_and_arrays),
		cmocka_unit_test(test_writer_errors),
		cmocka_unit_test(test_arena),
		cmocka_unit_test(test_error_hook),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
