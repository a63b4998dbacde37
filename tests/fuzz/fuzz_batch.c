/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for record batch v2 and the compression codecs: the input is
 * taken as one batch (header parse, shallow and deep validation with a
 * bounded decompression, record and header iteration whether or not
 * validation passed) and also fed raw to every decompressor with a small
 * bound. A batch that validates is rebuilt with the builder from its
 * iterated records and must validate again with the same contents (a
 * differential check of the iterator against the writer).
 *
 * Built with libFuzzer under -Dfuzz=true, otherwise with replay_main.c so
 * every test run replays tests/fuzz/corpus/batch/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kp_batch.h"
#include "kp_compress.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_BOUND (256u << 10) /* decompression bound: keeps each run cheap */

static uint8_t fuzz_scratch[FUZZ_BOUND];
static uint8_t fuzz_rebuild[FUZZ_BOUND + 4096];

static void
fuzz_abort_if(int cond)
{
	if (cond)
		abort();
}

/* A record's timestamp, base + delta with Java's wrapping long addition. */
static int64_t
fuzz_ts(int64_t base, int64_t delta)
{
	return (int64_t)((uint64_t)base + (uint64_t)delta);
}

/* Walk every record and header; returns the number of records read. */
static int32_t
fuzz_iterate(const uint8_t *rec, size_t len, int32_t count, uint32_t *sink)
{
	struct kp_record_iter it;
	struct kp_record r;
	int32_t n = 0;
	int rc;

	kp_record_iter_init(&it, rec, len, count);
	while ((rc = kp_record_iter_next(&it, &r)) == 1) {
		struct kp_record_header h;
		const uint8_t *p = r.headers, *end = r.headers + r.headers_len;
		int hn = 0, hrc;

		/* Touch the bytes the pointers claim, so ASan checks the bounds. */
		if (r.key_len > 0)
			*sink += r.key[0] + r.key[r.key_len - 1];
		if (r.value_len > 0)
			*sink += r.value[0] + r.value[r.value_len - 1];
		while ((hrc = kp_record_header_next(&p, end, &h)) == 1) {
			if (h.key_len > 0)
				*sink += h.key[h.key_len - 1];
			if (h.value_len > 0)
				*sink += h.value[h.value_len - 1];
			hn++;
		}
		/* The iterator checked the headers, so walking them cannot fail. */
		fuzz_abort_if(hrc != 0 || hn != r.header_count);
		n++;
	}
	return n;
}

/* Rebuild a valid batch from its records and compare. */
static void
fuzz_rebuild_check(const struct kp_batch_header *hdr, const uint8_t *rec, size_t len)
{
	struct kp_batch_builder b;
	struct kp_batch_header h2;
	struct kp_record_iter it, it2;
	struct kp_record r, r2;
	struct kp_record_header hdrs[64];
	size_t size;
	int rc;

	if (kp_batch_builder_start(&b, fuzz_rebuild, sizeof(fuzz_rebuild), KP_COMPRESSION_NONE) < 0)
		abort();
	kp_record_iter_init(&it, rec, len, hdr->records_count);
	while ((rc = kp_record_iter_next(&it, &r)) == 1) {
		const uint8_t *p = r.headers;
		size_t nh = 0;

		if (r.header_count > 64)
			return;
		while (kp_record_header_next(&p, r.headers + r.headers_len, &hdrs[nh]) == 1)
			nh++;
		/* Timestamps: the builder stores deltas from the first record. */
		if (kp_batch_builder_add(&b, fuzz_ts(hdr->base_timestamp, r.timestamp_delta), r.key,
					 r.key_len < 0 ? 0 : (size_t)r.key_len, r.value,
					 r.value_len < 0 ? 0 : (size_t)r.value_len, hdrs, nh) < 0)
			return; /* longer varints than the original: may not fit */
	}
	fuzz_abort_if(rc != 0);
	fuzz_abort_if(kp_batch_builder_finish(&b, &size) != 0);
	fuzz_abort_if(kp_batch_validate(fuzz_rebuild, size, 1, &h2) != 0);
	fuzz_abort_if(h2.records_count != hdr->records_count);
	kp_record_iter_init(&it, rec, len, hdr->records_count);
	kp_record_iter_init(&it2, kp_batch_records(fuzz_rebuild), kp_batch_records_len(&h2),
			    h2.records_count);
	while (kp_record_iter_next(&it, &r) == 1) {
		fuzz_abort_if(kp_record_iter_next(&it2, &r2) != 1);
		fuzz_abort_if(r.key_len != r2.key_len || r.value_len != r2.value_len ||
			      r.header_count != r2.header_count || r.offset_delta != r2.offset_delta);
		fuzz_abort_if(r.key_len > 0 && memcmp(r.key, r2.key, (size_t)r.key_len) != 0);
		fuzz_abort_if(r.value_len > 0 && memcmp(r.value, r2.value, (size_t)r.value_len) != 0);
		fuzz_abort_if(fuzz_ts(hdr->base_timestamp, r.timestamp_delta) !=
			      fuzz_ts(h2.base_timestamp, r2.timestamp_delta));
	}
}

/* The input as one batch: every check, iteration, the rebuild for valid ones. */
static void
fuzz_one_batch(const uint8_t *data, size_t size, uint32_t *sinkp)
{
	struct kp_batch_header h;
	uint32_t sink = 0;
	size_t rlen = 0, olen;
	int shallow, deep;

	if (kp_batch_header_parse(data, size, &h) == 0) {
		fuzz_abort_if(kp_batch_size(&h) > size);
		shallow = kp_batch_validate(data, size, 0, &h);
		deep = kp_batch_validate_deep(NULL, data, size, fuzz_scratch, sizeof(fuzz_scratch), &h,
					      &rlen);
		/* Deep never accepts what shallow rejects. */
		fuzz_abort_if(deep == 0 && shallow != 0);
		if (kp_batch_compression(&h) == KP_COMPRESSION_NONE) {
			fuzz_abort_if(deep != shallow);
			fuzz_iterate(kp_batch_records(data), kp_batch_records_len(&h),
				     h.records_count, &sink);
			if (deep == 0) {
				fuzz_abort_if(fuzz_iterate(kp_batch_records(data), rlen,
							   h.records_count,
							   &sink) != h.records_count);
				fuzz_rebuild_check(&h, kp_batch_records(data), rlen);
			}
		} else if (kp_batch_records_decompress(NULL, data, &h, fuzz_scratch,
						       sizeof(fuzz_scratch), &olen) == 0) {
			int32_t n = fuzz_iterate(fuzz_scratch, olen, h.records_count, &sink);

			if (deep == 0) {
				fuzz_abort_if(olen != rlen || n != h.records_count);
				fuzz_rebuild_check(&h, fuzz_scratch, olen);
			}
		}
	}
	*sinkp += sink;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kp_batch_header h;
	uint32_t sink = 0;
	size_t olen;

	fuzz_one_batch(data, size, &sink);
	/* Again with the CRC made right, so mutations reach the checks behind it. */
	if (kp_batch_header_parse(data, size, &h) == 0) {
		uint8_t *copy = malloc(kp_batch_size(&h));

		if (copy == NULL)
			abort();
		memcpy(copy, data, kp_batch_size(&h));
		kp_batch_crc_update(copy, kp_batch_size(&h));
		fuzz_one_batch(copy, kp_batch_size(&h), &sink);
		free(copy);
	}
	/* Raw, into each decompressor. */
	for (int c = KP_COMPRESSION_GZIP; c <= KP_COMPRESSION_ZSTD; c++) {
		int rc = kp_decompress(NULL, (enum kp_compression)c, data, size, fuzz_scratch,
				       sizeof(fuzz_scratch), &olen);

		fuzz_abort_if(rc == 0 && olen > sizeof(fuzz_scratch));
		if (rc == 0 && olen > 0)
			sink += fuzz_scratch[olen - 1];
	}
	/* Keep sink alive without printing. */
	__asm__ volatile("" : : "r"(sink));
	return 0;
}
