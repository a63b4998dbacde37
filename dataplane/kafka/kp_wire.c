/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The out-of-line parts of the Kafka wire primitives (kp_wire.h): arena set-up
 * and keeping unknown tagged fields. Everything on the per-field hot path is
 * inline in the header.
 */
#include "kp_wire.h"

kp_error_hook_fn kp_error_hook;

void
kp_arena_init(struct kp_arena *a, void *buf, size_t cap)
{
	a->base = (uint8_t *)buf;
	a->cap = buf != NULL ? cap : 0;
	a->used = 0;
}

int
kp_tags_add(struct kp_tags *t, uint32_t tag, const uint8_t *data, uint32_t len, uint32_t max_more,
	    struct kp_arena *a)
{
	if (t->items == NULL || t->count == 0) {
		/* max_more is bounded by the bytes left (each tag takes >= 2 bytes). */
		t->items = kp_arena_alloc(a, (size_t)max_more * sizeof(*t->items),
					  _Alignof(struct kp_raw_tag));
		if (t->items == NULL)
			return -ENOMEM;
		t->count = 0;
	}
	t->items[t->count].tag = tag;
	t->items[t->count].data.ptr = data;
	t->items[t->count].data.len = (int32_t)len;
	t->count++;
	return 0;
}
