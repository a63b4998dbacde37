/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_meta: the cluster metadata log's records and the state machine they
 * are applied to (topics, partitions with leader and replicas, topic
 * configs, the broker registry).
 *
 * The control process appends records to a Raft log (ctl_raft.h) and
 * applies the committed ones here; a snapshot of the state is a batch of
 * the records that rebuild it. The dataplane receives the same batches
 * (the whole state when it connects, then each committed record) and
 * applies them to its own copy, so both processes share this file
 * (dataplane/meson.build compiles it too). No DPDK, no libraft here.
 *
 * Record (one Raft log entry), big-endian, strings as uint16 length + bytes:
 *
 *   offset size  field
 *   0      1     format version, CTL_META_VERSION (1); others: -EPROTONOSUPPORT
 *   1      1     type (enum ctl_meta_type)
 *   2      ...   body by type:
 *     TOPIC        id[16] name:str n_partitions:int32
 *                  n_partitions x { leader:int32 n_replicas:uint8 replicas:int32[n] }
 *                  n_configs:uint16 n_configs x { key:str value:str }
 *     PARTITIONS   id[16] first:int32 (the topic's count before) n:int32
 *                  n x { leader:int32 n_replicas:uint8 replicas:int32[n] }
 *     CONFIGS      id[16] replace:uint8 (1: the ops are the whole new set)
 *                  n_ops:uint16 n_ops x { op:uint8 (0 set, 1 delete) key:str value:str }
 *     TOPIC_DELETE id[16] name:str
 *     BROKER       node_id:int32 rack:str (0xffff: null)
 *                  n_listeners:uint8 n x { name:str host:str port:int32 }
 *     IMPORTED     (empty) the legacy topic table (__slipstream_topics) was imported
 *     DELETED      n:uint32 (at most CTL_META_MAX_DELETED) n x id[16]: the ids of the
 *                  topics deleted last, oldest first (snapshots: the state's memory
 *                  of deletions, replaced by the record's)
 *
 * Trailing bytes after a body are ignored (a later minor addition); a
 * record whose body is short or whose counts lie is -EPROTO.
 *
 * Batch (a snapshot, or what the dataplane receives):
 *
 *   0  4  magic "SLMB"
 *   4  1  version CTL_META_VERSION
 *   5  1  kind (enum ctl_meta_batch_kind)
 *   6  4  n_records:uint32
 *   10 .. n_records x { len:uint32 record[len] }
 *
 * The state keeps topic configs the way the dataplane does (dp_topic.configs):
 * "key=value" lines joined by '\n', sorted by key, at most
 * CTL_META_CONFIGS_MAX bytes. Keys and values are not interpreted here
 * (the proposer validates them before appending).
 */
#ifndef SLP_CTL_META_H
#define SLP_CTL_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_META_VERSION 1
#define CTL_META_NAME_MAX 249        /* Kafka's topic-name limit */
#define CTL_META_MAX_TOPICS 1024     /* as the dataplane's table */
/*
 * Partitions per topic: the dataplane's limit (DP_BROKER_MAX_PARTITIONS,
 * checked in dp_meta.c). A topic's partitions travel in its one TOPIC record,
 * so creating a topic is one atomic log entry (KRaft writes a TopicRecord and
 * one PartitionRecord per partition in one batch for the same reason). The
 * record is bounded: at most 16384 x (5 + 4 x CTL_META_MAX_REPLICAS) bytes of
 * partitions plus names and configs, CTL_META_REC_MAX, below libraft's 8 MiB
 * segments and the channel's 64 MiB frames.
 */
#define CTL_META_MAX_PARTITIONS 16384
#define CTL_META_PARTITIONS_TEXT "16384" /* for error messages */
#define CTL_META_MAX_REPLICAS 16
#define CTL_META_CONFIGS_MAX 1024    /* bytes of "k=v\nk=v" */
#define CTL_META_MAX_BROKERS 64
#define CTL_META_MAX_LISTENERS 8
/*
 * Ids of deleted topics the state remembers (the newest): a dataplane that
 * was away when a topic was deleted tells a topic deleted through the log
 * (its id is here: delete it) from one the log never had (created in local
 * mode: import it, dp_meta.c).
 */
#define CTL_META_MAX_DELETED 4096
/*
 * The private API key of the dataplane's import request (inside an Envelope,
 * like the forwarded admin APIs): a TOPIC record of a topic its table has and
 * the log does not (created in control.metadata=local mode), for the control
 * process to append as it is. Never a Kafka key, and the dataplane forwards
 * no client request with it. Inner frame: key:int16 version:int16 (0)
 * correlation id:int32, then the record; answered with an EnvelopeResponse
 * without data whose error code says the outcome (0, TOPIC_ALREADY_EXISTS ...).
 */
#define CTL_META_IMPORT_API 32100
#define CTL_META_STR_MAX 255         /* listener names, hosts, racks, config keys/values */
/** The largest record (a TOPIC record with every bound reached), bytes. */
#define CTL_META_REC_MAX (64 + CTL_META_NAME_MAX + \
	CTL_META_MAX_PARTITIONS * (5 + 4 * CTL_META_MAX_REPLICAS) + 2 + \
	CTL_META_CONFIGS_MAX * 3)

enum ctl_meta_type {
	CTL_META_TOPIC = 1,
	CTL_META_PARTITIONS = 2,
	CTL_META_CONFIGS = 3,
	CTL_META_TOPIC_DELETE = 4,
	CTL_META_BROKER = 5,
	CTL_META_IMPORTED = 6,
	CTL_META_DELETED = 7,
};

enum ctl_meta_batch_kind {
	CTL_META_BATCH_FULL = 0,  /* the whole state: replaces the receiver's */
	CTL_META_BATCH_DELTA = 1, /* records to apply in order */
};

enum ctl_meta_op {
	CTL_META_OP_SET = 0,
	CTL_META_OP_DELETE = 1,
};

/** A string borrowed from a record (not NUL terminated). */
struct ctl_meta_str {
	const char *ptr;
	int32_t len; /* -1: null */
};

struct ctl_meta_part {
	int32_t leader;                          /* node id; -1 none */
	uint8_t n_replicas;
	int32_t replicas[CTL_META_MAX_REPLICAS]; /* node ids */
};

struct ctl_meta_cfg_op {
	uint8_t op; /* enum ctl_meta_op */
	struct ctl_meta_str key;
	struct ctl_meta_str value; /* CTL_META_OP_SET only */
};

struct ctl_meta_listener {
	char name[CTL_META_STR_MAX + 1];
	char host[CTL_META_STR_MAX + 1];
	int32_t port;
};

struct ctl_meta_broker {
	int32_t node_id;
	char rack[CTL_META_STR_MAX + 1]; /* "" with has_rack false: null */
	bool has_rack;
	uint8_t n_listeners;
	struct ctl_meta_listener listeners[CTL_META_MAX_LISTENERS];
};

/**
 * A decoded record. Strings and ops borrow the record's bytes; @parts and
 * @ops are malloc'd by ctl_meta_rec_decode() and freed by ctl_meta_rec_release().
 */
struct ctl_meta_rec {
	uint8_t type;                 /* enum ctl_meta_type */
	uint8_t id[16];               /* topic records */
	struct ctl_meta_str name;     /* TOPIC, TOPIC_DELETE */
	int32_t first;                /* PARTITIONS: first new partition */
	int32_t n_parts;              /* TOPIC, PARTITIONS */
	struct ctl_meta_part *parts;
	bool replace;                 /* CONFIGS */
	int32_t n_ops;                /* TOPIC (as SET ops), CONFIGS */
	struct ctl_meta_cfg_op *ops;
	struct ctl_meta_broker broker; /* BROKER */
	uint32_t n_ids;               /* DELETED */
	const uint8_t *ids;           /* DELETED: n_ids x 16 bytes, borrowed */
};

struct ctl_meta_topic {
	uint8_t id[16];
	char name[CTL_META_NAME_MAX + 1];
	int32_t n_parts;
	struct ctl_meta_part *parts;           /* n_parts entries, owned */
	char configs[CTL_META_CONFIGS_MAX];    /* "k=v" lines, sorted; "" none */
};

/** The state machine: what the applied records say. */
struct ctl_meta_state {
	struct ctl_meta_topic *topics[CTL_META_MAX_TOPICS]; /* owned; n_topics used, in creation order */
	uint32_t n_topics;
	struct ctl_meta_broker brokers[CTL_META_MAX_BROKERS];
	uint32_t n_brokers;
	bool imported;       /* a CTL_META_IMPORTED record was applied */
	/* Deleted topic ids, a ring: the newest CTL_META_MAX_DELETED. */
	uint8_t deleted[CTL_META_MAX_DELETED][16];
	uint32_t n_deleted;  /* entries used (at most CTL_META_MAX_DELETED) */
	uint32_t deleted_at; /* next slot to write (the oldest once full) */
	uint64_t applied;    /* records applied since creation or the last restore */
};

/** A growable output buffer (malloc'd @p, owned by whoever holds the struct). */
struct ctl_meta_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
	int err; /* sticky: -ENOMEM or -EOVERFLOW (a count or string too big) */
};

/** Free @b's memory and zero it. */
void ctl_meta_buf_free(struct ctl_meta_buf *b);

/* ---- records -------------------------------------------------------------------------- */

/**
 * Decode one record from @buf (borrowed; @r's strings point into it).
 * @return 0; -EPROTO malformed; -EPROTONOSUPPORT another format version or an
 *         unknown type; -ENOMEM. On error nothing needs releasing.
 */
int ctl_meta_rec_decode(const uint8_t *buf, size_t len, struct ctl_meta_rec *r);

/** Free what ctl_meta_rec_decode() allocated in @r. */
void ctl_meta_rec_release(struct ctl_meta_rec *r);

/**
 * Append a TOPIC record to @b: @t's id, name, partitions and configs (as a
 * topic created with that state; snapshots use it too). @t borrowed.
 */
void ctl_meta_enc_topic(struct ctl_meta_buf *b, const struct ctl_meta_topic *t);

/** Append a PARTITIONS record: @n partitions @parts (borrowed) from index @first. */
void ctl_meta_enc_partitions(struct ctl_meta_buf *b, const uint8_t id[16], int32_t first,
	int32_t n, const struct ctl_meta_part *parts);

/** Append a CONFIGS record (@ops borrowed; @replace: they are the whole new set). */
void ctl_meta_enc_configs(struct ctl_meta_buf *b, const uint8_t id[16], bool replace,
	const struct ctl_meta_cfg_op *ops, int32_t n_ops);

/** Append a TOPIC_DELETE record. */
void ctl_meta_enc_topic_delete(struct ctl_meta_buf *b, const uint8_t id[16], const char *name);

/** Append a BROKER record (@br borrowed). */
void ctl_meta_enc_broker(struct ctl_meta_buf *b, const struct ctl_meta_broker *br);

/** Append an IMPORTED record. */
void ctl_meta_enc_imported(struct ctl_meta_buf *b);

/** Append a DELETED record of @s's remembered deleted ids (oldest first). */
void ctl_meta_enc_deleted(struct ctl_meta_buf *b, const struct ctl_meta_state *s);

/* ---- batches ---------------------------------------------------------------------------- */

/** Start a batch of @kind in @b (empty, or appended to). Records follow with ..._batch_add. */
void ctl_meta_batch_begin(struct ctl_meta_buf *b, enum ctl_meta_batch_kind kind);

/** Add @rec (@len bytes, borrowed) to the batch begun at offset @start of @b. */
void ctl_meta_batch_add(struct ctl_meta_buf *b, size_t start, const uint8_t *rec, size_t len);

/**
 * Check a batch's header and framing. @return the record count, or -EPROTO
 * (bad magic, kind, framing), -EPROTONOSUPPORT (another version).
 */
int64_t ctl_meta_batch_check(const uint8_t *buf, size_t len, enum ctl_meta_batch_kind *kind);

/**
 * Walk a checked batch: the record at *@off (start with *@off = 0), advancing
 * *@off. @return 1 with @rec/@len set (borrowed from @buf), 0 at the end.
 */
int ctl_meta_batch_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **rec,
	size_t *rec_len);

/* ---- the state machine --------------------------------------------------------------------- */

/** A new empty state (malloc'd), or NULL. */
struct ctl_meta_state *ctl_meta_state_create(void);

/** Free @s and everything in it. */
void ctl_meta_state_destroy(struct ctl_meta_state *s);

/** Drop every topic and broker: @s as created. */
void ctl_meta_state_clear(struct ctl_meta_state *s);

/**
 * Apply one record (@buf borrowed). A record that does not fit the state
 * changes nothing and says why (so that two proposals validated against the
 * same state cannot both take effect):
 * @return 0; -EPROTO / -EPROTONOSUPPORT (ctl_meta_rec_decode); -EEXIST (TOPIC:
 *         the id or name exists); -ENOENT (no topic with that id); -ESTALE
 *         (PARTITIONS: @first is not the topic's count); -EDOM (a partition or
 *         replica count out of range); -EBADR (configs over CTL_META_CONFIGS_MAX,
 *         or a key/value with '=', '\n' or an empty key); -ENOSPC (table
 *         full); -ENOMEM.
 */
int ctl_meta_apply(struct ctl_meta_state *s, const uint8_t *buf, size_t len);

/**
 * The whole state as a FULL batch (BROKER records, TOPIC records in table
 * order, IMPORTED if set, DELETED if any), appended to @b. @return 0 or -ENOMEM.
 */
int ctl_meta_snapshot(const struct ctl_meta_state *s, struct ctl_meta_buf *b);

/**
 * Replace @s by the state a FULL batch describes (@buf borrowed). On error
 * @s is left unchanged. @return 0, -EPROTO/-EPROTONOSUPPORT, or what
 * ctl_meta_apply() returned for a record that does not apply.
 */
int ctl_meta_restore(struct ctl_meta_state *s, const uint8_t *buf, size_t len);

/** The topic named @name (@len bytes), or NULL. */
struct ctl_meta_topic *ctl_meta_topic_find(const struct ctl_meta_state *s, const char *name,
	size_t len);

/** The topic with id @id, or NULL. */
struct ctl_meta_topic *ctl_meta_topic_by_id(const struct ctl_meta_state *s, const uint8_t id[16]);

/** Was a topic with id @id deleted (one of the newest CTL_META_MAX_DELETED deletions)? */
bool ctl_meta_topic_deleted(const struct ctl_meta_state *s, const uint8_t id[16]);

/** The broker @node_id, or NULL. */
const struct ctl_meta_broker *ctl_meta_broker_find(const struct ctl_meta_state *s,
	int32_t node_id);

/**
 * The value of config @key in @configs ("k=v" lines), copied NUL-terminated
 * into @out. @return true if present.
 */
bool ctl_meta_config_get(const char *configs, const char *key, char *out, size_t cap);

#endif /* SLP_CTL_META_H */
