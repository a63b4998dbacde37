/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the io_uring backend's inline path (storage.io.inline,
 * stor_uring.c): files on tmpfs (/dev/shm) are written and read with
 * pwrite/pread on the calling thread instead of io_uring's worker threads.
 * - a write and its linked fdatasync: nothing happens at queue, the bytes
 *   are in the file after submit, done() runs only from poll(), in queue
 *   order across files; no io-wq worker thread exists in the process (a
 *   buffered write to tmpfs through the ring always creates one: io-wq
 *   belongs to the thread and its idle workers linger, so this case runs
 *   first, before any test puts I/O on a ring);
 * - storage.io.inline=false: the same requests through the ring (a worker
 *   appears), the same bytes;
 * - a failing write (EFAULT) cancels the request linked to it, as the ring
 *   does; a read past the end comes back short; wait() runs queued inline
 *   requests at once; a chain mixing an inline write and a fallocate goes
 *   through the ring whole; at most inline_max_files files are inline; a
 *   file on the build directory's file system is never inline;
 * - small inline writes (inline_map_bytes) are copies into a mapping of the
 *   file: the bytes land as with pwrite across reservation steps and
 *   windows (a write crossing a window's end and a larger one take pwrite),
 *   the file's size runs ahead of the data by less than a step, a truncate
 *   below the reserved range is followed by a new reservation; a write the
 *   file system refuses (RLIMIT_FSIZE) fails with the errno, no signal;
 * - release_fd: a deleted file's last descriptor closes through the ring
 *   (an io-wq worker), counted in flight until then;
 * - STOR_IO_TRUNCATE: a file on disk is cut through the ring where the
 *   kernel has IORING_OP_FTRUNCATE (Linux 6.9; an io-wq worker, counted in
 *   async_truncates), by submit on the caller's thread where it has not; an
 *   inline file's always by submit; completed by poll either way;
 * - through the engine: appends to logs on /dev/shm are acknowledged by the
 *   same stor_engine_poll() that wrote them, read back before and after a
 *   clean restart, the engine's stats count the inline files and requests,
 *   and stor_engine_opts_set parses the key;
 * - read_start/read_wait (a recovery scan's read-ahead): on the build
 *   directory's file system (O_DIRECT, the ring's pieces) and on /dev/shm
 *   (inline), reads past the end come back short with the bytes right, one
 *   at a time.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/vfs.h>

#include "stor_test_util.h"

#define NFILES 3
#define WLEN (16u << 10)

/* Completions seen, in order. */
static struct {
	struct stor_io_req *req;
	int res;
} g_done[64];
static unsigned g_ndone;

static void
on_done(struct stor_io_req *req, int res)
{
	assert_true(g_ndone < sizeof(g_done) / sizeof(g_done[0]));
	g_done[g_ndone].req = req;
	g_done[g_ndone].res = res;
	g_ndone++;
}

/* io_uring's worker threads of this process ("iou-wrk-<tid>" in /proc). */
static int
io_workers_now(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char path[300], comm[64] = "";
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fgets(comm, sizeof(comm), f) != NULL && strncmp(comm, "iou-wrk", 7) == 0)
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

static bool
dev_shm_is_tmpfs(void)
{
	struct statfs sf;

	return statfs("/dev/shm", &sf) == 0 && sf.f_type == TMPFS_MAGIC;
}

static struct stor_backend *
backend_map(enum stor_inline_mode mode, unsigned inline_max, unsigned map_bytes)
{
	struct stor_uring_opts uo = {
	        .queue_depth = 32, .max_files = 64, .inline_io = mode,
	        .inline_max_files = inline_max, .inline_map_bytes = map_bytes};
	struct stor_backend *be = stor_uring_create(&uo, NULL);

	assert_non_null(be);
	return be;
}

static struct stor_backend *
backend(enum stor_inline_mode mode, unsigned inline_max)
{
	return backend_map(mode, inline_max, 0);
}

static int
bopen(struct stor_backend *be, const char *dir, int i)
{
	char path[4200];
	int h = -1;

	snprintf(path, sizeof(path), "%s/f%d", dir, i);
	assert_int_equal(be->ops->open(be, path, STOR_OPEN_CREATE, &h), 0);
	return h;
}

static void
fill(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 31 + i * 7);
}

/* The file's bytes at [off, off + len) equal @want (read with a plain descriptor). */
static void
check_file(const char *dir, int i, uint64_t off, const uint8_t *want, size_t len)
{
	char path[4200];
	uint8_t *got = malloc(len);
	int fd;

	snprintf(path, sizeof(path), "%s/f%d", dir, i);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, got, len, (off_t)off), (ssize_t)len);
	assert_memory_equal(got, want, len);
	close(fd);
	free(got);
}

/* One inline backend with file f0 open in a fresh /dev/shm directory, and a WLEN buffer. */
struct ifix {
	char *dir;
	struct stor_backend *be;
	uint8_t *buf; /* WLEN bytes filled from the seed */
	int h;
};

static void
ifix_open(struct ifix *f, unsigned seed)
{
	f->dir = tu_tmpdir("/dev/shm");
	f->be = backend(STOR_INLINE_AUTO, 0);
	f->h = bopen(f->be, f->dir, 0);
	f->buf = aligned_alloc(STOR_BLOCK_SIZE, WLEN);
	fill(f->buf, WLEN, seed);
	g_ndone = 0;
}

static void
ifix_close(struct ifix *f)
{
	f->be->ops->close(f->be, f->h);
	f->be->ops->destroy(f->be);
	free(f->buf);
	tu_rm_rf(f->dir);
	free(f->dir);
}

/*
 * A write + linked fdatasync per file on NFILES tmpfs files, in one submit:
 * @inline_mode decides the path; both give the same bytes and completions.
 */
static void
write_sync_round(enum stor_inline_mode mode)
{
	char *dir = tu_tmpdir("/dev/shm");
	struct stor_backend *be = backend(mode, 0);
	static struct stor_io_req w[NFILES], s[NFILES];
	uint8_t *buf[NFILES];
	int h[NFILES];

	g_ndone = 0;
	for (int i = 0; i < NFILES; i++) {
		h[i] = bopen(be, dir, i);
		buf[i] = aligned_alloc(STOR_BLOCK_SIZE, WLEN);
		fill(buf[i], WLEN, (unsigned)i);
	}
	assert_int_equal(be->inline_files, mode == STOR_INLINE_AUTO ? NFILES : 0);
	for (int i = 0; i < NFILES; i++) {
		struct stor_io_req *chain[2] = {&w[i], &s[i]};

		w[i] = (struct stor_io_req){.op = STOR_IO_WRITE, .link_next = 1, .buf_index = -1,
		                            .file = h[i], .buf = buf[i], .len = WLEN,
		                            .off = 4096u * (unsigned)i, .done = on_done};
		s[i] = (struct stor_io_req){.op = STOR_IO_FDATASYNC, .buf_index = -1, .file = h[i],
		                            .done = on_done};
		assert_int_equal(be->ops->queue(be, chain, 2), 0);
	}
	assert_int_equal(be->ops->inflight(be), 2 * NFILES);
	if (mode == STOR_INLINE_AUTO) {
		uint64_t size = 1;

		/* Queued only: no byte written, nothing completed. */
		assert_int_equal(be->ops->size(be, h[0], &size), 0);
		assert_int_equal(size, 0);
		assert_int_equal(be->ops->poll(be, 64), 0);
		assert_true(be->ops->submit(be) >= 0);
		/* Written by submit, completed only by poll. */
		assert_int_equal(g_ndone, 0);
		assert_int_equal(be->ops->size(be, h[0], &size), 0);
		assert_int_equal(size, WLEN);
		assert_int_equal(be->ops->poll(be, 64), 2 * NFILES);
		assert_int_equal(be->inline_ios, 2 * NFILES);
	} else {
		assert_true(be->ops->submit(be) >= 0);
		while (g_ndone < 2 * NFILES) {
			be->ops->wait(be, 100000);
			be->ops->poll(be, 64);
		}
		assert_int_equal(be->inline_ios, 0);
	}
	assert_int_equal(g_ndone, 2 * NFILES);
	assert_int_equal(be->ops->inflight(be), 0);
	for (unsigned k = 0; k < g_ndone; k++) {
		const struct stor_io_req *r = g_done[k].req;

		assert_int_equal(g_done[k].res, r->op == STOR_IO_WRITE ? (int)WLEN : 0);
	}
	if (mode == STOR_INLINE_AUTO) {
		/* Queue order: each file's write, then its sync. */
		for (int i = 0; i < NFILES; i++) {
			assert_ptr_equal(g_done[2 * i].req, &w[i]);
			assert_ptr_equal(g_done[2 * i + 1].req, &s[i]);
		}
		/* No worker thread took any of it. */
		assert_int_equal(io_workers_now(), 0);
	} else {
		/* tmpfs has no non-blocking buffered write: the ring handed them to io-wq. */
		assert_true(io_workers_now() > 0);
	}
	for (int i = 0; i < NFILES; i++) {
		check_file(dir, i, 4096u * (unsigned)i, buf[i], WLEN);
		assert_int_equal(be->ops->close(be, h[i]), 0);
		free(buf[i]);
	}
	assert_int_equal(be->inline_files, 0);
	be->ops->destroy(be);
	tu_rm_rf(dir);
	free(dir);
}

static void
test_inline_write_sync(void **state)
{
	(void)state;
	if (!dev_shm_is_tmpfs())
		skip();
	write_sync_round(STOR_INLINE_AUTO);
}

static void
test_ring_write_sync(void **state)
{
	(void)state;
	if (!dev_shm_is_tmpfs())
		skip();
	write_sync_round(STOR_INLINE_OFF);
}

/* A write that fails cancels its linked sync; an unlinked request after it still runs. */
static void
test_inline_link_cancel(void **state)
{
	struct ifix f;
	struct stor_io_req w, s, w2;

	(void)state;
	if (!dev_shm_is_tmpfs())
		skip();
	ifix_open(&f, 9);
	struct stor_backend *be = f.be;
	uint8_t *buf = f.buf;
	int h = f.h;
	/* An unmapped source buffer: pwrite fails with EFAULT before copying a byte. */
	w = (struct stor_io_req){.op = STOR_IO_WRITE, .link_next = 1, .buf_index = -1, .file = h,
	                         .buf = (void *)(uintptr_t)4096, .len = WLEN, .done = on_done};
	s = (struct stor_io_req){.op = STOR_IO_FDATASYNC, .buf_index = -1, .file = h,
	                         .done = on_done};
	w2 = (struct stor_io_req){.op = STOR_IO_WRITE, .buf_index = -1, .file = h, .buf = buf,
	                          .len = WLEN, .off = WLEN, .done = on_done};
	struct stor_io_req *chain[2] = {&w, &s}, *one[1] = {&w2};
	assert_int_equal(be->ops->queue(be, chain, 2), 0);
	assert_int_equal(be->ops->queue(be, one, 1), 0);
	assert_true(be->ops->submit(be) >= 0);
	assert_int_equal(be->ops->poll(be, 64), 3);
	assert_int_equal(g_ndone, 3);
	assert_ptr_equal(g_done[0].req, &w);
	assert_int_equal(g_done[0].res, -EFAULT);
	assert_ptr_equal(g_done[1].req, &s);
	assert_int_equal(g_done[1].res, -ECANCELED);
	assert_ptr_equal(g_done[2].req, &w2);
	assert_int_equal(g_done[2].res, (int)WLEN);
	check_file(f.dir, 0, WLEN, buf, WLEN);
	ifix_close(&f);
}

/* Reads: whole, short at the end of the file; wait() runs queued requests at once. */
static void
test_inline_read_and_wait(void **state)
{
	struct ifix f;
	struct stor_io_req w, r1, r2;
	uint8_t *rb;

	(void)state;
	if (!dev_shm_is_tmpfs())
		skip();
	ifix_open(&f, 3);
	struct stor_backend *be = f.be;
	uint8_t *buf = f.buf;
	int h = f.h;
	rb = aligned_alloc(STOR_BLOCK_SIZE, 2 * WLEN);
	w = (struct stor_io_req){.op = STOR_IO_WRITE, .buf_index = -1, .file = h, .buf = buf,
	                         .len = WLEN, .done = on_done};
	struct stor_io_req *one[1] = {&w};
	assert_int_equal(be->ops->queue(be, one, 1), 0);
	/* wait() with an inline request queued: no sleep, the request runs. */
	assert_int_equal(be->ops->wait(be, 5000000), 0);
	assert_int_equal(be->ops->poll(be, 64), 1);
	assert_int_equal(g_done[0].res, (int)WLEN);
	/* Nothing in flight: wait() says so at once. */
	assert_int_equal(be->ops->wait(be, 5000000), -ETIME);

	r1 = (struct stor_io_req){.op = STOR_IO_READ, .buf_index = -1, .file = h, .buf = rb,
	                          .len = 8192, .off = 4096, .done = on_done};
	r2 = (struct stor_io_req){.op = STOR_IO_READ, .buf_index = -1, .file = h, .buf = rb + WLEN,
	                          .len = WLEN, .off = 8192, .done = on_done};
	struct stor_io_req *two[2] = {&r1, &r2};
	assert_int_equal(be->ops->queue(be, two, 2), 0);
	assert_true(be->ops->submit(be) >= 0);
	assert_int_equal(be->ops->poll(be, 1), 1); /* @max is kept */
	assert_int_equal(be->ops->poll(be, 64), 1);
	assert_int_equal(g_done[1].res, 8192);
	assert_memory_equal(rb, buf + 4096, 8192);
	assert_int_equal(g_done[2].res, (int)(WLEN - 8192)); /* short: the file ends */
	assert_memory_equal(rb + WLEN, buf + 8192, WLEN - 8192);
	assert_int_equal(be->inline_ios, 3);
	free(rb);
	ifix_close(&f);
}

/*
 * A chain of an inline write and a fallocate goes through the ring whole;
 * past inline_max_files, files are the ring's; the build directory's file
 * system (not RAM-backed) is never inline.
 */
/* Descriptors of this process open on a deleted file under @dir. */
static int
deleted_fds(const char *dir)
{
	char link[4200], target[4200];
	int n = 0;

	for (int fd = 0; fd < 4096; fd++) {
		ssize_t len;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		len = readlink(link, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (strncmp(target, dir, strlen(dir)) == 0 && strstr(target, " (deleted)") != NULL)
			n++;
	}
	return n;
}

/*
 * A deleted inline file (retention removing a tmpfs segment) is not freed by
 * its close at once (its pages went in one go: 11 ms per 128 MiB on the
 * reactor): poll() shrinks it 2 MiB at a time, at most one step a
 * millisecond, and closes it once empty. A file that still has a name closes
 * at once.
 */
static void
test_inline_deleted_drained(void **state)
{
	enum { MB = 1 << 20 };
	char path[4200];
	uint8_t *big = calloc(1, 8 * MB);
	struct ifix f;
	int fd, polls = 0, h1;

	(void)state;
	ifix_open(&f, 5);
	snprintf(path, sizeof(path), "%s/f0", f.dir);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, big, 8 * MB), 8 * MB);
	close(fd);
	h1 = bopen(f.be, f.dir, 1); /* keeps its name: closed at once */
	assert_int_equal(f.be->ops->close(f.be, h1), 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(f.be->ops->close(f.be, f.h), 0);
	f.h = -1;
	assert_int_equal(deleted_fds(f.dir), 1); /* kept for draining */
	f.be->ops->poll(f.be, 16);
	f.be->ops->poll(f.be, 16); /* the same millisecond: no second step */
	assert_int_equal(deleted_fds(f.dir), 1);
	while (deleted_fds(f.dir) > 0 && polls < 100) {
		usleep(1100);
		f.be->ops->poll(f.be, 16);
		polls++;
	}
	assert_int_equal(deleted_fds(f.dir), 0);
	/* 8 MiB in 2 MiB steps, at most one a poll: 4 steps, 2 of them perhaps taken by
	 * the two polls above on a loaded machine (a millisecond between them). */
	assert_true(polls >= 2);
	ifix_close(&f);
	free(big);
}

/*
 * release_fd: a deleted file's last descriptor is closed by an io-wq worker
 * (retention on disk frees a segment's blocks there, not on the reactor):
 * counted in flight until its completion, then the descriptor is gone.
 */
static void
test_release_fd(void **state)
{
	char *dir = tu_tmpdir("");
	char path[4200];
	struct stor_backend *be = backend(STOR_INLINE_OFF, 0);
	uint8_t *big = calloc(1, 1 << 20);
	int fd, polls = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/seg", dir);
	fd = open(path, O_RDWR | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, big, 1 << 20), 1 << 20);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(deleted_fds(dir), 1);
	be->ops->release_fd(be, fd);
	assert_int_equal(be->ops->inflight(be), 1);
	assert_int_equal(be->async_closes, 1);
	assert_true(be->ops->submit(be) >= 0);
	while (be->ops->inflight(be) > 0 && polls++ < 1000) {
		be->ops->wait(be, 10000);
		be->ops->poll(be, 16);
	}
	assert_int_equal(be->ops->inflight(be), 0);
	assert_int_equal(deleted_fds(dir), 0);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
	be->ops->destroy(be);
	tu_rm_rf(dir);
	free(dir);
	free(big);
}

/*
 * STOR_IO_TRUNCATE on a file on disk and on one on tmpfs: the size it asks
 * for once poll() completed it, nothing before submit(); through the ring on
 * disk where the kernel can.
 */
static void
truncate_one(const char *base, enum stor_inline_mode mode, bool ring)
{
	char *dir = tu_tmpdir(base);
	struct stor_backend *be = backend(mode, 0);
	uint8_t *big = calloc(1, 1 << 16);
	struct stor_io_req t;
	struct stor_io_req *reqs[1] = {&t};
	uint64_t size = 0;
	char path[4200];
	int h = bopen(be, dir, 0), polls = 0, fd;

	snprintf(path, sizeof(path), "%s/f0", dir);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, big, 1 << 16, 0), 1 << 16);
	close(fd);
	g_ndone = 0;
	t = (struct stor_io_req){.op = STOR_IO_TRUNCATE, .buf_index = -1, .file = h, .off = 5000,
	                         .done = on_done};
	assert_int_equal(be->ops->queue(be, reqs, 1), 0);
	assert_int_equal(be->ops->inflight(be), 1);
	assert_int_equal(be->ops->size(be, h, &size), 0);
	assert_int_equal(size, 1 << 16); /* queued only */
	assert_true(be->ops->submit(be) >= 0);
	while (g_ndone == 0 && polls++ < 1000) {
		be->ops->wait(be, 10000);
		be->ops->poll(be, 16);
	}
	assert_int_equal(g_ndone, 1);
	assert_int_equal(g_done[0].res, 0);
	assert_int_equal(be->ops->inflight(be), 0);
	assert_int_equal(be->ops->size(be, h, &size), 0);
	assert_int_equal(size, 5000);
	assert_int_equal(be->async_truncates, ring ? 1 : 0);
	assert_int_equal(be->inline_ios, ring ? 0 : 1);
	assert_int_equal(be->ops->close(be, h), 0);
	be->ops->destroy(be);
	tu_rm_rf(dir);
	free(dir);
	free(big);
}

static void
test_truncate(void **state)
{
	(void)state;
	truncate_one("", STOR_INLINE_OFF, tu_ring_has_op(TU_OP_FTRUNCATE));
	if (dev_shm_is_tmpfs())
		truncate_one("/dev/shm", STOR_INLINE_AUTO, false);
}

static void
test_inline_limits(void **state)
{
	char *dir, *disk;
	struct stor_backend *be;
	struct stor_io_req w, a;
	uint8_t *buf = aligned_alloc(STOR_BLOCK_SIZE, WLEN);
	struct statfs sf;
	int h0, h1, h2;

	(void)state;
	if (!dev_shm_is_tmpfs())
		skip();
	dir = tu_tmpdir("/dev/shm");
	disk = tu_tmpdir("");
	be = backend(STOR_INLINE_AUTO, 1);
	h0 = bopen(be, dir, 0);
	h1 = bopen(be, dir, 1);
	assert_int_equal(be->inline_files, 1); /* the limit */
	assert_int_equal(statfs(disk, &sf), 0);
	h2 = bopen(be, disk, 2);
	assert_int_equal(be->inline_files, 1);
	if (sf.f_type != TMPFS_MAGIC && sf.f_type != RAMFS_MAGIC) {
		/* Close the inline one: the disk file opened after it stays the ring's. */
		assert_int_equal(be->ops->close(be, h2), 0);
		assert_int_equal(be->ops->close(be, h0), 0);
		assert_int_equal(be->inline_files, 0);
		h2 = bopen(be, disk, 2);
		assert_int_equal(be->inline_files, 0);
		h0 = bopen(be, dir, 0);
		assert_int_equal(be->inline_files, 1);
	}
	fill(buf, WLEN, 5);
	g_ndone = 0;
	w = (struct stor_io_req){.op = STOR_IO_WRITE, .link_next = 1, .buf_index = -1,
	                         .file = h0, .buf = buf, .len = WLEN, .done = on_done};
	a = (struct stor_io_req){.op = STOR_IO_FALLOCATE, .buf_index = -1, .file = h0,
	                         .off = 0, .len = 4 * WLEN, .done = on_done};
	struct stor_io_req *chain[2] = {&w, &a};
	assert_int_equal(be->ops->queue(be, chain, 2), 0);
	assert_true(be->ops->submit(be) >= 0);
	while (g_ndone < 2) {
		be->ops->wait(be, 100000);
		be->ops->poll(be, 64);
	}
	assert_int_equal(be->inline_ios, 0); /* the ring did both */
	assert_ptr_equal(g_done[0].req, &w);
	assert_int_equal(g_done[0].res, (int)WLEN);
	assert_ptr_equal(g_done[1].req, &a);
	assert_int_equal(g_done[1].res, 0);
	check_file(dir, 0, 0, buf, WLEN);
	uint64_t size = 0;
	assert_int_equal(be->ops->size(be, h0, &size), 0);
	assert_int_equal(size, 4 * WLEN);
	be->ops->close(be, h0);
	be->ops->close(be, h1);
	be->ops->close(be, h2);
	assert_int_equal(be->inline_files, 0);
	be->ops->destroy(be);
	free(buf);
	tu_rm_rf(dir);
	tu_rm_rf(disk);
	free(dir);
	free(disk);
}

/* ---- through the engine ------------------------------------------------- */

#define ELOGS 4
#define EBATCHES 44 /* 40 in the first pass, 4 more after the restart */

static unsigned g_acks;

static void
on_ack(void *arg, int rc, int64_t base)
{
	(void)arg;
	(void)base;
	assert_int_equal(rc, 0);
	g_acks++;
}

/* Every batch of @log read back (tail cache or inline disk reads) equals what was appended. */
static void
check_log(struct stor_engine *e, struct stor_log *log, uint8_t (*want)[8192], const size_t *len,
          int n)
{
	size_t bsz = stor_read_buf_size(64 << 10);
	uint8_t *rbuf = aligned_alloc(STOR_BLOCK_SIZE, bsz);
	int64_t next = 0;
	int k = 0;

	while (next < stor_log_end_offset(log)) {
		struct stor_read rd = {.buf = rbuf, .buf_size = bsz};
		size_t pos = 0;

		assert_int_equal(tu_read(e, log, &rd, next, 64 << 10), 0);
		assert_true(rd.len > 0);
		while (pos < rd.len) {
			uint32_t blen = 12u + ((uint32_t)rd.data[pos + 8] << 24 |
			                       (uint32_t)rd.data[pos + 9] << 16 |
			                       (uint32_t)rd.data[pos + 10] << 8 | rd.data[pos + 11]);
			assert_true(k < n);
			assert_int_equal(blen, len[k]);
			/* Past baseOffset (the log sets it), byte for byte. */
			assert_memory_equal(rd.data + pos + 8, want[k] + 8, blen - 8);
			pos += blen;
			k++;
		}
		next = rd.next_offset;
		stor_read_release(&rd);
	}
	assert_int_equal(k, n);
	free(rbuf);
}

/*
 * Four logs on /dev/shm, default options: every tick's appends (durable
 * ones with their fdatasync) are acknowledged by the poll that wrote them
 * (two when a roll's sync of the old segment comes first), read back before
 * and after a clean restart.
 */
/* Queue one inline write of @len bytes of @buf at @off, run and complete it: its result. */
static int
inline_write(struct stor_backend *be, int h, const uint8_t *buf, uint32_t len, uint64_t off)
{
	struct stor_io_req w = {.op = STOR_IO_WRITE, .buf_index = -1, .file = h,
	                        .buf = (void *)buf, .len = len, .off = off, .done = on_done};
	struct stor_io_req *one[1] = {&w};

	g_ndone = 0;
	assert_int_equal(be->ops->queue(be, one, 1), 0);
	assert_true(be->ops->submit(be) >= 0);
	assert_int_equal(be->ops->poll(be, 64), 1);
	assert_ptr_equal(g_done[0].req, &w);
	return g_done[0].res;
}

/*
 * Small writes through the mapping: 1,000 appends of 170 bytes (three
 * reservation steps), one across a window's end (at 4 MiB) and one of 2 KiB
 * (both pwrite), a truncate below the reserved range and appends after it.
 */
static void
test_inline_mapped_writes(void **state)
{
	enum { N = 1000, L = 170 };
	char *dir;
	struct stor_backend *be;
	uint8_t *buf = malloc((size_t)N * L + 4096);
	uint64_t size, off = 0;
	int h;

	(void)state;
	if (!dev_shm_is_tmpfs())
		skip();
	dir = tu_tmpdir("/dev/shm");
	be = backend_map(STOR_INLINE_AUTO, 0, 1024);
	h = bopen(be, dir, 0);
	fill(buf, (size_t)N * L + 4096, 5);
	for (int i = 0; i < N; i++, off += L)
		assert_int_equal(inline_write(be, h, buf + off, L, off), L);
	assert_int_equal(be->inline_mapped_writes, N);
	check_file(dir, 0, 0, buf, off);
	/* Reserved in 64 KiB steps past the data: the size runs ahead, less than a step. */
	assert_int_equal(be->ops->size(be, h, &size), 0);
	assert_int_equal(size, (off + 65535) / 65536 * 65536);
	/* A write of more than inline_map_bytes is a pwrite. */
	assert_int_equal(inline_write(be, h, buf + off, 2048, off), 2048);
	assert_int_equal(be->inline_mapped_writes, N);
	check_file(dir, 0, 0, buf, off + 2048);
	/* Across the window's end: pwrite; the next one inside the next window: mapped. */
	assert_int_equal(inline_write(be, h, buf, 200, (4u << 20) - 100), 200);
	assert_int_equal(be->inline_mapped_writes, N);
	assert_int_equal(inline_write(be, h, buf + 200, 300, 4u << 20), 300);
	assert_int_equal(be->inline_mapped_writes, N + 1);
	check_file(dir, 0, (4u << 20) - 100, buf, 100); /* the rest written over next */
	check_file(dir, 0, 4u << 20, buf + 200, 300);
	/* Trimmed to 1,000 bytes (as a roll or close trims): appends reserve again. */
	assert_int_equal(be->ops->truncate(be, h, 1000), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(inline_write(be, h, buf + 1000 + (size_t)i * L, L,
		                              1000 + (uint64_t)i * L), L);
	assert_int_equal(be->inline_mapped_writes, N + 5);
	check_file(dir, 0, 0, buf, 1000 + 4 * L);
	assert_int_equal(be->ops->size(be, h, &size), 0);
	assert_int_equal(size, 65536);
	assert_int_equal(be->ops->close(be, h), 0);
	be->ops->destroy(be);
	tu_rm_rf(dir);
	free(dir);
	free(buf);
}

/*
 * A small write the file system refuses: the reservation fails, the pwrite
 * after it gets the errno (EFBIG past RLIMIT_FSIZE, SIGXFSZ ignored), and
 * the process gets no SIGBUS. A write below the limit is still mapped.
 */
static void
test_inline_mapped_refused(void **state)
{
	struct rlimit old, lim;
	struct sigaction ign = {.sa_handler = SIG_IGN}, was;
	struct ifix f;

	(void)state;
	if (!dev_shm_is_tmpfs())
		skip();
	f.dir = tu_tmpdir("/dev/shm");
	f.be = backend_map(STOR_INLINE_AUTO, 0, 1024);
	f.h = bopen(f.be, f.dir, 0);
	f.buf = aligned_alloc(STOR_BLOCK_SIZE, WLEN);
	fill(f.buf, WLEN, 9);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 100000;
	assert_int_equal(sigaction(SIGXFSZ, &ign, &was), 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	/* The step (to 64 KiB) fits under the limit: mapped. */
	assert_int_equal(inline_write(f.be, f.h, f.buf, 170, 0), 170);
	assert_int_equal(f.be->inline_mapped_writes, 1);
	/* Its step would end at 128 KiB, past the limit: refused, then pwrite fails too. */
	assert_int_equal(inline_write(f.be, f.h, f.buf, 170, 100000), -EFBIG);
	assert_int_equal(f.be->inline_mapped_writes, 1);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(sigaction(SIGXFSZ, &was, NULL), 0);
	check_file(f.dir, 0, 0, f.buf, 170);
	ifix_close(&f);
}

static void
test_engine_inline(void **state)
{
	static uint8_t want[ELOGS][EBATCHES][8192];
	static size_t wlen[ELOGS][EBATCHES];
	struct stor_engine_opts o;
	struct stor_engine_stats st;
	struct stor_log_config cfg;
	struct stor_log *logs[ELOGS];
	char dir[4200];
	char *root;
	int err = 0, one_poll = 0;

	(void)state;
	stor_engine_opts_init(&o);
	assert_int_equal(o.inline_io, STOR_INLINE_AUTO);
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.inline", "false"), 0);
	assert_int_equal(o.inline_io, STOR_INLINE_OFF);
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.inline", "true"), -EINVAL);
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.inline", "auto"), 0);
	assert_int_equal(o.inline_io, STOR_INLINE_AUTO);
	assert_int_equal(o.inline_map_bytes, 1024);
	assert_int_equal(stor_engine_opts_set(&o, "storage.io.inline.map.bytes", "x"), -EINVAL);
	if (!dev_shm_is_tmpfs())
		skip();
	root = tu_tmpdir("/dev/shm");
	o.chunk_bytes = 256 << 10;
	o.chunk_count = 8;
	for (int pass = 0; pass < 2; pass++) {
		struct stor_engine *e;
		int from = pass == 0 ? 0 : 40, to = pass == 0 ? 40 : EBATCHES;

		/* The first pass's writes (rolls, trims) through the mapping, the second's not. */
		assert_int_equal(stor_engine_opts_set(&o, "storage.io.inline.map.bytes",
		                                      pass == 0 ? "65536" : "0"),
		                 0);
		e = stor_engine_create(&o);

		assert_non_null(e);
		stor_log_config_init(&cfg);
		cfg.segment_bytes = 64 << 10; /* two rolls per log in the first pass */
		cfg.preallocate = false;
		for (int i = 0; i < ELOGS; i++) {
			snprintf(dir, sizeof(dir), "%s/p-%d", root, i);
			logs[i] = stor_log_open(e, dir, &cfg, &err);
			assert_non_null(logs[i]);
		}
		for (int k = from; k < to; k++) {
			int polls = 0;

			g_acks = 0;
			for (int i = 0; i < ELOGS; i++) {
				wlen[i][k] = tu_batch(want[i][k], sizeof(want[i][k]), 3, 1000 + k,
				                      1000 + (size_t)(k * 7 % 200),
				                      (unsigned)(k * ELOGS + i), NULL);
				assert_true(wlen[i][k] > 0);
				assert_int_equal(stor_log_append(logs[i], want[i][k], wlen[i][k],
				                                 k % 2 ? STOR_APPEND_DURABLE : 0,
				                                 on_ack, NULL, NULL),
				                 0);
			}
			while (g_acks < ELOGS && polls < 2) {
				stor_engine_poll(e);
				polls++;
			}
			assert_int_equal(g_acks, ELOGS);
			one_poll += polls == 1;
		}
		/* Through the ring (io-wq), the first poll would not have seen the writes done. */
		assert_true(one_poll >= (pass == 0 ? 30 : 34));
		stor_engine_stats(e, &st);
		assert_true(st.inline_files >= ELOGS);
		assert_true(st.inline_ios >= (uint64_t)(to - from) * ELOGS);
		if (pass == 0)
			assert_true(st.inline_mapped_writes >= (uint64_t)(to - from) * ELOGS);
		else
			assert_int_equal(st.inline_mapped_writes, 0);
		for (int i = 0; i < ELOGS; i++) {
			check_log(e, logs[i], want[i], wlen[i], to);
			assert_int_equal(stor_log_close(logs[i]), 0);
		}
		stor_engine_stats(e, &st);
		assert_int_equal(st.inline_files, 0);
		stor_engine_destroy(e);
	}
	tu_rm_rf(root);
	free(root);
}

/*
 * read_start()/read_wait() on a file of @base's file system (O_DIRECT where
 * it takes it; /dev/shm's is inline): a read longer than the file comes
 * back short at its end with every byte right, one from inside the file
 * and one from its end too; a second start while one is in flight is
 * refused; a wait without a start is an error; a read of more than the
 * ring's pieces still reads it all.
 */
static void
read_ahead_round(const char *base, unsigned flags)
{
	const size_t fsize = (3u << 20) + 5000, cap = 20u << 20;
	char *dir = tu_tmpdir(base);
	struct stor_backend *be = backend(STOR_INLINE_AUTO, 0);
	uint8_t *want = malloc(fsize), *buf = aligned_alloc(STOR_BLOCK_SIZE, cap);
	char path[4200];
	int h = -1, fd;

	assert_non_null(dir);
	fill(want, fsize, 5);
	snprintf(path, sizeof(path), "%s/f0", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, want, fsize), (ssize_t)fsize);
	close(fd);
	if (be->ops->open(be, path, flags, &h) != 0)
		assert_int_equal(be->ops->open(be, path, 0, &h), 0);
	assert_int_equal(be->ops->read_wait(be), -EINVAL);

	memset(buf, 0, cap);
	assert_int_equal(be->ops->read_start(be, h, buf, 8u << 20, 0), 0);
	assert_int_equal(be->ops->read_start(be, h, buf, 4096, 0), -EBUSY);
	assert_int_equal(be->ops->read_wait(be), (int64_t)fsize);
	assert_memory_equal(buf, want, fsize);

	memset(buf, 0, cap);
	assert_int_equal(be->ops->read_start(be, h, buf, 1u << 20, 1u << 20), 0);
	assert_int_equal(be->ops->read_wait(be), 1 << 20);
	assert_memory_equal(buf, want + (1u << 20), 1u << 20);

	memset(buf, 0, cap);
	assert_int_equal(be->ops->read_start(be, h, buf, 2u << 20, 3u << 20), 0);
	assert_int_equal(be->ops->read_wait(be), 5000);
	assert_memory_equal(buf, want + (3u << 20), 5000);

	assert_int_equal(be->ops->read_start(be, h, buf, 1u << 20, 4u << 20), 0);
	assert_int_equal(be->ops->read_wait(be), 0);

	memset(buf, 0, cap);
	assert_int_equal(be->ops->read_start(be, h, buf, cap, 0), 0);
	assert_int_equal(be->ops->read_wait(be), (int64_t)fsize);
	assert_memory_equal(buf, want, fsize);

	assert_int_equal(be->ops->close(be, h), 0);
	be->ops->destroy(be);
	free(want);
	free(buf);
	tu_rm_rf(dir);
	free(dir);
}

static void
test_read_ahead(void **state)
{
	(void)state;
	read_ahead_round("", STOR_OPEN_DIRECT);
	if (dev_shm_is_tmpfs())
		read_ahead_round("/dev/shm", STOR_OPEN_DIRECT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_inline_write_sync),
	        cmocka_unit_test(test_ring_write_sync),
	        cmocka_unit_test(test_inline_link_cancel),
	        cmocka_unit_test(test_inline_read_and_wait),
	        cmocka_unit_test(test_inline_limits),
	        cmocka_unit_test(test_inline_deleted_drained),
	        cmocka_unit_test(test_release_fd),
	        cmocka_unit_test(test_truncate),
	        cmocka_unit_test(test_inline_mapped_writes),
	        cmocka_unit_test(test_inline_mapped_refused),
	        cmocka_unit_test(test_engine_inline),
	        cmocka_unit_test(test_read_ahead),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
