/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Structures shared by the storage engine, the log and the compactor.
 * Not for use outside storage/.
 *
 * Positions: a segment position is a byte offset in its .log file. A log
 * position ("lpos") counts bytes appended to the log since it was opened,
 * across segments: lpos = segment->lpos_base + segment position. Writes of
 * one log complete in lpos order, so "written up to lpos X" is one number.
 */
#ifndef SLP_STOR_INTERNAL_H
#define SLP_STOR_INTERNAL_H

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "stor_config.h"
#include "stor_engine.h"
#include "stor_format.h"
#include "stor_io.h"
#include "stor_log.h"

#define STOR_ALIGN_DOWN(x) ((x) & ~(uint64_t)(STOR_BLOCK_SIZE - 1))
#define STOR_ALIGN_UP(x) STOR_ALIGN_DOWN((x) + STOR_BLOCK_SIZE - 1)

/* A tail-cache chunk: aligned memory mirroring a file range of one segment. */
struct stor_chunk {
	uint8_t *mem;         /* chunk_bytes, 4 KiB aligned, registered with the backend */
	int16_t buf_index;    /* registered buffer index */
	bool sealed;          /* no more appends go here */
	bool in_lru;          /* on engine->reclaim */
	bool orphan;          /* its segment was deleted; freed at the last release */
	struct stor_log *log; /* owner, NULL when free */
	struct stor_segment *seg;
	uint64_t file_off;    /* segment position of mem[0], block aligned */
	uint32_t head;        /* [0, head): copy of the previous chunk's partial block */
	uint32_t fill;        /* [0, fill): data */
	uint32_t written;     /* [0, written): write completed */
	int64_t first_offset; /* base offset of the batch at head; -1 when none */
	int64_t next_offset;  /* last offset + 1 of the batches in the chunk */
	uint32_t refs;        /* reads holding it */
	TAILQ_ENTRY(stor_chunk) log_link; /* log->chunks, oldest first */
	TAILQ_ENTRY(stor_chunk) lru_link; /* engine->free or engine->reclaim */
};
TAILQ_HEAD(stor_chunk_list, stor_chunk);

struct stor_index_entry {
	uint32_t rel_offset;
	uint32_t position;
};

struct stor_time_entry {
	int64_t timestamp;
	uint32_t rel_offset;
};

struct stor_segment {
	int64_t base_offset;
	int64_t next_offset;     /* last offset + 1 (for sealed: may be < next segment base) */
	uint64_t size;           /* bytes of data */
	uint64_t lpos_base;      /* lpos of position 0 */
	int handle;              /* backend file handle */
	bool sealed;             /* no more appends */
	bool finalized;          /* sealed, written, synced, trimmed, indexes on disk */
	bool deleted;            /* unlinked, freed when refs drop to 0 */
	bool dsync_next;         /* the next segment is a recycled file renamed into place on
	                            disk: this one's roll flush syncs the directory too */
	uint32_t refs;           /* disk reads in flight or held */
	struct stor_log *flog;   /* owner of the open file (handle >= 0) */
	TAILQ_ENTRY(stor_segment) file_link; /* engine->files, least recently used first */
	int64_t max_timestamp;   /* largest batch maxTimestamp, -1 when none */
	int64_t max_ts_offset;   /* last offset of the batch that carried it */
	int64_t first_timestamp; /* base timestamp of the first batch, -1 when none (roll.ms) */
	int64_t created_ms;      /* wall clock at creation (roll.ms of an empty-ts segment) */
	uint32_t bytes_since_index;
	struct stor_index_entry *idx; /* sorted */
	uint32_t idx_count, idx_cap;
	struct stor_time_entry *tidx;
	uint32_t tidx_count, tidx_cap;
};

struct stor_pending {
	uint64_t end_lpos; /* acknowledged when written (and synced if durable) past this */
	int64_t base_offset;
	stor_append_cb cb;
	void *cb_arg;
	uint8_t durable;
};

struct stor_epoch_entry {
	int32_t epoch;
	int64_t start_offset;
};

struct stor_log {
	struct stor_engine *engine;
	struct stor_log_config cfg;
	char *dir;
	int direct; /* 1: segments opened O_DIRECT */
	int failed; /* first I/O error; appends refused */

	int64_t next_offset;    /* LEO */
	int64_t start_offset;   /* log start offset */
	uint64_t appended_lpos; /* lpos after the last append */
	uint64_t written_lpos;  /* all bytes below are written */
	uint64_t synced_lpos;   /* all bytes below are fdatasync'ed */
	int64_t written_offset; /* offset below which all batches are written */

	struct stor_segment **segs; /* oldest first; the last is active */
	unsigned seg_count, seg_cap;

	struct stor_chunk_list chunks; /* oldest first; the last may be the active chunk */
	unsigned chunk_count;
	/*
	 * While the log has no active chunk (an idle log's was taken back by the
	 * pool, or none was taken since open): the bytes of the active segment's
	 * partial last block, [tail_end & ~4095, tail_end), valid while
	 * tail_end is the segment's size (TAIL_NONE: no copy). The block-sized
	 * buffer stays with the log once made: at 10,000 partitions nearly
	 * every append follows an eviction, and a malloc and free each time
	 * were 2% of the reactor.
	 */
	uint8_t *tail_copy; /* STOR_BLOCK_SIZE bytes, or NULL before the first copy */
	uint64_t tail_end;  /* active segment size the copy was made at, or TAIL_NONE */

	/* Pending appends: a ring of pend_cap entries, grown up to cfg.max_pending. */
	struct stor_pending *pend;
	uint32_t pend_cap;
	uint32_t pend_head, pend_count;
	uint32_t pend_durable; /* durable appends among them */

	/* Flush policy state. */
	int64_t unsynced_msgs;       /* messages written or queued since the last sync */
	uint64_t oldest_unsynced_ms; /* monotonic ms of the first unsynced append, 0: none */

	/* The one write (and linked sync) in flight. */
	struct stor_io_req wreq, sreq;
	uint64_t sync_t0_ns;  /* stor_mono_ns() when sreq was queued */
	bool io_busy;     /* a write or sync is in flight */
	uint8_t io_parts; /* completions still expected (1 or 2) */
	struct stor_chunk *w_chunk;
	uint32_t w_end;             /* chunk fill the write covers */
	struct stor_segment *w_seg; /* segment of the in-flight write or sync */
	uint64_t w_sync_lpos;       /* lpos the linked sync makes durable */
	struct stor_segment *last_written_seg;
	int64_t w_offset_end; /* next_offset covered when the write completes */

	/*
	 * Flush on roll, beside the writes: the segment sealed by the last roll
	 * until its fdatasync and then its trim (rsreq, one after the other,
	 * holding a reference on it) and indexes are done. The next segment's writes go on meanwhile; the
	 * durable watermark (synced_lpos) stays at this segment's end until its
	 * sync completes, what a later segment's syncs reached waits in
	 * synced_ahead. One at a time: a roll waits for the previous one's.
	 */
	struct stor_segment *roll_seg;
	struct stor_io_req rsreq;
	int roll_trim_rc;        /* the roll flush's trim result, kept across its directory sync */
	uint64_t rsync_t0_ns; /* stor_mono_ns() when the fdatasync was queued */
	bool rsync_busy;
	uint64_t synced_ahead;

	struct stor_io_req areq; /* asynchronous preallocation of a new segment */
	bool alloc_busy;
	bool prealloc_pending; /* the active segment is preallocated at its first append */
	uint64_t prealloc_end; /* active segment: file bytes reserved so far (the end of the
	                          last fallocate queued), 0: none since it became active */

	bool on_dirty; /* on engine->dirty */
	bool on_timed; /* on engine->timed */
	TAILQ_ENTRY(stor_log) dirty_link;
	TAILQ_ENTRY(stor_log) timed_link;
	TAILQ_ENTRY(stor_log) all_link;

	struct stor_epoch_entry *epochs;
	unsigned epoch_count, epoch_cap;

	/* Its clean-shutdown marker's invalidation is durable once engine->unlinks_synced >= this. */
	uint64_t unlink_gen;
	/*
	 * Opened clean: the active segment as the marker and the index files on
	 * disk describe it (base, size, index entries, end offset). A close that
	 * finds it unchanged (an idle log) keeps those index files and restores
	 * the marker in place. clean_base -1: not opened clean.
	 */
	int64_t clean_base, clean_next;
	uint64_t clean_size;
	uint32_t clean_idx, clean_tidx;

	/*
	 * Segment recycling (storage.segment.recycle), on a RAM file system
	 * only: files retention deleted, renamed <old base>.spare, the next
	 * rolls renamed into place and written over. A fresh tmpfs page is an
	 * allocation (and in a VM a host fault: 1-2 GB/s against 3.5 rewriting,
	 * docs/storage.md); a spare keeps its pages. Its stale batches beyond
	 * the data have offsets below the segment's base: recovery stops at
	 * them. Not on disk: the rename would need a directory sync before a
	 * durable append in the new segment could be acknowledged.
	 */
	bool ram_dir;
	unsigned n_spares;
	int64_t spares[STOR_RECYCLE_MAX]; /* their old bases, oldest first */

	/*
	 * The headers of the batches the recovery scan of the last segment
	 * found (an open after a crash): stor_log_batch_headers() walks them
	 * instead of reading the segment a second time (the broker's producer
	 * state rebuild, right after the open, read every byte of it again:
	 * 44% of a kill -9 recovery, docs/benchmarks.md "Session 23"). Valid
	 * while that segment (base memo_base) still has memo_size bytes ending
	 * at memo_next; freed by that walk or the first append. NULL: none (a
	 * clean open, or more than STOR_MEMO_MAX batches: the file is read).
	 */
	struct kp_batch_header *memo;
	uint32_t memo_n, memo_cap;
	bool memo_full; /* the scan found more than STOR_MEMO_MAX: memo dropped */
	int64_t memo_base, memo_next;
	uint64_t memo_size;

	/* Offset-to-written-lpos marks for written_offset: the pending ring gives it. */
};

TAILQ_HEAD(stor_log_list, stor_log);
TAILQ_HEAD(stor_seg_list, stor_segment);

/* A directory being removed (stor_engine_remove_dir). */
struct stor_removal {
	TAILQ_ENTRY(stor_removal) link;
	DIR *d;           /* entries still to queue; NULL once all were */
	unsigned pending; /* unlinks in flight */
	bool rmdir_queued;
	unsigned walks;   /* directory walks after the first (a name one missed) */
	void *held;       /* a name read but not queued yet (the backend was full) */
	struct stor_io_req dreq; /* the directory's own unlink */
	char path[];
};
TAILQ_HEAD(stor_removal_list, stor_removal);

struct stor_engine {
	struct stor_backend *be;
	struct stor_engine_opts opts;
	struct stor_chunk *chunks; /* chunk_count */
	uint8_t *chunk_mem;
	struct stor_chunk_list free;
	struct stor_chunk_list reclaim; /* sealed, written, unreferenced; LRU order */
	unsigned free_count, reclaim_count;
	struct stor_log_list dirty; /* logs with a write or sync to issue */
	/*
	 * Logs with a flush.ms deadline running (finite flush.ms, unsynced
	 * appends): the only ones the poll's timer check looks at, so 10,000
	 * idle or flush.ms-less logs cost it nothing. Left lazily once synced.
	 */
	struct stor_log_list timed;
	struct stor_log_list all;
	unsigned log_count;
	unsigned logs_failed; /* open logs that took an I/O error (log_fail) */
	uint64_t last_timer_ms; /* flush.ms timers last looked at */
	uint64_t steals, active_steals; /* stor_engine_stats() */
	struct stor_seg_list files;     /* segments with an open file, LRU first */
	unsigned open_files;
	unsigned file_limit; /* open files allowed (stor_engine_create), 0: no limit */
	uint64_t file_reopens, file_closes;
	uint64_t segments_recycled; /* new segments written into a spare file */
	uint64_t segments_rolled;   /* rolls (a new active segment) */
	uint64_t reads_cache, reads_file; /* stor_log_read()s served from the tail cache, and
	                                     read from a segment file */
	uint64_t flushes, flush_ns; /* fdatasyncs completed, and their time from queue to
	                               completion (a linked one's includes its write) */
	/*
	 * Opens that removed a clean-shutdown marker without syncing the
	 * directory: one syncfs(2) per file system (fs_fds) makes every removal
	 * so far durable before the first change to any of those logs
	 * (stor_engine_unlinks_settle()). A restart of 10,000 logs pays one
	 * journal commit instead of one per log.
	 */
	uint64_t unlinks, unlinks_synced;
#define STOR_ENGINE_MAX_FS 16
	int fs_fds[STOR_ENGINE_MAX_FS];
	dev_t fs_devs[STOR_ENGINE_MAX_FS];
	unsigned n_fs;
	struct stor_removal_list removals; /* stor_engine_remove_dir(), oldest first */
	unsigned n_removals;
	uint64_t removals_done;
	/* Failed preallocation steps (stor_prealloc_failed()): all, and when last logged. */
	uint64_t prealloc_failures, prealloc_failures_logged;
	uint64_t prealloc_warn_ms; /* stor_mono_ms() of the last warning, 0: none yet */
};

/* Engine services for the log (stor_engine.c). */
void stor_msg(struct stor_engine *e, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/*
 * A preallocation step of the log in @dir failed with @res (-errno): counted
 * (stor_engine_stats) and warned about at most once every
 * STOR_PREALLOC_WARN_MS per engine, the warning naming the failures not
 * logged since the last one (on a full disk every written partition fails
 * a step every few appends).
 */
#define STOR_PREALLOC_WARN_MS 60000u
void stor_prealloc_failed(struct stor_engine *e, const char *dir, int res);
struct stor_chunk *stor_chunk_get(struct stor_engine *e, struct stor_log *log);
void stor_chunk_put(struct stor_engine *e, struct stor_chunk *c);
void stor_chunk_maybe_reclaimable(struct stor_engine *e, struct stor_chunk *c);
void stor_chunk_unlru(struct stor_engine *e, struct stor_chunk *c);
void stor_engine_mark_dirty(struct stor_engine *e, struct stor_log *log);
/* The log's flush.ms deadline started (oldest_unsynced_ms set): watch it from the poll. */
void stor_engine_timer_arm(struct stor_engine *e, struct stor_log *log);
/*
 * Open segment files: at most file_limit (0: no limit; the smallest of
 * opts.max_open_files, opts.max_open_fds where files hold descriptors, and
 * the backend's file_slots less a margin). The file
 * of a segment no I/O or read holds is closed, least recently used first,
 * when the engine is over that (stor_engine_trim_files(), from the poll and
 * before an open); stor_seg_file() reopens it at its next use.
 */
void stor_engine_trim_files(struct stor_engine *e, unsigned room);
void stor_file_opened(struct stor_engine *e, struct stor_log *log, struct stor_segment *seg);
void stor_file_closed(struct stor_engine *e, struct stor_segment *seg);
/* The segment's file, opened again if it was closed; touched as recently used. */
int stor_seg_file(struct stor_log *log, struct stor_segment *seg);
/*
 * After unlinking @log's clean-shutdown marker at open: make the removal
 * durable later (0), or at once by fsync of the directory when the engine
 * tracks too many file systems. Before any change to a log whose removal is
 * not yet durable, stor_engine_unlinks_settle() (see stor_log_unlink_settled).
 */
void stor_engine_unlink_deferred(struct stor_engine *e, struct stor_log *log, const char *dir);
int stor_engine_unlinks_settle(struct stor_engine *e);
static inline int
stor_log_unlink_settled(struct stor_log *log)
{
	if (log->unlink_gen <= log->engine->unlinks_synced)
		return 0;
	return stor_engine_unlinks_settle(log->engine);
}
uint64_t stor_mono_ms(void);
/* CLOCK_MONOTONIC in ns (not the coarse clock: a flush's time). */
uint64_t stor_mono_ns(void);
/* A fdatasync queued at @t0_ns completed: the engine's flush counters. */
void stor_flush_done(struct stor_engine *e, uint64_t t0_ns);
int64_t stor_wall_ms(void);

/* Log services for the engine (stor_log.c). */
int stor_log_issue_io(struct stor_log *log);
/*
 * @c (reclaimable) is about to be taken from @log. When it is the log's
 * active chunk, keep a copy of the segment's partial last block, which the
 * next write of that block must carry. Returns 1 when the active chunk goes
 * (tail kept), 0 for any other chunk, -ENOMEM when the copy cannot be made
 * (the chunk must not be taken).
 */
int stor_log_chunk_evict(struct stor_log *log, struct stor_chunk *c);

/* Segment helpers shared with the compactor (stor_log.c). */
void stor_segment_path(char *buf, size_t size, const char *dir, int64_t base, const char *suffix);
int stor_index_write_files(const char *dir, const struct stor_segment *seg, const char *suffix);
int stor_seg_index_batch(struct stor_segment *seg, uint32_t interval, int64_t last_offset,
                         int64_t max_ts, uint64_t pos, uint32_t size, bool grow);
struct stor_segment *stor_seg_new(int64_t base);
void stor_seg_free(struct stor_log *log, struct stor_segment *seg);
int stor_seg_open_file(struct stor_log *log, struct stor_segment *seg, bool create);
/* Drop a segment no longer in log->segs: its cached chunks, then the struct once unreferenced. */
void stor_seg_retire(struct stor_log *log, struct stor_segment *seg);
/*
 * A segment file about to lose its name (unlink, rename over it) on disk: a
 * descriptor that keeps it past that and the handle's close (-1: none, a RAM
 * log or a backend that cannot release), for stor_seg_release_file().
 */
int stor_seg_keep_file(const struct stor_log *log, int64_t base);
/* Close what stor_seg_keep_file() kept off this thread: the file's blocks are freed there. */
void stor_seg_release_file(struct stor_log *log, int keep);

#endif /* SLP_STOR_INTERNAL_H */
