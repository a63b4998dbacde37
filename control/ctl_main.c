/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slipstream-control: the control-plane process.
 *
 * Reads the same server.properties as the dataplane (dp_config's parser
 * and key table; keys of other modules are accepted and ignored here, keys
 * under control.* are this process's), then:
 *   1. connects to the dataplane's unix socket as a Kafka client and loads
 *      __consumer_offsets into the group coordinator (ctl_store, ctl_coord);
 *   2. once loaded, listens on control.socket.path for the dataplane, which
 *      forwards the group APIs wrapped in Envelope requests (KIP-590's API
 *      key 58: the client's request bytes and address inside, the client's
 *      response bytes back), and answers them through the coordinator;
 *   3. runs until SIGTERM/SIGINT (exit 0), unlinking its socket.
 * Either process may restart on its own: the dataplane reconnects to this
 * socket, this process reconnects to the dataplane's (state in memory kept;
 * on a restart of this process it is reloaded from the topic).
 *
 * Cluster metadata (topics, partitions, configs, brokers) is this process's
 * too: a Raft log (ctl_raft, libraft) applied to ctl_meta's state machine.
 * The topic mutations the dataplane forwards are served by ctl_admin. The
 * channel opens once the log is applied (and the legacy topic table
 * imported); each dataplane that connects first gets the whole state (a
 * FULL batch of records inside an EnvelopeResponse with correlation id -1),
 * then every committed record the same way (DELTA), before the answer of
 * the request that made it. Group requests that arrive before
 * __consumer_offsets is loaded answer COORDINATOR_LOAD_IN_PROGRESS, as Kafka's
 * (Heartbeat: NONE, as Kafka's).
 *
 * Start-up order: the metadata log first (its channel opens when it is
 * applied), then __consumer_offsets, whose loading starts when the first
 * dataplane has connected to that channel: in controller mode the store's
 * CreateTopics goes through the dataplane to this process's ctl_admin, so
 * sent earlier it could only answer NOT_CONTROLLER.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl_admin.h"
#include "ctl_coord.h"
#include "ctl_http.h"
#include "ctl_loop.h"
#include "ctl_meta.h"
#include "ctl_metrics.h"
#include "ctl_raft.h"
#include "ctl_records.h"
#include "ctl_store.h"
#include "dp_config.h"
#include "kp_api.h"
#include "kp_error.h"
#include "kp_wire.h"

#define CTL_VERSION "0.1.0"
#define CTL_MAX_CONNS 16
#define CTL_MAX_FRAME (64u << 20)
#define K_ENVELOPE 58
#define K_HEARTBEAT 12
#define META_PUSH_CORR (-1) /* EnvelopeResponses carrying metadata batches */

struct ctl_opts {
	char socket_path[108];       /* control.socket.path */
	char dataplane_path[108];    /* control.dataplane.socket.path */
	char meta_dir[4096];         /* control.metadata.dir */
	unsigned snapshot_threshold; /* control.metadata.snapshot.threshold */
	int16_t group_value_version; /* control.inter.broker.protocol.version (ctl_records.h) */
	int16_t offset_value_version; /* 0: not set (the newest) */
};

struct chan_conn {
	struct ctl_link link;
	uint32_t id;                 /* 0: slot free */
};

struct ctl_main {
	struct ctl_loop loop;
	struct ctl_opts opts;
	struct dp_config cfg;
	struct ctl_coord *coord;
	struct ctl_store *store;
	struct ctl_meta_state *meta;
	struct ctl_raft *raft;
	struct ctl_admin *admin;
	bool store_loaded;
	int listen_fd;
	struct chan_conn conns[CTL_MAX_CONNS];
	uint32_t next_id;
};

static volatile int g_stop;

static void
on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* ---- configuration -------------------------------------------------------- */

static int
ctl_config_key(void *arg, const char *key, const char *value)
{
	struct ctl_opts *o = arg;
	char *dst = NULL;

	if (strcmp(key, "control.metadata.dir") == 0) {
		if (strlen(value) >= sizeof(o->meta_dir))
			return -EINVAL;
		snprintf(o->meta_dir, sizeof(o->meta_dir), "%s", value);
		return 0;
	}
	if (strcmp(key, "control.metadata.snapshot.threshold") == 0) {
		char *end = NULL;
		long v = strtol(value, &end, 10);

		if (*value == '\0' || *end != '\0' || v < 2 || v > 1000000)
			return -EINVAL;
		o->snapshot_threshold = (unsigned)v;
		return 0;
	}
	if (strcmp(key, "control.metadata") == 0)
		return strcmp(value, "controller") == 0 || strcmp(value, "local") == 0 ? 0 : -EINVAL;
	if (strcmp(key, "control.inter.broker.protocol.version") == 0)
		return ctl_rec_versions_for(value, &o->group_value_version,
			&o->offset_value_version);
	if (strcmp(key, "control.socket.path") == 0)
		dst = o->socket_path;
	else if (strcmp(key, "control.dataplane.socket.path") == 0)
		dst = o->dataplane_path;
	else
		return ctl_http_config_key(NULL, key, value); /* control.metrics.* */
	if (strlen(value) >= sizeof(o->socket_path))
		return -EINVAL; /* longer than a unix socket path may be */
	snprintf(dst, sizeof(o->socket_path), "%s", value);
	return 0;
}

/* Keys other modules of the dataplane own (storage.*): validated there. */
static int
ignore_key(void *arg, const char *key, const char *value)
{
	(void)arg;
	(void)key;
	(void)value;
	return 0;
}

/*
 * Default socket paths beside the first log directory: "<dir>.control.sock"
 * and "<dir>.dataplane.sock", so two brokers with their own log.dirs never
 * share them. The dataplane derives the same (dataplane/dp_ctl.c).
 */
static int
default_path(char *dst, size_t cap, const char *log_dirs, const char *suffix)
{
	size_t n = strcspn(log_dirs, ",");
	int w;

	while (n > 1 && log_dirs[n - 1] == '/')
		n--;
	w = snprintf(dst, cap, "%.*s%s", (int)n, log_dirs, suffix);
	return w < 0 || (size_t)w >= cap ? -ENAMETOOLONG : 0;
}

/* ---- the channel from the dataplane ---------------------------------------- */

static struct chan_conn *
conn_by_id(struct ctl_main *m, uint32_t id)
{
	for (int i = 0; i < CTL_MAX_CONNS; i++) {
		if (m->conns[i].id == id && id != 0)
			return &m->conns[i];
	}
	return NULL;
}

static void conn_event(void *arg, int fd, uint32_t events);

static void
conn_close(struct ctl_main *m, struct chan_conn *c)
{
	fprintf(stderr, "control: dataplane channel closed\n");
	ctl_loop_unwatch(&m->loop, c->link.fd);
	ctl_link_close(&c->link);
	c->id = 0;
}

static void
conn_watch(struct ctl_main *m, struct chan_conn *c)
{
	uint32_t ev = EPOLLIN | (ctl_link_pending(&c->link) ? EPOLLOUT : 0);

	ctl_loop_watch(&m->loop, c->link.fd, ev, conn_event, m);
}

/* Send an EnvelopeResponse v0 for @corr: @data (may be NULL) and @error. */
static int
send_envelope(struct ctl_main *m, struct chan_conn *c, int32_t corr, const uint8_t *data,
	size_t len, int16_t error)
{
	const struct kp_api_desc *d = kp_api_lookup(K_ENVELOPE);
	struct kp_response_header rh;
	struct kp_envelope_response r;
	struct kp_writer w;
	size_t cap = len + 64;
	uint8_t *buf = malloc(cap);
	int rc;

	if (buf == NULL)
		return -ENOMEM;
	kp_response_header_init(&rh);
	rh.correlation_id = corr;
	kp_envelope_response_init(&r);
	r.response_data.ptr = data;
	r.response_data.len = data != NULL ? (int32_t)len : -1;
	r.error_code = error;
	kp_writer_init(&w, buf, cap);
	rc = kp_response_header_encode(&rh, kp_api_response_header_version(d, 0), &w);
	if (rc == 0)
		rc = kp_envelope_response_encode(&r, 0, &w);
	if (rc == 0)
		rc = ctl_link_send(&c->link, buf, kp_writer_len(&w));
	free(buf);
	if (rc == 0)
		rc = ctl_link_flush(&c->link);
	return rc;
}

/* ctl_coord_respond_fn: token = connection id << 32 | envelope correlation id. */
static void
coord_respond(void *arg, uint64_t token, uint8_t *buf, size_t len)
{
	struct ctl_main *m = arg;
	struct chan_conn *c = conn_by_id(m, (uint32_t)(token >> 32));

	if (c != NULL) {
		if (send_envelope(m, c, (int32_t)(uint32_t)token, buf, len, 0) < 0)
			conn_close(m, c);
		else
			conn_watch(m, c);
	}
	free(buf);
}

/* ctl_coord_append_fn: the store does it. */
static int
coord_append(void *arg, int32_t partition, uint8_t *batch, size_t len, void *cookie)
{
	struct ctl_main *m = arg;

	return ctl_store_append(m->store, partition, batch, len, cookie);
}

/* ---- cluster metadata ------------------------------------------------------------------ */

/* Send the batch in @b to @c as a metadata push. */
static int
meta_send(struct ctl_main *m, struct chan_conn *c, const struct ctl_meta_buf *b)
{
	int rc = send_envelope(m, c, META_PUSH_CORR, b->p, b->len, 0);

	if (rc == 0)
		conn_watch(m, c);
	return rc;
}

/* The whole state to a dataplane that just connected. */
static int
meta_send_full(struct ctl_main *m, struct chan_conn *c)
{
	struct ctl_meta_buf b = {0};
	int rc = ctl_meta_snapshot(m->meta, &b);

	if (rc == 0)
		rc = meta_send(m, c, &b);
	ctl_meta_buf_free(&b);
	return rc;
}

/* ctl_raft_applied_fn: push what changed to every connected dataplane. */
static void
meta_applied(void *arg, const uint8_t *rec, size_t len, int rc)
{
	struct ctl_main *m = arg;
	struct ctl_meta_buf b = {0};

	if (rc != 0)
		return; /* refused by the state: nothing changed */
	if (rec == NULL) {
		if (ctl_meta_snapshot(m->meta, &b) < 0)
			b.err = -ENOMEM;
	} else {
		ctl_meta_batch_begin(&b, CTL_META_BATCH_DELTA);
		ctl_meta_batch_add(&b, 0, rec, len);
	}
	for (int i = 0; i < CTL_MAX_CONNS; i++) {
		if (m->conns[i].id == 0)
			continue;
		/* A dataplane that misses a change must start over from a FULL batch. */
		if (b.err || meta_send(m, &m->conns[i], &b) < 0)
			conn_close(m, &m->conns[i]);
	}
	ctl_meta_buf_free(&b);
}

static int
meta_propose(void *arg, const uint8_t *rec, size_t len, ctl_raft_done_fn done, void *done_arg)
{
	struct ctl_main *m = arg;

	return ctl_raft_propose(m->raft, rec, len, done, done_arg);
}

static bool
meta_is_leader(void *arg)
{
	struct ctl_main *m = arg;

	return ctl_raft_is_leader(m->raft);
}

static int
meta_barrier(void *arg, ctl_raft_done_fn done, void *done_arg)
{
	struct ctl_main *m = arg;

	return ctl_raft_barrier(m->raft, done, done_arg);
}

/* This broker's registration: its listeners, advertised address where one is set. */
static void
meta_self(const struct dp_config *cfg, struct ctl_meta_broker *br)
{
	memset(br, 0, sizeof(*br));
	br->node_id = (int32_t)cfg->node_id;
	for (unsigned int i = 0; i < cfg->n_listeners && br->n_listeners < CTL_META_MAX_LISTENERS;
		i++) {
		const struct dp_listener *l = &cfg->listener[i];
		struct ctl_meta_listener *o = &br->listeners[br->n_listeners++];

		snprintf(o->name, sizeof(o->name), "%s", l->name);
		snprintf(o->host, sizeof(o->host), "%s", l->host);
		o->port = l->port;
		for (unsigned int j = 0; j < cfg->n_advertised; j++) {
			if (strcmp(cfg->advertised[j].name, l->name) == 0) {
				snprintf(o->host, sizeof(o->host), "%s", cfg->advertised[j].host);
				o->port = cfg->advertised[j].port;
			}
		}
	}
}

static void
client_host_text(const struct kp_bytes *addr, char *buf, size_t cap)
{
	const uint8_t *a = addr->ptr;

	if (addr->len == 4) {
		snprintf(buf, cap, "/%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
	} else if (addr->len == 16) {
		int n = snprintf(buf, cap, "/");

		for (int i = 0; i < 16 && n > 0 && (size_t)n < cap; i += 2)
			n += snprintf(buf + n, cap - (size_t)n, "%s%x", i ? ":" : "",
				(unsigned int)(a[i] << 8 | a[i + 1]));
	} else {
		snprintf(buf, cap, "/unknown");
	}
}

/*
 * A group request while __consumer_offsets is still loading: Kafka's
 * COORDINATOR_LOAD_IN_PROGRESS (14, retriable), which the dataplane puts in
 * the request's own shape. Heartbeat answers NONE, as Kafka's GroupCoordinator
 * answers it "blindly" while loading: the member's group comes back with the
 * load and fresh session timers, so nothing is gained by making it rejoin.
 */
static int
answer_loading(struct ctl_main *m, struct chan_conn *c, int32_t corr, const uint8_t *inner,
	size_t len)
{
	const struct kp_api_desc *d = kp_api_lookup(K_HEARTBEAT);
	struct kp_request_header h;
	struct kp_response_header rh;
	struct kp_heartbeat_response hb;
	struct kp_reader r;
	struct kp_writer w;
	struct kp_arena a;
	uint8_t scratch[1024];
	uint8_t out[64];

	kp_arena_init(&a, scratch, sizeof(scratch));
	kp_reader_init(&r, inner, len);
	if (kp_request_header_read(&h, NULL, &r, &a) < 0 || h.request_api_key != K_HEARTBEAT ||
		!kp_api_version_supported(d, h.request_api_version))
		return send_envelope(m, c, corr, NULL, 0, KP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
	kp_response_header_init(&rh);
	rh.correlation_id = h.correlation_id;
	kp_heartbeat_response_init(&hb);
	hb.error_code = KP_ERR_NONE;
	kp_writer_init(&w, out, sizeof(out));
	if (kp_response_header_encode(&rh, kp_api_response_header_version(d,
		h.request_api_version), &w) < 0 ||
		kp_heartbeat_response_encode(&hb, h.request_api_version, &w) < 0 || w.err)
		return send_envelope(m, c, corr, NULL, 0, KP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
	return send_envelope(m, c, corr, out, kp_writer_len(&w), 0);
}

static int
handle_envelope(struct ctl_main *m, struct chan_conn *c, const uint8_t *frame, uint32_t len)
{
	struct kp_request_header h;
	struct kp_envelope_request e;
	struct kp_reader r;
	struct kp_arena a;
	uint8_t scratch[4096];
	char host[64];
	int rc;

	kp_arena_init(&a, scratch, sizeof(scratch));
	kp_reader_init(&r, frame, len);
	rc = kp_request_header_read(&h, NULL, &r, &a);
	if (rc < 0 || h.request_api_key != K_ENVELOPE || h.request_api_version != 0)
		return -EPROTO;
	rc = kp_envelope_request_decode(&e, 0, &r, &a);
	if (rc < 0 || e.request_data.len <= 0)
		return send_envelope(m, c, h.correlation_id, NULL, 0, KP_ERR_INVALID_REQUEST);
	if (e.request_data.len >= 2) {
		int16_t key = (int16_t)(e.request_data.ptr[0] << 8 | e.request_data.ptr[1]);

		if (key == CTL_META_IMPORT_API) {
			/* The dataplane's own request: key, version, correlation id, the record. */
			rc = e.request_data.len > 8 ? ctl_admin_import(m->admin,
				(uint64_t)c->id << 32 | (uint32_t)h.correlation_id,
				e.request_data.ptr + 8, (size_t)e.request_data.len - 8) : -EPROTO;
			if (rc < 0)
				return send_envelope(m, c, h.correlation_id, NULL, 0,
					rc == -ENOMEM ? KP_ERR_UNKNOWN_SERVER_ERROR :
					KP_ERR_INVALID_REQUEST);
			return 0;
		}

		if (ctl_admin_serves(key)) {
			rc = ctl_admin_request(m->admin,
				(uint64_t)c->id << 32 | (uint32_t)h.correlation_id, e.request_data.ptr,
				(size_t)e.request_data.len);
			if (rc < 0)
				return send_envelope(m, c, h.correlation_id, NULL, 0,
					rc == -EPROTONOSUPPORT ? KP_ERR_UNSUPPORTED_VERSION :
					rc == -ENOMEM ? KP_ERR_UNKNOWN_SERVER_ERROR :
					KP_ERR_INVALID_REQUEST);
			return 0;
		}
	}
	if (!m->store_loaded)
		return answer_loading(m, c, h.correlation_id, e.request_data.ptr,
			(size_t)e.request_data.len);
	client_host_text(&e.client_host_address, host, sizeof(host));
	rc = ctl_coord_request(m->coord, (uint64_t)c->id << 32 | (uint32_t)h.correlation_id,
		e.request_data.ptr, (size_t)e.request_data.len, host, ctl_now_ms());
	if (rc < 0)
		return send_envelope(m, c, h.correlation_id, NULL, 0,
			rc == -EPROTONOSUPPORT ? KP_ERR_UNSUPPORTED_VERSION :
			rc == -ENOMEM ? KP_ERR_UNKNOWN_SERVER_ERROR : KP_ERR_INVALID_REQUEST);
	return 0;
}

static void
conn_event(void *arg, int fd, uint32_t events)
{
	struct ctl_main *m = arg;
	struct chan_conn *c = NULL;
	const uint8_t *frame;
	uint32_t len;
	uint32_t id;
	int rc = 0;

	for (int i = 0; i < CTL_MAX_CONNS; i++) {
		if (m->conns[i].id != 0 && m->conns[i].link.fd == fd)
			c = &m->conns[i];
	}
	if (c == NULL)
		return;
	id = c->id;
	if (events & EPOLLOUT)
		rc = ctl_link_flush(&c->link);
	if (rc == 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		rc = ctl_link_read(&c->link);
	while (rc == 0 && (rc = ctl_link_frame(&c->link, &frame, &len)) == 1) {
		rc = handle_envelope(m, c, frame, len);
		if (c->id != id)
			return; /* closed while answering */
		ctl_link_consume(&c->link, len);
	}
	if (rc < 0) {
		conn_close(m, c);
		return;
	}
	conn_watch(m, c);
}

static void
listen_event(void *arg, int fd, uint32_t events)
{
	struct ctl_main *m = arg;

	(void)events;
	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct chan_conn *c = NULL;

		if (cfd < 0)
			return;
		for (int i = 0; i < CTL_MAX_CONNS && c == NULL; i++) {
			if (m->conns[i].id == 0)
				c = &m->conns[i];
		}
		if (c == NULL) {
			close(cfd);
			continue;
		}
		ctl_link_init(&c->link, cfd, CTL_MAX_FRAME);
		c->id = ++m->next_id ? m->next_id : ++m->next_id;
		fprintf(stderr, "control: dataplane channel connected\n");
		if (meta_send_full(m, c) < 0) {
			conn_close(m, c);
			continue;
		}
		conn_watch(m, c);
		/* The dataplane can forward the store's CreateTopics now (see the top). */
		ctl_store_start(m->store);
	}
}

/* The metadata log is applied (and the legacy table imported): open the channel. */
static void
meta_ready(void *arg)
{
	struct ctl_main *m = arg;
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", m->opts.socket_path);
	unlink(m->opts.socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ||
		ctl_loop_watch(&m->loop, fd, EPOLLIN, listen_event, m) < 0) {
		fprintf(stderr, "control: cannot listen on %s: %s\n", m->opts.socket_path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		g_stop = 1;
		return;
	}
	m->listen_fd = fd;
	fprintf(stderr, "control: listening for the dataplane on %s\n", m->opts.socket_path);
}

/* The store finished loading __consumer_offsets: groups are served. */
static void
store_ready(void *arg)
{
	struct ctl_main *m = arg;

	m->store_loaded = true;
	fprintf(stderr, "control: ready; %u group(s); listening for the dataplane on %s\n",
		ctl_coord_group_count(m->coord), m->opts.socket_path);
}

static void
coord_tick(void *arg, int64_t now)
{
	struct ctl_main *m = arg;

	ctl_coord_tick(m->coord, now);
	ctl_admin_poll(m->admin);
}

static void
usage(FILE *out)
{
	fprintf(out,
		"Usage: slipstream-control [OPTIONS] [FILE]\n"
		"Run Slipstream's control process (group coordinator, committed offsets, cluster\n"
		"metadata) in the foreground until SIGTERM or SIGINT. FILE is the broker's\n"
		"server.properties; its control.* keys are this process's, the rest are read\n"
		"for shared settings (log.dirs, node.id, group.*, offsets.*, num.partitions,\n"
		"controller.quorum.voters).\n"
		"\n"
		"  -h, --help             this text\n"
		"      --version          print the version\n"
		"      --override K=V     set key K to V after the file (repeatable)\n"
		"\n"
		"Keys of this process:\n"
		"  control.socket.path            where it listens for the dataplane\n"
		"                                 (default: <first log dir>.control.sock)\n"
		"  control.dataplane.socket.path  the dataplane's unix socket it connects to\n"
		"                                 (default: <first log dir>.dataplane.sock)\n"
		"  control.metadata.dir           the cluster metadata log (Raft)\n"
		"                                 (default: <first log dir>/__slipstream_metadata)\n"
		"  control.metadata.snapshot.threshold  log entries between snapshots (1024)\n"
		"  control.inter.broker.protocol.version  the __consumer_offsets record versions\n"
		"                                 of that Kafka version (\"2.2\": GroupMetadataValue\n"
		"                                 v2, for tools such as Burrow 1.2.1; default: the\n"
		"                                 newest, v3)\n");
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"override", required_argument, NULL, 'o'},
		{NULL, 0, NULL, 0},
	};
	static struct ctl_main m;
	struct ctl_coord_cfg cc;
	struct ctl_admin_cfg ac;
	struct ctl_raft_cfg rc_cfg;
	char log_dir[4096];
	struct sigaction sa;
	char err[DP_CONFIG_ERR_LEN];
	const char *file = NULL;
	const char *overrides[64];
	int n_over = 0;
	int c;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("slipstream-control %s\n", CTL_VERSION);
			return 0;
		case 'o':
			if (n_over == 64) {
				fprintf(stderr, "slipstream-control: too many --override options\n");
				return 2;
			}
			overrides[n_over++] = optarg;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		file = argv[optind++];
	if (dp_config_init(&m.cfg) < 0 ||
		dp_config_delegate(&m.cfg, "control.", ctl_config_key, &m.opts) < 0 ||
		dp_config_delegate(&m.cfg, "storage.", ignore_key, NULL) < 0)
		return 1;
	if (file != NULL && dp_config_load_file(&m.cfg, file, err, sizeof(err)) < 0)
		goto config_error;
	for (int i = 0; i < n_over; i++) {
		char key[256];
		const char *eq = strchr(overrides[i], '=');

		if (eq == NULL || (size_t)(eq - overrides[i]) >= sizeof(key)) {
			snprintf(err, sizeof(err), "--override: '%s' is not key=value", overrides[i]);
			goto config_error;
		}
		memcpy(key, overrides[i], (size_t)(eq - overrides[i]));
		key[eq - overrides[i]] = '\0';
		if (dp_config_set(&m.cfg, key, eq + 1, "--override", 0, err, sizeof(err)) < 0)
			goto config_error;
	}
	if (dp_config_finish(&m.cfg, file != NULL ? file : "--override", err, sizeof(err)) < 0)
		goto config_error;
	if ((m.opts.socket_path[0] == '\0' && default_path(m.opts.socket_path,
		sizeof(m.opts.socket_path), m.cfg.log_dirs, ".control.sock") < 0) ||
		(m.opts.dataplane_path[0] == '\0' && default_path(m.opts.dataplane_path,
		sizeof(m.opts.dataplane_path), m.cfg.log_dirs, ".dataplane.sock") < 0)) {
		snprintf(err, sizeof(err), "log.dirs is too long for the default socket paths; set "
			"control.socket.path and control.dataplane.socket.path");
		goto config_error;
	}

	snprintf(log_dir, sizeof(log_dir), "%.*s", (int)strcspn(m.cfg.log_dirs, ","),
		m.cfg.log_dirs);
	if (m.opts.meta_dir[0] == '\0' && (size_t)snprintf(m.opts.meta_dir,
		sizeof(m.opts.meta_dir), "%s/__slipstream_metadata", log_dir) >=
		sizeof(m.opts.meta_dir)) {
		snprintf(err, sizeof(err), "log.dirs is too long; set control.metadata.dir");
		goto config_error;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	m.listen_fd = -1;
	if (ctl_loop_init(&m.loop) < 0)
		return 1;
	memset(&cc, 0, sizeof(cc));
	cc.n_partitions = (int32_t)m.cfg.offsets_topic_num_partitions;
	cc.initial_rebalance_delay_ms = m.cfg.group_initial_rebalance_delay_ms;
	cc.min_session_timeout_ms = m.cfg.group_min_session_timeout_ms;
	cc.max_session_timeout_ms = m.cfg.group_max_session_timeout_ms;
	cc.offsets_retention_ms = m.cfg.offsets_retention_minutes * 60000;
	cc.retention_check_ms = m.cfg.offsets_retention_check_interval_ms;
	cc.max_metadata_bytes = 4096;
	cc.group_value_version = m.opts.group_value_version;
	cc.offset_value_version = m.opts.offset_value_version;
	m.store = ctl_store_create(&m.loop, m.opts.dataplane_path, cc.n_partitions, store_ready, &m);
	m.coord = m.store != NULL ? ctl_coord_create(&cc, coord_respond, coord_append, &m) :
				    NULL;
	if (m.coord == NULL) {
		fprintf(stderr, "control: out of memory\n");
		return 1;
	}
	ctl_store_set_coord(m.store, m.coord);
	ctl_store_set_idle(m.store, m.cfg.connections_max_idle_ms);

	/* The metadata log: its state, Raft, the admin APIs on it. */
	memset(&ac, 0, sizeof(ac));
	ac.node_id = (int32_t)m.cfg.node_id;
	ac.num_partitions = (int32_t)m.cfg.num_partitions;
	ac.default_replication_factor = (int16_t)m.cfg.default_replication_factor;
	ac.delete_topic_enable = m.cfg.delete_topic_enable;
	ac.legacy_dir = log_dir;
	meta_self(&m.cfg, &ac.self);
	memset(&rc_cfg, 0, sizeof(rc_cfg));
	rc_cfg.dir = m.opts.meta_dir;
	rc_cfg.node_id = (int32_t)m.cfg.node_id;
	rc_cfg.voters = m.cfg.controller_quorum_voters;
	rc_cfg.snapshot_threshold = m.opts.snapshot_threshold;
	m.meta = ctl_meta_state_create();
	m.admin = m.meta != NULL ? ctl_admin_create(&ac, m.meta, meta_propose,
		coord_respond, &m) : NULL;
	if (m.admin == NULL) {
		fprintf(stderr, "control: out of memory\n");
		return 1;
	}
	if (mkdir(log_dir, 0755) < 0 && errno != EEXIST)
		fprintf(stderr, "control: cannot create %s: %s\n", log_dir, strerror(errno));
	m.raft = ctl_raft_create(&m.loop, &rc_cfg, m.meta, meta_applied, &m);
	if (m.raft == NULL) {
		fprintf(stderr, "control: the metadata log in %s does not open\n", m.opts.meta_dir);
		return 1;
	}
	ctl_admin_start(m.admin, meta_is_leader, meta_barrier, meta_ready);
	/*
	 * Other modules of this process (the metrics endpoint, ctl_http.h)
	 * start here: ctl_loop_watch() for their sockets, ctl_loop_every() for
	 * periodic work; ctl_coord.h's introspection reads group state.
	 */
	if (ctl_loop_every(&m.loop, 50, coord_tick, &m) < 0 ||
		ctl_http_init(&m.loop, &m.cfg, m.coord) < 0) {
		fprintf(stderr, "control: start-up failed\n");
		return 1;
	}
	/* Error codes in the responses this process encodes: slipstream_requests_errors_total. */
	kp_error_hook = ctl_metrics_count_error;
	fprintf(stderr, "control: slipstream-control %s started; loading %s through %s\n",
		CTL_VERSION, CTL_OFFSETS_TOPIC, m.opts.dataplane_path);
	ctl_loop_run(&m.loop, &g_stop);
	fprintf(stderr, "control: stopping\n");
	ctl_http_fini();
	ctl_raft_destroy(m.raft); /* pending admin requests answer NOT_CONTROLLER */
	m.raft = NULL;
	for (int i = 0; i < CTL_MAX_CONNS; i++) {
		if (m.conns[i].id != 0)
			conn_close(&m, &m.conns[i]);
	}
	if (m.listen_fd >= 0) {
		ctl_loop_unwatch(&m.loop, m.listen_fd);
		close(m.listen_fd);
		unlink(m.opts.socket_path);
	}
	ctl_store_destroy(m.store);
	ctl_coord_destroy(m.coord);
	ctl_admin_destroy(m.admin);
	ctl_meta_state_destroy(m.meta);
	ctl_loop_fini(&m.loop);
	dp_config_free(&m.cfg);
	fprintf(stderr, "control: stopped cleanly\n");
	return 0;

config_error:
	fprintf(stderr, "slipstream-control: %s\n", err);
	dp_config_free(&m.cfg);
	return 2;
}
