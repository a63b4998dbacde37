/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slipstream: the dataplane process.
 *
 * Reads the configuration (an optional server.properties-style file plus
 * --override key=value), starts DPDK's EAL (hugepages when there are free
 * ones, else --no-huge with ordinary memory, so it runs on a CI box), builds
 * one reactor per configured lcore, starts the transport with the request
 * handler, and runs in the foreground until SIGTERM or SIGINT. Then it stops
 * accepting, lets in-flight requests finish (up to
 * dataplane.shutdown.timeout.ms), runs the storage shutdown hook and exits 0.
 * A second signal stops at once.
 *
 * Storage: dataplane.storage.writers engines (dataplane/broker/dp_broker.h),
 * each a poller on its writer's lcore (dataplane.storage.lcores[w]) owning a
 * share of the partitions; writer 0's lcore also runs the request
 * handlers and the shutdown control; net workers on other lcores hand their
 * requests over by dp_hop (dataplane/dp_hop.h).
 *
 * Transport: dataplane.transport=dpdk runs the userspace TCP stack on a DPDK
 * port (net_dpdk); kernel runs kernel sockets (net_kernel); auto (the
 * default) tries DPDK on dataplane.port.device (a TAP interface slipstream0
 * at 198.18.0.1/24 on the kernel side, the broker at 198.18.0.2) and, where
 * it cannot start, says why in one line and serves kernel sockets instead.
 */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_version.h>

#include "dp_broker.h"
#include "dp_config.h"
#include "dp_ctl.h"
#include "dp_handler.h"
#include "dp_hop.h"
#include "dp_requests.h"
#include "dp_log.h"
#include "dp_metrics.h"
#include "dp_reactor.h"
#include "net_dpdk.h"
#include "net_kernel.h"

#define SLIPSTREAM_VERSION "0.1.0"
#define MAX_EAL_ARGS 64
#define MAX_OVERRIDES 64

enum main_state {
	MAIN_RUNNING,
	MAIN_DRAINING,
	MAIN_STOPPING,
};

static volatile sig_atomic_t g_signals;

/* The transport in use: net_dpdk when true, net_kernel otherwise. */
static bool g_dpdk;
static volatile sig_atomic_t g_last_signal;

/* The broker: storage engine, topics, logs. Owned by the storage writer's lcore. */
static struct dp_broker g_broker;
static const struct dp_handler_apis *g_apis;

struct main_ctl {
	const struct dp_config *cfg;
	enum main_state state;
	int seen_signals;
	uint64_t deadline_tsc;
};

static void
on_signal(int sig)
{
	g_last_signal = sig;
	g_signals++;
}

/* Storage chunk memory from DPDK's heap (hugepages when the EAL has them). */
static void *
chunk_alloc(void *ctx, size_t size, size_t align)
{
	return rte_malloc("stor_chunks", size, (unsigned)align);
}

static void
chunk_free(void *ctx, void *ptr)
{
	rte_free(ptr);
}

static void
usage(FILE *out)
{
	fprintf(out,
		"Usage: slipstream [OPTIONS] [FILE]\n"
		"Run the Slipstream broker in the foreground until SIGTERM or SIGINT.\n"
		"FILE is a server.properties-style configuration; without one every key has its\n"
		"default: the broker serves PLAINTEXT on 198.18.0.2:9092 over DPDK on a TAP\n"
		"interface slipstream0 (198.18.0.1/24), or on 127.0.0.1:9092 over kernel sockets\n"
		"where DPDK cannot start (dataplane.transport=auto).\n"
		"\n"
		"  -h, --help             this text and the table of configuration keys\n"
		"      --version          print the version\n"
		"      --print-config     print the effective configuration and exit\n"
		"      --override K=V     set key K to V after the file (repeatable)\n"
		"\n"
		"Configuration keys:\n");
}

/*
 * Storage shutdown hook, on the main lcore (the engine's owner): close every
 * partition's log (pending appends complete, fdatasync, indexes, the
 * clean-shutdown marker) and the engine.
 */
static void
storage_shutdown_hook(const struct dp_config *cfg)
{
	dp_fetch_zc_detach(); /* responses still being sent: no reference into a closed log */
	if (dp_broker_stop(&g_broker) < 0)
		dp_log(DP_LOG_ERROR, "storage: some logs did not close cleanly (log.dirs=%s)",
			cfg->log_dirs);
	else
		dp_log(DP_LOG_INFO, "storage: every log closed cleanly");
}

static int
main_control_poll(void *arg)
{
	struct main_ctl *m = arg;
	int signals = g_signals;
	uint64_t now = rte_rdtsc();

	switch (m->state) {
	case MAIN_RUNNING:
		if (signals == 0)
			return 0;
		m->seen_signals = signals;
		dp_log(DP_LOG_INFO, "%s received: draining in-flight requests (up to %" PRId64
			" ms)", g_last_signal == SIGINT ? "SIGINT" : "SIGTERM",
			m->cfg->dp_shutdown_timeout_ms);
		if ((g_dpdk ? net_dpdk_drain_begin() : net_kernel_drain_begin()) < 0)
			dp_log(DP_LOG_WARN, "could not reach every net worker; stopping anyway");
		m->deadline_tsc = now + (uint64_t)m->cfg->dp_shutdown_timeout_ms *
			rte_get_tsc_hz() / 1000;
		m->state = MAIN_DRAINING;
		return 1;
	case MAIN_DRAINING: {
		uint64_t pending = g_dpdk ? net_dpdk_drain_pending() : net_kernel_drain_pending();

		if (pending == 0)
			pending = dp_hop_pending(); /* requests (or their buffers) on the way back */
		bool forced = signals != m->seen_signals;

		if (pending != 0 && now < m->deadline_tsc && !forced)
			return 0;
		if (pending != 0 && pending != UINT64_MAX)
			dp_log(DP_LOG_WARN, "stopping with %" PRIu64 " request(s) in flight (%s)",
				pending, forced ? "second signal" : "dataplane.shutdown.timeout.ms");
		else if (pending == UINT64_MAX)
			dp_log(DP_LOG_WARN, "stopping before every worker drained (%s)",
				forced ? "second signal" : "dataplane.shutdown.timeout.ms");
		storage_shutdown_hook(m->cfg);
		dp_reactors_stop();
		m->state = MAIN_STOPPING;
		return 1;
	}
	case MAIN_STOPPING:
		return 0;
	}
	return 0;
}

/* dataplane.transport=auto and DPDK cannot start: one line, then kernel sockets. */
static void
dpdk_fallback_log(const struct dp_config *cfg, const char *why)
{
	const struct dp_listener *l = &cfg->listener[0];

	dp_log(DP_LOG_WARN, "DPDK transport not started (%s); serving kernel sockets on %s:%u "
			    "instead (dataplane.transport=auto)",
		why, l->host[0] != '\0' ? l->host : "0.0.0.0", l->port);
}

/*
 * The DPDK transport serves the port's address: advertise it where the
 * advertised host could not reach the port (empty, any or loopback), and say
 * how to reach the broker.
 */
static void
dpdk_advertise(struct dp_config *cfg)
{
	const char *addr = net_dpdk_address();

	for (unsigned int i = 0; i < cfg->n_advertised; i++) {
		const char *h = cfg->advertised[i].host;

		if (h[0] == '\0' || strcmp(h, "0.0.0.0") == 0 || strncmp(h, "127.", 4) == 0 ||
			strcmp(h, "localhost") == 0)
			snprintf(cfg->advertised[i].host, sizeof(cfg->advertised[i].host), "%s",
				addr);
	}
	for (unsigned int i = 0; i < cfg->n_listeners; i++) {
		if (cfg->listener[i].controller)
			continue;
		dp_log(DP_LOG_INFO, "reach the broker with: kcat -b %s:%u -L%s%s%s", addr,
			cfg->listener[i].port,
			strncmp(cfg->dp_port_device, "net_tap", 7) == 0 ? "  (from this network "
			"namespace; kernel side " : "",
			strncmp(cfg->dp_port_device, "net_tap", 7) == 0 ? cfg->dp_port_tap_address : "",
			strncmp(cfg->dp_port_device, "net_tap", 7) == 0 ? ")" : "");
		break;
	}
}

/* Run @fn(@arg) on @lcore (start-up and after the reactors stopped: lcores are idle). */
/*
 * Open files: every connection is a socket and every open segment a slot of
 * the storage engine's fixed-file table, sized from this limit (and no
 * descriptor: the table holds the file). Raise the soft limit to what the
 * configured connections and 10,000s of partitions want, the hard one too
 * when allowed. Where the engine's files do hold descriptors (fixed files
 * refused), they get what the connections leave (max_open_fds; past it, or
 * past storage.max.open.files, idle segment files are closed and reopened at
 * their next use). Before the engines are created.
 */
static void
raise_nofile(const struct dp_config *cfg)
{
	rlim_t conns = (rlim_t)cfg->dp_net_workers * (rlim_t)cfg->dp_max_connections;
	rlim_t want = conns + 65536;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		struct rlimit up = {want, want};
		bool low = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want;

		/* A higher hard limit needs CAP_SYS_RESOURCE; else up to the hard one. */
		if (!low || setrlimit(RLIMIT_NOFILE, &up) != 0) {
			rl.rlim_cur = low ? rl.rlim_max : want;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		getrlimit(RLIMIT_NOFILE, &rl);
		/* Short of segment files only: storage closes idle ones (info). */
		dp_log(rl.rlim_cur < conns + 512 + 1024 ? DP_LOG_WARN : DP_LOG_INFO,
			"open files: RLIMIT_NOFILE %llu (%llu wanted: dataplane.max.connections "
			"and segment files)",
			(unsigned long long)rl.rlim_cur, (unsigned long long)want);
	}
	{
		/*
		 * What the connections leave, less 512 for listeners, rings, logs and
		 * tools: the descriptors segment files may hold where they hold any
		 * (io_uring's fixed files do not; its table is the bound there).
		 */
		rlim_t left = rl.rlim_cur > conns + 512 + 64 ? rl.rlim_cur - conns - 512 : 64;

		left /= cfg->dp_storage_writers > 0 ? (rlim_t)cfg->dp_storage_writers : 1;
		g_broker.engine_opts.max_open_fds = left > (1u << 24) ? 1u << 24 :
			(unsigned int)(left < 64 ? 64 : left);
	}
}

static int
run_on_lcore(unsigned int lcore, int (*fn)(void *), void *arg)
{
	int rc;

	if (lcore == rte_lcore_id())
		return fn(arg);
	rc = rte_eal_remote_launch(fn, arg, lcore);
	if (rc < 0)
		return rc;
	return rte_eal_wait_lcore(lcore);
}

/* On the storage writer's lcore, which becomes the owner of the engine and every log. */
static int
broker_start_here(void *arg)
{
	const struct dp_config *cfg = arg;
	int rc = dp_broker_start(&g_broker, cfg);

	if (rc < 0)
		return rc;
	g_apis = dp_requests_init(&g_broker, cfg);
	if (g_apis == NULL) {
		dp_log(DP_LOG_ERROR, "request handlers: out of memory");
		dp_broker_stop(&g_broker);
		return -ENOMEM;
	}
	return 0;
}

/*
 * The request hop (dp_hop.h) for net workers off the broker's lcore: sized
 * like a net worker's pools, large frames limited to two copies in flight.
 */
static int
hop_init(const struct dp_config *cfg, unsigned int broker_lcore,
	const struct dp_handler_apis *apis)
{
	uint32_t rx = RTE_MAX((uint32_t)cfg->dp_conn_rx_buffer_bytes, DP_HOP_SMALL_FRAME);
	uint32_t n = (uint32_t)RTE_MIN(cfg->dp_response_buffers, 1024);
	struct dp_hop_opts o = {
		.broker_lcore = broker_lcore,
		.lcores = cfg->net_lcore,
		.n_lcores = (unsigned int)cfg->dp_net_workers,
		.descs = n,
		.frame_bytes = {DP_HOP_SMALL_FRAME, rx, RTE_MAX(cfg->max_frame_bytes, rx)},
		.frame_count = {n, 32, (uint32_t)RTE_MIN(cfg->dp_frame_large_buffers, 2)},
		.resp_buf_bytes = (uint32_t)cfg->dp_response_buffer_bytes,
		.resp_bufs = (uint32_t)cfg->dp_response_buffers,
		.handler = dp_handler_frame,
		.handler_arg = (void *)(uintptr_t)apis,
	};

	/* A writer off the broker's lcore: Produce frames must live until the reply. */
	for (int64_t w = 1; w < cfg->dp_storage_writers; w++)
		o.hop_all = o.hop_all || cfg->storage_lcore[w] != broker_lcore;
	return dp_hop_init(&o);
}

static int
broker_stop_here(void *arg)
{
	(void)arg;
	dp_fetch_zc_detach();
	dp_broker_stop(&g_broker);
	return 0;
}

static int
writers_start_here(void *arg)
{
	(void)arg;
	return dp_broker_writers_start_here(&g_broker);
}

static int
writers_stop_here(void *arg)
{
	(void)arg;
	dp_broker_writers_stop_here(&g_broker);
	return 0;
}

/* The distinct lcores of the storage writers other than @broker_lcore; @return how many. */
static unsigned int
writer_lcores_other(const struct dp_config *cfg, unsigned int broker_lcore, unsigned int *out)
{
	unsigned int n = 0;

	for (int64_t w = 0; w < cfg->dp_storage_writers; w++) {
		unsigned int l = cfg->storage_lcore[w];
		bool seen = l == broker_lcore;

		for (unsigned int i = 0; i < n && !seen; i++)
			seen = out[i] == l;
		if (!seen)
			out[n++] = l;
	}
	return n;
}

static unsigned long
free_hugepages(void)
{
	glob_t g;
	unsigned long total = 0;

	if (glob("/sys/kernel/mm/hugepages/hugepages-*/free_hugepages", 0, NULL, &g) != 0)
		return 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		FILE *f = fopen(g.gl_pathv[i], "r");
		unsigned long n = 0;

		if (f == NULL)
			continue;
		if (fscanf(f, "%lu", &n) == 1)
			total += n;
		fclose(f);
	}
	globfree(&g);
	return total;
}

/* Build the EAL argument vector. Strings live in @store (start-up lifetime). */
static int
eal_args(const struct dp_config *cfg, bool dpdk, char **argv, char *store, size_t store_len,
	bool *no_huge)
{
	int argc = 0;
	size_t used = 0;
	char *extra;
	char *save = NULL;
	char *tok;

#define ADD(...)                                                                          \
	do {                                                                              \
		int n_ = snprintf(store + used, store_len - used, __VA_ARGS__);           \
		if (n_ < 0 || (size_t)n_ >= store_len - used || argc >= MAX_EAL_ARGS - 1) \
			return -E2BIG;                                                    \
		argv[argc++] = store + used;                                              \
		used += (size_t)n_ + 1;                                                   \
	} while (0)

	ADD("slipstream");
	ADD("-l");
	ADD("%s", cfg->dp_lcores);
	if (cfg->dpdk_file_prefix[0] != '\0')
		ADD("--file-prefix=%s", cfg->dpdk_file_prefix);
	else
		ADD("--file-prefix=slipstream-%d", (int)getpid());
	*no_huge = strcmp(cfg->dpdk_hugepages, "off") == 0 ||
		(strcmp(cfg->dpdk_hugepages, "auto") == 0 && free_hugepages() == 0);
	if (*no_huge) {
		ADD("--no-huge");
		ADD("--no-shconf");
		ADD("-m");
		ADD("%" PRId64, cfg->dpdk_memory_mb);
	} else {
		ADD("--in-memory");
	}
	if (dpdk && net_dpdk_device_is_pci(cfg->dp_port_device)) {
		ADD("-a"); /* that NIC only */
		ADD("%s", cfg->dp_port_device);
	} else {
		ADD("--no-pci"); /* leave the machine's NICs alone (vdevs are probed later) */
	}
	ADD("--no-telemetry");
	ADD("--log-level=lib.eal:warning");
	extra = store + used;
	ADD("%s", cfg->dpdk_eal_args);
	argc--; /* the whole string was a placeholder; split it below */
	for (tok = strtok_r(extra, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
		if (argc >= MAX_EAL_ARGS - 1)
			return -E2BIG;
		argv[argc++] = tok;
	}
	argv[argc] = NULL;
#undef ADD
	return argc;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"print-config", no_argument, NULL, 'P'},
		{"override", required_argument, NULL, 'o'},
		{NULL, 0, NULL, 0},
	};
	struct dp_config cfg;
	char err[DP_CONFIG_ERR_LEN];
	const char *overrides[MAX_OVERRIDES];
	int n_overrides = 0;
	bool print_config = false;
	const char *file = NULL;
	char *eal_argv[MAX_EAL_ARGS];
	char eal_store[4096];
	const struct dp_handler_apis *apis;
	struct main_ctl ctl;
	struct sigaction sa;
	bool no_huge = false;
	unsigned int broker_lcore = 0;
	unsigned int wl[DP_CONFIG_MAX_LCORES + 1]; /* writer lcores other than the broker's */
	unsigned int n_wl = 0;
	char why[256];
	int eal_argc;
	int rc;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			dp_config_print_help(stdout);
			return 0;
		case 'V':
			printf("slipstream %s (%s)\n", SLIPSTREAM_VERSION, rte_version());
			return 0;
		case 'P':
			print_config = true;
			break;
		case 'o':
			if (n_overrides == MAX_OVERRIDES) {
				fprintf(stderr, "slipstream: too many --override options\n");
				return 2;
			}
			overrides[n_overrides++] = optarg;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		file = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "slipstream: one configuration file at most (got '%s' too)\n",
			argv[optind]);
		return 2;
	}

	if (dp_config_init(&cfg) < 0)
		return 1;
	dp_broker_init(&g_broker);
	if (dp_config_delegate(&cfg, "storage.", dp_broker_storage_key, &g_broker) < 0) {
		dp_config_free(&cfg);
		return 1;
	}
	if (dp_config_delegate(&cfg, "control.", dp_ctl_config_key, NULL) < 0) {
		dp_config_free(&cfg);
		return 1;
	}
	if (file != NULL && dp_config_load_file(&cfg, file, err, sizeof(err)) < 0)
		goto config_error;
	for (int i = 0; i < n_overrides; i++) {
		char key[256];
		const char *eq = strchr(overrides[i], '=');

		if (eq == NULL || (size_t)(eq - overrides[i]) >= sizeof(key)) {
			snprintf(err, sizeof(err), "--override: '%s' is not key=value", overrides[i]);
			goto config_error;
		}
		memcpy(key, overrides[i], (size_t)(eq - overrides[i]));
		key[eq - overrides[i]] = '\0';
		if (dp_config_set(&cfg, key, eq + 1, "--override", 0, err, sizeof(err)) < 0)
			goto config_error;
	}
	if (dp_config_finish(&cfg, file != NULL ? file : "--override", err, sizeof(err)) < 0)
		goto config_error;
	if (print_config) {
		dp_config_print(&cfg, stdout);
		dp_config_free(&cfg);
		return 0;
	}
	dp_log_set_level(cfg.dp_log_level);
	g_dpdk = cfg.dp_transport != DP_TRANSPORT_KERNEL;
	if (g_dpdk && net_dpdk_precheck(&cfg, why, sizeof(why)) < 0) {
		if (cfg.dp_transport == DP_TRANSPORT_DPDK) {
			dp_log(DP_LOG_ERROR, "dataplane.transport=dpdk: %s", why);
			dp_config_free(&cfg);
			return 1;
		}
		dpdk_fallback_log(&cfg, why);
		g_dpdk = false;
	}

	raise_nofile(&cfg);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	eal_argc = eal_args(&cfg, g_dpdk, eal_argv, eal_store, sizeof(eal_store), &no_huge);
	if (eal_argc < 0) {
		dp_log(DP_LOG_ERROR, "dpdk.eal.args: too many or too long EAL arguments");
		dp_config_free(&cfg);
		return 2;
	}
	if (no_huge)
		dp_log(DP_LOG_INFO, "%s: running DPDK with --no-huge (%" PRId64 " MiB of ordinary "
				    "memory, dpdk.memory.mb)",
			strcmp(cfg.dpdk_hugepages, "off") == 0 ? "dpdk.hugepages=off" :
								 "no free hugepages",
			cfg.dpdk_memory_mb);
	rc = rte_eal_init(eal_argc, eal_argv);
	if (rc < 0) {
		dp_log(DP_LOG_ERROR, "DPDK EAL did not start (%s); with dpdk.hugepages=on run "
				     "scripts/hugepage-setup as root first",
			rte_strerror(rte_errno));
		dp_config_free(&cfg);
		return 1;
	}
	dp_log(DP_LOG_INFO, "slipstream %s on %s: node.id=%" PRId64 ", %u lcore(s), "
			    "%" PRId64 " net worker(s), transport %s",
		SLIPSTREAM_VERSION, rte_version(), cfg.node_id, rte_lcore_count(),
		cfg.dp_net_workers, cfg.dp_transport_name);
	if (cfg.socket_request_max_bytes > (int64_t)cfg.max_frame_bytes)
		dp_log(DP_LOG_INFO, "requests above %u bytes are refused "
				    "(dataplane.frame.large.bytes caps socket.request.max.bytes)",
			cfg.max_frame_bytes);

	rc = dp_reactors_init(cfg.lcore, cfg.n_lcores, 1024, (uint64_t)cfg.dp_poll_idle_sleep_us);
	if (rc == 0)
		dp_reactors_stall_log((uint64_t)cfg.dp_reactor_stall_log_us);
	if (rc < 0) {
		dp_log(DP_LOG_ERROR, "reactors: %s", strerror(-rc));
		goto eal_out;
	}
	dp_metrics_start(&cfg); /* not fatal: logged */
	/*
	 * The broker (topic table, handlers, shutdown control) lives on storage
	 * writer 0's lcore; net workers elsewhere hop their requests to it
	 * (dp_hop); each writer's engine and logs live on that writer's lcore.
	 */
	broker_lcore = cfg.storage_lcore[0];
	g_broker.engine_opts.mem_alloc = chunk_alloc;
	g_broker.engine_opts.mem_free = chunk_free;
	rc = dp_broker_writers_set(&g_broker, (unsigned int)cfg.dp_storage_writers,
		cfg.storage_lcore);
	if (rc < 0) {
		dp_log(DP_LOG_ERROR, "dataplane.storage.writers: at most %d", DP_BROKER_MAX_WRITERS);
		goto reactors_out;
	}
	n_wl = writer_lcores_other(&cfg, broker_lcore, wl);
	/* Writer 0's lcore loads the table and starts the writers placed there, then the others. */
	rc = run_on_lcore(broker_lcore, broker_start_here, &cfg);
	if (rc < 0)
		goto reactors_out;
	for (unsigned int i = 0; i < n_wl && rc == 0; i++)
		rc = run_on_lcore(wl[i], writers_start_here, NULL);
	if (rc < 0)
		goto broker_out;
	wl[n_wl] = broker_lcore;
	for (unsigned int i = 0; i <= n_wl && rc == 0; i++) {
		rc = dp_poller_register(wl[i], "retention", dp_broker_retention_poll, &g_broker,
			RTE_MIN((uint64_t)cfg.log_retention_check_interval_ms * 1000,
				(uint64_t)DP_BROKER_RETENTION_STEP_US), DP_POLLER_EVERY);
		if (rc == 0) /* idle: wait for writes in flight (dp_broker_idle_wait) */
			rc = dp_poller_register(wl[i], "storage.wait", dp_broker_idle_wait,
				&g_broker, DP_BROKER_IDLE_WAIT_US, DP_POLLER_IDLE);
	}
	if (rc < 0)
		goto broker_out;
	apis = g_apis;
	if (apis != NULL)
		apis = dp_ctl_init(&cfg, apis); /* group APIs go to the control process */
	if (apis == NULL) {
		dp_log(DP_LOG_ERROR, "request handlers: out of memory");
		rc = -ENOMEM;
		goto broker_out;
	}
	rc = hop_init(&cfg, broker_lcore, apis);
	if (rc < 0)
		goto broker_out;
	if (g_dpdk) {
		rc = net_dpdk_init(&cfg, dp_hop_frame, (void *)(uintptr_t)apis, why,
			sizeof(why));
		if (rc == 0) {
			dpdk_advertise(&cfg);
		} else if (cfg.dp_transport == DP_TRANSPORT_DPDK) {
			dp_log(DP_LOG_ERROR, "dataplane.transport=dpdk: %s", why);
			goto broker_out;
		} else {
			dpdk_fallback_log(&cfg, why);
			g_dpdk = false;
		}
	}
	/* Kernel sockets: the clients' transport, or (DPDK) only the control process's way in. */
	rc = g_dpdk ? net_kernel_init_local(&cfg, dp_hop_frame, (void *)(uintptr_t)apis) :
		      net_kernel_init(&cfg, dp_hop_frame, (void *)(uintptr_t)apis);
	if (rc == 0) /* the control process, a Kafka client of this broker, comes in here */
		rc = net_kernel_listen_unix(dp_ctl_dataplane_socket_path());
	if (rc < 0)
		goto broker_out;
	/*
	 * End pollers run in this order (docs/dataplane.md "Reactors"): the net
	 * workers' walks (registered above: Produce appends), the storage polls
	 * (the appends written, tmpfs ones completed inline), parked Fetches
	 * (woken by them), then the workers' answers pollers sending all that
	 * in the same iteration.
	 */
	for (unsigned int i = 0; i <= n_wl && rc == 0; i++)
		rc = dp_poller_register(wl[i], "storage", dp_broker_poll, &g_broker, 0,
			DP_POLLER_END);
	if (rc == 0)
		rc = dp_poller_register(broker_lcore, "fetch.wait", dp_requests_poll,
			dp_requests_arg(), 0, DP_POLLER_END);
	if (rc == 0 && g_dpdk)
		rc = net_dpdk_register_answers();
	if (rc == 0)
		rc = net_kernel_register_answers();
	if (rc < 0)
		goto broker_out;
	(void)dp_poller_register(broker_lcore, "metrics.leo", dp_requests_metrics_poll,
		NULL, 1000000, DP_POLLER_EVERY); /* not fatal: metrics only */
	memset(&ctl, 0, sizeof(ctl));
	ctl.cfg = &cfg;
	rc = dp_poller_register(broker_lcore, "main.control", main_control_poll, &ctl,
		10000, DP_POLLER_EVERY);
	if (rc < 0)
		goto reactors_out;
	dp_log(DP_LOG_INFO, "started; stop with SIGTERM or SIGINT");
	rc = dp_reactors_run();
	dp_hop_log_stats();
	if (rc == 0)
		dp_log(DP_LOG_INFO, "stopped cleanly");
broker_out:
	/*
	 * Nothing left to close after the shutdown hook; otherwise each writer
	 * closes its logs on its own lcore (the reactors are not running), then
	 * writer 0's lcore frees the table.
	 */
	for (unsigned int i = 0; i < n_wl; i++)
		run_on_lcore(wl[i], writers_stop_here, NULL);
	run_on_lcore(broker_lcore, broker_stop_here, NULL);
reactors_out:
	if (g_dpdk)
		net_dpdk_fini();
	net_kernel_fini();
	dp_ctl_fini();
	dp_metrics_destroy();
	dp_hop_fini(); /* after the transport: reaped connections release hopped responses */
	dp_reactors_fini();
eal_out:
	rte_eal_cleanup();
	dp_config_free(&cfg);
	return rc == 0 ? 0 : 1;

config_error:
	fprintf(stderr, "slipstream: %s\n", err);
	dp_config_free(&cfg);
	return 2;
}
