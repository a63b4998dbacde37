/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the packet layer of dataplane/net: Ethernet demux, ARP
 * (replies, cache, expiry, gratuitous ARP, frames held during resolution),
 * IPv4 input validation (checksum, lengths, fragments, TTL, padding,
 * multi-segment frames), ICMP echo, and the checksum over mbuf chains split
 * at odd offsets (where DPDK 22.11's rte_raw_cksum_mbuf goes wrong). Frames are built by hand in mbufs of
 * a pool of a no-hugepage EAL; the stack's output is captured.
 */
#include "net_test_util.h"
#include "net_internal.h"

static struct t_cap cap;
static struct net_stack *st;
static struct rte_ether_addr mac_us, mac_peer, bcast;
static uint64_t now;

static int
setup(void **state)
{
	struct net_config c;

	t_config(&c, &cap, T_IP_A, 1);
	c.arp_timeout_us = 5 * 1000 * 1000;
	now = 1000000;
	st = net_stack_create(&c);
	assert_non_null(st);
	t_mac(&mac_us, 1);
	t_mac(&mac_peer, 2);
	memset(&bcast, 0xff, sizeof(bcast));
	return 0;
}

static int
teardown(void **state)
{
	net_stack_free(st);
	t_cap_clear(&cap);
	return 0;
}

static void
input_bytes(const uint8_t *b, uint32_t len)
{
	struct rte_mbuf *m = t_frame(b, len);

	net_stack_input(st, &m, 1, now);
}

static void
peer_arp_request(void)
{
	uint8_t b[128];
	struct rte_ether_addr zero = { { 0 } };
	uint32_t n = t_arp_bytes(b, RTE_ARP_OP_REQUEST, &mac_peer, T_IP_B, &zero, T_IP_A, &bcast);

	input_bytes(b, n);
}

static void
test_gratuitous_arp_at_start(void **state)
{
	struct t_pkt p;

	net_stack_start(st, now);
	assert_int_equal(cap.n, 1);
	t_parse(cap.m[0], &p);
	assert_true(p.is_arp);
	assert_int_equal(p.arp_op, RTE_ARP_OP_REQUEST);
	assert_int_equal(p.arp_sip, T_IP_A);
	assert_int_equal(p.arp_tip, T_IP_A);
	assert_true(rte_is_broadcast_ether_addr(&p.eth_dst));
}

static void
test_arp_reply_and_cache(void **state)
{
	struct rte_ether_addr got;
	struct t_pkt p;

	assert_int_equal(net_arp_lookup(st, T_IP_B, &got), -ENOENT);
	peer_arp_request();
	assert_int_equal(cap.n, 1);
	t_parse(cap.m[0], &p);
	assert_true(p.is_arp);
	assert_int_equal(p.arp_op, RTE_ARP_OP_REPLY);
	assert_int_equal(p.arp_sip, T_IP_A);
	assert_int_equal(p.arp_tip, T_IP_B);
	assert_true(rte_is_same_ether_addr(&p.eth_dst, &mac_peer));
	assert_true(rte_is_same_ether_addr(&p.eth_src, &mac_us));
	/* RFC 826 merge: the requester is now cached. */
	assert_int_equal(net_arp_lookup(st, T_IP_B, &got), 0);
	assert_true(rte_is_same_ether_addr(&got, &mac_peer));
	/* Expiry: after arp_timeout_us the entry is stale. */
	now += 5 * 1000 * 1000 + 1;
	net_stack_poll(st, now);
	assert_int_equal(net_arp_lookup(st, T_IP_B, &got), -ENOENT);
}

static void
test_arp_not_for_us_ignored(void **state)
{
	uint8_t b[128];
	struct rte_ether_addr zero = { { 0 } }, got;
	uint32_t n = t_arp_bytes(b, RTE_ARP_OP_REQUEST, &mac_peer, T_IP_B, &zero,
		T_IP(198, 18, 0, 99), &bcast);

	input_bytes(b, n);
	assert_int_equal(cap.n, 0);
	/* Not addressed to us and not known: no entry created. */
	assert_int_equal(net_arp_lookup(st, T_IP_B, &got), -ENOENT);
	/* Truncated ARP. */
	input_bytes(b, 14 + 10);
	assert_int_equal(net_stack_stats(st)->rx_bad_arp, 1);
}

static uint32_t
icmp_echo_bytes(uint8_t *b, uint32_t payload, bool bad)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)b;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_icmp_hdr *ic = (struct rte_icmp_hdr *)(ip + 1);
	uint32_t tl = 20 + 8 + payload;

	eth->dst_addr = mac_us;
	eth->src_addr = mac_peer;
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)tl);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_ICMP;
	ip->src_addr = T_IP_B;
	ip->dst_addr = T_IP_A;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	memset(ic, 0, sizeof(*ic));
	ic->icmp_type = RTE_IP_ICMP_ECHO_REQUEST;
	ic->icmp_ident = rte_cpu_to_be_16(0x1234);
	ic->icmp_seq_nb = rte_cpu_to_be_16(7);
	for (uint32_t i = 0; i < payload; i++)
		((uint8_t *)(ic + 1))[i] = (uint8_t)i;
	ic->icmp_cksum = (uint16_t)~rte_raw_cksum(ic, 8 + payload);
	if (bad)
		ic->icmp_cksum ^= 1;
	return 14 + tl;
}

static void
test_icmp_echo(void **state)
{
	uint8_t b[2048];
	struct t_pkt p;
	uint32_t n = icmp_echo_bytes(b, 56, false);

	input_bytes(b, n);
	assert_int_equal(cap.n, 1);
	t_parse(cap.m[0], &p);
	assert_true(p.is_icmp);
	assert_int_equal(p.icmp_type, RTE_IP_ICMP_ECHO_REPLY);
	assert_true(p.cksum_ok);
	assert_int_equal(p.src, T_IP_A);
	assert_int_equal(p.dst, T_IP_B);
	assert_true(rte_is_same_ether_addr(&p.eth_dst, &mac_peer));
	assert_int_equal(p.total, n);
	/* Payload echoed unchanged. */
	assert_memory_equal(p.bytes + 14 + 20 + 4, b + 14 + 20 + 4, n - 14 - 20 - 4);
	t_cap_clear(&cap);

	/* Bad ICMP checksum: no reply. */
	n = icmp_echo_bytes(b, 56, true);
	input_bytes(b, n);
	assert_int_equal(cap.n, 0);
	assert_int_equal(net_stack_stats(st)->rx_icmp_bad, 1);

	/* Echo request split over three segments: still answered. */
	n = icmp_echo_bytes(b, 1000, false);
	{
		struct rte_mbuf *m = t_frame_chain(b, n, 400);

		net_stack_input(st, &m, 1, now);
	}
	assert_int_equal(cap.n, 1);
	t_parse(cap.m[0], &p);
	assert_int_equal(p.icmp_type, RTE_IP_ICMP_ECHO_REPLY);
	assert_true(p.cksum_ok);
	assert_int_equal(p.total, n);
}

static void
test_ipv4_validation(void **state)
{
	uint8_t b[2048], c[2048];
	const struct net_stats *s = net_stack_stats(st);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(c + 14);
	uint32_t n = icmp_echo_bytes(b, 32, false);

	/* Bad header checksum. */
	memcpy(c, b, n);
	ip->hdr_checksum ^= 0x0101;
	input_bytes(c, n);
	assert_int_equal(s->rx_bad_ipv4, 1);
	assert_int_equal(s->rx_ip_cksum_bad, 1);

	/* The RX_IP_CKSUM_GOOD flag skips the software check. */
	{
		struct rte_mbuf *m = t_frame(c, n);

		m->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_GOOD;
		net_stack_input(st, &m, 1, now);
		assert_int_equal(cap.n, 1);
		t_cap_clear(&cap);
	}

	/* Total length larger than the frame. */
	memcpy(c, b, n);
	ip->total_length = rte_cpu_to_be_16((uint16_t)(n - 14 + 1));
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	input_bytes(c, n);
	assert_int_equal(s->rx_bad_ipv4, 2);

	/* Total length below the header length. */
	ip->total_length = rte_cpu_to_be_16(19);
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	input_bytes(c, n);
	assert_int_equal(s->rx_bad_ipv4, 3);

	/* Version 6 in an IPv4 ethertype; IHL 4. */
	memcpy(c, b, n);
	ip->version_ihl = 0x65;
	input_bytes(c, n);
	memcpy(c, b, n);
	ip->version_ihl = 0x44;
	input_bytes(c, n);
	assert_int_equal(s->rx_bad_ipv4, 5);

	/* TTL 0. */
	memcpy(c, b, n);
	ip->time_to_live = 0;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	input_bytes(c, n);
	assert_int_equal(s->rx_bad_ipv4, 6);
	assert_int_equal(s->rx_ip_cksum_bad, 1);	/* the other five were not checksums */

	/* Fragments: MF set, or a non-zero offset. */
	memcpy(c, b, n);
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG);
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	input_bytes(c, n);
	memcpy(c, b, n);
	ip->fragment_offset = rte_cpu_to_be_16(10);
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	input_bytes(c, n);
	assert_int_equal(s->rx_ip_fragments, 2);

	/* Not our address. */
	memcpy(c, b, n);
	ip->dst_addr = T_IP(198, 18, 0, 77);
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	input_bytes(c, n);
	assert_int_equal(s->rx_ip_not_for_us, 1);

	/* Truncated below an IPv4 header; not our MAC; VLAN. */
	input_bytes(b, 14 + 10);
	memcpy(c, b, n);
	c[0] = 0x06;
	input_bytes(c, n);
	memcpy(c, b, n);
	c[12] = 0x81;
	c[13] = 0x00;
	input_bytes(c, n);
	assert_int_equal(s->rx_bad_ipv4, 7);
	assert_int_equal(s->rx_bad_eth, 2);
	/* None of these got an answer. */
	assert_int_equal(cap.n, 0);

	/* Ethernet padding after the IP packet is ignored (60-byte minimum). */
	n = icmp_echo_bytes(b, 0, false);
	memset(b + n, 0xee, 60 - n);
	input_bytes(b, 60);
	assert_int_equal(cap.n, 1);
	{
		struct t_pkt p;

		t_parse(cap.m[0], &p);
		assert_true(p.cksum_ok);
		assert_int_equal(p.total, n);
	}
}

static void
test_headers_split_across_segments_rejected(void **state)
{
	uint8_t b[2048];
	uint32_t n = icmp_echo_bytes(b, 32, false);
	struct rte_mbuf *m = t_frame_chain(b, n, 20);

	net_stack_input(st, &m, 1, now);
	assert_int_equal(cap.n, 0);
	assert_int_equal(net_stack_stats(st)->rx_bad_ipv4, 1);
}

static void
test_arp_resolution_holds_frame(void **state)
{
	struct t_pkt p;
	uint8_t b[256];
	struct net_tcp_conn *c;
	struct t_app app;
	uint32_t n;

	t_app_init(&app);
	/* An active open to an unknown neighbour: ARP request first, the SYN
	 * is held and leaves when the reply arrives. */
	assert_int_equal(net_tcp_connect(st, T_IP_B, 9092, &t_ops, &app, &c), 0);
	net_stack_poll(st, now);
	assert_int_equal(cap.n, 1);
	t_parse(cap.m[0], &p);
	assert_true(p.is_arp);
	assert_int_equal(p.arp_op, RTE_ARP_OP_REQUEST);
	assert_int_equal(p.arp_tip, T_IP_B);
	t_cap_clear(&cap);
	n = t_arp_bytes(b, RTE_ARP_OP_REPLY, &mac_peer, T_IP_B, &mac_us, T_IP_A, &mac_us);
	input_bytes(b, n);
	assert_int_equal(cap.n, 1);
	t_parse(cap.m[0], &p);
	assert_true(p.is_tcp);
	assert_int_equal(p.flags, RTE_TCP_SYN_FLAG);
	assert_true(rte_is_same_ether_addr(&p.eth_dst, &mac_peer));
	assert_true(p.cksum_ok);
	net_tcp_abort(c);
	net_stack_poll(st, now);
	assert_int_equal(app.closes, 1);
	assert_int_equal(net_tcp_conn_count(st), 0);
	t_app_fini(&app);
}

/* A frame the device does not take stays queued and goes at the next
 * flush; only with the batch full and the device still full are frames
 * dropped (counted). */
/* net_raw_cksum_mbuf over chains split anywhere (odd offsets, 1-byte
 * segments, a start offset) equals the checksum of the flat bytes. Bytes
 * near 0xff make every segment's 32-bit partial sum carry past 16 bits. */
static void
test_cksum_chain_odd_splits(void **state)
{
	uint8_t flat[3000];
	uint64_t x = 0x2545f4914f6cdd1dull;
	int dpdk_wrong = 0;

	for (int trial = 0; trial < 500; trial++) {
		uint32_t nseg = 1 + (uint32_t)(trial % 4), len = 0, off;
		struct rte_mbuf *head = NULL;

		for (uint32_t k = 0; k < nseg; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			uint32_t n = trial % 7 == 0 ? 1 : 1 + (uint32_t)(x % 700);
			struct rte_mbuf *m = rte_pktmbuf_alloc(t_pool);
			assert_non_null(m);
			uint8_t *p = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)n);
			assert_non_null(p);
			for (uint32_t i = 0; i < n; i++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				p[i] = flat[len + i] = (uint8_t)(0xff - x % 3);
			}
			len += n;
			if (head == NULL)
				head = m;
			else
				assert_int_equal(rte_pktmbuf_chain(head, m), 0);
		}
		off = len > 3 ? (uint32_t)(x % 3) : 0;
		uint16_t got = 0, dpdk = 0;
		assert_int_equal(net_raw_cksum_mbuf(head, off, len - off, &got), 0);
		assert_int_equal(got, rte_raw_cksum(flat + off, len - off));
		if (rte_raw_cksum_mbuf(head, off, len - off, &dpdk) == 0 && dpdk != got)
			dpdk_wrong++;
		/* Out of range fails. */
		assert_int_equal(net_raw_cksum_mbuf(head, off, len - off + 1, &got), -1);
		rte_pktmbuf_free(head);
	}
	print_message("rte_raw_cksum_mbuf differed in %d of 500 chains\n", dpdk_wrong);
}

static void
test_tx_refused_frames_kept(void **state)
{
	uint8_t b[2048];
	uint32_t n = icmp_echo_bytes(b, 32, false);
	unsigned avail = rte_mempool_avail_count(t_pool);
	struct t_pkt p;

	cap.refuse = 1;
	input_bytes(b, n);
	assert_int_equal(cap.n, 0);
	assert_int_equal(net_stack_stats(st)->tx_dropped, 0);
	assert_int_equal(net_stack_stats(st)->tx_full, 1);
	net_stack_poll(st, 2000000);
	assert_int_equal(cap.n, 1);
	t_parse(cap.m[0], &p);
	assert_true(p.is_icmp);
	t_cap_clear(&cap);
	/* A device refusing everything: 64 frames wait, the rest is dropped. */
	cap.refuse = 1000;
	for (int i = 0; i < 70; i++)
		input_bytes(b, n);
	assert_int_equal(cap.n, 0);
	assert_int_equal(net_stack_stats(st)->tx_dropped, 6);
	cap.refuse = 0;
	net_stack_poll(st, 3000000);
	assert_int_equal(cap.n, 64);
	t_cap_clear(&cap);
	assert_int_equal(rte_mempool_avail_count(t_pool), avail);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_gratuitous_arp_at_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_reply_and_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_not_for_us_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_echo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv4_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_headers_split_across_segments_rejected,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_resolution_holds_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_refused_frames_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cksum_chain_odd_splits, setup, teardown),
	};

	if (t_eal_init() != 0) {
		fprintf(stderr, "test_net_ipv4: EAL did not start; skipping\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
