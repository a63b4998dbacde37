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
#include "dp_transport_test_util.h"

static struct dp_config g_cfg;
static unsigned int g_lcore;

static void
pump(void)
{
	t_ring_pump(g_lcore);
}

#define PUMP_UNTIL(cond) T_PUMP_UNTIL(pump(), cond)

/* Send the frames tagged by the characters of @tags in one segment. */
static void
client_send(struct t_conn *cl, const char *tags, uint8_t seq)
{
	uint8_t buf[4 * T_HOLD_RESP_LEN];
	size_t n = t_hold_frames(buf, sizeof(buf), tags, seq);

	assert_int_equal(net_tcp_send(cl->c, buf, (uint32_t)n), (int)n);
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
	struct t_conn a, b;
	struct dp_conn *ca, *cb;
	uint32_t calls;

	memset(&t_hold, 0, sizeof(t_hold));
	t_conn_open(&b, g_lcore);
	client_send(&b, "HH", 1);
	PUMP_UNTIL(t_hold.n_held == 1);
	cb = t_hold.held[0].conn;
	t_conn_open(&a, g_lcore);
	client_send(&a, "HX", 10);
	PUMP_UNTIL(t_hold.n_held == 2);
	ca = t_hold.held[1].conn;
	assert_ptr_not_equal(ca, cb);
	/* Let every ACK settle: nothing is left to touch either connection. */
	for (int i = 0; i < 50; i++)
		pump();
	assert_int_equal(t_hold.calls, 2);
	assert_int_equal(t_hold_responses(a.rx_len) + t_hold_responses(b.rx_len), 0);

	t_hold_answer_held(cb, false);
	t_hold_answer_held(ca, false);
	calls = t_hold.calls;
	/* One broker iteration, then the client reads what it sent. */
	dp_reactor_poll_once(g_lcore);
	assert_int_equal(t_hold.calls, calls + 2);
	assert_int_equal(t_hold.n_held, 0); /* B's second request was answered by A's 'X' */
	t_client_pump();
	assert_int_equal(t_hold_responses(a.rx_len), 2);
	assert_int_equal(t_hold_responses(b.rx_len), 2);
	t_hold_check_response(b.rx, b.rx_len, 0, 'H', 1);
	t_hold_check_response(b.rx, b.rx_len, 1, 'H', 2);
	t_hold_check_response(a.rx, a.rx_len, 0, 'H', 10);
	t_hold_check_response(a.rx, a.rx_len, 1, 'X', 11);

	t_conn_close(&a, g_lcore);
	t_conn_close(&b, g_lcore);
}

/* --- set-up --- */

static int
setup(void **state)
{
	const char *const keys[][2] = {T_WALK_KEYS};

	t_dpdk_start(&g_cfg, "test_net_dpdk_walk", "256", "tndw", keys, RTE_DIM(keys), t_hold_handler,
		&g_lcore);
	return 0;
}

static int
teardown(void **state)
{
	t_dpdk_stop(&g_cfg);
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
