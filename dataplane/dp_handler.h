/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_handler: the request handler hook between the transports and the
 * Kafka layer.
 *
 * Every complete request frame from any transport arrives at
 * dp_handler_frame() (a dp_conn_handler_fn). It reads the request header
 * with the generated codecs (dataplane/kafka) and dispatches on the API key:
 * ApiVersions is answered here, advertising the table of a struct
 * dp_handler_apis; every other API in that table goes to its serve function
 * (the broker's handlers, dataplane/broker/dp_requests.h). Any other API key
 * closes the connection, which is what Kafka does for an API it does not
 * know.
 */
#ifndef SLP_DP_HANDLER_H
#define SLP_DP_HANDLER_H

#include <stdint.h>

#include "dp_conn.h"
#include "kp_api.h"

/** ApiVersions versions served. */
#define DP_HANDLER_API_VERSIONS_MIN 0
#define DP_HANDLER_API_VERSIONS_MAX 4

/**
 * Called for every API other than ApiVersions when dp_handler_frame() gets a
 * struct dp_handler_apis: @h is decoded, @r is positioned at the request
 * body (borrowing the frame). Same return values as dp_handler_frame().
 */
typedef int (*dp_handler_serve_fn)(void *arg, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r);

/** What the broker serves: advertised in ApiVersions and dispatched to @serve. */
struct dp_handler_apis {
	const struct kp_api_versions_response_api_version *apis; /* includes ApiVersions */
	int32_t n_apis;
	dp_handler_serve_fn serve;
	void *serve_arg;
};

/**
 * Handle one request frame (see dp_conn_handler_fn). @frame is borrowed.
 * @arg: NULL (ApiVersions only) or a struct dp_handler_apis (borrowed, must
 * outlive the transport).
 *
 * @return 0 (answered), -EAGAIN (no response buffer free now), -EPROTO for a
 *         malformed header, -EPROTONOSUPPORT for an API not served: the
 *         connection is closed.
 */
int dp_handler_frame(void *arg, struct dp_conn *conn, uint64_t req, const uint8_t *frame,
	uint32_t len);

/**
 * Encode the ApiVersions response for a request of @version with
 * @correlation_id into @buf (size prefix included).
 *
 * @param error  0, or 35 (UNSUPPORTED_VERSION: then encoded as v0), or 42
 * @return bytes written, or -ENOBUFS when @cap is too small.
 */
int dp_handler_api_versions_encode(uint8_t *buf, uint32_t cap, int16_t version,
	int32_t correlation_id, int16_t error);

/** As dp_handler_api_versions_encode(), advertising @apis (NULL: ApiVersions only). */
int dp_handler_api_versions_encode_apis(uint8_t *buf, uint32_t cap, int16_t version,
	int32_t correlation_id, int16_t error, const struct dp_handler_apis *apis);

#endif /* SLP_DP_HANDLER_H */
