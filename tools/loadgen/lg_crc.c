/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRC-32C arithmetic for patching batches in place (see lg_crc.h): products
 * modulo the polynomial, powers x^(8n) from a table of x^(2^k), zlib-style
 * combine, and the change of a range's CRC from a few rewritten bytes, with
 * the carry-less multiply and crc32 instructions on x86-64 CPUs that have
 * them.
 */
#include "lg_crc.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define LG_CRC_X86 1
#endif

#define LG_CRC32C_POLY 0x82F63B78u /* reflected Castagnoli polynomial */

uint32_t
lg_crc32c_mulmod(uint32_t a, uint32_t b)
{
	uint32_t p = 0;

	/* Bit 31 of a is x^0: each step down multiplies b by x. */
	for (int i = 31; i >= 0; i--) {
		if (a & (1u << i))
			p ^= b;
		b = (b & 1) ? (b >> 1) ^ LG_CRC32C_POLY : b >> 1;
	}
	return p;
}

static uint32_t x2n[64]; /* x^(2^k) modulo the polynomial */
static pthread_once_t x2n_once = PTHREAD_ONCE_INIT;

static void
x2n_init(void)
{
	uint32_t p = 1u << 30; /* x^1 */

	for (int k = 0; k < 64; k++) {
		x2n[k] = p;
		p = lg_crc32c_mulmod(p, p);
	}
}

/*
 * The powers last computed, per thread: lg_tmpl_learn() asks for one per
 * record of every batch it learns, and at linger 0 (a request's batches
 * hold 1-6 records, a different count each time) it learns on most
 * requests: the bitwise products were 13% of the load generator at 500,000
 * records/s. Batch sizes repeat, so their trails do.
 */
#define XPOW_MEMO 256
static __thread struct {
	uint64_t n; /* n + 1: 0 is an empty entry */
	uint32_t p;
} xpow_memo[XPOW_MEMO];

uint32_t
lg_crc32c_xpow8n(uint64_t n)
{
	uint32_t p = 1u << 31; /* x^0 */
	unsigned int k = 3;    /* 8n = n * 2^3 */
	unsigned slot = (unsigned)((n * 0x9E3779B97F4A7C15ull) >> 56) % XPOW_MEMO;

	if (xpow_memo[slot].n == n + 1)
		return xpow_memo[slot].p;
	pthread_once(&x2n_once, x2n_init);
	xpow_memo[slot].n = 0;
	for (uint64_t m = n; m != 0 && k < 64; m >>= 1, k++) {
		if (m & 1)
			p = lg_crc32c_mulmod(x2n[k], p);
	}
	xpow_memo[slot].p = p;
	xpow_memo[slot].n = n + 1;
	return p;
}

uint32_t
lg_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	return lg_crc32c_mulmod(lg_crc32c_xpow8n(len_b), crc_a) ^ crc_b;
}

static uint32_t
raw_soft(uint32_t crc, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		crc ^= buf[i];
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ LG_CRC32C_POLY : crc >> 1;
	}
	return crc;
}

#ifdef LG_CRC_X86
__attribute__((target("sse4.2"))) static uint32_t
raw_hw(uint32_t crc, const uint8_t *buf, size_t len)
{
	uint64_t c = crc;

	while (len >= 8) {
		uint64_t w;
		memcpy(&w, buf, 8);
		c = _mm_crc32_u64(c, w);
		buf += 8;
		len -= 8;
	}
	while (len-- > 0)
		c = _mm_crc32_u8((uint32_t)c, *buf++);
	return (uint32_t)c;
}

/* r * op * x^32 modulo the polynomial: the 63-bit carry-less product, shifted
 * to the 64-bit reflected message the crc32 instruction reduces (times x^32). */
__attribute__((target("sse4.2,pclmul"))) static uint32_t
mul_hw(uint32_t r, uint32_t op)
{
	__m128i p = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)r), _mm_cvtsi32_si128((int)op), 0);
	uint64_t v = (uint64_t)_mm_cvtsi128_si64(p) << 1;

	return (uint32_t)_mm_crc32_u64(0, v);
}
#endif

static int
cpu_fast(void)
{
#ifdef LG_CRC_X86
	static int cached = -1;

	if (cached < 0) {
		__builtin_cpu_init();
		cached = __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul");
	}
	return cached;
#else
	return 0;
#endif
}

bool
lg_crc_fast(void)
{
	return cpu_fast() != 0;
}

uint32_t
lg_crc32c_raw(uint32_t crc, const uint8_t *buf, size_t len)
{
#ifdef LG_CRC_X86
	if (cpu_fast())
		return raw_hw(crc, buf, len);
#endif
	return raw_soft(crc, buf, len);
}

void
lg_crc_at_init(struct lg_crc_at *at, uint64_t trail)
{
	at->fast = cpu_fast() && trail >= 4;
	at->op = lg_crc32c_xpow8n(at->fast ? trail - 4 : trail);
}

uint32_t
lg_crc_delta(const struct lg_crc_at *at, const uint8_t *old, const uint8_t *new, size_t len)
{
	uint8_t d[64];
	uint32_t r = 0;

	for (size_t off = 0; off < len; off += sizeof(d)) {
		size_t n = len - off < sizeof(d) ? len - off : sizeof(d);
		for (size_t i = 0; i < n; i++)
			d[i] = old[off + i] ^ new[off + i];
		r = lg_crc32c_raw(r, d, n);
	}
#ifdef LG_CRC_X86
	if (at->fast)
		return mul_hw(r, at->op);
#endif
	return lg_crc32c_mulmod(at->op, r);
}
