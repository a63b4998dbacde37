/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Summary, JSON report and plots of a load generator run (see lg_report.h).
 */
#include "lg_report.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kp_compress.h"

extern char **environ;

static const struct {
	const char *name;
	double p;
} report_pcts[] = {{"50", 50}, {"90", 90}, {"99", 99}, {"99.9", 99.9}, {"99.99", 99.99},
		   {"100", 100}};

void
lg_report_hist_json(struct lg_json *j, const char *name, const struct lg_hist *h)
{
	lg_json_obj_begin(j, name);
	lg_json_str(j, "unit", "ns");
	lg_json_u64(j, "count", h->count);
	lg_json_u64(j, "min", h->count ? h->min : 0);
	lg_json_u64(j, "max", h->max);
	lg_json_f64(j, "mean", lg_hist_mean(h));
	lg_json_obj_begin(j, "percentiles");
	for (size_t i = 0; i < sizeof(report_pcts) / sizeof(report_pcts[0]); i++)
		lg_json_u64(j, report_pcts[i].name, lg_hist_percentile(h, report_pcts[i].p));
	lg_json_obj_end(j);
	lg_json_arr_begin(j, "buckets");
	for (uint32_t i = 0; i < LG_HIST_BUCKETS; i++) {
		if (h->buckets[i] == 0)
			continue;
		lg_json_arr_begin(j, NULL);
		lg_json_u64(j, NULL, lg_hist_bucket_low(i));
		lg_json_u64(j, NULL, lg_hist_bucket_high(i));
		lg_json_u64(j, NULL, h->buckets[i]);
		lg_json_arr_end(j);
	}
	lg_json_arr_end(j);
	lg_json_obj_end(j);
}

static double
rate(uint64_t n, double s)
{
	return s > 0 ? (double)n / s : 0;
}

/* The workers' CPU time per MB of payload acknowledged plus consumed; 0 without either. */
static double
ms_per_mb(const struct lg_result *res, double s)
{
	double mb = (double)(res->acked_bytes + res->consumed_bytes) / 1e6;

	return mb > 0 ? s * 1e3 / mb : 0;
}

int
lg_report_json(FILE *f, const struct lg_config *cfg, const struct lg_result *res)
{
	struct lg_json j;

	lg_json_init(&j, f);
	lg_json_obj_begin(&j, NULL);
	lg_json_str(&j, "tool", "slipstream-load");
	lg_json_str(&j, "mode", lg_mode_name(cfg->mode));
	lg_json_str(&j, "transport", cfg->transport->name);

	lg_json_obj_begin(&j, "config");
	char broker[300];
	snprintf(broker, sizeof(broker), "%s:%u", cfg->host, cfg->port);
	lg_json_str(&j, "broker", cfg->mode == LG_MODE_TCP_BASELINE ? "loopback sink" : broker);
	lg_json_str(&j, "topic", cfg->topic);
	lg_json_i64(&j, "partitions", res->partitions);
	lg_json_u64(&j, "record_size", cfg->record_size);
	lg_json_u64(&j, "batch_size", cfg->batch_size);
	lg_json_f64(&j, "linger_ms", cfg->linger_us / 1000.0);
	lg_json_i64(&j, "acks", cfg->acks);
	lg_json_str(&j, "compression", kp_compression_name(cfg->codec));
	lg_json_u64(&j, "keys", cfg->keys);
	lg_json_u64(&j, "connections", cfg->connections);
	lg_json_u64(&j, "consumer_connections", res->consumer_connections);
	lg_json_u64(&j, "threads", cfg->threads);
	lg_json_u64(&j, "max_inflight", cfg->max_inflight);
	lg_json_f64(&j, "rate_records_per_s", cfg->rate);
	lg_json_f64(&j, "duration_s", cfg->duration_s);
	lg_json_f64(&j, "warmup_s", cfg->warmup_s);
	lg_json_u64(&j, "tail_us", cfg->tail_us);
	lg_json_u64(&j, "count", cfg->count);
	lg_json_obj_end(&j);

	lg_json_obj_begin(&j, "versions");
	lg_json_i64(&j, "produce", res->versions.produce);
	lg_json_i64(&j, "fetch", res->versions.fetch);
	lg_json_i64(&j, "list_offsets", res->versions.list_offsets);
	lg_json_i64(&j, "metadata", res->versions.metadata);
	lg_json_obj_end(&j);

	lg_json_obj_begin(&j, "result");
	lg_json_f64(&j, "elapsed_s", res->elapsed_s);
	lg_json_u64(&j, "sent_records", res->sent_records);
	lg_json_u64(&j, "acked_records", res->acked_records);
	lg_json_u64(&j, "acked_bytes", res->acked_bytes);
	lg_json_u64(&j, "failed_records", res->failed_records);
	lg_json_u64(&j, "retried_batches", res->retried_batches);
	lg_json_u64(&j, "produce_requests", res->produce_requests);
	lg_json_u64(&j, "produce_requests_patched", res->produce_requests_patched);
	lg_json_u64(&j, "wire_bytes_out", res->wire_bytes_out);
	lg_json_f64(&j, "records_per_s", rate(res->acked_records, res->elapsed_s));
	lg_json_f64(&j, "mb_per_s", rate(res->acked_bytes, res->elapsed_s) / 1e6);
	lg_json_f64(&j, "produce_requests_per_s", rate(res->produce_requests, res->elapsed_s));
	lg_json_f64(&j, "consume_elapsed_s", res->consume_elapsed_s);
	lg_json_u64(&j, "consumed_records", res->consumed_records);
	lg_json_u64(&j, "consumed_bytes", res->consumed_bytes);
	lg_json_f64(&j, "consume_records_per_s",
		    rate(res->consumed_records, res->consume_elapsed_s));
	lg_json_f64(&j, "consume_mb_per_s", rate(res->consumed_bytes, res->consume_elapsed_s) / 1e6);
	lg_json_u64(&j, "unstamped_records", res->unstamped_records);
	lg_json_u64(&j, "tail_records", res->tail_records);
	lg_json_u64(&j, "tail_before_ack", res->tail_before_ack);
	lg_json_u64(&j, "tail_unmatched", res->tail_unmatched);
	lg_json_u64(&j, "fetch_requests", res->fetch_requests);
	lg_json_u64(&j, "crc_errors", res->crc_errors);
	lg_json_u64(&j, "seq_checked", res->seq_checked);
	lg_json_u64(&j, "seq_errors", res->seq_errors);
	lg_json_f64(&j, "worker_cpu_s", res->worker_cpu_s);
	lg_json_f64(&j, "worker_cpu_ms_per_mb", ms_per_mb(res, res->worker_cpu_s));
	lg_json_f64(&j, "worker_busy_s", res->worker_busy_s);
	lg_json_f64(&j, "worker_busy_ms_per_mb", ms_per_mb(res, res->worker_busy_s));
	lg_json_u64(&j, "errors", res->errors);
	lg_json_str(&j, "first_error", res->first_error[0] ? res->first_error : NULL);
	lg_json_bool(&j, "timed_out", res->timed_out);
	lg_json_obj_end(&j);

	lg_json_arr_begin(&j, "partitions");
	for (int32_t p = 0; res->start_offsets && p < res->partitions; p++) {
		lg_json_obj_begin(&j, NULL);
		lg_json_i64(&j, "partition", p);
		lg_json_i64(&j, "start_offset", res->start_offsets[p]);
		lg_json_i64(&j, "acked_end_offset", res->acked_end[p]);
		lg_json_i64(&j, "consumed_end_offset", res->consumed_end[p]);
		lg_json_u64(&j, "consumed_records", res->consumed_per_partition[p]);
		lg_json_obj_end(&j);
	}
	lg_json_arr_end(&j);

	lg_json_arr_begin(&j, "timeseries");
	for (uint32_t i = 0; i < res->nseconds; i++) {
		const struct lg_second *s = &res->seconds[i];
		lg_json_obj_begin(&j, NULL);
		lg_json_f64(&j, "t_s", s->t);
		lg_json_u64(&j, "produced_records_per_s", s->prod_records);
		lg_json_f64(&j, "produced_mb_per_s", (double)s->prod_bytes / 1e6);
		lg_json_u64(&j, "consumed_records_per_s", s->cons_records);
		lg_json_f64(&j, "consumed_mb_per_s", (double)s->cons_bytes / 1e6);
		lg_json_u64(&j, "produce_ack_p99_ns", s->ack_p99_ns);
		lg_json_u64(&j, "e2e_p99_ns", s->e2e_p99_ns);
		lg_json_obj_end(&j);
	}
	lg_json_arr_end(&j);

	if (res->late_per_ms != NULL) {
		/* Sparse: [ms since t0, late records received in it] for the bins with any. */
		lg_json_obj_begin(&j, "tail_timeline");
		lg_json_i64(&j, "t0_mono_ns", res->t0_mono_ns);
		lg_json_arr_begin(&j, "late_per_ms");
		for (uint32_t i = 0; i < res->nlate_ms; i++) {
			if (res->late_per_ms[i] == 0)
				continue;
			lg_json_arr_begin(&j, NULL);
			lg_json_u64(&j, NULL, i);
			lg_json_u64(&j, NULL, res->late_per_ms[i]);
			lg_json_arr_end(&j);
		}
		lg_json_arr_end(&j);
		lg_json_arr_begin(&j, "loop_stalls"); /* [end, length] in ns from t0 */
		for (uint32_t i = 0; i < res->nloop_stalls; i++) {
			lg_json_arr_begin(&j, NULL);
			lg_json_i64(&j, NULL, res->loop_stalls[i][0]);
			lg_json_i64(&j, NULL, res->loop_stalls[i][1]);
			lg_json_arr_end(&j);
		}
		lg_json_arr_end(&j);
		lg_json_obj_end(&j);
	}

	lg_json_obj_begin(&j, "latency");
	lg_report_hist_json(&j, "produce_ack", &res->ack);
	lg_report_hist_json(&j, "e2e", &res->e2e);
	lg_report_hist_json(&j, "send_lag", &res->lag);
	lg_report_hist_json(&j, "fetch_rtt", &res->fetch_rtt);
	lg_report_hist_json(&j, "record_send_lag", &res->record_lag);
	lg_report_hist_json(&j, "loop", &res->loop);
	lg_report_hist_json(&j, "tail_send_wait", &res->tail_send);
	lg_report_hist_json(&j, "tail_produce_ack", &res->tail_ack);
	lg_report_hist_json(&j, "tail_after_ack", &res->tail_after);
	lg_json_obj_end(&j);
	lg_json_obj_end(&j);
	return lg_json_finish(&j);
}

static void
summary_hist(FILE *f, const char *what, const struct lg_hist *h)
{
	if (h->count == 0)
		return;
	fprintf(f, "  %-12s n=%" PRIu64 " min %.1f p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f us\n",
		what, h->count, h->min / 1e3, lg_hist_percentile(h, 50) / 1e3,
		lg_hist_percentile(h, 90) / 1e3, lg_hist_percentile(h, 99) / 1e3,
		lg_hist_percentile(h, 99.9) / 1e3, h->max / 1e3);
}

void
lg_report_summary(FILE *f, const struct lg_config *cfg, const struct lg_result *res)
{
	fprintf(f, "slipstream-load %s: topic %s, %d partitions, %u B records, %u B batches, "
		   "acks=%d, %s, %u conn x %u in flight, %u threads\n",
		lg_mode_name(cfg->mode), cfg->topic, res->partitions, cfg->record_size,
		cfg->batch_size, cfg->acks, kp_compression_name(cfg->codec), cfg->connections,
		cfg->max_inflight, cfg->threads);
	if (cfg->mode != LG_MODE_CONSUME)
		fprintf(f,
			"  produced     %" PRIu64 " records acked (%" PRIu64 " sent, %" PRIu64
			" failed, %" PRIu64 " batches retried) in %.2f s: %.0f records/s, "
			"%.2f MB/s, %.0f requests/s\n",
			res->acked_records, res->sent_records, res->failed_records,
			res->retried_batches, res->elapsed_s,
			rate(res->acked_records, res->elapsed_s),
			rate(res->acked_bytes, res->elapsed_s) / 1e6,
			rate(res->produce_requests, res->elapsed_s));
	if (cfg->mode == LG_MODE_CONSUME || cfg->mode == LG_MODE_E2E)
		fprintf(f,
			"  consumed     %" PRIu64 " records in %.2f s: %.0f records/s, %.2f MB/s\n",
			res->consumed_records, res->consume_elapsed_s,
			rate(res->consumed_records, res->consume_elapsed_s),
			rate(res->consumed_bytes, res->consume_elapsed_s) / 1e6);
	if (cfg->mode == LG_MODE_CONSUME || cfg->mode == LG_MODE_E2E)
		fprintf(f,
			"  verified     every batch's CRC-32C (%" PRIu64 " bad), %" PRIu64
			" record sequences in order per partition (%" PRIu64 " breaks)\n",
			res->crc_errors, res->seq_checked, res->seq_errors);
	if (res->worker_cpu_s > 0)
		fprintf(f, "  cpu          %.3f s in the worker threads: %.3f ms per MB produced or "
			   "consumed\n", res->worker_cpu_s, ms_per_mb(res, res->worker_cpu_s));
	if (res->worker_busy_s > 0)
		fprintf(f, "  busy         %.3f s of it not spent polling idle: %.3f ms per MB\n",
			res->worker_busy_s, ms_per_mb(res, res->worker_busy_s));
	if (cfg->warmup_s > 0)
		fprintf(f, "  latencies    after a warm-up of %.2f s (the counts above include it)\n",
			cfg->warmup_s);
	summary_hist(f, "produce ack", &res->ack);
	summary_hist(f, "end-to-end", &res->e2e);
	summary_hist(f, "send lag", &res->lag);
	summary_hist(f, "fetch rtt", &res->fetch_rtt);
	summary_hist(f, "record lag", &res->record_lag);
	summary_hist(f, "loop", &res->loop);
	if (res->tail_records > 0) {
		fprintf(f, "  tail         %" PRIu64 " records %u us or more late (%.2f%%), p50 / p90 us:"
			   " waiting to be sent %.0f / %.0f, Produce to its answer %.0f / %.0f, answer"
			   " to receipt %.0f / %.0f", res->tail_records, cfg->tail_us,
			100.0 * (double)res->tail_records / (double)(res->e2e.count ? res->e2e.count : 1),
			(double)lg_hist_percentile(&res->tail_send, 50) / 1e3,
			(double)lg_hist_percentile(&res->tail_send, 90) / 1e3,
			(double)lg_hist_percentile(&res->tail_ack, 50) / 1e3,
			(double)lg_hist_percentile(&res->tail_ack, 90) / 1e3,
			(double)lg_hist_percentile(&res->tail_after, 50) / 1e3,
			(double)lg_hist_percentile(&res->tail_after, 90) / 1e3);
		if (res->tail_before_ack || res->tail_unmatched)
			fprintf(f, "; %" PRIu64 " received before their answer, %" PRIu64
				   " not matched", res->tail_before_ack, res->tail_unmatched);
		fputc('\n', f);
	}
	if (res->errors)
		fprintf(f, "  errors       %" PRIu64 " (first: %s)\n", res->errors, res->first_error);
}

static int
plot_latency_series(FILE *f, const struct lg_hist *h)
{
	int n = 0;

	/* q = 1 - 10^(-k/20): 0%, ..., 99.999%, while at least one value lies beyond. */
	for (int k = 0; k <= 100; k++) {
		double q = 1.0 - pow(10.0, -k / 20.0);
		if (h->count == 0 || (k > 0 && 1.0 / (1.0 - q) > (double)h->count))
			break;
		fprintf(f, "%.6f %.3f\n", 1.0 / (1.0 - q), lg_hist_percentile(h, q * 100) / 1e3);
		n++;
	}
	return n;
}

int
lg_report_plot(const char *dir, const struct lg_config *cfg, const struct lg_result *res)
{
	char path[4096];
	FILE *f;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/throughput.dat", dir);
	if ((f = fopen(path, "w")) == NULL)
		return -errno;
	fprintf(f, "# t_s produced_records_per_s produced_MB_per_s consumed_records_per_s "
		   "consumed_MB_per_s\n");
	for (uint32_t i = 0; i < res->nseconds; i++) {
		const struct lg_second *s = &res->seconds[i];
		fprintf(f, "%.3f %" PRIu64 " %.3f %" PRIu64 " %.3f\n", s->t, s->prod_records,
			s->prod_bytes / 1e6, s->cons_records, s->cons_bytes / 1e6);
	}
	if (fclose(f) != 0)
		return -EIO;
	snprintf(path, sizeof(path), "%s/latency.dat", dir);
	if ((f = fopen(path, "w")) == NULL)
		return -errno;
	fprintf(f, "# 1/(1-q) latency_us; block 0 produce ack, block 1 end-to-end\n");
	int na = plot_latency_series(f, &res->ack);
	fprintf(f, "\n\n");
	int ne = plot_latency_series(f, &res->e2e);
	if (na == 0 && ne == 0)
		fprintf(f, "1 0\n"); /* gnuplot refuses an empty file */
	if (fclose(f) != 0)
		return -EIO;

	snprintf(path, sizeof(path), "%s/plot.gp", dir);
	if ((f = fopen(path, "w")) == NULL)
		return -errno;
	char title[512];
	snprintf(title, sizeof(title), "slipstream-load %s: %d partitions, %u B records, acks=%d, %s",
		 lg_mode_name(cfg->mode), res->partitions, cfg->record_size, cfg->acks,
		 kp_compression_name(cfg->codec));
	bool cons = cfg->mode == LG_MODE_CONSUME || cfg->mode == LG_MODE_E2E;
	bool prod = cfg->mode != LG_MODE_CONSUME;
	const char *outs[2][2] = {{"pngcairo size 960,540", "png"}, {"svg size 960,540", "svg"}};
	fprintf(f, "# generated by slipstream-load; run: gnuplot plot.gp (in this directory)\n");
	for (int o = 0; o < 2; o++) {
		fprintf(f, "set terminal %s\nset output 'throughput.%s'\n", outs[o][0], outs[o][1]);
		fprintf(f, "set title \"%s\" noenhanced\nset xlabel 'time (s)'\n"
			   "set ylabel 'MB/s'\nset y2label 'records/s'\nset y2tics\nset ytics nomirror\n"
			   "set grid\nset key top left\nunset logscale\nset xtics auto\n"
			   "set yrange [0:*]\nset y2range [0:*]\n", title);
		fprintf(f, "plot ");
		if (prod)
			fprintf(f, "'throughput.dat' using 1:3 with linespoints title 'produced MB/s', "
				   "'throughput.dat' using 1:2 axes x1y2 with lines dt 2 "
				   "title 'produced records/s'%s", cons ? ", " : "\n");
		if (cons)
			fprintf(f, "'throughput.dat' using 1:5 with linespoints title 'consumed MB/s', "
				   "'throughput.dat' using 1:4 axes x1y2 with lines dt 2 "
				   "title 'consumed records/s'\n");
		fprintf(f, "set output 'latency.%s'\nunset y2tics\nunset y2label\nset ytics mirror\n",
			outs[o][1]);
		fprintf(f, "set logscale x\nset xlabel 'percentile'\nset ylabel 'latency (us)'\n"
			   "set xrange [1:*]\n"
			   /* tic labels are gnuplot format strings: %%%% writes %% there */
			   "set xtics ('0%%%%' 1, '90%%%%' 10, '99%%%%' 100, '99.9%%%%' 1000, "
			   "'99.99%%%%' 10000, '99.999%%%%' 100000)\nset key top left\n");
		fprintf(f, "plot ");
		if (na > 0)
			fprintf(f, "'latency.dat' index 0 using 1:2 with lines lw 2 "
				   "title 'produce request (send to ack)'%s", ne > 0 ? ", " : "\n");
		if (ne > 0)
			fprintf(f, "'latency.dat' index 1 using 1:2 with lines lw 2 "
				   "title 'end to end (due to consumed)'\n");
		if (na == 0 && ne == 0)
			fprintf(f, "'latency.dat' using 1:2 with points title 'no latency samples'\n");
	}
	if (fclose(f) != 0)
		return -EIO;

	/* gnuplot in the directory, so the script's relative names work. */
	pid_t pid;
	char *argv[] = {"gnuplot", "plot.gp", NULL};
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addchdir_np(&fa, dir);
	int rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return rc == ENOENT ? -ENOENT : -rc;
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	if (!WIFEXITED(st))
		return -EIO;
	if (WEXITSTATUS(st) == 127)
		return -ENOENT;
	return WEXITSTATUS(st) == 0 ? 0 : -EIO;
}
