/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Codec benchmark: how fast one core decodes a Produce request and validates
 * the record batches it carries, next to isa-l's raw CRC-32C and memcpy over
 * the same bytes in the same run (the ceiling validation is held to: the
 * target is uncompressed decode+validate at >= 50% of CRC-32C speed).
 *
 * The request: Produce v9 (flexible), one topic, P partitions, each carrying
 * one record batch of 16 records with 1000-byte values ("16 KiB batches of
 * 1 KiB records"), uncompressed, lz4 or zstd. Values are word salad (about
 * 4:1 under lz4), not random bytes, so compressed batches look like real
 * text payloads. Per iteration: read the request header, decode the body
 * (generated codec, arena reset), then for each partition parse and validate
 * every batch in its records field: CRC-32C plus the record walk; for
 * compressed batches also a bounded decompression into a scratch buffer and
 * the walk over the result (kp_batch_validate_deep). A "shallow" line shows
 * compressed batches validated without decompression (CRC, header).
 *
 * Rates are GB/s = 1e9 bytes per second of thread CPU time, single thread,
 * best of several timed rounds. "wire" counts request bytes, "records" counts uncompressed
 * records bytes (what a consumer would see).
 *
 * Usage: bench_codec [-p partitions] [-t seconds_per_round] [-r rounds]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <isa-l/crc.h>

#include "kp_api.h"
#include "kp_batch.h"
#include "kp_compress.h"
#include "generated/kp_msg_produce.h"
#include "generated/kp_msg_request_header.h"
#include "kp_wire.h"

#define BENCH_RECORDS_PER_BATCH 16
#define BENCH_VALUE_BYTES 1000
#define BENCH_PRODUCE_VERSION 9
#define BENCH_SCRATCH (1u << 20)

struct bench_req {
	uint8_t *frame; /* request header + body, no size prefix */
	size_t len;
	size_t records_bytes; /* uncompressed records bytes, all partitions */
	int partitions;
};

/*
 * The thread's CPU time, not wall time: the bench machines are shared (CI
 * runners, VMs with a load from other jobs), and time spent preempted is not
 * the codec's. Cache and SMT-sibling contention still show; best-of-rounds
 * filters some of it.
 */
static double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile uint32_t bench_sink;

static void
bench_fill_words(uint8_t *p, size_t n, uint32_t *seed)
{
	static const char *words[] = {"the ",	 "quick ", "event ",  "stream ", "broker ", "of ",
				      "records ", "and ",   "offsets ", "topic ",  "lz4 ",    "zstd ",
				      "kafka ",  "slip ",  "value ",   "payload "};
	size_t i = 0;

	while (i < n) {
		const char *w;
		size_t l;

		*seed = *seed * 1103515245u + 12345u;
		w = words[(*seed >> 16) & 15];
		l = strlen(w);
		if (l > n - i)
			l = n - i;
		memcpy(p + i, w, l);
		i += l;
	}
}

/* Build one batch into out; returns its size. */
static size_t
bench_make_batch(uint8_t *out, size_t cap, enum kp_compression codec, uint32_t *seed,
		 size_t *records_bytes)
{
	struct kp_batch_builder b;
	uint8_t value[BENCH_VALUE_BYTES];
	size_t size;

	if (kp_batch_builder_start(&b, out, cap, codec) < 0)
		abort();
	for (int i = 0; i < BENCH_RECORDS_PER_BATCH; i++) {
		char key[16];
		int kl = snprintf(key, sizeof(key), "key-%d", i);

		bench_fill_words(value, sizeof(value), seed);
		if (kp_batch_builder_add(&b, 1700000000000LL + i, key, (size_t)kl, value,
					 sizeof(value), NULL, 0) < 0)
			abort();
	}
	/* Records are encoded uncompressed until finish: count them now. */
	*records_bytes += b.pos - KP_BATCH_HEADER_SIZE;
	if (kp_batch_builder_finish(&b, &size) < 0)
		abort();
	return size;
}

static int
bench_build_request(struct bench_req *rq, enum kp_compression codec, int partitions)
{
	struct kp_produce_request m;
	struct kp_produce_request_topic_produce_data topic;
	struct kp_produce_request_partition_produce_data *parts;
	struct kp_request_header h;
	struct kp_writer w;
	uint8_t **batches;
	size_t cap = (size_t)partitions * (BENCH_RECORDS_PER_BATCH * (BENCH_VALUE_BYTES + 64) + 256);
	uint32_t seed = 42;

	memset(rq, 0, sizeof(*rq));
	parts = calloc((size_t)partitions, sizeof(*parts));
	batches = calloc((size_t)partitions, sizeof(*batches));
	if (parts == NULL || batches == NULL)
		return -ENOMEM;
	for (int i = 0; i < partitions; i++) {
		size_t bcap = BENCH_RECORDS_PER_BATCH * (BENCH_VALUE_BYTES + 64) + 256;

		batches[i] = malloc(bcap);
		kp_produce_request_partition_produce_data_init(&parts[i]);
		parts[i].index = i;
		parts[i].records.ptr = batches[i];
		parts[i].records.len = (int32_t)bench_make_batch(batches[i], bcap, codec, &seed,
								 &rq->records_bytes);
	}
	kp_produce_request_topic_produce_data_init(&topic);
	topic.name.ptr = "bench";
	topic.name.len = 5;
	topic.partition_data.items = parts;
	topic.partition_data.count = partitions;
	kp_produce_request_init(&m);
	m.acks = -1;
	m.timeout_ms = 30000;
	m.topic_data.items = &topic;
	m.topic_data.count = 1;
	kp_request_header_init(&h);
	h.request_api_key = 0;
	h.request_api_version = BENCH_PRODUCE_VERSION;
	h.correlation_id = 1;
	h.client_id.ptr = "bench";
	h.client_id.len = 5;
	rq->frame = malloc(cap + 4096);
	kp_writer_init(&w, rq->frame, cap + 4096);
	if (kp_request_header_write(&h, &w) < 0 ||
	    kp_produce_request_encode(&m, BENCH_PRODUCE_VERSION, &w) < 0) {
		fprintf(stderr, "bench: encode failed\n");
		return -EINVAL;
	}
	rq->len = kp_writer_len(&w);
	rq->partitions = partitions;
	for (int i = 0; i < partitions; i++)
		free(batches[i]);
	free(batches);
	free(parts);
	return 0;
}

/*
 * Decode one Produce request and validate every batch in it, as the request
 * path does. @deep: decompress and walk compressed batches.
 * @return 0 or the first error.
 */
static int
bench_decode_validate(const struct bench_req *rq, struct kp_arena *a, struct kp_codec_ctx *ctx,
		      uint8_t *scratch, int deep)
{
	struct kp_reader r;
	struct kp_request_header h;
	struct kp_produce_request m;
	int16_t hv;
	int rc;

	kp_arena_reset(a);
	kp_reader_init(&r, rq->frame, rq->len);
	if ((rc = kp_request_header_read(&h, &hv, &r, a)) < 0)
		return rc;
	if ((rc = kp_produce_request_decode(&m, h.request_api_version, &r, a)) < 0)
		return rc;
	for (int32_t t = 0; t < m.topic_data.count; t++) {
		const struct kp_produce_request_topic_produce_data *td = &m.topic_data.items[t];

		for (int32_t p = 0; p < td->partition_data.count; p++) {
			const struct kp_bytes *rec = &td->partition_data.items[p].records;
			size_t off = 0;

			if (rec->len < 0)
				return -EINVAL;
			/* A records field may hold several batches back to back. */
			while (off < (size_t)rec->len) {
				struct kp_batch_header bh;

				if (deep)
					rc = kp_batch_validate_deep(ctx, rec->ptr + off,
								    (size_t)rec->len - off, scratch,
								    BENCH_SCRATCH, &bh, NULL);
				else
					rc = kp_batch_validate(rec->ptr + off,
							       (size_t)rec->len - off, 0, &bh);
				if (rc < 0)
					return rc;
				off += kp_batch_size(&bh);
			}
		}
	}
	return 0;
}

struct bench_opts {
	double seconds;
	int rounds;
};

/* One unit of benchmarked work. */
typedef void (*bench_fn)(void *arg);

/* Run fn repeatedly for opts->seconds, opts->rounds times: best bytes/s. */
static double
bench_rate(const struct bench_opts *o, size_t bytes, bench_fn fn, void *arg)
{
	double best = 0;

	for (int round = 0; round < o->rounds; round++) {
		double t0 = bench_now(), t;
		long n = 0;

		do {
			for (int k = 0; k < 16; k++)
				fn(arg);
			n += 16;
			t = bench_now() - t0;
		} while (t < o->seconds);
		if ((double)bytes * (double)n / t > best)
			best = (double)bytes * (double)n / t;
	}
	return best;
}

struct bench_buf_arg {
	const uint8_t *src;
	uint8_t *dst;
	size_t len;
};

static void
bench_crc_fn(void *arg)
{
	struct bench_buf_arg *b = arg;

	bench_sink += crc32_iscsi((unsigned char *)b->src, (int)b->len, 0xffffffffu);
}

static void
bench_memcpy_fn(void *arg)
{
	struct bench_buf_arg *b = arg;

	memcpy(b->dst, b->src, b->len);
	__asm__ volatile("" : : "r"(b->dst) : "memory");
}

struct bench_dv_arg {
	const struct bench_req *rq;
	struct kp_arena *arena;
	struct kp_codec_ctx *ctx;
	uint8_t *scratch;
	int deep;
};

static void
bench_dv_fn(void *arg)
{
	struct bench_dv_arg *d = arg;

	bench_sink += (uint32_t)bench_decode_validate(d->rq, d->arena, d->ctx, d->scratch, d->deep);
}

int
main(int argc, char **argv)
{
	static const enum kp_compression codecs[] = {KP_COMPRESSION_NONE, KP_COMPRESSION_LZ4,
						     KP_COMPRESSION_ZSTD};
	struct bench_opts o = {.seconds = 0.3, .rounds = 5};
	int partitions = 64, opt;
	struct kp_codec_ctx *ctx = kp_codec_ctx_create();
	uint8_t *scratch = malloc(BENCH_SCRATCH), *arena_buf = malloc(1 << 20);
	struct kp_arena arena;
	double crc_rate, memcpy_rate;
	uint8_t *copy;
	struct bench_req plain;

	while ((opt = getopt(argc, argv, "p:t:r:")) != -1) {
		switch (opt) {
		case 'p':
			partitions = atoi(optarg);
			break;
		case 't':
			o.seconds = atof(optarg);
			break;
		case 'r':
			o.rounds = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-p partitions] [-t seconds] [-r rounds]\n",
				argv[0]);
			return 2;
		}
	}
	if (partitions < 1 || partitions > 4096 || o.rounds < 1 || o.seconds <= 0 ||
	    o.seconds > 10 || ctx == NULL || scratch == NULL || arena_buf == NULL)
		return 2;
	kp_arena_init(&arena, arena_buf, 1 << 20);

	/* Baselines over the uncompressed request's bytes. */
	if (bench_build_request(&plain, KP_COMPRESSION_NONE, partitions) < 0)
		return 1;
	copy = malloc(plain.len);
	struct bench_buf_arg ba = {.src = plain.frame, .dst = copy, .len = plain.len};
	crc_rate = bench_rate(&o, plain.len, bench_crc_fn, &ba);
	memcpy_rate = bench_rate(&o, plain.len, bench_memcpy_fn, &ba);
	printf("request: Produce v%d, 1 topic, %d partitions x 1 batch of %d records x %d-byte "
	       "values; %zu wire bytes uncompressed\n",
	       BENCH_PRODUCE_VERSION, partitions, BENCH_RECORDS_PER_BATCH, BENCH_VALUE_BYTES,
	       plain.len);
	printf("%-44s %7.2f GB/s\n", "memcpy (same bytes)", memcpy_rate / 1e9);
	printf("%-44s %7.2f GB/s\n", "crc32c isa-l crc32_iscsi (same bytes)", crc_rate / 1e9);

	for (size_t c = 0; c < sizeof(codecs) / sizeof(codecs[0]); c++) {
		struct bench_req rq;
		double rate;
		char label[64];
		int rc;

		if (bench_build_request(&rq, codecs[c], partitions) < 0)
			return 1;
		rc = bench_decode_validate(&rq, &arena, ctx, scratch, 1);
		if (rc < 0) {
			fprintf(stderr, "bench: %s request does not validate: %d\n",
				kp_compression_name(codecs[c]), rc);
			return 1;
		}
		struct bench_dv_arg dv = {
			.rq = &rq, .arena = &arena, .ctx = ctx, .scratch = scratch, .deep = 1};
		rate = bench_rate(&o, rq.len, bench_dv_fn, &dv);
		snprintf(label, sizeof(label), "produce decode+validate %s%s",
			 kp_compression_name(codecs[c]),
			 codecs[c] == KP_COMPRESSION_NONE ? "" : " (deep)");
		printf("%-44s %7.2f GB/s wire  %7.2f GB/s records  %5.1f%% of crc32c  "
		       "(%zu wire bytes, ratio %.2f)\n",
		       label, rate / 1e9, rate * (double)rq.records_bytes / (double)rq.len / 1e9,
		       100.0 * rate / crc_rate, rq.len, (double)rq.records_bytes / (double)rq.len);
		if (codecs[c] != KP_COMPRESSION_NONE) {
			dv.deep = 0;
			rate = bench_rate(&o, rq.len, bench_dv_fn, &dv);
			snprintf(label, sizeof(label), "produce decode+validate %s (shallow: CRC)",
				 kp_compression_name(codecs[c]));
			printf("%-44s %7.2f GB/s wire  %5.1f%% of crc32c\n", label, rate / 1e9,
			       100.0 * rate / crc_rate);
		}
		free(rq.frame);
	}
	free(plain.frame);
	free(copy);
	free(scratch);
	free(arena_buf);
	kp_codec_ctx_destroy(ctx);
	return 0;
}
