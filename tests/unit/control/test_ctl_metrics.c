/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_metrics: the Prometheus exposition of hand-made snapshots, checked by
 * a strict parser of the text format (HELP/TYPE before samples, each family
 * once and contiguous, metric and label names, escaped label values,
 * numeric values, histogram buckets cumulative with +Inf = _count), then
 * sample by sample: per-API counters and histograms, blocks added up,
 * partitions merged across lcores (counters summed, log end offset the
 * highest), the busy ratio, consumer lag (0 when the commit is ahead, no
 * lag sample for a partition the dataplane has not seen, escaped group
 * names), a dataplane that is down, the DPDK net workers' stack counters
 * (one sample per worker, none without a worker). Last, the HTTP handler over a real
 * segment created with dp_metrics_create().
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ctl_metrics.h"

/* ---- a strict parser of the text format -------------------------------------- */

#define MAX_FAMILIES 64

struct family {
	char name[128];
	char type[16];
	bool has_help, has_type, done;
};

static bool
name_ok(const char *s, size_t n)
{
	if (n == 0 || !(s[0] == '_' || s[0] == ':' || (s[0] >= 'a' && s[0] <= 'z') ||
	                (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];

		if (!(c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

static struct family *
fam_get(struct family *f, int *n, const char *name, size_t len)
{
	for (int i = 0; i < *n; i++) {
		if (strlen(f[i].name) == len && memcmp(f[i].name, name, len) == 0)
			return &f[i];
	}
	assert_true(*n < MAX_FAMILIES);
	memset(&f[*n], 0, sizeof(f[*n]));
	memcpy(f[*n].name, name, len);
	return &f[(*n)++];
}

/* The family a sample belongs to (histogram suffixes stripped when declared so). */
static struct family *
fam_of_sample(struct family *f, int n, const char *name, size_t len)
{
	static const char *const suf[] = {"_bucket", "_sum", "_count"};

	for (int i = 0; i < n; i++) {
		size_t fl = strlen(f[i].name);

		if (fl == len && memcmp(f[i].name, name, len) == 0)
			return &f[i];
		if (strcmp(f[i].type, "histogram") != 0 || len <= fl ||
		    memcmp(f[i].name, name, fl) != 0)
			continue;
		for (int k = 0; k < 3; k++) {
			if (len - fl == strlen(suf[k]) && memcmp(name + fl, suf[k], len - fl) == 0)
				return &f[i];
		}
	}
	return NULL;
}

/* Parse the whole exposition; fail the test on the first violation. */
static void
check_format(const char *text)
{
	struct family fams[MAX_FAMILIES];
	struct family *cur = NULL;
	int nf = 0;
	const char *p = text;
	double last_bucket = -1, inf = -1;
	char hist_key[1200] = "";

	assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = (size_t)(nl - p);
		char line[1024];

		assert_non_null(nl);
		assert_true(len < sizeof(line));
		memcpy(line, p, len);
		line[len] = '\0';
		p = nl + 1;
		if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
			const char *name = line + 7, *sp = strchr(name, ' ');
			struct family *f;

			assert_non_null(sp);
			assert_true(name_ok(name, (size_t)(sp - name)));
			f = fam_get(fams, &nf, name, (size_t)(sp - name));
			if (f->done || (cur != NULL && cur != f && (f->has_help || f->has_type)))
				fail_msg("family %s declared twice or interleaved", f->name);
			if (cur != NULL && cur != f)
				cur->done = true;
			cur = f;
			if (line[2] == 'H') {
				assert_false(f->has_help);
				f->has_help = true;
			} else {
				assert_false(f->has_type);
				assert_true(strcmp(sp + 1, "counter") == 0 ||
				            strcmp(sp + 1, "gauge") == 0 ||
				            strcmp(sp + 1, "histogram") == 0);
				snprintf(f->type, sizeof(f->type), "%s", sp + 1);
				f->has_type = true;
			}
			continue;
		}
		assert_true(line[0] != '#' && line[0] != '\0');
		{
			size_t nlen = strcspn(line, "{ ");
			struct family *f = fam_of_sample(fams, nf, line, nlen);
			const char *q = line + nlen;
			char le[256] = "", labels_wo_le[1024] = "";
			size_t lw = 0;
			char *end;
			double v;

			if (f == NULL || !f->has_type)
				fail_msg("sample before its TYPE: %s", line);
			if (f != cur)
				fail_msg("sample of %s outside its family block: %s", f->name,
				         line);
			if (*q == '{') {
				q++;
				while (*q != '}') {
					size_t ln = strcspn(q, "=");
					char lname[64], val[256];
					size_t vl = 0;

					assert_true(name_ok(q, ln) && ln < sizeof(lname));
					memcpy(lname, q, ln);
					lname[ln] = '\0';
					q += ln;
					assert_int_equal(*q++, '=');
					assert_int_equal(*q++, '"');
					while (*q != '"') {
						assert_true(*q != '\0' && *q != '\n');
						if (*q == '\\') {
							q++;
							assert_true(*q == '\\' || *q == '"' ||
							            *q == 'n');
						}
						assert_true(vl < sizeof(val) - 1);
						val[vl++] = *q++;
					}
					val[vl] = '\0';
					q++;
					if (strcmp(lname, "le") == 0)
						snprintf(le, sizeof(le), "%s", val);
					else
						lw += (size_t)snprintf(labels_wo_le + lw,
						                       sizeof(labels_wo_le) - lw,
						                       "%s=%s,", lname, val);
					if (*q == ',')
						q++;
					else
						assert_int_equal(*q, '}');
				}
				q++;
			}
			assert_int_equal(*q++, ' ');
			v = strtod(q, &end);
			assert_true(end != q && *end == '\0');
			if (strcmp(f->type, "counter") == 0)
				assert_true(v >= 0);
			if (strcmp(f->type, "histogram") == 0) {
				if (strncmp(line + strlen(f->name), "_bucket", 7) == 0) {
					char key[1200];

					assert_true(le[0] != '\0');
					snprintf(key, sizeof(key), "%s|%s", f->name, labels_wo_le);
					if (strcmp(key, hist_key) != 0) {
						snprintf(hist_key, sizeof(hist_key), "%s", key);
						last_bucket = -1;
					}
					assert_true(v >= last_bucket); /* cumulative */
					last_bucket = v;
					if (strcmp(le, "+Inf") == 0)
						inf = v;
				} else if (strncmp(line + strlen(f->name), "_count", 6) == 0) {
					assert_true(v == inf); /* +Inf bucket = count */
				}
			}
		}
	}
	for (int i = 0; i < nf; i++)
		assert_true(fams[i].has_help && fams[i].has_type);
}

/* The value of the sample whose text before the value is exactly @series. */
static double
sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; (p = strstr(p, series)) != NULL; p++) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	}
	return -1;
}

static bool
has(const char *text, const char *s)
{
	return strstr(text, s) != NULL;
}

/* ---- snapshots ------------------------------------------------------------- */

static struct dp_metrics_block g_blocks[2];

static void
hist_put(struct dp_metrics_hist *h, int bucket, uint64_t n, uint64_t ns_each)
{
	h->count += n;
	h->buckets[bucket] += n;
	h->sum_ns += n * ns_each;
}

static void
tp_put(struct dp_metrics_block *b, const char *topic, int32_t part, uint64_t bin, uint64_t rin,
       uint64_t bout, uint64_t rout, int64_t leo)
{
	struct dp_metrics_tp *tp = &b->tps[b->n_tps++];

	snprintf(tp->topic, sizeof(tp->topic), "%s", topic);
	tp->partition = part;
	tp->bytes_in = bin;
	tp->records_in = rin;
	tp->bytes_out = bout;
	tp->records_out = rout;
	tp->log_end_offset = leo;
}

static struct dp_metrics_snapshot
make_snapshot(void)
{
	struct dp_metrics_snapshot s;

	memset(&s, 0, sizeof(s));
	memset(g_blocks, 0, sizeof(g_blocks));
	s.hdr.magic = DP_METRICS_MAGIC;
	s.hdr.n_blocks = 2;
	s.hdr.tsc_hz = 1000;
	s.hdr.start_unix_ms = 1700000000123ull;
	s.blocks = g_blocks;
	g_blocks[0].lcore = 0;
	g_blocks[1].lcore = 2;
	/* Bucket indexes: 0 <= 5 us, 1 <= 10, 2 <= 25, 3 <= 50, 4 <= 100, 5 <= 250, 7 <= 1000. */
	hist_put(&g_blocks[0].api[0], 2, 3, 20000);  /* Produce: 3 x 20 us */
	hist_put(&g_blocks[1].api[0], 7, 2, 800000); /* and 2 x 0.8 ms on lcore 2 */
	hist_put(&g_blocks[0].api[18], 0, 1, 1000);  /* ApiVersions */
	hist_put(&g_blocks[1].storage_write, 5, 4, 200000);
	hist_put(&g_blocks[0].fetch_wakeup, 1, 6, 10000); /* 6 x 10 us */
	hist_put(&g_blocks[1].fetch_wakeup, 4, 1, 70000); /* and 1 x 70 us on lcore 2 */
	g_blocks[0].conn_accepted = 5;
	g_blocks[0].conn_closed = 2;
	g_blocks[1].conn_accepted = 1;
	g_blocks[0].busy_tsc = 250;
	g_blocks[0].idle_tsc = 750;
	g_blocks[1].busy_tsc = 0;
	g_blocks[1].idle_tsc = 0;
	g_blocks[0].long_iters[0] = 7; /* 7 of at least 100 us, 2 of them over 1 ms */
	g_blocks[0].long_iters[1] = 2;
	g_blocks[0].long_tsc = 50;
	g_blocks[0].cpu_ns = 200000000; /* 0.2 s */
	g_blocks[1].tp_overflow = 9;
	tp_put(&g_blocks[0], "orders", 1, 100, 10, 0, 0, 10);
	tp_put(&g_blocks[0], "orders", 0, 50, 5, 20, 2, 5);
	tp_put(&g_blocks[1], "orders", 0, 70, 7, 30, 3, 12);
	tp_put(&g_blocks[1], "audit", 0, 1, 1, 0, 0, -1);
	return s;
}

static void
test_render_dataplane(void **state)
{
	struct dp_metrics_snapshot s = make_snapshot();
	struct ctl_buf b = {0};
	const char *t;

	(void)state;
	assert_int_equal(ctl_metrics_render(&s, NULL, NULL, 41, &b), 0);
	t = b.p;
	check_format(t);
	assert_true(sample(t, "slipstream_dataplane_up") == 1);
	assert_true(sample(t, "slipstream_metrics_scrapes_total") == 41);
	assert_true(sample(t, "slipstream_dataplane_start_time_seconds") == 1700000000.123);
	assert_true(sample(t, "slipstream_requests_total{api=\"Produce\"}") == 5);
	assert_true(sample(t, "slipstream_requests_total{api=\"ApiVersions\"}") == 1);
	assert_false(has(t, "api=\"Fetch\"")); /* APIs never called are left out */
	assert_true(sample(t, "slipstream_request_duration_seconds_bucket{api=\"Produce\","
	                      "le=\"5e-05\"}") == 3);
	assert_true(sample(t, "slipstream_request_duration_seconds_bucket{api=\"Produce\","
	                      "le=\"0.0005\"}") == 3);
	assert_true(sample(t, "slipstream_request_duration_seconds_bucket{api=\"Produce\","
	                      "le=\"0.001\"}") == 5);
	assert_true(sample(t, "slipstream_request_duration_seconds_bucket{api=\"Produce\","
	                      "le=\"+Inf\"}") == 5);
	assert_true(sample(t, "slipstream_request_duration_seconds_count{api=\"Produce\"}") == 5);
	assert_float_equal(sample(t, "slipstream_request_duration_seconds_sum{api=\"Produce\"}"),
	                   0.00166, 1e-9);
	assert_true(sample(t, "slipstream_connections_accepted_total") == 6);
	assert_true(sample(t, "slipstream_connections_closed_total") == 2);
	assert_true(sample(t, "slipstream_connections_open") == 4);
	assert_true(sample(t, "slipstream_storage_write_duration_seconds_count") == 4);
	assert_true(sample(t, "slipstream_storage_write_duration_seconds_bucket{le=\"0.00025\"}") ==
	            4);
	/* Parked Fetch wake-ups, both lcores added up; buckets cumulative. */
	assert_true(sample(t, "slipstream_fetch_wakeup_duration_seconds_count") == 7);
	assert_true(sample(t, "slipstream_fetch_wakeup_duration_seconds_bucket{le=\"5e-06\"}") == 0);
	assert_true(sample(t, "slipstream_fetch_wakeup_duration_seconds_bucket{le=\"1e-05\"}") == 6);
	assert_true(sample(t, "slipstream_fetch_wakeup_duration_seconds_bucket{le=\"5e-05\"}") == 6);
	assert_true(sample(t, "slipstream_fetch_wakeup_duration_seconds_bucket{le=\"0.0001\"}") ==
	            7);
	assert_float_equal(sample(t, "slipstream_fetch_wakeup_duration_seconds_sum"), 0.00013, 1e-9);
	assert_true(sample(t, "slipstream_lcore_busy_seconds_total{lcore=\"0\"}") == 0.25);
	assert_true(sample(t, "slipstream_lcore_long_iterations_total{lcore=\"0\",over=\"0.0001\"}") ==
		    7);
	assert_true(sample(t, "slipstream_lcore_long_iterations_total{lcore=\"0\",over=\"0.001\"}") ==
		    2);
	assert_true(sample(t, "slipstream_lcore_long_iterations_total{lcore=\"0\",over=\"0.01\"}") ==
		    0);
	assert_true(sample(t, "slipstream_lcore_long_iterations_total{lcore=\"2\",over=\"0.0001\"}") ==
		    0);
	assert_float_equal(sample(t, "slipstream_lcore_long_iteration_seconds_total{lcore=\"0\"}"),
			   0.05, 1e-9);
	assert_true(sample(t, "slipstream_lcore_idle_seconds_total{lcore=\"0\"}") == 0.75);
	assert_float_equal(sample(t, "slipstream_lcore_cpu_seconds_total{lcore=\"0\"}"), 0.2, 1e-9);
	assert_true(sample(t, "slipstream_lcore_cpu_seconds_total{lcore=\"2\"}") == 0);
	assert_true(sample(t, "slipstream_lcore_busy_ratio{lcore=\"0\"}") == 0.25);
	assert_true(sample(t, "slipstream_lcore_busy_ratio{lcore=\"2\"}") == 0);
	/* orders-0 appears on both lcores: added up; its log end the highest seen. */
	assert_true(sample(t, "slipstream_partition_bytes_in_total{topic=\"orders\","
	                      "partition=\"0\"}") == 120);
	assert_true(sample(t, "slipstream_partition_records_in_total{topic=\"orders\","
	                      "partition=\"0\"}") == 12);
	assert_true(sample(t, "slipstream_partition_bytes_out_total{topic=\"orders\","
	                      "partition=\"0\"}") == 50);
	assert_true(sample(t, "slipstream_partition_records_out_total{topic=\"orders\","
	                      "partition=\"0\"}") == 5);
	assert_true(sample(t, "slipstream_partition_log_end_offset{topic=\"orders\","
	                      "partition=\"0\"}") == 12);
	assert_true(sample(t, "slipstream_partition_records_in_total{topic=\"orders\","
	                      "partition=\"1\"}") == 10);
	/* audit-0's log end is unknown: no gauge sample, counters still there. */
	assert_true(sample(t, "slipstream_partition_records_in_total{topic=\"audit\","
	                      "partition=\"0\"}") == 1);
	assert_false(has(t, "slipstream_partition_log_end_offset{topic=\"audit\""));
	/* Sorted: audit before orders, partition 0 before 1. */
	assert_true(strstr(t, "bytes_in_total{topic=\"audit\"") <
	            strstr(t, "bytes_in_total{topic=\"orders\",partition=\"0\""));
	assert_true(strstr(t, "bytes_in_total{topic=\"orders\",partition=\"0\"") <
	            strstr(t, "bytes_in_total{topic=\"orders\",partition=\"1\""));
	assert_true(sample(t, "slipstream_metrics_partitions_untracked_total") == 9);
	assert_false(has(t, "consumergroup")); /* no offsets source */
	assert_false(has(t, "slipstream_net_")); /* no DPDK net worker */
	ctl_buf_free(&b);
}

/*
 * slipstream_requests_errors_total{api,error}: the dataplane's per-lcore
 * counts added up, plus the control process's own (ctl_metrics_count_error);
 * codes without a name by number; the family also without a dataplane.
 */
static void
test_render_errors(void **state)
{
	struct dp_metrics_snapshot s = make_snapshot();
	struct ctl_buf b = {0};
	const char *t;

	(void)state;
	g_blocks[0].api_errors[0][0 + 1] = 7;  /* Produce NONE */
	g_blocks[1].api_errors[0][0 + 1] = 2;
	g_blocks[1].api_errors[0][3 + 1] = 4;  /* Produce UNKNOWN_TOPIC_OR_PARTITION */
	g_blocks[0].api_errors[1][-1 + 1] = 1; /* Fetch UNKNOWN_SERVER_ERROR */
	g_blocks[0].api_errors[1][126 + 1] = 1; /* a code without a name */
	ctl_metrics_count_error(11, 25);       /* JoinGroup UNKNOWN_MEMBER_ID, twice */
	ctl_metrics_count_error(11, 25);
	ctl_metrics_count_error(11, 500);      /* out of range: not counted */
	ctl_metrics_count_error(-1, 0);
	assert_int_equal(ctl_metrics_render(&s, NULL, NULL, 1, &b), 0);
	t = b.p;
	check_format(t);
	assert_true(sample(t, "slipstream_requests_errors_total{api=\"Produce\",error=\"NONE\"}") ==
	            9);
	assert_true(sample(t, "slipstream_requests_errors_total{api=\"Produce\","
	                      "error=\"UNKNOWN_TOPIC_OR_PARTITION\"}") == 4);
	assert_true(sample(t, "slipstream_requests_errors_total{api=\"Fetch\","
	                      "error=\"UNKNOWN_SERVER_ERROR\"}") == 1);
	assert_true(sample(t, "slipstream_requests_errors_total{api=\"Fetch\",error=\"126\"}") ==
	            1);
	assert_true(sample(t, "slipstream_requests_errors_total{api=\"JoinGroup\","
	                      "error=\"UNKNOWN_MEMBER_ID\"}") == 2);
	assert_false(has(t, "api=\"Metadata\",error")); /* nothing counted: no sample */
	ctl_buf_free(&b);
	/* No dataplane: the control process's own counts still. */
	assert_int_equal(ctl_metrics_render(NULL, NULL, NULL, 2, &b), 0);
	t = b.p;
	check_format(t);
	assert_true(sample(t, "slipstream_requests_errors_total{api=\"JoinGroup\","
	                      "error=\"UNKNOWN_MEMBER_ID\"}") == 2);
	assert_false(has(t, "api=\"Produce\",error"));
	ctl_buf_free(&b);
}

static void
test_render_net(void **state)
{
	struct dp_metrics_snapshot s = make_snapshot();
	struct ctl_buf b = {0};
	const char *t;

	(void)state;
	/* Net workers 0 and 1 on lcores 0 and 2. */
	g_blocks[0].net.worker = 1;
	g_blocks[1].net.worker = 2;
	snprintf(g_blocks[0].net.port, sizeof(g_blocks[0].net.port), "net_tap0");
	snprintf(g_blocks[1].net.port, sizeof(g_blocks[1].net.port), "net_tap0");
	g_blocks[0].net.v[DP_NET_RX_PACKETS] = 100;
	g_blocks[1].net.v[DP_NET_RX_PACKETS] = 7;
	g_blocks[0].net.v[DP_NET_TX_BYTES] = 123456;
	g_blocks[0].net.v[DP_NET_DROP_TCP_CHECKSUM] = 3;
	g_blocks[1].net.v[DP_NET_DROP_IP_MALFORMED] = 4;
	g_blocks[0].net.v[DP_NET_TCP_RETRANS_SACK] = 9;
	g_blocks[0].net.v[DP_NET_TCP_COOKIES_OK] = 2;
	g_blocks[1].net.v[DP_NET_CONN_TIME_WAIT] = 11;
	g_blocks[0].net.v[DP_NET_DPDK_TX_EXTBUF] = 65536;
	g_blocks[0].net.v[DP_NET_TX_DROP_LINK_DOWN] = 5;
	g_blocks[0].net.v[DP_NET_DPDK_LINK_UP] = 0;
	g_blocks[1].net.v[DP_NET_DPDK_LINK_UP] = 1; /* worker 1's copy is not rendered */
	assert_int_equal(ctl_metrics_render(&s, NULL, NULL, 1, &b), 0);
	t = b.p;
	check_format(t);
	assert_true(sample(t, "slipstream_net_rx_packets_total{port=\"net_tap0\",worker=\"0\"}") ==
	            100);
	assert_true(sample(t, "slipstream_net_rx_packets_total{port=\"net_tap0\",worker=\"1\"}") ==
	            7);
	assert_true(sample(t, "slipstream_net_tx_bytes_total{port=\"net_tap0\",worker=\"0\"}") ==
	            123456);
	assert_true(sample(t, "slipstream_net_rx_dropped_total{port=\"net_tap0\",worker=\"0\","
	                      "reason=\"tcp_checksum\"}") == 3);
	assert_true(sample(t, "slipstream_net_rx_dropped_total{port=\"net_tap0\",worker=\"1\","
	                      "reason=\"ipv4_malformed\"}") == 4);
	assert_true(sample(t, "slipstream_net_rx_dropped_total{port=\"net_tap0\",worker=\"1\","
	                      "reason=\"tcp_checksum\"}") == 0);
	assert_true(sample(t, "slipstream_net_tcp_retransmits_total{port=\"net_tap0\","
	                      "worker=\"0\",kind=\"sack\"}") == 9);
	assert_true(sample(t, "slipstream_net_tcp_syncookies_total{port=\"net_tap0\","
	                      "worker=\"0\",result=\"accepted\"}") == 2);
	assert_true(sample(t, "slipstream_net_tcp_connections{port=\"net_tap0\",worker=\"1\","
	                      "state=\"time_wait\"}") == 11);
	assert_true(sample(t, "slipstream_dpdk_response_bytes_total{port=\"net_tap0\","
	                      "worker=\"0\",path=\"extbuf\"}") == 65536);
	assert_true(sample(t, "slipstream_net_tx_dropped_total{port=\"net_tap0\",worker=\"0\","
	                      "reason=\"link_down\"}") == 5);
	/* The link gauge: one sample per port (net worker 0's), no worker label. */
	assert_true(sample(t, "slipstream_dpdk_link_up{port=\"net_tap0\"}") == 0);
	assert_false(has(t, "slipstream_dpdk_link_up{port=\"net_tap0\",worker"));
	assert_null(strstr(strstr(t, "\nslipstream_dpdk_link_up{") + 1,
	                   "\nslipstream_dpdk_link_up{")); /* one sample */
	assert_true(has(t, "# TYPE slipstream_dpdk_link_up gauge"));
	assert_true(has(t, "# TYPE slipstream_net_tcp_connections gauge"));
	assert_true(has(t, "# TYPE slipstream_net_rx_dropped_total counter"));
	ctl_buf_free(&b);
}

static void
test_render_hop_storage(void **state)
{
	struct dp_metrics_snapshot s = make_snapshot();
	struct ctl_buf b = {0};
	const char *t;

	(void)state;
	/* Nothing published: no hop or storage family. */
	assert_int_equal(ctl_metrics_render(&s, NULL, NULL, 1, &b), 0);
	assert_false(has(b.p, "slipstream_hop_"));
	assert_false(has(b.p, "slipstream_storage_cache"));
	ctl_buf_free(&b);

	/* A net worker on lcore 0 hops to the broker and its writers on lcore 2. */
	g_blocks[0].hop.sides = DP_METRICS_HOP_WORKER;
	g_blocks[0].hop.v[DP_HOP_M_HOPPED] = 40;
	g_blocks[0].hop.v[DP_HOP_M_LOCAL] = 2;
	g_blocks[0].hop.v[DP_HOP_M_DEFERRED_RING] = 3;
	g_blocks[0].hop.v[DP_HOP_M_RTT_NS_SUM] = 1500000000;
	g_blocks[0].hop.v[DP_HOP_M_PENDING] = 1;
	g_blocks[0].hop.v[DP_HOP_M_SERVED] = 99; /* not its side: not rendered */
	g_blocks[1].hop.sides = DP_METRICS_HOP_BROKER;
	g_blocks[1].hop.v[DP_HOP_M_SERVED] = 39;
	g_blocks[1].hop.v[DP_HOP_M_QUEUED] = 1;
	g_blocks[1].hop.v[DP_HOP_M_BROKER_LATE] = 4;
	g_blocks[1].storage.writers = 2;
	g_blocks[1].storage.v[DP_STOR_M_CHUNKS] = 64;
	g_blocks[1].storage.v[DP_STOR_M_CHUNKS_FREE] = 50;
	g_blocks[1].storage.v[DP_STOR_M_STEALS] = 7;
	g_blocks[1].storage.v[DP_STOR_M_ACTIVE_STEALS] = 1;
	g_blocks[1].storage.v[DP_STOR_M_LOGS] = 12;
	g_blocks[1].storage.v[DP_STOR_M_OPEN_FILES] = 13;
	g_blocks[1].storage.v[DP_STOR_M_READS_CACHE] = 21;
	g_blocks[1].storage.v[DP_STOR_M_READS_FILE] = 5;
	assert_int_equal(ctl_metrics_render(&s, NULL, NULL, 1, &b), 0);
	t = b.p;
	check_format(t);
	assert_true(sample(t, "slipstream_hop_requests_total{lcore=\"0\",path=\"hopped\"}") == 40);
	assert_true(sample(t, "slipstream_hop_requests_total{lcore=\"0\",path=\"local\"}") == 2);
	assert_true(sample(t, "slipstream_hop_deferred_total{lcore=\"0\",reason=\"ring\"}") == 3);
	assert_true(sample(t, "slipstream_hop_deferred_total{lcore=\"0\",reason=\"descriptor\"}")
	            == 0);
	assert_true(sample(t, "slipstream_hop_round_trip_seconds_total{lcore=\"0\"}") == 1.5);
	assert_true(sample(t, "slipstream_hop_pending{lcore=\"0\"}") == 1);
	assert_true(sample(t, "slipstream_hop_served_total{lcore=\"2\"}") == 39);
	assert_false(has(t, "slipstream_hop_served_total{lcore=\"0\"}"));
	assert_false(has(t, "slipstream_hop_requests_total{lcore=\"2\""));
	assert_true(sample(t, "slipstream_hop_queued{lcore=\"2\"}") == 1);
	assert_true(sample(t, "slipstream_hop_late_replies_total{lcore=\"2\",side=\"broker\"}")
	            == 4);
	assert_true(sample(t, "slipstream_hop_late_replies_total{lcore=\"0\",side=\"worker\"}")
	            == 0);
	assert_true(has(t, "# TYPE slipstream_hop_pending gauge"));
	assert_true(has(t, "# TYPE slipstream_hop_requests_total counter"));
	assert_true(sample(t, "slipstream_storage_cache_chunks{lcore=\"2\",state=\"total\"}") ==
	            64);
	assert_true(sample(t, "slipstream_storage_cache_chunks{lcore=\"2\",state=\"free\"}") ==
	            50);
	assert_true(sample(t, "slipstream_storage_cache_steals_total{lcore=\"2\",kind=\"any\"}") ==
	            7);
	assert_true(sample(t, "slipstream_storage_cache_steals_total{lcore=\"2\","
	                      "kind=\"active\"}") == 1);
	assert_true(sample(t, "slipstream_storage_logs_open{lcore=\"2\"}") == 12);
	assert_true(sample(t, "slipstream_storage_files_open{lcore=\"2\"}") == 13);
	assert_true(sample(t, "slipstream_storage_reads_total{lcore=\"2\",from=\"cache\"}") == 21);
	assert_true(sample(t, "slipstream_storage_reads_total{lcore=\"2\",from=\"file\"}") == 5);
	assert_true(has(t, "# TYPE slipstream_storage_reads_total counter"));
	assert_false(has(t, "slipstream_storage_logs_open{lcore=\"0\"}"));
	assert_true(has(t, "# TYPE slipstream_storage_cache_chunks gauge"));
	ctl_buf_free(&b);
}

static int
offsets(void *arg, ctl_metrics_offset_fn cb, void *cb_arg)
{
	(void)arg;
	cb(cb_arg, "g1", "orders", 0, 7);             /* lag 12 - 7 = 5 */
	cb(cb_arg, "g1", "orders", 1, 11);            /* committed past the known end: lag 0 */
	cb(cb_arg, "we\"ird\\g\nx", "orders", 0, 12); /* escaped labels, lag 0 */
	cb(cb_arg, "g2", "unseen", 3, 4);             /* no log end known: committed only */
	cb(cb_arg, "g3", "orders", 0, -1);            /* nothing committed: no samples */
	return 0;
}

static void
test_render_lag(void **state)
{
	struct dp_metrics_snapshot s = make_snapshot();
	struct ctl_buf b = {0};
	const char *t;

	(void)state;
	assert_int_equal(ctl_metrics_render(&s, offsets, NULL, 1, &b), 0);
	t = b.p;
	check_format(t);
	assert_true(sample(t, "slipstream_consumergroup_committed_offset{group=\"g1\","
	                      "topic=\"orders\",partition=\"0\"}") == 7);
	assert_true(sample(t, "slipstream_consumergroup_lag{group=\"g1\",topic=\"orders\","
	                      "partition=\"0\"}") == 5);
	assert_true(sample(t, "slipstream_consumergroup_lag{group=\"g1\",topic=\"orders\","
	                      "partition=\"1\"}") == 0);
	assert_true(sample(t, "slipstream_consumergroup_lag{group=\"we\\\"ird\\\\g\\nx\","
	                      "topic=\"orders\",partition=\"0\"}") == 0);
	assert_true(sample(t, "slipstream_consumergroup_committed_offset{group=\"g2\","
	                      "topic=\"unseen\",partition=\"3\"}") == 4);
	assert_false(has(t, "slipstream_consumergroup_lag{group=\"g2\""));
	assert_false(has(t, "group=\"g3\""));
	ctl_buf_free(&b);
}

static void
test_render_down(void **state)
{
	struct ctl_buf b = {0};
	const char *t;

	(void)state;
	assert_int_equal(ctl_metrics_render(NULL, offsets, NULL, 3, &b), 0);
	t = b.p;
	check_format(t);
	assert_true(sample(t, "slipstream_dataplane_up") == 0);
	assert_false(has(t, "slipstream_requests_total"));
	assert_false(has(t, "slipstream_partition_"));
	/* Committed offsets are the control process's own: still exported; lag is not. */
	assert_true(sample(t, "slipstream_consumergroup_committed_offset{group=\"g1\","
	                      "topic=\"orders\",partition=\"0\"}") == 7);
	assert_false(has(t, "slipstream_consumergroup_lag"));
	ctl_buf_free(&b);
}

static void
test_http_handler_over_segment(void **state)
{
	char dir[] = "/tmp/ops-test-ctlm-XXXXXX", path[64];
	const unsigned int lcores[1] = {0};
	struct ctl_metrics m;
	struct ctl_buf b = {0};
	const char *ctype = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/seg", dir);
	assert_int_equal(ctl_metrics_init(&m, path), 0);
	/* No segment yet: answered, dataplane down. */
	assert_int_equal(ctl_metrics_http(&m, NULL, &b, &ctype), 200);
	assert_string_equal(ctype, "text/plain; version=0.0.4; charset=utf-8");
	check_format(b.p);
	assert_true(sample(b.p, "slipstream_dataplane_up") == 0);
	ctl_buf_free(&b);
	assert_int_equal(dp_metrics_create(path, 1, lcores, 1, 1000000000ull), 0);
	assert_int_equal(dp_metrics_bind(0), 0);
	dp_metrics_request(3, 2000);
	dp_metrics_produce("t", 1, 0, 64, 2, 2);
	{
		uint64_t hv[DP_HOP_M_COUNTERS] = {0}, sv[DP_STOR_M_COUNTERS] = {0};

		hv[DP_HOP_M_HOPPED] = 5;
		hv[DP_HOP_M_SERVED] = 5;
		sv[DP_STOR_M_CHUNKS] = 24;
		sv[DP_STOR_M_FLUSHES] = 3;
		sv[DP_STOR_M_FLUSH_NS] = 1500000000ull;
		dp_metrics_hop_publish(DP_METRICS_HOP_WORKER | DP_METRICS_HOP_BROKER, hv,
		                       DP_HOP_M_COUNTERS);
		dp_metrics_storage_publish(1, sv, DP_STOR_M_COUNTERS);
	}
	assert_int_equal(ctl_metrics_http(&m, NULL, &b, &ctype), 200);
	check_format(b.p);
	assert_true(sample(b.p, "slipstream_dataplane_up") == 1);
	assert_true(sample(b.p, "slipstream_requests_total{api=\"Metadata\"}") == 1);
	assert_true(sample(b.p, "slipstream_partition_records_in_total{topic=\"t\","
	                        "partition=\"0\"}") == 2);
	assert_true(sample(b.p, "slipstream_metrics_scrapes_total") == 2);
	assert_true(sample(b.p, "slipstream_hop_requests_total{lcore=\"0\",path=\"hopped\"}") ==
	            5);
	assert_true(sample(b.p, "slipstream_hop_served_total{lcore=\"0\"}") == 5);
	assert_true(sample(b.p, "slipstream_storage_cache_chunks{lcore=\"0\",state=\"total\"}")
	            == 24);
	assert_true(sample(b.p, "slipstream_storage_flushes_total{lcore=\"0\"}") == 3);
	assert_true(sample(b.p, "slipstream_storage_flush_seconds_total{lcore=\"0\"}") == 1.5);
	ctl_buf_free(&b);
	dp_metrics_destroy();
	assert_int_equal(ctl_metrics_http(&m, NULL, &b, &ctype), 200);
	assert_true(sample(b.p, "slipstream_dataplane_up") == 0);
	ctl_buf_free(&b);
	ctl_metrics_fini(&m);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_render_dataplane),
	        cmocka_unit_test(test_render_errors),
	        cmocka_unit_test(test_render_net),
	        cmocka_unit_test(test_render_hop_storage),
	        cmocka_unit_test(test_render_lag),
	        cmocka_unit_test(test_render_down),
	        cmocka_unit_test(test_http_handler_over_segment),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
