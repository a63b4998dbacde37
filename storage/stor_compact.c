/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Log compaction: begin (snapshot), run (anywhere), finish (install).
 * Semantics and crash safety are described in stor_compact.h.
 *
 * The key map stores a copy of every distinct key (in one arena) with the
 * largest offset seen for it, in an open-addressing table keyed by a
 * 64-bit FNV-1a hash; equal hashes are told apart by comparing the keys, so
 * unlike Kafka's MD5-only map a hash collision never drops a live record.
 */
#include "stor_compact.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kp_batch.h"
#include "stor_internal.h"

struct job_seg {
	int64_t base;
	int64_t next_offset;
	struct stor_segment *out; /* cleaned result: size, indexes, timestamps */
};

struct stor_compact_job {
	char *dir;
	uint32_t interval;
	int64_t horizon_ms; /* tombstones in batches with maxTimestamp below this go */
	struct job_seg *segs;
	unsigned n;
	int rc;
};

/* ---- key map --------------------------------------------------------------- */

struct kmap_ent {
	uint64_t hash;
	uint64_t koff; /* key bytes in the arena */
	int32_t klen;  /* -2: empty slot */
	int64_t offset;
};

struct kmap {
	struct kmap_ent *t;
	size_t cap, used;
	uint8_t *arena;
	size_t alen, acap;
};

static uint64_t
fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h ^ n;
}

static int
kmap_init(struct kmap *m)
{
	memset(m, 0, sizeof(*m));
	m->cap = 1024;
	m->t = malloc(m->cap * sizeof(*m->t));
	if (m->t == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++)
		m->t[i].klen = -2;
	return 0;
}

static void
kmap_fini(struct kmap *m)
{
	free(m->t);
	free(m->arena);
}

static struct kmap_ent *
kmap_slot(struct kmap *m, const uint8_t *key, int32_t klen, uint64_t h)
{
	size_t i = h & (m->cap - 1);

	for (;;) {
		struct kmap_ent *e = &m->t[i];
		if (e->klen == -2)
			return e;
		if (e->hash == h && e->klen == klen &&
		    memcmp(m->arena + e->koff, key, (size_t)klen) == 0)
			return e;
		i = (i + 1) & (m->cap - 1);
	}
}

static int
kmap_grow(struct kmap *m)
{
	struct kmap old = *m;

	m->cap *= 2;
	m->t = malloc(m->cap * sizeof(*m->t));
	if (m->t == NULL) {
		*m = old;
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++)
		m->t[i].klen = -2;
	for (size_t i = 0; i < old.cap; i++) {
		if (old.t[i].klen == -2)
			continue;
		size_t j = old.t[i].hash & (m->cap - 1);
		while (m->t[j].klen != -2)
			j = (j + 1) & (m->cap - 1);
		m->t[j] = old.t[i];
	}
	free(old.t);
	return 0;
}

static int
kmap_put(struct kmap *m, const uint8_t *key, int32_t klen, int64_t offset)
{
	uint64_t h = fnv1a(key, (size_t)klen);
	struct kmap_ent *e;

	if ((m->used + 1) * 10 > m->cap * 7 && kmap_grow(m) != 0)
		return -ENOMEM;
	e = kmap_slot(m, key, klen, h);
	if (e->klen == -2) {
		if (m->alen + (size_t)klen > m->acap) {
			size_t cap = (m->acap ? m->acap * 2 : 65536) + (size_t)klen;
			uint8_t *a = realloc(m->arena, cap);
			if (a == NULL)
				return -ENOMEM;
			m->arena = a;
			m->acap = cap;
		}
		memcpy(m->arena + m->alen, key, (size_t)klen);
		e->hash = h;
		e->koff = m->alen;
		e->klen = klen;
		m->alen += (size_t)klen;
		m->used++;
		e->offset = offset;
	} else if (offset > e->offset) {
		e->offset = offset;
	}
	return 0;
}

static int64_t
kmap_get(struct kmap *m, const uint8_t *key, int32_t klen)
{
	struct kmap_ent *e = kmap_slot(m, key, klen, fnv1a(key, (size_t)klen));

	return e->klen == -2 ? -1 : e->offset;
}

/* ---- begin ----------------------------------------------------------------- */

int
stor_log_compact_begin(struct stor_log *log, int64_t now_ms, struct stor_compact_job **out)
{
	struct stor_compact_job *job;
	unsigned n = 0;

	if (!(log->cfg.cleanup_policy & STOR_CLEANUP_COMPACT))
		return -ENOENT;
	for (unsigned i = 0; i + 1 < log->seg_count; i++)
		if (log->segs[i]->finalized)
			n = i + 1;
		else
			break;
	if (n == 0)
		return -ENOENT;
	job = calloc(1, sizeof(*job));
	if (job == NULL)
		return -ENOMEM;
	job->dir = strdup(log->dir);
	job->segs = calloc(n, sizeof(*job->segs));
	if (job->dir == NULL || job->segs == NULL) {
		free(job->dir);
		free(job->segs);
		free(job);
		return -ENOMEM;
	}
	job->n = n;
	job->interval = log->cfg.index_interval_bytes;
	job->horizon_ms = log->cfg.delete_retention_ms < 0 ? INT64_MIN
	                                                   : now_ms - log->cfg.delete_retention_ms;
	for (unsigned i = 0; i < n; i++) {
		job->segs[i].base = log->segs[i]->base_offset;
		job->segs[i].next_offset = log->segs[i]->next_offset;
	}
	*out = job;
	return 0;
}

/* ---- run ---------------------------------------------------------------------- */

static int
load_file(const char *path, uint8_t **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	size_t done = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return -errno;
	}
	*buf = malloc((size_t)st.st_size + 1);
	if (*buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (done < (size_t)st.st_size) {
		ssize_t r = pread(fd, *buf + done, (size_t)st.st_size - done, (off_t)done);
		if (r <= 0) {
			close(fd);
			free(*buf);
			return r < 0 ? -errno : -EIO;
		}
		done += (size_t)r;
	}
	close(fd);
	*len = done;
	return 0;
}

/*
 * Walk the batches of a loaded segment, calling @fn for each with its
 * (decompressed) records. Stops at the first malformed batch (a sealed
 * segment never has one; treat it as the end).
 */
typedef int (*batch_fn)(void *ctx, const uint8_t *batch, const struct kp_batch_header *h,
                        const uint8_t *records, size_t records_len);

static int
walk_segment(const uint8_t *buf, size_t len, uint8_t *scratch, size_t scratch_cap, batch_fn fn,
             void *ctx)
{
	size_t pos = 0;

	while (len - pos >= KP_BATCH_HEADER_SIZE) {
		struct kp_batch_header h;
		if (kp_batch_header_parse(buf + pos, len - pos, &h) != 0)
			break;
		const uint8_t *rec = kp_batch_records(buf + pos);
		size_t rlen = kp_batch_records_len(&h);
		if (kp_batch_compression(&h) != KP_COMPRESSION_NONE) {
			int rc = kp_batch_records_decompress(NULL, buf + pos, &h, scratch,
			                                     scratch_cap, &rlen);
			if (rc != 0)
				return rc;
			rec = scratch;
		}
		int rc = fn(ctx, buf + pos, &h, rec, rlen);
		if (rc != 0)
			return rc;
		pos += kp_batch_size(&h);
	}
	return 0;
}

struct map_ctx {
	struct kmap *map;
	uint64_t records;
};

static int
map_batch(void *vctx, const uint8_t *batch, const struct kp_batch_header *h, const uint8_t *records,
          size_t records_len)
{
	struct map_ctx *c = vctx;
	struct kp_record_iter it;
	struct kp_record r;
	int rc;

	(void)batch;
	if (h->attributes & KP_BATCH_ATTR_CONTROL)
		return 0;
	kp_record_iter_init(&it, records, records_len, h->records_count);
	while ((rc = kp_record_iter_next(&it, &r)) == 1) {
		c->records++;
		if (r.key_len < 0)
			continue;
		rc = kmap_put(c->map, r.key, r.key_len, h->base_offset + r.offset_delta);
		if (rc != 0)
			return rc;
	}
	return rc;
}

static uint8_t *
put_varlong(uint8_t *p, int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);

	while (z >= 0x80) {
		*p++ = (uint8_t)(z | 0x80);
		z >>= 7;
	}
	*p++ = (uint8_t)z;
	return p;
}

static size_t
varlong_size(int64_t v)
{
	uint8_t tmp[10];

	return (size_t)(put_varlong(tmp, v) - tmp);
}

struct clean_ctx {
	struct kmap *map;
	int64_t horizon_ms;
	uint32_t interval;
	uint8_t *out; /* cleaned segment being built */
	size_t pos, cap;
	struct stor_segment *seg;
	struct stor_compact_stats *st;
};

/* Encode @r (from a batch with base timestamp/offset unchanged) at @p. */
static uint8_t *
put_record(uint8_t *p, const struct kp_record *r)
{
	size_t body = 1 + varlong_size(r->timestamp_delta) + varlong_size(r->offset_delta) +
	              varlong_size(r->key_len) + (r->key_len > 0 ? (size_t)r->key_len : 0) +
	              varlong_size(r->value_len) + (r->value_len > 0 ? (size_t)r->value_len : 0) +
	              varlong_size(r->header_count) + r->headers_len;

	p = put_varlong(p, (int64_t)body);
	*p++ = (uint8_t)r->attributes;
	p = put_varlong(p, r->timestamp_delta);
	p = put_varlong(p, r->offset_delta);
	p = put_varlong(p, r->key_len);
	if (r->key_len > 0) {
		memcpy(p, r->key, (size_t)r->key_len);
		p += r->key_len;
	}
	p = put_varlong(p, r->value_len);
	if (r->value_len > 0) {
		memcpy(p, r->value, (size_t)r->value_len);
		p += r->value_len;
	}
	p = put_varlong(p, r->header_count);
	if (r->headers_len > 0) {
		memcpy(p, r->headers, r->headers_len);
		p += r->headers_len;
	}
	return p;
}

static int
emit(struct clean_ctx *c, const uint8_t *batch, size_t size, int64_t last, int64_t max_ts)
{
	int rc = stor_seg_index_batch(c->seg, c->interval, last, max_ts, c->pos, (uint32_t)size,
	                              true);

	if (rc != 0)
		return rc;
	if (batch != c->out + c->pos)
		memcpy(c->out + c->pos, batch, size);
	c->pos += size;
	c->seg->size = c->pos;
	c->st->bytes_out += size;
	return 0;
}

static int
clean_batch(void *vctx, const uint8_t *batch, const struct kp_batch_header *h,
            const uint8_t *records, size_t records_len)
{
	struct clean_ctx *c = vctx;
	struct kp_record_iter it;
	struct kp_record r;
	int32_t kept = 0, total = 0;
	int rc;

	if (h->attributes & KP_BATCH_ATTR_CONTROL)
		return emit(c, batch, kp_batch_size(h), h->base_offset + h->last_offset_delta,
		            h->max_timestamp);
	/* Pass 1: which records stay. */
	kp_record_iter_init(&it, records, records_len, h->records_count);
	while ((rc = kp_record_iter_next(&it, &r)) == 1) {
		total++;
		/* Kafka's cleaner drops keyless records (invalid on a compacted topic). */
		if (r.key_len < 0 ||
		    kmap_get(c->map, r.key, r.key_len) != h->base_offset + r.offset_delta)
			continue;
		if (r.value_len < 0 && h->max_timestamp < c->horizon_ms) {
			c->st->tombstones_dropped++;
			continue;
		}
		kept++;
	}
	if (rc < 0)
		return rc;
	c->st->records_in += (uint64_t)total;
	c->st->records_kept += (uint64_t)kept;
	if (kept == 0)
		return 0;
	if (kept == total)
		return emit(c, batch, kp_batch_size(h), h->base_offset + h->last_offset_delta,
		            h->max_timestamp);

	/* Pass 2: rewrite in place at the end of the output (it has room: output <= input). */
	uint8_t *dst = c->out + c->pos;
	memcpy(dst, batch, KP_BATCH_HEADER_SIZE);
	uint8_t *p = dst + KP_BATCH_HEADER_SIZE;
	int32_t last_delta = 0;
	int64_t max_ts = -1;
	bool log_append = (h->attributes & KP_BATCH_ATTR_TIMESTAMP_TYPE) != 0;
	kp_record_iter_init(&it, records, records_len, h->records_count);
	while (kp_record_iter_next(&it, &r) == 1) {
		if (r.key_len < 0 ||
		    kmap_get(c->map, r.key, r.key_len) != h->base_offset + r.offset_delta)
			continue;
		if (r.value_len < 0 && h->max_timestamp < c->horizon_ms)
			continue;
		p = put_record(p, &r);
		last_delta = r.offset_delta;
		if (h->base_timestamp + r.timestamp_delta > max_ts)
			max_ts = h->base_timestamp + r.timestamp_delta;
	}
	if (log_append)
		max_ts = h->max_timestamp;
	size_t size = (size_t)(p - dst);
	uint16_t attrs = (uint16_t)h->attributes & (uint16_t)~KP_BATCH_ATTR_COMPRESSION_MASK;
	stor_be32_put(dst + 8, (uint32_t)(size - KP_BATCH_LOG_OVERHEAD));
	dst[21] = (uint8_t)(attrs >> 8);
	dst[22] = (uint8_t)attrs;
	stor_be32_put(dst + 23, (uint32_t)last_delta);
	stor_be64_put(dst + 35, (uint64_t)max_ts);
	stor_be32_put(dst + 57, (uint32_t)kept);
	kp_batch_crc_update(dst, size);
	return emit(c, dst, size, h->base_offset + last_delta, max_ts);
}

static int
write_cleaned(const char *dir, const struct job_seg *js, const uint8_t *buf, size_t len)
{
	char path[PATH_MAX];
	int fd, rc = 0;

	stor_segment_path(path, sizeof(path), dir, js->base, ".log.cleaned");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (len != 0 && write(fd, buf, len) != (ssize_t)len)
		rc = -EIO;
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0)
		rc = stor_index_write_files(dir, js->out, ".cleaned");
	return rc;
}

int
stor_compact_job_run(struct stor_compact_job *job, struct stor_compact_stats *stats)
{
	struct stor_compact_stats local;
	struct kmap map;
	uint8_t *scratch = NULL, *buf = NULL, *out = NULL;
	size_t scap = KP_BATCH_MAX_RECORDS_BYTES, len;
	char path[PATH_MAX];
	int rc;

	if (stats == NULL)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	rc = kmap_init(&map);
	if (rc != 0)
		goto out;
	scratch = malloc(scap);
	if (scratch == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	/* Pass 1: the latest offset of every key in the cleaned range. */
	for (unsigned i = 0; i < job->n; i++) {
		struct map_ctx mc = {.map = &map};
		stor_segment_path(path, sizeof(path), job->dir, job->segs[i].base, ".log");
		rc = load_file(path, &buf, &len);
		if (rc != 0)
			goto out;
		stats->bytes_in += len;
		rc = walk_segment(buf, len, scratch, scap, map_batch, &mc);
		free(buf);
		buf = NULL;
		if (rc != 0)
			goto out;
	}
	/* Pass 2: one cleaned file per segment. */
	for (unsigned i = 0; i < job->n; i++) {
		struct job_seg *js = &job->segs[i];
		stor_segment_path(path, sizeof(path), job->dir, js->base, ".log");
		rc = load_file(path, &buf, &len);
		if (rc != 0)
			goto out;
		js->out = stor_seg_new(js->base);
		/* Rewritten batches are never larger than the originals (uncompressed
		 * rewrites of compressed batches can be: allow for that). */
		out = malloc(len + scap + KP_BATCH_HEADER_SIZE);
		if (js->out == NULL || out == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		js->out->next_offset = js->next_offset;
		struct clean_ctx cc = {
		        .map = &map,
		        .horizon_ms = job->horizon_ms,
		        .interval = job->interval,
		        .out = out,
		        .cap = len,
		        .seg = js->out,
		        .st = stats,
		};
		rc = walk_segment(buf, len, scratch, scap, clean_batch, &cc);
		/* The segment's largest timestamp closes its time index (as at roll). */
		struct stor_segment *o = js->out;
		if (rc == 0 && o->max_timestamp >= 0 &&
		    (o->tidx_count == 0 ||
		     o->max_timestamp > o->tidx[o->tidx_count - 1].timestamp)) {
			struct stor_time_entry *t =
			        realloc(o->tidx, ((size_t)o->tidx_count + 1) * sizeof(*t));
			if (t == NULL) {
				rc = -ENOMEM;
			} else {
				o->tidx = t;
				o->tidx_cap = o->tidx_count + 1;
				t[o->tidx_count].timestamp = o->max_timestamp;
				t[o->tidx_count].rel_offset =
				        (uint32_t)(o->max_ts_offset - o->base_offset);
				o->tidx_count++;
			}
		}
		if (rc == 0)
			rc = write_cleaned(job->dir, js, out, cc.pos);
		free(buf);
		free(out);
		buf = out = NULL;
		if (rc != 0)
			goto out;
		stats->segments++;
	}
out:
	free(buf);
	free(out);
	free(scratch);
	kmap_fini(&map);
	job->rc = rc;
	return rc;
}

/* ---- finish ---------------------------------------------------------------- */

static void
unlink_cleaned(const char *dir, int64_t base)
{
	static const char *const sfx[] = {".log.cleaned", ".index.cleaned", ".timeindex.cleaned"};
	char path[PATH_MAX];

	for (unsigned k = 0; k < 3; k++) {
		stor_segment_path(path, sizeof(path), dir, base, sfx[k]);
		unlink(path);
	}
}

static void
job_free(struct stor_compact_job *job)
{
	for (unsigned i = 0; i < job->n; i++)
		if (job->segs[i].out != NULL) {
			free(job->segs[i].out->idx);
			free(job->segs[i].out->tidx);
			free(job->segs[i].out);
		}
	free(job->segs);
	free(job->dir);
	free(job);
}

static int
rename_suffix(const char *dir, int64_t base, const char *from, const char *to)
{
	char a[PATH_MAX], b[PATH_MAX];

	stor_segment_path(a, sizeof(a), dir, base, from);
	stor_segment_path(b, sizeof(b), dir, base, to);
	return rename(a, b) == 0 ? 0 : -errno;
}

int
stor_log_compact_finish(struct stor_log *log, struct stor_compact_job *job)
{
	int rc = job->rc;
	unsigned swapped = 0;

	for (unsigned j = 0; j < job->n; j++) {
		struct job_seg *js = &job->segs[j];
		struct stor_segment *old = NULL;
		unsigned i;

		for (i = 0; i + 1 < log->seg_count; i++)
			if (log->segs[i]->base_offset == js->base && log->segs[i]->finalized) {
				old = log->segs[i];
				break;
			}
		if (rc != 0 || js->out == NULL || old == NULL) {
			unlink_cleaned(job->dir, js->base);
			continue;
		}
		/* Old indexes first: a crash between the renames leaves them missing (rebuilt). */
		char path[PATH_MAX];
		/* The replaced file's blocks are freed off this thread, as retention's. */
		int keep = stor_seg_keep_file(log, js->base);
		stor_segment_path(path, sizeof(path), log->dir, js->base, ".index");
		unlink(path);
		stor_segment_path(path, sizeof(path), log->dir, js->base, ".timeindex");
		unlink(path);
		int r = rename_suffix(log->dir, js->base, ".log.cleaned", ".log");
		if (r == 0)
			rename_suffix(log->dir, js->base, ".index.cleaned", ".index");
		if (r == 0)
			rename_suffix(log->dir, js->base, ".timeindex.cleaned", ".timeindex");
		if (r == 0)
			r = stor_seg_open_file(log, js->out, false);
		if (r != 0) {
			stor_msg(log->engine, STOR_LOG_ERR,
			         "%s: installing cleaned segment %020" PRId64 ": %s", log->dir,
			         js->base, strerror(-r));
			unlink_cleaned(job->dir, js->base);
			if (keep >= 0)
				close(keep);
			if (rc == 0)
				rc = r;
			continue;
		}
		struct stor_segment *nseg = js->out;
		js->out = NULL;
		nseg->sealed = nseg->finalized = true;
		nseg->next_offset = old->next_offset;
		nseg->lpos_base = old->lpos_base;
		log->segs[i] = nseg;
		stor_seg_retire(log, old);
		stor_seg_release_file(log, keep);
		swapped++;
	}
	if (swapped != 0) {
		int fd = open(log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
		stor_msg(log->engine, STOR_LOG_INFO, "%s: compacted %u segments", log->dir,
		         swapped);
	}
	job_free(job);
	return rc;
}
