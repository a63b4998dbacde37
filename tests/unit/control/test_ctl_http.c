/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_http: the request-head parser (complete, partial, malformed, too
 * large, other HTTP versions, obs-fold, query split) and the server over
 * real loopback sockets driven by hand from the test thread: 200 with the
 * handler's body, HEAD without it, 404, 405 with Allow, 400, 431, 505, 500
 * for a failing handler, a silent client dropped at its deadline, and more
 * clients than slots (the rest wait in the backlog and are served later).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "ctl_http.h"

static void
test_parse_complete(void **state)
{
	static const char req[] =
	        "GET /metrics?x=1&y HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\nBODY";
	struct ctl_http_request r;

	(void)state;
	assert_int_equal(ctl_http_parse(req, sizeof(req) - 1, &r), 1);
	assert_string_equal(r.method, "GET");
	assert_string_equal(r.path, "/metrics");
	assert_string_equal(r.query, "x=1&y");
	assert_int_equal(r.minor, 1);
	assert_int_equal(r.head_len, sizeof(req) - 1 - 4);
	/* Bare LF line ends and HTTP/1.0 are accepted too. */
	assert_int_equal(ctl_http_parse("HEAD / HTTP/1.0\n\n", 17, &r), 1);
	assert_string_equal(r.method, "HEAD");
	assert_string_equal(r.path, "/");
	assert_int_equal(r.minor, 0);
}

static void
test_parse_partial(void **state)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
	struct ctl_http_request r;

	(void)state;
	/* Every proper prefix needs more bytes. */
	for (size_t n = 0; n < sizeof(req) - 1; n++)
		assert_int_equal(ctl_http_parse(req, n, &r), 0);
	assert_int_equal(ctl_http_parse(req, sizeof(req) - 1, &r), 1);
}

static void
test_parse_malformed(void **state)
{
	static const char *const bad[] = {
	        "GET/metrics HTTP/1.1\r\n\r\n",      /* no space */
	        "GET  /metrics HTTP/1.1\r\n\r\n",    /* empty target */
	        "G(T /metrics HTTP/1.1\r\n\r\n",     /* not a token */
	        "GET metrics HTTP/1.1\r\n\r\n",      /* not origin-form */
	        "GET /me\x01trics HTTP/1.1\r\n\r\n", /* control byte in the target */
	        "GET /metrics HTTP/1.1 \r\n\r\n",    /* trailing space */
	        "GET /metrics HTTX/1.1\r\n\r\n",     /* not HTTP */
	        "GET /metrics HTTP/11\r\n\r\n",      /* no dot */
	        "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n",
	        "GET /metrics HTTP/1.1\r\n: empty-name\r\n\r\n",
	        "GET /metrics HTTP/1.1\r\nBad Name: x\r\n\r\n",
	        "GET /metrics HTTP/1.1\r\nA: b\r\n continued\r\n\r\n", /* obs-fold */
	        "GET /metrics HTTP/1.1\r\nA: b\x01\r\n\r\n",
	        "VERYLONGMETHODNAME / HTTP/1.1\r\n\r\n",
	};
	struct ctl_http_request r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = ctl_http_parse(bad[i], strlen(bad[i]), &r);

		if (rc != -EBADMSG)
			fail_msg("case %zu: '%s' gave %d", i, bad[i], rc);
	}
	assert_int_equal(ctl_http_parse("GET / HTTP/2.0\r\n\r\n", 18, &r), -EPROTONOSUPPORT);
	assert_int_equal(ctl_http_parse("GET / HTTP/0.9\r\n\r\n", 18, &r), -EPROTONOSUPPORT);
}

static void
test_parse_too_large(void **state)
{
	char *buf = malloc(CTL_HTTP_MAX_REQUEST + 64);
	struct ctl_http_request r;
	size_t n;

	(void)state;
	/* A target over the limit. */
	n = (size_t)snprintf(buf, 64, "GET /");
	memset(buf + n, 'a', CTL_HTTP_MAX_TARGET);
	n += CTL_HTTP_MAX_TARGET;
	n += (size_t)snprintf(buf + n, 64, " HTTP/1.1\r\n\r\n");
	assert_int_equal(ctl_http_parse(buf, n, &r), -E2BIG);
	/* Headers that never end within the limit. */
	n = (size_t)snprintf(buf, 64, "GET / HTTP/1.1\r\n");
	while (n + 12 < CTL_HTTP_MAX_REQUEST + 32)
		n += (size_t)snprintf(buf + n, 64, "X-A: bbbb\r\n");
	assert_int_equal(ctl_http_parse(buf, n, &r), -E2BIG);
	/* A request line without its end. */
	memset(buf, 'G', CTL_HTTP_MAX_REQUEST);
	assert_int_equal(ctl_http_parse(buf, CTL_HTTP_MAX_REQUEST, &r), -E2BIG);
	free(buf);
}

/* ---- the server ------------------------------------------------------------- */

static int g_calls;

static int
hello(void *arg, const struct ctl_http_request *req, struct ctl_buf *body, const char **ctype)
{
	(void)req;
	g_calls++;
	ctl_buf_printf(body, "hello %s\n", (const char *)arg);
	*ctype = "text/plain; version=0.0.4";
	return 200;
}

static int
broken(void *arg, const struct ctl_http_request *req, struct ctl_buf *body, const char **ctype)
{
	(void)arg;
	(void)req;
	(void)body;
	(void)ctype;
	return -EIO;
}

static const struct ctl_http_route g_routes[] = {
        {"/metrics", hello, "world"},
        {"/broken", broken, NULL},
};

static int
connect_to(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Drive the server until the client fd sees EOF; return what it read. */
static char *
exchange(struct ctl_http_server *s, int fd, const char *req, size_t len)
{
	char *out = calloc(1, 65536);
	size_t got = 0;

	if (len > 0)
		assert_int_equal(send(fd, req, len, 0), (ssize_t)len);
	for (int i = 0; i < 400; i++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		ctl_http_server_poll(s, 5);
		if (poll(&p, 1, 0) <= 0)
			continue;
		n = recv(fd, out + got, 65535 - got, MSG_DONTWAIT);
		if (n == 0)
			return out;
		if (n > 0)
			got += (size_t)n;
	}
	fail_msg("no EOF from the server; read '%s'", out);
	return out;
}

static void
test_server_answers(void **state)
{
	struct ctl_http_server *s = ctl_http_server_open("127.0.0.1", 0, g_routes, 2, 2000);
	static const char get[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	char *r;
	int fd;

	(void)state;
	assert_non_null(s);
	assert_true(ctl_http_server_port(s) != 0);
	g_calls = 0;

	fd = connect_to(ctl_http_server_port(s));
	r = exchange(s, fd, get, sizeof(get) - 1);
	assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4\r\n"));
	assert_non_null(strstr(r, "Content-Length: 12\r\n"));
	assert_non_null(strstr(r, "Connection: close\r\n"));
	assert_non_null(strstr(r, "\r\n\r\nhello world\n"));
	free(r);
	close(fd);

	/* A request split over two writes. */
	fd = connect_to(ctl_http_server_port(s));
	assert_int_equal(send(fd, get, 10, 0), 10);
	for (int i = 0; i < 5; i++)
		ctl_http_server_poll(s, 5);
	r = exchange(s, fd, get + 10, sizeof(get) - 1 - 10);
	assert_non_null(strstr(r, "\r\n\r\nhello world\n"));
	free(r);
	close(fd);
	assert_int_equal(g_calls, 2);

	fd = connect_to(ctl_http_server_port(s));
	r = exchange(s, fd, "HEAD /metrics HTTP/1.1\r\n\r\n", 26);
	assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(r, "Content-Length: 12\r\n"));
	assert_null(strstr(r, "hello"));
	free(r);
	close(fd);

	fd = connect_to(ctl_http_server_port(s));
	r = exchange(s, fd, "GET /nope HTTP/1.1\r\n\r\n", 22);
	assert_non_null(strstr(r, "HTTP/1.1 404 Not Found\r\n"));
	free(r);
	close(fd);

	fd = connect_to(ctl_http_server_port(s));
	r = exchange(s, fd, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 46);
	assert_non_null(strstr(r, "HTTP/1.1 405 Method Not Allowed\r\n"));
	assert_non_null(strstr(r, "Allow: GET, HEAD\r\n"));
	free(r);
	close(fd);

	fd = connect_to(ctl_http_server_port(s));
	r = exchange(s, fd, "GET /metrics\r\n\r\n", 16);
	assert_non_null(strstr(r, "HTTP/1.1 400 Bad Request\r\n"));
	free(r);
	close(fd);

	fd = connect_to(ctl_http_server_port(s));
	r = exchange(s, fd, "GET /metrics HTTP/2.0\r\n\r\n", 25);
	assert_non_null(strstr(r, "HTTP/1.1 505 "));
	free(r);
	close(fd);

	fd = connect_to(ctl_http_server_port(s));
	r = exchange(s, fd, "GET /broken HTTP/1.1\r\n\r\n", 24);
	assert_non_null(strstr(r, "HTTP/1.1 500 "));
	free(r);
	close(fd);
	assert_int_equal(g_calls, 3);
	ctl_http_server_close(s);
}

static void
test_server_oversized_head(void **state)
{
	struct ctl_http_server *s = ctl_http_server_open("127.0.0.1", 0, g_routes, 2, 2000);
	char *big = malloc(CTL_HTTP_MAX_REQUEST + 100);
	size_t n;
	char *r;
	int fd;

	(void)state;
	assert_non_null(s);
	n = (size_t)snprintf(big, 64, "GET /metrics HTTP/1.1\r\n");
	while (n + 12 < CTL_HTTP_MAX_REQUEST + 50)
		n += (size_t)snprintf(big + n, 64, "X-A: bbbb\r\n");
	fd = connect_to(ctl_http_server_port(s));
	r = exchange(s, fd, big, n);
	assert_non_null(strstr(r, "HTTP/1.1 431 "));
	free(r);
	free(big);
	close(fd);
	ctl_http_server_close(s);
}

static void
test_server_deadline(void **state)
{
	struct ctl_http_server *s = ctl_http_server_open("127.0.0.1", 0, g_routes, 2, 100);
	struct timespec t0, t1;
	char *r;
	int fd;

	(void)state;
	assert_non_null(s);
	fd = connect_to(ctl_http_server_port(s));
	/* Half a request, then silence: dropped without an answer after ~100 ms. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = exchange(s, fd, "GET /met", 8);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_string_equal(r, "");
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 90);
	free(r);
	close(fd);
	ctl_http_server_close(s);
}

static void
test_server_more_clients_than_slots(void **state)
{
	struct ctl_http_server *s = ctl_http_server_open("127.0.0.1", 0, g_routes, 2, 5000);
	static const char get[] = "GET /metrics HTTP/1.1\r\n\r\n";
	enum { N = CTL_HTTP_MAX_CLIENTS + 4 };
	int fds[N];

	(void)state;
	assert_non_null(s);
	g_calls = 0;
	/* Every client connects and sends first; the server then serves them all. */
	for (int i = 0; i < N; i++) {
		fds[i] = connect_to(ctl_http_server_port(s));
		assert_int_equal(send(fds[i], get, sizeof(get) - 1, 0), (ssize_t)(sizeof(get) - 1));
	}
	for (int i = 0; i < N; i++) {
		char *r = exchange(s, fds[i], NULL, 0);

		assert_non_null(strstr(r, "\r\n\r\nhello world\n"));
		free(r);
		close(fds[i]);
	}
	assert_int_equal(g_calls, N);
	ctl_http_server_close(s);
}

static void
test_buf_limit(void **state)
{
	struct ctl_buf b = {.max = 64};

	(void)state;
	ctl_buf_printf(&b, "%s", "0123456789012345678901234567890123456789");
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, 40);
	ctl_buf_printf(&b, "%s", "0123456789012345678901234567890123456789");
	assert_int_equal(b.err, -E2BIG);
	assert_int_equal(b.len, 40); /* nothing half-written */
	ctl_buf_free(&b);
	b.max = 0; /* the default limit */
	/* Long formatted text takes the heap path. */
	ctl_buf_printf(&b, "%0600d|", 7);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, 601);
	assert_int_equal(b.p[600], '|');
	ctl_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_complete),
	        cmocka_unit_test(test_parse_partial),
	        cmocka_unit_test(test_parse_malformed),
	        cmocka_unit_test(test_parse_too_large),
	        cmocka_unit_test(test_server_answers),
	        cmocka_unit_test(test_server_oversized_head),
	        cmocka_unit_test(test_server_deadline),
	        cmocka_unit_test(test_server_more_clients_than_slots),
	        cmocka_unit_test(test_buf_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
