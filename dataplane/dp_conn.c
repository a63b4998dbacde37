/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_conn: request slots, in-order responses and frame delivery shared by
 * every transport (see dp_conn.h).
 *
 * Slots form a ring indexed by free-running 32-bit counters: head is the
 * oldest request whose response is not fully sent, tail the next free slot.
 * A request token is (generation << 32 | slot counter).
 */
#include "dp_conn.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_mempool.h>

#include "dp_log.h"
#include "dp_metrics.h"

void
dp_conn_setup(struct dp_conn *conn, const struct dp_conn_ops *ops, struct dp_conn_env *env,
	uint8_t *rx_buf, uint32_t rx_cap, uint32_t max_frame, struct dp_conn_slot *slots)
{
	memset(conn, 0, sizeof(*conn));
	conn->ops = ops;
	conn->env = env;
	conn->slots = slots;
	conn->slot_mask = dp_conn_slot_count(env->max_inflight) - 1;
	dp_frame_init(&conn->rx, rx_buf, rx_cap, max_frame);
}

static struct dp_conn_slot *
slot_at(const struct dp_conn *conn, uint32_t seq)
{
	return &conn->slots[seq & conn->slot_mask];
}

static void
slot_release(struct dp_conn_slot *s)
{
	if (s->state == DP_CONN_SLOT_DONE && s->free_fn != NULL)
		s->free_fn(s->free_arg, (void *)(uintptr_t)s->buf);
	memset(s, 0, sizeof(*s));
}

void
dp_conn_reset(struct dp_conn *conn)
{
	uint8_t *large;

	for (uint32_t seq = conn->head; seq != conn->tail; seq++)
		slot_release(slot_at(conn, seq));
	large = dp_frame_detach_large(&conn->rx);
	if (large != NULL) {
		struct dp_bufstack *bs = conn->env->large;

		bs->items[bs->n++] = large;
	}
	dp_frame_init(&conn->rx, conn->rx.buf, conn->rx.cap, conn->rx.max_frame);
	conn->head = 0;
	conn->tail = 0;
	conn->head_sent = 0;
	conn->head_seg = 0;
	conn->head_seg_off = 0;
	conn->pending_bytes = 0;
	conn->closing = false;
	conn->tx_ready = false;
	conn->rx_stalled = false;
	conn->user = NULL;
	conn->gen++;
}

int
dp_conn_deliver(struct dp_conn *conn)
{
	struct dp_conn_env *env = conn->env;
	char peer[80];
	int delivered = 0;

	conn->rx_stalled = false;
	while (!conn->closing && !env->draining && dp_conn_inflight(conn) < env->max_inflight) {
		const uint8_t *frame;
		uint32_t len;
		uint64_t req;
		uint8_t *large;
		int rc = dp_frame_next(&conn->rx, &frame, &len);

		if (rc == 0)
			break;
		if (rc == -ENOBUFS) {
			struct dp_bufstack *bs = env->large;

			if (bs == NULL || bs->n == 0) {
				conn->rx_stalled = true; /* wait for a free large buffer */
				break;
			}
			dp_frame_attach_large(&conn->rx, bs->items[--bs->n], bs->size);
			continue;
		}
		if (rc < 0) {
			dp_conn_peer_name(conn, peer, sizeof(peer));
			if (rc == -EMSGSIZE) {
				env->n_oversized++;
				dp_log(DP_LOG_WARN,
					"closing %s: request size %" PRId32
					" is above the limit %" PRIu32
					" (socket.request.max.bytes, dataplane.frame.large.bytes)",
					peer, conn->rx.bad_size, conn->rx.max_frame);
			} else {
				env->n_bad_size++;
				dp_log(DP_LOG_WARN, "closing %s: invalid request size %" PRId32, peer,
					conn->rx.bad_size);
			}
			return rc;
		}
		req = (uint64_t)conn->gen << 32 | conn->tail;
		memset(slot_at(conn, conn->tail), 0, sizeof(struct dp_conn_slot));
		slot_at(conn, conn->tail)->state = DP_CONN_SLOT_PENDING;
		slot_at(conn, conn->tail)->arrival_tsc = rte_rdtsc();
		slot_at(conn, conn->tail)->api_key =
			len >= 2 ? (int16_t)((uint16_t)frame[0] << 8 | frame[1]) : -1;
		conn->tail++;
		rc = env->handler(env->handler_arg, conn, req, frame, len);
		if (rc == -EAGAIN) {
			/* Not taken: give the slot back and offer the frame again later. */
			conn->tail--;
			slot_at(conn, conn->tail)->state = 0;
			conn->rx_stalled = true;
			break;
		}
		if (rc < 0) {
			env->n_handler_closed++;
			return rc;
		}
		env->n_frames++;
		delivered++;
		large = dp_frame_consume(&conn->rx);
		if (large != NULL)
			env->large->items[env->large->n++] = large;
	}
	return delivered;
}

int
dp_conn_deliver_frame(struct dp_conn *conn, const uint8_t *frame, uint32_t len)
{
	struct dp_conn_env *env = conn->env;
	uint64_t req;
	int rc;

	conn->rx_stalled = false;
	if (conn->closing || env->draining || dp_conn_inflight(conn) >= env->max_inflight)
		return 0;
	req = (uint64_t)conn->gen << 32 | conn->tail;
	memset(slot_at(conn, conn->tail), 0, sizeof(struct dp_conn_slot));
	slot_at(conn, conn->tail)->state = DP_CONN_SLOT_PENDING;
	slot_at(conn, conn->tail)->arrival_tsc = rte_rdtsc();
	slot_at(conn, conn->tail)->api_key =
		len >= 2 ? (int16_t)((uint16_t)frame[0] << 8 | frame[1]) : -1;
	conn->tail++;
	rc = env->handler(env->handler_arg, conn, req, frame, len);
	if (rc == -EAGAIN) {
		conn->tail--;
		slot_at(conn, conn->tail)->state = 0;
		conn->rx_stalled = true;
		return 0;
	}
	if (rc < 0) {
		env->n_handler_closed++;
		return rc;
	}
	env->n_frames++;
	return 1;
}

static int
reply_slot(struct dp_conn *conn, uint64_t req, const void *buf, uint32_t len, bool sg,
	dp_resp_free_fn free_fn, void *free_arg)
{
	uint32_t seq = (uint32_t)req;
	struct dp_conn_slot *s;

	if (dp_conn_req_gen(req) != conn->gen) {
		conn->env->n_late_replies++;
		if (free_fn != NULL)
			free_fn(free_arg, (void *)(uintptr_t)buf);
		return -ENOTCONN;
	}
	s = slot_at(conn, seq);
	if (seq - conn->head >= conn->tail - conn->head || s->state != DP_CONN_SLOT_PENDING) {
		if (free_fn != NULL)
			free_fn(free_arg, (void *)(uintptr_t)buf);
		return -EINVAL;
	}
	s->buf = buf;
	s->len = len;
	s->sg = sg;
	s->free_fn = free_fn;
	s->free_arg = free_arg;
	/* Slots taken by dp_conn_deliver() only (not dp_hop's proxies): counted once. */
	if (s->arrival_tsc != 0)
		dp_metrics_request(s->api_key, rte_rdtsc() - s->arrival_tsc);
	s->state = DP_CONN_SLOT_DONE;
	conn->pending_bytes += len;
	if (seq == conn->head) {
		conn->tx_ready = true;
		conn->ops->kick(conn);
	}
	return 0;
}

int
dp_conn_reply(struct dp_conn *conn, uint64_t req, const void *buf, uint32_t len,
	dp_resp_free_fn free_fn, void *free_arg)
{
	return reply_slot(conn, req, buf, len, false, free_fn, free_arg);
}

int
dp_conn_reply_sg(struct dp_conn *conn, uint64_t req, const struct dp_sg *sg,
	dp_resp_free_fn free_fn, void *free_arg)
{
	return reply_slot(conn, req, sg, sg->len, true, free_fn, free_arg);
}

int
dp_conn_tx_segs(const struct dp_conn *conn, struct iovec *iov, uint32_t *flags, int max)
{
	uint32_t off = conn->head_sent;
	int n = 0;

	for (uint32_t seq = conn->head; seq != conn->tail && n < max; seq++) {
		const struct dp_conn_slot *s = slot_at(conn, seq);

		if (s->state != DP_CONN_SLOT_DONE)
			break;
		if (s->sg) {
			const struct dp_sg *sg = s->buf;
			/* The head resumes at its cached segment; later responses at 0. */
			uint32_t k = seq == conn->head ? conn->head_seg : 0;
			uint32_t koff = seq == conn->head ? conn->head_seg_off : 0;

			for (; k < sg->n && n < max; k++, koff = 0) {
				const struct dp_seg *g = &sg->segs[k];

				if (g->len <= koff)
					continue;
				iov[n].iov_base = (uint8_t *)(uintptr_t)g->p + koff;
				iov[n].iov_len = g->len - koff;
				if (flags != NULL)
					flags[n] = g->flags;
				n++;
			}
		} else if (s->len > off) {
			iov[n].iov_base = (uint8_t *)(uintptr_t)s->buf + off;
			iov[n].iov_len = s->len - off;
			if (flags != NULL)
				flags[n] = 0;
			n++;
		}
		off = 0;
	}
	return n;
}

int
dp_conn_tx_iov(const struct dp_conn *conn, struct iovec *iov, int max)
{
	return dp_conn_tx_segs(conn, iov, NULL, max);
}

/* Advance the head scatter-gather response's segment cursor by @n bytes (< what is left). */
static void
sg_advance(struct dp_conn *conn, const struct dp_sg *sg, size_t n, struct dp_tx_records *rec)
{
	while (n > 0 && conn->head_seg < sg->n) {
		const struct dp_seg *g = &sg->segs[conn->head_seg];
		size_t left = g->len - conn->head_seg_off;
		size_t take = n < left ? n : left;

		if (rec != NULL && (g->flags & DP_SEG_RECORDS)) {
			if (g->flags & DP_SEG_BORROWED)
				rec->borrowed += take;
			else
				rec->owned += take;
		}
		n -= take;
		if (take == left) {
			conn->head_seg++;
			conn->head_seg_off = 0;
		} else {
			conn->head_seg_off += (uint32_t)take;
		}
	}
}

void
dp_conn_tx_done_records(struct dp_conn *conn, size_t n, struct dp_tx_records *rec)
{
	while (conn->head != conn->tail) {
		struct dp_conn_slot *s = slot_at(conn, conn->head);
		uint32_t left;

		if (s->state != DP_CONN_SLOT_DONE)
			break;
		left = s->len - conn->head_sent;
		if (n < left) {
			if (s->sg)
				sg_advance(conn, s->buf, n, rec);
			conn->head_sent += (uint32_t)n;
			conn->pending_bytes -= n;
			break;
		}
		if (s->sg)
			sg_advance(conn, s->buf, left, rec);
		n -= left;
		conn->pending_bytes -= left;
		conn->head_sent = 0;
		conn->head_seg = 0;
		conn->head_seg_off = 0;
		slot_release(s);
		conn->head++;
	}
	conn->tx_ready = conn->head != conn->tail &&
		slot_at(conn, conn->head)->state == DP_CONN_SLOT_DONE;
}

void
dp_conn_tx_done(struct dp_conn *conn, size_t n)
{
	dp_conn_tx_done_records(conn, n, NULL);
}

void *
dp_conn_resp_alloc(struct dp_conn *conn)
{
	void *buf;

	if (conn->env->resp_pool == NULL || rte_mempool_get(conn->env->resp_pool, &buf) != 0)
		return NULL;
	return buf;
}

void
dp_conn_resp_free(void *arg, void *buf)
{
	rte_mempool_put((struct rte_mempool *)arg, buf);
}

int
dp_conn_reap_idle(struct dp_conn *conn, uint64_t now, uint64_t idle_tsc, int64_t idle_ms)
{
	char name[80];

	if (conn->closing || dp_conn_inflight(conn) != 0 || now - conn->last_active_tsc <= idle_tsc)
		return 0;
	dp_conn_peer_name(conn, name, sizeof(name));
	dp_log(DP_LOG_INFO, "closing %s: idle for over %" PRId64 " ms (connections.max.idle.ms)",
		name, idle_ms);
	dp_conn_close(conn);
	return 1;
}
