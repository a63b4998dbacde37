/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_records: __consumer_offsets keys and values (see ctl_records.h), on
 * the bounds-checked wire primitives of dataplane/kafka/kp_wire.h. Every
 * read goes through one sticky-error reader, so a truncated or lying record
 * fails with -EPROTO and never reads past its bytes.
 */
#include "ctl_records.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Skip a tagged-field section (flexible versions). */
static void
skip_tags(struct kp_reader *r)
{
	uint32_t n = kp_rd_uvarint(r);

	for (uint32_t i = 0; i < n && r->err == 0; i++) {
		uint32_t size;

		(void)kp_rd_uvarint(r);
		size = kp_rd_uvarint(r);
		(void)kp_rd_take(r, size);
	}
}

static int
finish(const struct kp_reader *r)
{
	if (r->err)
		return -EPROTO;
	/* Kafka's readers ignore trailing bytes (newer ignorable fields): so do we. */
	return 0;
}

int
ctl_rec_key_decode(const uint8_t *buf, size_t len, struct ctl_rec_key *k)
{
	struct kp_reader r;

	memset(k, 0, sizeof(*k));
	kp_reader_init(&r, buf, len);
	k->version = kp_rd_int16(&r);
	if (r.err)
		return -EPROTO;
	switch (k->version) {
	case 0:
	case 1:
		k->kind = CTL_REC_OFFSET;
		kp_rd_str(&r, false, false, &k->group);
		kp_rd_str(&r, false, false, &k->topic);
		k->partition = kp_rd_int32(&r);
		break;
	case 2:
		k->kind = CTL_REC_GROUP;
		kp_rd_str(&r, false, false, &k->group);
		break;
	default:
		return -EPROTONOSUPPORT;
	}
	return finish(&r);
}

int
ctl_rec_offset_decode(const uint8_t *buf, size_t len, struct ctl_rec_offset *v)
{
	struct kp_reader r;
	int16_t version;
	bool flex;

	kp_reader_init(&r, buf, len);
	version = kp_rd_int16(&r);
	if (r.err)
		return -EPROTO;
	if (version < 0 || version > 4)
		return -EPROTONOSUPPORT;
	flex = version >= 4;
	v->offset = kp_rd_int64(&r);
	v->leader_epoch = version >= 3 ? kp_rd_int32(&r) : -1;
	kp_rd_str(&r, flex, false, &v->metadata);
	v->commit_ts = kp_rd_int64(&r);
	v->expire_ts = version == 1 ? kp_rd_int64(&r) : -1;
	if (flex)
		skip_tags(&r);
	return finish(&r);
}

int
ctl_rec_group_decode(const uint8_t *buf, size_t len, struct ctl_rec_group *v, struct kp_arena *a)
{
	struct kp_reader r;
	int16_t version;
	bool flex;
	int32_t n;

	memset(v, 0, sizeof(*v));
	kp_reader_init(&r, buf, len);
	version = kp_rd_int16(&r);
	if (r.err)
		return -EPROTO;
	if (version < 0 || version > 4)
		return -EPROTONOSUPPORT;
	flex = version >= 4;
	kp_rd_str(&r, flex, false, &v->protocol_type);
	v->generation = kp_rd_int32(&r);
	kp_rd_str(&r, flex, true, &v->protocol);
	kp_rd_str(&r, flex, true, &v->leader);
	v->state_ts = version >= 2 ? kp_rd_int64(&r) : -1;
	/* Each member is at least 4 strings/bytes of 2 bytes (1 when compact) and one int32. */
	n = kp_rd_array_len(&r, flex, false, flex ? 9 : 16);
	if (r.err)
		return -EPROTO;
	v->members = kp_arena_alloc(a, sizeof(*v->members) * (size_t)(n > 0 ? n : 1),
		_Alignof(struct ctl_rec_member));
	if (v->members == NULL)
		return -ENOMEM;
	for (int32_t i = 0; i < n && r.err == 0; i++) {
		struct ctl_rec_member *m = &v->members[i];

		kp_rd_str(&r, flex, false, &m->member_id);
		if (version >= 3) {
			kp_rd_str(&r, flex, true, &m->instance_id);
		} else {
			m->instance_id.ptr = NULL;
			m->instance_id.len = -1;
		}
		kp_rd_str(&r, flex, false, &m->client_id);
		kp_rd_str(&r, flex, false, &m->client_host);
		m->rebalance_timeout_ms = version >= 1 ? kp_rd_int32(&r) : -1;
		m->session_timeout_ms = kp_rd_int32(&r);
		kp_rd_bytes(&r, flex, false, &m->subscription);
		kp_rd_bytes(&r, flex, false, &m->assignment);
		if (flex)
			skip_tags(&r);
		v->n_members = i + 1;
	}
	if (flex)
		skip_tags(&r);
	return finish(&r);
}

void
ctl_rec_offset_key_encode(struct kp_writer *w, const struct kp_str *group,
	const struct kp_str *topic, int32_t partition)
{
	kp_wr_int16(w, 1);
	kp_wr_str(w, false, false, group);
	kp_wr_str(w, false, false, topic);
	kp_wr_int32(w, partition);
}

void
ctl_rec_group_key_encode(struct kp_writer *w, const struct kp_str *group)
{
	kp_wr_int16(w, 2);
	kp_wr_str(w, false, false, group);
}

void
ctl_rec_offset_encode(struct kp_writer *w, const struct ctl_rec_offset *v, int16_t version)
{
	struct kp_str md = v->metadata;

	if (md.len < 0) { /* the schema's metadata is not nullable: null is written as "" */
		md.ptr = "";
		md.len = 0;
	}
	if (version < 1 || version > 3) {
		kp_writer_fail(w, -EINVAL);
		return;
	}
	kp_wr_int16(w, version);
	kp_wr_int64(w, v->offset);
	if (version >= 3)
		kp_wr_int32(w, v->leader_epoch);
	kp_wr_str(w, false, false, &md);
	kp_wr_int64(w, v->commit_ts);
	if (version == 1)
		kp_wr_int64(w, v->expire_ts);
}

void
ctl_rec_group_encode(struct kp_writer *w, const struct ctl_rec_group *v, int16_t version)
{
	if (version < 0 || version > 3) {
		kp_writer_fail(w, -EINVAL);
		return;
	}
	kp_wr_int16(w, version);
	kp_wr_str(w, false, false, &v->protocol_type);
	kp_wr_int32(w, v->generation);
	kp_wr_str(w, false, true, &v->protocol);
	kp_wr_str(w, false, true, &v->leader);
	if (version >= 2)
		kp_wr_int64(w, v->state_ts);
	kp_wr_int32(w, v->n_members);
	for (int32_t i = 0; i < v->n_members; i++) {
		const struct ctl_rec_member *m = &v->members[i];

		kp_wr_str(w, false, false, &m->member_id);
		if (version >= 3)
			kp_wr_str(w, false, true, &m->instance_id);
		kp_wr_str(w, false, false, &m->client_id);
		kp_wr_str(w, false, false, &m->client_host);
		if (version >= 1)
			kp_wr_int32(w, m->rebalance_timeout_ms);
		kp_wr_int32(w, m->session_timeout_ms);
		kp_wr_bytes(w, false, false, &m->subscription);
		kp_wr_bytes(w, false, false, &m->assignment);
	}
}

static size_t
str_size(const struct kp_str *s)
{
	return 2 + (s->len > 0 ? (size_t)s->len : 0);
}

static size_t
bytes_size(const struct kp_bytes *b)
{
	return 4 + (b->len > 0 ? (size_t)b->len : 0);
}

size_t
ctl_rec_group_size(const struct ctl_rec_group *v, int16_t version)
{
	size_t n = 2 + str_size(&v->protocol_type) + 4 + str_size(&v->protocol) +
		str_size(&v->leader) + (version >= 2 ? 8 : 0) + 4;

	for (int32_t i = 0; i < v->n_members; i++) {
		const struct ctl_rec_member *m = &v->members[i];

		n += str_size(&m->member_id) + (version >= 3 ? str_size(&m->instance_id) : 0) +
			str_size(&m->client_id) + str_size(&m->client_host) +
			(version >= 1 ? 8 : 4) + bytes_size(&m->subscription) +
			bytes_size(&m->assignment);
	}
	return n;
}

/* "2.2", "0.10.1-IV0", "3.7-IV4": (major, minor, micro, IV; no IV: the release's last). */
static int
ibp_parse(const char *s, int v[4])
{
	int n = 0;
	const char *p = s;

	v[0] = v[1] = v[2] = 0;
	v[3] = 1000;
	while (n < 3) {
		char *end;
		long x = strtol(p, &end, 10);

		if (end == p || x < 0 || x > 1000)
			return -EINVAL;
		v[n++] = (int)x;
		p = end;
		if (*p != '.')
			break;
		p++;
	}
	if (n < 2)
		return -EINVAL;
	if (*p == '-') {
		char *end;
		long x;

		if (strncmp(p, "-IV", 3) != 0)
			return -EINVAL;
		x = strtol(p + 3, &end, 10);
		if (end == p + 3 || x < 0 || x > 999)
			return -EINVAL;
		v[3] = (int)x;
		p = end;
	}
	return *p == '\0' ? 0 : -EINVAL;
}

/* @v before @major.@minor-IV@iv? */
static bool
ibp_before(const int v[4], int major, int minor, int micro, int iv)
{
	const int w[4] = {major, minor, micro, iv};

	for (int i = 0; i < 4; i++) {
		if (v[i] != w[i])
			return v[i] < w[i];
	}
	return false;
}

int
ctl_rec_versions_for(const char *ibp, int16_t *group_version, int16_t *offset_version)
{
	int v[4];

	if (ibp_parse(ibp, v) < 0)
		return -EINVAL;
	/* Kafka's GroupMetadataManager: the value versions each protocol version writes. */
	*group_version = ibp_before(v, 0, 10, 1, 0) ? 0 : ibp_before(v, 2, 1, 0, 0) ? 1 :
		ibp_before(v, 2, 3, 0, 0) ? 2 : 3;
	*offset_version = ibp_before(v, 2, 1, 0, 0) ? 1 : ibp_before(v, 2, 1, 0, 1) ? 2 : 3;
	return 0;
}

int32_t
ctl_rec_partition_for(const struct kp_str *group, int32_t n_partitions)
{
	const unsigned char *p = (const unsigned char *)group->ptr;
	int32_t len = group->len > 0 ? group->len : 0;
	uint32_t h = 0;

	/* Decode UTF-8 to code points, hash their UTF-16 units like String.hashCode(). */
	for (int32_t i = 0; i < len;) {
		uint32_t cp = p[i];
		int extra = 0;

		if (cp >= 0xf0 && cp < 0xf8) {
			cp &= 0x07;
			extra = 3;
		} else if (cp >= 0xe0) {
			cp &= 0x0f;
			extra = 2;
		} else if (cp >= 0xc0) {
			cp &= 0x1f;
			extra = 1;
		}
		i++;
		for (int k = 0; k < extra && i < len; k++, i++)
			cp = cp << 6 | (p[i] & 0x3f);
		if (cp >= 0x10000) {
			cp -= 0x10000;
			h = 31 * h + (0xd800 + (cp >> 10));
			h = 31 * h + (0xdc00 + (cp & 0x3ff));
		} else {
			h = 31 * h + cp;
		}
	}
	if (n_partitions <= 0)
		return 0;
	/* Kafka's Utils.abs(n) is n & 0x7fffffff. */
	return (int32_t)((h & 0x7fffffffu) % (uint32_t)n_partitions);
}
