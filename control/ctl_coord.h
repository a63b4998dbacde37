/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_coord: the group coordinator of the classic consumer-group protocol
 * and the committed-offsets store behind it.
 *
 * It takes whole Kafka request frames (FindCoordinator excepted, which the
 * dataplane answers) for JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
 * OffsetCommit, OffsetFetch, OffsetDelete, DescribeGroups, ListGroups and
 * DeleteGroups, every version the schemas define, and answers each through
 * the respond callback, now or later: a JoinGroup waits for the rebalance,
 * a SyncGroup for the leader's assignment, an OffsetCommit for its records
 * to be appended (acks=all) to __consumer_offsets through the append
 * callback. State is rebuilt at start by feeding the topic's batches to
 * ctl_coord_load_batch().
 *
 * Time is a parameter (ms, any monotonic-enough clock; the process passes
 * CLOCK_REALTIME ms because commit timestamps are stored), so the unit
 * tests drive it with a fake clock. Single-threaded: one owner calls
 * everything. Group states, errors and timeouts follow Apache Kafka's
 * GroupCoordinator: KIP-394 member ids (MEMBER_ID_REQUIRED from JoinGroup
 * v4), KIP-345 static membership (a known group.instance.id rejoining a
 * Stable group gets its old assignment without a rebalance; a stale member
 * id for it is FENCED_INSTANCE_ID), group.initial.rebalance.delay.ms,
 * rebalance and session timeouts, KIP-345 batch LeaveGroup (v3+).
 */
#ifndef SLP_CTL_COORD_H
#define SLP_CTL_COORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ctl_coord;

/**
 * Deliver a response: @buf holds the response header and body (no size
 * prefix), malloc'd; ownership passes to the callee. @token is the caller's
 * from ctl_coord_request().
 */
typedef void (*ctl_coord_respond_fn)(void *arg, uint64_t token, uint8_t *buf, size_t len);

/**
 * Append one record batch (@batch, malloc'd, ownership passes to the
 * callee) to partition @partition of __consumer_offsets with acks=all.
 *
 * @return 0: ctl_coord_append_done(@cookie) follows exactly once, later
 *         (never from inside this call); a negative errno: the append did not
 *         start and nothing follows.
 */
typedef int (*ctl_coord_append_fn)(void *arg, int32_t partition, uint8_t *batch, size_t len,
	void *cookie);

struct ctl_coord_cfg {
	int32_t n_partitions;                /* offsets.topic.num.partitions */
	int64_t initial_rebalance_delay_ms;  /* group.initial.rebalance.delay.ms */
	int64_t min_session_timeout_ms;      /* group.min.session.timeout.ms */
	int64_t max_session_timeout_ms;      /* group.max.session.timeout.ms */
	int64_t offsets_retention_ms;        /* offsets.retention.minutes * 60000 */
	int64_t retention_check_ms;          /* how often expired offsets are looked for */
	int32_t max_metadata_bytes;          /* offset.metadata.max.bytes (Kafka: 4096) */
	/*
	 * Record value versions written (ctl_rec_versions_for() of
	 * control.inter.broker.protocol.version): GroupMetadataValue 0-3 and
	 * OffsetCommitValue 1-3. offset_value_version 0: both 3 (Kafka 2.3+).
	 */
	int16_t group_value_version;
	int16_t offset_value_version;
};

enum ctl_group_state {
	CTL_GROUP_EMPTY = 0,
	CTL_GROUP_PREPARING = 1,  /* PreparingRebalance */
	CTL_GROUP_COMPLETING = 2, /* CompletingRebalance */
	CTL_GROUP_STABLE = 3,
	CTL_GROUP_DEAD = 4,
};

/** Kafka's name of a state ("Empty", "PreparingRebalance", ...). */
const char *ctl_group_state_name(enum ctl_group_state s);

/** @return a coordinator (free with ctl_coord_destroy()), or NULL (no memory). */
struct ctl_coord *ctl_coord_create(const struct ctl_coord_cfg *cfg, ctl_coord_respond_fn respond,
	ctl_coord_append_fn append, void *arg);

/** The real partition count of __consumer_offsets (it may differ from the configured one). */
void ctl_coord_set_partitions(struct ctl_coord *c, int32_t n_partitions);

/** Free everything; parked requests are dropped without answers. */
void ctl_coord_destroy(struct ctl_coord *c);

/**
 * Handle one request. @frame: request header and body, no size prefix,
 * borrowed for the call only. @client_host: the client's address as Kafka
 * shows it ("/127.0.0.1"), borrowed.
 *
 * @return 0 (answered now or later through respond); -EPROTO malformed,
 *         -EPROTONOSUPPORT an API or version not handled here, -ENOMEM: no
 *         answer will come (the caller answers or closes).
 */
int ctl_coord_request(struct ctl_coord *c, uint64_t token, const uint8_t *frame, size_t len,
	const char *client_host, int64_t now_ms);

/** An append started by the append callback finished: @err 0 or a negative errno. */
void ctl_coord_append_done(struct ctl_coord *c, void *cookie, int err, int64_t now_ms);

/** Timers: rebalance and session timeouts, initial delay, offset expiry. Call often (<= 100 ms). */
void ctl_coord_tick(struct ctl_coord *c, int64_t now_ms);

/**
 * Replay one batch read from __consumer_offsets (@batch borrowed, @len its
 * bytes). Later batches override earlier ones, tombstones delete.
 *
 * @return records applied (>= 0), or -EBADMSG for a malformed batch.
 */
int ctl_coord_load_batch(struct ctl_coord *c, const uint8_t *batch, size_t len);

/** Loading is over: restored members get fresh session timers from @now_ms. */
void ctl_coord_loaded(struct ctl_coord *c, int64_t now_ms);

/* Introspection (tests, logs, the metrics module). */

/** State of @group; CTL_GROUP_DEAD when it does not exist. */
enum ctl_group_state ctl_coord_group_state(const struct ctl_coord *c, const char *group);
/** Generation of @group, or -1. */
int32_t ctl_coord_group_generation(const struct ctl_coord *c, const char *group);
/** Members of @group (pending KIP-394 ids not counted), or -1. */
int ctl_coord_group_members(const struct ctl_coord *c, const char *group);
/** Committed offset of @group for @topic/@partition, or -1. */
int64_t ctl_coord_committed(const struct ctl_coord *c, const char *group, const char *topic,
	int32_t partition);
/** Number of groups known. */
unsigned int ctl_coord_group_count(const struct ctl_coord *c);
/**
 * Call @fn once per committed offset of every group (strings borrowed for
 * the call), for the metrics module's consumer lag (ctl_metrics_offsets_fn:
 * @coord is the struct ctl_coord). @return 0.
 */
int ctl_coord_offsets_foreach(void *coord,
	void (*fn)(void *arg, const char *group, const char *topic, int32_t partition,
		int64_t committed),
	void *arg);

#endif /* SLP_CTL_COORD_H */
