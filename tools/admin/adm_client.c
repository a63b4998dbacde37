/* SPDX-License-Identifier: Apache-2.0 */
/*
 * adm_client: blocking Kafka client connection for slipstream-admin (see
 * adm_client.h). Frames are a 4-byte big-endian size and the message; each
 * call encodes header and body with the generated codecs into one buffer,
 * writes it whole, then reads exactly one response frame and checks its
 * correlation id. Waits use poll() with the connection's timeout, so a
 * broker that never answers costs at most that long per call.
 */
#include "adm_client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Largest response frame accepted (a describe of thousands of partitions fits). */
#define ADM_MAX_FRAME (64u << 20)
/* Highest ApiVersions version used (v3 adds the client software fields). */
#define ADM_API_VERSIONS_MAX 3

void *
adm_alloc(struct adm_conn *c, size_t size)
{
	struct adm_chunk *ch = calloc(1, sizeof(*ch) + size);

	if (ch == NULL)
		return NULL;
	ch->size = size;
	ch->next = c->chunks;
	c->chunks = ch;
	return ch->data;
}

struct kp_str
adm_str(const char *s)
{
	struct kp_str k = {.ptr = s, .len = -1};

	if (s != NULL)
		k.len = (int32_t)strlen(s);
	return k;
}

char *
adm_strdup(struct adm_conn *c, const struct kp_str *s)
{
	int32_t n = s->len > 0 ? s->len : 0;
	char *p = adm_alloc(c, (size_t)n + 1);

	if (p != NULL && n > 0)
		memcpy(p, s->ptr, (size_t)n);
	return p;
}

void
adm_uuid_format(const struct kp_uuid *u, char out[23])
{
	static const char tab[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint32_t acc = 0;
	int bits = 0, o = 0;

	for (int i = 0; i < 16; i++) {
		acc = (acc << 8) | u->b[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = tab[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = tab[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}

int
adm_report(const char *what, int16_t code, const struct kp_str *message)
{
	if (code == 0)
		return 0;
	fprintf(stderr, "Error: %s: %s (%d)", what, kp_error_name(code), code);
	if (message != NULL && message->len > 0)
		fprintf(stderr, ": %.*s", message->len, message->ptr);
	fputc('\n', stderr);
	return ADM_EXIT_KAFKA;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for @events on fd until @deadline (monotonic ms). 0, or -ETIMEDOUT / -errno. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int64_t left = deadline - now_ms();
		int rc;

		if (left <= 0)
			return -ETIMEDOUT;
		rc = poll(&p, 1, (int)left);
		if (rc > 0)
			return 0;
		if (rc == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int
write_all(struct adm_conn *c, const uint8_t *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		ssize_t w;
		int rc = wait_fd(c->fd, POLLOUT, deadline);

		if (rc < 0)
			return rc;
		w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
read_all(struct adm_conn *c, uint8_t *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		ssize_t r;
		int rc = wait_fd(c->fd, POLLIN, deadline);

		if (rc < 0)
			return rc;
		r = recv(c->fd, p, n, MSG_DONTWAIT);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Split "host:port" (IPv6 as "[addr]:port"). */
static int
split_addr(const char *addr, size_t len, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon;
	const char *h = addr;
	size_t hl;

	if (len == 0)
		return -EINVAL;
	colon = memrchr(addr, ':', len);
	if (colon == NULL || colon == addr || (size_t)(addr + len - colon - 1) >= pcap ||
	    colon + 1 == addr + len)
		return -EINVAL;
	hl = (size_t)(colon - addr);
	if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl >= hcap)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memcpy(port, colon + 1, (size_t)(addr + len - colon - 1));
	port[addr + len - colon - 1] = '\0';
	return 0;
}

static int
connect_one(struct adm_conn *c, const char *addr, size_t len)
{
	struct addrinfo hints, *res = NULL, *ai;
	char host[256], port[16];
	int64_t deadline = now_ms() + c->timeout_ms;
	int rc = split_addr(addr, len, host, sizeof(host), port, sizeof(port));

	if (rc < 0) {
		fprintf(stderr, "Error: '%.*s' is not host:port\n", (int)len, addr);
		return rc;
	}
	snprintf(c->addr, sizeof(c->addr), "%s:%s", host, port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "Error: %s: %s\n", c->addr, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	rc = -ECONNREFUSED;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		                ai->ai_protocol);
		int one = 1, err = 0;
		socklen_t el = sizeof(err);

		if (fd < 0) {
			rc = -errno;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			rc = -errno;
			close(fd);
			continue;
		}
		rc = wait_fd(fd, POLLOUT, deadline);
		if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err != 0)
			rc = -err;
		if (rc < 0) {
			close(fd);
			continue;
		}
		c->fd = fd;
		break;
	}
	freeaddrinfo(res);
	if (c->fd < 0)
		fprintf(stderr, "Error: cannot connect to %s: %s\n", c->addr, strerror(-rc));
	return c->fd < 0 ? rc : 0;
}

static int
negotiate(struct adm_conn *c)
{
	struct kp_api_versions_request req;
	struct kp_api_versions_response resp;
	int16_t v = ADM_API_VERSIONS_MAX;
	int rc;

	for (int i = 0; i < KP_API_KEY_COUNT; i++) {
		c->ver_min[i] = 0;
		c->ver_max[i] = -1;
	}
	kp_api_versions_request_init(&req);
	req.client_software_name = adm_str("slipstream-admin");
	req.client_software_version = adm_str("0.1.0");
	rc = adm_call(c, KP_API_API_VERSIONS, v, &req, &resp);
	if (rc == 0 && resp.error_code == KP_ERR_UNSUPPORTED_VERSION) {
		v = 0; /* the broker answered in v0 and lists what it has (KIP-511) */
		rc = adm_call(c, KP_API_API_VERSIONS, v, &req, &resp);
	}
	if (rc < 0)
		return rc;
	if (resp.error_code != 0) {
		adm_report("ApiVersions", resp.error_code, NULL);
		return -EPROTO;
	}
	for (int32_t i = 0; i < resp.api_keys.count; i++) {
		const struct kp_api_versions_response_api_version *a = &resp.api_keys.items[i];

		if (a->api_key < 0 || a->api_key >= KP_API_KEY_COUNT)
			continue;
		c->ver_min[a->api_key] = a->min_version;
		c->ver_max[a->api_key] = a->max_version;
	}
	return 0;
}

int
adm_conn_open(struct adm_conn *c, const char *addr, int timeout_ms)
{
	const char *p = addr;
	int rc = -EINVAL;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
	c->next_corr = 1;
	/* Before negotiation only ApiVersions can be sent (header v1 is read by all). */
	for (int i = 0; i < KP_API_KEY_COUNT; i++)
		c->ver_max[i] = -1;
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

		rc = connect_one(c, p, len);
		if (rc == 0) {
			rc = negotiate(c);
			if (rc == 0)
				return 0;
			close(c->fd);
			c->fd = -1;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return rc;
}

void
adm_conn_close(struct adm_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	while (c->chunks != NULL) {
		struct adm_chunk *n = c->chunks->next;

		free(c->chunks);
		c->chunks = n;
	}
}

int16_t
adm_conn_version(const struct adm_conn *c, int16_t api_key, int16_t our_max)
{
	const struct kp_api_desc *d = kp_api_lookup(api_key);
	int16_t v;

	if (d == NULL || c->ver_max[api_key] < 0)
		return -1;
	v = c->ver_max[api_key];
	if (v > our_max)
		v = our_max;
	if (v > d->max_version)
		v = d->max_version;
	if (v < c->ver_min[api_key] || v < d->min_version)
		return -1;
	return v;
}

int
adm_call(struct adm_conn *c, int16_t api_key, int16_t version, const void *req, void *resp)
{
	const struct kp_api_desc *d = kp_api_lookup(api_key);
	struct kp_request_header h;
	struct kp_response_header rh;
	struct kp_writer w;
	struct kp_reader r;
	struct kp_arena a;
	int64_t deadline = now_ms() + c->timeout_ms;
	int64_t body;
	uint8_t *out, *frame, *arena_buf;
	uint8_t szb[4];
	uint32_t n;
	size_t cap;
	int rc;

	if (d == NULL || c->fd < 0)
		return -EINVAL;
	memset(&h, 0, sizeof(h));
	h.request_api_key = api_key;
	h.request_api_version = version;
	h.correlation_id = c->next_corr++;
	h.client_id = adm_str("slipstream-admin");
	body = d->request.size(req, version);
	if (body < 0) {
		fprintf(stderr, "Error: %s v%d: request does not encode (%s)\n", d->name, version,
		        strerror((int)-body));
		return (int)body;
	}
	cap = (size_t)body + 4 + 64 + (size_t)h.client_id.len;
	out = malloc(cap);
	if (out == NULL)
		return -ENOMEM;
	kp_writer_init(&w, out + 4, cap - 4);
	rc = kp_request_header_write(&h, &w);
	if (rc == 0)
		rc = d->request.encode(req, version, &w);
	if (rc < 0) {
		fprintf(stderr, "Error: %s v%d: request does not encode (%s)\n", d->name, version,
		        strerror(-rc));
		free(out);
		return rc;
	}
	n = (uint32_t)kp_writer_len(&w);
	out[0] = (uint8_t)(n >> 24);
	out[1] = (uint8_t)(n >> 16);
	out[2] = (uint8_t)(n >> 8);
	out[3] = (uint8_t)n;
	rc = write_all(c, out, n + 4, deadline);
	free(out);
	if (rc == 0)
		rc = read_all(c, szb, 4, deadline);
	if (rc < 0)
		goto io_error;
	n = (uint32_t)szb[0] << 24 | (uint32_t)szb[1] << 16 | (uint32_t)szb[2] << 8 | szb[3];
	if (n < 4 || n > ADM_MAX_FRAME) {
		fprintf(stderr, "Error: %s: %s answered a frame of %u bytes\n", d->name, c->addr,
		        n);
		return -EPROTO;
	}
	frame = adm_alloc(c, n);
	/* Decoded arrays take at most a few times the bytes they came from. */
	arena_buf = adm_alloc(c, (size_t)n * 8 + 65536);
	if (frame == NULL || arena_buf == NULL)
		return -ENOMEM;
	rc = read_all(c, frame, n, deadline);
	if (rc < 0)
		goto io_error;
	kp_reader_init(&r, frame, n);
	kp_arena_init(&a, arena_buf, (size_t)n * 8 + 65536);
	rc = kp_response_header_decode(&rh, kp_api_response_header_version(d, version), &r, &a);
	if (rc == 0 && rh.correlation_id != h.correlation_id) {
		fprintf(stderr, "Error: %s: %s answered correlation id %d, expected %d\n", d->name,
		        c->addr, rh.correlation_id, h.correlation_id);
		return -EPROTO;
	}
	if (rc == 0)
		rc = d->response.decode(resp, version, &r, &a);
	if (rc < 0 && api_key == KP_API_API_VERSIONS && version > 0) {
		/* An UNSUPPORTED_VERSION answer is v0 whatever was asked (KIP-511). */
		kp_reader_init(&r, frame, n);
		kp_arena_reset(&a);
		rc = kp_response_header_decode(&rh, 0, &r, &a);
		if (rc == 0)
			rc = d->response.decode(resp, 0, &r, &a);
	}
	if (rc < 0) {
		fprintf(stderr, "Error: %s v%d: the answer from %s does not decode (%s)\n", d->name,
		        version, c->addr, strerror(-rc));
		return -EPROTO;
	}
	return 0;

io_error:
	if (rc == -ECONNRESET)
		fprintf(stderr,
		        "Error: %s v%d: %s closed the connection (it may not serve this "
		        "request)\n",
		        d->name, version, c->addr);
	else if (rc == -ETIMEDOUT)
		fprintf(stderr, "Error: %s v%d: no answer from %s within %d ms\n", d->name, version,
		        c->addr, c->timeout_ms);
	else
		fprintf(stderr, "Error: %s v%d: %s: %s\n", d->name, version, c->addr,
		        strerror(-rc));
	return rc;
}
