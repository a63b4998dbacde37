/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Batch templates (see lg_tmpl.h): learn where a built batch's values
 * start, then rewrite stamps, timestamps and the CRC in place.
 */
#include "lg_tmpl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kp_batch.h"
#include "lg_check.h"

#define TS_OFF 27 /* baseTimestamp, then maxTimestamp */
#define CRC_OFF 17

int
lg_tmpl_init(struct lg_tmpl *t, uint32_t cap)
{
	memset(t, 0, sizeof(*t));
	t->val_off = calloc(cap ? cap : 1, sizeof(*t->val_off));
	t->at = calloc(cap ? cap : 1, sizeof(*t->at));
	if (t->val_off == NULL || t->at == NULL) {
		lg_tmpl_free(t);
		return -ENOMEM;
	}
	t->cap = cap;
	return 0;
}

void
lg_tmpl_free(struct lg_tmpl *t)
{
	free(t->val_off);
	free(t->at);
	memset(t, 0, sizeof(*t));
}

int
lg_tmpl_learn(struct lg_tmpl *t, const uint8_t *batch, size_t size, uint32_t value_len)
{
	struct kp_batch_header h;
	struct kp_record_iter it;
	struct kp_record rec;

	t->n = 0;
	if (kp_batch_header_parse(batch, size, &h) < 0 || kp_batch_size(&h) != size ||
	    kp_batch_compression(&h) != KP_COMPRESSION_NONE || h.records_count <= 0 ||
	    (uint32_t)h.records_count > t->cap || h.base_timestamp != h.max_timestamp)
		return -EINVAL;
	uint32_t stamp = value_len >= LG_SEQ_LEN     ? LG_SEQ_LEN
			 : value_len >= LG_STAMP_LEN ? LG_STAMP_LEN
						     : 0;
	kp_record_iter_init(&it, batch + KP_BATCH_HEADER_SIZE, size - KP_BATCH_HEADER_SIZE,
			    h.records_count);
	for (uint32_t k = 0; k < (uint32_t)h.records_count; k++) {
		if (kp_record_iter_next(&it, &rec) != 1 || rec.value == NULL ||
		    rec.value_len != (int32_t)value_len || rec.key != NULL ||
		    rec.timestamp_delta != 0)
			return -EINVAL;
		t->val_off[k] = (uint32_t)(rec.value - batch);
		lg_crc_at_init(&t->at[k], size - t->val_off[k] - stamp);
	}
	lg_crc_at_init(&t->ts_at, size - TS_OFF - 16);
	t->incremental = lg_crc_fast();
	t->stamp_len = stamp;
	t->size = (uint32_t)size;
	t->n = (uint32_t)h.records_count;
	return 0;
}

static void
put64be(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

void
lg_tmpl_patch(const struct lg_tmpl *t, uint8_t *batch, int64_t ts, const struct lg_tmpl_stamp *st)
{
	uint8_t old[LG_SEQ_LEN];
	uint32_t delta = 0;

	for (uint32_t k = 0; k < t->n; k++) {
		uint8_t *v = batch + t->val_off[k];
		memcpy(old, v, t->stamp_len);
		lg_stamp_write(v, t->stamp_len, st->due0 + (uint64_t)((int64_t)k * st->step),
			       st->run, st->conn, st->partition, st->seq0 + k);
		if (t->incremental && t->stamp_len > 0)
			delta ^= lg_crc_delta(&t->at[k], old, v, t->stamp_len);
	}
	memcpy(old, batch + TS_OFF, 16);
	put64be(batch + TS_OFF, (uint64_t)ts);
	put64be(batch + TS_OFF + 8, (uint64_t)ts);
	if (!t->incremental) {
		kp_batch_crc_update(batch, t->size);
		return;
	}
	delta ^= lg_crc_delta(&t->ts_at, old, batch + TS_OFF, 16);
	uint8_t *c = batch + CRC_OFF;
	uint32_t crc = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];

	crc ^= delta;
	c[0] = (uint8_t)(crc >> 24);
	c[1] = (uint8_t)(crc >> 16);
	c[2] = (uint8_t)(crc >> 8);
	c[3] = (uint8_t)crc;
}
