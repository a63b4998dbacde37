/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_port: ethdev port setup for the stack (queues, symmetric RSS with
 * the redirection table programmed, checksum offloads) and the per-worker
 * glue (output function that drops while the link is down, poll step, TSC
 * clock). See net_port.h.
 */
#include "net_port.h"

#include <errno.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "net_impair.h"
#include "net_internal.h"

#define NET_PORT_BURST 32

/*
 * Symmetric Toeplitz key: with 0x6d5a repeated, swapping source and
 * destination (address and port) leaves the hash unchanged, so both
 * directions of a flow land on the same queue (Woo and Park, "Scalable TCP
 * Session Monitoring with Symmetric Receive-side Scaling").
 */
static void
symmetric_key(uint8_t *key, unsigned int len)
{
	for (unsigned i = 0; i < len; i++)
		key[i] = (i & 1) ? 0x5a : 0x6d;
}

/* Largest key (bytes) and redirection table (entries) we program. */
#define NET_PORT_KEY_MAX 64
#define NET_PORT_RETA_MAX 2048
#define NET_PORT_RETA_GROUPS (NET_PORT_RETA_MAX / RTE_ETH_RETA_GROUP_SIZE)

/*
 * Program the redirection table as the stack's source-port choice assumes
 * (entry i -> queue i mod nq), and read it back: a driver may accept an
 * update it does not apply. A table that cannot be written but reads back
 * as that layout already is accepted.
 *
 * @return 0, -ENOTSUP (no table), -E2BIG, -EIO (reads back otherwise), or
 *         the ethdev call's negative errno.
 */
static int
port_reta_program(uint16_t port_id, uint16_t reta_size, uint16_t nq)
{
	struct rte_eth_rss_reta_entry64 reta[NET_PORT_RETA_GROUPS];
	const unsigned int g = RTE_ETH_RETA_GROUP_SIZE;
	unsigned int groups = (reta_size + g - 1u) / g;
	int rc, update_rc;

	if (reta_size == 0)
		return -ENOTSUP;
	if (reta_size > NET_PORT_RETA_MAX)
		return -E2BIG;
	memset(reta, 0, sizeof(reta[0]) * groups);
	for (unsigned int i = 0; i < reta_size; i++) {
		reta[i / g].mask |= UINT64_C(1) << (i % g);
		reta[i / g].reta[i % g] = (uint16_t)(i % nq);
	}
	update_rc = rte_eth_dev_rss_reta_update(port_id, reta, reta_size);
	for (unsigned int i = 0; i < groups; i++) {
		memset(reta[i].reta, 0xff, sizeof(reta[i].reta));
		reta[i].mask = UINT64_MAX;
	}
	rc = rte_eth_dev_rss_reta_query(port_id, reta, reta_size);
	if (rc == -ENOTSUP)
		return update_rc; /* written (or not) but not readable: trust the update */
	if (rc != 0)
		return rc;
	for (unsigned int i = 0; i < reta_size; i++) {
		if (reta[i / g].reta[i % g] != i % nq)
			return update_rc != 0 ? update_rc : -EIO;
	}
	return 0;
}

/*
 * Install the symmetric key (of the port's key size) unless the port
 * reports it already, and read it back.
 *
 * @return 0, -ENOTSUP (a key size we cannot fill), -EIO (reads back
 *         otherwise), or the ethdev call's negative errno.
 */
static int
port_key_install(uint16_t port_id, uint8_t key_len, uint64_t rss_hf)
{
	uint8_t want[NET_PORT_KEY_MAX], got[NET_PORT_KEY_MAX];
	struct rte_eth_rss_conf c;
	int rc, update_rc;

	if (key_len < NET_PORT_RSS_KEY_LEN || key_len > NET_PORT_KEY_MAX)
		return -ENOTSUP;
	symmetric_key(want, key_len);
	memset(&c, 0, sizeof(c));
	c.rss_key = got;
	c.rss_key_len = key_len;
	rc = rte_eth_dev_rss_hash_conf_get(port_id, &c);
	if (rc == 0 && memcmp(got, want, key_len) == 0)
		return 0;
	memset(&c, 0, sizeof(c));
	c.rss_key = want;
	c.rss_key_len = key_len;
	c.rss_hf = rss_hf;
	update_rc = rte_eth_dev_rss_hash_update(port_id, &c);
	if (update_rc != 0)
		return update_rc;
	memset(&c, 0, sizeof(c));
	c.rss_key = got;
	c.rss_key_len = key_len;
	rc = rte_eth_dev_rss_hash_conf_get(port_id, &c);
	if (rc == -ENOTSUP)
		return 0; /* accepted, not readable: trust the update */
	if (rc != 0)
		return rc;
	return memcmp(got, want, key_len) == 0 ? 0 : -EIO;
}

#define NET_PORT_TSO_OFFLOADS (RTE_ETH_TX_OFFLOAD_TCP_TSO | RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | \
	RTE_ETH_TX_OFFLOAD_TCP_CKSUM)

/* A driver whose transmit checksum offload is wrong for multi-segment frames. */
static bool
tx_cksum_broken(const char *driver)
{
	return driver != NULL && strcmp(driver, "net_tap") == 0;
}

int
net_port_setup(uint16_t port_id, const struct net_port_conf *conf, struct net_port_info *info)
{
	struct rte_eth_conf ec;
	struct rte_eth_dev_info di;
	struct rte_eth_txconf txc;
	uint8_t key[NET_PORT_KEY_MAX];
	uint8_t key_len;
	uint16_t nq, nb_rxd, nb_txd;
	int socket, rc;

	if (conf == NULL || info == NULL || conf->pool == NULL || !rte_eth_dev_is_valid_port(port_id))
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	rc = rte_eth_dev_info_get(port_id, &di);
	if (rc != 0)
		return rc;
	nq = conf->nb_queues ? conf->nb_queues : 1;
	if (nq > di.max_rx_queues || nq > di.max_tx_queues)
		return -EINVAL;
	nb_rxd = conf->nb_rxd ? conf->nb_rxd : 1024;
	nb_txd = conf->nb_txd ? conf->nb_txd : 1024;
	socket = rte_eth_dev_socket_id(port_id);
	if (socket < 0)
		socket = (int)rte_socket_id();

	memset(&ec, 0, sizeof(ec));
	symmetric_key(info->rss_key, NET_PORT_RSS_KEY_LEN);
	key_len = di.hash_key_size != 0 ? di.hash_key_size : NET_PORT_RSS_KEY_LEN;
	symmetric_key(key, RTE_MIN((unsigned int)key_len, (unsigned int)NET_PORT_KEY_MAX));
	info->rss_reta_err = -ENOTSUP;
	info->rss_key_err = -ENOTSUP;
	if (nq > 1 && (di.flow_type_rss_offloads & RTE_ETH_RSS_NONFRAG_IPV4_TCP) != 0) {
		ec.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		if (key_len <= NET_PORT_KEY_MAX) {
			ec.rx_adv_conf.rss_conf.rss_key = key;
			ec.rx_adv_conf.rss_conf.rss_key_len = key_len;
		}
		ec.rx_adv_conf.rss_conf.rss_hf = (RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_IPV4) &
			di.flow_type_rss_offloads;
		info->rss = true;
		info->reta_size = di.reta_size;
	}
	if ((di.rx_offload_capa & (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM)) ==
			(RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM)) {
		ec.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
		info->rx_cksum_offload = true;
	}
	/*
	 * Not on net_tap: its "offload" is software in the PMD (no gain), and
	 * DPDK 22.11's sums each segment of a chain on its own, so a segment of
	 * odd length before another one gives a wrong TCP checksum; the kernel
	 * drops such a segment and every retransmission of it (a stalled
	 * connection, seen as a consumer that stops). Our software checksum
	 * handles chains.
	 */
	if (!tx_cksum_broken(di.driver_name) &&
		(di.tx_offload_capa & (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM)) ==
			(RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM)) {
		ec.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
		info->tx_cksum_offload = true;
	}
	/*
	 * TSO where asked for and offered, with the checksum offloads it needs
	 * (the stack keeps computing the checksums of ordinary frames where
	 * tx_cksum_offload is off, as on net_tap). net_tap segments in software
	 * (librte_gso) and then sums each mbuf of a segment on its own, and it
	 * refuses a segment size whose frame (Ethernet header included) exceeds
	 * the MTU: the stack is told both (net_port_worker_config).
	 */
	if (conf->tso && (di.tx_offload_capa & NET_PORT_TSO_OFFLOADS) == NET_PORT_TSO_OFFLOADS) {
		ec.txmode.offloads |= NET_PORT_TSO_OFFLOADS;
		info->tso = true;
		info->tso_quirks = tx_cksum_broken(di.driver_name);
	}
	/* Segments are chains (header mbuf + payload attached from the send
	 * queue): ask for multi-segment transmit where the port lists it. */
	if (di.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS)
		ec.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;

	/* The MTU is given at configure time too: a driver without an MTU
	 * operation (net_ring) takes it only there. */
	ec.rxmode.mtu = conf->mtu;
	rc = rte_eth_dev_configure(port_id, nq, nq, &ec);
	if (rc != 0)
		return rc;
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rxd, &nb_txd);
	if (rc != 0)
		return rc;
	if (conf->mtu != 0) {
		uint16_t got = 0;

		rc = rte_eth_dev_set_mtu(port_id, conf->mtu);
		if (rc == -ENOTSUP && rte_eth_dev_get_mtu(port_id, &got) == 0 && got == conf->mtu)
			rc = 0;
		if (rc != 0)
			return rc;
	}
	txc = di.default_txconf;
	txc.offloads = ec.txmode.offloads;
	for (uint16_t q = 0; q < nq; q++) {
		rc = rte_eth_rx_queue_setup(port_id, q, nb_rxd, (unsigned)socket, NULL, conf->pool);
		if (rc != 0)
			return rc;
		rc = rte_eth_tx_queue_setup(port_id, q, nb_txd, (unsigned)socket, &txc);
		if (rc != 0)
			return rc;
	}
	rc = rte_eth_dev_start(port_id);
	if (rc != 0)
		return rc;
	/*
	 * The table and key the stack's active opens aim at (net.h): written
	 * after start (some drivers apply them only to a started port) and
	 * read back. Without a table (net_tap: the kernel picks the queue)
	 * there is nothing to aim at, and no key is written either.
	 */
	if (info->rss && info->reta_size != 0) {
		info->rss_reta_err = port_reta_program(port_id, info->reta_size, nq);
		info->rss_key_err = port_key_install(port_id, key_len,
			ec.rx_adv_conf.rss_conf.rss_hf);
	}
	rc = rte_eth_macaddr_get(port_id, &info->mac);
	if (rc != 0)
		return rc;
	info->nb_queues = nq;
	info->driver = di.driver_name;
	return 0;
}

void
net_port_worker_config(struct net_config *cfg, const struct net_port_info *info,
	struct net_port_queue *q, uint16_t mtu)
{
	cfg->mac = info->mac;
	cfg->mtu = mtu;
	cfg->tx_fn = net_port_tx_burst;
	cfg->tx_arg = q;
	cfg->tx_cksum_offload = info->tx_cksum_offload;
	cfg->tso_max = info->tso ? NET_TSO_MAX : 0;
	cfg->tso_frame_max = info->tso && info->tso_quirks ? (mtu != 0 ? mtu : 1500) : 0;
	cfg->tso_even_pieces = info->tso && info->tso_quirks;
	if (net_port_rss_aimed(info)) {
		cfg->rss_key = info->rss_key;
		cfg->rss_reta_size = info->reta_size;
		cfg->rss_nb_queues = info->nb_queues;
		cfg->rss_queue = q->queue_id;
	} else {
		cfg->rss_key = NULL;
	}
}

static uint16_t
port_raw_tx(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	const struct net_port_queue *q = arg;

	return rte_eth_tx_burst(q->port_id, q->queue_id, pkts, n);
}

uint16_t
net_port_tx_burst(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	struct net_port_queue *q = arg;

	if (q->link_down != NULL && __atomic_load_n(q->link_down, __ATOMIC_RELAXED)) {
		/*
		 * Down as last polled: what the device still takes goes (the flag lags
		 * a link that came back by up to a poll period, and a reconnected memif
		 * peer should not lose its first frames to that); the rest is dropped
		 * here and counted, instead of waiting as "device full".
		 */
		uint16_t sent = port_raw_tx(arg, pkts, n);

		if (sent < n) {
			rte_pktmbuf_free_bulk(pkts + sent, (unsigned int)(n - sent));
			q->tx_link_down += (uint64_t)(n - sent);
		}
		return n;
	}
	if (q->impair != NULL)
		return net_impair_tx(q->impair, pkts, n, net_impair_now(q->impair), port_raw_tx,
			arg);
	return rte_eth_tx_burst(q->port_id, q->queue_id, pkts, n);
}

uint16_t
net_port_poll(struct net_stack *st, const struct net_port_queue *q, uint64_t now_us)
{
	struct rte_mbuf *pkts[NET_PORT_BURST];
	uint16_t n = rte_eth_rx_burst(q->port_id, q->queue_id, pkts, NET_PORT_BURST);

	if (q->impair != NULL)
		n = net_impair_rx(q->impair, pkts, n, NET_PORT_BURST, now_us);
	if (n > 0)
		net_stack_input(st, pkts, n, now_us);
	net_stack_poll(st, now_us);
	if (q->impair != NULL)
		net_impair_tx_flush(q->impair, now_us, port_raw_tx, (void *)(uintptr_t)q);
	return n;
}

uint64_t
net_port_tsc_us(uint64_t tsc)
{
	/* us = cycles * (2^32 * 10^6 / hz) / 2^32: one multiplication, no
	 * 128-bit division (this runs on every poll). */
	static uint64_t mult;

	if (mult == 0)
		mult = (uint64_t)((((__uint128_t)1000000u) << 32) / rte_get_tsc_hz());
	return (uint64_t)(((__uint128_t)tsc * mult) >> 32);
}

uint64_t
net_port_now_us(void)
{
	return net_port_tsc_us(rte_get_tsc_cycles());
}
