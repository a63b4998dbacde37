/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_fetch_session: the KIP-227 fetch session cache (see the header). Slots
 * and partition entries are allocated once; a session's partitions are a
 * doubly linked list through the pool, in the order they were added (the
 * order of the responses). Lookups of a partition inside a session are a
 * walk of its list: fine for the tens to hundreds of partitions a consumer
 * fetches from one broker, quadratic for huge sessions (no index yet).
 */
#include "dp_fetch_session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct dp_fetch_session_cache *
dp_fetch_session_cache_create(uint32_t slots, uint32_t parts, uint64_t eviction_ms,
	uint64_t seed)
{
	struct dp_fetch_session_cache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if (slots > (uint32_t)INT32_MAX / 2 || parts > (uint32_t)INT32_MAX)
		goto fail;
	c->slots = slots;
	c->n_parts = parts;
	c->eviction_ms = eviction_ms;
	c->rng = seed != 0 ? seed : 0x9e3779b97f4a7c15ull;
	c->sess = calloc(slots > 0 ? slots : 1, sizeof(*c->sess));
	c->parts = calloc(parts > 0 ? parts : 1, sizeof(*c->parts));
	if (c->sess == NULL || c->parts == NULL)
		goto fail;
	for (uint32_t i = 0; i < parts; i++)
		c->parts[i].next = i + 1 < parts ? (int32_t)(i + 1) : -1;
	c->free_part = parts > 0 ? 0 : -1;
	c->parts_free = parts;
	return c;
fail:
	dp_fetch_session_cache_destroy(c);
	return NULL;
}

void
dp_fetch_session_cache_destroy(struct dp_fetch_session_cache *c)
{
	if (c == NULL)
		return;
	free(c->sess);
	free(c->parts);
	free(c);
}

struct dp_fetch_session *
dp_fetch_session_find(struct dp_fetch_session_cache *c, int32_t id)
{
	struct dp_fetch_session *s;

	if (id <= 0 || c->slots == 0)
		return NULL;
	s = &c->sess[(uint32_t)id % c->slots];
	return s->id == id ? s : NULL;
}

int32_t
dp_fetch_session_next_epoch(int32_t epoch)
{
	if (epoch < 0)
		return DP_FETCH_SESSION_FINAL_EPOCH;
	if (epoch == INT32_MAX)
		return 1;
	return epoch + 1;
}

void
dp_fetch_session_touch(struct dp_fetch_session *s, uint64_t now_ms)
{
	s->last_used_ms = now_ms;
}

/* Kafka's EvictableKey order: privileged, then size, then id. */
static int
evictable_cmp(bool pa, uint32_t sa, int32_t ia, bool pb, uint32_t sb, int32_t ib)
{
	if (pa != pb)
		return pa ? 1 : -1;
	if (sa != sb)
		return sa < sb ? -1 : 1;
	if (ia != ib)
		return ia < ib ? -1 : 1;
	return 0;
}

/*
 * Kafka keeps two evictable sets, updated when a session is touched:
 * evictableByAll holds sessions older than the eviction time at their last
 * use, evictableByPrivileged those plus every unprivileged session.
 */
static bool
evictable_by(const struct dp_fetch_session_cache *c, const struct dp_fetch_session *s,
	bool privileged)
{
	bool old = s->last_used_ms - s->created_ms > c->eviction_ms;

	return old || (privileged && !s->privileged);
}

/* FetchSessionCache.tryEvict: free one slot for a new session of @size, or false. */
static bool
try_evict(struct dp_fetch_session_cache *c, bool privileged, uint32_t size, uint64_t now_ms)
{
	struct dp_fetch_session *lru = NULL;
	struct dp_fetch_session *least = NULL;

	for (uint32_t i = 0; i < c->slots; i++) {
		struct dp_fetch_session *s = &c->sess[i];

		if (s->id == 0)
			continue;
		if (lru == NULL || s->last_used_ms < lru->last_used_ms ||
			(s->last_used_ms == lru->last_used_ms && s->id < lru->id))
			lru = s;
		if (evictable_by(c, s, privileged) &&
			(least == NULL || evictable_cmp(s->privileged, s->size, s->id,
				least->privileged, least->size, least->id) < 0))
			least = s;
	}
	if (lru == NULL)
		return false;
	if (now_ms > lru->last_used_ms && now_ms - lru->last_used_ms > c->eviction_ms) {
		dp_fetch_session_remove(c, lru); /* stale */
		c->evictions++;
		return true;
	}
	/* The new session's key has id 0: it must rank at or above the evicted one. */
	if (least == NULL ||
		evictable_cmp(privileged, size, 0, least->privileged, least->size, least->id) < 0)
		return false;
	dp_fetch_session_remove(c, least);
	c->evictions++;
	return true;
}

static uint32_t
rng_next(struct dp_fetch_session_cache *c)
{
	uint64_t x = c->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	c->rng = x;
	return (uint32_t)(x >> 32);
}

struct dp_fetch_session *
dp_fetch_session_new(struct dp_fetch_session_cache *c, bool privileged, bool topic_ids,
	uint32_t size, uint64_t now_ms)
{
	struct dp_fetch_session *s = NULL;
	uint32_t slot;
	uint32_t hi;
	int32_t id;

	if (c->slots == 0)
		return NULL;
	if (c->used == c->slots && !try_evict(c, privileged, size, now_ms))
		return NULL;
	/* Start the search for a free slot at a random one, so ids are not sequential. */
	slot = rng_next(c) % c->slots;
	for (uint32_t k = 0; k < c->slots && s == NULL; k++) {
		uint32_t i = (slot + k) % c->slots;

		if (c->sess[i].id == 0)
			s = &c->sess[i];
	}
	if (s == NULL)
		return NULL;
	slot = (uint32_t)(s - c->sess);
	/* id % slots == slot, 0 < id <= INT32_MAX, random above the slot. */
	do {
		hi = rng_next(c) % (((uint32_t)INT32_MAX - slot) / c->slots + 1);
		id = (int32_t)(hi * c->slots + slot);
	} while (id == 0);
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->epoch = dp_fetch_session_next_epoch(DP_FETCH_SESSION_INITIAL_EPOCH);
	s->privileged = privileged;
	s->topic_ids = topic_ids;
	s->head = -1;
	s->tail = -1;
	s->created_ms = now_ms;
	s->last_used_ms = now_ms;
	c->used++;
	return s;
}

static void
part_unlink(struct dp_fetch_session_cache *c, struct dp_fetch_session *s, int32_t i)
{
	struct dp_fetch_session_part *p = &c->parts[i];

	if (p->prev >= 0)
		c->parts[p->prev].next = p->next;
	else
		s->head = p->next;
	if (p->next >= 0)
		c->parts[p->next].prev = p->prev;
	else
		s->tail = p->prev;
	p->next = c->free_part;
	p->prev = -1;
	c->free_part = i;
	c->parts_free++;
	s->size--;
}

void
dp_fetch_session_remove(struct dp_fetch_session_cache *c, struct dp_fetch_session *s)
{
	if (s->id == 0)
		return;
	while (s->head >= 0)
		part_unlink(c, s, s->head);
	s->id = 0;
	c->used--;
}

static bool
part_is(const struct dp_fetch_session *s, const struct dp_fetch_session_part *p,
	const struct kp_uuid *id, const char *name, size_t len, int32_t partition)
{
	if (p->partition != partition)
		return false;
	if (s->topic_ids)
		return memcmp(p->topic_id.b, id->b, sizeof(id->b)) == 0;
	return p->name_len == len && memcmp(p->name, name, len) == 0;
}

struct dp_fetch_session_part *
dp_fetch_session_part_find(struct dp_fetch_session_cache *c, struct dp_fetch_session *s,
	const struct kp_uuid *id, const char *name, size_t len, int32_t partition)
{
	for (int32_t i = s->head; i >= 0; i = c->parts[i].next) {
		if (part_is(s, &c->parts[i], id, name, len, partition))
			return &c->parts[i];
	}
	return NULL;
}

int
dp_fetch_session_part_upsert(struct dp_fetch_session_cache *c, struct dp_fetch_session *s,
	const struct kp_uuid *id, const char *name, size_t len, int32_t partition,
	int64_t fetch_offset, int32_t max_bytes, struct dp_fetch_session_part **out)
{
	struct dp_fetch_session_part *p;
	int32_t i;

	if (!s->topic_ids && len > DP_FETCH_SESSION_TOPIC_MAX)
		return -EINVAL;
	p = dp_fetch_session_part_find(c, s, id, name, len, partition);
	if (p == NULL) {
		if (c->free_part < 0)
			return -ENOSPC;
		i = c->free_part;
		p = &c->parts[i];
		c->free_part = p->next;
		c->parts_free--;
		memset(p, 0, sizeof(*p));
		p->partition = partition;
		if (s->topic_ids) {
			p->topic_id = *id;
		} else {
			p->name_len = (uint8_t)len;
			if (len > 0)
				memcpy(p->name, name, len);
		}
		p->high_watermark = -1;
		p->last_stable_offset = -1;
		p->log_start_offset = -1;
		p->next = -1;
		p->prev = s->tail;
		if (s->tail >= 0)
			c->parts[s->tail].next = i;
		else
			s->head = i;
		s->tail = i;
		s->size++;
	}
	p->fetch_offset = fetch_offset;
	p->max_bytes = max_bytes;
	if (out != NULL)
		*out = p;
	return 0;
}

void
dp_fetch_session_part_forget(struct dp_fetch_session_cache *c, struct dp_fetch_session *s,
	const struct kp_uuid *id, const char *name, size_t len, int32_t partition)
{
	struct dp_fetch_session_part *p;

	p = dp_fetch_session_part_find(c, s, id, name, len, partition);
	if (p != NULL)
		part_unlink(c, s, (int32_t)(p - c->parts));
}

void
dp_fetch_session_part_move_last(struct dp_fetch_session_cache *c, struct dp_fetch_session *s,
	struct dp_fetch_session_part *p)
{
	int32_t i = (int32_t)(p - c->parts);

	if (s->tail == i)
		return;
	/* Unlink (not the tail, so p->next >= 0), then append. */
	if (p->prev >= 0)
		c->parts[p->prev].next = p->next;
	else
		s->head = p->next;
	c->parts[p->next].prev = p->prev;
	p->prev = s->tail;
	p->next = -1;
	c->parts[s->tail].next = i;
	s->tail = i;
}

bool
dp_fetch_session_part_must_respond(const struct dp_fetch_session_part *p, int16_t error,
	bool has_records, int64_t high_watermark, int64_t last_stable_offset,
	int64_t log_start_offset)
{
	return error != 0 || has_records || p->high_watermark != high_watermark ||
		p->last_stable_offset != last_stable_offset ||
		p->log_start_offset != log_start_offset;
}

void
dp_fetch_session_part_sent(struct dp_fetch_session_part *p, int64_t high_watermark,
	int64_t last_stable_offset, int64_t log_start_offset)
{
	p->high_watermark = high_watermark;
	p->last_stable_offset = last_stable_offset;
	p->log_start_offset = log_start_offset;
}
