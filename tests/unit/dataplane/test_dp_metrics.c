/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_metrics: the shared-memory segment as a reader in another process sees
 * it. Header validation, one block per lcore, histogram buckets at their
 * bounds, topic-partition entries per block and the full table, calls from
 * a thread without a block, a snapshot that stays consistent while a writer
 * thread updates (count = sum of buckets, bytes = 10 x records, monotonic),
 * a writer stuck mid-update (-EAGAIN), a replaced segment (remapped) and a
 * removed one; a net worker's stack counters published on its block and
 * absent on the others. No EAL needed: threads bind to blocks with dp_metrics_bind().
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "dp_metrics.h"

static char g_dir[64];
static char g_path[128];
static const unsigned int g_lcores[2] = {0, 3};

static int
group_setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/ops-test-metrics-XXXXXX");
	if (mkdtemp(g_dir) == NULL)
		return -1;
	snprintf(g_path, sizeof(g_path), "%s/seg", g_dir);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	rmdir(g_dir);
	return 0;
}

/* Each test starts from a fresh segment. */
static int
setup(void **state)
{
	(void)state;
	/* 1 GHz: one cycle is one nanosecond, so latencies are exact. */
	return dp_metrics_create(g_path, 7, g_lcores, 2, 1000000000ull);
}

static int
teardown(void **state)
{
	(void)state;
	dp_metrics_destroy();
	return 0;
}

static uint64_t
bucket_sum(const struct dp_metrics_hist *h)
{
	uint64_t s = 0;

	for (int i = 0; i < DP_METRICS_LAT_BUCKETS; i++)
		s += h->buckets[i];
	return s;
}

static void
test_header_and_blocks(void **state)
{
	struct dp_metrics_reader r;
	struct dp_metrics_snapshot s;

	(void)state;
	assert_int_equal(dp_metrics_reader_open(&r, g_path), 0);
	assert_int_equal(dp_metrics_snapshot(&r, &s), 0);
	assert_int_equal(s.hdr.magic, DP_METRICS_MAGIC);
	assert_int_equal(s.hdr.version, DP_METRICS_VERSION);
	assert_int_equal(s.hdr.n_blocks, 2);
	assert_int_equal(s.hdr.node_id, 7);
	assert_int_equal(s.hdr.tsc_hz, 1000000000ull);
	assert_int_equal(s.hdr.pid, getpid());
	assert_true(s.hdr.start_unix_ms > 1600000000000ull);
	assert_int_equal(s.blocks[0].lcore, 0);
	assert_int_equal(s.blocks[1].lcore, 3);
	assert_int_equal(s.blocks[0].n_tps, 0);
	assert_int_equal(s.blocks[1].api[0].count, 0);
	dp_metrics_snapshot_free(&s);
	dp_metrics_reader_close(&r);
}

static void
test_histogram_bounds(void **state)
{
	struct dp_metrics_reader r;
	struct dp_metrics_snapshot s;
	const struct dp_metrics_hist *h;

	(void)state;
	assert_int_equal(dp_metrics_bind(3), 0);
	dp_metrics_request(3, 40000);            /* 40 us: the 50 us bucket (index 3) */
	dp_metrics_request(3, 50000);            /* 50 us: still that one (bounds inclusive) */
	dp_metrics_request(3, 51000);            /* 51 us: the next */
	dp_metrics_request(3, 1000000);          /* 1 ms: the 1000 us bucket (index 7) */
	dp_metrics_request(3, 4000);             /* 4 us: the first (5 us) */
	dp_metrics_request(3, 10000);            /* 10 us: the second (10 us, inclusive) */
	dp_metrics_request(3, 3600000000000ull); /* an hour: +Inf */
	dp_metrics_request(-1, 1);               /* ignored: no such API */
	dp_metrics_request(DP_METRICS_APIS, 1);  /* ignored */
	dp_metrics_storage_write(2000000);       /* 2 ms: the 2500 us bucket (index 8) */
	dp_metrics_fetch_wakeup(30000);          /* 30 us: the 50 us bucket (index 3) */
	dp_metrics_fetch_wakeup(300000);         /* 300 us: the 500 us bucket (index 6) */
	dp_metrics_conn_accepted();
	dp_metrics_conn_accepted();
	dp_metrics_conn_closed();
	assert_int_equal(dp_metrics_reader_open(&r, g_path), 0);
	assert_int_equal(dp_metrics_snapshot(&r, &s), 0);
	h = &s.blocks[1].api[3];
	assert_int_equal(h->count, 7);
	assert_int_equal(h->sum_ns,
		40000 + 50000 + 51000 + 1000000 + 3600000000000ull + 4000 + 10000);
	assert_int_equal(h->buckets[0], 1);
	assert_int_equal(h->buckets[1], 1);
	assert_int_equal(h->buckets[2], 0);
	assert_int_equal(h->buckets[3], 2);
	assert_int_equal(h->buckets[4], 1);
	assert_int_equal(h->buckets[7], 1);
	assert_int_equal(h->buckets[DP_METRICS_LAT_BUCKETS - 1], 1);
	assert_int_equal(bucket_sum(h), 7);
	assert_int_equal(s.blocks[1].storage_write.buckets[8], 1);
	assert_int_equal(s.blocks[1].fetch_wakeup.count, 2);
	assert_int_equal(s.blocks[1].fetch_wakeup.sum_ns, 330000);
	assert_int_equal(s.blocks[1].fetch_wakeup.buckets[3], 1);
	assert_int_equal(s.blocks[1].fetch_wakeup.buckets[6], 1);
	assert_int_equal(s.blocks[0].fetch_wakeup.count, 0);
	assert_int_equal(s.blocks[1].conn_accepted, 2);
	assert_int_equal(s.blocks[1].conn_closed, 1);
	/* The other lcore's block saw none of it. */
	assert_int_equal(s.blocks[0].api[3].count, 0);
	assert_int_equal(s.blocks[0].conn_accepted, 0);
	dp_metrics_snapshot_free(&s);
	dp_metrics_reader_close(&r);
}

static void
test_partitions(void **state)
{
	struct dp_metrics_reader r;
	struct dp_metrics_snapshot s;
	char name[32];

	(void)state;
	assert_int_equal(dp_metrics_bind(0), 0);
	dp_metrics_produce("orders", 6, 0, 1000, 10, 10);
	dp_metrics_produce("orders", 6, 0, 500, 5, 15);
	dp_metrics_produce("orders", 6, 1, 100, 1, 1);
	/* A borrowed name that is not NUL-terminated at len. */
	dp_metrics_fetch("ordersXYZ", 6, 0, 1500, 15, 15);
	dp_metrics_produce("", 0, 0, 1, 1, 1); /* refused: empty name */
	assert_int_equal(dp_metrics_bind(3), 0);
	dp_metrics_produce("orders", 6, 0, 7, 1, 16);
	assert_int_equal(dp_metrics_reader_open(&r, g_path), 0);
	assert_int_equal(dp_metrics_snapshot(&r, &s), 0);
	assert_int_equal(s.blocks[0].n_tps, 2);
	assert_string_equal(s.blocks[0].tps[0].topic, "orders");
	assert_int_equal(s.blocks[0].tps[0].partition, 0);
	assert_int_equal(s.blocks[0].tps[0].bytes_in, 1500);
	assert_int_equal(s.blocks[0].tps[0].records_in, 15);
	assert_int_equal(s.blocks[0].tps[0].bytes_out, 1500);
	assert_int_equal(s.blocks[0].tps[0].records_out, 15);
	assert_int_equal(s.blocks[0].tps[0].log_end_offset, 15);
	assert_int_equal(s.blocks[0].tps[1].partition, 1);
	assert_int_equal(s.blocks[0].tps[1].log_end_offset, 1);
	assert_int_equal(s.blocks[1].n_tps, 1);
	assert_int_equal(s.blocks[1].tps[0].bytes_in, 7);
	assert_int_equal(s.blocks[1].tps[0].log_end_offset, 16);
	dp_metrics_snapshot_free(&s);

	/* Fill lcore 3's table: the entry after the last is counted, not added. */
	for (int i = 1; i < DP_METRICS_MAX_TPS; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		assert_non_null(dp_metrics_tp_get(name, strlen(name), i));
	}
	assert_null(dp_metrics_tp_get("one-more", 8, 0));
	dp_metrics_produce("one-more", 8, 0, 1, 1, 1);
	/* Existing entries are still found (the index probes past full slots). */
	assert_non_null(dp_metrics_tp_get("t1000", 5, 1000));
	assert_int_equal(dp_metrics_snapshot(&r, &s), 0);
	assert_int_equal(s.blocks[1].n_tps, DP_METRICS_MAX_TPS);
	assert_int_equal(s.blocks[1].tp_overflow, 2);
	assert_string_equal(s.blocks[1].tps[DP_METRICS_MAX_TPS - 1].topic, "t1023");
	dp_metrics_snapshot_free(&s);
	dp_metrics_reader_close(&r);
}

static void
test_net_counters(void **state)
{
	struct dp_metrics_reader r;
	struct dp_metrics_snapshot s;
	uint64_t v[DP_NET_COUNTERS];

	(void)state;
	for (int i = 0; i < DP_NET_COUNTERS; i++)
		v[i] = 1000 + (uint64_t)i;
	assert_int_equal(dp_metrics_bind(3), 0);
	dp_metrics_net_publish(1, "net_tap0", v, DP_NET_COUNTERS);
	v[DP_NET_RX_PACKETS] = 5000; /* a later publication replaces the values */
	dp_metrics_net_publish(1, "net_tap0", v, DP_NET_COUNTERS);
	assert_int_equal(dp_metrics_reader_open(&r, g_path), 0);
	assert_int_equal(dp_metrics_snapshot(&r, &s), 0);
	assert_int_equal(s.blocks[0].net.worker, 0); /* lcore 0 runs no stack */
	assert_int_equal(s.blocks[1].net.worker, 2);
	assert_string_equal(s.blocks[1].net.port, "net_tap0");
	assert_int_equal(s.blocks[1].net.v[DP_NET_RX_PACKETS], 5000);
	assert_int_equal(s.blocks[1].net.v[DP_NET_DROP_TCP_CHECKSUM], 1000 + DP_NET_DROP_TCP_CHECKSUM);
	assert_int_equal(s.blocks[1].net.v[DP_NET_COUNTERS - 1], 1000 + DP_NET_COUNTERS - 1);
	assert_int_equal(s.blocks[1].net.v[DP_NET_COUNTERS], 0); /* spare slots */
	dp_metrics_snapshot_free(&s);
	dp_metrics_reader_close(&r);
}

static void
test_unbound_thread(void **state)
{
	struct dp_metrics_reader r;
	struct dp_metrics_snapshot s;

	(void)state;
	assert_int_equal(dp_metrics_bind(1), -ENOENT); /* lcore 1 has no block */
	dp_metrics_request(0, 100);
	dp_metrics_conn_accepted();
	dp_metrics_produce("x", 1, 0, 1, 1, 1);
	dp_metrics_net_publish(0, "p", (const uint64_t[]){1, 2}, 2);
	assert_int_equal(dp_metrics_reader_open(&r, g_path), 0);
	assert_int_equal(dp_metrics_snapshot(&r, &s), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(s.blocks[i].api[0].count, 0);
		assert_int_equal(s.blocks[i].conn_accepted, 0);
		assert_int_equal(s.blocks[i].n_tps, 0);
		assert_int_equal(s.blocks[i].net.worker, 0);
	}
	dp_metrics_snapshot_free(&s);
	dp_metrics_reader_close(&r);
}

static volatile int g_writer_stop;

static void *
writer(void *arg)
{
	uint64_t i = 0;

	(void)arg;
	if (dp_metrics_bind(0) < 0)
		return NULL;
	while (!__atomic_load_n(&g_writer_stop, __ATOMIC_RELAXED)) {
		dp_metrics_request(0, (i % 97) * 7919);
		dp_metrics_produce("load", 4, (int32_t)(i % 3), 10 * (1 + i % 5), 1 + i % 5,
		                   (int64_t)i);
		i++;
	}
	return NULL;
}

static void
test_snapshot_consistent_under_writes(void **state)
{
	struct dp_metrics_reader r;
	uint64_t last_count = 0, last_records = 0;
	struct timespec t0, t;
	pthread_t th;
	int snaps = 0;

	(void)state;
	g_writer_stop = 0;
	assert_int_equal(dp_metrics_reader_open(&r, g_path), 0);
	assert_int_equal(pthread_create(&th, NULL, writer, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		struct dp_metrics_snapshot s;
		const struct dp_metrics_block *b;
		uint64_t records = 0, bytes = 0;

		assert_int_equal(dp_metrics_snapshot(&r, &s), 0);
		b = &s.blocks[0];
		/* One instant of the block: the histogram adds up exactly. */
		assert_int_equal(bucket_sum(&b->api[0]), b->api[0].count);
		assert_true(b->api[0].count >= last_count);
		last_count = b->api[0].count;
		for (uint64_t k = 0; k < b->n_tps; k++) {
			records += b->tps[k].records_in;
			bytes += b->tps[k].bytes_in;
		}
		assert_int_equal(bytes, 10 * records);
		assert_true(records >= last_records);
		last_records = records;
		dp_metrics_snapshot_free(&s);
		snaps++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 300);
	__atomic_store_n(&g_writer_stop, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	assert_true(snaps > 10);
	assert_true(last_count > 0);
	dp_metrics_reader_close(&r);
}

static void
test_stuck_writer(void **state)
{
	struct dp_metrics_reader r;
	struct dp_metrics_snapshot s;

	(void)state;
	assert_int_equal(dp_metrics_bind(0), 0);
	assert_int_equal(dp_metrics_reader_open(&r, g_path), 0);
	dp_metrics_wbegin(
	        &dp_metrics_tls->api[2].seq); /* as if the dataplane died inside an update */
	assert_int_equal(dp_metrics_snapshot(&r, &s), -EAGAIN);
	assert_null(s.blocks);
	dp_metrics_wend(&dp_metrics_tls->api[2].seq);
	assert_int_equal(dp_metrics_snapshot(&r, &s), 0);
	dp_metrics_snapshot_free(&s);
	dp_metrics_reader_close(&r);
}

static void
test_replaced_and_removed(void **state)
{
	struct dp_metrics_reader r;
	struct dp_metrics_snapshot s;
	unsigned int one = 5;

	(void)state;
	assert_int_equal(dp_metrics_bind(0), 0);
	dp_metrics_request(1, 10);
	assert_int_equal(dp_metrics_reader_open(&r, g_path), 0);
	assert_int_equal(dp_metrics_snapshot(&r, &s), 0);
	assert_int_equal(s.blocks[0].api[1].count, 1);
	dp_metrics_snapshot_free(&s);
	/* A restarted dataplane: a new file under the same name, one block. */
	assert_int_equal(dp_metrics_create(g_path, 8, &one, 1, 2000000000ull), 0);
	assert_int_equal(dp_metrics_snapshot(&r, &s), 0);
	assert_int_equal(s.hdr.n_blocks, 1);
	assert_int_equal(s.hdr.node_id, 8);
	assert_int_equal(s.blocks[0].lcore, 5);
	assert_int_equal(s.blocks[0].api[1].count, 0);
	dp_metrics_snapshot_free(&s);
	dp_metrics_destroy();
	assert_int_equal(dp_metrics_snapshot(&r, &s), -ENOENT);
	dp_metrics_reader_close(&r);
	assert_int_equal(dp_metrics_reader_open(&r, g_path), -ENOENT);
}

static void
test_not_a_segment(void **state)
{
	struct dp_metrics_reader r;
	char path[160];
	char junk[8192];
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/junk", g_dir);
	memset(junk, 0x5a, sizeof(junk));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	assert_int_equal(dp_metrics_reader_open(&r, path), -EPROTO);
	/* Too short for a header. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, junk, 100), 100);
	close(fd);
	assert_int_equal(dp_metrics_reader_open(&r, path), -EPROTO);
	unlink(path);
	/* A create that is refused leaves nothing behind. */
	assert_int_equal(dp_metrics_create(path, 1, g_lcores, 0, 1000), -EINVAL);
	assert_int_equal(access(path, F_OK), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_header_and_blocks, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_histogram_bounds, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_partitions, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_net_counters, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_unbound_thread, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_snapshot_consistent_under_writes, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_stuck_writer, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_replaced_and_removed, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_not_a_segment, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
