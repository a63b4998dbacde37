/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parsing of the storage keys of server.properties and topic configs into a
 * struct stor_log_config (see stor_config.h for the names and defaults).
 */
#include "stor_config.h"

#include "stor_format.h"

#include <errno.h>
#include <inttypes.h>
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
}

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
	if (strcmp(key, "storage.log.max.pending") == 0) {
		rc = parse_i64(value, &x);
		if (rc != 0 || x < 1 || x > (1 << 20))
			return -EINVAL;
		cfg->max_pending = (uint32_t)x;
		return 0;
	}
	return -ENOENT;
}
