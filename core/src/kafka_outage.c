/* kafka_outage.c - broker outages as this process's Kafka clients saw them, per
 * bootstrap: when every broker went down and why (a producer's error callback, a
 * consumer's confirmed "no broker reachable"), and when one answered again (a
 * delivery, a consumer's probe). A send or process span that lasted through one
 * records it as the event kafka.broker.unreachable, so the outage is on the spans
 * it delayed or failed, not only in the log. */
#include <stdio.h>
#include <string.h>

#include "kafka_common.h"

#define OUTAGE_SLOTS 4
/* A span shorter than this was not held up by an outage worth naming (an idle
 * connection the broker closed also reports every broker down). */
#define OUTAGE_MIN_SPAN_NS 1000000000ull

static struct {
    char bootstrap[256];
    uint64_t start_ns, end_ns; /* wall clock; end 0 = still down */
    char error[256];
} outages[OUTAGE_SLOTS];
static unsigned outages_next;
static pthread_mutex_t outages_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int outages_seen; /* fast path: no outage ever, no lock */

static int slot_of(const char *bootstrap) {
    for (int i = 0; i < OUTAGE_SLOTS; i++)
        if (outages[i].bootstrap[0] &&
            strncmp(outages[i].bootstrap, bootstrap, sizeof outages[i].bootstrap - 1) == 0)
            return i;
    return -1;
}

void ituna_kafka_outage_begin(const char *bootstrap, const char *error, uint64_t since_ns) {
    if (!bootstrap) return;
    pthread_mutex_lock(&outages_mu);
    int i = slot_of(bootstrap);
    if (i < 0) {
        i = (int)(outages_next++ % OUTAGE_SLOTS);
        snprintf(outages[i].bootstrap, sizeof outages[i].bootstrap, "%s", bootstrap);
        outages[i].start_ns = 0;
    }
    if (!outages[i].start_ns || outages[i].end_ns) { /* not already in one */
        outages[i].start_ns = since_ns;
        outages[i].end_ns = 0;
        snprintf(outages[i].error, sizeof outages[i].error, "%s",
                 error && *error ? error : "all brokers down");
    }
    atomic_store(&outages_seen, 1);
    pthread_mutex_unlock(&outages_mu);
}

int64_t ituna_kafka_outage_end(const char *bootstrap, uint64_t now_ns) {
    if (!bootstrap || !atomic_load(&outages_seen)) return -1;
    if (!now_ns) now_ns = ituna_now_ns(); /* read only when an outage was seen */
    int64_t ms = -1;
    pthread_mutex_lock(&outages_mu);
    int i = slot_of(bootstrap);
    if (i >= 0 && outages[i].start_ns && !outages[i].end_ns) {
        outages[i].end_ns = now_ns > outages[i].start_ns ? now_ns : outages[i].start_ns;
        ms = (int64_t)((outages[i].end_ns - outages[i].start_ns) / 1000000);
    }
    pthread_mutex_unlock(&outages_mu);
    return ms;
}

void ituna_kafka_outage_mark(ituna_span *span, const char *bootstrap) {
    if (!span || !bootstrap || !atomic_load(&outages_seen) || !ituna_span_is_recording(span)) return;
    uint64_t now = ituna_now_ns(), from = span->start_ns;
    if (now < from + OUTAGE_MIN_SPAN_NS) return;
    uint64_t start = 0, end = 0;
    char error[256] = "";
    pthread_mutex_lock(&outages_mu);
    int i = slot_of(bootstrap);
    if (i >= 0 && outages[i].start_ns && outages[i].start_ns < now &&
        (!outages[i].end_ns || outages[i].end_ns >= from)) {
        start = outages[i].start_ns;
        end = outages[i].end_ns;
        memcpy(error, outages[i].error, sizeof error);
    }
    pthread_mutex_unlock(&outages_mu);
    if (!start) return;
    ituna_attr attrs[] = { ituna_attr_str("ituna.kafka.error", error),
                           ituna_attr_int("ituna.kafka.outage_ms",
                                          (int64_t)(((end ? end : now) - start) / 1000000)),
                           ituna_attr_bool("ituna.kafka.broker_back", end != 0) };
    ituna_span_add_event(span, "kafka.broker.unreachable", attrs, 3, start > from ? start : from);
}
