/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_tcp_output: building and sending TCP segments.
 *
 * A segment is one header mbuf (Ethernet + IPv4 + TCP + options, built in
 * place) followed by indirect mbufs attached to the send queue's segments
 * (rte_pktmbuf_attach), so payload bytes are never copied on transmit or
 * retransmit, whether they were copied into the queue by net_tcp_send or
 * attached as external buffers by net_tcp_send_mbuf.
 *
 * net_tcp_output decides what to send for a connection: SYN or SYN-ACK,
 * RST after abort, as much queued data as the send window (RFC 9293 section
 * 3.8.6) and congestion window (RFC 5681) allow, FIN, and the ACK owed.
 * Nagle's algorithm is off (a broker answers requests: latency matters and
 * responses are written whole); sender-side silly window avoidance (RFC 9293
 * section 3.8.6.2.1) is kept. The persist timer (zero-window probing) is
 * armed here.
 */
#include "net.h"

#include <errno.h>
#include <string.h>

#include <rte_byteorder.h>

#include "net_internal.h"

/* TCP option kinds (RFC 9293, RFC 7323, RFC 2018). */
#define OPT_EOL 0
#define OPT_NOP 1
#define OPT_MSS 2
#define OPT_WS 3
#define OPT_SACKP 4
#define OPT_SACK 5
#define OPT_TS 8

/* Smallest tail loss probe timeout (Linux: TCP_TIMEOUT_MIN, 2 ms). */
#define NET_TCP_PTO_MIN_US 2000u
/* Tail loss probes before the RTO takes over (see net_tcp_tlp_fire). */
#define NET_TCP_TLP_MAX 3u

uint32_t
net_tcp_rcv_window(const struct net_stack *st, const struct net_tcp_conn *c)
{
	uint32_t buf = st->cfg.rcvbuf_bytes;
	uint32_t space = c->rcv_held >= buf ? 0 : buf - c->rcv_held;
	uint32_t adv = SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
	uint32_t step = NET_MIN(buf / 2, (uint32_t)net_tcp_our_mss(st));

	/* RFC 9293 section 3.8.6.2.2 (receiver SWS avoidance): move the right
	 * edge only by at least min(buffer/2, MSS). Never shrink it
	 * (section 3.8.6): the window offered stays offered. */
	if (space <= adv || space - adv < step)
		return adv;
	return space;
}

/* Write the options of a segment; returns their length (multiple of 4). */
static uint32_t
write_opts(struct net_stack *st, struct net_tcp_conn *c, uint8_t *o, uint8_t flags)
{
	uint32_t n = 0;
	bool syn = (flags & RTE_TCP_SYN_FLAG) != 0;
	bool ts = (c->flags & NET_TCPF_TS_OK) != 0;

	if (syn) {
		uint16_t mss = net_tcp_our_mss(st);
		/* On a SYN-ACK offer only what the peer offered (RFC 7323 sections
		 * 2.2 and 3.2, RFC 2018 section 2); on a SYN offer what is enabled
		 * (flags were set from the configuration at connect). */
		bool ws = (c->flags & NET_TCPF_WS_OK) != 0;
		bool sack = (c->flags & NET_TCPF_SACK_OK) != 0;

		o[n++] = OPT_MSS;
		o[n++] = 4;
		o[n++] = (uint8_t)(mss >> 8);
		o[n++] = (uint8_t)mss;
		if (sack && ts) {
			o[n++] = OPT_SACKP;
			o[n++] = 2;
		} else {
			o[n++] = OPT_NOP;
			o[n++] = OPT_NOP;
			if (sack) {
				o[n++] = OPT_SACKP;
				o[n++] = 2;
			}
		}
		if (ts) {
			uint32_t now = net_tcp_ts_now(st, c);
			uint32_t v = rte_cpu_to_be_32((c->flags & NET_TCPF_SYNCOOKIE) ?
				net_tcp_cookie_tsval(c, now) : now);
			uint32_t e = rte_cpu_to_be_32((flags & RTE_TCP_ACK_FLAG) ? c->ts_recent : 0);

			if (!sack) {
				o[n++] = OPT_NOP;
				o[n++] = OPT_NOP;
			}
			o[n++] = OPT_TS;
			o[n++] = 10;
			memcpy(o + n, &v, 4);
			memcpy(o + n + 4, &e, 4);
			n += 8;
		}
		if (ws) {
			o[n++] = OPT_NOP;
			o[n++] = OPT_WS;
			o[n++] = 3;
			o[n++] = c->rcv_wscale;
		}
		while (n % 4 != 0)
			o[n++] = OPT_NOP;
		return n;
	}
	if (ts) {
		uint32_t v = rte_cpu_to_be_32(net_tcp_ts_now(st, c));
		uint32_t e = rte_cpu_to_be_32(c->ts_recent);

		o[n++] = OPT_NOP;
		o[n++] = OPT_NOP;
		o[n++] = OPT_TS;
		o[n++] = 10;
		memcpy(o + n, &v, 4);
		memcpy(o + n + 4, &e, 4);
		n += 8;
	}
	/* RFC 2018 section 4: SACK blocks for the out-of-order data we hold,
	 * at most 3 with timestamps (40 bytes of options), 4 without. The
	 * first block is the one holding the most recently received segment
	 * (a sender learns of every new range at once, however many holes
	 * there are); the others follow in ascending order (the RFC asks for
	 * the most recently reported first: an approximation). */
	if ((c->flags & NET_TCPF_SACK_OK) && c->ooo_segs > 0 &&
			(flags & RTE_TCP_RST_FLAG) == 0) {
		uint32_t max = ts ? 3 : 4, nb = 0, nr = 0, first = 0;
		uint32_t last = net_tcp_sb(st, c)->ooo_last_seq;
		uint32_t rl[4], rr[4];	/* first block, then up to 3 others */
		uint8_t *hdr = o + n;

		/* Merge the held segments into ranges; keep the range of the
		 * last segment and the lowest others. */
		for (uint32_t i = 0; i < c->ooo_segs;) {
			uint32_t l = c->ooo[i].seq, r = l + c->ooo[i].len;

			for (i++; i < c->ooo_segs && c->ooo[i].seq == r; i++)
				r += c->ooo[i].len;
			if (SEQ_LEQ(l, last) && SEQ_LT(last, r)) {
				rl[0] = l;
				rr[0] = r;
				first = 1;
			} else if (nr < 3) {
				rl[1 + nr] = l;
				rr[1 + nr] = r;
				nr++;
			}
		}
		n += 4;	/* NOP NOP kind len */
		for (uint32_t k = first ? 0 : 1; k < 1 + nr && nb < max; k++) {
			uint32_t bl = rte_cpu_to_be_32(rl[k]), br = rte_cpu_to_be_32(rr[k]);

			memcpy(o + n, &bl, 4);
			memcpy(o + n + 4, &br, 4);
			n += 8;
			nb++;
		}
		hdr[0] = OPT_NOP;
		hdr[1] = OPT_NOP;
		hdr[2] = OPT_SACK;
		hdr[3] = (uint8_t)(2 + 8 * nb);
	}
	return n;
}

/*
 * The send-queue mbuf holding sequence number @seq, and in *@qseq the
 * sequence number of its first byte (NULL past the queue's end). Starts from
 * the cursor when @seq lies at or after it (new data, the common case);
 * retransmissions walk from the head. Does not move the cursor.
 */
static struct rte_mbuf *
sq_seek(const struct net_tcp_sb *sb, const struct net_tcp_conn *c, uint32_t seq, uint32_t *qseq)
{
	struct rte_mbuf *q = c->sq_head;
	uint32_t at = c->sq_seq;

	if (sb->sq_cur != NULL && SEQ_GEQ(sb->sq_cur_seq, c->sq_seq) &&
			SEQ_GEQ(seq, sb->sq_cur_seq)) {
		q = sb->sq_cur;
		at = sb->sq_cur_seq;
	}
	while (q != NULL && SEQ_GEQ(seq, at + q->data_len)) {
		at += q->data_len;
		q = q->next;
	}
	*qseq = at;
	return q;
}

/* Attach len bytes of the send queue from byte offset off as indirect mbufs
 * chained after hdr. Returns 0 or -ENOMEM. */
static int
attach_payload(struct net_stack *st, struct net_tcp_conn *c, struct rte_mbuf *hdr, uint32_t off,
	uint32_t len)
{
	struct net_tcp_sb *sb = net_tcp_sb(st, c);
	uint32_t seq = c->sq_seq + off, qseq;
	struct rte_mbuf *q = sq_seek(sb, c, seq, &qseq);
	struct rte_mbuf *last = hdr;

	if (q != NULL) {
		sb->sq_cur = q;
		sb->sq_cur_seq = qseq;
	}
	off = seq - qseq;
	while (len > 0 && q != NULL) {
		uint32_t take = NET_MIN(len, (uint32_t)q->data_len - off);
		struct rte_mbuf *mi = rte_pktmbuf_alloc(st->cfg.pool);

		if (mi == NULL)
			return -ENOMEM;
		rte_pktmbuf_attach(mi, q);
		mi->data_off = (uint16_t)(mi->data_off + off);
		mi->data_len = (uint16_t)take;
		mi->pkt_len = take;
		mi->next = NULL;
		mi->nb_segs = 1;
		last->next = mi;
		last = mi;
		hdr->nb_segs++;
		hdr->pkt_len += take;
		len -= take;
		off = 0;
		q = q->next;
	}
	return len == 0 ? 0 : -EINVAL;
}

/*
 * Whether a segment before the last holds an odd number of bytes. DPDK
 * 22.11's TAP PMD, offloading the TCP checksum in software, adds up each
 * segment as if it started at an even offset, so such a packet leaves with a
 * bad checksum and the peer drops it (every retransmission too). Fetch
 * responses attach record sets of any length in place (scatter-gather
 * responses), so these packets occur; they get their checksum here.
 */
static bool
odd_inner_segment(const struct rte_mbuf *m)
{
	for (; m != NULL && m->next != NULL; m = m->next) {
		if (m->data_len & 1)
			return true;
	}
	return false;
}

static void
fill_cksum(struct net_stack *st, struct rte_mbuf *m, struct rte_ipv4_hdr *ip,
	struct rte_tcp_hdr *th, uint32_t tcp_len, uint32_t tso_segsz)
{
	if (tso_segsz != 0) {
		/* TSO (rte_mbuf_core.h): header lengths, segment size, IPv4
		 * header checksum and TCP checksum offloaded, the TCP checksum
		 * field holding the pseudo-header sum without the length (what
		 * rte_ipv4_phdr_cksum gives with RTE_MBUF_F_TX_TCP_SEG set). */
		m->l2_len = NET_ETH_HLEN;
		m->l3_len = NET_IP_HLEN;
		m->l4_len = (uint64_t)((th->data_off >> 4) * 4u);
		m->tso_segsz = (uint16_t)tso_segsz;
		m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM |
			RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM;
		ip->hdr_checksum = 0;
		th->cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
		return;
	}
	if (st->cfg.tx_cksum_offload && !odd_inner_segment(m)) {
		m->l2_len = NET_ETH_HLEN;
		m->l3_len = NET_IP_HLEN;
		m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM |
			RTE_MBUF_F_TX_TCP_CKSUM;
		th->cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
		return;
	}
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	if (st->cfg.tx_l4_cksum_skip) {
		/* The peer does not verify it (cfg.tx_l4_cksum_skip): the
		 * pseudo-header sum a partial checksum carries, not a pass
		 * over every byte sent (13% of the broker serving Fetch over
		 * memif). */
		th->cksum = rte_ipv4_phdr_cksum(ip, 0);
		return;
	}
	th->cksum = 0;
	th->cksum = net_ipv4_cksum_mbuf(m, NET_ETH_HLEN + NET_IP_HLEN, tcp_len, ip);
}

/*
 * Send one segment: seq, len payload bytes of the send queue starting at
 * seq (only when len > 0), flags. Carries our current ACK and window (when
 * ACK is set) and the options of the connection. With tso_segsz, a TSO frame
 * the port cuts into segments of that many payload bytes (len > tso_segsz).
 */
static int
xmit(struct net_stack *st, struct net_tcp_conn *c, uint32_t seq, uint32_t len, uint8_t flags,
	uint32_t tso_segsz)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(st->cfg.pool);
	uint8_t opts[NET_TCP_MAX_OPTS];
	struct rte_ipv4_hdr *ip;
	struct rte_tcp_hdr *th;
	uint32_t optlen, hlen, wnd;
	uint8_t *p;

	if (m == NULL) {
		st->stats.tx_no_mbuf++;
		return -ENOMEM;
	}
	optlen = write_opts(st, c, opts, flags);
	hlen = NET_ETH_HLEN + NET_IP_HLEN + NET_TCP_HLEN + optlen;
	p = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)hlen);
	if (p == NULL)
		goto fail;
	if (len > 0 && attach_payload(st, c, m, seq - c->sq_seq, len) != 0) {
		st->stats.tx_no_mbuf++;
		goto fail;
	}
	ip = (struct rte_ipv4_hdr *)(p + NET_ETH_HLEN);
	th = (struct rte_tcp_hdr *)(ip + 1);
	net_ipv4_fill(st, ip, c->raddr, IPPROTO_TCP, NET_IP_HLEN + NET_TCP_HLEN + optlen + len);
	th->src_port = c->lport;
	th->dst_port = c->rport;
	th->sent_seq = rte_cpu_to_be_32(seq);
	th->data_off = (uint8_t)(((NET_TCP_HLEN + optlen) / 4) << 4);
	th->tcp_flags = flags;
	th->tcp_urp = 0;
	if (flags & RTE_TCP_ACK_FLAG) {
		th->recv_ack = rte_cpu_to_be_32(c->rcv_nxt);
		wnd = net_tcp_rcv_window(st, c);
		c->rcv_adv = c->rcv_nxt + wnd;
		if (flags & RTE_TCP_SYN_FLAG) {
			/* RFC 7323 section 2.2: the window of a SYN is never scaled. */
			th->rx_win = rte_cpu_to_be_16((uint16_t)NET_MIN(wnd, 65535u));
		} else {
			uint32_t w = wnd >> c->rcv_wscale;

			/* Round up so the scaled window never moves the edge back. */
			if ((w << c->rcv_wscale) < wnd)
				w++;
			th->rx_win = rte_cpu_to_be_16((uint16_t)NET_MIN(w, 65535u));
		}
		c->last_ack_sent = c->rcv_nxt;
		c->flags &= ~(NET_TCPF_ACK_NOW | NET_TCPF_DELACK | NET_TCPF_WND_UPDATE);
		c->unacked_segs = 0;
		c->delack_deadline = 0;
	} else {
		th->recv_ack = 0;
		th->rx_win = 0;
	}
	memcpy(th + 1, opts, optlen);
	fill_cksum(st, m, ip, th, NET_TCP_HLEN + optlen + len, tso_segsz);
	if (flags & RTE_TCP_RST_FLAG)
		st->stats.tcp_rst_tx++;
	else if (len > 0)
		net_tcp_rack_sent(st, c, seq, len);
	net_ipv4_output(st, m, c->raddr);
	return 0;
fail:
	rte_pktmbuf_free(m);
	return -ENOMEM;
}

int
net_tcp_xmit(struct net_stack *st, struct net_tcp_conn *c, uint32_t seq, uint32_t len,
	uint8_t flags)
{
	return xmit(st, c, seq, len, flags, 0);
}

/* Payload bytes per segment of a TSO frame: the MSS, or less where the
 * port's segments may not reach MTU-sized frames (cfg.tso_frame_max). */
static uint32_t
tso_segsz(const struct net_stack *st, const struct net_tcp_conn *c)
{
	uint32_t fmax = st->cfg.tso_frame_max != 0 ? st->cfg.tso_frame_max :
		(uint32_t)st->cfg.mtu + NET_ETH_HLEN;
	uint32_t hdr = NET_ETH_HLEN + NET_IP_HLEN + NET_TCP_HLEN +
		((c->flags & NET_TCPF_TS_OK) ? 12u : 0u);

	if (fmax <= hdr)
		return 0;
	return NET_MIN((uint32_t)c->mss, fmax - hdr);
}

/*
 * How much of [seq, seq + len) of the send queue one TSO frame may carry:
 * at most NET_TSO_MAX_PIECES send-queue mbufs (each output segment of the
 * port's segmentation takes a header and one mbuf per piece it covers:
 * net_tap's segmentation pool holds 512), and with cfg.tso_even_pieces no
 * piece of odd length before the last (net_tap's software checksum adds up
 * each mbuf as if it began at an even offset: with even pieces and an even
 * segment size every piece of every segment but its last is even, so the
 * sums are right). *cut_odd tells whether an odd piece ended it.
 */
#define NET_TSO_MAX_PIECES 48u
static uint32_t
tso_fit(struct net_stack *st, struct net_tcp_conn *c, uint32_t seq, uint32_t len,
	bool *cut_odd)
{
	uint32_t qseq, off, done = 0, pieces = 0;
	struct rte_mbuf *q = sq_seek(net_tcp_sb(st, c), c, seq, &qseq);

	*cut_odd = false;
	off = seq - qseq;
	while (done < len && q != NULL && pieces < NET_TSO_MAX_PIECES) {
		uint32_t take = NET_MIN(len - done, (uint32_t)q->data_len - off);

		done += take;
		pieces++;
		if (st->cfg.tso_even_pieces && (take & 1u) && done < len) {
			*cut_odd = true;
			break;
		}
		off = 0;
		q = q->next;
	}
	return done;
}

/*
 * The length of the next new-data frame when TSO may carry more than one
 * MSS: room is what the windows allow, avail what is queued after
 * SND.NXT. Whole segments, unless the frame ends the queued data or an odd
 * piece (tso_fit) ends it. Sets *segsz (0: one ordinary segment of at most
 * the MSS, the value returned).
 */
static uint32_t
tso_len(struct net_stack *st, struct net_tcp_conn *c, uint32_t room, uint32_t avail,
	uint32_t *segsz)
{
	uint32_t seg = tso_segsz(st, c), want, fit;
	bool odd, cut;

	*segsz = 0;
	want = NET_MIN(room, st->cfg.tso_max);
	if (seg == 0 || want <= c->mss || (st->cfg.tso_even_pieces && (seg & 1u)))
		return c->mss;
	fit = tso_fit(st, c, c->snd_nxt, want, &odd);
	cut = fit < want;
	if (!odd && fit < avail)
		fit -= fit % seg;
	if (fit <= c->mss || fit <= seg) {
		/* One segment after all: the windows allow less than two, or
		 * an odd piece (or the piece limit) came first (counted). Never
		 * flag a frame of one segment: librte_gso returns 0 for it and
		 * net_tap then reports it sent without writing it. */
		if (cut)
			st->stats.tcp_tso_fallbacks++;
		return c->mss;
	}
	*segsz = seg;
	return fit;
}

void
net_tcp_send_ack(struct net_stack *st, struct net_tcp_conn *c)
{
	net_tcp_xmit(st, c, c->snd_nxt, 0, RTE_TCP_ACK_FLAG);
}

/*
 * RFC 9293 section 3.10.7.1: answer a segment that has no connection.
 * If it has ACK: <SEQ=SEG.ACK><CTL=RST>; else <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
 * <CTL=RST,ACK>. Never answers a RST.
 */
void
net_tcp_send_rst_reply(struct net_stack *st, const struct rte_ipv4_hdr *rip,
	const struct rte_tcp_hdr *rth, uint32_t seglen)
{
	struct rte_mbuf *m;
	struct rte_ipv4_hdr *ip;
	struct rte_tcp_hdr *th;
	uint8_t *p;

	if (rth->tcp_flags & RTE_TCP_RST_FLAG)
		return;
	m = rte_pktmbuf_alloc(st->cfg.pool);
	if (m == NULL) {
		st->stats.tx_no_mbuf++;
		return;
	}
	p = (uint8_t *)rte_pktmbuf_append(m, NET_ETH_HLEN + NET_IP_HLEN + NET_TCP_HLEN);
	if (p == NULL) {
		rte_pktmbuf_free(m);
		return;
	}
	ip = (struct rte_ipv4_hdr *)(p + NET_ETH_HLEN);
	th = (struct rte_tcp_hdr *)(ip + 1);
	net_ipv4_fill(st, ip, rip->src_addr, IPPROTO_TCP, NET_IP_HLEN + NET_TCP_HLEN);
	th->src_port = rth->dst_port;
	th->dst_port = rth->src_port;
	th->data_off = (uint8_t)((NET_TCP_HLEN / 4) << 4);
	th->rx_win = 0;
	th->tcp_urp = 0;
	if (rth->tcp_flags & RTE_TCP_ACK_FLAG) {
		th->sent_seq = rth->recv_ack;
		th->recv_ack = 0;
		th->tcp_flags = RTE_TCP_RST_FLAG;
	} else {
		th->sent_seq = 0;
		th->recv_ack = rte_cpu_to_be_32(rte_be_to_cpu_32(rth->sent_seq) + seglen);
		th->tcp_flags = RTE_TCP_RST_FLAG | RTE_TCP_ACK_FLAG;
	}
	fill_cksum(st, m, ip, th, NET_TCP_HLEN, 0);
	st->stats.tcp_rst_tx++;
	net_ipv4_output(st, m, rip->src_addr);
}

void
net_tcp_rtx_arm(struct net_stack *st, struct net_tcp_conn *c)
{
	uint64_t t = c->rto_us;

	c->flags &= ~(NET_TCPF_PERSIST | NET_TCPF_TLP_ARMED | NET_TCPF_REO_ARMED);
	/* RFC 8985 section 7.2: a probe timeout of 2 SRTT when SACK is on,
	 * no probe is out and the timer is not backed off, plus the
	 * receiver's worst-case delayed-ACK time when one segment is in
	 * flight (its ACK may be delayed), at least NET_TCP_PTO_MIN_US (as
	 * Linux: a timer a few microseconds long would only race the ACK).
	 * SRTT comes from every ACK (net_tcp_rack_deliver), so delayed ACKs
	 * do not inflate it. In SACK recovery the same timeout resends the
	 * first hole once more (its resend was probably lost: with a small
	 * window no later SACK may ever tell) instead of waiting for the RTO;
	 * RFC 8985 arms no probe in recovery. */
	if ((c->flags & NET_TCPF_SACK_OK) && net_tcp_sb(st, c)->tlp_n < NET_TCP_TLP_MAX &&
			c->srtt_us != 0 && c->backoff == 0 && c->snd_nxt == c->snd_max &&
			(c->state == NET_TCP_ESTABLISHED || c->state == NET_TCP_CLOSE_WAIT ||
			c->state == NET_TCP_FIN_WAIT_1 || c->state == NET_TCP_CLOSING ||
			c->state == NET_TCP_LAST_ACK)) {
		uint64_t pto = NET_MAX(2 * (uint64_t)c->srtt_us, (uint64_t)NET_TCP_PTO_MIN_US);

		if (c->snd_max - c->snd_una <= c->mss)
			pto += st->cfg.delack_us;
		pto <<= net_tcp_sb(st, c)->tlp_n;

		if (pto < t) {
			t = pto;
			c->flags |= NET_TCPF_TLP_ARMED;
		}
	}
	net_tcp_arm(st, &c->rtx_deadline, st->now_us + t);
}

void
net_tcp_tlp_fire(struct net_stack *st, struct net_tcp_conn *c)
{
	uint32_t end = net_tcp_data_end(c);
	uint32_t hi = SEQ_LT(c->snd_max, end) ? c->snd_max : end;

	c->flags &= ~NET_TCPF_TLP_ARMED;
	c->rtx_deadline = 0;
	if (!net_tcp_tx_room(st, c)) {
		/* The device takes nothing: what seems unanswered may not have
		 * left yet. Wait another probe timeout. */
		net_tcp_rtx_arm(st, c);
		return;
	}
	if (c->flags & NET_TCPF_IN_RECOVERY) {
		/* The first hole's resend is overdue. */
		if (net_tcp_sack_retransmit(st, c, c->snd_una) > 0)
			st->stats.tcp_lost_retransmits++;
		c->flags |= NET_TCPF_TLP_SENT;
		net_tcp_sb(st, c)->tlp_n++;
		c->rtx_deadline = 0;
		net_tcp_rtx_arm(st, c);
		return;
	}
	/* RFC 8985 section 7.3 prefers new data and falls back to the last
	 * segment sent again. Here the last segment goes first: a receiver
	 * that delays its ACKs (Linux does, up to 200 ms, when its window
	 * would not grow) delays the ACK of new in-order data too, and the
	 * RTO fires before it; a duplicate is answered at once (RFC 5681
	 * section 4.2), with a D-SACK if it arrived before. New data only
	 * when nothing sent is unacknowledged (a FIN alone). */
	if (SEQ_LT(c->snd_una, hi)) {
		uint32_t len = NET_MIN(hi - c->snd_una, (uint32_t)c->mss);

		c->flags &= ~NET_TCPF_RTT_TIMING;	/* Karn */
		if (net_tcp_xmit(st, c, hi - len, len, RTE_TCP_ACK_FLAG | RTE_TCP_PSH_FLAG) == 0) {
			st->stats.tcp_tlp_probes++;
			c->flags |= NET_TCPF_TLP_SENT;
		}
	} else if (SEQ_LT(c->snd_nxt, end) && c->snd_nxt - c->snd_una + c->mss <= c->snd_wnd) {
		uint32_t len = NET_MIN(end - c->snd_nxt, (uint32_t)c->mss);
		uint8_t fl = RTE_TCP_ACK_FLAG | RTE_TCP_PSH_FLAG;

		if (net_tcp_xmit(st, c, c->snd_nxt, len, fl) == 0) {
			c->snd_nxt += len;
			if (SEQ_GT(c->snd_nxt, c->snd_max))
				c->snd_max = c->snd_nxt;
			st->stats.tcp_tlp_probes++;
			c->flags |= NET_TCPF_TLP_SENT;
		}
	}
	/* Unanswered, the probe is repeated (the timeout doubling) up to
	 * NET_TCP_TLP_MAX times before the RTO: a probe or its ACK lost while
	 * the peer delays its ACKs would otherwise cost the 200 ms RTO. RFC
	 * 8985 sends one. */
	net_tcp_sb(st, c)->tlp_n++;
	c->rtx_deadline = 0;
	net_tcp_rtx_arm(st, c);
}

/* Arm the retransmission timer if it is not running (RFC 6298 (5.1)). */
static void
arm_rtx(struct net_stack *st, struct net_tcp_conn *c)
{
	if (c->rtx_deadline == 0 || (c->flags & NET_TCPF_PERSIST))
		net_tcp_rtx_arm(st, c);
}

/* Retransmit the first unacknowledged segment (fast retransmit, NewReno
 * partial ACK). Does not move snd_nxt. */
void
net_tcp_retransmit_head(struct net_stack *st, struct net_tcp_conn *c)
{
	uint32_t end = net_tcp_data_end(c);
	/* Never past SND.MAX: bytes not yet sent are new data (the output
	 * loop's), and the peer's ACK of them would be dropped as acknowledging
	 * something not yet sent. Segments may be shorter than the MSS (the end
	 * of the data at the time, or a TSO port's shorter segments). */
	uint32_t hi = SEQ_LT(c->snd_max, end) ? c->snd_max : end;
	uint32_t len = SEQ_LT(c->snd_una, hi) ? NET_MIN(hi - c->snd_una, (uint32_t)c->mss) : 0;
	uint8_t flags = RTE_TCP_ACK_FLAG;

	if ((c->flags & NET_TCPF_FIN_SENT) && c->snd_una + len == end && SEQ_GT(c->snd_max, end))
		flags |= RTE_TCP_FIN_FLAG;
	if (len == 0 && !(flags & RTE_TCP_FIN_FLAG))
		return;
	if (len > 0)
		flags |= RTE_TCP_PSH_FLAG;
	/* Karn: a retransmitted segment is never timed. */
	c->flags &= ~NET_TCPF_RTT_TIMING;
	net_tcp_xmit(st, c, c->snd_una, len, flags);
}

uint32_t
net_tcp_sack_retransmit(struct net_stack *st, struct net_tcp_conn *c, uint32_t seq)
{
	uint32_t end = net_tcp_data_end(c), limit;
	uint32_t len;

	/* Only what was sent (see net_tcp_retransmit_head). */
	if (SEQ_LT(c->snd_max, end))
		end = c->snd_max;
	seq = net_tcp_sack_skip(st, c, seq, &limit);
	if (!SEQ_LT(seq, end))
		return 0;
	len = NET_MIN(end - seq, (uint32_t)c->mss);
	if (SEQ_LT(limit, seq + len))
		len = limit - seq;
	/* Karn: nothing retransmitted is timed. */
	c->flags &= ~NET_TCPF_RTT_TIMING;
	if (net_tcp_xmit(st, c, seq, len, RTE_TCP_ACK_FLAG | RTE_TCP_PSH_FLAG) != 0)
		return 0;
	st->stats.tcp_sack_retransmits++;
	if (SEQ_GT(seq + len, net_tcp_sb(st, c)->high_rxt))
		net_tcp_sb(st, c)->high_rxt = seq + len;
	if (seq == c->snd_una) {
		net_tcp_sb(st, c)->rxt_mark = c->snd_max;
		net_tcp_sb(st, c)->rxt_mark_on = true;
	}
	arm_rtx(st, c);
	return len;
}

bool
net_tcp_tx_room(struct net_stack *st, struct net_tcp_conn *c)
{
	if (st->tx_n < NET_TX_BATCH)
		return true;
	net_tx_flush(st);
	if (st->tx_n < NET_TX_BATCH)
		return true;
	if (!(c->flags & NET_TCPF_TX_WAIT)) {
		c->flags |= NET_TCPF_TX_WAIT;
		net_tcp_sb(st, c)->tx_wait_next = st->tx_wait_head;
		st->tx_wait_head = net_tcp_conn_index(st, c);
	}
	return false;
}

/*
 * RFC 6675 section 5 (C): while cwnd - pipe >= 1 SMSS, send NextSeg's
 * retransmissions. Rule 1 (lost holes) before new data, rule 3 (holes not
 * yet deemed lost) only once no new data can go (rules_3). Returns whether
 * anything was sent.
 */
static bool
sack_recovery_output(struct net_stack *st, struct net_tcp_conn *c, bool rule_3)
{
	bool sent = false;

	/* Each pass sends one segment or stops; bounded by the window. */
	for (uint32_t k = 0; k < 1024; k++) {
		uint32_t seq, len;

		if (net_tcp_sack_pipe(st, c) + c->mss > c->cwnd)
			break;
		if (net_tcp_sack_next_rtx(st, c, !rule_3, &seq, &len) != 0)
			break;
		if (!net_tcp_tx_room(st, c))
			break;
		if (net_tcp_sack_retransmit(st, c, seq) == 0)
			break;
		sent = true;
	}
	return sent;
}

static void
send_syn(struct net_stack *st, struct net_tcp_conn *c)
{
	uint8_t flags = RTE_TCP_SYN_FLAG;

	if (c->state == NET_TCP_SYN_RECEIVED)
		flags |= RTE_TCP_ACK_FLAG;
	if (c->snd_max == c->iss) {
		/* First transmission of the SYN: time it (RFC 6298 section 3). */
		c->flags |= NET_TCPF_RTT_TIMING;
		c->rtt_seq = c->iss;
		c->rtt_start_us = st->now_us;
	}
	net_tcp_xmit(st, c, c->iss, 0, flags);
	c->snd_nxt = c->iss + 1;
	if (SEQ_GT(c->snd_nxt, c->snd_max))
		c->snd_max = c->snd_nxt;
	arm_rtx(st, c);
}

void
net_tcp_output(struct net_stack *st, struct net_tcp_conn *c)
{
	bool sent = false, sack_rec, sb_used, new_data = false;
	uint32_t end;

	switch (c->state) {
	case NET_TCP_SYN_SENT:
	case NET_TCP_SYN_RECEIVED:
		if (c->snd_nxt == c->iss)
			send_syn(st, c);
		else if (c->flags & NET_TCPF_ACK_NOW)
			send_syn(st, c);	/* peer retransmitted its SYN */
		return;
	case NET_TCP_CLOSED:
	case NET_TCP_LISTEN:
		return;
	case NET_TCP_TIME_WAIT:
		if (c->flags & NET_TCPF_ACK_NOW)
			net_tcp_send_ack(st, c);
		return;
	default:
		break;
	}

	end = net_tcp_data_end(c);
	sack_rec = (c->flags & (NET_TCPF_SACK_OK | NET_TCPF_IN_RECOVERY)) ==
		(NET_TCPF_SACK_OK | NET_TCPF_IN_RECOVERY);
	sb_used = (c->flags & NET_TCPF_SACK_OK) && net_tcp_sb(st, c)->n > 0;
	if (sack_rec)
		sent = sack_recovery_output(st, c, false);
	for (;;) {
		uint32_t outstanding = c->snd_nxt - c->snd_una, pipe = outstanding;
		uint32_t limit = 0, avail, rwnd, usable, len, cwnd, segsz;
		uint8_t flags = RTE_TCP_ACK_FLAG;
		bool fin, cut = false;

		if (sb_used && SEQ_LT(c->snd_nxt, c->snd_max)) {
			/* Going back N after an RTO: skip SACKed ranges (RFC
			 * 6675 section 5.1) and stop each segment at the next. */
			uint32_t nx = net_tcp_sack_skip(st, c, c->snd_nxt, &limit);

			st->stats.tcp_sack_skipped_bytes += nx - c->snd_nxt;
			c->snd_nxt = nx;
			if (SEQ_GT(c->snd_nxt, c->snd_max))
				c->snd_max = c->snd_nxt;
			outstanding = c->snd_nxt - c->snd_una;
			pipe = outstanding - net_tcp_sack_below(st, c, c->snd_nxt);
			cut = true;
		} else if (sack_rec) {
			pipe = net_tcp_sack_pipe(st, c);
		}
		avail = SEQ_LT(c->snd_nxt, end) ? end - c->snd_nxt : 0;
		rwnd = c->snd_wnd > outstanding ? c->snd_wnd - outstanding : 0;
		cwnd = c->cwnd;
		/* RFC 3042 limited transmit: one new segment for each of the
		 * first two duplicate ACKs, so a small window still gets the
		 * ACKs fast retransmit needs. */
		if (!(c->flags & NET_TCPF_IN_RECOVERY) && c->dupacks > 0 && c->dupacks < 3 &&
				!SEQ_LT(c->snd_nxt, c->snd_max))
			cwnd += (uint32_t)c->dupacks * c->mss;
		usable = NET_MIN(rwnd, cwnd > pipe ? cwnd - pipe : 0);
		len = NET_MIN(NET_MIN(avail, usable), (uint32_t)c->mss);
		if (cut && SEQ_LT(limit, c->snd_nxt + len))
			len = limit - c->snd_nxt;
		else
			cut = false;
		if (len == 0)
			break;
		/* TSO: new data beyond one MSS as one frame (not when resending,
		 * in recovery, or while SACK blocks may lengthen the options). */
		segsz = 0;
		if (st->cfg.tso_max != 0 && len == c->mss && !cut &&
				!SEQ_LT(c->snd_nxt, c->snd_max) &&
				!(c->flags & NET_TCPF_IN_RECOVERY) && c->ooo_segs == 0)
			len = tso_len(st, c, NET_MIN(avail, usable), avail, &segsz);
		/* Sender SWS avoidance: a short segment goes out only when it
		 * ends the queued data or is at least half the largest window
		 * the peer offered (or it fills a hole before SACKed data). */
		if (len < c->mss && len < avail && len < c->max_snd_wnd / 2 && !cut)
			break;
		fin = (c->flags & NET_TCPF_FIN_QUEUED) && c->snd_nxt + len == end;
		if (fin)
			flags |= RTE_TCP_FIN_FLAG;
		if (c->snd_nxt + len == end)
			flags |= RTE_TCP_PSH_FLAG;
		if (!net_tcp_tx_room(st, c))
			break;	/* resumed by net_tcp_poll when the device drains */
		if (SEQ_LT(c->snd_nxt, c->snd_max)) {
			st->stats.tcp_retransmits++;
		} else if (!(c->flags & NET_TCPF_RTT_TIMING)) {
			/* RFC 6298 section 3: time one new segment per RTT (Karn:
			 * never a retransmitted one). */
			c->flags |= NET_TCPF_RTT_TIMING;
			c->rtt_seq = c->snd_nxt;
			c->rtt_start_us = st->now_us;
		}
		if (xmit(st, c, c->snd_nxt, len, flags, segsz) != 0)
			break;
		sent = true;
		c->snd_nxt += len;
		if (fin) {
			c->snd_nxt++;
			c->flags |= NET_TCPF_FIN_SENT;
		}
		if (SEQ_GT(c->snd_nxt, c->snd_max))
			c->snd_max = c->snd_nxt;
		arm_rtx(st, c);
		new_data = true;
	}
	/* RFC 8985 section 7.2: the probe timeout restarts after new data is
	 * sent, with the flight as it now is (armed when the first segment
	 * left, it would still add the one-segment delayed-ACK allowance). */
	if (new_data && (c->flags & NET_TCPF_TLP_ARMED))
		net_tcp_rtx_arm(st, c);
	/* NextSeg rule 3: no new data could go, so resend holes not yet
	 * deemed lost while the pipe allows. */
	if (sack_rec && sack_recovery_output(st, c, true))
		sent = true;
	/* A FIN with no data left to carry it (RFC 9293 section 3.10.4). It
	 * takes no window: a peer with a zero window still accepts it once
	 * its window opens, and retransmission covers the rest. */
	if ((c->flags & NET_TCPF_FIN_QUEUED) && c->snd_nxt == end) {
		if (net_tcp_xmit(st, c, c->snd_nxt, 0, RTE_TCP_ACK_FLAG | RTE_TCP_FIN_FLAG) == 0) {
			sent = true;
			c->snd_nxt++;
			c->flags |= NET_TCPF_FIN_SENT;
			if (SEQ_GT(c->snd_nxt, c->snd_max))
				c->snd_max = c->snd_nxt;
			arm_rtx(st, c);
		}
	}
	/* Persist timer (RFC 9293 section 3.8.6.1): data waits, nothing is in
	 * flight to bring an ACK, so probe the window when it fires. */
	if (SEQ_LT(c->snd_nxt, end) && c->snd_nxt == c->snd_una && c->rtx_deadline == 0) {
		uint64_t t = (uint64_t)c->rto_us << NET_MIN(c->persist_backoff, (uint8_t)16);

		c->flags &= ~(NET_TCPF_TLP_ARMED | NET_TCPF_REO_ARMED);
		c->flags |= NET_TCPF_PERSIST;
		net_tcp_arm(st, &c->rtx_deadline, st->now_us + NET_MIN(t, st->cfg.rto_max_us));
	}
	if (!sent && (c->flags & NET_TCPF_ACK_NOW))
		net_tcp_send_ack(st, c);
	else if (!sent && (c->flags & NET_TCPF_DELACK) && c->delack_deadline == 0)
		net_tcp_arm(st, &c->delack_deadline, st->now_us + st->cfg.delack_us);
}
