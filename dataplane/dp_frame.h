/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_frame: Kafka request framing over a byte stream.
 *
 * A Kafka request is a 4-byte big-endian size followed by that many bytes.
 * dp_frame is a resumable state machine, independent of the transport: the
 * transport asks where to put received bytes (dp_frame_rx_space()), says how
 * many arrived (dp_frame_rx_commit()), then takes whole frames out with
 * dp_frame_next()/dp_frame_consume(). Frames that fit the connection's
 * receive buffer are handed out in place (no copy); a larger one needs a
 * large buffer attached by the caller (dp_frame_attach_large()), into which
 * the rest of that frame is read directly. A size <= 0 or above the limit is
 * a protocol violation: the caller closes the connection.
 *
 * Ownership: the receive buffer and any attached large buffer belong to the
 * caller; dp_frame only records where bytes are. A frame returned by
 * dp_frame_next() is borrowed until dp_frame_consume().
 */
#ifndef SLP_DP_FRAME_H
#define SLP_DP_FRAME_H

#include <stdbool.h>
#include <stdint.h>

struct dp_frame {
	uint8_t *buf;        /* receive buffer (borrowed) */
	uint32_t cap;        /* bytes in buf */
	uint32_t head;       /* first unparsed byte in buf */
	uint32_t tail;       /* one past the last received byte in buf */
	uint32_t max_frame;  /* largest accepted size (bytes after the prefix) */
	uint8_t *large;      /* attached large buffer, or NULL (borrowed) */
	uint32_t large_cap;  /* bytes in large */
	uint32_t large_size; /* size of the frame being read into large */
	uint32_t large_fill; /* bytes of it received so far */
	int32_t bad_size;    /* the size prefix that made dp_frame_next() fail */
};

/** Set up @fr over @buf of @cap bytes, accepting frames up to @max_frame bytes. */
void dp_frame_init(struct dp_frame *fr, uint8_t *buf, uint32_t cap, uint32_t max_frame);

/**
 * Where the next received bytes go.
 *
 * Moves unparsed bytes to the front of the receive buffer when that makes
 * room. While a large frame is read, points into the large buffer and never
 * past the end of that frame.
 *
 * @return the number of bytes that may be written at *@p (0 when the buffer
 *         is full of frames not consumed yet, or a large buffer is needed).
 */
uint32_t dp_frame_rx_space(struct dp_frame *fr, uint8_t **p);

/** Record that @n bytes were written at the place dp_frame_rx_space() gave. */
void dp_frame_rx_commit(struct dp_frame *fr, uint32_t n);

/**
 * Look for the next complete frame.
 *
 * @param frame  receives the frame bytes (after the size prefix), borrowed
 * @param len    receives the frame size
 * @return 1 with a frame; 0 when more bytes are needed; -ENOBUFS when the
 *         frame is larger than the receive buffer and no large buffer is
 *         attached (attach one, then call again); -EMSGSIZE for a size above
 *         the limit; -EBADMSG for a size <= 0 (fr->bad_size holds the size).
 */
int dp_frame_next(struct dp_frame *fr, const uint8_t **frame, uint32_t *len);

/**
 * Drop the frame last returned by dp_frame_next().
 *
 * @return the large buffer that held it, now free for the caller to
 *         recycle, or NULL when it was in the receive buffer.
 */
uint8_t *dp_frame_consume(struct dp_frame *fr);

/**
 * Attach a large buffer of @cap bytes (>= the pending frame size) after
 * dp_frame_next() returned -ENOBUFS. The bytes of the frame already received
 * are copied into it.
 */
void dp_frame_attach_large(struct dp_frame *fr, uint8_t *large, uint32_t cap);

/** Take back the large buffer, if any (for closing a connection). */
uint8_t *dp_frame_detach_large(struct dp_frame *fr);

/** Bytes received and not consumed (both buffers). */
static inline uint32_t
dp_frame_buffered(const struct dp_frame *fr)
{
	return fr->tail - fr->head + fr->large_fill;
}

#endif /* SLP_DP_FRAME_H */
