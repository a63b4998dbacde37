/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_store: __consumer_offsets through the dataplane (see ctl_store.h).
 *
 * One connection, requests answered in order, so the in-flight requests
 * are a FIFO. The start-up sequence is a small state machine:
 *   DOWN --connect--> CREATE (CreateTopics v4) --> META (Metadata v4)
 *     --first time--> EARLIEST, LATEST (ListOffsets v1) --> FETCH (Fetch v5,
 *     repeated until every partition reached its end) --> READY
 *     --reconnect--> READY (after CREATE and META)
 * Versions are fixed, non-flexible ones every Kafka broker of the last
 * years serves, so the same code reads a real Kafka's topic too.
 */
#include "ctl_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kp_api.h"
#include "kp_batch.h"
#include "kp_error.h"

#define K_PRODUCE 0
#define K_FETCH 1
#define K_LIST_OFFSETS 2
#define K_METADATA 3
#define K_CREATE_TOPICS 19
#define K_API_VERSIONS 18

#define STORE_MAX_FRAME (64u << 20)
#define STORE_RETRY_MS 300
#define STORE_KEEPALIVE_MS 60000 /* at most; see ctl_store_set_idle() */
#define STORE_FETCH_MAX_BYTES (8 << 20)
#define STORE_FETCH_PART_BYTES (1 << 20)

enum store_state {
	ST_DOWN,
	ST_CREATE,
	ST_META,
	ST_EARLIEST,
	ST_LATEST,
	ST_FETCH,
	ST_READY,
};

struct inflight {
	int32_t corr;
	int16_t api_key;
	int16_t version;
	void *cookie;        /* appends: the coordinator's */
	struct inflight *next;
};

struct ctl_store {
	struct ctl_loop *loop;
	const char *path;
	int32_t want_partitions;
	int32_t n_partitions;    /* real count, after META */
	struct ctl_coord *coord;
	ctl_store_ready_fn ready_fn;
	void *ready_arg;
	struct ctl_link link;
	enum store_state state;
	bool loaded;
	int32_t next_corr;
	struct inflight *head;
	struct inflight *tail;
	int64_t *start;          /* per partition, while loading */
	int64_t *end;
	int64_t *next;
	int64_t loaded_records;
	bool round_progress;     /* some partition advanced in the last Fetch */
	bool started;            /* ctl_store_start() called: connecting allowed */
	bool retrying;           /* down for an expected retry: the next connect is not news */
	int64_t last_try_ms;
	int64_t last_send_ms;    /* keepalive: an ApiVersions when idle keepalive_ms */
	int64_t keepalive_ms;
};

static void store_event(void *arg, int fd, uint32_t events);

#define slog(...)                                 \
	do {                                      \
		fprintf(stderr, "control: ");     \
		fprintf(stderr, __VA_ARGS__);     \
		fputc('\n', stderr);              \
	} while (0)

static void
store_watch(struct ctl_store *s)
{
	uint32_t ev = EPOLLIN | (ctl_link_pending(&s->link) ? EPOLLOUT : 0);

	ctl_loop_watch(s->loop, s->link.fd, ev, store_event, s);
}

static void
store_down(struct ctl_store *s, const char *why)
{
	int64_t now = ctl_now_ms();

	if (s->state != ST_DOWN && why != NULL) /* NULL: an expected retry, said elsewhere */
		slog("dataplane connection %s lost (%s); reconnecting", s->path, why);
	s->retrying = why == NULL;
	if (s->link.fd >= 0) {
		ctl_loop_unwatch(s->loop, s->link.fd);
		ctl_link_close(&s->link);
	}
	s->state = ST_DOWN;
	while (s->head != NULL) {
		struct inflight *f = s->head;

		s->head = f->next;
		if (f->api_key == K_PRODUCE && f->cookie != NULL && s->coord != NULL)
			ctl_coord_append_done(s->coord, f->cookie, -ENOTCONN, now);
		free(f);
	}
	s->tail = NULL;
}

/* Encode and queue a request; the inflight entry carries @cookie. */
static int
store_send(struct ctl_store *s, int16_t key, int16_t version, const void *msg, void *cookie)
{
	const struct kp_api_desc *d = kp_api_lookup(key);
	struct kp_request_header h;
	int64_t size = d->request.size(msg, version);
	struct inflight *f;
	struct kp_writer w;
	uint8_t *buf;
	int rc;

	if (size < 0)
		return (int)size;
	buf = malloc((size_t)size + 64);
	f = calloc(1, sizeof(*f));
	if (buf == NULL || f == NULL) {
		free(buf);
		free(f);
		return -ENOMEM;
	}
	kp_request_header_init(&h);
	h.request_api_key = key;
	h.request_api_version = version;
	h.correlation_id = ++s->next_corr;
	h.client_id.ptr = "slipstream-control";
	h.client_id.len = (int32_t)strlen(h.client_id.ptr);
	kp_writer_init(&w, buf, (size_t)size + 64);
	rc = kp_request_header_write(&h, &w);
	if (rc == 0)
		rc = d->request.encode(msg, version, &w);
	if (rc == 0)
		rc = ctl_link_send(&s->link, buf, kp_writer_len(&w));
	free(buf);
	if (rc < 0) {
		free(f);
		return rc;
	}
	s->last_send_ms = ctl_now_ms();
	f->corr = h.correlation_id;
	f->api_key = key;
	f->version = version;
	f->cookie = cookie;
	if (s->tail != NULL)
		s->tail->next = f;
	else
		s->head = f;
	s->tail = f;
	rc = ctl_link_flush(&s->link);
	store_watch(s);
	return rc;
}

static int
send_create(struct ctl_store *s)
{
	struct kp_create_topics_request r;
	struct kp_create_topics_request_creatable_topic t;
	/*
	 * Kafka's settings for this topic: compacted, segment.bytes from
	 * offsets.topic.segment.bytes (100 MiB), compression.type producer (the
	 * broker's compression.type does not rewrite the commits). Not
	 * preallocated: the topic sees a few records per commit, and a
	 * preallocated segment per partition would cost segment.bytes of disk
	 * each (5 GiB for 50).
	 */
	static const char *const kv[][2] = {
		{"cleanup.policy", "compact"},
		{"segment.bytes", "104857600"},
		{"preallocate", "false"},
		{"compression.type", "producer"},
	};
	enum { N_KV = sizeof(kv) / sizeof(kv[0]) };
	struct kp_create_topics_request_creatable_topic_config cfg[N_KV];

	kp_create_topics_request_init(&r);
	kp_create_topics_request_creatable_topic_init(&t);
	for (int i = 0; i < N_KV; i++) {
		kp_create_topics_request_creatable_topic_config_init(&cfg[i]);
		cfg[i].name.ptr = kv[i][0];
		cfg[i].name.len = (int32_t)strlen(kv[i][0]);
		cfg[i].value.ptr = kv[i][1];
		cfg[i].value.len = (int32_t)strlen(kv[i][1]);
	}
	t.name.ptr = CTL_OFFSETS_TOPIC;
	t.name.len = (int32_t)strlen(CTL_OFFSETS_TOPIC);
	t.num_partitions = s->want_partitions;
	t.replication_factor = 1;
	t.assignments.count = 0;
	t.configs.items = cfg;
	t.configs.count = N_KV;
	r.topics.items = &t;
	r.topics.count = 1;
	r.timeout_ms = 30000;
	s->state = ST_CREATE;
	return store_send(s, K_CREATE_TOPICS, 4, &r, NULL);
}

static int
send_metadata(struct ctl_store *s)
{
	struct kp_metadata_request r;
	struct kp_metadata_request_metadata_request_topic t;

	kp_metadata_request_init(&r);
	kp_metadata_request_metadata_request_topic_init(&t);
	t.name.ptr = CTL_OFFSETS_TOPIC;
	t.name.len = (int32_t)strlen(CTL_OFFSETS_TOPIC);
	r.topics.items = &t;
	r.topics.count = 1;
	r.allow_auto_topic_creation = false;
	s->state = ST_META;
	return store_send(s, K_METADATA, 4, &r, NULL);
}

static int
send_list(struct ctl_store *s, int64_t ts)
{
	struct kp_list_offsets_request r;
	struct kp_list_offsets_request_list_offsets_topic t;
	struct kp_list_offsets_request_list_offsets_partition *ps;
	int rc;

	ps = calloc((size_t)s->n_partitions, sizeof(*ps));
	if (ps == NULL)
		return -ENOMEM;
	kp_list_offsets_request_init(&r);
	kp_list_offsets_request_list_offsets_topic_init(&t);
	for (int32_t i = 0; i < s->n_partitions; i++) {
		kp_list_offsets_request_list_offsets_partition_init(&ps[i]);
		ps[i].partition_index = i;
		ps[i].timestamp = ts;
	}
	t.name.ptr = CTL_OFFSETS_TOPIC;
	t.name.len = (int32_t)strlen(CTL_OFFSETS_TOPIC);
	t.partitions.items = ps;
	t.partitions.count = s->n_partitions;
	r.replica_id = -1;
	r.topics.items = &t;
	r.topics.count = 1;
	s->state = ts == -2 ? ST_EARLIEST : ST_LATEST;
	rc = store_send(s, K_LIST_OFFSETS, 1, &r, NULL);
	free(ps);
	return rc;
}

static void
become_ready(struct ctl_store *s)
{
	bool first = !s->loaded;

	s->state = ST_READY;
	if (first) {
		s->loaded = true;
		if (s->coord != NULL)
			ctl_coord_loaded(s->coord, ctl_now_ms());
		fprintf(stderr, "control: __consumer_offsets loaded (%d partitions, %lld records)\n",
			s->n_partitions, (long long)s->loaded_records);
		if (s->ready_fn != NULL)
			s->ready_fn(s->ready_arg);
	} else {
		fprintf(stderr, "control: dataplane connection back\n");
	}
}

static int
send_fetch(struct ctl_store *s)
{
	struct kp_fetch_request r;
	struct kp_fetch_request_fetch_topic t;
	struct kp_fetch_request_fetch_partition *ps;
	int32_t n = 0;
	int rc;

	ps = calloc((size_t)s->n_partitions, sizeof(*ps));
	if (ps == NULL)
		return -ENOMEM;
	if (s->state == ST_FETCH && !s->round_progress) {
		for (int32_t i = 0; i < s->n_partitions; i++) {
			if (s->next[i] < s->end[i])
				slog("%s-%d: nothing readable from offset %lld to %lld; loaded up to there",
					CTL_OFFSETS_TOPIC, i, (long long)s->next[i], (long long)s->end[i]);
			s->next[i] = s->end[i];
		}
	}
	s->round_progress = false;
	for (int32_t i = 0; i < s->n_partitions; i++) {
		if (s->next[i] >= s->end[i])
			continue;
		kp_fetch_request_fetch_partition_init(&ps[n]);
		ps[n].partition = i;
		ps[n].fetch_offset = s->next[i];
		ps[n].partition_max_bytes = STORE_FETCH_PART_BYTES;
		ps[n].log_start_offset = -1;
		n++;
	}
	if (n == 0) {
		free(ps);
		become_ready(s);
		return 0;
	}
	kp_fetch_request_init(&r);
	kp_fetch_request_fetch_topic_init(&t);
	t.topic.ptr = CTL_OFFSETS_TOPIC;
	t.topic.len = (int32_t)strlen(CTL_OFFSETS_TOPIC);
	t.partitions.items = ps;
	t.partitions.count = n;
	r.replica_id = -1;
	r.max_wait_ms = 0;
	r.min_bytes = 0;
	r.max_bytes = STORE_FETCH_MAX_BYTES;
	r.isolation_level = 0;
	r.topics.items = &t;
	r.topics.count = 1;
	s->state = ST_FETCH;
	rc = store_send(s, K_FETCH, 5, &r, NULL);
	free(ps);
	return rc;
}

/* Load the batches of one partition's records; advance next[p]. */
static void
load_records(struct ctl_store *s, int32_t p, const struct kp_bytes *records, int64_t hw)
{
	const uint8_t *pos = records->ptr;
	size_t left = records->len > 0 ? (size_t)records->len : 0;
	bool progress = false;

	while (left >= KP_BATCH_LOG_OVERHEAD) {
		struct kp_batch_header h;
		int64_t last;
		int n;

		if (kp_batch_header_parse(pos, left, &h) < 0)
			break; /* a partial batch at the end of the response */
		last = h.base_offset + h.last_offset_delta;
		if (last >= s->next[p]) {
			n = s->coord != NULL ? ctl_coord_load_batch(s->coord, pos, kp_batch_size(&h)) : 0;
			if (n < 0)
				fprintf(stderr, "control: __consumer_offsets-%d: skipping a bad batch at "
					"offset %lld\n", p, (long long)h.base_offset);
			else
				s->loaded_records += n;
			s->next[p] = last + 1;
			progress = true;
		}
		pos += kp_batch_size(&h);
		left -= kp_batch_size(&h);
	}
	if (progress)
		s->round_progress = true;
	/*
	 * No batch for this partition in this response: the response may have
	 * been full before its turn; it is asked again. A round in which no
	 * partition advances ends the load (send_fetch).
	 */
	if (hw >= 0 && hw < s->end[p])
		s->end[p] = hw;
}

static int
handle_response(struct ctl_store *s, struct inflight *f, struct kp_reader *r, struct kp_arena *a)
{
	const struct kp_api_desc *d = kp_api_lookup(f->api_key);
	void *msg = kp_arena_alloc(a, d->response.struct_size, 16);
	int64_t now = ctl_now_ms();
	int rc;

	if (msg == NULL)
		return -ENOMEM;
	rc = d->response.decode(msg, f->version, r, a);
	if (rc < 0)
		return rc;
	switch (f->api_key) {
	case K_API_VERSIONS:
		return 0; /* keepalive */
	case K_PRODUCE: {
		struct kp_produce_response *m = msg;
		int err = 0;

		if (m->responses.count != 1 || m->responses.items[0].partition_responses.count != 1)
			err = -EIO;
		else if (m->responses.items[0].partition_responses.items[0].error_code != 0)
			err = -EIO;
		if (s->coord != NULL)
			ctl_coord_append_done(s->coord, f->cookie, err, now);
		return 0;
	}
	case K_CREATE_TOPICS: {
		struct kp_create_topics_response *m = msg;
		int16_t e = m->topics.count == 1 ? m->topics.items[0].error_code : -1;

		if (e == KP_ERR_NOT_CONTROLLER) {
			/*
			 * Expected for a moment after a restart of the dataplane: its
			 * channel to this process is not connected yet (it retries every
			 * 250 ms), so the creation it forwards to the metadata log
			 * answers NOT_CONTROLLER. Retried quietly after STORE_RETRY_MS.
			 */
			return -EAGAIN;
		}
		if (e != KP_ERR_NONE && e != KP_ERR_TOPIC_ALREADY_EXISTS) {
			slog("creating %s failed (error %d)", CTL_OFFSETS_TOPIC, e);
			return -EIO;
		}
		return send_metadata(s);
	}
	case K_METADATA: {
		struct kp_metadata_response *m = msg;

		if (m->topics.count != 1 || m->topics.items[0].error_code != 0 ||
			m->topics.items[0].partitions.count <= 0) {
			slog("no metadata for %s (error %d)", CTL_OFFSETS_TOPIC,
				m->topics.count == 1 ? m->topics.items[0].error_code : -1);
			return -EIO;
		}
		if (s->loaded && s->n_partitions != m->topics.items[0].partitions.count)
			slog("%s changed its partition count to %d; groups may move partitions",
				CTL_OFFSETS_TOPIC, m->topics.items[0].partitions.count);
		s->n_partitions = m->topics.items[0].partitions.count;
		if (s->coord != NULL)
			ctl_coord_set_partitions(s->coord, s->n_partitions);
		if (s->loaded) {
			become_ready(s);
			return 0;
		}
		free(s->start);
		free(s->end);
		free(s->next);
		s->start = calloc((size_t)s->n_partitions, sizeof(int64_t));
		s->end = calloc((size_t)s->n_partitions, sizeof(int64_t));
		s->next = calloc((size_t)s->n_partitions, sizeof(int64_t));
		if (s->start == NULL || s->end == NULL || s->next == NULL)
			return -ENOMEM;
		return send_list(s, -2);
	}
	case K_LIST_OFFSETS: {
		struct kp_list_offsets_response *m = msg;

		for (int32_t t = 0; t < m->topics.count; t++) {
			for (int32_t i = 0; i < m->topics.items[t].partitions.count; i++) {
				const struct kp_list_offsets_response_list_offsets_partition_response *p =
					&m->topics.items[t].partitions.items[i];

				if (p->partition_index < 0 || p->partition_index >= s->n_partitions)
					continue;
				if (p->error_code != 0) {
					slog("ListOffsets on %s failed (error %d)", CTL_OFFSETS_TOPIC,
						p->error_code);
					return -EIO;
				}
				if (s->state == ST_EARLIEST)
					s->start[p->partition_index] = p->offset;
				else
					s->end[p->partition_index] = p->offset;
			}
		}
		if (s->state == ST_EARLIEST)
			return send_list(s, -1);
		memcpy(s->next, s->start, sizeof(int64_t) * (size_t)s->n_partitions);
		return send_fetch(s);
	}
	case K_FETCH: {
		struct kp_fetch_response *m = msg;

		for (int32_t t = 0; t < m->responses.count; t++) {
			for (int32_t i = 0; i < m->responses.items[t].partitions.count; i++) {
				const struct kp_fetch_response_partition_data *p =
					&m->responses.items[t].partitions.items[i];
				int32_t idx = p->partition_index;

				if (idx < 0 || idx >= s->n_partitions)
					continue;
				if (p->error_code == KP_ERR_OFFSET_OUT_OF_RANGE &&
					p->log_start_offset > s->next[idx]) {
					s->next[idx] = p->log_start_offset;
					continue;
				}
				if (p->error_code != 0) {
					slog("Fetch on %s failed (error %d)", CTL_OFFSETS_TOPIC,
						p->error_code);
					return -EIO;
				}
				load_records(s, idx, &p->records, p->high_watermark);
			}
		}
		return send_fetch(s);
	}
	default:
		return -EPROTO;
	}
}

static void
store_event(void *arg, int fd, uint32_t events)
{
	struct ctl_store *s = arg;
	const uint8_t *frame;
	uint32_t len;
	int rc = 0;

	if (events & EPOLLOUT)
		rc = ctl_link_flush(&s->link);
	if (rc == 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		rc = ctl_link_read(&s->link);
	while (rc == 0 && s->link.fd >= 0 && (rc = ctl_link_frame(&s->link, &frame, &len)) == 1) {
		struct inflight *f = s->head;
		struct kp_response_header h;
		struct kp_reader r;
		struct kp_arena a;
		size_t cap = 65536 + (size_t)len * 4;
		uint8_t *mem = malloc(cap);

		if (f == NULL || mem == NULL) {
			free(mem);
			rc = -EPROTO;
			break;
		}
		kp_arena_init(&a, mem, cap);
		kp_reader_init(&r, frame, len);
		rc = kp_response_header_decode(&h, kp_api_response_header_version(
			kp_api_lookup(f->api_key), f->version), &r, &a);
		if (rc == 0 && h.correlation_id != f->corr)
			rc = -EPROTO;
		s->head = f->next;
		if (s->head == NULL)
			s->tail = NULL;
		if (rc == 0)
			rc = handle_response(s, f, &r, &a);
		else if (f->api_key == K_PRODUCE && s->coord != NULL)
			ctl_coord_append_done(s->coord, f->cookie, -EPROTO, ctl_now_ms());
		free(f);
		free(mem);
		ctl_link_consume(&s->link, len);
		if (rc < 0)
			break;
		rc = 0;
	}
	if (rc < 0) {
		store_down(s, rc == -EAGAIN ? NULL : "error");
		return;
	}
	if (s->link.fd >= 0)
		store_watch(s);
}

static void
store_timer(void *arg, int64_t now)
{
	struct ctl_store *s = arg;
	struct sockaddr_un sa;
	int fd;

	if (s->state == ST_READY && s->head == NULL && now - s->last_send_ms > s->keepalive_ms) {
		/* The dataplane closes connections idle for connections.max.idle.ms. */
		struct kp_api_versions_request av;

		kp_api_versions_request_init(&av);
		if (store_send(s, K_API_VERSIONS, 0, &av, NULL) < 0)
			store_down(s, "send");
		return;
	}
	if (!s->started || s->state != ST_DOWN || now - s->last_try_ms < STORE_RETRY_MS)
		return;
	s->last_try_ms = now;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return;
	}
	ctl_link_init(&s->link, fd, STORE_MAX_FRAME);
	if (!s->retrying)
		fprintf(stderr, "control: connected to the dataplane at %s\n", s->path);
	if (send_create(s) < 0)
		store_down(s, "send");
}

struct ctl_store *
ctl_store_create(struct ctl_loop *l, const char *path, int32_t partitions, ctl_store_ready_fn ready,
	void *ready_arg)
{
	struct ctl_store *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->loop = l;
	s->path = path;
	s->want_partitions = partitions;
	s->n_partitions = partitions;
	s->ready_fn = ready;
	s->ready_arg = ready_arg;
	s->link.fd = -1;
	s->state = ST_DOWN;
	s->keepalive_ms = STORE_KEEPALIVE_MS;
	if (ctl_loop_every(l, 100, store_timer, s) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

void
ctl_store_start(struct ctl_store *s)
{
	s->started = true;
}

void
ctl_store_set_coord(struct ctl_store *s, struct ctl_coord *c)
{
	s->coord = c;
}

int
ctl_store_append(void *arg, int32_t partition, uint8_t *batch, size_t len, void *cookie)
{
	struct ctl_store *s = arg;
	struct kp_produce_request r;
	struct kp_produce_request_topic_produce_data t;
	struct kp_produce_request_partition_produce_data p;
	int rc;

	if (s->state != ST_READY) {
		free(batch);
		return -ENOTCONN;
	}
	kp_produce_request_init(&r);
	kp_produce_request_topic_produce_data_init(&t);
	kp_produce_request_partition_produce_data_init(&p);
	p.index = partition;
	p.records.ptr = batch;
	p.records.len = (int32_t)len;
	t.name.ptr = CTL_OFFSETS_TOPIC;
	t.name.len = (int32_t)strlen(CTL_OFFSETS_TOPIC);
	t.partition_data.items = &p;
	t.partition_data.count = 1;
	r.transactional_id.ptr = NULL;
	r.transactional_id.len = -1;
	r.acks = -1;
	r.timeout_ms = 30000;
	r.topic_data.items = &t;
	r.topic_data.count = 1;
	rc = store_send(s, K_PRODUCE, 7, &r, cookie);
	free(batch);
	if (rc < 0) {
		/* Queued (the inflight entry exists) but the socket failed: fail it later. */
		if (s->tail != NULL && s->tail->cookie == cookie)
			return 0; /* store_down from the next event completes it */
		return rc;
	}
	return 0;
}

void
ctl_store_set_idle(struct ctl_store *s, int64_t idle_ms)
{
	if (idle_ms > 0 && idle_ms / 3 < STORE_KEEPALIVE_MS)
		s->keepalive_ms = idle_ms / 3;
}

int32_t
ctl_store_partitions(const struct ctl_store *s)
{
	return s->n_partitions;
}

bool
ctl_store_ready(const struct ctl_store *s)
{
	return s->state == ST_READY;
}

void
ctl_store_destroy(struct ctl_store *s)
{
	if (s == NULL)
		return;
	s->coord = NULL; /* no completions while tearing down */
	store_down(s, "shutdown");
	free(s->start);
	free(s->end);
	free(s->next);
	free(s);
}
