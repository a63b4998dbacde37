/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_reactor: one reactor per lcore, running registered pollers, and
 * messages between lcores (the SPDK reactor/poller/message pattern on DPDK's
 * EAL).
 *
 * A reactor loops over its pollers without blocking. A poller is
 * (fn, arg) returning how much work it did (0 = idle); periodic pollers run
 * at most once per period (TSC based); "end" pollers run after all others in
 * each iteration (where connections closed by flag are reaped). Work for
 * another lcore travels as a message (fn, arg) on a single-producer,
 * single-consumer rte_ring per (sender, receiver) pair, so enqueue and
 * dequeue need no locks; a message belongs to the receiver once sent and
 * runs on the receiver's lcore at its next iteration.
 *
 * Each iteration is accounted as busy (some poller or message did work) or
 * idle, in TSC cycles per lcore, for the metrics to export. An lcore idle
 * for more than 1 ms may sleep `dataplane.poll.idle.sleep.us` per iteration
 * (0 = spin, for appliances); any work resets that. With such a sleep
 * configured (a CPU shared with other threads), "idle" pollers run in every
 * iteration that found no work and may block briefly for something they know
 * is coming: the storage writer waits on its io_uring for a write in flight,
 * whose completion runs in a kernel io-wq thread on this CPU that a spinning
 * reactor keeps waiting (docs/benchmarks.md, end to end). An idle poller that
 * waited (returns > 0) replaces that iteration's sleep.
 *
 * Set-up (dp_reactors_init, poller registration before dp_reactors_run) is
 * single-threaded start-up code on the main lcore.
 */
#ifndef SLP_DP_REACTOR_H
#define SLP_DP_REACTOR_H

#include <stdbool.h>
#include <stdint.h>

/** Pollers per reactor. */
#define DP_REACTOR_MAX_POLLERS 32
/** Messages handled per incoming ring per iteration. */
#define DP_REACTOR_MSG_BURST 32

/** A poller: returns the work done (0 = idle). Runs on its reactor's lcore only. */
typedef int (*dp_poller_fn)(void *arg);
/** A message: runs once on the receiving lcore. */
typedef void (*dp_msg_fn)(void *arg);

enum dp_poller_when {
	DP_POLLER_EVERY = 0, /* each iteration (or each period) */
	DP_POLLER_END = 1,   /* each iteration, after every other poller */
	DP_POLLER_IDLE = 2,  /* iterations without work (a spinning reactor's too: the
	                      * poller decides, dp_reactor_spins()); may block briefly;
	                      * returns > 0 when it waited (no sleep then) */
};

/** Long iterations are counted from each of these (microseconds), ascending. */
#define DP_REACTOR_LONG_N 3
extern const uint64_t dp_reactor_long_us[DP_REACTOR_LONG_N]; /* 100 us, 1 ms, 10 ms */

struct dp_reactor_stats {
	uint64_t busy_tsc;   /* cycles of iterations that did work */
	uint64_t idle_tsc;   /* cycles of iterations that did none (sleeps included) */
	uint64_t iterations;
	uint64_t msgs;       /* messages run */
	uint64_t idle_waits; /* idle iterations in which an idle poller waited */
	/*
	 * Iterations whose work (the idle sleep not included) took at least
	 * dp_reactor_long_us[k]: the lcore's own long work, or its thread not
	 * running meanwhile (preempted, or a virtual CPU the host did not run).
	 * Every request and reply waiting on the lcore waited that long too.
	 */
	uint64_t long_iters[DP_REACTOR_LONG_N];
	uint64_t long_tsc; /* cycles of the iterations counted in long_iters[0] */
};

/**
 * Create a reactor for each of @n lcores (all EAL lcores the dataplane uses,
 * the main lcore included) and the message rings between them.
 *
 * @param ring_size  messages each (sender, receiver) ring holds (power of 2)
 * @return 0, -EINVAL (an lcore not enabled in the EAL), -ENOMEM.
 */
int dp_reactors_init(const unsigned int *lcores, unsigned int n, unsigned int ring_size,
	uint64_t idle_sleep_us);

/**
 * Log every iteration of at least @us microseconds (0: none), and every idle
 * sleep or idle wait that took @us longer than it may, with the
 * CLOCK_MONOTONIC time it ended: a stall seen from outside (a load
 * generator's late records) can then be lined up with the reactor's. Call
 * after dp_reactors_init().
 */
void dp_reactors_stall_log(uint64_t us);

/** Free the reactors and rings (after dp_reactors_run() returned). */
void dp_reactors_fini(void);

/**
 * Whether the reactors spin when idle (dataplane.poll.idle.sleep.us=0, the
 * core theirs alone) rather than sleep after a grace period.
 */
bool dp_reactor_spins(void);

/**
 * Register a poller on @lcore. Call at start-up, or on @lcore itself.
 *
 * @param period_us  0 = every iteration; else at most once per period; for
 *                   DP_POLLER_IDLE, the longest it may block (the stall log
 *                   reports a wait that took longer)
 * @return 0, -EINVAL (no reactor on @lcore), -ENOSPC (table full).
 */
int dp_poller_register(unsigned int lcore, const char *name, dp_poller_fn fn, void *arg,
	uint64_t period_us, enum dp_poller_when when);

/**
 * Send a message to @lcore's reactor (may be the caller's own). Callable
 * from any reactor lcore.
 *
 * @return 0; -ENOBUFS when the ring is full (try later); -EINVAL for an
 *         lcore without a reactor; -EPERM from a thread that is not one.
 */
int dp_msg_send(unsigned int lcore, dp_msg_fn fn, void *arg);

/** Run every reactor (remote lcores and the calling main lcore) until stopped. */
int dp_reactors_run(void);

/** Ask every reactor to return after its current iteration. Any thread. */
void dp_reactors_stop(void);

/** True once dp_reactors_stop() was called. */
bool dp_reactors_stopping(void);

/**
 * Wait until every running reactor but the caller's own has ended the
 * iteration it was in and then one more, at most @timeout_us: any poller call
 * that began before this call has returned. For a thread that is about to free
 * memory a poller may still be reading (the munmap() of dp_reactor.c).
 *
 * @return 0, or -ETIMEDOUT (a reactor still inside an iteration).
 */
int dp_reactors_quiesce(uint64_t timeout_us);

/** Copy @lcore's accounting. @return 0 or -EINVAL. Relaxed reads: for metrics. */
int dp_reactor_stats_get(unsigned int lcore, struct dp_reactor_stats *out);

/** Run one iteration of the calling lcore's reactor (tests drive reactors by hand). */
int dp_reactor_poll_once(unsigned int lcore);

/**
 * The calling reactor's clock: the TSC when its current iteration started
 * (pollers take "now" from here rather than reading the TSC each). Late by
 * at most the iteration's own work so far. Off a reactor thread: rte_rdtsc().
 */
uint64_t dp_reactor_tsc(void);

#endif /* SLP_DP_REACTOR_H */
