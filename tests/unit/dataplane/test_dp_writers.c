/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Two storage writers on two real lcores (EAL --no-huge): writer 0 (the
 * metadata owner and the request handlers) on the test thread's lcore, whose
 * reactor the test drives by hand, writer 1 on the second lcore running its
 * reactor in a loop. A topic of 16 partitions is spread over both owners
 * (each log opened on its owner's engine); a Produce to all 16 is split per
 * owner and joined (one response, every partition answered, offsets right);
 * a Fetch of all 16 reads writer 1's partitions on its lcore and returns
 * every record; a long-poll Fetch of one of writer 1's partitions is woken by
 * an append there, and one with min_bytes above a batch parks again until
 * enough arrived; an idempotent producer's retry of a batch owned by
 * writer 1 gets the original offset and a gap OUT_OF_ORDER_SEQUENCE_NUMBER;
 * deleting the topic closes writer 1's logs on its lcore; stopping closes
 * every log cleanly. Real storage engines (io_uring) in a temporary
 * directory. Skips (77) when the EAL cannot start on two lcores.
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
#include <unistd.h>
#include <cmocka.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mempool.h>
#include <rte_pause.h>

#include "dp_broker.h"
#include "dp_config.h"
#include "dp_conn.h"
#include "dp_handler.h"
#include "dp_metrics.h"
#include "dp_reactor.h"
#include "dp_requests.h"
#include "kp_api.h"
#include "kp_batch.h"
#include "kp_error.h"
#include "stor_log.h"

#define PARTS 16
#define RESP_BYTES (256u * 1024u)
#define MAX_INFLIGHT 8
#define PRODUCE_V 7
#define FETCH_V 10

static unsigned int g_lc[2]; /* [0] test thread: writer 0; [1] writer 1 */
static char g_dir[256];
static char g_metrics[300]; /* the metrics segment, in g_dir */
static struct dp_config g_cfg;
static struct dp_broker g_b;
static const struct dp_handler_apis *g_apis;
static struct rte_mempool *g_pool;
static volatile int g_quit;

static int
remote_main(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&g_quit, __ATOMIC_ACQUIRE))
		dp_reactor_poll_once(g_lc[1]);
	return 0;
}

static int
remote_start(void *arg)
{
	(void)arg;
	return dp_broker_writers_start_here(&g_b);
}

/* ---- a connection whose transport is the test: dp_conn_test_util.h ------------------------- */

#include "dp_conn_test_util.h"
#include "dp_request_test_util.h"

/* Poll writer 0's lcore until @n response bytes arrived or @ms passed. @return got_len. */
static size_t
run_for(size_t n, unsigned ms)
{
	uint64_t deadline = rte_rdtsc() + rte_get_tsc_hz() / 1000 * ms;

	while (rte_rdtsc() < deadline && g_c.got_len < n) {
		dp_reactor_poll_once(g_lc[0]);
		service();
	}
	return g_c.got_len;
}

/* Requests keep their frames until answered (dp_hop hop_all does this in the broker). */
static uint8_t g_frames[4][256 * 1024];

/* Encode a request into frame slot @k (t_frame); deliver it. */
static void
send_request(int k, int16_t key, int16_t v, int32_t corr, t_encode_fn enc, const void *m)
{
	uint32_t len = t_frame(g_frames[k], sizeof(g_frames[k]), key, v, corr, enc, m);

	assert_int_equal(dp_conn_deliver_frame(&g_c.base, g_frames[k], len), 1);
}

static uint8_t g_batches[PARTS][512];

/* Send a Produce of @n records to each partition in @parts (count @np). */
static void
produce_send(const int *parts, int np, int first, int n)
{
	static struct kp_produce_request_partition_produce_data pd[PARTS];
	struct kp_produce_request m;
	struct kp_produce_request_topic_produce_data td;

	for (int i = 0; i < np; i++) {
		size_t len = t_batch(g_batches[i], sizeof(g_batches[i]), parts[i], first, n, -1, 0);

		t_produce_part(&pd[i], parts[i], g_batches[i], len);
	}
	t_produce(&m, &td, pd, np, 30000);
	send_request(0, 0, PRODUCE_V, 100 + first, t_enc_produce, &m);
}

/* Its answer: one per partition, in request order, no error, base offset @want_base. */
static void
produce_check(const int *parts, int np, int first, int64_t want_base)
{
	int64_t base[PARTS];
	struct kp_reader r;

	for (int i = 0; i < np; i++)
		base[i] = want_base;
	assert_true(run_for(8, 10000) >= 8);
	t_take_response(100 + first, &r);
	t_produce_answer(&r, parts, np, KP_ERR_NONE, base);
}

static void
produce(const int *parts, int np, int first, int n, int64_t want_base)
{
	produce_send(parts, np, first, n);
	produce_check(parts, np, first, want_base);
}

static struct dp_topic *
topic(void)
{
	struct dp_topic *t = dp_broker_topic_find(&g_b, "t", 1);

	assert_non_null(t);
	return t;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void
test_owners_spread(void **state)
{
	struct dp_topic *t;
	unsigned per[2] = {0, 0};

	(void)state;
	assert_int_equal(dp_broker_topic_create(&g_b, "t", 1, PARTS, NULL, &t), 0);
	for (int p = 0; p < PARTS; p++) {
		assert_int_equal(t->part[p].writer, dp_broker_owner(t->id, p, 2));
		assert_non_null(t->part[p].log);
		per[t->part[p].writer]++;
	}
	assert_true(per[0] > 0 && per[1] > 0);
	assert_int_equal(g_b.writers[0].n_owned, per[0]);
	assert_int_equal(__atomic_load_n(&g_b.writers[1].n_owned, __ATOMIC_ACQUIRE), per[1]);
	assert_false(dp_broker_writer_local(&g_b, 1));
	assert_true(dp_broker_writer_local(&g_b, 0));
}

static void
test_produce_split_and_fetch(void **state)
{
	int parts[PARTS];
	struct kp_fetch_request m;
	struct kp_fetch_request_fetch_topic ft;
	struct kp_fetch_request_fetch_partition fp[PARTS];
	int all[PARTS];
	struct kp_fetch_response resp;
	struct kp_reader r;
	struct dp_topic *t = topic();

	(void)state;
	for (int i = 0; i < PARTS; i++)
		parts[i] = PARTS - 1 - i; /* any order: answered in request order */
	produce(parts, PARTS, 0, 3, 0);
	produce(parts, PARTS, 3, 3, 3);
	for (int p = 0; p < PARTS; p++) {
		assert_int_equal(dp_part_end(&g_b, &t->part[p]), 6);
		assert_int_equal(dp_part_written(&g_b, &t->part[p]), 6);
	}

	for (int p = 0; p < PARTS; p++)
		all[p] = p;
	t_fetch(&m, &ft, fp, all, PARTS, 0, 0, 1);
	send_request(1, 1, FETCH_V, 7, t_enc_fetch, &m);
	assert_true(run_for(8, 10000) >= 8);
	t_take_response(7, &r);
	kp_arena_init(&g_arena, g_arena_buf, sizeof(g_arena_buf));
	assert_int_equal(kp_fetch_response_decode(&resp, FETCH_V, &r, &g_arena), 0);
	assert_int_equal(resp.responses.count, 1);
	assert_int_equal(resp.responses.items[0].partitions.count, PARTS);
	for (int i = 0; i < PARTS; i++) {
		const struct kp_fetch_response_partition_data *pd =
			&resp.responses.items[0].partitions.items[i];
		const uint8_t *p = pd->records.ptr;
		size_t left = pd->records.len > 0 ? (size_t)pd->records.len : 0;
		int seen = 0;

		assert_int_equal(pd->partition_index, i);
		assert_int_equal(pd->error_code, KP_ERR_NONE);
		assert_int_equal(pd->high_watermark, 6);
		while (left > 0) {
			struct kp_batch_header bh;
			struct kp_record_iter it;
			struct kp_record rec;
			char want[32];

			assert_int_equal(kp_batch_validate(p, left, 0, &bh), 0);
			assert_int_equal(bh.base_offset, seen);
			kp_record_iter_init(&it, kp_batch_records(p), kp_batch_records_len(&bh),
				bh.records_count);
			while (kp_record_iter_next(&it, &rec) == 1) {
				int len = snprintf(want, sizeof(want), "p%d-%d", i, seen);

				assert_int_equal(rec.value_len, len);
				assert_memory_equal(rec.value, want, (size_t)len);
				seen++;
			}
			p += kp_batch_size(&bh);
			left -= kp_batch_size(&bh);
		}
		assert_int_equal(seen, 6); /* partition i read whole, in order, on its owner */
	}
}

static void
test_long_poll_woken_by_remote_append(void **state)
{
	struct dp_topic *t = topic();
	struct kp_fetch_request m;
	struct kp_fetch_request_fetch_topic ft;
	struct kp_fetch_request_fetch_partition fp;
	struct kp_fetch_response resp;
	struct kp_reader r;
	int part = -1;
	uint64_t t0, woken0, woken_ns0;

	(void)state;
	for (int p = 0; p < PARTS && part < 0; p++) {
		if (t->part[p].writer == 1)
			part = p;
	}
	assert_true(part >= 0);
	t_fetch(&m, &ft, &fp, &part, 1, 6, 20000, 1); /* from the log end: nothing yet */
	send_request(1, 1, FETCH_V, 8, t_enc_fetch, &m);
	assert_int_equal(run_for(1, 300), 0); /* parked */
	assert_non_null(dp_metrics_tls); /* lcore 0's block (group_setup) */
	woken0 = dp_metrics_tls->fetch_wakeup.count;
	woken_ns0 = dp_metrics_tls->fetch_wakeup.sum_ns;
	t0 = rte_rdtsc();
	/* Writer 1 appends: the parked fetch answers (first: responses keep request order). */
	produce_send(&part, 1, 6, 2);
	assert_true(run_for(8, 10000) >= 8);
	assert_true(rte_rdtsc() - t0 < rte_get_tsc_hz() * 10);
	t_take_response(8, &r);
	kp_arena_init(&g_arena, g_arena_buf, sizeof(g_arena_buf));
	assert_int_equal(kp_fetch_response_decode(&resp, FETCH_V, &r, &g_arena), 0);
	assert_int_equal(resp.responses.items[0].partitions.items[0].high_watermark, 8);
	assert_true(resp.responses.items[0].partitions.items[0].records.len > 0);
	/* Its wake-up counted once: from the append's completion here, within the wait. */
	assert_int_equal(dp_metrics_tls->fetch_wakeup.count, woken0 + 1);
	assert_true(dp_metrics_tls->fetch_wakeup.sum_ns - woken_ns0 <
		dp_metrics_tsc_to_ns(rte_rdtsc() - t0));
	produce_check(&part, 1, 6, 6);
}

/* Poll until writer 1 published @part's written offset @want (its append completed). */
static void
wait_written(int part, int64_t want)
{
	uint64_t deadline = rte_rdtsc() + rte_get_tsc_hz() * 10;

	while (dp_part_written(&g_b, &topic()->part[part]) < want && rte_rdtsc() < deadline) {
		dp_reactor_poll_once(g_lc[0]);
		service();
	}
	assert_int_equal(dp_part_written(&g_b, &topic()->part[part]), want);
}

/*
 * min_bytes on a partition of writer 1: its reads complete later (on writer 1's
 * lcore), so the fetch must count what they brought and park again while that is
 * below min_bytes (it used to answer with the first batch).
 */
static void
test_long_poll_min_bytes_remote(void **state)
{
	struct dp_topic *t = topic();
	struct kp_fetch_request m;
	struct kp_fetch_request_fetch_topic ft;
	struct kp_fetch_request_fetch_partition fp;
	struct kp_fetch_response resp;
	struct kp_reader r;
	uint8_t scratch[512];
	size_t one;
	int part = -1;
	int n = 0;

	(void)state;
	for (int p = PARTS - 1; p >= 0 && part < 0; p--) {
		if (t->part[p].writer == 1)
			part = p; /* the last of writer 1's: the previous test appended to the first */
	}
	assert_true(part >= 0);
	one = t_batch(scratch, sizeof(scratch), part, 20, 2, -1, 0); /* as produce_send's */
	/* From the log end; three batches are enough, two are not. */
	t_fetch(&m, &ft, &fp, &part, 1, 6, 20000, (int32_t)(2 * one + 1));
	send_request(1, 1, FETCH_V, 9, t_enc_fetch, &m);
	assert_int_equal(run_for(1, 300), 0); /* parked */
	for (int k = 0; k < 2; k++) {
		produce_send(&part, 1, 20 + 2 * k, 2);
		wait_written(part, 8 + 2 * k);
		/* Woken, read on writer 1, too few bytes: parked again (nothing sent). */
		assert_int_equal(run_for(1, 500), 0);
	}
	produce_send(&part, 1, 24, 2);
	assert_true(run_for(8, 10000) >= 8);
	t_take_response(9, &r);
	kp_arena_init(&g_arena, g_arena_buf, sizeof(g_arena_buf));
	assert_int_equal(kp_fetch_response_decode(&resp, FETCH_V, &r, &g_arena), 0);
	{
		const struct kp_fetch_response_partition_data *pd =
			&resp.responses.items[0].partitions.items[0];
		const uint8_t *p = pd->records.ptr;
		size_t left = pd->records.len > 0 ? (size_t)pd->records.len : 0;

		assert_int_equal(pd->error_code, KP_ERR_NONE);
		assert_true(pd->records.len >= m.min_bytes);
		while (left > 0) {
			struct kp_batch_header bh;

			assert_int_equal(kp_batch_validate(p, left, 0, &bh), 0);
			assert_int_equal(bh.base_offset, 6 + n);
			n += bh.records_count;
			p += kp_batch_size(&bh);
			left -= kp_batch_size(&bh);
		}
	}
	assert_int_equal(n, 6); /* the three batches, answered together */
	for (int k = 0; k < 3; k++)
		produce_check(&part, 1, 20 + 2 * k, 6 + 2 * k);
}

/* One idempotent batch (producer 4242, @seq) to @part; @return its answer's error, *@base. */
static int16_t
produce_idem(int part, int32_t seq, int64_t *base)
{
	struct kp_produce_request m;
	struct kp_produce_request_topic_produce_data td;
	struct kp_produce_request_partition_produce_data pd;
	struct kp_produce_response resp;
	struct kp_reader r;
	size_t len = t_batch(g_batches[0], sizeof(g_batches[0]), part, 100 + seq, 2, 4242, seq);

	t_produce_part(&pd, part, g_batches[0], len);
	t_produce(&m, &td, &pd, 1, 30000);
	send_request(2, 0, PRODUCE_V, 500 + seq, t_enc_produce, &m);
	assert_true(run_for(8, 10000) >= 8);
	t_take_response(500 + seq, &r);
	kp_arena_init(&g_arena, g_arena_buf, sizeof(g_arena_buf));
	assert_int_equal(kp_produce_response_decode(&resp, PRODUCE_V, &r, &g_arena), 0);
	*base = resp.responses.items[0].partition_responses.items[0].base_offset;
	return resp.responses.items[0].partition_responses.items[0].error_code;
}

static void
test_idempotent_on_remote_owner(void **state)
{
	struct dp_topic *t = topic();
	int part = -1;
	int64_t first;
	int64_t again;

	(void)state;
	for (int p = PARTS - 1; p >= 0 && part < 0; p--) {
		if (t->part[p].writer == 1)
			part = p;
	}
	assert_true(part >= 0);
	assert_int_equal(produce_idem(part, 0, &first), KP_ERR_NONE);
	assert_true(first >= 6);
	/* The retry of the same batch: the original offset, nothing appended. */
	assert_int_equal(produce_idem(part, 0, &again), KP_ERR_NONE);
	assert_int_equal(again, first);
	assert_int_equal(dp_part_end(&g_b, &t->part[part]), first + 2);
	/* A gap in the sequence. */
	assert_int_equal(produce_idem(part, 5, &again), KP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
	assert_int_equal(produce_idem(part, 2, &again), KP_ERR_NONE);
	assert_int_equal(again, first + 2);
}

static void
test_delete_closes_remote_logs(void **state)
{
	(void)state;
	assert_int_equal(dp_broker_topic_delete(&g_b, topic()), 0);
	assert_int_equal(g_b.writers[0].n_owned, 0);
	assert_int_equal(__atomic_load_n(&g_b.writers[1].n_owned, __ATOMIC_ACQUIRE), 0);
	assert_null(dp_broker_topic_find(&g_b, "t", 1));
	/* A new topic spreads again and takes appends on both writers. */
	assert_int_equal(dp_broker_topic_create(&g_b, "t", 1, PARTS, NULL, NULL), 0);
	{
		int parts[PARTS];

		for (int i = 0; i < PARTS; i++)
			parts[i] = i;
		produce(parts, PARTS, 0, 1, 0);
	}
}

/* ---- fixture --------------------------------------------------------------------------------- */

static int
group_setup(void **state)
{
	char err[DP_CONFIG_ERR_LEN];
	unsigned lcores[2] = {g_lc[0], g_lc[1]};

	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/test_dp_writers.XXXXXX");
	if (mkdtemp(g_dir) == NULL)
		return -1;
	if (dp_config_init(&g_cfg) < 0 ||
		dp_config_set(&g_cfg, "log.dir", g_dir, "test", 1, err, sizeof(err)) < 0 ||
		dp_config_set(&g_cfg, "log.segment.bytes", "8388608", "test", 2, err, sizeof(err)) < 0 ||
		dp_config_finish(&g_cfg, "test", err, sizeof(err)) < 0)
		return -1;
	if (dp_reactors_init(lcores, 2, 1024, 0) < 0)
		return -1;
	/* Metrics on: this thread runs lcore 0's reactor (the fetch wake-up histogram). */
	snprintf(g_metrics, sizeof(g_metrics), "%s/metrics", g_dir);
	if (dp_metrics_create(g_metrics, 0, lcores, 2, rte_get_tsc_hz()) < 0 ||
		dp_metrics_bind(g_lc[0]) < 0)
		return -1;
	dp_broker_init(&g_b);
	if (dp_broker_storage_key(&g_b, "storage.cache.chunks", "40") < 0 ||
		dp_broker_storage_key(&g_b, "storage.cache.chunk.bytes", "131072") < 0 ||
		dp_broker_writers_set(&g_b, 2, lcores) < 0 || dp_broker_start(&g_b, &g_cfg) < 0)
		return -1;
	if (rte_eal_remote_launch(remote_start, NULL, g_lc[1]) < 0 ||
		rte_eal_wait_lcore(g_lc[1]) < 0)
		return -1;
	if (dp_poller_register(g_lc[0], "storage", dp_broker_poll, &g_b, 0, DP_POLLER_EVERY) < 0 ||
		dp_poller_register(g_lc[1], "storage", dp_broker_poll, &g_b, 0, DP_POLLER_EVERY) < 0)
		return -1;
	g_apis = dp_requests_init(&g_b, &g_cfg);
	if (g_apis == NULL ||
		dp_poller_register(g_lc[0], "fetch.wait", dp_requests_poll, dp_requests_arg(), 0,
			DP_POLLER_EVERY) < 0)
		return -1;
	g_pool = rte_mempool_create("t_writers_resp", 32, RESP_BYTES, 0, 0, NULL, NULL, NULL, NULL,
		(int)rte_socket_id(), RTE_MEMPOOL_F_SP_PUT | RTE_MEMPOOL_F_SC_GET);
	if (g_pool == NULL)
		return -1;
	tconn_setup(g_pool, (void *)(uintptr_t)g_apis, sizeof(g_c.rx));
	if (rte_eal_remote_launch(remote_main, NULL, g_lc[1]) < 0)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[300];
	int rc;

	(void)state;
	/* Every writer closes its own logs (writer 1's by message), then the table is freed. */
	rc = dp_broker_stop(&g_b);
	__atomic_store_n(&g_quit, 1, __ATOMIC_RELEASE);
	rte_eal_wait_lcore(g_lc[1]);
	if (rc < 0 || g_b.writers[0].engine != NULL || g_b.writers[1].engine != NULL)
		return -1;
	dp_reactors_fini();
	dp_metrics_destroy();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	char prefix[64];
	char lcores[16];
	char *eal[] = {"test_dp_writers", "-l", lcores, "--no-huge", "--no-shconf", "-m", "256",
		"--no-pci", "--no-telemetry", prefix, "--log-level=lib.eal:error", NULL};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_owners_spread),
		cmocka_unit_test(test_produce_split_and_fetch),
		cmocka_unit_test(test_long_poll_woken_by_remote_append),
		cmocka_unit_test(test_long_poll_min_bytes_remote),
		cmocka_unit_test(test_idempotent_on_remote_owner),
		cmocka_unit_test(test_delete_closes_remote_logs),
	};
	cpu_set_t set;
	int found[2] = {-1, -1};
	int n = 0;
	unsigned int id;

	snprintf(prefix, sizeof(prefix), "--file-prefix=test_dp_writers_%d", (int)getpid());
	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		for (int cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++) {
			if (CPU_ISSET(cpu, &set))
				found[n++] = cpu;
		}
	}
	if (n < 2) {
		fprintf(stderr, "test_dp_writers: needs two CPUs; skipping\n");
		return 77;
	}
	snprintf(lcores, sizeof(lcores), "%d,%d", found[0], found[1]);
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal) < 0) {
		fprintf(stderr, "test_dp_writers: EAL did not start; skipping\n");
		return 77;
	}
	n = 0;
	RTE_LCORE_FOREACH(id) {
		if (n < 2)
			g_lc[n++] = id;
	}
	n = cmocka_run_group_tests(tests, group_setup, group_teardown);
	rte_eal_cleanup();
	return n;
}
