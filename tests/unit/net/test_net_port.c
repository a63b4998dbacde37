/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit test of the port glue (net_port.c) on real ethdev ports: two
 * net_ring ports (rte_eth_from_rings) wired crosswise, each configured by
 * net_port_setup and driven by net_port_poll, so frames go through
 * rte_eth_tx_burst / rte_eth_rx_burst like on a NIC. A TCP transfer runs
 * over them; the symmetric RSS key is checked to hash both directions of a
 * flow alike. The same transfer, both ways at once, through the impairment
 * layer on both ports' queues (loss, duplication, reordering, corruption,
 * delay), checked byte for byte.
 */
#include <inttypes.h>

#include <rte_ethdev.h>
#include <rte_eth_ring.h>
#include <rte_ring.h>
#include <rte_thash.h>

#include "net_test_util.h"

#include "net_impair.h"
#include "net_port.h"

static void
test_ring_ports_tcp_transfer(void **state)
{
	struct rte_ring *ab = rte_ring_create("net_t_ab", 1024, SOCKET_ID_ANY,
		RING_F_SP_ENQ | RING_F_SC_DEQ);
	struct rte_ring *ba = rte_ring_create("net_t_ba", 1024, SOCKET_ID_ANY,
		RING_F_SP_ENQ | RING_F_SC_DEQ);
	struct net_port_conf pc = { .pool = t_pool };
	struct net_port_info ia, ib;
	struct net_port_queue qa, qb;
	struct net_config ca, cb;
	struct net_stack *a, *b;
	struct net_tcp_conn *c;
	struct t_app app_a, app_b;
	struct rte_eth_stats es;
	uint64_t now = 1000000;
	const uint32_t total = 256 * 1024;
	uint32_t off = 0;
	int pa, pb;

	assert_non_null(ab);
	assert_non_null(ba);
	pa = rte_eth_from_rings("net_t_a", &ba, 1, &ab, 1, SOCKET_ID_ANY);
	pb = rte_eth_from_rings("net_t_b", &ab, 1, &ba, 1, SOCKET_ID_ANY);
	assert_true(pa >= 0 && pb >= 0);
	assert_int_equal(net_port_setup((uint16_t)pa, &pc, &ia), 0);
	assert_int_equal(net_port_setup((uint16_t)pb, &pc, &ib), 0);
	assert_false(ia.rss);	/* one queue */
	qa = (struct net_port_queue){ .port_id = (uint16_t)pa, .queue_id = 0 };
	qb = (struct net_port_queue){ .port_id = (uint16_t)pb, .queue_id = 0 };
	t_config(&ca, NULL, T_IP_A, 1);
	t_config(&cb, NULL, T_IP_B, 2);
	net_port_worker_config(&ca, &ia, &qa, 1500);
	net_port_worker_config(&cb, &ib, &qb, 1500);
	assert_true(rte_is_same_ether_addr(&ca.mac, &ia.mac));
	assert_ptr_equal(ca.tx_fn, net_port_tx_burst);
	/* net_ring gives every port the same MAC: tell them apart here. */
	t_mac(&ca.mac, 1);
	t_mac(&cb.mac, 2);
	a = net_stack_create(&ca);
	b = net_stack_create(&cb);
	assert_non_null(a);
	assert_non_null(b);
	t_app_init(&app_a);
	t_app_init(&app_b);
	net_stack_start(a, now);
	net_stack_start(b, now);
	assert_int_equal(net_tcp_listen(b, 9092, 8, &t_ops, &app_b), 0);
	assert_int_equal(net_tcp_connect(a, T_IP_B, 9092, &t_ops, &app_a, &c), 0);
	for (int r = 0; r < 5000 && app_b.rx_len < total; r++) {
		if (app_a.connected) {
			uint8_t buf[4096];

			while (off < total) {
				uint32_t n = total - off < sizeof(buf) ? total - off : sizeof(buf);
				int k;

				for (uint32_t i = 0; i < n; i++)
					buf[i] = t_pattern(off + i);
				k = net_tcp_send(c, buf, n);
				if (k <= 0)
					break;
				off += (uint32_t)k;
			}
		}
		net_port_poll(a, &qa, now);
		net_port_poll(b, &qb, now);
		now += 100;
	}
	assert_int_equal(app_a.connected, 1);
	assert_int_equal(app_b.accepted, 1);
	assert_int_equal(app_b.rx_len, total);
	for (uint32_t i = 0; i < total; i++) {
		if (app_b.rx[i] != t_pattern(i))
			fail_msg("byte %u differs", i);
	}
	assert_int_equal(rte_eth_stats_get((uint16_t)pa, &es), 0);
	assert_true(es.opackets >= total / 1448);
	assert_int_equal(net_stack_stats(a)->tx_dropped, 0);
	net_stack_free(a);
	net_stack_free(b);
	t_app_fini(&app_a);
	t_app_fini(&app_b);
	assert_int_equal(rte_eth_dev_stop((uint16_t)pa), 0);
	assert_int_equal(rte_eth_dev_stop((uint16_t)pb), 0);
	/* Drain what the rings still hold (last ACKs). */
	{
		struct rte_mbuf *m;

		while (rte_ring_dequeue(ab, (void **)&m) == 0)
			rte_pktmbuf_free(m);
		while (rte_ring_dequeue(ba, (void **)&m) == 0)
			rte_pktmbuf_free(m);
	}
}

static uint32_t
push(struct net_tcp_conn *c, uint32_t off, uint32_t total)
{
	uint8_t buf[4096];

	while (off < total) {
		uint32_t n = total - off < sizeof(buf) ? total - off : (uint32_t)sizeof(buf);
		int k;

		for (uint32_t i = 0; i < n; i++)
			buf[i] = t_pattern(off + i);
		k = net_tcp_send(c, buf, n);
		if (k <= 0)
			break;
		off += (uint32_t)k;
	}
	return off;
}

static void
test_ring_ports_impaired(void **state)
{
	struct rte_ring *ab = rte_ring_create("net_t_iab", 4096, SOCKET_ID_ANY,
		RING_F_SP_ENQ | RING_F_SC_DEQ);
	struct rte_ring *ba = rte_ring_create("net_t_iba", 4096, SOCKET_ID_ANY,
		RING_F_SP_ENQ | RING_F_SC_DEQ);
	struct net_port_conf pc = { .pool = t_pool };
	struct net_impair_conf ic;
	struct net_port_info ia, ib;
	struct net_port_queue qa, qb;
	struct net_config ca, cb;
	struct net_stack *a, *b;
	struct net_tcp_conn *c;
	struct t_app app_a, app_b;
	uint64_t now = 1000000;
	const uint32_t total = 256 * 1024;
	uint32_t off_a = 0, off_b = 0;
	char desc[256];
	int pa, pb, r;

	assert_non_null(ab);
	assert_non_null(ba);
	pa = rte_eth_from_rings("net_t_ia", &ba, 1, &ab, 1, SOCKET_ID_ANY);
	pb = rte_eth_from_rings("net_t_ib", &ab, 1, &ba, 1, SOCKET_ID_ANY);
	assert_true(pa >= 0 && pb >= 0);
	assert_int_equal(net_port_setup((uint16_t)pa, &pc, &ia), 0);
	assert_int_equal(net_port_setup((uint16_t)pb, &pc, &ib), 0);
	memset(&ic, 0, sizeof(ic));
	ic.pool = t_pool;
	assert_int_equal(net_impair_parse(&ic, "seed=2024,loss=2,dup=1,reorder=2,corrupt=1,"
		"delay_us=1000"), 0);
	/* NET_IMPAIR_SEED=n replays (or explores) another seed. */
	if (getenv("NET_IMPAIR_SEED") != NULL)
		ic.seed = strtoull(getenv("NET_IMPAIR_SEED"), NULL, 0);
	qa = (struct net_port_queue){ .port_id = (uint16_t)pa, .impair = net_impair_create(&ic) };
	ic.seed++;
	qb = (struct net_port_queue){ .port_id = (uint16_t)pb, .impair = net_impair_create(&ic) };
	assert_non_null(qa.impair);
	assert_non_null(qb.impair);
	net_impair_describe(qa.impair, desc, sizeof(desc));
	print_message("%s\n", desc);
	t_config(&ca, NULL, T_IP_A, 1);
	t_config(&cb, NULL, T_IP_B, 2);
	net_port_worker_config(&ca, &ia, &qa, 1500);
	net_port_worker_config(&cb, &ib, &qb, 1500);
	t_mac(&ca.mac, 1);
	t_mac(&cb.mac, 2);
	a = net_stack_create(&ca);
	b = net_stack_create(&cb);
	assert_non_null(a);
	assert_non_null(b);
	t_app_init(&app_a);
	t_app_init(&app_b);
	net_stack_start(a, now);
	net_stack_start(b, now);
	assert_int_equal(net_tcp_listen(b, 9092, 8, &t_ops, &app_b), 0);
	assert_int_equal(net_tcp_connect(a, T_IP_B, 9092, &t_ops, &app_a, &c), 0);
	/* At most 60 simulated seconds in 100 us steps. */
	for (r = 0; r < 600000 && (app_b.rx_len < total || app_a.rx_len < total); r++) {
		if (app_a.connected && off_a < total)
			off_a = push(c, off_a, total);
		if (app_b.accepted && app_b.conn != NULL && off_b < total)
			off_b = push(app_b.conn, off_b, total);
		net_port_poll(a, &qa, now);
		net_port_poll(b, &qb, now);
		now += 100;
	}
	print_message("%d steps; a: %" PRIu64 " rto, %" PRIu64 " fast rtx, %" PRIu64
		" sack rtx; b dropped %" PRIu64 " bad tcp\n", r,
		net_stack_stats(a)->tcp_rto_expiries, net_stack_stats(a)->tcp_fast_retransmits,
		net_stack_stats(a)->tcp_sack_retransmits, net_stack_stats(b)->rx_tcp_bad);
	assert_int_equal(app_b.rx_len, total);
	assert_int_equal(app_a.rx_len, total);
	for (uint32_t i = 0; i < total; i++) {
		if (app_b.rx[i] != t_pattern(i) || app_a.rx[i] != t_pattern(i)) {
			for (uint32_t j = i - 4; j < i + 12; j++)
				print_message("%u: exp %02x a %02x b %02x\n", j, t_pattern(j),
					app_a.rx[j], app_b.rx[j]);
			fail_msg("byte %u differs", i);
		}
	}
	{
		struct net_impair_stats sum;

		/* Every impairment happened somewhere (both ports, both ways). */
		memset(&sum, 0, sizeof(sum));
		for (int d = 0; d < 4; d++) {
			const struct net_impair_stats *s =
				net_impair_stats(d < 2 ? qa.impair : qb.impair, d & 1);

			sum.lost += s->lost;
			sum.duplicated += s->duplicated;
			sum.reordered += s->reordered;
			sum.delayed += s->delayed;
			sum.corrupted += s->corrupted;
		}
		assert_true(sum.lost > 0 && sum.duplicated > 0 && sum.reordered > 0);
		assert_true(sum.delayed > 0 && sum.corrupted > 0);
		/* Corrupted frames were dropped by a checksum check. */
		assert_true(net_stack_stats(a)->rx_tcp_bad + net_stack_stats(a)->rx_bad_ipv4 +
			net_stack_stats(b)->rx_tcp_bad + net_stack_stats(b)->rx_bad_ipv4 > 0);
	}
	net_stack_free(a);
	net_stack_free(b);
	t_app_fini(&app_a);
	t_app_fini(&app_b);
	net_impair_free(qa.impair);
	net_impair_free(qb.impair);
	assert_int_equal(rte_eth_dev_stop((uint16_t)pa), 0);
	assert_int_equal(rte_eth_dev_stop((uint16_t)pb), 0);
	{
		struct rte_mbuf *m;

		while (rte_ring_dequeue(ab, (void **)&m) == 0)
			rte_pktmbuf_free(m);
		while (rte_ring_dequeue(ba, (void **)&m) == 0)
			rte_pktmbuf_free(m);
	}
}

static void
test_symmetric_rss_key(void **state)
{
	struct net_port_conf pc = { .pool = t_pool };
	struct net_port_info info;
	struct rte_ipv4_tuple fwd, rev;
	uint64_t rng = 12345;

	/* An invalid port is refused. */
	assert_int_equal(net_port_setup(RTE_MAX_ETHPORTS - 1, &pc, &info), -EINVAL);
	/* The key net_port_setup installs hashes both directions alike. */
	{
		struct rte_ring *r = rte_ring_create("net_t_rss", 64, SOCKET_ID_ANY, 0);
		int p = rte_eth_from_rings("net_t_rss", &r, 1, &r, 1, SOCKET_ID_ANY);

		assert_true(p >= 0);
		assert_int_equal(net_port_setup((uint16_t)p, &pc, &info), 0);
		assert_int_equal(rte_eth_dev_stop((uint16_t)p), 0);
	}
	for (int k = 0; k < 1000; k++) {
		fwd.src_addr = t_rand(&rng);
		fwd.dst_addr = t_rand(&rng);
		fwd.sport = (uint16_t)t_rand(&rng);
		fwd.dport = (uint16_t)t_rand(&rng);
		rev.src_addr = fwd.dst_addr;
		rev.dst_addr = fwd.src_addr;
		rev.sport = fwd.dport;
		rev.dport = fwd.sport;
		assert_int_equal(rte_softrss((uint32_t *)&fwd, RTE_THASH_V4_L4_LEN, info.rss_key),
			rte_softrss((uint32_t *)&rev, RTE_THASH_V4_L4_LEN, info.rss_key));
	}
}

static void
test_tsc_clock(void **state)
{
	uint64_t t0 = net_port_now_us(), t1;

	rte_delay_us_block(2000);
	t1 = net_port_now_us();
	assert_true(t1 - t0 >= 1500);
	assert_true(t1 - t0 < 1000000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_ports_tcp_transfer),
		cmocka_unit_test(test_ring_ports_impaired),
		cmocka_unit_test(test_symmetric_rss_key),
		cmocka_unit_test(test_tsc_clock),
	};

	if (t_eal_init() != 0) {
		fprintf(stderr, "test_net_port: EAL did not start; skipping\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
