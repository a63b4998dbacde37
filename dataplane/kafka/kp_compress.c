/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compression codecs of Kafka record batches (see kp_compress.h): bounded
 * decompression into a caller buffer, and compression in the formats the
 * Java client writes. Each codec keeps its state in struct kp_codec_ctx so a
 * call allocates nothing once the context has been used.
 */
#include "kp_compress.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/igzip_lib.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <zstd.h>
#include <zstd_errors.h>

#define KP_GZIP_LEVEL_DEFAULT 1
#define KP_ZSTD_LEVEL_DEFAULT 3 /* Kafka's compression.zstd.level default */

struct kp_codec_ctx {
	struct inflate_state inflate; /* isa-l, ~85 KiB, reset per call */
	struct isal_zstream deflate;
	uint8_t *deflate_level_buf; /* sized for the largest isa-l level */
	ZSTD_DCtx *zstd_d;
	ZSTD_CCtx *zstd_c;
	LZ4F_dctx *lz4_d;
	LZ4F_cctx *lz4_c;
	uint8_t *scratch; /* KP_BATCH_MAX_RECORDS_BYTES, lazily */
};

static const uint8_t kp_xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};

static inline uint32_t
kp_rd_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void
kp_wr_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

struct kp_codec_ctx *
kp_codec_ctx_create(void)
{
	struct kp_codec_ctx *ctx = calloc(1, sizeof(*ctx));

	/* Codec contexts are created lazily on first use of each codec. */
	return ctx;
}

void
kp_codec_ctx_destroy(struct kp_codec_ctx *ctx)
{
	if (ctx == NULL)
		return;
	free(ctx->deflate_level_buf);
	free(ctx->scratch);
	ZSTD_freeDCtx(ctx->zstd_d);
	ZSTD_freeCCtx(ctx->zstd_c);
	LZ4F_freeDecompressionContext(ctx->lz4_d);
	LZ4F_freeCompressionContext(ctx->lz4_c);
	free(ctx);
}

uint8_t *
kp_codec_ctx_scratch(struct kp_codec_ctx *ctx)
{
	if (ctx->scratch == NULL)
		ctx->scratch = malloc(KP_BATCH_MAX_RECORDS_BYTES);
	return ctx->scratch;
}

static pthread_key_t kp_codec_key;
static pthread_once_t kp_codec_key_once = PTHREAD_ONCE_INIT;
static __thread struct kp_codec_ctx *kp_codec_tls;

static void
kp_codec_key_dtor(void *p)
{
	kp_codec_ctx_destroy(p);
}

static void
kp_codec_key_init(void)
{
	(void)pthread_key_create(&kp_codec_key, kp_codec_key_dtor);
}

struct kp_codec_ctx *
kp_codec_ctx_thread(void)
{
	if (kp_codec_tls != NULL)
		return kp_codec_tls;
	pthread_once(&kp_codec_key_once, kp_codec_key_init);
	kp_codec_tls = kp_codec_ctx_create();
	if (kp_codec_tls != NULL)
		(void)pthread_setspecific(kp_codec_key, kp_codec_tls);
	return kp_codec_tls;
}

const char *
kp_compression_name(enum kp_compression codec)
{
	switch (codec) {
	case KP_COMPRESSION_NONE:
		return "none";
	case KP_COMPRESSION_GZIP:
		return "gzip";
	case KP_COMPRESSION_SNAPPY:
		return "snappy";
	case KP_COMPRESSION_LZ4:
		return "lz4";
	case KP_COMPRESSION_ZSTD:
		return "zstd";
	}
	return "unknown";
}

/* LZ4 frame settings of the Java client: 64 KiB independent blocks, no checksums. */
static void
kp_lz4_prefs(LZ4F_preferences_t *p, int level)
{
	memset(p, 0, sizeof(*p));
	p->frameInfo.blockSizeID = LZ4F_max64KB;
	p->frameInfo.blockMode = LZ4F_blockIndependent;
	p->frameInfo.contentChecksumFlag = LZ4F_noContentChecksum;
	p->compressionLevel = level;
}

size_t
kp_compress_bound(enum kp_compression codec, size_t in_len)
{
	switch (codec) {
	case KP_COMPRESSION_NONE:
		return in_len;
	case KP_COMPRESSION_GZIP:
		/* Stored blocks: 5 bytes per 64 KiB block worst case, plus a
		 * generous allowance for isa-l's block headers, gzip header and
		 * trailer (10 + 8). */
		return in_len + (in_len >> 10) + 5 * (in_len / 65535 + 1) + 256;
	case KP_COMPRESSION_SNAPPY: {
		size_t blocks = (in_len + KP_SNAPPY_XERIAL_BLOCK - 1) / KP_SNAPPY_XERIAL_BLOCK;
		return KP_SNAPPY_XERIAL_HEADER_SIZE +
		       blocks * (4 + snappy_max_compressed_length(KP_SNAPPY_XERIAL_BLOCK));
	}
	case KP_COMPRESSION_LZ4: {
		LZ4F_preferences_t p;
		kp_lz4_prefs(&p, 0);
		return LZ4F_compressFrameBound(in_len, &p);
	}
	case KP_COMPRESSION_ZSTD:
		return ZSTD_compressBound(in_len);
	}
	return 0;
}

/* ---- gzip (isa-l igzip) ---- */

static int
kp_gzip_compress(struct kp_codec_ctx *ctx, int level, const uint8_t *in, size_t in_len,
		 uint8_t *out, size_t out_cap, size_t *out_len)
{
	static const uint32_t lvl_buf_size[] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT,
						ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT};
	struct isal_zstream *s = &ctx->deflate;

	if (level == KP_COMPRESS_LEVEL_DEFAULT)
		level = KP_GZIP_LEVEL_DEFAULT;
	if (level < 0 || level > 3)
		return -EINVAL;
	if (in_len > UINT32_MAX || out_cap > UINT32_MAX)
		return -ENOBUFS;
	if (ctx->deflate_level_buf == NULL) {
		ctx->deflate_level_buf = malloc(ISAL_DEF_LVL3_DEFAULT);
		if (ctx->deflate_level_buf == NULL)
			return -ENOMEM;
	}
	isal_deflate_init(s);
	s->gzip_flag = IGZIP_GZIP;
	s->level = (uint32_t)level;
	s->level_buf = ctx->deflate_level_buf;
	s->level_buf_size = lvl_buf_size[level];
	s->end_of_stream = 1;
	s->flush = NO_FLUSH;
	s->next_in = (uint8_t *)in;
	s->avail_in = (uint32_t)in_len;
	s->next_out = out;
	s->avail_out = (uint32_t)out_cap;
	if (isal_deflate(s) != COMP_OK)
		return -EIO;
	if (s->internal_state.state != ZSTATE_END)
		return -ENOBUFS;
	*out_len = s->total_out;
	return 0;
}

static int
kp_gzip_decompress(struct kp_codec_ctx *ctx, const uint8_t *in, size_t in_len, uint8_t *out,
		   size_t out_cap, size_t *out_len)
{
	struct inflate_state *st = &ctx->inflate;
	uint8_t probe;
	size_t produced = 0; /* bytes in @out, fixed once probing */
	int probing = 0;

	if (in_len > UINT32_MAX)
		return -EBADMSG;
	if (out_cap > UINT32_MAX)
		out_cap = UINT32_MAX; /* never reached: batches are < 2 GiB */
	isal_inflate_init(st);
	st->crc_flag = ISAL_GZIP;
	st->next_in = (uint8_t *)in;
	st->avail_in = (uint32_t)in_len;
	st->next_out = out;
	st->avail_out = (uint32_t)out_cap;
	for (;;) {
		uint32_t before_in = st->avail_in, before_out = st->avail_out;
		int ret = isal_inflate(st);

		if (ret < 0)
			return -EBADMSG;
		if (probing && st->avail_out == 0)
			return -E2BIG; /* output beyond the bound */
		if (!probing)
			produced = (size_t)(st->next_out - out);
		if (st->block_state == ISAL_BLOCK_FINISH) {
			if (st->avail_in == 0)
				break;
			/* Another gzip member follows (GZIPInputStream reads them). */
			uint8_t *next_out = st->next_out;
			uint32_t avail_out = st->avail_out;
			uint8_t *next_in = st->next_in;
			uint32_t avail_in = st->avail_in;
			isal_inflate_reset(st);
			st->crc_flag = ISAL_GZIP;
			st->next_in = next_in;
			st->avail_in = avail_in;
			st->next_out = next_out;
			st->avail_out = avail_out;
			continue;
		}
		if (!probing && st->avail_out == 0) {
			/* Output full: is there more? Let it write into one spare byte. */
			probing = 1;
			st->next_out = &probe;
			st->avail_out = 1;
			continue;
		}
		if (st->avail_in == before_in && st->avail_out == before_out)
			return -EBADMSG; /* truncated: no progress without more input */
	}
	*out_len = produced;
	return 0;
}

/* ---- snappy ---- */

static int
kp_snappy_raw_decompress(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
			 size_t *out_len)
{
	size_t ulen, olen = out_cap;

	if (snappy_uncompressed_length((const char *)in, in_len, &ulen) != SNAPPY_OK)
		return -EBADMSG;
	/* The densest snappy element is a 3-byte copy of 64 bytes: a block
	 * claiming more than ~22x its size is corrupt, not merely too big. */
	if (ulen / 22 > in_len)
		return -EBADMSG;
	if (ulen > out_cap)
		return -E2BIG; /* the block declares its size: no work done */
	if (snappy_uncompress((const char *)in, in_len, (char *)out, &olen) != SNAPPY_OK)
		return -EBADMSG;
	*out_len = olen;
	return 0;
}

static int
kp_snappy_decompress(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
		     size_t *out_len)
{
	size_t pos, total = 0;

	if (in_len < KP_SNAPPY_XERIAL_HEADER_SIZE ||
	    memcmp(in, kp_xerial_magic, sizeof(kp_xerial_magic)) != 0)
		return kp_snappy_raw_decompress(in, in_len, out, out_cap, out_len);
	/* xerial: magic, int32 version, int32 compatible version, then blocks of
	 * [int32 BE compressed length][raw snappy]. Versions are not checked:
	 * snappy-java writes 1/1 and every version uses this block layout. */
	pos = KP_SNAPPY_XERIAL_HEADER_SIZE;
	while (pos < in_len) {
		uint32_t blen;
		size_t n;
		int rc;

		if (in_len - pos < 4)
			return -EBADMSG;
		blen = kp_rd_be32(in + pos);
		pos += 4;
		if (blen > in_len - pos)
			return -EBADMSG;
		rc = kp_snappy_raw_decompress(in + pos, blen, out + total, out_cap - total, &n);
		if (rc < 0)
			return rc;
		total += n;
		pos += blen;
	}
	*out_len = total;
	return 0;
}

static int
kp_snappy_compress(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
		   size_t *out_len)
{
	size_t pos = 0, o = KP_SNAPPY_XERIAL_HEADER_SIZE;

	if (out_cap < KP_SNAPPY_XERIAL_HEADER_SIZE)
		return -ENOBUFS;
	memcpy(out, kp_xerial_magic, sizeof(kp_xerial_magic));
	kp_wr_be32(out + 8, 1);
	kp_wr_be32(out + 12, 1);
	while (pos < in_len) {
		size_t n = in_len - pos < KP_SNAPPY_XERIAL_BLOCK ? in_len - pos
								  : KP_SNAPPY_XERIAL_BLOCK;
		size_t clen;

		if (out_cap - o < 4 || out_cap - o - 4 < snappy_max_compressed_length(n))
			return -ENOBUFS;
		clen = out_cap - o - 4;
		if (snappy_compress((const char *)in + pos, n, (char *)out + o + 4, &clen) !=
		    SNAPPY_OK)
			return -EIO;
		kp_wr_be32(out + o, (uint32_t)clen);
		o += 4 + clen;
		pos += n;
	}
	*out_len = o;
	return 0;
}

/* ---- lz4 frame ---- */

/* LZ4F_getErrorCode() is not in the stable API; its name string is. */
static int
kp_lz4_errno(size_t r)
{
	return strcmp(LZ4F_getErrorName(r), "ERROR_allocation_failed") == 0 ? -ENOMEM : -EBADMSG;
}

static int
kp_lz4_decompress(struct kp_codec_ctx *ctx, const uint8_t *in, size_t in_len, uint8_t *out,
		  size_t out_cap, size_t *out_len)
{
	const uint8_t *ip = in, *iend = in + in_len;
	uint8_t *op = out, *oend = out + out_cap;
	uint8_t probe;

	if (ctx->lz4_d == NULL &&
	    LZ4F_isError(LZ4F_createDecompressionContext(&ctx->lz4_d, LZ4F_VERSION)))
		return -ENOMEM;
	LZ4F_resetDecompressionContext(ctx->lz4_d);
	if (in_len == 0)
		return -EBADMSG;
	for (;;) {
		int probing = op == oend;
		uint8_t *dst = probing ? &probe : op;
		size_t dst_len = probing ? 1 : (size_t)(oend - op);
		size_t src_len = (size_t)(iend - ip);
		LZ4F_decompressOptions_t opts = {.stableDst = 1};
		size_t r = LZ4F_decompress(ctx->lz4_d, dst, &dst_len, ip, &src_len, &opts);

		if (LZ4F_isError(r)) {
			LZ4F_resetDecompressionContext(ctx->lz4_d);
			return kp_lz4_errno(r);
		}
		if (probing && dst_len > 0)
			return -E2BIG;
		if (!probing)
			op += dst_len;
		ip += src_len;
		if (r == 0) {
			/* End of a frame; another may follow. */
			if (ip == iend)
				break;
			continue;
		}
		if (src_len == 0 && dst_len == 0) {
			LZ4F_resetDecompressionContext(ctx->lz4_d);
			return -EBADMSG; /* truncated */
		}
	}
	*out_len = (size_t)(op - out);
	return 0;
}

static int
kp_lz4_compress(struct kp_codec_ctx *ctx, int level, const uint8_t *in, size_t in_len,
		uint8_t *out, size_t out_cap, size_t *out_len)
{
	LZ4F_preferences_t p;
	size_t o, r;

	kp_lz4_prefs(&p, level);
	if (ctx->lz4_c == NULL &&
	    LZ4F_isError(LZ4F_createCompressionContext(&ctx->lz4_c, LZ4F_VERSION)))
		return -ENOMEM;
	if (out_cap < LZ4F_compressFrameBound(in_len, &p))
		return -ENOBUFS; /* LZ4F_compressUpdate requires the bound */
	r = LZ4F_compressBegin(ctx->lz4_c, out, out_cap, &p);
	if (LZ4F_isError(r))
		return kp_lz4_errno(r) == -ENOMEM ? -ENOMEM : -EIO;
	o = r;
	r = LZ4F_compressUpdate(ctx->lz4_c, out + o, out_cap - o, in, in_len, NULL);
	if (LZ4F_isError(r))
		return kp_lz4_errno(r) == -ENOMEM ? -ENOMEM : -EIO;
	o += r;
	r = LZ4F_compressEnd(ctx->lz4_c, out + o, out_cap - o, NULL);
	if (LZ4F_isError(r))
		return -EIO;
	*out_len = o + r;
	return 0;
}

/* ---- zstd ---- */

static int
kp_zstd_decompress(struct kp_codec_ctx *ctx, const uint8_t *in, size_t in_len, uint8_t *out,
		   size_t out_cap, size_t *out_len)
{
	unsigned long long fcs;
	size_t r;

	if (ctx->zstd_d == NULL && (ctx->zstd_d = ZSTD_createDCtx()) == NULL)
		return -ENOMEM;
	fcs = ZSTD_getFrameContentSize(in, in_len);
	if (fcs == ZSTD_CONTENTSIZE_ERROR)
		return -EBADMSG;
	if (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs > out_cap)
		return -E2BIG; /* declared size over the bound: no work done */
	r = ZSTD_decompressDCtx(ctx->zstd_d, out, out_cap, in, in_len);
	if (ZSTD_isError(r)) {
		switch (ZSTD_getErrorCode(r)) {
		case ZSTD_error_dstSize_tooSmall:
			return -E2BIG;
		case ZSTD_error_memory_allocation:
			return -ENOMEM;
		default:
			return -EBADMSG;
		}
	}
	*out_len = r;
	return 0;
}

static int
kp_zstd_compress(struct kp_codec_ctx *ctx, int level, const uint8_t *in, size_t in_len,
		 uint8_t *out, size_t out_cap, size_t *out_len)
{
	size_t r;

	if (level == KP_COMPRESS_LEVEL_DEFAULT)
		level = KP_ZSTD_LEVEL_DEFAULT;
	if (ctx->zstd_c == NULL && (ctx->zstd_c = ZSTD_createCCtx()) == NULL)
		return -ENOMEM;
	r = ZSTD_compressCCtx(ctx->zstd_c, out, out_cap, in, in_len, level);
	if (ZSTD_isError(r)) {
		switch (ZSTD_getErrorCode(r)) {
		case ZSTD_error_dstSize_tooSmall:
			return -ENOBUFS;
		case ZSTD_error_memory_allocation:
			return -ENOMEM;
		default:
			return -EIO;
		}
	}
	*out_len = r;
	return 0;
}

/* ---- dispatch ---- */

int
kp_compress(struct kp_codec_ctx *ctx, enum kp_compression codec, int level, const uint8_t *in,
	    size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
	if (ctx == NULL && (ctx = kp_codec_ctx_thread()) == NULL)
		return -ENOMEM;
	switch (codec) {
	case KP_COMPRESSION_NONE:
		if (in_len > out_cap)
			return -ENOBUFS;
		if (in_len > 0)
			memcpy(out, in, in_len);
		*out_len = in_len;
		return 0;
	case KP_COMPRESSION_GZIP:
		return kp_gzip_compress(ctx, level, in, in_len, out, out_cap, out_len);
	case KP_COMPRESSION_SNAPPY:
		return kp_snappy_compress(in, in_len, out, out_cap, out_len);
	case KP_COMPRESSION_LZ4:
		return kp_lz4_compress(ctx, level, in, in_len, out, out_cap, out_len);
	case KP_COMPRESSION_ZSTD:
		return kp_zstd_compress(ctx, level, in, in_len, out, out_cap, out_len);
	}
	return -ENOTSUP;
}

int
kp_decompress(struct kp_codec_ctx *ctx, enum kp_compression codec, const uint8_t *in,
	      size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
	if (ctx == NULL && (ctx = kp_codec_ctx_thread()) == NULL)
		return -ENOMEM;
	switch (codec) {
	case KP_COMPRESSION_NONE:
		if (in_len > out_cap)
			return -E2BIG;
		if (in_len > 0)
			memcpy(out, in, in_len);
		*out_len = in_len;
		return 0;
	case KP_COMPRESSION_GZIP:
		return kp_gzip_decompress(ctx, in, in_len, out, out_cap, out_len);
	case KP_COMPRESSION_SNAPPY:
		return kp_snappy_decompress(in, in_len, out, out_cap, out_len);
	case KP_COMPRESSION_LZ4:
		return kp_lz4_decompress(ctx, in, in_len, out, out_cap, out_len);
	case KP_COMPRESSION_ZSTD:
		return kp_zstd_decompress(ctx, in, in_len, out, out_cap, out_len);
	}
	return -ENOTSUP;
}
