/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slipstream-admin topics: list, describe, create, alter (add partitions)
 * and delete, with Metadata, CreateTopics, CreatePartitions, DeleteTopics
 * and DescribeConfigs. The output follows kafka-topics.sh so scripts and
 * eyes used to it read it the same way.
 */
#include "adm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Highest versions this file fills every field of. */
#define V_METADATA 12
#define V_CREATE_TOPICS 7
#define V_CREATE_PARTITIONS 3
#define V_DELETE_TOPICS 6
#define V_DESCRIBE_CONFIGS 4

#define MAX_NAMES 256

enum {
	OPT_TOPIC = ADM_OPT_FIRST_LOCAL,
	OPT_PARTITIONS,
	OPT_RF,
	OPT_CONFIG,
	OPT_IF_NOT_EXISTS,
	OPT_IF_EXISTS,
	OPT_VALIDATE_ONLY,
	OPT_EXCLUDE_INTERNAL,
};

static int
no_version(const char *api)
{
	fprintf(stderr, "Error: the broker does not serve %s in a version this tool speaks\n", api);
	return ADM_EXIT_UNSUPPORTED;
}

static int
bad_opt(const char *prog)
{
	fprintf(stderr, "Try '%s --help'.\n", prog);
	return ADM_EXIT_USAGE;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Metadata for @names (n 0: every topic). Returns 0 or an exit code. */
static int
fetch_metadata(struct adm_conn *c, char **names, int n, struct kp_metadata_response *resp)
{
	struct kp_metadata_request req;
	int16_t v = adm_conn_version(c, KP_API_METADATA, V_METADATA);

	if (v < 0)
		return no_version("Metadata");
	kp_metadata_request_init(&req);
	req.allow_auto_topic_creation = false;
	if (n == 0) {
		req.topics.items = NULL;
		req.topics.count = v >= 1 ? -1 : 0; /* v0: empty means all; v1+: null */
	} else {
		req.topics.items = adm_alloc(c, sizeof(*req.topics.items) * (size_t)n);
		if (req.topics.items == NULL)
			return ADM_EXIT_CONNECT;
		req.topics.count = n;
		for (int i = 0; i < n; i++) {
			kp_metadata_request_metadata_request_topic_init(&req.topics.items[i]);
			req.topics.items[i].name = adm_str(names[i]);
		}
	}
	if (adm_call(c, KP_API_METADATA, v, &req, resp) < 0)
		return ADM_EXIT_CONNECT;
	return ADM_EXIT_OK;
}

int
adm_topics_list(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"exclude-internal", no_argument, NULL, OPT_EXCLUDE_INTERNAL},
	        ADM_COMMON_LONGOPTS,
	        {NULL, 0, NULL, 0},
	};
	struct adm_opts o = {0};
	struct kp_metadata_response md;
	struct adm_conn c;
	bool exclude_internal = false;
	char **names;
	int ch, rc, n = 0;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		rc = adm_common_opt(&o, ch, optarg);
		if (rc < 0)
			return ADM_EXIT_USAGE;
		if (rc > 0)
			continue;
		if (ch == OPT_EXCLUDE_INTERNAL) {
			exclude_internal = true;
		} else if (ch == ADM_OPT_HELP) {
			printf("usage: %s [options]\n\nPrint the name of every topic, sorted.\n\n"
			       "  --exclude-internal         leave out internal "
			       "topics\n" ADM_COMMON_HELP,
			       argv[0]);
			return ADM_EXIT_OK;
		} else {
			return bad_opt(argv[0]);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "Error: unexpected argument '%s'\n", argv[optind]);
		return bad_opt(argv[0]);
	}
	rc = adm_connect(&o, &c);
	if (rc != 0)
		return rc;
	rc = fetch_metadata(&c, NULL, 0, &md);
	if (rc != 0)
		goto out;
	names = adm_alloc(&c, sizeof(char *) * (size_t)(md.topics.count > 0 ? md.topics.count : 1));
	if (names == NULL) {
		rc = ADM_EXIT_CONNECT;
		goto out;
	}
	for (int32_t i = 0; i < md.topics.count; i++) {
		if (exclude_internal && md.topics.items[i].is_internal)
			continue;
		names[n++] = adm_strdup(&c, &md.topics.items[i].name);
	}
	qsort(names, (size_t)n, sizeof(char *), cmp_str);
	for (int i = 0; i < n; i++)
		printf("%s\n", names[i]);
out:
	adm_conn_close(&c);
	return rc;
}

static int
cmp_part(const void *a, const void *b)
{
	const struct kp_metadata_response_metadata_response_partition *x = a, *y = b;

	return (x->partition_index > y->partition_index) -
	       (x->partition_index < y->partition_index);
}

static int
cmp_topic(const void *a, const void *b)
{
	const struct kp_metadata_response_metadata_response_topic *x = a, *y = b;
	int32_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
	int c = n > 0 ? memcmp(x->name.ptr, y->name.ptr, (size_t)n) : 0;

	return c != 0 ? c : (x->name.len > y->name.len) - (x->name.len < y->name.len);
}

static void
print_nodes(const char *label, const struct kp_array_int32 *a)
{
	printf("\t%s: ", label);
	for (int32_t i = 0; i < a->count; i++)
		printf("%s%d", i > 0 ? "," : "", a->items[i]);
}

/*
 * The configs a topic has set (source DYNAMIC_TOPIC_CONFIG), "k=v,k=v", as
 * kafka-topics.sh --describe shows them; "" when DescribeConfigs is not served.
 */
static const char *
topic_configs(struct adm_conn *c, const struct kp_str *topic)
{
	struct kp_describe_configs_request_describe_configs_resource res;
	struct kp_describe_configs_request req;
	struct kp_describe_configs_response resp;
	int16_t v = adm_conn_version(c, KP_API_DESCRIBE_CONFIGS, V_DESCRIBE_CONFIGS);
	size_t cap = 1, len = 0;
	char *out;

	if (v < 0)
		return "";
	kp_describe_configs_request_init(&req);
	kp_describe_configs_request_describe_configs_resource_init(&res);
	res.resource_type = 2; /* TOPIC */
	res.resource_name = *topic;
	res.configuration_keys.count = -1;
	req.resources.items = &res;
	req.resources.count = 1;
	if (adm_call(c, KP_API_DESCRIBE_CONFIGS, v, &req, &resp) < 0 || resp.results.count != 1 ||
	    resp.results.items[0].error_code != 0)
		return "";
	for (int32_t i = 0; i < resp.results.items[0].configs.count; i++) {
		const struct kp_describe_configs_response_describe_configs_resource_result *e =
		        &resp.results.items[0].configs.items[i];

		cap += (size_t)(e->name.len > 0 ? e->name.len : 0) +
		       (size_t)(e->value.len > 0 ? e->value.len : 0) + 2;
	}
	out = adm_alloc(c, cap);
	if (out == NULL)
		return "";
	for (int32_t i = 0; i < resp.results.items[0].configs.count; i++) {
		const struct kp_describe_configs_response_describe_configs_resource_result *e =
		        &resp.results.items[0].configs.items[i];
		/* v0 has is_default instead of a source. */
		bool dynamic = v >= 1 ? e->config_source == 1 : !e->is_default;

		if (!dynamic)
			continue;
		len += (size_t)snprintf(out + len, cap - len, "%s%.*s=%.*s", len > 0 ? "," : "",
		                        e->name.len > 0 ? e->name.len : 0, e->name.ptr,
		                        e->value.len > 0 ? e->value.len : 0, e->value.ptr);
	}
	return out;
}

int
adm_topics_describe(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"topic", required_argument, NULL, OPT_TOPIC},
	        {"exclude-internal", no_argument, NULL, OPT_EXCLUDE_INTERNAL},
	        ADM_COMMON_LONGOPTS,
	        {NULL, 0, NULL, 0},
	};
	struct adm_opts o = {0};
	struct kp_metadata_response md;
	struct adm_conn c;
	char *names[MAX_NAMES];
	bool exclude_internal = false;
	int ch, rc, n = 0, kerr = 0;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		rc = adm_common_opt(&o, ch, optarg);
		if (rc < 0)
			return ADM_EXIT_USAGE;
		if (rc > 0)
			continue;
		switch (ch) {
		case OPT_TOPIC:
			if (n == MAX_NAMES) {
				fprintf(stderr, "Error: at most %d --topic\n", MAX_NAMES);
				return ADM_EXIT_USAGE;
			}
			names[n++] = optarg;
			break;
		case OPT_EXCLUDE_INTERNAL:
			exclude_internal = true;
			break;
		case ADM_OPT_HELP:
			printf("usage: %s [--topic NAME]... [options]\n\n"
			       "Partitions, leader, replicas, in-sync replicas and the configs set "
			       "on\n"
			       "each topic (all topics when no --topic is given).\n\n"
			       "  --topic NAME               a topic to describe (repeatable)\n"
			       "  --exclude-internal         leave out internal "
			       "topics\n" ADM_COMMON_HELP,
			       argv[0]);
			return ADM_EXIT_OK;
		default:
			return bad_opt(argv[0]);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "Error: unexpected argument '%s'\n", argv[optind]);
		return bad_opt(argv[0]);
	}
	rc = adm_connect(&o, &c);
	if (rc != 0)
		return rc;
	rc = fetch_metadata(&c, names, n, &md);
	if (rc != 0)
		goto out;
	if (md.topics.count > 0)
		qsort(md.topics.items, (size_t)md.topics.count, sizeof(md.topics.items[0]),
		      cmp_topic);
	for (int32_t i = 0; i < md.topics.count; i++) {
		struct kp_metadata_response_metadata_response_topic *t = &md.topics.items[i];
		char what[300], id[23];
		int rf = t->partitions.count > 0 ? t->partitions.items[0].replica_nodes.count : 0;

		snprintf(what, sizeof(what), "topic '%.*s'", t->name.len > 0 ? t->name.len : 0,
		         t->name.ptr);
		if (t->error_code != 0) {
			kerr |= adm_report(what, t->error_code, NULL);
			continue;
		}
		if (exclude_internal && t->is_internal)
			continue;
		adm_uuid_format(&t->topic_id, id);
		printf("Topic: %.*s\tTopicId: %s\tPartitionCount: %d\tReplicationFactor: %d\t"
		       "Configs: %s\n",
		       t->name.len, t->name.ptr, id, t->partitions.count, rf,
		       topic_configs(&c, &t->name));
		if (t->partitions.count > 0)
			qsort(t->partitions.items, (size_t)t->partitions.count,
			      sizeof(t->partitions.items[0]), cmp_part);
		for (int32_t p = 0; p < t->partitions.count; p++) {
			const struct kp_metadata_response_metadata_response_partition *pp =
			        &t->partitions.items[p];

			printf("\tTopic: %.*s\tPartition: %d\tLeader: %d", t->name.len, t->name.ptr,
			       pp->partition_index, pp->leader_id);
			print_nodes("Replicas", &pp->replica_nodes);
			print_nodes("Isr", &pp->isr_nodes);
			if (pp->error_code != 0)
				printf("\tError: %s", kp_error_name(pp->error_code));
			printf("\n");
		}
	}
	rc = kerr;
out:
	adm_conn_close(&c);
	return rc;
}

/* "k=v" into a CreateTopics config entry. */
static int
parse_kv(const char *s, struct kp_str *k, struct kp_str *v)
{
	const char *eq = strchr(s, '=');

	if (eq == NULL || eq == s) {
		fprintf(stderr, "Error: '%s' is not key=value\n", s);
		return -EINVAL;
	}
	k->ptr = s;
	k->len = (int32_t)(eq - s);
	*v = adm_str(eq + 1);
	return 0;
}

int
adm_topics_create(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"topic", required_argument, NULL, OPT_TOPIC},
	        {"partitions", required_argument, NULL, OPT_PARTITIONS},
	        {"replication-factor", required_argument, NULL, OPT_RF},
	        {"config", required_argument, NULL, OPT_CONFIG},
	        {"if-not-exists", no_argument, NULL, OPT_IF_NOT_EXISTS},
	        {"validate-only", no_argument, NULL, OPT_VALIDATE_ONLY},
	        ADM_COMMON_LONGOPTS,
	        {NULL, 0, NULL, 0},
	};
	struct kp_create_topics_request_creatable_topic_config cfgs[MAX_NAMES];
	struct kp_create_topics_request_creatable_topic t;
	struct kp_create_topics_request req;
	struct kp_create_topics_response resp;
	struct adm_opts o = {0};
	struct adm_conn c;
	const char *topic = NULL;
	int64_t partitions = -1, rf = -1;
	bool if_not_exists = false, validate_only = false;
	int ch, rc, n_cfg = 0;
	int16_t v;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		rc = adm_common_opt(&o, ch, optarg);
		if (rc < 0)
			return ADM_EXIT_USAGE;
		if (rc > 0)
			continue;
		switch (ch) {
		case OPT_TOPIC:
			topic = optarg;
			break;
		case OPT_PARTITIONS:
			if (adm_parse_i64(optarg, &partitions) < 0 || partitions < 1 ||
			    partitions > INT32_MAX) {
				fprintf(stderr, "Error: --partitions must be a positive number\n");
				return ADM_EXIT_USAGE;
			}
			break;
		case OPT_RF:
			if (adm_parse_i64(optarg, &rf) < 0 || rf < 1 || rf > INT16_MAX) {
				fprintf(stderr, "Error: --replication-factor must be 1..32767\n");
				return ADM_EXIT_USAGE;
			}
			break;
		case OPT_CONFIG:
			if (n_cfg == MAX_NAMES) {
				fprintf(stderr, "Error: at most %d --config\n", MAX_NAMES);
				return ADM_EXIT_USAGE;
			}
			kp_create_topics_request_creatable_topic_config_init(&cfgs[n_cfg]);
			if (parse_kv(optarg, &cfgs[n_cfg].name, &cfgs[n_cfg].value) < 0)
				return ADM_EXIT_USAGE;
			n_cfg++;
			break;
		case OPT_IF_NOT_EXISTS:
			if_not_exists = true;
			break;
		case OPT_VALIDATE_ONLY:
			validate_only = true;
			break;
		case ADM_OPT_HELP:
			printf("usage: %s --topic NAME [options]\n\nCreate a topic.\n\n"
			       "  --topic NAME               the topic (required)\n"
			       "  --partitions N             partitions (default: the broker's\n"
			       "                             num.partitions)\n"
			       "  --replication-factor N     replicas (default: the broker's)\n"
			       "  --config KEY=VALUE         a topic config (repeatable)\n"
			       "  --if-not-exists            succeed when the topic exists "
			       "already\n"
			       "  --validate-only            check only, create "
			       "nothing\n" ADM_COMMON_HELP,
			       argv[0]);
			return ADM_EXIT_OK;
		default:
			return bad_opt(argv[0]);
		}
	}
	if (topic == NULL || optind < argc) {
		fprintf(stderr, "Error: %s\n",
		        topic == NULL ? "--topic is required" : "unexpected argument");
		return bad_opt(argv[0]);
	}
	rc = adm_connect(&o, &c);
	if (rc != 0)
		return rc;
	v = adm_conn_version(&c, KP_API_CREATE_TOPICS, V_CREATE_TOPICS);
	if (v < 0) {
		rc = no_version("CreateTopics");
		goto out;
	}
	/* Broker defaults (-1) exist from v4 (KIP-464); before that, Kafka's own defaults. */
	if (v < 4 && partitions < 0)
		partitions = 1;
	if (v < 4 && rf < 0)
		rf = 1;
	kp_create_topics_request_init(&req);
	kp_create_topics_request_creatable_topic_init(&t);
	t.name = adm_str(topic);
	t.num_partitions = (int32_t)partitions;
	t.replication_factor = (int16_t)rf;
	t.assignments.count = 0;
	t.configs.items = cfgs;
	t.configs.count = n_cfg;
	req.topics.items = &t;
	req.topics.count = 1;
	req.timeout_ms = c.timeout_ms;
	req.validate_only = validate_only;
	if (validate_only && v < 1) {
		fprintf(stderr, "Error: the broker's CreateTopics has no validate-only mode\n");
		rc = ADM_EXIT_UNSUPPORTED;
		goto out;
	}
	if (adm_call(&c, KP_API_CREATE_TOPICS, v, &req, &resp) < 0) {
		rc = ADM_EXIT_CONNECT;
		goto out;
	}
	if (resp.topics.count != 1) {
		fprintf(stderr, "Error: CreateTopics answered %d results for 1 topic\n",
		        resp.topics.count);
		rc = ADM_EXIT_CONNECT;
		goto out;
	}
	if (resp.topics.items[0].error_code == KP_ERR_TOPIC_ALREADY_EXISTS && if_not_exists) {
		rc = ADM_EXIT_OK;
	} else if (resp.topics.items[0].error_code != 0) {
		char what[300];

		snprintf(what, sizeof(what), "creating topic '%s'", topic);
		rc = adm_report(what, resp.topics.items[0].error_code,
		                &resp.topics.items[0].error_message);
	} else {
		printf("%s topic %s.\n", validate_only ? "Validated" : "Created", topic);
	}
out:
	adm_conn_close(&c);
	return rc;
}

int
adm_topics_alter(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"topic", required_argument, NULL, OPT_TOPIC},
	        {"partitions", required_argument, NULL, OPT_PARTITIONS},
	        {"validate-only", no_argument, NULL, OPT_VALIDATE_ONLY},
	        ADM_COMMON_LONGOPTS,
	        {NULL, 0, NULL, 0},
	};
	struct kp_create_partitions_request_create_partitions_topic t;
	struct kp_create_partitions_request req;
	struct kp_create_partitions_response resp;
	struct adm_opts o = {0};
	struct adm_conn c;
	const char *topic = NULL;
	int64_t partitions = -1;
	bool validate_only = false;
	int ch, rc;
	int16_t v;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		rc = adm_common_opt(&o, ch, optarg);
		if (rc < 0)
			return ADM_EXIT_USAGE;
		if (rc > 0)
			continue;
		switch (ch) {
		case OPT_TOPIC:
			topic = optarg;
			break;
		case OPT_PARTITIONS:
			if (adm_parse_i64(optarg, &partitions) < 0 || partitions < 1 ||
			    partitions > INT32_MAX) {
				fprintf(stderr, "Error: --partitions must be a positive number\n");
				return ADM_EXIT_USAGE;
			}
			break;
		case OPT_VALIDATE_ONLY:
			validate_only = true;
			break;
		case ADM_OPT_HELP:
			printf("usage: %s --topic NAME --partitions N [options]\n\n"
			       "Raise a topic's partition count to N (Kafka cannot lower it).\n\n"
			       "  --topic NAME               the topic (required)\n"
			       "  --partitions N             the new total count (required)\n"
			       "  --validate-only            check only, change "
			       "nothing\n" ADM_COMMON_HELP,
			       argv[0]);
			return ADM_EXIT_OK;
		default:
			return bad_opt(argv[0]);
		}
	}
	if (topic == NULL || partitions < 0 || optind < argc) {
		fprintf(stderr, "Error: --topic and --partitions are required\n");
		return bad_opt(argv[0]);
	}
	rc = adm_connect(&o, &c);
	if (rc != 0)
		return rc;
	v = adm_conn_version(&c, KP_API_CREATE_PARTITIONS, V_CREATE_PARTITIONS);
	if (v < 0) {
		rc = no_version("CreatePartitions");
		goto out;
	}
	kp_create_partitions_request_init(&req);
	kp_create_partitions_request_create_partitions_topic_init(&t);
	t.name = adm_str(topic);
	t.count = (int32_t)partitions;
	t.assignments.count = -1;
	req.topics.items = &t;
	req.topics.count = 1;
	req.timeout_ms = c.timeout_ms;
	req.validate_only = validate_only;
	if (adm_call(&c, KP_API_CREATE_PARTITIONS, v, &req, &resp) < 0) {
		rc = ADM_EXIT_CONNECT;
		goto out;
	}
	if (resp.results.count != 1) {
		fprintf(stderr, "Error: CreatePartitions answered %d results for 1 topic\n",
		        resp.results.count);
		rc = ADM_EXIT_CONNECT;
		goto out;
	}
	if (resp.results.items[0].error_code != 0) {
		char what[300];

		snprintf(what, sizeof(what), "altering topic '%s'", topic);
		rc = adm_report(what, resp.results.items[0].error_code,
		                &resp.results.items[0].error_message);
	} else {
		printf("%s topic %s: %" PRId64 " partitions.\n",
		       validate_only ? "Validated" : "Altered", topic, partitions);
	}
out:
	adm_conn_close(&c);
	return rc;
}

int
adm_topics_delete(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"topic", required_argument, NULL, OPT_TOPIC},
	        {"if-exists", no_argument, NULL, OPT_IF_EXISTS},
	        ADM_COMMON_LONGOPTS,
	        {NULL, 0, NULL, 0},
	};
	struct kp_delete_topics_request_delete_topic_state states[MAX_NAMES];
	struct kp_str strs[MAX_NAMES];
	struct kp_delete_topics_request req;
	struct kp_delete_topics_response resp;
	struct adm_opts o = {0};
	struct adm_conn c;
	char *names[MAX_NAMES];
	bool if_exists = false;
	int ch, rc, n = 0, kerr = 0;
	int16_t v;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		rc = adm_common_opt(&o, ch, optarg);
		if (rc < 0)
			return ADM_EXIT_USAGE;
		if (rc > 0)
			continue;
		switch (ch) {
		case OPT_TOPIC:
			if (n == MAX_NAMES) {
				fprintf(stderr, "Error: at most %d --topic\n", MAX_NAMES);
				return ADM_EXIT_USAGE;
			}
			names[n++] = optarg;
			break;
		case OPT_IF_EXISTS:
			if_exists = true;
			break;
		case ADM_OPT_HELP:
			printf("usage: %s --topic NAME [--topic NAME]... [options]\n\n"
			       "Delete topics and their data.\n\n"
			       "  --topic NAME               a topic to delete (repeatable)\n"
			       "  --if-exists                succeed for topics that do not "
			       "exist\n" ADM_COMMON_HELP,
			       argv[0]);
			return ADM_EXIT_OK;
		default:
			return bad_opt(argv[0]);
		}
	}
	if (n == 0 || optind < argc) {
		fprintf(stderr, "Error: --topic is required\n");
		return bad_opt(argv[0]);
	}
	rc = adm_connect(&o, &c);
	if (rc != 0)
		return rc;
	v = adm_conn_version(&c, KP_API_DELETE_TOPICS, V_DELETE_TOPICS);
	if (v < 0) {
		rc = no_version("DeleteTopics");
		goto out;
	}
	kp_delete_topics_request_init(&req);
	for (int i = 0; i < n; i++) {
		kp_delete_topics_request_delete_topic_state_init(&states[i]);
		states[i].name = adm_str(names[i]);
		strs[i] = adm_str(names[i]);
	}
	/* v6 names topics in the topics array (by name or id); before, in topic_names. */
	if (v >= 6) {
		req.topics.items = states;
		req.topics.count = n;
	} else {
		req.topic_names.items = strs;
		req.topic_names.count = n;
	}
	req.timeout_ms = c.timeout_ms;
	if (adm_call(&c, KP_API_DELETE_TOPICS, v, &req, &resp) < 0) {
		rc = ADM_EXIT_CONNECT;
		goto out;
	}
	for (int32_t i = 0; i < resp.responses.count; i++) {
		const struct kp_delete_topics_response_deletable_topic_result *r =
		        &resp.responses.items[i];
		char what[300];

		snprintf(what, sizeof(what), "deleting topic '%.*s'",
		         r->name.len > 0 ? r->name.len : 0, r->name.ptr);
		if (r->error_code == KP_ERR_UNKNOWN_TOPIC_OR_PARTITION && if_exists)
			continue;
		if (r->error_code != 0)
			kerr |= adm_report(what, r->error_code, &r->error_message);
		else
			printf("Deleted topic %.*s.\n", r->name.len > 0 ? r->name.len : 0,
			       r->name.ptr);
	}
	rc = kerr;
out:
	adm_conn_close(&c);
	return rc;
}
