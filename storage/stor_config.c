/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parsing of the storage keys of server.properties and topic configs into a
 * struct stor_log_config (see stor_config.h for the names and defaults).
 */
#include "stor_config.h"

#include "stor_format.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
stor_log_config_init(struct stor_log_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->segment_bytes = 1ull << 30;
	cfg->roll_ms = 7ll * 24 * 3600 * 1000;
	cfg->retention_ms = 7ll * 24 * 3600 * 1000;
	cfg->retention_bytes = -1;
	cfg->flush_messages = INT64_MAX;
	cfg->flush_ms = INT64_MAX;
	cfg->index_interval_bytes = 4096;
	cfg->cleanup_policy = STOR_CLEANUP_DELETE;
	cfg->delete_retention_ms = 24ll * 3600 * 1000;
	cfg->preallocate = true;
	cfg->preallocate_bytes = STOR_PREALLOCATE_BYTES_DEFAULT;
	cfg->fsync_acks_all = false;
	cfg->max_pending = 4096;
	cfg->segment_recycle = 1;
	cfg->max_message_bytes = 1048588;
	cfg->log_append_time = false;
	cfg->ts_before_max_ms = INT64_MAX;
	cfg->ts_after_max_ms = INT64_MAX;
	cfg->ts_difference_max_ms = INT64_MAX;
	cfg->min_insync_replicas = 1;
	cfg->compression = STOR_COMPRESSION_PRODUCER;
}

/* compression.type's values, by codec wire id (then "producer"). */
static const char *const compression_names[] = {"uncompressed", "gzip", "snappy", "lz4", "zstd"};

static int
parse_i64(const char *v, int64_t *out)
{
	char *end;

	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0')
		return -EINVAL;
	*out = x;
	return 0;
}

static int
parse_bool(const char *v, bool *out)
{
	if (strcmp(v, "true") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(v, "false") == 0) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

/* Strip an optional "log." prefix and an optional "log." that Kafka puts in the broker names. */
static const char *
topic_name(const char *key)
{
	if (strncmp(key, "log.", 4) == 0)
		return key + 4;
	return key;
}

static int
set_scaled(int64_t *dst, const char *value, int64_t scale)
{
	int64_t x;
	int rc = parse_i64(value, &x);

	if (rc != 0)
		return rc;
	if (x < 0) {
		*dst = -1;
		return 0;
	}
	if (x > INT64_MAX / scale)
		return -EINVAL;
	*dst = x * scale;
	return 0;
}

static int
set_nonneg(int64_t *dst, const char *value)
{
	int64_t x;
	int rc = parse_i64(value, &x);

	if (rc != 0 || x < 0)
		return -EINVAL;
	*dst = x;
	return 0;
}

int
stor_log_config_set(struct stor_log_config *cfg, const char *key, const char *value)
{
	const char *k = topic_name(key);
	int64_t x;
	int rc;

	if (strcmp(k, "segment.bytes") == 0) {
		rc = parse_i64(value, &x);
		if (rc != 0 || x < 14)
			return -EINVAL;
		cfg->segment_bytes = (uint64_t)x;
		return 0;
	}
	if (strcmp(k, "roll.ms") == 0 || strcmp(key, "segment.ms") == 0)
		return set_scaled(&cfg->roll_ms, value, 1);
	if (strcmp(k, "roll.hours") == 0)
		return set_scaled(&cfg->roll_ms, value, 3600ll * 1000);
	if (strcmp(k, "retention.ms") == 0)
		return set_scaled(&cfg->retention_ms, value, 1);
	if (strcmp(k, "retention.minutes") == 0)
		return set_scaled(&cfg->retention_ms, value, 60ll * 1000);
	if (strcmp(k, "retention.hours") == 0)
		return set_scaled(&cfg->retention_ms, value, 3600ll * 1000);
	if (strcmp(k, "retention.bytes") == 0)
		return set_scaled(&cfg->retention_bytes, value, 1);
	if (strcmp(k, "flush.messages") == 0 || strcmp(k, "flush.interval.messages") == 0) {
		rc = parse_i64(value, &x);
		if (rc != 0 || x < 1)
			return -EINVAL;
		cfg->flush_messages = x;
		return 0;
	}
	if (strcmp(k, "flush.ms") == 0 || strcmp(k, "flush.interval.ms") == 0) {
		rc = parse_i64(value, &x);
		if (rc != 0 || x < 0)
			return -EINVAL;
		cfg->flush_ms = x;
		return 0;
	}
	if (strcmp(k, "index.interval.bytes") == 0) {
		rc = parse_i64(value, &x);
		if (rc != 0 || x < 0 || x > INT32_MAX)
			return -EINVAL;
		cfg->index_interval_bytes = (uint32_t)x;
		return 0;
	}
	if (strcmp(k, "cleanup.policy") == 0) {
		uint32_t p = 0;
		if (strstr(value, "delete") != NULL)
			p |= STOR_CLEANUP_DELETE;
		if (strstr(value, "compact") != NULL)
			p |= STOR_CLEANUP_COMPACT;
		if (p == 0)
			return -EINVAL;
		cfg->cleanup_policy = p;
		return 0;
	}
	if (strcmp(k, "delete.retention.ms") == 0 || strcmp(k, "cleaner.delete.retention.ms") == 0)
		return set_scaled(&cfg->delete_retention_ms, value, 1);
	if (strcmp(k, "preallocate") == 0)
		return parse_bool(value, &cfg->preallocate);
	if (strcmp(key, "storage.preallocate.bytes") == 0) {
		rc = parse_i64(value, &x);
		if (rc != 0 || x < 0 || x > INT32_MAX || x % STOR_BLOCK_SIZE != 0)
			return -EINVAL;
		cfg->preallocate_bytes = (uint64_t)x;
		return 0;
	}
	if (strcmp(key, "storage.fsync.acks.all") == 0)
		return parse_bool(value, &cfg->fsync_acks_all);
	if (strcmp(key, "storage.segment.recycle") == 0) {
		rc = parse_i64(value, &x);
		if (rc != 0 || x < 0 || x > STOR_RECYCLE_MAX)
			return -EINVAL;
		cfg->segment_recycle = (uint32_t)x;
		return 0;
	}
	if (strcmp(k, "max.message.bytes") == 0 || strcmp(key, "message.max.bytes") == 0) {
		rc = parse_i64(value, &x);
		if (rc != 0 || x < 0 || x > INT32_MAX)
			return -EINVAL;
		cfg->max_message_bytes = x;
		return 0;
	}
	if (strcmp(k, "message.timestamp.type") == 0) {
		if (strcmp(value, "CreateTime") != 0 && strcmp(value, "LogAppendTime") != 0)
			return -EINVAL;
		cfg->log_append_time = value[0] == 'L';
		return 0;
	}
	if (strcmp(k, "message.timestamp.before.max.ms") == 0)
		return set_nonneg(&cfg->ts_before_max_ms, value);
	if (strcmp(k, "message.timestamp.after.max.ms") == 0)
		return set_nonneg(&cfg->ts_after_max_ms, value);
	if (strcmp(k, "message.timestamp.difference.max.ms") == 0)
		return set_nonneg(&cfg->ts_difference_max_ms, value);
	if (strcmp(k, "compression.type") == 0) {
		if (strcmp(value, "producer") == 0) {
			cfg->compression = STOR_COMPRESSION_PRODUCER;
			return 0;
		}
		for (int8_t i = 0; i < (int8_t)(sizeof(compression_names) / sizeof(compression_names[0]));
		     i++) {
			if (strcmp(value, compression_names[i]) == 0) {
				cfg->compression = i;
				return 0;
			}
		}
		return -EINVAL;
	}
	if (strcmp(k, "min.insync.replicas") == 0) {
		rc = parse_i64(value, &x);
		if (rc != 0 || x < 1 || x > INT32_MAX)
			return -EINVAL;
		cfg->min_insync_replicas = (int32_t)x;
		return 0;
	}
	if (strcmp(key, "storage.log.max.pending") == 0) {
		rc = parse_i64(value, &x);
		if (rc != 0 || x < 1 || x > (1 << 20))
			return -EINVAL;
		cfg->max_pending = (uint32_t)x;
		return 0;
	}
	return -ENOENT;
}

const struct stor_topic_key stor_topic_keys[STOR_TOPIC_KEYS_MAX] = {
	{"segment.bytes", STOR_CFG_INT},
	{"segment.ms", STOR_CFG_LONG},
	{"retention.ms", STOR_CFG_LONG},
	{"retention.bytes", STOR_CFG_LONG},
	{"flush.messages", STOR_CFG_LONG},
	{"flush.ms", STOR_CFG_LONG},
	{"index.interval.bytes", STOR_CFG_INT},
	{"cleanup.policy", STOR_CFG_LIST},
	{"delete.retention.ms", STOR_CFG_LONG},
	{"preallocate", STOR_CFG_BOOLEAN},
	{"max.message.bytes", STOR_CFG_INT},
	{"message.timestamp.type", STOR_CFG_STRING},
	{"message.timestamp.before.max.ms", STOR_CFG_LONG},
	{"message.timestamp.after.max.ms", STOR_CFG_LONG},
	{"message.timestamp.difference.max.ms", STOR_CFG_LONG},
	{"min.insync.replicas", STOR_CFG_INT},
	{"compression.type", STOR_CFG_STRING},
};
const unsigned stor_topic_keys_n = sizeof(stor_topic_keys) / sizeof(stor_topic_keys[0]);
_Static_assert(sizeof(stor_topic_keys) / sizeof(stor_topic_keys[0]) == STOR_TOPIC_KEYS_MAX,
               "STOR_TOPIC_KEYS_MAX is the number of topic keys");

int
stor_topic_key_find(const char *name, size_t len)
{
	for (unsigned i = 0; i < stor_topic_keys_n; i++) {
		if (strlen(stor_topic_keys[i].name) == len &&
		    memcmp(stor_topic_keys[i].name, name, len) == 0)
			return (int)i;
	}
	return -1;
}

void
stor_log_config_get(const struct stor_log_config *c, unsigned k, char *out, size_t cap)
{
	const char *name = k < stor_topic_keys_n ? stor_topic_keys[k].name : "";
	int64_t v;

	if (strcmp(name, "cleanup.policy") == 0) {
		snprintf(out, cap, "%s%s%s", (c->cleanup_policy & STOR_CLEANUP_COMPACT) ? "compact" : "",
		         c->cleanup_policy == (STOR_CLEANUP_COMPACT | STOR_CLEANUP_DELETE) ? "," : "",
		         (c->cleanup_policy & STOR_CLEANUP_DELETE) ? "delete" : "");
		return;
	}
	if (strcmp(name, "preallocate") == 0) {
		snprintf(out, cap, "%s", c->preallocate ? "true" : "false");
		return;
	}
	if (strcmp(name, "compression.type") == 0) {
		snprintf(out, cap, "%s", c->compression == STOR_COMPRESSION_PRODUCER
		                                 ? "producer" : compression_names[c->compression]);
		return;
	}
	if (strcmp(name, "message.timestamp.type") == 0) {
		snprintf(out, cap, "%s", c->log_append_time ? "LogAppendTime" : "CreateTime");
		return;
	}
	if (strcmp(name, "segment.bytes") == 0)
		v = (int64_t)c->segment_bytes;
	else if (strcmp(name, "segment.ms") == 0)
		v = c->roll_ms;
	else if (strcmp(name, "retention.ms") == 0)
		v = c->retention_ms;
	else if (strcmp(name, "retention.bytes") == 0)
		v = c->retention_bytes;
	else if (strcmp(name, "flush.messages") == 0)
		v = c->flush_messages;
	else if (strcmp(name, "flush.ms") == 0)
		v = c->flush_ms;
	else if (strcmp(name, "index.interval.bytes") == 0)
		v = c->index_interval_bytes;
	else if (strcmp(name, "delete.retention.ms") == 0)
		v = c->delete_retention_ms;
	else if (strcmp(name, "max.message.bytes") == 0)
		v = c->max_message_bytes;
	else if (strcmp(name, "message.timestamp.before.max.ms") == 0)
		v = c->ts_before_max_ms;
	else if (strcmp(name, "message.timestamp.after.max.ms") == 0)
		v = c->ts_after_max_ms;
	else if (strcmp(name, "message.timestamp.difference.max.ms") == 0)
		v = c->ts_difference_max_ms;
	else if (strcmp(name, "min.insync.replicas") == 0)
		v = c->min_insync_replicas;
	else
		v = 0;
	snprintf(out, cap, "%" PRId64, v);
}

/* Is @item (@n bytes) one of the comma list @list's values? */
static bool
list_has(const char *list, const char *item, size_t n)
{
	for (const char *p = list; *p != '\0';) {
		size_t l = strcspn(p, ",");

		if (l == n && memcmp(p, item, n) == 0)
			return true;
		p += l + (p[l] == ',');
	}
	return false;
}

/* Append @item (@n bytes) to the comma list in @out (@used bytes so far). */
static int
list_add(char *out, size_t cap, size_t *used, const char *item, size_t n)
{
	if (n == 0 || list_has(out, item, n))
		return 0;
	if (*used + (*used != 0) + n + 1 > cap)
		return -ENOBUFS;
	if (*used != 0)
		out[(*used)++] = ',';
	memcpy(out + *used, item, n);
	*used += n;
	out[*used] = '\0';
	return 0;
}

int
stor_topic_list_op(unsigned k, const char *cur, const char *value, size_t vlen, bool append,
                   char *out, size_t cap)
{
	char def[64];
	char add[256];
	size_t used = 0;
	int rc;

	if (k >= stor_topic_keys_n || stor_topic_keys[k].type != STOR_CFG_LIST || cap == 0 ||
	    vlen >= sizeof(add))
		return -EINVAL;
	if (cur == NULL) {
		struct stor_log_config d;

		stor_log_config_init(&d);
		stor_log_config_get(&d, k, def, sizeof(def));
		cur = def;
	}
	memcpy(add, value, vlen);
	add[vlen] = '\0';
	out[0] = '\0';
	for (const char *p = cur; *p != '\0';) {
		size_t l = strcspn(p, ",");

		if (append || !list_has(add, p, l)) {
			rc = list_add(out, cap, &used, p, l);
			if (rc != 0)
				return rc;
		}
		p += l + (p[l] == ',');
	}
	for (const char *p = add; append && *p != '\0';) {
		size_t l = strcspn(p, ",");

		rc = list_add(out, cap, &used, p, l);
		if (rc != 0)
			return rc;
		p += l + (p[l] == ',');
	}
	return used == 0 ? -EINVAL : 0;
}
