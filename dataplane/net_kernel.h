/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_kernel: the kernel-socket transport.
 *
 * Kafka clients connect over ordinary TCP sockets; each net worker owns an
 * epoll instance polled with a zero timeout from its reactor (never
 * blocking), a preallocated connection table with receive buffers and
 * request slots, a pool of large-frame buffers and a mempool of response
 * buffers, all sized from the configuration at start-up (nothing is
 * allocated per request). Net worker 0 owns the listening sockets; it
 * accepts and hands each new socket to the least recently chosen worker
 * (round robin) by a reactor message. Each connection is a struct dp_conn,
 * so the Kafka layer does not know which transport it is on.
 *
 * Per connection: Kafka framing with socket.request.max.bytes (dp_frame),
 * many requests in flight with responses sent in order by gathering writes,
 * reading paused while slots or unsent bytes are over their bounds, and
 * idle connections closed after connections.max.idle.ms. Connections are
 * closed by flag and reaped by an end-of-iteration poller.
 */
#ifndef SLP_NET_KERNEL_H
#define SLP_NET_KERNEL_H

#include <stdint.h>

#include "dp_config.h"
#include "dp_conn.h"

/**
 * Create the workers and listening sockets, and register the pollers on the
 * workers' lcores (reactors must exist). Start-up only, on the main lcore.
 *
 * @param handler  gets every complete request frame (see dp_conn.h)
 * @return 0, or a negative errno (the reason has been logged).
 */
int net_kernel_init(const struct dp_config *cfg, dp_conn_handler_fn handler, void *handler_arg);

/**
 * As net_kernel_init(), for a dataplane whose clients use another transport
 * (DPDK): one worker on net worker 0's lcore, polled every millisecond, no
 * TCP listener; only net_kernel_listen_unix() connections (the control
 * process) come in through it.
 */
int net_kernel_init_local(const struct dp_config *cfg, dp_conn_handler_fn handler,
	void *handler_arg);

/**
 * Also listen on the unix socket @path (replacing a stale file there): a
 * local way in for the control process, a Kafka client of this broker
 * (dataplane/dp_ctl.h). Its connections are ordinary connections on the
 * workers. After net_kernel_init(); the file is removed by
 * net_kernel_fini(). An empty @path does nothing.
 *
 * @return 0, or a negative errno (logged).
 */
int net_kernel_listen_unix(const char *path);

/** Close the workers' connections and sockets and free their memory (after the reactors stop). */
void net_kernel_fini(void);

/**
 * The port listener @i (an index in dp_config's listener[]) is bound to (useful
 * when it was configured as 0), or 0.
 */
uint16_t net_kernel_listener_port(unsigned int i);

/**
 * Begin a graceful stop, from a reactor lcore: close the listening sockets,
 * take no new requests, keep sending responses. Sends messages to the
 * workers.
 *
 * @return 0 or a negative errno from dp_msg_send().
 */
int net_kernel_drain_begin(void);

/**
 * Register each worker's answers poller: an end poller walking the
 * connections touched after the worker's own end poller, so that what the
 * end pollers registered in between (storage completions, woken fetches)
 * answered leaves in the same iteration. Call after registering those.
 * @return 0 or -errno.
 */
int net_kernel_register_answers(void);

/**
 * Requests still in flight (taken and not fully answered) over all workers,
 * as last published by them while draining. Any lcore.
 */
uint64_t net_kernel_drain_pending(void);

#endif /* SLP_NET_KERNEL_H */
