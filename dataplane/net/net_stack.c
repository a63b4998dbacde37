/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_stack: creation of a stack instance, Ethernet demultiplexing of
 * received frames, the output batch and the checksum helper shared by the
 * protocols. ARP is in net_arp.c, IPv4 and ICMP in net_ipv4.c, TCP in
 * net_tcp.c.
 */
#include "net.h"

#include <errno.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_malloc.h>

#include "net_internal.h"

static uint32_t
pow2_at_least(uint32_t v)
{
	uint32_t p = 1;

	while (p < v && p < (1u << 30))
		p <<= 1;
	return p;
}

static int
config_fill(struct net_config *c)
{
	if (c->ipv4_addr == 0 || c->pool == NULL || c->tx_fn == NULL)
		return -EINVAL;
	if (c->ipv4_mask == 0)
		c->ipv4_mask = rte_cpu_to_be_32(0xffffff00);
	if (c->mtu == 0)
		c->mtu = 1500;
	if (c->mtu < 576 || c->mtu > 9000)
		return -EINVAL;
	/* A TSO frame's IPv4 total length must fit 16 bits with the largest
	 * headers. */
	if (c->tso_max > NET_TSO_MAX)
		c->tso_max = NET_TSO_MAX;
	/* A whole frame must fit one mbuf of the pool (we build single-segment
	 * headers and attach payload), so the data room must hold the headers. */
	if (rte_pktmbuf_data_room_size(c->pool) < RTE_PKTMBUF_HEADROOM + NET_HDRS_MAX)
		return -EINVAL;
	if (c->pool_reserve == 0)
		c->pool_reserve = c->pool->size / 8;
	if (c->arp_entries == 0)
		c->arp_entries = 256;
	if (c->arp_timeout_us == 0)
		c->arp_timeout_us = 60ull * 1000 * 1000;
	if (c->arp_retry_us == 0)
		c->arp_retry_us = 1000 * 1000;
	if (c->max_conns == 0)
		c->max_conns = 1024;
	if (c->max_conns > (1u << 24))
		return -EINVAL;
	if (c->max_listeners == 0)
		c->max_listeners = 8;
	if (c->max_listeners >= NET_NO_LISTENER)
		return -EINVAL;
	if (c->sndbuf_bytes == 0)
		c->sndbuf_bytes = 256 * 1024;
	if (c->rcvbuf_bytes == 0)
		c->rcvbuf_bytes = 256 * 1024;
	if (c->rcvbuf_bytes > (1u << 30) || c->sndbuf_bytes > (1u << 30))
		return -EINVAL;
	if (c->ooo_max_segs == 0) {
		/* A receive window's worth of MSS-sized segments. */
		uint32_t mss = (uint32_t)(c->mtu - NET_IP_HLEN - NET_TCP_HLEN);
		uint32_t segs = c->rcvbuf_bytes / mss + 1;

		c->ooo_max_segs = segs < 64 ? 64 : segs;
	}
	if (c->ooo_max_segs > 255)
		c->ooo_max_segs = 255;
	if (c->rto_min_us == 0)
		c->rto_min_us = 200 * 1000;
	if (c->rto_max_us == 0)
		c->rto_max_us = 60ull * 1000 * 1000;
	if (c->rto_initial_us == 0)
		c->rto_initial_us = 1000 * 1000;
	if (c->rto_max_us > UINT32_MAX / 2 || c->rto_initial_us > c->rto_max_us ||
			c->rto_min_us > c->rto_max_us)
		return -EINVAL;
	if (c->delack_us == 0)
		c->delack_us = 40 * 1000;
	if (c->time_wait_us == 0)
		c->time_wait_us = 60ull * 1000 * 1000;
	if (c->max_retries == 0)
		c->max_retries = 12;
	if (c->syn_retries == 0)
		c->syn_retries = 5;
	if (c->keepalive_intvl_us == 0)
		c->keepalive_intvl_us = 75ull * 1000 * 1000;
	if (c->keepalive_probes == 0)
		c->keepalive_probes = 9;
	if (c->challenge_ack_limit == 0)
		c->challenge_ack_limit = 1000;
	if (c->syncookie_limit == 0)
		c->syncookie_limit = 10000;
	if (c->ephemeral_lo == 0)
		c->ephemeral_lo = 32768;
	if (c->ephemeral_hi == 0)
		c->ephemeral_hi = 60999;
	if (c->ephemeral_hi < c->ephemeral_lo)
		return -EINVAL;
	if (c->rss_key != NULL && (c->rss_reta_size == 0 || c->rss_nb_queues == 0 ||
			c->rss_queue >= c->rss_nb_queues))
		return -EINVAL;
	return 0;
}

struct net_stack *
net_stack_create(const struct net_config *cfg)
{
	struct net_stack *st;
	int rc;

	if (cfg == NULL) {
		errno = EINVAL;
		return NULL;
	}
	st = rte_zmalloc("net_stack", sizeof(*st), RTE_CACHE_LINE_SIZE);
	if (st == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	st->cfg = *cfg;
	rc = config_fill(&st->cfg);
	if (rc != 0)
		goto fail;
	if (cfg->rss_key != NULL) {
		memcpy(st->rss_key, cfg->rss_key, sizeof(st->rss_key));
		st->cfg.rss_key = st->rss_key;
	}
	st->cfg.arp_entries = pow2_at_least(st->cfg.arp_entries);
	rc = net_arp_init(st);
	if (rc != 0)
		goto fail;
	rc = net_tcp_init(st);
	if (rc != 0)
		goto fail;
	return st;
fail:
	net_stack_free(st);
	errno = -rc;
	return NULL;
}

void
net_stack_free(struct net_stack *st)
{
	if (st == NULL)
		return;
	net_tcp_fini(st);
	net_arp_fini(st);
	for (uint16_t i = 0; i < st->tx_n; i++)
		rte_pktmbuf_free(st->tx[i]);
	rte_free(st);
}

void
net_stack_start(struct net_stack *st, uint64_t now_us)
{
	st->now_us = now_us;
	net_arp_send_gratuitous(st);
	net_tx_flush(st);
}

const struct net_stats *
net_stack_stats(const struct net_stack *st)
{
	return &st->stats;
}

void
net_tx_flush(struct net_stack *st)
{
	uint32_t len[NET_TX_BATCH];
	uint16_t segs[NET_TX_BATCH];
	uint16_t sent;

	if (st->tx_n == 0)
		return;
	/* Lengths first: what the device takes may be freed before it returns.
	 * A TSO frame counts as the frames it makes on the wire: its segments,
	 * each with a copy of the headers. */
	for (uint16_t i = 0; i < st->tx_n; i++) {
		const struct rte_mbuf *m = st->tx[i];

		len[i] = rte_pktmbuf_pkt_len(m);
		segs[i] = 1;
		if ((m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) && m->tso_segsz != 0) {
			uint32_t hdr = (uint32_t)(m->l2_len + m->l3_len + m->l4_len);
			uint32_t n = (len[i] - hdr + m->tso_segsz - 1u) / m->tso_segsz;

			segs[i] = (uint16_t)n;
			len[i] += (n - 1u) * hdr;
		}
	}
	sent = st->cfg.tx_fn(st->cfg.tx_arg, st->tx, st->tx_n);
	if (sent > st->tx_n)
		sent = st->tx_n;
	for (uint16_t i = 0; i < sent; i++) {
		st->stats.tx_frames += segs[i];
		st->stats.tx_bytes += len[i];
		if (segs[i] > 1) {
			st->stats.tcp_tso_frames++;
			st->stats.tcp_tso_segments += segs[i];
		}
	}
	/* The device is full: keep the rest, in order, for the next flush
	 * (TCP stops adding data segments meanwhile). */
	if (sent > 0 && sent < st->tx_n)
		memmove(&st->tx[0], &st->tx[sent], (size_t)(st->tx_n - sent) * sizeof(st->tx[0]));
	st->tx_n = (uint16_t)(st->tx_n - sent);
	if (st->tx_n > 0)
		st->stats.tx_full++;
}

void
net_tx_enqueue(struct net_stack *st, struct rte_mbuf *m)
{
	if (st->tx_n == NET_TX_BATCH)
		net_tx_flush(st);
	if (st->tx_n == NET_TX_BATCH) {
		/* Still full: a control frame (ACK, RST, ARP) is dropped. */
		rte_pktmbuf_free(m);
		st->stats.tx_dropped++;
		return;
	}
	st->tx[st->tx_n++] = m;
}

/*
 * The ones' complement sum (not complemented) of len bytes of m from off,
 * over any number of segments. DPDK 22.11's rte_raw_cksum_mbuf truncates a
 * segment's 32-bit partial sum to 16 bits before byte-swapping it when the
 * bytes before that segment are odd in number, so a chain split at an odd
 * offset (a response header copied, then record batches attached as an
 * external buffer) got a wrong checksum about half the time: each segment's
 * sum is folded to 16 bits here before the swap (RFC 1071 2(B)).
 */
/*
 * The folded 16-bit ones' complement sum of @len bytes, equal to DPDK's
 * __rte_raw_cksum_reduce(__rte_raw_cksum(p, len, 0)) but 8 bytes per step:
 * little-endian 32-bit words summed into 64-bit accumulators are the 16-bit
 * words' sum modulo 0xffff (65536 = 1 there), and an odd last byte counts
 * as the first byte of a word, as DPDK counts it. Software checksums of
 * every segment were the largest cost of a memif sender (DPDK's loop takes
 * 2 bytes per step).
 */
static uint32_t
net_cksum_fold_sum(const uint8_t *p, uint32_t len)
{
	uint64_t a = 0, b = 0;
	uint32_t w0, w1;
	uint16_t h;

	while (len >= 16) {
		memcpy(&w0, p, 4);
		memcpy(&w1, p + 4, 4);
		a += w0;
		b += w1;
		memcpy(&w0, p + 8, 4);
		memcpy(&w1, p + 12, 4);
		a += w0;
		b += w1;
		p += 16;
		len -= 16;
	}
	while (len >= 4) {
		memcpy(&w0, p, 4);
		a += w0;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		memcpy(&h, p, 2);
		a += h;
		p += 2;
		len -= 2;
	}
	if (len == 1) {
		h = 0;
		memcpy(&h, p, 1);
		a += h;
	}
	a += b;
	while (a >> 16)
		a = (a & 0xffff) + (a >> 16);
	return (uint32_t)a;
}

int
net_raw_cksum_mbuf(const struct rte_mbuf *m, uint32_t off, uint32_t len, uint16_t *cksum)
{
	const struct rte_mbuf *seg = m;
	uint64_t sum = 0;
	uint32_t done = 0;

	if (off + len < off || off + len > rte_pktmbuf_pkt_len(m))
		return -1;
	while (seg != NULL && off >= seg->data_len) {
		off -= seg->data_len;
		seg = seg->next;
	}
	while (done < len) {
		if (seg == NULL)
			return -1;
		uint32_t n = RTE_MIN((uint32_t)seg->data_len - off, len - done);
		uint32_t s = net_cksum_fold_sum(rte_pktmbuf_mtod_offset(seg, const uint8_t *, off),
			n);

		if (done & 1)
			s = rte_bswap16((uint16_t)s);
		sum += s;
		done += n;
		off = 0;
		seg = seg->next;
	}
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	*cksum = (uint16_t)sum;
	return 0;
}

/*
 * Internet checksum of the IPv4 pseudo-header plus l4_len bytes of m from
 * l4_off, over any number of segments. Returns the value to store in the
 * header (complemented), or 0xffff-complement semantics as the caller needs:
 * a packet whose stored checksum is right sums to 0 here.
 */
uint16_t
net_ipv4_cksum_mbuf(const struct rte_mbuf *m, uint32_t l4_off, uint32_t l4_len,
	const struct rte_ipv4_hdr *ip)
{
	struct {
		uint32_t src, dst;
		uint8_t zero, proto;
		uint16_t len;
	} __rte_packed ph = {
		.src = ip->src_addr,
		.dst = ip->dst_addr,
		.zero = 0,
		.proto = ip->next_proto_id,
		.len = rte_cpu_to_be_16((uint16_t)l4_len),
	};
	uint16_t raw = 0;
	uint32_t sum;

	if (net_raw_cksum_mbuf(m, l4_off, l4_len, &raw) != 0)
		return 0xffff;	/* bad range: a value that never verifies (see callers) */
	sum = (uint32_t)raw + rte_raw_cksum(&ph, sizeof(ph));
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void
eth_input(struct net_stack *st, struct rte_mbuf *m)
{
	const struct rte_ether_hdr *eth;
	uint16_t type;

	st->stats.rx_frames++;
	st->stats.rx_bytes += rte_pktmbuf_pkt_len(m);
	/* Headers must be in the first segment: every parser below checks its
	 * header against data_len of the first segment, never pkt_len. */
	if (rte_pktmbuf_data_len(m) < NET_ETH_HLEN) {
		st->stats.rx_bad_eth++;
		goto drop;
	}
	eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	if (!rte_is_same_ether_addr(&eth->dst_addr, &st->cfg.mac) &&
			!rte_is_broadcast_ether_addr(&eth->dst_addr)) {
		st->stats.rx_bad_eth++;
		goto drop;
	}
	type = rte_be_to_cpu_16(eth->ether_type);
	switch (type) {
	case RTE_ETHER_TYPE_ARP:
		net_arp_input(st, m);
		return;
	case RTE_ETHER_TYPE_IPV4:
		net_ipv4_input(st, m);
		return;
	case RTE_ETHER_TYPE_VLAN:
	case RTE_ETHER_TYPE_QINQ:
		/* Ports are configured without VLANs; tagged frames are not ours. */
		st->stats.rx_bad_eth++;
		goto drop;
	default:
		st->stats.rx_unknown_ethertype++;
		goto drop;
	}
drop:
	rte_pktmbuf_free(m);
}

void
net_stack_input(struct net_stack *st, struct rte_mbuf **pkts, uint16_t n, uint64_t now_us)
{
	if (now_us > st->now_us)
		st->now_us = now_us;
	for (uint16_t i = 0; i < n; i++) {
		if (i + 1 < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
		eth_input(st, pkts[i]);
	}
	net_tcp_poll(st);
	net_tx_flush(st);
}

void
net_stack_poll(struct net_stack *st, uint64_t now_us)
{
	if (now_us > st->now_us)
		st->now_us = now_us;
	net_arp_timers(st);
	net_tcp_poll(st);
	net_tx_flush(st);
}
