/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_producer: producer ids for InitProducerId and the per-partition
 * producer state of idempotent Produce, with its snapshots (dp_producer.h
 * has the rules and the snapshot format).
 */
#include "dp_producer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dp_log.h"
#include "kp_batch.h"
#include "stor_format.h"
#include "stor_log.h"

/* ---- small file helpers ---- */

static int
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

/*
 * Write @path atomically: tmp file, rename; and, when @durable, durably:
 * fsync before the rename, the directory's after.
 */
static int
file_write(const char *dir, const char *path, const void *data, size_t len, bool durable)
{
	char tmp[PATH_MAX];
	int fd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len)
		rc = errno != 0 ? -errno : -EIO;
	if (rc == 0 && durable && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0) {
		unlink(tmp);
		return rc;
	}
	return durable ? fsync_dir(dir) : 0;
}

static int
file_write_durable(const char *dir, const char *path, const void *data, size_t len)
{
	return file_write(dir, path, data, len, true);
}

/* ---- producer ids ---- */

int
dp_pid_alloc_open(struct dp_pid_alloc *a, const char *dir)
{
	char buf[64];
	ssize_t n;
	int fd;

	a->next = 0;
	a->limit = 0;
	if (snprintf(a->path, sizeof(a->path), "%s/%s", dir, DP_PID_FILE) >= (int)sizeof(a->path))
		return -ENAMETOOLONG;
	fd = open(a->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EBADMSG;
	buf[n] = '\0';
	{
		char *end;
		long long v = strtoll(buf, &end, 10);

		if (end == buf || *end != '\n' || v < 0)
			return -EBADMSG;
		a->next = v;
		a->limit = v;
	}
	return 0;
}

int
dp_pid_alloc_next(struct dp_pid_alloc *a, int64_t *pid)
{
	if (a->next >= a->limit) {
		char dir[sizeof(a->path)];
		char line[32];
		char *slash;
		int64_t limit = a->next + DP_PID_BLOCK;
		int len = snprintf(line, sizeof(line), "%" PRId64 "\n", limit);
		int rc;

		snprintf(dir, sizeof(dir), "%s", a->path);
		slash = strrchr(dir, '/');
		if (slash != NULL)
			*slash = '\0';
		rc = file_write_durable(slash != NULL ? dir : ".", a->path, line, (size_t)len);
		if (rc < 0) {
			dp_log(DP_LOG_ERROR, "%s: %s", a->path, strerror(-rc));
			return rc;
		}
		a->limit = limit;
	}
	*pid = a->next++;
	return 0;
}

/* ---- producer state ---- */

struct dp_producer *
dp_producers_find(struct dp_producers *ps, int64_t pid)
{
	/*
	 * A linear scan of the used entries: a partition sees few producers in
	 * practice. UNFINISHED: a hash index for tables of thousands.
	 */
	for (uint32_t i = 0; i < ps->count; i++) {
		if (ps->p[i].id == pid)
			return &ps->p[i];
	}
	return NULL;
}

static bool
expired(const struct dp_producers *ps, const struct dp_producer *e, int64_t now_ms)
{
	return ps->expiration_ms >= 0 && now_ms - e->last_ts >= ps->expiration_ms;
}

struct dp_producer *
dp_producers_get(struct dp_producers *ps, int64_t pid, int64_t now_ms)
{
	struct dp_producer *e = dp_producers_find(ps, pid);

	if (e != NULL)
		return e;
	if (ps->count < ps->cap) {
		e = &ps->p[ps->count++];
	} else {
		/* Full: the first expired entry, else the one idle the longest. */
		e = &ps->p[0];
		for (uint32_t i = 0; i < ps->count; i++) {
			if (expired(ps, &ps->p[i], now_ms)) {
				e = &ps->p[i];
				break;
			}
			if (ps->p[i].last_ts < e->last_ts)
				e = &ps->p[i];
		}
		dp_log(DP_LOG_DEBUG, "%s: producer %" PRId64 " evicted for %" PRId64
			" (dataplane.producers.max=%u)", ps->dir, e->id, pid, ps->cap);
	}
	memset(e, 0, sizeof(*e));
	e->id = pid;
	e->epoch = -1;
	e->last_ts = now_ms;
	return e;
}

static bool
in_sequence(int32_t last_seq, int32_t next_seq)
{
	return (int64_t)next_seq == (int64_t)last_seq + 1 || (next_seq == 0 && last_seq == INT32_MAX);
}

enum dp_producer_verdict
dp_producer_check(const struct dp_producer *e, int16_t epoch, int32_t first_seq, int32_t last_seq,
	int64_t *dup_offset)
{
	if (first_seq < 0)
		return DP_PRODUCER_BAD_SEQUENCE;
	if (e->epoch < 0)
		return DP_PRODUCER_APPEND; /* unknown producer: any sequence (KIP-360) */
	if (epoch < e->epoch)
		return DP_PRODUCER_OLD_EPOCH;
	if (epoch != e->epoch) /* a bumped epoch starts its sequences again at 0 */
		return first_seq == 0 ? DP_PRODUCER_APPEND : DP_PRODUCER_OUT_OF_ORDER;
	for (unsigned i = 0; i < e->n; i++) {
		const struct dp_producer_batch *b =
			&e->batch[(e->head + DP_PRODUCER_BATCHES - i) % DP_PRODUCER_BATCHES];

		if (b->first_seq == first_seq && b->last_seq == last_seq) {
			*dup_offset = b->first_offset;
			return DP_PRODUCER_DUPLICATE;
		}
	}
	if (!in_sequence(e->n > 0 ? e->batch[e->head].last_seq : -1, first_seq))
		return DP_PRODUCER_OUT_OF_ORDER;
	return DP_PRODUCER_APPEND;
}

void
dp_producer_record(struct dp_producer *e, int16_t epoch, int32_t first_seq, int32_t last_seq,
	int64_t first_offset, int64_t timestamp)
{
	struct dp_producer_batch *b;

	if (epoch != e->epoch) {
		e->epoch = epoch;
		e->n = 0;
	}
	e->head = e->n == 0 ? 0 : (uint8_t)((e->head + 1) % DP_PRODUCER_BATCHES);
	if (e->n < DP_PRODUCER_BATCHES)
		e->n++;
	b = &e->batch[e->head];
	b->first_seq = first_seq;
	b->last_seq = last_seq;
	b->first_offset = first_offset;
	b->timestamp = timestamp;
	e->last_ts = timestamp;
}

/* ---- snapshots ---- */

static void
snap_path(char *buf, size_t size, const char *dir, int64_t offset, const char *suffix)
{
	snprintf(buf, size, "%s/%020" PRId64 ".snapshot%s", dir, offset, suffix);
}

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static int
cmp_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * The offsets of the snapshots in @dir, newest first, in a malloc'ed array.
 * @return the count, or -errno.
 */
static int
snap_list(const char *dir, int64_t **out)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int64_t *v = NULL;
	int n = 0, cap = 0;

	*out = NULL;
	if (d == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long long off;

		if (strlen(de->d_name) != STOR_SEGMENT_NAME_DIGITS + strlen(".snapshot") ||
			strcmp(de->d_name + STOR_SEGMENT_NAME_DIGITS, ".snapshot") != 0)
			continue;
		off = strtoll(de->d_name, &end, 10);
		if (end != de->d_name + STOR_SEGMENT_NAME_DIGITS || off < 0)
			continue;
		if (n == cap) {
			int64_t *nv = realloc(v, sizeof(*v) * (size_t)(cap = cap ? cap * 2 : 8));

			if (nv == NULL) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n++] = off;
	}
	closedir(d);
	if (n > 1)
		qsort(v, (size_t)n, sizeof(*v), cmp_desc);
	*out = v;
	return n;
}

/* Whether @path holds exactly @len bytes equal to @buf. */
static bool
file_holds(const char *path, const uint8_t *buf, size_t len)
{
	struct stat st;
	bool same = false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && st.st_size == (off_t)len) {
		uint8_t *cur = malloc(len);

		same = cur != NULL && pread(fd, cur, len, 0) == (ssize_t)len &&
			memcmp(cur, buf, len) == 0;
		free(cur);
	}
	close(fd);
	return same;
}

static int
snapshot_write(struct dp_producers *ps, int64_t offset, bool durable)
{
	size_t len = DP_SNAP_HEADER + (size_t)ps->count * DP_SNAP_ENTRY + 4;
	uint8_t *buf = calloc(1, len);
	char path[PATH_MAX];
	int64_t *offs = NULL;
	int rc, n;

	if (buf == NULL)
		return -ENOMEM;
	stor_be32_put(buf, DP_SNAP_MAGIC);
	stor_be32_put(buf + 4, DP_SNAP_VERSION);
	stor_be64_put(buf + 8, (uint64_t)offset);
	stor_be32_put(buf + 16, ps->count);
	for (uint32_t i = 0; i < ps->count; i++) {
		const struct dp_producer *e = &ps->p[i];
		uint8_t *q = buf + DP_SNAP_HEADER + (size_t)i * DP_SNAP_ENTRY;

		stor_be64_put(q, (uint64_t)e->id);
		put16(q + 8, (uint16_t)e->epoch);
		q[10] = e->n;
		stor_be64_put(q + 16, (uint64_t)e->last_ts);
		for (unsigned k = 0; k < e->n; k++) { /* oldest first */
			const struct dp_producer_batch *b =
				&e->batch[(e->head + DP_PRODUCER_BATCHES - (e->n - 1u - k)) %
					DP_PRODUCER_BATCHES];
			uint8_t *s = q + 24 + k * 24u;

			stor_be32_put(s, (uint32_t)b->first_seq);
			stor_be32_put(s + 4, (uint32_t)b->last_seq);
			stor_be64_put(s + 8, (uint64_t)b->first_offset);
			stor_be64_put(s + 16, (uint64_t)b->timestamp);
		}
	}
	stor_be32_put(buf + len - 4, kp_crc32c(buf, len - 4));
	snap_path(path, sizeof(path), ps->dir, offset, "");
	/*
	 * Unsynced (a roll, or a shutdown's close that syncs the file system
	 * after): where the same snapshot is on disk already (an idle partition
	 * reopened and closed again), it stays. A new file and a rename per log
	 * were a third of a 10,000-log shutdown on ext4 (docs/benchmarks.md,
	 * session 12).
	 */
	if (!durable && file_holds(path, buf, len)) {
		free(buf);
		return 0;
	}
	rc = file_write(ps->dir, path, buf, len, durable);
	free(buf);
	if (rc < 0)
		return rc;
	/* Keep this one and the newest older one (a fallback should this one be cut off). */
	n = snap_list(ps->dir, &offs);
	for (int i = 0, older = 0; i < n; i++) {
		if (offs[i] == offset)
			continue;
		if (offs[i] < offset && older++ == 0)
			continue;
		snap_path(path, sizeof(path), ps->dir, offs[i], "");
		unlink(path);
	}
	free(offs);
	return 0;
}

/*
 * Load the snapshot of @offset into @ps (empty). A file that does not check
 * out gives -EBADMSG and leaves @ps empty.
 */
static int
snap_load(struct dp_producers *ps, int64_t offset, int64_t now_ms)
{
	char path[PATH_MAX];
	uint8_t *buf = NULL;
	size_t len;
	uint32_t count;
	off_t size;
	int fd, rc = -EBADMSG;

	snap_path(path, sizeof(path), ps->dir, offset, "");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size = lseek(fd, 0, SEEK_END);
	if (size < (off_t)(DP_SNAP_HEADER + 4) || size > (off_t)(64u << 20))
		goto out;
	len = (size_t)size;
	buf = malloc(len);
	if (buf == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (pread(fd, buf, len, 0) != (ssize_t)len)
		goto out;
	count = stor_be32_get(buf + 16);
	if (stor_be32_get(buf) != DP_SNAP_MAGIC || stor_be32_get(buf + 4) != DP_SNAP_VERSION ||
		(int64_t)stor_be64_get(buf + 8) != offset ||
		len != DP_SNAP_HEADER + (size_t)count * DP_SNAP_ENTRY + 4 ||
		stor_be32_get(buf + len - 4) != kp_crc32c(buf, len - 4))
		goto out;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *q = buf + DP_SNAP_HEADER + (size_t)i * DP_SNAP_ENTRY;
		struct dp_producer e;

		memset(&e, 0, sizeof(e));
		e.id = (int64_t)stor_be64_get(q);
		e.epoch = (int16_t)get16(q + 8);
		e.n = q[10];
		e.last_ts = (int64_t)stor_be64_get(q + 16);
		if (e.id < 0 || e.n > DP_PRODUCER_BATCHES) {
			ps->count = 0;
			goto out;
		}
		for (unsigned k = 0; k < e.n; k++) {
			const uint8_t *s = q + 24 + k * 24u;

			e.batch[k].first_seq = (int32_t)stor_be32_get(s);
			e.batch[k].last_seq = (int32_t)stor_be32_get(s + 4);
			e.batch[k].first_offset = (int64_t)stor_be64_get(s + 8);
			e.batch[k].timestamp = (int64_t)stor_be64_get(s + 16);
		}
		e.head = e.n > 0 ? (uint8_t)(e.n - 1) : 0;
		/* Kafka skips expired producers at load; a smaller table keeps the first ones. */
		if (expired(ps, &e, now_ms) || ps->count == ps->cap)
			continue;
		ps->p[ps->count++] = e;
	}
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

struct rebuild_ctx {
	struct dp_producers *ps;
	int64_t now_ms;
	uint64_t batches;
};

static int
rebuild_batch(void *arg, const struct kp_batch_header *h)
{
	struct rebuild_ctx *c = arg;
	struct dp_producer *e;

	if (h->producer_id < 0 || (h->attributes & KP_BATCH_ATTR_CONTROL) != 0)
		return 0;
	e = dp_producers_get(c->ps, h->producer_id, c->now_ms);
	dp_producer_record(e, h->producer_epoch, h->base_sequence,
		dp_producer_last_seq(h->base_sequence, h->last_offset_delta), h->base_offset,
		h->max_timestamp);
	c->batches++;
	return 0;
}

int
dp_producers_open(struct stor_log *log, uint32_t cap, int64_t expiration_ms, int64_t now_ms,
	struct dp_producers **out)
{
	struct dp_producers *ps;
	struct rebuild_ctx rc_ctx;
	int64_t leo = stor_log_end_offset(log);
	int64_t from = 0;
	int64_t *offs = NULL;
	bool loaded = false;
	int n, rc;

	*out = NULL;
	if (cap == 0)
		return -EINVAL;
	ps = calloc(1, sizeof(*ps) + sizeof(ps->p[0]) * cap);
	if (ps == NULL)
		return -ENOMEM;
	ps->dir = strdup(stor_log_dir(log));
	if (ps->dir == NULL) {
		free(ps);
		return -ENOMEM;
	}
	ps->cap = cap;
	ps->expiration_ms = expiration_ms;
	ps->active_base = stor_log_segment_base(log, stor_log_segment_count(log) - 1);
	n = snap_list(ps->dir, &offs);
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];

		if (offs[i] <= leo && !loaded) {
			rc = snap_load(ps, offs[i], now_ms);
			if (rc == 0) {
				from = offs[i];
				loaded = true;
				continue;
			}
			dp_log(DP_LOG_WARN, "%s: producer snapshot %020" PRId64 " unusable (%s), removed",
				ps->dir, offs[i], strerror(-rc));
		} else if (loaded) {
			continue; /* older ones stay as fallbacks */
		} else {
			/* Beyond the log end: the log lost its tail in a crash. */
			dp_log(DP_LOG_INFO, "%s: producer snapshot %020" PRId64
				" is beyond the log end %" PRId64 ", removed", ps->dir, offs[i], leo);
		}
		snap_path(path, sizeof(path), ps->dir, offs[i], "");
		unlink(path);
	}
	free(offs);
	rc_ctx.ps = ps;
	rc_ctx.now_ms = now_ms;
	rc_ctx.batches = 0;
	rc = stor_log_batch_headers(log, from, rebuild_batch, &rc_ctx);
	if (rc < 0) {
		dp_log(DP_LOG_ERROR, "%s: rebuilding producer state: %s", ps->dir, strerror(-rc));
		dp_producers_free(ps);
		return rc;
	}
	if (ps->count > 0 || rc_ctx.batches > 0)
		dp_log(DP_LOG_DEBUG, "%s: %u producer(s), snapshot %" PRId64 " + %" PRIu64
			" batch(es) replayed", ps->dir, ps->count, from, rc_ctx.batches);
	*out = ps;
	return 0;
}

void
dp_producers_free(struct dp_producers *ps)
{
	if (ps == NULL)
		return;
	free(ps->dir);
	free(ps);
}

int
dp_producers_snapshot(struct dp_producers *ps, int64_t offset)
{
	return snapshot_write(ps, offset, true);
}

static int
producers_close(struct dp_producers *ps, struct stor_log *log, bool durable)
{
	int rc = 0;

	if (ps == NULL)
		return 0;
	if (log != NULL) {
		rc = snapshot_write(ps, stor_log_end_offset(log), durable);
		if (rc < 0)
			dp_log(DP_LOG_WARN, "%s: writing the producer snapshot: %s", ps->dir,
				strerror(-rc));
	}
	dp_producers_free(ps);
	return rc;
}

int
dp_producers_close(struct dp_producers *ps, struct stor_log *log)
{
	return producers_close(ps, log, true);
}

int
dp_producers_close_unsynced(struct dp_producers *ps, struct stor_log *log)
{
	return producers_close(ps, log, false);
}

void
dp_producers_roll_check(struct dp_producers *ps, struct stor_log *log, int64_t batch_offset)
{
	int64_t base = stor_log_segment_base(log, stor_log_segment_count(log) - 1);
	int rc;

	if (base == ps->active_base)
		return;
	ps->active_base = base;
	if (base != batch_offset)
		return;
	/*
	 * Not fsynced: two fsyncs on the reactor took up to 100 ms at a roll on
	 * the bench's disk (the roll's own fdatasync had just started a journal
	 * commit), a stall of every partition of the broker. A kill -9 keeps the
	 * file; a power cut may lose it, and the state is then rebuilt from the
	 * older snapshot or the log, as after a failed write.
	 */
	rc = snapshot_write(ps, base, false);
	if (rc < 0)
		dp_log(DP_LOG_WARN, "%s: writing the producer snapshot at the roll to %" PRId64 ": %s",
			ps->dir, base, strerror(-rc));
}
