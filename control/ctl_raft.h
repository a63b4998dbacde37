/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_raft: the cluster metadata log, replicated with Raft through Debian's
 * libraft (canonical/raft 0.15) and its libuv I/O backend (raft_uv: the log
 * segments, snapshots and term/vote metadata in one directory).
 *
 * The state machine is ctl_meta (the records of ctl_meta.h): libraft's FSM
 * apply hands each committed record to ctl_meta_apply(), snapshots are
 * ctl_meta_snapshot() batches (taken every `threshold` entries, so the log
 * on disk stays bounded), restore is ctl_meta_restore().
 *
 * Voters: Kafka's `controller.quorum.voters` ("id@host:port,..."). Empty
 * (the default): this node (node.id) is the only voter, and the transport is
 * one that never listens or connects (a single voter talks to nobody, and
 * two brokers on one machine then never fight over a port). Set, the TCP
 * transport (raft_uv_tcp) listens on this node's entry. The configuration is
 * bootstrapped on the very first start (an empty directory) only.
 * UNFINISHED: more than one voter is wired but untested; adding voters to a
 * running log (raft_add/raft_assign) is not done.
 *
 * libuv runs inside the control process's epoll loop: its backend fd is
 * watched, and a 5 ms timer runs its due timers (uv_run(UV_RUN_NOWAIT)).
 */
#ifndef SLP_CTL_RAFT_H
#define SLP_CTL_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl_loop.h"
#include "ctl_meta.h"

struct ctl_raft;

/**
 * A committed record was applied to the state: @rc is ctl_meta_apply()'s
 * result (0: the state changed). @rec NULL: the whole state was replaced
 * (a snapshot restored). @rec borrowed for the call.
 */
typedef void (*ctl_raft_applied_fn)(void *arg, const uint8_t *rec, size_t len, int rc);

/**
 * A proposal finished: @rc is ctl_meta_apply()'s result once committed and
 * applied, or -ENOTCONN (not the leader, or leadership lost before commit),
 * -ECANCELED (shutting down), -EIO.
 */
typedef void (*ctl_raft_done_fn)(void *arg, int rc);

struct ctl_raft_cfg {
	const char *dir;            /* raft_uv's directory (created if missing) */
	int32_t node_id;            /* node.id */
	const char *voters;         /* controller.quorum.voters; "" or NULL: this node alone */
	unsigned snapshot_threshold; /* entries between snapshots (libraft's default 1024) */
};

/**
 * Open the log in @cfg->dir and start Raft on @loop; @state (borrowed, must
 * outlive the result) is the FSM's state. Committed records reach @applied.
 * @return the log, or NULL (the reason has been printed).
 */
struct ctl_raft *ctl_raft_create(struct ctl_loop *loop, const struct ctl_raft_cfg *cfg,
	struct ctl_meta_state *state, ctl_raft_applied_fn applied, void *arg);

/** Is this node the leader (proposals are taken)? */
bool ctl_raft_is_leader(struct ctl_raft *r);

/**
 * Append @rec (@len bytes, copied) to the log; @done is called once (never
 * from inside this call). @return 0, or -ENOTCONN (not the leader), -ENOMEM.
 */
int ctl_raft_propose(struct ctl_raft *r, const uint8_t *rec, size_t len, ctl_raft_done_fn done,
	void *arg);

/**
 * @done once every entry before now is applied (a Raft barrier): after a
 * start, the state is then the whole log's. @return 0, -ENOTCONN, -ENOMEM.
 */
int ctl_raft_barrier(struct ctl_raft *r, ctl_raft_done_fn done, void *arg);

/** Index of the last applied entry (for logs). */
uint64_t ctl_raft_applied_index(struct ctl_raft *r);

/** Stop Raft (pending proposals get -ECANCELED), close the log, free @r. */
void ctl_raft_destroy(struct ctl_raft *r);

#endif /* SLP_CTL_RAFT_H */
