/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_hop: the request hop between a net worker's lcore and the broker's
 * lcore (see dp_hop.h).
 *
 * Ownership. A descriptor belongs to its worker lcore while free, while its
 * reply is being sent and after it came home; to the broker lcore from the
 * moment step 1 or 3 is enqueued until step 2 or 4 is enqueued. Nobody
 * touches it in between (a message belongs to the receiver once sent). A
 * proxy (struct hop_proxy) and the broker's response pool belong to the
 * broker lcore only. Frame buffers belong to the worker lcore: the copy is
 * read on the broker only while the inner handler runs (it borrows the
 * frame), and returned to the worker's stack when the descriptor comes back
 * with the response.
 *
 * Descriptor states (hop_desc.state):
 *   FREE -> AT_BROKER (step 1) -> REPLYING (step 2: on the worker, response
 *   held by the real connection) -> RELEASING (step 3) -> FREE (step 4).
 *   A response without a free function (acks=0, a close without response)
 *   skips steps 3 and 4.
 */
#include "dp_hop.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mempool.h>

#include "dp_log.h"
#include "dp_metrics.h"
#include "dp_reactor.h"

#define HOP_API_VERSIONS 18
#define HOP_PEER_LEN 64

enum hop_state {
	HOP_FREE = 0,
	HOP_AT_BROKER,
	HOP_REPLYING,
	HOP_RELEASING,
};

struct hop_lcore;

struct hop_desc {
	struct hop_desc *next;       /* queue or outbox link (owner side's lists) */
	struct hop_lcore *home;      /* the worker lcore it belongs to */
	uint32_t idx;                /* in home's table; the proxy with the same index */
	uint8_t state;               /* enum hop_state */
	int8_t cls;                  /* frame buffer class, -1 = none */
	dp_msg_fn outbox_fn;         /* the message waiting for ring space */
	/* Request (written by the worker before step 1). */
	struct dp_conn *conn;        /* the real connection (never read by the broker) */
	uint64_t req;                /* its request token */
	uint8_t *frame;              /* copy of the frame (worker's buffer) */
	uint32_t len;                /* bytes */
	uint64_t sent_tsc;
	char peer[HOP_PEER_LEN];     /* the peer's name, for the broker's log lines */
	int16_t listener;            /* the connection's listener (FindCoordinator answers it) */
	/* Result (written by the broker before step 2). */
	int status;                  /* 0, or a negative errno: close the connection */
	bool replied;
	const void *buf;             /* response bytes (broker-owned memory) */
	uint32_t resp_len;
	bool resp_sg;                /* buf is a struct dp_sg (scatter-gather response) */
	dp_resp_free_fn free_fn;     /* runs on the broker lcore (step 3) */
	void *free_arg;
};

/* The broker-side stand-in for a worker's connection: one request at a time. */
struct hop_proxy {
	struct dp_conn base;         /* first: dp_conn pointers cast back */
	struct dp_conn_slot slot;
	struct hop_desc *desc;       /* being served, or NULL */
	bool serving;                /* between step 1 taken and step 2 sent */
	bool in_call;                /* the inner handler is running for it */
	bool ready;                  /* replied or closed during the call */
};

struct hop_outbox {
	struct hop_desc *head;
	struct hop_desc *tail;
	uint32_t n;
};

struct hop_lcore {
	/* Worker side (this lcore only). */
	unsigned int lcore;
	struct hop_desc *descs;      /* n_descs */
	struct hop_desc **free;      /* free descriptors */
	uint32_t n_descs;
	uint32_t n_free;
	struct dp_bufstack frames[DP_HOP_FRAME_CLASSES];
	uint8_t *frame_mem[DP_HOP_FRAME_CLASSES];
	struct hop_outbox out;       /* steps 1 never wait here; step 3 may */
	struct dp_hop_stats stats;   /* pending published for any lcore */
	/* Broker side (the broker lcore only), on its own cache line. */
	struct hop_proxy *proxies __rte_cache_aligned; /* n_descs, index = descriptor's */
} __rte_cache_aligned;

struct hop_broker {
	unsigned int lcore;
	struct dp_conn_env env;      /* the proxies' env: response pool, inner handler */
	struct hop_desc *q_head;     /* hopped requests to serve, arrival order */
	struct hop_desc *q_tail;
	struct hop_outbox out;       /* steps 2 and 4 waiting for ring space */
	struct dp_hop_broker_stats stats;
} __rte_cache_aligned;

static struct hop_lcore *g_lcores;        /* g_n_lcores, rte_malloc */
static unsigned int g_n_lcores;
static struct hop_lcore *g_by_lcore[RTE_MAX_LCORE];
static struct hop_broker g_broker;
static dp_conn_handler_fn g_handler;
static void *g_handler_arg;
static bool g_ready;
static uint8_t g_proxy_rx[8]; /* a proxy never receives bytes */

static void proxy_kick(struct dp_conn *conn);
static void proxy_peer_name(const struct dp_conn *conn, char *buf, size_t len);
static void hop_serve_msg(void *arg);
static void hop_reply_msg(void *arg);
static void hop_release_msg(void *arg);
static void hop_home_msg(void *arg);

static const struct dp_conn_ops proxy_ops = {
	.kick = proxy_kick,
	.peer_name = proxy_peer_name,
};

static void
stat_store(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static uint64_t
stat_load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* ---- outboxes: messages that met a full ring ---------------------------------------------- */

static void
outbox_push(struct hop_outbox *ob, struct hop_desc *d, dp_msg_fn fn)
{
	d->outbox_fn = fn;
	d->next = NULL;
	if (ob->tail != NULL)
		ob->tail->next = d;
	else
		ob->head = d;
	ob->tail = d;
	ob->n++;
}

/* Send @fn(@d) to @lcore, or queue it behind earlier waiting messages. */
static void
hop_send(struct hop_outbox *ob, unsigned int lcore, struct hop_desc *d, dp_msg_fn fn,
	uint64_t *waits)
{
	if (ob->head == NULL && dp_msg_send(lcore, fn, d) == 0)
		return;
	stat_store(waits, stat_load(waits) + 1);
	outbox_push(ob, d, fn);
}

/* Retry waiting messages in order: to the broker lcore, or each to its home lcore. */
static int
outbox_flush(struct hop_outbox *ob, bool to_broker)
{
	int n = 0;

	while (ob->head != NULL) {
		struct hop_desc *d = ob->head;
		unsigned int dst = to_broker ? g_broker.lcore : d->home->lcore;

		if (dp_msg_send(dst, d->outbox_fn, d) != 0)
			break;
		ob->head = d->next;
		if (ob->head == NULL)
			ob->tail = NULL;
		ob->n--;
		n++;
	}
	return n;
}

/* ---- worker side ----------------------------------------------------------------------------- */

static void
pending_publish(struct hop_lcore *L)
{
	stat_store(&L->stats.pending, L->n_descs - L->n_free);
}

static uint8_t *
frame_buf_get(struct hop_lcore *L, uint32_t len, int8_t *cls)
{
	for (int i = 0; i < DP_HOP_FRAME_CLASSES; i++) {
		struct dp_bufstack *bs = &L->frames[i];

		if (bs->size < len || bs->n == 0)
			continue;
		*cls = (int8_t)i;
		return bs->items[--bs->n];
	}
	return NULL;
}

static void
frame_buf_put(struct hop_lcore *L, struct hop_desc *d)
{
	if (d->cls >= 0) {
		struct dp_bufstack *bs = &L->frames[d->cls];

		bs->items[bs->n++] = d->frame;
	}
	d->cls = -1;
	d->frame = NULL;
}

static void
desc_home(struct hop_lcore *L, struct hop_desc *d)
{
	d->state = HOP_FREE;
	d->conn = NULL;
	d->buf = NULL;
	L->free[L->n_free++] = d;
	pending_publish(L);
}

static bool
hop_bypass(const uint8_t *frame, uint32_t len)
{
	/* ApiVersions needs no broker state: answer it where it arrived. */
	return len < 2 || (int16_t)((uint16_t)frame[0] << 8 | frame[1]) == HOP_API_VERSIONS;
}

int
dp_hop_frame(void *arg, struct dp_conn *conn, uint64_t req, const uint8_t *frame,
	uint32_t len)
{
	unsigned int self = rte_lcore_id();
	struct hop_lcore *L = self < RTE_MAX_LCORE ? g_by_lcore[self] : NULL;
	struct hop_desc *d;
	uint8_t *copy;
	int8_t cls = -1;

	(void)arg;
	if (L == NULL)
		return g_handler(g_handler_arg, conn, req, frame, len);
	if (hop_bypass(frame, len)) {
		L->stats.local++;
		return g_handler(g_handler_arg, conn, req, frame, len);
	}
	if (L->n_free == 0) {
		L->stats.deferred_desc++;
		return -EAGAIN;
	}
	copy = frame_buf_get(L, len, &cls);
	if (copy == NULL) {
		L->stats.deferred_buf++;
		return -EAGAIN;
	}
	d = L->free[--L->n_free];
	d->conn = conn;
	d->req = req;
	d->frame = copy;
	d->cls = cls;
	d->len = len;
	d->status = 0;
	d->replied = false;
	d->buf = NULL;
	d->resp_len = 0;
	d->resp_sg = false;
	d->free_fn = NULL;
	d->free_arg = NULL;
	d->state = HOP_AT_BROKER;
	memcpy(copy, frame, len);
	dp_conn_peer_name(conn, d->peer, sizeof(d->peer));
	d->listener = conn->listener;
	d->sent_tsc = rte_rdtsc();
	/*
	 * Step 1 never waits in the outbox: a full ring is backpressure
	 * (-EAGAIN keeps the frame with the transport, in order).
	 */
	if (L->out.head != NULL || dp_msg_send(g_broker.lcore, hop_serve_msg, d) != 0) {
		frame_buf_put(L, d);
		d->state = HOP_FREE;
		L->free[L->n_free++] = d;
		L->stats.deferred_ring++;
		return -EAGAIN;
	}
	L->stats.hopped++;
	pending_publish(L);
	return 0;
}

/* dp_resp_free_fn of a hopped response: the real connection is done with it (step 3). */
static void
hop_resp_release(void *arg, void *buf)
{
	struct hop_desc *d = arg;
	struct hop_lcore *L = d->home;

	(void)buf;
	d->state = HOP_RELEASING;
	hop_send(&L->out, g_broker.lcore, d, hop_release_msg, &L->stats.outbox_waits);
}

/* The hopped response on the real connection, plain or scatter-gather. */
static void
hop_conn_reply(struct dp_conn *conn, uint64_t req, struct hop_desc *d, dp_resp_free_fn free_fn,
	void *free_arg)
{
	if (d->resp_sg)
		dp_conn_reply_sg(conn, req, d->buf, free_fn, free_arg);
	else
		dp_conn_reply(conn, req, d->buf, d->resp_len, free_fn, free_arg);
}

/* Step 2, on the worker lcore. */
static void
hop_reply_msg(void *arg)
{
	struct hop_desc *d = arg;
	struct hop_lcore *L = d->home;
	struct dp_conn *conn = d->conn;
	uint64_t req = d->req;
	uint64_t rtt = rte_rdtsc() - d->sent_tsc;
	bool live = dp_conn_req_gen(req) == conn->gen;
	bool close = d->status < 0;
	/* Read before replying: a release (step 3) hands @d to the broker lcore. */
	bool released_later = d->replied && d->free_fn != NULL;

	L->stats.rtt_tsc_sum += rtt;
	if (rtt > L->stats.rtt_tsc_max)
		L->stats.rtt_tsc_max = rtt;
	frame_buf_put(L, d);
	d->state = HOP_REPLYING;
	if (!live)
		L->stats.late++;
	if (released_later) {
		/*
		 * From here @d belongs to the real connection until
		 * hop_resp_release() runs (at once for a stale token).
		 */
		hop_conn_reply(conn, req, d, hop_resp_release, d);
	} else {
		if (d->replied)
			hop_conn_reply(conn, req, d, NULL, NULL);
		desc_home(L, d);
	}
	if (close && live) {
		/* As for a direct call: earlier (and this) responses still leave first. */
		L->stats.closed++;
		conn->env->n_handler_closed++;
		dp_conn_close(conn);
	}
}

/* Step 4, on the worker lcore. */
static void
hop_home_msg(void *arg)
{
	struct hop_desc *d = arg;

	desc_home(d->home, d);
}

static int
hop_worker_poll(void *arg)
{
	struct hop_lcore *L = arg;

	return outbox_flush(&L->out, true);
}

/* ---- broker side ----------------------------------------------------------------------------- */

static struct hop_proxy *
proxy_of(struct hop_desc *d)
{
	return &d->home->proxies[d->idx];
}

static void
proxy_peer_name(const struct dp_conn *conn, char *buf, size_t len)
{
	const struct hop_proxy *p = (const struct hop_proxy *)(const void *)conn;

	snprintf(buf, len, "%s", p->desc != NULL ? p->desc->peer : "?");
}

/* The proxy's response (or close) goes back to the worker: step 2. */
static void
proxy_finish(struct hop_proxy *p)
{
	struct hop_desc *d = p->desc;
	struct dp_conn *c = &p->base;
	struct dp_conn_slot *s = &c->slots[c->head & c->slot_mask];

	if (c->tail != c->head && s->state == DP_CONN_SLOT_DONE) {
		d->replied = true;
		d->buf = s->buf;
		d->resp_len = s->len;
		d->resp_sg = s->sg;
		d->free_fn = s->free_fn;
		d->free_arg = s->free_arg;
	}
	if (c->closing && d->status == 0)
		d->status = -ECONNRESET;
	/* The buffer now travels with the descriptor: clear without freeing, new generation. */
	memset(s, 0, sizeof(*s));
	c->head = 0;
	c->tail = 0;
	c->head_sent = 0;
	c->pending_bytes = 0;
	c->closing = false;
	c->tx_ready = false;
	c->gen++;
	p->serving = false;
	p->ready = false;
	p->desc = NULL;
	hop_send(&g_broker.out, d->home->lcore, d, hop_reply_msg, &g_broker.stats.outbox_waits);
}

static void
proxy_kick(struct dp_conn *conn)
{
	struct hop_proxy *p = (struct hop_proxy *)(void *)conn;

	if (!p->serving || (!conn->closing && !conn->tx_ready))
		return; /* stale, or nothing to send yet */
	if (p->in_call) {
		p->ready = true; /* sent when the handler returns */
		return;
	}
	proxy_finish(p);
}

/* Step 1 arrives: queue it (served in arrival order by hop_broker_poll). */
static void
hop_serve_msg(void *arg)
{
	struct hop_desc *d = arg;

	d->next = NULL;
	if (g_broker.q_tail != NULL)
		g_broker.q_tail->next = d;
	else
		g_broker.q_head = d;
	g_broker.q_tail = d;
	g_broker.stats.queued++;
}

/*
 * Run the inner handler for @d on its proxy, taking the proxy's slot as
 * dp_conn_deliver() does. @return 1 taken, 0 not now (-EAGAIN), or the
 * handler's error.
 */
static int
proxy_deliver(struct hop_proxy *p, struct hop_desc *d)
{
	struct dp_conn *c = &p->base;
	struct dp_conn_slot *s = &c->slots[c->tail & c->slot_mask];
	uint64_t req = (uint64_t)c->gen << 32 | c->tail;
	int rc;

	/* A close by flag on the idle proxy (a stale reference) must not hit this request. */
	c->closing = false;
	c->listener = d->listener;
	c->tx_ready = false;
	memset(s, 0, sizeof(*s));
	s->state = DP_CONN_SLOT_PENDING;
	c->tail++;
	p->desc = d;
	p->serving = true;
	p->in_call = true;
	p->ready = false;
	rc = g_broker.env.handler(g_broker.env.handler_arg, c, req, d->frame, d->len);
	p->in_call = false;
	if (rc == -EAGAIN && !p->ready) {
		c->tail--;
		s->state = 0;
		p->serving = false;
		p->desc = NULL;
		return 0;
	}
	if (rc == -EAGAIN)
		rc = 0; /* answered anyway: not the contract, but nothing to retry */
	if (rc < 0)
		return rc;
	g_broker.env.n_frames++;
	return 1;
}

static int
hop_broker_poll(void *arg)
{
	int work;
	unsigned int n = 0;

	(void)arg;
	work = outbox_flush(&g_broker.out, false);
	while (g_broker.q_head != NULL && n < DP_HOP_BURST) {
		struct hop_desc *d = g_broker.q_head;
		struct hop_proxy *p = proxy_of(d);
		int rc = proxy_deliver(p, d);

		if (rc == 0) {
			g_broker.stats.deferred++;
			break; /* keep the order: retry the head at the next poll */
		}
		g_broker.q_head = d->next;
		if (g_broker.q_head == NULL)
			g_broker.q_tail = NULL;
		g_broker.stats.queued--;
		n++;
		if (rc < 0) {
			g_broker.env.n_handler_closed++;
			d->status = rc;
			p->serving = true; /* a reply given before the error still goes back */
			proxy_finish(p);
			continue;
		}
		g_broker.stats.served++;
		if (p->ready)
			proxy_finish(p);
		/* else: answered later (an append or a disk read completes, a parked Fetch) */
	}
	return work + (int)n;
}

/* Step 3, on the broker lcore: free the response where it was allocated. */
static void
hop_release_msg(void *arg)
{
	struct hop_desc *d = arg;

	d->free_fn(d->free_arg, (void *)(uintptr_t)d->buf);
	d->buf = NULL;
	d->free_fn = NULL;
	hop_send(&g_broker.out, d->home->lcore, d, hop_home_msg, &g_broker.stats.outbox_waits);
}

/* ---- set-up --------------------------------------------------------------------------------- */

static int
hop_lcore_init(struct hop_lcore *L, unsigned int lcore, const struct dp_hop_opts *o)
{
	int socket = (int)rte_lcore_to_socket_id(lcore);
	int bsocket = (int)rte_lcore_to_socket_id(o->broker_lcore);

	L->lcore = lcore;
	L->n_descs = o->descs;
	L->descs = rte_zmalloc_socket("hop_descs", sizeof(struct hop_desc) * o->descs,
		RTE_CACHE_LINE_SIZE, socket);
	L->free = rte_malloc_socket("hop_free", sizeof(void *) * o->descs, 0, socket);
	L->proxies = rte_zmalloc_socket("hop_proxies", sizeof(struct hop_proxy) * o->descs,
		RTE_CACHE_LINE_SIZE, bsocket);
	if (L->descs == NULL || L->free == NULL || L->proxies == NULL)
		return -ENOMEM;
	for (int c = 0; c < DP_HOP_FRAME_CLASSES; c++) {
		struct dp_bufstack *bs = &L->frames[c];
		size_t size = o->frame_bytes[c];

		if (o->frame_count[c] == 0)
			continue;
		bs->items = rte_malloc_socket("hop_frame_stack", sizeof(void *) * o->frame_count[c],
			0, socket);
		L->frame_mem[c] = rte_malloc_socket("hop_frames", size * o->frame_count[c],
			RTE_CACHE_LINE_SIZE, socket);
		if (bs->items == NULL || L->frame_mem[c] == NULL)
			return -ENOMEM;
		bs->size = o->frame_bytes[c];
		bs->cap = o->frame_count[c];
		for (uint32_t i = 0; i < o->frame_count[c]; i++)
			bs->items[bs->n++] = L->frame_mem[c] + size * i;
	}
	for (uint32_t i = 0; i < o->descs; i++) {
		struct hop_desc *d = &L->descs[i];
		struct hop_proxy *p = &L->proxies[i];

		d->home = L;
		d->idx = i;
		d->cls = -1;
		L->free[o->descs - 1 - i] = d;
		dp_conn_setup(&p->base, &proxy_ops, &g_broker.env, g_proxy_rx, sizeof(g_proxy_rx),
			0, &p->slot);
	}
	L->n_free = o->descs;
	return 0;
}

/*
 * Poller (every 100 ms) on each lcore with hop state: its counters into
 * dp_metrics (the worker side and, on the broker's lcore, the broker side).
 */
static int
hop_metrics_poll(void *arg)
{
	unsigned int lcore = rte_lcore_id();
	uint64_t v[DP_HOP_M_COUNTERS];
	struct dp_hop_stats st;
	uint32_t sides = 0;

	memset(v, 0, sizeof(v));
	if (dp_hop_stats_get(lcore, &st) == 0) {
		sides |= DP_METRICS_HOP_WORKER;
		v[DP_HOP_M_HOPPED] = st.hopped;
		v[DP_HOP_M_LOCAL] = st.local;
		v[DP_HOP_M_DEFERRED_DESC] = st.deferred_desc;
		v[DP_HOP_M_DEFERRED_BUF] = st.deferred_buf;
		v[DP_HOP_M_DEFERRED_RING] = st.deferred_ring;
		v[DP_HOP_M_CLOSED] = st.closed;
		v[DP_HOP_M_LATE] = st.late;
		v[DP_HOP_M_RTT_NS_SUM] = dp_metrics_tsc_to_ns(st.rtt_tsc_sum);
		v[DP_HOP_M_RTT_NS_MAX] = dp_metrics_tsc_to_ns(st.rtt_tsc_max);
		v[DP_HOP_M_PENDING] = st.pending;
		v[DP_HOP_M_OUTBOX_WAITS] = st.outbox_waits;
	}
	if (lcore == g_broker.lcore) {
		struct dp_hop_broker_stats bs;

		dp_hop_broker_stats_get(&bs);
		sides |= DP_METRICS_HOP_BROKER;
		v[DP_HOP_M_SERVED] = bs.served;
		v[DP_HOP_M_BROKER_DEFERRED] = bs.deferred;
		v[DP_HOP_M_QUEUED] = bs.queued;
		v[DP_HOP_M_BROKER_OUTBOX_WAITS] = bs.outbox_waits;
		v[DP_HOP_M_RESP_FREE] = bs.resp_free;
		v[DP_HOP_M_BROKER_LATE] = bs.late;
	}
	dp_metrics_hop_publish(sides, v, DP_HOP_M_COUNTERS);
	return 0;
}

int
dp_hop_init(const struct dp_hop_opts *o)
{
	bool broker_polled = false;
	unsigned int uniq[RTE_MAX_LCORE];
	unsigned int n = 0;
	char name[RTE_MEMPOOL_NAMESIZE];
	int rc;

	if (g_ready || o->handler == NULL || o->broker_lcore >= RTE_MAX_LCORE)
		return -EINVAL;
	g_handler = o->handler;
	g_handler_arg = o->handler_arg;
	for (unsigned int i = 0; i < o->n_lcores; i++) {
		bool seen = o->lcores[i] == o->broker_lcore && !o->hop_all;

		if (o->lcores[i] >= RTE_MAX_LCORE)
			return -EINVAL;
		for (unsigned int j = 0; j < n && !seen; j++)
			seen = uniq[j] == o->lcores[i];
		if (!seen)
			uniq[n++] = o->lcores[i];
	}
	memset(&g_broker, 0, sizeof(g_broker));
	g_broker.lcore = o->broker_lcore;
	g_ready = true;
	if (n == 0)
		return 0; /* every worker is on the broker's lcore: direct calls only */
	if (o->descs == 0 || o->resp_bufs == 0 || o->resp_buf_bytes == 0)
		return -EINVAL;
	for (int c = 1; c < DP_HOP_FRAME_CLASSES; c++) {
		if (o->frame_bytes[c] < o->frame_bytes[c - 1])
			return -EINVAL;
	}
	g_broker.env.handler = o->handler;
	g_broker.env.handler_arg = o->handler_arg;
	g_broker.env.max_inflight = 1;
	g_broker.env.max_pending_bytes = UINT64_MAX;
	g_broker.env.resp_buf_size = o->resp_buf_bytes;
	snprintf(name, sizeof(name), "dp_hop_resp");
	/* Taken and freed on the broker lcore only (frees come back by step 3). */
	g_broker.env.resp_pool = rte_mempool_create(name, o->resp_bufs * n, o->resp_buf_bytes, 0, 0,
		NULL, NULL, NULL, NULL, (int)rte_lcore_to_socket_id(o->broker_lcore),
		RTE_MEMPOOL_F_SP_PUT | RTE_MEMPOOL_F_SC_GET);
	g_lcores = rte_zmalloc("hop_lcores", sizeof(struct hop_lcore) * n, RTE_CACHE_LINE_SIZE);
	if (g_broker.env.resp_pool == NULL || g_lcores == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	g_n_lcores = n;
	for (unsigned int i = 0; i < n; i++) {
		rc = hop_lcore_init(&g_lcores[i], uniq[i], o);
		if (rc < 0)
			goto fail;
		g_by_lcore[uniq[i]] = &g_lcores[i];
	}
	for (unsigned int i = 0; i < n; i++) {
		rc = dp_poller_register(uniq[i], "hop.out", hop_worker_poll, &g_lcores[i], 0,
			DP_POLLER_EVERY);
		if (rc == 0)
			rc = dp_poller_register(uniq[i], "hop.metrics", hop_metrics_poll, NULL,
				100000, DP_POLLER_EVERY);
		if (rc < 0)
			goto fail;
		broker_polled |= uniq[i] == o->broker_lcore;
	}
	rc = dp_poller_register(o->broker_lcore, "hop.serve", hop_broker_poll, NULL, 0,
		DP_POLLER_EVERY);
	if (rc == 0 && !broker_polled)
		rc = dp_poller_register(o->broker_lcore, "hop.metrics", hop_metrics_poll, NULL,
			100000, DP_POLLER_EVERY);
	if (rc < 0)
		goto fail;
	dp_log(DP_LOG_INFO, "requests hop from %u net worker lcore(s) to the broker on lcore %u "
		"(%" PRIu32 " in flight per lcore)", n, o->broker_lcore, o->descs);
	return 0;
fail:
	if (rc == -ENOMEM)
		dp_log(DP_LOG_ERROR, "request hop: out of memory (dpdk.memory.mb, "
			"dataplane.response.buffers, dataplane.frame.large.bytes and "
			"dataplane.frame.large.buffers decide the memory needed)");
	dp_hop_fini();
	return rc;
}

void
dp_hop_fini(void)
{
	for (unsigned int i = 0; g_lcores != NULL && i < g_n_lcores; i++) {
		struct hop_lcore *L = &g_lcores[i];

		for (int c = 0; c < DP_HOP_FRAME_CLASSES; c++) {
			rte_free(L->frames[c].items);
			rte_free(L->frame_mem[c]);
		}
		rte_free(L->proxies);
		rte_free(L->free);
		rte_free(L->descs);
		g_by_lcore[L->lcore] = NULL;
	}
	rte_free(g_lcores);
	g_lcores = NULL;
	g_n_lcores = 0;
	rte_mempool_free(g_broker.env.resp_pool);
	memset(&g_broker, 0, sizeof(g_broker));
	g_handler = NULL;
	g_handler_arg = NULL;
	g_ready = false;
}

bool
dp_hop_remote(unsigned int lcore)
{
	return lcore < RTE_MAX_LCORE && g_by_lcore[lcore] != NULL;
}

uint64_t
dp_hop_pending(void)
{
	uint64_t total = 0;

	for (unsigned int i = 0; i < g_n_lcores; i++)
		total += stat_load(&g_lcores[i].stats.pending);
	return total;
}

int
dp_hop_stats_get(unsigned int lcore, struct dp_hop_stats *out)
{
	struct hop_lcore *L = lcore < RTE_MAX_LCORE ? g_by_lcore[lcore] : NULL;
	const struct dp_hop_stats *s;

	if (L == NULL)
		return -EINVAL;
	s = &L->stats;
	out->hopped = stat_load(&s->hopped);
	out->local = stat_load(&s->local);
	out->deferred_desc = stat_load(&s->deferred_desc);
	out->deferred_buf = stat_load(&s->deferred_buf);
	out->deferred_ring = stat_load(&s->deferred_ring);
	out->closed = stat_load(&s->closed);
	out->late = stat_load(&s->late);
	out->rtt_tsc_sum = stat_load(&s->rtt_tsc_sum);
	out->rtt_tsc_max = stat_load(&s->rtt_tsc_max);
	out->pending = stat_load(&s->pending);
	out->outbox_waits = stat_load(&s->outbox_waits);
	return 0;
}

void
dp_hop_broker_stats_get(struct dp_hop_broker_stats *out)
{
	out->served = stat_load(&g_broker.stats.served);
	out->deferred = stat_load(&g_broker.stats.deferred);
	out->queued = stat_load(&g_broker.stats.queued);
	out->outbox_waits = stat_load(&g_broker.stats.outbox_waits);
	out->resp_free = g_broker.env.resp_pool != NULL ?
		rte_mempool_avail_count(g_broker.env.resp_pool) : 0;
	out->late = stat_load(&g_broker.env.n_late_replies);
}

void
dp_hop_log_stats(void)
{
	struct dp_hop_broker_stats bs;
	double us_per_tsc = 1e6 / (double)rte_get_tsc_hz();

	if (g_n_lcores == 0)
		return;
	for (unsigned int i = 0; i < g_n_lcores; i++) {
		struct dp_hop_stats st;

		dp_hop_stats_get(g_lcores[i].lcore, &st);
		dp_log(DP_LOG_INFO, "hop from lcore %u: %" PRIu64 " request(s) hopped, %" PRIu64
			" local; round trip avg %.1f us, max %.1f us; deferred %" PRIu64
			" (descriptors) %" PRIu64 " (frame buffers) %" PRIu64 " (ring); %" PRIu64
			" late, %" PRIu64 " closed", g_lcores[i].lcore, st.hopped, st.local,
			st.hopped != 0 ?
				(double)st.rtt_tsc_sum * us_per_tsc / (double)st.hopped : 0.0,
			(double)st.rtt_tsc_max * us_per_tsc, st.deferred_desc, st.deferred_buf,
			st.deferred_ring, st.late, st.closed);
	}
	dp_hop_broker_stats_get(&bs);
	dp_log(DP_LOG_INFO, "hop to lcore %u: %" PRIu64 " served, %" PRIu64 " handler deferral(s), "
		"%" PRIu64 " outbox wait(s)", g_broker.lcore, bs.served, bs.deferred,
		bs.outbox_waits);
}
