/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the generated request codecs. Input: one request frame
 * (request header + body, no size prefix). Decode the header, then the body
 * for its api key and version; when both decode, re-encode them and abort if
 * size() disagrees with the bytes written or the bytes differ from the input
 * (a decoded request must re-encode exactly: strict varints, strict bools,
 * ascending tags and exact tag sizes make that hold). Built with libFuzzer
 * (-Dfuzz=true) or with replay_main.c over tests/fuzz/corpus/request/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_api.h"
#include "kp_wire.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small on purpose: a fuzzed count must hit -ENOMEM or -EPROTO, never a big allocation. */
static uint8_t arena_mem[1 << 18] __attribute__((aligned(64)));

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kp_request_header h;
	const struct kp_api_desc *d;
	struct kp_arena a;
	struct kp_reader r;
	struct kp_writer w;
	uint8_t *out;
	size_t hdr_len;
	int64_t body_size;
	void *body;

	kp_arena_init(&a, arena_mem, sizeof(arena_mem));
	kp_reader_init(&r, data, size);
	if (kp_request_header_read(&h, NULL, &r, &a) != 0)
		return 0;
	hdr_len = size - kp_reader_remaining(&r);
	d = kp_api_lookup(h.request_api_key);
	body = kp_arena_alloc(&a, d->request.struct_size, 16);
	if (body == NULL)
		abort();
	if (d->request.decode(body, h.request_api_version, &r, &a) != 0)
		return 0;

	body_size = d->request.size(body, h.request_api_version);
	if (body_size < 0 || (size_t)body_size != size - hdr_len - kp_reader_remaining(&r)) {
		fprintf(stderr, "fuzz_request: %s v%d: size() %lld != %zu decoded bytes\n", d->name,
			h.request_api_version, (long long)body_size,
			size - hdr_len - kp_reader_remaining(&r));
		abort();
	}
	out = malloc(size + 1);
	if (out == NULL)
		return 0;
	kp_writer_init(&w, out, size + 1);
	if (kp_request_header_write(&h, &w) != 0 ||
	    d->request.encode(body, h.request_api_version, &w) != 0 ||
	    kp_writer_len(&w) != size - kp_reader_remaining(&r) ||
	    memcmp(out, data, kp_writer_len(&w)) != 0) {
		fprintf(stderr, "fuzz_request: %s v%d: re-encoding differs from the input\n",
			d->name, h.request_api_version);
		abort();
	}
	free(out);
	return 0;
}
