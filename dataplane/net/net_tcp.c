/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_tcp: the connection table, the user API of net_tcp.h, timers and the
 * end-of-burst work (queued output, reaping). Segment arrival is in
 * net_tcp_input.c, segment building in net_tcp_output.c.
 *
 * Table: max_conns connections preallocated in one array; a hash of the
 * 4-tuple (jhash) indexes bucket heads, chains go through hash_next; free
 * entries form a list through the same field. Listeners are a small array
 * searched linearly.
 *
 * Deferred work: API calls and segment arrival put the connection on the
 * pending list; net_tcp_poll (end of every input burst and every poll) runs
 * net_tcp_output on each, so ACKs of a burst coalesce and callbacks never
 * re-enter the stack. A connection whose user is done is flagged REAP and
 * freed there too, after its closed callback has returned.
 *
 * Timers: each live connection has up to three deadlines (retransmission or
 * persist, delayed ACK, TIME-WAIT / FIN-WAIT-2). Live connections are on one
 * list; it is scanned only when the earliest deadline recorded is due
 * (st->next_timer_us), which is kept as a lower bound when timers are armed.
 * A timer wheel would scale better with tens of thousands of connections;
 * this first cut favours simplicity (docs/net-stack.md).
 */
#include "net_tcp.h"

#include <errno.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_jhash.h>
#include <rte_malloc.h>
#include <rte_thash.h>

#include "net_internal.h"

static inline struct net_stack *
conn_stack(const struct net_tcp_conn *c)
{
	return c->st;
}

uint32_t
net_tcp_conn_index(const struct net_stack *st, const struct net_tcp_conn *c)
{
	return (uint32_t)(c - st->conns);
}

static inline uint32_t
tuple_hash(const struct net_stack *st, uint32_t raddr, uint16_t rport, uint16_t lport)
{
	return rte_jhash_3words(raddr, ((uint32_t)rport << 16) | lport,
		(uint32_t)st->isn_key[1], (uint32_t)st->isn_key[0]) & st->hash_mask;
}

uint16_t
net_tcp_our_mss(const struct net_stack *st)
{
	return (uint16_t)(st->cfg.mtu - NET_IP_HLEN - NET_TCP_HLEN);
}

static uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int
net_tcp_init(struct net_stack *st)
{
	uint32_t n = st->cfg.max_conns;
	uint32_t buckets = 1;
	uint64_t s = st->cfg.seed;

	while (buckets < 2 * n)
		buckets <<= 1;
	st->conns = rte_zmalloc("net_tcp_conns", sizeof(*st->conns) * n, RTE_CACHE_LINE_SIZE);
	st->hash = rte_malloc("net_tcp_hash", sizeof(*st->hash) * buckets, RTE_CACHE_LINE_SIZE);
	st->listeners = rte_zmalloc("net_tcp_listen",
		sizeof(*st->listeners) * st->cfg.max_listeners, RTE_CACHE_LINE_SIZE);
	st->ooo = rte_zmalloc("net_tcp_ooo",
		sizeof(*st->ooo) * (size_t)n * st->cfg.ooo_max_segs, RTE_CACHE_LINE_SIZE);
	st->sb = rte_zmalloc("net_tcp_sb", sizeof(*st->sb) * n, RTE_CACHE_LINE_SIZE);
	if (st->conns == NULL || st->hash == NULL || st->listeners == NULL || st->ooo == NULL ||
			st->sb == NULL)
		return -ENOMEM;
	st->hash_mask = buckets - 1;
	for (uint32_t i = 0; i < buckets; i++)
		st->hash[i] = NET_NONE;
	for (uint32_t i = 0; i < n; i++) {
		st->conns[i].hash_next = i + 1 < n ? i + 1 : NET_NONE;
		st->conns[i].ooo = &st->ooo[(size_t)i * st->cfg.ooo_max_segs];
	}
	st->free_head = 0;
	st->pending_head = NET_NONE;
	st->timer_head = NET_NONE;
	st->tx_wait_head = NET_NONE;
	st->isn_key[0] = splitmix64(&s);
	st->isn_key[1] = splitmix64(&s);
	st->next_port = (uint16_t)(st->cfg.ephemeral_lo +
		splitmix64(&s) % ((uint32_t)st->cfg.ephemeral_hi - st->cfg.ephemeral_lo + 1));
	/* RFC 7323 section 2.3: the smallest shift that lets the window field
	 * express the whole receive buffer. */
	st->tcp_rcv_wscale = 0;
	while (st->tcp_rcv_wscale < 14 && (st->cfg.rcvbuf_bytes >> st->tcp_rcv_wscale) > 65535)
		st->tcp_rcv_wscale++;
	return 0;
}

static void
conn_release_buffers(struct net_tcp_conn *c)
{
	struct rte_mbuf *q = c->sq_head;

	while (q != NULL) {
		struct rte_mbuf *nx = q->next;

		q->next = NULL;
		rte_pktmbuf_free_seg(q);
		q = nx;
	}
	c->sq_head = c->sq_tail = NULL;
	c->sq_bytes = 0;
	if (c->st != NULL && c->st->sb != NULL)
		c->st->sb[net_tcp_conn_index(c->st, c)].sq_cur = NULL;
	for (uint32_t i = 0; i < c->ooo_segs; i++)
		rte_pktmbuf_free(c->ooo[i].m);
	c->ooo_segs = 0;
}

void
net_tcp_fini(struct net_stack *st)
{
	if (st->conns != NULL) {
		for (uint32_t i = 0; i < st->cfg.max_conns; i++)
			conn_release_buffers(&st->conns[i]);
	}
	rte_free(st->conns);
	rte_free(st->hash);
	rte_free(st->listeners);
	rte_free(st->ooo);
	rte_free(st->sb);
	st->sb = NULL;
	st->conns = NULL;
	st->hash = NULL;
	st->listeners = NULL;
	st->ooo = NULL;
}

struct net_tcp_conn *
net_tcp_conn_lookup(struct net_stack *st, uint32_t raddr, uint32_t laddr, uint16_t rport,
	uint16_t lport)
{
	uint32_t i = st->hash[tuple_hash(st, raddr, rport, lport)];

	while (i != NET_NONE) {
		struct net_tcp_conn *c = &st->conns[i];

		if (c->raddr == raddr && c->rport == rport && c->lport == lport &&
				c->laddr == laddr)
			return c;
		i = c->hash_next;
	}
	return NULL;
}

/*
 * RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, secret),
 * M a 4 microsecond clock, F a keyed hash.
 */
uint32_t
net_tcp_isn(struct net_stack *st, uint32_t raddr, uint16_t rport, uint16_t lport)
{
	uint32_t f = rte_jhash_3words(raddr, st->cfg.ipv4_addr, ((uint32_t)rport << 16) | lport,
		(uint32_t)(st->isn_key[0] >> 32) ^ (uint32_t)st->isn_key[1]);

	return f + (uint32_t)(st->now_us / 4);
}

/* RFC 7323 section 5.4: a per-connection offset of the TSval clock. */
uint32_t
net_tcp_ts_offset(const struct net_stack *st, uint32_t raddr, uint16_t rport, uint16_t lport)
{
	return (uint32_t)rte_jhash_2words(raddr, ((uint32_t)rport << 16) | lport,
		(uint32_t)st->isn_key[1]);
}

static void
timer_list_add(struct net_stack *st, struct net_tcp_conn *c)
{
	uint32_t i = net_tcp_conn_index(st, c);

	c->timer_prev = NET_NONE;
	c->timer_next = st->timer_head;
	if (st->timer_head != NET_NONE)
		st->conns[st->timer_head].timer_prev = i;
	st->timer_head = i;
	c->flags |= NET_TCPF_TIMER_LIST;
}

static void
timer_list_del(struct net_stack *st, struct net_tcp_conn *c)
{
	if (!(c->flags & NET_TCPF_TIMER_LIST))
		return;
	if (c->timer_prev != NET_NONE)
		st->conns[c->timer_prev].timer_next = c->timer_next;
	else
		st->timer_head = c->timer_next;
	if (c->timer_next != NET_NONE)
		st->conns[c->timer_next].timer_prev = c->timer_prev;
	c->flags &= ~NET_TCPF_TIMER_LIST;
}

static void conn_free(struct net_stack *st, struct net_tcp_conn *c);

bool
net_tcp_table_room(struct net_stack *st)
{
	struct net_tcp_conn *best = NULL;

	if (st->free_head != NET_NONE)
		return true;
	/*
	 * Full: the TIME-WAIT entry nearest its end makes room (RFC 6191 lets a
	 * new connection end a TIME-WAIT; Linux stops keeping them past
	 * tcp_max_tw_buckets). Without this, connections the broker closed
	 * itself (bad requests, idle ones) held the table for 2 MSL after
	 * their end and new clients got no SYN-ACK. Entries still on a list
	 * (output pending, reaping, waiting for the device) are left alone.
	 */
	if (st->stats.tcp_conns_time_wait == 0)
		return false;
	for (uint32_t i = 0; i < st->cfg.max_conns; i++) {
		struct net_tcp_conn *c = &st->conns[i];

		if (c->state != NET_TCP_TIME_WAIT || !(c->flags & NET_TCPF_USER_GONE) ||
				(c->flags & (NET_TCPF_PENDING | NET_TCPF_REAP | NET_TCPF_TX_WAIT)))
			continue;
		if (best == NULL || c->tw_deadline < best->tw_deadline)
			best = c;
	}
	if (best == NULL)
		return false;
	st->stats.tcp_time_wait_reused++;
	conn_free(st, best);
	return true;
}

/* Take a free entry and insert it in the hash under the 4-tuple. */
struct net_tcp_conn *
net_tcp_conn_new(struct net_stack *st, uint32_t raddr, uint16_t rport, uint16_t lport)
{
	struct net_tcp_ooo *ooo;
	struct net_tcp_conn *c;
	uint32_t i, h;

	if (!net_tcp_table_room(st))
		return NULL;
	i = st->free_head;
	c = &st->conns[i];
	st->free_head = c->hash_next;
	ooo = c->ooo;
	memset(c, 0, sizeof(*c));
	memset(&st->sb[i], 0, sizeof(st->sb[i]));
	c->ooo = ooo;
	c->st = st;
	c->raddr = raddr;
	c->laddr = st->cfg.ipv4_addr;
	c->rport = rport;
	c->lport = lport;
	c->listener = NET_NO_LISTENER;
	c->pending_next = NET_NONE;
	c->rto_us = (uint32_t)st->cfg.rto_initial_us;
	c->ssthresh = UINT32_MAX / 2;	/* RFC 5681 section 3.1: arbitrarily high */
	c->peer_mss = 536;		/* RFC 9293 section 3.7.1 default */
	c->ts_offset = net_tcp_ts_offset(st, raddr, rport, lport);
	h = tuple_hash(st, raddr, rport, lport);
	c->hash_next = st->hash[h];
	st->hash[h] = i;
	st->nconns++;
	timer_list_add(st, c);
	return c;
}

static void tx_wait_del(struct net_stack *st, struct net_tcp_conn *c);

/* The gauge of connections in state @s (NULL: CLOSED and LISTEN, not counted). */
static uint64_t *
state_gauge(struct net_stack *st, uint8_t s)
{
	switch (s) {
	case NET_TCP_SYN_SENT:
	case NET_TCP_SYN_RECEIVED:
		return &st->stats.tcp_conns_syn;
	case NET_TCP_ESTABLISHED:
		return &st->stats.tcp_conns_established;
	case NET_TCP_FIN_WAIT_1:
	case NET_TCP_FIN_WAIT_2:
	case NET_TCP_CLOSE_WAIT:
	case NET_TCP_CLOSING:
	case NET_TCP_LAST_ACK:
		return &st->stats.tcp_conns_closing;
	case NET_TCP_TIME_WAIT:
		return &st->stats.tcp_conns_time_wait;
	default:
		return NULL;
	}
}

/* Move the connection from the gauge of state @from to that of @to. */
static void
state_count(struct net_stack *st, uint8_t from, uint8_t to)
{
	uint64_t *g = state_gauge(st, from);

	if (g != NULL && *g > 0)
		(*g)--;
	g = state_gauge(st, to);
	if (g != NULL)
		(*g)++;
}

static void
conn_free(struct net_stack *st, struct net_tcp_conn *c)
{
	uint32_t i = net_tcp_conn_index(st, c);
	uint32_t *pp = &st->hash[tuple_hash(st, c->raddr, c->rport, c->lport)];

	while (*pp != NET_NONE && *pp != i)
		pp = &st->conns[*pp].hash_next;
	if (*pp == i)
		*pp = c->hash_next;
	timer_list_del(st, c);
	tx_wait_del(st, c);
	conn_release_buffers(c);
	if (c->state == NET_TCP_SYN_RECEIVED && c->listener != NET_NO_LISTENER &&
			st->listeners[c->listener].syn_rcvd > 0)
		st->listeners[c->listener].syn_rcvd--;
	state_count(st, c->state, NET_TCP_CLOSED);
	c->state = NET_TCP_CLOSED;
	c->flags = 0;
	c->hash_next = st->free_head;
	st->free_head = i;
	st->nconns--;
}

void
net_tcp_pending(struct net_stack *st, struct net_tcp_conn *c)
{
	if (c->flags & NET_TCPF_PENDING)
		return;
	c->flags |= NET_TCPF_PENDING;
	c->pending_next = st->pending_head;
	st->pending_head = net_tcp_conn_index(st, c);
}

void
net_tcp_arm(struct net_stack *st, uint64_t *deadline, uint64_t at)
{
	if (at == 0)
		at = 1;
	*deadline = at;
	if (st->next_timer_us == 0 || at < st->next_timer_us)
		st->next_timer_us = at;
}

void
net_tcp_set_state(struct net_stack *st, struct net_tcp_conn *c, enum net_tcp_state s)
{
	if (c->state == NET_TCP_SYN_RECEIVED && s != NET_TCP_SYN_RECEIVED &&
			c->listener != NET_NO_LISTENER && st->listeners[c->listener].syn_rcvd > 0)
		st->listeners[c->listener].syn_rcvd--;
	if ((c->state == NET_TCP_ESTABLISHED || c->state == NET_TCP_CLOSE_WAIT) &&
			s != NET_TCP_ESTABLISHED && s != NET_TCP_CLOSE_WAIT)
		c->tw_deadline = 0;	/* it was the keepalive timer */
	if (s == NET_TCP_ESTABLISHED && c->state == NET_TCP_SYN_SENT)
		st->stats.tcp_active_opens++;
	else if (s == NET_TCP_ESTABLISHED && c->state == NET_TCP_SYN_RECEIVED)
		st->stats.tcp_passive_opens++;
	state_count(st, c->state, (uint8_t)s);
	c->state = (uint8_t)s;
	if (s == NET_TCP_TIME_WAIT) {
		/* RFC 9293 section 3.10.7.4: 2 MSL, then CLOSED. Other timers
		 * are done. */
		c->rtx_deadline = 0;
		c->delack_deadline = 0;
		c->flags &= ~NET_TCPF_PERSIST;
		net_tcp_arm(st, &c->tw_deadline, st->now_us + st->cfg.time_wait_us);
	}
}

/*
 * The connection is over for the user: call closed (once) and, unless it
 * stays in TIME-WAIT, flag it for reaping at the end of the burst.
 */
void
net_tcp_finish(struct net_stack *st, struct net_tcp_conn *c, int status)
{
	if (!(c->flags & NET_TCPF_USER_GONE)) {
		c->flags |= NET_TCPF_USER_GONE;
		/* A passive connection not yet accepted has no user to tell. */
		if ((c->flags & NET_TCPF_USER) && c->ops != NULL && c->ops->closed != NULL)
			c->ops->closed(c->arg, c, status);
	}
	if (c->state != NET_TCP_TIME_WAIT) {
		c->flags |= NET_TCPF_REAP;
		net_tcp_pending(st, c);
	}
}

/* Drop bytes acknowledged from the head of the send queue. */
void
net_tcp_sq_drop(struct net_tcp_conn *c, uint32_t bytes)
{
	c->sq_seq += bytes;
	c->sq_bytes -= bytes;
	while (bytes > 0 && c->sq_head != NULL) {
		struct rte_mbuf *q = c->sq_head;

		if (bytes < q->data_len) {
			q->data_off = (uint16_t)(q->data_off + bytes);
			q->data_len = (uint16_t)(q->data_len - bytes);
			break;
		}
		bytes -= q->data_len;
		c->sq_head = q->next;
		q->next = NULL;
		if (c->st->sb[net_tcp_conn_index(c->st, c)].sq_cur == q)
			c->st->sb[net_tcp_conn_index(c->st, c)].sq_cur = NULL;
		rte_pktmbuf_free_seg(q);
	}
	if (c->sq_head == NULL) {
		c->sq_tail = NULL;
		c->flags &= ~NET_TCPF_SQ_TAIL_OURS;
	}
}

/* ---- timers ---- */

static void
rto_expired(struct net_stack *st, struct net_tcp_conn *c)
{
	uint32_t flight, mss = c->mss ? c->mss : 536;

	if (c->flags & NET_TCPF_TLP_ARMED) {
		net_tcp_tlp_fire(st, c);
		return;
	}
	if (c->flags & NET_TCPF_REO_ARMED) {
		net_tcp_rack_reo_fire(st, c);
		return;
	}
	if (c->flags & NET_TCPF_PERSIST) {
		/* Persist timer: probe the window (RFC 9293 section 3.8.6.1).
		 * The probe is a zero-length segment one below SND.UNA, which
		 * the peer must answer with an ACK carrying its window
		 * (section 3.10.7.4), as Linux does. */
		uint32_t end = net_tcp_data_end(c);
		uint32_t avail = SEQ_LT(c->snd_nxt, end) ? end - c->snd_nxt : 0;
		uint32_t len = NET_MIN(NET_MIN(c->snd_wnd, avail), (uint32_t)c->mss);

		c->flags &= ~NET_TCPF_PERSIST;
		c->rtx_deadline = 0;
		if (len > 0 && c->snd_nxt == c->snd_una) {
			/* A window too small for sender SWS avoidance: send
			 * what fits now (section 3.8.6.2.1, the override timeout). */
			if (net_tcp_xmit(st, c, c->snd_nxt, len, RTE_TCP_ACK_FLAG) == 0) {
				c->snd_nxt += len;
				if (SEQ_GT(c->snd_nxt, c->snd_max))
					c->snd_max = c->snd_nxt;
				net_tcp_arm(st, &c->rtx_deadline, st->now_us + c->rto_us);
			}
			return;
		}
		st->stats.tcp_zero_window_probes++;
		if (c->persist_backoff < 16)
			c->persist_backoff++;
		net_tcp_xmit(st, c, c->snd_una - 1, 0, RTE_TCP_ACK_FLAG);
		net_tcp_pending(st, c);	/* re-arms persist via output */
		return;
	}
	c->rtx_deadline = 0;
	c->flags &= ~(NET_TCPF_TLP_SENT | NET_TCPF_REO_ARMED);
	st->sb[net_tcp_conn_index(st, c)].tlp_n = 0;
	st->stats.tcp_rto_expiries++;
	c->retries++;
	if (c->state == NET_TCP_SYN_SENT || c->state == NET_TCP_SYN_RECEIVED) {
		if (c->retries > st->cfg.syn_retries) {
			net_tcp_finish(st, c, -ETIMEDOUT);
			return;
		}
	} else if (c->retries > st->cfg.max_retries) {
		net_tcp_xmit(st, c, c->snd_max, 0, RTE_TCP_RST_FLAG);
		net_tcp_finish(st, c, -ETIMEDOUT);
		return;
	}
	/* RFC 6298 (5.5): back off the timer; (5.6) restart it. */
	c->rto_us = (uint32_t)NET_MIN((uint64_t)c->rto_us * 2, st->cfg.rto_max_us);
	c->backoff++;
	c->flags &= ~NET_TCPF_RTT_TIMING;
	if (c->state == NET_TCP_SYN_SENT || c->state == NET_TCP_SYN_RECEIVED) {
		c->snd_nxt = c->iss;	/* output sends the SYN again */
		net_tcp_pending(st, c);
		return;
	}
	/* RFC 5681 section 3.1 equation (4) and loss window; RFC 6582 section
	 * 3.2 step 4 note: recover = highest sequence sent. Go back N from
	 * SND.UNA; slow start refills the pipe. */
	flight = c->snd_max - c->snd_una;
	c->ssthresh = NET_MAX(flight / 2, 2 * mss);
	c->cwnd = mss;
	c->recover = c->snd_max;
	c->flags &= ~NET_TCPF_IN_RECOVERY;
	c->dupacks = 0;
	c->bytes_acked = 0;
	c->snd_nxt = c->snd_una;
	if (c->flags & NET_TCPF_SACK_OK) {
		/* RFC 6675 section 5.1: go back N, but skip what the scoreboard
		 * says the peer holds (net_tcp_output). RFC 2018 section 8 lets
		 * a receiver renege on SACKed data: a second expiry in a row
		 * forgets the scoreboard so such data is sent again. */
		if (c->backoff >= 2)
			net_tcp_sack_reset(st, c);
		else
			net_tcp_sb(st, c)->high_rxt = c->snd_una;
	}
	net_tcp_pending(st, c);
}

/* (Re)start the keepalive idle timer: called when a connection becomes
 * ESTABLISHED and on every acceptable segment. */
void
net_tcp_keepalive_arm(struct net_stack *st, struct net_tcp_conn *c)
{
	if (st->cfg.keepalive_idle_us == 0)
		return;
	c->tw_deadline = st->now_us + st->cfg.keepalive_idle_us;
	if (st->next_timer_us == 0 || c->tw_deadline < st->next_timer_us)
		st->next_timer_us = c->tw_deadline;
}

/*
 * Keepalive (RFC 9293 section 3.8.4, RFC 1122 4.2.3.6): after the idle
 * time, probe with <SEQ=SND.NXT-1><ACK>, which the peer must answer; abort
 * after keepalive_probes unanswered ones. Probes use the same counter as
 * RTO retries (both are reset by any acceptable segment); while data is
 * outstanding the retransmission timer does the job instead.
 */
static void
keepalive_expired(struct net_stack *st, struct net_tcp_conn *c)
{
	c->tw_deadline = 0;
	if (c->snd_una != c->snd_max || SEQ_LT(c->snd_nxt, net_tcp_data_end(c))) {
		net_tcp_keepalive_arm(st, c);
		return;
	}
	if (c->retries >= st->cfg.keepalive_probes) {
		st->stats.tcp_keepalive_drops++;
		net_tcp_xmit(st, c, c->snd_max, 0, RTE_TCP_RST_FLAG);
		net_tcp_set_state(st, c, NET_TCP_CLOSED);
		net_tcp_finish(st, c, -ETIMEDOUT);
		return;
	}
	c->retries++;
	st->stats.tcp_keepalive_probes++;
	net_tcp_xmit(st, c, c->snd_nxt - 1, 0, RTE_TCP_ACK_FLAG);
	net_tcp_arm(st, &c->tw_deadline, st->now_us + st->cfg.keepalive_intvl_us);
}

static void
conn_timers(struct net_stack *st, struct net_tcp_conn *c)
{
	uint64_t now = st->now_us;

	if (c->flags & NET_TCPF_REAP)
		return;
	if (c->tw_deadline != 0 && c->tw_deadline <= now &&
			(c->state == NET_TCP_ESTABLISHED || c->state == NET_TCP_CLOSE_WAIT)) {
		keepalive_expired(st, c);
		if (c->flags & NET_TCPF_REAP)
			return;
	} else if (c->tw_deadline != 0 && c->tw_deadline <= now) {
		c->tw_deadline = 0;
		/* TIME-WAIT over, or FIN-WAIT-2 idle too long after our close. */
		net_tcp_set_state(st, c, NET_TCP_CLOSED);
		net_tcp_finish(st, c, 0);
		return;
	}
	if (c->delack_deadline != 0 && c->delack_deadline <= now) {
		c->delack_deadline = 0;
		if (c->flags & NET_TCPF_DELACK) {
			st->stats.tcp_delayed_acks++;
			c->flags |= NET_TCPF_ACK_NOW;
			net_tcp_pending(st, c);
		}
	}
	if (c->rtx_deadline != 0 && c->rtx_deadline <= now)
		rto_expired(st, c);
}

static void
run_timers(struct net_stack *st)
{
	uint64_t next = 0;
	uint32_t i;

	if (st->next_timer_us == 0 || st->now_us < st->next_timer_us)
		return;
	st->next_timer_us = 0;
	for (i = st->timer_head; i != NET_NONE;) {
		struct net_tcp_conn *c = &st->conns[i];

		i = c->timer_next;
		conn_timers(st, c);
		if (c->flags & NET_TCPF_REAP)
			continue;
		if (c->rtx_deadline && (next == 0 || c->rtx_deadline < next))
			next = c->rtx_deadline;
		if (c->delack_deadline && (next == 0 || c->delack_deadline < next))
			next = c->delack_deadline;
		if (c->tw_deadline && (next == 0 || c->tw_deadline < next))
			next = c->tw_deadline;
	}
	/* Timers armed during the scan lowered st->next_timer_us already. */
	if (next != 0 && (st->next_timer_us == 0 || next < st->next_timer_us))
		st->next_timer_us = next;
}

static void
send_rst_conn(struct net_stack *st, struct net_tcp_conn *c)
{
	/* RFC 9293 section 3.10.5 (ABORT): <SEQ=SND.NXT><CTL=RST>. */
	if (c->state != NET_TCP_SYN_SENT && c->state != NET_TCP_TIME_WAIT &&
			c->state != NET_TCP_CLOSED)
		net_tcp_xmit(st, c, c->snd_max, 0, RTE_TCP_RST_FLAG);
}

/* Output stopped on a full device resumes once the batch has room. */
static void
tx_wait_resume(struct net_stack *st)
{
	if (st->tx_wait_head == NET_NONE)
		return;
	net_tx_flush(st);
	if (st->tx_n == NET_TX_BATCH)
		return;
	while (st->tx_wait_head != NET_NONE) {
		struct net_tcp_conn *c = &st->conns[st->tx_wait_head];

		st->tx_wait_head = st->sb[st->tx_wait_head].tx_wait_next;
		c->flags &= ~NET_TCPF_TX_WAIT;
		net_tcp_pending(st, c);
	}
}

static void
tx_wait_del(struct net_stack *st, struct net_tcp_conn *c)
{
	uint32_t i = net_tcp_conn_index(st, c), *pp = &st->tx_wait_head;

	if (!(c->flags & NET_TCPF_TX_WAIT))
		return;
	while (*pp != NET_NONE && *pp != i)
		pp = &st->sb[*pp].tx_wait_next;
	if (*pp == i)
		*pp = st->sb[i].tx_wait_next;
	c->flags &= ~NET_TCPF_TX_WAIT;
}

void
net_tcp_poll(struct net_stack *st)
{
	tx_wait_resume(st);
	run_timers(st);
	while (st->pending_head != NET_NONE) {
		struct net_tcp_conn *c = &st->conns[st->pending_head];

		st->pending_head = c->pending_next;
		c->pending_next = NET_NONE;
		c->flags &= ~NET_TCPF_PENDING;
		if (c->flags & NET_TCPF_RST_PENDING) {
			c->flags &= ~NET_TCPF_RST_PENDING;
			send_rst_conn(st, c);
			net_tcp_set_state(st, c, NET_TCP_CLOSED);
			net_tcp_finish(st, c, c->close_status);
		}
		if (c->flags & NET_TCPF_REAP) {
			/* The closed callback has returned: reclaim. */
			conn_free(st, c);
			continue;
		}
		net_tcp_output(st, c);
	}
}

/* ---- API ---- */

static uint32_t
rss_queue_of(const struct net_stack *st, uint32_t raddr, uint16_t rport, uint16_t lport)
{
	struct rte_ipv4_tuple t;
	uint32_t h;

	/* The NIC hashes the reply as it arrives: source = remote. */
	t.src_addr = rte_be_to_cpu_32(raddr);
	t.dst_addr = rte_be_to_cpu_32(st->cfg.ipv4_addr);
	t.sport = rte_be_to_cpu_16(rport);
	t.dport = rte_be_to_cpu_16(lport);
	h = rte_softrss((uint32_t *)&t, RTE_THASH_V4_L4_LEN, st->cfg.rss_key);
	return (h % st->cfg.rss_reta_size) % st->cfg.rss_nb_queues;
}

int
net_tcp_listen(struct net_stack *st, uint16_t port, uint32_t backlog,
	const struct net_tcp_ops *ops, void *arg)
{
	struct net_tcp_listener *free_slot = NULL;
	uint16_t p = rte_cpu_to_be_16(port);

	if (port == 0 || backlog == 0 || ops == NULL)
		return -EINVAL;
	for (uint32_t i = 0; i < st->cfg.max_listeners; i++) {
		if (st->listeners[i].port == p)
			return -EADDRINUSE;
		if (st->listeners[i].port == 0 && free_slot == NULL)
			free_slot = &st->listeners[i];
	}
	if (free_slot == NULL)
		return -ENOSPC;
	free_slot->port = p;
	free_slot->backlog = backlog;
	free_slot->syn_rcvd = 0;
	free_slot->ops = ops;
	free_slot->arg = arg;
	return 0;
}

int
net_tcp_connect(struct net_stack *st, uint32_t raddr, uint16_t rport,
	const struct net_tcp_ops *ops, void *arg, struct net_tcp_conn **out)
{
	uint32_t range = (uint32_t)st->cfg.ephemeral_hi - st->cfg.ephemeral_lo + 1;
	uint16_t rp = rte_cpu_to_be_16(rport);
	struct net_tcp_conn *c = NULL;

	if (!net_tcp_table_room(st))
		return -ENOMEM;
	for (uint32_t tries = 0; tries < range; tries++) {
		uint16_t port = st->next_port;
		uint16_t lp = rte_cpu_to_be_16(port);

		st->next_port = port >= st->cfg.ephemeral_hi ? st->cfg.ephemeral_lo :
			(uint16_t)(port + 1);
		if (st->cfg.rss_key != NULL &&
				rss_queue_of(st, raddr, rp, lp) != st->cfg.rss_queue)
			continue;
		if (net_tcp_conn_lookup(st, raddr, st->cfg.ipv4_addr, rp, lp) != NULL)
			continue;
		c = net_tcp_conn_new(st, raddr, rp, lp);
		break;
	}
	if (c == NULL)
		return -EADDRNOTAVAIL;
	c->ops = ops;
	c->arg = arg;
	c->flags |= NET_TCPF_USER;
	net_tcp_set_state(st, c, NET_TCP_SYN_SENT);
	c->iss = net_tcp_isn(st, raddr, rp, c->lport);
	c->snd_una = c->snd_nxt = c->snd_max = c->iss;
	c->sq_seq = c->iss + 1;
	c->recover = c->iss;
	c->rcv_wscale = (uint8_t)st->tcp_rcv_wscale;
	/* Offer what is enabled; the SYN-ACK decides (flags cleared then). */
	if (!st->cfg.no_timestamps)
		c->flags |= NET_TCPF_TS_OK;
	if (!st->cfg.no_window_scale)
		c->flags |= NET_TCPF_WS_OK;
	if (!st->cfg.no_sack)
		c->flags |= NET_TCPF_SACK_OK;
	if (!(c->flags & NET_TCPF_WS_OK))
		c->rcv_wscale = 0;
	net_tcp_pending(st, c);
	*out = c;
	return 0;
}

void
net_tcp_conn_set_arg(struct net_tcp_conn *c, void *arg)
{
	c->arg = arg;
}

static bool
can_send(const struct net_tcp_conn *c)
{
	switch (c->state) {
	case NET_TCP_SYN_SENT:
	case NET_TCP_SYN_RECEIVED:
	case NET_TCP_ESTABLISHED:
	case NET_TCP_CLOSE_WAIT:
		return !(c->flags & (NET_TCPF_FIN_QUEUED | NET_TCPF_USER_GONE |
			NET_TCPF_RST_PENDING));
	default:
		return false;
	}
}


uint32_t
net_tcp_send_space(const struct net_tcp_conn *c)
{
	const struct net_stack *st = conn_stack(c);

	if (!can_send(c) || c->sq_bytes >= st->cfg.sndbuf_bytes)
		return 0;
	return st->cfg.sndbuf_bytes - c->sq_bytes;
}

int
net_tcp_send(struct net_tcp_conn *c, const void *data, uint32_t len)
{
	struct net_stack *st = conn_stack(c);
	const uint8_t *p = data;
	uint32_t done = 0;

	if (!can_send(c))
		return (c->flags & NET_TCPF_FIN_QUEUED) ? -EPIPE : -ENOTCONN;
	len = NET_MIN(len, net_tcp_send_space(c));
	if (len > 0) {
		/* Leave pool_reserve mbufs for headers and retransmissions: a
		 * send queue holding the whole pool could never be sent. The
		 * count sums all RTE_MAX_LCORE per-lcore caches (about 1% of the
		 * broker per small request, perf), so it is taken once per stack
		 * time step and lowered by what each call takes; counted again
		 * whenever that estimate would limit the call. */
		uint32_t avail = st->pool_avail;
		uint32_t room = rte_pktmbuf_data_room_size(st->cfg.pool) - RTE_PKTMBUF_HEADROOM;
		uint64_t cap;

		if (st->pool_avail_us != st->now_us || avail <= st->cfg.pool_reserve ||
				(uint64_t)(avail - st->cfg.pool_reserve) * room < len) {
			avail = rte_mempool_avail_count(st->cfg.pool);
			st->pool_avail_us = st->now_us;
		}
		st->pool_avail = avail;
		if (avail <= st->cfg.pool_reserve)
			return 0;
		cap = (uint64_t)(avail - st->cfg.pool_reserve) * room;
		if (c->sq_tail != NULL && (c->flags & NET_TCPF_SQ_TAIL_OURS))
			cap += rte_pktmbuf_tailroom(c->sq_tail);
		if (len > cap)
			len = (uint32_t)cap;
	}
	while (done < len) {
		struct rte_mbuf *t = c->sq_tail;
		uint32_t room, n;

		if (t == NULL || !(c->flags & NET_TCPF_SQ_TAIL_OURS) ||
				rte_pktmbuf_tailroom(t) == 0) {
			struct rte_mbuf *m = rte_pktmbuf_alloc(st->cfg.pool);

			if (m == NULL) {
				st->stats.tx_no_mbuf++;
				break;
			}
			if (st->pool_avail > 0)
				st->pool_avail--;
			if (t == NULL)
				c->sq_head = m;
			else
				t->next = m;
			c->sq_tail = t = m;
			c->flags |= NET_TCPF_SQ_TAIL_OURS;
		}
		room = rte_pktmbuf_tailroom(t);
		n = NET_MIN(room, len - done);
		memcpy(rte_pktmbuf_mtod_offset(t, uint8_t *, t->data_len), p + done, n);
		t->data_len = (uint16_t)(t->data_len + n);
		done += n;
	}
	c->sq_bytes += done;
	if (done > 0)
		net_tcp_pending(st, c);
	if (done == 0 && len > 0)
		return -ENOMEM;
	return (int)done;
}

int
net_tcp_send_mbuf(struct net_tcp_conn *c, struct rte_mbuf *m)
{
	struct net_stack *st = conn_stack(c);
	struct rte_mbuf *last;
	uint32_t len = rte_pktmbuf_pkt_len(m);

	if (!can_send(c)) {
		rte_pktmbuf_free(m);
		return (c->flags & NET_TCPF_FIN_QUEUED) ? -EPIPE : -ENOTCONN;
	}
	if (len > net_tcp_send_space(c)) {
		rte_pktmbuf_free(m);
		return -ENOBUFS;
	}
	if (len == 0) {
		rte_pktmbuf_free(m);
		return 0;
	}
	last = rte_pktmbuf_lastseg(m);
	if (c->sq_tail == NULL)
		c->sq_head = m;
	else
		c->sq_tail->next = m;
	c->sq_tail = last;
	/* Never append copies into the caller's buffers. */
	c->flags &= ~NET_TCPF_SQ_TAIL_OURS;
	c->sq_bytes += len;
	net_tcp_pending(st, c);
	return 0;
}

void
net_tcp_recved(struct net_tcp_conn *c, uint32_t bytes)
{
	struct net_stack *st = conn_stack(c);
	uint32_t before, after;

	before = SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
	c->rcv_held = bytes >= c->rcv_held ? 0 : c->rcv_held - bytes;
	after = net_tcp_rcv_window(st, c);
	/* RFC 9293 section 3.8.6.2.2: advertise the reopened window when it
	 * moved by at least min(buffer/2, MSS) (rcv_window applies that). */
	if (after > before && (c->state == NET_TCP_ESTABLISHED ||
			c->state == NET_TCP_FIN_WAIT_1 || c->state == NET_TCP_FIN_WAIT_2)) {
		c->flags |= NET_TCPF_ACK_NOW;
		net_tcp_pending(st, c);
	}
}

int
net_tcp_close(struct net_tcp_conn *c)
{
	struct net_stack *st = conn_stack(c);

	if (c->flags & (NET_TCPF_FIN_QUEUED | NET_TCPF_USER_GONE | NET_TCPF_RST_PENDING))
		return -ENOTCONN;
	switch (c->state) {
	case NET_TCP_SYN_SENT:
		/* RFC 9293 section 3.10.4: delete the TCB. */
		net_tcp_set_state(st, c, NET_TCP_CLOSED);
		net_tcp_finish(st, c, 0);
		return 0;
	case NET_TCP_SYN_RECEIVED:
	case NET_TCP_ESTABLISHED:
		c->flags |= NET_TCPF_FIN_QUEUED;
		net_tcp_set_state(st, c, NET_TCP_FIN_WAIT_1);
		break;
	case NET_TCP_CLOSE_WAIT:
		c->flags |= NET_TCPF_FIN_QUEUED;
		net_tcp_set_state(st, c, NET_TCP_LAST_ACK);
		break;
	default:
		return -ENOTCONN;
	}
	net_tcp_pending(st, c);
	return 0;
}

void
net_tcp_abort(struct net_tcp_conn *c)
{
	struct net_stack *st = conn_stack(c);

	if (c->flags & (NET_TCPF_USER_GONE | NET_TCPF_REAP))
		return;
	c->flags |= NET_TCPF_RST_PENDING;
	c->close_status = 0;
	net_tcp_pending(st, c);
}

enum net_tcp_state
net_tcp_conn_state(const struct net_tcp_conn *c)
{
	return (enum net_tcp_state)c->state;
}

const char *
net_tcp_state_name(enum net_tcp_state s)
{
	static const char *const names[] = {
		[NET_TCP_CLOSED] = "CLOSED",
		[NET_TCP_LISTEN] = "LISTEN",
		[NET_TCP_SYN_SENT] = "SYN-SENT",
		[NET_TCP_SYN_RECEIVED] = "SYN-RECEIVED",
		[NET_TCP_ESTABLISHED] = "ESTABLISHED",
		[NET_TCP_FIN_WAIT_1] = "FIN-WAIT-1",
		[NET_TCP_FIN_WAIT_2] = "FIN-WAIT-2",
		[NET_TCP_CLOSE_WAIT] = "CLOSE-WAIT",
		[NET_TCP_CLOSING] = "CLOSING",
		[NET_TCP_LAST_ACK] = "LAST-ACK",
		[NET_TCP_TIME_WAIT] = "TIME-WAIT",
	};

	if ((unsigned)s >= RTE_DIM(names))
		return "?";
	return names[s];
}

void
net_tcp_conn_info(const struct net_tcp_conn *c, struct net_tcp_info *info)
{
	const struct net_stack *st = conn_stack(c);

	memset(info, 0, sizeof(*info));
	info->state = (enum net_tcp_state)c->state;
	info->laddr = c->laddr;
	info->raddr = c->raddr;
	info->lport = rte_be_to_cpu_16(c->lport);
	info->rport = rte_be_to_cpu_16(c->rport);
	info->snd_una = c->snd_una;
	info->snd_nxt = c->snd_nxt;
	info->snd_wnd = c->snd_wnd;
	info->cwnd = c->cwnd;
	info->ssthresh = c->ssthresh;
	info->rcv_nxt = c->rcv_nxt;
	info->rcv_wnd = net_tcp_rcv_window(st, c);
	info->mss = c->mss;
	info->snd_wscale = c->snd_wscale;
	info->rcv_wscale = c->rcv_wscale;
	info->ts_ok = (c->flags & NET_TCPF_TS_OK) != 0;
	info->sack_ok = (c->flags & NET_TCPF_SACK_OK) != 0;
	info->ws_ok = (c->flags & NET_TCPF_WS_OK) != 0;
	info->srtt_us = c->srtt_us;
	info->rttvar_us = c->rttvar_us;
	info->rto_us = c->rto_us;
	info->unacked_bytes = c->snd_max - c->snd_una;
	info->queued_bytes = c->sq_bytes;
}

uint32_t
net_tcp_conn_count(const struct net_stack *st)
{
	return st->nconns;
}
