/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_kernel: kernel sockets driven by epoll from the reactors (see
 * net_kernel.h).
 *
 * Per worker, every iteration:
 *   net_kernel_poll (poller)      epoll_wait(0); accept (worker 0); read into
 *                                 the framer; deliver frames; mark touched
 *   net_kernel_flush (end poller) for each touched connection: gathering
 *                                 write of ready responses, deliver frames
 *                                 held back, set the epoll interest from
 *                                 backpressure, reap connections closed by
 *                                 flag
 *   net_kernel_idle (every ~s)    close connections idle too long
 * A connection is "touched" (queued for the end poller) by any event, by a
 * reply (dp_conn_ops.kick) or by dp_conn_close(); a flag keeps it on the
 * list once. The end poller walks the list in passes (see nk_end): a
 * connection touched again after it was walked is walked again. Epoll is
 * level-triggered; EPOLLIN is dropped while a connection may not read,
 * EPOLLOUT is set only after a short write.
 */
#include "net_kernel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mempool.h>

#include "dp_log.h"
#include "dp_metrics.h"
#include "dp_reactor.h"

#define NK_EPOLL_BATCH 64
#define NK_ACCEPT_BURST 32
#define NK_READS_PER_EVENT 4   /* fairness: bounded reads per connection per poll */
#define NK_IOV_MAX 64
#define NK_LISTENER_TAG (1ULL << 63)
#define NK_END_PASSES 8        /* walks of the touched list per iteration; the rest waits */

struct nk_conn {
	struct dp_conn base;           /* first: dp_conn pointers cast back */
	int fd;                        /* -1 when free */
	uint32_t idx;                  /* in the worker's table */
	uint32_t events;               /* epoll interest now */
	bool in_use;
	bool touched;                  /* on the worker's touched list */
	bool stalled;                  /* on the worker's stalled list */
	bool want_out;                 /* last write was short: wait for EPOLLOUT */
	bool rx_waiting;               /* readable, but no shared receive buffer was free */
	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct nk_worker *w;
};

struct nk_listener {
	int fd;                        /* -1 when closed */
	uint16_t port;                 /* bound port */
	int16_t cfg_index;             /* in dp_config's listener[]; -1: the unix one */
	char name[32];
};

struct nk_worker {
	unsigned int index;
	unsigned int lcore;
	int epfd;
	struct dp_conn_env env;
	struct nk_conn *conns;         /* max_conns, rte_malloc */
	uint32_t max_conns;
	uint32_t *free_stack;          /* indexes of free connections */
	uint32_t n_free;
	uint32_t *touched;             /* indexes touched, not walked yet (each once: flag) */
	uint32_t n_touched;
	uint32_t *walk;                /* the list being walked (swapped with touched) */
	uint32_t *stalled;             /* indexes with a frame waiting for a resource */
	uint32_t n_stalled;
	uint8_t *rx_mem;               /* rx_bufs.cap (or max_conns) * rx_cap */
	struct dp_bufstack rx_bufs;    /* shared receive buffers; cap 0: one per connection */
	uint64_t n_rx_waits;           /* reads put off for want of a receive buffer */
	struct dp_conn_slot *slot_mem; /* max_conns * dp_conn_slot_count(max_inflight) */
	struct dp_bufstack large;
	void **large_items;
	uint64_t idle_tsc;             /* 0 = never reap idle */
	uint64_t published_pending;    /* requests in flight, written while draining */
	uint64_t n_accepted;
	uint64_t n_closed;
	uint32_t rr_next;              /* acceptor: next worker to get a connection */
} __rte_cache_aligned;

static struct nk_worker *g_workers;
static unsigned int g_n_workers;
static struct nk_listener g_listeners[DP_CONFIG_MAX_LISTENERS + 1]; /* + the unix one */
static unsigned int g_n_listeners;
static const struct dp_config *g_cfg;
static bool g_local_only; /* net_kernel_init_local(): unix listener, one worker */
static char g_unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* "" = none */

static void nk_kick(struct dp_conn *conn);
static void nk_peer_name(const struct dp_conn *conn, char *buf, size_t len);

static const struct dp_conn_ops nk_ops = {
	.kick = nk_kick,
	.peer_name = nk_peer_name,
};

static void
sockaddr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned int port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%u", host, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%u", host, port);
	} else {
		snprintf(buf, len, "?");
	}
}

static void
nk_peer_name(const struct dp_conn *conn, char *buf, size_t len)
{
	const struct nk_conn *c = (const struct nk_conn *)(const void *)conn;

	sockaddr_text(&c->peer, buf, len);
}

static void
nk_touch(struct nk_conn *c)
{
	if (!c->touched) {
		c->touched = true;
		c->w->touched[c->w->n_touched++] = c->idx;
	}
}

static void
nk_kick(struct dp_conn *conn)
{
	nk_touch((struct nk_conn *)(void *)conn);
}

static void
nk_set_sockopts(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (g_cfg->socket_send_buffer_bytes > 0) {
		int v = (int)g_cfg->socket_send_buffer_bytes;

		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	}
	if (g_cfg->socket_receive_buffer_bytes > 0) {
		int v = (int)g_cfg->socket_receive_buffer_bytes;

		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	}
}

/* Take ownership of socket @fd on worker @w (runs on w's lcore). */
static void
nk_adopt(struct nk_worker *w, int fd, const struct sockaddr_storage *peer, socklen_t peer_len,
	int16_t listener)
{
	struct epoll_event ev;
	struct nk_conn *c;
	char name[80];

	if (w->env.draining || w->n_free == 0) {
		sockaddr_text(peer, name, sizeof(name));
		dp_log(DP_LOG_WARN, "refusing %s: %s", name,
			w->env.draining ? "shutting down" :
					  "dataplane.max.connections reached on this worker");
		close(fd);
		return;
	}
	c = &w->conns[w->free_stack[--w->n_free]];
	c->fd = fd;
	c->in_use = true;
	c->want_out = false;
	c->peer = *peer;
	c->peer_len = peer_len;
	c->base.listener = listener;
	c->base.last_active_tsc = rte_rdtsc();
	c->events = EPOLLIN;
	ev.events = EPOLLIN;
	ev.data.u64 = c->idx;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		dp_log(DP_LOG_ERROR, "epoll_ctl(ADD): %s", strerror(errno));
		c->base.closing = true;
		nk_touch(c);
		return;
	}
	w->n_accepted++;
	dp_metrics_conn_accepted();
	if (DP_LOG_ENABLED(DP_LOG_DEBUG)) {
		sockaddr_text(peer, name, sizeof(name));
		dp_log(DP_LOG_DEBUG, "connection from %s on worker %u", name, w->index);
	}
}

/* A socket handed over by the acceptor: arg packs (worker << 40 | (listener + 1) << 32 | fd). */
static void
nk_adopt_msg(void *arg)
{
	uint64_t v = (uint64_t)(uintptr_t)arg;
	struct nk_worker *w = &g_workers[v >> 40];
	int16_t listener = (int16_t)((v >> 32 & 0xff) - 1);
	int fd = (int)(uint32_t)v;
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);

	memset(&peer, 0, sizeof(peer));
	getpeername(fd, (struct sockaddr *)&peer, &len);
	nk_adopt(w, fd, &peer, len, listener);
}

static int
nk_accept(struct nk_worker *w, struct nk_listener *l)
{
	int n = 0;

	while (n < NK_ACCEPT_BURST && l->fd >= 0) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		struct nk_worker *dst;
		int fd = accept4(l->fd, (struct sockaddr *)&peer, &len,
			SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
				errno != ECONNABORTED)
				dp_log(DP_LOG_WARN, "accept on %s: %s", l->name, strerror(errno));
			break;
		}
		n++;
		nk_set_sockopts(fd);
		dst = &g_workers[w->rr_next];
		w->rr_next = (w->rr_next + 1) % g_n_workers;
		if (dst == w) {
			nk_adopt(w, fd, &peer, len, l->cfg_index);
		} else {
			uint64_t v = (uint64_t)dst->index << 40 |
				(uint64_t)(uint8_t)(l->cfg_index + 1) << 32 | (uint32_t)fd;
			int rc = dp_msg_send(dst->lcore, nk_adopt_msg, (void *)(uintptr_t)v);

			if (rc < 0) {
				dp_log(DP_LOG_WARN, "cannot hand a connection to worker %u (%s)",
					dst->index, strerror(-rc));
				close(fd);
			}
		}
	}
	return n;
}

/*
 * Shared receive buffers (dataplane.conn.rx.buffers): a connection takes one
 * when it has bytes to read and gives it back once every byte in it was
 * parsed and handed over (frames are borrowed only while the handler runs),
 * so an idle connection holds none. Returns false when none is free: the
 * read waits (EPOLLIN stays on, so it is retried at the next poll).
 */
static bool
nk_rx_take(struct nk_worker *w, struct nk_conn *c)
{
	struct dp_frame *fr = &c->base.rx;

	if (fr->buf != NULL)
		return true;
	if (w->rx_bufs.n == 0) {
		if (!c->rx_waiting)
			w->n_rx_waits++;
		c->rx_waiting = true;
		return false;
	}
	c->rx_waiting = false;
	fr->buf = w->rx_bufs.items[--w->rx_bufs.n];
	fr->cap = w->rx_bufs.size;
	fr->head = fr->tail = 0;
	return true;
}

static void
nk_rx_give_back(struct nk_worker *w, struct nk_conn *c)
{
	struct dp_frame *fr = &c->base.rx;

	if (w->rx_bufs.cap == 0 || fr->buf == NULL || fr->head != fr->tail || fr->large != NULL)
		return;
	w->rx_bufs.items[w->rx_bufs.n++] = fr->buf;
	fr->buf = NULL;
	fr->cap = 0;
	fr->head = fr->tail = 0;
}

static void
nk_read(struct nk_worker *w, struct nk_conn *c)
{
	if (!nk_rx_take(w, c))
		return;
	for (int i = 0; i < NK_READS_PER_EVENT && dp_conn_may_read(&c->base); i++) {
		uint8_t *p;
		uint32_t space = dp_frame_rx_space(&c->base.rx, &p);
		ssize_t n;
		int rc;

		if (space == 0)
			break;
		n = recv(c->fd, p, space, MSG_DONTWAIT);
		if (n > 0) {
			dp_frame_rx_commit(&c->base.rx, (uint32_t)n);
			c->base.last_active_tsc = rte_rdtsc();
			rc = dp_conn_deliver(&c->base);
			if (rc < 0) {
				c->base.closing = true;
				break;
			}
			if ((uint32_t)n < space)
				break;
		} else if (n == 0) {
			c->base.closing = true; /* the client closed its side */
			break;
		} else if (errno == EINTR) {
			continue;
		} else {
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				char name[80];

				nk_peer_name(&c->base, name, sizeof(name));
				dp_log(DP_LOG_DEBUG, "closing %s: recv: %s", name, strerror(errno));
				c->base.closing = true;
			}
			break;
		}
	}
}

static int
nk_poll(void *arg)
{
	struct nk_worker *w = arg;
	struct epoll_event ev[NK_EPOLL_BATCH];
	int n = epoll_wait(w->epfd, ev, NK_EPOLL_BATCH, 0);
	int work = 0;

	for (int i = 0; i < n; i++) {
		uint64_t tag = ev[i].data.u64;
		struct nk_conn *c;

		if (tag & NK_LISTENER_TAG) {
			work += nk_accept(w, &g_listeners[tag & 0xff]);
			continue;
		}
		c = &w->conns[tag];
		if (!c->in_use || c->base.closing)
			continue;
		nk_touch(c);
		work++;
		if (ev[i].events & EPOLLOUT)
			c->want_out = false;
		if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			nk_read(w, c);
		/*
		 * Reported even while EPOLLIN is off for backpressure: the peer is
		 * gone both ways (or reset), so nothing more can be sent. Closing
		 * here also keeps a level-triggered HUP from spinning.
		 */
		if (ev[i].events & (EPOLLHUP | EPOLLERR))
			c->base.closing = true;
	}
	return work;
}

/*
 * Send ready responses until the socket is full. @closing: a last attempt
 * before closing (earlier requests still get their answers, as in Kafka,
 * which answers a connection's requests one at a time).
 */
static void
nk_flush(struct nk_conn *c, bool closing)
{
	while (c->base.tx_ready && !c->want_out && (closing || !c->base.closing)) {
		struct iovec iov[NK_IOV_MAX];
		struct dp_tx_records rec = {0, 0};
		struct msghdr msg;
		size_t total = 0;
		ssize_t sent;
		int n = dp_conn_tx_iov(&c->base, iov, NK_IOV_MAX);

		if (n == 0) {
			uint32_t head = c->base.head;

			dp_conn_tx_done(&c->base, 0); /* empty responses (acks=0) */
			if (c->base.head == head)
				break;
			continue;
		}
		for (int i = 0; i < n; i++)
			total += iov[i].iov_len;
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)n;
		sent = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (sent < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				c->want_out = true;
				break;
			}
			c->want_out = true;
			c->base.closing = true;
			break;
		}
		c->base.last_active_tsc = rte_rdtsc();
		/* Straight from the segments: record bytes in the broker's buffers only if copied. */
		dp_conn_tx_done_records(&c->base, (size_t)sent, &rec);
		dp_metrics_fetch_records(DP_METRICS_TR_KERNEL, rec.borrowed, rec.owned);
		if ((size_t)sent < total) {
			c->want_out = true;
			break;
		}
	}
}

static void
nk_reap(struct nk_worker *w, struct nk_conn *c)
{
	char name[80];

	if (DP_LOG_ENABLED(DP_LOG_DEBUG)) {
		nk_peer_name(&c->base, name, sizeof(name));
		dp_log(DP_LOG_DEBUG, "closed %s", name);
	}
	close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	c->in_use = false;
	c->want_out = false;
	c->rx_waiting = false;
	c->events = 0;
	dp_conn_reset(&c->base);
	nk_rx_give_back(w, c); /* emptied by the reset */
	w->free_stack[w->n_free++] = c->idx;
	w->n_closed++;
	dp_metrics_conn_closed();
}

static void
nk_update_interest(struct nk_worker *w, struct nk_conn *c)
{
	uint32_t want = 0;
	uint8_t *p;

	if (dp_conn_may_read(&c->base) && !c->base.rx_stalled &&
		(c->base.rx.buf == NULL || dp_frame_rx_space(&c->base.rx, &p) > 0))
		want |= EPOLLIN; /* no buffer: one is taken when bytes come */
	if (c->want_out)
		want |= EPOLLOUT;
	if (want != c->events) {
		struct epoll_event ev = {.events = want, .data.u64 = c->idx};

		if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
			c->base.closing = true;
		else
			c->events = want;
	}
}

/* The end poller's work on one touched connection. */
static void
nk_walk_one(struct nk_worker *w, struct nk_conn *c)
{
	if (!c->base.closing)
		nk_flush(c, false);
	if (!c->base.closing && dp_conn_may_read(&c->base) &&
		dp_frame_buffered(&c->base.rx) > 0) {
		if (dp_conn_deliver(&c->base) < 0)
			c->base.closing = true;
		else
			nk_flush(c, false);
	}
	if (c->base.closing) {
		nk_flush(c, true);
		nk_reap(w, c);
		return;
	}
	if (c->base.rx_stalled && !c->stalled) {
		c->stalled = true;
		w->stalled[w->n_stalled++] = c->idx;
	}
	nk_rx_give_back(w, c);
	nk_update_interest(w, c);
}

/* The touched connections, walked in passes (see below). */
static int
nk_walk_touched(struct nk_worker *w)
{
	int work = 0;

	/*
	 * A frame held back and delivered here runs its handler inside the walk,
	 * and the handler may complete requests of other connections (closing a
	 * log completes the appends in flight on it), touching connections
	 * already walked. So the list is walked in passes: each pass takes the
	 * list and leaves an empty one for the touches it causes, and a
	 * connection's flag is cleared as it is taken, so that a later touch
	 * queues it again. A touch during the walk is never lost; what is still
	 * queued after the last pass is walked in the next iteration.
	 */
	for (int pass = 0; pass < NK_END_PASSES && w->n_touched > 0; pass++) {
		uint32_t *list = w->touched;
		uint32_t n = w->n_touched;

		w->touched = w->walk;
		w->walk = list;
		w->n_touched = 0;
		for (uint32_t i = 0; i < n; i++) {
			struct nk_conn *c = &w->conns[list[i]];

			c->touched = false;
			work++;
			if (!c->in_use)
				continue;
			nk_walk_one(w, c);
		}
	}
	return work;
}

static int
nk_end(void *arg)
{
	struct nk_worker *w = arg;
	int work = 0;

	/* Retry connections whose frame waited for a resource. */
	for (uint32_t i = 0; i < w->n_stalled; i++) {
		struct nk_conn *c = &w->conns[w->stalled[i]];

		c->stalled = false;
		if (c->in_use)
			nk_touch(c);
	}
	w->n_stalled = 0;

	work += nk_walk_touched(w);

	if (w->env.draining) {
		uint64_t pending = 0;

		for (uint32_t i = 0; i < w->max_conns; i++) {
			if (w->conns[i].in_use)
				pending += dp_conn_inflight(&w->conns[i].base);
		}
		__atomic_store_n(&w->published_pending, pending, __ATOMIC_RELAXED);
	}
	return work;
}

/* Last in the iteration (net_kernel_register_answers): see net_dpdk.c's nd_answers. */
static int
nk_answers(void *arg)
{
	return nk_walk_touched(arg);
}

int
net_kernel_register_answers(void)
{
	for (unsigned int i = 0; i < g_n_workers; i++) {
		char name[32];
		int rc;

		snprintf(name, sizeof(name), "net%u.answers", i);
		rc = dp_poller_register(g_workers[i].lcore, name, nk_answers, &g_workers[i], 0,
			DP_POLLER_END);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
nk_idle(void *arg)
{
	struct nk_worker *w = arg;
	uint64_t now = rte_rdtsc();
	int n = 0;

	for (uint32_t i = 0; i < w->max_conns; i++) {
		if (w->conns[i].in_use)
			n += dp_conn_reap_idle(&w->conns[i].base, now, w->idle_tsc,
				g_cfg->connections_max_idle_ms);
	}
	return n;
}

static int
nk_listen(const struct dp_listener *l, struct nk_listener *out)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char port[8];
	int one = 1;
	int fd = -1;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", l->port);
	rc = getaddrinfo(l->host[0] != '\0' ? l->host : NULL, port, &hints, &res);
	if (rc != 0) {
		dp_log(DP_LOG_ERROR, "listener %s: cannot resolve '%s': %s", l->name, l->host,
			gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		rc = -errno;
		goto fail;
	}
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	out->fd = fd;
	out->port = ss.ss_family == AF_INET6 ?
		ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port) :
		ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
	snprintf(out->name, sizeof(out->name), "%s", l->name);
	dp_log(DP_LOG_INFO, "listening on %s://%s:%u", l->name,
		l->host[0] != '\0' ? l->host : "", out->port);
	freeaddrinfo(res);
	return 0;
fail:
	dp_log(DP_LOG_ERROR, "listener %s://%s:%u: %s", l->name, l->host, l->port, strerror(-rc));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return rc;
}

static int
nk_worker_init(struct nk_worker *w, unsigned int index, unsigned int lcore,
	dp_conn_handler_fn handler, void *handler_arg)
{
	const struct dp_config *cfg = g_cfg;
	int socket = (int)rte_lcore_to_socket_id(lcore);
	uint32_t rx_cap = (uint32_t)cfg->dp_conn_rx_buffer_bytes;
	uint32_t inflight = dp_conn_slot_count((uint32_t)cfg->dp_conn_max_inflight);
	uint32_t n_rx;
	char name[RTE_MEMPOOL_NAMESIZE];

	w->index = index;
	w->lcore = lcore;
	w->max_conns = (uint32_t)cfg->dp_max_connections;
	/* Shared receive buffers when fewer than connections; else one each, as before. */
	n_rx = cfg->dp_conn_rx_buffers > 0 && cfg->dp_conn_rx_buffers < cfg->dp_max_connections ?
		(uint32_t)cfg->dp_conn_rx_buffers : w->max_conns;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0)
		return -errno;
	w->env.handler = handler;
	w->env.handler_arg = handler_arg;
	w->env.large = &w->large;
	w->env.max_inflight = (uint32_t)cfg->dp_conn_max_inflight;
	w->env.max_pending_bytes = (uint64_t)cfg->dp_conn_max_pending_bytes;
	w->env.resp_buf_size = (uint32_t)cfg->dp_response_buffer_bytes;
	snprintf(name, sizeof(name), "dp_resp_%u", index);
	w->env.resp_pool = rte_mempool_create(name, (unsigned int)cfg->dp_response_buffers,
		(unsigned int)cfg->dp_response_buffer_bytes, 0, 0, NULL, NULL, NULL, NULL, socket,
		RTE_MEMPOOL_F_SP_PUT | RTE_MEMPOOL_F_SC_GET);
	w->conns = rte_zmalloc_socket("nk_conns", sizeof(struct nk_conn) * w->max_conns,
		RTE_CACHE_LINE_SIZE, socket);
	w->free_stack = rte_malloc_socket("nk_free", sizeof(uint32_t) * w->max_conns, 0, socket);
	w->touched = rte_malloc_socket("nk_touched", sizeof(uint32_t) * w->max_conns, 0, socket);
	w->walk = rte_malloc_socket("nk_walk", sizeof(uint32_t) * w->max_conns, 0, socket);
	w->stalled = rte_malloc_socket("nk_stalled", sizeof(uint32_t) * w->max_conns, 0, socket);
	w->rx_mem = rte_malloc_socket("nk_rx", (size_t)rx_cap * n_rx, RTE_CACHE_LINE_SIZE, socket);
	if (n_rx < w->max_conns)
		w->rx_bufs.items = rte_malloc_socket("nk_rx_items", sizeof(void *) * n_rx, 0, socket);
	w->slot_mem = rte_zmalloc_socket("nk_slots",
		sizeof(struct dp_conn_slot) * inflight * w->max_conns, RTE_CACHE_LINE_SIZE, socket);
	w->large_items = rte_zmalloc_socket("nk_large",
		sizeof(void *) * ((size_t)cfg->dp_frame_large_buffers + 1), 0, socket);
	if (w->env.resp_pool == NULL || w->conns == NULL || w->free_stack == NULL ||
		w->touched == NULL || w->walk == NULL || w->stalled == NULL || w->rx_mem == NULL ||
		w->slot_mem == NULL || w->large_items == NULL ||
		(n_rx < w->max_conns && w->rx_bufs.items == NULL))
		return -ENOMEM;
	if (n_rx < w->max_conns) {
		w->rx_bufs.size = rx_cap;
		for (uint32_t i = 0; i < n_rx; i++)
			w->rx_bufs.items[w->rx_bufs.n++] = w->rx_mem + (size_t)rx_cap * i;
		w->rx_bufs.cap = n_rx;
	}
	w->large.items = w->large_items;
	w->large.size = (uint32_t)cfg->dp_frame_large_bytes;
	for (int64_t i = 0; i < cfg->dp_frame_large_buffers; i++) {
		void *b = rte_malloc_socket("nk_large_buf", w->large.size, RTE_CACHE_LINE_SIZE,
			socket);

		if (b == NULL)
			return -ENOMEM;
		w->large.items[w->large.n++] = b;
		w->large.cap++;
	}
	for (uint32_t i = 0; i < w->max_conns; i++) {
		struct nk_conn *c = &w->conns[i];

		dp_conn_setup(&c->base, &nk_ops, &w->env,
			w->rx_bufs.cap ? NULL : w->rx_mem + (size_t)rx_cap * i,
			w->rx_bufs.cap ? 0 : rx_cap, cfg->max_frame_bytes,
			w->slot_mem + (size_t)inflight * i);
		c->fd = -1;
		c->idx = i;
		c->w = w;
		w->free_stack[i] = w->max_conns - 1 - i;
	}
	w->n_free = w->max_conns;
	if (cfg->connections_max_idle_ms >= 0)
		w->idle_tsc = (uint64_t)cfg->connections_max_idle_ms * rte_get_tsc_hz() / 1000;
	return 0;
}

static void
nk_resp_pool_free(struct nk_worker *w)
{
	rte_mempool_free(w->env.resp_pool);
	w->env.resp_pool = NULL;
}

int
net_kernel_init(const struct dp_config *cfg, dp_conn_handler_fn handler, void *handler_arg)
{
	int rc;

	g_cfg = cfg;
	g_n_workers = g_local_only ? 1 : (unsigned int)cfg->dp_net_workers;
	g_workers = rte_zmalloc("nk_workers", sizeof(struct nk_worker) * g_n_workers,
		RTE_CACHE_LINE_SIZE);
	if (g_workers == NULL)
		return -ENOMEM;
	for (unsigned int i = 0; i < g_n_workers; i++) {
		g_workers[i].epfd = -1;
		rc = nk_worker_init(&g_workers[i], i, cfg->net_lcore[i], handler, handler_arg);
		if (rc < 0) {
			dp_log(DP_LOG_ERROR,
				"net worker %u: %s (dpdk.memory.mb, dataplane.max.connections and "
				"the buffer sizes decide the memory needed)",
				i, strerror(-rc));
			return rc;
		}
	}
	for (unsigned int i = 0; i < cfg->n_listeners && !g_local_only; i++) {
		struct epoll_event ev;
		struct nk_listener *l = &g_listeners[g_n_listeners];

		if (cfg->listener[i].controller) {
			dp_log(DP_LOG_INFO, "listener %s is the controller's; the dataplane skips it",
				cfg->listener[i].name);
			continue;
		}
		rc = nk_listen(&cfg->listener[i], l);
		if (rc < 0)
			return rc;
		l->cfg_index = (int16_t)i;
		ev.events = EPOLLIN;
		ev.data.u64 = NK_LISTENER_TAG | g_n_listeners;
		if (epoll_ctl(g_workers[0].epfd, EPOLL_CTL_ADD, l->fd, &ev) < 0)
			return -errno;
		g_n_listeners++;
	}
	for (unsigned int i = 0; i < g_n_workers; i++) {
		struct nk_worker *w = &g_workers[i];
		char name[32];

		snprintf(name, sizeof(name), "net%u.poll", i);
		rc = dp_poller_register(w->lcore, name, nk_poll, w, g_local_only ? 1000 : 0,
			DP_POLLER_EVERY);
		if (rc == 0) {
			snprintf(name, sizeof(name), "net%u.flush", i);
			rc = dp_poller_register(w->lcore, name, nk_end, w, 0, DP_POLLER_END);
		}
		if (rc == 0 && w->idle_tsc != 0) {
			uint64_t period_ms = (uint64_t)cfg->connections_max_idle_ms / 4;

			if (period_ms > 1000)
				period_ms = 1000;
			if (period_ms < 10)
				period_ms = 10;
			snprintf(name, sizeof(name), "net%u.idle", i);
			rc = dp_poller_register(w->lcore, name, nk_idle, w, period_ms * 1000,
				DP_POLLER_EVERY);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int
net_kernel_listen_unix(const char *path)
{
	struct nk_listener *l = &g_listeners[g_n_listeners];
	struct epoll_event ev;
	struct sockaddr_un sa;
	int fd;

	if (path == NULL || path[0] == '\0')
		return 0;
	if (strlen(path) >= sizeof(sa.sun_path) || g_n_listeners > DP_CONFIG_MAX_LISTENERS)
		return -ENAMETOOLONG;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		int rc = -errno;

		dp_log(DP_LOG_ERROR, "unix listener %s: %s", path, strerror(-rc));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	l->fd = fd;
	l->port = 0;
	l->cfg_index = -1;
	snprintf(l->name, sizeof(l->name), "UNIX");
	ev.events = EPOLLIN;
	ev.data.u64 = NK_LISTENER_TAG | g_n_listeners;
	if (epoll_ctl(g_workers[0].epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		return -errno;
	}
	g_n_listeners++;
	snprintf(g_unix_path, sizeof(g_unix_path), "%s", path);
	dp_log(DP_LOG_INFO, "listening on unix:%s (the control process's way in)", path);
	return 0;
}

int
net_kernel_init_local(const struct dp_config *cfg, dp_conn_handler_fn handler, void *handler_arg)
{
	g_local_only = true;
	return net_kernel_init(cfg, handler, handler_arg);
}

uint16_t
net_kernel_listener_port(unsigned int i)
{
	for (unsigned int j = 0; j < g_n_listeners; j++) {
		if (g_listeners[j].cfg_index == (int)i)
			return g_listeners[j].port;
	}
	return 0;
}

static void
nk_stop_listening_msg(void *arg)
{
	for (unsigned int i = 0; i < g_n_listeners; i++) {
		if (g_listeners[i].fd >= 0) {
			close(g_listeners[i].fd);
			g_listeners[i].fd = -1;
		}
	}
	dp_log(DP_LOG_INFO, "stopped accepting connections");
}

static void
nk_drain_msg(void *arg)
{
	struct nk_worker *w = arg;

	/* Published before draining is visible, so the first read cannot see a stale 0. */
	__atomic_store_n(&w->published_pending, UINT64_MAX, __ATOMIC_RELAXED);
	w->env.draining = true;
	for (uint32_t i = 0; i < w->max_conns; i++) {
		if (w->conns[i].in_use)
			nk_touch(&w->conns[i]); /* drop EPOLLIN */
	}
}

int
net_kernel_drain_begin(void)
{
	int rc;

	for (unsigned int i = 0; i < g_n_workers; i++)
		__atomic_store_n(&g_workers[i].published_pending, UINT64_MAX, __ATOMIC_RELAXED);
	rc = dp_msg_send(g_workers[0].lcore, nk_stop_listening_msg, NULL);
	for (unsigned int i = 0; rc == 0 && i < g_n_workers; i++)
		rc = dp_msg_send(g_workers[i].lcore, nk_drain_msg, &g_workers[i]);
	return rc;
}

uint64_t
net_kernel_drain_pending(void)
{
	uint64_t total = 0;

	for (unsigned int i = 0; i < g_n_workers; i++) {
		uint64_t p = __atomic_load_n(&g_workers[i].published_pending, __ATOMIC_RELAXED);

		if (p == UINT64_MAX)
			return UINT64_MAX;
		total += p;
	}
	return total;
}

void
net_kernel_fini(void)
{
	for (unsigned int i = 0; i < g_n_listeners; i++) {
		if (g_listeners[i].fd >= 0)
			close(g_listeners[i].fd);
		g_listeners[i].fd = -1;
	}
	g_n_listeners = 0;
	if (g_unix_path[0] != '\0')
		unlink(g_unix_path);
	g_unix_path[0] = '\0';
	if (g_workers == NULL)
		return;
	for (unsigned int i = 0; i < g_n_workers; i++) {
		struct nk_worker *w = &g_workers[i];

		if (w->conns != NULL) {
			for (uint32_t j = 0; j < w->max_conns; j++) {
				if (w->conns[j].in_use)
					nk_reap(w, &w->conns[j]);
			}
		}
		if (w->epfd >= 0)
			close(w->epfd);
		for (uint32_t j = 0; j < w->large.n; j++)
			rte_free(w->large.items[j]);
		nk_resp_pool_free(w);
		rte_free(w->large_items);
		rte_free(w->slot_mem);
		rte_free(w->rx_mem);
		rte_free(w->rx_bufs.items);
		rte_free(w->stalled);
		rte_free(w->touched);
		rte_free(w->walk);
		rte_free(w->free_stack);
		rte_free(w->conns);
	}
	rte_free(g_workers);
	g_workers = NULL;
	g_n_workers = 0;
}
