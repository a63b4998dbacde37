/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Produce held back for want of tail-cache chunks (dp_produce.c): a broker
 * with one storage writer on the test thread's lcore (EAL --no-huge), whose
 * reactor the test drives by hand, and a pool of only 4 chunks of 64 KiB.
 * The test is the transport: it offers a request frame with
 * dp_conn_deliver_frame() and, while the handler says "not now" (-EAGAIN),
 * polls the reactor and offers the same frame again, as net_kernel and
 * net_dpdk do. Checked: a Produce to 12 partitions appends 4, holds back,
 * and resumes as writes free chunks, answering every partition NONE in
 * request order with the right offsets and every batch stored once and in
 * order; a partition of several batches stopped part way goes on from its
 * next batch; with every chunk pinned by reads, the request answers
 * REQUEST_TIMED_OUT once its timeout_ms is spent, and appends once they are
 * released; a request held back when its connection goes is dropped (its
 * response buffer given back); an idempotent retry of a batch still being
 * written waits for it and gets the original's offset; a LogAppendTime topic's
 * batches are stamped (type bit, maxTimestamp, CRC) across a hold and resume.
 * Real storage (io_uring) in a temporary
 * directory. Skips (77) when the EAL cannot start.
 */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_mempool.h>

#include "dp_broker.h"
#include "dp_config.h"
#include "dp_conn.h"
#include "dp_handler.h"
#include "dp_reactor.h"
#include "dp_requests.h"
#include "dp_requests_int.h"
#include "kp_api.h"
#include "kp_batch.h"
#include "kp_error.h"
#include "stor_engine.h"
#include "stor_log.h"

#define PARTS 12
#define CHUNKS 4
#define CHUNK_BYTES 65536
#define RESP_BYTES (64u * 1024u)
#define MAX_INFLIGHT 8
#define PRODUCE_V 7
#define FRAME_BYTES (512u * 1024u)
#define BIG_VALUE 40000 /* one record: a batch fits a chunk, two do not */

static unsigned int g_lc;
static char g_dir[256];
static struct dp_config g_cfg;
static struct dp_broker g_b;
static const struct dp_handler_apis *g_apis;
static struct rte_mempool *g_pool;

/* ---- a connection whose transport is the test: dp_conn_test_util.h ------------------------- */

#include "dp_conn_test_util.h"
#include "dp_request_test_util.h"

static uint64_t
ms_now(void)
{
	return rte_rdtsc() / (rte_get_tsc_hz() / 1000);
}

static uint8_t g_frame[FRAME_BYTES];
static uint32_t g_frame_len;

/*
 * Offer the frame in g_frame as a transport does: until the handler takes
 * it, poll the reactor (storage completions) and offer it again; at most
 * @ms. @return how many offers were refused (0: taken at once).
 */
static unsigned
deliver(unsigned ms)
{
	uint64_t deadline = ms_now() + ms;
	unsigned refused = 0;
	int rc;

	while ((rc = dp_conn_deliver_frame(&g_c.base, g_frame, g_frame_len)) == 0) {
		assert_true(g_c.base.rx_stalled); /* "offer it again later" */
		assert_true(ms_now() < deadline);
		refused++;
		dp_reactor_poll_once(g_lc);
	}
	assert_int_equal(rc, 1);
	return refused;
}

/* Poll until @n response bytes arrived (10 s at most). */
static void
run_until(size_t n)
{
	uint64_t deadline = ms_now() + 10000;

	while (g_c.got_len < n) {
		assert_true(ms_now() < deadline);
		dp_reactor_poll_once(g_lc);
		service();
	}
}

/* Encode Produce @m into g_frame. */
static void
frame_produce(int32_t corr, const struct kp_produce_request *m)
{
	g_frame_len = t_frame(g_frame, sizeof(g_frame), 0, PRODUCE_V, corr, t_enc_produce, m);
}

/*
 * A batch of @n records "p<part>-<first + i>" (t_batch), or one record of
 * BIG_VALUE bytes (@n < 0).
 */
static size_t
make_batch(uint8_t *buf, size_t cap, int part, int first, int n)
{
	static char big[BIG_VALUE];
	struct kp_batch_builder bb;
	size_t size = 0;

	if (n >= 0)
		return t_batch(buf, cap, part, first, n, -1, 0);
	assert_int_equal(kp_batch_builder_start(&bb, buf, cap, KP_COMPRESSION_NONE), 0);
	memset(big, 'a' + first % 26, sizeof(big));
	assert_int_equal(kp_batch_builder_add(&bb, 1000, NULL, 0, big, sizeof(big), NULL, 0), 0);
	assert_int_equal(kp_batch_builder_finish(&bb, &size), 0);
	return size;
}

/* The records of each partition of a request (a copy of what was sent, to compare). */
static uint8_t g_recs[PARTS][6 * (BIG_VALUE + 512)];
static size_t g_recs_len[PARTS];
static struct kp_produce_request_partition_produce_data g_pd[PARTS];

/*
 * Frame a Produce (acks -1, @timeout_ms) to the @np partitions @parts of
 * topic "t": @nb batches each, of 3 records "p<part>-<first + i>" (or one
 * big record each when @big).
 */
static void
produce_frame(int32_t corr, const int *parts, int np, int first, int nb, bool big,
	int32_t timeout_ms)
{
	struct kp_produce_request m;
	struct kp_produce_request_topic_produce_data td;

	for (int i = 0; i < np; i++) {
		g_recs_len[i] = 0;
		for (int b = 0; b < nb; b++)
			g_recs_len[i] += make_batch(g_recs[i] + g_recs_len[i],
				sizeof(g_recs[i]) - g_recs_len[i], parts[i], first + 3 * b,
				big ? -1 : 3);
		t_produce_part(&g_pd[i], parts[i], g_recs[i], g_recs_len[i]);
	}
	t_produce(&m, &td, g_pd, np, timeout_ms);
	frame_produce(corr, &m);
}

/*
 * Wait for the response to @corr and check it (t_produce_answer): one
 * partition per request partition, in request order, each with error
 * @want_err and (when NONE) the base offset @want_base[i] (NULL: all 0).
 */
static void
produce_check(int32_t corr, const int *parts, int np, int16_t want_err, const int64_t *want_base)
{
	struct kp_reader r;

	run_until(8);
	run_until(4 + (size_t)t_got_size());
	t_take_response(corr, &r);
	t_produce_answer(&r, parts, np, want_err, want_base);
}

static struct stor_log *
plog(int p)
{
	struct dp_topic *t = dp_broker_topic_find(&g_b, "t", 1);

	assert_non_null(t);
	assert_non_null(t->part[p].log);
	return t->part[p].log;
}

struct rwait {
	bool done;
	int rc;
};

static void
rdone(void *arg, struct stor_read *rd, int rc)
{
	struct rwait *w = arg;

	(void)rd;
	w->done = true;
	w->rc = rc;
}

/* Read partition @p's batches from @offset (cache or disk) into @rd; waits. */
static void
read_at(struct stor_read *rd, void *buf, size_t cap, int p, int64_t offset)
{
	struct rwait w = {false, 0};
	int rc;

	memset(rd, 0, sizeof(*rd));
	rd->buf = buf;
	rd->buf_size = cap;
	rc = stor_log_read(plog(p), rd, offset, cap / 2, rdone, &w);
	if (rc == -EINPROGRESS) {
		while (!w.done)
			stor_engine_poll(g_b.engine);
		rc = w.rc;
	}
	assert_int_equal(rc, 0);
}

/* Partition @p holds, from @offset, exactly the @n_bytes of batches in @want (base offsets aside). */
static void
check_stored(int p, int64_t offset, const uint8_t *want, size_t n_bytes)
{
	static uint8_t buf[2u << 20] __attribute__((aligned(4096)));
	size_t seen = 0;

	while (seen < n_bytes) {
		struct stor_read rd;
		size_t k = 0;

		read_at(&rd, buf, sizeof(buf), p, offset);
		assert_true(rd.len > 0);
		while (k < rd.len && seen < n_bytes) {
			struct kp_batch_header bh;

			assert_int_equal(kp_batch_header_parse(rd.data + k, rd.len - k, &bh), 0);
			assert_int_equal(bh.base_offset, offset);
			assert_true(seen + kp_batch_size(&bh) <= n_bytes);
			/* Everything but the base offset, which the log assigned. */
			assert_memory_equal(rd.data + k + 8, want + seen + 8, kp_batch_size(&bh) - 8);
			seen += kp_batch_size(&bh);
			k += kp_batch_size(&bh);
			offset = bh.base_offset + bh.last_offset_delta + 1;
		}
		stor_read_release(&rd);
	}
	assert_int_equal(stor_log_end_offset(plog(p)), offset);
}

static void
stats(struct dp_produce_stats *s)
{
	dp_produce_stats_get(s);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void
test_more_partitions_than_chunks(void **state)
{
	struct dp_produce_stats s0, s1;
	int parts[PARTS];
	int64_t at[PARTS];
	unsigned refused;

	(void)state;
	for (int i = 0; i < PARTS; i++)
		parts[i] = PARTS - 1 - i; /* any order: answered in request order */
	stats(&s0);
	produce_frame(1, parts, PARTS, 0, 1, false, 30000);
	refused = deliver(10000);
	stats(&s1);
	/* 12 partitions on 4 chunks: held back at least twice before it went through. */
	assert_true(refused >= 2);
	assert_int_equal(s1.parked, s0.parked + 1);
	assert_true(s1.resumed >= s0.resumed + 2);
	assert_int_equal(s1.timed_out, s0.timed_out);
	assert_int_equal(s1.parked_now, 0);
	produce_check(1, parts, PARTS, KP_ERR_NONE, NULL);
	for (int i = 0; i < PARTS; i++)
		check_stored(parts[i], 0, g_recs[i], g_recs_len[i]);

	/* Again: offsets go on from 3 in every partition. */
	for (int i = 0; i < PARTS; i++)
		at[i] = 3;
	produce_frame(2, parts, PARTS, 3, 1, false, 30000);
	(void)deliver(10000);
	produce_check(2, parts, PARTS, KP_ERR_NONE, at);
	for (int i = 0; i < PARTS; i++)
		check_stored(parts[i], 3, g_recs[i], g_recs_len[i]);
}

static void
test_stops_inside_a_partition(void **state)
{
	struct dp_produce_stats s0, s1;
	int parts[2] = {0, 1};
	int64_t base[2] = {stor_log_end_offset(plog(0)), stor_log_end_offset(plog(1))};
	unsigned refused;

	(void)state;
	stats(&s0);
	/* 6 batches of one 40 KB record per partition: one chunk each, 4 chunks in the pool. */
	produce_frame(3, parts, 2, 100, 6, true, 30000);
	refused = deliver(10000);
	stats(&s1);
	assert_true(refused >= 2);
	assert_int_equal(s1.parked, s0.parked + 1);
	produce_check(3, parts, 2, KP_ERR_NONE, base);
	for (int i = 0; i < 2; i++)
		check_stored(parts[i], base[i], g_recs[i], g_recs_len[i]);
}

/* Pin every chunk: partitions 0-3 each get a batch, then a read of it holds its chunk. */
static void
pin_chunks(struct stor_read *rd, uint8_t (*bufs)[8192])
{
	int parts[CHUNKS] = {0, 1, 2, 3};
	int64_t at[CHUNKS];

	for (int i = 0; i < CHUNKS; i++)
		at[i] = stor_log_end_offset(plog(i));
	produce_frame(10, parts, CHUNKS, 0, 1, false, 30000);
	assert_int_equal(deliver(10000), 0); /* a chunk each, from those reclaimable */
	produce_check(10, parts, CHUNKS, KP_ERR_NONE, at);
	for (int i = 0; i < CHUNKS; i++) {
		read_at(&rd[i], bufs[i], 8192, i, at[i]);
		assert_int_equal(rd[i].from_cache, 1);
	}
	assert_int_equal(stor_engine_chunks_available(g_b.engine), 0);
}

static void
test_times_out_when_nothing_frees(void **state)
{
	static uint8_t bufs[CHUNKS][8192] __attribute__((aligned(4096)));
	struct stor_read rd[CHUNKS];
	struct dp_produce_stats s0, s1;
	int parts[2] = {4, 5};
	int64_t end[2] = {stor_log_end_offset(plog(4)), stor_log_end_offset(plog(5))};
	uint64_t t0;

	(void)state;
	pin_chunks(rd, bufs);
	stats(&s0);
	produce_frame(11, parts, 2, 0, 1, false, 300);
	t0 = ms_now();
	assert_true(deliver(10000) > 0);
	assert_true(ms_now() - t0 >= 290); /* held back for its timeout_ms */
	produce_check(11, parts, 2, KP_ERR_REQUEST_TIMED_OUT, NULL);
	stats(&s1);
	assert_int_equal(s1.parked, s0.parked + 1);
	assert_int_equal(s1.timed_out, s0.timed_out + 2);
	assert_int_equal(stor_log_end_offset(plog(4)), end[0]); /* nothing appended */
	assert_int_equal(stor_log_end_offset(plog(5)), end[1]);

	/* Chunks released: the same request appends at once. */
	for (int i = 0; i < CHUNKS; i++)
		stor_read_release(&rd[i]);
	produce_frame(12, parts, 2, 0, 1, false, 300);
	(void)deliver(10000);
	produce_check(12, parts, 2, KP_ERR_NONE, end);
}

static void
test_dropped_when_the_connection_goes(void **state)
{
	static uint8_t bufs[CHUNKS][8192] __attribute__((aligned(4096)));
	struct stor_read rd[CHUNKS];
	struct dp_produce_stats s0, s1;
	int parts[1] = {6};
	int64_t end6 = stor_log_end_offset(plog(6));
	unsigned avail = rte_mempool_avail_count(g_pool);

	(void)state;
	pin_chunks(rd, bufs);
	stats(&s0);
	produce_frame(20, parts, 1, 0, 1, false, 30000);
	assert_int_equal(dp_conn_deliver_frame(&g_c.base, g_frame, g_frame_len), 0);
	stats(&s1);
	assert_int_equal(s1.parked, s0.parked + 1);
	assert_int_equal(s1.parked_now, 1);
	assert_int_equal(rte_mempool_avail_count(g_pool), avail - 1); /* its response buffer */

	/* The connection goes (closed and reset by its transport); the chunks come free. */
	dp_conn_reset(&g_c.base);
	g_c.got_len = 0;
	for (int i = 0; i < CHUNKS; i++)
		stor_read_release(&rd[i]);
	/* The next Produce finds it gone and drops it; its own appends go through. */
	produce_frame(21, parts, 1, 0, 1, false, 30000);
	assert_int_equal(deliver(10000), 0);
	produce_check(21, parts, 1, KP_ERR_NONE, &end6);
	stats(&s1);
	assert_int_equal(s1.dropped, s0.dropped + 1);
	assert_int_equal(s1.parked_now, 0);
	check_stored(6, end6, g_recs[0], g_recs_len[0]); /* once: the dropped one appended nothing */
	assert_int_equal(rte_mempool_avail_count(g_pool), avail);
}

/*
 * An idempotent producer's retry of a batch whose append is still in flight
 * (not written: nothing polled the engine yet) is held back until the
 * original is written, then answered NONE with the original's offset; the
 * batch is stored once.
 */
static void
test_retry_waits_for_the_original(void **state)
{
	struct dp_produce_stats s0, s1;
	struct kp_produce_request m;
	struct kp_produce_request_topic_produce_data td;
	int parts[1] = {7};
	int64_t base = stor_log_end_offset(plog(7));
	size_t len;

	(void)state;
	len = t_batch(g_recs[0], sizeof(g_recs[0]), 7, 0, 3, 4242, 0);
	g_recs_len[0] = len;
	t_produce_part(&g_pd[0], 7, g_recs[0], len);
	t_produce(&m, &td, g_pd, 1, 30000);

	stats(&s0);
	frame_produce(30, &m);
	assert_int_equal(dp_conn_deliver_frame(&g_c.base, g_frame, g_frame_len), 1);
	/* The retry, before the engine was polled: the original is not written. */
	frame_produce(31, &m);
	assert_true(deliver(10000) > 0);
	stats(&s1);
	assert_int_equal(s1.parked, s0.parked + 1);
	assert_int_equal(s1.timed_out, s0.timed_out);
	produce_check(30, parts, 1, KP_ERR_NONE, &base);
	produce_check(31, parts, 1, KP_ERR_NONE, &base); /* the original's offset */
	check_stored(7, base, g_recs[0], len);           /* once */
}

/* ---- fixture --------------------------------------------------------------------------------- */

static int
group_setup(void **state)
{
	char err[DP_CONFIG_ERR_LEN];
	char chunks[16];
	char chunk_bytes[16];
	unsigned lcores[1] = {g_lc};
	struct dp_topic *t;

	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/test_dp_produce.XXXXXX");
	if (mkdtemp(g_dir) == NULL)
		return -1;
	if (dp_config_init(&g_cfg) < 0 ||
		dp_config_set(&g_cfg, "log.dir", g_dir, "test", 1, err, sizeof(err)) < 0 ||
		dp_config_set(&g_cfg, "log.segment.bytes", "8388608", "test", 2, err, sizeof(err)) < 0 ||
		dp_config_finish(&g_cfg, "test", err, sizeof(err)) < 0)
		return -1;
	if (dp_reactors_init(lcores, 1, 1024, 0) < 0)
		return -1;
	dp_broker_init(&g_b);
	snprintf(chunks, sizeof(chunks), "%d", CHUNKS);
	snprintf(chunk_bytes, sizeof(chunk_bytes), "%d", CHUNK_BYTES);
	if (dp_broker_storage_key(&g_b, "storage.cache.chunks", chunks) < 0 ||
		dp_broker_storage_key(&g_b, "storage.cache.chunk.bytes", chunk_bytes) < 0 ||
		dp_broker_start(&g_b, &g_cfg) < 0)
		return -1;
	if (dp_poller_register(g_lc, "storage", dp_broker_poll, &g_b, 0, DP_POLLER_EVERY) < 0)
		return -1;
	g_apis = dp_requests_init(&g_b, &g_cfg);
	if (g_apis == NULL ||
		dp_poller_register(g_lc, "fetch.wait", dp_requests_poll, dp_requests_arg(), 0,
			DP_POLLER_EVERY) < 0)
		return -1;
	g_pool = rte_mempool_create("t_produce_resp", 16, RESP_BYTES, 0, 0, NULL, NULL, NULL, NULL,
		(int)rte_socket_id(), RTE_MEMPOOL_F_SP_PUT | RTE_MEMPOOL_F_SC_GET);
	if (g_pool == NULL)
		return -1;
	tconn_setup(g_pool, (void *)(uintptr_t)g_apis, FRAME_BYTES);
	return dp_broker_topic_create(&g_b, "t", 1, PARTS, NULL, &t) == 0 ? 0 : -1;
}

static int
group_teardown(void **state)
{
	char cmd[300];
	int rc;

	(void)state;
	rc = dp_broker_stop(&g_b);
	dp_reactors_fini();
	rte_mempool_free(g_pool);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return rc == 0 && system(cmd) == 0 ? 0 : -1;
}


static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A LogAppendTime topic whose Produce is held back part way and resumed:
 * every stored batch carries the type bit, a maxTimestamp of the broker's
 * clock during the request and a CRC that checks; every other byte is the
 * producer's.
 */
static void
test_log_append_time_across_a_hold(void **state)
{
	static uint8_t buf[2u << 20] __attribute__((aligned(4096)));
	struct dp_topic *t = dp_broker_topic_find(&g_b, "t", 1);
	int parts[2] = {0, 1};
	int64_t base[2];
	int64_t t0, t1;

	(void)state;
	assert_int_equal(dp_broker_topic_configs_set(&g_b, t, "message.timestamp.type=LogAppendTime",
		false), 0);
	base[0] = stor_log_end_offset(plog(0));
	base[1] = stor_log_end_offset(plog(1));
	t0 = wall_ms();
	produce_frame(11, parts, 2, 200, 6, true, 30000);
	assert_true(deliver(10000) >= 1); /* held back: 12 big batches, 4 chunks */
	produce_check(11, parts, 2, KP_ERR_NONE, base);
	t1 = wall_ms();
	for (int i = 0; i < 2; i++) {
		int64_t offset = base[i];
		size_t seen = 0;

		while (seen < g_recs_len[i]) {
			struct stor_read rd;
			size_t k = 0;

			read_at(&rd, buf, sizeof(buf), parts[i], offset);
			assert_true(rd.len > 0);
			while (k < rd.len && seen < g_recs_len[i]) {
				const uint8_t *got = rd.data + k, *want = g_recs[i] + seen;
				struct kp_batch_header bh;

				assert_int_equal(kp_batch_header_parse(got, rd.len - k, &bh), 0);
				assert_int_equal(kp_batch_crc_check(got, &bh), 0);
				assert_true(bh.attributes & KP_BATCH_ATTR_TIMESTAMP_TYPE);
				assert_true(bh.max_timestamp >= t0 && bh.max_timestamp <= t1);
				assert_memory_equal(got + 8, want + 8, 17 - 8);  /* length .. magic */
				assert_memory_equal(got + 23, want + 23, 35 - 23); /* to maxTimestamp */
				assert_memory_equal(got + 43, want + 43, kp_batch_size(&bh) - 43);
				seen += kp_batch_size(&bh);
				k += kp_batch_size(&bh);
				offset = bh.base_offset + bh.last_offset_delta + 1;
			}
			stor_read_release(&rd);
		}
	}
	assert_int_equal(dp_broker_topic_configs_set(&g_b, t, "", false), 0);
}

int
main(void)
{
	char prefix[64];
	char lcores[16];
	char *eal[] = {"test_dp_produce", "-l", lcores, "--no-huge", "--no-shconf", "-m", "256",
		"--no-pci", "--no-telemetry", prefix, "--log-level=lib.eal:error", NULL};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_more_partitions_than_chunks),
		cmocka_unit_test(test_stops_inside_a_partition),
		cmocka_unit_test(test_times_out_when_nothing_frees),
		cmocka_unit_test(test_dropped_when_the_connection_goes),
		cmocka_unit_test(test_retry_waits_for_the_original),
		cmocka_unit_test(test_log_append_time_across_a_hold),
	};
	cpu_set_t set;
	int cpu = -1;
	int n;

	snprintf(prefix, sizeof(prefix), "--file-prefix=test_dp_produce_%d", (int)getpid());
	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		for (int c = 0; c < CPU_SETSIZE && cpu < 0; c++)
			if (CPU_ISSET(c, &set))
				cpu = c;
	}
	if (cpu < 0)
		cpu = 0;
	snprintf(lcores, sizeof(lcores), "%d", cpu);
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal) < 0) {
		fprintf(stderr, "test_dp_produce: EAL did not start; skipping\n");
		return 77;
	}
	g_lc = rte_lcore_id();
	n = cmocka_run_group_tests(tests, group_setup, group_teardown);
	rte_eal_cleanup();
	return n;
}
