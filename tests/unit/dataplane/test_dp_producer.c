/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_producer: the idempotent-producer rules (epoch fencing, duplicates of
 * the last 5 batches with their original offsets, sequence gaps, new
 * epochs, unknown producers, wrap at INT32_MAX), the fixed table's eviction
 * and producer.id.expiration.ms, the producer-id blocks across reopen, and
 * the snapshots against a real partition log: rebuilt from the batch
 * headers without a snapshot, a snapshot loaded (it carries state the log
 * does not), snapshots beyond the log end (a truncated log) and corrupt ones
 * ignored and removed, a crash (no close) rebuilt from the last snapshot
 * plus the log, and the roll snapshot. Runs the storage engine in a
 * temporary directory; no DPDK.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "dp_producer.h"
#include "kp_batch.h"
#include "stor_engine.h"
#include "stor_log.h"

static char g_dir[256];

static int
setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/test_dp_producer.XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static bool
snap_exists(int64_t off)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/p-0/%020lld.snapshot", g_dir, (long long)off);
	return stat(path, &st) == 0;
}

static int
snap_count(void)
{
	char cmd[512];
	FILE *f;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls '%s/p-0' | grep -c '\\.snapshot$'", g_dir);
	f = popen(cmd, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &n), 1);
	pclose(f);
	return n;
}

/* ---- the rules ---- */

static void
record(struct dp_producer *e, int16_t epoch, int32_t first, int32_t count, int64_t off)
{
	dp_producer_record(e, epoch, first, dp_producer_last_seq(first, count - 1), off, 1000);
}

static enum dp_producer_verdict
check(const struct dp_producer *e, int16_t epoch, int32_t first, int32_t count, int64_t *dup)
{
	return dp_producer_check(e, epoch, first, dp_producer_last_seq(first, count - 1), dup);
}

static void
test_rules(void **state)
{
	struct dp_producer e = {.id = 7, .epoch = -1};
	int64_t dup = -1;

	(void)state;
	/* Unknown producer: any first sequence (KIP-360), but not a negative one. */
	assert_int_equal(check(&e, 0, 0, 5, &dup), DP_PRODUCER_APPEND);
	assert_int_equal(check(&e, 3, 4242, 5, &dup), DP_PRODUCER_APPEND);
	assert_int_equal(check(&e, 0, -1, 5, &dup), DP_PRODUCER_BAD_SEQUENCE);
	/* Seven batches of 5 records at offsets 100, 110, ... */
	for (int i = 0; i < 7; i++) {
		assert_int_equal(check(&e, 0, 5 * i, 5, &dup), DP_PRODUCER_APPEND);
		record(&e, 0, 5 * i, 5, 100 + 10 * i);
	}
	assert_int_equal(e.n, DP_PRODUCER_BATCHES);
	/* Each of the last 5 is a duplicate with its original offset; older ones are not. */
	for (int i = 2; i < 7; i++) {
		dup = -1;
		assert_int_equal(check(&e, 0, 5 * i, 5, &dup), DP_PRODUCER_DUPLICATE);
		assert_int_equal(dup, 100 + 10 * i);
	}
	assert_int_equal(check(&e, 0, 5, 5, &dup), DP_PRODUCER_OUT_OF_ORDER);
	/* Same first sequence, other length: not the cached batch. */
	assert_int_equal(check(&e, 0, 30, 3, &dup), DP_PRODUCER_OUT_OF_ORDER);
	/* Gap, and the next one in sequence. */
	assert_int_equal(check(&e, 0, 36, 1, &dup), DP_PRODUCER_OUT_OF_ORDER);
	assert_int_equal(check(&e, 0, 34, 1, &dup), DP_PRODUCER_OUT_OF_ORDER);
	assert_int_equal(check(&e, 0, 35, 1, &dup), DP_PRODUCER_APPEND);
	/* A bumped epoch must start at 0; an older epoch is fenced. */
	assert_int_equal(check(&e, 1, 35, 1, &dup), DP_PRODUCER_OUT_OF_ORDER);
	assert_int_equal(check(&e, 1, 0, 1, &dup), DP_PRODUCER_APPEND);
	record(&e, 1, 0, 2, 500);
	assert_int_equal(e.n, 1);
	assert_int_equal(check(&e, 0, 35, 1, &dup), DP_PRODUCER_OLD_EPOCH);
	assert_int_equal(check(&e, 0, 0, 2, &dup), DP_PRODUCER_OLD_EPOCH);
	assert_int_equal(check(&e, 1, 0, 2, &dup), DP_PRODUCER_DUPLICATE);
	assert_int_equal(dup, 500);
	assert_int_equal(check(&e, 1, 2, 1, &dup), DP_PRODUCER_APPEND);
	/* Sequences wrap at INT32_MAX. */
	assert_int_equal(dp_producer_last_seq(INT32_MAX, 0), INT32_MAX);
	assert_int_equal(dp_producer_last_seq(INT32_MAX, 1), 0);
	assert_int_equal(dp_producer_last_seq(INT32_MAX - 2, 4), 1);
	record(&e, 1, INT32_MAX - 4, 5, 600); /* last INT32_MAX */
	assert_int_equal(check(&e, 1, 0, 3, &dup), DP_PRODUCER_APPEND);
	assert_int_equal(check(&e, 1, 1, 3, &dup), DP_PRODUCER_OUT_OF_ORDER);
	record(&e, 1, INT32_MAX - 1, 4, 700); /* INT32_MAX - 1 .. 1 */
	assert_int_equal(e.batch[e.head].last_seq, 1);
	assert_int_equal(check(&e, 1, 2, 1, &dup), DP_PRODUCER_APPEND);
	assert_int_equal(check(&e, 1, INT32_MAX - 1, 4, &dup), DP_PRODUCER_DUPLICATE);
	assert_int_equal(dup, 700);
}

static void
test_table_eviction(void **state)
{
	struct dp_producers *ps = calloc(1, sizeof(*ps) + 3 * sizeof(ps->p[0]));
	struct dp_producer *e;

	(void)state;
	ps->cap = 3;
	ps->expiration_ms = 10000;
	ps->dir = strdup("test");
	for (int i = 0; i < 3; i++) {
		e = dp_producers_get(ps, 10 + i, 50000);
		assert_int_equal(e->epoch, -1);
		record(e, 0, 0, 1, i);
		e->last_ts = 50000 + i * 100;
	}
	assert_int_equal(ps->count, 3);
	assert_ptr_equal(dp_producers_get(ps, 11, 50000), dp_producers_find(ps, 11));
	/* Full: the entry idle the longest (10) makes room. */
	e = dp_producers_get(ps, 20, 50500);
	assert_int_equal(e->id, 20);
	assert_null(dp_producers_find(ps, 10));
	assert_non_null(dp_producers_find(ps, 11));
	assert_non_null(dp_producers_find(ps, 12));
	e->last_ts = 90000;
	/* 12 idle past producer.id.expiration.ms: it goes, 11 (idle 5 s) stays. */
	dp_producers_find(ps, 12)->last_ts = 40000;
	dp_producers_find(ps, 11)->last_ts = 55000;
	e = dp_producers_get(ps, 30, 60000);
	assert_int_equal(ps->count, 3);
	assert_int_equal(e->id, 30);
	assert_null(dp_producers_find(ps, 12));
	assert_non_null(dp_producers_find(ps, 11));
	assert_non_null(dp_producers_find(ps, 20));
	dp_producers_free(ps);
}

static void
test_pid_blocks(void **state)
{
	struct dp_pid_alloc a;
	int64_t pid;
	char path[512];
	FILE *f;

	(void)state;
	assert_int_equal(dp_pid_alloc_open(&a, g_dir), 0);
	for (int64_t i = 0; i < 3; i++) {
		assert_int_equal(dp_pid_alloc_next(&a, &pid), 0);
		assert_int_equal(pid, i);
	}
	/* Reopened (as after kill -9): the rest of the block is skipped, never reused. */
	assert_int_equal(dp_pid_alloc_open(&a, g_dir), 0);
	assert_int_equal(dp_pid_alloc_next(&a, &pid), 0);
	assert_int_equal(pid, DP_PID_BLOCK);
	for (int i = 1; i < DP_PID_BLOCK; i++)
		assert_int_equal(dp_pid_alloc_next(&a, &pid), 0);
	assert_int_equal(pid, 2 * DP_PID_BLOCK - 1);
	assert_int_equal(dp_pid_alloc_next(&a, &pid), 0);
	assert_int_equal(pid, 2 * DP_PID_BLOCK);
	assert_int_equal(dp_pid_alloc_open(&a, g_dir), 0);
	assert_int_equal(a.next, 3 * DP_PID_BLOCK);
	/* A garbled file refuses the start rather than reusing ids. */
	snprintf(path, sizeof(path), "%s/%s", g_dir, DP_PID_FILE);
	f = fopen(path, "w");
	fputs("12x\n", f);
	fclose(f);
	assert_int_equal(dp_pid_alloc_open(&a, g_dir), -EBADMSG);
}

/* ---- against a partition log ---- */

struct ack {
	int done;
};

static void
ack_cb(void *arg, int rc, int64_t base)
{
	(void)rc;
	(void)base;
	((struct ack *)arg)->done++;
}

static struct stor_engine *
engine(void)
{
	struct stor_engine_opts o;

	stor_engine_opts_init(&o);
	o.chunk_bytes = 64 << 10;
	o.chunk_count = 8;
	return stor_engine_create(&o);
}

static struct stor_log *
log_open(struct stor_engine *e, int64_t segment_bytes)
{
	struct stor_log_config cfg;
	char dir[300];
	int err = 0;
	struct stor_log *log;

	stor_log_config_init(&cfg);
	cfg.segment_bytes = segment_bytes;
	cfg.roll_ms = -1;
	snprintf(dir, sizeof(dir), "%s/p-0", g_dir);
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	return log;
}

/*
 * Append a batch of @count records of producer @pid: what dp_produce does
 * (roll check, then record), and wait for it. @return its base offset.
 */
static int64_t
append(struct stor_engine *e, struct stor_log *log, struct dp_producers *ps, int64_t pid,
	int16_t epoch, int32_t seq, int count, int64_t ts)
{
	uint8_t buf[8192];
	uint8_t val[200];
	struct kp_batch_builder b;
	struct ack a = {0};
	size_t size = 0;
	int64_t base = -1;

	memset(val, 'v', sizeof(val));
	assert_int_equal(kp_batch_builder_start(&b, buf, sizeof(buf), KP_COMPRESSION_NONE), 0);
	b.producer_id = pid;
	b.producer_epoch = epoch;
	b.base_sequence = seq;
	for (int i = 0; i < count; i++)
		assert_int_equal(kp_batch_builder_add(&b, ts, "k", 1, val, sizeof(val), NULL, 0), 0);
	assert_int_equal(kp_batch_builder_finish(&b, &size), 0);
	assert_int_equal(stor_log_append(log, buf, size, 0, ack_cb, &a, &base), 0);
	if (ps != NULL) {
		dp_producers_roll_check(ps, log, base);
		if (pid >= 0)
			dp_producer_record(dp_producers_get(ps, pid, ts), epoch, seq,
				dp_producer_last_seq(seq, count - 1), base, ts);
	}
	for (time_t end = time(NULL) + 20; a.done == 0 && time(NULL) < end;)
		stor_engine_poll(e);
	assert_int_equal(a.done, 1);
	return base;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The entry of @pid has epoch @epoch and newest batch (first, last, offset). */
static void
expect_newest(struct dp_producers *ps, int64_t pid, int16_t epoch, int32_t first, int32_t last,
	int64_t off)
{
	struct dp_producer *e = dp_producers_find(ps, pid);

	assert_non_null(e);
	assert_int_equal(e->epoch, epoch);
	assert_true(e->n > 0);
	assert_int_equal(e->batch[e->head].first_seq, first);
	assert_int_equal(e->batch[e->head].last_seq, last);
	assert_int_equal(e->batch[e->head].first_offset, off);
}

static void
test_rebuild_and_snapshots(void **state)
{
	struct stor_engine *e = engine();
	struct stor_log *log = log_open(e, 1 << 30);
	struct dp_producers *ps;
	int64_t t = now_ms();
	int64_t off[8];
	int64_t dup;

	(void)state;
	/* Producers 5 and 6 interleaved, a non-idempotent batch, 6 bumps its epoch. */
	off[0] = append(e, log, NULL, 5, 0, 0, 3, t);
	off[1] = append(e, log, NULL, 6, 0, 0, 2, t);
	off[2] = append(e, log, NULL, -1, -1, -1, 4, t);
	off[3] = append(e, log, NULL, 5, 0, 3, 3, t);
	off[4] = append(e, log, NULL, 6, 1, 0, 1, t);
	off[5] = append(e, log, NULL, 7, 0, 0, 1, t - 2 * 86400000LL); /* long idle */
	/* No snapshot yet: all from the batch headers. */
	assert_int_equal(dp_producers_open(log, 16, 86400000, t, &ps), 0);
	assert_int_equal(ps->count, 3);
	expect_newest(ps, 5, 0, 3, 5, off[3]);
	assert_int_equal(dp_producers_find(ps, 5)->n, 2);
	expect_newest(ps, 6, 1, 0, 0, off[4]);
	assert_int_equal(dp_producers_find(ps, 6)->n, 1);
	assert_int_equal(check(dp_producers_find(ps, 5), 0, 0, 3, &dup), DP_PRODUCER_DUPLICATE);
	assert_int_equal(dup, off[0]);
	/* Clean close: a snapshot at the log end. */
	int64_t leo = stor_log_end_offset(log);
	assert_int_equal(dp_producers_close(ps, log), 0);
	assert_int_equal(stor_log_close(log), 0);
	assert_true(snap_exists(leo));
	/*
	 * The snapshot is what is loaded: add an entry the log does not have
	 * to it (by writing a snapshot of a doctored table at the same offset).
	 */
	log = log_open(e, 1 << 30);
	assert_int_equal(dp_producers_open(log, 16, 86400000, t, &ps), 0);
	assert_int_equal(ps->count, 2); /* 7 expired at load (producer.id.expiration.ms) */
	assert_null(dp_producers_find(ps, 7));
	record(dp_producers_get(ps, 99, t), 4, 40, 1, 3);
	dp_producers_find(ps, 99)->last_ts = t;
	assert_int_equal(dp_producers_snapshot(ps, leo), 0);
	dp_producers_free(ps);
	assert_int_equal(dp_producers_open(log, 16, 86400000, t, &ps), 0);
	expect_newest(ps, 99, 4, 40, 40, 3);
	expect_newest(ps, 5, 0, 3, 5, off[3]);
	/* Appends after the snapshot, then a crash (no snapshot): snapshot + replay. */
	off[6] = append(e, log, ps, 5, 0, 6, 2, t);
	off[7] = append(e, log, ps, 8, 0, 0, 1, t);
	dp_producers_free(ps);
	stor_log_abandon(log);
	log = log_open(e, 1 << 30);
	assert_int_equal(dp_producers_open(log, 16, 86400000, t, &ps), 0);
	expect_newest(ps, 99, 4, 40, 40, 3); /* from the snapshot */
	expect_newest(ps, 5, 0, 6, 7, off[6]); /* snapshot + replayed batch */
	assert_int_equal(dp_producers_find(ps, 5)->n, 3);
	expect_newest(ps, 8, 0, 0, 0, off[7]);
	dp_producers_free(ps);
	/* A snapshot beyond the log end (a crash cut the log) is removed, not loaded. */
	struct dp_producers *fake = calloc(1, sizeof(*fake) + 4 * sizeof(fake->p[0]));
	fake->cap = 4;
	fake->dir = strdup(stor_log_dir(log));
	fake->expiration_ms = -1;
	record(dp_producers_get(fake, 123, t), 0, 0, 1, 0);
	assert_int_equal(dp_producers_snapshot(fake, stor_log_end_offset(log) + 50), 0);
	assert_true(snap_exists(stor_log_end_offset(log) + 50));
	assert_true(snap_exists(leo));
	assert_int_equal(dp_producers_open(log, 16, 86400000, t, &ps), 0);
	assert_null(dp_producers_find(ps, 123));
	assert_false(snap_exists(stor_log_end_offset(log) + 50));
	expect_newest(ps, 99, 4, 40, 40, 3);
	dp_producers_free(ps);
	/* A corrupt snapshot is removed and the state rebuilt from the log alone. */
	{
		char path[512];
		FILE *f;

		snprintf(path, sizeof(path), "%s/p-0/%020lld.snapshot", g_dir, (long long)leo);
		f = fopen(path, "r+");
		assert_non_null(f);
		fseek(f, 30, SEEK_SET);
		fputc(0x5a, f);
		fclose(f);
	}
	assert_int_equal(dp_producers_open(log, 16, 86400000, t, &ps), 0);
	assert_false(snap_exists(leo));
	assert_null(dp_producers_find(ps, 99));
	expect_newest(ps, 5, 0, 6, 7, off[6]);
	expect_newest(ps, 6, 1, 0, 0, off[4]);
	/* A table smaller than the producers: the newest batches win (evicting idle ones). */
	dp_producers_free(ps);
	assert_int_equal(dp_producers_open(log, 2, 86400000, t, &ps), 0);
	assert_int_equal(ps->count, 2);
	assert_non_null(dp_producers_find(ps, 8));
	assert_int_equal(dp_producers_close(ps, log), 0);
	assert_int_equal(stor_log_close(log), 0);
	free(fake->dir);
	free(fake);
	/*
	 * A shutdown's close (unsynced, the file system synced after): an idle
	 * partition's snapshot, the same bytes, stays as it is (the same file); a
	 * changed table replaces it.
	 */
	{
		char path[512];
		struct stat st0, st1;

		log = log_open(e, 1 << 30);
		leo = stor_log_end_offset(log);
		snprintf(path, sizeof(path), "%s/p-0/%020lld.snapshot", g_dir, (long long)leo);
		assert_int_equal(stat(path, &st0), 0);
		assert_int_equal(dp_producers_open(log, 2, 86400000, t, &ps), 0);
		assert_int_equal(dp_producers_close_unsynced(ps, log), 0);
		assert_int_equal(stat(path, &st1), 0);
		assert_int_equal(st1.st_ino, st0.st_ino);
		assert_int_equal(dp_producers_open(log, 2, 86400000, t, &ps), 0);
		record(dp_producers_find(ps, 8), 0, 1, 1, leo - 1);
		dp_producers_find(ps, 8)->last_ts = t;
		assert_int_equal(dp_producers_close_unsynced(ps, log), 0);
		assert_int_equal(stat(path, &st1), 0);
		assert_true(st1.st_ino != st0.st_ino);
		assert_int_equal(dp_producers_open(log, 2, 86400000, t, &ps), 0);
		expect_newest(ps, 8, 0, 1, 1, leo - 1);
		dp_producers_free(ps);
		assert_int_equal(stor_log_close(log), 0);
	}
	stor_engine_destroy(e);
}

static void
test_roll_snapshot(void **state)
{
	struct stor_engine *e = engine();
	struct stor_log *log = log_open(e, 8192);
	struct dp_producers *ps;
	int64_t t = now_ms();
	int64_t base = -1;
	int32_t seq = 0;
	unsigned segs;

	(void)state;
	assert_int_equal(dp_producers_open(log, 16, 86400000, t, &ps), 0);
	/* ~2.2 KiB batches: a roll every 3 or so. */
	for (int i = 0; i < 12; i++) {
		segs = stor_log_segment_count(log);
		base = append(e, log, ps, 42, 0, seq, 10, t);
		if (stor_log_segment_count(log) != segs) {
			/* The roll snapshot is named by the new base and has the state before it. */
			assert_int_equal(stor_log_segment_base(log, stor_log_segment_count(log) - 1),
				base);
			assert_true(snap_exists(base));
		}
		seq += 10;
	}
	segs = stor_log_segment_count(log);
	assert_true(segs >= 3);
	/* Only the newest two are kept. */
	assert_int_equal(snap_count(), 2);
	dp_producers_free(ps);
	stor_log_abandon(log);
	/* Crash: the newest roll snapshot + the batches after it give the full state. */
	log = log_open(e, 8192);
	assert_int_equal(dp_producers_open(log, 16, 86400000, t, &ps), 0);
	expect_newest(ps, 42, 0, seq - 10, seq - 1, base);
	assert_int_equal(dp_producers_find(ps, 42)->n, DP_PRODUCER_BATCHES);
	/* Each batch once (a snapshot holding the batch at its own base would repeat it). */
	for (int k = 0; k < DP_PRODUCER_BATCHES; k++) {
		struct dp_producer *p = dp_producers_find(ps, 42);
		int slot = (p->head + DP_PRODUCER_BATCHES - k) % DP_PRODUCER_BATCHES;

		assert_int_equal(p->batch[slot].first_seq, seq - 10 * (k + 1));
	}
	dp_producers_free(ps);
	assert_int_equal(stor_log_close(log), 0);
	stor_engine_destroy(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_table_eviction),
		cmocka_unit_test_setup_teardown(test_pid_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuild_and_snapshots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roll_snapshot, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
