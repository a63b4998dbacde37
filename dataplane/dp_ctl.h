/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_ctl: the dataplane's side of the channel to the control process.
 *
 * The group APIs (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
 * OffsetCommit, OffsetFetch, OffsetDelete, DescribeGroups, ListGroups,
 * DeleteGroups) belong to the control process (control/). dp_ctl wraps the
 * broker's served-API table (dp_handler_apis): ApiVersions then advertises
 * those APIs too, with the versions the control process implements, and
 * their requests come here instead of to the broker. Each is forwarded over
 * a unix socket (control.socket.path) inside an Envelope request (API key
 * 58, KIP-590: the client's request bytes, header included, and the
 * client's address), with the Envelope's own correlation id; the
 * EnvelopeResponse carries the client's response bytes, which go back on
 * the client connection through its request slot (dp_conn_reply), so they
 * leave in order with that connection's other responses.
 *
 * FindCoordinator is answered here: the coordinator is this broker, at the
 * address of the listener clients use. While the control process is away
 * (not started, killed, restarting), FindCoordinator and every forwarded
 * API answer COORDINATOR_NOT_AVAILABLE at once (requests in flight when it
 * goes too), and a poller reconnects every DP_CTL_RETRY_MS. Nothing waits
 * on it: produce and fetch never depend on the control process.
 *
 * Keys: control.* is delegated here by main.c (dp_config_delegate): this
 * module reads control.socket.path and control.dataplane.socket.path (the
 * unix listener of the kernel transport through which the control process
 * reads and writes __consumer_offsets as a Kafka client), and accepts the
 * other control.* keys unseen (the control process validates them).
 *
 * All state belongs to the broker's lcore (dataplane.storage.lcores[0],
 * where every request is handled); a group request that arrives on another
 * lcore answers COORDINATOR_NOT_AVAILABLE. Responses relayed from the
 * control process are malloc'd buffers: group traffic is not the data path.
 */
#ifndef SLP_DP_CTL_H
#define SLP_DP_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_config.h"
#include "dp_handler.h"

/** Reconnect period while the control process is away. */
#define DP_CTL_RETRY_MS 250
/** Forwarded requests in flight at most (more wait: the handler answers -EAGAIN). */
#define DP_CTL_MAX_INFLIGHT 1024

/** dp_config_delegate_fn for the "control." prefix (@arg unused). */
int dp_ctl_config_key(void *arg, const char *key, const char *value);

/**
 * Resolve the socket paths from @cfg (after dp_config_finish): defaults are
 * "<first log dir>.control.sock" and "<first log dir>.dataplane.sock", as
 * the control process derives them.
 * @return 0, or -ENAMETOOLONG (the reason has been logged).
 */
int dp_ctl_paths(const struct dp_config *cfg);

/** The unix socket the kernel transport listens on for the control process. */
const char *dp_ctl_dataplane_socket_path(void);

/**
 * Wrap @inner (the broker's table, borrowed, must outlive the transport):
 * the returned table advertises and serves everything @inner does plus the
 * group APIs and FindCoordinator. Registers the channel's poller on the
 * broker's lcore; resolves the socket paths (dp_ctl_paths()). Start-up only.
 *
 * @return the table (static), or NULL (no memory, poller table full, paths
 *         too long: logged).
 */
const struct dp_handler_apis *dp_ctl_init(const struct dp_config *cfg,
	const struct dp_handler_apis *inner);

/** Is the channel to the control process up? (The broker's lcore.) */
bool dp_ctl_connected(void);

/** control.metadata=local: the broker's topic table is its own (no control process). */
bool dp_ctl_metadata_local(void);

/**
 * Where metadata batches pushed by the control process go (dp_meta): @fn
 * gets each batch (borrowed), and (NULL, 0) when the channel closes; a
 * negative return drops the channel. Start-up only.
 */
void dp_ctl_meta_hook(int (*fn)(void *arg, const uint8_t *buf, size_t len), void *arg);

/**
 * Ask the control process to create topic @name (@len bytes; Metadata's
 * auto-creation) with its num.partitions. Nobody waits for the answer: the
 * topic arrives with the metadata push. The broker's lcore only.
 * @return -EINPROGRESS (sent), -ENOTCONN (away, or local mode), -EAGAIN (no
 *         slot), -EINVAL.
 */
int dp_ctl_topic_autocreate(const char *name, size_t len);

/** control/ctl_meta.h's CTL_META_IMPORT_API (dp_meta.c checks they agree). */
#define DP_CTL_IMPORT_API 32100

/**
 * Ask the control process to import topic @name of the broker's table, which
 * the metadata log lacks: @rec (@len bytes, borrowed, copied) is its ctl_meta
 * TOPIC record, sent as a DP_CTL_IMPORT_API request. The answer is only
 * logged; the topic arrives in the copy with the push that follows its
 * commit. The broker's lcore only.
 * @return -EINPROGRESS (sent), -ENOTCONN (away, or local mode), -EAGAIN (no slot).
 */
int dp_ctl_topic_import(const char *name, const uint8_t *rec, size_t len);

/** Close the channel and free what dp_ctl_init() allocated (after the reactors stop). */
void dp_ctl_fini(void);

#endif /* SLP_DP_CTL_H */
