/* kafka_mock.c - the embedded TEST broker: librdkafka's built-in mock cluster
 * (rdkafka_mock.h), listening on 127.0.0.1 so other processes can use it. It is
 * a Kafka-protocol test double, not Apache Kafka. */
#include <stdio.h>
#include <stdlib.h>

#include "kafka_common.h"
/* after rdkafka.h, which kafka_common.h includes */
#include <librdkafka/rdkafka_mock.h>

struct ituna_mock_cluster {
    rd_kafka_t *rk; /* the handle librdkafka needs to own the cluster */
    rd_kafka_mock_cluster_t *mc;
    char bootstrap[512];
};

/* librdkafka 2.0.2 auto-creates topics with this many partitions; it has no
 * setting for it, so other counts are rejected rather than silently ignored. */
#define MOCK_AUTO_PARTITIONS 4

ituna_err ituna_mock_cluster_start(int n_brokers, int default_partitions, ituna_mock_cluster **out,
                                   char *errstr, size_t errstr_size) {
    if (!out) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (n_brokers <= 0) n_brokers = 1;
    if (n_brokers > 16)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG,
                             "mock cluster: at most 16 brokers, got %d", n_brokers);
    if (default_partitions != 0 && default_partitions != MOCK_AUTO_PARTITIONS)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_UNSUPPORTED,
                             "mock cluster: librdkafka %s auto-creates topics with %d partitions; "
                             "default_partitions must be 0 or %d",
                             rd_kafka_version_str(), MOCK_AUTO_PARTITIONS, MOCK_AUTO_PARTITIONS);
    ituna_mock_cluster *m = calloc(1, sizeof *m);
    if (!m) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char msg[512];
    rd_kafka_conf_set_log_cb(conf, ituna_kafka_log_cb);
    /* The owning handle never talks to anyone; keep it quiet and local. */
    rd_kafka_conf_set(conf, "client.id", "ituna-mock-cluster", msg, sizeof msg);
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, msg, sizeof msg);
    if (!m->rk) {
        rd_kafka_conf_destroy(conf);
        free(m);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_KAFKA, "mock cluster: %s", msg);
    }
    m->mc = rd_kafka_mock_cluster_new(m->rk, n_brokers);
    if (!m->mc) {
        rd_kafka_destroy(m->rk);
        free(m);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_KAFKA,
                             "mock cluster: librdkafka could not create it (see the log)");
    }
    snprintf(m->bootstrap, sizeof m->bootstrap, "%s", rd_kafka_mock_cluster_bootstraps(m->mc));
    *out = m;
    return ITUNA_OK;
}

void *ituna_mock_cluster_rd(ituna_mock_cluster *m) {
    return m ? m->mc : NULL;
}

ituna_err ituna_mock_cluster_create_topic(ituna_mock_cluster *m, const char *topic, int partitions,
                                          char *errstr, size_t errstr_size) {
    if (!m || !topic || !topic[0])
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "mock cluster: topic name is empty");
    if (partitions < 1 || partitions > 1000)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG,
                             "mock cluster: partitions must be 1..1000, got %d", partitions);
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(m->mc, topic, partitions, 1);
    if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_KAFKA, "mock cluster: cannot create topic %s: %s",
                             topic, rd_kafka_err2str(err));
    return ITUNA_OK;
}

const char *ituna_mock_cluster_bootstrap(const ituna_mock_cluster *m) {
    return m ? m->bootstrap : NULL;
}

void ituna_mock_cluster_stop(ituna_mock_cluster *m) {
    if (!m) return;
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
    free(m);
}
