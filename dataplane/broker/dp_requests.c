/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_requests: the Kafka request handlers over dp_broker (see dp_requests.h):
 * dispatch, the helpers every handler shares, and Metadata. The other
 * handlers live in dp_produce.c, dp_fetch.c and dp_admin.c
 * (dp_requests_int.h).
 *
 * Every handler takes its response buffer first (so -EAGAIN, which makes
 * the transport deliver the frame again later, comes before any side
 * effect such as creating a topic), decodes the request with the generated
 * codec into the module's arena, builds the response struct in the same
 * arena and encodes it straight into the response buffer. A response that
 * does not fit a response buffer (dataplane.response.buffer.bytes) closes
 * the connection with a log line.
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
#include "dp_meta.h"
#include "dp_metrics.h"
#include "kp_api.h"
#include "kp_batch.h"
#include "kp_error.h"
#include "net_kernel.h"
#include "stor_log.h"


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
	{.api_key = API_KEY_INIT_PRODUCER_ID, .min_version = 0, .max_version = 5},
};

/* One per process: the broker runs on one lcore (dp_broker.h). */
static struct dp_requests g_req;

/* Bytes and records of each partition of a Fetch response, for the metrics. */
void
dp_req_fetch_metrics(const struct kp_fetch_response *m)
{
	for (int32_t i = 0; i < m->responses.count; i++) {
		const struct kp_fetch_response_fetchable_topic_response *t = &m->responses.items[i];
		struct kp_str name = t->topic;

		if (name.len <= 0) { /* v13+: by id */
			struct dp_topic *dt = dp_req_topic_by_id(g_req.b, &t->topic_id);

			if (dt == NULL)
				continue;
			name.ptr = dt->name;
			name.len = (int32_t)strlen(dt->name);
		}
		for (int32_t k = 0; k < t->partitions.count; k++) {
			const struct kp_fetch_response_partition_data *pd = &t->partitions.items[k];

			if (pd->records.len > 0)
				dp_metrics_batches(false, name.ptr, (size_t)name.len,
					pd->partition_index, pd->records.ptr, (size_t)pd->records.len,
					pd->high_watermark);
		}
	}
}

int
dp_requests_metrics_poll(void *arg)
{
	struct dp_broker *b = g_req.b;

	(void)arg;
	if (b == NULL || dp_metrics_tls == NULL)
		return 0;
	for (unsigned i = 0; i < b->n_topics; i++) {
		const struct dp_topic *t = b->topics[i];

		if (t == NULL)
			continue;
		for (int32_t p = 0; p < t->partitions; p++) {
			if (t->part[p].log != NULL)
				dp_metrics_produce(t->name, strlen(t->name), p, 0, 0,
					dp_part_end(b, &t->part[p]));
		}
	}
	return 0;
}

void
dp_req_advertised_resolve(struct dp_requests *q, const struct dp_conn *conn)
{
	const struct dp_config *cfg = q->cfg;
	const struct dp_listener *l = NULL;
	unsigned li = 0;

	/* Kafka's rule: this broker's endpoint on the listener the request came in on. */
	q->host[0] = '\0';
	q->port = 0;
	if (conn != NULL && conn->listener >= 0 && (unsigned)conn->listener < cfg->n_listeners &&
		!cfg->listener[conn->listener].controller) {
		li = (unsigned)conn->listener;
		l = &cfg->listener[li];
	}
	for (unsigned i = 0; i < cfg->n_listeners && l == NULL; i++) {
		if (!cfg->listener[i].controller) {
			l = &cfg->listener[i];
			li = i;
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

void
dp_req_close_log(struct dp_conn *conn, const char *what, const struct kp_request_header *h, int rc)
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
int
dp_req_begin(struct dp_requests *q, struct dp_conn *conn, const struct kp_request_header *h,
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
		dp_req_close_log(conn, "malformed", h, rc);
		return -EPROTO;
	}
	return 0;
}

/* The common failure of a handler whose arena ran out: free @buf, close, -ENOMEM. */
int
dp_req_nomem(struct dp_conn *conn, const struct kp_request_header *h, uint8_t *buf)
{
	dp_conn_resp_free(conn->env->resp_pool, buf);
	dp_req_close_log(conn, "arena too small for a", h, -ENOMEM);
	return -ENOMEM;
}


static void
reply_heap_free(void *arg, void *buf)
{
	(void)arg;
	free(buf);
}

/* Encode header + @msg into @rb (taken by the caller) and reply. */
int
dp_req_reply_buf(struct dp_conn *conn, uint64_t req, const struct kp_request_header *h,
	const struct resp_buf *rb, const void *msg)
{
	uint8_t *buf = rb->p;
	const struct kp_api_desc *d = kp_api_lookup(h->request_api_key);
	struct kp_response_header rh;
	struct kp_writer w;
	struct resp_buf big;
	uint32_t n;
	int rc;

	kp_response_header_init(&rh);
	rh.correlation_id = h->correlation_id;
	kp_writer_init(&w, buf + 4, rb->cap - 4);
	rc = kp_response_header_encode(&rh,
		kp_api_response_header_version(d, h->request_api_version), &w);
	if (rc == 0)
		rc = d->response.encode(msg, h->request_api_version, &w);
	if (rc == -ENOBUFS && rb->free_fn != reply_heap_free &&
		h->request_api_key != KP_API_FETCH) {
		/*
		 * Larger than the buffer (Metadata or ListOffsets over thousands of
		 * partitions): once more into a heap buffer of the exact size.
		 */
		int64_t need = d->response.size(msg, h->request_api_version);

		if (need > 0 && need < INT32_MAX - 64) {
			big = (struct resp_buf){malloc((size_t)need + 64), (uint32_t)need + 64,
				reply_heap_free, NULL};
			if (big.p != NULL) {
				rb->free_fn(rb->free_arg, buf);
				return dp_req_reply_buf(conn, req, h, &big, msg);
			}
		}
	}
	if (rc < 0) {
		rb->free_fn(rb->free_arg, buf);
		dp_req_close_log(conn, "cannot encode the response to a", h, rc);
		return rc;
	}
	n = (uint32_t)kp_writer_len(&w);
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	if (h->request_api_key == KP_API_FETCH)
		dp_req_fetch_metrics(msg);
	return dp_conn_reply(conn, req, buf, n + 4, rb->free_fn, rb->free_arg);
}

int
dp_req_reply(struct dp_conn *conn, uint64_t req, const struct kp_request_header *h, uint8_t *buf,
	const void *msg)
{
	struct resp_buf rb = {buf, conn->env->resp_buf_size, dp_conn_resp_free,
		conn->env->resp_pool};

	return dp_req_reply_buf(conn, req, h, &rb, msg);
}

struct kp_str
dp_req_str(const char *s)
{
	return (struct kp_str){.ptr = s, .len = (int32_t)strlen(s)};
}

/* A null nullable string (the generated _init() leaves an empty one). */
struct kp_str
dp_req_str_null(void)
{
	return (struct kp_str){.ptr = NULL, .len = -1};
}

int32_t *
dp_req_one_int32(struct kp_arena *a, int32_t v)
{
	int32_t *p = kp_arena_alloc(a, sizeof(*p), _Alignof(int32_t));

	if (p != NULL)
		*p = v;
	return p;
}

/*
 * Fill a Metadata topic entry for an existing topic. A partition whose log failed
 * (an I/O error: dp_part_offline) is described as Kafka describes one whose only
 * replica's log dir went offline: LEADER_NOT_AVAILABLE, no leader, no in-sync
 * replica, this broker among the offline replicas; clients then hold its records
 * until a leader comes back (a restart) instead of retrying into the failed log.
 * A partition not open yet (log NULL while its owner opens it) is not offline.
 */
static int
metadata_topic_fill(struct dp_requests *q, struct kp_metadata_response_metadata_response_topic *rt,
	const struct dp_topic *t)
{
	struct kp_arena *a = &q->arena;
	int32_t *node = dp_req_one_int32(a, q->b->node_id);
	struct kp_metadata_response_metadata_response_partition *parts =
		kp_arena_alloc(a, sizeof(*parts) * (size_t)t->partitions, 8);

	if (node == NULL || parts == NULL)
		return -ENOMEM;
	rt->error_code = KP_ERR_NONE;
	rt->name = dp_req_str(t->name);
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
		if (t->part[p].log != NULL && dp_part_offline(q->b, &t->part[p])) {
			parts[p].error_code = KP_ERR_LEADER_NOT_AVAILABLE;
			parts[p].leader_id = -1;
			parts[p].isr_nodes = (struct kp_array_int32){.items = NULL, .count = 0};
			parts[p].offline_replicas = (struct kp_array_int32){.items = node,
				.count = 1};
		}
	}
	rt->partitions.items = parts;
	rt->partitions.count = t->partitions;
	return 0;
}

struct dp_topic *
dp_req_topic_by_id(struct dp_broker *b, const struct kp_uuid *id)
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

	rc = dp_req_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	dp_req_advertised_resolve(q, conn);
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
			t = dp_req_topic_by_id(b, &want->topic_id);
			if (t == NULL) {
				rt->error_code = KP_ERR_UNKNOWN_TOPIC_ID;
				rt->name = (struct kp_str){.ptr = NULL, .len = -1};
				rt->topic_id = want->topic_id;
				continue;
			}
		} else {
			t = dp_broker_topic_find(b, want->name.ptr, (size_t)want->name.len);
		}
		rc = 0;
		if (t == NULL && b->auto_create && (v < 4 || m.allow_auto_topic_creation)) {
			/* dp_meta: here (local) or by the control process (LEADER_NOT_AVAILABLE). */
			rc = dp_meta_autocreate(b, want->name.ptr, (size_t)want->name.len, &t);
			if (rc < 0 && rc != -EINVAL && rc != -EINPROGRESS && rc != -ENOTCONN)
				dp_log(DP_LOG_WARN, "auto-creating topic %.*s: %s", want->name.len,
					want->name.ptr, strerror(-rc));
			if (rc < 0)
				t = NULL;
		}
		if (t == NULL) {
			rt->name = want->name;
			rt->error_code = !dp_broker_topic_name_valid(want->name.ptr,
						  (size_t)want->name.len) ?
				KP_ERR_INVALID_TOPIC_EXCEPTION :
				rc == -EINPROGRESS || rc == -ENOTCONN || rc == -EAGAIN ?
				KP_ERR_LEADER_NOT_AVAILABLE : KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
			continue;
		}
		if (metadata_topic_fill(q, rt, t) < 0)
			goto nomem;
	}
	kp_metadata_response_init(&resp);
	kp_metadata_response_metadata_response_broker_init(&broker);
	broker.node_id = b->node_id;
	broker.host = dp_req_str(q->host);
	broker.port = q->port;
	resp.brokers.items = &broker;
	resp.brokers.count = 1;
	resp.cluster_id = dp_req_str(b->cluster_id);
	resp.controller_id = b->node_id;
	resp.topics.items = rts;
	resp.topics.count = n;
	return dp_req_reply(conn, req, h, buf, &resp);
nomem:
	return dp_req_nomem(conn, h, buf);
}


static int
serve(void *arg, struct dp_conn *conn, uint64_t req, const struct kp_request_header *h,
      struct kp_reader *r)
{
	struct dp_requests *q = arg;

	if (rte_lcore_id() != q->lcore) {
		/* dp_hop brings requests to this lcore: only a wiring mistake gets here. */
		dp_req_close_log(conn, "no broker on this lcore for a", h, -EXDEV);
		return -EPROTONOSUPPORT;
	}
	kp_arena_reset(&q->arena);
	for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++) {
		if (served[i].api_key == h->request_api_key &&
			(h->request_api_version < served[i].min_version ||
				h->request_api_version > served[i].max_version)) {
			dp_req_close_log(conn, "unsupported version of a", h, -EPROTONOSUPPORT);
			return -EPROTONOSUPPORT;
		}
	}
	switch (h->request_api_key) {
	case API_KEY_METADATA:
		return metadata(q, conn, req, h, r);
	case API_KEY_CREATE_TOPICS:
		return dp_req_create_topics(q, conn, req, h, r);
	case API_KEY_PRODUCE:
		return dp_req_produce(q, conn, req, h, r);
	case API_KEY_INIT_PRODUCER_ID:
		return dp_req_init_producer_id(q, conn, req, h, r);
	case API_KEY_FETCH:
		return dp_req_fetch(q, conn, req, h, r);
	case API_KEY_LIST_OFFSETS:
		return dp_req_list_offsets(q, conn, req, h, r);
	case API_KEY_DELETE_TOPICS:
		return dp_req_delete_topics(q, conn, req, h, r);
	case API_KEY_CREATE_PARTITIONS:
		return dp_req_create_partitions(q, conn, req, h, r);
	case API_KEY_DESCRIBE_CONFIGS:
		return dp_req_describe_configs(q, conn, req, h, r);
	case API_KEY_ALTER_CONFIGS:
	case API_KEY_INCREMENTAL_ALTER_CONFIGS:
		return dp_req_alter_configs(q, conn, req, h, r);
	case API_KEY_DESCRIBE_CLUSTER:
		return dp_req_describe_cluster(q, conn, req, h, r);
	case API_KEY_DELETE_RECORDS:
		return dp_req_delete_records(q, conn, req, h, r);
	case API_KEY_DESCRIBE_LOG_DIRS:
		return dp_req_describe_log_dirs(q, conn, req, h, r);
	case API_KEY_OFFSET_FOR_LEADER_EPOCH:
		return dp_req_offset_for_leader_epoch(q, conn, req, h, r);
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
	if (dp_produce_init(b) < 0 || dp_fetch_init(b, cfg) < 0 || dp_meta_init(b) < 0)
		return NULL;
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
