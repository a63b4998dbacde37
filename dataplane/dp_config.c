/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_config: server.properties parsing and the table of known keys.
 *
 * The parser follows java.util.Properties.load(): a natural line ends at \n,
 * \r or \r\n; a logical line continues while a natural line ends in an odd
 * number of backslashes, and the next line's leading whitespace is dropped;
 * lines whose first non-blank character is '#' or '!' are comments (and do
 * not continue); the key ends at the first unescaped '=', ':' or blank, and
 * one '=' or ':' with blanks around it separates it from the value; escapes
 * \t \n \r \f \uXXXX are decoded and any other escaped character stands for
 * itself. Values are then trimmed, as Kafka's ConfigDef does before parsing.
 *
 * Each key in keys[] points at its field in struct dp_config; defaults go
 * through the same setter as file values, so the table is checked at every
 * start. Errors are reported against the line where the logical line began.
 */
#include "dp_config.h"

#include <assert.h>
#include <ctype.h>
#include <sched.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum dp_cfg_type {
	DP_CFG_INT,  /* int64_t field, range min..max (int32 unless narrower) */
	DP_CFG_LONG, /* int64_t field */
	DP_CFG_BOOL, /* bool field: true/false, any case */
	DP_CFG_STRING,
	DP_CFG_ENUM, /* char * field, one of choices ("a|b|c"), case-insensitive */
	DP_CFG_LIST, /* char * field, comma list; each one of choices when given */
};

enum {
	DP_CFG_COMPAT = 1u << 0, /* accepted for Kafka compatibility, no effect yet */
	DP_CFG_NODEF = 1u << 1,  /* no default; the effective value is derived */
	DP_CFG_OPTIONAL = 1u << 2, /* no default and nothing derived: unset unless given */
};

struct dp_config_key {
	const char *name;
	enum dp_cfg_type type;
	size_t off;
	const char *def;      /* default as text (NULL with DP_CFG_NODEF) */
	int64_t min;
	int64_t max;
	const char *choices;  /* ENUM/LIST: "a|b|c" */
	const char *alias_of; /* name of the key this one is another name for */
	unsigned int flags;
	const char *doc;
};

#define OFF(f) offsetof(struct dp_config, f)
#define I32MAX INT32_MAX
#define I64MAX INT64_MAX

#define K_INT(n, f, d, lo, hi, doc) {n, DP_CFG_INT, OFF(f), d, lo, hi, NULL, NULL, 0, doc}
#define K_LONG(n, f, d, lo, hi, doc) {n, DP_CFG_LONG, OFF(f), d, lo, hi, NULL, NULL, 0, doc}
#define K_BOOL(n, f, d, doc) {n, DP_CFG_BOOL, OFF(f), d, 0, 0, NULL, NULL, 0, doc}
#define K_STR(n, f, d, doc) {n, DP_CFG_STRING, OFF(f), d, 0, 0, NULL, NULL, 0, doc}
#define K_ENUM(n, f, d, ch, doc) {n, DP_CFG_ENUM, OFF(f), d, 0, 0, ch, NULL, 0, doc}
#define K_LIST(n, f, d, ch, doc) {n, DP_CFG_LIST, OFF(f), d, 0, 0, ch, NULL, 0, doc}

static const struct dp_config_key keys[] = {
	/* Identity and listeners. */
	K_INT("node.id", node_id, "1", 0, I32MAX,
		"This broker's id (Kafka requires it in KRaft mode; Slipstream defaults to 1)."),
	{"broker.id", DP_CFG_INT, OFF(node_id), NULL, 0, I32MAX, NULL, "node.id", 0,
		"Older name of node.id; both may be set only to the same value."},
	K_STR("listeners", listeners, "PLAINTEXT://127.0.0.1:9092",
		"Comma list NAME://host:port to listen on; empty host = all interfaces, port 0 = any."),
	K_STR("advertised.listeners", advertised_listeners, "",
		"Addresses given to clients in Metadata; empty = the listeners."),
	K_STR("listener.security.protocol.map", listener_security_protocol_map,
		"PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
		"Listener name to security protocol; only PLAINTEXT is served for now."),
	K_STR("controller.listener.names", controller_listener_names, "",
		"Listeners used by the controller; the dataplane does not serve them."),
	{"inter.broker.listener.name", DP_CFG_STRING, OFF(inter_broker_listener_name), "", 0, 0,
		NULL, NULL, DP_CFG_COMPAT,
		"Accepted; no effect (one broker: replication is not built)."},
	{"process.roles", DP_CFG_LIST, OFF(process_roles), "broker,controller", 0, 0,
		"broker|controller", NULL, DP_CFG_COMPAT,
		"KRaft roles; accepted for compatibility (Slipstream always runs as both)."},
	{"controller.quorum.voters", DP_CFG_STRING, OFF(controller_quorum_voters), "", 0, 0, NULL,
		NULL, DP_CFG_COMPAT, "KRaft voters; accepted, used once the control process lands."},
	{"zookeeper.connect", DP_CFG_STRING, OFF(zookeeper_connect), "", 0, 0, NULL, NULL,
		DP_CFG_COMPAT, "Accepted so Kafka's stock file loads; Slipstream uses no ZooKeeper."},
	{"zookeeper.connection.timeout.ms", DP_CFG_INT, OFF(zookeeper_connection_timeout_ms),
		"18000", 0, I32MAX, NULL, NULL, DP_CFG_COMPAT, "Accepted; no effect."},

	/* Logs and topics. */
	{"log.dirs", DP_CFG_STRING, OFF(log_dirs), NULL, 0, 0, NULL, NULL, DP_CFG_NODEF,
		"Comma list of log directories; unset = log.dir."},
	K_STR("log.dir", log_dir, "/tmp/slipstream-logs", "Log directory used when log.dirs is unset."),
	K_INT("num.partitions", num_partitions, "1", 1, I32MAX,
		"Partitions of an auto-created topic."),
	K_INT("default.replication.factor", default_replication_factor, "1", 1, 32767,
		"Replicas of an auto-created topic."),
	K_INT("min.insync.replicas", min_insync_replicas, "1", 1, I32MAX,
		"Replicas that must acknowledge an acks=all write; a partition has one replica "
		"here, so its effective value is 1 (Kafka's min(min.insync.replicas, replicas))."),
	K_BOOL("auto.create.topics.enable", auto_create_topics_enable, "true",
		"Create a topic on first Metadata or Produce for it."),
	K_BOOL("delete.topic.enable", delete_topic_enable, "true", "Allow DeleteTopics."),
	{"unclean.leader.election.enable", DP_CFG_BOOL, OFF(unclean_leader_election_enable),
		"false", 0, 0, NULL, NULL, DP_CFG_COMPAT,
		"Accepted; no effect (one replica per partition, no election)."},
	K_INT("message.max.bytes", message_max_bytes, "1048588", 0, I32MAX,
		"Largest record batch accepted (after compression); topic: max.message.bytes."),
	K_INT("socket.request.max.bytes", socket_request_max_bytes, "104857600", 1, I32MAX,
		"Largest request frame; a bigger size prefix closes the connection."),
	K_INT("socket.send.buffer.bytes", socket_send_buffer_bytes, "102400", -1, I32MAX,
		"SO_SNDBUF of kernel sockets; -1 = OS default."),
	K_INT("socket.receive.buffer.bytes", socket_receive_buffer_bytes, "102400", -1, I32MAX,
		"SO_RCVBUF of kernel sockets; -1 = OS default."),
	K_LONG("connections.max.idle.ms", connections_max_idle_ms, "600000", -1, I64MAX,
		"Close a connection idle this long; -1 = never."),
	K_INT("max.incremental.fetch.session.cache.slots",
		max_incremental_fetch_session_cache_slots, "1000", 0, 1000000,
		"Fetch sessions (KIP-227) the broker keeps; 0 = every fetch is sessionless."),
	{"queued.max.requests", DP_CFG_INT, OFF(queued_max_requests), "500", 1, I32MAX, NULL, NULL,
		DP_CFG_COMPAT, "Accepted; see dataplane.conn.max.inflight."},
	{"num.network.threads", DP_CFG_INT, OFF(num_network_threads), "3", 1, I32MAX, NULL, NULL,
		DP_CFG_COMPAT, "Accepted; see dataplane.net.workers."},
	{"num.io.threads", DP_CFG_INT, OFF(num_io_threads), "8", 1, I32MAX, NULL, NULL,
		DP_CFG_COMPAT, "Accepted; see dataplane.storage.writers."},
	{"num.recovery.threads.per.data.dir", DP_CFG_INT, OFF(num_recovery_threads_per_data_dir),
		"1", 1, I32MAX, NULL, NULL, DP_CFG_COMPAT, "Accepted; no effect."},
	K_INT("log.segment.bytes", log_segment_bytes, "1073741824", 14, I32MAX,
		"Roll a segment at this size."),
	{"log.roll.ms", DP_CFG_LONG, OFF(log_roll_ms), NULL, 1, I64MAX, NULL, NULL, DP_CFG_NODEF,
		"Roll a segment at this age; unset = log.roll.hours."},
	K_INT("log.roll.hours", log_roll_hours, "168", 1, I32MAX, "Segment age in hours."),
	{"log.retention.ms", DP_CFG_LONG, OFF(log_retention_ms), NULL, -1, I64MAX, NULL, NULL,
		DP_CFG_NODEF, "Delete segments older than this; -1 = never; unset = minutes/hours."},
	{"log.retention.minutes", DP_CFG_INT, OFF(log_retention_minutes), NULL, -1, I32MAX, NULL,
		NULL, DP_CFG_OPTIONAL, "Retention in minutes, used when log.retention.ms is unset."},
	K_INT("log.retention.hours", log_retention_hours, "168", -1, I32MAX,
		"Retention in hours, used when the ms and minutes keys are unset."),
	K_LONG("log.retention.bytes", log_retention_bytes, "-1", -1, I64MAX,
		"Delete old segments while a partition is above this size; -1 = no limit."),
	K_LONG("log.retention.check.interval.ms", log_retention_check_interval_ms, "300000", 1,
		I64MAX, "How often retention runs."),
	K_LONG("log.flush.interval.messages", log_flush_interval_messages, "9223372036854775807",
		1, I64MAX, "Flush a partition after this many messages."),
	{"log.flush.interval.ms", DP_CFG_LONG, OFF(log_flush_interval_ms), NULL, 0, I64MAX, NULL,
		NULL, DP_CFG_NODEF, "Flush a partition after this age; unset = scheduler interval."},
	K_LONG("log.flush.scheduler.interval.ms", log_flush_scheduler_interval_ms,
		"9223372036854775807", 0, I64MAX, "How often flush deadlines are checked."),
	{"log.index.size.max.bytes", DP_CFG_INT, OFF(log_index_size_max_bytes), "10485760", 4,
		I32MAX, NULL, NULL, DP_CFG_COMPAT,
		"Accepted; no effect (an index file grows with its segment)."},
	K_INT("log.index.interval.bytes", log_index_interval_bytes, "4096", 0, I32MAX,
		"Bytes between offset index entries."),
	K_BOOL("log.preallocate", log_preallocate, "true",
		"Preallocate the active segment from its first append, storage.preallocate.bytes "
		"(default 64 MiB; 0: the whole segment) at a time (Kafka's default: false)."),
	K_LIST("log.cleanup.policy", log_cleanup_policy, "delete", "delete|compact",
		"delete, compact or both."),
	K_ENUM("log.message.timestamp.type", log_message_timestamp_type, "CreateTime",
		"CreateTime|LogAppendTime",
		"LogAppendTime: the broker stamps each batch with its clock at the append."),
	K_LONG("log.message.timestamp.before.max.ms", log_message_timestamp_before_max_ms,
		"9223372036854775807", 0, I64MAX,
		"CreateTime: refuse a batch with a timestamp this far behind the broker's clock "
		"(INVALID_TIMESTAMP); the maximum = no limit, then difference.max.ms applies."),
	K_LONG("log.message.timestamp.after.max.ms", log_message_timestamp_after_max_ms,
		"9223372036854775807", 0, I64MAX,
		"CreateTime: refuse a batch with a timestamp this far ahead of the broker's clock."),
	K_LONG("log.message.timestamp.difference.max.ms",
		log_message_timestamp_difference_max_ms, "9223372036854775807", 0, I64MAX,
		"Deprecated (Kafka 3.6): the before and after limits where those are unset."),
	K_ENUM("compression.type", compression_type, "producer",
		"uncompressed|zstd|lz4|snappy|gzip|producer",
		"Codec batches are stored with (rewritten at produce when theirs differs); "
		"producer: as produced."),
	K_LONG("delete.retention.ms", delete_retention_ms, "86400000", 0, I64MAX,
		"How long tombstones stay in compacted topics."),

	/* Groups, offsets, transactions. */
	K_INT("group.initial.rebalance.delay.ms", group_initial_rebalance_delay_ms, "3000", 0,
		I32MAX, "Wait for more members before the first rebalance of a group."),
	K_INT("group.min.session.timeout.ms", group_min_session_timeout_ms, "6000", 0, I32MAX,
		"Smallest session timeout a member may ask for."),
	K_INT("group.max.session.timeout.ms", group_max_session_timeout_ms, "1800000", 0, I32MAX,
		"Largest session timeout a member may ask for."),
	K_INT("offsets.retention.minutes", offsets_retention_minutes, "10080", 1, I32MAX,
		"Keep committed offsets of an empty group this long."),
	K_LONG("offsets.retention.check.interval.ms", offsets_retention_check_interval_ms, "600000",
		1, I64MAX, "How often expired committed offsets are looked for."),
	{"offsets.topic.replication.factor", DP_CFG_INT, OFF(offsets_topic_replication_factor),
		"1", 1, 32767, NULL, NULL, DP_CFG_COMPAT,
		"Accepted; no effect (one broker: __consumer_offsets has one replica)."},
	K_INT("offsets.topic.num.partitions", offsets_topic_num_partitions, "8", 1, I32MAX,
		"Partitions of __consumer_offsets (Kafka: 50; each open partition holds a "
		"storage tail-cache chunk, see storage.cache.chunks)."),
	{"transaction.state.log.replication.factor", DP_CFG_INT,
		OFF(transaction_state_log_replication_factor), "1", 1, 32767, NULL, NULL,
		DP_CFG_COMPAT, "Accepted; no effect (transactions are not served yet)."},
	{"transaction.state.log.min.isr", DP_CFG_INT, OFF(transaction_state_log_min_isr), "1", 1,
		I32MAX, NULL, NULL, DP_CFG_COMPAT,
		"Accepted; no effect (transactions are not served yet)."},
	{"transaction.state.log.num.partitions", DP_CFG_INT,
		OFF(transaction_state_log_num_partitions), "50", 1, I32MAX, NULL, NULL, DP_CFG_COMPAT,
		"Accepted; no effect (transactions are not served yet)."},
	K_LONG("producer.id.expiration.ms", producer_id_expiration_ms, "86400000", -1, I64MAX,
		"Forget an idempotent producer this long after its last batch's timestamp; "
		"-1 = never."),

	/* Slipstream's dataplane. */
	K_ENUM("dataplane.transport", dp_transport_name, "auto", "auto|kernel|dpdk",
		"kernel: sockets with epoll; dpdk: the userspace TCP stack on dataplane.port.device; "
		"auto: dpdk, or kernel (saying why) where DPDK cannot start."),
	K_STR("dataplane.port.device", dp_port_device, "net_tap0,iface=slipstream0",
		"DPDK port of the dpdk transport: a vdev string (net_tap0,iface=NAME, "
		"net_af_packet0,iface=VETH, net_memif0,...) or a PCI address bound to vfio-pci."),
	K_STR("dataplane.port.ipv4.address", dp_port_ipv4_address, "198.18.0.2",
		"IPv4 address of the DPDK port (the broker's address on that link)."),
	K_STR("dataplane.port.ipv4.netmask", dp_port_ipv4_netmask, "255.255.255.0",
		"Netmask of the DPDK port's subnet."),
	K_STR("dataplane.port.ipv4.gateway", dp_port_ipv4_gateway, "",
		"Next hop for addresses off the subnet; empty = none."),
	K_INT("dataplane.port.mtu", dp_port_mtu, "1500", 576, 9000,
		"IP MTU of the DPDK port (up to 9000, jumbo frames)."),
	K_STR("dataplane.port.tap.address", dp_port_tap_address, "198.18.0.1/24",
		"For a net_tap port: address/prefix the broker gives the kernel side of the TAP "
		"interface (brought up too); empty = leave the interface alone."),
	K_INT("dataplane.port.mbufs", dp_port_mbufs, "8192", 1024, 16777216,
		"Packet buffers per net worker (receive, headers, send queues)."),
	K_BOOL("dataplane.port.rx.checksum.trusted", dp_port_rx_cksum_trusted, "false",
		"Accept received TCP checksums unverified (veth peers send partial ones); "
		"on by itself for net_af_packet."),
	K_ENUM("dataplane.port.tx.checksum", dp_port_tx_cksum, "compute", "compute|skip",
		"TCP checksums of sent segments: compute = in software where the port does not "
		"offload them, skip = leave them uncomputed for a peer that does not verify them "
		"(net_memif ports only: a start on any other port is refused)."),
	K_INT("dataplane.tcp.send.buffer.bytes", dp_tcp_send_buffer_bytes, "262144", 16384,
		64 << 20, "DPDK transport: bytes a connection's TCP send queue holds (sent and "
		"not yet acknowledged, or waiting for the window): one connection's Fetch "
		"responses move at most this much per round trip."),
	K_ENUM("dataplane.port.tso", dp_port_tso, "auto", "auto|on|off",
		"TCP segmentation offload: auto = where the port offers it (net_tap does), on = "
		"refuse to start without it, off = the stack cuts every segment."),
	K_STR("dataplane.lcores", dp_lcores, "",
		"EAL core list the dataplane runs on (e.g. 0 or 0-3), the first being the main "
		"lcore; empty = the first CPU this process may run on."),
	K_INT("dataplane.net.workers", dp_net_workers, "1", 1, 128,
		"Net worker pollers (connections are spread over them)."),
	K_STR("dataplane.net.lcores", dp_net_lcores, "",
		"Comma list placing each net worker on an lcore; empty = round robin from the first."),
	K_INT("dataplane.storage.writers", dp_storage_writers, "1", 1, 64,
		"Storage writer pollers (partitions are spread over them)."),
	K_STR("dataplane.storage.lcores", dp_storage_lcores, "",
		"Comma list placing each storage writer; empty = round robin from the last lcore."),
	K_INT("dataplane.max.connections", dp_max_connections, "1024", 1, 1048576,
		"Connections per net worker (preallocated)."),
	K_INT("dataplane.conn.rx.buffer.bytes", dp_conn_rx_buffer_bytes, "65536", 64, 67108864,
		"Receive buffer per connection; frames that fit are parsed in place."),
	K_INT("dataplane.conn.rx.buffers", dp_conn_rx_buffers, "1024", 0, 1048576,
		"Receive buffers per net worker (kernel transport), shared: a connection holds one "
		"only while it has unparsed bytes, so idle connections cost none; 0 = one per "
		"connection, allocated up front."),
	K_INT("dataplane.conn.max.inflight", dp_conn_max_inflight, "64", 1, 65536,
		"Requests in flight per connection before reading pauses."),
	K_INT("dataplane.producers.max", dp_producers_max, "128", 1, 1048576,
		"Idempotent producers tracked per partition (144 bytes each, allocated when the "
		"partition opens); a new one then replaces the one idle the longest."),
	K_LONG("dataplane.conn.max.pending.bytes", dp_conn_max_pending_bytes, "4194304", 1, I64MAX,
		"Unsent response bytes per connection before reading pauses."),
	K_INT("dataplane.frame.large.bytes", dp_frame_large_bytes, "16777216", 64, I32MAX,
		"Size of a buffer for a frame larger than the receive buffer; caps the frame size."),
	K_INT("dataplane.frame.large.buffers", dp_frame_large_buffers, "4", 0, 65536,
		"Large-frame buffers per net worker; a connection waits while none is free."),
	K_INT("dataplane.response.buffer.bytes", dp_response_buffer_bytes, "65536", 256,
		67108864, "Size of one pooled response buffer."),
	K_INT("dataplane.response.buffers", dp_response_buffers, "512", 16, 16777216,
		"Response buffers per net worker (a DPDK mempool)."),
	K_INT("dataplane.poll.idle.sleep.us", dp_poll_idle_sleep_us, "100", 0, 1000000,
		"Sleep this long in an lcore idle for over 1 ms; 0 = always spin."),
	K_INT("dataplane.reactor.stall.log.us", dp_reactor_stall_log_us, "0", 0, 10000000,
		"Log every reactor iteration at least this long, with its end on "
		"CLOCK_MONOTONIC (scripts/bench lines them up with the load "
		"generator's); 0 = off."),
	K_INT("dataplane.shutdown.timeout.ms", dp_shutdown_timeout_ms, "10000", 0, I32MAX,
		"On SIGTERM, wait this long for in-flight requests before closing."),
	K_ENUM("dataplane.log.level", dp_log_level, "info", "error|warn|info|debug",
		"Least severe level logged."),
	K_STR("dpdk.eal.args", dpdk_eal_args, "",
		"Extra EAL arguments, blank separated, added after Slipstream's own."),
	K_ENUM("dpdk.hugepages", dpdk_hugepages, "auto", "auto|on|off",
		"auto: hugepages when free ones exist, else --no-huge; on: require them."),
	K_INT("dpdk.memory.mb", dpdk_memory_mb, "512", 16, 1048576,
		"Memory for DPDK in MiB when running without hugepages (-m)."),
	K_STR("dpdk.file.prefix", dpdk_file_prefix, "",
		"EAL --file-prefix; empty = slipstream-<pid>, so instances do not collide."),
	K_STR("metrics.shm.path", metrics_shm_path, "",
		"Shared-memory file of the dataplane's counters, read by the control process "
		"for /metrics; empty = /dev/shm/slipstream-metrics-<node.id>."),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))
static_assert(NKEYS <= DP_CONFIG_MAX_KEYS, "raise DP_CONFIG_MAX_KEYS");

static void
seterr(char *err, size_t errlen, const char *where, unsigned int line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void
seterr(char *err, size_t errlen, const char *where, unsigned int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL || errlen == 0)
		return;
	if (line > 0)
		n = snprintf(err, errlen, "%s:%u: ", where, line);
	else
		n = snprintf(err, errlen, "%s: ", where);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static const struct dp_config_key *
key_find(const char *name, size_t *idx)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].name, name) == 0) {
			*idx = i;
			return &keys[i];
		}
	}
	return NULL;
}

static int64_t *
fld_i64(struct dp_config *cfg, const struct dp_config_key *k)
{
	return (int64_t *)(void *)((char *)cfg + k->off);
}

static bool *
fld_bool(struct dp_config *cfg, const struct dp_config_key *k)
{
	return (bool *)(void *)((char *)cfg + k->off);
}

static char **
fld_str(struct dp_config *cfg, const struct dp_config_key *k)
{
	return (char **)(void *)((char *)cfg + k->off);
}

/* Is @word (of @len bytes) one of "a|b|c"? Matching ignores case; *canon gets the table spelling. */
static bool
choice_match(const char *choices, const char *word, size_t len, const char **canon, size_t *clen)
{
	const char *p = choices;

	while (*p != '\0') {
		const char *bar = strchr(p, '|');
		size_t n = bar != NULL ? (size_t)(bar - p) : strlen(p);

		if (n == len && strncasecmp(p, word, len) == 0) {
			*canon = p;
			*clen = n;
			return true;
		}
		p += n;
		if (*p == '|')
			p++;
	}
	return false;
}

static int
parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (*s == '\0')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	*out = v;
	return 0;
}

/* Store a string value, owned by @cfg. */
static int
store_str(char **slot, const char *v, size_t len)
{
	char *copy = malloc(len + 1);

	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, v, len);
	copy[len] = '\0';
	free(*slot);
	*slot = copy;
	return 0;
}

/* Apply @raw (trimmed here) to key @k. */
static int
key_apply(struct dp_config *cfg, const struct dp_config_key *k, const char *raw, const char *where,
	unsigned int line, char *err, size_t errlen)
{
	size_t len = strlen(raw);
	const char *v = raw;
	char buf[64];
	int64_t n;
	int rc;

	while (len > 0 && isspace((unsigned char)*v)) {
		v++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)v[len - 1]))
		len--;

	switch (k->type) {
	case DP_CFG_INT:
	case DP_CFG_LONG:
		if (len >= sizeof(buf)) {
			seterr(err, errlen, where, line, "%s: '%.*s' is not an integer", k->name,
				(int)(len > 40 ? 40 : len), v);
			return -EINVAL;
		}
		memcpy(buf, v, len);
		buf[len] = '\0';
		rc = parse_i64(buf, &n);
		if (rc == -ERANGE || (rc == 0 && k->type == DP_CFG_INT &&
					     (n > INT32_MAX || n < INT32_MIN))) {
			seterr(err, errlen, where, line, "%s: '%s' does not fit in a%s", k->name, buf,
				k->type == DP_CFG_INT ? "n int (32 bits)" : " long (64 bits)");
			return -EINVAL;
		}
		if (rc < 0) {
			seterr(err, errlen, where, line, "%s: '%s' is not an integer", k->name, buf);
			return -EINVAL;
		}
		if (n < k->min || n > k->max) {
			seterr(err, errlen, where, line,
				"%s: %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", k->name, n,
				k->min, k->max);
			return -EINVAL;
		}
		if (k->alias_of != NULL && cfg->set_line[0] != 0 && *fld_i64(cfg, k) != n) {
			/* broker.id after node.id (or the reverse: see dp_config_set()). */
			seterr(err, errlen, where, line, "%s=%" PRId64 " differs from %s=%" PRId64,
				k->name, n, k->alias_of, *fld_i64(cfg, k));
			return -EINVAL;
		}
		*fld_i64(cfg, k) = n;
		return 0;
	case DP_CFG_BOOL:
		if (len == 4 && strncasecmp(v, "true", 4) == 0) {
			*fld_bool(cfg, k) = true;
		} else if (len == 5 && strncasecmp(v, "false", 5) == 0) {
			*fld_bool(cfg, k) = false;
		} else {
			seterr(err, errlen, where, line, "%s: '%.*s' is not true or false", k->name,
				(int)(len > 40 ? 40 : len), v);
			return -EINVAL;
		}
		return 0;
	case DP_CFG_ENUM: {
		const char *canon;
		size_t clen;

		if (!choice_match(k->choices, v, len, &canon, &clen)) {
			seterr(err, errlen, where, line, "%s: '%.*s' is not one of %s", k->name,
				(int)(len > 40 ? 40 : len), v, k->choices);
			return -EINVAL;
		}
		return store_str(fld_str(cfg, k), canon, clen);
	}
	case DP_CFG_LIST:
		if (k->choices != NULL) {
			const char *p = v;
			const char *end = v + len;

			while (p < end) {
				const char *comma = memchr(p, ',', (size_t)(end - p));
				const char *e = comma != NULL ? comma : end;
				const char *canon;
				size_t clen;

				while (p < e && isspace((unsigned char)*p))
					p++;
				while (e > p && isspace((unsigned char)e[-1]))
					e--;
				if (!choice_match(k->choices, p, (size_t)(e - p), &canon, &clen)) {
					seterr(err, errlen, where, line,
						"%s: '%.*s' is not one of %s", k->name,
						(int)((e - p) > 40 ? 40 : (e - p)), p, k->choices);
					return -EINVAL;
				}
				p = comma != NULL ? comma + 1 : end;
			}
		}
		return store_str(fld_str(cfg, k), v, len);
	case DP_CFG_STRING:
		return store_str(fld_str(cfg, k), v, len);
	}
	return -EINVAL;
}

int
dp_config_delegate(struct dp_config *cfg, const char *prefix, dp_config_delegate_fn fn,
	void *arg)
{
	if (cfg->n_delegates == DP_CONFIG_MAX_DELEGATES)
		return -ENOSPC;
	cfg->delegate[cfg->n_delegates].prefix = prefix;
	cfg->delegate[cfg->n_delegates].fn = fn;
	cfg->delegate[cfg->n_delegates].arg = arg;
	cfg->n_delegates++;
	return 0;
}

/* A key not in the table: another module's (by prefix), or unknown. */
static int
delegate_set(struct dp_config *cfg, const char *key, const char *value, const char *where,
	unsigned int line, char *err, size_t errlen)
{
	size_t klen = strlen(key);
	size_t vlen;
	char *entry;
	int rc;

	while (isspace((unsigned char)*value))
		value++;
	vlen = strlen(value);
	while (vlen > 0 && isspace((unsigned char)value[vlen - 1]))
		vlen--;
	for (unsigned int i = 0; i < cfg->n_delegates; i++) {
		const char *prefix = cfg->delegate[i].prefix;

		if (strncmp(key, prefix, strlen(prefix)) != 0)
			continue;
		if (cfg->finished) {
			seterr(err, errlen, where, line, "%s: the configuration is already in use",
				key);
			return -EINVAL;
		}
		entry = malloc(klen + vlen + 2);
		if (entry == NULL)
			return -ENOMEM;
		memcpy(entry, key, klen);
		entry[klen] = '=';
		memcpy(entry + klen + 1, value, vlen);
		entry[klen + 1 + vlen] = '\0';
		rc = cfg->delegate[i].fn(cfg->delegate[i].arg, key, entry + klen + 1);
		if (rc == -ENOENT) {
			free(entry);
			break;
		}
		if (rc < 0) {
			seterr(err, errlen, where, line, "%s: bad value '%.*s'", key,
				(int)(vlen > 40 ? 40 : vlen), value);
			free(entry);
			return -EINVAL;
		}
		/* Kept for --print-config; a key set twice keeps its last value. */
		for (unsigned int j = 0; j < cfg->n_delegated; j++) {
			if (strncmp(cfg->delegated[j], key, klen) == 0 &&
				cfg->delegated[j][klen] == '=') {
				free(cfg->delegated[j]);
				cfg->delegated[j] = entry;
				return 0;
			}
		}
		if (cfg->n_delegated == DP_CONFIG_MAX_DELEGATED) {
			seterr(err, errlen, where, line, "more than %d %s* keys",
				DP_CONFIG_MAX_DELEGATED, prefix);
			free(entry);
			return -EINVAL;
		}
		cfg->delegated[cfg->n_delegated++] = entry;
		return 0;
	}
	seterr(err, errlen, where, line, "unknown key '%s'", key);
	return -EINVAL;
}

int
dp_config_set(struct dp_config *cfg, const char *key, const char *value, const char *where,
	unsigned int line, char *err, size_t errlen)
{
	const struct dp_config_key *k;
	size_t idx = 0;
	int rc;

	k = key_find(key, &idx);
	if (k == NULL)
		return delegate_set(cfg, key, value, where, line, err, errlen);
	if (cfg->finished) {
		seterr(err, errlen, where, line, "%s: the configuration is already in use", key);
		return -EINVAL;
	}
	/* node.id given after broker.id must agree with it too. */
	if (idx == 0 && cfg->set_line[1] != 0) {
		const struct dp_config_key *alias = &keys[1];
		int64_t before = cfg->node_id;

		rc = key_apply(cfg, k, value, where, line, err, errlen);
		if (rc < 0)
			return rc;
		if (cfg->node_id != before) {
			seterr(err, errlen, where, line, "%s=%" PRId64 " differs from %s=%" PRId64,
				k->name, cfg->node_id, alias->name, before);
			cfg->node_id = before;
			return -EINVAL;
		}
	} else {
		rc = key_apply(cfg, k, value, where, line, err, errlen);
		if (rc < 0)
			return rc;
	}
	cfg->set_line[idx] = line > 0 ? line : 1;
	return 0;
}

int
dp_config_init(struct dp_config *cfg)
{
	char err[DP_CONFIG_ERR_LEN];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NKEYS; i++) {
		const struct dp_config_key *k = &keys[i];
		int rc;

		if (k->def == NULL)
			continue;
		rc = key_apply(cfg, k, k->def, "default", 0, err, sizeof(err));
		if (rc < 0) {
			/* A bad table entry is a bug; say which one. */
			fprintf(stderr, "slipstream: bad default: %s\n", err);
			dp_config_free(cfg);
			return rc;
		}
	}
	return 0;
}

void
dp_config_free(struct dp_config *cfg)
{
	for (unsigned int i = 0; i < cfg->n_delegated; i++) {
		free(cfg->delegated[i]);
		cfg->delegated[i] = NULL;
	}
	cfg->n_delegated = 0;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct dp_config_key *k = &keys[i];

		if (k->type == DP_CFG_STRING || k->type == DP_CFG_ENUM || k->type == DP_CFG_LIST) {
			free(*fld_str(cfg, k));
			*fld_str(cfg, k) = NULL;
		}
	}
}

/* --- the Properties reader --- */

struct prop_buf {
	char *p;
	size_t len;
	size_t cap;
};

static int
pb_put(struct prop_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 128;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		np = realloc(b->p, cap);
		if (np == NULL)
			return -ENOMEM;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\f';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Append code point @cp as UTF-8 (Java's chars are UTF-16 units; a lone unit is encoded as is). */
static int
pb_put_utf8(struct prop_buf *b, unsigned int cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return pb_put(b, u, n);
}

/*
 * Decode escapes of @s[0..n) into @out (Properties.loadConvert). A \uXXXX
 * pair of UTF-16 surrogates becomes one code point.
 */
static int
unescape(const char *s, size_t n, struct prop_buf *out, const char **bad)
{
	size_t i = 0;
	unsigned int hi_surrogate = 0;

	out->len = 0;
	if (pb_put(out, "", 0) < 0)
		return -ENOMEM;
	while (i < n) {
		char c = s[i++];
		int rc;

		if (hi_surrogate != 0 && !(c == '\\' && i < n && s[i] == 'u')) {
			/* An unpaired high surrogate is kept as its own 3-byte sequence. */
			rc = pb_put_utf8(out, hi_surrogate);
			hi_surrogate = 0;
			if (rc < 0)
				return rc;
		}
		if (c != '\\' || i >= n) {
			/* A lone trailing backslash was a continuation marker; it never gets here. */
			rc = pb_put(out, &c, 1);
		} else {
			c = s[i++];
			switch (c) {
			case 't':
				rc = pb_put(out, "\t", 1);
				break;
			case 'n':
				rc = pb_put(out, "\n", 1);
				break;
			case 'r':
				rc = pb_put(out, "\r", 1);
				break;
			case 'f':
				rc = pb_put(out, "\f", 1);
				break;
			case 'u': {
				unsigned int cp = 0;

				if (n - i < 4) {
					*bad = "malformed \\uxxxx escape";
					return -EINVAL;
				}
				for (int j = 0; j < 4; j++) {
					int h = hexval(s[i + (size_t)j]);

					if (h < 0) {
						*bad = "malformed \\uxxxx escape";
						return -EINVAL;
					}
					cp = cp << 4 | (unsigned int)h;
				}
				i += 4;
				if (cp >= 0xdc00 && cp <= 0xdfff && hi_surrogate != 0) {
					cp = 0x10000 + ((hi_surrogate - 0xd800) << 10) + (cp - 0xdc00);
					hi_surrogate = 0;
				} else if (hi_surrogate != 0) {
					rc = pb_put_utf8(out, hi_surrogate);
					hi_surrogate = 0;
					if (rc < 0)
						return rc;
				}
				if (cp >= 0xd800 && cp <= 0xdbff) {
					hi_surrogate = cp; /* wait for its low half */
					continue;
				}
				rc = pb_put_utf8(out, cp);
				break;
			}
			default:
				rc = pb_put(out, &c, 1);
				break;
			}
		}
		if (rc < 0)
			return rc;
	}
	if (hi_surrogate != 0)
		return pb_put_utf8(out, hi_surrogate);
	return 0;
}

int
dp_config_load_string(struct dp_config *cfg, const char *name, const char *text, size_t len,
	char *err, size_t errlen)
{
	struct prop_buf logical = {0};
	struct prop_buf key = {0};
	struct prop_buf val = {0};
	unsigned int lineno = 0; /* natural line number of the last line read */
	size_t pos = 0;
	int rc = 0;

	while (pos < len) {
		unsigned int start_line;
		bool cont = true;
		bool first = true;

		logical.len = 0;
		if ((rc = pb_put(&logical, "", 0)) < 0)
			goto out;
		start_line = lineno + 1;
		/* Gather one logical line from natural lines. */
		while (cont && pos < len) {
			size_t b = pos;
			size_t e;
			size_t bs = 0;

			while (pos < len && text[pos] != '\n' && text[pos] != '\r')
				pos++;
			e = pos;
			if (pos < len && text[pos] == '\r')
				pos++;
			if (pos < len && text[pos] == '\n' && (pos == e || text[pos - 1] == '\r'))
				pos++;
			lineno++;
			while (b < e && is_blank(text[b]))
				b++;
			if (first) {
				if (b == e) {
					start_line = lineno + 1; /* blank line */
					continue;
				}
				if (text[b] == '#' || text[b] == '!') {
					start_line = lineno + 1; /* comments never continue */
					continue;
				}
			}
			first = false;
			for (size_t i = e; i > b && text[i - 1] == '\\'; i--)
				bs++;
			cont = (bs % 2) == 1;
			if ((rc = pb_put(&logical, text + b, e - b - (cont ? 1 : 0))) < 0)
				goto out;
		}
		if (first)
			break; /* only blank lines or comments were left */

		/* Split the key from the value. */
		{
			const char *s = logical.p;
			size_t n = logical.len;
			size_t i = 0;
			size_t kend;
			size_t vstart;
			const char *bad = NULL;

			while (i < n) {
				char c = s[i];

				if (c == '\\') {
					i += 2;
					continue;
				}
				if (c == '=' || c == ':' || is_blank(c))
					break;
				i++;
			}
			if (i > n)
				i = n;
			kend = i;
			while (i < n && is_blank(s[i]))
				i++;
			if (i < n && (s[i] == '=' || s[i] == ':')) {
				i++;
				while (i < n && is_blank(s[i]))
					i++;
			}
			vstart = i;
			rc = unescape(s, kend, &key, &bad);
			if (rc == 0)
				rc = unescape(s + vstart, n - vstart, &val, &bad);
			if (rc == -EINVAL) {
				seterr(err, errlen, name, start_line, "%s", bad);
				goto out;
			}
			if (rc < 0)
				goto out;
			if (key.len != strlen(key.p) || val.len != strlen(val.p)) {
				seterr(err, errlen, name, start_line, "NUL character in a key or value");
				rc = -EINVAL;
				goto out;
			}
			rc = dp_config_set(cfg, key.p, val.p, name, start_line, err, errlen);
			if (rc < 0)
				goto out;
		}
	}
out:
	if (rc == -ENOMEM)
		seterr(err, errlen, name, 0, "out of memory");
	free(logical.p);
	free(key.p);
	free(val.p);
	return rc;
}

int
dp_config_load_file(struct dp_config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	size_t len = 0;
	size_t cap = 0;
	int rc = 0;

	if (f == NULL) {
		rc = -errno;
		seterr(err, errlen, path, 0, "%s", strerror(-rc));
		return rc;
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *nt = realloc(text, ncap);

			if (nt == NULL) {
				rc = -ENOMEM;
				seterr(err, errlen, path, 0, "out of memory");
				goto out;
			}
			text = nt;
			cap = ncap;
		}
		n = fread(text + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f)) {
				rc = -EIO;
				seterr(err, errlen, path, 0, "read error");
				goto out;
			}
			break;
		}
	}
	rc = dp_config_load_string(cfg, path, text, len, err, errlen);
out:
	free(text);
	fclose(f);
	return rc;
}

/* --- listeners --- */

static const char *
map_protocol(const struct dp_config *cfg, const char *name, size_t nlen, size_t *plen)
{
	const char *p = cfg->listener_security_protocol_map;

	while (p != NULL && *p != '\0') {
		const char *comma = strchr(p, ',');
		const char *e = comma != NULL ? comma : p + strlen(p);
		const char *colon = memchr(p, ':', (size_t)(e - p));

		while (p < e && isspace((unsigned char)*p))
			p++;
		if (colon != NULL) {
			const char *ne = colon;

			while (ne > p && isspace((unsigned char)ne[-1]))
				ne--;
			if ((size_t)(ne - p) == nlen && strncasecmp(p, name, nlen) == 0) {
				const char *v = colon + 1;
				const char *ve = e;

				while (v < ve && isspace((unsigned char)*v))
					v++;
				while (ve > v && isspace((unsigned char)ve[-1]))
					ve--;
				*plen = (size_t)(ve - v);
				return v;
			}
		}
		p = comma != NULL ? comma + 1 : e;
	}
	return NULL;
}

static bool
name_in_list(const char *list, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = list;

	while (p != NULL && *p != '\0') {
		const char *comma = strchr(p, ',');
		const char *e = comma != NULL ? comma : p + strlen(p);

		while (p < e && isspace((unsigned char)*p))
			p++;
		while (e > p && isspace((unsigned char)e[-1]))
			e--;
		if ((size_t)(e - p) == nlen && strncasecmp(p, name, nlen) == 0)
			return true;
		p = comma != NULL ? comma + 1 : e;
	}
	return false;
}

int
dp_config_parse_listeners(const struct dp_config *cfg, const char *value, struct dp_listener *out,
	bool advertised, char *err, size_t errlen)
{
	const char *p = value;
	int n = 0;

	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		const char *e = comma != NULL ? comma : p + strlen(p);
		const char *sep;
		const char *hp;
		const char *colon;
		const char *proto;
		size_t plen;
		struct dp_listener *l;
		size_t nlen;
		char portbuf[8];
		int64_t port;

		while (p < e && isspace((unsigned char)*p))
			p++;
		while (e > p && isspace((unsigned char)e[-1]))
			e--;
		if (p == e) {
			snprintf(err, errlen, "empty entry in '%s'", value);
			return -EINVAL;
		}
		if (n == DP_CONFIG_MAX_LISTENERS) {
			snprintf(err, errlen, "more than %d listeners", DP_CONFIG_MAX_LISTENERS);
			return -EINVAL;
		}
		l = &out[n];
		memset(l, 0, sizeof(*l));
		sep = strstr(p, "://");
		if (sep == NULL || sep >= e || sep == p) {
			snprintf(err, errlen, "'%.*s' is not NAME://host:port", (int)(e - p), p);
			return -EINVAL;
		}
		nlen = (size_t)(sep - p);
		if (nlen >= sizeof(l->name)) {
			snprintf(err, errlen, "listener name '%.*s' is too long", (int)nlen, p);
			return -EINVAL;
		}
		for (size_t i = 0; i < nlen; i++) {
			char c = p[i];

			if (!isalnum((unsigned char)c) && c != '_' && c != '-') {
				snprintf(err, errlen, "listener name '%.*s' has '%c'", (int)nlen, p, c);
				return -EINVAL;
			}
			l->name[i] = (char)toupper((unsigned char)c);
		}
		hp = sep + 3;
		/* [v6]:port, host:port or :port. */
		if (hp < e && *hp == '[') {
			const char *rb = memchr(hp, ']', (size_t)(e - hp));

			if (rb == NULL || rb + 1 >= e || rb[1] != ':') {
				snprintf(err, errlen, "'%.*s' has a bad [IPv6]:port", (int)(e - p), p);
				return -EINVAL;
			}
			colon = rb + 1;
			if ((size_t)(rb - hp - 1) >= sizeof(l->host)) {
				snprintf(err, errlen, "host in '%.*s' is too long", (int)(e - p), p);
				return -EINVAL;
			}
			memcpy(l->host, hp + 1, (size_t)(rb - hp - 1));
		} else {
			colon = NULL;
			for (const char *q = e; q > hp; q--) {
				if (q[-1] == ':') {
					colon = q - 1;
					break;
				}
			}
			if (colon == NULL) {
				snprintf(err, errlen, "'%.*s' has no port", (int)(e - p), p);
				return -EINVAL;
			}
			if ((size_t)(colon - hp) >= sizeof(l->host)) {
				snprintf(err, errlen, "host in '%.*s' is too long", (int)(e - p), p);
				return -EINVAL;
			}
			memcpy(l->host, hp, (size_t)(colon - hp));
			if (memchr(l->host, ':', strlen(l->host)) != NULL) {
				snprintf(err, errlen, "IPv6 host in '%.*s' needs [brackets]",
					(int)(e - p), p);
				return -EINVAL;
			}
		}
		if ((size_t)(e - colon - 1) == 0 || (size_t)(e - colon - 1) >= sizeof(portbuf)) {
			snprintf(err, errlen, "'%.*s' has a bad port", (int)(e - p), p);
			return -EINVAL;
		}
		memcpy(portbuf, colon + 1, (size_t)(e - colon - 1));
		portbuf[e - colon - 1] = '\0';
		if (parse_i64(portbuf, &port) < 0 || port < 0 || port > 65535 ||
			(advertised && port == 0)) {
			snprintf(err, errlen, "'%.*s' has a bad port '%s'", (int)(e - p), p, portbuf);
			return -EINVAL;
		}
		l->port = (uint16_t)port;
		proto = map_protocol(cfg, l->name, nlen, &plen);
		if (proto == NULL && strcmp(l->name, "PLAINTEXT") != 0) {
			snprintf(err, errlen,
				"listener %s is not in listener.security.protocol.map", l->name);
			return -EINVAL;
		}
		if (proto == NULL) {
			proto = "PLAINTEXT";
			plen = 9;
		}
		if (plen >= sizeof(l->protocol))
			plen = sizeof(l->protocol) - 1;
		memcpy(l->protocol, proto, plen);
		l->controller = name_in_list(cfg->controller_listener_names, l->name);
		for (int j = 0; j < n; j++) {
			if (strcmp(out[j].name, l->name) == 0) {
				snprintf(err, errlen, "listener %s is named twice", l->name);
				return -EINVAL;
			}
		}
		n++;
		p = comma != NULL ? comma + 1 : e;
		if (comma != NULL && *p == '\0') {
			snprintf(err, errlen, "trailing ',' in '%s'", value);
			return -EINVAL;
		}
	}
	return n;
}

static unsigned int
line_of(const struct dp_config *cfg, const char *keyname)
{
	size_t idx = 0;

	if (key_find(keyname, &idx) == NULL)
		return 0;
	return cfg->set_line[idx];
}

int
dp_config_parse_corelist(const char *s, unsigned int *out, unsigned int max, char *err,
	size_t errlen)
{
	bool seen[DP_CONFIG_MAX_LCORES * 8] = {false};
	const unsigned int limit = DP_CONFIG_MAX_LCORES * 8;
	const char *p = s;
	unsigned int n = 0;

	while (*p != '\0') {
		char *end;
		unsigned long lo;
		unsigned long hi;

		while (isspace((unsigned char)*p))
			p++;
		if (!isdigit((unsigned char)*p)) {
			snprintf(err, errlen, "'%s' is not a core list such as 0-3,6", s);
			return -EINVAL;
		}
		lo = strtoul(p, &end, 10);
		hi = lo;
		p = end;
		if (*p == '-') {
			p++;
			if (!isdigit((unsigned char)*p)) {
				snprintf(err, errlen, "'%s' is not a core list such as 0-3,6", s);
				return -EINVAL;
			}
			hi = strtoul(p, &end, 10);
			p = end;
		}
		while (isspace((unsigned char)*p))
			p++;
		if (*p == ',') {
			p++;
			if (*p == '\0') {
				snprintf(err, errlen, "trailing ',' in '%s'", s);
				return -EINVAL;
			}
		} else if (*p != '\0') {
			snprintf(err, errlen, "'%s' is not a core list such as 0-3,6", s);
			return -EINVAL;
		}
		if (hi < lo || hi >= limit) {
			snprintf(err, errlen, "bad range %lu-%lu in '%s'", lo, hi, s);
			return -EINVAL;
		}
		for (unsigned long c = lo; c <= hi; c++)
			seen[c] = true;
	}
	for (unsigned int c = 0; c < limit; c++) {
		if (!seen[c])
			continue;
		if (n == max) {
			snprintf(err, errlen, "more than %u cores in '%s'", max, s);
			return -EINVAL;
		}
		out[n++] = c;
	}
	if (n == 0) {
		snprintf(err, errlen, "empty core list");
		return -EINVAL;
	}
	return (int)n;
}

/* Place @count workers: from @list when given, else round robin over the lcores. */
static int
place_role(struct dp_config *cfg, const char *keyname, const char *list, int64_t count,
	bool from_last, unsigned int *out, const char *where, char *err, size_t errlen)
{
	unsigned int ids[DP_CONFIG_MAX_LCORES];
	int n;

	if (list[0] == '\0') {
		for (int64_t i = 0; i < count; i++) {
			unsigned int k = (unsigned int)(i % cfg->n_lcores);

			out[i] = from_last ? cfg->lcore[cfg->n_lcores - 1 - k] : cfg->lcore[k];
		}
		return 0;
	}
	/* An explicit placement may repeat an lcore, so split by hand rather than as a core list. */
	n = 0;
	for (const char *p = list; *p != '\0';) {
		char *end;
		unsigned long v;
		bool ok = false;

		while (isspace((unsigned char)*p))
			p++;
		if (!isdigit((unsigned char)*p)) {
			seterr(err, errlen, where, line_of(cfg, keyname),
				"%s: '%s' is not a comma list of lcore ids", keyname, list);
			return -EINVAL;
		}
		v = strtoul(p, &end, 10);
		p = end;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == ',')
			p++;
		else if (*p != '\0') {
			seterr(err, errlen, where, line_of(cfg, keyname),
				"%s: '%s' is not a comma list of lcore ids", keyname, list);
			return -EINVAL;
		}
		for (unsigned int j = 0; j < cfg->n_lcores; j++)
			ok |= cfg->lcore[j] == v;
		if (!ok) {
			seterr(err, errlen, where, line_of(cfg, keyname),
				"%s: lcore %lu is not in dataplane.lcores", keyname, v);
			return -EINVAL;
		}
		if (n == DP_CONFIG_MAX_LCORES)
			break;
		ids[n++] = (unsigned int)v;
	}
	if (n != count) {
		seterr(err, errlen, where, line_of(cfg, keyname),
			"%s: %d lcores given for %" PRId64 " workers", keyname, n, count);
		return -EINVAL;
	}
	memcpy(out, ids, sizeof(ids[0]) * (size_t)n);
	return 0;
}

static int
dp_config_check_lcores(struct dp_config *cfg, const char *where, char *err, size_t errlen)
{
	char why[DP_CONFIG_ERR_LEN];
	int n;
	int rc;

	if (cfg->dp_lcores[0] == '\0') {
		/* The first CPU we may run on (a container's cpuset need not hold CPU 0). */
		cpu_set_t set;
		char first[16] = "0";

		if (sched_getaffinity(0, sizeof(set), &set) == 0) {
			for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
				if (CPU_ISSET(cpu, &set)) {
					snprintf(first, sizeof(first), "%d", cpu);
					break;
				}
			}
		}
		if (store_str(&cfg->dp_lcores, first, strlen(first)) < 0)
			return -ENOMEM;
	}
	n = dp_config_parse_corelist(cfg->dp_lcores, cfg->lcore, DP_CONFIG_MAX_LCORES, why,
		sizeof(why));
	if (n < 0) {
		seterr(err, errlen, where, line_of(cfg, "dataplane.lcores"), "dataplane.lcores: %s",
			why);
		return -EINVAL;
	}
	cfg->n_lcores = (unsigned int)n;
	rc = place_role(cfg, "dataplane.net.lcores", cfg->dp_net_lcores, cfg->dp_net_workers,
		false, cfg->net_lcore, where, err, errlen);
	if (rc < 0)
		return rc;
	return place_role(cfg, "dataplane.storage.lcores", cfg->dp_storage_lcores,
		cfg->dp_storage_writers, true, cfg->storage_lcore, where, err, errlen);
}

int
dp_config_finish(struct dp_config *cfg, const char *where, char *err, size_t errlen)
{
	char why[DP_CONFIG_ERR_LEN];
	size_t idx = 0;
	int n;
	int rc;

	/* log.dirs wins over log.dir. */
	key_find("log.dirs", &idx);
	if (cfg->set_line[idx] == 0 || cfg->log_dirs == NULL || cfg->log_dirs[0] == '\0') {
		if (store_str(&cfg->log_dirs, cfg->log_dir, strlen(cfg->log_dir)) < 0)
			return -ENOMEM;
	}
	/* ms wins over minutes wins over hours (Kafka's LogConfig rules). */
	key_find("log.retention.ms", &idx);
	if (cfg->set_line[idx] == 0) {
		size_t midx = 0;

		key_find("log.retention.minutes", &midx);
		if (cfg->set_line[midx] != 0)
			cfg->log_retention_ms = cfg->log_retention_minutes < 0 ?
							-1 : cfg->log_retention_minutes * 60000;
		else
			cfg->log_retention_ms = cfg->log_retention_hours < 0 ?
							-1 : cfg->log_retention_hours * 3600000;
	}
	key_find("log.roll.ms", &idx);
	if (cfg->set_line[idx] == 0)
		cfg->log_roll_ms = cfg->log_roll_hours * 3600000;
	key_find("log.flush.interval.ms", &idx);
	if (cfg->set_line[idx] == 0)
		cfg->log_flush_interval_ms = cfg->log_flush_scheduler_interval_ms;

	cfg->dp_transport = strcmp(cfg->dp_transport_name, "dpdk") == 0 ? DP_TRANSPORT_DPDK :
			    strcmp(cfg->dp_transport_name, "auto") == 0 ? DP_TRANSPORT_AUTO :
									  DP_TRANSPORT_KERNEL;
	n = dp_config_parse_listeners(cfg, cfg->listeners, cfg->listener, false, why, sizeof(why));
	if (n < 0) {
		seterr(err, errlen, where, line_of(cfg, "listeners"), "listeners: %s", why);
		return -EINVAL;
	}
	if (n == 0) {
		seterr(err, errlen, where, line_of(cfg, "listeners"), "listeners: none given");
		return -EINVAL;
	}
	cfg->n_listeners = (unsigned int)n;
	for (unsigned int i = 0; i < cfg->n_listeners; i++) {
		const struct dp_listener *l = &cfg->listener[i];

		if (!l->controller && strcasecmp(l->protocol, "PLAINTEXT") != 0) {
			seterr(err, errlen, where, line_of(cfg, "listeners"),
				"listeners: %s uses %s; only PLAINTEXT is served so far", l->name,
				l->protocol);
			return -EINVAL;
		}
	}
	if (cfg->advertised_listeners[0] != '\0') {
		n = dp_config_parse_listeners(cfg, cfg->advertised_listeners, cfg->advertised, true,
			why, sizeof(why));
		if (n < 0) {
			seterr(err, errlen, where, line_of(cfg, "advertised.listeners"),
				"advertised.listeners: %s", why);
			return -EINVAL;
		}
		cfg->n_advertised = (unsigned int)n;
		for (unsigned int i = 0; i < cfg->n_advertised; i++) {
			bool found = false;

			for (unsigned int j = 0; j < cfg->n_listeners; j++)
				found |= strcmp(cfg->advertised[i].name, cfg->listener[j].name) == 0;
			if (!found) {
				seterr(err, errlen, where, line_of(cfg, "advertised.listeners"),
					"advertised.listeners: %s is not in listeners",
					cfg->advertised[i].name);
				return -EINVAL;
			}
		}
	} else {
		/* Kafka advertises the listeners; an empty host or port 0 is filled at bind time. */
		memcpy(cfg->advertised, cfg->listener, sizeof(cfg->listener));
		cfg->n_advertised = cfg->n_listeners;
	}

	rc = dp_config_check_lcores(cfg, where, err, errlen);
	if (rc < 0)
		return rc;
	cfg->max_frame_bytes = (uint32_t)(cfg->socket_request_max_bytes < cfg->dp_frame_large_bytes ?
							  cfg->socket_request_max_bytes :
							  cfg->dp_frame_large_bytes);
	cfg->finished = true;
	return 0;
}

static void
print_value(const struct dp_config *cfg, const struct dp_config_key *k, FILE *out)
{
	struct dp_config *c = (struct dp_config *)(uintptr_t)cfg;

	switch (k->type) {
	case DP_CFG_INT:
	case DP_CFG_LONG:
		fprintf(out, "%" PRId64, *fld_i64(c, k));
		break;
	case DP_CFG_BOOL:
		fprintf(out, "%s", *fld_bool(c, k) ? "true" : "false");
		break;
	default: {
		const char *v = *fld_str(c, k);

		/* Escape what Properties would read differently. */
		for (const char *p = v != NULL ? v : ""; *p != '\0'; p++) {
			if (*p == '\\')
				fputs("\\\\", out);
			else if (*p == '\n')
				fputs("\\n", out);
			else if (*p == '\r')
				fputs("\\r", out);
			else if (*p == '\t')
				fputs("\\t", out);
			else
				fputc(*p, out);
		}
		break;
	}
	}
}

void
dp_config_print(const struct dp_config *cfg, FILE *out)
{
	static const char *const groups[] = {
		"# Set by the configuration file or --override:",
		"# Derived from other keys:",
		"# Defaults:",
	};

	/* Plain key=value lines, so the output loads back as a configuration file. */
	fprintf(out, "# Effective configuration of slipstream.\n");
	for (int g = 0; g < 3; g++) {
		bool header = false;

		for (size_t i = 0; i < NKEYS; i++) {
			const struct dp_config_key *k = &keys[i];
			int kg = cfg->set_line[i] != 0 ? 0 : (k->flags & DP_CFG_NODEF) ? 1 : 2;

			if (k->alias_of != NULL || kg != g)
				continue;
			if (!header) {
				fprintf(out, "%s\n", groups[g]);
				header = true;
			}
			if (k->flags & DP_CFG_OPTIONAL && cfg->set_line[i] == 0) {
				fprintf(out, "#%s=  (unset)\n", k->name);
				continue;
			}
			fprintf(out, "%s=", k->name);
			print_value(cfg, k, out);
			fputc('\n', out);
		}
		if (g == 0 && cfg->n_delegated > 0) {
			if (!header)
				fprintf(out, "%s\n", groups[0]);
			for (unsigned int i = 0; i < cfg->n_delegated; i++)
				fprintf(out, "%s\n", cfg->delegated[i]);
		}
	}
}

int8_t
dp_config_key_kafka_type(const char *key)
{
	/* Kafka's ConfigType codes: BOOLEAN 1, STRING 2, INT 3, LONG 5, LIST 7. */
	static const int8_t kafka[] = {
		[DP_CFG_INT] = 3, [DP_CFG_LONG] = 5, [DP_CFG_BOOL] = 1,
		[DP_CFG_STRING] = 2, [DP_CFG_ENUM] = 2, [DP_CFG_LIST] = 7,
	};

	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, key) == 0)
			return kafka[keys[i].type];
	return 2;
}

static const char *const type_names[] = {"int", "long", "boolean", "string", "one of", "list"};

void
dp_config_print_help(FILE *out)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct dp_config_key *k = &keys[i];

		fprintf(out, "  %s (%s", k->name, type_names[k->type]);
		if (k->choices != NULL)
			fprintf(out, " %s", k->choices);
		if ((k->type == DP_CFG_INT || k->type == DP_CFG_LONG) && k->alias_of == NULL)
			fprintf(out, ", %" PRId64 "..%" PRId64, k->min, k->max);
		if (k->def != NULL)
			fprintf(out, ", default '%s'", k->def);
		if (k->flags & DP_CFG_COMPAT)
			fprintf(out, ", accepted, no effect yet");
		fprintf(out, ")\n      %s\n", k->doc);
	}
}
