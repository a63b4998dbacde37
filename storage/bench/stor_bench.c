/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Storage benchmark driver (run by scripts/bench-storage).
 *
 *   stor_bench append  DIR PARTITIONS DURABLE SECONDS MAX_MIB
 *       One engine on this thread, PARTITIONS logs, 16 KiB batches of 1 KiB
 *       records, up to 8 appends in flight per partition; prints throughput
 *       of acknowledged bytes and append latency (call to completion)
 *       percentiles as key=value. Environment: STOR_BENCH_SEGMENT_MIB
 *       (segment size, default 128), STOR_BENCH_PREALLOCATE_BYTES (the
 *       storage.preallocate.bytes of every log; default: the library's),
 *       STOR_BENCH_ENGINE="key=value ..." (engine keys, stor_engine_opts_set,
 *       e.g. "storage.io.inline=false storage.direct.io=false"),
 *       STOR_BENCH_BATCH="RECORDS VALUE_BYTES" (default "15 1000"; "1 100" is
 *       the small produce row's batch), STOR_BENCH_INFLIGHT (appends in flight
 *       per partition, 1-64, default 8; 32 is the disk rows' load generator's
 *       window: 32 requests of 16 KiB per partition). Also prints the process's CPU time per
 *       MB acknowledged and per append (io_uring's worker threads included:
 *       they belong to the process) and the writes' mean size.
 *   stor_bench fill    DIR MIB
 *       Append MIB of batches to one log, print "ready" once every append is
 *       acknowledged, then keep the process alive (the script kills it -9).
 *   stor_bench recover DIR
 *       Open the log (a crash recovery: the full scan of the last segment)
 *       and print the time it took and the recovered end offset.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "kp_batch.h"
#include "stor_engine.h"
#include "stor_log.h"

#define BATCH_RECORDS 15
#define RECORD_VALUE 1000 /* + key and framing: about 1 KiB per record */
#define INFLIGHT 64 /* at most, per partition */
#define INFLIGHT_DEFAULT 8

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A batch of @records records of @vlen value bytes (at most RECORD_VALUE) each. */
static size_t
make_batch(uint8_t *buf, size_t cap, int records, size_t vlen)
{
	struct kp_batch_builder b;
	uint8_t val[RECORD_VALUE];
	char key[32];
	size_t size;

	for (size_t i = 0; i < sizeof(val); i++)
		val[i] = (uint8_t)(i * 13);
	if (vlen > sizeof(val))
		return 0;
	if (kp_batch_builder_start(&b, buf, cap, KP_COMPRESSION_NONE) != 0)
		return 0;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t ts = (int64_t)now.tv_sec * 1000;
	for (int i = 0; i < records; i++) {
		snprintf(key, sizeof(key), "key-%08d", i);
		if (kp_batch_builder_add(&b, ts + i, key, strlen(key), val, vlen, NULL, 0) != 0)
			return 0;
	}
	return kp_batch_builder_finish(&b, &size) == 0 ? size : 0;
}

struct part {
	struct stor_log *log;
	int inflight;
};

struct op {
	struct part *p;
	uint64_t t0;
	uint64_t *lat;
	size_t *nlat;
	size_t cap;
	uint64_t *acked;
	size_t batch;
};

static struct op ops[64 * INFLIGHT * 2];

static void
on_ack(void *arg, int rc, int64_t base)
{
	struct op *o = arg;

	(void)base;
	if (rc != 0) {
		fprintf(stderr, "append failed: %s\n", strerror(-rc));
		exit(1);
	}
	if (*o->nlat < o->cap)
		o->lat[(*o->nlat)++] = now_ns() - o->t0;
	*o->acked += o->batch;
	o->p->inflight--;
	o->t0 = 0;
}

/* CPU seconds of the whole process (all threads, io_uring's workers included). */
static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static struct stor_engine *
engine(unsigned parts)
{
	struct stor_engine_opts o;

	stor_engine_opts_init(&o);
	o.chunk_bytes = 1u << 20;
	o.chunk_count = parts * 3 + 8;
	o.queue_depth = 512;
	if (getenv("STOR_BENCH_ENGINE") != NULL) {
		char buf[1024], *save = NULL;

		snprintf(buf, sizeof(buf), "%s", getenv("STOR_BENCH_ENGINE"));
		for (char *kv = strtok_r(buf, " ,", &save); kv != NULL;
		     kv = strtok_r(NULL, " ,", &save)) {
			char *eq = strchr(kv, '=');
			if (eq == NULL)
				return NULL;
			*eq = '\0';
			if (stor_engine_opts_set(&o, kv, eq + 1) != 0) {
				fprintf(stderr, "STOR_BENCH_ENGINE: bad %s=%s\n", kv, eq + 1);
				return NULL;
			}
		}
	}
	return stor_engine_create(&o);
}

static int
cmd_append(const char *dir, unsigned parts, int durable, double seconds, uint64_t max_mib)
{
	struct stor_engine *e = engine(parts);
	struct stor_log_config cfg;
	static struct part p[64];
	uint8_t *batch = malloc(1 << 16);
	int records = BATCH_RECORDS, value = RECORD_VALUE, inflight = INFLIGHT_DEFAULT;
	size_t bsize;

	if (getenv("STOR_BENCH_BATCH") != NULL &&
	    sscanf(getenv("STOR_BENCH_BATCH"), "%d %d", &records, &value) != 2) {
		fprintf(stderr, "STOR_BENCH_BATCH: \"RECORDS VALUE_BYTES\" expected\n");
		return 2;
	}
	if (getenv("STOR_BENCH_INFLIGHT") != NULL)
		inflight = atoi(getenv("STOR_BENCH_INFLIGHT"));
	if (records < 1 || records > 64 || value < 0 || inflight < 1 || inflight > INFLIGHT) {
		fprintf(stderr, "STOR_BENCH_BATCH or STOR_BENCH_INFLIGHT out of range\n");
		return 2;
	}
	bsize = make_batch(batch, 1 << 16, records, (size_t)value);
	size_t cap = 4u << 20, nlat = 0;
	uint64_t *lat = malloc(cap * sizeof(*lat));
	uint64_t acked = 0, limit = max_mib << 20;
	char path[4096];
	int err;
	int wait = getenv("STOR_BENCH_SPIN") == NULL;

	if (e == NULL || bsize == 0 || parts == 0 || parts > 64 || lat == NULL)
		return 2;
	stor_log_config_init(&cfg);
	cfg.segment_bytes = 128u << 20;
	if (getenv("STOR_BENCH_SEGMENT_MIB") != NULL)
		cfg.segment_bytes = strtoull(getenv("STOR_BENCH_SEGMENT_MIB"), NULL, 10) << 20;
	if (getenv("STOR_BENCH_PREALLOCATE_BYTES") != NULL &&
	    stor_log_config_set(&cfg, "storage.preallocate.bytes",
	                        getenv("STOR_BENCH_PREALLOCATE_BYTES")) != 0) {
		fprintf(stderr, "STOR_BENCH_PREALLOCATE_BYTES: a multiple of 4096 expected\n");
		return 2;
	}
	for (unsigned i = 0; i < parts; i++) {
		snprintf(path, sizeof(path), "%s/bench-%u", dir, i);
		p[i].log = stor_log_open(e, path, &cfg, &err);
		if (p[i].log == NULL) {
			fprintf(stderr, "open %s: %s\n", path, strerror(-err));
			return 1;
		}
	}
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		ops[i].lat = lat;
		ops[i].nlat = &nlat;
		ops[i].cap = cap;
		ops[i].acked = &acked;
		ops[i].batch = bsize;
	}
	double cpu0 = cpu_s();
	uint64_t t_start = now_ns(), t_end = t_start + (uint64_t)(seconds * 1e9);
	uint64_t submitted = 0;
	size_t next_op = 0;
	while (now_ns() < t_end && acked < limit) {
		for (unsigned i = 0; i < parts && submitted < limit; i++) {
			while (p[i].inflight < inflight) {
				struct op *o = &ops[next_op];
				if (o->t0 != 0)
					break; /* slot still in flight */
				o->p = &p[i];
				o->t0 = now_ns();
				int rc = stor_log_append(p[i].log, batch, bsize,
				                         durable ? STOR_APPEND_DURABLE : 0, on_ack,
				                         o, NULL);
				if (rc == -EAGAIN) {
					o->t0 = 0;
					break;
				}
				if (rc != 0) {
					fprintf(stderr, "append: %s\n", strerror(-rc));
					return 1;
				}
				p[i].inflight++;
				submitted += bsize;
				next_op = (next_op + 1) % (sizeof(ops) / sizeof(ops[0]));
			}
		}
		if (stor_engine_poll(e) == 0 && wait)
			stor_engine_wait(e, 1000); /* interrupt mode: sleep until a completion */
	}
	uint64_t t_stop = now_ns();
	double cpu = cpu_s() - cpu0;
	double secs = (double)(t_stop - t_start) / 1e9;
	uint64_t acked_at_stop = acked;
	struct stor_engine_stats st;
	stor_engine_stats(e, &st);
	stor_engine_drain(e);
	for (unsigned i = 0; i < parts; i++)
		stor_log_close(p[i].log);
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	printf("partitions=%u durable=%d batch_bytes=%zu prealloc_step=%llu seconds=%.2f "
	       "mib_acked=%.1f MBps=%.1f appends=%zu p50_us=%.1f p99_us=%.1f backend=%s "
	       "cpu_ms_per_mb=%.3f cpu_us_per_append=%.3f writes=%" PRIu64
	       " mapped_writes=%" PRIu64 " mean_write_kib=%.1f\n",
	       parts, durable, bsize, (unsigned long long)cfg.preallocate_bytes, secs,
	       (double)acked_at_stop / (1 << 20), (double)acked_at_stop / secs / 1e6, nlat,
	       nlat ? (double)lat[nlat / 2] / 1e3 : 0.0,
	       nlat ? (double)lat[nlat * 99 / 100] / 1e3 : 0.0, stor_engine_backend_name(e),
	       acked_at_stop ? cpu * 1e3 / ((double)acked_at_stop / 1e6) : 0.0,
	       acked_at_stop ? cpu * 1e6 / ((double)acked_at_stop / (double)bsize) : 0.0, st.writes,
	       st.inline_mapped_writes,
	       st.writes ? (double)st.write_bytes / (double)st.writes / 1024 : 0.0);
	stor_engine_destroy(e);
	free(lat);
	free(batch);
	return 0;
}

static void
fill_ack(void *arg, int rc, int64_t base)
{
	(void)base;
	if (rc != 0)
		exit(1);
	(*(int *)arg)--;
}

static int
cmd_fill(const char *dir, uint64_t mib)
{
	struct stor_engine *e = engine(1);
	struct stor_log_config cfg;
	uint8_t *batch = malloc(1 << 16);
	size_t bsize = make_batch(batch, 1 << 16, BATCH_RECORDS, RECORD_VALUE);
	uint64_t total = 0, limit = mib << 20;
	int inflight = 0, err;

	stor_log_config_init(&cfg);
	cfg.segment_bytes = 0x7fffffff; /* one 2 GiB segment: recovery scans all of it */
	cfg.preallocate_bytes = 0;      /* preallocated whole, as the recovery row says */
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	if (log == NULL)
		return 1;
	while (total < limit) {
		if (inflight < 64) {
			int rc = stor_log_append(log, batch, bsize, 0, fill_ack, &inflight, NULL);
			if (rc == 0) {
				inflight++;
				total += bsize;
				continue;
			}
			if (rc != -EAGAIN)
				return 1;
		}
		if (stor_engine_poll(e) == 0)
			stor_engine_wait(e, 1000);
	}
	while (inflight > 0)
		if (stor_engine_poll(e) == 0)
			stor_engine_wait(e, 1000);
	printf("ready bytes=%" PRIu64 " end_offset=%" PRId64 "\n", total, stor_log_end_offset(log));
	fflush(stdout);
	for (;;)
		pause(); /* killed -9 by the script: no clean shutdown */
}

static int
cmd_recover(const char *dir)
{
	struct stor_engine *e = engine(1);
	struct stor_log_config cfg;
	int err;

	stor_log_config_init(&cfg);
	cfg.segment_bytes = 0x7fffffff;
	uint64_t t0 = now_ns();
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	uint64_t t1 = now_ns();
	if (log == NULL) {
		fprintf(stderr, "recover: %s\n", strerror(-err));
		return 1;
	}
	printf("recovery_ms=%.1f end_offset=%" PRId64 " bytes=%" PRIu64 "\n",
	       (double)(t1 - t0) / 1e6, stor_log_end_offset(log), stor_log_size_bytes(log));
	stor_log_close(log);
	stor_engine_destroy(e);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 7 && strcmp(argv[1], "append") == 0)
		return cmd_append(argv[2], (unsigned)atoi(argv[3]), atoi(argv[4]), atof(argv[5]),
		                  strtoull(argv[6], NULL, 10));
	if (argc >= 4 && strcmp(argv[1], "fill") == 0)
		return cmd_fill(argv[2], strtoull(argv[3], NULL, 10));
	if (argc >= 3 && strcmp(argv[1], "recover") == 0)
		return cmd_recover(argv[2]);
	fprintf(stderr, "usage: stor_bench append DIR PARTITIONS DURABLE SECONDS MAX_MIB\n"
	                "       stor_bench fill DIR MIB\n"
	                "       stor_bench recover DIR\n");
	return 2;
}
