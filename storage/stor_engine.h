/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The storage engine: one per storage-writer reactor (lcore).
 *
 * An engine owns an I/O backend (io_uring by default, see stor_io.h), the
 * pool of tail-cache chunks that every log it serves appends into, and the
 * list of logs with data to write. The owner thread calls
 * stor_engine_poll() once per reactor tick: it reaps completions (invoking
 * append and read callbacks on that same thread), then turns the appends of
 * every partition gathered since the last tick into one write per log (plus
 * a linked fdatasync where a durable append or the flush policy asks for
 * one) and hands them all to the kernel with a single submission.
 *
 * Nothing here takes a lock or sleeps, and the chunk pool is sized by the
 * options at stor_engine_create(); after it only small per-log buffers are
 * allocated (the copy of a partial last block kept while a log has no chunk,
 * index and pending-append arrays growing with use). Storage does not depend on DPDK;
 * the dataplane passes rte_malloc through the allocator hook so chunks live
 * in hugepage memory, and tests use the default aligned_alloc.
 */
#ifndef SLP_STOR_ENGINE_H
#define SLP_STOR_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stor_io.h"

enum stor_direct_mode {
	STOR_DIRECT_AUTO = 0, /* O_DIRECT where the file system takes it, else buffered (logged) */
	STOR_DIRECT_ON = 1,   /* O_DIRECT or fail the open */
	STOR_DIRECT_OFF = 2,  /* buffered I/O through the page cache */
};

enum stor_log_level {
	STOR_LOG_ERR = 3,
	STOR_LOG_WARN = 4,
	STOR_LOG_INFO = 6,
	STOR_LOG_DEBUG = 7,
};

typedef void (*stor_log_fn)(void *ctx, int level, const char *msg);
typedef void *(*stor_mem_alloc_fn)(void *ctx, size_t size, size_t align);
typedef void (*stor_mem_free_fn)(void *ctx, void *ptr);

struct stor_engine_opts {
	unsigned queue_depth;         /* io_uring SQ entries (default 256) */
	unsigned max_files;           /* fixed-file slots, one per open segment (default 0:
	                                 the RLIMIT_NOFILE soft limit, see stor_io.h) */
	int sqpoll;                   /* storage.io.sqpoll: IORING_SETUP_SQPOLL */
	enum stor_direct_mode direct; /* storage.direct.io */
	size_t chunk_bytes;           /* tail-cache chunk, multiple of 4 KiB; the largest batch a
	                                 log takes is chunk_bytes - 4 KiB (default 1 MiB + 8 KiB,
	                                 so Kafka's default message.max.bytes fits) */
	unsigned max_open_files;      /* segment files kept open (0: no limit); past it the
	                                 least recently used idle ones are closed and
	                                 reopened at their next use */
	unsigned max_open_fds;        /* descriptors segment files may hold (0: no limit):
	                                 a limit like max_open_files, but only for a
	                                 backend whose open files hold descriptors (not
	                                 io_uring with fixed files, see stor_io.h) */
	unsigned io_workers;          /* storage.io.workers: kernel threads that may run
	                                 blocking writes at once (io_uring's bounded io-wq
	                                 workers) raised to at least this (default 64; 0:
	                                 the kernel's 4 x CPUs). A write that grows its
	                                 file holds one until the device completes it */
	char io_workers_cpus[128];    /* storage.io.workers.cpus: CPU list for io_uring's io-wq
	                                 workers (IORING_REGISTER_IOWQ_AFF), "" (default):
	                                 they inherit the owner thread's affinity, i.e. run
	                                 on the reactor's core */
	enum stor_inline_mode inline_io; /* storage.io.inline: auto (default) serves files on
	                                 tmpfs/ramfs with pwrite/pread on the owner thread
	                                 instead of io_uring's worker threads; false: the
	                                 ring for everything (stor_io.h) */
	unsigned inline_map_bytes;    /* storage.io.inline.map.bytes: inline writes of at
	                                 most this many bytes are a copy into a mapping of
	                                 the file, no pwrite (default 1024; 0: off) */
	unsigned chunk_count;         /* chunks in the pool (default 64): sized for
	                                 throughput, not for the number of logs (an idle
	                                 log's chunk is taken back, see stor_engine.c) */
	stor_mem_alloc_fn mem_alloc;  /* chunk memory; default aligned_alloc */
	stor_mem_free_fn mem_free;
	void *mem_ctx;
	stor_log_fn log_fn; /* default: stderr for WARN and worse */
	void *log_ctx;
	struct stor_backend *backend; /* NULL: io_uring; else taken over by the engine */
};

struct stor_engine;

/** Defaults as documented in struct stor_engine_opts. */
void stor_engine_opts_init(struct stor_engine_opts *opts);

/**
 * Set an engine option from a server.properties key:
 *   storage.direct.io          auto | true | false
 *   storage.io.inline          auto | false
 *   storage.io.inline.map.bytes  inline writes copied through a mapping, at most (0: off)
 *   storage.io.sqpoll          true | false
 *   storage.io.queue.depth     SQ entries
 *   storage.io.max.files       fixed-file slots (0: from RLIMIT_NOFILE)
 *   storage.max.open.files     segment files kept open (0: no limit)
 *   storage.io.workers         blocking-write threads at least (0: kernel default)
 *   storage.io.workers.cpus    CPU list for those threads ("": the owner's CPUs)
 *   storage.cache.chunk.bytes  tail-cache chunk size (multiple of 4096)
 *   storage.cache.chunks       chunks in the pool
 *
 * @return 0; -ENOENT for a key that is not an engine option; -EINVAL.
 */
int stor_engine_opts_set(struct stor_engine_opts *opts, const char *key, const char *value);

/**
 * Create an engine on the calling thread, which becomes its owner.
 * Allocates and registers the chunk pool.
 *
 * @return the engine, or NULL with errno set.
 */
struct stor_engine *stor_engine_create(const struct stor_engine_opts *opts);

/** Destroy; every log of the engine must be closed first. */
void stor_engine_destroy(struct stor_engine *engine);

/**
 * One reactor tick: reap completions (callbacks run here), then gather the
 * writes and syncs of every log with new data and submit them at once.
 * Never blocks. Owner thread only.
 *
 * @return the number of completions and submissions (0: idle).
 */
int stor_engine_poll(struct stor_engine *engine);

/**
 * Poll until no I/O is queued or in flight. For shutdown, setup and tests
 * (spins; never call it from a loaded reactor).
 *
 * @return 0.
 */
int stor_engine_drain(struct stor_engine *engine);

/**
 * Interrupt mode: sleep until an I/O completes or @timeout_us passed. For a
 * reactor whose last stor_engine_poll() found nothing to do and that has no
 * other pollers (a dedicated storage lcore keeps spinning instead). Call
 * stor_engine_poll() afterwards to run the completions.
 *
 * @return 0 when a completion is ready, -ETIME otherwise.
 */
int stor_engine_wait(struct stor_engine *engine, unsigned timeout_us);

/**
 * Remove the directory @path and the files in it, closed ones (a deleted
 * topic's partition, renamed aside first by the caller), a step at a time
 * from stor_engine_poll(): each name is unlinked through the backend (an
 * io-wq worker, where a large file's blocks are freed), at most
 * STOR_REMOVE_INFLIGHT at once, the directory last. An entry that is itself
 * a directory is removed in place on the calling thread. What a shutdown
 * leaves is the caller's to remove at its next start. Returns 0, -ENOMEM, or
 * -errno of opendir (nothing queued).
 */
int stor_engine_remove_dir(struct stor_engine *engine, const char *path);
#define STOR_REMOVE_INFLIGHT 16u

/** Remove @path and what is under it, in place (setup paths). 0 or -errno. */
int stor_remove_tree(const char *path);

/** The backend's name ("io_uring") for log lines and benchmarks. */
const char *stor_engine_backend_name(const struct stor_engine *engine);

/** Chunks of the pool not held by any log (free or reclaimable). */
unsigned stor_engine_chunks_available(const struct stor_engine *engine);

/**
 * Whether the backend's blocking-I/O threads (io_uring's io-wq workers) run
 * on the CPUs storage.io.workers.cpus named. When false they run where the
 * engine's owner thread may, i.e. on a reactor's own core: a write io_uring
 * hands to a worker (every direct write into a preallocated extent) waits
 * until the reactor leaves the CPU (dp_broker_idle_wait).
 */
bool stor_engine_io_workers_placed(const struct stor_engine *engine);

struct stor_engine_stats {
	unsigned chunks;         /* in the pool */
	unsigned chunks_free;    /* held by no log */
	unsigned chunks_reclaim; /* held as cache only: written, unreferenced, may be taken */
	uint64_t steals;         /* chunks taken from one log for another (LRU) */
	uint64_t active_steals;  /* of them, a log's active chunk (its partial block kept) */
	unsigned logs;           /* open logs */
	unsigned logs_failed;    /* of them, failed by an I/O error (stor_log_failed) */
	unsigned open_files;     /* segment files open now */
	uint64_t file_reopens;   /* segment files opened again after being closed for the limit */
	uint64_t file_closes;    /* closed for the limit */
	uint64_t segments_recycled; /* new segments written into a spare file
	                               (storage.segment.recycle) */
	uint64_t segments_rolled;   /* rolls: a new active segment */
	uint64_t reads_cache;       /* reads (stor_log_read) served from the tail cache */
	uint64_t reads_file;        /* reads that went to a segment file (not cached) */
	uint64_t flushes;           /* fdatasyncs completed (a rolled segment's, durable
	                               appends', flush.ms/flush.messages) */
	uint64_t flush_ns;          /* their time from queue to completion (a sync linked to
	                               a write includes the write) */
	unsigned open_files_max; /* the limit in force (max_open_files, max_open_fds, the
	                            backend's table), 0: none */
	uint64_t unlinks_unsynced; /* opens whose clean-shutdown marker invalidation awaits the
	                              syncfs made before the first change to such a log */
	unsigned io_workers;       /* the backend's blocking-I/O thread limit in force
	                              (io_uring's bounded io-wq workers), 0: not known */
	uint64_t prealloc_failures; /* preallocation steps that failed (ENOSPC...): logged
	                               once a minute at most */
	unsigned inline_files;      /* open segment files served inline (storage.io.inline) */
	uint64_t inline_ios;        /* writes, reads and syncs served inline so far */
	uint64_t inline_mapped_writes; /* of those, writes copied through a file mapping */
	uint64_t writes;            /* writes queued to the backend so far */
	uint64_t write_bytes;       /* their bytes (block-aligned: padding and rewritten
	                               partial blocks included) */
	uint64_t async_closes;      /* deleted or replaced segment files closed off the
	                               owner's thread (their blocks freed there) */
	uint64_t async_truncates;   /* rolled segments trimmed off the owner's thread
	                               (STOR_IO_TRUNCATE on the ring, Linux 6.9) */
	uint64_t async_unlinks;     /* files and directories of removed directories
	                               unlinked off the owner's thread (IORING_OP_UNLINKAT) */
	unsigned removals;          /* directories being removed now */
	uint64_t removals_done;     /* directories removed so far */
};

/**
 * 1 when the engine's open segment files hold file descriptors of the
 * process (count against RLIMIT_NOFILE), 0 when they do not (io_uring with
 * fixed files: the ring's table holds them).
 */
int stor_engine_files_hold_fds(const struct stor_engine *engine);

/** Pool and log counts for metrics, benchmarks and tests. */
void stor_engine_stats(const struct stor_engine *engine, struct stor_engine_stats *out);

#endif /* SLP_STOR_ENGINE_H */
