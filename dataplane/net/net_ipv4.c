/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_ipv4: IPv4 input validation (RFC 791, RFC 1122 section 3.2.1), output
 * header filling and routing to the next hop, and ICMP echo (RFC 792).
 *
 * Input checks, in order, each counted when it fails: the header is in the
 * first mbuf segment; version 4; IHL >= 5; total length >= header length and
 * <= the frame's bytes (Ethernet padding beyond total length is trimmed);
 * header checksum (skipped when the mbuf says RTE_MBUF_F_RX_IP_CKSUM_GOOD);
 * TTL > 0; source not broadcast/multicast/zero; destination our address.
 *
 * Fragments (MF set or a non-zero offset) are dropped and counted in
 * rx_ip_fragments: the stack does no reassembly. Its TCP peers use PMTU-sized
 * segments with DF set, as every mainstream TCP does, so a fragment is an
 * anomaly (or an attack); see docs/net-stack.md. On send, IPv4 packets carry
 * DF and are never fragmented: TCP segments are sized to the MTU.
 *
 * Protocols other than ICMP and TCP are dropped silently (counted); no ICMP
 * unreachables are generated in this first cut.
 */
#include "net.h"

#include <rte_byteorder.h>
#include <rte_icmp.h>
#include <rte_ip.h>

#include "net_internal.h"

/* Keep the first keep bytes of chain m, freeing trailing segments. */
void
net_mbuf_trim_to(struct rte_mbuf *m, uint32_t keep)
{
	struct rte_mbuf *seg = m;
	uint32_t acc = 0;

	if (m->pkt_len <= keep)
		return;
	m->pkt_len = keep;
	for (;;) {
		if (acc + seg->data_len >= keep || seg->next == NULL) {
			struct rte_mbuf *rest = seg->next;
			uint16_t nsegs = 1;

			seg->data_len = (uint16_t)(keep - acc);
			seg->next = NULL;
			if (rest != NULL)
				rte_pktmbuf_free(rest);
			for (struct rte_mbuf *s = m; s != seg; s = s->next)
				nsegs++;
			m->nb_segs = nsegs;
			return;
		}
		acc += seg->data_len;
		seg = seg->next;
	}
}

static void
icmp_input(struct net_stack *st, struct rte_mbuf *m, struct rte_ipv4_hdr *ip, uint32_t l4_off,
	uint32_t l4_len)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_icmp_hdr *icmp;
	uint16_t sum;
	uint32_t tmp;

	st->stats.rx_icmp++;
	if (l4_len < sizeof(*icmp) || rte_pktmbuf_data_len(m) < l4_off + sizeof(*icmp) ||
			net_raw_cksum_mbuf(m, l4_off, l4_len, &sum) != 0 || sum != 0xffff) {
		st->stats.rx_icmp_bad++;
		goto drop;
	}
	icmp = rte_pktmbuf_mtod_offset(m, struct rte_icmp_hdr *, l4_off);
	if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || icmp->icmp_code != 0)
		goto drop;	/* other ICMP (errors for TCP included) are ignored for now */
	/* Reply in place: the frame is ours and the headers are contiguous. */
	icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	icmp->icmp_cksum = 0;
	if (net_raw_cksum_mbuf(m, l4_off, l4_len, &sum) != 0)
		goto drop;
	icmp->icmp_cksum = (uint16_t)~sum;
	if (icmp->icmp_cksum == 0)
		icmp->icmp_cksum = 0xffff;
	tmp = ip->src_addr;
	ip->src_addr = ip->dst_addr;
	ip->dst_addr = tmp;
	ip->time_to_live = 64;
	ip->fragment_offset = 0;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	/* Answer the MAC the request came from: no ARP lookup needed. */
	eth->dst_addr = eth->src_addr;
	eth->src_addr = st->cfg.mac;
	m->ol_flags = 0;
	st->stats.tx_icmp_echo_reply++;
	net_tx_enqueue(st, m);
	return;
drop:
	rte_pktmbuf_free(m);
}

void
net_ipv4_input(struct net_stack *st, struct rte_mbuf *m)
{
	struct rte_ipv4_hdr *ip;
	uint32_t hlen, tlen, src;
	uint16_t frag;

	st->stats.rx_ipv4++;
	if (rte_pktmbuf_data_len(m) < NET_ETH_HLEN + NET_IP_HLEN) {
		st->stats.rx_bad_ipv4++;
		goto drop;
	}
	ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, NET_ETH_HLEN);
	hlen = (uint32_t)(ip->version_ihl & 0x0f) * 4;
	tlen = rte_be_to_cpu_16(ip->total_length);
	if ((ip->version_ihl >> 4) != 4 || hlen < NET_IP_HLEN) {
		st->stats.rx_bad_ipv4++;
		goto drop;
	}
	if (rte_pktmbuf_data_len(m) < NET_ETH_HLEN + hlen) {
		/* Options spill out of the first segment: not supported. */
		st->stats.rx_multiseg_hdr++;
		goto drop;
	}
	if (tlen < hlen || tlen > rte_pktmbuf_pkt_len(m) - NET_ETH_HLEN) {
		st->stats.rx_bad_ipv4++;
		goto drop;
	}
	if ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) != RTE_MBUF_F_RX_IP_CKSUM_GOOD) {
		/* BAD, UNKNOWN and NONE: check in software (a header is small). */
		if (rte_raw_cksum(ip, hlen) != 0xffff) {
			st->stats.rx_bad_ipv4++;
			st->stats.rx_ip_cksum_bad++;
			goto drop;
		}
	}
	if (ip->time_to_live == 0) {
		st->stats.rx_bad_ipv4++;
		goto drop;
	}
	src = rte_be_to_cpu_32(ip->src_addr);
	if (src == 0 || src == 0xffffffff || (src >> 28) == 0xe) {
		st->stats.rx_bad_ipv4++;
		goto drop;
	}
	if (ip->dst_addr != st->cfg.ipv4_addr) {
		st->stats.rx_ip_not_for_us++;
		goto drop;
	}
	frag = rte_be_to_cpu_16(ip->fragment_offset);
	if ((frag & RTE_IPV4_HDR_MF_FLAG) != 0 || (frag & RTE_IPV4_HDR_OFFSET_MASK) != 0) {
		st->stats.rx_ip_fragments++;
		goto drop;
	}
	/* Ethernet pads short frames: keep exactly the IP packet. */
	net_mbuf_trim_to(m, NET_ETH_HLEN + tlen);

	switch (ip->next_proto_id) {
	case IPPROTO_TCP:
		net_tcp_input(st, m, ip, NET_ETH_HLEN + hlen, tlen - hlen);
		return;
	case IPPROTO_ICMP:
		icmp_input(st, m, ip, NET_ETH_HLEN + hlen, tlen - hlen);
		return;
	default:
		st->stats.rx_unknown_proto++;
		goto drop;
	}
drop:
	rte_pktmbuf_free(m);
}

void
net_ipv4_fill(struct net_stack *st, struct rte_ipv4_hdr *ip, uint32_t dst, uint8_t proto,
	uint32_t total_len)
{
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = 0;
	ip->total_length = rte_cpu_to_be_16((uint16_t)total_len);
	ip->packet_id = rte_cpu_to_be_16(st->ip_id++);
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = 64;
	ip->next_proto_id = proto;
	ip->hdr_checksum = 0;
	ip->src_addr = st->cfg.ipv4_addr;
	ip->dst_addr = dst;
}

void
net_ipv4_output(struct net_stack *st, struct rte_mbuf *m, uint32_t dst)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	uint32_t nexthop = dst;

	eth->src_addr = st->cfg.mac;
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	if (((dst ^ st->cfg.ipv4_addr) & st->cfg.ipv4_mask) != 0 && st->cfg.ipv4_gateway != 0)
		nexthop = st->cfg.ipv4_gateway;
	net_arp_output(st, nexthop, m);
}
