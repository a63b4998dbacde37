/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of what storage does for many partitions on one engine
 * (issue 7's 10,000-partition target): the flush.ms timers are watched only
 * for logs that have one running (synced exactly when due, among hundreds
 * of logs without one, and again after a later append); with io_uring fixed
 * files an open segment holds no file descriptor, so more segment files
 * stay open than RLIMIT_NOFILE allows descriptors, and the setup operations
 * that reopen the path (size, pread, truncate) work on them across a clean
 * restart; the open-file limit in force comes from the table, not from the
 * descriptor budget; and closing many logs at once (stor_log_close_many)
 * hands their final fdatasyncs to the kernel together, one per log, and
 * leaves every log clean (marker written, data and offsets back at the next
 * open, no recovery scan); the reopen removes the markers and syncs their
 * removal once, before the first append to any of them. Logs live under
 * /dev/shm (the syncs counted are the requests queued, whatever the file
 * system makes of them). storage.io.workers: parsed, the ring's limit of
 * blocking-write threads raised to it (read back from the kernel), and 200
 * logs of growing O_DIRECT files written at once through those threads come
 * back byte for byte after a clean restart (on the build tree's file
 * system, where such writes go to the workers). storage.io.workers.cpus:
 * CPU lists parsed (cpuset(7) syntax, bad ones refused), and an engine's
 * workers placed on the one CPU named, not on all the process may use.
 * storage.preallocate.bytes:
 * the active segment is reserved a step at a time, always at least half a
 * step and at most a step (plus a block) past the data, with blocks really
 * allocated; one reservation per half step or so, none past the segment;
 * trimmed by a clean close, cut back to the data by a crash recovery, the
 * data intact both ways; the whole segment at once without the option.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <liburing.h>
#include <stdbool.h>
#include <dirent.h>
#include <sched.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stor_test_util.h"

static struct stor_log *
sopen(struct stor_engine *e, const char *root, int i, const char *flush_ms)
{
	struct stor_log_config cfg;
	char dir[4096];
	int err = 0;

	stor_log_config_init(&cfg);
	cfg.segment_bytes = 1 << 20;
	cfg.roll_ms = -1;
	cfg.preallocate = false;
	if (flush_ms != NULL)
		assert_int_equal(stor_log_config_set(&cfg, "flush.ms", flush_ms), 0);
	snprintf(dir, sizeof(dir), "%s/p-%d", root, i);
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	return log;
}

/* Append one small batch and wait for its acknowledgement. */
static void
sappend(struct stor_engine *e, struct stor_log *log, unsigned seed)
{
	uint8_t buf[4096];
	size_t size = tu_batch(buf, sizeof(buf), 2, 1, 300 + seed % 200, seed, NULL);
	struct tu_ack ack = {0};

	assert_true(size > 0);
	assert_int_equal(stor_log_append(log, buf, size, 0, tu_ack_cb, &ack, NULL), 0);
	assert_int_equal(tu_poll_until(e, &ack.done, 1), 0);
	assert_int_equal(ack.rc, 0);
}

/* Poll for @ms milliseconds of wall time. */
static void
poll_for_ms(struct stor_engine *e, long ms)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		stor_engine_poll(e);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
}

#define MANY 300
#define TIMED 3

/*
 * 300 logs without flush.ms and 3 with flush.ms=20, all appended to: only
 * the 3 get an fdatasync, once each, from the poll alone; a later append to
 * one of them (after it left the timer list) gets its own.
 */
static void
test_flush_ms_among_many(void **state)
{
	struct tu_backend *wrap;
	struct stor_engine *e = tu_engine(&wrap, STOR_DIRECT_AUTO, 64 << 10, 16, NULL);
	char *root = tu_tmpdir("/dev/shm");
	static struct stor_log *logs[MANY + TIMED];

	(void)state;
	assert_non_null(e);
	for (int i = 0; i < MANY + TIMED; i++)
		logs[i] = sopen(e, root, i, i >= MANY ? "20" : NULL);
	unsigned syncs0 = wrap->syncs;
	for (int i = 0; i < MANY + TIMED; i++)
		sappend(e, logs[i], (unsigned)i);
	/* Due 20 ms after the append: poll until all three synced (bounded), then some more. */
	time_t end = time(NULL) + 30;
	while (wrap->syncs - syncs0 < TIMED && time(NULL) < end)
		poll_for_ms(e, 5);
	poll_for_ms(e, 60);
	stor_engine_drain(e);
	assert_int_equal(wrap->syncs - syncs0, TIMED);

	/* Re-armed by the next append. */
	sappend(e, logs[MANY], 7);
	end = time(NULL) + 30;
	while (wrap->syncs - syncs0 < TIMED + 1 && time(NULL) < end)
		poll_for_ms(e, 5);
	poll_for_ms(e, 60);
	stor_engine_drain(e);
	assert_int_equal(wrap->syncs - syncs0, TIMED + 1);

	for (int i = 0; i < MANY + TIMED; i++)
		assert_int_equal(stor_log_close(logs[i]), 0);
	stor_engine_destroy(e);
	tu_rm_rf(root);
	free(root);
}

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

#define FILES 300

/*
 * A fixed-file table of 512 slots, then RLIMIT_NOFILE lowered far below
 * 300: 300 logs open, append, roll (600 segment files, more than the
 * table's limit: idle ones closed and reopened) and read back; the process
 * holds no descriptor per file. The descriptor budget (max_open_fds) does
 * not apply; the table does. A clean restart under the same limits reads
 * everything back (size, pread and truncate reopen the paths).
 */
static void
test_files_hold_no_fds(void **state)
{
	struct stor_engine_opts o;
	struct stor_engine_stats st;
	struct rlimit rl0, rl;
	char *root = tu_tmpdir("/dev/shm");
	static struct stor_log *logs[FILES];
	size_t bsz = stor_read_buf_size(16 << 10);
	uint8_t *rbuf = aligned_alloc(STOR_BLOCK_SIZE, bsz);

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl0), 0);
	if (rl0.rlim_cur < 512) {
		rl = rl0;
		rl.rlim_cur = rl0.rlim_max < 512 ? rl0.rlim_max : 512;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	stor_engine_opts_init(&o);
	o.chunk_bytes = 64 << 10;
	o.chunk_count = 8;
	o.max_files = 512;
	o.max_open_fds = 32; /* descriptors only: not for fixed files */
	/* The ring's files: tmpfs files served inline keep a descriptor (test_stor_uring). */
	o.inline_io = STOR_INLINE_OFF;
	struct stor_engine *e = stor_engine_create(&o);
	assert_non_null(e);
	stor_engine_stats(e, &st);
	if (!stor_engine_files_hold_fds(e)) {
		assert_int_equal(st.open_files_max, 512 - 16);
	} else {
		/* Fixed files refused here: the descriptor budget is the limit. */
		print_message("fixed files refused: descriptors kept, budget %u\n",
		              st.open_files_max);
		assert_int_equal(st.open_files_max, 32);
		stor_engine_destroy(e);
		setrlimit(RLIMIT_NOFILE, &rl0);
		free(rbuf);
		tu_rm_rf(root);
		free(root);
		skip();
	}
	int fds0 = count_fds();
	rl = rl0;
	rl.rlim_cur = (rlim_t)fds0 + 64;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);

	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < FILES; i++) {
			logs[i] = sopen(e, root, i, NULL);
			sappend(e, logs[i], (unsigned)(i + round * 1000));
		}
		stor_engine_stats(e, &st);
		if (round == 0) {
			assert_int_equal(st.open_files, FILES);
			assert_int_equal(st.file_closes, 0);
			/* A second segment each: 600 files, more than the table's limit. */
			for (int i = 0; i < FILES; i++) {
				assert_int_equal(stor_log_roll(logs[i]), 0);
				sappend(e, logs[i], (unsigned)(i + 500));
			}
			stor_engine_drain(e);
			stor_engine_poll(e);
			stor_engine_stats(e, &st);
			assert_true(st.open_files <= 512 - 16);
			assert_true(st.file_closes > 0);
		}
		assert_true(count_fds() <= fds0 + 4);
		for (int i = 0; i < FILES; i++) {
			struct stor_read rd = {.buf = rbuf, .buf_size = bsz};
			int64_t leo = stor_log_end_offset(logs[i]);

			assert_int_equal(leo, round == 0 ? 4 : 6);
			/* Offset 0 was written before the roll: from disk, reopened if closed. */
			assert_int_equal(tu_read(e, logs[i], &rd, 0, 16 << 10), 0);
			assert_true(rd.len > 0);
			assert_int_equal(rd.next_offset, 2);
			stor_read_release(&rd);
		}
		for (int i = 0; i < FILES; i++)
			assert_int_equal(stor_log_close(logs[i]), 0);
		stor_engine_stats(e, &st);
		assert_int_equal(st.open_files, 0);
	}
	setrlimit(RLIMIT_NOFILE, &rl0);
	stor_engine_destroy(e);
	free(rbuf);
	tu_rm_rf(root);
	free(root);
}

#define CLOSING 200

/*
 * 200 logs with unsynced appends closed at once: 200 fdatasyncs queued,
 * many in one submission (the wrapper's largest batch); every log leaves
 * its clean-shutdown marker and reopens without a scan at the same end
 * offset, its data readable.
 */
static void
test_close_many(void **state)
{
	struct tu_backend *wrap;
	struct tu_logcap *cap = calloc(1, sizeof(*cap));
	struct stor_engine *e = tu_engine(&wrap, STOR_DIRECT_AUTO, 64 << 10, 16, cap);
	char *root = tu_tmpdir("/dev/shm");
	static struct stor_log *logs[CLOSING];
	static int rcs[CLOSING];
	size_t bsz = stor_read_buf_size(16 << 10);
	uint8_t *rbuf = aligned_alloc(STOR_BLOCK_SIZE, bsz);
	char path[4200];
	struct stat sb;

	(void)state;
	assert_non_null(e);
	for (int i = 0; i < CLOSING; i++) {
		logs[i] = sopen(e, root, i, NULL);
		for (int k = 0; k <= i % 3; k++)
			sappend(e, logs[i], (unsigned)(i * 3 + k));
	}
	unsigned syncs0 = wrap->syncs;
	wrap->max_batch = 0;
	memset(rcs, 0xff, sizeof(rcs));
	assert_int_equal(stor_log_close_many(logs, CLOSING, rcs), 0);
	assert_int_equal(wrap->syncs - syncs0, CLOSING);
	assert_true(wrap->max_batch >= 32);
	for (int i = 0; i < CLOSING; i++) {
		assert_int_equal(rcs[i], 0);
		snprintf(path, sizeof(path), "%s/p-%d/%s", root, i, STOR_FILE_CLEAN);
		assert_int_equal(stat(path, &sb), 0);
	}
	for (int i = 0; i < CLOSING; i++) {
		struct stor_read rd = {.buf = rbuf, .buf_size = bsz};

		memset(cap, 0, sizeof(*cap));
		logs[i] = sopen(e, root, i, NULL);
		/* A clean open: no scan of the segment. */
		assert_non_null(strstr(cap->text, "clean shutdown"));
		assert_null(strstr(cap->text, "recovered"));
		assert_int_equal(stor_log_end_offset(logs[i]), 2 * (1 + i % 3));
		assert_int_equal(tu_read(e, logs[i], &rd, 0, 16 << 10), 0);
		assert_true(rd.len > 0);
		stor_read_release(&rd);
	}
	/*
	 * The markers are stale (invalidated in place: their magic zeroed), that
	 * not yet synced: the first change to any log (an append) syncs every
	 * invalidation so far, once.
	 */
	struct stor_engine_stats st;
	stor_engine_stats(e, &st);
	assert_int_equal(st.unlinks_unsynced, CLOSING);
	snprintf(path, sizeof(path), "%s/p-0/%s", root, STOR_FILE_CLEAN);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, STOR_CLEAN_SIZE);
	{
		uint8_t magic[4] = {1, 1, 1, 1};
		int fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, magic, 4, 0), 4);
		close(fd);
		assert_true(magic[0] == 0 && magic[1] == 0 && magic[2] == 0 && magic[3] == 0);
	}
	sappend(e, logs[CLOSING - 1], 99);
	stor_engine_stats(e, &st);
	assert_int_equal(st.unlinks_unsynced, 0);
	/* An empty batch is fine; the logs go again, without the array. */
	assert_int_equal(stor_log_close_many(logs, 0, NULL), 0);
	/*
	 * Every log but the last is idle since its clean open: its marker is
	 * restored in place and its index files stay; the last one, appended
	 * to, gets its index files and marker rewritten in place (a syncfs
	 * between them). The same inodes either way: no file created.
	 */
	char ipath[4300], lpath[4300];
	struct stat isb, lsb;
	snprintf(ipath, sizeof(ipath), "%s/p-0/00000000000000000000.index", root);
	snprintf(lpath, sizeof(lpath), "%s/p-%d/%s", root, CLOSING - 1, STOR_FILE_CLEAN);
	assert_int_equal(stat(ipath, &isb), 0);
	assert_int_equal(stat(lpath, &lsb), 0);
	ino_t ino = sb.st_ino, iino = isb.st_ino, lino = lsb.st_ino;
	assert_int_equal(stor_log_close_many(logs, CLOSING, NULL), 0);
	assert_int_equal(stat(ipath, &isb), 0);
	assert_int_equal(isb.st_ino, iino);
	assert_int_equal(stat(lpath, &lsb), 0);
	assert_int_equal(lsb.st_ino, lino);
	assert_int_equal(lsb.st_size, STOR_CLEAN_SIZE);
	/* The stale marker valid again, the same file. */
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_ino, ino);
	{
		char magic[5] = {0};
		int fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, magic, 4, 0), 4);
		close(fd);
		assert_string_equal(magic, "SLPC");
	}
	/* And a third open is clean again, at the same ends (the last one's with its append). */
	memset(cap, 0, sizeof(*cap));
	logs[0] = sopen(e, root, 0, NULL);
	assert_non_null(strstr(cap->text, "clean shutdown"));
	assert_null(strstr(cap->text, "recovered"));
	assert_int_equal(stor_log_end_offset(logs[0]), 2);
	assert_int_equal(stor_log_close(logs[0]), 0);
	memset(cap, 0, sizeof(*cap));
	logs[0] = sopen(e, root, CLOSING - 1, NULL);
	assert_non_null(strstr(cap->text, "clean shutdown"));
	assert_null(strstr(cap->text, "recovered"));
	assert_int_equal(stor_log_end_offset(logs[0]), 2 * (1 + (CLOSING - 1) % 3) + 2);
	{
		/* Its data read back through the rewritten index, to the last batch. */
		struct stor_read rd = {.buf = rbuf, .buf_size = bsz};
		int64_t last = stor_log_end_offset(logs[0]) - 2;

		assert_int_equal(tu_read(e, logs[0], &rd, last, 16 << 10), 0);
		assert_true(rd.len > 0);
		stor_read_release(&rd);
	}
	assert_int_equal(stor_log_close(logs[0]), 0);
	stor_engine_destroy(e);
	free(rbuf);
	free(cap);
	tu_rm_rf(root);
	free(root);
}

#define WIDE 200

/* Whether this kernel reads io-wq worker limits back (5.15 and later), asked directly. */
static bool
kernel_takes_iowq_limit(void)
{
	struct io_uring ring;
	unsigned vals[2] = {0, 0};
	bool ok;

	if (io_uring_queue_init(8, &ring, 0) != 0)
		return false;
	ok = io_uring_register_iowq_max_workers(&ring, vals) == 0 && vals[0] != 0;
	io_uring_queue_exit(&ring);
	return ok;
}

/* Records of log @i, append @round: a value pattern of its own. */
static size_t
wide_batch(uint8_t *buf, size_t cap, int i, int round)
{
	return tu_batch(buf, cap, 15, 1000 + round, 1000, (unsigned)(i * 7 + round), NULL);
}

static void
test_io_workers(void **state)
{
	struct stor_engine_opts o;
	struct stor_engine_stats st;
	struct stor_log_config cfg;
	static struct stor_log *logs[WIDE];
	static struct tu_ack acks[WIDE];
	static uint8_t batch[2][20000];
	char *root = tu_tmpdir("");
	size_t bsz = stor_read_buf_size(64 << 10);
	uint8_t *rbuf = aligned_alloc(STOR_BLOCK_SIZE, bsz);
	char dir[4096];
	int err = 0;

	(void)state;
	assert_non_null(root);
	assert_non_null(rbuf);
	stor_engine_opts_init(&o);
	assert_int_equal(o.io_workers, 64);
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.workers", "0"), 0);
	assert_int_equal(o.io_workers, 0);
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.workers", "4096"), 0);
	assert_int_equal(o.io_workers, 4096);
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.workers", "4097"), -EINVAL);
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.workers", "-1"), -EINVAL);
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.workers", "many"), -EINVAL);
	assert_int_equal(o.io_workers, 4096);

	/* 0: the kernel's default, not asked for. */
	stor_engine_opts_init(&o);
	o.io_workers = 0;
	o.chunk_count = 4;
	o.chunk_bytes = 64 << 10;
	struct stor_engine *e = stor_engine_create(&o);
	assert_non_null(e);
	stor_engine_stats(e, &st);
	assert_int_equal(st.io_workers, 0);
	stor_engine_destroy(e);

	stor_engine_opts_init(&o);
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.workers", "96"), 0);
	o.chunk_count = WIDE + 16;
	o.chunk_bytes = 64 << 10;
	e = stor_engine_create(&o);
	assert_non_null(e);
	stor_engine_stats(e, &st);
	if (st.io_workers == 0 && !kernel_takes_iowq_limit()) {
		print_message("the kernel does not take IORING_REGISTER_IOWQ_MAX_WORKERS\n");
		stor_engine_destroy(e);
		tu_rm_rf(root);
		free(root);
		free(rbuf);
		skip();
	}
	/* At least what was asked (a machine with many CPUs may start higher). */
	assert_true(st.io_workers >= 96);

	stor_log_config_init(&cfg);
	cfg.segment_bytes = 1 << 20;
	cfg.roll_ms = -1;
	cfg.preallocate = false; /* every write grows its file: the workers' case */
	for (int i = 0; i < WIDE; i++) {
		snprintf(dir, sizeof(dir), "%s/w-%d", root, i);
		logs[i] = stor_log_open(e, dir, &cfg, &err);
		assert_non_null(logs[i]);
	}
	for (int round = 0; round < 2; round++) {
		/* One batch per log, all in flight together. */
		int acked = 0;
		for (int i = 0; i < WIDE; i++) {
			size_t n = wide_batch(batch[0], sizeof(batch[0]), i, round);
			assert_true(n > 0);
			acks[i] = (struct tu_ack){0};
			assert_int_equal(stor_log_append(logs[i], batch[0], n, 0, tu_ack_cb, &acks[i],
			                                 NULL),
			                 0);
		}
		time_t end = time(NULL) + 60;
		while (acked < WIDE && time(NULL) < end) {
			stor_engine_poll(e);
			acked = 0;
			for (int i = 0; i < WIDE; i++)
				acked += acks[i].done;
		}
		assert_int_equal(acked, WIDE);
		for (int i = 0; i < WIDE; i++) {
			assert_int_equal(acks[i].rc, 0);
			assert_int_equal(acks[i].base, round * 15);
		}
	}
	assert_int_equal(stor_log_close_many(logs, WIDE, NULL), 0);

	/* Back after a clean restart, byte for byte (the offsets rewritten by the log). */
	for (int i = 0; i < WIDE; i++) {
		struct stor_read rd = {.buf = rbuf, .buf_size = bsz};
		size_t n0 = wide_batch(batch[0], sizeof(batch[0]), i, 0);
		size_t n1 = wide_batch(batch[1], sizeof(batch[1]), i, 1);

		snprintf(dir, sizeof(dir), "%s/w-%d", root, i);
		logs[i] = stor_log_open(e, dir, &cfg, &err);
		assert_non_null(logs[i]);
		assert_int_equal(stor_log_end_offset(logs[i]), 30);
		assert_int_equal(tu_read(e, logs[i], &rd, 0, 64 << 10), 0);
		assert_int_equal(rd.len, n0 + n1);
		assert_int_equal(rd.next_offset, 30);
		kp_batch_set_base_offset(batch[1], 15);
		/* baseOffset (8 bytes) and the rest of each batch. */
		assert_memory_equal(rd.data, batch[0], n0);
		assert_memory_equal(rd.data + n0, batch[1], n1);
		stor_read_release(&rd);
	}
	assert_int_equal(stor_log_close_many(logs, WIDE, NULL), 0);
	stor_engine_destroy(e);
	tu_rm_rf(root);
	free(root);
	free(rbuf);
}

/*
 * The allowed CPUs of every io_uring worker thread of this process
 * ("iou-wrk-*" in /proc/self/task), as masks: up to @max of them. Returns
 * how many there are.
 */
static int
io_worker_masks(uint64_t (*masks)[STOR_CPU_MASK_WORDS], int max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char path[300], line[512] = "";
		bool wrk = false;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", de->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue; /* the thread exited meanwhile */
		while (fgets(line, sizeof(line), f) != NULL) {
			if (strncmp(line, "Name:\tiou-wrk", 13) == 0)
				wrk = true;
			if (wrk && n < max && strncmp(line, "Cpus_allowed_list:", 18) == 0) {
				line[strcspn(line, "\n")] = '\0';
				assert_true(stor_cpu_list_parse(line + 18, masks[n],
				                                STOR_CPU_MASK_WORDS) > 0);
				n++;
			}
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

static char g_warned[512];

static void
warn_keep(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level <= STOR_LOG_WARN)
		snprintf(g_warned, sizeof(g_warned), "%s", msg);
}

/*
 * storage.io.workers.cpus: parsed as a cpuset(7) list; a list naming no
 * CPU the process may use is warned about (the kernel would take it and
 * change nothing); io_uring's workers of an engine configured with one CPU
 * run there only, not on every CPU the process may use (what they inherit
 * without the key).
 */
static void
test_io_workers_cpus(void **state)
{
	struct stor_engine_opts o;
	uint64_t m[STOR_CPU_MASK_WORDS];
	static uint64_t wm[256][STOR_CPU_MASK_WORDS];

	(void)state;
	assert_int_equal(stor_cpu_list_parse("0-3,8", m, STOR_CPU_MASK_WORDS), 5);
	assert_int_equal(m[0], 0x10full);
	assert_int_equal(stor_cpu_list_parse(" 2 , 5-6,5 ", m, STOR_CPU_MASK_WORDS), 3);
	assert_int_equal(m[0], 0x64ull);
	assert_int_equal(stor_cpu_list_parse("1023", m, STOR_CPU_MASK_WORDS), 1);
	assert_int_equal(m[15], 1ull << 63);
	assert_int_equal(stor_cpu_list_parse("64", m, 1), -EINVAL);
	assert_int_equal(stor_cpu_list_parse("1024", m, STOR_CPU_MASK_WORDS), -EINVAL);
	const char *bad[] = {"", " ", "x", "3-1", "1,", ",1", "-1", "1-", "1 2", "0x1", "1;2"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(stor_cpu_list_parse(bad[i], m, STOR_CPU_MASK_WORDS), -EINVAL);

	stor_engine_opts_init(&o);
	assert_string_equal(o.io_workers_cpus, "");
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.workers.cpus", "0-1,3"), 0);
	assert_string_equal(o.io_workers_cpus, "0-1,3");
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.workers.cpus", "1-"), -EINVAL);
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.workers.cpus", "5000"), -EINVAL);
	assert_string_equal(o.io_workers_cpus, "0-1,3");
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.workers.cpus", ""), 0);
	assert_string_equal(o.io_workers_cpus, "");

	/* The last CPU this process may run on; the workers would inherit them all. */
	cpu_set_t mine;
	int last = -1;
	assert_int_equal(sched_getaffinity(0, sizeof(mine), &mine), 0);
	for (int c = 0; c < CPU_SETSIZE && c < (int)STOR_CPU_MASK_WORDS * 64; c++)
		if (CPU_ISSET(c, &mine))
			last = c;
	if (CPU_COUNT(&mine) < 2) {
		print_message("one CPU allowed: a worker's placement cannot be told apart\n");
		skip();
	}
	char list[16];
	snprintf(list, sizeof(list), "%d", last);

	/* Without the key the workers are not placed: they inherit the owner's CPUs. */
	stor_engine_opts_init(&o);
	o.chunk_count = 2;
	o.chunk_bytes = 64 << 10;
	struct stor_engine *ed = stor_engine_create(&o);
	assert_non_null(ed);
	assert_false(stor_engine_io_workers_placed(ed));
	stor_engine_destroy(ed);

	/* A list without a CPU the process may use: the engine starts, and says so. */
	if (!CPU_ISSET(1023, &mine)) {
		stor_engine_opts_init(&o);
		assert_int_equal(stor_engine_opts_set(&o, "storage.io.workers.cpus", "1023"), 0);
		o.chunk_count = 2;
		o.chunk_bytes = 64 << 10;
		o.log_fn = warn_keep;
		g_warned[0] = '\0';
		struct stor_engine *e0 = stor_engine_create(&o);
		assert_non_null(e0);
		assert_non_null(strstr(g_warned, "storage.io.workers.cpus"));
		assert_false(stor_engine_io_workers_placed(e0)); /* they inherit: the reactor's core */
		stor_engine_destroy(e0);
	}

	/*
	 * Through the engine: a log's first append reserves its segment with an
	 * IORING_OP_FALLOCATE, which io_uring always hands to a worker. The
	 * owner thread is pinned to another CPU, as a reactor is to its own
	 * core: the workers go where the list says all the same (the check for
	 * absent CPUs once took the pinned thread's affinity and refused).
	 */
	int first = -1;
	for (int c = 0; c < last && first < 0; c++)
		if (CPU_ISSET(c, &mine))
			first = c;
	cpu_set_t pin;
	CPU_ZERO(&pin);
	CPU_SET(first, &pin);
	assert_int_equal(sched_setaffinity(0, sizeof(pin), &pin), 0);
	char *root = tu_tmpdir("");
	struct stor_log_config cfg;
	struct tu_ack ack = {0};
	uint8_t batch[20000];
	char dir[4096];
	int err = 0;

	assert_non_null(root);
	stor_engine_opts_init(&o);
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.workers.cpus", list), 0);
	o.chunk_count = 4;
	o.chunk_bytes = 64 << 10;
	struct stor_engine *e = stor_engine_create(&o);
	assert_non_null(e);
	assert_int_equal(sched_setaffinity(0, sizeof(mine), &mine), 0);
	assert_true(stor_engine_io_workers_placed(e));
	stor_log_config_init(&cfg);
	cfg.segment_bytes = 1 << 20;
	cfg.roll_ms = -1;
	snprintf(dir, sizeof(dir), "%s/aff", root);
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	size_t n = tu_batch(batch, sizeof(batch), 15, 1000, 1000, 3, NULL);
	assert_int_equal(stor_log_append(log, batch, n, 0, tu_ack_cb, &ack, NULL), 0);
	assert_int_equal(tu_poll_until(e, &ack.done, 1), 0);
	assert_int_equal(ack.rc, 0);
	assert_int_equal(stor_engine_drain(e), 0);

	/*
	 * This engine's workers are alive (they idle for a while before they
	 * exit). Workers of rings destroyed by earlier tests may linger too,
	 * with the process's CPUs: at least one worker must be on the CPU asked
	 * for alone.
	 */
	int nw = io_worker_masks(wm, 256), placed = 0;
	assert_true(nw > 0);
	for (int i = 0; i < nw; i++) {
		bool only_last = true;
		for (unsigned w = 0; w < STOR_CPU_MASK_WORDS; w++) {
			uint64_t want = w == (unsigned)last / 64 ? 1ull << (last % 64) : 0;
			if (wm[i][w] != want)
				only_last = false;
		}
		placed += only_last;
	}
	assert_true(placed >= 1);

	assert_int_equal(stor_log_close(log), 0);
	stor_engine_destroy(e);
	tu_rm_rf(root);
	free(root);
}

#define STEP (64u << 10)

static void
seg_stat(const char *root, struct stat *st)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/pre/00000000000000000000.log", root);
	assert_int_equal(stat(path, st), 0);
}

/* Open @root/pre with segments of 1 MiB, preallocated by @step (0: whole). */
static struct stor_log *
pre_open(struct stor_engine *e, const char *root, uint64_t step, struct tu_logcap *cap)
{
	struct stor_log_config cfg;
	char dir[4096], v[32];
	int err = 0;

	stor_log_config_init(&cfg);
	cfg.segment_bytes = 1 << 20;
	cfg.roll_ms = -1;
	snprintf(v, sizeof(v), "%llu", (unsigned long long)step);
	assert_int_equal(stor_log_config_set(&cfg, "storage.preallocate.bytes", v), 0);
	snprintf(dir, sizeof(dir), "%s/pre", root);
	if (cap != NULL)
		cap->len = 0;
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	return log;
}

static void
test_preallocate_steps(void **state)
{
	struct stor_log_config cfg;
	struct tu_backend *wrap;
	struct tu_logcap *cap = calloc(1, sizeof(*cap));
	struct stor_engine *e = tu_engine(&wrap, STOR_DIRECT_AUTO, 64 << 10, 8, cap);
	char *root = tu_tmpdir("");
	static uint8_t buf[20000];
	size_t bsz = stor_read_buf_size(1 << 20);
	uint8_t *rbuf = aligned_alloc(STOR_BLOCK_SIZE, bsz);
	uint64_t data = 0;
	struct stat st;

	(void)state;
	assert_non_null(e);
	assert_non_null(root);
	stor_log_config_init(&cfg);
	assert_int_equal(cfg.preallocate_bytes, STOR_PREALLOCATE_BYTES_DEFAULT);
	assert_int_equal(stor_log_config_set(&cfg, "storage.preallocate.bytes", "1000"), -EINVAL);
	assert_int_equal(stor_log_config_set(&cfg, "storage.preallocate.bytes", "-4096"), -EINVAL);
	assert_int_equal(stor_log_config_set(&cfg, "storage.preallocate.bytes", "8192"), 0);
	assert_int_equal(cfg.preallocate_bytes, 8192);

	struct stor_log *log = pre_open(e, root, STEP, cap);
	unsigned allocs0 = wrap->allocs;
	int n = 0;
	/* 16 KiB batches up to the segment's end (the next one rolls). */
	for (;;) {
		size_t size = tu_batch(buf, sizeof(buf), 15, 1000 + n, 1000, (unsigned)n, NULL);
		struct tu_ack ack = {0};

		if (data + size > (1 << 20))
			break;
		assert_int_equal(stor_log_append(log, buf, size, 0, tu_ack_cb, &ack, NULL), 0);
		assert_int_equal(tu_poll_until(e, &ack.done, 1), 0);
		assert_int_equal(ack.rc, 0);
		stor_engine_drain(e); /* the reservation queued with it completed too */
		data += size;
		n++;
		seg_stat(root, &st);
		uint64_t want_min = data + STEP / 2 < (1 << 20) ? data + STEP / 2 : (1 << 20);
		assert_true((uint64_t)st.st_size >= want_min);
		assert_true((uint64_t)st.st_size <= data + STEP + STOR_BLOCK_SIZE);
		assert_true((uint64_t)st.st_size <= (1 << 20));
		/* Reserved, not a hole: the blocks are allocated. */
		assert_true((uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size - STOR_BLOCK_SIZE);
	}
	assert_true(n >= 60);
	/* About one reservation per half step of data, never one per append. */
	unsigned allocs = wrap->allocs - allocs0;
	assert_true(allocs >= (1u << 20) / STEP);
	assert_true(allocs <= 2 * (1u << 20) / STEP + 1);
	assert_true(allocs < (unsigned)n / 2);

	/* A clean close trims the reservation; everything reads back. */
	assert_int_equal(stor_log_close(log), 0);
	seg_stat(root, &st);
	assert_int_equal((uint64_t)st.st_size, data);
	log = pre_open(e, root, STEP, cap);
	assert_int_equal(stor_log_end_offset(log), 15 * n);
	struct stor_read rd = {.buf = rbuf, .buf_size = bsz};
	assert_int_equal(tu_read(e, log, &rd, 0, 1 << 20), 0);
	assert_int_equal(rd.len, data);
	assert_int_equal(rd.next_offset, 15 * n);
	stor_read_release(&rd);

	/* A crash with a reservation ahead of the data: recovery cuts back to the data. */
	size_t size = tu_batch(buf, sizeof(buf), 15, 5000, 1000, 77, NULL);
	struct tu_ack ack = {0};
	assert_int_equal(stor_log_roll(log), 0);
	assert_int_equal(stor_log_append(log, buf, size, 0, tu_ack_cb, &ack, NULL), 0);
	assert_int_equal(tu_poll_until(e, &ack.done, 1), 0);
	assert_int_equal(ack.rc, 0);
	stor_engine_drain(e);
	int64_t leo = stor_log_end_offset(log);
	stor_log_abandon(log);
	log = pre_open(e, root, STEP, cap);
	assert_int_equal(stor_log_end_offset(log), leo);
	assert_int_equal(tu_read(e, log, &rd, leo - 15, 1 << 20), 0);
	assert_int_equal(rd.len, size);
	kp_batch_set_base_offset(buf, leo - 15);
	assert_memory_equal(rd.data, buf, size);
	stor_read_release(&rd);
	assert_int_equal(stor_log_close(log), 0);
	tu_rm_rf(root);

	/* Without the option: the whole segment at the first append, once. */
	assert_int_equal(mkdir(root, 0700), 0);
	log = pre_open(e, root, 0, cap);
	allocs0 = wrap->allocs;
	for (int i = 0; i < 4; i++) {
		size = tu_batch(buf, sizeof(buf), 15, 1000 + i, 1000, (unsigned)i, NULL);
		ack = (struct tu_ack){0};
		assert_int_equal(stor_log_append(log, buf, size, 0, tu_ack_cb, &ack, NULL), 0);
		assert_int_equal(tu_poll_until(e, &ack.done, 1), 0);
		stor_engine_drain(e);
	}
	assert_int_equal(wrap->allocs - allocs0, 1);
	seg_stat(root, &st);
	assert_int_equal((uint64_t)st.st_size, 1 << 20);
	assert_int_equal(stor_log_close(log), 0);

	stor_engine_destroy(e);
	tu_rm_rf(root);
	free(root);
	free(rbuf);
	free(cap);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_flush_ms_among_many),
	        cmocka_unit_test(test_files_hold_no_fds),
	        cmocka_unit_test(test_close_many),
	        cmocka_unit_test(test_io_workers),
	        cmocka_unit_test(test_io_workers_cpus),
	        cmocka_unit_test(test_preallocate_steps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
