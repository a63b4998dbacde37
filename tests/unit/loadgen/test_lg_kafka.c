/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The load generator's Kafka framing: a Produce request it encodes reads
 * back through the broker's own header reader and codec (size prefix,
 * header version per API version, client id, the batch bytes unchanged), a
 * response with a flexible header decodes with the right correlation id,
 * a too-small buffer fails with -ENOBUFS, and the retriable error set.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "kp_api.h"
#include "kp_batch.h"
#include "kp_error.h"
#include "lg_kafka.h"

static void
test_produce_request_roundtrip(void **state)
{
	static uint8_t batch[4096], frame[8192], arena_buf[1 << 16];
	struct kp_batch_builder b;
	size_t bsize, len;
	(void)state;

	assert_int_equal(kp_batch_builder_start(&b, batch, sizeof(batch), KP_COMPRESSION_NONE), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(kp_batch_builder_add(&b, 1000 + i, "k", 1, "value", 5, NULL, 0), 0);
	assert_int_equal(kp_batch_builder_finish(&b, &bsize), 0);

	for (int16_t v = 3; v <= 9; v++) {
		struct kp_produce_request req, got;
		struct kp_produce_request_topic_produce_data td;
		struct kp_produce_request_partition_produce_data pd;
		struct kp_request_header h;
		struct kp_reader r;
		struct kp_arena a;

		kp_produce_request_init(&req);
		kp_produce_request_topic_produce_data_init(&td);
		kp_produce_request_partition_produce_data_init(&pd);
		req.transactional_id.len = -1;
		req.acks = -1;
		req.timeout_ms = 1234;
		td.name.ptr = "topic";
		td.name.len = 5;
		pd.index = 7;
		pd.records.ptr = batch;
		pd.records.len = (int32_t)bsize;
		td.partition_data.items = &pd;
		td.partition_data.count = 1;
		req.topic_data.items = &td;
		req.topic_data.count = 1;
		assert_int_equal(lg_kafka_request_encode(frame, sizeof(frame), LG_API_PRODUCE, v,
							 4242 + v, &req, &len),
				 0);
		uint32_t be;
		memcpy(&be, frame, 4);
		assert_int_equal(__builtin_bswap32(be), len - 4);

		kp_arena_init(&a, arena_buf, sizeof(arena_buf));
		kp_reader_init(&r, frame + 4, len - 4);
		assert_int_equal(kp_request_header_read(&h, NULL, &r, &a), 0);
		assert_int_equal(h.request_api_key, LG_API_PRODUCE);
		assert_int_equal(h.request_api_version, v);
		assert_int_equal(h.correlation_id, 4242 + v);
		assert_int_equal(h.client_id.len, (int32_t)strlen(LG_CLIENT_ID));
		assert_memory_equal(h.client_id.ptr, LG_CLIENT_ID, strlen(LG_CLIENT_ID));
		assert_int_equal(kp_produce_request_decode(&got, v, &r, &a), 0);
		assert_int_equal(kp_reader_remaining(&r), 0);
		assert_int_equal(got.acks, -1);
		assert_int_equal(got.timeout_ms, 1234);
		assert_int_equal(got.topic_data.count, 1);
		assert_int_equal(got.topic_data.items[0].partition_data.items[0].index, 7);
		const struct kp_bytes *rec = &got.topic_data.items[0].partition_data.items[0].records;
		assert_int_equal(rec->len, (int32_t)bsize);
		assert_memory_equal(rec->ptr, batch, bsize);
		struct kp_batch_header bh;
		assert_int_equal(kp_batch_validate(rec->ptr, (size_t)rec->len, 1, &bh), 0);
		assert_int_equal(bh.records_count, 5);
		/* one byte short of the frame: no partial frame, -ENOBUFS */
		assert_int_equal(lg_kafka_request_encode(frame, len - 1, LG_API_PRODUCE, v, 1, &req,
							 &len),
				 -ENOBUFS);
	}
}

static void
test_response_decode(void **state)
{
	static uint8_t buf[4096], arena_buf[1 << 16];
	(void)state;

	for (int16_t v = 8; v <= 9; v++) { /* v9: flexible, response header v1 */
		struct kp_produce_response resp, got;
		struct kp_produce_response_topic_produce_response tr;
		struct kp_produce_response_partition_produce_response pr;
		struct kp_response_header h;
		struct kp_writer w;
		struct kp_arena a;
		int32_t corr = 0;

		kp_produce_response_init(&resp);
		kp_produce_response_topic_produce_response_init(&tr);
		kp_produce_response_partition_produce_response_init(&pr);
		pr.index = 3;
		pr.error_code = KP_ERR_NOT_LEADER_OR_FOLLOWER;
		pr.base_offset = 99;
		tr.name.ptr = "t";
		tr.name.len = 1;
		tr.partition_responses.items = &pr;
		tr.partition_responses.count = 1;
		resp.responses.items = &tr;
		resp.responses.count = 1;
		kp_response_header_init(&h);
		h.correlation_id = 77;
		kp_writer_init(&w, buf, sizeof(buf));
		assert_int_equal(kp_response_header_encode(
					 &h, kp_api_response_header_version(kp_api_lookup(0), v), &w),
				 0);
		assert_int_equal(kp_produce_response_encode(&resp, v, &w), 0);
		kp_arena_init(&a, arena_buf, sizeof(arena_buf));
		assert_int_equal(lg_kafka_response_decode(buf, kp_writer_len(&w), LG_API_PRODUCE, v,
							  &got, &a, &corr),
				 0);
		assert_int_equal(corr, 77);
		assert_int_equal(got.responses.count, 1);
		assert_int_equal(got.responses.items[0].partition_responses.items[0].index, 3);
		assert_int_equal(got.responses.items[0].partition_responses.items[0].base_offset, 99);
		assert_true(lg_kafka_retriable(
			got.responses.items[0].partition_responses.items[0].error_code));
		/* truncated: an error, never a read past the end */
		assert_true(lg_kafka_response_decode(buf, kp_writer_len(&w) - 3, LG_API_PRODUCE, v,
						     &got, &a, &corr) < 0);
	}
}

static void
test_retriable(void **state)
{
	(void)state;
	assert_true(lg_kafka_retriable(KP_ERR_LEADER_NOT_AVAILABLE));
	assert_true(lg_kafka_retriable(KP_ERR_REQUEST_TIMED_OUT));
	assert_true(lg_kafka_retriable(56)); /* KAFKA_STORAGE_ERROR */
	assert_false(lg_kafka_retriable(KP_ERR_NONE));
	assert_false(lg_kafka_retriable(KP_ERR_MESSAGE_TOO_LARGE));
	assert_false(lg_kafka_retriable(KP_ERR_CORRUPT_MESSAGE));
	assert_false(lg_kafka_retriable(KP_ERR_OFFSET_OUT_OF_RANGE));
}

/*
 * Kafka's default partitioner for keyed records. The hashes (sign bit cleared) are
 * kafka-python's murmur2 (kafka.partitioner.default), a port of the Java client's
 * Utils.murmur2; "kafka" and "giberish123456789" are also in librdkafka's murmur2
 * unit test (0xd067cf64, 0x8f552b0c, before the sign bit is cleared).
 */
static void
test_partition_murmur2(void **state)
{
	static const struct {
		const char *key;
		size_t len;
		uint32_t positive; /* murmur2(key) & 0x7fffffff */
		int32_t of8;
	} v[] = {
		{"", 0, 0x106e08d9u, 1},
		{"a", 1, 0x22d0b27cu, 4},
		{"ab", 2, 0x12d8262au, 2},
		{"abc", 3, 0x1c94221bu, 3},
		{"abcd", 4, 0x311ab5f4u, 4},
		{"00000000", 8, 0x78a46fa3u, 3},
		{"hello world", 11, 0x48d0c363u, 3},
		{"kafka", 5, 0x5067cf64u, 4},
		{"giberish123456789", 17, 0x0f552b0cu, 4},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(lg_kafka_partition(v[i].key, v[i].len, INT32_MAX),
				 (int32_t)v[i].positive);
		assert_int_equal(lg_kafka_partition(v[i].key, v[i].len, 8), v[i].of8);
		assert_int_equal(lg_kafka_partition(v[i].key, v[i].len, 1), 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_produce_request_roundtrip),
		cmocka_unit_test(test_response_decode),
		cmocka_unit_test(test_retriable),
		cmocka_unit_test(test_partition_murmur2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
