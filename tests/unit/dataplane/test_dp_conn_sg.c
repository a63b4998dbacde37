/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_conn scatter-gather responses (dp_conn_reply_sg): the bytes of owned and
 * borrowed segments leave in order through partial writes of every size,
 * interleaved with plain responses completed out of order; the record-byte
 * counts split borrowed from broker-copied bytes; the response's free
 * function runs exactly once, only after its last byte was written, or at
 * the connection's reset when that comes first (early close), and at once for
 * a stale token. Borrowed bytes live in heap blocks the free function
 * releases, so a use after release is an ASan error.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dp_conn.h"

static int g_frees;
static uint64_t g_reqs[16];
static int g_n_reqs;

static void
fake_kick(struct dp_conn *conn)
{
	(void)conn;
}

static void
fake_peer(const struct dp_conn *conn, char *buf, size_t len)
{
	(void)conn;
	snprintf(buf, len, "fake:1");
}

static const struct dp_conn_ops fake_ops = {.kick = fake_kick, .peer_name = fake_peer};

static int
handler(void *arg, struct dp_conn *conn, uint64_t req, const uint8_t *frame, uint32_t len)
{
	(void)arg;
	(void)conn;
	(void)frame;
	(void)len;
	g_reqs[g_n_reqs++] = req;
	return 0;
}

/*
 * A scatter-gather response as a responder builds it: the descriptor, an
 * owned buffer and two borrowed "cache" blocks, all on the heap. Its free
 * function releases everything (as fetch_zc_free drops storage references).
 */
struct sg_resp {
	struct dp_sg sg;
	struct dp_seg segs[5];
	uint8_t *owned;     /* 8 bytes: "HDR1" "MID" "T" */
	uint8_t *cache[2];  /* borrowed: 7 and 10 bytes */
	uint8_t *copied;    /* records the responder copied: 4 bytes */
	char expect[64];    /* the bytes in order */
	size_t len;
	int frees;
};

static void
sg_free(void *arg, void *buf)
{
	struct sg_resp *r = arg;

	assert_ptr_equal(buf, &r->sg);
	r->frees++;
	g_frees++;
	free(r->owned);
	free(r->cache[0]);
	free(r->cache[1]);
	free(r->copied);
	r->owned = r->cache[0] = r->cache[1] = r->copied = NULL;
}

static struct sg_resp *
sg_new(char tag)
{
	struct sg_resp *r = calloc(1, sizeof(*r));

	r->owned = malloc(8);
	memcpy(r->owned, "HDR1MIDT", 8);
	r->owned[3] = (uint8_t)tag;
	r->cache[0] = malloc(7);
	memcpy(r->cache[0], "records", 7);
	r->cache[1] = malloc(10);
	memcpy(r->cache[1], "0123456789", 10);
	r->copied = malloc(4);
	memcpy(r->copied, "copy", 4);
	r->segs[0] = (struct dp_seg){r->owned, 4, 0};
	r->segs[1] = (struct dp_seg){r->cache[0], 7, DP_SEG_RECORDS | DP_SEG_BORROWED};
	r->segs[2] = (struct dp_seg){r->owned + 4, 3, 0};
	r->segs[3] = (struct dp_seg){r->cache[1], 10, DP_SEG_RECORDS | DP_SEG_BORROWED};
	r->segs[4] = (struct dp_seg){r->copied, 4, DP_SEG_RECORDS};
	r->sg = (struct dp_sg){.segs = r->segs, .n = 5, .len = 28};
	r->len = (size_t)snprintf(r->expect, sizeof(r->expect), "HDR%crecordsMID0123456789copy",
		tag);
	assert_int_equal(r->len, 28);
	return r;
}

struct rig {
	struct dp_conn_env env;
	struct dp_conn conn;
	struct dp_conn_slot slots[8];
	uint8_t rx[256];
};

static int
setup(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));

	g_frees = 0;
	g_n_reqs = 0;
	r->env.handler = handler;
	r->env.max_inflight = 8;
	r->env.max_pending_bytes = 1 << 20;
	dp_conn_setup(&r->conn, &fake_ops, &r->env, r->rx, sizeof(r->rx), 128, r->slots);
	*state = r;
	return 0;
}

static int
teardown(void **state)
{
	free(*state);
	return 0;
}

/* Deliver @n one-byte requests. */
static void
requests(struct rig *r, int n)
{
	for (int i = 0; i < n; i++) {
		uint8_t *p;
		uint8_t f[5] = {0, 0, 0, 1, 'x'};

		assert_true(dp_frame_rx_space(&r->conn.rx, &p) >= sizeof(f));
		memcpy(p, f, sizeof(f));
		dp_frame_rx_commit(&r->conn.rx, sizeof(f));
	}
	assert_int_equal(dp_conn_deliver(&r->conn), n);
}

/*
 * A transport writing at most @chunk bytes per call (a partial write), as
 * net_kernel's sendmsg does: gather, copy into @out, report. Returns bytes.
 */
static size_t
drain(struct dp_conn *c, char *out, size_t chunk, struct dp_tx_records *rec)
{
	size_t total = 0;

	while (c->tx_ready) {
		struct iovec iov[3]; /* fewer than the segments: the cursor must resume */
		uint32_t flags[3];
		int n = dp_conn_tx_segs(c, iov, flags, 3);
		size_t budget = chunk;
		size_t wrote = 0;

		if (n == 0) {
			dp_conn_tx_done(c, 0);
			continue;
		}
		for (int i = 0; i < n && budget > 0; i++) {
			size_t k = iov[i].iov_len < budget ? iov[i].iov_len : budget;

			memcpy(out + total + wrote, iov[i].iov_base, k);
			wrote += k;
			budget -= k;
		}
		dp_conn_tx_done_records(c, wrote, rec);
		total += wrote;
	}
	return total;
}

static void
test_segments_in_order_through_partial_writes(void **state)
{
	struct rig *r = *state;

	for (size_t chunk = 1; chunk <= 30; chunk++) {
		struct sg_resp *a = sg_new('a');
		struct dp_tx_records rec = {0, 0};
		char out[128];

		g_n_reqs = 0;
		requests(r, 1);
		assert_int_equal(dp_conn_reply_sg(&r->conn, g_reqs[0], &a->sg, sg_free, a), 0);
		assert_int_equal(r->conn.pending_bytes, 28);
		/* Nothing released before the last byte. */
		for (size_t done = 0; done + chunk < 28; done += chunk) {
			struct iovec iov[8];
			uint32_t flags[8];
			int n = dp_conn_tx_segs(&r->conn, iov, flags, 8);
			size_t k = 0;

			assert_true(n > 0);
			for (int i = 0; i < n && k < chunk; i++) {
				size_t t = iov[i].iov_len < chunk - k ? iov[i].iov_len : chunk - k;

				memcpy(out + done + k, iov[i].iov_base, t);
				k += t;
			}
			dp_conn_tx_done_records(&r->conn, k, &rec);
			assert_int_equal(a->frees, 0);
		}
		{
			size_t done = 28 - (28 % chunk == 0 ? chunk : 28 % chunk);

			assert_int_equal(drain(&r->conn, out + done, chunk, &rec), 28 - done);
		}
		assert_memory_equal(out, a->expect, 28);
		assert_int_equal(a->frees, 1);
		assert_int_equal(rec.borrowed, 17);
		assert_int_equal(rec.owned, 4);
		assert_int_equal(r->conn.pending_bytes, 0);
		assert_int_equal(r->conn.head_seg, 0);
		assert_int_equal(r->conn.head_seg_off, 0);
		free(a);
	}
}

static void
test_segment_flags_and_iov_limit(void **state)
{
	struct rig *r = *state;
	struct sg_resp *a = sg_new('f');
	struct iovec iov[8];
	uint32_t flags[8];
	int n;

	requests(r, 1);
	dp_conn_reply_sg(&r->conn, g_reqs[0], &a->sg, sg_free, a);
	n = dp_conn_tx_segs(&r->conn, iov, flags, 8);
	assert_int_equal(n, 5);
	assert_int_equal(flags[0], 0);
	assert_int_equal(flags[1], DP_SEG_RECORDS | DP_SEG_BORROWED);
	assert_ptr_equal(iov[1].iov_base, a->cache[0]); /* in place, not a copy */
	assert_int_equal(flags[4], DP_SEG_RECORDS);
	/* 6 bytes: the cursor lands inside the borrowed segment. */
	dp_conn_tx_done(&r->conn, 6);
	n = dp_conn_tx_segs(&r->conn, iov, flags, 2);
	assert_int_equal(n, 2);
	assert_ptr_equal(iov[0].iov_base, a->cache[0] + 2);
	assert_int_equal(iov[0].iov_len, 5);
	assert_int_equal(flags[0], DP_SEG_RECORDS | DP_SEG_BORROWED);
	assert_int_equal(iov[1].iov_len, 3);
	dp_conn_tx_done(&r->conn, 22);
	assert_int_equal(a->frees, 1);
	free(a);
}

/* Plain and scatter-gather responses completed out of order leave in request order. */
static void
test_mixed_with_plain_out_of_order(void **state)
{
	struct rig *r = *state;
	struct sg_resp *a = sg_new('1');
	struct sg_resp *b = sg_new('3');
	static const char plain[] = "plain-2";
	struct dp_tx_records rec = {0, 0};
	char out[256];
	char want[256];

	requests(r, 3);
	assert_int_equal(dp_conn_reply_sg(&r->conn, g_reqs[2], &b->sg, sg_free, b), 0);
	assert_false(r->conn.tx_ready);
	assert_int_equal(dp_conn_reply_sg(&r->conn, g_reqs[0], &a->sg, sg_free, a), 0);
	assert_true(r->conn.tx_ready);
	/* The head leaves; the third waits for the second. */
	assert_int_equal(drain(&r->conn, out, 5, &rec), 28);
	assert_int_equal(a->frees, 1);
	assert_int_equal(b->frees, 0);
	assert_int_equal(dp_conn_reply(&r->conn, g_reqs[1], plain, 7, NULL, NULL), 0);
	assert_int_equal(drain(&r->conn, out + 28, 9, &rec), 35);
	snprintf(want, sizeof(want), "%s%s%s", a->expect, plain, b->expect);
	assert_memory_equal(out, want, 63);
	assert_int_equal(b->frees, 1);
	assert_int_equal(rec.borrowed, 34);
	assert_int_equal(rec.owned, 8);
	free(a);
	free(b);
}

/* Closed after a partial write: released once at the reset, never touched again. */
static void
test_early_close_releases_once(void **state)
{
	struct rig *r = *state;
	struct sg_resp *a = sg_new('e');
	struct sg_resp *b = sg_new('g');
	struct iovec iov[8];

	requests(r, 3);
	dp_conn_reply_sg(&r->conn, g_reqs[0], &a->sg, sg_free, a);
	dp_conn_reply_sg(&r->conn, g_reqs[2], &b->sg, sg_free, b); /* behind a pending one */
	assert_true(dp_conn_tx_iov(&r->conn, iov, 8) > 0);
	dp_conn_tx_done(&r->conn, 9); /* inside the second segment */
	assert_int_equal(g_frees, 0);
	dp_conn_reset(&r->conn);
	assert_int_equal(a->frees, 1);
	assert_int_equal(b->frees, 1);
	assert_int_equal(g_frees, 2);
	assert_int_equal(r->conn.head_seg, 0);
	assert_int_equal(r->conn.head_seg_off, 0);
	/* Nothing is offered from the released segments (ASan would catch a read). */
	assert_int_equal(dp_conn_tx_iov(&r->conn, iov, 8), 0);
	/* The pending request's late reply is refused and released at once. */
	{
		struct sg_resp *c = sg_new('l');

		assert_int_equal(dp_conn_reply_sg(&r->conn, g_reqs[1], &c->sg, sg_free, c),
			-ENOTCONN);
		assert_int_equal(c->frees, 1);
		free(c);
	}
	assert_int_equal(g_frees, 3);
	free(a);
	free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_segments_in_order_through_partial_writes,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_flags_and_iov_limit, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_mixed_with_plain_out_of_order, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_early_close_releases_once, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
