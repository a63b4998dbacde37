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
	rte_eal_cleanup();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_touch_during_walk),
		cmocka_unit_test(test_many_touches_during_walk),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
