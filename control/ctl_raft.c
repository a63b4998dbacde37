/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_raft: libraft + raft_uv driven from the control process's epoll loop
 * (see ctl_raft.h). Memory handed to libraft comes from raft_malloc();
 * snapshots are freed by our snapshot_finalize (FSM version 2), restored
 * buffers by our restore, as libraft's FSM contract asks.
 */
#include "ctl_raft.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#define UV_TICK_MS 5

struct prop {
	union {
		struct raft_apply apply;
		struct raft_barrier barrier;
	} req;
	ctl_raft_done_fn done;
	void *arg;
};

struct ctl_raft {
	struct ctl_loop *loop;
	struct ctl_meta_state *state;
	ctl_raft_applied_fn applied;
	void *arg;
	uv_loop_t uv;
	struct raft_uv_transport transport;
	bool tcp;                 /* transport is raft_uv_tcp */
	struct raft_io io;
	struct raft_fsm fsm;
	struct raft raft;
	bool started;
	bool closed;              /* raft_close's callback ran */
	int uv_fd;
	bool was_leader;
};

/* ---- a transport for a lone voter: no listening socket, no peers ------------------------- */

static int
lone_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
	(void)t;
	(void)id;
	(void)address;
	return 0;
}

static int
lone_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	(void)t;
	(void)cb;
	return 0;
}

static int
lone_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
	const char *address, raft_uv_connect_cb cb)
{
	(void)req;
	(void)id;
	(void)address;
	(void)cb;
	snprintf(t->errmsg, sizeof(t->errmsg), "a lone voter has no peers");
	return RAFT_NOCONNECTION;
}

static void
lone_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
	if (cb != NULL)
		cb(t);
}

/* ---- the FSM -------------------------------------------------------------------------------- */

static int
fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct ctl_raft *r = fsm->data;
	int rc = ctl_meta_apply(r->state, buf->base, buf->len);

	/* A record that does not fit the state is a result, not a failure of the log. */
	*result = (void *)(intptr_t)rc;
	if (r->applied != NULL)
		r->applied(r->arg, buf->base, buf->len, rc);
	return 0;
}

static int
fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct ctl_raft *r = fsm->data;
	struct ctl_meta_buf b = {0};
	struct raft_buffer *out;
	int rc = ctl_meta_snapshot(r->state, &b);

	if (rc < 0) {
		ctl_meta_buf_free(&b);
		return RAFT_NOMEM;
	}
	out = raft_malloc(sizeof(*out));
	if (out == NULL) {
		ctl_meta_buf_free(&b);
		return RAFT_NOMEM;
	}
	out->len = b.len;
	out->base = raft_malloc(b.len);
	if (out->base == NULL) {
		raft_free(out);
		ctl_meta_buf_free(&b);
		return RAFT_NOMEM;
	}
	memcpy(out->base, b.p, b.len);
	ctl_meta_buf_free(&b);
	*bufs = out;
	*n_bufs = 1;
	fprintf(stderr, "control: metadata snapshot of %u topic(s), %zu bytes\n",
		r->state->n_topics, out->len);
	return 0;
}

static int
fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	(void)fsm;
	if (*bufs != NULL) {
		for (unsigned i = 0; i < *n_bufs; i++)
			raft_free((*bufs)[i].base);
		raft_free(*bufs);
	}
	*bufs = NULL;
	*n_bufs = 0;
	return 0;
}

static int
fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct ctl_raft *r = fsm->data;
	int rc = ctl_meta_restore(r->state, buf->base, buf->len);

	if (rc < 0) {
		fprintf(stderr, "control: metadata snapshot does not restore (%s)\n", strerror(-rc));
		return RAFT_CORRUPT;
	}
	raft_free(buf->base);
	fprintf(stderr, "control: metadata snapshot restored: %u topic(s), %u broker(s)\n",
		r->state->n_topics, r->state->n_brokers);
	if (r->applied != NULL)
		r->applied(r->arg, NULL, 0, 0);
	return 0;
}

/* ---- libuv inside the epoll loop ------------------------------------------------------------ */

static void
uv_event(void *arg, int fd, uint32_t events)
{
	struct ctl_raft *r = arg;

	(void)fd;
	(void)events;
	uv_run(&r->uv, UV_RUN_NOWAIT);
}

static void
uv_tick(void *arg, int64_t now)
{
	struct ctl_raft *r = arg;
	bool leader;

	(void)now;
	if (r->closed)
		return;
	uv_run(&r->uv, UV_RUN_NOWAIT);
	leader = r->started && raft_state(&r->raft) == RAFT_LEADER;
	if (leader != r->was_leader)
		fprintf(stderr, "control: metadata log: %s (node %" PRId64 ", last index %llu)\n",
			leader ? "leader" : "no longer the leader", (int64_t)r->raft.id,
			(unsigned long long)raft_last_index(&r->raft));
	r->was_leader = leader;
}

/* ---- voters --------------------------------------------------------------------------------- */

/* Parse "id@host:port,..." into @conf; this node's address into @self. @return 0 or -EINVAL. */
static int
voters_parse(const char *text, int32_t node_id, struct raft_configuration *conf, char *self,
	size_t cap)
{
	const char *p = text;
	bool found = false;

	while (*p != '\0') {
		char entry[300];
		size_t n = strcspn(p, ",");
		char *at;
		char *end;
		long id;

		if (n == 0 || n >= sizeof(entry))
			return -EINVAL;
		memcpy(entry, p, n);
		entry[n] = '\0';
		id = strtol(entry, &end, 10);
		at = end;
		if (at == entry || *at != '@' || id <= 0 || strchr(at + 1, ':') == NULL)
			return -EINVAL;
		if (raft_configuration_add(conf, (raft_id)id, at + 1, RAFT_VOTER) != 0)
			return -EINVAL;
		if (id == node_id) {
			snprintf(self, cap, "%s", at + 1);
			found = true;
		}
		p += n + (p[n] == ',');
	}
	return found ? 0 : -EINVAL;
}

/* ---- API ------------------------------------------------------------------------------------ */

struct ctl_raft *
ctl_raft_create(struct ctl_loop *loop, const struct ctl_raft_cfg *cfg,
	struct ctl_meta_state *state, ctl_raft_applied_fn applied, void *arg)
{
	struct ctl_raft *r = calloc(1, sizeof(*r));
	struct raft_configuration conf;
	char self[300] = "local";
	raft_id id = (raft_id)(cfg->node_id > 0 ? cfg->node_id : 0) + (cfg->node_id > 0 ? 0 : 1);
	int rc;

	if (r == NULL)
		return NULL;
	r->loop = loop;
	r->state = state;
	r->applied = applied;
	r->arg = arg;
	r->uv_fd = -1;
	/* node.id 0 is valid in Kafka, raft ids start at 1: Raft id = node.id + 1 when 0. */
	if (cfg->node_id > 0)
		id = (raft_id)cfg->node_id;
	raft_configuration_init(&conf);
	if (mkdir(cfg->dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "control: cannot create %s: %s\n", cfg->dir, strerror(errno));
		goto fail_conf;
	}
	if (uv_loop_init(&r->uv) != 0)
		goto fail_conf;
	if (cfg->voters != NULL && cfg->voters[0] != '\0') {
		if (voters_parse(cfg->voters, cfg->node_id, &conf, self, sizeof(self)) < 0) {
			fprintf(stderr, "control: controller.quorum.voters '%s' does not name node.id "
				"%d as id@host:port\n", cfg->voters, cfg->node_id);
			goto fail_loop;
		}
		if (raft_uv_tcp_init(&r->transport, &r->uv) != 0)
			goto fail_loop;
		r->tcp = true;
	} else {
		r->transport.init = lone_init;
		r->transport.listen = lone_listen;
		r->transport.connect = lone_connect;
		r->transport.close = lone_close;
		if (raft_configuration_add(&conf, id, self, RAFT_VOTER) != 0)
			goto fail_loop;
	}
	rc = raft_uv_init(&r->io, &r->uv, cfg->dir, &r->transport);
	if (rc != 0) {
		fprintf(stderr, "control: raft_uv_init(%s): %s\n", cfg->dir, r->io.errmsg);
		goto fail_transport;
	}
	r->fsm.version = 2;
	r->fsm.data = r;
	r->fsm.apply = fsm_apply;
	r->fsm.snapshot = fsm_snapshot;
	r->fsm.restore = fsm_restore;
	r->fsm.snapshot_finalize = fsm_snapshot_finalize;
	rc = raft_init(&r->raft, &r->io, &r->fsm, id, self);
	if (rc != 0) {
		fprintf(stderr, "control: raft_init: %s\n", raft_strerror(rc));
		raft_uv_close(&r->io);
		goto fail_transport;
	}
	if (cfg->snapshot_threshold > 0) {
		raft_set_snapshot_threshold(&r->raft, cfg->snapshot_threshold);
		raft_set_snapshot_trailing(&r->raft, cfg->snapshot_threshold / 4 + 1);
	}
	rc = raft_bootstrap(&r->raft, &conf);
	if (rc == 0)
		fprintf(stderr, "control: metadata log bootstrapped in %s (node %d)\n", cfg->dir,
			cfg->node_id);
	else if (rc != RAFT_CANTBOOTSTRAP)
		fprintf(stderr, "control: raft_bootstrap: %s\n", raft_errmsg(&r->raft));
	raft_configuration_close(&conf);
	r->started = true; /* raft_close from here on */
	rc = raft_start(&r->raft);
	if (rc != 0) {
		fprintf(stderr, "control: raft_start: %s\n", raft_errmsg(&r->raft));
		ctl_raft_destroy(r);
		return NULL;
	}
	r->uv_fd = uv_backend_fd(&r->uv);
	if (ctl_loop_watch(loop, r->uv_fd, EPOLLIN, uv_event, r) < 0 ||
		ctl_loop_every(loop, UV_TICK_MS, uv_tick, r) < 0) {
		ctl_raft_destroy(r);
		return NULL;
	}
	uv_run(&r->uv, UV_RUN_NOWAIT);
	return r;

fail_transport:
	if (r->tcp)
		raft_uv_tcp_close(&r->transport);
fail_loop:
	uv_run(&r->uv, UV_RUN_NOWAIT);
	uv_loop_close(&r->uv);
fail_conf:
	raft_configuration_close(&conf);
	free(r);
	return NULL;
}

bool
ctl_raft_is_leader(struct ctl_raft *r)
{
	return r->started && !r->closed && raft_state(&r->raft) == RAFT_LEADER;
}

static int
from_raft(int status)
{
	switch (status) {
	case 0:
		return 0;
	case RAFT_NOTLEADER:
	case RAFT_LEADERSHIPLOST:
		return -ENOTCONN;
	case RAFT_SHUTDOWN:
	case RAFT_CANCELED:
		return -ECANCELED;
	case RAFT_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static void
apply_cb(struct raft_apply *req, int status, void *result)
{
	struct prop *p = req->data;

	p->done(p->arg, status != 0 ? from_raft(status) : (int)(intptr_t)result);
	free(p);
}

static void
barrier_cb(struct raft_barrier *req, int status)
{
	struct prop *p = req->data;

	p->done(p->arg, from_raft(status));
	free(p);
}

int
ctl_raft_propose(struct ctl_raft *r, const uint8_t *rec, size_t len, ctl_raft_done_fn done,
	void *arg)
{
	struct raft_buffer buf;
	struct prop *p;
	int rc;

	if (!ctl_raft_is_leader(r))
		return -ENOTCONN;
	/*
	 * raft_uv's segment format keeps entry data 8-byte aligned and its
	 * loader steps over each entry by its length rounded up to 8: an entry
	 * of another length reads back as garbage. Pad with zeros (records
	 * ignore trailing bytes, ctl_meta.h).
	 */
	buf.len = (len + 7) & ~(size_t)7;
	if (buf.len == 0)
		buf.len = 8;
	p = calloc(1, sizeof(*p));
	buf.base = raft_malloc(buf.len);
	if (p == NULL || buf.base == NULL) {
		free(p);
		raft_free(buf.base);
		return -ENOMEM;
	}
	memset(buf.base, 0, buf.len);
	memcpy(buf.base, rec, len);
	p->done = done;
	p->arg = arg;
	p->req.apply.data = p;
	rc = raft_apply(&r->raft, &p->req.apply, &buf, 1, apply_cb);
	if (rc != 0) {
		raft_free(buf.base);
		free(p);
		return from_raft(rc);
	}
	return 0;
}

int
ctl_raft_barrier(struct ctl_raft *r, ctl_raft_done_fn done, void *arg)
{
	struct prop *p;
	int rc;

	if (!ctl_raft_is_leader(r))
		return -ENOTCONN;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->done = done;
	p->arg = arg;
	p->req.barrier.data = p;
	rc = raft_barrier(&r->raft, &p->req.barrier, barrier_cb);
	if (rc != 0) {
		free(p);
		return from_raft(rc);
	}
	return 0;
}

uint64_t
ctl_raft_applied_index(struct ctl_raft *r)
{
	return r->started ? (uint64_t)raft_last_applied(&r->raft) : 0;
}

static void
raft_closed(struct raft *raft)
{
	struct ctl_raft *r = raft->data;

	raft_uv_close(&r->io);
	if (r->tcp)
		raft_uv_tcp_close(&r->transport);
	r->closed = true;
}

void
ctl_raft_destroy(struct ctl_raft *r)
{
	if (r == NULL)
		return;
	if (r->uv_fd >= 0)
		ctl_loop_unwatch(r->loop, r->uv_fd);
	r->applied = NULL;
	if (r->started) {
		r->raft.data = r;
		raft_close(&r->raft, raft_closed);
		/* Bounded: raft_uv finishes its writes, then every handle closes. */
		for (int i = 0; i < 10000 && uv_run(&r->uv, UV_RUN_NOWAIT) != 0; i++)
			uv_sleep(1);
	}
	uv_run(&r->uv, UV_RUN_NOWAIT);
	if (uv_loop_close(&r->uv) != 0)
		fprintf(stderr, "control: libuv loop still busy at exit\n");
	free(r);
}
