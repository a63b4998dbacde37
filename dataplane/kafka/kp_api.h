/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Kafka API dispatch table and request/response headers.
 *
 * kp_api_table[] (generated into generated/kp_api_table.c by
 * scripts/gen-kafka-codecs) has one entry per API key: its name, the
 * versions it has, the first flexible version, the header versions, and for
 * the request and the response a codec (decode/encode/size/init through
 * void pointers to the generated message struct). The framing layer decodes
 * the header with kp_request_header_read(), finds the entry with
 * kp_api_lookup() and decodes the body with entry->request.decode into a
 * struct of entry->request.struct_size bytes; decoded structs borrow the
 * frame and the arena (kp_wire.h).
 */
#ifndef SLP_KP_API_H
#define SLP_KP_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "generated/kp_msgs.h"
#include "kp_wire.h"

/* Codec of one message type; msg points to that message's generated struct. */
typedef int (*kp_msg_decode_fn)(void *msg, int16_t version, struct kp_reader *r,
				struct kp_arena *a);
typedef int (*kp_msg_encode_fn)(const void *msg, int16_t version, struct kp_writer *w);
typedef int64_t (*kp_msg_size_fn)(const void *msg, int16_t version);
typedef void (*kp_msg_init_fn)(void *msg);

struct kp_msg_codec {
	const char *name;	 /* schema name, "ProduceRequest" */
	size_t struct_size;	 /* sizeof the generated struct */
	kp_msg_decode_fn decode; /* see kp_<msg>_decode() */
	kp_msg_encode_fn encode;
	kp_msg_size_fn size;
	kp_msg_init_fn init;
};

struct kp_api_desc {
	const char *name; /* "Produce" */
	int16_t api_key;
	int16_t min_version;
	int16_t max_version;
	int16_t first_flexible;		 /* -1: no flexible version */
	int16_t request_header_v0_below; /* versions below this use request header v0 */
	bool response_header_always_v0;	 /* ApiVersions (KIP-511) */
	struct kp_msg_codec request;
	struct kp_msg_codec response;
};

/* Every API key 0 .. KP_API_KEY_COUNT-1 (generated). */
extern const struct kp_api_desc kp_api_table[KP_API_KEY_COUNT];

/* The "data" messages (ConsumerProtocolSubscription, ...) and the two headers (generated). */
struct kp_msg_other_desc {
	int16_t min_version;
	int16_t max_version;
	struct kp_msg_codec codec;
};
extern const struct kp_msg_other_desc kp_msg_other_table[KP_MSG_OTHER_COUNT];

/**
 * The table entry of an API key.
 *
 * @return the entry, or NULL for a key this build does not know.
 */
static inline const struct kp_api_desc *
kp_api_lookup(int16_t api_key)
{
	if (api_key < 0 || api_key >= KP_API_KEY_COUNT)
		return NULL;
	return &kp_api_table[api_key];
}

/** Is version one the broker's codecs have for this API? */
static inline bool
kp_api_version_supported(const struct kp_api_desc *d, int16_t version)
{
	return version >= d->min_version && version <= d->max_version;
}

/**
 * Request header version (0, 1 or 2) a request of this API and version uses.
 * Versions above max_version count as flexible when the API has flexible
 * versions, so a too-new ApiVersions request still parses (KIP-511).
 */
int16_t
kp_api_request_header_version(const struct kp_api_desc *d, int16_t version);

/** Response header version (0 or 1); ApiVersions always answers with v0. */
int16_t
kp_api_response_header_version(const struct kp_api_desc *d, int16_t version);

/**
 * Read a request header from r (positioned at the frame start, after the size
 * prefix). The header's own version is chosen from its api key and version.
 * client_id borrows r's buffer.
 *
 * @param hdr_version  out: the header version used (may be NULL).
 * @return 0 with r at the body; -EPROTONOSUPPORT for an unknown api key (h's
 *   api key, version and correlation id are still filled, the rest is not
 *   read); -EPROTO for a malformed header; -ENOMEM when the arena is full.
 *   A known key with an unsupported version returns 0: the body decode
 *   reports -EPROTONOSUPPORT.
 */
int
kp_request_header_read(struct kp_request_header *h, int16_t *hdr_version, struct kp_reader *r,
		       struct kp_arena *a);

/**
 * Write the request header h (its api key and version choose the header
 * version) into w.
 *
 * @return 0; -EPROTONOSUPPORT for an unknown api key; -ENOBUFS when w is full.
 */
int
kp_request_header_write(const struct kp_request_header *h, struct kp_writer *w);

/**
 * One partition's manual replica assignment (CreateTopics, CreatePartitions)
 * as Kafka's controller checks it: not empty, no broker twice, every broker
 * registered (@registered(@arg, id)), and as many replicas as the partitions
 * checked before it (*@rf: 0 before the first, then set).
 * @return NULL when valid, else the message for INVALID_REPLICA_ASSIGNMENT.
 */
const char *
kp_assignment_check(const struct kp_array_int32 *ids, bool (*registered)(void *arg, int32_t id),
		    void *arg, int32_t *rf);

/**
 * A CreateTopics topic's manual assignments (@ct->assignments not empty) as
 * Kafka's controller checks them: num_partitions and replication_factor -1
 * (else INVALID_REQUEST), each partition once, 0..n-1 (the count is the
 * topic's partitions), each replica list as kp_assignment_check (else
 * INVALID_REPLICA_ASSIGNMENT). @seen: @ct->assignments.count bytes of scratch.
 * @return NULL when valid, else the message, with *@err set.
 */
const char *
kp_create_topic_assignments_check(const struct kp_create_topics_request_creatable_topic *ct,
				  bool (*registered)(void *arg, int32_t id), void *arg,
				  uint8_t *seen, int16_t *err);

#endif /* SLP_KP_API_H */
