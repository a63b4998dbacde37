/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The load generator's transport: the few operations its connections need,
 * behind a table of function pointers, so the byte streams can run over
 * kernel sockets (lg_tcp.c) or over Slipstream's own stack (lg_memif.c).
 *
 * One transport instance belongs to one worker thread and drives all of that
 * thread's connections: lg_transport_ops.poll waits (at most @timeout_us) and
 * calls back once per connection that became readable or writable. The
 * kernel transport does that with epoll over non-blocking sockets.
 *
 * The DPDK transport (lg_memif.c, lg_memif.h) is the second ops table: our
 * TCP/IP stack on a net_memif port to the broker, polled without sleeping;
 * it also sends requests by reference (send_ref), without copying them
 * into the stack's send queue.
 * lg_run.c only calls these ops; lg_transport_by_name() is the switch
 * (--transport tcp|memif).
 */
#ifndef SLP_LG_TRANSPORT_H
#define SLP_LG_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct lg_transport;
struct lg_tconn;

/* Called by poll for a connection with news; @arg is what connect was given. */
typedef void (*lg_ready_fn)(void *arg, bool readable, bool writable);

/*
 * A buffer lent to a transport by send_ref (below). The caller owns the
 * struct and the buffer; the transport keeps them until it calls
 * done(ref) (on the worker's thread, from inside poll, send_ref, close or
 * destroy). held is true from the first send_ref until done: the buffer
 * must not be written or freed while it is. priv is the transport's (the
 * memif one keeps DPDK's external-buffer refcount there).
 */
struct lg_tx_ref {
	void (*done)(struct lg_tx_ref *ref);
	void *arg;	/* the caller's */
	bool held;	/* the transport still references the buffer */
	uint64_t priv[4];
};

struct lg_transport_ops {
	const char *name; /* "tcp", "memif" */

	/** A transport for the calling thread, or NULL (errno set). */
	struct lg_transport *(*create)(void);

	/** Close every connection still open and free @t. */
	void (*destroy)(struct lg_transport *t);

	/**
	 * Start a connection to @host:@port (an IPv4 literal or a name resolved
	 * once); completes in the background: the first writable report means
	 * it is up, a failure shows as an error from writev/read.
	 * @param arg  handed back to the poll callback for this connection.
	 * @return 0 and *@out, or a negative errno.
	 */
	int (*connect)(struct lg_transport *t, const char *host, uint16_t port, void *arg,
		       struct lg_tconn **out);

	/**
	 * Send as much of @iov (borrowed for the call) as fits without waiting.
	 * @return bytes taken (possibly 0), or a negative errno (-EPIPE, ...).
	 */
	ssize_t (*writev)(struct lg_tconn *c, const struct iovec *iov, int iovcnt);

	/**
	 * Optional (NULL: use writev). Queue the first bytes of @buf for sending
	 * without copying them: the transport references @buf until it calls
	 * @ref->done. Successive calls with the same @ref may lend further
	 * parts of the same buffer.
	 * @return bytes taken (a prefix of @len, possibly 0 when the send buffer
	 *   is full), or a negative errno (-EPIPE, ...).
	 */
	ssize_t (*send_ref)(struct lg_tconn *c, const void *buf, size_t len,
			    struct lg_tx_ref *ref);

	/**
	 * Receive into @buf (borrowed, @cap bytes) without waiting.
	 * @return bytes (> 0), 0 when nothing is there, -ECONNRESET when the
	 *   peer closed, or another negative errno.
	 */
	ssize_t (*read)(struct lg_tconn *c, void *buf, size_t cap);

	/** Ask for (or stop asking for) writable reports on @c. */
	void (*want_write)(struct lg_tconn *c, bool on);

	/**
	 * Wait up to @timeout_us (0: do not wait) and call @cb for every
	 * connection that became readable or writable.
	 * @return connections reported, or a negative errno.
	 */
	int (*poll)(struct lg_transport *t, int64_t timeout_us, lg_ready_fn cb);

	/** Close @c now; it is not reported again. */
	void (*close)(struct lg_tconn *c);

	/**
	 * Optional (NULL: poll sleeps when idle, the thread's CPU time is its
	 * work). Nanoseconds poll spent so far in iterations that received
	 * frames or reported a connection (callbacks included), the rest being
	 * a busy-polling transport's idle spin.
	 */
	uint64_t (*busy_ns)(struct lg_transport *t);
};

/** The kernel socket transport (epoll, non-blocking TCP, TCP_NODELAY). */
extern const struct lg_transport_ops lg_tcp_ops;

/** The ops table called @name ("tcp", "memif"), or NULL. */
const struct lg_transport_ops *
lg_transport_by_name(const char *name);

#endif /* SLP_LG_TRANSPORT_H */
