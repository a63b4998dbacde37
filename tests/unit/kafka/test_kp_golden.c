/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Golden request frames captured from real Kafka clients: every file under
 * tests/data/golden/<client>/ (named <NN>_<ApiName>_v<ver>*.bin, a request
 * header + body without the 4-byte size prefix) must decode with the
 * generated codecs, be consumed to the last byte, and re-encode to exactly
 * the same bytes. With no golden files at all the test fails: a missing
 * corpus is a broken test, not a pass.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "kp_api.h"
#include "kp_wire.h"

#ifndef SLP_TEST_DATA_DIR
#error "SLP_TEST_DATA_DIR must name tests/data"
#endif

#define ARENA_BYTES (4u << 20)

static uint8_t arena_mem[ARENA_BYTES] __attribute__((aligned(64)));

static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc(n > 0 ? (size_t)n : 1);
		if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		*len = (size_t)n;
	}
	fclose(f);
	return buf;
}

/* Check one frame; returns 0 or prints why it failed and returns -1. */
static int
check_frame(const char *path)
{
	struct kp_request_header h;
	const struct kp_api_desc *d;
	struct kp_arena a;
	struct kp_reader r;
	struct kp_writer w;
	uint8_t *in, *out = NULL;
	int16_t hv = -1;
	size_t len = 0, hdr_len;
	void *body;
	int rc, ret = -1;

	in = read_file(path, &len);
	if (in == NULL) {
		print_error("%s: unreadable\n", path);
		return -1;
	}
	kp_arena_init(&a, arena_mem, sizeof(arena_mem));
	kp_reader_init(&r, in, len);
	rc = kp_request_header_read(&h, &hv, &r, &a);
	if (rc != 0) {
		print_error("%s: header decode failed: %d\n", path, rc);
		goto out;
	}
	hdr_len = len - kp_reader_remaining(&r);
	d = kp_api_lookup(h.request_api_key);
	body = kp_arena_alloc(&a, d->request.struct_size, 16);
	rc = d->request.decode(body, h.request_api_version, &r, &a);
	if (rc != 0) {
		print_error("%s: %s v%d body decode failed: %d\n", path, d->name,
			    h.request_api_version, rc);
		goto out;
	}
	if (kp_reader_remaining(&r) != 0) {
		print_error("%s: %s v%d: %zu bytes left after the body\n", path, d->name,
			    h.request_api_version, kp_reader_remaining(&r));
		goto out;
	}
	out = malloc(len + 1);
	assert_non_null(out);
	kp_writer_init(&w, out, len + 1);
	rc = kp_request_header_write(&h, &w);
	if (rc == 0)
		rc = d->request.encode(body, h.request_api_version, &w);
	if (rc != 0 || kp_writer_len(&w) != len || memcmp(out, in, len) != 0) {
		size_t at = 0;
		while (at < len && at < kp_writer_len(&w) && out[at] == in[at])
			at++;
		print_error("%s: %s v%d re-encodes differently (rc %d, %zu vs %zu bytes, first "
			    "difference at %zu)\n",
			    path, d->name, h.request_api_version, rc, kp_writer_len(&w), len, at);
		goto out;
	}
	if (d->request.size(body, h.request_api_version) != (int64_t)(len - hdr_len)) {
		print_error("%s: %s v%d: size() %lld, body is %zu bytes\n", path, d->name,
			    h.request_api_version,
			    (long long)d->request.size(body, h.request_api_version), len - hdr_len);
		goto out;
	}
	ret = 0;
out:
	free(out);
	free(in);
	return ret;
}

static void
test_golden_frames(void **state)
{
	const char *root = SLP_TEST_DATA_DIR "/golden";
	unsigned files = 0, failed = 0;
	DIR *top;
	struct dirent *ce;
	(void)state;

	top = opendir(root);
	if (top == NULL) {
		print_error("no golden directory %s: the golden frames are missing\n", root);
		fail();
	}
	while ((ce = readdir(top)) != NULL) {
		char cdir[4096];
		struct stat st;
		DIR *cd;
		struct dirent *fe;

		if (ce->d_name[0] == '.')
			continue;
		snprintf(cdir, sizeof(cdir), "%s/%s", root, ce->d_name);
		if (stat(cdir, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		cd = opendir(cdir);
		assert_non_null(cd);
		while ((fe = readdir(cd)) != NULL) {
			char path[8192];
			size_t n = strlen(fe->d_name);
			if (fe->d_name[0] == '.' || n < 4 || strcmp(fe->d_name + n - 4, ".bin") != 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", cdir, fe->d_name);
			files++;
			if (check_frame(path) != 0)
				failed++;
		}
		closedir(cd);
	}
	closedir(top);
	print_message("golden: %u frames, %u failed\n", files, failed);
	if (files == 0) {
		print_error("no tests/data/golden/*/*.bin frames found\n");
		fail();
	}
	assert_int_equal(failed, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_frames),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
