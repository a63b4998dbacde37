/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_tcp_sack: the sender's SACK scoreboard (RFC 2018) and the loss
 * recovery decisions of RFC 6675 built on it.
 *
 * The scoreboard of a connection is a sorted array of disjoint, non-adjacent
 * ranges [start, end) of sequence space above SND.UNA that the peer reported
 * in SACK blocks. It lives in st->sb, one entry per connection slot (indexed
 * like st->conns, so struct net_tcp_conn does not grow). Holes are the gaps
 * between SND.UNA, the ranges and SND.MAX.
 *
 * RFC 6675 terms and how they are computed here, hole by hole (every byte of
 * a hole has the same number of SACKed bytes above it):
 *  - IsLost(seq): more than (DupThresh - 1) * SMSS bytes, or DupThresh
 *    discontiguous ranges, SACKed above seq (DupThresh = 3). The hole above
 *    the highest SACKed byte is never lost.
 *  - HighRxt: the byte after the highest one retransmitted in this recovery
 *    (sb->high_rxt).
 *  - SetPipe: each unSACKed byte counts once unless it is lost, and once
 *    more if it was retransmitted (below HighRxt).
 *  - NextSeg: rule 1 (the first lost byte at or above HighRxt), rule 2 (new
 *    data, decided by net_tcp_output), rule 3 (the first unSACKed byte at or
 *    above HighRxt below the highest SACKed byte). Rule 4 (rescue
 *    retransmission) is not done.
 *
 * RACK (net_tcp_rack.c) refines "lost" for the bytes its transmission log
 * tracks: a range RACK marked lost is lost wherever it lies (also a resend
 * below HighRxt, or data above the highest SACKed byte); a resend not marked
 * lost is in flight (counted once in the pipe, not offered again); data
 * never resent is lost when RACK or DupThresh says so.
 *
 * When the scoreboard is full, a new disjoint range is not recorded (the
 * data is then retransmitted although the peer holds it: wasteful, never
 * wrong). Ranges below SND.UNA are dropped as SND.UNA moves.
 */
#include "net_tcp.h"

#include <string.h>

#include "net_internal.h"

#define DUP_THRESH 3u

struct net_tcp_sb *
net_tcp_sb(const struct net_stack *st, const struct net_tcp_conn *c)
{
	return &st->sb[net_tcp_conn_index(st, c)];
}

void
net_tcp_sack_reset(struct net_stack *st, struct net_tcp_conn *c)
{
	struct net_tcp_sb *sb = net_tcp_sb(st, c);

	sb->n = 0;
	sb->sacked = 0;
	sb->high_rxt = c->snd_una;
}

static void
sb_remove(struct net_tcp_sb *sb, uint32_t i)
{
	sb->sacked -= sb->blk[i].end - sb->blk[i].start;
	memmove(&sb->blk[i], &sb->blk[i + 1], (sb->n - i - 1) * sizeof(sb->blk[0]));
	sb->n--;
}

/* Add [l, r) (already checked: SND.UNA < l < r <= data end). Returns the
 * bytes newly SACKed. */
static uint32_t
sb_add(struct net_stack *st, struct net_tcp_sb *sb, uint32_t l, uint32_t r)
{
	uint32_t i = 0, before = sb->sacked;

	/* First range ending at or after l: it may touch or overlap [l, r). */
	while (i < sb->n && SEQ_LT(sb->blk[i].end, l))
		i++;
	if (i == sb->n || SEQ_LT(r, sb->blk[i].start)) {
		/* Disjoint from all: insert at i. */
		if (sb->n == NET_TCP_SB_MAX) {
			st->stats.tcp_sack_sb_full++;
			return 0;
		}
		memmove(&sb->blk[i + 1], &sb->blk[i], (sb->n - i) * sizeof(sb->blk[0]));
		sb->blk[i].start = l;
		sb->blk[i].end = r;
		sb->n++;
		sb->sacked += r - l;
		return r - l;
	}
	/* Merge into range i, then swallow the ranges that now touch it. */
	if (SEQ_LT(l, sb->blk[i].start)) {
		sb->sacked += sb->blk[i].start - l;
		sb->blk[i].start = l;
	}
	if (SEQ_GT(r, sb->blk[i].end)) {
		sb->sacked += r - sb->blk[i].end;
		sb->blk[i].end = r;
	}
	while (i + 1 < sb->n && SEQ_GEQ(sb->blk[i].end, sb->blk[i + 1].start)) {
		uint32_t nend = sb->blk[i + 1].end;
		uint32_t overlap = sb->blk[i].end - sb->blk[i + 1].start;

		/* The bytes of i+1 that i already covers were counted twice. */
		if (SEQ_GT(nend, sb->blk[i].end)) {
			sb->sacked -= overlap;
			sb->blk[i].end = nend;
		} else {
			sb->sacked -= nend - sb->blk[i + 1].start;
		}
		memmove(&sb->blk[i + 1], &sb->blk[i + 2], (sb->n - i - 2) * sizeof(sb->blk[0]));
		sb->n--;
	}
	return sb->sacked - before;
}

uint32_t
net_tcp_sack_update(struct net_stack *st, struct net_tcp_conn *c, uint32_t ack,
	const uint32_t (*blk)[2], uint32_t nblk)
{
	struct net_tcp_sb *sb = net_tcp_sb(st, c);
	uint32_t end = net_tcp_data_end(c), added = 0;

	for (uint32_t k = 0; k < nblk; k++) {
		uint32_t l = blk[k][0], r = blk[k][1];

		/* RFC 2018 section 4: a block is [left, right). Ignore blocks
		 * that are empty, at or below the cumulative ACK (D-SACK, RFC
		 * 2883, is only informative) or beyond what we sent; clip the
		 * rest to our data (a FIN is never SACKed). */
		if (!SEQ_LT(l, r) || SEQ_LEQ(r, ack) || SEQ_GT(r, c->snd_max)) {
			st->stats.tcp_sack_blocks_ignored++;
			continue;
		}
		if (SEQ_LT(l, ack))
			l = ack;
		if (SEQ_GT(r, end))
			r = end;
		if (!SEQ_LT(l, r))
			continue;
		added += sb_add(st, sb, l, r);
	}
	return added;
}

void
net_tcp_sack_trim(struct net_stack *st, struct net_tcp_conn *c)
{
	struct net_tcp_sb *sb = net_tcp_sb(st, c);

	while (sb->n > 0 && SEQ_LEQ(sb->blk[0].end, c->snd_una))
		sb_remove(sb, 0);
	if (sb->n > 0 && SEQ_LT(sb->blk[0].start, c->snd_una)) {
		sb->sacked -= c->snd_una - sb->blk[0].start;
		sb->blk[0].start = c->snd_una;
	}
	if (SEQ_LT(sb->high_rxt, c->snd_una))
		sb->high_rxt = c->snd_una;
}

/* Is every byte of hole i (the gap before range i) lost? */
static bool
hole_lost(const struct net_tcp_sb *sb, uint32_t i, uint32_t sacked_above, uint32_t mss)
{
	return i < sb->n && (sacked_above > (DUP_THRESH - 1) * mss || sb->n - i >= DUP_THRESH);
}

/* Is a run of bytes of the same log entry lost? hl: the DupThresh answer
 * for its hole. RACK's mark decides, and DupThresh for bytes never resent;
 * untracked bytes have only DupThresh. */
static bool
run_lost(uint32_t f, bool hl)
{
	if (f & NET_XL_TRACKED)
		return (f & NET_XL_LOST) || (!(f & NET_XL_RTX) && hl);
	return hl;
}

bool
net_tcp_sack_is_lost(const struct net_stack *st, const struct net_tcp_conn *c, uint32_t seq)
{
	const struct net_tcp_sb *sb = net_tcp_sb(st, c);
	uint32_t above = sb->sacked, i = 0, f;

	while (i < sb->n && SEQ_LEQ(sb->blk[i].end, seq)) {
		above -= sb->blk[i].end - sb->blk[i].start;
		i++;
	}
	if (i < sb->n && SEQ_LEQ(sb->blk[i].start, seq))
		return false;	/* SACKed itself */
	net_tcp_rack_class(st, c, seq, seq + 1, &f);
	return run_lost(f, hole_lost(sb, i, above, c->mss));
}

uint32_t
net_tcp_sack_pipe(const struct net_stack *st, const struct net_tcp_conn *c)
{
	const struct net_tcp_sb *sb = net_tcp_sb(st, c);
	uint32_t pipe = 0, above = sb->sacked, lo = c->snd_una;

	for (uint32_t i = 0; i <= sb->n; i++) {
		uint32_t hi = i < sb->n ? sb->blk[i].start : c->snd_max;
		bool hl = hole_lost(sb, i, above, c->mss);

		/* Run by run: a tracked byte is in flight unless lost (a resend
		 * not deemed lost counts once); an untracked one as RFC 6675
		 * says, once unless lost and once more if below HighRxt. */
		for (uint32_t seq = lo, f, e; SEQ_LT(seq, hi); seq = e) {
			e = net_tcp_rack_class(st, c, seq, hi, &f);
			if (f & NET_XL_TRACKED) {
				if (!run_lost(f, hl))
					pipe += e - seq;
				continue;
			}
			if (SEQ_LT(seq, sb->high_rxt) && SEQ_LT(sb->high_rxt, e))
				e = sb->high_rxt;
			if (!hl)
				pipe += e - seq;
			if (SEQ_LT(seq, sb->high_rxt))
				pipe += e - seq;
		}
		if (i < sb->n) {
			above -= sb->blk[i].end - sb->blk[i].start;
			lo = sb->blk[i].end;
		}
	}
	return pipe;
}

int
net_tcp_sack_next_rtx(const struct net_stack *st, const struct net_tcp_conn *c, bool lost_only,
	uint32_t *seq, uint32_t *len)
{
	const struct net_tcp_sb *sb = net_tcp_sb(st, c);
	uint32_t above = sb->sacked, lo = c->snd_una, dend = net_tcp_data_end(c);

	/* Rule 1: lost bytes, those RACK marked anywhere (a lost resend below
	 * HighRxt, a lost tail above the highest SACKed byte), the others at or
	 * above HighRxt. Rule 3: bytes not resent at or above HighRxt, below
	 * the highest SACKed byte. */
	for (uint32_t i = 0; i <= sb->n; i++) {
		uint32_t hi = i < sb->n ? sb->blk[i].start : (SEQ_LT(c->snd_max, dend) ?
			c->snd_max : dend);
		bool hl = hole_lost(sb, i, above, c->mss);

		for (uint32_t s = lo, f, e; SEQ_LT(s, hi); s = e) {
			uint32_t from = SEQ_LT(s, sb->high_rxt) ? sb->high_rxt : s;
			bool ok;

			e = net_tcp_rack_class(st, c, s, hi, &f);
			if ((f & NET_XL_TRACKED) && run_lost(f, hl)) {
				from = s;
				ok = true;
			} else if (f & NET_XL_TRACKED) {
				ok = !lost_only && i < sb->n && !(f & NET_XL_RTX);
			} else {
				ok = lost_only ? hl : i < sb->n;
			}
			if (ok && SEQ_LT(from, e)) {
				*seq = from;
				*len = NET_MIN(e - from, (uint32_t)c->mss);
				return 0;
			}
		}
		if (i < sb->n) {
			above -= sb->blk[i].end - sb->blk[i].start;
			lo = sb->blk[i].end;
		}
	}
	return -1;
}

uint32_t
net_tcp_sack_skip(const struct net_stack *st, const struct net_tcp_conn *c, uint32_t seq,
	uint32_t *limit)
{
	const struct net_tcp_sb *sb = net_tcp_sb(st, c);

	for (uint32_t i = 0; i < sb->n; i++) {
		if (SEQ_LT(seq, sb->blk[i].start)) {
			*limit = sb->blk[i].start;
			return seq;
		}
		if (SEQ_LT(seq, sb->blk[i].end))
			seq = sb->blk[i].end;
	}
	*limit = seq + UINT32_MAX / 2;
	return seq;
}

uint32_t
net_tcp_sack_below(const struct net_stack *st, const struct net_tcp_conn *c, uint32_t seq)
{
	const struct net_tcp_sb *sb = net_tcp_sb(st, c);
	uint32_t n = 0;

	for (uint32_t i = 0; i < sb->n && SEQ_LT(sb->blk[i].start, seq); i++)
		n += (SEQ_LT(sb->blk[i].end, seq) ? sb->blk[i].end : seq) - sb->blk[i].start;
	return n;
}
