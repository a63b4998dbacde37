/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slipstream-admin internals: the commands (adm_topics.c, adm_configs.c,
 * adm_groups.c) and the options every command takes. adm_main.c picks the
 * command from the first two words of the command line and hands it the
 * rest; each command parses its own options with getopt_long and prints its
 * own --help. Commands return an enum adm_exit value (adm_client.h).
 */
#ifndef SLP_ADM_H
#define SLP_ADM_H

#include <getopt.h>
#include <stdbool.h>

#include "adm_client.h"

/* Options shared by every command. */
struct adm_opts {
	const char *bootstrap; /* --bootstrap-server host:port[,host:port] */
	int timeout_ms;        /* --timeout-ms, per request */
};

/* getopt_long values of the shared options (above any short option character). */
enum {
	ADM_OPT_BOOTSTRAP = 1000,
	ADM_OPT_TIMEOUT,
	ADM_OPT_HELP,
	ADM_OPT_FIRST_LOCAL, /* commands number their own long options from here */
};

/* The shared long options, spliced into each command's table. */
#define ADM_COMMON_LONGOPTS                                                                        \
	{"bootstrap-server", required_argument, NULL, ADM_OPT_BOOTSTRAP},                          \
	        {"timeout-ms", required_argument, NULL, ADM_OPT_TIMEOUT},                          \
	{                                                                                          \
		"help", no_argument, NULL, ADM_OPT_HELP                                            \
	}

#define ADM_COMMON_HELP                                                                            \
	"  --bootstrap-server HOST:PORT[,HOST:PORT]  broker to connect to (required;\n"            \
	"                             or the SLIPSTREAM_BOOTSTRAP environment variable)\n"         \
	"  --timeout-ms N             bound on each request (default 30000)\n"                     \
	"  --help                     this text\n"

/**
 * Handle a shared option (ch is getopt_long's return value).
 *
 * @return 1 when ch was a shared option and was taken, 0 when it is not a
 *   shared one, -1 after printing an error for a bad value.
 */
int adm_common_opt(struct adm_opts *o, int ch, const char *arg);

/**
 * Check the shared options after parsing (bootstrap server given) and
 * connect. Prints the error.
 *
 * @return ADM_EXIT_OK, ADM_EXIT_USAGE or ADM_EXIT_CONNECT.
 */
int adm_connect(const struct adm_opts *o, struct adm_conn *c);

/** Parse a decimal int64 (whole string). @return 0 or -EINVAL. */
int adm_parse_i64(const char *s, int64_t *out);

int adm_topics_list(int argc, char **argv);
int adm_topics_describe(int argc, char **argv);
int adm_topics_create(int argc, char **argv);
int adm_topics_alter(int argc, char **argv);
int adm_topics_delete(int argc, char **argv);
int adm_configs_describe(int argc, char **argv);
int adm_configs_alter(int argc, char **argv);
int adm_groups_list(int argc, char **argv);
int adm_groups_describe(int argc, char **argv);
int adm_groups_reset_offsets(int argc, char **argv);
int adm_groups_delete(int argc, char **argv);

#endif /* SLP_ADM_H */
