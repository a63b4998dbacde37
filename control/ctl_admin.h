/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_admin: the topic mutations of the Kafka admin APIs, served by the
 * control process on the cluster metadata log (ctl_meta records, ctl_raft).
 *
 * The dataplane forwards CreateTopics (v0-7), DeleteTopics (v0-6),
 * CreatePartitions (v0-3), AlterConfigs (v0-2) and IncrementalAlterConfigs
 * (v0-1) inside Envelope requests, as it does the group APIs. Each is
 * validated against the current state (names, partition counts, the
 * replication factor against the registered brokers, topic configs the
 * storage takes), turned into records, proposed, and answered once every
 * record of the request is committed and applied, each item with the error
 * its record's apply gave. A record that no longer fits when applied (two
 * creations of one name in flight) answers as Kafka would (TOPIC_ALREADY_EXISTS
 * ...). Proposals refused because this node is not the leader answer
 * NOT_CONTROLLER (retriable: clients refresh metadata and retry).
 *
 * Partition placement: leader = the first replica; replicas are taken
 * round-robin over the registered brokers (today one: this node), so
 * nothing assumes a single broker.
 *
 * Start-up (ctl_admin_start): wait until this node leads the log, apply
 * everything committed (a barrier), import the dataplane's legacy topic
 * table `<first log dir>/__slipstream_topics` once (names, ids, partition
 * counts, configs kept; then an IMPORTED record), register this broker (a
 * BROKER record when missing or changed), then call @ready.
 */
#ifndef SLP_CTL_ADMIN_H
#define SLP_CTL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl_meta.h"
#include "ctl_raft.h"

/** Append a record (copied); @done later. Same contract as ctl_raft_propose(). */
typedef int (*ctl_admin_propose_fn)(void *arg, const uint8_t *rec, size_t len,
	ctl_raft_done_fn done, void *done_arg);
/** An answer for @token: the response header and body (malloc'd, consumed). */
typedef void (*ctl_admin_respond_fn)(void *arg, uint64_t token, uint8_t *buf, size_t len);
/** Start-up is over (metadata ready for the dataplane). */
typedef void (*ctl_admin_ready_fn)(void *arg);

struct ctl_admin_cfg {
	int32_t node_id;           /* node.id */
	int32_t num_partitions;    /* num.partitions: CreateTopics with -1 */
	int16_t default_replication_factor; /* default.replication.factor */
	bool delete_topic_enable;  /* delete.topic.enable: false refuses DeleteTopics */
	const char *legacy_dir;    /* where __slipstream_topics may be (first log dir) */
	struct ctl_meta_broker self; /* this broker's registration */
};

struct ctl_admin;

/**
 * @state borrowed (the FSM's). Proposals go through @propose, answers through
 * @respond, both with @arg. @return the service, or NULL (no memory).
 */
struct ctl_admin *ctl_admin_create(const struct ctl_admin_cfg *cfg, struct ctl_meta_state *state,
	ctl_admin_propose_fn propose, ctl_admin_respond_fn respond, void *arg);

void ctl_admin_destroy(struct ctl_admin *a);

/** Is @api_key one ctl_admin serves? */
bool ctl_admin_serves(int16_t api_key);

/**
 * Begin the start-up sequence; call ctl_admin_poll() until @ready ran
 * (it returns at once while the log has no leader).
 */
void ctl_admin_start(struct ctl_admin *a, bool (*is_leader)(void *arg),
	int (*barrier)(void *arg, ctl_raft_done_fn done, void *done_arg), ctl_admin_ready_fn ready);

/** Drive the start-up sequence (a timer). */
void ctl_admin_poll(struct ctl_admin *a);

/** Has start-up finished? */
bool ctl_admin_ready(const struct ctl_admin *a);

/**
 * Serve one forwarded request (@frame: the client's request header and body,
 * borrowed for the call). The answer comes through @respond, now or after
 * the records commit.
 * @return 0; -EPROTO (does not decode: the caller answers the envelope with
 *         an error); -EPROTONOSUPPORT (not an admin API or version); -ENOMEM.
 */
int ctl_admin_request(struct ctl_admin *a, uint64_t token, const uint8_t *frame, size_t len);

/**
 * Serve the dataplane's import of a topic the log lacks (CTL_META_IMPORT_API,
 * ctl_meta.h): @rec (@len bytes, borrowed for the call) is its TOPIC record.
 * The topic is validated (name, partition count, configs; its id and name
 * not in the log, its id not one the log deleted) and appended with its id,
 * name and configs, the partitions placed as CreateTopics places them (one
 * replica). The answer through @respond is 2 bytes: the Kafka error code
 * (0; TOPIC_ALREADY_EXISTS; UNKNOWN_TOPIC_ID for a deleted id; INVALID_*;
 * NOT_CONTROLLER), after the commit.
 * @return 0; -EPROTO (not a TOPIC record); -ENOMEM.
 */
int ctl_admin_import(struct ctl_admin *a, uint64_t token, const uint8_t *rec, size_t len);

/**
 * Import the legacy topic table file @path (the dataplane's
 * `__slipstream_topics` format: "name hexid partitions k=v k=v" lines) as
 * TOPIC records into @out (a DELTA batch of them, begun at @out->len).
 * @return the number of topics, -ENOENT (no file), or -EPROTO (a line that
 *         does not parse: nothing is imported).
 */
int ctl_admin_legacy_read(const char *path, int32_t node_id, struct ctl_meta_buf *out);

#endif /* SLP_CTL_ADMIN_H */
