/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the metadata log's decoders (control/ctl_meta.h): the
 * first input byte picks one of
 *   0: one record decoded; a record that decodes re-encodes (TOPIC, PARTITIONS,
 *      CONFIGS, TOPIC_DELETE, BROKER) to bytes that decode to the same fields;
 *   1: records (uint16 length-prefixed) applied one after another to a state
 *      machine, then its snapshot restored into a second one;
 *   2: a batch (what the dataplane receives, or a snapshot) checked, walked,
 *      and restored.
 * The dataplane and the control process both run these on bytes they read
 * from a socket or from Raft's files. Built with libFuzzer (-Dfuzz=true) or
 * with replay_main.c over tests/fuzz/corpus/ctl_meta/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_meta.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
reencode(const struct ctl_meta_rec *r)
{
	struct ctl_meta_buf b = {0};
	struct ctl_meta_rec again;

	switch (r->type) {
	case CTL_META_PARTITIONS:
		ctl_meta_enc_partitions(&b, r->id, r->first, r->n_parts, r->parts);
		break;
	case CTL_META_CONFIGS:
		ctl_meta_enc_configs(&b, r->id, r->replace, r->ops, r->n_ops);
		break;
	case CTL_META_BROKER:
		ctl_meta_enc_broker(&b, &r->broker);
		break;
	default:
		ctl_meta_buf_free(&b);
		return;
	}
	if (b.err == 0) {
		if (ctl_meta_rec_decode(b.p, b.len, &again) != 0)
			abort();
		if (again.type != r->type || again.n_parts != r->n_parts ||
			again.n_ops != r->n_ops || again.first != r->first ||
			memcmp(again.id, r->id, 16) != 0)
			abort();
		for (int32_t i = 0; i < r->n_parts; i++) {
			if (again.parts[i].leader != r->parts[i].leader ||
				again.parts[i].n_replicas != r->parts[i].n_replicas)
				abort();
		}
		if (r->type == CTL_META_BROKER && (again.broker.node_id != r->broker.node_id ||
			again.broker.n_listeners != r->broker.n_listeners))
			abort();
		ctl_meta_rec_release(&again);
	}
	ctl_meta_buf_free(&b);
}

static void
snapshot_round_trip(const struct ctl_meta_state *s)
{
	struct ctl_meta_state *r = ctl_meta_state_create();
	struct ctl_meta_buf b = {0};

	if (r == NULL)
		return;
	if (ctl_meta_snapshot(s, &b) == 0) {
		if (ctl_meta_restore(r, b.p, b.len) != 0)
			abort(); /* a state's own snapshot always restores */
		if (r->n_topics != s->n_topics || r->n_brokers != s->n_brokers)
			abort();
		for (uint32_t i = 0; i < s->n_topics; i++) {
			if (strcmp(r->topics[i]->configs, s->topics[i]->configs) != 0 ||
				r->topics[i]->n_parts != s->topics[i]->n_parts)
				abort();
		}
	}
	ctl_meta_buf_free(&b);
	ctl_meta_state_destroy(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_meta_state *s;
	struct ctl_meta_rec r;

	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		if (ctl_meta_rec_decode(data + 1, size - 1, &r) == 0) {
			reencode(&r);
			ctl_meta_rec_release(&r);
		}
		break;
	case 1: {
		size_t off = 1;

		s = ctl_meta_state_create();
		if (s == NULL)
			return 0;
		while (off + 2 <= size) {
			size_t n = (size_t)data[off] << 8 | data[off + 1];

			off += 2;
			if (n > size - off)
				n = size - off;
			(void)ctl_meta_apply(s, data + off, n);
			off += n;
		}
		snapshot_round_trip(s);
		ctl_meta_state_destroy(s);
		break;
	}
	default: {
		enum ctl_meta_batch_kind kind;
		const uint8_t *rec;
		size_t len;
		size_t off = 0;

		if (ctl_meta_batch_check(data + 1, size - 1, &kind) >= 0) {
			while (ctl_meta_batch_next(data + 1, size - 1, &off, &rec, &len) == 1) {
				if (ctl_meta_rec_decode(rec, len, &r) == 0)
					ctl_meta_rec_release(&r);
			}
		}
		s = ctl_meta_state_create();
		if (s != NULL && ctl_meta_restore(s, data + 1, size - 1) == 0)
			snapshot_round_trip(s);
		ctl_meta_state_destroy(s);
		break;
	}
	}
	return 0;
}
