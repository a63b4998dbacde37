/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Request/response header versions and header read/write around the
 * generated dispatch table (generated/kp_api_table.c).
 */
#include "kp_api.h"

int16_t
kp_api_request_header_version(const struct kp_api_desc *d, int16_t version)
{
	if (version < d->request_header_v0_below)
		return 0;
	if (d->first_flexible >= 0 && version >= d->first_flexible)
		return 2;
	return 1;
}

int16_t
kp_api_response_header_version(const struct kp_api_desc *d, int16_t version)
{
	if (d->response_header_always_v0)
		return 0;
	if (d->first_flexible >= 0 && version >= d->first_flexible)
		return 1;
	return 0;
}

int
kp_request_header_read(struct kp_request_header *h, int16_t *hdr_version, struct kp_reader *r,
		       struct kp_arena *a)
{
	const struct kp_api_desc *d;
	int16_t hv;

	if (kp_reader_remaining(r) < 8) {
		kp_reader_fail(r, -EPROTO);
		return -EPROTO;
	}
	/* api key and version open every header version */
	d = kp_api_lookup((int16_t)(r->p[0] << 8 | r->p[1]));
	if (d == NULL) {
		kp_request_header_init(h);
		h->request_api_key = kp_rd_int16(r);
		h->request_api_version = kp_rd_int16(r);
		h->correlation_id = kp_rd_int32(r);
		return -EPROTONOSUPPORT;
	}
	hv = kp_api_request_header_version(d, (int16_t)(r->p[2] << 8 | r->p[3]));
	if (hdr_version != NULL)
		*hdr_version = hv;
	return kp_request_header_decode(h, hv, r, a);
}

int
kp_request_header_write(const struct kp_request_header *h, struct kp_writer *w)
{
	const struct kp_api_desc *d = kp_api_lookup(h->request_api_key);

	if (d == NULL)
		return -EPROTONOSUPPORT;
	return kp_request_header_encode(h, kp_api_request_header_version(d, h->request_api_version),
					w);
}
