/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kill -9 durability: a child process appends under load (segments rolling
 * as it goes) and reports every acknowledged base offset on a pipe; the
 * parent kills it mid-load with SIGKILL, reopens the log (a crash recovery:
 * no clean-shutdown marker) and checks that every acknowledged offset is
 * present exactly once, that offsets are contiguous, and that every batch
 * reads back intact (CRC checked by recovery, content checked here).
 *
 * What this proves: an acknowledgement without the durable flag means the
 * write completed into the kernel, which a process crash cannot undo. It
 * does not (and cannot, in a unit test) prove power-loss durability; that
 * needs STOR_APPEND_DURABLE, whose fdatasync ordering test_stor_log checks.
 * Run with whole segments preallocated, with durable appends, and with
 * segments reserved a step at a time (storage.preallocate.bytes).
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "stor_test_util.h"

#define MAX_ACKS 200000

struct child_ctx {
	int fd;
	int inflight;
};

static void
child_ack(void *arg, int rc, int64_t base)
{
	struct child_ctx *c = arg;

	c->inflight--;
	if (rc != 0)
		_exit(3);
	if (write(c->fd, &base, sizeof(base)) != sizeof(base))
		_exit(4);
}

/* Deterministic batch content: batch with base offset b holds 4 records keyed by b. */
static size_t
make_batch(uint8_t *buf, size_t cap, unsigned seq)
{
	return tu_batch(buf, cap, 4, 1000 + seq, 900, seq, NULL);
}

static void
child_main(const char *dir, int fd, int durable, uint64_t prealloc_step)
{
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 256 << 10, 64, NULL);
	struct stor_log_config cfg;
	struct child_ctx c = {.fd = fd};
	uint8_t buf[8192];
	int err = 0;

	stor_log_config_init(&cfg);
	cfg.segment_bytes = 2 << 20;
	cfg.roll_ms = -1;
	cfg.preallocate_bytes = prealloc_step;
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	if (log == NULL)
		_exit(2);
	/* Bounded: at most 10 s or MAX_ACKS batches; the parent kills far earlier. */
	time_t end = time(NULL) + 10;
	for (unsigned seq = 0; seq < MAX_ACKS && time(NULL) < end;) {
		if (c.inflight < 64) {
			size_t size = make_batch(buf, sizeof(buf), seq);
			int rc = stor_log_append(log, buf, size, durable ? STOR_APPEND_DURABLE : 0,
			                         child_ack, &c, NULL);
			if (rc == 0) {
				c.inflight++;
				seq++;
				continue;
			}
			if (rc != -EAGAIN)
				_exit(5);
		}
		stor_engine_poll(e);
	}
	_exit(0);
}

/* @prealloc_step: the child's storage.preallocate.bytes (0: whole segments). */
static void
crash_run(int durable, uint64_t prealloc_step)
{
	char *dir = tu_tmpdir("");
	int fds[2];
	static int64_t acked[MAX_ACKS];
	size_t nacked = 0;

	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child_main(dir, fds[1], durable, prealloc_step);
	}
	close(fds[1]);
	/* Let it run until it acknowledged enough to have rolled a few segments. */
	size_t want = durable ? 300 : 3000;
	while (nacked < want) {
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		if (poll(&p, 1, 10000) <= 0)
			fail_msg("child stalled after %zu acks", nacked);
		ssize_t n = read(fds[0], &acked[nacked], sizeof(int64_t));
		if (n != sizeof(int64_t)) {
			int st = 0;
			waitpid(pid, &st, 0);
			fail_msg("child died after %zu acks (exit status %d: 0 is its 10 s bound)",
			         nacked, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		}
		nacked++;
	}
	kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFSIGNALED(status));
	/* Acks written before the kill are acknowledgements too. */
	for (;;) {
		ssize_t n = read(fds[0], &acked[nacked], sizeof(int64_t));
		if (n != sizeof(int64_t))
			break;
		if (++nacked == MAX_ACKS)
			break;
	}
	close(fds[0]);

	struct tu_logcap cap = {0};
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 256 << 10, 16, &cap);
	struct stor_log_config cfg;
	int err = 0;
	stor_log_config_init(&cfg);
	cfg.segment_bytes = 2 << 20;
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_null(strstr(cap.text, "clean shutdown"));
	int64_t end = stor_log_end_offset(log);
	assert_true(end >= 4 * (int64_t)nacked);
	assert_true(end % 4 == 0);
	if (!durable)
		assert_true(stor_log_segment_count(log) > 2); /* killed after several rolls */

	/* Read everything back: contiguous batches of 4, content as the child made them. */
	size_t bsz = stor_read_buf_size(1 << 20);
	uint8_t *rb = aligned_alloc(STOR_BLOCK_SIZE, bsz);
	struct stor_read rd = {.buf = rb, .buf_size = bsz};
	uint8_t *seen = calloc((size_t)end / 4 + 1, 1);
	uint8_t expect[8192];
	int64_t off = 0;
	while (off < end) {
		assert_int_equal(tu_read(e, log, &rd, off, 1 << 20), 0);
		assert_true(rd.len > 0);
		size_t pos = 0;
		while (pos < rd.len) {
			struct kp_batch_header h;
			assert_int_equal(kp_batch_header_parse(rd.data + pos, rd.len - pos, &h), 0);
			assert_int_equal(h.base_offset, off);
			unsigned seq = (unsigned)(off / 4);
			size_t size = make_batch(expect, sizeof(expect), seq);
			kp_batch_set_base_offset(expect, off);
			assert_int_equal(kp_batch_size(&h), size);
			assert_memory_equal(rd.data + pos, expect, size);
			seen[seq]++;
			off += 4;
			pos += size;
		}
		stor_read_release(&rd);
	}
	for (size_t i = 0; i < nacked; i++) {
		assert_true(acked[i] % 4 == 0 && acked[i] < end);
		assert_int_equal(seen[acked[i] / 4], 1);
	}
	assert_int_equal(stor_log_close(log), 0);
	stor_engine_destroy(e);
	free(seen);
	free(rb);
	tu_rm_rf(dir);
	free(dir);
}

static void
test_kill9_plain(void **state)
{
	(void)state;
	crash_run(0, 0);
}

/* Segments reserved 64 KiB at a time: fallocates in flight at the kill too. */
static void
test_kill9_prealloc_steps(void **state)
{
	(void)state;
	crash_run(0, 64 << 10);
}

static void
test_kill9_durable(void **state)
{
	(void)state;
	crash_run(1, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_kill9_plain),
	        cmocka_unit_test(test_kill9_durable),
	        cmocka_unit_test(test_kill9_prealloc_steps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
