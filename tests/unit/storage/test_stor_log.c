/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the partition log: append/read round trips through the
 * tail cache and from disk (O_DIRECT on the build directory's file system,
 * buffered on /dev/shm and through the automatic fallback), group commit
 * and the flush policy, clean restart, torn and garbled tails at many cut
 * points, indexes and time lookups, roll, retention (on disk the deleted
 * files' names go at once, their last descriptors close off the log's
 * thread), DeleteRecords and the leader-epoch checkpoint; a recovery scan
 * longer than its read-ahead windows, its headers reused by the first walk,
 * an I/O error in a read ahead (no truncation).
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "stor_test_util.h"

#define MAXB 600

/* What the test appended: the reference every read is compared with. */
struct model {
	uint8_t *bytes[MAXB];
	size_t len[MAXB];
	int64_t base[MAXB];
	int64_t last[MAXB];
	int64_t max_ts[MAXB];
	int n;
};

static void
model_free(struct model *m)
{
	for (int i = 0; i < m->n; i++)
		free(m->bytes[i]);
	m->n = 0;
}

static struct tu_ack acks[MAXB];

/* Append batch i of a deterministic sequence; records it in @m. */
static int
append_one(struct stor_log *log, struct model *m, int nrec, size_t vlen, int64_t ts, unsigned flags)
{
	uint8_t *buf = malloc(1 << 17);
	size_t size = tu_batch(buf, 1 << 17, nrec, ts, vlen, (unsigned)m->n, NULL);
	int64_t base = -1;
	int i = m->n;

	assert_true(size > 0);
	memset(&acks[i], 0, sizeof(acks[i]));
	int rc = stor_log_append(log, buf, size, flags, tu_ack_cb, &acks[i], &base);
	if (rc != 0) {
		free(buf);
		return rc;
	}
	kp_batch_set_base_offset(buf, base);
	m->bytes[i] = buf;
	m->len[i] = size;
	m->base[i] = base;
	m->last[i] = base + nrec - 1;
	m->max_ts[i] = ts + nrec - 1;
	m->n++;
	return 0;
}

static void
wait_acks(struct stor_engine *e, const struct model *m)
{
	for (int i = 0; i < m->n; i++) {
		assert_int_equal(tu_poll_until(e, &acks[i].done, 1), 0);
		assert_int_equal(acks[i].rc, 0);
		assert_int_equal(acks[i].base, m->base[i]);
	}
}

/* Every batch from @from reads back byte for byte, one by one and in bulk. */
static void
verify(struct stor_engine *e, struct stor_log *log, const struct model *m, int from)
{
	size_t bsz = stor_read_buf_size(256 << 10);
	uint8_t *buf = aligned_alloc(STOR_BLOCK_SIZE, bsz);
	struct stor_read rd = {.buf = buf, .buf_size = bsz};

	for (int i = from; i < m->n; i++) {
		/* Any offset inside the batch returns the whole batch. */
		int64_t off = m->base[i] + (m->last[i] - m->base[i]) / 2;
		int rc = tu_read(e, log, &rd, off, 1);
		assert_int_equal(rc, 0);
		assert_int_equal(rd.len, m->len[i]);
		assert_memory_equal(rd.data, m->bytes[i], m->len[i]);
		assert_int_equal(rd.next_offset, m->last[i] + 1);
		stor_read_release(&rd);
	}
	/* Bulk: consecutive batches, whole ones only, within max_bytes. */
	int i = from;
	while (i < m->n) {
		int rc = tu_read(e, log, &rd, m->base[i], 64 << 10);
		assert_int_equal(rc, 0);
		assert_true(rd.len > 0);
		assert_true(rd.len <= (64 << 10) || rd.len == m->len[i]);
		size_t pos = 0;
		while (pos < rd.len) {
			assert_true(i < m->n);
			assert_memory_equal(rd.data + pos, m->bytes[i], m->len[i]);
			pos += m->len[i];
			i++;
		}
		assert_int_equal(pos, rd.len);
		stor_read_release(&rd);
	}
	free(buf);
}

static void
cfg_small(struct stor_log_config *cfg)
{
	stor_log_config_init(cfg);
	cfg->segment_bytes = 256 << 10;
	cfg->index_interval_bytes = 1024;
	cfg->roll_ms = -1;
}

/* ---- round trips ----------------------------------------------------------- */

static void
roundtrip(const char *base, enum stor_direct_mode mode, int expect_direct)
{
	struct tu_logcap cap = {0};
	struct tu_backend *wrap;
	struct stor_engine *e = tu_engine(&wrap, mode, 64 << 10, 16, &cap);
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir = tu_tmpdir(base);
	int err = 0;

	assert_non_null(e);
	assert_non_null(dir);
	cfg_small(&cfg);
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	if (expect_direct >= 0)
		assert_int_equal(stor_log_is_direct(log), expect_direct);
	assert_int_equal(stor_log_end_offset(log), 0);

	/* 300 batches of 1..20 records, 10..2000-byte values: several segments and chunk turns. */
	for (int i = 0; i < 300; i++) {
		int rc;
		while ((rc = append_one(log, &m, 1 + i % 20, 10 + (size_t)(i * 37) % 2000,
		                        1000 + i * 100, 0)) == -EAGAIN)
			stor_engine_poll(e);
		assert_int_equal(rc, 0);
		if (i % 7 == 0)
			stor_engine_poll(e);
	}
	wait_acks(e, &m);
	for (int i = 1; i < m.n; i++)
		assert_int_equal(m.base[i], m.last[i - 1] + 1);
	assert_int_equal(stor_log_end_offset(log), m.last[m.n - 1] + 1);
	assert_int_equal(stor_log_written_offset(log), stor_log_end_offset(log));
	assert_true(stor_log_segment_count(log) > 1);
	assert_int_equal(wrap->misaligned, 0);
	if (expect_direct == 0) {
		uint64_t appended = 0;

		/* Buffered: every byte written once, no block rewritten, no padding. */
		for (int i = 0; i < m.n; i++)
			appended += m.len[i];
		assert_int_equal(wrap->bytes, appended);
	}
	/* Rolls (and the first append after open) preallocate the segment through
	 * the ring (synchronously only when the previous fallocate is in flight). */
	assert_true(wrap->allocs > 0 && wrap->allocs <= stor_log_segment_count(log));
	verify(e, log, &m, 0);

	/* Reopen after a clean close: from disk only, and appends continue. */
	assert_int_equal(stor_log_close(log), 0);
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_non_null(strstr(cap.text, "clean shutdown"));
	assert_int_equal(stor_log_end_offset(log), m.last[m.n - 1] + 1);
	verify(e, log, &m, 0);
	int first_new = m.n;
	for (int i = 0; i < 20; i++)
		assert_int_equal(append_one(log, &m, 3, 100, 50000 + i, 0), 0);
	wait_acks(e, &m);
	assert_int_equal(m.base[first_new], m.last[first_new - 1] + 1);
	verify(e, log, &m, 0);
	assert_int_equal(stor_log_close(log), 0);

	stor_engine_destroy(e);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);
}

static void
test_roundtrip_disk(void **state)
{
	(void)state;
	/* The build directory's file system: O_DIRECT where it allows it. */
	roundtrip("", STOR_DIRECT_AUTO, -1);
}

static void
test_roundtrip_tmpfs_buffered(void **state)
{
	(void)state;
	if (access("/dev/shm", W_OK) != 0)
		skip();
	roundtrip("/dev/shm", STOR_DIRECT_OFF, 0);
}

/* A file system that refuses O_DIRECT: the log falls back to buffered and says so. */
static void
test_direct_fallback(void **state)
{
	struct tu_logcap cap = {0};
	struct tu_backend *wrap;
	struct stor_engine *e = tu_engine(&wrap, STOR_DIRECT_AUTO, 64 << 10, 8, &cap);
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir = tu_tmpdir("/dev/shm");
	int err = 0;

	(void)state;
	wrap->refuse_direct = 1;
	cfg_small(&cfg);
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_int_equal(stor_log_is_direct(log), 0);
	assert_non_null(strstr(cap.text, "O_DIRECT not supported"));
	for (int i = 0; i < 30; i++)
		assert_int_equal(append_one(log, &m, 2, 300, i, 0), 0);
	wait_acks(e, &m);
	verify(e, log, &m, 0);
	assert_int_equal(stor_log_close(log), 0);

	/* STOR_DIRECT_ON refuses instead of falling back. */
	stor_engine_destroy(e);
	e = tu_engine(&wrap, STOR_DIRECT_ON, 64 << 10, 8, &cap);
	wrap->refuse_direct = 1;
	assert_null(stor_log_open(e, dir, &cfg, &err));
	assert_int_equal(err, -EINVAL);
	stor_engine_destroy(e);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);
}

/* ---- group commit, durable flag, flush policy ------------------------------ */

static void
test_group_commit_and_flush(void **state)
{
	struct tu_backend *wrap;
	struct stor_engine *e = tu_engine(&wrap, STOR_DIRECT_AUTO, 256 << 10, 32, NULL);
	struct stor_log_config cfg;
	struct stor_log *logs[8];
	struct model m[8];
	char *dir = tu_tmpdir("");
	char sub[4200];
	int err = 0;

	(void)state;
	memset(m, 0, sizeof(m));
	cfg_small(&cfg);
	cfg.segment_bytes = 16 << 20;
	for (int p = 0; p < 8; p++) {
		snprintf(sub, sizeof(sub), "%s/t-%d", dir, p);
		logs[p] = stor_log_open(e, sub, &cfg, &err);
		assert_non_null(logs[p]);
	}
	/* Default policy: no fdatasync at all while appending. */
	unsigned syncs0 = wrap->syncs, submits0 = wrap->submits, allocs0 = wrap->allocs;
	struct tu_ack a[8][4];
	memset(a, 0, sizeof(a));
	uint8_t *buf = malloc(1 << 16);
	size_t size = tu_batch(buf, 1 << 16, 16, 1, 1000, 1, NULL);
	for (int k = 0; k < 4; k++)
		for (int p = 0; p < 8; p++)
			assert_int_equal(
			        stor_log_append(logs[p], buf, size, 0, tu_ack_cb, &a[p][k], NULL),
			        0);
	/*
	 * One tick: the 32 appends of 8 partitions become 8 writes in one
	 * submission, beside the 8 preallocations the logs' first appends queued
	 * (deferred from open: an idle log reserves no disk).
	 */
	unsigned writes0 = wrap->writes;
	stor_engine_poll(e);
	assert_int_equal(wrap->submits - submits0, 1);
	assert_int_equal(wrap->writes - writes0, 8);
	assert_int_equal(wrap->allocs - allocs0, 8);
	assert_int_equal(wrap->max_batch, 16);
	for (int p = 0; p < 8; p++)
		assert_int_equal(tu_poll_until(e, &a[p][3].done, 1), 0);
	for (int p = 0; p < 8; p++)
		for (int k = 0; k < 4; k++)
			assert_int_equal(a[p][k].base, k * 16);
	assert_int_equal(wrap->syncs, syncs0);

	/* Durable flag: the completion comes after a linked fdatasync. */
	struct tu_ack d = {0};
	assert_int_equal(
	        stor_log_append(logs[0], buf, size, STOR_APPEND_DURABLE, tu_ack_cb, &d, NULL), 0);
	assert_int_equal(tu_poll_until(e, &d.done, 1), 0);
	assert_int_equal(wrap->syncs, syncs0 + 1);
	for (int p = 0; p < 8; p++)
		assert_int_equal(stor_log_close(logs[p]), 0);

	/* flush.messages=64 with 16-record batches: a sync about every 4 batches. */
	stor_log_config_set(&cfg, "flush.messages", "64");
	logs[0] = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(logs[0]);
	syncs0 = wrap->syncs;
	for (int k = 0; k < 40; k++) {
		struct tu_ack one = {0};
		assert_int_equal(stor_log_append(logs[0], buf, size, 0, tu_ack_cb, &one, NULL), 0);
		assert_int_equal(tu_poll_until(e, &one.done, 1), 0);
	}
	unsigned n = wrap->syncs - syncs0;
	assert_true(n >= 8 && n <= 11);
	assert_int_equal(stor_log_close(logs[0]), 0);

	free(buf);
	stor_engine_destroy(e);
	tu_rm_rf(dir);
	free(dir);
}

/* ---- recovery ----------------------------------------------------------------- */

static uint8_t *
slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;

	assert_true(fd >= 0);
	fstat(fd, &st);
	uint8_t *b = malloc((size_t)st.st_size + 1);
	assert_int_equal(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static void
spit(const char *path, const uint8_t *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	close(fd);
}

/*
 * One damaged copy: the segment cut at @cut (and padded with @pad zero
 * bytes, as preallocation leaves it) or with byte @flip inverted. Every
 * batch wholly before the damage must come back, nothing after it, and
 * appends must continue at the right offset.
 */
static void
check_damage(struct stor_engine *e, const struct model *m, const uint8_t *seg, size_t seg_len,
             size_t cut, size_t pad, long flip)
{
	struct stor_log_config cfg;
	char *dir = tu_tmpdir("");
	char path[4300];
	int err = 0;

	cfg_small(&cfg);
	cfg.segment_bytes = 1 << 20;
	uint8_t *copy = calloc(1, seg_len + pad + 1);
	memcpy(copy, seg, cut);
	if (flip >= 0)
		copy[flip] ^= 0x5a;
	snprintf(path, sizeof(path), "%s/%020d.log", dir, 0);
	spit(path, copy, cut + pad);
	free(copy);

	/* Expected survivors: batches ending at or before the damage. */
	size_t damage = flip >= 0 ? (size_t)flip : cut;
	/* Zero padding only damages where the original byte was not zero already. */
	while (flip < 0 && pad > 0 && damage < seg_len && damage < cut + pad && seg[damage] == 0)
		damage++;
	int keep = 0;
	size_t pos = 0;
	while (keep < m->n && pos + m->len[keep] <= damage) {
		pos += m->len[keep];
		keep++;
	}

	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	int64_t want_end = keep ? m->last[keep - 1] + 1 : 0;
	if (stor_log_end_offset(log) != want_end)
		print_error("cut %zu pad %zu flip %ld keep %d\n", cut, pad, flip, keep);
	assert_int_equal(stor_log_end_offset(log), want_end);
	struct model sub = *m;
	sub.n = keep;
	verify(e, log, &sub, 0);
	/* Nothing after the damage is returned. */
	size_t bsz = stor_read_buf_size(4096);
	uint8_t *buf = aligned_alloc(STOR_BLOCK_SIZE, bsz);
	struct stor_read rd = {.buf = buf, .buf_size = bsz};
	assert_int_equal(tu_read(e, log, &rd, want_end, 4096), 0);
	assert_int_equal(rd.len, 0);
	stor_read_release(&rd);
	if (want_end < m->last[m->n - 1])
		assert_int_equal(tu_read(e, log, &rd, want_end + 1, 4096), -ENXIO);
	free(buf);
	/* Appends continue right after the survivors. */
	uint8_t b[4096];
	size_t size = tu_batch(b, sizeof(b), 2, 7, 50, 99, NULL);
	struct tu_ack a = {0};
	int64_t base;
	assert_int_equal(stor_log_append(log, b, size, 0, tu_ack_cb, &a, &base), 0);
	assert_int_equal(base, want_end);
	assert_int_equal(tu_poll_until(e, &a.done, 1), 0);
	stor_log_abandon(log); /* crash again: the new batch must be found by the next scan */
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_int_equal(stor_log_end_offset(log), want_end + 2);
	assert_int_equal(stor_log_close(log), 0);
	tu_rm_rf(dir);
	free(dir);
}

static void
test_recovery_torn_tail(void **state)
{
	struct tu_logcap cap = {0};
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 64 << 10, 16, &cap);
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir = tu_tmpdir("");
	char path[4300];
	int err = 0;

	(void)state;
	cfg_small(&cfg);
	cfg.segment_bytes = 1 << 20;
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	for (int i = 0; i < 40; i++)
		assert_int_equal(append_one(log, &m, 1 + i % 5, 50 + (size_t)i * 13, 100 + i, 0),
		                 0);
	wait_acks(e, &m);
	/* A crash: no marker, the preallocated file still 1 MiB long. */
	stor_log_abandon(log);
	snprintf(path, sizeof(path), "%s/%020d.log", dir, 0);
	size_t len;
	uint8_t *seg = slurp(path, &len);
	assert_int_equal(len, 1 << 20);
	size_t data = 0;
	for (int i = 0; i < m.n; i++)
		data += m.len[i];
	for (size_t i = data; i < len; i++)
		assert_int_equal(seg[i], 0); /* padding is zeros */

	/* Reopen the crashed log as is: everything is there (scan, not marker). */
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_null(strstr(cap.text, "clean shutdown"));
	assert_int_equal(stor_log_end_offset(log), m.last[m.n - 1] + 1);
	verify(e, log, &m, 0);
	stor_log_abandon(log);

	/* Cuts at every batch boundary, inside headers, inside records; with and without zeros. */
	size_t pos = 0;
	for (int i = 0; i < m.n; i++) {
		size_t cuts[] = {pos,
		                 pos + 5,
		                 pos + 12,
		                 pos + 40,
		                 pos + 61,
		                 pos + m.len[i] / 2,
		                 pos + m.len[i] - 1};
		for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
			if (i % 3 != 0 && k % 2 == 1)
				continue; /* keep the run quick: every cut kind, not for every batch
				           */
			check_damage(e, &m, seg, data, cuts[k], k % 2 ? 0 : 8192, -1);
		}
		pos += m.len[i];
	}
	/* Garbled bytes: in the header (CRC-covered), in the records, in the length. */
	pos = 0;
	for (int i = 0; i < m.n; i += 4) {
		check_damage(e, &m, seg, data, data, 4096, (long)(pos + 30));
		check_damage(e, &m, seg, data, data, 4096, (long)(pos + m.len[i] - 3));
		check_damage(e, &m, seg, data, data, 4096, (long)(pos + 10));
		pos += m.len[i] + m.len[i + 1] + m.len[i + 2] + m.len[i + 3];
	}
	free(seg);
	stor_engine_destroy(e);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);
}

/* Indexes of sealed segments missing or garbled: rebuilt, lookups unchanged. */
static void
test_index_rebuild(void **state)
{
	struct tu_logcap cap = {0};
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 64 << 10, 16, &cap);
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir = tu_tmpdir("");
	char path[4300];
	int err = 0;

	(void)state;
	cfg_small(&cfg);
	cfg.segment_bytes = 64 << 10;
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	for (int i = 0; i < 120; i++)
		assert_int_equal(append_one(log, &m, 4, 300, 10000 + i * 10, 0), 0);
	wait_acks(e, &m);
	unsigned nseg = stor_log_segment_count(log);
	assert_true(nseg >= 3);
	int64_t b1 = stor_log_segment_base(log, 1), b0 = stor_log_segment_base(log, 0);
	assert_int_equal(stor_log_close(log), 0);

	snprintf(path, sizeof(path), "%s/%020lld.index", dir, (long long)b0);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/%020lld.index", dir, (long long)b1);
	size_t len;
	uint8_t *ix = slurp(path, &len);
	assert_true(len >= 16);
	ix[4] ^= 0xff; /* position of the first entry: out of order or past the file */
	spit(path, ix, len);
	free(ix);
	snprintf(path, sizeof(path), "%s/%020lld.timeindex", dir, (long long)b1);
	spit(path, (const uint8_t *)"garbage", 7);

	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_non_null(strstr(cap.text, "rebuilding"));
	verify(e, log, &m, 0);
	for (int i = 0; i < m.n; i += 5) {
		int64_t off, ts;
		assert_int_equal(stor_log_offset_for_time(log, m.max_ts[i] - 2, &off, &ts), 0);
		assert_int_equal(off, m.base[i] + 1);
		assert_int_equal(ts, m.max_ts[i] - 2);
	}
	assert_int_equal(stor_log_close(log), 0);
	/* The rebuilt files were written back. */
	snprintf(path, sizeof(path), "%s/%020lld.index", dir, (long long)b0);
	assert_int_equal(access(path, R_OK), 0);
	stor_engine_destroy(e);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);
}

/*
 * A shutdown writes the active segment's index files in place, then syncs,
 * then the marker: a crash between them leaves index files half rewritten
 * beside a marker made stale at open. Simulated: a clean close, a reopen
 * (the marker made stale), appends, the active index files overwritten with
 * garbage, a crash. The next open must scan the active segment (not load
 * those files) and read everything back; a close then a clean open again.
 */
static void
test_stale_marker_index_not_trusted(void **state)
{
	struct tu_logcap cap = {0};
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 64 << 10, 16, &cap);
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir = tu_tmpdir("");
	char path[4300];
	int err = 0;

	(void)state;
	cfg_small(&cfg);
	cfg.segment_bytes = 1 << 20;
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	for (int i = 0; i < 40; i++)
		assert_int_equal(append_one(log, &m, 4, 300, 10000 + i * 10, 0), 0);
	wait_acks(e, &m);
	int64_t base = stor_log_segment_base(log, stor_log_segment_count(log) - 1);
	assert_int_equal(stor_log_close(log), 0);
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_non_null(strstr(cap.text, "clean shutdown"));
	for (int i = 40; i < 60; i++)
		assert_int_equal(append_one(log, &m, 4, 300, 10000 + i * 10, 0), 0);
	wait_acks(e, &m);
	assert_int_equal(stor_log_segment_base(log, stor_log_segment_count(log) - 1), base);
	/* What a torn in-place rewrite could leave. */
	snprintf(path, sizeof(path), "%s/%020lld.index", dir, (long long)base);
	spit(path, (const uint8_t *)"\0\0\0\x07\0\0\x10\0garbage!", 16);
	snprintf(path, sizeof(path), "%s/%020lld.timeindex", dir, (long long)base);
	spit(path, (const uint8_t *)"garbage", 7);
	stor_log_abandon(log);
	memset(&cap, 0, sizeof(cap));
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_null(strstr(cap.text, "clean shutdown"));
	verify(e, log, &m, 0);
	assert_int_equal(stor_log_end_offset(log), m.base[m.n - 1] + 4);
	for (int i = 0; i < m.n; i += 7) {
		int64_t off, ts;
		assert_int_equal(stor_log_offset_for_time(log, m.max_ts[i] - 2, &off, &ts), 0);
		assert_int_equal(off, m.base[i] + 1);
	}
	assert_int_equal(stor_log_close(log), 0);
	memset(&cap, 0, sizeof(cap));
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_non_null(strstr(cap.text, "clean shutdown"));
	verify(e, log, &m, 0);
	assert_int_equal(stor_log_close(log), 0);
	stor_engine_destroy(e);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);
}

/* ---- time lookups, roll, retention ------------------------------------------- */

static void
test_time_lookup(void **state)
{
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 64 << 10, 16, NULL);
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir = tu_tmpdir("");
	int err = 0;

	(void)state;
	cfg_small(&cfg);
	cfg.segment_bytes = 32 << 10;
	cfg.index_interval_bytes = 2000;
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	/* Timestamps 1000 + 10 i .. + 4 within batch i: gaps between batches. */
	for (int i = 0; i < 150; i++)
		assert_int_equal(append_one(log, &m, 5, 200, 1000 + i * 10, 0), 0);
	wait_acks(e, &m);
	assert_true(stor_log_segment_count(log) > 3);

	for (int pass = 0; pass < 2; pass++) {
		for (int64_t t = 990; t < 1000 + 150 * 10 + 5; t += 3) {
			/* Reference: the first record with timestamp >= t. */
			int64_t want = -1, want_ts = -1;
			for (int i = 0; i < m.n && want < 0; i++)
				for (int r = 0; r < 5; r++)
					if (1000 + i * 10 + r >= t) {
						want = m.base[i] + r;
						want_ts = 1000 + i * 10 + r;
						break;
					}
			int64_t off, ts;
			assert_int_equal(stor_log_offset_for_time(log, t, &off, &ts), 0);
			assert_int_equal(off, want);
			if (want >= 0)
				assert_int_equal(ts, want_ts);
		}
		int64_t off, ts;
		assert_int_equal(stor_log_offset_for_time(log, STOR_TS_LATEST, &off, NULL), 0);
		assert_int_equal(off, stor_log_end_offset(log));
		assert_int_equal(stor_log_offset_for_time(log, STOR_TS_EARLIEST, &off, NULL), 0);
		assert_int_equal(off, 0);
		assert_int_equal(stor_log_offset_for_time(log, STOR_TS_MAX, &off, &ts), 0);
		assert_int_equal(ts, m.max_ts[m.n - 1]);
		assert_int_equal(off, m.last[m.n - 1]);
		/* Second pass after a clean restart: indexes from the files. */
		assert_int_equal(stor_log_close(log), 0);
		log = stor_log_open(e, dir, &cfg, &err);
		assert_non_null(log);
	}
	assert_int_equal(stor_log_close(log), 0);
	stor_engine_destroy(e);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);
}

static int
count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name), s = strlen(suffix);
		if (l > s && strcmp(de->d_name + l - s, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* The message.* keys the broker checks produced batches against, and the topic key table. */
static void
test_config_message_keys(void **state)
{
	struct stor_log_config cfg;
	char v[64];
	int k;

	(void)state;
	stor_log_config_init(&cfg);
	assert_int_equal(cfg.max_message_bytes, 1048588);
	assert_false(cfg.log_append_time);
	assert_int_equal(stor_log_config_ts_before(&cfg), INT64_MAX);
	assert_int_equal(stor_log_config_ts_after(&cfg), INT64_MAX);
	/* Broker names and topic names. */
	assert_int_equal(stor_log_config_set(&cfg, "message.max.bytes", "5000"), 0);
	assert_int_equal(cfg.max_message_bytes, 5000);
	assert_int_equal(stor_log_config_set(&cfg, "max.message.bytes", "7000"), 0);
	assert_int_equal(cfg.max_message_bytes, 7000);
	assert_int_equal(stor_log_config_set(&cfg, "max.message.bytes", "-1"), -EINVAL);
	assert_int_equal(stor_log_config_set(&cfg, "log.message.timestamp.type", "LogAppendTime"),
	                 0);
	assert_true(cfg.log_append_time);
	assert_int_equal(stor_log_config_set(&cfg, "message.timestamp.type", "CreateTime"), 0);
	assert_false(cfg.log_append_time);
	assert_int_equal(stor_log_config_set(&cfg, "message.timestamp.type", "createtime"), -EINVAL);
	/* difference.max.ms fills in where before/after are unset (Kafka 3.6+). */
	assert_int_equal(stor_log_config_set(&cfg, "message.timestamp.difference.max.ms", "500"), 0);
	assert_int_equal(stor_log_config_ts_before(&cfg), 500);
	assert_int_equal(stor_log_config_ts_after(&cfg), 500);
	assert_int_equal(stor_log_config_set(&cfg, "log.message.timestamp.after.max.ms", "900"), 0);
	assert_int_equal(stor_log_config_ts_before(&cfg), 500);
	assert_int_equal(stor_log_config_ts_after(&cfg), 900);
	assert_int_equal(stor_log_config_set(&cfg, "message.timestamp.before.max.ms", "-1"),
	                 -EINVAL);
	assert_int_equal(stor_log_config_set(&cfg, "min.insync.replicas", "0"), -EINVAL);
	assert_int_equal(stor_log_config_set(&cfg, "min.insync.replicas", "2"), 0);
	/* The table: every key found, read back as set. */
	assert_int_equal(stor_topic_keys_n, STOR_TOPIC_KEYS_MAX);
	for (unsigned i = 0; i < stor_topic_keys_n; i++)
		assert_int_equal(stor_topic_key_find(stor_topic_keys[i].name,
		                                     strlen(stor_topic_keys[i].name)), (int)i);
	assert_int_equal(stor_topic_key_find("message.max.bytes", 17), -1); /* broker name */
	assert_int_equal(stor_topic_key_find("segment.bytesX", 13), 0);      /* by length */
	k = stor_topic_key_find("max.message.bytes", 17);
	stor_log_config_get(&cfg, (unsigned)k, v, sizeof(v));
	assert_string_equal(v, "7000");
	k = stor_topic_key_find("message.timestamp.type", 22);
	stor_log_config_get(&cfg, (unsigned)k, v, sizeof(v));
	assert_string_equal(v, "CreateTime");
	k = stor_topic_key_find("min.insync.replicas", 19);
	stor_log_config_get(&cfg, (unsigned)k, v, sizeof(v));
	assert_string_equal(v, "2");
	k = stor_topic_key_find("message.timestamp.after.max.ms", 30);
	assert_int_equal(stor_topic_keys[k].type, STOR_CFG_LONG);
	stor_log_config_get(&cfg, (unsigned)k, v, sizeof(v));
	assert_string_equal(v, "900");
	k = stor_topic_key_find("cleanup.policy", 14);
	stor_log_config_get(&cfg, (unsigned)k, v, sizeof(v));
	assert_string_equal(v, "delete");
	/* APPEND / SUBTRACT: from the static default when unset, each value once. */
	assert_int_equal(stor_topic_list_op((unsigned)k, NULL, "compact,delete", 14, true, v,
	                                    sizeof(v)), 0);
	assert_string_equal(v, "delete,compact");
	assert_int_equal(stor_topic_list_op((unsigned)k, "delete,compact", "delete", 6, false, v,
	                                    sizeof(v)), 0);
	assert_string_equal(v, "compact");
	assert_int_equal(stor_topic_list_op((unsigned)k, "compact", "compact", 7, false, v,
	                                    sizeof(v)), -EINVAL);
	assert_int_equal(stor_topic_list_op((unsigned)k, "compact", "delete", 6, true, v, 10),
	                 -ENOBUFS);
	k = stor_topic_key_find("retention.ms", 12);
	assert_int_equal(stor_topic_list_op((unsigned)k, NULL, "5", 1, true, v, sizeof(v)), -EINVAL);
}

static void
test_roll_and_retention(void **state)
{
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 64 << 10, 16, NULL);
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir = tu_tmpdir("");
	int err = 0;

	(void)state;
	cfg_small(&cfg);
	assert_int_equal(stor_log_config_set(&cfg, "log.segment.bytes", "20000"), 0);
	assert_int_equal(stor_log_config_set(&cfg, "log.retention.hours", "1"), 0);
	assert_int_equal(cfg.retention_ms, 3600000);
	assert_int_equal(stor_log_config_set(&cfg, "bogus.key", "1"), -ENOENT);
	assert_false(cfg.fsync_acks_all);
	assert_int_equal(stor_log_config_set(&cfg, "storage.fsync.acks.all", "true"), 0);
	assert_true(cfg.fsync_acks_all);
	assert_int_equal(stor_log_config_set(&cfg, "log.flush.interval.messages", "0"), -EINVAL);
	assert_int_equal(stor_log_config_set(&cfg, "cleanup.policy", "compact,delete"), 0);
	assert_int_equal(cfg.cleanup_policy, STOR_CLEANUP_COMPACT | STOR_CLEANUP_DELETE);
	assert_int_equal(stor_log_config_set(&cfg, "cleanup.policy", "delete"), 0);
	assert_int_equal(stor_log_config_set(&cfg, "segment.bytes", "x"), -EINVAL);
	/* Deletion itself (a spare kept instead is test_segment_recycle's). */
	assert_int_equal(stor_log_config_set(&cfg, "storage.segment.recycle", "0"), 0);
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	int64_t now = 10 * 3600 * 1000;
	/* Old batches (5 h ago) then recent ones. */
	for (int i = 0; i < 100; i++)
		assert_int_equal(
		        append_one(log, &m, 4, 400, now - (i < 60 ? 5 : 0) * 3600000 + i, 0), 0);
	wait_acks(e, &m);
	/* Roll by size: each segment within 20000 bytes, bases are batch bases. */
	unsigned nseg = stor_log_segment_count(log);
	assert_true(nseg >= 5);
	for (unsigned s = 0; s < nseg; s++) {
		int64_t b = stor_log_segment_base(log, s);
		int found = 0;
		for (int i = 0; i < m.n; i++)
			found |= m.base[i] == b;
		assert_true(found);
	}
	assert_int_equal(count_files(dir, ".log"), (int)nseg);

	/* Time: every segment holding only old batches goes, none with a recent one. */
	struct stor_engine_stats st0, st1;
	struct statfs sf;
	stor_engine_stats(e, &st0);
	int del = stor_log_retention_run(log, now, 0);
	assert_true(del > 0);
	assert_int_equal(stor_log_segment_count(log), nseg - (unsigned)del);
	assert_int_equal(count_files(dir, ".log"), (int)(nseg - (unsigned)del)); /* names: at once */
	/* On disk each deleted file's last descriptor closes off this thread (its blocks). */
	stor_engine_stats(e, &st1);
	assert_int_equal(statfs(dir, &sf), 0);
	if (sf.f_type != TMPFS_MAGIC && sf.f_type != RAMFS_MAGIC)
		assert_int_equal(st1.async_closes - st0.async_closes, (uint64_t)del);
	int64_t start = stor_log_start_offset(log);
	assert_int_equal(start, stor_log_segment_base(log, 0));
	assert_true(start <= m.base[60]);                        /* the first recent batch stays */
	assert_true(stor_log_segment_base(log, 1) > m.last[59]); /* no old-only segment stays */
	assert_int_equal(stor_log_retention_run(log, now, 0), 0);
	assert_int_equal(stor_log_close(log), 0);

	/* Size: Kafka's rule leaves less than retention.bytes + one segment. */
	assert_int_equal(stor_log_config_set(&cfg, "retention.bytes", "30000"), 0);
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	/* One at a time when asked (the broker's reactor), the rest at the next calls. */
	nseg = stor_log_segment_count(log);
	assert_int_equal(stor_log_retention_run(log, now, 1), 1);
	assert_int_equal(stor_log_segment_count(log), nseg - 1);
	del = stor_log_retention_run(log, now, 0);
	assert_true(del >= 0);
	assert_true(stor_log_size_bytes(log) < 30000 + 20000);
	assert_true(stor_log_size_bytes(log) >= 30000);
	assert_int_equal(count_files(dir, ".log"), (int)stor_log_segment_count(log));
	start = stor_log_start_offset(log);
	size_t bsz = stor_read_buf_size(4096);
	uint8_t *buf = aligned_alloc(STOR_BLOCK_SIZE, bsz);
	struct stor_read rd = {.buf = buf, .buf_size = bsz};
	if (start > 0)
		assert_int_equal(tu_read(e, log, &rd, start - 1, 4096), -ENXIO);
	int first = 0;
	while (m.base[first] < start)
		first++;
	verify(e, log, &m, first);

	/* DeleteRecords: reads below the new start fail, segments below go at the next run. */
	int64_t target = m.base[m.n - 10];
	assert_int_equal(stor_log_delete_records(log, stor_log_end_offset(log) + 1), -ENXIO);
	assert_int_equal(stor_log_delete_records(log, target), 0);
	assert_int_equal(stor_log_start_offset(log), target);
	assert_int_equal(tu_read(e, log, &rd, target - 1, 4096), -ENXIO);
	assert_int_equal(tu_read(e, log, &rd, target, 4096), 0);
	assert_true(rd.len > 0);
	stor_read_release(&rd);
	stor_log_retention_run(log, now, 0);
	assert_true(stor_log_segment_base(log, 0) <= target);
	assert_int_equal(stor_log_close(log), 0);
	log = stor_log_open(e, dir, &cfg, &err);
	assert_int_equal(stor_log_start_offset(log), target); /* persisted */
	assert_int_equal(stor_log_close(log), 0);

	/* roll.ms: a segment older than it rolls at the next append. */
	struct stor_log_config c2;
	cfg_small(&c2);
	c2.roll_ms = 1000;
	char sub[4200];
	snprintf(sub, sizeof(sub), "%s/roll", dir);
	struct model m2 = {0};
	log = stor_log_open(e, sub, &c2, &err);
	int64_t wall = stor_log_end_offset(log); /* 0 */
	(void)wall;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t nowms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	assert_int_equal(append_one(log, &m2, 1, 10, nowms - 5000, 0), 0);
	assert_int_equal(append_one(log, &m2, 1, 10, nowms, 0), 0);
	wait_acks(e, &m2);
	assert_int_equal(stor_log_segment_count(log), 2);
	assert_int_equal(stor_log_segment_base(log, 1), 1);
	assert_int_equal(stor_log_close(log), 0);
	model_free(&m2);

	free(buf);
	stor_engine_destroy(e);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);
}

static void
test_epochs(void **state)
{
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 64 << 10, 4, NULL);
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir = tu_tmpdir("");
	int err = 0;
	int32_t ep;
	int64_t end;

	(void)state;
	cfg_small(&cfg);
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_int_equal(stor_log_epoch_end_offset(log, 0, &ep, &end), -ENOENT);
	assert_int_equal(stor_log_epoch_assign(log, 1, 0), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(append_one(log, &m, 2, 10, i, 0), 0);
	assert_int_equal(stor_log_epoch_assign(log, 3, 10), 0);
	assert_int_equal(stor_log_epoch_assign(log, 2, 12), -EINVAL);
	for (int i = 0; i < 5; i++)
		assert_int_equal(append_one(log, &m, 2, 10, i, 0), 0);
	wait_acks(e, &m);
	assert_int_equal(stor_log_close(log), 0);
	log = stor_log_open(e, dir, &cfg, &err);
	assert_int_equal(stor_log_epoch_end_offset(log, 1, &ep, &end), 0);
	assert_int_equal(ep, 1);
	assert_int_equal(end, 10);
	assert_int_equal(stor_log_epoch_end_offset(log, 2, &ep, &end), 0);
	assert_int_equal(ep, 1);
	assert_int_equal(end, 10);
	assert_int_equal(stor_log_epoch_end_offset(log, 7, &ep, &end), 0);
	assert_int_equal(ep, 3);
	assert_int_equal(end, 20);
	assert_int_equal(stor_log_close(log), 0);
	stor_engine_destroy(e);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);
}

/* Appends beyond the pool or the pending ring are refused with -EAGAIN, not lost. */
static void
test_backpressure(void **state)
{
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 16 << 10, 2, NULL);
	struct stor_log_config cfg;
	char *dir = tu_tmpdir("");
	int err = 0;
	uint8_t b[16384];

	(void)state;
	cfg_small(&cfg);
	cfg.max_pending = 4;
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	size_t size = tu_batch(b, sizeof(b), 2, 1, 1000, 1, NULL);
	int ok = 0, again = 0;
	for (int i = 0; i < 20; i++) {
		int rc = stor_log_append(log, b, size, 0, NULL, NULL, NULL);
		if (rc == 0)
			ok++;
		else if (rc == -EAGAIN)
			again++;
		else
			fail();
	}
	assert_int_equal(ok, 4);
	assert_int_equal(again, 16);
	/* A batch larger than a chunk can never fit. */
	uint8_t *big = malloc(64 << 10);
	size_t bsize = tu_batch(big, 64 << 10, 4, 1, 8000, 2, NULL);
	assert_int_equal(stor_log_append(log, big, bsize, 0, NULL, NULL, NULL), -EMSGSIZE);
	free(big);
	assert_int_equal(stor_log_append(log, b, size - 1, 0, NULL, NULL, NULL), -EBADMSG);
	stor_engine_drain(e);
	assert_int_equal(stor_log_end_offset(log), 8);
	assert_int_equal(stor_log_close(log), 0);
	stor_engine_destroy(e);
	tu_rm_rf(dir);
	free(dir);
}

/* SQPOLL: the kernel thread picks the writes up; the same round trip works. */
static void
test_sqpoll(void **state)
{
	struct tu_logcap cap = {0};
	struct stor_engine_opts o;
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir = tu_tmpdir("");
	int err = 0;

	(void)state;
	stor_engine_opts_init(&o);
	o.log_fn = tu_log_fn;
	o.log_ctx = &cap;
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.sqpoll", "maybe"), -EINVAL);
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.sqpoll", "true"), 0);
	assert_int_equal(o.sqpoll, 1);
	assert_int_equal(stor_engine_opts_set(&o, "storage.cache.chunk.bytes", "5000"), -EINVAL);
	assert_int_equal(stor_engine_opts_set(&o, "storage.cache.chunk.bytes", "65536"), 0);
	assert_int_equal(stor_engine_opts_set(&o, "storage.cache.chunks", "8"), 0);
	assert_int_equal(stor_engine_opts_set(&o, "storage.direct.io", "auto"), 0);
	assert_int_equal(o.direct, STOR_DIRECT_AUTO);
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.queue.depth", "64"), 0);
	assert_int_equal(stor_engine_opts_set(&o, "log.dirs", "/x"), -ENOENT);
	struct stor_engine *e = stor_engine_create(&o);
	assert_non_null(e);
	cfg_small(&cfg);
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	for (int i = 0; i < 40; i++)
		assert_int_equal(
		        append_one(log, &m, 3, 500, i, i % 5 == 0 ? STOR_APPEND_DURABLE : 0), 0);
	wait_acks(e, &m);
	verify(e, log, &m, 0);
	assert_int_equal(stor_log_close(log), 0);
	stor_engine_destroy(e);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);
}

/*
 * A crash right after a roll: the new last segment is empty and the one
 * before it was never trimmed (preallocated zeros, maybe a torn batch).
 * Recovery drops the empty segment and recovers the previous one.
 */
static void
test_recovery_after_roll_crash(void **state)
{
	struct tu_logcap cap = {0};
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 64 << 10, 8, &cap);
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir = tu_tmpdir("");
	char path[4300];
	int err = 0;

	(void)state;
	cfg_small(&cfg);
	cfg.segment_bytes = 64 << 10;
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	for (int i = 0; i < 12; i++)
		assert_int_equal(append_one(log, &m, 2, 3000, i, 0), 0);
	wait_acks(e, &m);
	assert_true(stor_log_segment_count(log) >= 2);
	int64_t b1 = stor_log_segment_base(log, 1);
	stor_log_abandon(log);
	/* Cut what follows segment 0: segment 1 empty, no segment 2. */
	DIR *d = opendir(dir);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		long long base = atoll(de->d_name);
		if (strstr(de->d_name, ".log") && base > b1) {
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			unlink(path);
		}
	}
	closedir(d);
	snprintf(path, sizeof(path), "%s/%020lld.log", dir, (long long)b1);
	assert_int_equal(truncate(path, 0), 0);
	/* Segment 0 as if never trimmed: its data, a torn batch, then zeros. */
	snprintf(path, sizeof(path), "%s/%020d.log", dir, 0);
	int fd = open(path, O_RDWR);
	struct stat st;
	fstat(fd, &st);
	uint8_t junk[100];
	memcpy(junk, m.bytes[0], sizeof(junk)); /* a batch start, cut short */
	assert_int_equal(pwrite(fd, junk, sizeof(junk), st.st_size), (ssize_t)sizeof(junk));
	assert_int_equal(ftruncate(fd, 256 << 10), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/%020d.index", dir, 0);
	unlink(path);

	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_non_null(strstr(cap.text, "empty last segment"));
	assert_int_equal(stor_log_segment_count(log), 1);
	assert_int_equal(stor_log_end_offset(log), b1);
	struct model sub = m;
	sub.n = 0;
	while (sub.n < m.n && m.base[sub.n] < b1)
		sub.n++;
	verify(e, log, &sub, 0);
	assert_int_equal(stor_log_close(log), 0);
	stor_engine_destroy(e);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);
}

/*
 * stor_engine_remove_dir: a directory of more files than may be in flight at
 * once, with a directory inside, goes a step per poll, its names unlinked
 * through the ring where the kernel can (IORING_OP_UNLINKAT), the directory
 * last; a log's close meanwhile does not wait for it (a drain steps no
 * removal); names added behind its walk go too (it walks again when the
 * rmdir finds some); an engine destroyed with one under way leaves the rest.
 */
static void
test_remove_dir(void **state)
{
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 64 << 10, 8, NULL);
	struct stor_engine_stats st;
	char *dir = tu_tmpdir(""), path[4400], sub[4300];
	int polls = 0;

	(void)state;
	for (int k = 0; k < 2; k++) {
		snprintf(sub, sizeof(sub), "%s/p%d", dir, k);
		assert_int_equal(mkdir(sub, 0755), 0);
		for (int i = 0; i < (int)STOR_REMOVE_INFLIGHT * 3 + 1; i++) {
			snprintf(path, sizeof(path), "%s/%020d.log", sub, i);
			FILE *f = fopen(path, "w");
			assert_non_null(f);
			fputs("segment", f);
			fclose(f);
		}
		snprintf(path, sizeof(path), "%s/inner", sub);
		assert_int_equal(mkdir(path, 0755), 0);
	}
	snprintf(sub, sizeof(sub), "%s/p0", dir);
	assert_int_equal(stor_engine_remove_dir(e, sub), 0);
	snprintf(path, sizeof(path), "%s/none", dir);
	assert_int_equal(stor_engine_remove_dir(e, path), -ENOENT);
	stor_engine_stats(e, &st);
	assert_int_equal(st.removals, 1);
	assert_int_equal(access(sub, F_OK), 0); /* nothing before a poll */
	assert_int_equal(stor_engine_drain(e), 0);
	assert_int_equal(access(sub, F_OK), 0); /* a drain steps no removal */
	/* Names added behind the walk (readdir may not return them): walked again. */
	stor_engine_poll(e);
	for (int i = 0; i < 8; i++) {
		snprintf(path, sizeof(path), "%s/late-%d", sub, i);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fclose(f);
	}
	while (st.removals > 0 && polls++ < 100000) {
		stor_engine_poll(e);
		stor_engine_wait(e, 1000);
		stor_engine_stats(e, &st);
	}
	assert_int_equal(st.removals, 0);
	assert_int_equal(st.removals_done, 1);
	assert_int_equal(access(sub, F_OK), -1);
	assert_true(polls > 1);
	if (tu_ring_has_op(IORING_OP_UNLINKAT)) /* 49 files, 8 late, the directory (again) */
		assert_true(st.async_unlinks >= STOR_REMOVE_INFLIGHT * 3 + 1 + 8 + 1);

	/* Under way at destroy: what is left stays on disk. */
	snprintf(sub, sizeof(sub), "%s/p1", dir);
	assert_int_equal(stor_engine_remove_dir(e, sub), 0);
	stor_engine_poll(e);
	stor_engine_destroy(e);
	assert_int_equal(access(sub, F_OK), 0);
	tu_rm_rf(dir);
	free(dir);
}

/* Where the whole batches at the start of the file at @path end (zeros stop the walk). */
static uint64_t
batches_end(const char *path)
{
	uint8_t h[12];
	uint64_t pos = 0;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	while (pread(fd, h, sizeof(h), (off_t)pos) == (ssize_t)sizeof(h)) {
		uint32_t len = (uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 8 | h[11];
		if (len == 0)
			break;
		pos += 12 + len;
	}
	close(fd);
	return pos;
}

/*
 * A roll's flush (fdatasync, trim, indexes) runs beside the next segment's
 * writes: with the roll's sync held back, appends to the new segment are
 * acknowledged; a durable one waits for the held sync; the old segment gets
 * its indexes once the sync completes. (Before: every append of the new
 * segment waited for the sync, 200 ms for 128 MiB on the bench's disk.)
 */
static void
test_roll_sync_beside_writes(void **state)
{
	struct tu_backend *wrap;
	struct stor_engine *e = tu_engine(&wrap, STOR_DIRECT_AUTO, 64 << 10, 16, NULL);
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir = tu_tmpdir("");
	char path[4300];
	int err = 0;

	(void)state;
	cfg_small(&cfg);
	cfg.segment_bytes = 64 << 10;
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	wrap->hold_syncs = 1;
	while (stor_log_segment_count(log) < 2) {
		assert_int_equal(append_one(log, &m, 2, 3000, m.n, 0), 0);
		stor_engine_poll(e);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(append_one(log, &m, 2, 3000, m.n, 0), 0);
	wait_acks(e, &m); /* the new segment's appends: acknowledged, the sync still held */
	assert_int_equal(wrap->n_held, 1);
	snprintf(path, sizeof(path), "%s/%020d.index", dir, 0);
	assert_int_equal(access(path, F_OK), -1); /* not finished yet */

	int d = m.n;
	assert_int_equal(append_one(log, &m, 1, 100, m.n, STOR_APPEND_DURABLE), 0);
	for (int i = 0; i < 2000; i++)
		stor_engine_poll(e);
	assert_int_equal(acks[d].done, 0); /* durable: not before the older segment is */
	/* The engine's flush counters: one roll; the held sync's time (at least the 20 ms
	 * it is held longer) counted once released. (Other syncs, the first segment's
	 * before the roll or the durable append's own, may complete before: the ASan
	 * build, slower, had them.) */
	struct stor_engine_stats st;
	stor_engine_stats(e, &st);
	assert_int_equal(st.segments_rolled, 1);
	uint64_t flushes0 = st.flushes, flush_ns0 = st.flush_ns;
	usleep(20000);
	tu_release_syncs(wrap);
	wait_acks(e, &m);
	stor_engine_stats(e, &st);
	assert_true(st.flushes >= flushes0 + 1); /* the held roll sync */
	assert_true(st.flush_ns - flush_ns0 >= 20000000ull);
	assert_int_equal(st.segments_rolled, 1);
	assert_int_equal(access(path, F_OK), 0);
	/* Trimmed to its data (the block padding of its O_DIRECT writes and the
	 * preallocated rest cut), by an io-wq worker where the kernel's ring can. */
	struct stat sb;
	snprintf(path, sizeof(path), "%s/%020d.log", dir, 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal((uint64_t)sb.st_size, batches_end(path));
	assert_true(sb.st_size % STOR_BLOCK_SIZE != 0 && sb.st_size < (off_t)cfg.segment_bytes);
	assert_int_equal(wrap->inner->async_truncates, tu_ring_has_op(TU_OP_FTRUNCATE) ? 1 : 0);
	verify(e, log, &m, 0);
	assert_int_equal(stor_log_close(log), 0);
	stor_engine_destroy(e);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);
}

/*
 * Recovery of the segment before the last when its roll's flush did not
 * finish: after a process crash, its data whole with preallocated zeros
 * after it and no indexes (finished: trimmed, indexes written, nothing lost);
 * after a power loss, its tail torn while the next segment's data survived
 * (the log ends at its last whole batch, the later segment deleted).
 */
static void
unflushed_recovery(bool torn)
{
	struct tu_logcap cap = {0};
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 64 << 10, 8, &cap);
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir = tu_tmpdir("");
	char path[4300];
	int err = 0;

	cfg_small(&cfg);
	cfg.segment_bytes = 64 << 10;
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	while (stor_log_segment_count(log) < 2)
		assert_int_equal(append_one(log, &m, 2, 3000, m.n, 0), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(append_one(log, &m, 2, 3000, m.n, 0), 0);
	wait_acks(e, &m);
	assert_int_equal(stor_log_segment_count(log), 2);
	int64_t b1 = stor_log_segment_base(log, 1);
	stor_log_abandon(log); /* no clean-shutdown marker: a crash */

	/* Segment 0 as the crash left it: untrimmed (zeros after the data), no indexes. */
	static const char *const idx[] = {".index", ".timeindex"};
	for (int k = 0; k < 2; k++) {
		snprintf(path, sizeof(path), "%s/%020d%s", dir, 0, idx[k]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/%020d.log", dir, 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	int last0 = 0; /* the last batch of segment 0 */
	while (last0 + 1 < m.n && m.base[last0 + 1] < b1)
		last0++;
	off_t data = st.st_size;
	if (torn) /* its last batch cut in the middle */
		data -= (off_t)m.len[last0] / 2;
	assert_int_equal(truncate(path, data), 0);
	assert_int_equal(truncate(path, data + (256 << 10)), 0);

	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	struct model sub = m;
	if (torn) {
		assert_non_null(strstr(cap.text, "the log ends there"));
		assert_int_equal(stor_log_segment_count(log), 1);
		assert_int_equal(stor_log_end_offset(log), m.base[last0]);
		sub.n = last0;
	} else {
		assert_non_null(strstr(cap.text, "finished after a crash"));
		assert_int_equal(stor_log_segment_count(log), 2);
		assert_int_equal(stor_log_end_offset(log), m.last[m.n - 1] + 1);
		snprintf(path, sizeof(path), "%s/%020d.index", dir, 0);
		assert_int_equal(access(path, F_OK), 0);
	}
	verify(e, log, &sub, 0);
	/* Appends go on where the log ends. */
	int64_t end = stor_log_end_offset(log);
	int first_new = m.n;
	assert_int_equal(append_one(log, &m, 2, 100, 99999, 0), 0);
	assert_int_equal(tu_poll_until(e, &acks[first_new].done, 1), 0);
	assert_int_equal(m.base[first_new], end);
	m.n = first_new + 1;
	assert_int_equal(stor_log_close(log), 0);
	stor_engine_destroy(e);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);
}

static void
test_unflushed_recovery_finished(void **state)
{
	(void)state;
	unflushed_recovery(false);
}

static void
test_unflushed_recovery_torn(void **state)
{
	(void)state;
	unflushed_recovery(true);
}

/* Retention deletes a segment a disk read still holds: the read's data stays valid. */
static void
test_delete_while_reading(void **state)
{
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 64 << 10, 8, NULL);
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir = tu_tmpdir("");
	int err = 0;

	(void)state;
	cfg_small(&cfg);
	cfg.segment_bytes = 32 << 10;
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	for (int i = 0; i < 30; i++)
		assert_int_equal(append_one(log, &m, 2, 2000, i, 0), 0);
	wait_acks(e, &m);
	assert_int_equal(stor_log_close(log), 0);
	log = stor_log_open(e, dir, &cfg, &err); /* empty cache: reads go to disk */
	size_t bsz = stor_read_buf_size(8192);
	uint8_t *buf = aligned_alloc(STOR_BLOCK_SIZE, bsz);
	struct stor_read rd = {.buf = buf, .buf_size = bsz};
	struct stor_engine_stats s0, s1;
	stor_engine_stats(e, &s0);
	assert_int_equal(tu_read(e, log, &rd, 0, 8192), 0);
	assert_int_equal(rd.from_cache, 0);
	stor_engine_stats(e, &s1); /* counted as a file read (slipstream_storage_reads_total) */
	assert_int_equal(s1.reads_file, s0.reads_file + 1);
	assert_int_equal(s1.reads_cache, s0.reads_cache);
	unsigned before = stor_log_segment_count(log);
	assert_int_equal(stor_log_delete_records(log, m.base[m.n - 1]), 0);
	assert_true(stor_log_retention_run(log, 0, 0) > 0);
	assert_true(stor_log_segment_count(log) < before);
	assert_memory_equal(rd.data, m.bytes[0], m.len[0]); /* still valid */
	stor_read_release(&rd);                             /* frees the deleted segment */
	assert_int_equal(tu_read(e, log, &rd, 0, 8192), -ENXIO);
	/* A batch appended now is read from the tail cache, and counted so. */
	assert_int_equal(append_one(log, &m, 2, 2000, 30, 0), 0);
	wait_acks(e, &m);
	stor_engine_stats(e, &s0);
	assert_int_equal(tu_read(e, log, &rd, m.base[m.n - 1], 8192), 0);
	assert_int_equal(rd.from_cache, 1);
	stor_read_release(&rd);
	stor_engine_stats(e, &s1);
	assert_int_equal(s1.reads_cache, s0.reads_cache + 1);
	assert_int_equal(s1.reads_file, s0.reads_file);
	free(buf);
	assert_int_equal(stor_log_close(log), 0);
	stor_engine_destroy(e);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);
}

/* Interrupt mode: stor_engine_wait sleeps until the write completes. */
static void
test_engine_wait(void **state)
{
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 64 << 10, 4, NULL);
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir = tu_tmpdir("");
	int err = 0;

	(void)state;
	cfg_small(&cfg);
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_int_equal(stor_engine_wait(e, 1000), -ETIME); /* nothing in flight */
	assert_int_equal(append_one(log, &m, 2, 100, 1, STOR_APPEND_DURABLE), 0);
	assert_int_equal(stor_engine_wait(e, 1000), 0); /* dirty: returns at once */
	stor_engine_poll(e);                            /* submits write + sync */
	for (int i = 0; i < 100 && !acks[0].done; i++) {
		stor_engine_wait(e, 100000);
		stor_engine_poll(e);
	}
	assert_int_equal(acks[0].done, 1);
	assert_int_equal(stor_log_close(log), 0);
	stor_engine_destroy(e);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);
}

/* ---- batch header walk (producer state rebuild) ------------------------------ */

struct hdr_walk {
	int64_t base[MAXB];
	int64_t pid[MAXB];
	int32_t seq[MAXB];
	int n;
	int stop_at; /* return 7 at this call (-1: never) */
};

static int
hdr_cb(void *arg, const struct kp_batch_header *h)
{
	struct hdr_walk *w = arg;

	if (w->n == w->stop_at)
		return 7;
	w->base[w->n] = h->base_offset;
	w->pid[w->n] = h->producer_id;
	w->seq[w->n] = h->base_sequence;
	w->n++;
	return 0;
}

/* Append batch @i with producer id 1000 + i % 3 and sequence 10 * i. */
static void
append_producer(struct stor_log *log, struct model *m, int i)
{
	uint8_t *buf = malloc(1 << 16);
	struct kp_batch_builder b;
	uint8_t val[300];
	size_t size = 0;
	int64_t base = -1;

	memset(val, i, sizeof(val));
	assert_int_equal(kp_batch_builder_start(&b, buf, 1 << 16, KP_COMPRESSION_NONE), 0);
	b.producer_id = 1000 + i % 3;
	b.producer_epoch = 2;
	b.base_sequence = 10 * i;
	for (int r = 0; r < 3; r++)
		assert_int_equal(kp_batch_builder_add(&b, 1000 + i, "k", 1, val, sizeof(val), NULL, 0),
			0);
	assert_int_equal(kp_batch_builder_finish(&b, &size), 0);
	memset(&acks[m->n], 0, sizeof(acks[m->n]));
	assert_int_equal(stor_log_append(log, buf, size, 0, tu_ack_cb, &acks[m->n], &base), 0);
	m->bytes[m->n] = buf;
	m->len[m->n] = size;
	m->base[m->n] = base;
	m->last[m->n] = base + 2;
	m->max_ts[m->n] = 1000 + i;
	m->n++;
}

/* Every batch from the one holding @from to the end, in order, with its header fields. */
static void
walk_check(struct stor_log *log, const struct model *m, int64_t from)
{
	struct hdr_walk *w = calloc(1, sizeof(*w));
	int first = 0;

	w->stop_at = -1;
	assert_int_equal(stor_log_batch_headers(log, from, hdr_cb, w), 0);
	while (first < m->n && m->last[first] < from)
		first++;
	assert_int_equal(w->n, m->n - first);
	for (int k = 0; k < w->n; k++) {
		int i = first + k;

		assert_int_equal(w->base[k], m->base[i]);
		assert_int_equal(w->pid[k], 1000 + i % 3);
		assert_int_equal(w->seq[k], 10 * i);
	}
	free(w);
}

static void
test_batch_headers(void **state)
{
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 64 << 10, 16, NULL);
	struct stor_log_config cfg;
	struct model m = {0};
	struct hdr_walk *w = calloc(1, sizeof(*w));
	char *dir = tu_tmpdir("");
	int err = 0;

	(void)state;
	cfg_small(&cfg);
	assert_int_equal(stor_log_config_set(&cfg, "log.segment.bytes", "8000"), 0);
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	/* Empty log: nothing walked. */
	w->stop_at = -1;
	assert_int_equal(stor_log_batch_headers(log, 0, hdr_cb, w), 0);
	assert_int_equal(w->n, 0);
	for (int i = 0; i < 60; i++)
		append_producer(log, &m, i);
	/* Appends in flight: refused rather than walking a partial log. */
	assert_int_equal(stor_log_batch_headers(log, 0, hdr_cb, w), -EBUSY);
	wait_acks(e, &m);
	assert_true(stor_log_segment_count(log) >= 5);
	/* From 0, from inside a batch, from a segment base, at and past the end. */
	walk_check(log, &m, 0);
	walk_check(log, &m, m.base[17] + 1);
	walk_check(log, &m, stor_log_segment_base(log, 2));
	walk_check(log, &m, m.base[m.n - 1]);
	walk_check(log, &m, stor_log_end_offset(log));
	/* A non-zero return stops the walk and is returned. */
	memset(w, 0, sizeof(*w));
	w->stop_at = 4;
	assert_int_equal(stor_log_batch_headers(log, 0, hdr_cb, w), 7);
	assert_int_equal(w->n, 4);
	/* After a crash (no clean marker, the tail scanned) and a clean restart. */
	stor_log_abandon(log);
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	walk_check(log, &m, 0);
	walk_check(log, &m, m.base[40]);
	assert_int_equal(stor_log_close(log), 0);
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	walk_check(log, &m, m.base[33] + 2);
	assert_int_equal(stor_log_close(log), 0);
	model_free(&m);
	free(w);
	stor_engine_destroy(e);
	tu_rm_rf(dir);
	free(dir);
}

/*
 * A recovery scan longer than its read-ahead windows (8 MiB): ~20 MiB of
 * batches, one of 1.5 MiB across the first window's end (more than the
 * headroom the cut batch is copied into: read again), recovered whole after
 * a crash through the backend's read_start; the producer-state walk right
 * after the open gets every batch (from the recovery's headers), and after
 * an append the new one too (the headers dropped, the file read). An I/O
 * error in a read ahead fails the open and truncates nothing: the next
 * open finds every batch.
 */
static void
test_recovery_read_ahead(void **state)
{
	struct tu_backend *wrap;
	struct stor_engine *e = tu_engine(&wrap, STOR_DIRECT_AUTO, 2 << 20, 8, NULL);
	struct stor_log_config cfg;
	struct model m = {0};
	struct hdr_walk *w = calloc(1, sizeof(*w));
	char *dir = tu_tmpdir("");
	size_t total = 0;
	int err = 0;

	(void)state;
	cfg_small(&cfg);
	cfg.segment_bytes = 64 << 20;
	cfg.index_interval_bytes = 4096;
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	while (total < (20u << 20)) {
		bool big = total > (8u << 20) - (700u << 10) && total < (8u << 20);
		uint8_t *buf = malloc(2 << 20);
		size_t vlen = big ? (1536u << 10) : (60u << 10) + (size_t)(m.n % 7) * 9000;
		size_t size = tu_batch(buf, 2 << 20, 1, 100 + m.n, vlen, (unsigned)m.n, NULL);
		int64_t base = -1;
		int i = m.n;

		assert_true(size > 0 && i < MAXB);
		memset(&acks[i], 0, sizeof(acks[i]));
		assert_int_equal(stor_log_append(log, buf, size, 0, tu_ack_cb, &acks[i], &base), 0);
		kp_batch_set_base_offset(buf, base);
		m.bytes[i] = buf;
		m.len[i] = size;
		m.base[i] = base;
		m.last[i] = base;
		m.max_ts[i] = 100 + i;
		m.n++;
		total += size;
		assert_int_equal(tu_poll_until(e, &acks[i].done, 1), 0);
	}
	wait_acks(e, &m);
	stor_log_abandon(log); /* a crash: no marker, the segment scanned at the next open */

	wrap->reads_ahead = 0;
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_true(wrap->reads_ahead >= 3);
	assert_true(wrap->ahead_bytes >= total);
	assert_int_equal(stor_log_end_offset(log), m.last[m.n - 1] + 1);
	w->stop_at = -1;
	assert_int_equal(stor_log_batch_headers(log, 0, hdr_cb, w), 0);
	assert_int_equal(w->n, m.n);
	for (int i = 0; i < m.n; i++)
		assert_int_equal(w->base[i], m.base[i]);
	verify(e, log, &m, m.n - 40);
	/* After an append the walk reads the file and sees it. */
	assert_int_equal(append_one(log, &m, 2, 300, 5000, 0), 0);
	wait_acks(e, &m);
	memset(w, 0, sizeof(*w));
	w->stop_at = -1;
	assert_int_equal(stor_log_batch_headers(log, m.base[m.n - 2], hdr_cb, w), 0);
	assert_int_equal(w->n, 2);
	assert_int_equal(w->base[1], m.base[m.n - 1]);
	stor_log_abandon(log);

	/* An I/O error in the second read ahead: the open fails, nothing is cut. */
	wrap->reads_ahead = 0;
	wrap->fail_ahead_at = 2;
	assert_null(stor_log_open(e, dir, &cfg, &err));
	assert_int_equal(err, -EIO);
	wrap->fail_ahead_at = 0;
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_int_equal(stor_log_end_offset(log), m.last[m.n - 1] + 1);
	verify(e, log, &m, m.n - 3);
	assert_int_equal(stor_log_close(log), 0);
	model_free(&m);
	free(w);
	stor_engine_destroy(e);
	tu_rm_rf(dir);
	free(dir);
}



/* ---- segment recycling (RAM file systems) ---------------------------------- */

static ino_t
inode_of(const char *dir, int64_t base, const char *suffix)
{
	char path[4200];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%020" PRId64 "%s", dir, base, suffix);
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

static uint64_t
recycled(struct stor_engine *e)
{
	struct stor_engine_stats st;

	stor_engine_stats(e, &st);
	return st.segments_recycled;
}

/* Poll until the wrapper holds a sync (30 s at most: writes before it may be slow). */
static void
poll_held(struct stor_engine *e, struct tu_backend *wrap)
{
	time_t end = time(NULL) + 30;

	while (wrap->n_held == 0 && time(NULL) < end)
		for (int i = 0; i < 1000 && wrap->n_held == 0; i++)
			stor_engine_poll(e);
}

/*
 * storage.segment.recycle on tmpfs: retention keeps the oldest deleted file
 * as <base>.spare, the next roll writes into it (same inode, pages kept);
 * every batch reads back; a crash with a recycled active segment (its old
 * batches past the data) recovers exactly the acknowledged batches; a
 * clean restart adopts the spare; 0 turns it off. On disk the same, and the
 * roll into a spare (a rename) syncs the directory with the old segment's
 * flush before a durable append in the recycled file is acknowledged.
 */
static void
test_segment_recycle(void **state)
{
	struct tu_logcap cap = {0};
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_OFF, 64 << 10, 16, &cap);
	struct stor_log_config cfg;
	struct model m = {0};
	char *dir;
	int err = 0;

	(void)state;
	if (access("/dev/shm", W_OK) != 0)
		skip();
	dir = tu_tmpdir("/dev/shm");
	cfg_small(&cfg);
	assert_int_equal(cfg.segment_recycle, 1);
	assert_int_equal(stor_log_config_set(&cfg, "storage.segment.recycle", "9"), -EINVAL);
	assert_int_equal(stor_log_config_set(&cfg, "storage.segment.recycle", "2"), 0);
	assert_int_equal(stor_log_config_set(&cfg, "log.segment.bytes", "20000"), 0);
	assert_int_equal(stor_log_config_set(&cfg, "retention.bytes", "30000"), 0);
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	for (int i = 0; i < 60; i++)
		assert_int_equal(append_one(log, &m, 4, 400, 1000 + i, 0), 0);
	wait_acks(e, &m);
	int64_t gone0 = stor_log_segment_base(log, 0), gone1 = stor_log_segment_base(log, 1);
	ino_t ino0 = inode_of(dir, gone0, ".log");
	assert_true(stor_log_retention_run(log, 2000, 0) >= 3);
	/* Two kept (the limit), the third deleted; indexes of all three gone. */
	assert_int_equal(count_files(dir, ".spare"), 2);
	assert_int_equal(inode_of(dir, gone0, ".spare"), ino0);
	assert_int_equal(inode_of(dir, gone0, ".index"), 0);
	assert_int_equal(inode_of(dir, gone1, ".log"), 0);
	assert_int_equal(recycled(e), 0);

	/* The next roll takes the oldest spare: the same file under the new name. */
	unsigned nseg = stor_log_segment_count(log);
	while (stor_log_segment_count(log) == nseg)
		assert_int_equal(append_one(log, &m, 4, 400, 2000 + m.n, 0), 0);
	wait_acks(e, &m);
	int64_t nbase = stor_log_segment_base(log, stor_log_segment_count(log) - 1);
	assert_int_equal(inode_of(dir, nbase, ".log"), ino0);
	assert_int_equal(recycled(e), 1);
	assert_int_equal(count_files(dir, ".spare"), 1);
	int first = 0;
	while (m.base[first] < stor_log_start_offset(log))
		first++;
	verify(e, log, &m, first);

	/* A crash while the active segment is a recycled file: its old batches stay unread. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(append_one(log, &m, 4, 400, 3000 + m.n, 0), 0);
	wait_acks(e, &m);
	int64_t end = stor_log_end_offset(log);
	stor_log_abandon(log);
	cap.len = 0;
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_int_equal(stor_log_end_offset(log), end);
	assert_non_null(strstr(cap.text, "truncating the tail")); /* the old bytes, cut */
	verify(e, log, &m, first);
	/* Appends after the recovery land where the old bytes were cut. */
	for (int i = 0; i < 20; i++)
		assert_int_equal(append_one(log, &m, 4, 400, 4000 + m.n, 0), 0);
	wait_acks(e, &m);
	assert_true(recycled(e) >= 2);
	assert_true(stor_log_retention_run(log, 4500, 0) > 0);
	while (m.base[first] < stor_log_start_offset(log))
		first++;
	verify(e, log, &m, first);
	assert_int_equal(stor_log_close(log), 0);

	/* A clean restart keeps its spare for the next roll. */
	uint64_t r0 = recycled(e);
	assert_int_equal(count_files(dir, ".spare"), 2);
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	verify(e, log, &m, first);
	nseg = stor_log_segment_count(log);
	while (stor_log_segment_count(log) == nseg)
		assert_int_equal(append_one(log, &m, 4, 400, 5000 + m.n, 0), 0);
	wait_acks(e, &m);
	assert_int_equal(recycled(e), r0 + 1);
	assert_int_equal(count_files(dir, ".spare"), 1);
	verify(e, log, &m, first);
	assert_int_equal(stor_log_close(log), 0);

	/* Off: retention deletes the files, and a spare left from before goes at open. */
	assert_int_equal(stor_log_config_set(&cfg, "storage.segment.recycle", "0"), 0);
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_true(stor_log_retention_run(log, 6000, 0) > 0);
	assert_int_equal(count_files(dir, ".spare"), 0);
	assert_int_equal(stor_log_close(log), 0);
	model_free(&m);
	tu_rm_rf(dir);
	free(dir);

	/* On disk: a spare too, and the rename into place made durable before a durable ack. */
	stor_engine_destroy(e);
	dir = tu_tmpdir("");
	struct statfs sf;
	if (statfs(dir, &sf) == 0 && (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC)) {
		/* The build directory is in RAM: no disk directory to try. */
		tu_rm_rf(dir);
		free(dir);
		return;
	}
	struct tu_backend *wrap;
	e = tu_engine(&wrap, STOR_DIRECT_AUTO, 64 << 10, 16, NULL);
	assert_int_equal(stor_log_config_set(&cfg, "storage.segment.recycle", "1"), 0);
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	for (int i = 0; i < 60; i++)
		assert_int_equal(append_one(log, &m, 4, 400, 1000 + i, 0), 0);
	wait_acks(e, &m);
	gone0 = stor_log_segment_base(log, 0);
	ino0 = inode_of(dir, gone0, ".log");
	assert_true(stor_log_retention_run(log, 2000, 0) > 0);
	assert_int_equal(count_files(dir, ".spare"), 1);
	assert_int_equal(inode_of(dir, gone0, ".spare"), ino0);
	r0 = recycled(e);
	wrap->hold_syncs = 1;
	nseg = stor_log_segment_count(log);
	while (stor_log_segment_count(log) == nseg) {
		assert_int_equal(append_one(log, &m, 4, 400, 2000 + m.n, 0), 0);
		stor_engine_poll(e);
	}
	nbase = stor_log_segment_base(log, stor_log_segment_count(log) - 1);
	assert_int_equal(inode_of(dir, nbase, ".log"), ino0); /* the spare, renamed */
	assert_int_equal(recycled(e), r0 + 1);
	int d = m.n;
	assert_int_equal(append_one(log, &m, 1, 100, 2000 + m.n, STOR_APPEND_DURABLE), 0);
	poll_held(e, wrap); /* the roll's fdatasync of the sealed segment, once written */
	for (int i = 0; i < 2000; i++)
		stor_engine_poll(e);
	assert_int_equal(wrap->n_held, 1);
	assert_int_equal(wrap->held[0]->op, STOR_IO_FDATASYNC);
	assert_int_equal(acks[d].done, 0);
	tu_release_held(wrap); /* its trim follows, then the directory's fsync: held */
	poll_held(e, wrap);
	assert_int_equal(wrap->n_held, 1);
	assert_int_equal(wrap->held[0]->op, STOR_IO_FSYNC);
	for (int i = 0; i < 2000; i++)
		stor_engine_poll(e);
	assert_int_equal(acks[d].done, 0); /* durable: not before the new name is */
	tu_release_syncs(wrap);
	wait_acks(e, &m);
	first = 0;
	while (m.base[first] < stor_log_start_offset(log))
		first++;
	verify(e, log, &m, first);
	assert_int_equal(stor_log_close(log), 0);
	model_free(&m);
	stor_engine_destroy(e);
	tu_rm_rf(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_roundtrip_disk),
	        cmocka_unit_test(test_roundtrip_tmpfs_buffered),
	        cmocka_unit_test(test_direct_fallback),
	        cmocka_unit_test(test_group_commit_and_flush),
	        cmocka_unit_test(test_recovery_torn_tail),
	        cmocka_unit_test(test_index_rebuild),
	        cmocka_unit_test(test_stale_marker_index_not_trusted),
	        cmocka_unit_test(test_time_lookup),
	        cmocka_unit_test(test_config_message_keys),
	        cmocka_unit_test(test_roll_and_retention),
	        cmocka_unit_test(test_epochs),
	        cmocka_unit_test(test_backpressure),
	        cmocka_unit_test(test_sqpoll),
	        cmocka_unit_test(test_engine_wait),
	        cmocka_unit_test(test_recovery_after_roll_crash),
	        cmocka_unit_test(test_roll_sync_beside_writes),
	        cmocka_unit_test(test_unflushed_recovery_finished),
	        cmocka_unit_test(test_unflushed_recovery_torn),
	        cmocka_unit_test(test_delete_while_reading),
	        cmocka_unit_test(test_remove_dir),
	        cmocka_unit_test(test_batch_headers),
	        cmocka_unit_test(test_recovery_read_ahead),
	        cmocka_unit_test(test_segment_recycle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
