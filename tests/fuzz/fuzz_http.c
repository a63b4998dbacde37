/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the control process's HTTP request-head parser
 * (ctl_http_parse, control/ctl_http.c). Input: bytes as a client would send
 * them. Checks beyond "no crash": a result is one of the documented codes;
 * a complete head lies within the input, its method is a non-empty token,
 * its path starts with '/', and the same bytes give the same answer when
 * parsed again with trailing bytes added (a body) — the parser must not look
 * past the blank line. Inputs over the size limit must not read past it.
 * Built with libFuzzer (-Dfuzz=true) or replay_main.c over
 * tests/fuzz/corpus/http/.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_http_request r, r2;
	char *buf, *more;
	int rc;

	if (size > 4 * CTL_HTTP_MAX_REQUEST)
		return 0;
	/* An exact-size copy, so a read past the input is caught by ASan. */
	buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	rc = ctl_http_parse(buf, size, &r);
	if (rc != 0 && rc != 1 && rc != -EBADMSG && rc != -E2BIG && rc != -EPROTONOSUPPORT)
		abort();
	if (rc == 0 && size >= CTL_HTTP_MAX_REQUEST)
		abort(); /* must have given up by now */
	if (rc == 1) {
		if (r.head_len == 0 || r.head_len > size || r.head_len > CTL_HTTP_MAX_REQUEST)
			abort();
		if (r.method[0] == '\0' || r.path[0] != '/')
			abort();
		if (memchr(r.path, '?', strlen(r.path)) != NULL)
			abort();
		more = malloc(size + 16);
		if (more != NULL) {
			memcpy(more, buf, size);
			memset(more + size, 'x', 16);
			if (ctl_http_parse(more, size + 16, &r2) != 1 ||
			    r2.head_len != r.head_len || strcmp(r2.path, r.path) != 0 ||
			    strcmp(r2.query, r.query) != 0)
				abort();
			free(more);
		}
	}
	free(buf);
	return 0;
}
