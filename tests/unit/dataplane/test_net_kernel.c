/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_kernel: the end-of-iteration walk of touched connections.
 *
 * The kernel transport on 127.0.0.1 (an ephemeral port), its reactor driven
 * by hand (dp_reactor_poll_once) on the test's own lcore, and two client
 * sockets, A and B, with one request in flight per connection
 * (dataplane.conn.max.inflight=1) so that later frames are held back in the
 * receive buffer and delivered by the end poller's walk.
 *
 * The case checked is the lost wake-up of a handler run inside the walk: a
 * frame delivered there completes a request of another connection that was
 * already walked in the same pass (as DeleteTopics closing a log completes
 * the appends in flight on it). That connection must be walked again, so its
 * response leaves without waiting for another event on its socket.
 */
#include "dp_transport_test_util.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "net_kernel.h"

static struct dp_config g_cfg;
static unsigned int g_lcore;
static uint16_t g_port;

/* --- clients: plain non-blocking sockets; the reactor runs between their calls --- */

struct t_client {
	int fd;
	uint8_t rx[256];
	size_t rx_len;
};

/* One reactor iteration, then whatever the clients can read. */
static void
pump(struct t_client *a, struct t_client *b)
{
	struct t_client *cl[2] = {a, b};

	dp_reactor_poll_once(g_lcore);
	for (int i = 0; i < 2; i++) {
		ssize_t n;

		if (cl[i] == NULL || cl[i]->fd < 0)
			continue;
		n = recv(cl[i]->fd, cl[i]->rx + cl[i]->rx_len, sizeof(cl[i]->rx) - cl[i]->rx_len,
			MSG_DONTWAIT);
		if (n > 0)
			cl[i]->rx_len += (size_t)n;
	}
}

/* Pump until @cond or 5 s of wall time; then check @cond. */
#define PUMP_UNTIL(a, b, cond) T_PUMP_UNTIL(pump(a, b), cond)

static void
client_open(struct t_client *c)
{
	struct sockaddr_in sa;

	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(c->fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(g_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		assert_int_equal(errno, EINPROGRESS);
}

/* Send the frames tagged by the characters of @tags, in one write. */
static void
client_send(struct t_client *c, const char *tags, uint8_t seq)
{
	uint8_t buf[8 * T_HOLD_RESP_LEN];
	size_t n = t_hold_frames(buf, sizeof(buf), tags, seq);
	uint64_t end = t_now_us() + 5000000;

	for (;;) {
		ssize_t sent = send(c->fd, buf, n, MSG_NOSIGNAL);

		if (sent == (ssize_t)n)
			break;
		/* Only before the connection is established (non-blocking connect). */
		assert_true(sent < 0 && (errno == EAGAIN || errno == ENOTCONN));
		assert_true(t_now_us() < end);
		pump(NULL, NULL);
	}
}

/* --- tests --- */

/*
 * B has a request held and one held back behind it; A has a request held and
 * an 'X' held back behind it. B's and then A's held requests are answered
 * (touching B, then A): the walk sends B's answer and delivers B's second
 * request, then sends A's answer and delivers A's 'X', which answers B's
 * second request from inside the walk. B was walked already in that pass;
 * its second answer must still leave in this iteration's later pass.
 */
static void
test_touch_during_walk(void **state)
{
	struct t_client a, b;
	struct dp_conn *ca, *cb;
	uint32_t calls;

	memset(&t_hold, 0, sizeof(t_hold));
	a.fd = -1;
	/*
	 * Each client's two frames go in one write (one segment on loopback): the
	 * second is read with the first and waits in the receive buffer, behind
	 * the held one (EPOLLIN is off while the connection may not read).
	 */
	client_open(&b);
	client_send(&b, "HH", 1);
	PUMP_UNTIL(&a, &b, t_hold.n_held == 1);
	cb = t_hold.held[0].conn;
	client_open(&a);
	client_send(&a, "HX", 10);
	PUMP_UNTIL(&a, &b, t_hold.n_held == 2);
	ca = t_hold.held[1].conn;
	assert_ptr_not_equal(ca, cb);
	PUMP_UNTIL(&a, &b, dp_frame_buffered(&ca->rx) == T_HOLD_RESP_LEN &&
		dp_frame_buffered(&cb->rx) == T_HOLD_RESP_LEN);
	for (int i = 0; i < 20; i++)
		pump(&a, &b);
	assert_int_equal(t_hold.calls, 2);
	assert_int_equal(t_hold_responses(a.rx_len) + t_hold_responses(b.rx_len), 0);

	/* Touch B, then A, outside the walk (as replies from another lcore would). */
	t_hold_answer_held(cb, false);
	t_hold_answer_held(ca, false);
	assert_int_equal(t_hold.n_held, 0);
	calls = t_hold.calls;
	/* One iteration delivers both held-back frames: nothing else touches either socket. */
	pump(&a, &b);
	assert_int_equal(t_hold.calls, calls + 2);
	assert_int_equal(t_hold_count(cb), 0); /* answered by A's 'X' */
	PUMP_UNTIL(&a, &b, t_hold_responses(a.rx_len) == 2 && t_hold_responses(b.rx_len) == 2);
	t_hold_check_response(b.rx, b.rx_len, 0, 'H', 1);
	t_hold_check_response(b.rx, b.rx_len, 1, 'H', 2);
	t_hold_check_response(a.rx, a.rx_len, 0, 'H', 10);
	t_hold_check_response(a.rx, a.rx_len, 1, 'X', 11);

	close(a.fd);
	close(b.fd);
}

/*
 * Six connections, each with a request held and one held back: even ones an
 * 'H', odd ones an 'X'. Their held requests are answered last connection
 * first, so one walk goes 5, 4, ..., 0: 5's 'X' finds nothing held
 * elsewhere, 4's 'H' is held and answered by 3's 'X' (4 was walked), 2's by
 * 1's 'X', 0's stays held. All of that leaves without another event.
 */
static void
test_many_touches_during_walk(void **state)
{
	enum { N = 6 };
	struct t_client c[N];
	struct dp_conn *conn[N];

	memset(&t_hold, 0, sizeof(t_hold));
	for (int i = 0; i < N; i++) {
		client_open(&c[i]);
		client_send(&c[i], i % 2 == 0 ? "HH" : "HX", (uint8_t)(i * 10));
		PUMP_UNTIL(&c[i], NULL, t_hold.n_held == (uint32_t)i + 1);
		conn[i] = t_hold.held[i].conn;
		PUMP_UNTIL(&c[i], NULL, dp_frame_buffered(&conn[i]->rx) == T_HOLD_RESP_LEN);
	}
	for (int i = N - 1; i >= 0; i--)
		t_hold_answer_held(conn[i], false);
	pump(NULL, NULL);
	assert_int_equal(t_hold.calls, 2 * N);
	assert_int_equal(t_hold.n_held, 1);
	assert_ptr_equal(t_hold.held[0].conn, conn[0]);
	for (int i = 1; i < N; i++)
		PUMP_UNTIL(&c[i], NULL, t_hold_responses(c[i].rx_len) == 2);
	PUMP_UNTIL(&c[0], NULL, t_hold_responses(c[0].rx_len) == 1);
	t_hold_answer_held(NULL, false);
	PUMP_UNTIL(&c[0], NULL, t_hold_responses(c[0].rx_len) == 2);
	for (int i = 0; i < N; i++) {
		t_hold_check_response(c[i].rx, c[i].rx_len, 0, 'H', (uint8_t)(i * 10));
		t_hold_check_response(c[i].rx, c[i].rx_len, 1, i % 2 == 0 ? 'H' : 'X',
			(uint8_t)(i * 10 + 1));
		close(c[i].fd);
	}
}

/*
 * --- the framing property (a group of its own: its keys and handler) ---
 *
 * dp_transport_test_util.h's t_fp_round() over loopback sockets: four
 * clients (TCP_NODELAY) write their streams of random frames in random
 * pieces, the broker's reactor running between the writes, so it reads
 * whatever pieces have arrived, a size prefix alone or split, partial
 * frames, several frames; into a 1 KiB receive buffer taken from two shared
 * ones (dataplane.conn.rx.buffers), so connections also wait for one; two
 * large buffers for four clients. The handler echoes now or later, or says
 * -EAGAIN. A second test has clients that read now and then only (reading
 * pauses at dataplane.conn.max.pending.bytes); a third group cuts streams
 * anywhere (some at a bad size prefix: the broker closes) and closes or
 * resets the clients there. Checked as for the DPDK transport
 * (test_net_dpdk_frames.c), and that an idle connection gives its shared
 * receive buffer back.
 */
#define T_FP_CONNS 4
#define T_FP_FRAMES 40
#define T_FP_MIN_ROUNDS 3
#define T_FP_MAX_ROUNDS 200
#define T_FP_ROUNDS_S 1 /* per test */
#define T_FP_ROUND_LIMIT_S 20

static struct {
	int fd;
	uint8_t *rx;
	size_t rx_len;
	size_t rx_cap;
} fpc[T_FP_CONNS];
static const char *g_fp_rx_buffers_key = "2"; /* dataplane.conn.rx.buffers of the group */
static bool g_fp_slow;    /* the clients read now and then only */
static uint64_t g_fp_paused; /* pumps that found a connection's reading paused */
static unsigned int g_fp_rx_buffers = 2;

static size_t
fp_send(unsigned int i, const uint8_t *p, size_t len)
{
	ssize_t n = send(fpc[i].fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0) {
		/* Closed by the broker (a cut round's bad size): the rest goes nowhere. */
		if ((errno == EPIPE || errno == ECONNRESET) && t_fp.cutting)
			return len;
		assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
		return 0;
	}
	return (size_t)n;
}

static void
fp_pump(void)
{
	dp_reactor_poll_once(g_lcore);
	for (unsigned int i = 0; i < T_FP_CONNS; i++) {
		if (g_fp_slow) {
			const struct dp_conn *b = t_fp.c[i].conn;

			/* Reading paused for unsent response bytes (max.pending.bytes). */
			if (b != NULL && b->pending_bytes >= 65536)
				g_fp_paused++;
			if (t_fp_between(0, 15) != 0)
				continue;
		}
		for (;;) {
			ssize_t n;

			if (fpc[i].rx_cap - fpc[i].rx_len < 65536) {
				fpc[i].rx_cap = fpc[i].rx_cap * 2 + 65536;
				fpc[i].rx = realloc(fpc[i].rx, fpc[i].rx_cap);
				assert_non_null(fpc[i].rx);
			}
			n = recv(fpc[i].fd, fpc[i].rx + fpc[i].rx_len,
				fpc[i].rx_cap - fpc[i].rx_len, MSG_DONTWAIT);
			if (n <= 0) {
				/* End of stream or reset: the broker closed (a bad size). */
				assert_true(n < 0 ? errno == EAGAIN || errno == EWOULDBLOCK ||
						(errno == ECONNRESET && t_fp.cutting) :
						t_fp.cutting);
				break;
			}
			fpc[i].rx_len += (size_t)n;
		}
	}
}

static size_t
fp_received(unsigned int i, const uint8_t **p)
{
	*p = fpc[i].rx;
	return fpc[i].rx_len;
}

static const struct t_fp_io fp_io = {
	.send = fp_send,
	.pump = fp_pump,
	.received = fp_received,
};

static void
fp_open(unsigned int i)
{
	struct sockaddr_in sa;
	int one = 1;

	memset(&fpc[i], 0, sizeof(fpc[i]));
	fpc[i].fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fpc[i].fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(g_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* Loopback: the kernel completes the handshake before the broker accepts. */
	assert_int_equal(connect(fpc[i].fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(setsockopt(fpc[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
}

/* Every broker-side connection idle: no shared receive buffer or large buffer kept. */
static bool
fp_idle(void)
{
	for (unsigned int i = 0; i < T_FP_CONNS; i++) {
		const struct dp_conn *b = t_fp.c[i].conn;

		if (b->rx.buf != NULL || b->rx.large != NULL || dp_conn_inflight(b) != 0)
			return false;
	}
	return true;
}

static bool
fp_all_known(void)
{
	for (unsigned int i = 0; i < T_FP_CONNS; i++) {
		if (t_fp.c[i].conn == NULL)
			return false;
	}
	return true;
}

/*
 * One round (t_fp_round(), @cut or not); the clients close (a cut round
 * resets some: SO_LINGER 0), and once the broker reaped them no buffer is
 * left taken.
 */
static void
fp_round(uint64_t seed, bool cut)
{
	uint32_t gen[T_FP_CONNS];

	t_fp_alarm(T_FP_ROUND_LIMIT_S + 10);
	for (unsigned int i = 0; i < T_FP_CONNS; i++)
		fp_open(i);
	t_fp_round(&fp_io, seed, T_FP_CONNS, T_FP_FRAMES, T_FP_ROUND_LIMIT_S, cut);
	if (cut)
		T_PUMP_UNTIL(fp_pump(), fp_all_known()); /* each sent its hello at least */
	else
		T_PUMP_UNTIL(fp_pump(), fp_idle()); /* idle: the shared buffer given back */
	for (unsigned int i = 0; i < T_FP_CONNS; i++) {
		gen[i] = t_fp.c[i].gen0; /* the broker may have closed it already */
		if (cut && t_fp_between(0, 1) == 0) {
			struct linger lg = {.l_onoff = 1, .l_linger = 0};

			assert_int_equal(setsockopt(fpc[i].fd, SOL_SOCKET, SO_LINGER, &lg,
				sizeof(lg)), 0);
		}
		close(fpc[i].fd);
		free(fpc[i].rx);
		memset(&fpc[i], 0, sizeof(fpc[i]));
		fpc[i].fd = -1;
	}
	/*
	 * Reaped: dp_conn_reset() bumps the generation. Deferred requests are
	 * answered meanwhile (cut rounds: late, to connections closed or gone).
	 */
	for (unsigned int i = 0; i < T_FP_CONNS; i++) {
		const struct dp_conn *b = t_fp.c[i].conn;

		uint64_t end = t_now_us() + 5000000;

		/* Frames that came before the close are still delivered: answer them too. */
		while (b->gen == gen[i] && t_now_us() < end) {
			t_fp_answer_deferred(true);
			dp_reactor_poll_once(g_lcore);
		}
		if (b->gen == gen[i])
			t_fp_fail("client %u's connection not reaped: closing %d, rx_stalled %d, "
				"in flight %u, buffered %u (head %u tail %u cap %u), large %p "
				"(fill %u of %u), pending %llu, tx_ready %d", i, b->closing,
				b->rx_stalled, dp_conn_inflight(b), dp_frame_buffered(&b->rx),
				b->rx.head, b->rx.tail, b->rx.cap, (void *)b->rx.large,
				b->rx.large_fill, b->rx.large_size,
				(unsigned long long)b->pending_bytes, b->tx_ready);
		assert_true(b->rx.large == NULL && (g_fp_rx_buffers == 0 || b->rx.buf == NULL));
	}
	/* Deferred by the poll that then reaped its connection: answered late. */
	t_fp_answer_deferred(true);
	assert_int_equal(t_fp.n_deferred, 0);
	t_fp_check_buffers();
	t_fp_alarm(0);
	t_fp_free();
}

static void
fp_rounds(bool cut)
{
	uint64_t seed = t_fp_first_seed(cut ? 100001 : g_fp_slow ? 300001 : 1);
	uint64_t bad0 = t_fp.env != NULL ? t_fp.env->n_bad_size + t_fp.env->n_oversized : 0;
	uint64_t t_end = t_now_us() + T_FP_ROUNDS_S * 1000000ull;
	unsigned int rounds = 0;

	t_fp.rx_cap = 1024;     /* dataplane.conn.rx.buffer.bytes */
	t_fp.max_size = 250000; /* under dataplane.frame.large.bytes */
	t_fp.pct_eagain = 10;
	t_fp.pct_defer = 35;
	t_fp.cut_min = 12; /* the hello: a connection known to the handler */
	t_fp.n_pieces = t_fp.n_tiny_pieces = t_fp.n_large_frames = 0;
	t_fp.n_now = t_fp.n_defer = t_fp.n_eagain = t_fp.n_bad = 0;
	g_fp_paused = 0;
	while (rounds < T_FP_MAX_ROUNDS && (rounds < T_FP_MIN_ROUNDS || t_now_us() < t_end)) {
		fp_round(seed + rounds, cut);
		rounds++;
	}
	print_message("%u rounds: %llu pieces (%llu under 4 bytes), %llu frames through a large "
		"buffer; handler: %llu now, %llu deferred, %llu -EAGAIN\n", rounds,
		(unsigned long long)t_fp.n_pieces, (unsigned long long)t_fp.n_tiny_pieces,
		(unsigned long long)t_fp.n_large_frames, (unsigned long long)t_fp.n_now,
		(unsigned long long)t_fp.n_defer, (unsigned long long)t_fp.n_eagain);
	assert_true(t_fp.n_large_frames > 0 && t_fp.n_tiny_pieces > 0);
	assert_true(t_fp.n_now > 0 && t_fp.n_defer > 0 && t_fp.n_eagain > 0);
	assert_true(!g_fp_slow || g_fp_paused > 0);
	/* Cut rounds: some bad size prefixes were seen (others not read before the close). */
	assert_true(!cut || (t_fp.n_bad > 0 &&
		t_fp.env->n_bad_size + t_fp.env->n_oversized > bad0));
}

/* Whole streams, two shared receive buffers for four clients. */
static void
test_random_segmentation(void **state)
{
	fp_rounds(false);
}

/*
 * Whole streams to clients that read now and then only: responses fill the
 * sockets, the broker's unsent bytes pass dataplane.conn.max.pending.bytes
 * and reading pauses until they leave.
 */
static void
test_slow_readers(void **state)
{
	g_fp_slow = true;
	fp_rounds(false);
	g_fp_slow = false;
}

/*
 * Streams cut anywhere (after the hello), the clients then closing or
 * resetting with frames half read, requests in flight, responses half sent:
 * all released. A receive buffer per connection (a client stopped inside a
 * frame keeps its shared buffer until it closes: two such would starve the
 * others of theirs, by design).
 */
static void
test_cut_streams(void **state)
{
	fp_rounds(true);
}

/* --- set-up --- */

static int
setup(void **state)
{
	char lcore[16];
	unsigned int lcores[1];

	t_eal_start("test_net_kernel", "128", "tnk");
	g_lcore = rte_lcore_id();
	snprintf(lcore, sizeof(lcore), "%u", g_lcore);
	{
		const char *const keys[][2] = {
			{"dataplane.lcores", lcore},
			{"listeners", "PLAINTEXT://127.0.0.1:0"},
			{"dataplane.poll.idle.sleep.us", "0"},
			T_WALK_KEYS,
		};

		t_config_load(&g_cfg, keys, RTE_DIM(keys));
	}
	lcores[0] = g_lcore;
	assert_int_equal(dp_reactors_init(lcores, 1, 64, 0), 0);
	assert_int_equal(net_kernel_init(&g_cfg, t_hold_handler, NULL), 0);
	g_port = net_kernel_listener_port(0);
	assert_true(g_port != 0);
	return 0;
}

static int
teardown(void **state)
{
	net_kernel_fini();
	dp_reactors_fini();
	dp_config_free(&g_cfg);
	return 0;
}

/* The framing property's transport: its own keys and handler. */
static int
fp_setup(void **state)
{
	char lcore[16];
	unsigned int lcores[1];

	t_eal_start("test_net_kernel", "128", "tnk");
	g_lcore = rte_lcore_id();
	snprintf(lcore, sizeof(lcore), "%u", g_lcore);
	{
		const char *const keys[][2] = {
			{"dataplane.lcores", lcore},
			{"listeners", "PLAINTEXT://127.0.0.1:0"},
			{"dataplane.poll.idle.sleep.us", "0"},
			{"dataplane.max.connections", "16"},
			{"dataplane.conn.rx.buffer.bytes", "1024"},
			{"dataplane.conn.rx.buffers", g_fp_rx_buffers_key},
			{"dataplane.conn.max.inflight", "4"},
			{"dataplane.frame.large.bytes", "262144"},
			{"dataplane.frame.large.buffers", "2"},
			{"dataplane.response.buffer.bytes", "2048"},
			{"dataplane.response.buffers", "16"},
			{"dataplane.conn.max.pending.bytes", "65536"},
			/*
			 * The OS's socket buffers, not Kafka's 100 KB: with those
			 * fixed, a connection whose reading paused (slots full)
			 * stalled over 20 s on loopback, both sockets dropping
			 * 64 KB segments (TCPRcvQDrop) and backing off to a 13 s
			 * RTO (seed 113806 with a 2 KiB receive buffer and 3 in
			 * flight; see the session 7 report). Not a framing matter.
			 */
			{"socket.send.buffer.bytes", "-1"},
			{"socket.receive.buffer.bytes", "-1"},
		};

		t_config_load(&g_cfg, keys, RTE_DIM(keys));
	}
	lcores[0] = g_lcore;
	assert_int_equal(dp_reactors_init(lcores, 1, 64, 0), 0);
	assert_int_equal(net_kernel_init(&g_cfg, t_fp_handler, NULL), 0);
	g_port = net_kernel_listener_port(0);
	assert_true(g_port != 0);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_touch_during_walk),
		cmocka_unit_test(test_many_touches_during_walk),
	};

	const struct CMUnitTest frames[] = {
		cmocka_unit_test(test_random_segmentation),
		cmocka_unit_test(test_slow_readers),
	};
	const struct CMUnitTest cut[] = {
		cmocka_unit_test(test_cut_streams),
	};
	int failed = cmocka_run_group_tests(tests, setup, teardown);

	failed += cmocka_run_group_tests_name("frames", frames, fp_setup, teardown);
	g_fp_rx_buffers_key = "0";
	g_fp_rx_buffers = 0;
	failed += cmocka_run_group_tests_name("cut frames", cut, fp_setup, teardown);
	rte_eal_cleanup();
	return failed;
}
