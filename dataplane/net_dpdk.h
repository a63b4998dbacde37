/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_dpdk: the DPDK transport, Slipstream's own TCP/IP stack (dataplane/net)
 * on a DPDK ethdev port, under the same dp_conn interface as net_kernel.
 *
 * One port (dataplane.port.device: a vdev string such as
 * `net_tap0,iface=slipstream0`, or a PCI address bound to vfio-pci) gets one
 * rx/tx queue pair per net worker, with symmetric RSS over them when there
 * are several (net_port_setup). Each worker runs one net_stack on its queue
 * from two reactor pollers: an rx poller (rx burst -> net_stack_input) and
 * an end-of-iteration poller that feeds received bytes to the Kafka framer,
 * sends ready responses, reaps closed connections and runs net_stack_poll
 * (timers and output). Every listener's port is opened on the port's IPv4
 * address in every worker's stack; a connection lives on the worker whose
 * queue its packets arrive on.
 *
 * Receive is zero-copy where a request frame lies whole in one received
 * mbuf: the handler reads it in place (dp_conn_deliver_frame) and the mbuf
 * is freed when it returns. A frame that spans mbufs is copied into the
 * connection's receive buffer (or a large-frame buffer) and counted.
 * Transmit: responses of at least ND_EXTBUF_MIN bytes whose buffer has an
 * IOVA are sent without copying, as mbufs with the response buffer attached
 * (rte_pktmbuf_attach_extbuf); the buffer goes back to its owner when the
 * peer has acknowledged every byte of it. Smaller responses are copied into
 * the stack's send queue.
 *
 * Per connection, as net_kernel: framing with socket.request.max.bytes,
 * many requests in flight with responses in order, reading paused (the TCP
 * window closes) while slots or unsent bytes are over their bounds,
 * connections.max.idle.ms reaping, and a drain on SIGTERM.
 *
 * ARP frames land on one queue; the worker that receives one copies it to
 * the others (reactor messages). Worker 0 polls the port's link state every
 * 200 ms (logged, exported as slipstream_dpdk_link_up); while it is down
 * every worker's output drops (and counts) what the device refuses, and
 * TCP's timers resend once it is up again.
 */
#ifndef SLP_NET_DPDK_H
#define SLP_NET_DPDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_config.h"
#include "dp_conn.h"

/** Responses at least this long are sent from their buffer (extbuf) instead of copied. */
#define ND_EXTBUF_MIN 1024

/** Counters of one net worker of the DPDK transport. */
struct net_dpdk_stats {
	uint64_t accepted;
	uint64_t closed;
	uint64_t rx_frames_inplace;  /* request frames read in place in an mbuf */
	uint64_t rx_frames_copied;   /* frames that spanned mbufs and were copied */
	uint64_t rx_bytes_copied;
	uint64_t tx_bytes_extbuf;    /* response bytes sent from their buffer */
	uint64_t tx_bytes_copied;    /* response bytes copied into the send queue */
};

/**
 * Is @device a PCI address (DDDD:BB:DD.F or BB:DD.F) rather than a vdev
 * string? main.c passes PCI devices to the EAL allow list (-a).
 */
bool net_dpdk_device_is_pci(const char *device);

/**
 * Checks that need no EAL, for dataplane.transport=auto: root, /dev/net/tun
 * for a net_tap device, a listener port. Writes one line in @why when DPDK
 * cannot start.
 *
 * @return 0, or a negative errno with @why filled.
 */
int net_dpdk_precheck(const struct dp_config *cfg, char *why, size_t why_len);

/**
 * Attach the port (probing a vdev not created yet), configure and start it,
 * give a net_tap port's kernel side its address, create each worker's stack
 * and listeners, and register the pollers (reactors must exist). Start-up
 * only, on the main lcore. On failure everything made so far is released
 * (net_dpdk_fini()) and @why holds one line.
 *
 * @param handler  gets every complete request frame (see dp_conn.h)
 * @return 0, or a negative errno.
 */
int net_dpdk_init(const struct dp_config *cfg, dp_conn_handler_fn handler, void *handler_arg,
	char *why, size_t why_len);

/** Free the workers, stacks and pools and close the port (after the reactors stop). */
void net_dpdk_fini(void);

/** The port's IPv4 address as text (valid after net_dpdk_init()), e.g. "198.18.0.2". */
const char *net_dpdk_address(void);

/** net_kernel_register_answers() for the DPDK workers. @return 0 or -errno. */
int net_dpdk_register_answers(void);

/** Begin a graceful stop (see net_kernel_drain_begin()). @return 0 or -errno. */
int net_dpdk_drain_begin(void);

/** Requests in flight over all workers while draining; UINT64_MAX until each has published. */
uint64_t net_dpdk_drain_pending(void);

/**
 * Copy worker @i's counters (relaxed reads: for metrics and tests).
 *
 * @return 0 or -EINVAL.
 */
int net_dpdk_stats_get(unsigned int i, struct net_dpdk_stats *out);

#endif /* SLP_NET_DPDK_H */
