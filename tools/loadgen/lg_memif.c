/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The memif transport of the load generator (see lg_memif.h): the
 * lg_transport_ops of lg_transport.h over Slipstream's TCP/IP stack
 * (dataplane/net) on a net_memif port, the way tools/netperf runs the stack
 * as a client (active opens, one queue, busy polling).
 *
 * Receive: the stack's data callback hands over mbuf chains; they are kept
 * in one list per connection and read() copies out of them, frees what it
 * consumed and gives the window back (net_tcp_recved), so an unread
 * response closes the TCP window instead of growing memory. Transmit:
 * send_ref() lends the request's buffer to the send queue as mbufs with the
 * buffer attached (no copy; returned through the lg_tx_ref once every byte
 * is acknowledged), writev() copies into it (net_tcp_send); both as far as
 * the send buffer takes; the frames leave on the next poll. poll() runs rx
 * bursts, the stack's timers and output (net_port_poll) until a connection
 * has news or the timeout passes; reports are level-triggered, as the
 * kernel transport's epoll: readable while bytes, EOF or an error wait,
 * writable while asked for and the send buffer has room.
 *
 * Connections closed by the user are detached and freed by the stack's
 * closed callback; destroy() closes every connection and polls (bounded)
 * until their FINs are exchanged, then aborts what is left.
 */
#include "lg_memif.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_memory.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "net.h"
#include "net_port.h"
#include "net_tcp.h"

#define MF_MAX_EAL_ARGS 48
/* --memif-idle-us: sleep only after this long without work (--memif-idle-grace-us), as
 * the broker's reactor does (dp_reactor.c): a wake-up from a sleep costs 50-70 us on the
 * 2-vCPU VM, so under load (events every few us) both sides spin and a pause gives the CPU
 * back. A short grace leaves the CPU to kernel work sooner (disk completions). */
#define MF_IDLE_GRACE_US 1000
#define MF_CLOSE_WAIT_US 500000 /* destroy: how long FINs may take */
#define MF_QUIET_US 20000      /* shutdown: no frame for this long before the port stops */
#define MF_QUIET_MAX_US 500000 /* shutdown: the wait for that, at most */
#define MF_EXT_PIECE 32768u	 /* send_ref: bytes per external-buffer mbuf (buf_len: 16 bits) */

/* The one stack of the process. */
static struct {
	struct lg_memif_conf conf;
	bool configured;
	bool eal_up;
	bool port_up;
	uint16_t port_id;
	struct rte_mempool *pool;
	struct net_port_info info;
	struct net_port_queue q;
	struct net_stack *st;
	net_tx_burst_fn port_tx;	/* no_tx_cksum: the port's output, behind mf_tx_ipcksum */
	uint32_t addr, mask; /* ours, network order */
	struct lg_transport *active;
	uint32_t closing; /* connections closed by the user, stack not done with them */
	struct lg_tconn *detached; /* those connections (freed at shutdown if still there) */
	char desc[320];
} mf;

struct lg_transport {
	struct lg_tconn *conns; /* open, in the user's hands */
	uint64_t last_busy_us;	/* the last poll that received or reported something */
	/* What poll may have to report, so that it visits only those
	 * connections (a walk over 64 connections per poll was a fifth of the
	 * load generator's cycles, then an eighth while only done when
	 * something had happened): ready lists the connections with an event
	 * since their last report or left readable by it; n_want counts the
	 * connections asking for writable reports (all are walked then). */
	struct lg_tconn *ready;
	uint32_t n_want;
	uint64_t busy_cycles; /* TSC cycles of poll iterations that moved frames or reported */
};


struct lg_tconn {
	struct lg_transport *t;
	struct net_tcp_conn *tc; /* NULL once the stack closed it */
	void *arg;
	bool up;
	bool eof;
	bool want_out;
	bool detached; /* the user closed it; freed by the closed callback */
	int err;       /* negative errno once failed or closed by the peer */
	struct rte_mbuf *rx_head; /* received segments, linked through ->next */
	struct rte_mbuf *rx_tail;
	uint32_t rx_off; /* bytes of rx_head already read */
	uint64_t rx_bytes;
	struct lg_tconn *next;
	struct lg_tconn *prev;
	bool queued; /* on t->ready */
	struct lg_tconn *rnext;
	struct lg_tconn *rprev;
};

static void
ready_add(struct lg_transport *t, struct lg_tconn *c)
{
	if (c->queued)
		return;
	c->queued = true;
	c->rprev = NULL;
	c->rnext = t->ready;
	if (t->ready != NULL)
		t->ready->rprev = c;
	t->ready = c;
}

static void
ready_del(struct lg_transport *t, struct lg_tconn *c)
{
	if (!c->queued)
		return;
	if (c->rprev != NULL)
		c->rprev->rnext = c->rnext;
	else
		t->ready = c->rnext;
	if (c->rnext != NULL)
		c->rnext->rprev = c->rprev;
	c->rnext = c->rprev = NULL;
	c->queued = false;
}

/* Something to report on @c (unless detached) at the next poll. */
static inline void
mf_news(struct lg_tconn *c)
{
	if (c->t != NULL)
		ready_add(c->t, c);
}

static void
list_del(struct lg_tconn **head, struct lg_tconn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

static void
list_add(struct lg_tconn **head, struct lg_tconn *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

static uint64_t
mf_now_us(void)
{
	return net_port_now_us();
}

/* Microseconds of @tsc, on net_port_now_us's scale (one multiplication). */
static uint64_t
mf_tsc_us(uint64_t tsc)
{
	static uint64_t mult;

	if (mult == 0)
		mult = (uint64_t)((((__uint128_t)1000000u) << 32) / rte_get_tsc_hz());
	return (uint64_t)(((__uint128_t)tsc * mult) >> 32);
}

/* ---- configuration and start-up ------------------------------------------- */

int
lg_memif_configure(const struct lg_memif_conf *conf)
{
	if (mf.eal_up)
		return -EBUSY;
	if (conf->socket[0] == '\0')
		return -EINVAL;
	if (strchr(conf->socket, ',') != NULL || strchr(conf->socket, ' ') != NULL)
		return -EINVAL; /* it goes into a devargs string */
	if (conf->mtu != 0 && (conf->mtu < 576 || conf->mtu > 9000))
		return -EINVAL;
	if (conf->zero_copy && (!conf->huge || conf->server))
		return -ENOTSUP; /* memif shares hugepage files, and only a client's */
	mf.conf = *conf;
	if (mf.conf.mtu == 0)
		mf.conf.mtu = 1500;
	/* Jumbo mbufs are 4.5x larger: the same memory holds a quarter as many. */
	if (mf.conf.mbufs == 0)
		mf.conf.mbufs = mf.conf.mtu > 1500 ? 16383 : 65535;
	if (mf.conf.memory_mb == 0)
		mf.conf.memory_mb = 512;
	if (mf.conf.bufs == 0)
		mf.conf.bufs = 2u << 20;
	if (mf.conf.max_conns == 0)
		mf.conf.max_conns = 4096;
	if (mf.conf.link_wait_ms == 0)
		mf.conf.link_wait_ms = 10000;
	mf.configured = true;
	return 0;
}

static int
parse_prefix(const char *s, uint32_t *addr, uint32_t *mask)
{
	char a[32];
	const char *slash = strchr(s, '/');
	size_t al = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long plen = 24;
	struct in_addr in;

	if (al >= sizeof(a))
		return -EINVAL;
	memcpy(a, s, al);
	a[al] = '\0';
	if (slash != NULL) {
		char *end;
		plen = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || end == slash + 1 || plen < 1 || plen > 30)
			return -EINVAL;
	}
	if (inet_pton(AF_INET, a, &in) != 1)
		return -EINVAL;
	*addr = in.s_addr;
	*mask = htonl(0xffffffffu << (32 - plen));
	return 0;
}

/* Our address: configured, or the broker's /24 with host part 1 (2 if that is the broker). */
static int
mf_pick_address(uint32_t broker)
{
	if (mf.conf.ip[0] != '\0')
		return parse_prefix(mf.conf.ip, &mf.addr, &mf.mask);
	uint32_t h = ntohl(broker);
	mf.mask = htonl(0xffffff00u);
	mf.addr = htonl((h & 0xffffff00u) | ((h & 0xffu) == 1 ? 2u : 1u));
	return 0;
}

/*
 * --memif-zero-copy: the hugepage file of a memseg list, unlinked once the EAL
 * has it mapped and open (--huge-unlink does this, but the EAL refuses it with
 * the --single-file-segments zero-copy needs). memif hands the peer the open
 * descriptor, not the path; the pages go back when the process ends, however
 * it ends, instead of staying in the hugetlbfs.
 */
static int
mf_unlink_seg_file(const struct rte_memseg_list *msl, const struct rte_memseg *ms, void *arg)
{
	char link[64], path[PATH_MAX];
	int fd = rte_memseg_get_fd_thread_unsafe(ms);
	ssize_t n;

	(void)msl;
	(void)arg;
	if (fd < 0)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return 0;
	path[n] = '\0';
	if (strstr(path, " (deleted)") == NULL)
		(void)unlink(path); /* once per list: its segments share the file */
	return 0;
}

static int
mf_first_cpu(void)
{
	cpu_set_t set;

	if (mf.conf.cpu >= 0)
		return mf.conf.cpu;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int i = 0; i < CPU_SETSIZE; i++)
			if (CPU_ISSET(i, &set))
				return i;
	return 0;
}

/* Bytes of the largest frame on the link, rounded up to 1 KiB: the memif ring
 * buffers' size and the data room of our mbufs (one frame, one mbuf). */
static unsigned int
mf_frame_room(void)
{
	unsigned int frame = (unsigned int)mf.conf.mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;

	return frame <= 2048 - 128 ? 2048 : (frame + 1023) & ~1023u;
}

static int
mf_eal_init(void)
{
	static char store[2048];
	char *argv[MF_MAX_EAL_ARGS];
	size_t used = 0;
	int argc = 0;
	cpu_set_t saved;
	bool have_saved;

#define MF_ADD(...)                                                                        \
	do {                                                                               \
		int k_ = snprintf(store + used, sizeof(store) - used, __VA_ARGS__);        \
		if (k_ < 0 || (size_t)k_ >= sizeof(store) - used || argc >= MF_MAX_EAL_ARGS - 1) \
			return -E2BIG;                                                     \
		argv[argc++] = store + used;                                               \
		used += (size_t)k_ + 1;                                                    \
	} while (0)

	MF_ADD("slipstream-load");
	MF_ADD("-l");
	MF_ADD("%d", mf_first_cpu());
	MF_ADD("--no-pci");
	MF_ADD("--no-telemetry");
	MF_ADD("--log-level=error");
	if (mf.conf.file_prefix[0] != '\0')
		MF_ADD("--file-prefix=%s", mf.conf.file_prefix);
	else
		MF_ADD("--file-prefix=slipstream-load-%d", (int)getpid());
	if (!mf.conf.huge)
		MF_ADD("--no-huge");
	else if (!mf.conf.zero_copy) /* the EAL refuses it with --single-file-segments */
		MF_ADD("--huge-unlink"); /* pages go back when the process ends, however it ends */
	MF_ADD("-m");
	MF_ADD("%u", mf.conf.memory_mb);
	/* The memif client lays out the shared rings: with a jumbo MTU each ring
	 * buffer (bsize) holds a whole frame, one descriptor per frame. */
	if (mf.conf.server)
		MF_ADD("--vdev=net_memif0,role=server,socket=%s,mac=02:73:6c:70:4c:53",
		       mf.conf.socket);
	else
		MF_ADD("--vdev=net_memif0,role=client,socket=%s,mac=02:73:6c:70:4c:47,bsize=%u%s",
		       mf.conf.socket, mf_frame_room(), mf.conf.zero_copy ? ",zero-copy=yes" : "");
	if (mf.conf.zero_copy)
		MF_ADD("--single-file-segments"); /* memif exposes the memsegs as its regions */
	/* Extra arguments, split on spaces. */
	char extra[sizeof(mf.conf.eal_args)];
	char *save = NULL;
	snprintf(extra, sizeof(extra), "%s", mf.conf.eal_args);
	for (char *tok = strtok_r(extra, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		MF_ADD("%s", tok);
	argv[argc] = NULL;
#undef MF_ADD

	/* The EAL pins the calling thread to its lcore; the caller's thread (the
	 * load generator's sampling thread) keeps the CPUs it had. */
	have_saved = pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved) == 0;
	int rc = rte_eal_init(argc, argv);
	if (have_saved)
		pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
	if (rc < 0) {
		fprintf(stderr, "slipstream-load: DPDK EAL did not start: %s\n",
			rte_strerror(rte_errno));
		return -ENODEV;
	}
	mf.eal_up = true;
	if (mf.conf.zero_copy)
		rte_memseg_walk(mf_unlink_seg_file, NULL);
	return 0;
}

/*
 * Output with --memif-no-tx-cksum: the stack believes the port offloads
 * both checksums (tx_cksum_offload) and leaves the TCP one as the
 * pseudo-header sum, which the trusting broker never reads; memif offloads
 * nothing, so the IPv4 header checksum (20 bytes, which the broker does
 * verify) is computed here. The software TCP checksum over every sent byte
 * was the load generator's largest cost after memif's own copy (perf).
 */
static uint16_t
mf_tx_ipcksum(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];

		if (!(m->ol_flags & RTE_MBUF_F_TX_IP_CKSUM))
			continue;
		struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, m->l2_len);
		ip->hdr_checksum = 0;
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		m->ol_flags &= ~(RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_CKSUM);
	}
	return mf.port_tx(arg, pkts, n);
}

static void
mf_touch_obj(struct rte_mempool *mp, void *opaque, void *obj, unsigned int idx)
{
	volatile uint8_t *p = obj;

	(void)opaque;
	(void)idx;
	for (size_t off = 0; off < mp->elt_size; off += 4096)
		p[off] = p[off];
	p[mp->elt_size - 1] = p[mp->elt_size - 1];
}

static int
mf_start(uint32_t broker)
{
	struct net_port_conf pc;
	struct net_config nc;
	int rc;

	if (!mf.configured) {
		fprintf(stderr, "slipstream-load: the memif transport needs --memif-socket\n");
		return -EINVAL;
	}
	rc = mf_pick_address(broker);
	if (rc < 0) {
		fprintf(stderr, "slipstream-load: --memif-ip '%s' is not a.b.c.d/len\n",
			mf.conf.ip);
		return rc;
	}
	rc = mf_eal_init();
	if (rc < 0)
		return rc;
	rc = rte_eth_dev_get_port_by_name("net_memif0", &mf.port_id);
	if (rc != 0) {
		fprintf(stderr, "slipstream-load: no memif port (is librte_net_memif installed?)\n");
		return -ENODEV;
	}
	mf.pool = rte_pktmbuf_pool_create("lg_mbufs", mf.conf.mbufs, 256, 0,
					  (uint16_t)RTE_MAX((unsigned int)RTE_MBUF_DEFAULT_BUF_SIZE,
							    RTE_PKTMBUF_HEADROOM + mf_frame_room()),
					  (int)rte_socket_id());
	if (mf.pool == NULL) {
		fprintf(stderr, "slipstream-load: cannot allocate %u packet buffers (--memif-mbufs, "
				"--memif-memory-mb): %s\n", mf.conf.mbufs, rte_strerror(rte_errno));
		return -ENOMEM;
	}
	/* Fault every page of the pool in now (ordinary memory comes as 4 KiB
	 * pages touched on first use): otherwise the first seconds of a run pay
	 * a page fault per page as buffers cycle through the ring (a quarter of
	 * the load generator's cycles in the first 5 s, perf). */
	rte_mempool_obj_iter(mf.pool, mf_touch_obj, NULL);
	memset(&pc, 0, sizeof(pc));
	pc.pool = mf.pool;
	/* Not the port's MTU: DPDK 22.11's memif refuses anything above 1500 yet
	 * carries longer frames as chained ring descriptors, so the MTU is only
	 * the two stacks' (net_stack_create below, and the broker's
	 * dataplane.port.mtu). */
	pc.mtu = 0;
	/* A memif client's start fails while nobody serves the socket: retry
	 * (the broker may be starting) until the link wait is over. */
	uint64_t deadline = mf_now_us() + (uint64_t)mf.conf.link_wait_ms * 1000;
	while ((rc = net_port_setup(mf.port_id, &pc, &mf.info)) != 0 && mf_now_us() < deadline) {
		struct timespec ts = {0, 500 * 1000000};
		nanosleep(&ts, NULL);
	}
	if (rc != 0) {
		fprintf(stderr, "slipstream-load: memif port on %s did not come up within %u ms (%s): "
				"is the broker serving a memif port on that socket?\n",
			mf.conf.socket, mf.conf.link_wait_ms, strerror(-rc));
		return -ENETDOWN;
	}
	mf.port_up = true;
	memset(&mf.q, 0, sizeof(mf.q));
	mf.q.port_id = mf.port_id;
	memset(&nc, 0, sizeof(nc));
	net_port_worker_config(&nc, &mf.info, &mf.q, mf.conf.mtu);
	nc.ipv4_addr = mf.addr;
	nc.ipv4_mask = mf.mask;
	nc.pool = mf.pool;
	nc.max_conns = mf.conf.max_conns;
	nc.rcvbuf_bytes = mf.conf.bufs;
	nc.sndbuf_bytes = mf.conf.bufs;
	/* Shared memory with the broker on this machine: nothing corrupts a frame
	 * between the two stacks, and the broker computes full checksums. */
	nc.rx_l4_cksum_trusted = true;
	if (mf.conf.no_tx_cksum) {
		mf.port_tx = nc.tx_fn;
		nc.tx_fn = mf_tx_ipcksum;
		nc.tx_cksum_offload = true;
	}
	nc.time_wait_us = 2 * 1000 * 1000; /* a client with fresh ports each run */
	/* A response's last segment (odd in count) would wait 40 ms for its ACK,
	 * and the broker holds a response's buffer until it is acknowledged: a
	 * load generator ACKs within its own polling time instead. */
	nc.delack_us = mf.conf.delack_us ? mf.conf.delack_us : 200;
	nc.seed = rte_rdtsc() ^ ((uint64_t)getpid() << 32);
	mf.st = net_stack_create(&nc);
	if (mf.st == NULL) {
		rc = -errno;
		fprintf(stderr, "slipstream-load: network stack: %s\n", strerror(errno));
		return rc ? rc : -ENOMEM;
	}
	/* The link comes up once the broker's side (memif server) has us; a
	 * server (the sink) waits for its client in its own loop. */
	struct rte_eth_link link;
	while (!mf.conf.server) {
		memset(&link, 0, sizeof(link));
		rte_eth_link_get_nowait(mf.port_id, &link);
		if (link.link_status == RTE_ETH_LINK_UP)
			break;
		if (mf_now_us() > deadline) {
			fprintf(stderr, "slipstream-load: memif link on %s did not come up within "
					"%u ms: is the broker serving a memif port on that socket?\n",
				mf.conf.socket, mf.conf.link_wait_ms);
			return -ENETDOWN;
		}
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	net_stack_start(mf.st, mf_now_us());
	return 0;
}

int
lg_memif_start(const char *peer)
{
	struct in_addr a;

	if (mf.st != NULL)
		return 0;
	if (inet_pton(AF_INET, peer, &a) != 1)
		return -EHOSTUNREACH;
	return mf_start(a.s_addr);
}

void
lg_memif_describe(char *buf, size_t len)
{
	if (mf.st == NULL) {
		if (len > 0)
			buf[0] = '\0';
		return;
	}
	const struct net_stats *s = net_stack_stats(mf.st);
	snprintf(buf, len,
		 "memif stack: rx %" PRIu64 " tx %" PRIu64 " frames, retransmits %" PRIu64
		 " (fast %" PRIu64 ", rto %" PRIu64 "), tx full %" PRIu64 ", tx dropped %" PRIu64
		 ", no mbuf %" PRIu64 ", rst rx %" PRIu64 " tx %" PRIu64 ", bad tcp %" PRIu64
		 ", out of window %" PRIu64 ", out of order %" PRIu64,
		 s->rx_frames, s->tx_frames, s->tcp_retransmits, s->tcp_fast_retransmits,
		 s->tcp_rto_expiries, s->tx_full, s->tx_dropped, s->tx_no_mbuf, s->tcp_rst_rx,
		 s->tcp_rst_tx, s->rx_tcp_bad, s->tcp_out_of_window, s->tcp_ooo_queued);
}

void
lg_memif_shutdown(bool verbose)
{
	if (mf.st != NULL) {
		/*
		 * Let the last ACKs and FINs out, then stop only once the link has
		 * been quiet for MF_QUIET_US (at most MF_QUIET_MAX_US): DPDK 22.11's
		 * memif unmaps our regions in the peer's interrupt thread while its
		 * poll-mode thread may still be reading them, and a broker serving
		 * this port crashed so once (docs/gaps.md "memif disconnect"); a peer
		 * with nothing to receive or send is seldom in that read.
		 */
		uint64_t t = mf_now_us(), quiet = t, end = t + MF_QUIET_MAX_US;

		for (int k = 0; k < 1000; k++)
			net_port_poll(mf.st, &mf.q, mf_now_us());
		while ((t = mf_now_us()) < end && t - quiet < MF_QUIET_US)
			if (net_port_poll(mf.st, &mf.q, t) != 0)
				quiet = t;
		if (verbose) {
			lg_memif_describe(mf.desc, sizeof(mf.desc));
			fprintf(stderr, "slipstream-load: %s\n", mf.desc);
		}
		net_stack_free(mf.st); /* no callbacks: free what was still closing */
		mf.st = NULL;
		while (mf.detached != NULL) {
			struct lg_tconn *c = mf.detached;
			list_del(&mf.detached, c);
			free(c);
		}
		mf.closing = 0;
	}
	if (mf.port_up) {
		rte_eth_dev_stop(mf.port_id);
		rte_eth_dev_close(mf.port_id);
		mf.port_up = false;
	}
	if (mf.eal_up) {
		rte_eal_cleanup();
		mf.eal_up = false;
	}
}

/* ---- connections ------------------------------------------------------------ */

static void
rx_free(struct lg_tconn *c)
{
	struct rte_mbuf *m = c->rx_head;

	while (m != NULL) {
		struct rte_mbuf *n = m->next;
		m->next = NULL;
		m->nb_segs = 1;
		rte_pktmbuf_free_seg(m);
		m = n;
	}
	c->rx_head = c->rx_tail = NULL;
	c->rx_off = 0;
	c->rx_bytes = 0;
}

static void
mf_connected(void *arg, struct net_tcp_conn *tc)
{
	struct lg_tconn *c = arg;

	(void)tc;
	c->up = true;
	mf_news(c);
}

static void
mf_data(void *arg, struct net_tcp_conn *tc, struct rte_mbuf *m, uint32_t len)
{
	struct lg_tconn *c = arg;

	if (c->detached) {
		rte_pktmbuf_free(m);
		net_tcp_recved(tc, len);
		return;
	}
	/* Append the chain's segments to ours (one list, freed segment by segment). */
	if (c->rx_tail != NULL)
		c->rx_tail->next = m;
	else
		c->rx_head = m;
	struct rte_mbuf *s = m;
	while (s->next != NULL)
		s = s->next;
	c->rx_tail = s;
	c->rx_bytes += len;
	mf_news(c);
}

static void
mf_eof(void *arg, struct net_tcp_conn *tc)
{
	struct lg_tconn *c = arg;

	(void)tc;
	c->eof = true;
	mf_news(c);
}

static void
mf_closed(void *arg, struct net_tcp_conn *tc, int status)
{
	struct lg_tconn *c = arg;

	(void)tc;
	c->tc = NULL;
	if (c->detached) {
		mf.closing--;
		list_del(&mf.detached, c);
		rx_free(c);
		free(c);
		return;
	}
	c->err = status < 0 ? status : -ECONNRESET;
	mf_news(c);
}

static const struct net_tcp_ops mf_tcp_ops = {
	.connected = mf_connected,
	.data = mf_data,
	.eof = mf_eof,
	.closed = mf_closed,
};

/* ---- the ops ---------------------------------------------------------------- */

static struct lg_transport *
mf_create(void)
{
	struct lg_transport *t;

	if (mf.active != NULL) {
		errno = EBUSY; /* one thread at a time: --threads 1 */
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	mf.active = t;
	return t;
}

static void
mf_close(struct lg_tconn *c)
{
	if (c == NULL)
		return;
	list_del(&c->t->conns, c);
	ready_del(c->t, c);
	if (c->want_out)
		c->t->n_want--;
	c->want_out = false;
	rx_free(c);
	if (c->tc == NULL) {
		free(c);
		return;
	}
	c->detached = true;
	c->t = NULL;
	mf.closing++;
	list_add(&mf.detached, c);
	if (net_tcp_close(c->tc) != 0)
		net_tcp_abort(c->tc);
}

static void
mf_destroy(struct lg_transport *t)
{
	if (t == NULL)
		return;
	while (t->conns)
		mf_close(t->conns);
	/* Bounded: FINs both ways, else abort (the closed callbacks free them). */
	if (mf.st != NULL) {
		uint64_t deadline = mf_now_us() + MF_CLOSE_WAIT_US;
		while (mf.closing > 0 && mf_now_us() < deadline)
			net_port_poll(mf.st, &mf.q, mf_now_us());
	}
	/* A connection still closing (the broker did not answer our FIN in
	 * time) stays with the stack: its timers finish it, and the closed
	 * callback frees it, or lg_memif_shutdown() frees it with the stack. */
	if (mf.active == t)
		mf.active = NULL;
	free(t);
}

static int
mf_connect(struct lg_transport *t, const char *host, uint16_t port, void *arg,
	   struct lg_tconn **out)
{
	struct in_addr a;
	int rc;

	if (inet_pton(AF_INET, host, &a) != 1)
		return -EHOSTUNREACH; /* the broker's memif address, as an IPv4 literal */
	if (mf.st == NULL) {
		rc = mf_start(a.s_addr);
		if (rc < 0)
			return rc;
	}
	if (rte_lcore_id() == LCORE_ID_ANY)
		rte_thread_register(); /* a mempool cache for this thread; best effort */
	struct lg_tconn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->t = t;
	c->arg = arg;
	c->want_out = true; /* the first writable report says the connection is up */
	t->n_want++;
	rc = net_tcp_connect(mf.st, a.s_addr, port, &mf_tcp_ops, c, &c->tc);
	if (rc != 0) {
		free(c);
		return rc < 0 ? rc : -EADDRNOTAVAIL;
	}
	list_add(&t->conns, c);
	*out = c;
	return 0;
}

static ssize_t
mf_writev(struct lg_tconn *c, const struct iovec *iov, int iovcnt)
{
	ssize_t total = 0;

	if (c->err)
		return c->err == -ECONNRESET ? -EPIPE : c->err;
	if (!c->up || c->tc == NULL)
		return 0;
	for (int i = 0; i < iovcnt; i++) {
		size_t len = iov[i].iov_len;
		if (len > UINT32_MAX / 2)
			len = UINT32_MAX / 2;
		int r = net_tcp_send(c->tc, iov[i].iov_base, (uint32_t)len);
		if (r < 0)
			return total > 0 ? total : (ssize_t)r;
		total += r;
		if ((size_t)r < len)
			break;
	}
	return total;
}

static_assert(sizeof(struct rte_mbuf_ext_shared_info) <= sizeof(((struct lg_tx_ref *)0)->priv),
	      "lg_tx_ref.priv holds DPDK's external-buffer refcount");

/* The last mbuf referencing a lent buffer is gone: hand it back. */
static void
mf_ext_free(void *addr, void *opaque)
{
	struct lg_tx_ref *ref = opaque;

	(void)addr;
	ref->held = false;
	ref->done(ref);
}

/*
 * Lend a prefix of @buf to the send queue as mbufs with the buffer attached
 * (rte_pktmbuf_attach_extbuf), MF_EXT_PIECE bytes each, all sharing the
 * refcount in @ref->priv: the stack's segments clone them, so the count
 * reaches 0 once every byte is acknowledged (or the connection is gone), and
 * mf_ext_free returns the buffer. IOVA is the virtual address: memif copies
 * from it with the CPU, nothing DMAs.
 */
static ssize_t
mf_send_ref(struct lg_tconn *c, const void *buf, size_t len, struct lg_tx_ref *ref)
{
	struct rte_mbuf_ext_shared_info *sh = (struct rte_mbuf_ext_shared_info *)ref->priv;
	struct rte_mbuf *head = NULL, *tail = NULL;
	uint32_t space, n, off = 0;
	uint16_t segs = 0;

	if (mf.conf.zero_copy) {
		/* Frames must be in the memif regions: copied, never held. */
		struct iovec iov = {.iov_base = (void *)(uintptr_t)buf, .iov_len = len};
		(void)ref;
		return mf_writev(c, &iov, 1);
	}
	if (c->err)
		return c->err == -ECONNRESET ? -EPIPE : c->err;
	if (!c->up || c->tc == NULL)
		return 0;
	space = net_tcp_send_space(c->tc);
	n = len < space ? (uint32_t)len : space;
	while (off < n) {
		uint32_t piece = n - off < MF_EXT_PIECE ? n - off : MF_EXT_PIECE;
		uint8_t *p = (uint8_t *)(uintptr_t)buf + off;
		struct rte_mbuf *m = rte_pktmbuf_alloc(mf.pool);

		if (m == NULL)
			break;
		if (!ref->held) {
			sh->free_cb = mf_ext_free;
			sh->fcb_opaque = ref;
			rte_mbuf_ext_refcnt_set(sh, 1);
			ref->held = true;
		} else {
			rte_mbuf_ext_refcnt_update(sh, 1);
		}
		rte_pktmbuf_attach_extbuf(m, p, (rte_iova_t)(uintptr_t)p, (uint16_t)piece, sh);
		m->data_len = (uint16_t)piece;
		m->pkt_len = piece;
		if (tail == NULL)
			head = m;
		else
			tail->next = m;
		tail = m;
		segs++;
		off += piece;
	}
	if (head == NULL)
		return 0;
	head->pkt_len = off;
	head->nb_segs = segs;
	/* Consumes the chain on error too (the refcount then returns the buffer). */
	int rc = net_tcp_send_mbuf(c->tc, head);
	if (rc < 0)
		return rc == -ENOBUFS ? 0 : rc;
	return (ssize_t)off;
}

static ssize_t
mf_read(struct lg_tconn *c, void *buf, size_t cap)
{
	uint8_t *dst = buf;
	size_t got = 0;

	while (got < cap && c->rx_head != NULL) {
		struct rte_mbuf *m = c->rx_head;
		uint32_t avail = m->data_len - c->rx_off;
		size_t n = avail < cap - got ? avail : cap - got;
		memcpy(dst + got, rte_pktmbuf_mtod_offset(m, const uint8_t *, c->rx_off), n);
		got += n;
		c->rx_off += (uint32_t)n;
		if (c->rx_off == m->data_len) {
			c->rx_head = m->next;
			if (c->rx_head == NULL)
				c->rx_tail = NULL;
			m->next = NULL;
			m->nb_segs = 1;
			rte_pktmbuf_free_seg(m);
			c->rx_off = 0;
		}
	}
	if (got > 0) {
		c->rx_bytes -= got;
		if (c->tc != NULL)
			net_tcp_recved(c->tc, (uint32_t)got);
		return (ssize_t)got;
	}
	if (c->err)
		return c->err;
	if (c->eof)
		return -ECONNRESET;
	return 0;
}

static void
mf_want_write(struct lg_tconn *c, bool on)
{
	if (c->want_out != on && c->t != NULL) {
		if (on)
			c->t->n_want++;
		else
			c->t->n_want--;
	}
	c->want_out = on;
}

/* One connection's report: level-triggered, as epoll gives them. */
static int
mf_report_one(struct lg_transport *t, struct lg_tconn *c, lg_ready_fn cb)
{
	bool rd = c->rx_bytes > 0 || c->eof || c->err;
	bool wr = c->want_out && (c->err || (c->up && c->tc != NULL && net_tcp_send_space(c->tc) > 0));

	if (!rd && !wr)
		return 0;
	cb(c->arg, rd, wr);
	/* Still readable after the callback: reported again at the next poll. */
	if (c->t == t && (c->rx_bytes > 0 || c->eof || c->err))
		ready_add(t, c);
	return 1;
}

static int
mf_report(struct lg_transport *t, lg_ready_fn cb)
{
	int n = 0;

	if (t->ready == NULL && t->n_want == 0)
		return 0; /* nothing received, nothing waits for room */
	if (t->n_want > 0) {
		/* Room in a send buffer is no event: walk every connection. */
		while (t->ready != NULL)
			ready_del(t, t->ready);
		for (struct lg_tconn *c = t->conns, *next; c != NULL; c = next) {
			next = c->next; /* cb does not close (lg_run.c), but be safe */
			n += mf_report_one(t, c, cb);
		}
		return n;
	}
	/* Only the connections with news. Each leaves the list just before its
	 * report, so a report putting it (or one not yet visited) back cannot
	 * break the walk; those put back are reported at the next poll. */
	struct lg_tconn *c = t->ready;
	t->ready = NULL;
	while (c != NULL) {
		struct lg_tconn *next = c->rnext;
		if (next != NULL)
			next->rprev = NULL;
		c->queued = false;
		c->rnext = c->rprev = NULL;
		n += mf_report_one(t, c, cb);
		c = next;
	}
	return n;
}

/*
 * Sleep precisely: a thread's timer slack (50 us by default) lets the kernel
 * end a 20 us idle sleep up to 50 us late, while responses wait in the ring
 * (requests stay in flight during the sleep). 1 us slack, once per thread.
 */
static void
mf_timer_slack(void)
{
	static __thread bool done;

	if (!done) {
		prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
		done = true;
	}
}

static uint64_t
mf_idle_grace_us(void)
{
	return mf.conf.idle_grace_us != 0 ? mf.conf.idle_grace_us : MF_IDLE_GRACE_US;
}

static int
mf_poll(struct lg_transport *t, int64_t timeout_us, lg_ready_fn cb)
{
	if (mf.st == NULL)
		return 0;
	/* One TSC read per iteration: the time for the stack and the busy count. */
	uint64_t tsc = rte_get_tsc_cycles();
	uint64_t now = mf_tsc_us(tsc);
	uint64_t deadline = now + (uint64_t)(timeout_us > 0 ? timeout_us : 0);

	for (;;) {
		uint16_t got = net_port_poll(mf.st, &mf.q, now);
		int n = mf_report(t, cb);
		uint64_t end = rte_get_tsc_cycles();
		if (got > 0 || n > 0)
			t->busy_cycles += end - tsc;
		tsc = end;
		now = mf_tsc_us(tsc);
		if (got > 0 || n > 0 || mf.conf.idle_us == 0)
			t->last_busy_us = now;
		if (n > 0)
			return n;
		if (now >= deadline)
			return 0;
		if (now - t->last_busy_us >= mf_idle_grace_us()) {
			uint64_t us = mf.conf.idle_us;
			if (us > deadline - now)
				us = deadline - now;
			mf_timer_slack();
			struct timespec ts = {0, (long)us * 1000};
			nanosleep(&ts, NULL);
			tsc = rte_get_tsc_cycles();
			now = mf_tsc_us(tsc);
		}
	}
}

static uint64_t
mf_busy_ns(struct lg_transport *t)
{
	return (uint64_t)((__uint128_t)t->busy_cycles * 1000000000u / rte_get_tsc_hz());
}

const struct lg_transport_ops lg_memif_ops = {
	.name = "memif",
	.create = mf_create,
	.destroy = mf_destroy,
	.connect = mf_connect,
	.writev = mf_writev,
	.send_ref = mf_send_ref,
	.read = mf_read,
	.want_write = mf_want_write,
	.poll = mf_poll,
	.close = mf_close,
	.busy_ns = mf_busy_ns,
};

/* ---- the sink (lg_memif_sink_run) -------------------------------------------- */

struct mf_sink;

/* Both start with is_conn: a connection not yet accepted calls back with the
 * listener's argument (the mf_sink), an accepted one with its mf_sink_conn. */
struct mf_sink_conn {
	bool is_conn; /* true */
	struct mf_sink *sk;
	struct net_tcp_conn *tc;
	uint32_t need;	 /* bytes of the current frame still to skip (after its header) */
	uint8_t hdr[12]; /* size, api key, version, correlation id */
	uint32_t hdr_len;
	uint8_t corr[4]; /* of the frame being skipped: answered at its end */
	uint8_t *out;	 /* answers the send buffer did not take yet */
	uint32_t out_len, out_cap;
	struct mf_sink_conn *next, *prev;
};

struct mf_sink {
	bool is_conn; /* false */
	struct mf_sink_conn *conns;
	uint32_t pending; /* connections with answers left in out */
	uint32_t accepted;
	uint64_t frames, bytes;
};

static void
sink_flush(struct mf_sink_conn *c)
{
	if (c->out_len == 0 || c->tc == NULL)
		return;
	int r = net_tcp_send(c->tc, c->out, c->out_len);
	if (r <= 0)
		return;
	memmove(c->out, c->out + r, c->out_len - (uint32_t)r);
	c->out_len -= (uint32_t)r;
	if (c->out_len == 0)
		c->sk->pending--;
}

static int
sink_answer(struct mf_sink_conn *c, const uint8_t *corr)
{
	if (c->out_len + 8 > c->out_cap) {
		uint32_t ncap = c->out_cap ? c->out_cap * 2 : 4096;
		uint8_t *n = realloc(c->out, ncap);
		if (n == NULL)
			return -ENOMEM;
		c->out = n;
		c->out_cap = ncap;
	}
	if (c->out_len == 0)
		c->sk->pending++;
	uint8_t *p = c->out + c->out_len;
	p[0] = p[1] = p[2] = 0;
	p[3] = 4;
	memcpy(p + 4, corr, 4);
	c->out_len += 8;
	return 0;
}

static int
sink_accept(void *arg, struct net_tcp_conn *tc)
{
	struct mf_sink *sk = arg;
	struct mf_sink_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -ENOMEM;
	c->is_conn = true;
	sk->accepted++;
	c->sk = sk;
	c->tc = tc;
	c->next = sk->conns;
	if (sk->conns != NULL)
		sk->conns->prev = c;
	sk->conns = c;
	net_tcp_conn_set_arg(tc, c);
	return 0;
}

/* Skip request bodies; answer each frame once all of it is in (a client may
 * count a request as sent only when its last byte is written). */
static void
sink_data(void *arg, struct net_tcp_conn *tc, struct rte_mbuf *m, uint32_t len)
{
	struct mf_sink_conn *c = arg;

	if (c != NULL && c->is_conn) {
		c->sk->bytes += len;
		for (struct rte_mbuf *s = m; s != NULL; s = s->next) {
			const uint8_t *p = rte_pktmbuf_mtod(s, const uint8_t *);
			uint32_t n = s->data_len;
			while (n > 0) {
				if (c->need > 0) {
					uint32_t k = n < c->need ? n : c->need;
					c->need -= k;
					p += k;
					n -= k;
					if (c->need == 0 && sink_answer(c, c->corr) < 0) {
						net_tcp_abort(tc);
						break;
					}
					continue;
				}
				uint32_t k = 12 - c->hdr_len < n ? 12 - c->hdr_len : n;
				memcpy(c->hdr + c->hdr_len, p, k);
				c->hdr_len += k;
				p += k;
				n -= k;
				if (c->hdr_len < 12)
					continue;
				uint32_t be;
				memcpy(&be, c->hdr, 4);
				uint32_t size = ntohl(be);
				c->hdr_len = 0;
				if (size < 8) {
					net_tcp_abort(tc); /* not a Kafka request stream */
					break;
				}
				c->need = size - 8;
				memcpy(c->corr, c->hdr + 8, 4);
				c->sk->frames++;
				if (c->need == 0 && sink_answer(c, c->corr) < 0) {
					net_tcp_abort(tc);
					break;
				}
			}
		}
		sink_flush(c);
	}
	rte_pktmbuf_free(m);
	net_tcp_recved(tc, len);
}

static void
sink_sent(void *arg, struct net_tcp_conn *tc, uint32_t bytes)
{
	struct mf_sink_conn *c = arg;

	(void)tc;
	(void)bytes;
	if (c != NULL && c->is_conn)
		sink_flush(c);
}

static void
sink_eof(void *arg, struct net_tcp_conn *tc)
{
	(void)arg;
	net_tcp_close(tc);
}

static void
sink_conn_free(struct mf_sink_conn *c)
{
	struct mf_sink *sk = c->sk;

	if (c->prev)
		c->prev->next = c->next;
	else
		sk->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->out_len > 0)
		sk->pending--;
	free(c->out);
	free(c);
}

static void
sink_closed(void *arg, struct net_tcp_conn *tc, int status)
{
	struct mf_sink_conn *c = arg;

	(void)tc;
	(void)status;
	if (c != NULL && c->is_conn)
		sink_conn_free(c);
}

static const struct net_tcp_ops mf_sink_ops = {
	.accept = sink_accept,
	.data = sink_data,
	.sent = sink_sent,
	.eof = sink_eof,
	.closed = sink_closed,
};

int
lg_memif_sink_run(const char *ip, uint16_t port, double duration_s, volatile int *stop,
		  uint64_t *frames, uint64_t *bytes)
{
	struct mf_sink sk;
	struct in_addr a;
	uint64_t last_busy = 0;
	int rc;

	memset(&sk, 0, sizeof(sk));
	if (!mf.configured || !mf.conf.server || inet_pton(AF_INET, ip, &a) != 1)
		return -EINVAL;
	if (mf.conf.ip[0] == '\0')
		snprintf(mf.conf.ip, sizeof(mf.conf.ip), "%s/24", ip);
	rc = mf_start(a.s_addr);
	if (rc < 0)
		return rc;
	rc = net_tcp_listen(mf.st, port, 1024, &mf_sink_ops, &sk);
	if (rc < 0)
		return rc;
	fprintf(stderr, "slipstream-load: sink listening on %s:%u (memif server on %s)\n", ip,
		port, mf.conf.socket);
	uint64_t now = mf_now_us();
	uint64_t deadline = now + (uint64_t)(duration_s * 1e6);
	/* One client's run: done once every connection it opened has closed
	 * (before the client stops its memif port: DPDK 22.11's memif server
	 * can fault polling a ring whose client just unmapped it). */
	while (!*stop && now < deadline && !(sk.accepted > 0 && sk.conns == NULL)) {
		uint16_t got = net_port_poll(mf.st, &mf.q, now);
		if (sk.pending > 0)
			for (struct mf_sink_conn *c = sk.conns; c != NULL; c = c->next)
				sink_flush(c);
		now = mf_now_us();
		if (got > 0 || mf.conf.idle_us == 0) {
			last_busy = now;
		} else if (now - last_busy >= mf_idle_grace_us()) {
			mf_timer_slack();
			struct timespec ts = {0, (long)mf.conf.idle_us * 1000};
			nanosleep(&ts, NULL);
			now = mf_now_us();
		}
	}
	/* The client leaves next: wait (without touching the rings) until its
	 * memif connection is gone, so that neither side tears down a port the
	 * other is still using (DPDK 22.11's memif faulted in both directions). */
	if (sk.accepted > 0 && sk.conns == NULL) {
		uint64_t until = mf_now_us() + 3000000;
		struct rte_eth_link link;
		do {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
			memset(&link, 0, sizeof(link));
			rte_eth_link_get_nowait(mf.port_id, &link);
		} while (link.link_status == RTE_ETH_LINK_UP && mf_now_us() < until);
	}
	/* The stack may still call back during shutdown: detach, then free. */
	while (sk.conns != NULL) {
		struct mf_sink_conn *c = sk.conns;
		if (c->tc != NULL)
			net_tcp_conn_set_arg(c->tc, NULL);
		sink_conn_free(c);
	}
	*frames = sk.frames;
	*bytes = sk.bytes;
	return 0;
}
