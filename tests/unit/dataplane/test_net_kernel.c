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
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <rte_common.h>
#include <rte_eal.h>
#include <rte_lcore.h>

#include "dp_config.h"
#include "dp_conn.h"
#include "dp_reactor.h"
#include "net_kernel.h"

#define T_FRAME_LEN 4     /* api key (2 bytes), a tag, a sequence number */
#define T_MAX_HELD 16

static struct dp_config g_cfg;
static unsigned int g_lcore;
static uint16_t g_port;

/*
 * The handler: every request is held (kept pending) unless its tag is 'X'
 * ("cross"), which answers itself and every request held for another
 * connection, from inside the handler.
 */
static struct {
	uint32_t calls;
	struct {
		struct dp_conn *conn;
		uint64_t req;
		uint8_t frame[T_FRAME_LEN];
	} held[T_MAX_HELD];
	uint32_t n_held;
} h;

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

/* Answer the held requests of @conn (all of them when NULL), or of every other when @others. */
static void
t_answer_held(struct dp_conn *conn, bool others)
{
	uint32_t kept = 0;

	for (uint32_t i = 0; i < h.n_held; i++) {
		bool match = conn == NULL || (others ? h.held[i].conn != conn :
						       h.held[i].conn == conn);

		if (match)
			t_answer(h.held[i].conn, h.held[i].req, h.held[i].frame);
		else
			h.held[kept++] = h.held[i];
	}
	h.n_held = kept;
}

static uint32_t
t_held_of(const struct dp_conn *conn)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < h.n_held; i++)
		n += h.held[i].conn == conn;
	return n;
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

/* --- clients: plain non-blocking sockets; the reactor runs between their calls --- */

struct t_client {
	int fd;
	uint8_t rx[256];
	size_t rx_len;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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
#define PUMP_UNTIL(a, b, cond)                                                        \
	do {                                                                          \
		uint64_t end_ = now_ms() + 5000;                                      \
		while (!(cond) && now_ms() < end_)                                    \
			pump(a, b);                                                   \
		assert_true(cond);                                                    \
	} while (0)

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
	uint8_t buf[8 * (4 + T_FRAME_LEN)];
	size_t n = 0;
	uint64_t end = now_ms() + 5000;

	assert_true(strlen(tags) <= 8);
	for (const char *t = tags; *t != '\0'; t++, seq++) {
		const uint8_t f[4 + T_FRAME_LEN] = {0, 0, 0, T_FRAME_LEN, 0, 18, (uint8_t)*t, seq};

		memcpy(buf + n, f, sizeof(f));
		n += sizeof(f);
	}
	for (;;) {
		ssize_t sent = send(c->fd, buf, n, MSG_NOSIGNAL);

		if (sent == (ssize_t)n)
			break;
		/* Only before the connection is established (non-blocking connect). */
		assert_true(sent < 0 && (errno == EAGAIN || errno == ENOTCONN));
		assert_true(now_ms() < end);
		pump(NULL, NULL);
	}
}

/* The tag and sequence number of response @i the client received. */
static void
client_response(const struct t_client *c, size_t i, char *tag, uint8_t *seq)
{
	const uint8_t *r = c->rx + i * (4 + T_FRAME_LEN);

	assert_true((i + 1) * (4 + T_FRAME_LEN) <= c->rx_len);
	assert_int_equal(r[0] | r[1] | r[2], 0);
	assert_int_equal(r[3], T_FRAME_LEN);
	*tag = (char)r[6];
	*seq = r[7];
}

static size_t
responses(const struct t_client *c)
{
	return c->rx_len / (4 + T_FRAME_LEN);
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
	char tag;
	uint8_t seq;
	uint32_t calls;

	memset(&h, 0, sizeof(h));
	a.fd = -1;
	/*
	 * Each client's two frames go in one write (one segment on loopback): the
	 * second is read with the first and waits in the receive buffer, behind
	 * the held one (EPOLLIN is off while the connection may not read).
	 */
	client_open(&b);
	client_send(&b, "HH", 1);
	PUMP_UNTIL(&a, &b, h.n_held == 1);
	cb = h.held[0].conn;
	client_open(&a);
	client_send(&a, "HX", 10);
	PUMP_UNTIL(&a, &b, h.n_held == 2);
	ca = h.held[1].conn;
	assert_ptr_not_equal(ca, cb);
	PUMP_UNTIL(&a, &b, dp_frame_buffered(&ca->rx) == 4 + T_FRAME_LEN &&
		dp_frame_buffered(&cb->rx) == 4 + T_FRAME_LEN);
	for (int i = 0; i < 20; i++)
		pump(&a, &b);
	assert_int_equal(h.calls, 2);
	assert_int_equal(responses(&a) + responses(&b), 0);

	/* Touch B, then A, outside the walk (as replies from another lcore would). */
	t_answer_held(cb, false);
	t_answer_held(ca, false);
	assert_int_equal(h.n_held, 0);
	calls = h.calls;
	/* One iteration delivers both held-back frames: nothing else touches either socket. */
	pump(&a, &b);
	assert_int_equal(h.calls, calls + 2);
	assert_int_equal(t_held_of(cb), 0); /* answered by A's 'X' */
	PUMP_UNTIL(&a, &b, responses(&a) == 2 && responses(&b) == 2);
	client_response(&b, 0, &tag, &seq);
	assert_true(tag == 'H' && seq == 1);
	client_response(&b, 1, &tag, &seq);
	assert_true(tag == 'H' && seq == 2);
	client_response(&a, 0, &tag, &seq);
	assert_true(tag == 'H' && seq == 10);
	client_response(&a, 1, &tag, &seq);
	assert_true(tag == 'X' && seq == 11);

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
	char tag;
	uint8_t seq;

	memset(&h, 0, sizeof(h));
	for (int i = 0; i < N; i++) {
		client_open(&c[i]);
		client_send(&c[i], i % 2 == 0 ? "HH" : "HX", (uint8_t)(i * 10));
		PUMP_UNTIL(&c[i], NULL, h.n_held == (uint32_t)i + 1);
		conn[i] = h.held[i].conn;
		PUMP_UNTIL(&c[i], NULL, dp_frame_buffered(&conn[i]->rx) == 4 + T_FRAME_LEN);
	}
	for (int i = N - 1; i >= 0; i--)
		t_answer_held(conn[i], false);
	pump(NULL, NULL);
	assert_int_equal(h.calls, 2 * N);
	assert_int_equal(h.n_held, 1);
	assert_ptr_equal(h.held[0].conn, conn[0]);
	for (int i = 1; i < N; i++)
		PUMP_UNTIL(&c[i], NULL, responses(&c[i]) == 2);
	PUMP_UNTIL(&c[0], NULL, responses(&c[0]) == 1);
	t_answer_held(NULL, false);
	PUMP_UNTIL(&c[0], NULL, responses(&c[0]) == 2);
	for (int i = 0; i < N; i++) {
		client_response(&c[i], 0, &tag, &seq);
		assert_true(tag == 'H' && seq == i * 10);
		client_response(&c[i], 1, &tag, &seq);
		assert_true(tag == (i % 2 == 0 ? 'H' : 'X') && seq == i * 10 + 1);
		close(c[i].fd);
	}
}

/* --- set-up --- */

static int
setup(void **state)
{
	char prefix[64];
	char lcore[16];
	char *argv[] = {
		"test_net_kernel", "--no-huge", "--no-pci", "-m", "128", "--no-shconf",
		"--log-level=error", "--no-telemetry", "-l", "0", prefix, NULL,
	};
	const char *keys[][2] = {
		{"listeners", "PLAINTEXT://127.0.0.1:0"},
		{"dataplane.max.connections", "16"},
		{"dataplane.conn.rx.buffer.bytes", "4096"},
		{"dataplane.conn.max.inflight", "1"},
		{"dataplane.frame.large.bytes", "65536"},
		{"dataplane.frame.large.buffers", "1"},
		{"dataplane.response.buffer.bytes", "1024"},
		{"dataplane.response.buffers", "64"},
		{"dataplane.poll.idle.sleep.us", "0"},
	};
	char err[DP_CONFIG_ERR_LEN];
	unsigned int lcores[1];

	snprintf(prefix, sizeof(prefix), "--file-prefix=tnk%d", (int)getpid());
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0) {
		fprintf(stderr, "SKIP: EAL did not start\n");
		exit(77);
	}
	g_lcore = rte_lcore_id();
	snprintf(lcore, sizeof(lcore), "%u", g_lcore);
	assert_int_equal(dp_config_init(&g_cfg), 0);
	assert_int_equal(dp_config_set(&g_cfg, "dataplane.lcores", lcore, "t", 1, err,
		sizeof(err)), 0);
	for (size_t i = 0; i < RTE_DIM(keys); i++)
		assert_int_equal(dp_config_set(&g_cfg, keys[i][0], keys[i][1], "t", 1, err,
			sizeof(err)), 0);
	if (dp_config_finish(&g_cfg, "t", err, sizeof(err)) < 0)
		fail_msg("config: %s", err);
	lcores[0] = g_lcore;
	assert_int_equal(dp_reactors_init(lcores, 1, 64, 0), 0);
	assert_int_equal(net_kernel_init(&g_cfg, t_handler, NULL), 0);
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
