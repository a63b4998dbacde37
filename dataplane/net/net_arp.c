/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_arp: ARP for IPv4 over Ethernet (RFC 826), with a per-stack cache.
 *
 * The cache is a fixed open-addressing table (linear probing, no deletion
 * tombstones: entries are only replaced, never removed, so probing chains
 * stay intact). An entry is RESOLVED for arp_timeout_us after the last ARP
 * packet from that address; after that it is stale: the next frame to the
 * address triggers a new request and waits. While unresolved, one frame per
 * address is held (the newest; an older one is dropped and counted), as
 * RFC 1122 section 2.3.2.2 asks for at least one. Requests are rate limited
 * per address (arp_retry_us). Following RFC 826's merge rule, any ARP packet
 * addressed to us updates the sender's entry; requests for our address are
 * answered. net_stack_start sends a gratuitous ARP request (RFC 5227 section
 * 3) so neighbours refresh their caches.
 */
#include "net.h"

#include <errno.h>
#include <string.h>

#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_jhash.h>
#include <rte_malloc.h>

#include "net_internal.h"

int
net_arp_init(struct net_stack *st)
{
	st->arp = rte_zmalloc("net_arp", sizeof(*st->arp) * st->cfg.arp_entries,
		RTE_CACHE_LINE_SIZE);
	if (st->arp == NULL)
		return -ENOMEM;
	st->arp_mask = st->cfg.arp_entries - 1;
	return 0;
}

void
net_arp_fini(struct net_stack *st)
{
	if (st->arp == NULL)
		return;
	for (uint32_t i = 0; i <= st->arp_mask; i++)
		rte_pktmbuf_free(st->arp[i].held);
	rte_free(st->arp);
	st->arp = NULL;
}

/* Find the entry for ip, or with create the slot it should take: a free
 * slot, else the probe window's oldest entry (which is evicted). */
static struct net_arp_entry *
arp_find(struct net_stack *st, uint32_t ip, bool create)
{
	uint32_t h = rte_jhash_1word(ip, 0x5a17) & st->arp_mask;
	struct net_arp_entry *victim = NULL;

	for (uint32_t i = 0; i < 8 && i <= st->arp_mask; i++) {
		struct net_arp_entry *e = &st->arp[(h + i) & st->arp_mask];

		if (e->state != NET_ARP_FREE && e->ip == ip)
			return e;
		if (e->state == NET_ARP_FREE) {
			if (!create)
				return NULL;
			/* Entries are replaced but never freed, so a free slot
			 * ends the probe chain: ip is not further on. */
			victim = e;
			break;
		}
		if (victim == NULL || e->expires_us < victim->expires_us)
			victim = e;
	}
	if (!create || victim == NULL)
		return NULL;
	rte_pktmbuf_free(victim->held);
	if (victim->held != NULL)
		st->stats.arp_held_dropped++;
	memset(victim, 0, sizeof(*victim));
	victim->ip = ip;
	victim->state = NET_ARP_INCOMPLETE;
	return victim;
}

int
net_arp_lookup(struct net_stack *st, uint32_t ip, struct rte_ether_addr *mac)
{
	struct net_arp_entry *e = arp_find(st, ip, false);

	if (e == NULL || e->state != NET_ARP_RESOLVED || e->expires_us <= st->now_us)
		return -ENOENT;
	*mac = e->mac;
	return 0;
}

/* Build and queue an ARP packet. */
static void
arp_send(struct net_stack *st, uint16_t op, const struct rte_ether_addr *eth_dst,
	const struct rte_ether_addr *tha, uint32_t tip)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(st->cfg.pool);
	struct rte_ether_hdr *eth;
	struct rte_arp_hdr *arp;

	if (m == NULL) {
		st->stats.tx_no_mbuf++;
		return;
	}
	eth = (struct rte_ether_hdr *)rte_pktmbuf_append(m, NET_ETH_HLEN + sizeof(*arp));
	if (eth == NULL) {
		rte_pktmbuf_free(m);
		return;
	}
	eth->dst_addr = *eth_dst;
	eth->src_addr = st->cfg.mac;
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	arp = (struct rte_arp_hdr *)(eth + 1);
	arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = 4;
	arp->arp_opcode = rte_cpu_to_be_16(op);
	arp->arp_data.arp_sha = st->cfg.mac;
	arp->arp_data.arp_sip = st->cfg.ipv4_addr;
	arp->arp_data.arp_tha = *tha;
	arp->arp_data.arp_tip = tip;
	if (op == RTE_ARP_OP_REQUEST)
		st->stats.arp_requests_tx++;
	else
		st->stats.arp_replies_tx++;
	net_tx_enqueue(st, m);
}

static void
arp_request(struct net_stack *st, struct net_arp_entry *e)
{
	static const struct rte_ether_addr zero;
	struct rte_ether_addr bcast;

	memset(&bcast, 0xff, sizeof(bcast));
	e->last_req_us = st->now_us;
	arp_send(st, RTE_ARP_OP_REQUEST, &bcast, &zero, e->ip);
}

void
net_arp_send_gratuitous(struct net_stack *st)
{
	static const struct rte_ether_addr zero;
	struct rte_ether_addr bcast;

	/* RFC 5227 section 3: an ARP request with sender and target IP both
	 * ours, target hardware address zero, broadcast. */
	memset(&bcast, 0xff, sizeof(bcast));
	arp_send(st, RTE_ARP_OP_REQUEST, &bcast, &zero, st->cfg.ipv4_addr);
}

void
net_arp_input(struct net_stack *st, struct rte_mbuf *m)
{
	const struct rte_arp_hdr *arp;
	struct net_arp_entry *e;
	uint32_t sip, tip;
	uint16_t op;
	bool for_us;

	st->stats.rx_arp++;
	if (rte_pktmbuf_data_len(m) < NET_ETH_HLEN + sizeof(*arp)) {
		st->stats.rx_bad_arp++;
		goto out;
	}
	arp = rte_pktmbuf_mtod_offset(m, const struct rte_arp_hdr *, NET_ETH_HLEN);
	op = rte_be_to_cpu_16(arp->arp_opcode);
	if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
			arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
			arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != 4 ||
			(op != RTE_ARP_OP_REQUEST && op != RTE_ARP_OP_REPLY)) {
		st->stats.rx_bad_arp++;
		goto out;
	}
	sip = arp->arp_data.arp_sip;
	tip = arp->arp_data.arp_tip;
	if (!rte_is_unicast_ether_addr(&arp->arp_data.arp_sha) || sip == 0 ||
			sip == st->cfg.ipv4_addr || sip == 0xffffffff) {
		/* Probes (sip 0) teach nothing; someone claiming our address is
		 * a conflict we do not resolve here; both are counted. */
		st->stats.rx_bad_arp++;
		goto out;
	}
	for_us = tip == st->cfg.ipv4_addr;
	/* RFC 826 merge: update an existing entry from any ARP packet (this
	 * covers gratuitous ARP from neighbours); create one only when the
	 * packet is addressed to us. */
	e = arp_find(st, sip, for_us);
	if (e != NULL) {
		e->mac = arp->arp_data.arp_sha;
		e->state = NET_ARP_RESOLVED;
		e->expires_us = st->now_us + st->cfg.arp_timeout_us;
		if (e->held != NULL) {
			struct rte_mbuf *h = e->held;
			struct rte_ether_hdr *eth = rte_pktmbuf_mtod(h, struct rte_ether_hdr *);

			e->held = NULL;
			eth->dst_addr = e->mac;
			net_tx_enqueue(st, h);
		}
	}
	if (for_us && op == RTE_ARP_OP_REQUEST)
		arp_send(st, RTE_ARP_OP_REPLY, &arp->arp_data.arp_sha, &arp->arp_data.arp_sha,
			sip);
out:
	rte_pktmbuf_free(m);
}

/*
 * Send a frame whose Ethernet header is in place except the destination
 * address, toward nexthop (network order). Consumes m.
 */
void
net_arp_output(struct net_stack *st, uint32_t nexthop, struct rte_mbuf *m)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct net_arp_entry *e = arp_find(st, nexthop, true);

	if (e == NULL) {
		rte_pktmbuf_free(m);
		st->stats.arp_held_dropped++;
		return;
	}
	if (e->state == NET_ARP_RESOLVED && e->expires_us > st->now_us) {
		eth->dst_addr = e->mac;
		net_tx_enqueue(st, m);
		return;
	}
	if (e->held != NULL) {
		rte_pktmbuf_free(e->held);
		st->stats.arp_held_dropped++;
	}
	e->held = m;
	if (e->state != NET_ARP_INCOMPLETE || e->last_req_us == 0 ||
			st->now_us - e->last_req_us >= st->cfg.arp_retry_us) {
		e->state = NET_ARP_INCOMPLETE;
		arp_request(st, e);
	}
}

/* Drop frames held for addresses that did not answer for 3 retry periods. */
void
net_arp_timers(struct net_stack *st)
{
	/* A scan of the table at most every 100 ms, not on every poll. */
	if (st->now_us < st->arp_next_scan_us)
		return;
	st->arp_next_scan_us = st->now_us + 100 * 1000;
	for (uint32_t i = 0; i <= st->arp_mask; i++) {
		struct net_arp_entry *e = &st->arp[i];

		if (e->held != NULL && e->state == NET_ARP_INCOMPLETE &&
				st->now_us - e->last_req_us >= 3 * st->cfg.arp_retry_us) {
			rte_pktmbuf_free(e->held);
			e->held = NULL;
			st->stats.arp_held_dropped++;
		}
	}
}
