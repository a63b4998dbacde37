/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of TCP against hand-built segments: the test plays the peer,
 * byte by byte, to reach the corners a well-behaved peer never visits: SYN
 * and ACK to a closed port (RFC 9293 section 3.10.7.1), RST inside and
 * outside the window and SYN on an established connection (RFC 5961
 * challenge ACKs and their rate limit), ACK of unsent data, PAWS (RFC 7323),
 * checksum offload flags (partial checksums from a veth), the SYN backlog,
 * a refused accept, SYN-ACK retransmission, overlapping retransmissions,
 * multi-segment frames delivered zero copy, FIN with data, TIME-WAIT.
 */
#include "net_test_util.h"

#define PEER_PORT 40000
#define PORT 9092

static struct t_cap cap;
static struct net_stack *st;
static struct t_app app;
static struct rte_ether_addr mac_us, mac_peer;
static uint64_t now;
/* Connection state as the peer sees it. */
static uint32_t p_seq;		/* next sequence number the peer sends */
static uint32_t s_seq;		/* next sequence number expected from the stack */
static uint32_t p_ts = 100;	/* peer TSval */
static uint32_t s_ts;		/* last TSval seen from the stack */

static void
stack_new(struct net_config *c)
{
	uint8_t b[128];
	struct rte_ether_addr zero = { { 0 } }, bcast;
	struct rte_mbuf *m;
	uint32_t n;

	now = 1000000;
	st = net_stack_create(c);
	assert_non_null(st);
	t_app_init(&app);
	t_mac(&mac_us, 1);
	t_mac(&mac_peer, 2);
	memset(&bcast, 0xff, sizeof(bcast));
	/* Teach the stack our MAC (it answers, and caches us). */
	n = t_arp_bytes(b, RTE_ARP_OP_REQUEST, &mac_peer, T_IP_B, &zero, T_IP_A, &bcast);
	m = t_frame(b, n);
	net_stack_input(st, &m, 1, now);
	t_cap_clear(&cap);
	assert_int_equal(net_tcp_listen(st, PORT, 16, &t_ops, &app), 0);
}

static int
setup(void **state)
{
	struct net_config c;

	t_config(&c, &cap, T_IP_A, 1);
	stack_new(&c);
	return 0;
}

static int
teardown(void **state)
{
	net_stack_free(st);
	t_cap_clear(&cap);
	t_app_fini(&app);
	return 0;
}

/* Send a segment from the peer, with flags of the mbuf set to ol. */
static void
peer_send_ol(const struct t_seg *s, uint64_t ol)
{
	uint8_t b[4096];
	uint32_t n = t_tcp_bytes(b, s, &mac_us, &mac_peer);
	struct rte_mbuf *m = t_frame(b, n);

	m->ol_flags = ol;
	net_stack_input(st, &m, 1, now);
}

static void
peer_send(const struct t_seg *s)
{
	peer_send_ol(s, 0);
}

/* Timestamp option block: NOP NOP TS. */
static uint32_t
ts_opt(uint8_t *o, uint32_t val, uint32_t ecr)
{
	uint32_t v = rte_cpu_to_be_32(val), e = rte_cpu_to_be_32(ecr);

	o[0] = 1;
	o[1] = 1;
	o[2] = 8;
	o[3] = 10;
	memcpy(o + 4, &v, 4);
	memcpy(o + 8, &e, 4);
	return 12;
}

/* A segment of the established connection, with timestamps. */
static void
seg_init(struct t_seg *s, uint8_t *opts, uint8_t flags)
{
	memset(s, 0, sizeof(*s));
	s->src = T_IP_B;
	s->dst = T_IP_A;
	s->sport = PEER_PORT;
	s->dport = PORT;
	s->seq = p_seq;
	s->ack = s_seq;
	s->flags = flags;
	s->win = 65535;
	s->opts = opts;
	s->optlen = ts_opt(opts, p_ts, s_ts);
}

/* The single frame the stack sent; cleared afterwards. */
static void
one_tcp(struct t_pkt *p)
{
	assert_int_equal(cap.n, 1);
	t_parse(cap.m[0], p);
	assert_true(p->is_tcp);
	assert_true(p->cksum_ok);
	if (p->ts_ok)
		s_ts = p->tsval;
	t_cap_clear(&cap);
}

/* Peer opens a connection to PORT from sport with full options. */
static void
peer_syn(uint16_t sport, uint32_t seq)
{
	uint8_t o[24] = { 2, 4, 0x05, 0xb4, 4, 2 };	/* MSS 1460, SACK-permitted */
	struct t_seg s;
	uint32_t v = rte_cpu_to_be_32(p_ts), z = 0;

	o[6] = 8;
	o[7] = 10;
	memcpy(o + 8, &v, 4);
	memcpy(o + 12, &z, 4);
	o[16] = 1;
	o[17] = 3;
	o[18] = 3;
	o[19] = 7;	/* window scale 7 */
	memset(&s, 0, sizeof(s));
	s.src = T_IP_B;
	s.dst = T_IP_A;
	s.sport = sport;
	s.dport = PORT;
	s.seq = seq;
	s.flags = RTE_TCP_SYN_FLAG;
	s.win = 65535;
	s.opts = o;
	s.optlen = 20;
	peer_send(&s);
}

static void
establish(void)
{
	struct t_pkt p;
	struct t_seg s;
	uint8_t o[12];

	peer_syn(PEER_PORT, 1000);
	one_tcp(&p);
	assert_int_equal(p.flags, RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG);
	assert_int_equal(p.ack, 1001);
	assert_true(p.mss_ok && p.sackp && p.ts_ok && p.ws_ok);
	assert_int_equal(p.mss, 1460);
	assert_int_equal(p.ws, 3);
	assert_int_equal(p.tsecr, p_ts);
	assert_int_equal(p.win, 65535);	/* unscaled in a SYN */
	p_seq = 1001;
	s_seq = p.seq + 1;
	p_ts++;
	seg_init(&s, o, RTE_TCP_ACK_FLAG);
	s.win = 512;	/* x 128 = 64 KiB */
	peer_send(&s);
	assert_int_equal(app.accepted, 1);
	assert_non_null(app.conn);
	assert_int_equal(net_tcp_conn_state(app.conn), NET_TCP_ESTABLISHED);
	assert_int_equal(cap.n, 0);	/* nothing to say */
}

static void
test_closed_port_rst(void **state)
{
	struct t_seg s;
	struct t_pkt p;

	memset(&s, 0, sizeof(s));
	s.src = T_IP_B;
	s.dst = T_IP_A;
	s.sport = PEER_PORT;
	s.dport = 81;
	s.seq = 5000;
	s.flags = RTE_TCP_SYN_FLAG;
	s.win = 1000;
	peer_send(&s);
	/* No ACK on the SYN: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. */
	one_tcp(&p);
	assert_int_equal(p.flags, RTE_TCP_RST_FLAG | RTE_TCP_ACK_FLAG);
	assert_int_equal(p.seq, 0);
	assert_int_equal(p.ack, 5001);
	assert_int_equal(p.sport, 81);
	assert_int_equal(p.dport, PEER_PORT);
	/* With ACK: <SEQ=SEG.ACK><CTL=RST>. */
	s.flags = RTE_TCP_ACK_FLAG;
	s.ack = 777;
	s.data = "abc";
	s.len = 3;
	peer_send(&s);
	one_tcp(&p);
	assert_int_equal(p.flags, RTE_TCP_RST_FLAG);
	assert_int_equal(p.seq, 777);
	/* A RST is never answered. */
	s.flags = RTE_TCP_RST_FLAG;
	peer_send(&s);
	assert_int_equal(cap.n, 0);
	/* An ACK to the listening port without a connection: RST too. */
	s.dport = PORT;
	s.flags = RTE_TCP_ACK_FLAG;
	peer_send(&s);
	one_tcp(&p);
	assert_int_equal(p.flags, RTE_TCP_RST_FLAG);
	assert_int_equal(net_tcp_conn_count(st), 0);
}

static void
test_passive_open_and_data(void **state)
{
	struct t_seg s;
	struct t_pkt p;
	uint8_t o[12], data[3000];
	struct net_tcp_info i;

	establish();
	net_tcp_conn_info(app.conn, &i);
	assert_int_equal(i.snd_wnd, 512 << 7);
	assert_int_equal(i.mss, 1460 - 12);
	for (uint32_t k = 0; k < sizeof(data); k++)
		data[k] = t_pattern(k);
	/* Two full segments: ACK after the second (delayed ACK rule). */
	seg_init(&s, o, RTE_TCP_ACK_FLAG);
	s.data = data;
	s.len = 1448;
	peer_send(&s);
	assert_int_equal(cap.n, 0);
	p_seq += 1448;
	seg_init(&s, o, RTE_TCP_ACK_FLAG | RTE_TCP_PSH_FLAG);
	s.data = data + 1448;
	s.len = 1448;
	peer_send(&s);
	p_seq += 1448;
	one_tcp(&p);
	assert_int_equal(p.ack, p_seq);
	assert_int_equal(p.flags, RTE_TCP_ACK_FLAG);
	/* Window field scaled by 8: 256 KiB >> 3. */
	assert_int_equal(p.win, (256 * 1024) >> 3);
	assert_int_equal(p.tsecr, p_ts);
	assert_int_equal(app.rx_len, 2 * 1448);
	assert_memory_equal(app.rx, data, 2 * 1448);
	/* The stack sends: one segment, with TS and our window. */
	assert_int_equal(net_tcp_send(app.conn, "response", 8), 8);
	net_stack_poll(st, now);
	one_tcp(&p);
	assert_int_equal(p.len, 8);
	assert_int_equal(p.seq, s_seq);
	assert_memory_equal(t_payload(&p), "response", 8);
	assert_true(p.flags & RTE_TCP_PSH_FLAG);
	s_seq += 8;
	/* Peer acknowledges: the sent callback reports 8 bytes. */
	p_ts++;
	seg_init(&s, o, RTE_TCP_ACK_FLAG);
	peer_send(&s);
	assert_int_equal(app.acked, 8);
}

static void
test_overlap_and_multiseg_zero_copy(void **state)
{
	struct t_seg s;
	struct t_pkt p;
	uint8_t o[12], data[3000], b[4096];
	struct rte_mbuf *m;
	uint32_t n;

	establish();
	for (uint32_t k = 0; k < sizeof(data); k++)
		data[k] = t_pattern(k);
	/* 1000 bytes in a frame split over 4 mbufs: delivered as a chain. */
	seg_init(&s, o, RTE_TCP_ACK_FLAG);
	s.data = data;
	s.len = 1000;
	n = t_tcp_bytes(b, &s, &mac_us, &mac_peer);
	m = t_frame_chain(b, n, 300);
	net_stack_input(st, &m, 1, now);
	assert_int_equal(app.rx_len, 1000);
	assert_true(app.max_segs_seen >= 3);
	/* A retransmission overlapping the first 500 bytes plus 500 new:
	 * only the new ones are delivered. */
	s.seq = p_seq + 500;
	s.data = data + 500;
	s.len = 1000;
	peer_send(&s);
	assert_int_equal(app.rx_len, 1500);
	assert_memory_equal(app.rx, data, 1500);
	/* An exact duplicate: nothing delivered, an immediate ACK. */
	t_cap_clear(&cap);
	peer_send(&s);
	assert_int_equal(app.rx_len, 1500);
	one_tcp(&p);
	assert_int_equal(p.ack, p_seq + 1500);
}

static void
test_rst_challenge_ack(void **state)
{
	struct t_seg s;
	struct t_pkt p;
	uint8_t o[12];
	const struct net_stats *stats = net_stack_stats(st);

	establish();
	/* In the window but not RCV.NXT: challenge ACK (RFC 5961 3.2). */
	seg_init(&s, o, RTE_TCP_RST_FLAG);
	s.seq = p_seq + 100;
	peer_send(&s);
	one_tcp(&p);
	assert_int_equal(p.flags, RTE_TCP_ACK_FLAG);
	assert_int_equal(p.seq, s_seq);
	assert_int_equal(p.ack, p_seq);
	assert_int_equal(stats->tcp_challenge_acks, 1);
	assert_int_equal(net_tcp_conn_state(app.conn), NET_TCP_ESTABLISHED);
	/* Outside the window: silently dropped. */
	s.seq = p_seq + 10 * 1000 * 1000;
	peer_send(&s);
	assert_int_equal(cap.n, 0);
	assert_int_equal(stats->tcp_out_of_window, 1);
	assert_int_equal(net_tcp_conn_state(app.conn), NET_TCP_ESTABLISHED);
	/* A SYN on the established connection: challenge ACK (RFC 5961 4.2). */
	seg_init(&s, o, RTE_TCP_SYN_FLAG);
	s.seq = p_seq + 5;
	peer_send(&s);
	one_tcp(&p);
	assert_int_equal(p.flags, RTE_TCP_ACK_FLAG);
	assert_int_equal(p.ack, p_seq);
	assert_int_equal(stats->tcp_challenge_acks, 2);
	assert_int_equal(net_tcp_conn_state(app.conn), NET_TCP_ESTABLISHED);
	/* Exactly RCV.NXT: the connection is reset. */
	seg_init(&s, o, RTE_TCP_RST_FLAG);
	peer_send(&s);
	assert_int_equal(cap.n, 0);
	assert_int_equal(app.closes, 1);
	assert_int_equal(app.close_status, -ECONNRESET);
	net_stack_poll(st, now);
	assert_int_equal(net_tcp_conn_count(st), 0);
}

static void
test_challenge_ack_rate_limit(void **state)
{
	struct net_config c;
	struct t_seg s;
	uint8_t o[12];

	teardown(state);
	t_config(&c, &cap, T_IP_A, 1);
	c.challenge_ack_limit = 2;
	stack_new(&c);
	establish();
	for (int k = 0; k < 5; k++) {
		seg_init(&s, o, RTE_TCP_RST_FLAG);
		s.seq = p_seq + 100 + (uint32_t)k;
		peer_send(&s);
	}
	assert_int_equal(cap.n, 2);
	assert_int_equal(net_stack_stats(st)->tcp_challenge_acks, 2);
	assert_int_equal(net_stack_stats(st)->tcp_challenge_acks_limited, 3);
	/* The budget is per second. */
	t_cap_clear(&cap);
	now += 1000 * 1000;
	peer_send(&s);
	assert_int_equal(cap.n, 1);
}

static void
test_bad_acks(void **state)
{
	struct t_seg s;
	struct t_pkt p;
	uint8_t o[12];

	establish();
	/* ACK of data never sent: ACK back, segment dropped (its data too). */
	seg_init(&s, o, RTE_TCP_ACK_FLAG);
	s.ack = s_seq + 1000;
	s.data = "zz";
	s.len = 2;
	peer_send(&s);
	one_tcp(&p);
	assert_int_equal(p.ack, p_seq);
	assert_int_equal(p.seq, s_seq);
	assert_int_equal(app.rx_len, 0);
	/* ACK far below SND.UNA - MAX.SND.WND: challenge ACK (RFC 5961 5.2). */
	seg_init(&s, o, RTE_TCP_ACK_FLAG);
	s.ack = s_seq - 10 * 1000 * 1000;
	peer_send(&s);
	one_tcp(&p);
	assert_int_equal(net_stack_stats(st)->tcp_challenge_acks, 1);
	assert_int_equal(net_tcp_conn_state(app.conn), NET_TCP_ESTABLISHED);
}

static void
test_paws(void **state)
{
	struct t_seg s;
	struct t_pkt p;
	uint8_t o[12];

	establish();
	p_ts += 1000;
	seg_init(&s, o, RTE_TCP_ACK_FLAG);
	s.data = "new";
	s.len = 3;
	peer_send(&s);
	assert_int_equal(app.rx_len, 3);
	p_seq += 3;
	/* An old duplicate: TSval below TS.Recent. */
	p_ts -= 500;
	seg_init(&s, o, RTE_TCP_ACK_FLAG);
	s.data = "old";
	s.len = 3;
	t_cap_clear(&cap);
	peer_send(&s);
	assert_int_equal(app.rx_len, 3);
	assert_int_equal(net_stack_stats(st)->tcp_paws_rejected, 1);
	net_stack_poll(st, now);
	one_tcp(&p);
	assert_int_equal(p.ack, p_seq);
	/* Without a timestamp while they are on: dropped (RFC 7323 3.2). */
	seg_init(&s, o, RTE_TCP_ACK_FLAG);
	s.optlen = 0;
	s.data = "nots";
	s.len = 4;
	peer_send(&s);
	assert_int_equal(app.rx_len, 3);
	assert_int_equal(net_stack_stats(st)->tcp_paws_rejected, 2);
}

static void
test_checksum_offload_flags(void **state)
{
	struct t_seg s;
	uint8_t o[12];
	const struct net_stats *stats = net_stack_stats(st);
	struct net_config c;

	establish();
	seg_init(&s, o, RTE_TCP_ACK_FLAG);
	s.data = "AAAA";
	s.len = 4;
	s.bad_cksum = true;
	/* UNKNOWN: verified in software, bad, dropped. */
	peer_send_ol(&s, 0);
	assert_int_equal(app.rx_len, 0);
	assert_int_equal(stats->rx_tcp_bad, 1);
	assert_int_equal(stats->rx_tcp_cksum_bad, 1);
	/* BAD from the NIC: dropped even if the bytes were right. */
	s.bad_cksum = false;
	peer_send_ol(&s, RTE_MBUF_F_RX_L4_CKSUM_BAD);
	assert_int_equal(app.rx_len, 0);
	assert_int_equal(stats->rx_tcp_bad, 2);
	assert_int_equal(stats->rx_tcp_cksum_bad, 2);
	/* NONE: partial checksum, data verified by the sender (a veth peer's
	 * checksum offload): accepted whatever the field says. */
	s.bad_cksum = true;
	peer_send_ol(&s, RTE_MBUF_F_RX_L4_CKSUM_NONE);
	assert_int_equal(app.rx_len, 4);
	p_seq += 4;
	/* GOOD: accepted without a check. */
	seg_init(&s, o, RTE_TCP_ACK_FLAG);
	s.data = "BBBB";
	s.len = 4;
	s.bad_cksum = true;
	peer_send_ol(&s, RTE_MBUF_F_RX_L4_CKSUM_GOOD);
	assert_int_equal(app.rx_len, 8);

	/* A port marked rx_l4_cksum_trusted (af_packet on a veth) accepts
	 * UNKNOWN without verifying. */
	teardown(state);
	t_config(&c, &cap, T_IP_A, 1);
	c.rx_l4_cksum_trusted = true;
	stack_new(&c);
	establish();
	seg_init(&s, o, RTE_TCP_ACK_FLAG);
	s.data = "CCCC";
	s.len = 4;
	s.bad_cksum = true;
	peer_send_ol(&s, 0);
	assert_int_equal(app.rx_len, 4);
}

static void
test_tx_checksum_offload(void **state)
{
	struct net_config c;
	struct t_pkt p;

	teardown(state);
	t_config(&c, &cap, T_IP_A, 1);
	c.tx_cksum_offload = true;
	stack_new(&c);
	peer_syn(PEER_PORT, 1000);
	assert_int_equal(cap.n, 1);
	/* The port computes the checksums: flags set, header checksum 0,
	 * TCP field holds the pseudo-header sum. */
	assert_true(cap.m[0]->ol_flags & RTE_MBUF_F_TX_TCP_CKSUM);
	assert_true(cap.m[0]->ol_flags & RTE_MBUF_F_TX_IP_CKSUM);
	assert_int_equal(cap.m[0]->l2_len, 14);
	assert_int_equal(cap.m[0]->l3_len, 20);
	{
		const struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(cap.m[0],
			const struct rte_ipv4_hdr *, 14);
		const struct rte_tcp_hdr *th = (const struct rte_tcp_hdr *)(ip + 1);

		assert_int_equal(ip->hdr_checksum, 0);
		assert_int_equal(th->cksum, rte_ipv4_phdr_cksum(ip, cap.m[0]->ol_flags));
	}
	RTE_SET_USED(p);
	t_cap_clear(&cap);
}

static void
test_syn_backlog(void **state)
{
	struct t_pkt p;
	struct t_seg s;
	uint8_t o[12];

	teardown(state);
	{
		struct net_config c;

		t_config(&c, &cap, T_IP_A, 1);
		c.no_syncookies = true;	/* the drop path; cookies are tested below */
		stack_new(&c);
	}
	assert_int_equal(net_tcp_listen(st, 9093, 2, &t_ops, &app), 0);
	assert_int_equal(net_tcp_listen(st, 9093, 2, &t_ops, &app), -EADDRINUSE);
	for (uint16_t k = 0; k < 3; k++) {
		memset(&s, 0, sizeof(s));
		s.src = T_IP_B;
		s.dst = T_IP_A;
		s.sport = (uint16_t)(1000 + k);
		s.dport = 9093;
		s.seq = 100 * k;
		s.flags = RTE_TCP_SYN_FLAG;
		s.win = 1000;
		peer_send(&s);
	}
	assert_int_equal(cap.n, 2);
	assert_int_equal(net_stack_stats(st)->tcp_syn_dropped, 1);
	assert_int_equal(net_tcp_conn_count(st), 2);
	/* Complete the first: its slot in the backlog frees up. */
	t_parse(cap.m[0], &p);
	t_cap_clear(&cap);
	memset(&s, 0, sizeof(s));
	s.src = T_IP_B;
	s.dst = T_IP_A;
	s.sport = 1000;
	s.dport = 9093;
	s.seq = 1;
	s.ack = p.seq + 1;
	s.flags = RTE_TCP_ACK_FLAG;
	s.win = 1000;
	peer_send(&s);
	assert_int_equal(app.accepted, 1);
	s.sport = 1002;
	s.seq = 200;
	s.ack = 0;
	s.flags = RTE_TCP_SYN_FLAG;
	peer_send(&s);
	assert_int_equal(cap.n, 1);
	assert_int_equal(net_tcp_conn_count(st), 3);
	RTE_SET_USED(o);
}

/* The TCP frame the stack sent to dport (others, e.g. SYN-ACK
 * retransmissions of other connections, are ignored); all cleared. */
static void
take_to(uint16_t dport, struct t_pkt *p)
{
	bool found = false;

	for (unsigned i = 0; i < cap.n; i++) {
		struct t_pkt k;

		t_parse(cap.m[i], &k);
		if (k.is_tcp && k.dport == dport) {
			assert_false(found);
			assert_true(k.cksum_ok);
			*p = k;
			found = true;
		}
	}
	assert_true(found);
	t_cap_clear(&cap);
}

/* Refresh the stack's ARP entry for the peer. */
static void
teach_arp(void)
{
	struct rte_ether_addr zero = { { 0 } }, bcast;
	uint8_t b[128];
	struct rte_mbuf *m;
	uint32_t n;

	memset(&bcast, 0xff, sizeof(bcast));
	n = t_arp_bytes(b, RTE_ARP_OP_REQUEST, &mac_peer, T_IP_B, &zero, T_IP_A, &bcast);
	m = t_frame(b, n);
	net_stack_input(st, &m, 1, now);
	t_cap_clear(&cap);
}

/* A SYN from sport with MSS 1460 and, when full, SACK-permitted,
 * timestamps (TSval tsval) and window scale 7, to port. */
static void
cookie_syn(uint16_t port, uint16_t sport, uint32_t seq, bool full, uint32_t tsval)
{
	uint8_t o[20] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10 };
	uint32_t v = rte_cpu_to_be_32(tsval), z = 0;
	struct t_seg s;

	memcpy(o + 8, &v, 4);
	memcpy(o + 12, &z, 4);
	o[16] = 1;
	o[17] = 3;
	o[18] = 3;
	o[19] = 7;
	memset(&s, 0, sizeof(s));
	s.src = T_IP_B;
	s.dst = T_IP_A;
	s.sport = sport;
	s.dport = port;
	s.seq = seq;
	s.flags = RTE_TCP_SYN_FLAG;
	s.win = 65535;
	s.opts = o;
	s.optlen = full ? 20 : 4;
	peer_send(&s);
}

/* The handshake's ACK (with data when len > 0) for a SYN-ACK p. */
static void
cookie_ack(uint16_t port, uint16_t sport, uint32_t seq, const struct t_pkt *p, uint32_t ack,
	uint32_t tsval, const void *data, uint32_t len)
{
	uint8_t o[12];
	struct t_seg s;

	memset(&s, 0, sizeof(s));
	s.src = T_IP_B;
	s.dst = T_IP_A;
	s.sport = sport;
	s.dport = port;
	s.seq = seq;
	s.ack = ack;
	s.flags = RTE_TCP_ACK_FLAG | (len > 0 ? RTE_TCP_PSH_FLAG : 0);
	s.win = 512;
	if (p->ts_ok) {
		s.opts = o;
		s.optlen = ts_opt(o, tsval, p->tsval);
	}
	s.data = data;
	s.len = len;
	peer_send(&s);
}

/* Backlog 1 taken: the next SYN gets a cookie SYN-ACK and no table entry;
 * its ACK, carrying data, makes the connection with the options the SYN
 * asked for (carried in the TSval), the MSS from the cookie, and delivers
 * the data. */
static void
test_syncookie_handshake(void **state)
{
	struct net_tcp_info info;
	struct t_pkt p;

	assert_int_equal(net_tcp_listen(st, 9094, 1, &t_ops, &app), 0);
	cookie_syn(9094, 2000, 5000, true, 777);
	one_tcp(&p);	/* the normal SYN-ACK: backlog now full */
	assert_int_equal(net_tcp_conn_count(st), 1);
	cookie_syn(9094, 2001, 70000, true, 888);
	one_tcp(&p);
	assert_int_equal(p.flags, RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG);
	assert_int_equal(p.ack, 70001);
	assert_true(p.mss_ok && p.sackp && p.ts_ok && p.ws_ok);
	assert_int_equal(p.mss, 1460);
	assert_int_equal(p.tsecr, 888);
	assert_int_equal(p.tsval & 0x3f, 7 | 0x10);	/* wscale 7, SACK */
	assert_int_equal(net_tcp_conn_count(st), 1);
	assert_int_equal(net_stack_stats(st)->tcp_syncookies_sent, 1);
	assert_int_equal(net_stack_stats(st)->tcp_syn_dropped, 0);
	now += 30 * 1000 * 1000;	/* still valid half a minute later */
	teach_arp();
	cookie_ack(9094, 2001, 70001, &p, p.seq + 1, 889, "hello", 5);
	assert_int_equal(net_stack_stats(st)->tcp_syncookies_ok, 1);
	assert_int_equal(app.accepted, 1);
	assert_int_equal(net_tcp_conn_count(st), 2);
	assert_int_equal(app.rx_len, 5);
	assert_memory_equal(app.rx, "hello", 5);
	net_tcp_conn_info(app.conn, &info);
	assert_int_equal(info.state, NET_TCP_ESTABLISHED);
	assert_true(info.ts_ok && info.sack_ok && info.ws_ok);
	assert_int_equal(info.snd_wscale, 7);
	assert_int_equal(info.snd_wnd, 512u << 7);
	assert_int_equal(info.mss, 1460 - 12);
	assert_int_equal(info.rport, 2001);
	/* The data is acknowledged (delayed or not), and the connection
	 * answers like any other. */
	net_stack_poll(st, now + 50 * 1000);
	take_to(2001, &p);
	assert_int_equal(p.ack, 70006);
	assert_int_equal(net_tcp_send(app.conn, "world", 5), 5);
	net_stack_poll(st, now + 60 * 1000);
	take_to(2001, &p);
	assert_int_equal(p.len, 5);
	assert_memory_equal(t_payload(&p), "world", 5);
}

/* A SYN without timestamps gets a cookie SYN-ACK offering the MSS only. */
static void
test_syncookie_no_ts(void **state)
{
	struct net_tcp_info info;
	struct t_pkt p;

	assert_int_equal(net_tcp_listen(st, 9094, 1, &t_ops, &app), 0);
	cookie_syn(9094, 2000, 5000, false, 0);
	one_tcp(&p);
	cookie_syn(9094, 2001, 9000, false, 0);
	one_tcp(&p);
	assert_true(p.mss_ok);
	assert_false(p.sackp || p.ts_ok || p.ws_ok);
	cookie_ack(9094, 2001, 9001, &p, p.seq + 1, 0, NULL, 0);
	assert_int_equal(app.accepted, 1);
	net_tcp_conn_info(app.conn, &info);
	assert_false(info.ts_ok || info.sack_ok || info.ws_ok);
	assert_int_equal(info.mss, 1460);
	assert_int_equal(info.snd_wnd, 512);
}

/* Wrong cookie, wrong peer ISN, expired cookie: reset, counted, no entry. */
static void
test_syncookie_bad(void **state)
{
	struct t_pkt p, r;

	assert_int_equal(net_tcp_listen(st, 9094, 1, &t_ops, &app), 0);
	cookie_syn(9094, 2000, 5000, true, 777);
	one_tcp(&p);
	cookie_syn(9094, 2001, 70000, true, 888);
	one_tcp(&p);
	cookie_ack(9094, 2001, 70001, &p, p.seq + 2, 889, NULL, 0);
	one_tcp(&r);
	assert_true(r.flags & RTE_TCP_RST_FLAG);
	cookie_ack(9094, 2001, 70002, &p, p.seq + 1, 889, NULL, 0);
	one_tcp(&r);
	assert_true(r.flags & RTE_TCP_RST_FLAG);
	cookie_ack(9094, 2002, 70001, &p, p.seq + 1, 889, NULL, 0);	/* other port */
	one_tcp(&r);
	assert_true(r.flags & RTE_TCP_RST_FLAG);
	assert_int_equal(net_stack_stats(st)->tcp_syncookies_failed, 3);
	/* Two periods of 2^26 us later the cookie is too old. */
	now += 2 * (1ull << 26);
	teach_arp();
	cookie_ack(9094, 2001, 70001, &p, p.seq + 1, 889, NULL, 0);
	take_to(2001, &r);
	assert_true(r.flags & RTE_TCP_RST_FLAG);
	assert_int_equal(net_stack_stats(st)->tcp_syncookies_failed, 4);
	assert_int_equal(net_stack_stats(st)->tcp_syncookies_ok, 0);
	assert_int_equal(app.accepted, 0);
	assert_int_equal(net_tcp_conn_count(st), 1);
}

/* A bounded SYN flood (20,000 SYNs from distinct ports and ISNs in 1 s) on a
 * listener with backlog 16 and a cookie budget of 5,000 a second: the table
 * holds the backlog only, the budget caps the SYN-ACKs, the rest is dropped
 * and counted; then a client still completes a handshake by cookie. */
static void
test_syn_flood(void **state)
{
	const struct net_stats *ns;
	uint32_t synacks = 0;
	struct t_pkt p;

	teardown(state);
	{
		struct net_config c;

		t_config(&c, &cap, T_IP_A, 1);
		c.max_conns = 256;
		c.syncookie_limit = 5000;
		stack_new(&c);
	}
	assert_int_equal(net_tcp_listen(st, 9094, 16, &t_ops, &app), 0);
	for (uint32_t i = 0; i < 20000; i++) {
		cookie_syn(9094, (uint16_t)(1024 + i), i * 2654435761u, (i & 1) != 0, i);
		for (unsigned k = 0; k < cap.n; k++) {
			struct t_pkt q;

			/* SYN-ACKs to the flood, not retransmissions of the
			 * 16 in the backlog. */
			t_parse(cap.m[k], &q);
			if (q.is_tcp && q.dport == 1024 + i)
				synacks++;
		}
		t_cap_clear(&cap);
		if (i % 1000 == 999)
			now += 50 * 1000;	/* 1 s of flood in all */
	}
	ns = net_stack_stats(st);
	assert_int_equal(net_tcp_conn_count(st), 16);
	assert_int_equal(ns->tcp_syncookies_sent + 16, synacks);
	/* Two budget seconds at most. */
	assert_true(ns->tcp_syncookies_sent <= 2 * 5000);
	assert_int_equal(ns->tcp_syncookies_limited, 20000 - synacks);
	assert_int_equal(ns->tcp_syn_dropped, ns->tcp_syncookies_limited);
	assert_true(ns->tcp_syncookies_limited > 0);
	now += 1000 * 1000;	/* new budget */
	cookie_syn(9094, 60000, 123456, true, 5);
	take_to(60000, &p);
	cookie_ack(9094, 60000, 123457, &p, p.seq + 1, 6, NULL, 0);
	assert_int_equal(app.accepted, 1);
	assert_int_equal(net_tcp_conn_count(st), 17);
}

static void
test_accept_refused(void **state)
{
	struct t_seg s;
	struct t_pkt p;
	uint8_t o[12];

	app.refuse = 1;
	peer_syn(PEER_PORT, 1000);
	one_tcp(&p);
	p_seq = 1001;
	s_seq = p.seq + 1;
	seg_init(&s, o, RTE_TCP_ACK_FLAG);
	peer_send(&s);
	one_tcp(&p);
	assert_true(p.flags & RTE_TCP_RST_FLAG);
	assert_int_equal(p.seq, s_seq);
	assert_int_equal(app.accepted, 0);
	assert_int_equal(app.closes, 0);	/* never the user's */
	assert_int_equal(net_tcp_conn_count(st), 0);
}

static void
test_syn_ack_retransmit_then_give_up(void **state)
{
	struct t_pkt p;
	uint32_t iss;

	peer_syn(PEER_PORT, 1000);
	one_tcp(&p);
	iss = p.seq;
	/* The peer's SYN again (its SYN-ACK got lost): SYN-ACK again. */
	peer_syn(PEER_PORT, 1000);
	one_tcp(&p);
	assert_int_equal(p.flags, RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG);
	assert_int_equal(p.seq, iss);
	/* Silence: retransmissions at 1, 2, 4, 8, 16 s, then gone. */
	for (int k = 0; k < 70; k++) {
		now += 1000 * 1000;
		net_stack_poll(st, now);
	}
	assert_int_equal(net_stack_stats(st)->tcp_rto_expiries, 6);
	assert_int_equal(cap.n, 5);
	for (unsigned k = 0; k < cap.n; k++) {
		t_parse(cap.m[k], &p);
		assert_int_equal(p.flags, RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG);
		assert_int_equal(p.seq, iss);
	}
	t_cap_clear(&cap);
	assert_int_equal(net_tcp_conn_count(st), 0);
	assert_int_equal(app.closes, 0);
}

static void
test_fin_with_data_and_time_wait(void **state)
{
	struct t_seg s;
	struct t_pkt p;
	uint8_t o[12];

	establish();
	/* Peer sends its last bytes with FIN: eof after the data. */
	seg_init(&s, o, RTE_TCP_ACK_FLAG | RTE_TCP_FIN_FLAG);
	s.data = "bye";
	s.len = 3;
	peer_send(&s);
	one_tcp(&p);
	assert_int_equal(p.ack, p_seq + 4);
	assert_int_equal(app.rx_len, 3);
	assert_int_equal(app.eofs, 1);
	assert_int_equal(net_tcp_conn_state(app.conn), NET_TCP_CLOSE_WAIT);
	p_seq += 4;
	/* We close: FIN; the peer ACKs: closed. */
	assert_int_equal(net_tcp_close(app.conn), 0);
	net_stack_poll(st, now);
	one_tcp(&p);
	assert_int_equal(p.flags, RTE_TCP_ACK_FLAG | RTE_TCP_FIN_FLAG);
	assert_int_equal(p.seq, s_seq);
	s_seq++;
	p_ts++;
	seg_init(&s, o, RTE_TCP_ACK_FLAG);
	peer_send(&s);
	assert_int_equal(app.closes, 1);
	assert_int_equal(app.close_status, 0);
	net_stack_poll(st, now);
	assert_int_equal(net_tcp_conn_count(st), 0);
}

static void
test_active_close_time_wait(void **state)
{
	struct t_seg s;
	struct t_pkt p;
	uint8_t o[12];

	establish();
	assert_int_equal(net_tcp_close(app.conn), 0);
	net_stack_poll(st, now);
	one_tcp(&p);
	assert_true(p.flags & RTE_TCP_FIN_FLAG);
	s_seq++;
	/* The peer ACKs and sends its FIN in one segment. */
	p_ts++;
	seg_init(&s, o, RTE_TCP_ACK_FLAG | RTE_TCP_FIN_FLAG);
	peer_send(&s);
	one_tcp(&p);
	assert_int_equal(p.ack, p_seq + 1);
	assert_int_equal(app.closes, 1);
	assert_int_equal(net_tcp_conn_count(st), 1);	/* TIME-WAIT */
	/* The peer's FIN again (our ACK lost): ACKed again in TIME-WAIT. */
	p_ts++;
	seg_init(&s, o, RTE_TCP_ACK_FLAG | RTE_TCP_FIN_FLAG);
	peer_send(&s);
	net_stack_poll(st, now);
	one_tcp(&p);
	assert_int_equal(p.ack, p_seq + 1);
	/* 2 MSL later the entry is gone. */
	now += 2 * 1000 * 1000 + 1;
	net_stack_poll(st, now);
	assert_int_equal(net_tcp_conn_count(st), 0);
	assert_int_equal(app.closes, 1);
}

static void
test_malformed_tcp(void **state)
{
	struct t_seg s;
	uint8_t b[256], o[8] = { 2, 40, 1, 1, 3, 0, 0, 0 };	/* bad option length */
	const struct net_stats *stats = net_stack_stats(st);
	struct rte_tcp_hdr *th;
	uint32_t n;

	memset(&s, 0, sizeof(s));
	s.src = T_IP_B;
	s.dst = T_IP_A;
	s.sport = PEER_PORT;
	s.dport = PORT;
	s.seq = 1;
	s.flags = RTE_TCP_SYN_FLAG;
	s.opts = o;
	s.optlen = 8;
	/* Options are ignored from the malformed one on: still a SYN. */
	peer_send(&s);
	assert_int_equal(cap.n, 1);
	t_cap_clear(&cap);
	/* Data offset beyond the segment. */
	n = t_tcp_bytes(b, &s, &mac_us, &mac_peer);
	th = (struct rte_tcp_hdr *)(b + 34);
	th->data_off = 0xf0;
	{
		struct rte_mbuf *m = t_frame(b, n);

		net_stack_input(st, &m, 1, now);
	}
	/* Data offset below 5 words. */
	th->data_off = 0x40;
	{
		struct rte_mbuf *m = t_frame(b, n);

		net_stack_input(st, &m, 1, now);
	}
	assert_int_equal(stats->rx_tcp_bad, 2);
	assert_int_equal(stats->rx_tcp_cksum_bad, 0);	/* malformed, not checksums */
	assert_int_equal(cap.n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_closed_port_rst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_passive_open_and_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlap_and_multiseg_zero_copy, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_rst_challenge_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_challenge_ack_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_acks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paws, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checksum_offload_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_checksum_offload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syn_backlog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syncookie_handshake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syncookie_no_ts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syncookie_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syn_flood, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syn_ack_retransmit_then_give_up, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_fin_with_data_and_time_wait, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_active_close_time_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_tcp, setup, teardown),
	};

	if (t_eal_init() != 0) {
		fprintf(stderr, "test_net_tcp_wire: EAL did not start; skipping\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
