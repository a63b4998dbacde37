/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_internal: structures and functions shared by the files of dataplane/net
 * (stack, ARP, IPv4/ICMP, TCP). Not for use outside the folder.
 */
#ifndef SLP_NET_INTERNAL_H
#define SLP_NET_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "net.h"
#include "net_tcp.h"

#define NET_TX_BATCH 64
#define NET_NONE UINT32_MAX		/* empty index in tables and lists */
#define NET_NO_LISTENER UINT16_MAX
#define NET_ETH_HLEN ((uint32_t)sizeof(struct rte_ether_hdr))
#define NET_IP_HLEN ((uint32_t)sizeof(struct rte_ipv4_hdr))
#define NET_TCP_HLEN ((uint32_t)sizeof(struct rte_tcp_hdr))
#define NET_TCP_MAX_OPTS 40
/* Headroom for Ethernet + IPv4 + TCP with the largest option block. */
#define NET_HDRS_MAX (NET_ETH_HLEN + NET_IP_HLEN + NET_TCP_HLEN + NET_TCP_MAX_OPTS)

/* Without temporaries (nested RTE_MIN shadows its own locals); arguments
 * must be free of side effects. */
#define NET_MIN(a, b) ((a) < (b) ? (a) : (b))
#define NET_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Sequence arithmetic modulo 2^32 (RFC 9293 section 3.4). */
#define SEQ_LT(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)
#define SEQ_GT(a, b) SEQ_LT(b, a)
#define SEQ_GEQ(a, b) SEQ_LEQ(b, a)

/* ---- ARP ---- */

enum net_arp_state {
	NET_ARP_FREE = 0,
	NET_ARP_INCOMPLETE,	/* request sent, no reply yet */
	NET_ARP_RESOLVED,
};

struct net_arp_entry {
	uint32_t ip;			/* network order; key */
	uint8_t state;			/* enum net_arp_state */
	struct rte_ether_addr mac;
	uint64_t expires_us;		/* RESOLVED: entry stale after this */
	uint64_t last_req_us;		/* last request we sent for it */
	struct rte_mbuf *held;		/* one frame waiting for resolution, or NULL */
};

/* ---- TCP ---- */

/* Connection flags. */
#define NET_TCPF_TS_OK		0x0001	/* timestamps negotiated (RFC 7323 section 3) */
#define NET_TCPF_WS_OK		0x0002	/* window scaling negotiated (RFC 7323 section 2) */
#define NET_TCPF_SACK_OK	0x0004	/* SACK-permitted exchanged (RFC 2018) */
#define NET_TCPF_ACK_NOW	0x0008	/* send an ACK at the next output */
#define NET_TCPF_FIN_QUEUED	0x0010	/* user closed: FIN goes after the send queue */
#define NET_TCPF_FIN_SENT	0x0020	/* FIN has been sent at least once */
#define NET_TCPF_IN_RECOVERY	0x0040	/* NewReno fast recovery (RFC 6582) */
#define NET_TCPF_PENDING	0x0080	/* on the stack's pending-output list */
#define NET_TCPF_RTT_TIMING	0x0100	/* rtt_seq is being timed (Karn) */
#define NET_TCPF_USER_GONE	0x0200	/* closed callback done; no more callbacks */
#define NET_TCPF_REAP		0x0400	/* free at the end of the burst */
#define NET_TCPF_RST_PENDING	0x0800	/* abort: send RST at next output */
#define NET_TCPF_PASSIVE	0x1000	/* created from a listener */
#define NET_TCPF_RCV_FIN	0x2000	/* peer FIN received, in or out of order */
#define NET_TCPF_DELACK		0x4000	/* one in-order segment not acked yet */
#define NET_TCPF_WND_UPDATE	0x8000	/* user freed window: maybe advertise it */
#define NET_TCPF_SQ_TAIL_OURS	0x10000	/* sq_tail is our pool's direct mbuf: may append */
#define NET_TCPF_PERSIST	0x20000	/* rtx_deadline is the persist timer (RFC 9293 3.8.6.1) */
#define NET_TCPF_TIMER_LIST	0x40000	/* on the stack's timer list */
#define NET_TCPF_USER		0x80000	/* the user has the handle (connected or accepted) */
#define NET_TCPF_SYNCOOKIE	0x100000 /* template of a cookie SYN-ACK (no table entry) */
#define NET_TCPF_TLP_ARMED	0x200000 /* rtx_deadline is a tail loss probe timeout */
#define NET_TCPF_TLP_SENT	0x400000 /* a probe is out, not yet acknowledged */
#define NET_TCPF_TX_WAIT	0x800000 /* on st->tx_wait_head: output stopped, device full */
#define NET_TCPF_REO_ARMED	0x1000000 /* rtx_deadline is RACK's reordering timer */

/* One out-of-order segment (whole mbuf chain, headers stripped). */
struct net_tcp_ooo {
	uint32_t seq;
	uint32_t len;
	struct rte_mbuf *m;
};

/*
 * One connection. Hot fields (lookup and per-segment) first. Sequence
 * variables are RFC 9293 section 3.3.1 names. Times are microseconds of the
 * caller's clock; a deadline of 0 means the timer is off.
 */
struct net_tcp_conn {
	/* lookup: 4-tuple, network order */
	uint32_t raddr;
	uint32_t laddr;
	uint16_t rport;
	uint16_t lport;
	uint32_t hash_next;		/* next index in the hash chain / free list */
	uint8_t state;			/* enum net_tcp_state */
	uint8_t snd_wscale;		/* peer's shift, applied to windows it sends */
	uint8_t rcv_wscale;		/* our shift, applied to windows we send */
	uint8_t dupacks;		/* consecutive duplicate ACKs (RFC 5681 section 2) */
	uint32_t flags;			/* NET_TCPF_* */

	/* send sequence space */
	uint32_t snd_una;		/* oldest unacknowledged */
	uint32_t snd_nxt;		/* next to send (rewinds on RTO) */
	uint32_t snd_max;		/* highest ever sent + 1 */
	uint32_t snd_wnd;		/* bytes, scaled */
	uint32_t snd_wl1, snd_wl2;	/* seq / ack of the last window update */
	uint32_t max_snd_wnd;		/* largest window the peer offered (RFC 5961 5.2) */
	uint32_t iss;
	uint32_t sq_seq;		/* sequence number of the first byte in sq */
	uint32_t sq_bytes;		/* bytes in sq (unacked + unsent) */
	uint16_t mss;			/* effective send MSS: payload per segment, options excluded */
	uint16_t peer_mss;		/* MSS option received (or 536) */

	/* receive sequence space */
	uint32_t rcv_nxt;
	uint32_t rcv_adv;		/* right edge of the window we advertised */
	uint32_t irs;
	uint32_t rcv_held;		/* bytes given to the user, not yet net_tcp_recved */
	uint32_t rcv_fin_seq;		/* seq of the peer's FIN when NET_TCPF_RCV_FIN */
	uint32_t unacked_segs;		/* in-order segments since our last ACK */

	/* RFC 7323 */
	uint32_t ts_recent;		/* TS.Recent */
	uint32_t ts_offset;		/* added to our clock in TSval */
	uint32_t ts_recent_s;		/* clock second when ts_recent was set (24-day rule) */
	uint32_t last_ack_sent;

	/* congestion control (RFC 5681, RFC 6582) */
	uint32_t cwnd;			/* bytes */
	uint32_t ssthresh;		/* bytes */
	uint32_t recover;		/* RFC 6582 "recover" */
	uint32_t bytes_acked;		/* congestion avoidance accumulator */

	/* RTT (RFC 6298), microseconds */
	uint32_t srtt_us;
	uint32_t rttvar_us;
	uint32_t rto_us;
	uint32_t rtt_seq;		/* segment timed when NET_TCPF_RTT_TIMING */
	uint64_t rtt_start_us;
	uint8_t backoff;		/* RTO doublings in a row */
	uint8_t retries;		/* RTO expiries in a row */
	uint8_t persist_backoff;
	uint8_t ooo_segs;		/* mbufs in ooo */

	/* timers: absolute deadlines, 0 = off */
	uint64_t rtx_deadline;		/* retransmission or SYN; also persist */
	uint64_t delack_deadline;
	uint64_t tw_deadline;		/* TIME-WAIT or FIN-WAIT-2 expiry; keepalive in
					 * ESTABLISHED and CLOSE-WAIT */

	/* Send queue: one chain of data segments linked through m->next (the
	 * head's pkt_len and nb_segs are not maintained). Segments sent are
	 * referenced by indirect mbufs (rte_pktmbuf_attach), never copied. */
	struct rte_mbuf *sq_head;
	struct rte_mbuf *sq_tail;
	/* Out-of-order segments: ooo_segs entries of st->ooo, sorted by seq,
	 * disjoint, all beyond rcv_nxt. */
	struct net_tcp_ooo *ooo;

	/* user */
	const struct net_tcp_ops *ops;
	void *arg;
	uint16_t listener;		/* index of the listener, NET_NO_LISTENER when active */
	uint32_t pending_next;		/* pending-output list */
	uint32_t timer_next;		/* list of connections with timers */
	uint32_t timer_prev;
	int16_t close_status;		/* status for the closed callback */
	struct net_stack *st;		/* owner */
} __rte_cache_aligned;

/* Lookup and sequence space in the first lines; at most four lines in all. */
static_assert(sizeof(struct net_tcp_conn) <= 4 * RTE_CACHE_LINE_SIZE,
	"net_tcp_conn grew past four cache lines");

/*
 * RACK transmission log (net_tcp_rack.c): what was sent when. Sorted by
 * sequence, contiguous ([xl[i].start, xl[i].end) then xl[i+1] from
 * xl[i].end), ending at the end of the data sent; each entry is a range
 * whose latest transmission was at one time t. Segments sent in one burst
 * (one now_us) share an entry. Bytes below xl[0].start and above SND.UNA
 * (entries merged away when the log was full, or sent before it started)
 * are "untracked": RFC 6675's DupThresh rule decides for them.
 */
#define NET_TCP_XL_MAX 32
#define NET_XL_RTX	0x1		/* the latest transmission was a retransmission */
#define NET_XL_LOST	0x2		/* RACK deemed the latest transmission lost */
struct net_tcp_xl {
	uint32_t start, end;
	uint32_t t;			/* low 32 bits of the microsecond clock at sending */
	uint32_t flags;			/* NET_XL_* */
};

/* Per-connection side data kept out of struct net_tcp_conn (which must stay
 * within four cache lines), in st->sb at the connection's index: the
 * sender's SACK scoreboard (net_tcp_sack.c), the send-queue cursor, RACK's
 * state and transmission log and PRR's counters (net_tcp_rack.c). */
#define NET_TCP_SB_MAX 16
struct net_tcp_sb {
	/* Send-queue cursor: an mbuf of the queue and the sequence number of
	 * its first byte, where the last segment was built, so building the
	 * next one does not walk the queue from its head. Valid while
	 * sq_cur_seq is not below sq_seq (the mbuf is still queued). */
	struct rte_mbuf *sq_cur;
	uint32_t sq_cur_seq;
	uint32_t high_rxt;		/* RFC 6675 HighRxt: after the highest byte resent */
	/* Lost retransmission of the first hole: SND.MAX when SND.UNA's
	 * segment was last resent (or when it became the first hole after a
	 * resend); SACK of data beyond it, with SND.UNA unmoved, means the
	 * resend was lost too. Valid while rxt_mark_on. */
	uint32_t rxt_mark;
	bool rxt_mark_on;
	/* Receive side: a sequence number of the most recently queued
	 * out-of-order segment; its block goes first in our SACK option
	 * (RFC 2018 section 4). */
	uint32_t ooo_last_seq;
	uint32_t tx_wait_next;		/* list of connections waiting for the device */
	uint32_t sacked;		/* bytes in blk */
	uint32_t n;			/* ranges in blk */
	struct {
		uint32_t start, end;	/* [start, end), sorted, disjoint, not adjacent */
	} blk[NET_TCP_SB_MAX];
	/* RACK (RFC 8985 section 6.1): the most recently sent segment
	 * delivered (its time and end), the RTT measured on it, the highest
	 * end delivered (FACK), the smallest RTT seen (not windowed). */
	uint32_t rack_xmit_t;
	uint32_t rack_end;
	uint32_t rack_rtt;
	uint32_t rack_fack;
	uint32_t min_rtt;		/* microseconds, 0 = no sample yet */
	bool rack_valid;		/* something delivered: the fields above are set */
	bool rack_reord;		/* reordering seen (RACK.reordering_seen) */
	/* PRR (RFC 6937 section 3): bytes delivered and sent in this recovery,
	 * the flight when it began. */
	uint32_t prr_delivered;
	uint32_t prr_out;
	uint32_t recover_fs;
	uint32_t nxl;			/* entries in xl */
	uint8_t tlp_n;			/* probes since SND.UNA last moved */
	struct net_tcp_xl xl[NET_TCP_XL_MAX];
};

struct net_tcp_listener {
	uint16_t port;			/* network order; 0 = free slot */
	uint32_t backlog;		/* max SYN-RECEIVED */
	uint32_t syn_rcvd;		/* current SYN-RECEIVED count */
	const struct net_tcp_ops *ops;
	void *arg;
};

struct net_stack {
	struct net_config cfg;
	uint8_t rss_key[40];
	uint64_t now_us;
	struct net_stats stats;
	uint16_t ip_id;
	/* net_tcp_send: free mbufs counted at pool_avail_us, less those taken since */
	uint32_t pool_avail;
	uint64_t pool_avail_us;

	/* output batch */
	uint16_t tx_n;
	struct rte_mbuf *tx[NET_TX_BATCH];

	/* ARP cache: open addressing, linear probing */
	struct net_arp_entry *arp;
	uint32_t arp_mask;
	uint64_t arp_next_scan_us;

	/* TCP */
	struct net_tcp_conn *conns;	/* cfg.max_conns entries */
	uint32_t *hash;			/* bucket heads, hash_mask + 1 entries */
	uint32_t hash_mask;
	uint32_t free_head;		/* free list through hash_next */
	uint32_t nconns;
	uint32_t pending_head;		/* connections with queued output */
	uint32_t tx_wait_head;		/* connections whose output waits for tx room */
	uint32_t timer_head;		/* connections with an armed timer */
	struct net_tcp_listener *listeners;
	struct net_tcp_ooo *ooo;	/* max_conns * ooo_max_segs slots */
	struct net_tcp_sb *sb;		/* max_conns SACK scoreboards */
	uint16_t next_port;		/* ephemeral port cursor (host order) */
	uint64_t next_timer_us;		/* earliest TCP deadline (lower bound), 0 = none */
	uint64_t challenge_ack_sec;	/* second of the current challenge-ACK budget */
	uint64_t syncookie_sec;		/* second of the current SYN cookie budget */
	uint32_t syncookies;		/* cookie SYN-ACKs sent in that second */
	uint32_t challenge_acks;	/* sent in that second */
	uint32_t tcp_rcv_wscale;	/* shift that makes rcvbuf fit in 16 bits */
	uint64_t isn_key[2];
};

/* net_stack.c */
void net_tx_enqueue(struct net_stack *st, struct rte_mbuf *m);
/* Hand the batch to tx_fn; frames it does not take stay for the next
 * flush (TCP stops sending data meanwhile: net_tcp_tx_room). */
void net_tx_flush(struct net_stack *st);
/* net_tcp_output.c: false (and the connection put on the tx wait list)
 * when the output batch is full and the device takes nothing. */
bool net_tcp_tx_room(struct net_stack *st, struct net_tcp_conn *c);
uint16_t net_ipv4_cksum_mbuf(const struct rte_mbuf *m, uint32_t l4_off, uint32_t l4_len,
	const struct rte_ipv4_hdr *ip);
/* rte_raw_cksum_mbuf without its odd-offset bug (0, or -1 for a bad range). */
int net_raw_cksum_mbuf(const struct rte_mbuf *m, uint32_t off, uint32_t len, uint16_t *cksum);

/* net_arp.c */
int net_arp_init(struct net_stack *st);
void net_arp_fini(struct net_stack *st);
void net_arp_input(struct net_stack *st, struct rte_mbuf *m);
void net_arp_send_gratuitous(struct net_stack *st);
void net_arp_output(struct net_stack *st, uint32_t nexthop, struct rte_mbuf *m);
void net_arp_timers(struct net_stack *st);

/* net_ipv4.c */
void net_ipv4_input(struct net_stack *st, struct rte_mbuf *m);
void net_ipv4_fill(struct net_stack *st, struct rte_ipv4_hdr *ip, uint32_t dst, uint8_t proto,
	uint32_t total_len);
void net_mbuf_trim_to(struct rte_mbuf *m, uint32_t keep);
void net_ipv4_output(struct net_stack *st, struct rte_mbuf *m, uint32_t dst);

/* net_tcp.c */
int net_tcp_init(struct net_stack *st);
void net_tcp_fini(struct net_stack *st);
void net_tcp_input(struct net_stack *st, struct rte_mbuf *m, struct rte_ipv4_hdr *ip,
	uint32_t l4_off, uint32_t l4_len);
void net_tcp_poll(struct net_stack *st);

/* net_tcp.c: shared between the TCP files */
uint32_t net_tcp_conn_index(const struct net_stack *st, const struct net_tcp_conn *c);
struct net_tcp_conn *net_tcp_conn_lookup(struct net_stack *st, uint32_t raddr, uint32_t laddr,
	uint16_t rport, uint16_t lport);
struct net_tcp_conn *net_tcp_conn_new(struct net_stack *st, uint32_t raddr, uint16_t rport,
	uint16_t lport);
/* A free table entry, ending the TIME-WAIT nearest its end when none is: true if one is. */
bool net_tcp_table_room(struct net_stack *st);
void net_tcp_pending(struct net_stack *st, struct net_tcp_conn *c);
void net_tcp_arm(struct net_stack *st, uint64_t *deadline, uint64_t at);
void net_tcp_set_state(struct net_stack *st, struct net_tcp_conn *c, enum net_tcp_state s);
void net_tcp_finish(struct net_stack *st, struct net_tcp_conn *c, int status);
uint32_t net_tcp_isn(struct net_stack *st, uint32_t raddr, uint16_t rport, uint16_t lport);
uint32_t net_tcp_ts_offset(const struct net_stack *st, uint32_t raddr, uint16_t rport,
	uint16_t lport);
/* SYN cookies (net_tcp_input.c): the cookie ISS for a SYN, and the TSval of a
 * cookie SYN-ACK (options of the connection in its low 6 bits). */
uint32_t net_tcp_cookie_tsval(const struct net_tcp_conn *c, uint32_t ts_now);
uint16_t net_tcp_our_mss(const struct net_stack *st);
void net_tcp_sq_drop(struct net_tcp_conn *c, uint32_t bytes);
void net_tcp_keepalive_arm(struct net_stack *st, struct net_tcp_conn *c);

/* net_tcp_sack.c: sender scoreboard and RFC 6675 decisions */
struct net_tcp_sb *net_tcp_sb(const struct net_stack *st, const struct net_tcp_conn *c);
void net_tcp_sack_reset(struct net_stack *st, struct net_tcp_conn *c);
/* Record SACK blocks ([left, right) pairs, host order) of an ACK whose
 * cumulative ACK is ack; returns the bytes newly SACKed. */
uint32_t net_tcp_sack_update(struct net_stack *st, struct net_tcp_conn *c, uint32_t ack,
	const uint32_t (*blk)[2], uint32_t nblk);
/* Drop what SND.UNA now covers. */
void net_tcp_sack_trim(struct net_stack *st, struct net_tcp_conn *c);
bool net_tcp_sack_is_lost(const struct net_stack *st, const struct net_tcp_conn *c,
	uint32_t seq);
uint32_t net_tcp_sack_pipe(const struct net_stack *st, const struct net_tcp_conn *c);
/* NextSeg rule 1 (lost_only) or rule 3: 0 and the segment, or -1. */
int net_tcp_sack_next_rtx(const struct net_stack *st, const struct net_tcp_conn *c,
	bool lost_only, uint32_t *seq, uint32_t *len);
/* First unSACKed byte at or after seq; *limit = start of the next range. */
uint32_t net_tcp_sack_skip(const struct net_stack *st, const struct net_tcp_conn *c,
	uint32_t seq, uint32_t *limit);
/* SACKed bytes below seq. */
uint32_t net_tcp_sack_below(const struct net_stack *st, const struct net_tcp_conn *c,
	uint32_t seq);

/* net_tcp_rack.c: RACK-TLP loss detection (RFC 8985) and PRR (RFC 6937) */
/* A data segment [seq, seq + len) is being sent (new or again). */
void net_tcp_rack_sent(struct net_stack *st, struct net_tcp_conn *c, uint32_t seq, uint32_t len);
/* Drop the log below SND.UNA. */
void net_tcp_rack_trim(struct net_stack *st, struct net_tcp_conn *c);
/* Before the scoreboard takes the ACK: record what it newly delivers
 * (cumulatively up to ack, or by its SACK blocks). Returns an RTT sample in
 * microseconds from the newly acknowledged bytes never sent twice (0: none). */
uint32_t net_tcp_rack_deliver(struct net_stack *st, struct net_tcp_conn *c, uint32_t ack,
	const uint32_t (*blk)[2], uint32_t nblk, bool ts_ok, uint32_t tsecr);
/* After an ACK: mark lost what RACK deems lost (and arm the reordering
 * timer for the rest), enter recovery when something is lost, and set the
 * window by PRR while in recovery. delivered: bytes this ACK delivered. */
void net_tcp_rack_after_ack(struct net_stack *st, struct net_tcp_conn *c, uint32_t delivered);
/* The reordering timer fired. */
void net_tcp_rack_reo_fire(struct net_stack *st, struct net_tcp_conn *c);
/* The log entry for seq: its flags with NET_XL_TRACKED, and the end of the
 * entry; or 0 (untracked) and the start of the next entry (at most hi). */
#define NET_XL_TRACKED	0x100
uint32_t net_tcp_rack_class(const struct net_stack *st, const struct net_tcp_conn *c,
	uint32_t seq, uint32_t hi, uint32_t *flags);
/* Enter SACK loss recovery (RFC 6675 section 5 (4), PRR's start). */
void net_tcp_sack_enter_recovery(struct net_stack *st, struct net_tcp_conn *c);
/* RFC 6298 with one RTT sample (microseconds); also RACK's min RTT. */
void net_tcp_rtt_sample(struct net_stack *st, struct net_tcp_conn *c, uint32_t r);

/* net_tcp_output.c */
void net_tcp_output(struct net_stack *st, struct net_tcp_conn *c);
int net_tcp_xmit(struct net_stack *st, struct net_tcp_conn *c, uint32_t seq, uint32_t len,
	uint8_t flags);
void net_tcp_send_ack(struct net_stack *st, struct net_tcp_conn *c);
void net_tcp_send_rst_reply(struct net_stack *st, const struct rte_ipv4_hdr *ip,
	const struct rte_tcp_hdr *th, uint32_t seglen);
uint32_t net_tcp_rcv_window(const struct net_stack *st, const struct net_tcp_conn *c);
void net_tcp_retransmit_head(struct net_stack *st, struct net_tcp_conn *c);
/* (Re)start the retransmission timer: the RTO, or the tail loss probe
 * timeout (RFC 8985 section 7) when one applies. */
void net_tcp_rtx_arm(struct net_stack *st, struct net_tcp_conn *c);
/* The probe timeout fired: send the probe, then arm the RTO. */
void net_tcp_tlp_fire(struct net_stack *st, struct net_tcp_conn *c);
/* Resend the unSACKed segment at seq (at most one MSS, not into a SACKed
 * range) and move HighRxt past it; returns the bytes sent. */
uint32_t net_tcp_sack_retransmit(struct net_stack *st, struct net_tcp_conn *c, uint32_t seq);
static inline uint32_t
net_tcp_ts_now(const struct net_stack *st, const struct net_tcp_conn *c)
{
	/* RFC 7323 section 5.4: a 1 ms clock with a per-connection offset. */
	return (uint32_t)(st->now_us / 1000) + c->ts_offset;
}
static inline uint32_t
net_tcp_data_end(const struct net_tcp_conn *c)
{
	return c->sq_seq + c->sq_bytes;
}

#endif /* SLP_NET_INTERNAL_H */
