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
	int32_t remaining; /* records not yet returned */
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

#endif /* SLP_KP_BATCH_H */
