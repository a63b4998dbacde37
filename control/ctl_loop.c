/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_loop: epoll loop, timers and framed links (see ctl_loop.h). The
 * control plane's traffic is small (group requests, offset commits), so
 * buffers are malloc'd and grown as needed rather than preallocated.
 */
#include "ctl_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct watch {
	ctl_fd_fn fn;
	void *arg;
	int fd;
};

/* Watches by fd (the process has few descriptors). */
#define CTL_LOOP_MAX_FDS 4096
static struct watch *g_watch[CTL_LOOP_MAX_FDS];

int64_t
ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
ctl_loop_init(struct ctl_loop *l)
{
	memset(l, 0, sizeof(*l));
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	return l->epfd < 0 ? -errno : 0;
}

void
ctl_loop_fini(struct ctl_loop *l)
{
	for (int i = 0; i < CTL_LOOP_MAX_FDS; i++) {
		free(g_watch[i]);
		g_watch[i] = NULL;
	}
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}

int
ctl_loop_watch(struct ctl_loop *l, int fd, uint32_t events, ctl_fd_fn fn, void *arg)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};
	bool add;

	if (fd < 0 || fd >= CTL_LOOP_MAX_FDS)
		return -EMFILE;
	add = g_watch[fd] == NULL;
	if (add) {
		g_watch[fd] = calloc(1, sizeof(struct watch));
		if (g_watch[fd] == NULL)
			return -ENOMEM;
	}
	g_watch[fd]->fn = fn;
	g_watch[fd]->arg = arg;
	g_watch[fd]->fd = fd;
	if (epoll_ctl(l->epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) < 0) {
		int rc = -errno;

		if (add) {
			free(g_watch[fd]);
			g_watch[fd] = NULL;
		}
		return rc;
	}
	return 0;
}

void
ctl_loop_unwatch(struct ctl_loop *l, int fd)
{
	if (fd < 0 || fd >= CTL_LOOP_MAX_FDS || g_watch[fd] == NULL)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	free(g_watch[fd]);
	g_watch[fd] = NULL;
}

int
ctl_loop_every(struct ctl_loop *l, int64_t period_ms, ctl_timer_fn fn, void *arg)
{
	if (l->n_timers == CTL_LOOP_MAX_TIMERS)
		return -ENOSPC;
	l->timers[l->n_timers].fn = fn;
	l->timers[l->n_timers].arg = arg;
	l->timers[l->n_timers].period_ms = period_ms > 0 ? period_ms : 1;
	l->timers[l->n_timers].next_ms = 0;
	l->n_timers++;
	return 0;
}

void
ctl_loop_stop(struct ctl_loop *l)
{
	l->stop = true;
}

void
ctl_loop_run(struct ctl_loop *l, volatile int *stop_flag)
{
	while (!l->stop && (stop_flag == NULL || *stop_flag == 0)) {
		struct epoll_event ev[64];
		int64_t now = ctl_now_ms();
		int64_t wait = 100;
		int n;

		for (unsigned int i = 0; i < l->n_timers; i++) {
			if (l->timers[i].next_ms <= now) {
				l->timers[i].next_ms = now + l->timers[i].period_ms;
				l->timers[i].fn(l->timers[i].arg, now);
			}
			if (l->timers[i].next_ms - now < wait)
				wait = l->timers[i].next_ms - now;
		}
		if (wait < 0)
			wait = 0;
		n = epoll_wait(l->epfd, ev, 64, (int)wait);
		for (int i = 0; i < n; i++) {
			int fd = ev[i].data.fd;

			/* A callback may unwatch (and free) any fd, itself included. */
			if (fd >= 0 && fd < CTL_LOOP_MAX_FDS && g_watch[fd] != NULL)
				g_watch[fd]->fn(g_watch[fd]->arg, fd, ev[i].events);
		}
	}
}

void
ctl_link_init(struct ctl_link *k, int fd, uint32_t max_frame)
{
	memset(k, 0, sizeof(*k));
	k->fd = fd;
	k->max_frame = max_frame;
}

void
ctl_link_close(struct ctl_link *k)
{
	if (k->fd >= 0)
		close(k->fd);
	free(k->in);
	free(k->out);
	memset(k, 0, sizeof(*k));
	k->fd = -1;
}

static int
grow(uint8_t **buf, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 65536;
	uint8_t *p;

	while (n < need)
		n *= 2;
	if (n == *cap)
		return 0;
	p = realloc(*buf, n);
	if (p == NULL)
		return -ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

int
ctl_link_read(struct ctl_link *k)
{
	for (int i = 0; i < 16; i++) {
		ssize_t n;

		if (k->in_cap - k->in_len < 16384 && grow(&k->in, &k->in_cap, k->in_len + 65536) < 0)
			return -ENOMEM;
		n = recv(k->fd, k->in + k->in_len, k->in_cap - k->in_len, MSG_DONTWAIT);
		if (n > 0) {
			k->in_len += (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -errno;
	}
	return 0;
}

int
ctl_link_frame(struct ctl_link *k, const uint8_t **frame, uint32_t *len)
{
	int32_t size;

	if (k->in_len < 4)
		return 0;
	size = (int32_t)((uint32_t)k->in[0] << 24 | (uint32_t)k->in[1] << 16 |
		(uint32_t)k->in[2] << 8 | k->in[3]);
	if (size < 0 || (uint32_t)size > k->max_frame)
		return -EMSGSIZE;
	if (k->in_len < 4 + (size_t)size)
		return 0;
	*frame = k->in + 4;
	*len = (uint32_t)size;
	return 1;
}

void
ctl_link_consume(struct ctl_link *k, uint32_t len)
{
	size_t n = 4 + (size_t)len;

	memmove(k->in, k->in + n, k->in_len - n);
	k->in_len -= n;
}

int
ctl_link_send(struct ctl_link *k, const void *buf, size_t len)
{
	uint8_t *p;

	if (k->out_off > 0 && k->out_off == k->out_len)
		k->out_off = k->out_len = 0;
	if (grow(&k->out, &k->out_cap, k->out_len + 4 + len) < 0)
		return -ENOMEM;
	p = k->out + k->out_len;
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	memcpy(p + 4, buf, len);
	k->out_len += 4 + len;
	return 0;
}

int
ctl_link_flush(struct ctl_link *k)
{
	while (k->out_off < k->out_len) {
		ssize_t n = send(k->fd, k->out + k->out_off, k->out_len - k->out_off,
			MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n > 0) {
			k->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return n < 0 ? -errno : -EIO;
	}
	k->out_off = k->out_len = 0;
	return 0;
}
