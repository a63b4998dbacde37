/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slipstream-netperf-kernel: the kernel TCP baseline and client of
 * scripts/bench-net. It speaks the protocol of np.h over kernel sockets:
 *
 *	slipstream-netperf-kernel --mode echo|source|sink [--size S] [--count N]
 *	                          [--bytes B] [--connect IP:PORT]
 *
 * Without --connect it starts its own np.h server (echo and sink) on
 * 127.0.0.1 in a second thread, so the run measures kernel TCP over
 * loopback; with --connect it is the client of a slipstream-netperf server
 * (the stack over net_tap, through the kernel's TCP on the other side).
 * echo: count round trips of size bytes on one connection (TCP_NODELAY,
 * blocking calls), rate and p50/p99 latency. source: bytes of the np.h
 * pattern to the server's checked sink, Gbit/s. sink (with --connect only):
 * bytes of the pattern from the server's source, checked here, Gbit/s. One
 * JSON line on stdout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "np.h"

#define NP_PAT_LEN (NP_PATTERN_PERIOD + 65536u)

static uint8_t pat[NP_PAT_LEN];

static uint64_t
ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int
read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (uint8_t *)buf + got, n - got);

		if (r == 0)
			return -1;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

static int
write_full(int fd, const void *buf, size_t n)
{
	size_t put = 0;

	while (put < n) {
		ssize_t r = write(fd, (const uint8_t *)buf + put, n - put);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		put += (size_t)r;
	}
	return 0;
}

/* ---- the loopback server (echo and sink of np.h) ---- */

static void *
serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint8_t h[NP_HDR_LEN];
	static __thread uint8_t buf[1 << 20];
	uint64_t target = 0, got = 0;
	bool ok = true;

	if (read_full(fd, h, sizeof(h)) != 0)
		goto out;
	for (int i = 8; i < 16; i++)
		target = target << 8 | h[i];
	if (h[4] == NP_ECHO) {
		for (;;) {
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r <= 0 || write_full(fd, buf, (size_t)r) != 0)
				break;
		}
	} else if (h[4] == NP_SINK) {
		uint32_t rep[4];

		while (got < target) {
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r <= 0)
				break;
			for (ssize_t i = 0; ok && i < r;) {
				uint32_t k = (uint32_t)((got + (uint64_t)i) % NP_PATTERN_PERIOD);
				size_t n = (size_t)(r - i) < 65536 ? (size_t)(r - i) : 65536;

				ok = memcmp(buf + i, pat + k, n) == 0;
				i += (ssize_t)n;
			}
			got += (uint64_t)r;
		}
		rep[0] = htonl(NP_REPORT);
		rep[1] = htonl(ok && got == target ? 0 : 1);
		rep[2] = htonl((uint32_t)(got >> 32));
		rep[3] = htonl((uint32_t)got);
		(void)write_full(fd, rep, sizeof(rep));
	}
out:
	close(fd);
	return NULL;
}

static void *
serve(void *arg)
{
	int lfd = (int)(intptr_t)arg;

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pthread_t t;
		int one = 1;

		if (fd < 0)
			return NULL;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)fd) != 0) {
			close(fd);
			continue;
		}
		pthread_detach(t);
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 's' },
		{ "count", required_argument, NULL, 'n' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "connect", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mode = "echo", *conn = NULL;
	uint32_t size = 100;
	uint64_t count = 100000, bytes = 1ull << 30;
	struct sockaddr_in sa;
	uint8_t h[NP_HDR_LEN];
	uint32_t mg = htonl(NP_MAGIC);
	int ch, fd, one = 1;
	uint64_t t0, t1;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'm': mode = optarg; break;
		case 's': size = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'n': count = strtoull(optarg, NULL, 0); break;
		case 'b': bytes = strtoull(optarg, NULL, 0); break;
		case 'c': conn = optarg; break;
		default:
			fprintf(stderr, "usage: slipstream-netperf-kernel --mode echo|source|sink "
				"[--size S] [--count N] [--bytes B] [--connect IP:PORT]\n");
			return 2;
		}
	}
	if (size == 0 || size > 65536 || count == 0)
		return 2;
	if (strcmp(mode, "sink") == 0 && conn == NULL)
		return 2;	/* the loopback server has no source */
	for (uint32_t i = 0; i < NP_PAT_LEN; i++)
		pat[i] = np_pattern(i);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	if (conn != NULL) {
		char host[64];
		const char *c = strchr(conn, ':');

		if (c == NULL || (size_t)(c - conn) >= sizeof(host))
			return 2;
		memcpy(host, conn, (size_t)(c - conn));
		host[c - conn] = '\0';
		if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
			return 2;
		sa.sin_port = htons((uint16_t)atoi(c + 1));
	} else {
		socklen_t sl = sizeof(sa);
		pthread_t t;
		int lfd = socket(AF_INET, SOCK_STREAM, 0);

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
				listen(lfd, 16) != 0 || getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0 ||
				pthread_create(&t, NULL, serve, (void *)(intptr_t)lfd) != 0) {
			perror("slipstream-netperf-kernel: server");
			return 2;
		}
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("slipstream-netperf-kernel: connect");
		return 2;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memcpy(h, &mg, 4);
	h[4] = strcmp(mode, "echo") == 0 ? NP_ECHO : strcmp(mode, "sink") == 0 ? NP_SOURCE :
		NP_SINK;
	h[5] = h[6] = h[7] = 0;
	for (int i = 0; i < 8; i++)
		h[8 + i] = (uint8_t)((h[4] != NP_ECHO ? bytes : 0) >> (56 - 8 * i));
	if (write_full(fd, h, sizeof(h)) != 0)
		return 1;
	if (h[4] == NP_ECHO) {
		uint64_t *lat = calloc(count, sizeof(*lat));
		uint8_t buf[65536];

		if (lat == NULL)
			return 2;
		t0 = ns_now();
		for (uint64_t i = 0; i < count; i++) {
			uint64_t s = ns_now();

			if (write_full(fd, pat, size) != 0 || read_full(fd, buf, size) != 0 ||
					memcmp(buf, pat, size) != 0) {
				fprintf(stderr, "slipstream-netperf-kernel: echo failed at %" PRIu64 "\n",
					i);
				return 1;
			}
			lat[i] = ns_now() - s;
		}
		t1 = ns_now();
		qsort(lat, count, sizeof(*lat), cmp_u64);
		printf("{\"role\":\"kernel\",\"mode\":\"echo\",\"ok\":true,\"round_trips\":%" PRIu64
			",\"rtt_per_s\":%.1f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"seconds\":%.6f}\n",
			count, (double)count * 1e9 / (double)(t1 - t0), (double)lat[count / 2] / 1000.0,
			(double)lat[count * 99 / 100] / 1000.0, (double)(t1 - t0) / 1e9);
	} else if (h[4] == NP_SOURCE) {
		static uint8_t buf[1 << 20];
		uint64_t off = 0;

		t0 = ns_now();
		for (;;) {
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				perror("slipstream-netperf-kernel: read");
				return 1;
			}
			if (r == 0)
				break;
			for (ssize_t i = 0; i < r;) {
				uint32_t k = (uint32_t)((off + (uint64_t)i) % NP_PATTERN_PERIOD);
				size_t n = (size_t)(r - i) < 65536 ? (size_t)(r - i) : 65536;

				if (memcmp(buf + i, pat + k, n) != 0) {
					fprintf(stderr, "slipstream-netperf-kernel: byte mismatch near "
						"offset %" PRIu64 "\n", off + (uint64_t)i);
					return 1;
				}
				i += (ssize_t)n;
			}
			off += (uint64_t)r;
		}
		t1 = ns_now();
		if (off != bytes) {
			fprintf(stderr, "slipstream-netperf-kernel: %" PRIu64 " of %" PRIu64
				" bytes\n", off, bytes);
			return 1;
		}
		printf("{\"role\":\"kernel\",\"mode\":\"sink\",\"ok\":true,\"bytes\":%" PRIu64
			",\"gbit_s\":%.4f,\"seconds\":%.6f}\n", bytes,
			(double)bytes * 8 / ((double)(t1 - t0) / 1e9) / 1e9, (double)(t1 - t0) / 1e9);
	} else {
		uint64_t off = 0;
		uint32_t rep[4];

		t0 = ns_now();
		while (off < bytes) {
			uint32_t k = (uint32_t)(off % NP_PATTERN_PERIOD);
			uint64_t n = bytes - off < 65536 ? bytes - off : 65536;

			if (write_full(fd, pat + k, (size_t)n) != 0)
				return 1;
			off += n;
		}
		if (read_full(fd, rep, sizeof(rep)) != 0 || ntohl(rep[0]) != NP_REPORT ||
				ntohl(rep[1]) != 0) {
			fprintf(stderr, "slipstream-netperf-kernel: bad sink report\n");
			return 1;
		}
		t1 = ns_now();
		printf("{\"role\":\"kernel\",\"mode\":\"source\",\"ok\":true,\"bytes\":%" PRIu64
			",\"gbit_s\":%.4f,\"seconds\":%.6f}\n", bytes,
			(double)bytes * 8 / ((double)(t1 - t0) / 1e9) / 1e9, (double)(t1 - t0) / 1e9);
	}
	close(fd);
	return 0;
}
