/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRC-32C arithmetic for patching record batches in place (lg_run.c's
 * templates): when a few bytes of a CRC'd range change, the range's new CRC
 * is the old one XOR a term computed from the changed bytes alone, so a
 * 16 KiB batch whose record stamps and timestamps were rewritten gets its
 * exact CRC without reading the other 16 KB again.
 *
 * The arithmetic: a CRC-32C with its initial value and final XOR (Kafka's,
 * kp_crc32c) is affine in the message, crc(M) = L(M) ^ c(len). For two
 * messages of the same length, crc(M') = crc(M) ^ L(M ^ M'); when M ^ M' is
 * zero except for @len bytes d followed by @trail bytes, L(M ^ M') is the
 * raw CRC of d (initial value 0, no final XOR) times x^(8 * trail) modulo
 * the polynomial. The product is one carry-less multiplication and one
 * crc32 instruction when the CPU has them (SSE4.2 and PCLMULQDQ; the
 * multiplier is precomputed per position as x^(8 * (trail - 4)), the crc32
 * instruction's reduction supplying the other x^32), else a bitwise loop.
 * Polynomials are in the reflected representation of the CRC (bit 31 is
 * x^0, as zlib's crc32_combine has them).
 */
#ifndef SLP_LG_CRC_H
#define SLP_LG_CRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** a * b modulo the CRC-32C polynomial (reflected representation). */
uint32_t
lg_crc32c_mulmod(uint32_t a, uint32_t b);

/** x^(8 * @n) modulo the CRC-32C polynomial: appending @n zero bytes. */
uint32_t
lg_crc32c_xpow8n(uint64_t n);

/**
 * The CRC-32C (standard form, kp_crc32c's) of A followed by B, from
 * @crc_a = CRC(A), @crc_b = CRC(B) and @len_b = length of B, as zlib's
 * crc32_combine.
 */
uint32_t
lg_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/** The raw CRC-32C (initial @crc, no inversions) of @len bytes at @buf. */
uint32_t
lg_crc32c_raw(uint32_t crc, const uint8_t *buf, size_t len);

/** A position in a CRC'd range: how many bytes follow the bytes that change there. */
struct lg_crc_at {
	uint32_t op;	/* x^(8 * trail), or x^(8 * (trail - 4)) when fast */
	bool fast;	/* carry-less multiply and crc32 instruction */
};

/** Prepare @at for changes followed by @trail bytes up to the end of the range. */
void
lg_crc_at_init(struct lg_crc_at *at, uint64_t trail);

/**
 * The term to XOR into the range's CRC when the @len bytes at @at change from
 * @old to @new (both borrowed).
 */
uint32_t
lg_crc_delta(const struct lg_crc_at *at, const uint8_t *old, const uint8_t *new, size_t len);

/** True when lg_crc_delta runs on the CPU's instructions (false: a bitwise loop). */
bool
lg_crc_fast(void);

#endif /* SLP_LG_CRC_H */
