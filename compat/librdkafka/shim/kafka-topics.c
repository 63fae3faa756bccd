/*
 * Minimal stand-in for Apache Kafka's bin/kafka-topics.sh, for the librdkafka tests
 * that shell out to it (test_kafka_topics(): 0045, 0052, 0077). Like the real tool it
 * talks to the broker through the Admin API (CreateTopics / CreatePartitions /
 * DeleteTopics), here via librdkafka's admin client. Part of Klamm's compat harness;
 * built by compat/librdkafka/harness.py against the librdkafka it builds.
 *
 * Supported: --bootstrap-server B (--create --topic T [--partitions N]
 *            [--replication-factor R] [--config k=v]... | --alter --topic T --partitions N
 *            | --delete --topic T)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rdkafka.h"

static void die(const char *msg, const char *arg) {
        fprintf(stderr, "kafka-topics (klamm compat shim): %s%s%s\n", msg,
                arg ? ": " : "", arg ? arg : "");
        exit(1);
}

static int check_topic_results(const rd_kafka_topic_result_t **res, size_t cnt) {
        int fails = 0;
        for (size_t i = 0; i < cnt; i++) {
                rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[i]);
                if (err) {
                        fprintf(stderr, "kafka-topics: %s: %s: %s\n",
                                rd_kafka_topic_result_name(res[i]), rd_kafka_err2name(err),
                                rd_kafka_topic_result_error_string(res[i])
                                    ? rd_kafka_topic_result_error_string(res[i])
                                    : "");
                        fails++;
                } else
                        printf("kafka-topics: %s: OK\n", rd_kafka_topic_result_name(res[i]));
        }
        return fails;
}

int main(int argc, char **argv) {
        const char *bootstrap = NULL, *topic = NULL, *op = NULL;
        int partitions = -1, rf = -1;
        const char *configs[64];
        int config_cnt = 0;
        char errstr[512];

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                const char *v = i + 1 < argc ? argv[i + 1] : NULL;
                if (!strcmp(a, "--bootstrap-server") && v) {
                        bootstrap = v;
                        i++;
                } else if (!strcmp(a, "--create") || !strcmp(a, "--alter") ||
                           !strcmp(a, "--delete"))
                        op = a + 2;
                else if (!strcmp(a, "--topic") && v) {
                        topic = v;
                        i++;
                } else if (!strcmp(a, "--partitions") && v) {
                        partitions = atoi(v);
                        i++;
                } else if (!strcmp(a, "--replication-factor") && v) {
                        rf = atoi(v);
                        i++;
                } else if (!strcmp(a, "--config") && v) {
                        if (config_cnt == 64)
                                die("too many --config", NULL);
                        configs[config_cnt++] = v;
                        i++;
                } else
                        die("unsupported argument", a);
        }
        if (!bootstrap)
                bootstrap = getenv("BROKERS");
        if (!bootstrap || !topic || !op)
                die("need --bootstrap-server, --topic and --create/--alter/--delete", NULL);

        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)))
                die(errstr, NULL);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk)
                die(errstr, NULL);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *opts =
            rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY);
        rd_kafka_AdminOptions_set_request_timeout(opts, 30000, errstr, sizeof(errstr));
        rd_kafka_AdminOptions_set_operation_timeout(opts, 30000, errstr, sizeof(errstr));

        if (!strcmp(op, "create")) {
                rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(
                    topic, partitions, rf, errstr, sizeof(errstr));
                if (!nt)
                        die(errstr, NULL);
                for (int i = 0; i < config_cnt; i++) {
                        char kv[512];
                        snprintf(kv, sizeof(kv), "%s", configs[i]);
                        char *eq = strchr(kv, '=');
                        if (!eq)
                                die("--config needs key=value", configs[i]);
                        *eq = '\0';
                        if (rd_kafka_NewTopic_set_config(nt, kv, eq + 1))
                                die("bad --config", configs[i]);
                }
                rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
                rd_kafka_NewTopic_destroy(nt);
        } else if (!strcmp(op, "alter")) {
                if (partitions < 1)
                        die("--alter needs --partitions", NULL);
                rd_kafka_NewPartitions_t *np = rd_kafka_NewPartitions_new(
                    topic, (size_t)partitions, errstr, sizeof(errstr));
                if (!np)
                        die(errstr, NULL);
                rd_kafka_CreatePartitions(rk, &np, 1, opts, q);
                rd_kafka_NewPartitions_destroy(np);
        } else {
                rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
                rd_kafka_DeleteTopics(rk, &dt, 1, opts, q);
                rd_kafka_DeleteTopic_destroy(dt);
        }

        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
        int fails            = 1;
        if (!ev)
                fprintf(stderr, "kafka-topics: no admin result within 60 s\n");
        else if (rd_kafka_event_error(ev))
                fprintf(stderr, "kafka-topics: %s\n", rd_kafka_event_error_string(ev));
        else {
                const rd_kafka_topic_result_t **res = NULL;
                size_t cnt                          = 0;
                switch (rd_kafka_event_type(ev)) {
                case RD_KAFKA_EVENT_CREATETOPICS_RESULT:
                        res = rd_kafka_CreateTopics_result_topics(
                            rd_kafka_event_CreateTopics_result(ev), &cnt);
                        break;
                case RD_KAFKA_EVENT_CREATEPARTITIONS_RESULT:
                        res = rd_kafka_CreatePartitions_result_topics(
                            rd_kafka_event_CreatePartitions_result(ev), &cnt);
                        break;
                case RD_KAFKA_EVENT_DELETETOPICS_RESULT:
                        res = rd_kafka_DeleteTopics_result_topics(
                            rd_kafka_event_DeleteTopics_result(ev), &cnt);
                        break;
                default:
                        break;
                }
                fails = cnt ? check_topic_results(res, cnt) : 1;
        }
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(rk);
        return fails ? 1 : 0;
}
