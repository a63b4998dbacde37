/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The load generator's response framing (lg_run.c conn_read, and lg_kafka.c
 * sync_roundtrip for the set-up calls) against every way a byte stream can
 * be cut.
 *
 * lg_run runs over a scripted transport written here (struct
 * lg_transport_ops: no socket, no thread) whose broker answers in process:
 * ApiVersions, Metadata (topic "t", MOCK_PARTS partitions), ListOffsets and
 * Produce (every batch validated and given the next offsets). Its read()
 * hands the responses out in pieces cut by a seeded generator: 1-byte
 * pieces, pieces ending at a response boundary or 1, 2, 3 or 4 bytes after
 * one (a size prefix split 1+3, 2+2, 3+1, or alone), pieces of several
 * responses; between pieces it sometimes has nothing to give (read returns
 * 0 and the connection is reported readable again by a later poll), so
 * conn_read parses at every cut. Its writev() takes requests in pieces of
 * random sizes too, sometimes none (want_write then waits for a writable
 * report).
 *
 * Checked: every record acknowledged once, offsets as the broker gave them,
 * no error; over the runs, responses were cut inside their size prefix in
 * each way and right after it.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "kp_api.h"
#include "kp_batch.h"
#include "lg_run.h"
#include "lg_test_util.h"

#define MOCK_PARTS 3
#define MAX_CONNS 16

/* The broker: shared by the set-up transport and the workers' (one lock). */
static struct {
	pthread_mutex_t lock;
	int64_t end[MOCK_PARTS];  /* next offset per partition */
	struct {
		int64_t base;     /* offset of its first record */
		int64_t last;     /* of its last */
		uint8_t *bytes;   /* the batch, base offset set (malloc) */
		size_t len;
	} log[MOCK_PARTS][4096];  /* every batch produced, in order */
	uint32_t n_log[MOCK_PARTS];
	uint64_t batches;
	uint64_t fetch_bytes_max; /* largest Fetch response */
	uint64_t seed;            /* next connection's cutting seed */
	/* How responses were cut (all connections). */
	uint64_t pieces, one_byte, prefix_split[4], prefix_alone, at_boundary, pauses;
	uint64_t short_writes, refused_writes;
} mock = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct lg_transport {
	struct lg_tconn *conns[MAX_CONNS];
	int n;
};

struct lg_tconn {
	struct lg_transport *t;
	void *arg;
	bool want_out;
	uint64_t rng;
	uint8_t *req;        /* request bytes not parsed yet */
	size_t req_len, req_cap;
	uint8_t *resp;       /* responses: all bytes ever queued */
	size_t resp_len, resp_cap;
	size_t resp_off;     /* bytes read so far */
	size_t *starts;      /* where each response starts in resp */
	size_t n_starts, starts_cap, next_start;
	size_t piece_end;    /* read() gives nothing past this until the next piece */
	bool paused;         /* the last read() returned 0 at a piece's end */
};

static uint64_t
rnd(struct lg_tconn *c)
{
	uint64_t z = (c->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t
between(struct lg_tconn *c, size_t lo, size_t hi)
{
	return lo + (size_t)(rnd(c) % (hi - lo + 1));
}

static void
grow(uint8_t **p, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	*cap = need * 2;
	*p = realloc(*p, *cap);
	assert_non_null(*p);
}

/* --- the broker's answers --- */

/* Queue a response (size prefix, header, body) on @c. */
static void
respond(struct lg_tconn *c, int16_t key, int16_t v, int32_t corr, const void *msg)
{
	const struct kp_api_desc *d = kp_api_lookup(key);
	struct kp_response_header h;
	struct kp_writer w;
	size_t cap = (size_t)d->response.size(msg, v) + 64;
	uint8_t *out = malloc(cap);
	uint32_t be;

	assert_non_null(out);
	kp_response_header_init(&h);
	h.correlation_id = corr;
	kp_writer_init(&w, out, cap);
	kp_wr_int32(&w, 0);
	kp_response_header_encode(&h, kp_api_response_header_version(d, v), &w);
	d->response.encode(msg, v, &w);
	assert_int_equal(w.err, 0);
	be = __builtin_bswap32((uint32_t)(kp_writer_len(&w) - 4));
	memcpy(out, &be, 4);
	if (c->n_starts == c->starts_cap) {
		c->starts_cap = c->starts_cap * 2 + 64;
		c->starts = realloc(c->starts, c->starts_cap * sizeof(size_t));
		assert_non_null(c->starts);
	}
	c->starts[c->n_starts++] = c->resp_len;
	grow(&c->resp, &c->resp_cap, c->resp_len + kp_writer_len(&w));
	memcpy(c->resp + c->resp_len, out, kp_writer_len(&w));
	c->resp_len += kp_writer_len(&w);
	if (key == 1 && kp_writer_len(&w) > mock.fetch_bytes_max)
		mock.fetch_bytes_max = kp_writer_len(&w); /* only workers' threads: locked below */
	free(out);
}

/*
 * Fetch: from each partition's fetch offset, the batches stored (the first
 * whatever its size, as Kafka does, then as many as partition_max_bytes
 * allows); the caller's batch size decides how large responses get.
 */
static void
fetch_answer(struct lg_tconn *c, int16_t v, int32_t corr, const struct kp_fetch_request *q)
{
	struct kp_fetch_response resp;
	struct kp_fetch_response_fetchable_topic_response t;
	struct kp_fetch_response_partition_data p[MOCK_PARTS];
	uint8_t *recs[MOCK_PARTS] = {NULL};
	const struct kp_fetch_request_fetch_topic *ft = &q->topics.items[0];
	int32_t n = ft->partitions.count;

	assert_int_equal(q->topics.count, 1);
	assert_true(n <= MOCK_PARTS);
	kp_fetch_response_init(&resp);
	kp_fetch_response_fetchable_topic_response_init(&t);
	pthread_mutex_lock(&mock.lock);
	for (int32_t i = 0; i < n; i++) {
		const struct kp_fetch_request_fetch_partition *fp = &ft->partitions.items[i];
		int32_t idx = fp->partition;
		size_t len = 0;
		uint32_t k = 0;

		assert_true(idx >= 0 && idx < MOCK_PARTS);
		kp_fetch_response_partition_data_init(&p[i]);
		p[i].partition_index = idx;
		p[i].high_watermark = mock.end[idx];
		p[i].last_stable_offset = mock.end[idx];
		p[i].log_start_offset = 0;
		while (k < mock.n_log[idx] && mock.log[idx][k].last < fp->fetch_offset)
			k++;
		for (uint32_t j = k; j < mock.n_log[idx]; j++) {
			if (j > k && len + mock.log[idx][j].len > (size_t)fp->partition_max_bytes)
				break;
			len += mock.log[idx][j].len;
		}
		recs[i] = malloc(len > 0 ? len : 1);
		assert_non_null(recs[i]);
		len = 0;
		for (uint32_t j = k; j < mock.n_log[idx]; j++) {
			if (j > k && len + mock.log[idx][j].len > (size_t)fp->partition_max_bytes)
				break;
			memcpy(recs[i] + len, mock.log[idx][j].bytes, mock.log[idx][j].len);
			len += mock.log[idx][j].len;
		}
		p[i].records.ptr = recs[i];
		p[i].records.len = (int32_t)len;
	}
	t.topic = ft->topic;
	t.partitions.items = p;
	t.partitions.count = n;
	resp.responses.items = &t;
	resp.responses.count = 1;
	respond(c, 1, v, corr, &resp);
	pthread_mutex_unlock(&mock.lock);
	for (int32_t i = 0; i < n; i++)
		free(recs[i]);
}

static void
answer(struct lg_tconn *c, const uint8_t *frame, size_t len)
{
	static __thread uint8_t arena_buf[1 << 20];
	static __thread uint8_t req[4096] __attribute__((aligned(16)));
	const struct kp_api_desc *d;
	struct kp_request_header h;
	struct kp_arena a;
	struct kp_reader r;
	int16_t v;

	kp_arena_init(&a, arena_buf, sizeof(arena_buf));
	kp_reader_init(&r, frame, len);
	assert_int_equal(kp_request_header_read(&h, NULL, &r, &a), 0);
	v = h.request_api_version;
	if (h.request_api_key == 18) {
		struct kp_api_versions_response resp;
		struct kp_api_versions_response_api_version keys[5];

		lg_test_api_versions(&resp, keys);
		respond(c, 18, v, h.correlation_id, &resp);
		return;
	}
	d = kp_api_lookup(h.request_api_key);
	assert_true(d->request.struct_size <= sizeof(req));
	assert_int_equal(d->request.decode(req, v, &r, &a), 0);
	if (h.request_api_key == 3) {
		struct kp_metadata_response resp;
		struct kp_metadata_response_metadata_response_broker br;
		struct kp_metadata_response_metadata_response_topic t;
		struct kp_metadata_response_metadata_response_partition p[MOCK_PARTS];

		lg_test_metadata(&resp, &br, &t, p, MOCK_PARTS, 9);
		respond(c, 3, v, h.correlation_id, &resp);
		return;
	}
	if (h.request_api_key == 2) {
		const struct kp_list_offsets_request *q = (const void *)req;
		struct kp_list_offsets_response resp;
		struct kp_list_offsets_response_list_offsets_topic_response t;
		struct kp_list_offsets_response_list_offsets_partition_response p[MOCK_PARTS];
		int32_t n = q->topics.items[0].partitions.count;

		kp_list_offsets_response_init(&resp);
		kp_list_offsets_response_list_offsets_topic_response_init(&t);
		assert_true(n <= MOCK_PARTS);
		pthread_mutex_lock(&mock.lock);
		for (int32_t i = 0; i < n; i++) {
			int32_t idx = q->topics.items[0].partitions.items[i].partition_index;

			kp_list_offsets_response_list_offsets_partition_response_init(&p[i]);
			p[i].partition_index = idx;
			p[i].offset = mock.end[idx];
			p[i].timestamp = -1;
		}
		pthread_mutex_unlock(&mock.lock);
		t.name = q->topics.items[0].name;
		t.partitions.items = p;
		t.partitions.count = n;
		resp.topics.items = &t;
		resp.topics.count = 1;
		respond(c, 2, v, h.correlation_id, &resp);
		return;
	}
	if (h.request_api_key == 1) {
		fetch_answer(c, v, h.correlation_id, (const void *)req);
		return;
	}
	assert_int_equal(h.request_api_key, 0);
	{
		const struct kp_produce_request *q = (const void *)req;
		const struct kp_produce_request_topic_produce_data *td = &q->topic_data.items[0];
		struct kp_produce_response resp;
		struct kp_produce_response_topic_produce_response t;
		struct kp_produce_response_partition_produce_response p[MOCK_PARTS];

		kp_produce_response_init(&resp);
		kp_produce_response_topic_produce_response_init(&t);
		assert_true(td->partition_data.count <= MOCK_PARTS);
		pthread_mutex_lock(&mock.lock);
		for (int32_t i = 0; i < td->partition_data.count; i++) {
			const struct kp_produce_request_partition_produce_data *pd =
				&td->partition_data.items[i];
			struct kp_batch_header bh;

			kp_produce_response_partition_produce_response_init(&p[i]);
			p[i].index = pd->index;
			assert_int_equal(kp_batch_validate(pd->records.ptr, (size_t)pd->records.len,
				1, &bh), 0);
			p[i].base_offset = mock.end[pd->index];
			{
				uint32_t n = mock.n_log[pd->index];
				uint8_t *b = malloc((size_t)pd->records.len);
				uint64_t base = __builtin_bswap64((uint64_t)mock.end[pd->index]);

				assert_true(n < 4096 && b != NULL);
				memcpy(b, pd->records.ptr, (size_t)pd->records.len);
				memcpy(b, &base, 8); /* outside the CRC */
				mock.log[pd->index][n].base = mock.end[pd->index];
				mock.log[pd->index][n].last =
					mock.end[pd->index] + bh.records_count - 1;
				mock.log[pd->index][n].bytes = b;
				mock.log[pd->index][n].len = (size_t)pd->records.len;
				mock.n_log[pd->index]++;
			}
			mock.end[pd->index] += bh.records_count;
			mock.batches++;
		}
		pthread_mutex_unlock(&mock.lock);
		t.name = td->name;
		t.partition_responses.items = p;
		t.partition_responses.count = td->partition_data.count;
		resp.responses.items = &t;
		resp.responses.count = 1;
		respond(c, 0, v, h.correlation_id, &resp);
	}
}

/* --- the transport --- */

static struct lg_transport *
ft_create(void)
{
	return calloc(1, sizeof(struct lg_transport));
}

static void
ft_free_conn(struct lg_tconn *c)
{
	free(c->req);
	free(c->resp);
	free(c->starts);
	free(c);
}

static void
ft_destroy(struct lg_transport *t)
{
	for (int i = 0; i < t->n; i++) {
		if (t->conns[i] != NULL)
			ft_free_conn(t->conns[i]);
	}
	free(t);
}

static int
ft_connect(struct lg_transport *t, const char *host, uint16_t port, void *arg,
	   struct lg_tconn **out)
{
	struct lg_tconn *c = calloc(1, sizeof(*c));

	(void)host;
	(void)port;
	if (c == NULL || t->n == MAX_CONNS) {
		free(c);
		return -ENOMEM;
	}
	c->t = t;
	c->arg = arg;
	c->want_out = true; /* the first writable report: connected */
	pthread_mutex_lock(&mock.lock);
	c->rng = mock.seed++;
	pthread_mutex_unlock(&mock.lock);
	t->conns[t->n++] = c;
	*out = c;
	return 0;
}

/* Take some of @iov (sometimes none), answer every whole request. */
static ssize_t
ft_writev(struct lg_tconn *c, const struct iovec *iov, int iovcnt)
{
	size_t total = 0, take, done = 0, pos = 0;

	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	switch (between(c, 0, 9)) {
	case 0:
		take = 0;
		break;
	case 1:
	case 2:
		take = between(c, 1, 7);
		break;
	case 3:
	case 4:
		take = between(c, 1, 3000);
		break;
	default:
		take = total;
		break;
	}
	if (take > total)
		take = total;
	if (take < total) {
		pthread_mutex_lock(&mock.lock);
		if (take == 0)
			mock.refused_writes++;
		else
			mock.short_writes++;
		pthread_mutex_unlock(&mock.lock);
	}
	grow(&c->req, &c->req_cap, c->req_len + take);
	for (int i = 0; i < iovcnt && done < take; i++) {
		size_t n = iov[i].iov_len < take - done ? iov[i].iov_len : take - done;

		memcpy(c->req + c->req_len + done, iov[i].iov_base, n);
		done += n;
	}
	c->req_len += take;
	while (c->req_len - pos >= 4) {
		uint32_t be;
		size_t sz;

		memcpy(&be, c->req + pos, 4);
		sz = __builtin_bswap32(be);
		if (c->req_len - pos - 4 < sz)
			break;
		answer(c, c->req + pos + 4, sz);
		pos += 4 + sz;
	}
	if (pos > 0) {
		memmove(c->req, c->req + pos, c->req_len - pos);
		c->req_len -= pos;
	}
	return (ssize_t)take;
}

/* Where the next piece of responses ends (> resp_off, <= resp_len). */
static size_t
ft_piece_end(struct lg_tconn *c)
{
	size_t r = between(c, 0, 99), end;

	while (c->next_start < c->n_starts && c->starts[c->next_start] < c->resp_off)
		c->next_start++;
	if (r < 25) {
		end = c->resp_off + between(c, 1, 8);
	} else if (r < 65 && c->next_start < c->n_starts) {
		/* A response start + 0..4: a boundary, a split prefix, a prefix alone. */
		size_t k = c->next_start;

		end = c->starts[k] + between(c, 0, 4);
		if (end <= c->resp_off && k + 1 < c->n_starts)
			end = c->starts[k + 1] + between(c, 0, 4);
	} else if (r < 90) {
		end = c->resp_off + between(c, 1, 300);
	} else {
		end = c->resp_off + between(c, 1, 20000);
	}
	if (end <= c->resp_off)
		end = c->resp_off + 1;
	return end < c->resp_len ? end : c->resp_len;
}

/* How the piece ending at @end cuts the stream (stats only). */
static void
ft_count_cut(struct lg_tconn *c, size_t end, size_t len)
{
	size_t k = c->next_start, d;

	while (k < c->n_starts && c->starts[k] + 4 < end)
		k++;
	pthread_mutex_lock(&mock.lock);
	mock.pieces++;
	mock.one_byte += len == 1;
	if (k < c->n_starts && c->starts[k] <= end) {
		d = end - c->starts[k];
		if (d == 0)
			mock.at_boundary++;
		else if (d < 4)
			mock.prefix_split[d]++;
		else if (end - len == c->starts[k])
			mock.prefix_alone++;
	}
	pthread_mutex_unlock(&mock.lock);
}

static ssize_t
ft_read(struct lg_tconn *c, void *buf, size_t cap)
{
	size_t n;

	if (c->resp_off == c->resp_len)
		return 0;
	if (c->resp_off == c->piece_end) {
		/* A piece ended: sometimes nothing more until a later poll. */
		if (!c->paused && between(c, 0, 2) == 0) {
			c->paused = true;
			pthread_mutex_lock(&mock.lock);
			mock.pauses++;
			pthread_mutex_unlock(&mock.lock);
			return 0;
		}
		c->paused = false;
		c->piece_end = ft_piece_end(c);
		ft_count_cut(c, c->piece_end, c->piece_end - c->resp_off);
	}
	n = c->piece_end - c->resp_off;
	if (n > cap)
		n = cap;
	memcpy(buf, c->resp + c->resp_off, n);
	c->resp_off += n;
	return (ssize_t)n;
}

static void
ft_want_write(struct lg_tconn *c, bool on)
{
	c->want_out = on;
}

static int
ft_poll(struct lg_transport *t, int64_t timeout_us, lg_ready_fn cb)
{
	int n = 0;

	for (int i = 0; i < t->n; i++) {
		struct lg_tconn *c = t->conns[i];
		bool rd, wr;

		if (c == NULL)
			continue;
		rd = c->resp_off < c->resp_len;
		wr = c->want_out;
		c->paused = false; /* a new poll: the next piece may come */
		if (rd || wr) {
			cb(c->arg, rd, wr);
			n++;
		}
	}
	if (n == 0 && timeout_us > 0) {
		struct timespec ts = {0, 20000}; /* nothing can happen: waiting is all there is */

		nanosleep(&ts, NULL);
	}
	return n;
}

static void
ft_close(struct lg_tconn *c)
{
	struct lg_transport *t = c->t;

	for (int i = 0; i < t->n; i++) {
		if (t->conns[i] == c)
			t->conns[i] = NULL;
	}
	ft_free_conn(c);
}

static const struct lg_transport_ops ft_ops = {
	.name = "scripted",
	.create = ft_create,
	.destroy = ft_destroy,
	.connect = ft_connect,
	.writev = ft_writev,
	.read = ft_read,
	.want_write = ft_want_write,
	.poll = ft_poll,
	.close = ft_close,
};

/* --- tests --- */

static void
mock_reset(uint64_t seed)
{
	pthread_mutex_lock(&mock.lock);
	for (int p = 0; p < MOCK_PARTS; p++) {
		for (uint32_t k = 0; k < mock.n_log[p]; k++)
			free(mock.log[p][k].bytes);
		mock.n_log[p] = 0;
		mock.end[p] = 0;
	}
	mock.seed = seed;
	pthread_mutex_unlock(&mock.lock);
}

/*
 * One run: produce @count records (@e2e: and consume them, checked) over
 * @connections connections with @inflight requests each, batches of
 * @batch_size bytes, the responses cut by seeds from @seed on.
 */
static void
run(uint64_t seed, bool e2e, uint32_t connections, uint32_t inflight, uint32_t batch_size,
    uint64_t count)
{
	struct lg_result *res = calloc(1, sizeof(*res));
	struct lg_config cfg;
	int64_t total = 0;

	assert_non_null(res);
	mock_reset(seed);
	lg_config_defaults(&cfg);
	cfg.mode = e2e ? LG_MODE_E2E : LG_MODE_PRODUCE;
	cfg.transport = &ft_ops;
	snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
	cfg.port = 9;
	snprintf(cfg.topic, sizeof(cfg.topic), "t");
	cfg.partitions = MOCK_PARTS;
	cfg.record_size = 32;
	cfg.batch_size = batch_size;
	cfg.count = count;
	cfg.duration_s = 0;
	cfg.connections = connections;
	cfg.max_inflight = inflight;
	cfg.progress = false;
	cfg.request_timeout_ms = 20000;
	cfg.consumer_connections = 2;
	cfg.fetch_max_wait_ms = 10;
	cfg.fetch_max_bytes = 4096;     /* responses beyond the reader's buffer: it grows */
	cfg.partition_max_bytes = 3000;
	cfg.drain_s = 20;
	fprintf(stderr, "seed %llu: %s, %u connections, %u in flight, batches of %u bytes\n",
		(unsigned long long)seed, e2e ? "e2e" : "produce", connections, inflight,
		batch_size);
	assert_int_equal(lg_run(&cfg, res), 0);
	if (res->errors != 0)
		fail_msg("seed %llu: %llu errors: %s", (unsigned long long)seed,
			 (unsigned long long)res->errors, res->first_error);
	assert_int_equal(res->acked_records, count);
	assert_int_equal(res->failed_records, 0);
	for (int p = 0; p < MOCK_PARTS; p++) {
		assert_int_equal(res->acked_end[p], mock.end[p]);
		total += mock.end[p];
	}
	assert_int_equal(total, (int64_t)count);
	if (e2e) {
		assert_int_equal(res->consumed_records, count);
		assert_int_equal(res->crc_errors, 0);
		assert_int_equal(res->seq_errors, 0);
	}
	lg_result_free(res);
	free(res);
}

/*
 * Produce over the scripted transport with a few shapes of run (one
 * connection with one request at a time, many pipelined, several
 * connections), each with its own seeds for the cuts.
 */
static void
test_responses_cut_everywhere(void **state)
{
	(void)state;
	run(1, false, 1, 1, 256, 600);
	run(1000, false, 1, 8, 512, 3000);
	run(2000, false, 3, 4, 200, 3000);
	run(3000, false, 2, 16, 4096, 6000);
	/* Fetch responses too: small ones, and batches of 100 KB (beyond the 68 KB buffer). */
	run(4000, true, 2, 4, 1024, 4000);
	run(5000, true, 1, 2, 100000, 12000);
	mock_reset(0);
	print_message("pieces %llu (1-byte %llu), cut at a response boundary %llu, in the size "
		      "prefix 1+3 %llu, 2+2 %llu, 3+1 %llu, right after it %llu; reads with "
		      "nothing %llu; writes short %llu, refused %llu; batches %llu\n",
		      (unsigned long long)mock.pieces, (unsigned long long)mock.one_byte,
		      (unsigned long long)mock.at_boundary,
		      (unsigned long long)mock.prefix_split[1],
		      (unsigned long long)mock.prefix_split[2],
		      (unsigned long long)mock.prefix_split[3],
		      (unsigned long long)mock.prefix_alone, (unsigned long long)mock.pauses,
		      (unsigned long long)mock.short_writes,
		      (unsigned long long)mock.refused_writes,
		      (unsigned long long)mock.batches);
	print_message("largest Fetch response %llu bytes\n",
		      (unsigned long long)mock.fetch_bytes_max);
	/* Each kind of cut happened (else the test says little). */
	assert_true(mock.one_byte > 0 && mock.at_boundary > 0 && mock.prefix_alone > 0);
	for (int d = 1; d < 4; d++)
		assert_true(mock.prefix_split[d] > 0);
	assert_true(mock.pauses > 0 && mock.short_writes > 0 && mock.refused_writes > 0);
	assert_true(mock.fetch_bytes_max > 4096 + (64 << 10));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_responses_cut_everywhere),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
