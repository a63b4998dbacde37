/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_produce: the Produce handler (acks 0, 1 and all) over the partition
 * logs of dp_broker; part of the request handlers (dp_requests_int.h).
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
#include "dp_metrics.h"
#include "kp_api.h"
#include "kp_batch.h"
#include "kp_error.h"
#include "net_kernel.h"
#include "stor_log.h"

/*
 * A Produce request whose appends are in flight. The response is encoded
 * into its buffer before the appends complete (the base offsets are known
 * when stor_log_append() returns); the reply leaves when the last append
 * completes, and dp_conn keeps the order with the connection's other
 * responses. An append that fails at completion (the log took an I/O
 * error) closes the connection instead of answering.
 * UNFINISHED: answer KAFKA_STORAGE_ERROR for that partition instead.
 */
struct produce_ctx {
	struct dp_conn *conn;
	uint64_t req;
	uint8_t *buf; /* encoded response, or NULL for acks=0 */
	uint32_t len;
	uint32_t pending; /* appends in flight + 1 while the handler runs */
	bool failed;
	uint64_t submit_tsc; /* when the appends were submitted (storage write latency) */
	struct produce_ctx *next_free;
};

#define PRODUCE_CTX_COUNT 4096
static struct produce_ctx g_produce_ctx[PRODUCE_CTX_COUNT];
static struct produce_ctx *g_produce_free;

static void
produce_ctx_put(struct produce_ctx *c)
{
	c->next_free = g_produce_free;
	g_produce_free = c;
}

static void
produce_finish(struct produce_ctx *c)
{
	if (c->failed) {
		if (c->buf != NULL)
			dp_conn_resp_free(c->conn->env->resp_pool, c->buf);
		if (dp_conn_req_gen(c->req) == c->conn->gen) {
			dp_log(DP_LOG_ERROR, "closing a connection: an append it produced failed");
			dp_conn_close(c->conn);
		}
	} else if (c->buf != NULL) {
		dp_conn_reply(c->conn, c->req, c->buf, c->len, dp_conn_resp_free,
			c->conn->env->resp_pool);
	} else {
		dp_conn_reply(c->conn, c->req, NULL, 0, NULL, NULL);
	}
	produce_ctx_put(c);
}

static void
produce_appended(void *arg, int rc, int64_t base_offset)
{
	struct produce_ctx *c = arg;

	if (rc < 0)
		c->failed = true;
	dp_fetch_appended(); /* wakes parked fetches */
	dp_metrics_storage_write(rte_rdtsc() - c->submit_tsc);
	if (--c->pending == 0)
		produce_finish(c);
}

#define PRODUCE_FULL INT16_MIN

/*
 * Append every batch of one partition's records.
 * @return a Kafka error code, or PRODUCE_FULL when storage takes no more
 *         appends right now (nothing of this partition was appended only if
 *         it failed on the first batch).
 */
static int16_t
produce_partition(struct dp_requests *q, struct produce_ctx *c, struct stor_log *log,
	const struct kp_bytes *records, unsigned flags, int64_t *base_offset)
{
	size_t off = 0;
	size_t len = records->len > 0 ? (size_t)records->len : 0;
	int rc;

	*base_offset = -1;
	if (len == 0)
		return KP_ERR_CORRUPT_MESSAGE;
	/* Validate every batch first: a request's partition is appended whole or not at all. */
	while (off < len) {
		struct kp_batch_header bh;

		rc = kp_batch_validate(records->ptr + off, len - off, 0, &bh);
		if (rc < 0)
			return kp_error_from_errno(rc);
		if ((int64_t)kp_batch_size(&bh) > q->cfg->message_max_bytes)
			return KP_ERR_MESSAGE_TOO_LARGE;
		off += kp_batch_size(&bh);
	}
	for (off = 0; off < len;) {
		struct kp_batch_header bh;
		int64_t base;

		kp_batch_header_parse(records->ptr + off, len - off, &bh);
		/* The one copy of the produced bytes: into the log's tail-cache chunk. */
		rc = stor_log_append(log, records->ptr + off, kp_batch_size(&bh), flags,
			produce_appended, c, &base);
		if (rc == -EAGAIN)
			return PRODUCE_FULL; /* too many appends in flight or no free chunk */
		if (rc < 0)
			return rc == -EIO ? KP_ERR_KAFKA_STORAGE_ERROR : kp_error_from_errno(rc);
		c->pending++;
		if (*base_offset < 0)
			*base_offset = base;
		off += kp_batch_size(&bh);
	}
	return KP_ERR_NONE;
}

int
dp_req_produce(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r)
{
	struct dp_broker *b = q->b;
	struct kp_arena *a = &q->arena;
	int16_t v = h->request_api_version;
	struct kp_produce_request m;
	struct kp_produce_response resp;
	struct kp_produce_response_topic_produce_response *rts;
	struct produce_ctx *c;
	uint8_t *buf = NULL;
	unsigned flags = 0;
	int rc;

	if (g_produce_free == NULL)
		return -EAGAIN; /* every context waits for appends: offered again later */
	rc = kp_produce_request_decode(&m, v, r, a);
	if (rc < 0) {
		dp_req_close_log(conn, "malformed", h, rc);
		return -EPROTO;
	}
	if (m.acks != 0) {
		buf = dp_conn_resp_alloc(conn);
		if (buf == NULL)
			return -EAGAIN;
	}
	if (m.transactional_id.len > 0) {
		/* UNFINISHED: transactions. */
		if (buf != NULL)
			dp_conn_resp_free(conn->env->resp_pool, buf);
		dp_req_close_log(conn, "transactional", h, -ENOTSUP);
		return -EPROTONOSUPPORT;
	}
	if (m.acks == -1 && b->log_cfg.fsync_acks_all)
		flags = STOR_APPEND_DURABLE;
	c = g_produce_free;
	g_produce_free = c->next_free;
	c->conn = conn;
	c->req = req;
	c->buf = buf;
	c->len = 0;
	c->pending = 1;
	c->failed = false;
	c->submit_tsc = rte_rdtsc();
	rts = kp_arena_alloc(a, sizeof(*rts) * (size_t)(m.topic_data.count > 0 ?
								 m.topic_data.count : 1), 8);
	if (rts == NULL)
		goto nomem;
	for (int32_t i = 0; i < m.topic_data.count; i++) {
		const struct kp_produce_request_topic_produce_data *td = &m.topic_data.items[i];
		struct dp_topic *t = dp_broker_topic_find(b, td->name.ptr, (size_t)td->name.len);
		struct kp_produce_response_partition_produce_response *prs;
		int32_t np = td->partition_data.count > 0 ? td->partition_data.count : 0;

		kp_produce_response_topic_produce_response_init(&rts[i]);
		rts[i].name = td->name;
		prs = kp_arena_alloc(a, sizeof(*prs) * (size_t)(np > 0 ? np : 1), 8);
		if (prs == NULL)
			goto nomem;
		rts[i].partition_responses.items = prs;
		rts[i].partition_responses.count = np;
		for (int32_t j = 0; j < np; j++) {
			const struct kp_produce_request_partition_produce_data *pd =
				&td->partition_data.items[j];

			kp_produce_response_partition_produce_response_init(&prs[j]);
			prs[j].index = pd->index;
			prs[j].base_offset = -1;
			if (t == NULL || pd->index < 0 || pd->index >= t->partitions) {
				prs[j].error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				continue;
			}
			if (t->part[pd->index].log == NULL) { /* offline: see dp_broker_topic_configs_set */
				prs[j].error_code = KP_ERR_KAFKA_STORAGE_ERROR;
				continue;
			}
			prs[j].error_code = produce_partition(q, c, t->part[pd->index].log,
				&pd->records, flags, &prs[j].base_offset);
			if (prs[j].error_code == PRODUCE_FULL && c->pending == 1) {
				/* Nothing of this request is appended: offer it again later. */
				dp_log(DP_LOG_DEBUG, "produce to %.*s-%d held back: storage full",
					td->name.len, td->name.ptr, pd->index);
				if (buf != NULL)
					dp_conn_resp_free(conn->env->resp_pool, buf);
				produce_ctx_put(c);
				return -EAGAIN;
			}
			if (prs[j].error_code == PRODUCE_FULL) /* partly appended: retriable */
				prs[j].error_code = KP_ERR_REQUEST_TIMED_OUT;
			prs[j].log_start_offset = stor_log_start_offset(t->part[pd->index].log);
			if (prs[j].error_code == KP_ERR_NONE)
				dp_metrics_batches(true, td->name.ptr, (size_t)td->name.len, pd->index,
					pd->records.ptr, (size_t)pd->records.len,
					stor_log_end_offset(t->part[pd->index].log));
		}
	}
	if (buf != NULL) {
		const struct kp_api_desc *d = kp_api_lookup(h->request_api_key);
		struct kp_response_header rh;
		struct kp_writer w;

		kp_produce_response_init(&resp);
		resp.responses.items = rts;
		resp.responses.count = m.topic_data.count > 0 ? m.topic_data.count : 0;
		kp_response_header_init(&rh);
		rh.correlation_id = h->correlation_id;
		kp_writer_init(&w, buf + 4, conn->env->resp_buf_size - 4);
		rc = kp_response_header_encode(&rh, kp_api_response_header_version(d, v), &w);
		if (rc == 0)
			rc = kp_produce_response_encode(&resp, v, &w);
		if (rc < 0) {
			dp_req_close_log(conn, "cannot encode the response to a", h, rc);
			c->failed = true;
		} else {
			c->len = (uint32_t)kp_writer_len(&w) + 4;
			buf[0] = (uint8_t)((c->len - 4) >> 24);
			buf[1] = (uint8_t)((c->len - 4) >> 16);
			buf[2] = (uint8_t)((c->len - 4) >> 8);
			buf[3] = (uint8_t)(c->len - 4);
		}
	}
	if (--c->pending == 0)
		produce_finish(c);
	return 0;
nomem:
	dp_req_close_log(conn, "arena too small for a", h, -ENOMEM);
	c->failed = true;
	if (--c->pending == 0)
		produce_finish(c);
	return 0;
}

void
dp_produce_init(void)
{
	g_produce_free = NULL;
	for (int i = PRODUCE_CTX_COUNT - 1; i >= 0; i--)
		produce_ctx_put(&g_produce_ctx[i]);
}
