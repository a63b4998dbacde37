/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net: Slipstream's userspace network stack, one instance per worker lcore.
 *
 * A net_stack owns one port queue's worth of traffic: it takes received
 * frames (rte_mbuf) from the worker's rx burst, runs Ethernet demux, ARP,
 * IPv4 validation, ICMP echo and TCP on them, and hands the frames it builds
 * to an output function (rte_eth_tx_burst in the dataplane, a capture queue
 * in the tests). It never reads a clock or calls the NIC itself: the caller
 * passes the time (microseconds, from the TSC in the dataplane, from a fake
 * clock in the tests) into every entry point, so the stack is deterministic
 * under test. Everything is preallocated at create time; the data path does
 * not call malloc.
 *
 * Run-to-completion use by a worker:
 *
 *	n = rte_eth_rx_burst(port, q, pkts, 32);
 *	net_stack_input(st, pkts, n, now_us);   // consumes every mbuf
 *	net_stack_poll(st, now_us);             // timers, queued output, reaping
 *
 * The TCP API toward the Kafka layer is in net_tcp.h.
 */
#ifndef SLP_NET_H
#define SLP_NET_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#ifdef __cplusplus
extern "C" {
#endif

struct net_stack;

/** Largest TSO payload: 65535 minus IPv4 and TCP headers with 40 bytes of options. */
#define NET_TSO_MAX 65455u

/**
 * Output function: send up to n frames. Consumes the frames it counts in its
 * return value (the first ones of pkts); the stack frees the others and
 * counts them in tx_dropped. Same contract as rte_eth_tx_burst.
 */
typedef uint16_t (*net_tx_burst_fn)(void *arg, struct rte_mbuf **pkts, uint16_t n);

/** Configuration of one stack instance. Zero fields take the documented default. */
struct net_config {
	struct rte_ether_addr mac;	/**< our MAC address */
	uint32_t ipv4_addr;		/**< our address, network byte order (required) */
	uint32_t ipv4_mask;		/**< netmask, network order; 0 = 255.255.255.0 */
	uint32_t ipv4_gateway;		/**< next hop off-link, network order; 0 = none */
	uint16_t mtu;			/**< IP MTU in bytes; 0 = 1500 */
	struct rte_mempool *pool;	/**< pktmbuf pool for frames we build (required) */
	/** Mbufs of pool that net_tcp_send leaves free for headers and
	 * retransmissions, so send queues cannot starve output; 0 = size/8. */
	uint32_t pool_reserve;
	net_tx_burst_fn tx_fn;		/**< output (required) */
	void *tx_arg;			/**< first argument of tx_fn */

	/* Checksums. A veth peer's frames carry partial checksums (the kernel
	 * offloads them and af_packet passes them as they are): set
	 * rx_l4_cksum_trusted on such a port. Frames whose mbuf says
	 * RTE_MBUF_F_RX_L4_CKSUM_GOOD or _NONE (verified or partial) are
	 * accepted on any port; _BAD is dropped; _UNKNOWN is verified in
	 * software unless rx_l4_cksum_trusted. */
	bool rx_l4_cksum_trusted;
	/** Port computes IPv4 and TCP checksums on transmit (offload flags set). */
	bool tx_cksum_offload;
	/** Leave the TCP checksum of sent segments uncomputed, for a peer that
	 * does not verify it (a memif peer trusting received checksums): the
	 * field holds the pseudo-header sum, as a partial checksum would, and
	 * the payload is not read. The IPv4 header checksum is still computed.
	 * tx_cksum_offload and TSO frames take precedence (the port fills the
	 * checksum at no cost to the stack). */
	bool tx_l4_cksum_skip;

	/* TCP segmentation offload. With tso_max set, new data may leave as one
	 * frame of up to tso_max payload bytes (whole segments, or ending the
	 * queued data), flagged RTE_MBUF_F_TX_TCP_SEG with tso_segsz and the
	 * header lengths set, for the port to cut into segments; windows, SACK,
	 * RACK's log and retransmissions stay per byte and per MSS. */
	uint32_t tso_max;		/**< payload bytes per TSO frame (at most
					 * NET_TSO_MAX); 0 = no TSO */
	/** Largest frame (Ethernet header on, no FCS) a segment of the port's
	 * TSO may make; 0 = MTU + 14. net_tap counts the Ethernet header in the
	 * MTU here (DPDK 22.11): segments are cut shorter than the MSS. */
	uint16_t tso_frame_max;
	/** The port's TSO sums each mbuf of a segment as if it started at an
	 * even offset (net_tap, DPDK 22.11): frames with an odd-length piece
	 * before the last are not given to TSO. */
	bool tso_even_pieces;

	/* ARP */
	uint32_t arp_entries;		/**< cache slots, rounded up to a power of 2; 0 = 256 */
	uint64_t arp_timeout_us;	/**< entry lifetime; 0 = 60 s */
	uint64_t arp_retry_us;		/**< min gap between requests for one address; 0 = 1 s */

	/* TCP */
	uint32_t max_conns;		/**< connection table size (incl. TIME-WAIT); 0 = 1024 */
	uint32_t max_listeners;		/**< listening ports; 0 = 8 */
	uint32_t sndbuf_bytes;		/**< per-connection send queue limit; 0 = 256 KiB */
	uint32_t rcvbuf_bytes;		/**< per-connection receive window; 0 = 256 KiB */
	/** Out-of-order segments kept per connection (at most 255); 0 = a
	 * receive window of MSS-sized segments (182 for the default 256 KiB
	 * and MTU 1500; at least 64): with fewer, a loss in a large window
	 * makes the receiver drop what it cannot hold and the sender resend
	 * it. Memory: max_conns x this x 16 bytes. */
	uint32_t ooo_max_segs;
	uint64_t rto_min_us;		/**< RFC 6298 (2.4) lower bound; 0 = 200 ms */
	uint64_t rto_max_us;		/**< RTO upper bound; 0 = 60 s */
	uint64_t rto_initial_us;	/**< RFC 6298 (2.1) initial RTO; 0 = 1 s */
	uint64_t delack_us;		/**< delayed ACK timeout; 0 = 40 ms */
	uint64_t time_wait_us;		/**< TIME-WAIT (2 MSL); 0 = 60 s */
	uint32_t max_retries;		/**< RTO expiries in a row before abort; 0 = 12 */
	uint32_t syn_retries;		/**< SYN / SYN-ACK retransmissions; 0 = 5 */
	uint32_t challenge_ack_limit;	/**< RFC 5961 section 7, per second; 0 = 1000 */
	uint64_t keepalive_idle_us;	/**< RFC 9293 3.8.4 keepalive after this idle time; 0 = off */
	uint64_t keepalive_intvl_us;	/**< between unanswered probes; 0 = 75 s */
	uint32_t keepalive_probes;	/**< unanswered probes before abort; 0 = 9 */
	bool no_timestamps;		/**< do not offer RFC 7323 timestamps */
	bool no_window_scale;		/**< do not offer RFC 7323 window scale */
	bool no_sack;			/**< do not offer RFC 2018 SACK-permitted */
	/** Do not answer SYNs with SYN cookies when a listener's backlog is
	 * full (they are then dropped and counted in tcp_syn_dropped). */
	bool no_syncookies;
	uint32_t syncookie_limit;	/**< cookie SYN-ACKs per second, stack-wide; 0 = 10000 */
	uint16_t ephemeral_lo;		/**< active-open source ports; 0 = 32768 */
	uint16_t ephemeral_hi;		/**< 0 = 60999 */
	uint64_t seed;			/**< ISN secret and port choice seed (RFC 6528) */

	/* RSS: active opens choose a source port so that the NIC's Toeplitz
	 * hash of the reply brings it back to this worker's queue. With
	 * rss_key NULL every port fits. The redirection table is assumed to
	 * be the default one (entry i -> queue i % rss_nb_queues). */
	const uint8_t *rss_key;		/**< 40-byte Toeplitz key, or NULL */
	uint16_t rss_reta_size;		/**< redirection table entries */
	uint16_t rss_nb_queues;		/**< rx queues behind the table */
	uint16_t rss_queue;		/**< this worker's queue */
};

/** Counters of one stack; plain integers, owned by the worker lcore. */
struct net_stats {
	uint64_t rx_frames;
	uint64_t rx_bad_eth;		/* truncated, VLAN-tagged or not for us */
	uint64_t rx_unknown_ethertype;
	uint64_t rx_arp;
	uint64_t rx_bad_arp;
	uint64_t rx_ipv4;
	uint64_t rx_bad_ipv4;		/* version, IHL, length, header checksum, TTL */
	uint64_t rx_ip_not_for_us;
	uint64_t rx_ip_fragments;	/* fragments are dropped (docs/net-stack.md) */
	uint64_t rx_unknown_proto;
	uint64_t rx_multiseg_hdr;	/* headers not contiguous in the first segment */
	uint64_t rx_icmp;
	uint64_t rx_icmp_bad;
	uint64_t tx_icmp_echo_reply;
	uint64_t rx_tcp;
	uint64_t rx_tcp_bad;		/* header length, checksum */
	uint64_t rx_tcp_no_conn;	/* answered with RST */
	uint64_t tcp_syn_dropped;	/* backlog or table full */
	uint64_t tcp_out_of_window;
	uint64_t tcp_paws_rejected;
	uint64_t tcp_challenge_acks;
	uint64_t tcp_challenge_acks_limited;
	uint64_t tcp_rst_rx;
	uint64_t tcp_rst_tx;
	uint64_t tcp_retransmits;	/* segments sent again after RTO */
	uint64_t tcp_fast_retransmits;
	uint64_t tcp_rto_expiries;
	uint64_t tcp_ooo_queued;
	uint64_t tcp_ooo_dropped;
	uint64_t tcp_zero_window_probes;
	uint64_t tcp_delayed_acks;
	uint64_t tcp_keepalive_probes;
	uint64_t tcp_keepalive_drops;	/* connections aborted by keepalive */
	uint64_t arp_requests_tx;
	uint64_t arp_replies_tx;
	uint64_t arp_held_dropped;	/* frames waiting for ARP replaced or expired */
	uint64_t tx_frames;		/* frames on the wire (a TSO frame: its segments) */
	uint64_t tx_dropped;		/* batch and device full: frame dropped */
	uint64_t tx_no_mbuf;		/* pool empty */
	/* SACK loss recovery (RFC 2018, RFC 6675) */
	uint64_t tcp_sack_recoveries;	/* recoveries entered with a scoreboard */
	uint64_t tcp_sack_retransmits;	/* segments resent from the scoreboard */
	uint64_t tcp_sack_blocks_ignored; /* empty, old or beyond SND.MAX */
	uint64_t tcp_sack_sb_full;	/* ranges not recorded: scoreboard full */
	uint64_t tcp_sack_skipped_bytes; /* SACKed bytes not resent after an RTO */
	uint64_t tcp_tlp_probes;	/* tail loss probes sent (RFC 8985 section 7) */
	uint64_t tcp_early_retransmits;	/* recoveries entered early (RFC 5827, TLP) */
	uint64_t tcp_lost_retransmits;	/* resends found lost by later SACKs, resent again */
	uint64_t tx_full;		/* flushes the device did not take whole (frames kept) */
	/* SYN cookies (backlog full) */
	uint64_t tcp_syncookies_sent;
	uint64_t tcp_syncookies_ok;	/* connections made from a valid cookie */
	uint64_t tcp_syncookies_failed;	/* ACKs to a listener with a bad or old cookie */
	uint64_t tcp_syncookies_limited; /* SYNs dropped: cookie budget of the second spent */
	uint64_t tcp_time_wait_reused;	/* TIME-WAIT entries ended early: the table was full */
	/* Bytes, finer drop reasons and opens (exported as metrics by net_dpdk) */
	uint64_t rx_bytes;		/* bytes of the frames received (Ethernet header on) */
	uint64_t tx_bytes;		/* bytes of the frames the device took (on the wire) */
	uint64_t rx_ip_cksum_bad;	/* of rx_bad_ipv4: the header checksum */
	uint64_t rx_tcp_cksum_bad;	/* of rx_tcp_bad: the checksum */
	uint64_t tcp_active_opens;	/* SYN-SENT -> ESTABLISHED */
	uint64_t tcp_passive_opens;	/* SYN-RECEIVED -> ESTABLISHED */
	/* Gauges: connections in the table, by state (their sum is the table's use) */
	uint64_t tcp_conns_syn;		/* SYN-SENT, SYN-RECEIVED */
	uint64_t tcp_conns_established;
	uint64_t tcp_conns_closing;	/* FIN-WAIT-1/2, CLOSE-WAIT, CLOSING, LAST-ACK */
	uint64_t tcp_conns_time_wait;
	/* RACK (RFC 8985), appended */
	uint64_t tcp_rack_lost;		/* log entries (bursts) RACK deemed lost */
	uint64_t tcp_rack_reo_timeouts;	/* reordering timer expiries */
	/* TSO (cfg.tso_max), appended */
	uint64_t tcp_tso_frames;	/* TSO frames the device took */
	uint64_t tcp_tso_segments;	/* segments those frames make on the wire */
	uint64_t tcp_tso_fallbacks;	/* sends of one MSS where the windows allowed TSO:
					 * an odd piece or the piece limit came first */
};

/**
 * Create a stack instance. Allocates everything it will ever use (connection
 * table, ARP cache, queues) with rte_zmalloc on the caller's socket.
 *
 * @param cfg  configuration; copied (rss_key is copied too).
 * @return the stack, or NULL (errno set: EINVAL for a bad configuration,
 *         ENOMEM).
 */
struct net_stack *
net_stack_create(const struct net_config *cfg);

/**
 * Free a stack and everything it holds (queued mbufs, connections). No
 * callbacks are made. Safe with NULL.
 */
void
net_stack_free(struct net_stack *st);

/**
 * Announce the stack: sends a gratuitous ARP request for our address.
 * Call once when the port is up.
 */
void
net_stack_start(struct net_stack *st, uint64_t now_us);

/**
 * Process received frames. Consumes every mbuf in pkts (frees it, keeps it,
 * or hands it to a TCP data callback). Callbacks of net_tcp.h run from here.
 *
 * @param now_us  current time in microseconds (monotonic).
 */
void
net_stack_input(struct net_stack *st, struct rte_mbuf **pkts, uint16_t n, uint64_t now_us);

/**
 * Run due timers (retransmission, delayed ACK, persist, TIME-WAIT, ARP),
 * send what the API calls queued since the last poll, reap closed
 * connections and flush the output batch. Call once per worker loop.
 */
void
net_stack_poll(struct net_stack *st, uint64_t now_us);

/** Counters of the stack (borrowed; valid until net_stack_free). */
const struct net_stats *
net_stack_stats(const struct net_stack *st);

/**
 * Look up the ARP cache.
 *
 * @param ip   address, network order.
 * @param mac  filled on success.
 * @return 0, or -ENOENT when there is no resolved, unexpired entry.
 */
int
net_arp_lookup(struct net_stack *st, uint32_t ip, struct rte_ether_addr *mac);

#ifdef __cplusplus
}
#endif

#endif /* SLP_NET_H */
