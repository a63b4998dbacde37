/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_metrics: Prometheus text exposition of the dataplane counters and the
 * consumer lag (see ctl_metrics.h). Families and their order:
 *
 *   slipstream_dataplane_up, _start_time_seconds, slipstream_metrics_scrapes_total
 *   slipstream_requests_total{api}, slipstream_request_duration_seconds{api}
 *   slipstream_connections_{accepted,closed}_total, slipstream_connections_open
 *   slipstream_fetch_record_bytes_total{transport,path}
 *   slipstream_storage_write_duration_seconds, slipstream_fetch_wakeup_duration_seconds
 *   slipstream_lcore_{busy,idle}_seconds_total{lcore}, slipstream_lcore_busy_ratio{lcore}
 *   slipstream_lcore_long_iterations_total{lcore,over}, _long_iteration_seconds_total{lcore}
 *   slipstream_partition_{bytes,records}_{in,out}_total{topic,partition},
 *   slipstream_partition_log_end_offset{topic,partition},
 *   slipstream_metrics_partitions_untracked_total
 *   slipstream_net_* {port,worker[,reason|kind|result|state]}: the DPDK TCP/IP stack
 *   of each net worker; slipstream_dpdk_* {port,worker,path}: its transport
 *   slipstream_hop_* {lcore[,path|reason|side]}: the request hop (dp_hop), on the
 *   lcores that have one
 *   slipstream_storage_* {lcore[,state|kind]}: the storage writers' tail cache and files
 *   slipstream_consumergroup_committed_offset{group,topic,partition},
 *   slipstream_consumergroup_lag{group,topic,partition}
 */
#include "ctl_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_api.h"
#include "kp_error.h"

void
ctl_metrics_default_path(int64_t node_id, char *buf, size_t len)
{
	snprintf(buf, len, "/dev/shm/slipstream-metrics-%" PRId64, node_id);
}

int
ctl_metrics_init(struct ctl_metrics *m, const char *shm_path)
{
	memset(m, 0, sizeof(*m));
	m->reader.fd = -1;
	if (strlen(shm_path) >= sizeof(m->shm_path))
		return -EINVAL;
	snprintf(m->shm_path, sizeof(m->shm_path), "%s", shm_path);
	return 0;
}

void
ctl_metrics_set_offsets(struct ctl_metrics *m, ctl_metrics_offsets_fn fn, void *arg)
{
	m->offsets = fn;
	m->offsets_arg = arg;
}

void
ctl_metrics_fini(struct ctl_metrics *m)
{
	if (m->reader_open)
		dp_metrics_reader_close(&m->reader);
	m->reader_open = false;
}

/* A label value with \, " and newline escaped (exposition format rule). */
static void
put_label(struct ctl_buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			ctl_buf_append(b, "\\\\", 2);
		else if (*s == '"')
			ctl_buf_append(b, "\\\"", 2);
		else if (*s == '\n')
			ctl_buf_append(b, "\\n", 2);
		else
			ctl_buf_append(b, s, 1);
	}
}

static void
family(struct ctl_buf *b, const char *name, const char *type, const char *help)
{
	ctl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
hist_add(struct dp_metrics_hist *to, const struct dp_metrics_hist *h)
{
	to->count += h->count;
	to->sum_ns += h->sum_ns;
	for (int i = 0; i < DP_METRICS_LAT_BUCKETS; i++)
		to->buckets[i] += h->buckets[i];
}

/* One histogram's samples; @labels is "" or 'api="Produce",'. */
static void
hist_samples(struct ctl_buf *b, const char *name, const char *labels,
             const struct dp_metrics_hist *h)
{
	uint64_t cum = 0;

	for (int i = 0; i < DP_METRICS_LAT_BUCKETS; i++) {
		cum += h->buckets[i];
		if (i < DP_METRICS_LAT_BUCKETS - 1)
			ctl_buf_printf(b, "%s_bucket{%sle=\"%g\"} %" PRIu64 "\n", name, labels,
			               (double)dp_metrics_lat_bounds_us[i] / 1e6, cum);
		else
			ctl_buf_printf(b, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name, labels,
			               cum);
	}
	if (*labels != '\0') {
		/* labels end in ','; drop it inside {} */
		int n = (int)strlen(labels) - 1;

		ctl_buf_printf(b, "%s_sum{%.*s} %.9f\n", name, n, labels, (double)h->sum_ns / 1e9);
		ctl_buf_printf(b, "%s_count{%.*s} %" PRIu64 "\n", name, n, labels, h->count);
	} else {
		ctl_buf_printf(b, "%s_sum %.9f\n", name, (double)h->sum_ns / 1e9);
		ctl_buf_printf(b, "%s_count %" PRIu64 "\n", name, h->count);
	}
}

/* 'api="Produce",' (with the comma a histogram's le follows). */
static const char *
api_label(char *buf, size_t len, int key)
{
	const struct kp_api_desc *d = kp_api_lookup((int16_t)key);

	if (d != NULL && d->name != NULL)
		snprintf(buf, len, "api=\"%s\",", d->name);
	else
		snprintf(buf, len, "api=\"%d\",", key);
	return buf;
}

static int
cmp_tp(const void *a, const void *b)
{
	const struct dp_metrics_tp *x = *(const struct dp_metrics_tp *const *)a;
	const struct dp_metrics_tp *y = *(const struct dp_metrics_tp *const *)b;
	int c = strcmp(x->topic, y->topic);

	if (c != 0)
		return c;
	return (x->partition > y->partition) - (x->partition < y->partition);
}

/* The partitions of every block added up, sorted by (topic, partition). */
struct tp_sum {
	struct dp_metrics_tp *items; /* heap */
	size_t n;
};

static int
tp_merge(const struct dp_metrics_snapshot *snap, struct tp_sum *out)
{
	const struct dp_metrics_tp **all;
	size_t total = 0, k = 0;

	out->items = NULL;
	out->n = 0;
	for (uint32_t i = 0; i < snap->hdr.n_blocks; i++)
		total += snap->blocks[i].n_tps;
	if (total == 0)
		return 0;
	all = malloc(total * sizeof(*all));
	out->items = malloc(total * sizeof(*out->items));
	if (all == NULL || out->items == NULL) {
		free(all);
		free(out->items);
		out->items = NULL;
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < snap->hdr.n_blocks; i++) {
		for (uint64_t j = 0; j < snap->blocks[i].n_tps; j++)
			all[k++] = &snap->blocks[i].tps[j];
	}
	qsort(all, total, sizeof(*all), cmp_tp);
	for (size_t i = 0; i < total; i++) {
		struct dp_metrics_tp *last = out->n > 0 ? &out->items[out->n - 1] : NULL;

		if (last == NULL || cmp_tp(&last, &all[i]) != 0) {
			out->items[out->n++] = *all[i];
			continue;
		}
		last->bytes_in += all[i]->bytes_in;
		last->records_in += all[i]->records_in;
		last->bytes_out += all[i]->bytes_out;
		last->records_out += all[i]->records_out;
		if (all[i]->log_end_offset > last->log_end_offset)
			last->log_end_offset = all[i]->log_end_offset;
	}
	free(all);
	return 0;
}

static const struct dp_metrics_tp *
tp_find(const struct tp_sum *s, const char *topic, int32_t partition)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->items[mid].topic, topic);

		if (c == 0)
			c = (s->items[mid].partition > partition) -
			    (s->items[mid].partition < partition);
		if (c == 0)
			return &s->items[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void
tp_family(struct ctl_buf *b, const struct tp_sum *s, const char *name, const char *type,
          const char *help, size_t field_off, bool skip_negative)
{
	family(b, name, type, help);
	for (size_t i = 0; i < s->n; i++) {
		int64_t v;

		memcpy(&v, (const char *)&s->items[i] + field_off, sizeof(v));
		if (skip_negative && v < 0)
			continue;
		ctl_buf_printf(b, "%s{topic=\"", name);
		put_label(b, s->items[i].topic);
		ctl_buf_printf(b, "\",partition=\"%d\"} %" PRIu64 "\n", s->items[i].partition,
		               (uint64_t)v);
	}
}

/* The lag pass: one family per call, committed offsets or lag. */
struct lag_ctx {
	struct ctl_buf *b;
	const struct tp_sum *tps;
	bool lag; /* false: committed offsets */
};

static void
lag_sample(void *arg, const char *group, const char *topic, int32_t partition, int64_t committed)
{
	struct lag_ctx *x = arg;
	int64_t v = committed;

	if (committed < 0)
		return;
	if (x->lag) {
		const struct dp_metrics_tp *tp = tp_find(x->tps, topic, partition);

		if (tp == NULL || tp->log_end_offset < 0)
			return; /* log end unknown to the dataplane yet: no lag sample */
		v = tp->log_end_offset > committed ? tp->log_end_offset - committed : 0;
	}
	ctl_buf_printf(x->b, "%s{group=\"",
	               x->lag ? "slipstream_consumergroup_lag"
	                      : "slipstream_consumergroup_committed_offset");
	put_label(x->b, group);
	ctl_buf_printf(x->b, "\",topic=\"");
	put_label(x->b, topic);
	ctl_buf_printf(x->b, "\",partition=\"%d\"} %" PRId64 "\n", partition, v);
}

/*
 * The net worker counters (enum dp_metrics_net_counter) as families: entries
 * of one family are consecutive; @label is "" or a whole label pair.
 */
struct net_sample {
	int idx;
	const char *family;
	const char *type;
	const char *help; /* on the family's first entry */
	const char *label;
};

static const struct net_sample net_samples[] = {
	{DP_NET_RX_PACKETS, "slipstream_net_rx_packets_total", "counter",
	 "Frames received by the DPDK TCP/IP stack, by port and net worker.", ""},
	{DP_NET_RX_BYTES, "slipstream_net_rx_bytes_total", "counter",
	 "Bytes of the frames received (Ethernet header included).", ""},
	{DP_NET_TX_PACKETS, "slipstream_net_tx_packets_total", "counter",
	 "Frames the port took for sending.", ""},
	{DP_NET_TX_BYTES, "slipstream_net_tx_bytes_total", "counter",
	 "Bytes of the frames the port took (Ethernet header included).", ""},
	{DP_NET_DROP_ETH, "slipstream_net_rx_dropped_total", "counter",
	 "Received frames dropped, by reason (*_malformed and header_split: malformed; "
	 "*_checksum: checksum errors).", "reason=\"ethernet\""},
	{DP_NET_DROP_ETHERTYPE, NULL, NULL, NULL, "reason=\"ethertype\""},
	{DP_NET_DROP_ARP_MALFORMED, NULL, NULL, NULL, "reason=\"arp_malformed\""},
	{DP_NET_DROP_IP_MALFORMED, NULL, NULL, NULL, "reason=\"ipv4_malformed\""},
	{DP_NET_DROP_IP_CHECKSUM, NULL, NULL, NULL, "reason=\"ipv4_checksum\""},
	{DP_NET_DROP_IP_NOT_FOR_US, NULL, NULL, NULL, "reason=\"ipv4_not_for_us\""},
	{DP_NET_DROP_IP_FRAGMENT, NULL, NULL, NULL, "reason=\"ipv4_fragment\""},
	{DP_NET_DROP_IP_PROTOCOL, NULL, NULL, NULL, "reason=\"ipv4_protocol\""},
	{DP_NET_DROP_HEADER_SPLIT, NULL, NULL, NULL, "reason=\"header_split\""},
	{DP_NET_DROP_ICMP_MALFORMED, NULL, NULL, NULL, "reason=\"icmp_malformed\""},
	{DP_NET_DROP_TCP_MALFORMED, NULL, NULL, NULL, "reason=\"tcp_malformed\""},
	{DP_NET_DROP_TCP_CHECKSUM, NULL, NULL, NULL, "reason=\"tcp_checksum\""},
	{DP_NET_DROP_TCP_NO_CONN, NULL, NULL, NULL, "reason=\"tcp_no_connection\""},
	{DP_NET_DROP_TCP_WINDOW, NULL, NULL, NULL, "reason=\"tcp_out_of_window\""},
	{DP_NET_DROP_TCP_PAWS, NULL, NULL, NULL, "reason=\"tcp_paws\""},
	{DP_NET_DROP_TCP_SYN, NULL, NULL, NULL, "reason=\"tcp_syn\""},
	{DP_NET_DROP_TCP_OOO, NULL, NULL, NULL, "reason=\"tcp_out_of_order_full\""},
	{DP_NET_TX_DROP_FULL, "slipstream_net_tx_dropped_total", "counter",
	 "Frames not sent, by reason.", "reason=\"device_full\""},
	{DP_NET_TX_DROP_NO_MBUF, NULL, NULL, NULL, "reason=\"no_mbuf\""},
	{DP_NET_TX_DROP_ARP, NULL, NULL, NULL, "reason=\"arp_unresolved\""},
	{DP_NET_TX_DROP_LINK_DOWN, NULL, NULL, NULL, "reason=\"link_down\""},
	{DP_NET_TCP_RETRANS_RTO, "slipstream_net_tcp_retransmits_total", "counter",
	 "TCP segments sent again, by cause: timeout (RTO), fast (NewReno), sack "
	 "(scoreboard holes), lost_retransmit (a resend found lost).", "kind=\"timeout\""},
	{DP_NET_TCP_RETRANS_FAST, NULL, NULL, NULL, "kind=\"fast\""},
	{DP_NET_TCP_RETRANS_SACK, NULL, NULL, NULL, "kind=\"sack\""},
	{DP_NET_TCP_RETRANS_LOST, NULL, NULL, NULL, "kind=\"lost_retransmit\""},
	{DP_NET_TCP_TLP, "slipstream_net_tcp_tail_loss_probes_total", "counter",
	 "Tail loss probes sent (RFC 8985 section 7).", ""},
	{DP_NET_TCP_RTO, "slipstream_net_tcp_rto_expiries_total", "counter",
	 "Retransmission timer expiries.", ""},
	{DP_NET_TCP_SACK_RECOVERIES, "slipstream_net_tcp_sack_recoveries_total", "counter",
	 "Loss recoveries entered with a SACK scoreboard (RFC 6675).", ""},
	{DP_NET_TCP_EARLY_RETRANS, "slipstream_net_tcp_early_recoveries_total", "counter",
	 "Recoveries entered early (RFC 5827 early retransmit, a probe's SACK).", ""},
	{DP_NET_TCP_ZERO_WINDOW_PROBES, "slipstream_net_tcp_zero_window_probes_total",
	 "counter", "Persist probes sent to a peer advertising a zero window.", ""},
	{DP_NET_TCP_KEEPALIVE_PROBES, "slipstream_net_tcp_keepalive_probes_total", "counter",
	 "Keepalive probes sent.", ""},
	{DP_NET_TCP_CHALLENGE_ACKS, "slipstream_net_tcp_challenge_acks_total", "counter",
	 "Challenge ACKs sent (RFC 5961).", ""},
	{DP_NET_TCP_RST_RX, "slipstream_net_tcp_resets_total", "counter",
	 "RST segments received (in) and sent (out).", "direction=\"in\""},
	{DP_NET_TCP_RST_TX, NULL, NULL, NULL, "direction=\"out\""},
	{DP_NET_TCP_OOO_QUEUED, "slipstream_net_tcp_out_of_order_segments_total", "counter",
	 "Out-of-order segments kept until the hole filled.", ""},
	{DP_NET_TCP_COOKIES_SENT, "slipstream_net_tcp_syncookies_total", "counter",
	 "SYN cookies: sent in SYN-ACKs, accepted (connections made), failed (bad or old "
	 "cookies), limited (SYNs dropped: budget of the second spent).",
	 "result=\"sent\""},
	{DP_NET_TCP_COOKIES_OK, NULL, NULL, NULL, "result=\"accepted\""},
	{DP_NET_TCP_COOKIES_FAILED, NULL, NULL, NULL, "result=\"failed\""},
	{DP_NET_TCP_COOKIES_LIMITED, NULL, NULL, NULL, "result=\"limited\""},
	{DP_NET_TCP_OPENS_ACTIVE, "slipstream_net_tcp_opens_total", "counter",
	 "TCP connections established, by side (active: we connected; passive: accepted).",
	 "side=\"active\""},
	{DP_NET_TCP_OPENS_PASSIVE, NULL, NULL, NULL, "side=\"passive\""},
	{DP_NET_CONN_SYN, "slipstream_net_tcp_connections", "gauge",
	 "TCP connections in the stack's table, by state (syn: SYN-SENT/RECEIVED; closing: "
	 "FIN-WAIT-1/2, CLOSE-WAIT, CLOSING, LAST-ACK).", "state=\"syn\""},
	{DP_NET_CONN_ESTABLISHED, NULL, NULL, NULL, "state=\"established\""},
	{DP_NET_CONN_CLOSING, NULL, NULL, NULL, "state=\"closing\""},
	{DP_NET_CONN_TIME_WAIT, NULL, NULL, NULL, "state=\"time_wait\""},
	{DP_NET_DPDK_FRAMES_INPLACE, "slipstream_dpdk_request_frames_total", "counter",
	 "Kafka request frames over DPDK: read in place in a packet buffer, or copied "
	 "because they spanned several.", "path=\"in_place\""},
	{DP_NET_DPDK_FRAMES_COPIED, NULL, NULL, NULL, "path=\"copied\""},
	{DP_NET_DPDK_TX_EXTBUF, "slipstream_dpdk_response_bytes_total", "counter",
	 "Kafka response bytes over DPDK: sent from their buffer (extbuf) or copied into "
	 "the send queue.", "path=\"extbuf\""},
	{DP_NET_DPDK_TX_COPIED, NULL, NULL, NULL, "path=\"copied\""},
	{DP_NET_DPDK_LINK_UP, "slipstream_dpdk_link_up", "gauge",
	 "1 while the DPDK port's link is up, 0 while it is down (polled every 200 ms).", ""},
	{DP_NET_TCP_RACK_LOST, "slipstream_net_tcp_rack_lost_total", "counter",
	 "Transmission-log ranges (a burst or a resend) RACK deemed lost (RFC 8985).", ""},
	{DP_NET_TCP_RACK_REO_TIMEOUTS, "slipstream_net_tcp_rack_reordering_timeouts_total",
	 "counter", "Expiries of RACK's reordering timer.", ""},
	{DP_NET_TSO_FRAMES, "slipstream_net_tso_frames_total", "counter",
	 "Frames of up to 64 KiB handed to the port's TCP segmentation offload.", ""},
	{DP_NET_TSO_SEGMENTS, "slipstream_net_tso_segments_total", "counter",
	 "Segments the TSO frames made on the wire (also counted in tx_packets).", ""},
	{DP_NET_TCP_TIME_WAIT_REUSED, "slipstream_net_tcp_time_wait_reused_total", "counter",
	 "TIME-WAIT entries ended early: the connection table was full and a new connection "
	 "needed the room.", ""},
};

_Static_assert(sizeof(net_samples) / sizeof(net_samples[0]) == DP_NET_COUNTERS,
               "every net counter rendered");

/* The slipstream_net_* and slipstream_dpdk_* families, one sample per net worker. */
static void
net_families(struct ctl_buf *out, const struct dp_metrics_snapshot *snap)
{
	const char *fam = NULL;
	bool any = false;

	for (uint32_t i = 0; i < snap->hdr.n_blocks; i++)
		any |= snap->blocks[i].net.worker != 0;
	if (!any)
		return;
	for (size_t k = 0; k < sizeof(net_samples) / sizeof(net_samples[0]); k++) {
		const struct net_sample *s = &net_samples[k];

		if (s->family != NULL) {
			fam = s->family;
			family(out, fam, s->type, s->help);
		}
		for (uint32_t i = 0; i < snap->hdr.n_blocks; i++) {
			const struct dp_metrics_net *n = &snap->blocks[i].net;

			/* The link gauge is the port's: net worker 0's copy, no worker label. */
			bool per_port = s->idx == DP_NET_DPDK_LINK_UP;

			if (n->worker == 0 || (per_port && n->worker != 1))
				continue;
			if (per_port) {
				ctl_buf_printf(out, "%s{port=\"", fam);
				put_label(out, n->port);
				ctl_buf_printf(out, "\"} %" PRIu64 "\n", n->v[s->idx]);
				continue;
			}
			ctl_buf_printf(out, "%s{port=\"", fam);
			put_label(out, n->port);
			ctl_buf_printf(out, "\",worker=\"%u\"%s%s} %" PRIu64 "\n", n->worker - 1,
			               s->label[0] != '\0' ? "," : "", s->label, n->v[s->idx]);
		}
	}
}

/* The control process's own responses (group and admin APIs): ctl_metrics_count_error(). */
static uint64_t ctl_api_errors[DP_METRICS_APIS][DP_METRICS_ERRORS];

void
ctl_metrics_count_error(int16_t api_key, int16_t code)
{
	if (api_key >= 0 && api_key < DP_METRICS_APIS && code >= -1 && code < DP_METRICS_ERRORS - 1)
		ctl_api_errors[api_key][code + 1]++;
}

/*
 * slipstream_requests_errors_total{api,error}: the dataplane's counts (@dp,
 * NULL without a segment) plus this process's own.
 */
static void
errors_family(struct ctl_buf *out, uint64_t (*dp)[DP_METRICS_ERRORS])
{
	char lbl[64];

	family(out, "slipstream_requests_errors_total", "counter",
	       "Error codes in responses, by API and error, NONE included: each ErrorCode "
	       "field (top level, per topic, partition, group) counts once, as Kafka's "
	       "RequestMetrics ErrorsPerSec.");
	for (int k = 0; k < DP_METRICS_APIS; k++) {
		for (int e = 0; e < DP_METRICS_ERRORS; e++) {
			uint64_t n = ctl_api_errors[k][e] + (dp != NULL ? dp[k][e] : 0);
			const char *name = kp_error_name((int16_t)(e - 1));

			if (n == 0)
				continue;
			api_label(lbl, sizeof(lbl), k);
			ctl_buf_printf(out, "slipstream_requests_errors_total{%serror=\"", lbl);
			if (strcmp(name, "UNKNOWN") == 0 || name[0] == '\0')
				ctl_buf_printf(out, "%d", e - 1);
			else
				put_label(out, name);
			ctl_buf_printf(out, "\"} %" PRIu64 "\n", n);
		}
	}
}

/*
 * The request hop's and the storage writers' counters, one sample per lcore:
 * entries of one family are consecutive; @label is "" or a whole label pair.
 */
struct lcore_sample {
	int idx;
	const char *family;
	const char *type;
	const char *help;  /* on the family's first entry */
	const char *label;
	uint32_t side;     /* hop: DP_METRICS_HOP_* the value belongs to */
	double scale;      /* 0: the integer as is; else multiplied (ns to seconds) */
};

static const struct lcore_sample hop_samples[] = {
	{DP_HOP_M_HOPPED, "slipstream_hop_requests_total", "counter",
	 "Requests of a net worker lcore, by path: hopped to the broker's lcore, or "
	 "served there (ApiVersions).", "path=\"hopped\"", DP_METRICS_HOP_WORKER, 0},
	{DP_HOP_M_LOCAL, NULL, NULL, NULL, "path=\"local\"", DP_METRICS_HOP_WORKER, 0},
	{DP_HOP_M_DEFERRED_DESC, "slipstream_hop_deferred_total", "counter",
	 "Requests put off (offered again later), by the resource that was short.",
	 "reason=\"descriptor\"", DP_METRICS_HOP_WORKER, 0},
	{DP_HOP_M_DEFERRED_BUF, NULL, NULL, NULL, "reason=\"frame_buffer\"",
	 DP_METRICS_HOP_WORKER, 0},
	{DP_HOP_M_DEFERRED_RING, NULL, NULL, NULL, "reason=\"ring\"", DP_METRICS_HOP_WORKER, 0},
	{DP_HOP_M_CLOSED, "slipstream_hop_closed_total", "counter",
	 "Hopped requests after which the broker closed the connection.", "",
	 DP_METRICS_HOP_WORKER, 0},
	{DP_HOP_M_LATE, "slipstream_hop_late_replies_total", "counter",
	 "Replies that came back for connections closed meanwhile, by side.",
	 "side=\"worker\"", DP_METRICS_HOP_WORKER, 0},
	{DP_HOP_M_BROKER_LATE, NULL, NULL, NULL, "side=\"broker\"", DP_METRICS_HOP_BROKER, 0},
	{DP_HOP_M_RTT_NS_SUM, "slipstream_hop_round_trip_seconds_total", "counter",
	 "Time from a request's hop out to its reply's return, summed (divide by the "
	 "hopped requests for the mean).", "", DP_METRICS_HOP_WORKER, 1e-9},
	{DP_HOP_M_RTT_NS_MAX, "slipstream_hop_round_trip_max_seconds", "gauge",
	 "The longest hop round trip since start.", "", DP_METRICS_HOP_WORKER, 1e-9},
	{DP_HOP_M_PENDING, "slipstream_hop_pending", "gauge",
	 "Hop descriptors of a net worker lcore not home (requests queued, served or "
	 "being sent).", "", DP_METRICS_HOP_WORKER, 0},
	{DP_HOP_M_OUTBOX_WAITS, "slipstream_hop_outbox_waits_total", "counter",
	 "Messages between the lcores that met a full ring and waited, by side.",
	 "side=\"worker\"", DP_METRICS_HOP_WORKER, 0},
	{DP_HOP_M_BROKER_OUTBOX_WAITS, NULL, NULL, NULL, "side=\"broker\"",
	 DP_METRICS_HOP_BROKER, 0},
	{DP_HOP_M_SERVED, "slipstream_hop_served_total", "counter",
	 "Hopped requests the broker's handlers took.", "", DP_METRICS_HOP_BROKER, 0},
	{DP_HOP_M_BROKER_DEFERRED, "slipstream_hop_handler_deferred_total", "counter",
	 "Hopped requests the broker's handlers put off (kept queued).", "",
	 DP_METRICS_HOP_BROKER, 0},
	{DP_HOP_M_QUEUED, "slipstream_hop_queued", "gauge",
	 "Hopped requests waiting in the broker's queue.", "", DP_METRICS_HOP_BROKER, 0},
	{DP_HOP_M_RESP_FREE, "slipstream_hop_response_buffers_free", "gauge",
	 "The broker side's response buffers free.", "", DP_METRICS_HOP_BROKER, 0},
};

_Static_assert(sizeof(hop_samples) / sizeof(hop_samples[0]) == DP_HOP_M_COUNTERS,
               "every hop counter rendered");

static const struct lcore_sample storage_samples[] = {
	{DP_STOR_M_CHUNKS, "slipstream_storage_cache_chunks", "gauge",
	 "Storage tail-cache chunks of the writers on an lcore, by state: all of them, "
	 "free (held by no log), reclaimable (cache only: written, unreferenced).",
	 "state=\"total\"", 0, 0},
	{DP_STOR_M_CHUNKS_FREE, NULL, NULL, NULL, "state=\"free\"", 0, 0},
	{DP_STOR_M_CHUNKS_RECLAIM, NULL, NULL, NULL, "state=\"reclaimable\"", 0, 0},
	{DP_STOR_M_STEALS, "slipstream_storage_cache_steals_total", "counter",
	 "Tail-cache chunks taken from one partition log for another (least recently used), "
	 "by kind: any chunk, or a log's active one.", "kind=\"any\"", 0, 0},
	{DP_STOR_M_ACTIVE_STEALS, NULL, NULL, NULL, "kind=\"active\"", 0, 0},
	{DP_STOR_M_LOGS, "slipstream_storage_logs_open", "gauge",
	 "Partition logs open.", "", 0, 0},
	{DP_STOR_M_OPEN_FILES, "slipstream_storage_files_open", "gauge",
	 "Segment files open.", "", 0, 0},
	{DP_STOR_M_FILE_REOPENS, "slipstream_storage_file_reopens_total", "counter",
	 "Segment files opened again after being closed for storage.max.open.files.", "", 0, 0},
	{DP_STOR_M_FILE_CLOSES, "slipstream_storage_file_closes_total", "counter",
	 "Segment files closed for storage.max.open.files.", "", 0, 0},
	{DP_STOR_M_SEGMENTS_RECYCLED, "slipstream_storage_segments_recycled_total", "counter",
	 "New segments written into a file retention deleted (storage.segment.recycle).", "",
	 0, 0},
	{DP_STOR_M_SEGMENTS_ROLLED, "slipstream_storage_segments_rolled_total", "counter",
	 "Segment rolls (a partition log's new active segment).", "", 0, 0},
	{DP_STOR_M_FLUSHES, "slipstream_storage_flushes_total", "counter",
	 "fdatasyncs of segment files completed: a rolled segment's, durable appends', "
	 "flush.ms and flush.messages (Kafka's LogFlushRateAndTimeMs).", "", 0, 0},
	{DP_STOR_M_FLUSH_NS, "slipstream_storage_flush_seconds_total", "counter",
	 "Time of those fdatasyncs from queue to completion (one linked to a write includes "
	 "the write).", "", 0, 1e-9},
	{DP_STOR_M_WRITES, "slipstream_storage_writes_total", "counter",
	 "Segment writes issued by the storage writers, by kind: any, or mapped (a small write "
	 "to a RAM-backed log copied into a mapping of the file, no system call: "
	 "storage.io.inline.map.bytes).", "kind=\"any\"", 0, 0},
	{DP_STOR_M_MAPPED_WRITES, NULL, NULL, NULL, "kind=\"mapped\"", 0, 0},
	{DP_STOR_M_READS_CACHE, "slipstream_storage_reads_total", "counter",
	 "Partition log reads (a Fetch's, one per partition with data) by where they were "
	 "served from: the tail cache (records sent in place), or a segment file.",
	 "from=\"cache\"", 0, 0},
	{DP_STOR_M_READS_FILE, NULL, NULL, NULL, "from=\"file\"", 0, 0},
	{DP_STOR_M_LOGS_FAILED, "slipstream_storage_logs_failed", "gauge",
	 "Partition logs that took an I/O error: they take no more appends, and Produce and "
	 "Fetch answer KAFKA_STORAGE_ERROR for their partitions until a restart reopens them "
	 "(Kafka counts offline log dirs).", "", 0, 0},
};

_Static_assert(sizeof(storage_samples) / sizeof(storage_samples[0]) == DP_STOR_M_COUNTERS,
               "every storage counter rendered");

/* Families of @samples over the blocks that have them (@hop: dp_metrics_hop, else storage). */
static void
lcore_families(struct ctl_buf *out, const struct dp_metrics_snapshot *snap,
               const struct lcore_sample *samples, size_t n, bool hop)
{
	const char *fam = NULL;

	for (size_t k = 0; k < n; k++) {
		const struct lcore_sample *s = &samples[k];
		bool any = false;

		if (s->family != NULL) {
			fam = s->family;
			/* A family only when some lcore has its side (several entries: the first's). */
			for (uint32_t i = 0; i < snap->hdr.n_blocks; i++) {
				const struct dp_metrics_block *b = &snap->blocks[i];

				any |= hop ? (b->hop.sides & s->side) != 0 : b->storage.writers != 0;
			}
			for (size_t j = k + 1; hop && j < n && samples[j].family == NULL; j++) {
				for (uint32_t i = 0; i < snap->hdr.n_blocks; i++)
					any |= (snap->blocks[i].hop.sides & samples[j].side) != 0;
			}
			if (!any) {
				fam = NULL;
				continue;
			}
			family(out, fam, s->type, s->help);
		}
		if (fam == NULL)
			continue;
		for (uint32_t i = 0; i < snap->hdr.n_blocks; i++) {
			const struct dp_metrics_block *b = &snap->blocks[i];
			uint64_t v;

			if (hop ? (b->hop.sides & s->side) == 0 : b->storage.writers == 0)
				continue;
			v = hop ? b->hop.v[s->idx] : b->storage.v[s->idx];
			ctl_buf_printf(out, "%s{lcore=\"%u\"%s%s} ", fam, b->lcore,
			               s->label[0] != '\0' ? "," : "", s->label);
			if (s->scale != 0)
				ctl_buf_printf(out, "%.9f\n", (double)v * s->scale);
			else
				ctl_buf_printf(out, "%" PRIu64 "\n", v);
		}
	}
}

int
ctl_metrics_render(const struct dp_metrics_snapshot *snap, ctl_metrics_offsets_fn offsets,
                   void *offsets_arg, uint64_t scrapes, struct ctl_buf *out)
{
	struct dp_metrics_block sum;
	struct tp_sum tps = {0};
	char lbl[64];
	int rc;

	family(out, "slipstream_dataplane_up", "gauge",
	       "1 when the dataplane's metrics segment was read, else 0.");
	ctl_buf_printf(out, "slipstream_dataplane_up %d\n", snap != NULL ? 1 : 0);
	family(out, "slipstream_metrics_scrapes_total", "counter",
	       "Scrapes of /metrics answered by this control process.");
	ctl_buf_printf(out, "slipstream_metrics_scrapes_total %" PRIu64 "\n", scrapes);
	if (snap != NULL) {
		const struct dp_metrics_header *h = &snap->hdr;
		double hz = h->tsc_hz ? (double)h->tsc_hz : 1.0;
		static const uint64_t long_us[DP_METRICS_LONG_N] = DP_METRICS_LONG_US;

		family(out, "slipstream_dataplane_start_time_seconds", "gauge",
		       "When the dataplane created its metrics segment (Unix time).");
		ctl_buf_printf(out, "slipstream_dataplane_start_time_seconds %.3f\n",
		               (double)h->start_unix_ms / 1e3);
		memset(&sum, 0, offsetof(struct dp_metrics_block, tps));
		for (uint32_t i = 0; i < h->n_blocks; i++) {
			const struct dp_metrics_block *b = &snap->blocks[i];

			sum.conn_accepted += b->conn_accepted;
			sum.conn_closed += b->conn_closed;
			sum.tp_overflow += b->tp_overflow;
			for (int t = 0; t < DP_METRICS_TRANSPORTS; t++) {
				sum.fetch_rec_ref[t] += b->fetch_rec_ref[t];
				sum.fetch_rec_copied[t] += b->fetch_rec_copied[t];
			}
			hist_add(&sum.storage_write, &b->storage_write);
			hist_add(&sum.fetch_wakeup, &b->fetch_wakeup);
			for (int k = 0; k < DP_METRICS_APIS; k++)
				hist_add(&sum.api[k], &b->api[k]);
			for (int k = 0; k < DP_METRICS_APIS; k++)
				for (int e = 0; e < DP_METRICS_ERRORS; e++)
					sum.api_errors[k][e] += b->api_errors[k][e];
		}
		family(out, "slipstream_requests_total", "counter",
		       "Kafka requests answered, by API.");
		for (int k = 0; k < DP_METRICS_APIS; k++) {
			if (sum.api[k].count == 0)
				continue;
			api_label(lbl, sizeof(lbl), k);
			lbl[strlen(lbl) - 1] = '\0'; /* no trailing comma alone in {} */
			ctl_buf_printf(out, "slipstream_requests_total{%s} %" PRIu64 "\n", lbl,
			               sum.api[k].count);
		}
		family(out, "slipstream_request_duration_seconds", "histogram",
		       "Time from a request's arrival to its response being queued, by API.");
		for (int k = 0; k < DP_METRICS_APIS; k++) {
			if (sum.api[k].count == 0)
				continue;
			hist_samples(out, "slipstream_request_duration_seconds",
			             api_label(lbl, sizeof(lbl), k), &sum.api[k]);
		}
		errors_family(out, sum.api_errors);
		family(out, "slipstream_connections_accepted_total", "counter",
		       "Client connections accepted.");
		ctl_buf_printf(out, "slipstream_connections_accepted_total %" PRIu64 "\n",
		               sum.conn_accepted);
		family(out, "slipstream_connections_closed_total", "counter",
		       "Client connections closed.");
		ctl_buf_printf(out, "slipstream_connections_closed_total %" PRIu64 "\n",
		               sum.conn_closed);
		family(out, "slipstream_connections_open", "gauge", "Client connections open.");
		ctl_buf_printf(out, "slipstream_connections_open %" PRIu64 "\n",
		               sum.conn_accepted >= sum.conn_closed
		                       ? sum.conn_accepted - sum.conn_closed
		                       : 0);
		family(out, "slipstream_fetch_record_bytes_total", "counter",
		       "Fetch record bytes sent, by transport: in place from the storage tail "
		       "cache (reference), or from a buffer of the broker's (copied: a disk read "
		       "or a copy).");
		for (int t = 0; t < DP_METRICS_TRANSPORTS; t++) {
			const char *tr = t == DP_METRICS_TR_KERNEL ? "kernel" : "dpdk";

			ctl_buf_printf(out,
			               "slipstream_fetch_record_bytes_total{transport=\"%s\","
			               "path=\"reference\"} %" PRIu64 "\n",
			               tr, sum.fetch_rec_ref[t]);
			ctl_buf_printf(out,
			               "slipstream_fetch_record_bytes_total{transport=\"%s\","
			               "path=\"copied\"} %" PRIu64 "\n",
			               tr, sum.fetch_rec_copied[t]);
		}
		family(out, "slipstream_storage_write_duration_seconds", "histogram",
		       "Time from a storage append's submission to its completion.");
		hist_samples(out, "slipstream_storage_write_duration_seconds", "",
		             &sum.storage_write);
		family(out, "slipstream_fetch_wakeup_duration_seconds", "histogram",
		       "Time from the append completion that woke a parked Fetch to its response "
		       "being queued.");
		hist_samples(out, "slipstream_fetch_wakeup_duration_seconds", "",
		             &sum.fetch_wakeup);
		family(out, "slipstream_lcore_busy_seconds_total", "counter",
		       "Reactor time spent in iterations that did work, by lcore.");
		for (uint32_t i = 0; i < h->n_blocks; i++)
			ctl_buf_printf(
			        out, "slipstream_lcore_busy_seconds_total{lcore=\"%u\"} %.6f\n",
			        snap->blocks[i].lcore, (double)snap->blocks[i].busy_tsc / hz);
		family(out, "slipstream_lcore_idle_seconds_total", "counter",
		       "Reactor time spent in iterations that found nothing to do, by lcore.");
		for (uint32_t i = 0; i < h->n_blocks; i++)
			ctl_buf_printf(
			        out, "slipstream_lcore_idle_seconds_total{lcore=\"%u\"} %.6f\n",
			        snap->blocks[i].lcore, (double)snap->blocks[i].idle_tsc / hz);
		family(out, "slipstream_lcore_cpu_seconds_total", "counter",
		       "CPU time the lcore's thread ran (user and system), by lcore. The busy and "
		       "idle seconds are wall time: a busy iteration the thread was preempted in "
		       "(by io_uring's workers on its core, kworkers, the host) counts as busy, and "
		       "idle sleeps and waits as idle; this is what the thread itself ran since its reactor "
		       "started. Updated every 100 ms.");
		for (uint32_t i = 0; i < h->n_blocks; i++)
			ctl_buf_printf(out, "slipstream_lcore_cpu_seconds_total{lcore=\"%u\"} %.6f\n",
			               snap->blocks[i].lcore, (double)snap->blocks[i].cpu_ns / 1e9);
		family(out, "slipstream_lcore_long_iterations_total", "counter",
		       "Reactor iterations that took at least `over` seconds, the idle sleep not "
		       "counted: the lcore's own long work, or its thread not running (preempted, or "
		       "a virtual CPU its host did not run); everything queued on the lcore waited "
		       "as long. By lcore.");
		for (uint32_t i = 0; i < h->n_blocks; i++)
			for (int k = 0; k < DP_METRICS_LONG_N; k++)
				ctl_buf_printf(out,
				               "slipstream_lcore_long_iterations_total{lcore=\"%u\","
				               "over=\"%g\"} %" PRIu64 "\n",
				               snap->blocks[i].lcore, (double)long_us[k] / 1e6,
				               snap->blocks[i].long_iters[k]);
		family(out, "slipstream_lcore_long_iteration_seconds_total", "counter",
		       "Time in reactor iterations of 100 us or more, by lcore.");
		for (uint32_t i = 0; i < h->n_blocks; i++)
			ctl_buf_printf(out,
			               "slipstream_lcore_long_iteration_seconds_total{lcore=\"%u\"} "
			               "%.6f\n",
			               snap->blocks[i].lcore, (double)snap->blocks[i].long_tsc / hz);
		family(out, "slipstream_lcore_busy_ratio", "gauge",
		       "Busy share of the reactor's time since start, by lcore (use rate() of the "
		       "seconds counters for a recent ratio).");
		for (uint32_t i = 0; i < h->n_blocks; i++) {
			const struct dp_metrics_block *b = &snap->blocks[i];
			uint64_t all = b->busy_tsc + b->idle_tsc;

			ctl_buf_printf(out, "slipstream_lcore_busy_ratio{lcore=\"%u\"} %.6f\n",
			               b->lcore, all ? (double)b->busy_tsc / (double)all : 0.0);
		}
		rc = tp_merge(snap, &tps);
		if (rc < 0)
			return rc;
		tp_family(out, &tps, "slipstream_partition_bytes_in_total", "counter",
		          "Record batch bytes appended by Produce.",
		          offsetof(struct dp_metrics_tp, bytes_in), false);
		tp_family(out, &tps, "slipstream_partition_records_in_total", "counter",
		          "Records appended by Produce.",
		          offsetof(struct dp_metrics_tp, records_in), false);
		tp_family(out, &tps, "slipstream_partition_bytes_out_total", "counter",
		          "Record batch bytes sent by Fetch.",
		          offsetof(struct dp_metrics_tp, bytes_out), false);
		tp_family(out, &tps, "slipstream_partition_records_out_total", "counter",
		          "Records sent by Fetch.", offsetof(struct dp_metrics_tp, records_out),
		          false);
		tp_family(out, &tps, "slipstream_partition_log_end_offset", "gauge",
		          "Log end offset last seen by Produce or Fetch.",
		          offsetof(struct dp_metrics_tp, log_end_offset), true);
		family(out, "slipstream_metrics_partitions_untracked_total", "counter",
		       "Events of partitions beyond the per-lcore table (not in the partition "
		       "metrics).");
		ctl_buf_printf(out, "slipstream_metrics_partitions_untracked_total %" PRIu64 "\n",
		               sum.tp_overflow);
		net_families(out, snap);
		lcore_families(out, snap, hop_samples, sizeof(hop_samples) / sizeof(hop_samples[0]),
		               true);
		lcore_families(out, snap, storage_samples,
		               sizeof(storage_samples) / sizeof(storage_samples[0]), false);
	} else {
		errors_family(out, NULL);
	}
	if (offsets != NULL) {
		struct lag_ctx x = {.b = out, .tps = &tps, .lag = false};

		family(out, "slipstream_consumergroup_committed_offset", "gauge",
		       "Committed offset of a consumer group for a partition.");
		rc = offsets(offsets_arg, lag_sample, &x);
		if (rc == 0 && snap != NULL) {
			x.lag = true;
			family(out, "slipstream_consumergroup_lag", "gauge",
			       "Log end offset minus the group's committed offset (0 when ahead).");
			rc = offsets(offsets_arg, lag_sample, &x);
		}
		if (rc < 0) {
			free(tps.items);
			return rc;
		}
	}
	free(tps.items);
	return out->err;
}

int
ctl_metrics_http(void *arg, const struct ctl_http_request *req, struct ctl_buf *body,
                 const char **content_type)
{
	struct ctl_metrics *m = arg;
	struct dp_metrics_snapshot snap;
	bool have = false;
	int rc;

	(void)req;
	if (!m->reader_open && dp_metrics_reader_open(&m->reader, m->shm_path) == 0)
		m->reader_open = true;
	if (m->reader_open && dp_metrics_snapshot(&m->reader, &snap) == 0)
		have = true;
	m->scrapes++;
	rc = ctl_metrics_render(have ? &snap : NULL, m->offsets, m->offsets_arg, m->scrapes, body);
	if (have)
		dp_metrics_snapshot_free(&snap);
	*content_type = "text/plain; version=0.0.4; charset=utf-8";
	return rc < 0 ? rc : 200;
}
