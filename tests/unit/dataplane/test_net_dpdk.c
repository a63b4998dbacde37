/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_dpdk: the DPDK transport's glue, end to end in one process.
 *
 * The broker side is net_dpdk itself on a net_ring ethdev port (the ring
 * PMD's rx ring is fed by the test, its tx ring drained by it), run by a
 * reactor driven by hand (dp_reactor_poll_once). The client is a second
 * instance of our TCP stack (net_stack) whose output goes into the port's rx
 * ring and whose input is the port's tx ring. A test handler echoes each
 * request frame, now or later (deferred, answered in reverse order), from a
 * pool response buffer or a malloc'ed one (large responses).
 *
 * Checked: pipelined frames are answered in order, byte for byte; frames
 * whole in an mbuf are read in place and frames spanning mbufs are copied
 * and counted; a frame larger than the receive buffer goes through a large
 * buffer, also when its size prefix arrives alone; large responses leave by extbuf and their buffers are released
 * once acknowledged; replies completed out of order still leave in order;
 * reading pauses at dataplane.conn.max.inflight; a bad size prefix closes
 * the connection; scatter-gather responses (zero-copy Fetch) leave with
 * their borrowed odd-length segments attached in place, released once, only
 * after the peer acknowledged every byte, or at the reset of a connection
 * closed with the response half sent. Before all of that (a group of its
 * own, on a port of its own): configurations the transport must refuse to
 * start with, saying why: dataplane.port.tso=on on a port without TSO
 * (net_ring has none), dataplane.port.tx.checksum=skip on a port that is not
 * memif.
 */
#include "dp_transport_test_util.h"

#include <unistd.h>

#define T_MAX_INFLIGHT 4
#define T_DEFER_MAX 64

static struct dp_config g_cfg;
static unsigned int g_lcore;

/* The request handler's state. */
static struct {
	bool defer;                 /* keep requests, answer with t_answer_deferred() */
	uint32_t calls;
	struct {
		struct dp_conn *conn;
		uint64_t req;
		uint8_t *copy;
		uint32_t len;
	} deferred[T_DEFER_MAX];
	uint32_t n_deferred;
	uint32_t big_live;          /* malloc'ed responses not freed yet */
	bool sg;                    /* answer with a scatter-gather response */
	uint32_t sg_live;           /* scatter-gather responses not released yet */
	uint32_t sg_released;
} h;

/* The client connection. */
static struct t_conn cl;

static void
big_free(void *arg, void *buf)
{
	free(buf);
	h.big_live--;
}

/* Echo @frame as a response: 4-byte size, then the frame bytes. */
static void
echo(struct dp_conn *conn, uint64_t req, const uint8_t *frame, uint32_t len)
{
	uint32_t total = len + 4;
	uint8_t *buf;
	int rc;

	if (total <= conn->env->resp_buf_size) {
		buf = dp_conn_resp_alloc(conn);
		assert_non_null(buf);
	} else {
		buf = malloc(total);
		assert_non_null(buf);
		h.big_live++;
	}
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	memcpy(buf + 4, frame, len);
	if (total <= conn->env->resp_buf_size)
		rc = dp_conn_reply(conn, req, buf, total, dp_conn_resp_free, conn->env->resp_pool);
	else
		rc = dp_conn_reply(conn, req, buf, total, big_free, NULL);
	assert_int_equal(rc, 0);
}

/*
 * A scatter-gather echo: the size prefix owned, the frame in three borrowed
 * heap blocks of odd lengths (as Fetch lends tail-cache record sets), one
 * free function for all of it.
 */
struct sg_echo {
	struct dp_sg sg;
	struct dp_seg segs[4];
	uint8_t prefix[4];
	uint8_t *part[3];
};

static void
sg_echo_free(void *arg, void *buf)
{
	struct sg_echo *e = arg;

	assert_ptr_equal(buf, &e->sg);
	for (int i = 0; i < 3; i++)
		free(e->part[i]);
	free(e);
	h.sg_live--;
	h.sg_released++;
}

static void
sg_echo(struct dp_conn *conn, uint64_t req, const uint8_t *frame, uint32_t len)
{
	struct sg_echo *e = calloc(1, sizeof(*e));
	uint32_t cut[4] = {0, len < 7 ? len : 7, len / 2 | 1, len};

	assert_non_null(e);
	e->prefix[0] = (uint8_t)(len >> 24);
	e->prefix[1] = (uint8_t)(len >> 16);
	e->prefix[2] = (uint8_t)(len >> 8);
	e->prefix[3] = (uint8_t)len;
	e->segs[0] = (struct dp_seg){e->prefix, 4, 0};
	e->sg.segs = e->segs;
	e->sg.n = 1;
	for (int i = 0; i < 3; i++) {
		uint32_t n = cut[i + 1] - cut[i];

		e->part[i] = malloc(n > 0 ? n : 1);
		assert_non_null(e->part[i]);
		memcpy(e->part[i], frame + cut[i], n);
		if (n > 0)
			e->segs[e->sg.n++] = (struct dp_seg){e->part[i], n,
				DP_SEG_RECORDS | DP_SEG_BORROWED};
	}
	e->sg.len = len + 4;
	h.sg_live++;
	assert_int_equal(dp_conn_reply_sg(conn, req, &e->sg, sg_echo_free, e), 0);
}

static int
t_handler(void *arg, struct dp_conn *conn, uint64_t req, const uint8_t *frame, uint32_t len)
{
	h.calls++;
	if (h.sg) {
		sg_echo(conn, req, frame, len);
		return 0;
	}
	if (!h.defer) {
		echo(conn, req, frame, len);
		return 0;
	}
	assert_true(h.n_deferred < T_DEFER_MAX);
	h.deferred[h.n_deferred].conn = conn;
	h.deferred[h.n_deferred].req = req;
	h.deferred[h.n_deferred].copy = malloc(len);
	assert_non_null(h.deferred[h.n_deferred].copy);
	memcpy(h.deferred[h.n_deferred].copy, frame, len); /* the frame is borrowed */
	h.deferred[h.n_deferred].len = len;
	h.n_deferred++;
	return 0;
}

/* Answer the deferred requests, last first. */
static void
t_answer_deferred(void)
{
	while (h.n_deferred > 0) {
		h.n_deferred--;
		echo(h.deferred[h.n_deferred].conn, h.deferred[h.n_deferred].req,
			h.deferred[h.n_deferred].copy, h.deferred[h.n_deferred].len);
		free(h.deferred[h.n_deferred].copy);
	}
}

/* --- the client --- */

static void
pump(void)
{
	t_ring_pump(g_lcore);
}

#define PUMP_UNTIL(cond) T_PUMP_UNTIL(pump(), cond)

static void
client_open(void)
{
	t_conn_open(&cl, g_lcore);
}

static void
client_close(void)
{
	t_conn_close(&cl, g_lcore);
}

/* Send all of @p (len bytes), pumping while the send queue is full. */
static void
client_send(const uint8_t *p, size_t len)
{
	size_t done = 0;
	uint64_t end = net_port_now_us() + 10000000;

	while (done < len && net_port_now_us() < end) {
		int rc = net_tcp_send(cl.c, p + done, (uint32_t)(len - done));

		assert_true(rc >= 0);
		done += (size_t)rc;
		pump();
	}
	assert_int_equal(done, len);
}

static size_t
frame(uint8_t *out, uint32_t len, uint8_t seed)
{
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
	for (uint32_t i = 0; i < len; i++)
		out[4 + i] = (uint8_t)(seed + i * 7);
	return len + 4;
}

static struct net_dpdk_stats
stats(void)
{
	struct net_dpdk_stats s;

	assert_int_equal(net_dpdk_stats_get(0, &s), 0);
	return s;
}

/* --- tests --- */

static void
test_pipelined_echo(void **state)
{
	enum { N = 60, LEN = 300 };
	static uint8_t out[N * (LEN + 4)];
	struct net_dpdk_stats s0 = stats(), s1;
	size_t len = 0;

	h.defer = false;
	h.calls = 0;
	client_open();
	for (int i = 0; i < N; i++)
		len += frame(out + len, LEN, (uint8_t)i);
	client_send(out, len); /* many frames per segment, some across two */
	PUMP_UNTIL(cl.rx_len >= len);
	assert_int_equal(cl.rx_len, len);
	assert_memory_equal(cl.rx, out, len); /* the echo is the request stream */
	assert_int_equal(h.calls, N);
	s1 = stats();
	assert_int_equal((s1.rx_frames_inplace - s0.rx_frames_inplace) +
		(s1.rx_frames_copied - s0.rx_frames_copied), N);
	assert_true(s1.rx_frames_inplace - s0.rx_frames_inplace > 0);
	/* 304-byte frames over ~1460-byte segments: some straddle a boundary. */
	assert_true(s1.rx_frames_copied - s0.rx_frames_copied > 0);
	assert_true(s1.tx_bytes_copied - s0.tx_bytes_copied >= len); /* small responses */
	client_close();
}

static void
test_large_frame_and_extbuf(void **state)
{
	enum { LEN = 200000 };
	uint8_t *out = malloc(LEN + 4);
	struct net_dpdk_stats s0 = stats(), s1;
	size_t len;

	assert_non_null(out);
	h.defer = false;
	client_open();
	len = frame(out, LEN, 3); /* above the 4 KiB receive buffer: a large buffer */
	client_send(out, len);
	PUMP_UNTIL(cl.rx_len >= len);
	assert_int_equal(cl.rx_len, len);
	assert_memory_equal(cl.rx, out, len);
	s1 = stats();
	assert_int_equal(s1.rx_frames_copied - s0.rx_frames_copied, 1);
	assert_true(s1.rx_bytes_copied - s0.rx_bytes_copied >= len);
	/* The 200 KB response went out from its buffer, not copied. */
	assert_true(s1.tx_bytes_extbuf - s0.tx_bytes_extbuf >= len);
	/* Every byte acknowledged: the buffer went back to its owner. */
	PUMP_UNTIL(h.big_live == 0);
	client_close();
	free(out);
}

/*
 * A large frame whose size prefix arrives alone: the prefix is copied, a
 * large buffer attached with no byte of the frame in it yet, and the reactor
 * must return and wait for the rest. It used to go round nd_rx forever
 * (slipstream-load over memif stopped when a segment ended right after a
 * prefix); alarm() turns such a hang into a failure.
 */
static void
test_large_frame_prefix_alone(void **state)
{
	enum { LEN = 100000 };
	uint8_t *out = malloc(LEN + 4);
	struct net_dpdk_stats s0 = stats();
	size_t len;

	assert_non_null(out);
	h.defer = false;
	client_open();
	len = frame(out, LEN, 9);
	alarm(20);
	client_send(out, 4);
	PUMP_UNTIL(stats().rx_bytes_copied - s0.rx_bytes_copied >= 4);
	for (int i = 0; i < 20; i++)
		pump(); /* the broker's reactor runs with the prefix alone */
	assert_int_equal(cl.rx_len, 0);
	client_send(out + 4, len - 4);
	PUMP_UNTIL(cl.rx_len >= len);
	alarm(0);
	assert_int_equal(cl.rx_len, len);
	assert_memory_equal(cl.rx, out, len);
	PUMP_UNTIL(h.big_live == 0);
	client_close();
	free(out);
}

static void
test_deferred_in_order_and_backpressure(void **state)
{
	enum { N = 10, LEN = 1500 };
	static uint8_t out[N * (LEN + 4)];
	uint32_t answered = 0;
	size_t len = 0;

	h.defer = true;
	h.calls = 0;
	client_open();
	for (int i = 0; i < N; i++)
		len += frame(out + len, LEN, (uint8_t)(100 + i));
	client_send(out, len);
	while (answered < N) {
		for (int i = 0; i < 50; i++)
			pump();
		/* dataplane.conn.max.inflight=4: reading pauses with 4 taken. */
		assert_int_equal(h.calls, RTE_MIN(answered + T_MAX_INFLIGHT, (uint32_t)N));
		assert_int_equal(cl.rx_len, (size_t)answered * (LEN + 4));
		answered = h.calls;
		t_answer_deferred(); /* last first: still sent in request order */
		PUMP_UNTIL(cl.rx_len >= (size_t)answered * (LEN + 4));
	}
	assert_int_equal(h.calls, N);
	assert_int_equal(cl.rx_len, len);
	assert_memory_equal(cl.rx, out, len);
	h.defer = false;
	client_close();
}

static void
test_bad_size_closes(void **state)
{
	const uint8_t bad[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3};

	h.defer = false;
	client_open();
	client_send(bad, sizeof(bad));
	PUMP_UNTIL(cl.eof || cl.closed);
	client_close();
}

static void
test_scatter_gather_extbuf(void **state)
{
	enum { LEN = 60001 }; /* odd: segments of 7, 30001 - 7 and 29993 bytes */
	uint8_t *out = malloc(LEN + 4);
	struct net_dpdk_stats s0 = stats(), s1;
	size_t len;

	assert_non_null(out);
	h.defer = false;
	h.sg = true;
	h.sg_released = 0;
	client_open();
	len = frame(out, LEN, 11);
	client_send(out, len);
	/* Until the client has every byte, the borrowed blocks stay lent. */
	{
		uint64_t end = net_port_now_us() + 10000000;

		while (cl.rx_len < len && net_port_now_us() < end) {
			assert_int_equal(h.sg_released, 0);
			pump();
		}
	}
	assert_int_equal(cl.rx_len, len);
	assert_memory_equal(cl.rx, out, len);
	s1 = stats();
	/* The borrowed segments (the 7-byte one too) went out attached, not copied. */
	assert_true(s1.tx_bytes_extbuf - s0.tx_bytes_extbuf >= LEN);
	/* Acknowledged: released, exactly once. */
	PUMP_UNTIL(h.sg_live == 0);
	assert_int_equal(h.sg_released, 1);
	client_close();
	assert_int_equal(h.sg_released, 1);

	/* Early close: the client resets with most of a response unsent. */
	client_open();
	client_send(out, len);
	PUMP_UNTIL(cl.rx_len > 0);
	net_tcp_abort(cl.c);
	cl.c = NULL;
	PUMP_UNTIL(h.sg_live == 0);
	assert_int_equal(h.sg_released, 2);
	client_close();
	h.sg = false;
	free(out);
}

/* --- refusals (EAL up, nothing else) --- */

static void
test_refuses_tso_on_without_tso(void **state)
{
	const char *const keys[][2] = {{"dataplane.port.tso", "on"}};

	t_dpdk_refused("tndr1", keys, RTE_DIM(keys), t_handler,
		"dataplane.port.tso=on but port net_ring_tndr1 (driver net_ring) offers no TCP "
		"segmentation offload");
}

static void
test_refuses_tx_checksum_skip_off_memif(void **state)
{
	const char *const keys[][2] = {{"dataplane.port.tx.checksum", "skip"}};

	t_dpdk_refused("tndr2", keys, RTE_DIM(keys), t_handler,
		"dataplane.port.tx.checksum=skip is for net_memif ports only");
}

/* The same keys with tso=auto: the transport starts (and stops) on such a port. */
static void
test_tso_auto_starts_without_tso(void **state)
{
	const char *const keys[][2] = {{"dataplane.port.tso", "auto"}};
	char dev[RTE_ETH_NAME_MAX_LEN];
	char why[256];
	struct dp_config cfg;
	unsigned int lcores[1] = {rte_lcore_id()};

	t_ring_port_create("tndr3", dev);
	t_dpdk_config(&cfg, dev, keys, RTE_DIM(keys));
	assert_int_equal(dp_reactors_init(lcores, 1, 64, 0), 0);
	if (net_dpdk_init(&cfg, t_handler, NULL, why, sizeof(why)) < 0)
		fail_msg("net_dpdk_init: %s", why);
	net_dpdk_fini();
	dp_reactors_fini();
	dp_config_free(&cfg);
}

static int
refusals_setup(void **state)
{
	t_eal_start("test_net_dpdk", "256", "tnd");
	return 0;
}

/* --- set-up --- */

static int
setup(void **state)
{
	const char *const keys[][2] = {
		{"dataplane.max.connections", "8"},
		{"dataplane.conn.rx.buffer.bytes", "4096"},
		{"dataplane.conn.max.inflight", "4"},
		{"dataplane.frame.large.bytes", "1048576"},
		{"dataplane.frame.large.buffers", "2"},
		{"dataplane.response.buffer.bytes", "8192"},
		{"dataplane.response.buffers", "64"},
	};

	t_dpdk_start(&g_cfg, "test_net_dpdk", "256", "tnd", keys, RTE_DIM(keys), t_handler,
		&g_lcore);
	return 0;
}

static int
teardown(void **state)
{
	t_dpdk_stop(&g_cfg);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined_echo),
		cmocka_unit_test(test_large_frame_and_extbuf),
		cmocka_unit_test(test_large_frame_prefix_alone),
		cmocka_unit_test(test_deferred_in_order_and_backpressure),
		cmocka_unit_test(test_bad_size_closes),
		cmocka_unit_test(test_scatter_gather_extbuf),
	};

	const struct CMUnitTest refusals[] = {
		cmocka_unit_test(test_refuses_tso_on_without_tso),
		cmocka_unit_test(test_refuses_tx_checksum_skip_off_memif),
		cmocka_unit_test(test_tso_auto_starts_without_tso),
	};
	int failed = cmocka_run_group_tests_name("refusals", refusals, refusals_setup, NULL);

	return failed + cmocka_run_group_tests(tests, setup, teardown);
}
