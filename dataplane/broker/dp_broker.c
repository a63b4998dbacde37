/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_broker: storage engine, topic table and partition logs (see
 * dp_broker.h).
 *
 * The topic table file is text, one topic per line:
 *
 *   <name> <topic id, 32 hex digits> <partitions>[ <key>=<value>]...
 *
 * Topic names cannot hold spaces (Kafka's rule), and config values given to
 * CreateTopics that hold spaces or newlines are refused. The file is
 * rewritten whole on every change (topic creation is rare): written to
 * `.tmp`, fsynced, renamed over, and the directory fsynced, so a crash
 * leaves the old or the new table. Everything here allocates, and only at
 * start-up or topic creation, never on the produce or fetch path.
 */
#include "dp_broker.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_pause.h>

#include "dp_config.h"
#include "dp_log.h"
#include "dp_metrics.h"
#include "dp_reactor.h"
#include "dp_requests.h"
#include "stor_log.h"

/*
 * The storage engine's messages, as the dataplane's log lines (one write
 * each). Its info lines (every roll, every deleted segment, every log
 * recovered at a start: 10,000 at a restart of 10,000 partitions) are debug
 * here; the dataplane logs retention and recovery summaries itself.
 */
static void
storage_log(void *ctx, int level, const char *msg)
{
	enum dp_log_level l = level <= STOR_LOG_ERR    ? DP_LOG_ERROR
	                      : level <= STOR_LOG_WARN ? DP_LOG_WARN
	                                               : DP_LOG_DEBUG;

	(void)ctx;
	if (DP_LOG_ENABLED(l))
		dp_log(l, "storage: %s", msg);
}

void
dp_broker_init(struct dp_broker *b)
{
	memset(b, 0, sizeof(*b));
	stor_engine_opts_init(&b->engine_opts);
	b->engine_opts.log_fn = storage_log;
	stor_log_config_init(&b->log_cfg);
	b->node_id = 1;
	b->num_partitions = 1;
	b->producers_max = DP_PRODUCERS_MAX_DEFAULT;
	b->producer_expiration_ms = DP_PRODUCER_EXPIRATION_MS_DEFAULT;
	b->retention_check_ms = 300000;
	b->n_writers = 1;
	b->writers[0].lcore = LCORE_ID_ANY; /* the lcore of dp_broker_start() */
}

int
dp_broker_writers_set(struct dp_broker *b, unsigned n, const unsigned *lcores)
{
	if (n == 0 || n > DP_BROKER_MAX_WRITERS)
		return -EINVAL;
	b->n_writers = n;
	for (unsigned w = 0; w < n; w++)
		b->writers[w].lcore = lcores[w];
	return 0;
}

unsigned
dp_broker_owner(const uint8_t id[16], int32_t partition, unsigned n)
{
	uint32_t h = 2166136261u; /* FNV-1a over the topic id and the partition index */
	uint32_t p = (uint32_t)partition;

	if (n <= 1)
		return 0;
	for (int i = 0; i < 16; i++)
		h = (h ^ id[i]) * 16777619u;
	for (int i = 0; i < 4; i++)
		h = (h ^ ((p >> (8 * i)) & 0xff)) * 16777619u;
	h ^= h >> 15; /* FNV's low bits mix poorly: fold the high ones in before the modulo */
	return h % n;
}

bool
dp_broker_writer_local(const struct dp_broker *b, unsigned w)
{
	return b->n_writers == 1 || b->writers[w].lcore == rte_lcore_id();
}

struct exec_call {
	int (*fn)(void *);
	void *arg;
	int rc;
	int done;
};

static void
exec_msg(void *arg)
{
	struct exec_call *c = arg;

	c->rc = c->fn(c->arg);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
}

int
dp_broker_exec(struct dp_broker *b, unsigned w, int (*fn)(void *), void *arg)
{
	struct exec_call c = {.fn = fn, .arg = arg};
	int rc;

	if (dp_broker_writer_local(b, w))
		return fn(arg);
	while ((rc = dp_msg_send(b->writers[w].lcore, exec_msg, &c)) == -ENOBUFS)
		rte_pause();
	if (rc < 0)
		return rc;
	while (!__atomic_load_n(&c.done, __ATOMIC_ACQUIRE))
		rte_pause();
	return c.rc;
}

/*
 * Per-lcore outboxes of dp_broker_post(): messages that met a full ring,
 * sent again in order by dp_broker_poll() on that lcore. Each is touched by
 * its own lcore only.
 */
#define OUTBOX_CAP 8192u

struct outbox_msg {
	unsigned lcore;
	void (*fn)(void *);
	void *arg;
};

struct outbox {
	struct outbox_msg m[OUTBOX_CAP];
	unsigned head;
	unsigned n;
};

static struct outbox *g_outbox[RTE_MAX_LCORE];

int
dp_broker_post(unsigned lcore, void (*fn)(void *), void *arg)
{
	unsigned self = rte_lcore_id();
	struct outbox *o = self < RTE_MAX_LCORE ? g_outbox[self] : NULL;

	if ((o == NULL || o->n == 0) && dp_msg_send(lcore, fn, arg) == 0)
		return 0;
	if (o == NULL && self < RTE_MAX_LCORE) {
		o = calloc(1, sizeof(*o)); /* once per lcore, at the first full ring */
		g_outbox[self] = o;
	}
	if (o == NULL || o->n == OUTBOX_CAP) {
		dp_log(DP_LOG_ERROR, "lcore %u: outbox full, a message to lcore %u is lost", self,
			lcore);
		return -ENOBUFS;
	}
	o->m[(o->head + o->n) % OUTBOX_CAP] = (struct outbox_msg){lcore, fn, arg};
	o->n++;
	return 0;
}

/* Send what the calling lcore's outbox holds, in order, until a ring is full. */
static int
outbox_flush(void)
{
	unsigned self = rte_lcore_id();
	struct outbox *o = self < RTE_MAX_LCORE ? g_outbox[self] : NULL;
	int sent = 0;

	while (o != NULL && o->n > 0) {
		struct outbox_msg *m = &o->m[o->head];

		if (dp_msg_send(m->lcore, m->fn, m->arg) < 0)
			break;
		o->head = (o->head + 1) % OUTBOX_CAP;
		o->n--;
		sent++;
	}
	return sent;
}

void
dp_part_publish(struct dp_partition *pp)
{
	if (pp->log == NULL)
		return;
	__atomic_store_n(&pp->pub_end, stor_log_end_offset(pp->log), __ATOMIC_RELEASE);
	__atomic_store_n(&pp->pub_written, stor_log_written_offset(pp->log), __ATOMIC_RELEASE);
	__atomic_store_n(&pp->pub_start, stor_log_start_offset(pp->log), __ATOMIC_RELEASE);
	__atomic_store_n(&pp->pub_failed, stor_log_failed(pp->log) != 0, __ATOMIC_RELEASE);
}

int64_t
dp_part_end(const struct dp_broker *b, const struct dp_partition *pp)
{
	if (pp->log != NULL && dp_broker_writer_local(b, pp->writer))
		return stor_log_end_offset(pp->log);
	return __atomic_load_n(&pp->pub_end, __ATOMIC_ACQUIRE);
}

int64_t
dp_part_written(const struct dp_broker *b, const struct dp_partition *pp)
{
	if (pp->log != NULL && dp_broker_writer_local(b, pp->writer))
		return stor_log_written_offset(pp->log);
	return __atomic_load_n(&pp->pub_written, __ATOMIC_ACQUIRE);
}

int64_t
dp_part_start(const struct dp_broker *b, const struct dp_partition *pp)
{
	if (pp->log != NULL && dp_broker_writer_local(b, pp->writer))
		return stor_log_start_offset(pp->log);
	return __atomic_load_n(&pp->pub_start, __ATOMIC_ACQUIRE);
}

bool
dp_part_offline(const struct dp_broker *b, const struct dp_partition *pp)
{
	if (pp->log == NULL)
		return true;
	if (dp_broker_writer_local(b, pp->writer))
		return stor_log_failed(pp->log) != 0;
	return __atomic_load_n(&pp->pub_failed, __ATOMIC_ACQUIRE) != 0;
}

/* The owned list of writer @w (its lcore only). */
static int
owned_add(struct dp_writer *wr, struct dp_partition *pp)
{
	if (wr->n_owned == wr->cap_owned) {
		unsigned cap = wr->cap_owned > 0 ? wr->cap_owned * 2 : 64;
		struct dp_partition **o = realloc(wr->owned, sizeof(*o) * cap);

		if (o == NULL)
			return -ENOMEM;
		wr->owned = o;
		wr->cap_owned = cap;
	}
	wr->owned[wr->n_owned++] = pp;
	return 0;
}

static void
owned_remove(struct dp_writer *wr, struct dp_partition *pp)
{
	for (unsigned i = 0; i < wr->n_owned; i++) {
		if (wr->owned[i] == pp) {
			wr->owned[i] = wr->owned[--wr->n_owned];
			return;
		}
	}
}

int
dp_broker_storage_key(void *arg, const char *key, const char *value)
{
	struct dp_broker *b = arg;
	int rc = stor_engine_opts_set(&b->engine_opts, key, value);

	if (rc != -ENOENT)
		return rc;
	return stor_log_config_set(&b->log_cfg, key, value);
}

bool
dp_broker_topic_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > DP_BROKER_TOPIC_NAME_MAX)
		return false;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

struct dp_topic *
dp_broker_topic_find(struct dp_broker *b, const char *name, size_t len)
{
	for (unsigned i = 0; i < b->n_topics; i++) {
		struct dp_topic *t = b->topics[i];

		if (strlen(t->name) == len && memcmp(t->name, name, len) == 0)
			return t;
	}
	return NULL;
}

/* Apply "k=v\nk=v" topic configs to @cfg. -EBADR on a bad one. */
static int
apply_configs(struct stor_log_config *cfg, const char *configs)
{
	char buf[DP_BROKER_CONFIGS_MAX];
	char *save = NULL;

	if (configs == NULL || configs[0] == '\0')
		return 0;
	if (strlen(configs) >= sizeof(buf))
		return -EBADR;
	strcpy(buf, configs);
	for (char *kv = strtok_r(buf, "\n", &save); kv != NULL; kv = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(kv, '=');

		if (eq == NULL || strchr(eq + 1, ' ') != NULL || strchr(kv, ' ') != NULL)
			return -EBADR;
		*eq = '\0';
		if (stor_log_config_set(cfg, kv, eq + 1) < 0)
			return -EBADR;
	}
	return 0;
}

/* The suffix of a partition directory renamed aside for removal (Kafka's). */
#define DELETE_SUFFIX "-delete"

struct removal_arg {
	struct dp_broker *b;
	const char *path;
};

/*
 * On writer 0's lcore: its engine unlinks the directory's files through the
 * ring, a step per tick (stor_engine_remove_dir); in place without one.
 */
static int
op_remove_dir(void *arg)
{
	struct removal_arg *a = arg;
	struct stor_engine *e = a->b->writers[0].engine;
	int rc = e != NULL ? stor_engine_remove_dir(e, a->path) : -ENODEV;

	if (rc < 0 && rc != -ENOENT && (rc = stor_remove_tree(a->path)) < 0)
		dp_log(DP_LOG_WARN, "removing %s: %s", a->path, strerror(-rc));
	return 0;
}

/*
 * Remove @dir/@name-@p for every p in [from, to): partition directories,
 * their logs closed. Each is renamed aside at once (@name-@p.<unique>-delete,
 * as Kafka does: a topic of the same name may be created right after) and its
 * files unlinked off the reactor: a large segment's last unlink frees its
 * blocks, a synchronous discard on some file systems. Leftovers of a
 * shutdown or crash go at the next start (removals_resume).
 */
static void
partition_dirs_remove(struct dp_broker *b, const char *name, int32_t from, int32_t to)
{
	char path[sizeof(b->dir) + DP_BROKER_TOPIC_NAME_MAX + 16];
	char aside[sizeof(path) + 48];
	static uint32_t seq;
	struct timespec ts;
	struct stat st;

	for (int32_t p = from; p < to; p++) {
		struct removal_arg a = {.b = b, .path = aside};

		snprintf(path, sizeof(path), "%s/%s-%" PRId32, b->dir, name, p);
		if (stat(path, &st) < 0)
			continue;
		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(aside, sizeof(aside), "%s.%016" PRIx64 "%08" PRIx32 DELETE_SUFFIX, path,
			(uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec, seq++);
		if (rename(path, aside) < 0) {
			dp_log(DP_LOG_WARN, "renaming %s aside: %s (removed in place)", path,
				strerror(errno));
			a.path = path;
		}
		(void)dp_broker_exec(b, 0, op_remove_dir, &a);
	}
}

/* Writer 0's engine, new: the directories a shutdown or crash left renamed aside. */
static void
removals_resume(struct dp_broker *b)
{
	char path[sizeof(b->dir) + 300];
	size_t sl = strlen(DELETE_SUFFIX);
	DIR *d = opendir(b->dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		struct removal_arg a = {.b = b, .path = path};

		if (n <= sl || strcmp(de->d_name + n - sl, DELETE_SUFFIX) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", b->dir, de->d_name);
		dp_log(DP_LOG_INFO, "removing %s, left by the last run", path);
		(void)op_remove_dir(&a);
	}
	closedir(d);
}

/* Wall clock in ms (producer.id.expiration.ms). */
static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Close a partition's log, its producer state first (snapshot at the log end);
 * @discard: its directory goes next (a deleted topic), so neither writes
 * anything more (stor_log_close_discard). Owner only.
 */
static int
part_close(struct dp_broker *b, struct dp_writer *wr, struct dp_partition *pp, bool discard)
{
	int rc = 0;

	if (pp->log != NULL) {
		owned_remove(wr, pp);
		if (discard)
			dp_producers_free(pp->producers);
		else
			dp_producers_close(pp->producers, pp->log);
		/*
		 * Responses still sending its bytes live on writer 0's lcore (the
		 * handlers'); a log of a writer elsewhere lends them nothing (its
		 * reads are copied on the owner, dp_fetch.c), so only here.
		 */
		if (dp_broker_writer_local(b, 0))
			dp_fetch_zc_detach_log(pp->log);
		rc = discard ? stor_log_close_discard(pp->log) : stor_log_close(pp->log);
	} else {
		dp_producers_free(pp->producers);
	}
	pp->producers = NULL;
	pp->log = NULL;
	return rc;
}

/* Partitions [from, to) of a topic, as seen by one writer (dp_broker_exec). */
struct part_op {
	struct dp_broker *b;
	struct dp_topic *t;
	unsigned w;
	int32_t from;
	int32_t to;
	const struct stor_log_config *cfg;
};

/* On writer op->w's lcore: open its partitions among [from, to). */
static int
op_open(void *arg)
{
	struct part_op *op = arg;
	struct dp_broker *b = op->b;
	struct dp_writer *wr = &b->writers[op->w];
	struct dp_topic *t = op->t;
	char path[sizeof(b->dir) + DP_BROKER_TOPIC_NAME_MAX + 16];
	int rc;

	for (int32_t p = op->from; p < op->to; p++) {
		struct dp_partition *pp = &t->part[p];
		int err = 0;

		if (pp->writer != op->w)
			continue;
		snprintf(path, sizeof(path), "%s/%s-%" PRId32, b->dir, t->name, p);
		pp->log = stor_log_open(wr->engine, path, op->cfg, &err);
		if (pp->log == NULL) {
			dp_log(DP_LOG_ERROR, "opening log %s: %s", path, strerror(-err));
			return err < 0 ? err : -EIO;
		}
		rc = owned_add(wr, pp);
		if (rc == 0)
			rc = dp_producers_open(pp->log, b->producers_max, b->producer_expiration_ms,
				wall_ms(), &pp->producers);
		if (rc < 0) {
			dp_log(DP_LOG_ERROR, "producer state of %s: %s", path, strerror(-rc));
			return rc;
		}
		dp_part_publish(pp);
	}
	return 0;
}

/* On writer op->w's lcore: close its partitions among [from, to). @return the first error. */
static int
close_parts(struct part_op *op, bool discard)
{
	struct dp_writer *wr = &op->b->writers[op->w];
	int rc = 0;

	for (int32_t p = op->from; p < op->to; p++) {
		int r;

		if (op->t->part[p].writer != op->w)
			continue;
		r = part_close(op->b, wr, &op->t->part[p], discard);
		if (r < 0) {
			dp_log(DP_LOG_WARN, "closing %s-%d: %s", op->t->name, p, strerror(-r));
			if (rc == 0)
				rc = r;
		}
	}
	return rc;
}

/* On writer op->w's lcore: close its partitions among [from, to). */
static int
op_close(void *arg)
{
	return close_parts(arg, false);
}

/* The same for a deleted topic's partitions: nothing more written (part_close). */
static int
op_discard(void *arg)
{
	return close_parts(arg, true);
}

/*
 * Run @fn for partitions [from, to) of @t on every started writer (the
 * partition-level half of a topic-table change: the one place where table
 * changes reach the other writers). @return the first error.
 */
static int
parts_each_writer(struct dp_broker *b, struct dp_topic *t, int32_t from, int32_t to,
	const struct stor_log_config *cfg, int (*fn)(void *))
{
	int rc = 0;

	for (unsigned w = 0; w < b->n_writers; w++) {
		struct part_op op = {b, t, w, from, to, cfg};
		int r;

		if (b->writers[w].engine == NULL)
			continue; /* not started (start-up: it opens its own) or stopped */
		r = dp_broker_exec(b, w, fn, &op);
		if (r < 0 && rc == 0)
			rc = r;
	}
	return rc;
}

/* Open the logs of partitions [from, t->partitions) of @t on their owners. */
static int
open_partitions_from(struct dp_broker *b, struct dp_topic *t, int32_t from)
{
	struct stor_log_config cfg = b->log_cfg;
	int rc = apply_configs(&cfg, t->configs);

	if (rc < 0)
		return rc;
	for (int32_t p = from; p < t->partitions; p++)
		t->part[p].writer = dp_broker_owner(t->id, p, b->n_writers);
	return parts_each_writer(b, t, from, t->partitions, &cfg, op_open);
}

static int
open_partitions(struct dp_broker *b, struct dp_topic *t)
{
	return open_partitions_from(b, t, 0);
}

/* Close the logs of partitions [from, to) of @t on their owners. */
static int
close_partitions_range(struct dp_broker *b, struct dp_topic *t, int32_t from, int32_t to)
{
	return parts_each_writer(b, t, from, to, NULL, op_close);
}

static void
topic_free(struct dp_broker *b, struct dp_topic *t)
{
	if (t == NULL)
		return;
	if (b != NULL && t->part != NULL)
		(void)close_partitions_range(b, t, 0, t->partitions);
	free(t->part);
	free(t);
}

static struct dp_topic *
topic_new(const char *name, size_t len, int32_t partitions)
{
	struct dp_topic *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	memcpy(t->name, name, len);
	t->name[len] = '\0';
	t->partitions = partitions;
	/* Room for the maximum: owners keep pointers to entries, so they never move. */
	t->part = calloc(DP_BROKER_MAX_PARTITIONS, sizeof(*t->part));
	if (t->part == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

static int
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* Write @text to @dir/@name atomically. */
static int
write_atomic(const char *dir, const char *name, const char *text, size_t len)
{
	char path[4200];
	char tmp[4210];
	int fd;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		off += (size_t)n;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc == 0)
		rc = fsync_dir(dir);
	if (rc < 0)
		unlink(tmp);
	return rc;
}

static int
topics_save(struct dp_broker *b)
{
	size_t cap = 4096;
	size_t used = 0;
	char *text;
	int rc;

	for (unsigned i = 0; i < b->n_topics; i++)
		cap += DP_BROKER_TOPIC_NAME_MAX + 64 + strlen(b->topics[i]->configs);
	text = malloc(cap);
	if (text == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < b->n_topics; i++) {
		const struct dp_topic *t = b->topics[i];

		used += (size_t)snprintf(text + used, cap - used, "%s ", t->name);
		for (int k = 0; k < 16; k++)
			used += (size_t)snprintf(text + used, cap - used, "%02x", t->id[k]);
		used += (size_t)snprintf(text + used, cap - used, " %" PRId32, t->partitions);
		for (const char *c = t->configs; *c != '\0'; c++) {
			if (c == t->configs || c[-1] == '\n')
				text[used++] = ' ';
			if (*c != '\n')
				text[used++] = *c;
		}
		text[used++] = '\n';
	}
	rc = write_atomic(b->dir, DP_BROKER_TOPICS_FILE, text, used);
	free(text);
	return rc;
}

/* Parse one line of the topics file into a new topic (logs not opened). */
static int
topic_parse(char *line, struct dp_topic **out)
{
	char *save = NULL;
	char *name = strtok_r(line, " ", &save);
	char *id = strtok_r(NULL, " ", &save);
	char *parts = strtok_r(NULL, " ", &save);
	char *end = NULL;
	struct dp_topic *t;
	long n;
	size_t used = 0;

	if (name == NULL || id == NULL || parts == NULL || strlen(id) != 32 ||
		!dp_broker_topic_name_valid(name, strlen(name)))
		return -EINVAL;
	n = strtol(parts, &end, 10);
	if (*end != '\0' || n < 1 || n > DP_BROKER_MAX_PARTITIONS)
		return -EINVAL;
	t = topic_new(name, strlen(name), (int32_t)n);
	if (t == NULL)
		return -ENOMEM;
	for (int k = 0; k < 16; k++) {
		unsigned v;

		if (sscanf(id + 2 * k, "%2x", &v) != 1) {
			topic_free(NULL, t);
			return -EINVAL;
		}
		t->id[k] = (uint8_t)v;
	}
	for (char *kv = strtok_r(NULL, " ", &save); kv != NULL; kv = strtok_r(NULL, " ", &save)) {
		size_t l = strlen(kv);

		if (used + l + 2 > sizeof(t->configs)) {
			topic_free(NULL, t);
			return -EINVAL;
		}
		if (used > 0)
			t->configs[used++] = '\n';
		memcpy(t->configs + used, kv, l + 1);
		used += l;
	}
	*out = t;
	return 0;
}

static int
topics_load(struct dp_broker *b)
{
	char path[sizeof(b->dir) + 32];
	char line[DP_BROKER_CONFIGS_MAX + DP_BROKER_TOPIC_NAME_MAX + 64];
	unsigned lineno = 0;
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", b->dir, DP_BROKER_TOPICS_FILE);
	f = fopen(path, "r");
	if (f == NULL)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		struct dp_topic *t = NULL;
		size_t l = strlen(line);

		lineno++;
		if (l > 0 && line[l - 1] == '\n')
			line[--l] = '\0';
		if (l == 0)
			continue;
		rc = topic_parse(line, &t);
		if (rc == 0 && b->n_topics == DP_BROKER_MAX_TOPICS)
			rc = -ENOSPC;
		if (rc < 0) {
			topic_free(b, t);
			dp_log(DP_LOG_ERROR, "%s:%u: unreadable topic entry", path, lineno);
			break;
		}
		b->topics[b->n_topics++] = t;
		rc = open_partitions(b, t);
		if (rc < 0)
			break;
	}
	fclose(f);
	return rc;
}

static void
cluster_id_new(char *out)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t r[16];
	unsigned bits = 0;
	uint32_t acc = 0;
	int n = 0;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (uint8_t)rand();
	}
	/* Kafka's Uuid.toString(): URL-safe base64 without padding, 22 characters. */
	for (int i = 0; i < 16; i++) {
		acc = (acc << 8) | r[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[n++] = b64[(acc >> bits) & 63];
		}
	}
	out[n++] = b64[(acc << (6 - bits)) & 63];
	out[n] = '\0';
}

/* Read meta.properties (cluster.id; node.id must match) or write a new one. */
static int
meta_properties(struct dp_broker *b)
{
	char path[sizeof(b->dir) + 32];
	char line[256];
	FILE *f;
	char text[256];
	int n;

	snprintf(path, sizeof(path), "%s/meta.properties", b->dir);
	f = fopen(path, "r");
	if (f != NULL) {
		long node = -1;

		while (fgets(line, sizeof(line), f) != NULL) {
			line[strcspn(line, "\r\n")] = '\0';
			if (strncmp(line, "cluster.id=", 11) == 0 &&
				strlen(line + 11) < sizeof(b->cluster_id))
				strcpy(b->cluster_id, line + 11);
			else if (strncmp(line, "node.id=", 8) == 0)
				node = strtol(line + 8, NULL, 10);
		}
		fclose(f);
		if (b->cluster_id[0] == '\0') {
			dp_log(DP_LOG_ERROR, "%s: no cluster.id", path);
			return -EINVAL;
		}
		if (node != b->node_id) {
			dp_log(DP_LOG_ERROR, "%s: node.id=%ld but the configuration says %" PRId32,
				path, node, b->node_id);
			return -EINVAL;
		}
		return 0;
	}
	if (errno != ENOENT)
		return -errno;
	cluster_id_new(b->cluster_id);
	n = snprintf(text, sizeof(text), "#\n#Written by slipstream\nversion=1\ncluster.id=%s\n"
		"node.id=%" PRId32 "\n", b->cluster_id, b->node_id);
	return write_atomic(b->dir, "meta.properties", text, (size_t)n);
}

static int
mkdir_p(const char *dir)
{
	char tmp[4096];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, dir, len + 1);
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Broker-wide log.* settings from the dataplane configuration into the log config. */
static void
log_config_from(struct stor_log_config *lc, const struct dp_config *cfg)
{
	char v[32];

#define SETI(key, val)                                                   \
	do {                                                             \
		snprintf(v, sizeof(v), "%" PRId64, (int64_t)(val));       \
		if (stor_log_config_set(lc, key, v) < 0)                 \
			dp_log(DP_LOG_WARN, "storage ignores %s=%s", key, v); \
	} while (0)
	SETI("log.segment.bytes", cfg->log_segment_bytes);
	SETI("log.roll.ms", cfg->log_roll_ms);
	SETI("log.retention.ms", cfg->log_retention_ms);
	SETI("log.retention.bytes", cfg->log_retention_bytes);
	SETI("log.flush.interval.messages", cfg->log_flush_interval_messages);
	SETI("log.flush.interval.ms", cfg->log_flush_interval_ms);
	SETI("log.index.interval.bytes", cfg->log_index_interval_bytes);
	SETI("log.cleaner.delete.retention.ms", cfg->delete_retention_ms);
	SETI("message.max.bytes", cfg->message_max_bytes);
	SETI("min.insync.replicas", cfg->min_insync_replicas);
	SETI("log.message.timestamp.before.max.ms", cfg->log_message_timestamp_before_max_ms);
	SETI("log.message.timestamp.after.max.ms", cfg->log_message_timestamp_after_max_ms);
	SETI("log.message.timestamp.difference.max.ms",
		cfg->log_message_timestamp_difference_max_ms);
#undef SETI
	if (stor_log_config_set(lc, "log.cleanup.policy", cfg->log_cleanup_policy) < 0)
		dp_log(DP_LOG_WARN, "storage ignores log.cleanup.policy=%s",
			cfg->log_cleanup_policy);
	if (stor_log_config_set(lc, "compression.type", cfg->compression_type) < 0)
		dp_log(DP_LOG_WARN, "storage ignores compression.type=%s", cfg->compression_type);
	if (stor_log_config_set(lc, "log.message.timestamp.type",
		cfg->log_message_timestamp_type) < 0)
		dp_log(DP_LOG_WARN, "storage ignores log.message.timestamp.type=%s",
			cfg->log_message_timestamp_type);
}

static int writers_start_engines(struct dp_broker *b);

int
dp_broker_start(struct dp_broker *b, const struct dp_config *cfg)
{
	const char *dirs = cfg->log_dirs;
	size_t first = strcspn(dirs, ",");
	struct stor_log_config storage_keys = b->log_cfg;
	int rc;

	while (first > 0 && dirs[0] == ' ') {
		dirs++;
		first--;
	}
	if (first == 0 || first >= sizeof(b->dir)) {
		dp_log(DP_LOG_ERROR, "log.dirs: no usable directory");
		return -EINVAL;
	}
	memcpy(b->dir, dirs, first);
	b->dir[first] = '\0';
	b->node_id = (int32_t)cfg->node_id;
	b->num_partitions = (int32_t)cfg->num_partitions;
	b->producers_max = (uint32_t)cfg->dp_producers_max;
	b->producer_expiration_ms = cfg->producer_id_expiration_ms;
	b->retention_check_ms = (uint64_t)cfg->log_retention_check_interval_ms;
	b->auto_create = cfg->auto_create_topics_enable;
	/* log.* from the dataplane table first, the storage.* log keys set by the delegate last. */
	log_config_from(&b->log_cfg, cfg);
	b->log_cfg.fsync_acks_all = storage_keys.fsync_acks_all;
	b->log_cfg.max_pending = storage_keys.max_pending;
	b->log_cfg.preallocate = cfg->log_preallocate; /* our default true, not Kafka's false */

	rc = mkdir_p(b->dir);
	if (rc < 0) {
		dp_log(DP_LOG_ERROR, "log.dirs: cannot create %s: %s", b->dir, strerror(-rc));
		return rc;
	}
	rc = meta_properties(b);
	if (rc < 0) {
		dp_log(DP_LOG_ERROR, "%s/meta.properties: %s", b->dir, strerror(-rc));
		return rc;
	}
	rc = dp_pid_alloc_open(&b->pids, b->dir);
	if (rc < 0) {
		dp_log(DP_LOG_ERROR, "%s/%s: %s", b->dir, DP_PID_FILE, strerror(-rc));
		return rc;
	}
	if (b->n_writers == 1)
		b->writers[0].lcore = rte_lcore_id();
	rc = writers_start_engines(b);
	if (rc < 0) {
		dp_broker_stop(b);
		return rc;
	}
	b->engine = b->writers[0].engine;
	rc = topics_load(b);
	if (rc < 0) {
		dp_broker_stop(b);
		return rc;
	}
	dp_log(DP_LOG_INFO, "storage: %s engine, log dir %s, cluster.id %s, %u topic(s)",
		stor_engine_backend_name(b->engine), b->dir, b->cluster_id, b->n_topics);
	return 0;
}

/* The storage engines' counters of the writers on the calling lcore into dp_metrics. */
static void
storage_metrics_publish(struct dp_broker *b)
{
	uint64_t v[DP_STOR_M_COUNTERS];
	unsigned n = 0;

	memset(v, 0, sizeof(v));
	for (unsigned w = 0; w < b->n_writers; w++) {
		struct stor_engine_stats st;

		if (b->writers[w].engine == NULL || !dp_broker_writer_local(b, w))
			continue;
		stor_engine_stats(b->writers[w].engine, &st);
		v[DP_STOR_M_CHUNKS] += st.chunks;
		v[DP_STOR_M_CHUNKS_FREE] += st.chunks_free;
		v[DP_STOR_M_CHUNKS_RECLAIM] += st.chunks_reclaim;
		v[DP_STOR_M_STEALS] += st.steals;
		v[DP_STOR_M_ACTIVE_STEALS] += st.active_steals;
		v[DP_STOR_M_LOGS] += st.logs;
		v[DP_STOR_M_OPEN_FILES] += st.open_files;
		v[DP_STOR_M_FILE_REOPENS] += st.file_reopens;
		v[DP_STOR_M_FILE_CLOSES] += st.file_closes;
		v[DP_STOR_M_SEGMENTS_RECYCLED] += st.segments_recycled;
		v[DP_STOR_M_SEGMENTS_ROLLED] += st.segments_rolled;
		v[DP_STOR_M_FLUSHES] += st.flushes;
		v[DP_STOR_M_FLUSH_NS] += st.flush_ns;
		v[DP_STOR_M_WRITES] += st.writes;
		v[DP_STOR_M_MAPPED_WRITES] += st.inline_mapped_writes;
		v[DP_STOR_M_READS_CACHE] += st.reads_cache;
		v[DP_STOR_M_READS_FILE] += st.reads_file;
		v[DP_STOR_M_LOGS_FAILED] += st.logs_failed;
		n++;
	}
	if (n > 0)
		dp_metrics_storage_publish(n, v, DP_STOR_M_COUNTERS);
}

/* When the calling lcore last published its storage counters (TSC). */
static __thread uint64_t t_metrics_tsc;

int
dp_broker_poll(void *arg)
{
	struct dp_broker *b = arg;
	int work = outbox_flush();
	uint64_t now = rte_rdtsc();

	if (now - t_metrics_tsc >= rte_get_tsc_hz() / 10) { /* every 100 ms */
		t_metrics_tsc = now;
		storage_metrics_publish(b);
	}

	for (unsigned w = 0; w < b->n_writers; w++) {
		if (b->writers[w].engine != NULL && dp_broker_writer_local(b, w))
			work += stor_engine_poll(b->writers[w].engine);
	}
	return work;
}

int
dp_broker_idle_wait(void *arg)
{
	struct dp_broker *b = arg;

	/*
	 * O_DIRECT writes into unwritten (preallocated) extents convert them, and
	 * buffered writes to a disk file system rarely complete without blocking:
	 * io_uring completes both in an io-wq thread on this CPU (tmpfs writes no
	 * longer: storage.io.inline, docs/storage.md). Sleeping here lets it run
	 * and wakes us at its completion; spinning left it to the scheduler
	 * (broker Produce p99 1-2.5 ms against 0.25 ms waiting,
	 * docs/benchmarks.md). stor_engine_wait() returns at once without writes
	 * in flight.
	 */
	bool spins = dp_reactor_spins();

	for (unsigned w = 0; w < b->n_writers; w++) {
		struct stor_engine *e = b->writers[w].engine;

		/*
		 * A spinning reactor keeps its core unless an io-wq worker of its
		 * own needs it: spinning, the worker waited for the scheduler's
		 * slice (a write issued to the device 4.2 ms after its
		 * submission, traced; the kernel-socket disk row 1,403-1,475 MB/s
		 * against 1,726-1,825 waiting, docs/benchmarks.md "Session 22").
		 */
		if (e == NULL || !dp_broker_writer_local(b, w) ||
			(spins && stor_engine_io_workers_placed(e)))
			continue;
		if (stor_engine_wait(e, DP_BROKER_IDLE_WAIT_US) == 0)
			return 1;
	}
	return 0;
}

/*
 * Retention in small steps: a check of every partition once an interval, and
 * within it at most one segment deleted or DP_BROKER_RETENTION_SCAN logs
 * looked at per call, the scan going on from where it stopped at the next
 * call (every DP_BROKER_RETENTION_STEP_US while one is under way), one
 * segment per log per pass, passes repeated while one deletes. A deletion
 * is a rename and three unlinks (40-200 us on tmpfs); partitions loaded alike
 * reach their limit together, and the 8 deletions one pass made at once were
 * a 450-590 us reactor iteration that every request behind it waited out
 * (docs/benchmarks.md, session 15).
 */
struct retention_scan {
	uint64_t next_tsc; /* the next scan's start */
	bool active;
	bool deleted;      /* this pass deleted something: another pass follows at once */
	unsigned w, i;     /* the next log: writers[w].owned[i] */
};
static __thread struct retention_scan t_retention;

int
dp_broker_retention_poll(void *arg)
{
	struct dp_broker *b = arg;
	struct retention_scan *sc = &t_retention;
	uint64_t now = dp_reactor_tsc();
	struct timespec ts;
	int64_t now_ms;
	unsigned looked = 0;

	if (!sc->active) {
		if (now < sc->next_tsc)
			return 0;
		sc->active = true;
		sc->deleted = false;
		sc->w = sc->i = 0;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	for (; sc->w < b->n_writers; sc->w++, sc->i = 0) {
		struct dp_writer *wr = &b->writers[sc->w];

		if (wr->engine == NULL || !dp_broker_writer_local(b, sc->w))
			continue;
		/* The owned list may change between calls: a log skipped or seen twice in
		 * one scan is looked at again in the next. */
		for (; sc->i < wr->n_owned; sc->i++) {
			struct dp_partition *pp = wr->owned[sc->i];
			int rc;

			if (looked++ == DP_BROKER_RETENTION_SCAN)
				return 0;
			rc = stor_log_retention_run(pp->log, now_ms, 1);
			if (rc > 0) {
				/* The next log next time, and one more pass after this one: a
				 * log with many segments to go does not hold up the others. */
				dp_log(DP_LOG_INFO, "retention: a segment of %s deleted",
					stor_log_dir(pp->log));
				dp_part_publish(pp);
				sc->i++;
				sc->deleted = true;
				return rc;
			}
			if (rc < 0)
				dp_log(DP_LOG_WARN, "retention of %s: %s", stor_log_dir(pp->log),
					strerror(-rc));
		}
	}
	if (sc->deleted) { /* more may be due: a pass again */
		sc->deleted = false;
		sc->w = sc->i = 0;
		return 0;
	}
	sc->active = false;
	sc->next_tsc = now + b->retention_check_ms * (rte_get_tsc_hz() / 1000);
	return 0;
}

/*
 * On writer @w's lcore: close every log it owns, destroy its engine. The
 * logs close together (stor_log_close_many: their final syncs in flight at
 * once, one syncfs for the markers and the producer snapshots written
 * unsynced before them), not one after another (2,000 logs took 8 s).
 */
static int
writer_stop(struct dp_broker *b, unsigned w)
{
	struct dp_writer *wr = &b->writers[w];
	struct stor_log **logs = wr->n_owned > 0 ? malloc(sizeof(*logs) * wr->n_owned) : NULL;
	unsigned n = 0;
	int rc = 0;

	while (logs != NULL && wr->n_owned > 0) {
		struct dp_partition *pp = wr->owned[wr->n_owned - 1];

		owned_remove(wr, pp);
		dp_producers_close_unsynced(pp->producers, pp->log);
		if (dp_broker_writer_local(b, 0))
			dp_fetch_zc_detach_log(pp->log); /* as part_close() */
		logs[n++] = pp->log;
		pp->producers = NULL;
		pp->log = NULL;
	}
	if (n > 0) {
		uint64_t t0 = rte_get_timer_cycles();

		rc = stor_log_close_many(logs, n, NULL); /* failures logged by storage */
		dp_log(rc < 0 ? DP_LOG_ERROR : DP_LOG_INFO,
			"storage: writer %u closed %u log(s) in %.2f s%s%s", w, n,
			(double)(rte_get_timer_cycles() - t0) / (double)rte_get_timer_hz(),
			rc < 0 ? ": " : "", rc < 0 ? strerror(-rc) : "");
	}
	free(logs);
	while (wr->n_owned > 0) { /* no memory for the array: one by one */
		struct dp_partition *pp = wr->owned[wr->n_owned - 1];
		char dir[4300];
		int r;

		snprintf(dir, sizeof(dir), "%s", stor_log_dir(pp->log));
		r = part_close(b, wr, pp, false);
		if (r < 0) {
			dp_log(DP_LOG_ERROR, "closing %s: %s", dir, strerror(-r));
			if (rc == 0)
				rc = r;
		}
	}
	free(wr->owned);
	wr->owned = NULL;
	wr->cap_owned = 0;
	if (wr->engine != NULL) {
		stor_engine_drain(wr->engine);
		stor_engine_destroy(wr->engine);
		wr->engine = NULL;
	}
	if (w == 0)
		b->engine = NULL;
	return rc;
}

struct writer_arg {
	struct dp_broker *b;
	unsigned w;
};

static int
op_writer_stop(void *arg)
{
	struct writer_arg *a = arg;

	return writer_stop(a->b, a->w);
}

int
dp_broker_writers_stop_here(struct dp_broker *b)
{
	int rc = 0;

	for (unsigned w = 0; w < b->n_writers; w++) {
		int r;

		if (b->writers[w].engine == NULL || !dp_broker_writer_local(b, w))
			continue;
		r = writer_stop(b, w);
		if (r < 0 && rc == 0)
			rc = r;
	}
	return rc;
}

/* Create the engines of the writers on the calling lcore that have none. */
static int
writers_start_engines(struct dp_broker *b)
{
	for (unsigned w = 0; w < b->n_writers; w++) {
		struct dp_writer *wr = &b->writers[w];

		if (wr->engine != NULL || !dp_broker_writer_local(b, w))
			continue;
		wr->engine = stor_engine_create(&b->engine_opts);
		if (wr->engine == NULL) {
			int rc = -errno;

			dp_log(DP_LOG_ERROR, "storage engine of writer %u: %s (%u chunks of %zu "
				"bytes per writer: see storage.cache.chunks, "
				"storage.cache.chunk.bytes, dpdk.memory.mb)", w, strerror(-rc),
				b->engine_opts.chunk_count, b->engine_opts.chunk_bytes);
			return rc < 0 ? rc : -ENOMEM;
		}
		if (w == 0)
			removals_resume(b);
	}
	return 0;
}

int
dp_broker_writers_start_here(struct dp_broker *b)
{
	bool mine[DP_BROKER_MAX_WRITERS];
	unsigned opened = 0;
	int rc;

	for (unsigned w = 0; w < b->n_writers; w++)
		mine[w] = b->writers[w].engine == NULL && dp_broker_writer_local(b, w);
	rc = writers_start_engines(b);
	for (unsigned w = 0; w < b->n_writers && rc == 0; w++) {
		if (!mine[w])
			continue;
		for (unsigned i = 0; i < b->n_topics && rc == 0; i++) {
			struct dp_topic *t = b->topics[i];
			struct stor_log_config cfg = b->log_cfg;
			struct part_op op = {b, t, w, 0, t->partitions, &cfg};

			rc = apply_configs(&cfg, t->configs);
			if (rc == 0)
				rc = op_open(&op);
		}
		opened += b->writers[w].n_owned;
	}
	if (rc < 0) {
		dp_broker_writers_stop_here(b);
		return rc;
	}
	dp_log(DP_LOG_INFO, "storage: writer(s) on lcore %u opened %u partition log(s)",
		rte_lcore_id(), opened);
	return 0;
}

int
dp_broker_stop(struct dp_broker *b)
{
	int rc = 0;

	for (unsigned w = 0; w < b->n_writers; w++) {
		struct writer_arg a = {b, w};
		int r;

		if (b->writers[w].engine == NULL)
			continue;
		r = dp_broker_exec(b, w, op_writer_stop, &a);
		if (r < 0 && rc == 0)
			rc = r;
	}
	for (unsigned i = 0; i < b->n_topics; i++) {
		topic_free(b, b->topics[i]); /* every log is closed: frees only */
		b->topics[i] = NULL;
	}
	b->n_topics = 0;
	return rc;
}

int
dp_broker_topic_check(struct dp_broker *b, const char *name, size_t len, int32_t partitions,
	const char *configs)
{
	struct stor_log_config cfg = b->log_cfg;

	if (!dp_broker_topic_name_valid(name, len))
		return -EINVAL;
	if (dp_broker_topic_find(b, name, len) != NULL)
		return -EEXIST;
	if (partitions < 1 || partitions > DP_BROKER_MAX_PARTITIONS)
		return -EDOM;
	if (configs != NULL && strlen(configs) >= DP_BROKER_CONFIGS_MAX)
		return -EBADR;
	if (apply_configs(&cfg, configs) < 0)
		return -EBADR;
	if (b->n_topics == DP_BROKER_MAX_TOPICS)
		return -ENOSPC;
	return 0;
}

int
dp_broker_topic_create(struct dp_broker *b, const char *name, size_t len, int32_t partitions,
	const char *configs, struct dp_topic **out)
{
	uint8_t id[16];

	if (getrandom(id, sizeof(id), 0) != (ssize_t)sizeof(id))
		return -EIO;
	id[6] = (uint8_t)((id[6] & 0x0f) | 0x40); /* version 4 */
	id[8] = (uint8_t)((id[8] & 0x3f) | 0x80);
	return dp_broker_topic_create_id(b, name, len, partitions, configs, id, out);
}

int
dp_broker_topic_create_id(struct dp_broker *b, const char *name, size_t len,
	int32_t partitions, const char *configs, const uint8_t id[16], struct dp_topic **out)
{
	struct dp_topic *t;
	int rc = dp_broker_topic_check(b, name, len, partitions, configs);

	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < b->n_topics; i++) {
		if (memcmp(b->topics[i]->id, id, 16) == 0)
			return -EEXIST;
	}
	t = topic_new(name, len, partitions);
	if (t == NULL)
		return -ENOMEM;
	if (configs != NULL)
		strcpy(t->configs, configs);
	memcpy(t->id, id, 16);
	/* Leftovers of a deleted topic of that name (or a failed creation) start empty. */
	partition_dirs_remove(b, t->name, 0, partitions);
	rc = open_partitions(b, t);
	if (rc < 0) {
		/*
		 * -EINVAL from stor_log_open: a config value storage refuses
		 * (segment.bytes below 4 KiB, ...). UNFINISHED: the partition
		 * directories opened so far are left behind, empty.
		 */
		topic_free(b, t);
		return rc == -EINVAL ? -EBADR : rc;
	}
	b->topics[b->n_topics++] = t;
	rc = topics_save(b);
	if (rc < 0) {
		dp_log(DP_LOG_ERROR, "%s/%s: %s", b->dir, DP_BROKER_TOPICS_FILE, strerror(-rc));
		b->topics[--b->n_topics] = NULL;
		topic_free(b, t);
		return rc;
	}
	dp_log(DP_LOG_INFO, "created topic %s with %" PRId32 " partition(s)", t->name,
		partitions);
	if (out != NULL)
		*out = t;
	return 0;
}

int
dp_broker_topic_delete(struct dp_broker *b, struct dp_topic *t)
{
	unsigned i;
	int32_t parts = t->partitions;
	char name[DP_BROKER_TOPIC_NAME_MAX + 1];
	int rc;

	for (i = 0; i < b->n_topics && b->topics[i] != t; i++)
		;
	if (i == b->n_topics)
		return -ENOENT;
	memmove(&b->topics[i], &b->topics[i + 1], sizeof(b->topics[0]) * (b->n_topics - i - 1));
	b->n_topics--;
	rc = topics_save(b);
	if (rc < 0) {
		dp_log(DP_LOG_ERROR, "%s/%s: %s", b->dir, DP_BROKER_TOPICS_FILE, strerror(-rc));
		memmove(&b->topics[i + 1], &b->topics[i], sizeof(b->topics[0]) * (b->n_topics - i));
		b->topics[i] = t;
		b->n_topics++;
		return rc;
	}
	b->topics[b->n_topics] = NULL;
	snprintf(name, sizeof(name), "%s", t->name);
	/* The logs closed on their owners, writing nothing more: their files go next. */
	(void)parts_each_writer(b, t, 0, parts, NULL, op_discard);
	topic_free(b, t);
	partition_dirs_remove(b, name, 0, parts);
	dp_log(DP_LOG_INFO, "deleted topic %s", name);
	return 0;
}

int
dp_broker_partitions_add(struct dp_broker *b, struct dp_topic *t, int32_t partitions,
                         bool validate_only)
{
	int32_t old = t->partitions;
	int rc;

	if (partitions <= old || partitions > DP_BROKER_MAX_PARTITIONS)
		return -EDOM;
	if (validate_only)
		return 0;
	/* t->part has room for DP_BROKER_MAX_PARTITIONS (topic_new): entries never move. */
	memset(&t->part[old], 0, sizeof(t->part[0]) * (size_t)(partitions - old));
	partition_dirs_remove(b, t->name, old, partitions);
	t->partitions = partitions;
	rc = open_partitions_from(b, t, old);
	if (rc == 0)
		rc = topics_save(b);
	if (rc < 0) {
		dp_log(DP_LOG_ERROR, "adding partitions to %s: %s", t->name, strerror(-rc));
		(void)close_partitions_range(b, t, old, partitions);
		t->partitions = old;
		partition_dirs_remove(b, t->name, old, partitions);
		return rc;
	}
	dp_log(DP_LOG_INFO, "topic %s now has %" PRId32 " partitions", t->name, partitions);
	return 0;
}

int
dp_broker_topic_log_config(const struct dp_broker *b, const struct dp_topic *t,
                           struct stor_log_config *out)
{
	*out = b->log_cfg;
	return apply_configs(out, t->configs);
}

/* Close every log of @t (holding no reads), each on its owner. */
static void
close_partitions(struct dp_broker *b, struct dp_topic *t)
{
	(void)close_partitions_range(b, t, 0, t->partitions);
}

int
dp_broker_topic_configs_set(struct dp_broker *b, struct dp_topic *t, const char *configs,
                            bool validate_only)
{
	struct stor_log_config cfg = b->log_cfg;
	char old[DP_BROKER_CONFIGS_MAX];
	int rc;

	if (strlen(configs) >= DP_BROKER_CONFIGS_MAX || apply_configs(&cfg, configs) < 0)
		return -EBADR;
	if (validate_only)
		return 0;
	strcpy(old, t->configs);
	close_partitions(b, t);
	strcpy(t->configs, configs);
	rc = open_partitions(b, t);
	if (rc == 0) {
		rc = topics_save(b);
		if (rc < 0)
			dp_log(DP_LOG_ERROR, "%s/%s: %s", b->dir, DP_BROKER_TOPICS_FILE,
			       strerror(-rc));
	} else if (rc == -EINVAL) {
		rc = -EBADR; /* a value the log refuses at open (segment.bytes below 4 KiB, ...) */
	}
	if (rc < 0) {
		int rc2;

		close_partitions(b, t);
		strcpy(t->configs, old);
		rc2 = open_partitions(b, t);
		/*
		 * Partitions whose log did not reopen stay offline (log NULL):
		 * the request handlers answer KAFKA_STORAGE_ERROR for them until
		 * a restart or another config change reopens them.
		 */
		if (rc2 < 0)
			dp_log(DP_LOG_ERROR, "reopening %s with its old config: %s (partitions offline)",
			       t->name, strerror(-rc2));
		return rc;
	}
	dp_log(DP_LOG_INFO, "topic %s configs changed (logs reopened)", t->name);
	return 0;
}
