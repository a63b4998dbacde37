/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_requests: the Kafka request handlers on top of dp_broker (topics and
 * partition logs), plugged into dp_handler_frame() as a struct
 * dp_handler_apis: the table of served APIs advertised by ApiVersions and
 * the dispatch of every other request.
 *
 * Served today: ApiVersions (dp_handler.c), Metadata v0-12 (with
 * auto.create.topics.enable and num.partitions), CreateTopics v0-7 (with
 * validate_only), Produce v0-11, Fetch v0-17, ListOffsets v0-10,
 * DeleteTopics v0-6 (v6 also by topic id), CreatePartitions v0-3 (with
 * validate_only), DescribeConfigs v0-4, AlterConfigs v0-2 and
 * IncrementalAlterConfigs v0-1 (topic configs), DescribeCluster v0-1,
 * DeleteRecords v0-2, DescribeLogDirs v0-4, OffsetForLeaderEpoch v0-4.
 * Decoding uses one arena owned by this module (the broker's single lcore;
 * see dp_broker.h), reset per request: nothing is allocated per request
 * except on topic creation, deletion, partition and config changes and the
 * broker resource of DescribeConfigs (admin requests).
 */
#ifndef SLP_DP_REQUESTS_H
#define SLP_DP_REQUESTS_H

#include "dp_broker.h"
#include "dp_config.h"
#include "dp_handler.h"

/**
 * Bind the handlers to @b and @cfg (both borrowed, must outlive the
 * transport). Call on the lcore that owns @b; requests arriving on net
 * workers of other lcores are brought there by dp_hop (dataplane/dp_hop.h)
 * (one reaching the handlers on another lcore closes its connection).
 *
 * @return the table to pass as dp_handler_frame()'s argument (static).
 */
const struct dp_handler_apis *dp_requests_init(struct dp_broker *b, const struct dp_config *cfg);

/**
 * Fetch long polling (dp_poller_fn, every iteration on the broker's lcore):
 * runs parked fetches again after an append completed or at their
 * max_wait_ms deadline. @arg is dp_requests_arg().
 *
 * @return fetches answered.
 */
int dp_requests_poll(void *arg);

/** The argument for dp_requests_poll() (after dp_requests_init()). */
void *dp_requests_arg(void);

/**
 * Zero-copy Fetch responses still being sent hold storage references (tail
 * cache chunks, segments): before @log is closed, each response holding a
 * read of it copies the bytes it lent into its own buffer where they fit and
 * drops that read's references; the responses are still sent. Call on the
 * log's owner lcore right before stor_log_close() (a no-op on an lcore that
 * encodes no Fetch responses).
 */
struct stor_log;
void dp_fetch_zc_detach_log(const struct stor_log *log);

/** dp_fetch_zc_detach_log() for every log (the shutdown, before dp_broker_stop()). */
void dp_fetch_zc_detach(void);

/** Zero-copy Fetch responses not yet released by their transport (tests, logs). */
uint32_t dp_fetch_zc_outstanding(void);

/**
 * Metrics (dp_poller_fn, periodic on the broker's lcore): publish every open
 * partition's log end offset to dp_metrics, so consumer lag is known for
 * partitions no client has produced to or fetched from since the start.
 * @arg unused. @return 0 (never counted as work).
 */
int dp_requests_metrics_poll(void *arg);

#endif /* SLP_DP_REQUESTS_H */
