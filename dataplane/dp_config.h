/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_config: the broker's configuration, read from a server.properties file.
 *
 * The file uses Java Properties syntax (comments with '#' or '!', `key=value`,
 * `key: value` or `key value`, backslash line continuations, escapes such as
 * \t, \n and \uXXXX) and Kafka's key names, so an operator's server.properties
 * carries over. Slipstream's own settings live under `dataplane.*`, `dpdk.*`
 * and `storage.*`. A table of known keys gives each its type, default, range
 * and doc string; an unknown key or a bad value stops the start with
 * "FILE:LINE: reason". Every key has a default, so the broker runs with no
 * file at all (PLAINTEXT on 127.0.0.1:9092 over kernel sockets).
 *
 * Lifecycle: dp_config_init() (defaults) → dp_config_load_file() and/or
 * dp_config_set() → dp_config_finish() (cross-key rules, derived values such
 * as log.retention.ms from log.retention.hours, listener parsing) →
 * read-only use by every lcore → dp_config_free(). Only start-up code writes
 * a struct dp_config; after finish it is shared read-only, so no locking.
 */
#ifndef SLP_DP_CONFIG_H
#define SLP_DP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/** Upper bound of known keys (static_assert'ed against the table). */
#define DP_CONFIG_MAX_KEYS 128
/** Most listeners (and advertised listeners) one broker serves. */
#define DP_CONFIG_MAX_LISTENERS 8
/** Most lcores (and most workers of one role) the dataplane uses. */
#define DP_CONFIG_MAX_LCORES 128
/** Room for an error message "FILE:LINE: reason". */
#define DP_CONFIG_ERR_LEN 512

/** Delegated keys (e.g. storage.*) kept for --print-config. */
#define DP_CONFIG_MAX_DELEGATED 64
/** Prefixes another module may own. */
#define DP_CONFIG_MAX_DELEGATES 4

/**
 * Validates and applies a key owned by another module (see
 * dp_config_delegate()). @key and @value are borrowed.
 *
 * @return 0; -ENOENT when the module has no such key; -EINVAL for a bad value.
 */
typedef int (*dp_config_delegate_fn)(void *arg, const char *key, const char *value);

enum dp_transport {
	DP_TRANSPORT_KERNEL = 0, /* kernel sockets driven by epoll */
	DP_TRANSPORT_DPDK = 1,   /* the userspace TCP stack on a DPDK port (net_dpdk) */
	DP_TRANSPORT_AUTO = 2,   /* DPDK when it can start, else kernel (main.c decides) */
};

/** One entry of `listeners` or `advertised.listeners`: NAME://host:port. */
struct dp_listener {
	char name[32];           /* listener name, upper case, e.g. "PLAINTEXT" */
	char protocol[32];       /* security protocol from the map, e.g. "PLAINTEXT" */
	char host[256];          /* as written; "" = all interfaces (listeners only) */
	uint16_t port;           /* 0 = any free port (listeners only) */
	bool controller;         /* named in controller.listener.names: not served here */
};

struct dp_config {
	/* --- Kafka's keys (fields named after the key) --- */
	int64_t node_id;
	char *listeners;
	char *advertised_listeners;
	char *listener_security_protocol_map;
	char *controller_listener_names;
	char *inter_broker_listener_name;
	char *process_roles;
	char *controller_quorum_voters;
	char *log_dirs;          /* effective after finish: log.dirs, else log.dir */
	char *log_dir;
	int64_t num_partitions;
	int64_t default_replication_factor;
	int64_t min_insync_replicas;
	bool auto_create_topics_enable;
	bool delete_topic_enable;
	bool unclean_leader_election_enable;
	int64_t message_max_bytes;
	int64_t socket_request_max_bytes;
	int64_t socket_send_buffer_bytes;    /* -1 = OS default */
	int64_t socket_receive_buffer_bytes; /* -1 = OS default */
	int64_t connections_max_idle_ms;     /* -1 = never reap */
	int64_t max_incremental_fetch_session_cache_slots; /* KIP-227 sessions, 0 = none */
	int64_t queued_max_requests;
	int64_t num_network_threads;
	int64_t num_io_threads;
	int64_t num_recovery_threads_per_data_dir;
	int64_t log_segment_bytes;
	int64_t log_roll_ms;     /* effective after finish */
	int64_t log_roll_hours;
	int64_t log_retention_ms; /* effective after finish; -1 = unlimited */
	int64_t log_retention_minutes;
	int64_t log_retention_hours;
	int64_t log_retention_bytes;
	int64_t log_retention_check_interval_ms;
	int64_t log_flush_interval_messages;
	int64_t log_flush_interval_ms; /* effective after finish */
	int64_t log_flush_scheduler_interval_ms;
	int64_t log_index_size_max_bytes;
	int64_t log_index_interval_bytes;
	bool log_preallocate;
	char *log_cleanup_policy;
	char *log_message_timestamp_type;
	int64_t log_message_timestamp_before_max_ms;
	int64_t log_message_timestamp_after_max_ms;
	int64_t log_message_timestamp_difference_max_ms;
	char *compression_type;
	int64_t delete_retention_ms;
	int64_t group_initial_rebalance_delay_ms;
	int64_t group_min_session_timeout_ms;
	int64_t group_max_session_timeout_ms;
	int64_t offsets_retention_minutes;
	int64_t offsets_retention_check_interval_ms;
	int64_t offsets_topic_replication_factor;
	int64_t offsets_topic_num_partitions;
	int64_t transaction_state_log_replication_factor;
	int64_t transaction_state_log_min_isr;
	int64_t transaction_state_log_num_partitions;
	int64_t producer_id_expiration_ms; /* -1 = never */
	char *zookeeper_connect;
	int64_t zookeeper_connection_timeout_ms;

	/* --- Slipstream's dataplane keys --- */
	char *dp_transport_name;
	enum dp_transport dp_transport;  /* derived from dp_transport_name */
	char *dp_lcores;                 /* EAL core list, e.g. "0" or "0-3" */
	int64_t dp_net_workers;
	char *dp_net_lcores;             /* placement, "" = spread over dp_lcores */
	int64_t dp_storage_writers;
	char *dp_storage_lcores;
	int64_t dp_max_connections;      /* per net worker */
	int64_t dp_conn_rx_buffer_bytes; /* per connection, holds small frames */
	int64_t dp_conn_rx_buffers;      /* shared per net worker; 0 = one per connection */
	int64_t dp_conn_max_inflight;    /* requests per connection */
	int64_t dp_producers_max;        /* idempotent producers per partition */
	int64_t dp_conn_max_pending_bytes;
	int64_t dp_frame_large_bytes;    /* one large-frame buffer */
	int64_t dp_frame_large_buffers;  /* per net worker */
	int64_t dp_response_buffer_bytes;
	int64_t dp_response_buffers;     /* per net worker */
	int64_t dp_poll_idle_sleep_us;
	int64_t dp_reactor_stall_log_us;
	int64_t dp_shutdown_timeout_ms;
	char *dp_log_level;
	char *dpdk_eal_args;
	char *dpdk_hugepages;            /* auto | on | off */
	int64_t dpdk_memory_mb;
	char *dpdk_file_prefix;
	char *metrics_shm_path;         /* "" = /dev/shm/slipstream-metrics-<node.id> */
	char *dp_port_device;            /* vdev string or PCI address */
	char *dp_port_ipv4_address;      /* dotted quad; checked by net_dpdk */
	char *dp_port_ipv4_netmask;
	char *dp_port_ipv4_gateway;      /* "" = none */
	int64_t dp_port_mtu;
	char *dp_port_tap_address;       /* kernel side of a net_tap port, "a.b.c.d/len" or "" */
	int64_t dp_port_mbufs;           /* per net worker */
	bool dp_port_rx_cksum_trusted;
	char *dp_port_tx_cksum;          /* compute|skip: TCP checksums sent (skip: memif only) */
	int64_t dp_tcp_send_buffer_bytes; /* DPDK stack: send queue limit per connection */
	char *dp_port_tso;               /* auto|on|off: TCP segmentation offload */

	/* --- derived by dp_config_finish() --- */
	struct dp_listener listener[DP_CONFIG_MAX_LISTENERS];
	unsigned int n_listeners;
	struct dp_listener advertised[DP_CONFIG_MAX_LISTENERS];
	unsigned int n_advertised;
	unsigned int lcore[DP_CONFIG_MAX_LCORES];       /* dataplane.lcores, in order */
	unsigned int n_lcores;
	unsigned int net_lcore[DP_CONFIG_MAX_LCORES];   /* lcore of net worker i */
	unsigned int storage_lcore[DP_CONFIG_MAX_LCORES]; /* lcore of storage writer i */
	/** Largest frame accepted: min(socket.request.max.bytes, large buffer). */
	uint32_t max_frame_bytes;

	/* --- keys handed to other modules (dp_config_delegate) --- */
	struct {
		const char *prefix;
		dp_config_delegate_fn fn;
		void *arg;
	} delegate[DP_CONFIG_MAX_DELEGATES];
	unsigned int n_delegates;
	char *delegated[DP_CONFIG_MAX_DELEGATED]; /* "key=value", owned */
	unsigned int n_delegated;

	/* --- bookkeeping, indexed like the key table --- */
	uint32_t set_line[DP_CONFIG_MAX_KEYS]; /* 0 = default; else line (or 1 for overrides) */
	bool finished;
};

/**
 * Fill @cfg with every key's default. @cfg must be zeroed or freed before.
 *
 * @return 0, or -ENOMEM.
 */
int dp_config_init(struct dp_config *cfg);

/**
 * Hand keys starting with @prefix (e.g. "storage.") that are not in the key
 * table to @fn, which validates and applies them (the storage engine's
 * options). Call after dp_config_init(), before loading. Without a delegate
 * such keys are unknown keys. Errors keep the FILE:LINE form.
 *
 * @param prefix  borrowed; must outlive @cfg
 * @return 0, or -ENOSPC.
 */
int dp_config_delegate(struct dp_config *cfg, const char *prefix, dp_config_delegate_fn fn,
	void *arg);

/** Release the strings owned by @cfg (safe on a zeroed or partly built one). */
void dp_config_free(struct dp_config *cfg);

/**
 * Parse properties text and apply each key.
 *
 * @param name  file name used in error messages (borrowed)
 * @param text  the bytes (borrowed; need not be NUL-terminated)
 * @param err   receives "NAME:LINE: reason" on failure (DP_CONFIG_ERR_LEN is enough)
 * @return 0; -EINVAL for an unknown key, bad value or malformed escape;
 *         -ENOMEM.
 */
int dp_config_load_string(struct dp_config *cfg, const char *name, const char *text, size_t len,
	char *err, size_t errlen);

/**
 * Read and apply a properties file (see dp_config_load_string()).
 *
 * @return 0, -EINVAL (bad content), or the -errno of opening/reading the file
 *         (the message then reads "PATH: reason").
 */
int dp_config_load_file(struct dp_config *cfg, const char *path, char *err, size_t errlen);

/**
 * Apply one key (e.g. from `--override key=value`). Messages read
 * "@where:@line: reason".
 *
 * @return 0, or -EINVAL for an unknown key or a bad value.
 */
int dp_config_set(struct dp_config *cfg, const char *key, const char *value, const char *where,
	unsigned int line, char *err, size_t errlen);

/**
 * Check rules that span keys and fill the derived fields (listeners,
 * effective retention/roll/flush values, transport). Messages name the file
 * and line of the key at fault when it came from a file.
 *
 * @return 0 or -EINVAL.
 */
int dp_config_finish(struct dp_config *cfg, const char *where, char *err, size_t errlen);

/**
 * Parse a listeners value ("NAME://host:port,..."), resolving protocols
 * through @cfg's listener.security.protocol.map.
 *
 * @param out  array of DP_CONFIG_MAX_LISTENERS entries
 * @return the number parsed (>= 0), or -EINVAL with a reason in @err.
 */
int dp_config_parse_listeners(const struct dp_config *cfg, const char *value,
	struct dp_listener *out, bool advertised, char *err, size_t errlen);

/**
 * Parse a core list such as "0-3,6" into @out (ascending, no duplicates).
 *
 * @return the number of ids (>= 1), or -EINVAL with a reason in @err.
 */
int dp_config_parse_corelist(const char *s, unsigned int *out, unsigned int max, char *err,
	size_t errlen);

/** Print every key with its effective value, `key=value` lines, defaults marked. */
void dp_config_print(const struct dp_config *cfg, FILE *out);

/**
 * Kafka's DescribeConfigs ConfigType of dataplane key @key: BOOLEAN 1,
 * STRING 2 (strings and enums), INT 3, LONG 5, LIST 7; STRING for a key
 * outside the table (the delegated storage.* keys).
 */
int8_t dp_config_key_kafka_type(const char *key);

/** Print the table of keys: name, type, default, range and doc. */
void dp_config_print_help(FILE *out);

#endif /* SLP_DP_CONFIG_H */
