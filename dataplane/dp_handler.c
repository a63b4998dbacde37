/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_handler: request header decoding and the ApiVersions answer (see
 * dp_handler.h).
 *
 * Request header v1 (v2 adds tagged fields, used by flexible versions):
 *   int16 api_key, int16 api_version, int32 correlation_id,
 *   nullable string client_id (int16 length, -1 = null)
 * ApiVersions request v3+ body: compact string client_software_name,
 * compact string client_software_version, tagged fields. Its response header
 * is always v0 (correlation id only), even for flexible versions, so a
 * client can read it before it knows what the broker speaks (KIP-511).
 */
#include "dp_handler.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "dp_log.h"
#include "kp_error.h"

#define API_KEY_API_VERSIONS 18

struct rd {
	const uint8_t *p;
	uint32_t left;
	bool bad;
};

static int16_t
rd_i16(struct rd *r)
{
	int16_t v;

	if (r->left < 2) {
		r->bad = true;
		return 0;
	}
	v = (int16_t)((uint16_t)r->p[0] << 8 | r->p[1]);
	r->p += 2;
	r->left -= 2;
	return v;
}

static int32_t
rd_i32(struct rd *r)
{
	int32_t v;

	if (r->left < 4) {
		r->bad = true;
		return 0;
	}
	v = (int32_t)((uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 |
		r->p[3]);
	r->p += 4;
	r->left -= 4;
	return v;
}

static uint32_t
rd_uvarint(struct rd *r)
{
	uint32_t v = 0;

	for (int shift = 0; shift < 35; shift += 7) {
		uint8_t b;

		if (r->left < 1) {
			r->bad = true;
			return 0;
		}
		b = *r->p++;
		r->left--;
		if (shift == 28 && (b & 0xf0) != 0) {
			r->bad = true;
			return 0;
		}
		v |= (uint32_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0)
			return v;
	}
	r->bad = true;
	return 0;
}

static void
rd_skip(struct rd *r, uint32_t n)
{
	if (r->left < n) {
		r->bad = true;
		return;
	}
	r->p += n;
	r->left -= n;
}

static void
rd_tagged_fields(struct rd *r)
{
	uint32_t n = rd_uvarint(r);

	for (uint32_t i = 0; i < n && !r->bad; i++) {
		(void)rd_uvarint(r);
		rd_skip(r, rd_uvarint(r));
	}
}

/* KIP-511's rule for client software name and version. */
static bool
software_field_ok(const uint8_t *s, uint32_t n)
{
	if (n == 0 || !isalnum(s[0]) || !isalnum(s[n - 1]))
		return false;
	for (uint32_t i = 0; i < n; i++) {
		if (!isalnum(s[i]) && s[i] != '-' && s[i] != '.')
			return false;
	}
	return true;
}

static uint8_t *
put_i16(uint8_t *p, int16_t v)
{
	p[0] = (uint8_t)((uint16_t)v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *
put_i32(uint8_t *p, int32_t v)
{
	p[0] = (uint8_t)((uint32_t)v >> 24);
	p[1] = (uint8_t)((uint32_t)v >> 16);
	p[2] = (uint8_t)((uint32_t)v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

int
dp_handler_api_versions_encode(uint8_t *buf, uint32_t cap, int16_t version,
	int32_t correlation_id, int16_t error)
{
	static const int16_t served[][3] = {
		{API_KEY_API_VERSIONS, DP_HANDLER_API_VERSIONS_MIN, DP_HANDLER_API_VERSIONS_MAX},
	};
	const unsigned int n = sizeof(served) / sizeof(served[0]);
	uint8_t *p = buf + 4;
	bool flexible;

	if (error == KP_ERR_UNSUPPORTED_VERSION)
		version = 0; /* readable by every client */
	flexible = version >= 3;
	if (cap < 4 + 4 + 2 + 4 + n * 7 + 4 + 1)
		return -ENOBUFS;
	p = put_i32(p, correlation_id);
	p = put_i16(p, error);
	if (flexible)
		*p++ = (uint8_t)(n + 1); /* compact array length, n < 127 */
	else
		p = put_i32(p, (int32_t)n);
	for (unsigned int i = 0; i < n; i++) {
		p = put_i16(p, served[i][0]);
		p = put_i16(p, served[i][1]);
		p = put_i16(p, served[i][2]);
		if (flexible)
			*p++ = 0; /* no tagged fields */
	}
	if (version >= 1)
		p = put_i32(p, 0); /* throttle_time_ms */
	if (flexible)
		*p++ = 0; /* no tagged fields (no features yet) */
	put_i32(buf, (int32_t)(p - buf - 4));
	return (int)(p - buf);
}

static int
api_versions(struct dp_conn *conn, uint64_t req, int16_t version, int32_t corr, struct rd *r)
{
	int16_t error = KP_ERR_NONE;
	uint8_t *buf;
	int n;

	if (version > DP_HANDLER_API_VERSIONS_MAX || version < 0) {
		error = KP_ERR_UNSUPPORTED_VERSION;
	} else if (version >= 3) {
		uint32_t name_len;
		const uint8_t *name;
		uint32_t ver_len;
		const uint8_t *ver;

		rd_tagged_fields(r); /* request header v2 */
		name_len = rd_uvarint(r);
		name = r->p;
		rd_skip(r, name_len > 0 ? name_len - 1 : 0);
		ver_len = rd_uvarint(r);
		ver = r->p;
		rd_skip(r, ver_len > 0 ? ver_len - 1 : 0);
		rd_tagged_fields(r);
		if (r->bad || name_len == 0 || ver_len == 0 ||
			!software_field_ok(name, name_len - 1) || !software_field_ok(ver, ver_len - 1))
			error = KP_ERR_INVALID_REQUEST;
	}
	buf = dp_conn_resp_alloc(conn);
	if (buf == NULL)
		return -EAGAIN;
	n = dp_handler_api_versions_encode(buf, conn->env->resp_buf_size, version, corr, error);
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
	struct rd r = {frame, len, false};
	int16_t api_key = rd_i16(&r);
	int16_t api_version = rd_i16(&r);
	int32_t corr = rd_i32(&r);
	int16_t client_id_len = rd_i16(&r);
	char peer[80];

	if (client_id_len > 0)
		rd_skip(&r, (uint32_t)client_id_len);
	if (r.bad || client_id_len < -1) {
		dp_conn_peer_name(conn, peer, sizeof(peer));
		dp_log(DP_LOG_WARN, "closing %s: malformed request header (%u bytes)", peer, len);
		return -EPROTO;
	}
	if (api_key == API_KEY_API_VERSIONS)
		return api_versions(conn, req, api_version, corr, &r);
	/* UNFINISHED: every other API comes with the Kafka handlers. */
	dp_conn_peer_name(conn, peer, sizeof(peer));
	dp_log(DP_LOG_INFO, "closing %s: API key %d v%d is not served", peer, api_key, api_version);
	return -EPROTONOSUPPORT;
}
