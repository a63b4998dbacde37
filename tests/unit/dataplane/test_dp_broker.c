/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_broker: the topic table and meta.properties across restarts (topic id,
 * partition count and configs come back; cluster.id is stable; a different
 * node.id is refused), topic creation errors (TOPIC_ALREADY_EXISTS,
 * invalid names, INVALID_PARTITIONS, INVALID_CONFIG), validate-only checks
 * that create nothing, partition logs opened and closed with the
 * clean-shutdown marker, topic deletion (logs closed, directories removed,
 * table rewritten) and partition growth, and the storage.* delegate. Runs the real storage
 * engine (io_uring) in a temporary directory; no DPDK.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "dp_broker.h"
#include "dp_config.h"
#include "stor_log.h"

static char g_dir[256];

static void
config_make(struct dp_config *cfg, const char *node_id)
{
	char err[DP_CONFIG_ERR_LEN];

	memset(cfg, 0, sizeof(*cfg));
	assert_int_equal(dp_config_init(cfg), 0);
	assert_int_equal(dp_config_set(cfg, "log.dir", g_dir, "test", 1, err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(cfg, "node.id", node_id, "test", 2, err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(cfg, "num.partitions", "3", "test", 3, err, sizeof(err)),
		0);
	assert_int_equal(dp_config_finish(cfg, "test", err, sizeof(err)), 0);
}

static void
broker_start(struct dp_broker *b, struct dp_config *cfg, const char *node_id, int want)
{
	config_make(cfg, node_id);
	dp_broker_init(b);
	assert_int_equal(dp_broker_storage_key(b, "storage.cache.chunks", "8"), 0);
	assert_int_equal(dp_broker_storage_key(b, "storage.cache.chunk.bytes", "131072"), 0);
	assert_int_equal(dp_broker_start(b, cfg), want);
}

static bool
exists(const char *rel)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", g_dir, rel);
	return stat(path, &st) == 0;
}

/* Entries of the log dir renamed aside for removal (name-p.<unique>-delete). */
static int
count_aside(void)
{
	DIR *d = opendir(g_dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		n += len > 7 && strcmp(de->d_name + len - 7, "-delete") == 0;
	}
	closedir(d);
	return n;
}

/* Whether an entry renamed aside holds @file (a deleted partition's, before its removal). */
static bool
aside_has(const char *file)
{
	DIR *d = opendir(g_dir);
	struct dirent *de;
	bool found = false;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char path[900];
		struct stat st;
		size_t len = strlen(de->d_name);

		if (len <= 7 || strcmp(de->d_name + len - 7, "-delete") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", g_dir, de->d_name, file);
		found |= stat(path, &st) == 0;
	}
	closedir(d);
	return found;
}

/* Poll the engine until no directory removal is left (bounded). */
static void
removals_wait(struct dp_broker *b)
{
	struct stor_engine_stats st;

	for (int i = 0; i < 100000; i++) {
		stor_engine_poll(b->engine);
		stor_engine_stats(b->engine, &st);
		if (st.removals == 0)
			return;
		stor_engine_wait(b->engine, 1000);
	}
	fail_msg("directory removals did not finish");
}

static int
setup(void **state)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/test_dp_broker.XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_topic_names(void **state)
{
	assert_true(dp_broker_topic_name_valid("a", 1));
	assert_true(dp_broker_topic_name_valid("Orders_v2.eu-west", 17));
	assert_true(dp_broker_topic_name_valid("...", 3));
	assert_false(dp_broker_topic_name_valid("", 0));
	assert_false(dp_broker_topic_name_valid(".", 1));
	assert_false(dp_broker_topic_name_valid("..", 2));
	assert_false(dp_broker_topic_name_valid("a b", 3));
	assert_false(dp_broker_topic_name_valid("a/b", 3));
	char longname[251];
	memset(longname, 'x', sizeof(longname));
	assert_true(dp_broker_topic_name_valid(longname, 249));
	assert_false(dp_broker_topic_name_valid(longname, 250));
}

static void
test_storage_delegate(void **state)
{
	struct dp_broker b;

	dp_broker_init(&b);
	assert_int_equal(dp_broker_storage_key(&b, "storage.cache.chunks", "9"), 0);
	assert_int_equal(b.engine_opts.chunk_count, 9);
	assert_int_equal(dp_broker_storage_key(&b, "storage.fsync.acks.all", "true"), 0);
	assert_true(b.log_cfg.fsync_acks_all);
	assert_int_equal(dp_broker_storage_key(&b, "storage.no.such.key", "1"), -ENOENT);
	assert_int_equal(dp_broker_storage_key(&b, "storage.cache.chunks", "many"), -EINVAL);
}

static void
test_table_survives_restart(void **state)
{
	struct dp_config cfg;
	struct dp_broker b;
	struct dp_topic *t = NULL;
	uint8_t id[16];
	char cluster[32];

	broker_start(&b, &cfg, "4", 0);
	assert_true(exists("meta.properties"));
	assert_int_equal(b.n_topics, 0);
	assert_int_equal(strlen(b.cluster_id), 22);
	strcpy(cluster, b.cluster_id);

	assert_int_equal(dp_broker_topic_create(&b, "orders", 6, 2, "retention.ms=1000\n"
		"segment.bytes=1048576", &t), 0);
	assert_non_null(t);
	memcpy(id, t->id, 16);
	assert_int_equal(id[6] >> 4, 4); /* UUID v4 */
	assert_non_null(t->part[0].log);
	assert_non_null(t->part[1].log);
	assert_true(exists("orders-0") && exists("orders-1") && !exists("orders-2"));
	assert_int_equal(dp_broker_topic_create(&b, "auto", 4, 3, NULL, NULL), 0);

	/* Errors, and validate-only checks that create nothing. */
	assert_int_equal(dp_broker_topic_create(&b, "orders", 6, 1, NULL, NULL), -EEXIST);
	assert_int_equal(dp_broker_topic_create(&b, "bad name", 8, 1, NULL, NULL), -EINVAL);
	assert_int_equal(dp_broker_topic_create(&b, "zero", 4, 0, NULL, NULL), -EDOM);
	assert_int_equal(dp_broker_topic_create(&b, "huge", 4, DP_BROKER_MAX_PARTITIONS + 1,
		NULL, NULL), -EDOM);
	assert_int_equal(dp_broker_topic_create(&b, "cfg", 3, 1, "no.such.config=1", NULL),
		-EBADR);
	assert_int_equal(dp_broker_topic_create(&b, "cfg", 3, 1, "retention.ms=soon", NULL),
		-EBADR);
	assert_int_equal(dp_broker_topic_check(&b, "fresh", 5, 2, "retention.ms=5"), 0);
	assert_int_equal(dp_broker_topic_check(&b, "auto", 4, 2, NULL), -EEXIST);
	assert_null(dp_broker_topic_find(&b, "fresh", 5));
	assert_null(dp_broker_topic_find(&b, "cfg", 3));
	assert_false(exists("fresh-0") || exists("cfg-0") || exists("zero-0"));
	assert_int_equal(b.n_topics, 2);
	assert_int_equal(dp_broker_stop(&b), 0);
	dp_config_free(&cfg);
	assert_true(exists("orders-0/clean-shutdown"));
	assert_true(exists("auto-2/clean-shutdown"));

	/* Restart: same topics, ids, configs, cluster id; logs reopened. */
	broker_start(&b, &cfg, "4", 0);
	assert_string_equal(b.cluster_id, cluster);
	assert_int_equal(b.n_topics, 2);
	t = dp_broker_topic_find(&b, "orders", 6);
	assert_non_null(t);
	assert_int_equal(t->partitions, 2);
	assert_memory_equal(t->id, id, 16);
	assert_string_equal(t->configs, "retention.ms=1000\nsegment.bytes=1048576");
	assert_non_null(t->part[1].log);
	assert_int_equal(stor_log_end_offset(t->part[1].log), 0);
	t = dp_broker_topic_find(&b, "auto", 4);
	assert_non_null(t);
	assert_int_equal(t->partitions, 3);
	assert_null(dp_broker_topic_find(&b, "orde", 4));
	assert_int_equal(dp_broker_stop(&b), 0);
	dp_config_free(&cfg);

	/* meta.properties says node.id=4: another node.id is refused. */
	broker_start(&b, &cfg, "5", -EINVAL);
	dp_config_free(&cfg);
}

static void
touch(const char *rel)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", g_dir, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("x", f);
	fclose(f);
}

/* Delete closes the logs, removes the directories and rewrites the table; add partitions. */
static void
test_delete_and_add_partitions(void **state)
{
	struct dp_config cfg;
	struct dp_broker b;
	struct dp_topic *t = NULL;
	uint8_t id[16];

	broker_start(&b, &cfg, "1", 0);
	assert_int_equal(dp_broker_topic_create(&b, "gone", 4, 2, "retention.ms=1000", &t), 0);
	memcpy(id, t->id, 16);
	assert_int_equal(dp_broker_topic_create(&b, "kept", 4, 1, NULL, NULL), 0);
	assert_int_equal(dp_broker_topic_create(&b, "grow", 4, 1, NULL, NULL), 0);
	touch("gone-1/stray-file");
	struct stor_engine_stats st0, st1;
	stor_engine_stats(b.engine, &st0);
	assert_int_equal(dp_broker_topic_delete(&b, t), 0);
	assert_null(dp_broker_topic_find(&b, "gone", 4));
	assert_int_equal(b.n_topics, 2);
	/* The names go at once (renamed aside), the files a step per engine poll. */
	assert_false(exists("gone-0") || exists("gone-1"));
	assert_int_equal(count_aside(), 2);
	/* Closed for deletion: no clean-shutdown marker written (a clean close's last file). */
	assert_true(aside_has("stray-file"));
	assert_false(aside_has("clean-shutdown"));
	assert_true(exists("kept-0") && exists("grow-0"));
	removals_wait(&b);
	stor_engine_stats(b.engine, &st1);
	assert_int_equal(count_aside(), 0);
	assert_int_equal(st1.removals_done - st0.removals_done, 2);
	/* Through the ring where the kernel has IORING_OP_UNLINKAT (5.11): files and dirs. */
	assert_true(st1.async_unlinks - st0.async_unlinks >= 3);
	/* A topic of the same name right away starts empty. */
	assert_int_equal(dp_broker_topic_create(&b, "gone", 4, 1, NULL, &t), 0);
	assert_int_equal(dp_broker_topic_delete(&b, t), 0);
	assert_false(exists("gone-0"));

	/* Partitions: only more, at most the maximum; validate-only changes nothing. */
	t = dp_broker_topic_find(&b, "grow", 4);
	assert_int_equal(dp_broker_partitions_add(&b, t, 1, false), -EDOM);
	assert_int_equal(dp_broker_partitions_add(&b, t, 0, false), -EDOM);
	assert_int_equal(dp_broker_partitions_add(&b, t, DP_BROKER_MAX_PARTITIONS + 1, false),
		-EDOM);
	assert_int_equal(dp_broker_partitions_add(&b, t, 3, true), 0);
	assert_int_equal(t->partitions, 1);
	assert_false(exists("grow-1"));
	touch("grow-2-stale"); /* not a partition directory: left alone */
	assert_int_equal(dp_broker_partitions_add(&b, t, 3, false), 0);
	assert_int_equal(t->partitions, 3);
	assert_non_null(t->part[0].log);
	assert_non_null(t->part[2].log);
	assert_true(exists("grow-1") && exists("grow-2") && exists("grow-2-stale"));
	assert_int_equal(dp_broker_stop(&b), 0);
	dp_config_free(&cfg);
	/* What a crash left renamed aside (here one made by hand, and the last
	 * deletion unless a poll finished it) is removed after the next start. */
	char aside[600];
	snprintf(aside, sizeof(aside), "%s/x-0.0123-delete", g_dir);
	assert_int_equal(mkdir(aside, 0755), 0);
	touch("x-0.0123-delete/00000000000000000000.log");
	assert_true(count_aside() >= 1);

	/* Restart: the deletion and the new partitions were persisted. */
	broker_start(&b, &cfg, "1", 0);
	removals_wait(&b);
	assert_int_equal(count_aside(), 0);
	assert_int_equal(b.n_topics, 2);
	assert_null(dp_broker_topic_find(&b, "gone", 4));
	t = dp_broker_topic_find(&b, "grow", 4);
	assert_non_null(t);
	assert_int_equal(t->partitions, 3);
	assert_non_null(t->part[2].log);
	assert_false(exists("gone-0"));

	/* Configs: checked, replaced (logs reopened), persisted; refused ones change nothing. */
	t = dp_broker_topic_find(&b, "kept", 4);
	assert_int_equal(dp_broker_topic_configs_set(&b, t, "no.such.key=1", false), -EBADR);
	assert_int_equal(dp_broker_topic_configs_set(&b, t, "segment.bytes=1024", false), -EBADR);
	assert_string_equal(t->configs, "");
	assert_non_null(t->part[0].log);
	assert_int_equal(dp_broker_topic_configs_set(&b, t, "retention.ms=5", true), 0);
	assert_string_equal(t->configs, "");
	assert_int_equal(dp_broker_topic_configs_set(&b, t, "retention.ms=5\nsegment.bytes=8192",
		false), 0);
	assert_non_null(t->part[0].log);
	{
		struct stor_log_config lc;

		assert_int_equal(dp_broker_topic_log_config(&b, t, &lc), 0);
		assert_int_equal(lc.retention_ms, 5);
		assert_int_equal(lc.segment_bytes, 8192);
	}
	assert_int_equal(dp_broker_stop(&b), 0);
	dp_config_free(&cfg);
	broker_start(&b, &cfg, "1", 0);
	t = dp_broker_topic_find(&b, "kept", 4);
	assert_string_equal(t->configs, "retention.ms=5\nsegment.bytes=8192");

	/* Re-created under the same name: a new id, leftover files gone. */
	assert_int_equal(dp_broker_topic_create(&b, "gone", 4, 1, NULL, &t), 0);
	assert_memory_not_equal(t->id, id, 16);
	assert_int_equal(stor_log_end_offset(t->part[0].log), 0);
	assert_string_equal(t->configs, "");
	assert_int_equal(dp_broker_stop(&b), 0);
	dp_config_free(&cfg);
}

static void
test_corrupt_table_refused(void **state)
{
	struct dp_config cfg;
	struct dp_broker b;
	char path[300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", g_dir, DP_BROKER_TOPICS_FILE);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("good 000102030405060708090a0b0c0d0e0f 1\nbad 0001 x\n", f);
	fclose(f);
	broker_start(&b, &cfg, "1", -EINVAL);
	dp_config_free(&cfg);
	assert_int_equal(b.n_topics, 0);
	assert_null(b.engine);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topic_names),
		cmocka_unit_test(test_storage_delegate),
		cmocka_unit_test_setup_teardown(test_table_survives_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_table_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_and_add_partitions, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
