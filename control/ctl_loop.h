/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_loop: the control process's event loop (one thread, epoll) and the
 * Kafka-framed socket connections it drives.
 *
 * Modules register file descriptors with a callback (ctl_loop_watch) and
 * periodic timers (ctl_loop_every); ctl_loop_run() waits at most one timer
 * period in epoll_wait and runs what is due. Nothing here blocks but that
 * wait. This is also how other control-process modules plug in (the HTTP
 * metrics endpoint: ctl_http.h).
 *
 * struct ctl_link is one non-blocking stream socket carrying Kafka frames
 * (int32 size prefix): received bytes gather in a growable buffer and come
 * out frame by frame; sends queue in another and leave as the socket takes
 * them.
 */
#ifndef SLP_CTL_LOOP_H
#define SLP_CTL_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Called with the epoll events of a watched fd. */
typedef void (*ctl_fd_fn)(void *arg, int fd, uint32_t events);
/** Called at each period of a timer, with the wall clock in ms. */
typedef void (*ctl_timer_fn)(void *arg, int64_t now_ms);

#define CTL_LOOP_MAX_TIMERS 16

struct ctl_loop {
	int epfd;
	bool stop;
	struct {
		ctl_timer_fn fn;
		void *arg;
		int64_t period_ms;
		int64_t next_ms;
	} timers[CTL_LOOP_MAX_TIMERS];
	unsigned int n_timers;
};

/** Wall clock in ms (commit timestamps are stored, so not a monotonic clock). */
int64_t ctl_now_ms(void);

/** @return 0 or a negative errno. */
int ctl_loop_init(struct ctl_loop *l);
void ctl_loop_fini(struct ctl_loop *l);

/**
 * Watch @fd for @events (EPOLLIN/EPOLLOUT); again to change the events.
 * @fn and @arg borrowed until ctl_loop_unwatch(). @return 0 or -errno.
 */
int ctl_loop_watch(struct ctl_loop *l, int fd, uint32_t events, ctl_fd_fn fn, void *arg);
void ctl_loop_unwatch(struct ctl_loop *l, int fd);

/** Run @fn every @period_ms (first run at the next loop turn). @return 0 or -ENOSPC. */
int ctl_loop_every(struct ctl_loop *l, int64_t period_ms, ctl_timer_fn fn, void *arg);

/** Run until ctl_loop_stop() or *@stop_flag becomes non-zero (a signal handler's flag). */
void ctl_loop_run(struct ctl_loop *l, volatile int *stop_flag);
void ctl_loop_stop(struct ctl_loop *l);

/** A Kafka-framed non-blocking connection. */
struct ctl_link {
	int fd;                 /* -1: closed */
	uint8_t *in;            /* received bytes (malloc'd) */
	size_t in_len;
	size_t in_cap;
	uint8_t *out;           /* bytes to send, from out_off (malloc'd) */
	size_t out_off;
	size_t out_len;
	size_t out_cap;
	uint32_t max_frame;     /* bigger frames close the link */
};

/** Take @fd (non-blocking) into @k. */
void ctl_link_init(struct ctl_link *k, int fd, uint32_t max_frame);
/** Close the socket and free the buffers. */
void ctl_link_close(struct ctl_link *k);

/** Read what is there. @return 0; -ECONNRESET at EOF; another -errno on error. */
int ctl_link_read(struct ctl_link *k);

/**
 * The next complete frame (without its size prefix), borrowed until
 * ctl_link_consume(). @return 1 with @frame/@len set, 0 when none is
 * complete, -EMSGSIZE for a frame over max_frame or a negative size.
 */
int ctl_link_frame(struct ctl_link *k, const uint8_t **frame, uint32_t *len);
/** Drop the frame ctl_link_frame() returned (@len its length). */
void ctl_link_consume(struct ctl_link *k, uint32_t len);

/** Queue a frame: size prefix, then @len bytes of @buf (copied). @return 0 or -ENOMEM. */
int ctl_link_send(struct ctl_link *k, const void *buf, size_t len);
/** Write queued bytes. @return 0 (maybe some left: see ctl_link_pending) or -errno. */
int ctl_link_flush(struct ctl_link *k);
/** Bytes still queued. */
static inline size_t
ctl_link_pending(const struct ctl_link *k)
{
	return k->out_len - k->out_off;
}

#endif /* SLP_CTL_LOOP_H */
