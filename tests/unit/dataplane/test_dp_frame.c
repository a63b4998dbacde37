/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_frame: Kafka framing over arbitrary read boundaries, bad and oversized
 * size prefixes, large frames through an attached buffer, and a randomized
 * stream compared with what was sent.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dp_frame.h"

/* Append a frame of @len bytes with content derived from @seed to @out. */
static size_t
put_frame(uint8_t *out, uint32_t len, uint32_t seed)
{
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
	for (uint32_t i = 0; i < len; i++)
		out[4 + i] = (uint8_t)(seed * 31 + i * 7);
	return 4 + len;
}

static bool
frame_ok(const uint8_t *f, uint32_t len, uint32_t seed)
{
	for (uint32_t i = 0; i < len; i++) {
		if (f[i] != (uint8_t)(seed * 31 + i * 7))
			return false;
	}
	return true;
}

/* Feed @n bytes through rx_space/rx_commit; returns bytes taken (less when the buffer is full). */
static size_t
feed(struct dp_frame *fr, const uint8_t *src, size_t n)
{
	size_t done = 0;

	while (done < n) {
		uint8_t *p;
		uint32_t space = dp_frame_rx_space(fr, &p);
		size_t k = n - done < space ? n - done : space;

		if (k == 0)
			break;
		memcpy(p, src + done, k);
		dp_frame_rx_commit(fr, (uint32_t)k);
		done += k;
	}
	return done;
}

static void
test_whole_frame(void **state)
{
	uint8_t buf[64];
	uint8_t wire[64];
	struct dp_frame fr;
	const uint8_t *f;
	uint32_t len;
	size_t n = put_frame(wire, 10, 1);

	(void)state;
	dp_frame_init(&fr, buf, sizeof(buf), 1000);
	assert_int_equal(dp_frame_next(&fr, &f, &len), 0);
	assert_int_equal(feed(&fr, wire, n), n);
	assert_int_equal(dp_frame_next(&fr, &f, &len), 1);
	assert_int_equal(len, 10);
	assert_ptr_equal(f, buf + 4); /* in place, no copy */
	assert_true(frame_ok(f, len, 1));
	assert_null(dp_frame_consume(&fr));
	assert_int_equal(dp_frame_next(&fr, &f, &len), 0);
	assert_int_equal(dp_frame_buffered(&fr), 0);
}

static void
test_byte_by_byte(void **state)
{
	uint8_t buf[64];
	uint8_t wire[256];
	struct dp_frame fr;
	const uint8_t *f;
	uint32_t len;
	size_t n = 0;
	uint32_t seen = 0;

	(void)state;
	for (uint32_t i = 0; i < 5; i++)
		n += put_frame(wire + n, 1 + i * 9, i);
	dp_frame_init(&fr, buf, sizeof(buf), 1000);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(feed(&fr, wire + i, 1), 1);
		while (dp_frame_next(&fr, &f, &len) == 1) {
			assert_int_equal(len, 1 + seen * 9);
			assert_true(frame_ok(f, len, seen));
			dp_frame_consume(&fr);
			seen++;
		}
	}
	assert_int_equal(seen, 5);
}

static void
test_many_frames_in_one_read(void **state)
{
	uint8_t buf[4096];
	uint8_t wire[4096];
	struct dp_frame fr;
	const uint8_t *f;
	uint32_t len;
	size_t n = 0;
	uint32_t seen = 0;

	(void)state;
	for (uint32_t i = 0; i < 100; i++)
		n += put_frame(wire + n, 8 + (i % 13), i);
	dp_frame_init(&fr, buf, sizeof(buf), 1000);
	assert_int_equal(feed(&fr, wire, n), n);
	while (dp_frame_next(&fr, &f, &len) == 1) {
		assert_int_equal(len, 8 + (seen % 13));
		assert_true(frame_ok(f, len, seen));
		dp_frame_consume(&fr);
		seen++;
	}
	assert_int_equal(seen, 100);
}

static void
test_bad_sizes(void **state)
{
	static const uint8_t zero[] = {0, 0, 0, 0};
	static const uint8_t neg[] = {0xff, 0xff, 0xff, 0xfe};
	static const uint8_t big[] = {0, 0, 0x03, 0xe9}; /* 1001 */
	static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff};
	uint8_t buf[64];
	struct dp_frame fr;
	const uint8_t *f;
	uint32_t len;

	(void)state;
	dp_frame_init(&fr, buf, sizeof(buf), 1000);
	feed(&fr, zero, 4);
	assert_int_equal(dp_frame_next(&fr, &f, &len), -EBADMSG);
	assert_int_equal(fr.bad_size, 0);
	dp_frame_init(&fr, buf, sizeof(buf), 1000);
	feed(&fr, neg, 4);
	assert_int_equal(dp_frame_next(&fr, &f, &len), -EBADMSG);
	assert_int_equal(fr.bad_size, -2);
	/* Oversized is refused from the prefix alone, before any of the body arrives. */
	dp_frame_init(&fr, buf, sizeof(buf), 1000);
	feed(&fr, big, 4);
	assert_int_equal(dp_frame_next(&fr, &f, &len), -EMSGSIZE);
	assert_int_equal(fr.bad_size, 1001);
	dp_frame_init(&fr, buf, sizeof(buf), 1000);
	feed(&fr, huge, 3);
	assert_int_equal(dp_frame_next(&fr, &f, &len), 0); /* prefix incomplete */
	feed(&fr, huge + 3, 1);
	assert_int_equal(dp_frame_next(&fr, &f, &len), -EMSGSIZE);
}

static void
test_exactly_the_limit(void **state)
{
	uint8_t buf[128];
	uint8_t wire[128];
	struct dp_frame fr;
	const uint8_t *f;
	uint32_t len;
	size_t n = put_frame(wire, 100, 3);

	(void)state;
	dp_frame_init(&fr, buf, sizeof(buf), 100);
	feed(&fr, wire, n);
	assert_int_equal(dp_frame_next(&fr, &f, &len), 1);
	assert_int_equal(len, 100);
}

static void
test_large_frame(void **state)
{
	uint8_t buf[64];
	uint8_t *wire = malloc(2048);
	uint8_t *large = malloc(1024);
	struct dp_frame fr;
	const uint8_t *f;
	uint32_t len;
	size_t n;
	size_t off;

	(void)state;
	n = put_frame(wire, 5, 0);
	n += put_frame(wire + n, 1000, 1); /* larger than the receive buffer */
	n += put_frame(wire + n, 7, 2);
	dp_frame_init(&fr, buf, sizeof(buf), 1024);
	off = feed(&fr, wire, n);
	assert_true(off < n); /* the receive buffer filled up */
	assert_int_equal(dp_frame_next(&fr, &f, &len), 1);
	assert_int_equal(len, 5);
	dp_frame_consume(&fr);
	assert_int_equal(dp_frame_next(&fr, &f, &len), -ENOBUFS);
	dp_frame_attach_large(&fr, large, 1024);
	assert_int_equal(dp_frame_next(&fr, &f, &len), 0);
	/* Reads now go into the large buffer and stop at the end of that frame. */
	while (off < n) {
		uint8_t *p;
		uint32_t space = dp_frame_rx_space(&fr, &p);
		size_t k = n - off < space ? n - off : space;

		if (fr.large != NULL)
			assert_true(p >= large && p + space <= large + 1000);
		if (k > 13)
			k = 13; /* odd read sizes */
		memcpy(p, wire + off, k);
		dp_frame_rx_commit(&fr, (uint32_t)k);
		off += k;
		if (dp_frame_next(&fr, &f, &len) == 1)
			break;
	}
	assert_int_equal(len, 1000);
	assert_ptr_equal(f, large);
	assert_true(frame_ok(f, len, 1));
	assert_ptr_equal(dp_frame_consume(&fr), large); /* handed back for reuse */
	off += feed(&fr, wire + off, n - off);
	assert_int_equal(off, n);
	assert_int_equal(dp_frame_next(&fr, &f, &len), 1);
	assert_int_equal(len, 7);
	assert_true(frame_ok(f, len, 2));
	dp_frame_consume(&fr);
	assert_int_equal(dp_frame_buffered(&fr), 0);
	free(large);
	free(wire);
}

static void
test_detach_on_close(void **state)
{
	uint8_t buf[16];
	uint8_t wire[64];
	uint8_t large[64];
	struct dp_frame fr;
	const uint8_t *f;
	uint32_t len;

	(void)state;
	put_frame(wire, 40, 9);
	dp_frame_init(&fr, buf, sizeof(buf), 64);
	feed(&fr, wire, 10);
	assert_int_equal(dp_frame_next(&fr, &f, &len), -ENOBUFS);
	dp_frame_attach_large(&fr, large, sizeof(large));
	assert_int_equal(dp_frame_buffered(&fr), 6);
	assert_ptr_equal(dp_frame_detach_large(&fr), large);
	assert_null(dp_frame_detach_large(&fr));
}

static void
test_randomized_stream(void **state)
{
	enum { CAP = 256, NFRAMES = 3000 };
	uint8_t buf[CAP];
	uint8_t *large = malloc(4096);
	uint8_t *wire = malloc((size_t)NFRAMES * 4100);
	uint32_t *lens = malloc(sizeof(uint32_t) * NFRAMES);
	struct dp_frame fr;
	size_t n = 0;
	size_t off = 0;
	uint32_t seen = 0;
	unsigned int seed = 12345;

	(void)state;
	for (uint32_t i = 0; i < NFRAMES; i++) {
		lens[i] = (rand_r(&seed) % 8 == 0) ? 1 + (uint32_t)(rand_r(&seed) % 4000) :
							1 + (uint32_t)(rand_r(&seed) % 200);
		n += put_frame(wire + n, lens[i], i);
	}
	dp_frame_init(&fr, buf, CAP, 4096);
	while (seen < NFRAMES) {
		const uint8_t *f;
		uint32_t len;
		uint8_t *p;
		uint32_t space = dp_frame_rx_space(&fr, &p);
		size_t k = (size_t)(rand_r(&seed) % 300) + 1;
		int rc;

		if (k > space)
			k = space;
		if (k > n - off)
			k = n - off;
		memcpy(p, wire + off, k);
		dp_frame_rx_commit(&fr, (uint32_t)k);
		off += k;
		while ((rc = dp_frame_next(&fr, &f, &len)) != 0) {
			if (rc == -ENOBUFS) {
				dp_frame_attach_large(&fr, large, 4096);
				continue;
			}
			assert_int_equal(rc, 1);
			assert_int_equal(len, lens[seen]);
			assert_true(frame_ok(f, len, seen));
			dp_frame_consume(&fr);
			seen++;
		}
	}
	assert_int_equal(off, n);
	free(lens);
	free(wire);
	free(large);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole_frame),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_many_frames_in_one_read),
		cmocka_unit_test(test_bad_sizes),
		cmocka_unit_test(test_exactly_the_limit),
		cmocka_unit_test(test_large_frame),
		cmocka_unit_test(test_detach_on_close),
		cmocka_unit_test(test_randomized_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
