/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_handler: request header decoding and the ApiVersions answer (see
 * dp_handler.h), on the generated codecs of dataplane/kafka.
 *
 * The header is read with kp_request_header_read(); its version follows the
 * API key and version (a too-new ApiVersions request still parses, KIP-511).
 * The ApiVersions response header is always v0, so a client can read it
 * before it knows what the broker speaks. Decoding borrows the frame and a
 * small arena on the stack: nothing is allocated per request.
 */
#include "dp_handler.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "dp_log.h"
#include "kp_api.h"
#include "kp_error.h"

#define API_KEY_API_VERSIONS 18
#define DP_HANDLER_ARENA_BYTES 2048

/* The APIs this build answers: key and version range (within the codecs' range). */
static const struct kp_api_versions_response_api_version served_apis[] = {
	{.api_key = API_KEY_API_VERSIONS,
		.min_version = DP_HANDLER_API_VERSIONS_MIN,
		.max_version = DP_HANDLER_API_VERSIONS_MAX},
};

/* KIP-511's rule for client software name and version: [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])? */
static bool
software_field_ok(const struct kp_str *s)
{
	const unsigned char *p = (const unsigned char *)s->ptr;

	if (s->len <= 0 || !isalnum(p[0]) || !isalnum(p[s->len - 1]))
		return false;
	for (int32_t i = 0; i < s->len; i++) {
		if (!isalnum(p[i]) && p[i] != '-' && p[i] != '.')
			return false;
	}
	return true;
}

int
dp_handler_api_versions_encode(uint8_t *buf, uint32_t cap, int16_t version,
	int32_t correlation_id, int16_t error)
{
	return dp_handler_api_versions_encode_apis(buf, cap, version, correlation_id, error, NULL);
}

int
dp_handler_api_versions_encode_apis(uint8_t *buf, uint32_t cap, int16_t version,
	int32_t correlation_id, int16_t error, const struct dp_handler_apis *apis)
{
	const struct kp_api_desc *d = kp_api_lookup(API_KEY_API_VERSIONS);
	struct kp_response_header rh;
	struct kp_api_versions_response resp;
	struct kp_writer w;
	uint32_t n;
	int rc;

	if (cap < 4)
		return -ENOBUFS;
	if (error == KP_ERR_UNSUPPORTED_VERSION)
		version = 0; /* readable by every client */
	kp_response_header_init(&rh);
	rh.correlation_id = correlation_id;
	kp_api_versions_response_init(&resp);
	resp.error_code = error;
	if (apis != NULL) {
		resp.api_keys.items =
			(struct kp_api_versions_response_api_version *)(uintptr_t)apis->apis;
		resp.api_keys.count = apis->n_apis;
	} else {
		resp.api_keys.items =
			(struct kp_api_versions_response_api_version *)(uintptr_t)served_apis;
		resp.api_keys.count = (int32_t)(sizeof(served_apis) / sizeof(served_apis[0]));
	}
	resp.throttle_time_ms = 0;
	kp_writer_init(&w, buf + 4, cap - 4);
	rc = kp_response_header_encode(&rh, kp_api_response_header_version(d, version), &w);
	if (rc == 0)
		rc = kp_api_versions_response_encode(&resp, version, &w);
	if (rc < 0)
		return rc;
	n = (uint32_t)kp_writer_len(&w);
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	return (int)(n + 4);
}

static int
api_versions(struct dp_conn *conn, uint64_t req, const struct kp_request_header *h,
	struct kp_reader *r, struct kp_arena *a, const struct dp_handler_apis *apis)
{
	const struct kp_api_desc *d = kp_api_lookup(API_KEY_API_VERSIONS);
	int16_t version = h->request_api_version;
	int16_t error = KP_ERR_NONE;
	uint8_t *buf;
	int n;

	if (!kp_api_version_supported(d, version) || version < DP_HANDLER_API_VERSIONS_MIN ||
		version > DP_HANDLER_API_VERSIONS_MAX) {
		error = KP_ERR_UNSUPPORTED_VERSION;
	} else {
		struct kp_api_versions_request m;
		int rc = kp_api_versions_request_decode(&m, version, r, a);

		if (rc < 0) {
			char peer[80];

			dp_conn_peer_name(conn, peer, sizeof(peer));
			dp_log(DP_LOG_WARN, "closing %s: malformed ApiVersions v%d request", peer,
				version);
			return -EPROTO;
		}
		if (version >= 3 && (!software_field_ok(&m.client_software_name) ||
					    !software_field_ok(&m.client_software_version)))
			error = KP_ERR_INVALID_REQUEST;
	}
	buf = dp_conn_resp_alloc(conn);
	if (buf == NULL)
		return -EAGAIN;
	n = dp_handler_api_versions_encode_apis(buf, conn->env->resp_buf_size, version,
		h->correlation_id, error, apis);
	if (n < 0) {
		dp_conn_resp_free(conn->env->resp_pool, buf);
		return n;
	}
	return dp_conn_reply(conn, req, buf, (uint32_t)n, dp_conn_resp_free, conn->env->resp_pool);
}

int
dp_handler_frame(void *arg, struct dp_conn *conn, uint64_t req, const uint8_t *frame,
	uint32_t len)
{
	_Alignas(64) uint8_t scratch[DP_HANDLER_ARENA_BYTES];
	const struct dp_handler_apis *apis = arg;
	struct kp_request_header h;
	struct kp_reader r;
	struct kp_arena a;
	char peer[80];
	int rc;

	kp_arena_init(&a, scratch, sizeof(scratch));
	kp_reader_init(&r, frame, len);
	rc = kp_request_header_read(&h, NULL, &r, &a);
	if (rc == -EPROTONOSUPPORT) {
		dp_conn_peer_name(conn, peer, sizeof(peer));
		dp_log(DP_LOG_INFO, "closing %s: unknown API key %d", peer, h.request_api_key);
		return rc;
	}
	if (rc < 0) {
		dp_conn_peer_name(conn, peer, sizeof(peer));
		dp_log(DP_LOG_WARN, "closing %s: malformed request header (%u bytes)", peer, len);
		return -EPROTO;
	}
	if (h.request_api_key == API_KEY_API_VERSIONS)
		return api_versions(conn, req, &h, &r, &a, apis);
	if (apis != NULL && apis->serve != NULL) {
		for (int32_t i = 0; i < apis->n_apis; i++) {
			if (apis->apis[i].api_key == h.request_api_key)
				return apis->serve(apis->serve_arg, conn, req, &h, &r);
		}
	}
	/* Not in the served table (or no table): close, as Kafka does. */
	dp_conn_peer_name(conn, peer, sizeof(peer));
	dp_log(DP_LOG_INFO, "closing %s: %s (API key %d) v%d is not served yet", peer,
		kp_api_lookup(h.request_api_key)->name, h.request_api_key, h.request_api_version);
	return -EPROTONOSUPPORT;
}
