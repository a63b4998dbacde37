/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slipstream-admin configs: describe (DescribeConfigs, with synonyms) and
 * alter (IncrementalAlterConfigs: SET and DELETE per key, so keys not named
 * keep their values) for topics and brokers. Output and the
 * --add-config/--delete-config syntax follow kafka-configs.sh: values that
 * hold commas are written in brackets, k=[a,b].
 */
#include "adm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define V_DESCRIBE_CONFIGS 4
#define V_INCREMENTAL_ALTER 1
#define MAX_OPS 256

enum {
	OPT_ENTITY_TYPE = ADM_OPT_FIRST_LOCAL,
	OPT_ENTITY_NAME,
	OPT_ALL,
	OPT_ADD,
	OPT_DELETE,
	OPT_VALIDATE_ONLY,
};

/* Kafka's ConfigResource.Type values. */
#define RES_TOPIC 2
#define RES_BROKER 4

static const char *
source_name(int8_t s)
{
	static const char *const names[] = {"UNKNOWN",
	                                    "DYNAMIC_TOPIC_CONFIG",
	                                    "DYNAMIC_BROKER_CONFIG",
	                                    "DYNAMIC_DEFAULT_BROKER_CONFIG",
	                                    "STATIC_BROKER_CONFIG",
	                                    "DEFAULT_CONFIG",
	                                    "DYNAMIC_BROKER_LOGGER_CONFIG",
	                                    "CLIENT_METRICS_CONFIG",
	                                    "GROUP_CONFIG"};

	return s >= 0 && (size_t)s < sizeof(names) / sizeof(names[0]) ? names[s] : "UNKNOWN";
}

static int
entity_type(const char *s, int8_t *out)
{
	if (strcmp(s, "topics") == 0 || strcmp(s, "topic") == 0)
		*out = RES_TOPIC;
	else if (strcmp(s, "brokers") == 0 || strcmp(s, "broker") == 0)
		*out = RES_BROKER;
	else
		return -EINVAL;
	return 0;
}

static int
bad_opt(const char *prog)
{
	fprintf(stderr, "Try '%s --help'.\n", prog);
	return ADM_EXIT_USAGE;
}

/* Print one value: null, sensitive or the text. */
static void
print_value(const struct kp_str *v, bool sensitive)
{
	if (sensitive || v->len < 0)
		printf("null");
	else
		printf("%.*s", v->len, v->ptr);
}

int
adm_configs_describe(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"entity-type", required_argument, NULL, OPT_ENTITY_TYPE},
	        {"entity-name", required_argument, NULL, OPT_ENTITY_NAME},
	        {"all", no_argument, NULL, OPT_ALL},
	        ADM_COMMON_LONGOPTS,
	        {NULL, 0, NULL, 0},
	};
	struct kp_describe_configs_request_describe_configs_resource res;
	struct kp_describe_configs_request req;
	struct kp_describe_configs_response resp;
	struct adm_opts o = {0};
	struct adm_conn c;
	const char *name = NULL;
	int8_t type = -1;
	bool all = false;
	int ch, rc, kerr = 0;
	int16_t v;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		rc = adm_common_opt(&o, ch, optarg);
		if (rc < 0)
			return ADM_EXIT_USAGE;
		if (rc > 0)
			continue;
		switch (ch) {
		case OPT_ENTITY_TYPE:
			if (entity_type(optarg, &type) < 0) {
				fprintf(stderr, "Error: --entity-type is topics or brokers\n");
				return ADM_EXIT_USAGE;
			}
			break;
		case OPT_ENTITY_NAME:
			name = optarg;
			break;
		case OPT_ALL:
			all = true;
			break;
		case ADM_OPT_HELP:
			printf("usage: %s --entity-type topics|brokers --entity-name NAME "
			       "[--all]\n\n"
			       "Show the configs set on a topic or broker (with --all, every "
			       "config\n"
			       "with its effective value); each with its synonyms and their "
			       "sources.\n\n"
			       "  --entity-type topics|brokers\n"
			       "  --entity-name NAME         topic name or broker id\n"
			       "  --all                      every config, not only those "
			       "set\n" ADM_COMMON_HELP,
			       argv[0]);
			return ADM_EXIT_OK;
		default:
			return bad_opt(argv[0]);
		}
	}
	if (type < 0 || name == NULL || optind < argc) {
		fprintf(stderr, "Error: --entity-type and --entity-name are required\n");
		return bad_opt(argv[0]);
	}
	rc = adm_connect(&o, &c);
	if (rc != 0)
		return rc;
	v = adm_conn_version(&c, KP_API_DESCRIBE_CONFIGS, V_DESCRIBE_CONFIGS);
	if (v < 0) {
		fprintf(stderr, "Error: the broker does not serve DescribeConfigs\n");
		rc = ADM_EXIT_UNSUPPORTED;
		goto out;
	}
	kp_describe_configs_request_init(&req);
	kp_describe_configs_request_describe_configs_resource_init(&res);
	res.resource_type = type;
	res.resource_name = adm_str(name);
	res.configuration_keys.count = -1;
	req.resources.items = &res;
	req.resources.count = 1;
	req.include_synonyms = true;
	if (adm_call(&c, KP_API_DESCRIBE_CONFIGS, v, &req, &resp) < 0) {
		rc = ADM_EXIT_CONNECT;
		goto out;
	}
	for (int32_t i = 0; i < resp.results.count; i++) {
		const struct kp_describe_configs_response_describe_configs_result *r =
		        &resp.results.items[i];
		const char *tname = type == RES_TOPIC ? "topic" : "broker";
		char what[300];

		snprintf(what, sizeof(what), "describing %s '%s'", tname, name);
		if (r->error_code != 0) {
			kerr |= adm_report(what, r->error_code, &r->error_message);
			continue;
		}
		printf("%s configs for %s %s are:\n", all ? "All" : "Dynamic", tname, name);
		for (int32_t j = 0; j < r->configs.count; j++) {
			const struct kp_describe_configs_response_describe_configs_resource_result
			        *e = &r->configs.items[j];
			int8_t src = e->config_source;

			if (v == 0) /* v0 has is_default only */
				src = e->is_default ? 5 : (type == RES_TOPIC ? 1 : 2);
			if (!all && src != 1 && src != 2 && src != 3)
				continue;
			printf("  %.*s=", e->name.len > 0 ? e->name.len : 0, e->name.ptr);
			print_value(&e->value, e->is_sensitive);
			printf(" sensitive=%s synonyms={", e->is_sensitive ? "true" : "false");
			for (int32_t k = 0; k < e->synonyms.count; k++) {
				const struct kp_describe_configs_response_describe_configs_synonym
				        *s = &e->synonyms.items[k];

				printf("%s%s:%.*s=", k > 0 ? ", " : "", source_name(s->source),
				       s->name.len > 0 ? s->name.len : 0, s->name.ptr);
				print_value(&s->value, e->is_sensitive);
			}
			printf("}\n");
		}
	}
	rc = kerr;
out:
	adm_conn_close(&c);
	return rc;
}

/*
 * Split a kafka-configs.sh list ("a=1,b=[x,y],c=2") in place: commas inside
 * brackets belong to the value, and the brackets are dropped. Each item is
 * passed to @fn. @return 0 or the first error of @fn / -EINVAL.
 */
static int
split_list(char *s, int (*fn)(void *arg, char *item), void *arg)
{
	while (*s != '\0') {
		char *start = s, *w = s;
		int depth = 0, rc;

		for (; *s != '\0' && (*s != ',' || depth > 0); s++) {
			if (*s == '[') {
				depth++;
				continue;
			}
			if (*s == ']' && depth > 0) {
				depth--;
				continue;
			}
			*w++ = *s;
		}
		if (depth != 0) {
			fprintf(stderr, "Error: unbalanced '[' in '%s'\n", start);
			return -EINVAL;
		}
		if (*s == ',')
			s++;
		*w = '\0';
		if (*start == '\0')
			continue;
		rc = fn(arg, start);
		if (rc < 0)
			return rc;
	}
	return 0;
}

struct alter_ops {
	struct kp_incremental_alter_configs_request_alterable_config items[MAX_OPS];
	int n;
	int8_t op; /* 0 SET, 1 DELETE */
};

static int
add_op(void *arg, char *item)
{
	struct alter_ops *a = arg;
	struct kp_incremental_alter_configs_request_alterable_config *e;
	char *eq = strchr(item, '=');

	if (a->n == MAX_OPS) {
		fprintf(stderr, "Error: at most %d configs in one alter\n", MAX_OPS);
		return -E2BIG;
	}
	e = &a->items[a->n];
	kp_incremental_alter_configs_request_alterable_config_init(e);
	e->config_operation = a->op;
	if (a->op == 0) {
		if (eq == NULL || eq == item) {
			fprintf(stderr, "Error: --add-config: '%s' is not key=value\n", item);
			return -EINVAL;
		}
		*eq = '\0';
		e->value = adm_str(eq + 1);
	} else {
		e->value = adm_str(NULL);
	}
	e->name = adm_str(item);
	a->n++;
	return 0;
}

int
adm_configs_alter(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"entity-type", required_argument, NULL, OPT_ENTITY_TYPE},
	        {"entity-name", required_argument, NULL, OPT_ENTITY_NAME},
	        {"add-config", required_argument, NULL, OPT_ADD},
	        {"delete-config", required_argument, NULL, OPT_DELETE},
	        {"validate-only", no_argument, NULL, OPT_VALIDATE_ONLY},
	        ADM_COMMON_LONGOPTS,
	        {NULL, 0, NULL, 0},
	};
	struct kp_incremental_alter_configs_request_alter_configs_resource res;
	struct kp_incremental_alter_configs_request req;
	struct kp_incremental_alter_configs_response resp;
	struct alter_ops *ops;
	struct adm_opts o = {0};
	struct adm_conn c;
	const char *name = NULL;
	int8_t type = -1;
	bool validate_only = false;
	int ch, rc, kerr = 0;
	int16_t v;

	ops = calloc(1, sizeof(*ops));
	if (ops == NULL)
		return ADM_EXIT_CONNECT;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		rc = adm_common_opt(&o, ch, optarg);
		if (rc < 0)
			goto usage;
		if (rc > 0)
			continue;
		switch (ch) {
		case OPT_ENTITY_TYPE:
			if (entity_type(optarg, &type) < 0) {
				fprintf(stderr, "Error: --entity-type is topics or brokers\n");
				goto usage;
			}
			break;
		case OPT_ENTITY_NAME:
			name = optarg;
			break;
		case OPT_ADD:
		case OPT_DELETE:
			ops->op = ch == OPT_ADD ? 0 : 1;
			if (split_list(optarg, add_op, ops) < 0)
				goto usage;
			break;
		case OPT_VALIDATE_ONLY:
			validate_only = true;
			break;
		case ADM_OPT_HELP:
			printf("usage: %s --entity-type topics|brokers --entity-name NAME\n"
			       "       [--add-config K=V[,K=V]] [--delete-config K[,K]] "
			       "[options]\n\n"
			       "Set or delete configs of one topic or broker; configs not named "
			       "keep\n"
			       "their values (IncrementalAlterConfigs). A value holding commas is\n"
			       "written in brackets: --add-config 'k=[a,b]'.\n\n"
			       "  --entity-type topics|brokers\n"
			       "  --entity-name NAME         topic name or broker id\n"
			       "  --add-config K=V,...       configs to set (repeatable)\n"
			       "  --delete-config K,...      configs to return to their default\n"
			       "  --validate-only            check only, change "
			       "nothing\n" ADM_COMMON_HELP,
			       argv[0]);
			free(ops);
			return ADM_EXIT_OK;
		default:
			bad_opt(argv[0]);
			goto usage;
		}
	}
	if (type < 0 || name == NULL || ops->n == 0 || optind < argc) {
		fprintf(stderr, "Error: --entity-type, --entity-name and --add-config or "
		                "--delete-config are required\n");
		bad_opt(argv[0]);
		goto usage;
	}
	rc = adm_connect(&o, &c);
	if (rc != 0) {
		free(ops);
		return rc;
	}
	v = adm_conn_version(&c, KP_API_INCREMENTAL_ALTER_CONFIGS, V_INCREMENTAL_ALTER);
	if (v < 0) {
		fprintf(stderr, "Error: the broker does not serve IncrementalAlterConfigs\n");
		rc = ADM_EXIT_UNSUPPORTED;
		goto out;
	}
	kp_incremental_alter_configs_request_init(&req);
	kp_incremental_alter_configs_request_alter_configs_resource_init(&res);
	res.resource_type = type;
	res.resource_name = adm_str(name);
	res.configs.items = ops->items;
	res.configs.count = ops->n;
	req.resources.items = &res;
	req.resources.count = 1;
	req.validate_only = validate_only;
	if (adm_call(&c, KP_API_INCREMENTAL_ALTER_CONFIGS, v, &req, &resp) < 0) {
		rc = ADM_EXIT_CONNECT;
		goto out;
	}
	for (int32_t i = 0; i < resp.responses.count; i++) {
		const struct kp_incremental_alter_configs_response_alter_configs_resource_response
		        *r = &resp.responses.items[i];
		char what[300];

		snprintf(what, sizeof(what), "altering configs of %s '%s'",
		         type == RES_TOPIC ? "topic" : "broker", name);
		if (r->error_code != 0)
			kerr |= adm_report(what, r->error_code, &r->error_message);
		else
			printf("Completed %s config for %s %s.\n",
			       validate_only ? "validating" : "updating",
			       type == RES_TOPIC ? "topic" : "broker", name);
	}
	if (resp.responses.count == 0) {
		fprintf(stderr, "Error: IncrementalAlterConfigs answered no result\n");
		kerr = ADM_EXIT_CONNECT;
	}
	rc = kerr;
out:
	adm_conn_close(&c);
	free(ops);
	return rc;
usage:
	free(ops);
	return ADM_EXIT_USAGE;
}
