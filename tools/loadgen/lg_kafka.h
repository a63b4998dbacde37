/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The load generator's Kafka client side, on Slipstream's own codecs
 * (dataplane/kafka: kp_api_table, the generated kp_msg_* structs,
 * kp_batch): request framing, response decoding, API version negotiation and
 * a small synchronous client for the set-up calls (ApiVersions, Metadata,
 * CreateTopics, ListOffsets) that run before the load starts.
 *
 * Requests go out as: int32 size, request header (v0/v1/v2 as the API and
 * version require), body. Responses are decoded from a complete frame (the
 * bytes after the size prefix); decoded structs borrow the frame and the
 * arena (kp_wire.h).
 *
 * The load generator talks to the bootstrap broker only: it checks that the
 * topic's partitions have a leader but does not open connections to other
 * leaders, so against a multi-broker cluster it measures one broker (known
 * limit, said in the README).
 */
#ifndef SLP_LG_KAFKA_H
#define SLP_LG_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "kp_api.h"
#include "kp_wire.h"
#include "lg_transport.h"

#define LG_API_PRODUCE 0
#define LG_API_FETCH 1
#define LG_API_LIST_OFFSETS 2
#define LG_API_METADATA 3
#define LG_API_API_VERSIONS 18
#define LG_API_CREATE_TOPICS 19

/* Versions chosen for a broker: the highest both sides have (see lg_kafka_negotiate). */
struct lg_versions {
	int16_t produce;      /* 3..9 */
	int16_t fetch;	      /* 4..12 (13+ name topics by id only) */
	int16_t list_offsets; /* 1..7 */
	int16_t metadata;     /* 1..12 */
	int16_t create_topics; /* 2..7 */
};

/** The client id the load generator sends. */
#define LG_CLIENT_ID "slipstream-load"

/**
 * Encode a request frame (size prefix, header, body) into @buf.
 * @param msg   the generated request struct of @api_key (only read).
 * @param len   set to the frame length, size prefix included.
 * @return 0; -ENOBUFS when @cap is too small; the codec's errors.
 */
int
lg_kafka_request_encode(uint8_t *buf, size_t cap, int16_t api_key, int16_t version,
			int32_t correlation_id, const void *msg, size_t *len);

/**
 * Decode a response frame (@frame: the bytes after the size prefix, borrowed)
 * of @api_key/@version into @msg, which then borrows @frame and @arena.
 * @param correlation_id  set to the header's correlation id.
 * @return 0; -EPROTO malformed; -ENOMEM arena full.
 */
int
lg_kafka_response_decode(const uint8_t *frame, size_t len, int16_t api_key, int16_t version,
			 void *msg, struct kp_arena *arena, int32_t *correlation_id);

/** Is @code an error worth retrying (leader moves, timeouts, storage hiccups)? */
int
lg_kafka_retriable(int16_t code);

/**
 * The partition of @npart that Kafka's default partitioner (the Java client's, and
 * librdkafka's `murmur2_random`) gives a record with key @key: the key's murmur2
 * hash with its sign bit cleared, modulo @npart (> 0).
 */
int32_t
lg_kafka_partition(const void *key, size_t len, int32_t npart);

/* A blocking client over one transport connection, for set-up only. */
struct lg_sync {
	const struct lg_transport_ops *ops;
	struct lg_transport *t;
	struct lg_tconn *c;
	int32_t corr;
	uint8_t *buf; /* owned: request and response frames */
	size_t cap;
	int timeout_ms; /* per call */
	struct lg_versions v;
	uint8_t *arena_buf; /* owned, LG_SYNC_ARENA bytes: Metadata of 10,000s of partitions */
	struct kp_arena arena;
	int c_ready, c_readable; /* poll callback scratch */
};

/**
 * Connect to @host:@port, send ApiVersions and choose the versions.
 * @return 0; -ETIMEDOUT; -ECONNREFUSED and other transport errors;
 *   -EPROTONOSUPPORT when the broker lacks a version range we need.
 */
int
lg_sync_open(struct lg_sync *s, const struct lg_transport_ops *ops, const char *host,
	     uint16_t port, int timeout_ms);

/** Close the connection and free the buffers. */
void
lg_sync_close(struct lg_sync *s);

/**
 * One request and its response; @resp borrows s's buffers until the next call.
 * @return 0; -ETIMEDOUT; transport errors; decode errors.
 */
int
lg_sync_call(struct lg_sync *s, int16_t api_key, int16_t version, const void *req, void *resp);

/**
 * Make sure @topic exists with a leader for every partition: Metadata, then
 * CreateTopics (@partitions, replication factor @rf, -1 for the broker
 * default) when it is missing and @create is set, then Metadata again until
 * every partition has a leader (bounded by the sync timeout).
 * @param actual  set to the partition count the topic has.
 * @param err     filled with a message on failure (at least 256 bytes).
 * @return 0; -ENOENT missing and not created; -EIO a broker error (see @err).
 */
int
lg_sync_ensure_topic(struct lg_sync *s, const char *topic, int32_t partitions, int16_t rf,
		     int create, int32_t *actual, char *err, size_t err_cap);

/**
 * ListOffsets for partitions 0..@n-1 of @topic at @timestamp (-1 latest, -2
 * earliest) into @offsets (@n entries).
 * @return 0; -EIO with @err on a partition error; call errors.
 */
int
lg_sync_list_offsets(struct lg_sync *s, const char *topic, int32_t n, int64_t timestamp,
		     int64_t *offsets, char *err, size_t err_cap);

#endif /* SLP_LG_KAFKA_H */
