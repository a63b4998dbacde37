/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_hop: requests that arrive on one lcore and are served on another.
 *
 * The broker (storage engine, every log, the request handlers) runs on one
 * lcore, the storage writer's (dataplane.storage.lcores[0]); net workers may
 * run on other lcores. A net worker's transport gives every complete frame
 * to dp_hop_frame() (a dp_conn_handler_fn). On the broker's lcore, and for
 * ApiVersions anywhere, that is a direct call of the inner handler
 * (dp_handler_frame). Elsewhere the frame is copied into a buffer of the
 * worker lcore and a descriptor travels over the reactors' SPSC message
 * rings (dp_msg_send, no locks):
 *
 *   1. worker -> broker   the request (frame copy, connection, request token)
 *   2. broker -> worker   the response (bytes, free function) or "close"
 *   3. worker -> broker   the response was sent (or dropped): free it there
 *   4. broker -> worker   the descriptor is home again
 *
 * On the broker lcore each descriptor has a proxy struct dp_conn (owned by
 * that lcore) with one request slot and a response pool of its own, so the
 * handlers make the same dp_conn calls (dp_conn_resp_alloc, dp_conn_reply,
 * dp_conn_close, dp_conn_peer_name), synchronously or later. The worker
 * replies on the real connection with dp_conn_reply(), which keeps
 * responses in request order and discards a reply to a connection closed
 * meanwhile (generation counter in the token): the response buffer then
 * goes back to the broker's lcore (step 3), where every response buffer is
 * freed, so pools stay single-lcore. A proxy's generation is bumped when
 * its response leaves, so a handler holding a stale proxy token is refused
 * the same way.
 *
 * Backpressure, never drops: a worker without a free descriptor or frame
 * buffer, or with the ring to the broker full, answers -EAGAIN (the
 * transport offers the frame again later). The broker serves hopped
 * requests in arrival order; a handler's -EAGAIN leaves the request at the
 * head of the queue until the next poll (a connection's requests keep their
 * order). Replies and returns that meet a full ring wait in an outbox
 * retried by a poller. Descriptors not home are counted for the SIGTERM
 * drain (dp_hop_pending()).
 *
 * Several storage writers: whole requests still hop to the one broker lcore
 * (writer 0, the metadata owner), which splits Produce and Fetch per
 * partition owner (dataplane/broker/dp_produce.c, dp_fetch.c). With
 * `hop_all` the broker lcore's own workers hop too (messages to itself), so
 * a handler may hand the frame to other lcores until it replies.
 */
#ifndef SLP_DP_HOP_H
#define SLP_DP_HOP_H

#include <stdbool.h>
#include <stdint.h>

#include "dp_conn.h"

/** Frame buffer classes per worker lcore: small, receive-buffer sized, largest frame. */
#define DP_HOP_FRAME_CLASSES 3
/** Bytes of a small frame buffer (most requests: Metadata, Fetch, small Produce). */
#define DP_HOP_SMALL_FRAME 4096u
/** Requests taken from the broker's queue per poll. */
#define DP_HOP_BURST 64u

struct dp_hop_opts {
	unsigned int broker_lcore;     /* where the inner handler runs */
	const unsigned int *lcores;    /* net worker lcores (repeats and the broker's allowed) */
	unsigned int n_lcores;
	uint32_t descs;                /* per worker lcore: hopped requests not yet home */
	uint32_t frame_bytes[DP_HOP_FRAME_CLASSES]; /* size of each class, ascending */
	uint32_t frame_count[DP_HOP_FRAME_CLASSES]; /* buffers of each class per worker lcore */
	uint32_t resp_buf_bytes;       /* broker-side response buffer size */
	uint32_t resp_bufs;            /* broker-side response buffers per worker lcore */
	bool hop_all;                  /* hop the broker lcore's own workers' requests too, so
	                                * every handled frame lives until its reply (several
	                                * storage writers: Produce hands it to other lcores) */
	dp_conn_handler_fn handler;    /* the inner handler (dp_handler_frame) */
	void *handler_arg;             /* borrowed; must outlive the transport */
};

/** Counters of one worker lcore (written by that lcore, relaxed reads). */
struct dp_hop_stats {
	uint64_t hopped;        /* requests sent to the broker lcore */
	uint64_t local;         /* requests served without a hop (ApiVersions) */
	uint64_t deferred_desc; /* -EAGAIN: no free descriptor */
	uint64_t deferred_buf;  /* -EAGAIN: no free frame buffer */
	uint64_t deferred_ring; /* -EAGAIN: the ring to the broker was full */
	uint64_t closed;        /* the broker asked to close the connection */
	uint64_t late;          /* replies to connections closed meanwhile */
	uint64_t rtt_tsc_sum;   /* TSC from step 1 sent to step 2 received, summed */
	uint64_t rtt_tsc_max;
	uint64_t pending;       /* descriptors not home */
	uint64_t outbox_waits;  /* releases (step 3) that met a full ring */
};

/** Counters of the broker side (written by the broker lcore, relaxed reads). */
struct dp_hop_broker_stats {
	uint64_t served;        /* hopped requests the inner handler took */
	uint64_t deferred;      /* the inner handler said -EAGAIN (request kept queued) */
	uint64_t queued;        /* waiting in the queue now */
	uint64_t outbox_waits;  /* replies and returns (steps 2, 4) that met a full ring */
	uint64_t resp_free;     /* broker-side response buffers free now */
	uint64_t late;          /* replies to a proxy whose response had left (stale token) */
};

/**
 * Set up the descriptors, frame buffers and proxies for every worker lcore
 * that is not the broker's, and register the pollers ("hop.out" on each
 * such lcore, "hop.serve" on the broker's). Start-up only, on the main
 * lcore, after dp_reactors_init(). With no worker off the broker's lcore
 * nothing is allocated and dp_hop_frame() always calls the handler.
 *
 * @return 0, -EINVAL (bad options), -ENOMEM (logged with the keys to change),
 *         or dp_poller_register()'s error.
 */
int dp_hop_init(const struct dp_hop_opts *o);

/** Free everything (after the reactors stopped). Buffers still out are freed with it. */
void dp_hop_fini(void);

/**
 * The transports' request handler (dp_conn_handler_fn); @arg is ignored
 * (the inner handler's argument is in the options). @frame is borrowed
 * until this returns (a hopped frame is copied).
 *
 * @return the inner handler's result when called directly; for a hopped
 *         request 0, or -EAGAIN (offer it again later: no descriptor, no
 *         frame buffer, or a full ring).
 */
int dp_hop_frame(void *arg, struct dp_conn *conn, uint64_t req, const uint8_t *frame,
	uint32_t len);

/** True when requests on @lcore hop to the broker lcore. */
bool dp_hop_remote(unsigned int lcore);

/**
 * Descriptors not home over all worker lcores (hopped requests queued,
 * served, being sent, or their buffers on the way back). Any lcore;
 * relaxed reads, for the drain and metrics.
 */
uint64_t dp_hop_pending(void);

/** Counters of worker lcore @lcore. @return 0, or -EINVAL (no hop state there). */
int dp_hop_stats_get(unsigned int lcore, struct dp_hop_stats *out);

/** Counters of the broker side. */
void dp_hop_broker_stats_get(struct dp_hop_broker_stats *out);

/** Log the counters (one info line per worker lcore, one for the broker). Any thread. */
void dp_hop_log_stats(void);

#endif /* SLP_DP_HOP_H */
