/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_http: a minimal HTTP/1.1 server for the control process's read-only
 * endpoints (/metrics). GET and HEAD only, one request per connection
 * (answers carry "Connection: close"), no request bodies.
 *
 * Robustness over features: the request head is bounded
 * (CTL_HTTP_MAX_REQUEST bytes, else 431), every connection has a deadline
 * for the whole exchange (slow or silent clients are dropped), at most
 * CTL_HTTP_MAX_CLIENTS connections are served at once (more wait in the
 * listen backlog), and nothing blocks: ctl_http_server_poll() runs one
 * bounded round of poll(), so the caller can run it from its own loop or a
 * thread of its own. Unknown paths answer 404, other methods 405 with Allow,
 * malformed requests 400, HTTP versions other than 1.x 505.
 *
 * The parser, ctl_http_parse(), is separate and pure (fuzzed by
 * tests/fuzz/fuzz_http.c).
 */
#ifndef SLP_CTL_HTTP_H
#define SLP_CTL_HTTP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Bytes of request line plus headers accepted. */
#define CTL_HTTP_MAX_REQUEST 8192
/** Connections served at once. */
#define CTL_HTTP_MAX_CLIENTS 16
/** Longest request target (path and query). */
#define CTL_HTTP_MAX_TARGET 1024

/* A parsed request head. Strings are copies, NUL-terminated. */
struct ctl_http_request {
	char method[16];                 /* "GET" */
	char path[CTL_HTTP_MAX_TARGET];  /* target up to '?' */
	char query[CTL_HTTP_MAX_TARGET]; /* after '?', "" if none */
	int minor;                       /* HTTP/1.<minor> */
	size_t head_len;                 /* bytes of the head, through the blank line */
};

/**
 * Parse the request head at @buf (@len bytes received so far, borrowed).
 *
 * @return 1 with @req filled when the head is complete; 0 when more bytes
 *   are needed (and @len is below CTL_HTTP_MAX_REQUEST); -EBADMSG for a
 *   malformed request line or header; -E2BIG when the head does not end
 *   within CTL_HTTP_MAX_REQUEST bytes or the target is too long;
 *   -EPROTONOSUPPORT for an HTTP version other than 1.0 or 1.1.
 */
int ctl_http_parse(const char *buf, size_t len, struct ctl_http_request *req);

/* A growable text buffer for response bodies. */
struct ctl_buf {
	char *p;    /* heap, owned; NUL-terminated when len > 0 */
	size_t len; /* bytes used */
	size_t cap; /* bytes allocated */
	size_t max; /* growth limit (0: 64 MiB) */
	int err;    /* 0, or -ENOMEM / -E2BIG after a failed append (sticky) */
};

/** Append printf-formatted text. Failures set b->err; later appends do nothing. */
void ctl_buf_printf(struct ctl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Append @n bytes. */
void ctl_buf_append(struct ctl_buf *b, const char *s, size_t n);

/** Free the buffer's memory and reset it. */
void ctl_buf_free(struct ctl_buf *b);

/**
 * A route's handler: fill @body (empty on entry) and set *@content_type (a
 * static string). Runs in the caller of ctl_http_server_poll().
 *
 * @return the HTTP status to answer (200, or 503 when the data is not
 *   available); a negative errno answers 500.
 */
typedef int (*ctl_http_handler_fn)(void *arg, const struct ctl_http_request *req,
                                   struct ctl_buf *body, const char **content_type);

struct ctl_http_route {
	const char *path; /* exact match, e.g. "/metrics" */
	ctl_http_handler_fn fn;
	void *arg;
};

struct ctl_http_server;

/**
 * Listen on @host:@port (port 0: the kernel picks; see
 * ctl_http_server_port()). @routes is borrowed and must outlive the server.
 *
 * @param timeout_ms  deadline for each connection's whole exchange
 * @return the server, or NULL with errno set (EADDRINUSE, EINVAL, ...).
 */
struct ctl_http_server *ctl_http_server_open(const char *host, uint16_t port,
                                             const struct ctl_http_route *routes, int n_routes,
                                             int timeout_ms);

/** The port listened on. */
uint16_t ctl_http_server_port(const struct ctl_http_server *s);

/**
 * Run one round: wait up to @wait_ms for activity, accept, read, answer,
 * write, drop connections past their deadline.
 *
 * @return the number of requests answered this round (>= 0), or a negative
 *   errno when poll() itself failed (EINTR returns 0).
 */
int ctl_http_server_poll(struct ctl_http_server *s, int wait_ms);

/** Close every connection and the listener; free the server. */
void ctl_http_server_close(struct ctl_http_server *s);

/* ---- the control process's endpoint (ctl_main.c) ------------------------ */

struct ctl_loop;
struct dp_config;
struct ctl_coord;

/**
 * Configuration keys of the metrics endpoint, delegated by ctl_main.c:
 * control.metrics.listen = HOST:PORT (default CTL_HTTP_DEFAULT_LISTEN;
 * "off" serves nothing). Call before ctl_http_init().
 *
 * @return 0; -ENOENT for a key of another module; -EINVAL for a value too long.
 */
int ctl_http_config_key(void *arg, const char *key, const char *value);

/**
 * Serve /metrics (ctl_metrics.h) on the control loop @l: listen on
 * control.metrics.listen and read the dataplane's segment at
 * @cfg->metrics_shm_path (empty: the default path of @cfg->node_id, as the
 * dataplane does). @coord (may be NULL): committed offsets for consumer lag.
 * All borrowed until ctl_http_fini(). A listener that cannot be opened is
 * logged and the process runs without /metrics.
 *
 * @return 0, or -EINVAL for a malformed control.metrics.listen.
 */

int ctl_http_init(struct ctl_loop *l, const struct dp_config *cfg, struct ctl_coord *coord);

/** Stop serving and free what ctl_http_init() set up. */
void ctl_http_fini(void);

/** Where ctl_http_init() listens unless told otherwise. */
#define CTL_HTTP_DEFAULT_LISTEN "127.0.0.1:9644"

#endif /* SLP_CTL_HTTP_H */
