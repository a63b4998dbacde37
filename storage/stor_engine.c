/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The storage engine: the backend, the tail-cache chunk pool and the
 * per-tick gather/submit/reap loop (see stor_engine.h).
 *
 * Chunk pool: chunk_count chunks of chunk_bytes, allocated once through the
 * allocator hook and registered with the backend as fixed buffers. A chunk
 * is free, held by a log (its active chunk or a sealed one kept as read
 * cache), or reclaimable: every byte in it written (the write completed, so
 * a read of its range from the file returns the same bytes) and not
 * referenced by a read (a Fetch response pinning it holds a reference).
 * Reclaimable chunks stay readable until another log needs a chunk, which
 * takes the least recently released one. That includes a log's active
 * chunk once its appends are written: an idle log holds no chunk, only a
 * copy of its partial last block (stor_log_chunk_evict()), so the pool is
 * sized for throughput, not for the number of open logs. A log whose chunk
 * was taken reads that range from disk and gets a chunk back at its next
 * append.
 */
#include "stor_engine.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "stor_internal.h"

static void removals_free(struct stor_engine *e);

void
stor_engine_opts_init(struct stor_engine_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->queue_depth = 256;
	opts->max_files = 0; /* from RLIMIT_NOFILE when the engine is created */
	opts->direct = STOR_DIRECT_AUTO;
	opts->chunk_bytes = (1u << 20) + 8192; /* message.max.bytes (1 MiB + 12) + a block */
	opts->chunk_count = 64;
	opts->io_workers = 64; /* docs/storage.md "Many partitions": the kernel's 8 on 2 CPUs */
	opts->inline_map_bytes = 1024; /* docs/storage.md "How writes complete" */
}

static int
parse_u64(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;

	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || x < lo || x > hi)
		return -EINVAL;
	*out = x;
	return 0;
}

int
stor_engine_opts_set(struct stor_engine_opts *opts, const char *key, const char *value)
{
	uint64_t x;

	if (strcmp(key, "storage.direct.io") == 0) {
		if (strcmp(value, "auto") == 0)
			opts->direct = STOR_DIRECT_AUTO;
		else if (strcmp(value, "true") == 0)
			opts->direct = STOR_DIRECT_ON;
		else if (strcmp(value, "false") == 0)
			opts->direct = STOR_DIRECT_OFF;
		else
			return -EINVAL;
		return 0;
	}
	if (strcmp(key, "storage.io.inline") == 0) {
		if (strcmp(value, "auto") == 0)
			opts->inline_io = STOR_INLINE_AUTO;
		else if (strcmp(value, "false") == 0)
			opts->inline_io = STOR_INLINE_OFF;
		else
			return -EINVAL;
		return 0;
	}
	if (strcmp(key, "storage.io.inline.map.bytes") == 0) {
		if (parse_u64(value, 0, 1u << 20, &x) != 0)
			return -EINVAL;
		opts->inline_map_bytes = (unsigned)x;
		return 0;
	}
	if (strcmp(key, "storage.io.sqpoll") == 0) {
		if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
			return -EINVAL;
		opts->sqpoll = strcmp(value, "true") == 0;
		return 0;
	}
	if (strcmp(key, "storage.io.queue.depth") == 0) {
		if (parse_u64(value, 8, 32768, &x) != 0)
			return -EINVAL;
		opts->queue_depth = (unsigned)x;
		return 0;
	}
	if (strcmp(key, "storage.cache.chunk.bytes") == 0) {
		if (parse_u64(value, 2 * STOR_BLOCK_SIZE, 1u << 30, &x) != 0 || x % STOR_BLOCK_SIZE)
			return -EINVAL;
		opts->chunk_bytes = (size_t)x;
		return 0;
	}
	if (strcmp(key, "storage.io.max.files") == 0) {
		if (parse_u64(value, 0, 1u << 20, &x) != 0)
			return -EINVAL;
		opts->max_files = (unsigned)x;
		return 0;
	}
	if (strcmp(key, "storage.max.open.files") == 0) {
		if (parse_u64(value, 0, 1u << 24, &x) != 0 || (x != 0 && x < 16))
			return -EINVAL;
		opts->max_open_files = (unsigned)x;
		return 0;
	}
	if (strcmp(key, "storage.io.workers") == 0) {
		if (parse_u64(value, 0, 4096, &x) != 0)
			return -EINVAL;
		opts->io_workers = (unsigned)x;
		return 0;
	}
	if (strcmp(key, "storage.io.workers.cpus") == 0) {
		uint64_t mask[STOR_CPU_MASK_WORDS];

		if (strlen(value) >= sizeof(opts->io_workers_cpus))
			return -EINVAL;
		if (value[strspn(value, " \t")] != '\0' &&
		    stor_cpu_list_parse(value, mask, STOR_CPU_MASK_WORDS) < 0)
			return -EINVAL;
		snprintf(opts->io_workers_cpus, sizeof(opts->io_workers_cpus), "%s", value);
		return 0;
	}
	if (strcmp(key, "storage.cache.chunks") == 0) {
		if (parse_u64(value, 1, 16384, &x) != 0)
			return -EINVAL;
		opts->chunk_count = (unsigned)x;
		return 0;
	}
	return -ENOENT;
}

static void *
default_alloc(void *ctx, size_t size, size_t align)
{
	(void)ctx;
	return aligned_alloc(align, size);
}

static void
default_free(void *ctx, void *ptr)
{
	(void)ctx;
	free(ptr);
}

static void
default_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level <= STOR_LOG_WARN)
		fprintf(stderr, "storage: %s\n", msg);
}

void
stor_msg(struct stor_engine *e, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	e->opts.log_fn(e->opts.log_ctx, level, buf);
}

void
stor_prealloc_failed(struct stor_engine *e, const char *dir, int res)
{
	uint64_t now = stor_mono_ms();
	uint64_t missed;

	e->prealloc_failures++;
	if (e->prealloc_warn_ms != 0 && now - e->prealloc_warn_ms < STOR_PREALLOC_WARN_MS)
		return;
	missed = e->prealloc_failures - e->prealloc_failures_logged - 1;
	e->prealloc_warn_ms = now != 0 ? now : 1;
	e->prealloc_failures_logged = e->prealloc_failures;
	if (missed == 0)
		stor_msg(e, STOR_LOG_WARN, "%s: preallocation failed: %s (further failures: "
		         "one warning a minute at most)", dir, strerror(-res));
	else
		stor_msg(e, STOR_LOG_WARN, "%s: preallocation failed: %s (and %llu more "
		         "since the last warning)", dir, strerror(-res),
		         (unsigned long long)missed);
}

uint64_t
stor_mono_ms(void)
{
	struct timespec ts;

	/* COARSE: served by the vDSO, no system call on the hot path. */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
stor_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
stor_flush_done(struct stor_engine *e, uint64_t t0_ns)
{
	uint64_t now = stor_mono_ns();

	e->flushes++;
	e->flush_ns += now > t0_ns ? now - t0_ns : 0;
}

int64_t
stor_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The open-file limit: the smallest that applies (0: none). */
static unsigned
engine_file_limit(const struct stor_engine_opts *o, const struct stor_backend *be)
{
	unsigned lim = o->max_open_files;

	if (!be->no_fds && o->max_open_fds != 0 && (lim == 0 || o->max_open_fds < lim))
		lim = o->max_open_fds;
	/* A margin under the backend's table: a reopen trims before it opens. */
	if (be->file_slots != 0) {
		unsigned slots = be->file_slots > 32 ? be->file_slots - 16 : be->file_slots;
		if (lim == 0 || slots < lim)
			lim = slots;
	}
	return lim;
}

struct stor_engine *
stor_engine_create(const struct stor_engine_opts *opts)
{
	struct stor_engine *e = calloc(1, sizeof(*e));
	struct iovec *iov = NULL;
	const char *why = "";

	if (e == NULL)
		return NULL;
	e->opts = *opts;
	if (e->opts.mem_alloc == NULL) {
		e->opts.mem_alloc = default_alloc;
		e->opts.mem_free = default_free;
	}
	if (e->opts.log_fn == NULL)
		e->opts.log_fn = default_log;
	if (e->opts.chunk_bytes < 2 * STOR_BLOCK_SIZE || e->opts.chunk_bytes % STOR_BLOCK_SIZE ||
	    e->opts.chunk_bytes > (1u << 30) || e->opts.chunk_count == 0 ||
	    e->opts.chunk_count > 16384) {
		free(e);
		errno = EINVAL;
		return NULL;
	}
	TAILQ_INIT(&e->free);
	TAILQ_INIT(&e->reclaim);
	TAILQ_INIT(&e->dirty);
	TAILQ_INIT(&e->timed);
	TAILQ_INIT(&e->all);
	TAILQ_INIT(&e->files);
	TAILQ_INIT(&e->removals);

	if (opts->backend != NULL) {
		e->be = opts->backend;
	} else {
		struct stor_uring_opts uo = {
		        .queue_depth = opts->queue_depth,
		        .max_files = opts->max_files,
		        .sqpoll = opts->sqpoll,
		        .io_workers = opts->io_workers,
		        .io_workers_cpus = opts->io_workers_cpus,
		        .inline_io = opts->inline_io,
		        .inline_map_bytes = opts->inline_map_bytes,
		};
		e->be = stor_uring_create(&uo, &why);
		if (e->be == NULL)
			goto fail;
		if (why[0] != '\0')
			stor_msg(e, STOR_LOG_WARN, "io_uring: %s", why);
	}

	e->file_limit = engine_file_limit(&e->opts, e->be);

	e->chunks = calloc(e->opts.chunk_count, sizeof(*e->chunks));
	iov = calloc(e->opts.chunk_count, sizeof(*iov));
	e->chunk_mem = e->opts.mem_alloc(e->opts.mem_ctx, e->opts.chunk_bytes * e->opts.chunk_count,
	                                 STOR_BLOCK_SIZE);
	if (e->chunks == NULL || iov == NULL || e->chunk_mem == NULL) {
		errno = ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < e->opts.chunk_count; i++) {
		struct stor_chunk *c = &e->chunks[i];
		c->mem = e->chunk_mem + (size_t)i * e->opts.chunk_bytes;
		c->buf_index = (int16_t)i;
		iov[i].iov_base = c->mem;
		iov[i].iov_len = e->opts.chunk_bytes;
		TAILQ_INSERT_TAIL(&e->free, c, lru_link);
		e->free_count++;
	}
	if (e->be->ops->register_buffers(e->be, iov, e->opts.chunk_count) != 0) {
		for (unsigned i = 0; i < e->opts.chunk_count; i++)
			e->chunks[i].buf_index = -1;
		stor_msg(e, STOR_LOG_WARN,
		         "%s: buffer registration refused (RLIMIT_MEMLOCK?), plain buffers",
		         e->be->ops->name);
	}
	free(iov);
	return e;
fail:
	free(iov);
	if (e->chunk_mem != NULL)
		e->opts.mem_free(e->opts.mem_ctx, e->chunk_mem);
	free(e->chunks);
	if (e->be != NULL)
		e->be->ops->destroy(e->be);
	free(e);
	return NULL;
}

void
stor_engine_destroy(struct stor_engine *e)
{
	if (e == NULL)
		return;
	stor_engine_drain(e);
	removals_free(e);
	if (e->log_count != 0)
		stor_msg(e, STOR_LOG_ERR, "engine destroyed with %u logs open", e->log_count);
	for (unsigned i = 0; i < e->n_fs; i++)
		close(e->fs_fds[i]);
	e->be->ops->destroy(e->be);
	e->opts.mem_free(e->opts.mem_ctx, e->chunk_mem);
	free(e->chunks);
	free(e);
}

const char *
stor_engine_backend_name(const struct stor_engine *e)
{
	return e->be->ops->name;
}

unsigned
stor_engine_chunks_available(const struct stor_engine *e)
{
	return e->free_count + e->reclaim_count;
}

bool
stor_engine_io_workers_placed(const struct stor_engine *e)
{
	return e->be->io_workers_placed != 0;
}

int
stor_engine_files_hold_fds(const struct stor_engine *e)
{
	return !e->be->no_fds;
}

void
stor_engine_stats(const struct stor_engine *e, struct stor_engine_stats *out)
{
	out->chunks = e->opts.chunk_count;
	out->chunks_free = e->free_count;
	out->chunks_reclaim = e->reclaim_count;
	out->steals = e->steals;
	out->active_steals = e->active_steals;
	out->logs = e->log_count;
	out->logs_failed = e->logs_failed;
	out->open_files = e->open_files;
	out->file_reopens = e->file_reopens;
	out->segments_recycled = e->segments_recycled;
	out->segments_rolled = e->segments_rolled;
	out->reads_cache = e->reads_cache;
	out->reads_file = e->reads_file;
	out->flushes = e->flushes;
	out->flush_ns = e->flush_ns;
	out->file_closes = e->file_closes;
	out->open_files_max = e->file_limit;
	out->unlinks_unsynced = e->unlinks - e->unlinks_synced;
	out->io_workers = e->be->io_workers;
	out->prealloc_failures = e->prealloc_failures;
	out->inline_files = e->be->inline_files;
	out->inline_ios = e->be->inline_ios;
	out->inline_mapped_writes = e->be->inline_mapped_writes;
	out->writes = e->be->writes;
	out->write_bytes = e->be->write_bytes;
	out->async_closes = e->be->async_closes;
	out->async_truncates = e->be->async_truncates;
	out->async_unlinks = e->be->async_unlinks;
	out->removals = e->n_removals;
	out->removals_done = e->removals_done;
}

void
stor_file_opened(struct stor_engine *e, struct stor_log *log, struct stor_segment *seg)
{
	seg->flog = log;
	TAILQ_INSERT_TAIL(&e->files, seg, file_link);
	e->open_files++;
}

void
stor_file_closed(struct stor_engine *e, struct stor_segment *seg)
{
	TAILQ_REMOVE(&e->files, seg, file_link);
	e->open_files--;
	seg->flog = NULL;
}

/* A file nothing holds: no read of it, its log with no I/O in flight or queued. */
static bool
file_idle(const struct stor_segment *seg)
{
	const struct stor_log *log = seg->flog;

	return seg->refs == 0 && !log->io_busy && !log->rsync_busy && !log->alloc_busy &&
	       !log->on_dirty;
}

void
stor_engine_trim_files(struct stor_engine *e, unsigned room)
{
	unsigned max = e->file_limit, looked = 0;
	struct stor_segment *seg, *next;

	if (max == 0)
		return;
	/* Bounded walk: busy files at the head are skipped, at most 256 per call. */
	for (seg = TAILQ_FIRST(&e->files); seg != NULL && e->open_files + room > max &&
	                                   looked < 256;
	     seg = next, looked++) {
		next = TAILQ_NEXT(seg, file_link);
		if (!file_idle(seg))
			continue;
		e->be->ops->close(e->be, seg->handle);
		seg->handle = -1;
		stor_file_closed(e, seg);
		e->file_closes++;
	}
}

void
stor_chunk_unlru(struct stor_engine *e, struct stor_chunk *c)
{
	if (c->in_lru) {
		TAILQ_REMOVE(&e->reclaim, c, lru_link);
		c->in_lru = false;
		e->reclaim_count--;
	}
}

void
stor_chunk_maybe_reclaimable(struct stor_engine *e, struct stor_chunk *c)
{
	/* Active chunks too: their log keeps the partial block when one is taken. */
	if (c->in_lru || c->log == NULL || c->orphan || c->refs != 0 || c->written != c->fill)
		return;
	TAILQ_INSERT_TAIL(&e->reclaim, c, lru_link);
	c->in_lru = true;
	e->reclaim_count++;
}

/* Detach @c from its log and return it to the free list (refs must be 0). */
void
stor_chunk_put(struct stor_engine *e, struct stor_chunk *c)
{
	stor_chunk_unlru(e, c);
	if (c->log != NULL && !c->orphan) {
		TAILQ_REMOVE(&c->log->chunks, c, log_link);
		c->log->chunk_count--;
	}
	c->log = NULL;
	c->seg = NULL;
	c->orphan = false;
	c->sealed = false;
	TAILQ_INSERT_TAIL(&e->free, c, lru_link);
	e->free_count++;
}

struct stor_chunk *
stor_chunk_get(struct stor_engine *e, struct stor_log *log)
{
	struct stor_chunk *c = TAILQ_FIRST(&e->free);

	if (c != NULL) {
		TAILQ_REMOVE(&e->free, c, lru_link);
		e->free_count--;
	} else {
		/* Least recently released first; skip one whose log cannot keep its tail. */
		TAILQ_FOREACH(c, &e->reclaim, lru_link)
		{
			int rc = stor_log_chunk_evict(c->log, c);
			if (rc == 1)
				e->active_steals++;
			if (rc >= 0)
				break;
		}
		if (c == NULL)
			return NULL;
		e->steals++;
		stor_chunk_unlru(e, c);
		TAILQ_REMOVE(&c->log->chunks, c, log_link);
		c->log->chunk_count--;
	}
	c->log = log;
	c->seg = NULL;
	c->sealed = false;
	c->orphan = false;
	c->in_lru = false;
	c->file_off = 0;
	c->head = c->fill = c->written = 0;
	c->first_offset = -1;
	c->next_offset = -1;
	c->refs = 0;
	TAILQ_INSERT_TAIL(&log->chunks, c, log_link);
	log->chunk_count++;
	return c;
}

void
stor_engine_mark_dirty(struct stor_engine *e, struct stor_log *log)
{
	if (!log->on_dirty) {
		TAILQ_INSERT_TAIL(&e->dirty, log, dirty_link);
		log->on_dirty = true;
	}
}

void
stor_engine_unlink_deferred(struct stor_engine *e, struct stor_log *log, const char *dir)
{
	struct stat st;
	unsigned k = 0;

	if (stat(dir, &st) == 0) {
		for (k = 0; k < e->n_fs && e->fs_devs[k] != st.st_dev; k++)
			;
		if (k == e->n_fs && e->n_fs < STOR_ENGINE_MAX_FS) {
			int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			if (fd >= 0) {
				e->fs_devs[e->n_fs] = st.st_dev;
				e->fs_fds[e->n_fs++] = fd;
			}
		}
	}
	if (k == e->n_fs) {
		/* Not tracked: durable now, as before. */
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
		return;
	}
	log->unlink_gen = ++e->unlinks;
}

int
stor_engine_unlinks_settle(struct stor_engine *e)
{
	int rc = 0;

	for (unsigned k = 0; k < e->n_fs; k++) {
		if (syncfs(e->fs_fds[k]) != 0 && rc == 0)
			rc = -errno;
	}
	if (rc != 0) {
		stor_msg(e, STOR_LOG_ERR, "syncfs after opening logs: %s", strerror(-rc));
		return rc;
	}
	e->unlinks_synced = e->unlinks;
	return 0;
}

void
stor_engine_timer_arm(struct stor_engine *e, struct stor_log *log)
{
	if (!log->on_timed && log->cfg.flush_ms != INT64_MAX) {
		TAILQ_INSERT_TAIL(&e->timed, log, timed_link);
		log->on_timed = true;
	}
}

/* ---- directory removal (stor_engine_remove_dir) ------------------------ */

#define STOR_REMOVE_WALKS 3u /* walks of a directory after the first, at most */

/* One name of a directory being removed, queued or about to be. */
struct removal_unlink {
	struct stor_io_req req; /* first: what done() gets */
	struct stor_removal *r;
	char path[];
};

static int
rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (type == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -1 : 0;
}

int
stor_remove_tree(const char *path)
{
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -errno;
}

/* A directory inside a removed one (none of the log's own): in place. */
static void
rm_tree(struct stor_engine *e, const char *path)
{
	int rc = stor_remove_tree(path);

	if (rc < 0)
		stor_msg(e, STOR_LOG_WARN, "removing %s: %s", path, strerror(-rc));
}

static void
removal_unlink_done(struct stor_io_req *req, int res)
{
	struct removal_unlink *u = (struct removal_unlink *)req;
	struct stor_engine *e = req->ctx;

	if (res == -EISDIR)
		rm_tree(e, u->path); /* a file system without d_type */
	else if (res < 0 && res != -ENOENT)
		stor_msg(e, STOR_LOG_WARN, "removing %s: %s", u->path, strerror(-res));
	u->r->pending--;
	free(u);
}

static void
removal_dir_done(struct stor_io_req *req, int res)
{
	struct stor_engine *e = req->ctx;
	struct stor_removal *r =
	        (struct stor_removal *)((char *)req - offsetof(struct stor_removal, dreq));

	/* A walk may miss a name while names go (readdir's order is the file system's):
	 * walk again, a few times at most. */
	if (res == -ENOTEMPTY && r->walks < STOR_REMOVE_WALKS &&
	    (r->d = opendir(r->path)) != NULL) {
		r->walks++;
		r->rmdir_queued = false;
		return;
	}
	if (res < 0 && res != -ENOENT)
		stor_msg(e, STOR_LOG_WARN, "removing %s: %s (left for the next start)", r->path,
		         strerror(-res));
	TAILQ_REMOVE(&e->removals, r, link);
	e->n_removals--;
	e->removals_done++;
	free(r);
}

/* The next name of @r to unlink, or NULL (none left: the directory closed; or no memory). */
static struct removal_unlink *
removal_next(struct stor_engine *e, struct stor_removal *r)
{
	struct dirent *de;

	if (r->held != NULL) {
		struct removal_unlink *u = r->held;

		r->held = NULL;
		return u;
	}
	while ((de = readdir(r->d)) != NULL) {
		size_t len = strlen(r->path) + strlen(de->d_name) + 2;
		struct removal_unlink *u;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		u = malloc(sizeof(*u) + len);
		if (u == NULL)
			return NULL; /* the directory goes on at the next tick */
		snprintf(u->path, len, "%s/%s", r->path, de->d_name);
		if (de->d_type == DT_DIR) {
			rm_tree(e, u->path);
			free(u);
			continue;
		}
		u->req = (struct stor_io_req){.op = STOR_IO_UNLINK,
		                              .buf_index = -1,
		                              .file = -1,
		                              .buf = u->path,
		                              .done = removal_unlink_done,
		                              .ctx = e};
		u->r = r;
		return u;
	}
	closedir(r->d);
	r->d = NULL;
	return NULL;
}

/* Whether the oldest removal has something to queue now. */
static bool
removal_ready(const struct stor_engine *e)
{
	const struct stor_removal *r = TAILQ_FIRST(&e->removals);

	if (r == NULL)
		return false;
	if (r->d != NULL)
		return r->pending < STOR_REMOVE_INFLIGHT;
	return r->pending == 0 && !r->rmdir_queued;
}

/*
 * Queue what the oldest removal may: its names, STOR_REMOVE_INFLIGHT at
 * most in flight, then the directory once they are gone. One directory at
 * a time. Returns the requests queued.
 */
static int
removals_step(struct stor_engine *e)
{
	struct stor_removal *r = TAILQ_FIRST(&e->removals);
	int queued = 0;

	while (r->d != NULL && r->pending < STOR_REMOVE_INFLIGHT) {
		struct removal_unlink *u = removal_next(e, r);
		struct stor_io_req *reqs[1];

		if (u == NULL)
			break;
		reqs[0] = &u->req;
		if (e->be->ops->queue(e->be, reqs, 1) != 0) {
			r->held = u; /* the backend is full: the next tick */
			return queued;
		}
		r->pending++;
		queued++;
	}
	if (r->d == NULL && r->pending == 0 && !r->rmdir_queued) {
		struct stor_io_req *reqs[1] = {&r->dreq};

		r->dreq = (struct stor_io_req){.op = STOR_IO_UNLINK,
		                               .buf_index = -1,
		                               .file = -1,
		                               .buf = r->path,
		                               .off = AT_REMOVEDIR,
		                               .done = removal_dir_done,
		                               .ctx = e};
		if (e->be->ops->queue(e->be, reqs, 1) == 0) {
			r->rmdir_queued = true;
			queued++;
		}
	}
	return queued;
}

/* What a shutdown leaves (nothing of it in flight: after a drain). */
static void
removals_free(struct stor_engine *e)
{
	struct stor_removal *r;

	while ((r = TAILQ_FIRST(&e->removals)) != NULL) {
		TAILQ_REMOVE(&e->removals, r, link);
		if (r->d != NULL)
			closedir(r->d);
		free(r->held);
		free(r);
	}
	e->n_removals = 0;
}

int
stor_engine_remove_dir(struct stor_engine *e, const char *path)
{
	size_t len = strlen(path) + 1;
	struct stor_removal *r = calloc(1, sizeof(*r) + len);

	if (r == NULL)
		return -ENOMEM;
	memcpy(r->path, path, len);
	r->d = opendir(path);
	if (r->d == NULL) {
		int rc = -errno;

		free(r);
		return rc;
	}
	TAILQ_INSERT_TAIL(&e->removals, r, link);
	e->n_removals++;
	return 0;
}

/* A tick; @removals: step the directory removals too (not in a drain). */
static int
engine_poll(struct stor_engine *e, bool removals)
{
	struct stor_log *log, *next;
	int work;

	work = e->be->ops->poll(e->be, 256);
	if (e->file_limit != 0 && e->open_files > e->file_limit)
		stor_engine_trim_files(e, 0);
	/*
	 * flush.ms: look at the timers once per millisecond, not per tick, and
	 * only at logs with one running (a walk over every log was 15-20% of the
	 * reactor with 10,000 partitions open). A synced log leaves the list.
	 */
	uint64_t now = stor_mono_ms();
	if (now != e->last_timer_ms && !TAILQ_EMPTY(&e->timed)) {
		e->last_timer_ms = now;
		for (log = TAILQ_FIRST(&e->timed); log != NULL; log = next) {
			next = TAILQ_NEXT(log, timed_link);
			if (log->oldest_unsynced_ms == 0) {
				TAILQ_REMOVE(&e->timed, log, timed_link);
				log->on_timed = false;
			} else if (now - log->oldest_unsynced_ms >= (uint64_t)log->cfg.flush_ms) {
				stor_engine_mark_dirty(e, log);
			}
		}
	}
	/*
	 * Gather: every dirty log queues at most one write (+ linked sync). A log
	 * whose write is in flight leaves the list; its completion puts it back.
	 */
	for (log = TAILQ_FIRST(&e->dirty); log != NULL; log = next) {
		next = TAILQ_NEXT(log, dirty_link);
		int rc = stor_log_issue_io(log);
		if (rc == -EAGAIN)
			break; /* SQ full: the rest go next tick, in the same order */
		TAILQ_REMOVE(&e->dirty, log, dirty_link);
		log->on_dirty = false;
		if (rc > 0)
			work++;
	}
	if (removals && !TAILQ_EMPTY(&e->removals))
		work += removals_step(e);
	/* One system call for the whole tick (none under SQPOLL while it polls). */
	if (e->be->ops->submit(e->be) < 0)
		stor_msg(e, STOR_LOG_ERR, "%s: submit failed", e->be->ops->name);
	/*
	 * What completed during the submit (inline writes to tmpfs, buffered
	 * writes the kernel finished in io_uring_enter) is acknowledged in this
	 * tick, not the next one.
	 */
	if (e->be->ops->inflight(e->be) != 0)
		work += e->be->ops->poll(e->be, 256);
	return work;
}

int
stor_engine_poll(struct stor_engine *e)
{
	return engine_poll(e, true);
}

int
stor_engine_wait(struct stor_engine *e, unsigned timeout_us)
{
	if (!TAILQ_EMPTY(&e->dirty) || e->be->ops->wait == NULL || removal_ready(e))
		return 0; /* work to submit: poll at once */
	return e->be->ops->wait(e->be, timeout_us);
}

int
stor_engine_drain(struct stor_engine *e)
{
	/* Removals wait (a log's close drains too): only their names in flight end. */
	while (!TAILQ_EMPTY(&e->dirty) || e->be->ops->inflight(e->be) != 0)
		engine_poll(e, false);
	return 0;
}
