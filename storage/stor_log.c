/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The partition log: segments, the append path, the write pipeline,
 * reads, recovery and the lifecycle (roll, retention, log start offset,
 * leader epochs). Formats are in stor_format.h, the reasoning about the
 * partial last block and crash safety in docs/storage.md.
 *
 * Write pipeline. Appends are copied into the active tail-cache chunk (a
 * block-aligned window of the active segment). Each log has at most one
 * write in flight: the next one starts at the block holding the first
 * unwritten byte and ends at the end of the data rounded up to a block,
 * padded with zeros. The partial last block is therefore rewritten by the
 * next write with the same old bytes followed by new ones; since the two
 * writes of one block are never in flight together, they reach the device
 * in order, and a write torn by a crash leaves every old byte as it was
 * (old and new contents agree on them). Recovery then validates batch by
 * batch and truncates at the first invalid one, which can only lie after
 * the acknowledged data.
 *
 * Rolling: once the previous segment's data is all written, it is
 * fdatasync'ed (Kafka flushes on roll too), trimmed to its data and its
 * indexes are written, while the new segment's writes go on (a 128 MiB
 * segment's sync took 200 ms on a virtual disk, and held every append of
 * the partition). Durable appends in the new segment wait for that sync
 * too (synced_lpos stays at the old segment's end until it completes), and
 * a roll waits for the previous roll's sync, so a crash leaves at most the
 * last two segments to check: the one before the last without its trim or
 * indexes (recovery finishes it) or, after a power loss, with a torn tail
 * (recovery cuts the log there, as Kafka does), and the last one's tail.
 */
#include "stor_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "kp_batch.h"
#include "stor_internal.h"

#define SCAN_WINDOW (4u << 20) /* a walker's reads (ListOffsets by time) */
#define SCAN_AHEAD (8u << 20)  /* a sequential walker's: 8 x 1 MiB in flight (read_start) */
#define SCAN_HEAD (1u << 20)   /* its headroom for a batch cut by a window's end */
#define STOR_MEMO_MAX (256u << 10) /* batch headers a recovery keeps (72 B each) at most */
#define SCAN_MAX_BATCH (256u << 20) /* larger batch lengths are corruption */
#define INDEX_MAX_ENTRIES ((10u << 20) / STOR_INDEX_ENTRY_SIZE) /* segment.index.bytes default */
#define INDEX_INITIAL 32 /* entries an active segment starts with; grown up to its cap */
#define PEND_INITIAL 16  /* pending-append slots a log starts with */
#define TAIL_NONE UINT64_MAX /* tail_end: no copy of the partial last block */

static struct stor_segment *
active_seg(const struct stor_log *log)
{
	return log->segs[log->seg_count - 1];
}

/* ------------------------------------------------------------------------- */
/* Paths and small files                                                       */

void
stor_segment_path(char *buf, size_t size, const char *dir, int64_t base, const char *suffix)
{
	snprintf(buf, size, "%s/%020" PRId64 "%s", dir, base, suffix);
}

static int
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -errno;
	rc = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

/* Write @len bytes to @path atomically (tmp file, fsync, rename). */
static int
write_file_atomic(const char *path, const void *data, size_t len, bool sync)
{
	char tmp[PATH_MAX];
	int fd, rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (len != 0 && write(fd, data, len) != (ssize_t)len)
		rc = errno ? -errno : -EIO;
	if (rc == 0 && sync && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

/* Read a whole small file (< 1 MiB) into a malloc'ed NUL-terminated buffer. */
static int
read_small_file(const char *path, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || st.st_size > (1 << 20)) {
		close(fd);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	ssize_t n = pread(fd, buf, (size_t)st.st_size, 0);
	close(fd);
	if (n < 0) {
		free(buf);
		return -EIO;
	}
	buf[n] = '\0';
	*out = buf;
	*len = (size_t)n;
	return 0;
}

static int
mkdir_p(const char *dir)
{
	char tmp[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	/* The directory itself first: one call where it or its parent exists. */
	if (mkdir(dir, 0755) == 0 || errno == EEXIST)
		return 0;
	if (errno != ENOENT)
		return -errno;
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------------------- */
/* Segments and their indexes                                                  */

static int
idx_reserve(struct stor_segment *seg, uint32_t icap, uint32_t tcap)
{
	if (icap > seg->idx_cap) {
		void *p = realloc(seg->idx, (size_t)icap * sizeof(*seg->idx));
		if (p == NULL)
			return -ENOMEM;
		seg->idx = p;
		seg->idx_cap = icap;
	}
	if (tcap > seg->tidx_cap) {
		void *p = realloc(seg->tidx, (size_t)tcap * sizeof(*seg->tidx));
		if (p == NULL)
			return -ENOMEM;
		seg->tidx = p;
		seg->tidx_cap = tcap;
	}
	return 0;
}

/* Index capacity of an active segment: enough for segment.bytes at the interval. */
static uint32_t
active_index_cap(const struct stor_log_config *cfg)
{
	uint64_t per = (uint64_t)cfg->index_interval_bytes + KP_BATCH_HEADER_SIZE;
	uint64_t cap = cfg->segment_bytes / per + 2;

	return cap > INDEX_MAX_ENTRIES ? INDEX_MAX_ENTRIES : (uint32_t)cap;
}

static uint32_t
min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/*
 * Room for one more index entry in the active segment: the arrays grow by
 * doubling up to active_index_cap() (an idle partition holds a few hundred
 * bytes, not the megabytes a 1 GiB segment's index may need). At the cap
 * need_roll() rolls instead.
 */
static int
idx_room(struct stor_log *log, struct stor_segment *seg)
{
	uint32_t cap = active_index_cap(&log->cfg);

	if (seg->idx_count < seg->idx_cap && seg->tidx_count < seg->tidx_cap)
		return 0;
	if (seg->idx_cap >= cap || seg->tidx_cap >= cap)
		return 0;
	return idx_reserve(seg, min_u32(cap, seg->idx_cap * 2 + INDEX_INITIAL),
	                   min_u32(cap, seg->tidx_cap * 2 + INDEX_INITIAL));
}

/* Grow the pending ring (full, below cfg.max_pending), keeping its order. */
static int
pend_grow(struct stor_log *log)
{
	uint32_t cap = log->pend_cap * 2;
	struct stor_pending *p;

	if (cap > log->cfg.max_pending)
		cap = log->cfg.max_pending;
	p = malloc((size_t)cap * sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < log->pend_count; i++)
		p[i] = log->pend[(log->pend_head + i) % log->pend_cap];
	free(log->pend);
	log->pend = p;
	log->pend_cap = cap;
	log->pend_head = 0;
	return 0;
}

static void
seg_index_reset(struct stor_segment *seg)
{
	seg->idx_count = 0;
	seg->tidx_count = 0;
	seg->bytes_since_index = 0;
	seg->max_timestamp = -1;
	seg->max_ts_offset = -1;
	seg->first_timestamp = -1;
}

/*
 * Account one batch in @seg's indexes, Kafka's rule (LogSegment.append):
 * an entry for the batch about to be stored at @pos when more than the
 * interval was appended since the last entry. Growing arrays is for
 * recovery only; the append path checks capacity (and rolls) first.
 */
int
stor_seg_index_batch(struct stor_segment *seg, uint32_t interval, int64_t last_offset,
                     int64_t max_ts, uint64_t pos, uint32_t size, bool grow)
{
	if (max_ts > seg->max_timestamp) {
		seg->max_timestamp = max_ts;
		seg->max_ts_offset = last_offset;
	}
	if (seg->bytes_since_index > interval) {
		if (grow && (seg->idx_count == seg->idx_cap || seg->tidx_count == seg->tidx_cap)) {
			int rc = idx_reserve(seg, seg->idx_cap * 2 + 64, seg->tidx_cap * 2 + 64);
			if (rc != 0)
				return rc;
		}
		if (seg->idx_count < seg->idx_cap) {
			seg->idx[seg->idx_count].rel_offset =
			        (uint32_t)(last_offset - seg->base_offset);
			seg->idx[seg->idx_count].position = (uint32_t)pos;
			seg->idx_count++;
		}
		if (seg->tidx_count < seg->tidx_cap && seg->max_timestamp >= 0 &&
		    (seg->tidx_count == 0 ||
		     seg->max_timestamp > seg->tidx[seg->tidx_count - 1].timestamp)) {
			seg->tidx[seg->tidx_count].timestamp = seg->max_timestamp;
			seg->tidx[seg->tidx_count].rel_offset =
			        (uint32_t)(seg->max_ts_offset - seg->base_offset);
			seg->tidx_count++;
		}
		seg->bytes_since_index = 0;
	}
	seg->bytes_since_index += size;
	return 0;
}

/* Position to start a forward scan for @offset: the last entry at or below it. */
static uint64_t
idx_lookup(const struct stor_segment *seg, int64_t offset)
{
	uint32_t lo = 0, hi = seg->idx_count;

	if (offset < seg->base_offset)
		return 0;
	uint64_t rel = (uint64_t)(offset - seg->base_offset);
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (seg->idx[mid].rel_offset <= rel)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? 0 : seg->idx[lo - 1].position;
}

/* Offset from the time index: the entry with the largest timestamp <= @ts (base if none). */
static int64_t
tidx_lookup(const struct stor_segment *seg, int64_t ts)
{
	uint32_t lo = 0, hi = seg->tidx_count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (seg->tidx[mid].timestamp <= ts)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? seg->base_offset : seg->base_offset + seg->tidx[lo - 1].rel_offset;
}

/*
 * Write @len bytes as the whole of @path: by a new file renamed over it, or,
 * @in_place, into the file as it is (created if missing) and cut to @len. In
 * place is for files nothing trusts until a later sync and a valid marker say
 * so, and for the marker once what it describes is durable (a shutdown:
 * stor_log_close_many()).
 */
static int
file_write_whole(const char *path, const void *data, size_t len, bool in_place)
{
	int fd, rc = 0;

	if (!in_place)
		return write_file_atomic(path, data, len, false);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (len != 0 && pwrite(fd, data, len, 0) != (ssize_t)len)
		rc = errno ? -errno : -EIO;
	if (rc == 0 && ftruncate(fd, (off_t)len) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int
index_files_write(const char *dir, const struct stor_segment *seg, const char *suffix,
                  bool in_place)
{
	char path[PATH_MAX], name[32];
	uint8_t *buf;
	size_t n = (size_t)seg->idx_count * STOR_INDEX_ENTRY_SIZE;
	size_t t = (size_t)seg->tidx_count * STOR_TIMEINDEX_ENTRY_SIZE;
	int rc;

	buf = malloc(n > t ? n + 1 : t + 1);
	if (buf == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < seg->idx_count; i++) {
		stor_be32_put(buf + i * 8, seg->idx[i].rel_offset);
		stor_be32_put(buf + i * 8 + 4, seg->idx[i].position);
	}
	snprintf(name, sizeof(name), ".index%s", suffix);
	stor_segment_path(path, sizeof(path), dir, seg->base_offset, name);
	rc = file_write_whole(path, buf, n, in_place);
	if (rc == 0) {
		for (uint32_t i = 0; i < seg->tidx_count; i++) {
			stor_be64_put(buf + i * 12, (uint64_t)seg->tidx[i].timestamp);
			stor_be32_put(buf + i * 12 + 8, seg->tidx[i].rel_offset);
		}
		snprintf(name, sizeof(name), ".timeindex%s", suffix);
		stor_segment_path(path, sizeof(path), dir, seg->base_offset, name);
		rc = file_write_whole(path, buf, t, in_place);
	}
	free(buf);
	return rc;
}

int
stor_index_write_files(const char *dir, const struct stor_segment *seg, const char *suffix)
{
	return index_files_write(dir, seg, suffix, false);
}

/*
 * Load the index files of a segment of @size bytes. Returns 0 when both
 * exist and pass the sanity checks Kafka applies (whole entries, sorted,
 * offsets within the segment, positions within the file), else -EBADMSG.
 */
static int
seg_index_load(struct stor_log *log, struct stor_segment *seg)
{
	char path[PATH_MAX];
	char *buf = NULL;
	size_t len;
	int rc;

	stor_segment_path(path, sizeof(path), log->dir, seg->base_offset, ".index");
	rc = read_small_file(path, &buf, &len);
	if (rc != 0 || len % STOR_INDEX_ENTRY_SIZE != 0)
		goto bad;
	rc = idx_reserve(seg, (uint32_t)(len / 8) + 1, 1);
	if (rc != 0)
		goto bad;
	seg->idx_count = 0;
	for (size_t i = 0; i < len / 8; i++) {
		const uint8_t *p = (const uint8_t *)buf + i * 8;
		uint32_t rel = stor_be32_get(p), pos = stor_be32_get(p + 4);
		if (pos >= seg->size)
			goto bad;
		if (i > 0 && (rel <= seg->idx[i - 1].rel_offset || pos <= seg->idx[i - 1].position))
			goto bad;
		seg->idx[i].rel_offset = rel;
		seg->idx[i].position = pos;
		seg->idx_count++;
	}
	free(buf);
	buf = NULL;

	stor_segment_path(path, sizeof(path), log->dir, seg->base_offset, ".timeindex");
	rc = read_small_file(path, &buf, &len);
	if (rc != 0 || len % STOR_TIMEINDEX_ENTRY_SIZE != 0)
		goto bad;
	rc = idx_reserve(seg, 1, (uint32_t)(len / 12) + 1);
	if (rc != 0)
		goto bad;
	seg->tidx_count = 0;
	for (size_t i = 0; i < len / 12; i++) {
		const uint8_t *p = (const uint8_t *)buf + i * 12;
		int64_t ts = (int64_t)stor_be64_get(p);
		uint32_t rel = stor_be32_get(p + 8);
		if (i > 0 && (ts < seg->tidx[i - 1].timestamp || rel < seg->tidx[i - 1].rel_offset))
			goto bad;
		seg->tidx[i].timestamp = ts;
		seg->tidx[i].rel_offset = rel;
		seg->tidx_count++;
	}
	free(buf);
	return 0;
bad:
	free(buf);
	seg->idx_count = seg->tidx_count = 0;
	return -EBADMSG;
}

struct stor_segment *
stor_seg_new(int64_t base)
{
	struct stor_segment *seg = calloc(1, sizeof(*seg));

	if (seg == NULL)
		return NULL;
	seg->base_offset = base;
	seg->next_offset = base;
	seg->handle = -1;
	seg->created_ms = stor_wall_ms();
	seg_index_reset(seg);
	return seg;
}

void
stor_seg_free(struct stor_log *log, struct stor_segment *seg)
{
	if (seg->handle >= 0) {
		log->engine->be->ops->close(log->engine->be, seg->handle);
		stor_file_closed(log->engine, seg);
	}
	free(seg->idx);
	free(seg->tidx);
	free(seg);
}

static int
seg_open_file(struct stor_log *log, struct stor_segment *seg, bool create)
{
	struct stor_backend *be = log->engine->be;
	char path[PATH_MAX];
	unsigned flags = create ? STOR_OPEN_CREATE : 0;
	int rc;

	stor_segment_path(path, sizeof(path), log->dir, seg->base_offset, ".log");
	if (log->direct) {
		rc = be->ops->open(be, path, flags | STOR_OPEN_DIRECT, &seg->handle);
		if (rc != -EINVAL || log->engine->opts.direct == STOR_DIRECT_ON)
			return rc;
		/* The file system refuses O_DIRECT (tmpfs before Linux 6.6, some FUSE). */
		log->direct = 0;
		stor_msg(log->engine, STOR_LOG_WARN,
		         "%s: O_DIRECT not supported here, using buffered I/O", log->dir);
	}
	return be->ops->open(be, path, flags, &seg->handle);
}

int
stor_seg_open_file(struct stor_log *log, struct stor_segment *seg, bool create)
{
	stor_engine_trim_files(log->engine, 1);
	int rc = seg_open_file(log, seg, create);
	if (rc == 0)
		stor_file_opened(log->engine, log, seg);
	else
		seg->handle = -1;
	return rc;
}

int
stor_seg_file(struct stor_log *log, struct stor_segment *seg)
{
	struct stor_engine *e = log->engine;

	if (seg->handle >= 0) {
		if (TAILQ_NEXT(seg, file_link) != NULL) {
			TAILQ_REMOVE(&e->files, seg, file_link);
			TAILQ_INSERT_TAIL(&e->files, seg, file_link);
		}
		return 0;
	}
	int rc = stor_seg_open_file(log, seg, false);
	if (rc == 0)
		e->file_reopens++;
	return rc;
}

static int
log_push_seg(struct stor_log *log, struct stor_segment *seg)
{
	if (log->seg_count == log->seg_cap) {
		unsigned cap = log->seg_cap ? log->seg_cap * 2 : 8;
		void *p = realloc(log->segs, cap * sizeof(*log->segs));
		if (p == NULL)
			return -ENOMEM;
		log->segs = p;
		log->seg_cap = cap;
	}
	log->segs[log->seg_count++] = seg;
	return 0;
}

/* ------------------------------------------------------------------------- */
/* Synchronous batch walking (recovery, index rebuild, ListOffsets)            */

struct walker {
	struct stor_log *log;
	struct stor_segment *seg;
	uint8_t *buf;     /* the window: the file's bytes [win_off, win_off + win_len) */
	uint64_t win_off; /* file offset of buf[0] */
	size_t win_len;   /* valid bytes in buf */
	uint64_t limit;   /* file bytes that may be read */
	/*
	 * The window's memory: a read lands at mem[cur] + head. A sequential
	 * walker (seg_scan) reads the next `step` bytes into mem[!cur] while the
	 * window is validated (the backend's read_start), and a batch cut by the
	 * window's end is copied into the headroom just before them (SCAN_HEAD
	 * bytes at most; a longer one is read again).
	 */
	uint8_t *mem[2];
	size_t size[2]; /* bytes after the headroom */
	unsigned cur;
	size_t head;    /* SCAN_HEAD when reading ahead, else 0 */
	size_t step;    /* bytes a read asks for at least */
	bool seq;       /* reads ahead */
	bool ahead;     /* a read from ahead_off into mem[!cur] + head is in flight;
	                   then ahead_off == win_off + win_len */
	uint64_t ahead_off;
};

/* mem[@k] holding @size bytes after the headroom (its old bytes are not kept). */
static int
walker_mem(struct walker *w, unsigned k, size_t size)
{
	if (w->size[k] >= size)
		return 0;
	void *p = aligned_alloc(STOR_BLOCK_SIZE, w->head + STOR_ALIGN_UP(size));
	if (p == NULL)
		return -ENOMEM;
	free(w->mem[k]);
	w->mem[k] = p;
	w->size[k] = STOR_ALIGN_UP(size);
	return 0;
}

/*
 * @seq: the walk goes forward through the file (a recovery or index
 * scan): read ahead, where the backend can, in windows of SCAN_AHEAD.
 */
static int
walker_init(struct walker *w, struct stor_log *log, struct stor_segment *seg, uint64_t limit,
            bool seq)
{
	const struct stor_backend_ops *ops = log->engine->be->ops;

	memset(w, 0, sizeof(*w));
	w->log = log;
	w->seg = seg;
	w->limit = limit;
	w->seq = seq && ops->read_start != NULL && ops->read_wait != NULL;
	w->head = w->seq ? SCAN_HEAD : 0;
	w->step = w->seq ? SCAN_AHEAD : SCAN_WINDOW;
	/* A small file's walk takes what it can read, not a whole window (grown if needed). */
	uint64_t first = STOR_ALIGN_UP(limit) < w->step ? STOR_ALIGN_UP(limit) : w->step;
	return walker_mem(w, 0, first > STOR_BLOCK_SIZE ? (size_t)first : STOR_BLOCK_SIZE);
}

/* The read ahead, if any, finished and its bytes dropped. */
static void
walker_ahead_drop(struct walker *w)
{
	struct stor_backend *be = w->log->engine->be;

	if (w->ahead) {
		(void)be->ops->read_wait(be);
		w->ahead = false;
	}
}

static void
walker_fini(struct walker *w)
{
	walker_ahead_drop(w);
	free(w->mem[0]);
	free(w->mem[1]);
	w->mem[0] = w->mem[1] = NULL;
	w->buf = NULL;
}

/* Start reading the bytes after the window into the other buffer (sequential walkers). */
static void
walker_ahead(struct walker *w)
{
	struct stor_backend *be = w->log->engine->be;
	uint64_t next = w->win_off + w->win_len, end = STOR_ALIGN_UP(w->limit);
	size_t len;

	if (!w->seq || w->ahead || w->win_len == 0 || next % STOR_BLOCK_SIZE != 0 || next >= end)
		return;
	len = end - next < w->step ? (size_t)(end - next) : w->step;
	if (walker_mem(w, w->cur ^ 1, len) != 0)
		return; /* no memory for it: the next window is read when needed */
	if (be->ops->read_start(be, w->seg->handle, w->mem[w->cur ^ 1] + w->head, len, next) == 0) {
		w->ahead = true;
		w->ahead_off = next;
	}
}

/*
 * The window moved onto the read ahead, when it has the bytes from @start:
 * the current window's bytes from @start are copied before them. 1: moved,
 * 0: not usable (the read ahead dropped), -errno: its I/O error.
 */
static int
walker_take_ahead(struct walker *w, uint64_t start)
{
	struct stor_backend *be = w->log->engine->be;
	int64_t n = be->ops->read_wait(be);
	size_t keep;
	uint8_t *dst;

	w->ahead = false;
	if (n < 0)
		return (int)n;
	if (start < w->win_off || start > w->ahead_off || w->ahead_off - start > w->head)
		return 0;
	keep = (size_t)(w->ahead_off - start);
	dst = w->mem[w->cur ^ 1] + w->head - keep;
	memcpy(dst, w->buf + (start - w->win_off), keep);
	w->cur ^= 1;
	w->buf = dst;
	w->win_off = start;
	w->win_len = keep + (size_t)n;
	walker_ahead(w);
	return 1;
}

/* Pointer to [pos, pos + need) of the file, reading it if needed; NULL past the limit. */
static const uint8_t *
walker_get(struct walker *w, uint64_t pos, size_t need, int *err)
{
	struct stor_backend *be = w->log->engine->be;

	*err = 0;
	if (pos + need > w->limit)
		return NULL;
	if (pos >= w->win_off && pos + need <= w->win_off + w->win_len)
		return w->buf + (pos - w->win_off);
	uint64_t start = STOR_ALIGN_DOWN(pos);
	size_t len = STOR_ALIGN_UP(pos + need) - start;
	if (w->ahead) {
		int rc = walker_take_ahead(w, start);

		if (rc < 0) {
			*err = rc;
			return NULL;
		}
		if (rc > 0 && pos + need <= w->win_off + w->win_len)
			return w->buf + (pos - w->win_off);
		walker_ahead_drop(w); /* the bytes wanted are not all there: read them */
	}
	size_t want = len > w->step ? len : w->step;
	if (start + want > STOR_ALIGN_UP(w->limit))
		want = STOR_ALIGN_UP(w->limit) - start;
	int rc = walker_mem(w, w->cur, want);
	if (rc != 0) {
		*err = rc;
		return NULL;
	}
	uint8_t *dst = w->mem[w->cur] + w->head;
	int64_t n = stor_seg_file(w->log, w->seg);
	if (n == 0 && w->seq) {
		n = be->ops->read_start(be, w->seg->handle, dst, want, start);
		if (n == 0)
			n = be->ops->read_wait(be);
	} else if (n == 0) {
		n = be->ops->pread(be, w->seg->handle, dst, want, start);
	}
	if (n < 0) {
		*err = (int)n;
		return NULL;
	}
	w->buf = dst;
	w->win_off = start;
	w->win_len = (size_t)n;
	walker_ahead(w);
	if (pos + need > start + (uint64_t)n)
		return NULL;
	return w->buf + (pos - start);
}

struct scan_result {
	uint64_t valid_end;
	int64_t next_offset;
	unsigned batches;
	const char *stop; /* NULL: clean end (file end or zeros) */
};

/*
 * Validate @seg batch by batch from position 0 up to @limit file bytes:
 * framing, header, CRC-32C, offsets
 * strictly increasing from the segment base. Rebuilds the in-memory
 * indexes and timestamps on the way. Stops at the first invalid batch.
 */
static void
memo_free(struct stor_log *log)
{
	free(log->memo);
	log->memo = NULL;
	log->memo_n = log->memo_cap = 0;
	log->memo_full = false;
}

/* Keep @h in the recovery's memo (dropped whole past STOR_MEMO_MAX or without memory). */
static void
memo_add(struct stor_log *log, const struct kp_batch_header *h)
{
	if (log->memo_full)
		return;
	if (log->memo_n == log->memo_cap) {
		uint32_t cap = log->memo_cap ? 2 * log->memo_cap : 1024;
		struct kp_batch_header *m = NULL;

		if (cap <= STOR_MEMO_MAX)
			m = realloc(log->memo, sizeof(*m) * cap);
		if (m == NULL) {
			memo_free(log);
			log->memo_full = true;
			return;
		}
		log->memo = m;
		log->memo_cap = cap;
	}
	log->memo[log->memo_n++] = *h;
}

/*
 * @memo: keep the valid batches' headers in log->memo (recover_active: the
 * broker's producer state rebuild walks them next).
 */
static int
seg_scan(struct stor_log *log, struct stor_segment *seg, uint64_t limit, struct scan_result *r,
         bool memo)
{
	struct walker w;
	uint64_t pos = 0;
	int64_t expect = seg->base_offset;
	int rc, err;

	memset(r, 0, sizeof(*r));
	rc = walker_init(&w, log, seg, limit, true);
	if (rc != 0)
		return rc;
	seg_index_reset(seg);
	for (;;) {
		const uint8_t *p = walker_get(&w, pos, KP_BATCH_LOG_OVERHEAD, &err);
		if (err != 0) {
			rc = err;
			goto out;
		}
		if (p == NULL)
			break; /* end of file */
		uint32_t blen = stor_be32_get(p + 8);
		if (blen == 0) {
			static const uint8_t zero[12];
			if (memcmp(p, zero, 12) != 0)
				r->stop = "zero batch length";
			break;
		}
		if (blen > SCAN_MAX_BATCH ||
		    blen + (uint64_t)KP_BATCH_LOG_OVERHEAD < KP_BATCH_HEADER_SIZE) {
			r->stop = "impossible batch length";
			break;
		}
		uint32_t size = KP_BATCH_LOG_OVERHEAD + blen;
		p = walker_get(&w, pos, size, &err);
		if (err != 0) {
			rc = err;
			goto out;
		}
		if (p == NULL) {
			r->stop = "batch cut short";
			break;
		}
		/*
		 * Header and CRC only: Produce-time rules (kp_batch_validate) would
		 * reject batches compaction rewrote with gaps in their offset deltas.
		 */
		struct kp_batch_header h;
		if (kp_batch_header_parse(p, size, &h) != 0 || kp_batch_crc_check(p, &h) != 0 ||
		    h.last_offset_delta < 0) {
			r->stop = "invalid batch (header or CRC)";
			break;
		}
		if (h.base_offset < seg->base_offset) {
			/* An older segment's batch: a recycled file's old bytes, or corruption. */
			r->stop = "a batch of older offsets (a recycled file's old data)";
			break;
		}
		if (h.base_offset < expect) {
			r->stop = "offset not increasing";
			break;
		}
		int64_t last = h.base_offset + h.last_offset_delta;
		if (last - seg->base_offset > UINT32_MAX) {
			r->stop = "offset beyond the segment's range";
			break;
		}
		rc = stor_seg_index_batch(seg, log->cfg.index_interval_bytes, last, h.max_timestamp,
		                          pos, size, true);
		if (rc != 0)
			goto out;
		if (seg->first_timestamp < 0)
			seg->first_timestamp = h.base_timestamp;
		if (memo)
			memo_add(log, &h);
		expect = last + 1;
		pos += size;
		r->batches++;
	}
	r->valid_end = pos;
	r->next_offset = expect;
	rc = 0;
out:
	walker_fini(&w);
	return rc;
}

/* Rebuild and persist a sealed segment's indexes (missing or corrupt files). */
static int
seg_rebuild_sealed(struct stor_log *log, struct stor_segment *seg)
{
	struct scan_result r;
	int rc = seg_scan(log, seg, seg->size, &r, false);

	if (rc != 0)
		return rc;
	if (r.valid_end != seg->size) {
		/* A sealed segment was synced before the next one got data: corrupt media. */
		stor_msg(log->engine, STOR_LOG_ERR,
		         "%s: segment %020" PRId64 " invalid at %" PRIu64 " of %" PRIu64 " (%s)",
		         log->dir, seg->base_offset, r.valid_end, seg->size, r.stop ? r.stop : "?");
		return -EBADMSG;
	}
	seg->next_offset = r.next_offset;
	stor_msg(log->engine, STOR_LOG_INFO, "%s: rebuilt indexes of segment %020" PRId64, log->dir,
	         seg->base_offset);
	return stor_index_write_files(log->dir, seg, "");
}

/*
 * Recovery of log->segs[@i], the segment before the last, left without
 * indexes by a crash: its roll's sync, trim and indexes run beside the next
 * segment's writes (see the top of this file). After a process crash its
 * data is whole, maybe with preallocated zeros after it: trim them, write
 * the indexes. After a power loss its unsynced tail may be torn while the
 * next segment's data survived; the log cannot have a hole, so it ends at
 * the last whole batch, as Kafka's recovery truncates at the first bad
 * batch and deletes the segments after it: nothing there was acknowledged
 * durable (a durable append in the next segment waited for this sync).
 */
static int
seg_finish_unsynced(struct stor_log *log, unsigned i)
{
	struct stor_backend *be = log->engine->be;
	struct stor_segment *seg = log->segs[i];
	struct scan_result r;
	uint64_t fsize;
	int rc;

	rc = stor_seg_file(log, seg);
	if (rc == 0)
		rc = be->ops->size(be, seg->handle, &fsize);
	if (rc == 0)
		rc = seg_scan(log, seg, fsize, &r, false);
	if (rc != 0)
		return rc;
	if (fsize != r.valid_end) {
		rc = be->ops->truncate(be, seg->handle, r.valid_end);
		if (rc != 0)
			return rc;
	}
	seg->size = r.valid_end;
	if (r.next_offset == log->segs[i + 1]->base_offset) {
		seg->next_offset = r.next_offset;
		stor_msg(log->engine, STOR_LOG_INFO,
		         "%s: segment %020" PRId64 " finished after a crash (%" PRIu64
		         " bytes, trimmed, indexes written)",
		         log->dir, seg->base_offset, r.valid_end);
		return stor_index_write_files(log->dir, seg, "");
	}
	stor_msg(log->engine, STOR_LOG_WARN,
	         "%s: segment %020" PRId64 " ends at offset %" PRId64 " (%s), before the next "
	         "segment's %" PRId64 ": the log ends there, %u later segment(s) deleted",
	         log->dir, seg->base_offset, r.next_offset, r.stop ? r.stop : "torn tail",
	         log->segs[i + 1]->base_offset, log->seg_count - i - 1);
	while (log->seg_count > i + 1) {
		struct stor_segment *last = log->segs[log->seg_count - 1];
		static const char *const sfx[] = {".log", ".index", ".timeindex"};
		char path[PATH_MAX];

		for (unsigned k = 0; k < 3; k++) {
			stor_segment_path(path, sizeof(path), log->dir, last->base_offset, sfx[k]);
			unlink(path);
		}
		log->seg_count--;
		stor_seg_free(log, last);
	}
	seg->next_offset = r.next_offset; /* the active segment now; its indexes stay in memory */
	return 0;
}

/* Largest timestamp of a sealed segment whose indexes loaded: the last time-index entry. */
static void
seg_times_from_index(struct stor_segment *seg)
{
	if (seg->tidx_count > 0) {
		seg->max_timestamp = seg->tidx[seg->tidx_count - 1].timestamp;
		seg->max_ts_offset = seg->base_offset + seg->tidx[seg->tidx_count - 1].rel_offset;
	}
}

/* ------------------------------------------------------------------------- */
/* Small checkpoints: log start offset, leader epochs, clean marker           */

static int
log_start_load(struct stor_log *log)
{
	char path[PATH_MAX], *buf;
	size_t len;

	snprintf(path, sizeof(path), "%s/%s", log->dir, STOR_FILE_LOG_START);
	if (read_small_file(path, &buf, &len) != 0)
		return 0;
	log->start_offset = strtoll(buf, NULL, 10);
	free(buf);
	return 0;
}

static int
log_start_store(struct stor_log *log)
{
	char path[PATH_MAX], line[32];
	int n = snprintf(line, sizeof(line), "%" PRId64 "\n", log->start_offset);

	snprintf(path, sizeof(path), "%s/%s", log->dir, STOR_FILE_LOG_START);
	return write_file_atomic(path, line, (size_t)n, true);
}

static int
epochs_store(struct stor_log *log)
{
	char path[PATH_MAX];
	size_t cap = 32 + (size_t)log->epoch_count * 40, n;
	char *buf = malloc(cap);
	int rc;

	if (buf == NULL)
		return -ENOMEM;
	n = (size_t)snprintf(buf, cap, "0\n%u\n", log->epoch_count);
	for (unsigned i = 0; i < log->epoch_count; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%" PRId32 " %" PRId64 "\n",
		                      log->epochs[i].epoch, log->epochs[i].start_offset);
	snprintf(path, sizeof(path), "%s/%s", log->dir, STOR_FILE_LEADER_EPOCH);
	rc = write_file_atomic(path, buf, n, true);
	free(buf);
	return rc;
}

static int
epochs_push(struct stor_log *log, int32_t epoch, int64_t start)
{
	if (log->epoch_count == log->epoch_cap) {
		unsigned cap = log->epoch_cap ? log->epoch_cap * 2 : 8;
		void *p = realloc(log->epochs, cap * sizeof(*log->epochs));
		if (p == NULL)
			return -ENOMEM;
		log->epochs = p;
		log->epoch_cap = cap;
	}
	log->epochs[log->epoch_count].epoch = epoch;
	log->epochs[log->epoch_count].start_offset = start;
	log->epoch_count++;
	return 0;
}

static int
epochs_load(struct stor_log *log)
{
	char path[PATH_MAX], *buf, *p, *end;
	size_t len;
	long version, count;

	snprintf(path, sizeof(path), "%s/%s", log->dir, STOR_FILE_LEADER_EPOCH);
	if (read_small_file(path, &buf, &len) != 0)
		return 0;
	p = buf;
	version = strtol(p, &end, 10);
	if (end == p || version != 0)
		goto bad;
	p = end;
	count = strtol(p, &end, 10);
	if (end == p || count < 0)
		goto bad;
	p = end;
	for (long i = 0; i < count; i++) {
		long long e = strtoll(p, &end, 10);
		if (end == p)
			goto bad;
		p = end;
		long long s = strtoll(p, &end, 10);
		if (end == p)
			goto bad;
		p = end;
		if (epochs_push(log, (int32_t)e, s) != 0)
			goto bad;
	}
	free(buf);
	return 0;
bad:
	stor_msg(log->engine, STOR_LOG_WARN, "%s: ignoring malformed %s", log->dir,
	         STOR_FILE_LEADER_EPOCH);
	log->epoch_count = 0;
	free(buf);
	return 0;
}

struct clean_marker {
	int64_t next_offset, active_base;
	uint64_t active_size;
	int64_t max_ts;
	uint32_t max_ts_rel;
};

static uint32_t
crc32c(const uint8_t *p, size_t n)
{
	return kp_crc32c(p, n);
}

/*
 * The marker: at a single log's close, created whole by rename and synced
 * after the segment and its index files. At the next open it is not
 * unlinked but made stale in place (clean_marker_invalidate): unlinking
 * freed its ext4 inode and block, 150-280 us a log on the benchmark VM, 2.5
 * s of a 10,000-log restart (docs/benchmarks.md, session 12). @in_place:
 * written into the stale file, no rename (a shutdown's stor_log_close_many()
 * does so once the segment, its trim and its index files are durable, or
 * unchanged since a clean open). A write torn by a crash leaves a CRC that
 * does not match; one on disk before the trim leaves sizes that do not: the
 * log is then scanned, never trusted wrongly.
 */
static int
clean_marker_write(struct stor_log *log, const struct clean_marker *m, bool sync, bool in_place)
{
	char path[PATH_MAX];
	uint8_t b[STOR_CLEAN_SIZE];

	stor_be32_put(b, STOR_CLEAN_MAGIC);
	stor_be32_put(b + 4, STOR_CLEAN_VERSION);
	stor_be64_put(b + 8, (uint64_t)m->next_offset);
	stor_be64_put(b + 16, (uint64_t)m->active_base);
	stor_be64_put(b + 24, m->active_size);
	stor_be64_put(b + 32, (uint64_t)m->max_ts);
	stor_be32_put(b + 40, m->max_ts_rel);
	stor_be32_put(b + 44, crc32c(b, 44));
	snprintf(path, sizeof(path), "%s/%s", log->dir, STOR_FILE_CLEAN);
	if (in_place)
		return file_write_whole(path, b, sizeof(b), true);
	return write_file_atomic(path, b, sizeof(b), sync);
}

/*
 * Make @dir's marker stale in place (its magic zeroed): 0 when one was there.
 * Where the write fails the marker is removed instead.
 */
static int
clean_marker_invalidate(const char *dir)
{
	static const uint8_t zero[4];
	char path[PATH_MAX];
	int fd, rc;

	snprintf(path, sizeof(path), "%s/%s", dir, STOR_FILE_CLEAN);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = pwrite(fd, zero, sizeof(zero), 0) == (ssize_t)sizeof(zero) ? 0 : -EIO;
	close(fd);
	if (rc != 0)
		rc = unlink(path) == 0 ? 0 : -errno;
	return rc;
}

static int
clean_marker_read(struct stor_log *log, struct clean_marker *m)
{
	char path[PATH_MAX], *buf;
	size_t len;
	const uint8_t *b;
	int rc = -EBADMSG;

	snprintf(path, sizeof(path), "%s/%s", log->dir, STOR_FILE_CLEAN);
	if (read_small_file(path, &buf, &len) != 0)
		return -ENOENT;
	b = (const uint8_t *)buf;
	if (len == STOR_CLEAN_SIZE && stor_be32_get(b) == STOR_CLEAN_MAGIC &&
	    stor_be32_get(b + 4) == STOR_CLEAN_VERSION && stor_be32_get(b + 44) == crc32c(b, 44)) {
		m->next_offset = (int64_t)stor_be64_get(b + 8);
		m->active_base = (int64_t)stor_be64_get(b + 16);
		m->active_size = stor_be64_get(b + 24);
		m->max_ts = (int64_t)stor_be64_get(b + 32);
		m->max_ts_rel = stor_be32_get(b + 40);
		rc = 0;
	}
	free(buf);
	return rc;
}

/* ------------------------------------------------------------------------- */
/* Open and recovery                                                          */

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Base offsets of the *.log files in @dir; removes leftovers of interrupted work. */
/*
 * A spare segment file met at open (@name in the log's directory): kept for
 * the next rolls while storage.segment.recycle allows one more, else deleted.
 */
static void
spare_found(struct stor_log *log, const char *name)
{
	char path[PATH_MAX];

	if (log->n_spares < log->cfg.segment_recycle) {
		log->spares[log->n_spares++] = strtoll(name, NULL, 10);
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", log->dir, name);
	unlink(path);
}

static int
list_segments(struct stor_log *log, int64_t **bases, unsigned *count)
{
	DIR *d = opendir(log->dir);
	struct dirent *de;
	unsigned n = 0, cap = 16;
	int64_t *v = malloc(cap * sizeof(*v));

	if (d == NULL || v == NULL) {
		if (d != NULL)
			closedir(d);
		free(v);
		return d == NULL ? -errno : -ENOMEM;
	}
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		size_t len = strlen(name);
		bool digits = len > STOR_SEGMENT_NAME_DIGITS;
		for (int i = 0; digits && i < STOR_SEGMENT_NAME_DIGITS; i++)
			digits = name[i] >= '0' && name[i] <= '9';
		if (!digits)
			continue;
		const char *suffix = name + STOR_SEGMENT_NAME_DIGITS;
		if (strstr(suffix, ".cleaned") != NULL || strstr(suffix, ".tmp") != NULL) {
			/* An interrupted compaction or index write: the originals stand. */
			char path[PATH_MAX];
			snprintf(path, sizeof(path), "%s/%s", log->dir, name);
			unlink(path);
			continue;
		}
		if (strcmp(suffix, ".spare") == 0) {
			spare_found(log, name);
			continue;
		}
		if (strcmp(suffix, ".log") != 0)
			continue;
		if (n == cap) {
			cap *= 2;
			void *p = realloc(v, cap * sizeof(*v));
			if (p == NULL) {
				closedir(d);
				free(v);
				return -ENOMEM;
			}
			v = p;
		}
		v[n++] = strtoll(name, NULL, 10);
	}
	closedir(d);
	qsort(v, n, sizeof(*v), cmp_i64);
	*bases = v;
	*count = n;
	return 0;
}

static struct stor_chunk *chunk_for_append(struct stor_log *log, struct stor_segment *seg,
                                           uint32_t need);

/*
 * The end the active segment's reservation should reach once @need more
 * bytes are appended: the whole segment, or with storage.preallocate.bytes
 * that much past the data (at most the segment).
 */
static uint64_t
prealloc_goal(const struct stor_log *log, const struct stor_segment *seg, uint32_t need)
{
	uint64_t full = STOR_ALIGN_UP(log->cfg.segment_bytes);
	uint64_t step = log->cfg.preallocate_bytes;
	uint64_t end = STOR_ALIGN_UP(seg->size + need);

	if (step == 0 || end + step >= full)
		return full;
	return end + step;
}

static void
alloc_done(struct stor_io_req *req, int res)
{
	struct stor_log *log = req->ctx;

	log->alloc_busy = false;
	stor_engine_mark_dirty(log->engine, log); /* a roll sync may wait for this */
	/* Not fatal: writes past the reserved range still work, only slower. */
	if (res < 0 && res != -EOPNOTSUPP)
		stor_prealloc_failed(log->engine, log->dir, res);
}

/*
 * Make @seg the active segment: preallocate and set up its first chunk.
 * At open (@async false) the preallocation is synchronous; at a roll it is
 * an IORING_OP_FALLOCATE, so the reactor does not wait for the file system
 * to reserve a whole segment (the first write of the new segment is queued
 * only after the previous segment's sync, so it rarely overtakes it; if it
 * does, fallocate mode 0 keeps the written data).
 */
static int
seg_activate(struct stor_log *log, struct stor_segment *seg, bool async)
{
	struct stor_backend *be = log->engine->be;
	uint32_t cap = active_index_cap(&log->cfg);
	int rc;

	rc = stor_seg_file(log, seg);
	if (rc != 0)
		return rc;
	rc = idx_reserve(seg, min_u32(cap, seg->idx_count + INDEX_INITIAL),
	                 min_u32(cap, seg->tidx_count + INDEX_INITIAL));
	if (rc != 0)
		return rc;
	/*
	 * At open, not now: an idle partition reserves no segment.bytes of disk
	 * (10,000 partitions x 1 GiB would); its first append queues it.
	 */
	log->prealloc_pending = !async && log->cfg.preallocate &&
		seg->size < log->cfg.segment_bytes;
	log->prealloc_end = 0;
	if (async && log->cfg.preallocate && seg->size < log->cfg.segment_bytes) {
		uint64_t len = prealloc_goal(log, seg, 0);
		rc = -EAGAIN;
		if (async && !log->alloc_busy) {
			struct stor_io_req *reqs[1] = {&log->areq};
			log->areq = (struct stor_io_req){.op = STOR_IO_FALLOCATE,
			                                 .buf_index = -1,
			                                 .file = seg->handle,
			                                 .off = 0,
			                                 .len = 0,
			                                 .done = alloc_done,
			                                 .ctx = log};
			/* len is 32-bit in the request: segments are < 2 GiB. */
			log->areq.len = (uint32_t)len;
			rc = be->ops->queue(be, reqs, 1);
			if (rc == 0)
				log->alloc_busy = true;
		}
		if (rc != 0)
			rc = be->ops->allocate(be, seg->handle, len);
		if (rc != 0 && rc != -EOPNOTSUPP)
			return rc;
		log->prealloc_end = len;
	}
	seg->sealed = false;
	seg->finalized = false;
	/* No chunk yet: the first append takes one (an idle log holds none). */
	log->tail_end = TAIL_NONE;
	return 0;
}

/*
 * Read the written partial last block of @seg into @dst (its first
 * seg->size % 4 KiB bytes). Blocking: at open, or as a fallback.
 */
static int
tail_read(struct stor_log *log, struct stor_segment *seg, uint8_t *dst)
{
	struct stor_backend *be = log->engine->be;
	uint64_t blk = STOR_ALIGN_DOWN(seg->size);
	uint32_t head = (uint32_t)(seg->size - blk);
	uint8_t *b;

	if (head == 0)
		return 0;
	int rc = stor_seg_file(log, seg);
	if (rc != 0)
		return rc;
	b = aligned_alloc(STOR_BLOCK_SIZE, STOR_BLOCK_SIZE); /* O_DIRECT alignment */
	if (b == NULL)
		return -ENOMEM;
	int64_t n = be->ops->pread(be, seg->handle, b, STOR_BLOCK_SIZE, blk);
	if (n >= (int64_t)head)
		memcpy(dst, b, head);
	free(b);
	if (n < (int64_t)head)
		return n < 0 ? (int)n : -EIO;
	return 0;
}

/* The log's buffer for its partial last block (made once, kept until close). */
static uint8_t *
tail_buf(struct stor_log *log)
{
	if (log->tail_copy == NULL)
		log->tail_copy = malloc(STOR_BLOCK_SIZE);
	return log->tail_copy;
}

/* At open: keep the active segment's partial last block for the first append. */
static int
load_tail_copy(struct stor_log *log, struct stor_segment *seg)
{
	uint32_t head = (uint32_t)(seg->size - STOR_ALIGN_DOWN(seg->size));
	int rc;

	if (head == 0)
		return 0;
	if (tail_buf(log) == NULL)
		return -ENOMEM;
	rc = tail_read(log, seg, log->tail_copy);
	if (rc != 0)
		return rc;
	log->tail_end = seg->size;
	return 0;
}

int
stor_log_chunk_evict(struct stor_log *log, struct stor_chunk *c)
{
	struct stor_segment *seg = active_seg(log);
	uint64_t blk = STOR_ALIGN_DOWN(seg->size);
	uint32_t head = (uint32_t)(seg->size - blk);
	uint8_t *copy;

	if (c->sealed || c->seg != seg || c != TAILQ_LAST(&log->chunks, stor_chunk_list))
		return 0; /* not the active chunk: a cache of written data only */
	if (head != 0) {
		/* The active chunk ends at the segment's end (appends go there). */
		if (c->file_off > blk || c->file_off + c->fill != seg->size)
			return -EINVAL;
		copy = tail_buf(log);
		if (copy == NULL)
			return -ENOMEM;
		memcpy(copy, c->mem + (blk - c->file_off), head);
		log->tail_end = seg->size;
	}
	return 1;
}

/* baseTimestamp of the segment's first batch, -1 when it has none (roll.ms). */
static int64_t
seg_first_timestamp(struct stor_log *log, struct stor_segment *seg)
{
	struct stor_backend *be = log->engine->be;
	struct kp_batch_header h;
	int64_t ts = -1;
	uint8_t *b;

	if (seg->size < KP_BATCH_HEADER_SIZE || stor_seg_file(log, seg) != 0)
		return -1;
	b = aligned_alloc(STOR_BLOCK_SIZE, STOR_BLOCK_SIZE);
	if (b == NULL)
		return -1;
	/* Only the header is parsed: pass its length, not the batch's. */
	if (be->ops->pread(be, seg->handle, b, STOR_BLOCK_SIZE, 0) >= KP_BATCH_HEADER_SIZE) {
		uint8_t hdr[KP_BATCH_HEADER_SIZE];
		memcpy(hdr, b, sizeof(hdr));
		stor_be32_put(hdr + 8, KP_BATCH_HEADER_SIZE - KP_BATCH_LOG_OVERHEAD);
		if (kp_batch_header_parse(hdr, sizeof(hdr), &h) == 0)
			ts = h.base_timestamp;
	}
	free(b);
	return ts;
}

/* Recover the last segment by scanning it; truncate a torn tail. */
static int
recover_active(struct stor_log *log, struct stor_segment *seg)
{
	struct stor_backend *be = log->engine->be;
	struct scan_result r;
	uint64_t fsize;
	int rc;

	rc = stor_seg_file(log, seg);
	if (rc == 0)
		rc = be->ops->size(be, seg->handle, &fsize);
	if (rc != 0)
		return rc;
	memo_free(log);
	rc = seg_scan(log, seg, fsize, &r, true);
	if (rc != 0) {
		memo_free(log);
		return rc;
	}
	log->memo_base = seg->base_offset;
	log->memo_size = r.valid_end;
	log->memo_next = r.next_offset;
	seg->size = r.valid_end;
	seg->next_offset = r.next_offset;
	if (r.stop != NULL)
		stor_msg(log->engine, STOR_LOG_WARN,
		         "%s: segment %020" PRId64 ": %s at position %" PRIu64
		         ", truncating the tail (%" PRIu64 " bytes after it dropped)",
		         log->dir, seg->base_offset, r.stop, r.valid_end, fsize - r.valid_end);
	stor_msg(log->engine, STOR_LOG_INFO,
	         "%s: recovered segment %020" PRId64 ": %u batches, %" PRIu64
	         " bytes, next offset %" PRId64,
	         log->dir, seg->base_offset, r.batches, r.valid_end, r.next_offset);
	/*
	 * Cut everything after the last valid batch, torn bytes and preallocated
	 * zeros alike: stale batches beyond the end must never reappear once new
	 * appends reach them. Preallocation follows in seg_activate().
	 */
	if (fsize != r.valid_end) {
		rc = be->ops->truncate(be, seg->handle, r.valid_end);
		if (rc != 0)
			return rc;
	}
	return 0;
}

struct stor_log *
stor_log_open(struct stor_engine *engine, const char *dir, const struct stor_log_config *cfg,
              int *err)
{
	struct stor_log *log = calloc(1, sizeof(*log));
	int64_t *bases = NULL;
	unsigned nbases = 0;
	struct clean_marker m = {0};
	bool clean, marker;
	int rc;

	if (log == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	log->engine = engine;
	log->cfg = *cfg;
	TAILQ_INIT(&log->chunks);
	log->direct = engine->opts.direct != STOR_DIRECT_OFF;
	log->dir = strdup(dir);
	if (log->cfg.max_pending == 0)
		log->cfg.max_pending = 1;
	/* Grown with use (pend_grow()): an idle log holds a small ring. */
	log->pend_cap = log->cfg.max_pending < PEND_INITIAL ? log->cfg.max_pending : PEND_INITIAL;
	log->pend = calloc(log->pend_cap, sizeof(*log->pend));
	if (log->dir == NULL || log->pend == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if (cfg->segment_bytes > INT32_MAX || cfg->segment_bytes < STOR_BLOCK_SIZE) {
		rc = -EINVAL;
		goto fail;
	}
	rc = mkdir_p(dir);
	if (rc != 0)
		goto fail;
	struct statfs sf;
	log->ram_dir = statfs(dir, &sf) == 0 &&
	               (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
	log_start_load(log);
	epochs_load(log);
	rc = list_segments(log, &bases, &nbases);
	if (rc != 0)
		goto fail;
	marker = clean_marker_read(log, &m) == 0;
	clean = marker;
	log->clean_base = -1;

	for (unsigned i = 0; i < nbases; i++) {
		struct stor_segment *seg = stor_seg_new(bases[i]);
		if (seg == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
		rc = log_push_seg(log, seg);
		if (rc != 0) {
			stor_seg_free(log, seg);
			goto fail;
		}
		rc = stor_seg_open_file(log, seg, false);
		if (rc != 0)
			goto fail;
		rc = engine->be->ops->size(engine->be, seg->handle, &seg->size);
		if (rc != 0)
			goto fail;
		seg->sealed = seg->finalized = true;
	}
	if (clean && (log->seg_count == 0 || m.active_base != active_seg(log)->base_offset ||
	              m.active_size != active_seg(log)->size))
		clean = false;

	if (log->seg_count == 0) {
		struct stor_segment *seg = stor_seg_new(log->start_offset);
		if (seg == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
		rc = log_push_seg(log, seg);
		if (rc != 0) {
			stor_seg_free(log, seg);
			goto fail;
		}
		rc = stor_seg_open_file(log, seg, true);
		if (rc != 0)
			goto fail;
	} else {
		struct stor_segment *seg = active_seg(log);
		bool done = false;
		if (clean && seg_index_load(log, seg) == 0) {
			seg->next_offset = m.next_offset;
			seg->max_timestamp = m.max_ts;
			seg->max_ts_offset = m.max_ts < 0 ? -1 : seg->base_offset + m.max_ts_rel;
			/* Kafka's rule counts bytes since the last entry; restore it. */
			uint64_t lastpos =
			        seg->idx_count ? seg->idx[seg->idx_count - 1].position : 0;
			seg->bytes_since_index = (uint32_t)(seg->size - lastpos);
			if (seg->idx_count == 0)
				seg->bytes_since_index = (uint32_t)seg->size;
			seg->first_timestamp = seg_first_timestamp(log, seg); /* for roll.ms */
			stor_msg(engine, STOR_LOG_INFO, "%s: clean shutdown, next offset %" PRId64,
			         dir, m.next_offset);
			log->clean_base = seg->base_offset;
			log->clean_next = m.next_offset;
			log->clean_size = seg->size;
			log->clean_idx = seg->idx_count;
			log->clean_tidx = seg->tidx_count;
			done = true;
		}
		while (!done) {
			rc = recover_active(log, seg);
			if (rc != 0)
				goto fail;
			if (seg->size != 0 || log->seg_count == 1)
				break;
			/*
			 * An empty last segment: the crash came between a roll and the
			 * end of the previous segment's sync and trim (no byte reaches a
			 * new segment before that). Drop it and recover the previous one,
			 * which may then hold a torn tail and preallocated zeros.
			 */
			stor_msg(engine, STOR_LOG_WARN,
			         "%s: empty last segment %020" PRId64 ", recovering the one before",
			         dir, seg->base_offset);
			char path[PATH_MAX];
			static const char *const sfx[] = {".log", ".index", ".timeindex"};
			for (unsigned k = 0; k < 3; k++) {
				stor_segment_path(path, sizeof(path), dir, seg->base_offset,
				                  sfx[k]);
				unlink(path);
			}
			log->seg_count--;
			stor_seg_free(log, seg);
			seg = active_seg(log);
		}
	}

	/*
	 * Sealed segments (after the last one is settled: a dropped empty last
	 * segment makes the one before it the last): trust the data, synced and
	 * trimmed at roll; check the indexes, rebuild them when they are bad.
	 */
	for (unsigned i = 0; i + 1 < log->seg_count; i++) {
		struct stor_segment *seg = log->segs[i];
		seg->next_offset = log->segs[i + 1]->base_offset;
		bool indexed = seg_index_load(log, seg) == 0;
		if (!indexed && i + 2 == log->seg_count && !clean) {
			/* The last roll's flush may not have finished: finish it (or cut there). */
			rc = seg_finish_unsynced(log, i);
			if (rc != 0)
				goto fail;
			break;
		}
		if (!indexed) {
			stor_msg(log->engine, STOR_LOG_WARN,
			         "%s: index of segment %020" PRId64
			         " missing or corrupt, rebuilding",
			         log->dir, seg->base_offset);
			rc = seg_rebuild_sealed(log, seg);
		} else if (seg->tidx_count == 0) {
			/* No time-index entry (a small segment): scan it for its timestamps. */
			struct scan_result r;
			rc = seg_scan(log, seg, seg->size, &r, false);
		} else {
			seg_times_from_index(seg);
			rc = 0;
		}
		if (rc != 0)
			goto fail;
	}
	free(bases);
	bases = NULL;

	struct stor_segment *act = active_seg(log);
	log->next_offset = act->next_offset;
	if (log->start_offset < log->segs[0]->base_offset)
		log->start_offset = log->segs[0]->base_offset;
	if (log->start_offset > log->next_offset)
		log->start_offset = log->next_offset;
	act->lpos_base = 0;
	log->appended_lpos = log->written_lpos = log->synced_lpos = act->size;
	log->written_offset = log->next_offset;
	log->last_written_seg = act;

	rc = seg_activate(log, act, false);
	if (rc != 0)
		goto fail;
	rc = load_tail_copy(log, act);
	if (rc != 0)
		goto fail;

	/*
	 * From here on the marker would be stale: it is invalidated in place,
	 * and that is made durable before the log's first change by one syncfs
	 * for every log opened so far (stor_log_unlink_settled()), not by a
	 * sync each.
	 */
	if (marker && clean_marker_invalidate(dir) == 0)
		stor_engine_unlink_deferred(engine, log, dir);
	TAILQ_INSERT_TAIL(&engine->all, log, all_link);
	engine->log_count++;
	return log;
fail:
	free(bases);
	while (!TAILQ_EMPTY(&log->chunks))
		stor_chunk_put(engine, TAILQ_FIRST(&log->chunks));
	for (unsigned i = 0; i < log->seg_count; i++)
		stor_seg_free(log, log->segs[i]);
	free(log->segs);
	free(log->epochs);
	free(log->pend);
	free(log->tail_copy);
	free(log->dir);
	free(log);
	*err = rc;
	return NULL;
}

/* ------------------------------------------------------------------------- */
/* Append                                                                      */

/*
 * The chunk the next @need bytes go to: the active one if they fit, else a
 * new one that starts with a copy of the partial last block (the bytes the
 * next write of that block must carry unchanged), taken from the active
 * chunk or, when the pool took that back, from the log's tail copy.
 */
static struct stor_chunk *
chunk_for_append(struct stor_log *log, struct stor_segment *seg, uint32_t need)
{
	struct stor_engine *e = log->engine;
	struct stor_chunk *old = TAILQ_LAST(&log->chunks, stor_chunk_list);
	bool active = old != NULL && !old->sealed && old->seg == seg;

	if (active && (size_t)old->fill + need <= e->opts.chunk_bytes)
		return old;
	if (active)
		stor_chunk_unlru(e, old); /* it hands its partial block over: not to be taken */
	struct stor_chunk *c = stor_chunk_get(e, log);
	if (c == NULL) {
		if (active)
			stor_chunk_maybe_reclaimable(e, old);
		return NULL;
	}
	c->seg = seg;
	c->file_off = STOR_ALIGN_DOWN(seg->size);
	uint32_t head = (uint32_t)(seg->size - c->file_off);
	if (head != 0) {
		int rc = 0;
		if (active)
			memcpy(c->mem, old->mem + (c->file_off - old->file_off), head);
		else if (log->tail_copy != NULL && log->tail_end == seg->size)
			memcpy(c->mem, log->tail_copy, head);
		else
			rc = tail_read(log, seg, c->mem); /* not expected: written, so on disk */
		if (rc != 0) {
			stor_chunk_put(e, c);
			if (active)
				stor_chunk_maybe_reclaimable(e, old);
			return NULL;
		}
	}
	log->tail_end = TAIL_NONE;
	c->head = c->fill = c->written = head;
	if (old != NULL && old != c && !old->sealed) {
		old->sealed = true;
		stor_chunk_maybe_reclaimable(e, old);
	}
	return c;
}

/*
 * The active segment's preallocation, asynchronous like a roll's (fallocate
 * mode 0 keeps bytes a write put there first): the whole segment at its
 * first append, or with storage.preallocate.bytes (step) the next step
 * whenever the data comes within half a step of the reserved end. A write
 * inside the file's size into reserved blocks is cheaper for ext4 than one
 * that grows the file: no inode size update and orphan entry per write, and
 * no io-wq worker waiting for the device (docs/storage.md "Many
 * partitions"); the step bounds the disk an idle partition holds. A full
 * queue leaves it for the next append.
 */
static void
prealloc_ahead(struct stor_log *log, struct stor_segment *seg, uint32_t need)
{
	struct stor_backend *be = log->engine->be;
	struct stor_io_req *reqs[1] = {&log->areq};
	uint64_t off = STOR_ALIGN_DOWN(seg->size), goal = prealloc_goal(log, seg, need);

	if (log->prealloc_end > off)
		off = log->prealloc_end;
	if (goal <= off || stor_seg_file(log, seg) != 0)
		return;
	log->areq = (struct stor_io_req){.op = STOR_IO_FALLOCATE,
	                                 .buf_index = -1,
	                                 .file = seg->handle,
	                                 .off = off,
	                                 .len = (uint32_t)(goal - off),
	                                 .done = alloc_done,
	                                 .ctx = log};
	if (be->ops->queue(be, reqs, 1) == 0) {
		log->alloc_busy = true;
		log->prealloc_pending = false;
		log->prealloc_end = goal;
	}
}

/* Whether an append of @need bytes to the active @seg should reserve more first. */
static bool
prealloc_due(const struct stor_log *log, const struct stor_segment *seg, uint32_t need)
{
	uint64_t step = log->cfg.preallocate_bytes;

	if (log->alloc_busy)
		return false;
	if (log->prealloc_pending)
		return true;
	return step != 0 && log->cfg.preallocate && log->prealloc_end != 0 &&
	       log->prealloc_end < STOR_ALIGN_UP(log->cfg.segment_bytes) &&
	       seg->size + need + step / 2 > log->prealloc_end;
}

static bool
need_roll(struct stor_log *log, struct stor_segment *seg, uint32_t size, int64_t max_ts)
{
	if (seg->size == 0)
		return false;
	if (seg->size + size > log->cfg.segment_bytes)
		return true;
	if (seg->idx_count >= seg->idx_cap || seg->tidx_count >= seg->tidx_cap)
		return true;
	if (log->cfg.roll_ms >= 0) {
		/*
		 * Kafka's LogSegment.shouldRoll: the incoming batch's timestamp minus
		 * the segment's first batch timestamp, or wall time since creation
		 * when the segment has no timestamp.
		 */
		int64_t waited = seg->first_timestamp >= 0 ? max_ts - seg->first_timestamp
		                                           : stor_wall_ms() - seg->created_ms;
		if (waited > log->cfg.roll_ms)
			return true;
	}
	return false;
}

/*
 * Before a roll creates segment @base: rename the oldest spare file into its
 * place, so that its writes go to pages that exist (storage.segment.recycle).
 * Its old bytes stay past the data; seg_scan() stops at them (their offsets
 * are below @base) and a close trims them. A failed rename drops the spare.
 */
static bool
spare_take(struct stor_log *log, int64_t base)
{
	char from[PATH_MAX], to[PATH_MAX];

	if (log->n_spares == 0)
		return false;
	stor_segment_path(from, sizeof(from), log->dir, log->spares[0], ".spare");
	stor_segment_path(to, sizeof(to), log->dir, base, ".log");
	log->n_spares--;
	memmove(&log->spares[0], &log->spares[1], log->n_spares * sizeof(log->spares[0]));
	if (rename(from, to) == 0) {
		log->engine->segments_recycled++;
		return true;
	}
	stor_msg(log->engine, STOR_LOG_WARN, "%s: cannot reuse %s: %s", log->dir, from,
	         strerror(errno));
	unlink(from);
	return false;
}

/*
 * A roll into a recycled file failed: the file goes (with its old bytes it
 * would be a segment that does not validate, between two that do).
 */
static void
spare_drop(struct stor_log *log, int64_t base)
{
	char path[PATH_MAX];

	stor_segment_path(path, sizeof(path), log->dir, base, ".log");
	unlink(path);
}

static int
log_roll_locked(struct stor_log *log)
{
	struct stor_segment *old = active_seg(log);
	struct stor_segment *seg;
	int rc;

	/* Time-index entry for the segment's largest timestamp (Kafka, onBecomeInactiveSegment). */
	if (old->max_timestamp >= 0 && old->tidx_count < old->tidx_cap &&
	    (old->tidx_count == 0 ||
	     old->max_timestamp > old->tidx[old->tidx_count - 1].timestamp)) {
		old->tidx[old->tidx_count].timestamp = old->max_timestamp;
		old->tidx[old->tidx_count].rel_offset =
		        (uint32_t)(old->max_ts_offset - old->base_offset);
		old->tidx_count++;
	}
	seg = stor_seg_new(log->next_offset);
	if (seg == NULL)
		return -ENOMEM;
	bool recycled = spare_take(log, seg->base_offset);
	rc = stor_seg_open_file(log, seg, true);
	if (rc == 0)
		rc = log_push_seg(log, seg);
	if (rc != 0) {
		stor_seg_free(log, seg);
		if (recycled)
			spare_drop(log, log->next_offset);
		return rc;
	}
	seg->lpos_base = old->lpos_base + old->size;
	old->sealed = true;
	rc = seg_activate(log, seg, true);
	if (rc != 0) {
		/* Keep the old segment active; the new empty file stays and is harmless. */
		log->seg_count--;
		old->sealed = false;
		stor_seg_free(log, seg);
		if (recycled)
			spare_drop(log, log->next_offset);
		return rc;
	}
	/* Its name is a rename's: made durable with the old segment's flush (disk only). */
	old->dsync_next = recycled && !log->ram_dir;
	log->engine->segments_rolled++;
	stor_msg(log->engine, STOR_LOG_INFO, "%s: rolled segment %020" PRId64, log->dir,
	         seg->base_offset);
	stor_engine_mark_dirty(log->engine, log); /* the old one needs its sync */
	return 0;
}

int
stor_log_append(struct stor_log *log, const void *batch, size_t len, unsigned flags,
                stor_append_cb cb, void *cb_arg, int64_t *base_offset)
{
	struct kp_batch_header h;
	struct stor_segment *seg;
	struct stor_chunk *c;
	int rc;

	if (log->failed)
		return log->failed;
	rc = stor_log_unlink_settled(log);
	if (rc != 0)
		return rc;
	if (log->memo != NULL)
		memo_free(log); /* the recovery's headers no longer cover the segment */
	rc = kp_batch_header_parse(batch, len, &h);
	if (rc != 0)
		return rc;
	if (kp_batch_size(&h) != len || h.last_offset_delta < 0)
		return -EBADMSG;
	if (len > log->engine->opts.chunk_bytes - STOR_BLOCK_SIZE || len > log->cfg.segment_bytes)
		return -EMSGSIZE;
	if (log->pend_count == log->pend_cap) {
		if (log->pend_cap >= log->cfg.max_pending)
			return -EAGAIN;
		rc = pend_grow(log);
		if (rc != 0)
			return rc;
	}
	uint32_t size = (uint32_t)len;
	seg = active_seg(log);
	rc = idx_room(log, seg);
	if (rc != 0)
		return rc;
	if (need_roll(log, seg, size, h.max_timestamp)) {
		if (stor_engine_chunks_available(log->engine) == 0)
			return -EAGAIN; /* the new segment needs a chunk: retry after a poll */
		rc = log_roll_locked(log);
		if (rc != 0)
			return rc;
		seg = active_seg(log);
	}
	c = chunk_for_append(log, seg, size);
	if (c == NULL)
		return -EAGAIN; /* every chunk is being written or read: retry after a poll */
	stor_chunk_unlru(log->engine, c); /* an idle active chunk: not to be taken now */
	if (prealloc_due(log, seg, size))
		prealloc_ahead(log, seg, size);

	uint64_t pos = seg->size;
	int64_t base = log->next_offset;
	int64_t last = base + h.last_offset_delta;
	uint8_t *dst = c->mem + c->fill;
	memcpy(dst, batch, size);
	kp_batch_set_base_offset(dst, base);
	if (c->first_offset < 0)
		c->first_offset = base;
	c->next_offset = last + 1;
	c->fill += size;

	stor_seg_index_batch(seg, log->cfg.index_interval_bytes, last, h.max_timestamp, pos, size,
	                     false);
	if (seg->first_timestamp < 0)
		seg->first_timestamp = h.base_timestamp;
	seg->size += size;
	seg->next_offset = last + 1;
	log->next_offset = last + 1;
	log->appended_lpos += size;

	uint32_t slot = (log->pend_head + log->pend_count) % log->pend_cap;
	struct stor_pending *p = &log->pend[slot];
	p->end_lpos = log->appended_lpos;
	p->base_offset = base;
	p->cb = cb;
	p->cb_arg = cb_arg;
	p->durable = (flags & STOR_APPEND_DURABLE) != 0;
	log->pend_count++;
	if (p->durable)
		log->pend_durable++;

	log->unsynced_msgs += h.records_count > 0 ? h.records_count : 1;
	if (log->oldest_unsynced_ms == 0) {
		log->oldest_unsynced_ms = stor_mono_ms();
		stor_engine_timer_arm(log->engine, log);
	}
	if (base_offset != NULL)
		*base_offset = base;
	stor_engine_mark_dirty(log->engine, log);
	return 0;
}

/* ------------------------------------------------------------------------- */
/* Write pipeline                                                              */

static void
complete_pending(struct stor_log *log)
{
	while (log->pend_count != 0) {
		struct stor_pending *p = &log->pend[log->pend_head];
		if (p->end_lpos > log->written_lpos)
			break;
		if (p->durable && p->end_lpos > log->synced_lpos)
			break;
		struct stor_pending done = *p;
		log->pend_head = (log->pend_head + 1) % log->pend_cap;
		log->pend_count--;
		if (done.durable)
			log->pend_durable--;
		if (done.cb != NULL)
			done.cb(done.cb_arg, 0, done.base_offset);
	}
}

static void
log_fail(struct stor_log *log, int rc, const char *what)
{
	if (rc >= 0 || rc == -ECANCELED)
		rc = -EIO;
	if (!log->failed) {
		stor_msg(log->engine, STOR_LOG_ERR,
		         "%s: %s failed (%s); the log takes no more appends", log->dir, what,
		         strerror(-rc));
		log->engine->logs_failed++;
	}
	log->failed = rc;
	while (log->pend_count != 0) {
		struct stor_pending done = log->pend[log->pend_head];
		log->pend_head = (log->pend_head + 1) % log->pend_cap;
		log->pend_count--;
		if (done.cb != NULL)
			done.cb(done.cb_arg, rc, done.base_offset);
	}
	log->pend_durable = 0;
}

static bool
sync_wanted(const struct stor_log *log)
{
	if (log->pend_durable != 0)
		return true;
	if (log->unsynced_msgs >= log->cfg.flush_messages)
		return true;
	if (log->oldest_unsynced_ms != 0 && log->cfg.flush_ms != INT64_MAX &&
	    stor_mono_ms() - log->oldest_unsynced_ms >= (uint64_t)log->cfg.flush_ms)
		return true;
	return false;
}

/*
 * The oldest chunk with unwritten bytes. Writes go in chunk order, so the
 * unwritten chunks are the newest ones: walk back from the newest (a log
 * keeps up to the whole pool as read cache, and a walk from the oldest cost
 * 5-9% of the reactor with 8 partitions sharing 2,048 chunks). Only the
 * newest chunk may be clean with an unwritten one before it (just taken,
 * nothing appended yet).
 */
static struct stor_chunk *
first_dirty_chunk(struct stor_log *log)
{
	struct stor_chunk *c = TAILQ_LAST(&log->chunks, stor_chunk_list), *dirty = NULL;

	if (c != NULL && c->written == c->fill)
		c = TAILQ_PREV(c, stor_chunk_list, log_link);
	for (; c != NULL && c->written < c->fill; c = TAILQ_PREV(c, stor_chunk_list, log_link))
		dirty = c;
	return dirty;
}

/*
 * A sealed segment is finished: trimmed to its size (@trim_rc: how that went,
 * roll_sync_done), its indexes written (setup-like syscalls).
 */
static void
seg_finalize(struct stor_log *log, struct stor_segment *seg, int trim_rc)
{
	int rc = trim_rc;

	if (rc == 0)
		rc = stor_index_write_files(log->dir, seg, "");
	if (rc != 0)
		stor_msg(log->engine, STOR_LOG_WARN,
		         "%s: finishing segment %020" PRId64 ": %s (indexes rebuilt at next open)",
		         log->dir, seg->base_offset, strerror(-rc));
	/* Give back the spare index capacity reserved for appends. */
	if (seg->idx_count + 1 < seg->idx_cap || seg->tidx_count + 1 < seg->tidx_cap) {
		struct stor_index_entry *i =
		        realloc(seg->idx, ((size_t)seg->idx_count + 1) * sizeof(*seg->idx));
		struct stor_time_entry *t =
		        realloc(seg->tidx, ((size_t)seg->tidx_count + 1) * sizeof(*seg->tidx));
		if (i != NULL) {
			seg->idx = i;
			seg->idx_cap = seg->idx_count + 1;
		}
		if (t != NULL) {
			seg->tidx = t;
			seg->tidx_cap = seg->tidx_count + 1;
		}
	}
	seg->finalized = true;
}

/*
 * The oldest sealed segment whose roll's flush (sync, trim, indexes) is not
 * done, or NULL. Flushes go oldest first, so such segments are the ones
 * right before the active one.
 */
static struct stor_segment *
unflushed_seg(const struct stor_log *log)
{
	struct stor_segment *found = NULL;

	for (unsigned i = log->seg_count - 1; i-- > 0;) {
		if (log->segs[i]->finalized)
			break;
		found = log->segs[i];
	}
	return found;
}

/*
 * Whether a write into @seg may go now: at most one segment before it still
 * unflushed, the one right before it, so that a crash leaves at most the
 * last two segments to check (see the top of this file).
 */
static bool
write_allowed(const struct stor_log *log, const struct stor_segment *seg)
{
	unsigned i = log->seg_count;

	while (i > 0 && log->segs[i - 1] != seg)
		i--;
	return i < 3 || log->segs[i - 3]->finalized; /* segs[i - 1] is @seg */
}

/* How far a sync reached, the durable watermark or past it (synced_ahead). */
static uint64_t
synced_to(const struct stor_log *log)
{
	return log->synced_ahead > log->synced_lpos ? log->synced_ahead : log->synced_lpos;
}

static bool
log_has_io_work(struct stor_log *log)
{
	if (log->failed)
		return false;
	if (first_dirty_chunk(log) != NULL)
		return true;
	if (!log->rsync_busy && unflushed_seg(log) != NULL)
		return true;
	return sync_wanted(log) && synced_to(log) < log->written_lpos;
}

static void
io_done(struct stor_log *log)
{
	log->io_busy = false;
	if (log->failed)
		return;
	complete_pending(log);
	if (log_has_io_work(log))
		stor_engine_mark_dirty(log->engine, log);
}

static void
write_done(struct stor_io_req *req, int res)
{
	struct stor_log *log = req->ctx;
	struct stor_chunk *c = log->w_chunk;

	log->io_parts--;
	if (res != (int)req->len) {
		log_fail(log, res < 0 ? res : -EIO, "write");
	} else {
		c->written = log->w_end;
		log->written_lpos = log->w_seg->lpos_base + c->file_off + log->w_end;
		log->written_offset = log->w_offset_end;
		log->last_written_seg = log->w_seg;
		stor_chunk_maybe_reclaimable(log->engine, c);
	}
	if (log->io_parts == 0)
		io_done(log);
}

static void
sync_done(struct stor_io_req *req, int res)
{
	struct stor_log *log = req->ctx;
	struct stor_segment *seg = log->w_seg;

	log->io_parts--;
	stor_flush_done(log->engine, log->sync_t0_ns);
	if (res < 0) {
		log_fail(log, res, "fdatasync");
	} else if (!log->failed) {
		uint64_t to = log->w_sync_lpos;
		struct stor_segment *rs = unflushed_seg(log);

		/* Not durable past a sealed segment whose own sync is still out. */
		if (rs != NULL && rs != seg && to > rs->lpos_base + rs->size) {
			if (to > log->synced_ahead)
				log->synced_ahead = to;
			to = rs->lpos_base + rs->size;
		}
		if (to > log->synced_lpos)
			log->synced_lpos = to;
		log->unsynced_msgs = 0;
		log->oldest_unsynced_ms = 0;
		if (log->synced_lpos < log->appended_lpos) {
			log->oldest_unsynced_ms = stor_mono_ms();
			stor_engine_timer_arm(log->engine, log);
		}
		/* A sealed segment this sync covered is trimmed by its roll's flush
		 * (roll_sync_issue: its fdatasync then finds nothing to write). */
	}
	if (log->io_parts == 0)
		io_done(log);
}

static void seg_release(struct stor_log *log, struct stor_segment *seg);

/*
 * The roll's flush ends: @synced when its fdatasync succeeded, the trim
 * having given @trim_rc.
 */
static void
roll_flush_end(struct stor_log *log, bool synced, int trim_rc)
{
	struct stor_segment *seg = log->roll_seg;
	uint64_t end = seg->lpos_base + seg->size;

	log->rsync_busy = false;
	log->roll_seg = NULL;
	if (synced && !log->failed) {
		if (!seg->deleted && !seg->finalized)
			seg_finalize(log, seg, trim_rc);
		if (end > log->synced_lpos)
			log->synced_lpos = end;
		/* What later syncs reached, up to the next unflushed segment's end. */
		struct stor_segment *next = unflushed_seg(log);
		uint64_t ahead = log->synced_ahead;
		if (next != NULL && ahead > next->lpos_base + next->size)
			ahead = next->lpos_base + next->size;
		if (ahead > log->synced_lpos)
			log->synced_lpos = ahead;
		if (next == NULL)
			log->synced_ahead = 0;
	}
	seg->refs--;
	seg_release(log, seg);
	if (!log->failed)
		complete_pending(log);
	if (log_has_io_work(log))
		stor_engine_mark_dirty(log->engine, log);
}

static void
roll_dsync_done(struct stor_io_req *req, int res)
{
	struct stor_log *log = req->ctx;
	struct stor_backend *be = log->engine->be;

	(void)be->ops->close(be, req->file);
	if (res < 0) {
		log_fail(log, res, "fsync of the directory");
		roll_flush_end(log, false, 0);
		return;
	}
	roll_flush_end(log, true, log->roll_trim_rc);
}

/*
 * The sealed segment is synced and trimmed. When the roll that sealed it
 * renamed a spare into place on disk (dsync_next), the new name is durable
 * only after an fsync of the directory (an fdatasync of the file does not
 * carry a rename on ext4 or XFS): queued here, in an io-wq worker, before the
 * flush ends, so that nothing past the sealed segment counts as synced (a
 * durable append in the recycled file is not acknowledged) without it.
 */
static void
roll_flush_synced(struct stor_log *log, int trim_rc)
{
	struct stor_segment *seg = log->roll_seg;
	struct stor_backend *be = log->engine->be;
	struct stor_io_req *reqs[1] = {&log->rsreq};
	int h, rc;

	if (!seg->dsync_next || log->failed) {
		roll_flush_end(log, true, trim_rc);
		return;
	}
	seg->dsync_next = false;
	rc = be->ops->open(be, log->dir, STOR_OPEN_DIR, &h);
	if (rc == 0) {
		log->roll_trim_rc = trim_rc;
		log->rsreq = (struct stor_io_req){.op = STOR_IO_FSYNC,
		                                  .buf_index = -1,
		                                  .file = h,
		                                  .done = roll_dsync_done,
		                                  .ctx = log};
		if (be->ops->queue(be, reqs, 1) == 0)
			return; /* rsync_busy until roll_dsync_done */
		(void)be->ops->close(be, h);
	}
	rc = fsync_dir(log->dir); /* no handle or the queue full: here */
	if (rc != 0) {
		log_fail(log, rc, "fsync of the directory");
		roll_flush_end(log, false, 0);
		return;
	}
	roll_flush_end(log, true, trim_rc);
}

static void
roll_trim_done(struct stor_io_req *req, int res)
{
	roll_flush_synced(req->ctx, res < 0 ? res : 0);
}

/*
 * The sealed segment is synced: trim it to its size through the backend.
 * On O_DIRECT segments the trim reads the new last block from the device
 * (ext4 zeroes its tail; 0.29 ms median on this VM's disk, session 17): an
 * io-wq worker does it where the kernel can (STOR_IO_TRUNCATE), the reactor
 * only where it cannot, as before.
 */
static void
roll_sync_done(struct stor_io_req *req, int res)
{
	struct stor_log *log = req->ctx;
	struct stor_segment *seg = log->roll_seg;
	struct stor_backend *be = log->engine->be;
	struct stor_io_req *reqs[1] = {&log->rsreq};
	int rc;

	stor_flush_done(log->engine, log->rsync_t0_ns);
	if (res < 0) {
		log_fail(log, res, "fdatasync");
		roll_flush_end(log, false, 0);
		return;
	}
	if (log->failed) {
		roll_flush_end(log, true, 0);
		return;
	}
	if (seg->deleted || seg->finalized) {
		roll_flush_synced(log, 0);
		return;
	}
	rc = stor_seg_file(log, seg);
	if (rc == 0) {
		/* The backend is done with rsreq (done() is its last use): the trim reuses it. */
		log->rsreq = (struct stor_io_req){.op = STOR_IO_TRUNCATE,
		                                  .buf_index = -1,
		                                  .file = seg->handle,
		                                  .off = seg->size,
		                                  .done = roll_trim_done,
		                                  .ctx = log};
		if (be->ops->queue(be, reqs, 1) == 0)
			return; /* rsync_busy until roll_trim_done */
		rc = be->ops->truncate(be, seg->handle, seg->size); /* the queue full: here */
	}
	roll_flush_synced(log, rc);
}

/*
 * The roll's flush, beside the writes: the sealed segment's fdatasync once
 * its last write completed (writes go in order), not racing its own
 * preallocation (the trim after it would be undone). 1 when queued.
 */
static int
roll_sync_issue(struct stor_log *log)
{
	struct stor_backend *be = log->engine->be;
	struct stor_segment *seg;
	struct stor_io_req *reqs[1] = {&log->rsreq};
	int rc;

	if (log->rsync_busy || (seg = unflushed_seg(log)) == NULL)
		return 0;
	if (log->written_lpos < seg->lpos_base + seg->size)
		return 0;
	if (log->alloc_busy && log->areq.file == seg->handle)
		return 0;
	rc = stor_seg_file(log, seg);
	if (rc != 0) {
		log_fail(log, rc, "reopening a segment");
		return 0;
	}
	log->rsreq = (struct stor_io_req){.op = STOR_IO_FDATASYNC,
	                                  .buf_index = -1,
	                                  .file = seg->handle,
	                                  .done = roll_sync_done,
	                                  .ctx = log};
	rc = be->ops->queue(be, reqs, 1);
	if (rc != 0)
		return rc;
	seg->refs++; /* deleted meanwhile, its file stays open */
	log->roll_seg = seg;
	log->rsync_busy = true;
	log->rsync_t0_ns = stor_mono_ns();
	return 1;
}

/*
 * Queue this log's next I/O: at most one write (+ linked sync) in flight.
 * Returns 1 when something was queued, 0 when there is nothing to do now,
 * -EAGAIN when the backend queue is full.
 */
int
stor_log_issue_io(struct stor_log *log)
{
	struct stor_backend *be = log->engine->be;
	struct stor_io_req *reqs[2];
	struct stor_chunk *c;
	int rc;

	if (log->failed)
		return 0;
	int rolled = roll_sync_issue(log);
	if (rolled < 0)
		return rolled;
	if (log->io_busy)
		return rolled;
	c = first_dirty_chunk(log);
	log->sreq = (struct stor_io_req){
	        .op = STOR_IO_FDATASYNC, .buf_index = -1, .done = sync_done, .ctx = log};

	if (c != NULL && !write_allowed(log, c->seg))
		return rolled; /* two rolls behind: the older one's flush first */
	if (c != NULL) {
		struct stor_segment *seg = c->seg;
		/*
		 * O_DIRECT: whole blocks, the partial last one rewritten and padded
		 * with zeros (docs/storage.md). Through the page cache (buffered,
		 * tmpfs) the bytes not yet written are enough: no block copied
		 * twice, no padding (16 KiB batches: a quarter fewer bytes).
		 */
		uint32_t start = log->direct ? (uint32_t)STOR_ALIGN_DOWN(c->written) : c->written;
		uint32_t end = c->fill;
		uint32_t aend = log->direct ? (uint32_t)STOR_ALIGN_UP(end) : end;
		bool is_tail = TAILQ_NEXT(c, log_link) == NULL;
		bool sync = is_tail && sync_wanted(log);

		rc = stor_seg_file(log, seg);
		if (rc != 0) {
			log_fail(log, rc, "reopening a segment");
			return 0;
		}

		/* The padding of the last block: zeros, never stale bytes of an old batch. */
		memset(c->mem + end, 0, aend - end);
		log->wreq = (struct stor_io_req){
		        .op = STOR_IO_WRITE,
		        .link_next = sync,
		        .buf_index = c->buf_index,
		        .file = seg->handle,
		        .buf = c->mem + start,
		        .len = aend - start,
		        .off = c->file_off + start,
		        .done = write_done,
		        .ctx = log,
		};
		reqs[0] = &log->wreq;
		if (sync) {
			log->sreq.file = seg->handle;
			reqs[1] = &log->sreq;
		}
		rc = be->ops->queue(be, reqs, sync ? 2 : 1);
		if (rc != 0)
			return rc;
		if (sync)
			log->sync_t0_ns = stor_mono_ns();
		log->w_chunk = c;
		log->w_end = end;
		log->w_seg = seg;
		log->w_offset_end = c->next_offset >= 0 ? c->next_offset : log->written_offset;
		log->w_sync_lpos = seg->lpos_base + c->file_off + end;
		log->io_busy = true;
		log->io_parts = sync ? 2 : 1;
		return 1;
	}
	if (sync_wanted(log) && synced_to(log) < log->written_lpos) {
		/* Older segments were synced at roll (or are, roll_seg): only the active one can be behind. */
		rc = stor_seg_file(log, active_seg(log));
		if (rc != 0) {
			log_fail(log, rc, "reopening a segment");
			return 0;
		}
		log->sreq.file = active_seg(log)->handle;
		log->w_seg = active_seg(log);
		log->w_sync_lpos = log->written_lpos;
		reqs[0] = &log->sreq;
		rc = be->ops->queue(be, reqs, 1);
		if (rc != 0)
			return rc;
		log->sync_t0_ns = stor_mono_ns();
		log->io_busy = true;
		log->io_parts = 1;
		return 1;
	}
	return rolled;
}

/* ------------------------------------------------------------------------- */
/* Reads                                                                       */

size_t
stor_read_buf_size(size_t max_bytes)
{
	/* Index slack (one interval + a batch) is covered by a second read if needed. */
	return STOR_ALIGN_UP(max_bytes + 2 * STOR_BLOCK_SIZE);
}

/* Bytes of @seg that reads may see: written ones. */
static uint64_t
seg_readable(const struct stor_log *log, const struct stor_segment *seg)
{
	if (log->written_lpos >= seg->lpos_base + seg->size || seg->finalized)
		return seg->size;
	if (log->written_lpos <= seg->lpos_base)
		return 0;
	return log->written_lpos - seg->lpos_base;
}

/* The segment that holds @offset or the first one after it; NULL past the end. */
static struct stor_segment *
seg_for_offset(const struct stor_log *log, int64_t offset)
{
	unsigned lo = 0, hi = log->seg_count;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (log->segs[mid]->base_offset <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	unsigned i = lo == 0 ? 0 : lo - 1;
	for (; i < log->seg_count; i++)
		if (log->segs[i]->next_offset > offset && log->segs[i]->size > 0)
			return log->segs[i];
	return NULL;
}

/*
 * Walk whole batches in [@p, @end): skip those ending below @target, then
 * take batches up to @max_bytes (at least one). Returns the bytes taken;
 * *@first receives where they start, *@next the offset after them, and
 * *@incomplete is set when the walk stopped on a batch cut by @end.
 */
static size_t
collect_batches(const uint8_t *p, const uint8_t *end, int64_t target, size_t max_bytes,
                const uint8_t **first, int64_t *next, bool *incomplete)
{
	size_t total = 0;

	*first = NULL;
	*incomplete = false;
	while (end - p >= KP_BATCH_HEADER_SIZE) {
		uint32_t size = KP_BATCH_LOG_OVERHEAD + stor_be32_get(p + 8);
		if (size < KP_BATCH_HEADER_SIZE)
			break; /* zero padding: end of data */
		if ((size_t)(end - p) < size) {
			*incomplete = true;
			break;
		}
		int64_t base = (int64_t)stor_be64_get(p);
		int64_t last = base + (int32_t)stor_be32_get(p + 23);
		if (last < target && *first == NULL) {
			p += size;
			continue;
		}
		if (*first == NULL)
			*first = p;
		else if (total + size > max_bytes)
			break;
		total += size;
		*next = last + 1;
		p += size;
	}
	if (*first == NULL && end - p > 0 && end - p < KP_BATCH_HEADER_SIZE)
		*incomplete = true;
	return total;
}

/*
 * Where in chunk @c a walk for @offset starts: at the offset index's entry
 * at or below it when that falls in the chunk's data (a batch starts
 * there), else at the chunk's first batch. Without the index a consumer at
 * the tail walked every batch of the chunk on each Fetch: with 1-record
 * batches of 1 KiB, about a thousand headers per partition per Fetch (16%
 * of the broker's cycles at linger 0, docs/benchmarks.md).
 */
static uint32_t
cache_scan_start(const struct stor_chunk *c, int64_t offset)
{
	uint64_t pos;

	if (c->seg == NULL || c->seg->idx_count == 0)
		return c->head;
	pos = idx_lookup(c->seg, offset);
	if (pos < c->file_off + c->head || pos >= c->file_off + c->written)
		return c->head;
	return (uint32_t)(pos - c->file_off);
}

static bool
read_from_cache(struct stor_log *log, struct stor_read *rd, int64_t offset, size_t max_bytes)
{
	struct stor_chunk *c;

	TAILQ_FOREACH_REVERSE(c, &log->chunks, stor_chunk_list, log_link)
	{
		if (c->first_offset < 0 || c->first_offset > offset)
			continue;
		if (offset >= c->next_offset)
			return false; /* newer chunks did not have it either */
		const uint8_t *first;
		int64_t next = offset;
		bool incomplete;
		size_t n = collect_batches(c->mem + cache_scan_start(c, offset), c->mem + c->written,
		                           offset, max_bytes, &first, &next, &incomplete);
		if (n == 0)
			return false;
		rd->data = first;
		rd->len = n;
		rd->next_offset = next;
		rd->from_cache = 1;
		rd->chunk = c;
		c->refs++;
		stor_chunk_unlru(log->engine, c);
		return true;
	}
	return false;
}

static void read_done(struct stor_io_req *req, int res);

static int
read_submit(struct stor_read *rd, uint64_t pos)
{
	struct stor_log *log = rd->log;
	struct stor_backend *be = log->engine->be;
	struct stor_io_req *reqs[1] = {&rd->req};
	uint64_t limit = seg_readable(log, rd->seg);
	uint64_t start = STOR_ALIGN_DOWN(pos);
	uint64_t len = STOR_ALIGN_UP(limit) - start;
	int rc = stor_seg_file(log, rd->seg);

	if (rc != 0)
		return rc;
	if (len > rd->buf_size)
		len = rd->buf_size;
	rd->pos = start;
	rd->batch_pos = pos;
	rd->req = (struct stor_io_req){
	        .op = STOR_IO_READ,
	        .buf_index = -1,
	        .file = rd->seg->handle,
	        .buf = rd->buf,
	        .len = (uint32_t)len,
	        .off = start,
	        .done = read_done,
	        .ctx = rd,
	};
	return be->ops->queue(be, reqs, 1);
}

static void
read_done(struct stor_io_req *req, int res)
{
	struct stor_read *rd = req->ctx;
	struct stor_log *log = rd->log;
	const uint8_t *first;
	int64_t next = rd->target;
	bool incomplete;

	if (res < 0) {
		rd->cb(rd->cb_arg, rd, res);
		return;
	}
	uint64_t limit = seg_readable(log, rd->seg);
	uint64_t end = rd->pos + (uint64_t)res;
	if (end > limit)
		end = limit;
	const uint8_t *base = rd->buf;
	const uint8_t *p = base + (rd->batch_pos - rd->pos);
	size_t n = end > rd->batch_pos ? collect_batches(p, base + (end - rd->pos), rd->target,
	                                                 rd->max_bytes, &first, &next, &incomplete)
	                               : 0;
	if (n != 0) {
		rd->data = first;
		rd->len = n;
		rd->next_offset = next;
		rd->cb(rd->cb_arg, rd, 0);
		return;
	}
	if (rd->retried++ < 8) {
		/* The window ended inside the batches before the target or inside it. */
		uint64_t resume = rd->batch_pos;
		const uint8_t *q = p, *qend = base + (end - rd->pos);
		while (qend - q >= KP_BATCH_HEADER_SIZE) {
			uint32_t size = KP_BATCH_LOG_OVERHEAD + stor_be32_get(q + 8);
			if (size < KP_BATCH_HEADER_SIZE || (size_t)(qend - q) < size)
				break;
			q += size;
		}
		resume = rd->pos + (uint64_t)(q - base);
		if (resume < limit && (resume > rd->batch_pos || rd->retried == 1)) {
			uint32_t need =
			        qend - q >= 12 ? KP_BATCH_LOG_OVERHEAD + stor_be32_get(q + 8) : 0;
			if (need + (resume - STOR_ALIGN_DOWN(resume)) > rd->buf_size) {
				rd->cb(rd->cb_arg, rd, -ENOBUFS);
				return;
			}
			if (read_submit(rd, resume) == 0)
				return;
		}
		/* End of this segment's data: the offset fell in a gap; try the next segment. */
		if (resume >= limit && rd->seg != active_seg(log)) {
			struct stor_segment *nseg = seg_for_offset(log, rd->seg->next_offset);
			if (nseg != NULL && nseg != rd->seg) {
				rd->seg->refs--;
				rd->seg = nseg;
				nseg->refs++;
				if (rd->target < nseg->base_offset)
					rd->target = nseg->base_offset;
				if (read_submit(rd, idx_lookup(nseg, rd->target)) == 0)
					return;
			}
		}
	}
	rd->len = 0;
	rd->next_offset = rd->target;
	rd->cb(rd->cb_arg, rd, 0);
}

int
stor_log_read(struct stor_log *log, struct stor_read *rd, int64_t offset, size_t max_bytes,
              stor_read_cb cb, void *cb_arg)
{
	struct stor_segment *seg;
	int rc;

	rd->log = log;
	rd->chunk = NULL;
	rd->seg = NULL;
	rd->data = NULL;
	rd->len = 0;
	rd->from_cache = 0;
	rd->next_offset = offset;
	rd->target = offset;
	rd->max_bytes = max_bytes;
	rd->retried = 0;
	rd->cb = cb;
	rd->cb_arg = cb_arg;
	if (offset < log->start_offset || offset > log->next_offset)
		return -ENXIO;
	if (offset >= log->written_offset)
		return 0; /* at the end, or not written yet */
	if (read_from_cache(log, rd, offset, max_bytes)) {
		log->engine->reads_cache++;
		return 0;
	}
	seg = seg_for_offset(log, offset);
	if (seg == NULL)
		return 0;
	if (rd->buf == NULL || rd->buf_size < 2 * STOR_BLOCK_SIZE ||
	    ((uintptr_t)rd->buf | rd->buf_size) % STOR_BLOCK_SIZE != 0)
		return -EINVAL;
	rd->seg = seg;
	seg->refs++;
	if (offset < seg->base_offset)
		rd->target = seg->base_offset;
	rc = read_submit(rd, idx_lookup(seg, rd->target));
	if (rc != 0) {
		seg->refs--;
		rd->seg = NULL;
		return rc;
	}
	log->engine->reads_file++;
	return -EINPROGRESS;
}

void
stor_read_release(struct stor_read *rd)
{
	struct stor_log *log = rd->log;

	if (rd->chunk != NULL) {
		struct stor_chunk *c = rd->chunk;
		rd->chunk = NULL;
		if (--c->refs == 0) {
			if (c->orphan)
				stor_chunk_put(log->engine, c);
			else
				stor_chunk_maybe_reclaimable(log->engine, c);
		}
	}
	if (rd->seg != NULL) {
		struct stor_segment *seg = rd->seg;
		rd->seg = NULL;
		seg->refs--;
		seg_release(log, seg);
	}
	rd->data = NULL;
	rd->len = 0;
}

/* ------------------------------------------------------------------------- */
/* Timestamps                                                                  */

int
stor_log_offset_for_time(struct stor_log *log, int64_t ts, int64_t *offset, int64_t *found_ts)
{
	struct stor_segment *seg = NULL;
	struct walker w;
	int rc, err;

	if (found_ts != NULL)
		*found_ts = -1;
	if (ts == STOR_TS_LATEST) {
		*offset = log->next_offset;
		return 0;
	}
	if (ts == STOR_TS_EARLIEST) {
		*offset = log->start_offset;
		return 0;
	}
	if (ts == STOR_TS_MAX) {
		int64_t best = -1, off = -1;
		for (unsigned i = 0; i < log->seg_count; i++)
			if (log->segs[i]->max_timestamp > best &&
			    log->segs[i]->max_ts_offset >= log->start_offset) {
				best = log->segs[i]->max_timestamp;
				off = log->segs[i]->max_ts_offset;
			}
		*offset = off;
		if (found_ts != NULL)
			*found_ts = best;
		return 0;
	}
	if (ts < 0)
		return -EINVAL;
	*offset = -1;
	for (unsigned i = 0; i < log->seg_count; i++) {
		struct stor_segment *s = log->segs[i];
		if (s->next_offset <= log->start_offset)
			continue;
		if (s->max_timestamp >= ts) {
			seg = s;
			break;
		}
	}
	if (seg == NULL)
		return 0;
	uint64_t pos = idx_lookup(seg, tidx_lookup(seg, ts));
	rc = walker_init(&w, log, seg, seg_readable(log, seg), false);
	if (rc != 0)
		return rc;
	rc = 0;
	for (;;) {
		const uint8_t *p = walker_get(&w, pos, KP_BATCH_LOG_OVERHEAD, &err);
		if (p == NULL)
			break;
		uint32_t size = KP_BATCH_LOG_OVERHEAD + stor_be32_get(p + 8);
		if (size < KP_BATCH_HEADER_SIZE)
			break;
		p = walker_get(&w, pos, size, &err);
		if (p == NULL)
			break;
		struct kp_batch_header h;
		rc = kp_batch_header_parse(p, size, &h);
		if (rc != 0)
			break;
		int64_t last = h.base_offset + h.last_offset_delta;
		if (h.max_timestamp >= ts && last >= log->start_offset) {
			*offset = h.base_offset > log->start_offset ? h.base_offset
			                                            : log->start_offset;
			if (found_ts != NULL)
				*found_ts = h.max_timestamp;
			bool log_append_time = (h.attributes & KP_BATCH_ATTR_TIMESTAMP_TYPE) != 0;
			if (kp_batch_compression(&h) == KP_COMPRESSION_NONE && !log_append_time) {
				struct kp_record_iter it;
				struct kp_record r;
				kp_record_iter_init(&it, p + KP_BATCH_HEADER_SIZE,
				                    size - KP_BATCH_HEADER_SIZE, h.records_count);
				while (kp_record_iter_next(&it, &r) == 1) {
					int64_t rts = h.base_timestamp + r.timestamp_delta;
					int64_t roff = h.base_offset + r.offset_delta;
					if (rts >= ts && roff >= log->start_offset) {
						*offset = roff;
						if (found_ts != NULL)
							*found_ts = rts;
						break;
					}
				}
			}
			break;
		}
		pos += size;
	}
	if (err != 0)
		rc = err;
	walker_fini(&w);
	return rc;
}

/* ------------------------------------------------------------------------- */
/* Batch headers (rebuilding state kept beside the log, e.g. producer state)  */

int
stor_log_batch_headers(struct stor_log *log, int64_t from, stor_batch_header_fn fn, void *arg)
{
	int rc = 0;

	if (log->pend_count != 0)
		return -EBUSY; /* only data in the files is walked */
	for (unsigned i = 0; i < log->seg_count && rc == 0; i++) {
		struct stor_segment *seg = log->segs[i];
		uint64_t limit = seg_readable(log, seg);
		uint64_t pos;
		struct walker w;
		int err = 0;

		if (seg->next_offset <= from || limit == 0)
			continue;
		if (log->memo != NULL && i == log->seg_count - 1 && seg->base_offset == log->memo_base &&
		    seg->size == log->memo_size && seg->next_offset == log->memo_next) {
			/* The recovery scan's headers of this segment: not read again. */
			for (uint32_t k = 0; k < log->memo_n && rc == 0; k++) {
				const struct kp_batch_header *h = &log->memo[k];

				if (h->base_offset + h->last_offset_delta >= from)
					rc = fn(arg, h);
			}
			continue;
		}
		pos = idx_lookup(seg, from);
		rc = walker_init(&w, log, seg, limit, true);
		if (rc != 0)
			return rc;
		while (pos < limit) {
			const uint8_t *p = walker_get(&w, pos, KP_BATCH_LOG_OVERHEAD, &err);
			struct kp_batch_header h;
			uint32_t size;

			if (p == NULL)
				break;
			size = KP_BATCH_LOG_OVERHEAD + stor_be32_get(p + 8);
			if (size < KP_BATCH_HEADER_SIZE || size > SCAN_MAX_BATCH) {
				err = -EBADMSG; /* recovery validated every batch below limit */
				break;
			}
			p = walker_get(&w, pos, size, &err);
			if (p == NULL) {
				if (err == 0)
					err = -EBADMSG;
				break;
			}
			err = kp_batch_header_parse(p, size, &h);
			if (err != 0)
				break;
			pos += size;
			if (h.base_offset + h.last_offset_delta < from)
				continue;
			rc = fn(arg, &h);
			if (rc != 0)
				break;
		}
		walker_fini(&w);
		if (rc == 0 && err != 0)
			rc = err;
	}
	memo_free(log); /* walked once, right after the open: not kept for later */
	return rc;
}

/* ------------------------------------------------------------------------- */
/* Lifecycle                                                                   */

int
stor_log_roll(struct stor_log *log)
{
	int rc;

	if (log->failed)
		return log->failed;
	rc = stor_log_unlink_settled(log);
	if (rc != 0)
		return rc;
	if (active_seg(log)->size == 0)
		return 0;
	return log_roll_locked(log);
}

/* Free a deleted segment once no read holds it. */
static void
seg_release(struct stor_log *log, struct stor_segment *seg)
{
	if (seg->deleted && seg->refs == 0)
		stor_seg_free(log, seg);
}

/*
 * Retention's deletion of a segment on a RAM file system keeps its file as a
 * spare (spare_take()) while storage.segment.recycle allows one more and no
 * read holds the segment (a read in flight must not see new bytes).
 */
static bool
seg_keep_spare(struct stor_log *log, struct stor_segment *seg)
{
	char from[PATH_MAX], to[PATH_MAX];

	if (log->n_spares >= log->cfg.segment_recycle || seg->refs != 0)
		return false;
	stor_segment_path(from, sizeof(from), log->dir, seg->base_offset, ".log");
	stor_segment_path(to, sizeof(to), log->dir, seg->base_offset, ".spare");
	if (rename(from, to) != 0)
		return false;
	log->spares[log->n_spares++] = seg->base_offset;
	return true;
}

/*
 * A deleted segment file's blocks are freed off the owner's thread on disk: a
 * descriptor of its own keeps the file past the unlink (or the rename over
 * it) and the handle's close, and the backend closes it elsewhere
 * (release_fd), where the file's last reference drops. On this VM's ext4 (no
 * journal, mounted with discard) that close waited for a discard of the whole
 * segment, 17-150 ms for 32 MiB, inside the reactor's close before (session
 * 17). A segment a read still holds keeps its handle past this; its last
 * close, later, frees the blocks where it runs. RAM logs free pages in steps
 * (stor_uring.c).
 */
int
stor_seg_keep_file(const struct stor_log *log, int64_t base)
{
	char path[PATH_MAX];

	if (log->ram_dir || log->engine->be->ops->release_fd == NULL)
		return -1;
	stor_segment_path(path, sizeof(path), log->dir, base, ".log");
	return open(path, O_RDONLY | O_CLOEXEC);
}

void
stor_seg_release_file(struct stor_log *log, int keep)
{
	struct stor_backend *be = log->engine->be;

	if (keep >= 0)
		be->ops->release_fd(be, keep);
}

static void
seg_delete(struct stor_log *log, unsigned i, bool recycle)
{
	struct stor_segment *seg = log->segs[i];
	char path[PATH_MAX];
	static const char *const suffixes[] = {".log", ".index", ".timeindex", ".snapshot"};
	unsigned k = recycle && seg_keep_spare(log, seg) ? 1 : 0;
	int keep = k == 0 ? stor_seg_keep_file(log, seg->base_offset) : -1;

	for (; k < sizeof(suffixes) / sizeof(suffixes[0]); k++) {
		stor_segment_path(path, sizeof(path), log->dir, seg->base_offset, suffixes[k]);
		unlink(path);
	}
	memmove(&log->segs[i], &log->segs[i + 1], (log->seg_count - i - 1) * sizeof(*log->segs));
	log->seg_count--;
	stor_msg(log->engine, STOR_LOG_INFO, "%s: deleted segment %020" PRId64, log->dir,
	         seg->base_offset);
	stor_seg_retire(log, seg);
	stor_seg_release_file(log, keep);
}

void
stor_seg_retire(struct stor_log *log, struct stor_segment *seg)
{
	struct stor_chunk *c, *tmp;

	/*
	 * A segment deleted before its roll flush made the next one's name
	 * durable would owe that directory sync here. Retention and compaction
	 * take only finalized segments, whose flush did it (roll_flush_synced
	 * clears dsync_next before finalizing), so today this does not run: it
	 * keeps the guarantee for a deletion path that takes a segment earlier.
	 */
	if (seg->dsync_next && log->roll_seg != seg) {
		int rc = fsync_dir(log->dir);

		seg->dsync_next = false;
		if (rc != 0)
			log_fail(log, rc, "fsync of the directory");
	}

	/* Cached chunks of the segment go; one a read still holds goes at release. */
	for (c = TAILQ_FIRST(&log->chunks); c != NULL; c = tmp) {
		tmp = TAILQ_NEXT(c, log_link);
		if (c->seg != seg)
			continue;
		if (c->refs == 0) {
			stor_chunk_put(log->engine, c);
		} else {
			stor_chunk_unlru(log->engine, c);
			TAILQ_REMOVE(&log->chunks, c, log_link);
			log->chunk_count--;
			c->orphan = true;
		}
	}
	if (log->last_written_seg == seg)
		log->last_written_seg = NULL;
	seg->deleted = true;
	seg_release(log, seg);
}

uint64_t
stor_log_size_bytes(const struct stor_log *log)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < log->seg_count; i++)
		n += log->segs[i]->size;
	return n;
}

int
stor_log_retention_run(struct stor_log *log, int64_t now_ms, unsigned max)
{
	bool by_policy = (log->cfg.cleanup_policy & STOR_CLEANUP_DELETE) != 0;
	struct stor_segment *act = active_seg(log);
	int deleted = 0;
	int src = stor_log_unlink_settled(log);

	if (src != 0)
		return src;

	/* An expired, non-empty active segment is rolled so that it can go next time. */
	if (by_policy && log->cfg.retention_ms >= 0 && act->size > 0 && act->max_timestamp >= 0 &&
	    act->max_timestamp < now_ms - log->cfg.retention_ms) {
		int rc = stor_log_roll(log);
		if (rc != 0)
			return rc;
	}
	uint64_t total = stor_log_size_bytes(log);
	while (log->seg_count > 1 && (max == 0 || (unsigned)deleted < max)) {
		struct stor_segment *seg = log->segs[0];
		bool go = false;
		if (!seg->finalized)
			break; /* still being written or synced */
		if (seg->next_offset <= log->start_offset)
			go = true;
		if (by_policy && log->cfg.retention_ms >= 0 &&
		    seg->max_timestamp < now_ms - log->cfg.retention_ms)
			go = true;
		if (by_policy && log->cfg.retention_bytes >= 0 &&
		    total - seg->size >= (uint64_t)log->cfg.retention_bytes)
			go = true;
		if (!go)
			break;
		total -= seg->size;
		seg_delete(log, 0, true);
		deleted++;
	}
	if (log->start_offset < log->segs[0]->base_offset)
		log->start_offset = log->segs[0]->base_offset;
	return deleted;
}

int
stor_log_delete_records(struct stor_log *log, int64_t offset)
{
	if (offset > log->next_offset || offset < 0)
		return -ENXIO;
	if (offset <= log->start_offset)
		return 0;
	int rc = stor_log_unlink_settled(log);
	if (rc != 0)
		return rc;
	log->start_offset = offset;
	return log_start_store(log);
}

int
stor_log_epoch_assign(struct stor_log *log, int32_t epoch, int64_t start_offset)
{
	if (log->epoch_count != 0) {
		struct stor_epoch_entry *last = &log->epochs[log->epoch_count - 1];
		if (epoch < last->epoch || start_offset < last->start_offset)
			return -EINVAL;
		if (epoch == last->epoch)
			return 0;
	}
	int rc = epochs_push(log, epoch, start_offset);
	return rc != 0 ? rc : epochs_store(log);
}

int
stor_log_epoch_end_offset(const struct stor_log *log, int32_t epoch, int32_t *found_epoch,
                          int64_t *end_offset)
{
	for (unsigned i = log->epoch_count; i-- > 0;) {
		if (log->epochs[i].epoch > epoch)
			continue;
		*found_epoch = log->epochs[i].epoch;
		*end_offset = i + 1 < log->epoch_count ? log->epochs[i + 1].start_offset
		                                       : log->next_offset;
		return 0;
	}
	return -ENOENT;
}

/* ------------------------------------------------------------------------- */
/* Close                                                                       */

static void
log_wait_idle(struct stor_log *log)
{
	while (log->io_busy || log->rsync_busy || log->alloc_busy || log_has_io_work(log) ||
	       log->pend_count != 0) {
		if (log->failed)
			break;
		stor_engine_mark_dirty(log->engine, log);
		stor_engine_poll(log->engine);
	}
	stor_engine_drain(log->engine);
}

static void
log_free(struct stor_log *log)
{
	struct stor_engine *e = log->engine;

	memo_free(log);
	if (log->on_dirty)
		TAILQ_REMOVE(&e->dirty, log, dirty_link);
	if (log->on_timed)
		TAILQ_REMOVE(&e->timed, log, timed_link);
	TAILQ_REMOVE(&e->all, log, all_link);
	e->log_count--;
	if (log->failed)
		e->logs_failed--;
	while (!TAILQ_EMPTY(&log->chunks)) {
		struct stor_chunk *c = TAILQ_FIRST(&log->chunks);
		if (c->refs != 0)
			stor_msg(e, STOR_LOG_ERR, "%s: closed with a read still held", log->dir);
		stor_chunk_put(e, c);
	}
	for (unsigned i = 0; i < log->seg_count; i++)
		stor_seg_free(log, log->segs[i]);
	free(log->segs);
	free(log->epochs);
	free(log->pend);
	free(log->tail_copy);
	free(log->dir);
	free(log);
}

/* The final sync of a log whose flushes left its active segment behind (not expected). */
static int
close_sync_rest(struct stor_log *log)
{
	struct stor_backend *be = log->engine->be;
	struct stor_segment *act = active_seg(log);
	int rc = log->failed;

	if (rc == 0)
		rc = stor_seg_file(log, act);
	if (rc == 0 && synced_to(log) < log->written_lpos) {
		struct stor_io_req *reqs[1] = {&log->sreq};
		log->sreq = (struct stor_io_req){.op = STOR_IO_FDATASYNC,
		                                 .buf_index = -1,
		                                 .file = act->handle,
		                                 .done = sync_done,
		                                 .ctx = log};
		log->w_seg = act;
		log->w_sync_lpos = log->written_lpos;
		log->io_busy = true;
		log->io_parts = 1;
		rc = be->ops->queue(be, reqs, 1);
		if (rc == 0) {
			be->ops->submit(be);
			while (log->io_busy)
				be->ops->poll(be, 16);
			rc = log->failed;
		} else {
			log->io_busy = false;
		}
	}
	return rc;
}

/* Idle since a clean open: the active segment and its index files on disk as the marker said. */
static bool
log_idle_since_open(const struct stor_log *log)
{
	const struct stor_segment *act = log->segs[log->seg_count - 1];

	return log->clean_base == act->base_offset && log->clean_next == log->next_offset &&
	       log->clean_size == act->size && log->clean_idx == act->idx_count &&
	       log->clean_tidx == act->tidx_count;
}

/*
 * The first half of a close: trim the active segment's preallocated tail and
 * write its index files (not for an idle log: they are on disk), by rename,
 * or @in_place when nothing will trust them before a sync and the marker.
 */
static int
close_files(struct stor_log *log, bool in_place)
{
	struct stor_backend *be = log->engine->be;
	struct stor_segment *act = active_seg(log);
	int rc = be->ops->truncate(be, act->handle, act->size);

	if (rc == 0 && !log_idle_since_open(log))
		rc = index_files_write(log->dir, act, "", in_place);
	return rc;
}

/*
 * The second half: the clean-shutdown marker, by rename, or @in_place into
 * the stale file (only once what it describes is durable, or unchanged);
 * @durable: fsync it and the directory now.
 */
static int
close_mark(struct stor_log *log, bool durable, bool in_place)
{
	struct stor_segment *act = active_seg(log);
	struct clean_marker m = {
	        .next_offset = log->next_offset,
	        .active_base = act->base_offset,
	        .active_size = act->size,
	        .max_ts = act->max_timestamp,
	        .max_ts_rel = act->max_timestamp >= 0
	                              ? (uint32_t)(act->max_ts_offset - act->base_offset)
	                              : 0,
	};
	int rc = clean_marker_write(log, &m, durable, in_place);

	if (rc == 0 && durable)
		fsync_dir(log->dir);
	return rc;
}

/* Trim, write the indexes and the clean-shutdown marker, each durable at once; free. */
static int
close_finish(struct stor_log *log, int rc)
{
	if (rc == 0)
		rc = close_files(log, false);
	if (rc == 0)
		rc = close_mark(log, true, false);
	log_free(log);
	return rc;
}

int
stor_log_close(struct stor_log *log)
{
	/* Make everything durable: a final sync like a durable append would get. */
	log->unsynced_msgs = log->cfg.flush_messages;
	log_wait_idle(log);
	return close_finish(log, close_sync_rest(log));
}

int
stor_log_close_discard(struct stor_log *log)
{
	int rc;

	log_wait_idle(log);
	rc = log->failed;
	log_free(log);
	return rc;
}

/* A log close_many still waits for: I/O in flight, writes or a sync to issue. */
static bool
log_closing_busy(struct stor_log *log)
{
	if (log->failed)
		return false;
	return log->io_busy || log->rsync_busy || log->alloc_busy || log_has_io_work(log) ||
	       log->pend_count != 0;
}

#define CLOSE_MAX_FS 16 /* file systems one close_many syncs with syncfs(2) */

int
stor_log_close_many(struct stor_log **logs, unsigned n, int *rcs)
{
	struct stor_engine *e;
	dev_t devs[CLOSE_MAX_FS];
	int dev_fds[CLOSE_MAX_FS];
	unsigned n_devs = 0;
	int first = 0;

	if (n == 0)
		return 0;
	e = logs[0]->engine;
	/*
	 * 1. Every log's last writes and a final fdatasync, all in flight
	 * together: each tick's poll queues them for every dirty log at once.
	 */
	for (unsigned i = 0; i < n; i++) {
		logs[i]->unsynced_msgs = logs[i]->cfg.flush_messages;
		stor_engine_mark_dirty(e, logs[i]);
	}
	for (unsigned from = 0; from < n;) {
		bool busy = false;

		/* Logs found idle at the front stay idle: nothing appends during a close. */
		while (from < n && !log_closing_busy(logs[from]))
			from++;
		for (unsigned i = from; i < n; i++) {
			if (!log_closing_busy(logs[i]))
				continue;
			busy = true;
			if (!logs[i]->io_busy)
				stor_engine_mark_dirty(e, logs[i]);
		}
		if (!busy)
			break;
		if (stor_engine_poll(e) == 0)
			stor_engine_wait(e, 1000);
	}
	stor_engine_drain(e);
	/*
	 * 2. Trims and index files log by log, written into the files as they
	 * are (no new file per index: an ext4 inode created and one freed per
	 * file were most of a 10,000-log shutdown); 3. one syncfs(2) per file
	 * system makes them durable; 4. then the markers, in place too, and 5.
	 * one more syncfs. Until 4 a log's marker is stale on disk (made so
	 * before its first change), so a crash in between only costs a scan.
	 * A log on a file system not tracked here (more than CLOSE_MAX_FS) is
	 * closed whole and synced on its own.
	 */
	int *dev_of = malloc(n * sizeof(*dev_of));
	int *rc_of = malloc(n * sizeof(*rc_of));
	int dev_rc[CLOSE_MAX_FS];

	if (dev_of == NULL || rc_of == NULL) {
		free(dev_of);
		free(rc_of);
		for (unsigned i = 0; i < n; i++) {
			int rc = close_finish(logs[i], close_sync_rest(logs[i]));
			if (rcs != NULL)
				rcs[i] = rc;
			if (rc != 0 && first == 0)
				first = rc;
		}
		return first;
	}
	for (unsigned i = 0; i < n; i++) {
		struct stor_log *log = logs[i];
		struct stat st;
		unsigned k = n_devs;
		int rc;

		if (stat(log->dir, &st) == 0) {
			for (k = 0; k < n_devs && devs[k] != st.st_dev; k++)
				;
			if (k == n_devs && n_devs < CLOSE_MAX_FS) {
				int fd = open(log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
				if (fd >= 0) {
					devs[n_devs] = st.st_dev;
					dev_fds[n_devs++] = fd;
				}
			}
		}
		rc = close_sync_rest(log);
		if (rc != 0)
			stor_msg(e, STOR_LOG_ERR, "%s: closing: %s", log->dir, strerror(-rc));
		if (k == n_devs) {
			/* No syncfs for it: closed and synced on its own. */
			dev_of[i] = -1;
			rc = close_finish(log, rc);
		} else {
			dev_of[i] = (int)k;
			if (rc == 0)
				rc = close_files(log, true);
		}
		rc_of[i] = rc;
	}
	for (unsigned k = 0; k < n_devs; k++) {
		dev_rc[k] = syncfs(dev_fds[k]) == 0 ? 0 : -errno;
		if (dev_rc[k] != 0)
			stor_msg(e, STOR_LOG_ERR, "syncfs at close: %s", strerror(-dev_rc[k]));
	}
	for (unsigned i = 0; i < n; i++) {
		if (dev_of[i] >= 0) {
			struct stor_log *log = logs[i];
			int rc = rc_of[i] != 0 ? rc_of[i] : dev_rc[dev_of[i]];

			if (rc == 0)
				rc = close_mark(log, false, true);
			log_free(log);
			rc_of[i] = rc;
		}
		if (rcs != NULL)
			rcs[i] = rc_of[i];
		if (rc_of[i] != 0 && first == 0)
			first = rc_of[i];
	}
	for (unsigned k = 0; k < n_devs; k++) {
		if (syncfs(dev_fds[k]) != 0 && first == 0) {
			first = -errno;
			stor_msg(e, STOR_LOG_ERR, "syncfs at close: %s", strerror(errno));
		}
		close(dev_fds[k]);
	}
	free(dev_of);
	free(rc_of);
	return first;
}

void
stor_log_abandon(struct stor_log *log)
{
	while (log->io_busy || log->rsync_busy || log->alloc_busy)
		stor_engine_poll(log->engine);
	log_free(log);
}

/* ------------------------------------------------------------------------- */
/* Accessors                                                                   */

int64_t
stor_log_end_offset(const struct stor_log *log)
{
	return log->next_offset;
}

int64_t
stor_log_written_offset(const struct stor_log *log)
{
	return log->written_offset;
}

int64_t
stor_log_start_offset(const struct stor_log *log)
{
	return log->start_offset;
}

int
stor_log_failed(const struct stor_log *log)
{
	return log->failed;
}

const struct stor_log_config *
stor_log_get_config(const struct stor_log *log)
{
	return &log->cfg;
}

unsigned
stor_log_segment_count(const struct stor_log *log)
{
	return log->seg_count;
}

int64_t
stor_log_segment_base(const struct stor_log *log, unsigned i)
{
	return i < log->seg_count ? log->segs[i]->base_offset : -1;
}

const char *
stor_log_dir(const struct stor_log *log)
{
	return log->dir;
}

int
stor_log_is_direct(const struct stor_log *log)
{
	return log->direct;
}
