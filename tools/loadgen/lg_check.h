/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the load generator writes into each record value so consumers can
 * check what they read, and the checks themselves.
 *
 * Value layout (little endian), as far as the record size allows:
 *	 0  8  due time, CLOCK_MONOTONIC ns (end-to-end latency)
 *	 8  8  magic "SLPLOAD1" (stamp only) or "SLPLOAD2" (stamp + sequence)
 *	16  4  run id (random per process)
 *	20  4  producer connection index
 *	24  4  partition
 *	28  4  zero
 *	32  8  sequence number of the record within (run, connection, partition)
 * Records of at least LG_SEQ_LEN bytes carry the sequence; 16 to 39 bytes
 * the stamp only; smaller records nothing.
 *
 * A consumer checks every batch's CRC-32C, and for every sequenced record
 * that it was written to the partition it is read from and that its
 * sequence follows the previous one of the same (run, connection,
 * partition): no gap, no duplicate, no reordering. The first record of a
 * (run, connection, partition) seen must have sequence 0 when the consumer
 * reads from the log start (and may be any when it starts mid-log).
 */
#ifndef SLP_LG_CHECK_H
#define SLP_LG_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LG_STAMP_LEN 16 /* due time + magic */
#define LG_SEQ_LEN 40	/* stamp + run, connection, partition, sequence */

extern const uint8_t lg_magic_stamp[8]; /* "SLPLOAD1" */
extern const uint8_t lg_magic_seq[8];	/* "SLPLOAD2" */

/**
 * Write the stamp (and, when @len >= LG_SEQ_LEN, the sequence fields) into
 * the first bytes of a record value @val of @len bytes; nothing below
 * LG_STAMP_LEN.
 */
void
lg_stamp_write(uint8_t *val, size_t len, uint64_t due_ns, uint32_t run, uint32_t conn,
	       int32_t partition, uint64_t seq);

/** The fields of a stamped value. */
struct lg_stamp {
	uint64_t due_ns;
	bool has_seq;
	uint32_t run;
	uint32_t conn;
	int32_t partition;
	uint64_t seq;
};

/** Parse @val (@len bytes). @return true when it carries our stamp. */
bool
lg_stamp_read(const uint8_t *val, int32_t len, struct lg_stamp *out);

/* Next expected sequence per (run, connection, partition): an open-addressing table. */
struct lg_seq_entry {
	uint32_t run;
	uint32_t conn;
	int32_t partition;
	bool used;
	uint64_t next;
};

struct lg_seqtab {
	struct lg_seq_entry *e;
	size_t cap; /* power of two */
	size_t n;
};

/** Outcome of one lg_seq_check. */
enum lg_seq_result {
	LG_SEQ_OK = 0,
	LG_SEQ_FIRST,	   /* first record of its (run, connection, partition) */
	LG_SEQ_GAP,	   /* sequence ahead of the expected one: records missing */
	LG_SEQ_BACKWARDS,  /* behind it: a duplicate or a reordering */
	LG_SEQ_WRONG_PART, /* written to another partition */
	LG_SEQ_NOMEM,
};

void
lg_seqtab_init(struct lg_seqtab *t);

void
lg_seqtab_free(struct lg_seqtab *t);

/**
 * Check one sequenced record read from @partition; remembers it.
 * @param from_start  the consumer began at the log start: a first record
 *   must have sequence 0 (else LG_SEQ_GAP).
 * @param expected    set to the sequence that was expected (for messages).
 */
enum lg_seq_result
lg_seq_check(struct lg_seqtab *t, int32_t partition, const struct lg_stamp *s, bool from_start,
	     uint64_t *expected);

#endif /* SLP_LG_CHECK_H */
