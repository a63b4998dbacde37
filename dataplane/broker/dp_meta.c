/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_meta: the metadata copy and its reconciliation with the broker's topic
 * table (see dp_meta.h). Reconciliation compares by topic id. A topic whose
 * id the state does not have is either one the log deleted while this
 * dataplane was away (the state remembers the ids of the newest deletions:
 * it is deleted here too) or one the log never had, created while the
 * dataplane ran in control.metadata=local mode after the one-time import:
 * that one is kept and sent to the control process to be imported into the
 * log with its id, partitions and configs (CTL_META_IMPORT_API), unless the
 * log has a topic of that name already. Then a local topic holding records is
 * kept (the log's topic of that name is not created here) and the conflict
 * logged as an error at each reconnection; an empty one gives way to the log's.
 * Then every topic of the state is created, grown or re-configured as needed.
 * Changes go through dp_broker's own calls, which persist `__slipstream_topics`
 * each time.
 */
#include "dp_meta.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_meta.h"
#include "dp_broker.h"
#include "dp_ctl.h"
#include "dp_log.h"
#include "dp_requests.h"
#include "dp_requests_int.h"

/* A topic the log holds must fit the broker's table, and the other way round. */
_Static_assert(CTL_META_MAX_PARTITIONS == DP_BROKER_MAX_PARTITIONS, "partition limits differ");
_Static_assert(CTL_META_MAX_TOPICS == DP_BROKER_MAX_TOPICS, "topic limits differ");
_Static_assert(CTL_META_IMPORT_API == DP_CTL_IMPORT_API, "import API keys differ");

static struct {
	struct dp_broker *b;
	struct ctl_meta_state *state;
	bool have_full;      /* a FULL batch arrived since the channel connected */
	/* Unknown topics already sent for import or reported, since the channel connected. */
	uint8_t noted[DP_BROKER_MAX_TOPICS][16];
	unsigned n_noted;
} g;

static bool
noted(const uint8_t id[16])
{
	for (unsigned i = 0; i < g.n_noted; i++) {
		if (memcmp(g.noted[i], id, 16) == 0)
			return true;
	}
	if (g.n_noted < DP_BROKER_MAX_TOPICS)
		memcpy(g.noted[g.n_noted++], id, 16);
	return false;
}

static int
push_hook(void *arg, const uint8_t *buf, size_t len)
{
	(void)arg;
	if (buf == NULL) {
		g.have_full = false; /* channel closed: keep the table, wait for the next FULL */
		g.n_noted = 0;       /* imports not answered yet are sent again */
		return 0;
	}
	return dp_meta_push(buf, len);
}

int
dp_meta_init(struct dp_broker *b)
{
	g.b = b;
	g.state = ctl_meta_state_create();
	if (g.state == NULL)
		return -ENOMEM;
	dp_ctl_meta_hook(push_hook, NULL);
	return 0;
}

void
dp_meta_fini(void)
{
	ctl_meta_state_destroy(g.state);
	g.state = NULL;
}

/* Same "k=v" lines in any order? */
static bool
configs_equal(const char *a, const char *b)
{
	size_t na = 0;
	size_t nb = 0;

	for (const char *p = a; *p != '\0'; p++)
		na += *p == '\n';
	for (const char *p = b; *p != '\0'; p++)
		nb += *p == '\n';
	if ((a[0] == '\0') != (b[0] == '\0') || na != nb)
		return false;
	while (*a != '\0') {
		size_t ll = strcspn(a, "\n");
		const char *p = b;
		bool found = false;

		while (*p != '\0' && !found) {
			size_t pl = strcspn(p, "\n");

			found = pl == ll && memcmp(p, a, ll) == 0;
			p += pl + (p[pl] == '\n');
		}
		if (!found)
			return false;
		a += ll + (a[ll] == '\n');
	}
	return true;
}

static struct dp_topic *
topic_by_id(struct dp_broker *b, const uint8_t id[16])
{
	for (unsigned i = 0; i < b->n_topics; i++) {
		if (memcmp(b->topics[i]->id, id, 16) == 0)
			return b->topics[i];
	}
	return NULL;
}

static struct dp_topic *
topic_by_name(struct dp_broker *b, const char *name)
{
	for (unsigned i = 0; i < b->n_topics; i++) {
		if (strcmp(b->topics[i]->name, name) == 0)
			return b->topics[i];
	}
	return NULL;
}

/* Does any partition of @t hold records? */
static bool
topic_has_data(struct dp_broker *b, const struct dp_topic *t)
{
	for (int32_t i = 0; i < t->partitions; i++) {
		if (dp_part_end(b, &t->part[i]) > dp_part_start(b, &t->part[i]))
			return true;
	}
	return false;
}

/* Ask the control process to put @t into the log as it is (its id, partitions, configs). */
static void
topic_import(struct dp_broker *b, const struct dp_topic *t)
{
	struct ctl_meta_buf rec = {0};
	struct ctl_meta_topic mt;
	int rc = -ENOMEM;

	memset(&mt, 0, sizeof(mt));
	memcpy(mt.id, t->id, 16);
	snprintf(mt.name, sizeof(mt.name), "%s", t->name);
	snprintf(mt.configs, sizeof(mt.configs), "%s", t->configs);
	mt.n_parts = t->partitions;
	mt.parts = calloc((size_t)t->partitions, sizeof(*mt.parts));
	if (mt.parts != NULL) {
		for (int32_t i = 0; i < t->partitions; i++) {
			mt.parts[i].leader = b->node_id;
			mt.parts[i].n_replicas = 1;
			mt.parts[i].replicas[0] = b->node_id;
		}
		ctl_meta_enc_topic(&rec, &mt);
		rc = rec.err ? rec.err : dp_ctl_topic_import(t->name, rec.p, rec.len);
	}
	if (rc == -EINPROGRESS)
		dp_log(DP_LOG_INFO, "metadata: topic %s is not in the metadata log (created in local "
			"mode): kept, and sent to the control process to be imported", t->name);
	else
		dp_log(DP_LOG_ERROR, "metadata: topic %s is not in the metadata log and could not "
			"be sent for import (%s); kept, tried again at the next reconnection",
			t->name, strerror(-rc));
	free(mt.parts);
	ctl_meta_buf_free(&rec);
}

int
dp_meta_reconcile(struct dp_broker *b)
{
	struct dp_requests *q = dp_requests_arg();
	const struct ctl_meta_state *s = g.state;
	bool drained = false;
	int failed = 0;
	int rc;

	/* Topics the state does not have (by id). */
	for (unsigned i = b->n_topics; i-- > 0;) {
		struct dp_topic *t = b->topics[i];
		const struct ctl_meta_topic *same;

		if (ctl_meta_topic_by_id(s, t->id) != NULL)
			continue;
		if (!ctl_meta_topic_deleted(s, t->id)) {
			/* Never in the log: created here in local mode. */
			same = ctl_meta_topic_find(s, t->name, strlen(t->name));
			if (same == NULL) {
				if (!noted(t->id))
					topic_import(b, t);
				continue;
			}
			if (topic_has_data(b, t)) {
				if (!noted(t->id))
					dp_log(DP_LOG_ERROR, "metadata: topic %s holds records but the "
						"metadata log has another topic of that name (created "
						"while this dataplane ran in local mode?); it is KEPT "
						"and the log's topic %s is not served here. Delete one "
						"of them to resolve.", t->name, same->name);
				continue;
			}
			dp_log(DP_LOG_WARN, "metadata: empty local topic %s gives way to the metadata "
				"log's topic of that name", t->name);
		}
		if (!drained) {
			dp_fetch_drain(q);
			drained = true;
		}
		rc = dp_broker_topic_delete(b, t);
		if (rc < 0) {
			dp_log(DP_LOG_ERROR, "metadata: deleting topic %s: %s", t->name, strerror(-rc));
			failed++;
		}
	}
	for (uint32_t i = 0; i < s->n_topics; i++) {
		const struct ctl_meta_topic *mt = s->topics[i];
		struct dp_topic *t = topic_by_id(b, mt->id);

		if (t == NULL) {
			if (topic_by_name(b, mt->name) != NULL)
				continue; /* a local topic with records kept (logged above) */
			rc = dp_broker_topic_create_id(b, mt->name, strlen(mt->name), mt->n_parts,
				mt->configs, mt->id, NULL);
			if (rc < 0) {
				dp_log(DP_LOG_ERROR, "metadata: creating topic %s: %s", mt->name,
					strerror(-rc));
				failed++;
			}
			continue;
		}
		if (mt->n_parts > t->partitions) {
			rc = dp_broker_partitions_add(b, t, mt->n_parts, false);
			if (rc < 0) {
				dp_log(DP_LOG_ERROR, "metadata: %s to %" PRId32 " partitions: %s",
					t->name, mt->n_parts, strerror(-rc));
				failed++;
			}
		}
		if (!configs_equal(t->configs, mt->configs)) {
			if (!drained) {
				dp_fetch_drain(q);
				drained = true;
			}
			rc = dp_broker_topic_configs_set(b, t, mt->configs, false);
			if (rc < 0) {
				dp_log(DP_LOG_ERROR, "metadata: configs of %s: %s", t->name,
					strerror(-rc));
				failed++;
			}
		}
	}
	return failed;
}

int
dp_meta_push(const uint8_t *buf, size_t len)
{
	enum ctl_meta_batch_kind kind;
	int64_t n = ctl_meta_batch_check(buf, len, &kind);
	const uint8_t *rec;
	size_t rec_len;
	size_t off = 0;
	int rc = 0;

	if (g.state == NULL || dp_ctl_metadata_local())
		return 0;
	if (n < 0) {
		dp_log(DP_LOG_WARN, "metadata: a batch from the control process does not decode");
		return -EPROTO;
	}
	if (kind == CTL_META_BATCH_FULL) {
		rc = ctl_meta_restore(g.state, buf, len);
		g.have_full = rc == 0;
		if (rc == 0)
			dp_log(DP_LOG_INFO, "metadata from the control process: %u topic(s), %u "
				"broker(s)", g.state->n_topics, g.state->n_brokers);
	} else if (!g.have_full) {
		return -EPROTO; /* deltas only apply on top of a whole state */
	} else {
		while (rc == 0 && ctl_meta_batch_next(buf, len, &off, &rec, &rec_len) == 1)
			rc = ctl_meta_apply(g.state, rec, rec_len);
	}
	if (rc < 0) {
		/* Out of step with the control process: start over with a FULL batch. */
		dp_log(DP_LOG_WARN, "metadata: a %s batch does not apply (%s)",
			kind == CTL_META_BATCH_FULL ? "full" : "delta", strerror(-rc));
		g.have_full = false;
		return -EPROTO;
	}
	dp_meta_reconcile(g.b);
	return 0;
}

int
dp_meta_autocreate(struct dp_broker *b, const char *name, size_t len, struct dp_topic **out)
{
	*out = NULL;
	if (!dp_broker_topic_name_valid(name, len))
		return -EINVAL;
	if (dp_ctl_metadata_local())
		return dp_broker_topic_create(b, name, len, b->num_partitions, NULL, out);
	return dp_ctl_topic_autocreate(name, len);
}
