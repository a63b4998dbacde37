/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers for the unit tests of dataplane/net: EAL start-up without
 * hugepages, a pktmbuf pool, frame builders (Ethernet/ARP/IPv4/ICMP/TCP with
 * real checksums), a frame parser for assertions, capture queues standing
 * in for the NIC, a fake clock, and a test application implementing the
 * net_tcp callbacks. Everything is static inline so each test includes what
 * it uses.
 */
#ifndef SLP_NET_TEST_UTIL_H
#define SLP_NET_TEST_UTIL_H

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_eal.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "net.h"
#include "net_tcp.h"

#define T_IPH(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))
#define T_IP(a, b, c, d) rte_cpu_to_be_32(T_IPH(a, b, c, d))
#define T_IP_A T_IP(198, 18, 0, 1)
#define T_IP_B T_IP(198, 18, 0, 2)
#define T_CAP 8192

static struct rte_mempool *t_pool;

/* At exit: release EAL and remove its (empty) per-process runtime folder. */
static inline void
t_eal_fini(void)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
	rmdir(dir);
}

/* Start EAL in memory, no hugepages, no devices. 0 or -1 (skip). */
static inline int
t_eal_init(void)
{
	char prefix[64];
	char *argv[] = {
		"net_test", "--no-huge", "--no-pci", "-m", "256", "--no-shconf",
		"--log-level=error", "--no-telemetry", prefix, NULL,
	};

	snprintf(prefix, sizeof(prefix), "--file-prefix=nettest%d", (int)getpid());
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0)
		return -1;
	atexit(t_eal_fini);
	t_pool = rte_pktmbuf_pool_create("net_test_pool", 16383, 0, 0,
		RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	return t_pool == NULL ? -1 : 0;
}

/* ---- capture queue (a NIC's tx side) ---- */

struct t_cap {
	struct rte_mbuf *m[T_CAP];
	unsigned n;
	unsigned refuse;	/* refuse this many frames (tx_dropped test) */
};

static inline uint16_t
t_cap_tx(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	struct t_cap *q = arg;
	uint16_t i;

	for (i = 0; i < n; i++) {
		if (q->refuse > 0) {
			q->refuse--;
			return i;
		}
		if (q->n == T_CAP)
			return i;
		q->m[q->n++] = pkts[i];
	}
	return n;
}

static inline void
t_cap_clear(struct t_cap *q)
{
	for (unsigned i = 0; i < q->n; i++)
		rte_pktmbuf_free(q->m[i]);
	q->n = 0;
}

/* Remove and return frame i. */
static inline struct rte_mbuf *
t_cap_take(struct t_cap *q, unsigned i)
{
	struct rte_mbuf *m = q->m[i];

	memmove(&q->m[i], &q->m[i + 1], (q->n - i - 1) * sizeof(q->m[0]));
	q->n--;
	return m;
}

/* ---- stack configuration ---- */

static inline void
t_mac(struct rte_ether_addr *a, uint8_t last)
{
	memset(a, 0, sizeof(*a));
	a->addr_bytes[0] = 0x02;
	a->addr_bytes[5] = last;
}

static inline void
t_config(struct net_config *c, struct t_cap *q, uint32_t ip, uint8_t mac_last)
{
	memset(c, 0, sizeof(*c));
	t_mac(&c->mac, mac_last);
	c->ipv4_addr = ip;
	c->pool = t_pool;
	c->tx_fn = t_cap_tx;
	c->tx_arg = q;
	c->max_conns = 64;
	c->seed = 42;
	c->time_wait_us = 2 * 1000 * 1000;
}

/* ---- frame builders ---- */

/* Build a frame from contiguous bytes in one mbuf. */
static inline struct rte_mbuf *
t_frame(const void *bytes, uint32_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(t_pool);
	void *p;

	assert_non_null(m);
	p = rte_pktmbuf_append(m, (uint16_t)len);
	assert_non_null(p);
	memcpy(p, bytes, len);
	return m;
}

/* Same bytes split in segments of at most seg bytes each. */
static inline struct rte_mbuf *
t_frame_chain(const uint8_t *bytes, uint32_t len, uint32_t seg)
{
	struct rte_mbuf *head = NULL;

	for (uint32_t off = 0; off < len; off += seg) {
		uint32_t n = len - off < seg ? len - off : seg;
		struct rte_mbuf *m = t_frame(bytes + off, n);

		if (head == NULL)
			head = m;
		else
			assert_int_equal(rte_pktmbuf_chain(head, m), 0);
	}
	return head;
}

static inline uint32_t
t_arp_bytes(uint8_t *buf, uint16_t op, const struct rte_ether_addr *sha, uint32_t sip,
	const struct rte_ether_addr *tha, uint32_t tip, const struct rte_ether_addr *eth_dst)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)buf;
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);

	eth->dst_addr = *eth_dst;
	eth->src_addr = *sha;
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = 6;
	arp->arp_plen = 4;
	arp->arp_opcode = rte_cpu_to_be_16(op);
	arp->arp_data.arp_sha = *sha;
	arp->arp_data.arp_sip = sip;
	arp->arp_data.arp_tha = *tha;
	arp->arp_data.arp_tip = tip;
	return sizeof(*eth) + sizeof(*arp);
}

/* Description of a TCP segment to build. */
struct t_seg {
	uint32_t src, dst;		/* network order */
	uint16_t sport, dport;		/* host order */
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t win;
	const uint8_t *opts;
	uint32_t optlen;		/* multiple of 4 */
	const void *data;
	uint32_t len;
	bool bad_cksum;
};

/* Build Ethernet+IPv4+TCP bytes; returns the frame length. */
static inline uint32_t
t_tcp_bytes(uint8_t *buf, const struct t_seg *s, const struct rte_ether_addr *dst_mac,
	const struct rte_ether_addr *src_mac)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)buf;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)(ip + 1);
	uint32_t tl = 20 + 20 + s->optlen + s->len;

	eth->dst_addr = *dst_mac;
	eth->src_addr = *src_mac;
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)tl);
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_TCP;
	ip->src_addr = s->src;
	ip->dst_addr = s->dst;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	memset(th, 0, sizeof(*th));
	th->src_port = rte_cpu_to_be_16(s->sport);
	th->dst_port = rte_cpu_to_be_16(s->dport);
	th->sent_seq = rte_cpu_to_be_32(s->seq);
	th->recv_ack = rte_cpu_to_be_32(s->ack);
	th->data_off = (uint8_t)(((20 + s->optlen) / 4) << 4);
	th->tcp_flags = s->flags;
	th->rx_win = rte_cpu_to_be_16(s->win);
	if (s->optlen)
		memcpy(th + 1, s->opts, s->optlen);
	if (s->len)
		memcpy((uint8_t *)(th + 1) + s->optlen, s->data, s->len);
	th->cksum = rte_ipv4_udptcp_cksum(ip, th);
	if (s->bad_cksum)
		th->cksum ^= 0x5a5a;
	return 14 + tl;
}

/* ---- parser of frames the stack sent ---- */

struct t_pkt {
	bool is_arp, is_ipv4, is_tcp, is_icmp;
	uint16_t arp_op;
	uint32_t arp_sip, arp_tip;
	struct rte_ether_addr eth_dst, eth_src;
	uint32_t src, dst;
	uint16_t sport, dport;		/* host order */
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t win;
	uint32_t len;			/* TCP payload bytes */
	bool mss_ok, ws_ok, sackp, ts_ok;
	uint16_t mss;
	uint8_t ws;
	uint32_t tsval, tsecr;
	uint32_t nsack;
	uint32_t sack[4][2];
	bool cksum_ok;
	uint8_t icmp_type;
	uint8_t bytes[2048];		/* linearized frame (first 2048 bytes) */
	uint32_t total;
};

static inline void
t_parse(const struct rte_mbuf *m, struct t_pkt *p)
{
	const uint8_t *b;
	const struct rte_ether_hdr *eth;

	memset(p, 0, sizeof(*p));
	p->total = rte_pktmbuf_pkt_len(m);
	assert_true(p->total <= sizeof(p->bytes));
	b = rte_pktmbuf_read(m, 0, p->total, p->bytes);
	assert_non_null(b);
	if (b != p->bytes)
		memcpy(p->bytes, b, p->total);
	eth = (const struct rte_ether_hdr *)p->bytes;
	p->eth_dst = eth->dst_addr;
	p->eth_src = eth->src_addr;
	if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
		const struct rte_arp_hdr *a = (const void *)(eth + 1);

		p->is_arp = true;
		p->arp_op = rte_be_to_cpu_16(a->arp_opcode);
		p->arp_sip = a->arp_data.arp_sip;
		p->arp_tip = a->arp_data.arp_tip;
		return;
	}
	if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4))
		return;
	p->is_ipv4 = true;
	{
		const struct rte_ipv4_hdr *ip = (const void *)(eth + 1);
		uint32_t hl = (ip->version_ihl & 15) * 4u;
		uint32_t tl = rte_be_to_cpu_16(ip->total_length);

		assert_int_equal((uint16_t)~rte_raw_cksum(ip, hl), 0);
		p->src = ip->src_addr;
		p->dst = ip->dst_addr;
		if (ip->next_proto_id == IPPROTO_ICMP) {
			const struct rte_icmp_hdr *ic = (const void *)((const uint8_t *)ip + hl);

			p->is_icmp = true;
			p->icmp_type = ic->icmp_type;
			p->cksum_ok = rte_raw_cksum(ic, tl - hl) == 0xffff;
			return;
		}
		if (ip->next_proto_id != IPPROTO_TCP)
			return;
		{
			const struct rte_tcp_hdr *th = (const void *)((const uint8_t *)ip + hl);
			uint32_t doff = (th->data_off >> 4) * 4u;
			const uint8_t *o = (const uint8_t *)(th + 1);
			uint32_t i = 0, on = doff - 20;

			p->is_tcp = true;
			p->sport = rte_be_to_cpu_16(th->src_port);
			p->dport = rte_be_to_cpu_16(th->dst_port);
			p->seq = rte_be_to_cpu_32(th->sent_seq);
			p->ack = rte_be_to_cpu_32(th->recv_ack);
			p->flags = th->tcp_flags;
			p->win = rte_be_to_cpu_16(th->rx_win);
			p->len = tl - hl - doff;
			p->cksum_ok = rte_ipv4_udptcp_cksum_verify(ip, th) == 0;
			while (i < on) {
				if (o[i] == 0)
					break;
				if (o[i] == 1) {
					i++;
					continue;
				}
				switch (o[i]) {
				case 2:
					p->mss_ok = true;
					p->mss = (uint16_t)(o[i + 2] << 8 | o[i + 3]);
					break;
				case 3:
					p->ws_ok = true;
					p->ws = o[i + 2];
					break;
				case 4:
					p->sackp = true;
					break;
				case 5:
					p->nsack = (o[i + 1] - 2u) / 8;
					for (uint32_t k = 0; k < p->nsack && k < 4; k++) {
						uint32_t l, r;

						memcpy(&l, o + i + 2 + 8 * k, 4);
						memcpy(&r, o + i + 6 + 8 * k, 4);
						p->sack[k][0] = rte_be_to_cpu_32(l);
						p->sack[k][1] = rte_be_to_cpu_32(r);
					}
					break;
				case 8: {
					uint32_t v, e;

					memcpy(&v, o + i + 2, 4);
					memcpy(&e, o + i + 6, 4);
					p->ts_ok = true;
					p->tsval = rte_be_to_cpu_32(v);
					p->tsecr = rte_be_to_cpu_32(e);
					break;
				}
				default:
					break;
				}
				i += o[i + 1];
			}
		}
	}
}

/* Payload bytes of a parsed TCP frame. */
static inline const uint8_t *
t_payload(const struct t_pkt *p)
{
	return p->bytes + p->total - p->len;
}

/* ---- test application ---- */

#define T_APP_BUF (4u << 20)

struct t_app {
	struct net_tcp_conn *conn;	/* last accepted / connected */
	int accepted, connected, eofs, closes;
	int close_status;
	int refuse;			/* accept returns -1 */
	bool no_recved;			/* do not give window back */
	uint8_t *rx;			/* received bytes */
	uint32_t rx_len;
	uint32_t held;			/* bytes not given back (no_recved) */
	uint64_t acked;
	unsigned data_calls;
	unsigned max_segs_seen;
};

static inline int
t_app_accept(void *arg, struct net_tcp_conn *c)
{
	struct t_app *a = arg;

	if (a->refuse)
		return -1;
	a->accepted++;
	a->conn = c;
	return 0;
}

static inline void
t_app_connected(void *arg, struct net_tcp_conn *c)
{
	struct t_app *a = arg;

	a->connected++;
	a->conn = c;
}

static inline void
t_app_data(void *arg, struct net_tcp_conn *c, struct rte_mbuf *m, uint32_t len)
{
	struct t_app *a = arg;
	uint32_t off = 0;

	assert_int_equal(rte_pktmbuf_pkt_len(m), len);
	a->data_calls++;
	if (m->nb_segs > a->max_segs_seen)
		a->max_segs_seen = m->nb_segs;
	for (struct rte_mbuf *s = m; s != NULL; s = s->next) {
		assert_true(a->rx_len + s->data_len <= T_APP_BUF);
		memcpy(a->rx + a->rx_len, rte_pktmbuf_mtod(s, void *), s->data_len);
		a->rx_len += s->data_len;
		off += s->data_len;
	}
	assert_int_equal(off, len);
	rte_pktmbuf_free(m);
	if (a->no_recved)
		a->held += len;
	else
		net_tcp_recved(c, len);
}

static inline void
t_app_eof(void *arg, struct net_tcp_conn *c)
{
	((struct t_app *)arg)->eofs++;
}

static inline void
t_app_sent(void *arg, struct net_tcp_conn *c, uint32_t n)
{
	((struct t_app *)arg)->acked += n;
}

static inline void
t_app_closed(void *arg, struct net_tcp_conn *c, int status)
{
	struct t_app *a = arg;

	a->closes++;
	a->close_status = status;
	if (a->conn == c)
		a->conn = NULL;
}

static const struct net_tcp_ops t_ops = {
	.accept = t_app_accept,
	.connected = t_app_connected,
	.data = t_app_data,
	.eof = t_app_eof,
	.sent = t_app_sent,
	.closed = t_app_closed,
};

static inline void
t_app_init(struct t_app *a)
{
	memset(a, 0, sizeof(*a));
	a->rx = malloc(T_APP_BUF);
	assert_non_null(a->rx);
}

static inline void
t_app_fini(struct t_app *a)
{
	free(a->rx);
	a->rx = NULL;
}

/* Deterministic test pattern. */
static inline uint8_t
t_pattern(uint32_t i)
{
	uint32_t x = i * 2654435761u;

	return (uint8_t)(x >> 24);
}

/* xorshift PRNG for loss patterns */
static inline uint32_t
t_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 32);
}

/* Send pattern bytes [off, total) on c as far as the send buffer allows;
 * returns the new offset. */
static inline uint32_t
t_push(struct net_tcp_conn *c, uint32_t off, uint32_t total)
{
	uint8_t buf[8192];

	while (off < total) {
		uint32_t n = total - off < sizeof(buf) ? total - off : (uint32_t)sizeof(buf);
		int r;

		for (uint32_t i = 0; i < n; i++)
			buf[i] = t_pattern(off + i);
		r = net_tcp_send(c, buf, n);
		if (r <= 0)
			break;
		off += (uint32_t)r;
	}
	return off;
}

/* ---- two stacks on a fake link ---- */

struct t_pair {
	struct net_stack *a, *b;
	struct t_cap qa, qb;		/* frames a sent, frames b sent */
	struct t_app app_a, app_b;
	uint64_t now;
	/* link impairments (per mille) */
	unsigned loss_pm, reorder_pm;
	uint64_t rng;
	unsigned drop_next_a;		/* drop the next n frames a sends */
	unsigned drop_next_b;
	uint64_t delivered, dropped;
	/* Optional per-frame hook, before the random impairments: sees every
	 * frame a (from_a) or b sent; returning true drops it. */
	bool (*frame_fn)(struct t_pair *p, const struct rte_mbuf *m, bool from_a);
	void *frame_arg;
};

/* Move frames of q into st, with loss and reordering. */
static inline void
t_deliver(struct t_pair *p, struct t_cap *q, struct net_stack *st, unsigned *drop_next)
{
	struct rte_mbuf *batch[T_CAP];
	unsigned n = 0;

	for (unsigned i = 0; i < q->n; i++) {
		struct rte_mbuf *m = q->m[i];

		if (p->frame_fn != NULL && p->frame_fn(p, m, q == &p->qa)) {
			rte_pktmbuf_free(m);
			p->dropped++;
			continue;
		}
		if (*drop_next > 0) {
			(*drop_next)--;
			rte_pktmbuf_free(m);
			p->dropped++;
			continue;
		}
		if (p->loss_pm && t_rand(&p->rng) % 1000 < p->loss_pm) {
			rte_pktmbuf_free(m);
			p->dropped++;
			continue;
		}
		batch[n++] = m;
	}
	q->n = 0;
	for (unsigned i = 0; i + 1 < n; i++) {
		if (p->reorder_pm && t_rand(&p->rng) % 1000 < p->reorder_pm) {
			struct rte_mbuf *t = batch[i];

			batch[i] = batch[i + 1];
			batch[i + 1] = t;
			i++;
		}
	}
	p->delivered += n;
	for (unsigned i = 0; i < n; i += 32) {
		uint16_t k = (uint16_t)(n - i < 32 ? n - i : 32);

		net_stack_input(st, &batch[i], k, p->now);
	}
}

/* One round: deliver both ways, poll both, advance the clock by step_us. */
static inline void
t_pair_step(struct t_pair *p, uint64_t step_us)
{
	t_deliver(p, &p->qa, p->b, &p->drop_next_a);
	t_deliver(p, &p->qb, p->a, &p->drop_next_b);
	p->now += step_us;
	net_stack_poll(p->a, p->now);
	net_stack_poll(p->b, p->now);
}

static inline void
t_pair_run(struct t_pair *p, unsigned rounds, uint64_t step_us)
{
	for (unsigned i = 0; i < rounds; i++)
		t_pair_step(p, step_us);
}

static inline void
t_pair_init(struct t_pair *p, struct net_config *ca, struct net_config *cb)
{
	struct net_config a, b;

	memset(p, 0, sizeof(*p));
	p->now = 1000000;
	p->rng = 0x9e3779b97f4a7c15ull;
	if (ca == NULL) {
		t_config(&a, &p->qa, T_IP_A, 1);
		ca = &a;
	}
	if (cb == NULL) {
		t_config(&b, &p->qb, T_IP_B, 2);
		cb = &b;
	}
	ca->tx_arg = &p->qa;
	cb->tx_arg = &p->qb;
	p->a = net_stack_create(ca);
	p->b = net_stack_create(cb);
	assert_non_null(p->a);
	assert_non_null(p->b);
	t_app_init(&p->app_a);
	t_app_init(&p->app_b);
	net_stack_start(p->a, p->now);
	net_stack_start(p->b, p->now);
}

static inline void
t_pair_fini(struct t_pair *p)
{
	net_stack_free(p->a);
	net_stack_free(p->b);
	t_cap_clear(&p->qa);
	t_cap_clear(&p->qb);
	t_app_fini(&p->app_a);
	t_app_fini(&p->app_b);
}

/* b listens on port, a connects; runs until both sides are established. */
static inline void
t_pair_connect(struct t_pair *p, uint16_t port)
{
	struct net_tcp_conn *c;

	assert_int_equal(net_tcp_listen(p->b, port, 16, &t_ops, &p->app_b), 0);
	assert_int_equal(net_tcp_connect(p->a, T_IP_B, port, &t_ops, &p->app_a, &c), 0);
	p->app_a.conn = c;
	for (int i = 0; i < 50 && !(p->app_a.connected && p->app_b.accepted); i++)
		t_pair_step(p, 100);
	assert_int_equal(p->app_a.connected, 1);
	assert_int_equal(p->app_b.accepted, 1);
	assert_int_equal(net_tcp_conn_state(p->app_a.conn), NET_TCP_ESTABLISHED);
	assert_int_equal(net_tcp_conn_state(p->app_b.conn), NET_TCP_ESTABLISHED);
}

#endif /* SLP_NET_TEST_UTIL_H */
