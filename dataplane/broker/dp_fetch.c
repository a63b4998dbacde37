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

#include "dp_log.h"
#include "kp_api.h"
#include "kp_batch.h"
#include "kp_error.h"
#include "net_kernel.h"
#include "stor_log.h"

/* An append completed since parked fetches last ran. */
static bool g_appended;

void
dp_fetch_appended(void)
{
	g_appended = true;
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
 */
#define FETCH_ASYNC_COUNT 8
#define FETCH_ASYNC_ARENA (128u * 1024u)
#define FETCH_ASYNC_AREA (2u * 1024u * 1024u)

struct fetch_async {
	bool used;
	struct dp_conn *conn;
	uint64_t req;
	struct kp_request_header h;
	struct resp_buf rb;
	struct kp_fetch_response resp;
	struct stor_read *reads;
	uint32_t n_reads;
	uint32_t pending; /* disk reads in flight */
	bool failed;      /* the request was refused meanwhile: no reply */
	struct kp_arena arena;
	uint8_t *arena_buf;
	uint8_t *area; /* 4 KiB aligned, FETCH_ASYNC_AREA bytes */
};

struct fetch_slot {
	struct fetch_async *fa;
	struct kp_fetch_response_partition_data *pd;
};

static struct fetch_async g_fa[FETCH_ASYNC_COUNT];

static void
fetch_async_finish(struct fetch_async *fa)
{
	if (fa->failed)
		fa->rb.free_fn(fa->rb.free_arg, fa->rb.p);
	else
		dp_req_reply_buf(fa->conn, fa->req, &fa->h, &fa->rb, &fa->resp);
	for (uint32_t k = 0; k < fa->n_reads; k++)
		stor_read_release(&fa->reads[k]);
	fa->used = false;
}

static void
fetch_slot_done(void *arg, struct stor_read *rd, int rc)
{
	struct fetch_slot *sl = arg;
	struct fetch_async *fa = sl->fa;

	if (rc < 0)
		sl->pd->error_code = KP_ERR_KAFKA_STORAGE_ERROR;
	else
		sl->pd->records = (struct kp_bytes){.ptr = rd->data, .len = (int32_t)rd->len};
	if (--fa->pending == 0)
		fetch_async_finish(fa);
}

/*
 * Read up to @max bytes at @offset into @pd's records. With @fa, a disk
 * read completes later (returns 1; fetch_slot_done() fills @pd); without,
 * it is waited for here by polling the engine (the reactor stalls for it).
 */
static int
fetch_read(struct dp_requests *q, struct fetch_async *fa,
	struct kp_fetch_response_partition_data *pd, struct stor_log *log, struct stor_read *rd,
	int64_t offset, size_t max, uint8_t **area, size_t *area_left)
{
	size_t need = stor_read_buf_size(max);
	struct read_wait w = {false, 0};
	struct fetch_slot *sl = NULL;
	int rc;

	need = (need + 4095) & ~(size_t)4095;
	if (need > *area_left)
		return -ENOBUFS;
	if (fa != NULL) {
		sl = kp_arena_alloc(&fa->arena, sizeof(*sl), 8);
		if (sl == NULL)
			return -ENOBUFS;
		sl->fa = fa;
		sl->pd = pd;
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
			stor_engine_poll(q->b->engine);
		rc = w.rc;
		if (rc < 0) {
			stor_read_release(rd);
			return rc;
		}
	} else if (rc < 0) {
		return rc;
	}
	if (!rd->from_cache) {
		*area += need;
		*area_left -= need;
	}
	pd->records = (struct kp_bytes){.ptr = rd->data, .len = (int32_t)rd->len};
	return 0;
}

static struct dp_topic *
fetch_topic(struct dp_broker *b, int16_t v, const struct kp_fetch_request_fetch_topic *ft)
{
	if (v >= 13)
		return dp_req_topic_by_id(b, &ft->topic_id);
	return dp_broker_topic_find(b, ft->topic.ptr, (size_t)ft->topic.len);
}

/*
 * Serve a Fetch. With @may_wait, a fetch that found fewer than min_bytes and
 * allows waiting (max_wait_ms > 0) answers nothing and returns 1: the
 * caller parks it and runs it again on an append or at its deadline.
 */
static int fetch_run_ctx(struct dp_requests *q, struct fetch_async *fa, struct dp_conn *conn,
	uint64_t req, const struct kp_request_header *h, struct kp_reader *r, bool may_wait);

static int
fetch_run(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r, bool may_wait)
{
	struct fetch_async *fa = NULL;

	for (int i = 0; i < FETCH_ASYNC_COUNT && fa == NULL; i++) {
		if (!g_fa[i].used)
			fa = &g_fa[i];
	}
	return fetch_run_ctx(q, fa, conn, req, h, r, may_wait);
}

/* fetch_run() with @fa (NULL: disk reads are waited for in the handler). */
static int
fetch_run_ctx(struct dp_requests *q, struct fetch_async *fa, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r, bool may_wait)
{
	struct dp_broker *b = q->b;
	struct kp_arena *a = &q->arena;
	int16_t v = h->request_api_version;
	struct kp_fetch_request m;
	struct kp_fetch_response resp;
	struct kp_fetch_response_fetchable_topic_response *rts;
	struct stor_read *reads;
	uint32_t n_reads = 0;
	uint32_t n_parts = 0;
	uint8_t *area = g_read_area;
	size_t area_left = FETCH_READ_AREA;
	int64_t budget;
	int64_t found = 0;
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
		fa->failed = false;
	}
	rc = kp_fetch_request_decode(&m, v, r, a);
	if (rc < 0) {
		rb.free_fn(rb.free_arg, rb.p);
		dp_req_close_log(conn, "malformed", h, rc);
		return -EPROTO;
	}
	for (int32_t i = 0; i < m.topics.count; i++)
		n_parts += m.topics.items[i].partitions.count > 0 ?
			(uint32_t)m.topics.items[i].partitions.count : 0;
	budget = (int64_t)rb.cap - FETCH_OVERHEAD_BASE -
		(int64_t)n_parts * FETCH_OVERHEAD_PER_PARTITION;
	if (v >= 3 && m.max_bytes < budget)
		budget = m.max_bytes;
	reads = kp_arena_alloc(a, sizeof(*reads) * (n_parts > 0 ? n_parts : 1), 8);
	rts = kp_arena_alloc(a, sizeof(*rts) * (size_t)(m.topics.count > 0 ? m.topics.count : 1),
		8);
	if (reads == NULL || rts == NULL)
		goto nomem;
	for (int32_t i = 0; i < m.topics.count; i++) {
		const struct kp_fetch_request_fetch_topic *ft = &m.topics.items[i];
		struct dp_topic *t = fetch_topic(b, v, ft);
		struct kp_fetch_response_partition_data *pds;
		int32_t np = ft->partitions.count > 0 ? ft->partitions.count : 0;

		kp_fetch_response_fetchable_topic_response_init(&rts[i]);
		rts[i].topic = ft->topic;
		rts[i].topic_id = ft->topic_id;
		pds = kp_arena_alloc(a, sizeof(*pds) * (size_t)(np > 0 ? np : 1), 8);
		if (pds == NULL)
			goto nomem;
		rts[i].partitions.items = pds;
		rts[i].partitions.count = np;
		for (int32_t j = 0; j < np; j++) {
			const struct kp_fetch_request_fetch_partition *fp = &ft->partitions.items[j];
			struct stor_log *log;
			size_t max;

			kp_fetch_response_partition_data_init(&pds[j]);
			pds[j].partition_index = fp->partition;
			pds[j].records = (struct kp_bytes){.ptr = NULL, .len = 0};
			if (t == NULL || fp->partition < 0 || fp->partition >= t->partitions) {
				pds[j].error_code = v >= 13 && t == NULL ? KP_ERR_UNKNOWN_TOPIC_ID :
					KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				errors = true;
				continue;
			}
			log = t->part[fp->partition].log;
			if (log == NULL) { /* offline: see dp_broker_topic_configs_set */
				pds[j].error_code = KP_ERR_KAFKA_STORAGE_ERROR;
				errors = true;
				continue;
			}
			pds[j].high_watermark = stor_log_written_offset(log);
			pds[j].last_stable_offset = pds[j].high_watermark;
			pds[j].log_start_offset = stor_log_start_offset(log);
			if (fp->fetch_offset == pds[j].high_watermark || budget <= 0)
				continue;
			max = (size_t)(fp->partition_max_bytes < budget ? fp->partition_max_bytes :
									    budget);
			if (max == 0)
				continue;
			rc = fetch_read(q, fa, &pds[j], log, &reads[n_reads], fp->fetch_offset, max,
				&area, &area_left);
			if (rc == 1) { /* disk read in flight: its size is known later */
				found += (int64_t)max;
				budget -= (int64_t)max;
				n_reads++;
				continue;
			}
			if (rc == -ENXIO) {
				pds[j].error_code = KP_ERR_OFFSET_OUT_OF_RANGE;
				errors = true;
				continue;
			}
			if (rc == -ENOBUFS)
				continue; /* UNFINISHED: a first batch above the budget is not sent */
			if (rc < 0) {
				pds[j].error_code = KP_ERR_KAFKA_STORAGE_ERROR;
				errors = true;
				continue;
			}
			found += (int64_t)reads[n_reads].len;
			budget -= (int64_t)reads[n_reads].len;
			n_reads++;
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
	 * The records are copied into the response buffer (zero-copy sends of
	 * tail-cache chunks come with refcounted buffers).
	 */
	kp_fetch_response_init(&resp);
	resp.responses.items = rts;
	resp.responses.count = m.topics.count > 0 ? m.topics.count : 0;
	resp.session_id = 0;
	if (fa != NULL && fa->pending > 0) {
		/* Answered by fetch_slot_done() when the last disk read completes. */
		dp_log(DP_LOG_DEBUG, "fetch waits for %u disk read(s)", fa->pending);
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
		return 0;
	}
	rc = dp_req_reply_buf(conn, req, h, &rb, &resp);
	for (uint32_t k = 0; k < n_reads; k++)
		stor_read_release(&reads[k]);
	return rc;
nomem:
	dp_req_close_log(conn, "arena too small for a", h, -ENOMEM);
	if (fa != NULL && fa->pending > 0) {
		/* Reads in flight own their buffers: fetch_async_finish() drops it all. */
		fa->used = true;
		fa->failed = true;
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
 * Long poll: a Fetch that found less than min_bytes is parked with a copy of
 * its header and body and run again when an append completes (any
 * partition: a first cut, see dp_requests_poll) or at max_wait_ms.
 */
#define FETCH_WAITERS 256
#define FETCH_WAIT_BODY 4096 /* larger fetch requests are answered without waiting */

struct fetch_waiter {
	bool used;
	struct dp_conn *conn;
	uint64_t req;
	uint64_t deadline_tsc;
	struct kp_request_header h;
	uint32_t len;
	uint8_t body[FETCH_WAIT_BODY];
};

static struct fetch_waiter g_waiters[FETCH_WAITERS];
static unsigned g_n_waiting;

int
dp_req_fetch(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r)
{
	const uint8_t *body = r->p;
	struct kp_reader saved = *r;
	size_t len = (size_t)(r->end - r->p);
	struct fetch_waiter *w = NULL;
	int rc;

	if (len <= FETCH_WAIT_BODY && g_n_waiting < FETCH_WAITERS) {
		for (unsigned i = 0; i < FETCH_WAITERS && w == NULL; i++) {
			if (!g_waiters[i].used)
				w = &g_waiters[i];
		}
	}
	rc = fetch_run(q, conn, req, h, r, w != NULL);
	if (rc != 1)
		return rc;
	/* Park it: max_wait_ms is read again by the decode when it runs next. */
	struct kp_fetch_request m;

	kp_arena_reset(&q->arena);
	kp_fetch_request_decode(&m, h->request_api_version, &saved, &q->arena);
	w->used = true;
	w->conn = conn;
	w->req = req;
	w->deadline_tsc = rte_rdtsc() + (uint64_t)m.max_wait_ms * rte_get_tsc_hz() / 1000;
	w->h = *h;
	w->h.client_id = (struct kp_str){.ptr = NULL, .len = -1};
	memset(&w->h.unknown_tags, 0, sizeof(w->h.unknown_tags));
	w->len = (uint32_t)len;
	memcpy(w->body, body, len);
	g_n_waiting++;
	return 0;
}

int
dp_requests_poll(void *arg)
{
	struct dp_requests *q = arg;
	uint64_t now;
	bool appended = g_appended;
	int done = 0;

	if (g_n_waiting == 0)
		return 0;
	now = rte_rdtsc();
	g_appended = false;
	for (unsigned i = 0; i < FETCH_WAITERS; i++) {
		struct fetch_waiter *w = &g_waiters[i];
		bool expired;
		struct kp_reader r;
		int rc;

		if (!w->used)
			continue;
		if (dp_conn_req_gen(w->req) != w->conn->gen) { /* connection gone */
			w->used = false;
			g_n_waiting--;
			continue;
		}
		expired = now >= w->deadline_tsc;
		if (!expired && !appended)
			continue;
		kp_arena_reset(&q->arena);
		kp_reader_init(&r, w->body, w->len);
		rc = fetch_run(q, w->conn, w->req, &w->h, &r, !expired);
		if (rc == 1 || rc == -EAGAIN)
			continue; /* still nothing (or no response buffer): keep waiting */
		if (rc < 0)
			dp_conn_close(w->conn);
		w->used = false;
		g_n_waiting--;
		done++;
	}
	return done;
}

/* ---- ListOffsets ------------------------------------------------------------------------ */

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
			rc = stor_log_offset_for_time(t->part[lp->partition_index].log,
				lp->timestamp, &off, &ts);
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
 * flight (at most FETCH_ASYNC_COUNT fetches).
 */
void
dp_fetch_drain(struct dp_requests *q)
{
	for (;;) {
		bool busy = false;

		for (int i = 0; i < FETCH_ASYNC_COUNT; i++)
			busy = busy || g_fa[i].used;
		if (!busy)
			return;
		stor_engine_poll(q->b->engine);
	}
}

int
dp_fetch_init(const struct dp_config *cfg)
{
	memset(g_waiters, 0, sizeof(g_waiters));
	g_n_waiting = 0;
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
