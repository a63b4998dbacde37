/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Log compaction (cleanup.policy=compact), off the append path.
 *
 * A compaction is a job in three steps so that the expensive part never
 * runs on the storage writer's reactor:
 *
 *   stor_log_compact_begin()   owner thread, cheap: snapshot the sealed,
 *                              finished segments (immutable from now on).
 *   stor_compact_job_run()     any thread (a background thread, or the
 *                              control process's cleaner): reads those
 *                              segments, builds the key -> latest offset
 *                              map, writes <base>.log.cleaned and its
 *                              indexes for each segment, fsyncs them.
 *   stor_log_compact_finish()  owner thread: renames the cleaned files over
 *                              the originals and swaps the segments in;
 *                              reads still holding an old segment keep its
 *                              (unlinked) file until they release it.
 *
 * Semantics (Kafka's): for every key, only the record with the largest
 * offset among the cleaned segments is kept; records in the active segment
 * are not cleaned and not used to clean. A tombstone (null value) is kept
 * until delete.retention.ms after its batch's maxTimestamp, then removed.
 * Records without a key are removed, as Kafka's cleaner does (they are
 * invalid on a compacted topic). Control batches and batches whose records
 * are all kept are copied byte for byte. A batch that loses records is rewritten
 * with its original baseOffset, producer fields and attributes, the kept
 * records' offset and timestamp deltas unchanged, and a new CRC; a
 * compressed batch that loses records is rewritten uncompressed (Kafka
 * recompresses it; not done yet). A crash at any point leaves either the
 * original or the cleaned segment; leftovers (*.cleaned) are deleted and
 * missing indexes rebuilt at the next open.
 */
#ifndef SLP_STOR_COMPACT_H
#define SLP_STOR_COMPACT_H

#include <stdint.h>

#include "stor_log.h"

struct stor_compact_job;

struct stor_compact_stats {
	unsigned segments;
	uint64_t records_in, records_kept, tombstones_dropped;
	uint64_t bytes_in, bytes_out;
};

/**
 * Snapshot the sealed, finished segments of @log for cleaning.
 * @param now_ms  wall clock: tombstones older than delete.retention.ms go.
 * @return 0 and *@job; -ENOENT when the policy is not compact or no segment
 *         is sealed yet; -ENOMEM.
 */
int stor_log_compact_begin(struct stor_log *log, int64_t now_ms, struct stor_compact_job **job);

/**
 * Do the work. Blocking file I/O and memory proportional to the distinct
 * keys plus one segment; call it off the reactor. Touches nothing of the
 * log but the files named in the job.
 * @return 0 or -errno (the job can still be passed to finish, which then
 *         only cleans up).
 */
int stor_compact_job_run(struct stor_compact_job *job, struct stor_compact_stats *stats);

/**
 * Install the cleaned segments into @log (owner thread) and free the job.
 * Segments deleted by retention meanwhile are skipped.
 * @return 0 or the first error (the log then keeps the segments it had).
 */
int stor_log_compact_finish(struct stor_log *log, struct stor_compact_job *job);

#endif /* SLP_STOR_COMPACT_H */
