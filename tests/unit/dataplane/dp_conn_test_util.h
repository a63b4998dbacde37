/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A connection whose transport is the test, shared by the broker tests of
 * tests/unit/dataplane that drive requests through dp_conn by hand
 * (test_dp_writers.c, test_dp_produce.c): the connection (g_c, its
 * environment g_env, no-op kick and a fixed peer name), tconn_setup() and
 * service(), which takes every ready response byte into g_c.got.
 * dp_request_test_util.h builds the requests and reads the answers.
 *
 * Include it once per test file, after defining MAX_INFLIGHT (requests in
 * flight per connection) and RESP_BYTES (the response buffer size; got holds
 * two of them). Test code: its definitions are static to the including file.
 */
#ifndef SLP_TESTS_DP_CONN_TEST_UTIL_H
#define SLP_TESTS_DP_CONN_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "dp_conn.h"
#include "dp_handler.h"

#if !defined(MAX_INFLIGHT) || !defined(RESP_BYTES)
#error "define MAX_INFLIGHT and RESP_BYTES before including dp_conn_test_util.h"
#endif

struct tconn {
	struct dp_conn base;
	uint8_t rx[4096];
	struct dp_conn_slot slots[MAX_INFLIGHT];
	uint8_t got[2 * RESP_BYTES]; /* responses received, concatenated */
	size_t got_len;
};

static struct tconn g_c;
static struct dp_conn_env g_env;

static void
t_kick(struct dp_conn *conn)
{
	(void)conn;
}

static void
t_peer(const struct dp_conn *conn, char *buf, size_t len)
{
	(void)conn;
	snprintf(buf, len, "test:1");
}

static const struct dp_conn_ops t_ops = {.kick = t_kick, .peer_name = t_peer};

/*
 * Set g_env up (dp_handler_frame with @handler_arg, MAX_INFLIGHT requests in
 * flight, no bound on pending bytes, RESP_BYTES response buffers from @pool,
 * the test's) and g_c on it, taking frames up to @max_frame bytes.
 */
static void
tconn_setup(struct rte_mempool *pool, void *handler_arg, uint32_t max_frame)
{
	g_env.handler = dp_handler_frame;
	g_env.handler_arg = handler_arg;
	g_env.max_inflight = MAX_INFLIGHT;
	g_env.max_pending_bytes = UINT64_MAX;
	g_env.resp_pool = pool;
	g_env.resp_buf_size = RESP_BYTES;
	dp_conn_setup(&g_c.base, &t_ops, &g_env, g_c.rx, sizeof(g_c.rx), max_frame, g_c.slots);
}

/* Take every ready response byte into g_c.got. */
static void
service(void)
{
	struct iovec iov[64];
	int n;

	while ((n = dp_conn_tx_iov(&g_c.base, iov, 64)) > 0 || g_c.base.tx_ready) {
		size_t total = 0;

		for (int i = 0; i < n; i++) {
			assert_true(g_c.got_len + iov[i].iov_len <= sizeof(g_c.got));
			memcpy(g_c.got + g_c.got_len, iov[i].iov_base, iov[i].iov_len);
			g_c.got_len += iov[i].iov_len;
			total += iov[i].iov_len;
		}
		if (n == 0) {
			uint32_t head = g_c.base.head;

			dp_conn_tx_done(&g_c.base, 0);
			if (g_c.base.head == head)
				break;
			continue;
		}
		dp_conn_tx_done(&g_c.base, total);
	}
}

#endif /* SLP_TESTS_DP_CONN_TEST_UTIL_H */
