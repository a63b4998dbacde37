/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the load generator's unit tests share: the in-process brokers of
 * test_lg_run.c (a socket) and test_lg_frames.c (a scripted transport)
 * answer ApiVersions with the same five keys and Metadata with the same
 * topic "t".
 */
#ifndef SLP_LG_TEST_UTIL_H
#define SLP_LG_TEST_UTIL_H

#include "kp_api.h"

/*
 * Fill @resp with Produce 3-9, Fetch 4-12, ListOffsets 1-7, Metadata 1-12 and
 * ApiVersions 0-3; @keys (5 entries, the caller's) holds them.
 */
static inline void
lg_test_api_versions(struct kp_api_versions_response *resp,
	struct kp_api_versions_response_api_version keys[5])
{
	const int16_t k[5][3] = {{0, 3, 9}, {1, 4, 12}, {2, 1, 7}, {3, 1, 12}, {18, 0, 3}};

	kp_api_versions_response_init(resp);
	for (int i = 0; i < 5; i++) {
		kp_api_versions_response_api_version_init(&keys[i]);
		keys[i].api_key = k[i][0];
		keys[i].min_version = k[i][1];
		keys[i].max_version = k[i][2];
	}
	resp->api_keys.items = keys;
	resp->api_keys.count = 5;
}

/*
 * Fill @resp: broker 1 at 127.0.0.1:@port, topic "t" with @n partitions (in @p,
 * the caller's), every one led by broker 1. @br, @t and @p are the caller's.
 */
static inline void
lg_test_metadata(struct kp_metadata_response *resp,
	struct kp_metadata_response_metadata_response_broker *br,
	struct kp_metadata_response_metadata_response_topic *t,
	struct kp_metadata_response_metadata_response_partition *p, int n, int32_t port)
{
	kp_metadata_response_init(resp);
	kp_metadata_response_metadata_response_broker_init(br);
	kp_metadata_response_metadata_response_topic_init(t);
	br->node_id = 1;
	br->host.ptr = "127.0.0.1";
	br->host.len = 9;
	br->port = port;
	t->name.ptr = "t";
	t->name.len = 1;
	for (int i = 0; i < n; i++) {
		kp_metadata_response_metadata_response_partition_init(&p[i]);
		p[i].partition_index = i;
		p[i].leader_id = 1;
	}
	t->partitions.items = p;
	t->partitions.count = n;
	resp->brokers.items = br;
	resp->brokers.count = 1;
	resp->topics.items = t;
	resp->topics.count = 1;
}

#endif /* SLP_LG_TEST_UTIL_H */
