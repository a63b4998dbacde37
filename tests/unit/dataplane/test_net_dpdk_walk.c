/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_dpdk: the end poller's walk of touched connections.
 *
 * The DPDK transport on a net_ring port (its rx ring fed by the test, its tx
 * ring drained by it), its reactor driven by hand, and two client
 * connections, A and B, on a second instance of our TCP stack (as in
 * test_net_dpdk.c). One request in flight per connection
 * (dataplane.conn.max.inflight=1), so a second frame waits in the receive
 * list and is delivered by a later walk.
 *
 * The case checked: a frame delivered inside the walk (every frame is, on
 * this transport) completes a request of another connection that was
 * already walked in the same pass (as DeleteTopics closing a log completes
 * the appends in flight on it). That connection must be walked again in the
 * same iteration, so its response leaves with the others, without waiting
 * for the client's ACK of earlier data to touch it again.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_eth_ring.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "dp_config.h"
#include "dp_conn.h"
#include "dp_reactor.h"
#include "net.h"
#include "net_dpdk.h"
#include "net_port.h"
#include "net_tcp.h"

#define T_FRAME_LEN 4 /* api key (2 bytes), a tag, a sequence number */
#define T_MAX_HELD 16

static struct dp_config g_cfg;
static struct rte_ring *g_to_port;   /* the port's rx ring: client output */
static struct rte_ring *g_from_port; /* the port's tx ring: client input */
static struct rte_mempool *g_client_pool;
static struct net_stack *g_client;
static unsigned int g_lcore;

/* The handler: 'X' answers itself and every request held for another connection. */
static struct {
	uint32_t calls;
	struct {
		struct dp_conn *conn;
		uint64_t req;
		uint8_t frame[T_FRAME_LEN];
	} held[T_MAX_HELD];
	uint32_t n_held;
} h;

struct t_client {
	struct net_tcp_conn *c;
	bool connected;
	uint8_t rx[256];
	size_t rx_len;
};

static void
t_answer(struct dp_conn *conn, uint64_t req, const uint8_t *frame)
{
	uint8_t *buf = dp_conn_resp_alloc(conn);

	assert_non_null(buf);
	buf[0] = 0;
	buf[1] = 0;
	buf[2] = 0;
	buf[3] = T_FRAME_LEN;
	memcpy(buf + 4, frame, T_FRAME_LEN);
	assert_int_equal(dp_conn_reply(conn, req, buf, 4 + T_FRAME_LEN, dp_conn_resp_free,
		conn->env->resp_pool), 0);
}

/* Answer the held requests of @conn, or of every other connection when @others. */
static void
t_answer_held(struct dp_conn *conn, bool others)
{
	uint32_t kept = 0;

	for (uint32_t i = 0; i < h.n_held; i++) {
		if ((h.held[i].conn == conn) != others)
			t_answer(h.held[i].conn, h.held[i].req, h.held[i].frame);
		else
			h.held[kept++] = h.held[i];
	}
	h.n_held = kept;
}

static int
t_handler(void *arg, struct dp_conn *conn, uint64_t req, const uint8_t *frame, uint32_t len)
{
	assert_int_equal(len, T_FRAME_LEN);
	h.calls++;
	if (frame[2] == 'X') {
		t_answer(conn, req, frame);
		t_answer_held(conn, true);
		return 0;
	}
	assert_true(h.n_held < T_MAX_HELD);
	h.held[h.n_held].conn = conn;
	h.held[h.n_held].req = req;
	memcpy(h.held[h.n_held].frame, frame, T_FRAME_LEN);
	h.n_held++;
	return 0;
}

/* --- the client stack --- */

static uint16_t
client_tx(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	return (uint16_t)rte_ring_enqueue_burst(g_to_port, (void **)pkts, n, NULL);
}

static void
cl_connected(void *arg, struct net_tcp_conn *c)
{
	((struct t_client *)arg)->connected = true;
}

static void
cl_data(void *arg, struct net_tcp_conn *c, struct rte_mbuf *m, uint32_t len)
{
	struct t_client *cl = arg;

	assert_true(cl->rx_len + len <= sizeof(cl->rx));
	for (struct rte_mbuf *s = m; s != NULL; s = s->next) {
		memcpy(cl->rx + cl->rx_len, rte_pktmbuf_mtod(s, const uint8_t *), s->data_len);
		cl->rx_len += s->data_len;
	}
	rte_pktmbuf_free(m);
	net_tcp_recved(c, len);
}

static void
cl_closed(void *arg, struct net_tcp_conn *c, int status)
{
	((struct t_client *)arg)->c = NULL;
}

static const struct net_tcp_ops cl_ops = {
	.connected = cl_connected,
	.data = cl_data,
	.closed = cl_closed,
};

/* The client's input (what the broker sent) and timers, no broker iteration. */
static void
client_pump(void)
{
	struct rte_mbuf *pkts[64];
	unsigned int n;

	while ((n = rte_ring_dequeue_burst(g_from_port, (void **)pkts, 64, NULL)) > 0)
		net_stack_input(g_client, pkts, (uint16_t)n, net_port_now_us());
	net_stack_poll(g_client, net_port_now_us());
}

/* One round: the broker's reactor, then the client. */
static void
pump(void)
{
	dp_reactor_poll_once(g_lcore);
	client_pump();
}

#define PUMP_UNTIL(cond)                                                              \
	do {                                                                          \
		uint64_t end_ = net_port_now_us() + 5000000;                          \
		while (!(cond) && net_port_now_us() < end_)                           \
			pump();                                                       \
		assert_true(cond);                                                    \
	} while (0)

static void
client_open(struct t_client *cl)
{
	memset(cl, 0, sizeof(*cl));
	assert_int_equal(net_tcp_connect(g_client, rte_cpu_to_be_32(0xc6120002), 9092, &cl_ops,
		cl, &cl->c), 0);
	PUMP_UNTIL(cl->connected);
}

/* Send the frames tagged by the characters of @tags in one segment. */
static void
client_send(struct t_client *cl, const char *tags, uint8_t seq)
{
	uint8_t buf[4 * (4 + T_FRAME_LEN)];
	size_t n = 0;

	assert_true(strlen(tags) <= 4);
	for (const char *t = tags; *t != '\0'; t++, seq++) {
		const uint8_t f[4 + T_FRAME_LEN] = {0, 0, 0, T_FRAME_LEN, 0, 18, (uint8_t)*t, seq};

		memcpy(buf + n, f, sizeof(f));
		n += sizeof(f);
	}
	assert_int_equal(net_tcp_send(cl->c, buf, (uint32_t)n), (int)n);
}

static size_t
responses(const struct t_client *cl)
{
	return cl->rx_len / (4 + T_FRAME_LEN);
}

static void
check_response(const struct t_client *cl, size_t i, char tag, uint8_t seq)
{
	const uint8_t *r = cl->rx + i * (4 + T_FRAME_LEN);

	assert_true((i + 1) * (4 + T_FRAME_LEN) <= cl->rx_len);
	assert_int_equal(r[3], T_FRAME_LEN);
	assert_int_equal(r[6], (uint8_t)tag);
	assert_int_equal(r[7], seq);
}

/* --- tests --- */

/*
 * B: a request held and one behind it; A: a request held and an 'X' behind
 * it. Answering B's and then A's held requests touches B, then A: the walk
 * sends B's answer and delivers B's second request, then sends A's answer
 * and delivers A's 'X', which answers B's second request. All four answers
 * leave in that one iteration.
 */
static void
test_touch_during_walk(void **state)
{
	struct t_client a, b;
	struct dp_conn *ca, *cb;
	uint32_t calls;

	memset(&h, 0, sizeof(h));
	client_open(&b);
	client_send(&b, "HH", 1);
	PUMP_UNTIL(h.n_held == 1);
	cb = h.held[0].conn;
	client_open(&a);
	client_send(&a, "HX", 10);
	PUMP_UNTIL(h.n_held == 2);
	ca = h.held[1].conn;
	assert_ptr_not_equal(ca, cb);
	/* Let every ACK settle: nothing is left to touch either connection. */
	for (int i = 0; i < 50; i++)
		pump();
	assert_int_equal(h.calls, 2);
	assert_int_equal(responses(&a) + responses(&b), 0);

	t_answer_held(cb, false);
	t_answer_held(ca, false);
	calls = h.calls;
	/* One broker iteration, then the client reads what it sent. */
	dp_reactor_poll_once(g_lcore);
	assert_int_equal(h.calls, calls + 2);
	assert_int_equal(h.n_held, 0); /* B's second request was answered by A's 'X' */
	client_pump();
	assert_int_equal(responses(&a), 2);
	assert_int_equal(responses(&b), 2);
	check_response(&b, 0, 'H', 1);
	check_response(&b, 1, 'H', 2);
	check_response(&a, 0, 'H', 10);
	check_response(&a, 1, 'X', 11);

	net_tcp_close(a.c);
	net_tcp_close(b.c);
	PUMP_UNTIL(a.c == NULL && b.c == NULL);
}

/* --- set-up --- */

static int
setup(void **state)
{
	char prefix[64];
	char *argv[] = {
		"test_net_dpdk_walk", "--no-huge", "--no-pci", "-m", "256", "--no-shconf",
		"--log-level=error", "--no-telemetry", "-l", "0", prefix, NULL,
	};
	const char *keys[][2] = {
		{"dataplane.transport", "dpdk"},
		{"listeners", "PLAINTEXT://198.18.0.2:9092"},
		{"dataplane.port.ipv4.address", "198.18.0.2"},
		{"dataplane.max.connections", "8"},
		{"dataplane.conn.rx.buffer.bytes", "4096"},
		{"dataplane.conn.max.inflight", "1"},
		{"dataplane.frame.large.bytes", "65536"},
		{"dataplane.frame.large.buffers", "1"},
		{"dataplane.response.buffer.bytes", "1024"},
		{"dataplane.response.buffers", "64"},
		{"dataplane.port.mbufs", "4096"},
		{"dataplane.poll.idle.sleep.us", "0"},
	};
	struct rte_ring *rx, *tx;
	struct net_config nc;
	char name[RTE_ETH_NAME_MAX_LEN];
	char err[DP_CONFIG_ERR_LEN];
	char why[256];
	unsigned int lcores[1];
	int port;

	snprintf(prefix, sizeof(prefix), "--file-prefix=tndw%d", (int)getpid());
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0) {
		fprintf(stderr, "SKIP: EAL did not start\n");
		exit(77);
	}
	rx = rte_ring_create("tndw_rx", 4096, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	tx = rte_ring_create("tndw_tx", 4096, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	assert_true(rx != NULL && tx != NULL);
	g_to_port = rx;
	g_from_port = tx;
	port = rte_eth_from_rings("tndw", &rx, 1, &tx, 1, SOCKET_ID_ANY);
	assert_true(port >= 0);
	assert_int_equal(rte_eth_dev_get_name_by_port((uint16_t)port, name), 0);

	assert_int_equal(dp_config_init(&g_cfg), 0);
	assert_int_equal(dp_config_set(&g_cfg, "dataplane.port.device", name, "t", 1, err,
		sizeof(err)), 0);
	for (size_t i = 0; i < RTE_DIM(keys); i++)
		assert_int_equal(dp_config_set(&g_cfg, keys[i][0], keys[i][1], "t", 1, err,
			sizeof(err)), 0);
	assert_int_equal(dp_config_finish(&g_cfg, "t", err, sizeof(err)), 0);
	g_lcore = rte_lcore_id();
	lcores[0] = g_lcore;
	assert_int_equal(dp_reactors_init(lcores, 1, 64, 0), 0);
	if (net_dpdk_init(&g_cfg, t_handler, NULL, why, sizeof(why)) < 0)
		fail_msg("net_dpdk_init: %s", why);

	g_client_pool = rte_pktmbuf_pool_create("tndw_client", 8191, 0, 0,
		RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	assert_non_null(g_client_pool);
	memset(&nc, 0, sizeof(nc));
	nc.ipv4_addr = rte_cpu_to_be_32(0xc6120001); /* 198.18.0.1 */
	nc.pool = g_client_pool;
	nc.tx_fn = client_tx;
	nc.mac.addr_bytes[0] = 0x02;
	nc.mac.addr_bytes[5] = 0x01;
	nc.seed = 42;
	g_client = net_stack_create(&nc);
	assert_non_null(g_client);
	net_stack_start(g_client, net_port_now_us());
	return 0;
}

static int
teardown(void **state)
{
	net_stack_free(g_client);
	net_dpdk_fini();
	dp_reactors_fini();
	dp_config_free(&g_cfg);
	rte_mempool_free(g_client_pool);
	rte_eal_cleanup();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_touch_during_walk),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
