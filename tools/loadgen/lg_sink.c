/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tcp-baseline sink: a loopback TCP server that does the least a broker
 * could do with a request. It reads length-prefixed frames and answers each
 * with an 8-byte frame (size 4, then the request's correlation id), so the
 * load generator's produce path runs unchanged against it and what is
 * measured is the kernel TCP loopback path plus the load generator itself:
 * the same bytes streamed, the same pipelining, one syscall pattern.
 *
 * One thread, epoll, non-blocking sockets; answers that the socket cannot
 * take at once are kept in a per-connection buffer. Listens on 127.0.0.1
 * only, on a port the kernel picks.
 */
#include "lg_run.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define SINK_RBUF (256u << 10)
#define SINK_MAX_CONNS 4096

struct sink_conn {
	int fd;
	uint32_t need;	   /* bytes of the current frame still to skip (after its header) */
	uint8_t hdr[12];   /* size + request header up to the correlation id */
	uint32_t hdr_len;
	uint8_t *out;	   /* answers not yet written */
	size_t out_len, out_cap;
};

struct lg_sink {
	int lfd;
	int epfd;
	pthread_t th;
	atomic_int stop;
	uint8_t *rbuf;
	struct sink_conn *conns[SINK_MAX_CONNS];
};

static void
sink_conn_close(struct lg_sink *s, struct sink_conn *c)
{
	for (int i = 0; i < SINK_MAX_CONNS; i++)
		if (s->conns[i] == c)
			s->conns[i] = NULL;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	free(c);
}

static int
sink_answer(struct sink_conn *c)
{
	if (c->out_len + 8 > c->out_cap) {
		size_t ncap = c->out_cap ? c->out_cap * 2 : 4096;
		uint8_t *n = realloc(c->out, ncap);
		if (n == NULL)
			return -ENOMEM;
		c->out = n;
		c->out_cap = ncap;
	}
	uint8_t *p = c->out + c->out_len;
	p[0] = 0, p[1] = 0, p[2] = 0, p[3] = 4;
	memcpy(p + 4, c->hdr + 8, 4); /* size(4) api_key(2) version(2) correlation_id(4) */
	c->out_len += 8;
	return 0;
}

/* Consume @n received bytes; queue an answer per complete frame. */
static int
sink_input(struct sink_conn *c, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (c->hdr_len < sizeof(c->hdr)) {
			size_t k = sizeof(c->hdr) - c->hdr_len;
			if (k > n)
				k = n;
			memcpy(c->hdr + c->hdr_len, p, k);
			c->hdr_len += (uint32_t)k;
			p += k;
			n -= k;
			if (c->hdr_len < sizeof(c->hdr))
				return 0;
			uint32_t be;
			memcpy(&be, c->hdr, 4);
			uint32_t size = __builtin_bswap32(be);
			if (size < 8)
				return -EPROTO;
			c->need = size - 8;
		}
		size_t k = c->need < n ? c->need : n;
		c->need -= (uint32_t)k;
		p += k;
		n -= k;
		if (c->need == 0) {
			if (sink_answer(c) < 0)
				return -ENOMEM;
			c->hdr_len = 0;
		}
	}
	return 0;
}

static int
sink_output(struct lg_sink *s, struct sink_conn *c)
{
	while (c->out_len > 0) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -errno;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
	struct epoll_event ev = {.events = EPOLLIN | (c->out_len ? EPOLLOUT : 0u), .data.ptr = c};
	epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	return 0;
}

static void *
sink_main(void *arg)
{
	struct lg_sink *s = arg;
	struct epoll_event evs[64];

	while (!atomic_load(&s->stop)) {
		int n = epoll_wait(s->epfd, evs, 64, 50);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (fd < 0)
					continue;
				int one = 1, slot = -1;
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				for (int k = 0; k < SINK_MAX_CONNS && slot < 0; k++)
					if (s->conns[k] == NULL)
						slot = k;
				struct sink_conn *c = slot >= 0 ? calloc(1, sizeof(*c)) : NULL;
				if (c == NULL) {
					close(fd);
					continue;
				}
				c->fd = fd;
				s->conns[slot] = c;
				struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
				epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
				continue;
			}
			struct sink_conn *c = evs[i].data.ptr;
			bool dead = false;
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
				ssize_t r = recv(c->fd, s->rbuf, SINK_RBUF, MSG_DONTWAIT);
				if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
					dead = true;
				else if (r > 0 && sink_input(c, s->rbuf, (size_t)r) < 0)
					dead = true;
			}
			if (!dead && sink_output(s, c) < 0)
				dead = true;
			if (dead)
				sink_conn_close(s, c); /* not reported again in this batch: one event per fd */
		}
	}
	return NULL;
}

int
lg_sink_start(struct lg_sink **out, uint16_t *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	socklen_t sl = sizeof(sa);
	int rc;

	struct lg_sink *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->lfd = -1;
	s->epfd = -1;
	s->rbuf = malloc(SINK_RBUF);
	if (s->rbuf == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->lfd < 0 || s->epfd < 0 || bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(s->lfd, 1024) < 0 || getsockname(s->lfd, (struct sockaddr *)&sa, &sl) < 0) {
		rc = -errno;
		goto fail;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = pthread_create(&s->th, NULL, sink_main, s);
	if (rc != 0) {
		rc = -rc;
		goto fail;
	}
	*port = ntohs(sa.sin_port);
	*out = s;
	return 0;
fail:
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->epfd >= 0)
		close(s->epfd);
	free(s->rbuf);
	free(s);
	return rc;
}

void
lg_sink_stop(struct lg_sink *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->th, NULL);
	for (int i = 0; i < SINK_MAX_CONNS; i++)
		if (s->conns[i] != NULL)
			sink_conn_close(s, s->conns[i]);
	close(s->lfd);
	close(s->epfd);
	free(s->rbuf);
	free(s);
}
