/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Record stamps and the consumer's sequence checks (layout in lg_check.h).
 */
#include "lg_check.h"

#include <stdlib.h>
#include <string.h>

const uint8_t lg_magic_stamp[8] = {'S', 'L', 'P', 'L', 'O', 'A', 'D', '1'};
const uint8_t lg_magic_seq[8] = {'S', 'L', 'P', 'L', 'O', 'A', 'D', '2'};

static void
put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void
lg_stamp_write(uint8_t *val, size_t len, uint64_t due_ns, uint32_t run, uint32_t conn,
	       int32_t partition, uint64_t seq)
{
	if (len < LG_STAMP_LEN)
		return;
	put64(val, due_ns);
	if (len < LG_SEQ_LEN) {
		memcpy(val + 8, lg_magic_stamp, 8);
		return;
	}
	memcpy(val + 8, lg_magic_seq, 8);
	put32(val + 16, run);
	put32(val + 20, conn);
	put32(val + 24, (uint32_t)partition);
	put32(val + 28, 0);
	put64(val + 32, seq);
}

bool
lg_stamp_read(const uint8_t *val, int32_t len, struct lg_stamp *out)
{
	memset(out, 0, sizeof(*out));
	if (val == NULL || len < LG_STAMP_LEN)
		return false;
	if (memcmp(val + 8, lg_magic_stamp, 8) == 0) {
		out->due_ns = get64(val);
		return true;
	}
	if (len < LG_SEQ_LEN || memcmp(val + 8, lg_magic_seq, 8) != 0)
		return false;
	out->due_ns = get64(val);
	out->has_seq = true;
	out->run = get32(val + 16);
	out->conn = get32(val + 20);
	out->partition = (int32_t)get32(val + 24);
	out->seq = get64(val + 32);
	return true;
}

void
lg_seqtab_init(struct lg_seqtab *t)
{
	memset(t, 0, sizeof(*t));
}

void
lg_seqtab_free(struct lg_seqtab *t)
{
	free(t->e);
	memset(t, 0, sizeof(*t));
}

static size_t
seq_hash(uint32_t run, uint32_t conn, int32_t partition)
{
	uint64_t x = ((uint64_t)run << 32 | conn) ^ ((uint64_t)(uint32_t)partition * 0x9e3779b97f4a7c15ull);

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return (size_t)x;
}

static struct lg_seq_entry *
seq_slot(struct lg_seq_entry *e, size_t cap, uint32_t run, uint32_t conn, int32_t partition)
{
	size_t i = seq_hash(run, conn, partition) & (cap - 1);

	while (e[i].used && !(e[i].run == run && e[i].conn == conn && e[i].partition == partition))
		i = (i + 1) & (cap - 1);
	return &e[i];
}

static int
seq_grow(struct lg_seqtab *t)
{
	size_t cap = t->cap ? t->cap * 2 : 256;
	struct lg_seq_entry *e = calloc(cap, sizeof(*e));

	if (e == NULL)
		return -1;
	for (size_t i = 0; i < t->cap; i++)
		if (t->e[i].used)
			*seq_slot(e, cap, t->e[i].run, t->e[i].conn, t->e[i].partition) = t->e[i];
	free(t->e);
	t->e = e;
	t->cap = cap;
	return 0;
}

enum lg_seq_result
lg_seq_check(struct lg_seqtab *t, int32_t partition, const struct lg_stamp *s, bool from_start,
	     uint64_t *expected)
{
	*expected = 0;
	if (s->partition != partition)
		return LG_SEQ_WRONG_PART;
	if ((t->n + 1) * 2 > t->cap && seq_grow(t) < 0)
		return LG_SEQ_NOMEM;
	struct lg_seq_entry *e = seq_slot(t->e, t->cap, s->run, s->conn, partition);
	if (!e->used) {
		e->used = true;
		e->run = s->run;
		e->conn = s->conn;
		e->partition = partition;
		e->next = s->seq + 1;
		t->n++;
		return from_start && s->seq != 0 ? LG_SEQ_GAP : LG_SEQ_FIRST;
	}
	*expected = e->next;
	if (s->seq == e->next) {
		e->next++;
		return LG_SEQ_OK;
	}
	enum lg_seq_result r = s->seq > e->next ? LG_SEQ_GAP : LG_SEQ_BACKWARDS;
	if (s->seq > e->next)
		e->next = s->seq + 1; /* resynchronise: report each break once */
	return r;
}
