/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the storage unit tests: temporary directories, batch
 * construction through kp_batch_builder, a counting/fault-injecting wrapper
 * around the io_uring backend (which also shows that the backend interface
 * is enough to put another backend under the log), and polling helpers.
 */
#ifndef SLP_STOR_TEST_UTIL_H
#define SLP_STOR_TEST_UTIL_H

#include <dirent.h>
#include <liburing.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kp_batch.h"
#include "stor_engine.h"
#include "stor_format.h"
#include "stor_io.h"
#include "stor_log.h"

#ifndef STOR_TEST_DIR
#define STOR_TEST_DIR "/tmp"
#endif

/* ---- temporary directories --------------------------------------------- */

static inline void
tu_rm_rf(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char p[8192];

	if (d == NULL) {
		unlink(path);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (strlen(path) + strlen(de->d_name) + 2 > 4096)
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		tu_rm_rf(p);
	}
	closedir(d);
	rmdir(path);
}

/* mkdtemp under @base ("" for STOR_TEST_DIR); returns a malloc'ed path. */
static inline char *
tu_tmpdir(const char *base)
{
	char tmpl[4096];

	snprintf(tmpl, sizeof(tmpl), "%s/stor-test-XXXXXX", base && *base ? base : STOR_TEST_DIR);
	if (mkdtemp(tmpl) == NULL)
		return NULL;
	return strdup(tmpl);
}

/* ---- batches ------------------------------------------------------------- */

/*
 * Build a batch of @n records into @buf (cap bytes): record i has key
 * "k<key_base+i>" (or the given @key), a value of @vlen bytes derived from
 * @seed and timestamp @ts + i. Returns the batch size.
 */
static inline size_t
tu_batch(uint8_t *buf, size_t cap, int n, int64_t ts, size_t vlen, unsigned seed, const char *key)
{
	struct kp_batch_builder b;
	uint8_t val[65536];
	char k[64];
	size_t size = 0;

	if (vlen > sizeof(val))
		vlen = sizeof(val);
	if (kp_batch_builder_start(&b, buf, cap, KP_COMPRESSION_NONE) != 0)
		return 0;
	for (int i = 0; i < n; i++) {
		for (size_t j = 0; j < vlen; j++)
			val[j] = (uint8_t)(seed * 31u + (unsigned)i * 7u + (unsigned)j);
		if (key != NULL)
			snprintf(k, sizeof(k), "%s", key);
		else
			snprintf(k, sizeof(k), "k%u-%d", seed, i);
		if (kp_batch_builder_add(&b, ts + i, k, strlen(k), val, vlen, NULL, 0) != 0)
			return 0;
	}
	if (kp_batch_builder_finish(&b, &size) != 0)
		return 0;
	return size;
}

/* ---- the kernel --------------------------------------------------------- */

/* Whether this kernel's io_uring runs opcode @op (a probe of a ring of its own). */
static inline int
tu_ring_has_op(int op)
{
	struct io_uring ring;
	struct io_uring_probe *probe;
	int has = 0;

	if (io_uring_queue_init(2, &ring, 0) != 0)
		return 0;
	probe = io_uring_get_probe_ring(&ring);
	if (probe != NULL) {
		has = op <= probe->last_op && (probe->ops[op].flags & IO_URING_OP_SUPPORTED) != 0;
		io_uring_free_probe(probe);
	}
	io_uring_queue_exit(&ring);
	return has;
}

#define TU_OP_FTRUNCATE 55 /* IORING_OP_FTRUNCATE, Linux 6.9 (not in Debian 12's headers) */

/* ---- a wrapper backend ------------------------------------------------- */

struct tu_backend {
	struct stor_backend be;
	struct stor_backend *inner;
	int refuse_direct;   /* open(STOR_OPEN_DIRECT) fails with -EINVAL, like old tmpfs */
	unsigned syncs;      /* FDATASYNC requests queued */
	unsigned writes;     /* WRITE requests queued */
	unsigned allocs;     /* FALLOCATE requests queued */
	unsigned sync_allocs; /* allocate() calls: preallocations done in place (a roll while
	                       * the last segment's FALLOCATE was still in flight) */
	unsigned submits;    /* submit calls that had work */
	unsigned max_batch;  /* largest number of requests handed over in one submit */
	unsigned queued_now; /* since the last submit */
	uint64_t bytes;      /* bytes written */
	int misaligned;      /* a direct write was not block aligned */
	uint8_t direct[256]; /* handle (< 256) -> opened with STOR_OPEN_DIRECT */
	int hold_syncs;      /* keep FDATASYNC and FSYNC requests queued alone (a roll's, its
	                        directory's) until released */
	unsigned n_held;
	struct stor_io_req *held[16];
	unsigned reads_ahead;   /* read_start calls */
	uint64_t ahead_bytes;   /* their bytes */
	int fail_ahead_at;      /* > 0: the read_start this many calls in fails its read_wait
	                           with -EIO (an I/O error in a recovery scan) */
	int ahead_fails;        /* the one in flight fails */
};

/* Hand the held syncs to the real backend (they complete at a later poll); hold later ones. */
static inline void
tu_release_held(struct tu_backend *t)
{
	for (unsigned i = 0; i < t->n_held; i++)
		(void)t->inner->ops->queue(t->inner, &t->held[i], 1);
	t->n_held = 0;
}

/* The same, and hold no more. */
static inline void
tu_release_syncs(struct tu_backend *t)
{
	tu_release_held(t);
	t->hold_syncs = 0;
}

static inline struct tu_backend *
tu_be(struct stor_backend *be)
{
	return (struct tu_backend *)be;
}

static inline int
tu_open(struct stor_backend *be, const char *path, unsigned flags, int *handle)
{
	int rc;

	if ((flags & STOR_OPEN_DIRECT) && tu_be(be)->refuse_direct)
		return -EINVAL;
	rc = tu_be(be)->inner->ops->open(tu_be(be)->inner, path, flags, handle);
	if (rc == 0 && *handle >= 0 && *handle < 256)
		tu_be(be)->direct[*handle] = (flags & STOR_OPEN_DIRECT) != 0;
	return rc;
}
static inline int
tu_close(struct stor_backend *be, int h)
{
	return tu_be(be)->inner->ops->close(tu_be(be)->inner, h);
}
static inline int
tu_allocate(struct stor_backend *be, int h, uint64_t size)
{
	tu_be(be)->sync_allocs++;
	return tu_be(be)->inner->ops->allocate(tu_be(be)->inner, h, size);
}
static inline int
tu_truncate(struct stor_backend *be, int h, uint64_t size)
{
	return tu_be(be)->inner->ops->truncate(tu_be(be)->inner, h, size);
}
static inline int
tu_size(struct stor_backend *be, int h, uint64_t *size)
{
	return tu_be(be)->inner->ops->size(tu_be(be)->inner, h, size);
}
static inline int64_t
tu_pread(struct stor_backend *be, int h, void *buf, size_t len, uint64_t off)
{
	return tu_be(be)->inner->ops->pread(tu_be(be)->inner, h, buf, len, off);
}
static inline int
tu_read_start(struct stor_backend *be, int h, void *buf, size_t len, uint64_t off)
{
	struct tu_backend *t = tu_be(be);

	t->reads_ahead++;
	t->ahead_bytes += len;
	t->ahead_fails = t->fail_ahead_at > 0 && (int)t->reads_ahead == t->fail_ahead_at;
	return t->inner->ops->read_start(t->inner, h, buf, len, off);
}
static inline int64_t
tu_read_wait(struct stor_backend *be)
{
	struct tu_backend *t = tu_be(be);
	int64_t n = t->inner->ops->read_wait(t->inner);

	return t->ahead_fails ? -EIO : n;
}
static inline int
tu_register(struct stor_backend *be, const struct iovec *iov, unsigned n)
{
	return tu_be(be)->inner->ops->register_buffers(tu_be(be)->inner, iov, n);
}
static inline int
tu_queue(struct stor_backend *be, struct stor_io_req **reqs, unsigned n)
{
	struct tu_backend *t = tu_be(be);
	int rc;

	if (t->hold_syncs && n == 1 &&
	    (reqs[0]->op == STOR_IO_FDATASYNC || reqs[0]->op == STOR_IO_FSYNC) && t->n_held < 16) {
		t->held[t->n_held++] = reqs[0];
		t->syncs++;
		return 0;
	}
	rc = t->inner->ops->queue(t->inner, reqs, n);
	if (rc != 0)
		return rc;
	for (unsigned i = 0; i < n; i++) {
		if (reqs[i]->op == STOR_IO_FDATASYNC)
			t->syncs++;
		if (reqs[i]->op == STOR_IO_FALLOCATE)
			t->allocs++;
		if (reqs[i]->op == STOR_IO_WRITE) {
			t->writes++;
			t->bytes += reqs[i]->len;
			/* Buffered writes need no alignment (the log writes only new bytes). */
			if ((reqs[i]->file < 0 || reqs[i]->file >= 256 || t->direct[reqs[i]->file]) &&
			    (reqs[i]->len | reqs[i]->off | (uintptr_t)reqs[i]->buf) % STOR_BLOCK_SIZE)
				t->misaligned = 1;
		}
	}
	t->queued_now += n;
	return 0;
}
static inline int
tu_submit(struct stor_backend *be)
{
	struct tu_backend *t = tu_be(be);

	if (t->queued_now) {
		t->submits++;
		if (t->queued_now > t->max_batch)
			t->max_batch = t->queued_now;
		t->queued_now = 0;
	}
	return t->inner->ops->submit(t->inner);
}
static inline int
tu_poll(struct stor_backend *be, unsigned max)
{
	return tu_be(be)->inner->ops->poll(tu_be(be)->inner, max);
}
static inline int
tu_wait(struct stor_backend *be, unsigned timeout_us)
{
	return tu_be(be)->inner->ops->wait(tu_be(be)->inner, timeout_us);
}
static inline unsigned
tu_inflight(struct stor_backend *be)
{
	return tu_be(be)->inner->ops->inflight(tu_be(be)->inner);
}
static inline void
tu_destroy(struct stor_backend *be)
{
	tu_be(be)->inner->ops->destroy(tu_be(be)->inner);
	free(be);
}

static const struct stor_backend_ops tu_ops = {
        .name = "test-wrapper",
        .open = tu_open,
        .close = tu_close,
        .allocate = tu_allocate,
        .truncate = tu_truncate,
        .size = tu_size,
        .pread = tu_pread,
        .read_start = tu_read_start,
        .read_wait = tu_read_wait,
        .register_buffers = tu_register,
        .queue = tu_queue,
        .submit = tu_submit,
        .poll = tu_poll,
        .wait = tu_wait,
        .inflight = tu_inflight,
        .destroy = tu_destroy,
};

static inline struct tu_backend *
tu_backend_new(void)
{
	struct stor_uring_opts uo = {.queue_depth = 128, .max_files = 256};
	struct tu_backend *t = calloc(1, sizeof(*t));

	t->be.ops = &tu_ops;
	t->inner = stor_uring_create(&uo, NULL);
	if (t->inner == NULL) {
		free(t);
		return NULL;
	}
	t->be.file_slots = t->inner->file_slots;
	t->be.no_fds = t->inner->no_fds;
	return t;
}

/* ---- log capture --------------------------------------------------------- */

struct tu_logcap {
	char text[16384];
	size_t len;
};

static inline void
tu_log_fn(void *ctx, int level, const char *msg)
{
	struct tu_logcap *c = ctx;
	int n;

	(void)level;
	if (c == NULL)
		return;
	n = snprintf(c->text + c->len, sizeof(c->text) - c->len, "%s\n", msg);
	if (n > 0 && c->len + (size_t)n < sizeof(c->text))
		c->len += (size_t)n;
}

/* ---- engine + append helpers ---------------------------------------------- */

static inline struct stor_engine *
tu_engine(struct tu_backend **wrap, enum stor_direct_mode direct, size_t chunk, unsigned nchunks,
          struct tu_logcap *cap)
{
	struct stor_engine_opts o;

	stor_engine_opts_init(&o);
	o.direct = direct;
	o.chunk_bytes = chunk;
	o.chunk_count = nchunks;
	o.log_fn = tu_log_fn;
	o.log_ctx = cap;
	if (wrap != NULL) {
		*wrap = tu_backend_new();
		o.backend = &(*wrap)->be;
	}
	return stor_engine_create(&o);
}

struct tu_ack {
	int done;
	int rc;
	int64_t base;
};

static inline void
tu_ack_cb(void *arg, int rc, int64_t base)
{
	struct tu_ack *a = arg;

	a->done++;
	a->rc = rc;
	a->base = base;
}

/* Poll until *flag reaches @want; bounded at 30 s of wall time. */
static inline int
tu_poll_until(struct stor_engine *e, const int *flag, int want)
{
	time_t end = time(NULL) + 30;

	while (*flag < want && time(NULL) < end)
		for (int i = 0; i < 1000 && *flag < want; i++)
			stor_engine_poll(e);
	return *flag >= want ? 0 : -ETIMEDOUT;
}

struct tu_rd {
	int done;
	int rc;
};

static inline void
tu_read_cb(void *arg, struct stor_read *rd, int rc)
{
	struct tu_rd *r = arg;

	(void)rd;
	r->done = 1;
	r->rc = rc;
}

/* Synchronous read for tests: returns 0 and fills @rd (release it after). */
static inline int
tu_read(struct stor_engine *e, struct stor_log *log, struct stor_read *rd, int64_t off, size_t max)
{
	struct tu_rd r = {0};
	int rc = stor_log_read(log, rd, off, max, tu_read_cb, &r);

	if (rc != -EINPROGRESS)
		return rc;
	if (tu_poll_until(e, &r.done, 1) != 0)
		return -ETIMEDOUT;
	return r.rc;
}

#endif /* SLP_STOR_TEST_UTIL_H */
