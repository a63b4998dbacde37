/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_http: the HTTP/1.1 GET server of the control process (see ctl_http.h)
 * and its /metrics endpoint on the control loop.
 *
 * Each connection walks READ (gather the head, parse) -> WRITE (the whole
 * answer, built at once) -> closed. The answer is built in memory, so a
 * handler never waits on the socket; the deadline covers a client that
 * reads slowly as well as one that sends slowly.
 */
#include "ctl_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ctl_coord.h"
#include "ctl_loop.h"
#include "ctl_metrics.h"
#include "dp_config.h"

/* ---- buffer ---------------------------------------------------------------- */

void
ctl_buf_append(struct ctl_buf *b, const char *s, size_t n)
{
	size_t max = b->max ? b->max : (64u << 20);

	if (b->err != 0)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > max) {
			if (b->len + n + 1 > max) {
				b->err = -E2BIG;
				return;
			}
			cap = max;
		}
		p = realloc(b->p, cap);
		if (p == NULL) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
ctl_buf_printf(struct ctl_buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	if (b->err != 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = -EINVAL;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		ctl_buf_append(b, small, (size_t)n);
		return;
	}
	{
		char *big = malloc((size_t)n + 1);

		if (big == NULL) {
			b->err = -ENOMEM;
			return;
		}
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		ctl_buf_append(b, big, (size_t)n);
		free(big);
	}
}

void
ctl_buf_free(struct ctl_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

/* ---- parser ---------------------------------------------------------------- */

/* RFC 9110 5.6.2 tchar. */
static bool
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* End of the line starting at @p (the '\n'), or NULL when not within @end. */
static const char *
line_end(const char *p, const char *end)
{
	return memchr(p, '\n', (size_t)(end - p));
}

int
ctl_http_parse(const char *buf, size_t len, struct ctl_http_request *req)
{
	const char *end = buf + len, *p = buf, *nl, *sp1, *sp2, *lend;
	size_t tl;

	memset(req, 0, sizeof(*req));
	/* RFC 9112 2.2: ignore at least one empty line before the request line. */
	while (p < end && (*p == '\r' || *p == '\n') && p - buf < 4)
		p++;
	nl = line_end(p, end);
	if (nl == NULL)
		return len >= CTL_HTTP_MAX_REQUEST ? -E2BIG : 0;
	lend = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
	/* request-line = method SP request-target SP HTTP-version (RFC 9112 3) */
	sp1 = memchr(p, ' ', (size_t)(lend - p));
	if (sp1 == NULL || sp1 == p || (size_t)(sp1 - p) >= sizeof(req->method))
		return -EBADMSG;
	for (const char *q = p; q < sp1; q++) {
		if (!is_tchar((unsigned char)*q))
			return -EBADMSG;
	}
	sp2 = memchr(sp1 + 1, ' ', (size_t)(lend - sp1 - 1));
	if (sp2 == NULL || sp2 == sp1 + 1)
		return -EBADMSG;
	tl = (size_t)(sp2 - sp1 - 1);
	if (tl >= CTL_HTTP_MAX_TARGET)
		return -E2BIG;
	for (const char *q = sp1 + 1; q < sp2; q++) {
		if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f)
			return -EBADMSG;
	}
	if (sp1[1] != '/')
		return -EBADMSG; /* origin-form only; no proxy requests */
	if (lend - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/", 5) != 0 || sp2[6] < '0' ||
	    sp2[6] > '9' || sp2[7] != '.' || sp2[8] < '0' || sp2[8] > '9')
		return -EBADMSG;
	memcpy(req->method, p, (size_t)(sp1 - p));
	{
		const char *target = sp1 + 1;
		const char *qm = memchr(target, '?', tl);
		size_t pl = qm != NULL ? (size_t)(qm - target) : tl;

		memcpy(req->path, target, pl);
		if (qm != NULL)
			memcpy(req->query, qm + 1, tl - pl - 1);
	}
	if (sp2[6] != '1')
		return -EPROTONOSUPPORT;
	req->minor = sp2[8] - '0';
	/* header-field = field-name ":" OWS field-value OWS, until an empty line. */
	p = nl + 1;
	for (;;) {
		const char *colon;

		nl = line_end(p, end);
		if (nl == NULL)
			return len >= CTL_HTTP_MAX_REQUEST ? -E2BIG : 0;
		if ((size_t)(nl + 1 - buf) > CTL_HTTP_MAX_REQUEST)
			return -E2BIG;
		lend = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
		if (lend == p) {
			req->head_len = (size_t)(nl + 1 - buf);
			return 1;
		}
		if (*p == ' ' || *p == '\t')
			return -EBADMSG; /* obs-fold, RFC 9112 5.2: reject */
		colon = memchr(p, ':', (size_t)(lend - p));
		if (colon == NULL || colon == p)
			return -EBADMSG;
		for (const char *q = p; q < colon; q++) {
			if (!is_tchar((unsigned char)*q))
				return -EBADMSG;
		}
		for (const char *q = colon + 1; q < lend; q++) {
			unsigned char c = (unsigned char)*q;

			if ((c < ' ' && c != '\t') || c == 0x7f)
				return -EBADMSG;
		}
		p = nl + 1;
	}
}

/* ---- server ---------------------------------------------------------------- */

enum client_state {
	CLIENT_FREE = 0,
	CLIENT_READ,
	CLIENT_WRITE,
};

struct ctl_http_client {
	int fd;
	enum client_state state;
	int64_t deadline_ms; /* monotonic */
	size_t in_len;
	char in[CTL_HTTP_MAX_REQUEST];
	struct ctl_buf out; /* the whole answer */
	size_t out_off;
};

struct ctl_http_server {
	int lfd;
	uint16_t port;
	int timeout_ms;
	const struct ctl_http_route *routes;
	int n_routes;
	struct ctl_http_client clients[CTL_HTTP_MAX_CLIENTS];
};

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct ctl_http_server *
ctl_http_server_open(const char *host, uint16_t port, const struct ctl_http_route *routes,
                     int n_routes, int timeout_ms)
{
	struct addrinfo hints, *res = NULL;
	struct ctl_http_server *s;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char portstr[8];
	int one = 1, rc, err;

	if (host == NULL || routes == NULL || n_routes < 0 || timeout_ms <= 0) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->lfd = -1;
	for (int i = 0; i < CTL_HTTP_MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		err = EINVAL;
		goto fail;
	}
	s->lfd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0) {
		err = errno;
		goto fail;
	}
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->lfd, res->ai_addr, res->ai_addrlen) < 0 || listen(s->lfd, 64) < 0 ||
	    getsockname(s->lfd, (struct sockaddr *)&ss, &sl) < 0) {
		err = errno;
		goto fail;
	}
	freeaddrinfo(res);
	s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                         : ((struct sockaddr_in *)&ss)->sin_port);
	s->routes = routes;
	s->n_routes = n_routes;
	s->timeout_ms = timeout_ms;
	return s;
fail:
	if (res != NULL)
		freeaddrinfo(res);
	if (s->lfd >= 0)
		close(s->lfd);
	free(s);
	errno = err;
	return NULL;
}

uint16_t
ctl_http_server_port(const struct ctl_http_server *s)
{
	return s->port;
}

static void
client_close(struct ctl_http_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = CLIENT_FREE;
	c->in_len = 0;
	c->out_off = 0;
	ctl_buf_free(&c->out);
}

static const char *
reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Internal Server Error";
	}
}

/* Build the whole answer into c->out and switch to writing. */
static void
respond(struct ctl_http_client *c, int status, const char *ctype, const struct ctl_buf *body,
        bool head_only)
{
	const char *text = body != NULL && body->len > 0 ? body->p : "";
	size_t blen = body != NULL ? body->len : 0;
	char simple[64];

	if (body == NULL) {
		/* Error answers carry their reason as a short text body. */
		blen = (size_t)snprintf(simple, sizeof(simple), "%d %s\n", status, reason(status));
		text = simple;
		ctype = "text/plain; charset=utf-8";
	}
	ctl_buf_free(&c->out);
	ctl_buf_printf(&c->out,
	               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	               "Connection: close\r\nCache-Control: no-store\r\n%s\r\n",
	               status, reason(status), ctype, blen,
	               status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!head_only)
		ctl_buf_append(&c->out, text, blen);
	if (c->out.err != 0) {
		client_close(c);
		return;
	}
	c->out_off = 0;
	c->state = CLIENT_WRITE;
}

static void
dispatch(struct ctl_http_server *s, struct ctl_http_client *c, const struct ctl_http_request *req)
{
	bool head = strcmp(req->method, "HEAD") == 0;
	const struct ctl_http_route *route = NULL;
	struct ctl_buf body = {0};
	const char *ctype = "text/plain; charset=utf-8";
	int status;

	for (int i = 0; i < s->n_routes; i++) {
		if (strcmp(s->routes[i].path, req->path) == 0)
			route = &s->routes[i];
	}
	if (route == NULL) {
		respond(c, 404, NULL, NULL, head);
		return;
	}
	if (!head && strcmp(req->method, "GET") != 0) {
		respond(c, 405, NULL, NULL, false);
		return;
	}
	status = route->fn(route->arg, req, &body, &ctype);
	if (status < 0 || body.err != 0)
		respond(c, 500, NULL, NULL, head);
	else if (status != 200)
		respond(c, status, NULL, NULL, head);
	else
		respond(c, 200, ctype, &body, head);
	ctl_buf_free(&body);
}

/* Read what is there; answer once the head is complete. 1 if answered. */
static int
client_read(struct ctl_http_server *s, struct ctl_http_client *c)
{
	struct ctl_http_request req;
	ssize_t n;
	int rc;

	n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		client_close(c);
		return 0;
	}
	if (n < 0)
		return 0;
	c->in_len += (size_t)n;
	rc = ctl_http_parse(c->in, c->in_len, &req);
	if (rc == 0 && c->in_len < sizeof(c->in))
		return 0;
	if (rc == 1)
		dispatch(s, c, &req);
	else if (rc == -EPROTONOSUPPORT)
		respond(c, 505, NULL, NULL, false);
	else if (rc == -E2BIG || rc == 0)
		respond(c, 431, NULL, NULL, false);
	else
		respond(c, 400, NULL, NULL, false);
	return 1;
}

static void
client_write(struct ctl_http_client *c)
{
	ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
	                 MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			client_close(c);
		return;
	}
	c->out_off += (size_t)n;
	if (c->out_off == c->out.len) {
		/* Half-close and let the client see EOF; the slot is reused now. */
		shutdown(c->fd, SHUT_WR);
		client_close(c);
	}
}

int
ctl_http_server_poll(struct ctl_http_server *s, int wait_ms)
{
	struct pollfd pf[CTL_HTTP_MAX_CLIENTS + 1];
	int idx[CTL_HTTP_MAX_CLIENTS + 1];
	int np = 0, answered = 0, free_slots = 0, rc;
	int64_t now;

	for (int i = 0; i < CTL_HTTP_MAX_CLIENTS; i++) {
		struct ctl_http_client *c = &s->clients[i];

		if (c->state == CLIENT_FREE) {
			free_slots++;
			continue;
		}
		pf[np].fd = c->fd;
		pf[np].events = c->state == CLIENT_READ ? POLLIN : POLLOUT;
		pf[np].revents = 0;
		idx[np++] = i;
	}
	if (free_slots > 0) {
		/* A full table leaves new connections in the backlog. */
		pf[np].fd = s->lfd;
		pf[np].events = POLLIN;
		pf[np].revents = 0;
		idx[np++] = -1;
	}
	rc = poll(pf, (nfds_t)np, wait_ms);
	if (rc < 0)
		return errno == EINTR ? 0 : -errno;
	for (int k = 0; k < np; k++) {
		struct ctl_http_client *c;

		if (pf[k].revents == 0)
			continue;
		if (idx[k] < 0)
			continue;
		c = &s->clients[idx[k]];
		if (c->state == CLIENT_READ)
			answered += client_read(s, c);
		if (c->state == CLIENT_WRITE)
			client_write(c);
	}
	now = mono_ms();
	for (int i = 0; i < CTL_HTTP_MAX_CLIENTS; i++) {
		if (s->clients[i].state != CLIENT_FREE && now > s->clients[i].deadline_ms)
			client_close(&s->clients[i]);
	}
	for (int i = 0; i < CTL_HTTP_MAX_CLIENTS; i++) {
		struct ctl_http_client *c = &s->clients[i];
		int fd;

		if (c->state != CLIENT_FREE)
			continue;
		fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			break;
		c->fd = fd;
		c->state = CLIENT_READ;
		c->in_len = 0;
		c->deadline_ms = now + s->timeout_ms;
		/* The request is often there with the connection: try it now. */
		answered += client_read(s, c);
		if (c->state == CLIENT_WRITE)
			client_write(c);
	}
	return answered;
}

void
ctl_http_server_close(struct ctl_http_server *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < CTL_HTTP_MAX_CLIENTS; i++) {
		if (s->clients[i].state != CLIENT_FREE)
			client_close(&s->clients[i]);
	}
	if (s->lfd >= 0)
		close(s->lfd);
	free(s);
}

/* ---- the control process's /metrics ---------------------------------------- */

/* control.metrics.listen, "" until set (then CTL_HTTP_DEFAULT_LISTEN). */
static char g_http_listen[272];

static struct {
	struct ctl_http_server *srv;
	struct ctl_metrics metrics;
	struct ctl_http_route routes[1];
} g_http;

int
ctl_http_config_key(void *arg, const char *key, const char *value)
{
	(void)arg;
	if (strcmp(key, "control.metrics.listen") == 0) {
		if (strlen(value) >= sizeof(g_http_listen))
			return -EINVAL;
		snprintf(g_http_listen, sizeof(g_http_listen), "%s", value);
		return 0;
	}
	return -ENOENT;
}

static void
http_tick(void *arg, int64_t now_ms)
{
	(void)now_ms;
	if (g_http.srv != NULL)
		ctl_http_server_poll(g_http.srv, 0);
}

/* "host:port" (IPv6 in brackets) into host and port. */
static int
split_listen(const char *s, char *host, size_t hcap, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	size_t hl;
	char *end;
	long p;

	if (colon == NULL)
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
		s++;
		hl -= 2;
	}
	if (hl == 0 || hl >= hcap)
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == colon + 1 || p < 0 || p > 65535)
		return -EINVAL;
	*port = (uint16_t)p;
	return 0;
}

int
ctl_http_init(struct ctl_loop *l, const struct dp_config *cfg, struct ctl_coord *coord)
{
	const char *listen_at = g_http_listen;
	const char *shm = cfg->metrics_shm_path;
	char host[256], path[256];
	uint16_t port;
	int rc;

	memset(&g_http, 0, sizeof(g_http));
	if (listen_at == NULL || *listen_at == '\0')
		listen_at = CTL_HTTP_DEFAULT_LISTEN;
	if (strcmp(listen_at, "off") == 0)
		return 0;
	if (split_listen(listen_at, host, sizeof(host), &port) < 0) {
		fprintf(stderr, "control: metrics listen address '%s' is not host:port\n",
		        listen_at);
		return -EINVAL;
	}
	if (shm == NULL || *shm == '\0') {
		ctl_metrics_default_path(cfg->node_id, path, sizeof(path));
		shm = path;
	}
	rc = ctl_metrics_init(&g_http.metrics, shm);
	if (rc < 0)
		return rc;
	if (coord != NULL)
		ctl_metrics_set_offsets(&g_http.metrics, ctl_coord_offsets_foreach, coord);
	g_http.routes[0].path = "/metrics";
	g_http.routes[0].fn = ctl_metrics_http;
	g_http.routes[0].arg = &g_http.metrics;
	g_http.srv = ctl_http_server_open(host, port, g_http.routes, 1, 10000);
	if (g_http.srv == NULL) {
		/* Not fatal: groups and offsets matter more than their metrics. */
		fprintf(stderr,
		        "control: metrics: cannot listen on %s (%s); running without "
		        "/metrics (control.metrics.listen)\n",
		        listen_at, strerror(errno));
		ctl_metrics_fini(&g_http.metrics);
		return 0;
	}
	/*
	 * Polled every 20 ms rather than watched: a level-triggered listener
	 * whose connections wait for a free slot would spin the loop.
	 */
	rc = ctl_loop_every(l, 20, http_tick, NULL);
	if (rc < 0) {
		ctl_http_fini();
		return rc;
	}
	fprintf(stderr, "control: metrics on http://%s:%u/metrics from %s\n", host,
	        ctl_http_server_port(g_http.srv), shm);
	return 0;
}

void
ctl_http_fini(void)
{
	if (g_http.srv != NULL) {
		ctl_http_server_close(g_http.srv); /* the timer then finds no server */
		ctl_metrics_fini(&g_http.metrics);
	}
	memset(&g_http, 0, sizeof(g_http));
}
