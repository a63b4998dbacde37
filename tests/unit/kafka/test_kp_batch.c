/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Record batch v2: CRC-32C, header parse, validation (success and each
 * failure with its errno), record and header iterators, offset/epoch
 * rewrites and the builder. Batches for the failure cases are written by
 * hand here (not by the builder) so the parser is not only checked against
 * its own writer; real-client batches are covered by test_kp_compress.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kp_batch.h"
#include "kp_compress.h"
#include "kp_error.h"

/* ---- hand encoding helpers (independent of kp_batch.c) ---- */

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void
put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static size_t
zz(uint8_t *p, int64_t x)
{
	uint64_t v = ((uint64_t)x << 1) ^ (uint64_t)(x >> 63);
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* Encode one record with string key/value (NULL = null) and no headers. */
static size_t
enc_record(uint8_t *out, int32_t offset_delta, int64_t ts_delta, const char *key,
	   const char *value)
{
	uint8_t body[512];
	size_t n = 0, o;

	body[n++] = 0;
	n += zz(body + n, ts_delta);
	n += zz(body + n, offset_delta);
	if (key == NULL) {
		n += zz(body + n, -1);
	} else {
		n += zz(body + n, (int64_t)strlen(key));
		memcpy(body + n, key, strlen(key));
		n += strlen(key);
	}
	if (value == NULL) {
		n += zz(body + n, -1);
	} else {
		n += zz(body + n, (int64_t)strlen(value));
		memcpy(body + n, value, strlen(value));
		n += strlen(value);
	}
	n += zz(body + n, 0);
	o = zz(out, (int64_t)n);
	memcpy(out + o, body, n);
	return o + n;
}

/* Wrap a records region into a v2 batch with a correct CRC. */
static size_t
wrap_batch(uint8_t *out, const uint8_t *records, size_t rlen, int32_t count, int16_t attrs,
	   int64_t base_ts, int64_t max_ts)
{
	memset(out, 0, KP_BATCH_HEADER_SIZE);
	put64(out, 0);
	put32(out + 8, (uint32_t)(KP_BATCH_HEADER_SIZE - 12 + rlen));
	put32(out + 12, 0xffffffffu);
	out[16] = 2;
	out[21] = (uint8_t)(attrs >> 8);
	out[22] = (uint8_t)attrs;
	put32(out + 23, (uint32_t)(count - 1));
	put64(out + 27, (uint64_t)base_ts);
	put64(out + 35, (uint64_t)max_ts);
	put64(out + 43, (uint64_t)-1);
	out[51] = 0xff;
	out[52] = 0xff;
	put32(out + 53, 0xffffffffu);
	put32(out + 57, (uint32_t)count);
	memcpy(out + KP_BATCH_HEADER_SIZE, records, rlen);
	kp_batch_crc_update(out, KP_BATCH_HEADER_SIZE + rlen);
	return KP_BATCH_HEADER_SIZE + rlen;
}

/* A valid three-record batch: "k0"/"v0", null key/"v1", "k2"/tombstone. */
static size_t
sample_batch(uint8_t *out)
{
	uint8_t rec[256];
	size_t n = 0;

	n += enc_record(rec + n, 0, 0, "k0", "v0");
	n += enc_record(rec + n, 1, 5, NULL, "v1");
	n += enc_record(rec + n, 2, 9, "k2", NULL);
	return wrap_batch(out, rec, n, 3, 0, 1000, 1009);
}

static void
fix_crc(uint8_t *b, size_t size)
{
	kp_batch_crc_update(b, size);
}

/* ---- tests ---- */

static void
test_crc32c_check_value(void **state)
{
	static const uint8_t check[] = "123456789";
	static const uint8_t zeros[32];

	(void)state;
	assert_int_equal(kp_crc32c(check, 9), 0xE3069283u);
	/* RFC 3720 B.4: 32 bytes of zeros. */
	assert_int_equal(kp_crc32c(zeros, 32), 0x8A9136AAu);
	assert_int_equal(kp_crc32c(check, 0), 0);
}

static void
test_parse_and_validate_ok(void **state)
{
	uint8_t b[512];
	size_t size = sample_batch(b);
	struct kp_batch_header h;

	(void)state;
	assert_int_equal(kp_batch_header_parse(b, size, &h), 0);
	assert_int_equal(h.magic, 2);
	assert_int_equal(kp_batch_size(&h), size);
	assert_int_equal(h.records_count, 3);
	assert_int_equal(h.last_offset_delta, 2);
	assert_int_equal(h.base_timestamp, 1000);
	assert_int_equal(h.max_timestamp, 1009);
	assert_int_equal(h.producer_id, -1);
	assert_int_equal(h.producer_epoch, -1);
	assert_int_equal(h.base_sequence, -1);
	assert_int_equal(h.partition_leader_epoch, -1);
	assert_int_equal(kp_batch_compression(&h), KP_COMPRESSION_NONE);
	assert_int_equal(kp_batch_validate(b, size, 0, &h), 0);
	assert_int_equal(kp_batch_validate(b, size, 1, &h), 0);
	/* Bytes after the batch (the next batch of a set) are not its concern. */
	assert_int_equal(kp_batch_validate(b, size + 10, 1, &h), 0);
	assert_int_equal(kp_batch_crc_check(b, &h), 0);
}

static void
test_rewrite_offset_and_epoch(void **state)
{
	uint8_t b[512];
	size_t size = sample_batch(b);
	struct kp_batch_header h;

	(void)state;
	kp_batch_set_base_offset(b, 0x0102030405060708LL);
	kp_batch_set_leader_epoch(b, 77);
	/* Neither field is covered by the CRC. */
	assert_int_equal(kp_batch_validate(b, size, 1, &h), 0);
	assert_int_equal(h.base_offset, 0x0102030405060708LL);
	assert_int_equal(h.partition_leader_epoch, 77);
	assert_int_equal(b[0], 1);
	assert_int_equal(b[7], 8);
}

static void
test_truncated(void **state)
{
	uint8_t b[512];
	size_t size = sample_batch(b);
	struct kp_batch_header h;

	(void)state;
	assert_int_equal(kp_batch_header_parse(b, 0, &h), -EBADMSG);
	assert_int_equal(kp_batch_header_parse(b, 16, &h), -EBADMSG);
	assert_int_equal(kp_batch_header_parse(b, 60, &h), -EBADMSG);
	assert_int_equal(kp_batch_header_parse(b, size - 1, &h), -EBADMSG);
	assert_int_equal(kp_batch_validate(b, size - 1, 1, &h), -EBADMSG);
	assert_int_equal(kp_batch_validate(b, 61, 1, &h), -EBADMSG);
}

static void
test_bad_length(void **state)
{
	uint8_t b[512];
	size_t size = sample_batch(b);
	struct kp_batch_header h;

	(void)state;
	put32(b + 8, 48); /* less than the header after batchLength */
	assert_int_equal(kp_batch_header_parse(b, size, &h), -EBADMSG);
	put32(b + 8, 0x80000000u); /* negative */
	assert_int_equal(kp_batch_header_parse(b, size, &h), -EBADMSG);
	put32(b + 8, 0x7fffffffu); /* far beyond the buffer */
	assert_int_equal(kp_batch_validate(b, size, 1, &h), -EBADMSG);
	/* Exactly the header: parses, but then holds no records though it counts 3. */
	put32(b + 8, 49);
	fix_crc(b, 61);
	assert_int_equal(kp_batch_header_parse(b, size, &h), 0);
	assert_int_equal(kp_batch_validate(b, size, 1, &h), -EBADMSG);
}

static void
test_bad_magic(void **state)
{
	uint8_t b[512];
	size_t size = sample_batch(b);
	struct kp_batch_header h;

	(void)state;
	b[16] = 1;
	assert_int_equal(kp_batch_validate(b, size, 1, &h), -EILSEQ);
	assert_int_equal(kp_error_from_errno(-EILSEQ), KP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT);
	b[16] = 0;
	assert_int_equal(kp_batch_header_parse(b, size, &h), -EILSEQ);
	/* A short legacy v0 message set is still recognised as legacy. */
	assert_int_equal(kp_batch_header_parse(b, 30, &h), -EILSEQ);
	b[16] = 3;
	assert_int_equal(kp_batch_header_parse(b, size, &h), -EBADMSG);
	b[16] = 0xff;
	assert_int_equal(kp_batch_header_parse(b, size, &h), -EBADMSG);
}

static void
test_bad_crc(void **state)
{
	uint8_t b[512];
	size_t size = sample_batch(b);
	struct kp_batch_header h;

	(void)state;
	b[size - 2] ^= 0x01; /* a value byte */
	assert_int_equal(kp_batch_validate(b, size, 0, &h), -EBADMSG);
	b[size - 2] ^= 0x01;
	b[17] ^= 0x80; /* the CRC itself */
	assert_int_equal(kp_batch_validate(b, size, 0, &h), -EBADMSG);
	assert_int_equal(kp_batch_header_parse(b, size, &h), 0);
	assert_int_equal(kp_batch_crc_check(b, &h), -EBADMSG);
	b[17] ^= 0x80;
	b[30] ^= 0x10; /* baseTimestamp is covered */
	assert_int_equal(kp_batch_validate(b, size, 0, &h), -EBADMSG);
}

static void
test_bad_attributes(void **state)
{
	uint8_t b[512];
	size_t size = sample_batch(b);
	struct kp_batch_header h;

	(void)state;
	for (int codec = 5; codec <= 7; codec++) {
		b[22] = (uint8_t)codec;
		fix_crc(b, size);
		assert_int_equal(kp_batch_validate(b, size, 0, &h), -ENOTSUP);
		assert_int_equal(kp_error_from_errno(-ENOTSUP),
				 KP_ERR_UNSUPPORTED_COMPRESSION_TYPE);
	}
	/* Transactional bit: fine. */
	b[22] = KP_BATCH_ATTR_TRANSACTIONAL;
	fix_crc(b, size);
	assert_int_equal(kp_batch_validate(b, size, 0, &h), 0);
	/* Claims gzip over records that are not gzip: only deep notices. */
	b[22] = KP_COMPRESSION_GZIP;
	fix_crc(b, size);
	assert_int_equal(kp_batch_validate(b, size, 0, &h), 0);
	assert_int_equal(kp_batch_validate(b, size, 1, &h), -EBADMSG);
}

static void
test_count_mismatch(void **state)
{
	uint8_t b[512];
	size_t size = sample_batch(b);
	struct kp_batch_header h;

	(void)state;
	put32(b + 23, 3); /* lastOffsetDelta 3 with 3 records */
	fix_crc(b, size);
	assert_int_equal(kp_batch_validate(b, size, 0, &h), -EINVAL);
	assert_int_equal(kp_error_from_errno(-EINVAL), KP_ERR_INVALID_RECORD);
	put32(b + 23, 3);
	put32(b + 57, 4); /* consistent header, but only 3 records present */
	fix_crc(b, size);
	assert_int_equal(kp_batch_validate(b, size, 0, &h), -EBADMSG);
	put32(b + 23, 1);
	put32(b + 57, 2); /* 2 counted, 3 present: trailing record */
	fix_crc(b, size);
	assert_int_equal(kp_batch_validate(b, size, 0, &h), -EBADMSG);
	put32(b + 23, 0xffffffffu);
	put32(b + 57, 0); /* empty: Kafka refuses on Produce */
	fix_crc(b, size);
	assert_int_equal(kp_batch_validate(b, size, 0, &h), -EINVAL);
	put32(b + 57, 0xffffffffu); /* negative count */
	put32(b + 23, 0xfffffffeu);
	fix_crc(b, size);
	assert_int_equal(kp_batch_validate(b, size, 0, &h), -EBADMSG);
}

static void
test_timestamps(void **state)
{
	uint8_t b[512];
	size_t size = sample_batch(b);
	struct kp_batch_header h;

	(void)state;
	put64(b + 35, 999); /* max < base */
	fix_crc(b, size);
	assert_int_equal(kp_batch_validate(b, size, 0, &h), -ERANGE);
	assert_int_equal(kp_error_from_errno(-ERANGE), KP_ERR_INVALID_TIMESTAMP);
	/* With LogAppendTime the broker owns maxTimestamp. */
	b[22] = KP_BATCH_ATTR_TIMESTAMP_TYPE;
	fix_crc(b, size);
	assert_int_equal(kp_batch_validate(b, size, 0, &h), 0);
	/* No timestamps (-1/-1) is valid. */
	b[22] = 0;
	put64(b + 27, (uint64_t)-1);
	put64(b + 35, (uint64_t)-1);
	fix_crc(b, size);
	assert_int_equal(kp_batch_validate(b, size, 0, &h), 0);
}

/* LogAppendTime stamping: the type bit, maxTimestamp, a CRC that checks; nothing else moves. */
static void
test_log_append_time(void **state)
{
	uint8_t b[512];
	uint8_t orig[512];
	size_t size = sample_batch(b);
	struct kp_batch_header h;

	(void)state;
	b[22] |= 0x10; /* a transactional bit stays */
	fix_crc(b, size);
	memcpy(orig, b, size);
	kp_batch_set_log_append_time(b, size, 1234567890123);
	assert_int_equal(kp_batch_validate(b, size, 0, &h), 0);
	assert_int_equal(kp_batch_crc_check(b, &h), 0);
	assert_int_equal(h.max_timestamp, 1234567890123);
	assert_int_equal(h.attributes & KP_BATCH_ATTR_TIMESTAMP_TYPE, KP_BATCH_ATTR_TIMESTAMP_TYPE);
	assert_int_equal(h.attributes & 0x10, 0x10);
	assert_memory_equal(b, orig, 17);                 /* offset .. magic */
	assert_memory_equal(b + 23, orig + 23, 35 - 23);  /* lastOffsetDelta, baseTimestamp */
	assert_memory_equal(b + 43, orig + 43, size - 43); /* producer fields, records */
}

/* Validate a batch made of the given raw records region. */
static int
validate_region(const uint8_t *rec, size_t n, int32_t count)
{
	uint8_t b[1024];
	struct kp_batch_header h;
	size_t size = wrap_batch(b, rec, n, count, 0, 0, 0);

	return kp_batch_validate(b, size, 0, &h);
}

static void
test_bad_varints(void **state)
{
	uint8_t rec[64];
	size_t n;

	(void)state;
	/* Record length: six continuation bytes. */
	memset(rec, 0x80, 6);
	rec[6] = 0;
	assert_int_equal(validate_region(rec, 7, 1), -EBADMSG);
	/* Record length running past the region. */
	n = enc_record(rec, 0, 0, "k", "v");
	rec[0] += 2;
	assert_int_equal(validate_region(rec, n, 1), -EBADMSG);
	/* Record length shorter than its fields. */
	n = enc_record(rec, 0, 0, "k", "v");
	rec[0] -= 2;
	assert_int_equal(validate_region(rec, n, 1), -EBADMSG);
	/* Negative record length. */
	n = enc_record(rec, 0, 0, "k", "v");
	rec[0] = 3; /* zigzag -2 */
	assert_int_equal(validate_region(rec, n, 1), -EBADMSG);
	/* Key length -2. */
	n = enc_record(rec, 0, 0, "k", "v");
	assert_int_equal(rec[4], 2); /* len, attr, ts, off, keylen */
	rec[4] = 3;
	assert_int_equal(validate_region(rec, n, 1), -EBADMSG);
	/* Key length beyond the record. */
	rec[4] = 40;
	assert_int_equal(validate_region(rec, n, 1), -EBADMSG);
	/* Timestamp varlong truncated by the record end (all continuation). */
	n = enc_record(rec, 0, 0, "k", "v");
	memset(rec + 2, 0xff, n - 2);
	assert_int_equal(validate_region(rec, n, 1), -EBADMSG);
	/* Negative header count. */
	n = enc_record(rec, 0, 0, "k", "v");
	rec[n - 1] = 1; /* zigzag -1 */
	assert_int_equal(validate_region(rec, n, 1), -EBADMSG);
	/* Header count 1 but no header bytes. */
	rec[n - 1] = 2;
	assert_int_equal(validate_region(rec, n, 1), -EBADMSG);
	/* Control: the unmodified record is fine. */
	n = enc_record(rec, 0, 0, "k", "v");
	assert_int_equal(validate_region(rec, n, 1), 0);
}

static void
test_offset_deltas(void **state)
{
	uint8_t rec[128];
	size_t n = 0;

	(void)state;
	n += enc_record(rec + n, 0, 0, "a", "b");
	n += enc_record(rec + n, 2, 0, "a", "b"); /* gap */
	assert_int_equal(validate_region(rec, n, 2), -EBADMSG);
	n = 0;
	n += enc_record(rec + n, 1, 0, "a", "b"); /* first is not 0 */
	assert_int_equal(validate_region(rec, n, 1), -EBADMSG);
}

static void
test_trailing_bytes(void **state)
{
	uint8_t rec[128];
	size_t n = 0;

	(void)state;
	n += enc_record(rec + n, 0, 0, "a", "b");
	rec[n++] = 0; /* a stray byte after the last record */
	assert_int_equal(validate_region(rec, n, 1), -EBADMSG);
	n--;
	assert_int_equal(validate_region(rec, n, 1), 0);
}

static void
test_iterate(void **state)
{
	uint8_t b[512];
	size_t size = sample_batch(b);
	struct kp_batch_header h;
	struct kp_record_iter it;
	struct kp_record r;

	(void)state;
	assert_int_equal(kp_batch_validate(b, size, 0, &h), 0);
	kp_record_iter_init(&it, kp_batch_records(b), kp_batch_records_len(&h), h.records_count);
	assert_int_equal(kp_record_iter_next(&it, &r), 1);
	assert_int_equal(r.offset_delta, 0);
	assert_int_equal(r.timestamp_delta, 0);
	assert_int_equal(r.key_len, 2);
	assert_memory_equal(r.key, "k0", 2);
	assert_int_equal(r.value_len, 2);
	assert_memory_equal(r.value, "v0", 2);
	assert_int_equal(r.header_count, 0);
	assert_int_equal(r.headers_len, 0);
	assert_int_equal(kp_record_iter_next(&it, &r), 1);
	assert_int_equal(r.offset_delta, 1);
	assert_int_equal(r.timestamp_delta, 5);
	assert_int_equal(r.key_len, -1);
	assert_null(r.key);
	assert_memory_equal(r.value, "v1", 2);
	assert_int_equal(kp_record_iter_next(&it, &r), 1);
	assert_int_equal(r.offset_delta, 2);
	assert_int_equal(h.base_timestamp + r.timestamp_delta, 1009);
	assert_memory_equal(r.key, "k2", 2);
	assert_int_equal(r.value_len, -1); /* tombstone */
	assert_null(r.value);
	assert_int_equal(kp_record_iter_next(&it, &r), 0);
	assert_int_equal(kp_record_iter_next(&it, &r), 0);

	/* Fewer records than counted: the iterator fails, and stays failed. */
	kp_record_iter_init(&it, kp_batch_records(b), kp_batch_records_len(&h), 4);
	for (int i = 0; i < 3; i++)
		assert_int_equal(kp_record_iter_next(&it, &r), 1);
	assert_int_equal(kp_record_iter_next(&it, &r), -EBADMSG);
	assert_int_equal(kp_record_iter_next(&it, &r), -EBADMSG);
	/* More bytes than counted records. */
	kp_record_iter_init(&it, kp_batch_records(b), kp_batch_records_len(&h), 2);
	assert_int_equal(kp_record_iter_next(&it, &r), 1);
	assert_int_equal(kp_record_iter_next(&it, &r), 1);
	assert_int_equal(kp_record_iter_next(&it, &r), -EBADMSG);
}

static void
test_headers(void **state)
{
	/* One record, key "k", value "v", headers {"h1": "x"}, {"h2": null}, {"": ""}. */
	static const uint8_t body[] = {
		0,			   /* attributes */
		0,			   /* ts delta */
		0,			   /* offset delta */
		2,   'k',		   /* key */
		2,   'v',		   /* value */
		6,			   /* 3 headers */
		4,   'h', '1', 2, 'x',	   /* h1 = "x" */
		4,   'h', '2', 1,	   /* h2 = null */
		0,   0,			   /* "" = "" */
	};
	uint8_t rec[64];
	struct kp_record_iter it;
	struct kp_record r;
	struct kp_record_header hh;
	const uint8_t *p, *end;

	(void)state;
	rec[0] = (uint8_t)(sizeof(body) * 2);
	memcpy(rec + 1, body, sizeof(body));
	assert_int_equal(validate_region(rec, 1 + sizeof(body), 1), 0);
	kp_record_iter_init(&it, rec, 1 + sizeof(body), 1);
	assert_int_equal(kp_record_iter_next(&it, &r), 1);
	assert_int_equal(r.header_count, 3);
	p = r.headers;
	end = r.headers + r.headers_len;
	assert_int_equal(kp_record_header_next(&p, end, &hh), 1);
	assert_int_equal(hh.key_len, 2);
	assert_memory_equal(hh.key, "h1", 2);
	assert_int_equal(hh.value_len, 1);
	assert_memory_equal(hh.value, "x", 1);
	assert_int_equal(kp_record_header_next(&p, end, &hh), 1);
	assert_memory_equal(hh.key, "h2", 2);
	assert_int_equal(hh.value_len, -1);
	assert_null(hh.value);
	assert_int_equal(kp_record_header_next(&p, end, &hh), 1);
	assert_int_equal(hh.key_len, 0);
	assert_int_equal(hh.value_len, 0);
	assert_non_null(hh.value);
	assert_int_equal(kp_record_header_next(&p, end, &hh), 0);
	assert_int_equal(kp_record_iter_next(&it, &r), 0);

	/* Null header key (-1) is invalid. */
	rec[1 + 8] = 1;
	assert_int_equal(validate_region(rec, 1 + sizeof(body), 1), -EBADMSG);
	rec[1 + 8] = 4;
	/* Header value length -2. */
	rec[1 + 11] = 3;
	assert_int_equal(validate_region(rec, 1 + sizeof(body), 1), -EBADMSG);
	/* Header count 4 with three present. */
	rec[1 + 11] = 2;
	rec[1 + 7] = 8;
	assert_int_equal(validate_region(rec, 1 + sizeof(body), 1), -EBADMSG);
}

static void
test_builder_uncompressed(void **state)
{
	static uint8_t b[1 << 16];
	struct kp_batch_builder bb;
	struct kp_record_header hdrs[2] = {
		{.key = (const uint8_t *)"trace", .key_len = 5, .value = (const uint8_t *)"abc",
		 .value_len = 3},
		{.key = (const uint8_t *)"n", .key_len = 1, .value = NULL, .value_len = -1},
	};
	struct kp_batch_header h;
	struct kp_record_iter it;
	struct kp_record r;
	size_t size;
	char big[300];

	(void)state;
	memset(big, 'z', sizeof(big));
	assert_int_equal(kp_batch_builder_start(&bb, b, sizeof(b), KP_COMPRESSION_NONE), 0);
	bb.producer_id = 42;
	bb.producer_epoch = 3;
	bb.base_sequence = 7;
	assert_int_equal(kp_batch_builder_add(&bb, 5000, "key-0", 5, "value-0", 7, hdrs, 2), 0);
	assert_int_equal(kp_batch_builder_add(&bb, 4990, NULL, 0, "v", 1, NULL, 0), 0);
	assert_int_equal(kp_batch_builder_add(&bb, 6000, "k", 1, NULL, 0, NULL, 0), 0);
	assert_int_equal(kp_batch_builder_add(&bb, 6000, "", 0, big, sizeof(big), NULL, 0), 0);
	assert_int_equal(kp_batch_builder_finish(&bb, &size), 0);
	assert_int_equal(kp_batch_builder_add(&bb, 1, "x", 1, "y", 1, NULL, 0), -EINVAL);

	assert_int_equal(kp_batch_validate(b, size, 1, &h), 0);
	assert_int_equal(kp_batch_size(&h), size);
	assert_int_equal(h.records_count, 4);
	assert_int_equal(h.base_timestamp, 5000);
	assert_int_equal(h.max_timestamp, 6000);
	assert_int_equal(h.producer_id, 42);
	assert_int_equal(h.producer_epoch, 3);
	assert_int_equal(h.base_sequence, 7);
	kp_record_iter_init(&it, kp_batch_records(b), kp_batch_records_len(&h), h.records_count);
	assert_int_equal(kp_record_iter_next(&it, &r), 1);
	assert_memory_equal(r.key, "key-0", 5);
	assert_memory_equal(r.value, "value-0", 7);
	assert_int_equal(r.header_count, 2);
	assert_int_equal(kp_record_iter_next(&it, &r), 1);
	assert_int_equal(r.timestamp_delta, -10);
	assert_null(r.key);
	assert_int_equal(kp_record_iter_next(&it, &r), 1);
	assert_null(r.value);
	assert_int_equal(kp_record_iter_next(&it, &r), 1);
	assert_int_equal(r.key_len, 0);
	assert_int_equal(r.value_len, (int)sizeof(big)); /* two-byte length varint */
	assert_memory_equal(r.value, big, sizeof(big));
	assert_int_equal(kp_record_iter_next(&it, &r), 0);

	/* Does not fit. */
	assert_int_equal(kp_batch_builder_start(&bb, b, 70, KP_COMPRESSION_NONE), 0);
	assert_int_equal(kp_batch_builder_add(&bb, 1, big, 100, "v", 1, NULL, 0), -ENOBUFS);
	assert_int_equal(kp_batch_builder_start(&bb, b, 60, KP_COMPRESSION_NONE), -ENOBUFS);
	assert_int_equal(kp_batch_builder_start(&bb, b, 100, (enum kp_compression)5), -ENOTSUP);
}

static void
test_builder_codecs(void **state)
{
	static uint8_t b[1 << 20], scratch[1 << 20];
	static const enum kp_compression codecs[] = {KP_COMPRESSION_NONE, KP_COMPRESSION_GZIP,
						     KP_COMPRESSION_SNAPPY, KP_COMPRESSION_LZ4,
						     KP_COMPRESSION_ZSTD};

	(void)state;
	for (size_t c = 0; c < sizeof(codecs) / sizeof(codecs[0]); c++) {
		struct kp_batch_builder bb;
		struct kp_batch_header h;
		struct kp_record_iter it;
		struct kp_record r;
		size_t size, rlen;
		const int n = 2000; /* > one 64 KiB lz4 block, > one 32 KiB snappy block */

		assert_int_equal(kp_batch_builder_start(&bb, b, sizeof(b), codecs[c]), 0);
		for (int i = 0; i < n; i++) {
			char k[32], v[64];
			int kl = snprintf(k, sizeof(k), "key-%d", i);
			int vl = snprintf(v, sizeof(v), "value-%d-%0*d", i, 20, i * 7);

			assert_int_equal(kp_batch_builder_add(&bb, 1700000000000LL + i, k,
							      (size_t)kl, v, (size_t)vl, NULL, 0),
					 0);
		}
		assert_int_equal(kp_batch_builder_finish(&bb, &size), 0);
		assert_int_equal(kp_batch_validate(b, size, 0, &h), 0);
		assert_int_equal(kp_batch_compression(&h), codecs[c]);
		assert_int_equal(kp_batch_validate(b, size, 1, &h), 0);
		assert_int_equal(kp_batch_validate_deep(NULL, b, size, scratch, sizeof(scratch), &h,
							&rlen),
				 0);
		if (codecs[c] != KP_COMPRESSION_NONE)
			assert_true(kp_batch_records_len(&h) < rlen / 2);
		/* A bound below the real size. */
		if (codecs[c] != KP_COMPRESSION_NONE)
			assert_int_equal(kp_batch_validate_deep(NULL, b, size, scratch, rlen - 1,
								&h, NULL),
					 -E2BIG);
		/* Uncompressed records are walked in place; scratch is untouched. */
		memset(scratch, 0, rlen);
		assert_int_equal(kp_batch_record_iter_init(NULL, &it, b, &h,
							   codecs[c] == KP_COMPRESSION_NONE
								   ? NULL
								   : scratch,
							   sizeof(scratch)),
				 0);
		assert_ptr_equal(it.pos, codecs[c] == KP_COMPRESSION_NONE ? kp_batch_records(b)
									   : scratch);
		assert_int_equal(it.end - it.pos, rlen);
		if (codecs[c] != KP_COMPRESSION_NONE)
			assert_int_equal(kp_batch_record_iter_init(NULL, &it, b, &h, scratch, 100),
					 -E2BIG);
		assert_int_equal(kp_batch_record_iter_init(NULL, &it, b, &h,
							   codecs[c] == KP_COMPRESSION_NONE
								   ? NULL
								   : scratch,
							   sizeof(scratch)),
				 0);
		for (int i = 0; i < n; i++) {
			char k[32];
			int kl = snprintf(k, sizeof(k), "key-%d", i);

			assert_int_equal(kp_record_iter_next(&it, &r), 1);
			assert_int_equal(r.key_len, kl);
			assert_memory_equal(r.key, k, (size_t)kl);
			assert_int_equal(h.base_timestamp + r.timestamp_delta,
					 1700000000000LL + i);
		}
		assert_int_equal(kp_record_iter_next(&it, &r), 0);

		/* Truncate the compressed region by 3 bytes, CRC kept right: only a
		 * deep validation sees that the stream is cut short. */
		if (codecs[c] != KP_COMPRESSION_NONE) {
			put32(b + 8, (uint32_t)(size - 3 - 12));
			fix_crc(b, size - 3);
			assert_int_equal(kp_batch_validate(b, size - 3, 0, &h), 0);
			assert_int_equal(kp_batch_validate(b, size - 3, 1, &h), -EBADMSG);
		}
	}
}

/* Broker-side compression.type: every codec to every other, records and header fields kept. */
static void
test_recompress(void **state)
{
	static uint8_t b[1 << 20], out[1 << 20], scratch[1 << 20], back[1 << 20];
	static const enum kp_compression codecs[] = {KP_COMPRESSION_NONE, KP_COMPRESSION_GZIP,
						     KP_COMPRESSION_SNAPPY, KP_COMPRESSION_LZ4,
						     KP_COMPRESSION_ZSTD};
	const size_t nc = sizeof(codecs) / sizeof(codecs[0]);

	(void)state;
	for (size_t from = 0; from < nc; from++) {
		struct kp_batch_builder bb;
		struct kp_batch_header h, h2;
		size_t size, osize, rlen, rlen2;
		const int n = 300;

		assert_int_equal(kp_batch_builder_start(&bb, b, sizeof(b), codecs[from]), 0);
		for (int i = 0; i < n; i++) {
			char v[64];
			int vl = snprintf(v, sizeof(v), "value-%d-%0*d", i, 20, i * 7);

			assert_int_equal(kp_batch_builder_add(&bb, 1700000000000LL + i, NULL, 0, v,
							      (size_t)vl, NULL, 0), 0);
		}
		assert_int_equal(kp_batch_builder_finish(&bb, &size), 0);
		/* An idempotent producer's fields and a leader epoch: kept as they are. */
		put64(b + 43, 4242);
		b[51] = 0;
		b[52] = 7;
		put32(b + 53, 99);
		put32(b + 12, 5);
		fix_crc(b, size);
		assert_int_equal(kp_batch_validate(b, size, 0, &h), 0);
		assert_int_equal(kp_batch_records_decompress(NULL, b, &h, back, sizeof(back), &rlen), 0);
		for (size_t to = 0; to < nc; to++) {
			assert_int_equal(kp_batch_recompress(NULL, b, &h, codecs[to], scratch,
							     sizeof(scratch), out, sizeof(out), &osize),
					 0);
			assert_int_equal(kp_batch_validate(out, osize, 1, &h2), 0);
			assert_int_equal(kp_batch_compression(&h2), codecs[to]);
			assert_memory_equal(out + 12, b + 12, 5);  /* epoch, magic */
			assert_memory_equal(out + 23, b + 23, 61 - 23); /* all the rest of the header */
			assert_int_equal(kp_batch_records_decompress(NULL, out, &h2, scratch,
								     sizeof(scratch), &rlen2), 0);
			assert_int_equal(rlen2, rlen);
			assert_memory_equal(scratch, back, rlen);
		}
		/* No room for the header, or for the records. */
		assert_int_equal(kp_batch_recompress(NULL, b, &h, KP_COMPRESSION_ZSTD, scratch,
						     sizeof(scratch), out, 60, &osize), -ENOBUFS);
		assert_int_equal(kp_batch_recompress(NULL, b, &h, KP_COMPRESSION_NONE, scratch,
						     sizeof(scratch), out, 100, &osize), -ENOBUFS);
		/* A corrupt record walk is refused, not rewritten. */
		if (codecs[from] == KP_COMPRESSION_NONE) {
			b[61] ^= 0x7f;
			fix_crc(b, size);
			assert_int_equal(kp_batch_recompress(NULL, b, &h, KP_COMPRESSION_LZ4, scratch,
							     sizeof(scratch), out, sizeof(out),
							     &osize), -EBADMSG);
		}
	}
}

static void
test_builder_compress_scratch_too_small(void **state)
{
	static uint8_t b[4096];
	uint8_t scratch[8];
	struct kp_batch_builder bb;
	size_t size;

	(void)state;
	assert_int_equal(kp_batch_builder_start(&bb, b, sizeof(b), KP_COMPRESSION_ZSTD), 0);
	bb.scratch = scratch;
	bb.scratch_cap = sizeof(scratch);
	assert_int_equal(kp_batch_builder_add(&bb, 1, "k", 1, "v", 1, NULL, 0), 0);
	assert_int_equal(kp_batch_builder_finish(&bb, &size), -ENOBUFS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_check_value),
		cmocka_unit_test(test_parse_and_validate_ok),
		cmocka_unit_test(test_rewrite_offset_and_epoch),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad_length),
		cmocka_unit_test(test_bad_magic),
		cmocka_unit_test(test_bad_crc),
		cmocka_unit_test(test_bad_attributes),
		cmocka_unit_test(test_count_mismatch),
		cmocka_unit_test(test_timestamps),
		cmocka_unit_test(test_log_append_time),
		cmocka_unit_test(test_recompress),
		cmocka_unit_test(test_bad_varints),
		cmocka_unit_test(test_offset_deltas),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_iterate),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_builder_uncompressed),
		cmocka_unit_test(test_builder_codecs),
		cmocka_unit_test(test_builder_compress_scratch_too_small),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
