/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compression codecs: round trips for every codec, exact bounds, bombs
 * (1 GiB of zeros against a 1 MiB bound must fail with -E2BIG at once),
 * garbage and truncated input, the framings other writers use (raw snappy,
 * concatenated gzip members / lz4 and zstd frames), and every batch that real
 * clients produced, listed in tests/data/batches/MANIFEST: each is validated,
 * decompressed and iterated, and its keys and values checked.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <zstd.h>

#include <dirent.h>

#include "generated/kp_msg_produce.h"
#include "kp_api.h"
#include "kp_batch.h"
#include "kp_compress.h"
#include "kp_wire.h"

#ifndef SLP_TEST_DATA_DIR
#error "SLP_TEST_DATA_DIR must name tests/data"
#endif

/*
 * Failing-allocation mode: malloc/calloc/realloc interposed so the Nth call
 * from now fails. Not under AddressSanitizer, which owns the allocator (the
 * test is then skipped).
 */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_FAILALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_FAILALLOC 0
#endif
#endif
#ifndef TEST_FAILALLOC
#define TEST_FAILALLOC 1
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
static long failalloc_countdown = -1; /* -1: off; else calls left before one fails */
static long failalloc_failed;

static int
failalloc_now(void)
{
	if (failalloc_countdown < 0 || failalloc_countdown-- > 0)
		return 0;
	failalloc_failed++;
	return 1;
}

void *
malloc(size_t n)
{
	return failalloc_now() ? NULL : __libc_malloc(n);
}

void *
calloc(size_t n, size_t m)
{
	return failalloc_now() ? NULL : __libc_calloc(n, m);
}

void *
realloc(void *p, size_t n)
{
	return failalloc_now() ? NULL : __libc_realloc(p, n);
}
#endif

static const enum kp_compression all_codecs[] = {KP_COMPRESSION_NONE, KP_COMPRESSION_GZIP,
						 KP_COMPRESSION_SNAPPY, KP_COMPRESSION_LZ4,
						 KP_COMPRESSION_ZSTD};
#define NCODECS (sizeof(all_codecs) / sizeof(all_codecs[0]))

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Deterministic, moderately compressible input. */
static void
fill_text(uint8_t *p, size_t n, uint32_t seed)
{
	static const char *words[] = {"kafka ", "batch ", "record ", "offset ", "slip ",
				      "stream ", "lz4 ", "zstd "};
	size_t i = 0;

	while (i < n) {
		const char *w;
		size_t l;

		seed = seed * 1103515245u + 12345u;
		w = words[(seed >> 16) & 7];
		l = strlen(w);
		if (l > n - i)
			l = n - i;
		memcpy(p + i, w, l);
		i += l;
	}
}

static void
test_roundtrip(void **state)
{
	static const size_t sizes[] = {0, 1, 100, 32768, 32769, 65536, 200000, 1 << 20};
	size_t max = 1 << 20;
	uint8_t *in = malloc(max), *c = malloc(kp_compress_bound(KP_COMPRESSION_SNAPPY, max) * 2),
		*out = malloc(max);
	struct kp_codec_ctx *ctx = kp_codec_ctx_create();

	(void)state;
	assert_non_null(ctx);
	fill_text(in, max, 1);
	for (size_t k = 0; k < NCODECS; k++) {
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			enum kp_compression codec = all_codecs[k];
			size_t n = sizes[s], bound = kp_compress_bound(codec, n), clen, dlen;

			assert_true(bound >= n || codec != KP_COMPRESSION_NONE);
			/* Explicit context and the thread's own. */
			assert_int_equal(kp_compress(s & 1 ? ctx : NULL, codec, 0, in, n, c, bound,
						     &clen),
					 0);
			assert_true(clen <= bound);
			if (codec != KP_COMPRESSION_NONE && n >= 32768)
				assert_true(clen < n / 2);
			assert_int_equal(kp_decompress(s & 1 ? NULL : ctx, codec, c, clen, out,
						       max, &dlen),
					 0);
			assert_int_equal(dlen, n);
			if (n > 0)
				assert_memory_equal(out, in, n);
			/* Exact bound succeeds, one byte less fails with -E2BIG. */
			assert_int_equal(kp_decompress(ctx, codec, c, clen, out, n, &dlen), 0);
			assert_int_equal(dlen, n);
			if (n > 0)
				assert_int_equal(kp_decompress(ctx, codec, c, clen, out, n - 1,
							       &dlen),
						 -E2BIG);
		}
	}
	kp_codec_ctx_destroy(ctx);
	free(in);
	free(c);
	free(out);
}

static void
test_levels_and_errors(void **state)
{
	uint8_t in[4096], c[8192], out[4096];
	size_t clen, dlen;

	(void)state;
	fill_text(in, sizeof(in), 2);
	for (int lvl = 0; lvl <= 3; lvl++) {
		assert_int_equal(kp_compress(NULL, KP_COMPRESSION_GZIP, lvl, in, sizeof(in), c,
					     sizeof(c), &clen),
				 0);
		assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_GZIP, c, clen, out, sizeof(out),
					       &dlen),
				 0);
		assert_memory_equal(out, in, sizeof(in));
	}
	assert_int_equal(kp_compress(NULL, KP_COMPRESSION_GZIP, 9, in, sizeof(in), c, sizeof(c),
				     &clen),
			 -EINVAL);
	assert_int_equal(kp_compress(NULL, KP_COMPRESSION_ZSTD, 19, in, sizeof(in), c, sizeof(c),
				     &clen),
			 0);
	for (size_t k = 0; k < NCODECS; k++)
		assert_int_equal(kp_compress(NULL, all_codecs[k], 0, in, sizeof(in), c, 10, &clen),
				 -ENOBUFS);
	assert_int_equal(kp_compress(NULL, (enum kp_compression)5, 0, in, 1, c, 10, &clen),
			 -ENOTSUP);
	assert_int_equal(kp_decompress(NULL, (enum kp_compression)7, in, 1, c, 10, &clen),
			 -ENOTSUP);
	assert_int_equal(kp_compress_bound((enum kp_compression)6, 10), 0);
	assert_string_equal(kp_compression_name(KP_COMPRESSION_LZ4), "lz4");
	assert_string_equal(kp_compression_name((enum kp_compression)6), "unknown");
}

/* Raw snappy (librdkafka can write it) is accepted as well as xerial. */
static void
test_snappy_raw_and_xerial(void **state)
{
	uint8_t in[100000], c[120000], out[100000];
	size_t clen = sizeof(c), dlen;

	(void)state;
	fill_text(in, sizeof(in), 3);
	assert_int_equal(snappy_compress((const char *)in, sizeof(in), (char *)c, &clen),
			 SNAPPY_OK);
	assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_SNAPPY, c, clen, out, sizeof(out),
				       &dlen),
			 0);
	assert_int_equal(dlen, sizeof(in));
	assert_memory_equal(out, in, sizeof(in));
	/* Raw declaring more than the bound: refused before any work. */
	assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_SNAPPY, c, clen, out, 99999, &dlen),
			 -E2BIG);

	/* Our xerial output: magic, version 1, compat 1, 32 KiB blocks. */
	assert_int_equal(kp_compress(NULL, KP_COMPRESSION_SNAPPY, 0, in, sizeof(in), c, sizeof(c),
				     &clen),
			 0);
	assert_memory_equal(c, "\x82SNAPPY\0\0\0\0\1\0\0\0\1", 16);
	/* A block length running past the end. */
	c[16] = 0x7f;
	assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_SNAPPY, c, clen, out, sizeof(out),
				       &dlen),
			 -EBADMSG);
	c[16] = 0;
	/* Header only: empty stream. */
	assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_SNAPPY, c, 16, out, sizeof(out), &dlen),
			 0);
	assert_int_equal(dlen, 0);
	/* Block length field cut short. */
	assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_SNAPPY, c, 18, out, sizeof(out), &dlen),
			 -EBADMSG);
}

/* Concatenated gzip members, lz4 frames and zstd frames decode to the concatenation. */
static void
test_concatenated(void **state)
{
	static const enum kp_compression codecs[] = {KP_COMPRESSION_GZIP, KP_COMPRESSION_LZ4,
						     KP_COMPRESSION_ZSTD};
	uint8_t in[5000], c[12000], out[10000];
	size_t c1, c2, dlen;

	(void)state;
	fill_text(in, sizeof(in), 4);
	for (size_t k = 0; k < 3; k++) {
		assert_int_equal(kp_compress(NULL, codecs[k], 0, in, 3000, c, 6000, &c1), 0);
		assert_int_equal(kp_compress(NULL, codecs[k], 0, in + 3000, 2000, c + c1, 6000,
					     &c2),
				 0);
		assert_int_equal(kp_decompress(NULL, codecs[k], c, c1 + c2, out, sizeof(out),
					       &dlen),
				 0);
		assert_int_equal(dlen, 5000);
		assert_memory_equal(out, in, 5000);
		/* The bound applies to the total. */
		assert_int_equal(kp_decompress(NULL, codecs[k], c, c1 + c2, out, 4999, &dlen),
				 -E2BIG);
		/* A garbage tail after a valid member/frame is an error. */
		c[c1] ^= 0xff;
		assert_true(kp_decompress(NULL, codecs[k], c, c1 + c2, out, sizeof(out), &dlen) < 0);
	}
}

/* Framing options other writers use: a gzip header with FEXTRA, FNAME,
 * FCOMMENT and FHCRC (gzip(1), Python's gzip module); LZ4 frames with
 * checksums, content size and linked blocks; zstd with a content checksum. */
static void
test_framing_variants(void **state)
{
	uint8_t in[20000], c[40000], g[40000], out[20000];
	size_t clen, dlen, n = 0;
	LZ4F_preferences_t p;

	(void)state;
	fill_text(in, sizeof(in), 6);
	/* gzip: our member minus its 10-byte header, behind a fuller header. */
	assert_int_equal(kp_compress(NULL, KP_COMPRESSION_GZIP, 0, in, sizeof(in), c, sizeof(c),
				     &clen),
			 0);
	assert_int_equal(c[0], 0x1f);
	assert_int_equal(c[1], 0x8b);
	g[n++] = 0x1f;
	g[n++] = 0x8b;
	g[n++] = 8;			 /* deflate */
	g[n++] = 0x04 | 0x08 | 0x10 | 0x02; /* FEXTRA FNAME FCOMMENT FHCRC */
	memset(g + n, 0, 6);		 /* mtime, xfl, os */
	n += 6;
	g[n++] = 4; /* XLEN = 4 */
	g[n++] = 0;
	memcpy(g + n, "ab\0\0", 4);
	n += 4;
	memcpy(g + n, "records.bin", 12); /* NUL-terminated name */
	n += 12;
	memcpy(g + n, "a comment", 10);
	n += 10;
	{
		/* FHCRC: low 16 bits of the CRC-32 of the header so far. */
		uint32_t crc = crc32_gzip_refl(0, g, n);

		g[n++] = (uint8_t)crc;
		g[n++] = (uint8_t)(crc >> 8);
	}
	memcpy(g + n, c + 10, clen - 10);
	n += clen - 10;
	assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_GZIP, g, n, out, sizeof(out), &dlen),
			 0);
	assert_int_equal(dlen, sizeof(in));
	assert_memory_equal(out, in, sizeof(in));
	/* A wrong CRC-32 in the gzip trailer is caught. */
	g[n - 8] ^= 1;
	assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_GZIP, g, n, out, sizeof(out), &dlen),
			 -EBADMSG);

	/* LZ4 frame with every optional field. */
	memset(&p, 0, sizeof(p));
	p.frameInfo.blockSizeID = LZ4F_max256KB;
	p.frameInfo.blockMode = LZ4F_blockLinked;
	p.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	p.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
	p.frameInfo.contentSize = sizeof(in);
	clen = LZ4F_compressFrame(c, sizeof(c), in, sizeof(in), &p);
	assert_false(LZ4F_isError(clen));
	assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_LZ4, c, clen, out, sizeof(out), &dlen),
			 0);
	assert_int_equal(dlen, sizeof(in));
	assert_memory_equal(out, in, sizeof(in));
	c[clen - 5] ^= 1; /* inside the content checksum */
	assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_LZ4, c, clen, out, sizeof(out), &dlen),
			 -EBADMSG);

	/* zstd with a content checksum. */
	{
		ZSTD_CCtx *cc = ZSTD_createCCtx();

		assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1)));
		clen = ZSTD_compress2(cc, c, sizeof(c), in, sizeof(in));
		assert_false(ZSTD_isError(clen));
		ZSTD_freeCCtx(cc);
	}
	assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_ZSTD, c, clen, out, sizeof(out),
				       &dlen),
			 0);
	assert_memory_equal(out, in, sizeof(in));
	c[clen - 1] ^= 1;
	assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_ZSTD, c, clen, out, sizeof(out),
				       &dlen),
			 -EBADMSG);
}

/* Every allocation a codec makes can fail: the result is -ENOMEM (or
 * success), never a crash, a leak or a wrong output. Snappy's compressor is
 * C++ and reports allocation failure by exception, so only its decompressor
 * (which allocates nothing) is covered. */
static void
test_failing_allocation(void **state)
{
#if TEST_FAILALLOC
	static uint8_t in[100000], c[120000], c2[120000], out[100000];
	static const enum kp_compression codecs[] = {KP_COMPRESSION_GZIP, KP_COMPRESSION_SNAPPY,
						     KP_COMPRESSION_LZ4, KP_COMPRESSION_ZSTD};

	(void)state;
	fill_text(in, sizeof(in), 7);
	for (size_t k = 0; k < sizeof(codecs) / sizeof(codecs[0]); k++) {
		enum kp_compression codec = codecs[k];
		size_t clen, dlen;
		long n;

		assert_int_equal(kp_compress(NULL, codec, 0, in, sizeof(in), c, sizeof(c), &clen), 0);
		for (n = 0; n < 1000; n++) {
			struct kp_codec_ctx *ctx;
			size_t clen2 = 0;
			int rc1 = 0, rc2 = -ENOMEM;

			failalloc_failed = 0;
			failalloc_countdown = n;
			ctx = kp_codec_ctx_create();
			if (ctx != NULL && codec != KP_COMPRESSION_SNAPPY)
				rc1 = kp_compress(ctx, codec, 0, in, sizeof(in), c2, sizeof(c2),
						  &clen2);
			if (ctx != NULL)
				rc2 = kp_decompress(ctx, codec, c, clen, out, sizeof(out), &dlen);
			failalloc_countdown = -1;
			kp_codec_ctx_destroy(ctx);
			if (rc1 != 0 && rc1 != -ENOMEM)
				fail_msg("%s compress, alloc %ld fails: %d", kp_compression_name(codec),
					 n, rc1);
			if (rc2 != 0 && rc2 != -ENOMEM)
				fail_msg("%s decompress, alloc %ld fails: %d",
					 kp_compression_name(codec), n, rc2);
			if (rc1 == 0 && clen2 > 0 &&
			    memcmp(c2, c, clen < clen2 ? clen : clen2) != 0) {
				/* Seen once on CI (session 21, MALLOC_PERTURB_=184), not
				 * reproduced in 90 runs: say which codec and allocation. */
				size_t d = 0;

				while (c2[d] == c[d])
					d++;
				fail_msg("%s compress, alloc %ld fails (%ld failed): output differs "
					 "from the reference at byte %zu (%zu vs %zu bytes, "
					 "MALLOC_PERTURB_=%s)", kp_compression_name(codec), n,
					 failalloc_failed, d, clen2, clen,
					 getenv("MALLOC_PERTURB_") ? getenv("MALLOC_PERTURB_") : "-");
			}
			if (rc2 == 0) {
				assert_int_equal(dlen, sizeof(in));
				assert_memory_equal(out, in, sizeof(in));
			}
			if (failalloc_failed == 0) {
				assert_int_equal(rc1, 0);
				assert_int_equal(rc2, 0);
				break;
			}
		}
		assert_true(n > 0 && n < 1000);
	}
	/* The builder's temporary compression buffer. */
	{
		static uint8_t b[4096];
		struct kp_batch_builder bb;
		size_t size;
		int rc;

		assert_int_equal(kp_batch_builder_start(&bb, b, sizeof(b), KP_COMPRESSION_GZIP), 0);
		assert_int_equal(kp_batch_builder_add(&bb, 1, "k", 1, "v", 1, NULL, 0), 0);
		failalloc_countdown = 0;
		rc = kp_batch_builder_finish(&bb, &size);
		failalloc_countdown = -1;
		assert_int_equal(rc, -ENOMEM);
	}
#else
	(void)state;
	skip();
#endif
}

/* ---- bombs ---- */

#define BOMB_BYTES (1ull << 30)
#define BOMB_CHUNK (1u << 20)
#define BOMB_BOUND (1u << 20)

static uint8_t *
make_gzip_bomb(size_t *len)
{
	static uint8_t zeros[BOMB_CHUNK];
	struct isal_zstream s;
	size_t cap = 4u << 20;
	uint8_t *out = malloc(cap), *lvl = malloc(ISAL_DEF_LVL1_DEFAULT);

	assert_non_null(out);
	assert_non_null(lvl);
	isal_deflate_init(&s);
	s.gzip_flag = IGZIP_GZIP;
	s.level = 1;
	s.level_buf = lvl;
	s.level_buf_size = ISAL_DEF_LVL1_DEFAULT;
	s.next_out = out;
	s.avail_out = (uint32_t)cap;
	for (unsigned long long done = 0; done < BOMB_BYTES; done += BOMB_CHUNK) {
		s.next_in = zeros;
		s.avail_in = BOMB_CHUNK;
		s.end_of_stream = done + BOMB_CHUNK == BOMB_BYTES;
		assert_int_equal(isal_deflate(&s), COMP_OK);
		assert_int_equal(s.avail_in, 0);
	}
	assert_int_equal(s.internal_state.state, ZSTATE_END);
	*len = s.total_out;
	free(lvl);
	return out;
}

static uint8_t *
make_lz4_bomb(size_t *len)
{
	static uint8_t zeros[BOMB_CHUNK];
	LZ4F_cctx *cc;
	LZ4F_preferences_t p;
	size_t cap = 32u << 20, o, r;
	uint8_t *out = malloc(cap);

	memset(&p, 0, sizeof(p));
	p.frameInfo.blockSizeID = LZ4F_max4MB;
	assert_false(LZ4F_isError(LZ4F_createCompressionContext(&cc, LZ4F_VERSION)));
	o = LZ4F_compressBegin(cc, out, cap, &p);
	assert_false(LZ4F_isError(o));
	for (unsigned long long done = 0; done < BOMB_BYTES; done += BOMB_CHUNK) {
		r = LZ4F_compressUpdate(cc, out + o, cap - o, zeros, BOMB_CHUNK, NULL);
		assert_false(LZ4F_isError(r));
		o += r;
	}
	r = LZ4F_compressEnd(cc, out + o, cap - o, NULL);
	assert_false(LZ4F_isError(r));
	LZ4F_freeCompressionContext(cc);
	*len = o + r;
	return out;
}

/* @pledge: declare the content size in the frame header, or leave it unknown. */
static uint8_t *
make_zstd_bomb(size_t *len, int pledge)
{
	static uint8_t zeros[BOMB_CHUNK];
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	size_t cap = 1u << 20;
	uint8_t *out = malloc(cap);
	ZSTD_outBuffer ob = {out, cap, 0};

	if (pledge)
		assert_false(ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(cc, BOMB_BYTES)));
	for (unsigned long long done = 0; done < BOMB_BYTES; done += BOMB_CHUNK) {
		ZSTD_inBuffer ib = {zeros, BOMB_CHUNK, 0};
		int last = done + BOMB_CHUNK == BOMB_BYTES;
		size_t r;

		do {
			r = ZSTD_compressStream2(cc, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
			assert_false(ZSTD_isError(r));
		} while (ib.pos < ib.size || (last && r != 0));
	}
	ZSTD_freeCCtx(cc);
	*len = ob.pos;
	return out;
}

static void
expect_bomb_refused(enum kp_compression codec, const uint8_t *bomb, size_t len)
{
	uint8_t *out = malloc(BOMB_BOUND);
	size_t dlen;
	double t0 = now_s(), dt;

	assert_int_equal(kp_decompress(NULL, codec, bomb, len, out, BOMB_BOUND, &dlen), -E2BIG);
	dt = now_s() - t0;
	/* Bounded work: about 1 MiB of output, not 1 GiB (generous for sanitizers). */
	assert_true(dt < 0.5);
	free(out);
}

static void
test_bombs(void **state)
{
	uint8_t *bomb;
	size_t len;

	(void)state;
	bomb = make_gzip_bomb(&len);
	expect_bomb_refused(KP_COMPRESSION_GZIP, bomb, len);
	free(bomb);
	bomb = make_lz4_bomb(&len);
	expect_bomb_refused(KP_COMPRESSION_LZ4, bomb, len);
	free(bomb);
	bomb = make_zstd_bomb(&len, 0);
	assert_int_equal(ZSTD_getFrameContentSize(bomb, len), ZSTD_CONTENTSIZE_UNKNOWN);
	expect_bomb_refused(KP_COMPRESSION_ZSTD, bomb, len);
	free(bomb);
	bomb = make_zstd_bomb(&len, 1);
	assert_int_equal(ZSTD_getFrameContentSize(bomb, len), BOMB_BYTES);
	expect_bomb_refused(KP_COMPRESSION_ZSTD, bomb, len);
	free(bomb);
}

/* Snappy: a raw block declaring 1 GiB; a xerial stream of 64 MiB of zeros. */
static void
test_snappy_bombs(void **state)
{
	uint8_t raw[16] = {0x80, 0x80, 0x80, 0x80, 0x04, 0x00}; /* varint 1 GiB, then junk */
	uint8_t raw2[8] = {0x80, 0x80, 0x40}; /* varint 1 MiB: plausible for 64 KiB of input */
	uint8_t *raw3 = calloc(1, 65536);
	size_t n = 64u << 20, clen, dlen;
	uint8_t *zeros = calloc(1, n), *c = malloc(kp_compress_bound(KP_COMPRESSION_SNAPPY, n)),
		*out = malloc(BOMB_BOUND);
	double t0;

	(void)state;
	/* No 16-byte snappy block can hold 1 GiB: corrupt, not too big. */
	assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_SNAPPY, raw, sizeof(raw), out,
				       BOMB_BOUND, &dlen),
			 -EBADMSG);
	/* 1 MiB + 1 from 64 KiB is possible, and over a 1 MiB bound: refused unread. */
	memcpy(raw3, raw2, sizeof(raw2));
	raw3[2] = 0x40;
	raw3[0] = 0x81;
	assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_SNAPPY, raw3, 65536, out, BOMB_BOUND,
				       &dlen),
			 -E2BIG);
	free(raw3);
	assert_int_equal(kp_compress(NULL, KP_COMPRESSION_SNAPPY, 0, zeros, n, c,
				     kp_compress_bound(KP_COMPRESSION_SNAPPY, n), &clen),
			 0);
	t0 = now_s();
	assert_int_equal(kp_decompress(NULL, KP_COMPRESSION_SNAPPY, c, clen, out, BOMB_BOUND,
				       &dlen),
			 -E2BIG);
	assert_true(now_s() - t0 < 0.5);
	free(zeros);
	free(c);
	free(out);
}

/* Random garbage and every prefix of valid streams: an error (or, where the
 * format has no end marker, a shorter output), never a crash or overrun. */
static void
test_garbage_and_truncation(void **state)
{
	uint8_t in[3000], c[8000], out[4000];
	uint32_t seed = 12345;

	(void)state;
	fill_text(in, sizeof(in), 5);
	for (size_t k = 1; k < NCODECS; k++) {
		enum kp_compression codec = all_codecs[k];
		size_t clen, dlen;

		for (int round = 0; round < 200; round++) {
			size_t n = (size_t)(round * 7 % 500);
			int rc;

			for (size_t i = 0; i < n; i++) {
				seed = seed * 1103515245u + 12345u;
				c[i] = (uint8_t)(seed >> 16);
			}
			/* Start some with the right magic so the codec reads further. */
			if (round & 1) {
				static const uint8_t magics[5][8] = {
					{0},
					{0x1f, 0x8b, 8, 0},
					{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0},
					{0x04, 0x22, 0x4d, 0x18},
					{0x28, 0xb5, 0x2f, 0xfd},
				};
				memcpy(c, magics[k], n < 8 ? n : 8);
			}
			rc = kp_decompress(NULL, codec, c, n, out, sizeof(out), &dlen);
			assert_true(rc == 0 || rc == -EBADMSG || rc == -E2BIG);
			if (rc == 0)
				assert_true(dlen <= sizeof(out));
		}
		assert_int_equal(kp_compress(NULL, codec, 0, in, sizeof(in), c, sizeof(c), &clen),
				 0);
		for (size_t cut = 0; cut < clen; cut++) {
			/* Exact-size heap copy so ASan catches reads past the end. */
			uint8_t *t = malloc(cut ? cut : 1);
			int rc;

			memcpy(t, c, cut);
			rc = kp_decompress(NULL, codec, t, cut, out, sizeof(out), &dlen);
			if (codec == KP_COMPRESSION_SNAPPY && rc == 0)
				assert_true(dlen < sizeof(in)); /* cut at a xerial block edge */
			else if (rc != -EBADMSG)
				fail_msg("%s cut at %zu of %zu: rc %d",
					 kp_compression_name(codec), cut, clen, rc);
			free(t);
		}
	}
}

/* ---- batches written by real clients ---- */

struct manifest_entry {
	char file[256];
	char codec[32];
	int count;
};

static enum kp_compression
codec_from_name(const char *name)
{
	for (size_t k = 0; k < NCODECS; k++)
		if (strcmp(name, kp_compression_name(all_codecs[k])) == 0)
			return all_codecs[k];
	fail_msg("MANIFEST names unknown codec '%s'", name);
	return KP_COMPRESSION_NONE;
}

static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (f == NULL)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	assert_int_equal(fseek(f, 0, SEEK_SET), 0);
	buf = malloc(n > 0 ? (size_t)n : 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/*
 * The records of a golden batch: key-<n>, value-<n>, header
 * app=slipstream-golden; n = i for a single-partition run, an increasing
 * subset of n for a multi-partition one (tests/data/batches/README.md).
 */
static void
check_golden_records(const char *what, const uint8_t *rec, size_t rlen, int32_t count)
{
	struct kp_record_iter it;
	struct kp_record r;
	long prev = -1;
	int i, rc;

	kp_record_iter_init(&it, rec, rlen, count);
	for (i = 0; (rc = kp_record_iter_next(&it, &r)) == 1; i++) {
		struct kp_record_header hh;
		const uint8_t *hp = r.headers;
		char k[32], v[32];
		long num;
		int vl;

		assert_int_equal(r.offset_delta, i);
		if (r.key == NULL || r.key_len < 5 || r.key_len > 20 ||
		    memcmp(r.key, "key-", 4) != 0)
			fail_msg("%s: record %d: key is not key-<n>", what, i);
		memcpy(k, r.key, (size_t)r.key_len);
		k[r.key_len] = 0;
		num = strtol(k + 4, NULL, 10);
		if (num <= prev || (i == 0 && num > 100000))
			fail_msg("%s: record %d: key %s out of order", what, i, k);
		prev = num;
		vl = snprintf(v, sizeof(v), "value-%ld", num);
		if (r.value_len != vl || memcmp(r.value, v, (size_t)vl) != 0)
			fail_msg("%s: record %d: value does not match %s", what, i, k);
		assert_int_equal(r.header_count, 1);
		assert_int_equal(kp_record_header_next(&hp, r.headers + r.headers_len, &hh), 1);
		assert_int_equal(hh.key_len, 3);
		assert_memory_equal(hh.key, "app", 3);
		assert_int_equal(hh.value_len, 17);
		assert_memory_equal(hh.value, "slipstream-golden", 17);
		assert_int_equal(kp_record_header_next(&hp, r.headers + r.headers_len, &hh), 0);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(i, count);
}

static void
check_client_batch(const struct manifest_entry *e)
{
	char path[512];
	size_t len, rlen;
	uint8_t *b, *scratch = malloc(KP_BATCH_MAX_RECORDS_BYTES);
	struct kp_batch_header h;
	enum kp_compression codec = codec_from_name(e->codec);
	int rc;

	snprintf(path, sizeof(path), "%s/batches/%s", SLP_TEST_DATA_DIR, e->file);
	b = read_file(path, &len);
	rc = kp_batch_validate(b, len, 1, &h);
	if (rc != 0)
		fail_msg("%s: kp_batch_validate = %d", e->file, rc);
	assert_int_equal(kp_batch_size(&h), len);
	assert_int_equal(kp_batch_compression(&h), codec);
	assert_int_equal(h.records_count, e->count);
	assert_int_equal(kp_batch_validate_deep(NULL, b, len, scratch, KP_BATCH_MAX_RECORDS_BYTES,
						&h, &rlen),
			 0);
	assert_int_equal(kp_batch_records_decompress(NULL, b, &h, scratch,
						     KP_BATCH_MAX_RECORDS_BYTES, &rlen),
			 0);
	check_golden_records(e->file, scratch, rlen, h.records_count);
	/* A one-byte flip anywhere after the CRC field is caught. */
	b[len - 1] ^= 0x40;
	assert_int_equal(kp_batch_validate(b, len, 1, &h), -EBADMSG);
	free(b);
	free(scratch);
}

static void
test_client_batches(void **state)
{
	char path[512], line[1024];
	FILE *f;
	int n = 0, seen[KP_COMPRESSION_ZSTD + 1] = {0};

	(void)state;
	snprintf(path, sizeof(path), "%s/batches/MANIFEST", SLP_TEST_DATA_DIR);
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("%s is missing: the real-client batches have not landed", path);
	while (fgets(line, sizeof(line), f) != NULL) {
		struct manifest_entry e;
		char *p = line;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#' || *p == '\n' || *p == '\0')
			continue;
		memset(&e, 0, sizeof(e));
		if (sscanf(p, "%255s %31s %d", e.file, e.codec, &e.count) != 3)
			fail_msg("MANIFEST: bad line '%s'", line);
		check_client_batch(&e);
		seen[codec_from_name(e.codec)]++;
		n++;
	}
	fclose(f);
	print_message("validated %d client batches (none %d gzip %d snappy %d lz4 %d zstd %d)\n",
		      n, seen[0], seen[1], seen[2], seen[3], seen[4]);
	for (int c = KP_COMPRESSION_GZIP; c <= KP_COMPRESSION_ZSTD; c++)
		if (seen[c] == 0)
			fail_msg("MANIFEST lists no %s batch",
				 kp_compression_name((enum kp_compression)c));
}

/* Every Produce request captured from a real client: decode it with the
 * generated codec, then validate (deep), decompress and check every batch. */
static void
test_golden_produce_frames(void **state)
{
	static const char *clients[] = {"kcat", "confluent_kafka", "kafka_python", "kafkajs",
					"platformatic_kafka"};
	static uint8_t arena_buf[1 << 16];
	uint8_t *scratch = malloc(KP_BATCH_MAX_RECORDS_BYTES);
	int frames = 0, batches = 0, seen[KP_COMPRESSION_ZSTD + 1] = {0};

	(void)state;
	for (size_t c = 0; c < sizeof(clients) / sizeof(clients[0]); c++) {
		char dir[512];
		DIR *d;
		struct dirent *de;

		snprintf(dir, sizeof(dir), "%s/golden/%s", SLP_TEST_DATA_DIR, clients[c]);
		d = opendir(dir);
		if (d == NULL)
			fail_msg("%s is missing", dir);
		while ((de = readdir(d)) != NULL) {
			char path[1024];
			struct kp_arena a;
			struct kp_reader r;
			struct kp_request_header h;
			struct kp_produce_request m;
			size_t len;
			uint8_t *frame;
			int rc;

			if (strstr(de->d_name, "_Produce_v") == NULL ||
			    strstr(de->d_name, ".bin") == NULL)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			frame = read_file(path, &len);
			kp_arena_init(&a, arena_buf, sizeof(arena_buf));
			kp_reader_init(&r, frame, len);
			rc = kp_request_header_read(&h, NULL, &r, &a);
			if (rc == 0)
				rc = kp_produce_request_decode(&m, h.request_api_version, &r, &a);
			if (rc != 0)
				fail_msg("%s: Produce decode %d", path, rc);
			for (int32_t t = 0; t < m.topic_data.count; t++) {
				const struct kp_produce_request_topic_produce_data *td =
					&m.topic_data.items[t];

				for (int32_t p = 0; p < td->partition_data.count; p++) {
					const struct kp_bytes *rec = &td->partition_data.items[p].records;
					size_t off = 0;

					assert_true(rec->len > 0);
					while (off < (size_t)rec->len) {
						struct kp_batch_header bh;
						size_t rlen;

						rc = kp_batch_validate_deep(
							NULL, rec->ptr + off, (size_t)rec->len - off,
							scratch, KP_BATCH_MAX_RECORDS_BYTES, &bh, &rlen);
						if (rc != 0)
							fail_msg("%s: batch at %zu: %d", path, off, rc);
						check_golden_records(
							path,
							kp_batch_compression(&bh) == KP_COMPRESSION_NONE
								? kp_batch_records(rec->ptr + off)
								: scratch,
							rlen, bh.records_count);
						seen[kp_batch_compression(&bh)]++;
						batches++;
						off += kp_batch_size(&bh);
					}
				}
			}
			free(frame);
			frames++;
		}
		closedir(d);
	}
	print_message("validated %d batches in %d golden Produce frames (none %d gzip %d "
		      "snappy %d lz4 %d zstd %d)\n",
		      batches, frames, seen[0], seen[1], seen[2], seen[3], seen[4]);
	assert_true(frames >= 20);
	for (int c = KP_COMPRESSION_NONE; c <= KP_COMPRESSION_ZSTD; c++)
		if (seen[c] == 0)
			fail_msg("no golden Produce frame carries a %s batch",
				 kp_compression_name((enum kp_compression)c));
	free(scratch);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_levels_and_errors),
		cmocka_unit_test(test_snappy_raw_and_xerial),
		cmocka_unit_test(test_concatenated),
		cmocka_unit_test(test_framing_variants),
		cmocka_unit_test(test_failing_allocation),
		cmocka_unit_test(test_bombs),
		cmocka_unit_test(test_snappy_bombs),
		cmocka_unit_test(test_garbage_and_truncation),
		cmocka_unit_test(test_client_batches),
		cmocka_unit_test(test_golden_produce_frames),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
