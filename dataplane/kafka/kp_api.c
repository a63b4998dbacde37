/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Request/response header versions and header read/write around the
 * generated dispatch table (generated/kp_api_table.c).
 */
#include "kp_api.h"
#include "kp_error.h"

#include <string.h>

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

const char *
kp_assignment_check(const struct kp_array_int32 *ids, bool (*registered)(void *arg, int32_t id),
		    void *arg, int32_t *rf)
{
	if (ids->count <= 0)
		return "The manual partition assignment includes an empty replica list.";
	for (int32_t i = 0; i < ids->count; i++) {
		for (int32_t j = 0; j < i; j++)
			if (ids->items[j] == ids->items[i])
				return "The manual partition assignment includes a broker more than once.";
		if (!registered(arg, ids->items[i]))
			return "The manual partition assignment includes a broker that is not registered.";
	}
	if (*rf != 0 && *rf != ids->count)
		return "The manual partition assignment includes a partition whose replica count "
		       "differs from the partitions before it.";
	*rf = ids->count;
	return NULL;
}

const char *
kp_create_topic_assignments_check(const struct kp_create_topics_request_creatable_topic *ct,
				  bool (*registered)(void *arg, int32_t id), void *arg,
				  uint8_t *seen, int16_t *err)
{
	int32_t n = ct->assignments.count;
	int32_t rf = 0;
	const char *msg;

	*err = KP_ERR_INVALID_REQUEST;
	if (ct->replication_factor != -1)
		return "A manual partition assignment was specified, but replication factor was "
		       "not set to -1.";
	if (ct->num_partitions != -1)
		return "A manual partition assignment was specified, but numPartitions was not "
		       "set to -1.";
	*err = KP_ERR_INVALID_REPLICA_ASSIGNMENT;
	memset(seen, 0, (size_t)n);
	for (int32_t i = 0; i < n; i++) {
		const struct kp_create_topics_request_creatable_replica_assignment *as =
			&ct->assignments.items[i];

		if (as->partition_index < 0 || as->partition_index >= n)
			return "partitions should be a consecutive 0-based integer sequence";
		if (seen[as->partition_index])
			return "Found multiple manual partition assignments for a partition.";
		seen[as->partition_index] = 1;
		msg = kp_assignment_check(&as->broker_ids, registered, arg, &rf);
		if (msg != NULL)
			return msg;
	}
	*err = KP_ERR_NONE;
	return NULL;
}
