/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_metrics: the dataplane's counters in shared memory, written without
 * locks on the hot path and read by the control process (control/ctl_metrics)
 * for the Prometheus exposition.
 *
 * Segment: one file (default /dev/shm/slipstream-metrics-<node.id>, config
 * key metrics.shm.path) holding a header and one block per dataplane lcore.
 * Each block has exactly one writer, its lcore; readers add the blocks up.
 * The file is written under a temporary name and renamed into place, so a
 * reader sees either no file or a complete header; a restarted dataplane
 * replaces the file (a new inode and start time), which a reader notices.
 *
 * Layout (all integers little-endian host order, offsets from the file start):
 *
 *   offset  size                      what
 *   0       DP_METRICS_HEADER_BYTES   struct dp_metrics_header
 *   4096    block_size * n_blocks     struct dp_metrics_block, one per lcore
 *
 * Consistency: every histogram and every topic-partition entry is a small
 * seqlock. Its writer makes seq odd, updates the counters with relaxed
 * 64-bit stores, makes seq even again (release); a reader copies the entry
 * between two reads of seq and retries when they differ or are odd. So a
 * histogram's count always equals the sum of its buckets and a partition's
 * bytes and records belong to the same batches, and the entries are small
 * enough (a few cache lines) that a reader gets through even while the
 * writer updates millions of times a second. The writer never waits. The
 * other counters are single monotonic words read as they are.
 *
 * Topic-partitions: each block has a table of DP_METRICS_MAX_TPS entries
 * that its writer fills in on the first event of a partition (name first,
 * then n_tps raised with release), so readers only look at published ones.
 * Partitions beyond the table are counted in tp_overflow and not exported.
 *
 * Writers (dataplane): dp_metrics_create() at start-up, then the inline
 * dp_metrics_*() calls below on any reactor lcore; they are no-ops on a
 * thread without a block or when metrics are off. Readers (any process):
 * dp_metrics_reader_open() and dp_metrics_snapshot(), which need neither
 * DPDK nor the dataplane running (dp_metrics_read.c, linked by control/).
 */
#ifndef SLP_DP_METRICS_H
#define SLP_DP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DP_METRICS_MAGIC 0x3152544d504c53ULL /* "SLPMTR1" */
#define DP_METRICS_VERSION 11 /* 2: Fetch record bytes by transport; 3: net stack counters;
			      * 4: link state, link-down drops; 5: errors by API;
			      * 6: request hop and storage writer counters;
			      * 7: parked Fetch wake-up histogram; 8: buckets of 5, 10, 25 us;
			      * 9: long reactor iterations; 10: tail-cache reads;
			      * 11: the lcore thread's CPU time */
#define DP_METRICS_HEADER_BYTES 4096
/** API keys with their own counters (every key Kafka has defined so far fits). */
#define DP_METRICS_APIS 96
/** Latency histogram buckets; the last one is +Inf. */
#define DP_METRICS_LAT_BUCKETS 23
/** Thresholds (us) of the long reactor iteration counters: dp_reactor_long_us. */
#define DP_METRICS_LONG_N 3
#define DP_METRICS_LONG_US {100, 1000, 10000}
/** Topic-partitions each block tracks. */
#define DP_METRICS_MAX_TPS 1024
/** Longest topic name Kafka allows (249) plus NUL, rounded up. */
#define DP_METRICS_TOPIC_BYTES 256
/** Transports with their own Fetch record counters (enum dp_metrics_transport). */
#define DP_METRICS_TRANSPORTS 2

enum dp_metrics_transport {
	DP_METRICS_TR_KERNEL = 0, /* kernel sockets (net_kernel) */
	DP_METRICS_TR_DPDK = 1,   /* the DPDK TCP stack (net_dpdk) */
};

/**
 * Error codes with their own counter per API: Kafka's -1 (UNKNOWN_SERVER_ERROR)
 * to 126, at index code + 1 (every code Kafka has defined so far fits).
 */
#define DP_METRICS_ERRORS 128

/** Blocks (lcores) at most. */
#define DP_METRICS_MAX_BLOCKS 128

/**
 * Counters of the TCP/IP stack of a DPDK net worker and of its transport
 * (net_dpdk), indexes of dp_metrics_net.v[]. All are monotonic counters but
 * the DP_NET_CONN_* gauges. Rendered as slipstream_net_* and slipstream_dpdk_*
 * by ctl_metrics; the meaning of each is in docs/net-stack.md ("Counters").
 */
enum dp_metrics_net_counter {
	DP_NET_RX_PACKETS,
	DP_NET_RX_BYTES,
	DP_NET_TX_PACKETS,
	DP_NET_TX_BYTES,
	/* received frames dropped, by reason */
	DP_NET_DROP_ETH,           /* truncated, VLAN-tagged or not our MAC */
	DP_NET_DROP_ETHERTYPE,     /* neither ARP nor IPv4 */
	DP_NET_DROP_ARP_MALFORMED,
	DP_NET_DROP_IP_MALFORMED,  /* version, IHL, lengths, TTL, source */
	DP_NET_DROP_IP_CHECKSUM,
	DP_NET_DROP_IP_NOT_FOR_US,
	DP_NET_DROP_IP_FRAGMENT,
	DP_NET_DROP_IP_PROTOCOL,   /* neither ICMP nor TCP */
	DP_NET_DROP_HEADER_SPLIT,  /* headers not in the first segment */
	DP_NET_DROP_ICMP_MALFORMED,
	DP_NET_DROP_TCP_MALFORMED, /* header length, ports */
	DP_NET_DROP_TCP_CHECKSUM,
	DP_NET_DROP_TCP_NO_CONN,   /* no connection (answered with RST) */
	DP_NET_DROP_TCP_WINDOW,    /* outside the receive window */
	DP_NET_DROP_TCP_PAWS,
	DP_NET_DROP_TCP_SYN,       /* SYN backlog, table or cookie budget full */
	DP_NET_DROP_TCP_OOO,       /* out-of-order queue full */
	/* frames not sent, by reason */
	DP_NET_TX_DROP_FULL,       /* device and output batch full */
	DP_NET_TX_DROP_NO_MBUF,
	DP_NET_TX_DROP_ARP,        /* held for an ARP reply that never came */
	/* TCP retransmissions and recovery */
	DP_NET_TCP_RETRANS_RTO,    /* segments resent after a timeout */
	DP_NET_TCP_RETRANS_FAST,   /* NewReno fast retransmits */
	DP_NET_TCP_RETRANS_SACK,   /* segments resent from the SACK scoreboard */
	DP_NET_TCP_RETRANS_LOST,   /* resends found lost and resent again */
	DP_NET_TCP_TLP,            /* tail loss probes */
	DP_NET_TCP_RTO,            /* retransmission timer expiries */
	DP_NET_TCP_SACK_RECOVERIES,
	DP_NET_TCP_EARLY_RETRANS,
	DP_NET_TCP_ZERO_WINDOW_PROBES,
	DP_NET_TCP_KEEPALIVE_PROBES,
	DP_NET_TCP_CHALLENGE_ACKS,
	DP_NET_TCP_RST_RX,
	DP_NET_TCP_RST_TX,
	DP_NET_TCP_OOO_QUEUED,
	/* SYN cookies */
	DP_NET_TCP_COOKIES_SENT,
	DP_NET_TCP_COOKIES_OK,
	DP_NET_TCP_COOKIES_FAILED,
	DP_NET_TCP_COOKIES_LIMITED,
	/* connections */
	DP_NET_TCP_OPENS_ACTIVE,
	DP_NET_TCP_OPENS_PASSIVE,
	DP_NET_CONN_SYN,           /* gauge: SYN-SENT, SYN-RECEIVED */
	DP_NET_CONN_ESTABLISHED,   /* gauge */
	DP_NET_CONN_CLOSING,       /* gauge: FIN-WAIT-1/2, CLOSE-WAIT, CLOSING, LAST-ACK */
	DP_NET_CONN_TIME_WAIT,     /* gauge */
	/* the transport under the Kafka layer (net_dpdk_stats) */
	DP_NET_DPDK_FRAMES_INPLACE, /* request frames read in place in an mbuf */
	DP_NET_DPDK_FRAMES_COPIED,  /* request frames that spanned mbufs, copied */
	DP_NET_DPDK_TX_EXTBUF,      /* response bytes sent from their buffer */
	DP_NET_DPDK_TX_COPIED,      /* response bytes copied into the send queue */
	DP_NET_TX_DROP_LINK_DOWN,   /* frames dropped because the port's link was down */
	DP_NET_DPDK_LINK_UP,        /* gauge: 1 while the port's link is up (per port) */
	DP_NET_TCP_RACK_LOST,       /* transmission-log ranges RACK deemed lost (RFC 8985) */
	DP_NET_TCP_RACK_REO_TIMEOUTS, /* RACK reordering timer expiries */
	DP_NET_TSO_FRAMES,          /* TSO frames the port took */
	DP_NET_TSO_SEGMENTS,        /* segments those frames made on the wire */
	DP_NET_TCP_TIME_WAIT_REUSED, /* TIME-WAIT entries ended early for a new connection */
	DP_NET_COUNTERS
};

/** Slots of dp_metrics_net.v (room for counters added later). */
#define DP_METRICS_NET_MAX 64
_Static_assert(DP_NET_COUNTERS <= DP_METRICS_NET_MAX, "net counters fit");

/**
 * The request hop's counters on a block's lcore (dp_hop_stats of a net worker
 * lcore whose requests hop, dp_hop_broker_stats of the broker's lcore), indexes
 * of dp_metrics_hop.v[]. Copied there by dp_hop's poller every 100 ms. Gauges:
 * DP_HOP_M_PENDING, DP_HOP_M_QUEUED, DP_HOP_M_RESP_FREE, DP_HOP_M_RTT_NS_MAX.
 */
enum dp_metrics_hop_counter {
	/* worker side (DP_METRICS_HOP_WORKER) */
	DP_HOP_M_HOPPED,          /* requests sent to the broker lcore */
	DP_HOP_M_LOCAL,           /* requests served without a hop (ApiVersions) */
	DP_HOP_M_DEFERRED_DESC,   /* put off: no free descriptor */
	DP_HOP_M_DEFERRED_BUF,    /* put off: no free frame buffer */
	DP_HOP_M_DEFERRED_RING,   /* put off: the ring to the broker was full */
	DP_HOP_M_CLOSED,          /* the broker asked to close the connection */
	DP_HOP_M_LATE,            /* replies to connections closed meanwhile */
	DP_HOP_M_RTT_NS_SUM,      /* hop round trips (request out, reply back), ns summed */
	DP_HOP_M_RTT_NS_MAX,      /* the longest, ns */
	DP_HOP_M_PENDING,         /* descriptors not home now */
	DP_HOP_M_OUTBOX_WAITS,    /* buffer returns that met a full ring */
	/* broker side (DP_METRICS_HOP_BROKER) */
	DP_HOP_M_SERVED,          /* hopped requests the handler took */
	DP_HOP_M_BROKER_DEFERRED, /* the handler said -EAGAIN (request kept queued) */
	DP_HOP_M_QUEUED,          /* waiting in the broker's queue now */
	DP_HOP_M_BROKER_OUTBOX_WAITS, /* replies and returns that met a full ring */
	DP_HOP_M_RESP_FREE,       /* broker-side response buffers free now */
	DP_HOP_M_BROKER_LATE,     /* replies whose proxied response had left */
	DP_HOP_M_COUNTERS
};

#define DP_METRICS_HOP_WORKER 0x1u /* dp_metrics_hop.sides: worker-side counters valid */
#define DP_METRICS_HOP_BROKER 0x2u /* broker-side counters valid */
#define DP_METRICS_HOP_MAX 32
_Static_assert(DP_HOP_M_COUNTERS <= DP_METRICS_HOP_MAX, "hop counters fit");

struct dp_metrics_hop {
	uint32_t sides;    /* DP_METRICS_HOP_*, published (release) after the first values */
	uint32_t reserved;
	uint64_t v[DP_METRICS_HOP_MAX]; /* enum dp_metrics_hop_counter */
};

/**
 * The storage writers' engines on a block's lcore, added up (stor_engine_stats:
 * the tail cache's chunk pool, open logs and files), indexes of
 * dp_metrics_storage.v[]. Copied there by the broker's poller every 100 ms. DP_STOR_M_STEALS,
 * _ACTIVE_STEALS, _FILE_REOPENS, _FILE_CLOSES, _SEGMENTS_RECYCLED, _SEGMENTS_ROLLED,
 * _FLUSHES, _FLUSH_NS, _WRITES and _MAPPED_WRITES are counters, the rest gauges.
 */
enum dp_metrics_storage_counter {
	DP_STOR_M_CHUNKS,         /* tail-cache chunks in the pool */
	DP_STOR_M_CHUNKS_FREE,    /* held by no log */
	DP_STOR_M_CHUNKS_RECLAIM, /* held as cache only: written, unreferenced, may be taken */
	DP_STOR_M_STEALS,         /* chunks taken from one log for another (LRU) */
	DP_STOR_M_ACTIVE_STEALS,  /* of them, a log's active chunk */
	DP_STOR_M_LOGS,           /* open partition logs */
	DP_STOR_M_OPEN_FILES,     /* segment files open now */
	DP_STOR_M_FILE_REOPENS,   /* segment files opened again after being closed for the limit */
	DP_STOR_M_FILE_CLOSES,    /* closed for the limit (storage.max.open.files) */
	DP_STOR_M_SEGMENTS_RECYCLED, /* new segments written into a spare file */
	DP_STOR_M_SEGMENTS_ROLLED,   /* rolls: a new active segment */
	DP_STOR_M_FLUSHES,           /* fdatasyncs completed */
	DP_STOR_M_FLUSH_NS,          /* their time, queue to completion */
	DP_STOR_M_WRITES,            /* segment writes issued */
	DP_STOR_M_MAPPED_WRITES,     /* of them, copies through a file mapping (inline) */
	DP_STOR_M_READS_CACHE,       /* reads served from the tail cache */
	DP_STOR_M_READS_FILE,        /* reads from a segment file */
	DP_STOR_M_LOGS_FAILED,       /* open logs failed by an I/O error */
	DP_STOR_M_COUNTERS
};

#define DP_METRICS_STORAGE_MAX 24
_Static_assert(DP_STOR_M_COUNTERS <= DP_METRICS_STORAGE_MAX, "storage counters fit");

struct dp_metrics_storage {
	uint32_t writers;  /* storage writers on this lcore, published (release); 0: none */
	uint32_t reserved;
	uint64_t v[DP_METRICS_STORAGE_MAX]; /* enum dp_metrics_storage_counter */
};

/* The net worker (DPDK TCP stack) on a block's lcore, if any. */
struct dp_metrics_net {
	uint32_t worker;   /* net worker index + 1, published (release) after port; 0: none */
	uint32_t reserved;
	char port[32];     /* DPDK device name, NUL-terminated */
	uint64_t v[DP_METRICS_NET_MAX]; /* enum dp_metrics_net_counter */
};

/** Upper bounds (inclusive, microseconds) of the first DP_METRICS_LAT_BUCKETS - 1 buckets. */
extern const uint64_t dp_metrics_lat_bounds_us[DP_METRICS_LAT_BUCKETS - 1];

/* A latency histogram. buckets[] are per bucket (not cumulative). */
struct dp_metrics_hist {
	uint64_t seq;    /* seqlock: odd while the writer updates */
	uint64_t count;  /* events */
	uint64_t sum_ns; /* total latency, nanoseconds */
	uint64_t buckets[DP_METRICS_LAT_BUCKETS];
};

/* Traffic of one topic-partition on one lcore. */
struct dp_metrics_tp {
	char topic[DP_METRICS_TOPIC_BYTES]; /* NUL-terminated; written once before publishing */
	int32_t partition;
	uint32_t reserved;
	uint64_t seq;           /* seqlock over the counters below */
	uint64_t bytes_in;      /* record batch bytes appended by Produce */
	uint64_t records_in;    /* records appended */
	uint64_t bytes_out;     /* record batch bytes sent by Fetch */
	uint64_t records_out;   /* records sent (as counted in the batch headers) */
	int64_t log_end_offset; /* last seen by this lcore, -1 unknown (a gauge) */
};

/* One lcore's counters. Written by that lcore only. */
struct dp_metrics_block {
	uint32_t lcore; /* EAL lcore id */
	uint32_t reserved;
	uint64_t conn_accepted; /* client connections accepted */
	uint64_t conn_closed;   /* and closed (open = accepted - closed) */
	uint64_t busy_tsc;      /* reactor cycles with work (dp_reactor_stats) */
	uint64_t idle_tsc;      /* reactor cycles without */
	uint64_t iterations;
	/* iterations of at least 100 us, 1 ms, 10 ms (dp_reactor_stats.long_iters), their cycles */
	uint64_t long_iters[DP_METRICS_LONG_N];
	uint64_t long_tsc;
	uint64_t cpu_ns;        /* CPU time the lcore's thread ran since its reactor started
	                           (CLOCK_THREAD_CPUTIME_ID) */
	uint64_t tp_overflow;                 /* events of partitions that found the table full */
	uint64_t n_tps;                       /* published entries of tps[] (release/acquire) */
	/*
	 * Fetch record bytes sent, by transport: in place from the storage tail
	 * cache (written from or attached to the cache chunk, no copy by the
	 * broker), and from a buffer of the broker's (a disk read buffer, a copy
	 * into a response buffer, or into the TCP send queue).
	 */
	uint64_t fetch_rec_ref[DP_METRICS_TRANSPORTS];
	uint64_t fetch_rec_copied[DP_METRICS_TRANSPORTS];
	struct dp_metrics_net net; /* the DPDK net worker's stack on this lcore */
	struct dp_metrics_hop hop; /* the request hop's side(s) on this lcore */
	struct dp_metrics_storage storage; /* the storage writer on this lcore */
	struct dp_metrics_hist storage_write; /* append submitted -> durable/acked */
	/* parked Fetch: the append completion that woke it -> its response queued */
	struct dp_metrics_hist fetch_wakeup;
	struct dp_metrics_hist api[DP_METRICS_APIS]; /* request arrival -> response queued */
	/* ErrorCode fields written in responses, by API and code + 1 (kp_error_seen) */
	uint64_t api_errors[DP_METRICS_APIS][DP_METRICS_ERRORS];
	struct dp_metrics_tp tps[DP_METRICS_MAX_TPS];
} __attribute__((aligned(64)));

struct dp_metrics_header {
	uint64_t magic;       /* DP_METRICS_MAGIC, written last at creation */
	uint32_t version;     /* DP_METRICS_VERSION */
	uint32_t header_size; /* DP_METRICS_HEADER_BYTES */
	uint64_t block_size;  /* sizeof(struct dp_metrics_block) of the writer */
	uint32_t n_blocks;
	uint32_t reserved;
	int64_t node_id;
	uint64_t tsc_hz;        /* reactor cycles per second (busy/idle to seconds) */
	uint64_t start_unix_ms; /* when the dataplane created the segment */
	int64_t pid;            /* the dataplane's */
};

_Static_assert(sizeof(struct dp_metrics_header) <= DP_METRICS_HEADER_BYTES, "header fits");
_Static_assert(sizeof(struct dp_metrics_tp) == 312, "tp entry layout");

/* ---- writer (dataplane) ------------------------------------------------ */

/** The calling thread's block, or NULL (metrics off, or not a dataplane lcore). */
extern __thread struct dp_metrics_block *dp_metrics_tls;
/** Nanoseconds per TSC cycle, set by dp_metrics_create(). */
extern double dp_metrics_ns_per_tsc;

/**
 * Create the segment at @path for @n lcores (ids in @lcores) and bind each
 * lcore's block, which its reactor thread finds through dp_metrics_bind().
 * Start-up code, single-threaded.
 *
 * @param path   file to create (the directory must exist); replaced if present
 * @param tsc_hz cycles per second of the TSC the latencies are given in
 * @return 0; -EINVAL (n 0 or above DP_METRICS_MAX_BLOCKS, path too long);
 *   a negative errno from open/ftruncate/mmap/rename.
 */
int dp_metrics_create(const char *path, int64_t node_id, const unsigned int *lcores, unsigned int n,
                      uint64_t tsc_hz);

struct dp_config;

/**
 * The dataplane's start-up: create the segment at cfg->metrics_shm_path
 * (empty: /dev/shm/slipstream-metrics-<node.id>) for cfg's lcores with the
 * TSC rate, and register dp_metrics_reactor_poll on each lcore (every
 * 100 ms). After dp_reactors_init(), before dp_reactors_run(). Metrics are
 * not essential: a failure is logged and the dataplane runs without them.
 *
 * @return 0 or the negative errno of the failure (logged).
 */
int dp_metrics_start(const struct dp_config *cfg);

/** Unmap and remove the segment (at shutdown, after the reactors stopped). */
void dp_metrics_destroy(void);

/**
 * Make @lcore's block the calling thread's (reactor threads call this once,
 * tests call it by hand).
 *
 * @return 0, or -ENOENT when no segment exists or it has no block for @lcore
 *   (the thread's calls then count nothing).
 */
int dp_metrics_bind(unsigned int lcore);

/**
 * Poller: copy the calling lcore's reactor accounting (dp_reactor_stats) into
 * its block, binding the thread on the first call. Register it on every
 * lcore with a period (the busy ratio needs no more than a few per second).
 */
int dp_metrics_reactor_poll(void *arg);

/* Enter an update of the entry whose seqlock is *seq (the only writer). */
static inline void
dp_metrics_wbegin(uint64_t *seq)
{
	__atomic_store_n(seq, *seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

/* Leave it: readers may copy it again. */
static inline void
dp_metrics_wend(uint64_t *seq)
{
	__atomic_store_n(seq, *seq + 1, __ATOMIC_RELEASE);
}

/* x += n by the only writer, as one relaxed 64-bit store readers can load. */
static inline void
dp_metrics_add(uint64_t *x, uint64_t n)
{
	__atomic_store_n(x, *x + n, __ATOMIC_RELAXED);
}

static inline void
dp_metrics_hist_add(struct dp_metrics_hist *h, uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned int i = 0;

	while (i < DP_METRICS_LAT_BUCKETS - 1 && us > dp_metrics_lat_bounds_us[i])
		i++;
	dp_metrics_wbegin(&h->seq);
	dp_metrics_add(&h->count, 1);
	dp_metrics_add(&h->sum_ns, ns);
	dp_metrics_add(&h->buckets[i], 1);
	dp_metrics_wend(&h->seq);
}

static inline uint64_t
dp_metrics_tsc_to_ns(uint64_t cycles)
{
	return (uint64_t)((double)cycles * dp_metrics_ns_per_tsc);
}

/** A request of @api_key was answered @cycles (TSC) after it arrived. */
static inline void
dp_metrics_request(int16_t api_key, uint64_t cycles)
{
	struct dp_metrics_block *b = dp_metrics_tls;

	if (b == NULL || api_key < 0 || api_key >= DP_METRICS_APIS)
		return;
	dp_metrics_hist_add(&b->api[api_key], dp_metrics_tsc_to_ns(cycles));
}

/**
 * A response of @api_key carried error code @code (NONE included): the
 * kp_error_hook the dataplane installs (dp_metrics_start), called by the
 * generated encoders once per ErrorCode field.
 */
static inline void
dp_metrics_api_error(int16_t api_key, int16_t code)
{
	struct dp_metrics_block *b = dp_metrics_tls;

	if (b == NULL || api_key < 0 || api_key >= DP_METRICS_APIS || code < -1 ||
		code >= DP_METRICS_ERRORS - 1)
		return;
	dp_metrics_add(&b->api_errors[api_key][code + 1], 1);
}

/** A storage append took @cycles (TSC) from submission to completion. */
static inline void
dp_metrics_storage_write(uint64_t cycles)
{
	struct dp_metrics_block *b = dp_metrics_tls;

	if (b == NULL)
		return;
	dp_metrics_hist_add(&b->storage_write, dp_metrics_tsc_to_ns(cycles));
}

/**
 * A parked Fetch was answered @cycles (TSC) after the first append completion
 * that could have given it data (the wake-up half of the end-to-end path).
 */
static inline void
dp_metrics_fetch_wakeup(uint64_t cycles)
{
	struct dp_metrics_block *b = dp_metrics_tls;

	if (b == NULL)
		return;
	dp_metrics_hist_add(&b->fetch_wakeup, dp_metrics_tsc_to_ns(cycles));
}

/** A transport sent Fetch record bytes: @ref without a copy, @copied copied by the broker. */
static inline void
dp_metrics_fetch_records(enum dp_metrics_transport tr, uint64_t ref, uint64_t copied)
{
	struct dp_metrics_block *b = dp_metrics_tls;

	if (b == NULL || (unsigned int)tr >= DP_METRICS_TRANSPORTS || (ref | copied) == 0)
		return;
	if (ref != 0)
		dp_metrics_add(&b->fetch_rec_ref[tr], ref);
	if (copied != 0)
		dp_metrics_add(&b->fetch_rec_copied[tr], copied);
}

/**
 * Publish the counters of DPDK net worker @worker (port @port, borrowed) on
 * the calling lcore's block: @n values in enum dp_metrics_net_counter order
 * (borrowed). A no-op without a block. The worker's periodic poller calls it.
 */
void dp_metrics_net_publish(unsigned int worker, const char *port, const uint64_t *v, unsigned int n);

/**
 * Publish the request hop's counters of the calling lcore: @sides
 * (DP_METRICS_HOP_*) says which halves of @v are valid; @n values in enum
 * dp_metrics_hop_counter order (borrowed). A no-op without a block.
 */
void dp_metrics_hop_publish(uint32_t sides, const uint64_t *v, unsigned int n);

/**
 * Publish the counters of the @writers storage writers on the calling lcore
 * (their sums): @n values in enum dp_metrics_storage_counter order
 * (borrowed). A no-op without a block.
 */
void dp_metrics_storage_publish(unsigned int writers, const uint64_t *v, unsigned int n);

/** A client connection was accepted. */
static inline void
dp_metrics_conn_accepted(void)
{
	struct dp_metrics_block *b = dp_metrics_tls;

	if (b == NULL)
		return;
	dp_metrics_add(&b->conn_accepted, 1);
}

/** A client connection was closed. */
static inline void
dp_metrics_conn_closed(void)
{
	struct dp_metrics_block *b = dp_metrics_tls;

	if (b == NULL)
		return;
	dp_metrics_add(&b->conn_closed, 1);
}

/**
 * The calling lcore's entry for (@topic, @len bytes, @partition), added on
 * first use (topic borrowed, copied). NULL when metrics are off, the name is
 * too long or the table is full (counted in tp_overflow). Not inline: a
 * hash lookup in the writer's private index.
 */
struct dp_metrics_tp *dp_metrics_tp_get(const char *topic, size_t len, int32_t partition);

/**
 * Produce appended @records records in @bytes batch bytes to a partition;
 * @log_end_offset is its log end offset after the append (-1 unknown).
 */
static inline void
dp_metrics_produce(const char *topic, size_t len, int32_t partition, uint64_t bytes,
                   uint64_t records, int64_t log_end_offset)
{
	struct dp_metrics_block *b = dp_metrics_tls;
	struct dp_metrics_tp *tp;

	if (b == NULL || (tp = dp_metrics_tp_get(topic, len, partition)) == NULL)
		return;
	dp_metrics_wbegin(&tp->seq);
	dp_metrics_add(&tp->bytes_in, bytes);
	dp_metrics_add(&tp->records_in, records);
	if (log_end_offset >= 0)
		__atomic_store_n(&tp->log_end_offset, log_end_offset, __ATOMIC_RELAXED);
	dp_metrics_wend(&tp->seq);
}

/**
 * Fetch sent @records records in @bytes batch bytes of a partition whose
 * log end offset (high watermark) is @log_end_offset (-1 unknown).
 */
static inline void
dp_metrics_fetch(const char *topic, size_t len, int32_t partition, uint64_t bytes, uint64_t records,
                 int64_t log_end_offset)
{
	struct dp_metrics_block *b = dp_metrics_tls;
	struct dp_metrics_tp *tp;

	if (b == NULL || (tp = dp_metrics_tp_get(topic, len, partition)) == NULL)
		return;
	dp_metrics_wbegin(&tp->seq);
	dp_metrics_add(&tp->bytes_out, bytes);
	dp_metrics_add(&tp->records_out, records);
	if (log_end_offset >= 0)
		__atomic_store_n(&tp->log_end_offset, log_end_offset, __ATOMIC_RELAXED);
	dp_metrics_wend(&tp->seq);
}

/**
 * Count record batches (@records, @len bytes, borrowed; a partial last batch
 * counts its bytes but no records) as produced to (@in) or fetched from a
 * partition: the bytes, the records of the batch headers, and @log_end_offset
 * (-1 unknown). Not inline: walks the batch headers.
 */
void dp_metrics_batches(bool in, const char *topic, size_t tlen, int32_t partition,
                        const uint8_t *records, size_t len, int64_t log_end_offset);

/* ---- reader (any process) ---------------------------------------------- */

struct dp_metrics_reader {
	int fd;
	const uint8_t *map; /* read-only mapping */
	size_t map_len;
	char path[256];
	dev_t dev; /* identity of the mapped file, to notice a replacement */
	ino_t ino;
};

/* A consistent copy of every block (heap memory, owned by the snapshot). */
struct dp_metrics_snapshot {
	struct dp_metrics_header hdr;
	struct dp_metrics_block *blocks; /* hdr.n_blocks; tps beyond n_tps are not copied */
};

/**
 * Map the segment at @path read-only. Validates magic, version and sizes.
 *
 * @return 0; -ENOENT (no dataplane has created it); -EPROTO (not a segment
 *   of this layout version); another negative errno from open/mmap.
 */
int dp_metrics_reader_open(struct dp_metrics_reader *r, const char *path);

/** Unmap and close. */
void dp_metrics_reader_close(struct dp_metrics_reader *r);

/**
 * Copy every block into @out (allocated here; free with
 * dp_metrics_snapshot_free), each histogram and partition entry consistent
 * (see the file comment). When the file at the reader's path was replaced
 * (dataplane restarted) the reader remaps it first. May wait up to 100 ms
 * for an entry whose writer was preempted mid-update.
 *
 * @return 0; -ENOENT when the segment is gone; -EAGAIN when an entry stayed
 *   mid-update for that long (a dataplane killed inside an update): nothing
 *   is copied; -ENOMEM; -EPROTO.
 */
int dp_metrics_snapshot(struct dp_metrics_reader *r, struct dp_metrics_snapshot *out);

/** Free a snapshot's blocks. */
void dp_metrics_snapshot_free(struct dp_metrics_snapshot *s);

#endif /* SLP_DP_METRICS_H */
