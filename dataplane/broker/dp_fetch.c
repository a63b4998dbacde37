/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_fetch: the Fetch handler (long poll woken by appends, min_bytes,
 * max_bytes, partition_max_bytes, asynchronous disk reads through the
 * storage engine) and ListOffsets; part of the request handlers
 * (dp_requests_int.h).
 */
#include "dp_requests_int.h"
#include "dp_requests.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <rte_cycles.h>
#include <rte_lcore.h>

#include "dp_fetch_session.h"
#include "dp_log.h"
#include "dp_metrics.h"
#include "dp_reactor.h"
#include "kp_api.h"
#include "kp_batch.h"
#include "kp_error.h"
#include "net_kernel.h"
#include "stor_log.h"

/* An append completed since parked fetches last ran. */
static bool g_appended;
/* Appends completed so far (a fetch whose reads were in flight meanwhile runs again). */
static uint64_t g_append_seq;
/* TSC of the first append since parked fetches last ran (g_appended set): a wake-up's start. */
static uint64_t g_appended_tsc;

void
dp_fetch_appended(void)
{
	if (!g_appended)
		g_appended_tsc = rte_rdtsc();
	g_appended = true;
	g_append_seq++;
}


#define FETCH_READ_AREA (4u * 1024u * 1024u)
/* Bytes kept free in a response buffer for everything but the records. */
#define FETCH_OVERHEAD_BASE 256u
#define FETCH_OVERHEAD_PER_PARTITION 96u

static uint8_t *g_read_area; /* 4 KiB aligned, carved per partition for disk reads */

/*
 * Large Fetch response buffers, used when dataplane.response.buffer.bytes is
 * smaller than the largest batch (message.max.bytes) plus headers, so any
 * stored batch can be fetched. Allocated at start; a free stack (the
 * broker's lcore only).
 */
#define FETCH_BIG_COUNT 8
static uint8_t *g_big[FETCH_BIG_COUNT];
static uint8_t *g_big_free[FETCH_BIG_COUNT];
static unsigned g_n_big_free;
static uint32_t g_big_bytes; /* 0: not used */

static void
big_free(void *arg, void *buf)
{
	g_big_free[g_n_big_free++] = buf;
}

/* A response buffer for a Fetch: a large one when needed and free, else the pool's. */
static int
fetch_buf_get(struct dp_conn *conn, struct resp_buf *rb)
{
	if (g_big_bytes > conn->env->resp_buf_size && g_n_big_free > 0) {
		rb->p = g_big_free[--g_n_big_free];
		rb->cap = g_big_bytes;
		rb->free_fn = big_free;
		rb->free_arg = NULL;
		return 0;
	}
	rb->p = dp_conn_resp_alloc(conn);
	if (rb->p == NULL)
		return -EAGAIN;
	rb->cap = conn->env->resp_buf_size;
	rb->free_fn = dp_conn_resp_free;
	rb->free_arg = conn->env->resp_pool;
	return 0;
}

struct read_wait {
	bool done;
	int rc;
};

static void
read_done(void *arg, struct stor_read *rd, int rc)
{
	struct read_wait *w = arg;

	w->done = true;
	w->rc = rc;
}

/*
 * A Fetch waiting for disk reads: its request, response structs and read
 * buffers live here (own arena and read area) until the last read
 * completes; then the response is encoded and sent. A small pool taken at
 * start; with none free, disk reads are waited for in the handler.
 *
 * The arena is as large as the request arena (REQ_ARENA_BYTES), so a Fetch
 * the handler can decode fits its context too (about 1.3 KiB per partition:
 * 2,000 partitions take under 3 MiB). It is allocated once and, like the
 * request arena, paged in as used: an idle context costs address space, and
 * a context keeps the pages its largest Fetch touched.
 */
#define FETCH_ASYNC_COUNT 8
#define FETCH_ASYNC_ARENA REQ_ARENA_BYTES
#define FETCH_ASYNC_AREA (2u * 1024u * 1024u)

struct fetch_waiter;

struct fetch_async {
	bool used;
	struct dp_conn *conn;
	uint64_t req;
	struct kp_request_header h;
	struct resp_buf rb;
	struct kp_fetch_response resp;
	struct stor_read *reads;
	uint32_t n_reads;
	uint32_t pending; /* disk reads in flight, remote reads included */
	uint32_t remote;  /* of which reads on another writer's lcore */
	bool failed;      /* the request was refused meanwhile: no reply */
	bool held;        /* a response being sent references its read area (fetch_zc) */
	/*
	 * The long-poll slot holding the request body the response borrows from
	 * (NULL: none was free; the body is the frame). When the reads bring
	 * fewer than min_bytes (wait_bytes > 0), the fetch parks again instead of
	 * answering (fetch_async_finish).
	 */
	struct fetch_waiter *waiter;
	int32_t wait_bytes; /* min_bytes when it may still wait, else 0 */
	uint64_t append_seq; /* g_append_seq when it ran */
	struct kp_arena arena;
	uint8_t *arena_buf;
	uint8_t *area; /* 4 KiB aligned, FETCH_ASYNC_AREA bytes */
};

struct fetch_slot {
	struct fetch_async *fa;
	struct kp_fetch_response_partition_data *pd;
	size_t max; /* a read longer than this is dropped (see fetch_read) */
	/* A read on the owner's lcore (several writers; see remote_read_run). */
	struct stor_log *log;
	struct stor_read *rd;
	int64_t offset;
	size_t max_bytes;
	int rc;
	int64_t hw;    /* the owner's written offset when the read completed */
	int64_t start; /* and its log start offset */
};

static struct fetch_async g_fa[FETCH_ASYNC_COUNT];

/*
 * Zero-copy Fetch responses. The response is encoded with its records fields
 * left out (kp_writer_set_refs) and sent as a scatter-gather response
 * (dp_conn_reply_sg): the owned segments are the encoded bytes in the
 * response buffer, and each records field is a segment of its own that
 * points at the bytes where they are:
 *
 *   tail cache      in the cache chunk (DP_SEG_BORROWED): the read's chunk
 *                   reference is kept until the response is freed
 *   async disk read in the fetch_async's read area, which is held (not reused)
 *                   until then: the read is the one copy
 *   sync disk read  in the shared read area, which the next Fetch reuses: copied
 *                   into the response buffer behind the encoded bytes
 *
 * The response buffer starts with a struct fetch_zc (the sg descriptor, the
 * reads whose references are dropped at the end, the held fetch_async), then
 * the segment array, the encoded bytes and the copies. The transport calls
 * fetch_zc_free() when it is done with the bytes (written, or acknowledged by
 * the peer); dp_hop brings that back to this lcore, so references are
 * dropped on the lcore that took them.
 *
 * Outstanding responses are listed: before a log is closed (part_close in
 * dp_broker.c, the shutdown) each response holding a read of it copies the
 * bytes that read lent into its own buffer where they fit and drops the
 * read's references (dp_fetch_zc_detach_log), so no closed log is referenced.
 * Other logs' references stay: their chunks must not be reused while unsent.
 */
struct fetch_zc {
	struct fetch_zc *prev;    /* outstanding responses (g_zc) */
	struct fetch_zc *next;
	struct resp_buf rb;       /* the buffer this heads; freed last */
	struct fetch_async *fa;   /* held for its read area, or NULL */
	struct stor_read *reads;  /* n_reads completed reads (copies), released at the end */
	uint32_t n_reads;
	uint8_t *spare;           /* free bytes of the buffer behind the copies */
	uint8_t *end;             /* end of the buffer */
	struct dp_sg sg;
};

/* Response buffer bytes a read takes in a zero-copy response (its copy, segments, ref). */
#define FETCH_ZC_PER_READ \
	(sizeof(struct stor_read) + 2 * sizeof(struct dp_seg) + sizeof(struct kp_wr_ref))
/* Record bytes of one response sent in place (before max_bytes): chunks it pins. */
#define FETCH_ZC_MAX_BYTES (8 * 1048576)
/* Further tail-cache reads one response may chain behind its partitions' first ones. */
#define FETCH_CHAIN_READS 64u

static struct fetch_zc *g_zc;  /* outstanding zero-copy responses (g_zc_lcore's) */
static uint32_t g_zc_count;
static unsigned int g_zc_lcore; /* the lcore that encodes Fetch responses (writer 0's) */

static void
fetch_zc_unhold(struct fetch_zc *z)
{
	if (z->fa != NULL) {
		z->fa->held = false;
		z->fa = NULL;
	}
}

/*
 * Before @log closes (NULL: every log): each read of it in @z moves the
 * bytes it lent into @z's own buffer where they fit, then drops its
 * references (a second release is a no-op). Bytes that do not fit stay where
 * they are: the chunk memory lives as long as the engine, but a chunk freed
 * with its log may take other bytes before they are sent (docs/gaps.md).
 */
static void
fetch_zc_detach_one(struct fetch_zc *z, const struct stor_log *log)
{
	for (uint32_t k = 0; k < z->n_reads; k++) {
		struct stor_read *rd = &z->reads[k];

		/* The log a read came from (a field storage keeps for its release). */
		if (log != NULL && rd->log != log)
			continue;
		for (uint32_t i = 0; rd->data != NULL && i < z->sg.n; i++) {
			struct dp_seg *g = &z->sg.segs[i];

			if (!(g->flags & DP_SEG_BORROWED) || g->p < rd->data ||
				g->p >= rd->data + rd->len || (size_t)(z->end - z->spare) < g->len)
				continue;
			/*
			 * Same bytes, new place: a transport on another lcore may
			 * read the pointer meanwhile and sends the same bytes
			 * either way.
			 */
			memcpy(z->spare, g->p, g->len);
			__atomic_store_n(&g->p, (const uint8_t *)z->spare, __ATOMIC_RELEASE);
			z->spare += g->len;
		}
		stor_read_release(rd);
	}
}

/* dp_resp_free_fn of a zero-copy response: the transport is done with its bytes. */
static void
fetch_zc_free(void *arg, void *buf)
{
	struct fetch_zc *z = arg;
	struct resp_buf rb = z->rb;

	(void)buf;
	for (uint32_t k = 0; k < z->n_reads; k++)
		stor_read_release(&z->reads[k]); /* no-op for reads detached already */
	fetch_zc_unhold(z);
	if (z->prev != NULL)
		z->prev->next = z->next;
	else
		g_zc = z->next;
	if (z->next != NULL)
		z->next->prev = z->prev;
	g_zc_count--;
	rb.free_fn(rb.free_arg, rb.p);
}

void
dp_fetch_zc_detach_log(const struct stor_log *log)
{
	/* Only this lcore's logs are read in place (other writers' reads are copies). */
	if (g_zc == NULL || rte_lcore_id() != g_zc_lcore)
		return;
	for (struct fetch_zc *z = g_zc; z != NULL; z = z->next)
		fetch_zc_detach_one(z, log);
}

void
dp_fetch_zc_detach(void)
{
	dp_fetch_zc_detach_log(NULL);
}

uint32_t
dp_fetch_zc_outstanding(void)
{
	return g_zc_count;
}

/*
 * Encode and send a Fetch response zero-copy (above). Consumes @rb and the
 * @n_reads completed @reads (their references move to the response or are
 * dropped here); @fa, when the reads used its area, is held until the
 * response is freed. Falls back to dp_req_reply_buf() (records copied into
 * the buffer) when the descriptor does not fit the buffer.
 */
static void fetch_chains_trim(struct kp_fetch_response *resp, const struct stor_read *reads,
	uint32_t n_reads, bool restore);
static void fetch_chains_metrics(struct kp_fetch_response *resp, const struct stor_read *reads,
	uint32_t n_reads);

static int
fetch_reply(struct dp_conn *conn, uint64_t req, const struct kp_request_header *h,
	const struct resp_buf *rb, struct kp_fetch_response *resp, struct stor_read *reads,
	uint32_t n_reads, struct fetch_async *fa)
{
	const struct kp_api_desc *d = kp_api_lookup(h->request_api_key);
	uint8_t *end = rb->p + rb->cap;
	struct fetch_zc *z = (struct fetch_zc *)(void *)rb->p;
	struct stor_read *keep = (struct stor_read *)(void *)(z + 1);
	struct dp_seg *segs = (struct dp_seg *)(void *)(keep + n_reads);
	struct kp_wr_ref *refs = (struct kp_wr_ref *)(void *)(segs + 2 * (size_t)n_reads + 1);
	uint8_t *out = (uint8_t *)(refs + n_reads);
	uint8_t *spare;
	struct kp_response_header rh;
	struct kp_writer w;
	bool use_fa = false;
	uint32_t n_segs = 0;
	uint32_t k = 0;
	size_t pos = 0;
	size_t body;
	size_t total;
	int rc;

	if (d == NULL || out + 64 > end)
		goto copy;
	kp_response_header_init(&rh);
	rh.correlation_id = h->correlation_id;
	kp_writer_init(&w, out + 4, (size_t)(end - out - 4));
	kp_writer_set_refs(&w, refs, n_reads);
	rc = kp_response_header_encode(&rh,
		kp_api_response_header_version(d, h->request_api_version), &w);
	if (rc == 0)
		rc = d->response.encode(resp, h->request_api_version, &w);
	if (rc < 0)
		goto copy;
	body = kp_writer_len(&w);
	total = body + w.ref_bytes;
	if (total > INT32_MAX)
		goto copy;
	spare = out + 4 + body;
	for (uint32_t i = 0; i < w.n_refs; i++) {
		const struct kp_wr_ref *r = &refs[i];

		if (4 + r->off > pos)
			segs[n_segs++] = (struct dp_seg){out + pos,
				(uint32_t)(4 + r->off - pos), 0};
		pos = 4 + r->off;
		/* Records come from the reads in response order. */
		while (k < n_reads && reads[k].data != r->ptr)
			k++;
		if (k < n_reads && reads[k].from_cache) {
			/* One segment per cache read: a partition's chained reads follow its first. */
			size_t left = r->len;
			uint32_t j = k;

			do {
				uint32_t n = (uint32_t)(reads[j].len < left ? reads[j].len : left);

				segs[n_segs++] = (struct dp_seg){reads[j].data, n,
					DP_SEG_RECORDS | DP_SEG_BORROWED};
				left -= n;
				j++;
			} while (left > 0 && j < n_reads && reads[j].buf == NULL);
			if (left > 0)
				goto copy; /* not expected: the records field is the reads' sum */
		} else if (fa != NULL && r->ptr >= fa->area && r->ptr + r->len <= fa->area +
			FETCH_ASYNC_AREA) {
			segs[n_segs++] = (struct dp_seg){r->ptr, (uint32_t)r->len, DP_SEG_RECORDS};
			use_fa = true;
		} else {
			if ((size_t)(end - spare) < r->len)
				goto copy;
			memcpy(spare, r->ptr, r->len);
			segs[n_segs++] = (struct dp_seg){spare, (uint32_t)r->len, DP_SEG_RECORDS};
			spare += r->len;
		}
	}
	if (4 + body > pos)
		segs[n_segs++] = (struct dp_seg){out + pos, (uint32_t)(4 + body - pos), 0};
	out[0] = (uint8_t)(total >> 24);
	out[1] = (uint8_t)(total >> 16);
	out[2] = (uint8_t)(total >> 8);
	out[3] = (uint8_t)total;
	/* Completed reads may move: nothing refers to them but their owner. */
	if (n_reads > 0)
		memcpy(keep, reads, sizeof(*reads) * n_reads);
	*z = (struct fetch_zc){.rb = *rb, .fa = use_fa ? fa : NULL, .reads = keep,
		.n_reads = n_reads, .spare = spare, .end = end,
		.sg = {.segs = segs, .n = n_segs, .len = (uint32_t)(total + 4)}};
	if (use_fa)
		fa->held = true;
	z->next = g_zc;
	if (g_zc != NULL)
		g_zc->prev = z;
	g_zc = z;
	g_zc_count++;
	g_zc_lcore = rte_lcore_id();
	fetch_chains_metrics(resp, reads, n_reads);
	return dp_conn_reply_sg(conn, req, &z->sg, fetch_zc_free, z);
copy:
	/* A copy is contiguous: chained partitions answer their first read's bytes only. */
	fetch_chains_trim(resp, reads, n_reads, false);
	rc = dp_req_reply_buf(conn, req, h, rb, resp);
	for (uint32_t j = 0; j < n_reads; j++)
		stor_read_release(&reads[j]);
	return rc;
}

static bool fetch_waiter_repark(struct fetch_waiter *w, int64_t found, int32_t min_bytes,
	uint64_t append_seq);
static void fetch_waiter_done(struct fetch_waiter *w);
static void fetch_waiter_wakeup_count(const struct fetch_waiter *w);

/* Record bytes of a response. */
static int64_t
fetch_resp_bytes(const struct kp_fetch_response *resp)
{
	int64_t n = 0;

	for (int32_t t = 0; t < resp->responses.count; t++) {
		const struct kp_fetch_response_fetchable_topic_response *rt =
			&resp->responses.items[t];

		for (int32_t p = 0; p < rt->partitions.count; p++)
			n += rt->partitions.items[p].records.len > 0 ?
				rt->partitions.items[p].records.len : 0;
	}
	return n;
}

static void
fetch_async_finish(struct fetch_async *fa)
{
	struct fetch_waiter *w = fa->waiter;

	fa->used = false;
	fa->waiter = NULL;
	if (!fa->failed && w != NULL && fa->wait_bytes > 0 &&
		fetch_waiter_repark(w, fetch_resp_bytes(&fa->resp), fa->wait_bytes, fa->append_seq)) {
		/* Too few bytes after all: waits again for appends or its deadline. */
		fa->rb.free_fn(fa->rb.free_arg, fa->rb.p);
		for (uint32_t k = 0; k < fa->n_reads; k++)
			stor_read_release(&fa->reads[k]);
		return;
	}
	if (!fa->failed) {
		fetch_reply(fa->conn, fa->req, &fa->h, &fa->rb, &fa->resp, fa->reads, fa->n_reads,
			fa);
		if (w != NULL)
			fetch_waiter_wakeup_count(w);
	} else {
		fa->rb.free_fn(fa->rb.free_arg, fa->rb.p);
		for (uint32_t k = 0; k < fa->n_reads; k++)
			stor_read_release(&fa->reads[k]);
	}
	if (w != NULL)
		fetch_waiter_done(w); /* after the reply: the response borrowed its body */
}

static void
fetch_slot_done(void *arg, struct stor_read *rd, int rc)
{
	struct fetch_slot *sl = arg;
	struct fetch_async *fa = sl->fa;

	if (rc < 0)
		sl->pd->error_code = KP_ERR_KAFKA_STORAGE_ERROR;
	else if (rd->len <= sl->max)
		sl->pd->records = (struct kp_bytes){.ptr = rd->data, .len = (int32_t)rd->len};
	if (--fa->pending == 0)
		fetch_async_finish(fa);
}

/*
 * Several writers: a partition owned by a writer on another lcore is read
 * there (remote_read_run, a reactor message) into this fetch's read area;
 * a tail-cache hit is copied into that area on the owner, which then drops
 * its references (chunk, segment), so writer 0 never touches another
 * engine's cache. The result comes back by message (remote_read_back) and
 * completes the slot like a disk read. Reads whose owner has not released
 * them yet are counted (dp_fetch_drain waits for them before logs close).
 */
static uint32_t g_remote_inflight; /* atomic: sent, not yet released by the owner */
static struct dp_broker *g_fetch_b;

/* On writer 0's lcore: the owner's answer. */
static void
remote_read_back(void *arg)
{
	struct fetch_slot *sl = arg;
	struct fetch_async *fa = sl->fa;

	sl->fa->remote--;
	if (sl->rc == -ENXIO) {
		sl->pd->error_code = KP_ERR_OFFSET_OUT_OF_RANGE;
	} else if (sl->rc == -ENOBUFS) {
		/* a first batch above the read area: answered without records */
	} else if (sl->rc < 0) {
		sl->pd->error_code = KP_ERR_KAFKA_STORAGE_ERROR;
	} else if (sl->rd->len <= sl->max) {
		sl->pd->records = (struct kp_bytes){.ptr = sl->rd->data,
			.len = (int32_t)sl->rd->len};
		/* The read may have seen appends the published offsets did not yet show. */
		if (sl->hw > sl->pd->high_watermark) {
			sl->pd->high_watermark = sl->hw;
			sl->pd->last_stable_offset = sl->hw;
		}
		sl->pd->log_start_offset = sl->start;
	}
	if (--fa->pending == 0)
		fetch_async_finish(fa);
}

/* On the owner: keep the bytes in the caller's buffer, drop the references, answer. */
static void
remote_read_complete(struct fetch_slot *sl, int rc, bool release)
{
	struct stor_read *rd = sl->rd;
	const uint8_t *data = rd->data;
	size_t len = rd->len;

	if (rc == 0 && len > 0 && rd->from_cache) {
		if (len > rd->buf_size) {
			rc = -ENOBUFS;
		} else {
			memcpy(rd->buf, data, len);
			data = rd->buf;
		}
	}
	sl->hw = stor_log_written_offset(sl->log);
	sl->start = stor_log_start_offset(sl->log);
	if (release)
		stor_read_release(rd);
	rd->data = rc == 0 ? data : NULL;
	rd->len = rc == 0 ? len : 0;
	rd->from_cache = 0;
	sl->rc = rc;
	__atomic_fetch_sub(&g_remote_inflight, 1, __ATOMIC_RELEASE);
	(void)dp_broker_post(g_fetch_b->writers[0].lcore, remote_read_back, sl);
}

static void
remote_read_done(void *arg, struct stor_read *rd, int rc)
{
	(void)rd;
	remote_read_complete(arg, rc, true);
}

/* On the owner's lcore. */
static void
remote_read_run(void *arg)
{
	struct fetch_slot *sl = arg;
	int rc;

	if (sl->log == NULL) { /* not expected: closed meanwhile */
		sl->rd->data = NULL;
		sl->rd->len = 0;
		sl->rc = -EIO;
		__atomic_fetch_sub(&g_remote_inflight, 1, __ATOMIC_RELEASE);
		(void)dp_broker_post(g_fetch_b->writers[0].lcore, remote_read_back, sl);
		return;
	}
	rc = stor_log_read(sl->log, sl->rd, sl->offset, sl->max_bytes, remote_read_done, sl);
	if (rc != -EINPROGRESS)
		remote_read_complete(sl, rc, rc == 0); /* an error holds nothing to release */
}

/* The synchronous form, on the owner (dp_broker_exec): no asynchronous context was free. */
struct remote_sync {
	struct dp_broker *b;
	unsigned writer;
	struct fetch_slot sl;
	bool done;
};

static void
remote_sync_done(void *arg, struct stor_read *rd, int rc)
{
	struct remote_sync *rs = arg;

	(void)rd;
	rs->sl.rc = rc;
	rs->done = true;
}

static int
remote_sync_run(void *arg)
{
	struct remote_sync *rs = arg;
	struct fetch_slot *sl = &rs->sl;
	int rc = stor_log_read(sl->log, sl->rd, sl->offset, sl->max_bytes, remote_sync_done, rs);
	bool release = rc == 0 || rc == -EINPROGRESS;

	if (rc == -EINPROGRESS) {
		while (!rs->done)
			stor_engine_poll(rs->b->writers[rs->writer].engine);
		rc = sl->rc;
	}
	if (rc == 0 && sl->rd->len > 0 && sl->rd->from_cache) {
		if (sl->rd->len > sl->rd->buf_size) {
			rc = -ENOBUFS;
		} else {
			memcpy(sl->rd->buf, sl->rd->data, sl->rd->len);
			sl->rd->data = sl->rd->buf;
		}
	}
	sl->hw = stor_log_written_offset(sl->log);
	sl->start = stor_log_start_offset(sl->log);
	if (release) {
		const uint8_t *data = sl->rd->data;
		size_t len = sl->rd->len;

		stor_read_release(sl->rd);
		sl->rd->data = data;
		sl->rd->len = len;
	}
	sl->rd->from_cache = 0;
	return rc;
}

/* fetch_read() of a partition whose owner is on another lcore. */
static int
fetch_read_remote(struct dp_requests *q, struct fetch_async *fa,
	struct kp_fetch_response_partition_data *pd, struct dp_partition *pp, struct stor_read *rd,
	int64_t offset, size_t max, bool first, size_t need, uint8_t **area, size_t *area_left)
{
	struct fetch_slot *sl;
	int rc;

	memset(rd, 0, sizeof(*rd));
	rd->buf = *area;
	rd->buf_size = need;
	if (fa == NULL) {
		struct remote_sync rs = {.b = q->b, .writer = pp->writer};

		rs.sl = (struct fetch_slot){.pd = pd, .max = first ? SIZE_MAX : max, .log = pp->log,
			.rd = rd, .offset = offset, .max_bytes = max};
		rc = dp_broker_exec(q->b, pp->writer, remote_sync_run, &rs);
		if (rc < 0)
			return rc;
		if (!first && rd->len > max)
			return -ENOBUFS;
		*area += need;
		*area_left -= need;
		if (rs.sl.hw > pd->high_watermark) {
			pd->high_watermark = rs.sl.hw;
			pd->last_stable_offset = rs.sl.hw;
		}
		pd->records = (struct kp_bytes){.ptr = rd->data, .len = (int32_t)rd->len};
		return 0;
	}
	sl = kp_arena_alloc(&fa->arena, sizeof(*sl), 8);
	if (sl == NULL)
		return -ENOBUFS;
	*sl = (struct fetch_slot){.fa = fa, .pd = pd, .max = first ? SIZE_MAX : max,
		.log = pp->log, .rd = rd, .offset = offset, .max_bytes = max};
	__atomic_fetch_add(&g_remote_inflight, 1, __ATOMIC_RELAXED);
	if (dp_msg_send(q->b->writers[pp->writer].lcore, remote_read_run, sl) != 0) {
		__atomic_fetch_sub(&g_remote_inflight, 1, __ATOMIC_RELAXED);
		return -ENOBUFS; /* ring full: no records for it this time */
	}
	fa->pending++;
	fa->remote++;
	*area += need;
	*area_left -= need;
	return 1;
}

/*
 * Read up to @max bytes at @offset into @pd's records. With @fa, a disk
 * read completes later (returns 1; fetch_slot_done() fills @pd); without,
 * it is waited for here by polling the engine (the reactor stalls for it).
 * The log returns at least one whole batch even above @max (KIP-74); only
 * the first records of a response (@first) may do that, as in Kafka: a
 * later partition whose first batch is above @max answers no records, so
 * the response keeps within its buffer.
 */
static int
fetch_read(struct dp_requests *q, struct fetch_async *fa,
	struct kp_fetch_response_partition_data *pd, struct dp_partition *pp, struct stor_read *rd,
	int64_t offset, size_t max, bool first, uint8_t **area, size_t *area_left)
{
	struct stor_log *log = pp->log;
	size_t need = stor_read_buf_size(max);
	struct read_wait w = {false, 0};
	struct fetch_slot *sl = NULL;
	int rc;

	need = (need + 4095) & ~(size_t)4095;
	/*
	 * Zero-copy budgets reach max_bytes: ask for what the area left can hold
	 * (a tail-cache hit uses none of it, a disk read fills it).
	 */
	while (need > *area_left && max > 4096) {
		max = need - *area_left < max - 4096 ? max - (need - *area_left) : 4096;
		need = (stor_read_buf_size(max) + 4095) & ~(size_t)4095;
	}
	if (need > *area_left)
		return -ENOBUFS;
	if (!dp_broker_writer_local(q->b, pp->writer))
		return fetch_read_remote(q, fa, pd, pp, rd, offset, max, first, need, area,
			area_left);
	if (fa != NULL) {
		sl = kp_arena_alloc(&fa->arena, sizeof(*sl), 8);
		if (sl == NULL)
			return -ENOBUFS;
		sl->fa = fa;
		sl->pd = pd;
		sl->max = first ? SIZE_MAX : max;
	}
	memset(rd, 0, sizeof(*rd));
	rd->buf = *area;
	rd->buf_size = need;
	rc = stor_log_read(log, rd, offset, max, sl != NULL ? fetch_slot_done : read_done,
		sl != NULL ? (void *)sl : (void *)&w);
	if (rc == -EINPROGRESS && fa != NULL) {
		fa->pending++;
		*area += need;
		*area_left -= need;
		return 1;
	}
	if (rc == -EINPROGRESS) {
		while (!w.done)
			stor_engine_poll(q->b->writers[pp->writer].engine);
		rc = w.rc;
		if (rc < 0) {
			stor_read_release(rd);
			return rc;
		}
	} else if (rc < 0) {
		return rc;
	}
	if (!first && rd->len > max) {
		stor_read_release(rd);
		return -ENOBUFS;
	}
	if (!rd->from_cache) {
		*area += need;
		*area_left -= need;
	}
	pd->records = (struct kp_bytes){.ptr = rd->data, .len = (int32_t)rd->len};
	return 0;
}

/*
 * A tail-cache read returns the batches of one chunk; Kafka returns up to
 * partition_max_bytes from a segment. So after a cache hit (the last of
 * @reads, @n_reads of them, room for @cap) the partition reads on from the
 * cache, chunk after chunk, within its share @max and the response's
 * @budget and @room: each further read is one more record segment sent by
 * reference right behind the first (fetch_reply), and @pd's records span
 * them all (ptr: the first read's bytes; len: the sum). Only fetch_reply,
 * fetch_chains_trim and fetch_chains_metrics look past the first read: a
 * chained read is told from a first one by its NULL buf. Cache hits only: a
 * read with no buffer is refused before any disk read is queued (-EINVAL),
 * so nothing waits here; a batch above what is left stays for the next
 * Fetch (KIP-74's "at least one batch" holds for the first read only).
 * @return the reads added.
 */
static uint32_t
fetch_read_more(struct dp_partition *pp, struct kp_fetch_response_partition_data *pd,
	struct stor_read *reads, uint32_t n_reads, uint32_t cap, size_t max, int64_t *budget,
	int64_t *room, bool copies)
{
	const struct stor_read *first = &reads[n_reads - 1];
	size_t total = first->len;
	int64_t next = first->next_offset;
	uint32_t n = 0;

	while (n_reads + n < cap && total < max && *budget > 0 &&
		*room >= (int64_t)FETCH_ZC_PER_READ) {
		struct stor_read *rd = &reads[n_reads + n];
		size_t want = max - total;
		int rc;

		if ((int64_t)want > *budget)
			want = (size_t)*budget;
		memset(rd, 0, sizeof(*rd)); /* buf NULL: from the cache or not at all */
		rc = stor_log_read(pp->log, rd, next, want, NULL, NULL);
		if (rc != 0)
			break; /* not in the cache (-EINVAL), or out of range */
		if (rd->len == 0 || !rd->from_cache || rd->len > want) {
			stor_read_release(rd);
			break;
		}
		total += rd->len;
		next = rd->next_offset;
		*budget -= (int64_t)rd->len;
		*room -= (int64_t)FETCH_ZC_PER_READ;
		if (copies)
			*budget -= (int64_t)FETCH_ZC_PER_READ;
		n++;
	}
	pd->records.len = (int32_t)total;
	return n;
}

/*
 * Walk @resp's partitions with records alongside @reads (both in response
 * order) and call @fn for each partition whose records span chained reads
 * (@k its first read, @end one past its last).
 */
static void
fetch_chains_each(struct kp_fetch_response *resp, const struct stor_read *reads,
	uint32_t n_reads, void (*fn)(void *arg, struct kp_str topic,
		const struct kp_fetch_response_fetchable_topic_response *rt,
		struct kp_fetch_response_partition_data *pd, uint32_t k, uint32_t end),
	void *arg)
{
	uint32_t k = 0;

	for (int32_t t = 0; t < resp->responses.count; t++) {
		struct kp_fetch_response_fetchable_topic_response *rt = &resp->responses.items[t];

		for (int32_t p = 0; p < rt->partitions.count; p++) {
			struct kp_fetch_response_partition_data *pd = &rt->partitions.items[p];
			uint32_t end;

			if (pd->records.len <= 0 || pd->records.ptr == NULL)
				continue;
			while (k < n_reads && (reads[k].data != pd->records.ptr || reads[k].buf == NULL))
				k++;
			if (k == n_reads)
				return;
			for (end = k + 1; end < n_reads && reads[end].buf == NULL; end++)
				;
			if (end > k + 1)
				fn(arg, rt->topic, rt, pd, k, end);
			k = end;
		}
	}
}

struct chains_ctx {
	const struct stor_read *reads;
	bool restore;
};

static void
chain_trim_one(void *arg, struct kp_str topic,
	const struct kp_fetch_response_fetchable_topic_response *rt,
	struct kp_fetch_response_partition_data *pd, uint32_t k, uint32_t end)
{
	struct chains_ctx *cx = arg;
	size_t len = cx->reads[k].len;

	(void)topic;
	(void)rt;
	for (uint32_t j = k + 1; cx->restore && j < end; j++)
		len += cx->reads[j].len;
	pd->records.len = (int32_t)len;
}

/*
 * Set each chained partition's records to its first read only (@restore
 * false), or back to all its reads (true). With a reference to a chained
 * read still held, a trimmed partition's next chunks are simply sent again
 * by the consumer's next Fetch.
 */
static void
fetch_chains_trim(struct kp_fetch_response *resp, const struct stor_read *reads,
	uint32_t n_reads, bool restore)
{
	struct chains_ctx cx = {.reads = reads, .restore = restore};

	fetch_chains_each(resp, reads, n_reads, chain_trim_one, &cx);
}

static void
chain_count_one(void *arg, struct kp_str topic,
	const struct kp_fetch_response_fetchable_topic_response *rt,
	struct kp_fetch_response_partition_data *pd, uint32_t k, uint32_t end)
{
	struct chains_ctx *cx = arg;

	if (topic.len <= 0) { /* v13+: by id */
		struct dp_topic *dt = dp_req_topic_by_id(g_fetch_b, &rt->topic_id);

		if (dt == NULL)
			return;
		topic.ptr = dt->name;
		topic.len = (int32_t)strlen(dt->name);
	}
	for (uint32_t j = k + 1; j < end; j++)
		dp_metrics_batches(false, topic.ptr, (size_t)topic.len, pd->partition_index,
			cx->reads[j].data, cx->reads[j].len, pd->high_watermark);
}

/*
 * dp_req_fetch_metrics() walks a partition's records as one buffer: chained
 * partitions are counted with their first read there and their other reads
 * here, read by read.
 */
static void
fetch_chains_metrics(struct kp_fetch_response *resp, const struct stor_read *reads,
	uint32_t n_reads)
{
	struct chains_ctx cx = {.reads = reads, .restore = false};

	fetch_chains_each(resp, reads, n_reads, chain_count_one, &cx);
	fetch_chains_trim(resp, reads, n_reads, false);
	dp_req_fetch_metrics(resp);
	fetch_chains_trim(resp, reads, n_reads, true);
}

/*
 * Fetch sessions (KIP-227, Fetch v7+): how a request relates to the cache,
 * resolved once when it first runs (a parked fetch keeps the outcome).
 */
enum fetch_mode {
	FETCH_MODE_NEW = 0,      /* not resolved yet */
	FETCH_MODE_SESSIONLESS,  /* v0-6, id 0 and epoch -1, a close, or an emptied session */
	FETCH_MODE_FULL,         /* epoch 0: answered in full, then a session is created */
	FETCH_MODE_INCREMENTAL,  /* the session's partitions; only changed ones answered */
};

/* Slots: max.incremental.fetch.session.cache.slots; partition entries per slot on average. */
#define FETCH_SESSION_PARTS_PER_SLOT 8u
#define FETCH_SESSION_PARTS_MIN 1024u
#define FETCH_SESSION_PARTS_MAX 65536u

static struct dp_fetch_session_cache *g_sessions;

static uint64_t
now_ms(void)
{
	uint64_t per_ms = rte_get_tsc_hz() / 1000;

	return rte_rdtsc() / (per_ms > 0 ? per_ms : 1);
}

/* One partition to read, from the request or from a session. */
struct fetch_item {
	uint32_t group;          /* response topic: the request topic, or a run of a session's */
	struct kp_str topic;     /* v0-12 name (borrowed from the request or copied to the arena) */
	struct kp_uuid topic_id; /* v13+ */
	int32_t partition;
	int64_t fetch_offset;
	int32_t max_bytes;
	struct dp_fetch_session_part *sp; /* incremental: the session's entry */
	bool has_records;        /* answered with records (or a disk read in flight) */
};

static struct dp_topic *
fetch_item_topic(struct dp_broker *b, int16_t v, const struct fetch_item *it)
{
	if (v >= 13)
		return dp_req_topic_by_id(b, &it->topic_id);
	return dp_broker_topic_find(b, it->topic.ptr, (size_t)it->topic.len);
}

static bool
fetch_privileged(int16_t v, const struct kp_fetch_request *m)
{
	return (v >= 15 ? m->replica_state.replica_id : m->replica_id) >= 0;
}

/*
 * Resolve the request's session (KafkaApis/FetchManager.newContext): a full
 * fetch closes the session it names; an incremental one is checked against
 * the session's epoch and topic-id use, then its partitions are added or
 * updated and its forgotten ones removed, and the epoch moves on. Runs once
 * per request (*@mode is FETCH_MODE_NEW the first time).
 * @return 0 with *@mode and *@sp set, or a Kafka error code for the
 *         top-level error of a response without partitions.
 */
static int16_t
fetch_session_resolve(int16_t v, const struct kp_fetch_request *m, enum fetch_mode *mode,
	struct dp_fetch_session **sp)
{
	struct dp_fetch_session *s;
	bool first = *mode == FETCH_MODE_NEW;

	*sp = NULL;
	if (v < 7) {
		*mode = FETCH_MODE_SESSIONLESS;
		return 0;
	}
	if (m->session_epoch == DP_FETCH_SESSION_INITIAL_EPOCH ||
		m->session_epoch == DP_FETCH_SESSION_FINAL_EPOCH) {
		if (first && m->session_id != DP_FETCH_SESSION_INVALID_ID && g_sessions != NULL) {
			s = dp_fetch_session_find(g_sessions, m->session_id);
			if (s != NULL)
				dp_fetch_session_remove(g_sessions, s);
		}
		*mode = m->session_epoch == DP_FETCH_SESSION_FINAL_EPOCH ? FETCH_MODE_SESSIONLESS :
									     FETCH_MODE_FULL;
		return 0;
	}
	if (g_sessions == NULL) /* max.incremental.fetch.session.cache.slots=0 */
		return KP_ERR_FETCH_SESSION_ID_NOT_FOUND;
	if (!first) {
		if (*mode != FETCH_MODE_INCREMENTAL)
			return 0;
		/* Parked: the session was updated then; it must still be there, unchanged. */
		s = dp_fetch_session_find(g_sessions, m->session_id);
		if (s == NULL)
			return KP_ERR_FETCH_SESSION_ID_NOT_FOUND;
		if (s->epoch != dp_fetch_session_next_epoch(m->session_epoch))
			return KP_ERR_INVALID_FETCH_SESSION_EPOCH;
		*sp = s;
		return 0;
	}
	s = dp_fetch_session_find(g_sessions, m->session_id);
	if (s == NULL)
		return KP_ERR_FETCH_SESSION_ID_NOT_FOUND;
	if (s->epoch != m->session_epoch)
		return KP_ERR_INVALID_FETCH_SESSION_EPOCH;
	if (s->topic_ids != (v >= 13))
		return KP_ERR_FETCH_SESSION_TOPIC_ID_ERROR;
	for (int32_t i = 0; i < m->topics.count; i++) {
		const struct kp_fetch_request_fetch_topic *ft = &m->topics.items[i];

		for (int32_t j = 0; j < ft->partitions.count; j++) {
			const struct kp_fetch_request_fetch_partition *fp =
				&ft->partitions.items[j];
			int rc = dp_fetch_session_part_upsert(g_sessions, s, &ft->topic_id,
				ft->topic.ptr, ft->topic.len > 0 ? (size_t)ft->topic.len : 0,
				fp->partition, fp->fetch_offset, fp->partition_max_bytes, NULL);

			if (rc < 0) {
				/*
				 * No partition entry left (or a name longer than Kafka allows):
				 * the session is dropped; the client's next full fetch gets
				 * a session if entries are free again, else fetches
				 * sessionless.
				 */
				dp_log(DP_LOG_WARN, "fetch session %" PRId32 " dropped: %s",
					s->id, rc == -ENOSPC ? "no partition entry left" :
							       "topic name too long");
				dp_fetch_session_remove(g_sessions, s);
				return KP_ERR_FETCH_SESSION_ID_NOT_FOUND;
			}
		}
	}
	for (int32_t i = 0; i < m->forgotten_topics_data.count; i++) {
		const struct kp_fetch_request_forgotten_topic *ft =
			&m->forgotten_topics_data.items[i];

		for (int32_t j = 0; j < ft->partitions.count; j++)
			dp_fetch_session_part_forget(g_sessions, s, &ft->topic_id, ft->topic.ptr,
				ft->topic.len > 0 ? (size_t)ft->topic.len : 0,
				ft->partitions.items[j]);
	}
	if (s->size == 0) {
		/* Kafka closes an emptied session and answers without one. */
		dp_fetch_session_remove(g_sessions, s);
		*mode = FETCH_MODE_SESSIONLESS;
		return 0;
	}
	dp_fetch_session_touch(s, now_ms());
	s->epoch = dp_fetch_session_next_epoch(s->epoch);
	*mode = FETCH_MODE_INCREMENTAL;
	*sp = s;
	return 0;
}

/* The request's partitions as items (NULL: arena full). */
static struct fetch_item *
fetch_items_request(const struct kp_fetch_request *m, struct kp_arena *a, uint32_t *n)
{
	struct fetch_item *items;
	uint32_t k = 0;

	for (int32_t i = 0; i < m->topics.count; i++)
		k += m->topics.items[i].partitions.count > 0 ?
			(uint32_t)m->topics.items[i].partitions.count : 0;
	items = kp_arena_alloc(a, sizeof(*items) * (k > 0 ? k : 1), 8);
	if (items == NULL)
		return NULL;
	k = 0;
	for (int32_t i = 0; i < m->topics.count; i++) {
		const struct kp_fetch_request_fetch_topic *ft = &m->topics.items[i];

		for (int32_t j = 0; j < ft->partitions.count; j++) {
			const struct kp_fetch_request_fetch_partition *fp =
				&ft->partitions.items[j];

			items[k] = (struct fetch_item){.group = (uint32_t)i, .topic = ft->topic,
				.topic_id = ft->topic_id, .partition = fp->partition,
				.fetch_offset = fp->fetch_offset,
				.max_bytes = fp->partition_max_bytes};
			k++;
		}
	}
	*n = k;
	return items;
}

/*
 * A session's partitions as items, in the session's order, a new group at
 * each change of topic; names are copied into @a (the session may change
 * before an asynchronous response is encoded). NULL: arena full.
 */
static struct fetch_item *
fetch_items_session(struct dp_fetch_session *s, struct kp_arena *a, uint32_t *n,
	uint32_t *n_groups)
{
	struct fetch_item *items = kp_arena_alloc(a, sizeof(*items) * (s->size > 0 ? s->size : 1),
		8);
	struct dp_fetch_session_part *p;
	uint32_t k = 0;
	uint32_t g = 0;

	if (items == NULL)
		return NULL;
	for (p = dp_fetch_session_part_at(g_sessions, s->head); p != NULL;
		p = dp_fetch_session_part_at(g_sessions, p->next)) {
		struct fetch_item *it = &items[k];
		bool same = false;

		if (k > 0) {
			const struct fetch_item *prev = &items[k - 1];

			if (s->topic_ids)
				same = memcmp(prev->topic_id.b, p->topic_id.b, 16) == 0;
			else
				same = prev->topic.len == p->name_len &&
					memcmp(prev->topic.ptr, p->name, p->name_len) == 0;
		}
		if (k > 0 && !same)
			g++;
		memset(it, 0, sizeof(*it));
		it->group = g;
		if (same) {
			it->topic = items[k - 1].topic;
		} else if (!s->topic_ids) {
			char *name = kp_arena_alloc(a, p->name_len > 0 ? p->name_len : 1, 1);

			if (name == NULL)
				return NULL;
			memcpy(name, p->name, p->name_len);
			it->topic = (struct kp_str){.ptr = name, .len = p->name_len};
		} else {
			it->topic = dp_req_str_null();
		}
		it->topic_id = p->topic_id;
		it->partition = p->partition;
		it->fetch_offset = p->fetch_offset;
		it->max_bytes = p->max_bytes;
		it->sp = p;
		k++;
	}
	*n = k;
	*n_groups = k > 0 ? g + 1 : 0;
	return items;
}

/*
 * What a parked fetch waits on: the logs it read and their high watermarks
 * then. An append wakes only the fetches watching its log (see
 * dp_requests_poll); a fetch of more partitions than this wakes on any.
 */
#define FETCH_WATCH 16

struct fetch_watch {
	uint32_t n;     /* entries used; FETCH_WATCH + 1: too many, any append wakes it */
	bool retry;     /* its last run found no response buffer: run it at the next poll */
	struct {
		struct dp_partition *pp; /* valid while parked: dp_fetch_drain() clears the list */
		int64_t hw;
	} e[FETCH_WATCH];
};

/* Whether an append may have given @wt's fetch something new. */
static bool
fetch_watch_hit(const struct fetch_watch *wt)
{
	if (wt->retry || wt->n > FETCH_WATCH)
		return true;
	for (uint32_t i = 0; i < wt->n; i++) {
		if (dp_part_written(g_fetch_b, wt->e[i].pp) != wt->e[i].hw)
			return true;
	}
	return false;
}

/*
 * Long poll: a Fetch that found less than min_bytes is parked with a copy of
 * its header and body and run again when an append completes (any
 * partition: a first cut, see dp_requests_poll) or at max_wait_ms.
 */
#define FETCH_WAITERS 256
#define FETCH_WAIT_BODY 4096 /* larger fetch requests are answered without waiting */

struct fetch_waiter {
	bool inflight; /* its run waits for reads (fetch_async): the body is borrowed */
	struct dp_conn *conn;
	uint64_t req;
	uint64_t deadline_tsc;
	uint64_t woken_tsc; /* this run: the append completion that woke it; 0: not woken so */
	uint16_t pos;       /* its index in g_parked while in use */
	enum fetch_mode mode; /* its session outcome, resolved at the first run */
	struct fetch_watch watch;
	struct kp_request_header h;
	uint32_t len;
	uint8_t body[FETCH_WAIT_BODY];
};

static struct fetch_waiter g_waiters[FETCH_WAITERS];
/*
 * The slots in use (parked, or waiting for their reads), dense: g_parked[0,
 * g_n_waiting); the free ones a stack, g_free[0, g_n_free). Every reactor
 * iteration walks the slots in use while one is: walking all 256 (4 KiB
 * apart, some 270 pages) cost 11% of the broker's cycles at the e2e row's
 * load, where the consumer's Fetch is parked most of the time.
 */
static uint16_t g_parked[FETCH_WAITERS];
static unsigned g_n_waiting;
static uint16_t g_free[FETCH_WAITERS];
static unsigned g_n_free;

/*
 * Serve a Fetch. With @may_wait, a fetch that found fewer than min_bytes
 * and allows waiting (max_wait_ms > 0) answers nothing and returns 1, with
 * @wt's watch (@wt non-NULL then) listing the logs it read: the caller parks
 * it and runs it again on an append to one of them or at its deadline.
 * Reads that complete later (disk, other writers' partitions) count as
 * enough bytes here; with @wt the fetch returns FETCH_INFLIGHT and @wt stays
 * taken until they complete: the caller keeps the request body in @wt (the
 * response borrows from it) and fetch_async_finish() answers, or parks it
 * again when they brought fewer than min_bytes (sessionless fetches only:
 * a session has recorded what the response sent). *@mode: the request's
 * session outcome (FETCH_MODE_NEW before the first run; kept by the caller
 * for the next runs of a parked fetch).
 */
static int fetch_run_ctx(struct dp_requests *q, struct fetch_async *fa, struct dp_conn *conn,
	uint64_t req, const struct kp_request_header *h, struct kp_reader *r,
	struct fetch_waiter *wt, bool may_wait, enum fetch_mode *mode);

/* fetch_run(): every asynchronous context is busy; the caller parks the fetch and retries. */
#define FETCH_DEFERRED 2
/* fetch_run(): answered when its reads complete; its waiter slot stays taken until then. */
#define FETCH_INFLIGHT 3

/*
 * fetch_run_ctx() with a free asynchronous context. With none free and
 * @watch (the caller can park it), nothing is done and FETCH_DEFERRED
 * returned, so a disk read never stalls the reactor; without @watch the
 * disk reads are waited for in the handler.
 */
static int
fetch_run(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r, struct fetch_waiter *wt,
	bool may_wait, enum fetch_mode *mode)
{
	struct fetch_async *fa = NULL;

	for (int i = 0; i < FETCH_ASYNC_COUNT && fa == NULL; i++) {
		if (!g_fa[i].used && !g_fa[i].held)
			fa = &g_fa[i];
	}
	if (fa == NULL && wt != NULL)
		return FETCH_DEFERRED;
	return fetch_run_ctx(q, fa, conn, req, h, r, wt, may_wait, mode);
}

/* A full fetch was answered: cache its partitions and what was sent. @return its id or 0. */
static int32_t
fetch_session_create(int16_t v, const struct kp_fetch_request *m, const struct fetch_item *items,
	const struct kp_fetch_response_partition_data *pds, uint32_t n)
{
	struct dp_fetch_session *s;

	if (g_sessions == NULL)
		return 0;
	s = dp_fetch_session_new(g_sessions, fetch_privileged(v, m), v >= 13, n, now_ms());
	if (s == NULL)
		return 0;
	for (uint32_t k = 0; k < n; k++) {
		struct dp_fetch_session_part *p;
		int rc = dp_fetch_session_part_upsert(g_sessions, s, &items[k].topic_id,
			items[k].topic.ptr, items[k].topic.len > 0 ? (size_t)items[k].topic.len : 0,
			items[k].partition, items[k].fetch_offset, items[k].max_bytes, &p);

		if (rc < 0) { /* no entries left: no session (the client fetches sessionless) */
			dp_fetch_session_remove(g_sessions, s);
			return 0;
		}
		dp_fetch_session_part_sent(p, pds[k].high_watermark, pds[k].last_stable_offset,
			pds[k].log_start_offset);
	}
	return s->id;
}

/* fetch_run() with @fa (NULL: disk reads are waited for in the handler). */
static int
fetch_run_ctx(struct dp_requests *q, struct fetch_async *fa, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r, struct fetch_waiter *wt,
	bool may_wait, enum fetch_mode *mode)
{
	struct fetch_watch *watch = wt != NULL ? &wt->watch : NULL;
	struct dp_broker *b = q->b;
	struct kp_arena *a = &q->arena;
	int16_t v = h->request_api_version;
	struct kp_fetch_request m;
	struct kp_fetch_response resp;
	struct kp_fetch_response_fetchable_topic_response *rts;
	struct kp_fetch_response_partition_data *pds;
	struct dp_fetch_session *sess = NULL;
	struct fetch_item *items = NULL;
	struct stor_read *reads = NULL;
	struct dp_topic *t = NULL;
	uint32_t n_items = 0;
	uint32_t n_groups = 0;
	uint32_t n_kept = 0;
	uint32_t n_rts = 0;
	uint32_t n_reads = 0;
	uint8_t *area = g_read_area;
	size_t area_left = FETCH_READ_AREA;
	int64_t budget;
	int64_t room; /* response buffer bytes left for zero-copy descriptors */
	int64_t found = 0;
	int16_t top_error;
	bool errors = false;
	struct resp_buf rb;
	int rc;

	if (fetch_buf_get(conn, &rb) < 0)
		return -EAGAIN;
	if (fa != NULL) {
		kp_arena_init(&fa->arena, fa->arena_buf, FETCH_ASYNC_ARENA);
		a = &fa->arena;
		area = fa->area;
		area_left = FETCH_ASYNC_AREA;
		fa->pending = 0;
		fa->remote = 0;
		fa->failed = false;
		fa->append_seq = g_append_seq;
	}
	rc = kp_fetch_request_decode(&m, v, r, a);
	if (rc < 0) {
		rb.free_fn(rb.free_arg, rb.p);
		dp_req_close_log(conn, "malformed", h, rc);
		return -EPROTO;
	}
	/* From here on no -EAGAIN: the session was changed, the request must be answered. */
	top_error = fetch_session_resolve(v, &m, mode, &sess);
	if (top_error != 0) {
		errors = true;
	} else if (*mode == FETCH_MODE_INCREMENTAL) {
		items = fetch_items_session(sess, a, &n_items, &n_groups);
	} else {
		items = fetch_items_request(&m, a, &n_items);
		n_groups = m.topics.count > 0 ? (uint32_t)m.topics.count : 0;
	}
	if (top_error == 0 && items == NULL)
		goto nomem;
	room = (int64_t)rb.cap - FETCH_OVERHEAD_BASE - (int64_t)sizeof(struct fetch_zc) - 128 -
		(int64_t)n_items * FETCH_OVERHEAD_PER_PARTITION;
	/*
	 * With an asynchronous context the records take no room in the buffer
	 * (sent in place: fetch_reply), only their descriptor (room); without,
	 * disk reads are copied into it and count against both.
	 */
	budget = fa != NULL ? FETCH_ZC_MAX_BYTES : room;
	if (v >= 3 && m.max_bytes < budget)
		budget = m.max_bytes;
	reads = kp_arena_alloc(a, sizeof(*reads) * (n_items + FETCH_CHAIN_READS), 8);
	pds = kp_arena_alloc(a, sizeof(*pds) * (n_items > 0 ? n_items : 1), 8);
	rts = kp_arena_alloc(a, sizeof(*rts) * (n_groups > 0 ? n_groups : 1), 8);
	if (reads == NULL || pds == NULL || rts == NULL)
		goto nomem;
	if (watch != NULL) {
		watch->n = 0;
		watch->retry = false;
	}
	for (uint32_t k = 0; k < n_items; k++) {
		const struct fetch_item *it = &items[k];
		/* Incremental responses leave out unchanged partitions: this slot is reused. */
		struct kp_fetch_response_partition_data *pd = &pds[n_kept];
		bool has_records = false;
		struct dp_partition *pp;
		size_t max;

		if (k == 0 || it->group != items[k - 1].group)
			t = fetch_item_topic(b, v, it);
		kp_fetch_response_partition_data_init(pd);
		pd->partition_index = it->partition;
		pd->high_watermark = -1; /* Kafka's INVALID_HIGH_WATERMARK for errors */
		pd->records = (struct kp_bytes){.ptr = NULL, .len = 0};
		if (t == NULL || it->partition < 0 || it->partition >= t->partitions) {
			pd->error_code = v >= 13 && t == NULL ? KP_ERR_UNKNOWN_TOPIC_ID :
				KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
			goto next;
		}
		pp = &t->part[it->partition];
		if (dp_part_offline(b, pp)) {
			pd->error_code = KP_ERR_KAFKA_STORAGE_ERROR;
			goto next;
		}
		pd->high_watermark = dp_part_written(b, pp);
		if (watch != NULL && watch->n < FETCH_WATCH) {
			watch->e[watch->n].pp = pp;
			watch->e[watch->n].hw = pd->high_watermark;
			watch->n++;
		} else if (watch != NULL) {
			watch->n = FETCH_WATCH + 1;
		}
		pd->last_stable_offset = pd->high_watermark;
		pd->log_start_offset = dp_part_start(b, pp);
		if (it->fetch_offset == pd->high_watermark || budget <= 0 ||
			room < (int64_t)FETCH_ZC_PER_READ)
			goto next;
		max = (size_t)(it->max_bytes < budget ? it->max_bytes : budget);
		if (it->max_bytes <= 0 || max == 0)
			goto next;
		rc = fetch_read(q, fa, pd, pp, &reads[n_reads], it->fetch_offset, max, found == 0,
			&area, &area_left);
		if (rc == 1) { /* disk read in flight: its size is known later */
			found += (int64_t)max;
			budget -= (int64_t)max;
			room -= (int64_t)FETCH_ZC_PER_READ;
			n_reads++;
			has_records = true;
			goto next;
		}
		if (rc == -ENXIO) {
			pd->error_code = KP_ERR_OFFSET_OUT_OF_RANGE;
			goto next;
		}
		if (rc == -ENOBUFS)
			goto next; /* UNFINISHED: a first batch above the budget is not sent */
		if (rc < 0) {
			pd->error_code = KP_ERR_KAFKA_STORAGE_ERROR;
			goto next;
		}
		found += (int64_t)reads[n_reads].len;
		budget -= (int64_t)reads[n_reads].len;
		room -= (int64_t)FETCH_ZC_PER_READ;
		if (fa == NULL)
			budget -= (int64_t)FETCH_ZC_PER_READ; /* copies, descriptors: one room */
		has_records = reads[n_reads].len > 0;
		n_reads++;
		if (has_records && reads[n_reads - 1].from_cache) {
			/* Up to partition_max_bytes: the next chunks too (fetch_read_more). */
			size_t first_len = reads[n_reads - 1].len;

			n_reads += fetch_read_more(pp, pd, reads, n_reads, n_items + FETCH_CHAIN_READS,
				max, &budget, &room, fa == NULL);
			found += (int64_t)((size_t)pd->records.len - first_len);
		}
next:
		if (pd->error_code != 0)
			errors = true;
		/* A read in flight always keeps its slot: it fills pd later. */
		if (*mode != FETCH_MODE_INCREMENTAL ||
			dp_fetch_session_part_must_respond(it->sp, pd->error_code, has_records,
				pd->high_watermark, pd->last_stable_offset, pd->log_start_offset)) {
			if (n_kept != k)
				items[n_kept] = *it; /* items[0..n_kept) now describe pds */
			items[n_kept].has_records = has_records;
			n_kept++;
		}
	}
	if (may_wait && !errors && m.max_wait_ms > 0 && (fa == NULL || fa->pending == 0) &&
		found < (m.min_bytes > 1 ? m.min_bytes : 1)) {
		for (uint32_t k = 0; k < n_reads; k++)
			stor_read_release(&reads[k]);
		rb.free_fn(rb.free_arg, rb.p);
		return 1;
	}
	/*
	 * The response: one topic per request topic (sessionless and full
	 * fetches, empty ones included), or one per run of a session's partitions
	 * of a topic that has partitions to answer (incremental).
	 */
	for (uint32_t k = 0, g = 0; g < n_groups; g++) {
		uint32_t first = k;

		while (k < n_kept && items[k].group == g)
			k++;
		if (k == first && *mode == FETCH_MODE_INCREMENTAL)
			continue;
		kp_fetch_response_fetchable_topic_response_init(&rts[n_rts]);
		if (*mode == FETCH_MODE_INCREMENTAL) {
			rts[n_rts].topic = items[first].topic;
			rts[n_rts].topic_id = items[first].topic_id;
		} else {
			rts[n_rts].topic = m.topics.items[g].topic;
			rts[n_rts].topic_id = m.topics.items[g].topic_id;
		}
		rts[n_rts].partitions.items = &pds[first];
		rts[n_rts].partitions.count = (int32_t)(k - first);
		n_rts++;
	}
	/* Records go out in place where they can (fetch_reply, "Zero-copy Fetch responses"). */
	kp_fetch_response_init(&resp);
	resp.error_code = top_error;
	resp.responses.items = rts;
	resp.responses.count = (int32_t)n_rts;
	resp.session_id = 0;
	if (*mode == FETCH_MODE_FULL) {
		resp.session_id = fetch_session_create(v, &m, items, pds, n_kept);
	} else if (*mode == FETCH_MODE_INCREMENTAL && sess != NULL) {
		resp.session_id = sess->id;
		for (uint32_t k = 0; k < n_kept; k++) {
			dp_fetch_session_part_sent(items[k].sp, pds[k].high_watermark,
				pds[k].last_stable_offset, pds[k].log_start_offset);
			/* Kafka's fairness: what returned records goes behind the others. */
			if (items[k].has_records)
				dp_fetch_session_part_move_last(g_sessions, sess, items[k].sp);
		}
	}
	if (fa != NULL && fa->pending > 0) {
		/* Answered by fetch_slot_done() when the last disk read completes. */
		dp_log(DP_LOG_DEBUG, "fetch waits for %u disk read(s)", fa->pending);
		/*
		 * Without a waiter slot the request body is the transport's frame,
		 * which the connection's next read may overwrite meanwhile: the topic
		 * names the response borrows move into the context's arena (a slot
		 * keeps the body it holds until the answer).
		 */
		for (uint32_t g = 0; wt == NULL && g < n_rts; g++) {
			struct kp_str *tn = &rts[g].topic;
			char *copy = tn->len > 0 ? kp_arena_alloc(&fa->arena, (size_t)tn->len, 1) :
						   NULL;

			if (copy != NULL) {
				memcpy(copy, tn->ptr, (size_t)tn->len);
				tn->ptr = copy;
			}
		}
		fa->used = true;
		fa->conn = conn;
		fa->req = req;
		fa->h = *h;
		fa->h.client_id = (struct kp_str){.ptr = NULL, .len = -1};
		memset(&fa->h.unknown_tags, 0, sizeof(fa->h.unknown_tags));
		fa->rb = rb;
		fa->resp = resp;
		fa->reads = reads;
		fa->n_reads = n_reads;
		fa->waiter = wt;
		fa->wait_bytes = 0;
		if (may_wait && !errors && m.max_wait_ms > 0 && *mode == FETCH_MODE_SESSIONLESS)
			fa->wait_bytes = m.min_bytes > 1 ? m.min_bytes : 1;
		if (wt != NULL) {
			wt->inflight = true;
			return FETCH_INFLIGHT;
		}
		return 0;
	}
	return fetch_reply(conn, req, h, &rb, &resp, reads, n_reads, NULL);
nomem:
	dp_req_close_log(conn, "arena too small for a", h, -ENOMEM);
	if (fa != NULL && fa->pending > 0) {
		/* Reads in flight own their buffers: fetch_async_finish() drops it all. */
		fa->used = true;
		fa->failed = true;
		fa->waiter = NULL;
		fa->conn = conn;
		fa->req = req;
		fa->rb = rb;
		fa->reads = reads;
		fa->n_reads = n_reads;
		return -ENOMEM;
	}
	for (uint32_t k = 0; k < n_reads; k++)
		stor_read_release(&reads[k]);
	rb.free_fn(rb.free_arg, rb.p);
	return -ENOMEM;
}


/*
 * A debug line per park (@what: "parked", or "parked again" when an append
 * woke it with still too little): what wakes it. Tests wait for these lines
 * before they append, so they know the fetch waits in the broker. @m may be
 * NULL (min_bytes and max_wait_ms not known then).
 */
static void
fetch_park_log(const struct fetch_waiter *w, const struct kp_fetch_request *m, const char *what)
{
	unsigned others = 0;

	if (!DP_LOG_ENABLED(DP_LOG_DEBUG))
		return;
	if (w->watch.retry) {
		dp_log(DP_LOG_DEBUG, "fetch %s: runs again at the next poll", what);
		return;
	}
	if (w->watch.n > FETCH_WATCH) {
		dp_log(DP_LOG_DEBUG, "fetch %s: more than %d partitions, any append wakes it",
			what, FETCH_WATCH);
		return;
	}
	for (uint32_t i = 0; i < w->watch.n; i++)
		others += w->watch.e[i].pp->writer != 0;
	dp_log(DP_LOG_DEBUG, "fetch %s: watches %u partition(s), %u of writers other than 0"
		"; min_bytes %" PRId32 ", max_wait_ms %" PRId32, what, w->watch.n, others,
		m != NULL ? m->min_bytes : -1, m != NULL ? m->max_wait_ms : -1);
}

/* @w's fetch was answered: count its wake-up when an append woke it (the e2e path's half). */
static void
fetch_waiter_wakeup_count(const struct fetch_waiter *w)
{
	if (w->woken_tsc != 0)
		dp_metrics_fetch_wakeup(rte_rdtsc() - w->woken_tsc);
}

/* The fetch of @w was answered (or its connection is gone): free the slot. */
static void
fetch_waiter_done(struct fetch_waiter *w)
{
	uint16_t last = g_parked[--g_n_waiting];

	g_parked[w->pos] = last;
	g_waiters[last].pos = w->pos;
	g_free[g_n_free++] = (uint16_t)(w - g_waiters);
	w->inflight = false;
}

/*
 * The reads of @w's fetch completed with @found record bytes: park it again
 * when that is below @min_bytes and it may still wait. Appends completed
 * while the reads were in flight (g_append_seq moved past @append_seq) woke
 * nobody for it: it then runs again at the next poll. @return whether it
 * was parked (nothing to answer now).
 */
static bool
fetch_waiter_repark(struct fetch_waiter *w, int64_t found, int32_t min_bytes,
	uint64_t append_seq)
{
	w->inflight = false;
	if (found >= min_bytes || rte_rdtsc() >= w->deadline_tsc ||
		dp_conn_req_gen(w->req) != w->conn->gen)
		return false;
	w->watch.retry = append_seq != g_append_seq;
	fetch_park_log(w, NULL, "parked again");
	return true;
}

int
dp_req_fetch(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r)
{
	size_t len = (size_t)(r->end - r->p);
	struct fetch_waiter *w = NULL;
	enum fetch_mode mode = FETCH_MODE_NEW;
	struct kp_fetch_request m;
	struct kp_reader body;
	int rc;

	if (len <= FETCH_WAIT_BODY && g_n_free > 0)
		w = &g_waiters[g_free[g_n_free - 1]]; /* taken below if it parks */
	if (w != NULL) {
		/* Decoded from the slot's copy: a parked or in-flight fetch borrows from it. */
		w->len = (uint32_t)len;
		memcpy(w->body, r->p, len);
		kp_reader_init(&body, w->body, w->len);
		r = &body;
		w->watch.n = 0;
		w->watch.retry = false;
		w->inflight = false;
		w->woken_tsc = 0; /* its first run: nothing woke it */
	}
	rc = fetch_run(q, conn, req, h, r, w, w != NULL, &mode);
	if (rc != 1 && rc != FETCH_DEFERRED && rc != FETCH_INFLIGHT)
		return rc;
	/* Park it (or keep its slot while its reads complete): max_wait_ms is read again. */
	kp_arena_reset(&q->arena);
	kp_reader_init(&body, w->body, w->len);
	if (kp_fetch_request_decode(&m, h->request_api_version, &body, &q->arena) < 0 ||
		m.max_wait_ms < 0)
		m.max_wait_ms = 0; /* deferred unread: its next run answers (or closes) at once */
	g_n_free--; /* w is g_free's top */
	w->pos = (uint16_t)g_n_waiting;
	g_parked[g_n_waiting++] = (uint16_t)(w - g_waiters);
	w->conn = conn;
	w->req = req;
	w->deadline_tsc = rte_rdtsc() + (uint64_t)m.max_wait_ms * rte_get_tsc_hz() / 1000;
	w->mode = mode;
	w->watch.retry = rc == FETCH_DEFERRED; /* not run yet: again at the next poll */
	if (rc == FETCH_DEFERRED) {
		w->watch.n = 0;
		dp_log(DP_LOG_DEBUG, "fetch deferred: all %d disk-read contexts busy",
			FETCH_ASYNC_COUNT);
	}
	w->h = *h;
	w->h.client_id = (struct kp_str){.ptr = NULL, .len = -1};
	memset(&w->h.unknown_tags, 0, sizeof(w->h.unknown_tags));
	if (rc != FETCH_INFLIGHT)
		fetch_park_log(w, &m, "parked");
	return 0;
}

int
dp_requests_poll(void *arg)
{
	struct dp_requests *q = arg;
	uint64_t now;
	bool appended = g_appended;
	uint64_t appended_tsc = g_appended_tsc;
	int done = 0;

	if (g_n_waiting == 0) {
		g_appended = false; /* nobody parked saw less: the next append restarts the clock */
		return 0;
	}
	if (q->b->engine == NULL)
		return 0; /* dp_broker_stop() ran (shutdown): the logs waiters watch are gone */
	now = rte_rdtsc();
	g_appended = false;
	/* Downwards: a slot done here takes the last one's place, which was walked already. */
	for (unsigned k = g_n_waiting; k-- > 0;) {
		if (k >= g_n_waiting)
			continue; /* more than this one left the list meanwhile */
		struct fetch_waiter *w = &g_waiters[g_parked[k]];
		bool expired;
		struct kp_reader r;
		int rc;

		if (w->inflight)
			continue; /* its reads complete first (fetch_async_finish) */
		if (dp_conn_req_gen(w->req) != w->conn->gen) { /* connection gone */
			fetch_waiter_done(w);
			continue;
		}
		expired = now >= w->deadline_tsc;
		if (!expired && !w->watch.retry && (!appended || !fetch_watch_hit(&w->watch)))
			continue;
		/* Woken by an append to a log it watches (not its deadline, not a retry). */
		w->woken_tsc = !expired && !w->watch.retry ? appended_tsc : 0;
		kp_arena_reset(&q->arena);
		kp_reader_init(&r, w->body, w->len);
		rc = fetch_run(q, w->conn, w->req, &w->h, &r, w, !expired, &w->mode);
		if (rc == 1) {
			/* still too little: keep waiting (the watch list was refreshed) */
			fetch_park_log(w, NULL, "parked again");
			continue;
		}
		if (rc == -EAGAIN || rc == FETCH_DEFERRED) {
			/* no response buffer, or no free disk-read context: again next poll */
			w->watch.retry = true;
			continue;
		}
		if (rc == FETCH_INFLIGHT)
			continue; /* answered (or parked again) when its reads complete */
		if (rc < 0)
			dp_conn_close(w->conn);
		else
			fetch_waiter_wakeup_count(w); /* answered here, from the cache */
		fetch_waiter_done(w);
		done++;
	}
	return done;
}

/* ---- ListOffsets ------------------------------------------------------------------------ */

/* stor_log_offset_for_time() on the partition's owner (dp_broker_exec: reads a few KiB). */
struct oft_call {
	struct stor_log *log;
	int64_t timestamp;
	int64_t off;
	int64_t ts;
};

static int
oft_run(void *arg)
{
	struct oft_call *c = arg;

	return stor_log_offset_for_time(c->log, c->timestamp, &c->off, &c->ts);
}

int
dp_req_list_offsets(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r)
{
	struct dp_broker *b = q->b;
	struct kp_arena *a = &q->arena;
	int16_t v = h->request_api_version;
	struct kp_list_offsets_request m;
	struct kp_list_offsets_response resp;
	struct kp_list_offsets_response_list_offsets_topic_response *rts;
	uint8_t *buf;
	int rc;

	rc = dp_req_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	rts = kp_arena_alloc(a, sizeof(*rts) * (size_t)(m.topics.count > 0 ? m.topics.count : 1),
		8);
	if (rts == NULL)
		goto nomem;
	for (int32_t i = 0; i < m.topics.count; i++) {
		const struct kp_list_offsets_request_list_offsets_topic *lt = &m.topics.items[i];
		struct dp_topic *t = dp_broker_topic_find(b, lt->name.ptr, (size_t)lt->name.len);
		struct kp_list_offsets_response_list_offsets_partition_response *prs;
		int32_t np = lt->partitions.count > 0 ? lt->partitions.count : 0;

		kp_list_offsets_response_list_offsets_topic_response_init(&rts[i]);
		rts[i].name = lt->name;
		prs = kp_arena_alloc(a, sizeof(*prs) * (size_t)(np > 0 ? np : 1), 8);
		if (prs == NULL)
			goto nomem;
		rts[i].partitions.items = prs;
		rts[i].partitions.count = np;
		for (int32_t j = 0; j < np; j++) {
			const struct kp_list_offsets_request_list_offsets_partition *lp =
				&lt->partitions.items[j];
			int64_t off = -1;
			int64_t ts = -1;

			kp_list_offsets_response_list_offsets_partition_response_init(&prs[j]);
			prs[j].partition_index = lp->partition_index;
			if (t == NULL || lp->partition_index < 0 ||
				lp->partition_index >= t->partitions) {
				prs[j].error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				continue;
			}
			if (t->part[lp->partition_index].log == NULL) { /* offline */
				prs[j].error_code = KP_ERR_KAFKA_STORAGE_ERROR;
				continue;
			}
			struct oft_call oc = {t->part[lp->partition_index].log, lp->timestamp, -1, -1};

			rc = dp_broker_exec(b, t->part[lp->partition_index].writer, oft_run, &oc);
			off = oc.off;
			ts = oc.ts;
			if (rc < 0) {
				prs[j].error_code = rc == -EIO ? KP_ERR_KAFKA_STORAGE_ERROR :
					kp_error_from_errno(rc);
				continue;
			}
			prs[j].timestamp = lp->timestamp < 0 ? -1 : ts;
			prs[j].offset = off;
			prs[j].leader_epoch = 0;
			if (v == 0) {
				int64_t *o = kp_arena_alloc(a, sizeof(*o), 8);

				if (o == NULL)
					goto nomem;
				*o = off;
				prs[j].old_style_offsets =
					(struct kp_array_int64){.items = o, .count = off >= 0};
			}
		}
	}
	kp_list_offsets_response_init(&resp);
	resp.topics.items = rts;
	resp.topics.count = m.topics.count > 0 ? m.topics.count : 0;
	return dp_req_reply(conn, req, h, buf, &resp);
nomem:
	return dp_req_nomem(conn, h, buf);
}

/*
 * Asynchronous Fetch disk reads hold references into logs: let them finish
 * (their responses leave) before a log is closed. Bounded by the reads in
 * flight (at most FETCH_ASYNC_COUNT fetches). Parked fetches stop watching
 * logs by pointer (they run again on the next append and look again).
 */
void
dp_fetch_drain(struct dp_requests *q)
{
	/* Parked fetches watch logs by pointer: make them wake on any append instead. */
	for (unsigned k = 0; k < g_n_waiting; k++)
		g_waiters[g_parked[k]].watch.n = FETCH_WATCH + 1;
	for (;;) {
		bool busy = false;

		/* Reads on other lcores hold nothing here once released by their owner. */
		for (int i = 0; i < FETCH_ASYNC_COUNT; i++)
			busy = busy || (g_fa[i].used && g_fa[i].pending > g_fa[i].remote);
		busy = busy || __atomic_load_n(&g_remote_inflight, __ATOMIC_ACQUIRE) > 0;
		if (!busy)
			break;
		for (unsigned w = 0; w < q->b->n_writers; w++) {
			if (q->b->writers[w].engine != NULL && dp_broker_writer_local(q->b, w))
				stor_engine_poll(q->b->writers[w].engine);
		}
	}
}

int
dp_fetch_init(struct dp_broker *b, const struct dp_config *cfg)
{
	g_fetch_b = b;
	memset(g_waiters, 0, sizeof(g_waiters));
	g_n_waiting = 0;
	for (unsigned i = 0; i < FETCH_WAITERS; i++)
		g_free[i] = (uint16_t)(FETCH_WAITERS - 1 - i);
	g_n_free = FETCH_WAITERS;
	g_appended = false;
	if (g_read_area == NULL)
		g_read_area = aligned_alloc(4096, FETCH_READ_AREA);
	if (g_read_area == NULL)
		return -ENOMEM;
	for (int i = 0; i < FETCH_ASYNC_COUNT; i++) {
		g_fa[i].used = false;
		if (g_fa[i].arena_buf == NULL)
			g_fa[i].arena_buf = aligned_alloc(64, FETCH_ASYNC_ARENA);
		if (g_fa[i].area == NULL)
			g_fa[i].area = aligned_alloc(4096, FETCH_ASYNC_AREA);
		if (g_fa[i].arena_buf == NULL || g_fa[i].area == NULL)
			return -ENOMEM;
	}
	dp_fetch_session_cache_destroy(g_sessions);
	g_sessions = NULL;
	if (cfg->max_incremental_fetch_session_cache_slots > 0) {
		uint64_t slots = (uint64_t)cfg->max_incremental_fetch_session_cache_slots;
		uint64_t parts = slots * FETCH_SESSION_PARTS_PER_SLOT;

		parts = parts < FETCH_SESSION_PARTS_MIN ? FETCH_SESSION_PARTS_MIN : parts;
		parts = parts > FETCH_SESSION_PARTS_MAX ? FETCH_SESSION_PARTS_MAX : parts;
		g_sessions = dp_fetch_session_cache_create((uint32_t)slots, (uint32_t)parts,
			DP_FETCH_SESSION_EVICTION_MS, rte_rdtsc());
		if (g_sessions == NULL)
			return -ENOMEM;
	}
	g_big_bytes = 0;
	g_n_big_free = 0;
	if ((uint64_t)cfg->dp_response_buffer_bytes < (uint64_t)cfg->message_max_bytes + 65536) {
		uint32_t bytes = (uint32_t)cfg->message_max_bytes + 65536;

		for (int i = 0; i < FETCH_BIG_COUNT; i++) {
			if (g_big[i] == NULL)
				g_big[i] = malloc(bytes);
			if (g_big[i] == NULL)
				return -ENOMEM;
			g_big_free[g_n_big_free++] = g_big[i];
		}
		g_big_bytes = bytes;
	}
	return 0;
}
