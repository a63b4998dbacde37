/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_metrics: the Prometheus text exposition (format 0.0.4) of the
 * dataplane's shared-memory counters (dataplane/dp_metrics.h) and of the
 * consumer lag per group and partition (committed offsets from the group
 * coordinator, log end offsets from the counters).
 *
 * A scrape takes one consistent snapshot of every lcore block, adds the
 * blocks up (per API, per topic-partition, per lcore) and writes each metric
 * family once, HELP and TYPE first, samples in a stable order. When the
 * segment cannot be read (dataplane not started, restarting, killed
 * mid-update) the scrape still answers, with slipstream_dataplane_up 0 and no
 * dataplane samples, so Prometheus sees the outage rather than a failed
 * scrape. Metric names are listed in docs/operations.md.
 */
#ifndef SLP_CTL_METRICS_H
#define SLP_CTL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl_http.h"
#include "dp_metrics.h"

/** Called once per committed offset by a ctl_metrics_offsets_fn. Strings borrowed. */
typedef void (*ctl_metrics_offset_fn)(void *cb_arg, const char *group, const char *topic,
                                      int32_t partition, int64_t committed);

/**
 * A source of committed offsets: calls @cb for every (group, topic,
 * partition) with a committed offset. @return 0 or a negative errno.
 */
typedef int (*ctl_metrics_offsets_fn)(void *arg, ctl_metrics_offset_fn cb, void *cb_arg);

struct ctl_metrics {
	char shm_path[256];
	struct dp_metrics_reader reader;
	bool reader_open;
	ctl_metrics_offsets_fn offsets; /* may be NULL: no lag metrics */
	void *offsets_arg;
	uint64_t scrapes; /* answered /metrics requests */
};

/** The dataplane's default segment path for @node_id, into @buf. */
void ctl_metrics_default_path(int64_t node_id, char *buf, size_t len);

/**
 * Prepare @m to read the segment at @shm_path (it need not exist yet).
 *
 * @return 0, or -EINVAL for a path that is too long.
 */
int ctl_metrics_init(struct ctl_metrics *m, const char *shm_path);

/** Set the committed-offsets source for lag metrics (@fn may be NULL). */
void ctl_metrics_set_offsets(struct ctl_metrics *m, ctl_metrics_offsets_fn fn, void *arg);

/** Unmap the segment. */
void ctl_metrics_fini(struct ctl_metrics *m);

/**
 * Count an error code in a response this process encoded (@api_key, @code;
 * NONE included): the control process installs it as kp_error_hook, and the
 * counts join the dataplane's in slipstream_requests_errors_total. Single thread.
 */
void ctl_metrics_count_error(int16_t api_key, int16_t code);

/**
 * Write the exposition of @snap (NULL: dataplane down) and the lag from
 * @offsets (NULL: none) into @out. Pure: no I/O, for tests.
 *
 * @return 0, or the buffer's error (-ENOMEM, -E2BIG).
 */
int ctl_metrics_render(const struct dp_metrics_snapshot *snap, ctl_metrics_offsets_fn offsets,
                       void *offsets_arg, uint64_t scrapes, struct ctl_buf *out);

/** ctl_http_handler_fn for /metrics; @arg is a struct ctl_metrics. */
int ctl_metrics_http(void *arg, const struct ctl_http_request *req, struct ctl_buf *body,
                     const char **content_type);

#endif /* SLP_CTL_METRICS_H */
