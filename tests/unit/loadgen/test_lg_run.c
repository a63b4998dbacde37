/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lg_run against a scripted Kafka broker written here (one thread, blocking
 * sockets on 127.0.0.1, our generated codecs): version negotiation and
 * set-up (ApiVersions, Metadata, ListOffsets), then the error paths a real
 * broker rarely shows on demand:
 *  - a retriable error (NOT_LEADER_OR_FOLLOWER) on the first attempt of
 *    every batch: each batch is sent again and acknowledged once, offsets
 *    end where the mock says;
 *  - retriable errors on about half the batches: requests patched in place
 *    (their slot's last frame reused) are refused too, and every refused
 *    batch comes back byte for byte;
 *  - a non-retriable error (MESSAGE_TOO_LARGE): every record counted as
 *    failed, no retry, the run still ends;
 *  - a broker that never answers Produce: the run ends with a timeout error
 *    shortly after request_timeout_ms, it does not hang;
 *  - every record of every batch read back (MOCK_CHECK_STAMPS): batches
 *    after the first of each request slot are patched copies of it
 *    (lg_run.c's templates), so each record must still carry its own
 *    partition and the next sequence number, due times must not go back,
 *    and the batch must validate (CRC-32C over the patched bytes); most
 *    requests are their slot's previous frame patched in place.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "kp_api.h"
#include "kp_batch.h"
#include "kp_error.h"
#include "lg_check.h"
#include "lg_run.h"
#include "lg_test_util.h"

enum mock_mode { MOCK_RETRY_ONCE, MOCK_RETRY_SOME, MOCK_TOO_LARGE, MOCK_SILENT, MOCK_CHECK_STAMPS };

#define MOCK_PARTS 2
#define MOCK_CONNS 8

struct mock {
	enum mock_mode mode;
	int lfd;
	uint16_t port;
	pthread_t th;
	atomic_int stop;
	int64_t end[MOCK_PARTS];	  /* next offset per partition */
	uint64_t produce_batches;	  /* batches received (retries included) */
	uint64_t first_attempts_refused; /* MOCK_RETRY_ONCE: batches answered with an error */
	uint32_t refused[MOCK_PARTS][256];	  /* RETRY_ONCE: CRCs of batches refused once */
	int nrefused[MOCK_PARTS];
	/* MOCK_CHECK_STAMPS */
	uint64_t next_seq[MOCK_PARTS];	  /* sequence the next record must carry */
	uint64_t last_due[MOCK_PARTS];
	uint64_t records_checked;
	uint64_t stamp_errors;		  /* records with a wrong stamp */
	int64_t last_base_ts[MOCK_PARTS];
};

/* MOCK_CHECK_STAMPS: every record of a (validated) batch for @partition. */
static void
mock_check_stamps(struct mock *m, int32_t partition, const uint8_t *batch,
		  const struct kp_batch_header *bh)
{
	struct kp_record_iter it;
	struct kp_record rec;
	struct lg_stamp st;

	if (bh->base_timestamp < m->last_base_ts[partition] || bh->max_timestamp != bh->base_timestamp)
		m->stamp_errors++;
	m->last_base_ts[partition] = bh->base_timestamp;
	kp_record_iter_init(&it, kp_batch_records(batch), kp_batch_records_len(bh),
			    bh->records_count);
	while (kp_record_iter_next(&it, &rec) == 1) {
		m->records_checked++;
		if (!lg_stamp_read(rec.value, rec.value_len, &st) || !st.has_seq ||
		    st.partition != partition || st.seq != m->next_seq[partition] ||
		    st.due_ns < m->last_due[partition] || rec.timestamp_delta != 0) {
			m->stamp_errors++;
			continue;
		}
		m->next_seq[partition]++;
		m->last_due[partition] = st.due_ns;
	}
}

static int
read_full(int fd, void *buf, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t r = recv(fd, (uint8_t *)buf + off, n - off, 0);
		if (r <= 0)
			return -1;
		off += (size_t)r;
	}
	return 0;
}

static void
send_response(int fd, int16_t key, int16_t v, int32_t corr, const void *msg)
{
	static uint8_t out[1 << 16];
	const struct kp_api_desc *d = kp_api_lookup(key);
	struct kp_response_header h;
	struct kp_writer w;

	kp_response_header_init(&h);
	h.correlation_id = corr;
	kp_writer_init(&w, out, sizeof(out));
	kp_wr_int32(&w, 0);
	kp_response_header_encode(&h, kp_api_response_header_version(d, v), &w);
	d->response.encode(msg, v, &w);
	assert_int_equal(w.err, 0);
	uint32_t be = __builtin_bswap32((uint32_t)(kp_writer_len(&w) - 4));
	memcpy(out, &be, 4);
	assert_int_equal(send(fd, out, kp_writer_len(&w), MSG_NOSIGNAL), (ssize_t)kp_writer_len(&w));
}

/* Answer one request frame; returns -1 to close the connection. */
static int
mock_request(struct mock *m, int fd, const uint8_t *frame, size_t len)
{
	static uint8_t arena_buf[1 << 20];
	struct kp_arena a;
	struct kp_reader r;
	struct kp_request_header h;

	kp_arena_init(&a, arena_buf, sizeof(arena_buf));
	kp_reader_init(&r, frame, len);
	if (kp_request_header_read(&h, NULL, &r, &a) < 0)
		return -1;
	int16_t v = h.request_api_version;
	if (h.request_api_key == 18) {
		struct kp_api_versions_response resp;
		struct kp_api_versions_response_api_version keys[5];
		lg_test_api_versions(&resp, keys);
		send_response(fd, 18, v, h.correlation_id, &resp);
		return 0;
	}
	const struct kp_api_desc *d = kp_api_lookup(h.request_api_key);
	static uint8_t req[4096] __attribute__((aligned(16)));
	assert_true(d->request.struct_size <= sizeof(req));
	if (d->request.decode(req, v, &r, &a) < 0)
		return -1;
	if (h.request_api_key == 3) { /* Metadata: topic "t", MOCK_PARTS partitions, leader 1 */
		struct kp_metadata_response resp;
		struct kp_metadata_response_metadata_response_broker br;
		struct kp_metadata_response_metadata_response_topic t;
		struct kp_metadata_response_metadata_response_partition p[MOCK_PARTS];
		lg_test_metadata(&resp, &br, &t, p, MOCK_PARTS, m->port);
		send_response(fd, 3, v, h.correlation_id, &resp);
		return 0;
	}
	if (h.request_api_key == 2) { /* ListOffsets: our end offsets */
		const struct kp_list_offsets_request *q = (const void *)req;
		struct kp_list_offsets_response resp;
		struct kp_list_offsets_response_list_offsets_topic_response t;
		struct kp_list_offsets_response_list_offsets_partition_response p[MOCK_PARTS];
		kp_list_offsets_response_init(&resp);
		kp_list_offsets_response_list_offsets_topic_response_init(&t);
		int32_t n = q->topics.items[0].partitions.count;
		assert_true(n <= MOCK_PARTS);
		for (int32_t i = 0; i < n; i++) {
			int32_t idx = q->topics.items[0].partitions.items[i].partition_index;
			kp_list_offsets_response_list_offsets_partition_response_init(&p[i]);
			p[i].partition_index = idx;
			p[i].offset = m->end[idx];
			p[i].timestamp = -1;
		}
		t.name = q->topics.items[0].name;
		t.partitions.items = p;
		t.partitions.count = n;
		resp.topics.items = &t;
		resp.topics.count = 1;
		send_response(fd, 2, v, h.correlation_id, &resp);
		return 0;
	}
	if (h.request_api_key != 0)
		return -1;
	const struct kp_produce_request *q = (const void *)req;
	if (m->mode == MOCK_SILENT)
		return 0;
	struct kp_produce_response resp;
	struct kp_produce_response_topic_produce_response t;
	struct kp_produce_response_partition_produce_response p[MOCK_PARTS];
	kp_produce_response_init(&resp);
	kp_produce_response_topic_produce_response_init(&t);
	const struct kp_produce_request_topic_produce_data *td = &q->topic_data.items[0];
	assert_true(td->partition_data.count <= MOCK_PARTS);
	for (int32_t i = 0; i < td->partition_data.count; i++) {
		const struct kp_produce_request_partition_produce_data *pd = &td->partition_data.items[i];
		struct kp_batch_header bh;
		kp_produce_response_partition_produce_response_init(&p[i]);
		p[i].index = pd->index;
		assert_int_equal(kp_batch_validate(pd->records.ptr, (size_t)pd->records.len, 1, &bh),
				 0);
		m->produce_batches++;
		if (m->mode == MOCK_CHECK_STAMPS) {
			mock_check_stamps(m, pd->index, pd->records.ptr, &bh);
			p[i].base_offset = m->end[pd->index];
			m->end[pd->index] += bh.records_count;
			continue;
		}
		if (m->mode == MOCK_TOO_LARGE) {
			p[i].error_code = KP_ERR_MESSAGE_TOO_LARGE;
			p[i].base_offset = -1;
			continue;
		}
		/* RETRY_ONCE: refuse a batch the first time its CRC is seen (every
		 * batch differs: records carry their due time in ns); RETRY_SOME:
		 * only those whose CRC is odd, about half. */
		int *nr = &m->nrefused[pd->index];
		int k = 0;
		while (k < *nr && m->refused[pd->index][k] != bh.crc)
			k++;
		if (k == *nr && m->mode == MOCK_RETRY_SOME && !(bh.crc & 1)) {
			p[i].base_offset = m->end[pd->index];
			m->end[pd->index] += bh.records_count;
			continue;
		}
		if (k == *nr) {
			assert_true(*nr < 256);
			m->refused[pd->index][(*nr)++] = bh.crc;
			m->first_attempts_refused++;
			p[i].error_code = KP_ERR_NOT_LEADER_OR_FOLLOWER;
			p[i].base_offset = -1;
			continue;
		}
		m->refused[pd->index][k] = m->refused[pd->index][--*nr];
		p[i].base_offset = m->end[pd->index];
		m->end[pd->index] += bh.records_count;
	}
	t.name = td->name;
	t.partition_responses.items = p;
	t.partition_responses.count = td->partition_data.count;
	resp.responses.items = &t;
	resp.responses.count = 1;
	send_response(fd, 0, v, h.correlation_id, &resp);
	return 0;
}

static void *
mock_main(void *arg)
{
	struct mock *m = arg;
	struct pollfd fds[1 + MOCK_CONNS];
	static uint8_t frame[1 << 20];
	int n = 1;

	fds[0].fd = m->lfd;
	fds[0].events = POLLIN;
	while (!atomic_load(&m->stop)) {
		if (poll(fds, (nfds_t)n, 50) <= 0)
			continue;
		if ((fds[0].revents & POLLIN) && n < 1 + MOCK_CONNS) {
			int fd = accept(m->lfd, NULL, NULL);
			if (fd >= 0) {
				fds[n].fd = fd;
				fds[n].events = POLLIN;
				fds[n].revents = 0;
				n++;
			}
		}
		for (int i = 1; i < n; i++) {
			if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			uint32_t be;
			int bad = read_full(fds[i].fd, &be, 4) < 0;
			uint32_t sz = bad ? 0 : __builtin_bswap32(be);
			if (!bad && (sz > sizeof(frame) || read_full(fds[i].fd, frame, sz) < 0))
				bad = 1;
			if (!bad && mock_request(m, fds[i].fd, frame, sz) < 0)
				bad = 1;
			if (bad) {
				close(fds[i].fd);
				fds[i] = fds[--n];
				i--;
			}
		}
	}
	for (int i = 1; i < n; i++)
		close(fds[i].fd);
	return NULL;
}

static struct mock *
mock_start(enum mock_mode mode)
{
	struct mock *m = calloc(1, sizeof(*m));
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);

	assert_non_null(m);
	m->mode = mode;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	m->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(m->lfd >= 0);
	assert_int_equal(bind(m->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(m->lfd, 16), 0);
	assert_int_equal(getsockname(m->lfd, (struct sockaddr *)&sa, &sl), 0);
	m->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&m->th, NULL, mock_main, m), 0);
	return m;
}

static void
mock_stop(struct mock *m)
{
	atomic_store(&m->stop, 1);
	pthread_join(m->th, NULL);
	close(m->lfd);
	free(m);
}

static void
config_for(struct lg_config *cfg, const struct mock *m)
{
	lg_config_defaults(cfg);
	cfg->port = m->port;
	snprintf(cfg->topic, sizeof(cfg->topic), "t");
	cfg->partitions = MOCK_PARTS;
	cfg->record_size = 64;
	cfg->batch_size = 1024;
	cfg->count = 3000;
	cfg->duration_s = 0;
	cfg->max_inflight = 4;
	cfg->progress = false;
	cfg->retry_backoff_ms = 1;
	cfg->request_timeout_ms = 5000;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
test_retry_once(void **state)
{
	struct mock *m = mock_start(MOCK_RETRY_ONCE);
	struct lg_result *res = calloc(1, sizeof(*res));
	struct lg_config cfg;
	(void)state;

	config_for(&cfg, m);
	m->end[0] = 100; /* an existing log: offsets continue from there */
	assert_int_equal(lg_run(&cfg, res), 0);
	assert_int_equal(res->errors, 0);
	assert_int_equal(res->acked_records, 3000);
	assert_int_equal(res->failed_records, 0);
	assert_int_equal(res->partitions, MOCK_PARTS);
	assert_int_equal(res->versions.produce, 9);
	assert_int_equal(res->versions.fetch, 12);
	/* every batch refused once and sent again */
	assert_true(res->retried_batches > 0);
	assert_int_equal(res->retried_batches, m->first_attempts_refused);
	assert_int_equal(m->produce_batches, 2 * m->first_attempts_refused);
	assert_int_equal(res->start_offsets[0], 100);
	assert_int_equal(res->acked_end[0], m->end[0]);
	assert_int_equal(res->acked_end[1], m->end[1]);
	assert_int_equal((m->end[0] - 100) + m->end[1], 3000);
	lg_result_free(res);
	free(res);
	mock_stop(m);
}

/*
 * About half the batches refused once: requests whose batches were all taken
 * leave their slot's frame reusable, so later requests are patched in place
 * and some of those are refused too; their batches must come back byte for
 * byte (copied back out of the frame, not the slot's older batches): every
 * refused CRC seen again, none left over.
 */
static void
test_retry_patched_frames(void **state)
{
	struct mock *m = mock_start(MOCK_RETRY_SOME);
	struct lg_result *res = calloc(1, sizeof(*res));
	struct lg_config cfg;
	(void)state;

	config_for(&cfg, m);
	cfg.count = 6000;
	assert_int_equal(lg_run(&cfg, res), 0);
	assert_int_equal(res->errors, 0);
	assert_int_equal(res->acked_records, 6000);
	assert_int_equal(res->failed_records, 0);
	assert_true(res->produce_requests_patched > 0);
	assert_true(m->first_attempts_refused > 0);
	assert_int_equal(res->retried_batches, m->first_attempts_refused);
	for (int p = 0; p < MOCK_PARTS; p++)
		assert_int_equal(m->nrefused[p], 0); /* every refused batch came back */
	assert_int_equal(m->end[0] + m->end[1], 6000);
	lg_result_free(res);
	free(res);
	mock_stop(m);
}

static void
test_patched_batches_carry_fresh_stamps(void **state)
{
	struct mock *m = mock_start(MOCK_CHECK_STAMPS);
	struct lg_result *res = calloc(1, sizeof(*res));
	struct lg_config cfg;
	(void)state;

	config_for(&cfg, m);
	cfg.count = 6000; /* 12 records per batch: about 250 requests over 4 slots */
	assert_int_equal(lg_run(&cfg, res), 0);
	assert_int_equal(res->errors, 0);
	assert_int_equal(res->acked_records, 6000);
	/* Most requests reuse their slot's last frame, patched in place. */
	assert_true(res->produce_requests_patched > res->produce_requests / 2);
	assert_int_equal(m->records_checked, 6000);
	assert_int_equal(m->stamp_errors, 0);
	assert_int_equal(m->next_seq[0] + m->next_seq[1], 6000);
	assert_int_equal(m->end[0] + m->end[1], 6000);
	lg_result_free(res);
	free(res);
	mock_stop(m);
}

static void
test_non_retriable(void **state)
{
	struct mock *m = mock_start(MOCK_TOO_LARGE);
	struct lg_result *res = calloc(1, sizeof(*res));
	struct lg_config cfg;
	(void)state;

	config_for(&cfg, m);
	assert_int_equal(lg_run(&cfg, res), 0);
	assert_int_equal(res->acked_records, 0);
	assert_int_equal(res->failed_records, 3000);
	assert_int_equal(res->retried_batches, 0);
	assert_true(res->errors > 0);
	assert_non_null(strstr(res->first_error, "MESSAGE_TOO_LARGE"));
	lg_result_free(res);
	free(res);
	mock_stop(m);
}

static void
test_silent_broker_times_out(void **state)
{
	struct mock *m = mock_start(MOCK_SILENT);
	struct lg_result *res = calloc(1, sizeof(*res));
	struct lg_config cfg;
	(void)state;

	config_for(&cfg, m);
	cfg.request_timeout_ms = 500;
	double t0 = now_s();
	assert_int_equal(lg_run(&cfg, res), 0);
	double took = now_s() - t0;
	assert_true(took < 3.0);
	assert_int_equal(res->acked_records, 0);
	assert_true(res->errors > 0);
	assert_non_null(strstr(res->first_error, "timed out"));
	lg_result_free(res);
	free(res);
	mock_stop(m);
}

static void
test_refused_connection(void **state)
{
	struct lg_result *res = calloc(1, sizeof(*res));
	struct lg_config cfg;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	(void)state;

	/* A port that was just free: nobody listens there. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	lg_config_defaults(&cfg);
	cfg.port = ntohs(sa.sin_port);
	cfg.progress = false;
	cfg.request_timeout_ms = 2000;
	assert_true(lg_run(&cfg, res) < 0);
	assert_true(res->first_error[0] != '\0');
	lg_result_free(res);
	free(res);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retry_once),
		cmocka_unit_test(test_patched_batches_carry_fresh_stamps),
		cmocka_unit_test(test_retry_patched_frames),
		cmocka_unit_test(test_non_retriable),
		cmocka_unit_test(test_silent_broker_times_out),
		cmocka_unit_test(test_refused_connection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
