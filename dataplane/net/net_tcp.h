/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_tcp: the TCP API of the stack toward the Kafka layer.
 *
 * Connections live in a per-stack table preallocated at net_stack_create.
 * The layer above sees them through an opaque handle and a set of callbacks
 * (struct net_tcp_ops). Callbacks run inside net_stack_input / net_stack_poll
 * on the worker lcore. A callback may call any function of this header on
 * any connection: the calls only queue work (send, window update, close),
 * which the stack carries out at the end of the current input burst or poll,
 * so the stack is never re-entered. A connection handle stays valid until
 * its closed callback has returned; it is reclaimed at the end of that
 * burst, never inside a callback chain.
 *
 * Receive is zero copy: the data callback gets the received mbuf chain with
 * headers stripped and owns it. The receive window is given back with
 * net_tcp_recved() once the bytes are processed, so a slow consumer closes
 * the window rather than growing memory.
 */
#ifndef SLP_NET_TCP_H
#define SLP_NET_TCP_H

#include <stdint.h>

#include <rte_mbuf.h>

#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

struct net_tcp_conn;

/** Callbacks of a connection; every pointer may be NULL. */
struct net_tcp_ops {
	/**
	 * A passive open completed (the handshake's final ACK arrived). Return
	 * 0 to keep the connection, negative to refuse it (it is reset). The
	 * connection's callback argument is the listener's until
	 * net_tcp_conn_set_arg changes it.
	 */
	int (*accept)(void *arg, struct net_tcp_conn *c);
	/** An active open completed (ESTABLISHED). */
	void (*connected)(void *arg, struct net_tcp_conn *c);
	/**
	 * In-order bytes arrived. Owns m (a chain of len bytes, headers
	 * stripped; pkt_len == len). Call net_tcp_recved when the bytes have
	 * been consumed to reopen the window.
	 */
	void (*data)(void *arg, struct net_tcp_conn *c, struct rte_mbuf *m, uint32_t len);
	/** The peer sent FIN: no more data will arrive (CLOSE-WAIT or later). */
	void (*eof)(void *arg, struct net_tcp_conn *c);
	/** bytes of our data were acknowledged; that much send space is free again. */
	void (*sent)(void *arg, struct net_tcp_conn *c, uint32_t bytes);
	/**
	 * The connection is gone for the user: closed normally (status 0, our
	 * FIN acked and theirs received, or after abort), reset by the peer
	 * (-ECONNRESET), refused (-ECONNREFUSED) or timed out (-ETIMEDOUT). The
	 * handle must not be used after this returns.
	 */
	void (*closed)(void *arg, struct net_tcp_conn *c, int status);
};

/** TCP states of RFC 9293 section 3.3.2. */
enum net_tcp_state {
	NET_TCP_CLOSED = 0,
	NET_TCP_LISTEN,
	NET_TCP_SYN_SENT,
	NET_TCP_SYN_RECEIVED,
	NET_TCP_ESTABLISHED,
	NET_TCP_FIN_WAIT_1,
	NET_TCP_FIN_WAIT_2,
	NET_TCP_CLOSE_WAIT,
	NET_TCP_CLOSING,
	NET_TCP_LAST_ACK,
	NET_TCP_TIME_WAIT,
};

/**
 * Listen on a local port of the stack's address.
 *
 * @param port     host byte order.
 * @param backlog  bound on connections in SYN-RECEIVED for this port
 *                 (further SYNs are dropped and counted).
 * @param ops      callbacks, borrowed: must outlive the listener and its
 *                 connections.
 * @return 0, -EADDRINUSE, -ENOSPC (max_listeners reached), -EINVAL.
 */
int
net_tcp_listen(struct net_stack *st, uint16_t port, uint32_t backlog,
	const struct net_tcp_ops *ops, void *arg);

/**
 * Open a connection (active open). The SYN is sent by the next poll or
 * input burst; ops->connected or ops->closed reports the outcome.
 *
 * @param raddr  remote address, network order.
 * @param rport  remote port, host order.
 * @param out    receives the handle.
 * @return 0, -ENOMEM (table full), -EADDRNOTAVAIL (no source port fits).
 */
int
net_tcp_connect(struct net_stack *st, uint32_t raddr, uint16_t rport,
	const struct net_tcp_ops *ops, void *arg, struct net_tcp_conn **out);

/** Change the argument passed to the connection's callbacks. */
void
net_tcp_conn_set_arg(struct net_tcp_conn *c, void *arg);

/**
 * Queue bytes for sending, copying them into the send queue (mbufs of the
 * stack's pool).
 *
 * @return bytes accepted (possibly fewer than len when the send buffer is
 *         full, 0 included), or -ENOTCONN / -EPIPE (after close) / -ENOMEM.
 */
int
net_tcp_send(struct net_tcp_conn *c, const void *data, uint32_t len);

/**
 * Queue an mbuf chain for sending without copying (e.g. an mbuf with an
 * external buffer attached by rte_pktmbuf_attach_extbuf, pointing at cached
 * record batches). Consumes m on success and on error. Segments reference
 * it through clones, so it must not be written after the call.
 *
 * @return 0, -ENOBUFS (send buffer cannot take pkt_len more bytes),
 *         -ENOTCONN, -EPIPE.
 */
int
net_tcp_send_mbuf(struct net_tcp_conn *c, struct rte_mbuf *m);

/** Bytes that net_tcp_send would accept now. */
uint32_t
net_tcp_send_space(const struct net_tcp_conn *c);

/**
 * Give back receive window: bytes of data callbacks have been consumed.
 */
void
net_tcp_recved(struct net_tcp_conn *c, uint32_t bytes);

/**
 * Close our side (FIN after the queued data). The closed callback follows
 * once the connection is done for the user.
 *
 * @return 0 or -ENOTCONN when already closing.
 */
int
net_tcp_close(struct net_tcp_conn *c);

/**
 * Abort: send RST, drop queued data; the closed callback runs (status 0)
 * at the end of the current burst/poll.
 */
void
net_tcp_abort(struct net_tcp_conn *c);

/** Current state (for tests and diagnostics). */
enum net_tcp_state
net_tcp_conn_state(const struct net_tcp_conn *c);

/** Name of a state ("ESTABLISHED"...). */
const char *
net_tcp_state_name(enum net_tcp_state s);

/** Snapshot of a connection's variables, for tests and diagnostics. */
struct net_tcp_info {
	enum net_tcp_state state;
	uint32_t laddr, raddr;		/* network order */
	uint16_t lport, rport;		/* host order */
	uint32_t snd_una, snd_nxt, snd_wnd, cwnd, ssthresh;
	uint32_t rcv_nxt, rcv_wnd;
	uint16_t mss;			/* effective send MSS, payload bytes */
	uint8_t snd_wscale, rcv_wscale;
	bool ts_ok, sack_ok, ws_ok;
	uint32_t srtt_us, rttvar_us, rto_us;
	uint32_t unacked_bytes, queued_bytes;
};

void
net_tcp_conn_info(const struct net_tcp_conn *c, struct net_tcp_info *info);

/** Number of connections in the table (any state but reaped). */
uint32_t
net_tcp_conn_count(const struct net_stack *st);

#ifdef __cplusplus
}
#endif

#endif /* SLP_NET_TCP_H */
