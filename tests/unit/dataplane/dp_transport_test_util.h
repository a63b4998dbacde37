/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the transport tests of tests/unit/dataplane
 * (test_net_kernel.c, test_net_dpdk.c, test_net_dpdk_walk.c), each of which
 * runs a transport in one process with its reactor driven by hand
 * (dp_reactor_poll_once) on the test's own lcore:
 *
 * - EAL start-up in memory (no hugepages, no devices) and a dp_config built
 *   from a table of keys;
 * - the "hold" handler of the end-poller walk tests: every request frame
 *   (4 bytes: api key, a tag, a sequence number) is kept pending unless its
 *   tag is 'X' ("cross"), which answers itself and every request held for
 *   another connection from inside the handler; frame builders and response
 *   readers for it;
 * - for the DPDK transport, a net_ring port (its rx ring fed by the test, its
 *   tx ring drained by it) and a client on a second instance of our TCP stack
 *   (198.18.0.1 talking to the broker's 198.18.0.2:9092), with client
 *   connections that collect what they receive; t_dpdk_start() and
 *   t_dpdk_stop() set all of it up and down, t_dpdk_refused() checks a
 *   configuration net_dpdk must refuse.
 *
 * Everything is static inline (state marked unused), so each test includes
 * what it uses; the ring port's functions need rte_net_ring only when used.
 */
#ifndef SLP_DP_TRANSPORT_TEST_UTIL_H
#define SLP_DP_TRANSPORT_TEST_UTIL_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <rte_common.h>
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

#define T_UNUSED __attribute__((unused))

/* ---- time, EAL, configuration ---- */

/* CLOCK_MONOTONIC in microseconds: the tests' deadlines. */
static inline uint64_t
t_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Run @step until @cond holds or 5 s of wall time have passed; then assert @cond. */
#define T_PUMP_UNTIL(step, cond)                                                      \
	do {                                                                          \
		uint64_t end_ = t_now_us() + 5000000;                                 \
		while (!(cond) && t_now_us() < end_)                                  \
			step;                                                         \
		assert_true(cond);                                                    \
	} while (0)

/*
 * Start EAL in memory on lcore 0 with @mem_mb MiB and the file prefix
 * <@tag><pid> (so parallel tests never share a runtime directory). Exits 77
 * (skipped) when EAL does not start. @name is argv[0].
 */
static bool t_eal_up T_UNUSED; /* EAL started (once per process: later calls return) */

static inline void
t_eal_start(const char *name, const char *mem_mb, const char *tag)
{
	char prefix[64];
	char *argv[] = {
		(char *)name, "--no-huge", "--no-pci", "-m", (char *)mem_mb, "--no-shconf",
		"--log-level=error", "--no-telemetry", "-l", "0", prefix, NULL,
	};

	if (t_eal_up)
		return;
	snprintf(prefix, sizeof(prefix), "--file-prefix=%s%d", tag, (int)getpid());
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0) {
		fprintf(stderr, "SKIP: EAL did not start\n");
		exit(77);
	}
	t_eal_up = true;
}

/* Initialise @cfg with @n (key, value) pairs of @keys set in order; fails the test on an error. */
static inline void
t_config_load(struct dp_config *cfg, const char *const keys[][2], size_t n)
{
	char err[DP_CONFIG_ERR_LEN];

	assert_int_equal(dp_config_init(cfg), 0);
	for (size_t i = 0; i < n; i++)
		if (dp_config_set(cfg, keys[i][0], keys[i][1], "t", 1, err, sizeof(err)) < 0)
			fail_msg("config %s=%s: %s", keys[i][0], keys[i][1], err);
	if (dp_config_finish(cfg, "t", err, sizeof(err)) < 0)
		fail_msg("config: %s", err);
}

/* ---- the hold handler ---- */

#define T_HOLD_FRAME_LEN 4 /* api key (2 bytes), a tag, a sequence number */
#define T_HOLD_MAX 16
#define T_HOLD_RESP_LEN (4 + T_HOLD_FRAME_LEN) /* a response: size prefix, the frame */

/* The handler's state: reset with memset before each test. */
static struct {
	uint32_t calls;
	struct {
		struct dp_conn *conn;
		uint64_t req;
		uint8_t frame[T_HOLD_FRAME_LEN];
	} held[T_HOLD_MAX];
	uint32_t n_held;
} t_hold T_UNUSED;

/* Answer request @req of @conn with a copy of its @frame (a pool response buffer). */
static inline void
t_hold_answer(struct dp_conn *conn, uint64_t req, const uint8_t *frame)
{
	uint8_t *buf = dp_conn_resp_alloc(conn);

	assert_non_null(buf);
	buf[0] = 0;
	buf[1] = 0;
	buf[2] = 0;
	buf[3] = T_HOLD_FRAME_LEN;
	memcpy(buf + 4, frame, T_HOLD_FRAME_LEN);
	assert_int_equal(dp_conn_reply(conn, req, buf, T_HOLD_RESP_LEN, dp_conn_resp_free,
		conn->env->resp_pool), 0);
}

/* Answer the held requests of @conn (all of them when NULL), or of every other when @others. */
static inline void
t_hold_answer_held(struct dp_conn *conn, bool others)
{
	uint32_t kept = 0;

	for (uint32_t i = 0; i < t_hold.n_held; i++) {
		bool match = conn == NULL || (others ? t_hold.held[i].conn != conn :
						       t_hold.held[i].conn == conn);

		if (match)
			t_hold_answer(t_hold.held[i].conn, t_hold.held[i].req,
				t_hold.held[i].frame);
		else
			t_hold.held[kept++] = t_hold.held[i];
	}
	t_hold.n_held = kept;
}

/* How many requests of @conn are held. */
static inline uint32_t
t_hold_count(const struct dp_conn *conn)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < t_hold.n_held; i++)
		n += t_hold.held[i].conn == conn;
	return n;
}

/* The transport's handler (dp_conn's frame callback): @frame is borrowed, so it is copied. */
static inline int
t_hold_handler(void *arg, struct dp_conn *conn, uint64_t req, const uint8_t *frame, uint32_t len)
{
	(void)arg;
	assert_int_equal(len, T_HOLD_FRAME_LEN);
	t_hold.calls++;
	if (frame[2] == 'X') {
		t_hold_answer(conn, req, frame);
		t_hold_answer_held(conn, true);
		return 0;
	}
	assert_true(t_hold.n_held < T_HOLD_MAX);
	t_hold.held[t_hold.n_held].conn = conn;
	t_hold.held[t_hold.n_held].req = req;
	memcpy(t_hold.held[t_hold.n_held].frame, frame, T_HOLD_FRAME_LEN);
	t_hold.n_held++;
	return 0;
}

/*
 * The frames tagged by the characters of @tags (at most @cap / T_HOLD_RESP_LEN),
 * sequence numbers from @seq, written to @out (caller's): their total length.
 */
static inline size_t
t_hold_frames(uint8_t *out, size_t cap, const char *tags, uint8_t seq)
{
	size_t n = 0;

	assert_true(strlen(tags) * T_HOLD_RESP_LEN <= cap);
	for (const char *t = tags; *t != '\0'; t++, seq++) {
		const uint8_t f[T_HOLD_RESP_LEN] = {0, 0, 0, T_HOLD_FRAME_LEN, 0, 18, (uint8_t)*t, seq};

		memcpy(out + n, f, sizeof(f));
		n += sizeof(f);
	}
	return n;
}

/* How many whole responses are in the @rx_len bytes a client received. */
static inline size_t
t_hold_responses(size_t rx_len)
{
	return rx_len / T_HOLD_RESP_LEN;
}

/*
 * The keys of the walk tests (test_net_kernel, test_net_dpdk_walk), for a
 * key table: one request in flight per connection, so that later frames
 * wait and are delivered by the end poller's walk; small buffers.
 */
#define T_WALK_KEYS                                                                   \
	{"dataplane.max.connections", "16"}, {"dataplane.conn.rx.buffer.bytes", "4096"},  \
	{"dataplane.conn.max.inflight", "1"}, {"dataplane.frame.large.bytes", "65536"},   \
	{"dataplane.frame.large.buffers", "1"},                                           \
	{"dataplane.response.buffer.bytes", "1024"}, {"dataplane.response.buffers", "64"}

/* Assert that response @i of the @len bytes a client received at @rx is (@tag, @seq). */
static inline void
t_hold_check_response(const uint8_t *rx, size_t len, size_t i, char tag, uint8_t seq)
{
	const uint8_t *r = rx + i * T_HOLD_RESP_LEN;

	assert_true((i + 1) * T_HOLD_RESP_LEN <= len);
	assert_int_equal(r[0] | r[1] | r[2], 0);
	assert_int_equal(r[3], T_HOLD_FRAME_LEN);
	assert_int_equal(r[6], (uint8_t)tag);
	assert_int_equal(r[7], seq);
}

/* ---- a net_ring port and a client TCP stack (the DPDK transport's tests) ---- */

#define T_RING_BROKER_IP 0xc6120002u /* 198.18.0.2, host order */
#define T_RING_CLIENT_IP 0xc6120001u /* 198.18.0.1 */

static struct rte_ring *t_to_port T_UNUSED;   /* the port's rx ring: client output */
static struct rte_ring *t_from_port T_UNUSED; /* the port's tx ring: client input */
static struct rte_mempool *t_client_pool T_UNUSED;
static struct net_stack *t_client T_UNUSED;

/*
 * A net_ring ethdev port named after @tag (rings "<tag>_rx", "<tag>_tx"); its
 * device name (for dataplane.port.device) goes to @name (RTE_ETH_NAME_MAX_LEN).
 */
static inline void
t_ring_port_create(const char *tag, char *name)
{
	char rname[RTE_RING_NAMESIZE];
	struct rte_ring *rx, *tx;
	int port;

	snprintf(rname, sizeof(rname), "%s_rx", tag);
	rx = rte_ring_create(rname, 4096, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	snprintf(rname, sizeof(rname), "%s_tx", tag);
	tx = rte_ring_create(rname, 4096, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	assert_true(rx != NULL && tx != NULL);
	t_to_port = rx;
	t_from_port = tx;
	port = rte_eth_from_rings(tag, &rx, 1, &tx, 1, SOCKET_ID_ANY);
	assert_true(port >= 0);
	assert_int_equal(rte_eth_dev_get_name_by_port((uint16_t)port, name), 0);
}

/*
 * The client's output, or when set, a test's function in its place (the
 * frames test reorders segments there); either takes what it returns.
 */
static net_tx_burst_fn t_client_tx_hook T_UNUSED;

static inline uint16_t
t_client_tx(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	if (t_client_tx_hook != NULL)
		return t_client_tx_hook(arg, pkts, n);
	return (uint16_t)rte_ring_enqueue_burst(t_to_port, (void **)pkts, n, NULL);
}

/*
 * The client stack at 198.18.0.1, its output into the port's rx ring; pool
 * "<tag>_client". Freed by t_dpdk_stop(): the stack first, the pool only
 * after the transport has stopped (its port may still hold the client's mbufs).
 */
static inline void
t_client_start(const char *tag)
{
	char pname[RTE_MEMPOOL_NAMESIZE];
	struct net_config nc;

	snprintf(pname, sizeof(pname), "%s_client", tag);
	t_client_pool = rte_pktmbuf_pool_create(pname, 8191, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
		SOCKET_ID_ANY);
	assert_non_null(t_client_pool);
	memset(&nc, 0, sizeof(nc));
	nc.ipv4_addr = rte_cpu_to_be_32(T_RING_CLIENT_IP);
	nc.pool = t_client_pool;
	nc.tx_fn = t_client_tx;
	nc.mac.addr_bytes[0] = 0x02;
	nc.mac.addr_bytes[5] = 0x01;
	nc.seed = 42;
	nc.max_conns = 4096; /* the property tests' rounds leave many in TIME-WAIT */
	t_client = net_stack_create(&nc);
	assert_non_null(t_client);
	net_stack_start(t_client, net_port_now_us());
}

/* The client's input (what the broker sent) and timers, no broker iteration. */
static inline void
t_client_pump(void)
{
	struct rte_mbuf *pkts[64];
	unsigned int n;

	while ((n = rte_ring_dequeue_burst(t_from_port, (void **)pkts, 64, NULL)) > 0)
		net_stack_input(t_client, pkts, (uint16_t)n, net_port_now_us());
	net_stack_poll(t_client, net_port_now_us());
}

/* One round: the broker's reactor on @lcore, then the client. */
static inline void
t_ring_pump(unsigned int lcore)
{
	dp_reactor_poll_once(lcore);
	t_client_pump();
}

/*
 * @cfg with the transport's keys (port @dev, dpdk, PLAINTEXT://198.18.0.2:9092,
 * 4096 mbufs, no idle sleep) followed by the test's @n @keys.
 */
static inline void
t_dpdk_config(struct dp_config *cfg, const char *dev, const char *const keys[][2], size_t n)
{
	const char *all[32][2] = {
		{"dataplane.port.device", dev},
		{"dataplane.transport", "dpdk"},
		{"listeners", "PLAINTEXT://198.18.0.2:9092"},
		{"dataplane.port.ipv4.address", "198.18.0.2"},
		{"dataplane.port.mbufs", "4096"},
		{"dataplane.poll.idle.sleep.us", "0"},
	};
	size_t k = 6;

	assert_true(k + n <= RTE_DIM(all));
	for (size_t i = 0; i < n; i++, k++) {
		all[k][0] = keys[i][0];
		all[k][1] = keys[i][1];
	}
	t_config_load(cfg, all, k);
}

/*
 * The DPDK transport's tests' set-up: EAL (@mem_mb MiB, argv[0] @name), a
 * net_ring port and the client stack named after @tag, @cfg from
 * t_dpdk_config() with the test's @n @keys, one reactor on this lcore (its id
 * to *@lcore), and net_dpdk with @handler. Undone by t_dpdk_stop().
 */
static inline void
t_dpdk_start(struct dp_config *cfg, const char *name, const char *mem_mb, const char *tag,
	const char *const keys[][2], size_t n, dp_conn_handler_fn handler, unsigned int *lcore)
{
	char dev[RTE_ETH_NAME_MAX_LEN];
	char why[256];
	unsigned int lcores[1];

	t_eal_start(name, mem_mb, tag);
	t_ring_port_create(tag, dev);
	t_dpdk_config(cfg, dev, keys, n);
	*lcore = rte_lcore_id();
	lcores[0] = *lcore;
	assert_int_equal(dp_reactors_init(lcores, 1, 64, 0), 0);
	if (net_dpdk_init(cfg, handler, NULL, why, sizeof(why)) < 0)
		fail_msg("net_dpdk_init: %s", why);
	t_client_start(tag);
}

/*
 * net_dpdk refuses to start on a new net_ring port named after @tag (EAL up
 * already, t_eal_start) with t_dpdk_config()'s keys and the test's @n @keys:
 * net_dpdk_init() fails and its reason contains @want. Nothing stays set up
 * but the port's rings.
 */
static inline void
t_dpdk_refused(const char *tag, const char *const keys[][2], size_t n, dp_conn_handler_fn handler,
	const char *want)
{
	char dev[RTE_ETH_NAME_MAX_LEN];
	char why[256] = "";
	struct dp_config cfg;
	unsigned int lcores[1] = {rte_lcore_id()};
	int rc;

	t_ring_port_create(tag, dev);
	t_dpdk_config(&cfg, dev, keys, n);
	assert_int_equal(dp_reactors_init(lcores, 1, 64, 0), 0);
	rc = net_dpdk_init(&cfg, handler, NULL, why, sizeof(why));
	if (rc == 0)
		net_dpdk_fini();
	dp_reactors_fini();
	dp_config_free(&cfg);
	print_message("refused (%d): %s\n", rc, why);
	assert_true(rc < 0);
	if (strstr(why, want) == NULL)
		fail_msg("net_dpdk_init's reason \"%s\" does not say \"%s\"", why, want);
}

/* Undo t_dpdk_start(): the client stack, the transport (and its port), then the client's pool. */
static inline void
t_dpdk_stop(struct dp_config *cfg)
{
	net_stack_free(t_client);
	net_dpdk_fini();
	dp_reactors_fini();
	dp_config_free(cfg);
	rte_mempool_free(t_client_pool);
	t_client = NULL;
	t_client_pool = NULL;
	rte_eal_cleanup();
}

/* A client connection and what it received (rx malloc'ed, grown as needed). */
struct t_conn {
	struct net_tcp_conn *c; /* NULL once closed */
	bool connected;
	bool closed;
	bool eof;
	uint8_t *rx;
	size_t rx_len;
	size_t rx_cap;
	uint32_t window_held; /* bytes received, window not given back (t_conn_slow) */
};

/*
 * Slow readers: while set, the clients keep the receive window of what they
 * got until t_conn_give_window(), so the broker's responses wait in its
 * send queue and its unsent bytes grow (dataplane.conn.max.pending.bytes).
 */
static bool t_conn_slow T_UNUSED;

/* Give back the receive window @cl kept. */
static inline void
t_conn_give_window(struct t_conn *cl)
{
	if (cl->c != NULL && cl->window_held > 0) {
		net_tcp_recved(cl->c, cl->window_held);
		cl->window_held = 0;
	}
}

static inline void
t_conn_connected(void *arg, struct net_tcp_conn *c)
{
	(void)c;
	((struct t_conn *)arg)->connected = true;
}

/* Consumes @m: its bytes are appended to the connection's rx. */
static inline void
t_conn_data(void *arg, struct net_tcp_conn *c, struct rte_mbuf *m, uint32_t len)
{
	struct t_conn *cl = arg;
	uint32_t off = 0;

	if (cl->rx_len + len > cl->rx_cap) {
		cl->rx_cap = (cl->rx_len + len) * 2;
		cl->rx = realloc(cl->rx, cl->rx_cap);
		assert_non_null(cl->rx);
	}
	for (struct rte_mbuf *s = m; s != NULL; s = s->next) {
		memcpy(cl->rx + cl->rx_len + off, rte_pktmbuf_mtod(s, const uint8_t *), s->data_len);
		off += s->data_len;
	}
	assert_int_equal(off, len);
	cl->rx_len += len;
	rte_pktmbuf_free(m);
	if (t_conn_slow)
		cl->window_held += len;
	else
		net_tcp_recved(c, len);
}

static inline void
t_conn_eof(void *arg, struct net_tcp_conn *c)
{
	(void)c;
	((struct t_conn *)arg)->eof = true;
}

static inline void
t_conn_closed(void *arg, struct net_tcp_conn *c, int status)
{
	struct t_conn *cl = arg;

	(void)c;
	(void)status;
	cl->closed = true;
	cl->c = NULL;
}

static const struct net_tcp_ops t_conn_ops T_UNUSED = {
	.connected = t_conn_connected,
	.data = t_conn_data,
	.eof = t_conn_eof,
	.closed = t_conn_closed,
};

/* Connect @cl to the broker's 198.18.0.2:9092, pumping @lcore's reactor until established. */
static inline void
t_conn_open(struct t_conn *cl, unsigned int lcore)
{
	memset(cl, 0, sizeof(*cl));
	assert_int_equal(net_tcp_connect(t_client, rte_cpu_to_be_32(T_RING_BROKER_IP), 9092,
		&t_conn_ops, cl, &cl->c), 0);
	T_PUMP_UNTIL(t_ring_pump(lcore), cl->connected);
}

/* Close @cl (if still open), wait for both sides to finish, free what it received. */
static inline void
t_conn_close(struct t_conn *cl, unsigned int lcore)
{
	if (cl->c != NULL) {
		net_tcp_close(cl->c);
		T_PUMP_UNTIL(t_ring_pump(lcore), cl->closed);
	}
	/* Let the broker reap its side (FIN both ways). */
	for (int i = 0; i < 20; i++)
		t_ring_pump(lcore);
	free(cl->rx);
	memset(cl, 0, sizeof(*cl));
}

/*
 * ---- the framing property (test_net_dpdk_frames.c, test_net_kernel.c) ----
 *
 * Whatever the segmentation of a request stream, every frame reaches the
 * handler once, in order, byte for byte, and its echo comes back in order.
 * t_fp_round() builds, per client connection, a stream of frames of random
 * sizes (1 byte to a few hundred KB: tiny, around the receive buffer, larger
 * than it, up to dataplane.frame.large.bytes), the first of them a hello
 * naming the connection, and sends it in random pieces through the
 * transport test's t_fp_io.send (one segment, or one write: 1-byte pieces,
 * a size prefix alone, a prefix split 1+3 / 2+2 / 3+1, pieces ending exactly
 * at a frame boundary, pieces of several frames), running the broker's
 * reactor (t_fp_io.pump) between them. t_fp_handler() checks each frame
 * against the stream and answers with the frame itself (the echo), now, or
 * later in random order (deferred: the slots fill up and reading pauses),
 * or refuses it with -EAGAIN (offered again later); a response too large for
 * a pool buffer is malloc'ed. The round ends when every client received its
 * whole stream back, compared byte for byte.
 *
 * Everything is decided by one 64-bit seed (t_fp.seed), printed before each
 * round and in every failure; an alarm (t_fp_alarm()) turns a reactor that
 * never returns into a failure naming the seed. Set T_FP_SEED to replay a
 * round.
 */
#include <signal.h>

#define T_FP_MAX_CONNS 8
#define T_FP_MAX_DEFER 256

/* How a transport test plugs its clients in. */
struct t_fp_io {
	/*
	 * Send up to @len bytes at @p (the stream, borrowed for the call) on
	 * client @i as one piece: the transport keeps their end a boundary of
	 * what the broker can receive (a segment, a write). @return bytes
	 * taken, 0 when none can go now.
	 */
	size_t (*send)(unsigned int i, const uint8_t *p, size_t len);
	/* One iteration of the broker's reactor, then the clients' receiving. */
	void (*pump)(void);
	/* What client @i received so far (@p borrowed until the next pump). */
	size_t (*received)(unsigned int i, const uint8_t **p);
};

struct t_fp_conn {
	uint8_t *tx;          /* the request stream: frames back to back (malloc) */
	size_t tx_len;
	size_t *start;        /* offset of frame k's size prefix; start[n_frames] = tx_len */
	uint32_t n_frames;
	size_t sent;          /* bytes of tx handed to t_fp_io.send */
	size_t cut;           /* send no further (tx_len, or where a cut round stops) */
	uint32_t next_frame;  /* first frame starting at or after sent (piece choice) */
	uint32_t handled;     /* frames the handler took, in order */
	uint32_t bad;         /* a cut round's frame with a bad size prefix (0: none) */
	uint32_t gen0;        /* the broker connection's generation at the hello */
	size_t seen;          /* bytes the client had received at the last look */
	struct dp_conn *conn; /* the broker's side (from the hello) */
};

static struct {
	uint64_t seed;        /* of this round */
	uint64_t rng;
	unsigned int round;
	unsigned int n_conns;
	uint32_t rx_cap;      /* dataplane.conn.rx.buffer.bytes */
	uint32_t max_size;    /* largest frame size sent */
	bool cutting;         /* a cut round: late answers find their connection closed */
	uint32_t cut_min;     /* a cut round sends at least this many bytes (0: 1) */
	uint32_t pct_eagain;  /* handler answers: -EAGAIN, */
	uint32_t pct_defer;   /* deferred, else now */
	struct t_fp_conn c[T_FP_MAX_CONNS];
	struct {
		struct dp_conn *conn;
		uint64_t req;
		unsigned int ci;
		uint32_t frame;
	} deferred[T_FP_MAX_DEFER];
	uint32_t n_deferred;
	uint32_t big_live;    /* malloc'ed responses not freed yet */
	struct dp_conn_env *env;
	/* what happened (all rounds): the test checks every path was taken */
	uint64_t n_eagain, n_defer, n_now, n_large_frames, n_pieces, n_tiny_pieces, n_bad;
} t_fp T_UNUSED;

static inline uint64_t
t_fp_rand(void)
{
	/* splitmix64 */
	uint64_t z = (t_fp.rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static inline uint32_t
t_fp_between(uint32_t lo, uint32_t hi)
{
	return lo + (uint32_t)(t_fp_rand() % ((uint64_t)hi - lo + 1));
}

static inline void
t_fp_alarm_cb(int sig)
{
	char msg[160];
	int n = snprintf(msg, sizeof(msg),
		"\nHANG: the reactor did not return (round %u, seed %llu; T_FP_SEED=%llu "
		"replays it)\n", t_fp.round, (unsigned long long)t_fp.seed,
		(unsigned long long)t_fp.seed);

	(void)sig;
	if (write(2, msg, (size_t)n) < 0)
		_exit(2);
	_exit(1);
}

/* Fail the test (naming the seed) if nothing returns within @s seconds; 0 disarms. */
static inline void
t_fp_alarm(unsigned int s)
{
	signal(SIGALRM, t_fp_alarm_cb);
	alarm(s);
}

#define t_fp_fail(...)                                                                \
	do {                                                                          \
		fprintf(stderr, "round %u seed %llu: ", t_fp.round,                   \
			(unsigned long long)t_fp.seed);                                \
		fail_msg(__VA_ARGS__);                                                \
	} while (0)

/* A frame size: tiny, small, around the receive buffer, larger, huge. */
static inline uint32_t
t_fp_size(void)
{
	uint32_t r = t_fp_between(0, 99);
	uint32_t cap = t_fp.rx_cap;
	uint32_t size;

	if (r < 25)
		size = t_fp_between(1, 16);
	else if (r < 45)
		size = t_fp_between(17, cap / 2);
	else if (r < 70)
		size = t_fp_between(cap - 12, cap + 4); /* 4 + size around cap */
	else if (r < 92)
		size = t_fp_between(cap + 5, 16 * cap);
	else
		size = t_fp_between(16 * cap, t_fp.max_size);
	return size < t_fp.max_size ? size : t_fp.max_size;
}

/* Build client @i's stream of @n frames (frame 0: the hello "FPHI" + be32 i). */
static inline void
t_fp_build(unsigned int i, uint32_t n)
{
	struct t_fp_conn *c = &t_fp.c[i];
	uint32_t *sizes = malloc(n * sizeof(uint32_t));
	size_t len = 0, off = 0;

	assert_non_null(sizes);
	memset(c, 0, sizeof(*c));
	sizes[0] = 8;
	len = 12;
	for (uint32_t k = 1; k < n; k++) {
		sizes[k] = t_fp_size();
		len += 4 + (size_t)sizes[k];
	}
	c->tx = malloc(len);
	c->start = malloc((n + 1) * sizeof(size_t));
	assert_true(c->tx != NULL && c->start != NULL);
	for (uint32_t k = 0; k < n; k++) {
		uint8_t *f = c->tx + off;

		c->start[k] = off;
		f[0] = (uint8_t)(sizes[k] >> 24);
		f[1] = (uint8_t)(sizes[k] >> 16);
		f[2] = (uint8_t)(sizes[k] >> 8);
		f[3] = (uint8_t)sizes[k];
		if (k == 0) {
			memcpy(f + 4, "FPHI", 4);
			f[8] = 0;
			f[9] = 0;
			f[10] = 0;
			f[11] = (uint8_t)i;
		} else {
			for (uint32_t b = 0; b < sizes[k]; b += 8) {
				uint64_t v = t_fp_rand();

				memcpy(f + 4 + b, &v, sizes[k] - b < 8 ? sizes[k] - b : 8);
			}
		}
		off += 4 + (size_t)sizes[k];
	}
	c->start[n] = len;
	c->tx_len = len;
	c->n_frames = n;
	free(sizes);
}

/* The end of client @i's next piece (> sent). */
static inline size_t
t_fp_piece_end(struct t_fp_conn *c)
{
	uint32_t r = t_fp_between(0, 99);
	size_t end;

	while (c->start[c->next_frame] < c->sent)
		c->next_frame++;
	if (r < 25) {
		end = c->sent + t_fp_between(1, 8); /* 1-byte pieces and other tiny ones */
	} else if (r < 60) {
		/* At a frame start + 0..4: a boundary, a prefix split 1+3 / 2+2 /
		 * 3+1, a prefix alone (when the piece before ended at the start). */
		uint32_t k = c->next_frame;

		end = c->start[k] + t_fp_between(0, 4);
		if (end <= c->sent && k < c->n_frames)
			end = c->start[k + 1] + t_fp_between(0, 4);
	} else if (r < 88) {
		end = c->sent + t_fp_between(1, 3000);
	} else {
		end = c->sent + t_fp_between(3001, 80000);
	}
	if (end <= c->sent)
		end = c->sent + 1;
	return end < c->cut ? end : c->cut;
}

static inline void
t_fp_big_free(void *arg, void *buf)
{
	(void)arg;
	free(buf);
	t_fp.big_live--;
}

/*
 * Answer frame @f of client @ci (request @req of @conn) with its echo, in a
 * pool buffer when it fits; false: the pool is empty. A @late answer
 * (deferred) then takes a malloc'ed one: responses completed behind an
 * unanswered one may hold every pool buffer until it leaves.
 */
static inline bool
t_fp_answer(struct dp_conn *conn, uint64_t req, unsigned int ci, uint32_t f, bool late)
{
	const struct t_fp_conn *c = &t_fp.c[ci];
	size_t total = c->start[f + 1] - c->start[f];
	uint8_t *buf = NULL;
	int rc;

	if (total <= conn->env->resp_buf_size) {
		buf = dp_conn_resp_alloc(conn);
		if (buf == NULL && !late)
			return false;
	}
	if (buf != NULL) {
		memcpy(buf, c->tx + c->start[f], total);
		rc = dp_conn_reply(conn, req, buf, (uint32_t)total, dp_conn_resp_free,
			conn->env->resp_pool);
	} else {
		buf = malloc(total);
		assert_non_null(buf);
		memcpy(buf, c->tx + c->start[f], total);
		t_fp.big_live++;
		rc = dp_conn_reply(conn, req, buf, (uint32_t)total, t_fp_big_free, NULL);
	}
	if (rc != 0 && !(rc == -ENOTCONN && t_fp.cutting))
		t_fp_fail("dp_conn_reply of frame %u of client %u: %d", f, ci, rc);
	return true;
}

/* The request handler: check the frame against the stream, then echo, defer or refuse. */
static inline int
t_fp_handler(void *arg, struct dp_conn *conn, uint64_t req, const uint8_t *frame, uint32_t len)
{
	struct t_fp_conn *c = NULL;
	unsigned int ci;
	uint32_t f, r;

	(void)arg;
	for (ci = 0; ci < t_fp.n_conns; ci++) {
		if (t_fp.c[ci].conn == conn) {
			c = &t_fp.c[ci];
			break;
		}
	}
	if (c == NULL) {
		if (len != 8 || memcmp(frame, "FPHI", 4) != 0 || frame[7] >= t_fp.n_conns)
			t_fp_fail("the first frame of a connection is not a hello (%u bytes)", len);
		ci = frame[7];
		c = &t_fp.c[ci];
		if (c->conn != NULL)
			t_fp_fail("a second hello from client %u", ci);
		c->conn = conn;
		c->gen0 = conn->gen;
		t_fp.env = conn->env;
	}
	f = c->handled;
	if (f >= c->n_frames)
		t_fp_fail("client %u: a frame after its last (%u bytes)", ci, len);
	if (len != c->start[f + 1] - c->start[f] - 4 ||
		memcmp(frame, c->tx + c->start[f] + 4, len) != 0)
		t_fp_fail("client %u: frame %u of %u is not the one sent (%u bytes, sent %zu)", ci,
			f, c->n_frames, len, c->start[f + 1] - c->start[f] - 4);
	r = t_fp_between(0, 99);
	if (r < t_fp.pct_eagain) {
		t_fp.n_eagain++;
		return -EAGAIN;
	}
	if (r < t_fp.pct_eagain + t_fp.pct_defer) {
		if (t_fp.n_deferred == T_FP_MAX_DEFER)
			t_fp_fail("more than %d requests deferred", T_FP_MAX_DEFER);
		t_fp.deferred[t_fp.n_deferred].conn = conn;
		t_fp.deferred[t_fp.n_deferred].req = req;
		t_fp.deferred[t_fp.n_deferred].ci = ci;
		t_fp.deferred[t_fp.n_deferred].frame = f;
		t_fp.n_deferred++;
		t_fp.n_defer++;
	} else {
		if (!t_fp_answer(conn, req, ci, f, false)) {
			t_fp.n_eagain++;
			return -EAGAIN; /* no response buffer: as a broker handler does */
		}
		t_fp.n_now++;
	}
	if (len > t_fp.rx_cap - 4)
		t_fp.n_large_frames++;
	c->handled++;
	return 0;
}

/* Answer some deferred requests (all when @all), picked in random order. */
static inline void
t_fp_answer_deferred(bool all)
{
	uint32_t n = t_fp.n_deferred;

	if (!all && n > 0)
		n = t_fp_between(0, n);
	for (uint32_t k = 0; k < n && t_fp.n_deferred > 0; k++) {
		uint32_t j = t_fp_between(0, t_fp.n_deferred - 1);

		t_fp_answer(t_fp.deferred[j].conn, t_fp.deferred[j].req, t_fp.deferred[j].ci,
			t_fp.deferred[j].frame, true);
		t_fp.deferred[j] = t_fp.deferred[--t_fp.n_deferred];
	}
}

/* The broker side of a connection, for a failure's report. */
static inline void
t_fp_conn_dump(const struct dp_conn *b)
{
	fprintf(stderr, "  broker side: closing %d, rx_stalled %d, in flight %u, buffered %u "
		"(buf %s, head %u, tail %u, cap %u), large %s (%u of %u), pending %llu, "
		"tx_ready %d\n", b->closing, b->rx_stalled, dp_conn_inflight(b),
		dp_frame_buffered(&b->rx), b->rx.buf != NULL ? "yes" : "none", b->rx.head,
		b->rx.tail, b->rx.cap, b->rx.large != NULL ? "attached" : "none",
		b->rx.large_fill, b->rx.large_size, (unsigned long long)b->pending_bytes,
		b->tx_ready);
}

/*
 * A cut round's client @c sends a bad size prefix (0, negative, or above
 * dataplane.frame.large.bytes) in place of a frame's, and stops a few bytes
 * after it: the broker must close the connection there.
 */
static inline void
t_fp_bad_size(struct t_fp_conn *c)
{
	static const uint32_t bad[] = {0, 0xffffffffu, 0x80000000u, 0x7fffffffu, 0x00ffffffu};
	uint32_t k = t_fp_between(1, c->n_frames - 1);
	uint32_t v = bad[t_fp_between(0, RTE_DIM(bad) - 1)];
	uint8_t *f = c->tx + c->start[k];

	f[0] = (uint8_t)(v >> 24);
	f[1] = (uint8_t)(v >> 16);
	f[2] = (uint8_t)(v >> 8);
	f[3] = (uint8_t)v;
	c->bad = k;
	c->cut = c->start[k] + 4 + t_fp_between(0, 16);
	if (c->cut > c->tx_len)
		c->cut = c->tx_len;
	t_fp.n_bad++;
}

/*
 * One round with @seed: @n_conns clients (connected by the caller, indexes
 * 0..n-1) each send @n_frames frames (hello included) in random pieces
 * through @io and must get them all back, byte for byte, within @limit_s
 * seconds. The caller then closes the clients, checks for leaks
 * (t_fp_check_buffers()) and calls t_fp_free().
 *
 * A @cut round: each client stops at a random point of its stream (inside a
 * frame, a prefix, a large frame...), the broker's reactor runs a random
 * number of times more, and the round returns with requests in flight and
 * bytes buffered: the caller closes or resets the clients, then
 * t_fp_answer_deferred(true) answers what is left (late: their connections
 * are gone), and checks that closing released everything.
 */
static inline void
t_fp_round(const struct t_fp_io *io, uint64_t seed, unsigned int n_conns, uint32_t n_frames,
	unsigned int limit_s, bool cut)
{
	uint64_t end = t_now_us() + (uint64_t)limit_s * 1000000;
	uint32_t still = 0; /* iterations in a row that moved no byte */
	bool done = false;

	assert_true(n_conns <= T_FP_MAX_CONNS);
	t_fp.seed = seed;
	t_fp.rng = seed;
	t_fp.n_conns = n_conns;
	t_fp.n_deferred = 0;
	fprintf(stderr, "round %u: seed %llu, %u clients, %u frames each\n", t_fp.round,
		(unsigned long long)seed, n_conns, n_frames);
	t_fp.cutting = cut;
	for (unsigned int i = 0; i < n_conns; i++) {
		t_fp_build(i, n_frames);
		t_fp.c[i].cut = cut ? t_fp_between(t_fp.cut_min > 0 ? t_fp.cut_min : 1,
					      (uint32_t)t_fp.c[i].tx_len) :
				      t_fp.c[i].tx_len;
		if (cut && n_frames > 1 && t_fp_between(0, 3) == 0)
			t_fp_bad_size(&t_fp.c[i]);
	}
	while (!done) {
		bool moved = false;

		done = true;
		for (unsigned int i = 0; i < n_conns; i++) {
			struct t_fp_conn *c = &t_fp.c[i];
			uint32_t pieces = t_fp_between(1, 3);
			const uint8_t *rx;
			size_t got;

			for (uint32_t k = 0; k < pieces && c->sent < c->cut; k++) {
				size_t pend = t_fp_piece_end(c);
				size_t n = io->send(i, c->tx + c->sent, pend - c->sent);

				if (n == 0)
					break;
				t_fp.n_pieces++;
				t_fp.n_tiny_pieces += n < 4;
				c->sent += n;
				moved = true;
			}
			got = io->received(i, &rx);
			if (got != c->seen) {
				c->seen = got;
				moved = true;
			}
			if (got > c->tx_len)
				t_fp_fail("client %u got %zu bytes, sent %zu", i, got, c->tx_len);
			if (c->sent < c->cut || (!cut && got < c->tx_len))
				done = false;
		}
		if (t_fp_between(0, 3) == 0)
			t_fp_answer_deferred(false);
		/*
		 * A cut round may stop for good before every client reached its
		 * cut: clients stopped inside large frames hold every large buffer
		 * (or inside frames, every shared receive buffer) until they close,
		 * as a broker's are held by clients that stop mid-request.
		 */
		still = moved ? 0 : still + 1;
		if (cut && still > 1000)
			break;
		if (t_now_us() > end) {
			for (unsigned int i = 0; i < n_conns; i++) {
				const struct t_fp_conn *ci = &t_fp.c[i];
				const uint8_t *rx;

				fprintf(stderr, "client %u: sent %zu of %zu, handled %u of %u "
					"frames, received %zu\n", i, ci->sent, ci->tx_len,
					ci->handled, ci->n_frames, io->received(i, &rx));
				if (ci->conn != NULL)
					t_fp_conn_dump(ci->conn);
			}
			t_fp_fail("not all echoed within %u s (%u deferred)", limit_s,
				t_fp.n_deferred);
		}
		io->pump();
	}
	if (cut) {
		for (uint32_t k = t_fp_between(0, 50); k > 0; k--) {
			if (t_fp_between(0, 3) == 0)
				t_fp_answer_deferred(false);
			io->pump();
		}
	}
	for (unsigned int i = 0; i < n_conns; i++) {
		const uint8_t *rx;
		size_t got = io->received(i, &rx);

		if (cut) {
			if (got > 0 && memcmp(rx, t_fp.c[i].tx, got) != 0)
				t_fp_fail("client %u: the echo differs", i);
			continue;
		}
		if (t_fp.c[i].handled != t_fp.c[i].n_frames)
			t_fp_fail("client %u: %u of %u frames handled", i, t_fp.c[i].handled,
				t_fp.c[i].n_frames);
		for (size_t b = 0; b < got; b++) {
			if (rx[b] != t_fp.c[i].tx[b])
				t_fp_fail("client %u: echo byte %zu differs", i, b);
		}
	}
	if (!cut && t_fp.n_deferred != 0)
		t_fp_fail("%u requests still deferred", t_fp.n_deferred);
}

/* Are all large buffers and response buffers free again (t_fp_check_buffers())? */
static inline bool
t_fp_buffers_back(void)
{
	struct dp_conn_env *env = t_fp.env;

	return env != NULL && t_fp.big_live == 0 &&
		(env->large == NULL || env->large->n == env->large->cap) &&
		(env->resp_pool == NULL ||
			rte_mempool_avail_count(env->resp_pool) == env->resp_pool->size);
}

/*
 * After the clients closed and the broker reaped them: no large buffer or
 * response buffer is still taken (big responses freed once sent).
 */
static inline void
t_fp_check_buffers(void)
{
	struct dp_conn_env *env = t_fp.env;

	assert_non_null(env);
	if (t_fp.big_live != 0)
		t_fp_fail("%u malloc'ed responses not released", t_fp.big_live);
	if (env->large != NULL && env->large->n != env->large->cap)
		t_fp_fail("large buffers: %u of %u free", env->large->n, env->large->cap);
	if (env->resp_pool != NULL &&
		rte_mempool_avail_count(env->resp_pool) != env->resp_pool->size)
		t_fp_fail("response buffers: %u of %u free",
			rte_mempool_avail_count(env->resp_pool), env->resp_pool->size);
}

static inline void
t_fp_free(void)
{
	for (unsigned int i = 0; i < t_fp.n_conns; i++) {
		free(t_fp.c[i].tx);
		free(t_fp.c[i].start);
		memset(&t_fp.c[i], 0, sizeof(t_fp.c[i]));
	}
	t_fp.round++;
}

/* The first seed: T_FP_SEED from the environment, else @def. */
static inline uint64_t
t_fp_first_seed(uint64_t def)
{
	const char *s = getenv("T_FP_SEED");

	return s != NULL && *s != '\0' ? strtoull(s, NULL, 0) : def;
}

#endif /* SLP_DP_TRANSPORT_TEST_UTIL_H */
