/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel socket transport of the load generator: non-blocking TCP sockets
 * with TCP_NODELAY, one epoll instance per worker thread, level-triggered
 * (EPOLLIN always, EPOLLOUT only while a connection has bytes it could not
 * send), so a report is never lost between two polls.
 */
#include "lg_transport.h"
#include "lg_memif.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TCP_MAX_EVENTS 64

struct lg_transport {
	int epfd;
	bool pwait2; /* epoll_pwait2 works (cleared on ENOSYS) */
	struct lg_tconn *conns; /* every open connection (for destroy) */
};

struct lg_tconn {
	struct lg_transport *t;
	int fd;
	void *arg;
	bool want_out;
	struct lg_tconn *next;
	struct lg_tconn *prev;
};

static struct lg_transport *
tcp_create(void)
{
	struct lg_transport *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (t->epfd < 0) {
		free(t);
		return NULL;
	}
	t->pwait2 = true;
	return t;
}

static void
tcp_close(struct lg_tconn *c)
{
	if (c == NULL)
		return;
	epoll_ctl(c->t->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		c->t->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

static void
tcp_destroy(struct lg_transport *t)
{
	if (t == NULL)
		return;
	while (t->conns)
		tcp_close(t->conns);
	close(t->epfd);
	free(t);
}

static int
tcp_resolve(const char *host, uint16_t port, struct sockaddr_in *sa)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(port);
	if (inet_pton(AF_INET, host, &sa->sin_addr) == 1)
		return 0;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
		return -EHOSTUNREACH;
	sa->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
	freeaddrinfo(res);
	return 0;
}

static int
tcp_connect(struct lg_transport *t, const char *host, uint16_t port, void *arg,
	    struct lg_tconn **out)
{
	struct sockaddr_in sa;
	int one = 1;
	int rc = tcp_resolve(host, port, &sa);

	if (rc < 0)
		return rc;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		return rc;
	}
	struct lg_tconn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return -ENOMEM;
	}
	c->t = t;
	c->fd = fd;
	c->arg = arg;
	c->want_out = true; /* the first EPOLLOUT says the connection is up */
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
	if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		rc = -errno;
		close(fd);
		free(c);
		return rc;
	}
	c->next = t->conns;
	if (t->conns)
		t->conns->prev = c;
	t->conns = c;
	*out = c;
	return 0;
}

static ssize_t
tcp_writev(struct lg_tconn *c, const struct iovec *iov, int iovcnt)
{
	struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
	ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN)
		return 0; /* ENOTCONN: connect still in progress */
	return -errno;
}

static ssize_t
tcp_read(struct lg_tconn *c, void *buf, size_t cap)
{
	ssize_t n = recv(c->fd, buf, cap, MSG_DONTWAIT);

	if (n > 0)
		return n;
	if (n == 0)
		return -ECONNRESET;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN)
		return 0;
	return -errno;
}

static void
tcp_want_write(struct lg_tconn *c, bool on)
{
	if (c->want_out == on)
		return;
	c->want_out = on;
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.ptr = c};
	epoll_ctl(c->t->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int
tcp_poll(struct lg_transport *t, int64_t timeout_us, lg_ready_fn cb)
{
	struct epoll_event evs[TCP_MAX_EVENTS];
	int n = -1;

	/* Microsecond timeouts where the kernel has epoll_pwait2 (5.11+): with
	 * epoll_wait's milliseconds a record due in 10 us would wait up to 1 ms
	 * and that wait would show as broker latency. */
	if (t->pwait2) {
		struct timespec ts = {.tv_sec = timeout_us > 0 ? timeout_us / 1000000 : 0,
				      .tv_nsec = timeout_us > 0 ? (timeout_us % 1000000) * 1000 : 0};
		n = epoll_pwait2(t->epfd, evs, TCP_MAX_EVENTS, &ts, NULL);
		if (n < 0 && errno == ENOSYS)
			t->pwait2 = false;
	}
	if (!t->pwait2) {
		int ms = timeout_us <= 0 ? 0 : (int)((timeout_us + 999) / 1000);
		n = epoll_wait(t->epfd, evs, TCP_MAX_EVENTS, ms);
	}

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct lg_tconn *c = evs[i].data.ptr;
		/* Errors and hangups read as readable: the read reports them. */
		bool rd = evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP);
		bool wr = evs[i].events & EPOLLOUT;
		cb(c->arg, rd, wr);
	}
	return n;
}

const struct lg_transport_ops lg_tcp_ops = {
	.name = "tcp",
	.create = tcp_create,
	.destroy = tcp_destroy,
	.connect = tcp_connect,
	.writev = tcp_writev,
	.read = tcp_read,
	.want_write = tcp_want_write,
	.poll = tcp_poll,
	.close = tcp_close,
};

const struct lg_transport_ops *
lg_transport_by_name(const char *name)
{
	if (strcmp(name, "tcp") == 0)
		return &lg_tcp_ops;
	if (strcmp(name, "memif") == 0)
		return &lg_memif_ops;
	return NULL;
}
