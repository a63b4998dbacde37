/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kafka request framing, response decoding, version negotiation and the
 * blocking set-up client of the load generator (see lg_kafka.h).
 */
#include "lg_kafka.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kp_error.h"

#define SYNC_BUF_CAP (4u << 20) /* a Metadata or ListOffsets answer for thousands of partitions */
#define LG_SYNC_ARENA (16u << 20) /* decoded Metadata of 10,000s of partitions */

int
lg_kafka_request_encode(uint8_t *buf, size_t cap, int16_t api_key, int16_t version,
			int32_t correlation_id, const void *msg, size_t *len)
{
	const struct kp_api_desc *d = kp_api_lookup(api_key);
	struct kp_request_header h;
	struct kp_writer w;
	int rc;

	if (d == NULL || !kp_api_version_supported(d, version))
		return -EPROTONOSUPPORT;
	kp_request_header_init(&h);
	h.request_api_key = api_key;
	h.request_api_version = version;
	h.correlation_id = correlation_id;
	h.client_id.ptr = LG_CLIENT_ID;
	h.client_id.len = (int32_t)strlen(LG_CLIENT_ID);
	kp_writer_init(&w, buf, cap);
	kp_wr_int32(&w, 0); /* size, filled below */
	rc = kp_request_header_write(&h, &w);
	if (rc == 0 && w.err == 0)
		rc = d->request.encode(msg, version, &w);
	if (rc == 0)
		rc = w.err;
	if (rc < 0)
		return rc;
	*len = kp_writer_len(&w);
	uint32_t be = __builtin_bswap32((uint32_t)(*len - 4));
	memcpy(buf, &be, 4);
	return 0;
}

int
lg_kafka_response_decode(const uint8_t *frame, size_t len, int16_t api_key, int16_t version,
			 void *msg, struct kp_arena *arena, int32_t *correlation_id)
{
	const struct kp_api_desc *d = kp_api_lookup(api_key);
	struct kp_response_header h;
	struct kp_reader r;
	int rc;

	if (d == NULL)
		return -EPROTONOSUPPORT;
	kp_reader_init(&r, frame, len);
	rc = kp_response_header_decode(&h, kp_api_response_header_version(d, version), &r, arena);
	if (rc < 0)
		return rc;
	*correlation_id = h.correlation_id;
	return d->response.decode(msg, version, &r, arena);
}

int
lg_kafka_retriable(int16_t code)
{
	switch (code) {
	case KP_ERR_UNKNOWN_TOPIC_OR_PARTITION: /* just created, metadata not yet everywhere */
	case KP_ERR_LEADER_NOT_AVAILABLE:
	case KP_ERR_NOT_LEADER_OR_FOLLOWER:
	case KP_ERR_REQUEST_TIMED_OUT:
	case KP_ERR_NETWORK_EXCEPTION:
	case KP_ERR_NOT_ENOUGH_REPLICAS:
	case KP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
	case 56: /* KAFKA_STORAGE_ERROR */
	case 74: /* FENCED_LEADER_EPOCH */
	case 75: /* UNKNOWN_LEADER_EPOCH */
		return 1;
	default:
		return 0;
	}
}

/* Kafka's Utils.murmur2: MurmurHash2, 32-bit, seed 0x9747b28c, little-endian words. */
static uint32_t
murmur2(const uint8_t *p, size_t len)
{
	const uint32_t m = 0x5bd1e995;
	uint32_t h = 0x9747b28c ^ (uint32_t)len;
	size_t i = 0;

	for (; i + 4 <= len; i += 4) {
		uint32_t k = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 |
			     (uint32_t)p[i + 3] << 24;
		k *= m;
		k ^= k >> 24;
		k *= m;
		h *= m;
		h ^= k;
	}
	switch (len - i) {
	case 3:
		h ^= (uint32_t)p[i + 2] << 16;
		/* fall through */
	case 2:
		h ^= (uint32_t)p[i + 1] << 8;
		/* fall through */
	case 1:
		h ^= p[i];
		h *= m;
	}
	h ^= h >> 13;
	h *= m;
	h ^= h >> 15;
	return h;
}

int32_t
lg_kafka_partition(const void *key, size_t len, int32_t npart)
{
	return (int32_t)((murmur2(key, len) & 0x7fffffffu) % (uint32_t)npart);
}

static int64_t
sync_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sync_ready(void *arg, bool readable, bool writable)
{
	struct lg_sync *s = arg;

	s->c_ready |= writable;
	s->c_readable |= readable;
}

/* Write @len bytes of s->buf, then read one frame into s->buf; returns the frame length. */
static int
sync_roundtrip(struct lg_sync *s, size_t len, size_t *frame_len)
{
	int64_t deadline = sync_now_ms() + s->timeout_ms;
	size_t off = 0;

	s->ops->want_write(s->c, true);
	while (off < len) {
		struct iovec iov = {.iov_base = s->buf + off, .iov_len = len - off};
		ssize_t n = s->ops->writev(s->c, &iov, 1);
		if (n < 0)
			return (int)n;
		off += (size_t)n;
		if (off == len)
			break;
		int64_t left = deadline - sync_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		s->c_ready = 0;
		int rc = s->ops->poll(s->t, left * 1000, sync_ready);
		if (rc < 0)
			return rc;
	}
	s->ops->want_write(s->c, false);
	off = 0;
	size_t need = 4;
	bool have_size = false;
	for (;;) {
		while (off < need) {
			ssize_t n = s->ops->read(s->c, s->buf + off, need - off);
			if (n < 0)
				return (int)n;
			if (n == 0)
				break;
			off += (size_t)n;
		}
		if (off >= need && !have_size) {
			uint32_t be;
			memcpy(&be, s->buf, 4);
			uint32_t sz = __builtin_bswap32(be);
			if (sz < 4 || sz > s->cap - 4)
				return -EMSGSIZE;
			need = 4 + sz;
			have_size = true;
			continue;
		}
		if (off >= need && have_size)
			break;
		int64_t left = deadline - sync_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		s->c_readable = 0;
		int rc = s->ops->poll(s->t, left * 1000, sync_ready);
		if (rc < 0)
			return rc;
	}
	*frame_len = need - 4;
	return 0;
}

int
lg_sync_call(struct lg_sync *s, int16_t api_key, int16_t version, const void *req, void *resp)
{
	size_t len, flen = 0;
	int32_t corr = s->corr++;
	int32_t got;
	int rc;

	rc = lg_kafka_request_encode(s->buf, s->cap, api_key, version, corr, req, &len);
	if (rc < 0)
		return rc;
	rc = sync_roundtrip(s, len, &flen);
	if (rc < 0)
		return rc;
	kp_arena_reset(&s->arena);
	rc = lg_kafka_response_decode(s->buf + 4, flen, api_key, version, resp, &s->arena, &got);
	if (rc < 0)
		return rc;
	return got == corr ? 0 : -EPROTO;
}

/* Our range for each API, clamped to the broker's. */
static int
sync_pick(const struct kp_api_versions_response *r, int16_t key, int16_t lo, int16_t hi,
	  int16_t *out)
{
	for (int32_t i = 0; i < r->api_keys.count; i++) {
		const struct kp_api_versions_response_api_version *k = &r->api_keys.items[i];
		if (k->api_key != key)
			continue;
		int16_t v = k->max_version < hi ? k->max_version : hi;
		if (v < lo || v < k->min_version)
			return -EPROTONOSUPPORT;
		*out = v;
		return 0;
	}
	return -EPROTONOSUPPORT;
}

int
lg_sync_open(struct lg_sync *s, const struct lg_transport_ops *ops, const char *host,
	     uint16_t port, int timeout_ms)
{
	struct kp_api_versions_request req;
	struct kp_api_versions_response resp;
	int rc;

	memset(s, 0, sizeof(*s));
	s->ops = ops;
	s->timeout_ms = timeout_ms;
	s->corr = 1;
	s->arena_buf = malloc(LG_SYNC_ARENA);
	kp_arena_init(&s->arena, s->arena_buf, s->arena_buf != NULL ? LG_SYNC_ARENA : 0);
	s->cap = SYNC_BUF_CAP;
	s->buf = malloc(s->cap);
	s->t = ops->create();
	if (s->buf == NULL || s->arena_buf == NULL || s->t == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = ops->connect(s->t, host, port, s, &s->c);
	if (rc < 0)
		goto fail;
	/* v3 first (flexible, what current clients send); an old broker answers
	 * UNSUPPORTED_VERSION in v0 form with its range, and we ask again in v0. */
	int16_t v = 3;
	kp_api_versions_request_init(&req);
	req.client_software_name.ptr = LG_CLIENT_ID;
	req.client_software_name.len = (int32_t)strlen(LG_CLIENT_ID);
	req.client_software_version.ptr = "0.1.0";
	req.client_software_version.len = 5;
	rc = lg_sync_call(s, LG_API_API_VERSIONS, v, &req, &resp);
	if (rc == 0 && resp.error_code == KP_ERR_UNSUPPORTED_VERSION) {
		v = 0;
		rc = lg_sync_call(s, LG_API_API_VERSIONS, v, &req, &resp);
	}
	if (rc < 0)
		goto fail;
	if (resp.error_code != 0) {
		rc = -EPROTONOSUPPORT;
		goto fail;
	}
	if ((rc = sync_pick(&resp, LG_API_PRODUCE, 3, 9, &s->v.produce)) < 0 ||
	    (rc = sync_pick(&resp, LG_API_FETCH, 4, 12, &s->v.fetch)) < 0 ||
	    (rc = sync_pick(&resp, LG_API_LIST_OFFSETS, 1, 7, &s->v.list_offsets)) < 0 ||
	    (rc = sync_pick(&resp, LG_API_METADATA, 1, 12, &s->v.metadata)) < 0)
		goto fail;
	if (sync_pick(&resp, LG_API_CREATE_TOPICS, 2, 7, &s->v.create_topics) < 0)
		s->v.create_topics = -1; /* topic must exist already */
	return 0;
fail:
	lg_sync_close(s);
	return rc;
}

void
lg_sync_close(struct lg_sync *s)
{
	if (s->t)
		s->ops->destroy(s->t); /* closes s->c */
	free(s->buf);
	free(s->arena_buf);
	s->t = NULL;
	s->c = NULL;
	s->buf = NULL;
	s->arena_buf = NULL;
}

static int
sync_metadata(struct lg_sync *s, const char *topic, struct kp_metadata_response *resp)
{
	struct kp_metadata_request req;
	struct kp_metadata_request_metadata_request_topic t;

	kp_metadata_request_init(&req);
	kp_metadata_request_metadata_request_topic_init(&t);
	t.name.ptr = topic;
	t.name.len = (int32_t)strlen(topic);
	req.topics.items = &t;
	req.topics.count = 1;
	req.allow_auto_topic_creation = false;
	return lg_sync_call(s, LG_API_METADATA, s->v.metadata, &req, resp);
}

static void
sync_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

int
lg_sync_ensure_topic(struct lg_sync *s, const char *topic, int32_t partitions, int16_t rf,
		     int create, int32_t *actual, char *err, size_t err_cap)
{
	int64_t deadline = sync_now_ms() + s->timeout_ms;
	bool created = false;
	int rc;

	for (;;) {
		struct kp_metadata_response m;
		rc = sync_metadata(s, topic, &m);
		if (rc < 0) {
			snprintf(err, err_cap, "Metadata v%d: %s", s->v.metadata, strerror(-rc));
			return rc;
		}
		int16_t code = m.topics.count == 1 ? m.topics.items[0].error_code : -1;
		if (code == KP_ERR_NONE) {
			const struct kp_metadata_response_metadata_response_topic *t =
				&m.topics.items[0];
			bool leaders = t->partitions.count > 0;
			for (int32_t i = 0; i < t->partitions.count; i++)
				if (t->partitions.items[i].error_code != 0 ||
				    t->partitions.items[i].leader_id < 0)
					leaders = false;
			if (leaders) {
				*actual = t->partitions.count;
				return 0;
			}
		} else if (code == KP_ERR_UNKNOWN_TOPIC_OR_PARTITION && !created) {
			if (!create || s->v.create_topics < 0) {
				snprintf(err, err_cap, "topic %s does not exist%s", topic,
					 create ? " and the broker has no CreateTopics" : "");
				return -ENOENT;
			}
			struct kp_create_topics_request req;
			struct kp_create_topics_request_creatable_topic ct;
			struct kp_create_topics_response cr;
			kp_create_topics_request_init(&req);
			kp_create_topics_request_creatable_topic_init(&ct);
			ct.name.ptr = topic;
			ct.name.len = (int32_t)strlen(topic);
			ct.num_partitions = partitions;
			ct.replication_factor = rf;
			req.topics.items = &ct;
			req.topics.count = 1;
			req.timeout_ms = s->timeout_ms;
			rc = lg_sync_call(s, LG_API_CREATE_TOPICS, s->v.create_topics, &req, &cr);
			if (rc < 0) {
				snprintf(err, err_cap, "CreateTopics: %s", strerror(-rc));
				return rc;
			}
			int16_t cc = cr.topics.count == 1 ? cr.topics.items[0].error_code : -1;
			if (cc != KP_ERR_NONE && cc != KP_ERR_TOPIC_ALREADY_EXISTS) {
				snprintf(err, err_cap, "CreateTopics %s: %s", topic,
					 kp_error_name(cc));
				return -EIO;
			}
			created = true;
			continue;
		} else if (code != KP_ERR_UNKNOWN_TOPIC_OR_PARTITION &&
			   !lg_kafka_retriable(code)) {
			snprintf(err, err_cap, "Metadata %s: %s", topic, kp_error_name(code));
			return -EIO;
		}
		if (sync_now_ms() > deadline) {
			snprintf(err, err_cap, "topic %s: no leader for every partition after %d ms",
				 topic, s->timeout_ms);
			return -ETIMEDOUT;
		}
		sync_sleep_ms(50);
	}
}

int
lg_sync_list_offsets(struct lg_sync *s, const char *topic, int32_t n, int64_t timestamp,
		     int64_t *offsets, char *err, size_t err_cap)
{
	struct kp_list_offsets_request req;
	struct kp_list_offsets_request_list_offsets_topic t;
	struct kp_list_offsets_response resp;
	int64_t deadline = sync_now_ms() + s->timeout_ms;
	int rc;

	struct kp_list_offsets_request_list_offsets_partition *ps = calloc((size_t)n, sizeof(*ps));
	if (ps == NULL)
		return -ENOMEM;
	for (int32_t i = 0; i < n; i++) {
		kp_list_offsets_request_list_offsets_partition_init(&ps[i]);
		ps[i].partition_index = i;
		ps[i].timestamp = timestamp;
		ps[i].current_leader_epoch = -1;
		offsets[i] = -1;
	}
	kp_list_offsets_request_init(&req);
	kp_list_offsets_request_list_offsets_topic_init(&t);
	req.replica_id = -1;
	t.name.ptr = topic;
	t.name.len = (int32_t)strlen(topic);
	t.partitions.items = ps;
	t.partitions.count = n;
	req.topics.items = &t;
	req.topics.count = 1;
	for (;;) {
		bool retry = false;
		rc = lg_sync_call(s, LG_API_LIST_OFFSETS, s->v.list_offsets, &req, &resp);
		if (rc < 0) {
			snprintf(err, err_cap, "ListOffsets: %s", strerror(-rc));
			break;
		}
		for (int32_t i = 0; i < resp.topics.count; i++) {
			const struct kp_list_offsets_response_list_offsets_topic_response *rt =
				&resp.topics.items[i];
			for (int32_t j = 0; j < rt->partitions.count; j++) {
				const struct kp_list_offsets_response_list_offsets_partition_response
					*p = &rt->partitions.items[j];
				if (p->partition_index < 0 || p->partition_index >= n)
					continue;
				if (p->error_code == 0) {
					offsets[p->partition_index] = p->offset;
				} else if (lg_kafka_retriable(p->error_code)) {
					retry = true;
				} else {
					snprintf(err, err_cap, "ListOffsets %s/%d: %s", topic,
						 p->partition_index, kp_error_name(p->error_code));
					rc = -EIO;
				}
			}
		}
		for (int32_t i = 0; i < n && rc == 0 && !retry; i++)
			if (offsets[i] < 0)
				retry = true;
		if (rc < 0 || !retry)
			break;
		if (sync_now_ms() > deadline) {
			snprintf(err, err_cap, "ListOffsets %s: no answer for every partition", topic);
			rc = -ETIMEDOUT;
			break;
		}
		sync_sleep_ms(50);
	}
	free(ps);
	return rc;
}
