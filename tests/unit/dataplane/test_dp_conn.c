/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_conn: request slots and in-order responses over a fake transport:
 * out-of-order completion, partial writes, backpressure by slots and by
 * unsent bytes, handler -EAGAIN and errors, large-frame buffers shared by
 * connections, late replies after a reset, and empty (acks=0) responses.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dp_conn.h"

#define MAX_REQS 64

/* What the fake transport and handler saw. */
struct fake {
	int kicks;
	uint64_t reqs[MAX_REQS];
	uint32_t lens[MAX_REQS];
	uint8_t first_byte[MAX_REQS];
	int n_reqs;
	int handler_rc;      /* returned by the handler when not 0 */
	int frees;
	void *freed[MAX_REQS];
};

static struct fake g;

static void
fake_kick(struct dp_conn *conn)
{
	(void)conn;
	g.kicks++;
}

static void
fake_peer(const struct dp_conn *conn, char *buf, size_t len)
{
	(void)conn;
	snprintf(buf, len, "fake:1");
}

static const struct dp_conn_ops fake_ops = {.kick = fake_kick, .peer_name = fake_peer};

static int
handler(void *arg, struct dp_conn *conn, uint64_t req, const uint8_t *frame, uint32_t len)
{
	(void)arg;
	(void)conn;
	if (g.handler_rc != 0)
		return g.handler_rc;
	g.reqs[g.n_reqs] = req;
	g.lens[g.n_reqs] = len;
	g.first_byte[g.n_reqs] = frame[0];
	g.n_reqs++;
	return 0;
}

static void
count_free(void *arg, void *buf)
{
	(void)arg;
	g.freed[g.frees++] = buf;
}

struct rig {
	struct dp_conn_env env;
	struct dp_bufstack large;
	void *large_items[2];
	uint8_t large_mem[2][512];
	struct dp_conn conn[2];
	struct dp_conn_slot slots[2][8];
	uint8_t rx[2][128];
};

static int
setup(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));

	memset(&g, 0, sizeof(g));
	r->env.handler = handler;
	r->env.large = &r->large;
	r->env.max_inflight = 4;
	r->env.max_pending_bytes = 100;
	r->large.items = r->large_items;
	r->large.size = 512;
	r->large.cap = 1;
	r->large.n = 1;
	r->large_items[0] = r->large_mem[0];
	for (int i = 0; i < 2; i++)
		dp_conn_setup(&r->conn[i], &fake_ops, &r->env, r->rx[i], sizeof(r->rx[i]), 512,
			r->slots[i]);
	*state = r;
	return 0;
}

static int
teardown(void **state)
{
	free(*state);
	return 0;
}

/*
 * Put a frame of @len bytes whose first byte is @tag into @c's receive
 * buffer. When the buffer is full (a large frame), deliver what is there
 * first, which attaches a large buffer, as a transport does between reads.
 */
static void
push_frame(struct dp_conn *c, uint32_t len, uint8_t tag)
{
	uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
		(uint8_t)len};
	uint8_t body[600];
	uint32_t done = 0;

	memset(body, tag, sizeof(body));
	for (int part = 0; part < 2; part++) {
		const uint8_t *src = part == 0 ? hdr : body;
		uint32_t n = part == 0 ? 4 : len;

		done = 0;
		while (done < n) {
			uint8_t *p;
			uint32_t space = dp_frame_rx_space(&c->rx, &p);
			uint32_t k = n - done < space ? n - done : space;

			if (k == 0) {
				assert_true(dp_conn_deliver(c) >= 0);
				continue;
			}
			memcpy(p, src + done, k);
			dp_frame_rx_commit(&c->rx, k);
			done += k;
		}
	}
}

/* Collect what dp_conn_tx_iov offers into @out; returns bytes. */
static size_t
gather(struct dp_conn *c, char *out)
{
	struct iovec iov[16];
	int n = dp_conn_tx_iov(c, iov, 16);
	size_t total = 0;

	for (int i = 0; i < n; i++) {
		memcpy(out + total, iov[i].iov_base, iov[i].iov_len);
		total += iov[i].iov_len;
	}
	out[total] = '\0';
	return total;
}

static void
test_responses_leave_in_request_order(void **state)
{
	struct rig *r = *state;
	struct dp_conn *c = &r->conn[0];
	char out[256];

	push_frame(c, 10, 'a');
	push_frame(c, 10, 'b');
	push_frame(c, 10, 'c');
	assert_int_equal(dp_conn_deliver(c), 3);
	assert_int_equal(g.n_reqs, 3);
	assert_int_equal(g.first_byte[2], 'c');
	assert_int_equal(dp_conn_inflight(c), 3);

	/* The third completes first: nothing may leave yet. */
	assert_int_equal(dp_conn_reply(c, g.reqs[2], "CCC", 3, count_free, NULL), 0);
	assert_false(c->tx_ready);
	assert_int_equal(g.kicks, 0);
	assert_int_equal(gather(c, out), 0);
	/* The first: only it may leave. */
	assert_int_equal(dp_conn_reply(c, g.reqs[0], "AAAA", 4, count_free, NULL), 0);
	assert_true(c->tx_ready);
	assert_int_equal(g.kicks, 1);
	assert_int_equal(gather(c, out), 4);
	assert_string_equal(out, "AAAA");
	/* A partial write of it. */
	dp_conn_tx_done(c, 3);
	assert_int_equal(gather(c, out), 1);
	assert_string_equal(out, "A");
	assert_int_equal(g.frees, 0);
	dp_conn_tx_done(c, 1);
	assert_int_equal(g.frees, 1);
	assert_false(c->tx_ready);
	/* The second unblocks the third: both leave, in order, in one gather. */
	assert_int_equal(dp_conn_reply(c, g.reqs[1], "BB", 2, count_free, NULL), 0);
	assert_int_equal(gather(c, out), 5);
	assert_string_equal(out, "BBCCC");
	assert_int_equal(c->pending_bytes, 5);
	dp_conn_tx_done(c, 5);
	assert_int_equal(g.frees, 3);
	assert_int_equal(dp_conn_inflight(c), 0);
	assert_int_equal(c->pending_bytes, 0);
	/* Replying twice, or to a request never made, is refused (and the buffer freed). */
	assert_int_equal(dp_conn_reply(c, g.reqs[1], "X", 1, count_free, NULL), -EINVAL);
	assert_int_equal(g.frees, 4);
}

static void
test_backpressure_by_slots(void **state)
{
	struct rig *r = *state;
	struct dp_conn *c = &r->conn[0];
	char out[64];

	for (int i = 0; i < 6; i++)
		push_frame(c, 4, (uint8_t)('0' + i));
	/* Four slots: two frames wait in the receive buffer, and reading pauses. */
	assert_int_equal(dp_conn_deliver(c), 4);
	assert_false(dp_conn_may_read(c));
	assert_int_equal(dp_conn_deliver(c), 0);
	assert_int_equal(dp_conn_reply(c, g.reqs[0], "r0", 2, NULL, NULL), 0);
	assert_int_equal(dp_conn_deliver(c), 0); /* sent bytes free a slot, not replies */
	assert_int_equal(gather(c, out), 2);
	dp_conn_tx_done(c, 2);
	assert_true(dp_conn_may_read(c));
	assert_int_equal(dp_conn_deliver(c), 1);
	assert_int_equal(g.first_byte[4], '4');
	assert_false(dp_conn_may_read(c));
}

static void
test_backpressure_by_pending_bytes(void **state)
{
	struct rig *r = *state;
	struct dp_conn *c = &r->conn[0];
	static char big[100];

	push_frame(c, 4, 'x');
	push_frame(c, 4, 'y');
	assert_int_equal(dp_conn_deliver(c), 2);
	assert_true(dp_conn_may_read(c));
	assert_int_equal(dp_conn_reply(c, g.reqs[0], big, sizeof(big), NULL, NULL), 0);
	assert_false(dp_conn_may_read(c)); /* 100 unsent bytes reach the bound */
	dp_conn_tx_done(c, 1);
	assert_true(dp_conn_may_read(c));
}

static void
test_handler_eagain_keeps_the_frame(void **state)
{
	struct rig *r = *state;
	struct dp_conn *c = &r->conn[0];

	push_frame(c, 4, 'q');
	g.handler_rc = -EAGAIN;
	assert_int_equal(dp_conn_deliver(c), 0);
	assert_true(c->rx_stalled);
	assert_int_equal(dp_conn_inflight(c), 0);
	g.handler_rc = 0;
	assert_int_equal(dp_conn_deliver(c), 1);
	assert_false(c->rx_stalled);
	assert_int_equal(g.first_byte[0], 'q');
	/* The token handed out is the slot given back: counters did not advance. */
	assert_int_equal((uint32_t)g.reqs[0], 0);
}

static void
test_handler_error_closes(void **state)
{
	struct rig *r = *state;
	struct dp_conn *c = &r->conn[0];

	push_frame(c, 4, 'z');
	g.handler_rc = -EPROTONOSUPPORT;
	assert_int_equal(dp_conn_deliver(c), -EPROTONOSUPPORT);
	assert_int_equal(r->env.n_handler_closed, 1);
}

static void
test_bad_prefix(void **state)
{
	struct rig *r = *state;
	struct dp_conn *c = &r->conn[0];
	uint8_t *p;
	uint8_t big[4] = {0, 0, 0x10, 0}; /* 4096 > 512 */

	assert_true(dp_frame_rx_space(&c->rx, &p) >= 4);
	memcpy(p, big, 4);
	dp_frame_rx_commit(&c->rx, 4);
	assert_int_equal(dp_conn_deliver(c), -EMSGSIZE);
	assert_int_equal(r->env.n_oversized, 1);
	assert_int_equal(g.n_reqs, 0);
}

static void
test_large_buffers_are_shared(void **state)
{
	struct rig *r = *state;
	struct dp_conn *a = &r->conn[0];
	struct dp_conn *b = &r->conn[1];

	/* Both start a 300-byte frame (bigger than the 128-byte receive buffer). */
	push_frame(a, 300, 'A');
	assert_int_equal(dp_conn_deliver(a), 1);
	assert_int_equal(g.lens[0], 300);
	assert_int_equal(r->large.n, 1); /* given back once the frame was consumed */

	/* Now b holds the only large buffer while its frame is incomplete... */
	{
		uint8_t hdr[4] = {0, 0, 0x01, 0x2c};
		uint8_t *p;

		dp_frame_rx_space(&b->rx, &p);
		memcpy(p, hdr, 4);
		dp_frame_rx_commit(&b->rx, 4);
		assert_int_equal(dp_conn_deliver(b), 0);
		assert_int_equal(r->large.n, 0);
	}
	/* ...so a's next large frame waits (stalled), without losing bytes. */
	{
		uint8_t hdr[4] = {0, 0, 0x01, 0x2c};
		uint8_t *p;

		dp_frame_rx_space(&a->rx, &p);
		memcpy(p, hdr, 4);
		memset(p + 4, 'Z', 100);
		dp_frame_rx_commit(&a->rx, 104);
		assert_int_equal(dp_conn_deliver(a), 0);
		assert_true(a->rx_stalled);
	}
	/* b is closed: its buffer goes back to the pool, and a proceeds. */
	dp_conn_reset(b);
	assert_int_equal(r->large.n, 1);
	assert_int_equal(dp_conn_deliver(a), 0);
	assert_false(a->rx_stalled);
	assert_int_equal(r->large.n, 0);
	assert_int_equal(dp_frame_buffered(&a->rx), 100);
}

static void
test_late_reply_after_reset(void **state)
{
	struct rig *r = *state;
	struct dp_conn *c = &r->conn[0];
	uint32_t gen = c->gen;
	static char resp[] = "late";

	push_frame(c, 4, 'l');
	push_frame(c, 4, 'm');
	assert_int_equal(dp_conn_deliver(c), 2);
	assert_int_equal(dp_conn_reply(c, g.reqs[1], "done", 4, count_free, NULL), 0);
	dp_conn_reset(c); /* closed with one answered (unsent) and one pending */
	assert_int_equal(g.frees, 1);
	assert_int_equal(c->gen, gen + 1);
	assert_int_equal(dp_conn_inflight(c), 0);
	assert_int_equal(dp_conn_reply(c, g.reqs[0], resp, 4, count_free, NULL), -ENOTCONN);
	assert_int_equal(g.frees, 2);
	assert_ptr_equal(g.freed[1], resp);
	assert_int_equal(r->env.n_late_replies, 1);
}

static void
test_empty_responses(void **state)
{
	struct rig *r = *state;
	struct dp_conn *c = &r->conn[0];
	char out[64];

	push_frame(c, 4, '1');
	push_frame(c, 4, '2');
	push_frame(c, 4, '3');
	assert_int_equal(dp_conn_deliver(c), 3);
	assert_int_equal(dp_conn_reply(c, g.reqs[0], NULL, 0, NULL, NULL), 0); /* acks=0 */
	assert_int_equal(dp_conn_reply(c, g.reqs[1], "two", 3, NULL, NULL), 0);
	assert_int_equal(gather(c, out), 3);
	assert_string_equal(out, "two");
	dp_conn_tx_done(c, 3);
	assert_int_equal(dp_conn_inflight(c), 1);
	assert_int_equal(dp_conn_reply(c, g.reqs[2], NULL, 0, NULL, NULL), 0);
	assert_int_equal(gather(c, out), 0);
	dp_conn_tx_done(c, 0);
	assert_int_equal(dp_conn_inflight(c), 0);
	assert_false(c->tx_ready);
}

static void
test_counters_wrap_with_odd_inflight(void **state)
{
	struct rig *r = *state;
	struct dp_conn *c = &r->conn[0];
	char out[64];

	/* Three in flight (4 slots), and the 32-bit counters about to wrap. */
	r->env.max_inflight = 3;
	c->head = UINT32_MAX - 1;
	c->tail = UINT32_MAX - 1;
	for (int round = 0; round < 3; round++) {
		g.n_reqs = 0;
		push_frame(c, 4, 'a');
		push_frame(c, 4, 'b');
		push_frame(c, 4, 'c');
		assert_int_equal(dp_conn_deliver(c), 3);
		assert_int_equal(dp_conn_reply(c, g.reqs[2], "3", 1, NULL, NULL), 0);
		assert_int_equal(dp_conn_reply(c, g.reqs[1], "2", 1, NULL, NULL), 0);
		assert_int_equal(gather(c, out), 0);
		assert_int_equal(dp_conn_reply(c, g.reqs[0], "1", 1, NULL, NULL), 0);
		assert_int_equal(gather(c, out), 3);
		assert_string_equal(out, "123");
		dp_conn_tx_done(c, 3);
		assert_int_equal(dp_conn_inflight(c), 0);
	}
	assert_true(c->tail < 16); /* wrapped */
}

static void
test_slot_counters_wrap(void **state)
{
	struct rig *r = *state;
	struct dp_conn *c = &r->conn[0];

	/* Many more requests than slots, one at a time, through the whole ring repeatedly. */
	for (int i = 0; i < 50; i++) {
		push_frame(c, 4, (uint8_t)i);
		assert_int_equal(dp_conn_deliver(c), 1);
		assert_int_equal(dp_conn_reply(c, g.reqs[0], "ok", 2, NULL, NULL), 0);
		dp_conn_tx_done(c, 2);
		g.n_reqs = 0;
	}
	assert_int_equal(c->tail, 50);
	assert_int_equal(dp_conn_inflight(c), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_responses_leave_in_request_order, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_backpressure_by_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure_by_pending_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handler_eagain_keeps_the_frame, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_handler_error_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_buffers_are_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_reply_after_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_responses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slot_counters_wrap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counters_wrap_with_odd_inflight, setup,
			teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
