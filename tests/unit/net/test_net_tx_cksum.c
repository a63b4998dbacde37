/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_net_tx_cksum: cfg.tx_l4_cksum_skip, the stack's side of
 * dataplane.port.tx.checksum=skip. Two stacks on the fake link of
 * net_test_util.h; a hook sees every frame a sends. Checked: by default every
 * TCP segment a sends carries a correct checksum; with the option set, a's
 * segments carry the pseudo-header sum instead (data segments then fail
 * verification, the IPv4 header checksum is still right) and a peer trusting
 * received checksums gets every byte intact; a peer that verifies drops them
 * (so the option is only for trusting peers); a port offloading checksums
 * keeps the offload.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net_test_util.h"

/* What the hook saw of a's TCP frames. */
struct cksum_seen {
	unsigned tcp;		/* TCP frames a sent */
	unsigned data;		/* of them with payload */
	unsigned ok;		/* whose TCP checksum verifies */
	unsigned data_ok;	/* data frames whose TCP checksum verifies */
	unsigned phdr;		/* whose checksum field is the pseudo-header sum */
	unsigned offload;	/* asking the port for the TCP checksum */
	unsigned b_bad;		/* frames b sent whose checksum does not verify */
};

static bool
see_frame(struct t_pair *p, const struct rte_mbuf *m, bool from_a)
{
	struct cksum_seen *s = p->frame_arg;
	const struct rte_ipv4_hdr *ip;
	const struct rte_tcp_hdr *th;
	struct t_pkt pk;

	if (m->ol_flags & RTE_MBUF_F_TX_TCP_CKSUM) {
		/* The port would fill both checksums: the IPv4 header's here (b
		 * verifies it; b trusts the TCP one), then the frame as received. */
		struct rte_ipv4_hdr *oip = rte_pktmbuf_mtod_offset((struct rte_mbuf *)m,
			struct rte_ipv4_hdr *, RTE_ETHER_HDR_LEN);

		assert_true(from_a);
		s->offload++;
		s->tcp++;
		oip->hdr_checksum = 0;
		oip->hdr_checksum = rte_ipv4_cksum(oip);
		((struct rte_mbuf *)m)->ol_flags = 0;
		return false;
	}
	t_parse(m, &pk);	/* asserts the IPv4 header checksum */
	if (!pk.is_tcp)
		return false;
	if (!from_a) {
		if (!pk.cksum_ok)
			s->b_bad++;
		return false;
	}
	ip = (const struct rte_ipv4_hdr *)(pk.bytes + RTE_ETHER_HDR_LEN);
	th = (const struct rte_tcp_hdr *)(ip + 1);
	s->tcp++;
	if (pk.len > 0)
		s->data++;
	if (pk.cksum_ok) {
		s->ok++;
		if (pk.len > 0)
			s->data_ok++;
	}
	if (th->cksum == rte_ipv4_phdr_cksum(ip, 0))
		s->phdr++;
	return false;
}

/* a and b connected on the fake link, a with @skip (and @offload), b
 * trusting received checksums when @trust; the hook counting into @s. */
static void
pair_create(struct t_pair *p, struct cksum_seen *s, bool skip, bool offload, bool trust)
{
	struct net_config a, b;

	memset(s, 0, sizeof(*s));
	t_config(&a, NULL, T_IP_A, 1);
	t_config(&b, NULL, T_IP_B, 2);
	a.tx_l4_cksum_skip = skip;
	a.tx_cksum_offload = offload;
	b.rx_l4_cksum_trusted = trust;
	t_pair_init(p, &a, &b);
	p->frame_fn = see_frame;
	p->frame_arg = s;
}

/* Send @total pattern bytes a -> b; b must get them all, intact. */
static void
bulk(struct t_pair *p, uint32_t total)
{
	uint32_t off = 0;

	for (unsigned r = 0; r < 20000 && p->app_b.rx_len < total; r++) {
		if (off < total)
			off = t_push(p->app_a.conn, off, total);
		t_pair_step(p, 200);
	}
	assert_int_equal(p->app_b.rx_len, total);
	for (uint32_t i = 0; i < total; i++) {
		if (p->app_b.rx[i] != t_pattern(i))
			fail_msg("byte %u differs", i);
	}
}

/* Not asked: every segment a sends has its full checksum. */
static void
test_computed_by_default(void **state)
{
	struct cksum_seen s;
	struct t_pair p;

	(void)state;
	pair_create(&p, &s, false, false, false);
	t_pair_connect(&p, 9092);
	bulk(&p, 256u << 10);
	assert_true(s.data >= 100);
	assert_int_equal(s.ok, s.tcp);
	assert_int_equal(s.offload, 0);
	assert_int_equal(net_stack_stats(p.b)->rx_tcp_cksum_bad, 0);
	t_pair_fini(&p);
}

/* Asked: a's segments carry the pseudo-header sum, not the checksum (no data
 * segment verifies); a trusting peer receives everything intact; b, not
 * asked, still computes its own. */
static void
test_skipped_when_asked(void **state)
{
	struct cksum_seen s;
	struct t_pair p;

	(void)state;
	pair_create(&p, &s, true, false, true);
	t_pair_connect(&p, 9092);
	bulk(&p, 256u << 10);
	print_message("a sent %u TCP frames (%u with data), %u verify, %u pseudo-header sums\n",
		s.tcp, s.data, s.ok, s.phdr);
	assert_true(s.data >= 100);
	assert_int_equal(s.phdr, s.tcp);
	assert_int_equal(s.data_ok, 0);
	assert_int_equal(s.offload, 0);
	assert_int_equal(s.b_bad, 0);
	assert_int_equal(net_stack_stats(p.b)->rx_tcp_cksum_bad, 0);
	t_pair_fini(&p);
}

/* Asked, toward a peer that verifies checksums: it drops a's SYN (and its
 * retransmissions), so nothing connects. */
static void
test_verifying_peer_drops(void **state)
{
	struct net_tcp_conn *c;
	struct cksum_seen s;
	struct t_pair p;

	(void)state;
	pair_create(&p, &s, true, false, false);
	assert_int_equal(net_tcp_listen(p.b, 9092, 16, &t_ops, &p.app_b), 0);
	assert_int_equal(net_tcp_connect(p.a, T_IP_B, 9092, &t_ops, &p.app_a, &c), 0);
	p.app_a.conn = c;
	t_pair_run(&p, 50, 100 * 1000);	/* 5 s: the SYN and its retries */
	assert_int_equal(p.app_b.accepted, 0);
	assert_int_equal(p.app_a.connected, 0);
	assert_true(s.tcp >= 2);
	assert_int_equal(s.ok, 0);
	assert_int_equal(net_stack_stats(p.b)->rx_tcp_cksum_bad, s.tcp);
	t_pair_fini(&p);
}

/* Asked on a port that offloads checksums: the offload is kept (the port
 * computes them at no cost to the stack). */
static void
test_offload_kept(void **state)
{
	struct cksum_seen s;
	struct t_pair p;

	(void)state;
	pair_create(&p, &s, true, true, true);
	t_pair_connect(&p, 9092);
	bulk(&p, 64u << 10);
	assert_true(s.offload >= 40);
	assert_int_equal(s.offload, s.tcp);
	t_pair_fini(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_computed_by_default),
		cmocka_unit_test(test_skipped_when_asked),
		cmocka_unit_test(test_verifying_peer_drops),
		cmocka_unit_test(test_offload_kept),
	};

	if (t_eal_init() != 0) {
		fprintf(stderr, "test_net_tx_cksum: EAL did not start; skipping\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
