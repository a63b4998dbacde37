/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_impair: a software impairment layer for tests, between a port queue
 * and the stack. Off unless a worker's struct net_port_queue points at one
 * (net_port_poll and net_port_tx_burst then pass every received and every
 * transmitted frame through it). On each direction it can lose, duplicate,
 * reorder, delay and corrupt frames, with probabilities in parts per
 * million drawn from a seeded generator: the same seed and the same frame
 * sequence give the same decisions, so a failing run can be replayed
 * (net_impair_describe prints the seed and settings).
 *
 * What each impairment does:
 *  - loss: the frame is freed.
 *  - duplication: a deep copy (rte_pktmbuf_copy) follows the frame.
 *  - reordering: the frame is held back until reorder_gap later frames of
 *    the same direction have passed (or reorder_max_us elapsed), then sent.
 *  - delay: every frame waits delay_us in a FIFO (bounded by queue_max;
 *    beyond it frames are dropped and counted as overflow).
 *  - corruption: one bit of the IPv4 packet is flipped, in a deep copy
 *    (transmitted payload is shared with the send queue, and on net_ring
 *    a received frame is the peer's). On receive the copy is also marked
 *    RTE_MBUF_F_RX_L4_CKSUM_BAD, as a NIC that verifies checksums would (a
 *    port trusting partial checksums would otherwise accept it); on
 *    transmit the receiver's checksum check drops it, and a frame asking
 *    for checksum offload loses the offload flags instead of a bit (the
 *    NIC would checksum the flipped bit).
 * The layer belongs to one worker (not thread safe) and holds at most
 * 2 * queue_max + 2 mbufs.
 */
#ifndef SLP_NET_IMPAIR_H
#define SLP_NET_IMPAIR_H

#include <stdint.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Impairments of one direction. Probabilities in parts per million. */
struct net_impair_dir {
	uint32_t loss_ppm;
	uint32_t dup_ppm;
	uint32_t reorder_ppm;
	uint32_t corrupt_ppm;
	uint64_t delay_us;		/**< added to every frame */
};

/** Configuration. Zero fields take the documented default. */
struct net_impair_conf {
	uint64_t seed;			/**< generator seed; 0 = from the TSC (reported) */
	struct net_impair_dir rx;	/**< frames from the port to the stack */
	struct net_impair_dir tx;	/**< frames from the stack to the port */
	uint32_t queue_max;		/**< frames held per direction; 0 = 8192 */
	uint32_t reorder_gap;		/**< frames that overtake a reordered one; 0 = 3 */
	uint64_t reorder_max_us;	/**< longest hold of a reordered frame; 0 = 10 ms */
	struct rte_mempool *pool;	/**< for copies (duplication, tx corruption); required */
};

/** Counters per direction. */
struct net_impair_stats {
	uint64_t frames;		/**< frames offered */
	uint64_t lost;
	uint64_t duplicated;
	uint64_t reordered;
	uint64_t delayed;		/**< frames that waited in the delay FIFO */
	uint64_t corrupted;
	uint64_t overflow;		/**< dropped: queue_max frames already held */
	uint64_t no_mbuf;		/**< copy failed (the impairment was skipped) */
};

struct net_impair;

/**
 * Create a layer. Parses nothing, allocates its FIFOs (rte_zmalloc).
 *
 * @return the layer, or NULL (errno: EINVAL for a bad configuration, ENOMEM).
 */
struct net_impair *
net_impair_create(const struct net_impair_conf *conf);

/** Free the layer and every frame it holds. Safe with NULL. */
void
net_impair_free(struct net_impair *im);

/**
 * Parse "key=value,..." (keys: seed, loss, dup, reorder, corrupt, delay_us,
 * each optionally prefixed rx_ or tx_ (no prefix = both directions); loss,
 * dup, reorder, corrupt in percent, decimals allowed, e.g. "loss=1.5"; also
 * queue_max, reorder_gap, reorder_max_us) into conf, on top of what it holds.
 *
 * @return 0, or -EINVAL for an unknown key or a bad value.
 */
int
net_impair_parse(struct net_impair_conf *conf, const char *spec);

/** One line describing seed and settings (for logs, to replay a run). */
void
net_impair_describe(const struct net_impair *im, char *buf, size_t len);

/**
 * Receive side: impair the n frames of pkts (consumed) and return in pkts
 * the frames due now, at most cap (pkts must hold cap entries; frames not
 * fitting stay queued for the next call).
 */
uint16_t
net_impair_rx(struct net_impair *im, struct rte_mbuf **pkts, uint16_t n, uint16_t cap,
	uint64_t now_us);

/**
 * Transmit side: impair pkts (all consumed) and send what is due through
 * tx_fn(tx_arg, ...); frames tx_fn refuses are freed and counted by the
 * caller's port statistics only. Returns n (the frames are consumed).
 */
uint16_t
net_impair_tx(struct net_impair *im, struct rte_mbuf **pkts, uint16_t n, uint64_t now_us,
	net_tx_burst_fn tx_fn, void *tx_arg);

/** Send transmit frames whose delay or hold is over. Call every loop. */
void
net_impair_tx_flush(struct net_impair *im, uint64_t now_us, net_tx_burst_fn tx_fn,
	void *tx_arg);

/** Time of the layer's clock (the last now_us it was given). */
uint64_t
net_impair_now(const struct net_impair *im);

/** Counters: dir 0 = rx, 1 = tx (borrowed). */
const struct net_impair_stats *
net_impair_stats(const struct net_impair *im, int dir);

/** Frames currently held (both directions). */
uint32_t
net_impair_held(const struct net_impair *im);

#ifdef __cplusplus
}
#endif

#endif /* SLP_NET_IMPAIR_H */
