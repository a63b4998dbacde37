/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the load generator prints and writes after a run: the text summary,
 * the JSON report (--json FILE: configuration, totals, per-partition
 * offsets, the per-second series and the full latency histograms, every
 * non-empty bucket) and the plots (--plot DIR: gnuplot scripts and data,
 * rendered to PNG and SVG when gnuplot is installed).
 *
 * JSON layout (units in the names; latency values in nanoseconds):
 *   {"tool":"slipstream-load","mode":...,"config":{...},"versions":{...},
 *    "result":{"records_per_s":...,"mb_per_s":...,"produce_requests_per_s":...,...},
 *    "partitions":[{"partition":0,"start_offset":..,"acked_end_offset":..,
 *                   "consumed_end_offset":..,"consumed_records":..},...],
 *    "timeseries":[{"t_s":..,"produced_records_per_s":..,...},...],
 *    "latency":{"produce_ack":HIST,"e2e":HIST,"send_lag":HIST,"fetch_rtt":HIST,
 *               "record_send_lag":HIST}}
 *   (send_lag, with --rate: per Produce, its oldest record's due time to the request
 *   queued: linger, and how far producing ran behind the schedule; record_send_lag the
 *   same per record, as e2e counts them: the part of e2e spent before the request
 *   left the producer; fetch_rtt, when
 *   consuming: per Fetch, queued to its response: the broker's long-poll wait and
 *   both trips)
 *   HIST = {"unit":"ns","count":..,"min":..,"max":..,"mean":..,
 *           "percentiles":{"50":..,"90":..,"99":..,"99.9":..,"99.99":..,"100":..},
 *           "buckets":[[low,high,count],...]}    (non-empty buckets, ascending)
 */
#ifndef SLP_LG_REPORT_H
#define SLP_LG_REPORT_H

#include <stdio.h>

#include "lg_hist.h"
#include "lg_json.h"
#include "lg_run.h"

/** Write @h as a HIST object named @name (NULL inside an array). */
void
lg_report_hist_json(struct lg_json *j, const char *name, const struct lg_hist *h);

/**
 * Write the whole report of a run to @f (borrowed).
 * @return 0, or lg_json_finish()'s error.
 */
int
lg_report_json(FILE *f, const struct lg_config *cfg, const struct lg_result *res);

/** Print the human summary of a run to @f. */
void
lg_report_summary(FILE *f, const struct lg_config *cfg, const struct lg_result *res);

/**
 * Write throughput.dat, latency.dat and plot.gp into @dir (created if
 * missing) and run gnuplot on plot.gp, which draws throughput.{png,svg}
 * (records/s and MB/s per second) and latency.{png,svg} (latency by
 * percentile, log scale, HdrHistogram's percentile plot).
 * @return 0; -ENOENT when gnuplot is missing (data and script are written);
 *   other negative errnos for file errors or a failing gnuplot.
 */
int
lg_report_plot(const char *dir, const struct lg_config *cfg, const struct lg_result *res);

#endif /* SLP_LG_REPORT_H */
