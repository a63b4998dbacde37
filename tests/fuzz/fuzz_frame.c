/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for dp_frame, the Kafka request framer both transports feed
 * (dataplane/dp_frame.c, no EAL needed): a byte stream received in pieces of
 * fuzzed sizes, as a transport reads it (dp_frame_rx_space(), a copy,
 * dp_frame_rx_commit(), then every frame dp_frame_next() gives), with a
 * large buffer attached when a frame needs one.
 *
 * Input: [config][n][n piece sizes][stream]
 *   config bits 0-2  receive buffer size: 8, 9, 12, 16, 31, 64, 100, 256
 *          bits 3-4  largest frame: the receive buffer - 4, 4 x it, 1000, 5000
 *          bits 5-7  pieces read after a frame asked for a large buffer and
 *                    before one is attached (the kernel transport keeps
 *                    reading into the receive buffer while it waits)
 *   n                piece sizes that follow (each 1-255, 0 meaning 256),
 *                    used in turn, again from the first when all are used;
 *                    none: every read fills all the room there is
 *   stream           the bytes received: size prefixes as they come
 *
 * Checked against a plain reference parse of the stream: every frame comes
 * out whole, in order, with its bytes; a size <= 0 or above the limit is
 * reported as such at the right frame, never earlier or later; the bytes
 * dp_frame_buffered() counts are those received and not consumed; the room
 * dp_frame_rx_space() gives lies inside the buffer it points into, and is
 * never 0 while no frame is complete (a transport would wait for ever: the
 * shape of the hang fixed in 6f286e7). Built with libFuzzer (-Dfuzz=true) or
 * with replay_main.c over tests/fuzz/corpus/frame/.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_frame.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                                     \
	do {                                                                          \
		fprintf(stderr, "fuzz_frame: " __VA_ARGS__);                          \
		fputc('\n', stderr);                                                  \
		abort();                                                              \
	} while (0)

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t caps[8] = {8, 9, 12, 16, 31, 64, 100, 256};
	const uint8_t *pieces, *stream;
	size_t n_pieces, len, off = 0, ref = 0, k = 0;
	uint32_t cap, max_frame, delay, waited = 0;
	uint8_t *buf, *large;
	bool attached = false, asked = false;
	struct dp_frame fr;

	if (size < 2)
		return 0;
	cap = caps[data[0] & 7];
	switch ((data[0] >> 3) & 3) {
	case 0:
		max_frame = cap - 4;
		break;
	case 1:
		max_frame = 4 * cap;
		break;
	case 2:
		max_frame = 1000;
		break;
	default:
		max_frame = 5000;
		break;
	}
	delay = data[0] >> 5;
	n_pieces = data[1];
	if (size < 2 + n_pieces)
		return 0;
	pieces = data + 2;
	stream = pieces + n_pieces;
	len = size - 2 - n_pieces;
	/* Exact sizes: ASan sees any byte written or read outside them. */
	buf = malloc(cap);
	large = malloc(max_frame);
	if (buf == NULL || large == NULL)
		abort();
	dp_frame_init(&fr, buf, cap, max_frame);

	for (;;) {
		uint32_t expect_buffered, space, n;
		uint8_t *p;

		/* Every frame complete now. */
		for (;;) {
			const uint8_t *frame;
			uint32_t flen;
			bool have = off - ref >= 4; /* the next frame's size prefix is here */
			int64_t rsize = have ? (int32_t)be32(stream + ref) : 0;
			int rc = dp_frame_next(&fr, &frame, &flen);

			if (rc == 1) {
				if (!have || rsize <= 0 || (uint64_t)rsize != flen ||
					ref + 4 + flen > off)
					FAIL("frame at %zu: %u bytes, the stream says %lld",
						ref, flen, (long long)rsize);
				if (memcmp(frame, stream + ref + 4, flen) != 0)
					FAIL("frame at %zu: its bytes differ", ref);
				ref += 4 + (size_t)flen;
				if (dp_frame_consume(&fr) != (attached ? large : NULL))
					FAIL("consume returned the wrong buffer");
				attached = false;
				asked = false;
				continue;
			}
			if (rc == -EBADMSG || rc == -EMSGSIZE) {
				bool bad = rsize <= 0 || (uint64_t)rsize > max_frame;

				if (!have || !bad || fr.bad_size != (int32_t)rsize ||
					(rc == -EBADMSG) != (rsize <= 0))
					FAIL("%d at %zu, the stream says size %lld", rc, ref,
						(long long)rsize);
				goto out; /* the connection closes */
			}
			if (rc == -ENOBUFS) {
				if (!have || rsize <= 0 || (uint64_t)rsize <= cap - 4 ||
					(uint64_t)rsize > max_frame || attached)
					FAIL("-ENOBUFS at %zu, the stream says size %lld", ref,
						(long long)rsize);
				if (!asked) {
					asked = true;
					waited = 0;
				}
				if (waited < delay)
					break; /* no large buffer yet: read on */
				dp_frame_attach_large(&fr, large, max_frame);
				attached = true;
				continue;
			}
			if (rc != 0)
				FAIL("dp_frame_next: %d", rc);
			/* More bytes needed: the stream must agree. */
			if (have && rsize > 0 && (uint64_t)rsize <= max_frame &&
				ref + 4 + (size_t)rsize <= off)
				FAIL("a whole frame at %zu (%lld bytes) not given", ref,
					(long long)rsize);
			if (have && (rsize <= 0 || (uint64_t)rsize > max_frame))
				FAIL("bad size %lld at %zu not reported", (long long)rsize, ref);
			break;
		}
		/* Received and not consumed; a large frame's prefix was consumed at attach. */
		expect_buffered = (uint32_t)(off - ref) - (attached ? 4 : 0);
		if (dp_frame_buffered(&fr) != expect_buffered)
			FAIL("buffered %u, received and not consumed %u", dp_frame_buffered(&fr),
				expect_buffered);
		if (off == len)
			break;
		space = dp_frame_rx_space(&fr, &p);
		if (attached ? (p < large || p + space > large + max_frame) :
			       (p < buf || p + space > buf + cap))
			FAIL("rx_space: %u bytes at offset %td of the %s buffer", space,
				p - (attached ? large : buf), attached ? "large" : "receive");
		if (space == 0) {
			if (asked && !attached) {
				waited = delay; /* full, waiting for a large buffer: one comes */
				continue;
			}
			FAIL("no room and no complete frame at %zu (%zu received)", ref, off);
		}
		n = space;
		if (n_pieces > 0) {
			n = pieces[k++ % n_pieces];
			if (n == 0)
				n = 256;
		}
		if (n > space)
			n = space;
		if (n > len - off)
			n = (uint32_t)(len - off);
		memcpy(p, stream + off, n);
		dp_frame_rx_commit(&fr, n);
		off += n;
		if (asked && !attached)
			waited++;
	}
out:
	free(buf);
	free(large);
	return 0;
}
