/* SPDX-License-Identifier: Apache-2.0 */
/*
 * On-disk formats of a partition log, documented as offset/size tables in
 * the manner of SQLite's btreeInt.h. Every multi-byte integer is big endian,
 * as in Apache Kafka, so an operator's tools (kafka-dump-log.sh) can read
 * .log, .index and .timeindex files written by Slipstream.
 *
 * DIRECTORY LAYOUT
 *
 *   <log.dir>/<topic>-<partition>/
 *     00000000000000000000.log        record batches, byte for byte as on the wire
 *     00000000000000000000.index      sparse offset index
 *     00000000000000000000.timeindex  sparse time index
 *     00000000000000000000.snapshot   producer-state snapshot: written and loaded by the
 *                                     broker (format in dataplane/broker/dp_producer.h),
 *                                     never by storage; storage deletes <base>.snapshot
 *                                     with the segment of that base
 *     leader-epoch-checkpoint         Kafka's text format, see below
 *     log-start-offset                Slipstream: the DeleteRecords low watermark
 *     clean-shutdown                  Slipstream: present only after a clean close
 *
 * A segment is named by its base offset in 20 decimal digits, zero padded.
 *
 * SEGMENT (.log)
 *
 * A sequence of v2 record batches (layout in dataplane/kafka/kp_batch.h),
 * each 12 + batchLength bytes, with no gap between them. baseOffset is the
 * offset assigned by the log; batches are in strictly increasing offset
 * order (a batch's baseOffset > the previous batch's lastOffset; equal + 1
 * unless compaction removed records). The active segment is preallocated a
 * step (storage.preallocate.bytes) past its data, at most to
 * log.segment.bytes, so its file is longer than its data: the bytes after
 * the last batch are zero (or, after a crash, a torn batch). A sealed
 * segment is truncated to its exact length when it is rolled.
 *
 * OFFSET INDEX (.index): 8-byte entries, sorted
 *
 *   off size field
 *     0    4 relativeOffset   lastOffset of the indexed batch - segment base offset
 *     4    4 position         byte position of that batch in the .log
 *
 * An entry is added before appending a batch when more than
 * log.index.interval.bytes were appended since the previous entry (Kafka's
 * rule), so lookup(T) = the last entry with relativeOffset <= T - base gives
 * a position from which a forward scan finds the batch holding T.
 *
 * TIME INDEX (.timeindex): 12-byte entries, timestamps non-decreasing
 *
 *   off size field
 *     0    8 timestamp        the largest maxTimestamp so far in the segment (ms)
 *     8    4 relativeOffset   lastOffset of the batch that carried it - base offset
 *
 * An entry is added with the offset-index entry, and only when the largest
 * timestamp grew since the last time-index entry.
 *
 * LEADER EPOCH CHECKPOINT (leader-epoch-checkpoint): text, as Kafka
 *
 *   line 1: version, "0"
 *   line 2: number of entries N
 *   N lines: "<epoch> <startOffset>"
 *
 * LOG START OFFSET (log-start-offset): text, one line "<offset>\n".
 *
 * CLEAN-SHUTDOWN MARKER (clean-shutdown): 48 bytes, written after the active
 * segment and its indexes were flushed and the segment truncated to its data
 *
 *   off size field
 *     0    4 magic            STOR_CLEAN_MAGIC ("SLPC")
 *     4    4 version          1
 *     8    8 nextOffset       log end offset at close
 *    16    8 activeBase       base offset of the last segment
 *    24    8 activeSize       bytes of data in the last segment == its file size
 *    32    8 maxTimestamp     largest batch maxTimestamp of the last segment (-1: none)
 *    40    4 maxTsOffset      relative offset that carried it
 *    44    4 crc              CRC-32C of bytes 0..43
 *
 * The marker is only trusted when its CRC matches and the last segment's
 * file size equals activeSize (a reopened log preallocates the segment, so
 * a stale marker that survived a crash never matches). It is invalidated when
 * the log is opened (its magic zeroed in place, durable before the first
 * append; not unlinked: freeing its inode and block cost 150-280 us a log on
 * ext4) and replaced by rename at the next clean close.
 */
#ifndef SLP_STOR_FORMAT_H
#define SLP_STOR_FORMAT_H

#include <stdint.h>

#define STOR_BLOCK_SIZE 4096u         /* O_DIRECT alignment of offsets, lengths and memory */
#define STOR_INDEX_ENTRY_SIZE 8u      /* .index entry */
#define STOR_TIMEINDEX_ENTRY_SIZE 12u /* .timeindex entry */
#define STOR_SEGMENT_NAME_DIGITS 20

#define STOR_CLEAN_MAGIC 0x534c5043u /* "SLPC" */
#define STOR_CLEAN_VERSION 1u
#define STOR_CLEAN_SIZE 48u

#define STOR_FILE_LEADER_EPOCH "leader-epoch-checkpoint"
#define STOR_FILE_LOG_START "log-start-offset"
#define STOR_FILE_CLEAN "clean-shutdown"

static inline void
stor_be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void
stor_be64_put(uint8_t *p, uint64_t v)
{
	stor_be32_put(p, (uint32_t)(v >> 32));
	stor_be32_put(p + 4, (uint32_t)v);
}

static inline uint32_t
stor_be32_get(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
	       (uint32_t)p[3];
}

static inline uint64_t
stor_be64_get(const uint8_t *p)
{
	return ((uint64_t)stor_be32_get(p) << 32) | stor_be32_get(p + 4);
}

#endif /* SLP_STOR_FORMAT_H */
