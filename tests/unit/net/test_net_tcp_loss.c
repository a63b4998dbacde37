/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loss-pattern tests of the TCP stack: two stack instances on a fake link
 * that drops and reorders frames at random (seeded xorshift, so every run
 * is the same), transferring 1 MiB one way and 256 KiB the other at the
 * same time, then closing both sides. The bytes must arrive intact and in
 * order, both closes must complete, and no mbuf may leak. Every loop is
 * bounded in rounds of simulated time.
 */
#include <inttypes.h>

#include "net_test_util.h"

struct loss_case {
	uint64_t seed;
	unsigned loss_pm;
	unsigned reorder_pm;
};

static uint32_t
push(struct net_tcp_conn *c, uint32_t off, uint32_t total)
{
	uint8_t buf[8192];

	while (off < total) {
		uint32_t n = total - off < sizeof(buf) ? total - off : (uint32_t)sizeof(buf);
		int r;

		for (uint32_t i = 0; i < n; i++)
			buf[i] = t_pattern(off + i);
		r = net_tcp_send(c, buf, n);
		if (r <= 0)
			break;
		off += (uint32_t)r;
	}
	return off;
}

static void
run_case(const struct loss_case *lc)
{
	const uint32_t na = 1u << 20, nb = 256u << 10;
	unsigned avail = rte_mempool_avail_count(t_pool);
	struct t_pair p;
	uint32_t oa = 0, ob = 0;
	bool closed_a = false, closed_b = false;
	unsigned r;

	t_pair_init(&p, NULL, NULL);
	t_pair_connect(&p, 9092);
	p.rng = lc->seed;
	p.loss_pm = lc->loss_pm;
	p.reorder_pm = lc->reorder_pm;
	/* At most 20 simulated minutes in 1 ms rounds. */
	for (r = 0; r < 1200000; r++) {
		if (p.app_a.conn != NULL && oa < na)
			oa = push(p.app_a.conn, oa, na);
		if (p.app_b.conn != NULL && ob < nb)
			ob = push(p.app_b.conn, ob, nb);
		if (oa == na && !closed_a) {
			assert_int_equal(net_tcp_close(p.app_a.conn), 0);
			closed_a = true;
		}
		if (ob == nb && !closed_b && p.app_b.eofs == 1) {
			assert_int_equal(net_tcp_close(p.app_b.conn), 0);
			closed_b = true;
		}
		t_pair_step(&p, 1000);
		if (p.app_a.closes && p.app_b.closes)
			break;
	}
	print_message("seed %#" PRIx64 " loss %u/1000 reorder %u/1000: %u ms, %" PRIu64
		" frames, %" PRIu64 " dropped, a: %" PRIu64 " rto %" PRIu64 " fast rtx\n",
		lc->seed, lc->loss_pm, lc->reorder_pm, r, p.delivered + p.dropped, p.dropped,
		net_stack_stats(p.a)->tcp_rto_expiries,
		net_stack_stats(p.a)->tcp_fast_retransmits);
	assert_int_equal(p.app_b.rx_len, na);
	assert_int_equal(p.app_a.rx_len, nb);
	for (uint32_t i = 0; i < na; i++) {
		if (p.app_b.rx[i] != t_pattern(i))
			fail_msg("a->b byte %u differs", i);
	}
	for (uint32_t i = 0; i < nb; i++) {
		if (p.app_a.rx[i] != t_pattern(i))
			fail_msg("b->a byte %u differs", i);
	}
	assert_int_equal(p.app_a.eofs, 1);
	assert_int_equal(p.app_b.eofs, 1);
	assert_int_equal(p.app_a.closes, 1);
	assert_int_equal(p.app_b.closes, 1);
	assert_int_equal(p.app_a.close_status, 0);
	assert_int_equal(p.app_b.close_status, 0);
	assert_int_equal(p.app_a.acked, na);
	assert_int_equal(p.app_b.acked, nb);
	if (lc->loss_pm > 0)
		assert_true(p.dropped > 0);
	t_pair_fini(&p);
	/* Every mbuf (queues, clones, out-of-order) came back. */
	assert_int_equal(rte_mempool_avail_count(t_pool), avail);
}

static void
test_no_loss(void **state)
{
	const struct loss_case lc = { 0x1234567, 0, 0 };

	run_case(&lc);
}

static void
test_loss_1pct(void **state)
{
	const struct loss_case lc = { 0xdeadbeef, 10, 0 };

	run_case(&lc);
}

static void
test_loss_5pct_reorder(void **state)
{
	const struct loss_case lc = { 0xfeedface, 50, 50 };

	run_case(&lc);
}

static void
test_loss_10pct_reorder_seeds(void **state)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		const struct loss_case lc = { seed * 0x9e3779b97f4a7c15ull, 100, 100 };

		run_case(&lc);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_loss),
		cmocka_unit_test(test_loss_1pct),
		cmocka_unit_test(test_loss_5pct_reorder),
		cmocka_unit_test(test_loss_10pct_reorder_seeds),
	};

	if (t_eal_init() != 0) {
		fprintf(stderr, "test_net_tcp_loss: EAL did not start; skipping\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
