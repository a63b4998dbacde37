/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_meta: the dataplane's copy of the cluster metadata and the one function
 * that brings the broker's topic table (dp_broker) to it.
 *
 * With control.metadata=controller (scripts/run sets it; the default is
 * local), topics, partitions and
 * topic configs are the control process's: its metadata log (control/
 * ctl_raft.h) sends the whole state when the channel connects and then each
 * committed record (control/ctl_meta.h batches, relayed by dp_ctl). dp_meta
 * applies them to a ctl_meta_state, then dp_meta_reconcile() makes the
 * broker's table match it: topics it lacks are created with their ids,
 * topics the log deleted are deleted (their logs closed and removed),
 * topics the log never had (created in local mode) are kept and sent to be
 * imported into the log, partition counts grow, changed configs are set. The broker's
 * `__slipstream_topics` file stays the dataplane's durable copy, so a
 * dataplane restarted while the control process is away serves the topics
 * it last knew.
 *
 * With control.metadata=local (the default) the broker's table is its own
 * (the dataplane without a control process, as before issue 6): pushes are
 * ignored and Metadata auto-creates locally.
 *
 * All of it runs on the broker's lcore.
 */
#ifndef SLP_DP_META_H
#define SLP_DP_META_H

#include <stddef.h>
#include <stdint.h>

struct dp_broker;
struct dp_topic;

/** Hook dp_meta into the control channel (dp_ctl) for @b. Start-up, broker's lcore. */
int dp_meta_init(struct dp_broker *b);

/** Free the copy. */
void dp_meta_fini(void);

/**
 * Apply a metadata batch (@buf borrowed) pushed by the control process, then
 * reconcile the broker's table. @return 0, or -EPROTO (a batch or record that
 * does not decode or apply: the caller drops the channel, the control
 * process sends the whole state again on reconnect).
 */
int dp_meta_push(const uint8_t *buf, size_t len);

/**
 * Make @b's topic table match the copy (see above). @return the number of
 * changes that failed (logged; retried at the next push).
 */
int dp_meta_reconcile(struct dp_broker *b);

/**
 * Metadata's auto-creation of topic @name (@len bytes) with @b's
 * num.partitions. Local mode: created now, *@out set. Controller mode: a
 * CreateTopics is sent to the control process and -EINPROGRESS returned
 * (the topic appears with the push that follows its commit); -ENOTCONN
 * when the control process is away. -EINVAL: not a valid name.
 */
int dp_meta_autocreate(struct dp_broker *b, const char *name, size_t len, struct dp_topic **out);

#endif /* SLP_DP_META_H */
