/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_records: the record formats of the internal topic __consumer_offsets,
 * as Apache Kafka writes them (schemas in
 * ../shared/kafka-protocol/group-coordinator), so tools that read the topic
 * (Burrow, kafka-console-consumer with the offsets formatter) understand
 * Slipstream's.
 *
 *   key   int16 version 0/1: OffsetCommitKey  {group string, topic string, partition int32}
 *         int16 version 2:   GroupMetadataKey {group string}
 *   value int16 version, then OffsetCommitValue v0-4 or GroupMetadataValue v0-4;
 *         a null value (tombstone) deletes the key (compaction removes both).
 *
 * Slipstream writes OffsetCommitKey v1, OffsetCommitValue v3 and
 * GroupMetadataValue v3 (the versions Kafka 2.3-3.x write; not flexible), or
 * the older values an older inter.broker.protocol.version writes
 * (control.inter.broker.protocol.version: tools that do not read v3, such as
 * Burrow 1.2.1, read GroupMetadataValue v2), and reads every version. Decoders borrow the record bytes; member arrays
 * of a group value come from the caller's arena.
 */
#ifndef SLP_CTL_RECORDS_H
#define SLP_CTL_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "kp_wire.h"

enum ctl_rec_kind {
	CTL_REC_OFFSET = 1, /* OffsetCommitKey (versions 0 and 1) */
	CTL_REC_GROUP = 2,  /* GroupMetadataKey (version 2) */
};

/** A decoded key; strings borrow the record. */
struct ctl_rec_key {
	enum ctl_rec_kind kind;
	int16_t version;
	struct kp_str group;
	struct kp_str topic;   /* CTL_REC_OFFSET only */
	int32_t partition;     /* CTL_REC_OFFSET only */
};

/** OffsetCommitValue; metadata borrows the record. */
struct ctl_rec_offset {
	int64_t offset;
	int32_t leader_epoch;     /* -1 unknown */
	struct kp_str metadata;
	int64_t commit_ts;        /* ms since the epoch */
	int64_t expire_ts;        /* v1 only, else -1 */
};

/** One member of GroupMetadataValue; borrows the record. */
struct ctl_rec_member {
	struct kp_str member_id;
	struct kp_str instance_id;   /* len -1: null */
	struct kp_str client_id;
	struct kp_str client_host;
	int32_t rebalance_timeout_ms;
	int32_t session_timeout_ms;
	struct kp_bytes subscription;
	struct kp_bytes assignment;
};

/** GroupMetadataValue; borrows the record (members from the arena). */
struct ctl_rec_group {
	struct kp_str protocol_type;
	int32_t generation;
	struct kp_str protocol;      /* len -1: null */
	struct kp_str leader;        /* len -1: null */
	int64_t state_ts;            /* currentStateTimestamp, -1 unknown */
	struct ctl_rec_member *members;
	int32_t n_members;
};

/**
 * Decode a record key (@buf borrowed).
 * @return 0; -EPROTO malformed; -EPROTONOSUPPORT a version this build does
 *         not know (e.g. KIP-848 records: the caller skips them).
 */
int ctl_rec_key_decode(const uint8_t *buf, size_t len, struct ctl_rec_key *k);

/** Decode an OffsetCommitValue (any version). @return 0, -EPROTO, -EPROTONOSUPPORT. */
int ctl_rec_offset_decode(const uint8_t *buf, size_t len, struct ctl_rec_offset *v);

/**
 * Decode a GroupMetadataValue (any version); @a supplies the member array.
 * @return 0, -EPROTO, -EPROTONOSUPPORT, -ENOMEM (arena full).
 */
int ctl_rec_group_decode(const uint8_t *buf, size_t len, struct ctl_rec_group *v,
	struct kp_arena *a);

/** Encode OffsetCommitKey v1 into @w. */
void ctl_rec_offset_key_encode(struct kp_writer *w, const struct kp_str *group,
	const struct kp_str *topic, int32_t partition);

/** Encode GroupMetadataKey v2 into @w. */
void ctl_rec_group_key_encode(struct kp_writer *w, const struct kp_str *group);

/**
 * Encode OffsetCommitValue @version (1-3; 3 is what Kafka 2.1+ writes, 1
 * carries @v's expire_ts) into @w; another version fails @w with -EINVAL.
 */
void ctl_rec_offset_encode(struct kp_writer *w, const struct ctl_rec_offset *v, int16_t version);

/**
 * Encode GroupMetadataValue @version (0-3; 3 is what Kafka 2.3+ writes: v2
 * lacks the members' group.instance.id, v1 the current state timestamp, v0
 * the rebalance timeouts) into @w; another version fails @w with -EINVAL.
 */
void ctl_rec_group_encode(struct kp_writer *w, const struct ctl_rec_group *v, int16_t version);

/** Bytes ctl_rec_group_encode() writes for @v as @version. */
size_t ctl_rec_group_size(const struct ctl_rec_group *v, int16_t version);

/**
 * The value versions Kafka writes under inter.broker.protocol.version @ibp
 * ("2.2", "2.1-IV0", "3.7"; no IV: that release's last): GroupMetadataValue
 * 0 before 0.10.1, 1 before 2.1, 2 before 2.3, else 3; OffsetCommitValue 1
 * before 2.1, 2 for 2.1-IV0, else 3.
 * @return 0, or -EINVAL (@ibp does not parse; nothing set).
 */
int ctl_rec_versions_for(const char *ibp, int16_t *group_version, int16_t *offset_version);

/**
 * The partition of __consumer_offsets a group's records go to, as Kafka
 * computes it: abs(Java String.hashCode(group)) % @n_partitions (the hash
 * over the UTF-16 code units of the UTF-8 @group).
 */
int32_t ctl_rec_partition_for(const struct kp_str *group, int32_t n_partitions);

#endif /* SLP_CTL_RECORDS_H */
