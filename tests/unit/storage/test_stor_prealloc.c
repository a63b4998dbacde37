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
 *   restart; on the build directory's file system (O_DIRECT) and on /dev/shm;
 * - every step failing (ENOSPC, from a backend that fails its fallocates):
 *   appends go on, the failures are counted, and the warning is logged once,
 *   not once per step (STOR_PREALLOC_WARN_MS).
 */
#include <errno.h>
#include <inttypes.h>
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

/* ---- a backend whose fallocates fail (a full disk) ------------------------ */

static struct stor_io_req *g_failing[8]; /* FALLOCATEs to complete with -ENOSPC */
static unsigned g_n_failing;
static struct stor_backend_ops enospc_ops; /* tu_ops with the three below */

static int
enospc_queue(struct stor_backend *be, struct stor_io_req **reqs, unsigned n)
{
	if (n == 1 && reqs[0]->op == STOR_IO_FALLOCATE) {
		assert_true(g_n_failing < sizeof(g_failing) / sizeof(g_failing[0]));
		g_failing[g_n_failing++] = reqs[0];
		tu_be(be)->allocs++;
		return 0;
	}
	return tu_queue(be, reqs, n);
}

/* The failing requests complete at the next poll, as the kernel's would. */
static int
enospc_poll(struct stor_backend *be, unsigned max)
{
	unsigned n = g_n_failing;

	g_n_failing = 0;
	for (unsigned i = 0; i < n; i++)
		g_failing[i]->done(g_failing[i], -ENOSPC);
	return (int)n + tu_poll(be, max);
}

static unsigned
enospc_inflight(struct stor_backend *be)
{
	return g_n_failing + tu_inflight(be);
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

/* ---- a test's engine, model and directory --------------------------------- */

struct pfix {
	struct tu_logcap *cap;  /* the engine's log lines */
	struct tu_backend *wrap; /* the counting backend under the engine */
	struct stor_engine *e;
	struct pmodel *m;        /* what was appended */
	char *dir;               /* the log's directory (malloc'ed), under @base of pfix_init */
	uint64_t segment, step;  /* log.segment.bytes and storage.preallocate.bytes */
};

static void
pfix_init(struct pfix *f, const char *base, uint64_t segment, uint64_t step)
{
	f->cap = calloc(1, sizeof(*f->cap));
	f->e = tu_engine(&f->wrap, STOR_DIRECT_AUTO, 64 << 10, 16, f->cap);
	f->m = calloc(1, sizeof(*f->m));
	f->dir = tu_tmpdir(base);
	f->segment = segment;
	f->step = step;
	assert_non_null(f->e);
	assert_non_null(f->m);
	assert_non_null(f->dir);
}

static void
pfix_fini(struct pfix *f)
{
	stor_engine_destroy(f->e);
	pmodel_free(f->m);
	free(f->m);
	tu_rm_rf(f->dir);
	free(f->dir);
	free(f->cap);
}

/*
 * Append batches of @nrec records (values of @vlen + (n % 5) * @vstep bytes,
 * n the batch's number) until the model holds @bytes, one at least, polling
 * the engine now and then but not draining; then wait for every ack and
 * drain. @return the bytes appended in all.
 */
static uint64_t
pappend_until(struct pfix *f, struct stor_log *log, uint64_t bytes, int nrec, size_t vlen,
              size_t vstep)
{
	int n0 = f->m->n;

	while (f->m->n == n0 || pbytes(f->m, 0, INT64_MAX) < bytes) {
		pappend_retry(f->e, log, f->m, nrec, vlen + (size_t)(f->m->n % 5) * vstep);
		if (f->m->n % 4 == 0)
			stor_engine_poll(f->e);
	}
	pwait_acks(f->e, f->m);
	stor_engine_drain(f->e);
	return pbytes(f->m, 0, INT64_MAX);
}

/*
 * The segment files from @bases (@nseg, ascending) hold the model's batches
 * and zeros only; sealed ones (and the active one when @active_trimmed) are
 * exactly their data, the active one otherwise within a step of it.
 */
static void
check_files(const struct pfix *f, const int64_t *bases, unsigned nseg, bool active_trimmed)
{
	struct stat st;

	for (unsigned i = 0; i < nseg; i++) {
		int64_t to = i + 1 < nseg ? bases[i + 1] : INT64_MAX;
		uint64_t data = pbytes(f->m, bases[i], to);

		seg_stat(f->dir, bases[i], &st);
		if (i + 1 < nseg || active_trimmed) {
			assert_int_equal((uint64_t)st.st_size, data);
		} else {
			assert_true((uint64_t)st.st_size >= data);
			assert_true((uint64_t)st.st_size <= ALIGN_UP(data) + f->step);
		}
		assert_true((uint64_t)st.st_blocks * 512 <=
		            ALIGN_UP((uint64_t)st.st_size) + BLOCKS_SLACK);
		check_file(f->dir, bases[i], f->m, data);
	}
}

/* check_files() of @log's segments. @return their count. */
static unsigned
check_segments(const struct pfix *f, struct stor_log *log, bool active_trimmed)
{
	int64_t bases[64];
	unsigned nseg = stor_log_segment_count(log);

	assert_true(nseg <= sizeof(bases) / sizeof(bases[0]));
	for (unsigned i = 0; i < nseg; i++)
		bases[i] = stor_log_segment_base(log, i);
	check_files(f, bases, nseg, active_trimmed);
	return nseg;
}

/*
 * Stop @log, cleanly (@clean: the close trims the active segment to its
 * data) or as a crash would (its reservation left on disk), checking the
 * files before and after opening it again: recovery or the close left every
 * segment trimmed, and every batch reads back. @return the reopened log.
 */
static struct stor_log *
prestart(struct pfix *f, struct stor_log *log, bool clean)
{
	int64_t bases[64];
	unsigned nseg = stor_log_segment_count(log);

	assert_true(nseg <= sizeof(bases) / sizeof(bases[0]));
	for (unsigned i = 0; i < nseg; i++)
		bases[i] = stor_log_segment_base(log, i);
	if (clean) {
		assert_int_equal(stor_log_close(log), 0);
	} else {
		stor_log_abandon(log);
		f->cap->len = 0;
		f->cap->text[0] = '\0';
	}
	check_files(f, bases, nseg, clean);
	log = popen_log(f->e, f->dir, f->segment, f->step);
	assert_int_equal(strstr(f->cap->text, "clean shutdown") != NULL, clean);
	assert_int_equal(check_segments(f, log, true), nseg);
	pverify(f->e, log, f->m);
	return log;
}

/* ---- appends outrunning the reservation ---------------------------------- */

#define OUT_STEP (128u << 10)
#define OUT_SEG (4u << 20)

static void
test_outrun(void **state)
{
	struct pfix f;
	struct stat st;
	uint64_t data;

	(void)state;
	pfix_init(&f, "", OUT_SEG, OUT_STEP);
	hold_ops = *f.wrap->be.ops;
	hold_ops.queue = hold_queue;
	f.wrap->be.ops = &hold_ops;

	struct stor_log *log = popen_log(f.e, f.dir, OUT_SEG, OUT_STEP);
	unsigned allocs0 = f.wrap->allocs;
	g_hold = 1;
	/* About 600 KiB, over four steps, with the first step's fallocate held. */
	data = pappend_until(&f, log, 600u << 10, 10, 1000, 97);
	/* The first append queued the one fallocate; none more while it is in flight. */
	assert_int_equal(f.wrap->allocs - allocs0, 1);
	assert_int_equal(g_n_held, 1);
	assert_int_equal(g_held[0]->off, 0);
	assert_true(g_held[0]->len <= ALIGN_UP(f.m->len[0]) + OUT_STEP);
	/* The writes grew the file: as long as the data (a block's padding at most). */
	seg_stat(f.dir, 0, &st);
	assert_true((uint64_t)st.st_size >= data && (uint64_t)st.st_size <= ALIGN_UP(data));
	check_file(f.dir, 0, f.m, data);
	pverify(f.e, log, f.m);

	/* The step lands late, below the data: fallocate mode 0 keeps the bytes. */
	hold_release(&f.wrap->be);
	stor_engine_drain(f.e);
	seg_stat(f.dir, 0, &st);
	assert_true((uint64_t)st.st_size >= data && (uint64_t)st.st_size <= ALIGN_UP(data));
	check_file(f.dir, 0, f.m, data);

	/* The next append reserves a step past the data at once. */
	data = pappend_until(&f, log, 0, 10, 500, 0);
	assert_int_equal(f.wrap->allocs - allocs0, 2);
	seg_stat(f.dir, 0, &st);
	assert_int_equal((uint64_t)st.st_size, ALIGN_UP(data) + OUT_STEP);
	assert_true((uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size - STOR_BLOCK_SIZE);
	assert_true((uint64_t)st.st_blocks * 512 <= (uint64_t)st.st_size + BLOCKS_SLACK);

	/* A crash: the batches, then zeros up to the reserved end; recovery cuts the zeros. */
	log = prestart(&f, log, false);
	/* Appends go on after the survivors, a step ahead again; a clean close trims. */
	data = pappend_until(&f, log, 0, 3, 200, 0);
	seg_stat(f.dir, 0, &st);
	assert_int_equal((uint64_t)st.st_size, ALIGN_UP(data) + OUT_STEP);
	log = prestart(&f, log, true);
	assert_int_equal(stor_log_close(log), 0);
	pfix_fini(&f);
}

/* ---- rolls under a burst ------------------------------------------------- */

#define ROLL_STEP (64u << 10)
#define ROLL_SEG (512u << 10)

static void
rolls(const char *base)
{
	struct pfix f;

	pfix_init(&f, base, ROLL_SEG, ROLL_STEP);
	struct stor_log *log = popen_log(f.e, f.dir, ROLL_SEG, ROLL_STEP);
	unsigned allocs0 = f.wrap->allocs + f.wrap->sync_allocs;
	/* About 2.5 MiB in batches of about 10 KiB: five segments, no drain between. */
	uint64_t data = pappend_until(&f, log, (5u * ROLL_SEG) - (ROLL_SEG / 2), 8, 1200, 33);
	unsigned nseg = stor_log_segment_count(log);
	assert_true(nseg >= 4);
	/*
	 * Steps, not one fallocate per append nor one per segment. A roll while the
	 * last segment's FALLOCATE is in flight preallocates in place (allocate(), not
	 * queued): counted too, or a slow completion (a loaded machine) failed this.
	 */
	unsigned allocs = f.wrap->allocs + f.wrap->sync_allocs - allocs0;
	assert_true(allocs >= nseg);
	assert_true(allocs <= 2 * data / ROLL_STEP + nseg + 1);
	assert_true(allocs < (unsigned)f.m->n / 2);
	check_segments(&f, log, false);
	pverify(f.e, log, f.m);

	/* A crash, then a clean restart: the same batches, the reservation trimmed. */
	log = prestart(&f, log, false);
	pappend_until(&f, log, data + 80000, 8, 1200, 0);
	check_segments(&f, log, false);
	log = prestart(&f, log, true);
	assert_int_equal(stor_log_close(log), 0);
	pfix_fini(&f);
}

/* ---- failing steps (ENOSPC) ---------------------------------------------- */

static unsigned
count_lines(const char *text, const char *what)
{
	unsigned n = 0;

	for (const char *p = strstr(text, what); p != NULL; p = strstr(p + 1, what))
		n++;
	return n;
}

/*
 * Every step of two logs fails: appends go on (writes grow the files), each
 * failure is counted, and the warning is logged once (not once per step:
 * per engine, at most one a minute), then the log closes cleanly.
 */
static void
test_enospc_warns_once(void **state)
{
	struct pfix f, f2;
	struct stor_engine_stats st;
	struct stor_log *log, *log2;
	uint64_t data;

	(void)state;
	pfix_init(&f, "", ROLL_SEG, ROLL_STEP);
	enospc_ops = *f.wrap->be.ops;
	enospc_ops.queue = enospc_queue;
	enospc_ops.poll = enospc_poll;
	enospc_ops.inflight = enospc_inflight;
	f.wrap->be.ops = &enospc_ops;
	log = popen_log(f.e, f.dir, ROLL_SEG, ROLL_STEP);
	/* A second log on the same engine, its own model and directory. */
	f2 = f;
	f2.m = calloc(1, sizeof(*f2.m));
	f2.dir = tu_tmpdir("");
	assert_non_null(f2.m);
	assert_non_null(f2.dir);
	log2 = popen_log(f.e, f2.dir, ROLL_SEG, ROLL_STEP);

	/* About 400 KiB each: six steps of 64 KiB or more, every one failing. */
	data = pappend_until(&f, log, 400u << 10, 8, 1200, 33);
	pappend_until(&f2, log2, 400u << 10, 8, 1200, 33);
	stor_engine_stats(f.e, &st);
	print_message("%" PRIu64 " failed steps; log:\n%s", st.prealloc_failures, f.cap->text);
	assert_true(st.prealloc_failures >= 10);
	assert_int_equal(st.prealloc_failures, f.wrap->allocs);
	assert_int_equal(count_lines(f.cap->text, "preallocation failed"), 1);
	assert_non_null(strstr(f.cap->text, "No space left on device (further failures: one "
	                                    "warning a minute at most)"));
	/* The data is whole: the writes grew the file past the failed reservations. */
	check_segments(&f, log, false);
	pverify(f.e, log, f.m);
	pverify(f.e, log2, f2.m);
	assert_true(data > 0);
	assert_int_equal(stor_log_close(log2), 0);
	log = prestart(&f, log, true);
	assert_int_equal(stor_log_close(log), 0);
	pmodel_free(f2.m);
	free(f2.m);
	tu_rm_rf(f2.dir);
	free(f2.dir);
	pfix_fini(&f);
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
	        cmocka_unit_test(test_enospc_warns_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
