/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One run of the load generator: the configuration, the worker threads that
 * produce and fetch, the per-second series and the totals.
 *
 * Threads: --threads workers, each owning a transport instance (one epoll
 * set) and a share of the connections: producer connection i and consumer
 * connection j go to workers i % threads and j % threads. The calling thread
 * only samples counters once per second, prints the progress line and
 * decides when to stop; it never touches a connection.
 *
 * Producer connections: each owns a set of partitions (connection i gets
 * partitions p with p % connections == i, or partition i % partitions when
 * there are more connections than partitions) and keeps up to max_inflight
 * Produce requests pipelined, each carrying one batch per owned partition
 * with records ready. Flat out, every batch is full (batch_size bytes); with
 * a rate, records become due on a fixed schedule per connection and a batch
 * leaves when it is full or its oldest record has waited linger. Each record
 * value starts with the time it became due (CLOCK_MONOTONIC ns) and a magic,
 * so consumers in the same machine measure end-to-end latency free of
 * coordinated omission. Keys, when asked for, are written into the records
 * but do not choose the partition.
 *
 * Consumer connections: one Fetch in flight each, over their partitions,
 * from the start offsets given (earliest, latest, or the offsets before the
 * producers started in end-to-end mode); every record is walked (compressed
 * batches decompressed) and counted once, by offset.
 *
 * Bounded always: a duration (default 10 s) and/or a record count; a request
 * unanswered after request_timeout_ms ends the run with an error; after the
 * producers finish, consumers get drain_s to catch up.
 */
#ifndef SLP_LG_RUN_H
#define SLP_LG_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "kp_batch.h"
#include "lg_hist.h"
#include "lg_kafka.h"
#include "lg_transport.h"

enum lg_mode {
	LG_MODE_PRODUCE,
	LG_MODE_CONSUME,
	LG_MODE_E2E,
	LG_MODE_TCP_BASELINE, /* produce requests to an in-process sink on loopback */
};

struct lg_config {
	enum lg_mode mode;
	const struct lg_transport_ops *transport;
	char host[256];
	uint16_t port;
	char topic[250];
	int32_t partitions;	/* created with this many; the topic's count is used */
	int16_t replication;	/* for CreateTopics; -1 broker default */
	bool create;		/* create the topic when missing */
	uint32_t record_size;	/* value bytes per record (>= 16 carries the stamp) */
	uint32_t batch_size;	/* bytes per batch (records are added while they fit) */
	uint32_t linger_us;	/* with a rate: longest a due record waits for its batch */
	int16_t acks;		/* 0, 1, -1 */
	enum kp_compression codec;
	uint32_t keys;		/* distinct keys; 0: null keys */
	uint32_t connections;	/* producer connections */
	uint32_t consumer_connections; /* 0: min(connections, partitions) */
	uint32_t threads;	/* worker threads */
	uint32_t max_inflight;	/* Produce requests pipelined per connection */
	double rate;		/* records/s over all producers; 0 flat out */
	double duration_s;	/* producing (or consuming) time; 0: none (count bounds it) */
	double warmup_s;	/* before the duration: run, but out of the latency totals */
	uint32_t tail_us;	/* e2e: records this late or later have their trip split
				 * into legs (lg_result.tail_*); 0: not done */
	uint64_t count;		/* records to produce (or consume); 0: none (duration bounds it) */
	int request_timeout_ms;
	int retries;		/* per batch, for retriable errors */
	int retry_backoff_ms;
	bool from_latest;	/* consume mode: start at the log end (default earliest) */
	int32_t fetch_max_wait_ms;
	int32_t fetch_max_bytes;
	int32_t partition_max_bytes;
	double drain_s;		/* after producing: time for consumers to catch up */
	uint32_t interval_ms;	/* the time series' step (progress line, JSON, plots) */
	bool progress;		/* print a line per second on stderr */
	int16_t produce_version; /* tcp-baseline: the Produce version of the bytes streamed */
	int cpus[64];		/* worker i runs on cpus[i % ncpus] when ncpus > 0 */
	uint32_t ncpus;
};

/* One interval of the run (a second by default), as the progress line shows it. */
struct lg_second {
	double t;		/* seconds since the start */
	uint64_t prod_records;	/* acknowledged in this second */
	uint64_t prod_bytes;	/* payload (key + value) bytes acknowledged */
	uint64_t cons_records;	/* consumed in this second */
	uint64_t cons_bytes;
	uint64_t ack_p99_ns;	/* produce request latency p99 in this second; 0 none */
	uint64_t e2e_p99_ns;	/* end-to-end p99 in this second; 0 none */
};

struct lg_result {
	double elapsed_s;	 /* first request to last acknowledgement (producing) */
	double consume_elapsed_s; /* first fetch to last record consumed */
	uint64_t sent_records;	 /* put in requests (retries not counted again) */
	uint64_t acked_records;	 /* acknowledged without error (acks=0: sent) */
	uint64_t acked_bytes;	 /* payload bytes of those */
	uint64_t failed_records; /* final errors after retries */
	uint64_t retried_batches;
	uint64_t produce_requests;
	uint64_t produce_requests_patched; /* of those, their slot's last frame patched */
	uint64_t wire_bytes_out; /* request bytes written, all connections */
	uint64_t consumed_records;
	uint64_t consumed_bytes;
	uint64_t unstamped_records; /* consumed records without our stamp (not in e2e) */
	uint64_t fetch_requests;
	uint64_t crc_errors;	 /* consumed batches whose CRC-32C did not match */
	uint64_t seq_errors;	 /* sequenced records out of order, missing or misplaced */
	uint64_t seq_checked;	 /* consumed records whose sequence was checked (lg_check.h) */
	double worker_cpu_s;	 /* CPU time of the worker threads from their connections' start
				  * (transport start-up before it not counted) to their end */
	double worker_busy_s;	 /* of that, busy (work, not a busy-polling transport's idle
				  * spin: lg_transport_ops.busy_ns); 0 when not known */
	uint64_t errors;	 /* protocol/transport errors and final produce errors */
	char first_error[256];
	bool timed_out;		 /* the hard deadline ended the run */
	int32_t partitions;
	uint32_t consumer_connections; /* as used (the default resolved, capped at partitions) */
	struct lg_versions versions;
	int64_t *start_offsets;	 /* per partition: where consumers began */
	int64_t *acked_end;	 /* per partition: highest acknowledged offset + 1; -1 none */
	int64_t *consumed_end;	 /* per partition: next offset the consumers would fetch */
	uint64_t *consumed_per_partition;
	struct lg_hist ack;	 /* produce request latency (ns) */
	struct lg_hist e2e;	 /* record due time to consumer receipt (ns) */
	struct lg_hist lag;	 /* --rate: a request's oldest record, due time to queued (ns) */
	struct lg_hist fetch_rtt; /* consumers: a Fetch queued to its response (ns) */
	struct lg_hist record_lag; /* --rate: each record's due time to its request queued (ns) */
	struct lg_hist loop;	 /* a worker iteration's time beyond the poll wait it allowed (ns) */
	/*
	 * The tail's legs (--tail-us): of each record received at least tail_us after it
	 * was due, whose Produce answer had come back, the time from due to its request
	 * queued (tail_send), queued to acknowledged (tail_ack), acknowledged to received
	 * (tail_after): the three add up to its end-to-end latency. Found by offset among
	 * its partition's latest acknowledged requests in the consumer's own thread, so
	 * only where one thread produces and consumes the partition (one thread: all).
	 */
	struct lg_hist tail_send, tail_ack, tail_after;
	uint64_t tail_records;	 /* received tail_us or more after due (after the warm-up) */
	uint64_t tail_before_ack; /* of them: received before their Produce answer came back */
	uint64_t tail_unmatched; /* of them: their request not found (another thread's, or
				  * older than the partition's last LG_TAIL_RING requests) */
	struct lg_second *seconds;
	uint32_t nseconds;
	/*
	 * The tail's timeline (e2e with --tail-us): late records per millisecond of
	 * their receipt (bin 0 starts at t0_mono_ns, the run's start on
	 * CLOCK_MONOTONIC, warm-up included), and the worker loop's own stalls,
	 * iterations that took tail_us or more beyond the wait they asked of poll
	 * (end and length, ns from t0), to be lined up with the broker's
	 * (dataplane.reactor.stall.log.us).
	 */
	int64_t t0_mono_ns;
	uint32_t *late_per_ms;
	uint32_t nlate_ms;
	int64_t (*loop_stalls)[2];
	uint32_t nloop_stalls;
};

/** Defaults for every field (produce, 1 partition, 1 KiB records, 16 KiB batches, 10 s). */
void
lg_config_defaults(struct lg_config *cfg);

/**
 * Run the load described by @cfg. Connects, negotiates versions, makes sure
 * the topic exists (not in tcp-baseline mode, which starts its own sink),
 * runs the workers and fills @res.
 * @param res  owned by the caller; free its arrays with lg_result_free().
 * @return 0 when the run completed (check res->errors); a negative errno when
 *   it could not start (set-up failed, message in res->first_error).
 */
int
lg_run(const struct lg_config *cfg, struct lg_result *res);

/** Free what lg_run allocated inside @res. */
void
lg_result_free(struct lg_result *res);

/** "produce", "consume", "e2e", "tcp-baseline". */
const char *
lg_mode_name(enum lg_mode mode);

/**
 * A loopback sink for tcp-baseline: listens on 127.0.0.1 (kernel picks the
 * port), reads length-prefixed frames and answers each with an 8-byte frame
 * echoing the correlation id, doing nothing else. Runs on its own thread.
 * @return 0 and the port; negative errno.
 */
struct lg_sink;
int
lg_sink_start(struct lg_sink **out, uint16_t *port);

/** Stop the sink thread, close its sockets, free it. */
void
lg_sink_stop(struct lg_sink *s);

#endif /* SLP_LG_RUN_H */
