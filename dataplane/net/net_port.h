/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_port: setting up a DPDK ethdev port for the stack, and the glue a
 * worker needs to run one stack instance on one rx/tx queue pair.
 *
 * net_port_setup configures a port with one rx and one tx queue per worker,
 * RSS over IPv4/TCP with a symmetric Toeplitz key (0x6d5a repeated: both
 * directions of a flow hash alike) when the port has several queues and
 * supports it, checksum offloads where the port has them, and starts it.
 * What it found (MAC, offloads, RSS key and table size) is reported so the
 * caller fills each worker's net_config. net_port_worker_config does that
 * filling; net_port_tx_burst is the stack's output function.
 *
 * With several queues and a redirection table, the table is programmed as
 * entry i -> queue i % queues and the symmetric key installed, each read
 * back (net_port_info.rss_reta_err / rss_key_err say what did not work);
 * only then does net_port_worker_config give the stack the key to aim its
 * active opens' source ports with (net_port_rss_aimed).
 *
 * Link state is polled by the caller (dataplane/net_dpdk.c, through
 * rte_eth_link_get_nowait); while a queue's link_down flag is set, the
 * output function drops and counts what the device refuses. Port
 * stop/close are the caller's.
 */
#ifndef SLP_NET_PORT_H
#define SLP_NET_PORT_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ether.h>
#include <rte_mempool.h>

#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NET_PORT_RSS_KEY_LEN 40

/** What net_port_setup asks for. Zero fields take the documented default. */
struct net_port_conf {
	uint16_t nb_queues;		/**< rx/tx queue pairs = workers; 0 = 1 */
	uint16_t nb_rxd;		/**< rx descriptors per queue; 0 = 1024 */
	uint16_t nb_txd;		/**< tx descriptors per queue; 0 = 1024 */
	uint16_t mtu;			/**< 0 = leave the port's MTU (1500) */
	bool tso;			/**< use TCP segmentation offload where offered */
	struct rte_mempool *pool;	/**< rx mbufs (required) */
};

/** What net_port_setup found and configured. */
struct net_port_info {
	struct rte_ether_addr mac;
	uint16_t nb_queues;
	bool rss;			/**< RSS configured (nb_queues > 1 and supported) */
	uint16_t reta_size;		/**< redirection table entries (RSS only) */
	/** 0: the table is entry i -> queue i % nb_queues (written and read
	 * back); else why not (-ENOTSUP: no table or no RSS, -EIO: it reads
	 * back otherwise, or the ethdev call's errno). */
	int rss_reta_err;
	/** 0: the port hashes with rss_key (the symmetric key, written or
	 * found, and read back where the driver can); else why not, as above. */
	int rss_key_err;
	uint8_t rss_key[NET_PORT_RSS_KEY_LEN];
	bool rx_cksum_offload;		/**< port verifies IPv4/TCP checksums on receive */
	bool tx_cksum_offload;		/**< port computes IPv4/TCP checksums on transmit */
	bool tso;			/**< TSO configured (asked for and offered) */
	/** net_tap's TSO (DPDK 22.11): segment frames limited to the MTU with
	 * the Ethernet header, each mbuf summed as if at an even offset. */
	bool tso_quirks;
	const char *driver;		/**< PMD name (borrowed from DPDK) */
};

struct net_impair;

/** One worker's queue pair: the tx_arg of net_port_tx_burst. */
struct net_port_queue {
	uint16_t port_id;
	uint16_t queue_id;
	/** Link state watch (NULL = not watched): while *link_down is true
	 * (read relaxed; written by whoever polls the link), net_port_tx_burst
	 * frees the frames the device does not take instead of leaving them to
	 * the caller, and counts them in tx_link_down. Borrowed; must outlive
	 * the queue. */
	const bool *link_down;
	uint64_t tx_link_down;		/**< frames dropped while the link was down */
	/** Test impairments (net_impair.h) on this queue's frames, both
	 * directions; NULL (the default) = none. */
	struct net_impair *impair;
};

/**
 * Configure and start a port.
 *
 * @return 0, -EINVAL (bad arguments, too many queues for the port), or the
 *         negative errno of the failing ethdev call.
 */
int
net_port_setup(uint16_t port_id, const struct net_port_conf *conf, struct net_port_info *info);

/**
 * Can active opens aim their replies at a queue: RSS on several queues
 * with the redirection table programmed and the symmetric key in place?
 */
static inline bool
net_port_rss_aimed(const struct net_port_info *info)
{
	return info->rss && info->reta_size != 0 && info->rss_reta_err == 0 &&
		info->rss_key_err == 0;
}

/**
 * Fill the port-related fields of a worker's stack configuration: MAC,
 * MTU, output function (net_port_tx_burst on q), offloads (TSO with the
 * port's limits when info->tso), and (when
 * net_port_rss_aimed) RSS key, table size and queue; else rss_key NULL.
 * q and info are borrowed and must outlive the stack.
 */
void
net_port_worker_config(struct net_config *cfg, const struct net_port_info *info,
	struct net_port_queue *q, uint16_t mtu);

/**
 * net_tx_burst_fn over rte_eth_tx_burst; arg is a struct net_port_queue.
 * Consumes the frames it returns as sent; while the queue's link is down
 * that is all of them (those the device refuses are freed and counted in
 * tx_link_down).
 */
uint16_t
net_port_tx_burst(void *arg, struct rte_mbuf **pkts, uint16_t n);

/**
 * One worker iteration: receive a burst on q, run it through the stack,
 * then net_stack_poll (and, with q->impair, send the transmit frames whose
 * impairment delay is over). Returns the number of frames given to the
 * stack (0 = idle).
 */
uint16_t
net_port_poll(struct net_stack *st, const struct net_port_queue *q, uint64_t now_us);

/** Microseconds from the TSC (monotonic, for the stack's clock). */
uint64_t
net_port_now_us(void);

/** The same clock for a TSC value already read (a reactor's, dp_reactor_tsc()). */
uint64_t
net_port_tsc_us(uint64_t tsc);

#ifdef __cplusplus
}
#endif

#endif /* SLP_NET_PORT_H */
