/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The load generator's JSON writer and report: output checked by a small
 * strict JSON parser written here (so a stray comma or an unescaped byte
 * fails), escaping, non-finite numbers, misuse errors, the histogram buckets
 * as written, and a report from a real bounded run of the produce path
 * against the loopback sink (tcp-baseline mode, 127.0.0.1 only).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lg_json.h"
#include "lg_report.h"
#include "lg_run.h"

/* ---- a strict JSON syntax checker (RFC 8259) ---- */

struct jp {
	const char *p;
	const char *end;
	int depth;
};

static bool jp_value(struct jp *j);

static void
jp_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
		j->p++;
}

static bool
jp_lit(struct jp *j, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return false;
	j->p += n;
	return true;
}

static bool
jp_string(struct jp *j)
{
	if (j->p >= j->end || *j->p != '"')
		return false;
	j->p++;
	while (j->p < j->end && *j->p != '"') {
		unsigned char c = (unsigned char)*j->p;
		if (c < 0x20)
			return false;
		if (c == '\\') {
			j->p++;
			if (j->p >= j->end)
				return false;
			if (*j->p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (j->p + i >= j->end || !strchr("0123456789abcdefABCDEF",
									  j->p[i]))
						return false;
				j->p += 4;
			} else if (!strchr("\"\\/bfnrt", *j->p)) {
				return false;
			}
		}
		j->p++;
	}
	if (j->p >= j->end)
		return false;
	j->p++;
	return true;
}

static bool
jp_number(struct jp *j)
{
	const char *s = j->p;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p >= j->end || *j->p < '0' || *j->p > '9')
		return false;
	if (*j->p == '0')
		j->p++;
	else
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return false;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return false;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	return j->p > s;
}

static bool
jp_container(struct jp *j, char open, char close, bool obj)
{
	if (j->p >= j->end || *j->p != open || ++j->depth > 64)
		return false;
	j->p++;
	jp_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		j->depth--;
		return true;
	}
	for (;;) {
		jp_ws(j);
		if (obj) {
			if (!jp_string(j))
				return false;
			jp_ws(j);
			if (j->p >= j->end || *j->p != ':')
				return false;
			j->p++;
		}
		if (!jp_value(j))
			return false;
		jp_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			j->depth--;
			return true;
		}
		return false;
	}
}

static bool
jp_value(struct jp *j)
{
	jp_ws(j);
	if (j->p >= j->end)
		return false;
	switch (*j->p) {
	case '{':
		return jp_container(j, '{', '}', true);
	case '[':
		return jp_container(j, '[', ']', false);
	case '"':
		return jp_string(j);
	case 't':
		return jp_lit(j, "true");
	case 'f':
		return jp_lit(j, "false");
	case 'n':
		return jp_lit(j, "null");
	default:
		return jp_number(j);
	}
}

static bool
json_valid(const char *s, size_t len)
{
	struct jp j = {.p = s, .end = s + len};

	if (!jp_value(&j))
		return false;
	jp_ws(&j);
	return j.p == j.end;
}

static void
test_checker_itself(void **state)
{
	(void)state;
	const char *good[] = {"{}", "[]", "{\"a\":[1,2.5,-3e-2,true,null,\"x\\n\"]}", "0"};
	const char *bad[] = {"{,}", "[1,]", "{\"a\" 1}", "[01]", "\"a\x01\"", "{} x", "[1 2]"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(json_valid(good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(json_valid(bad[i], strlen(bad[i])));
}

/* ---- the writer ---- */

static void
test_writer(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct lg_json j;
	(void)state;

	assert_non_null(f);
	lg_json_init(&j, f);
	lg_json_obj_begin(&j, NULL);
	lg_json_str(&j, "s", "q\"b\\n\nt\t\x01");
	lg_json_u64(&j, "u", UINT64_MAX);
	lg_json_i64(&j, "i", -42);
	lg_json_f64(&j, "nan", NAN);
	lg_json_f64(&j, "inf", INFINITY);
	lg_json_f64(&j, "f", 1234567.875);
	lg_json_bool(&j, "b", true);
	lg_json_str(&j, "null", NULL);
	lg_json_arr_begin(&j, "a");
	lg_json_arr_begin(&j, NULL);
	lg_json_arr_end(&j);
	lg_json_obj_begin(&j, NULL);
	lg_json_obj_end(&j);
	lg_json_u64(&j, NULL, 7);
	lg_json_arr_end(&j);
	lg_json_obj_end(&j);
	assert_int_equal(lg_json_finish(&j), 0);
	fclose(f);
	assert_true(json_valid(buf, len));
	assert_string_equal(buf, "{\"s\":\"q\\\"b\\\\n\\nt\\t\\u0001\",\"u\":18446744073709551615,"
				 "\"i\":-42,\"nan\":null,\"inf\":null,\"f\":1234567.875,\"b\":true,"
				 "\"null\":null,\"a\":[[],{},7]}\n");
	free(buf);
}

static int
writer_misuse(int which)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct lg_json j;

	lg_json_init(&j, f);
	switch (which) {
	case 0: /* end without begin */
		lg_json_obj_end(&j);
		break;
	case 1: /* a name inside an array */
		lg_json_arr_begin(&j, NULL);
		lg_json_u64(&j, "x", 1);
		lg_json_arr_end(&j);
		break;
	case 2: /* no name inside an object */
		lg_json_obj_begin(&j, NULL);
		lg_json_u64(&j, NULL, 1);
		lg_json_obj_end(&j);
		break;
	case 3: /* unclosed */
		lg_json_obj_begin(&j, NULL);
		break;
	case 4: /* mismatched close */
		lg_json_obj_begin(&j, NULL);
		lg_json_arr_end(&j);
		break;
	default: /* too deep */
		for (int i = 0; i <= LG_JSON_MAX_DEPTH; i++)
			lg_json_arr_begin(&j, NULL);
		break;
	}
	int rc = lg_json_finish(&j);
	fclose(f);
	free(buf);
	return rc;
}

static void
test_writer_misuse(void **state)
{
	(void)state;
	for (int i = 0; i < 6; i++)
		assert_int_equal(writer_misuse(i), -EINVAL);
}

/* ---- the report ---- */

static char *
report_of(const struct lg_config *cfg, const struct lg_result *res, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	assert_non_null(f);
	assert_int_equal(lg_report_json(f, cfg, res), 0);
	fclose(f);
	assert_true(json_valid(buf, *len));
	return buf;
}

static void
test_report_hist(void **state)
{
	struct lg_config cfg;
	struct lg_result *res = calloc(1, sizeof(*res));
	struct lg_second secs[2] = {
		{.t = 1.0, .prod_records = 100, .prod_bytes = 102400, .ack_p99_ns = 5000},
		{.t = 2.0, .prod_records = 50, .prod_bytes = 51200, .ack_p99_ns = 1003},
	};
	int64_t start[2] = {0, 10}, acked[2] = {80, 80}, cons[2] = {-1, -1};
	uint64_t cpp[2] = {0, 0};
	size_t len;
	(void)state;

	assert_non_null(res);
	lg_config_defaults(&cfg);
	snprintf(cfg.topic, sizeof(cfg.topic), "we\"ird");
	lg_hist_reset(&res->ack);
	lg_hist_reset(&res->e2e);
	lg_hist_reset(&res->fetch_rtt);
	lg_hist_record(&res->fetch_rtt, 70); /* exact bucket [70,70] */
	lg_hist_record(&res->ack, 1000); /* bucket [1000,1003] */
	lg_hist_record(&res->ack, 1001);
	lg_hist_record(&res->ack, 5);	 /* exact bucket [5,5] */
	res->partitions = 2;
	res->acked_records = 150;
	res->acked_bytes = 153600;
	res->elapsed_s = 2.0;
	res->start_offsets = start;
	res->acked_end = acked;
	res->consumed_end = cons;
	res->consumed_per_partition = cpp;
	res->seconds = secs;
	res->nseconds = 2;
	char *out = report_of(&cfg, res, &len);
	assert_non_null(strstr(out, "\"topic\":\"we\\\"ird\""));
	assert_non_null(strstr(out, "\"records_per_s\":75,"));
	assert_non_null(strstr(out, "\"mb_per_s\":0.0768,"));
	assert_non_null(strstr(out, "\"produce_ack\":{\"unit\":\"ns\",\"count\":3,\"min\":5,"
				    "\"max\":1001,"));
	assert_non_null(strstr(out, "\"percentiles\":{\"50\":1001,\"90\":1001,\"99\":1001,"
				    "\"99.9\":1001,\"99.99\":1001,\"100\":1001}"));
	assert_non_null(strstr(out, "\"buckets\":[[5,5,1],[1000,1003,2]]"));
	assert_non_null(strstr(out, "\"e2e\":{\"unit\":\"ns\",\"count\":0,\"min\":0,\"max\":0,"));
	assert_non_null(strstr(out, "\"fetch_rtt\":{\"unit\":\"ns\",\"count\":1,\"min\":70,"
				    "\"max\":70,"));
	assert_non_null(strstr(out, "{\"partition\":1,\"start_offset\":10,\"acked_end_offset\":80,"
				    "\"consumed_end_offset\":-1,\"consumed_records\":0}"));
	assert_non_null(strstr(out, "{\"t_s\":2,\"produced_records_per_s\":50,"
				    "\"produced_mb_per_s\":0.0512,"));
	assert_non_null(strstr(out, "\"first_error\":null"));
	free(out);
	free(res);
}

/* The produce path for real, against the loopback sink: every record acknowledged once. */
static void
test_baseline_run(void **state)
{
	struct lg_config cfg;
	struct lg_result *res = calloc(1, sizeof(*res));
	size_t len;
	(void)state;

	assert_non_null(res);
	lg_config_defaults(&cfg);
	cfg.mode = LG_MODE_TCP_BASELINE;
	cfg.partitions = 3;
	cfg.connections = 2;
	cfg.threads = 2;
	cfg.record_size = 100;
	cfg.batch_size = 2048;
	cfg.count = 5000;
	cfg.duration_s = 0;
	cfg.progress = false;
	cfg.codec = KP_COMPRESSION_LZ4;
	cfg.keys = 7;
	cfg.request_timeout_ms = 10000;
	assert_int_equal(lg_run(&cfg, res), 0);
	assert_int_equal(res->errors, 0);
	assert_int_equal(res->acked_records, 5000);
	assert_int_equal(res->sent_records, 5000);
	assert_int_equal(res->acked_bytes, 5000 * (100 + 8));
	/* one latency sample per request, and requests carry at most 3 x records-per-batch */
	assert_int_equal(res->ack.count, res->produce_requests);
	assert_true(res->produce_requests >= 5000 / (3 * 17));
	assert_true(res->wire_bytes_out > 0);
	char *out = report_of(&cfg, res, &len);
	assert_non_null(strstr(out, "\"mode\":\"tcp-baseline\""));
	assert_non_null(strstr(out, "\"acked_records\":5000,"));
	free(out);
	lg_result_free(res);
	free(res);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checker_itself),
		cmocka_unit_test(test_writer),
		cmocka_unit_test(test_writer_misuse),
		cmocka_unit_test(test_report_hist),
		cmocka_unit_test(test_baseline_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
