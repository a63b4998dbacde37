/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CRC-32C arithmetic of lg_crc.h and the batch templates of lg_tmpl.h,
 * checked against CRCs computed over whole buffers (kp_crc32c, isa-l) and
 * against batches built from scratch by kp_batch_builder:
 *  - known values: CRC-32C("123456789"), x^0 as the identity, x^(8n) as n
 *    zero bytes appended to a raw CRC;
 *  - combine: CRC(A || B) from CRC(A), CRC(B) and len(B), random A and B;
 *  - delta: random buffers, random ranges rewritten (at the end too, where
 *    fewer than 4 bytes follow), both the instruction and the bitwise path:
 *    old CRC ^ delta == CRC of the new buffer;
 *  - templates: random record counts and value sizes (no stamp, stamp only,
 *    stamp and sequence), patched many times with random stamps and
 *    timestamps: each patched batch is byte for byte the batch the builder
 *    makes from the same values, so its CRC is the fresh one and it
 *    validates; and what is not such a batch is refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kp_batch.h"
#include "lg_check.h"
#include "lg_crc.h"
#include "lg_tmpl.h"

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void
fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

static void
test_known_values(void **state)
{
	(void)state;
	const uint8_t check[] = "123456789";

	assert_int_equal(kp_crc32c(check, 9), 0xE3069283u);
	assert_int_equal(lg_crc32c_raw(0xFFFFFFFFu, check, 9) ^ 0xFFFFFFFFu, 0xE3069283u);
	for (int i = 0; i < 100; i++) {
		uint32_t b = (uint32_t)rnd();
		assert_int_equal(lg_crc32c_mulmod(1u << 31, b), b); /* x^0 * b */
		assert_int_equal(lg_crc32c_mulmod(b, 1u << 31), b);
		assert_int_equal(lg_crc32c_mulmod(0, b), 0);
	}
	assert_int_equal(lg_crc32c_xpow8n(0), 1u << 31);
	/* Appending n zero bytes to a raw CRC multiplies it by x^(8n). */
	for (int i = 0; i < 50; i++) {
		uint8_t zeros[300] = {0};
		uint32_t c = (uint32_t)rnd();
		size_t n = rnd() % sizeof(zeros);
		assert_int_equal(lg_crc32c_raw(c, zeros, n),
				 lg_crc32c_mulmod(lg_crc32c_xpow8n(n), c));
	}
}

static void
test_combine(void **state)
{
	(void)state;
	static uint8_t buf[70000];

	for (int i = 0; i < 200; i++) {
		size_t la = rnd() % 35000, lb = rnd() % 35000;
		fill(buf, la + lb);
		uint32_t a = kp_crc32c(buf, la), b = kp_crc32c(buf + la, lb);
		assert_int_equal(lg_crc32c_combine(a, b, lb), kp_crc32c(buf, la + lb));
	}
}

/* One rewrite of @len bytes at @off in a buffer of @n bytes, on @fast's path. */
static void
check_delta(uint8_t *buf, size_t n, size_t off, size_t len, bool fast)
{
	uint8_t old[200];
	struct lg_crc_at at;
	uint32_t crc = kp_crc32c(buf, n);

	lg_crc_at_init(&at, n - off - len);
	if (!fast) {
		at.fast = false; /* the bitwise product, as on CPUs without the instructions */
		at.op = lg_crc32c_xpow8n(n - off - len);
	}
	memcpy(old, buf + off, len);
	fill(buf + off, len);
	crc ^= lg_crc_delta(&at, old, buf + off, len);
	assert_int_equal(crc, kp_crc32c(buf, n));
}

static void
test_delta(void **state)
{
	(void)state;
	static uint8_t buf[20000];

	for (int i = 0; i < 2000; i++) {
		size_t n = 1 + rnd() % sizeof(buf);
		size_t len = 1 + rnd() % (n < 200 ? n : 200);
		size_t off = rnd() % (n - len + 1);
		if (i % 10 == 0)
			off = n - len; /* nothing follows */
		else if (i % 10 == 1 && n - len >= 3)
			off = n - len - rnd() % 4; /* 0-3 bytes follow: the bitwise product */
		fill(buf, n);
		check_delta(buf, n, off, len, i % 2 == 0);
	}
	/* Several rewrites of one buffer accumulate. */
	fill(buf, sizeof(buf));
	uint32_t crc = kp_crc32c(buf, sizeof(buf));
	for (int k = 0; k < 100; k++) {
		uint8_t old[40];
		struct lg_crc_at at;
		size_t off = rnd() % (sizeof(buf) - 40);
		lg_crc_at_init(&at, sizeof(buf) - off - 40);
		memcpy(old, buf + off, 40);
		fill(buf + off, 40);
		crc ^= lg_crc_delta(&at, old, buf + off, 40);
	}
	assert_int_equal(crc, kp_crc32c(buf, sizeof(buf)));
}

/* A batch of @n values of @vlen bytes from @vals (stamped as @st says) at @ts. */
static size_t
build(uint8_t *dst, size_t cap, uint8_t *vals, uint32_t n, uint32_t vlen, int64_t ts,
      const struct lg_tmpl_stamp *st)
{
	struct kp_batch_builder b;
	size_t size;

	assert_int_equal(kp_batch_builder_start(&b, dst, cap, KP_COMPRESSION_NONE), 0);
	for (uint32_t k = 0; k < n; k++) {
		uint8_t *v = vals + (size_t)k * vlen;
		lg_stamp_write(v, vlen, st->due0 + (uint64_t)((int64_t)k * st->step), st->run,
			       st->conn, st->partition, st->seq0 + k);
		assert_int_equal(kp_batch_builder_add(&b, ts, NULL, 0, v, vlen, NULL, 0), 0);
	}
	assert_int_equal(kp_batch_builder_finish(&b, &size), 0);
	return size;
}

static void
random_stamp(struct lg_tmpl_stamp *st)
{
	st->due0 = rnd() >> 1;
	st->step = (int64_t)(rnd() % 100000);
	st->run = (uint32_t)rnd();
	st->conn = (uint32_t)rnd() % 64;
	st->partition = (int32_t)(rnd() % 10000);
	st->seq0 = rnd() >> 8;
}

static void
test_template_patch(void **state)
{
	(void)state;
	static const uint32_t sizes[] = {1, 8, 15, 16, 17, 39, 40, 41, 100, 1000, 1024, 4000};
	size_t cap = 64u << 10;
	uint8_t *tmpl = malloc(cap), *fresh = malloc(cap), *vals = malloc(cap);
	assert_non_null(tmpl);
	assert_non_null(fresh);
	assert_non_null(vals);

	for (int round = 0; round < 120; round++) {
		uint32_t vlen = sizes[round % (sizeof(sizes) / sizeof(sizes[0]))];
		uint32_t maxn = (uint32_t)((cap - 200) / (vlen + 24));
		uint32_t n = 1 + (uint32_t)(rnd() % (maxn < 150 ? maxn : 150));
		struct lg_tmpl t;
		struct lg_tmpl_stamp st;
		int64_t ts = (int64_t)(rnd() >> 20);

		fill(vals, (size_t)n * vlen);
		random_stamp(&st);
		size_t size = build(tmpl, cap, vals, n, vlen, ts, &st);
		assert_int_equal(lg_tmpl_init(&t, n + (uint32_t)(rnd() % 4)), 0);
		assert_int_equal(lg_tmpl_learn(&t, tmpl, size, vlen), 0);
		assert_int_equal(t.n, n);
		assert_int_equal(t.size, size);
		for (int p = 0; p < 25; p++) {
			random_stamp(&st);
			ts = p % 5 == 0 ? ts : (int64_t)(rnd() >> 20);
			lg_tmpl_patch(&t, tmpl, ts, &st);
			/* The same values with the new stamps, built from scratch. */
			assert_int_equal(build(fresh, cap, vals, n, vlen, ts, &st), size);
			assert_memory_equal(tmpl, fresh, size);
			struct kp_batch_header h;
			assert_int_equal(kp_batch_header_parse(tmpl, size, &h), 0);
			assert_int_equal(kp_batch_crc_check(tmpl, &h), 0);
			assert_int_equal(h.base_timestamp, ts);
			assert_int_equal(h.max_timestamp, ts);
		}
		lg_tmpl_free(&t);
	}
	free(tmpl);
	free(fresh);
	free(vals);
}

static void
test_template_refuses(void **state)
{
	(void)state;
	uint8_t buf[8192], vals[4 * 100];
	struct kp_batch_builder b;
	struct lg_tmpl t;
	size_t size;

	fill(vals, sizeof(vals));
	assert_int_equal(lg_tmpl_init(&t, 3), 0);
	/* More records than the template has room for. */
	assert_int_equal(kp_batch_builder_start(&b, buf, sizeof(buf), KP_COMPRESSION_NONE), 0);
	for (int k = 0; k < 4; k++)
		assert_int_equal(kp_batch_builder_add(&b, 5, NULL, 0, vals + k * 100, 100, NULL, 0),
				 0);
	assert_int_equal(kp_batch_builder_finish(&b, &size), 0);
	assert_int_equal(lg_tmpl_learn(&t, buf, size, 100), -EINVAL);
	assert_int_equal(t.n, 0);
	/* Values of another size than announced; a key; differing timestamps. */
	assert_int_equal(kp_batch_builder_start(&b, buf, sizeof(buf), KP_COMPRESSION_NONE), 0);
	assert_int_equal(kp_batch_builder_add(&b, 5, NULL, 0, vals, 100, NULL, 0), 0);
	assert_int_equal(kp_batch_builder_finish(&b, &size), 0);
	assert_int_equal(lg_tmpl_learn(&t, buf, size, 99), -EINVAL);
	assert_int_equal(lg_tmpl_learn(&t, buf, size - 1, 100), -EINVAL);
	assert_int_equal(lg_tmpl_learn(&t, buf, size, 100), 0);
	assert_int_equal(kp_batch_builder_start(&b, buf, sizeof(buf), KP_COMPRESSION_NONE), 0);
	assert_int_equal(kp_batch_builder_add(&b, 5, "k", 1, vals, 100, NULL, 0), 0);
	assert_int_equal(kp_batch_builder_finish(&b, &size), 0);
	assert_int_equal(lg_tmpl_learn(&t, buf, size, 100), -EINVAL);
	assert_int_equal(kp_batch_builder_start(&b, buf, sizeof(buf), KP_COMPRESSION_NONE), 0);
	assert_int_equal(kp_batch_builder_add(&b, 5, NULL, 0, vals, 100, NULL, 0), 0);
	assert_int_equal(kp_batch_builder_add(&b, 6, NULL, 0, vals + 100, 100, NULL, 0), 0);
	assert_int_equal(kp_batch_builder_finish(&b, &size), 0);
	assert_int_equal(lg_tmpl_learn(&t, buf, size, 100), -EINVAL);
	/* Compressed. */
	assert_int_equal(kp_batch_builder_start(&b, buf, sizeof(buf), KP_COMPRESSION_LZ4), 0);
	assert_int_equal(kp_batch_builder_add(&b, 5, NULL, 0, vals, 100, NULL, 0), 0);
	assert_int_equal(kp_batch_builder_finish(&b, &size), 0);
	assert_int_equal(lg_tmpl_learn(&t, buf, size, 100), -EINVAL);
	lg_tmpl_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_values),
		cmocka_unit_test(test_combine),
		cmocka_unit_test(test_delta),
		cmocka_unit_test(test_template_patch),
		cmocka_unit_test(test_template_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
