/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_store: the control process as a Kafka client of its own dataplane,
 * for the internal topic __consumer_offsets.
 *
 * It connects to the dataplane's unix-socket listener
 * (control.dataplane.socket.path), creates the topic when missing
 * (offsets.topic.num.partitions partitions, cleanup.policy=compact, as
 * Kafka does), learns its real partition count (Metadata), and on the first
 * connection of the process reads every partition from its log start to its
 * end (ListOffsets, Fetch) into the coordinator (ctl_coord_load_batch).
 * Then it is ready: appends are Produce requests with acks=-1, answered in
 * order on the one connection; each completes its coordinator cookie.
 * When the dataplane goes away, in-flight appends fail (-ENOTCONN) and it
 * reconnects every few hundred ms; state already loaded is kept (the
 * coordinator's memory is the newest state; the log only makes it durable).
 */
#ifndef SLP_CTL_STORE_H
#define SLP_CTL_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "ctl_coord.h"
#include "ctl_loop.h"

#define CTL_OFFSETS_TOPIC "__consumer_offsets"

struct ctl_store;

/** Called once, when the first load is complete (the channel may open then). */
typedef void (*ctl_store_ready_fn)(void *arg);

/**
 * @param path        the dataplane's unix socket (borrowed, must outlive the store)
 * @param partitions  offsets.topic.num.partitions for creating the topic
 * @return a store (not connected yet; its timer connects), or NULL.
 */
struct ctl_store *ctl_store_create(struct ctl_loop *l, const char *path, int32_t partitions,
	ctl_store_ready_fn ready, void *ready_arg);

/**
 * Let the store connect (it is created held): the control process calls it
 * once the dataplane is connected to its channel, so that the topic's
 * creation, forwarded by a dataplane in controller mode, can be served.
 * Later calls do nothing.
 */
void ctl_store_start(struct ctl_store *s);

/** Give the store its coordinator (loads go there; completions too). */
void ctl_store_set_coord(struct ctl_store *s, struct ctl_coord *c);

/** ctl_coord_append_fn: @arg is the store. */
int ctl_store_append(void *arg, int32_t partition, uint8_t *batch, size_t len, void *cookie);

/**
 * The dataplane closes connections idle for @idle_ms (connections.max.idle.ms,
 * -1 never): the store sends a keepalive (ApiVersions) when idle a third of
 * that, 60 s at most.
 */
void ctl_store_set_idle(struct ctl_store *s, int64_t idle_ms);

/** The partition count of the topic (known once ready), else the configured one. */
int32_t ctl_store_partitions(const struct ctl_store *s);

/** Ready for appends (connected and loaded)? */
bool ctl_store_ready(const struct ctl_store *s);

void ctl_store_destroy(struct ctl_store *s);

#endif /* SLP_CTL_STORE_H */
