/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_metrics writer side: creating the shared-memory segment, binding
 * reactor threads to their blocks, the topic-partition index and the
 * reactor accounting poller (the layout and the rules are in dp_metrics.h).
 *
 * The topic-partition index is private to the process: an open-addressing
 * hash per block (writer-owned, never shared) from (topic, partition) to the
 * entry in the block's table, so an event costs a hash and one compare.
 */
#include "dp_metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>

#include "dp_config.h"
#include "dp_log.h"
#include "dp_reactor.h"
#include "kp_batch.h"
#include "kp_wire.h"

__thread struct dp_metrics_block *dp_metrics_tls;
double dp_metrics_ns_per_tsc = 1.0;

/* Index slots per block: a power of two, twice the table, so probes stay short. */
#define TP_INDEX_SLOTS (2 * DP_METRICS_MAX_TPS)
#define TP_INDEX_EMPTY UINT16_MAX

struct tp_index {
	uint16_t slot[TP_INDEX_SLOTS]; /* entry number in tps[], or TP_INDEX_EMPTY */
};

static struct {
	uint8_t *map;
	size_t len;
	char path[256];
	unsigned int n_blocks;
	dev_t dev; /* the file created, so destroy never removes a successor's */
	ino_t ino;
	struct tp_index *index; /* one per block, owned by the block's writer */
} g_seg;

static struct dp_metrics_block *
block_at(unsigned int i)
{
	return (struct dp_metrics_block *)(g_seg.map + DP_METRICS_HEADER_BYTES +
	                                   (size_t)i * sizeof(struct dp_metrics_block));
}

int
dp_metrics_create(const char *path, int64_t node_id, const unsigned int *lcores, unsigned int n,
                  uint64_t tsc_hz)
{
	struct dp_metrics_header *h;
	char tmp[272];
	struct timespec ts;
	size_t len;
	int fd, rc;

	if (n == 0 || n > DP_METRICS_MAX_BLOCKS || strlen(path) >= sizeof(g_seg.path) ||
	    tsc_hz == 0)
		return -EINVAL;
	dp_metrics_destroy();
	len = DP_METRICS_HEADER_BYTES + (size_t)n * sizeof(struct dp_metrics_block);
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len) < 0) {
		rc = -errno;
		goto fail_fd;
	}
	g_seg.map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (g_seg.map == MAP_FAILED) {
		rc = -errno;
		g_seg.map = NULL;
		goto fail_fd;
	}
	g_seg.index = malloc(sizeof(struct tp_index) * n);
	if (g_seg.index == NULL) {
		rc = -ENOMEM;
		goto fail_map;
	}
	memset(g_seg.index, 0xff, sizeof(struct tp_index) * n);
	g_seg.len = len;
	g_seg.n_blocks = n;
	/* ftruncate gave zeroes: only the non-zero fields need writing. */
	for (unsigned int i = 0; i < n; i++) {
		struct dp_metrics_block *b = block_at(i);

		b->lcore = lcores[i];
		for (unsigned int k = 0; k < DP_METRICS_MAX_TPS; k++)
			b->tps[k].log_end_offset = -1;
	}
	h = (struct dp_metrics_header *)g_seg.map;
	h->version = DP_METRICS_VERSION;
	h->header_size = DP_METRICS_HEADER_BYTES;
	h->block_size = sizeof(struct dp_metrics_block);
	h->n_blocks = n;
	h->node_id = node_id;
	h->tsc_hz = tsc_hz;
	clock_gettime(CLOCK_REALTIME, &ts);
	h->start_unix_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	h->pid = (int64_t)getpid();
	__atomic_store_n(&h->magic, DP_METRICS_MAGIC, __ATOMIC_RELEASE);
	{
		struct stat st;

		if (fstat(fd, &st) == 0) {
			g_seg.dev = st.st_dev;
			g_seg.ino = st.st_ino;
		}
	}
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto fail_index;
	}
	close(fd);
	snprintf(g_seg.path, sizeof(g_seg.path), "%s", path);
	dp_metrics_ns_per_tsc = 1e9 / (double)tsc_hz;
	return 0;

fail_index:
	free(g_seg.index);
	g_seg.index = NULL;
fail_map:
	munmap(g_seg.map, len);
	g_seg.map = NULL;
fail_fd:
	close(fd);
	unlink(tmp);
	g_seg.n_blocks = 0;
	return rc;
}

void
dp_metrics_destroy(void)
{
	struct stat st;

	if (g_seg.map == NULL)
		return;
	kp_error_hook = NULL;
	/* Another dataplane with the same path may have replaced the file since. */
	if (stat(g_seg.path, &st) == 0 && st.st_dev == g_seg.dev && st.st_ino == g_seg.ino)
		unlink(g_seg.path);
	munmap(g_seg.map, g_seg.len);
	free(g_seg.index);
	memset(&g_seg, 0, sizeof(g_seg));
	dp_metrics_tls = NULL;
}

int
dp_metrics_bind(unsigned int lcore)
{
	for (unsigned int i = 0; i < g_seg.n_blocks; i++) {
		if (block_at(i)->lcore == lcore) {
			dp_metrics_tls = block_at(i);
			return 0;
		}
	}
	dp_metrics_tls = NULL;
	return -ENOENT;
}

/* FNV-1a over the name, mixed with the partition. */
void
dp_metrics_net_publish(unsigned int worker, const char *port, const uint64_t *v, unsigned int n)
{
	struct dp_metrics_block *b = dp_metrics_tls;

	if (b == NULL)
		return;
	if (n > DP_METRICS_NET_MAX)
		n = DP_METRICS_NET_MAX;
	if (b->net.worker != worker + 1) {
		/* First publication (or another worker on this lcore): name, then worker. */
		snprintf(b->net.port, sizeof(b->net.port), "%s", port != NULL ? port : "");
		__atomic_store_n(&b->net.worker, worker + 1, __ATOMIC_RELEASE);
	}
	for (unsigned int i = 0; i < n; i++)
		__atomic_store_n(&b->net.v[i], v[i], __ATOMIC_RELAXED);
}

void
dp_metrics_hop_publish(uint32_t sides, const uint64_t *v, unsigned int n)
{
	struct dp_metrics_block *b = dp_metrics_tls;

	if (b == NULL)
		return;
	if (n > DP_METRICS_HOP_MAX)
		n = DP_METRICS_HOP_MAX;
	for (unsigned int i = 0; i < n; i++)
		__atomic_store_n(&b->hop.v[i], v[i], __ATOMIC_RELAXED);
	if (b->hop.sides != sides)
		__atomic_store_n(&b->hop.sides, sides, __ATOMIC_RELEASE); /* after the values */
}

void
dp_metrics_storage_publish(unsigned int writers, const uint64_t *v, unsigned int n)
{
	struct dp_metrics_block *b = dp_metrics_tls;

	if (b == NULL)
		return;
	if (n > DP_METRICS_STORAGE_MAX)
		n = DP_METRICS_STORAGE_MAX;
	for (unsigned int i = 0; i < n; i++)
		__atomic_store_n(&b->storage.v[i], v[i], __ATOMIC_RELAXED);
	if (b->storage.writers != writers)
		__atomic_store_n(&b->storage.writers, writers, __ATOMIC_RELEASE); /* after the values */
}

static uint32_t
tp_hash(const char *topic, size_t len, int32_t partition)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)topic[i]) * 16777619u;
	h ^= (uint32_t)partition * 0x9e3779b1u;
	return h ^ (h >> 15);
}

struct dp_metrics_tp *
dp_metrics_tp_get(const char *topic, size_t len, int32_t partition)
{
	struct dp_metrics_block *b = dp_metrics_tls;
	struct tp_index *ix;
	uint32_t pos;
	uint64_t n;

	if (b == NULL || len == 0 || len >= DP_METRICS_TOPIC_BYTES)
		return NULL;
	ix = &g_seg.index[b - block_at(0)];
	pos = tp_hash(topic, len, partition) & (TP_INDEX_SLOTS - 1);
	for (;;) {
		uint16_t e = ix->slot[pos];
		struct dp_metrics_tp *tp;

		if (e == TP_INDEX_EMPTY)
			break;
		tp = &b->tps[e];
		if (tp->partition == partition && memcmp(tp->topic, topic, len) == 0 &&
		    tp->topic[len] == '\0')
			return tp;
		pos = (pos + 1) & (TP_INDEX_SLOTS - 1);
	}
	n = b->n_tps;
	if (n == DP_METRICS_MAX_TPS) {
		dp_metrics_add(&b->tp_overflow, 1);
		return NULL;
	}
	/* Unpublished: no reader looks at entry n before n_tps covers it. */
	memcpy(b->tps[n].topic, topic, len);
	b->tps[n].topic[len] = '\0';
	b->tps[n].partition = partition;
	__atomic_store_n(&b->n_tps, n + 1, __ATOMIC_RELEASE);
	ix->slot[pos] = (uint16_t)n;
	return &b->tps[n];
}

_Static_assert(DP_METRICS_LONG_N == DP_REACTOR_LONG_N, "long iteration thresholds");

/* The lcore thread's CPU time when its reactor first polled the metrics. */
static __thread uint64_t t_cpu_base;

int
dp_metrics_reactor_poll(void *arg)
{
	struct dp_metrics_block *b = dp_metrics_tls;
	struct dp_reactor_stats st;
	unsigned int lcore = (unsigned int)(uintptr_t)arg;

	struct timespec ts;
	uint64_t cpu = clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0
		? (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec : 0;

	if (b == NULL) {
		if (dp_metrics_bind(lcore) < 0)
			return 0;
		b = dp_metrics_tls;
		t_cpu_base = cpu; /* from the reactor's first iteration, as busy and idle */
	}
	if (dp_reactor_stats_get(lcore, &st) < 0)
		return 0;
	__atomic_store_n(&b->busy_tsc, st.busy_tsc, __ATOMIC_RELAXED);
	__atomic_store_n(&b->idle_tsc, st.idle_tsc, __ATOMIC_RELAXED);
	__atomic_store_n(&b->iterations, st.iterations, __ATOMIC_RELAXED);
	for (int k = 0; k < DP_METRICS_LONG_N; k++)
		__atomic_store_n(&b->long_iters[k], st.long_iters[k], __ATOMIC_RELAXED);
	__atomic_store_n(&b->long_tsc, st.long_tsc, __ATOMIC_RELAXED);
	if (cpu >= t_cpu_base)
		__atomic_store_n(&b->cpu_ns, cpu - t_cpu_base, __ATOMIC_RELAXED);
	return 0;
}

int
dp_metrics_start(const struct dp_config *cfg)
{
	static const uint64_t long_us[DP_METRICS_LONG_N] = DP_METRICS_LONG_US;
	char path[256];
	int rc;

	if (memcmp(long_us, dp_reactor_long_us, sizeof(long_us)) != 0)
		return -EINVAL; /* the segment's readers would mislabel the counters */
	if (cfg->metrics_shm_path != NULL && cfg->metrics_shm_path[0] != '\0')
		snprintf(path, sizeof(path), "%s", cfg->metrics_shm_path);
	else
		snprintf(path, sizeof(path), "/dev/shm/slipstream-metrics-%" PRId64, cfg->node_id);
	rc = dp_metrics_create(path, cfg->node_id, cfg->lcore, cfg->n_lcores, rte_get_tsc_hz());
	if (rc < 0) {
		dp_log(DP_LOG_WARN,
		       "metrics: cannot create %s (%s); running without metrics "
		       "(metrics.shm.path)",
		       path, strerror(-rc));
		return rc;
	}
	for (unsigned int i = 0; i < cfg->n_lcores; i++) {
		rc = dp_poller_register(cfg->lcore[i], "metrics", dp_metrics_reactor_poll,
		                        (void *)(uintptr_t)cfg->lcore[i], 100000, DP_POLLER_EVERY);
		if (rc < 0) {
			dp_log(DP_LOG_WARN, "metrics: no poller on lcore %u (%s)", cfg->lcore[i],
			       strerror(-rc));
			dp_metrics_destroy();
			return rc;
		}
	}
	kp_error_hook = dp_metrics_api_error; /* the generated response encoders count errors */
	dp_log(DP_LOG_INFO, "metrics: counters in %s", path);
	return 0;
}

void
dp_metrics_batches(bool in, const char *topic, size_t tlen, int32_t partition,
                   const uint8_t *records, size_t len, int64_t log_end_offset)
{
	uint64_t n = 0;
	size_t off = 0;

	if (dp_metrics_tls == NULL || records == NULL)
		return;
	while (off < len) {
		struct kp_batch_header bh;

		if (kp_batch_header_parse(records + off, len - off, &bh) < 0 ||
		    kp_batch_size(&bh) > len - off)
			break; /* a partial batch at the end of a Fetch */
		if (bh.records_count > 0)
			n += (uint64_t)bh.records_count;
		off += kp_batch_size(&bh);
	}
	if (in)
		dp_metrics_produce(topic, tlen, partition, len, n, log_end_offset);
	else
		dp_metrics_fetch(topic, tlen, partition, len, n, log_end_offset);
}
