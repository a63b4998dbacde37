/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_conn: one client connection as the Kafka layer sees it, whatever the
 * transport (kernel sockets now, the DPDK TCP stack later).
 *
 * A transport embeds struct dp_conn in its own connection struct and fills
 * dp_conn_ops. Received bytes go through the connection's dp_frame; whole
 * frames are delivered by dp_conn_deliver() to the request handler
 * `(arg, conn, req, frame, len)`. Each delivered frame takes a request slot;
 * many may be in flight, and responses leave in request order whatever order
 * they are completed in (dp_conn_reply()). Reading pauses (backpressure)
 * while the slots are full or unsent response bytes exceed a bound.
 *
 * All of a connection's state belongs to the lcore of its net worker; other
 * lcores reach it only by message. Connections are closed by flag
 * (dp_conn_close()) and reaped by their transport at the end of the poll
 * iteration, never freed inside a callback chain. A request token carries
 * the connection's generation, so a late reply to a closed (and maybe
 * reused) connection is recognised and its buffer released.
 */
#ifndef SLP_DP_CONN_H
#define SLP_DP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "dp_frame.h"

struct dp_conn;

/** Releases a response buffer once sent (or dropped). */
typedef void (*dp_resp_free_fn)(void *arg, void *buf);

/*
 * Scatter-gather responses. A response may be a sequence of segments instead
 * of one buffer: bytes the responder encoded (owned with the response) and
 * bytes it borrowed from elsewhere (records in the storage tail cache, a disk
 * read buffer), sent in place without a copy. Every segment stays valid until
 * the response's free function runs: for the kernel transport once the last
 * byte was written, for the DPDK transport once the peer acknowledged it (the
 * mbufs attached to the bytes are freed), on either at the connection's reset
 * if that comes first. The free function is the one place that drops the
 * borrowed references, on the lcore that took them (dp_hop sends it home).
 */
#define DP_SEG_RECORDS 0x1u  /* Kafka record bytes (counted as Fetch record bytes) */
#define DP_SEG_BORROWED 0x2u /* borrowed bytes: the broker made no copy of them */

/** One segment of a scatter-gather response. */
struct dp_seg {
	const uint8_t *p; /* the bytes (owned by the response's responder) */
	uint32_t len;     /* bytes, > 0 */
	uint32_t flags;   /* DP_SEG_* */
};

/** A scatter-gather response: @n segments sent in order, @len bytes in all. */
struct dp_sg {
	struct dp_seg *segs;
	uint32_t n;
	uint32_t len; /* sum of the segments' lengths */
};

/** Record bytes a transport wrote, by how they left (dp_conn_tx_done_records()). */
struct dp_tx_records {
	uint64_t borrowed; /* in DP_SEG_BORROWED segments */
	uint64_t owned;    /* in record segments the broker copied into its own buffer */
};

/**
 * The request handler. @frame is borrowed until the handler returns; the
 * handler answers now or later with dp_conn_reply(conn, req, ...).
 *
 * @return 0 when the request was taken; -EAGAIN when it cannot be taken now
 *         (resources): the frame is kept and offered again on a later poll;
 *         any other negative errno closes the connection (e.g. an unknown
 *         API key, as Kafka does).
 */
typedef int (*dp_conn_handler_fn)(void *arg, struct dp_conn *conn, uint64_t req,
	const uint8_t *frame, uint32_t len);

struct dp_conn_ops {
	/**
	 * The connection changed (responses ready at the head, or closed by
	 * flag): the transport looks at it at the end of this iteration.
	 * Must not free anything.
	 */
	void (*kick)(struct dp_conn *conn);
	/** Write "addr:port" of the peer into @buf. */
	void (*peer_name)(const struct dp_conn *conn, char *buf, size_t len);
};

/** A stack of equal-sized buffers owned by one lcore (large frames). */
struct dp_bufstack {
	void **items;   /* free buffers */
	uint32_t n;     /* free now */
	uint32_t cap;   /* total */
	uint32_t size;  /* bytes in each */
};

struct rte_mempool;

/** What the connections of one net worker share. Owned by that worker's lcore. */
struct dp_conn_env {
	dp_conn_handler_fn handler;
	void *handler_arg;
	struct dp_bufstack *large;     /* large-frame buffers; may have cap 0 */
	uint32_t max_inflight;         /* requests in flight per connection, >= 1 */
	uint64_t max_pending_bytes;    /* unsent response bytes before reading pauses */
	struct rte_mempool *resp_pool; /* response buffers of this worker (may be NULL in tests) */
	uint32_t resp_buf_size;        /* bytes in each */
	bool draining;                 /* shutting down: take no new requests */
	/* Counters (this worker's), exported as metrics later. */
	uint64_t n_frames;
	uint64_t n_oversized;
	uint64_t n_bad_size;
	uint64_t n_handler_closed;
	uint64_t n_late_replies;
};

enum dp_conn_slot_state {
	DP_CONN_SLOT_PENDING = 1, /* handler has it */
	DP_CONN_SLOT_DONE = 2,    /* response ready (possibly 0 bytes) */
};

struct dp_conn_slot {
	const void *buf;          /* response bytes, or its struct dp_sg when @sg (borrowed from
	                           * the responder until freed; passed to free_fn) */
	uint32_t len;             /* bytes */
	uint8_t state;            /* enum dp_conn_slot_state */
	bool sg;                  /* @buf is a struct dp_sg */
	dp_resp_free_fn free_fn;  /* may be NULL */
	void *free_arg;
	uint64_t arrival_tsc;     /* when the frame was delivered (request latency metric) */
	int16_t api_key;          /* from the frame's first bytes, -1 if too short */
};

struct dp_conn {
	const struct dp_conn_ops *ops;
	struct dp_conn_env *env;
	struct dp_frame rx;
	struct dp_conn_slot *slots;  /* dp_conn_slot_count(env->max_inflight) entries */
	uint32_t slot_mask;          /* that count - 1 */
	uint32_t head;               /* oldest slot in use (counter, index = head % n) */
	uint32_t tail;               /* next slot to use */
	uint32_t head_sent;          /* bytes of the head response already sent */
	uint32_t head_seg;           /* scatter-gather head: its first segment not wholly sent */
	uint32_t head_seg_off;       /* bytes of that segment sent */
	uint32_t gen;                /* bumped at each dp_conn_reset() */
	uint64_t pending_bytes;      /* bytes of DONE responses not yet sent */
	uint64_t last_active_tsc;    /* last byte in or out */
	bool closing;                /* closed by flag; the transport reaps it */
	bool tx_ready;               /* the head slot is DONE */
	bool rx_stalled;             /* a complete frame waits for a resource (large buffer,
	                              * handler -EAGAIN): retry without a read event */
	void *user;                  /* the Kafka layer's per-connection state */
	int16_t listener;            /* index in dp_config's listener[] it came in on (set by
	                              * the transport at accept); -1: none (unix socket) */
};

/**
 * Slots to allocate per connection for @max_inflight requests: the next
 * power of two, so slot indexes stay continuous when the 32-bit request
 * counters wrap.
 */
static inline uint32_t
dp_conn_slot_count(uint32_t max_inflight)
{
	uint32_t n = 1;

	while (n < max_inflight)
		n <<= 1;
	return n;
}

/**
 * Prepare @conn (once, at start-up) over its preallocated receive buffer
 * and slot array. @slots holds dp_conn_slot_count(env->max_inflight)
 * entries. Borrowed.
 */
void dp_conn_setup(struct dp_conn *conn, const struct dp_conn_ops *ops, struct dp_conn_env *env,
	uint8_t *rx_buf, uint32_t rx_cap, uint32_t max_frame, struct dp_conn_slot *slots);

/**
 * Release what a closed connection holds (sent-or-not responses, a large
 * buffer) and bump its generation, ready for reuse. Late replies to its
 * pending requests are then discarded by dp_conn_reply().
 */
void dp_conn_reset(struct dp_conn *conn);

/** Mark @conn for closing; the transport reaps it at the end of the iteration. */
static inline void
dp_conn_close(struct dp_conn *conn)
{
	conn->closing = true;
	conn->ops->kick(conn);
}

/** Requests taken and not yet fully sent. */
static inline uint32_t
dp_conn_inflight(const struct dp_conn *conn)
{
	return conn->tail - conn->head;
}

/** May the transport read more bytes now (backpressure)? */
static inline bool
dp_conn_may_read(const struct dp_conn *conn)
{
	return !conn->closing && !conn->env->draining &&
		dp_conn_inflight(conn) < conn->env->max_inflight &&
		conn->pending_bytes < conn->env->max_pending_bytes;
}

/**
 * Hand every complete frame in the receive buffer to the handler, as far as
 * slots allow. Attaches a large buffer when a frame needs one and one is free.
 *
 * @return frames delivered (>= 0); -EMSGSIZE or -EBADMSG for a bad size
 *         prefix, or the handler's error: the caller closes the connection
 *         (the reason has been logged).
 */
int dp_conn_deliver(struct dp_conn *conn);

/**
 * Hand one complete frame that lies outside the receive buffer (a transport
 * parsing in place, e.g. in a received mbuf) to the handler, taking a slot as
 * dp_conn_deliver() does. Call only while the receive buffer holds no bytes
 * (dp_frame_buffered() == 0), so frames keep their order. The caller has
 * checked the size prefix (0 < @len <= rx.max_frame). @frame is borrowed
 * until this returns.
 *
 * @return 1 when the handler took it; 0 when it was not taken now (no slot,
 *         draining, closing, or the handler said -EAGAIN: rx_stalled is then
 *         set): offer it again later; or the handler's error (close).
 */
int dp_conn_deliver_frame(struct dp_conn *conn, const uint8_t *frame, uint32_t len);

/**
 * Complete request @req with @len bytes at @buf (len 0: no response, as for
 * acks=0). Ownership of @buf passes to the connection, which calls
 * @free_fn(@free_arg, buf) once the bytes are sent or dropped; when @req is
 * stale (connection closed) that happens before this returns.
 *
 * @return 0, or -ENOTCONN for a stale token, -EINVAL for a token not pending.
 */
int dp_conn_reply(struct dp_conn *conn, uint64_t req, const void *buf, uint32_t len,
	dp_resp_free_fn free_fn, void *free_arg);

/**
 * dp_conn_reply() for a scatter-gather response: @sg (and the segments it
 * lists) is borrowed from the responder until the connection calls
 * @free_fn(@free_arg, sg) (see "Scatter-gather responses"); when @req is
 * stale that happens before this returns. @sg->len is the response's size.
 *
 * @return as dp_conn_reply().
 */
int dp_conn_reply_sg(struct dp_conn *conn, uint64_t req, const struct dp_sg *sg,
	dp_resp_free_fn free_fn, void *free_arg);

/**
 * The ready bytes, in order, for a gathering write: responses at the head
 * that are DONE, from the first unsent byte; one iovec per segment of a
 * scatter-gather response.
 *
 * @return iovecs filled (<= @max); 0 when nothing is ready.
 */
int dp_conn_tx_iov(const struct dp_conn *conn, struct iovec *iov, int max);

/**
 * dp_conn_tx_iov() that also gives each iovec's segment flags (DP_SEG_*; 0 for
 * a plain response) in @flags[]: transports choose per segment how to send it.
 */
int dp_conn_tx_segs(const struct dp_conn *conn, struct iovec *iov, uint32_t *flags, int max);

/**
 * Record that @n bytes from dp_conn_tx_iov() were sent; releases the
 * responses fully sent (and empty ones behind them).
 */
void dp_conn_tx_done(struct dp_conn *conn, size_t n);

/**
 * dp_conn_tx_done() that also adds the record bytes among the @n to @rec
 * (borrowed ones and ones in the broker's own buffers), for the transports'
 * Fetch zero-copy counters.
 */
void dp_conn_tx_done_records(struct dp_conn *conn, size_t n, struct dp_tx_records *rec);

/**
 * Take a response buffer from the worker's pool (env->resp_buf_size bytes).
 * Pass it to dp_conn_reply() with dp_conn_resp_free and conn->env->resp_pool.
 *
 * @return the buffer (owned by the caller until replied), or NULL when the
 *         pool is empty (answer -EAGAIN from the handler: the request is
 *         offered again later).
 */
void *dp_conn_resp_alloc(struct dp_conn *conn);

/** dp_resp_free_fn for buffers of dp_conn_resp_alloc(); @arg is the pool. */
void dp_conn_resp_free(void *arg, void *buf);

/**
 * Idle reaping (connections.max.idle.ms), for the transports' idle pollers:
 * close @conn with a log line when it is open, has no request in flight and
 * was last active more than @idle_tsc TSC cycles before @now (@idle_ms is
 * the configured value, for the log).
 *
 * @return 1 when it was closed, else 0.
 */
int dp_conn_reap_idle(struct dp_conn *conn, uint64_t now, uint64_t idle_tsc, int64_t idle_ms);

/** Write "addr:port" of the peer into @buf. */
static inline void
dp_conn_peer_name(const struct dp_conn *conn, char *buf, size_t len)
{
	conn->ops->peer_name(conn, buf, len);
}

/** Generation of @req's connection (for tests and logs). */
static inline uint32_t
dp_conn_req_gen(uint64_t req)
{
	return (uint32_t)(req >> 32);
}

#endif /* SLP_DP_CONN_H */
