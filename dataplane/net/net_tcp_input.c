/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_tcp_input: segment arrival, following the event processing of
 * RFC 9293 section 3.10.7 step by step (each step is marked below), with
 * the protections of RFC 5961 (RST and SYN challenge ACKs, ACK range check,
 * rate limit), PAWS and TS.Recent of RFC 7323, delayed ACKs (RFC 9293
 * section 3.8.6.3, RFC 5681 section 4.2), RTT measurement and RTO of
 * RFC 6298, and NewReno congestion control (RFC 5681, RFC 6582).
 *
 * Receive is zero copy: after validation, the headers are cut off the front
 * of the received mbuf (they are in its first segment) and the remaining
 * chain, trimmed to the part inside the window, is either handed to the
 * data callback (in order) or kept in the connection's out-of-order array.
 */
#include "net_tcp.h"

#include <errno.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_jhash.h>

#include "net_internal.h"

#define OPT_EOL 0
#define OPT_NOP 1
#define OPT_MSS 2
#define OPT_WS 3
#define OPT_SACKP 4
#define OPT_TS 8

#define TS_24_DAYS_S (24u * 24 * 3600)

#define OPT_SACK 5

struct tcp_opts {
	uint16_t mss;
	uint8_t ws;
	bool mss_ok, ws_ok, sack_ok, ts_ok;
	uint32_t tsval, tsecr;
	uint32_t nsack;			/* SACK blocks (RFC 2018), not on a SYN */
	uint32_t sack[4][2];		/* [left, right), host order */
};

/* A segment being processed. */
struct seg {
	uint32_t seq;
	uint32_t ack;
	uint32_t len;		/* payload bytes (m holds them when > 0) */
	uint32_t wnd;		/* window field, unscaled */
	uint8_t flags;
	struct tcp_opts o;
	struct rte_mbuf *m;	/* payload chain, headers cut; NULL once consumed */
};

static void
parse_opts(const uint8_t *p, uint32_t n, bool syn, struct tcp_opts *o)
{
	uint32_t i = 0;

	memset(o, 0, sizeof(*o));
	while (i < n) {
		uint8_t kind = p[i], olen;

		if (kind == OPT_EOL)
			break;
		if (kind == OPT_NOP) {
			i++;
			continue;
		}
		if (i + 1 >= n)
			break;
		olen = p[i + 1];
		if (olen < 2 || i + olen > n)
			break;	/* malformed: ignore the rest of the options */
		switch (kind) {
		case OPT_MSS:
			if (olen == 4 && syn) {
				o->mss = (uint16_t)((p[i + 2] << 8) | p[i + 3]);
				o->mss_ok = true;
			}
			break;
		case OPT_WS:
			if (olen == 3 && syn) {
				/* RFC 7323 section 2.3: treat a shift above 14 as 14. */
				o->ws = NET_MIN(p[i + 2], (uint8_t)14);
				o->ws_ok = true;
			}
			break;
		case OPT_SACKP:
			if (olen == 2 && syn)
				o->sack_ok = true;
			break;
		case OPT_TS:
			if (olen == 10) {
				o->tsval = ((uint32_t)p[i + 2] << 24) | ((uint32_t)p[i + 3] << 16) |
					((uint32_t)p[i + 4] << 8) | p[i + 5];
				o->tsecr = ((uint32_t)p[i + 6] << 24) | ((uint32_t)p[i + 7] << 16) |
					((uint32_t)p[i + 8] << 8) | p[i + 9];
				o->ts_ok = true;
			}
			break;
		case OPT_SACK:
			/* RFC 2018 section 3: 2 + 8n bytes, n = 1..4; a
			 * malformed block list is ignored as a whole. */
			if (!syn && olen >= 10 && (olen - 2) % 8 == 0 && o->nsack == 0) {
				uint32_t nb = NET_MIN((uint32_t)(olen - 2) / 8, 4u);

				for (uint32_t k = 0; k < nb; k++) {
					uint32_t e[2];

					memcpy(e, p + i + 2 + 8 * k, sizeof(e));
					o->sack[k][0] = rte_be_to_cpu_32(e[0]);
					o->sack[k][1] = rte_be_to_cpu_32(e[1]);
				}
				o->nsack = nb;
			}
			break;
		default:
			break;
		}
		i += olen;
	}
}

/* Cut n < pkt_len bytes off the front of chain m; returns the new head. */
static struct rte_mbuf *
mbuf_chop(struct rte_mbuf *m, uint32_t n)
{
	uint32_t total = m->pkt_len - n;
	uint16_t segs = 0;

	while (n > 0 && n >= m->data_len) {
		struct rte_mbuf *nx = m->next;

		n -= m->data_len;
		m->next = NULL;
		rte_pktmbuf_free_seg(m);
		m = nx;
	}
	m->data_off = (uint16_t)(m->data_off + n);
	m->data_len = (uint16_t)(m->data_len - n);
	m->pkt_len = total;
	for (struct rte_mbuf *s = m; s != NULL; s = s->next)
		segs++;
	m->nb_segs = segs;
	return m;
}

static void
seg_drop_data(struct seg *s)
{
	rte_pktmbuf_free(s->m);
	s->m = NULL;
	s->len = 0;
}

/* Effective send MSS (RFC 9293 section 3.7.1, options excluded) and the
 * initial window (RFC 6928: min(10 MSS, max(2 MSS, 14600))). */
static void
set_mss(struct net_stack *st, struct net_tcp_conn *c)
{
	uint32_t mss = NET_MIN((uint32_t)c->peer_mss, (uint32_t)net_tcp_our_mss(st));

	if (c->flags & NET_TCPF_TS_OK)
		mss -= 12;
	c->mss = (uint16_t)mss;
	c->cwnd = NET_MIN(10 * mss, NET_MAX(2 * mss, 14600u));
}

static void
peer_mss_from(struct net_tcp_conn *c, const struct tcp_opts *o)
{
	c->peer_mss = o->mss_ok ? NET_MAX(o->mss, (uint16_t)64) : 536;
}

/* RFC 5961 section 7: challenge ACKs, at most challenge_ack_limit a second. */
static void
challenge_ack(struct net_stack *st, struct net_tcp_conn *c)
{
	uint64_t sec = st->now_us / (1000 * 1000);

	if (sec != st->challenge_ack_sec) {
		st->challenge_ack_sec = sec;
		st->challenge_acks = 0;
	}
	if (st->challenge_acks >= st->cfg.challenge_ack_limit) {
		st->stats.tcp_challenge_acks_limited++;
		return;
	}
	st->challenge_acks++;
	st->stats.tcp_challenge_acks++;
	c->flags |= NET_TCPF_ACK_NOW;
	net_tcp_pending(st, c);
}

/* RFC 6298 section 2 with G = 1 ms. */
void
net_tcp_rtt_sample(struct net_stack *st, struct net_tcp_conn *c, uint32_t r)
{
	struct net_tcp_sb *sb = net_tcp_sb(st, c);
	uint64_t rto;

	if (sb->min_rtt == 0 || r < sb->min_rtt)
		sb->min_rtt = r;	/* RACK.min_RTT (RFC 8985 6.2 step 1) */
	if (c->srtt_us == 0 && c->rttvar_us == 0) {
		c->srtt_us = r;			/* (2.2) */
		c->rttvar_us = r / 2;
	} else {				/* (2.3), beta 1/4, alpha 1/8 */
		uint32_t d = c->srtt_us > r ? c->srtt_us - r : r - c->srtt_us;

		c->rttvar_us = (3 * c->rttvar_us + d) / 4;
		c->srtt_us = (7 * c->srtt_us + r) / 8;
	}
	rto = (uint64_t)c->srtt_us + NET_MAX(1000u, 4 * c->rttvar_us);
	rto = NET_MAX(rto, st->cfg.rto_min_us);	/* (2.4) */
	rto = NET_MIN(rto, st->cfg.rto_max_us);	/* (2.5) */
	c->rto_us = (uint32_t)rto;
}

static void
deliver(struct net_stack *st, struct net_tcp_conn *c, struct rte_mbuf *m, uint32_t len)
{
	if ((c->flags & (NET_TCPF_USER_GONE | NET_TCPF_RST_PENDING)) ||
			!(c->flags & NET_TCPF_USER) || c->ops == NULL || c->ops->data == NULL) {
		rte_pktmbuf_free(m);
		return;
	}
	c->rcv_held += len;
	c->ops->data(c->arg, c, m, len);
}

/* RFC 9293 section 3.10.7.4, eighth step: the FIN at rcv_nxt. */
static void
fin_input(struct net_stack *st, struct net_tcp_conn *c)
{
	bool fin_acked = (c->flags & NET_TCPF_FIN_SENT) && c->snd_una == c->snd_max;

	c->rcv_nxt++;
	c->flags &= ~NET_TCPF_RCV_FIN;
	c->flags |= NET_TCPF_ACK_NOW;
	if ((c->flags & NET_TCPF_USER) && !(c->flags & NET_TCPF_USER_GONE) &&
			c->ops != NULL && c->ops->eof != NULL)
		c->ops->eof(c->arg, c);
	switch (c->state) {
	case NET_TCP_SYN_RECEIVED:
	case NET_TCP_ESTABLISHED:
		net_tcp_set_state(st, c, NET_TCP_CLOSE_WAIT);
		break;
	case NET_TCP_FIN_WAIT_1:
		if (fin_acked) {
			net_tcp_set_state(st, c, NET_TCP_TIME_WAIT);
			net_tcp_finish(st, c, 0);
		} else {
			net_tcp_set_state(st, c, NET_TCP_CLOSING);
		}
		break;
	case NET_TCP_FIN_WAIT_2:
		c->tw_deadline = 0;
		net_tcp_set_state(st, c, NET_TCP_TIME_WAIT);
		net_tcp_finish(st, c, 0);
		break;
	default:
		break;
	}
}

/* Keep an out-of-order segment (seq > rcv_nxt). Consumes m. */
static void
ooo_insert(struct net_stack *st, struct net_tcp_conn *c, uint32_t seq, uint32_t len,
	struct rte_mbuf *m)
{
	uint32_t n = c->ooo_segs, i = 0;

	while (i < n && SEQ_LEQ(c->ooo[i].seq, seq))
		i++;
	if (i > 0) {
		const struct net_tcp_ooo *p = &c->ooo[i - 1];
		uint32_t pend = p->seq + p->len;

		if (SEQ_GEQ(pend, seq + len))
			goto drop;	/* already held */
		if (SEQ_GT(pend, seq)) {
			m = mbuf_chop(m, pend - seq);
			len -= pend - seq;
			seq = pend;
		}
	}
	if (i < n && SEQ_GT(seq + len, c->ooo[i].seq)) {
		/* Keep the part before the next held block; the rest comes
		 * again with the retransmission. */
		len = c->ooo[i].seq - seq;
		if (len == 0)
			goto drop;
		net_mbuf_trim_to(m, len);
	}
	if (n == st->cfg.ooo_max_segs) {
		st->stats.tcp_ooo_dropped++;
		rte_pktmbuf_free(m);
		return;
	}
	memmove(&c->ooo[i + 1], &c->ooo[i], (n - i) * sizeof(c->ooo[0]));
	c->ooo[i].seq = seq;
	c->ooo[i].len = len;
	c->ooo[i].m = m;
	c->ooo_segs++;
	st->stats.tcp_ooo_queued++;
	net_tcp_sb(st, c)->ooo_last_seq = seq;
	return;
drop:
	rte_pktmbuf_free(m);
}

/* RFC 9293 section 3.10.7.4, seventh step: segment text. */
static void
data_input(struct net_stack *st, struct net_tcp_conn *c, struct seg *s)
{
	if (s->seq != c->rcv_nxt) {
		/* A hole before it: hold it and ACK at once (RFC 5681 section
		 * 4.2: an out-of-order segment is acknowledged immediately, so
		 * the sender sees duplicate ACKs). */
		ooo_insert(st, c, s->seq, s->len, s->m);
		s->m = NULL;
		/* One duplicate ACK per segment, now: coalescing them at the
		 * end of the burst would hide the loss from fast retransmit. */
		net_tcp_send_ack(st, c);
		return;
	}
	c->rcv_nxt += s->len;
	deliver(st, c, s->m, s->len);
	s->m = NULL;
	if (c->ooo_segs > 0) {
		uint32_t k = 0;

		/* It may fill a hole: ACK at once (RFC 5681 section 4.2). */
		c->flags |= NET_TCPF_ACK_NOW;
		while (k < c->ooo_segs && SEQ_LEQ(c->ooo[k].seq, c->rcv_nxt)) {
			struct net_tcp_ooo e = c->ooo[k++];

			if (SEQ_LEQ(e.seq + e.len, c->rcv_nxt)) {
				rte_pktmbuf_free(e.m);
				continue;
			}
			if (e.seq != c->rcv_nxt) {
				uint32_t cut = c->rcv_nxt - e.seq;

				e.m = mbuf_chop(e.m, cut);
				e.len -= cut;
			}
			c->rcv_nxt += e.len;
			deliver(st, c, e.m, e.len);
		}
		memmove(&c->ooo[0], &c->ooo[k], (c->ooo_segs - k) * sizeof(c->ooo[0]));
		c->ooo_segs = (uint8_t)(c->ooo_segs - k);
	} else if (!(c->flags & NET_TCPF_ACK_NOW)) {
		/* Delayed ACK (RFC 9293 section 3.8.6.3): at least every second
		 * full-sized segment, else within delack_us. */
		if (++c->unacked_segs >= 2)
			c->flags |= NET_TCPF_ACK_NOW;
		else
			c->flags |= NET_TCPF_DELACK;
	}
}

/* NewReno on an ACK that advanced SND.UNA (already updated) by acked. */
static void
cc_ack(struct net_stack *st, struct net_tcp_conn *c, uint32_t acked)
{
	uint32_t mss = c->mss;

	if (c->flags & NET_TCPF_IN_RECOVERY) {
		if ((c->flags & NET_TCPF_SACK_OK) && SEQ_LT(c->snd_una, c->recover)) {
			struct net_tcp_sb *sb = net_tcp_sb(st, c);

			/* RFC 6675: a partial ACK changes the scoreboard and
			 * the pipe; net_tcp_output sends what cwnd - pipe
			 * allows (NextSeg). Like NewReno's partial ACK (RFC
			 * 6582 step 3), the new first hole, when SACKed data
			 * lies above it and it was not resent yet, is resent
			 * now: with a small window IsLost may never hold for it
			 * and the ACK clock would stop until the RTO. */
			if (sb->n > 0 && !SEQ_LT(c->snd_una, sb->high_rxt) &&
					SEQ_LT(c->snd_una, sb->blk[sb->n - 1].start))
				net_tcp_sack_retransmit(st, c, c->snd_una);
			return;
		}
		if (SEQ_GEQ(c->snd_una, c->recover)) {
			/* RFC 6582 section 3.2 step 3, full acknowledgment:
			 * deflate to min(ssthresh, max(FlightSize, SMSS) + SMSS).
			 * With SACK, PRR ends recovery at ssthresh (RFC 6937
			 * section 3), which its sending rule has approached. */
			uint32_t flight = c->snd_max - c->snd_una;

			if (c->flags & NET_TCPF_SACK_OK)
				c->cwnd = c->ssthresh;
			else
				c->cwnd = NET_MIN(c->ssthresh, NET_MAX(flight, mss) + mss);
			c->flags &= ~NET_TCPF_IN_RECOVERY;
			c->dupacks = 0;
			c->bytes_acked = 0;
		} else {
			/* Step 3, partial acknowledgment: retransmit the first
			 * unacknowledged segment, deflate by the amount acked,
			 * add back one SMSS if that was at least SMSS, and
			 * restart the timer ("slow but steady"). */
			net_tcp_retransmit_head(st, c);
			st->stats.tcp_fast_retransmits++;
			c->cwnd = c->cwnd > acked ? c->cwnd - acked : 0;
			if (acked >= mss)
				c->cwnd += mss;
			if (c->cwnd < mss)
				c->cwnd = mss;
			net_tcp_arm(st, &c->rtx_deadline, st->now_us + c->rto_us);
		}
		return;
	}
	c->dupacks = 0;
	if (c->cwnd < c->ssthresh) {
		/* Slow start by the bytes acknowledged (RFC 3465 byte counting)
		 * without its L limit: receivers coalesce ACKs of a burst (this
		 * stack acknowledges once per input burst, Linux after GRO), and
		 * growing by 1 SMSS per such stretch ACK would keep the window
		 * small for a long time. As Linux does; ACK division gains a
		 * sender nothing when growth is counted in bytes. */
		c->cwnd = NET_MIN(c->cwnd + NET_MIN(acked, 1u << 30), c->ssthresh);
	} else {
		/* Congestion avoidance, byte counting (RFC 5681 section 3.1). */
		c->bytes_acked += acked;
		if (c->bytes_acked >= c->cwnd) {
			c->bytes_acked -= c->cwnd;
			c->cwnd += mss;
		}
	}
	if (c->cwnd > (1u << 30))
		c->cwnd = 1u << 30;
}

static void
dupack(struct net_stack *st, struct net_tcp_conn *c)
{
	uint32_t mss = c->mss;

	if (c->dupacks < UINT8_MAX)
		c->dupacks++;
	if (c->flags & NET_TCPF_IN_RECOVERY) {
		/* RFC 6582 step 4 / RFC 5681 (4): inflate for each segment that
		 * left the network. With SACK the pipe estimate does that. */
		if (!(c->flags & NET_TCPF_SACK_OK))
			c->cwnd += mss;
		net_tcp_pending(st, c);
		return;
	}
	if (c->flags & NET_TCPF_SACK_OK) {
		/* RFC 6675 section 5: enter loss recovery on the DupThresh'th
		 * duplicate, or earlier when the scoreboard already says the
		 * first unacknowledged byte is lost; not for losses of a window
		 * already recovered (RFC 6675 (4.a), "HighACK > RecoveryPoint"). */
		uint32_t out = c->snd_max - c->snd_una, end = net_tcp_data_end(c);
		uint32_t oseg = (out + mss - 1) / mss;
		bool no_new = !SEQ_LT(c->snd_nxt, end) ||
			c->snd_nxt - c->snd_una + mss > c->snd_wnd;
		/* RFC 5827 early retransmit: fewer than four segments out and
		 * nothing new to send: oseg - 1 duplicates are enough. After a
		 * tail loss probe (RFC 8985), SACK of the probe shows holes. */
		bool early = (oseg < 4 && no_new && c->dupacks >= NET_MAX(oseg - 1, 1u)) ||
			(c->flags & NET_TCPF_TLP_SENT);

		/* RFC 6675 section 5.1: after an RTO no new recovery until
		 * HighACK >= RecoveryPoint (equal is enough: a loss right
		 * after a recovered window is a new loss). */
		if ((c->dupacks >= 3 || early || net_tcp_sack_is_lost(st, c, c->snd_una)) &&
				SEQ_GEQ(c->snd_una, c->recover)) {
			if (c->dupacks < 3)
				st->stats.tcp_early_retransmits++;
			net_tcp_sack_enter_recovery(st, c);
			return;
		}
	}
	if (c->dupacks < 3)
		net_tcp_pending(st, c);	/* limited transmit (RFC 3042) */
	if (c->flags & NET_TCPF_SACK_OK)
		return;
	/* RFC 5681 section 3.2 on the third duplicate, unless the ACK does not
	 * cover more than recover (RFC 6582 step 2: no new recovery for
	 * losses of the window already recovered, e.g. after an RTO). */
	if (c->dupacks == 3 && SEQ_GT(c->snd_una, c->recover)) {
		uint32_t flight = c->snd_max - c->snd_una;

		c->ssthresh = NET_MAX(flight / 2, 2 * mss);
		c->recover = c->snd_max;
		c->flags |= NET_TCPF_IN_RECOVERY;
		st->stats.tcp_fast_retransmits++;
		net_tcp_retransmit_head(st, c);
		c->cwnd = c->ssthresh + 3 * mss;
		net_tcp_pending(st, c);
	}
}

void
net_tcp_sack_enter_recovery(struct net_stack *st, struct net_tcp_conn *c)
{
	struct net_tcp_sb *sb = net_tcp_sb(st, c);
	uint32_t flight = c->snd_max - c->snd_una;

	c->flags &= ~(NET_TCPF_TLP_SENT | NET_TCPF_TLP_ARMED);
	sb->tlp_n = 0;
	c->recover = c->snd_max;
	/* (4.2) with RFC 5681 equation (4): ssthresh = max(FlightSize / 2,
	 * 2 SMSS). cwnd follows PRR (RFC 6937) from here, one ACK at a time
	 * (net_tcp_rack_after_ack); until then it is ssthresh. */
	c->ssthresh = NET_MAX(flight / 2, 2u * c->mss);
	c->cwnd = c->ssthresh;
	c->flags |= NET_TCPF_IN_RECOVERY;
	c->bytes_acked = 0;
	sb->high_rxt = c->snd_una;
	sb->prr_delivered = 0;
	sb->prr_out = 0;
	sb->recover_fs = flight;
	st->stats.tcp_sack_recoveries++;
	st->stats.tcp_fast_retransmits++;
	/* (4.3): the first unacknowledged segment goes now, the rest by
	 * NextSeg as the pipe allows. The timer restarts (a probe timeout
	 * armed before is not an RTO). */
	net_tcp_sack_retransmit(st, c, c->snd_una);
	net_tcp_rtx_arm(st, c);
	net_tcp_pending(st, c);
}

/*
 * In SACK recovery: data sent after the last resend of SND.UNA's segment
 * has been SACKed, yet SND.UNA has not moved: that resend was lost as well
 * (the idea of RACK, RFC 8985, for the first hole only). Resend it now
 * rather than waiting for the RTO.
 */
static void
lost_rtx_check(struct net_stack *st, struct net_tcp_conn *c)
{
	struct net_tcp_sb *sb = net_tcp_sb(st, c);

	if (!(c->flags & NET_TCPF_IN_RECOVERY) || !sb->rxt_mark_on || sb->n == 0 ||
			!SEQ_GT(sb->blk[sb->n - 1].end, sb->rxt_mark))
		return;
	st->stats.tcp_lost_retransmits++;
	sb->rxt_mark_on = false;
	net_tcp_sack_retransmit(st, c, c->snd_una);
	net_tcp_pending(st, c);
}

/*
 * RFC 9293 section 3.10.7.4, fifth step, for synchronized states.
 * Returns 0 to go on with the segment, -1 when it was dropped.
 */
static int
ack_input(struct net_stack *st, struct net_tcp_conn *c, struct seg *s)
{
	uint32_t new_wnd = s->wnd << c->snd_wscale;

	if (SEQ_GT(s->ack, c->snd_max)) {
		/* Acknowledges something not yet sent: ACK, drop. */
		c->flags |= NET_TCPF_ACK_NOW;
		net_tcp_pending(st, c);
		return -1;
	}
	/* RFC 5961 section 5.2: acceptable range is
	 * (SND.UNA - MAX.SND.WND) =< SEG.ACK =< SND.NXT; older: challenge. */
	if (SEQ_LT(s->ack, c->snd_una - c->max_snd_wnd)) {
		challenge_ack(st, c);
		return -1;
	}
	if (SEQ_GT(s->ack, c->snd_una)) {
		/* The SYN's sequence number is not data for the congestion
		 * window. */
		uint32_t acked = s->ack - c->snd_una - (c->snd_una == c->iss ? 1 : 0);
		uint32_t data_acked = 0, sacked_before = 0, old_una = c->snd_una, r = 0;
		bool sack = (c->flags & NET_TCPF_SACK_OK) != 0;

		if (sack) {
			/* RACK (RFC 8985) sees what the ACK delivers before the
			 * scoreboard takes it. */
			sacked_before = net_tcp_sb(st, c)->sacked;
			r = net_tcp_rack_deliver(st, c, s->ack, s->o.sack, s->o.nsack,
				s->o.ts_ok && (c->flags & NET_TCPF_TS_OK), s->o.tsecr);
		}

		if (SEQ_GT(s->ack, c->sq_seq)) {
			uint32_t end = net_tcp_data_end(c);

			data_acked = (SEQ_LT(s->ack, end) ? s->ack : end) - c->sq_seq;
			net_tcp_sq_drop(c, data_acked);
		}
		/* RTT samples from every ACK that advances SND.UNA: with SACK,
		 * the transmission log's time of the data it acknowledges (in
		 * microseconds; data sent twice gives none); without, the
		 * timestamp echo (RFC 7323 section 4.1, 1 ms clock, valid for
		 * retransmitted data too); else RFC 6298 section 3 / Karn: one
		 * timed segment never sent twice. */
		if (!sack && (c->flags & NET_TCPF_TS_OK) && s->o.ts_ok && s->o.tsecr != 0 &&
				c->state != NET_TCP_SYN_RECEIVED) {
			uint32_t d = net_tcp_ts_now(st, c) - s->o.tsecr;

			if (d < 60000)	/* ms; an older echo is not a sample */
				r = NET_MAX(d, 1u) * 1000;
		}
		if (r != 0) {
			c->flags &= ~NET_TCPF_RTT_TIMING;
			net_tcp_rtt_sample(st, c, r);
		} else if ((c->flags & NET_TCPF_RTT_TIMING) && SEQ_GT(s->ack, c->rtt_seq)) {
			c->flags &= ~NET_TCPF_RTT_TIMING;
			net_tcp_rtt_sample(st, c, (uint32_t)NET_MIN(st->now_us - c->rtt_start_us,
				(uint64_t)UINT32_MAX / 8));
		}
		c->backoff = 0;
		c->retries = 0;
		c->persist_backoff = 0;
		c->snd_una = s->ack;
		if (SEQ_LT(c->snd_nxt, c->snd_una))
			c->snd_nxt = c->snd_una;
		if (c->flags & NET_TCPF_SACK_OK) {
			struct net_tcp_sb *sb = net_tcp_sb(st, c);

			net_tcp_sack_trim(st, c);
			net_tcp_rack_trim(st, c);
			if (s->o.nsack > 0)
				net_tcp_sack_update(st, c, s->ack, s->o.sack, s->o.nsack);
			/* The new first hole was resent already (below HighRxt):
			 * watch for SACKs of data sent from now on. */
			sb->rxt_mark_on = (c->flags & NET_TCPF_IN_RECOVERY) &&
				SEQ_LT(c->snd_una, sb->high_rxt);
			sb->rxt_mark = c->snd_max;
			lost_rtx_check(st, c);
		}
		/* RFC 6298 (5.2) and (5.3); a probe is answered (RFC 8985). */
		c->flags &= ~NET_TCPF_TLP_SENT;
		if (sack)
			net_tcp_sb(st, c)->tlp_n = 0;
		if (c->snd_una == c->snd_max) {
			if (!(c->flags & NET_TCPF_PERSIST)) {
				c->rtx_deadline = 0;
				c->flags &= ~(NET_TCPF_TLP_ARMED | NET_TCPF_REO_ARMED);
			}
		} else {
			net_tcp_rtx_arm(st, c);
		}
		if (c->mss != 0 && acked > 0)
			cc_ack(st, c, acked);
		if (sack && c->mss != 0) {
			/* RFC 6937 DeliveredData: SND.UNA's advance plus the
			 * change in SACKed bytes. */
			int64_t d = (int64_t)(c->snd_una - old_una) +
				(int64_t)net_tcp_sb(st, c)->sacked - (int64_t)sacked_before;

			net_tcp_rack_after_ack(st, c, d > 0 ? (uint32_t)d : 0);
		}
		if (data_acked > 0 && (c->flags & NET_TCPF_USER) &&
				!(c->flags & NET_TCPF_USER_GONE) && c->ops != NULL &&
				c->ops->sent != NULL)
			c->ops->sent(c->arg, c, data_acked);
		net_tcp_pending(st, c);
	} else if (s->ack == c->snd_una) {
		uint32_t sacked = 0;

		if ((c->flags & NET_TCPF_SACK_OK) && s->o.nsack > 0) {
			uint32_t r = net_tcp_rack_deliver(st, c, s->ack, s->o.sack, s->o.nsack,
				s->o.ts_ok && (c->flags & NET_TCPF_TS_OK), s->o.tsecr);

			/* An RTT sample from SACKed data only updates RACK's
			 * minimum; SRTT keeps to cumulative ACKs. */
			if (r != 0 && (net_tcp_sb(st, c)->min_rtt == 0 ||
					r < net_tcp_sb(st, c)->min_rtt))
				net_tcp_sb(st, c)->min_rtt = r;
			sacked = net_tcp_sack_update(st, c, s->ack, s->o.sack, s->o.nsack);
			if (sacked > 0)
				lost_rtx_check(st, c);
		}
		/* RFC 5681 section 2, duplicate ACK: no data, no SYN/FIN, same
		 * window, data outstanding. With SACK it must SACK new data
		 * instead of keeping the window: new SACKed bytes are evidence
		 * enough, and receivers that autotune their buffer (Linux)
		 * change the window in nearly every ACK. */
		if (s->len == 0 && !(s->flags & (RTE_TCP_SYN_FLAG | RTE_TCP_FIN_FLAG)) &&
				c->snd_max != c->snd_una &&
				((c->flags & NET_TCPF_SACK_OK) ? sacked > 0 :
				new_wnd == c->snd_wnd))
			dupack(st, c);
		else if (!(c->flags & NET_TCPF_SACK_OK))
			c->dupacks = 0;	/* with SACK only a cumulative ACK resets it */
		if ((c->flags & NET_TCPF_SACK_OK) && c->mss != 0 && c->snd_max != c->snd_una)
			net_tcp_rack_after_ack(st, c, sacked);
		if (sacked > 0)
			net_tcp_pending(st, c);	/* the pipe shrank: maybe send */
	}
	/* Window update: SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and
	 * SND.WL2 =< SEG.ACK). */
	if (SEQ_LT(c->snd_wl1, s->seq) || (c->snd_wl1 == s->seq && SEQ_LEQ(c->snd_wl2, s->ack))) {
		bool opened = new_wnd > c->snd_wnd;

		c->snd_wnd = new_wnd;
		c->snd_wl1 = s->seq;
		c->snd_wl2 = s->ack;
		if (new_wnd > c->max_snd_wnd)
			c->max_snd_wnd = new_wnd;
		if (opened) {
			if (c->flags & NET_TCPF_PERSIST) {
				c->flags &= ~NET_TCPF_PERSIST;
				c->rtx_deadline = 0;
			}
			c->persist_backoff = 0;
			net_tcp_pending(st, c);
		}
	}
	return 0;
}

/* A valid RST (RFC 9293 section 3.10.7.4 second step, RFC 5961 3.2). */
static void
reset_input(struct net_stack *st, struct net_tcp_conn *c)
{
	int status;

	st->stats.tcp_rst_rx++;
	switch (c->state) {
	case NET_TCP_SYN_RECEIVED:
		/* Passive: back to LISTEN (the entry simply goes away);
		 * active (simultaneous open): refused. */
		status = -ECONNREFUSED;
		break;
	case NET_TCP_ESTABLISHED:
	case NET_TCP_FIN_WAIT_1:
	case NET_TCP_FIN_WAIT_2:
	case NET_TCP_CLOSE_WAIT:
		status = -ECONNRESET;
		break;
	default:	/* CLOSING, LAST-ACK, TIME-WAIT */
		status = 0;
		break;
	}
	net_tcp_set_state(st, c, NET_TCP_CLOSED);
	net_tcp_finish(st, c, status);
}

static void
syn_sent_input(struct net_stack *st, struct net_tcp_conn *c, struct seg *s,
	const struct rte_ipv4_hdr *ip, const struct rte_tcp_hdr *th)
{
	bool ack = (s->flags & RTE_TCP_ACK_FLAG) != 0;

	/* RFC 9293 section 3.10.7.3, first: the ACK bit. */
	if (ack && (SEQ_LEQ(s->ack, c->iss) || SEQ_GT(s->ack, c->snd_max))) {
		net_tcp_send_rst_reply(st, ip, th, s->len);
		return;
	}
	/* Second: the RST bit. Only with an acceptable ACK (RFC 5961 3.2
	 * notes this check is enough in SYN-SENT). */
	if (s->flags & RTE_TCP_RST_FLAG) {
		if (ack) {
			st->stats.tcp_rst_rx++;
			net_tcp_set_state(st, c, NET_TCP_CLOSED);
			net_tcp_finish(st, c, -ECONNREFUSED);
		}
		return;
	}
	/* Fourth: the SYN bit. */
	if (!(s->flags & RTE_TCP_SYN_FLAG))
		return;
	c->irs = s->seq;
	c->rcv_nxt = s->seq + 1;
	c->rcv_adv = c->rcv_nxt;	/* nothing advertised yet in this space */
	peer_mss_from(c, &s->o);
	if (!s->o.ts_ok)
		c->flags &= ~NET_TCPF_TS_OK;
	if (!s->o.sack_ok)
		c->flags &= ~NET_TCPF_SACK_OK;
	if (!s->o.ws_ok || !(c->flags & NET_TCPF_WS_OK)) {
		c->flags &= ~NET_TCPF_WS_OK;
		c->snd_wscale = 0;
		c->rcv_wscale = 0;
	} else {
		c->snd_wscale = s->o.ws;
	}
	if (c->flags & NET_TCPF_TS_OK) {
		c->ts_recent = s->o.tsval;
		c->ts_recent_s = (uint32_t)(st->now_us / 1000000);
	}
	set_mss(st, c);
	/* The window of a SYN is not scaled (RFC 7323 section 2.2). */
	c->snd_wnd = s->wnd;
	c->max_snd_wnd = s->wnd;
	c->snd_wl1 = s->seq;
	c->snd_wl2 = s->ack;
	if (ack) {
		if ((c->flags & NET_TCPF_RTT_TIMING) && c->retries == 0)
			net_tcp_rtt_sample(st, c, (uint32_t)NET_MIN(st->now_us - c->rtt_start_us,
				(uint64_t)UINT32_MAX / 8));
		c->flags &= ~NET_TCPF_RTT_TIMING;
		c->snd_una = s->ack;
		c->rtx_deadline = 0;
		c->retries = 0;
		c->backoff = 0;
		net_tcp_set_state(st, c, NET_TCP_ESTABLISHED);
		net_tcp_keepalive_arm(st, c);
		c->flags |= NET_TCPF_ACK_NOW;
		net_tcp_pending(st, c);
		if (c->ops != NULL && c->ops->connected != NULL)
			c->ops->connected(c->arg, c);
		return;
	}
	/* Simultaneous open: SYN-RECEIVED, send <SYN,ACK> with our ISS. */
	net_tcp_set_state(st, c, NET_TCP_SYN_RECEIVED);
	c->snd_nxt = c->iss;
	net_tcp_pending(st, c);
}

/*
 * SYN cookies, used only while a listener's SYN backlog is full: the SYN
 * gets a SYN-ACK whose ISS encodes what the connection needs, and no table
 * entry; the handshake's ACK (SEG.ACK = ISS + 1) rebuilds it. The ISS is
 *   bits 31-27  t: a counter of 2^26 us (67 s) periods, mod 32
 *   bits 26-24  index of the MSS in cookie_mss (the largest not above the
 *               peer's)
 *   bits 23-0   keyed hash of the 4-tuple, the peer's ISN and t
 * A cookie is accepted during the period it was made in and the next one.
 * Window scale and SACK-permitted cannot fit: with timestamps they travel in
 * the low 6 bits of our SYN-ACK's TSval, which the ACK echoes (TSecr); a SYN
 * without timestamps gets a SYN-ACK offering only the MSS (no window scale,
 * no SACK, no timestamps), as Linux does. Cookie SYN-ACKs are limited to
 * syncookie_limit a second.
 */
#define COOKIE_T_SHIFT 26
#define COOKIE_TS_NOWS 0xfu
#define COOKIE_TS_SACK 0x10u
static const uint16_t cookie_mss[8] = { 536, 1200, 1360, 1440, 1460, 4036, 8000, 8960 };

static uint32_t
cookie_hash(const struct net_stack *st, uint32_t raddr, uint16_t rport, uint16_t lport,
	uint32_t peer_isn, uint32_t t)
{
	uint32_t w[5] = { raddr, st->cfg.ipv4_addr, ((uint32_t)rport << 16) | lport, peer_isn, t };

	return rte_jhash_32b(w, 5, (uint32_t)st->isn_key[0] ^ (uint32_t)(st->isn_key[1] >> 32)) &
		0xffffff;
}

static uint32_t
cookie_make(const struct net_stack *st, uint32_t raddr, uint16_t rport, uint16_t lport,
	uint32_t peer_isn, uint32_t mss_idx)
{
	uint32_t t = (uint32_t)(st->now_us >> COOKIE_T_SHIFT) & 31;

	return (t << 27) | (mss_idx << 24) | cookie_hash(st, raddr, rport, lport, peer_isn, t);
}

uint32_t
net_tcp_cookie_tsval(const struct net_tcp_conn *c, uint32_t ts_now)
{
	uint32_t bits = (c->flags & NET_TCPF_WS_OK) ? c->snd_wscale : COOKIE_TS_NOWS;

	if (c->flags & NET_TCPF_SACK_OK)
		bits |= COOKIE_TS_SACK;
	/* Below the clock, so later TSvals of the connection never go back. */
	return ((ts_now - 64) & ~0x3fu) | bits;
}

/* Answer a SYN with a cookie SYN-ACK, built from a template connection
 * that is never entered in the table. */
static void
syncookie_send(struct net_stack *st, const struct seg *s, const struct rte_ipv4_hdr *ip,
	const struct rte_tcp_hdr *th)
{
	struct net_tcp_conn t;
	uint64_t sec = st->now_us / (1000 * 1000);
	uint32_t mss_idx = 0;
	uint16_t peer = s->o.mss_ok ? s->o.mss : 536;

	if (sec != st->syncookie_sec) {
		st->syncookie_sec = sec;
		st->syncookies = 0;
	}
	if (st->syncookies >= st->cfg.syncookie_limit) {
		st->stats.tcp_syncookies_limited++;
		st->stats.tcp_syn_dropped++;
		return;
	}
	st->syncookies++;
	while (mss_idx + 1 < RTE_DIM(cookie_mss) && cookie_mss[mss_idx + 1] <= peer)
		mss_idx++;
	memset(&t, 0, sizeof(t));
	t.st = st;
	t.raddr = ip->src_addr;
	t.laddr = st->cfg.ipv4_addr;
	t.rport = th->src_port;
	t.lport = th->dst_port;
	t.state = NET_TCP_SYN_RECEIVED;
	t.flags = NET_TCPF_SYNCOOKIE;
	t.listener = NET_NO_LISTENER;
	t.irs = s->seq;
	t.rcv_nxt = s->seq + 1;
	t.rcv_adv = t.rcv_nxt;
	t.iss = cookie_make(st, t.raddr, t.rport, t.lport, s->seq, mss_idx);
	t.snd_una = t.snd_nxt = t.snd_max = t.iss;
	t.sq_seq = t.iss + 1;
	t.ts_offset = net_tcp_ts_offset(st, t.raddr, t.rport, t.lport);
	if (s->o.ts_ok && !st->cfg.no_timestamps) {
		t.flags |= NET_TCPF_TS_OK;
		t.ts_recent = s->o.tsval;
		if (s->o.ws_ok && !st->cfg.no_window_scale) {
			t.flags |= NET_TCPF_WS_OK;
			t.snd_wscale = s->o.ws;
			t.rcv_wscale = (uint8_t)st->tcp_rcv_wscale;
		}
		if (s->o.sack_ok && !st->cfg.no_sack)
			t.flags |= NET_TCPF_SACK_OK;
	}
	st->stats.tcp_syncookies_sent++;
	net_tcp_xmit(st, &t, t.iss, 0, RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG);
}

static void conn_input(struct net_stack *st, struct net_tcp_conn *c, struct seg *s,
	const struct rte_ipv4_hdr *ip, const struct rte_tcp_hdr *th);

/*
 * An ACK to a listener with no connection: a cookie handshake's ACK? If the
 * cookie is valid, make the connection (SYN-RECEIVED, as if its SYN had
 * been kept) and process the ACK, with any data, through conn_input, which
 * completes the handshake. Returns 0 when the segment was consumed, -1 when
 * it is not a valid cookie (the caller resets).
 */
static int
syncookie_ack(struct net_stack *st, uint32_t li, struct seg *s, const struct rte_ipv4_hdr *ip,
	const struct rte_tcp_hdr *th)
{
	struct net_tcp_listener *l = &st->listeners[li];
	uint32_t iss = s->ack - 1, irs = s->seq - 1;
	uint32_t t = iss >> 27, now_t = (uint32_t)(st->now_us >> COOKIE_T_SHIFT) & 31;
	struct net_tcp_conn *c;

	if (s->flags & (RTE_TCP_SYN_FLAG | RTE_TCP_RST_FLAG))
		return -1;
	if ((t != now_t && t != ((now_t - 1) & 31)) ||
			(iss & 0xffffff) != cookie_hash(st, ip->src_addr, th->src_port,
				th->dst_port, irs, t)) {
		st->stats.tcp_syncookies_failed++;
		return -1;
	}
	c = net_tcp_conn_new(st, ip->src_addr, th->src_port, th->dst_port);
	if (c == NULL) {
		st->stats.tcp_syn_dropped++;
		return 0;	/* the peer retransmits; no RST */
	}
	st->stats.tcp_syncookies_ok++;
	net_tcp_set_state(st, c, NET_TCP_SYN_RECEIVED);
	c->flags |= NET_TCPF_PASSIVE;
	c->listener = (uint16_t)li;
	l->syn_rcvd++;
	c->ops = l->ops;
	c->arg = l->arg;
	c->irs = irs;
	c->rcv_nxt = s->seq;
	/* The window our SYN-ACK offered (unscaled, rcv_held 0). */
	c->rcv_adv = c->rcv_nxt + NET_MIN(st->cfg.rcvbuf_bytes, 65535u);
	c->iss = iss;
	c->snd_una = iss;
	c->snd_nxt = c->snd_max = iss + 1;
	c->sq_seq = iss + 1;
	c->recover = iss;
	c->peer_mss = cookie_mss[(iss >> 24) & 7];
	if (s->o.ts_ok && !st->cfg.no_timestamps) {
		uint32_t bits = s->o.tsecr & 0x3f;

		c->flags |= NET_TCPF_TS_OK;
		c->ts_recent = s->o.tsval;
		c->ts_recent_s = (uint32_t)(st->now_us / 1000000);
		c->last_ack_sent = c->rcv_nxt;
		if ((bits & COOKIE_TS_NOWS) != COOKIE_TS_NOWS && !st->cfg.no_window_scale) {
			c->flags |= NET_TCPF_WS_OK;
			c->snd_wscale = (uint8_t)NET_MIN(bits & COOKIE_TS_NOWS, 14u);
			c->rcv_wscale = (uint8_t)st->tcp_rcv_wscale;
		}
		if ((bits & COOKIE_TS_SACK) && !st->cfg.no_sack)
			c->flags |= NET_TCPF_SACK_OK;
	}
	set_mss(st, c);
	c->snd_wnd = s->wnd << c->snd_wscale;
	c->max_snd_wnd = c->snd_wnd;
	c->snd_wl1 = s->seq;
	c->snd_wl2 = s->ack;
	conn_input(st, c, s, ip, th);
	return 0;
}

static void
listen_input(struct net_stack *st, uint32_t li, struct seg *s, const struct rte_ipv4_hdr *ip,
	const struct rte_tcp_hdr *th)
{
	struct net_tcp_listener *l = &st->listeners[li];
	struct net_tcp_conn *c;

	/* RFC 9293 section 3.10.7.2. */
	if (s->flags & RTE_TCP_RST_FLAG)
		return;
	if (s->flags & RTE_TCP_ACK_FLAG) {
		/* An ACK for an unknown connection is reset, unless it
		 * completes a cookie handshake. */
		if (st->cfg.no_syncookies || syncookie_ack(st, li, s, ip, th) != 0)
			net_tcp_send_rst_reply(st, ip, th, s->len);
		return;
	}
	if (!(s->flags & RTE_TCP_SYN_FLAG))
		return;
	if (!net_tcp_table_room(st)) {
		st->stats.tcp_syn_dropped++;
		return;
	}
	if (l->syn_rcvd >= l->backlog) {
		if (st->cfg.no_syncookies)
			st->stats.tcp_syn_dropped++;
		else
			syncookie_send(st, s, ip, th);
		return;
	}
	c = net_tcp_conn_new(st, ip->src_addr, th->src_port, th->dst_port);
	if (c == NULL) {
		st->stats.tcp_syn_dropped++;
		return;
	}
	net_tcp_set_state(st, c, NET_TCP_SYN_RECEIVED);
	c->flags |= NET_TCPF_PASSIVE;
	c->listener = (uint16_t)li;
	l->syn_rcvd++;
	c->ops = l->ops;
	c->arg = l->arg;
	c->irs = s->seq;
	c->rcv_nxt = s->seq + 1;
	c->rcv_adv = c->rcv_nxt;
	c->iss = net_tcp_isn(st, c->raddr, c->rport, c->lport);
	c->snd_una = c->snd_nxt = c->snd_max = c->iss;
	c->sq_seq = c->iss + 1;
	c->recover = c->iss;
	peer_mss_from(c, &s->o);
	if (s->o.ws_ok && !st->cfg.no_window_scale) {
		c->flags |= NET_TCPF_WS_OK;
		c->snd_wscale = s->o.ws;
		c->rcv_wscale = (uint8_t)st->tcp_rcv_wscale;
	}
	if (s->o.ts_ok && !st->cfg.no_timestamps) {
		c->flags |= NET_TCPF_TS_OK;
		c->ts_recent = s->o.tsval;
		c->ts_recent_s = (uint32_t)(st->now_us / 1000000);
	}
	if (s->o.sack_ok && !st->cfg.no_sack)
		c->flags |= NET_TCPF_SACK_OK;
	set_mss(st, c);
	c->snd_wnd = s->wnd;	/* unscaled in a SYN */
	c->max_snd_wnd = s->wnd;
	c->snd_wl1 = s->seq;
	c->snd_wl2 = c->iss;
	/* Data in the SYN is not kept (it is not acknowledged either, so the
	 * peer sends it again). The SYN-ACK goes out from net_tcp_poll. */
	net_tcp_pending(st, c);
}

/* RFC 9293 section 3.10.7.4: all synchronized states and SYN-RECEIVED. */
static void
conn_input(struct net_stack *st, struct net_tcp_conn *c, struct seg *s,
	const struct rte_ipv4_hdr *ip, const struct rte_tcp_hdr *th)
{
	uint32_t wnd = SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
	bool rst = (s->flags & RTE_TCP_RST_FLAG) != 0;
	uint32_t seglen;
	bool ok;

	/* RFC 7323 section 3.2: with timestamps on, a non-RST segment without
	 * them is dropped. Section 5.3 (PAWS): a TSval older than TS.Recent
	 * marks an old duplicate: ACK and drop, unless TS.Recent is more than
	 * 24 days old. */
	if ((c->flags & NET_TCPF_TS_OK) && !rst) {
		if (!s->o.ts_ok) {
			st->stats.tcp_paws_rejected++;
			seg_drop_data(s);
			return;
		}
		if ((int32_t)(s->o.tsval - c->ts_recent) < 0 &&
				(uint32_t)(st->now_us / 1000000) - c->ts_recent_s < TS_24_DAYS_S) {
			st->stats.tcp_paws_rejected++;
			c->flags |= NET_TCPF_ACK_NOW;
			net_tcp_pending(st, c);
			seg_drop_data(s);
			return;
		}
	}

	/* First: sequence number acceptability (the four cases). */
	seglen = s->len + ((s->flags & RTE_TCP_SYN_FLAG) ? 1 : 0) +
		((s->flags & RTE_TCP_FIN_FLAG) ? 1 : 0);
	if (seglen == 0)
		ok = wnd == 0 ? s->seq == c->rcv_nxt :
			SEQ_GEQ(s->seq, c->rcv_nxt) && SEQ_LT(s->seq, c->rcv_nxt + wnd);
	else
		ok = wnd != 0 && ((SEQ_GEQ(s->seq, c->rcv_nxt) &&
				SEQ_LT(s->seq, c->rcv_nxt + wnd)) ||
			(SEQ_GEQ(s->seq + seglen - 1, c->rcv_nxt) &&
				SEQ_LT(s->seq + seglen - 1, c->rcv_nxt + wnd)));
	if (!ok) {
		if (wnd == 0 && s->seq == c->rcv_nxt && !rst) {
			/* Zero window: still process its ACK (section 3.10.7.4
			 * "special allowance"), drop the text, re-advertise 0. */
			seg_drop_data(s);
			s->flags &= (uint8_t)~(RTE_TCP_FIN_FLAG | RTE_TCP_SYN_FLAG);
			c->flags |= NET_TCPF_ACK_NOW;
			net_tcp_pending(st, c);
		} else {
			st->stats.tcp_out_of_window++;
			seg_drop_data(s);
			if (rst)
				return;	/* RFC 5961 3.2: silently */
			if (c->state == NET_TCP_TIME_WAIT && (s->flags & RTE_TCP_FIN_FLAG))
				net_tcp_arm(st, &c->tw_deadline,
					st->now_us + st->cfg.time_wait_us);
			c->flags |= NET_TCPF_ACK_NOW;
			net_tcp_pending(st, c);
			return;
		}
	}
	/* Trim to the window: the front already received ... */
	if (SEQ_LT(s->seq, c->rcv_nxt)) {
		uint32_t d = c->rcv_nxt - s->seq;

		if (s->flags & RTE_TCP_SYN_FLAG) {
			s->flags &= (uint8_t)~RTE_TCP_SYN_FLAG;
			s->seq++;
			d--;
		}
		if (d >= s->len) {
			if (d > s->len)
				s->flags &= (uint8_t)~RTE_TCP_FIN_FLAG;	/* old FIN */
			seg_drop_data(s);
		} else if (d > 0) {
			s->m = mbuf_chop(s->m, d);
			s->len -= d;
		}
		s->seq = c->rcv_nxt;
		c->flags |= NET_TCPF_ACK_NOW;	/* duplicate data: ACK at once */
	}
	/* ... and the tail beyond the window. */
	if (s->len > 0 && SEQ_GT(s->seq + s->len, c->rcv_nxt + wnd)) {
		uint32_t keep = c->rcv_nxt + wnd - s->seq;

		s->flags &= (uint8_t)~RTE_TCP_FIN_FLAG;
		if (keep == 0) {
			seg_drop_data(s);
		} else {
			net_mbuf_trim_to(s->m, keep);
			s->len = keep;
		}
		c->flags |= NET_TCPF_ACK_NOW;
	}
	/* An acceptable segment: the peer is alive. */
	if ((c->state == NET_TCP_ESTABLISHED || c->state == NET_TCP_CLOSE_WAIT) &&
			st->cfg.keepalive_idle_us != 0) {
		if (c->snd_una == c->snd_max)
			c->retries = 0;
		net_tcp_keepalive_arm(st, c);
	}
	/* RFC 7323 section 4.3: TS.Recent from a segment covering
	 * Last.ACK.sent. */
	if ((c->flags & NET_TCPF_TS_OK) && s->o.ts_ok &&
			SEQ_LEQ(s->seq, c->last_ack_sent) &&
			(int32_t)(s->o.tsval - c->ts_recent) >= 0) {
		c->ts_recent = s->o.tsval;
		c->ts_recent_s = (uint32_t)(st->now_us / 1000000);
	}

	/* Second: RST (RFC 5961 section 3.2). */
	if (rst) {
		seg_drop_data(s);
		if (s->seq == c->rcv_nxt)
			reset_input(st, c);
		else
			challenge_ack(st, c);
		return;
	}
	/* Fourth: SYN in a synchronized state (RFC 5961 section 4.2). */
	if (s->flags & RTE_TCP_SYN_FLAG) {
		seg_drop_data(s);
		challenge_ack(st, c);
		return;
	}
	/* Fifth: ACK. */
	if (!(s->flags & RTE_TCP_ACK_FLAG)) {
		seg_drop_data(s);
		return;
	}
	if (c->state == NET_TCP_SYN_RECEIVED) {
		if (!(SEQ_GT(s->ack, c->snd_una) && SEQ_LEQ(s->ack, c->snd_max))) {
			seg_drop_data(s);
			net_tcp_send_rst_reply(st, ip, th, s->len);
			return;
		}
		net_tcp_set_state(st, c, NET_TCP_ESTABLISHED);
		net_tcp_keepalive_arm(st, c);
		c->snd_wnd = s->wnd << c->snd_wscale;
		c->snd_wl1 = s->seq;
		c->snd_wl2 = s->ack;
		c->max_snd_wnd = NET_MAX(c->max_snd_wnd, c->snd_wnd);
		c->rtx_deadline = 0;
		c->retries = 0;
		c->flags |= NET_TCPF_USER;
		if (c->flags & NET_TCPF_PASSIVE) {
			if (c->ops != NULL && c->ops->accept != NULL &&
					c->ops->accept(c->arg, c) < 0) {
				c->flags &= ~NET_TCPF_USER;
				c->flags |= NET_TCPF_RST_PENDING;
				net_tcp_pending(st, c);
				seg_drop_data(s);
				return;
			}
		} else if (c->ops != NULL && c->ops->connected != NULL) {
			c->ops->connected(c->arg, c);
		}
	}
	if (ack_input(st, c, s) != 0) {
		seg_drop_data(s);
		return;
	}
	if (c->flags & (NET_TCPF_REAP | NET_TCPF_RST_PENDING)) {
		seg_drop_data(s);
		return;
	}
	if ((c->flags & NET_TCPF_FIN_SENT) && c->snd_una == c->snd_max) {
		/* Our FIN is acknowledged. */
		switch (c->state) {
		case NET_TCP_FIN_WAIT_1:
			net_tcp_set_state(st, c, NET_TCP_FIN_WAIT_2);
			/* We closed: do not wait for the peer's FIN forever
			 * (as Linux's tcp_fin_timeout; RFC 9293 leaves it open). */
			net_tcp_arm(st, &c->tw_deadline, st->now_us + st->cfg.time_wait_us);
			break;
		case NET_TCP_CLOSING:
			net_tcp_set_state(st, c, NET_TCP_TIME_WAIT);
			net_tcp_finish(st, c, 0);
			break;
		case NET_TCP_LAST_ACK:
			seg_drop_data(s);
			net_tcp_set_state(st, c, NET_TCP_CLOSED);
			net_tcp_finish(st, c, 0);
			return;
		default:
			break;
		}
	}

	/* Seventh: segment text. */
	if (s->len > 0) {
		if (c->state == NET_TCP_ESTABLISHED || c->state == NET_TCP_FIN_WAIT_1 ||
				c->state == NET_TCP_FIN_WAIT_2) {
			if (s->flags & RTE_TCP_FIN_FLAG) {
				c->flags |= NET_TCPF_RCV_FIN;
				c->rcv_fin_seq = s->seq + s->len;
			}
			data_input(st, c, s);
			net_tcp_pending(st, c);
		} else {
			seg_drop_data(s);
		}
	} else if ((s->flags & RTE_TCP_FIN_FLAG) && s->seq != c->rcv_nxt) {
		/* A bare FIN beyond a hole. */
		c->flags |= NET_TCPF_RCV_FIN | NET_TCPF_ACK_NOW;
		c->rcv_fin_seq = s->seq;
		net_tcp_pending(st, c);
	}
	/* Eighth: FIN, once everything before it has arrived. */
	if ((s->flags & RTE_TCP_FIN_FLAG) && s->len == 0 && s->seq == c->rcv_nxt) {
		c->flags |= NET_TCPF_RCV_FIN;
		c->rcv_fin_seq = c->rcv_nxt;
	}
	if ((c->flags & NET_TCPF_RCV_FIN) && c->rcv_fin_seq == c->rcv_nxt &&
			!(c->flags & (NET_TCPF_REAP | NET_TCPF_RST_PENDING))) {
		switch (c->state) {
		case NET_TCP_SYN_RECEIVED:
		case NET_TCP_ESTABLISHED:
		case NET_TCP_FIN_WAIT_1:
		case NET_TCP_FIN_WAIT_2:
			fin_input(st, c);
			net_tcp_pending(st, c);
			break;
		default:
			/* CLOSE-WAIT, CLOSING, LAST-ACK: FIN already seen;
			 * TIME-WAIT: restart the 2 MSL timeout. */
			c->flags &= ~NET_TCPF_RCV_FIN;
			if (c->state == NET_TCP_TIME_WAIT)
				net_tcp_arm(st, &c->tw_deadline,
					st->now_us + st->cfg.time_wait_us);
			break;
		}
	}
}

static uint32_t
listener_find(const struct net_stack *st, uint16_t port)
{
	for (uint32_t i = 0; i < st->cfg.max_listeners; i++) {
		if (st->listeners[i].port == port)
			return i;
	}
	return NET_NONE;
}

void
net_tcp_input(struct net_stack *st, struct rte_mbuf *m, struct rte_ipv4_hdr *ip_in,
	uint32_t l4_off, uint32_t l4_len)
{
	struct rte_ipv4_hdr ip;
	struct rte_tcp_hdr th;
	struct net_tcp_conn *c;
	struct seg s;
	uint32_t doff;
	uint64_t l4f;

	st->stats.rx_tcp++;
	if (l4_len < NET_TCP_HLEN || rte_pktmbuf_data_len(m) < l4_off + NET_TCP_HLEN) {
		st->stats.rx_tcp_bad++;
		goto drop;
	}
	ip = *ip_in;
	th = *rte_pktmbuf_mtod_offset(m, const struct rte_tcp_hdr *, l4_off);
	doff = (uint32_t)(th.data_off >> 4) * 4;
	if (doff < NET_TCP_HLEN || doff > l4_len) {
		st->stats.rx_tcp_bad++;
		goto drop;
	}
	if (rte_pktmbuf_data_len(m) < l4_off + doff) {
		st->stats.rx_multiseg_hdr++;
		goto drop;
	}
	/* Checksum: GOOD (verified) or NONE (partial, the integrity checked
	 * by the sender's kernel, as from a veth) are accepted; BAD is
	 * dropped; UNKNOWN is verified unless the port is trusted. */
	l4f = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
	if (l4f == RTE_MBUF_F_RX_L4_CKSUM_BAD ||
			(l4f == RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN && !st->cfg.rx_l4_cksum_trusted &&
			net_ipv4_cksum_mbuf(m, l4_off, l4_len, &ip) != 0)) {
		st->stats.rx_tcp_bad++;
		st->stats.rx_tcp_cksum_bad++;
		goto drop;
	}
	if (th.src_port == 0 || th.dst_port == 0) {
		st->stats.rx_tcp_bad++;
		goto drop;
	}
	memset(&s, 0, sizeof(s));
	s.seq = rte_be_to_cpu_32(th.sent_seq);
	s.ack = rte_be_to_cpu_32(th.recv_ack);
	s.wnd = rte_be_to_cpu_16(th.rx_win);
	s.flags = th.tcp_flags;
	s.len = l4_len - doff;
	parse_opts(rte_pktmbuf_mtod_offset(m, const uint8_t *, l4_off + NET_TCP_HLEN),
		doff - NET_TCP_HLEN, (s.flags & RTE_TCP_SYN_FLAG) != 0, &s.o);
	if (s.len > 0) {
		rte_pktmbuf_adj(m, (uint16_t)(l4_off + doff));
		s.m = m;
		m = NULL;
	}

	c = net_tcp_conn_lookup(st, ip.src_addr, ip.dst_addr, th.src_port, th.dst_port);
	if (c != NULL && !(c->flags & NET_TCPF_REAP)) {
		if (c->state == NET_TCP_SYN_SENT)
			syn_sent_input(st, c, &s, &ip, &th);
		else
			conn_input(st, c, &s, &ip, &th);
	} else {
		uint32_t li = c == NULL ? listener_find(st, th.dst_port) : NET_NONE;

		if (li != NET_NONE) {
			listen_input(st, li, &s, &ip, &th);
		} else {
			/* RFC 9293 section 3.10.7.1: CLOSED. */
			st->stats.rx_tcp_no_conn++;
			net_tcp_send_rst_reply(st, &ip, &th, s.len +
				((s.flags & RTE_TCP_SYN_FLAG) ? 1 : 0) +
				((s.flags & RTE_TCP_FIN_FLAG) ? 1 : 0));
		}
	}
	rte_pktmbuf_free(s.m);
drop:
	rte_pktmbuf_free(m);
}
