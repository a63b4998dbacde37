/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The io_uring backend of the storage engine (stor_io.h).
 *
 * One ring per engine (per reactor thread). Requests queued during a tick
 * become SQEs right away; stor_uring submit() hands them all to the kernel
 * with one io_uring_submit() (none at all under SQPOLL while the kernel
 * thread is awake), and poll() reaps CQEs without waiting. Files are fixed
 * (IOSQE_FIXED_FILE on a sparse table) and the engine's tail-cache chunks
 * are registered buffers (write_fixed/read_fixed), which saves the kernel
 * an fget and a page pin per I/O; both fall back to plain fds and buffers
 * when registration is refused.
 *
 * With fixed files an open segment holds no file descriptor: its fd is
 * closed once the ring's table holds the file, so RLIMIT_NOFILE bounds the
 * sockets and the table (sized from that limit at creation) bounds the
 * segment files, each on its own. 10,000 connections and 10,000 partitions
 * fit under a limit of 20,000; with descriptors kept, segment files had to
 * be closed and reopened on every append of a cyclic write pattern (20% of
 * the reactor). The few synchronous setup operations (size, pread,
 * truncate, allocate) open the path again for their duration.
 *
 * Writes that grow a file (log.preallocate=false) or fill a hole are not
 * done inline: ext4 answers the non-blocking attempt with EAGAIN, io_uring
 * hands the write to an io-wq worker thread, and the worker waits for the
 * device before it takes the next one (ext4 completes an extending direct
 * write synchronously). The kernel allows 4 x CPUs such workers (8 on a
 * 2-core machine), so with one 16 KiB write per partition at 10,000
 * partitions at most 8 writes were at the device at once, whatever the
 * queue depth: that, not the reactor's CPU, bounded wide produce (measured:
 * docs/benchmarks.md "Scale"). uring_raise_workers() lifts the bound.
 *
 * tmpfs and ramfs have no non-blocking buffered write at all (io_uring's
 * NOWAIT attempt needs FOP_BUFFER_WASYNC, which they lack, and their
 * O_DIRECT is the same page-cache copy), so every write to them went to an
 * io-wq worker on the reactor's CPU: the copy plus a thread hand-off and a
 * wake-up per write, on the acks=1 path. Files there are served inline
 * instead (storage.io.inline=auto): submit() runs their writes and reads as
 * pwrite/pread on the owner thread, in queue order, and the next poll()
 * completes them; their fdatasync has nothing to do and costs no system
 * call. Such a file keeps its descriptor (also with fixed files), at most
 * inline_max at once; later ones go through the ring.
 *
 * A small inline write (inline_map_bytes, 1 KiB by default) is a memcpy
 * into a shared mapping of the file, a window of URING_MAP_WINDOW bytes (1 MiB)
 * moved along with the writes: the same page-cache copy without the system
 * call, which cost 3-4x the copy of a 170-byte batch (one 100-byte record
 * per Produce: a quarter of the broker's time over memif went to pwrite).
 * Larger writes stay pwrite, faster per byte than first touches of mapped
 * pages on this VM (docs/storage.md "How writes complete"). The pages are
 * reserved before the copy by fallocate, URING_MAP_STEP at a time past the
 * data: a full tmpfs fails the fallocate (the write then takes the pwrite
 * path and gets its ENOSPC) instead of raising SIGBUS in the copy, and the
 * file's size runs ahead of its data by less than a step, as with
 * log.preallocate (recovery stops at the zeros, roll and close trim them).
 */
#include "stor_io.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

/* A request served inline: queued until submit() runs it, completed by poll(). */
struct uring_inl {
	struct stor_io_req *req;
	int res; /* bytes or -errno, set by submit() */
};

struct uring_drain {
	int fd;
	uint64_t size;
};

/* An inline file's mapping for small writes (see the top of the file). */
struct uring_map {
	uint8_t *base; /* URING_MAP_WINDOW bytes of the file from off, or NULL */
	uint64_t off;
	uint64_t lo, hi; /* [lo, hi): pages reserved by fallocate, inside the file's size */
};

/*
 * IORING_OP_FTRUNCATE (Linux 6.9), missing from Debian 12's headers: the
 * kernel's number, used only where the ring's probe says it exists.
 */
#define URING_OP_FTRUNCATE 55

#define URING_MAP_WINDOW (1ull << 20) /* its munmap clears the pages written through it */
#define URING_MAP_STEP (64ull << 10)
#define URING_AHEAD_PIECE (1u << 20) /* read_start(): a request each, all in flight */
#define URING_AHEAD_PIECES 16         /* read_start()'s length in pieces at most */
#define URING_AHEAD_NONE INT32_MIN     /* a piece not completed (not submitted) */

struct stor_uring {
	struct stor_backend be; /* first: cast target */
	struct io_uring ring;
	int *fds;      /* handle -> fd, -1 when free or held by the ring only */
	char **paths;  /* handle -> path, NULL when free */
	int *oflags;   /* handle -> open(2) flags less O_CREAT (setup operations reopen) */
	unsigned max_files;
	unsigned next_slot; /* where the search for a free slot starts */
	unsigned cq_entries;
	unsigned inflight; /* queued + submitted, not reaped */
	int fixed_files;   /* 1: the files table is registered (and no fd is kept open but
	                      for inline files) */
	int fixed_bufs;    /* 1: buffers registered */
	int ring_truncate; /* 1: the kernel has IORING_OP_FTRUNCATE (STOR_IO_TRUNCATE on the ring) */
	int ring_unlink;   /* 1: the kernel has IORING_OP_UNLINKAT (STOR_IO_UNLINK on the ring) */
	uint8_t *inl;      /* handle -> 1: its writes, reads and syncs run inline */
	struct uring_map *maps; /* handle -> its mapping, for inline files */
	enum stor_inline_mode inline_mode;
	unsigned inline_max; /* inline files open at once at most (each holds a descriptor) */
	unsigned map_bytes;  /* inline writes of at most this many bytes go through maps */
	/*
	 * Inline requests, a ring of cq_entries (inflight bounds it): [iq_head,
	 * iq_done) ran and wait for poll(), [iq_done, iq_tail) wait for submit().
	 * Free-running counters, indexed modulo iq_cap.
	 */
	struct uring_inl *iq;
	unsigned iq_cap, iq_head, iq_done, iq_tail;
	/*
	 * Deleted inline files (tmpfs) still to free: their pages go when the
	 * last descriptor closes, about 11 ms per 128 MiB of 4 KiB pages, so
	 * retention deleting 8 segments at once froze the reactor for 90 ms
	 * (the e2e row's p99). close() puts such a file here instead; poll()
	 * truncates one of them by URING_DRAIN_STEP at most every
	 * URING_DRAIN_GAP_NS, then closes it: spread, not just cut in pieces
	 * (one step per tick still took 70% of a busy reactor for 100 ms).
	 */
	struct uring_drain *drain;
	unsigned n_drain, drain_cap;
	uint64_t drain_next_ns; /* CLOCK_MONOTONIC: the next step not before */
	/*
	 * read_start()/read_wait(): a small ring of their own, made at first
	 * use, so that a setup path's reads never meet the completions poll()
	 * reaps. The read is cut in URING_AHEAD_PIECE pieces, all in flight at
	 * once: a recovery scan's one synchronous 4 MiB pread at a time moved
	 * 640-760 MB/s from a disk fio reads at 2.7 GB/s with 8 x 1 MiB in flight
	 * (the scan's CPU work was 12% of the time; docs/benchmarks.md "Session 23").
	 */
	struct io_uring ahead_ring;
	int ahead_ring_made;   /* 1: ahead_ring exists (exited in destroy) */
	int ahead_ring_broken; /* 1: refused or failed once: reads run as pread() */
	int ahead_busy;
	int ahead_fd, ahead_tmp; /* the read's descriptor; tmp: opened for it, closed at wait */
	uint8_t *ahead_buf;
	size_t ahead_len;
	uint64_t ahead_off;
	unsigned ahead_pieces, ahead_submitted;
	int64_t ahead_now; /* >= 0 or -errno: the read ran in read_start() (no ring, inline file) */
	int32_t ahead_res[URING_AHEAD_PIECES]; /* per piece: bytes or -errno; URING_AHEAD_NONE */
};

/* Bytes a deleted inline file shrinks by per step: 2 MiB, about 0.2 ms of page freeing. */
#define URING_DRAIN_STEP (2ull << 20)
/* At most one step per millisecond: about a fifth of the reactor while deleting. */
#define URING_DRAIN_GAP_NS 1000000ull

static struct stor_uring *
to_uring(struct stor_backend *be)
{
	return (struct stor_uring *)be;
}

/* tmpfs or ramfs: the page cache is the storage, nothing below it to wait for. */
static bool
ram_backed(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) != 0)
		return false;
	return sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC;
}

static int
uring_open(struct stor_backend *be, const char *path, unsigned flags, int *handle)
{
	struct stor_uring *u = to_uring(be);
	int oflags = O_RDWR | O_CLOEXEC;
	unsigned slot = 0;
	char *copy;
	bool inl;
	int fd;

	/* From the last slot taken: opening 10,000 partitions stays linear. */
	for (unsigned i = 0; i < u->max_files; i++) {
		slot = (u->next_slot + i) % u->max_files;
		if (u->paths[slot] == NULL)
			break;
	}
	if (u->paths[slot] != NULL)
		return -EMFILE;
	if (flags & STOR_OPEN_DIRECT)
		oflags |= O_DIRECT;
	if (flags & STOR_OPEN_DIR)
		oflags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	copy = strdup(path);
	if (copy == NULL)
		return -ENOMEM;
	fd = open(path, oflags | ((flags & STOR_OPEN_CREATE) ? O_CREAT : 0), 0644);
	if (fd < 0) {
		free(copy);
		return -errno;
	}
	inl = u->inline_mode == STOR_INLINE_AUTO && u->be.inline_files < u->inline_max &&
	      !(flags & STOR_OPEN_DIR) && ram_backed(fd);
	if (u->fixed_files) {
		int rc = io_uring_register_files_update(&u->ring, slot, &fd, 1);
		/* The table holds its own reference; inline I/O needs the descriptor. */
		if (rc < 0 || !inl) {
			close(fd);
			fd = -1;
		}
		if (rc < 0) {
			free(copy);
			return rc;
		}
	}
	u->inl[slot] = inl;
	u->be.inline_files += inl;
	u->fds[slot] = fd;
	u->paths[slot] = copy;
	u->oflags[slot] = oflags;
	u->next_slot = (slot + 1) % u->max_files;
	*handle = (int)slot;
	return 0;
}

/*
 * A deleted (unlinked) file of more than a step: keep @fd for drain_step().
 * Only a file without a name is shrunk: nobody can see it any more.
 */
static bool
drain_later(struct stor_uring *u, int fd)
{
	struct stat st;

	if (fstat(fd, &st) != 0 || st.st_nlink != 0 || (uint64_t)st.st_size <= URING_DRAIN_STEP)
		return false;
	if (u->n_drain == u->drain_cap) {
		unsigned cap = u->drain_cap ? 2 * u->drain_cap : 16;
		struct uring_drain *d = realloc(u->drain, cap * sizeof(*d));

		if (d == NULL)
			return false; /* closed at once, as before */
		u->drain = d;
		u->drain_cap = cap;
	}
	u->drain[u->n_drain++] = (struct uring_drain){.fd = fd, .size = (uint64_t)st.st_size};
	return true;
}

/* One step of freeing the oldest deleted file (drain_later). */
static void
drain_step(struct stor_uring *u)
{
	struct uring_drain *d = &u->drain[0];

	if (d->size > URING_DRAIN_STEP && ftruncate(d->fd, (off_t)(d->size - URING_DRAIN_STEP)) == 0) {
		d->size -= URING_DRAIN_STEP;
		return;
	}
	close(d->fd);
	memmove(&u->drain[0], &u->drain[1], (u->n_drain - 1) * sizeof(*d));
	u->n_drain--;
}

/* Unmap @handle's window and forget its reserved range. */
static void
map_drop(struct stor_uring *u, int handle)
{
	struct uring_map *m = &u->maps[handle];

	if (m->base != NULL)
		munmap(m->base, URING_MAP_WINDOW);
	*m = (struct uring_map){0};
}

static int
uring_close(struct stor_backend *be, int handle)
{
	struct stor_uring *u = to_uring(be);
	int rc = 0;

	if (handle < 0 || (unsigned)handle >= u->max_files || u->paths[handle] == NULL)
		return -EBADF;
	if (u->fixed_files) {
		int none = -1;

		/* In-flight requests keep the file until they complete. */
		rc = io_uring_register_files_update(&u->ring, (unsigned)handle, &none, 1);
		rc = rc < 0 ? rc : 0;
	}
	map_drop(u, handle);
	if (u->fds[handle] >= 0 && !drain_later(u, u->fds[handle]) && close(u->fds[handle]) != 0 &&
	    rc == 0)
		rc = -errno;
	u->fds[handle] = -1;
	u->be.inline_files -= u->inl[handle];
	u->inl[handle] = 0;
	free(u->paths[handle]);
	u->paths[handle] = NULL;
	return rc;
}

/*
 * A descriptor for a synchronous operation on @handle: the kept one, or
 * the path opened again (*@tmp set; close it with setup_fd_done()).
 */
static int
setup_fd(struct stor_uring *u, int handle, int *tmp)
{
	*tmp = -1;
	if (handle < 0 || (unsigned)handle >= u->max_files || u->paths[handle] == NULL)
		return -EBADF;
	if (u->fds[handle] >= 0)
		return u->fds[handle];
	*tmp = open(u->paths[handle], u->oflags[handle]);
	return *tmp >= 0 ? *tmp : -errno;
}

static void
setup_fd_done(int tmp)
{
	if (tmp >= 0)
		close(tmp);
}

static int
uring_allocate(struct stor_backend *be, int handle, uint64_t size)
{
	int tmp, fd = setup_fd(to_uring(be), handle, &tmp);
	int rc;

	if (fd < 0)
		return fd;
	/* posix_fallocate emulates with writes where fallocate is missing; fine at setup. */
	rc = posix_fallocate(fd, 0, (off_t)size);
	setup_fd_done(tmp);
	return -rc;
}

/* Pages past a new size are gone: an inline file's mapping reserves them again. */
static void
map_cut(struct stor_uring *u, int handle, uint64_t size)
{
	if (handle >= 0 && (unsigned)handle < u->max_files) {
		struct uring_map *m = &u->maps[handle];

		if (m->hi > size)
			m->hi = m->lo > size ? m->lo : size;
	}
}

static int
uring_truncate(struct stor_backend *be, int handle, uint64_t size)
{
	struct stor_uring *u = to_uring(be);
	int tmp, fd, rc;

	map_cut(u, handle, size);
	/* By path where no descriptor is kept: one system call, not three. */
	if (handle >= 0 && (unsigned)handle < u->max_files && u->paths[handle] != NULL &&
	    u->fds[handle] < 0)
		return truncate(u->paths[handle], (off_t)size) == 0 ? 0 : -errno;
	fd = setup_fd(u, handle, &tmp);
	if (fd < 0)
		return fd;
	rc = ftruncate(fd, (off_t)size) == 0 ? 0 : -errno;
	setup_fd_done(tmp);
	return rc;
}

static int
uring_size(struct stor_backend *be, int handle, uint64_t *size)
{
	struct stor_uring *u = to_uring(be);
	struct stat st;
	int tmp, fd, rc = 0;

	if (handle >= 0 && (unsigned)handle < u->max_files && u->paths[handle] != NULL &&
	    u->fds[handle] < 0) {
		if (stat(u->paths[handle], &st) != 0)
			return -errno;
		*size = (uint64_t)st.st_size;
		return 0;
	}
	fd = setup_fd(u, handle, &tmp);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) != 0)
		rc = -errno;
	else
		*size = (uint64_t)st.st_size;
	setup_fd_done(tmp);
	return rc;
}

/* pread(2) until @len bytes or the end of the file: bytes or -errno. */
static int64_t
pread_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (int64_t)done;
}

static int64_t
uring_pread(struct stor_backend *be, int handle, void *buf, size_t len, uint64_t off)
{
	int tmp, fd = setup_fd(to_uring(be), handle, &tmp);
	int64_t n;

	if (fd < 0)
		return fd;
	n = pread_full(fd, buf, len, off);
	setup_fd_done(tmp);
	return n;
}

/* The read-ahead ring, made at first use; -1 where it cannot be (reads run as pread). */
static int
ahead_ring(struct stor_uring *u)
{
	if (u->ahead_ring_broken)
		return -1;
	if (!u->ahead_ring_made) {
		if (io_uring_queue_init(URING_AHEAD_PIECES, &u->ahead_ring, 0) != 0) {
			u->ahead_ring_broken = 1;
			return -1;
		}
		u->ahead_ring_made = 1;
	}
	return 0;
}

static int
uring_read_start(struct stor_backend *be, int handle, void *buf, size_t len, uint64_t off)
{
	struct stor_uring *u = to_uring(be);
	unsigned n = (unsigned)((len + URING_AHEAD_PIECE - 1) / URING_AHEAD_PIECE);
	int fd, rc;

	if (u->ahead_busy)
		return -EBUSY;
	fd = setup_fd(u, handle, &u->ahead_tmp);
	if (fd < 0)
		return fd;
	u->ahead_busy = 1;
	u->ahead_fd = fd;
	u->ahead_buf = buf;
	u->ahead_len = len;
	u->ahead_off = off;
	u->ahead_pieces = 0;
	u->ahead_submitted = 0;
	if (u->inl[handle] || n == 0 || n > URING_AHEAD_PIECES || ahead_ring(u) != 0) {
		/* A RAM-backed file (no device to overlap with), or no ring: read it now. */
		u->ahead_now = pread_full(fd, buf, len, off);
		return 0;
	}
	for (unsigned k = 0; k < n; k++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ahead_ring);
		size_t at = (size_t)k * URING_AHEAD_PIECE;
		unsigned plen = len - at < URING_AHEAD_PIECE ? (unsigned)(len - at) : URING_AHEAD_PIECE;

		/* The ring holds URING_AHEAD_PIECES entries and nothing else is queued on it. */
		io_uring_prep_read(sqe, fd, u->ahead_buf + at, plen, off + at);
		io_uring_sqe_set_data64(sqe, k);
		u->ahead_res[k] = URING_AHEAD_NONE;
	}
	u->ahead_pieces = n;
	do
		rc = io_uring_submit(&u->ahead_ring);
	while (rc == -EINTR);
	if (rc < (int)n) {
		/*
		 * Entries the kernel did not take stay in the ring's queue, and any
		 * later io_uring_enter() with entries to submit would start them
		 * into memory no longer lent: the ring is not used again (only
		 * waited on, which submits nothing); read_wait() reads those pieces
		 * with pread().
		 */
		u->ahead_ring_broken = 1;
		rc = rc < 0 ? 0 : rc;
	}
	u->ahead_submitted = (unsigned)rc;
	u->ahead_now = INT64_MIN;
	return 0;
}

static int64_t
uring_read_wait(struct stor_backend *be)
{
	struct stor_uring *u = to_uring(be);
	int64_t total = 0;

	if (!u->ahead_busy)
		return -EINVAL;
	if (u->ahead_now != INT64_MIN) {
		total = u->ahead_now;
		goto out;
	}
	for (unsigned got = 0; got < u->ahead_submitted;) {
		struct io_uring_cqe *cqe;
		int rc = io_uring_wait_cqe(&u->ahead_ring, &cqe);

		/*
		 * Only EINTR is expected; another error leaves the reads in flight,
		 * into memory the caller frees next: wait on, as close(2) of the
		 * ring would not wait for them either.
		 */
		if (rc < 0)
			continue;
		uint64_t k = io_uring_cqe_get_data64(cqe);
		if (k < u->ahead_pieces)
			u->ahead_res[k] = cqe->res;
		io_uring_cqe_seen(&u->ahead_ring, cqe);
		got++;
	}
	/*
	 * In order: a whole piece counts; a short or failed one (or one never
	 * submitted) is finished with pread(), so that only the file's end
	 * makes the result short, as pread() would.
	 */
	for (unsigned k = 0; k < u->ahead_pieces; k++) {
		size_t at = (size_t)k * URING_AHEAD_PIECE;
		size_t plen = u->ahead_len - at < URING_AHEAD_PIECE ? u->ahead_len - at
		                                                    : URING_AHEAD_PIECE;
		int32_t r = u->ahead_res[k];
		size_t have = r > 0 ? (size_t)r : 0;
		int64_t more;

		if (have == plen) {
			total += (int64_t)plen;
			continue;
		}
		more = pread_full(u->ahead_fd, u->ahead_buf + at + have, plen - have,
		                  u->ahead_off + at + have);
		if (more < 0) {
			total = more;
			break;
		}
		total += (int64_t)(have + (size_t)more);
		if (have + (size_t)more < plen)
			break; /* the end of the file */
	}
out:
	setup_fd_done(u->ahead_tmp);
	u->ahead_tmp = -1;
	u->ahead_busy = 0;
	return total;
}

static int
uring_register_buffers(struct stor_backend *be, const struct iovec *iov, unsigned n)
{
	struct stor_uring *u = to_uring(be);
	int rc = io_uring_register_buffers(&u->ring, iov, n);

	u->fixed_bufs = rc == 0;
	return rc;
}

static int
uring_queue_one(struct stor_uring *u, struct stor_io_req *req)
{
	struct io_uring_sqe *sqe;
	int fd;

	sqe = io_uring_get_sqe(&u->ring);
	if (sqe == NULL)
		return -EAGAIN;
	if (req->op == STOR_IO_UNLINK) {
		/* By name, no file: an io-wq worker at once (it would block there anyway). */
		io_uring_prep_unlinkat(sqe, AT_FDCWD, req->buf, (int)req->off);
		sqe->flags |= IOSQE_ASYNC;
		if (req->link_next)
			sqe->flags |= IOSQE_IO_LINK;
		io_uring_sqe_set_data(sqe, req);
		u->be.async_unlinks++;
		u->inflight++;
		return 0;
	}
	fd = u->fixed_files ? req->file : u->fds[req->file];
	switch (req->op) {
	case STOR_IO_WRITE:
		if (u->fixed_bufs && req->buf_index >= 0)
			io_uring_prep_write_fixed(sqe, fd, req->buf, req->len, req->off,
			                          req->buf_index);
		else
			io_uring_prep_write(sqe, fd, req->buf, req->len, req->off);
		break;
	case STOR_IO_READ:
		if (u->fixed_bufs && req->buf_index >= 0)
			io_uring_prep_read_fixed(sqe, fd, req->buf, req->len, req->off,
			                         req->buf_index);
		else
			io_uring_prep_read(sqe, fd, req->buf, req->len, req->off);
		break;
	case STOR_IO_FDATASYNC:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case STOR_IO_FSYNC:
		io_uring_prep_fsync(sqe, fd, 0);
		break;
	case STOR_IO_FALLOCATE:
		io_uring_prep_fallocate(sqe, fd, 0, (off_t)req->off, (off_t)req->len);
		break;
	case STOR_IO_TRUNCATE:
		if (!u->ring_truncate)
			goto bad_op; /* linked to a ring request on a kernel without it */
		/* No helper in Debian 12's liburing 2.3: the new size in off, the rest zero. */
		io_uring_prep_rw(URING_OP_FTRUNCATE, sqe, fd, NULL, 0, req->off);
		u->be.async_truncates++;
		break;
	default:
	bad_op:
		/* An SQE was taken: turn it into a no-op so the ring stays consistent. */
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data(sqe, NULL);
		return -EINVAL;
	}
	if (u->fixed_files)
		sqe->flags |= IOSQE_FIXED_FILE;
	if (req->op == STOR_IO_WRITE) {
		u->be.writes++;
		u->be.write_bytes += req->len;
	}
	if (req->link_next)
		sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data(sqe, req);
	u->inflight++;
	return 0;
}

/*
 * Served inline: a write, read or sync of an inline file (fallocate stays on
 * the ring), and a truncate of an inline file or on a kernel whose ring has
 * none.
 */
static bool
req_inline(const struct stor_uring *u, const struct stor_io_req *req)
{
	if ((req->op == STOR_IO_TRUNCATE && !u->ring_truncate) ||
	    (req->op == STOR_IO_UNLINK && !u->ring_unlink))
		return true;
	if (req->op == STOR_IO_UNLINK)
		return false;
	if (req->file < 0 || (unsigned)req->file >= u->max_files || !u->inl[req->file])
		return false;
	return req->op == STOR_IO_WRITE || req->op == STOR_IO_READ ||
	       req->op == STOR_IO_FDATASYNC || req->op == STOR_IO_FSYNC ||
	       req->op == STOR_IO_TRUNCATE;
}

static int
uring_queue(struct stor_backend *be, struct stor_io_req **reqs, unsigned n)
{
	struct stor_uring *u = to_uring(be);
	unsigned k = 0;

	if (u->inflight + n > u->cq_entries)
		return -EAGAIN;
	for (unsigned i = 0; i < n; i++)
		if (reqs[i]->op == STOR_IO_TRUNCATE)
			map_cut(u, reqs[i]->file, reqs[i]->off);
	/* A chain runs inline whole or through the ring whole, so its links keep their order. */
	while (k < n && req_inline(u, reqs[k]))
		k++;
	if (k == n && n != 0) {
		for (unsigned i = 0; i < n; i++) {
			if (reqs[i]->op == STOR_IO_WRITE) {
				u->be.writes++;
				u->be.write_bytes += reqs[i]->len;
			}
			u->iq[u->iq_tail % u->iq_cap] = (struct uring_inl){.req = reqs[i]};
			u->iq_tail++;
			u->inflight++;
		}
		return 0;
	}
	/* All or none: a linked chain must not be cut by a full SQ. */
	if (io_uring_sq_space_left(&u->ring) < n)
		return -EAGAIN;
	for (unsigned i = 0; i < n; i++) {
		int rc = uring_queue_one(u, reqs[i]);
		if (rc != 0)
			return rc; /* only for a bad op: a bug in the caller */
	}
	return 0;
}

/*
 * A small inline write as a copy into the file's mapping: req->len, or 0
 * when it must take the pwrite path (its pages could not be reserved, it
 * crosses a window's end, or the window could not be mapped).
 */
static uint32_t
map_write(struct stor_uring *u, const struct stor_io_req *req)
{
	struct uring_map *m = &u->maps[req->file];
	int fd = u->fds[req->file];
	uint64_t end = req->off + req->len, woff = req->off & ~(URING_MAP_WINDOW - 1);

	if (end > woff + URING_MAP_WINDOW)
		return 0;
	if (req->off < m->lo || end > m->hi) {
		/* Reserve up to the next step: growing on from hi, or a new range. */
		bool grow = req->off >= m->lo && req->off <= m->hi && m->hi > m->lo;
		uint64_t lo = grow ? m->hi : req->off & ~(URING_MAP_STEP - 1);
		uint64_t hi = (end + URING_MAP_STEP - 1) & ~(URING_MAP_STEP - 1);

		if (fallocate(fd, 0, (off_t)lo, (off_t)(hi - lo)) != 0)
			return 0;
		if (!grow)
			m->lo = lo;
		m->hi = hi;
	}
	if (m->base == NULL || m->off != woff) {
		void *p;

		if (m->base != NULL)
			munmap(m->base, URING_MAP_WINDOW);
		m->base = NULL;
		p = mmap(NULL, URING_MAP_WINDOW, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)woff);
		if (p == MAP_FAILED)
			return 0;
		m->base = p;
		m->off = woff;
	}
	memcpy(m->base + (req->off - woff), req->buf, req->len);
	u->be.inline_mapped_writes++;
	return req->len;
}

/* Run one inline request: the bytes moved (all of them unless an error) or -errno. */
static int
inline_run(struct stor_uring *u, const struct stor_io_req *req)
{
	int fd;
	uint32_t done = 0;

	if (req->op == STOR_IO_UNLINK)
		return unlinkat(AT_FDCWD, req->buf, (int)req->off) == 0 ? 0 : -errno;
	fd = u->fds[req->file];
	if (req->op == STOR_IO_FDATASYNC || req->op == STOR_IO_FSYNC)
		return 0; /* tmpfs/ramfs: the page cache is all there is (noop_fsync) */
	if (req->op == STOR_IO_TRUNCATE)
		return uring_truncate(&u->be, req->file, req->off);
	if (req->op == STOR_IO_WRITE && req->len <= u->map_bytes && req->len > 0)
		done = map_write(u, req);
	while (done < req->len) {
		ssize_t n = req->op == STOR_IO_WRITE
		                    ? pwrite(fd, (const uint8_t *)req->buf + done, req->len - done,
		                             (off_t)(req->off + done))
		                    : pread(fd, (uint8_t *)req->buf + done, req->len - done,
		                            (off_t)(req->off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break; /* a read at the end of the file: short, as the ring would say */
		done += (uint32_t)n;
	}
	return (int)done;
}

/*
 * Run the queued inline requests in order. As on the ring, a request linked
 * to one that failed or came up short is cancelled (-ECANCELED).
 */
static void
inline_submit(struct stor_uring *u)
{
	bool cancel = false;

	for (; u->iq_done != u->iq_tail; u->iq_done++) {
		struct uring_inl *q = &u->iq[u->iq_done % u->iq_cap];
		const struct stor_io_req *req = q->req;

		q->res = cancel ? -ECANCELED : inline_run(u, req);
		if (req->link_next)
			cancel = cancel || q->res < 0 ||
			         (req->op != STOR_IO_FDATASYNC && req->op != STOR_IO_FSYNC &&
			          q->res != (int)req->len);
		else
			cancel = false;
		u->be.inline_ios++;
	}
}

static int
uring_submit(struct stor_backend *be)
{
	struct stor_uring *u = to_uring(be);
	int rc;

	if (u->iq_done != u->iq_tail)
		inline_submit(u);
	if (io_uring_sq_ready(&u->ring) == 0)
		return 0;
	do {
		rc = io_uring_submit(&u->ring);
	} while (rc == -EINTR);
	return rc;
}

static int
uring_poll(struct stor_backend *be, unsigned max)
{
	struct stor_uring *u = to_uring(be);
	struct io_uring_cqe *cqes[64];
	int total = 0;

	if (u->n_drain > 0) {
		struct timespec ts;
		uint64_t now;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		if (now >= u->drain_next_ns) {
			u->drain_next_ns = now + URING_DRAIN_GAP_NS;
			drain_step(u);
		}
	}
	/* Inline requests submit() ran; those done() queues now wait for the next submit. */
	while (u->iq_head != u->iq_done && (unsigned)total < max) {
		struct uring_inl q = u->iq[u->iq_head % u->iq_cap];

		u->iq_head++;
		u->inflight--;
		q.req->done(q.req, q.res);
		total++;
	}
	while ((unsigned)total < max) {
		unsigned want = max - (unsigned)total;
		unsigned n = io_uring_peek_batch_cqe(&u->ring, cqes, want < 64 ? want : 64);
		if (n == 0)
			break;
		/* Copy out first: done() may queue new SQEs, never touches the CQ. */
		struct stor_io_req *reqs[64];
		int res[64];
		for (unsigned i = 0; i < n; i++) {
			/* Old kernels: wait_cqe_timeout queues its own timeout SQE. */
			reqs[i] = cqes[i]->user_data == LIBURING_UDATA_TIMEOUT
			                  ? NULL
			                  : io_uring_cqe_get_data(cqes[i]);
			res[i] = cqes[i]->res;
		}
		io_uring_cq_advance(&u->ring, n);
		for (unsigned i = 0; i < n; i++) {
			if (reqs[i] == NULL)
				continue;
			u->inflight--;
			reqs[i]->done(reqs[i], res[i]);
			total++;
		}
	}
	return total;
}

static int
uring_wait(struct stor_backend *be, unsigned timeout_us)
{
	struct stor_uring *u = to_uring(be);
	struct __kernel_timespec ts = {
	        .tv_sec = timeout_us / 1000000u,
	        .tv_nsec = (long long)(timeout_us % 1000000u) * 1000,
	};
	struct io_uring_cqe *cqe;

	/* Inline requests never wait: run the queued ones, poll() completes them. */
	if (u->iq_head != u->iq_tail) {
		inline_submit(u);
		return 0;
	}
	if (u->inflight == 0)
		return -ETIME;
	/* Also submits anything queued; the CQE stays for poll() to reap. */
	return io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts);
}

static unsigned
uring_inflight(struct stor_backend *be)
{
	return to_uring(be)->inflight;
}

/* An asynchronous close in flight (release_fd). */
struct uring_release {
	struct stor_io_req req; /* first: the CQE's user data */
	int fd;
};

static void
release_done(struct stor_io_req *req, int res)
{
	struct uring_release *r = (struct uring_release *)req;

	if (res < 0 && res != -EBADF)
		close(r->fd); /* the ring could not (a kernel without IORING_OP_CLOSE) */
	free(r);
}

/*
 * The close goes to an io-wq worker (IOSQE_ASYNC), whose task runs the file's
 * final release, so a deleted segment's blocks are freed there (ext4 without a
 * journal, mounted with discard, waited 17-150 ms for a 32 MiB segment's
 * discard inside the reactor's close, session 17). Counted in flight, so a
 * drain waits for it.
 */
static void
uring_release_fd(struct stor_backend *be, int fd)
{
	struct stor_uring *u = to_uring(be);
	struct uring_release *r;
	struct io_uring_sqe *sqe;

	if (u->inflight + 1 > u->cq_entries || (r = malloc(sizeof(*r))) == NULL) {
		close(fd);
		return;
	}
	sqe = io_uring_get_sqe(&u->ring);
	if (sqe == NULL) {
		free(r);
		close(fd);
		return;
	}
	*r = (struct uring_release){
	        .req = {.buf_index = -1, .file = -1, .done = release_done}, .fd = fd};
	io_uring_prep_close(sqe, fd);
	sqe->flags |= IOSQE_ASYNC;
	io_uring_sqe_set_data(sqe, &r->req);
	u->inflight++;
	u->be.async_closes++;
}

static void uring_free(struct stor_uring *u);

static void
uring_destroy(struct stor_backend *be)
{
	struct stor_uring *u = to_uring(be);

	for (unsigned i = 0; i < u->max_files; i++) {
		if (u->maps[i].base != NULL)
			munmap(u->maps[i].base, URING_MAP_WINDOW);
		if (u->fds[i] >= 0)
			close(u->fds[i]);
		free(u->paths[i]);
	}
	for (unsigned i = 0; i < u->n_drain; i++)
		close(u->drain[i].fd);
	free(u->drain);
	if (u->ahead_busy)
		(void)uring_read_wait(be); /* its memory is the caller's: not left to the kernel */
	if (u->ahead_ring_made)
		io_uring_queue_exit(&u->ahead_ring);
	io_uring_queue_exit(&u->ring);
	uring_free(u);
}

static const struct stor_backend_ops uring_ops = {
        .name = "io_uring",
        .open = uring_open,
        .close = uring_close,
        .release_fd = uring_release_fd,
        .allocate = uring_allocate,
        .truncate = uring_truncate,
        .size = uring_size,
        .pread = uring_pread,
        .read_start = uring_read_start,
        .read_wait = uring_read_wait,
        .register_buffers = uring_register_buffers,
        .queue = uring_queue,
        .submit = uring_submit,
        .poll = uring_poll,
        .wait = uring_wait,
        .inflight = uring_inflight,
        .destroy = uring_destroy,
};

unsigned
stor_uring_auto_max_files(void)
{
	struct rlimit rl;
	rlim_t n = 1024;

	/* The kernel refuses a fixed-file table larger than RLIMIT_NOFILE. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		n = rl.rlim_cur;
	if (n < 64)
		n = 64;
	if (n > STOR_URING_MAX_FILES)
		n = STOR_URING_MAX_FILES;
	return (unsigned)n;
}

/*
 * Raise the ring's bounded io-wq worker limit to at least @want (never
 * lower it: larger machines start higher). Returns the limit in force, 0
 * when the kernel refuses the call (before 5.15).
 */
static unsigned
uring_raise_workers(struct io_uring *ring, unsigned want)
{
	unsigned vals[2] = {0, 0}; /* 0, 0: read both limits without changing them */

	if (io_uring_register_iowq_max_workers(ring, vals) < 0)
		return 0;
	if (vals[0] >= want)
		return vals[0];
	vals[0] = want;
	vals[1] = 0; /* the unbounded (socket) limit unchanged */
	if (io_uring_register_iowq_max_workers(ring, vals) < 0)
		return 0;
	vals[0] = vals[1] = 0;
	if (io_uring_register_iowq_max_workers(ring, vals) < 0)
		return 0;
	return vals[0];
}

int
stor_cpu_list_parse(const char *list, uint64_t *mask, unsigned mask_words)
{
	const char *p = list;
	unsigned long max = (unsigned long)mask_words * 64u;
	int n = 0;

	memset(mask, 0, sizeof(*mask) * mask_words);
	for (;;) {
		char *end;
		unsigned long lo, hi;

		p += strspn(p, " \t");
		if (*p < '0' || *p > '9')
			return -EINVAL;
		lo = strtoul(p, &end, 10);
		p = end;
		hi = lo;
		if (*p == '-') {
			p++;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			hi = strtoul(p, &end, 10);
			p = end;
		}
		if (lo > hi || hi >= max)
			return -EINVAL;
		for (unsigned long c = lo; c <= hi; c++) {
			if (!(mask[c / 64] & (1ull << (c % 64))))
				n++;
			mask[c / 64] |= 1ull << (c % 64);
		}
		p += strspn(p, " \t");
		if (*p == '\0')
			return n;
		if (*p != ',')
			return -EINVAL;
		p++;
	}
}

/*
 * Place the ring's io-wq workers on the CPUs of @mask (STOR_CPU_MASK_WORDS
 * words, IORING_REGISTER_IOWQ_AFF; workers already running move too).
 * Returns 0 or -errno.
 */
static int
uring_workers_place(struct io_uring *ring, const uint64_t *mask)
{
	cpu_set_t set;
	uint64_t online[STOR_CPU_MASK_WORDS];
	unsigned n = 0;
	char buf[256];
	ssize_t len;
	int fd;

	/*
	 * The kernel takes a list of absent CPUs and leaves the workers where
	 * they are. Absent means offline here, not outside the calling
	 * thread's affinity: a reactor is pinned to its own core, and the
	 * workers are meant for others (the kernel checks its cpuset).
	 */
	fd = open("/sys/devices/system/cpu/online", O_RDONLY | O_CLOEXEC);
	len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (len > 0) {
		buf[len] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
	}
	if (len <= 0 || stor_cpu_list_parse(buf, online, STOR_CPU_MASK_WORDS) < 0)
		memset(online, 0xff, sizeof(online)); /* unknown: let the kernel judge */
	CPU_ZERO(&set);
	for (unsigned c = 0; c < STOR_CPU_MASK_WORDS * 64u && c < CPU_SETSIZE; c++)
		if (mask[c / 64] & online[c / 64] & (1ull << (c % 64))) {
			CPU_SET(c, &set);
			n++;
		}
	if (n == 0)
		return -EINVAL;
	return io_uring_register_iowq_aff(ring, sizeof(set), &set);
}

/* Whether the kernel's ring runs @op (IORING_REGISTER_PROBE). */
static int
uring_has_op(struct io_uring *ring, int op)
{
	struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
	int has;

	if (probe == NULL)
		return 0;
	has = op <= probe->last_op && (probe->ops[op].flags & IO_URING_OP_SUPPORTED) != 0;
	io_uring_free_probe(probe);
	return has;
}

/* Free what stor_uring_create() allocated (the ring not initialised). */
static void
uring_free(struct stor_uring *u)
{
	free(u->fds);
	free(u->paths);
	free(u->oflags);
	free(u->inl);
	free(u->maps);
	free(u->iq);
	free(u);
}

struct stor_backend *
stor_uring_create(const struct stor_uring_opts *opts, const char **why)
{
	unsigned depth = opts->queue_depth ? opts->queue_depth : 256;
	struct io_uring_params p;
	struct stor_uring *u;
	int rc;

	if (why != NULL)
		*why = "";
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return NULL;
	u->be.ops = &uring_ops;
	u->max_files = opts->max_files ? opts->max_files : stor_uring_auto_max_files();
	u->fds = malloc(sizeof(int) * u->max_files);
	u->paths = calloc(u->max_files, sizeof(char *));
	u->oflags = calloc(u->max_files, sizeof(int));
	u->inl = calloc(u->max_files, 1);
	u->maps = calloc(u->max_files, sizeof(*u->maps));
	if (u->fds == NULL || u->paths == NULL || u->oflags == NULL || u->inl == NULL ||
	    u->maps == NULL) {
		uring_free(u);
		errno = ENOMEM;
		return NULL;
	}
	for (unsigned i = 0; i < u->max_files; i++)
		u->fds[i] = -1;
	u->inline_mode = opts->inline_io;
	u->map_bytes = opts->inline_map_bytes;
	u->inline_max = opts->inline_max_files;
	if (u->inline_max == 0) {
		struct rlimit rl;

		/* Half the descriptors: the other half stays for sockets and the rest. */
		u->inline_max = 512;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
			u->inline_max = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur / 2 > (1u << 20)
			                        ? 1u << 20
			                        : (unsigned)(rl.rlim_cur / 2);
	}

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 2 * depth;
	if (opts->sqpoll) {
		p.flags |= IORING_SETUP_SQPOLL;
		p.sq_thread_idle = opts->sqpoll_idle_ms ? opts->sqpoll_idle_ms : 100;
	}
	rc = io_uring_queue_init_params(depth, &u->ring, &p);
	if (rc < 0 && opts->sqpoll) {
		/* SQPOLL needs privileges on older kernels: run without it. */
		p.flags &= ~IORING_SETUP_SQPOLL;
		rc = io_uring_queue_init_params(depth, &u->ring, &p);
		if (why != NULL)
			*why = "SQPOLL refused, polling from the reactor";
	}
	if (rc < 0) {
		uring_free(u);
		errno = -rc;
		return NULL;
	}
	u->cq_entries = p.cq_entries;
	/* inflight (ring and inline together) stays within cq_entries: the ring never fills. */
	u->iq_cap = p.cq_entries;
	u->iq = calloc(u->iq_cap, sizeof(*u->iq));
	if (u->iq == NULL) {
		io_uring_queue_exit(&u->ring);
		uring_free(u);
		errno = ENOMEM;
		return NULL;
	}
	u->fixed_files = io_uring_register_files_sparse(&u->ring, u->max_files) == 0;
	u->ring_truncate = uring_has_op(&u->ring, URING_OP_FTRUNCATE);
	u->ring_unlink = uring_has_op(&u->ring, IORING_OP_UNLINKAT);
	if (!u->fixed_files && why != NULL)
		*why = "fixed files refused, using plain fds";
	if (opts->io_workers != 0) {
		u->be.io_workers = uring_raise_workers(&u->ring, opts->io_workers);
		if (u->be.io_workers < opts->io_workers && why != NULL && (*why)[0] == '\0')
			*why = "io-wq worker limit not raised, the kernel's default applies";
	}
	if (opts->io_workers_cpus != NULL &&
	    opts->io_workers_cpus[strspn(opts->io_workers_cpus, " \t")] != '\0') {
		uint64_t mask[STOR_CPU_MASK_WORDS];

		if (stor_cpu_list_parse(opts->io_workers_cpus, mask, STOR_CPU_MASK_WORDS) < 0) {
			io_uring_queue_exit(&u->ring);
			uring_free(u);
			errno = EINVAL;
			return NULL;
		}
		if (uring_workers_place(&u->ring, mask) == 0)
			u->be.io_workers_placed = 1;
		else if (why != NULL && (*why)[0] == '\0')
			*why = "io-wq CPU list (storage.io.workers.cpus) names no CPU this process "
			       "may use or was refused; the workers run where the owner thread may";
	}
	/* What the engine may keep open: the table, or descriptors under RLIMIT_NOFILE. */
	u->be.file_slots = u->max_files;
	u->be.no_fds = u->fixed_files;
	return &u->be;
}
