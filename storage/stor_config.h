/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-log configuration under Apache Kafka's names.
 *
 * The broker reads server.properties and topic configs and hands each log a
 * struct stor_log_config. stor_log_config_set() accepts both the broker-wide
 * names (log.segment.bytes, log.retention.hours, log.flush.interval.ms, ...)
 * and the topic-level names (segment.bytes, retention.ms, flush.ms, ...), so
 * the parser of either file can feed it every key it meets; keys that are
 * not storage's return -ENOENT and the caller decides what to do with them.
 *
 * Slipstream's own storage key (documented in docs/storage.md):
 *   storage.fsync.acks.all   true: appends of acks=all produce requests are
 *                            submitted with STOR_APPEND_DURABLE, i.e. they
 *                            complete only after fdatasync. Default false,
 *                            like Kafka, which never fsyncs per append.
 */
#ifndef SLP_STOR_CONFIG_H
#define SLP_STOR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stor_cleanup_policy {
	STOR_CLEANUP_DELETE = 1 << 0,
	STOR_CLEANUP_COMPACT = 1 << 1,
};

/*
 * Default storage.preallocate.bytes: 64 MiB. A written partition holds at most
 * that much disk beyond its data (not log.segment.bytes, 1 GiB by default);
 * appends measured as fast as with whole segments (docs/storage.md).
 */
#define STOR_PREALLOCATE_BYTES_DEFAULT (64ull << 20)

/* Most spare segment files a log keeps (storage.segment.recycle). */
#define STOR_RECYCLE_MAX 8

struct stor_log_config {
	uint64_t segment_bytes;  /* log.segment.bytes; roll when the next batch would pass it */
	int64_t roll_ms;         /* log.roll.ms; roll a segment older than this (-1: never) */
	int64_t retention_ms;    /* log.retention.ms; -1: unlimited */
	int64_t retention_bytes; /* log.retention.bytes; -1: unlimited */
	int64_t flush_messages;  /* flush.messages; fdatasync after this many messages */
	int64_t flush_ms;        /* flush.ms; fdatasync when the oldest unsynced append is older */
	uint32_t index_interval_bytes; /* log.index.interval.bytes */
	uint32_t cleanup_policy;       /* enum stor_cleanup_policy bits */
	int64_t delete_retention_ms;   /* delete.retention.ms: tombstone lifetime */
	bool preallocate;              /* Slipstream default true (Kafka: log.preallocate=false) */
	uint64_t preallocate_bytes;    /* storage.preallocate.bytes: with preallocate, reserve
	                                  this much ahead of the data at a time (multiple of
	                                  4 KiB; default STOR_PREALLOCATE_BYTES_DEFAULT); 0: the
	                                  whole segment at its first append */
	bool fsync_acks_all;           /* storage.fsync.acks.all */
	uint32_t segment_recycle;      /* storage.segment.recycle: segment files retention
	                                  deleted that a log on a RAM file system keeps to
	                                  write its next segments into (0..STOR_RECYCLE_MAX;
	                                  default 1) */
	uint32_t max_pending;          /* storage.log.max.pending: in-flight appends per log */
	/*
	 * Kept for the broker's checks of produced batches, not used by storage
	 * (Kafka's LogConfig holds them too, so a topic's override lives in one
	 * place with its other keys).
	 */
	int64_t max_message_bytes;   /* max.message.bytes (broker: message.max.bytes) */
	bool log_append_time;        /* message.timestamp.type=LogAppendTime */
	int64_t ts_before_max_ms;    /* message.timestamp.before.max.ms; INT64_MAX: unset */
	int64_t ts_after_max_ms;     /* message.timestamp.after.max.ms; INT64_MAX: unset */
	int64_t ts_difference_max_ms; /* message.timestamp.difference.max.ms (deprecated) */
	int32_t min_insync_replicas; /* min.insync.replicas */
	int8_t compression;          /* compression.type: STOR_COMPRESSION_PRODUCER (keep the
	                                producer's), else the codec's wire id (0 none, 1 gzip,
	                                2 snappy, 3 lz4, 4 zstd) batches are rewritten with */
};

#define STOR_COMPRESSION_PRODUCER (-1)

/*
 * The window a CreateTime record's timestamp must fall in, in ms before and
 * after the broker's clock: before.max.ms / after.max.ms, or where one is
 * unset (INT64_MAX) the deprecated difference.max.ms, as Kafka 3.6+.
 */
static inline int64_t
stor_log_config_ts_before(const struct stor_log_config *cfg)
{
	return cfg->ts_before_max_ms != INT64_MAX ? cfg->ts_before_max_ms
	                                          : cfg->ts_difference_max_ms;
}

static inline int64_t
stor_log_config_ts_after(const struct stor_log_config *cfg)
{
	return cfg->ts_after_max_ms != INT64_MAX ? cfg->ts_after_max_ms
	                                         : cfg->ts_difference_max_ms;
}

/** Fill @cfg with Kafka's defaults (1 GiB segments, 7 days, no fsync per append). */
void stor_log_config_init(struct stor_log_config *cfg);

/**
 * Set one key from a properties file. Both "log.retention.hours" and
 * "retention.ms" style names are accepted; *.hours and *.minutes are
 * converted to ms (Kafka's precedence ms > minutes > hours holds if the
 * caller sets keys in file order and ms keys last; see docs/storage.md).
 *
 * @param key    borrowed, NUL terminated.
 * @param value  borrowed, NUL terminated.
 * @return 0; -ENOENT for a key that is not storage's; -EINVAL for a bad value.
 */
int stor_log_config_set(struct stor_log_config *cfg, const char *key, const char *value);

/* Kafka's DescribeConfigs ConfigType codes, for the topic keys below. */
enum stor_cfg_type {
	STOR_CFG_BOOLEAN = 1,
	STOR_CFG_STRING = 2,
	STOR_CFG_INT = 3,
	STOR_CFG_LONG = 5,
	STOR_CFG_LIST = 7,
};

/* A topic-level config key (Kafka's topic name) and its type. */
struct stor_topic_key {
	const char *name;
	enum stor_cfg_type type;
};

/*
 * The topic-level keys a topic may set (CreateTopics, AlterConfigs) and
 * DescribeConfigs lists, in that order: the one list the broker and the
 * control process both use.
 */
extern const struct stor_topic_key stor_topic_keys[];
extern const unsigned stor_topic_keys_n;
#define STOR_TOPIC_KEYS_MAX 17 /* stor_topic_keys_n, for arrays sized at compile time */

/** Index of topic key @name (@len bytes) in stor_topic_keys, or -1. */
int stor_topic_key_find(const char *name, size_t len);

/**
 * IncrementalAlterConfigs APPEND (@append) or SUBTRACT of the comma list
 * @value (@vlen bytes) on list key @k (an index of stor_topic_keys), whose
 * topic value is @cur, or NULL when the topic does not set it: then the
 * key's static default, as Kafka (not the broker's setting). APPEND keeps
 * each value once, in order; the result goes to @out.
 * @return 0; -EINVAL when @k is not a list key (Kafka's INVALID_CONFIG) or
 *         the result is empty; -ENOBUFS when it does not fit in @cap.
 */
int stor_topic_list_op(unsigned k, const char *cur, const char *value, size_t vlen, bool append,
                       char *out, size_t cap);

/** The value of topic key @k (an index of stor_topic_keys) in @cfg, as a topic config. */
void stor_log_config_get(const struct stor_log_config *cfg, unsigned k, char *out, size_t cap);

#endif /* SLP_STOR_CONFIG_H */
