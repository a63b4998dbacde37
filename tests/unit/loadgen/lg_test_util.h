/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the load generator's unit tests share: the in-process brokers of
 * test_lg_run.c (a socket) and test_lg_frames.c (a scripted transport)
 * answer ApiVersions with the same five keys.
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

#endif /* SLP_LG_TEST_UTIL_H */
