/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_metrics reader side: map the dataplane's segment read-only and copy
 * each block under its seqlock (dp_metrics.h). No DPDK, no dataplane code:
 * the control process links this file alone; the dataplane links it too
 * (the bucket bounds live here).
 */
#include "dp_metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * 5 us .. 60 s, roughly 1-2.5-5 per decade; the last bucket is +Inf. The
 * microsecond buckets split an end-to-end budget of 200 us (issue 7) into the
 * request's own legs.
 */
const uint64_t dp_metrics_lat_bounds_us[DP_METRICS_LAT_BUCKETS - 1] = {
        5,      10,     25,
        50,     100,    250,    500,     1000,    2500,    5000,     10000,    25000,    50000,
        100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

/*
 * How long a reader keeps trying one entry: a writer preempted inside an
 * update (a busy host) holds seq odd until it runs again, so spin a little,
 * then yield, and give up only after this long (a dead writer).
 */
#define SNAPSHOT_WAIT_NS 100000000ll
#define SNAPSHOT_SPINS 64

int
dp_metrics_reader_open(struct dp_metrics_reader *r, const char *path)
{
	const struct dp_metrics_header *h;
	char copy[sizeof(r->path)];
	size_t n = strlen(path);
	struct stat st;
	int rc;

	/* Copied first: @path may be r->path itself (a remap in dp_metrics_snapshot). */
	if (n >= sizeof(copy))
		return -EINVAL;
	memcpy(copy, path, n + 1);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	memcpy(r->path, copy, n + 1);
	r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0)
		return -errno;
	if (fstat(r->fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	if ((size_t)st.st_size < DP_METRICS_HEADER_BYTES) {
		rc = -EPROTO;
		goto fail;
	}
	r->map_len = (size_t)st.st_size;
	r->map = mmap(NULL, r->map_len, PROT_READ, MAP_SHARED, r->fd, 0);
	if (r->map == MAP_FAILED) {
		r->map = NULL;
		rc = -errno;
		goto fail;
	}
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	h = (const struct dp_metrics_header *)r->map;
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != DP_METRICS_MAGIC ||
	    h->version != DP_METRICS_VERSION || h->header_size != DP_METRICS_HEADER_BYTES ||
	    h->block_size != sizeof(struct dp_metrics_block) || h->n_blocks == 0 ||
	    h->n_blocks > DP_METRICS_MAX_BLOCKS ||
	    r->map_len < DP_METRICS_HEADER_BYTES + h->n_blocks * h->block_size) {
		rc = -EPROTO;
		goto fail;
	}
	return 0;
fail:
	dp_metrics_reader_close(r);
	return rc;
}

void
dp_metrics_reader_close(struct dp_metrics_reader *r)
{
	if (r->map != NULL)
		munmap((void *)(uintptr_t)r->map, r->map_len);
	if (r->fd >= 0)
		close(r->fd);
	r->map = NULL;
	r->fd = -1;
}

/*
 * Word-wise relaxed copy (the writer stores 64-bit words atomically). Not
 * inlined, so the word view never meets the callers' field view.
 */
static __attribute__((noinline)) void
copy_words(void *dst, const void *src, size_t bytes)
{
	uint64_t *d = dst;
	const uint64_t *s = src;

	for (size_t i = 0; i < bytes / 8; i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

/*
 * Copy @bytes at @src (a struct whose first word, at @seq, is the seqlock
 * covering all of it) into @dst. 0, or -EAGAIN when it was never seen at rest.
 */
static int
copy_locked(void *dst, const void *src, const uint64_t *seq, size_t bytes)
{
	struct timespec t0, t;

	for (int spin = 0;; spin++) {
		uint64_t s1 = __atomic_load_n(seq, __ATOMIC_ACQUIRE);

		if ((s1 & 1) == 0) {
			copy_words(dst, src, bytes);
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (__atomic_load_n(seq, __ATOMIC_RELAXED) == s1)
				return 0;
		}
		if (spin < SNAPSHOT_SPINS)
			continue;
		if (spin == SNAPSHOT_SPINS)
			clock_gettime(CLOCK_MONOTONIC, &t0);
		sched_yield();
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000000000ll + (t.tv_nsec - t0.tv_nsec) >
		    SNAPSHOT_WAIT_NS)
			return -EAGAIN;
	}
}

static int
copy_block(const struct dp_metrics_block *src, struct dp_metrics_block *dst)
{
	uint64_t n = __atomic_load_n(&src->n_tps, __ATOMIC_ACQUIRE);
	int rc;

	if (n > DP_METRICS_MAX_TPS)
		return -EPROTO;
	dst->lcore = src->lcore;
	/* Closed before accepted: a connection is accepted before it closes. */
	dst->conn_closed = __atomic_load_n(&src->conn_closed, __ATOMIC_ACQUIRE);
	dst->conn_accepted = __atomic_load_n(&src->conn_accepted, __ATOMIC_ACQUIRE);
	dst->busy_tsc = __atomic_load_n(&src->busy_tsc, __ATOMIC_RELAXED);
	dst->idle_tsc = __atomic_load_n(&src->idle_tsc, __ATOMIC_RELAXED);
	dst->iterations = __atomic_load_n(&src->iterations, __ATOMIC_RELAXED);
	for (int k = 0; k < DP_METRICS_LONG_N; k++)
		dst->long_iters[k] = __atomic_load_n(&src->long_iters[k], __ATOMIC_RELAXED);
	dst->long_tsc = __atomic_load_n(&src->long_tsc, __ATOMIC_RELAXED);
	dst->cpu_ns = __atomic_load_n(&src->cpu_ns, __ATOMIC_RELAXED);
	dst->tp_overflow = __atomic_load_n(&src->tp_overflow, __ATOMIC_RELAXED);
	for (int t = 0; t < DP_METRICS_TRANSPORTS; t++) {
		dst->fetch_rec_ref[t] = __atomic_load_n(&src->fetch_rec_ref[t], __ATOMIC_RELAXED);
		dst->fetch_rec_copied[t] =
			__atomic_load_n(&src->fetch_rec_copied[t], __ATOMIC_RELAXED);
	}
	dst->net.worker = __atomic_load_n(&src->net.worker, __ATOMIC_ACQUIRE);
	if (dst->net.worker != 0) {
		/* The name is written before worker is published (acquire above). */
		memcpy(dst->net.port, src->net.port, sizeof(dst->net.port));
		dst->net.port[sizeof(dst->net.port) - 1] = '\0';
		for (int i = 0; i < DP_METRICS_NET_MAX; i++)
			dst->net.v[i] = __atomic_load_n(&src->net.v[i], __ATOMIC_RELAXED);
	}
	for (int k = 0; k < DP_METRICS_APIS; k++)
		for (int e = 0; e < DP_METRICS_ERRORS; e++)
			dst->api_errors[k][e] =
				__atomic_load_n(&src->api_errors[k][e], __ATOMIC_RELAXED);
	dst->hop.sides = __atomic_load_n(&src->hop.sides, __ATOMIC_ACQUIRE);
	if (dst->hop.sides != 0) {
		for (int i = 0; i < DP_METRICS_HOP_MAX; i++)
			dst->hop.v[i] = __atomic_load_n(&src->hop.v[i], __ATOMIC_RELAXED);
	}
	dst->storage.writers = __atomic_load_n(&src->storage.writers, __ATOMIC_ACQUIRE);
	if (dst->storage.writers != 0) {
		for (int i = 0; i < DP_METRICS_STORAGE_MAX; i++)
			dst->storage.v[i] = __atomic_load_n(&src->storage.v[i], __ATOMIC_RELAXED);
	}
	dst->n_tps = n;
	rc = copy_locked(&dst->storage_write, &src->storage_write, &src->storage_write.seq,
	                 sizeof(struct dp_metrics_hist));
	if (rc == 0)
		rc = copy_locked(&dst->fetch_wakeup, &src->fetch_wakeup, &src->fetch_wakeup.seq,
		                 sizeof(struct dp_metrics_hist));
	for (int k = 0; rc == 0 && k < DP_METRICS_APIS; k++)
		rc = copy_locked(&dst->api[k], &src->api[k], &src->api[k].seq,
		                 sizeof(struct dp_metrics_hist));
	for (uint64_t i = 0; rc == 0 && i < n; i++) {
		/* Names are written before n_tps is published (acquire above). */
		memcpy(dst->tps[i].topic, src->tps[i].topic, DP_METRICS_TOPIC_BYTES);
		dst->tps[i].topic[DP_METRICS_TOPIC_BYTES - 1] = '\0';
		dst->tps[i].partition = src->tps[i].partition;
		rc = copy_locked(&dst->tps[i].seq, &src->tps[i].seq, &src->tps[i].seq,
		                 sizeof(struct dp_metrics_tp) -
		                         offsetof(struct dp_metrics_tp, seq));
	}
	return rc;
}

int
dp_metrics_snapshot(struct dp_metrics_reader *r, struct dp_metrics_snapshot *out)
{
	const struct dp_metrics_header *h;
	struct stat st;
	int rc;

	memset(out, 0, sizeof(*out));
	if (stat(r->path, &st) < 0)
		return -errno;
	if (r->map == NULL || st.st_ino != r->ino || st.st_dev != r->dev) {
		dp_metrics_reader_close(r);
		rc = dp_metrics_reader_open(r, r->path);
		if (rc < 0)
			return rc;
	}
	h = (const struct dp_metrics_header *)r->map;
	out->hdr = *h;
	out->blocks = calloc(h->n_blocks, sizeof(struct dp_metrics_block));
	if (out->blocks == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < h->n_blocks; i++) {
		const struct dp_metrics_block *src =
		        (const struct dp_metrics_block *)(r->map + DP_METRICS_HEADER_BYTES +
		                                          (size_t)i *
		                                                  sizeof(struct dp_metrics_block));

		rc = copy_block(src, &out->blocks[i]);
		if (rc < 0) {
			dp_metrics_snapshot_free(out);
			return rc;
		}
	}
	return 0;
}

void
dp_metrics_snapshot_free(struct dp_metrics_snapshot *s)
{
	free(s->blocks);
	s->blocks = NULL;
}
