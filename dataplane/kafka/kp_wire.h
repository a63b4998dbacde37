/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kafka wire primitives: a bounds-checked reader, a bounded writer, a bump
 * arena, and the value types the generated codecs (generated/kp_msg_*.h,
 * written by scripts/gen-kafka-codecs) are made of. Written by hand once;
 * everything above it is generated.
 *
 * Reader: one sticky error (like librdkafka's rd_kafka_buf). A read past the
 * end, a negative or oversized length, an overlong varint or a count larger
 * than the remaining bytes can hold sets r->err to -EPROTO and returns 0 or an
 * empty value; later reads keep failing, so a decoder checks r->err once at
 * the end of a struct and before every allocation. Nothing is read past
 * r->end and no length from the wire is trusted.
 *
 * Writer: writes into a caller buffer; when a write does not fit, w->err
 * becomes -ENOBUFS and nothing more is written. An invalid value (null in a
 * non-nullable field, a string over 32767 bytes) sets -EINVAL.
 *
 * Generated struct conventions (docs/protocol-codecs.md has the full list):
 *  - one struct per message, struct kp_<message_snake>, nested structs
 *    kp_<message_snake>_<struct_snake>; field names are the schema names in
 *    snake case.
 *  - strings (struct kp_str) and bytes/records (struct kp_bytes) BORROW the
 *    decoded frame: ptr points into the input, len -1 means null. Nothing is
 *    copied; the frame must outlive the decoded struct.
 *  - arrays are {items, count}; count -1 means null; items come from the
 *    kp_arena passed to decode. Nullable struct fields are pointers (NULL =
 *    null) into the arena; other struct fields are embedded.
 *  - flexible versions: tagged fields the schema knows are plain members; bit
 *    i of tags_present is set by decode when the i-th known tag (in tag
 *    order) was on the wire, and encode writes a tagged field when its bit is
 *    set or its value differs from the schema default (Kafka's rule). Tags the
 *    schema does not know are kept in unknown_tags as borrowed byte ranges and
 *    written back byte for byte, merged in tag order. Tags must be strictly
 *    ascending on the wire (anything else is -EPROTO), so a decoded message
 *    re-encodes to exactly the bytes it came from.
 *  - kp_<msg>_decode(m, version, r, arena) fills m (no init needed first),
 *    kp_<msg>_encode(m, version, w), kp_<msg>_size(m, version) = bytes encode
 *    writes; kp_<msg>_init(m) sets every field to its schema default. A
 *    version outside validVersions gives -EPROTONOSUPPORT.
 *  - fields absent in a version are not written and decode to their default.
 */
#ifndef SLP_KP_WIRE_H
#define SLP_KP_WIRE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- error codes in responses ------------------------------------------ */

/*
 * The per-API error counters (Kafka's RequestMetrics ErrorsPerSec): the
 * generated encoder of every response message calls kp_error_seen(api key,
 * code) for each ErrorCode field it writes (the top-level one, and each
 * topic's, partition's, group's ... one: what Kafka's errorCounts() counts),
 * NONE included. The hook is NULL (nothing counted) until a process sets it,
 * once, before any response is encoded; it runs on the encoding thread, so a
 * per-thread counter needs no lock. A response encoded twice (a retry into a
 * larger buffer) is counted twice.
 */
typedef void (*kp_error_hook_fn)(int16_t api_key, int16_t code);
extern kp_error_hook_fn kp_error_hook;

static inline void
kp_error_seen(int16_t api_key, int16_t code)
{
	if (kp_error_hook != NULL)
		kp_error_hook(api_key, code);
}

/* ---- value types ------------------------------------------------------ */

/* A string borrowed from a frame (or from the caller when encoding). len -1: null. */
struct kp_str {
	const char *ptr;
	int32_t len;
};

/* Bytes or records borrowed from a frame. len -1: null. */
struct kp_bytes {
	const uint8_t *ptr;
	int32_t len;
};

/* A Kafka UUID: 16 bytes, network order as on the wire. */
struct kp_uuid {
	uint8_t b[16];
};

/* A tagged field this build does not know, kept as the bytes of its value. */
struct kp_raw_tag {
	uint32_t tag;
	struct kp_bytes data; /* borrowed; data.len >= 0 */
};

/* Unknown tagged fields of one struct, strictly ascending by tag. */
struct kp_tags {
	struct kp_raw_tag *items; /* arena memory, or the caller's when encoding */
	uint32_t count;
};

#define KP_ARRAY_TYPE(name, type)                                                                  \
	struct kp_array_##name {                                                                   \
		type *items;                                                                       \
		int32_t count; /* -1: null */                                                      \
	}
KP_ARRAY_TYPE(bool, bool);
KP_ARRAY_TYPE(int8, int8_t);
KP_ARRAY_TYPE(int16, int16_t);
KP_ARRAY_TYPE(uint16, uint16_t);
KP_ARRAY_TYPE(int32, int32_t);
KP_ARRAY_TYPE(uint32, uint32_t);
KP_ARRAY_TYPE(int64, int64_t);
KP_ARRAY_TYPE(float64, double);
KP_ARRAY_TYPE(uuid, struct kp_uuid);
KP_ARRAY_TYPE(str, struct kp_str);
KP_ARRAY_TYPE(bytes, struct kp_bytes);
#undef KP_ARRAY_TYPE

/* Longest string the protocol allows (int16 length; compact strings are held to it too). */
#define KP_STR_MAX 0x7fff

/* ---- arena --------------------------------------------------------------- */

/*
 * Per-request bump allocator over one caller-given buffer. Decoders take
 * arrays, nullable structs and unknown-tag lists from it; when it is full
 * they fail with -ENOMEM, so one request can never allocate more than the
 * buffer. kp_arena_reset() releases everything at once. Not thread safe: one
 * arena per request (or per lcore, reset between requests).
 */
struct kp_arena {
	uint8_t *base; /* the caller's buffer, borrowed for the arena's life */
	size_t cap;    /* bytes in base */
	size_t used;   /* bytes handed out since the last reset */
};

/**
 * Start an arena over buf (cap bytes). The arena borrows buf; the caller owns
 * it and must keep it alive while anything allocated from it is used.
 */
void
kp_arena_init(struct kp_arena *a, void *buf, size_t cap);

/**
 * Allocate size bytes aligned to align (a power of two, at most 64).
 *
 * @return a pointer into the arena's buffer, or NULL when it does not fit.
 *   Memory is not zeroed. A zero size returns a valid non-NULL pointer.
 */
static inline void *
kp_arena_alloc(struct kp_arena *a, size_t size, size_t align)
{
	uintptr_t cur = (uintptr_t)a->base + a->used;
	uintptr_t pad = (align - (cur & (align - 1))) & (align - 1);

	if (size > a->cap || a->cap - a->used < size + pad)
		return NULL;
	a->used += pad + size;
	return (void *)(cur + pad);
}

/** Release everything allocated from a in one step. */
static inline void
kp_arena_reset(struct kp_arena *a)
{
	a->used = 0;
}

/* ---- reader -------------------------------------------------------------- */

/* Bounds-checked reader over a borrowed buffer, with one sticky error. */
struct kp_reader {
	const uint8_t *p;   /* next byte */
	const uint8_t *end; /* one past the last readable byte */
	int err;	    /* 0, or the first failure (-EPROTO) */
};

/** Start reading len bytes at buf (borrowed). */
static inline void
kp_reader_init(struct kp_reader *r, const void *buf, size_t len)
{
	r->p = (const uint8_t *)buf;
	r->end = r->p + len;
	r->err = 0;
}

/** Bytes left to read. */
static inline size_t
kp_reader_remaining(const struct kp_reader *r)
{
	return (size_t)(r->end - r->p);
}

/** Record a failure (the first one sticks) and make further reads fail. */
static inline void
kp_reader_fail(struct kp_reader *r, int err)
{
	if (r->err == 0)
		r->err = err;
	r->p = r->end;
}

/* Take n bytes, or fail and return NULL. */
static inline const uint8_t *
kp_rd_take(struct kp_reader *r, size_t n)
{
	const uint8_t *p = r->p;

	if ((size_t)(r->end - p) < n) {
		kp_reader_fail(r, -EPROTO);
		return NULL;
	}
	r->p = p + n;
	return p;
}

static inline int8_t
kp_rd_int8(struct kp_reader *r)
{
	const uint8_t *p = kp_rd_take(r, 1);
	return p ? (int8_t)p[0] : 0;
}

static inline uint16_t
kp_rd_uint16(struct kp_reader *r)
{
	const uint8_t *p = kp_rd_take(r, 2);
	return p ? (uint16_t)((uint16_t)p[0] << 8 | p[1]) : 0;
}

static inline int16_t
kp_rd_int16(struct kp_reader *r)
{
	return (int16_t)kp_rd_uint16(r);
}

static inline uint32_t
kp_rd_uint32(struct kp_reader *r)
{
	const uint8_t *p = kp_rd_take(r, 4);
	uint32_t v;

	if (p == NULL)
		return 0;
	memcpy(&v, p, 4);
	return __builtin_bswap32(v);
}

static inline int32_t
kp_rd_int32(struct kp_reader *r)
{
	return (int32_t)kp_rd_uint32(r);
}

static inline int64_t
kp_rd_int64(struct kp_reader *r)
{
	const uint8_t *p = kp_rd_take(r, 8);
	uint64_t v;

	if (p == NULL)
		return 0;
	memcpy(&v, p, 8);
	return (int64_t)__builtin_bswap64(v);
}

static inline double
kp_rd_float64(struct kp_reader *r)
{
	uint64_t u = (uint64_t)kp_rd_int64(r);
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

/* A bool is one byte, 0 or 1; anything else is malformed (it could not re-encode the same). */
static inline bool
kp_rd_bool(struct kp_reader *r)
{
	const uint8_t *p = kp_rd_take(r, 1);

	if (p == NULL)
		return false;
	if (p[0] > 1)
		kp_reader_fail(r, -EPROTO);
	return p[0] == 1;
}

static inline void
kp_rd_uuid(struct kp_reader *r, struct kp_uuid *u)
{
	const uint8_t *p = kp_rd_take(r, 16);

	if (p != NULL)
		memcpy(u->b, p, 16);
	else
		memset(u->b, 0, 16);
}

/*
 * Unsigned varint of at most 5 bytes (32 bits). More bytes, bits beyond 32
 * or an overlong form (a final zero byte after the first) are malformed.
 */
static inline uint32_t
kp_rd_uvarint(struct kp_reader *r)
{
	const uint8_t *p = r->p;
	uint32_t v = 0;

	if (p < r->end && p[0] < 0x80) {
		r->p = p + 1;
		return p[0];
	}
	for (int i = 0; i < 5; i++) {
		if (p + i >= r->end)
			break;
		uint8_t b = p[i];
		v |= (uint32_t)(b & 0x7f) << (7 * i);
		if (b < 0x80) {
			if ((i > 0 && b == 0) || (i == 4 && b > 0x0f))
				break;
			r->p = p + i + 1;
			return v;
		}
	}
	kp_reader_fail(r, -EPROTO);
	return 0;
}

/* Unsigned varlong of at most 10 bytes, same rules. */
static inline uint64_t
kp_rd_uvarlong(struct kp_reader *r)
{
	const uint8_t *p = r->p;
	uint64_t v = 0;

	for (int i = 0; i < 10; i++) {
		if (p + i >= r->end)
			break;
		uint8_t b = p[i];
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (b < 0x80) {
			if ((i > 0 && b == 0) || (i == 9 && b > 0x01))
				break;
			r->p = p + i + 1;
			return v;
		}
	}
	kp_reader_fail(r, -EPROTO);
	return 0;
}

/* Signed zigzag varint (record layer). */
static inline int32_t
kp_rd_varint(struct kp_reader *r)
{
	uint32_t u = kp_rd_uvarint(r);
	return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
}

/* Signed zigzag varlong (record layer). */
static inline int64_t
kp_rd_varlong(struct kp_reader *r)
{
	uint64_t u = kp_rd_uvarlong(r);
	return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

/*
 * A string: compact (uvarint len+1, 0 = null) when flex, else int16 len (-1 =
 * null). Null where !nullable, a negative length other than null, or a length
 * over KP_STR_MAX or the bytes left is malformed. s borrows the input.
 */
static inline void
kp_rd_str(struct kp_reader *r, bool flex, bool nullable, struct kp_str *s)
{
	int64_t len;

	if (flex)
		len = (int64_t)kp_rd_uvarint(r) - 1;
	else
		len = kp_rd_int16(r);
	s->ptr = NULL;
	s->len = 0;
	if (r->err)
		return;
	if (len < 0) {
		if (len == -1 && nullable)
			s->len = -1;
		else
			kp_reader_fail(r, -EPROTO);
		return;
	}
	if (len > KP_STR_MAX) {
		kp_reader_fail(r, -EPROTO);
		return;
	}
	const uint8_t *p = kp_rd_take(r, (size_t)len);
	if (p != NULL) {
		s->ptr = (const char *)p;
		s->len = (int32_t)len;
	}
}

/*
 * Bytes (also records): compact (uvarint len+1, 0 = null) when flex, else
 * int32 len (-1 = null). b borrows the input; nothing is copied or looked at.
 */
static inline void
kp_rd_bytes(struct kp_reader *r, bool flex, bool nullable, struct kp_bytes *b)
{
	int64_t len;

	if (flex)
		len = (int64_t)kp_rd_uvarint(r) - 1;
	else
		len = kp_rd_int32(r);
	b->ptr = NULL;
	b->len = 0;
	if (r->err)
		return;
	if (len < 0) {
		if (len == -1 && nullable)
			b->len = -1;
		else
			kp_reader_fail(r, -EPROTO);
		return;
	}
	const uint8_t *p = kp_rd_take(r, (size_t)len);
	if (p != NULL) {
		b->ptr = p;
		b->len = (int32_t)len;
	}
}

/*
 * An array count: compact (uvarint n+1, 0 = null) when flex, else int32 (-1 =
 * null). A count whose elements (at least min_elem bytes each) cannot fit in
 * the bytes left is malformed, so a lying count never leads to a large
 * allocation.
 *
 * @return the count, -1 for null, 0 on failure (r->err set).
 */
static inline int32_t
kp_rd_array_len(struct kp_reader *r, bool flex, bool nullable, size_t min_elem)
{
	int64_t n;

	if (flex)
		n = (int64_t)kp_rd_uvarint(r) - 1;
	else
		n = kp_rd_int32(r);
	if (r->err)
		return 0;
	if (n < 0) {
		if (n == -1 && nullable)
			return -1;
		kp_reader_fail(r, -EPROTO);
		return 0;
	}
	if ((uint64_t)n * (min_elem ? min_elem : 1) > kp_reader_remaining(r)) {
		kp_reader_fail(r, -EPROTO);
		return 0;
	}
	return (int32_t)n;
}

/**
 * Keep an unknown tagged field: append {tag, bytes} to t, allocating room for
 * max_more entries from a on the first call (max_more = tags still to read in
 * this section, including this one).
 *
 * @return 0, or -ENOMEM when the arena is full.
 */
int
kp_tags_add(struct kp_tags *t, uint32_t tag, const uint8_t *data, uint32_t len, uint32_t max_more,
	    struct kp_arena *a);

/* ---- writer -------------------------------------------------------------- */

/* Writer into a caller buffer with a fixed capacity, with one sticky error. */
/*
 * A bytes field left out of the output by reference (zero-copy encoding,
 * kp_writer_set_refs()): its @len bytes at @ptr belong at output offset @off,
 * after the length prefix that was written.
 */
struct kp_wr_ref {
	size_t off;         /* kp_writer_len() where the bytes go */
	const uint8_t *ptr; /* borrowed from the message */
	size_t len;
};

struct kp_writer {
	uint8_t *start; /* the caller's buffer (borrowed) */
	uint8_t *p;	/* next byte to write */
	uint8_t *end;	/* one past the last writable byte */
	int err;	/* 0, -ENOBUFS when full, -EINVAL for an unencodable value */
	struct kp_wr_ref *refs; /* NULL: bytes fields are copied (the default) */
	uint32_t n_refs;        /* used entries of refs */
	uint32_t max_refs;      /* entries of refs; one more fails with -ENOBUFS */
	size_t ref_bytes;       /* sum of the refs' lengths */
};

/** Start writing into buf (cap bytes, borrowed). */
static inline void
kp_writer_init(struct kp_writer *w, void *buf, size_t cap)
{
	w->start = (uint8_t *)buf;
	w->p = w->start;
	w->end = w->start + cap;
	w->err = 0;
	w->refs = NULL;
	w->n_refs = 0;
	w->max_refs = 0;
	w->ref_bytes = 0;
}

/**
 * Leave non-empty bytes/records fields out of the output from here on: each
 * writes its length prefix and is listed in @refs (@max entries, borrowed)
 * instead of being copied, so a transport can send the fields in place
 * (Fetch records from the storage tail cache). The full encoding is the
 * output with each ref's bytes inserted at its offset, kp_writer_len() +
 * ref_bytes long.
 */
static inline void
kp_writer_set_refs(struct kp_writer *w, struct kp_wr_ref *refs, uint32_t max)
{
	w->refs = refs;
	w->n_refs = 0;
	w->max_refs = max;
	w->ref_bytes = 0;
}

/** Bytes written so far. */
static inline size_t
kp_writer_len(const struct kp_writer *w)
{
	return (size_t)(w->p - w->start);
}

/** Record a failure (the first one sticks); nothing more is written. */
static inline void
kp_writer_fail(struct kp_writer *w, int err)
{
	if (w->err == 0)
		w->err = err;
	w->end = w->p;
}

/* Room for n bytes, or fail and return NULL. */
static inline uint8_t *
kp_wr_reserve(struct kp_writer *w, size_t n)
{
	uint8_t *p = w->p;

	if ((size_t)(w->end - p) < n) {
		kp_writer_fail(w, -ENOBUFS);
		return NULL;
	}
	w->p = p + n;
	return p;
}

static inline void
kp_wr_raw(struct kp_writer *w, const void *src, size_t n)
{
	uint8_t *p = kp_wr_reserve(w, n);

	if (p != NULL && n > 0)
		memcpy(p, src, n);
}

static inline void
kp_wr_int8(struct kp_writer *w, int8_t v)
{
	uint8_t *p = kp_wr_reserve(w, 1);

	if (p != NULL)
		p[0] = (uint8_t)v;
}

static inline void
kp_wr_uint16(struct kp_writer *w, uint16_t v)
{
	uint8_t *p = kp_wr_reserve(w, 2);

	if (p != NULL) {
		p[0] = (uint8_t)(v >> 8);
		p[1] = (uint8_t)v;
	}
}

static inline void
kp_wr_int16(struct kp_writer *w, int16_t v)
{
	kp_wr_uint16(w, (uint16_t)v);
}

static inline void
kp_wr_uint32(struct kp_writer *w, uint32_t v)
{
	uint8_t *p = kp_wr_reserve(w, 4);

	if (p != NULL) {
		v = __builtin_bswap32(v);
		memcpy(p, &v, 4);
	}
}

static inline void
kp_wr_int32(struct kp_writer *w, int32_t v)
{
	kp_wr_uint32(w, (uint32_t)v);
}

static inline void
kp_wr_int64(struct kp_writer *w, int64_t v)
{
	uint8_t *p = kp_wr_reserve(w, 8);

	if (p != NULL) {
		uint64_t u = __builtin_bswap64((uint64_t)v);
		memcpy(p, &u, 8);
	}
}

static inline void
kp_wr_float64(struct kp_writer *w, double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	kp_wr_int64(w, (int64_t)u);
}

static inline void
kp_wr_bool(struct kp_writer *w, bool v)
{
	kp_wr_int8(w, v ? 1 : 0);
}

static inline void
kp_wr_uuid(struct kp_writer *w, const struct kp_uuid *u)
{
	kp_wr_raw(w, u->b, 16);
}

static inline void
kp_wr_uvarint(struct kp_writer *w, uint32_t v)
{
	if (v < 0x80) {
		kp_wr_int8(w, (int8_t)v);
		return;
	}
	uint8_t buf[5];
	size_t n = 0;
	while (v >= 0x80) {
		buf[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	buf[n++] = (uint8_t)v;
	kp_wr_raw(w, buf, n);
}

static inline void
kp_wr_uvarlong(struct kp_writer *w, uint64_t v)
{
	uint8_t buf[10];
	size_t n = 0;

	while (v >= 0x80) {
		buf[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	buf[n++] = (uint8_t)v;
	kp_wr_raw(w, buf, n);
}

static inline void
kp_wr_varint(struct kp_writer *w, int32_t v)
{
	kp_wr_uvarint(w, ((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

static inline void
kp_wr_varlong(struct kp_writer *w, int64_t v)
{
	kp_wr_uvarlong(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static inline void
kp_wr_str(struct kp_writer *w, bool flex, bool nullable, const struct kp_str *s)
{
	if (s->len < 0) {
		if (s->len != -1 || !nullable) {
			kp_writer_fail(w, -EINVAL);
			return;
		}
		if (flex)
			kp_wr_uvarint(w, 0);
		else
			kp_wr_int16(w, -1);
		return;
	}
	if (s->len > KP_STR_MAX) {
		kp_writer_fail(w, -EINVAL);
		return;
	}
	if (flex)
		kp_wr_uvarint(w, (uint32_t)s->len + 1);
	else
		kp_wr_int16(w, (int16_t)s->len);
	kp_wr_raw(w, s->ptr, (size_t)s->len);
}

static inline void
kp_wr_bytes(struct kp_writer *w, bool flex, bool nullable, const struct kp_bytes *b)
{
	if (b->len < 0) {
		if (b->len != -1 || !nullable) {
			kp_writer_fail(w, -EINVAL);
			return;
		}
		if (flex)
			kp_wr_uvarint(w, 0);
		else
			kp_wr_int32(w, -1);
		return;
	}
	if (flex)
		kp_wr_uvarint(w, (uint32_t)b->len + 1);
	else
		kp_wr_int32(w, b->len);
	if (w->refs != NULL && b->len > 0 && w->err == 0) {
		if (w->n_refs == w->max_refs) {
			kp_writer_fail(w, -ENOBUFS);
			return;
		}
		w->refs[w->n_refs++] = (struct kp_wr_ref){.off = (size_t)(w->p - w->start),
			.ptr = (const uint8_t *)b->ptr, .len = (size_t)b->len};
		w->ref_bytes += (size_t)b->len;
		return;
	}
	kp_wr_raw(w, b->ptr, (size_t)b->len);
}

/* An array count; -1 is null and only allowed where nullable. */
static inline void
kp_wr_array_len(struct kp_writer *w, bool flex, bool nullable, int32_t n)
{
	if (n < 0 && (n != -1 || !nullable)) {
		kp_writer_fail(w, -EINVAL);
		return;
	}
	if (flex)
		kp_wr_uvarint(w, (uint32_t)(n + 1));
	else
		kp_wr_int32(w, n);
}

/* Write one unknown tagged field back as it came: tag, size, bytes. */
static inline void
kp_wr_raw_tag(struct kp_writer *w, const struct kp_raw_tag *t)
{
	kp_wr_uvarint(w, t->tag);
	kp_wr_uvarint(w, (uint32_t)t->data.len);
	kp_wr_raw(w, t->data.ptr, (size_t)t->data.len);
}

/* ---- sizes --------------------------------------------------------------- */

static inline size_t
kp_uvarint_size(uint32_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static inline size_t
kp_str_size(bool flex, const struct kp_str *s)
{
	size_t len = s->len < 0 ? 0 : (size_t)s->len;

	if (flex)
		return kp_uvarint_size((uint32_t)(s->len + 1)) + len;
	return 2 + len;
}

static inline size_t
kp_bytes_size(bool flex, const struct kp_bytes *b)
{
	size_t len = b->len < 0 ? 0 : (size_t)b->len;

	if (flex)
		return kp_uvarint_size((uint32_t)(b->len + 1)) + len;
	return 4 + len;
}

static inline size_t
kp_array_len_size(bool flex, int32_t n)
{
	return flex ? kp_uvarint_size((uint32_t)(n + 1)) : 4;
}

static inline size_t
kp_raw_tag_size(const struct kp_raw_tag *t)
{
	return kp_uvarint_size(t->tag) + kp_uvarint_size((uint32_t)t->data.len) +
	       (size_t)t->data.len;
}

/* ---- comparisons used for tagged-field defaults -------------------------- */

static inline bool
kp_str_eq_lit(const struct kp_str *s, const char *lit)
{
	size_t n = strlen(lit);

	return s->len >= 0 && (size_t)s->len == n && (n == 0 || memcmp(s->ptr, lit, n) == 0);
}

static inline bool
kp_uuid_is_zero(const struct kp_uuid *u)
{
	static const struct kp_uuid zero;

	return memcmp(u->b, zero.b, 16) == 0;
}

#endif /* SLP_KP_WIRE_H */
