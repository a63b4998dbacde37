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
 * stable across restarts. dp_broker_start() loads both, creates the
 * storage engine of every writer placed on the calling thread's lcore and
 * opens their partitions' logs (`<dir>/<topic>-<partition>`, Kafka's
 * layout); that thread becomes their owner: it must be the one that runs
 * dp_broker_poll() (the reactor of that lcore).
 *
 * Several storage writers (dataplane.storage.writers = M): writer w runs on
 * dataplane.storage.lcores[w] with an engine of its own (own tail-cache
 * pool, own io_uring) and owns the partitions whose dp_broker_owner() (a
 * hash of topic id and partition index, so a restart with the same M finds
 * the same owner) is w: their logs are opened, appended to, read, trimmed
 * and closed on that lcore only, together with their idempotent producer
 * state. Writer 0 is the metadata owner: the topic table, the request
 * handlers and every table change run there; a change that touches
 * partitions (open, close, reopen) runs on each owner through
 * dp_broker_exec() (a reactor message; the caller waits for it, admin only).
 * The hot path (Produce, Fetch) reaches owners by asynchronous messages (see
 * dp_produce.c, dp_fetch.c); what writer 0 reads of a remote partition
 * without a message (log end, written and start offsets) its owner
 * publishes with atomic stores (dp_part_publish()).
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
#define DP_BROKER_MAX_PARTITIONS 16384 /* per topic (entries allocated at creation) */
#define DP_BROKER_CONFIGS_MAX 1024     /* bytes of "k=v,k=v" topic configs */
#define DP_BROKER_TOPICS_FILE "__slipstream_topics"

struct dp_partition {
	struct stor_log *log; /* NULL until opened; set and used on the owner's lcore */
	struct dp_producers *producers; /* idempotent producer state (dp_producer.h), with log */
	unsigned writer;      /* storage writer owning the log: dp_broker_owner() */
	/* Published by the owner (dp_part_publish), read anywhere (dp_part_*()). */
	int64_t pub_end;      /* log end offset */
	int64_t pub_written;  /* written offset (the high watermark) */
	int64_t pub_start;    /* log start offset */
	int pub_failed;       /* the log failed (stor_log_failed) */
};

#define DP_BROKER_MAX_WRITERS 64

/* One storage writer: its lcore, its engine and the partitions it owns. */
struct dp_writer {
	unsigned lcore;             /* dataplane.storage.lcores[w] */
	struct stor_engine *engine; /* created and used on @lcore only */
	struct dp_partition **owned; /* its open partitions (retention); owner's lcore only */
	unsigned n_owned;
	unsigned cap_owned;
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
	struct stor_engine *engine;      /* writers[0].engine (single-writer code and tests) */
	unsigned n_writers;              /* 1 unless dp_broker_writers_set() */
	struct dp_writer writers[DP_BROKER_MAX_WRITERS];
	struct dp_topic *topics[DP_BROKER_MAX_TOPICS];
	unsigned n_topics;
	struct dp_pid_alloc pids;        /* InitProducerId (dp_producer.h) */
	uint32_t producers_max;          /* dataplane.producers.max, per partition */
	int64_t producer_expiration_ms;  /* producer.id.expiration.ms */
	uint64_t retention_check_ms;     /* log.retention.check.interval.ms */
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

/**
 * Use @n storage writers on @lcores (before dp_broker_start()). Without this
 * call there is one writer on the lcore that calls dp_broker_start().
 *
 * @return 0, -EINVAL (@n is 0 or above DP_BROKER_MAX_WRITERS).
 */
int dp_broker_writers_set(struct dp_broker *b, unsigned n, const unsigned *lcores);

/** The writer owning partition @partition of the topic with id @id among @n writers. */
unsigned dp_broker_owner(const uint8_t id[16], int32_t partition, unsigned n);

/**
 * Start every writer placed on the calling lcore that dp_broker_start() did
 * not start (it starts those on its own lcore): create its engine and open
 * its partitions. main.c runs it on each other writer lcore after
 * dp_broker_start(), before the reactors run.
 *
 * @return 0, or -errno (logged).
 */
int dp_broker_writers_start_here(struct dp_broker *b);

/**
 * Close the logs and destroy the engines of every writer placed on the
 * calling lcore (start-up error paths, before or after the reactors ran).
 * @return 0, or the first error met.
 */
int dp_broker_writers_stop_here(struct dp_broker *b);

/** True when writer @w's logs may be used from the calling thread. */
bool dp_broker_writer_local(const struct dp_broker *b, unsigned w);

/**
 * Run @fn(@arg) on writer @w's lcore and return its result: a direct call
 * when the writer is local, else a reactor message the caller waits for
 * (spinning; for admin changes and shutdown on writer 0's lcore only, never
 * on the produce or fetch path; a writer never waits for another, so this
 * cannot deadlock). The reactors must be running for a remote writer.
 */
int dp_broker_exec(struct dp_broker *b, unsigned w, int (*fn)(void *), void *arg);

/**
 * Send @fn(@arg) to run on @lcore's reactor; a full ring parks it in the
 * calling lcore's outbox, sent again by dp_broker_poll() (writers) so
 * nothing is lost. For completions that must arrive (sub-request done).
 * @return 0, or -ENOBUFS (outbox full too: not expected, logged).
 */
int dp_broker_post(unsigned lcore, void (*fn)(void *), void *arg);

/** Publish @pp's offsets (owner's lcore, after anything that moves them). */
void dp_part_publish(struct dp_partition *pp);

/**
 * Log end, written (high watermark) and start offsets of @pp: from the log
 * when its writer is local, else as its owner last published them.
 */
int64_t dp_part_end(const struct dp_broker *b, const struct dp_partition *pp);
int64_t dp_part_written(const struct dp_broker *b, const struct dp_partition *pp);
int64_t dp_part_start(const struct dp_broker *b, const struct dp_partition *pp);

/*
 * Offline: not open (dp_broker_topic_configs_set) or its log failed (an I/O
 * error: it takes no more appends). Kafka answers KAFKA_STORAGE_ERROR for a
 * partition whose log dir went offline; Produce and Fetch do too.
 */
bool dp_part_offline(const struct dp_broker *b, const struct dp_partition *pp);

/**
 * One storage tick (dp_poller_fn): stor_engine_poll() of every writer on the
 * calling lcore, and that lcore's outbox (dp_broker_post); every 100 ms, the
 * engines' counters (tail-cache chunks, open logs and files) into dp_metrics.
 * @arg is the broker.
 */
int dp_broker_poll(void *arg);

/**
 * The storage writers' idle wait (a DP_POLLER_IDLE poller; main.c registers it
 * on every writer lcore): when the reactor found nothing to do and a writer
 * on the calling lcore has writes in flight, sleep on its io_uring until one
 * completes, DP_BROKER_IDLE_WAIT_US at most, so the kernel io-wq thread
 * that issues it gets this CPU. A spinning reactor (dp_reactor_spins()) does
 * so too unless the writer's io-wq workers run elsewhere
 * (storage.io.workers.cpus): otherwise they wait for the scheduler to take
 * the CPU from it. @arg is the broker.
 *
 * @return 1 when a completion is ready (dp_broker_poll() runs it next), else 0.
 */
int dp_broker_idle_wait(void *arg);

/**
 * Longest idle wait for a write (us): network input waits at most this
 * long. Enough for the io-wq worker to hand the writes just submitted to
 * the device (about 6 us each; it keeps the CPU until done), and the
 * window of a connection sending bulk Produce is read again soon: 50 us
 * cost the disk row over memif about 5% (session 22).
 */
#define DP_BROKER_IDLE_WAIT_US 10

/** Retention steps: the poller's period while a scan is under way (us). */
#define DP_BROKER_RETENTION_STEP_US 1000
/** Retention steps: logs looked at per call at most. */
#define DP_BROKER_RETENTION_SCAN 256

/**
 * Retention (dp_poller_fn; main.c runs it every DP_BROKER_RETENTION_STEP_US
 * at most, on every writer lcore): once every log.retention.check.interval.ms
 * a scan of the partitions of the writers on the calling lcore,
 * stor_log_retention_run() on each with the wall clock, in steps of at most
 * one segment deleted or DP_BROKER_RETENTION_SCAN logs per call, one segment
 * per log per pass, and passes again at once while one deleted something.
 *
 * @return segments deleted by this call (0 or 1).
 */
int dp_broker_retention_poll(void *arg);

/**
 * Clean shutdown on writer 0's lcore: every writer (through
 * dp_broker_exec() for remote ones, reactors running, or already stopped by
 * dp_broker_writers_stop_here()) closes its logs (flush, indexes,
 * clean-shutdown marker) and destroys its engine; then the topic table is
 * freed.
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
 * dp_broker_topic_create() with the topic id given (@id, copied): the
 * control process's metadata log chose it (dp_meta.h). Also -EEXIST when a
 * topic has that id.
 */
int dp_broker_topic_create_id(struct dp_broker *b, const char *name, size_t len,
	int32_t partitions, const char *configs, const uint8_t id[16], struct dp_topic **out);

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
