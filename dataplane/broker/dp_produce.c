/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_produce: the Produce handler (acks 0, 1 and all) over the partition
 * logs of dp_broker, with the idempotent-producer checks of KIP-98 against
 * each partition's producer state (dp_producer.h), and InitProducerId for
 * idempotent producers; part of the request handlers (dp_requests_int.h).
 *
 * Idempotent batches (producerId >= 0), Kafka's rules (ProducerAppendInfo):
 *   - an epoch below the producer's: INVALID_PRODUCER_EPOCH, in every
 *     Produce version (Kafka 2.7+ answers Produce with it rather than
 *     PRODUCER_FENCED since KAFKA-10687);
 *   - a retry of one of the producer's last 5 batches (same epoch, same
 *     first and last sequence): no append, NONE with the original base
 *     offset, as Kafka does (librdkafka and the Java client would also take
 *     DUPLICATE_SEQUENCE_NUMBER as success, but Kafka never sends it); while
 *     the original is not yet written, the request is held back until it
 *     is (below);
 *   - a gap or an older sequence that is not cached, or a new epoch not
 *     starting at 0: OUT_OF_ORDER_SEQUENCE_NUMBER;
 *   - an unknown producer (new, expired or evicted) may start at any
 *     sequence, as Kafka does since KIP-360; so Produce never answers
 *     UNKNOWN_PRODUCER_ID (Kafka 2.5+ does not either);
 *   - a producer id with a negative base sequence, or an idempotent batch
 *     beside other batches of the partition: INVALID_RECORD.
 * The state is updated when the append is submitted (the offsets are known
 * then), so up to 5 pipelined requests of one producer check against each
 * other; nothing here allocates.
 *
 * Out of tail-cache chunks (a partition holds one while it has unwritten
 * appends, so storage.cache.chunks bounds the partitions written at once),
 * stor_log_append() answers -EAGAIN. Kafka never fails a Produce for lack of
 * buffer space, so the request is held back ("parked"): what was appended
 * stays appended, the context remembers where it stopped (partition and
 * byte offset within its records) and the results so far (in the tail of
 * its response buffer), and the handler answers -EAGAIN. The transport keeps
 * the frame and offers it again (the connection reads nothing more
 * meanwhile, so no later request of it can append first, and its responses
 * stay in order; other connections go on); each offer is a cheap check until
 * an append completed or a chunk is available, then the request is decoded
 * again (no copy: it borrows the frame as before) and appending resumes where
 * it stopped. Past the request's timeout_ms the partitions not appended answer
 * REQUEST_TIMED_OUT, what Kafka answers on a timeout.
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
#include <time.h>

#include <rte_cycles.h>
#include <rte_lcore.h>

#include "dp_log.h"
#include "dp_reactor.h"
#include "dp_metrics.h"
#include "dp_producer.h"
#include "kp_api.h"
#include "kp_batch.h"
#include "kp_compress.h"
#include "kp_error.h"
#include "net_kernel.h"
#include "stor_log.h"

/*
 * A Produce request whose appends are in flight. The response is encoded
 * into its buffer before the appends complete (the base offsets are known
 * when stor_log_append() returns); the reply leaves when the last append
 * completes, and dp_conn keeps the order with the connection's other
 * responses. An append that fails at completion (its log took an I/O error
 * and fails from then on) turns its partition's answer into
 * KAFKA_STORAGE_ERROR (produce_answer_failed); with acks=0 the connection
 * is closed instead, as Kafka does for an error it cannot answer.
 */
struct produce_ctx {
	struct dp_conn *conn;
	struct dp_broker *b;
	uint64_t req;
	uint8_t *buf; /* encoded response, or NULL for acks=0 */
	uint32_t len;
	uint32_t pending; /* appends in flight + 1 while the handler runs or it is parked */
	int16_t version;  /* the request's (the response is decoded again on a failure) */
	bool failed;        /* no answer: the connection is closed */
	bool append_failed; /* an append failed at completion */
	bool dropped; /* parked, then its connection went: no reply */
	bool parked;  /* held back: its frame is offered again (see the file comment) */
	uint32_t next_part; /* parked: partitions (in request order) before this one are done */
	uint32_t next_off;  /* parked: bytes of that partition's records already appended */
	uint64_t deadline_tsc; /* parked: past it, the partitions left answer REQUEST_TIMED_OUT */
	uint64_t progress;  /* parked: g_produce_progress when it last stopped */
	uint64_t submit_tsc; /* when the appends were submitted (storage write latency) */
	struct produce_ctx *next_free; /* free list; the parked list while parked */
};

/*
 * A parked request's results so far, one per partition up to and including
 * the one it stopped in (its base offset when some batch of it was
 * appended), kept in the tail of its response buffer until the response is
 * encoded there.
 */
struct produce_saved {
	int64_t base_offset;
	int64_t log_start_offset;
	int64_t log_append_time;
	int16_t error_code;
};

#define PRODUCE_CTX_COUNT 4096
static struct produce_ctx g_produce_ctx[PRODUCE_CTX_COUNT];
static struct produce_ctx *g_produce_free;
static struct produce_ctx *g_produce_parked; /* parked requests, newest first */
static uint64_t g_produce_progress;          /* append completions so far (parked retries) */
static struct dp_produce_stats g_produce_stats;

static void
produce_ctx_put(struct produce_ctx *c)
{
	c->next_free = g_produce_free;
	g_produce_free = c;
}

/* Mark @pr as not appended: Kafka's answer for a partition whose log dir went offline. */
static void
produce_pr_offline(struct kp_produce_response_partition_produce_response *pr)
{
	pr->error_code = KP_ERR_KAFKA_STORAGE_ERROR;
	pr->base_offset = -1;
	pr->log_append_time_ms = -1;
}

/* Count @n more partitions answered so; a line at the 1st, 10th, 100th, ... */
static void
produce_offline_answered(uint32_t n)
{
	/* Atomic: the owners of a split request's partitions count from their lcores. */
	uint64_t before = __atomic_fetch_add(&g_produce_stats.storage_errors, n, __ATOMIC_RELAXED);
	uint64_t mark = 1;

	while (mark <= before)
		mark *= 10;
	if (before + n >= mark)
		dp_log(DP_LOG_WARN, "produce: %" PRIu64 " partition(s) answered KAFKA_STORAGE_ERROR "
			"so far: an append failed at its log's write (the log takes no more)",
			before + n);
}

/*
 * Some append of @c failed at completion: its log took an I/O error, which
 * fails every append pending in it and every one after. The response was
 * encoded when the appends were submitted; decode it, answer
 * KAFKA_STORAGE_ERROR for each partition whose log failed, and encode it
 * again in place (only fixed-size fields change). A partition whose own
 * appends completed before its log failed is marked too (the log cannot
 * tell them apart now): the producer is told of a failure for records that
 * were written, and a retry finds the log refusing appends, so none is
 * stored twice. Runs on the storage writer's lcore (the logs' own), on this
 * rare path only (it allocates).
 *
 * @return partitions marked, or a negative errno (the caller closes the
 *   connection instead of answering).
 */
static int
produce_answer_failed(struct produce_ctx *c)
{
	const struct kp_api_desc *d = kp_api_lookup(KP_API_PRODUCE);
	int16_t hv = kp_api_response_header_version(d, c->version);
	size_t cap = (size_t)c->len * 8 + 4096;
	void *mem = malloc(cap);
	struct kp_response_header rh;
	struct kp_produce_response resp;
	struct kp_arena a;
	struct kp_reader r;
	struct kp_writer w;
	int marked = 0;
	int rc;

	if (mem == NULL)
		return -ENOMEM;
	kp_arena_init(&a, mem, cap);
	kp_reader_init(&r, c->buf + 4, c->len - 4);
	rc = kp_response_header_decode(&rh, hv, &r, &a);
	if (rc == 0)
		rc = kp_produce_response_decode(&resp, c->version, &r, &a);
	for (int32_t i = 0; rc == 0 && i < resp.responses.count; i++) {
		struct kp_produce_response_topic_produce_response *tr = &resp.responses.items[i];
		struct dp_topic *t = dp_broker_topic_find(c->b, tr->name.ptr, (size_t)tr->name.len);

		for (int32_t j = 0; t != NULL && j < tr->partition_responses.count; j++) {
			struct kp_produce_response_partition_produce_response *pr =
				&tr->partition_responses.items[j];

			if (pr->error_code != KP_ERR_NONE || pr->index < 0 ||
				pr->index >= t->partitions || !dp_part_offline(c->b, &t->part[pr->index]))
				continue;
			produce_pr_offline(pr);
			marked++;
		}
	}
	if (rc == 0) {
		kp_writer_init(&w, c->buf + 4, c->len - 4);
		rc = kp_response_header_encode(&rh, hv, &w);
		if (rc == 0)
			rc = kp_produce_response_encode(&resp, c->version, &w);
		if (rc == 0 && kp_writer_len(&w) != c->len - 4)
			rc = -EPROTO; /* not expected: same fields, same sizes */
	}
	free(mem);
	return rc < 0 ? rc : marked;
}

static void
produce_finish(struct produce_ctx *c)
{
	if (c->append_failed && !c->dropped && !c->failed) {
		int n = c->buf != NULL ? produce_answer_failed(c) : 0;

		if (n > 0)
			produce_offline_answered((uint32_t)n);
		else
			c->failed = true; /* acks=0, or nothing to mark: close as Kafka does */
	}
	if (c->dropped) {
		/* Its connection went while it was parked: the buffer went back then. */
	} else if (c->failed) {
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
		c->append_failed = true;
	g_produce_progress++; /* a chunk or a pending slot may have come free: parked ones retry */
	dp_fetch_appended(); /* wakes parked fetches */
	dp_metrics_storage_write(rte_rdtsc() - c->submit_tsc);
	if (--c->pending == 0)
		produce_finish(c);
}

#define PRODUCE_FULL INT16_MIN

/* Wall clock in ms: producer.id.expiration.ms against batch timestamps, as Kafka. */
static int64_t
produce_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The producer checks of an idempotent partition's single batch @bh.
 * @return KP_ERR_NONE to append, a Kafka error, or PRODUCE_DUPLICATE with
 *         *@dup_offset set.
 */
#define PRODUCE_DUPLICATE (INT16_MIN + 1)
static int16_t
produce_idempotent_check(struct dp_producers *ps, const struct kp_batch_header *bh,
	int64_t *dup_offset)
{
	struct dp_producer fresh = {.id = bh->producer_id, .epoch = -1};
	const struct dp_producer *e;

	if (ps == NULL)
		return KP_ERR_KAFKA_STORAGE_ERROR;
	e = dp_producers_find(ps, bh->producer_id);
	switch (dp_producer_check(e != NULL ? e : &fresh, bh->producer_epoch, bh->base_sequence,
		dp_producer_last_seq(bh->base_sequence, bh->last_offset_delta), dup_offset)) {
	case DP_PRODUCER_APPEND:
		return KP_ERR_NONE;
	case DP_PRODUCER_DUPLICATE:
		return PRODUCE_DUPLICATE;
	case DP_PRODUCER_OUT_OF_ORDER:
		return KP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
	case DP_PRODUCER_OLD_EPOCH:
		return KP_ERR_INVALID_PRODUCER_EPOCH;
	case DP_PRODUCER_BAD_SEQUENCE:
	default:
		return KP_ERR_INVALID_RECORD;
	}
}

/*
 * Per thread (storage writers' lcores), grown as needed: a batch's records
 * decompressed, and the batch rewritten for compression.type. Not the codec
 * context's 32 MiB scratch: memory here follows the batches seen.
 */
struct grow_buf {
	uint8_t *p;
	size_t cap;
};
static __thread struct grow_buf t_records, t_recompressed;

/* At least @want bytes in @g (at most @max; doubling): 0, -ENOMEM, or -E2BIG at @max. */
static int
grow_buf_reserve(struct grow_buf *g, size_t want, size_t max)
{
	size_t cap = g->cap;
	uint8_t *p;

	if (want <= cap)
		return 0;
	if (cap >= max)
		return -E2BIG;
	while (cap < want)
		cap = cap < (64u << 10) ? (64u << 10) : 2 * cap;
	cap = cap > max ? max : cap;
	p = realloc(g->p, cap);
	if (p == NULL)
		return -ENOMEM;
	g->p = p;
	g->cap = cap;
	return 0;
}

/*
 * Batch @batch rewritten with the topic's codec @to into this thread's
 * buffer (*@out, *@out_len). Kafka recompresses in its request threads; here
 * the storage writer's reactor does it, inline: a topic that sets
 * compression.type costs the reactor a decompression and a compression per
 * batch whose codec differs (the default, producer, costs nothing). Both
 * buffers start at four times the batch and double while too small (records
 * inflate up to KP_BATCH_MAX_RECORDS_BYTES, the codec's bound beyond that).
 * @return 0, or a negative errno (kp_batch_recompress's, -ENOMEM).
 */
static int
produce_recompress(const uint8_t *batch, const struct kp_batch_header *bh, int8_t to,
	uint8_t **out, size_t *out_len)
{
	size_t out_max = KP_BATCH_HEADER_SIZE +
		kp_compress_bound((enum kp_compression)to, KP_BATCH_MAX_RECORDS_BYTES);
	size_t want = 4 * (size_t)kp_batch_size(bh);
	size_t rec_want = want;
	size_t out_want = want;
	int rc;

	for (;;) {
		rc = grow_buf_reserve(&t_records, rec_want, KP_BATCH_MAX_RECORDS_BYTES);
		if (rc == 0)
			rc = grow_buf_reserve(&t_recompressed, out_want, out_max);
		if (rc == -E2BIG)
			rc = 0; /* at its bound: the codec's own -E2BIG / -ENOBUFS decides */
		if (rc < 0)
			return rc;
		rc = kp_batch_recompress(NULL, batch, bh, (enum kp_compression)to, t_records.p,
			t_records.cap, t_recompressed.p, t_recompressed.cap, out_len);
		if (rc == -E2BIG && t_records.cap < KP_BATCH_MAX_RECORDS_BYTES)
			rec_want = 2 * t_records.cap;
		else if (rc == -ENOBUFS && t_recompressed.cap < out_max)
			out_want = 2 * t_recompressed.cap;
		else
			break;
	}
	*out = t_recompressed.p;
	return rc;
}

/* Is @ts outside the window of @before / @after ms around @now (INT64_MAX: no limit)? */
static bool
produce_ts_outside(int64_t ts, int64_t now, int64_t before, int64_t after)
{
	/* Distances in unsigned arithmetic: the limits and the producer's times may be extreme. */
	if (ts == -1)
		return false; /* NO_TIMESTAMP */
	if (before != INT64_MAX && ts < now && (uint64_t)now - (uint64_t)ts > (uint64_t)before)
		return true;
	return after != INT64_MAX && ts > now && (uint64_t)ts - (uint64_t)now > (uint64_t)after;
}

/*
 * A CreateTime batch's records against the topic's window around @now
 * (message.timestamp.before/after.max.ms), every record as Kafka checks
 * them: a compressed batch is decompressed for it (into the thread's
 * buffer, grown as needed), at a cost only topics with a window pay.
 * @return KP_ERR_NONE, INVALID_TIMESTAMP, or the error of a bad record region.
 */
static int16_t
produce_timestamps_check(const struct stor_log_config *cfg, const uint8_t *batch,
	const struct kp_batch_header *bh, int64_t now)
{
	int64_t before = stor_log_config_ts_before(cfg);
	int64_t after = stor_log_config_ts_after(cfg);
	size_t want = 4 * (size_t)kp_batch_size(bh);
	struct kp_record_iter it;
	struct kp_record r;
	int rc;

	for (;;) {
		rc = grow_buf_reserve(&t_records, want, KP_BATCH_MAX_RECORDS_BYTES);
		if (rc == -ENOMEM)
			return KP_ERR_KAFKA_STORAGE_ERROR;
		rc = kp_batch_record_iter_init(NULL, &it, batch, bh, t_records.p, t_records.cap);
		if (rc != -E2BIG || t_records.cap >= KP_BATCH_MAX_RECORDS_BYTES)
			break;
		want = 2 * t_records.cap;
	}
	while (rc == 0 && (rc = kp_record_iter_next(&it, &r)) == 1) {
		rc = 0;
		if (produce_ts_outside(bh->base_timestamp + r.timestamp_delta, now, before, after))
			return KP_ERR_INVALID_TIMESTAMP;
	}
	return rc < 0 ? kp_error_from_errno(rc) : KP_ERR_NONE;
}

/*
 * Append every batch of one partition's records, from byte @*off_io of
 * @records (0: all of them, validated and checked first; more: the rest of
 * a partition a parked request stopped in, validated then, with
 * @pr->base_offset still holding the first batch's offset). Fills
 * @pr->base_offset and, for a LogAppendTime topic, @pr->log_append_time_ms.
 *
 * The topic's message.* keys act as Kafka's LogValidator: max.message.bytes
 * (MESSAGE_TOO_LARGE), the CreateTime window of every record
 * (INVALID_TIMESTAMP), and
 * LogAppendTime, which stamps each batch (timestamp type bit, maxTimestamp,
 * CRC) in the request's own bytes just before they are copied into the log,
 * as Kafka rewrites the request's buffer: the frame is the broker's receive
 * buffer, read by nothing else, and a batch is stamped at its append (again
 * when that append is retried after the request was held back).
 * A compression.type other than producer rewrites each batch of another
 * codec before the append (produce_recompress); with several batches in a
 * partition each is recompressed once more beforehand, so one that grows
 * past max.message.bytes fails the partition whole, as in Kafka (a rare
 * case: clients send one batch per partition; Kafka builds one batch of
 * them all, this broker keeps the producer's batches).
 * min.insync.replicas needs no check with one replica (Kafka's effective
 * value is min(min.insync.replicas, replicas)).
 *
 * @return a Kafka error code, or PRODUCE_FULL when storage takes no more
 *         appends right now: *@off_io is then where the first batch not
 *         appended starts (0: nothing of this partition was appended).
 */
static int16_t
produce_partition(struct dp_requests *q, stor_append_cb cb, void *cb_arg, uint32_t *pending,
	struct dp_partition *pp, const struct kp_bytes *records, unsigned flags,
	struct kp_produce_response_partition_produce_response *pr, size_t *off_io)
{
	struct stor_log *log = pp->log;
	const struct stor_log_config *cfg = stor_log_get_config(log);
	int64_t *base_offset = &pr->base_offset;
	/* The clock only where a key needs it (a system call's worth on the hot path). */
	bool window = !cfg->log_append_time && (stor_log_config_ts_before(cfg) != INT64_MAX ||
		stor_log_config_ts_after(cfg) != INT64_MAX);
	int64_t now = cfg->log_append_time || window ? produce_wall_ms() : -1;
	size_t off = 0;
	size_t len = records->len > 0 ? (size_t)records->len : 0;
	unsigned n_batches = 0;
	bool idempotent = false;
	int rc;

	if (*off_io > 0 && *off_io < len) {
		off = *off_io;
		goto append;
	}
	*off_io = 0;
	*base_offset = -1;
	if (len == 0)
		return KP_ERR_CORRUPT_MESSAGE;
	/* Validate every batch first: a request's partition is appended whole or not at all. */
	while (off < len) {
		struct kp_batch_header bh;

		rc = kp_batch_validate(records->ptr + off, len - off, 0, &bh);
		if (rc < 0)
			return kp_error_from_errno(rc);
		if ((int64_t)kp_batch_size(&bh) > cfg->max_message_bytes)
			return KP_ERR_MESSAGE_TOO_LARGE;
		if (window) {
			int16_t err = produce_timestamps_check(cfg, records->ptr + off, &bh, now);

			if (err != KP_ERR_NONE)
				return err;
		}
		off += kp_batch_size(&bh);
		n_batches++;
		idempotent = idempotent || bh.producer_id >= 0;
	}
	if (idempotent) {
		struct kp_batch_header bh;
		int16_t err;

		/* Kafka takes exactly one batch per partition from Produce v3+ (all of magic 2). */
		if (n_batches != 1)
			return KP_ERR_INVALID_RECORD;
		kp_batch_header_parse(records->ptr, len, &bh);
		err = produce_idempotent_check(pp->producers, &bh, base_offset);
		if (err == PRODUCE_DUPLICATE &&
			*base_offset + bh.last_offset_delta >= stor_log_written_offset(log)) {
			/*
			 * A retry of a batch whose append is still in flight (the
			 * client gave up on the first request): success now could
			 * acknowledge bytes a crash then loses. Held back like a
			 * request out of chunks (PRODUCE_FULL: nothing of it is
			 * appended) until the original is written, when the same
			 * check answers NONE with the original's offset; a split
			 * sub-request, or the timeout, answers REQUEST_TIMED_OUT
			 * (retriable) instead.
			 */
			*base_offset = -1;
			return PRODUCE_FULL;
		}
		if (err == PRODUCE_DUPLICATE)
			return KP_ERR_NONE; /* the original's offset; nothing appended */
		if (err != KP_ERR_NONE)
			return err;
	}
	if (n_batches > 1 && cfg->compression != STOR_COMPRESSION_PRODUCER) {
		/* Nothing appended unless every batch fits once recompressed. */
		for (off = 0; off < len;) {
			struct kp_batch_header bh;
			uint8_t *src = (uint8_t *)(uintptr_t)(records->ptr + off);
			size_t src_len;

			kp_batch_header_parse(records->ptr + off, len - off, &bh);
			off += kp_batch_size(&bh);
			if ((int)kp_batch_compression(&bh) == cfg->compression)
				continue;
			rc = produce_recompress(src, &bh, cfg->compression, &src, &src_len);
			if (rc < 0)
				return rc == -ENOMEM ? KP_ERR_KAFKA_STORAGE_ERROR
						     : kp_error_from_errno(rc);
			if ((int64_t)src_len > cfg->max_message_bytes)
				return KP_ERR_MESSAGE_TOO_LARGE;
		}
	}
	off = 0;
append:
	while (off < len) {
		struct kp_batch_header bh;
		int64_t base;

		kp_batch_header_parse(records->ptr + off, len - off, &bh);
		/* The request's own bytes (function comment), or the batch recompressed. */
		uint8_t *src = (uint8_t *)(uintptr_t)(records->ptr + off);
		size_t src_len = kp_batch_size(&bh);

		if (cfg->compression != STOR_COMPRESSION_PRODUCER &&
			(int)kp_batch_compression(&bh) != cfg->compression) {
			rc = produce_recompress(src, &bh, cfg->compression, &src, &src_len);
			if (rc < 0)
				return rc == -ENOMEM ? KP_ERR_KAFKA_STORAGE_ERROR
						     : kp_error_from_errno(rc);
			if ((int64_t)src_len > cfg->max_message_bytes)
				return KP_ERR_MESSAGE_TOO_LARGE; /* Kafka checks again after it */
		}
		if (cfg->log_append_time) {
			kp_batch_set_log_append_time(src, src_len, now);
			bh.max_timestamp = now;
		}
		/* The one copy of the produced bytes: into the log's tail-cache chunk. */
		rc = stor_log_append(log, src, src_len, flags, cb, cb_arg, &base);
		if (rc == -EAGAIN) {
			*off_io = off;
			return PRODUCE_FULL; /* too many appends in flight or no free chunk */
		}
		if (rc < 0)
			return rc == -EIO || stor_log_failed(log) ? KP_ERR_KAFKA_STORAGE_ERROR :
				kp_error_from_errno(rc);
		(*pending)++;
		dp_part_publish(pp);
		if (*base_offset < 0)
			*base_offset = base;
		off += kp_batch_size(&bh);
		if (pp->producers == NULL)
			continue;
		/* A roll this batch caused: snapshot the state before it (Kafka's roll snapshot). */
		dp_producers_roll_check(pp->producers, log, base);
		if (bh.producer_id >= 0) {
			struct dp_producer *e = dp_producers_get(pp->producers, bh.producer_id,
				produce_wall_ms());

			dp_producer_record(e, bh.producer_epoch, bh.base_sequence,
				dp_producer_last_seq(bh.base_sequence, bh.last_offset_delta), base,
				bh.max_timestamp);
		}
	}
	if (cfg->log_append_time)
		pr->log_append_time_ms = now;
	return KP_ERR_NONE;
}

/*
 * Several storage writers: a Produce whose partitions are not all owned by
 * writers on this lcore is split into one sub-request per owning writer,
 * each run on its owner's lcore (validation, producer checks, appends, all
 * against the partition's own log and producer state), joined here by a
 * counter. The response structs live in the split's own arena (the request
 * arena is reset by the next request); the records are read by the owners
 * from the request frame, which lives until the reply (dp_hop hop_all).
 * The response is encoded when every sub-request is done (its appends
 * completed), so it leaves in order with the connection's others as usual.
 */
#define SPLIT_COUNT 256
#define SPLIT_ARENA (64u * 1024u)

struct produce_split;

struct split_item {
	struct kp_produce_response_partition_produce_response *pr; /* result, filled by the owner */
	struct dp_partition *pp;
	struct kp_bytes records; /* in the request frame */
	const char *topic;       /* for metrics, in the split arena */
	int32_t topic_len;
	int64_t leo;             /* the log end offset after the append (owner), for metrics */
};

struct produce_sub {
	struct produce_split *sp;
	struct dp_requests *q;
	unsigned writer;
	struct split_item *items;
	uint32_t n_items;
	uint32_t pending; /* owner side: appends in flight + 1 while running */
	bool failed;      /* an append failed at completion */
};

struct produce_split {
	bool used;
	struct dp_requests *q;
	struct dp_conn *conn;
	uint64_t req;
	struct kp_request_header h;
	uint8_t *buf; /* encoded response, or NULL for acks=0 */
	unsigned flags;
	struct kp_produce_response resp;
	uint32_t pending; /* sub-requests not done + 1 while the handler runs */
	bool failed;
	uint64_t submit_tsc;
	struct split_item *items;
	uint32_t n_items;
	struct produce_sub subs[DP_BROKER_MAX_WRITERS];
	struct kp_arena arena;
	uint8_t *arena_buf;
	struct produce_split *next_free;
};

static struct produce_split *g_split;
static struct produce_split *g_split_free;

static void
split_finish(struct produce_split *sp)
{
	struct dp_conn *conn = sp->conn;

	if (!sp->failed && sp->buf != NULL) {
		const struct kp_api_desc *d = kp_api_lookup(sp->h.request_api_key);
		int16_t v = sp->h.request_api_version;
		struct kp_response_header rh;
		struct kp_writer w;
		int rc;

		kp_response_header_init(&rh);
		rh.correlation_id = sp->h.correlation_id;
		kp_writer_init(&w, sp->buf + 4, conn->env->resp_buf_size - 4);
		rc = kp_response_header_encode(&rh, kp_api_response_header_version(d, v), &w);
		if (rc == 0)
			rc = kp_produce_response_encode(&sp->resp, v, &w);
		if (rc < 0) {
			dp_req_close_log(conn, "cannot encode the response to a", &sp->h, rc);
			sp->failed = true;
		} else {
			uint32_t len = (uint32_t)kp_writer_len(&w);

			sp->buf[0] = (uint8_t)(len >> 24);
			sp->buf[1] = (uint8_t)(len >> 16);
			sp->buf[2] = (uint8_t)(len >> 8);
			sp->buf[3] = (uint8_t)len;
			dp_conn_reply(conn, sp->req, sp->buf, len + 4, dp_conn_resp_free,
				conn->env->resp_pool);
		}
	} else if (!sp->failed) {
		dp_conn_reply(conn, sp->req, NULL, 0, NULL, NULL);
	}
	if (sp->failed) {
		if (sp->buf != NULL)
			dp_conn_resp_free(conn->env->resp_pool, sp->buf);
		if (dp_conn_req_gen(sp->req) == conn->gen) {
			dp_log(DP_LOG_ERROR, "closing a connection: an append it produced failed");
			dp_conn_close(conn);
		}
	}
	/* Partition pointers are not used here: a topic may be deleted once its subs are done. */
	for (unsigned w = 0; w < sp->q->b->n_writers; w++) {
		for (uint32_t k = 0; k < sp->subs[w].n_items; k++) {
			struct split_item *it = &sp->subs[w].items[k];

			if (it->pr->error_code == KP_ERR_NONE)
				dp_metrics_batches(true, it->topic, (size_t)it->topic_len,
					it->pr->index, it->records.ptr, (size_t)it->records.len,
					it->leo);
		}
	}
	dp_metrics_storage_write(rte_rdtsc() - sp->submit_tsc);
	sp->used = false;
	sp->next_free = g_split_free;
	g_split_free = sp;
}

/* On writer 0's lcore: one owner finished its share. */
static void
split_sub_done(void *arg)
{
	struct produce_sub *sub = arg;
	struct produce_split *sp = sub->sp;

	if (sub->failed)
		sp->failed = true;
	dp_fetch_appended(); /* wakes parked fetches: their partitions may have moved */
	if (--sp->pending == 0)
		split_finish(sp);
}

/* On the owner: the sub-request is over (every append completed). */
static void
sub_over(struct produce_sub *sub)
{
	struct dp_broker *b = sub->q->b;
	uint32_t marked = 0;

	for (uint32_t k = 0; k < sub->n_items; k++) {
		struct split_item *it = &sub->items[k];

		dp_part_publish(it->pp);
		/* An append failed: its partition answers as produce_answer_failed() says. */
		if (sub->failed && it->pr->error_code == KP_ERR_NONE && dp_part_offline(b, it->pp)) {
			produce_pr_offline(it->pr);
			marked++;
		}
	}
	if (marked > 0) {
		sub->failed = false;
		produce_offline_answered(marked);
	}
	if (dp_broker_writer_local(b, 0))
		split_sub_done(sub);
	else
		(void)dp_broker_post(b->writers[0].lcore, split_sub_done, sub);
}

static void
sub_appended(void *arg, int rc, int64_t base_offset)
{
	struct produce_sub *sub = arg;

	(void)base_offset;
	if (rc < 0)
		sub->failed = true;
	if (--sub->pending == 0)
		sub_over(sub);
}

/* On the owner's lcore: validate, check and append each of its partitions. */
static void
sub_run(void *arg)
{
	struct produce_sub *sub = arg;

	sub->pending = 1;
	sub->failed = false;
	for (uint32_t k = 0; k < sub->n_items; k++) {
		struct split_item *it = &sub->items[k];
		struct kp_produce_response_partition_produce_response *pr = it->pr;

		if (dp_part_offline(sub->q->b, it->pp)) {
			pr->error_code = KP_ERR_KAFKA_STORAGE_ERROR;
			continue;
		}
		size_t off = 0;

		pr->error_code = produce_partition(sub->q, sub_appended, sub, &sub->pending, it->pp,
			&it->records, sub->sp->flags, pr, &off);
		/* Storage busy: retriable. UNFINISHED: park as the single-owner path does. */
		if (pr->error_code == PRODUCE_FULL)
			pr->error_code = KP_ERR_REQUEST_TIMED_OUT;
		pr->log_start_offset = stor_log_start_offset(it->pp->log);
		it->leo = stor_log_end_offset(it->pp->log);
	}
	if (--sub->pending == 0)
		sub_over(sub);
}

/* True when some partition of @m is owned by a writer on another lcore. */
static bool
produce_needs_split(struct dp_broker *b, const struct kp_produce_request *m)
{
	if (b->n_writers < 2)
		return false;
	for (int32_t i = 0; i < m->topic_data.count; i++) {
		const struct kp_produce_request_topic_produce_data *td = &m->topic_data.items[i];
		struct dp_topic *t = dp_broker_topic_find(b, td->name.ptr, (size_t)td->name.len);

		for (int32_t j = 0; t != NULL && j < td->partition_data.count; j++) {
			int32_t p = td->partition_data.items[j].index;

			if (p >= 0 && p < t->partitions && !dp_broker_writer_local(b, t->part[p].writer))
				return true;
		}
	}
	return false;
}

static int
produce_split(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, const struct kp_produce_request *m, uint8_t *buf,
	unsigned flags)
{
	struct dp_broker *b = q->b;
	struct produce_split *sp = g_split_free;
	struct kp_arena *a;
	struct kp_produce_response_topic_produce_response *rts;
	uint32_t per_writer[DP_BROKER_MAX_WRITERS] = {0};
	uint32_t n = 0;
	bool sent = false;
	int err = -EAGAIN;

	if (sp == NULL) {
		if (buf != NULL)
			dp_conn_resp_free(conn->env->resp_pool, buf);
		return -EAGAIN; /* every split is in flight: offered again later */
	}
	g_split_free = sp->next_free;
	a = &sp->arena;
	kp_arena_init(a, sp->arena_buf, SPLIT_ARENA);
	sp->used = true;
	sp->q = q;
	sp->conn = conn;
	sp->req = req;
	sp->h = *h;
	sp->h.client_id = (struct kp_str){.ptr = NULL, .len = -1};
	memset(&sp->h.unknown_tags, 0, sizeof(sp->h.unknown_tags));
	sp->buf = buf;
	sp->flags = flags;
	sp->pending = 1;
	sp->failed = false;
	sp->submit_tsc = rte_rdtsc();
	for (int32_t i = 0; i < m->topic_data.count; i++)
		n += m->topic_data.items[i].partition_data.count > 0 ?
			(uint32_t)m->topic_data.items[i].partition_data.count : 0;
	sp->items = kp_arena_alloc(a, sizeof(*sp->items) * (n > 0 ? n : 1), 8);
	rts = kp_arena_alloc(a, sizeof(*rts) * (size_t)(m->topic_data.count > 0 ?
		m->topic_data.count : 1), 8);
	if (sp->items == NULL || rts == NULL)
		goto nomem;
	/* Pass 1: responses, and how many partitions each writer gets. */
	n = 0;
	for (int32_t i = 0; i < m->topic_data.count; i++) {
		const struct kp_produce_request_topic_produce_data *td = &m->topic_data.items[i];
		struct dp_topic *t = dp_broker_topic_find(b, td->name.ptr, (size_t)td->name.len);
		int32_t np = td->partition_data.count > 0 ? td->partition_data.count : 0;
		struct kp_produce_response_partition_produce_response *prs;
		char *name = kp_arena_alloc(a, td->name.len > 0 ? (size_t)td->name.len : 1, 1);

		prs = kp_arena_alloc(a, sizeof(*prs) * (size_t)(np > 0 ? np : 1), 8);
		if (prs == NULL || name == NULL)
			goto nomem;
		if (td->name.len > 0)
			memcpy(name, td->name.ptr, (size_t)td->name.len);
		kp_produce_response_topic_produce_response_init(&rts[i]);
		rts[i].name = (struct kp_str){.ptr = name, .len = td->name.len};
		rts[i].partition_responses.items = prs;
		rts[i].partition_responses.count = np;
		for (int32_t j = 0; j < np; j++) {
			const struct kp_produce_request_partition_produce_data *pd =
				&td->partition_data.items[j];
			struct split_item *it = &sp->items[n++];

			kp_produce_response_partition_produce_response_init(&prs[j]);
			prs[j].index = pd->index;
			prs[j].base_offset = -1;
			*it = (struct split_item){.pr = &prs[j], .records = pd->records,
				.topic = name, .topic_len = td->name.len};
			if (t == NULL || pd->index < 0 || pd->index >= t->partitions) {
				prs[j].error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				continue;
			}
			it->pp = &t->part[pd->index];
			per_writer[it->pp->writer]++;
		}
	}
	sp->n_items = n;
	kp_produce_response_init(&sp->resp);
	sp->resp.responses.items = rts;
	sp->resp.responses.count = m->topic_data.count > 0 ? m->topic_data.count : 0;
	/* Pass 2: each writer's items, contiguous, in request order. */
	for (unsigned w = 0; w < b->n_writers; w++) {
		struct produce_sub *sub = &sp->subs[w];

		*sub = (struct produce_sub){.sp = sp, .q = q, .writer = w};
		if (per_writer[w] == 0)
			continue;
		sub->items = kp_arena_alloc(a, sizeof(*sub->items) * per_writer[w], 8);
		if (sub->items == NULL)
			goto nomem;
	}
	for (uint32_t k = 0; k < n; k++) {
		struct split_item *it = &sp->items[k];

		if (it->pp != NULL) {
			struct produce_sub *sub = &sp->subs[it->pp->writer];

			sub->items[sub->n_items++] = *it;
		}
	}
	/* Remote owners first (a full ring before anything was sent: offered again). */
	for (unsigned w = 0; w < b->n_writers; w++) {
		struct produce_sub *sub = &sp->subs[w];

		if (sub->n_items == 0 || dp_broker_writer_local(b, w))
			continue;
		if (dp_msg_send(b->writers[w].lcore, sub_run, sub) == 0) {
			sp->pending++;
			sent = true;
			continue;
		}
		if (!sent) {
			dp_log(DP_LOG_DEBUG, "produce held back: the ring to writer %u is full", w);
			goto again;
		}
		for (uint32_t k = 0; k < sub->n_items; k++)
			sub->items[k].pr->error_code = KP_ERR_REQUEST_TIMED_OUT; /* retriable */
	}
	for (unsigned w = 0; w < b->n_writers; w++) {
		struct produce_sub *sub = &sp->subs[w];

		if (sub->n_items == 0 || !dp_broker_writer_local(b, w))
			continue;
		sp->pending++;
		sub_run(sub);
	}
	if (--sp->pending == 0)
		split_finish(sp);
	return 0;
nomem:
	dp_req_close_log(conn, "arena too small for a", h, -ENOMEM);
	err = -ENOMEM;
again:
	/* Nothing was sent to another lcore yet (allocations all come first). */
	if (buf != NULL)
		dp_conn_resp_free(conn->env->resp_pool, buf);
	sp->used = false;
	sp->next_free = g_split_free;
	g_split_free = sp;
	return err;
}

/* The parked context of request @req of @conn, or NULL. */
static struct produce_ctx *
produce_parked_find(const struct dp_conn *conn, uint64_t req)
{
	for (struct produce_ctx *c = g_produce_parked; c != NULL; c = c->next_free)
		if (c->conn == conn && c->req == req)
			return c;
	return NULL;
}

static void
produce_unpark(struct produce_ctx *c)
{
	struct produce_ctx **pp = &g_produce_parked;

	while (*pp != c)
		pp = &(*pp)->next_free;
	*pp = c->next_free;
	c->next_free = NULL;
	c->parked = false;
}

/*
 * Give up a parked request whose frame will not be offered again: what it
 * appended stays appended (and completes as usual), the response buffer goes
 * back and nothing is replied (the connection is gone, or is being closed).
 */
static void
produce_drop(struct produce_ctx *c)
{
	produce_unpark(c);
	if (c->buf != NULL)
		dp_conn_resp_free(c->conn->env->resp_pool, c->buf);
	c->buf = NULL;
	c->dropped = true;
	g_produce_stats.dropped++;
	if (--c->pending == 0)
		produce_finish(c);
}

/* Drop parked requests of connections closed or reset since they parked. */
static void
produce_parked_sweep(void)
{
	struct produce_ctx *c = g_produce_parked;

	while (c != NULL) {
		struct produce_ctx *next = c->next_free;

		if (dp_conn_req_gen(c->req) != c->conn->gen)
			produce_drop(c);
		c = next;
	}
}

/*
 * May parked request @c try again? When an append completed since it
 * stopped (a chunk or a pending slot may be free), a chunk is available
 * (a Fetch released one), or its time is up; otherwise the offer costs this
 * check only.
 */
static bool
produce_may_resume(const struct dp_broker *b, const struct produce_ctx *c)
{
	if (c->progress != g_produce_progress || rte_rdtsc() >= c->deadline_tsc)
		return true;
	for (unsigned w = 0; w < b->n_writers; w++)
		if (dp_broker_writer_local(b, w) &&
			stor_engine_chunks_available(b->writers[w].engine) > 0)
			return true;
	return false;
}

/* Where @n saved results live in response buffer @buf of @size bytes (its tail, aligned). */
static struct produce_saved *
produce_saved_at(uint8_t *buf, uint32_t size, uint32_t n)
{
	return (struct produce_saved *)(void *)(buf +
		(((size_t)size - (size_t)n * sizeof(struct produce_saved)) & ~(size_t)7));
}

/* Can @c hold back, stopping in its partition @k (0-based, request order)? */
static bool
produce_can_park(const struct produce_ctx *c, uint32_t k)
{
	if (c->deadline_tsc == 0 || rte_rdtsc() >= c->deadline_tsc)
		return false; /* timeout_ms 0, or spent */
	if (c->buf == NULL)
		return true; /* acks=0: no results to keep */
	return ((size_t)k + 1) * sizeof(struct produce_saved) + 16 <= c->conn->env->resp_buf_size;
}

int
dp_req_produce(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r)
{
	struct dp_broker *b = q->b;
	struct kp_arena *a = &q->arena;
	int16_t v = h->request_api_version;
	struct kp_produce_request m;
	struct kp_produce_response resp;
	struct kp_produce_response_topic_produce_response *rts;
	struct kp_produce_response_partition_produce_response **flat;
	struct produce_saved *saved = NULL;
	struct produce_ctx *c = NULL;
	uint8_t *buf = NULL;
	unsigned flags = 0;
	uint32_t n_parts = 0;
	uint32_t n_saved = 0;
	uint32_t idx = 0;
	uint32_t n_timed_out = 0;
	bool stopped = false;
	bool timed_out = false;
	int rc;

	if (g_produce_parked != NULL) {
		produce_parked_sweep();
		c = produce_parked_find(conn, req);
		if (c != NULL && !produce_may_resume(b, c))
			return -EAGAIN; /* still held back: offered again later */
	}
	if (c == NULL && g_produce_free == NULL)
		return -EAGAIN; /* every context waits for appends: offered again later */
	rc = kp_produce_request_decode(&m, v, r, a);
	if (rc < 0) {
		if (c != NULL)
			produce_drop(c); /* it decoded before: not expected */
		dp_req_close_log(conn, "malformed", h, rc);
		return -EPROTO;
	}
	if (m.acks == -1 && b->log_cfg.fsync_acks_all)
		flags = STOR_APPEND_DURABLE;
	if (c != NULL) {
		/* A parked request offered again: on from where it stopped. */
		produce_unpark(c);
		g_produce_stats.resumed++;
		buf = c->buf;
		timed_out = rte_rdtsc() >= c->deadline_tsc;
		n_saved = c->next_part + 1;
		if (buf != NULL)
			saved = produce_saved_at(buf, conn->env->resp_buf_size, n_saved);
		goto run;
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
		dp_req_close_log(conn, "transactional", h, -ENOTSUP);
		return -EPROTONOSUPPORT;
	}
	if (produce_needs_split(b, &m))
		return produce_split(q, conn, req, h, &m, buf, flags);
	c = g_produce_free;
	g_produce_free = c->next_free;
	c->next_free = NULL;
	c->conn = conn;
	c->b = b;
	c->req = req;
	c->buf = buf;
	c->len = 0;
	c->pending = 1;
	c->version = v;
	c->failed = false;
	c->append_failed = false;
	c->dropped = false;
	c->parked = false;
	c->next_part = 0;
	c->next_off = 0;
	c->submit_tsc = rte_rdtsc();
	c->deadline_tsc = m.timeout_ms > 0 ?
		c->submit_tsc + (uint64_t)m.timeout_ms * rte_get_tsc_hz() / 1000 : 0;
run:
	for (int32_t i = 0; i < m.topic_data.count; i++)
		n_parts += m.topic_data.items[i].partition_data.count > 0 ?
			(uint32_t)m.topic_data.items[i].partition_data.count : 0;
	flat = kp_arena_alloc(a, sizeof(*flat) * (n_parts > 0 ? n_parts : 1), 8);
	rts = kp_arena_alloc(a, sizeof(*rts) * (size_t)(m.topic_data.count > 0 ?
								 m.topic_data.count : 1), 8);
	if (rts == NULL || flat == NULL)
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
			struct kp_produce_response_partition_produce_response *pr = &prs[j];
			uint32_t k = idx++;
			struct dp_partition *pp;
			size_t off = 0;

			kp_produce_response_partition_produce_response_init(pr);
			pr->index = pd->index;
			pr->base_offset = -1;
			flat[k] = pr;
			if (saved != NULL && k < n_saved) {
				pr->error_code = saved[k].error_code;
				pr->base_offset = saved[k].base_offset;
				pr->log_start_offset = saved[k].log_start_offset;
				pr->log_append_time_ms = saved[k].log_append_time;
			}
			if (k < c->next_part || stopped)
				continue; /* done before it parked; or left for the next offer */
			if (k == c->next_part)
				off = c->next_off; /* where the partition it stopped in goes on */
			if (timed_out) {
				pr->error_code = KP_ERR_REQUEST_TIMED_OUT;
				pr->base_offset = -1;
				n_timed_out++;
				continue;
			}
			if (t == NULL || pd->index < 0 || pd->index >= t->partitions) {
				pr->error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				continue;
			}
			pp = &t->part[pd->index];
			if (!dp_broker_writer_local(b, pp->writer)) {
				/* Only a partition added while the request was parked gets here. */
				pr->error_code = KP_ERR_NOT_LEADER_OR_FOLLOWER;
				continue;
			}
			if (dp_part_offline(b, pp)) {
				pr->error_code = KP_ERR_KAFKA_STORAGE_ERROR;
				continue;
			}
			pr->error_code = produce_partition(q, produce_appended, c, &c->pending, pp,
				&pd->records, flags, pr, &off);
			if (pr->error_code == PRODUCE_FULL && produce_can_park(c, k)) {
				/* Hold the rest back until storage frees a chunk (file comment). */
				stopped = true;
				c->next_part = k;
				c->next_off = (uint32_t)off;
				continue;
			}
			if (pr->error_code == PRODUCE_FULL) { /* timeout_ms is up: retriable */
				pr->error_code = KP_ERR_REQUEST_TIMED_OUT;
				pr->base_offset = -1;
				n_timed_out++;
			}
			pr->log_start_offset = stor_log_start_offset(pp->log);
			if (pr->error_code == KP_ERR_NONE)
				dp_metrics_batches(true, td->name.ptr, (size_t)td->name.len, pd->index,
					pd->records.ptr, (size_t)pd->records.len,
					stor_log_end_offset(pp->log));
		}
	}
	if (n_timed_out > 0) {
		g_produce_stats.timed_out += n_timed_out;
		dp_log(DP_LOG_INFO, "produce: %" PRIu32 " partition(s) answered REQUEST_TIMED_OUT: "
			"no tail-cache chunk came free within timeout_ms %" PRId32
			" (storage.cache.chunks)", n_timed_out, m.timeout_ms);
	}
	if (stopped) {
		if (buf != NULL) {
			uint32_t n = c->next_part + 1;

			saved = produce_saved_at(buf, conn->env->resp_buf_size, n);
			for (uint32_t k = 0; k < n; k++)
				saved[k] = (struct produce_saved){
					.base_offset = flat[k]->base_offset,
					.log_start_offset = flat[k]->log_start_offset,
					.log_append_time = flat[k]->log_append_time_ms,
					.error_code = flat[k]->error_code};
		}
		if (n_saved == 0) {
			g_produce_stats.parked++;
			dp_log(DP_LOG_DEBUG, "produce held back at partition %" PRIu32 " of %" PRIu32
				" (%" PRIu32 " bytes in): no tail-cache chunk free (or a retried batch "
				"not written yet); resumes when storage frees one, within timeout_ms "
				"%" PRId32, c->next_part + 1, n_parts, c->next_off, m.timeout_ms);
		}
		c->parked = true;
		c->progress = g_produce_progress;
		c->next_free = g_produce_parked;
		g_produce_parked = c;
		return -EAGAIN; /* the transport keeps the frame and offers it again */
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
			dp_req_close_log(conn, "cannot encode the response to a", h, rc);
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
	dp_req_close_log(conn, "arena too small for a", h, -ENOMEM);
	c->failed = true;
	if (--c->pending == 0)
		produce_finish(c);
	return 0;
}

void
dp_produce_stats_get(struct dp_produce_stats *out)
{
	unsigned n = 0;

	for (const struct produce_ctx *c = g_produce_parked; c != NULL; c = c->next_free)
		n++;
	*out = g_produce_stats;
	out->parked_now = n;
}

int
dp_produce_init(const struct dp_broker *b)
{
	g_produce_free = NULL;
	g_produce_parked = NULL;
	g_produce_progress = 0;
	memset(&g_produce_stats, 0, sizeof(g_produce_stats));
	for (int i = PRODUCE_CTX_COUNT - 1; i >= 0; i--)
		produce_ctx_put(&g_produce_ctx[i]);
	g_split_free = NULL;
	if (b->n_writers < 2 || g_split != NULL)
		return 0;
	g_split = calloc(SPLIT_COUNT, sizeof(*g_split));
	if (g_split == NULL)
		return -ENOMEM;
	for (int i = SPLIT_COUNT - 1; i >= 0; i--) {
		g_split[i].arena_buf = malloc(SPLIT_ARENA);
		if (g_split[i].arena_buf == NULL)
			return -ENOMEM;
		g_split[i].next_free = g_split_free;
		g_split_free = &g_split[i];
	}
	return 0;
}

/*
 * InitProducerId v0-5 for idempotent producers (transactional_id null).
 *
 *   - no producer id and epoch (-1, -1; every v0-2 request): a new id from
 *     the persisted block (dp_producer.h), epoch 0;
 *   - v3+ with the producer's current id and epoch (KIP-360, the producer
 *     lost track of a sequence and resets): the same id with the epoch
 *     bumped, when the id is one this broker handed out and the epoch is
 *     below 32766; otherwise (id not ours, epoch exhausted) a new id with
 *     epoch 0, which is what Kafka's coordinator answers every idempotent
 *     producer. Keeping the id spares the partitions' tables an entry per
 *     reset; Produce fences the old epoch's in-flight batches either way;
 *   - only one of the two set: INVALID_REQUEST, as Kafka.
 * A transactional id belongs to the transaction coordinator, which will
 * live in the control process and does not exist yet: an empty one is
 * INVALID_REQUEST (Kafka's check), any other COORDINATOR_NOT_AVAILABLE, the
 * answer Kafka gives while its coordinator is not available (clients look
 * the coordinator up again and retry until their timeout).
 */
int
dp_req_init_producer_id(struct dp_requests *q, struct dp_conn *conn, uint64_t req,
	const struct kp_request_header *h, struct kp_reader *r)
{
	struct dp_pid_alloc *pids = &q->b->pids;
	struct kp_init_producer_id_request m;
	struct kp_init_producer_id_response resp;
	uint8_t *buf;
	int rc;

	rc = dp_req_begin(q, conn, h, r, &m, &buf);
	if (rc < 0)
		return rc;
	kp_init_producer_id_response_init(&resp);
	resp.producer_id = -1;
	resp.producer_epoch = -1;
	if (m.transactional_id.len == 0) {
		resp.error_code = KP_ERR_INVALID_REQUEST;
	} else if (m.transactional_id.len > 0) {
		resp.error_code = KP_ERR_COORDINATOR_NOT_AVAILABLE;
	} else if ((m.producer_id < 0) != (m.producer_epoch < 0)) {
		resp.error_code = KP_ERR_INVALID_REQUEST;
	} else if (m.producer_id >= 0 && m.producer_id < pids->next &&
		m.producer_epoch < INT16_MAX - 1) {
		resp.producer_id = m.producer_id;
		resp.producer_epoch = (int16_t)(m.producer_epoch + 1);
	} else {
		rc = dp_pid_alloc_next(pids, &resp.producer_id);
		if (rc < 0) {
			resp.producer_id = -1;
			resp.error_code = kp_error_from_errno(rc);
		} else {
			resp.producer_epoch = 0;
		}
	}
	if (resp.error_code != KP_ERR_NONE)
		dp_log(DP_LOG_DEBUG, "InitProducerId v%d: %s", h->request_api_version,
			kp_error_name(resp.error_code));
	return dp_req_reply(conn, req, h, buf, &resp);
}
