/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The load generator's DPDK transport: Slipstream's own TCP/IP stack
 * (dataplane/net) on a net_memif port whose peer is the broker's memif port,
 * so the whole path from load generator to broker runs without the kernel.
 *
 * One stack instance per process, on one memif queue pair: the transport
 * serves one thread at a time (the set-up client on the main thread, then
 * the single worker thread; --threads must be 1). The loadgen is the memif
 * client (role=client); the broker's port (dataplane.port.device =
 * net_memif0,role=server,socket=PATH) is the server. The EAL starts in
 * lg_memif_start() (or the first connect) with ordinary memory (--no-huge)
 * unless hugepages are asked for, and is torn down by lg_memif_shutdown().
 * lg_memif_sink_run() plays the other side: the memif server and a sink
 * that answers every request, to measure the load generator alone.
 */
#ifndef SLP_LG_MEMIF_H
#define SLP_LG_MEMIF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lg_transport.h"

struct lg_memif_conf {
	char socket[256];	/* memif control socket path (the broker's socket=) */
	char ip[32];		/* our address "a.b.c.d/len"; "" = derived from the broker's */
	char eal_args[512];	/* extra EAL arguments, space separated */
	char file_prefix[64];	/* EAL --file-prefix; "" = slipstream-load-PID */
	int cpu;		/* the EAL lcore (the worker's CPU); -1 = the first allowed */
	uint32_t mbufs;		/* packet buffers; 0 = 65535 */
	uint32_t memory_mb;	/* EAL memory (-m); 0 = 512 */
	uint32_t bufs;		/* TCP send and receive buffer per connection; 0 = 2 MiB */
	uint32_t max_conns;	/* connection table; 0 = 4096 */
	uint32_t idle_us;	/* sleep this long at a time once idle_grace_us passed without
				 * work; 0 = busy poll */
	uint32_t idle_grace_us;	/* 0 = 1000 (the broker's reactor waits as long) */
	uint32_t link_wait_ms;	/* how long to wait for the memif link; 0 = 10 s */
	uint32_t delack_us;	/* TCP delayed-ACK timeout; 0 = 200 us */
	uint16_t mtu;		/* IP MTU of the link (the broker's dataplane.port.mtu); 0 = 1500 */
	bool huge;		/* use hugepages (default: --no-huge) */
	/* memif zero-copy client (zero-copy=yes; needs huge): the server copies
	 * straight into this process's mbufs and reads its frames from them;
	 * frames must then live in the EAL's memory, so send_ref copies. */
	bool zero_copy;
	/* Leave the TCP checksum of sent segments to a peer that does not check
	 * it (the broker's dataplane.port.rx.checksum.trusted=true): the stack
	 * runs as if the port offloaded it and only the IPv4 header checksum is
	 * filled in here. A broker that verifies drops every segment. */
	bool no_tx_cksum;
	/* lg_memif_sink_run: be the memif server (role=server) and listen,
	 * instead of the client that connects to the broker's server. */
	bool server;
};

/** The DPDK (memif) transport; configure it first. */
extern const struct lg_transport_ops lg_memif_ops;

/**
 * Set the memif transport's parameters (copied) before its first create().
 * @return 0, -EINVAL (no socket path, bad address), -ENOTSUP (zero_copy without
 *   huge, or as a server), -EBUSY (already started).
 */
int
lg_memif_configure(const struct lg_memif_conf *conf);

/**
 * Start the EAL, the port and the stack now (the first connect does it
 * otherwise), for the peer at @peer (IPv4 literal; our address is derived
 * from it unless configured), on the calling thread, waiting for the link.
 * lg_main does it before a run so that start-up (seconds on a loaded
 * machine) is not taken from the run's duration.
 * @return 0, or a negative errno (the reason printed on stderr).
 */
int
lg_memif_start(const char *peer);

/**
 * Stop the port and the EAL if they were started (end of the process).
 * Prints the stack's counters to stderr when @verbose.
 */
void
lg_memif_shutdown(bool verbose);

/**
 * The sink over memif: the memif server and a TCP listener on @ip:@port
 * (IPv4 literal, host order port) of our stack, answering every
 * length-prefixed request frame with an 8-byte frame (size 4, the request's
 * correlation id) and doing nothing else, like the tcp-baseline sink
 * (lg_sink.c) does over kernel loopback. A load generator in another process
 * measures itself against it: `--mode tcp-baseline --transport memif -b
 * @ip:@port`. Busy polls (idle sleeps as configured) on the calling thread
 * until @duration_s passes, *@stop becomes nonzero (a signal handler's) or
 * the connections of the first client have all closed (one run per sink).
 * Needs lg_memif_configure() with server set first.
 * @param frames  set to the request frames answered; @bytes to the bytes read.
 * @return 0, or a negative errno (the port or the listener did not start).
 */
int
lg_memif_sink_run(const char *ip, uint16_t port, double duration_s, volatile int *stop,
		  uint64_t *frames, uint64_t *bytes);

/** One line of the stack's counters (retransmits, drops) into @buf; "" before start. */
void
lg_memif_describe(char *buf, size_t len);

#endif /* SLP_LG_MEMIF_H */
