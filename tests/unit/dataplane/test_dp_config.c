/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_config: the Java Properties syntax, the key table, every error path
 * (each must name FILE:LINE), derived values and the printed form loading
 * back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "dp_config.h"

struct ctx {
	struct dp_config cfg;
	char err[DP_CONFIG_ERR_LEN];
};

static int
setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (c == NULL || dp_config_init(&c->cfg) < 0)
		return -1;
	*state = c;
	return 0;
}

static int
teardown(void **state)
{
	struct ctx *c = *state;

	dp_config_free(&c->cfg);
	free(c);
	return 0;
}

static int
load(struct ctx *c, const char *text)
{
	c->err[0] = '\0';
	return dp_config_load_string(&c->cfg, "t.properties", text, strlen(text), c->err,
		sizeof(c->err));
}

/* Load then finish; returns the first failure. */
static int
load_finish(struct ctx *c, const char *text)
{
	int rc = load(c, text);

	if (rc < 0)
		return rc;
	return dp_config_finish(&c->cfg, "t.properties", c->err, sizeof(c->err));
}

static void
test_defaults_need_no_file(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(dp_config_finish(&c->cfg, "none", c->err, sizeof(c->err)), 0);
	assert_int_equal(c->cfg.n_listeners, 1);
	assert_string_equal(c->cfg.listener[0].name, "PLAINTEXT");
	assert_string_equal(c->cfg.listener[0].host, "127.0.0.1");
	assert_int_equal(c->cfg.listener[0].port, 9092);
	assert_int_equal(c->cfg.n_advertised, 1);
	assert_int_equal(c->cfg.advertised[0].port, 9092);
	assert_int_equal(c->cfg.node_id, 1);
	assert_int_equal(c->cfg.num_partitions, 1);
	assert_true(c->cfg.auto_create_topics_enable);
	assert_int_equal(c->cfg.message_max_bytes, 1048588);
	assert_int_equal(c->cfg.socket_request_max_bytes, 104857600);
	assert_int_equal(c->cfg.connections_max_idle_ms, 600000);
	assert_int_equal(c->cfg.log_retention_ms, 168LL * 3600 * 1000);
	assert_int_equal(c->cfg.log_roll_ms, 168LL * 3600 * 1000);
	assert_int_equal(c->cfg.log_segment_bytes, 1073741824);
	assert_string_equal(c->cfg.log_dirs, c->cfg.log_dir);
	/* DPDK on the default TAP port, or kernel sockets where DPDK cannot start. */
	assert_int_equal(c->cfg.dp_transport, DP_TRANSPORT_AUTO);
	assert_string_equal(c->cfg.dp_port_device, "net_tap0,iface=slipstream0");
	assert_string_equal(c->cfg.dp_port_ipv4_address, "198.18.0.2");
	assert_string_equal(c->cfg.dp_port_tap_address, "198.18.0.1/24");
	assert_int_equal(c->cfg.dp_port_mtu, 1500);
	assert_int_equal(c->cfg.n_lcores, 1);
	assert_int_equal(c->cfg.lcore[0], 0);
	assert_int_equal(c->cfg.net_lcore[0], 0);
	/* The frame limit is capped by the large-frame buffer. */
	assert_int_equal(c->cfg.max_frame_bytes, 16777216);
}

static void
test_properties_syntax(void **state)
{
	struct ctx *c = *state;
	const char *text =
		"# a comment\n"
		"! another comment\n"
		"   \t\n"
		"num.partitions=3\n"
		"default.replication.factor: 2\n"
		"min.insync.replicas 2\n"
		"  message.max.bytes   =   2000   \n"
		"log.dirs=/a,\\\n"
		"         /b\n"
		"# a comment ending in a backslash does not continue \\\n"
		"log.cleanup.policy=compact\n"
		"dpdk.eal.args=--a\\tb\\u0041\\n\n"
		"dataplane.log.level=DEBUG\r\n"
		"auto.create.topics.enable=FALSE\r"
		"log.segment.bytes=\\\r\n"
		"  1048576\n"
		"dpdk.file.prefix=x\\\\\n"
		"broker.id=1";

	assert_int_equal(load_finish(c, text), 0);
	assert_int_equal(c->cfg.num_partitions, 3);
	assert_int_equal(c->cfg.default_replication_factor, 2);
	assert_int_equal(c->cfg.min_insync_replicas, 2);
	assert_int_equal(c->cfg.message_max_bytes, 2000);
	assert_string_equal(c->cfg.log_dirs, "/a,/b");
	assert_string_equal(c->cfg.log_cleanup_policy, "compact");
	assert_string_equal(c->cfg.dpdk_eal_args, "--a\tbA"); /* trailing \n trimmed */
	assert_string_equal(c->cfg.dp_log_level, "debug");   /* table spelling */
	assert_false(c->cfg.auto_create_topics_enable);
	assert_int_equal(c->cfg.log_segment_bytes, 1048576);
	/* An even number of backslashes is an escaped backslash, not a continuation. */
	assert_string_equal(c->cfg.dpdk_file_prefix, "x\\");
	assert_int_equal(c->cfg.node_id, 1);
}

static void
test_escaped_separators_and_unicode(void **state)
{
	struct ctx *c = *state;

	/* Key characters may be escaped; \uXXXX becomes UTF-8 (é, and a surrogate pair). */
	assert_int_equal(load(c, "dpdk.eal\\.args = \\u00e9\\ud83d\\ude00=:x\n"), 0);
	assert_string_equal(c->cfg.dpdk_eal_args, "\xc3\xa9\xf0\x9f\x98\x80=:x");
	/* A key with no value gets the empty string. */
	assert_int_equal(load(c, "advertised.listeners\n"), 0);
	assert_string_equal(c->cfg.advertised_listeners, "");
}

static void
test_precedence(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(load_finish(c, "log.retention.hours=1\nlog.retention.minutes=5\n"
					"log.roll.hours=2\nlog.dir=/x\n"),
		0);
	assert_int_equal(c->cfg.log_retention_ms, 5 * 60000);
	assert_int_equal(c->cfg.log_roll_ms, 2 * 3600000);
	assert_string_equal(c->cfg.log_dirs, "/x");
}

static void
test_precedence_ms(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(load_finish(c, "log.retention.ms=1234\nlog.retention.minutes=5\n"
					"log.roll.ms=99\nlog.dirs=/d1,/d2\nlog.dir=/x\n"
					"log.retention.hours=-1\n"),
		0);
	assert_int_equal(c->cfg.log_retention_ms, 1234);
	assert_int_equal(c->cfg.log_roll_ms, 99);
	assert_string_equal(c->cfg.log_dirs, "/d1,/d2");
}

static void
test_retention_unlimited(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(load_finish(c, "log.retention.hours=-1\n"), 0);
	assert_int_equal(c->cfg.log_retention_ms, -1);
}

struct bad_case {
	const char *text;
	const char *err; /* expected message, exactly */
};

static void
test_errors_name_file_and_line(void **state)
{
	static const struct bad_case cases[] = {
		{"# c\nnum.partitions=1\nfoo.bar=1\n", "t.properties:3: unknown key 'foo.bar'"},
		{"num.partitions=abc", "t.properties:1: num.partitions: 'abc' is not an integer"},
		{"num.partitions=", "t.properties:1: num.partitions: '' is not an integer"},
		{"num.partitions=1.5", "t.properties:1: num.partitions: '1.5' is not an integer"},
		{"num.partitions=1k", "t.properties:1: num.partitions: '1k' is not an integer"},
		{"\n\nnum.partitions=0",
			"t.properties:3: num.partitions: 0 is out of range [1, 2147483647]"},
		{"num.partitions=2147483648",
			"t.properties:1: num.partitions: '2147483648' does not fit in an int (32 bits)"},
		{"log.retention.bytes=9223372036854775808",
			"t.properties:1: log.retention.bytes: '9223372036854775808' does not fit in "
			"a long (64 bits)"},
		{"connections.max.idle.ms=-2",
			"t.properties:1: connections.max.idle.ms: -2 is out of range [-1, "
			"9223372036854775807]"},
		{"auto.create.topics.enable=yes",
			"t.properties:1: auto.create.topics.enable: 'yes' is not true or false"},
		{"dataplane.transport=rdma",
			"t.properties:1: dataplane.transport: 'rdma' is not one of auto|kernel|dpdk"},
		{"dataplane.port.mtu=9001",
			"t.properties:1: dataplane.port.mtu: 9001 is out of range [576, 9000]"},
		{"log.cleanup.policy=delete, shred",
			"t.properties:1: log.cleanup.policy: 'shred' is not one of delete|compact"},
		{"dpdk.eal.args=\\u12", "t.properties:1: malformed \\uxxxx escape"},
		{"dpdk.eal.args=\\u12zz", "t.properties:1: malformed \\uxxxx escape"},
		{"dpdk.eal.args=a\\u0000b", "t.properties:1: NUL character in a key or value"},
		/* The error of a continued line names the line it began on. */
		{"a=1\\\n  2\n", "t.properties:1: unknown key 'a'"},
		{"x\n\nnum.partitions=\\\n  \\\n  zz\n", "t.properties:1: unknown key 'x'"},
		{"num.partitions=\\\n  \\\n  zz\n",
			"t.properties:1: num.partitions: 'zz' is not an integer"},
		{"node.id=2\nbroker.id=3\n", "t.properties:2: broker.id=3 differs from node.id=2"},
		{"broker.id=3\nnode.id=2\n", "t.properties:2: node.id=2 differs from broker.id=3"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctx *c = *state;

		dp_config_free(&c->cfg);
		assert_int_equal(dp_config_init(&c->cfg), 0);
		assert_int_equal(load(c, cases[i].text), -EINVAL);
		assert_string_equal(c->err, cases[i].err);
	}
}

static void
test_finish_errors_name_the_key_line(void **state)
{
	static const struct bad_case cases[] = {
		{"\nlisteners=PLAINTEXT:/x:1",
			"t.properties:2: listeners: 'PLAINTEXT:/x:1' is not NAME://host:port"},
		{"listeners=PLAINTEXT://host", "t.properties:1: listeners: 'PLAINTEXT://host' has no port"},
		{"listeners=PLAINTEXT://h:70000",
			"t.properties:1: listeners: 'PLAINTEXT://h:70000' has a bad port '70000'"},
		{"listeners=PLAINTEXT://h:",
			"t.properties:1: listeners: 'PLAINTEXT://h:' has a bad port"},
		{"listeners=FOO://:1",
			"t.properties:1: listeners: listener FOO is not in "
			"listener.security.protocol.map"},
		{"listeners=PLAINTEXT://:1,PLAINTEXT://:2",
			"t.properties:1: listeners: listener PLAINTEXT is named twice"},
		{"listeners=PLAINTEXT://:1,",
			"t.properties:1: listeners: trailing ',' in 'PLAINTEXT://:1,'"},
		{"listeners=", "t.properties:1: listeners: none given"},
		{"listeners=SSL://:9093",
			"t.properties:1: listeners: SSL uses SSL; only PLAINTEXT is served so far"},
		{"listeners=PLAINTEXT://::1:9092",
			"t.properties:1: listeners: IPv6 host in 'PLAINTEXT://::1:9092' needs "
			"[brackets]"},
		{"\n\nadvertised.listeners=EXTERNAL://h:1\n"
		 "listener.security.protocol.map=EXTERNAL:PLAINTEXT,PLAINTEXT:PLAINTEXT",
			"t.properties:3: advertised.listeners: EXTERNAL is not in listeners"},
		{"advertised.listeners=PLAINTEXT://h:0",
			"t.properties:1: advertised.listeners: 'PLAINTEXT://h:0' has a bad port '0'"},
		{"dataplane.lcores=0-",
			"t.properties:1: dataplane.lcores: '0-' is not a core list such as 0-3,6"},
		{"dataplane.lcores=3-1", "t.properties:1: dataplane.lcores: bad range 3-1 in '3-1'"},
		{"dataplane.net.lcores=5",
			"t.properties:1: dataplane.net.lcores: lcore 5 is not in dataplane.lcores"},
		{"dataplane.lcores=0-1\ndataplane.net.workers=2\ndataplane.net.lcores=1",
			"t.properties:3: dataplane.net.lcores: 1 lcores given for 2 workers"},
		{"dataplane.storage.writers=0",
			"t.properties:1: dataplane.storage.writers: 0 is out of range [1, 64]"},
		{"dataplane.storage.writers=65",
			"t.properties:1: dataplane.storage.writers: 65 is out of range [1, 64]"},
		{"dataplane.lcores=0-1\ndataplane.storage.writers=2\ndataplane.storage.lcores=1",
			"t.properties:3: dataplane.storage.lcores: 1 lcores given for 2 workers"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctx *c = *state;

		dp_config_free(&c->cfg);
		assert_int_equal(dp_config_init(&c->cfg), 0);
		assert_int_equal(load_finish(c, cases[i].text), -EINVAL);
		assert_string_equal(c->err, cases[i].err);
	}
}

static void
test_listeners(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(load_finish(c,
				 "listeners=PLAINTEXT://:9092, internal://[::1]:0,CONTROLLER://:9093\n"
				 "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,"
				 "INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
				 "controller.listener.names=CONTROLLER\n"
				 "advertised.listeners=PLAINTEXT://broker1.example:19092\n"),
		0);
	assert_int_equal(c->cfg.n_listeners, 3);
	assert_string_equal(c->cfg.listener[0].host, "");
	assert_int_equal(c->cfg.listener[0].port, 9092);
	assert_string_equal(c->cfg.listener[1].name, "INTERNAL");
	assert_string_equal(c->cfg.listener[1].host, "::1");
	assert_int_equal(c->cfg.listener[1].port, 0);
	assert_false(c->cfg.listener[1].controller);
	assert_true(c->cfg.listener[2].controller);
	assert_int_equal(c->cfg.n_advertised, 1);
	assert_string_equal(c->cfg.advertised[0].host, "broker1.example");
	assert_int_equal(c->cfg.advertised[0].port, 19092);
}

static void
test_placement(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(load_finish(c, "dataplane.lcores=0-2,5\ndataplane.net.workers=3\n"
					"dataplane.storage.writers=1\n"),
		0);
	assert_int_equal(c->cfg.n_lcores, 4);
	assert_int_equal(c->cfg.lcore[3], 5);
	/* Net workers from the first lcore, the storage writer from the last. */
	assert_int_equal(c->cfg.net_lcore[0], 0);
	assert_int_equal(c->cfg.net_lcore[2], 2);
	assert_int_equal(c->cfg.storage_lcore[0], 5);
}

static void
test_explicit_placement(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(load_finish(c, "dataplane.lcores=0-1\ndataplane.net.workers=2\n"
					"dataplane.net.lcores=1, 1\ndataplane.storage.writers=1\n"
					"dataplane.storage.lcores=0\n"),
		0);
	assert_int_equal(c->cfg.net_lcore[0], 1);
	assert_int_equal(c->cfg.net_lcore[1], 1);
	assert_int_equal(c->cfg.storage_lcore[0], 0);
}

static void
test_writers_placement(void **state)
{
	struct ctx *c = *state;

	/* Several storage writers: round robin from the last lcore, or as placed. */
	assert_int_equal(load_finish(c, "dataplane.lcores=0-1\ndataplane.storage.writers=3\n"), 0);
	assert_int_equal(c->cfg.dp_storage_writers, 3);
	assert_int_equal(c->cfg.storage_lcore[0], 1);
	assert_int_equal(c->cfg.storage_lcore[1], 0);
	assert_int_equal(c->cfg.storage_lcore[2], 1);
	dp_config_free(&c->cfg);
	dp_config_init(&c->cfg);
	assert_int_equal(load_finish(c, "dataplane.lcores=0\ndataplane.storage.writers=2\n"), 0);
	assert_int_equal(c->cfg.storage_lcore[0], 0);
	assert_int_equal(c->cfg.storage_lcore[1], 0);
}

static void
test_kafka_stock_file_loads(void **state)
{
	struct ctx *c = *state;
	/* The keys of Apache Kafka's config/kraft/server.properties and config/server.properties. */
	const char *text =
		"process.roles=broker,controller\n"
		"node.id=1\n"
		"controller.quorum.voters=1@localhost:9093\n"
		"listeners=PLAINTEXT://:9092,CONTROLLER://:9093\n"
		"inter.broker.listener.name=PLAINTEXT\n"
		"advertised.listeners=PLAINTEXT://localhost:9092\n"
		"controller.listener.names=CONTROLLER\n"
		"listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,"
		"SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL\n"
		"num.network.threads=3\n"
		"num.io.threads=8\n"
		"socket.send.buffer.bytes=102400\n"
		"socket.receive.buffer.bytes=102400\n"
		"socket.request.max.bytes=104857600\n"
		"log.dirs=/tmp/kraft-combined-logs\n"
		"num.partitions=1\n"
		"num.recovery.threads.per.data.dir=1\n"
		"offsets.topic.replication.factor=1\n"
		"transaction.state.log.replication.factor=1\n"
		"transaction.state.log.min.isr=1\n"
		"log.retention.hours=168\n"
		"log.segment.bytes=1073741824\n"
		"log.retention.check.interval.ms=300000\n"
		"zookeeper.connect=localhost:2181\n"
		"zookeeper.connection.timeout.ms=18000\n"
		"group.initial.rebalance.delay.ms=0\n";

	assert_int_equal(load_finish(c, text), 0);
	assert_int_equal(c->cfg.group_initial_rebalance_delay_ms, 0);
	assert_string_equal(c->cfg.log_dirs, "/tmp/kraft-combined-logs");
}

static void
test_print_loads_back(void **state)
{
	struct ctx *c = *state;
	struct dp_config again;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	assert_int_equal(load_finish(c, "num.partitions=7\ndpdk.eal.args=a\\\\b\\tc\n"
					"listeners=PLAINTEXT://127.0.0.1:0\n"),
		0);
	f = open_memstream(&text, &len);
	assert_non_null(f);
	dp_config_print(&c->cfg, f);
	fclose(f);
	assert_non_null(strstr(text, "\nnum.partitions=7\n"));
	assert_non_null(strstr(text, "\n#log.retention.minutes=  (unset)\n"));
	assert_int_equal(dp_config_init(&again), 0);
	assert_int_equal(dp_config_load_string(&again, "printed", text, len, c->err,
				 sizeof(c->err)),
		0);
	assert_int_equal(dp_config_finish(&again, "printed", c->err, sizeof(c->err)), 0);
	assert_int_equal(again.num_partitions, 7);
	assert_string_equal(again.dpdk_eal_args, "a\\b\tc");
	assert_int_equal(again.log_retention_ms, c->cfg.log_retention_ms);
	assert_int_equal(again.listener[0].port, 0);
	dp_config_free(&again);
	free(text);
}

static void
test_file_errors(void **state)
{
	struct ctx *c = *state;
	char path[] = "/tmp/test_dp_config_XXXXXX";
	int fd = mkstemp(path);
	char want[256];

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "num.partitions=2\n\nlog.flush.interval.ms=-5\n", 44), 44);
	close(fd);
	assert_int_equal(dp_config_load_file(&c->cfg, path, c->err, sizeof(c->err)), -EINVAL);
	snprintf(want, sizeof(want),
		"%s:3: log.flush.interval.ms: -5 is out of range [0, 9223372036854775807]", path);
	assert_string_equal(c->err, want);
	unlink(path);
	assert_int_equal(dp_config_load_file(&c->cfg, path, c->err, sizeof(c->err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	assert_string_equal(c->err, want);
}

static void
test_set_override(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(dp_config_set(&c->cfg, "num.partitions", " 4 ", "--override", 0, c->err,
				 sizeof(c->err)),
		0);
	assert_int_equal(c->cfg.num_partitions, 4);
	assert_int_equal(dp_config_set(&c->cfg, "nope", "1", "--override", 0, c->err,
				 sizeof(c->err)),
		-EINVAL);
	assert_string_equal(c->err, "--override: unknown key 'nope'");
	assert_int_equal(dp_config_finish(&c->cfg, "x", c->err, sizeof(c->err)), 0);
	/* After finish the configuration is shared read-only. */
	assert_int_equal(dp_config_set(&c->cfg, "num.partitions", "5", "--override", 0, c->err,
				 sizeof(c->err)),
		-EINVAL);
}

/*
 * Random bytes and random mutations of a valid file: never a crash (ASan
 * runs this too), and every failure names the file and a line in it.
 */
static void
test_random_input(void **state)
{
	static const char base[] = "num.partitions=3\nlisteners=PLAINTEXT://127.0.0.1:0\n"
				   "# c\nlog.dirs=/a,\\\n  /b\ndpdk.eal.args=\\u0041\\t\n"
				   "auto.create.topics.enable=true\n";
	static const char alphabet[] = "=:#!\\\n\r \tu0a9.-,/PLAINTEXT";
	unsigned int seed = 4242;
	char text[256];

	(void)state;
	for (int iter = 0; iter < 20000; iter++) {
		struct dp_config cfg;
		char err[DP_CONFIG_ERR_LEN];
		size_t len;
		int rc;

		if (iter % 2 == 0) {
			len = (size_t)(rand_r(&seed) % sizeof(text));
			for (size_t i = 0; i < len; i++)
				text[i] = (char)(rand_r(&seed) % 256);
		} else {
			len = sizeof(base) - 1;
			memcpy(text, base, len);
			for (int m = 0; m < 3; m++)
				text[rand_r(&seed) % len] =
					alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
		}
		assert_int_equal(dp_config_init(&cfg), 0);
		err[0] = '\0';
		rc = dp_config_load_string(&cfg, "r.properties", text, len, err, sizeof(err));
		if (rc == 0)
			rc = dp_config_finish(&cfg, "r.properties", err, sizeof(err));
		if (rc < 0) {
			assert_int_equal(rc, -EINVAL);
			assert_int_equal(strncmp(err, "r.properties:", 13), 0);
		}
		dp_config_free(&cfg);
	}
}

/* The example files under config/ stay loadable. */
static void
test_example_files_load(void **state)
{
	static const char *const files[] = {"server.properties", "benchmark.properties"};

	(void)state;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct dp_config cfg;
		char path[512];
		char err[DP_CONFIG_ERR_LEN];

		snprintf(path, sizeof(path), "%s/config/%s", SLP_SOURCE_DIR, files[i]);
		assert_int_equal(dp_config_init(&cfg), 0);
		if (dp_config_load_file(&cfg, path, err, sizeof(err)) < 0 ||
			dp_config_finish(&cfg, path, err, sizeof(err)) < 0)
			fail_msg("%s", err);
		dp_config_free(&cfg);
	}
}

/* A stand-in for the storage engine's option setter. */
static int g_delegated_depth;

static int
fake_storage_set(void *arg, const char *key, const char *value)
{
	(void)arg;
	if (strcmp(key, "storage.io.queue.depth") != 0)
		return -ENOENT;
	if (strcmp(value, "64") != 0 && strcmp(value, "128") != 0)
		return -EINVAL;
	g_delegated_depth = atoi(value);
	return 0;
}

static void
test_delegated_prefix(void **state)
{
	struct ctx *c = *state;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	/* Without a delegate, storage.* keys are unknown. */
	assert_int_equal(load(c, "storage.io.queue.depth=64\n"), -EINVAL);
	assert_string_equal(c->err, "t.properties:1: unknown key 'storage.io.queue.depth'");
	assert_int_equal(dp_config_delegate(&c->cfg, "storage.", fake_storage_set, NULL), 0);
	assert_int_equal(load(c, "storage.io.queue.depth = 64 \nstorage.io.queue.depth=128\n"),
		0);
	assert_int_equal(g_delegated_depth, 128);
	assert_int_equal(load(c, "\nstorage.io.queue.depth=7\n"), -EINVAL);
	assert_string_equal(c->err, "t.properties:2: storage.io.queue.depth: bad value '7'");
	assert_int_equal(load(c, "storage.nope=1\n"), -EINVAL);
	assert_string_equal(c->err, "t.properties:1: unknown key 'storage.nope'");
	assert_int_equal(dp_config_finish(&c->cfg, "t.properties", c->err, sizeof(c->err)), 0);
	f = open_memstream(&text, &len);
	dp_config_print(&c->cfg, f);
	fclose(f);
	assert_non_null(strstr(text, "\nstorage.io.queue.depth=128\n"));
	assert_null(strstr(text, "storage.io.queue.depth=64"));
	free(text);
}

static void
test_corelist(void **state)
{
	unsigned int ids[8];
	char err[128];

	(void)state;
	assert_int_equal(dp_config_parse_corelist("3,0-1,1", ids, 8, err, sizeof(err)), 3);
	assert_int_equal(ids[0], 0);
	assert_int_equal(ids[1], 1);
	assert_int_equal(ids[2], 3);
	assert_int_equal(dp_config_parse_corelist("0-9", ids, 8, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "more than 8 cores in '0-9'");
	assert_int_equal(dp_config_parse_corelist("", ids, 8, err, sizeof(err)), -EINVAL);
	assert_int_equal(dp_config_parse_corelist("1,", ids, 8, err, sizeof(err)), -EINVAL);
	assert_int_equal(dp_config_parse_corelist("a", ids, 8, err, sizeof(err)), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults_need_no_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_properties_syntax, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaped_separators_and_unicode, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_precedence_ms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_unlimited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_name_file_and_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_errors_name_the_key_line, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_listeners, setup, teardown),
		cmocka_unit_test_setup_teardown(test_placement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_explicit_placement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writers_placement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kafka_stock_file_loads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_print_loads_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_override, setup, teardown),
		cmocka_unit_test(test_corelist),
		cmocka_unit_test_setup_teardown(test_delegated_prefix, setup, teardown),
		cmocka_unit_test(test_example_files_load),
		cmocka_unit_test(test_random_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
