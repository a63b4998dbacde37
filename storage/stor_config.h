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
};

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

#endif /* SLP_STOR_CONFIG_H */
