/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_frame: the Kafka framing state machine (see dp_frame.h).
 *
 * States, implied by the fields: reading into the receive buffer (large ==
 * NULL), or reading one large frame into an attached large buffer
 * (large != NULL; buf then holds no unparsed bytes, since every byte after
 * the prefix belonged to that frame). The prefix itself is consumed from buf
 * when the large buffer is attached.
 */
#include "dp_frame.h"

#include <errno.h>
#include <string.h>

void
dp_frame_init(struct dp_frame *fr, uint8_t *buf, uint32_t cap, uint32_t max_frame)
{
	memset(fr, 0, sizeof(*fr));
	fr->buf = buf;
	fr->cap = cap;
	fr->max_frame = max_frame;
}

uint32_t
dp_frame_rx_space(struct dp_frame *fr, uint8_t **p)
{
	if (fr->large != NULL) {
		*p = fr->large + fr->large_fill;
		return fr->large_size - fr->large_fill;
	}
	if (fr->tail == fr->cap && fr->head > 0) {
		memmove(fr->buf, fr->buf + fr->head, fr->tail - fr->head);
		fr->tail -= fr->head;
		fr->head = 0;
	} else if (fr->head == fr->tail) {
		fr->head = 0;
		fr->tail = 0;
	}
	*p = fr->buf + fr->tail;
	return fr->cap - fr->tail;
}

void
dp_frame_rx_commit(struct dp_frame *fr, uint32_t n)
{
	if (fr->large != NULL)
		fr->large_fill += n;
	else
		fr->tail += n;
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int
dp_frame_next(struct dp_frame *fr, const uint8_t **frame, uint32_t *len)
{
	int32_t size;

	if (fr->large != NULL) {
		if (fr->large_fill < fr->large_size)
			return 0;
		*frame = fr->large;
		*len = fr->large_size;
		return 1;
	}
	if (fr->tail - fr->head < 4)
		return 0;
	size = (int32_t)be32(fr->buf + fr->head);
	if (size <= 0) {
		fr->bad_size = size;
		return -EBADMSG;
	}
	if ((uint32_t)size > fr->max_frame) {
		fr->bad_size = size;
		return -EMSGSIZE;
	}
	if ((uint32_t)size > fr->cap - 4)
		return -ENOBUFS;
	if (fr->tail - fr->head - 4 < (uint32_t)size)
		return 0;
	*frame = fr->buf + fr->head + 4;
	*len = (uint32_t)size;
	return 1;
}

uint8_t *
dp_frame_consume(struct dp_frame *fr)
{
	uint8_t *large = fr->large;

	if (large != NULL) {
		fr->large = NULL;
		fr->large_cap = 0;
		fr->large_size = 0;
		fr->large_fill = 0;
		return large;
	}
	fr->head += 4 + be32(fr->buf + fr->head);
	if (fr->head == fr->tail) {
		fr->head = 0;
		fr->tail = 0;
	}
	return NULL;
}

void
dp_frame_attach_large(struct dp_frame *fr, uint8_t *large, uint32_t cap)
{
	uint32_t size = be32(fr->buf + fr->head);
	uint32_t have = fr->tail - fr->head - 4;

	/* have < size: a frame larger than cap - 4 cannot be complete in buf. */
	fr->large = large;
	fr->large_cap = cap;
	fr->large_size = size;
	memcpy(large, fr->buf + fr->head + 4, have);
	fr->large_fill = have;
	fr->head = 0;
	fr->tail = 0;
}

uint8_t *
dp_frame_detach_large(struct dp_frame *fr)
{
	uint8_t *large = fr->large;

	fr->large = NULL;
	fr->large_cap = 0;
	fr->large_size = 0;
	fr->large_fill = 0;
	return large;
}
