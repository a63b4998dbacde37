/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slipstream-metrics: the /metrics endpoint on its own, without the group
 * coordinator: reads a dataplane's shared-memory counters and serves them in
 * the Prometheus text format. For hosts that run the dataplane alone, and
 * for tests; slipstream-control serves the same endpoint (ctl_http_init)
 * with consumer lag added.
 *
 *   slipstream-metrics [--shm PATH | --node-id N] [--listen HOST:PORT]
 *
 * Runs until SIGTERM or SIGINT. Prints "listening on http://HOST:PORT/metrics"
 * on stderr once ready (port 0 picks a free one).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_http.h"
#include "ctl_metrics.h"

static volatile sig_atomic_t g_stop;

static void
on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: slipstream-metrics [--shm PATH | --node-id N] [--listen HOST:PORT]\n\n"
	        "Serve a dataplane's counters at http://HOST:PORT/metrics (Prometheus text).\n\n"
	        "  --shm PATH        the dataplane's metrics segment (default\n"
	        "                    /dev/shm/slipstream-metrics-<node id>)\n"
	        "  --node-id N       node.id of the dataplane (default 1)\n"
	        "  --listen H:P      address to listen on (default %s; port 0: any)\n"
	        "  --timeout-ms N    per-connection deadline (default 10000)\n"
	        "  --help            this text\n",
	        CTL_HTTP_DEFAULT_LISTEN);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"shm", required_argument, NULL, 's'},
	        {"node-id", required_argument, NULL, 'n'},
	        {"listen", required_argument, NULL, 'l'},
	        {"timeout-ms", required_argument, NULL, 't'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *shm = NULL, *listen_at = CTL_HTTP_DEFAULT_LISTEN, *colon;
	struct ctl_http_route route;
	struct ctl_http_server *srv;
	struct ctl_metrics m;
	struct sigaction sa;
	long node_id = 1, timeout_ms = 10000, port;
	char path[256], host[256];
	char *end;
	int ch;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 's':
			shm = optarg;
			break;
		case 'n':
			node_id = strtol(optarg, &end, 10);
			if (*end != '\0' || node_id < 0) {
				fprintf(stderr, "slipstream-metrics: bad --node-id '%s'\n", optarg);
				return 2;
			}
			break;
		case 'l':
			listen_at = optarg;
			break;
		case 't':
			timeout_ms = strtol(optarg, &end, 10);
			if (*end != '\0' || timeout_ms <= 0 || timeout_ms > 600000) {
				fprintf(stderr, "slipstream-metrics: bad --timeout-ms '%s'\n",
				        optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (shm == NULL) {
		ctl_metrics_default_path(node_id, path, sizeof(path));
		shm = path;
	}
	colon = strrchr(listen_at, ':');
	if (colon == NULL || colon == listen_at || (size_t)(colon - listen_at) >= sizeof(host)) {
		fprintf(stderr, "slipstream-metrics: --listen '%s' is not HOST:PORT\n", listen_at);
		return 2;
	}
	memcpy(host, listen_at, (size_t)(colon - listen_at));
	host[colon - listen_at] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 0 || port > 65535) {
		fprintf(stderr, "slipstream-metrics: bad port in --listen '%s'\n", listen_at);
		return 2;
	}
	if (ctl_metrics_init(&m, shm) < 0) {
		fprintf(stderr, "slipstream-metrics: --shm path too long\n");
		return 2;
	}
	route.path = "/metrics";
	route.fn = ctl_metrics_http;
	route.arg = &m;
	srv = ctl_http_server_open(host, (uint16_t)port, &route, 1, (int)timeout_ms);
	if (srv == NULL) {
		fprintf(stderr, "slipstream-metrics: cannot listen on %s: %s\n", listen_at,
		        strerror(errno));
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	fprintf(stderr, "slipstream-metrics: listening on http://%s:%u/metrics, reading %s\n", host,
	        ctl_http_server_port(srv), shm);
	while (!g_stop) {
		int rc = ctl_http_server_poll(srv, 200);

		if (rc < 0) {
			fprintf(stderr, "slipstream-metrics: poll: %s\n", strerror(-rc));
			break;
		}
	}
	ctl_http_server_close(srv);
	ctl_metrics_fini(&m);
	return 0;
}
