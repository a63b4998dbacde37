/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Record batch v2: header parse, validation (CRC-32C with isa-l, attributes,
 * counts, timestamps, a walk over every record), record and header
 * iterators, and a builder. See kp_batch.h for the wire layout.
 *
 * Validation of an uncompressed batch is two passes over its bytes: the CRC
 * (isa-l, vectorised) and a walk that reads only each record's varints and
 * skips its key/value/header bytes, so it costs a few instructions per
 * record, not per byte. Nothing here allocates except the builder when asked
 * to compress without a scratch buffer and kp_batch_validate's first deep
 * validation of a compressed batch on a thread (its per-thread scratch).
 *
 * Record layout inside the records region (varints are zigzag, as
 * org.apache.kafka.common.utils.ByteUtils):
 *
 *   length varint (bytes after this field) | attributes int8 |
 *   timestampDelta varlong | offsetDelta varint | keyLength varint (-1 null) |
 *   key | valueLength varint (-1 null) | value | headerCount varint |
 *   headers: [keyLength varint (>= 0) | key | valueLength varint (-1 null) | value]...
 */
#include "kp_batch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/crc.h>

#include "kp_compress.h"

/* ---- big-endian fixed-width fields ---- */

static inline uint16_t
kp_rd16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t
kp_rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return __builtin_bswap32(v);
}

static inline uint64_t
kp_rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return __builtin_bswap64(v);
}

static inline void
kp_wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void
kp_wr32(uint8_t *p, uint32_t v)
{
	v = __builtin_bswap32(v);
	memcpy(p, &v, 4);
}

static inline void
kp_wr64(uint8_t *p, uint64_t v)
{
	v = __builtin_bswap64(v);
	memcpy(p, &v, 8);
}

/* ---- zigzag varints ---- */

/*
 * Read a zigzag varint of at most 5 bytes from [*pp, end). Like Kafka's
 * ByteUtils.readVarint, bits beyond 32 in the fifth byte are dropped; a sixth
 * continuation byte is an error.
 */
static inline int
kp_rd_varint(const uint8_t **pp, const uint8_t *end, int32_t *out)
{
	const uint8_t *p = *pp;
	uint32_t v = 0;

	/* Fast paths: record fields are almost always 1 or 2 bytes long. */
	if (__builtin_expect(end - p >= 2, 1)) {
		if (p[0] < 0x80) {
			v = p[0];
			*pp = p + 1;
			*out = (int32_t)(v >> 1) ^ -(int32_t)(v & 1);
			return 0;
		}
		if (p[1] < 0x80) {
			v = (uint32_t)(p[0] & 0x7f) | (uint32_t)p[1] << 7;
			*pp = p + 2;
			*out = (int32_t)(v >> 1) ^ -(int32_t)(v & 1);
			return 0;
		}
	}
	for (unsigned shift = 0; shift < 35; shift += 7) {
		uint8_t b;

		if (p == end)
			return -EBADMSG;
		b = *p++;
		v |= (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*pp = p;
			*out = (int32_t)(v >> 1) ^ -(int32_t)(v & 1);
			return 0;
		}
	}
	return -EBADMSG;
}

/* Zigzag varlong of at most 10 bytes (ByteUtils.readVarlong). */
static inline int
kp_rd_varlong(const uint8_t **pp, const uint8_t *end, int64_t *out)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;

	if (__builtin_expect(p < end && *p < 0x80, 1)) {
		v = *p;
		*pp = p + 1;
		*out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
		return 0;
	}
	for (unsigned shift = 0; shift < 70; shift += 7) {
		uint8_t b;

		if (p == end)
			return -EBADMSG;
		b = *p++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*pp = p;
			*out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
			return 0;
		}
	}
	return -EBADMSG;
}

static inline size_t
kp_varlong_size(int64_t x)
{
	uint64_t v = ((uint64_t)x << 1) ^ (uint64_t)(x >> 63);
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static inline uint8_t *
kp_wr_varlong(uint8_t *p, int64_t x)
{
	uint64_t v = ((uint64_t)x << 1) ^ (uint64_t)(x >> 63);

	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* ---- CRC ---- */

uint32_t
kp_crc32c(const uint8_t *buf, size_t len)
{
	uint32_t crc = 0xFFFFFFFFu;

	/* crc32_iscsi takes an int length; feed it in chunks below 2 GiB. */
	while (len > 0) {
		size_t n = len > (1u << 30) ? (1u << 30) : len;

		crc = crc32_iscsi((unsigned char *)buf, (int)n, crc);
		buf += n;
		len -= n;
	}
	return crc ^ 0xFFFFFFFFu;
}

int
kp_batch_crc_check(const uint8_t *buf, const struct kp_batch_header *hdr)
{
	size_t size = kp_batch_size(hdr);

	return kp_crc32c(buf + KP_BATCH_CRC_START, size - KP_BATCH_CRC_START) == hdr->crc
		       ? 0
		       : -EBADMSG;
}

void
kp_batch_crc_update(uint8_t *buf, size_t size)
{
	kp_wr32(buf + 17, kp_crc32c(buf + KP_BATCH_CRC_START, size - KP_BATCH_CRC_START));
}

void
kp_batch_set_log_append_time(uint8_t *buf, size_t size, int64_t now_ms)
{
	uint16_t attr = (uint16_t)((buf[21] << 8) | buf[22]);

	attr |= KP_BATCH_ATTR_TIMESTAMP_TYPE;
	buf[21] = (uint8_t)(attr >> 8);
	buf[22] = (uint8_t)attr;
	kp_wr64(buf + 35, (uint64_t)now_ms);
	kp_batch_crc_update(buf, size);
}

/* ---- header ---- */

int
kp_batch_header_parse(const uint8_t *buf, size_t len, struct kp_batch_header *hdr)
{
	int8_t magic;
	int32_t blen;

	/* magic sits at byte 16 in every message format (v0/v1: offset,
	 * size, crc, magic), so legacy sets are told apart before the rest. */
	if (len < 17)
		return -EBADMSG;
	magic = (int8_t)buf[16];
	if (magic == 0 || magic == 1)
		return -EILSEQ;
	if (magic != KP_BATCH_MAGIC)
		return -EBADMSG;
	if (len < KP_BATCH_HEADER_SIZE)
		return -EBADMSG;
	blen = (int32_t)kp_rd32(buf + 8);
	if (blen < KP_BATCH_HEADER_SIZE - KP_BATCH_LOG_OVERHEAD ||
	    (size_t)blen > len - KP_BATCH_LOG_OVERHEAD)
		return -EBADMSG;
	hdr->base_offset = (int64_t)kp_rd64(buf);
	hdr->batch_length = blen;
	hdr->partition_leader_epoch = (int32_t)kp_rd32(buf + 12);
	hdr->magic = magic;
	hdr->crc = kp_rd32(buf + 17);
	hdr->attributes = (int16_t)kp_rd16(buf + 21);
	hdr->last_offset_delta = (int32_t)kp_rd32(buf + 23);
	hdr->base_timestamp = (int64_t)kp_rd64(buf + 27);
	hdr->max_timestamp = (int64_t)kp_rd64(buf + 35);
	hdr->producer_id = (int64_t)kp_rd64(buf + 43);
	hdr->producer_epoch = (int16_t)kp_rd16(buf + 51);
	hdr->base_sequence = (int32_t)kp_rd32(buf + 53);
	hdr->records_count = (int32_t)kp_rd32(buf + 57);
	return 0;
}

void
kp_batch_set_base_offset(uint8_t *buf, int64_t base_offset)
{
	kp_wr64(buf, (uint64_t)base_offset);
}

void
kp_batch_set_leader_epoch(uint8_t *buf, int32_t epoch)
{
	kp_wr32(buf + 12, (uint32_t)epoch);
}

/* ---- records ---- */

void
kp_record_iter_init(struct kp_record_iter *it, const uint8_t *records, size_t len, int32_t count)
{
	it->pos = records;
	it->end = records + len;
	it->remaining = count;
}

int
kp_record_header_next(const uint8_t **pos, const uint8_t *end, struct kp_record_header *h)
{
	const uint8_t *p = *pos;
	int32_t klen, vlen;

	if (p == end)
		return 0;
	if (kp_rd_varint(&p, end, &klen) < 0 || klen < 0 || klen > end - p)
		return -EBADMSG;
	h->key = p;
	h->key_len = klen;
	p += klen;
	if (kp_rd_varint(&p, end, &vlen) < 0 || vlen < -1 || vlen > end - p)
		return -EBADMSG;
	h->value = vlen < 0 ? NULL : p;
	h->value_len = vlen;
	if (vlen > 0)
		p += vlen;
	*pos = p;
	return 1;
}

/*
 * Decode one record at *pp, checking that it lies within [*pp, end) and that
 * its fields, headers included, exactly fill its declared length.
 */
static inline int
kp_record_parse(const uint8_t **pp, const uint8_t *end, struct kp_record *rec)
{
	const uint8_t *p = *pp, *rend;
	int32_t len, klen, vlen, nh;

	if (kp_rd_varint(&p, end, &len) < 0 || len < KP_RECORD_MIN_SIZE - 1 || len > end - p)
		return -EBADMSG;
	rend = p + len;
	rec->attributes = (int8_t)*p++;
	if (kp_rd_varlong(&p, rend, &rec->timestamp_delta) < 0 ||
	    kp_rd_varint(&p, rend, &rec->offset_delta) < 0)
		return -EBADMSG;
	if (kp_rd_varint(&p, rend, &klen) < 0 || klen < -1 || klen > rend - p)
		return -EBADMSG;
	rec->key = klen < 0 ? NULL : p;
	rec->key_len = klen;
	if (klen > 0)
		p += klen;
	if (kp_rd_varint(&p, rend, &vlen) < 0 || vlen < -1 || vlen > rend - p)
		return -EBADMSG;
	rec->value = vlen < 0 ? NULL : p;
	rec->value_len = vlen;
	if (vlen > 0)
		p += vlen;
	if (kp_rd_varint(&p, rend, &nh) < 0 || nh < 0)
		return -EBADMSG;
	rec->header_count = nh;
	rec->headers = p;
	rec->headers_len = (size_t)(rend - p);
	/* Each header takes at least 2 bytes, so this loop is bounded by len. */
	for (int32_t i = 0; i < nh; i++) {
		struct kp_record_header h;

		if (kp_record_header_next(&p, rend, &h) != 1)
			return -EBADMSG;
	}
	if (p != rend)
		return -EBADMSG;
	*pp = rend;
	return 0;
}

int
kp_record_iter_next(struct kp_record_iter *it, struct kp_record *rec)
{
	if (it->remaining < 0)
		return -EBADMSG; /* failed before (or a negative count): stays failed */
	if (it->remaining == 0)
		return it->pos == it->end ? 0 : -EBADMSG;
	if (kp_record_parse(&it->pos, it->end, rec) < 0) {
		it->remaining = -1;
		return -EBADMSG;
	}
	it->remaining--;
	return 1;
}

int
kp_records_validate(const uint8_t *records, size_t len, int32_t count)
{
	const uint8_t *p = records, *end = records + len;

	for (int32_t i = 0; i < count; i++) {
		struct kp_record rec;

		if (kp_record_parse(&p, end, &rec) < 0 || rec.offset_delta != i)
			return -EBADMSG;
	}
	return p == end ? 0 : -EBADMSG;
}

/* ---- validation ---- */

/* Everything but the records walk. */
static int
kp_batch_validate_header(const uint8_t *buf, size_t len, struct kp_batch_header *hdr)
{
	int rc = kp_batch_header_parse(buf, len, hdr);

	if (rc < 0)
		return rc;
	if (kp_batch_crc_check(buf, hdr) < 0)
		return -EBADMSG;
	if ((hdr->attributes & KP_BATCH_ATTR_COMPRESSION_MASK) > KP_COMPRESSION_ZSTD)
		return -ENOTSUP;
	if (hdr->records_count < 0)
		return -EBADMSG;
	if (hdr->records_count == 0 || hdr->last_offset_delta != hdr->records_count - 1)
		return -EINVAL;
	if (!(hdr->attributes & KP_BATCH_ATTR_TIMESTAMP_TYPE) &&
	    hdr->max_timestamp < hdr->base_timestamp)
		return -ERANGE;
	return 0;
}

int
kp_batch_validate_deep(struct kp_codec_ctx *ctx, const uint8_t *buf, size_t len,
		       uint8_t *scratch, size_t scratch_cap, struct kp_batch_header *hdr,
		       size_t *records_len)
{
	size_t rlen;
	int rc = kp_batch_validate_header(buf, len, hdr);

	if (rc < 0)
		return rc;
	if (kp_batch_compression(hdr) == KP_COMPRESSION_NONE) {
		rlen = kp_batch_records_len(hdr);
		rc = kp_records_validate(kp_batch_records(buf), rlen, hdr->records_count);
	} else {
		rc = kp_batch_records_decompress(ctx, buf, hdr, scratch, scratch_cap, &rlen);
		if (rc == 0)
			rc = kp_records_validate(scratch, rlen, hdr->records_count);
	}
	if (rc == 0 && records_len != NULL)
		*records_len = rlen;
	return rc;
}

int
kp_batch_validate(const uint8_t *buf, size_t len, int deep, struct kp_batch_header *hdr)
{
	struct kp_codec_ctx *ctx;
	uint8_t *scratch;
	int rc = kp_batch_validate_header(buf, len, hdr);

	if (rc < 0)
		return rc;
	if (kp_batch_compression(hdr) == KP_COMPRESSION_NONE)
		return kp_records_validate(kp_batch_records(buf), kp_batch_records_len(hdr),
					   hdr->records_count);
	if (!deep)
		return 0;
	if ((ctx = kp_codec_ctx_thread()) == NULL || (scratch = kp_codec_ctx_scratch(ctx)) == NULL)
		return -ENOMEM;
	return kp_batch_validate_deep(ctx, buf, len, scratch, KP_BATCH_MAX_RECORDS_BYTES, hdr,
				      NULL);
}

int
kp_batch_records_decompress(struct kp_codec_ctx *ctx, const uint8_t *buf,
			    const struct kp_batch_header *hdr, uint8_t *out, size_t out_cap,
			    size_t *out_len)
{
	return kp_decompress(ctx, kp_batch_compression(hdr), kp_batch_records(buf),
			     kp_batch_records_len(hdr), out, out_cap, out_len);
}

int
kp_batch_recompress(struct kp_codec_ctx *ctx, const uint8_t *buf, const struct kp_batch_header *hdr,
		    enum kp_compression to, uint8_t *scratch, size_t scratch_cap, uint8_t *out,
		    size_t out_cap, size_t *out_size)
{
	struct kp_batch_header h;
	const uint8_t *src;
	size_t rlen;
	size_t clen;
	uint16_t attr;
	int rc;

	rc = kp_batch_validate_deep(ctx, buf, kp_batch_size(hdr), scratch, scratch_cap, &h, &rlen);
	if (rc < 0)
		return rc;
	src = kp_batch_compression(&h) == KP_COMPRESSION_NONE ? kp_batch_records(buf) : scratch;
	if (out_cap < KP_BATCH_HEADER_SIZE)
		return -ENOBUFS;
	rc = kp_compress(ctx, to, KP_COMPRESS_LEVEL_DEFAULT, src, rlen, out + KP_BATCH_HEADER_SIZE,
			 out_cap - KP_BATCH_HEADER_SIZE, &clen);
	if (rc < 0)
		return rc;
	if (clen > (size_t)INT32_MAX - KP_BATCH_HEADER_SIZE)
		return -E2BIG;
	memcpy(out, buf, KP_BATCH_HEADER_SIZE);
	kp_wr32(out + 8, (uint32_t)(KP_BATCH_HEADER_SIZE - 12 + clen));
	attr = (uint16_t)(((uint16_t)h.attributes & ~KP_BATCH_ATTR_COMPRESSION_MASK) | (uint16_t)to);
	out[21] = (uint8_t)(attr >> 8);
	out[22] = (uint8_t)attr;
	*out_size = KP_BATCH_HEADER_SIZE + clen;
	kp_batch_crc_update(out, *out_size);
	return 0;
}

int
kp_batch_record_iter_init(struct kp_codec_ctx *ctx, struct kp_record_iter *it, const uint8_t *buf,
			  const struct kp_batch_header *hdr, uint8_t *scratch, size_t scratch_cap)
{
	size_t rlen;
	int rc;

	if (kp_batch_compression(hdr) == KP_COMPRESSION_NONE) {
		kp_record_iter_init(it, kp_batch_records(buf), kp_batch_records_len(hdr),
				    hdr->records_count);
		return 0;
	}
	rc = kp_batch_records_decompress(ctx, buf, hdr, scratch, scratch_cap, &rlen);
	if (rc < 0)
		return rc;
	kp_record_iter_init(it, scratch, rlen, hdr->records_count);
	return 0;
}

/* ---- builder ---- */

int
kp_batch_builder_start(struct kp_batch_builder *b, uint8_t *buf, size_t cap,
		       enum kp_compression codec)
{
	memset(b, 0, sizeof(*b));
	if ((unsigned)codec > KP_COMPRESSION_ZSTD)
		return -ENOTSUP;
	if (cap < KP_BATCH_HEADER_SIZE)
		return -ENOBUFS;
	b->partition_leader_epoch = -1;
	b->producer_id = -1;
	b->producer_epoch = -1;
	b->base_sequence = -1;
	b->level = KP_COMPRESS_LEVEL_DEFAULT;
	b->buf = buf;
	b->cap = cap;
	b->pos = KP_BATCH_HEADER_SIZE;
	b->codec = codec;
	b->base_timestamp = -1;
	b->max_timestamp = -1;
	return 0;
}

static size_t
kp_bytes_field_size(const void *p, size_t len)
{
	return p == NULL ? 1 : kp_varlong_size((int64_t)len) + len;
}

static uint8_t *
kp_wr_bytes_field(uint8_t *o, const void *p, size_t len)
{
	if (p == NULL)
		return kp_wr_varlong(o, -1);
	o = kp_wr_varlong(o, (int64_t)len);
	if (len > 0)
		memcpy(o, p, len);
	return o + len;
}

int
kp_batch_builder_add(struct kp_batch_builder *b, int64_t timestamp, const void *key,
		     size_t key_len, const void *value, size_t value_len,
		     const struct kp_record_header *headers, size_t header_count)
{
	int64_t ts_delta;
	size_t body, total;
	uint8_t *o;

	if (b->buf == NULL || b->count == INT32_MAX)
		return -EINVAL;
	if ((key != NULL && key_len > INT32_MAX) || (value != NULL && value_len > INT32_MAX) ||
	    header_count > INT32_MAX)
		return -EINVAL;
	if (b->count == 0)
		b->base_timestamp = timestamp;
	/* Wrapping difference: any two int64 timestamps round-trip through
	 * base + delta, as in Java's long arithmetic. */
	ts_delta = (int64_t)((uint64_t)timestamp - (uint64_t)b->base_timestamp);
	body = 1 + kp_varlong_size(ts_delta) + kp_varlong_size(b->count) +
	       kp_bytes_field_size(key, key_len) + kp_bytes_field_size(value, value_len) +
	       kp_varlong_size((int64_t)header_count);
	for (size_t i = 0; i < header_count; i++) {
		const struct kp_record_header *h = &headers[i];

		if (h->key_len < 0 || (h->key == NULL && h->key_len > 0) ||
		    (h->value != NULL && h->value_len < 0))
			return -EINVAL;
		body += kp_bytes_field_size(h->key == NULL ? "" : (const void *)h->key,
					    (size_t)h->key_len) +
			kp_bytes_field_size(h->value, h->value != NULL ? (size_t)h->value_len : 0);
	}
	if (body > INT32_MAX)
		return -EINVAL;
	total = kp_varlong_size((int64_t)body) + body;
	if (total > b->cap - b->pos)
		return -ENOBUFS;
	o = b->buf + b->pos;
	o = kp_wr_varlong(o, (int64_t)body);
	*o++ = 0; /* record attributes: unused */
	o = kp_wr_varlong(o, ts_delta);
	o = kp_wr_varlong(o, b->count);
	o = kp_wr_bytes_field(o, key, key_len);
	o = kp_wr_bytes_field(o, value, value_len);
	o = kp_wr_varlong(o, (int64_t)header_count);
	for (size_t i = 0; i < header_count; i++) {
		const struct kp_record_header *h = &headers[i];

		o = kp_wr_bytes_field(o, h->key == NULL ? "" : (const void *)h->key,
				      (size_t)h->key_len);
		o = kp_wr_bytes_field(o, h->value, h->value != NULL ? (size_t)h->value_len : 0);
	}
	b->pos += total;
	if (b->count == 0 || timestamp > b->max_timestamp)
		b->max_timestamp = timestamp;
	b->count++;
	return 0;
}

int
kp_batch_builder_finish(struct kp_batch_builder *b, size_t *size)
{
	uint8_t *buf = b->buf, *tmp = NULL;
	size_t rlen = b->pos - KP_BATCH_HEADER_SIZE;
	int rc = 0;

	if (buf == NULL)
		return -EINVAL;
	if (b->codec != KP_COMPRESSION_NONE) {
		size_t bound = kp_compress_bound(b->codec, rlen), clen;
		uint8_t *out = b->scratch;
		size_t out_cap = b->scratch_cap;

		if (out == NULL) {
			if ((tmp = malloc(bound)) == NULL)
				return -ENOMEM;
			out = tmp;
			out_cap = bound;
		}
		rc = kp_compress(b->ctx, b->codec, b->level, buf + KP_BATCH_HEADER_SIZE, rlen, out,
				 out_cap, &clen);
		if (rc < 0)
			goto out;
		if (clen > b->cap - KP_BATCH_HEADER_SIZE) {
			rc = -ENOBUFS;
			goto out;
		}
		memcpy(buf + KP_BATCH_HEADER_SIZE, out, clen);
		b->pos = KP_BATCH_HEADER_SIZE + clen;
	}
	if (b->pos - KP_BATCH_LOG_OVERHEAD > INT32_MAX) {
		rc = -EMSGSIZE;
		goto out;
	}
	kp_wr64(buf, (uint64_t)b->base_offset);
	kp_wr32(buf + 8, (uint32_t)(b->pos - KP_BATCH_LOG_OVERHEAD));
	kp_wr32(buf + 12, (uint32_t)b->partition_leader_epoch);
	buf[16] = KP_BATCH_MAGIC;
	kp_wr16(buf + 21, (uint16_t)((b->attributes & ~KP_BATCH_ATTR_COMPRESSION_MASK) |
				     (int16_t)b->codec));
	kp_wr32(buf + 23, (uint32_t)(b->count > 0 ? b->count - 1 : 0));
	kp_wr64(buf + 27, (uint64_t)b->base_timestamp);
	kp_wr64(buf + 35, (uint64_t)b->max_timestamp);
	kp_wr64(buf + 43, (uint64_t)b->producer_id);
	kp_wr16(buf + 51, (uint16_t)b->producer_epoch);
	kp_wr32(buf + 53, (uint32_t)b->base_sequence);
	kp_wr32(buf + 57, (uint32_t)b->count);
	kp_batch_crc_update(buf, b->pos);
	*size = b->pos;
	b->buf = NULL; /* finished: further adds fail */
out:
	free(tmp);
	return rc;
}
