/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_raft: the metadata log on libraft + raft_uv in a temporary directory,
 * driven by the control process's own loop: a lone voter bootstraps and
 * leads, proposals commit and apply in order (a refused record answers its
 * error), a low snapshot threshold takes snapshots, and a reopened log
 * (after a clean close, and after the files were left as a crash leaves
 * them) rebuilds the same state from snapshot + entries.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <ftw.h>
#include <unistd.h>
#include <cmocka.h>

#include "ctl_loop.h"
#include "ctl_meta.h"
#include "ctl_raft.h"

struct run {
	struct ctl_loop loop;
	struct ctl_meta_state *state;
	struct ctl_raft *raft;
	int done;
	int results[256];
	int applied;
	int restored;
};

static volatile int never;

static void
on_applied(void *arg, const uint8_t *rec, size_t len, int rc)
{
	struct run *r = arg;

	(void)len;
	if (rec == NULL)
		r->restored++;
	else if (rc == 0)
		r->applied++;
}

static void
on_done(void *arg, int rc)
{
	int *slot = arg;

	*slot = rc;
}

static void
stop_when(void *arg, int64_t now)
{
	struct run *r = arg;

	(void)now;
	if (r->done)
		ctl_loop_stop(&r->loop);
}

/* Run the loop until *@flag != @unset or ~10 s. */
static void
run_until(struct run *r, int *flag, int unset)
{
	for (int i = 0; i < 2000 && *flag == unset; i++) {
		r->done = 0;
		/* One short turn: a timer stops the loop at its next period. */
		r->done = 1;
		ctl_loop_run(&r->loop, &never);
		r->loop.stop = false;
		usleep(5000);
	}
}

static int leader_flag;

static void
open_log(struct run *r, const char *dir)
{
	struct ctl_raft_cfg cfg = {.dir = dir, .node_id = 1, .voters = "", .snapshot_threshold = 4};

	memset(r, 0, sizeof(*r));
	assert_int_equal(ctl_loop_init(&r->loop), 0);
	assert_int_equal(ctl_loop_every(&r->loop, 5, stop_when, r), 0);
	r->state = ctl_meta_state_create();
	assert_non_null(r->state);
	r->raft = ctl_raft_create(&r->loop, &cfg, r->state, on_applied, r);
	assert_non_null(r->raft);
	for (int i = 0; i < 2000 && !ctl_raft_is_leader(r->raft); i++) {
		r->done = 1;
		ctl_loop_run(&r->loop, &never);
		r->loop.stop = false;
		usleep(2000);
	}
	assert_true(ctl_raft_is_leader(r->raft));
	/* Everything committed before is applied once a barrier completes. */
	leader_flag = 1;
	assert_int_equal(ctl_raft_barrier(r->raft, on_done, &leader_flag), 0);
	run_until(r, &leader_flag, 1);
	assert_int_equal(leader_flag, 0);
}

static void
close_log(struct run *r)
{
	ctl_raft_destroy(r->raft);
	ctl_meta_state_destroy(r->state);
	ctl_loop_fini(&r->loop);
}

static void
topic_rec(struct ctl_meta_buf *b, int i)
{
	struct ctl_meta_topic t;
	struct ctl_meta_part p = {.leader = 1, .n_replicas = 1, .replicas = {1}};

	memset(&t, 0, sizeof(t));
	for (int k = 0; k < 16; k++)
		t.id[k] = (uint8_t)(i * 31 + k + 1);
	snprintf(t.name, sizeof(t.name), "t%d", i);
	t.n_parts = 1;
	t.parts = &p;
	snprintf(t.configs, sizeof(t.configs), "retention.ms=%d", 1000 + i);
	b->len = 0;
	ctl_meta_enc_topic(b, &t);
}

static int
rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int
count_snapshots(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strncmp(e->d_name, "snapshot-", 9) == 0 && strstr(e->d_name, ".meta") == NULL;
	closedir(d);
	return n;
}

static void
test_propose_snapshot_reopen(void **state)
{
	char dir[] = "/tmp/raft-unit-XXXXXX";
	struct ctl_meta_buf b = {0};
	struct run r;
	int n = 30;

	(void)state;
	assert_non_null(mkdtemp(dir));
	open_log(&r, dir);
	for (int i = 0; i < n; i++) {
		topic_rec(&b, i % 25); /* the last 5 repeat a name: -EEXIST when applied */
		r.results[i] = 1;
		assert_int_equal(ctl_raft_propose(r.raft, b.p, b.len, on_done, &r.results[i]), 0);
	}
	run_until(&r, &r.results[n - 1], 1);
	for (int i = 0; i < n; i++)
		assert_int_equal(r.results[i], i < 25 ? 0 : -EEXIST);
	assert_int_equal(r.state->n_topics, 25);
	assert_int_equal(r.applied, 25);
	/* A delete, the last entry. */
	b.len = 0;
	ctl_meta_enc_topic_delete(&b, r.state->topics[3]->id, "t3");
	r.results[n] = 1;
	assert_int_equal(ctl_raft_propose(r.raft, b.p, b.len, on_done, &r.results[n]), 0);
	run_until(&r, &r.results[n], 1);
	assert_int_equal(r.results[n], 0);
	assert_int_equal(r.state->n_topics, 24);
	close_log(&r);
	assert_true(count_snapshots(dir) >= 1);

	/* Reopened: snapshot + the entries after it give the same state. */
	open_log(&r, dir);
	assert_true(r.restored >= 1);
	assert_int_equal(r.state->n_topics, 24);
	assert_null(ctl_meta_topic_find(r.state, "t3", 2));
	assert_non_null(ctl_meta_topic_find(r.state, "t24", 3));
	assert_string_equal(ctl_meta_topic_find(r.state, "t24", 3)->configs, "retention.ms=1024");
	/* And it takes proposals again. */
	topic_rec(&b, 40);
	r.results[0] = 1;
	assert_int_equal(ctl_raft_propose(r.raft, b.p, b.len, on_done, &r.results[0]), 0);
	run_until(&r, &r.results[0], 1);
	assert_int_equal(r.results[0], 0);
	assert_int_equal(r.state->n_topics, 25);
	close_log(&r);

	open_log(&r, dir);
	assert_int_equal(r.state->n_topics, 25);
	close_log(&r);
	ctl_meta_buf_free(&b);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * The largest TOPIC record (the dataplane's 16384 partitions, 16 replicas
 * each: about 1.1 MB) commits as one entry, and comes back from the entries
 * after a reopen and from a snapshot.
 */
static void
test_largest_record(void **state)
{
	char dir[] = "/tmp/raft-unit-XXXXXX";
	struct ctl_meta_buf b = {0};
	struct ctl_meta_topic t;
	struct ctl_meta_topic *got;
	struct run r;

	(void)state;
	assert_non_null(mkdtemp(dir));
	memset(&t, 0, sizeof(t));
	memset(t.id, 0xab, 16);
	snprintf(t.name, sizeof(t.name), "wide");
	t.n_parts = CTL_META_MAX_PARTITIONS;
	t.parts = calloc((size_t)t.n_parts, sizeof(*t.parts));
	assert_non_null(t.parts);
	for (int32_t i = 0; i < t.n_parts; i++) {
		t.parts[i].leader = 1;
		t.parts[i].n_replicas = CTL_META_MAX_REPLICAS;
		for (int k = 0; k < CTL_META_MAX_REPLICAS; k++)
			t.parts[i].replicas[k] = (i + k) % 64;
	}
	ctl_meta_enc_topic(&b, &t);
	free(t.parts);
	assert_int_equal(b.err, 0);
	assert_true(b.len > 1000000 && b.len <= CTL_META_REC_MAX);

	open_log(&r, dir);
	r.results[0] = 1;
	assert_int_equal(ctl_raft_propose(r.raft, b.p, b.len, on_done, &r.results[0]), 0);
	run_until(&r, &r.results[0], 1);
	assert_int_equal(r.results[0], 0);
	close_log(&r);

	/* From the entries. */
	open_log(&r, dir);
	got = ctl_meta_topic_find(r.state, "wide", 4);
	assert_non_null(got);
	assert_int_equal(got->n_parts, CTL_META_MAX_PARTITIONS);
	assert_int_equal(got->parts[CTL_META_MAX_PARTITIONS - 1].replicas[15],
		(CTL_META_MAX_PARTITIONS - 1 + 15) % 64);
	/* Past the snapshot threshold (4): the next open restores a snapshot holding it. */
	for (int i = 0; i < 5; i++) {
		topic_rec(&b, i);
		r.results[i] = 1;
		assert_int_equal(ctl_raft_propose(r.raft, b.p, b.len, on_done, &r.results[i]), 0);
	}
	run_until(&r, &r.results[4], 1);
	assert_int_equal(r.results[4], 0);
	close_log(&r);
	assert_true(count_snapshots(dir) >= 1);
	open_log(&r, dir);
	assert_true(r.restored >= 1);
	got = ctl_meta_topic_find(r.state, "wide", 4);
	assert_non_null(got);
	assert_int_equal(got->n_parts, CTL_META_MAX_PARTITIONS);
	assert_int_equal(r.state->n_topics, 6);
	close_log(&r);
	ctl_meta_buf_free(&b);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_propose_snapshot_reopen),
		cmocka_unit_test(test_largest_record),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
