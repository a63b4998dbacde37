/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Round trips of every generated Kafka message in every version: fill with
 * random contents (generated test-only fillers), encode, check size() equals
 * the bytes written, decode, check every byte was consumed, re-encode and
 * compare bytes. Every strict prefix of an encoding (sampled for long ones)
 * must fail to decode with -EPROTO; the inputs are exact-size heap copies so
 * ASan catches any read past them. Plus hand-built malformed frames:
 * unsupported versions, huge counts, unknown and disordered tagged fields,
 * arena exhaustion, and the header versions of the dispatch table.
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

#include "generated/fill/kp_fill.h"
#include "kp_api.h"
#include "kp_error.h"
#include "kp_wire.h"

#define ITERATIONS 40
#define ARENA_BYTES (1u << 20)
#define BUF_BYTES (1u << 20)
#define MAX_PREFIXES 48

static uint8_t fill_mem[ARENA_BYTES] __attribute__((aligned(64)));
static uint8_t dec_mem[ARENA_BYTES] __attribute__((aligned(64)));
static uint8_t enc1[BUF_BYTES];
static uint8_t enc2[BUF_BYTES];

static unsigned long round_trips;
static unsigned long long round_trip_bytes;
static size_t round_trip_max;

/* Decode a heap copy of exactly len bytes so ASan sees any overread. */
static int
decode_copy(const struct kp_msg_codec *c, int16_t v, const uint8_t *buf, size_t len, void *out,
	    struct kp_arena *a, size_t *left)
{
	uint8_t *copy = malloc(len ? len : 1);
	struct kp_reader r;
	int rc;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	kp_reader_init(&r, copy, len);
	rc = c->decode(out, v, &r, a);
	if (left != NULL)
		*left = kp_reader_remaining(&r);
	free(copy);
	return rc;
}

static void
round_trip(const struct kp_msg_codec *c, kp_fill_fn fill, int16_t v, uint64_t seed)
{
	struct kp_rng rng = {.s = seed * 0x9e3779b97f4a7c15ull + 1};
	struct kp_arena fa, da;
	struct kp_writer w;
	void *m, *d;
	int64_t sz, sz2;
	size_t left, len;
	int rc;

	kp_arena_init(&fa, fill_mem, sizeof(fill_mem));
	kp_arena_init(&da, dec_mem, sizeof(dec_mem));
	m = kp_arena_alloc(&fa, c->struct_size, 16);
	assert_non_null(m);
	fill(m, v, &rng, &fa);

	sz = c->size(m, v);
	assert_true(sz >= 0 && sz <= (int64_t)BUF_BYTES);
	kp_writer_init(&w, enc1, sizeof(enc1));
	rc = c->encode(m, v, &w);
	if (rc != 0 || (int64_t)kp_writer_len(&w) != sz)
		print_error("%s v%d seed %llu: encode rc %d, wrote %zu, size() %lld\n", c->name, v,
			    (unsigned long long)seed, rc, kp_writer_len(&w), (long long)sz);
	assert_int_equal(rc, 0);
	assert_int_equal(kp_writer_len(&w), (size_t)sz);
	len = (size_t)sz;

	d = kp_arena_alloc(&da, c->struct_size, 16);
	assert_non_null(d);
	rc = decode_copy(c, v, enc1, len, d, &da, &left);
	if (rc != 0 || left != 0)
		print_error("%s v%d seed %llu: decode rc %d, %zu bytes left of %zu\n", c->name, v,
			    (unsigned long long)seed, rc, left, len);
	assert_int_equal(rc, 0);
	assert_int_equal(left, 0);

	/* Re-encode what was decoded (its strings now point into a freed copy, so
	 * decode again from enc1 itself, which outlives the re-encode). */
	{
		struct kp_reader r;
		kp_arena_reset(&da);
		d = kp_arena_alloc(&da, c->struct_size, 16);
		kp_reader_init(&r, enc1, len);
		assert_int_equal(c->decode(d, v, &r, &da), 0);
	}
	sz2 = c->size(d, v);
	assert_int_equal(sz2, sz);
	kp_writer_init(&w, enc2, sizeof(enc2));
	assert_int_equal(c->encode(d, v, &w), 0);
	assert_int_equal(kp_writer_len(&w), len);
	if (memcmp(enc1, enc2, len) != 0) {
		print_error("%s v%d seed %llu: re-encoding differs\n", c->name, v,
			    (unsigned long long)seed);
		fail();
	}

	/* Failing allocation: with any smaller arena, decode fails with -ENOMEM, never worse. */
	{
		size_t need = da.used - c->struct_size; /* what decode itself took */
		size_t caps[] = {0, need / 2, need > 0 ? need - 1 : 0};
		for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]) && need > 0; i++) {
			struct kp_arena small;
			struct kp_reader r;
			uint8_t *mem = malloc(caps[i] + 1);
			void *dd = malloc(c->struct_size);
			assert_non_null(mem);
			assert_non_null(dd);
			kp_arena_init(&small, mem, caps[i]);
			kp_reader_init(&r, enc1, len);
			assert_int_equal(c->decode(dd, v, &r, &small), -ENOMEM);
			assert_true(small.used <= caps[i]);
			free(dd);
			free(mem);
		}
	}

	/* A buffer one byte short must fail cleanly. */
	if (len > 0) {
		kp_writer_init(&w, enc2, len - 1);
		assert_int_equal(c->encode(d, v, &w), -ENOBUFS);
		assert_true(kp_writer_len(&w) <= len - 1);
	}

	/* Every strict prefix fails to decode (sampled when long). */
	size_t n_pref = len < MAX_PREFIXES ? len : MAX_PREFIXES;
	for (size_t i = 0; i < n_pref; i++) {
		size_t k;
		if (len <= MAX_PREFIXES)
			k = i;
		else if (i < 8)
			k = i;
		else if (i < 16)
			k = len - 1 - (i - 8);
		else
			k = (size_t)(kp_rng_next(&rng) % len);
		kp_arena_reset(&da);
		d = kp_arena_alloc(&da, c->struct_size, 16);
		rc = decode_copy(c, v, enc1, k, d, &da, NULL);
		if (rc != -EPROTO)
			print_error("%s v%d seed %llu: prefix %zu of %zu decoded with rc %d\n",
				    c->name, v, (unsigned long long)seed, k, len, rc);
		assert_int_equal(rc, -EPROTO);
	}
	round_trips++;
	round_trip_bytes += len;
	if (len > round_trip_max)
		round_trip_max = len;
}

static void
test_round_trip_all_apis(void **state)
{
	(void)state;
	for (int k = 0; k < KP_API_KEY_COUNT; k++) {
		const struct kp_api_desc *d = &kp_api_table[k];
		assert_int_equal(d->api_key, k);
		for (int16_t v = d->min_version; v <= d->max_version; v++) {
			for (int it = 0; it < ITERATIONS; it++) {
				uint64_t seed = (uint64_t)k * 100000 + (uint64_t)v * 100 + it;
				round_trip(&d->request, kp_fill_request_table[k], v, seed);
				round_trip(&d->response, kp_fill_response_table[k], v, seed);
			}
		}
	}
	print_message("%lu API round trips, %llu bytes, largest %zu\n", round_trips,
		      round_trip_bytes, round_trip_max);
	/* the fillers must produce real content, not empty messages */
	assert_true(round_trip_bytes > 40 * (unsigned long long)round_trips);
}

static void
test_round_trip_other_messages(void **state)
{
	(void)state;
	for (int i = 0; i < KP_MSG_OTHER_COUNT; i++) {
		const struct kp_msg_other_desc *d = &kp_msg_other_table[i];
		for (int16_t v = d->min_version; v <= d->max_version; v++)
			for (int it = 0; it < ITERATIONS; it++)
				round_trip(&d->codec, kp_fill_other_table[i], v,
					   (uint64_t)i * 1000 + (uint64_t)v * 100 + it);
	}
}

/* Versions outside validVersions: -EPROTONOSUPPORT from decode, encode and size. */
static void
test_unsupported_versions(void **state)
{
	static uint8_t zeros[64];
	(void)state;
	for (int k = 0; k < KP_API_KEY_COUNT; k++) {
		const struct kp_api_desc *d = &kp_api_table[k];
		int16_t bad[] = {(int16_t)(d->min_version - 1), (int16_t)(d->max_version + 1), -1,
				 INT16_MAX};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			const struct kp_msg_codec *cs[] = {&d->request, &d->response};
			for (int j = 0; j < 2; j++) {
				const struct kp_msg_codec *c = cs[j];
				uint8_t mem[8192] __attribute__((aligned(16)));
				struct kp_arena a;
				struct kp_reader r;
				struct kp_writer w;
				void *m;
				kp_arena_init(&a, mem, sizeof(mem));
				m = kp_arena_alloc(&a, c->struct_size, 16);
				assert_non_null(m);
				c->init(m);
				kp_reader_init(&r, zeros, sizeof(zeros));
				assert_int_equal(c->decode(m, bad[i], &r, &a), -EPROTONOSUPPORT);
				kp_writer_init(&w, enc1, sizeof(enc1));
				assert_int_equal(c->encode(m, bad[i], &w), -EPROTONOSUPPORT);
				assert_int_equal(c->size(m, bad[i]), -EPROTONOSUPPORT);
			}
		}
	}
	assert_int_equal(kp_error_from_errno(-EPROTONOSUPPORT), KP_ERR_UNSUPPORTED_VERSION);
}

static void
test_header_versions(void **state)
{
	(void)state;
	const struct kp_api_desc *p = kp_api_lookup(KP_API_PRODUCE);
	const struct kp_api_desc *cs = kp_api_lookup(KP_API_CONTROLLED_SHUTDOWN);
	const struct kp_api_desc *av = kp_api_lookup(KP_API_API_VERSIONS);

	assert_string_equal(p->name, "Produce");
	assert_int_equal(p->first_flexible, 9);
	assert_int_equal(kp_api_request_header_version(p, 8), 1);
	assert_int_equal(kp_api_request_header_version(p, 9), 2);
	assert_int_equal(kp_api_response_header_version(p, 8), 0);
	assert_int_equal(kp_api_response_header_version(p, 9), 1);
	assert_int_equal(kp_api_request_header_version(cs, 0), 0);
	assert_int_equal(kp_api_request_header_version(cs, 1), 1);
	assert_int_equal(kp_api_request_header_version(cs, 3), 2);
	assert_int_equal(kp_api_request_header_version(av, 3), 2);
	assert_int_equal(kp_api_response_header_version(av, 3), 0);
	assert_int_equal(kp_api_response_header_version(av, 4), 0);
	/* a too-new ApiVersions request is still read with the flexible header */
	assert_int_equal(kp_api_request_header_version(av, 99), 2);
	assert_string_equal(kp_api_lookup(KP_API_FETCH)->request.name, "FetchRequest");
	assert_null(kp_api_lookup(KP_API_KEY_COUNT));
	assert_null(kp_api_lookup(-1));
	assert_true(kp_api_version_supported(p, 11));
	assert_false(kp_api_version_supported(p, 12));
}

/* Request header: api key/version/correlation/client id, then the header's tags. */
static void
test_request_header_read(void **state)
{
	/* ApiVersions v3: header v2; client id "ab" non-compact, then 0 tags. */
	static const uint8_t f1[] = {0, 18, 0, 3, 0, 0, 0, 7, 0, 2, 'a', 'b', 0};
	/* ControlledShutdown v0: header v0, no client id. */
	static const uint8_t f2[] = {0, 7, 0, 0, 0, 0, 0, 9};
	/* Unknown key 999. */
	static const uint8_t f3[] = {0x03, 0xe7, 0, 1, 0, 0, 0, 5, 0xff, 0xff};
	uint8_t mem[1024] __attribute__((aligned(16)));
	struct kp_request_header h;
	struct kp_arena a;
	struct kp_reader r;
	struct kp_writer w;
	uint8_t out[64];
	int16_t hv = -1;
	(void)state;

	kp_arena_init(&a, mem, sizeof(mem));
	kp_reader_init(&r, f1, sizeof(f1));
	assert_int_equal(kp_request_header_read(&h, &hv, &r, &a), 0);
	assert_int_equal(hv, 2);
	assert_int_equal(h.request_api_key, 18);
	assert_int_equal(h.request_api_version, 3);
	assert_int_equal(h.correlation_id, 7);
	assert_int_equal(h.client_id.len, 2);
	assert_memory_equal(h.client_id.ptr, "ab", 2);
	assert_ptr_equal(h.client_id.ptr, (const char *)f1 + 10); /* borrowed, not copied */
	assert_int_equal(kp_reader_remaining(&r), 0);
	kp_writer_init(&w, out, sizeof(out));
	assert_int_equal(kp_request_header_write(&h, &w), 0);
	assert_int_equal(kp_writer_len(&w), sizeof(f1));
	assert_memory_equal(out, f1, sizeof(f1));

	kp_reader_init(&r, f2, sizeof(f2));
	assert_int_equal(kp_request_header_read(&h, &hv, &r, &a), 0);
	assert_int_equal(hv, 0);
	assert_int_equal(h.correlation_id, 9);
	assert_int_equal(h.client_id.len, 0); /* absent in v0: schema default "" */

	kp_reader_init(&r, f3, sizeof(f3));
	assert_int_equal(kp_request_header_read(&h, &hv, &r, &a), -EPROTONOSUPPORT);
	assert_int_equal(h.request_api_key, 999);
	assert_int_equal(h.correlation_id, 5);

	kp_reader_init(&r, f1, 5);
	assert_int_equal(kp_request_header_read(&h, &hv, &r, &a), -EPROTO);
}

/* ProduceRequest v9 (flexible) body builder. */
static size_t
produce_v9(uint8_t *b, uint32_t topics_plus1, const uint8_t *tags, size_t tags_len)
{
	size_t n = 0;
	b[n++] = 0; /* transactional id: null */
	b[n++] = 0xff;
	b[n++] = 0xff; /* acks -1 */
	b[n++] = 0;
	b[n++] = 0;
	b[n++] = 0x75;
	b[n++] = 0x30; /* timeout 30000 */
	b[n++] = (uint8_t)topics_plus1;
	if (topics_plus1 == 2) {
		b[n++] = 2;
		b[n++] = 't';	 /* name "t" */
		b[n++] = 2;	 /* 1 partition */
		memcpy(b + n, "\0\0\0\x05", 4); /* index 5 */
		n += 4;
		b[n++] = 4; /* records: 3 bytes */
		b[n++] = 0xaa;
		b[n++] = 0xbb;
		b[n++] = 0xcc;
		b[n++] = 0; /* partition tags */
		b[n++] = 0; /* topic tags */
	}
	memcpy(b + n, tags, tags_len);
	return n + tags_len;
}

static void
test_produce_borrows_records_and_keeps_unknown_tags(void **state)
{
	/* two unknown tags: 3 -> {0x01}, 7 -> {} */
	static const uint8_t tags[] = {2, 3, 1, 0x01, 7, 0};
	uint8_t mem[4096] __attribute__((aligned(16)));
	uint8_t b[128], out[128];
	struct kp_produce_request m;
	struct kp_arena a;
	struct kp_reader r;
	struct kp_writer w;
	size_t n = produce_v9(b, 2, tags, sizeof(tags));
	(void)state;

	kp_arena_init(&a, mem, sizeof(mem));
	kp_reader_init(&r, b, n);
	assert_int_equal(kp_produce_request_decode(&m, 9, &r, &a), 0);
	assert_int_equal(kp_reader_remaining(&r), 0);
	assert_int_equal(m.acks, -1);
	assert_int_equal(m.timeout_ms, 30000);
	assert_int_equal(m.transactional_id.len, -1);
	assert_int_equal(m.topic_data.count, 1);
	assert_int_equal(m.topic_data.items[0].partition_data.items[0].index, 5);
	struct kp_bytes rec = m.topic_data.items[0].partition_data.items[0].records;
	assert_int_equal(rec.len, 3);
	assert_true(rec.ptr >= b && rec.ptr < b + n); /* points into the frame */
	assert_int_equal(m.unknown_tags.count, 2);
	assert_int_equal(m.unknown_tags.items[0].tag, 3);
	assert_int_equal(m.unknown_tags.items[0].data.len, 1);
	assert_int_equal(m.unknown_tags.items[1].tag, 7);
	assert_int_equal(m.unknown_tags.items[1].data.len, 0);
	assert_int_equal(kp_produce_request_size(&m, 9), (int64_t)n);
	kp_writer_init(&w, out, sizeof(out));
	assert_int_equal(kp_produce_request_encode(&m, 9, &w), 0);
	assert_int_equal(kp_writer_len(&w), n);
	assert_memory_equal(out, b, n);
}

static void
test_tagged_field_errors(void **state)
{
	uint8_t mem[4096] __attribute__((aligned(16)));
	struct kp_produce_request m;
	struct kp_arena a;
	struct kp_reader r;
	uint8_t b[128];
	size_t n;
	(void)state;

	static const uint8_t disorder[] = {2, 7, 0, 3, 0};	    /* descending tags */
	static const uint8_t dup[] = {2, 3, 0, 3, 0};		    /* same tag twice */
	static const uint8_t size_past_end[] = {1, 3, 9, 1};	    /* size 9, 1 byte left */
	static const uint8_t too_many[] = {0x7f};		    /* 127 tags, nothing left */
	static const uint8_t overlong_count[] = {0x80, 0x00};	    /* overlong uvarint 0 */
	static const uint8_t six_byte[] = {0x81, 0x80, 0x80, 0x80, 0x80, 0x00};
	const struct {
		const uint8_t *t;
		size_t n;
	} cases[] = {
		{disorder, sizeof(disorder)},		{dup, sizeof(dup)},
		{size_past_end, sizeof(size_past_end)}, {too_many, sizeof(too_many)},
		{overlong_count, sizeof(overlong_count)}, {six_byte, sizeof(six_byte)},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = produce_v9(b, 1, cases[i].t, cases[i].n);
		kp_arena_init(&a, mem, sizeof(mem));
		kp_reader_init(&r, b, n);
		assert_int_equal(kp_produce_request_decode(&m, 9, &r, &a), -EPROTO);
	}
	assert_int_equal(kp_error_from_errno(-EPROTO), KP_ERR_INVALID_REQUEST);
}

/* Known tagged fields: FetchRequest v12 ClusterId (tag 0) and ReplicaState (tag 1). */
static void
test_known_tagged_fields(void **state)
{
	uint8_t mem[1 << 14] __attribute__((aligned(16)));
	uint8_t buf[256], buf2[256];
	struct kp_fetch_request m, d;
	struct kp_arena a;
	struct kp_reader r;
	struct kp_writer w;
	(void)state;

	kp_fetch_request_init(&m);
	assert_int_equal(m.cluster_id.len, -1); /* default null */
	assert_int_equal(m.replica_id, -1);
	assert_int_equal(m.max_bytes, 0x7fffffff);
	/* Default values are not written: the tag section is empty. */
	kp_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(kp_fetch_request_encode(&m, 12, &w), 0);
	size_t plain = kp_writer_len(&w);
	assert_int_equal(buf[plain - 1], 0);

	m.cluster_id.ptr = "c1";
	m.cluster_id.len = 2;
	kp_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(kp_fetch_request_encode(&m, 12, &w), 0);
	size_t n = kp_writer_len(&w);
	assert_int_equal((int64_t)n, kp_fetch_request_size(&m, 12));
	/* ntag 1, tag 0, size 3, compact string "c1" */
	assert_int_equal(n, plain + 5);
	assert_memory_equal(buf + plain - 1, "\x01\x00\x03\x03" "c1", 6);

	kp_arena_init(&a, mem, sizeof(mem));
	kp_reader_init(&r, buf, n);
	assert_int_equal(kp_fetch_request_decode(&d, 12, &r, &a), 0);
	assert_int_equal(d.cluster_id.len, 2);
	assert_int_equal(d.tags_present, 1);
	kp_writer_init(&w, buf2, sizeof(buf2));
	assert_int_equal(kp_fetch_request_encode(&d, 12, &w), 0);
	assert_memory_equal(buf, buf2, n);

	/* A known tag whose value does not fill its declared size is malformed. */
	buf[plain + 1] = 4;
	buf[n] = 0;
	kp_reader_init(&r, buf, n + 1);
	assert_int_equal(kp_fetch_request_decode(&d, 12, &r, &a), -EPROTO);
}

/* Counts and lengths from the wire are never trusted. */
static void
test_huge_counts_and_lengths(void **state)
{
	uint8_t mem[256] __attribute__((aligned(16)));
	struct kp_produce_request m;
	struct kp_arena a;
	struct kp_reader r;
	(void)state;

	/* Produce v3: txn id null, acks, timeout, topic count 0x7fffffff */
	static const uint8_t huge_topics[] = {0xff, 0xff, 0, 1, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff};
	kp_arena_init(&a, mem, sizeof(mem));
	kp_reader_init(&r, huge_topics, sizeof(huge_topics));
	assert_int_equal(kp_produce_request_decode(&m, 3, &r, &a), -EPROTO);
	assert_int_equal(a.used, 0); /* nothing was allocated */

	/* negative count other than -1 */
	static const uint8_t neg_topics[] = {0xff, 0xff, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe};
	kp_reader_init(&r, neg_topics, sizeof(neg_topics));
	assert_int_equal(kp_produce_request_decode(&m, 3, &r, &a), -EPROTO);
	/* null for a non-nullable array */
	static const uint8_t null_topics[] = {0xff, 0xff, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff};
	kp_reader_init(&r, null_topics, sizeof(null_topics));
	assert_int_equal(kp_produce_request_decode(&m, 3, &r, &a), -EPROTO);
	/* transactional id length -2 */
	static const uint8_t neg_str[] = {0xff, 0xfe, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0};
	kp_reader_init(&r, neg_str, sizeof(neg_str));
	assert_int_equal(kp_produce_request_decode(&m, 3, &r, &a), -EPROTO);
	/* transactional id longer than the frame */
	static const uint8_t long_str[] = {0x7f, 0xff, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0};
	kp_reader_init(&r, long_str, sizeof(long_str));
	assert_int_equal(kp_produce_request_decode(&m, 3, &r, &a), -EPROTO);
	/* records length 0x7fffffff */
	static const uint8_t huge_rec[] = {0xff, 0xff, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 't',
					   0, 0, 0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 1};
	kp_reader_init(&r, huge_rec, sizeof(huge_rec));
	assert_int_equal(kp_produce_request_decode(&m, 3, &r, &a), -EPROTO);
	/* the same with a sane length decodes */
	uint8_t ok_rec[sizeof(huge_rec)];
	memcpy(ok_rec, huge_rec, sizeof(ok_rec));
	ok_rec[23] = 0;
	ok_rec[24] = 0;
	ok_rec[25] = 0;
	ok_rec[26] = 1;
	kp_reader_init(&r, ok_rec, sizeof(ok_rec));
	assert_int_equal(kp_produce_request_decode(&m, 3, &r, &a), 0);
	assert_int_equal(m.topic_data.items[0].partition_data.items[0].records.len, 1);
}

/* Arena exhaustion is -ENOMEM, never an overflow. */
static void
test_arena_exhaustion(void **state)
{
	uint8_t mem[64] __attribute__((aligned(16)));
	uint8_t b[128];
	struct kp_produce_request m;
	struct kp_arena a;
	struct kp_reader r;
	size_t n = produce_v9(b, 2, (const uint8_t *)"\0", 1);
	(void)state;

	kp_arena_init(&a, mem, 40); /* one topic struct fits, its partition does not */
	kp_reader_init(&r, b, n);
	assert_int_equal(kp_produce_request_decode(&m, 9, &r, &a), -ENOMEM);
	assert_true(a.used <= 40);
	kp_arena_init(&a, mem, sizeof(mem) * 0 + 1);
	kp_reader_init(&r, b, n);
	assert_int_equal(kp_produce_request_decode(&m, 9, &r, &a), -ENOMEM);
}

/* Encoding values a version cannot carry fails with -EINVAL, absent fields are not written. */
static void
test_encode_rules(void **state)
{
	struct kp_produce_request m;
	struct kp_writer w;
	uint8_t buf[64];
	(void)state;

	kp_produce_request_init(&m);
	m.transactional_id.ptr = "txn";
	m.transactional_id.len = 3;
	/* v2 has no transactional id: it is not written */
	kp_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(kp_produce_request_encode(&m, 2, &w), 0);
	assert_int_equal(kp_writer_len(&w), 2 + 4 + 4);
	assert_int_equal(kp_produce_request_size(&m, 2), 10);
	kp_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(kp_produce_request_encode(&m, 3, &w), 0);
	assert_int_equal(kp_writer_len(&w), 2 + 3 + 2 + 4 + 4);
	/* null where the version does not allow it */
	m.topic_data.count = -1;
	kp_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(kp_produce_request_encode(&m, 3, &w), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_all_apis),
		cmocka_unit_test(test_round_trip_other_messages),
		cmocka_unit_test(test_unsupported_versions),
		cmocka_unit_test(test_header_versions),
		cmocka_unit_test(test_request_header_read),
		cmocka_unit_test(test_produce_borrows_records_and_keeps_unknown_tags),
		cmocka_unit_test(test_tagged_field_errors),
		cmocka_unit_test(test_known_tagged_fields),
		cmocka_unit_test(test_huge_counts_and_lengths),
		cmocka_unit_test(test_arena_exhaustion),
		cmocka_unit_test(test_encode_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
