/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for what the control process parses from outside: the
 * __consumer_offsets records it loads at start (keys, OffsetCommitValue,
 * GroupMetadataValue, whole record batches replayed into a coordinator) and
 * the group requests the dataplane forwards to it (a request frame into
 * ctl_coord_request, answered into a sink). The first input byte picks the
 * parser; the rest is its input. Values of the version Slipstream writes
 * (3) must re-encode to the same bytes. Built with libFuzzer (-Dfuzz=true)
 * or with replay_main.c over tests/fuzz/corpus/ctl_records/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_coord.h"
#include "ctl_records.h"
#include "kp_wire.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t arena_mem[1 << 18] __attribute__((aligned(64)));
static uint8_t out[1 << 17];

static void
sink_respond(void *arg, uint64_t token, uint8_t *buf, size_t len)
{
	(void)arg;
	(void)token;
	(void)len;
	free(buf);
}

/* Appends "succeed" at once from the fuzz loop below (never inside the call). */
static void *g_cookies[64];
static int g_n_cookies;

static int
sink_append(void *arg, int32_t partition, uint8_t *batch, size_t len, void *cookie)
{
	(void)arg;
	(void)partition;
	(void)len;
	free(batch);
	if (g_n_cookies == 64)
		return -ENOBUFS;
	g_cookies[g_n_cookies++] = cookie;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kp_arena a;
	struct kp_writer w;

	if (size < 1)
		return 0;
	kp_arena_init(&a, arena_mem, sizeof(arena_mem));
	switch (data[0] % 5) {
	case 0: {
		struct ctl_rec_key k;

		(void)ctl_rec_key_decode(data + 1, size - 1, &k);
		break;
	}
	case 1: {
		struct ctl_rec_offset v;

		if (ctl_rec_offset_decode(data + 1, size - 1, &v) == 0 && size >= 3 && data[1] == 0 &&
			data[2] >= 1 && data[2] <= 3) {
			kp_writer_init(&w, out, sizeof(out));
			ctl_rec_offset_encode(&w, &v, data[2]);
			if (w.err == 0 && memcmp(out, data + 1, kp_writer_len(&w)) != 0)
				abort();
		}
		break;
	}
	case 2: {
		struct ctl_rec_group v;

		if (ctl_rec_group_decode(data + 1, size - 1, &v, &a) == 0 && size >= 3 &&
			data[1] == 0 && data[2] <= 3) {
			kp_writer_init(&w, out, sizeof(out));
			ctl_rec_group_encode(&w, &v, data[2]);
			if (w.err == 0 && (kp_writer_len(&w) != ctl_rec_group_size(&v, data[2]) ||
				memcmp(out, data + 1, kp_writer_len(&w)) != 0))
				abort();
		}
		break;
	}
	default: {
		struct ctl_coord_cfg cfg = {
			.n_partitions = 4, .initial_rebalance_delay_ms = 0,
			.min_session_timeout_ms = 1, .max_session_timeout_ms = 1000000,
			.offsets_retention_ms = 60000, .retention_check_ms = 1000,
		};
		struct ctl_coord *c = ctl_coord_create(&cfg, sink_respond, sink_append, NULL);

		if (c == NULL)
			return 0;
		g_n_cookies = 0;
		if (data[0] % 5 == 3) {
			(void)ctl_coord_load_batch(c, data + 1, size - 1);
			ctl_coord_loaded(c, 1000);
		} else {
			/* The same request three times over time, then timers past every timeout. */
			for (int i = 0; i < 3; i++) {
				(void)ctl_coord_request(c, (uint64_t)i, data + 1, size - 1, "/127.0.0.1",
					1000 + i);
				for (int k = 0; k < g_n_cookies; k++)
					ctl_coord_append_done(c, g_cookies[k], i == 1 ? -EIO : 0, 1000 + i);
				g_n_cookies = 0;
			}
		}
		ctl_coord_tick(c, 5000000);
		for (int k = 0; k < g_n_cookies; k++)
			ctl_coord_append_done(c, g_cookies[k], 0, 5000000);
		g_n_cookies = 0;
		ctl_coord_destroy(c);
		break;
	}
	}
	return 0;
}
