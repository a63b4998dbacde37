/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Batch templates: an uncompressed, keyless record batch built once (by
 * kp_batch_builder, record by record) and then reused for later requests by
 * rewriting only what changes between them: the stamp at the start of each
 * value (due time, run, connection, partition, sequence: lg_check.h), the
 * batch timestamps (every record's timestamp delta is 0) and the CRC-32C.
 * The rest of each value keeps the filler bytes of the first build, so a
 * patched batch is byte for byte the batch the builder would make from the
 * same values, without copying the values or encoding the records again.
 *
 * The CRC is not recomputed over the batch: the old one is XORed with the
 * change each rewritten range makes (lg_crc.h), whose multipliers are
 * precomputed here from each stamp's position. Exact, not skipped: the
 * unit tests compare every patched batch with a freshly built one. Without
 * the CPU's carry-less multiply the CRC is recomputed over the batch.
 */
#ifndef SLP_LG_TMPL_H
#define SLP_LG_TMPL_H

#include <stdint.h>
#include <stddef.h>

#include "lg_crc.h"

struct lg_tmpl {
	uint32_t n;	      /* records of the learned batch; 0: none learned */
	uint32_t size;	      /* its bytes */
	uint32_t stamp_len;   /* bytes rewritten at the start of each value: 0, 16 or 40 */
	uint32_t cap;	      /* records val_off and at have room for */
	uint32_t *val_off;    /* per record: offset of its value from the batch start */
	struct lg_crc_at *at; /* per record: its stamp's position in the CRC'd range */
	struct lg_crc_at ts_at; /* the header's two timestamps */
	int incremental;      /* 1: CRC patched by lg_crc_delta; 0: recomputed */
};

/** What a patched batch's records carry: record k gets due0 + k * step and seq0 + k. */
struct lg_tmpl_stamp {
	uint64_t due0;
	int64_t step;
	uint32_t run;
	uint32_t conn;
	int32_t partition;
	uint64_t seq0;
};

/** Room for templates of up to @cap records. @return 0 or -ENOMEM. */
int
lg_tmpl_init(struct lg_tmpl *t, uint32_t cap);

void
lg_tmpl_free(struct lg_tmpl *t);

/**
 * Learn the batch at @batch (@size bytes, borrowed for the call): an
 * uncompressed v2 batch of at most t->cap keyless records whose values are
 * @value_len bytes each, every record timestamp delta 0.
 * @return 0; -EINVAL when the batch is not such a batch (t->n is then 0).
 */
int
lg_tmpl_learn(struct lg_tmpl *t, const uint8_t *batch, size_t size, uint32_t value_len);

/**
 * Rewrite the learned batch @batch (t->size bytes, the caller's; it must hold
 * the learned batch or an earlier patch of it: the CRC is updated from the
 * bytes it replaces) with the stamps of @st and both batch timestamps @ts.
 */
void
lg_tmpl_patch(const struct lg_tmpl *t, uint8_t *batch, int64_t ts, const struct lg_tmpl_stamp *st);

#endif /* SLP_LG_TMPL_H */
