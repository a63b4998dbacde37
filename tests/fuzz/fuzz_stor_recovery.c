/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for storage recovery: the input becomes a partition directory
 * (a segment file, its offset and time index, a clean-shutdown marker and a
 * leader-epoch checkpoint, all cut from the input) and the log is opened,
 * read from start to end through the engine, looked up by timestamp,
 * appended to, closed cleanly and opened again. Recovery must never crash,
 * and whatever it keeps must parse as batches with increasing offsets, also
 * through the batch-header walk the broker rebuilds producer state with
 * (stor_log_batch_headers), which must reach the log end.
 *
 * Input layout: a 10-byte header of 4 u16 little-endian lengths (index,
 * timeindex, marker, epochs; 0 = absent) and 2 spare bytes, those parts in
 * order, then the segment bytes.
 * Files live under /dev/shm (buffered I/O: fast, and the fallback path).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kp_batch.h"
#include "stor_engine.h"
#include "stor_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
quiet(void *ctx, int level, const char *msg)
{
	(void)ctx;
	(void)level;
	(void)msg;
}

static void
put(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		abort();
	if (n != 0 && write(fd, p, n) != (ssize_t)n)
		abort();
	close(fd);
}

static void
rm_dir(const char *dir)
{
	static const char *const names[] = {
	        "00000000000000000000.log",       "00000000000000000000.index",
	        "00000000000000000000.timeindex", "clean-shutdown",
	        "leader-epoch-checkpoint",        "log-start-offset",
	};
	char path[512];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static int done_reads;

static void
read_cb(void *arg, struct stor_read *rd, int rc)
{
	(void)arg;
	(void)rd;
	(void)rc;
	done_reads = 1;
}

struct walk {
	int64_t prev; /* last offset of the previous batch walked */
};

static int
walk_cb(void *arg, const struct kp_batch_header *h)
{
	struct walk *w = arg;

	if (h->base_offset <= w->prev || h->last_offset_delta < 0)
		abort(); /* the walk met something recovery should not have kept */
	w->prev = h->base_offset + h->last_offset_delta;
	return 0;
}

static void
exercise(struct stor_engine *e, struct stor_log *log)
{
	static uint8_t buf[1 << 17] __attribute__((aligned(4096)));
	struct stor_read rd = {.buf = buf, .buf_size = sizeof(buf)};
	int64_t off = stor_log_start_offset(log), prev = -1;

	for (int guard = 0; guard < 64 && off < stor_log_end_offset(log); guard++) {
		done_reads = 0;
		int rc = stor_log_read(log, &rd, off, 1 << 16, read_cb, NULL);
		if (rc == -EINPROGRESS) {
			while (!done_reads)
				stor_engine_poll(e);
			rc = 0;
		}
		if (rc != 0 || rd.len == 0) {
			stor_read_release(&rd);
			break;
		}
		size_t pos = 0;
		while (pos < rd.len) {
			struct kp_batch_header h;
			if (kp_batch_header_parse(rd.data + pos, rd.len - pos, &h) != 0 ||
			    h.base_offset <= prev)
				abort(); /* recovery kept something that is not a batch */
			prev = h.base_offset + h.last_offset_delta;
			pos += kp_batch_size(&h);
		}
		off = rd.next_offset;
		stor_read_release(&rd);
	}
	int64_t o;
	stor_log_offset_for_time(log, 0, &o, NULL);
	stor_log_offset_for_time(log, 1700000000000, &o, NULL);
	struct walk w = {.prev = -1};
	if (stor_log_batch_headers(log, 0, walk_cb, &w) != 0)
		abort(); /* nothing is pending here and every kept batch parses */
	if (w.prev >= 0 && w.prev + 1 != stor_log_end_offset(log))
		abort();
	w.prev = -1;
	if (stor_log_batch_headers(log, stor_log_end_offset(log) / 2, walk_cb, &w) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct stor_engine *e;
	static const uint8_t empty[1];
	char dir[128];
	size_t len[4], off = 10;
	int err;

	if (size < 10)
		return 0;
	if (e == NULL) {
		struct stor_engine_opts o;
		stor_engine_opts_init(&o);
		o.direct = STOR_DIRECT_OFF;
		o.chunk_bytes = 256 << 10;
		o.chunk_count = 4;
		o.log_fn = quiet;
		e = stor_engine_create(&o);
		if (e == NULL)
			return 0;
	}
	for (int i = 0, end = 10; i < 4; i++) {
		len[i] = (size_t)data[2 * i] | (size_t)data[2 * i + 1] << 8;
		if (len[i] > size - (size_t)end)
			len[i] = size - (size_t)end;
		end += (int)len[i];
	}
	snprintf(dir, sizeof(dir), "/dev/shm/fuzz-stor-%d", (int)getpid());
	rm_dir(dir);
	if (mkdir(dir, 0755) != 0)
		return 0;
	static const char *const names[] = {"00000000000000000000.index",
	                                    "00000000000000000000.timeindex", "clean-shutdown",
	                                    "leader-epoch-checkpoint"};
	for (int i = 0; i < 4; i++) {
		if (len[i] != 0)
			put(dir, names[i], data + off, len[i]);
		off += len[i];
	}
	put(dir, "00000000000000000000.log", size > off ? data + off : empty, size - off);

	struct stor_log_config cfg;
	stor_log_config_init(&cfg);
	cfg.segment_bytes = 1 << 20;
	cfg.preallocate = false;
	cfg.index_interval_bytes = 128;
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	if (log != NULL) {
		exercise(e, log);
		uint8_t b[512];
		struct kp_batch_builder bb;
		size_t n;
		if (kp_batch_builder_start(&bb, b, sizeof(b), KP_COMPRESSION_NONE) == 0 &&
		    kp_batch_builder_add(&bb, 1, "k", 1, "v", 1, NULL, 0) == 0 &&
		    kp_batch_builder_finish(&bb, &n) == 0)
			stor_log_append(log, b, n, STOR_APPEND_DURABLE, NULL, NULL, NULL);
		stor_log_close(log);
		log = stor_log_open(e, dir, &cfg, &err);
		if (log != NULL) {
			exercise(e, log);
			stor_log_close(log);
		}
	}
	rm_dir(dir);
	return 0;
}
