/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_fetch_session: the incremental fetch session cache of KIP-227, used by
 * the Fetch handler (dp_fetch.c) for Fetch v7+.
 *
 * A full fetch (epoch 0) may create a session holding the partitions it
 * asked for, with their fetch offsets, max bytes and what the last response
 * said about them (high watermark, last stable offset, log start offset). The
 * client then sends incremental fetches (the session's id and epoch) naming
 * only partitions whose fetch offset or max bytes changed, plus forgotten
 * partitions; the broker answers only partitions with something new.
 *
 * Everything is preallocated by dp_fetch_session_cache_create(): a slot per
 * session (`max.incremental.fetch.session.cache.slots`) and one pool of
 * partition entries shared by all sessions. Nothing is allocated afterwards.
 * A session's id encodes its slot (id % slots), so finding a session is one
 * comparison. When every slot is used, a new session may evict one under
 * Kafka's rules (FetchSessionCache.tryEvict): the least recently used
 * session when it was unused for longer than the eviction time (120 s in
 * Kafka); otherwise the smallest evictable session, ordered by (privileged,
 * partition count, id), if it does not rank above the new session. A
 * consumer's new session may evict only sessions created longer than the
 * eviction time ago; a follower's (privileged) may also evict any
 * consumer's session.
 *
 * Not thread-safe: one cache per broker lcore, used by that lcore only.
 * Times are milliseconds on any monotonic clock, passed in by the caller.
 */
#ifndef SLP_DP_FETCH_SESSION_H
#define SLP_DP_FETCH_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kp_wire.h"

/* Kafka's FetchMetadata constants. */
#define DP_FETCH_SESSION_INVALID_ID 0
#define DP_FETCH_SESSION_INITIAL_EPOCH 0
#define DP_FETCH_SESSION_FINAL_EPOCH (-1)
/* Kafka's MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS. */
#define DP_FETCH_SESSION_EVICTION_MS 120000u
/* Longest topic name Kafka allows. */
#define DP_FETCH_SESSION_TOPIC_MAX 249

/** One partition of a session; an entry of the cache's pool. */
struct dp_fetch_session_part {
	int32_t next;            /* pool index of the session's next partition, -1 at the end */
	int32_t prev;            /* pool index of the previous one, -1 at the head */
	int32_t partition;
	int32_t max_bytes;       /* partition_max_bytes of the last request naming it */
	int64_t fetch_offset;    /* fetch_offset of the last request naming it */
	/* What the last response sent said; -1 before any response. */
	int64_t high_watermark;
	int64_t last_stable_offset;
	int64_t log_start_offset;
	struct kp_uuid topic_id; /* sessions using topic ids (v13+) */
	uint8_t name_len;        /* sessions using names (v7-12) */
	char name[DP_FETCH_SESSION_TOPIC_MAX];
};

struct dp_fetch_session {
	int32_t id;          /* 0: slot free */
	int32_t epoch;       /* the epoch the next incremental request must carry */
	bool privileged;     /* created by a follower (replica_id >= 0) */
	bool topic_ids;      /* created by Fetch v13+: partitions named by topic id */
	uint32_t size;       /* partitions */
	int32_t head;        /* pool index of the first partition, -1 if none */
	int32_t tail;
	uint64_t created_ms;
	uint64_t last_used_ms;
};

struct dp_fetch_session_cache {
	uint32_t slots;               /* max.incremental.fetch.session.cache.slots */
	uint32_t used;                /* sessions in use */
	uint32_t n_parts;             /* entries of the partition pool */
	int32_t free_part;            /* head of the pool's free list (via .next), -1 if empty */
	uint32_t parts_free;          /* entries on the free list */
	uint64_t eviction_ms;         /* see the file comment */
	uint64_t rng;                 /* xorshift state for session ids */
	uint64_t evictions;           /* sessions evicted to make room (a counter for metrics) */
	struct dp_fetch_session *sess; /* slots entries */
	struct dp_fetch_session_part *parts; /* n_parts entries */
};

/**
 * Allocate a cache of @slots sessions (0: sessions are never created) and
 * @parts partition entries shared by them, at start-up.
 * @seed varies session ids between runs (any value).
 * @return the cache (owned by the caller: dp_fetch_session_cache_destroy()), or NULL.
 */
struct dp_fetch_session_cache *
dp_fetch_session_cache_create(uint32_t slots, uint32_t parts, uint64_t eviction_ms,
	uint64_t seed);

/** Free @c and everything in it (NULL is fine). */
void
dp_fetch_session_cache_destroy(struct dp_fetch_session_cache *c);

/** The session with @id, or NULL (0 and negative ids never name one). */
struct dp_fetch_session *
dp_fetch_session_find(struct dp_fetch_session_cache *c, int32_t id);

/**
 * A new empty session for a full fetch of @size partitions, evicting one
 * (Kafka's rules, see the file comment) when every slot is used.
 * Its epoch is 1 (the one the first incremental request carries).
 * @param privileged the request came from a follower.
 * @param topic_ids the request was Fetch v13+.
 * @return the session (owned by the cache), or NULL: no slot and nothing
 *         may be evicted (the full fetch is answered with session id 0).
 */
struct dp_fetch_session *
dp_fetch_session_new(struct dp_fetch_session_cache *c, bool privileged, bool topic_ids,
	uint32_t size, uint64_t now_ms);

/** Remove @s and return its partitions to the pool. */
void
dp_fetch_session_remove(struct dp_fetch_session_cache *c, struct dp_fetch_session *s);

/** Mark @s used at @now_ms (its age for eviction). */
void
dp_fetch_session_touch(struct dp_fetch_session *s, uint64_t now_ms);

/** Kafka's FetchMetadata.nextEpoch: 1 after INT32_MAX; -1 stays -1. */
int32_t
dp_fetch_session_next_epoch(int32_t epoch);

/**
 * The partition of @s named @name (@len bytes; sessions without topic ids)
 * or @id (sessions with topic ids) and @partition, or NULL.
 */
struct dp_fetch_session_part *
dp_fetch_session_part_find(struct dp_fetch_session_cache *c, struct dp_fetch_session *s,
	const struct kp_uuid *id, const char *name, size_t len, int32_t partition);

/**
 * Add a partition to the end of @s, or update it where it is, with the
 * request's @fetch_offset and @max_bytes. A new entry's response state is
 * -1 (anything answers it). @name is copied.
 * @return 0 (*@out set when not NULL); -EINVAL (@len above 249); -ENOSPC
 *         (the partition pool is exhausted; @s is unchanged).
 */
int
dp_fetch_session_part_upsert(struct dp_fetch_session_cache *c, struct dp_fetch_session *s,
	const struct kp_uuid *id, const char *name, size_t len, int32_t partition,
	int64_t fetch_offset, int32_t max_bytes, struct dp_fetch_session_part **out);

/** Remove a partition from @s (forgotten topics); absent ones are ignored. */
void
dp_fetch_session_part_forget(struct dp_fetch_session_cache *c, struct dp_fetch_session *s,
	const struct kp_uuid *id, const char *name, size_t len, int32_t partition);

/** The partition at pool index @i (from a session's head or a part's next), or NULL for -1. */
static inline struct dp_fetch_session_part *
dp_fetch_session_part_at(struct dp_fetch_session_cache *c, int32_t i)
{
	return i < 0 ? NULL : &c->parts[i];
}

/**
 * Whether an incremental response must carry partition @p (Kafka's
 * CachedPartition.maybeUpdateResponseData): @error is not 0, @has_records,
 * or the high watermark, last stable offset or log start offset differ
 * from what was last sent. Does not change @p.
 */
bool
dp_fetch_session_part_must_respond(const struct dp_fetch_session_part *p, int16_t error,
	bool has_records, int64_t high_watermark, int64_t last_stable_offset,
	int64_t log_start_offset);

/**
 * Move @p to the end of @s's order: Kafka's incremental fetch moves a
 * partition that returned records behind the others, so partitions that
 * got nothing come first in the next response (fairness under max_bytes).
 */
void
dp_fetch_session_part_move_last(struct dp_fetch_session_cache *c, struct dp_fetch_session *s,
	struct dp_fetch_session_part *p);

/** Remember what a response sent for @p. */
void
dp_fetch_session_part_sent(struct dp_fetch_session_part *p, int64_t high_watermark,
	int64_t last_stable_offset, int64_t log_start_offset);

#endif /* SLP_DP_FETCH_SESSION_H */
