/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the sender's SACK scoreboard and RFC 6675 loss recovery
 * (dataplane/net/net_tcp_sack.c): the scoreboard's merging, trimming and
 * bounds checked directly on a live connection, then the same transfers run
 * with SACK and with NewReno (SACK disabled on the sender) over a fake link
 * that drops chosen or seeded-random segments. The link's frame hook counts
 * every payload byte the sender transmits below its highest sequence sent
 * (retransmitted bytes, measured on the wire, not from the stack's
 * counters) and the simulated time until everything is acknowledged.
 */
#include <inttypes.h>

#include "net_internal.h"
#include "net_test_util.h"

/* ---- scoreboard on a live connection ---- */

struct sb_fixture {
	struct t_pair p;
	struct net_tcp_conn *c;
	uint32_t una, max, sq_seq, sq_bytes;
};

static void
sb_setup(struct sb_fixture *f, uint32_t base, uint32_t sent)
{
	t_pair_init(&f->p, NULL, NULL);
	t_pair_connect(&f->p, 9092);
	f->c = f->p.app_a.conn;
	assert_true(f->c->flags & NET_TCPF_SACK_OK);
	f->una = f->c->snd_una;
	f->max = f->c->snd_max;
	f->sq_seq = f->c->sq_seq;
	f->sq_bytes = f->c->sq_bytes;
	/* Pretend sent bytes are outstanding from base (no timers run). */
	f->c->snd_una = base;
	f->c->snd_nxt = f->c->snd_max = base + sent;
	f->c->sq_seq = base;
	f->c->sq_bytes = sent;
	net_tcp_sack_reset(f->p.a, f->c);
}

static void
sb_teardown(struct sb_fixture *f)
{
	f->c->snd_una = f->una;
	f->c->snd_nxt = f->c->snd_max = f->max;
	f->c->sq_seq = f->sq_seq;
	f->c->sq_bytes = f->sq_bytes;
	net_tcp_sack_reset(f->p.a, f->c);
	t_pair_fini(&f->p);
}

static uint32_t
add1(struct sb_fixture *f, uint32_t l, uint32_t r)
{
	const uint32_t b[1][2] = { { l, r } };

	return net_tcp_sack_update(f->p.a, f->c, f->c->snd_una, b, 1);
}

static void
test_scoreboard_merge(void **state)
{
	/* Base near the wrap, so sequence arithmetic is exercised. */
	const uint32_t B = 0xfffff000u;
	struct sb_fixture f;
	struct net_tcp_sb *sb;

	sb_setup(&f, B, 100000);
	sb = net_tcp_sb(f.p.a, f.c);
	assert_int_equal(add1(&f, B + 1000, B + 2000), 1000);
	assert_int_equal(add1(&f, B + 3000, B + 4000), 1000);
	assert_int_equal(sb->n, 2);
	assert_int_equal(sb->sacked, 2000);
	/* Same block again: nothing new. */
	assert_int_equal(add1(&f, B + 1000, B + 2000), 0);
	/* Filling the gap exactly joins the two ranges. */
	assert_int_equal(add1(&f, B + 2000, B + 3000), 1000);
	assert_int_equal(sb->n, 1);
	assert_int_equal(sb->blk[0].start, B + 1000);
	assert_int_equal(sb->blk[0].end, B + 4000);
	assert_int_equal(sb->sacked, 3000);
	/* Disjoint ranges above, then one block covering two of them and
	 * overlapping the first. */
	add1(&f, B + 6000, B + 7000);
	add1(&f, B + 8000, B + 9000);
	assert_int_equal(sb->n, 3);
	assert_int_equal(add1(&f, B + 3500, B + 8500), 2000 + 1000);
	assert_int_equal(sb->n, 1);
	assert_int_equal(sb->blk[0].end, B + 9000);
	assert_int_equal(sb->sacked, 8000);
	/* Invalid blocks: empty, reversed, at or below the ACK, beyond
	 * SND.MAX. None changes anything. */
	assert_int_equal(add1(&f, B + 20000, B + 20000), 0);
	assert_int_equal(add1(&f, B + 21000, B + 20000), 0);
	assert_int_equal(add1(&f, B - 5000, B), 0);
	assert_int_equal(add1(&f, B + 99000, B + 100001), 0);
	assert_int_equal(f.p.a->stats.tcp_sack_blocks_ignored, 4);
	assert_int_equal(sb->n, 1);
	/* A block straddling SND.UNA is clipped to it. */
	assert_int_equal(add1(&f, B - 100, B + 500), 500);
	assert_int_equal(sb->n, 2);
	assert_int_equal(sb->blk[0].start, B);
	/* SND.UNA moves into the second range: the first goes, the second is
	 * cut. */
	f.c->snd_una = B + 4000;
	net_tcp_sack_trim(f.p.a, f.c);
	assert_int_equal(sb->n, 1);
	assert_int_equal(sb->blk[0].start, B + 4000);
	assert_int_equal(sb->sacked, 5000);
	assert_int_equal(sb->high_rxt, B + 4000);
	sb_teardown(&f);
}

static void
test_scoreboard_full(void **state)
{
	const uint32_t B = 1000;
	struct sb_fixture f;
	struct net_tcp_sb *sb;

	sb_setup(&f, B, 200000);
	sb = net_tcp_sb(f.p.a, f.c);
	for (uint32_t i = 0; i < NET_TCP_SB_MAX; i++)
		assert_int_equal(add1(&f, B + 2000 * i + 1000, B + 2000 * i + 1500), 500);
	assert_int_equal(sb->n, NET_TCP_SB_MAX);
	/* One more disjoint range does not fit: not recorded, counted. */
	assert_int_equal(add1(&f, B + 100000, B + 101000), 0);
	assert_int_equal(f.p.a->stats.tcp_sack_sb_full, 1);
	/* Merging still works when full. */
	assert_int_equal(add1(&f, B + 1500, B + 3000), 1500);
	assert_int_equal(sb->n, NET_TCP_SB_MAX - 1);
	sb_teardown(&f);
}

static void
test_pipe_and_lost(void **state)
{
	const uint32_t B = 50000;
	struct sb_fixture f;
	uint32_t mss, seq, len;

	sb_setup(&f, B, 20 * 1000);
	mss = f.c->mss;
	f.c->snd_una = B;
	f.c->snd_max = f.c->snd_nxt = B + 20 * mss;
	f.c->sq_bytes = 20 * mss;
	/* Nothing SACKed: all 20 segments are in the pipe, none lost. */
	assert_int_equal(net_tcp_sack_pipe(f.p.a, f.c), 20 * mss);
	assert_false(net_tcp_sack_is_lost(f.p.a, f.c, B));
	assert_int_equal(net_tcp_sack_next_rtx(f.p.a, f.c, false, &seq, &len), -1);
	/* Segments 1-2 SACKed: 2 MSS above segment 0 is not more than
	 * (DupThresh - 1) * SMSS: not lost yet. */
	add1(&f, B + mss, B + 3 * mss);
	assert_false(net_tcp_sack_is_lost(f.p.a, f.c, B));
	assert_int_equal(net_tcp_sack_pipe(f.p.a, f.c), 18 * mss);
	/* Rule 3 would resend segment 0, rule 1 would not. */
	assert_int_equal(net_tcp_sack_next_rtx(f.p.a, f.c, true, &seq, &len), -1);
	assert_int_equal(net_tcp_sack_next_rtx(f.p.a, f.c, false, &seq, &len), 0);
	assert_int_equal(seq, B);
	assert_int_equal(len, mss);
	/* Segment 4 too: 3 MSS above: segment 0 lost; segment 3 has 1 MSS
	 * above: not lost. Pipe = 20 - 3 SACKed - 1 lost = 16. */
	add1(&f, B + 4 * mss, B + 5 * mss);
	assert_true(net_tcp_sack_is_lost(f.p.a, f.c, B));
	assert_false(net_tcp_sack_is_lost(f.p.a, f.c, B + mss));	/* SACKed */
	assert_false(net_tcp_sack_is_lost(f.p.a, f.c, B + 3 * mss));
	assert_int_equal(net_tcp_sack_pipe(f.p.a, f.c), 16 * mss);
	assert_int_equal(net_tcp_sack_next_rtx(f.p.a, f.c, true, &seq, &len), 0);
	assert_int_equal(seq, B);
	assert_int_equal(len, mss);
	/* Retransmitted (HighRxt past it): counts in the pipe again, and
	 * NextSeg moves on; rule 3 offers segment 3. */
	net_tcp_sb(f.p.a, f.c)->high_rxt = B + mss;
	assert_int_equal(net_tcp_sack_pipe(f.p.a, f.c), 17 * mss);
	assert_int_equal(net_tcp_sack_next_rtx(f.p.a, f.c, true, &seq, &len), -1);
	assert_int_equal(net_tcp_sack_next_rtx(f.p.a, f.c, false, &seq, &len), 0);
	assert_int_equal(seq, B + 3 * mss);
	/* Three discontiguous ranges above a hole also make it lost
	 * (DupThresh ranges), even with less than 3 MSS SACKed. */
	net_tcp_sack_reset(f.p.a, f.c);
	add1(&f, B + 2 * mss, B + 2 * mss + 10);
	add1(&f, B + 4 * mss, B + 4 * mss + 10);
	add1(&f, B + 6 * mss, B + 6 * mss + 10);
	assert_true(net_tcp_sack_is_lost(f.p.a, f.c, B));
	assert_false(net_tcp_sack_is_lost(f.p.a, f.c, B + 3 * mss));
	/* Skip: the first unSACKed byte and where the next range starts. */
	{
		uint32_t limit;

		assert_int_equal(net_tcp_sack_skip(f.p.a, f.c, B + 2 * mss, &limit),
			B + 2 * mss + 10);
		assert_int_equal(limit, B + 4 * mss);
		assert_int_equal(net_tcp_sack_below(f.p.a, f.c, B + 5 * mss), 20);
	}
	sb_teardown(&f);
}

/* ---- SACK against NewReno on a lossy link ---- */

struct wire {
	bool armed;
	uint32_t base;			/* first seq of the measured burst */
	uint32_t mss;
	uint32_t max_end;		/* highest seq + len a has sent */
	uint64_t rtx_bytes;		/* payload bytes a sent below max_end */
	uint64_t data_bytes;
	const uint32_t *drop_segs;	/* segment numbers (from base) lost on first send */
	unsigned ndrop;
	int drop_rtx_seg;		/* lose the first resend of this segment (-1: none) */
	bool rtx_dropped;
};

static bool
wire_frame(struct t_pair *p, const struct rte_mbuf *m, bool from_a)
{
	struct wire *w = p->frame_arg;
	struct t_pkt k;
	bool rtx;

	if (!from_a || !w->armed)
		return false;
	t_parse(m, &k);
	if (!k.is_tcp || k.len == 0)
		return false;
	rtx = (int32_t)(k.seq - w->max_end) < 0;
	w->data_bytes += k.len;
	if (rtx) {
		w->rtx_bytes += k.len;
	} else {
		w->max_end = k.seq + k.len;
	}
	if ((int32_t)(k.seq - w->base) < 0)
		return false;
	{
		uint32_t segno = (k.seq - w->base) / w->mss;

		if (!rtx) {
			for (unsigned i = 0; i < w->ndrop; i++) {
				if (w->drop_segs[i] == segno)
					return true;
			}
		} else if (w->drop_rtx_seg >= 0 && (uint32_t)w->drop_rtx_seg == segno &&
				!w->rtx_dropped) {
			w->rtx_dropped = true;
			return true;
		}
	}
	return false;
}

struct run_result {
	uint64_t rtx_bytes;
	uint64_t ms;			/* simulated time of the measured part */
	uint64_t rto;
	uint64_t sack_rtx;
	uint64_t lost_rtx;
};

/*
 * a sends warm (no loss) then total bytes with the wire's losses; the
 * stacks use 256 KiB buffers. Returns what it measured; checks the bytes.
 */
static void
run_transfer(bool sack, struct wire *w, uint64_t seed, unsigned loss_pm, uint32_t warm,
	uint32_t total, struct run_result *res)
{
	unsigned avail = rte_mempool_avail_count(t_pool);
	struct net_config ca, cb;
	struct t_pair p;
	uint32_t off = 0;
	uint64_t t0;
	unsigned r;

	t_config(&ca, NULL, T_IP_A, 1);
	t_config(&cb, NULL, T_IP_B, 2);
	ca.no_sack = !sack;
	t_pair_init(&p, &ca, &cb);
	t_pair_connect(&p, 9092);
	assert_int_equal(!!(p.app_a.conn->flags & NET_TCPF_SACK_OK), sack);
	p.frame_fn = wire_frame;
	p.frame_arg = w;
	/* Warm up the congestion window without loss. */
	for (r = 0; r < 10000 && p.app_a.acked < warm; r++) {
		off = t_push(p.app_a.conn, off, warm);
		t_pair_step(&p, 1000);
	}
	assert_int_equal(p.app_a.acked, warm);
	w->armed = true;
	w->base = p.app_a.conn->snd_nxt;
	w->max_end = w->base;
	w->mss = p.app_a.conn->mss;
	p.rng = seed;
	p.loss_pm = loss_pm;
	t0 = p.now;
	/* At most 10 simulated minutes. */
	for (r = 0; r < 600000 && p.app_a.acked < (uint64_t)warm + total; r++) {
		off = t_push(p.app_a.conn, off, warm + total);
		t_pair_step(&p, 1000);
	}
	res->ms = (p.now - t0) / 1000;
	res->rtx_bytes = w->rtx_bytes;
	res->rto = net_stack_stats(p.a)->tcp_rto_expiries;
	res->sack_rtx = net_stack_stats(p.a)->tcp_sack_retransmits;
	res->lost_rtx = net_stack_stats(p.a)->tcp_lost_retransmits;
	assert_int_equal(p.app_a.acked, (uint64_t)warm + total);
	assert_int_equal(p.app_b.rx_len, warm + total);
	for (uint32_t i = 0; i < warm + total; i++) {
		if (p.app_b.rx[i] != t_pattern(i))
			fail_msg("byte %u differs", i);
	}
	p.loss_pm = 0;
	p.frame_fn = NULL;
	net_tcp_abort(p.app_a.conn);
	t_pair_run(&p, 5, 1000);
	t_pair_fini(&p);
	assert_int_equal(rte_mempool_avail_count(t_pool), avail);
}

static void
print_pair(const char *what, const struct run_result *s, const struct run_result *n)
{
	print_message("%s: SACK %" PRIu64 " bytes resent, %" PRIu64 " ms, %" PRIu64 " RTO, %"
		PRIu64 " scoreboard resends; NewReno %" PRIu64 " bytes resent, %" PRIu64
		" ms, %" PRIu64 " RTO\n", what, s->rtx_bytes, s->ms, s->rto, s->sack_rtx,
		n->rtx_bytes, n->ms, n->rto);
}

/* Four segments of one window lost: SACK repairs all of them in about one
 * round trip, NewReno one per round trip. */
static void
test_four_losses_one_window(void **state)
{
	static const uint32_t drops[] = { 3, 6, 9, 12 };
	struct run_result rs, rn;
	struct wire ws = { .drop_segs = drops, .ndrop = 4, .drop_rtx_seg = -1 };
	struct wire wn = ws;

	run_transfer(true, &ws, 1, 0, 512 * 1024, 256 * 1024, &rs);
	run_transfer(false, &wn, 1, 0, 512 * 1024, 256 * 1024, &rn);
	print_pair("4 losses in a window", &rs, &rn);
	assert_int_equal(rs.rto, 0);
	assert_true(rs.sack_rtx >= 4);
	/* Each lost segment resent once, nothing else. */
	assert_int_equal(rs.rtx_bytes, 4 * ws.mss);
	assert_true(rs.rtx_bytes <= rn.rtx_bytes);
	assert_true(rs.ms < rn.ms);
}

/* The same, and the first resend of segment 3 is lost too. NewReno needs
 * an RTO and then goes back N over data the peer holds; with SACK the
 * probe timeout in recovery resends the hole once more, no RTO. */
static void
test_lost_retransmission(void **state)
{
	static const uint32_t drops[] = { 3, 6, 9, 12 };
	struct run_result rs, rn;
	struct wire ws = { .drop_segs = drops, .ndrop = 4, .drop_rtx_seg = 3 };
	struct wire wn = ws;

	run_transfer(true, &ws, 1, 0, 512 * 1024, 256 * 1024, &rs);
	run_transfer(false, &wn, 1, 0, 512 * 1024, 256 * 1024, &rn);
	print_pair("lost retransmission", &rs, &rn);
	assert_true(ws.rtx_dropped && wn.rtx_dropped);
	assert_int_equal(rs.rto, 0);
	assert_int_equal(rn.rto, 1);
	assert_int_equal(rs.lost_rtx, 1);
	/* The four holes and the second resend of the lost one. */
	assert_int_equal(rs.rtx_bytes, 5 * ws.mss);
	assert_true(rs.rtx_bytes * 2 < rn.rtx_bytes);
	assert_true(rs.ms < rn.ms);
}

/* Seeded random loss (2 % and 5 %, both directions): fewer bytes resent
 * and less time in total. */
static void
test_random_loss(void **state)
{
	uint64_t sum_s = 0, sum_n = 0, ms_s = 0, ms_n = 0;

	for (uint64_t seed = 1; seed <= 3; seed++) {
		for (unsigned pm = 20; pm <= 50; pm += 30) {
			struct run_result rs, rn;
			struct wire ws = { .drop_rtx_seg = -1 };
			struct wire wn = ws;
			char what[64];

			run_transfer(true, &ws, seed * 0x9e3779b97f4a7c15ull, pm, 64 * 1024,
				1024 * 1024, &rs);
			run_transfer(false, &wn, seed * 0x9e3779b97f4a7c15ull, pm, 64 * 1024,
				1024 * 1024, &rn);
			snprintf(what, sizeof(what), "seed %" PRIu64 " loss %u/1000", seed, pm);
			print_pair(what, &rs, &rn);
			sum_s += rs.rtx_bytes;
			sum_n += rn.rtx_bytes;
			ms_s += rs.ms;
			ms_n += rn.ms;
		}
	}
	print_message("total: SACK %" PRIu64 " bytes %" PRIu64 " ms, NewReno %" PRIu64
		" bytes %" PRIu64 " ms\n", sum_s, ms_s, sum_n, ms_n);
	assert_true(sum_s < sum_n);
	assert_true(ms_s < ms_n);
}

/* A lost last segment (nothing after it to bring duplicate ACKs): the
 * tail loss probe resends it after 2 SRTT + the delayed-ACK time, long
 * before the 200 ms RTO; and a lost middle segment with only two after it
 * is repaired by early retransmit (RFC 5827) after the probe's SACK. */
static void
test_tail_loss_probe(void **state)
{
	struct t_pair p;
	struct wire w = { .drop_rtx_seg = -1 };
	static const uint32_t last[] = { 0 };
	const struct net_stats *s;
	uint64_t t0;

	t_pair_init(&p, NULL, NULL);
	t_pair_connect(&p, 9092);
	p.frame_fn = wire_frame;
	p.frame_arg = &w;
	/* Warm up so SRTT is measured (1 ms rounds). */
	assert_int_equal(t_push(p.app_a.conn, 0, 10000), 10000);
	t_pair_run(&p, 50, 1000);
	assert_int_equal(p.app_a.acked, 10000);
	/* One request of 1000 bytes, lost. */
	w.armed = true;
	w.base = w.max_end = p.app_a.conn->snd_nxt;
	w.mss = p.app_a.conn->mss;
	w.drop_segs = last;
	w.ndrop = 1;
	t0 = p.now;
	assert_int_equal(t_push(p.app_a.conn, 10000, 11000), 11000);
	while (p.app_a.acked < 11000 && p.now < t0 + 1000000)
		t_pair_step(&p, 1000);
	s = net_stack_stats(p.a);
	print_message("single lost segment repaired after %" PRIu64 " ms, %" PRIu64
		" probes, %" PRIu64 " RTO\n", (p.now - t0) / 1000, s->tcp_tlp_probes,
		s->tcp_rto_expiries);
	assert_int_equal(p.app_a.acked, 11000);
	assert_int_equal(s->tcp_rto_expiries, 0);
	assert_int_equal(s->tcp_tlp_probes, 1);
	assert_true(p.now - t0 < 100000);	/* 2 SRTT + 40 ms, not 200 ms */
	assert_int_equal(w.rtx_bytes, 1000);
	/* Three segments, the first lost: the SACKs of the other two make it
	 * lost (RACK, or early retransmit), no RTO. */
	{
		static const uint32_t first[] = { 0 };

		w.base = w.max_end = p.app_a.conn->snd_nxt;
		w.drop_segs = first;
		w.rtx_bytes = 0;
		t0 = p.now;
		assert_int_equal(t_push(p.app_a.conn, 11000, 11000 + 3 * w.mss), 11000 + 3 * w.mss);
		while (p.app_a.acked < 11000 + 3 * w.mss && p.now < t0 + 1000000)
			t_pair_step(&p, 1000);
		print_message("first of three lost: repaired after %" PRIu64 " ms, %" PRIu64
			" early retransmits, %" PRIu64 " RACK marks\n", (p.now - t0) / 1000,
			s->tcp_early_retransmits, s->tcp_rack_lost);
		assert_int_equal(p.app_a.acked, 11000 + 3 * w.mss);
		assert_int_equal(s->tcp_rto_expiries, 0);
		assert_true(s->tcp_early_retransmits + s->tcp_rack_lost >= 1);
		assert_true(p.now - t0 < 100000);
	}
	for (uint32_t i = 0; i < p.app_b.rx_len; i++) {
		if (p.app_b.rx[i] != t_pattern(i))
			fail_msg("byte %u differs", i);
	}
	t_pair_fini(&p);
}

/* A device that stops taking frames for a while (tx ring full): the
 * stack keeps its batch, stops adding data segments, resumes when the
 * device drains; nothing is dropped or resent. */
static void
test_tx_backpressure(void **state)
{
	const uint32_t total = 1u << 20;
	const struct net_stats *s;
	struct t_pair p;
	uint32_t off = 0;
	unsigned r;

	t_pair_init(&p, NULL, NULL);
	t_pair_connect(&p, 9092);
	for (r = 0; r < 20000 && p.app_b.rx_len < total; r++) {
		off = t_push(p.app_a.conn, off, total);
		if (r == 5 || r == 40)
			p.qa.refuse = 300;	/* 300 flush attempts refused */
		t_pair_step(&p, 100);
	}
	s = net_stack_stats(p.a);
	print_message("1 MiB with a stalling device: %u rounds, %" PRIu64 " full flushes, %"
		PRIu64 " dropped\n", r, s->tx_full, s->tx_dropped);
	assert_int_equal(p.app_b.rx_len, total);
	for (uint32_t i = 0; i < total; i++) {
		if (p.app_b.rx[i] != t_pattern(i))
			fail_msg("byte %u differs", i);
	}
	assert_true(s->tx_full > 0);
	assert_int_equal(s->tx_dropped, 0);
	assert_int_equal(s->tcp_retransmits + s->tcp_fast_retransmits + s->tcp_tlp_probes, 0);
	t_pair_fini(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scoreboard_merge),
		cmocka_unit_test(test_scoreboard_full),
		cmocka_unit_test(test_pipe_and_lost),
		cmocka_unit_test(test_four_losses_one_window),
		cmocka_unit_test(test_lost_retransmission),
		cmocka_unit_test(test_random_loss),
		cmocka_unit_test(test_tail_loss_probe),
		cmocka_unit_test(test_tx_backpressure),
	};

	if (t_eal_init() != 0) {
		fprintf(stderr, "test_net_tcp_sack: EAL did not start; skipping\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
