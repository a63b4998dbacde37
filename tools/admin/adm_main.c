/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slipstream-admin: administer topics, configs and consumer groups of a
 * Slipstream broker, or of any Kafka broker, over the Kafka protocol (the
 * things kafka-topics.sh, kafka-configs.sh and kafka-consumer-groups.sh do).
 *
 *   slipstream-admin <topics|configs|groups> <action> [options]
 *
 * This file dispatches on the first two words and holds the options every
 * command shares; the commands live in adm_topics.c, adm_configs.c and
 * adm_groups.c. Exit codes are enum adm_exit (adm_client.h), listed in
 * docs/operations.md and in --help.
 */
#include "adm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct adm_cmd {
	const char *group;
	const char *action;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct adm_cmd cmds[] = {
        {"topics", "list", adm_topics_list, "list topic names"},
        {"topics", "describe", adm_topics_describe, "partitions, leaders, replicas, configs"},
        {"topics", "create", adm_topics_create, "create a topic"},
        {"topics", "alter", adm_topics_alter, "add partitions to a topic"},
        {"topics", "delete", adm_topics_delete, "delete topics"},
        {"configs", "describe", adm_configs_describe, "show topic or broker configs"},
        {"configs", "alter", adm_configs_alter, "set or delete configs (incremental)"},
        {"groups", "list", adm_groups_list, "list consumer groups"},
        {"groups", "describe", adm_groups_describe, "offsets, log end offsets, lag, members"},
        {"groups", "reset-offsets", adm_groups_reset_offsets, "move a group's committed offsets"},
        {"groups", "delete", adm_groups_delete, "delete consumer groups"},
};
#define N_CMDS (sizeof(cmds) / sizeof(cmds[0]))

static void
usage(FILE *f, const char *only_group)
{
	fprintf(f, "usage: slipstream-admin <command> <action> [options]\n\n");
	for (size_t i = 0; i < N_CMDS; i++) {
		if (only_group != NULL && strcmp(cmds[i].group, only_group) != 0)
			continue;
		fprintf(f, "  %-8s %-14s %s\n", cmds[i].group, cmds[i].action, cmds[i].summary);
	}
	fprintf(f, "\n'slipstream-admin <command> <action> --help' shows the options of one.\n"
	           "Every action needs --bootstrap-server HOST:PORT (or SLIPSTREAM_BOOTSTRAP).\n\n"
	           "Exit codes: 0 done; 1 the broker returned a Kafka error (named on stderr);\n"
	           "2 bad command line; 3 connection failed, timed out or an answer did not\n"
	           "decode; 4 the broker does not serve an API the action needs.\n");
}

int
adm_parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

int
adm_common_opt(struct adm_opts *o, int ch, const char *arg)
{
	int64_t v;

	switch (ch) {
	case ADM_OPT_BOOTSTRAP:
		o->bootstrap = arg;
		return 1;
	case ADM_OPT_TIMEOUT:
		if (adm_parse_i64(arg, &v) < 0 || v <= 0 || v > 3600000) {
			fprintf(stderr, "Error: --timeout-ms must be 1..3600000, not '%s'\n", arg);
			return -1;
		}
		o->timeout_ms = (int)v;
		return 1;
	default:
		return 0;
	}
}

int
adm_connect(const struct adm_opts *o, struct adm_conn *c)
{
	const char *b = o->bootstrap != NULL ? o->bootstrap : getenv("SLIPSTREAM_BOOTSTRAP");

	if (b == NULL || *b == '\0') {
		fprintf(stderr, "Error: --bootstrap-server HOST:PORT is required\n");
		return ADM_EXIT_USAGE;
	}
	if (adm_conn_open(c, b, o->timeout_ms) < 0) {
		adm_conn_close(c);
		return ADM_EXIT_CONNECT;
	}
	return ADM_EXIT_OK;
}

int
main(int argc, char **argv)
{
	bool group_known = false;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(argc < 2 ? stderr : stdout, NULL);
		return argc < 2 ? ADM_EXIT_USAGE : ADM_EXIT_OK;
	}
	for (size_t i = 0; i < N_CMDS; i++) {
		if (strcmp(cmds[i].group, argv[1]) != 0)
			continue;
		group_known = true;
		if (argc >= 3 && strcmp(cmds[i].action, argv[2]) == 0) {
			/* The command sees argv[0] = "slipstream-admin <group> <action>". */
			char prog[64];

			snprintf(prog, sizeof(prog), "slipstream-admin %s %s", cmds[i].group,
			         cmds[i].action);
			argv[2] = prog;
			return cmds[i].fn(argc - 2, argv + 2);
		}
	}
	if (group_known && argc >= 3 &&
	    (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
		usage(stdout, argv[1]);
		return ADM_EXIT_OK;
	}
	if (group_known)
		fprintf(stderr, "Error: %s: unknown or missing action%s%s\n\n", argv[1],
		        argc >= 3 ? " " : "", argc >= 3 ? argv[2] : "");
	else
		fprintf(stderr, "Error: unknown command '%s'\n\n", argv[1]);
	usage(stderr, group_known ? argv[1] : NULL);
	return ADM_EXIT_USAGE;
}
