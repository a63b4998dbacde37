/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_tcp_rack: time-based loss detection (RACK, RFC 8985 section 6) and the
 * congestion window during SACK recovery (Proportional Rate Reduction, RFC
 * 6937), on top of the SACK scoreboard of net_tcp_sack.c.
 *
 * RACK needs each segment's last transmission time. The transmission log
 * (struct net_tcp_xl in st->sb, NET_TCP_XL_MAX entries per connection) keeps
 * it by ranges of sequence space: new data extends the last entry while the
 * clock has not moved (a burst), a retransmission cuts its range out of the
 * entries it covers and gets its own (flag RTX). When the log is full, two
 * neighbouring entries merge and keep the later time: a segment may then be
 * deemed lost later than RACK would, never earlier. Bytes the log no longer
 * covers fall back to RFC 6675's DupThresh rule (net_tcp_sack.c).
 *
 * On every ACK of a SACK connection: the segments it newly delivers give
 * RACK.xmit_ts / end_seq / rtt (section 6.2 step 2, retransmissions only
 * when the timestamp echo or the RTT shows the ACK is for them) and the
 * reordering evidence (step 3); the reordering window is min_RTT / 4, or 0
 * without reordering once in recovery or three segments are SACKed (step 4,
 * without the DSACK-driven multiplier); every unSACKed segment sent before
 * the most recently delivered one by more than the window is lost (step 5),
 * the others arm the reordering timer (section 6.3), which shares
 * rtx_deadline with the RTO and the tail loss probe (NET_TCPF_REO_ARMED).
 * Lost bytes are what NextSeg's rule 1 resends first, also below HighRxt (a
 * lost retransmission) and above the highest SACKed byte (a lost tail).
 *
 * PRR: on entering recovery ssthresh = max(FlightSize / 2, 2 SMSS) (RFC 5681
 * equation (4)); on each ACK in recovery, cwnd = pipe + sndcnt, sndcnt
 * proportional to the data delivered while pipe > ssthresh, else the slow
 * start reduction bound (PRR-SSRB); on leaving recovery cwnd = ssthresh
 * (net_tcp_input.c). The window therefore ends recovery at ssthresh instead
 * of at FlightSize + 1 SMSS.
 */
#include "net_tcp.h"

#include <string.h>

#include "net_internal.h"

#define DUP_THRESH 3u

/* Signed difference of two 32-bit microsecond times. */
static inline int32_t
tdiff(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

static inline uint32_t
now32(const struct net_stack *st)
{
	return (uint32_t)st->now_us;
}

/* Was (t1, end1) sent after (t2, end2)? (RFC 8985 RACK_sent_after) */
static inline bool
sent_after(uint32_t t1, uint32_t end1, uint32_t t2, uint32_t end2)
{
	return tdiff(t1, t2) > 0 || (t1 == t2 && SEQ_GT(end1, end2));
}

/* SACKed bytes in [l, r). */
static uint32_t
sacked_in(const struct net_stack *st, const struct net_tcp_conn *c, uint32_t l, uint32_t r)
{
	return net_tcp_sack_below(st, c, r) - net_tcp_sack_below(st, c, l);
}

static void
xl_remove(struct net_tcp_sb *sb, uint32_t i, uint32_t k)
{
	memmove(&sb->xl[i], &sb->xl[i + k], (sb->nxl - i - k) * sizeof(sb->xl[0]));
	sb->nxl -= k;
}

/* Make room for k more entries: merge neighbours, same flags first. */
static void
xl_room(struct net_tcp_sb *sb, uint32_t k)
{
	while (sb->nxl + k > NET_TCP_XL_MAX && sb->nxl >= 2) {
		uint32_t i = 0;

		for (uint32_t j = 0; j + 1 < sb->nxl; j++) {
			if (sb->xl[j].flags == sb->xl[j + 1].flags) {
				i = j;
				break;
			}
		}
		/* The later time: the merged range is deemed lost no earlier
		 * than any of its bytes would have been. Lost only if both
		 * halves were (else its lost part waits for the next check). */
		if (tdiff(sb->xl[i].t, sb->xl[i + 1].t) > 0)
			sb->xl[i + 1].t = sb->xl[i].t;
		sb->xl[i + 1].start = sb->xl[i].start;
		sb->xl[i + 1].flags = ((sb->xl[i].flags | sb->xl[i + 1].flags) & NET_XL_RTX) |
			(sb->xl[i].flags & sb->xl[i + 1].flags & NET_XL_LOST);
		xl_remove(sb, i, 1);
	}
}

/* Entry containing seq (the log must cover it). */
static uint32_t
xl_find(const struct net_tcp_sb *sb, uint32_t seq)
{
	uint32_t i = 0;

	while (i + 1 < sb->nxl && SEQ_GEQ(seq, sb->xl[i].end))
		i++;
	return i;
}

/* Split entry i at seq (strictly inside it); needs one free slot. */
static void
xl_split(struct net_tcp_sb *sb, uint32_t i, uint32_t seq)
{
	memmove(&sb->xl[i + 1], &sb->xl[i], (sb->nxl - i) * sizeof(sb->xl[0]));
	sb->nxl++;
	sb->xl[i].end = seq;
	sb->xl[i + 1].start = seq;
}

void
net_tcp_rack_sent(struct net_stack *st, struct net_tcp_conn *c, uint32_t seq, uint32_t len)
{
	struct net_tcp_sb *sb;
	uint32_t end = seq + len, t = now32(st), lo, hi, i, j;

	if (!(c->flags & NET_TCPF_SACK_OK) || len == 0)
		return;
	sb = net_tcp_sb(st, c);
	if (c->flags & NET_TCPF_IN_RECOVERY)
		sb->prr_out += len;
	if (sb->nxl == 0 || SEQ_GT(seq, sb->xl[sb->nxl - 1].end)) {
		/* First entry, or a gap (not expected): start again here. */
		if (SEQ_LT(seq, c->snd_max))
			return;	/* a resend of untracked bytes stays untracked */
		sb->nxl = 1;
		sb->xl[0] = (struct net_tcp_xl){ seq, end, t, 0 };
		return;
	}
	if (seq == sb->xl[sb->nxl - 1].end) {
		struct net_tcp_xl *last = &sb->xl[sb->nxl - 1];

		/* New data: part of the last burst, or a new entry. */
		if (last->t == t && last->flags == 0) {
			last->end = end;
			return;
		}
		xl_room(sb, 1);
		sb->xl[sb->nxl++] = (struct net_tcp_xl){ seq, end, t, 0 };
		return;
	}
	/* A retransmission: cut [lo, hi) (the part the log covers) out. */
	lo = SEQ_LT(seq, sb->xl[0].start) ? sb->xl[0].start : seq;
	hi = SEQ_GT(end, sb->xl[sb->nxl - 1].end) ? sb->xl[sb->nxl - 1].end : end;
	if (!SEQ_LT(lo, hi))
		return;
	xl_room(sb, 2);
	i = xl_find(sb, lo);
	if (SEQ_GT(lo, sb->xl[i].start)) {
		xl_split(sb, i, lo);
		i++;
	}
	j = xl_find(sb, hi - 1);
	if (SEQ_LT(hi, sb->xl[j].end))
		xl_split(sb, j, hi);
	/* Entries i..j are exactly [lo, hi): one entry sent now. */
	sb->xl[i].end = hi;
	sb->xl[i].t = t;
	sb->xl[i].flags = NET_XL_RTX;
	if (j > i)
		xl_remove(sb, i + 1, j - i);
}

void
net_tcp_rack_trim(struct net_stack *st, struct net_tcp_conn *c)
{
	struct net_tcp_sb *sb = net_tcp_sb(st, c);
	uint32_t k = 0;

	while (k < sb->nxl && SEQ_LEQ(sb->xl[k].end, c->snd_una))
		k++;
	if (k > 0)
		xl_remove(sb, 0, k);
	if (sb->nxl > 0 && SEQ_LT(sb->xl[0].start, c->snd_una))
		sb->xl[0].start = c->snd_una;
}

uint32_t
net_tcp_rack_class(const struct net_stack *st, const struct net_tcp_conn *c, uint32_t seq,
	uint32_t hi, uint32_t *flags)
{
	const struct net_tcp_sb *sb = net_tcp_sb(st, c);
	uint32_t i;

	if (sb->nxl == 0 || SEQ_GEQ(seq, sb->xl[sb->nxl - 1].end)) {
		*flags = 0;
		return hi;
	}
	if (SEQ_LT(seq, sb->xl[0].start)) {
		*flags = 0;
		return SEQ_LT(sb->xl[0].start, hi) ? sb->xl[0].start : hi;
	}
	i = xl_find(sb, seq);
	*flags = sb->xl[i].flags | NET_XL_TRACKED;
	return SEQ_LT(sb->xl[i].end, hi) ? sb->xl[i].end : hi;
}

/* RFC 8985 section 6.2 step 2 for entry e, delivered up to r. */
static void
rack_update(struct net_tcp_sb *sb, const struct net_stack *st, const struct net_tcp_conn *c,
	const struct net_tcp_xl *e, uint32_t r, bool ts_ok, uint32_t tsecr)
{
	uint32_t rtt = (uint32_t)tdiff(now32(st), e->t);

	if (e->flags & NET_XL_RTX) {
		/* The ACK may be for the original: with timestamps, the echo
		 * tells (an echo older than the resend's TSval); else an RTT
		 * below the minimum means it is. */
		uint64_t sent_us = st->now_us - rtt;
		uint32_t tsval = (uint32_t)(sent_us / 1000) + c->ts_offset;

		if (ts_ok && tsecr != 0 && SEQ_LT(tsecr, tsval))
			return;
		if (sb->min_rtt != 0 && rtt < sb->min_rtt)
			return;
	}
	if (!sb->rack_valid || sent_after(e->t, r, sb->rack_xmit_t, sb->rack_end)) {
		sb->rack_valid = true;
		sb->rack_xmit_t = e->t;
		sb->rack_end = r;
		sb->rack_rtt = rtt;
	}
}

/* Go through the entries overlapping the delivered range [l, r). Returns
 * the latest time among the never-resent ones (*found set) and whether a
 * resend was among them (*rtx). */
static void
deliver_range(struct net_stack *st, struct net_tcp_conn *c, uint32_t l, uint32_t r,
	bool ts_ok, uint32_t tsecr, uint32_t fack, bool *found, uint32_t *newest, bool *rtx)
{
	struct net_tcp_sb *sb = net_tcp_sb(st, c);

	for (uint32_t i = 0; i < sb->nxl; i++) {
		const struct net_tcp_xl *e = &sb->xl[i];
		uint32_t a = SEQ_GT(e->start, l) ? e->start : l;
		uint32_t b = SEQ_LT(e->end, r) ? e->end : r;

		if (!SEQ_LT(a, b))
			continue;
		/* Only bytes not SACKed before count as delivered now. */
		if (sacked_in(st, c, a, b) >= b - a)
			continue;
		rack_update(sb, st, c, e, b, ts_ok, tsecr);
		if (!(e->flags & NET_XL_RTX)) {
			uint32_t lim, x = net_tcp_sack_skip(st, c, a, &lim);
			uint32_t piece_end = SEQ_LT(lim, b) ? lim : b;

			/* Step 3: a never-resent segment delivered below the
			 * highest one delivered before was reordered (the
			 * lowest newly delivered piece of the entry decides). */
			if (sb->rack_valid && SEQ_LT(x, b) && SEQ_LT(piece_end, fack))
				sb->rack_reord = true;
			if (!*found || tdiff(e->t, *newest) > 0)
				*newest = e->t;
			*found = true;
		} else {
			*rtx = true;
		}
		if (SEQ_GT(b, sb->rack_fack))
			sb->rack_fack = b;
	}
}

uint32_t
net_tcp_rack_deliver(struct net_stack *st, struct net_tcp_conn *c, uint32_t ack,
	const uint32_t (*blk)[2], uint32_t nblk, bool ts_ok, uint32_t tsecr)
{
	struct net_tcp_sb *sb = net_tcp_sb(st, c);
	uint32_t fack = sb->rack_fack, newest = 0, sack_newest = 0;
	bool found = false, sack_found = false, rtx = false, sack_rtx = false;

	if (!(c->flags & NET_TCPF_SACK_OK) || sb->nxl == 0)
		return 0;
	if (!sb->rack_valid || SEQ_LT(fack, c->snd_una))
		fack = c->snd_una;
	if (SEQ_GT(ack, c->snd_una))
		deliver_range(st, c, c->snd_una, ack, ts_ok, tsecr, fack, &found, &newest, &rtx);
	for (uint32_t k = 0; k < nblk; k++) {
		uint32_t l = blk[k][0], r = blk[k][1];

		if (!SEQ_LT(l, r) || SEQ_LEQ(r, ack) || SEQ_GT(r, c->snd_max))
			continue;
		if (SEQ_LT(l, ack))
			l = ack;
		deliver_range(st, c, l, r, ts_ok, tsecr, fack, &sack_found, &sack_newest,
			&sack_rtx);
	}
	/* RTT sample (RFC 6298 section 3 without the one-per-RTT limit, the
	 * idea of RFC 7323 section 4): the newest segment the ACK newly
	 * acknowledges, from SACKed data when nothing was acknowledged
	 * cumulatively. Karn's rule, as Linux applies it: none when the ACK
	 * also covers resent data (a segment held behind a hole since long
	 * ago would look slow). The newest rather than the oldest keeps a
	 * delayed ACK or a filled hole from inflating SRTT (and with it the
	 * probe timeout); the RTO has its 200 ms floor. */
	if (found && !rtx)
		return NET_MAX((uint32_t)tdiff(now32(st), newest), 1u);
	if (sack_found && !sack_rtx && !SEQ_GT(ack, c->snd_una))
		return NET_MAX((uint32_t)tdiff(now32(st), sack_newest), 1u);
	return 0;
}

/* RFC 8985 section 6.2 step 4. */
static uint32_t
reo_wnd(const struct net_stack *st, const struct net_tcp_conn *c)
{
	const struct net_tcp_sb *sb = net_tcp_sb(st, c);

	if (!sb->rack_reord && ((c->flags & NET_TCPF_IN_RECOVERY) ||
			sb->sacked >= DUP_THRESH * (uint32_t)c->mss))
		return 0;
	return NET_MIN(sb->min_rtt / 4, c->srtt_us);
}

/* Step 5: mark lost; returns whether anything was newly, *timeout the
 * reordering timer wanted (0: none). */
static bool
detect_loss(struct net_stack *st, struct net_tcp_conn *c, uint32_t *timeout)
{
	struct net_tcp_sb *sb = net_tcp_sb(st, c);
	uint32_t wnd = reo_wnd(st, c), now = now32(st);
	bool lost = false;

	*timeout = 0;
	if (!sb->rack_valid)
		return false;
	for (uint32_t i = 0; i < sb->nxl; i++) {
		struct net_tcp_xl *e = &sb->xl[i];
		uint32_t top = e->end;
		int32_t remaining;

		if (e->flags & NET_XL_LOST)
			continue;
		if (SEQ_GEQ(e->start, c->snd_max))
			break;
		if (e->t == sb->rack_xmit_t) {
			/* Same clock tick as the most recently delivered
			 * segment: only new data below its end was sent before
			 * it; a resend in that tick was sent after the original
			 * the ACK may be for. */
			if ((e->flags & NET_XL_RTX) || !SEQ_LT(e->start, sb->rack_end))
				continue;
			if (SEQ_GT(top, sb->rack_end))
				top = sb->rack_end;
		} else if (tdiff(e->t, sb->rack_xmit_t) > 0) {
			continue;
		}
		if (sacked_in(st, c, e->start, top) >= top - e->start)
			continue;
		remaining = tdiff(e->t + sb->rack_rtt + wnd, now);
		if (remaining > 0) {
			if ((uint32_t)remaining > *timeout)
				*timeout = (uint32_t)remaining;
			continue;
		}
		if (top != e->end) {
			if (sb->nxl == NET_TCP_XL_MAX)
				continue;	/* no room to split: next time */
			xl_split(sb, i, top);
			e = &sb->xl[i];
		}
		e->flags |= NET_XL_LOST;
		st->stats.tcp_rack_lost++;
		lost = true;
	}
	/* Neighbours sent at the same time with the same fate are one. */
	for (uint32_t i = 0; i + 1 < sb->nxl;) {
		if (sb->xl[i].t == sb->xl[i + 1].t && sb->xl[i].flags == sb->xl[i + 1].flags) {
			sb->xl[i].end = sb->xl[i + 1].end;
			xl_remove(sb, i + 1, 1);
		} else {
			i++;
		}
	}
	return lost;
}

/* RFC 6937 section 3, on an ACK in recovery. */
static void
prr_ack(struct net_stack *st, struct net_tcp_conn *c, uint32_t delivered)
{
	struct net_tcp_sb *sb = net_tcp_sb(st, c);
	uint32_t pipe = net_tcp_sack_pipe(st, c), mss = c->mss;
	int64_t sndcnt;

	sb->prr_delivered += delivered;
	if (pipe > c->ssthresh) {
		/* Proportional rate reduction. */
		uint64_t fs = NET_MAX(sb->recover_fs, 1u);

		sndcnt = (int64_t)(((uint64_t)sb->prr_delivered * c->ssthresh + fs - 1) / fs) -
			sb->prr_out;
	} else {
		/* Slow start reduction bound: at most one SMSS above what was
		 * delivered, up to ssthresh. */
		int64_t limit = NET_MAX((int64_t)sb->prr_delivered - sb->prr_out,
			(int64_t)delivered) + mss;

		sndcnt = NET_MIN((int64_t)(c->ssthresh - pipe), limit);
	}
	if (sndcnt < 0)
		sndcnt = 0;
	/* Something must go when recovery starts (RFC 9937 section 6). */
	if (sb->prr_out == 0 && sndcnt < mss)
		sndcnt = mss;
	c->cwnd = (uint32_t)NET_MIN((int64_t)pipe + sndcnt, (int64_t)1 << 30);
}

static void
reo_arm(struct net_stack *st, struct net_tcp_conn *c, uint32_t timeout)
{
	uint64_t at = st->now_us + timeout;

	if (c->flags & NET_TCPF_PERSIST)
		return;
	if (c->rtx_deadline != 0 && c->rtx_deadline <= at)
		return;
	c->flags &= ~NET_TCPF_TLP_ARMED;
	c->flags |= NET_TCPF_REO_ARMED;
	net_tcp_arm(st, &c->rtx_deadline, at);
}

void
net_tcp_rack_after_ack(struct net_stack *st, struct net_tcp_conn *c, uint32_t delivered)
{
	uint32_t timeout;
	bool lost;

	if (!(c->flags & NET_TCPF_SACK_OK))
		return;
	lost = detect_loss(st, c, &timeout);
	if (lost && !(c->flags & NET_TCPF_IN_RECOVERY) && SEQ_GEQ(c->snd_una, c->recover) &&
			c->snd_una != c->snd_max)
		net_tcp_sack_enter_recovery(st, c);
	if (c->flags & NET_TCPF_IN_RECOVERY)
		prr_ack(st, c, delivered);
	if (timeout > 0 && c->snd_una != c->snd_max)
		reo_arm(st, c, timeout);
	if (lost)
		net_tcp_pending(st, c);
}

void
net_tcp_rack_reo_fire(struct net_stack *st, struct net_tcp_conn *c)
{
	uint32_t timeout;
	bool lost;

	c->flags &= ~NET_TCPF_REO_ARMED;
	c->rtx_deadline = 0;
	st->stats.tcp_rack_reo_timeouts++;
	net_tcp_rtx_arm(st, c);
	lost = detect_loss(st, c, &timeout);
	if (lost && !(c->flags & NET_TCPF_IN_RECOVERY) && SEQ_GEQ(c->snd_una, c->recover))
		net_tcp_sack_enter_recovery(st, c);
	if (lost && (c->flags & NET_TCPF_IN_RECOVERY))
		prr_ack(st, c, 0);
	if (timeout > 0)
		reo_arm(st, c, timeout);
	net_tcp_pending(st, c);
}
