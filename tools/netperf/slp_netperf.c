/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slipstream-netperf: runs Slipstream's userspace TCP/IP stack
 * (dataplane/net) on one DPDK port (net_tap, net_af_packet on a veth,
 * net_memif, or a NIC) as a test server or a load client, to test the stack
 * against other TCP implementations and to measure it.
 *
 *	slipstream-netperf <EAL options> -- --server|--client [options]
 *
 * The server accepts connections on --port and serves the protocol of np.h
 * (echo, checked sink, pattern source, RST, half-close, a reader that
 * pauses). The client runs one workload against such a server:
 *	--mode echo      --conns C --count N --size S: N round trips of S bytes
 *	                 per connection (N 0: for --duration seconds, then close);
 *	                 reports round trips/s, p50, p99 and p99.9; --rate R: R
 *	                 round trips per second per connection, each timed from
 *	                 when it was due (open loop, as slipstream-load's e2e)
 *	--mode source    --bytes B: sends B bytes to the server's sink (checked
 *	                 there, report read back); Gbit/s
 *	--mode sink      --bytes B: receives B bytes from the server's source,
 *	                 checked byte for byte here; Gbit/s
 *	--mode cycles    --count N --conns C: N connections opened, one echo of
 *	                 S bytes, closed (C at a time)
 *	--mode conns     --conns C: C connections open at once, each echoes S
 *	                 bytes, then all close
 * Everything is bounded: --duration seconds (default 60) ends a run as a
 * failure. Results go to stdout as one JSON line; the server prints
 * "READY" when it listens and its JSON line (counters) on SIGINT/SIGTERM.
 * --impair SPEC applies net_impair (seeded, printed) to the port's queue.
 * --idle-us U sleeps U us at a time after 1 ms without work (tests share cores),
 * with 1 us timer slack, as the broker's reactor does; the benchmark default 0
 * busy-polls.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/prctl.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "net.h"
#include "net_impair.h"
#include "net_port.h"
#include "net_tcp.h"
#include "np.h"

#define NP_PAT_LEN (NP_PATTERN_PERIOD + 65536u)

struct np_opts {
	bool server;
	const char *mode;
	uint32_t ip, mask, gw, peer;
	uint16_t port;
	uint16_t mtu;
	uint32_t size;
	uint64_t count;
	uint32_t conns;
	uint64_t bytes;
	double duration;
	bool trust_cksum;
	const char *impair;
	uint32_t idle_us;
	double rate;	/* echo: round trips per second per connection, 0: back to back */
	uint32_t max_conns;
	uint32_t rcvbuf, sndbuf;
	uint32_t backlog;
	uint32_t mbufs;
	uint16_t port_id;
	bool no_syncookies;
	bool tso;
};

/* One connection of either role. */
struct np_conn {
	struct net_tcp_conn *c;
	uint32_t lane;			/* client: index */
	/* server */
	uint8_t hdr[NP_HDR_LEN];
	uint32_t hlen;
	uint8_t mode, flags;
	uint16_t pause_ms;
	uint64_t target;
	uint64_t rx;			/* payload bytes after the header */
	uint64_t tx;			/* bytes queued for sending */
	uint64_t pause_at, pause_until;
	bool paused, eof, closing, bad, reported;
	uint32_t unrecved;		/* bytes delivered, window not given back */
	uint8_t *ring;			/* echo bytes waiting for send space */
	uint32_t ring_cap, ring_head, ring_n;
	/* client */
	uint64_t done_msgs;
	uint32_t got;			/* bytes of the current echo / report */
	uint64_t t_send;		/* TSC of the current request (with --rate: when it was due) */
	uint64_t due;			/* --rate: TSC the next request is due at */
	bool due_wait;			/* --rate: the next request waits for its due time */
	uint8_t report[16];
};

static struct np_opts o;
static struct net_stack *st;
static uint8_t pat[NP_PAT_LEN];
static volatile sig_atomic_t stop;
static uint64_t tsc_hz;

/* Counters of the run (both roles). */
static struct {
	uint64_t accepted, connected, closed_ok, resets, refused, timeouts, other_err;
	uint64_t bad_data, bad_header, sink_ok, sink_bad, echo_bytes, source_bytes;
	uint64_t halfclose_rx_bytes, pauses, aborts_sent;
	uint64_t open, max_open;
	/* client */
	uint64_t msgs, rx_bytes, cycles_done, errors;
	uint64_t *rtt_ns;
	uint64_t nrtt, cap_rtt;
	bool failed;
	char why[160];
} R;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t
now_us(void)
{
	return net_port_now_us();
}

static void
fail(const char *why)
{
	if (!R.failed)
		snprintf(R.why, sizeof(R.why), "%s", why);
	R.failed = true;
	stop = 1;
}

/* ---- checking and producing the pattern ---- */

static bool
pattern_check(const uint8_t *p, uint32_t len, uint64_t off)
{
	while (len > 0) {
		uint32_t k = (uint32_t)(off % NP_PATTERN_PERIOD);
		uint32_t n = len < 65536 ? len : 65536;

		if (memcmp(p, pat + k, n) != 0)
			return false;
		p += n;
		len -= n;
		off += n;
	}
	return true;
}

/* Queue pattern bytes [c->tx, limit) as send space allows. */
static void
pattern_push(struct np_conn *c, uint64_t limit)
{
	while (c->tx < limit) {
		uint32_t k = (uint32_t)(c->tx % NP_PATTERN_PERIOD);
		uint64_t want = limit - c->tx;
		uint32_t n = want < 65536 ? (uint32_t)want : 65536;
		int r = net_tcp_send(c->c, pat + k, n);

		if (r <= 0)
			break;
		c->tx += (uint32_t)r;
	}
}

/* ---- server ---- */

#define NP_MAX_PAUSED 1024
static struct np_conn *paused[NP_MAX_PAUSED];
static uint32_t npaused;

static void paused_del(struct np_conn *c);


static void
srv_close(struct np_conn *c)
{
	if (!c->closing) {
		c->closing = true;
		net_tcp_close(c->c);
	}
}

static void
srv_ring_flush(struct np_conn *c)
{
	while (c->ring_n > 0) {
		uint32_t n = c->ring_cap - c->ring_head;
		int r;

		if (n > c->ring_n)
			n = c->ring_n;
		r = net_tcp_send(c->c, c->ring + c->ring_head, n);
		if (r <= 0)
			break;
		c->ring_head = (c->ring_head + (uint32_t)r) % c->ring_cap;
		c->ring_n -= (uint32_t)r;
		c->tx += (uint32_t)r;
		R.echo_bytes += (uint32_t)r;
		net_tcp_recved(c->c, (uint32_t)r);
		c->unrecved -= (uint32_t)r;
	}
	if (c->ring_n == 0 && c->eof)
		srv_close(c);
}

/* Echo bytes: straight into the send queue; what does not fit waits in
 * the connection's ring and its window stays closed meanwhile. */
static void
srv_echo(struct np_conn *c, const uint8_t *p, uint32_t len)
{
	int r = 0;

	if (c->ring_n == 0) {
		r = net_tcp_send(c->c, p, len);
		if (r < 0)
			r = 0;
		c->tx += (uint32_t)r;
		R.echo_bytes += (uint32_t)r;
		net_tcp_recved(c->c, (uint32_t)r);
		c->unrecved -= (uint32_t)r;
	}
	if ((uint32_t)r < len) {
		uint32_t rest = len - (uint32_t)r;

		if (c->ring == NULL) {
			c->ring_cap = o.rcvbuf + 65536;
			c->ring = malloc(c->ring_cap);
			if (c->ring == NULL) {
				fail("no memory for an echo ring");
				return;
			}
		}
		if (c->ring_n + rest > c->ring_cap) {
			fail("echo ring overflow (peer sent past our window?)");
			return;
		}
		for (uint32_t i = 0; i < rest; i++)
			c->ring[(c->ring_head + c->ring_n + i) % c->ring_cap] = p[r + i];
		c->ring_n += rest;
	}
}

static void
srv_sink_report(struct np_conn *c)
{
	uint32_t rep[4];
	uint64_t ok = c->rx;

	rep[0] = htonl(NP_REPORT);
	rep[1] = htonl(c->bad ? 1 : 0);
	rep[2] = htonl((uint32_t)(ok >> 32));
	rep[3] = htonl((uint32_t)ok);
	if (c->bad)
		R.sink_bad++;
	else
		R.sink_ok++;
	c->reported = true;
	if (net_tcp_send(c->c, rep, sizeof(rep)) != (int)sizeof(rep))
		fail("no send space for a sink report");
	srv_close(c);
}

static void
srv_start_mode(struct np_conn *c)
{
	const uint8_t *h = c->hdr;
	uint32_t magic;

	memcpy(&magic, h, 4);
	if (ntohl(magic) != NP_MAGIC || h[4] < NP_ECHO || h[4] > NP_SOURCE) {
		R.bad_header++;
		net_tcp_abort(c->c);
		c->closing = true;
		return;
	}
	c->mode = h[4];
	c->flags = h[5];
	c->pause_ms = (uint16_t)(h[6] << 8 | h[7]);
	c->target = 0;
	for (int i = 8; i < 16; i++)
		c->target = c->target << 8 | h[i];
	if (c->mode == NP_SINK && c->pause_ms != 0) {
		uint64_t q = c->target / 4;

		c->pause_at = q < (1u << 20) ? q : (1u << 20);
		if (c->pause_at == 0)
			c->pause_at = 1;
	}
	if (c->mode == NP_SOURCE) {
		uint64_t lim = (c->flags & NP_F_RST) ? c->target / 2 : c->target;

		pattern_push(c, lim);
	}
}

static void srv_progress(struct np_conn *c);

static int
srv_accept(void *arg, struct net_tcp_conn *tc)
{
	struct np_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -1;
	c->c = tc;
	net_tcp_conn_set_arg(tc, c);
	R.accepted++;
	R.open++;
	if (R.open > R.max_open)
		R.max_open = R.open;
	return 0;
}

static void
srv_data(void *arg, struct net_tcp_conn *tc, struct rte_mbuf *m, uint32_t len)
{
	struct np_conn *c = arg;

	c->unrecved += len;
	for (struct rte_mbuf *s = m; s != NULL; s = s->next) {
		const uint8_t *p = rte_pktmbuf_mtod(s, const uint8_t *);
		uint32_t n = s->data_len;

		if (c->hlen < NP_HDR_LEN) {
			uint32_t k = NP_HDR_LEN - c->hlen < n ? NP_HDR_LEN - c->hlen : n;

			memcpy(c->hdr + c->hlen, p, k);
			c->hlen += k;
			p += k;
			n -= k;
			net_tcp_recved(tc, k);
			c->unrecved -= k;
			if (c->hlen == NP_HDR_LEN)
				srv_start_mode(c);
		}
		if (n == 0 || (c->closing && c->mode != NP_SOURCE))
			continue;
		switch (c->mode) {
		case NP_ECHO:
			srv_echo(c, p, n);
			break;
		case NP_SINK:
			if (!c->bad && !pattern_check(p, n, c->rx)) {
				c->bad = true;
				R.bad_data++;
			}
			c->rx += n;
			if (!c->paused) {
				net_tcp_recved(tc, n);
				c->unrecved -= n;
			}
			break;
		case NP_SOURCE:
			/* Half-close: the client's bytes after our FIN. */
			if (!pattern_check(p, n, c->rx)) {
				c->bad = true;
				R.bad_data++;
			}
			c->rx += n;
			R.halfclose_rx_bytes += n;
			net_tcp_recved(tc, n);
			c->unrecved -= n;
			break;
		default:
			net_tcp_recved(tc, n);
			c->unrecved -= n;
			break;
		}
	}
	rte_pktmbuf_free(m);
	srv_progress(c);
}

static void
srv_progress(struct np_conn *c)
{
	if (c->closing && c->mode != NP_ECHO)
		return;
	switch (c->mode) {
	case NP_ECHO:
		srv_ring_flush(c);
		break;
	case NP_SINK:
		if (c->pause_ms != 0 && !c->paused && c->pause_until == 0 && c->rx >= c->pause_at &&
				npaused < NP_MAX_PAUSED) {
			c->paused = true;
			c->pause_until = now_us() + (uint64_t)c->pause_ms * 1000;
			paused[npaused++] = c;
			R.pauses++;
		}
		if (c->paused && now_us() >= c->pause_until) {
			c->paused = false;
			net_tcp_recved(c->c, c->unrecved);
			c->unrecved = 0;
		}
		if (!c->reported && ((c->target != 0 && c->rx >= c->target) || c->eof))
			srv_sink_report(c);
		break;
	case NP_SOURCE:
		if (c->flags & NP_F_RST) {
			if (c->tx >= c->target / 2) {
				net_tcp_abort(c->c);
				R.aborts_sent++;
				c->closing = true;
			} else {
				pattern_push(c, c->target / 2);
			}
			break;
		}
		pattern_push(c, c->target);
		if (c->tx >= c->target) {
			R.source_bytes += c->target;
			c->rx = 0;
			srv_close(c);
		}
		break;
	default:
		break;
	}
}

static void
srv_eof(void *arg, struct net_tcp_conn *tc)
{
	struct np_conn *c = arg;

	c->eof = true;
	if (c->hlen < NP_HDR_LEN) {
		srv_close(c);
		return;
	}
	srv_progress(c);
	if (c->mode == NP_SOURCE && c->closing)
		return;	/* half-close done: both FINs */
}

static void
srv_sent(void *arg, struct net_tcp_conn *tc, uint32_t bytes)
{
	struct np_conn *c = arg;

	if (c->hlen == NP_HDR_LEN)
		srv_progress(c);
}

static void
count_status(int status)
{
	if (status == 0)
		R.closed_ok++;
	else if (status == -ECONNRESET)
		R.resets++;
	else if (status == -ECONNREFUSED)
		R.refused++;
	else if (status == -ETIMEDOUT)
		R.timeouts++;
	else
		R.other_err++;
}

static void
srv_closed(void *arg, struct net_tcp_conn *tc, int status)
{
	struct np_conn *c = arg;

	count_status(status);
	R.open--;
	if (c->paused)
		paused_del(c);
	free(c->ring);
	free(c);
}

/* Server connections with a paused reader need a look each loop (their
 * pause ends by time, not by a callback). */
static void
paused_del(struct np_conn *c)
{
	for (uint32_t i = 0; i < npaused; i++) {
		if (paused[i] == c) {
			paused[i] = paused[--npaused];
			return;
		}
	}
}

static void
srv_poll_paused(void)
{
	for (uint32_t i = 0; i < npaused;) {
		struct np_conn *c = paused[i];

		srv_progress(c);
		if (!c->paused)
			paused[i] = paused[--npaused];
		else
			i++;
	}
}

static const struct net_tcp_ops srv_ops = {
	.accept = srv_accept,
	.data = srv_data,
	.eof = srv_eof,
	.sent = srv_sent,
	.closed = srv_closed,
};

/* ---- client ---- */

static struct np_conn *lanes;
static uint64_t started_conns, total_conns, t_start, t_end;
static uint64_t echo_end_us; /* echo with --count 0: no new round trip after this (now_us) */
static uint32_t closed_lanes;
static bool all_open_done;

static void cli_next(uint32_t lane);

static void
cli_send_hdr(struct np_conn *c, uint8_t mode, uint8_t flags, uint64_t bytes)
{
	uint8_t h[NP_HDR_LEN];
	uint32_t mg = htonl(NP_MAGIC);

	memcpy(h, &mg, 4);
	h[4] = mode;
	h[5] = flags;
	h[6] = h[7] = 0;
	for (int i = 0; i < 8; i++)
		h[8 + i] = (uint8_t)(bytes >> (56 - 8 * i));
	if (net_tcp_send(c->c, h, sizeof(h)) != (int)sizeof(h))
		fail("no send space for the header");
}

static void
cli_send_msg(struct np_conn *c)
{
	static uint8_t msg[65536];

	if (msg[1] == 0)
		memcpy(msg, pat, sizeof(msg));
	c->got = 0;
	c->t_send = rte_rdtsc();
	if (o.rate > 0) {
		/* Open loop: timed from when it was due, so a stall of either side
		 * counts for every round trip due meanwhile, as a producer's records. */
		if (c->due == 0)
			c->due = c->t_send;
		c->t_send = c->due;
		c->due += (uint64_t)((double)tsc_hz / o.rate);
	}
	if (net_tcp_send(c->c, msg, o.size) != (int)o.size)
		fail("no send space for a request");
}

static void
cli_connected(void *arg, struct net_tcp_conn *tc)
{
	struct np_conn *c = arg;

	if (R.connected++ == 0)
		t_start = rte_rdtsc();	/* the run is timed from the first connection */
	R.open++;
	if (R.open > R.max_open)
		R.max_open = R.open;
	if (strcmp(o.mode, "echo") == 0 || strcmp(o.mode, "cycles") == 0 ||
			strcmp(o.mode, "conns") == 0) {
		cli_send_hdr(c, NP_ECHO, 0, 0);
		cli_send_msg(c);
	} else if (strcmp(o.mode, "source") == 0) {
		cli_send_hdr(c, NP_SINK, 0, o.bytes);
		pattern_push(c, o.bytes);
	} else if (strcmp(o.mode, "sink") == 0) {
		cli_send_hdr(c, NP_SOURCE, 0, o.bytes);
	}
}

static bool
conns_all_echoed(void)
{
	for (uint32_t i = 0; i < o.conns; i++) {
		if (lanes[i].done_msgs == 0)
			return false;
	}
	return true;
}

static void
cli_data(void *arg, struct net_tcp_conn *tc, struct rte_mbuf *m, uint32_t len)
{
	struct np_conn *c = arg;

	R.rx_bytes += len;
	for (struct rte_mbuf *s = m; s != NULL; s = s->next) {
		const uint8_t *p = rte_pktmbuf_mtod(s, const uint8_t *);
		uint32_t n = s->data_len;

		if (strcmp(o.mode, "source") == 0) {
			uint32_t k = 16 - c->got < n ? 16 - c->got : n;

			memcpy(c->report + c->got, p, k);
			c->got += k;
		} else if (strcmp(o.mode, "sink") == 0) {
			if (!pattern_check(p, n, c->rx)) {
				R.bad_data++;
				fail("received bytes differ from the pattern");
			}
			c->rx += n;
		} else {
			if (!pattern_check(p, n, c->got)) {
				R.bad_data++;
				fail("echoed bytes differ");
			}
			c->got += n;
		}
	}
	rte_pktmbuf_free(m);
	net_tcp_recved(tc, len);
	if (strcmp(o.mode, "echo") == 0 || strcmp(o.mode, "cycles") == 0 ||
			strcmp(o.mode, "conns") == 0) {
		if (c->got < o.size)
			return;
		if (c->got > o.size)
			fail("more bytes echoed than sent");
		if (R.nrtt < R.cap_rtt)
			R.rtt_ns[R.nrtt++] = (rte_rdtsc() - c->t_send) * 1000000000ull / tsc_hz;
		R.msgs++;
		c->done_msgs++;
		if (strcmp(o.mode, "echo") == 0 &&
				(o.count == 0 ? now_us() < echo_end_us : c->done_msgs < o.count)) {
			if (o.rate > 0 && rte_rdtsc() < c->due)
				c->due_wait = true; /* sent by the main loop when due */
			else
				cli_send_msg(c);
		} else if (strcmp(o.mode, "conns") == 0) {
			if (conns_all_echoed() && !all_open_done) {
				all_open_done = true;
				for (uint32_t i = 0; i < o.conns; i++)
					net_tcp_close(lanes[i].c);
			}
		} else {
			net_tcp_close(tc);
		}
	}
}

static void
cli_eof(void *arg, struct net_tcp_conn *tc)
{
	struct np_conn *c = arg;

	c->eof = true;
	if (strcmp(o.mode, "sink") == 0) {
		if (c->rx != o.bytes)
			fail("source ended early");
		net_tcp_close(tc);
	} else if (strcmp(o.mode, "source") == 0) {
		uint32_t st_, hi, lo, mg;

		memcpy(&mg, c->report, 4);
		memcpy(&st_, c->report + 4, 4);
		memcpy(&hi, c->report + 8, 4);
		memcpy(&lo, c->report + 12, 4);
		if (c->got != 16 || ntohl(mg) != NP_REPORT || ntohl(st_) != 0 ||
				((uint64_t)ntohl(hi) << 32 | ntohl(lo)) != o.bytes)
			fail("sink report missing or not ok");
		net_tcp_close(tc);
	}
}

static void
cli_sent(void *arg, struct net_tcp_conn *tc, uint32_t bytes)
{
	struct np_conn *c = arg;

	if (strcmp(o.mode, "source") == 0)
		pattern_push(c, o.bytes);
}

static void
cli_closed(void *arg, struct net_tcp_conn *tc, int status)
{
	struct np_conn *c = arg;

	count_status(status);
	if (status != 0) {
		R.errors++;
		fail("a connection ended with an error");
	}
	if (R.open > 0)
		R.open--;
	c->c = NULL;
	closed_lanes++;
	if (strcmp(o.mode, "cycles") == 0) {
		R.cycles_done++;
		cli_next(c->lane);
	}
}

static const struct net_tcp_ops cli_ops = {
	.connected = cli_connected,
	.data = cli_data,
	.eof = cli_eof,
	.sent = cli_sent,
	.closed = cli_closed,
};

static void
cli_next(uint32_t lane)
{
	struct np_conn *c = &lanes[lane];
	int rc;

	if (started_conns >= total_conns || stop)
		return;
	memset(c, 0, sizeof(*c));
	c->lane = lane;
	rc = net_tcp_connect(st, o.peer, o.port, &cli_ops, c, &c->c);
	if (rc != 0) {
		fail("connect failed (table full or no source port)");
		return;
	}
	started_conns++;
}

/* --rate: the earliest due time of a lane waiting to send (TSC), or UINT64_MAX. */
static uint64_t
cli_next_due(void)
{
	uint64_t next = UINT64_MAX;

	for (uint32_t i = 0; o.rate > 0 && i < o.conns; i++) {
		if (lanes[i].due_wait && lanes[i].due < next)
			next = lanes[i].due;
	}
	return next;
}

static bool
cli_done(void)
{
	if (strcmp(o.mode, "cycles") == 0)
		return R.cycles_done >= o.count && R.open == 0;
	return closed_lanes >= o.conns;
}

/* ---- main ---- */

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
print_stats_json(const char *role, double secs, const char *impair_desc)
{
	const struct net_stats *s = net_stack_stats(st);

	printf("{\"role\":\"%s\",\"mode\":\"%s\",\"ok\":%s,\"why\":\"%s\",\"seconds\":%.6f,",
		role, o.server ? "serve" : o.mode, R.failed ? "false" : "true", R.why, secs);
	if (!o.server) {
		bool bulk = strcmp(o.mode, "source") == 0 || strcmp(o.mode, "sink") == 0;
		double p50 = 0, p99 = 0, p999 = 0;

		if (R.nrtt > 0) {
			qsort(R.rtt_ns, R.nrtt, sizeof(R.rtt_ns[0]), cmp_u64);
			p50 = (double)R.rtt_ns[R.nrtt / 2] / 1000.0;
			p99 = (double)R.rtt_ns[(R.nrtt * 99) / 100] / 1000.0;
			p999 = (double)R.rtt_ns[(R.nrtt * 999) / 1000] / 1000.0;
		}
		printf("\"round_trips\":%" PRIu64 ",\"rtt_per_s\":%.1f,\"p50_us\":%.2f,"
			"\"p99_us\":%.2f,\"p999_us\":%.2f,\"bytes\":%" PRIu64 ",\"gbit_s\":%.4f,"
			"\"cycles\":%" PRIu64 ",\"max_open\":%" PRIu64 ",", R.msgs,
			secs > 0 ? (double)R.msgs / secs : 0, p50, p99, p999, bulk ? o.bytes : 0,
			bulk && secs > 0 ? (double)o.bytes * 8 / secs / 1e9 : 0,
			R.cycles_done, R.max_open);
	} else {
		printf("\"accepted\":%" PRIu64 ",\"max_open\":%" PRIu64 ",\"open\":%" PRIu64
			",\"sink_ok\":%" PRIu64 ",\"sink_bad\":%" PRIu64 ",\"bad_header\":%" PRIu64
			",\"echo_bytes\":%" PRIu64 ",\"source_bytes\":%" PRIu64
			",\"halfclose_rx_bytes\":%" PRIu64 ",\"pauses\":%" PRIu64
			",\"aborts_sent\":%" PRIu64 ",", R.accepted, R.max_open, R.open, R.sink_ok,
			R.sink_bad, R.bad_header, R.echo_bytes, R.source_bytes,
			R.halfclose_rx_bytes, R.pauses, R.aborts_sent);
	}
	printf("\"closed_ok\":%" PRIu64 ",\"resets\":%" PRIu64 ",\"refused\":%" PRIu64
		",\"timeouts\":%" PRIu64 ",\"bad_data\":%" PRIu64 ",\"conn_count\":%u,",
		R.closed_ok, R.resets, R.refused, R.timeouts, R.bad_data, net_tcp_conn_count(st));
	printf("\"stack\":{\"rx_frames\":%" PRIu64 ",\"tx_frames\":%" PRIu64
		",\"rx_bad_eth\":%" PRIu64 ",\"rx_bad_ipv4\":%" PRIu64
		",\"rx_ip_fragments\":%" PRIu64
		",\"rx_unknown_proto\":%" PRIu64 ",\"rx_tcp_bad\":%" PRIu64 ",\"rx_tcp_no_conn\":%" PRIu64
		",\"tcp_syn_dropped\":%" PRIu64 ",\"tcp_out_of_window\":%" PRIu64
		",\"tcp_challenge_acks\":%" PRIu64 ",\"tcp_rst_rx\":%" PRIu64 ",\"tcp_rst_tx\":%" PRIu64
		",\"tcp_retransmits\":%" PRIu64 ",\"tcp_fast_retransmits\":%" PRIu64
		",\"tcp_rto_expiries\":%" PRIu64 ",\"tcp_sack_recoveries\":%" PRIu64
		",\"tcp_sack_retransmits\":%" PRIu64 ",\"tcp_zero_window_probes\":%" PRIu64
		",\"tcp_ooo_queued\":%" PRIu64 ",\"tcp_syncookies_sent\":%" PRIu64
		",\"tcp_syncookies_ok\":%" PRIu64 ",\"tcp_syncookies_failed\":%" PRIu64
		",\"tcp_syncookies_limited\":%" PRIu64 ",\"tx_dropped\":%" PRIu64
		",\"tx_no_mbuf\":%" PRIu64 ",\"rx_multiseg_hdr\":%" PRIu64 ",\"rx_ipv4\":%" PRIu64
		",\"rx_ip_not_for_us\":%" PRIu64 ",\"rx_unknown_ethertype\":%" PRIu64
		",\"rx_arp\":%" PRIu64 ",\"rx_icmp\":%" PRIu64 ",\"tcp_paws_rejected\":%" PRIu64
		",\"tcp_tso_frames\":%" PRIu64 ",\"tcp_tso_segments\":%" PRIu64
		",\"tcp_tso_fallbacks\":%" PRIu64 ",\"tcp_rack_lost\":%" PRIu64 "},",
		s->rx_frames, s->tx_frames, s->rx_bad_eth, s->rx_bad_ipv4, s->rx_ip_fragments,
		s->rx_unknown_proto, s->rx_tcp_bad, s->rx_tcp_no_conn, s->tcp_syn_dropped,
		s->tcp_out_of_window, s->tcp_challenge_acks, s->tcp_rst_rx, s->tcp_rst_tx,
		s->tcp_retransmits, s->tcp_fast_retransmits, s->tcp_rto_expiries,
		s->tcp_sack_recoveries, s->tcp_sack_retransmits, s->tcp_zero_window_probes,
		s->tcp_ooo_queued, s->tcp_syncookies_sent, s->tcp_syncookies_ok,
		s->tcp_syncookies_failed, s->tcp_syncookies_limited, s->tx_dropped, s->tx_no_mbuf,
		s->rx_multiseg_hdr, s->rx_ipv4, s->rx_ip_not_for_us, s->rx_unknown_ethertype,
		s->rx_arp, s->rx_icmp, s->tcp_paws_rejected, s->tcp_tso_frames,
		s->tcp_tso_segments, s->tcp_tso_fallbacks, s->tcp_rack_lost);
	printf("\"impair\":\"%s\"}\n", impair_desc);
	fflush(stdout);
}

static int
parse_ip(const char *s, uint32_t *out)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*out = a.s_addr;
	return 0;
}

static void
usage(void)
{
	fprintf(stderr,
		"usage: slipstream-netperf <EAL options> -- --server|--client --ip A.B.C.D\n"
		"  [--mask N] [--gw A.B.C.D] [--peer A.B.C.D] [--port P] [--mtu M]\n"
		"  [--mode echo|source|sink|cycles|conns] [--size S] [--count N] [--conns C]\n"
		"  [--bytes B] [--duration SEC] [--trust-rx-cksum] [--impair SPEC]\n"
		"  [--idle-us U] [--rate R] [--max-conns N] [--rcvbuf B] [--sndbuf B] [--backlog N]\n"
		"  [--mbufs N] [--port-id ID] [--no-syncookies] [--tso]\n");
}

static int
parse_opts(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "server", no_argument, NULL, 'S' },
		{ "client", no_argument, NULL, 'C' },
		{ "ip", required_argument, NULL, 'i' },
		{ "mask", required_argument, NULL, 'k' },
		{ "gw", required_argument, NULL, 'g' },
		{ "peer", required_argument, NULL, 'p' },
		{ "port", required_argument, NULL, 'P' },
		{ "mtu", required_argument, NULL, 'M' },
		{ "mode", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 's' },
		{ "count", required_argument, NULL, 'n' },
		{ "conns", required_argument, NULL, 'c' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "duration", required_argument, NULL, 'd' },
		{ "trust-rx-cksum", no_argument, NULL, 't' },
		{ "impair", required_argument, NULL, 'I' },
		{ "idle-us", required_argument, NULL, 'u' },
		{ "rate", required_argument, NULL, 'R' },
		{ "max-conns", required_argument, NULL, 'x' },
		{ "rcvbuf", required_argument, NULL, 'r' },
		{ "sndbuf", required_argument, NULL, 'w' },
		{ "backlog", required_argument, NULL, 'B' },
		{ "mbufs", required_argument, NULL, 'N' },
		{ "port-id", required_argument, NULL, 'D' },
		{ "no-syncookies", no_argument, NULL, 'Z' },
		{ "tso", no_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, bits;

	o.port = 5201;
	o.size = 100;
	o.count = 1000;
	o.conns = 1;
	o.bytes = 64ull << 20;
	o.duration = 60;
	o.mask = htonl(0xffffff00);
	o.max_conns = 4096;
	o.rcvbuf = 256 * 1024;
	o.sndbuf = 256 * 1024;
	o.backlog = 1024;
	o.mbufs = 65535;
	o.mode = "echo";
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'S': o.server = true; break;
		case 'C': o.server = false; break;
		case 'i': if (parse_ip(optarg, &o.ip) != 0) return -1; break;
		case 'k':
			bits = atoi(optarg);
			if (bits < 1 || bits > 32)
				return -1;
			o.mask = htonl(bits == 32 ? 0xffffffffu : ~(0xffffffffu >> bits));
			break;
		case 'g': if (parse_ip(optarg, &o.gw) != 0) return -1; break;
		case 'p': if (parse_ip(optarg, &o.peer) != 0) return -1; break;
		case 'P': o.port = (uint16_t)atoi(optarg); break;
		case 'M': o.mtu = (uint16_t)atoi(optarg); break;
		case 'm': o.mode = optarg; break;
		case 's': o.size = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'n': o.count = strtoull(optarg, NULL, 0); break;
		case 'c': o.conns = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'b': o.bytes = strtoull(optarg, NULL, 0); break;
		case 'd': o.duration = atof(optarg); break;
		case 't': o.trust_cksum = true; break;
		case 'I': o.impair = optarg; break;
		case 'u': o.idle_us = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'R': o.rate = atof(optarg); break;
		case 'x': o.max_conns = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'r': o.rcvbuf = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'w': o.sndbuf = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'B': o.backlog = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'N': o.mbufs = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'D': o.port_id = (uint16_t)atoi(optarg); break;
		case 'Z': o.no_syncookies = true; break;
		case 'T': o.tso = true; break;
		default: return -1;
		}
	}
	if (o.ip == 0 || (!o.server && o.peer == 0))
		return -1;
	if (o.size == 0 || o.size > 65536 || o.conns == 0 || o.duration <= 0)
		return -1;
	if (!o.server && strcmp(o.mode, "echo") != 0 && strcmp(o.mode, "source") != 0 &&
			strcmp(o.mode, "sink") != 0 && strcmp(o.mode, "cycles") != 0 &&
			strcmp(o.mode, "conns") != 0)
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	struct net_port_conf pc;
	struct net_port_info info;
	struct net_port_queue q;
	struct net_impair_conf ic;
	struct net_config cfg;
	struct rte_mempool *pool;
	char desc[320] = "";
	uint64_t deadline, last_busy = 0;
	int n;

	n = rte_eal_init(argc, argv);
	if (n < 0) {
		fprintf(stderr, "slipstream-netperf: EAL did not start: %s\n",
			rte_strerror(rte_errno));
		return 2;
	}
	argc -= n;
	argv += n;
	if (parse_opts(argc, argv) != 0) {
		usage();
		return 2;
	}
	tsc_hz = rte_get_tsc_hz();
	for (uint32_t i = 0; i < NP_PAT_LEN; i++)
		pat[i] = np_pattern(i);
	if (!rte_eth_dev_is_valid_port(o.port_id)) {
		fprintf(stderr, "slipstream-netperf: no port %u (give --vdev)\n", o.port_id);
		return 2;
	}
	pool = rte_pktmbuf_pool_create("np_pool", o.mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
		(int)rte_socket_id());
	if (pool == NULL) {
		fprintf(stderr, "slipstream-netperf: mbuf pool: %s\n", rte_strerror(rte_errno));
		return 2;
	}
	memset(&pc, 0, sizeof(pc));
	pc.pool = pool;
	pc.mtu = o.mtu;
	pc.tso = o.tso;
	n = net_port_setup(o.port_id, &pc, &info);
	if (n != 0) {
		fprintf(stderr, "slipstream-netperf: port setup: %s\n", strerror(-n));
		return 2;
	}
	memset(&q, 0, sizeof(q));
	q.port_id = o.port_id;
	if (o.impair != NULL) {
		memset(&ic, 0, sizeof(ic));
		ic.pool = pool;
		if (net_impair_parse(&ic, o.impair) != 0) {
			fprintf(stderr, "slipstream-netperf: bad --impair '%s'\n", o.impair);
			return 2;
		}
		q.impair = net_impair_create(&ic);
		if (q.impair == NULL)
			return 2;
		net_impair_describe(q.impair, desc, sizeof(desc));
		fprintf(stderr, "slipstream-netperf: %s\n", desc);
	}
	memset(&cfg, 0, sizeof(cfg));
	net_port_worker_config(&cfg, &info, &q, o.mtu);
	cfg.ipv4_addr = o.ip;
	cfg.ipv4_mask = o.mask;
	cfg.ipv4_gateway = o.gw;
	cfg.pool = pool;
	cfg.rx_l4_cksum_trusted = o.trust_cksum;
	cfg.max_conns = o.max_conns;
	cfg.rcvbuf_bytes = o.rcvbuf;
	cfg.sndbuf_bytes = o.sndbuf;
	cfg.no_syncookies = o.no_syncookies;
	cfg.ooo_max_segs = 255;	/* a whole window of reordering at our MSS */
	cfg.time_wait_us = 2 * 1000 * 1000;	/* short TIME-WAIT: a test tool */
	cfg.seed = rte_rdtsc();
	st = net_stack_create(&cfg);
	if (st == NULL) {
		fprintf(stderr, "slipstream-netperf: stack: %s\n", strerror(errno));
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	net_stack_start(st, now_us());
	if (o.server) {
		n = net_tcp_listen(st, o.port, o.backlog, &srv_ops, NULL);
		if (n != 0) {
			fprintf(stderr, "slipstream-netperf: listen: %s\n", strerror(-n));
			return 2;
		}
		printf("READY %s port %u driver %s\n", o.mode, o.port, info.driver);
		fflush(stdout);
	} else {
		R.cap_rtt = strcmp(o.mode, "echo") == 0 ? (o.count ? o.count : 4u << 20) * o.conns :
			(strcmp(o.mode, "cycles") == 0 ? o.count : o.conns);
		if (R.cap_rtt > 20u << 20)
			R.cap_rtt = 20u << 20;
		R.rtt_ns = calloc(R.cap_rtt + 1, sizeof(R.rtt_ns[0]));
		lanes = calloc(o.conns, sizeof(*lanes));
		if (R.rtt_ns == NULL || lanes == NULL)
			return 2;
		/* cycles: count connections over conns lanes; else one per lane */
		total_conns = strcmp(o.mode, "cycles") == 0 ? o.count : o.conns;
	}
	deadline = now_us() + (uint64_t)(o.duration * 1e6);
	if (!o.server && strcmp(o.mode, "echo") == 0 && o.count == 0) {
		/* --count 0: echo for --duration seconds, then close (10 s more for that). */
		echo_end_us = deadline;
		deadline += 10 * 1000 * 1000;
	}
	t_start = rte_rdtsc();
	/* An idle sleep ends when asked, not up to the default 50 us timer slack later: the
	 * broker's reactor and slipstream-load's memif transport do the same, so an echo
	 * with --idle-us measures what their sleeps cost. */
	if (o.idle_us != 0)
		(void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
	if (!o.server) {
		struct rte_eth_link link;

		/* A memif or tap link comes up once the peer is there: wait
		 * (bounded) so the first SYN is not lost to a down link. */
		do {
			memset(&link, 0, sizeof(link));
			rte_eth_link_get_nowait(o.port_id, &link);
			net_port_poll(st, &q, now_us());
		} while (link.link_status != RTE_ETH_LINK_UP && now_us() < deadline && !stop);
		for (uint32_t i = 0; i < o.conns && i < total_conns; i++)
			cli_next(i);
	}
	while (!stop) {
		uint64_t t = now_us();

		if (net_port_poll(st, &q, t) == 0) {
			if (o.idle_us != 0 && t - last_busy >= 1000) {
				uint64_t us = o.idle_us, next = cli_next_due();
				struct timespec ts;

				if (next != UINT64_MAX) { /* --rate: not past a request's due time */
					uint64_t now = rte_rdtsc();
					uint64_t left = next > now ? (next - now) * 1000000 / tsc_hz : 0;
					us = left < us ? left : us;
				}
				ts = (struct timespec){ 0, (long)us * 1000 };
				nanosleep(&ts, NULL);
			}
		} else {
			last_busy = t;
		}
		if (!o.server && o.rate > 0) {
			uint64_t now = rte_rdtsc();

			for (uint32_t i = 0; i < o.conns; i++) {
				if (lanes[i].due_wait && now >= lanes[i].due && !stop) {
					lanes[i].due_wait = false;
					cli_send_msg(&lanes[i]);
				}
			}
		}
		if (o.server) {
			srv_poll_paused();
		} else if (cli_done()) {
			break;
		}
		if (t > deadline) {
			if (o.server)
				break;
			fail("time bound reached");
		}
	}
	t_end = rte_rdtsc();
	/* Let the last ACKs and FINs out. */
	for (int k = 0; k < 2000; k++)
		net_port_poll(st, &q, now_us());
	print_stats_json(o.server ? "server" : "client", (double)(t_end - t_start) / (double)tsc_hz,
		desc);
	net_stack_free(st);
	net_impair_free(q.impair);
	rte_eth_dev_stop(o.port_id);
	rte_eth_dev_close(o.port_id);
	rte_eal_cleanup();
	return R.failed ? 1 : 0;
}
