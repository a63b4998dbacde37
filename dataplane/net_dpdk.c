/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_dpdk: the userspace TCP stack on a DPDK port, driven by the reactors
 * (see net_dpdk.h).
 *
 * Per worker, every iteration:
 *   nd_poll (poller)      rx burst -> net_stack_input; the TCP callbacks
 *                         queue received mbufs on their connection and mark
 *                         it touched
 *   nd_end (end poller)   for each touched connection: send ready responses,
 *                         deliver frames (in place, or copied when they span
 *                         mbufs), send again, reap it when closed by flag;
 *                         then net_stack_poll (timers, output)
 *   nd_idle (every ~s)    close connections idle too long
 * A connection is touched by received data, a FIN, acknowledged bytes
 * (send space), a reply (dp_conn_ops.kick) or dp_conn_close(); a flag keeps
 * it on the list once. nd_end walks the list in passes: a connection touched
 * again after it was walked (by a handler run in the walk) is walked again.
 *
 * Received bytes wait as a list of mbuf segments (rx_head..rx_tail, linked
 * by ->next) with rx_off consumed in the first; the TCP window is given back
 * (net_tcp_recved) as bytes are delivered or copied, so a connection whose
 * reading is paused closes its window instead of growing memory.
 *
 * A response sent by extbuf is taken from its slot (the slot's free_fn is
 * cleared and kept in an nd_ext, which carries the rte_mbuf_ext_shared_info):
 * the connection holds one reference while the response is being queued and
 * each mbuf attached to it holds one; the last release gives the buffer back
 * through the saved free_fn, on this worker's lcore.
 */
/* rte_intr_instance_alloc() and its setters (experimental in DPDK 22.11): see
 * nd_intr_thread_park(). */
#define ALLOW_EXPERIMENTAL_API 1
#include "net_dpdk.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_bus.h>
#include <rte_interrupts.h>
#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_memory.h>

#include "dp_log.h"
#include "dp_metrics.h"
#include "dp_reactor.h"
#include "net.h"
#include "net_port.h"
#include "net_tcp.h"

#define ND_RX_BURST 32
#define ND_IOV_MAX 16
#define ND_EXT_CHUNK 32768u   /* bytes per extbuf mbuf (buf_len is 16 bits) */
#define ND_BACKLOG 1024
#define ND_END_PASSES 8       /* walks of the touched list per iteration; the rest waits */
#define ND_LINK_POLL_US 200000 /* link state poll period */

struct nd_worker;

/* A response buffer lent to mbufs (extbuf). */
struct nd_ext {
	struct rte_mbuf_ext_shared_info shinfo;
	void *buf;
	dp_resp_free_fn free_fn;
	void *free_arg;
	struct nd_worker *w;
	uint32_t idx;
};

struct nd_conn {
	struct dp_conn base;           /* first: dp_conn pointers cast back */
	struct net_tcp_conn *tcp;      /* NULL once the stack closed it */
	struct nd_worker *w;
	uint32_t idx;
	bool in_use;
	bool touched;
	bool stalled;
	struct rte_mbuf *rx_head;      /* received segments not consumed yet */
	struct rte_mbuf *rx_tail;
	uint32_t rx_off;               /* bytes of rx_head consumed */
	uint32_t rx_bytes;             /* bytes waiting in the segments */
	uint32_t copy_left;            /* bytes of a spanning frame still to copy */
	struct nd_ext *tx_ext;         /* head response lent to mbufs, our reference */
	uint32_t tx_ext_seq;           /* its slot counter */
	uint32_t peer_addr;            /* network order */
	uint16_t peer_port;
};

struct nd_worker {
	unsigned int index;
	unsigned int lcore;
	struct net_stack *st;
	struct net_port_queue q;
	struct dp_conn_env env;
	struct nd_conn *conns;
	uint32_t max_conns;
	uint32_t *free_stack;
	uint32_t n_free;
	uint32_t *touched;             /* touched, not walked yet (each once: flag) */
	uint32_t n_touched;
	uint32_t *walk;                /* the list being walked (swapped with touched) */
	uint32_t *stalled;
	uint32_t n_stalled;
	uint8_t *rx_mem;
	struct dp_conn_slot *slot_mem;
	struct dp_bufstack large;
	void **large_items;
	struct nd_ext *ext_mem;
	uint32_t *ext_free;
	uint32_t n_ext;
	uint32_t n_ext_free;
	uint64_t idle_tsc;
	uint64_t published_pending;
	struct net_dpdk_stats stats;
} __rte_cache_aligned;

static struct nd_worker *g_workers;
static unsigned int g_n_workers;
static const struct dp_config *g_cfg;
static struct rte_mempool *g_pool;
static uint16_t g_port_id;
static bool g_port_started;
static bool g_port_probed;         /* we created the vdev: remove it at fini */
static bool g_port_dma;            /* a PCI device: extbuf needs DPDK memory */
static char g_dev_name[RTE_DEV_NAME_MAX_LEN];
static char g_addr_text[INET_ADDRSTRLEN];
static struct net_port_info g_info;
/* Link state, polled by worker 0 (nd_link); read relaxed by every worker's output. */
static bool g_link_down;
static bool g_link_checked;        /* nd_link ran once (owned by worker 0's lcore) */
static bool g_in_init;             /* net_dpdk_init running: a failure keeps the process */

static void nd_kick(struct dp_conn *conn);
static void nd_peer_name(const struct dp_conn *conn, char *buf, size_t len);

static const struct dp_conn_ops nd_ops = {
	.kick = nd_kick,
	.peer_name = nd_peer_name,
};

static void
why_set(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
why_set(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

bool
net_dpdk_device_is_pci(const char *device)
{
	unsigned int a, b, c, d;
	char tail;

	if (sscanf(device, "%x:%x:%x.%x%c", &a, &b, &c, &d, &tail) == 4)
		return true;
	return sscanf(device, "%x:%x.%x%c", &a, &b, &c, &tail) == 3;
}

/* The device name: the vdev string up to its first comma. */
static void
device_name(const char *device, char *out, size_t len)
{
	size_t n = strcspn(device, ",");

	if (n >= len)
		n = len - 1;
	memcpy(out, device, n);
	out[n] = '\0';
}

/* Value of "key=" in a vdev argument string, or "" (written to @out). */
static void
device_arg(const char *device, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);
	const char *p = strchr(device, ',');

	out[0] = '\0';
	while (p != NULL) {
		p++;
		if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t n = strcspn(p + kl + 1, ",");

			if (n >= len)
				n = len - 1;
			memcpy(out, p + kl + 1, n);
			out[n] = '\0';
			return;
		}
		p = strchr(p, ',');
	}
}

static bool
is_tap(const char *device)
{
	return strncmp(device, "net_tap", 7) == 0;
}

static bool
is_memif(const char *device)
{
	return strncmp(device, "net_memif", 9) == 0;
}

/* A listener host the DPDK port may serve: empty, any, loopback or the port's own. */
static bool
host_servable(const char *host, uint32_t addr)
{
	struct in_addr a;

	if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a) != 1)
		return false;
	return (ntohl(a.s_addr) >> 24) == 127 || a.s_addr == addr;
}

int
net_dpdk_precheck(const struct dp_config *cfg, char *why, size_t why_len)
{
	char ifname[IFNAMSIZ];
	bool any = false;

	if (geteuid() != 0) {
		why_set(why, why_len, "not running as root");
		return -EPERM;
	}
	if (is_tap(cfg->dp_port_device)) {
		int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

		if (fd < 0) {
			why_set(why, why_len, "no TAP support (/dev/net/tun: %s)", strerror(errno));
			return -ENODEV;
		}
		close(fd);
		/* A second TAP of that name would join the first as another queue. */
		device_arg(cfg->dp_port_device, "iface", ifname, sizeof(ifname));
		if (ifname[0] != '\0' && if_nametoindex(ifname) != 0) {
			why_set(why, why_len, "interface %s exists already (another broker in this "
					      "network namespace?)", ifname);
			return -EEXIST;
		}
	}
	for (unsigned int i = 0; i < cfg->n_listeners; i++) {
		if (cfg->listener[i].controller)
			continue;
		if (cfg->listener[i].port == 0) {
			why_set(why, why_len, "listener %s has port 0 (the DPDK transport needs "
					      "a fixed port)", cfg->listener[i].name);
			return -EINVAL;
		}
		any = true;
	}
	if (!any) {
		why_set(why, why_len, "no listener to serve");
		return -EINVAL;
	}
	return 0;
}

/* --- the kernel side of a TAP port --- */

static int
tap_configure(const char *ifname, const char *addr_prefix, char *why, size_t why_len)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = strchr(addr_prefix, '/');
	struct sockaddr_in sin;
	struct ifreq ifr;
	unsigned long plen = 24;
	size_t al = slash != NULL ? (size_t)(slash - addr_prefix) : strlen(addr_prefix);
	int fd;
	int rc = 0;

	if (al >= sizeof(addr)) {
		why_set(why, why_len, "dataplane.port.tap.address '%s' is not a.b.c.d/len",
			addr_prefix);
		return -EINVAL;
	}
	memcpy(addr, addr_prefix, al);
	addr[al] = '\0';
	if (slash != NULL) {
		char *end;

		plen = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || end == slash + 1 || plen > 32)
			plen = 99;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (plen > 32 || inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		why_set(why, why_len, "dataplane.port.tap.address '%s' is not a.b.c.d/len",
			addr_prefix);
		return -EINVAL;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		why_set(why, why_len, "socket: %s", strerror(errno));
		return rc;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
	if (ioctl(fd, SIOCSIFADDR, &ifr) < 0)
		goto fail;
	sin.sin_addr.s_addr = plen == 0 ? 0 : htonl(0xffffffffu << (32 - plen));
	memcpy(&ifr.ifr_netmask, &sin, sizeof(sin));
	if (ioctl(fd, SIOCSIFNETMASK, &ifr) < 0)
		goto fail;
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		goto fail;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		goto fail;
	close(fd);
	return 0;
fail:
	rc = -errno;
	why_set(why, why_len, "configuring %s as %s: %s", ifname, addr_prefix, strerror(errno));
	close(fd);
	return rc;
}

/* --- connections --- */

/*
 * IOVA of @addr for an extbuf mbuf, or RTE_BAD_IOVA (send a copy). A virtual
 * device (TAP, af_packet, memif, ring) copies from the virtual address and
 * does no DMA, so any buffer fits; a PCI NIC needs DPDK memory with an IOVA
 * (response pool buffers are; the broker's malloc'ed large Fetch buffers are
 * not and are copied).
 */
static rte_iova_t
nd_iova(const void *addr)
{
	const struct rte_memseg *ms;

	if (!g_port_dma)
		return (rte_iova_t)(uintptr_t)addr;
	ms = rte_mem_virt2memseg(addr, NULL);
	if (ms == NULL)
		return RTE_BAD_IOVA;
	if (rte_eal_iova_mode() == RTE_IOVA_VA)
		return (rte_iova_t)(uintptr_t)addr;
	if (ms->iova == RTE_BAD_IOVA)
		return RTE_BAD_IOVA;
	return ms->iova + (rte_iova_t)((uintptr_t)addr - (uintptr_t)ms->addr);
}

static void
nd_peer_name(const struct dp_conn *conn, char *buf, size_t len)
{
	const struct nd_conn *c = (const struct nd_conn *)(const void *)conn;
	char host[INET_ADDRSTRLEN] = "?";
	struct in_addr a = {.s_addr = c->peer_addr};

	inet_ntop(AF_INET, &a, host, sizeof(host));
	snprintf(buf, len, "%s:%u", host, c->peer_port);
}

static void
nd_touch(struct nd_conn *c)
{
	if (!c->touched) {
		c->touched = true;
		c->w->touched[c->w->n_touched++] = c->idx;
	}
}

static void
nd_kick(struct dp_conn *conn)
{
	nd_touch((struct nd_conn *)(void *)conn);
}

/* Last reference to a lent response buffer dropped (any mbuf free or ours). */
static void
nd_ext_free_cb(void *addr, void *opaque)
{
	struct nd_ext *e = opaque;
	struct nd_worker *w = e->w;

	if (e->free_fn != NULL)
		e->free_fn(e->free_arg, e->buf);
	e->buf = NULL;
	e->free_fn = NULL;
	w->ext_free[w->n_ext_free++] = e->idx;
}

static void
nd_ext_put(struct nd_ext *e)
{
	if (rte_mbuf_ext_refcnt_update(&e->shinfo, -1) == 0)
		nd_ext_free_cb(e->buf, e);
}

/* Drop the connection's reference to its lent head response, if any. */
static void
nd_tx_ext_release(struct nd_conn *c)
{
	if (c->tx_ext != NULL) {
		nd_ext_put(c->tx_ext);
		c->tx_ext = NULL;
	}
}

static void
nd_rx_consume(struct nd_conn *c, uint32_t n)
{
	c->rx_bytes -= n;
	c->rx_off += n;
	while (c->rx_head != NULL && c->rx_off >= c->rx_head->data_len) {
		struct rte_mbuf *seg = c->rx_head;

		c->rx_off -= seg->data_len;
		c->rx_head = seg->next;
		seg->next = NULL;
		seg->nb_segs = 1;
		rte_pktmbuf_free_seg(seg);
	}
	if (c->rx_head == NULL)
		c->rx_tail = NULL;
	if (c->tcp != NULL)
		net_tcp_recved(c->tcp, n);
}

static void
nd_rx_drop_all(struct nd_conn *c)
{
	while (c->rx_head != NULL) {
		struct rte_mbuf *seg = c->rx_head;

		c->rx_head = seg->next;
		seg->next = NULL;
		seg->nb_segs = 1;
		rte_pktmbuf_free_seg(seg);
	}
	c->rx_tail = NULL;
	c->rx_off = 0;
	c->rx_bytes = 0;
	c->copy_left = 0;
}

/* Copy @n waiting bytes (from rx_off) into @dst, without consuming them. */
static void
nd_rx_peek(const struct nd_conn *c, uint8_t *dst, uint32_t n)
{
	const struct rte_mbuf *seg = c->rx_head;
	uint32_t off = c->rx_off;

	while (n > 0 && seg != NULL) {
		uint32_t take = seg->data_len - off;

		if (take > n)
			take = n;
		memcpy(dst, rte_pktmbuf_mtod_offset(seg, const uint8_t *, off), take);
		dst += take;
		n -= take;
		seg = seg->next;
		off = 0;
	}
}

/* Could nd_rx() deliver more now (bytes wait and reading is allowed)? */
static bool
nd_rx_more(const struct nd_conn *c)
{
	const struct dp_conn *b = &c->base;

	return !b->closing && !b->rx_stalled && dp_conn_may_read(b) &&
		(c->rx_bytes >= 4 || (dp_frame_buffered(&b->rx) > 0 && c->copy_left == 0));
}

/*
 * Feed waiting bytes to the Kafka layer: frames whole in the first segment
 * are handed over in place; a frame that spans segments (or has a bad size,
 * which dp_conn_deliver reports) is copied into the receive buffer.
 *
 * @return 0, or a negative errno (the caller closes the connection).
 */
static int
nd_rx(struct nd_conn *c)
{
	struct dp_conn *b = &c->base;
	struct nd_worker *w = c->w;
	int rc;

	for (;;) {
		if (b->closing || b->rx_stalled)
			return 0;
		if (dp_frame_buffered(&b->rx) > 0 || c->copy_left > 0) {
			/* Copy path: the rest of a spanning frame, then deliver it. */
			while (c->copy_left > 0 && c->rx_head != NULL) {
				uint8_t *p;
				uint32_t space = dp_frame_rx_space(&b->rx, &p);
				uint32_t n = c->rx_head->data_len - c->rx_off;

				if (space == 0)
					break;
				if (n > space)
					n = space;
				if (n > c->copy_left)
					n = c->copy_left;
				memcpy(p, rte_pktmbuf_mtod_offset(c->rx_head, const uint8_t *,
					c->rx_off), n);
				dp_frame_rx_commit(&b->rx, n);
				c->copy_left -= n;
				w->stats.rx_bytes_copied += n;
				nd_rx_consume(c, n);
			}
			if (!dp_conn_may_read(b))
				return 0;
			rc = dp_conn_deliver(b);
			if (rc < 0)
				return rc;
			/*
			 * A frame is still partly here: waiting for a slot, a large
			 * buffer or more bytes. copy_left counts too: a large buffer
			 * attached right after the size prefix holds no byte yet
			 * (buffered is 0), and going round again with nothing to copy
			 * spun the reactor forever (slipstream-load, 32 requests of
			 * 123 KB in flight over memif, stopped at a segment that
			 * ended just after a prefix).
			 */
			if (dp_frame_buffered(&b->rx) > 0 || c->copy_left > 0) {
				uint8_t *p;

				if (c->copy_left == 0 || c->rx_head == NULL || b->rx_stalled ||
					dp_frame_rx_space(&b->rx, &p) == 0)
					return 0;
			}
			continue;
		}
		/* Nothing buffered: the next frame starts at rx_off. */
		if (c->rx_bytes < 4 || !dp_conn_may_read(b))
			return 0;
		{
			uint8_t hdr[4];
			uint32_t avail = c->rx_head->data_len - c->rx_off;
			int32_t size;

			nd_rx_peek(c, hdr, 4);
			size = (int32_t)((uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
				(uint32_t)hdr[2] << 8 | hdr[3]);
			if (size > 0 && (uint32_t)size <= b->rx.max_frame &&
				avail >= 4 + (uint32_t)size) {
				const uint8_t *p = rte_pktmbuf_mtod_offset(c->rx_head,
					const uint8_t *, c->rx_off);

				rc = dp_conn_deliver_frame(b, p + 4, (uint32_t)size);
				if (rc < 0)
					return rc;
				if (rc == 0)
					return 0;
				w->stats.rx_frames_inplace++;
				nd_rx_consume(c, 4 + (uint32_t)size);
				continue;
			}
			if (size <= 0 || (uint32_t)size > b->rx.max_frame) {
				c->copy_left = 4; /* dp_conn_deliver reports the size */
			} else {
				c->copy_left = 4 + (uint32_t)size;
				w->stats.rx_frames_copied++;
			}
		}
	}
}

/* Lend the head response (slot @seq) to mbufs: take its buffer from the slot. */
static struct nd_ext *
nd_ext_take(struct nd_conn *c, uint32_t seq)
{
	struct nd_worker *w = c->w;
	struct dp_conn_slot *s = &c->base.slots[seq & c->base.slot_mask];
	struct nd_ext *e;

	if (w->n_ext_free == 0)
		return NULL;
	e = &w->ext_mem[w->ext_free[--w->n_ext_free]];
	e->buf = (void *)(uintptr_t)s->buf;
	e->free_fn = s->free_fn;
	e->free_arg = s->free_arg;
	s->free_fn = NULL; /* released through e from now on */
	e->shinfo.free_cb = nd_ext_free_cb;
	e->shinfo.fcb_opaque = e;
	rte_mbuf_ext_refcnt_set(&e->shinfo, 1); /* the connection's reference */
	return e;
}

/*
 * Queue @len bytes at @p (inside the lent response) as a chain of extbuf
 * mbufs. @return bytes queued (0 when no mbuf was free), or a negative errno.
 */
static int
nd_send_ext(struct nd_conn *c, struct nd_ext *e, const uint8_t *p, uint32_t len)
{
	struct rte_mbuf *head = NULL;
	struct rte_mbuf *last = NULL;
	uint32_t done = 0;

	while (done < len) {
		uint32_t n = RTE_MIN(len - done, ND_EXT_CHUNK);
		struct rte_mbuf *m = rte_pktmbuf_alloc(g_pool);
		void *addr = (void *)(uintptr_t)(p + done);

		if (m == NULL)
			break;
		rte_mbuf_ext_refcnt_update(&e->shinfo, 1);
		rte_pktmbuf_attach_extbuf(m, addr, nd_iova(addr), (uint16_t)n,
			&e->shinfo);
		m->data_len = (uint16_t)n;
		m->pkt_len = n;
		if (head == NULL) {
			head = m;
		} else {
			last->next = m;
			head->nb_segs++;
			head->pkt_len += n;
		}
		last = m;
		done += n;
	}
	if (head == NULL)
		return 0;
	{
		int rc = net_tcp_send_mbuf(c->tcp, head);

		return rc < 0 ? rc : (int)done;
	}
}

/*
 * Whether bytes go by extbuf (attached, no copy) rather than copied into the
 * send queue: a response of at least ND_EXTBUF_MIN bytes (@len counts what of
 * it was sent), and every borrowed segment of a scatter-gather response
 * (Fetch records in the tail cache) whatever its size, so no record byte is
 * copied. Attaching needs an IOVA (nd_iova) and a free nd_ext, checked by
 * the caller.
 */
static bool
nd_ext_wanted(size_t len, uint32_t flags)
{
	return (flags & DP_SEG_BORROWED) != 0 || len >= ND_EXTBUF_MIN;
}

/*
 * Send ready responses while the TCP send queue has room. @closing: a last
 * attempt before closing (earlier requests still get their answers).
 */
static void
nd_flush(struct nd_conn *c, bool closing)
{
	struct dp_conn *b = &c->base;
	struct nd_worker *w = c->w;

	while (b->tx_ready && c->tcp != NULL && (closing || !b->closing)) {
		struct iovec iov[ND_IOV_MAX];
		uint32_t flags[ND_IOV_MAX];
		struct dp_tx_records rec = {0, 0};
		uint32_t space = net_tcp_send_space(c->tcp);
		uint32_t head = b->head;
		int n = dp_conn_tx_segs(b, iov, flags, ND_IOV_MAX);
		int sent = 0;
		bool by_ext = false;

		if (n == 0) {
			dp_conn_tx_done(b, 0); /* empty responses (acks=0) */
			if (b->head == head)
				break;
			continue;
		}
		if (space == 0)
			break;
		if (nd_ext_wanted(iov[0].iov_len + b->head_sent, flags[0]) &&
			nd_iova(iov[0].iov_base) != RTE_BAD_IOVA &&
			(c->tx_ext != NULL || w->n_ext_free > 0)) {
			uint32_t len = (uint32_t)RTE_MIN((size_t)space, iov[0].iov_len);

			if (c->tx_ext == NULL) {
				c->tx_ext = nd_ext_take(c, head);
				c->tx_ext_seq = head;
			}
			sent = nd_send_ext(c, c->tx_ext, iov[0].iov_base, len);
			if (sent > 0)
				w->stats.tx_bytes_extbuf += (uint32_t)sent;
			by_ext = true;
		} else {
			/* Copy: as many ready responses as fit. */
			for (int i = 0; i < n && space > 0; i++) {
				uint32_t len = (uint32_t)RTE_MIN((size_t)space, iov[i].iov_len);
				int rc;

				/* The next response or borrowed segment goes by extbuf. */
				if (i > 0 && nd_ext_wanted(iov[i].iov_len, flags[i]))
					break;
				rc = net_tcp_send(c->tcp, iov[i].iov_base, len);
				if (rc < 0) {
					sent = rc;
					break;
				}
				sent += rc;
				space -= (uint32_t)rc;
				if ((uint32_t)rc < len)
					break;
			}
			if (sent > 0)
				w->stats.tx_bytes_copied += (uint32_t)sent;
		}
		if (sent < 0) {
			b->closing = true;
			break;
		}
		if (sent == 0)
			break; /* no mbuf or no room: acknowledged bytes touch us again */
		b->last_active_tsc = rte_rdtsc();
		dp_conn_tx_done_records(b, (size_t)sent, &rec);
		/* Attached: borrowed record bytes leave without a copy; copied: all of them. */
		if (by_ext)
			dp_metrics_fetch_records(DP_METRICS_TR_DPDK, rec.borrowed, rec.owned);
		else
			dp_metrics_fetch_records(DP_METRICS_TR_DPDK, 0, rec.borrowed + rec.owned);
		if (c->tx_ext != NULL && b->head != c->tx_ext_seq)
			nd_tx_ext_release(c); /* the lent response is wholly queued */
	}
}

static void
nd_reap(struct nd_worker *w, struct nd_conn *c)
{
	if (DP_LOG_ENABLED(DP_LOG_DEBUG)) {
		char name[80];

		nd_peer_name(&c->base, name, sizeof(name));
		dp_log(DP_LOG_DEBUG, "closed %s", name);
	}
	if (c->tcp != NULL) {
		/* FIN after the responses queued by the last flush. */
		net_tcp_conn_set_arg(c->tcp, NULL);
		net_tcp_close(c->tcp);
		c->tcp = NULL;
	}
	nd_rx_drop_all(c);
	nd_tx_ext_release(c);
	dp_conn_reset(&c->base);
	c->in_use = false;
	w->free_stack[w->n_free++] = c->idx;
	w->stats.closed++;
	dp_metrics_conn_closed();
}

/* --- TCP callbacks (inside net_stack_input / net_stack_poll) --- */

static int
nd_tcp_accept(void *arg, struct net_tcp_conn *tcp)
{
	struct nd_worker *w = arg;
	struct net_tcp_info info;
	struct nd_conn *c;

	if (w->env.draining) {
		/* A client reconnecting during the drain: expected (the kernel transport
		 * has closed its listeners by then and logs nothing). */
		dp_log(DP_LOG_DEBUG, "refusing a connection: shutting down");
		return -1;
	}
	if (w->n_free == 0) {
		dp_log(DP_LOG_WARN, "refusing a connection: dataplane.max.connections reached "
			"on this worker");
		return -1;
	}
	c = &w->conns[w->free_stack[--w->n_free]];
	c->in_use = true;
	c->tcp = tcp;
	net_tcp_conn_info(tcp, &info);
	c->peer_addr = info.raddr;
	c->peer_port = info.rport;
	c->base.listener = -1;
	for (unsigned int i = 0; i < g_cfg->n_listeners; i++) {
		/* One address on the port, fixed listener ports: the local port says which. */
		if (!g_cfg->listener[i].controller && g_cfg->listener[i].port == info.lport) {
			c->base.listener = (int16_t)i;
			break;
		}
	}
	c->base.last_active_tsc = rte_rdtsc();
	net_tcp_conn_set_arg(tcp, c);
	w->stats.accepted++;
	dp_metrics_conn_accepted();
	if (DP_LOG_ENABLED(DP_LOG_DEBUG)) {
		char name[80];

		nd_peer_name(&c->base, name, sizeof(name));
		dp_log(DP_LOG_DEBUG, "connection from %s on worker %u", name, w->index);
	}
	return 0;
}

static void
nd_tcp_data(void *arg, struct net_tcp_conn *tcp, struct rte_mbuf *m, uint32_t len)
{
	struct nd_conn *c = arg;
	struct rte_mbuf *last;

	if (c == NULL || c->base.closing) {
		rte_pktmbuf_free(m);
		return;
	}
	last = rte_pktmbuf_lastseg(m);
	if (c->rx_tail == NULL)
		c->rx_head = m;
	else
		c->rx_tail->next = m;
	c->rx_tail = last;
	c->rx_bytes += len;
	c->base.last_active_tsc = rte_rdtsc();
	nd_touch(c);
}

static void
nd_tcp_eof(void *arg, struct net_tcp_conn *tcp)
{
	struct nd_conn *c = arg;

	if (c == NULL)
		return;
	/* Kafka clients do not half-close: answer what was asked, then close. */
	c->base.closing = true;
	nd_touch(c);
}

static void
nd_tcp_sent(void *arg, struct net_tcp_conn *tcp, uint32_t bytes)
{
	struct nd_conn *c = arg;

	if (c != NULL && c->base.tx_ready)
		nd_touch(c);
}

static void
nd_tcp_closed(void *arg, struct net_tcp_conn *tcp, int status)
{
	struct nd_conn *c = arg;

	if (c == NULL)
		return;
	if (status != 0 && DP_LOG_ENABLED(DP_LOG_DEBUG)) {
		char name[80];

		nd_peer_name(&c->base, name, sizeof(name));
		dp_log(DP_LOG_DEBUG, "%s: %s", name, strerror(-status));
	}
	c->tcp = NULL; /* the handle is gone once we return */
	c->base.closing = true;
	nd_touch(c);
}

static const struct net_tcp_ops nd_tcp_ops = {
	.accept = nd_tcp_accept,
	.data = nd_tcp_data,
	.eof = nd_tcp_eof,
	.sent = nd_tcp_sent,
	.closed = nd_tcp_closed,
};

/* --- pollers --- */

/* A copy of an ARP frame from another worker's queue; m->hash.usr is our index. */
static void
nd_arp_msg(void *arg)
{
	struct rte_mbuf *m = arg;

	net_stack_input(g_workers[m->hash.usr].st, &m, 1, net_port_now_us());
}

/*
 * RSS spreads TCP flows over the queues but ARP lands on one of them: every
 * worker's stack needs the replies (and requests) to resolve its peers, so
 * the worker that got one sends the others a copy.
 */
static void
nd_arp_share(struct nd_worker *w, struct rte_mbuf *m)
{
	const struct rte_ether_hdr *eth;

	if (rte_pktmbuf_data_len(m) < sizeof(*eth))
		return;
	eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP))
		return;
	for (unsigned int i = 0; i < g_n_workers; i++) {
		struct rte_mbuf *c;

		if (i == w->index)
			continue;
		c = rte_pktmbuf_copy(m, g_pool, 0, UINT32_MAX);
		if (c == NULL)
			continue;
		c->hash.usr = i;
		if (dp_msg_send(g_workers[i].lcore, nd_arp_msg, c) < 0)
			rte_pktmbuf_free(c);
	}
}

static int
nd_poll(void *arg)
{
	struct nd_worker *w = arg;
	struct rte_mbuf *pkts[ND_RX_BURST];
	uint16_t n = rte_eth_rx_burst(w->q.port_id, w->q.queue_id, pkts, ND_RX_BURST);

	if (n > 0) {
		if (g_n_workers > 1) {
			for (uint16_t i = 0; i < n; i++)
				nd_arp_share(w, pkts[i]);
		}
		net_stack_input(w->st, pkts, n, net_port_tsc_us(dp_reactor_tsc()));
	}
	return n;
}

/* The end poller's work on one touched connection. */
static void
nd_walk_one(struct nd_worker *w, struct nd_conn *c)
{
	if (!c->base.closing) {
		/* Sending frees slots, which lets more frames in: a few rounds. */
		for (int round = 0; round < 4; round++) {
			nd_flush(c, false);
			if (nd_rx(c) < 0) {
				c->base.closing = true;
				break;
			}
			nd_flush(c, false);
			if (!nd_rx_more(c))
				break;
		}
	}
	if (c->base.closing) {
		nd_flush(c, true);
		nd_reap(w, c);
		return;
	}
	if ((c->base.rx_stalled || nd_rx_more(c)) && !c->stalled) {
		/* Retried next iteration: waiting for a resource, or fairness. */
		c->stalled = true;
		w->stalled[w->n_stalled++] = c->idx;
	}
}

/* The touched connections, walked in passes (see below). */
static int
nd_walk_touched(struct nd_worker *w)
{
	int work = 0;

	/*
	 * Frames delivered here run their handler inside the walk, and a handler
	 * may complete requests of other connections (closing a log completes
	 * the appends in flight on it), touching connections already walked. So
	 * the list is walked in passes: each pass takes the list and leaves an
	 * empty one for the touches it causes, and a connection's flag is cleared
	 * as it is taken, so a later touch queues it again. What is still queued
	 * after the last pass (and what net_stack_poll touches after nd_end's
	 * walk) is walked by nd_answers or in the next iteration.
	 */
	for (int pass = 0; pass < ND_END_PASSES && w->n_touched > 0; pass++) {
		uint32_t *list = w->touched;
		uint32_t n = w->n_touched;

		w->touched = w->walk;
		w->walk = list;
		w->n_touched = 0;
		for (uint32_t i = 0; i < n; i++) {
			struct nd_conn *c = &w->conns[list[i]];

			c->touched = false;
			work++;
			if (c->in_use)
				nd_walk_one(w, c);
		}
	}

	return work;
}

static int
nd_end(void *arg)
{
	struct nd_worker *w = arg;
	int work = 0;

	for (uint32_t i = 0; i < w->n_stalled; i++) {
		struct nd_conn *c = &w->conns[w->stalled[i]];

		c->stalled = false;
		if (c->in_use) {
			c->base.rx_stalled = false;
			nd_touch(c);
		}
	}
	w->n_stalled = 0;

	work += nd_walk_touched(w);

	net_stack_poll(w->st, net_port_tsc_us(dp_reactor_tsc()));

	if (w->env.draining) {
		uint64_t pending = 0;

		for (uint32_t i = 0; i < w->max_conns; i++) {
			if (w->conns[i].in_use)
				pending += dp_conn_inflight(&w->conns[i].base);
		}
		__atomic_store_n(&w->published_pending, pending, __ATOMIC_RELAXED);
	}
	return work;
}

/*
 * Last in the iteration (net_dpdk_register_answers): what the storage and
 * fetch pollers answered after nd_end's walk leaves now, not after the next
 * iteration's receive burst (docs/dataplane.md "Reactors").
 */
static int
nd_answers(void *arg)
{
	return nd_walk_touched(arg);
}

int
net_dpdk_register_answers(void)
{
	for (unsigned int i = 0; i < g_n_workers; i++) {
		struct nd_worker *w = &g_workers[i];
		char name[32];
		int rc;

		snprintf(name, sizeof(name), "dpdk%u.answers", i);
		rc = dp_poller_register(w->lcore, name, nd_answers, w, 0, DP_POLLER_END);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
nd_idle(void *arg)
{
	struct nd_worker *w = arg;
	uint64_t now = rte_rdtsc();
	int n = 0;

	for (uint32_t i = 0; i < w->max_conns; i++) {
		if (w->conns[i].in_use)
			n += dp_conn_reap_idle(&w->conns[i].base, now, w->idle_tsc,
				g_cfg->connections_max_idle_ms);
	}
	return n;
}

/*
 * Poller of worker 0 (every ND_LINK_POLL_US): the port's link state. While
 * it is down every worker's output function drops (and counts as link_down)
 * the frames the device refuses; TCP's timers resend once it is back, and
 * worker 0 announces its address again (gratuitous ARP: the peer flushed
 * its neighbour entry when its side went down). rte_eth_link_get_nowait is
 * a syscall on some PMDs (net_tap asks the kernel for the interface flags),
 * hence the low rate. Ports that do not track their link (net_af_packet)
 * always say up.
 */
static int
nd_link(void *arg)
{
	struct nd_worker *w = arg;
	struct rte_eth_link link;
	bool down;

	memset(&link, 0, sizeof(link));
	if (rte_eth_link_get_nowait(g_port_id, &link) != 0)
		return 0;
	down = link.link_status == RTE_ETH_LINK_DOWN;
	if (g_link_checked && down == __atomic_load_n(&g_link_down, __ATOMIC_RELAXED))
		return 0;
	__atomic_store_n(&g_link_down, down, __ATOMIC_RELAXED);
	if (down) {
		/* Down at start (a memif port before its peer, a cable) is not a change, and
		 * a memif peer leaving is routine (a load generator's run ends). */
		bool routine = !g_link_checked || strncmp(g_dev_name, "net_memif", 9) == 0;

		dp_log(routine ? DP_LOG_INFO : DP_LOG_WARN, "port %s: link down%s; frames to send "
			"are dropped (counted) until it is up", g_dev_name,
			g_link_checked ? "" : " at start");
	} else {
		if (link.link_speed == RTE_ETH_SPEED_NUM_NONE ||
			link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN)
			dp_log(DP_LOG_INFO, "port %s: Link up", g_dev_name);
		else
			dp_log(DP_LOG_INFO, "port %s: Link up at %u Mbit/s, %s duplex", g_dev_name,
				link.link_speed, link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX ?
				"full" : "half");
		if (g_link_checked)
			net_stack_start(w->st, net_port_now_us()); /* gratuitous ARP */
	}
	g_link_checked = true;
	return 1;
}

/* Poller (every 100 ms): the stack's and the transport's counters into dp_metrics. */
static int
nd_metrics(void *arg)
{
	struct nd_worker *w = arg;
	const struct net_stats *s = net_stack_stats(w->st);
	uint64_t v[DP_NET_COUNTERS] = {0}; /* a slot left unset reads 0, never stack bytes */

	v[DP_NET_RX_PACKETS] = s->rx_frames;
	v[DP_NET_RX_BYTES] = s->rx_bytes;
	v[DP_NET_TX_PACKETS] = s->tx_frames;
	v[DP_NET_TX_BYTES] = s->tx_bytes;
	v[DP_NET_DROP_ETH] = s->rx_bad_eth;
	v[DP_NET_DROP_ETHERTYPE] = s->rx_unknown_ethertype;
	v[DP_NET_DROP_ARP_MALFORMED] = s->rx_bad_arp;
	v[DP_NET_DROP_IP_MALFORMED] = s->rx_bad_ipv4 - s->rx_ip_cksum_bad;
	v[DP_NET_DROP_IP_CHECKSUM] = s->rx_ip_cksum_bad;
	v[DP_NET_DROP_IP_NOT_FOR_US] = s->rx_ip_not_for_us;
	v[DP_NET_DROP_IP_FRAGMENT] = s->rx_ip_fragments;
	v[DP_NET_DROP_IP_PROTOCOL] = s->rx_unknown_proto;
	v[DP_NET_DROP_HEADER_SPLIT] = s->rx_multiseg_hdr;
	v[DP_NET_DROP_ICMP_MALFORMED] = s->rx_icmp_bad;
	v[DP_NET_DROP_TCP_MALFORMED] = s->rx_tcp_bad - s->rx_tcp_cksum_bad;
	v[DP_NET_DROP_TCP_CHECKSUM] = s->rx_tcp_cksum_bad;
	v[DP_NET_DROP_TCP_NO_CONN] = s->rx_tcp_no_conn;
	v[DP_NET_DROP_TCP_WINDOW] = s->tcp_out_of_window;
	v[DP_NET_DROP_TCP_PAWS] = s->tcp_paws_rejected;
	v[DP_NET_DROP_TCP_SYN] = s->tcp_syn_dropped;
	v[DP_NET_DROP_TCP_OOO] = s->tcp_ooo_dropped;
	v[DP_NET_TX_DROP_FULL] = s->tx_dropped;
	v[DP_NET_TX_DROP_NO_MBUF] = s->tx_no_mbuf;
	v[DP_NET_TX_DROP_ARP] = s->arp_held_dropped;
	v[DP_NET_TCP_RETRANS_RTO] = s->tcp_retransmits;
	v[DP_NET_TCP_RETRANS_FAST] = s->tcp_fast_retransmits;
	v[DP_NET_TCP_RETRANS_SACK] = s->tcp_sack_retransmits;
	v[DP_NET_TCP_RETRANS_LOST] = s->tcp_lost_retransmits;
	v[DP_NET_TCP_TLP] = s->tcp_tlp_probes;
	v[DP_NET_TCP_RTO] = s->tcp_rto_expiries;
	v[DP_NET_TCP_SACK_RECOVERIES] = s->tcp_sack_recoveries;
	v[DP_NET_TCP_EARLY_RETRANS] = s->tcp_early_retransmits;
	v[DP_NET_TCP_ZERO_WINDOW_PROBES] = s->tcp_zero_window_probes;
	v[DP_NET_TCP_KEEPALIVE_PROBES] = s->tcp_keepalive_probes;
	v[DP_NET_TCP_CHALLENGE_ACKS] = s->tcp_challenge_acks;
	v[DP_NET_TCP_RST_RX] = s->tcp_rst_rx;
	v[DP_NET_TCP_RST_TX] = s->tcp_rst_tx;
	v[DP_NET_TCP_OOO_QUEUED] = s->tcp_ooo_queued;
	v[DP_NET_TCP_COOKIES_SENT] = s->tcp_syncookies_sent;
	v[DP_NET_TCP_COOKIES_OK] = s->tcp_syncookies_ok;
	v[DP_NET_TCP_COOKIES_FAILED] = s->tcp_syncookies_failed;
	v[DP_NET_TCP_COOKIES_LIMITED] = s->tcp_syncookies_limited;
	v[DP_NET_TCP_OPENS_ACTIVE] = s->tcp_active_opens;
	v[DP_NET_TCP_OPENS_PASSIVE] = s->tcp_passive_opens;
	v[DP_NET_CONN_SYN] = s->tcp_conns_syn;
	v[DP_NET_CONN_ESTABLISHED] = s->tcp_conns_established;
	v[DP_NET_CONN_CLOSING] = s->tcp_conns_closing;
	v[DP_NET_CONN_TIME_WAIT] = s->tcp_conns_time_wait;
	v[DP_NET_DPDK_FRAMES_INPLACE] = w->stats.rx_frames_inplace;
	v[DP_NET_DPDK_FRAMES_COPIED] = w->stats.rx_frames_copied;
	v[DP_NET_DPDK_TX_EXTBUF] = w->stats.tx_bytes_extbuf;
	v[DP_NET_DPDK_TX_COPIED] = w->stats.tx_bytes_copied;
	v[DP_NET_TX_DROP_LINK_DOWN] = w->q.tx_link_down;
	v[DP_NET_DPDK_LINK_UP] = __atomic_load_n(&g_link_down, __ATOMIC_RELAXED) ? 0 : 1;
	v[DP_NET_TCP_RACK_LOST] = s->tcp_rack_lost;
	v[DP_NET_TCP_RACK_REO_TIMEOUTS] = s->tcp_rack_reo_timeouts;
	v[DP_NET_TSO_FRAMES] = s->tcp_tso_frames;
	v[DP_NET_TSO_SEGMENTS] = s->tcp_tso_segments;
	v[DP_NET_TCP_TIME_WAIT_REUSED] = s->tcp_time_wait_reused;
	dp_metrics_net_publish(w->index, g_dev_name, v, DP_NET_COUNTERS);
	return 0;
}

/* --- set-up --- */

static int
nd_worker_init(struct nd_worker *w, unsigned int index, unsigned int lcore,
	dp_conn_handler_fn handler, void *handler_arg)
{
	const struct dp_config *cfg = g_cfg;
	int socket = (int)rte_lcore_to_socket_id(lcore);
	uint32_t rx_cap = (uint32_t)cfg->dp_conn_rx_buffer_bytes;
	uint32_t inflight = dp_conn_slot_count((uint32_t)cfg->dp_conn_max_inflight);
	char name[RTE_MEMPOOL_NAMESIZE];

	w->index = index;
	w->lcore = lcore;
	w->max_conns = (uint32_t)cfg->dp_max_connections;
	w->env.handler = handler;
	w->env.handler_arg = handler_arg;
	w->env.large = &w->large;
	w->env.max_inflight = (uint32_t)cfg->dp_conn_max_inflight;
	w->env.max_pending_bytes = (uint64_t)cfg->dp_conn_max_pending_bytes;
	w->env.resp_buf_size = (uint32_t)cfg->dp_response_buffer_bytes;
	snprintf(name, sizeof(name), "nd_resp_%u", index);
	w->env.resp_pool = rte_mempool_create(name, (unsigned int)cfg->dp_response_buffers,
		(unsigned int)cfg->dp_response_buffer_bytes, 0, 0, NULL, NULL, NULL, NULL, socket,
		RTE_MEMPOOL_F_SP_PUT | RTE_MEMPOOL_F_SC_GET);
	w->n_ext = (uint32_t)cfg->dp_response_buffers + w->max_conns;
	w->conns = rte_zmalloc_socket("nd_conns", sizeof(struct nd_conn) * w->max_conns,
		RTE_CACHE_LINE_SIZE, socket);
	w->free_stack = rte_malloc_socket("nd_free", sizeof(uint32_t) * w->max_conns, 0, socket);
	w->touched = rte_malloc_socket("nd_touched", sizeof(uint32_t) * w->max_conns, 0, socket);
	w->walk = rte_malloc_socket("nd_walk", sizeof(uint32_t) * w->max_conns, 0, socket);
	w->stalled = rte_malloc_socket("nd_stalled", sizeof(uint32_t) * w->max_conns, 0, socket);
	w->rx_mem = rte_malloc_socket("nd_rx", (size_t)rx_cap * w->max_conns, RTE_CACHE_LINE_SIZE,
		socket);
	w->slot_mem = rte_zmalloc_socket("nd_slots",
		sizeof(struct dp_conn_slot) * inflight * w->max_conns, RTE_CACHE_LINE_SIZE, socket);
	w->large_items = rte_zmalloc_socket("nd_large",
		sizeof(void *) * ((size_t)cfg->dp_frame_large_buffers + 1), 0, socket);
	w->ext_mem = rte_zmalloc_socket("nd_ext", sizeof(struct nd_ext) * w->n_ext,
		RTE_CACHE_LINE_SIZE, socket);
	w->ext_free = rte_malloc_socket("nd_ext_free", sizeof(uint32_t) * w->n_ext, 0, socket);
	if (w->env.resp_pool == NULL || w->conns == NULL || w->free_stack == NULL ||
		w->touched == NULL || w->walk == NULL || w->stalled == NULL || w->rx_mem == NULL ||
		w->slot_mem == NULL || w->large_items == NULL || w->ext_mem == NULL ||
		w->ext_free == NULL)
		return -ENOMEM;
	w->large.items = w->large_items;
	w->large.size = (uint32_t)cfg->dp_frame_large_bytes;
	for (int64_t i = 0; i < cfg->dp_frame_large_buffers; i++) {
		void *b = rte_malloc_socket("nd_large_buf", w->large.size, RTE_CACHE_LINE_SIZE,
			socket);

		if (b == NULL)
			return -ENOMEM;
		w->large.items[w->large.n++] = b;
		w->large.cap++;
	}
	for (uint32_t i = 0; i < w->n_ext; i++) {
		w->ext_mem[i].idx = i;
		w->ext_mem[i].w = w;
		w->ext_free[i] = w->n_ext - 1 - i;
	}
	w->n_ext_free = w->n_ext;
	for (uint32_t i = 0; i < w->max_conns; i++) {
		struct nd_conn *c = &w->conns[i];

		dp_conn_setup(&c->base, &nd_ops, &w->env, w->rx_mem + (size_t)rx_cap * i, rx_cap,
			cfg->max_frame_bytes, w->slot_mem + (size_t)inflight * i);
		c->idx = i;
		c->w = w;
		w->free_stack[i] = w->max_conns - 1 - i;
	}
	w->n_free = w->max_conns;
	if (cfg->connections_max_idle_ms >= 0)
		w->idle_tsc = (uint64_t)cfg->connections_max_idle_ms * rte_get_tsc_hz() / 1000;
	return 0;
}

static int
parse_ipv4(const char *key, const char *text, bool empty_ok, uint32_t *out, char *why,
	size_t why_len)
{
	struct in_addr a;

	if (empty_ok && text[0] == '\0') {
		*out = 0;
		return 0;
	}
	if (inet_pton(AF_INET, text, &a) != 1) {
		why_set(why, why_len, "%s: '%s' is not an IPv4 address", key, text);
		return -EINVAL;
	}
	*out = a.s_addr;
	return 0;
}

/*
 * Say how flows reach the workers when there are several queues: RSS with
 * the table and symmetric key the stack's active opens aim at, or why not
 * (then active opens take any source port, and a reply may land on another
 * worker's queue: fine for the broker, which only accepts connections).
 * An info line either way: the fallback is the normal case on net_tap.
 */
static void
nd_rss_log(void)
{
	const char *drv = g_info.driver != NULL ? g_info.driver : "?";

	if (g_info.nb_queues <= 1)
		return;
	if (!g_info.rss) {
		dp_log(DP_LOG_INFO, "port %s: %u queues without RSS (driver %s): the device "
			"picks each flow's queue", g_dev_name, g_info.nb_queues, drv);
	} else if (net_port_rss_aimed(&g_info)) {
		dp_log(DP_LOG_INFO, "port %s: RSS over %u queues, redirection table of %u "
			"entries programmed (entry i -> queue i mod %u), symmetric key installed",
			g_dev_name, g_info.nb_queues, g_info.reta_size, g_info.nb_queues);
	} else if (g_info.reta_size == 0) {
		dp_log(DP_LOG_INFO, "port %s: RSS over %u queues without a redirection table "
			"(driver %s: the device picks each flow's queue); active opens choose "
			"any source port", g_dev_name, g_info.nb_queues, drv);
	} else {
		dp_log(DP_LOG_INFO, "port %s: RSS over %u queues but %s%s%s%s (driver %s); "
			"active opens choose any source port", g_dev_name, g_info.nb_queues,
			g_info.rss_reta_err != 0 ? "redirection table not programmed: " : "",
			g_info.rss_reta_err != 0 ? strerror(-g_info.rss_reta_err) : "",
			g_info.rss_reta_err != 0 && g_info.rss_key_err != 0 ? ", " : "",
			g_info.rss_key_err != 0 ? "symmetric key not installed" : "", drv);
	}
}

/* Find the port, probing the vdev when it does not exist yet. */
static int
nd_port_attach(const char *device, char *why, size_t why_len)
{
	int rc;

	device_name(device, g_dev_name, sizeof(g_dev_name));
	g_port_dma = net_dpdk_device_is_pci(device);
	if (rte_eth_dev_get_port_by_name(g_dev_name, &g_port_id) == 0)
		return 0;
	if (net_dpdk_device_is_pci(device)) {
		why_set(why, why_len, "PCI device %s is not a DPDK port (bound to vfio-pci? give "
				      "the full DDDD:BB:DD.F address)", device);
		return -ENODEV;
	}
	rc = rte_dev_probe(device);
	if (rc < 0) {
		why_set(why, why_len, "cannot create DPDK device '%s': %s", device,
			strerror(-rc));
		return rc;
	}
	g_port_probed = true;
	if (rte_eth_dev_get_port_by_name(g_dev_name, &g_port_id) != 0) {
		why_set(why, why_len, "device '%s' made no ethdev port named %s", device,
			g_dev_name);
		return -ENODEV;
	}
	return 0;
}

int
net_dpdk_init(const struct dp_config *cfg, dp_conn_handler_fn handler, void *handler_arg,
	char *why, size_t why_len)
{
	struct net_port_conf pc;
	uint32_t addr, mask, gw;
	uint16_t mtu = (uint16_t)cfg->dp_port_mtu;
	unsigned int n_mbufs;
	uint16_t room;
	bool trusted;
	bool tx_skip = false; /* dataplane.port.tx.checksum=skip, in effect (below) */
	bool memif_mtu = false; /* an MTU the memif port does not claim (below) */
	int rc;

	g_cfg = cfg;
	/* tx.checksum=skip: only where the peer is a local process reading our
	 * frames out of shared memory (memif), one the operator asserts does
	 * not verify checksums (the load generator, which trusts memif's,
	 * another Slipstream stack with rx.checksum.trusted). On a TAP,
	 * af_packet or NIC port the frames reach a kernel or a wire that
	 * verifies them: refused before the port is touched, as tso=on is
	 * without TSO, rather than a broker whose every segment is dropped. */
	if (strcmp(cfg->dp_port_tx_cksum, "skip") == 0 && !is_memif(cfg->dp_port_device)) {
		why_set(why, why_len, "dataplane.port.tx.checksum=skip is for net_memif ports "
			"only (device %s: its peer verifies TCP checksums)", cfg->dp_port_device);
		return -EINVAL;
	}
	rc = parse_ipv4("dataplane.port.ipv4.address", cfg->dp_port_ipv4_address, false, &addr,
		why, why_len);
	if (rc == 0)
		rc = parse_ipv4("dataplane.port.ipv4.netmask", cfg->dp_port_ipv4_netmask, false,
			&mask, why, why_len);
	if (rc == 0)
		rc = parse_ipv4("dataplane.port.ipv4.gateway", cfg->dp_port_ipv4_gateway, true,
			&gw, why, why_len);
	if (rc < 0)
		return rc;
	if (addr == 0) {
		why_set(why, why_len, "dataplane.port.ipv4.address must not be 0.0.0.0");
		return -EINVAL;
	}
	snprintf(g_addr_text, sizeof(g_addr_text), "%s", cfg->dp_port_ipv4_address);
	for (unsigned int i = 0; i < cfg->n_listeners; i++) {
		const struct dp_listener *l = &cfg->listener[i];

		if (l->controller)
			continue;
		if (l->port == 0) {
			why_set(why, why_len, "listener %s: the DPDK transport needs a fixed port",
				l->name);
			return -EINVAL;
		}
		if (!host_servable(l->host, addr)) {
			why_set(why, why_len, "listener %s: host %s is not the DPDK port's address "
					      "%s (dataplane.port.ipv4.address)", l->name, l->host,
				g_addr_text);
			return -EINVAL;
		}
	}

	g_n_workers = (unsigned int)cfg->dp_net_workers;
	g_workers = rte_zmalloc("nd_workers", sizeof(struct nd_worker) * g_n_workers,
		RTE_CACHE_LINE_SIZE);
	if (g_workers == NULL) {
		why_set(why, why_len, "out of DPDK memory (dpdk.memory.mb)");
		return -ENOMEM;
	}
	g_in_init = true; /* from here failures go through net_dpdk_fini() */
	rc = nd_port_attach(cfg->dp_port_device, why, why_len);
	if (rc < 0)
		goto fail;

	{
		struct rte_eth_dev_info di;

		/* A clearer reason than the EINVAL of rte_eth_dev_set_mtu (TAP and
		 * af_packet take 1500 at most). memif is the exception: DPDK 22.11's
		 * driver reports 1518-byte frames, yet its rings carry a frame of any
		 * length as chained descriptors and neither end checks a length, so a
		 * larger MTU is an agreement between the two stacks (the peer's MTU
		 * must be the same): the stack gets it, the port keeps its own. */
		if (is_memif(cfg->dp_port_device) && mtu > 1500) {
			memif_mtu = true;
			dp_log(DP_LOG_INFO, "port %s: MTU %u over memif (the driver claims 1500 "
					    "but carries any frame; the peer must use %u too)",
				g_dev_name, mtu, mtu);
		} else if (rte_eth_dev_info_get(g_port_id, &di) == 0 &&
			(mtu > di.max_mtu || (uint32_t)mtu + RTE_ETHER_HDR_LEN +
				RTE_ETHER_CRC_LEN > di.max_rx_pktlen)) {
			rc = -EINVAL;
			why_set(why, why_len, "dataplane.port.mtu=%u is above what port %s takes "
					      "(frames up to %u bytes)", mtu, g_dev_name,
				di.max_rx_pktlen);
			goto fail;
		}
	}
	/* One frame per mbuf: the data room holds the largest frame. */
	room = (uint16_t)RTE_MAX((unsigned int)RTE_MBUF_DEFAULT_BUF_SIZE,
		RTE_PKTMBUF_HEADROOM + mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN + 4u);
	n_mbufs = (unsigned int)cfg->dp_port_mbufs * g_n_workers;
	g_pool = rte_pktmbuf_pool_create("nd_mbufs", n_mbufs, 256, 0, room,
		(int)rte_socket_id());
	if (g_pool == NULL) {
		rc = -ENOMEM;
		why_set(why, why_len, "cannot allocate %u packet buffers of %u bytes "
				      "(dataplane.port.mbufs, dpdk.memory.mb)", n_mbufs, room);
		goto fail;
	}
	memset(&pc, 0, sizeof(pc));
	pc.nb_queues = (uint16_t)g_n_workers;
	pc.mtu = mtu == 1500 || memif_mtu ? 0 : mtu;
	pc.pool = g_pool;
	pc.tso = strcmp(cfg->dp_port_tso, "off") != 0;
	rc = net_port_setup(g_port_id, &pc, &g_info);
	if (rc < 0) {
		why_set(why, why_len, "port %s: setup failed: %s", g_dev_name, strerror(-rc));
		goto fail;
	}
	if (!g_info.tso && strcmp(cfg->dp_port_tso, "on") == 0) {
		rc = -ENOTSUP;
		why_set(why, why_len, "dataplane.port.tso=on but port %s (driver %s) offers no "
			"TCP segmentation offload", g_dev_name,
			g_info.driver != NULL ? g_info.driver : "?");
		goto fail;
	}
	g_port_started = true;
	if (is_tap(cfg->dp_port_device) && cfg->dp_port_tap_address[0] != '\0') {
		char ifname[IFNAMSIZ];

		device_arg(cfg->dp_port_device, "iface", ifname, sizeof(ifname));
		if (ifname[0] == '\0') {
			dp_log(DP_LOG_WARN, "dataplane.port.tap.address ignored: the device has no "
					    "iface= name");
		} else {
			rc = tap_configure(ifname, cfg->dp_port_tap_address, why, why_len);
			if (rc < 0)
				goto fail;
		}
	}
	nd_rss_log();
	/* A port that offloads the checksums computes them anyway (above). */
	tx_skip = strcmp(cfg->dp_port_tx_cksum, "skip") == 0 && !g_info.tx_cksum_offload;
	trusted = cfg->dp_port_rx_cksum_trusted ||
		(g_info.driver != NULL && strstr(g_info.driver, "af_packet") != NULL);

	for (unsigned int i = 0; i < g_n_workers; i++) {
		struct nd_worker *w = &g_workers[i];
		struct net_config nc;

		rc = nd_worker_init(w, i, cfg->net_lcore[i], handler, handler_arg);
		if (rc < 0) {
			why_set(why, why_len, "net worker %u: %s (dpdk.memory.mb, "
				"dataplane.max.connections and the buffer sizes decide the memory "
				"needed)", i, strerror(-rc));
			goto fail;
		}
		w->q.port_id = g_port_id;
		w->q.queue_id = (uint16_t)i;
		w->q.link_down = &g_link_down;
		memset(&nc, 0, sizeof(nc));
		nc.ipv4_addr = addr;
		nc.ipv4_mask = mask;
		nc.ipv4_gateway = gw;
		nc.pool = g_pool;
		net_port_worker_config(&nc, &g_info, &w->q, mtu);
		nc.rx_l4_cksum_trusted = trusted;
		nc.tx_l4_cksum_skip = tx_skip;
		nc.sndbuf_bytes = (uint32_t)cfg->dp_tcp_send_buffer_bytes;
		nc.max_conns = RTE_MIN(2 * w->max_conns, 1u << 24); /* room for TIME-WAIT */
		nc.max_listeners = DP_CONFIG_MAX_LISTENERS;
		nc.seed = rte_rdtsc() ^ ((uint64_t)getpid() << 32) ^ i;
		w->st = net_stack_create(&nc);
		if (w->st == NULL) {
			rc = -errno;
			why_set(why, why_len, "net worker %u: stack: %s", i, strerror(errno));
			goto fail;
		}
		for (unsigned int j = 0; j < cfg->n_listeners; j++) {
			if (cfg->listener[j].controller)
				continue;
			rc = net_tcp_listen(w->st, cfg->listener[j].port, ND_BACKLOG, &nd_tcp_ops,
				w);
			if (rc < 0) {
				why_set(why, why_len, "listener %s: %s", cfg->listener[j].name,
					strerror(-rc));
				goto fail;
			}
		}
		net_stack_start(w->st, net_port_now_us());
	}
	for (unsigned int i = 0; i < g_n_workers; i++) {
		struct nd_worker *w = &g_workers[i];
		char name[32];

		snprintf(name, sizeof(name), "dpdk%u.rx", i);
		rc = dp_poller_register(w->lcore, name, nd_poll, w, 0, DP_POLLER_EVERY);
		if (rc == 0) {
			snprintf(name, sizeof(name), "dpdk%u.end", i);
			rc = dp_poller_register(w->lcore, name, nd_end, w, 0, DP_POLLER_END);
		}
		if (rc == 0 && i == 0) {
			snprintf(name, sizeof(name), "dpdk%u.link", i);
			rc = dp_poller_register(w->lcore, name, nd_link, w, ND_LINK_POLL_US,
				DP_POLLER_EVERY);
		}
		if (rc == 0) {
			snprintf(name, sizeof(name), "dpdk%u.metrics", i);
			rc = dp_poller_register(w->lcore, name, nd_metrics, w, 100 * 1000,
				DP_POLLER_EVERY);
		}
		if (rc == 0 && w->idle_tsc != 0) {
			uint64_t period_ms = (uint64_t)cfg->connections_max_idle_ms / 4;

			if (period_ms > 1000)
				period_ms = 1000;
			if (period_ms < 10)
				period_ms = 10;
			snprintf(name, sizeof(name), "dpdk%u.idle", i);
			rc = dp_poller_register(w->lcore, name, nd_idle, w, period_ms * 1000,
				DP_POLLER_EVERY);
		}
		if (rc < 0) {
			why_set(why, why_len, "pollers: %s", strerror(-rc));
			goto fail;
		}
	}
	for (unsigned int j = 0; j < cfg->n_listeners; j++) {
		if (!cfg->listener[j].controller)
			dp_log(DP_LOG_INFO, "listening on %s://%s:%u (DPDK port %s, driver %s, "
					    "%u queue(s)%s%s%s%s)", cfg->listener[j].name, g_addr_text,
				cfg->listener[j].port, g_dev_name,
				g_info.driver != NULL ? g_info.driver : "?", g_info.nb_queues,
				g_info.tx_cksum_offload ? ", tx checksum offload" : "",
				tx_skip ? ", tx TCP checksums skipped" : "",
				g_info.tso ? ", TSO" : "",
				trusted ? ", rx checksums trusted" : "");
	}
	g_in_init = false;
	return 0;
fail:
	net_dpdk_fini();
	g_in_init = false;
	return rc < 0 ? rc : -EINVAL;
}

const char *
net_dpdk_address(void)
{
	return g_addr_text;
}

static void
nd_drain_msg(void *arg)
{
	struct nd_worker *w = arg;

	__atomic_store_n(&w->published_pending, UINT64_MAX, __ATOMIC_RELAXED);
	w->env.draining = true; /* accept refuses from now on */
	for (uint32_t i = 0; i < w->max_conns; i++) {
		if (w->conns[i].in_use)
			nd_touch(&w->conns[i]);
	}
	if (w->index == 0)
		dp_log(DP_LOG_INFO, "stopped accepting connections");
}

int
net_dpdk_drain_begin(void)
{
	int rc = 0;

	for (unsigned int i = 0; i < g_n_workers; i++)
		__atomic_store_n(&g_workers[i].published_pending, UINT64_MAX, __ATOMIC_RELAXED);
	for (unsigned int i = 0; rc == 0 && i < g_n_workers; i++)
		rc = dp_msg_send(g_workers[i].lcore, nd_drain_msg, &g_workers[i]);
	return rc;
}

uint64_t
net_dpdk_drain_pending(void)
{
	uint64_t total = 0;

	for (unsigned int i = 0; i < g_n_workers; i++) {
		uint64_t p = __atomic_load_n(&g_workers[i].published_pending, __ATOMIC_RELAXED);

		if (p == UINT64_MAX)
			return UINT64_MAX;
		total += p;
	}
	return total;
}

int
net_dpdk_stats_get(unsigned int i, struct net_dpdk_stats *out)
{
	if (i >= g_n_workers || g_workers == NULL)
		return -EINVAL;
	*out = g_workers[i].stats;
	return 0;
}

/*
 * DPDK 22.11's memif PMD frees its listening socket when the last device on
 * it closes (memif_socket_remove_device) without unregistering the socket's
 * interrupt callback, and leaves its descriptor open. A client that connects
 * after that (a load generator waiting for its link connects again every few
 * milliseconds) has the EAL interrupt thread run the callback on freed
 * memory: it spins on "Failed to accept connection request on socket fd -1"
 * and dies with SIGSEGV once that memory is reused or unmapped (the crash at
 * SIGTERM seen under scripts/bench; reproduced with clients connecting while
 * the broker stops: 9 of 20 stops). A client halfway through its handshake
 * races the port's close the same way (its control channel's callback runs
 * while the device is freed: 2 of 30 stops with the listener quieted alone).
 *
 * So at exit, before a memif port stops, (1) the interrupt thread is parked
 * for good in a callback of our own (an eventfd source; the process is on its
 * way out and nothing later needs that thread: memif sends its disconnect
 * synchronously, and rte_eal_cleanup only unregisters the alarm source, which
 * is not the active one), so no callback of the PMD runs again, and (2) the
 * PMD's listening socket, found among our descriptors (a listening AF_UNIX
 * socket bound to the device's socket= name, abstract or not), is replaced in
 * place by that eventfd (dup2), so clients get ECONNREFUSED at once. After a
 * failed start (the kernel transport may follow) only (2) is done.
 */
static int g_intr_parked;

static void
nd_intr_park_cb(void *arg)
{
	(void)arg;
	__atomic_store_n(&g_intr_parked, 1, __ATOMIC_RELEASE);
	for (;;)
		usleep(100000); /* until the process exits */
}

static void
nd_intr_thread_park(void)
{
	uint64_t deadline = rte_get_timer_cycles() + 2 * rte_get_timer_hz();
	struct rte_intr_handle *ih = rte_intr_instance_alloc(RTE_INTR_INSTANCE_F_PRIVATE);
	int fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK); /* readable from the start */

	if (ih == NULL || fd < 0 || rte_intr_fd_set(ih, fd) != 0 ||
		rte_intr_type_set(ih, RTE_INTR_HANDLE_EXT) != 0 ||
		rte_intr_callback_register(ih, nd_intr_park_cb, NULL) != 0) {
		dp_log(DP_LOG_WARN, "port %s: could not park the interrupt thread before closing",
			g_dev_name);
		if (fd >= 0)
			close(fd);
		rte_intr_instance_free(ih);
		return;
	}
	while (!__atomic_load_n(&g_intr_parked, __ATOMIC_ACQUIRE) &&
		rte_get_timer_cycles() < deadline)
		rte_delay_us_sleep(1000);
	if (!__atomic_load_n(&g_intr_parked, __ATOMIC_ACQUIRE))
		dp_log(DP_LOG_WARN, "port %s: the interrupt thread did not park within 2 s",
			g_dev_name);
	/* ih and fd stay: the parked callback is theirs until the process exits. */
}

static void
nd_memif_listener_quiet(void)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char role[16];
	struct dirent *de;
	DIR *d;
	int quiet, n = 0;

	device_arg(g_cfg->dp_port_device, "role", role, sizeof(role));
	if (strcmp(role, "client") == 0)
		return;
	device_arg(g_cfg->dp_port_device, "socket", path, sizeof(path));
	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/run/memif.sock"); /* the PMD's default */
	d = opendir("/proc/self/fd");
	quiet = eventfd(0, EFD_CLOEXEC);
	if (d == NULL || quiet < 0)
		goto out;
	while ((de = readdir(d)) != NULL) {
		struct sockaddr_un sun;
		socklen_t len = sizeof(sun);
		socklen_t al = sizeof(int);
		int fd = atoi(de->d_name);
		int acc = 0;
		size_t plen;
		bool match;

		if (de->d_name[0] < '0' || de->d_name[0] > '9' || fd == dirfd(d) || fd == quiet)
			continue;
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) != 0 || acc == 0)
			continue;
		memset(&sun, 0, sizeof(sun));
		if (getsockname(fd, (struct sockaddr *)&sun, &len) != 0 || sun.sun_family != AF_UNIX ||
			len <= offsetof(struct sockaddr_un, sun_path))
			continue;
		plen = len - offsetof(struct sockaddr_un, sun_path);
		if (sun.sun_path[0] == '\0') /* abstract: "\0name", length-delimited */
			match = plen - 1 == strlen(path) && memcmp(sun.sun_path + 1, path, plen - 1) == 0;
		else
			match = strnlen(sun.sun_path, plen) == strlen(path) &&
				strncmp(sun.sun_path, path, plen) == 0;
		if (match && dup2(quiet, fd) >= 0)
			n++;
	}
	if (n > 0)
		dp_log(DP_LOG_DEBUG, "port %s: memif listener %s closed before the port", g_dev_name,
			path);
out:
	if (quiet >= 0)
		close(quiet);
	if (d != NULL)
		closedir(d);
}

void
net_dpdk_fini(void)
{
	if (g_workers != NULL) {
		for (unsigned int i = 0; i < g_n_workers; i++) {
			struct nd_worker *w = &g_workers[i];

			if (w->st != NULL)
				dp_log(DP_LOG_INFO, "dpdk worker %u: %" PRIu64 " connections, "
					"frames %" PRIu64 " in place / %" PRIu64 " copied, "
					"response bytes %" PRIu64 " extbuf / %" PRIu64
					" copied", i,
					w->stats.accepted,
					w->stats.rx_frames_inplace, w->stats.rx_frames_copied,
					w->stats.tx_bytes_extbuf, w->stats.tx_bytes_copied);
			if (w->conns != NULL) {
				for (uint32_t j = 0; j < w->max_conns; j++) {
					if (w->conns[j].in_use)
						nd_reap(w, &w->conns[j]);
				}
			}
			/* Frees queued mbufs: lent responses go back to their pools here. */
			net_stack_free(w->st);
			w->st = NULL;
			for (uint32_t j = 0; j < w->large.n; j++)
				rte_free(w->large.items[j]);
			rte_mempool_free(w->env.resp_pool);
			rte_free(w->ext_free);
			rte_free(w->ext_mem);
			rte_free(w->large_items);
			rte_free(w->slot_mem);
			rte_free(w->rx_mem);
			rte_free(w->stalled);
			rte_free(w->touched);
			rte_free(w->walk);
			rte_free(w->free_stack);
			rte_free(w->conns);
		}
		rte_free(g_workers);
		g_workers = NULL;
	}
	g_n_workers = 0;
	if ((g_port_started || g_port_probed) && g_cfg != NULL &&
		strncmp(g_dev_name, "net_memif", 9) == 0) {
		if (!g_in_init)
			nd_intr_thread_park();
		nd_memif_listener_quiet();
	}
	if (g_port_started) {
		rte_eth_dev_stop(g_port_id);
		rte_eth_dev_close(g_port_id); /* a TAP's kernel interface goes with it */
		g_port_started = false;
	}
	if (g_port_probed) {
		rte_eal_hotplug_remove("vdev", g_dev_name);
		g_port_probed = false;
	}
	rte_mempool_free(g_pool);
	g_pool = NULL;
	g_link_down = false;
	g_link_checked = false;
}
