/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A partition's log: Kafka's on-disk layout (stor_format.h), appended to
 * and read from by exactly one owner thread, the storage writer of the
 * engine the log was opened on.
 *
 * Appends are asynchronous. stor_log_append() assigns the batch its offsets
 * (rewriting baseOffset), copies it into the log's tail-cache chunk (the
 * aligned, registered memory O_DIRECT writes are issued from) and returns;
 * the completion callback runs later from stor_engine_poll() on the owner
 * thread, once the batch is acknowledged:
 *
 *   without STOR_APPEND_DURABLE  the write holding the batch completed: the
 *                                bytes are in the kernel (page cache in
 *                                buffered mode, the device in O_DIRECT mode)
 *                                and survive a crash of the process (kill -9)
 *                                but not a power loss until the next
 *                                fdatasync (flush.messages / flush.ms, a roll,
 *                                a durable append, close).
 *   with STOR_APPEND_DURABLE     additionally an fdatasync covering the batch
 *                                completed: it survives a power loss.
 *
 * Completions are delivered in append order. Reads by offset return
 * references into the tail cache when the data is still there and read
 * from disk through the same engine otherwise.
 *
 * Errors (negative errno): -ENXIO offset out of range (the broker answers
 * OFFSET_OUT_OF_RANGE), -EMSGSIZE batch larger than a chunk, -EBADMSG
 * malformed batch, -EAGAIN too many appends in flight or no free chunk (retry
 * after a poll), -EIO the log failed an I/O and takes no more appends
 * (KAFKA_STORAGE_ERROR).
 */
#ifndef SLP_STOR_LOG_H
#define SLP_STOR_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "stor_config.h"
#include "stor_engine.h"
#include "stor_io.h"

struct stor_log;
struct stor_segment;
struct stor_chunk;

#define STOR_APPEND_DURABLE 0x1 /* complete only after an fdatasync covering the batch */

/**
 * Append completion, on the owner thread.
 * @param rc           0, or a negative errno (the batch is not in the log).
 * @param base_offset  the offset assigned to the first record of the batch.
 */
typedef void (*stor_append_cb)(void *cb_arg, int rc, int64_t base_offset);

struct stor_read;
/** Disk read completion, on the owner thread; @rd holds the result (see struct stor_read). */
typedef void (*stor_read_cb)(void *cb_arg, struct stor_read *rd, int rc);

/*
 * A read. The caller owns it and the buffer; it must stay alive until the
 * callback ran (disk reads) and stor_read_release() was called.
 */
struct stor_read {
	/* Set by the caller before stor_log_read(). */
	void *buf;       /* disk reads land here: 4 KiB aligned */
	size_t buf_size; /* multiple of 4 KiB; at least stor_read_buf_size(max_bytes) */

	/* Result: whole batches, byte for byte as stored. Borrowed until release. */
	const uint8_t *data;
	size_t len;          /* 0: no batch at or after the offset is readable yet */
	int64_t next_offset; /* offset after the last returned batch */
	int from_cache;      /* 1: data points into the tail cache */

	/* Private. */
	struct stor_log *log;
	struct stor_chunk *chunk;
	struct stor_segment *seg;
	struct stor_io_req req;
	stor_read_cb cb;
	void *cb_arg;
	int64_t target;
	size_t max_bytes;
	uint64_t pos;       /* segment position of the first byte read */
	uint64_t batch_pos; /* position of the batch to start from (index lookup) */
	int retried;
};

/**
 * Open (or create) the log in directory @dir, recovering it: without a
 * valid clean-shutdown marker the last segment is scanned batch by batch
 * (CRC, lengths, increasing offsets) and a torn or corrupt tail is truncated
 * with a log line; missing or corrupt indexes are rebuilt. Blocking; call at
 * start-up or partition assignment, not from a loaded tick.
 *
 * @param dir  the partition directory (created if missing); borrowed.
 * @param cfg  copied.
 * @param err  receives -errno on failure.
 * @return the log, or NULL.
 */
struct stor_log *stor_log_open(struct stor_engine *engine, const char *dir,
                               const struct stor_log_config *cfg, int *err);

/**
 * Close cleanly: wait for in-flight I/O, fdatasync, write the indexes,
 * trim the preallocated tail, write the clean-shutdown marker, free. Reads
 * must be released first. Pending appends complete before it returns.
 *
 * @return 0 or the first I/O error met.
 */
int stor_log_close(struct stor_log *log);

/**
 * Close a log whose directory is about to be removed (a deleted topic's):
 * wait for its appends and the I/O in flight, as stor_log_close() does, then
 * free it with nothing more written: no final sync, trim, index files or
 * clean-shutdown marker (a partition's were 1.5-2 ms of file-system calls on
 * the reactor). Reads must be released first.
 *
 * @return 0 or the log's I/O error.
 */
int stor_log_close_discard(struct stor_log *log);

/**
 * Close @n logs of one engine cleanly, as stor_log_close() each does, with
 * the I/O batched across them: the last writes and the final fdatasync of
 * every log are in flight together (queued by the engine's poll as appends
 * are), then log by log the trim and the index files written into the files
 * as they are, one syncfs(2) per file system, the clean-shutdown markers
 * (also in place), and one more syncfs: two journal commits in all, not two
 * fsyncs per log, and no file created or replaced per log (a log idle since
 * a clean open has its index files left alone).
 * For shutdown with many partitions; blocking. Reads must be released
 * first. Every log is freed, whatever the result.
 *
 * @param logs  the logs (the array is borrowed, the logs are consumed).
 * @param rcs   if not NULL, receives each log's result (0 or -errno).
 * @return 0 or the first error met (each failure is also logged).
 */
int stor_log_close_many(struct stor_log **logs, unsigned n, int *rcs);

/**
 * Abandon the log without any flush, as a crash would (tests only): no
 * marker is written and in-flight I/O is waited for but nothing else.
 */
void stor_log_abandon(struct stor_log *log);

/**
 * Append one record batch.
 *
 * @param batch   borrowed for the duration of the call: copied into the tail
 *                cache; its baseOffset field is not modified in the caller's
 *                buffer. Validated by the caller (kp_batch_validate); the log
 *                only checks the header.
 * @param len     bytes of @batch; must equal the batch size.
 * @param flags   STOR_APPEND_DURABLE or 0.
 * @param cb      completion; may be NULL.
 * @param base_offset  if not NULL, receives the assigned base offset now.
 * @return 0 (queued; @cb will run), or -errno (@cb will not run).
 */
int stor_log_append(struct stor_log *log, const void *batch, size_t len, unsigned flags,
                    stor_append_cb cb, void *cb_arg, int64_t *base_offset);

/** Disk-read buffer size that fits a read of @max_bytes (plus index slack and alignment). */
size_t stor_read_buf_size(size_t max_bytes);

/**
 * Read whole batches starting with the one holding @offset, up to
 * @max_bytes (at least one batch if it fits @rd->buf, as KIP-74 asks), from
 * one segment. Only written (acknowledged without the durable flag) data is
 * returned.
 *
 * @return 0: served now (from the tail cache, or nothing to read at the log
 *         end); @cb is not called. -EINPROGRESS: a disk read was submitted,
 *         @cb runs from stor_engine_poll(). Else -errno (-ENXIO out of range,
 *         -ENOBUFS the first batch is larger than @rd->buf).
 *         In every case but an error, call stor_read_release() when done.
 */
int stor_log_read(struct stor_log *log, struct stor_read *rd, int64_t offset, size_t max_bytes,
                  stor_read_cb cb, void *cb_arg);

/** Drop the references a read holds (cache chunk, segment). */
void stor_read_release(struct stor_read *rd);

/** Offset the next appended batch gets (the log end offset, LEO). */
int64_t stor_log_end_offset(const struct stor_log *log);

/** Offset below which every batch was written (acknowledged without the durable flag). */
int64_t stor_log_written_offset(const struct stor_log *log);

/** Log start offset (after retention and DeleteRecords). */
int64_t stor_log_start_offset(const struct stor_log *log);

/**
 * 0, or the negative errno of the I/O that failed the log: a failed log takes
 * no more appends (they answer that errno) and its pending appends completed
 * with it; it stays failed until it is closed.
 */
int stor_log_failed(const struct stor_log *log);

/** The configuration the log was opened with (its topic's keys over the broker's). */
const struct stor_log_config *stor_log_get_config(const struct stor_log *log);

/** Number of segments, and the base offset of segment @i (0 = oldest). */
unsigned stor_log_segment_count(const struct stor_log *log);
int64_t stor_log_segment_base(const struct stor_log *log, unsigned i);

/** Total bytes of data in all segments. */
uint64_t stor_log_size_bytes(const struct stor_log *log);

#define STOR_TS_LATEST (-1)   /* ListOffsets: the log end offset */
#define STOR_TS_EARLIEST (-2) /* the log start offset */
#define STOR_TS_MAX (-3)      /* KIP-734: the offset of the largest timestamp */

/**
 * ListOffsets: the first offset whose record timestamp is >= @timestamp
 * (the batch's base offset for compressed batches), or the special values
 * above. Reads index and segment data synchronously (a few KiB); meant for
 * ListOffsets, not the produce path.
 *
 * @param offset     receives the offset; -1 when no record is that recent.
 * @param found_ts   if not NULL, receives the timestamp of that record.
 * @return 0 or -errno.
 */
int stor_log_offset_for_time(struct stor_log *log, int64_t timestamp, int64_t *offset,
                             int64_t *found_ts);

struct kp_batch_header;

/**
 * Called by stor_log_batch_headers() for each batch, in offset order.
 * @param h  the batch's header (baseOffset as stored); borrowed for the call.
 * @return 0 to go on; anything else stops the walk and is returned.
 */
typedef int (*stor_batch_header_fn)(void *arg, const struct kp_batch_header *h);

/**
 * Walk the headers of every batch whose last offset is >= @from, up to the
 * log end, oldest first, reading the segment files synchronously (a forward
 * scan from the offset index entry at or below @from). Meant for rebuilding
 * state derived from the batch headers right after stor_log_open() (the
 * broker's producer state), not for the append path. Batches below the log
 * start offset that are still in a segment are walked too.
 *
 * @return 0; -EBUSY (appends are pending: call it before the first append);
 *         the first non-zero value @fn returned; -EBADMSG (a batch that does
 *         not parse, not expected after recovery); an I/O -errno.
 */
int stor_log_batch_headers(struct stor_log *log, int64_t from, stor_batch_header_fn fn,
                           void *arg);

/**
 * Start a new segment now, e.g. before deleting an expired active one.
 * Does nothing on an empty active segment.
 */
int stor_log_roll(struct stor_log *log);

/**
 * Retention: delete the oldest segments past log.retention.ms (by their
 * largest timestamp) or past log.retention.bytes, and those wholly below
 * the log start offset. Rolls an expired active segment first. Never
 * deletes the active segment or one still being written.
 *
 * @param now_ms  wall-clock time in ms.
 * @param max     delete at most this many segments (0: no limit); a caller
 *                on a reactor deletes one per call, each deletion being a
 *                rename and a few unlinks (40-200 us on tmpfs), and comes
 *                back while the answer equals @max.
 * @return segments deleted, or -errno.
 */
int stor_log_retention_run(struct stor_log *log, int64_t now_ms, unsigned max);

/**
 * DeleteRecords: raise the log start offset to @offset (<= LEO); persisted
 * in log-start-offset; segments wholly below it go at the next retention run.
 * @return 0, -ENXIO when @offset > LEO.
 */
int stor_log_delete_records(struct stor_log *log, int64_t offset);

/**
 * Leader epochs (leader-epoch-checkpoint). Assign @epoch starting at
 * @start_offset (epochs and offsets must not go down); persisted at once.
 */
int stor_log_epoch_assign(struct stor_log *log, int32_t epoch, int64_t start_offset);

/**
 * OffsetForLeaderEpoch: the largest epoch <= @epoch and its end offset (the
 * start offset of the next epoch, or the LEO for the latest one).
 * @return 0, -ENOENT when no such epoch is known.
 */
int stor_log_epoch_end_offset(const struct stor_log *log, int32_t epoch, int32_t *found_epoch,
                              int64_t *end_offset);

/** The log's directory (borrowed). */
const char *stor_log_dir(const struct stor_log *log);

/** 1 when the log writes with O_DIRECT, 0 when buffered (fallback or configured). */
int stor_log_is_direct(const struct stor_log *log);

#endif /* SLP_STOR_LOG_H */
