/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_hop with two real lcores (EAL --no-huge): the test thread is the net
 * worker's lcore and drives its reactor by hand; the second lcore runs the
 * "broker" reactor in a loop. A test handler on the broker lcore answers at
 * once, later (from a poller), with nothing (acks=0), with an error, or
 * -EAGAIN; the worker side is a dp_conn with a fake transport whose
 * responses the test "sends" itself. Checked: responses in request order
 * with the right bytes, the handler always on the broker lcore, ApiVersions
 * answered locally, a close while requests are in flight (late replies are
 * released on the broker lcore, no buffer lost), a handler error closes the
 * connection after earlier answers, a full ring or a handler -EAGAIN defers
 * and never drops, and the drain count goes back to 0.
 * Skips (77) when the EAL cannot start on two lcores.
 */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mempool.h>

#include "dp_conn.h"
#include "dp_hop.h"
#include "dp_reactor.h"

#define RING_SIZE 8 /* small: 7 messages fill a ring */
#define N_CONNS 24
#define MAX_INFLIGHT 8
#define RX_CAP 4096
#define RESP_BYTES 512
#define RESP_BUFS 64
#define DESCS 32
#define ASYNC_MAX 256

static unsigned int g_lc[2];    /* [0] worker (test thread), [1] broker */
static unsigned int g_n_lc;

/* ---- the broker lcore's loop -------------------------------------------------------------- */

static volatile int g_broker_quit;
static volatile int g_broker_paused;
static volatile int g_broker_paused_ack;

static int
broker_main(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&g_broker_quit, __ATOMIC_ACQUIRE)) {
		if (__atomic_load_n(&g_broker_paused, __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&g_broker_paused_ack, 1, __ATOMIC_RELEASE);
			continue;
		}
		__atomic_store_n(&g_broker_paused_ack, 0, __ATOMIC_RELEASE);
		dp_reactor_poll_once(g_lc[1]);
	}
	return 0;
}

/* Stop the broker lcore between two iterations (returns once it is parked). */
static void
broker_pause(void)
{
	__atomic_store_n(&g_broker_paused, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&g_broker_paused_ack, __ATOMIC_ACQUIRE))
		rte_pause();
}

/* ---- the test handler (the broker's) -------------------------------------------------------- */

/*
 * Frame: api key (2 bytes, big endian), command byte, payload. Commands:
 * 'E' echo now, 'L' echo later (poller), 'Z' zero-length reply, 'C' error
 * (close), 'K' dp_conn_close later without a reply, 'D' -EAGAIN while
 * g_defer_left > 0 then echo.
 */
static volatile int g_wrong_lcore;
static int g_defer_left;           /* broker lcore only */
static unsigned int g_handled;     /* broker lcore only */

struct async_req {
	struct dp_conn *conn;
	uint64_t req;
	uint32_t len;
	int polls;
	bool close;
	uint8_t body[64];
};

static struct async_req g_async[ASYNC_MAX]; /* broker lcore only */
static unsigned int g_n_async;
static struct dp_conn *g_kept_conn;      /* 'S': a connection pointer kept after the reply */
static volatile int g_close_kept;        /* set by the test: close g_kept_conn (stale) */

static int
echo(struct dp_conn *conn, uint64_t req, const uint8_t *body, uint32_t len)
{
	uint8_t *buf = dp_conn_resp_alloc(conn);

	if (buf == NULL)
		return -EAGAIN;
	memcpy(buf, body, len);
	return dp_conn_reply(conn, req, buf, len, dp_conn_resp_free, conn->env->resp_pool);
}

static int
test_handler(void *arg, struct dp_conn *conn, uint64_t req, const uint8_t *frame, uint32_t len)
{
	int16_t key = (int16_t)(frame[0] << 8 | frame[1]);
	uint8_t cmd = frame[2];

	(void)arg;
	if (key == 18) {
		/* ApiVersions: answered where it arrived. */
		if (rte_lcore_id() != g_lc[0])
			g_wrong_lcore = 1;
		return echo(conn, req, frame + 3, len - 3);
	}
	if (rte_lcore_id() != g_lc[1])
		g_wrong_lcore = 1;
	g_handled++;
	switch (cmd) {
	case 'E':
		return echo(conn, req, frame + 3, len - 3);
	case 'Z':
		return dp_conn_reply(conn, req, NULL, 0, NULL, NULL);
	case 'S':
		g_kept_conn = conn;
		return echo(conn, req, frame + 3, len - 3);
	case 'C':
		return -EPROTO;
	case 'D':
		if (g_defer_left > 0) {
			g_defer_left--;
			return -EAGAIN;
		}
		return echo(conn, req, frame + 3, len - 3);
	case 'L':
	case 'K': {
		struct async_req *a;

		if (g_n_async == ASYNC_MAX || len - 3 > sizeof(a->body))
			return -ENOSPC;
		a = &g_async[g_n_async++];
		a->conn = conn;
		a->req = req;
		a->len = len - 3;
		a->polls = 20;
		a->close = cmd == 'K';
		memcpy(a->body, frame + 3, len - 3);
		return 0;
	}
	default:
		return -EINVAL;
	}
}

/* Answers 'L' requests and closes 'K' ones some polls later, in order. */
static int
async_poller(void *arg)
{
	unsigned int done = 0;

	(void)arg;
	if (__atomic_load_n(&g_close_kept, __ATOMIC_ACQUIRE)) {
		dp_conn_close(g_kept_conn); /* stale: its request was answered long ago */
		__atomic_store_n(&g_close_kept, 0, __ATOMIC_RELEASE);
	}
	while (done < g_n_async) {
		struct async_req *a = &g_async[done];

		if (--a->polls > 0)
			break;
		if (a->close) {
			dp_conn_close(a->conn);
		} else if (echo(a->conn, a->req, a->body, a->len) == -EAGAIN) {
			a->polls = 1;
			break;
		}
		done++;
	}
	if (done > 0) {
		memmove(g_async, g_async + done, sizeof(g_async[0]) * (g_n_async - done));
		g_n_async -= done;
	}
	return (int)done;
}

/* ---- the worker side: connections on a fake transport ---------------------------------------- */

struct tconn {
	struct dp_conn base;
	uint8_t rx[RX_CAP];
	struct dp_conn_slot slots[MAX_INFLIGHT];
	int kicks;
	bool used;                /* set up for this test (dp_conn_reset clears base.user) */
	char got[8192];           /* responses received, concatenated */
	size_t got_len;
};

static struct tconn g_conns[N_CONNS];
static struct dp_conn_env g_env;
static struct rte_mempool *g_worker_pool;

static void
t_kick(struct dp_conn *conn)
{
	((struct tconn *)(void *)conn)->kicks++;
}

static void
t_peer(const struct dp_conn *conn, char *buf, size_t len)
{
	snprintf(buf, len, "test:%u", (unsigned)((const struct tconn *)(const void *)conn -
						   g_conns));
}

static const struct dp_conn_ops t_ops = {.kick = t_kick, .peer_name = t_peer};

/* Append one frame (size prefix, key, command, payload) to @c's receive buffer. */
static void
push_frame(struct tconn *c, int16_t key, char cmd, const char *payload)
{
	uint32_t plen = (uint32_t)strlen(payload);
	uint32_t n = 3 + plen;
	uint8_t *p;
	uint32_t space = dp_frame_rx_space(&c->base.rx, &p);

	assert_true(space >= n + 4);
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
	p[4] = (uint8_t)((uint16_t)key >> 8);
	p[5] = (uint8_t)key;
	p[6] = (uint8_t)cmd;
	memcpy(p + 7, payload, plen);
	dp_frame_rx_commit(&c->base.rx, n + 4);
}

/* The transport's work for @c: deliver held frames, "send" ready responses. */
static void
service(struct tconn *c)
{
	struct iovec iov[16];
	int n;

	/* A closing connection still sends what is ready (the transport's last flush). */
	if (!c->base.closing && dp_frame_buffered(&c->base.rx) > 0 &&
		dp_conn_deliver(&c->base) < 0)
		c->base.closing = true;
	while ((n = dp_conn_tx_iov(&c->base, iov, 16)) > 0 || c->base.tx_ready) {
		size_t total = 0;

		for (int i = 0; i < n; i++) {
			assert_true(c->got_len + iov[i].iov_len + 1 < sizeof(c->got));
			memcpy(c->got + c->got_len, iov[i].iov_base, iov[i].iov_len);
			c->got_len += iov[i].iov_len;
			c->got[c->got_len++] = '|';
			total += iov[i].iov_len;
		}
		if (n == 0) {
			uint32_t head = c->base.head;

			dp_conn_tx_done(&c->base, 0); /* empty responses */
			if (c->base.head == head)
				break;
			continue;
		}
		dp_conn_tx_done(&c->base, total);
	}
}

/* Poll the worker lcore and service every connection until @done or 5 s. */
static bool
run_until(bool (*done)(void))
{
	uint64_t deadline = rte_rdtsc() + rte_get_tsc_hz() * 30;

	while (rte_rdtsc() < deadline) {
		dp_reactor_poll_once(g_lc[0]);
		for (int i = 0; i < N_CONNS; i++) {
			if (g_conns[i].used)
				service(&g_conns[i]);
		}
		if (done())
			return true;
	}
	return false;
}

static bool
all_idle(void)
{
	for (int i = 0; i < N_CONNS; i++) {
		struct tconn *c = &g_conns[i];

		if (!c->used || c->base.closing)
			continue;
		if (dp_conn_inflight(&c->base) != 0 || dp_frame_buffered(&c->base.rx) != 0)
			return false;
	}
	return dp_hop_pending() == 0;
}

static bool
hop_drained(void)
{
	return dp_hop_pending() == 0;
}

/* ---- fixture --------------------------------------------------------------------------------- */

static int
setup_opts(unsigned int n_worker_lcores)
{
	unsigned int lcores[1] = {g_lc[0]};
	struct dp_hop_opts o = {
		.broker_lcore = g_lc[1],
		.lcores = lcores,
		.n_lcores = n_worker_lcores,
		.descs = DESCS,
		.frame_bytes = {64, 256, RX_CAP},
		.frame_count = {DESCS, 4, 2},
		.resp_buf_bytes = RESP_BYTES,
		.resp_bufs = RESP_BUFS,
		.handler = test_handler,
		.handler_arg = NULL,
	};
	int rc;

	rc = dp_reactors_init(g_lc, 2, RING_SIZE, 0);
	if (rc < 0)
		return rc;
	rc = dp_hop_init(&o);
	if (rc < 0)
		return rc;
	rc = dp_poller_register(g_lc[1], "async", async_poller, NULL, 0, DP_POLLER_EVERY);
	if (rc < 0)
		return rc;
	memset(&g_env, 0, sizeof(g_env));
	g_env.handler = dp_hop_frame;
	g_env.max_inflight = MAX_INFLIGHT;
	g_env.max_pending_bytes = 1 << 20;
	g_env.resp_pool = g_worker_pool;
	g_env.resp_buf_size = RESP_BYTES;
	for (int i = 0; i < N_CONNS; i++) {
		dp_conn_setup(&g_conns[i].base, &t_ops, &g_env, g_conns[i].rx, RX_CAP, RX_CAP - 4,
			g_conns[i].slots);
		g_conns[i].used = true;
		g_conns[i].got_len = 0;
		g_conns[i].kicks = 0;
	}
	g_n_async = 0;
	g_close_kept = 0;
	g_handled = 0;
	g_defer_left = 0;
	g_wrong_lcore = 0;
	g_broker_quit = 0;
	g_broker_paused = 0;
	g_broker_paused_ack = 0;
	return rte_eal_remote_launch(broker_main, NULL, g_lc[1]);
}

static int
setup(void **state)
{
	(void)state;
	if (g_n_lc < 2)
		return 0;
	return setup_opts(1) < 0 ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (g_n_lc < 2)
		return 0;
	__atomic_store_n(&g_broker_quit, 1, __ATOMIC_RELEASE);
	rte_eal_wait_lcore(g_lc[1]);
	for (int i = 0; i < N_CONNS; i++) {
		dp_conn_reset(&g_conns[i].base);
		g_conns[i].used = false;
	}
	dp_hop_fini();
	dp_reactors_fini();
	return 0;
}

static void
got_is(const struct tconn *c, const char *want)
{
	char buf[8192];

	memcpy(buf, c->got, c->got_len);
	buf[c->got_len] = '\0';
	assert_string_equal(buf, want);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void
test_in_order_now_and_later(void **state)
{
	struct tconn *c = &g_conns[0];
	struct dp_hop_stats st;
	struct dp_hop_broker_stats bs;

	(void)state;
	if (g_n_lc < 2)
		skip();
	/* A later answer before a quick one: responses still leave in request order. */
	push_frame(c, 3, 'L', "one");
	push_frame(c, 3, 'E', "two");
	push_frame(c, 0, 'Z', "");
	push_frame(c, 18, 'E', "av");
	push_frame(c, 3, 'E', "three");
	assert_int_equal(dp_conn_deliver(&c->base), 5);
	assert_true(run_until(all_idle));
	got_is(c, "one|two|av|three|");
	assert_false(c->base.closing);
	assert_false(g_wrong_lcore);
	assert_int_equal(dp_hop_stats_get(g_lc[0], &st), 0);
	assert_int_equal(st.hopped, 4);
	assert_int_equal(st.local, 1);
	assert_int_equal(st.pending, 0);
	assert_true(st.rtt_tsc_max > 0 && st.rtt_tsc_sum >= st.rtt_tsc_max);
	dp_hop_broker_stats_get(&bs);
	assert_int_equal(bs.served, 4);
	assert_int_equal(bs.queued, 0);
	assert_int_equal(bs.resp_free, RESP_BUFS); /* every response buffer came back */
	assert_int_equal(dp_hop_stats_get(g_lc[1], &st), -EINVAL); /* no worker state there */
	assert_true(dp_hop_remote(g_lc[0]));
	assert_false(dp_hop_remote(g_lc[1]));
}

static void
test_many_connections(void **state)
{
	char want[N_CONNS][4096];
	size_t wl[N_CONNS];
	struct dp_hop_broker_stats bs;
	struct dp_hop_stats st;
	int sent[N_CONNS];
	bool all_sent = false;
	uint64_t deadline = rte_rdtsc() + rte_get_tsc_hz() * 60; /* generous: loaded CI */

	(void)state;
	if (g_n_lc < 2)
		skip();
	memset(sent, 0, sizeof(sent));
	memset(wl, 0, sizeof(wl));
	/* 40 requests on each of 24 connections, mixed quick and late answers. */
	while (!all_sent && rte_rdtsc() < deadline) {
		all_sent = true;
		for (int i = 0; i < N_CONNS; i++) {
			struct tconn *c = &g_conns[i];
			uint8_t *p;

			if (sent[i] == 40)
				continue;
			all_sent = false;
			if (dp_frame_buffered(&c->base.rx) == 0 &&
				dp_frame_rx_space(&c->base.rx, &p) > 64) {
				char payload[32];

				snprintf(payload, sizeof(payload), "c%d-%d", i, sent[i]);
				push_frame(c, 1, sent[i] % 3 == 0 ? 'L' : 'E', payload);
				wl[i] += (size_t)snprintf(want[i] + wl[i], sizeof(want[i]) - wl[i],
					"%s|", payload);
				sent[i]++;
			}
		}
		dp_reactor_poll_once(g_lc[0]);
		for (int i = 0; i < N_CONNS; i++)
			service(&g_conns[i]);
	}
	assert_true(all_sent);
	assert_true(run_until(all_idle));
	for (int i = 0; i < N_CONNS; i++) {
		want[i][wl[i]] = '\0';
		got_is(&g_conns[i], want[i]);
	}
	assert_false(g_wrong_lcore);
	dp_hop_broker_stats_get(&bs);
	assert_int_equal(bs.served, N_CONNS * 40);
	assert_int_equal(bs.resp_free, RESP_BUFS);
	assert_int_equal(dp_hop_stats_get(g_lc[0], &st), 0);
	assert_int_equal(st.hopped, N_CONNS * 40);
	assert_int_equal(st.pending, 0);
}

static void
test_close_while_in_flight(void **state)
{
	struct tconn *c = &g_conns[1];
	struct dp_hop_stats st;
	struct dp_hop_broker_stats bs;
	uint32_t old_gen = c->base.gen;

	(void)state;
	if (g_n_lc < 2)
		skip();
	push_frame(c, 3, 'L', "late1");
	push_frame(c, 3, 'L', "late2");
	push_frame(c, 3, 'E', "quick");
	assert_int_equal(dp_conn_deliver(&c->base), 3);
	/* The client goes away: the transport reaps the connection and reuses it. */
	dp_conn_reset(&c->base);
	assert_int_equal(c->base.gen, old_gen + 1);
	push_frame(c, 3, 'E', "fresh");
	assert_int_equal(dp_conn_deliver(&c->base), 1);
	assert_true(run_until(all_idle));
	/* Only the new request's answer reaches the reused connection. */
	got_is(c, "fresh|");
	assert_int_equal(dp_hop_stats_get(g_lc[0], &st), 0);
	assert_int_equal(st.late, 3);
	assert_int_equal(st.pending, 0);
	dp_hop_broker_stats_get(&bs);
	assert_int_equal(bs.resp_free, RESP_BUFS); /* late buffers freed on the broker lcore */
	assert_int_equal(g_env.n_late_replies, 3);
}

static void
test_handler_error_and_close(void **state)
{
	struct tconn *c = &g_conns[2];
	struct tconn *k = &g_conns[3];
	struct dp_hop_stats st;

	(void)state;
	if (g_n_lc < 2)
		skip();
	push_frame(c, 3, 'L', "before");
	push_frame(c, 3, 'C', "bad");
	assert_int_equal(dp_conn_deliver(&c->base), 2);
	/* The handler's close (asynchronously, without a reply) also closes. */
	push_frame(k, 3, 'E', "k1");
	push_frame(k, 3, 'K', "k2");
	assert_int_equal(dp_conn_deliver(&k->base), 2);
	assert_true(run_until(hop_drained));
	/* The answer before the error still arrives; the connections are closing. */
	assert_true(c->base.closing);
	assert_true(k->base.closing);
	got_is(c, "before|");
	got_is(k, "k1|");
	assert_int_equal(dp_hop_stats_get(g_lc[0], &st), 0);
	assert_int_equal(st.closed, 2);
	assert_int_equal(dp_hop_pending(), 0);
}

static void
test_full_ring_defers(void **state)
{
	struct dp_hop_stats st;
	struct dp_hop_broker_stats bs;
	int taken = 0;

	(void)state;
	if (g_n_lc < 2)
		skip();
	/* The broker stops polling: its ring from the worker fills up. */
	broker_pause();
	for (int i = 0; i < 12; i++) {
		char p[16];

		snprintf(p, sizeof(p), "r%d", i);
		push_frame(&g_conns[4 + i], 0, 'E', p);
		taken += dp_conn_deliver(&g_conns[4 + i].base);
	}
	assert_int_equal(taken, RING_SIZE - 1);
	assert_int_equal(dp_hop_stats_get(g_lc[0], &st), 0);
	assert_int_equal(st.deferred_ring, 12 - (RING_SIZE - 1));
	for (int i = 4; i < 16; i++) {
		if (dp_frame_buffered(&g_conns[i].base.rx) > 0)
			assert_true(g_conns[i].base.rx_stalled); /* kept, offered again */
	}
	/* The broker's handler defers too: requests wait at the head of its queue. */
	g_defer_left = 0;
	__atomic_store_n(&g_broker_paused, 0, __ATOMIC_RELEASE);
	assert_true(run_until(all_idle));
	for (int i = 0; i < 12; i++) {
		char p[16];

		snprintf(p, sizeof(p), "r%d|", i);
		got_is(&g_conns[4 + i], p);
	}
	dp_hop_broker_stats_get(&bs);
	assert_int_equal(bs.served, 12);
	assert_int_equal(bs.resp_free, RESP_BUFS);
}

static void
test_broker_eagain_keeps_order(void **state)
{
	struct tconn *c = &g_conns[20];
	struct dp_hop_broker_stats bs;

	(void)state;
	if (g_n_lc < 2)
		skip();
	/* Set while the broker is parked (it reads it in the handler only). */
	broker_pause();
	g_defer_left = 5;
	push_frame(c, 3, 'D', "d1");
	push_frame(c, 3, 'E', "e2");
	push_frame(c, 3, 'D', "d3");
	assert_int_equal(dp_conn_deliver(&c->base), 3);
	__atomic_store_n(&g_broker_paused, 0, __ATOMIC_RELEASE);
	assert_true(run_until(all_idle));
	got_is(c, "d1|e2|d3|");
	dp_hop_broker_stats_get(&bs);
	assert_true(bs.deferred >= 5);
	assert_int_equal(bs.served, 3);
}

static bool
kept_closed(void)
{
	return !__atomic_load_n(&g_close_kept, __ATOMIC_ACQUIRE);
}

/* Regression: a handler closing a proxy it kept after answering must not close a later request. */
static void
test_stale_close_is_ignored(void **state)
{
	struct tconn *c = &g_conns[6];

	(void)state;
	if (g_n_lc < 2)
		skip();
	push_frame(c, 3, 'S', "s1");
	assert_int_equal(dp_conn_deliver(&c->base), 1);
	assert_true(run_until(all_idle));
	__atomic_store_n(&g_close_kept, 1, __ATOMIC_RELEASE);
	assert_true(run_until(kept_closed));
	/* The same descriptor (and proxy) serves the next request. */
	push_frame(c, 3, 'E', "s2");
	assert_int_equal(dp_conn_deliver(&c->base), 1);
	assert_true(run_until(all_idle));
	got_is(c, "s1|s2|");
	assert_false(c->base.closing);
}

/* With every worker on the broker's lcore there is no hop: direct calls. */
static void
test_no_remote_worker_is_direct(void **state)
{
	struct tconn *c = &g_conns[0];

	(void)state;
	if (g_n_lc < 2)
		skip();
	/* Re-create with no worker lcore listed. */
	teardown(NULL);
	assert_int_equal(setup_opts(0), 0);
	assert_false(dp_hop_remote(g_lc[0]));
	push_frame(c, 18, 'E', "direct");
	assert_int_equal(dp_conn_deliver(&c->base), 1);
	/* Answered inside the call, on this lcore (ApiVersions checks the lcore). */
	service(c);
	got_is(c, "direct|");
	assert_false(g_wrong_lcore);
	assert_int_equal(dp_hop_pending(), 0);
}

int
main(void)
{
	char prefix[64];
	char lcores[16];
	char *eal[] = {"test_dp_hop", "-l", lcores, "--no-huge", "--no-shconf", "-m", "128",
		"--no-pci", "--no-telemetry", prefix, "--log-level=lib.eal:error", NULL};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_in_order_now_and_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_while_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handler_error_and_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_ring_defers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broker_eagain_keeps_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_close_is_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_remote_worker_is_direct, setup, teardown),
	};
	unsigned int id;
	int rc;

	snprintf(prefix, sizeof(prefix), "--file-prefix=test_dp_hop_%d", (int)getpid());
	{
		cpu_set_t set;
		int found[2] = {-1, -1};
		int n = 0;

		if (sched_getaffinity(0, sizeof(set), &set) == 0) {
			for (int cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++) {
				if (CPU_ISSET(cpu, &set))
					found[n++] = cpu;
			}
		}
		if (n < 2) {
			fprintf(stderr, "test_dp_hop: needs two CPUs; skipping\n");
			return 77;
		}
		snprintf(lcores, sizeof(lcores), "%d,%d", found[0], found[1]);
	}
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal) < 0) {
		fprintf(stderr, "test_dp_hop: EAL did not start; skipping\n");
		return 77;
	}
	RTE_LCORE_FOREACH(id) {
		if (g_n_lc < 2)
			g_lc[g_n_lc++] = id;
	}
	g_worker_pool = rte_mempool_create("t_worker_resp", 64, RESP_BYTES, 0, 0, NULL, NULL,
		NULL, NULL, (int)rte_socket_id(), RTE_MEMPOOL_F_SP_PUT | RTE_MEMPOOL_F_SC_GET);
	if (g_worker_pool == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rte_mempool_free(g_worker_pool);
	rte_eal_cleanup();
	return rc;
}
