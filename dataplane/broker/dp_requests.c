/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_requests: the Kafka request handlers over dp_broker (see dp_requests.h).
 *
 * Every handler takes its response buffer first (so -EAGAIN, which makes
 * the transport deliver the frame again later, comes before any side
 * effect such as creating a topic), decodes the request with the generated
 * codec into the module's arena, builds the response struct in the same
 * arena and encodes it straight into the response buffer. A response that
 * does not fit a response buffer (dataplane.response.buffer.bytes) closes
 * the connection with a log line.
 */
#include "dp_requests.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_lcore.h>

#include "dp_log.h"
#include "kp_api.h"
#include "kp_error.h"
#include "kp_batch.h"
#include "net_kernel.h"
#include "stor_log.h"

#define API_KEY_PRODUCE 0
#define API_KEY_FETCH 1
#define API_KEY_LIST_OFFSETS 2
#define API_KEY_METADATA 3
#define API_KEY_API_VERSIONS 18
#define API_KEY_CREATE_TOPICS 19
#define API_KEY_DELETE_RECORDS 21
#define API_KEY_OFFSET_FOR_LEADER_EPOCH 23
#define API_KEY_DESCRIBE_LOG_DIRS 35
#define API_KEY_DESCRIBE_CLUSTER 60
#define API_KEY_DELETE_TOPICS 20
#define API_KEY_DESCRIBE_CONFIGS 32
#define API_KEY_ALTER_CONFIGS 33
#define API_KEY_INCREMENTAL_ALTER_CONFIGS 44
#define API_KEY_CREATE_PARTITIONS 37
#define REQ_ARENA_BYTES (512u * 1024u)

/*
 * Produce is advertised from v0 (librdkafka enables compression only when
 * Produce v0 is advertised, librdkafka #4956) while magic 0/1 batches are
 * refused with UNSUPPORTED_FOR_MESSAGE_FORMAT (docs/decisions.md).
 */
static const struct kp_api_versions_response_api_version served[] = {
	{.api_key = API_KEY_PRODUCE, .min_version = 0, .max_version = 11},
	{.api_key = API_KEY_FETCH, .min_version = 0, .max_version = 17},
	{.api_key = API_KEY_LIST_OFFSETS, .min_version = 0, .max_version = 10},
	{.api_key = API_KEY_METADATA, .min_version = 0, .max_version = 12},
	{.api_key = API_KEY_API_VERSIONS,
		.min_version = DP_HANDLER_API_VERSIONS_MIN,
		.max_version = DP_HANDLER_API_VERSIONS_MAX},
	{.api_key = API_KEY_CREATE_TOPICS, .min_version = 0, .max_version = 7},
	{.api_key = API_KEY_DELETE_TOPICS, .min_version = 0, .max_version = 6},
	{.api_key = API_KEY_CREATE_PARTITIONS, .min_version = 0, .max_version = 3},
	{.api_key = API_KEY_DESCRIBE_CONFIGS, .min_version = 0, .max_version = 4},
	{.api_key = API_KEY_ALTER_CONFIGS, .min_version = 0, .max_version = 2},
	{.api_key = API_KEY_INCREMENTAL_ALTER_CONFIGS, .min_version = 0, .max_version = 1},
	{.api_key = API_KEY_DESCRIBE_CLUSTER, .min_version = 0, .max_version = 1},
	{.api_key = API_KEY_DELETE_RECORDS, .min_version = 0, .max_version = 2},
	{.api_key = API_KEY_DESCRIBE_LOG_DIRS, .min_version = 0, .max_version = 4},
	{.api_key = API_KEY_OFFSET_FOR_LEADER_EPOCH, .min_version = 0, .max_version = 4},
};

struct dp_requests {
	struct dp_broker *b;
	const struct dp_config *cfg;
	struct dp_handler_apis apis;
	char host[256]; /* advertised host and port, resolved at the first Metadata */
	int32_t port;
	unsigned lcore; /* the broker's (storage engine's) lcore */
	struct kp_arena arena;
	_Alignas(64) uint8_t arena_buf[REQ_ARENA_BYTES];
};

/* One per process: the broker runs on one lcore (dp_broker.h). */
static struct dp_requests g_req;

static bool g_appended; /* an append completed since parked fetches last ran */

static void
advertised_resolve(struct dp_requests *q)
{
	const struct dp_config *cfg = q->cfg;
	const struct dp_listener *l = NULL;
	unsigned li = 0;

	if (q->port != 0)
		return;
	for (unsigned i = 0; i < cfg->n_listeners; i++) {
		if (!cfg->listener[i].controller) {
			l = &cfg->listener[i];
			li = i;
			break;
		}
	}
	for (unsigned i = 0; l != NULL && i < cfg->n_advertised; i++) {
		if (strcmp(cfg->advertised[i].name, l->name) == 0) {
			snprintf(q->host, sizeof(q->host), "%s", cfg->advertised[i].host);
			q->port = cfg->advertised[i].port;
			break;
		}
	}
	if (q->port == 0 && l != NULL) {
		snprintf(q->host, sizeof(q->host), "%s", l->host);
		q->port = l->port != 0 ? l->port : net_kernel_listener_port(li);
	}
	/* UNFINISHED: an all-interfaces listener should advertise the canonical host name. */
	if (q->host[0] == '\0' || strcmp(q->host, "0.0.0.0") == 0)
		snprintf(q->host, sizeof(q->host), "127.0.0.1");
}

static void
close_log(struct dp_conn *conn, const char *what, const struct kp_request_header *h, int rc)
{
	char peer[80];

	dp_conn_peer_name(conn, peer, sizeof(peer));
	dp_log(DP_LOG_WARN, "closing %s: %s %s v%d request (%s)", peer, what,
		kp_api_lookup(h->request_api_key)->name, h->request_api_version, strerror(-rc));
}

/*
 * The common start of a handler: take a response buffer first, so that
 * -EAGAIN (the transport offers the frame again later) comes before any side
 * effect, then decode the body into @m through the API table. A malformed
 * body returns the buffer, closes the connection with a log line and gives
 * -EPROTO. @m is the generated request struct of h's api key.
 */
static int
request_begin(struct dp_requests *q, struct dp_conn *conn, const struct kp_request_header *h,
              struct kp_reader *r, void *m, uint8_t **buf)
{
	int rc;

	*buf = dp_conn_resp_alloc(conn);
	if (*buf == NULL)
		return -EAGAIN;
	rc = kp_api_lookup(h->request_api_key)->request.decode(m, h->request_api_version, r,
	                                                        &q->arena);
	if (rc < 0) {
		dp_conn_resp_free(conn->env->resp_pool, *buf);
		close_log(conn, "malformed", h, rc);
		return -EPROTO;
	}
	return 0;
}

/* The common failure of a handler whose arena ran out: free @buf, close, -ENOMEM. */
static int
request_nomem(struct dp_conn *conn, const struct kp_request_header *h, uint8_t *buf)
{
	dp_conn_resp_free(conn->env->resp_pool, buf);
	close_log(conn, "arena too small for a", h, -ENOMEM);
	return -ENOMEM;
}

/* A response buffer: the worker's pool, or a large Fetch buffer. */
struct resp_buf {
	uint8_t *p;
	uint32_t cap;
	dp_resp_free_fn free_fn;
	void *free_arg;
};

/* Encode header + @msg into @rb (taken by the caller) and reply. */
static int
reply_buf(struct dp_conn *conn, uint64_t req, const struct kp_request_header *h,
	const struct resp_buf *rb, const void *msg)
{
	uint8_t *buf = rb->p;
	const struct kp_api_desc *d = kp_api_lookup(h->request_api_key);
	struct kp_response_header rh;
	struct kp_writer w;
	uint32_t n;
	int rc;

	kp_response_header_init(&rh);
	rh.correlation_id = h->correlation_id;
	kp_writer_init(&w, buf + 4, rb->cap - 4);
	rc = kp_response_header_encode(&rh,
		kp_api_response_header_version(d, h->request_api_version), &w);
	if (rc == 0)
		rc = d->response.encode(msg, h->request_api_version, &w);
	if (rc < 0) {
		rb->free_fn(rb->free_arg, buf);
		close_log(conn, "cannot encode the response to a", h, rc);
		return rc;
	}
	n = (uint32_t)kp_writer_len(&w);
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	return dp_conn_reply(conn, req, buf, n + 4, rb->free_fn, rb->free_arg);
}

static int
reply(struct dp_conn *conn, uint64_t req, const struct kp_request_header *h, uint8_t *buf,
	const void *msg)
{
	struct resp_buf rb = {buf, conn->env->resp_buf_size, dp_conn_resp_free,
		conn->env->resp_pool};

	return reply_buf(conn, req, h, &rb, msg);
}

static struct kp_str
kstr(const char *s)
{
	return (struct kp_str){.ptr = s, .len = (int32_t)strlen(s)};
}

/* A null nullable string (the generated _init() leaves an empty one). */
static struct kp_str
kstr_null(void)
{
	return (struct kp_str){.ptr = NULL, .len = -1};
}

static int32_t *
one_int32(struct kp_arena *a, int32_t v)
{
	int32_t *p = kp_arena_alloc(a, sizeof(*p), _Alignof(int32_t));

	if (p != NULL)
		*p = v;
	return p;
}

/* Fill a Metadata topic entry for an existing topic. */
static int
metadata_topic_fill(struct dp_requests *q, struct kp_metadata_response_metadata_response_topic *rt,
	const struct dp_topic *t)
{
	struct kp_arena *a = &q->arena;
	int32_t *node = one_int32(a, q->b->node_id);
	struct kp_metadata_response_metadata_response_partition *parts =
		kp_arena_alloc(a, sizeof(*parts) * (size_t)t->partitions, 8);

	if (node == NULL || parts == NULL)
		return -ENOMEM;
	rt->error_code = KP_ERR_NONE;
	rt->name = kstr(t->name);
	memcpy(rt->topic_id.b, t->id, 16);
	rt->is_internal = false;
	for (int32_t p = 0; p < t->partitions; p++) {
		kp_metadata_response_metadata_response_partition_init(&parts[p]);
		parts[p].error_code = KP_ERR_NONE;
		parts[p].partition_index = p;
		parts[p].leader_id = q->b->node_id;
		parts[p].leader_epoch = 0;
		parts[p].replica_nodes = (struct kp_array_int32){.items = node, .count = 1};
		parts[p].isr_nodes = (struct kp_array_int32){.items = node, .count = 1};
		parts[p].offline_replicas = (struct kp_array_int32){.items = NULL, .count = 0};
	}
	rt->partitions.items = parts;
	rt->partitions.count = t->partitions;
	return 0;
}

static struct dp_topic *
topic_by_id(struct dp_broker *b, const struct kp_uuid *id)
{
	for (unsigned i = 0; i < b->n_topics; i++) {
		if (memcmp(b->topics[i]->id, id->b, 16) == 0)
			return b->topics[i];
	}
	return NULL;
}

static int
metadata(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r)
{
	struct dp_broker *b = q->b;
	struct kp_arena *a = &q->arena;
	int16_t v = h->request_api_version;
	struct kp_metadata_request m;
	struct kp_metadata_response resp;
	struct kp_metadata_response_metadata_response_broker broker;
	struct kp_metadata_response_metadata_response_topic *rts;
	bool all;
	int32_t n;
	uint8_t *buf;
	int rc;

	rc = request_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	advertised_resolve(q);
	/* v0: an empty list means every topic; v1+: null means every topic. */
	all = m.topics.count < 0 || (v == 0 && m.topics.count == 0);
	n = all ? (int32_t)b->n_topics : m.topics.count;
	rts = kp_arena_alloc(a, sizeof(*rts) * (size_t)(n > 0 ? n : 1), 8);
	if (rts == NULL)
		goto nomem;
	for (int32_t i = 0; i < n; i++) {
		struct kp_metadata_response_metadata_response_topic *rt = &rts[i];
		const struct kp_metadata_request_metadata_request_topic *want;
		struct dp_topic *t;

		kp_metadata_response_metadata_response_topic_init(rt);
		if (all) {
			if (metadata_topic_fill(q, rt, b->topics[i]) < 0)
				goto nomem;
			continue;
		}
		want = &m.topics.items[i];
		if (want->name.len < 0) { /* v10+: by topic id */
			t = topic_by_id(b, &want->topic_id);
			if (t == NULL) {
				rt->error_code = KP_ERR_UNKNOWN_TOPIC_ID;
				rt->name = (struct kp_str){.ptr = NULL, .len = -1};
				rt->topic_id = want->topic_id;
				continue;
			}
		} else {
			t = dp_broker_topic_find(b, want->name.ptr, (size_t)want->name.len);
		}
		if (t == NULL && b->auto_create && (v < 4 || m.allow_auto_topic_creation)) {
			rc = dp_broker_topic_create(b, want->name.ptr, (size_t)want->name.len,
				b->num_partitions, NULL, &t);
			if (rc < 0 && rc != -EINVAL)
				dp_log(DP_LOG_WARN, "auto-creating topic %.*s: %s", want->name.len,
					want->name.ptr, strerror(-rc));
			if (rc < 0)
				t = NULL;
		}
		if (t == NULL) {
			rt->name = want->name;
			rt->error_code = dp_broker_topic_name_valid(want->name.ptr,
						 (size_t)want->name.len) ?
				KP_ERR_UNKNOWN_TOPIC_OR_PARTITION :
				KP_ERR_INVALID_TOPIC_EXCEPTION;
			continue;
		}
		if (metadata_topic_fill(q, rt, t) < 0)
			goto nomem;
	}
	kp_metadata_response_init(&resp);
	kp_metadata_response_metadata_response_broker_init(&broker);
	broker.node_id = b->node_id;
	broker.host = kstr(q->host);
	broker.port = q->port;
	resp.brokers.items = &broker;
	resp.brokers.count = 1;
	resp.cluster_id = kstr(b->cluster_id);
	resp.controller_id = b->node_id;
	resp.topics.items = rts;
	resp.topics.count = n;
	return reply(conn, req, h, buf, &resp);
nomem:
	return request_nomem(conn, h, buf);
}

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
		*msg = "Number of partitions must be between 1 and 1024.";
		return KP_ERR_INVALID_PARTITIONS;
	case -EBADR:
		*msg = "Invalid or unsupported topic config.";
		return KP_ERR_INVALID_CONFIG;
	default:
		*msg = "Topic could not be created (see the broker log).";
		return KP_ERR_UNKNOWN_SERVER_ERROR;
	}
}

/* "k=v\nk=v" from the request's configs into @out. -EBADR when unrepresentable. */
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
			memchr(c->name.ptr, '=', (size_t)c->name.len) != NULL)
			return -EBADR;
		used += (size_t)snprintf(out + used, cap - used, "%s%.*s=%.*s", used ? "\n" : "",
			c->name.len, c->name.ptr, c->value.len, c->value.ptr);
	}
	return 0;
}

static int
create_topics(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
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

	rc = request_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	res = kp_arena_alloc(a, sizeof(*res) * (size_t)(m.topics.count > 0 ? m.topics.count : 1),
		8);
	if (res == NULL) {
		dp_conn_resp_free(conn->env->resp_pool, buf);
		close_log(conn, "arena too small for a", h, -ENOMEM);
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
			res[i].error_message = kstr("Duplicate topic in the request.");
			continue;
		}
		if (ct->replication_factor != -1 && ct->replication_factor != 1) {
			res[i].error_code = KP_ERR_INVALID_REPLICATION_FACTOR;
			res[i].error_message =
				kstr("Replication factor must be 1 (a single broker).");
			continue;
		}
		if (ct->assignments.count > 0) {
			/* UNFINISHED: manual replica assignments. */
			res[i].error_code = KP_ERR_INVALID_REPLICA_ASSIGNMENT;
			res[i].error_message = kstr("Replica assignments are not supported yet.");
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
			res[i].error_message = kstr(msg);
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
	return reply(conn, req, h, buf, &resp);
}

/* ---- Produce ---------------------------------------------------------------------------- */

/*
 * A Produce request whose appends are in flight. The response is encoded
 * into its buffer before the appends complete (the base offsets are known
 * when stor_log_append() returns); the reply leaves when the last append
 * completes, and dp_conn keeps the order with the connection's other
 * responses. An append that fails at completion (the log took an I/O
 * error) closes the connection instead of answering.
 * UNFINISHED: answer KAFKA_STORAGE_ERROR for that partition instead.
 */
struct produce_ctx {
	struct dp_conn *conn;
	uint64_t req;
	uint8_t *buf; /* encoded response, or NULL for acks=0 */
	uint32_t len;
	uint32_t pending; /* appends in flight + 1 while the handler runs */
	bool failed;
	struct produce_ctx *next_free;
};

#define PRODUCE_CTX_COUNT 4096
static struct produce_ctx g_produce_ctx[PRODUCE_CTX_COUNT];
static struct produce_ctx *g_produce_free;

static void
produce_ctx_put(struct produce_ctx *c)
{
	c->next_free = g_produce_free;
	g_produce_free = c;
}

static void
produce_finish(struct produce_ctx *c)
{
	if (c->failed) {
		if (c->buf != NULL)
			dp_conn_resp_free(c->conn->env->resp_pool, c->buf);
		if (dp_conn_req_gen(c->req) == c->conn->gen) {
			dp_log(DP_LOG_ERROR, "closing a connection: an append it produced failed");
			dp_conn_close(c->conn);
		}
	} else if (c->buf != NULL) {
		dp_conn_reply(c->conn, c->req, c->buf, c->len, dp_conn_resp_free,
			c->conn->env->resp_pool);
	} else {
		dp_conn_reply(c->conn, c->req, NULL, 0, NULL, NULL);
	}
	produce_ctx_put(c);
}

static void
produce_appended(void *arg, int rc, int64_t base_offset)
{
	struct produce_ctx *c = arg;

	if (rc < 0)
		c->failed = true;
	g_appended = true; /* wakes parked fetches */
	if (--c->pending == 0)
		produce_finish(c);
}

#define PRODUCE_FULL INT16_MIN

/*
 * Append every batch of one partition's records.
 * @return a Kafka error code, or PRODUCE_FULL when storage takes no more
 *         appends right now (nothing of this partition was appended only if
 *         it failed on the first batch).
 */
static int16_t
produce_partition(struct dp_requests *q, struct produce_ctx *c, struct stor_log *log,
	const struct kp_bytes *records, unsigned flags, int64_t *base_offset)
{
	size_t off = 0;
	size_t len = records->len > 0 ? (size_t)records->len : 0;
	int rc;

	*base_offset = -1;
	if (len == 0)
		return KP_ERR_CORRUPT_MESSAGE;
	/* Validate every batch first: a request's partition is appended whole or not at all. */
	while (off < len) {
		struct kp_batch_header bh;

		rc = kp_batch_validate(records->ptr + off, len - off, 0, &bh);
		if (rc < 0)
			return kp_error_from_errno(rc);
		if ((int64_t)kp_batch_size(&bh) > q->cfg->message_max_bytes)
			return KP_ERR_MESSAGE_TOO_LARGE;
		off += kp_batch_size(&bh);
	}
	for (off = 0; off < len;) {
		struct kp_batch_header bh;
		int64_t base;

		kp_batch_header_parse(records->ptr + off, len - off, &bh);
		/* The one copy of the produced bytes: into the log's tail-cache chunk. */
		rc = stor_log_append(log, records->ptr + off, kp_batch_size(&bh), flags,
			produce_appended, c, &base);
		if (rc == -EAGAIN)
			return PRODUCE_FULL; /* too many appends in flight or no free chunk */
		if (rc < 0)
			return rc == -EIO ? KP_ERR_KAFKA_STORAGE_ERROR : kp_error_from_errno(rc);
		c->pending++;
		if (*base_offset < 0)
			*base_offset = base;
		off += kp_batch_size(&bh);
	}
	return KP_ERR_NONE;
}

static int
produce(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r)
{
	struct dp_broker *b = q->b;
	struct kp_arena *a = &q->arena;
	int16_t v = h->request_api_version;
	struct kp_produce_request m;
	struct kp_produce_response resp;
	struct kp_produce_response_topic_produce_response *rts;
	struct produce_ctx *c;
	uint8_t *buf = NULL;
	unsigned flags = 0;
	int rc;

	if (g_produce_free == NULL)
		return -EAGAIN; /* every context waits for appends: offered again later */
	rc = kp_produce_request_decode(&m, v, r, a);
	if (rc < 0) {
		close_log(conn, "malformed", h, rc);
		return -EPROTO;
	}
	if (m.acks != 0) {
		buf = dp_conn_resp_alloc(conn);
		if (buf == NULL)
			return -EAGAIN;
	}
	if (m.transactional_id.len > 0) {
		/* UNFINISHED: transactions. */
		if (buf != NULL)
			dp_conn_resp_free(conn->env->resp_pool, buf);
		close_log(conn, "transactional", h, -ENOTSUP);
		return -EPROTONOSUPPORT;
	}
	if (m.acks == -1 && b->log_cfg.fsync_acks_all)
		flags = STOR_APPEND_DURABLE;
	c = g_produce_free;
	g_produce_free = c->next_free;
	c->conn = conn;
	c->req = req;
	c->buf = buf;
	c->len = 0;
	c->pending = 1;
	c->failed = false;
	rts = kp_arena_alloc(a, sizeof(*rts) * (size_t)(m.topic_data.count > 0 ?
								 m.topic_data.count : 1), 8);
	if (rts == NULL)
		goto nomem;
	for (int32_t i = 0; i < m.topic_data.count; i++) {
		const struct kp_produce_request_topic_produce_data *td = &m.topic_data.items[i];
		struct dp_topic *t = dp_broker_topic_find(b, td->name.ptr, (size_t)td->name.len);
		struct kp_produce_response_partition_produce_response *prs;
		int32_t np = td->partition_data.count > 0 ? td->partition_data.count : 0;

		kp_produce_response_topic_produce_response_init(&rts[i]);
		rts[i].name = td->name;
		prs = kp_arena_alloc(a, sizeof(*prs) * (size_t)(np > 0 ? np : 1), 8);
		if (prs == NULL)
			goto nomem;
		rts[i].partition_responses.items = prs;
		rts[i].partition_responses.count = np;
		for (int32_t j = 0; j < np; j++) {
			const struct kp_produce_request_partition_produce_data *pd =
				&td->partition_data.items[j];

			kp_produce_response_partition_produce_response_init(&prs[j]);
			prs[j].index = pd->index;
			prs[j].base_offset = -1;
			if (t == NULL || pd->index < 0 || pd->index >= t->partitions) {
				prs[j].error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				continue;
			}
			if (t->part[pd->index].log == NULL) { /* offline: see dp_broker_topic_configs_set */
				prs[j].error_code = KP_ERR_KAFKA_STORAGE_ERROR;
				continue;
			}
			prs[j].error_code = produce_partition(q, c, t->part[pd->index].log,
				&pd->records, flags, &prs[j].base_offset);
			if (prs[j].error_code == PRODUCE_FULL && c->pending == 1) {
				/* Nothing of this request is appended: offer it again later. */
				dp_log(DP_LOG_DEBUG, "produce to %.*s-%d held back: storage full",
					td->name.len, td->name.ptr, pd->index);
				if (buf != NULL)
					dp_conn_resp_free(conn->env->resp_pool, buf);
				produce_ctx_put(c);
				return -EAGAIN;
			}
			if (prs[j].error_code == PRODUCE_FULL) /* partly appended: retriable */
				prs[j].error_code = KP_ERR_REQUEST_TIMED_OUT;
			prs[j].log_start_offset = stor_log_start_offset(t->part[pd->index].log);
		}
	}
	if (buf != NULL) {
		const struct kp_api_desc *d = kp_api_lookup(h->request_api_key);
		struct kp_response_header rh;
		struct kp_writer w;

		kp_produce_response_init(&resp);
		resp.responses.items = rts;
		resp.responses.count = m.topic_data.count > 0 ? m.topic_data.count : 0;
		kp_response_header_init(&rh);
		rh.correlation_id = h->correlation_id;
		kp_writer_init(&w, buf + 4, conn->env->resp_buf_size - 4);
		rc = kp_response_header_encode(&rh, kp_api_response_header_version(d, v), &w);
		if (rc == 0)
			rc = kp_produce_response_encode(&resp, v, &w);
		if (rc < 0) {
			close_log(conn, "cannot encode the response to a", h, rc);
			c->failed = true;
		} else {
			c->len = (uint32_t)kp_writer_len(&w) + 4;
			buf[0] = (uint8_t)((c->len - 4) >> 24);
			buf[1] = (uint8_t)((c->len - 4) >> 16);
			buf[2] = (uint8_t)((c->len - 4) >> 8);
			buf[3] = (uint8_t)(c->len - 4);
		}
	}
	if (--c->pending == 0)
		produce_finish(c);
	return 0;
nomem:
	close_log(conn, "arena too small for a", h, -ENOMEM);
	c->failed = true;
	if (--c->pending == 0)
		produce_finish(c);
	return 0;
}

/* ---- Fetch ------------------------------------------------------------------------------ */

#define FETCH_READ_AREA (4u * 1024u * 1024u)
/* Bytes kept free in a response buffer for everything but the records. */
#define FETCH_OVERHEAD_BASE 256u
#define FETCH_OVERHEAD_PER_PARTITION 96u

static uint8_t *g_read_area; /* 4 KiB aligned, carved per partition for disk reads */

/*
 * Large Fetch response buffers, used when dataplane.response.buffer.bytes is
 * smaller than the largest batch (message.max.bytes) plus headers, so any
 * stored batch can be fetched. Allocated at start; a free stack (the
 * broker's lcore only).
 */
#define FETCH_BIG_COUNT 8
static uint8_t *g_big[FETCH_BIG_COUNT];
static uint8_t *g_big_free[FETCH_BIG_COUNT];
static unsigned g_n_big_free;
static uint32_t g_big_bytes; /* 0: not used */

static void
big_free(void *arg, void *buf)
{
	g_big_free[g_n_big_free++] = buf;
}

/* A response buffer for a Fetch: a large one when needed and free, else the pool's. */
static int
fetch_buf_get(struct dp_conn *conn, struct resp_buf *rb)
{
	if (g_big_bytes > conn->env->resp_buf_size && g_n_big_free > 0) {
		rb->p = g_big_free[--g_n_big_free];
		rb->cap = g_big_bytes;
		rb->free_fn = big_free;
		rb->free_arg = NULL;
		return 0;
	}
	rb->p = dp_conn_resp_alloc(conn);
	if (rb->p == NULL)
		return -EAGAIN;
	rb->cap = conn->env->resp_buf_size;
	rb->free_fn = dp_conn_resp_free;
	rb->free_arg = conn->env->resp_pool;
	return 0;
}

struct read_wait {
	bool done;
	int rc;
};

static void
read_done(void *arg, struct stor_read *rd, int rc)
{
	struct read_wait *w = arg;

	w->done = true;
	w->rc = rc;
}

/*
 * A Fetch waiting for disk reads: its request, response structs and read
 * buffers live here (own arena and read area) until the last read
 * completes; then the response is encoded and sent. A small pool taken at
 * start; with none free, disk reads are waited for in the handler.
 */
#define FETCH_ASYNC_COUNT 8
#define FETCH_ASYNC_ARENA (128u * 1024u)
#define FETCH_ASYNC_AREA (2u * 1024u * 1024u)

struct fetch_async {
	bool used;
	struct dp_conn *conn;
	uint64_t req;
	struct kp_request_header h;
	struct resp_buf rb;
	struct kp_fetch_response resp;
	struct stor_read *reads;
	uint32_t n_reads;
	uint32_t pending; /* disk reads in flight */
	bool failed;      /* the request was refused meanwhile: no reply */
	struct kp_arena arena;
	uint8_t *arena_buf;
	uint8_t *area; /* 4 KiB aligned, FETCH_ASYNC_AREA bytes */
};

struct fetch_slot {
	struct fetch_async *fa;
	struct kp_fetch_response_partition_data *pd;
};

static struct fetch_async g_fa[FETCH_ASYNC_COUNT];

static void
fetch_async_finish(struct fetch_async *fa)
{
	if (fa->failed)
		fa->rb.free_fn(fa->rb.free_arg, fa->rb.p);
	else
		reply_buf(fa->conn, fa->req, &fa->h, &fa->rb, &fa->resp);
	for (uint32_t k = 0; k < fa->n_reads; k++)
		stor_read_release(&fa->reads[k]);
	fa->used = false;
}

static void
fetch_slot_done(void *arg, struct stor_read *rd, int rc)
{
	struct fetch_slot *sl = arg;
	struct fetch_async *fa = sl->fa;

	if (rc < 0)
		sl->pd->error_code = KP_ERR_KAFKA_STORAGE_ERROR;
	else
		sl->pd->records = (struct kp_bytes){.ptr = rd->data, .len = (int32_t)rd->len};
	if (--fa->pending == 0)
		fetch_async_finish(fa);
}

/*
 * Read up to @max bytes at @offset into @pd's records. With @fa, a disk
 * read completes later (returns 1; fetch_slot_done() fills @pd); without,
 * it is waited for here by polling the engine (the reactor stalls for it).
 */
static int
fetch_read(struct dp_requests *q, struct fetch_async *fa,
	struct kp_fetch_response_partition_data *pd, struct stor_log *log, struct stor_read *rd,
	int64_t offset, size_t max, uint8_t **area, size_t *area_left)
{
	size_t need = stor_read_buf_size(max);
	struct read_wait w = {false, 0};
	struct fetch_slot *sl = NULL;
	int rc;

	need = (need + 4095) & ~(size_t)4095;
	if (need > *area_left)
		return -ENOBUFS;
	if (fa != NULL) {
		sl = kp_arena_alloc(&fa->arena, sizeof(*sl), 8);
		if (sl == NULL)
			return -ENOBUFS;
		sl->fa = fa;
		sl->pd = pd;
	}
	memset(rd, 0, sizeof(*rd));
	rd->buf = *area;
	rd->buf_size = need;
	rc = stor_log_read(log, rd, offset, max, sl != NULL ? fetch_slot_done : read_done,
		sl != NULL ? (void *)sl : (void *)&w);
	if (rc == -EINPROGRESS && fa != NULL) {
		fa->pending++;
		*area += need;
		*area_left -= need;
		return 1;
	}
	if (rc == -EINPROGRESS) {
		while (!w.done)
			stor_engine_poll(q->b->engine);
		rc = w.rc;
		if (rc < 0) {
			stor_read_release(rd);
			return rc;
		}
	} else if (rc < 0) {
		return rc;
	}
	if (!rd->from_cache) {
		*area += need;
		*area_left -= need;
	}
	pd->records = (struct kp_bytes){.ptr = rd->data, .len = (int32_t)rd->len};
	return 0;
}

static struct dp_topic *
fetch_topic(struct dp_broker *b, int16_t v, const struct kp_fetch_request_fetch_topic *ft)
{
	if (v >= 13)
		return topic_by_id(b, &ft->topic_id);
	return dp_broker_topic_find(b, ft->topic.ptr, (size_t)ft->topic.len);
}

/*
 * Serve a Fetch. With @may_wait, a fetch that found fewer than min_bytes and
 * allows waiting (max_wait_ms > 0) answers nothing and returns 1: the
 * caller parks it and runs it again on an append or at its deadline.
 */
static int fetch_run_ctx(struct dp_requests *q, struct fetch_async *fa, struct dp_conn *conn,
	uint64_t req, const struct kp_request_header *h, struct kp_reader *r, bool may_wait);

static int
fetch_run(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r, bool may_wait)
{
	struct fetch_async *fa = NULL;

	for (int i = 0; i < FETCH_ASYNC_COUNT && fa == NULL; i++) {
		if (!g_fa[i].used)
			fa = &g_fa[i];
	}
	return fetch_run_ctx(q, fa, conn, req, h, r, may_wait);
}

/* fetch_run() with @fa (NULL: disk reads are waited for in the handler). */
static int
fetch_run_ctx(struct dp_requests *q, struct fetch_async *fa, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r, bool may_wait)
{
	struct dp_broker *b = q->b;
	struct kp_arena *a = &q->arena;
	int16_t v = h->request_api_version;
	struct kp_fetch_request m;
	struct kp_fetch_response resp;
	struct kp_fetch_response_fetchable_topic_response *rts;
	struct stor_read *reads;
	uint32_t n_reads = 0;
	uint32_t n_parts = 0;
	uint8_t *area = g_read_area;
	size_t area_left = FETCH_READ_AREA;
	int64_t budget;
	int64_t found = 0;
	bool errors = false;
	struct resp_buf rb;
	int rc;

	if (fetch_buf_get(conn, &rb) < 0)
		return -EAGAIN;
	if (fa != NULL) {
		kp_arena_init(&fa->arena, fa->arena_buf, FETCH_ASYNC_ARENA);
		a = &fa->arena;
		area = fa->area;
		area_left = FETCH_ASYNC_AREA;
		fa->pending = 0;
		fa->failed = false;
	}
	rc = kp_fetch_request_decode(&m, v, r, a);
	if (rc < 0) {
		rb.free_fn(rb.free_arg, rb.p);
		close_log(conn, "malformed", h, rc);
		return -EPROTO;
	}
	for (int32_t i = 0; i < m.topics.count; i++)
		n_parts += m.topics.items[i].partitions.count > 0 ?
			(uint32_t)m.topics.items[i].partitions.count : 0;
	budget = (int64_t)rb.cap - FETCH_OVERHEAD_BASE -
		(int64_t)n_parts * FETCH_OVERHEAD_PER_PARTITION;
	if (v >= 3 && m.max_bytes < budget)
		budget = m.max_bytes;
	reads = kp_arena_alloc(a, sizeof(*reads) * (n_parts > 0 ? n_parts : 1), 8);
	rts = kp_arena_alloc(a, sizeof(*rts) * (size_t)(m.topics.count > 0 ? m.topics.count : 1),
		8);
	if (reads == NULL || rts == NULL)
		goto nomem;
	for (int32_t i = 0; i < m.topics.count; i++) {
		const struct kp_fetch_request_fetch_topic *ft = &m.topics.items[i];
		struct dp_topic *t = fetch_topic(b, v, ft);
		struct kp_fetch_response_partition_data *pds;
		int32_t np = ft->partitions.count > 0 ? ft->partitions.count : 0;

		kp_fetch_response_fetchable_topic_response_init(&rts[i]);
		rts[i].topic = ft->topic;
		rts[i].topic_id = ft->topic_id;
		pds = kp_arena_alloc(a, sizeof(*pds) * (size_t)(np > 0 ? np : 1), 8);
		if (pds == NULL)
			goto nomem;
		rts[i].partitions.items = pds;
		rts[i].partitions.count = np;
		for (int32_t j = 0; j < np; j++) {
			const struct kp_fetch_request_fetch_partition *fp = &ft->partitions.items[j];
			struct stor_log *log;
			size_t max;

			kp_fetch_response_partition_data_init(&pds[j]);
			pds[j].partition_index = fp->partition;
			pds[j].records = (struct kp_bytes){.ptr = NULL, .len = 0};
			if (t == NULL || fp->partition < 0 || fp->partition >= t->partitions) {
				pds[j].error_code = v >= 13 && t == NULL ? KP_ERR_UNKNOWN_TOPIC_ID :
					KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				errors = true;
				continue;
			}
			log = t->part[fp->partition].log;
			if (log == NULL) { /* offline: see dp_broker_topic_configs_set */
				pds[j].error_code = KP_ERR_KAFKA_STORAGE_ERROR;
				errors = true;
				continue;
			}
			pds[j].high_watermark = stor_log_written_offset(log);
			pds[j].last_stable_offset = pds[j].high_watermark;
			pds[j].log_start_offset = stor_log_start_offset(log);
			if (fp->fetch_offset == pds[j].high_watermark || budget <= 0)
				continue;
			max = (size_t)(fp->partition_max_bytes < budget ? fp->partition_max_bytes :
									    budget);
			if (max == 0)
				continue;
			rc = fetch_read(q, fa, &pds[j], log, &reads[n_reads], fp->fetch_offset, max,
				&area, &area_left);
			if (rc == 1) { /* disk read in flight: its size is known later */
				found += (int64_t)max;
				budget -= (int64_t)max;
				n_reads++;
				continue;
			}
			if (rc == -ENXIO) {
				pds[j].error_code = KP_ERR_OFFSET_OUT_OF_RANGE;
				errors = true;
				continue;
			}
			if (rc == -ENOBUFS)
				continue; /* UNFINISHED: a first batch above the budget is not sent */
			if (rc < 0) {
				pds[j].error_code = KP_ERR_KAFKA_STORAGE_ERROR;
				errors = true;
				continue;
			}
			found += (int64_t)reads[n_reads].len;
			budget -= (int64_t)reads[n_reads].len;
			n_reads++;
		}
	}
	if (may_wait && !errors && m.max_wait_ms > 0 && (fa == NULL || fa->pending == 0) &&
		found < (m.min_bytes > 1 ? m.min_bytes : 1)) {
		for (uint32_t k = 0; k < n_reads; k++)
			stor_read_release(&reads[k]);
		rb.free_fn(rb.free_arg, rb.p);
		return 1;
	}
	/*
	 * The records are copied into the response buffer (zero-copy sends of
	 * tail-cache chunks come with refcounted buffers).
	 */
	kp_fetch_response_init(&resp);
	resp.responses.items = rts;
	resp.responses.count = m.topics.count > 0 ? m.topics.count : 0;
	resp.session_id = 0;
	if (fa != NULL && fa->pending > 0) {
		/* Answered by fetch_slot_done() when the last disk read completes. */
		dp_log(DP_LOG_DEBUG, "fetch waits for %u disk read(s)", fa->pending);
		fa->used = true;
		fa->conn = conn;
		fa->req = req;
		fa->h = *h;
		fa->h.client_id = (struct kp_str){.ptr = NULL, .len = -1};
		memset(&fa->h.unknown_tags, 0, sizeof(fa->h.unknown_tags));
		fa->rb = rb;
		fa->resp = resp;
		fa->reads = reads;
		fa->n_reads = n_reads;
		return 0;
	}
	rc = reply_buf(conn, req, h, &rb, &resp);
	for (uint32_t k = 0; k < n_reads; k++)
		stor_read_release(&reads[k]);
	return rc;
nomem:
	close_log(conn, "arena too small for a", h, -ENOMEM);
	if (fa != NULL && fa->pending > 0) {
		/* Reads in flight own their buffers: fetch_async_finish() drops it all. */
		fa->used = true;
		fa->failed = true;
		fa->conn = conn;
		fa->req = req;
		fa->rb = rb;
		fa->reads = reads;
		fa->n_reads = n_reads;
		return -ENOMEM;
	}
	for (uint32_t k = 0; k < n_reads; k++)
		stor_read_release(&reads[k]);
	rb.free_fn(rb.free_arg, rb.p);
	return -ENOMEM;
}

/*
 * Long poll: a Fetch that found less than min_bytes is parked with a copy of
 * its header and body and run again when an append completes (any
 * partition: a first cut, see dp_requests_poll) or at max_wait_ms.
 */
#define FETCH_WAITERS 256
#define FETCH_WAIT_BODY 4096 /* larger fetch requests are answered without waiting */

struct fetch_waiter {
	bool used;
	struct dp_conn *conn;
	uint64_t req;
	uint64_t deadline_tsc;
	struct kp_request_header h;
	uint32_t len;
	uint8_t body[FETCH_WAIT_BODY];
};

static struct fetch_waiter g_waiters[FETCH_WAITERS];
static unsigned g_n_waiting;

static int
fetch(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r)
{
	const uint8_t *body = r->p;
	struct kp_reader saved = *r;
	size_t len = (size_t)(r->end - r->p);
	struct fetch_waiter *w = NULL;
	int rc;

	if (len <= FETCH_WAIT_BODY && g_n_waiting < FETCH_WAITERS) {
		for (unsigned i = 0; i < FETCH_WAITERS && w == NULL; i++) {
			if (!g_waiters[i].used)
				w = &g_waiters[i];
		}
	}
	rc = fetch_run(q, conn, req, h, r, w != NULL);
	if (rc != 1)
		return rc;
	/* Park it: max_wait_ms is read again by the decode when it runs next. */
	struct kp_fetch_request m;

	kp_arena_reset(&q->arena);
	kp_fetch_request_decode(&m, h->request_api_version, &saved, &q->arena);
	w->used = true;
	w->conn = conn;
	w->req = req;
	w->deadline_tsc = rte_rdtsc() + (uint64_t)m.max_wait_ms * rte_get_tsc_hz() / 1000;
	w->h = *h;
	w->h.client_id = (struct kp_str){.ptr = NULL, .len = -1};
	memset(&w->h.unknown_tags, 0, sizeof(w->h.unknown_tags));
	w->len = (uint32_t)len;
	memcpy(w->body, body, len);
	g_n_waiting++;
	return 0;
}

int
dp_requests_poll(void *arg)
{
	struct dp_requests *q = arg;
	uint64_t now;
	bool appended = g_appended;
	int done = 0;

	if (g_n_waiting == 0)
		return 0;
	now = rte_rdtsc();
	g_appended = false;
	for (unsigned i = 0; i < FETCH_WAITERS; i++) {
		struct fetch_waiter *w = &g_waiters[i];
		bool expired;
		struct kp_reader r;
		int rc;

		if (!w->used)
			continue;
		if (dp_conn_req_gen(w->req) != w->conn->gen) { /* connection gone */
			w->used = false;
			g_n_waiting--;
			continue;
		}
		expired = now >= w->deadline_tsc;
		if (!expired && !appended)
			continue;
		kp_arena_reset(&q->arena);
		kp_reader_init(&r, w->body, w->len);
		rc = fetch_run(q, w->conn, w->req, &w->h, &r, !expired);
		if (rc == 1 || rc == -EAGAIN)
			continue; /* still nothing (or no response buffer): keep waiting */
		if (rc < 0)
			dp_conn_close(w->conn);
		w->used = false;
		g_n_waiting--;
		done++;
	}
	return done;
}

/* ---- ListOffsets ------------------------------------------------------------------------ */

static int
list_offsets(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r)
{
	struct dp_broker *b = q->b;
	struct kp_arena *a = &q->arena;
	int16_t v = h->request_api_version;
	struct kp_list_offsets_request m;
	struct kp_list_offsets_response resp;
	struct kp_list_offsets_response_list_offsets_topic_response *rts;
	uint8_t *buf;
	int rc;

	rc = request_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	rts = kp_arena_alloc(a, sizeof(*rts) * (size_t)(m.topics.count > 0 ? m.topics.count : 1),
		8);
	if (rts == NULL)
		goto nomem;
	for (int32_t i = 0; i < m.topics.count; i++) {
		const struct kp_list_offsets_request_list_offsets_topic *lt = &m.topics.items[i];
		struct dp_topic *t = dp_broker_topic_find(b, lt->name.ptr, (size_t)lt->name.len);
		struct kp_list_offsets_response_list_offsets_partition_response *prs;
		int32_t np = lt->partitions.count > 0 ? lt->partitions.count : 0;

		kp_list_offsets_response_list_offsets_topic_response_init(&rts[i]);
		rts[i].name = lt->name;
		prs = kp_arena_alloc(a, sizeof(*prs) * (size_t)(np > 0 ? np : 1), 8);
		if (prs == NULL)
			goto nomem;
		rts[i].partitions.items = prs;
		rts[i].partitions.count = np;
		for (int32_t j = 0; j < np; j++) {
			const struct kp_list_offsets_request_list_offsets_partition *lp =
				&lt->partitions.items[j];
			int64_t off = -1;
			int64_t ts = -1;

			kp_list_offsets_response_list_offsets_partition_response_init(&prs[j]);
			prs[j].partition_index = lp->partition_index;
			if (t == NULL || lp->partition_index < 0 ||
				lp->partition_index >= t->partitions) {
				prs[j].error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				continue;
			}
			if (t->part[lp->partition_index].log == NULL) { /* offline */
				prs[j].error_code = KP_ERR_KAFKA_STORAGE_ERROR;
				continue;
			}
			rc = stor_log_offset_for_time(t->part[lp->partition_index].log,
				lp->timestamp, &off, &ts);
			if (rc < 0) {
				prs[j].error_code = rc == -EIO ? KP_ERR_KAFKA_STORAGE_ERROR :
					kp_error_from_errno(rc);
				continue;
			}
			prs[j].timestamp = lp->timestamp < 0 ? -1 : ts;
			prs[j].offset = off;
			prs[j].leader_epoch = 0;
			if (v == 0) {
				int64_t *o = kp_arena_alloc(a, sizeof(*o), 8);

				if (o == NULL)
					goto nomem;
				*o = off;
				prs[j].old_style_offsets =
					(struct kp_array_int64){.items = o, .count = off >= 0};
			}
		}
	}
	kp_list_offsets_response_init(&resp);
	resp.topics.items = rts;
	resp.topics.count = m.topics.count > 0 ? m.topics.count : 0;
	return reply(conn, req, h, buf, &resp);
nomem:
	return request_nomem(conn, h, buf);
}

/* ---- DeleteTopics, CreatePartitions ----------------------------------------------------- */

/*
 * Asynchronous Fetch disk reads hold references into logs: let them finish
 * (their responses leave) before a log is closed. Bounded by the reads in
 * flight (at most FETCH_ASYNC_COUNT fetches).
 */
static void
fetch_async_drain(struct dp_requests *q)
{
	for (;;) {
		bool busy = false;

		for (int i = 0; i < FETCH_ASYNC_COUNT; i++)
			busy = busy || g_fa[i].used;
		if (!busy)
			return;
		stor_engine_poll(q->b->engine);
	}
}

static int
delete_topics(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
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

	rc = request_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	n = v >= 6 ? m.topics.count : m.topic_names.count;
	if (n < 0)
		n = 0;
	res = kp_arena_alloc(a, sizeof(*res) * (size_t)(n > 0 ? n : 1), 8);
	if (res == NULL) {
		dp_conn_resp_free(conn->env->resp_pool, buf);
		close_log(conn, "arena too small for a", h, -ENOMEM);
		return -ENOMEM;
	}
	fetch_async_drain(q);
	for (int32_t i = 0; i < n; i++) {
		struct dp_topic *t;
		struct kp_str name;

		kp_delete_topics_response_deletable_topic_result_init(&res[i]);
		res[i].error_message = kstr_null();
		if (v >= 6 && m.topics.items[i].name.len < 0) {
			res[i].topic_id = m.topics.items[i].topic_id;
			res[i].name = (struct kp_str){.ptr = NULL, .len = -1};
			t = topic_by_id(b, &m.topics.items[i].topic_id);
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
			res[i].error_message = kstr("Topic table could not be written.");
		}
	}
	kp_delete_topics_response_init(&resp);
	resp.responses.items = res;
	resp.responses.count = n;
	return reply(conn, req, h, buf, &resp);
}

static int
create_partitions(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
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

	rc = request_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	n = m.topics.count > 0 ? m.topics.count : 0;
	res = kp_arena_alloc(a, sizeof(*res) * (size_t)(n > 0 ? n : 1), 8);
	if (res == NULL) {
		dp_conn_resp_free(conn->env->resp_pool, buf);
		close_log(conn, "arena too small for a", h, -ENOMEM);
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
		res[i].error_message = kstr_null();
		res[i].name = ct->name;
		if (dup) {
			res[i].error_code = KP_ERR_INVALID_REQUEST;
			res[i].error_message = kstr("Duplicate topic in the request.");
			continue;
		}
		if (t == NULL) {
			res[i].error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
			res[i].error_message = kstr("Unknown topic.");
			continue;
		}
		if (ct->assignments.count > 0) {
			/* UNFINISHED: manual replica assignments. */
			res[i].error_code = KP_ERR_INVALID_REPLICA_ASSIGNMENT;
			res[i].error_message = kstr("Replica assignments are not supported yet.");
			continue;
		}
		rc = dp_broker_partitions_add(b, t, ct->count, m.validate_only);
		if (rc == -EDOM) {
			res[i].error_code = KP_ERR_INVALID_PARTITIONS;
			res[i].error_message =
			        kstr(ct->count <= t->partitions
			                     ? "Number of partitions can only be increased."
			                     : "Number of partitions must be at most 1024.");
		} else if (rc < 0) {
			res[i].error_code = KP_ERR_KAFKA_STORAGE_ERROR;
			res[i].error_message = kstr("Partitions could not be added (broker log).");
		}
	}
	kp_create_partitions_response_init(&resp);
	resp.results.items = res;
	resp.results.count = n;
	return reply(conn, req, h, buf, &resp);
}

/* ---- DescribeConfigs, AlterConfigs, IncrementalAlterConfigs ------------------------------ */

#define RES_TOPIC 2
#define RES_BROKER 4
#define SRC_TOPIC 1   /* DYNAMIC_TOPIC_CONFIG */
#define SRC_STATIC 4  /* STATIC_BROKER_CONFIG */
#define SRC_DEFAULT 5 /* DEFAULT_CONFIG */
#define CT_BOOLEAN 1
#define CT_STRING 2
#define CT_INT 3
#define CT_LONG 5
#define CT_LIST 7

/* The topic configs storage takes (Kafka's topic-level names). */
enum topic_key {
	TK_SEGMENT_BYTES,
	TK_SEGMENT_MS,
	TK_RETENTION_MS,
	TK_RETENTION_BYTES,
	TK_FLUSH_MESSAGES,
	TK_FLUSH_MS,
	TK_INDEX_INTERVAL_BYTES,
	TK_CLEANUP_POLICY,
	TK_DELETE_RETENTION_MS,
	TK_PREALLOCATE,
	TK_COUNT,
};

static const struct {
	const char *name;
	int8_t type;
} topic_keys[TK_COUNT] = {
        [TK_SEGMENT_BYTES] = {"segment.bytes", CT_INT},
        [TK_SEGMENT_MS] = {"segment.ms", CT_LONG},
        [TK_RETENTION_MS] = {"retention.ms", CT_LONG},
        [TK_RETENTION_BYTES] = {"retention.bytes", CT_LONG},
        [TK_FLUSH_MESSAGES] = {"flush.messages", CT_LONG},
        [TK_FLUSH_MS] = {"flush.ms", CT_LONG},
        [TK_INDEX_INTERVAL_BYTES] = {"index.interval.bytes", CT_INT},
        [TK_CLEANUP_POLICY] = {"cleanup.policy", CT_LIST},
        [TK_DELETE_RETENTION_MS] = {"delete.retention.ms", CT_LONG},
        [TK_PREALLOCATE] = {"preallocate", CT_BOOLEAN},
};

static int
topic_key_find(const char *name, size_t len)
{
	for (int i = 0; i < TK_COUNT; i++) {
		if (strlen(topic_keys[i].name) == len && memcmp(topic_keys[i].name, name, len) == 0)
			return i;
	}
	return -1;
}

static void
topic_key_value(const struct stor_log_config *c, int k, char *out, size_t cap)
{
	switch (k) {
	case TK_SEGMENT_BYTES:
		snprintf(out, cap, "%" PRIu64, c->segment_bytes);
		break;
	case TK_SEGMENT_MS:
		snprintf(out, cap, "%" PRId64, c->roll_ms);
		break;
	case TK_RETENTION_MS:
		snprintf(out, cap, "%" PRId64, c->retention_ms);
		break;
	case TK_RETENTION_BYTES:
		snprintf(out, cap, "%" PRId64, c->retention_bytes);
		break;
	case TK_FLUSH_MESSAGES:
		snprintf(out, cap, "%" PRId64, c->flush_messages);
		break;
	case TK_FLUSH_MS:
		snprintf(out, cap, "%" PRId64, c->flush_ms);
		break;
	case TK_INDEX_INTERVAL_BYTES:
		snprintf(out, cap, "%" PRIu32, c->index_interval_bytes);
		break;
	case TK_CLEANUP_POLICY:
		snprintf(out, cap, "%s%s%s",
		         (c->cleanup_policy & STOR_CLEANUP_COMPACT) ? "compact" : "",
		         c->cleanup_policy == (STOR_CLEANUP_COMPACT | STOR_CLEANUP_DELETE) ? ","
		                                                                           : "",
		         (c->cleanup_policy & STOR_CLEANUP_DELETE) ? "delete" : "");
		break;
	case TK_DELETE_RETENTION_MS:
		snprintf(out, cap, "%" PRId64, c->delete_retention_ms);
		break;
	default:
		snprintf(out, cap, "%s", c->preallocate ? "true" : "false");
		break;
	}
}

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
	        kp_arena_alloc(a, sizeof(*e) * TK_COUNT, 8);
	int32_t n = 0;

	if (e == NULL)
		return -ENOMEM;
	if (dp_broker_topic_log_config(q->b, t, &c) < 0)
		return -EBADR;
	for (int k = 0; k < TK_COUNT; k++) {
		char val[64];
		char *v;
		bool set = topic_config_has(t, topic_keys[k].name);

		if (!key_wanted(keys, topic_keys[k].name))
			continue;
		topic_key_value(&c, k, val, sizeof(val));
		v = arena_strdup(a, val, strlen(val));
		if (v == NULL)
			return -ENOMEM;
		kp_describe_configs_response_describe_configs_resource_result_init(&e[n]);
		e[n].name = kstr(topic_keys[k].name);
		e[n].value = kstr(v);
		e[n].read_only = false;
		e[n].is_default = !set;
		e[n].config_source = set ? SRC_TOPIC : SRC_DEFAULT;
		e[n].is_sensitive = false;
		e[n].config_type = topic_keys[k].type;
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
				e[n].name = kstr(name);
				e[n].value = kstr(val);
				e[n].read_only = true;
				e[n].is_default = src == SRC_DEFAULT;
				e[n].config_source = src;
				e[n].is_sensitive = false;
				e[n].config_type = CT_STRING; /* UNFINISHED: the key's own type */
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

static int
describe_configs(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
                 const struct kp_request_header *h, struct kp_reader *r)
{
	struct kp_arena *a = &q->arena;
	struct kp_describe_configs_request m;
	struct kp_describe_configs_response resp;
	struct kp_describe_configs_response_describe_configs_result *res;
	int32_t n;
	uint8_t *buf;
	int rc;

	rc = request_begin(q, conn, h, r, &m, &buf);
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
		res[i].error_message = kstr_null();
		res[i].resource_type = rr->resource_type;
		res[i].resource_name = rr->resource_name;
		res[i].configs.count = 0;
		if (rr->resource_type == RES_TOPIC) {
			t = dp_broker_topic_find(q->b, rr->resource_name.ptr,
			                         (size_t)rr->resource_name.len);
			if (t == NULL) {
				res[i].error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				res[i].error_message = kstr("Unknown topic.");
				continue;
			}
			rc = describe_topic(q, t, &rr->configuration_keys, &res[i]);
		} else if (rr->resource_type == RES_BROKER &&
		           broker_name_ok(q, rr->resource_name)) {
			rc = describe_broker(q, &rr->configuration_keys, &res[i]);
		} else {
			res[i].error_code = KP_ERR_INVALID_REQUEST;
			res[i].error_message = kstr("Unsupported resource type or unknown broker.");
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
	return reply(conn, req, h, buf, &resp);
nomem:
	return request_nomem(conn, h, buf);
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
	char vals[TK_COUNT][DP_BROKER_CONFIGS_MAX / 4];
	bool set[TK_COUNT] = {false};
	char out[DP_BROKER_CONFIGS_MAX];
	size_t used = 0;
	int rc;

	*msg = NULL;
	/* The current configs (unless replaced); only topic_keys[] names are kept. */
	for (int k = 0; !replace && k < TK_COUNT; k++) {
		const char *c = t->configs;
		size_t kl = strlen(topic_keys[k].name);

		while (c != NULL && *c != '\0') {
			const char *nl = strchr(c, '\n');
			size_t ll = nl != NULL ? (size_t)(nl - c) : strlen(c);

			if (ll > kl && strncmp(c, topic_keys[k].name, kl) == 0 && c[kl] == '=' &&
			    ll - kl - 1 < sizeof(vals[k])) {
				memcpy(vals[k], c + kl + 1, ll - kl - 1);
				vals[k][ll - kl - 1] = '\0';
				set[k] = true;
			}
			c = nl != NULL ? nl + 1 : NULL;
		}
	}
	for (int32_t i = 0; i < n_ops; i++) {
		int k = topic_key_find(ops[i].name.ptr,
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
			/* UNFINISHED: APPEND/SUBTRACT on cleanup.policy. */
			*msg = "APPEND and SUBTRACT are not supported.";
			return KP_ERR_INVALID_REQUEST;
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
	for (int k = 0; k < TK_COUNT; k++) {
		if (!set[k])
			continue;
		if (used + strlen(topic_keys[k].name) + strlen(vals[k]) + 3 > sizeof(out)) {
			*msg = "Configs too long.";
			return KP_ERR_INVALID_CONFIG;
		}
		used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%s=%s",
		                         used ? "\n" : "", topic_keys[k].name, vals[k]);
	}
	if (!validate_only)
		fetch_async_drain(q);
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

static int
alter_configs(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
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
		close_log(conn, "malformed", h, rc);
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
		res[i].error_message = kstr_null();
		res[i].resource_type = type;
		res[i].resource_name = name;
		res[i].error_code =
		        alter_resource(q, type, name, ops, n_ops, !incremental,
		                       incremental ? mi.validate_only : m.validate_only, &msg);
		if (msg != NULL)
			res[i].error_message = kstr(msg);
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
		return reply(conn, req, h, buf, &ri);
	}
	return reply(conn, req, h, buf, &resp);
nomem:
	return request_nomem(conn, h, buf);
}

/* ---- DescribeCluster, DeleteRecords, DescribeLogDirs, OffsetForLeaderEpoch --------------- */

static int
describe_cluster(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
                 const struct kp_request_header *h, struct kp_reader *r)
{
	struct kp_describe_cluster_request m;
	struct kp_describe_cluster_response resp;
	struct kp_describe_cluster_response_describe_cluster_broker broker;
	uint8_t *buf;
	int rc;

	rc = request_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	advertised_resolve(q);
	kp_describe_cluster_response_init(&resp);
	resp.error_message = kstr_null();
	resp.endpoint_type = m.endpoint_type;
	resp.cluster_id = kstr(q->b->cluster_id);
	resp.controller_id = q->b->node_id;
	/* No authorizer: authorized operations are not reported (INT32_MIN, "omitted"). */
	resp.cluster_authorized_operations = INT32_MIN;
	if (h->request_api_version >= 1 && m.endpoint_type != 1) {
		/* A broker describes brokers; controllers are the control process's. */
		resp.error_code = KP_ERR_UNSUPPORTED_ENDPOINT_TYPE;
		resp.error_message = kstr("Only brokers (endpoint type 1) are described here.");
		resp.controller_id = -1;
		return reply(conn, req, h, buf, &resp);
	}
	kp_describe_cluster_response_describe_cluster_broker_init(&broker);
	broker.broker_id = q->b->node_id;
	broker.host = kstr(q->host);
	broker.port = q->port;
	broker.rack = (struct kp_str){.ptr = NULL, .len = -1};
	resp.brokers.items = &broker;
	resp.brokers.count = 1;
	return reply(conn, req, h, buf, &resp);
}

static int
delete_records(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
               const struct kp_request_header *h, struct kp_reader *r)
{
	struct kp_arena *a = &q->arena;
	struct kp_delete_records_request m;
	struct kp_delete_records_response resp;
	struct kp_delete_records_response_delete_records_topic_result *rts;
	int32_t n;
	uint8_t *buf;
	int rc;

	rc = request_begin(q, conn, h, r, &m, &buf);
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
			int64_t hw;
			int64_t off;

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
			hw = stor_log_written_offset(log);
			off = dp->offset == -1 ? hw : dp->offset; /* -1: the high watermark */
			if (off < 0 || off > hw) {
				prs[j].error_code = KP_ERR_OFFSET_OUT_OF_RANGE;
				prs[j].low_watermark = stor_log_start_offset(log);
				continue;
			}
			rc = off > stor_log_start_offset(log) ? stor_log_delete_records(log, off)
			                                      : 0;
			if (rc < 0)
				prs[j].error_code = rc == -ENXIO ? KP_ERR_OFFSET_OUT_OF_RANGE
				                                 : KP_ERR_KAFKA_STORAGE_ERROR;
			prs[j].low_watermark = stor_log_start_offset(log);
		}
	}
	kp_delete_records_response_init(&resp);
	resp.topics.items = rts;
	resp.topics.count = n;
	return reply(conn, req, h, buf, &resp);
nomem:
	return request_nomem(conn, h, buf);
}

/* Fill @rt with the partitions of @t that @want names (NULL: all). */
static int
log_dirs_topic(struct kp_arena *a, struct dp_topic *t, const struct kp_array_int32 *want,
               struct kp_describe_log_dirs_response_describe_log_dirs_topic *rt)
{
	struct kp_describe_log_dirs_response_describe_log_dirs_partition *ps;
	int32_t n = 0;
	int32_t cap = want != NULL ? (want->count > 0 ? want->count : 0) : t->partitions;

	kp_describe_log_dirs_response_describe_log_dirs_topic_init(rt);
	rt->name = kstr(t->name);
	ps = kp_arena_alloc(a, sizeof(*ps) * (size_t)(cap > 0 ? cap : 1), 8);
	if (ps == NULL)
		return -ENOMEM;
	for (int32_t i = 0; i < cap; i++) {
		int32_t p = want != NULL ? want->items[i] : i;

		if (p < 0 || p >= t->partitions || t->part[p].log == NULL)
			continue; /* Kafka leaves out partitions this broker does not hold */
		kp_describe_log_dirs_response_describe_log_dirs_partition_init(&ps[n]);
		ps[n].partition_index = p;
		ps[n].partition_size = (int64_t)stor_log_size_bytes(t->part[p].log);
		ps[n].offset_lag = 0;
		ps[n].is_future_key = false;
		n++;
	}
	rt->partitions.items = ps;
	rt->partitions.count = n;
	return 0;
}

static int
describe_log_dirs(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
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

	rc = request_begin(q, conn, h, r, &m, &buf);
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
		if (log_dirs_topic(a, t, want, &rts[n]) < 0)
			goto nomem;
		n++;
	}
	kp_describe_log_dirs_response_describe_log_dirs_result_init(&dir);
	dir.error_code = KP_ERR_NONE;
	dir.log_dir = kstr(realpath(b->dir, path) != NULL ? path : b->dir);
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
	return reply(conn, req, h, buf, &resp);
nomem:
	return request_nomem(conn, h, buf);
}

/*
 * OffsetForLeaderEpoch: one broker, always leader, epoch 0. The log's
 * leader-epoch checkpoint is asked first; a log without one (nothing
 * assigns epochs yet) is all epoch 0, ending at the log end offset.
 */
static int
offset_for_leader_epoch(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
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

	rc = request_begin(q, conn, h, r, &m, &buf);
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
			rc = stor_log_epoch_end_offset(log, lp->leader_epoch, &epoch, &end);
			if (rc == -ENOENT) {
				epoch = 0;
				end = stor_log_end_offset(log);
			} else if (rc < 0) {
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
	return reply(conn, req, h, buf, &resp);
nomem:
	return request_nomem(conn, h, buf);
}

static int
serve(void *arg, struct dp_conn *conn, uint64_t req, const struct kp_request_header *h,
      struct kp_reader *r)
{
	struct dp_requests *q = arg;

	if (rte_lcore_id() != q->lcore) {
		/* UNFINISHED (multi-lcore): forward to the storage lcore by dp_msg_send(). */
		close_log(conn, "no broker on this lcore for a", h, -EXDEV);
		return -EPROTONOSUPPORT;
	}
	kp_arena_reset(&q->arena);
	for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++) {
		if (served[i].api_key == h->request_api_key &&
			(h->request_api_version < served[i].min_version ||
				h->request_api_version > served[i].max_version)) {
			close_log(conn, "unsupported version of a", h, -EPROTONOSUPPORT);
			return -EPROTONOSUPPORT;
		}
	}
	switch (h->request_api_key) {
	case API_KEY_METADATA:
		return metadata(q, conn, req, h, r);
	case API_KEY_CREATE_TOPICS:
		return create_topics(q, conn, req, h, r);
	case API_KEY_PRODUCE:
		return produce(q, conn, req, h, r);
	case API_KEY_FETCH:
		return fetch(q, conn, req, h, r);
	case API_KEY_LIST_OFFSETS:
		return list_offsets(q, conn, req, h, r);
	case API_KEY_DELETE_TOPICS:
		return delete_topics(q, conn, req, h, r);
	case API_KEY_CREATE_PARTITIONS:
		return create_partitions(q, conn, req, h, r);
	case API_KEY_DESCRIBE_CONFIGS:
		return describe_configs(q, conn, req, h, r);
	case API_KEY_ALTER_CONFIGS:
	case API_KEY_INCREMENTAL_ALTER_CONFIGS:
		return alter_configs(q, conn, req, h, r);
	case API_KEY_DESCRIBE_CLUSTER:
		return describe_cluster(q, conn, req, h, r);
	case API_KEY_DELETE_RECORDS:
		return delete_records(q, conn, req, h, r);
	case API_KEY_DESCRIBE_LOG_DIRS:
		return describe_log_dirs(q, conn, req, h, r);
	case API_KEY_OFFSET_FOR_LEADER_EPOCH:
		return offset_for_leader_epoch(q, conn, req, h, r);
	default:
		return -EPROTONOSUPPORT;
	}
}

const struct dp_handler_apis *
dp_requests_init(struct dp_broker *b, const struct dp_config *cfg)
{
	struct dp_requests *q = &g_req;

	q->b = b;
	q->cfg = cfg;
	q->lcore = rte_lcore_id();
	q->host[0] = '\0';
	q->port = 0;
	kp_arena_init(&q->arena, q->arena_buf, sizeof(q->arena_buf));
	g_produce_free = NULL;
	memset(g_waiters, 0, sizeof(g_waiters));
	g_n_waiting = 0;
	for (int i = PRODUCE_CTX_COUNT - 1; i >= 0; i--)
		produce_ctx_put(&g_produce_ctx[i]);
	if (g_read_area == NULL)
		g_read_area = aligned_alloc(4096, FETCH_READ_AREA);
	if (g_read_area == NULL)
		return NULL;
	for (int i = 0; i < FETCH_ASYNC_COUNT; i++) {
		g_fa[i].used = false;
		if (g_fa[i].arena_buf == NULL)
			g_fa[i].arena_buf = aligned_alloc(64, FETCH_ASYNC_ARENA);
		if (g_fa[i].area == NULL)
			g_fa[i].area = aligned_alloc(4096, FETCH_ASYNC_AREA);
		if (g_fa[i].arena_buf == NULL || g_fa[i].area == NULL)
			return NULL;
	}
	g_big_bytes = 0;
	g_n_big_free = 0;
	if ((uint64_t)cfg->dp_response_buffer_bytes < (uint64_t)cfg->message_max_bytes + 65536) {
		uint32_t bytes = (uint32_t)cfg->message_max_bytes + 65536;

		for (int i = 0; i < FETCH_BIG_COUNT; i++) {
			if (g_big[i] == NULL)
				g_big[i] = malloc(bytes);
			if (g_big[i] == NULL)
				return NULL;
			g_big_free[g_n_big_free++] = g_big[i];
		}
		g_big_bytes = bytes;
	}
	q->apis.apis = served;
	q->apis.n_apis = (int32_t)(sizeof(served) / sizeof(served[0]));
	q->apis.serve = serve;
	q->apis.serve_arg = q;
	return &q->apis;
}

void *
dp_requests_arg(void)
{
	return &g_req;
}
