/* SPDX-License-Identifier: Apache-2.0 */
/*
 * np: shared definitions of slipstream-netperf, a DPDK tool that runs the
 * dataplane's TCP/IP stack (dataplane/net) on one port as a test server or
 * a load client. The wire protocol between client and server is described
 * here so that other clients (the Python ones of tests/integration) speak it
 * too.
 *
 * Every connection starts with a 16-byte header from the client, fields in
 * network order:
 *	u32 magic (NP_MAGIC)  u8 mode  u8 flags  u16 pause_ms  u64 bytes
 * Modes:
 *  NP_ECHO    the server sends back every byte after the header, until the
 *             client's FIN; then it closes (so a client's half-close is
 *             answered by the rest of the echo and then FIN).
 *  NP_SINK    the server reads `bytes` bytes (0 = until FIN), checks each
 *             against np_pattern(offset), answers a 16-byte report
 *             (u32 NP_REPORT, u32 status: 0 ok / 1 mismatch, u64 bytes ok)
 *             and closes. With pause_ms, it stops reading (its window
 *             closes to zero) for pause_ms once a quarter of `bytes` (at
 *             most 1 MiB) has arrived, then reads on.
 *  NP_SOURCE  the server sends `bytes` bytes of np_pattern and closes.
 *             Flag NP_F_RST: it aborts (RST) once half of them are queued
 *             instead. Flag NP_F_HALF: after its FIN it keeps reading and
 *             checking the client's bytes (counted in halfclose_rx_bytes).
 */
#ifndef SLP_NP_H
#define SLP_NP_H

#include <stdint.h>

#define NP_MAGIC 0x534e5031u	/* "SNP1" */
#define NP_REPORT 0x534e5052u	/* "SNPR" */
#define NP_HDR_LEN 16u
#define NP_ECHO 1
#define NP_SINK 2
#define NP_SOURCE 3
#define NP_F_RST 0x01
#define NP_F_HALF 0x02

/* The byte at stream offset i: a multiplicative hash of i mod a prime, so
 * a shifted, repeated or lost chunk never matches. */
#define NP_PATTERN_PERIOD 65521u

static inline uint8_t
np_pattern(uint64_t i)
{
	return (uint8_t)(((uint32_t)(i % NP_PATTERN_PERIOD) * 2654435761u) >> 24);
}

#endif /* SLP_NP_H */
