/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit test of the port glue (net_port.c) on real ethdev ports: two
 * net_ring ports (rte_eth_from_rings) wired crosswise, each configured by
 * net_port_setup and driven by net_port_poll, so frames go through
 * rte_eth_tx_burst / rte_eth_rx_burst like on a NIC. A TCP transfer runs
 * over them; the symmetric RSS key is checked to hash both directions of a
 * flow alike. The same transfer, both ways at once, through the impairment
 * layer on both ports' queues (loss, duplication, reordering, corruption,
 * delay), checked byte for byte. On net_null ports (a redirection table and
 * key in software): the table and the symmetric key net_port_setup programs,
 * read back, and active opens whose replies come back to their worker's
 * queue (a bitwise Toeplitz, checked against Microsoft's test vector). The
 * output function while the link is down.
 */
#include <inttypes.h>

#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_eth_ring.h>
#include <rte_ring.h>
#include <rte_thash.h>

#include "net_test_util.h"

#include "net_impair.h"
#include "net_port.h"

/*
 * Stacks a (MAC ...:01) and b (...:02) from @ca and @cb, started at @now, b
 * listening on 9092 and a's connection to it opened (*@c), their
 * applications @app_a and @app_b.
 */
static void
t_pair_start(struct net_config *ca, struct net_config *cb, struct net_stack **a,
	struct net_stack **b, struct t_app *app_a, struct t_app *app_b, struct net_tcp_conn **c,
	uint64_t now)
{
	t_mac(&ca->mac, 1);
	t_mac(&cb->mac, 2);
	*a = net_stack_create(ca);
	*b = net_stack_create(cb);
	assert_non_null(*a);
	assert_non_null(*b);
	t_app_init(app_a);
	t_app_init(app_b);
	net_stack_start(*a, now);
	net_stack_start(*b, now);
	assert_int_equal(net_tcp_listen(*b, 9092, 8, &t_ops, app_b), 0);
	assert_int_equal(net_tcp_connect(*a, T_IP_B, 9092, &t_ops, app_a, c), 0);
}

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
	t_pair_start(&ca, &cb, &a, &b, &app_a, &app_b, &c, now);
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

/*
 * Jumbo frames end to end on net_ring (the one port here whose driver takes
 * a 9000-byte MTU: net_tap, net_af_packet and net_memif report 1518-1522-byte
 * frames at most in DPDK 22.11, docs/net-stack.md): both ports set to MTU
 * 9000 by net_port_setup, both stacks offer MSS 8960 in their SYNs, the
 * connection's MSS is 8948 both ways (8960 less the timestamps option), and
 * 1 MiB crosses in frames far larger than 1514 bytes, checked byte for byte.
 */
static void
test_ring_ports_jumbo(void **state)
{
	struct rte_ring *ab = rte_ring_create("net_j_ab", 1024, SOCKET_ID_ANY,
		RING_F_SP_ENQ | RING_F_SC_DEQ);
	struct rte_ring *ba = rte_ring_create("net_j_ba", 1024, SOCKET_ID_ANY,
		RING_F_SP_ENQ | RING_F_SC_DEQ);
	struct rte_mempool *jp = rte_pktmbuf_pool_create("net_j_pool", 4095, 0, 0,
		RTE_PKTMBUF_HEADROOM + 9000 + 22, SOCKET_ID_ANY);
	struct net_port_conf pc = { .pool = jp, .mtu = 9000 };
	struct net_port_info ia, ib;
	struct net_port_queue qa, qb;
	struct net_config ca, cb;
	struct net_stack *a, *b;
	struct net_tcp_conn *c;
	struct net_tcp_info ti;
	struct t_app app_a, app_b;
	struct rte_eth_stats es;
	uint64_t now = 1000000;
	const uint32_t total = 1u << 20;
	uint32_t off = 0;
	uint16_t mtu = 0;
	int pa, pb;

	(void)state;
	assert_non_null(ab);
	assert_non_null(ba);
	assert_non_null(jp);
	pa = rte_eth_from_rings("net_j_a", &ba, 1, &ab, 1, SOCKET_ID_ANY);
	pb = rte_eth_from_rings("net_j_b", &ab, 1, &ba, 1, SOCKET_ID_ANY);
	assert_true(pa >= 0 && pb >= 0);
	assert_int_equal(net_port_setup((uint16_t)pa, &pc, &ia), 0);
	assert_int_equal(net_port_setup((uint16_t)pb, &pc, &ib), 0);
	assert_int_equal(rte_eth_dev_get_mtu((uint16_t)pa, &mtu), 0);
	assert_int_equal(mtu, 9000);
	qa = (struct net_port_queue){ .port_id = (uint16_t)pa, .queue_id = 0 };
	qb = (struct net_port_queue){ .port_id = (uint16_t)pb, .queue_id = 0 };
	t_config(&ca, NULL, T_IP_A, 1);
	t_config(&cb, NULL, T_IP_B, 2);
	net_port_worker_config(&ca, &ia, &qa, 9000);
	net_port_worker_config(&cb, &ib, &qb, 9000);
	ca.pool = jp;
	cb.pool = jp;
	ca.sndbuf_bytes = cb.rcvbuf_bytes = 1u << 20;
	t_pair_start(&ca, &cb, &a, &b, &app_a, &app_b, &c, now);
	for (int r = 0; r < 20000 && app_b.rx_len < total; r++) {
		if (app_a.connected)
			off = t_push(c, off, total);
		net_port_poll(a, &qa, now);
		net_port_poll(b, &qb, now);
		now += 100;
	}
	assert_int_equal(app_a.connected, 1);
	assert_int_equal(app_b.accepted, 1);
	net_tcp_conn_info(c, &ti);
	assert_int_equal(ti.mss, 8960 - 12);
	net_tcp_conn_info(app_b.conn, &ti);
	assert_int_equal(ti.mss, 8960 - 12);
	assert_int_equal(app_b.rx_len, total);
	for (uint32_t i = 0; i < total; i++) {
		if (app_b.rx[i] != t_pattern(i))
			fail_msg("byte %u differs", i);
	}
	assert_int_equal(rte_eth_stats_get((uint16_t)pa, &es), 0);
	print_message("jumbo: %" PRIu64 " frames, %" PRIu64 " bytes from a\n",
		net_stack_stats(a)->tx_frames, net_stack_stats(a)->tx_bytes);
	/* Fewer than one frame per 8 KiB: the data went in jumbo frames (net_ring
	 * counts no bytes; the stack does). */
	assert_true(es.opackets < total / 8192 + 64);
	assert_true(net_stack_stats(a)->tx_bytes / net_stack_stats(a)->tx_frames > 4000);
	net_stack_free(a);
	net_stack_free(b);
	t_app_fini(&app_a);
	t_app_fini(&app_b);
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
	t_pair_start(&ca, &cb, &a, &b, &app_a, &app_b, &c, now);
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

/*
 * Toeplitz hash written out bit by bit (independent of rte_softrss): for each
 * input bit set, XOR in the 32-bit window of the key starting at that bit.
 */
static uint32_t
toeplitz(const uint8_t *key, const uint8_t *data, unsigned int len)
{
	uint32_t h = 0;
	uint32_t v = (uint32_t)key[0] << 24 | (uint32_t)key[1] << 16 | (uint32_t)key[2] << 8 |
		key[3];

	for (unsigned int i = 0; i < len; i++) {
		for (int b = 7; b >= 0; b--) {
			if (data[i] & (1u << b))
				h ^= v;
			v = v << 1 | ((key[i + 4] >> b) & 1u);
		}
	}
	return h;
}

/* The hash a NIC computes for an IPv4/TCP frame (addresses, ports host order). */
static uint32_t
toeplitz_v4(const uint8_t *key, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport)
{
	uint8_t d[12] = {
		(uint8_t)(src >> 24), (uint8_t)(src >> 16), (uint8_t)(src >> 8), (uint8_t)src,
		(uint8_t)(dst >> 24), (uint8_t)(dst >> 16), (uint8_t)(dst >> 8), (uint8_t)dst,
		(uint8_t)(sport >> 8), (uint8_t)sport, (uint8_t)(dport >> 8), (uint8_t)dport,
	};

	return toeplitz(key, d, sizeof(d));
}

static void
test_toeplitz_reference(void **state)
{
	/* Microsoft's RSS verification key and first IPv4/TCP vector (also in
	 * DPDK's test_thash.c): 66.9.149.187:2794 -> 161.142.100.80:1766. */
	static const uint8_t ms_key[40] = {
		0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67,
		0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb,
		0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
		0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
	};

	assert_int_equal(toeplitz_v4(ms_key, T_IPH(66, 9, 149, 187), T_IPH(161, 142, 100, 80),
		2794, 1766), 0x51ccc178);
}

/* A net_null port (it has a 128-entry table and a 40-byte key in software). */
static uint16_t
null_port(const char *name)
{
	uint16_t port;

	assert_int_equal(rte_dev_probe(name), 0);
	assert_int_equal(rte_eth_dev_get_port_by_name(name, &port), 0);
	return port;
}

static void
null_port_close(const char *name, uint16_t port)
{
	assert_int_equal(rte_eth_dev_stop(port), 0);
	assert_int_equal(rte_eth_dev_close(port), 0);
	assert_int_equal(rte_eal_hotplug_remove("vdev", name), 0);
}

/* The port's redirection table, read back: entry i in @out[i]. */
static void
reta_read(uint16_t port, uint16_t *out, uint16_t size)
{
	struct rte_eth_rss_reta_entry64 reta[2];

	assert_true(size <= 128);
	memset(reta, 0, sizeof(reta));
	reta[0].mask = reta[1].mask = UINT64_MAX;
	assert_int_equal(rte_eth_dev_rss_reta_query(port, reta, size), 0);
	for (uint16_t i = 0; i < size; i++)
		out[i] = reta[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE];
}

static void
test_rss_table_programmed(void **state)
{
	const char *name = "net_null_rss0";
	uint16_t port = null_port(name);
	struct net_port_conf pc = { .pool = t_pool, .nb_queues = 4 };
	struct rte_eth_rss_reta_entry64 reta[2];
	struct rte_eth_conf ec;
	struct rte_eth_rss_conf rc;
	struct net_port_info info;
	uint8_t key[40], got[40];
	uint16_t table[128];

	/* Start from another key and a table sending everything to queue 1. */
	memset(&ec, 0, sizeof(ec));
	ec.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
	ec.rx_adv_conf.rss_conf.rss_hf = RTE_ETH_RSS_NONFRAG_IPV4_TCP;
	assert_int_equal(rte_eth_dev_configure(port, 2, 2, &ec), 0);
	for (unsigned int i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 1);
	rc = (struct rte_eth_rss_conf){ .rss_key = key, .rss_key_len = sizeof(key),
		.rss_hf = RTE_ETH_RSS_NONFRAG_IPV4_TCP };
	assert_int_equal(rte_eth_dev_rss_hash_update(port, &rc), 0);
	memset(reta, 0, sizeof(reta));
	for (int g = 0; g < 2; g++) {
		reta[g].mask = UINT64_MAX;
		for (int i = 0; i < RTE_ETH_RETA_GROUP_SIZE; i++)
			reta[g].reta[i] = 1;
	}
	assert_int_equal(rte_eth_dev_rss_reta_update(port, reta, 128), 0);

	assert_int_equal(net_port_setup(port, &pc, &info), 0);
	assert_true(info.rss);
	assert_int_equal(info.nb_queues, 4);
	assert_int_equal(info.reta_size, 128);
	assert_int_equal(info.rss_reta_err, 0);
	assert_int_equal(info.rss_key_err, 0);
	assert_true(net_port_rss_aimed(&info));
	/* Read back on our own: the table spreads over the 4 queues, the key is
	 * the symmetric one the stack got. */
	reta_read(port, table, 128);
	for (uint16_t i = 0; i < 128; i++)
		assert_int_equal(table[i], i % 4);
	rc = (struct rte_eth_rss_conf){ .rss_key = got, .rss_key_len = sizeof(got) };
	assert_int_equal(rte_eth_dev_rss_hash_conf_get(port, &rc), 0);
	assert_memory_equal(got, info.rss_key, sizeof(got));
	for (unsigned int i = 0; i < sizeof(got); i++)
		assert_int_equal(got[i], (i & 1) ? 0x5a : 0x6d);
	null_port_close(name, port);
}

/*
 * Active opens on 4 workers of one port: each source port the stack picks
 * must bring the reply (remote -> us) to the worker's queue through the
 * table the port holds, and the first direction (us -> remote) hashes the
 * same with the symmetric key. Hashes by the bitwise Toeplitz above, the
 * table and key as read back from the port.
 */
static void
test_rss_active_open_both_directions(void **state)
{
	const char *name = "net_null_rss1";
	uint16_t port = null_port(name);
	struct net_port_conf pc = { .pool = t_pool, .nb_queues = 4 };
	struct net_port_info info;
	struct rte_eth_rss_conf rc;
	struct t_app app;
	uint8_t key[40];
	uint16_t table[128];
	unsigned int hits[4] = {0};

	assert_int_equal(net_port_setup(port, &pc, &info), 0);
	assert_true(net_port_rss_aimed(&info));
	reta_read(port, table, 128);
	rc = (struct rte_eth_rss_conf){ .rss_key = key, .rss_key_len = sizeof(key) };
	assert_int_equal(rte_eth_dev_rss_hash_conf_get(port, &rc), 0);
	t_app_init(&app);
	for (uint16_t q = 0; q < 4; q++) {
		struct net_port_queue pq = { .port_id = port, .queue_id = q };
		struct net_config c;
		struct net_stack *st;

		t_config(&c, NULL, T_IP_A, 1);
		net_port_worker_config(&c, &info, &pq, 1500);
		assert_non_null(c.rss_key);
		assert_int_equal(c.rss_queue, q);
		st = net_stack_create(&c);
		assert_non_null(st);
		for (int k = 0; k < 16; k++) {
			struct net_tcp_conn *conn;
			struct net_tcp_info i;
			uint32_t back, out;

			assert_int_equal(net_tcp_connect(st, T_IP_B, 9092, &t_ops, &app, &conn),
				0);
			net_tcp_conn_info(conn, &i);
			back = toeplitz_v4(key, T_IPH(198, 18, 0, 2), T_IPH(198, 18, 0, 1), 9092,
				i.lport);
			out = toeplitz_v4(key, T_IPH(198, 18, 0, 1), T_IPH(198, 18, 0, 2), i.lport,
				9092);
			assert_int_equal(back, out);
			assert_int_equal(table[back % 128], q);
			hits[q]++;
		}
		net_stack_free(st);
	}
	t_app_fini(&app);
	for (int q = 0; q < 4; q++)
		assert_int_equal(hits[q], 16);
	null_port_close(name, port);
}

/* Without a table to aim at (one queue here), the stack gets no key. */
static void
test_rss_not_aimed(void **state)
{
	struct net_port_info info;
	struct net_port_queue q = { .port_id = 0, .queue_id = 0 };
	struct net_config c;

	memset(&info, 0, sizeof(info));
	info.rss = true;
	info.nb_queues = 2;
	info.reta_size = 0;	/* net_tap: the kernel picks the queue */
	t_config(&c, NULL, T_IP_A, 1);
	net_port_worker_config(&c, &info, &q, 1500);
	assert_null(c.rss_key);
	info.reta_size = 128;
	info.rss_reta_err = -ENOTSUP;
	net_port_worker_config(&c, &info, &q, 1500);
	assert_null(c.rss_key);
	info.rss_reta_err = 0;
	info.rss_key_err = -EIO;
	net_port_worker_config(&c, &info, &q, 1500);
	assert_null(c.rss_key);
	info.rss_key_err = 0;
	net_port_worker_config(&c, &info, &q, 1500);
	assert_non_null(c.rss_key);
}

/*
 * While the link is down the output function sends what the device takes
 * and frees and counts the rest (all consumed); up again, what the device
 * refuses is left to the caller as before.
 */
static void
test_link_down_drops(void **state)
{
	struct rte_ring *r = rte_ring_create("net_t_link", 8, SOCKET_ID_ANY,
		RING_F_SP_ENQ | RING_F_SC_DEQ); /* holds 7 */
	struct net_port_conf pc = { .pool = t_pool };
	struct net_port_info info;
	struct net_port_queue q;
	struct rte_mbuf *m[10];
	bool down = true;
	unsigned int avail;
	int p;

	assert_non_null(r);
	p = rte_eth_from_rings("net_t_link", &r, 1, &r, 1, SOCKET_ID_ANY);
	assert_true(p >= 0);
	assert_int_equal(net_port_setup((uint16_t)p, &pc, &info), 0);
	q = (struct net_port_queue){ .port_id = (uint16_t)p, .link_down = &down };
	avail = rte_mempool_avail_count(t_pool);
	assert_int_equal(rte_pktmbuf_alloc_bulk(t_pool, m, 10), 0);
	for (int i = 0; i < 10; i++)
		assert_non_null(rte_pktmbuf_append(m[i], 60));
	assert_int_equal(net_port_tx_burst(&q, m, 10), 10);
	assert_int_equal(rte_ring_count(r), 7);
	assert_int_equal(q.tx_link_down, 3);
	assert_int_equal(rte_mempool_avail_count(t_pool), avail - 7); /* 3 freed */
	down = false;
	assert_int_equal(rte_pktmbuf_alloc_bulk(t_pool, m, 3), 0);
	assert_int_equal(net_port_tx_burst(&q, m, 3), 0); /* full: the caller's again */
	assert_int_equal(q.tx_link_down, 3);
	rte_pktmbuf_free_bulk(m, 3);
	assert_int_equal(rte_eth_dev_stop((uint16_t)p), 0);
	{
		struct rte_mbuf *x;

		while (rte_ring_dequeue(r, (void **)&x) == 0)
			rte_pktmbuf_free(x);
	}
	assert_int_equal(rte_mempool_avail_count(t_pool), avail);
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
		cmocka_unit_test(test_ring_ports_jumbo),
		cmocka_unit_test(test_ring_ports_impaired),
		cmocka_unit_test(test_symmetric_rss_key),
		cmocka_unit_test(test_toeplitz_reference),
		cmocka_unit_test(test_rss_table_programmed),
		cmocka_unit_test(test_rss_active_open_both_directions),
		cmocka_unit_test(test_rss_not_aimed),
		cmocka_unit_test(test_link_down_drops),
		cmocka_unit_test(test_tsc_clock),
	};

	if (t_eal_init() != 0) {
		fprintf(stderr, "test_net_port: EAL did not start; skipping\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
