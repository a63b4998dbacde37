/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compaction: the cleaned log must equal a reference the test computes from
 * what it appended (latest record per key among the sealed segments,
 * expired tombstones gone, the active segment untouched), read back through
 * the log after finish, after a clean restart and after a crash restart.
 * Also: compressed batches, records without keys (dropped, as by Kafka), an interrupted compaction
 * (leftover .cleaned files) and a policy that is not compact. On disk the
 * replaced files are closed off the log's thread (the engine's async_closes).
 */
#include <errno.h>
#include <linux/magic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/vfs.h>

#include "stor_compact.h"
#include "stor_test_util.h"

#define NREC 4000

/* One appended record, as the reference sees it. */
struct rec {
	int64_t offset;
	int key;   /* -1: no key */
	int value; /* -1: tombstone */
	int64_t batch_max_ts;
	int in_active; /* filled after the append: the record's batch is in the active segment */
};

static struct rec recs[NREC];
static int nrec;

static void
key_str(char *b, size_t n, int key)
{
	snprintf(b, n, "key-%d", key);
}

/* Append a batch of @n records with keys/values from a fixed pseudo-random walk. */
static int64_t
append_batch(struct stor_engine *e, struct stor_log *log, int n, int64_t ts, unsigned *rng,
             enum kp_compression codec, int force_key)
{
	uint8_t buf[65536];
	struct kp_batch_builder b;
	size_t size;
	int keys[64], vals[64];

	assert_int_equal(kp_batch_builder_start(&b, buf, sizeof(buf), codec), 0);
	for (int i = 0; i < n; i++) {
		*rng = *rng * 1103515245u + 12345u;
		int key = (int)((*rng >> 8) % 23);
		int val = (int)((*rng >> 4) % 1000);
		if ((*rng >> 20) % 11 == 0)
			val = -1; /* tombstone */
		if ((*rng >> 24) % 37 == 0)
			key = -1; /* no key */
		if (force_key >= 0 && i == n - 1) {
			key = force_key; /* a key used once: its tombstone is the latest */
			val = -1;
		}
		char k[32], v[64];
		key_str(k, sizeof(k), key);
		snprintf(v, sizeof(v), "value-%d-padding-padding-padding", val);
		assert_int_equal(kp_batch_builder_add(&b, ts + i, key < 0 ? NULL : k, strlen(k),
		                                      val < 0 ? NULL : v, strlen(v), NULL, 0),
		                 0);
		keys[i] = key;
		vals[i] = val;
	}
	assert_int_equal(kp_batch_builder_finish(&b, &size), 0);
	struct tu_ack a = {0};
	int64_t base;
	assert_int_equal(stor_log_append(log, buf, size, 0, tu_ack_cb, &a, &base), 0);
	assert_int_equal(tu_poll_until(e, &a.done, 1), 0);
	for (int i = 0; i < n; i++) {
		recs[nrec].offset = base + i;
		recs[nrec].key = keys[i];
		recs[nrec].value = vals[i];
		recs[nrec].batch_max_ts = ts + n - 1;
		nrec++;
	}
	return base;
}

/* The reference: what compaction of the records below @active_base must leave. */
static int
reference(int64_t active_base, int64_t horizon, struct rec *out)
{
	int n = 0;

	for (int i = 0; i < nrec; i++) {
		const struct rec *r = &recs[i];
		if (r->offset < active_base && r->key < 0)
			continue; /* keyless records are dropped by the cleaner */
		if (r->offset < active_base) {
			int latest = 1;
			for (int j = i + 1; j < nrec && recs[j].offset < active_base; j++)
				if (recs[j].key == r->key)
					latest = 0;
			if (!latest)
				continue;
			if (r->value < 0 && r->batch_max_ts < horizon)
				continue;
		}
		out[n++] = *r;
	}
	return n;
}

/* Read every record of the log back, in offset order. */
static int
read_all(struct stor_engine *e, struct stor_log *log, struct rec *out)
{
	size_t bsz = stor_read_buf_size(1 << 20);
	uint8_t *buf = aligned_alloc(STOR_BLOCK_SIZE, bsz);
	uint8_t *scratch = malloc(1 << 20);
	struct stor_read rd = {.buf = buf, .buf_size = bsz};
	int64_t off = stor_log_start_offset(log);
	int n = 0;

	while (off < stor_log_end_offset(log)) {
		assert_int_equal(tu_read(e, log, &rd, off, 1 << 20), 0);
		assert_true(rd.len > 0);
		size_t pos = 0;
		while (pos < rd.len) {
			struct kp_batch_header h;
			/* Every batch, rewritten or not, passes header and CRC checks. */
			assert_int_equal(kp_batch_header_parse(rd.data + pos, rd.len - pos, &h), 0);
			assert_int_equal(kp_batch_crc_check(rd.data + pos, &h), 0);
			size_t rlen;
			assert_int_equal(kp_batch_records_decompress(NULL, rd.data + pos, &h,
			                                             scratch, 1 << 20, &rlen),
			                 0);
			struct kp_record_iter it;
			struct kp_record r;
			kp_record_iter_init(&it, scratch, rlen, h.records_count);
			while (kp_record_iter_next(&it, &r) == 1) {
				out[n].offset = h.base_offset + r.offset_delta;
				out[n].key = -1;
				if (r.key_len >= 0)
					assert_int_equal(
					        sscanf((const char *)r.key, "key-%d", &out[n].key),
					        1);
				out[n].value = -1;
				if (r.value_len >= 0)
					assert_int_equal(sscanf((const char *)r.value, "value-%d",
					                        &out[n].value),
					                 1);
				n++;
			}
			pos += kp_batch_size(&h);
		}
		off = rd.next_offset;
		stor_read_release(&rd);
	}
	free(scratch);
	free(buf);
	return n;
}

static void
assert_same(const struct rec *want, int nwant, const struct rec *got, int ngot)
{
	for (int i = 0; i < nwant && i < ngot; i++)
		if (got[i].offset != want[i].offset || got[i].key != want[i].key) {
			print_error("first diff at %d: want off %lld key %d val %d, got off %lld "
			            "key %d\n",
			            i, (long long)want[i].offset, want[i].key, want[i].value,
			            (long long)got[i].offset, got[i].key);
			break;
		}
	assert_int_equal(ngot, nwant);
	for (int i = 0; i < nwant; i++) {
		assert_int_equal(got[i].offset, want[i].offset);
		assert_int_equal(got[i].key, want[i].key);
		assert_int_equal(got[i].value, want[i].value);
	}
}

static struct rec want[NREC], got[NREC];

static void
run_compaction(enum kp_compression codec)
{
	struct tu_logcap cap = {0};
	struct stor_engine *e = tu_engine(NULL, STOR_DIRECT_AUTO, 256 << 10, 16, &cap);
	struct stor_log_config cfg;
	char *dir = tu_tmpdir("");
	unsigned rng = 42;
	int err = 0;

	nrec = 0;
	stor_log_config_init(&cfg);
	cfg.roll_ms = -1;
	cfg.index_interval_bytes = 512;
	assert_int_equal(stor_log_config_set(&cfg, "segment.bytes",
	                                     codec == KP_COMPRESSION_NONE ? "16384" : "4096"),
	                 0);
	assert_int_equal(stor_log_config_set(&cfg, "cleanup.policy", "compact"), 0);
	assert_int_equal(stor_log_config_set(&cfg, "delete.retention.ms", "1000"), 0);
	struct stor_log *log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	/* Timestamps: the first half old (tombstones expire), the second half recent. */
	int64_t now = 1000000;
	for (int b = 0; b < 200; b++)
		append_batch(e, log, 1 + b % 9, b < 100 ? now - 50000 + b : now - 10 + b % 5, &rng,
		             codec,
		             b == 50    ? 99
		             : b == 150 ? 98
		                        : -1);
	stor_engine_drain(e);
	unsigned nseg = stor_log_segment_count(log);
	assert_true(nseg >= 4);
	int64_t active_base = stor_log_segment_base(log, nseg - 1);

	struct stor_compact_job *job;
	struct stor_compact_stats st;
	assert_int_equal(stor_log_compact_begin(log, now, &job), 0);
	/* Appends go on while the job runs (here: between begin and finish). */
	int64_t more = append_batch(e, log, 3, now, &rng, codec, -1);
	assert_true(more >= active_base);
	assert_int_equal(stor_compact_job_run(job, &st), 0);
	assert_true(st.records_kept < st.records_in);
	assert_true(st.tombstones_dropped > 0);
	assert_true(st.bytes_out < st.bytes_in);
	struct stor_engine_stats es0, es1;
	struct statfs sf;
	stor_engine_stats(e, &es0);
	assert_int_equal(stor_log_compact_finish(log, job), 0);
	/* On disk the replaced files' last descriptors close off this thread. */
	stor_engine_stats(e, &es1);
	assert_int_equal(statfs(dir, &sf), 0);
	if (sf.f_type != TMPFS_MAGIC && sf.f_type != RAMFS_MAGIC)
		assert_true(es1.async_closes > es0.async_closes);

	int nwant = reference(active_base, now - 1000, want);
	assert_true(nwant < nrec);
	int ngot = read_all(e, log, got);
	assert_same(want, nwant, got, ngot);
	/* Offsets and lookups still work on the cleaned segments. */
	int64_t off;
	assert_int_equal(stor_log_offset_for_time(log, now - 50000 + 50, &off, NULL), 0);
	assert_true(off >= 0);

	/* Clean restart, then a crash restart: same content. */
	assert_int_equal(stor_log_close(log), 0);
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	ngot = read_all(e, log, got);
	assert_same(want, nwant, got, ngot);
	stor_log_abandon(log);
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	ngot = read_all(e, log, got);
	assert_same(want, nwant, got, ngot);

	/* Compacting again changes nothing (the map now only sees survivors). */
	assert_int_equal(stor_log_compact_begin(log, now, &job), 0);
	assert_int_equal(stor_compact_job_run(job, &st), 0);
	assert_int_equal(stor_log_compact_finish(log, job), 0);
	ngot = read_all(e, log, got);
	assert_same(want, nwant, got, ngot);

	/* An interrupted job: .cleaned files left behind are removed at open. */
	assert_int_equal(stor_log_compact_begin(log, now, &job), 0);
	assert_int_equal(stor_compact_job_run(job, &st), 0);
	stor_log_abandon(log); /* the job never finishes */
	char path[4300];
	snprintf(path, sizeof(path), "%s/%020d.log.cleaned", dir, 0);
	assert_int_equal(access(path, F_OK), 0);
	log = stor_log_open(e, dir, &cfg, &err);
	assert_non_null(log);
	assert_int_equal(access(path, F_OK), -1);
	ngot = read_all(e, log, got);
	assert_same(want, nwant, got, ngot);
	/* A job whose log went away still frees (finish on a reopened log skips it). */
	stor_log_compact_finish(log, job);
	ngot = read_all(e, log, got);
	assert_same(want, nwant, got, ngot);
	assert_int_equal(stor_log_close(log), 0);

	/* cleanup.policy=delete: no compaction. */
	stor_log_config_set(&cfg, "cleanup.policy", "delete");
	log = stor_log_open(e, dir, &cfg, &err);
	assert_int_equal(stor_log_compact_begin(log, now, &job), -ENOENT);
	assert_int_equal(stor_log_close(log), 0);

	stor_engine_destroy(e);
	tu_rm_rf(dir);
	free(dir);
}

static void
test_compact_plain(void **state)
{
	(void)state;
	run_compaction(KP_COMPRESSION_NONE);
}

static void
test_compact_lz4(void **state)
{
	(void)state;
	run_compaction(KP_COMPRESSION_LZ4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_compact_plain),
	        cmocka_unit_test(test_compact_lz4),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
