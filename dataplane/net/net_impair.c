/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_impair: seeded loss, duplication, reordering, delay and corruption of
 * frames between a port queue and the stack, for tests. See net_impair.h.
 *
 * Each direction has a FIFO of (frame, release time) with room for
 * queue_max frames, and one slot for a frame held back to be reordered.
 * Every frame that survives goes through the FIFO (release = now + delay),
 * so delay keeps the order and reordering comes only from the hold slot.
 * The generator is xorshift64* seeded from conf.seed through splitmix64.
 */
#include "net_impair.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_malloc.h>

#define IMPAIR_RX 0
#define IMPAIR_TX 1
#define IMPAIR_ETH_HLEN 14u

struct impair_fifo {
	struct rte_mbuf **m;
	uint64_t *at;
	uint32_t head;
	uint32_t n;
	uint32_t cap;
};

struct impair_side {
	struct net_impair_dir cfg;
	struct impair_fifo fifo;
	struct rte_mbuf *held;		/* frame held back for reordering */
	uint32_t held_after;		/* frames still to overtake it */
	uint64_t held_until;
	struct net_impair_stats stats;
};

struct net_impair {
	struct net_impair_conf conf;
	uint64_t rng;
	uint64_t now;
	struct impair_side side[2];
};

static uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t
rng_next(struct net_impair *im)
{
	uint64_t x = im->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	im->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

static bool
chance(struct net_impair *im, uint32_t ppm)
{
	return ppm != 0 && (uint32_t)((rng_next(im) >> 32) % 1000000u) < ppm;
}

struct net_impair *
net_impair_create(const struct net_impair_conf *conf)
{
	struct net_impair *im;
	uint64_t s;

	if (conf == NULL || conf->pool == NULL) {
		errno = EINVAL;
		return NULL;
	}
	im = rte_zmalloc("net_impair", sizeof(*im), 0);
	if (im == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	im->conf = *conf;
	if (im->conf.seed == 0)
		im->conf.seed = rte_get_tsc_cycles() | 1;
	if (im->conf.queue_max == 0)
		im->conf.queue_max = 8192;
	if (im->conf.reorder_gap == 0)
		im->conf.reorder_gap = 3;
	if (im->conf.reorder_max_us == 0)
		im->conf.reorder_max_us = 10 * 1000;
	s = im->conf.seed;
	im->rng = splitmix64(&s) | 1;
	im->side[IMPAIR_RX].cfg = im->conf.rx;
	im->side[IMPAIR_TX].cfg = im->conf.tx;
	for (int d = 0; d < 2; d++) {
		struct impair_fifo *f = &im->side[d].fifo;

		f->cap = im->conf.queue_max;
		f->m = rte_zmalloc("net_impair_q", sizeof(*f->m) * f->cap, 0);
		f->at = rte_zmalloc("net_impair_t", sizeof(*f->at) * f->cap, 0);
		if (f->m == NULL || f->at == NULL) {
			net_impair_free(im);
			errno = ENOMEM;
			return NULL;
		}
	}
	return im;
}

void
net_impair_free(struct net_impair *im)
{
	if (im == NULL)
		return;
	for (int d = 0; d < 2; d++) {
		struct impair_side *sd = &im->side[d];
		struct impair_fifo *f = &sd->fifo;

		for (uint32_t i = 0; f->m != NULL && i < f->n; i++)
			rte_pktmbuf_free(f->m[(f->head + i) % f->cap]);
		rte_pktmbuf_free(sd->held);
		rte_free(f->m);
		rte_free(f->at);
	}
	rte_free(im);
}

static void
fifo_push(struct impair_side *sd, struct rte_mbuf *m, uint64_t at, bool delayed)
{
	struct impair_fifo *f = &sd->fifo;
	uint32_t tail;

	if (f->n == f->cap) {
		sd->stats.overflow++;
		rte_pktmbuf_free(m);
		return;
	}
	tail = (f->head + f->n) % f->cap;
	f->m[tail] = m;
	f->at[tail] = at;
	f->n++;
	if (delayed)
		sd->stats.delayed++;
}

/* A frame leaves the impairments: into the FIFO with its delay, and the
 * held frame follows once enough frames overtook it. */
static void
forward(struct net_impair *im, struct impair_side *sd, struct rte_mbuf *m)
{
	fifo_push(sd, m, im->now + sd->cfg.delay_us, sd->cfg.delay_us != 0);
	if (sd->held != NULL && --sd->held_after == 0) {
		fifo_push(sd, sd->held, im->now + sd->cfg.delay_us, sd->cfg.delay_us != 0);
		sd->held = NULL;
	}
}

static void
release_held(struct net_impair *im, struct impair_side *sd)
{
	if (sd->held != NULL && im->now >= sd->held_until) {
		fifo_push(sd, sd->held, im->now + sd->cfg.delay_us, sd->cfg.delay_us != 0);
		sd->held = NULL;
	}
}

/* Flip one bit of the IPv4 packet (after the Ethernet header). */
static void
flip_bit(struct net_impair *im, struct rte_mbuf *m)
{
	uint32_t len = rte_pktmbuf_pkt_len(m);
	uint32_t off;
	struct rte_mbuf *s = m;

	if (len <= IMPAIR_ETH_HLEN)
		return;
	off = IMPAIR_ETH_HLEN + (uint32_t)(rng_next(im) % (len - IMPAIR_ETH_HLEN));
	while (s != NULL && off >= s->data_len) {
		off -= s->data_len;
		s = s->next;
	}
	if (s != NULL)
		rte_pktmbuf_mtod(s, uint8_t *)[off] ^= (uint8_t)(1u << (rng_next(im) % 8));
}

/* Corrupt a frame; returns the frame to go on with (a copy on transmit). */
static struct rte_mbuf *
corrupt(struct net_impair *im, int d, struct rte_mbuf *m)
{
	struct impair_side *sd = &im->side[d];

	/* A TSO frame is cut and summed by the port, segment by segment:
	 * nothing done to it here would reach the wire as corruption (and
	 * without the offload it would be too long to send). Left alone. */
	if (d == IMPAIR_TX && (m->ol_flags & RTE_MBUF_F_TX_TCP_SEG))
		return m;
	if (d == IMPAIR_TX && (m->ol_flags & (RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_IP_CKSUM))) {
		/* The NIC would compute valid checksums over flipped bits: drop
		 * the offload instead, so the checksums sent are wrong (the
		 * pseudo-header sum stays in the TCP field, the IP one is 0). */
		m->ol_flags &= ~(RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_IP_CKSUM);
		sd->stats.corrupted++;
		return m;
	}
	{
		/* Transmitted payload segments are shared with the send queue,
		 * and so are received ones on a net_ring port (the peer's
		 * frames themselves): flip a bit of a private copy only. */
		struct rte_mbuf *c = rte_pktmbuf_copy(m, im->conf.pool, 0, UINT32_MAX);

		if (c == NULL) {
			sd->stats.no_mbuf++;
			return m;
		}
		rte_pktmbuf_free(m);
		flip_bit(im, c);
		if (d == IMPAIR_RX) {
			/* As a NIC verifying checksums would report it. */
			c->ol_flags &= ~(RTE_MBUF_F_RX_L4_CKSUM_MASK | RTE_MBUF_F_RX_IP_CKSUM_MASK);
			c->ol_flags |= RTE_MBUF_F_RX_L4_CKSUM_BAD;
		}
		sd->stats.corrupted++;
		return c;
	}
}

static void
impair_one(struct net_impair *im, int d, struct rte_mbuf *m)
{
	struct impair_side *sd = &im->side[d];
	struct rte_mbuf *out[2] = { m, NULL };

	sd->stats.frames++;
	if (chance(im, sd->cfg.loss_ppm)) {
		sd->stats.lost++;
		rte_pktmbuf_free(m);
		return;
	}
	if (chance(im, sd->cfg.corrupt_ppm))
		out[0] = corrupt(im, d, out[0]);
	if (chance(im, sd->cfg.dup_ppm)) {
		out[1] = rte_pktmbuf_copy(out[0], im->conf.pool, 0, UINT32_MAX);
		if (out[1] == NULL)
			sd->stats.no_mbuf++;
		else
			sd->stats.duplicated++;
	}
	for (int k = 0; k < 2 && out[k] != NULL; k++) {
		if (sd->held == NULL && chance(im, sd->cfg.reorder_ppm)) {
			sd->held = out[k];
			sd->held_after = im->conf.reorder_gap;
			sd->held_until = im->now + im->conf.reorder_max_us;
			sd->stats.reordered++;
			continue;
		}
		forward(im, sd, out[k]);
	}
}

/* Pop due frames into out (at most max). */
static uint16_t
drain(struct net_impair *im, int d, struct rte_mbuf **out, uint16_t max)
{
	struct impair_fifo *f = &im->side[d].fifo;
	uint16_t k = 0;

	while (k < max && f->n > 0 && f->at[f->head] <= im->now) {
		out[k++] = f->m[f->head];
		f->head = (f->head + 1) % f->cap;
		f->n--;
	}
	return k;
}

static void
set_now(struct net_impair *im, uint64_t now_us)
{
	if (now_us > im->now)
		im->now = now_us;
}

uint16_t
net_impair_rx(struct net_impair *im, struct rte_mbuf **pkts, uint16_t n, uint16_t cap,
	uint64_t now_us)
{
	set_now(im, now_us);
	for (uint16_t i = 0; i < n; i++)
		impair_one(im, IMPAIR_RX, pkts[i]);
	release_held(im, &im->side[IMPAIR_RX]);
	return drain(im, IMPAIR_RX, pkts, cap);
}

void
net_impair_tx_flush(struct net_impair *im, uint64_t now_us, net_tx_burst_fn tx_fn,
	void *tx_arg)
{
	struct rte_mbuf *out[64];
	uint16_t k, sent;

	set_now(im, now_us);
	release_held(im, &im->side[IMPAIR_TX]);
	while ((k = drain(im, IMPAIR_TX, out, (uint16_t)RTE_DIM(out))) > 0) {
		sent = tx_fn(tx_arg, out, k);
		for (uint16_t i = sent; i < k; i++)
			rte_pktmbuf_free(out[i]);
		if (sent < k)
			break;	/* the device is full: the rest waits */
	}
}

uint16_t
net_impair_tx(struct net_impair *im, struct rte_mbuf **pkts, uint16_t n, uint64_t now_us,
	net_tx_burst_fn tx_fn, void *tx_arg)
{
	set_now(im, now_us);
	for (uint16_t i = 0; i < n; i++)
		impair_one(im, IMPAIR_TX, pkts[i]);
	net_impair_tx_flush(im, now_us, tx_fn, tx_arg);
	return n;
}

uint64_t
net_impair_now(const struct net_impair *im)
{
	return im->now;
}

const struct net_impair_stats *
net_impair_stats(const struct net_impair *im, int dir)
{
	return &im->side[dir == 0 ? IMPAIR_RX : IMPAIR_TX].stats;
}

uint32_t
net_impair_held(const struct net_impair *im)
{
	uint32_t n = 0;

	for (int d = 0; d < 2; d++)
		n += im->side[d].fifo.n + (im->side[d].held != NULL ? 1 : 0);
	return n;
}

void
net_impair_describe(const struct net_impair *im, char *buf, size_t len)
{
	const struct net_impair_dir *r = &im->side[IMPAIR_RX].cfg;
	const struct net_impair_dir *t = &im->side[IMPAIR_TX].cfg;

	snprintf(buf, len, "impair seed=%" PRIu64 " rx: loss %u dup %u reorder %u corrupt %u ppm"
		" delay %" PRIu64 " us; tx: loss %u dup %u reorder %u corrupt %u ppm delay %" PRIu64
		" us; reorder_gap %u", im->conf.seed, r->loss_ppm, r->dup_ppm, r->reorder_ppm,
		r->corrupt_ppm, r->delay_us, t->loss_ppm, t->dup_ppm, t->reorder_ppm,
		t->corrupt_ppm, t->delay_us, im->conf.reorder_gap);
}

/* "1.5" percent -> 15000 ppm. */
static int
parse_pct(const char *v, uint32_t *ppm)
{
	char *end;
	double d = strtod(v, &end);

	if (end == v || *end != '\0' || d < 0 || d > 100)
		return -EINVAL;
	*ppm = (uint32_t)(d * 10000.0 + 0.5);
	return 0;
}

static int
parse_u64(const char *v, uint64_t *out)
{
	char *end;
	unsigned long long x = strtoull(v, &end, 0);

	if (end == v || *end != '\0' || v[0] == '-')
		return -EINVAL;
	*out = x;
	return 0;
}

static int
parse_dir_key(struct net_impair_dir *d, const char *k, const char *v)
{
	if (strcmp(k, "loss") == 0)
		return parse_pct(v, &d->loss_ppm);
	if (strcmp(k, "dup") == 0)
		return parse_pct(v, &d->dup_ppm);
	if (strcmp(k, "reorder") == 0)
		return parse_pct(v, &d->reorder_ppm);
	if (strcmp(k, "corrupt") == 0)
		return parse_pct(v, &d->corrupt_ppm);
	if (strcmp(k, "delay_us") == 0)
		return parse_u64(v, &d->delay_us);
	return -EINVAL;
}

int
net_impair_parse(struct net_impair_conf *conf, const char *spec)
{
	char buf[512], *save = NULL, *tok;

	if (spec == NULL || strlen(spec) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, spec);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		char *v = strchr(tok, '=');
		uint64_t x = 0;
		int rc;

		if (v == NULL)
			return -EINVAL;
		*v++ = '\0';
		if (strcmp(tok, "seed") == 0) {
			rc = parse_u64(v, &conf->seed);
		} else if (strcmp(tok, "queue_max") == 0) {
			rc = parse_u64(v, &x);
			if (rc == 0 && x > UINT32_MAX)
				rc = -EINVAL;
			conf->queue_max = (uint32_t)x;
		} else if (strcmp(tok, "reorder_gap") == 0) {
			rc = parse_u64(v, &x);
			if (rc == 0 && x > UINT32_MAX)
				rc = -EINVAL;
			conf->reorder_gap = (uint32_t)x;
		} else if (strcmp(tok, "reorder_max_us") == 0) {
			rc = parse_u64(v, &conf->reorder_max_us);
		} else if (strncmp(tok, "rx_", 3) == 0) {
			rc = parse_dir_key(&conf->rx, tok + 3, v);
		} else if (strncmp(tok, "tx_", 3) == 0) {
			rc = parse_dir_key(&conf->tx, tok + 3, v);
		} else {
			rc = parse_dir_key(&conf->rx, tok, v);
			if (rc == 0)
				rc = parse_dir_key(&conf->tx, tok, v);
		}
		if (rc != 0)
			return rc;
	}
	return 0;
}
