/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_requests_int: what the broker's request handlers share inside
 * dataplane/broker (not part of the dataplane's interface): the module
 * state, the response-buffer helpers every handler uses, and the handlers
 * of each file, dispatched by serve() in dp_requests.c.
 *
 * Files: dp_requests.c (dispatch, shared helpers, Metadata), dp_produce.c
 * (Produce), dp_fetch.c (Fetch with long poll and disk reads, ListOffsets),
 * dp_admin.c (topic, partition, config and log-dir admin APIs,
 * DescribeCluster, DeleteRecords, OffsetForLeaderEpoch). Every handler has
 * the signature of dp_handler_serve_fn with the module state first, runs on
 * the broker's lcore, and follows the pattern described in dp_requests.c.
 */
#ifndef SLP_DP_REQUESTS_INT_H
#define SLP_DP_REQUESTS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "dp_broker.h"
#include "dp_config.h"
#include "dp_conn.h"
#include "dp_handler.h"
#include "kp_api.h"
#include "kp_wire.h"

#define API_KEY_PRODUCE 0
#define API_KEY_FETCH 1
#define API_KEY_LIST_OFFSETS 2
#define API_KEY_METADATA 3
#define API_KEY_API_VERSIONS 18
#define API_KEY_CREATE_TOPICS 19
#define API_KEY_DELETE_RECORDS 21
#define API_KEY_INIT_PRODUCER_ID 22
#define API_KEY_OFFSET_FOR_LEADER_EPOCH 23
#define API_KEY_DESCRIBE_LOG_DIRS 35
#define API_KEY_DESCRIBE_CLUSTER 60
#define API_KEY_DELETE_TOPICS 20
#define API_KEY_DESCRIBE_CONFIGS 32
#define API_KEY_ALTER_CONFIGS 33
#define API_KEY_INCREMENTAL_ALTER_CONFIGS 44
#define API_KEY_CREATE_PARTITIONS 37
#define REQ_ARENA_BYTES (8u << 20) /* Metadata of 10,000s of partitions; paged in as used */

struct dp_requests {
	struct dp_broker *b;
	const struct dp_config *cfg;
	struct dp_handler_apis apis;
	char host[256]; /* advertised host and port, resolved at the first Metadata */
	int32_t port;
	unsigned lcore; /* the broker's (storage engine's) lcore */
	struct kp_arena arena;
	_Alignas(64) uint8_t arena_buf[REQ_ARENA_BYTES];
};

/* A response buffer: the worker's pool, or a large Fetch buffer. */
struct resp_buf {
	uint8_t *p;
	uint32_t cap;
	dp_resp_free_fn free_fn;
	void *free_arg;
};

/* ---- shared helpers (dp_requests.c) ---- */

/** Log why @conn is closed over request @h: "closing PEER: WHAT API vN request (REASON)". */
void dp_req_close_log(struct dp_conn *conn, const char *what, const struct kp_request_header *h,
	int rc);

/**
 * The common start of a handler: take a response buffer (*@buf, owned by the
 * caller from then on), then decode the body into @m (h's generated request
 * struct) in q's arena.
 *
 * @return 0; -EAGAIN (no buffer: the transport offers the frame again, no
 *         side effect happened); -EPROTO (malformed: buffer returned,
 *         connection closed with a log line).
 */
int dp_req_begin(struct dp_requests *q, struct dp_conn *conn, const struct kp_request_header *h,
	struct kp_reader *r, void *m, uint8_t **buf);

/** The arena ran out: free @buf, close with a log line, -ENOMEM. */
int dp_req_nomem(struct dp_conn *conn, const struct kp_request_header *h, uint8_t *buf);

/** Encode the response header + @msg into @rb (consumed) and reply to request @req. */
int dp_req_reply_buf(struct dp_conn *conn, uint64_t req, const struct kp_request_header *h,
	const struct resp_buf *rb, const void *msg);

/** dp_req_reply_buf() with a buffer of the connection's pool (@buf, consumed). */
int dp_req_reply(struct dp_conn *conn, uint64_t req, const struct kp_request_header *h,
	uint8_t *buf, const void *msg);

/** A kp_str borrowing the NUL-terminated @s. */
struct kp_str dp_req_str(const char *s);

/** A null nullable string (the generated _init() leaves an empty one). */
struct kp_str dp_req_str_null(void);

/** One int32 in @a holding @v, or NULL when the arena is full. */
int32_t *dp_req_one_int32(struct kp_arena *a, int32_t v);

/** The topic with id @id, or NULL. */
struct dp_topic *dp_req_topic_by_id(struct dp_broker *b, const struct kp_uuid *id);

/**
 * Fill q->host/q->port with this broker's endpoint on the listener @conn came
 * in on (its advertised.listeners entry, else its own host and bound port);
 * the first listener's for a connection without one (the unix socket).
 */
void dp_req_advertised_resolve(struct dp_requests *q, const struct dp_conn *conn);

/* ---- handlers (one file each group) ---- */

#define DP_REQ_HANDLER(name)                                                              \
	int dp_req_##name(struct dp_requests *q, struct dp_conn *conn, uint64_t req,     \
		const struct kp_request_header *h, struct kp_reader *r)

DP_REQ_HANDLER(produce);                 /* dp_produce.c */
DP_REQ_HANDLER(init_producer_id);        /* dp_produce.c */
DP_REQ_HANDLER(fetch);                   /* dp_fetch.c */
DP_REQ_HANDLER(list_offsets);            /* dp_fetch.c */
DP_REQ_HANDLER(create_topics);           /* dp_admin.c, and below */
DP_REQ_HANDLER(delete_topics);
DP_REQ_HANDLER(create_partitions);
DP_REQ_HANDLER(describe_configs);
DP_REQ_HANDLER(alter_configs);           /* AlterConfigs and IncrementalAlterConfigs */
DP_REQ_HANDLER(describe_cluster);
DP_REQ_HANDLER(delete_records);
DP_REQ_HANDLER(describe_log_dirs);
DP_REQ_HANDLER(offset_for_leader_epoch);

/**
 * Produce's context pool (dp_produce.c), at dp_requests_init(); with several
 * writers also the split contexts (allocated once). @return 0, -ENOMEM.
 */
int dp_produce_init(const struct dp_broker *b);

/* Produce requests held back for want of tail-cache chunks (dp_produce.c). */
struct dp_produce_stats {
	uint64_t parked;    /* requests held back (counted once each) */
	uint64_t resumed;   /* offers of a held-back request that went on appending */
	uint64_t timed_out; /* partitions answered REQUEST_TIMED_OUT: timeout_ms spent */
	uint64_t dropped;   /* held back when their connection went */
	uint64_t storage_errors; /* partitions answered KAFKA_STORAGE_ERROR after their
	                          * append failed at completion (atomic) */
	unsigned parked_now; /* held back now */
};

/** Copy the counters into @out (the broker's lcore; tests). */
void dp_produce_stats_get(struct dp_produce_stats *out);

/** Fetch's buffers and parked-fetch table (dp_fetch.c), at dp_requests_init(). @return 0, -ENOMEM. */
int dp_fetch_init(struct dp_broker *b, const struct dp_config *cfg);

/** Count a Fetch response's bytes and records per partition (metrics); @m borrowed. */
void dp_req_fetch_metrics(const struct kp_fetch_response *m);

/** An append completed: parked fetches run again at the next dp_requests_poll(). */
void dp_fetch_appended(void);

/**
 * Let every asynchronous Fetch disk read finish (their responses leave)
 * before a log is closed. Bounded by the reads in flight.
 */
void dp_fetch_drain(struct dp_requests *q);

#endif /* SLP_DP_REQUESTS_INT_H */
