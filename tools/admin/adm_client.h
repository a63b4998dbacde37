/* SPDX-License-Identifier: Apache-2.0 */
/*
 * adm_client: the Kafka client side of slipstream-admin (tools/admin/), over
 * blocking kernel sockets and the generated codecs of dataplane/kafka.
 *
 * The admin tool is short-lived and does one thing per run, so this is the
 * plainest client that is still correct against any Kafka broker: one TCP
 * connection per broker, one request in flight, ApiVersions first to pick for
 * each API the highest version both sides have (capped by what the caller
 * says it handles), every wait bounded by the connection's timeout.
 *
 * Memory: a decoded response borrows its frame buffer and arena, which the
 * connection owns and keeps until adm_conn_close(), so several responses can
 * be used side by side. Nothing is freed before the close.
 *
 * The prefix adm_ is this folder's (tools/admin), by the rule of STYLE.md.
 */
#ifndef SLP_ADM_CLIENT_H
#define SLP_ADM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kp_api.h"
#include "kp_error.h"

/* Exit codes of slipstream-admin (docs/operations.md). */
enum adm_exit {
	ADM_EXIT_OK = 0,          /* done; every resource succeeded */
	ADM_EXIT_KAFKA = 1,       /* the broker answered with a Kafka error for some resource */
	ADM_EXIT_USAGE = 2,       /* bad command line */
	ADM_EXIT_CONNECT = 3,     /* no connection, timeout, or a response that does not decode */
	ADM_EXIT_UNSUPPORTED = 4, /* the broker does not serve an API the command needs */
};

/* An allocation the connection keeps until it closes (response frames, arenas). */
struct adm_chunk {
	struct adm_chunk *next;
	size_t size;
	_Alignas(64) uint8_t data[];
};

struct adm_conn {
	int fd;                            /* blocking TCP socket, -1 when closed */
	char addr[300];                    /* "host:port", for messages */
	int timeout_ms;                    /* bound on each send and each response */
	int32_t next_corr;                 /* next correlation id */
	int16_t ver_min[KP_API_KEY_COUNT]; /* broker's range per API; max -1: not served */
	int16_t ver_max[KP_API_KEY_COUNT];
	struct adm_chunk *chunks; /* owned; freed by adm_conn_close() */
};

/**
 * Connect to @addr ("host:port"; the first of a comma-separated list that
 * answers) and exchange ApiVersions. On failure a message naming the address
 * and the cause is printed to stderr.
 *
 * @return 0; -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -EINVAL (bad address)
 *   or another negative errno from the socket; -EPROTO when the ApiVersions
 *   answer does not decode.
 */
int adm_conn_open(struct adm_conn *c, const char *addr, int timeout_ms);

/** Close the socket and free every response the connection returned. */
void adm_conn_close(struct adm_conn *c);

/**
 * The version to use for @api_key: the highest the broker and this build
 * both have, at most @our_max.
 *
 * @return the version, or -1 when there is none (the caller reports
 *   ADM_EXIT_UNSUPPORTED).
 */
int16_t adm_conn_version(const struct adm_conn *c, int16_t api_key, int16_t our_max);

/**
 * Send request @req (the generated struct of @api_key's request, read only)
 * as @version and decode the answer into @resp (the generated response
 * struct). @resp borrows memory the connection owns until adm_conn_close().
 * Failures are printed to stderr.
 *
 * @return 0; -ETIMEDOUT; -ECONNRESET when the broker closed the connection
 *   (Kafka brokers close for requests they do not understand); -EPROTO for
 *   an answer that does not decode or does not match; -ENOMEM.
 */
int adm_call(struct adm_conn *c, int16_t api_key, int16_t version, const void *req, void *resp);

/** Allocate @size zeroed bytes kept until adm_conn_close(); NULL when out of memory. */
void *adm_alloc(struct adm_conn *c, size_t size);

/** A kp_str over a NUL-terminated C string (borrowed; NULL gives a null string). */
struct kp_str adm_str(const char *s);

/** Copy @s into a NUL-terminated string kept by @c ("" for null; NULL when out of memory). */
char *adm_strdup(struct adm_conn *c, const struct kp_str *s);

/** Kafka's text form of a UUID: URL-safe base64 without padding (22 chars + NUL). */
void adm_uuid_format(const struct kp_uuid *u, char out[23]);

/**
 * Print "Error: <what>: <NAME> (<code>)[: <message>]" to stderr for a
 * non-zero Kafka error code.
 *
 * @return 0 when @code is 0, else 1 (ADM_EXIT_KAFKA) so callers can OR it in.
 */
int adm_report(const char *what, int16_t code, const struct kp_str *message);

#endif /* SLP_ADM_CLIENT_H */
