/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_broker: the broker's state behind the request path: the storage engine,
 * the topic table and every partition's log.
 *
 * One broker per process. The topic table (name, topic id, partition count,
 * topic configs) is persisted under the first directory of log.dirs in
 * `__slipstream_topics` (one text line per topic, rewritten atomically with
 * write + fsync + rename + directory fsync), next to Kafka's
 * `meta.properties` (version, cluster.id, node.id) so the cluster id is
 * stable across restarts. dp_broker_start() loads both, opens every
 * partition's log (`<dir>/<topic>-<partition>`, Kafka's layout) and creates
 * the storage engine on the calling thread, which becomes the owner of the
 * engine and every log: it must be the thread that runs dp_broker_poll()
 * (the reactor of the storage writer's lcore).
 *
 * UNFINISHED (multi-lcore): a single engine on one lcore (the storage
 * writer's) serves every partition, and the request handlers call into it
 * directly; net workers on other lcores hand whole requests to that lcore
 * (dataplane/dp_hop.h). With several writers each will own an engine and a
 * share of the partitions, reached by partition-level messages; the
 * partition -> writer ownership map goes into struct dp_partition (see
 * `writer`) and docs/dataplane.md "Several lcores" has the plan.
 */
#ifndef SLP_DP_BROKER_H
#define SLP_DP_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_producer.h"
#include "stor_config.h"
#include "stor_engine.h"

struct dp_config;
struct stor_log;

#define DP_BROKER_TOPIC_NAME_MAX 249 /* Kafka's limit */
#define DP_BROKER_MAX_TOPICS 1024
#define DP_BROKER_MAX_PARTITIONS 1024 /* per topic */
#define DP_BROKER_CONFIGS_MAX 1024     /* bytes of "k=v,k=v" topic configs */
#define DP_BROKER_TOPICS_FILE "__slipstream_topics"

struct dp_partition {
	struct stor_log *log; /* NULL until opened */
	struct dp_producers *producers; /* idempotent producer state (dp_producer.h), with log */
	unsigned writer;      /* storage writer owning the log (always 0 today) */
};

struct dp_topic {
	char name[DP_BROKER_TOPIC_NAME_MAX + 1];
	uint8_t id[16];     /* topic id (random v4 UUID) */
	int32_t partitions; /* partition count */
	char configs[DP_BROKER_CONFIGS_MAX]; /* "key=value" joined by '\n'; "" = none */
	struct dp_partition *part;           /* @partitions entries, owned */
};

struct dp_broker {
	char dir[4096];          /* first log.dirs entry: topics file and meta.properties */
	char cluster_id[32];     /* base64url of 16 random bytes (22 characters) */
	int32_t node_id;
	int32_t num_partitions;  /* num.partitions */
	bool auto_create;        /* auto.create.topics.enable */
	struct stor_engine_opts engine_opts; /* storage.* engine keys */
	struct stor_log_config log_cfg;       /* broker-wide log.* and storage.* log keys */
	struct stor_engine *engine;
	struct dp_topic *topics[DP_BROKER_MAX_TOPICS];
	unsigned n_topics;
	struct dp_pid_alloc pids;        /* InitProducerId (dp_producer.h) */
	uint32_t producers_max;          /* dataplane.producers.max, per partition */
	int64_t producer_expiration_ms;  /* producer.id.expiration.ms */
};

/**
 * Fill @b with defaults (engine options, log config). Call before
 * dp_config_delegate(cfg, "storage.", dp_broker_storage_key, b).
 */
void dp_broker_init(struct dp_broker *b);

/**
 * dp_config delegate for `storage.*` keys: engine options
 * (stor_engine_opts_set), then per-log storage keys (stor_log_config_set).
 *
 * @return 0, -ENOENT (no such key), -EINVAL.
 */
int dp_broker_storage_key(void *arg, const char *key, const char *value);

/**
 * Take the broker-wide settings from @cfg (log.dirs, node.id,
 * num.partitions, log.* keys), create the engine on the calling thread,
 * read or write meta.properties, load the topic table and open every
 * partition's log (blocking; start-up only).
 *
 * @return 0, or -errno (logged; everything opened is closed again).
 */
int dp_broker_start(struct dp_broker *b, const struct dp_config *cfg);

/** One storage tick (dp_poller_fn): stor_engine_poll(). Owner thread only. */
int dp_broker_poll(void *arg);

/**
 * Retention (dp_poller_fn; main.c runs it every
 * log.retention.check.interval.ms): stor_log_retention_run() on every
 * partition's log with the wall clock. Owner thread only.
 *
 * @return segments deleted.
 */
int dp_broker_retention_poll(void *arg);

/**
 * Clean shutdown on the owner thread: close every log (flush, indexes,
 * clean-shutdown marker), destroy the engine, free the topic table.
 *
 * @return 0, or the first error met (logged).
 */
int dp_broker_stop(struct dp_broker *b);

/** The topic named @name (@len bytes, not NUL terminated), or NULL. */
struct dp_topic *dp_broker_topic_find(struct dp_broker *b, const char *name, size_t len);

/**
 * Kafka's topic-name rule: 1-249 characters of [a-zA-Z0-9._-], not "." or
 * "..".
 */
bool dp_broker_topic_name_valid(const char *name, size_t len);

/**
 * Create a topic, persist the table and open its partitions' logs.
 *
 * @param configs  "key=value" lines ('\n' separated) or NULL; each must be a
 *                 key stor_log_config_set() takes.
 * @param out      if not NULL, receives the topic.
 * @return 0; -EEXIST (TOPIC_ALREADY_EXISTS), -EINVAL (bad name:
 *         INVALID_TOPIC_EXCEPTION), -EDOM (partitions < 1 or too many:
 *         INVALID_PARTITIONS), -EBADR (bad config: INVALID_CONFIG), -ENOSPC
 *         (table full), or an I/O -errno.
 */
int dp_broker_topic_create(struct dp_broker *b, const char *name, size_t len, int32_t partitions,
	const char *configs, struct dp_topic **out);

/**
 * Check what dp_broker_topic_create() would check, creating nothing
 * (CreateTopics validate_only). Same return values.
 */
int dp_broker_topic_check(struct dp_broker *b, const char *name, size_t len, int32_t partitions,
	const char *configs);

/**
 * Delete @t (found in @b's table): close its partitions' logs, rewrite the
 * topic table without it (atomically), then remove its partition
 * directories. @t is freed. The caller must hold no reads on its logs and
 * no pointer to it afterwards.
 *
 * @return 0; an I/O -errno writing the table (the topic is then kept, logs
 *         still open). A directory that cannot be removed is logged only
 *         (the table no longer names it; a re-created topic of the same name
 *         removes it first).
 */
int dp_broker_topic_delete(struct dp_broker *b, struct dp_topic *t);

/**
 * Grow @t to @partitions partitions (CreatePartitions): open the new logs
 * and persist the table. With @validate_only, check only.
 *
 * @return 0; -EDOM (not more than today, or above the maximum:
 *         INVALID_PARTITIONS), or an I/O -errno (nothing changed).
 */
int dp_broker_partitions_add(struct dp_broker *b, struct dp_topic *t, int32_t partitions,
	bool validate_only);

/**
 * The effective log config of @t: the broker-wide one (log.* and storage.*
 * keys) with the topic's configs applied.
 *
 * @return 0, or -EBADR (a stored config storage refuses: not expected).
 */
int dp_broker_topic_log_config(const struct dp_broker *b, const struct dp_topic *t,
	struct stor_log_config *out);

/**
 * Replace @t's topic configs by @configs ("key=value" lines, '\n'
 * separated, "" for none; borrowed). Storage has no call to change an open
 * log's config, so the partition logs are closed and opened again with the
 * new config (the caller must hold no reads on them), then the table is
 * persisted. With @validate_only, only the keys and values are checked.
 *
 * @return 0; -EBADR (a key storage does not take, a bad value, or a value
 *         the log refuses at open: INVALID_CONFIG; the old config is back in
 *         force), or an I/O -errno.
 */
int dp_broker_topic_configs_set(struct dp_broker *b, struct dp_topic *t, const char *configs,
	bool validate_only);

#endif /* SLP_DP_BROKER_H */
