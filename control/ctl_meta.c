/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_meta: metadata records and their state machine (see ctl_meta.h for
 * the formats). Decoding goes through kp_wire's sticky-error reader, so a
 * truncated or lying record fails with -EPROTO and never reads past its
 * bytes; every count is checked against its limit before anything is
 * allocated. Applying a record first checks that it fits the state, then
 * changes it, so a refused record leaves the state as it was.
 */
#include "ctl_meta.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_wire.h"

#define BATCH_HDR 10

static const uint8_t batch_magic[4] = {'S', 'L', 'M', 'B'};

/* ---- output buffer ------------------------------------------------------------------------ */

void
ctl_meta_buf_free(struct ctl_meta_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static uint8_t *
buf_room(struct ctl_meta_buf *b, size_t n)
{
	if (b->err)
		return NULL;
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *p;

		while (cap - b->len < n)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL) {
			b->err = -ENOMEM;
			return NULL;
		}
		b->p = p;
		b->cap = cap;
	}
	b->len += n;
	return b->p + b->len - n;
}

static void
put_raw(struct ctl_meta_buf *b, const void *src, size_t n)
{
	uint8_t *p = buf_room(b, n);

	if (p != NULL && n > 0)
		memcpy(p, src, n);
}

static void
put_u8(struct ctl_meta_buf *b, uint8_t v)
{
	put_raw(b, &v, 1);
}

static void
put_u16(struct ctl_meta_buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	put_raw(b, x, 2);
}

static void
put_u32(struct ctl_meta_buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	put_raw(b, x, 4);
}

static void
put_str(struct ctl_meta_buf *b, const char *s, int32_t len)
{
	if (len < 0) {
		put_u16(b, 0xffff);
		return;
	}
	if (len > CTL_META_NAME_MAX && len > CTL_META_STR_MAX) {
		if (b->err == 0)
			b->err = -EOVERFLOW;
		return;
	}
	put_u16(b, (uint16_t)len);
	put_raw(b, s, (size_t)len);
}

static void
put_cstr(struct ctl_meta_buf *b, const char *s)
{
	put_str(b, s, (int32_t)strlen(s));
}

static void
put_parts(struct ctl_meta_buf *b, int32_t n, const struct ctl_meta_part *parts)
{
	for (int32_t i = 0; i < n; i++) {
		uint8_t nr = parts[i].n_replicas;

		if (nr > CTL_META_MAX_REPLICAS) {
			b->err = b->err ? b->err : -EOVERFLOW;
			return;
		}
		put_u32(b, (uint32_t)parts[i].leader);
		put_u8(b, nr);
		for (uint8_t j = 0; j < nr; j++)
			put_u32(b, (uint32_t)parts[i].replicas[j]);
	}
}

static void
put_head(struct ctl_meta_buf *b, enum ctl_meta_type type)
{
	put_u8(b, CTL_META_VERSION);
	put_u8(b, (uint8_t)type);
}

/* ---- encoders ------------------------------------------------------------------------------ */

void
ctl_meta_enc_topic(struct ctl_meta_buf *b, const struct ctl_meta_topic *t)
{
	const char *c = t->configs;
	size_t n_lines = 0;

	put_head(b, CTL_META_TOPIC);
	put_raw(b, t->id, 16);
	put_cstr(b, t->name);
	put_u32(b, (uint32_t)t->n_parts);
	put_parts(b, t->n_parts, t->parts);
	for (const char *p = c; *p != '\0'; p++)
		n_lines += *p == '\n';
	put_u16(b, (uint16_t)(c[0] != '\0' ? n_lines + 1 : 0));
	while (*c != '\0') {
		const char *nl = strchr(c, '\n');
		size_t ll = nl != NULL ? (size_t)(nl - c) : strlen(c);
		const char *eq = memchr(c, '=', ll);

		if (eq == NULL) {
			b->err = b->err ? b->err : -EOVERFLOW;
			return;
		}
		put_str(b, c, (int32_t)(eq - c));
		put_str(b, eq + 1, (int32_t)(ll - (size_t)(eq - c) - 1));
		c += ll + (nl != NULL);
	}
}

void
ctl_meta_enc_partitions(struct ctl_meta_buf *b, const uint8_t id[16], int32_t first, int32_t n,
	const struct ctl_meta_part *parts)
{
	put_head(b, CTL_META_PARTITIONS);
	put_raw(b, id, 16);
	put_u32(b, (uint32_t)first);
	put_u32(b, (uint32_t)n);
	put_parts(b, n, parts);
}

void
ctl_meta_enc_configs(struct ctl_meta_buf *b, const uint8_t id[16], bool replace,
	const struct ctl_meta_cfg_op *ops, int32_t n_ops)
{
	if (n_ops < 0 || n_ops > 0xffff) {
		b->err = b->err ? b->err : -EOVERFLOW;
		return;
	}
	put_head(b, CTL_META_CONFIGS);
	put_raw(b, id, 16);
	put_u8(b, replace ? 1 : 0);
	put_u16(b, (uint16_t)n_ops);
	for (int32_t i = 0; i < n_ops; i++) {
		put_u8(b, ops[i].op);
		put_str(b, ops[i].key.ptr, ops[i].key.len);
		put_str(b, ops[i].value.ptr, ops[i].op == CTL_META_OP_SET ? ops[i].value.len : -1);
	}
}

void
ctl_meta_enc_topic_delete(struct ctl_meta_buf *b, const uint8_t id[16], const char *name)
{
	put_head(b, CTL_META_TOPIC_DELETE);
	put_raw(b, id, 16);
	put_cstr(b, name);
}

void
ctl_meta_enc_broker(struct ctl_meta_buf *b, const struct ctl_meta_broker *br)
{
	if (br->n_listeners > CTL_META_MAX_LISTENERS) {
		b->err = b->err ? b->err : -EOVERFLOW;
		return;
	}
	put_head(b, CTL_META_BROKER);
	put_u32(b, (uint32_t)br->node_id);
	if (br->has_rack)
		put_cstr(b, br->rack);
	else
		put_str(b, NULL, -1);
	put_u8(b, br->n_listeners);
	for (uint8_t i = 0; i < br->n_listeners; i++) {
		put_cstr(b, br->listeners[i].name);
		put_cstr(b, br->listeners[i].host);
		put_u32(b, (uint32_t)br->listeners[i].port);
	}
}

void
ctl_meta_enc_imported(struct ctl_meta_buf *b)
{
	put_head(b, CTL_META_IMPORTED);
}

void
ctl_meta_enc_deleted(struct ctl_meta_buf *b, const struct ctl_meta_state *s)
{
	uint32_t first = s->n_deleted < CTL_META_MAX_DELETED ? 0 : s->deleted_at;

	put_head(b, CTL_META_DELETED);
	put_u32(b, s->n_deleted);
	for (uint32_t i = 0; i < s->n_deleted; i++)
		put_raw(b, s->deleted[(first + i) % CTL_META_MAX_DELETED], 16);
}

/* ---- decoder ------------------------------------------------------------------------------- */

static void
rd_str(struct kp_reader *r, struct ctl_meta_str *s, size_t max)
{
	uint16_t n = kp_rd_uint16(r);
	const uint8_t *p;

	s->ptr = NULL;
	s->len = -1;
	if (r->err || n == 0xffff)
		return;
	if (n > max) {
		kp_reader_fail(r, -EPROTO);
		return;
	}
	p = kp_rd_take(r, n);
	if (p != NULL) {
		s->ptr = (const char *)p;
		s->len = n;
	}
}

static void
rd_cstr(struct kp_reader *r, char *dst, size_t cap, bool nullable, bool *present)
{
	struct ctl_meta_str s;

	rd_str(r, &s, cap - 1);
	dst[0] = '\0';
	if (present != NULL)
		*present = s.len >= 0;
	if (r->err)
		return;
	if (s.len < 0 && !nullable) {
		kp_reader_fail(r, -EPROTO);
		return;
	}
	if (s.len > 0)
		memcpy(dst, s.ptr, (size_t)s.len);
	dst[s.len > 0 ? s.len : 0] = '\0';
}

static int
rd_parts(struct kp_reader *r, int32_t n, struct ctl_meta_part **out)
{
	struct ctl_meta_part *p;

	*out = NULL;
	/* Each partition takes at least 5 bytes: a lying count fails before the allocation. */
	if (n < 0 || n > CTL_META_MAX_PARTITIONS || kp_reader_remaining(r) < (size_t)n * 5)
		return -EPROTO;
	p = calloc((size_t)(n > 0 ? n : 1), sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	for (int32_t i = 0; i < n && r->err == 0; i++) {
		p[i].leader = kp_rd_int32(r);
		p[i].n_replicas = (uint8_t)kp_rd_int8(r);
		if (p[i].n_replicas > CTL_META_MAX_REPLICAS) {
			kp_reader_fail(r, -EPROTO);
			break;
		}
		for (uint8_t j = 0; j < p[i].n_replicas; j++)
			p[i].replicas[j] = kp_rd_int32(r);
	}
	if (r->err) {
		free(p);
		return -EPROTO;
	}
	*out = p;
	return 0;
}

static int
rd_ops(struct kp_reader *r, int32_t n, bool with_op, struct ctl_meta_cfg_op **out)
{
	struct ctl_meta_cfg_op *o;

	*out = NULL;
	if (kp_reader_remaining(r) < (size_t)n * 4)
		return -EPROTO;
	o = calloc((size_t)(n > 0 ? n : 1), sizeof(*o));
	if (o == NULL)
		return -ENOMEM;
	for (int32_t i = 0; i < n && r->err == 0; i++) {
		o[i].op = with_op ? (uint8_t)kp_rd_int8(r) : CTL_META_OP_SET;
		rd_str(r, &o[i].key, CTL_META_STR_MAX);
		rd_str(r, &o[i].value, CTL_META_STR_MAX);
		if (r->err == 0 && (o[i].op > CTL_META_OP_DELETE || o[i].key.len < 0 ||
			(o[i].op == CTL_META_OP_SET && o[i].value.len < 0)))
			kp_reader_fail(r, -EPROTO);
	}
	if (r->err) {
		free(o);
		return -EPROTO;
	}
	*out = o;
	return 0;
}

int
ctl_meta_rec_decode(const uint8_t *buf, size_t len, struct ctl_meta_rec *rec)
{
	struct kp_reader r;
	const uint8_t *id;
	uint8_t version;
	int rc = 0;

	memset(rec, 0, sizeof(*rec));
	rec->name.len = -1;
	kp_reader_init(&r, buf, len);
	version = (uint8_t)kp_rd_int8(&r);
	rec->type = (uint8_t)kp_rd_int8(&r);
	if (r.err)
		return -EPROTO;
	if (version != CTL_META_VERSION)
		return -EPROTONOSUPPORT;
	switch (rec->type) {
	case CTL_META_TOPIC:
		id = kp_rd_take(&r, 16);
		rd_str(&r, &rec->name, CTL_META_NAME_MAX);
		rec->n_parts = kp_rd_int32(&r);
		if (r.err || id == NULL || rec->name.len < 0)
			return -EPROTO;
		memcpy(rec->id, id, 16);
		rc = rd_parts(&r, rec->n_parts, &rec->parts);
		if (rc == 0) {
			rec->n_ops = kp_rd_uint16(&r);
			rc = r.err ? -EPROTO : rd_ops(&r, rec->n_ops, false, &rec->ops);
		}
		break;
	case CTL_META_PARTITIONS:
		id = kp_rd_take(&r, 16);
		rec->first = kp_rd_int32(&r);
		rec->n_parts = kp_rd_int32(&r);
		if (r.err || id == NULL)
			return -EPROTO;
		memcpy(rec->id, id, 16);
		rc = rd_parts(&r, rec->n_parts, &rec->parts);
		break;
	case CTL_META_CONFIGS:
		id = kp_rd_take(&r, 16);
		rec->replace = kp_rd_int8(&r) != 0;
		rec->n_ops = kp_rd_uint16(&r);
		if (r.err || id == NULL)
			return -EPROTO;
		memcpy(rec->id, id, 16);
		rc = rd_ops(&r, rec->n_ops, true, &rec->ops);
		break;
	case CTL_META_TOPIC_DELETE:
		id = kp_rd_take(&r, 16);
		rd_str(&r, &rec->name, CTL_META_NAME_MAX);
		if (r.err || id == NULL || rec->name.len < 0)
			return -EPROTO;
		memcpy(rec->id, id, 16);
		break;
	case CTL_META_BROKER: {
		struct ctl_meta_broker *br = &rec->broker;

		br->node_id = kp_rd_int32(&r);
		rd_cstr(&r, br->rack, sizeof(br->rack), true, &br->has_rack);
		br->n_listeners = (uint8_t)kp_rd_int8(&r);
		if (br->n_listeners > CTL_META_MAX_LISTENERS)
			return -EPROTO;
		for (uint8_t i = 0; i < br->n_listeners && r.err == 0; i++) {
			rd_cstr(&r, br->listeners[i].name, sizeof(br->listeners[i].name), false, NULL);
			rd_cstr(&r, br->listeners[i].host, sizeof(br->listeners[i].host), false, NULL);
			br->listeners[i].port = kp_rd_int32(&r);
		}
		if (r.err)
			return -EPROTO;
		break;
	}
	case CTL_META_IMPORTED:
		break;
	case CTL_META_DELETED:
		rec->n_ids = kp_rd_uint32(&r);
		if (r.err || rec->n_ids > CTL_META_MAX_DELETED)
			return -EPROTO;
		rec->ids = kp_rd_take(&r, (size_t)rec->n_ids * 16);
		if (rec->ids == NULL && rec->n_ids > 0)
			return -EPROTO;
		break;
	default:
		return -EPROTONOSUPPORT;
	}
	if (rc < 0)
		ctl_meta_rec_release(rec);
	return rc;
}

void
ctl_meta_rec_release(struct ctl_meta_rec *r)
{
	free(r->parts);
	free(r->ops);
	r->parts = NULL;
	r->ops = NULL;
}

/* ---- batches ------------------------------------------------------------------------------- */

void
ctl_meta_batch_begin(struct ctl_meta_buf *b, enum ctl_meta_batch_kind kind)
{
	put_raw(b, batch_magic, 4);
	put_u8(b, CTL_META_VERSION);
	put_u8(b, (uint8_t)kind);
	put_u32(b, 0);
}

void
ctl_meta_batch_add(struct ctl_meta_buf *b, size_t start, const uint8_t *rec, size_t len)
{
	uint32_t n;

	if (len > UINT32_MAX) {
		b->err = b->err ? b->err : -EOVERFLOW;
		return;
	}
	put_u32(b, (uint32_t)len);
	put_raw(b, rec, len);
	if (b->err || b->len < start + BATCH_HDR)
		return;
	n = (uint32_t)b->p[start + 6] << 24 | (uint32_t)b->p[start + 7] << 16 |
		(uint32_t)b->p[start + 8] << 8 | b->p[start + 9];
	n++;
	b->p[start + 6] = (uint8_t)(n >> 24);
	b->p[start + 7] = (uint8_t)(n >> 16);
	b->p[start + 8] = (uint8_t)(n >> 8);
	b->p[start + 9] = (uint8_t)n;
}

int64_t
ctl_meta_batch_check(const uint8_t *buf, size_t len, enum ctl_meta_batch_kind *kind)
{
	struct kp_reader r;
	uint32_t n;

	if (len < BATCH_HDR || memcmp(buf, batch_magic, 4) != 0)
		return -EPROTO;
	if (buf[4] != CTL_META_VERSION)
		return -EPROTONOSUPPORT;
	if (buf[5] != CTL_META_BATCH_FULL && buf[5] != CTL_META_BATCH_DELTA)
		return -EPROTO;
	*kind = (enum ctl_meta_batch_kind)buf[5];
	kp_reader_init(&r, buf + 6, len - 6);
	n = kp_rd_uint32(&r);
	for (uint32_t i = 0; i < n && r.err == 0; i++)
		(void)kp_rd_take(&r, kp_rd_uint32(&r));
	if (r.err || kp_reader_remaining(&r) != 0)
		return -EPROTO;
	return n;
}

int
ctl_meta_batch_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **rec,
	size_t *rec_len)
{
	uint32_t n;

	if (*off == 0)
		*off = BATCH_HDR;
	if (*off + 4 > len)
		return 0;
	n = (uint32_t)buf[*off] << 24 | (uint32_t)buf[*off + 1] << 16 |
		(uint32_t)buf[*off + 2] << 8 | buf[*off + 3];
	if (n > len - *off - 4)
		return 0;
	*rec = buf + *off + 4;
	*rec_len = n;
	*off += 4 + (size_t)n;
	return 1;
}

/* ---- configs ------------------------------------------------------------------------------- */

struct kv {
	char key[CTL_META_STR_MAX + 1];
	char value[CTL_META_STR_MAX + 1];
};

static bool
token_ok(const struct ctl_meta_str *s, bool is_key)
{
	if (s->len < 0 || (is_key && s->len == 0))
		return false;
	for (int32_t i = 0; i < s->len; i++) {
		if (s->ptr[i] == '\n' || s->ptr[i] == '\0' || (is_key && s->ptr[i] == '='))
			return false;
	}
	return true;
}

static int
kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct kv *)a)->key, ((const struct kv *)b)->key);
}

/* Parse "k=v" lines into @kv (at most @max). @return the count or -EBADR. */
static int
kv_parse(const char *c, struct kv *kv, int max)
{
	int n = 0;

	while (*c != '\0') {
		const char *nl = strchr(c, '\n');
		size_t ll = nl != NULL ? (size_t)(nl - c) : strlen(c);
		const char *eq = memchr(c, '=', ll);

		if (eq == NULL || n == max || (size_t)(eq - c) > CTL_META_STR_MAX ||
			ll - (size_t)(eq - c) - 1 > CTL_META_STR_MAX)
			return -EBADR;
		memcpy(kv[n].key, c, (size_t)(eq - c));
		kv[n].key[eq - c] = '\0';
		memcpy(kv[n].value, eq + 1, ll - (size_t)(eq - c) - 1);
		kv[n].value[ll - (size_t)(eq - c) - 1] = '\0';
		n++;
		c += ll + (nl != NULL);
	}
	return n;
}

/*
 * The configs @cur with @ops applied (@replace: start from none) into @out
 * (CTL_META_CONFIGS_MAX). @return 0 or -EBADR.
 */
static int
configs_apply(const char *cur, bool replace, const struct ctl_meta_cfg_op *ops, int32_t n_ops,
	char *out)
{
	enum { MAX_KV = CTL_META_CONFIGS_MAX / 2 };
	struct kv *kv = malloc(sizeof(*kv) * MAX_KV);
	size_t used = 0;
	int n = 0;
	int rc = 0;

	if (kv == NULL)
		return -ENOMEM;
	if (!replace)
		n = kv_parse(cur, kv, MAX_KV);
	if (n < 0) {
		rc = -EBADR;
		goto out;
	}
	for (int32_t i = 0; i < n_ops; i++) {
		const struct ctl_meta_cfg_op *o = &ops[i];
		int at = -1;

		if (!token_ok(&o->key, true) ||
			(o->op == CTL_META_OP_SET && !token_ok(&o->value, false))) {
			rc = -EBADR;
			goto out;
		}
		for (int j = 0; j < n && at < 0; j++) {
			if (strlen(kv[j].key) == (size_t)o->key.len &&
				memcmp(kv[j].key, o->key.ptr, (size_t)o->key.len) == 0)
				at = j;
		}
		if (o->op == CTL_META_OP_DELETE) {
			if (at >= 0)
				kv[at] = kv[--n];
			continue;
		}
		if (at < 0) {
			if (n == MAX_KV) {
				rc = -EBADR;
				goto out;
			}
			at = n++;
			memcpy(kv[at].key, o->key.ptr, (size_t)o->key.len);
			kv[at].key[o->key.len] = '\0';
		}
		memcpy(kv[at].value, o->value.ptr, (size_t)o->value.len);
		kv[at].value[o->value.len] = '\0';
	}
	qsort(kv, (size_t)n, sizeof(*kv), kv_cmp);
	out[0] = '\0';
	for (int j = 0; j < n; j++) {
		size_t need = strlen(kv[j].key) + strlen(kv[j].value) + 2;

		if (used + need + 1 > CTL_META_CONFIGS_MAX) {
			rc = -EBADR;
			goto out;
		}
		used += (size_t)snprintf(out + used, CTL_META_CONFIGS_MAX - used, "%s%s=%s",
			used ? "\n" : "", kv[j].key, kv[j].value);
	}
out:
	free(kv);
	return rc;
}

bool
ctl_meta_config_get(const char *c, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);

	while (c != NULL && *c != '\0') {
		const char *nl = strchr(c, '\n');
		size_t ll = nl != NULL ? (size_t)(nl - c) : strlen(c);

		if (ll > kl && strncmp(c, key, kl) == 0 && c[kl] == '=') {
			size_t vl = ll - kl - 1;

			if (cap > 0) {
				if (vl >= cap)
					vl = cap - 1;
				memcpy(out, c + kl + 1, vl);
				out[vl] = '\0';
			}
			return true;
		}
		c = nl != NULL ? nl + 1 : NULL;
	}
	return false;
}

/* ---- the state machine --------------------------------------------------------------------- */

struct ctl_meta_state *
ctl_meta_state_create(void)
{
	return calloc(1, sizeof(struct ctl_meta_state));
}

static void
topic_free(struct ctl_meta_topic *t)
{
	if (t != NULL)
		free(t->parts);
	free(t);
}

void
ctl_meta_state_clear(struct ctl_meta_state *s)
{
	for (uint32_t i = 0; i < s->n_topics; i++)
		topic_free(s->topics[i]);
	memset(s, 0, sizeof(*s));
}

void
ctl_meta_state_destroy(struct ctl_meta_state *s)
{
	if (s == NULL)
		return;
	ctl_meta_state_clear(s);
	free(s);
}

struct ctl_meta_topic *
ctl_meta_topic_find(const struct ctl_meta_state *s, const char *name, size_t len)
{
	for (uint32_t i = 0; i < s->n_topics; i++) {
		if (strlen(s->topics[i]->name) == len && memcmp(s->topics[i]->name, name, len) == 0)
			return s->topics[i];
	}
	return NULL;
}

struct ctl_meta_topic *
ctl_meta_topic_by_id(const struct ctl_meta_state *s, const uint8_t id[16])
{
	for (uint32_t i = 0; i < s->n_topics; i++) {
		if (memcmp(s->topics[i]->id, id, 16) == 0)
			return s->topics[i];
	}
	return NULL;
}

static void
deleted_add(struct ctl_meta_state *s, const uint8_t id[16])
{
	memcpy(s->deleted[s->deleted_at], id, 16);
	s->deleted_at = (s->deleted_at + 1) % CTL_META_MAX_DELETED;
	if (s->n_deleted < CTL_META_MAX_DELETED)
		s->n_deleted++;
}

bool
ctl_meta_topic_deleted(const struct ctl_meta_state *s, const uint8_t id[16])
{
	for (uint32_t i = 0; i < s->n_deleted; i++) {
		if (memcmp(s->deleted[i], id, 16) == 0)
			return true;
	}
	return false;
}

const struct ctl_meta_broker *
ctl_meta_broker_find(const struct ctl_meta_state *s, int32_t node_id)
{
	for (uint32_t i = 0; i < s->n_brokers; i++) {
		if (s->brokers[i].node_id == node_id)
			return &s->brokers[i];
	}
	return NULL;
}

static int
parts_valid(const struct ctl_meta_part *p, int32_t n)
{
	for (int32_t i = 0; i < n; i++) {
		if (p[i].n_replicas > CTL_META_MAX_REPLICAS)
			return -EDOM;
	}
	return 0;
}

static int
apply_topic(struct ctl_meta_state *s, const struct ctl_meta_rec *r)
{
	struct ctl_meta_topic *t;
	int rc;

	if (r->name.len < 1 || r->name.len > CTL_META_NAME_MAX ||
		memchr(r->name.ptr, '\0', (size_t)r->name.len) != NULL)
		return -EPROTO;
	if (ctl_meta_topic_by_id(s, r->id) != NULL ||
		ctl_meta_topic_find(s, r->name.ptr, (size_t)r->name.len) != NULL)
		return -EEXIST;
	if (r->n_parts < 1 || r->n_parts > CTL_META_MAX_PARTITIONS ||
		parts_valid(r->parts, r->n_parts) < 0)
		return -EDOM;
	if (s->n_topics == CTL_META_MAX_TOPICS)
		return -ENOSPC;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	t->parts = malloc(sizeof(*t->parts) * (size_t)r->n_parts);
	if (t->parts == NULL) {
		topic_free(t);
		return -ENOMEM;
	}
	rc = configs_apply("", true, r->ops, r->n_ops, t->configs);
	if (rc < 0) {
		topic_free(t);
		return rc;
	}
	memcpy(t->id, r->id, 16);
	memcpy(t->name, r->name.ptr, (size_t)r->name.len);
	t->name[r->name.len] = '\0';
	t->n_parts = r->n_parts;
	memcpy(t->parts, r->parts, sizeof(*t->parts) * (size_t)r->n_parts);
	s->topics[s->n_topics++] = t;
	return 0;
}

static int
apply_partitions(struct ctl_meta_state *s, const struct ctl_meta_rec *r)
{
	struct ctl_meta_topic *t = ctl_meta_topic_by_id(s, r->id);
	struct ctl_meta_part *p;

	if (t == NULL)
		return -ENOENT;
	if (r->first != t->n_parts)
		return -ESTALE;
	if (r->n_parts < 1 || r->n_parts > CTL_META_MAX_PARTITIONS - t->n_parts ||
		parts_valid(r->parts, r->n_parts) < 0)
		return -EDOM;
	p = realloc(t->parts, sizeof(*p) * (size_t)(t->n_parts + r->n_parts));
	if (p == NULL)
		return -ENOMEM;
	memcpy(&p[t->n_parts], r->parts, sizeof(*p) * (size_t)r->n_parts);
	t->parts = p;
	t->n_parts += r->n_parts;
	return 0;
}

static int
apply_configs(struct ctl_meta_state *s, const struct ctl_meta_rec *r)
{
	struct ctl_meta_topic *t = ctl_meta_topic_by_id(s, r->id);
	char out[CTL_META_CONFIGS_MAX];
	int rc;

	if (t == NULL)
		return -ENOENT;
	rc = configs_apply(t->configs, r->replace, r->ops, r->n_ops, out);
	if (rc == 0)
		memcpy(t->configs, out, sizeof(out));
	return rc;
}

static int
apply_delete(struct ctl_meta_state *s, const struct ctl_meta_rec *r)
{
	for (uint32_t i = 0; i < s->n_topics; i++) {
		if (memcmp(s->topics[i]->id, r->id, 16) != 0)
			continue;
		deleted_add(s, r->id);
		topic_free(s->topics[i]);
		memmove(&s->topics[i], &s->topics[i + 1],
			sizeof(s->topics[0]) * (s->n_topics - i - 1));
		s->topics[--s->n_topics] = NULL;
		return 0;
	}
	return -ENOENT;
}

static int
apply_broker(struct ctl_meta_state *s, const struct ctl_meta_rec *r)
{
	struct ctl_meta_broker *br = (struct ctl_meta_broker *)ctl_meta_broker_find(s,
		r->broker.node_id);

	if (br == NULL) {
		if (s->n_brokers == CTL_META_MAX_BROKERS)
			return -ENOSPC;
		br = &s->brokers[s->n_brokers++];
	}
	*br = r->broker; /* a registration replaces the broker's earlier one */
	return 0;
}

int
ctl_meta_apply(struct ctl_meta_state *s, const uint8_t *buf, size_t len)
{
	struct ctl_meta_rec r;
	int rc = ctl_meta_rec_decode(buf, len, &r);

	if (rc < 0)
		return rc;
	switch (r.type) {
	case CTL_META_TOPIC:
		rc = apply_topic(s, &r);
		break;
	case CTL_META_PARTITIONS:
		rc = apply_partitions(s, &r);
		break;
	case CTL_META_CONFIGS:
		rc = apply_configs(s, &r);
		break;
	case CTL_META_TOPIC_DELETE:
		rc = apply_delete(s, &r);
		break;
	case CTL_META_BROKER:
		rc = apply_broker(s, &r);
		break;
	case CTL_META_IMPORTED:
		s->imported = true;
		break;
	case CTL_META_DELETED:
		s->n_deleted = 0;
		s->deleted_at = 0;
		for (uint32_t i = 0; i < r.n_ids; i++)
			deleted_add(s, r.ids + 16 * (size_t)i);
		break;
	default:
		rc = -EPROTONOSUPPORT;
	}
	ctl_meta_rec_release(&r);
	if (rc == 0)
		s->applied++;
	return rc;
}

int
ctl_meta_snapshot(const struct ctl_meta_state *s, struct ctl_meta_buf *b)
{
	struct ctl_meta_buf rec = {0};
	size_t start = b->len;

	ctl_meta_batch_begin(b, CTL_META_BATCH_FULL);
	for (uint32_t i = 0; i < s->n_brokers; i++) {
		rec.len = 0;
		ctl_meta_enc_broker(&rec, &s->brokers[i]);
		ctl_meta_batch_add(b, start, rec.p, rec.len);
	}
	for (uint32_t i = 0; i < s->n_topics; i++) {
		rec.len = 0;
		ctl_meta_enc_topic(&rec, s->topics[i]);
		ctl_meta_batch_add(b, start, rec.p, rec.len);
	}
	if (s->imported) {
		rec.len = 0;
		ctl_meta_enc_imported(&rec);
		ctl_meta_batch_add(b, start, rec.p, rec.len);
	}
	if (s->n_deleted > 0) {
		rec.len = 0;
		ctl_meta_enc_deleted(&rec, s);
		ctl_meta_batch_add(b, start, rec.p, rec.len);
	}
	if (rec.err && b->err == 0)
		b->err = rec.err;
	ctl_meta_buf_free(&rec);
	return b->err ? (b->err == -ENOMEM ? -ENOMEM : -EPROTO) : 0;
}

int
ctl_meta_restore(struct ctl_meta_state *s, const uint8_t *buf, size_t len)
{
	struct ctl_meta_state *n;
	enum ctl_meta_batch_kind kind;
	int64_t count = ctl_meta_batch_check(buf, len, &kind);
	const uint8_t *rec;
	size_t rec_len;
	size_t off = 0;
	int rc = 0;

	if (count < 0)
		return (int)count;
	if (kind != CTL_META_BATCH_FULL)
		return -EPROTO;
	n = ctl_meta_state_create();
	if (n == NULL)
		return -ENOMEM;
	while (rc == 0 && ctl_meta_batch_next(buf, len, &off, &rec, &rec_len) == 1)
		rc = ctl_meta_apply(n, rec, rec_len);
	if (rc == 0) {
		ctl_meta_state_clear(s);
		*s = *n;
		s->applied = 0;
		free(n);
	} else {
		ctl_meta_state_destroy(n);
	}
	return rc;
}
