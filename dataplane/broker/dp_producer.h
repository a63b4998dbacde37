/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_producer: idempotent producers (KIP-98): the producer-id allocator
 * behind InitProducerId and each partition's producer-state table, with its
 * snapshots on disk.
 *
 * Producer ids come from blocks of DP_PID_BLOCK ids. The end of the current
 * block is persisted (write, fsync, rename, directory fsync) in
 * `<log.dirs[0]>/__slipstream_producer_ids` before the first id of the
 * block is handed out, so an id is never handed out twice, also across a
 * kill -9 (a crash only skips the rest of a block), as Kafka's
 * ProducerIdManager does with its blocks.
 *
 * A partition's producer state (struct dp_producers) maps a producer id to
 * its epoch and the metadata of its last DP_PRODUCER_BATCHES batches (first
 * and last sequence, first offset, max timestamp), Kafka's
 * ProducerStateEntry. Produce checks each idempotent batch against it
 * (dp_producer_check, Kafka's ProducerAppendInfo rules) and records it once
 * the log assigned its offset (dp_producer_record), so pipelined requests of
 * one producer see each other. The table is sized at open
 * (dataplane.producers.max) and never allocates afterwards: a new producer
 * in a full table replaces the entry idle the longest (oldest last batch
 * timestamp), and entries idle longer than producer.id.expiration.ms are
 * the first to go and are dropped at load.
 *
 * Snapshots: `<offset>.snapshot` in the partition directory holds the state
 * of every batch below <offset> (format below). One is written when a
 * segment rolls (named by the new segment's base offset, so storage deletes
 * it with that segment; not fsynced, the reactor does not wait for the
 * disk) and at clean close (named by the log end offset, durable).
 * dp_producers_open() loads the newest valid snapshot not beyond the log
 * end, deletes those beyond it (left by a crash that truncated the log) and
 * corrupt ones, then rebuilds the rest from the batch headers between the
 * snapshot and the log end (stor_log_batch_headers), so the state is right
 * after a kill -9 too. Only the two newest snapshots are kept.
 *
 * SNAPSHOT FILE (big endian, as every Slipstream file)
 *
 *   off  size field
 *     0     4 magic          DP_SNAP_MAGIC ("SLPP")
 *     4     4 version        1
 *     8     8 offset         state of every batch below this offset
 *    16     4 count          N producer entries
 *    20     4 reserved       0
 *    24  N*144 entries:
 *          0  8 producerId
 *          8  2 producerEpoch
 *         10  1 batches      cached batches B (0..5), oldest first below
 *         11  5 reserved     0
 *         16  8 lastTimestamp  max timestamp of its newest batch (ms)
 *         24  5 * 24 batch slots, the first B used:
 *              0 4 firstSeq, 4 4 lastSeq, 8 8 firstOffset, 16 8 maxTimestamp
 *  24+N*144 4 crc            CRC-32C of every byte before it
 *
 * Threading: everything here runs on the partition's owner thread (the
 * broker's lcore); the allocator on the broker's lcore too.
 */
#ifndef SLP_DP_PRODUCER_H
#define SLP_DP_PRODUCER_H

#include <stdbool.h>
#include <stdint.h>

struct stor_log;

#define DP_PRODUCER_BATCHES 5        /* Kafka's ProducerStateEntry.NumBatchesToRetain */
#define DP_PID_BLOCK 1000            /* ids per persisted block (Kafka's block size) */
#define DP_PID_FILE "__slipstream_producer_ids"
#define DP_SNAP_MAGIC 0x534c5050u /* "SLPP" */
#define DP_SNAP_VERSION 1u
#define DP_SNAP_HEADER 24u
#define DP_SNAP_ENTRY 144u
#define DP_PRODUCERS_MAX_DEFAULT 128
#define DP_PRODUCER_EXPIRATION_MS_DEFAULT 86400000 /* producer.id.expiration.ms: 1 day */

/* ---- producer ids ---- */

struct dp_pid_alloc {
	char path[4200]; /* the block file */
	int64_t next;    /* next id to hand out */
	int64_t limit;   /* end of the persisted block: ids < limit may be handed out */
};

/**
 * Read the block file in @dir (absent: ids start at 0). Blocking, start-up.
 * @return 0, -ENAMETOOLONG, -EBADMSG (unreadable file), or an I/O -errno.
 */
int dp_pid_alloc_open(struct dp_pid_alloc *a, const char *dir);

/**
 * Hand out a new producer id; persists the next block first when the
 * current one is used up (one synchronous write + fsync every DP_PID_BLOCK
 * ids).
 * @return 0, or an I/O -errno (no id handed out).
 */
int dp_pid_alloc_next(struct dp_pid_alloc *a, int64_t *pid);

/* ---- per-partition producer state ---- */

struct dp_producer_batch {
	int32_t first_seq;
	int32_t last_seq;
	int64_t first_offset; /* offset the log assigned to the batch's first record */
	int64_t timestamp;    /* the batch's maxTimestamp (ms) */
};

struct dp_producer {
	int64_t id;      /* producer id; -1 in a free slot */
	int16_t epoch;   /* -1: no epoch known (a fresh entry) */
	uint8_t n;       /* cached batches, 0..DP_PRODUCER_BATCHES */
	uint8_t head;    /* slot of the newest cached batch */
	int64_t last_ts; /* maxTimestamp of the newest batch (expiration, eviction) */
	struct dp_producer_batch batch[DP_PRODUCER_BATCHES]; /* ring */
};

struct dp_producers {
	uint32_t cap;          /* entries; dataplane.producers.max */
	uint32_t count;        /* used entries, dense in p[0..count) */
	int64_t expiration_ms; /* producer.id.expiration.ms */
	int64_t active_base;   /* active segment base last seen (roll detection) */
	char *dir;             /* partition directory, owned */
	struct dp_producer p[]; /* @cap entries */
};

/** What dp_producer_check() decided for a batch. */
enum dp_producer_verdict {
	DP_PRODUCER_APPEND = 0,   /* in sequence (or a new epoch starting at 0): append */
	DP_PRODUCER_DUPLICATE,    /* one of the cached batches: answer its offset, no append */
	DP_PRODUCER_OUT_OF_ORDER, /* OUT_OF_ORDER_SEQUENCE_NUMBER */
	DP_PRODUCER_OLD_EPOCH,    /* INVALID_PRODUCER_EPOCH */
	DP_PRODUCER_BAD_SEQUENCE, /* producer id set but base sequence < 0: INVALID_RECORD */
};

/** Kafka's sequence after @first for a batch of last offset delta @delta (wraps at INT32_MAX). */
static inline int32_t
dp_producer_last_seq(int32_t first, int32_t delta)
{
	if (first > INT32_MAX - delta)
		return delta - (INT32_MAX - first) - 1;
	return first + delta;
}

/**
 * Open the producer state of the log @log (just opened, no append yet):
 * allocate a table of @cap entries, load the newest valid snapshot, rebuild
 * the rest from the log's batch headers. Blocking (start-up, topic creation).
 *
 * @param now_ms  wall clock, for producer.id.expiration.ms
 * @param out     receives the table (owned by the caller: dp_producers_close)
 * @return 0, -EINVAL (@cap 0), -ENOMEM, or the -errno of the header walk.
 */
int dp_producers_open(struct stor_log *log, uint32_t cap, int64_t expiration_ms, int64_t now_ms,
	struct dp_producers **out);

/**
 * Write a snapshot at @log's end offset (clean close, before stor_log_close)
 * and free @ps. NULL is fine.
 * @return 0 or the -errno of the snapshot write (the table is freed anyway).
 */
int dp_producers_close(struct dp_producers *ps, struct stor_log *log);

/**
 * dp_producers_close() without the fsyncs: the snapshot is renamed into
 * place but made durable by the caller (a shutdown closing many logs, whose
 * stor_log_close_many() ends with a syncfs of the same file system). A
 * snapshot lost to a power cut before that is rebuilt from the log.
 */
int dp_producers_close_unsynced(struct dp_producers *ps, struct stor_log *log);

/** Free @ps without a snapshot (crash tests, error paths). NULL is fine. */
void dp_producers_free(struct dp_producers *ps);

/** The entry of producer @pid, or NULL. */
struct dp_producer *dp_producers_find(struct dp_producers *ps, int64_t pid);

/**
 * The entry of @pid, created when missing (epoch -1, no batch) in a free
 * slot or in place of the entry idle the longest. Never allocates.
 */
struct dp_producer *dp_producers_get(struct dp_producers *ps, int64_t pid, int64_t now_ms);

/**
 * Kafka's checks of one idempotent batch against @e (the producer's entry,
 * or a fresh one for an unknown producer; only read): epoch fencing,
 * duplicate of a cached batch, sequence continuity (wrapping at INT32_MAX).
 * A producer with no known epoch (never seen, expired or evicted) may start
 * at any sequence, as Kafka since KIP-360 accepts.
 *
 * @param dup_offset  receives the cached batch's first offset for DUPLICATE
 */
enum dp_producer_verdict dp_producer_check(const struct dp_producer *e, int16_t epoch,
	int32_t first_seq, int32_t last_seq, int64_t *dup_offset);

/** Record an appended batch in @e (a new epoch drops the cached batches). */
void dp_producer_record(struct dp_producer *e, int16_t epoch, int32_t first_seq, int32_t last_seq,
	int64_t first_offset, int64_t timestamp);

/**
 * Write `<offset>.snapshot` (tmp file, fsync, rename, directory fsync) of
 * the whole table, then delete every other snapshot but the newest older
 * one. Synchronous.
 * @return 0 or -errno.
 */
int dp_producers_snapshot(struct dp_producers *ps, int64_t offset);

/**
 * Called after each append to @log: when the log rolled to a new segment
 * whose base is @batch_offset (the batch just appended opened it), write
 * the snapshot at that base before the batch is recorded, without fsyncs
 * (renamed into place; a power cut may lose it). Cheap otherwise. A failed
 * or lost snapshot is logged only (the next roll or close writes another;
 * without one the state is rebuilt from the older one or the log).
 */
void dp_producers_roll_check(struct dp_producers *ps, struct stor_log *log, int64_t batch_offset);

#endif /* SLP_DP_PRODUCER_H */
