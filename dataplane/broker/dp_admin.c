/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_admin: the admin request handlers: CreateTopics, DeleteTopics,
 * CreatePartitions, DescribeConfigs, AlterConfigs and
 * IncrementalAlterConfigs, DescribeCluster, DeleteRecords, DescribeLogDirs
 * and OffsetForLeaderEpoch; part of the request handlers
 * (dp_requests_int.h).
 */
#include "dp_requests_int.h"
#include "dp_requests.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <rte_cycles.h>
#include <rte_lcore.h>

#include "dp_log.h"
#include "kp_api.h"
#include "kp_batch.h"
#include "kp_error.h"
#include "net_kernel.h"
#include "stor_log.h"

static int16_t
create_error(int rc, const char **msg)
{
	switch (rc) {
	case 0:
		*msg = NULL;
		return KP_ERR_NONE;
	case -EEXIST:
		*msg = "Topic already exists.";
		return KP_ERR_TOPIC_ALREADY_EXISTS;
	case -EINVAL:
		*msg = "Topic name is illegal.";
		return KP_ERR_INVALID_TOPIC_EXCEPTION;
	case -EDOM:
		*msg = "Number of partitions must be between 1 and 16384.";
		return KP_ERR_INVALID_PARTITIONS;
	case -EBADR:
		*msg = "Invalid or unsupported topic config.";
		return KP_ERR_INVALID_CONFIG;
	default:
		*msg = "Topic could not be created (see the broker log).";
		return KP_ERR_UNKNOWN_SERVER_ERROR;
	}
}

/*
 * "k=v\nk=v" from the request's configs into @out. -EBADR when unrepresentable
 * or not a topic key (a broker name such as log.segment.bytes included:
 * Kafka's INVALID_CONFIG).
 */
static int
configs_join(const struct kp_create_topics_request_creatable_topic *ct, char *out, size_t cap)
{
	size_t used = 0;

	out[0] = '\0';
	for (int32_t i = 0; i < ct->configs.count; i++) {
		const struct kp_create_topics_request_creatable_topic_config *c =
			&ct->configs.items[i];

		if (c->name.len <= 0 || c->value.len < 0 ||
			used + (size_t)c->name.len + (size_t)c->value.len + 3 > cap ||
			memchr(c->name.ptr, ' ', (size_t)c->name.len) != NULL ||
			memchr(c->value.ptr, ' ', (size_t)c->value.len) != NULL ||
			memchr(c->name.ptr, '\n', (size_t)c->name.len) != NULL ||
			memchr(c->value.ptr, '\n', (size_t)c->value.len) != NULL ||
			memchr(c->name.ptr, '=', (size_t)c->name.len) != NULL ||
			stor_topic_key_find(c->name.ptr, (size_t)c->name.len) < 0)
			return -EBADR;
		used += (size_t)snprintf(out + used, cap - used, "%s%.*s=%.*s", used ? "\n" : "",
			c->name.len, c->name.ptr, c->value.len, c->value.ptr);
	}
	return 0;
}

/* kp_assignment_check's broker registry: this broker is the only one. */
static bool
is_this_node(void *arg, int32_t id)
{
	const struct dp_broker *b = arg;

	return id == b->node_id;
}

int
dp_req_create_topics(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r)
{
	struct dp_broker *b = q->b;
	struct kp_arena *a = &q->arena;
	struct kp_create_topics_request m;
	struct kp_create_topics_response resp;
	struct kp_create_topics_response_creatable_topic_result *res;
	char configs[DP_BROKER_CONFIGS_MAX];
	uint8_t *buf;
	int rc;

	rc = dp_req_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	res = kp_arena_alloc(a, sizeof(*res) * (size_t)(m.topics.count > 0 ? m.topics.count : 1),
		8);
	if (res == NULL) {
		dp_conn_resp_free(conn->env->resp_pool, buf);
		dp_req_close_log(conn, "arena too small for a", h, -ENOMEM);
		return -ENOMEM;
	}
	for (int32_t i = 0; i < m.topics.count; i++) {
		const struct kp_create_topics_request_creatable_topic *ct = &m.topics.items[i];
		int32_t parts = ct->num_partitions == -1 ? b->num_partitions : ct->num_partitions;
		struct dp_topic *t = NULL;
		const char *msg;
		bool dup = false;

		for (int32_t j = 0; j < i; j++) {
			if (m.topics.items[j].name.len == ct->name.len &&
				memcmp(m.topics.items[j].name.ptr, ct->name.ptr,
					(size_t)ct->name.len) == 0)
				dup = true;
		}
		kp_create_topics_response_creatable_topic_result_init(&res[i]);
		res[i].name = ct->name;
		if (dup) {
			res[i].error_code = KP_ERR_INVALID_REQUEST;
			res[i].error_message = dp_req_str("Duplicate topic in the request.");
			continue;
		}
		if (ct->assignments.count > 0) {
			/* Manual assignments: every replica list is this broker alone. */
			uint8_t *seen = kp_arena_alloc(a, (size_t)ct->assignments.count, 1);

			msg = seen == NULL ? "Out of memory." :
				kp_create_topic_assignments_check(ct, is_this_node, b, seen,
					&res[i].error_code);
			if (seen == NULL)
				res[i].error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
			if (msg != NULL) {
				res[i].error_message = dp_req_str(msg);
				continue;
			}
			parts = ct->assignments.count;
		} else if (ct->replication_factor != -1 && ct->replication_factor != 1) {
			res[i].error_code = KP_ERR_INVALID_REPLICATION_FACTOR;
			res[i].error_message =
				dp_req_str("Replication factor must be 1 (a single broker).");
			continue;
		}
		rc = configs_join(ct, configs, sizeof(configs));
		if (rc == 0 && m.validate_only)
			rc = dp_broker_topic_check(b, ct->name.ptr, (size_t)ct->name.len, parts,
				configs);
		else if (rc == 0)
			rc = dp_broker_topic_create(b, ct->name.ptr, (size_t)ct->name.len, parts,
				configs, &t);
		res[i].error_code = create_error(rc, &msg);
		if (msg != NULL)
			res[i].error_message = dp_req_str(msg);
		if (rc == 0) {
			res[i].num_partitions = parts;
			res[i].replication_factor = 1;
			if (t != NULL)
				memcpy(res[i].topic_id.b, t->id, 16);
		}
	}
	kp_create_topics_response_init(&resp);
	resp.topics.items = res;
	resp.topics.count = m.topics.count;
	return dp_req_reply(conn, req, h, buf, &resp);
}

/* ---- DeleteTopics, CreatePartitions ----------------------------------------------------- */

int
dp_req_delete_topics(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
              const struct kp_request_header *h, struct kp_reader *r)
{
	struct dp_broker *b = q->b;
	struct kp_arena *a = &q->arena;
	int16_t v = h->request_api_version;
	struct kp_delete_topics_request m;
	struct kp_delete_topics_response resp;
	struct kp_delete_topics_response_deletable_topic_result *res;
	int32_t n;
	uint8_t *buf;
	int rc;

	rc = dp_req_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	n = v >= 6 ? m.topics.count : m.topic_names.count;
	if (n < 0)
		n = 0;
	res = kp_arena_alloc(a, sizeof(*res) * (size_t)(n > 0 ? n : 1), 8);
	if (res == NULL) {
		dp_conn_resp_free(conn->env->resp_pool, buf);
		dp_req_close_log(conn, "arena too small for a", h, -ENOMEM);
		return -ENOMEM;
	}
	dp_fetch_drain(q);
	for (int32_t i = 0; i < n; i++) {
		struct dp_topic *t;
		struct kp_str name;

		kp_delete_topics_response_deletable_topic_result_init(&res[i]);
		res[i].error_message = dp_req_str_null();
		if (!q->cfg->delete_topic_enable) {
			if (v >= 6)
				res[i].topic_id = m.topics.items[i].topic_id;
			res[i].name = v >= 6 ? m.topics.items[i].name : m.topic_names.items[i];
			res[i].error_code = kp_error_topic_deletion_disabled(v);
			continue;
		}
		if (v >= 6 && m.topics.items[i].name.len < 0) {
			res[i].topic_id = m.topics.items[i].topic_id;
			res[i].name = (struct kp_str){.ptr = NULL, .len = -1};
			t = dp_req_topic_by_id(b, &m.topics.items[i].topic_id);
			if (t == NULL) {
				res[i].error_code = KP_ERR_UNKNOWN_TOPIC_ID;
				continue;
			}
		} else {
			name = v >= 6 ? m.topics.items[i].name : m.topic_names.items[i];
			res[i].name = name;
			t = dp_broker_topic_find(b, name.ptr, (size_t)name.len);
			if (t == NULL) {
				res[i].error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				continue;
			}
		}
		/* The topic is freed: keep its name and id in the arena for the answer. */
		name.len = (int32_t)strlen(t->name);
		name.ptr = kp_arena_alloc(a, (size_t)name.len + 1, 1);
		if (name.ptr == NULL) {
			res[i].error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
			continue;
		}
		memcpy((char *)name.ptr, t->name, (size_t)name.len + 1);
		res[i].name = name;
		memcpy(res[i].topic_id.b, t->id, 16);
		rc = dp_broker_topic_delete(b, t);
		if (rc < 0) {
			res[i].error_code = KP_ERR_KAFKA_STORAGE_ERROR;
			res[i].error_message = dp_req_str("Topic table could not be written.");
		}
	}
	kp_delete_topics_response_init(&resp);
	resp.responses.items = res;
	resp.responses.count = n;
	return dp_req_reply(conn, req, h, buf, &resp);
}

int
dp_req_create_partitions(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
                  const struct kp_request_header *h, struct kp_reader *r)
{
	struct dp_broker *b = q->b;
	struct kp_arena *a = &q->arena;
	struct kp_create_partitions_request m;
	struct kp_create_partitions_response resp;
	struct kp_create_partitions_response_create_partitions_topic_result *res;
	int32_t n;
	uint8_t *buf;
	int rc;

	rc = dp_req_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	n = m.topics.count > 0 ? m.topics.count : 0;
	res = kp_arena_alloc(a, sizeof(*res) * (size_t)(n > 0 ? n : 1), 8);
	if (res == NULL) {
		dp_conn_resp_free(conn->env->resp_pool, buf);
		dp_req_close_log(conn, "arena too small for a", h, -ENOMEM);
		return -ENOMEM;
	}
	for (int32_t i = 0; i < n; i++) {
		const struct kp_create_partitions_request_create_partitions_topic *ct =
		        &m.topics.items[i];
		struct dp_topic *t = dp_broker_topic_find(b, ct->name.ptr, (size_t)ct->name.len);
		bool dup = false;

		for (int32_t j = 0; j < i; j++) {
			if (m.topics.items[j].name.len == ct->name.len &&
			    memcmp(m.topics.items[j].name.ptr, ct->name.ptr,
			           (size_t)ct->name.len) == 0)
				dup = true;
		}
		kp_create_partitions_response_create_partitions_topic_result_init(&res[i]);
		res[i].error_message = dp_req_str_null();
		res[i].name = ct->name;
		if (dup) {
			res[i].error_code = KP_ERR_INVALID_REQUEST;
			res[i].error_message = dp_req_str("Duplicate topic in the request.");
			continue;
		}
		if (t == NULL) {
			res[i].error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
			res[i].error_message = dp_req_str("Unknown topic.");
			continue;
		}
		if (ct->assignments.count > 0 && ct->count > t->partitions) {
			/* Manual assignments of the new partitions: this broker alone each. */
			const char *msg = ct->count - t->partitions != ct->assignments.count ?
				"The number of assignments is not the number of partitions added." :
				NULL;
			int32_t rf = 0;

			for (int32_t k = 0; msg == NULL && k < ct->assignments.count; k++)
				msg = kp_assignment_check(&ct->assignments.items[k].broker_ids,
					is_this_node, b, &rf);
			if (msg != NULL) {
				res[i].error_code = KP_ERR_INVALID_REPLICA_ASSIGNMENT;
				res[i].error_message = dp_req_str(msg);
				continue;
			}
		}
		rc = dp_broker_partitions_add(b, t, ct->count, m.validate_only);
		if (rc == -EDOM) {
			res[i].error_code = KP_ERR_INVALID_PARTITIONS;
			res[i].error_message =
			        dp_req_str(ct->count <= t->partitions
			                     ? "Number of partitions can only be increased."
			                     : "Number of partitions must be at most 16384.");
		} else if (rc < 0) {
			res[i].error_code = KP_ERR_KAFKA_STORAGE_ERROR;
			res[i].error_message = dp_req_str("Partitions could not be added (broker log).");
		}
	}
	kp_create_partitions_response_init(&resp);
	resp.results.items = res;
	resp.results.count = n;
	return dp_req_reply(conn, req, h, buf, &resp);
}

/* ---- DescribeConfigs, AlterConfigs, IncrementalAlterConfigs ------------------------------ */

#define RES_TOPIC 2
#define RES_BROKER 4
#define SRC_TOPIC 1   /* DYNAMIC_TOPIC_CONFIG */
#define SRC_STATIC 4  /* STATIC_BROKER_CONFIG */
#define SRC_DEFAULT 5 /* DEFAULT_CONFIG */

/* Is @key set in the topic's "k=v\nk=v" configs? */
static bool
topic_config_has(const struct dp_topic *t, const char *key)
{
	size_t n = strlen(key);

	for (const char *c = t->configs; *c != '\0';) {
		const char *nl = strchr(c, '\n');

		if (strncmp(c, key, n) == 0 && c[n] == '=')
			return true;
		if (nl == NULL)
			break;
		c = nl + 1;
	}
	return false;
}

static char *
arena_strdup(struct kp_arena *a, const char *s, size_t n)
{
	char *p = kp_arena_alloc(a, n + 1, 1);

	if (p != NULL) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static bool
key_wanted(const struct kp_array_str *keys, const char *name)
{
	if (keys->count < 0)
		return true;
	for (int32_t i = 0; i < keys->count; i++) {
		if ((size_t)keys->items[i].len == strlen(name) &&
		    memcmp(keys->items[i].ptr, name, strlen(name)) == 0)
			return true;
	}
	return false;
}

static int
describe_topic(struct dp_requests *q, const struct dp_topic *t, const struct kp_array_str *keys,
               struct kp_describe_configs_response_describe_configs_result *res)
{
	struct kp_arena *a = &q->arena;
	struct stor_log_config c;
	struct kp_describe_configs_response_describe_configs_resource_result *e =
	        kp_arena_alloc(a, sizeof(*e) * stor_topic_keys_n, 8);
	int32_t n = 0;

	if (e == NULL)
		return -ENOMEM;
	if (dp_broker_topic_log_config(q->b, t, &c) < 0)
		return -EBADR;
	for (unsigned k = 0; k < stor_topic_keys_n; k++) {
		char val[64];
		char *v;
		bool set = topic_config_has(t, stor_topic_keys[k].name);

		if (!key_wanted(keys, stor_topic_keys[k].name))
			continue;
		stor_log_config_get(&c, k, val, sizeof(val));
		v = arena_strdup(a, val, strlen(val));
		if (v == NULL)
			return -ENOMEM;
		kp_describe_configs_response_describe_configs_resource_result_init(&e[n]);
		e[n].name = dp_req_str(stor_topic_keys[k].name);
		e[n].value = dp_req_str(v);
		e[n].read_only = false;
		e[n].is_default = !set;
		e[n].config_source = set ? SRC_TOPIC : SRC_DEFAULT;
		e[n].is_sensitive = false;
		e[n].config_type = (int8_t)stor_topic_keys[k].type;
		e[n].documentation = (struct kp_str){.ptr = NULL, .len = -1};
		n++;
	}
	res->configs.items = e;
	res->configs.count = n;
	return 0;
}

/*
 * The broker resource: every dataplane key with its effective value, from
 * dp_config_print() (set or derived: STATIC_BROKER_CONFIG, else
 * DEFAULT_CONFIG), all read-only. Allocates (a memory stream): admin path.
 */
static int
describe_broker(struct dp_requests *q, const struct kp_array_str *keys,
                struct kp_describe_configs_response_describe_configs_result *res)
{
	struct kp_arena *a = &q->arena;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int32_t n = 0;
	int32_t cap = 0;
	int8_t src = SRC_STATIC;
	struct kp_describe_configs_response_describe_configs_resource_result *e;
	int rc = 0;

	if (f == NULL)
		return -ENOMEM;
	dp_config_print(q->cfg, f);
	fclose(f);
	for (size_t i = 0; i < len; i++)
		cap += text[i] == '\n';
	e = kp_arena_alloc(a, sizeof(*e) * (size_t)(cap > 0 ? cap : 1), 8);
	if (e == NULL) {
		free(text);
		return -ENOMEM;
	}
	for (char *line = text; line != NULL && *line != '\0';) {
		char *nl = strchr(line, '\n');
		char *eq;

		if (nl != NULL)
			*nl = '\0';
		if (strcmp(line, "# Defaults:") == 0)
			src = SRC_DEFAULT;
		eq = strchr(line, '=');
		if (line[0] != '#' && eq != NULL) {
			char *name = arena_strdup(a, line, (size_t)(eq - line));
			char *val = arena_strdup(a, eq + 1, strlen(eq + 1));

			if (name == NULL || val == NULL) {
				rc = -ENOMEM;
				break;
			}
			if (key_wanted(keys, name)) {
				kp_describe_configs_response_describe_configs_resource_result_init(
				        &e[n]);
				e[n].name = dp_req_str(name);
				e[n].value = dp_req_str(val);
				e[n].read_only = true;
				e[n].is_default = src == SRC_DEFAULT;
				e[n].config_source = src;
				e[n].is_sensitive = false;
				e[n].config_type = dp_config_key_kafka_type(name);
				e[n].documentation = (struct kp_str){.ptr = NULL, .len = -1};
				n++;
			}
		}
		line = nl != NULL ? nl + 1 : NULL;
	}
	free(text);
	res->configs.items = e;
	res->configs.count = n;
	return rc;
}

static bool
broker_name_ok(struct dp_requests *q, struct kp_str name)
{
	char id[16];

	snprintf(id, sizeof(id), "%" PRId32, q->b->node_id);
	return name.len == 0 ||
	       ((size_t)name.len == strlen(id) && memcmp(name.ptr, id, (size_t)name.len) == 0);
}

int
dp_req_describe_configs(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
                 const struct kp_request_header *h, struct kp_reader *r)
{
	struct kp_arena *a = &q->arena;
	struct kp_describe_configs_request m;
	struct kp_describe_configs_response resp;
	struct kp_describe_configs_response_describe_configs_result *res;
	int32_t n;
	uint8_t *buf;
	int rc;

	rc = dp_req_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	n = m.resources.count > 0 ? m.resources.count : 0;
	res = kp_arena_alloc(a, sizeof(*res) * (size_t)(n > 0 ? n : 1), 8);
	if (res == NULL)
		goto nomem;
	for (int32_t i = 0; i < n; i++) {
		const struct kp_describe_configs_request_describe_configs_resource *rr =
		        &m.resources.items[i];
		struct dp_topic *t;

		kp_describe_configs_response_describe_configs_result_init(&res[i]);
		res[i].error_message = dp_req_str_null();
		res[i].resource_type = rr->resource_type;
		res[i].resource_name = rr->resource_name;
		res[i].configs.count = 0;
		if (rr->resource_type == RES_TOPIC) {
			t = dp_broker_topic_find(q->b, rr->resource_name.ptr,
			                         (size_t)rr->resource_name.len);
			if (t == NULL) {
				res[i].error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				res[i].error_message = dp_req_str("Unknown topic.");
				continue;
			}
			rc = describe_topic(q, t, &rr->configuration_keys, &res[i]);
		} else if (rr->resource_type == RES_BROKER &&
		           broker_name_ok(q, rr->resource_name)) {
			rc = describe_broker(q, &rr->configuration_keys, &res[i]);
		} else {
			res[i].error_code = KP_ERR_INVALID_REQUEST;
			res[i].error_message = dp_req_str("Unsupported resource type or unknown broker.");
			continue;
		}
		if (rc == -ENOMEM)
			goto nomem;
		if (rc < 0) {
			res[i].error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
			res[i].configs.count = 0;
		}
	}
	kp_describe_configs_response_init(&resp);
	resp.results.items = res;
	resp.results.count = n;
	return dp_req_reply(conn, req, h, buf, &resp);
nomem:
	return dp_req_nomem(conn, h, buf);
}

/* One config change of an (Incremental)AlterConfigs resource. */
struct cfg_op {
	struct kp_str name;
	struct kp_str value; /* len -1: null */
	int8_t op;           /* 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT */
};

/*
 * Apply @ops to @t's configs (@replace: AlterConfigs, the ops are the whole
 * new set) and hand the result to dp_broker_topic_configs_set().
 * @return a Kafka error code; *msg set with it.
 */
static int16_t
topic_configs_alter(struct dp_requests *q, struct dp_topic *t, const struct cfg_op *ops,
                    int32_t n_ops, bool replace, bool validate_only, const char **msg)
{
	char vals[STOR_TOPIC_KEYS_MAX][DP_BROKER_CONFIGS_MAX / 4];
	bool set[STOR_TOPIC_KEYS_MAX] = {false};
	char out[DP_BROKER_CONFIGS_MAX];
	size_t used = 0;
	int rc;

	*msg = NULL;
	/* The current configs (unless replaced); only stor_topic_keys[] names are kept. */
	for (unsigned k = 0; !replace && k < stor_topic_keys_n; k++) {
		const char *c = t->configs;
		size_t kl = strlen(stor_topic_keys[k].name);

		while (c != NULL && *c != '\0') {
			const char *nl = strchr(c, '\n');
			size_t ll = nl != NULL ? (size_t)(nl - c) : strlen(c);

			if (ll > kl && strncmp(c, stor_topic_keys[k].name, kl) == 0 && c[kl] == '=' &&
			    ll - kl - 1 < sizeof(vals[k])) {
				memcpy(vals[k], c + kl + 1, ll - kl - 1);
				vals[k][ll - kl - 1] = '\0';
				set[k] = true;
			}
			c = nl != NULL ? nl + 1 : NULL;
		}
	}
	for (int32_t i = 0; i < n_ops; i++) {
		int k = stor_topic_key_find(ops[i].name.ptr,
		                            (size_t)(ops[i].name.len > 0 ? ops[i].name.len : 0));

		for (int32_t j = 0; j < i; j++) {
			if (ops[j].name.len == ops[i].name.len &&
			    memcmp(ops[j].name.ptr, ops[i].name.ptr, (size_t)ops[i].name.len) ==
			            0) {
				*msg = "A config named twice.";
				return KP_ERR_INVALID_REQUEST;
			}
		}
		if (k < 0) {
			*msg = "Unknown topic config (or one storage does not take).";
			return KP_ERR_INVALID_CONFIG;
		}
		if (ops[i].op == 2 || ops[i].op == 3) {
			/* APPEND, SUBTRACT: list keys only, from the topic's value or the default. */
			char res[sizeof(vals[k])];

			if (ops[i].value.len < 0 ||
			    stor_topic_list_op((unsigned)k, set[k] ? vals[k] : NULL, ops[i].value.ptr,
			                       (size_t)ops[i].value.len, ops[i].op == 2, res,
			                       sizeof(res)) < 0) {
				*msg = "APPEND and SUBTRACT take a list config and leave values.";
				return KP_ERR_INVALID_CONFIG;
			}
			strcpy(vals[k], res);
			set[k] = true;
			continue;
		}
		if (ops[i].op == 1 || ops[i].value.len < 0) {
			set[k] = false;
			continue;
		}
		if (ops[i].op != 0) {
			*msg = "Unknown config operation.";
			return KP_ERR_INVALID_REQUEST;
		}
		if ((size_t)ops[i].value.len >= sizeof(vals[k]) || ops[i].value.len == 0 ||
		    memchr(ops[i].value.ptr, ' ', (size_t)ops[i].value.len) != NULL ||
		    memchr(ops[i].value.ptr, '\n', (size_t)ops[i].value.len) != NULL) {
			*msg = "Invalid config value.";
			return KP_ERR_INVALID_CONFIG;
		}
		memcpy(vals[k], ops[i].value.ptr, (size_t)ops[i].value.len);
		vals[k][ops[i].value.len] = '\0';
		set[k] = true;
	}
	out[0] = '\0';
	for (unsigned k = 0; k < stor_topic_keys_n; k++) {
		if (!set[k])
			continue;
		if (used + strlen(stor_topic_keys[k].name) + strlen(vals[k]) + 3 > sizeof(out)) {
			*msg = "Configs too long.";
			return KP_ERR_INVALID_CONFIG;
		}
		used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%s=%s",
		                         used ? "\n" : "", stor_topic_keys[k].name, vals[k]);
	}
	if (!validate_only)
		dp_fetch_drain(q);
	rc = dp_broker_topic_configs_set(q->b, t, out, validate_only);
	if (rc == -EBADR) {
		*msg = "Invalid config value.";
		return KP_ERR_INVALID_CONFIG;
	}
	if (rc < 0) {
		*msg = "Configs could not be changed (see the broker log).";
		return KP_ERR_KAFKA_STORAGE_ERROR;
	}
	return KP_ERR_NONE;
}

/* One resource of an (Incremental)AlterConfigs request. */
static int16_t
alter_resource(struct dp_requests *q, int8_t type, struct kp_str name, const struct cfg_op *ops,
               int32_t n_ops, bool replace, bool validate_only, const char **msg)
{
	struct dp_topic *t;

	*msg = NULL;
	if (type == RES_BROKER) {
		*msg = "Broker configs are read-only (static configuration file).";
		return KP_ERR_INVALID_REQUEST;
	}
	if (type != RES_TOPIC) {
		*msg = "Unsupported resource type.";
		return KP_ERR_INVALID_REQUEST;
	}
	t = dp_broker_topic_find(q->b, name.ptr, (size_t)name.len);
	if (t == NULL) {
		*msg = "Unknown topic.";
		return KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
	}
	return topic_configs_alter(q, t, ops, n_ops, replace, validate_only, msg);
}

int
dp_req_alter_configs(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
              const struct kp_request_header *h, struct kp_reader *r)
{
	struct kp_arena *a = &q->arena;
	int16_t v = h->request_api_version;
	bool incremental = h->request_api_key == API_KEY_INCREMENTAL_ALTER_CONFIGS;
	struct kp_alter_configs_request m;
	struct kp_incremental_alter_configs_request mi;
	struct kp_alter_configs_response resp;
	struct kp_alter_configs_response_alter_configs_resource_response *res;
	int32_t n;
	uint8_t *buf;
	int rc;

	buf = dp_conn_resp_alloc(conn);
	if (buf == NULL)
		return -EAGAIN;
	rc = incremental ? kp_incremental_alter_configs_request_decode(&mi, v, r, a)
	                 : kp_alter_configs_request_decode(&m, v, r, a);
	if (rc < 0) {
		dp_conn_resp_free(conn->env->resp_pool, buf);
		dp_req_close_log(conn, "malformed", h, rc);
		return -EPROTO;
	}
	n = incremental ? mi.resources.count : m.resources.count;
	if (n < 0)
		n = 0;
	res = kp_arena_alloc(a, sizeof(*res) * (size_t)(n > 0 ? n : 1), 8);
	if (res == NULL)
		goto nomem;
	for (int32_t i = 0; i < n; i++) {
		int8_t type = incremental ? mi.resources.items[i].resource_type
		                          : m.resources.items[i].resource_type;
		struct kp_str name = incremental ? mi.resources.items[i].resource_name
		                                 : m.resources.items[i].resource_name;
		int32_t n_ops = incremental ? mi.resources.items[i].configs.count
		                            : m.resources.items[i].configs.count;
		struct cfg_op *ops;
		const char *msg;

		if (n_ops < 0)
			n_ops = 0;
		ops = kp_arena_alloc(a, sizeof(*ops) * (size_t)(n_ops > 0 ? n_ops : 1), 8);
		if (ops == NULL)
			goto nomem;
		for (int32_t j = 0; j < n_ops; j++) {
			if (incremental) {
				ops[j].name = mi.resources.items[i].configs.items[j].name;
				ops[j].value = mi.resources.items[i].configs.items[j].value;
				ops[j].op = mi.resources.items[i].configs.items[j].config_operation;
			} else {
				ops[j].name = m.resources.items[i].configs.items[j].name;
				ops[j].value = m.resources.items[i].configs.items[j].value;
				ops[j].op = 0;
			}
		}
		kp_alter_configs_response_alter_configs_resource_response_init(&res[i]);
		res[i].error_message = dp_req_str_null();
		res[i].resource_type = type;
		res[i].resource_name = name;
		res[i].error_code =
		        alter_resource(q, type, name, ops, n_ops, !incremental,
		                       incremental ? mi.validate_only : m.validate_only, &msg);
		if (msg != NULL)
			res[i].error_message = dp_req_str(msg);
	}
	kp_alter_configs_response_init(&resp);
	resp.responses.items = res;
	resp.responses.count = n;
	if (incremental) {
		struct kp_incremental_alter_configs_response ri;
		struct kp_incremental_alter_configs_response_alter_configs_resource_response *rs =
		        kp_arena_alloc(a, sizeof(*rs) * (size_t)(n > 0 ? n : 1), 8);

		if (rs == NULL)
			goto nomem;
		for (int32_t i = 0; i < n; i++) {
			kp_incremental_alter_configs_response_alter_configs_resource_response_init(
			        &rs[i]);
			rs[i].error_code = res[i].error_code;
			rs[i].error_message = res[i].error_message;
			rs[i].resource_type = res[i].resource_type;
			rs[i].resource_name = res[i].resource_name;
		}
		kp_incremental_alter_configs_response_init(&ri);
		ri.responses.items = rs;
		ri.responses.count = n;
		return dp_req_reply(conn, req, h, buf, &ri);
	}
	return dp_req_reply(conn, req, h, buf, &resp);
nomem:
	return dp_req_nomem(conn, h, buf);
}

/* ---- DescribeCluster, DeleteRecords, DescribeLogDirs, OffsetForLeaderEpoch --------------- */

int
dp_req_describe_cluster(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
                 const struct kp_request_header *h, struct kp_reader *r)
{
	struct kp_describe_cluster_request m;
	struct kp_describe_cluster_response resp;
	struct kp_describe_cluster_response_describe_cluster_broker broker;
	uint8_t *buf;
	int rc;

	rc = dp_req_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	dp_req_advertised_resolve(q, conn);
	kp_describe_cluster_response_init(&resp);
	resp.error_message = dp_req_str_null();
	resp.endpoint_type = m.endpoint_type;
	resp.cluster_id = dp_req_str(q->b->cluster_id);
	resp.controller_id = q->b->node_id;
	/* No authorizer: authorized operations are not reported (INT32_MIN, "omitted"). */
	resp.cluster_authorized_operations = INT32_MIN;
	if (h->request_api_version >= 1 && m.endpoint_type != 1) {
		/* A broker describes brokers; controllers are the control process's. */
		resp.error_code = KP_ERR_UNSUPPORTED_ENDPOINT_TYPE;
		resp.error_message = dp_req_str("Only brokers (endpoint type 1) are described here.");
		resp.controller_id = -1;
		return dp_req_reply(conn, req, h, buf, &resp);
	}
	kp_describe_cluster_response_describe_cluster_broker_init(&broker);
	broker.broker_id = q->b->node_id;
	broker.host = dp_req_str(q->host);
	broker.port = q->port;
	broker.rack = (struct kp_str){.ptr = NULL, .len = -1};
	resp.brokers.items = &broker;
	resp.brokers.count = 1;
	return dp_req_reply(conn, req, h, buf, &resp);
}

/*
 * Partition operations of the admin handlers, run on the partition's owner
 * (dp_broker_exec: a direct call for a writer on this lcore).
 */
struct dr_call {
	struct dp_partition *pp;
	int64_t offset; /* DeleteRecords' offset; -1: the high watermark */
	int16_t err;
	int64_t low;
};

static int
dr_run(void *arg)
{
	struct dr_call *c = arg;
	struct stor_log *log = c->pp->log;
	int64_t hw = stor_log_written_offset(log);
	int64_t off = c->offset == -1 ? hw : c->offset;
	int rc;

	if (off < 0 || off > hw) {
		c->err = KP_ERR_OFFSET_OUT_OF_RANGE;
		c->low = stor_log_start_offset(log);
		return 0;
	}
	rc = off > stor_log_start_offset(log) ? stor_log_delete_records(log, off) : 0;
	if (rc < 0)
		c->err = rc == -ENXIO ? KP_ERR_OFFSET_OUT_OF_RANGE : KP_ERR_KAFKA_STORAGE_ERROR;
	c->low = stor_log_start_offset(log);
	dp_part_publish(c->pp);
	return 0;
}

struct size_call {
	struct stor_log *log;
	uint64_t bytes;
};

static int
size_run(void *arg)
{
	struct size_call *c = arg;

	c->bytes = stor_log_size_bytes(c->log);
	return 0;
}

struct epoch_call {
	struct stor_log *log;
	int32_t want;
	int32_t epoch;
	int64_t end;
};

static int
epoch_run(void *arg)
{
	struct epoch_call *c = arg;
	int rc = stor_log_epoch_end_offset(c->log, c->want, &c->epoch, &c->end);

	if (rc == -ENOENT) {
		c->epoch = 0;
		c->end = stor_log_end_offset(c->log);
		return 0;
	}
	return rc;
}

int
dp_req_delete_records(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
               const struct kp_request_header *h, struct kp_reader *r)
{
	struct kp_arena *a = &q->arena;
	struct kp_delete_records_request m;
	struct kp_delete_records_response resp;
	struct kp_delete_records_response_delete_records_topic_result *rts;
	int32_t n;
	uint8_t *buf;
	int rc;

	rc = dp_req_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	n = m.topics.count > 0 ? m.topics.count : 0;
	rts = kp_arena_alloc(a, sizeof(*rts) * (size_t)(n > 0 ? n : 1), 8);
	if (rts == NULL)
		goto nomem;
	for (int32_t i = 0; i < n; i++) {
		const struct kp_delete_records_request_delete_records_topic *dt =
		        &m.topics.items[i];
		struct dp_topic *t = dp_broker_topic_find(q->b, dt->name.ptr, (size_t)dt->name.len);
		struct kp_delete_records_response_delete_records_partition_result *prs;
		int32_t np = dt->partitions.count > 0 ? dt->partitions.count : 0;

		kp_delete_records_response_delete_records_topic_result_init(&rts[i]);
		rts[i].name = dt->name;
		prs = kp_arena_alloc(a, sizeof(*prs) * (size_t)(np > 0 ? np : 1), 8);
		if (prs == NULL)
			goto nomem;
		rts[i].partitions.items = prs;
		rts[i].partitions.count = np;
		for (int32_t j = 0; j < np; j++) {
			const struct kp_delete_records_request_delete_records_partition *dp =
			        &dt->partitions.items[j];
			struct stor_log *log;
			struct dr_call dc;

			kp_delete_records_response_delete_records_partition_result_init(&prs[j]);
			prs[j].partition_index = dp->partition_index;
			prs[j].low_watermark = -1;
			if (t == NULL || dp->partition_index < 0 ||
			    dp->partition_index >= t->partitions) {
				prs[j].error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				continue;
			}
			log = t->part[dp->partition_index].log;
			if (log == NULL) { /* offline */
				prs[j].error_code = KP_ERR_KAFKA_STORAGE_ERROR;
				continue;
			}
			dc = (struct dr_call){&t->part[dp->partition_index], dp->offset, 0, -1};
			(void)dp_broker_exec(q->b, t->part[dp->partition_index].writer, dr_run, &dc);
			prs[j].error_code = dc.err;
			prs[j].low_watermark = dc.low;
		}
	}
	kp_delete_records_response_init(&resp);
	resp.topics.items = rts;
	resp.topics.count = n;
	return dp_req_reply(conn, req, h, buf, &resp);
nomem:
	return dp_req_nomem(conn, h, buf);
}

/* Fill @rt with the partitions of @t that @want names (NULL: all). */
static int
log_dirs_topic(struct dp_broker *b, struct kp_arena *a, struct dp_topic *t,
	const struct kp_array_int32 *want,
               struct kp_describe_log_dirs_response_describe_log_dirs_topic *rt)
{
	struct kp_describe_log_dirs_response_describe_log_dirs_partition *ps;
	int32_t n = 0;
	int32_t cap = want != NULL ? (want->count > 0 ? want->count : 0) : t->partitions;

	kp_describe_log_dirs_response_describe_log_dirs_topic_init(rt);
	rt->name = dp_req_str(t->name);
	ps = kp_arena_alloc(a, sizeof(*ps) * (size_t)(cap > 0 ? cap : 1), 8);
	if (ps == NULL)
		return -ENOMEM;
	for (int32_t i = 0; i < cap; i++) {
		int32_t p = want != NULL ? want->items[i] : i;

		if (p < 0 || p >= t->partitions || t->part[p].log == NULL)
			continue; /* Kafka leaves out partitions this broker does not hold */
		kp_describe_log_dirs_response_describe_log_dirs_partition_init(&ps[n]);
		ps[n].partition_index = p;
		struct size_call sc = {t->part[p].log, 0};

		(void)dp_broker_exec(b, t->part[p].writer, size_run, &sc);
		ps[n].partition_size = (int64_t)sc.bytes;
		ps[n].offset_lag = 0;
		ps[n].is_future_key = false;
		n++;
	}
	rt->partitions.items = ps;
	rt->partitions.count = n;
	return 0;
}

int
dp_req_describe_log_dirs(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
                  const struct kp_request_header *h, struct kp_reader *r)
{
	struct dp_broker *b = q->b;
	struct kp_arena *a = &q->arena;
	struct kp_describe_log_dirs_request m;
	struct kp_describe_log_dirs_response resp;
	struct kp_describe_log_dirs_response_describe_log_dirs_result dir;
	struct kp_describe_log_dirs_response_describe_log_dirs_topic *rts;
	struct statvfs sv;
	char *path;
	int32_t n = 0;
	int32_t cap;
	uint8_t *buf;
	int rc;

	rc = dp_req_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	cap = m.topics.count < 0 ? (int32_t)b->n_topics : m.topics.count;
	rts = kp_arena_alloc(a, sizeof(*rts) * (size_t)(cap > 0 ? cap : 1), 8);
	path = kp_arena_alloc(a, PATH_MAX, 1);
	if (rts == NULL || path == NULL)
		goto nomem;
	for (int32_t i = 0; i < cap; i++) {
		struct dp_topic *t;
		const struct kp_array_int32 *want = NULL;

		if (m.topics.count < 0) {
			t = b->topics[i];
		} else {
			t = dp_broker_topic_find(b, m.topics.items[i].topic.ptr,
			                         (size_t)m.topics.items[i].topic.len);
			want = &m.topics.items[i].partitions;
		}
		if (t == NULL)
			continue; /* Kafka leaves out topics this broker does not hold */
		if (log_dirs_topic(b, a, t, want, &rts[n]) < 0)
			goto nomem;
		n++;
	}
	kp_describe_log_dirs_response_describe_log_dirs_result_init(&dir);
	dir.error_code = KP_ERR_NONE;
	dir.log_dir = dp_req_str(realpath(b->dir, path) != NULL ? path : b->dir);
	dir.topics.items = rts;
	dir.topics.count = n;
	if (statvfs(b->dir, &sv) == 0) {
		dir.total_bytes = (int64_t)((uint64_t)sv.f_blocks * sv.f_frsize);
		dir.usable_bytes = (int64_t)((uint64_t)sv.f_bavail * sv.f_frsize);
	}
	kp_describe_log_dirs_response_init(&resp);
	resp.error_code = KP_ERR_NONE;
	resp.results.items = &dir;
	resp.results.count = 1;
	return dp_req_reply(conn, req, h, buf, &resp);
nomem:
	return dp_req_nomem(conn, h, buf);
}

/*
 * OffsetForLeaderEpoch: one broker, always leader, epoch 0. The log's
 * leader-epoch checkpoint is asked first; a log without one (nothing
 * assigns epochs yet) is all epoch 0, ending at the log end offset.
 */
int
dp_req_offset_for_leader_epoch(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
                        const struct kp_request_header *h, struct kp_reader *r)
{
	struct kp_arena *a = &q->arena;
	int16_t v = h->request_api_version;
	struct kp_offset_for_leader_epoch_request m;
	struct kp_offset_for_leader_epoch_response resp;
	struct kp_offset_for_leader_epoch_response_offset_for_leader_topic_result *rts;
	int32_t n;
	uint8_t *buf;
	int rc;

	rc = dp_req_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	n = m.topics.count > 0 ? m.topics.count : 0;
	rts = kp_arena_alloc(a, sizeof(*rts) * (size_t)(n > 0 ? n : 1), 8);
	if (rts == NULL)
		goto nomem;
	for (int32_t i = 0; i < n; i++) {
		const struct kp_offset_for_leader_epoch_request_offset_for_leader_topic *lt =
		        &m.topics.items[i];
		struct dp_topic *t =
		        dp_broker_topic_find(q->b, lt->topic.ptr, (size_t)lt->topic.len);
		struct kp_offset_for_leader_epoch_response_epoch_end_offset *ps;
		int32_t np = lt->partitions.count > 0 ? lt->partitions.count : 0;

		kp_offset_for_leader_epoch_response_offset_for_leader_topic_result_init(&rts[i]);
		rts[i].topic = lt->topic;
		ps = kp_arena_alloc(a, sizeof(*ps) * (size_t)(np > 0 ? np : 1), 8);
		if (ps == NULL)
			goto nomem;
		rts[i].partitions.items = ps;
		rts[i].partitions.count = np;
		for (int32_t j = 0; j < np; j++) {
			const struct kp_offset_for_leader_epoch_request_offset_for_leader_partition
			        *lp = &lt->partitions.items[j];
			struct stor_log *log;
			int32_t epoch = -1;
			int64_t end = -1;
			struct epoch_call ec;

			kp_offset_for_leader_epoch_response_epoch_end_offset_init(&ps[j]);
			ps[j].partition = lp->partition;
			ps[j].leader_epoch = -1;
			ps[j].end_offset = -1;
			if (t == NULL || lp->partition < 0 || lp->partition >= t->partitions) {
				ps[j].error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				continue;
			}
			if (v >= 2 && lp->current_leader_epoch > 0) {
				ps[j].error_code = KP_ERR_UNKNOWN_LEADER_EPOCH;
				continue;
			}
			if (lp->leader_epoch < 0)
				continue; /* no such epoch: -1, -1 */
			log = t->part[lp->partition].log;
			if (log == NULL) { /* offline */
				ps[j].error_code = KP_ERR_KAFKA_STORAGE_ERROR;
				continue;
			}
			ec = (struct epoch_call){log, lp->leader_epoch, -1, -1};
			rc = dp_broker_exec(q->b, t->part[lp->partition].writer, epoch_run, &ec);
			epoch = ec.epoch;
			end = ec.end;
			if (rc < 0) {
				ps[j].error_code = KP_ERR_KAFKA_STORAGE_ERROR;
				continue;
			}
			ps[j].leader_epoch = epoch;
			ps[j].end_offset = end;
		}
	}
	kp_offset_for_leader_epoch_response_init(&resp);
	resp.topics.items = rts;
	resp.topics.count = n;
	return dp_req_reply(conn, req, h, buf, &resp);
nomem:
	return dp_req_nomem(conn, h, buf);
}

