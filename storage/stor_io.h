/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The I/O backend interface: what the log needs from a block-ish device.
 *
 * The log never calls read/write/fsync itself. It fills struct stor_io_req
 * and queues it on the engine's backend; the backend gathers the requests of
 * a reactor tick and submits them in one go, and later reports completions
 * by calling req->done on the owner thread. The interface is kept small on
 * purpose (open/close/allocate/truncate of a file handle, queue a request,
 * submit, poll) so that an SPDK bdev or NVMe passthrough backend can be
 * added beside the io_uring one without touching stor_log.c: such a backend
 * maps a segment path to its own extent, and queue/submit/poll to its qpair.
 *
 * Threading: a backend instance belongs to one thread (the engine's owner);
 * no function here is thread safe, and none blocks except the *setup* ops
 * (open, close, allocate, truncate, register_buffers), which are called at
 * log open, segment roll and close only.
 */
#ifndef SLP_STOR_IO_H
#define SLP_STOR_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum stor_io_op {
	STOR_IO_WRITE = 1,
	STOR_IO_READ = 2,
	STOR_IO_FDATASYNC = 3,
	STOR_IO_FALLOCATE = 4, /* reserve [off, off + len) (mode 0: may grow the file) */
	/*
	 * Set the file's size to off (len 0). Off the owner's thread where the
	 * backend can (io_uring's FTRUNCATE, Linux 6.9: an io-wq worker), else
	 * run by submit() on it; completed by poll() either way.
	 */
	STOR_IO_TRUNCATE = 5,
	/*
	 * Remove the name buf (a NUL-terminated path, borrowed until done();
	 * file unused, -1), a directory when off is AT_REMOVEDIR. The last name
	 * of a closed file frees its blocks there (a synchronous discard on some
	 * file systems): an io-wq worker does it where the kernel's ring can
	 * (IORING_OP_UNLINKAT, Linux 5.11), submit() on the owner's thread else.
	 */
	STOR_IO_UNLINK = 6,
	/* fsync(2): a directory's names (STOR_OPEN_DIR handles), which fdatasync may skip. */
	STOR_IO_FSYNC = 7,
};

/* Open flags of stor_backend_ops.open. */
#define STOR_OPEN_CREATE 0x1 /* create if missing */
#define STOR_OPEN_DIRECT 0x2 /* bypass the page cache; the backend may refuse with -EINVAL */
#define STOR_OPEN_DIR 0x4    /* a directory (read-only), for STOR_IO_FSYNC of its names */

struct stor_io_req;
typedef void (*stor_io_done_fn)(struct stor_io_req *req, int res);

/*
 * One I/O. Owned by the submitter (embedded in a log or read context) from
 * queue until done() returns; the backend only borrows it. For STOR_IO_WRITE
 * and STOR_IO_READ with a direct handle, buf, len and off are multiples of
 * STOR_BLOCK_SIZE.
 */
struct stor_io_req {
	uint8_t op;           /* enum stor_io_op */
	uint8_t link_next;    /* 1: the next queued req runs only after this one succeeds */
	int16_t buf_index;    /* registered buffer index, -1: none */
	int file;             /* backend file handle */
	void *buf;            /* borrowed until done() */
	uint32_t len;         /* bytes */
	uint64_t off;         /* byte offset in the file */
	stor_io_done_fn done; /* called once, on the owner thread; res = bytes or -errno */
	void *ctx;            /* for the submitter */
};

struct stor_backend;

struct stor_backend_ops {
	const char *name;
	/* Open @path; *handle is a small integer (fixed-file slot). Returns 0 or -errno. */
	int (*open)(struct stor_backend *be, const char *path, unsigned flags, int *handle);
	int (*close)(struct stor_backend *be, int handle);
	/* Reserve @size bytes (file size becomes max(size, current)); zeros read back. */
	int (*allocate)(struct stor_backend *be, int handle, uint64_t size);
	int (*truncate)(struct stor_backend *be, int handle, uint64_t size);
	int (*size)(struct stor_backend *be, int handle, uint64_t *size);
	/* Synchronous read for setup paths (recovery, index rebuild). Returns bytes or -errno. */
	int64_t (*pread)(struct stor_backend *be, int handle, void *buf, size_t len, uint64_t off);
	/*
	 * Read-ahead for setup paths (a recovery's sequential scan): start
	 * reading [off, off + len) of @handle into @buf (block-aligned for a
	 * direct handle), split so that the device serves the pieces in
	 * parallel, and return; read_wait() waits for it and returns what
	 * pread() would (bytes, fewer only at the end of the file, or -errno).
	 * One at a time per backend, nothing else in between but CPU work on
	 * other memory: the scan validates one window while the next is read.
	 * Never touches the ring poll() reaps. 0 or -errno (-EBUSY: one is in
	 * flight). May be NULL (both): the caller uses pread().
	 */
	int (*read_start)(struct stor_backend *be, int handle, void *buf, size_t len, uint64_t off);
	int64_t (*read_wait)(struct stor_backend *be);
	/* Register long-lived I/O memory (all of it before the first I/O). */
	int (*register_buffers)(struct stor_backend *be, const struct iovec *iov, unsigned n);
	/*
	 * Queue @n requests for the next submit, all or none; each with
	 * link_next set runs only after the one before it succeeded.
	 * -EAGAIN: queue full, try after a poll.
	 */
	int (*queue)(struct stor_backend *be, struct stor_io_req **reqs, unsigned n);
	/*
	 * Submit everything queued: one system call for the ring at most, plus
	 * one pwrite/pread per request the backend runs inline (files on a
	 * RAM-backed file system, see stor_uring_opts.inline_io). Returns the
	 * count of requests handed to the ring or -errno.
	 */
	int (*submit)(struct stor_backend *be);
	/*
	 * Reap up to @max completions, calling req->done for each (requests run
	 * inline by submit complete here too, never inside queue or submit).
	 * Returns count.
	 */
	int (*poll)(struct stor_backend *be, unsigned max);
	/*
	 * Sleep until a completion is ready or @timeout_us passed (interrupt
	 * mode for a reactor with nothing else to do). Returns 0, -ETIME or -errno.
	 */
	int (*wait)(struct stor_backend *be, unsigned timeout_us);
	/* Requests queued or in flight. */
	unsigned (*inflight)(struct stor_backend *be);
	/*
	 * Close @fd off the caller's thread where the backend can, at once where
	 * it cannot: the last reference to a deleted file frees its blocks in that
	 * close (a synchronous discard on some file systems). May be NULL.
	 */
	void (*release_fd)(struct stor_backend *be, int fd);
	void (*destroy)(struct stor_backend *be);
};

struct stor_backend {
	const struct stor_backend_ops *ops;
	unsigned file_slots; /* files it can hold open at once, 0: no bound of its own */
	int no_fds;          /* 1: an open file holds no descriptor of the process (the
	                        engine's descriptor budget, max_open_fds, does not apply) */
	unsigned io_workers; /* kernel threads that may run blocking I/O at once (io_uring's
	                        bounded io-wq workers), 0: not known */
	int io_workers_placed; /* 1: those threads run on the CPUs io_workers_cpus named,
	                          0: where the owner thread may (its core, for a reactor) */
	unsigned inline_files; /* open files whose I/O runs inline on the owner thread */
	uint64_t inline_ios;   /* requests completed that way, since creation */
	uint64_t inline_mapped_writes; /* of them, writes copied through a mapping of the
	                                  file, no system call (inline_map_bytes) */
	uint64_t writes;       /* STOR_IO_WRITE requests queued, since creation */
	uint64_t write_bytes;  /* their bytes */
	uint64_t async_closes; /* release_fd closes handed off the caller's thread */
	uint64_t async_truncates; /* STOR_IO_TRUNCATE requests run off the owner's thread */
	uint64_t async_unlinks;   /* STOR_IO_UNLINK requests run off the owner's thread */
};

/*
 * Which files the io_uring backend serves without the ring (storage.io.inline).
 * io_uring has no non-blocking buffered write for tmpfs/ramfs (no
 * FOP_BUFFER_WASYNC; their O_DIRECT is the same page-cache copy): every
 * write would go to an io-wq worker thread, which must be scheduled (on the
 * reactor's own CPU: it inherits the affinity), copy, and post a CQE the
 * reactor sees a tick later. A plain pwrite on the owner thread is the same
 * copy without the hand-off (docs/storage.md "How writes complete").
 */
enum stor_inline_mode {
	STOR_INLINE_AUTO = 0, /* files on tmpfs/ramfs: pwrite/pread on the owner thread,
	                         fdatasync completes at once (nothing to sync) */
	STOR_INLINE_OFF = 1,  /* every request through io_uring */
};

struct stor_uring_opts {
	unsigned queue_depth; /* SQ entries; CQ is twice that */
	unsigned max_files;   /* fixed-file slots; 0: stor_uring_auto_max_files() */
	int sqpoll;           /* non-zero: IORING_SETUP_SQPOLL (kernel thread polls the SQ) */
	unsigned sqpoll_idle_ms;
	unsigned io_workers;  /* raise the ring's bounded io-wq workers to at least this
	                         (0: the kernel's default, 4 x CPUs at most the SQ size) */
	const char *io_workers_cpus; /* CPU list ("2-3,6") the ring's io-wq workers may run on
	                                (IORING_REGISTER_IOWQ_AFF); NULL or "": the creating
	                                thread's affinity, which they inherit */
	enum stor_inline_mode inline_io; /* storage.io.inline (default auto) */
	unsigned inline_max_files; /* files served inline at once, each holding a descriptor
	                              (0: half the RLIMIT_NOFILE soft limit); past it new
	                              files go through the ring */
	unsigned inline_map_bytes; /* inline writes of at most this many bytes are copied
	                              into a shared mapping of the file instead of a pwrite
	                              (0: never; storage.io.inline.map.bytes) */
};

/**
 * Create the io_uring backend. Fixed files and registered buffers are used
 * when the kernel allows them (registration failures, e.g. RLIMIT_MEMLOCK,
 * fall back to plain fds/buffers and are reported through @why). With fixed
 * files an open file holds a slot of the ring's table and no descriptor
 * (no_fds): synchronous operations reopen its path while they run.
 * io_workers raises the ring's bounded io-wq worker limit (a refusal is
 * reported through @why; be->io_workers has the limit in force);
 * io_workers_cpus places those workers (a refusal is reported through
 * @why; an unparsable list fails with EINVAL).
 *
 * With inline_io = STOR_INLINE_AUTO, a file opened on tmpfs or ramfs keeps
 * a descriptor and its writes and reads run as plain pwrite/pread in
 * submit() (fdatasync as no system call at all), completed by the next
 * poll(); fallocate still goes through the ring. A chain that mixes such
 * requests with ring ones goes through the ring whole. Inline writes of at
 * most inline_map_bytes are a memcpy into a MAP_SHARED window of the file,
 * whose pages are reserved first (fallocate, in 64 KiB steps past the data:
 * the file's size runs ahead of the data as with log.preallocate, and a
 * full file system fails the fallocate, never the copy). The file must not
 * be shrunk by another process meanwhile (a copy into a page cut off would
 * raise SIGBUS); this backend's own truncate is accounted for.
 *
 * @param why  if not NULL, receives a static note of the fallbacks taken ("" if none).
 * @return the backend, or NULL with errno set.
 */
struct stor_backend *stor_uring_create(const struct stor_uring_opts *opts, const char **why);

#define STOR_URING_MAX_FILES 262144u /* largest automatic fixed-file table */

/**
 * Parse a CPU list as in cpuset(7) ("0-3,8,10-11"; blanks around the
 * parts allowed) into a bit mask of @mask_words 64-bit words (CPU n is bit
 * n % 64 of word n / 64). The caller owns @mask.
 *
 * @return the number of CPUs in the list, or -EINVAL (empty, malformed, a
 * range backwards, a CPU past the mask).
 */
int stor_cpu_list_parse(const char *list, uint64_t *mask, unsigned mask_words);
#define STOR_CPU_MASK_WORDS 16u /* 1,024 CPUs: glibc's CPU_SETSIZE */

/**
 * The fixed-file table size used when none is configured: the process's
 * RLIMIT_NOFILE soft limit (the kernel refuses a larger table), at least 64
 * and at most STOR_URING_MAX_FILES. Every open segment holds one slot (and
 * no descriptor), so a broker raises its limit before it creates the engine.
 */
unsigned stor_uring_auto_max_files(void);

#endif /* SLP_STOR_IO_H */
