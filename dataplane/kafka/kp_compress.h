/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compression codecs of Kafka record batches: gzip (isa-l igzip), snappy
 * (raw blocks and the xerial framing the Java client writes), lz4 (the
 * standard LZ4 frame format, as record batch v2 uses) and zstd.
 *
 * Decompression is bounded: the caller passes the output buffer and its
 * capacity, and a stream that would produce more fails with -E2BIG (mapped to
 * RECORD_LIST_TOO_LARGE) after at most @out_cap bytes of work, never
 * allocating in proportion to the claimed or real output size. A small
 * "zip bomb" therefore costs at most one bounded buffer. The only memory a
 * codec allocates is its fixed-size context, created once per
 * struct kp_codec_ctx: isa-l inflate/deflate state (in the ctx), the deflate
 * level buffer, a zstd DCtx/CCtx and an LZ4F context (which may hold up to one
 * 4 MiB block buffer when a frame declares 4 MiB blocks).
 *
 * zstd is decompressed in one shot into the caller's buffer
 * (ZSTD_decompressDCtx with the bound as capacity) rather than with
 * ZSTD_decompressStream: with a flat output buffer this decodes frames
 * without a content size just as well, needs no window buffer (a frame
 * declaring a 128 MiB window cannot make us allocate it) and stops at the
 * first block that would overflow the bound.
 *
 * Contexts are not thread-safe: one per thread (lcore). Functions taking a
 * ctx accept NULL and then use the calling thread's own context, created on
 * first use and freed when the thread exits (kp_codec_ctx_thread()).
 *
 * Errors: -EBADMSG corrupt or truncated input, -E2BIG output over the bound,
 * -ENOBUFS compression output buffer too small, -ENOTSUP unknown codec,
 * -ENOMEM context allocation failed.
 */
#ifndef SLP_KP_COMPRESS_H
#define SLP_KP_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "kp_batch.h"

/* Per-thread codec state; opaque. */
struct kp_codec_ctx;

/** Level argument meaning "the codec's Kafka default" (gzip 1, lz4 default, zstd 3). */
#define KP_COMPRESS_LEVEL_DEFAULT 0

/* xerial snappy-java stream framing (SnappyOutputStream / SnappyCodec). */
#define KP_SNAPPY_XERIAL_HEADER_SIZE 16 /* magic(8) version(4) compat(4) */
#define KP_SNAPPY_XERIAL_BLOCK 32768	/* uncompressed bytes per block we write */

/**
 * Allocate a codec context. Allocation happens here (and in the first use of
 * a codec), never per call afterwards.
 * @return an owned context, or NULL on allocation failure.
 */
struct kp_codec_ctx *
kp_codec_ctx_create(void);

/** Free a context from kp_codec_ctx_create(); NULL is a no-op. */
void
kp_codec_ctx_destroy(struct kp_codec_ctx *ctx);

/**
 * The calling thread's own context, created on first call and destroyed at
 * thread exit. Borrowed: do not destroy it.
 * @return the context, or NULL if it could not be allocated.
 */
struct kp_codec_ctx *
kp_codec_ctx_thread(void);

/**
 * A scratch buffer of KP_BATCH_MAX_RECORDS_BYTES owned by @ctx, allocated on
 * first call (its pages are only committed as they are written). Used by
 * kp_batch_validate() for deep validation of compressed batches.
 * @return the buffer (borrowed from @ctx), or NULL on allocation failure.
 */
uint8_t *
kp_codec_ctx_scratch(struct kp_codec_ctx *ctx);

/** Name of a codec ("none", "gzip", "snappy", "lz4", "zstd"), or "unknown". */
const char *
kp_compression_name(enum kp_compression codec);

/**
 * Upper bound of the compressed size of @in_len bytes, for sizing the output
 * of kp_compress().
 * @return the bound; 0 for an unknown codec.
 */
size_t
kp_compress_bound(enum kp_compression codec, size_t in_len);

/**
 * Compress @in into @out in the format a Kafka v2 batch carries for @codec:
 * a gzip member, a xerial snappy stream, an LZ4 frame (64 KiB independent
 * blocks, as the Java client) or a zstd frame. KP_COMPRESSION_NONE copies.
 *
 * @param ctx      NULL for the thread's context.
 * @param level    KP_COMPRESS_LEVEL_DEFAULT, or the codec's level
 *                 (gzip 0..3 in isa-l's scale, lz4 frame level, zstd level).
 * @param in       borrowed input.
 * @param out      borrowed output buffer of @out_cap bytes.
 * @param out_len  set to the compressed size on success.
 * @return 0; -ENOBUFS if @out_cap is too small; -ENOTSUP unknown codec;
 *         -ENOMEM; -EINVAL bad level.
 */
int
kp_compress(struct kp_codec_ctx *ctx, enum kp_compression codec, int level, const uint8_t *in,
	    size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len);

/**
 * Decompress @in into @out, producing at most @out_cap bytes. Snappy input is
 * accepted both raw and in xerial framing (detected by its magic); gzip and
 * lz4 accept concatenated members/frames, zstd concatenated frames.
 *
 * @param ctx      NULL for the thread's context.
 * @param in       borrowed compressed bytes.
 * @param out      borrowed output buffer; contents undefined on failure.
 * @param out_cap  the bound: more output than this fails with -E2BIG.
 * @param out_len  set to the decompressed size on success.
 * @return 0; -E2BIG over the bound; -EBADMSG corrupt or truncated input;
 *         -ENOTSUP unknown codec; -ENOMEM.
 */
int
kp_decompress(struct kp_codec_ctx *ctx, enum kp_compression codec, const uint8_t *in,
	      size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len);

#endif /* SLP_KP_COMPRESS_H */
