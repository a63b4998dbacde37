/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_reactor: the per-lcore poll loop, periodic pollers, busy/idle
 * accounting and SPSC message rings (see dp_reactor.h).
 *
 * Rings: reactor R has in[i], the ring that reactor i (by index in the set)
 * sends to R on. Only lcore i enqueues on it and only R dequeues, so each
 * ring is created single-producer/single-consumer. Ring elements are the
 * 16-byte (fn, arg) pair itself: sending allocates nothing.
 *
 * Unmapping behind a poller's back: this file defines munmap(), which the
 * shared libraries' calls resolve to (the executable's symbol comes first).
 * From a thread that is not a running reactor it waits for the reactors to
 * pass an iteration (dp_reactors_quiesce) before the system call. DPDK
 * 22.11's memif PMD tears a departing peer down in the EAL interrupt thread:
 * it clears its "connected" flag, which every receive and transmit burst
 * checks first, and then unmaps the peer's rings and buffers, with nothing
 * that waits for a burst already past the check (a broker died in one, a
 * read inside librte_net_memif, docs/gaps.md). The wait closes that window
 * for any library that frees shared memory the same way.
 */
#include "dp_reactor.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "dp_log.h"

struct dp_msg {
	dp_msg_fn fn;
	void *arg;
};

struct dp_poller {
	dp_poller_fn fn;
	void *arg;
	uint64_t period_tsc;   /* 0 = every iteration */
	uint64_t next_tsc;     /* next run, for periodic pollers */
	char name[32];
};

struct dp_reactor {
	unsigned int lcore;
	unsigned int index;            /* in the reactor set */
	unsigned int n_pollers;
	unsigned int n_end;
	unsigned int n_idle;
	struct dp_poller pollers[DP_REACTOR_MAX_POLLERS];
	struct dp_poller end[DP_REACTOR_MAX_POLLERS];
	struct dp_poller idle[DP_REACTOR_MAX_POLLERS]; /* DP_POLLER_IDLE */
	struct rte_ring **in;          /* n_reactors rings, in[sender index] */
	uint64_t last_busy_tsc;
	uint64_t next_start_tsc;       /* the last iteration's end when it did not sleep, else 0 */
	uint64_t idle_bound_tsc;       /* the idle pollers' longest waits, summed */
	struct dp_reactor_stats stats; /* written by this lcore only */
	int active;                    /* in reactor_main's loop (dp_reactors_quiesce) */
} __rte_cache_aligned;

static struct dp_reactor *g_reactors;         /* n_reactors, cache aligned */
static unsigned int g_n_reactors;
static struct dp_reactor *g_by_lcore[RTE_MAX_LCORE];
static volatile int g_stop;
static uint64_t g_idle_sleep_us;
static uint64_t g_idle_grace_tsc;              /* idle this long before sleeping */
static __thread uint64_t t_iter_tsc;           /* this thread's reactor clock (dp_reactor_tsc) */
static __thread struct dp_reactor *t_reactor;   /* the reactor this thread runs, if any */
static uint64_t g_long_tsc[DP_REACTOR_LONG_N];  /* dp_reactor_long_us in TSC cycles */
static uint64_t g_stall_log_tsc;                /* dp_reactors_stall_log(), 0: off */
static uint64_t g_sleep_tsc;                    /* g_idle_sleep_us in TSC cycles */

const uint64_t dp_reactor_long_us[DP_REACTOR_LONG_N] = {100, 1000, 10000};

int
dp_reactors_init(const unsigned int *lcores, unsigned int n, unsigned int ring_size,
	uint64_t idle_sleep_us)
{
	int rc = -ENOMEM;

	if (n == 0 || g_reactors != NULL)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++) {
		if (lcores[i] >= RTE_MAX_LCORE || !rte_lcore_is_enabled(lcores[i]))
			return -EINVAL;
	}
	g_reactors = rte_zmalloc("dp_reactors", sizeof(struct dp_reactor) * n, RTE_CACHE_LINE_SIZE);
	if (g_reactors == NULL)
		return -ENOMEM;
	g_n_reactors = n;
	for (unsigned int i = 0; i < n; i++) {
		struct dp_reactor *r = &g_reactors[i];

		r->lcore = lcores[i];
		r->index = i;
		g_by_lcore[lcores[i]] = r;
		r->in = rte_zmalloc("dp_reactor_in", sizeof(struct rte_ring *) * n, 0);
		if (r->in == NULL)
			goto fail;
	}
	for (unsigned int dst = 0; dst < n; dst++) {
		for (unsigned int src = 0; src < n; src++) {
			char name[RTE_RING_NAMESIZE];

			snprintf(name, sizeof(name), "dp_msg_%u_%u", g_reactors[src].lcore,
				g_reactors[dst].lcore);
			g_reactors[dst].in[src] = rte_ring_create_elem(name, sizeof(struct dp_msg),
				ring_size, (int)rte_lcore_to_socket_id(g_reactors[dst].lcore),
				RING_F_SP_ENQ | RING_F_SC_DEQ);
			if (g_reactors[dst].in[src] == NULL) {
				rc = rte_errno == EINVAL ? -EINVAL : -ENOMEM;
				goto fail;
			}
		}
	}
	g_idle_sleep_us = idle_sleep_us;
	g_idle_grace_tsc = rte_get_tsc_hz() / 1000;
	g_sleep_tsc = idle_sleep_us * rte_get_tsc_hz() / 1000000;
	for (unsigned int k = 0; k < DP_REACTOR_LONG_N; k++)
		g_long_tsc[k] = dp_reactor_long_us[k] * rte_get_tsc_hz() / 1000000;
	g_stop = 0;
	return 0;
fail:
	dp_reactors_fini();
	return rc;
}

void
dp_reactors_stall_log(uint64_t us)
{
	g_stall_log_tsc = us * rte_get_tsc_hz() / 1000000;
}

bool
dp_reactor_spins(void)
{
	return g_idle_sleep_us == 0;
}

void
dp_reactors_fini(void)
{
	struct dp_reactor *rs = g_reactors;

	if (rs == NULL)
		return;
	/* Gone for dp_reactors_quiesce() (another thread's munmap) before it is freed. */
	__atomic_store_n(&g_reactors, NULL, __ATOMIC_RELEASE);
	for (unsigned int i = 0; i < g_n_reactors; i++) {
		struct dp_reactor *r = &rs[i];

		if (r->in != NULL) {
			for (unsigned int j = 0; j < g_n_reactors; j++)
				rte_ring_free(r->in[j]);
			rte_free(r->in);
		}
		g_by_lcore[r->lcore] = NULL;
	}
	rte_free(rs);
	g_n_reactors = 0;
}

int
dp_poller_register(unsigned int lcore, const char *name, dp_poller_fn fn, void *arg,
	uint64_t period_us, enum dp_poller_when when)
{
	struct dp_reactor *r = lcore < RTE_MAX_LCORE ? g_by_lcore[lcore] : NULL;
	struct dp_poller *p;

	if (r == NULL || fn == NULL)
		return -EINVAL;
	if (when == DP_POLLER_END) {
		if (r->n_end == DP_REACTOR_MAX_POLLERS)
			return -ENOSPC;
		p = &r->end[r->n_end++];
	} else if (when == DP_POLLER_IDLE) {
		if (r->n_idle == DP_REACTOR_MAX_POLLERS)
			return -ENOSPC;
		p = &r->idle[r->n_idle++];
		r->idle_bound_tsc += period_us * rte_get_tsc_hz() / 1000000;
		period_us = 0; /* its bound, not a period */
	} else {
		if (r->n_pollers == DP_REACTOR_MAX_POLLERS)
			return -ENOSPC;
		p = &r->pollers[r->n_pollers++];
	}
	p->fn = fn;
	p->arg = arg;
	p->period_tsc = period_us * rte_get_tsc_hz() / 1000000;
	p->next_tsc = 0;
	snprintf(p->name, sizeof(p->name), "%s", name);
	return 0;
}

int
dp_msg_send(unsigned int lcore, dp_msg_fn fn, void *arg)
{
	unsigned int self = rte_lcore_id();
	struct dp_reactor *dst = lcore < RTE_MAX_LCORE ? g_by_lcore[lcore] : NULL;
	struct dp_reactor *src = self < RTE_MAX_LCORE ? g_by_lcore[self] : NULL;
	struct dp_msg m = {fn, arg};

	if (dst == NULL)
		return -EINVAL;
	if (src == NULL)
		return -EPERM;
	if (rte_ring_enqueue_elem(dst->in[src->index], &m, sizeof(m)) != 0)
		return -ENOBUFS;
	return 0;
}

/* dp_reactors_stall_log(): one line per stall, its length and end on CLOCK_MONOTONIC. */
static void
reactor_stall_log(const struct dp_reactor *r, const char *what, uint64_t cycles,
	uint64_t bound_cycles)
{
	struct timespec ts;
	uint64_t hz = rte_get_tsc_hz();

	clock_gettime(CLOCK_MONOTONIC, &ts);
	dp_log(DP_LOG_INFO, "reactor: lcore %u: %s of %" PRIu64 " us (%" PRIu64
		" us at most) ended at %" PRIu64 " ns (CLOCK_MONOTONIC)", r->lcore, what,
		cycles * 1000000 / hz, bound_cycles * 1000000 / hz,
		(uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec);
}

static void
reactor_long(struct dp_reactor *r, uint64_t cycles)
{
	for (unsigned int k = 0; k < DP_REACTOR_LONG_N && cycles >= g_long_tsc[k]; k++)
		r->stats.long_iters[k]++;
	r->stats.long_tsc += cycles;
	if (g_stall_log_tsc != 0 && cycles >= g_stall_log_tsc)
		reactor_stall_log(r, "an iteration", cycles, 0);
}

/*
 * One iteration. It reads the TSC once, at its end: its start is the last
 * iteration's end unless that one slept (a few instructions apart), and the
 * pollers read the start through dp_reactor_tsc() instead of their own
 * rdtsc (13 ns each on the 2-vCPU VM, four per iteration were half of an
 * idle iteration's cost; docs/benchmarks.md, session 11).
 */
static int
reactor_iterate(struct dp_reactor *r)
{
	uint64_t start = r->next_start_tsc != 0 ? r->next_start_tsc : rte_rdtsc();
	uint64_t end;
	int busy = 0;

	t_iter_tsc = start;

	for (unsigned int i = 0; i < g_n_reactors; i++) {
		struct dp_msg msgs[DP_REACTOR_MSG_BURST];
		unsigned int n = rte_ring_dequeue_burst_elem(r->in[i], msgs, sizeof(msgs[0]),
			DP_REACTOR_MSG_BURST, NULL);

		for (unsigned int j = 0; j < n; j++)
			msgs[j].fn(msgs[j].arg);
		r->stats.msgs += n;
		busy += (int)n;
	}
	for (unsigned int i = 0; i < r->n_pollers; i++) {
		struct dp_poller *p = &r->pollers[i];

		if (p->period_tsc != 0) {
			if (start < p->next_tsc)
				continue;
			p->next_tsc = start + p->period_tsc;
		}
		busy += p->fn(p->arg);
	}
	for (unsigned int i = 0; i < r->n_end; i++)
		busy += r->end[i].fn(r->end[i].arg);

	end = rte_rdtsc();
	r->next_start_tsc = end;
	__atomic_store_n(&r->stats.iterations, r->stats.iterations + 1, __ATOMIC_RELEASE);
	if (unlikely(end - start >= g_long_tsc[0]))
		reactor_long(r, end - start);
	if (busy > 0) {
		r->stats.busy_tsc += end - start;
		r->last_busy_tsc = end;
	} else {
		int waited = 0;

		/* Wait for what is coming, if anything (the pollers decide whether to). */
		for (unsigned int i = 0; i < r->n_idle; i++)
			waited += r->idle[i].fn(r->idle[i].arg);
		if (waited > 0) {
			uint64_t t = end;

			r->stats.idle_waits++;
			end = rte_rdtsc();
			r->next_start_tsc = end;
			/* The thread not run for a while in a wait is a stall as well. */
			if (unlikely(g_stall_log_tsc != 0 && end - t >= r->idle_bound_tsc + g_stall_log_tsc))
				reactor_stall_log(r, "an idle wait", end - t, r->idle_bound_tsc);
		} else if (g_idle_sleep_us != 0 && end - r->last_busy_tsc > g_idle_grace_tsc) {
			uint64_t t = end;

			/* Off the hot path by definition: nothing to do for over 1 ms. */
			usleep((useconds_t)g_idle_sleep_us);
			end = rte_rdtsc();
			r->next_start_tsc = end;
			if (unlikely(g_stall_log_tsc != 0 && end - t >= g_sleep_tsc + g_stall_log_tsc))
				reactor_stall_log(r, "an idle sleep", end - t, g_sleep_tsc);
		}
		r->stats.idle_tsc += end - start;
	}
	return busy;
}

uint64_t
dp_reactor_tsc(void)
{
	return t_iter_tsc != 0 ? t_iter_tsc : rte_rdtsc();
}

int
dp_reactor_poll_once(unsigned int lcore)
{
	struct dp_reactor *r = lcore < RTE_MAX_LCORE ? g_by_lcore[lcore] : NULL;

	if (r == NULL)
		return -EINVAL;
	r->next_start_tsc = 0; /* by hand, with anything between two calls: a fresh clock */
	return reactor_iterate(r);
}

/* Append the names of @n pollers to @buf (at @*off, of @size), ", " between. */
static void
pollers_names(char *buf, size_t size, size_t *off, const struct dp_poller *p, unsigned int n)
{
	for (unsigned int i = 0; i < n && *off < size; i++) {
		int k = snprintf(buf + *off, size - *off, "%s%s", i > 0 ? ", " : "", p[i].name);

		if (k > 0)
			*off += (size_t)k;
	}
}

/*
 * One line per reactor at start: its pollers in the order they run. The end
 * pollers' order is what puts a Produce's write, its answer and the Fetch it
 * wakes in one iteration (docs/dataplane.md "Reactors"); tests check it here.
 */
static void
reactor_log_pollers(const struct dp_reactor *r)
{
	char buf[3 * DP_REACTOR_MAX_POLLERS * 40];
	size_t off = 0;

	buf[0] = '\0';
	pollers_names(buf, sizeof(buf), &off, r->pollers, r->n_pollers);
	if (off < sizeof(buf))
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "; end: ");
	pollers_names(buf, sizeof(buf), &off, r->end, r->n_end);
	if (off < sizeof(buf))
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "; idle: ");
	pollers_names(buf, sizeof(buf), &off, r->idle, r->n_idle);
	dp_log(DP_LOG_INFO, "reactor: lcore %u pollers: %s", rte_lcore_id(), buf);
}

static int
reactor_main(void *unused)
{
	struct dp_reactor *r = g_by_lcore[rte_lcore_id()];

	if (r == NULL)
		return 0; /* an EAL lcore the dataplane does not use */
	reactor_log_pollers(r);
	/* The idle sleep and the idle pollers' waits end when asked, not up to
	 * the default 50 us timer slack later: the first request after a pause
	 * waits for them. */
	(void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
	r->last_busy_tsc = rte_rdtsc();
	t_reactor = r;
	__atomic_store_n(&r->active, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&g_stop, __ATOMIC_RELAXED))
		reactor_iterate(r);
	__atomic_store_n(&r->active, 0, __ATOMIC_RELEASE);
	t_reactor = NULL;
	return 0;
}

int
dp_reactors_run(void)
{
	int rc;

	rc = rte_eal_mp_remote_launch(reactor_main, NULL, CALL_MAIN);
	if (rc < 0)
		return rc;
	rte_eal_mp_wait_lcore();
	return 0;
}

void
dp_reactors_stop(void)
{
	__atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
}

bool
dp_reactors_stopping(void)
{
	return __atomic_load_n(&g_stop, __ATOMIC_RELAXED) != 0;
}

int
dp_reactors_quiesce(uint64_t timeout_us)
{
	struct dp_reactor *rs = __atomic_load_n(&g_reactors, __ATOMIC_ACQUIRE);
	unsigned int n = g_n_reactors;
	uint64_t seen[RTE_MAX_LCORE];
	uint64_t deadline;

	if (rs == NULL || n > RTE_MAX_LCORE)
		return 0;
	/* What the caller wrote before (a flag the pollers check) is visible to
	 * every iteration that begins after these reads. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (unsigned int i = 0; i < n; i++)
		seen[i] = __atomic_load_n(&rs[i].stats.iterations, __ATOMIC_ACQUIRE);
	deadline = rte_rdtsc() + timeout_us * rte_get_tsc_hz() / 1000000;
	for (unsigned int i = 0; i < n; i++) {
		struct dp_reactor *r = &rs[i];

		if (r == t_reactor)
			continue;
		/* Two ends: the iteration in progress, then one begun after the reads. */
		while (__atomic_load_n(&r->active, __ATOMIC_ACQUIRE) &&
			__atomic_load_n(&r->stats.iterations, __ATOMIC_ACQUIRE) - seen[i] < 2) {
			struct timespec ts = {0, 10000};

			if (rte_rdtsc() > deadline)
				return -ETIMEDOUT;
			nanosleep(&ts, NULL); /* off the CPU: it may be the reactor's */
		}
	}
	return 0;
}

/*
 * Longest a thread's munmap() waits for the reactors (then unmaps anyway): far
 * above any iteration of a healthy reactor (the longest seen, 150-180 ms, were a
 * deleted segment's discard before session 17 moved it off the reactor); only
 * memif's teardown waits, in the interrupt thread.
 */
#define REACTOR_UNMAP_WAIT_US 1000000

/* See the file comment: shared libraries' munmap() calls land here. */
int
munmap(void *addr, size_t len)
{
	if (t_reactor == NULL && dp_reactors_quiesce(REACTOR_UNMAP_WAIT_US) == -ETIMEDOUT)
		dp_log(DP_LOG_WARN, "reactor: an unmapping thread waited %u ms for the reactors' "
			"iterations and unmaps anyway", REACTOR_UNMAP_WAIT_US / 1000);
	return (int)syscall(SYS_munmap, addr, len);
}

int
dp_reactor_stats_get(unsigned int lcore, struct dp_reactor_stats *out)
{
	struct dp_reactor *r = lcore < RTE_MAX_LCORE ? g_by_lcore[lcore] : NULL;

	if (r == NULL)
		return -EINVAL;
	out->busy_tsc = __atomic_load_n(&r->stats.busy_tsc, __ATOMIC_RELAXED);
	out->idle_tsc = __atomic_load_n(&r->stats.idle_tsc, __ATOMIC_RELAXED);
	out->iterations = __atomic_load_n(&r->stats.iterations, __ATOMIC_RELAXED);
	out->msgs = __atomic_load_n(&r->stats.msgs, __ATOMIC_RELAXED);
	out->idle_waits = __atomic_load_n(&r->stats.idle_waits, __ATOMIC_RELAXED);
	for (unsigned int k = 0; k < DP_REACTOR_LONG_N; k++)
		out->long_iters[k] = __atomic_load_n(&r->stats.long_iters[k], __ATOMIC_RELAXED);
	out->long_tsc = __atomic_load_n(&r->stats.long_tsc, __ATOMIC_RELAXED);
	return 0;
}
