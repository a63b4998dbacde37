/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slipstream-load: the Kafka load generator and benchmark instrument.
 *
 * Parses the command line into a struct lg_config, runs it (lg_run.c), then
 * prints the summary and writes the JSON report and plots asked for
 * (lg_report.c). Speaks Kafka through Slipstream's own codecs, so it works
 * against any Kafka-compatible broker and later over Slipstream's own
 * network stack: --transport memif runs our TCP/IP stack on a net_memif
 * port to the broker (lg_memif.c), the same Kafka client code over it.
 *
 * Exit status: 0 run completed without errors (and, end to end, every
 * acknowledged record was consumed); 1 errors or missing records; 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kp_compress.h"
#include "lg_memif.h"
#include "lg_report.h"
#include "lg_run.h"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: slipstream-load [options]\n"
		"  --mode MODE            produce (default), consume, e2e, tcp-baseline, sink\n"
		"  -b, --broker HOST:PORT bootstrap broker (default 127.0.0.1:9092)\n"
		"  -t, --topic NAME       topic (default slipstream-load; created when missing)\n"
		"  -p, --partitions N     partitions when creating the topic (default 1)\n"
		"      --replication N    replication factor when creating (default: broker's)\n"
		"      --no-create        fail instead of creating a missing topic\n"
		"  -s, --record-size B    value bytes per record (default 1024; >= 16 for e2e)\n"
		"      --batch-size B     bytes per batch (default 16384)\n"
		"      --linger-ms MS     with --rate: longest a record waits for its batch (default 5)\n"
		"  -a, --acks 0|1|all     (default 1)\n"
		"  -z, --compression C    none, gzip, snappy, lz4, zstd (default none)\n"
		"  -k, --keys N           N distinct 8-byte keys, each in the partition Kafka's\n"
		"                         partitioner (murmur2) gives it (default 0: null keys)\n"
		"  -c, --connections N    producer connections (default 1)\n"
		"      --consumer-connections N  (default: --connections, at most partitions)\n"
		"  -T, --threads N        worker threads, one per core (default 1)\n"
		"      --cpus LIST        pin worker i to the i-th CPU of LIST (e.g. 1,2), the\n"
		"                         sampling thread to all of them\n"
		"  -i, --max-inflight N   Produce requests pipelined per connection (default 5)\n"
		"  -r, --rate R           records/s over all producers (default 0: flat out)\n"
		"  -d, --duration S       seconds of producing/consuming (default 10)\n"
		"      --warmup S         run S seconds more first, left out of the latency\n"
		"                         histograms (summary, JSON); counts and series keep them\n"
		"      --tail-us US       e2e: split the trip of each record US or more late into\n"
		"                         waiting to be sent, Produce to its answer, answer to\n"
		"                         receipt (summary \"tail\", JSON latency/tail_*;\n"
		"                         default 200, 0: off)\n"
		"  -n, --count N          records to produce (or consume); with no --duration\n"
		"                         the count alone bounds produce/e2e runs (600 s at most)\n"
		"      --from-latest      consume: start at the log end (default: earliest)\n"
		"      --request-timeout-ms MS  (default 30000; an unanswered request ends the run)\n"
		"      --retries N        per batch on retriable errors (default 3)\n"
		"      --fetch-max-wait-ms MS   (default 100)\n"
		"      --fetch-max-bytes B      (default 8 MiB)\n"
		"      --partition-max-bytes B  (default 1 MiB)\n"
		"      --drain S          e2e: seconds consumers may lag after producing (default 5)\n"
		"      --interval-ms MS   the time series' step: progress line, JSON, plots\n"
		"                         (default 1000, at least 10: 10 ms steps show\n"
		"                         the stall episodes in an e2e run)\n"
		"      --transport NAME   tcp (kernel sockets, default) or memif (our TCP/IP stack\n"
		"                         on a net_memif port; -b is the broker's memif address)\n"
		"      --memif-socket PATH  the broker's memif socket (dataplane.port.device socket=)\n"
		"      --memif-ip A.B.C.D/LEN  our address (default: the broker's /24, host 1 or 2)\n"
		"      --memif-idle-us US sleep US at a time after 1 ms without work (default 0:\n"
		"                         busy poll)\n"
		"      --memif-idle-grace-us G  without work for G us before a sleep (default 1000)\n"
		"      --memif-bufs B     TCP send/receive buffer per connection (default 2 MiB)\n"
		"      --memif-mbufs N    packet buffers (default 65535)\n"
		"      --memif-memory-mb M  EAL memory (default 512)\n"
		"      --memif-huge       EAL memory from hugepages (default: --no-huge)\n"
		"      --memif-zero-copy  memif zero-copy client (needs --memif-huge): the broker\n"
		"                         copies frames into this process's mbufs, requests are copied\n"
		"                         into the send queue instead of lent\n"
		"      --memif-mtu M      IP MTU of the memif link, 576-9000 (default 1500; the\n"
		"                         broker's dataplane.port.mtu must be the same)\n"
		"      --memif-no-tx-cksum  send TCP segments without their checksum (only for a\n"
		"                         broker that trusts memif's: rx.checksum.trusted=true)\n"
		"      --eal-args \"ARGS\"  more EAL arguments for the memif transport\n"
		"      --produce-version V  tcp-baseline: Produce version of the bytes (default 9)\n"
		"  tcp-baseline over --transport memif talks to a sink in another process:\n"
		"  slipstream-load --mode sink --transport memif --memif-socket PATH -b IP:PORT\n"
		"  (the memif server, answering every frame at IP:PORT for --duration seconds)\n"
		"      --json FILE        write the JSON report (full latency histograms)\n"
		"      --plot DIR         write gnuplot data and script, render PNG and SVG\n"
		"  -q, --quiet            no progress line\n");
}

static int
parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end != '\0' || s[0] == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

static int
parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v;

	if (parse_u64(s, &v) < 0 || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int
parse_double(const char *s, double *out)
{
	char *end;

	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

enum {
	OPT_REPL = 256,
	OPT_NO_CREATE,
	OPT_BATCH,
	OPT_LINGER,
	OPT_CCONN,
	OPT_CPUS,
	OPT_FROM_LATEST,
	OPT_REQ_TIMEOUT,
	OPT_RETRIES,
	OPT_FETCH_WAIT,
	OPT_FETCH_MAX,
	OPT_PART_MAX,
	OPT_DRAIN,
	OPT_WARMUP,
	OPT_INTERVAL,
	OPT_TAIL,
	OPT_TRANSPORT,
	OPT_PRODUCE_VERSION,
	OPT_JSON,
	OPT_PLOT,
	OPT_MODE,
	OPT_MEMIF_SOCKET,
	OPT_MEMIF_IP,
	OPT_MEMIF_IDLE,
	OPT_MEMIF_GRACE,
	OPT_MEMIF_BUFS,
	OPT_MEMIF_MBUFS,
	OPT_MEMIF_MEM,
	OPT_MEMIF_HUGE,
	OPT_MEMIF_ZERO_COPY,
	OPT_MEMIF_NO_TX_CKSUM,
	OPT_MEMIF_MTU,
	OPT_EAL_ARGS,
};

static const struct option options[] = {
	{"mode", required_argument, NULL, OPT_MODE},
	{"broker", required_argument, NULL, 'b'},
	{"topic", required_argument, NULL, 't'},
	{"partitions", required_argument, NULL, 'p'},
	{"replication", required_argument, NULL, OPT_REPL},
	{"no-create", no_argument, NULL, OPT_NO_CREATE},
	{"record-size", required_argument, NULL, 's'},
	{"batch-size", required_argument, NULL, OPT_BATCH},
	{"linger-ms", required_argument, NULL, OPT_LINGER},
	{"acks", required_argument, NULL, 'a'},
	{"compression", required_argument, NULL, 'z'},
	{"keys", required_argument, NULL, 'k'},
	{"connections", required_argument, NULL, 'c'},
	{"consumer-connections", required_argument, NULL, OPT_CCONN},
	{"threads", required_argument, NULL, 'T'},
	{"cpus", required_argument, NULL, OPT_CPUS},
	{"max-inflight", required_argument, NULL, 'i'},
	{"rate", required_argument, NULL, 'r'},
	{"duration", required_argument, NULL, 'd'},
	{"count", required_argument, NULL, 'n'},
	{"from-latest", no_argument, NULL, OPT_FROM_LATEST},
	{"request-timeout-ms", required_argument, NULL, OPT_REQ_TIMEOUT},
	{"retries", required_argument, NULL, OPT_RETRIES},
	{"fetch-max-wait-ms", required_argument, NULL, OPT_FETCH_WAIT},
	{"fetch-max-bytes", required_argument, NULL, OPT_FETCH_MAX},
	{"partition-max-bytes", required_argument, NULL, OPT_PART_MAX},
	{"drain", required_argument, NULL, OPT_DRAIN},
	{"warmup", required_argument, NULL, OPT_WARMUP},
	{"interval-ms", required_argument, NULL, OPT_INTERVAL},
	{"tail-us", required_argument, NULL, OPT_TAIL},
	{"transport", required_argument, NULL, OPT_TRANSPORT},
	{"memif-socket", required_argument, NULL, OPT_MEMIF_SOCKET},
	{"memif-ip", required_argument, NULL, OPT_MEMIF_IP},
	{"memif-idle-us", required_argument, NULL, OPT_MEMIF_IDLE},
	{"memif-idle-grace-us", required_argument, NULL, OPT_MEMIF_GRACE},
	{"memif-bufs", required_argument, NULL, OPT_MEMIF_BUFS},
	{"memif-mbufs", required_argument, NULL, OPT_MEMIF_MBUFS},
	{"memif-memory-mb", required_argument, NULL, OPT_MEMIF_MEM},
	{"memif-huge", no_argument, NULL, OPT_MEMIF_HUGE},
	{"memif-zero-copy", no_argument, NULL, OPT_MEMIF_ZERO_COPY},
	{"memif-no-tx-cksum", no_argument, NULL, OPT_MEMIF_NO_TX_CKSUM},
	{"memif-mtu", required_argument, NULL, OPT_MEMIF_MTU},
	{"eal-args", required_argument, NULL, OPT_EAL_ARGS},
	{"produce-version", required_argument, NULL, OPT_PRODUCE_VERSION},
	{"json", required_argument, NULL, OPT_JSON},
	{"plot", required_argument, NULL, OPT_PLOT},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static int
parse_broker(const char *s, struct lg_config *cfg)
{
	const char *colon = strrchr(s, ':');
	uint32_t port;

	if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof(cfg->host) ||
	    parse_u32(colon + 1, 65535, &port) < 0 || port == 0)
		return -EINVAL;
	memcpy(cfg->host, s, (size_t)(colon - s));
	cfg->host[colon - s] = '\0';
	cfg->port = (uint16_t)port;
	return 0;
}

static int
parse_codec(const char *s, enum kp_compression *c)
{
	for (int i = KP_COMPRESSION_NONE; i <= KP_COMPRESSION_ZSTD; i++) {
		if (strcmp(s, kp_compression_name((enum kp_compression)i)) == 0) {
			*c = (enum kp_compression)i;
			return 0;
		}
	}
	return -EINVAL;
}

static int
parse_cpus(const char *s, struct lg_config *cfg)
{
	char buf[256];
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	cfg->ncpus = 0;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint32_t v;
		if (cfg->ncpus >= 64 || parse_u32(tok, 1023, &v) < 0)
			return -EINVAL;
		cfg->cpus[cfg->ncpus++] = (int)v;
	}
	return cfg->ncpus ? 0 : -EINVAL;
}

static int
copy_opt(char *dst, size_t cap, const char *src)
{
	if (strlen(src) >= cap)
		return -EINVAL;
	snprintf(dst, cap, "%s", src);
	return 0;
}

static bool sink_mode; /* --mode sink: lg_memif_sink_run, not lg_run */
static volatile int sink_stop;

static void
sink_signal(int sig)
{
	(void)sig;
	sink_stop = 1;
}

static int
parse_args(int argc, char **argv, struct lg_config *cfg, struct lg_memif_conf *mc,
	   const char **json, const char **plot)
{
	bool have_duration = false;
	uint32_t u = 0;
	double d = 0;
	int opt;

	while ((opt = getopt_long(argc, argv, "b:t:p:s:a:z:k:c:T:i:r:d:n:qh", options, NULL)) !=
	       -1) {
		int rc = 0;
		switch (opt) {
		case OPT_MODE:
			if (strcmp(optarg, "produce") == 0)
				cfg->mode = LG_MODE_PRODUCE;
			else if (strcmp(optarg, "consume") == 0)
				cfg->mode = LG_MODE_CONSUME;
			else if (strcmp(optarg, "e2e") == 0)
				cfg->mode = LG_MODE_E2E;
			else if (strcmp(optarg, "tcp-baseline") == 0)
				cfg->mode = LG_MODE_TCP_BASELINE;
			else if (strcmp(optarg, "sink") == 0)
				sink_mode = true;
			else
				rc = -EINVAL;
			break;
		case 'b':
			rc = parse_broker(optarg, cfg);
			break;
		case 't':
			if (strlen(optarg) == 0 || strlen(optarg) >= sizeof(cfg->topic))
				rc = -EINVAL;
			else
				snprintf(cfg->topic, sizeof(cfg->topic), "%s", optarg);
			break;
		case 'p':
			rc = parse_u32(optarg, 1000000, &u);
			cfg->partitions = (int32_t)u;
			if (u == 0)
				rc = -EINVAL;
			break;
		case OPT_REPL:
			rc = parse_u32(optarg, 32767, &u);
			cfg->replication = (int16_t)u;
			break;
		case OPT_NO_CREATE:
			cfg->create = false;
			break;
		case 's':
			rc = parse_u32(optarg, 64u << 20, &cfg->record_size);
			break;
		case OPT_BATCH:
			rc = parse_u32(optarg, 64u << 20, &cfg->batch_size);
			break;
		case OPT_LINGER:
			rc = parse_double(optarg, &d);
			cfg->linger_us = (uint32_t)(d * 1000);
			break;
		case 'a':
			if (strcmp(optarg, "all") == 0 || strcmp(optarg, "-1") == 0)
				cfg->acks = -1;
			else if (strcmp(optarg, "0") == 0 || strcmp(optarg, "1") == 0)
				cfg->acks = (int16_t)atoi(optarg);
			else
				rc = -EINVAL;
			break;
		case 'z':
			rc = parse_codec(optarg, &cfg->codec);
			break;
		case 'k':
			rc = parse_u32(optarg, UINT32_MAX, &cfg->keys);
			break;
		case 'c':
			rc = parse_u32(optarg, 100000, &cfg->connections);
			if (cfg->connections == 0)
				rc = -EINVAL;
			break;
		case OPT_CCONN:
			rc = parse_u32(optarg, 100000, &cfg->consumer_connections);
			break;
		case 'T':
			rc = parse_u32(optarg, 1024, &cfg->threads);
			if (cfg->threads == 0)
				rc = -EINVAL;
			break;
		case OPT_CPUS:
			rc = parse_cpus(optarg, cfg);
			break;
		case 'i':
			rc = parse_u32(optarg, 4096, &cfg->max_inflight);
			if (cfg->max_inflight == 0)
				rc = -EINVAL;
			break;
		case 'r':
			rc = parse_double(optarg, &cfg->rate);
			break;
		case 'd':
			rc = parse_double(optarg, &cfg->duration_s);
			have_duration = true;
			break;
		case 'n':
			rc = parse_u64(optarg, &cfg->count);
			break;
		case OPT_FROM_LATEST:
			cfg->from_latest = true;
			break;
		case OPT_REQ_TIMEOUT:
			rc = parse_u32(optarg, 3600000, &u);
			cfg->request_timeout_ms = (int)u;
			if (u == 0)
				rc = -EINVAL;
			break;
		case OPT_RETRIES:
			rc = parse_u32(optarg, 1000, &u);
			cfg->retries = (int)u;
			break;
		case OPT_FETCH_WAIT:
			rc = parse_u32(optarg, 60000, &u);
			cfg->fetch_max_wait_ms = (int32_t)u;
			break;
		case OPT_FETCH_MAX:
			rc = parse_u32(optarg, 128u << 20, &u);
			cfg->fetch_max_bytes = (int32_t)u;
			break;
		case OPT_PART_MAX:
			rc = parse_u32(optarg, 128u << 20, &u);
			cfg->partition_max_bytes = (int32_t)u;
			break;
		case OPT_DRAIN:
			rc = parse_double(optarg, &cfg->drain_s);
			break;
		case OPT_WARMUP:
			rc = parse_double(optarg, &cfg->warmup_s);
			if (rc == 0 && cfg->warmup_s > 3600)
				rc = -ERANGE;
			break;
		case OPT_TAIL:
			rc = parse_u32(optarg, 60000000, &cfg->tail_us);
			break;
		case OPT_INTERVAL:
			rc = parse_u32(optarg, 60000, &cfg->interval_ms);
			if (rc == 0 && cfg->interval_ms < 10)
				rc = -ERANGE;
			break;
		case OPT_TRANSPORT:
			cfg->transport = lg_transport_by_name(optarg);
			if (cfg->transport == NULL) {
				fprintf(stderr, "slipstream-load: no transport %s (tcp, memif)\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_MEMIF_SOCKET:
			rc = copy_opt(mc->socket, sizeof(mc->socket), optarg);
			break;
		case OPT_MEMIF_IP:
			rc = copy_opt(mc->ip, sizeof(mc->ip), optarg);
			break;
		case OPT_MEMIF_IDLE:
			rc = parse_u32(optarg, 1000000, &mc->idle_us);
			break;
		case OPT_MEMIF_GRACE:
			rc = parse_u32(optarg, 10000000, &mc->idle_grace_us);
			if (rc == 0 && mc->idle_grace_us == 0)
				rc = -ERANGE;
			break;
		case OPT_MEMIF_BUFS:
			rc = parse_u32(optarg, 64u << 20, &mc->bufs);
			if (mc->bufs < 65536)
				rc = -EINVAL;
			break;
		case OPT_MEMIF_MBUFS:
			rc = parse_u32(optarg, 4u << 20, &mc->mbufs);
			if (mc->mbufs < 1024)
				rc = -EINVAL;
			break;
		case OPT_MEMIF_MEM:
			rc = parse_u32(optarg, 1u << 20, &mc->memory_mb);
			break;
		case OPT_MEMIF_HUGE:
			mc->huge = true;
			break;
		case OPT_MEMIF_ZERO_COPY:
			mc->zero_copy = true;
			break;
		case OPT_MEMIF_NO_TX_CKSUM:
			mc->no_tx_cksum = true;
			break;
		case OPT_MEMIF_MTU:
			rc = parse_u32(optarg, 9000, &u);
			if (rc == 0 && u < 576)
				rc = -EINVAL;
			mc->mtu = (uint16_t)u;
			break;
		case OPT_EAL_ARGS:
			rc = copy_opt(mc->eal_args, sizeof(mc->eal_args), optarg);
			break;
		case OPT_PRODUCE_VERSION:
			rc = parse_u32(optarg, 11, &u);
			cfg->produce_version = (int16_t)u;
			if (u < 3)
				rc = -EINVAL;
			break;
		case OPT_JSON:
			*json = optarg;
			break;
		case OPT_PLOT:
			*plot = optarg;
			break;
		case 'q':
			cfg->progress = false;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
		if (rc < 0) {
			fprintf(stderr, "slipstream-load: bad value for option: %s\n",
				optarg ? optarg : "?");
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "slipstream-load: unexpected argument %s\n", argv[optind]);
		return -EINVAL;
	}
	/* Always bounded: a count alone bounds producing; consuming keeps a duration. */
	if (!have_duration && cfg->count > 0 && cfg->mode != LG_MODE_CONSUME)
		cfg->duration_s = 0;
	if (cfg->duration_s == 0 && cfg->count == 0) {
		fprintf(stderr, "slipstream-load: give a --duration or a --count\n");
		return -EINVAL;
	}
	if (cfg->warmup_s > 0 && cfg->duration_s == 0) {
		fprintf(stderr, "slipstream-load: --warmup needs a --duration\n");
		return -EINVAL;
	}
	if (cfg->mode == LG_MODE_E2E && cfg->record_size < 16) {
		fprintf(stderr, "slipstream-load: e2e needs --record-size >= 16 (the stamp)\n");
		return -EINVAL;
	}
	if (cfg->mode == LG_MODE_TCP_BASELINE && cfg->acks == 0)
		cfg->acks = 1; /* the sink always answers */
	if (sink_mode && cfg->transport != &lg_memif_ops) {
		fprintf(stderr, "slipstream-load: --mode sink runs over --transport memif (the kernel "
				"sink is tcp-baseline's own)\n");
		return -EINVAL;
	}
	if (cfg->transport == &lg_memif_ops) {
		if (mc->socket[0] == '\0') {
			fprintf(stderr, "slipstream-load: --transport memif needs --memif-socket\n");
			return -EINVAL;
		}
		if (cfg->threads != 1) {
			fprintf(stderr, "slipstream-load: --transport memif runs one worker thread "
					"(one stack on one memif queue): --threads 1\n");
			return -EINVAL;
		}
		mc->server = sink_mode;
		mc->cpu = cfg->ncpus > 0 ? cfg->cpus[0] : -1;
		int rc = lg_memif_configure(mc);
		if (rc == -ENOTSUP) {
			fprintf(stderr, "slipstream-load: --memif-zero-copy needs --memif-huge and a "
				"memif client (not --mode sink)\n");
			return -EINVAL;
		}
		if (rc < 0) {
			fprintf(stderr, "slipstream-load: bad --memif-socket %s\n", mc->socket);
			return -EINVAL;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct lg_config cfg;
	struct lg_memif_conf mc;
	struct lg_result *res;
	const char *json = NULL, *plot = NULL;
	int status = 0;

	lg_config_defaults(&cfg);
	memset(&mc, 0, sizeof(mc));
	if (parse_args(argc, argv, &cfg, &mc, &json, &plot) < 0) {
		usage(stderr);
		return 2;
	}
	if (sink_mode) {
		uint64_t frames = 0, bytes = 0;
		signal(SIGINT, sink_signal);
		signal(SIGTERM, sink_signal);
		int rc = lg_memif_sink_run(cfg.host, cfg.port, cfg.duration_s > 0 ? cfg.duration_s : 600,
					   &sink_stop, &frames, &bytes);
		if (rc < 0)
			fprintf(stderr, "slipstream-load: sink on %s:%u: %s\n", cfg.host, cfg.port,
				strerror(-rc));
		else
			printf("sink: answered %" PRIu64 " frames, %" PRIu64 " bytes read\n", frames,
			       bytes);
		/* No port teardown: DPDK 22.11's memif server faulted in its interrupt
		 * thread when the port was closed while its client was leaving. The
		 * process ends here; its memory goes with it (--no-huge). */
		fflush(stdout);
		unlink(mc.socket);
		_exit(rc < 0 ? 1 : 0);
	}
	if (cfg.transport == &lg_memif_ops) {
		int rc = lg_memif_start(cfg.host);
		if (rc == -EHOSTUNREACH)
			fprintf(stderr, "slipstream-load: over memif -b is the broker's IPv4 address in "
					"its own stack, not %s\n", cfg.host);
		if (rc < 0) {
			lg_memif_shutdown(false);
			return 1;
		}
	}
	res = calloc(1, sizeof(*res));
	if (res == NULL)
		return 1;
	int rc = lg_run(&cfg, res);
	if (cfg.transport == &lg_memif_ops)
		lg_memif_shutdown(cfg.progress);
	if (rc < 0) {
		fprintf(stderr, "slipstream-load: %s\n",
			res->first_error[0] ? res->first_error : strerror(-rc));
		lg_result_free(res);
		free(res);
		return 1;
	}
	lg_report_summary(stdout, &cfg, res);
	if (res->errors)
		status = 1;
	if (cfg.mode == LG_MODE_E2E) {
		bool complete = res->consumed_records == res->acked_records;
		printf("  check        consumed %" PRIu64 " of %" PRIu64 " acknowledged records%s\n",
		       res->consumed_records, res->acked_records, complete ? "" : " (MISSING)");
		if (!complete)
			status = 1;
	}
	if (json != NULL) {
		FILE *f = strcmp(json, "-") == 0 ? stdout : fopen(json, "w");
		if (f == NULL || lg_report_json(f, &cfg, res) < 0) {
			fprintf(stderr, "slipstream-load: cannot write %s\n", json);
			status = 1;
		}
		if (f != NULL && f != stdout)
			fclose(f);
	}
	if (plot != NULL) {
		rc = lg_report_plot(plot, &cfg, res);
		if (rc == -ENOENT)
			fprintf(stderr, "slipstream-load: gnuplot not found; data and plot.gp are in "
					"%s (apt-get install gnuplot-nox)\n", plot);
		else if (rc < 0) {
			fprintf(stderr, "slipstream-load: plots in %s: %s\n", plot, strerror(-rc));
			status = 1;
		}
	}
	lg_result_free(res);
	free(res);
	return status;
}
