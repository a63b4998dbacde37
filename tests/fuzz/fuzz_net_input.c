/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the network stack's input path (dataplane/net): raw frame
 * bytes into net_stack_input, on a fresh stack per input that listens on
 * TCP port 9092 and has the peer 198.18.0.2 in its ARP cache.
 *
 * Input: a sequence of records [len: 2 bytes big endian][ctl: 1 byte]
 * [len bytes of Ethernet frame]. ctl bits:
 *   0x01  rewrite the TCP acknowledgment field to (the end, seq + length,
 *         of the last TCP segment the stack sent + the field's value) and
 *         fix the checksum, so a corpus can follow the stack's secret ISN;
 *   0x02  split the frame into 64-byte mbuf segments;
 *   0x04  mark the checksums verified by the NIC (RX_*_CKSUM_GOOD), so
 *         mutations reach the protocol code past the checksum checks;
 *   0x08  advance the clock by 300 ms first (timers run);
 *   0x10  the application sends 3000 bytes on its connection afterwards;
 *   0x20  the application closes its connection afterwards;
 *   0x40  with 0x01: also rewrite the edges of SACK blocks (option kind 5)
 *         the same way, so a corpus can SACK data the stack sent (the
 *         sender scoreboard and RFC 6675 recovery).
 * SYN cookies are reached with five SYNs to port 9092 (backlog 4) and an
 * ACK of the fifth SYN-ACK (ctl 0x01 with a field of 0).
 * Oracles besides the sanitizers: every frame the stack emits has correct
 * IPv4 and TCP/ICMP checksums, and after the stack is freed every mbuf is
 * back in the pool (no leak through queues, clones or reassembly).
 */
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "net.h"
#include "net_tcp.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rte_mempool *pool;
static uint32_t last_end;	/* seq + length of the last TCP segment sent */
static struct net_tcp_conn *conn;

static void
check_frame(const struct rte_mbuf *m)
{
	uint8_t buf[2048];
	const uint8_t *b;
	const struct rte_ipv4_hdr *ip;
	uint32_t hl, tl;

	if (m->pkt_len > sizeof(buf) || m->pkt_len < 14)
		abort();
	b = rte_pktmbuf_read(m, 0, m->pkt_len, buf);
	if (b[12] != 0x08 || b[13] != 0x00)
		return;	/* ARP */
	ip = (const struct rte_ipv4_hdr *)(b + 14);
	hl = (ip->version_ihl & 15) * 4u;
	tl = rte_be_to_cpu_16(ip->total_length);
	if (tl + 14 != m->pkt_len || rte_raw_cksum(ip, hl) != 0xffff)
		abort();
	if (ip->next_proto_id == IPPROTO_TCP) {
		const struct rte_tcp_hdr *th = (const void *)((const uint8_t *)ip + hl);
		uint16_t raw = 0;
		uint32_t sum;
		struct {
			uint32_t s, d;
			uint8_t z, p;
			uint16_t l;
		} __rte_packed ph = { ip->src_addr, ip->dst_addr, 0, IPPROTO_TCP,
			rte_cpu_to_be_16((uint16_t)(tl - hl)) };

		raw = rte_raw_cksum((const uint8_t *)ip + hl, tl - hl);
		sum = (uint32_t)raw + rte_raw_cksum(&ph, sizeof(ph));
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		if (sum != 0xffff)
			abort();
		last_end = rte_be_to_cpu_32(th->sent_seq) + (tl - hl - (th->data_off >> 4) * 4u) +
			((th->tcp_flags & RTE_TCP_SYN_FLAG) ? 1 : 0) +
			((th->tcp_flags & RTE_TCP_FIN_FLAG) ? 1 : 0);
	} else if (ip->next_proto_id == IPPROTO_ICMP) {
		if (rte_raw_cksum((const uint8_t *)ip + hl, tl - hl) != 0xffff)
			abort();
	}
}

static uint16_t
tx(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++) {
		check_frame(pkts[i]);
		rte_pktmbuf_free(pkts[i]);
	}
	return n;
}

static int
app_accept(void *arg, struct net_tcp_conn *c)
{
	conn = c;
	return 0;
}

static void
app_data(void *arg, struct net_tcp_conn *c, struct rte_mbuf *m, uint32_t len)
{
	rte_pktmbuf_free(m);
	net_tcp_recved(c, len);
}

static void
app_closed(void *arg, struct net_tcp_conn *c, int status)
{
	if (conn == c)
		conn = NULL;
}

static const struct net_tcp_ops ops = {
	.accept = app_accept,
	.data = app_data,
	.closed = app_closed,
};

/* At exit: release EAL and remove its (empty) per-process runtime folder. */
static void
fini(void)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
	rmdir(dir);
}

static int
init_once(void)
{
	static int done;
	char prefix[64];
	char *argv[] = {
		"fuzz_net_input", "--no-huge", "--no-pci", "-m", "128", "--no-shconf",
		"--log-level=error", "--no-telemetry", prefix, NULL,
	};

	if (done)
		return done > 0 ? 0 : -1;
	snprintf(prefix, sizeof(prefix), "--file-prefix=fuzznet%d", (int)getpid());
	done = -1;
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0)
		return -1;
	atexit(fini);
	pool = rte_pktmbuf_pool_create("fuzz_net", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
		SOCKET_ID_ANY);
	if (pool == NULL)
		return -1;
	done = 1;
	return 0;
}

static struct rte_mbuf *
make_frame(const uint8_t *p, uint32_t len, bool split)
{
	struct rte_mbuf *head = NULL;
	uint32_t seg = split ? 64 : 2048;

	if (len == 0)
		len = 1;	/* an empty record still makes a (1-byte) frame */
	for (uint32_t off = 0; off < len; off += seg) {
		uint32_t n = len - off < seg ? len - off : seg;
		struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
		uint8_t *d;

		if (m == NULL)
			goto fail;
		d = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)n);
		if (d == NULL) {
			rte_pktmbuf_free(m);
			goto fail;
		}
		if (p != NULL)
			memcpy(d, p + off, n);
		else
			memset(d, 0, n);
		if (head == NULL)
			head = m;
		else if (rte_pktmbuf_chain(head, m) != 0) {
			rte_pktmbuf_free(m);
			goto fail;
		}
	}
	return head;
fail:
	rte_pktmbuf_free(head);
	return NULL;
}

/* ctl 0x40: each SACK block edge = last_end + edge. */
static void
fix_sack(struct rte_tcp_hdr *th, uint32_t avail)
{
	uint32_t doff = (th->data_off >> 4) * 4u, i = 0, n;
	uint8_t *o = (uint8_t *)(th + 1);

	if (doff < 20 || doff > avail)
		return;
	n = doff - 20;
	while (i < n && o[i] != 0) {
		if (o[i] == 1) {
			i++;
			continue;
		}
		if (i + 1 >= n || o[i + 1] < 2 || i + o[i + 1] > n)
			return;
		if (o[i] == 5) {
			for (uint32_t k = i + 2; k + 4 <= i + o[i + 1]; k += 4) {
				uint32_t e;

				memcpy(&e, o + k, 4);
				e = rte_cpu_to_be_32(last_end + rte_be_to_cpu_32(e));
				memcpy(o + k, &e, 4);
			}
		}
		i += o[i + 1];
	}
}

/* ctl 0x01: ack = last_end + field, checksum recomputed. */
static void
fix_ack(uint8_t *f, uint32_t len, bool sack)
{
	struct rte_ipv4_hdr *ip;
	struct rte_tcp_hdr *th;
	uint32_t hl, tl;

	if (len < 14 + 20)
		return;
	ip = (struct rte_ipv4_hdr *)(f + 14);
	hl = (ip->version_ihl & 15) * 4u;
	tl = rte_be_to_cpu_16(ip->total_length);
	if (ip->next_proto_id != IPPROTO_TCP || hl < 20 || tl < hl + 20 || 14 + tl > len)
		return;
	th = (struct rte_tcp_hdr *)(f + 14 + hl);
	th->recv_ack = rte_cpu_to_be_32(last_end + rte_be_to_cpu_32(th->recv_ack));
	if (sack)
		fix_sack(th, tl - hl);
	if (hl == 20) {
		th->cksum = 0;
		th->cksum = rte_ipv4_udptcp_cksum(ip, th);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct net_config cfg;
	struct net_stack *st;
	unsigned avail;
	uint64_t now = 1000000;
	size_t off = 0;
	int records = 0;

	if (init_once() != 0)
		return 0;
	avail = rte_mempool_avail_count(pool);
	memset(&cfg, 0, sizeof(cfg));
	cfg.mac.addr_bytes[0] = 0x02;
	cfg.mac.addr_bytes[5] = 0x01;
	cfg.ipv4_addr = rte_cpu_to_be_32(0xc6120001);	/* 198.18.0.1 */
	cfg.pool = pool;
	cfg.tx_fn = tx;
	cfg.max_conns = 16;
	cfg.ooo_max_segs = 8;
	cfg.rcvbuf_bytes = 8192;
	cfg.sndbuf_bytes = 16384;
	cfg.seed = 1;
	st = net_stack_create(&cfg);
	if (st == NULL)
		abort();
	conn = NULL;
	last_end = 0;
	if (net_tcp_listen(st, 9092, 4, &ops, NULL) != 0)
		abort();
	net_stack_start(st, now);
	while (off + 3 <= size && records++ < 64) {
		uint32_t len = ((uint32_t)data[off] << 8) | data[off + 1];
		uint8_t ctl = data[off + 2];
		uint8_t frame[2048];
		struct rte_mbuf *m;

		off += 3;
		if (len > size - off)
			len = (uint32_t)(size - off);
		if (len > sizeof(frame))
			len = sizeof(frame);
		memcpy(frame, data + off, len);
		off += len;
		if (ctl & 0x01)
			fix_ack(frame, len, (ctl & 0x40) != 0);
		if (ctl & 0x08)
			now += 300 * 1000;
		m = make_frame(frame, len, (ctl & 0x02) != 0);
		if (m == NULL)
			break;
		if (ctl & 0x04)
			m->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
		net_stack_input(st, &m, 1, now);
		if ((ctl & 0x10) && conn != NULL) {
			static uint8_t junk[3000];

			(void)net_tcp_send(conn, junk, sizeof(junk));
		}
		if ((ctl & 0x20) && conn != NULL)
			(void)net_tcp_close(conn);
		net_stack_poll(st, now);
	}
	/* Let every timer run out. */
	for (int k = 0; k < 40; k++) {
		now += 2 * 1000 * 1000;
		net_stack_poll(st, now);
	}
	if (getenv("FUZZ_NET_VERBOSE") != NULL) {
		const struct net_stats *s = net_stack_stats(st);

		/* For corpus upkeep: how far the input got. */
		fprintf(stderr, "records %d: rx %" PRIu64 " arp %" PRIu64 " icmp %" PRIu64
			" tcp %" PRIu64 " bad-ip %" PRIu64 " frag %" PRIu64 " no-conn %" PRIu64
			" ooo %" PRIu64 " challenge %" PRIu64 " rst-rx %" PRIu64 " rto %" PRIu64
			" probes %" PRIu64 " tx %" PRIu64 " sack-rec %" PRIu64 " sack-rtx %" PRIu64
			" cookies %" PRIu64 "/%" PRIu64 "/%" PRIu64 "\n", records, s->rx_frames,
			s->rx_arp, s->rx_icmp, s->rx_tcp, s->rx_bad_ipv4, s->rx_ip_fragments,
			s->rx_tcp_no_conn, s->tcp_ooo_queued, s->tcp_challenge_acks,
			s->tcp_rst_rx, s->tcp_rto_expiries, s->tcp_zero_window_probes,
			s->tx_frames, s->tcp_sack_recoveries, s->tcp_sack_retransmits,
			s->tcp_syncookies_sent, s->tcp_syncookies_ok, s->tcp_syncookies_failed);
	}
	net_stack_free(st);
	if (rte_mempool_avail_count(pool) != avail) {
		fprintf(stderr, "fuzz_net_input: mbuf leak (%u -> %u)\n", avail,
			rte_mempool_avail_count(pool));
		abort();
	}
	return 0;
}
