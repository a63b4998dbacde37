/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Record batch v2 (magic 2): parse, validate, iterate records, build.
 *
 * A batch is stored and sent byte for byte as the client produced it; the
 * broker only rewrites baseOffset (not covered by the CRC) and, on the
 * leader, partitionLeaderEpoch. Everything here borrows the caller's buffer:
 * no function keeps a pointer past its return except the iterator, which
 * borrows the records region for its own lifetime.
 *
 * Wire layout (big endian), offsets in bytes from the start of the batch:
 *
 *   off size field
 *     0    8 baseOffset
 *     8    4 batchLength            bytes after this field (total = 12 + batchLength)
 *    12    4 partitionLeaderEpoch
 *    16    1 magic                  2
 *    17    4 crc                    CRC-32C of bytes 21 .. end
 *    21    2 attributes             bits 0-2 compression, 3 timestamp type,
 *                                   4 transactional, 5 control, 6 delete horizon
 *    23    4 lastOffsetDelta
 *    27    8 baseTimestamp          (firstTimestamp)
 *    35    8 maxTimestamp
 *    43    8 producerId
 *    51    2 producerEpoch
 *    53    4 baseSequence
 *    57    4 recordsCount
 *    61      records (compressed as one block when compression != 0)
 *
 * Legacy message sets (magic 0 and 1) are rejected with -EILSEQ, which
 * kp_error_from_errno() maps to UNSUPPORTED_FOR_MESSAGE_FORMAT: Slipstream
 * serves Produce v3 and later only, as Apache Kafka 4.0 does (KIP-896).
 *
 * Errors: every function returns 0 (or a count) on success and a negative
 * errno from the table in kp_error.h on failure.
 */
#ifndef SLP_KP_BATCH_H
#define SLP_KP_BATCH_H

#include <stddef.h>
#include <stdint.h>

#define KP_BATCH_LOG_OVERHEAD 12 /* baseOffset + batchLength */
#define KP_BATCH_HEADER_SIZE 61	 /* through recordsCount */
#define KP_BATCH_CRC_START 21	 /* first byte covered by the CRC */
#define KP_BATCH_MAGIC 2

#define KP_BATCH_ATTR_COMPRESSION_MASK 0x07
#define KP_BATCH_ATTR_TIMESTAMP_TYPE 0x08 /* set: LogAppendTime */
#define KP_BATCH_ATTR_TRANSACTIONAL 0x10
#define KP_BATCH_ATTR_CONTROL 0x20
#define KP_BATCH_ATTR_DELETE_HORIZON 0x40

enum kp_compression {
	KP_COMPRESSION_NONE = 0,
	KP_COMPRESSION_GZIP = 1,
	KP_COMPRESSION_SNAPPY = 2,
	KP_COMPRESSION_LZ4 = 3,
	KP_COMPRESSION_ZSTD = 4,
};

/* Decoded fixed header of a v2 batch, host byte order. */
struct kp_batch_header {
	int64_t base_offset;
	int32_t batch_length; /* bytes after the batchLength field */
	int32_t partition_leader_epoch;
	int8_t magic;
	uint32_t crc;
	int16_t attributes;
	int32_t last_offset_delta;
	int64_t base_timestamp;
	int64_t max_timestamp;
	int64_t producer_id;
	int16_t producer_epoch;
	int32_t base_sequence;
	int32_t records_count;
};

/** Total bytes of the batch on the wire: 12 + batch_length. */
static inline size_t
kp_batch_size(const struct kp_batch_header *h)
{
	return (size_t)KP_BATCH_LOG_OVERHEAD + (size_t)h->batch_length;
}

static inline enum kp_compression
kp_batch_compression(const struct kp_batch_header *h)
{
	return (enum kp_compression)(h->attributes & KP_BATCH_ATTR_COMPRESSION_MASK);
}

/**
 * Decode the fixed header of the batch at @buf without checking the CRC.
 * Checks magic (-EILSEQ for 0/1, -EBADMSG for others), that batchLength
 * covers the header and that 12 + batchLength <= @len (-EBADMSG otherwise).
 *
 * @param buf  borrowed; at least @len readable bytes.
 * @param hdr  filled on success.
 */
int
kp_batch_header_parse(const uint8_t *buf, size_t len, struct kp_batch_header *hdr);

/**
 * Full validation of one batch as a broker must do before appending it:
 * header (as kp_batch_header_parse), CRC-32C over bytes 21..end (isa-l),
 * known compression codec (-ENOTSUP), records_count >= 0 and
 * last_offset_delta consistent with it, max_timestamp >= base_timestamp for
 * CreateTime batches (-ERANGE). For uncompressed batches also walks every
 * record (varint lengths inside the batch, offset deltas 0..count-1, header
 * counts) and fails with -EBADMSG on any inconsistency. Compressed batches
 * are walked only when @deep is set (decompression is bounded, see
 * kp_compress.h).
 *
 * Errors, in the order checked: kp_batch_header_parse's (-EILSEQ legacy
 * magic, -EBADMSG other magic or lengths); -EBADMSG CRC mismatch; -ENOTSUP
 * compression codec 5..7; -EBADMSG records_count < 0; -EINVAL records_count
 * 0 or last_offset_delta != records_count - 1 (Kafka's INVALID_RECORD on
 * Produce); -ERANGE CreateTime max_timestamp < base_timestamp; -EBADMSG
 * malformed record walk (varints, lengths, offset deltas, fewer records than
 * counted, trailing bytes); for @deep compressed batches also -EBADMSG
 * corrupt compressed data and -E2BIG records inflating beyond
 * KP_BATCH_MAX_RECORDS_BYTES; -ENOMEM if the thread's scratch buffer (see
 * kp_batch_validate_deep for the allocation-free form) cannot be allocated.
 * Batches rewritten by compaction (gaps in offset deltas) are not valid
 * Produce input and fail here; storage recovery uses kp_batch_header_parse
 * plus kp_batch_crc_check instead.
 *
 * @param buf   borrowed batch bytes, starting at baseOffset.
 * @param len   bytes available; must be >= the batch size.
 * @param deep  non-zero: also decompress and walk compressed records.
 * @param hdr   filled on success.
 */
int
kp_batch_validate(const uint8_t *buf, size_t len, int deep, struct kp_batch_header *hdr);

/** Rewrite baseOffset in place (not covered by the CRC). */
void
kp_batch_set_base_offset(uint8_t *buf, int64_t base_offset);

/** Rewrite partitionLeaderEpoch in place (not covered by the CRC). */
void
kp_batch_set_leader_epoch(uint8_t *buf, int32_t epoch);

/* One record inside a batch; pointers borrow the records region. */
struct kp_record {
	int8_t attributes;
	int64_t timestamp_delta;
	int32_t offset_delta;
	const uint8_t *key; /* NULL when key_len == -1 */
	int32_t key_len;    /* -1: null key */
	const uint8_t *value;
	int32_t value_len; /* -1: null value (tombstone) */
	int32_t header_count;
	const uint8_t *headers; /* raw encoded headers, header_count entries */
	size_t headers_len;
};

/* Iterator over the (uncompressed) records region of a batch. */
struct kp_record_iter {
	const uint8_t *pos;
	const uint8_t *end;
	int32_t remaining; /* records not yet returned; -1 after a failure */
};

/**
 * Start iterating @count records in the uncompressed records region
 * [@records, @records + @len). The iterator borrows the region.
 */
void
kp_record_iter_init(struct kp_record_iter *it, const uint8_t *records, size_t len, int32_t count);

/**
 * Next record.
 * @return 1 and fills @rec; 0 at the end (all @count records read and no
 *         trailing bytes); -EBADMSG on a malformed record or trailing bytes.
 */
int
kp_record_iter_next(struct kp_record_iter *it, struct kp_record *rec);

/* One header of a record; pointers borrow the record. */
struct kp_record_header {
	const uint8_t *key;
	int32_t key_len;
	const uint8_t *value; /* NULL when value_len == -1 */
	int32_t value_len;
};

/** Iterate a record's headers: call with *@pos = rec->headers, end = headers + headers_len. */
int
kp_record_header_next(const uint8_t **pos, const uint8_t *end, struct kp_record_header *h);

/* ---- Additions beyond the first API (all borrow the caller's buffers) ---- */

struct kp_codec_ctx; /* kp_compress.h */

/*
 * Bound on the decompressed records region that kp_batch_validate() accepts
 * when it walks a compressed batch with its own scratch buffer: 32 MiB, far
 * above what a 1 MiB message.max.bytes batch of realistic data inflates to.
 * Larger fails with -E2BIG (RECORD_LIST_TOO_LARGE).
 */
#define KP_BATCH_MAX_RECORDS_BYTES (32u << 20)

/** Smallest possible encoded record: length varint + 6 one-byte fields. */
#define KP_RECORD_MIN_SIZE 7

/**
 * CRC-32C (Castagnoli, the one Kafka batches carry) of @len bytes, standard
 * form: CRC-32C("123456789") == 0xE3069283. isa-l's crc32_iscsi underneath.
 */
uint32_t
kp_crc32c(const uint8_t *buf, size_t len);

/**
 * Check a batch's stored CRC against bytes 21..end. The caller has parsed the
 * header (kp_batch_header_parse) so the batch is known to fit in @buf. For
 * storage recovery, which must not apply Produce-time rules.
 * @return 0 if it matches, -EBADMSG otherwise.
 */
int
kp_batch_crc_check(const uint8_t *buf, const struct kp_batch_header *hdr);

/**
 * Recompute the CRC of a batch of @size bytes (12 + batchLength) and store it,
 * after rewriting covered fields (attributes, maxTimestamp for LogAppendTime).
 */
void
kp_batch_crc_update(uint8_t *buf, size_t size);

/**
 * Stamp a batch of @size bytes with the broker's clock, as a LogAppendTime
 * topic keeps it: timestamp type bit set, maxTimestamp = @now_ms, CRC
 * recomputed (Kafka's setMaxTimestamp(LOG_APPEND_TIME, now)). Readers take
 * every record's timestamp from maxTimestamp then.
 */
void
kp_batch_set_log_append_time(uint8_t *buf, size_t size, int64_t now_ms);

/** The records region (compressed or not) of a parsed batch; borrows @buf. */
static inline const uint8_t *
kp_batch_records(const uint8_t *buf)
{
	return buf + KP_BATCH_HEADER_SIZE;
}

/** Bytes of the records region (as stored, i.e. compressed size if compressed). */
static inline size_t
kp_batch_records_len(const struct kp_batch_header *h)
{
	return kp_batch_size(h) - KP_BATCH_HEADER_SIZE;
}

/**
 * Like kp_batch_validate(@buf, @len, 1, @hdr) but walks a compressed batch
 * after decompressing it into the caller's @scratch (capacity @scratch_cap,
 * the decompression bound), so nothing is allocated: the hot-path form.
 * Uncompressed batches do not touch @scratch (may be NULL then).
 *
 * @param ctx          codec context; NULL for the thread's context.
 * @param scratch      borrowed; overwritten with the decompressed records.
 * @param records_len  if not NULL, set to the decompressed (or, uncompressed,
 *                     stored) records size on success.
 * @return 0, or the errors of kp_batch_validate; -E2BIG when the records
 *         inflate beyond @scratch_cap.
 */
int
kp_batch_validate_deep(struct kp_codec_ctx *ctx, const uint8_t *buf, size_t len,
		       uint8_t *scratch, size_t scratch_cap, struct kp_batch_header *hdr,
		       size_t *records_len);

/**
 * Decompress the records region of a parsed batch into @out (at most
 * @out_cap bytes; -E2BIG beyond). An uncompressed batch's region is copied.
 * Then iterate with kp_record_iter_init(it, out, *out_len, hdr->records_count).
 *
 * @param ctx      NULL for the thread's context.
 * @param buf      borrowed batch, already parsed into @hdr.
 * @param out      borrowed output buffer.
 * @return 0; -E2BIG; -EBADMSG corrupt compressed data; -ENOTSUP codec.
 */
int
kp_batch_records_decompress(struct kp_codec_ctx *ctx, const uint8_t *buf,
			    const struct kp_batch_header *hdr, uint8_t *out, size_t out_cap,
			    size_t *out_len);

/**
 * Rewrite batch @buf (parsed into @hdr, CRC checked) with codec @to, as a
 * broker whose topic sets compression.type does: the records are walked as
 * kp_batch_validate_deep does (decompressed into @scratch first when
 * compressed), then compressed with @to at the codec's default level into
 * @out after a copy of the header, whose codec bits, batchLength and CRC are
 * rewritten; every other field (producer, sequence, timestamps, leader epoch,
 * other attribute bits) is kept.
 *
 * @param out       borrowed; at least KP_BATCH_HEADER_SIZE +
 *                  kp_compress_bound(@to, records) bytes, else -ENOBUFS.
 * @param out_size  set to the new batch's size on success.
 * @return 0; the errors of kp_batch_validate_deep and kp_compress.
 */
int
kp_batch_recompress(struct kp_codec_ctx *ctx, const uint8_t *buf, const struct kp_batch_header *hdr,
		    enum kp_compression to, uint8_t *scratch, size_t scratch_cap, uint8_t *out,
		    size_t out_cap, size_t *out_size);

/**
 * Start iterating the records of a parsed batch whatever its codec: an
 * uncompressed batch is iterated in place (the iterator borrows @buf), a
 * compressed one is first decompressed into @scratch (at most @scratch_cap
 * bytes) and the iterator borrows @scratch. @scratch may be NULL for
 * uncompressed batches.
 * @return 0; the errors of kp_batch_records_decompress().
 */
int
kp_batch_record_iter_init(struct kp_codec_ctx *ctx, struct kp_record_iter *it, const uint8_t *buf,
			  const struct kp_batch_header *hdr, uint8_t *scratch, size_t scratch_cap);

/**
 * Walk @count records in an uncompressed records region as validation does:
 * every record well framed, offset deltas 0..count-1, no trailing bytes.
 * @return 0 or -EBADMSG.
 */
int
kp_records_validate(const uint8_t *records, size_t len, int32_t count);

/*
 * Batch builder: writes one v2 batch into a caller buffer. Used by tests, the
 * load generator and the control plane (which appends its own batches).
 *
 *   struct kp_batch_builder b;
 *   kp_batch_builder_start(&b, buf, cap, KP_COMPRESSION_LZ4);
 *   kp_batch_builder_add(&b, ts, key, klen, val, vlen, NULL, 0);   // repeat
 *   kp_batch_builder_finish(&b, &size);  // buf[0..size) is the batch
 *
 * Records are encoded uncompressed into @buf; finish compresses them (when a
 * codec is set) into @scratch, or a temporary heap buffer if none was given,
 * and copies the result back. The public fields below may be set between
 * start and finish; they default to a non-idempotent, non-transactional
 * client batch (producer id/epoch/sequence -1, offset 0, leader epoch -1).
 */
struct kp_batch_builder {
	/* Settable fields (defaults from start). */
	int64_t base_offset;
	int32_t partition_leader_epoch;
	int16_t attributes; /* extra bits (transactional, control, timestamp type); codec set by start */
	int64_t producer_id;
	int16_t producer_epoch;
	int32_t base_sequence;
	int level;		       /* compression level, KP_COMPRESS_LEVEL_DEFAULT */
	struct kp_codec_ctx *ctx;      /* NULL: the thread's context */
	uint8_t *scratch;	       /* optional compression buffer (borrowed) */
	size_t scratch_cap;
	/* Internal state. */
	uint8_t *buf; /* borrowed output buffer */
	size_t cap;
	size_t pos; /* end of the records written so far */
	enum kp_compression codec;
	int64_t base_timestamp;
	int64_t max_timestamp;
	int32_t count;
};

/**
 * Start a batch in @buf (borrowed until finish). @cap must hold at least the
 * 61-byte header (-ENOBUFS otherwise). @codec: -ENOTSUP if unknown.
 */
int
kp_batch_builder_start(struct kp_batch_builder *b, uint8_t *buf, size_t cap,
		       enum kp_compression codec);

/**
 * Append one record. The first record's @timestamp becomes the batch's
 * baseTimestamp. @key/@value NULL mean a null key / tombstone (their length
 * is then ignored). @headers: @header_count entries (value NULL = null value).
 * Copies all bytes into the batch; borrows nothing after return.
 * @return 0; -ENOBUFS if the record does not fit; -EINVAL bad lengths.
 */
int
kp_batch_builder_add(struct kp_batch_builder *b, int64_t timestamp, const void *key,
		     size_t key_len, const void *value, size_t value_len,
		     const struct kp_record_header *headers, size_t header_count);

/**
 * Finish the batch: compress the records when a codec is set, fill
 * batchLength, lastOffsetDelta, timestamps, count and the CRC.
 * An empty batch (no records) is written with lastOffsetDelta 0 and
 * timestamps -1; kp_batch_validate rejects it, as Kafka does on Produce.
 * @param size  set to the total batch size (12 + batchLength).
 * @return 0; -ENOBUFS if the compressed records do not fit; -ENOMEM.
 */
int
kp_batch_builder_finish(struct kp_batch_builder *b, size_t *size);

#endif /* SLP_KP_BATCH_H */
