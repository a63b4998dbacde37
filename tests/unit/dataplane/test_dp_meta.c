/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_meta: metadata batches from the control process applied to a real
 * broker's topic table (storage in a temporary directory): a FULL batch
 * creates topics with the log's ids, partitions and configs; DELTA batches
 * grow, re-configure and delete (directories removed); a topic the log
 * never had (created in local mode) is kept (its import is sent when the
 * channel is up: not here), one whose id the log says it deleted is
 * deleted; a FULL batch with a name under another id replaces the (empty)
 * topic; a DELTA before any FULL batch, and a batch that does not decode,
 * are refused; local mode ignores pushes.
 */
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

#include "ctl_meta.h"
#include "dp_broker.h"
#include "dp_config.h"
#include "dp_ctl.h"
#include "dp_meta.h"

static char g_dir[256];

static void
broker_start(struct dp_broker *b, struct dp_config *cfg)
{
	char err[DP_CONFIG_ERR_LEN];

	memset(cfg, 0, sizeof(*cfg));
	assert_int_equal(dp_config_init(cfg), 0);
	assert_int_equal(dp_config_set(cfg, "log.dir", g_dir, "test", 1, err, sizeof(err)), 0);
	assert_int_equal(dp_config_finish(cfg, "test", err, sizeof(err)), 0);
	dp_broker_init(b);
	assert_int_equal(dp_broker_storage_key(b, "storage.cache.chunks", "16"), 0);
	assert_int_equal(dp_broker_storage_key(b, "storage.cache.chunk.bytes", "131072"), 0);
	assert_int_equal(dp_broker_start(b, cfg), 0);
}

static bool
exists(const char *rel)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", g_dir, rel);
	return stat(path, &st) == 0;
}

static void
topic(struct ctl_meta_buf *rec, uint8_t seed, const char *name, int32_t n, const char *configs)
{
	struct ctl_meta_topic t;
	struct ctl_meta_part parts[8];

	memset(&t, 0, sizeof(t));
	memset(parts, 0, sizeof(parts));
	for (int i = 0; i < 16; i++)
		t.id[i] = (uint8_t)(seed + i);
	snprintf(t.name, sizeof(t.name), "%s", name);
	t.n_parts = n;
	t.parts = parts;
	for (int32_t i = 0; i < n; i++) {
		parts[i].leader = 1;
		parts[i].n_replicas = 1;
		parts[i].replicas[0] = 1;
	}
	snprintf(t.configs, sizeof(t.configs), "%s", configs);
	rec->len = 0;
	ctl_meta_enc_topic(rec, &t);
}

static void
batch_add(struct ctl_meta_buf *batch, struct ctl_meta_buf *rec)
{
	ctl_meta_batch_add(batch, 0, rec->p, rec->len);
}

static void
test_push_reconcile(void **state)
{
	struct dp_broker b;
	struct dp_config cfg;
	struct ctl_meta_buf batch = {0};
	struct ctl_meta_buf rec = {0};
	struct ctl_meta_part more[2] = {{.leader = 1, .n_replicas = 1, .replicas = {1}},
		{.leader = 1, .n_replicas = 1, .replicas = {1}}};
	struct ctl_meta_cfg_op op = {.op = CTL_META_OP_SET,
		.key = {.ptr = "segment.ms", .len = 10}, .value = {.ptr = "60000", .len = 5}};
	struct dp_topic *t;
	uint8_t id_a[16];

	(void)state;
	broker_start(&b, &cfg);
	assert_int_equal(dp_ctl_config_key(NULL, "control.metadata", "controller"), 0);
	assert_int_equal(dp_meta_init(&b), 0);
	assert_int_equal(dp_broker_topic_create(&b, "stray", 5, 1, NULL, NULL), 0);

	/* A DELTA before any FULL batch does not apply; garbage does not decode. */
	ctl_meta_batch_begin(&batch, CTL_META_BATCH_DELTA);
	topic(&rec, 1, "a", 2, "");
	batch_add(&batch, &rec);
	assert_int_equal(dp_meta_push(batch.p, batch.len), -EPROTO);
	assert_int_equal(dp_meta_push((const uint8_t *)"SLMBxx", 6), -EPROTO);
	assert_null(dp_broker_topic_find(&b, "a", 1));

	/* FULL: a and b created with the log's ids; "stray" is not in the log: kept. */
	batch.len = 0;
	ctl_meta_batch_begin(&batch, CTL_META_BATCH_FULL);
	topic(&rec, 1, "a", 2, "retention.ms=1000");
	batch_add(&batch, &rec);
	topic(&rec, 50, "b", 1, "");
	batch_add(&batch, &rec);
	assert_int_equal(dp_meta_push(batch.p, batch.len), 0);
	t = dp_broker_topic_find(&b, "a", 1);
	assert_non_null(t);
	for (int i = 0; i < 16; i++)
		id_a[i] = (uint8_t)(1 + i);
	assert_memory_equal(t->id, id_a, 16);
	assert_int_equal(t->partitions, 2);
	assert_string_equal(t->configs, "retention.ms=1000");
	assert_non_null(dp_broker_topic_find(&b, "b", 1));
	assert_non_null(dp_broker_topic_find(&b, "stray", 5));
	assert_true(exists("stray-0"));
	assert_true(exists("a-1"));

	/* The same FULL state remembering stray's id as deleted: stray goes. */
	{
		struct ctl_meta_state *gone = ctl_meta_state_create();

		assert_non_null(gone);
		memcpy(gone->deleted[0], dp_broker_topic_find(&b, "stray", 5)->id, 16);
		gone->n_deleted = 1;
		gone->deleted_at = 1;
		rec.len = 0;
		ctl_meta_enc_deleted(&rec, gone);
		batch_add(&batch, &rec);
		ctl_meta_state_destroy(gone);
	}
	assert_int_equal(dp_meta_push(batch.p, batch.len), 0);
	assert_null(dp_broker_topic_find(&b, "stray", 5));
	assert_false(exists("stray-0"));
	assert_non_null(dp_broker_topic_find(&b, "a", 1));

	/* DELTA: a grows and gets a config, b is deleted. */
	batch.len = 0;
	ctl_meta_batch_begin(&batch, CTL_META_BATCH_DELTA);
	rec.len = 0;
	ctl_meta_enc_partitions(&rec, id_a, 2, 2, more);
	batch_add(&batch, &rec);
	rec.len = 0;
	ctl_meta_enc_configs(&rec, id_a, false, &op, 1);
	batch_add(&batch, &rec);
	rec.len = 0;
	ctl_meta_enc_topic_delete(&rec, dp_broker_topic_find(&b, "b", 1)->id, "b");
	batch_add(&batch, &rec);
	assert_int_equal(dp_meta_push(batch.p, batch.len), 0);
	t = dp_broker_topic_find(&b, "a", 1);
	assert_int_equal(t->partitions, 4);
	assert_true(exists("a-3"));
	assert_non_null(strstr(t->configs, "segment.ms=60000"));
	assert_non_null(strstr(t->configs, "retention.ms=1000"));
	assert_null(dp_broker_topic_find(&b, "b", 1));
	assert_false(exists("b-0"));

	/* FULL with "a" under another id: the old one goes, the new one comes. */
	batch.len = 0;
	ctl_meta_batch_begin(&batch, CTL_META_BATCH_FULL);
	topic(&rec, 99, "a", 1, "");
	batch_add(&batch, &rec);
	assert_int_equal(dp_meta_push(batch.p, batch.len), 0);
	t = dp_broker_topic_find(&b, "a", 1);
	assert_non_null(t);
	assert_int_equal(t->id[0], 99);
	assert_int_equal(t->partitions, 1);
	assert_false(exists("a-3"));

	/* Local mode: pushes are ignored. */
	assert_int_equal(dp_ctl_config_key(NULL, "control.metadata", "local"), 0);
	batch.len = 0;
	ctl_meta_batch_begin(&batch, CTL_META_BATCH_FULL);
	assert_int_equal(dp_meta_push(batch.p, batch.len), 0);
	assert_non_null(dp_broker_topic_find(&b, "a", 1));

	dp_meta_fini();
	assert_int_equal(dp_broker_stop(&b), 0);
	dp_config_free(&cfg);
	ctl_meta_buf_free(&batch);
	ctl_meta_buf_free(&rec);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/raft-dp-meta.XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_push_reconcile, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
