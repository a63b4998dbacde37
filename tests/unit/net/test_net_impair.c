/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the impairment layer (dataplane/net/net_impair.c): the
 * specification parser; loss at the configured rate and the same decisions
 * again from the same seed; duplication as identical copies; reordering as
 * a permutation with frames overtaken; delay; corruption of exactly one bit
 * (on receive flagged as a bad checksum, on transmit in a private copy so
 * the send queue's shared data is untouched, or by dropping the checksum
 * offload); the bounded FIFO. Frames carry their index in the payload.
 */
#include "net_impair.h"
#include "net_test_util.h"

#define NFR 10000u
#define FR_LEN 200u

static struct rte_mbuf *
mk(uint32_t idx)
{
	uint8_t b[FR_LEN];

	memset(b, 0, sizeof(b));
	b[12] = 0x08;	/* IPv4 ethertype */
	b[14] = 0x45;
	for (uint32_t i = 20 + 14; i < FR_LEN; i++)
		b[i] = t_pattern(idx + i);
	memcpy(b + 40, &idx, 4);
	return t_frame(b, FR_LEN);
}

static uint32_t
idx_of(const struct rte_mbuf *m)
{
	uint32_t idx;

	memcpy(&idx, rte_pktmbuf_mtod_offset(m, const uint8_t *, 40), 4);
	return idx;
}

static struct net_impair *
mk_impair(const char *spec)
{
	struct net_impair_conf c;
	struct net_impair *im;

	memset(&c, 0, sizeof(c));
	c.pool = t_pool;
	assert_int_equal(net_impair_parse(&c, spec), 0);
	im = net_impair_create(&c);
	assert_non_null(im);
	return im;
}

/* Offer NFR frames on receive in bursts of 32 at now (1 us per burst);
 * returns the delivered indices in out (up to 2 * NFR). */
static uint32_t
run_rx(struct net_impair *im, uint32_t *out, uint64_t *now)
{
	struct rte_mbuf *pkts[64];
	uint32_t got = 0;

	for (uint32_t i = 0; i < NFR; i += 32) {
		uint16_t n = (uint16_t)(NFR - i < 32 ? NFR - i : 32), k;

		for (uint16_t j = 0; j < n; j++)
			pkts[j] = mk(i + j);
		k = net_impair_rx(im, pkts, n, 64, *now);
		for (uint16_t j = 0; j < k; j++) {
			assert_true(got < 2 * NFR);
			out[got++] = idx_of(pkts[j]);
			rte_pktmbuf_free(pkts[j]);
		}
		*now += 1;
	}
	/* Let holds and delays run out. */
	for (int r = 0; r < 100; r++) {
		uint16_t k;

		*now += 1000;
		while ((k = net_impair_rx(im, pkts, 0, 64, *now)) > 0) {
			for (uint16_t j = 0; j < k; j++) {
				out[got++] = idx_of(pkts[j]);
				rte_pktmbuf_free(pkts[j]);
			}
		}
	}
	assert_int_equal(net_impair_held(im), 0);
	return got;
}

static void
test_parse(void **state)
{
	struct net_impair_conf c;

	memset(&c, 0, sizeof(c));
	assert_int_equal(net_impair_parse(&c, "seed=7,loss=1.5,rx_dup=2,tx_delay_us=10000,"
		"reorder=0.5,reorder_gap=4,corrupt=0.01,queue_max=100"), 0);
	assert_int_equal(c.seed, 7);
	assert_int_equal(c.rx.loss_ppm, 15000);
	assert_int_equal(c.tx.loss_ppm, 15000);
	assert_int_equal(c.rx.dup_ppm, 20000);
	assert_int_equal(c.tx.dup_ppm, 0);
	assert_int_equal(c.tx.delay_us, 10000);
	assert_int_equal(c.rx.delay_us, 0);
	assert_int_equal(c.rx.reorder_ppm, 5000);
	assert_int_equal(c.reorder_gap, 4);
	assert_int_equal(c.tx.corrupt_ppm, 100);
	assert_int_equal(c.queue_max, 100);
	assert_int_equal(net_impair_parse(&c, "lose=1"), -EINVAL);
	assert_int_equal(net_impair_parse(&c, "loss=abc"), -EINVAL);
	assert_int_equal(net_impair_parse(&c, "loss=101"), -EINVAL);
	assert_int_equal(net_impair_parse(&c, "loss"), -EINVAL);
	assert_int_equal(net_impair_parse(&c, "rx_delay_us=-5"), -EINVAL);
	memset(&c, 0, sizeof(c));
	errno = 0;
	assert_null(net_impair_create(&c));	/* no pool */
	assert_int_equal(errno, EINVAL);
}

static void
test_loss_rate_and_replay(void **state)
{
	static uint32_t a[2 * NFR], b[2 * NFR], c[2 * NFR];
	struct net_impair *im;
	uint64_t now = 1000;
	uint32_t na, nb, nc;
	char desc[256];

	im = mk_impair("seed=99,rx_loss=5");
	na = run_rx(im, a, &now);
	net_impair_describe(im, desc, sizeof(desc));
	assert_non_null(strstr(desc, "seed=99"));
	assert_int_equal(net_impair_stats(im, 0)->lost, NFR - na);
	assert_int_equal(net_impair_stats(im, 0)->frames, NFR);
	assert_true(na > NFR * 93 / 100 && na < NFR * 97 / 100);
	for (uint32_t i = 1; i < na; i++)
		assert_true(a[i] > a[i - 1]);	/* loss alone keeps the order */
	net_impair_free(im);
	/* Same seed: the same frames lost. */
	im = mk_impair("seed=99,rx_loss=5");
	nb = run_rx(im, b, &now);
	net_impair_free(im);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na * sizeof(a[0]));
	/* Another seed: other frames. */
	im = mk_impair("seed=100,rx_loss=5");
	nc = run_rx(im, c, &now);
	net_impair_free(im);
	assert_true(nc != na || memcmp(a, c, na * sizeof(a[0])) != 0);
}

static void
test_dup(void **state)
{
	static uint32_t a[2 * NFR];
	struct net_impair *im = mk_impair("seed=5,rx_dup=10");
	uint64_t now = 1000;
	uint32_t n = run_rx(im, a, &now), dups = 0;

	assert_int_equal(n, NFR + net_impair_stats(im, 0)->duplicated);
	assert_true(n > NFR * 108 / 100 && n < NFR * 112 / 100);
	for (uint32_t i = 1; i < n; i++) {
		assert_true(a[i] >= a[i - 1]);
		if (a[i] == a[i - 1])
			dups++;
	}
	assert_int_equal(dups, n - NFR);
	net_impair_free(im);
}

static void
test_reorder(void **state)
{
	static uint32_t a[2 * NFR];
	static uint8_t seen[NFR];
	struct net_impair *im = mk_impair("seed=11,rx_reorder=5,reorder_gap=3");
	uint64_t now = 1000;
	uint32_t n = run_rx(im, a, &now), inversions = 0;

	assert_int_equal(n, NFR);
	memset(seen, 0, sizeof(seen));
	for (uint32_t i = 0; i < n; i++) {
		assert_true(a[i] < NFR);
		assert_int_equal(seen[a[i]]++, 0);
		if (i > 0 && a[i] < a[i - 1]) {
			inversions++;
			/* Overtaken by exactly reorder_gap frames. */
			assert_int_equal(a[i - 1] - a[i], 3);
		}
	}
	assert_true(inversions > 0);
	assert_int_equal(inversions, net_impair_stats(im, 0)->reordered);
	net_impair_free(im);
}

static void
test_delay(void **state)
{
	struct net_impair *im = mk_impair("seed=1,rx_delay_us=10000");
	struct rte_mbuf *pkts[8];
	uint16_t k;

	for (uint32_t i = 0; i < 4; i++)
		pkts[i] = mk(i);
	assert_int_equal(net_impair_rx(im, pkts, 4, 8, 50000), 0);
	assert_int_equal(net_impair_rx(im, pkts, 0, 8, 59999), 0);
	k = net_impair_rx(im, pkts, 0, 2, 60000);	/* cap 2: the rest waits */
	assert_int_equal(k, 2);
	assert_int_equal(idx_of(pkts[0]), 0);
	assert_int_equal(idx_of(pkts[1]), 1);
	rte_pktmbuf_free(pkts[0]);
	rte_pktmbuf_free(pkts[1]);
	k = net_impair_rx(im, pkts, 0, 8, 60000);
	assert_int_equal(k, 2);
	assert_int_equal(idx_of(pkts[0]), 2);
	rte_pktmbuf_free(pkts[0]);
	rte_pktmbuf_free(pkts[1]);
	assert_int_equal(net_impair_stats(im, 0)->delayed, 4);
	net_impair_free(im);
}

static int
bits_differ(const uint8_t *x, const uint8_t *y, uint32_t n)
{
	int d = 0;

	for (uint32_t i = 0; i < n; i++)
		d += __builtin_popcount((unsigned)(x[i] ^ y[i]));
	return d;
}

static void
test_corrupt_rx(void **state)
{
	struct net_impair *im = mk_impair("seed=3,rx_corrupt=100");
	struct rte_mbuf *m;
	uint8_t orig[FR_LEN];

	for (uint32_t i = 0; i < 200; i++) {
		m = mk(i);
		memcpy(orig, rte_pktmbuf_mtod(m, void *), FR_LEN);
		m->ol_flags = RTE_MBUF_F_RX_L4_CKSUM_GOOD | RTE_MBUF_F_RX_IP_CKSUM_GOOD;
		assert_int_equal(net_impair_rx(im, &m, 1, 1, 1000), 1);
		assert_int_equal(bits_differ(orig, rte_pktmbuf_mtod(m, uint8_t *), FR_LEN), 1);
		/* Never the Ethernet header. */
		assert_memory_equal(orig, rte_pktmbuf_mtod(m, uint8_t *), 14);
		assert_int_equal(m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK,
			RTE_MBUF_F_RX_L4_CKSUM_BAD);
		assert_int_equal(m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK, 0);
		rte_pktmbuf_free(m);
	}
	assert_int_equal(net_impair_stats(im, 0)->corrupted, 200);
	net_impair_free(im);
}

static void
test_corrupt_tx_copy(void **state)
{
	struct net_impair *im = mk_impair("seed=4,tx_corrupt=100,tx_dup=100");
	struct rte_mbuf *shared = mk(7), *hdr, *ind;
	uint8_t orig[FR_LEN], got[2 * FR_LEN], full[2 * FR_LEN];
	struct t_cap cap;
	unsigned avail;

	memset(&cap, 0, sizeof(cap));
	memcpy(orig, rte_pktmbuf_mtod(shared, void *), FR_LEN);
	/* A frame like the stack builds: header mbuf + an indirect mbuf
	 * attached to "send queue" data. */
	hdr = mk(8);
	rte_pktmbuf_trim(hdr, FR_LEN - 54);
	ind = rte_pktmbuf_alloc(t_pool);
	assert_non_null(ind);
	rte_pktmbuf_attach(ind, shared);
	assert_int_equal(rte_pktmbuf_chain(hdr, ind), 0);
	memcpy(full, rte_pktmbuf_read(hdr, 0, 54 + FR_LEN, got), 54 + FR_LEN);
	avail = rte_mempool_avail_count(t_pool);
	assert_int_equal(net_impair_tx(im, &hdr, 1, 1000, t_cap_tx, &cap), 1);
	assert_int_equal(cap.n, 2);	/* corrupted copy and its duplicate */
	for (unsigned k = 0; k < cap.n; k++) {
		const uint8_t *p = rte_pktmbuf_read(cap.m[k], 0, 54 + FR_LEN, got);

		assert_int_equal(rte_pktmbuf_pkt_len(cap.m[k]), 54 + FR_LEN);
		assert_true(RTE_MBUF_DIRECT(cap.m[k]));
		assert_int_equal(bits_differ(full, p, 54 + FR_LEN), 1);
	}
	/* The shared data is intact. */
	assert_memory_equal(orig, rte_pktmbuf_mtod(shared, void *), FR_LEN);
	t_cap_clear(&cap);
	rte_pktmbuf_free(shared);
	/* Offloaded checksums: the offload is dropped instead. */
	hdr = mk(9);
	hdr->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_CKSUM;
	assert_int_equal(net_impair_tx(im, &hdr, 1, 1000, t_cap_tx, &cap), 1);
	assert_int_equal(cap.n, 2);
	assert_int_equal(cap.m[0]->ol_flags & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_CKSUM),
		0);
	t_cap_clear(&cap);
	assert_int_equal(net_impair_stats(im, 1)->corrupted, 2);
	net_impair_free(im);
	assert_true(rte_mempool_avail_count(t_pool) >= avail);
}

static void
test_overflow_and_free(void **state)
{
	struct net_impair *im = mk_impair("seed=1,delay_us=1000000,queue_max=16");
	unsigned avail = rte_mempool_avail_count(t_pool);
	struct rte_mbuf *pkts[20];
	struct t_cap cap;

	memset(&cap, 0, sizeof(cap));
	for (uint32_t i = 0; i < 20; i++)
		pkts[i] = mk(i);
	assert_int_equal(net_impair_rx(im, pkts, 20, 20, 1000), 0);
	assert_int_equal(net_impair_stats(im, 0)->overflow, 4);
	for (uint32_t i = 0; i < 5; i++)
		pkts[i] = mk(i);
	assert_int_equal(net_impair_tx(im, pkts, 5, 1000, t_cap_tx, &cap), 5);
	assert_int_equal(cap.n, 0);
	assert_int_equal(net_impair_held(im), 21);
	/* Freeing the layer frees what it holds. */
	net_impair_free(im);
	assert_int_equal(rte_mempool_avail_count(t_pool), avail);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_loss_rate_and_replay),
		cmocka_unit_test(test_dup),
		cmocka_unit_test(test_reorder),
		cmocka_unit_test(test_delay),
		cmocka_unit_test(test_corrupt_rx),
		cmocka_unit_test(test_corrupt_tx_copy),
		cmocka_unit_test(test_overflow_and_free),
	};

	if (t_eal_init() != 0) {
		fprintf(stderr, "test_net_impair: EAL did not start; skipping\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
