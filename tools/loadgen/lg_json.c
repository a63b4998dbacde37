/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streaming JSON writer (see lg_json.h).
 */
#include "lg_json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>

void
lg_json_init(struct lg_json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	j->err = 0;
}

static void
json_fail(struct lg_json *j, int err)
{
	if (j->err == 0)
		j->err = err;
}

static void
json_put_string(struct lg_json *j, const char *s)
{
	fputc('"', j->f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", j->f);
			break;
		case '\\':
			fputs("\\\\", j->f);
			break;
		case '\n':
			fputs("\\n", j->f);
			break;
		case '\r':
			fputs("\\r", j->f);
			break;
		case '\t':
			fputs("\\t", j->f);
			break;
		default:
			if (*p < 0x20)
				fprintf(j->f, "\\u%04x", *p);
			else
				fputc(*p, j->f);
		}
	}
	fputc('"', j->f);
}

/* Separator and member name before a value; false (and err set) on misuse. */
static bool
json_prefix(struct lg_json *j, const char *name)
{
	if (j->err)
		return false;
	if (j->depth == 0) {
		if (name != NULL) {
			json_fail(j, -EINVAL);
			return false;
		}
		return true;
	}
	int d = j->depth - 1;
	if (j->is_obj[d] != (name != NULL)) {
		json_fail(j, -EINVAL);
		return false;
	}
	if (!j->empty[d])
		fputc(',', j->f);
	j->empty[d] = false;
	if (name != NULL) {
		json_put_string(j, name);
		fputc(':', j->f);
	}
	return true;
}

static void
json_open(struct lg_json *j, const char *name, bool obj)
{
	if (!json_prefix(j, name))
		return;
	if (j->depth >= LG_JSON_MAX_DEPTH) {
		json_fail(j, -EINVAL);
		return;
	}
	j->is_obj[j->depth] = obj;
	j->empty[j->depth] = true;
	j->depth++;
	fputc(obj ? '{' : '[', j->f);
}

static void
json_close(struct lg_json *j, bool obj)
{
	if (j->err)
		return;
	if (j->depth == 0 || j->is_obj[j->depth - 1] != obj) {
		json_fail(j, -EINVAL);
		return;
	}
	j->depth--;
	fputc(obj ? '}' : ']', j->f);
}

void
lg_json_obj_begin(struct lg_json *j, const char *name)
{
	json_open(j, name, true);
}

void
lg_json_obj_end(struct lg_json *j)
{
	json_close(j, true);
}

void
lg_json_arr_begin(struct lg_json *j, const char *name)
{
	json_open(j, name, false);
}

void
lg_json_arr_end(struct lg_json *j)
{
	json_close(j, false);
}

void
lg_json_str(struct lg_json *j, const char *name, const char *s)
{
	if (!json_prefix(j, name))
		return;
	if (s == NULL)
		fputs("null", j->f);
	else
		json_put_string(j, s);
}

void
lg_json_u64(struct lg_json *j, const char *name, uint64_t v)
{
	if (json_prefix(j, name))
		fprintf(j->f, "%" PRIu64, v);
}

void
lg_json_i64(struct lg_json *j, const char *name, int64_t v)
{
	if (json_prefix(j, name))
		fprintf(j->f, "%" PRId64, v);
}

void
lg_json_f64(struct lg_json *j, const char *name, double v)
{
	if (!json_prefix(j, name))
		return;
	if (!isfinite(v))
		fputs("null", j->f);
	else
		fprintf(j->f, "%.15g", v);
}

void
lg_json_bool(struct lg_json *j, const char *name, bool v)
{
	if (json_prefix(j, name))
		fputs(v ? "true" : "false", j->f);
}

int
lg_json_finish(struct lg_json *j)
{
	if (j->err == 0 && j->depth != 0)
		json_fail(j, -EINVAL);
	fputc('\n', j->f);
	if (fflush(j->f) != 0 || ferror(j->f))
		json_fail(j, -EIO);
	return j->err;
}
