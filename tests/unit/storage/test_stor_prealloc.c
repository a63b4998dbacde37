/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of stepped preallocation (storage.preallocate.bytes), the cases
 * test_stor_scale's test_preallocate_steps (one segment, every append
 * drained) leaves out:
 * - appends that outrun the reservation: the backend holds the step's
 *   IORING_OP_FALLOCATE back, appends go on past the reserved end (writes
 *   that grow the file), every one is acknowledged, no second fallocate is
 *   queued while one is in flight, the bytes on disk are the batches; once
 *   released the fallocate keeps them (mode 0), and the next append reserves
 *   a step past the data;
 * - a crash then (no marker): the file holds the batches and zeros up to the
 *   reserved end; recovery cuts it back to the data, a clean close trims it;
 * - rolls under a burst of appends (no drain between them): every sealed
 *   segment is trimmed to its data, the active one stays within a step of
 *   its data, everything reads back before and after a crash and a clean
 *   restart; on the build directory's file system (O_DIRECT) and on /dev/shm.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "stor_test_util.h"

#define MAXB 400
#define ALIGN_UP(x) (((x) + STOR_BLOCK_SIZE - 1) / STOR_BLOCK_SIZE * STOR_BLOCK_SIZE)
#define BLOCKS_SLACK (64u << 10) /* extent-tree blocks ext4 counts in st_blocks */

/* ---- a backend that can hold fallocates back ------------------------------ */

static int g_hold;                      /* hold FALLOCATE requests instead of queuing */
static struct stor_io_req *g_held[8];   /* held, in order */
static unsigned g_n_held;
static struct stor_backend_ops hold_ops; /* tu_ops with hold_queue */

static int
hold_queue(struct stor_backend *be, struct stor_io_req **reqs, unsigned n)
{
	if (g_hold && n == 1 && reqs[0]->op == STOR_IO_FALLOCATE) {
		assert_true(g_n_held < sizeof(g_held) / sizeof(g_held[0]));
		g_held[g_n_held++] = reqs[0];
		tu_be(be)->allocs++;
		return 0;
	}
	return tu_queue(be, reqs, n);
}

/* Queue the held requests for real (they complete at the next polls). */
static void
hold_release(struct stor_backend *be)
{
	g_hold = 0;
	for (unsigned i = 0; i < g_n_held; i++) {
		assert_int_equal(tu_queue(be, &g_held[i], 1), 0);
		tu_be(be)->allocs--; /* counted when held */
	}
	g_n_held = 0;
}

/* ---- what was appended ---------------------------------------------------- */

struct pmodel {
	uint8_t *bytes[MAXB];
	size_t len[MAXB];
	int64_t base[MAXB];
	int nrec[MAXB];
	struct tu_ack ack[MAXB];
	int n;
};

static void
pmodel_free(struct pmodel *m)
{
	for (int i = 0; i < m->n; i++)
		free(m->bytes[i]);
	m->n = 0;
}

/* Append batch m->n (@nrec records of @vlen bytes); -EAGAIN when the log is full. */
static int
pappend(struct stor_log *log, struct pmodel *m, int nrec, size_t vlen)
{
	uint8_t *buf = malloc(32 << 10);
	size_t size = tu_batch(buf, 32 << 10, nrec, 1000 + m->n, vlen, (unsigned)m->n, NULL);
	int i = m->n;
	int64_t base = -1;

	assert_true(i < MAXB);
	assert_true(size > 0);
	m->ack[i] = (struct tu_ack){0};
	int rc = stor_log_append(log, buf, size, 0, tu_ack_cb, &m->ack[i], &base);
	if (rc != 0) {
		free(buf);
		return rc;
	}
	kp_batch_set_base_offset(buf, base);
	m->bytes[i] = buf;
	m->len[i] = size;
	m->base[i] = base;
	m->nrec[i] = nrec;
	m->n++;
	return 0;
}

/* Append, polling while the log says -EAGAIN (bounded). */
static void
pappend_retry(struct stor_engine *e, struct stor_log *log, struct pmodel *m, int nrec,
              size_t vlen)
{
	int rc;

	for (int tries = 0; (rc = pappend(log, m, nrec, vlen)) == -EAGAIN && tries < 1000000;
	     tries++)
		stor_engine_poll(e);
	assert_int_equal(rc, 0);
}

static void
pwait_acks(struct stor_engine *e, struct pmodel *m)
{
	for (int i = 0; i < m->n; i++) {
		assert_int_equal(tu_poll_until(e, &m->ack[i].done, 1), 0);
		assert_int_equal(m->ack[i].rc, 0);
		assert_int_equal(m->ack[i].base, m->base[i]);
	}
}

/* Bytes of the batches in [from, to) offsets. */
static uint64_t
pbytes(const struct pmodel *m, int64_t from, int64_t to)
{
	uint64_t n = 0;

	for (int i = 0; i < m->n; i++)
		if (m->base[i] >= from && m->base[i] < to)
			n += m->len[i];
	return n;
}

/* Every batch reads back through the log, one at a time. */
static void
pverify(struct stor_engine *e, struct stor_log *log, const struct pmodel *m)
{
	size_t bsz = stor_read_buf_size(64 << 10);
	uint8_t *buf = aligned_alloc(STOR_BLOCK_SIZE, bsz);
	struct stor_read rd = {.buf = buf, .buf_size = bsz};

	assert_int_equal(stor_log_end_offset(log), m->base[m->n - 1] + m->nrec[m->n - 1]);
	for (int i = 0; i < m->n; i++) {
		assert_int_equal(tu_read(e, log, &rd, m->base[i], 1), 0);
		assert_int_equal(rd.len, m->len[i]);
		assert_memory_equal(rd.data, m->bytes[i], m->len[i]);
		stor_read_release(&rd);
	}
	free(buf);
}

static void
seg_path(char *path, size_t cap, const char *dir, int64_t base)
{
	snprintf(path, cap, "%s/%020lld.log", dir, (long long)base);
}

static void
seg_stat(const char *dir, int64_t base, struct stat *st)
{
	char path[4300];

	seg_path(path, sizeof(path), dir, base);
	assert_int_equal(stat(path, st), 0);
}

/*
 * The segment file at @base holds the batches of @m from its start, @data
 * bytes of them, then zeros only (reserved, or a written block's padding).
 */
static void
check_file(const char *dir, int64_t base, const struct pmodel *m, uint64_t data)
{
	char path[4300];
	struct stat st;
	uint64_t pos = 0;

	seg_path(path, sizeof(path), dir, base);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true((uint64_t)st.st_size >= data);
	uint8_t *b = malloc((size_t)st.st_size + 1);
	assert_int_equal(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	for (int i = 0; i < m->n; i++) {
		if (m->base[i] < base)
			continue;
		if (pos + m->len[i] > data)
			break;
		assert_memory_equal(b + pos, m->bytes[i], m->len[i]);
		pos += m->len[i];
	}
	assert_int_equal(pos, data);
	for (uint64_t i = data; i < (uint64_t)st.st_size; i++)
		assert_int_equal(b[i], 0);
	free(b);
}

static struct stor_log *
popen_log(struct stor_engine *e, const char *dir, uint64_t segment, uint64_t step)
{
	struct stor_log_config cfg;
	char v[32];
	int err = 0;

	stor_log_config_init(&cfg);
	cfg.segment_bytes = segment;
	cfg.roll_ms = -1;
	cfg.preallocate = true;
	snprintf(v, sizeof(v), "%llu", (unsigned long long)step);
	assert_int_equal(stor_log_config_set(&cfg, "storage.preallocate.bytes", v), 0);
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	return log;
}

/* ---- appends outrunning the reservation ---------------------------------- */

#define OUT_STEP (128u << 10)
#define OUT_SEG (4u << 20)

static void
test_outrun(void **state)
{
	struct tu_logcap *cap = calloc(1, sizeof(*cap));
	struct tu_backend *wrap;
	struct stor_engine *e = tu_engine(&wrap, STOR_DIRECT_AUTO, 64 << 10, 16, cap);
	struct pmodel *m = calloc(1, sizeof(*m));
	char *dir = tu_tmpdir("");
	struct stat st;

	(void)state;
	assert_non_null(e);
	assert_non_null(dir);
	hold_ops = *wrap->be.ops;
	hold_ops.queue = hold_queue;
	wrap->be.ops = &hold_ops;

	struct stor_log *log = popen_log(e, dir, OUT_SEG, OUT_STEP);
	unsigned allocs0 = wrap->allocs;
	g_hold = 1;
	/* About 600 KiB, over four steps, with the first step's fallocate held. */
	while (pbytes(m, 0, INT64_MAX) < 600u << 10) {
		pappend_retry(e, log, m, 10, 1000 + (size_t)m->n * 7);
		if (m->n % 4 == 0)
			stor_engine_poll(e);
	}
	pwait_acks(e, m);
	stor_engine_drain(e);
	uint64_t data = pbytes(m, 0, INT64_MAX);
	/* The first append queued the one fallocate; none more while it is in flight. */
	assert_int_equal(wrap->allocs - allocs0, 1);
	assert_int_equal(g_n_held, 1);
	assert_int_equal(g_held[0]->off, 0);
	assert_true(g_held[0]->len <= ALIGN_UP(m->len[0]) + OUT_STEP);
	/* The writes grew the file: as long as the data (a block's padding at most). */
	seg_stat(dir, 0, &st);
	assert_true((uint64_t)st.st_size >= data && (uint64_t)st.st_size <= ALIGN_UP(data));
	check_file(dir, 0, m, data);
	pverify(e, log, m);

	/* The step lands late, below the data: fallocate mode 0 keeps the bytes. */
	hold_release(&wrap->be);
	stor_engine_drain(e);
	seg_stat(dir, 0, &st);
	assert_true((uint64_t)st.st_size >= data && (uint64_t)st.st_size <= ALIGN_UP(data));
	check_file(dir, 0, m, data);

	/* The next append reserves a step past the data at once. */
	pappend_retry(e, log, m, 10, 500);
	pwait_acks(e, m);
	stor_engine_drain(e);
	data = pbytes(m, 0, INT64_MAX);
	assert_int_equal(wrap->allocs - allocs0, 2);
	seg_stat(dir, 0, &st);
	assert_int_equal((uint64_t)st.st_size, ALIGN_UP(data) + OUT_STEP);
	assert_true((uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size - STOR_BLOCK_SIZE);
	assert_true((uint64_t)st.st_blocks * 512 <= (uint64_t)st.st_size + BLOCKS_SLACK);

	/* A crash: the batches, then zeros up to the reserved end. */
	stor_log_abandon(log);
	check_file(dir, 0, m, data);
	log = popen_log(e, dir, OUT_SEG, OUT_STEP);
	seg_stat(dir, 0, &st);
	assert_int_equal((uint64_t)st.st_size, data); /* recovery cut the zeros */
	pverify(e, log, m);
	/* Appends go on after the survivors, a step ahead again; a clean close trims. */
	pappend_retry(e, log, m, 3, 200);
	pwait_acks(e, m);
	stor_engine_drain(e);
	data = pbytes(m, 0, INT64_MAX);
	seg_stat(dir, 0, &st);
	assert_int_equal((uint64_t)st.st_size, ALIGN_UP(data) + OUT_STEP);
	assert_int_equal(stor_log_close(log), 0);
	seg_stat(dir, 0, &st);
	assert_int_equal((uint64_t)st.st_size, data);
	check_file(dir, 0, m, data);
	log = popen_log(e, dir, OUT_SEG, OUT_STEP);
	assert_non_null(strstr(cap->text, "clean shutdown"));
	pverify(e, log, m);
	assert_int_equal(stor_log_close(log), 0);

	stor_engine_destroy(e);
	pmodel_free(m);
	free(m);
	tu_rm_rf(dir);
	free(dir);
	free(cap);
}

/* ---- rolls under a burst ------------------------------------------------- */

#define ROLL_STEP (64u << 10)
#define ROLL_SEG (512u << 10)

/* Sealed segments trimmed to their data, the active one within a step of it. */
static void
check_segments(struct stor_log *log, const char *dir, const struct pmodel *m, bool active_trimmed)
{
	unsigned nseg = stor_log_segment_count(log);
	struct stat st;

	for (unsigned i = 0; i < nseg; i++) {
		int64_t from = stor_log_segment_base(log, i);
		int64_t to = i + 1 < nseg ? stor_log_segment_base(log, i + 1) : INT64_MAX;
		uint64_t data = pbytes(m, from, to);

		seg_stat(dir, from, &st);
		if (i + 1 < nseg || active_trimmed) {
			assert_int_equal((uint64_t)st.st_size, data);
		} else {
			assert_true((uint64_t)st.st_size >= data);
			assert_true((uint64_t)st.st_size <= ALIGN_UP(data) + ROLL_STEP);
		}
		assert_true((uint64_t)st.st_blocks * 512 <=
		            ALIGN_UP((uint64_t)st.st_size) + BLOCKS_SLACK);
		check_file(dir, from, m, data);
	}
}

static void
rolls(const char *base)
{
	struct tu_logcap *cap = calloc(1, sizeof(*cap));
	struct tu_backend *wrap;
	struct stor_engine *e = tu_engine(&wrap, STOR_DIRECT_AUTO, 64 << 10, 16, cap);
	struct pmodel *m = calloc(1, sizeof(*m));
	char *dir = tu_tmpdir(base);

	assert_non_null(e);
	assert_non_null(dir);
	struct stor_log *log = popen_log(e, dir, ROLL_SEG, ROLL_STEP);
	unsigned allocs0 = wrap->allocs;
	/* About 2.5 MiB in batches of about 10 KiB: five segments, no drain between. */
	while (pbytes(m, 0, INT64_MAX) < (5u * ROLL_SEG) - (ROLL_SEG / 2)) {
		pappend_retry(e, log, m, 8, 1200 + (size_t)(m->n % 5) * 33);
		if (m->n % 4 == 0)
			stor_engine_poll(e);
	}
	pwait_acks(e, m);
	stor_engine_drain(e);
	unsigned nseg = stor_log_segment_count(log);
	uint64_t data = pbytes(m, 0, INT64_MAX);
	assert_true(nseg >= 4);
	/* Steps, not one fallocate per append nor one per segment. */
	unsigned allocs = wrap->allocs - allocs0;
	assert_true(allocs >= nseg);
	assert_true(allocs <= 2 * data / ROLL_STEP + nseg + 1);
	assert_true(allocs < (unsigned)m->n / 2);
	check_segments(log, dir, m, false);
	pverify(e, log, m);

	/* A crash, then a clean restart: the same batches, the reservation trimmed. */
	stor_log_abandon(log);
	log = popen_log(e, dir, ROLL_SEG, ROLL_STEP);
	check_segments(log, dir, m, true);
	pverify(e, log, m);
	for (int i = 0; i < 10; i++)
		pappend_retry(e, log, m, 8, 1200);
	pwait_acks(e, m);
	stor_engine_drain(e);
	check_segments(log, dir, m, false);
	assert_int_equal(stor_log_close(log), 0);
	log = popen_log(e, dir, ROLL_SEG, ROLL_STEP);
	assert_non_null(strstr(cap->text, "clean shutdown"));
	check_segments(log, dir, m, true);
	pverify(e, log, m);
	assert_int_equal(stor_log_close(log), 0);

	stor_engine_destroy(e);
	pmodel_free(m);
	free(m);
	tu_rm_rf(dir);
	free(dir);
	free(cap);
}

static void
test_rolls_disk(void **state)
{
	(void)state;
	rolls("");
}

static void
test_rolls_shm(void **state)
{
	(void)state;
	rolls("/dev/shm");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_outrun),
	        cmocka_unit_test(test_rolls_disk),
	        cmocka_unit_test(test_rolls_shm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
