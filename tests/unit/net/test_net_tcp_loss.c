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
#include <string.h>

#include "net_internal.h"
#include "net_test_util.h"

struct loss_case {
	uint64_t seed;
	unsigned loss_pm;
	unsigned reorder_pm;
};

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
			oa = t_push(p.app_a.conn, oa, na);
		if (p.app_b.conn != NULL && ob < nb)
			ob = t_push(p.app_b.conn, ob, nb);
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

/* ---- chosen losses: RACK (RFC 8985) and PRR (RFC 6937) ---- */

/* Frames of a's data segments numbered from base in MSS units; chosen ones
 * are lost when first sent, some also when first resent. */
struct pattern {
	bool armed;
	uint32_t base, mss, max_end;
	const uint32_t *drop;		/* lost on their first transmission */
	unsigned ndrop;
	const uint32_t *drop_rtx;	/* lost on their first resend too */
	unsigned ndrop_rtx;
	uint32_t rtx_dropped;		/* bit i: drop_rtx[i]'s resend was lost */
	uint64_t rtx_bytes;		/* payload a sent below max_end */
};

static bool
pattern_frame(struct t_pair *p, const struct rte_mbuf *m, bool from_a)
{
	struct pattern *w = p->frame_arg;
	struct t_pkt k;
	uint32_t segno;
	bool rtx;

	if (!from_a || !w->armed)
		return false;
	t_parse(m, &k);
	if (!k.is_tcp || k.len == 0 || (int32_t)(k.seq - w->base) < 0)
		return false;
	rtx = (int32_t)(k.seq - w->max_end) < 0;
	if (rtx)
		w->rtx_bytes += k.len;
	else
		w->max_end = k.seq + k.len;
	segno = (k.seq - w->base) / w->mss;
	for (unsigned i = 0; !rtx && i < w->ndrop; i++) {
		if (w->drop[i] == segno)
			return true;
	}
	for (unsigned i = 0; rtx && i < w->ndrop_rtx; i++) {
		if (w->drop_rtx[i] == segno && !(w->rtx_dropped & (1u << i))) {
			w->rtx_dropped |= 1u << i;
			return true;
		}
	}
	return false;
}

struct pattern_result {
	uint64_t rto, rack_lost, tlp, ms;
	uint32_t entry_flight;		/* FlightSize when recovery began */
	uint32_t exit_cwnd, exit_ssthresh;
	uint32_t prr_out, prr_delivered;
	unsigned recoveries;
};

/*
 * a sends warm bytes without loss (the window opens, SRTT is measured), then
 * total more with w's losses; 1 ms rounds. Checks every byte and the pool,
 * and watches recovery from outside: FlightSize at its start, cwnd and
 * ssthresh at its end, PRR's counters.
 */
static void
run_pattern(struct pattern *w, uint32_t warm, uint32_t total, struct pattern_result *res)
{
	unsigned avail = rte_mempool_avail_count(t_pool);
	struct t_pair p;
	struct net_tcp_conn *c;
	uint32_t off = 0;
	bool in_rec = false;
	uint64_t t0;

	memset(res, 0, sizeof(*res));
	t_pair_init(&p, NULL, NULL);
	t_pair_connect(&p, 9092);
	c = p.app_a.conn;
	assert_true(c->flags & NET_TCPF_SACK_OK);
	p.frame_fn = pattern_frame;
	p.frame_arg = w;
	for (unsigned r = 0; r < 10000 && p.app_a.acked < warm; r++) {
		off = t_push(c, off, warm);
		t_pair_step(&p, 1000);
	}
	assert_int_equal(p.app_a.acked, warm);
	w->armed = true;
	w->base = w->max_end = c->snd_nxt;
	w->mss = c->mss;
	t0 = p.now;
	/* At most 100 simulated seconds. */
	for (unsigned r = 0; r < 100000 && p.app_a.acked < (uint64_t)warm + total; r++) {
		bool now_rec;

		off = t_push(c, off, warm + total);
		t_pair_step(&p, 1000);
		now_rec = (c->flags & NET_TCPF_IN_RECOVERY) != 0;
		if (now_rec && !in_rec) {
			res->recoveries++;
			if (res->recoveries == 1)
				res->entry_flight = net_tcp_sb(p.a, c)->recover_fs;
		}
		if (!now_rec && in_rec && res->recoveries == 1) {
			res->exit_cwnd = c->cwnd;
			res->exit_ssthresh = c->ssthresh;
			res->prr_out = net_tcp_sb(p.a, c)->prr_out;
			res->prr_delivered = net_tcp_sb(p.a, c)->prr_delivered;
		}
		in_rec = now_rec;
	}
	res->ms = (p.now - t0) / 1000;
	res->rto = net_stack_stats(p.a)->tcp_rto_expiries;
	res->rack_lost = net_stack_stats(p.a)->tcp_rack_lost;
	res->tlp = net_stack_stats(p.a)->tcp_tlp_probes;
	assert_int_equal(p.app_a.acked, (uint64_t)warm + total);
	assert_int_equal(p.app_b.rx_len, warm + total);
	for (uint32_t i = 0; i < warm + total; i++) {
		if (p.app_b.rx[i] != t_pattern(i))
			fail_msg("byte %u differs", i);
	}
	p.frame_fn = NULL;
	net_tcp_abort(c);
	t_pair_run(&p, 5, 1000);
	t_pair_fini(&p);
	assert_int_equal(rte_mempool_avail_count(t_pool), avail);
}

/* Four holes in one window and the resend of the third lost as well. Before
 * RACK only a lost resend of the first hole was found (any other waited
 * for the RTO); RACK sees data sent after it SACKed and resends it. */
static void
test_rack_lost_resend_later_hole(void **state)
{
	static const uint32_t drop[] = { 3, 6, 9, 12 }, drop_rtx[] = { 9 };
	struct pattern w = { .drop = drop, .ndrop = 4, .drop_rtx = drop_rtx, .ndrop_rtx = 1 };
	struct pattern_result r;

	run_pattern(&w, 512 * 1024, 256 * 1024, &r);
	print_message("lost resend of hole 3 of 4: %" PRIu64 " ms, %" PRIu64 " RTO, %" PRIu64
		" RACK marks, %" PRIu64 " bytes resent\n", r.ms, r.rto, r.rack_lost, w.rtx_bytes);
	assert_int_equal(w.rtx_dropped, 1);
	assert_int_equal(r.rto, 0);
	assert_true(r.rack_lost >= 1);
	/* The four holes and the lost resend again: nothing else. */
	assert_int_equal(w.rtx_bytes, 5 * w.mss);
	assert_true(r.ms < 50);
}

/* The last three segments of a burst lost after SACKed data, and the first
 * hole too: the resend of the first hole, once delivered, shows the tail
 * (sent before it) lost, or a probe finds it; no RTO. */
static void
test_rack_lost_tail_in_recovery(void **state)
{
	static const uint32_t drop[] = { 2, 7, 8, 9 };
	struct pattern w = { .drop = drop, .ndrop = 4 };
	struct pattern_result r;

	/* 10 segments after a warm-up: the window is open, all go at once. */
	run_pattern(&w, 64 * 1024, 10 * 1448, &r);
	print_message("first hole and a 3-segment tail lost: %" PRIu64 " ms, %" PRIu64
		" RTO, %" PRIu64 " probes, %" PRIu64 " RACK marks, %" PRIu64
		" bytes resent\n", r.ms, r.rto, r.tlp, r.rack_lost, w.rtx_bytes);
	assert_int_equal(r.rto, 0);
	assert_true(r.rack_lost >= 1);
	/* The four lost segments, at most one probe more. */
	assert_true(w.rtx_bytes >= 4 * w.mss && w.rtx_bytes <= 5 * w.mss);
	assert_true(r.ms < 200);
}

/* One loss in a large window: PRR (RFC 6937) paces sending during recovery
 * by what is delivered and leaves cwnd at ssthresh = FlightSize / 2, not
 * at FlightSize + 1 SMSS as RFC 6582's deflation would. */
static void
test_prr_window(void **state)
{
	static const uint32_t drop[] = { 40 };
	struct pattern w = { .drop = drop, .ndrop = 1 };
	struct pattern_result r;

	run_pattern(&w, 512 * 1024, 512 * 1024, &r);
	print_message("PRR: flight %u at loss, ssthresh %u, cwnd %u at the end, %u bytes "
		"sent for %u delivered in recovery, %" PRIu64 " ms\n", r.entry_flight,
		r.exit_ssthresh, r.exit_cwnd, r.prr_out, r.prr_delivered, r.ms);
	assert_int_equal(r.rto, 0);
	assert_int_equal(r.recoveries, 1);
	assert_true(r.entry_flight > 20 * w.mss);
	assert_int_equal(r.exit_ssthresh, r.entry_flight / 2);
	assert_true(r.exit_cwnd >= r.exit_ssthresh);
	/* Sent in recovery: about ssthresh / FlightSize of what was delivered
	 * (the first resend may go ahead of it), never more than delivered. */
	assert_true(r.prr_out > 0);
	assert_true(r.prr_out <= (uint64_t)r.prr_delivered * r.exit_ssthresh / r.entry_flight +
		2u * w.mss);
	assert_int_equal(w.rtx_bytes, w.mss);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_loss),
		cmocka_unit_test(test_loss_1pct),
		cmocka_unit_test(test_loss_5pct_reorder),
		cmocka_unit_test(test_loss_10pct_reorder_seeds),
		cmocka_unit_test(test_rack_lost_resend_later_hole),
		cmocka_unit_test(test_rack_lost_tail_in_recovery),
		cmocka_unit_test(test_prr_window),
	};

	if (t_eal_init() != 0) {
		fprintf(stderr, "test_net_tcp_loss: EAL did not start; skipping\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
