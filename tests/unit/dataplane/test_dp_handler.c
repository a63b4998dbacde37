/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_handler: ApiVersions responses byte for byte (v0, v1, v3 and the v0
 * error form for an unsupported version), checked against bytes written out
 * by hand from the Kafka protocol guide rather than against the codecs that
 * produce them; and the request header paths that close a connection.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "dp_conn.h"
#include "dp_handler.h"

static void
test_api_versions_v0(void **state)
{
	static const uint8_t want[] = {
		0, 0, 0, 16,          /* size */
		0, 0, 0, 7,           /* correlation id */
		0, 0,                 /* error */
		0, 0, 0, 1,           /* array of 1 */
		0, 18, 0, 0, 0, 4,    /* ApiVersions 0..4 */
	};
	uint8_t buf[64];

	(void)state;
	assert_int_equal(dp_handler_api_versions_encode(buf, sizeof(buf), 0, 7, 0), sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

static void
test_api_versions_v1(void **state)
{
	static const uint8_t want[] = {
		0, 0, 0, 20, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0, 0, 1, 0, 18, 0, 0, 0, 4,
		0, 0, 0, 0, /* throttle_time_ms */
	};
	uint8_t buf[64];

	(void)state;
	assert_int_equal(dp_handler_api_versions_encode(buf, sizeof(buf), 1, 0x12345678, 0),
		sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

static void
test_api_versions_v3(void **state)
{
	static const uint8_t want[] = {
		0, 0, 0, 19,
		0, 0, 0, 8,           /* response header v0 even though v3 is flexible */
		0, 0,
		2,                    /* compact array: 1 entry */
		0, 18, 0, 0, 0, 4, 0, /* entry + no tagged fields */
		0, 0, 0, 0,           /* throttle */
		0,                    /* no tagged fields */
	};
	uint8_t buf[64];

	(void)state;
	assert_int_equal(dp_handler_api_versions_encode(buf, sizeof(buf), 3, 8, 0), sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

static void
test_api_versions_unsupported_is_v0(void **state)
{
	static const uint8_t want[] = {
		0, 0, 0, 16, 0, 0, 0, 9, 0, 35, 0, 0, 0, 1, 0, 18, 0, 0, 0, 4,
	};
	uint8_t buf[64];

	(void)state;
	assert_int_equal(dp_handler_api_versions_encode(buf, sizeof(buf), 99, 9, 35), sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(dp_handler_api_versions_encode(buf, 10, 0, 9, 0), -ENOBUFS);
}

/* A connection without a response pool: enough to see which path a frame takes. */
static void
noop_kick(struct dp_conn *c)
{
	(void)c;
}

static void
peer(const struct dp_conn *c, char *buf, size_t len)
{
	(void)c;
	snprintf(buf, len, "test:0");
}

static const struct dp_conn_ops ops = {.kick = noop_kick, .peer_name = peer};

static void
test_header_paths(void **state)
{
	static const uint8_t short_hdr[] = {0, 18, 0, 0, 0, 0};
	static const uint8_t unknown_key[] = {0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff};
	static const uint8_t metadata[] = {0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0};
	static const uint8_t bad_client_id[] = {0, 18, 0, 0, 0, 0, 0, 1, 0, 9, 'a'};
	static const uint8_t api_versions_v0[] = {0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff};
	struct dp_conn_env env = {.max_inflight = 1, .max_pending_bytes = 1};
	struct dp_conn_slot slot;
	struct dp_conn conn;
	uint8_t rx[16];

	(void)state;
	dp_conn_setup(&conn, &ops, &env, rx, sizeof(rx), 100, &slot);
	assert_int_equal(dp_handler_frame(NULL, &conn, 0, short_hdr, sizeof(short_hdr)), -EPROTO);
	assert_int_equal(dp_handler_frame(NULL, &conn, 0, unknown_key, sizeof(unknown_key)),
		-EPROTONOSUPPORT);
	assert_int_equal(dp_handler_frame(NULL, &conn, 0, metadata, sizeof(metadata)),
		-EPROTONOSUPPORT);
	assert_int_equal(dp_handler_frame(NULL, &conn, 0, bad_client_id, sizeof(bad_client_id)),
		-EPROTO);
	/* A valid ApiVersions request reaches the response pool (none here: try later). */
	assert_int_equal(dp_handler_frame(NULL, &conn, 0, api_versions_v0,
				 sizeof(api_versions_v0)),
		-EAGAIN);
}

static int g_served_key = -1;

static int
serve_stub(void *arg, struct dp_conn *conn, uint64_t req, const struct kp_request_header *h,
	struct kp_reader *r)
{
	(void)arg;
	(void)conn;
	(void)req;
	(void)r;
	g_served_key = h->request_api_key;
	return 0;
}

/* A served table: ApiVersions advertises it; its keys reach serve, others close. */
static void
test_served_table(void **state)
{
	static const struct kp_api_versions_response_api_version apis[] = {
		{.api_key = 3, .min_version = 0, .max_version = 12},
		{.api_key = 18, .min_version = 0, .max_version = 4},
	};
	static const uint8_t want[] = {
		0, 0, 0, 22,          /* size */
		0, 0, 0, 5,           /* correlation id */
		0, 0,                 /* error */
		0, 0, 0, 2,           /* array of 2 */
		0, 3, 0, 0, 0, 12,    /* Metadata 0..12 */
		0, 18, 0, 0, 0, 4,    /* ApiVersions 0..4 */
	};
	static const uint8_t metadata[] = {0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0};
	static const uint8_t produce[] = {0, 0, 0, 3, 0, 0, 0, 1, 0xff, 0xff};
	struct dp_handler_apis t = {.apis = apis, .n_apis = 2, .serve = serve_stub};
	struct dp_conn_env env = {.max_inflight = 1, .max_pending_bytes = 1};
	struct dp_conn_slot slot;
	struct dp_conn conn;
	uint8_t rx[16];
	uint8_t buf[64];

	(void)state;
	assert_int_equal(dp_handler_api_versions_encode_apis(buf, sizeof(buf), 0, 5, 0, &t),
		sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	dp_conn_setup(&conn, &ops, &env, rx, sizeof(rx), 100, &slot);
	assert_int_equal(dp_handler_frame(&t, &conn, 0, metadata, sizeof(metadata)), 0);
	assert_int_equal(g_served_key, 3);
	g_served_key = -1;
	assert_int_equal(dp_handler_frame(&t, &conn, 0, produce, sizeof(produce)),
		-EPROTONOSUPPORT);
	assert_int_equal(g_served_key, -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_api_versions_v0),
		cmocka_unit_test(test_api_versions_v1),
		cmocka_unit_test(test_api_versions_v3),
		cmocka_unit_test(test_api_versions_unsupported_is_v0),
		cmocka_unit_test(test_header_paths),
		cmocka_unit_test(test_served_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
