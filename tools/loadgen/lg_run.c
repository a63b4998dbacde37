/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The load generator's workers: producer and consumer connections driven by
 * one event loop per thread, and the sampling/stopping logic of a run (see
 * lg_run.h for the model).
 *
 * Per connection, requests live in slots (max_inflight for producers, one
 * for consumers): a slot owns its encoded request frame and, for Produce,
 * the batches the frame was encoded from, so a retry re-encodes the same
 * batches. Slots in flight form a FIFO in send order; Kafka answers a
 * connection's requests in order, so a response always belongs to the FIFO
 * head (anything else is a protocol error and ends the run). Connections
 * that fail are flagged and closed when the worker exits, never inside a
 * transport callback.
 */
#include "lg_run.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kp_compress.h"
#include "kp_error.h"
#include "lg_check.h"
#include "lg_tmpl.h"

#define LG_MAX_PARTS_PER_REQ 64		   /* partitions in one Produce request, at most */
#define LG_POOL_LEN (64u << 10)		   /* value bytes records are cut from */
#define LG_ARENA_BYTES (4u << 20)	   /* decoded responses (Fetch of many partitions) */
#define LG_RBUF_MAX (256u << 20)	   /* largest response frame accepted */
#define LG_POLL_MAX_US 20000		   /* stop flags are seen within this */
#define LG_IOV_MAX 16

/* ---- shared state ---------------------------------------------------------- */

struct lg_shared {
	const struct lg_config *cfg;
	struct lg_versions v;
	int32_t partitions;
	const char *host;
	uint16_t port;
	int64_t t0; /* start, CLOCK_MONOTONIC ns: set once every connection is up */
	atomic_uint ready; /* workers whose connections are all up (or failed) */
	atomic_int go;	   /* t0 is set: start producing and fetching */
	uint32_t run; /* random per run: sequences of this run (lg_check.h) */
	const int64_t *start_offsets;
	atomic_int stop_produce;
	atomic_int stop_all;
	atomic_uint_fast64_t claimed; /* records claimed from cfg->count */
	atomic_uint_fast64_t errors;
	pthread_mutex_t err_lock;
	char first_error[256];
	/* --keys: key k is "%08x" of k; Kafka's default partitioner puts it in one
	 * partition, and records of partition p take the keys of p in turn:
	 * pkeys[pkey_off[p]] .. pkeys[pkey_off[p + 1] - 1]. */
	uint32_t *pkeys;
	uint32_t *pkey_off;
};

struct lg_part_ref {
	int32_t partition;
	uint32_t records;
	uint64_t bytes; /* payload bytes (key + value) */
	int attempts;
	bool retry;
	bool answered;
};

struct lg_slot {
	uint8_t *req; /* the encoded frame, size prefix included */
	size_t req_len;
	size_t req_cap;
	struct lg_conn *conn;
	/* req lent to the transport (send_ref): while txref->held the slot is
	 * neither reused nor re-encoded; a slot done before its buffer came
	 * back waits with free_pending. Heap-allocated so that a buffer still
	 * lent when the connection is freed can be left to the transport. */
	struct lg_tx_ref *txref;
	bool free_pending;
	uint8_t *batches; /* Produce: nparts * batch_cap bytes the frame was encoded from */
	/* Produce without compression or keys: batch j of batches, built once
	 * record by record, is learned as tmpl[j] and patched (lg_tmpl.h:
	 * stamps, timestamps, CRC) for the next request with as many records
	 * instead of rebuilt. NULL when every batch is built record by record. */
	struct lg_tmpl *tmpl;
	/* The whole frame reused (flat out): when the last frame encoded holds
	 * frame_parts batches, batch j at req + boff[j] for partition
	 * fpart[j] with tmpl[j].n records, a request with the same batches
	 * patches them there and the correlation id, with no encoding and no
	 * copy of the batches into the frame. 0: the frame is not reusable. */
	uint32_t frame_parts;
	uint32_t *boff;
	int32_t *fpart;
	struct kp_produce_request_partition_produce_data *pd;
	struct lg_part_ref *parts;
	uint32_t nparts;
	int32_t corr;
	int64_t queued_ns;
	int64_t retry_at;
	bool expect_response;
};

/* An acknowledged Produce of one partition, for the tail's legs (lg_result.tail_*). */
struct lg_acked_req {
	int64_t base;	   /* first offset */
	uint32_t records;
	int64_t queued_ns; /* the request queued */
	int64_t acked_ns;  /* its answer received */
};

/* Acknowledged requests kept per partition (a power of two). */
#define LG_TAIL_RING 256u
#define LG_TAIL_MS_MAX 600000u /* the timeline's bins: 10 minutes of 1 ms */
#define LG_STALLS_MAX 16384u   /* loop stalls kept per worker */

struct lg_worker;

struct lg_conn {
	struct lg_worker *w;
	struct lg_tconn *tc;
	bool producer;
	bool failed;
	bool up;	/* the transport reported it writable: connected */
	uint32_t index; /* producer: connection index, in the records' stamps */
	uint64_t *seq;	/* producer: next sequence per owned partition (by index in parts) */
	bool exhausted; /* producer: the record budget is spent */
	int32_t *parts;
	uint32_t nparts;
	struct lg_slot *slots;
	uint32_t nslots;
	uint32_t *freelist;
	uint32_t nfree;
	uint32_t *fifo; /* ring of slot indexes in send order */
	uint32_t fhead;
	uint32_t fcount;
	uint32_t nsent;	 /* fifo entries from the head completely written */
	size_t send_off; /* bytes of fifo[nsent] already written */
	uint32_t *retryq;
	uint32_t nretry;
	uint8_t *rbuf;
	size_t rcap;
	size_t rlen;
	int32_t corr;
	/* producer */
	uint64_t gen; /* records scheduled so far */
	int64_t interval_ns;
	uint32_t rr;
	uint32_t rpb; /* records per batch */
	size_t batch_cap;
	/* consumer */
	int64_t *fetch_off;
	struct kp_fetch_request_fetch_partition *fparts;
	int64_t fetch_retry_at;
};

struct lg_worker {
	struct lg_shared *sh;
	uint32_t id;
	const struct lg_config *cfg;
	pthread_t th;
	struct lg_transport *t;
	struct lg_conn *conns;
	uint32_t nconns;
	int64_t wake_at; /* earliest time a producer has work (rate, linger, retry) */
	/* counters read by the sampling thread */
	atomic_uint_fast64_t acked, acked_bytes, sent, failed, retried, preq, preq_patched, wire_out;
	atomic_uint_fast64_t consumed, consumed_bytes, unstamped, freq;
	atomic_uint_fast64_t crc_errors, seq_errors, seq_checked;
	atomic_int producers_idle;
	atomic_int done;
	int64_t first_send_ns, last_ack_ns, first_fetch_ns, last_consume_ns;
	int64_t cpu_ns; /* the thread's CPU time in its loop (read after join) */
	int64_t busy_ns; /* its loop outside poll plus poll's busy time; 0: not known */
	pthread_mutex_t lock; /* guards iv_ack, iv_e2e */
	struct lg_hist iv_ack, iv_e2e;
	struct lg_hist ack, e2e; /* totals; read after join */
	struct lg_hist lag;	 /* --rate: due time to queued, per request (worker only) */
	struct lg_hist frtt;	 /* consumers: a Fetch queued to its response (worker only) */
	struct lg_hist rlag;	 /* --rate: due time to queued, per record (worker only) */
	struct lg_hist loop;	 /* an iteration's time beyond the wait it asked of poll */
	/* --tail-us: per partition, its latest acknowledged requests (a ring, allocated at
	 * the first); the legs of the late records found there (worker only). */
	struct lg_acked_req **tail_ring;
	uint64_t *tail_n; /* requests pushed per partition */
	int64_t tail_ns;
	struct lg_hist tail_send, tail_ack, tail_after;
	uint64_t tail_records, tail_before_ack, tail_unmatched;
	uint32_t *late_per_ms; /* late records per ms of receipt since sh->t0 */
	uint32_t nlate_ms;     /* bins allocated */
	int64_t (*stalls)[2];  /* loop iterations tail_ns or longer: end, length (ns from t0) */
	uint32_t nstalls;
	int64_t *acked_end;
	int64_t *consumed_end;
	uint64_t *consumed_pp;
	int32_t *pidx; /* partition -> index in its consumer connection */
	uint8_t *pool;
	uint32_t pool_pos;
	uint8_t *cscratch;
	size_t cscratch_cap;
	uint8_t *dscratch;
	size_t dscratch_cap;
	uint8_t *arena_buf;
	struct kp_arena arena;
	bool stamps; /* record end-to-end latency (e2e, or consume --from-latest) */
	bool from_start; /* consumers begin where this run's (or every) record is: seq 0 first */
	bool measuring;	 /* past --warmup: the latency totals count */
	struct lg_seqtab seqtab;
};

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
lg_error(struct lg_shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
lg_error(struct lg_shared *sh, const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add(&sh->errors, 1);
	pthread_mutex_lock(&sh->err_lock);
	if (sh->first_error[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(sh->first_error, sizeof(sh->first_error), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&sh->err_lock);
}

/* A connection that can no longer be trusted ends the run. */
static void
conn_fail(struct lg_conn *c, const char *what, int err)
{
	if (c->failed)
		return;
	c->failed = true;
	lg_error(c->w->sh, "connection to %s:%u: %s: %s", c->w->sh->host, c->w->sh->port, what,
		 err ? strerror(-err) : "protocol error");
	atomic_store(&c->w->sh->stop_all, 1);
}

static const char *
mode_names[] = {"produce", "consume", "e2e", "tcp-baseline"};

const char *
lg_mode_name(enum lg_mode mode)
{
	return (unsigned)mode < 4 ? mode_names[mode] : "unknown";
}

void
lg_config_defaults(struct lg_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = LG_MODE_PRODUCE;
	cfg->transport = &lg_tcp_ops;
	snprintf(cfg->host, sizeof(cfg->host), "127.0.0.1");
	cfg->port = 9092;
	snprintf(cfg->topic, sizeof(cfg->topic), "slipstream-load");
	cfg->partitions = 1;
	cfg->replication = -1;
	cfg->create = true;
	cfg->record_size = 1024;
	cfg->batch_size = 16384;
	cfg->linger_us = 5000;
	cfg->acks = 1;
	cfg->codec = KP_COMPRESSION_NONE;
	cfg->connections = 1;
	cfg->threads = 1;
	cfg->max_inflight = 5;
	cfg->duration_s = 10;
	cfg->request_timeout_ms = 30000;
	cfg->tail_us = 200; /* issue 7's end-to-end target */
	cfg->retries = 3;
	cfg->retry_backoff_ms = 100;
	cfg->fetch_max_wait_ms = 100;
	cfg->fetch_max_bytes = 8 << 20;
	cfg->partition_max_bytes = 1 << 20;
	cfg->drain_s = 5;
	cfg->interval_ms = 1000;
	cfg->progress = true;
	cfg->produce_version = 9;
}

/* Producing (or consuming) time, the warm-up included; 0: a count bounds the run. */
static double
run_seconds(const struct lg_config *cfg)
{
	return cfg->duration_s > 0 ? cfg->warmup_s + cfg->duration_s : 0;
}

/* --keys: the text of key @k (8 bytes and a NUL into @buf). */
static void
key_text(char buf[16], uint32_t k)
{
	snprintf(buf, 16, "%08x", k);
}

/* ---- sending --------------------------------------------------------------- */

static void
slot_free(struct lg_conn *c, struct lg_slot *s)
{
	if (s->txref != NULL && s->txref->held) {
		s->free_pending = true; /* slot_tx_done frees it */
		return;
	}
	c->freelist[c->nfree++] = (uint32_t)(s - c->slots);
}

/* The transport gave a lent request buffer back (lg_tx_ref.done). */
static void
slot_tx_done(struct lg_tx_ref *ref)
{
	struct lg_slot *s = ref->arg;

	if (s == NULL)
		return; /* its connection was freed; conn_free left the buffer allocated */
	if (s->free_pending) {
		s->free_pending = false;
		slot_free(s->conn, s);
	}
}

static void
fifo_push(struct lg_conn *c, struct lg_slot *s)
{
	c->fifo[(c->fhead + c->fcount) % c->nslots] = (uint32_t)(s - c->slots);
	c->fcount++;
}

static struct lg_slot *
fifo_head(struct lg_conn *c)
{
	return &c->slots[c->fifo[c->fhead]];
}

static void
fifo_pop(struct lg_conn *c)
{
	c->fhead = (c->fhead + 1) % c->nslots;
	c->fcount--;
	c->nsent--;
}

/*
 * The ring of @partition's acknowledged requests, made when this worker first
 * sends it a request (a ring means "produced here": a record of a partition
 * without one is another thread's, unmatched). NULL without memory.
 */
static struct lg_acked_req *
tail_ring(struct lg_worker *w, int32_t partition)
{
	if (w->tail_ring[partition] == NULL)
		w->tail_ring[partition] = calloc(LG_TAIL_RING, sizeof(struct lg_acked_req));
	return w->tail_ring[partition];
}

/* Remember an acknowledged request of @partition for the tail's legs. */
static void
tail_push(struct lg_worker *w, int32_t partition, int64_t base, uint32_t records,
	  int64_t queued_ns, int64_t acked_ns)
{
	struct lg_acked_req *ring = tail_ring(w, partition);

	if (ring == NULL)
		return; /* its late records count as unmatched */
	ring[w->tail_n[partition]++ % LG_TAIL_RING] = (struct lg_acked_req){
		.base = base, .records = records, .queued_ns = queued_ns, .acked_ns = acked_ns};
}

/* A record of @partition at @offset, due at @due, received at @now, tail_ns late or more. */
static void
tail_record(struct lg_worker *w, int32_t partition, int64_t offset, int64_t due, int64_t now)
{
	const struct lg_acked_req *ring = w->tail_ring[partition];
	uint64_t n = w->tail_n[partition];
	uint64_t k = n < LG_TAIL_RING ? n : LG_TAIL_RING;

	w->tail_records++;
	uint64_t bin = (uint64_t)(now - w->sh->t0) / 1000000;
	if (now >= w->sh->t0 && bin < w->nlate_ms)
		w->late_per_ms[bin]++;
	/* Newest first: a late record's request is among the last few. */
	for (uint64_t i = 0; ring != NULL && i < k; i++) {
		const struct lg_acked_req *a = &ring[(n - 1 - i) % LG_TAIL_RING];
		if (offset < a->base || offset >= a->base + (int64_t)a->records)
			continue;
		/* Each leg from the end of the one before: they add up to now - due. */
		int64_t q = a->queued_ns > due ? a->queued_ns : due;
		int64_t ack = a->acked_ns > q ? a->acked_ns : q;
		if (now < a->acked_ns) { /* not possible: the ack is pushed before it is read */
			w->tail_before_ack++;
			return;
		}
		lg_hist_record(&w->tail_send, (uint64_t)(q - due));
		lg_hist_record(&w->tail_ack, (uint64_t)(ack - q));
		lg_hist_record(&w->tail_after, (uint64_t)(now - ack));
		return;
	}
	if (ring != NULL && offset >= w->acked_end[partition])
		w->tail_before_ack++; /* the Fetch answer overtook the Produce answer */
	else
		w->tail_unmatched++;
}

static void
produce_acked(struct lg_conn *c, struct lg_part_ref *pr, int64_t base_offset, int64_t now,
	      int64_t queued_ns)
{
	struct lg_worker *w = c->w;

	if (w->tail_ns > 0 && base_offset >= 0)
		tail_push(w, pr->partition, base_offset, pr->records, queued_ns, now);

	atomic_fetch_add_explicit(&w->acked, pr->records, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->acked_bytes, pr->bytes, memory_order_relaxed);
	if (base_offset >= 0 && base_offset + pr->records > w->acked_end[pr->partition])
		w->acked_end[pr->partition] = base_offset + pr->records;
	w->last_ack_ns = now;
}

/* Write what the socket takes; acks=0 requests are done once written. */
static void
conn_flush(struct lg_conn *c)
{
	struct lg_worker *w = c->w;
	const struct lg_transport_ops *ops = w->cfg->transport;

	while (!c->failed && c->nsent < c->fcount) {
		ssize_t got;
		struct lg_slot *h = &c->slots[c->fifo[(c->fhead + c->nsent) % c->nslots]];
		if (ops->send_ref != NULL && h->expect_response) {
			/* By reference: the slot's frame is not copied (memif). */
			got = ops->send_ref(c->tc, h->req + c->send_off, h->req_len - c->send_off,
					    h->txref);
		} else if (ops->send_ref != NULL) {
			/* acks=0: no response frees the slot, only the peer's TCP ACK
			 * would return a lent frame (delayed up to its ACK timer): copy,
			 * so the slot is free once written. */
			struct iovec one = {h->req + c->send_off, h->req_len - c->send_off};
			got = ops->writev(c->tc, &one, 1);
		} else {
			struct iovec iov[LG_IOV_MAX];
			int n = 0;
			for (uint32_t i = c->nsent; i < c->fcount && n < LG_IOV_MAX; i++) {
				struct lg_slot *s = &c->slots[c->fifo[(c->fhead + i) % c->nslots]];
				size_t off = i == c->nsent ? c->send_off : 0;
				iov[n].iov_base = s->req + off;
				iov[n].iov_len = s->req_len - off;
				n++;
			}
			got = ops->writev(c->tc, iov, n);
		}
		if (got < 0) {
			conn_fail(c, "send", (int)got);
			return;
		}
		if (got == 0) {
			ops->want_write(c->tc, true);
			return;
		}
		atomic_fetch_add_explicit(&w->wire_out, (uint64_t)got, memory_order_relaxed);
		size_t left = (size_t)got;
		while (left > 0) {
			struct lg_slot *s = &c->slots[c->fifo[(c->fhead + c->nsent) % c->nslots]];
			size_t rem = s->req_len - c->send_off;
			if (left < rem) {
				c->send_off += left;
				break;
			}
			left -= rem;
			c->send_off = 0;
			c->nsent++;
			if (!s->expect_response) {
				/* acks=0: never answered; written is all we learn. */
				int64_t now = now_ns();
				for (uint32_t j = 0; j < s->nparts; j++)
					produce_acked(c, &s->parts[j], -1, now, s->queued_ns);
				fifo_pop(c);
				slot_free(c, s);
			}
		}
	}
	ops->want_write(c->tc, false);
}

/* ---- producing ------------------------------------------------------------- */

/*
 * Where the batches of the frame just encoded lie in it (s->boff), found by
 * their bytes: each follows the previous one within a few fields (the
 * partition index, a length prefix, tagged fields), the first after the
 * request header and topic name. false when one is not found.
 */
static bool
frame_locate(struct lg_slot *s)
{
	size_t pos = 0;

	for (uint32_t j = 0; j < s->nparts; j++) {
		const uint8_t *b = s->pd[j].records.ptr;
		size_t len = (size_t)s->pd[j].records.len;
		size_t lim = pos + 1024 + (j == 0 ? strlen(s->conn->w->cfg->topic) : 0);
		bool found = false;
		for (size_t q = pos; q <= lim && q + len <= s->req_len; q++) {
			if (memcmp(s->req + q, b, KP_BATCH_HEADER_SIZE) == 0 &&
			    memcmp(s->req + q, b, len) == 0) {
				s->boff[j] = (uint32_t)q;
				s->fpart[j] = s->parts[j].partition;
				pos = q + len;
				found = true;
				break;
			}
		}
		if (!found)
			return false;
	}
	return true;
}

/* Fill one batch of @n records into @dst (batch @j of slot @s); returns its size or a
 * negative errno. */
static int64_t
build_batch(struct lg_conn *c, struct lg_slot *s, uint32_t j, uint32_t pi, uint8_t *dst,
	    size_t cap, uint32_t n, int64_t stamp0, int64_t step, uint64_t *payload)
{
	struct lg_worker *w = c->w;
	const struct lg_config *cfg = w->cfg;
	struct kp_batch_builder b;
	int64_t ts = realtime_ms();
	size_t size;
	int rc;

	if (s->tmpl != NULL && s->tmpl[j].n == n) {
		struct lg_tmpl_stamp st = {
			.due0 = (uint64_t)stamp0, .step = step, .run = w->sh->run,
			.conn = c->index, .partition = c->parts[pi], .seq0 = c->seq[pi],
		};
		lg_tmpl_patch(&s->tmpl[j], dst, ts, &st);
		c->seq[pi] += n;
		*payload = (uint64_t)n * cfg->record_size;
		return s->tmpl[j].size;
	}

	rc = kp_batch_builder_start(&b, dst, cap, cfg->codec);
	if (rc < 0)
		return rc;
	b.scratch = w->cscratch;
	b.scratch_cap = w->cscratch_cap;
	*payload = 0;
	for (uint32_t k = 0; k < n; k++) {
		char key[16];
		size_t klen = 0;
		uint32_t span = LG_POOL_LEN;
		uint8_t *val = w->pool + (w->pool_pos % span);
		uint64_t seq = c->seq[pi]++;
		int32_t part = c->parts[pi];
		w->pool_pos += 61; /* a different cut of the pool per record */
		lg_stamp_write(val, cfg->record_size, (uint64_t)(stamp0 + (int64_t)k * step),
			       w->sh->run, c->index, part, seq);
		if (cfg->keys) {
			/* A key Kafka's partitioner maps to this partition (only such
			 * partitions are the connection's). */
			const struct lg_shared *sh = w->sh;
			uint32_t nk = sh->pkey_off[part + 1] - sh->pkey_off[part];
			key_text(key, sh->pkeys[sh->pkey_off[part] + seq % nk]);
			klen = 8;
		}
		rc = kp_batch_builder_add(&b, ts, cfg->keys ? key : NULL, klen, val, cfg->record_size,
					  NULL, 0);
		if (rc < 0)
			return rc;
		*payload += klen + cfg->record_size;
	}
	rc = kp_batch_builder_finish(&b, &size);
	if (rc < 0)
		return rc;
	if (s->tmpl != NULL)
		lg_tmpl_learn(&s->tmpl[j], dst, size, cfg->record_size);
	return (int64_t)size;
}

static int
produce_encode(struct lg_conn *c, struct lg_slot *s)
{
	const struct lg_config *cfg = c->w->cfg;
	struct kp_produce_request req;
	struct kp_produce_request_topic_produce_data td;

	kp_produce_request_init(&req);
	kp_produce_request_topic_produce_data_init(&td);
	req.transactional_id.ptr = NULL;
	req.transactional_id.len = -1;
	req.acks = cfg->acks;
	req.timeout_ms = cfg->request_timeout_ms;
	td.name.ptr = cfg->topic;
	td.name.len = (int32_t)strlen(cfg->topic);
	td.partition_data.items = s->pd;
	td.partition_data.count = (int32_t)s->nparts;
	req.topic_data.items = &td;
	req.topic_data.count = 1;
	s->corr = c->corr++;
	return lg_kafka_request_encode(s->req, s->req_cap, LG_API_PRODUCE, c->w->sh->v.produce,
				       s->corr, &req, &s->req_len);
}

/* Records this connection may put in a request now; 0 with w->wake_at set when later. */
static uint64_t
produce_due(struct lg_conn *c, int64_t now)
{
	const struct lg_config *cfg = c->w->cfg;
	uint32_t np = c->nparts < LG_MAX_PARTS_PER_REQ ? c->nparts : LG_MAX_PARTS_PER_REQ;
	uint64_t want = (uint64_t)np * c->rpb;

	if (cfg->rate <= 0)
		return want;
	int64_t elapsed = now - c->w->sh->t0;
	uint64_t sched = elapsed < 0 ? 0 : (uint64_t)(elapsed / c->interval_ns) + 1;
	int64_t oldest = c->w->sh->t0 + (int64_t)c->gen * c->interval_ns;
	if (sched <= c->gen) {
		if (oldest < c->w->wake_at)
			c->w->wake_at = oldest;
		return 0;
	}
	uint64_t due = sched - c->gen;
	if (due < want && now - oldest < (int64_t)cfg->linger_us * 1000) {
		int64_t at = oldest + (int64_t)cfg->linger_us * 1000;
		/* Also wake when the batch would be full. */
		int64_t full = c->w->sh->t0 + (int64_t)(c->gen + want - 1) * c->interval_ns;
		if (full < at)
			at = full;
		if (at < c->w->wake_at)
			c->w->wake_at = at;
		return 0;
	}
	return due < want ? due : want;
}

static void
produce_fill(struct lg_conn *c, int64_t now)
{
	struct lg_worker *w = c->w;
	struct lg_shared *sh = w->sh;
	const struct lg_config *cfg = w->cfg;

	if (c->failed)
		return;
	/* The duration ends producing here too, not only when the sampling thread
	 * (which may be starved of CPU on a loaded machine) notices it. */
	if (cfg->duration_s > 0 && now - sh->t0 >= (int64_t)(run_seconds(cfg) * 1e9))
		atomic_store_explicit(&sh->stop_produce, 1, memory_order_relaxed);
	/* Retries first, once their backoff has passed. */
	for (uint32_t i = 0; i < c->nretry;) {
		struct lg_slot *s = &c->slots[c->retryq[i]];
		if (s->retry_at > now || (s->txref != NULL && s->txref->held)) {
			/* Not yet; or its frame is still lent to the transport (the
			 * retry re-encodes it in place): look again at the next poll. */
			int64_t at = s->retry_at > now ? s->retry_at : now + 100000;
			if (at < w->wake_at)
				w->wake_at = at;
			i++;
			continue;
		}
		c->retryq[i] = c->retryq[--c->nretry];
		int rc = produce_encode(c, s);
		if (rc < 0) {
			conn_fail(c, "encode retry", rc);
			return;
		}
		s->queued_ns = now;
		fifo_push(c, s);
	}
	while (c->nfree > 0 && !c->exhausted && !atomic_load_explicit(&sh->stop_produce,
								       memory_order_relaxed)) {
		uint64_t due = produce_due(c, now);
		if (due == 0)
			return;
		if (cfg->count > 0) {
			uint64_t prev = atomic_fetch_add(&sh->claimed, due);
			if (prev >= cfg->count) {
				c->exhausted = true;
				return;
			}
			if (prev + due > cfg->count)
				due = cfg->count - prev;
		}
		int64_t stamp0 = now, step = 0;
		if (cfg->rate > 0) {
			stamp0 = sh->t0 + (int64_t)c->gen * c->interval_ns;
			step = c->interval_ns;
			/* How far producing runs behind the schedule (linger included): e2e
			 * counts from the due time, so a stall shows here first. */
			lg_hist_record(&w->lag, now > stamp0 ? (uint64_t)(now - stamp0) : 0);
			/* The same per record: a stall makes every record due meanwhile late,
			 * and one request then carries them all (e2e counts records). */
			for (uint64_t k = 0; k < due; k++) {
				int64_t at = stamp0 + (int64_t)k * step;
				lg_hist_record(&w->rlag, now > at ? (uint64_t)(now - at) : 0);
			}
		}
		c->gen += due;
		struct lg_slot *s = &c->slots[c->freelist[--c->nfree]];
		s->nparts = 0;
		s->expect_response = cfg->acks != 0;
		/* The batches: partition (index in c->parts) and records of each. */
		uint32_t plan_pi[LG_MAX_PARTS_PER_REQ], plan_n[LG_MAX_PARTS_PER_REQ];
		uint32_t nb = 0;
		bool inplace = s->frame_parts > 0;
		uint64_t left = due;
		for (uint32_t i = 0; i < c->nparts && left > 0 && nb < LG_MAX_PARTS_PER_REQ; i++) {
			uint32_t n = left < c->rpb ? (uint32_t)left : c->rpb;
			uint32_t pi = (c->rr + i) % c->nparts;
			if (inplace && (nb >= s->frame_parts || s->fpart[nb] != c->parts[pi] ||
					s->tmpl[nb].n != n))
				inplace = false;
			plan_pi[nb] = pi;
			plan_n[nb] = n;
			nb++;
			left -= n;
		}
		if (nb != s->frame_parts)
			inplace = false;
		int64_t ts = inplace ? realtime_ms() : 0;
		bool full = s->tmpl != NULL;
		for (uint32_t j = 0; j < nb; j++) {
			uint32_t pi = plan_pi[j], n = plan_n[j];
			uint8_t *dst = s->batches + (size_t)j * c->batch_cap;
			uint64_t payload;
			int64_t size;
			if (inplace) {
				/* Patched where the last frame has it; batches[j] is left
				 * stale (valid, an older patch: a retry copies it back). */
				struct lg_tmpl_stamp st = {
					.due0 = (uint64_t)stamp0, .step = step, .run = sh->run,
					.conn = c->index, .partition = c->parts[pi], .seq0 = c->seq[pi],
				};
				lg_tmpl_patch(&s->tmpl[j], s->req + s->boff[j], ts, &st);
				c->seq[pi] += n;
				payload = (uint64_t)n * cfg->record_size;
				size = s->tmpl[j].size;
			} else {
				size = build_batch(c, s, j, pi, dst, c->batch_cap, n, stamp0, step,
						   &payload);
				if (size < 0) {
					conn_fail(c, "build batch", (int)size);
					return;
				}
				if (s->tmpl == NULL || n != c->rpb || s->tmpl[j].n != n)
					full = false;
			}
			stamp0 += (int64_t)n * step;
			s->parts[j] = (struct lg_part_ref){
				.partition = c->parts[pi],
				.records = n,
				.bytes = payload,
			};
			kp_produce_request_partition_produce_data_init(&s->pd[j]);
			s->pd[j].index = s->parts[j].partition;
			s->pd[j].records.ptr = dst;
			s->pd[j].records.len = (int32_t)size;
		}
		s->nparts = nb;
		c->rr = (c->rr + s->nparts) % c->nparts;
		for (uint32_t j = 0; w->tail_ns > 0 && j < nb; j++)
			(void)tail_ring(w, s->parts[j].partition); /* produced here */
		if (inplace) {
			atomic_fetch_add_explicit(&w->preq_patched, 1, memory_order_relaxed);
			s->corr = c->corr++;
			uint32_t be = __builtin_bswap32((uint32_t)s->corr);
			memcpy(s->req + 8, &be, 4); /* size, api key, version, correlation id */
		} else {
			int rc = produce_encode(c, s);
			if (rc < 0) {
				conn_fail(c, "encode Produce", rc);
				return;
			}
			/* Full templated batches (flat out): the next request may reuse
			 * this frame as it is. */
			s->frame_parts = full && frame_locate(s) ? nb : 0;
		}
		s->queued_ns = now;
		if (w->first_send_ns == 0)
			w->first_send_ns = now;
		fifo_push(c, s);
		atomic_fetch_add_explicit(&w->sent, due, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->preq, 1, memory_order_relaxed);
	}
}

static void
record_latency(struct lg_worker *w, struct lg_hist *total, struct lg_hist *iv, uint64_t ns)
{
	lg_hist_record(total, ns);
	pthread_mutex_lock(&w->lock);
	lg_hist_record(iv, ns);
	pthread_mutex_unlock(&w->lock);
}

static void
produce_response(struct lg_conn *c, struct lg_slot *s, const uint8_t *frame, size_t len,
		 int64_t now)
{
	struct lg_worker *w = c->w;
	const struct lg_config *cfg = w->cfg;
	struct kp_produce_response r;
	int32_t corr;
	int rc;

	record_latency(w, &w->ack, &w->iv_ack, (uint64_t)(now - s->queued_ns));
	if (cfg->mode == LG_MODE_TCP_BASELINE) {
		/* The sink answers with a bare header: every record counts as acknowledged. */
		for (uint32_t j = 0; j < s->nparts; j++)
			produce_acked(c, &s->parts[j], -1, now, s->queued_ns);
		slot_free(c, s);
		return;
	}
	kp_arena_reset(&w->arena);
	rc = lg_kafka_response_decode(frame, len, LG_API_PRODUCE, w->sh->v.produce, &r, &w->arena,
				      &corr);
	if (rc < 0) {
		conn_fail(c, "decode Produce response", rc);
		return;
	}
	for (uint32_t j = 0; j < s->nparts; j++) {
		s->parts[j].answered = false;
		s->parts[j].retry = false;
	}
	for (int32_t t = 0; t < r.responses.count; t++) {
		const struct kp_produce_response_topic_produce_response *tr = &r.responses.items[t];
		for (int32_t p = 0; p < tr->partition_responses.count; p++) {
			const struct kp_produce_response_partition_produce_response *pr =
				&tr->partition_responses.items[p];
			for (uint32_t j = 0; j < s->nparts; j++) {
				struct lg_part_ref *ref = &s->parts[j];
				if (ref->partition != pr->index || ref->answered)
					continue;
				ref->answered = true;
				if (pr->error_code == 0) {
					produce_acked(c, ref, pr->base_offset, now, s->queued_ns);
				} else if (lg_kafka_retriable(pr->error_code) &&
					   ref->attempts < cfg->retries) {
					ref->retry = true;
					ref->attempts++;
					atomic_fetch_add_explicit(&w->retried, 1,
								  memory_order_relaxed);
				} else {
					atomic_fetch_add_explicit(&w->failed, ref->records,
								  memory_order_relaxed);
					lg_error(w->sh, "Produce %s/%d: %s", cfg->topic, ref->partition,
						 kp_error_name(pr->error_code));
				}
				break;
			}
		}
	}
	uint32_t keep = 0;
	bool in_frame = s->frame_parts > 0;
	for (uint32_t j = 0; j < s->nparts; j++) {
		if (!s->parts[j].answered) {
			atomic_fetch_add_explicit(&w->failed, s->parts[j].records,
						  memory_order_relaxed);
			lg_error(w->sh, "Produce %s/%d: no answer for the partition", cfg->topic,
				 s->parts[j].partition);
			continue;
		}
		if (!s->parts[j].retry)
			continue;
		if (in_frame) /* the frame holds this request's bytes; batches[j] older ones */
			memcpy((uint8_t *)(uintptr_t)s->pd[j].records.ptr, s->req + s->boff[j],
			       (size_t)s->pd[j].records.len);
		s->parts[keep] = s->parts[j];
		s->pd[keep] = s->pd[j];
		keep++;
	}
	s->nparts = keep;
	if (keep > 0)
		s->frame_parts = 0; /* the retry re-encodes the frame from batches[] */
	if (keep == 0) {
		slot_free(c, s);
		return;
	}
	s->retry_at = now + (int64_t)cfg->retry_backoff_ms * 1000000;
	c->retryq[c->nretry++] = (uint32_t)(s - c->slots);
}

/* ---- consuming ------------------------------------------------------------- */

static void
fetch_fill(struct lg_conn *c, int64_t now)
{
	struct lg_worker *w = c->w;
	const struct lg_config *cfg = w->cfg;
	struct kp_fetch_request req;
	struct kp_fetch_request_fetch_topic ft;

	if (c->failed || c->fcount > 0 || c->nretry > 0)
		return;
	if (now < c->fetch_retry_at) {
		if (c->fetch_retry_at < w->wake_at)
			w->wake_at = c->fetch_retry_at;
		return;
	}
	struct lg_slot *s = &c->slots[0];
	kp_fetch_request_init(&req);
	kp_fetch_request_fetch_topic_init(&ft);
	req.replica_id = -1;
	req.max_wait_ms = cfg->fetch_max_wait_ms;
	req.min_bytes = 1;
	req.max_bytes = cfg->fetch_max_bytes;
	req.isolation_level = 0;
	req.session_id = 0;
	req.session_epoch = -1; /* no fetch session: every request is a full fetch */
	ft.topic.ptr = cfg->topic;
	ft.topic.len = (int32_t)strlen(cfg->topic);
	for (uint32_t i = 0; i < c->nparts; i++) {
		kp_fetch_request_fetch_partition_init(&c->fparts[i]);
		c->fparts[i].partition = c->parts[i];
		c->fparts[i].current_leader_epoch = -1;
		c->fparts[i].fetch_offset = c->fetch_off[i];
		c->fparts[i].last_fetched_epoch = -1;
		c->fparts[i].log_start_offset = -1;
		c->fparts[i].partition_max_bytes = cfg->partition_max_bytes;
	}
	ft.partitions.items = c->fparts;
	ft.partitions.count = (int32_t)c->nparts;
	req.topics.items = &ft;
	req.topics.count = 1;
	s->corr = c->corr++;
	s->expect_response = true;
	s->nparts = 0;
	int rc = lg_kafka_request_encode(s->req, s->req_cap, LG_API_FETCH, w->sh->v.fetch, s->corr,
					 &req, &s->req_len);
	if (rc < 0) {
		conn_fail(c, "encode Fetch", rc);
		return;
	}
	s->queued_ns = now;
	if (w->first_fetch_ns == 0)
		w->first_fetch_ns = now;
	c->nfree = 0;
	fifo_push(c, s);
	atomic_fetch_add_explicit(&w->freq, 1, memory_order_relaxed);
}

/* The sequence of a record read at @offset of @partition (lg_check.h). */
static void
check_seq(struct lg_worker *w, int32_t partition, int64_t offset, const struct lg_stamp *st)
{
	uint64_t want;
	enum lg_seq_result r = lg_seq_check(&w->seqtab, partition, st, w->from_start, &want);

	atomic_fetch_add_explicit(&w->seq_checked, 1, memory_order_relaxed);
	if (r == LG_SEQ_OK || r == LG_SEQ_FIRST)
		return;
	atomic_fetch_add_explicit(&w->seq_errors, 1, memory_order_relaxed);
	switch (r) {
	case LG_SEQ_WRONG_PART:
		lg_error(w->sh, "Fetch %s/%d at %" PRId64 ": record written to partition %d",
			 w->cfg->topic, partition, offset, st->partition);
		break;
	case LG_SEQ_GAP:
	case LG_SEQ_BACKWARDS:
		lg_error(w->sh, "Fetch %s/%d at %" PRId64 ": producer %u record %" PRIu64
			 " where %" PRIu64 " was due (%s)", w->cfg->topic, partition, offset,
			 st->conn, st->seq, want, r == LG_SEQ_GAP ? "records missing"
							      : "duplicate or reordered");
		break;
	default:
		lg_error(w->sh, "sequence table: out of memory");
		break;
	}
}

/* Count the records at or after *@off in the batches of one partition; advance *@off. */
static int
fetch_records(struct lg_conn *c, int32_t partition, int64_t *off, const uint8_t *p, size_t rem,
	      int64_t now)
{
	struct lg_worker *w = c->w;
	uint64_t n = 0, bytes = 0, unstamped = 0;
	int rc = 0;

	/* One lock per response for the interval histogram, not one per record. */
	pthread_mutex_lock(&w->lock);
	while (rem >= KP_BATCH_LOG_OVERHEAD) {
		uint32_t be;
		memcpy(&be, p + 8, 4);
		int32_t bl = (int32_t)__builtin_bswap32(be);
		if (bl < 0) {
			rc = -EBADMSG;
			break;
		}
		size_t total = KP_BATCH_LOG_OVERHEAD + (size_t)bl;
		if (total > rem)
			break; /* a partial batch at the end of the response: fetched again */
		struct kp_batch_header h;
		rc = kp_batch_header_parse(p, rem, &h);
		if (rc < 0)
			break;
		int64_t last = h.base_offset + h.last_offset_delta;
		if (last >= *off) {
			/* Every batch consumed is checked against its CRC-32C. */
			if (kp_batch_crc_check(p, &h) < 0) {
				atomic_fetch_add_explicit(&w->crc_errors, 1, memory_order_relaxed);
				lg_error(w->sh, "Fetch %s/%d: CRC mismatch in the batch at offset %" PRId64,
					 w->cfg->topic, partition, h.base_offset);
				rc = -EBADMSG;
				break;
			}
			if (!(h.attributes & KP_BATCH_ATTR_CONTROL)) {
				struct kp_record_iter it;
				struct kp_record r;
				rc = kp_batch_record_iter_init(NULL, &it, p, &h, w->dscratch,
							       w->dscratch_cap);
				if (rc < 0)
					break;
				while ((rc = kp_record_iter_next(&it, &r)) == 1) {
					if (h.base_offset + r.offset_delta < *off)
						continue;
					n++;
					bytes += (uint64_t)(r.key_len > 0 ? r.key_len : 0) +
						 (uint64_t)(r.value_len > 0 ? r.value_len : 0);
					struct lg_stamp st;
					bool stamped = lg_stamp_read(r.value, r.value_len, &st);
					if (stamped && st.has_seq)
						check_seq(w, partition, h.base_offset + r.offset_delta,
							  &st);
					if (!w->stamps) {
						/* reading old records: their age is no latency */
					} else if (stamped) {
						int64_t due = (int64_t)st.due_ns;
						uint64_t lat = due <= now ? (uint64_t)(now - due) : 0;
						lg_hist_record(&w->e2e, lat);
						lg_hist_record(&w->iv_e2e, lat); /* lock held */
						if (w->tail_ns > 0 && (int64_t)lat >= w->tail_ns &&
						    w->measuring)
							tail_record(w, partition,
								    h.base_offset + r.offset_delta,
								    due, now);
					} else {
						unstamped++;
					}
				}
				if (rc < 0)
					break;
				rc = 0;
			}
			*off = last + 1;
		}
		p += total;
		rem -= total;
	}
	pthread_mutex_unlock(&w->lock);
	if (rc < 0)
		return rc;
	if (n > 0) {
		w->consumed_pp[partition] += n;
		atomic_fetch_add_explicit(&w->consumed, n, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->consumed_bytes, bytes, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->unstamped, unstamped, memory_order_relaxed);
		w->last_consume_ns = now;
	}
	return 0;
}

static void
fetch_response(struct lg_conn *c, struct lg_slot *s, const uint8_t *frame, size_t len,
	       int64_t now)
{
	struct lg_worker *w = c->w;
	const struct lg_config *cfg = w->cfg;
	struct kp_fetch_response r;
	int32_t corr;
	bool backoff = false;
	int rc;

	c->nfree = 1;
	/* The consumer's side of e2e: a long poll's wait at the broker plus both trips. */
	lg_hist_record(&w->frtt, now > s->queued_ns ? (uint64_t)(now - s->queued_ns) : 0);
	kp_arena_reset(&w->arena);
	rc = lg_kafka_response_decode(frame, len, LG_API_FETCH, w->sh->v.fetch, &r, &w->arena,
				      &corr);
	if (rc < 0) {
		conn_fail(c, "decode Fetch response", rc);
		return;
	}
	if (r.error_code != 0) {
		if (!lg_kafka_retriable(r.error_code)) {
			lg_error(w->sh, "Fetch: %s", kp_error_name(r.error_code));
			c->failed = true;
			atomic_store(&w->sh->stop_all, 1);
			return;
		}
		backoff = true;
	}
	for (int32_t t = 0; t < r.responses.count; t++) {
		const struct kp_fetch_response_fetchable_topic_response *tr = &r.responses.items[t];
		for (int32_t i = 0; i < tr->partitions.count; i++) {
			const struct kp_fetch_response_partition_data *pd = &tr->partitions.items[i];
			int32_t p = pd->partition_index;
			if (p < 0 || p >= w->sh->partitions || w->pidx[p] < 0)
				continue;
			int64_t *off = &c->fetch_off[w->pidx[p]];
			if (pd->error_code != 0) {
				if (lg_kafka_retriable(pd->error_code)) {
					backoff = true;
					continue;
				}
				lg_error(w->sh, "Fetch %s/%d at %" PRId64 ": %s", cfg->topic, p,
					 *off, kp_error_name(pd->error_code));
				c->failed = true;
				atomic_store(&w->sh->stop_all, 1);
				return;
			}
			if (pd->records.len <= 0)
				continue;
			rc = fetch_records(c, p, off, pd->records.ptr, (size_t)pd->records.len, now);
			if (rc < 0) {
				lg_error(w->sh, "Fetch %s/%d: bad batch at %" PRId64 ": %s",
					 cfg->topic, p, *off, strerror(-rc));
				c->failed = true;
				atomic_store(&w->sh->stop_all, 1);
				return;
			}
			w->consumed_end[p] = *off;
		}
	}
	if (backoff)
		c->fetch_retry_at = now + (int64_t)cfg->retry_backoff_ms * 1000000;
}

/* ---- receiving ------------------------------------------------------------- */

static void
conn_frame(struct lg_conn *c, const uint8_t *frame, size_t len, int64_t now)
{
	if (c->nsent == 0 || len < 4) {
		conn_fail(c, "response without a request", 0);
		return;
	}
	struct lg_slot *s = fifo_head(c);
	uint32_t be;
	memcpy(&be, frame, 4);
	if ((int32_t)__builtin_bswap32(be) != s->corr) {
		conn_fail(c, "response out of order (correlation id)", 0);
		return;
	}
	fifo_pop(c);
	if (c->producer)
		produce_response(c, s, frame, len, now);
	else
		fetch_response(c, s, frame, len, now);
}

static void
conn_read(struct lg_conn *c)
{
	const struct lg_transport_ops *ops = c->w->cfg->transport;

	for (int rounds = 0; rounds < 8 && !c->failed; rounds++) {
		if (c->rlen == c->rcap) {
			/* Only when a frame larger than the buffer is being read. */
			size_t ncap = c->rcap * 2;
			uint8_t *nb = ncap <= LG_RBUF_MAX ? realloc(c->rbuf, ncap) : NULL;
			if (nb == NULL) {
				conn_fail(c, "response too large", -EMSGSIZE);
				return;
			}
			c->rbuf = nb;
			c->rcap = ncap;
		}
		ssize_t n = ops->read(c->tc, c->rbuf + c->rlen, c->rcap - c->rlen);
		if (n < 0) {
			conn_fail(c, "receive", (int)n);
			return;
		}
		if (n == 0)
			break;
		c->rlen += (size_t)n;
		int64_t now = now_ns();
		size_t pos = 0;
		while (c->rlen - pos >= 4 && !c->failed) {
			uint32_t be;
			memcpy(&be, c->rbuf + pos, 4);
			uint32_t sz = __builtin_bswap32(be);
			if (sz > LG_RBUF_MAX - 4) {
				conn_fail(c, "response frame size", -EMSGSIZE);
				return;
			}
			if (c->rlen - pos - 4 < sz) {
				if ((size_t)sz + 4 > c->rcap) {
					size_t ncap = c->rcap;
					while (ncap < (size_t)sz + 4)
						ncap *= 2;
					uint8_t *nb = realloc(c->rbuf, ncap);
					if (nb == NULL) {
						conn_fail(c, "receive buffer", -ENOMEM);
						return;
					}
					c->rbuf = nb;
					c->rcap = ncap;
				}
				break;
			}
			conn_frame(c, c->rbuf + pos + 4, sz, now);
			pos += 4 + (size_t)sz;
		}
		if (pos > 0) {
			memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
			c->rlen -= pos;
		}
	}
}

static void
conn_ready(void *arg, bool readable, bool writable)
{
	struct lg_conn *c = arg;

	if (c->failed)
		return;
	if (writable)
		c->up = true;
	if (readable)
		conn_read(c);
	if (writable && !c->failed)
		conn_flush(c);
}

/* ---- the worker loop ------------------------------------------------------- */

static void *
worker_main(void *arg)
{
	struct lg_worker *w = arg;
	struct lg_shared *sh = w->sh;
	const struct lg_config *cfg = w->cfg;
	const struct lg_transport_ops *ops = cfg->transport;
	int rc;

	if (cfg->ncpus > 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cfg->cpus[w->id % cfg->ncpus], &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set); /* best effort */
	}
	for (uint32_t i = 0; i < w->nconns; i++) {
		rc = ops->connect(w->t, sh->host, sh->port, &w->conns[i], &w->conns[i].tc);
		if (rc < 0) {
			w->conns[i].tc = NULL;
			conn_fail(&w->conns[i], "connect", rc);
		}
	}
	/*
	 * The run starts once every connection is up (the schedule of --rate and
	 * the latencies count from then): records due during the handshakes
	 * would all be late by the set-up time, which is not the broker's.
	 */
	bool up = false;
	while (!up && !atomic_load(&sh->stop_all)) {
		up = true;
		for (uint32_t i = 0; i < w->nconns; i++)
			up = up && (w->conns[i].up || w->conns[i].failed);
		if (!up && ops->poll(w->t, 1000, conn_ready) < 0)
			break;
	}
	atomic_fetch_add(&sh->ready, 1);
	while (!atomic_load_explicit(&sh->go, memory_order_acquire) && !atomic_load(&sh->stop_all))
		ops->poll(w->t, 1000, conn_ready);
	struct timespec cpu0, cpu1;
	int64_t work_ns = 0; /* the loop's time outside poll */
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
	int64_t measure_at = sh->t0 + (int64_t)(cfg->warmup_s * 1e9);
	w->measuring = cfg->warmup_s <= 0;
	int64_t prev_at = 0; /* the last iteration's start plus the poll wait it allowed */
	while (!atomic_load(&sh->stop_all)) {
		int64_t now = now_ns();
		bool idle = true;
		/* How long the last iteration took beyond the wait it asked of poll:
		 * its own work, and any time the thread did not run (a stall of the
		 * load generator shows here, not in the broker's figures). */
		if (prev_at != 0)
			lg_hist_record(&w->loop, now > prev_at ? (uint64_t)(now - prev_at) : 0);
		if (prev_at != 0 && w->tail_ns > 0 && now - prev_at >= w->tail_ns &&
		    w->nstalls < LG_STALLS_MAX && w->stalls != NULL) {
			w->stalls[w->nstalls][0] = now - sh->t0;
			w->stalls[w->nstalls][1] = now - prev_at;
			w->nstalls++;
		}
		if (!w->measuring && now >= measure_at) {
			/* The warm-up is over: the totals start again (this thread
			 * alone writes them; the interval series keeps the warm-up). */
			lg_hist_reset(&w->lag);
			lg_hist_reset(&w->frtt);
			lg_hist_reset(&w->rlag);
			lg_hist_reset(&w->ack);
			lg_hist_reset(&w->e2e);
			lg_hist_reset(&w->tail_send);
			lg_hist_reset(&w->tail_ack);
			lg_hist_reset(&w->tail_after);
			w->tail_records = w->tail_before_ack = w->tail_unmatched = 0;
			w->measuring = true;
		}
		w->wake_at = now + (int64_t)LG_POLL_MAX_US * 1000;
		for (uint32_t i = 0; i < w->nconns; i++) {
			struct lg_conn *c = &w->conns[i];
			if (c->failed)
				continue;
			if (c->producer)
				produce_fill(c, now);
			else
				fetch_fill(c, now);
			if (c->nsent < c->fcount)
				conn_flush(c);
			if (c->producer && (c->fcount > 0 || c->nretry > 0))
				idle = false;
			if (c->producer && !c->exhausted && !atomic_load(&sh->stop_produce))
				idle = false;
			/* A request unanswered for too long ends the run: never hang. */
			if (c->fcount > 0 && c->nsent > 0) {
				int64_t limit = (int64_t)cfg->request_timeout_ms * 1000000;
				if (!c->producer)
					limit += (int64_t)cfg->fetch_max_wait_ms * 1000000;
				if (now - fifo_head(c)->queued_ns > limit) {
					c->failed = true;
					lg_error(sh, "request timed out after %d ms",
						 cfg->request_timeout_ms);
					atomic_store(&sh->stop_all, 1);
				}
			}
		}
		atomic_store(&w->producers_idle, idle);
		int64_t before_poll = now_ns();
		work_ns += before_poll - now;
		int64_t wait = (w->wake_at - before_poll) / 1000;
		if (wait < 0)
			wait = 0;
		prev_at = now + wait * 1000;
		rc = ops->poll(w->t, wait, conn_ready);
		if (rc < 0) {
			lg_error(sh, "poll: %s", strerror(-rc));
			atomic_store(&sh->stop_all, 1);
		}
	}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
	w->cpu_ns = (int64_t)(cpu1.tv_sec - cpu0.tv_sec) * 1000000000 + (cpu1.tv_nsec - cpu0.tv_nsec);
	if (ops->busy_ns != NULL)
		w->busy_ns = work_ns + (int64_t)ops->busy_ns(w->t);
	atomic_store(&w->done, 1);
	return NULL;
}

/* ---- set-up and the sampling loop ------------------------------------------ */

static int
conn_init(struct lg_worker *w, struct lg_conn *c, bool producer, uint32_t nslots)
{
	const struct lg_config *cfg = w->cfg;
	uint32_t klen = cfg->keys ? 8 : 0;

	c->w = w;
	c->producer = producer;
	c->corr = 1;
	c->nslots = nslots;
	c->slots = calloc(nslots, sizeof(*c->slots));
	c->freelist = calloc(nslots, sizeof(uint32_t));
	c->fifo = calloc(nslots, sizeof(uint32_t));
	c->retryq = calloc(nslots, sizeof(uint32_t));
	c->rcap = producer ? (64u << 10) : (size_t)cfg->fetch_max_bytes + (64u << 10);
	c->rbuf = malloc(c->rcap);
	if (!c->slots || !c->freelist || !c->fifo || !c->retryq || !c->rbuf)
		return -ENOMEM;
	uint32_t np = c->nparts < LG_MAX_PARTS_PER_REQ ? c->nparts : LG_MAX_PARTS_PER_REQ;
	if (producer) {
		c->seq = calloc(c->nparts ? c->nparts : 1, sizeof(uint64_t));
		if (c->seq == NULL)
			return -ENOMEM;
		uint32_t per = cfg->record_size + klen + 16;
		c->rpb = cfg->batch_size > KP_BATCH_HEADER_SIZE + per
				 ? (cfg->batch_size - KP_BATCH_HEADER_SIZE) / per
				 : 1;
		c->batch_cap = KP_BATCH_HEADER_SIZE + (size_t)c->rpb * (per + 16) + 64;
		if (cfg->rate > 0) {
			double conns = (double)cfg->connections;
			c->interval_ns = (int64_t)(1e9 * conns / cfg->rate);
			if (c->interval_ns < 1)
				c->interval_ns = 1;
		}
	} else {
		c->fetch_off = calloc(c->nparts, sizeof(int64_t));
		c->fparts = calloc(c->nparts, sizeof(*c->fparts));
		if (!c->fetch_off || !c->fparts)
			return -ENOMEM;
		for (uint32_t i = 0; i < c->nparts; i++) {
			c->fetch_off[i] = w->sh->start_offsets[c->parts[i]];
			w->pidx[c->parts[i]] = (int32_t)i;
			w->consumed_end[c->parts[i]] = c->fetch_off[i];
		}
	}
	for (uint32_t i = 0; i < nslots; i++) {
		struct lg_slot *s = &c->slots[i];
		if (producer) {
			s->req_cap = (size_t)np * (c->batch_cap + 64) + 1024 + strlen(cfg->topic);
			s->batches = malloc((size_t)np * c->batch_cap);
			s->pd = calloc(np, sizeof(*s->pd));
			s->parts = calloc(np, sizeof(*s->parts));
			if (!s->batches || !s->pd || !s->parts)
				return -ENOMEM;
			if (cfg->codec == KP_COMPRESSION_NONE && cfg->keys == 0) {
				s->tmpl = calloc(np, sizeof(*s->tmpl));
				s->boff = calloc(np, sizeof(*s->boff));
				s->fpart = calloc(np, sizeof(*s->fpart));
				if (!s->tmpl || !s->boff || !s->fpart)
					return -ENOMEM;
				for (uint32_t j = 0; j < np; j++)
					if (lg_tmpl_init(&s->tmpl[j], c->rpb) < 0)
						return -ENOMEM;
			}
		} else {
			s->req_cap = 1024 + strlen(cfg->topic) + (size_t)c->nparts * 64;
		}
		s->req = malloc(s->req_cap);
		s->conn = c;
		s->txref = calloc(1, sizeof(*s->txref));
		if (s->req == NULL || s->txref == NULL)
			return -ENOMEM;
		s->txref->done = slot_tx_done;
		s->txref->arg = s;
		c->freelist[c->nfree++] = i;
	}
	return 0;
}

static void
conn_free(struct lg_conn *c)
{
	for (uint32_t i = 0; c->slots && i < c->nslots; i++) {
		struct lg_tx_ref *ref = c->slots[i].txref;
		if (ref != NULL && ref->held) {
			/* A connection the stack still holds (closing when the transport
			 * was destroyed): its queue references this frame. Left to the
			 * transport, which returns it to the detached ref (a no-op), or
			 * to the end of the process. */
			ref->arg = NULL;
		} else {
			free(c->slots[i].req);
			free(ref);
		}
		free(c->slots[i].batches);
		if (c->slots[i].tmpl != NULL) {
			uint32_t np = c->nparts < LG_MAX_PARTS_PER_REQ ? c->nparts : LG_MAX_PARTS_PER_REQ;
			for (uint32_t j = 0; j < np; j++)
				lg_tmpl_free(&c->slots[i].tmpl[j]);
		}
		free(c->slots[i].tmpl);
		free(c->slots[i].boff);
		free(c->slots[i].fpart);
		free(c->slots[i].pd);
		free(c->slots[i].parts);
	}
	free(c->slots);
	free(c->freelist);
	free(c->fifo);
	free(c->retryq);
	free(c->rbuf);
	free(c->parts);
	free(c->fetch_off);
	free(c->fparts);
	free(c->seq);
}

static int
worker_init(struct lg_worker *w, struct lg_shared *sh, uint32_t nconns)
{
	const struct lg_config *cfg = sh->cfg;
	int32_t np = sh->partitions;

	w->sh = sh;
	w->cfg = cfg;
	w->stamps = cfg->mode == LG_MODE_E2E || (cfg->mode == LG_MODE_CONSUME && cfg->from_latest);
	w->from_start = cfg->mode == LG_MODE_E2E || (cfg->mode == LG_MODE_CONSUME && !cfg->from_latest);
	lg_seqtab_init(&w->seqtab);
	pthread_mutex_init(&w->lock, NULL);
	lg_hist_reset(&w->iv_ack);
	lg_hist_reset(&w->iv_e2e);
	lg_hist_reset(&w->ack);
	lg_hist_reset(&w->e2e);
	lg_hist_reset(&w->lag);
	lg_hist_reset(&w->frtt);
	lg_hist_reset(&w->rlag);
	lg_hist_reset(&w->loop);
	lg_hist_reset(&w->tail_send);
	lg_hist_reset(&w->tail_ack);
	lg_hist_reset(&w->tail_after);
	w->conns = calloc(nconns ? nconns : 1, sizeof(*w->conns));
	w->acked_end = malloc((size_t)np * sizeof(int64_t));
	w->consumed_end = malloc((size_t)np * sizeof(int64_t));
	w->consumed_pp = calloc((size_t)np, sizeof(uint64_t));
	w->pidx = malloc((size_t)np * sizeof(int32_t));
	w->pool = malloc(LG_POOL_LEN + cfg->record_size + 64);
	w->cscratch_cap = kp_compress_bound(cfg->codec == KP_COMPRESSION_NONE ? KP_COMPRESSION_LZ4
									   : cfg->codec,
					    cfg->batch_size * 2 + cfg->record_size + 4096);
	w->cscratch = malloc(w->cscratch_cap);
	w->dscratch_cap = KP_BATCH_MAX_RECORDS_BYTES;
	w->dscratch = malloc(w->dscratch_cap); /* pages committed only as used */
	w->arena_buf = malloc(LG_ARENA_BYTES);
	if (cfg->mode == LG_MODE_E2E && cfg->tail_us > 0) {
		w->tail_ns = (int64_t)cfg->tail_us * 1000;
		w->tail_ring = calloc((size_t)np, sizeof(*w->tail_ring));
		w->tail_n = calloc((size_t)np, sizeof(*w->tail_n));
		double secs = cfg->duration_s > 0 ? run_seconds(cfg) + cfg->drain_s + 2 : 600;
		w->nlate_ms = secs * 1000 < LG_TAIL_MS_MAX ? (uint32_t)(secs * 1000) : LG_TAIL_MS_MAX;
		w->late_per_ms = calloc(w->nlate_ms, sizeof(*w->late_per_ms));
		w->stalls = calloc(LG_STALLS_MAX, sizeof(*w->stalls));
		if (!w->tail_ring || !w->tail_n || !w->late_per_ms || !w->stalls)
			return -ENOMEM;
	}
	w->t = cfg->transport->create();
	if (!w->conns || !w->acked_end || !w->consumed_end || !w->consumed_pp || !w->pidx ||
	    !w->pool || !w->cscratch || !w->dscratch || !w->arena_buf || !w->t)
		return -ENOMEM;
	kp_arena_init(&w->arena, w->arena_buf, LG_ARENA_BYTES);
	for (int32_t i = 0; i < np; i++) {
		w->acked_end[i] = -1;
		w->consumed_end[i] = -1;
		w->pidx[i] = -1;
	}
	/* Word salad: compresses like text (about 2x with lz4), not like zeros. */
	static const char *words[] = {"stream", "broker", "offset", "record", "topic",
				      "latency", "kernel", "bypass", "append", "segment",
				      "fetch", "produce", "replica", "leader", "batch", "queue"};
	uint64_t x = 0x9e3779b97f4a7c15ull;
	size_t pos = 0, cap = LG_POOL_LEN + cfg->record_size + 64;
	while (pos < cap) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		const char *wd = words[x % 16];
		size_t l = strlen(wd);
		for (size_t k = 0; k < l && pos < cap; k++)
			w->pool[pos++] = (uint8_t)wd[k];
		if (pos < cap)
			w->pool[pos++] = ' ';
	}
	return 0;
}

static void
worker_free(struct lg_worker *w)
{
	/* The transport first: closing its connections returns the request
	 * buffers their send queues still reference (send_ref). */
	if (w->t)
		w->cfg->transport->destroy(w->t);
	for (uint32_t i = 0; i < w->nconns; i++)
		conn_free(&w->conns[i]);
	free(w->conns);
	for (int32_t i = 0; w->tail_ring != NULL && i < w->sh->partitions; i++)
		free(w->tail_ring[i]);
	free(w->tail_ring);
	free(w->tail_n);
	free(w->late_per_ms);
	free(w->stalls);
	free(w->acked_end);
	free(w->consumed_end);
	free(w->consumed_pp);
	free(w->pidx);
	free(w->pool);
	free(w->cscratch);
	free(w->dscratch);
	free(w->arena_buf);
	lg_seqtab_free(&w->seqtab);
	pthread_mutex_destroy(&w->lock);
}

/* Partitions of connection @i of @n over @np partitions. */
static int
assign_parts(uint32_t i, uint32_t n, int32_t np, int32_t **out, uint32_t *count)
{
	uint32_t k = 0;
	int32_t *p;

	if (n > (uint32_t)np) {
		p = malloc(sizeof(int32_t));
		if (p == NULL)
			return -ENOMEM;
		p[0] = (int32_t)(i % (uint32_t)np);
		*out = p;
		*count = 1;
		return 0;
	}
	p = malloc(((size_t)np / n + 1) * sizeof(int32_t));
	if (p == NULL)
		return -ENOMEM;
	for (int32_t q = 0; q < np; q++)
		if ((uint32_t)q % n == i)
			p[k++] = q;
	*out = p;
	*count = k;
	return 0;
}

/* sh->pkeys and sh->pkey_off for @keys keys over sh->partitions (a counting sort). */
static int
key_table(struct lg_shared *sh, uint32_t keys)
{
	int32_t np = sh->partitions;
	int32_t *part = malloc((size_t)keys * sizeof(*part));
	uint32_t *fill = calloc((size_t)np + 1, sizeof(*fill));

	sh->pkeys = malloc((size_t)keys * sizeof(*sh->pkeys));
	sh->pkey_off = calloc((size_t)np + 1, sizeof(*sh->pkey_off));
	if (part == NULL || fill == NULL || sh->pkeys == NULL || sh->pkey_off == NULL) {
		free(part);
		free(fill);
		return -ENOMEM;
	}
	for (uint32_t k = 0; k < keys; k++) {
		char key[16];
		key_text(key, k);
		part[k] = lg_kafka_partition(key, 8, np);
		sh->pkey_off[part[k] + 1]++;
	}
	for (int32_t p = 0; p < np; p++)
		sh->pkey_off[p + 1] += sh->pkey_off[p];
	for (uint32_t k = 0; k < keys; k++)
		sh->pkeys[sh->pkey_off[part[k]] + fill[part[k]]++] = k;
	free(part);
	free(fill);
	return 0;
}

static uint64_t
sum_counter(struct lg_worker *ws, uint32_t n, size_t off)
{
	uint64_t s = 0;

	for (uint32_t i = 0; i < n; i++)
		s += atomic_load_explicit((atomic_uint_fast64_t *)((char *)&ws[i] + off),
					  memory_order_relaxed);
	return s;
}

#define SUM(field) sum_counter(ws, nw, offsetof(struct lg_worker, field))

static int
setup_broker(const struct lg_config *cfg, struct lg_shared *sh, struct lg_result *res,
	     int64_t **start)
{
	struct lg_sync s;
	char err[256] = "";
	int32_t actual = 0;
	int rc;

	rc = lg_sync_open(&s, cfg->transport, cfg->host, cfg->port, cfg->request_timeout_ms);
	if (rc < 0) {
		snprintf(res->first_error, sizeof(res->first_error), "%.160s:%u: %.80s", cfg->host,
			 cfg->port, rc == -EPROTONOSUPPORT ? "the broker lacks an API version we need"
							   : strerror(-rc));
		return rc;
	}
	sh->v = s.v;
	rc = lg_sync_ensure_topic(&s, cfg->topic, cfg->partitions, cfg->replication,
				  cfg->create && cfg->mode != LG_MODE_CONSUME, &actual, err,
				  sizeof(err));
	if (rc < 0)
		goto out;
	sh->partitions = actual;
	*start = calloc((size_t)actual, sizeof(int64_t));
	if (*start == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	int64_t ts = (cfg->mode == LG_MODE_CONSUME && !cfg->from_latest) ? -2 : -1;
	rc = lg_sync_list_offsets(&s, cfg->topic, actual, ts, *start, err, sizeof(err));
out:
	if (rc < 0)
		snprintf(res->first_error, sizeof(res->first_error), "%s", err);
	lg_sync_close(&s);
	return rc;
}

static void
progress_line(const struct lg_config *cfg, const struct lg_second *sec, double dt)
{
	bool prod = cfg->mode != LG_MODE_CONSUME;
	bool cons = cfg->mode == LG_MODE_CONSUME || cfg->mode == LG_MODE_E2E;

	fprintf(stderr, "[%6.1fs]", sec->t);
	if (prod)
		fprintf(stderr, " produced %10.0f rec/s %8.2f MB/s p99 %8.1f us", sec->prod_records / dt,
			(double)sec->prod_bytes / dt / 1e6, (double)sec->ack_p99_ns / 1e3);
	if (cons)
		fprintf(stderr, " | consumed %10.0f rec/s %8.2f MB/s", sec->cons_records / dt,
			(double)sec->cons_bytes / dt / 1e6);
	if (cfg->mode == LG_MODE_E2E)
		fprintf(stderr, " e2e p99 %8.1f us", (double)sec->e2e_p99_ns / 1e3);
	fputc('\n', stderr);
}

int
lg_run(const struct lg_config *cfg, struct lg_result *res)
{
	struct lg_shared sh;
	struct lg_sink *sink = NULL;
	struct lg_worker *ws = NULL;
	int64_t *start = NULL;
	uint32_t nw = cfg->threads ? cfg->threads : 1;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&sh, 0, sizeof(sh));
	lg_hist_reset(&res->ack);
	lg_hist_reset(&res->e2e);
	lg_hist_reset(&res->lag);
	lg_hist_reset(&res->fetch_rtt);
	lg_hist_reset(&res->record_lag);
	lg_hist_reset(&res->loop);
	lg_hist_reset(&res->tail_send);
	lg_hist_reset(&res->tail_ack);
	lg_hist_reset(&res->tail_after);
	pthread_mutex_init(&sh.err_lock, NULL);
	sh.cfg = cfg;
	sh.host = cfg->host;
	sh.port = cfg->port;

	bool producing = cfg->mode != LG_MODE_CONSUME;
	bool consuming = cfg->mode == LG_MODE_CONSUME || cfg->mode == LG_MODE_E2E;
	if (cfg->mode == LG_MODE_TCP_BASELINE) {
		/* Kernel sockets: our own sink on loopback; another transport
		 * (memif) reaches a sink process at cfg's address (lg_memif.h). */
		if (cfg->transport == &lg_tcp_ops) {
			rc = lg_sink_start(&sink, &sh.port);
			if (rc < 0) {
				snprintf(res->first_error, sizeof(res->first_error), "sink: %s",
					 strerror(-rc));
				goto out;
			}
			sh.host = "127.0.0.1";
		}
		sh.v.produce = cfg->produce_version;
		sh.partitions = cfg->partitions > 0 ? cfg->partitions : 1;
		start = calloc((size_t)sh.partitions, sizeof(int64_t));
		if (start == NULL) {
			rc = -ENOMEM;
			goto out;
		}
	} else {
		rc = setup_broker(cfg, &sh, res, &start);
		if (rc < 0)
			goto out;
	}
	sh.start_offsets = start;
	res->partitions = sh.partitions;
	res->versions = sh.v;
	if (cfg->keys > 0) {
		rc = key_table(&sh, cfg->keys);
		if (rc < 0)
			goto out;
	}

	uint32_t npc = producing ? (cfg->connections ? cfg->connections : 1) : 0;
	uint32_t ncc = 0;
	if (consuming) {
		ncc = cfg->consumer_connections ? cfg->consumer_connections
						: (cfg->connections ? cfg->connections : 1);
		if (ncc > (uint32_t)sh.partitions)
			ncc = (uint32_t)sh.partitions;
	}
	res->consumer_connections = ncc;
	ws = calloc(nw, sizeof(*ws));
	if (ws == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < nw; i++) {
		uint32_t mine = 0;
		for (uint32_t k = 0; k < npc + ncc; k++)
			mine += (k < npc ? k : k - npc) % nw == i;
		ws[i].id = i;
		rc = worker_init(&ws[i], &sh, mine);
		if (rc < 0)
			goto nomem;
	}
	for (uint32_t k = 0; k < npc + ncc; k++) {
		bool prod = k < npc;
		uint32_t idx = prod ? k : k - npc;
		struct lg_worker *w = &ws[idx % nw];
		struct lg_conn *c = &w->conns[w->nconns];
		c->index = idx;
		rc = assign_parts(idx, prod ? npc : ncc, sh.partitions, &c->parts, &c->nparts);
		if (rc == 0 && prod && cfg->keys > 0) {
			/* Keyed: only the partitions some key maps to get records. */
			uint32_t kept = 0;
			for (uint32_t i = 0; i < c->nparts; i++)
				if (sh.pkey_off[c->parts[i] + 1] > sh.pkey_off[c->parts[i]])
					c->parts[kept++] = c->parts[i];
			c->nparts = kept;
		}
		if (rc == 0)
			rc = conn_init(w, c, prod, prod ? (cfg->max_inflight ? cfg->max_inflight : 1) : 1);
		if (rc == 0 && prod && c->nparts == 0)
			c->exhausted = true; /* no key maps to its partitions: it sends nothing */
		w->nconns++;
		if (rc < 0)
			goto nomem;
	}

	sh.t0 = now_ns();
	sh.run = (uint32_t)(sh.t0 ^ (sh.t0 >> 32) ^ ((int64_t)getpid() << 16) ^ realtime_ms());
	uint32_t started = 0;
	for (; started < nw; started++) {
		rc = pthread_create(&ws[started].th, NULL, worker_main, &ws[started]);
		if (rc != 0) {
			rc = -rc;
			atomic_store(&sh.stop_all, 1);
			snprintf(res->first_error, sizeof(res->first_error), "pthread_create: %s",
				 strerror(-rc));
			break;
		}
	}

	/*
	 * This thread samples every 50 ms: on the CPUs of --cpus as well, so the load
	 * generator stays off the CPUs it leaves to what it measures (left anywhere, its
	 * wake-ups took the broker's CPU in the e2e rows).
	 */
	if (cfg->ncpus > 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		for (uint32_t i = 0; i < cfg->ncpus; i++)
			CPU_SET(cfg->cpus[i], &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set); /* best effort */
	}

	/* Every connection up (or failed), or the connect timeout: the run starts. */
	for (int64_t until = now_ns() + (int64_t)cfg->request_timeout_ms * 1000000;
	     atomic_load(&sh.ready) < started && !atomic_load(&sh.stop_all);) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 200 * 1000};
		if (now_ns() > until) {
			lg_error(&sh, "connections not up after %d ms", cfg->request_timeout_ms);
			atomic_store(&sh.stop_all, 1);
			break;
		}
		nanosleep(&ts, NULL);
	}
	sh.t0 = now_ns();
	res->t0_mono_ns = sh.t0;
	atomic_store_explicit(&sh.go, 1, memory_order_release);

	/* Sample once an interval (a second by default); decide when to stop. */
	int64_t step_ns = (int64_t)(cfg->interval_ms ? cfg->interval_ms : 1000) * 1000000;
	uint32_t cap_sec = 64;
	res->seconds = calloc(cap_sec, sizeof(*res->seconds));
	struct lg_hist *iv_ack = malloc(sizeof(*iv_ack));
	struct lg_hist *iv_e2e = malloc(sizeof(*iv_e2e));
	if (res->seconds == NULL || iv_ack == NULL || iv_e2e == NULL) {
		atomic_store(&sh.stop_all, 1);
		lg_error(&sh, "out of memory");
	}
	uint64_t last_ack = 0, last_ab = 0, last_cons = 0, last_cb = 0;
	int64_t last_t = sh.t0, prod_done_at = 0, produce_stop_at = 0;
	double hard = (cfg->duration_s > 0 ? run_seconds(cfg) : 600) + cfg->drain_s +
		      cfg->request_timeout_ms / 1000.0 + 10;
	for (;;) {
		struct timespec ts = {.tv_sec = 0,
				      .tv_nsec = step_ns / 2 < 50000000 ? step_ns / 2 : 50000000};
		nanosleep(&ts, NULL);
		int64_t now = now_ns();
		double t = (double)(now - sh.t0) / 1e9;
		bool stopping = atomic_load(&sh.stop_all);
		if (now - last_t >= step_ns || stopping) {
			double dt = (double)(now - last_t) / 1e9;
			uint64_t a = SUM(acked), ab = SUM(acked_bytes), cr = SUM(consumed),
				 cb = SUM(consumed_bytes);
			if (iv_ack && iv_e2e && res->seconds && dt > 0.2 * (double)step_ns / 1e9) {
				lg_hist_reset(iv_ack);
				lg_hist_reset(iv_e2e);
				for (uint32_t i = 0; i < nw; i++) {
					pthread_mutex_lock(&ws[i].lock);
					lg_hist_merge(iv_ack, &ws[i].iv_ack);
					lg_hist_merge(iv_e2e, &ws[i].iv_e2e);
					lg_hist_reset(&ws[i].iv_ack);
					lg_hist_reset(&ws[i].iv_e2e);
					pthread_mutex_unlock(&ws[i].lock);
				}
				if (res->nseconds == cap_sec) {
					struct lg_second *ns =
						realloc(res->seconds, 2 * cap_sec * sizeof(*ns));
					if (ns != NULL) {
						res->seconds = ns;
						cap_sec *= 2;
					}
				}
				if (res->nseconds < cap_sec) {
					struct lg_second *sec = &res->seconds[res->nseconds++];
					sec->t = t;
					sec->prod_records = a - last_ack;
					sec->prod_bytes = ab - last_ab;
					sec->cons_records = cr - last_cons;
					sec->cons_bytes = cb - last_cb;
					sec->ack_p99_ns = lg_hist_percentile(iv_ack, 99);
					sec->e2e_p99_ns = lg_hist_percentile(iv_e2e, 99);
					/* per-second rates in the series */
					if (cfg->progress)
						progress_line(cfg, sec, dt);
					sec->prod_records = (uint64_t)llround(sec->prod_records / dt);
					sec->prod_bytes = (uint64_t)llround(sec->prod_bytes / dt);
					sec->cons_records = (uint64_t)llround(sec->cons_records / dt);
					sec->cons_bytes = (uint64_t)llround(sec->cons_bytes / dt);
				}
				last_ack = a;
				last_ab = ab;
				last_cons = cr;
				last_cb = cb;
				last_t = now;
			}
		}
		if (stopping)
			break;
		if (producing && !atomic_load(&sh.stop_produce) && cfg->duration_s > 0 &&
		    t >= run_seconds(cfg)) {
			atomic_store(&sh.stop_produce, 1);
			produce_stop_at = now;
		}
		bool prod_done = producing;
		for (uint32_t i = 0; i < nw && prod_done; i++)
			prod_done = atomic_load(&ws[i].producers_idle);
		if (producing && prod_done && prod_done_at == 0) {
			prod_done_at = now;
			atomic_store(&sh.stop_produce, 1);
		}
		if (cfg->mode == LG_MODE_PRODUCE || cfg->mode == LG_MODE_TCP_BASELINE) {
			if (prod_done)
				atomic_store(&sh.stop_all, 1);
		} else if (cfg->mode == LG_MODE_E2E) {
			if (prod_done && (SUM(consumed) >= SUM(acked) ||
					  (double)(now - prod_done_at) / 1e9 > cfg->drain_s))
				atomic_store(&sh.stop_all, 1);
		} else {
			if ((cfg->count > 0 && SUM(consumed) >= cfg->count) ||
			    (cfg->duration_s > 0 && t >= run_seconds(cfg)))
				atomic_store(&sh.stop_all, 1);
		}
		if (producing && produce_stop_at && !prod_done &&
		    (double)(now - produce_stop_at) / 1e9 > cfg->request_timeout_ms / 1000.0 + 1)
			atomic_store(&sh.stop_all, 1); /* in-flight requests never answered */
		if (t > hard) {
			res->timed_out = true;
			lg_error(&sh, "hard deadline of %.0f s reached", hard);
			atomic_store(&sh.stop_all, 1);
		}
	}
	free(iv_ack);
	free(iv_e2e);
	for (uint32_t i = 0; i < started; i++)
		pthread_join(ws[i].th, NULL);

	/* Totals. */
	res->sent_records = SUM(sent);
	res->acked_records = SUM(acked);
	res->acked_bytes = SUM(acked_bytes);
	res->failed_records = SUM(failed);
	res->retried_batches = SUM(retried);
	res->produce_requests = SUM(preq);
	res->produce_requests_patched = SUM(preq_patched);
	res->wire_bytes_out = SUM(wire_out);
	res->consumed_records = SUM(consumed);
	res->consumed_bytes = SUM(consumed_bytes);
	res->unstamped_records = SUM(unstamped);
	res->fetch_requests = SUM(freq);
	res->crc_errors = SUM(crc_errors);
	res->seq_errors = SUM(seq_errors);
	res->seq_checked = SUM(seq_checked);
	int64_t fs = 0, la = 0, ff = 0, lc = 0;
	res->start_offsets = calloc((size_t)sh.partitions, sizeof(int64_t));
	res->acked_end = calloc((size_t)sh.partitions, sizeof(int64_t));
	res->consumed_end = calloc((size_t)sh.partitions, sizeof(int64_t));
	res->consumed_per_partition = calloc((size_t)sh.partitions, sizeof(uint64_t));
	if (!res->start_offsets || !res->acked_end || !res->consumed_end ||
	    !res->consumed_per_partition) {
		rc = -ENOMEM;
		goto out;
	}
	for (int32_t p = 0; p < sh.partitions; p++) {
		res->start_offsets[p] = start[p];
		res->acked_end[p] = -1;
		res->consumed_end[p] = -1;
	}
	for (uint32_t i = 0; i < nw; i++) {
		struct lg_worker *w = &ws[i];
		lg_hist_merge(&res->ack, &w->ack);
		lg_hist_merge(&res->e2e, &w->e2e);
		lg_hist_merge(&res->lag, &w->lag);
		lg_hist_merge(&res->fetch_rtt, &w->frtt);
		lg_hist_merge(&res->record_lag, &w->rlag);
		lg_hist_merge(&res->loop, &w->loop);
		lg_hist_merge(&res->tail_send, &w->tail_send);
		lg_hist_merge(&res->tail_ack, &w->tail_ack);
		lg_hist_merge(&res->tail_after, &w->tail_after);
		if (w->late_per_ms != NULL && res->late_per_ms == NULL) {
			res->late_per_ms = calloc(w->nlate_ms, sizeof(*res->late_per_ms));
			res->nlate_ms = res->late_per_ms != NULL ? w->nlate_ms : 0;
		}
		for (uint32_t b = 0; b < w->nlate_ms && b < res->nlate_ms; b++)
			res->late_per_ms[b] += w->late_per_ms[b];
		if (w->nstalls > 0) {
			int64_t (*st)[2] = realloc(res->loop_stalls, (res->nloop_stalls + w->nstalls) *
							     sizeof(*st));
			if (st != NULL) {
				memcpy(st + res->nloop_stalls, w->stalls, w->nstalls * sizeof(*st));
				res->loop_stalls = st;
				res->nloop_stalls += w->nstalls;
			}
		}
		res->tail_records += w->tail_records;
		res->tail_before_ack += w->tail_before_ack;
		res->tail_unmatched += w->tail_unmatched;
		if (w->first_send_ns && (fs == 0 || w->first_send_ns < fs))
			fs = w->first_send_ns;
		if (w->last_ack_ns > la)
			la = w->last_ack_ns;
		if (w->first_fetch_ns && (ff == 0 || w->first_fetch_ns < ff))
			ff = w->first_fetch_ns;
		if (w->last_consume_ns > lc)
			lc = w->last_consume_ns;
		res->worker_cpu_s += (double)w->cpu_ns / 1e9;
		res->worker_busy_s += (double)w->busy_ns / 1e9;
		for (int32_t p = 0; p < sh.partitions; p++) {
			if (w->acked_end[p] > res->acked_end[p])
				res->acked_end[p] = w->acked_end[p];
			if (w->consumed_end[p] > res->consumed_end[p])
				res->consumed_end[p] = w->consumed_end[p];
			res->consumed_per_partition[p] += w->consumed_pp[p];
		}
	}
	res->elapsed_s = fs && la > fs ? (double)(la - fs) / 1e9 : 0;
	res->consume_elapsed_s = ff && lc > ff ? (double)(lc - ff) / 1e9 : 0;
	res->errors = atomic_load(&sh.errors);
	if (sh.first_error[0])
		snprintf(res->first_error, sizeof(res->first_error), "%s", sh.first_error);
	rc = 0;
	goto out;
nomem:
	snprintf(res->first_error, sizeof(res->first_error), "out of memory setting up");
	rc = -ENOMEM;
out:
	if (ws != NULL) {
		for (uint32_t i = 0; i < nw; i++)
			if (ws[i].sh != NULL)
				worker_free(&ws[i]);
		free(ws);
	}
	free(start);
	free(sh.pkeys);
	free(sh.pkey_off);
	if (sink != NULL)
		lg_sink_stop(sink);
	pthread_mutex_destroy(&sh.err_lock);
	return rc;
}

void
lg_result_free(struct lg_result *res)
{
	free(res->start_offsets);
	free(res->acked_end);
	free(res->consumed_end);
	free(res->consumed_per_partition);
	free(res->seconds);
	free(res->late_per_ms);
	free(res->loop_stalls);
	res->late_per_ms = NULL;
	res->loop_stalls = NULL;
	res->start_offsets = NULL;
	res->acked_end = NULL;
	res->consumed_end = NULL;
	res->consumed_per_partition = NULL;
	res->seconds = NULL;
}
