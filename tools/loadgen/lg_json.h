/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small streaming JSON writer for the load generator's report: objects and
 * arrays nest up to LG_JSON_MAX_DEPTH, commas are placed automatically,
 * strings are escaped (RFC 8259 section 7), and numbers that JSON cannot hold
 * (NaN, infinities) are written as null. Every value function takes the
 * member name, or NULL inside an array.
 *
 * Errors are sticky: the first misuse (too deep, end without begin, a name
 * where none belongs or none where one is needed) or write failure sets
 * j->err to a negative errno, and lg_json_finish() returns it.
 */
#ifndef SLP_LG_JSON_H
#define SLP_LG_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define LG_JSON_MAX_DEPTH 16

struct lg_json {
	FILE *f;			/* borrowed output stream */
	int depth;			/* open objects/arrays */
	bool is_obj[LG_JSON_MAX_DEPTH]; /* container kind per level */
	bool empty[LG_JSON_MAX_DEPTH];	/* nothing written yet at this level */
	int err;			/* 0 or the first failure (-EINVAL, -EIO) */
};

/** Start writing one JSON value to @f (borrowed until lg_json_finish). */
void
lg_json_init(struct lg_json *j, FILE *f);

void
lg_json_obj_begin(struct lg_json *j, const char *name);
void
lg_json_obj_end(struct lg_json *j);
void
lg_json_arr_begin(struct lg_json *j, const char *name);
void
lg_json_arr_end(struct lg_json *j);

/** A string member/element; @s NULL writes null. @s is borrowed for the call. */
void
lg_json_str(struct lg_json *j, const char *name, const char *s);
void
lg_json_u64(struct lg_json *j, const char *name, uint64_t v);
void
lg_json_i64(struct lg_json *j, const char *name, int64_t v);
/** A number (15 significant digits); null if not finite. */
void
lg_json_f64(struct lg_json *j, const char *name, double v);
void
lg_json_bool(struct lg_json *j, const char *name, bool v);

/**
 * End the document: every container must be closed. Writes a final newline.
 * @return 0, -EINVAL for misuse (unclosed containers, bad names), -EIO when
 *   the stream failed.
 */
int
lg_json_finish(struct lg_json *j);

#endif /* SLP_LG_JSON_H */
