/* kafka_delivery.c - the deliveries a consumed message owns (one slot per publish
 * made for it), the thread's message (the owner of publishes made while it is
 * handled), and reading them: without waiting when the consumer settles a message
 * in its loop, waiting when it closes or writes to the DLQ. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kafka_delivery.h"

/* Slots of every producer complete under one lock: waits are rare (close, a DLQ
 * write, a redelivered message still settling) and short; the settle pass of the
 * consumer loop reads the atomic state without it. */
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slots_cv = PTHREAD_COND_INITIALIZER;
static atomic_ulong epoch;

void ituna_dr_copy_set(ituna_dr_copy *c, const ituna_delivery_report *r) {
    c->r = *r;
    ituna_kafka_strcat2(c->topic, sizeof c->topic, r->topic, NULL);
    ituna_kafka_strcat2(c->errstr, sizeof c->errstr, r->errstr, NULL);
    ituna_kafka_strcat2(c->error_name, sizeof c->error_name, r->error_name, NULL);
    c->r.topic = c->topic;
    c->r.errstr = c->errstr;
    c->r.error_name = c->error_name;
}

ituna_delivery_slot *ituna_delivery_slot_new(const void *producer, uint64_t ticket, int64_t deadline_ms) {
    ituna_delivery_slot *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->producer = producer;
    s->ticket = ticket;
    s->deadline_ms = deadline_ms;
    atomic_store(&s->refs, 2);
    return s;
}

void ituna_delivery_slot_release(ituna_delivery_slot *s) {
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        free(s->rep);
        free(s);
    }
}

const ituna_dr_copy *ituna_delivery_slot_report(const ituna_delivery_slot *s) {
    static const ituna_dr_copy no_memory = {
        .r = { .topic = "",
               .partition = -1,
               .offset = -1,
               .err = ITUNA_ERR_NOMEM,
               .errstr = "failed; out of memory for its report",
               .error_name = "" },
        .errstr = "failed; out of memory for its report",
    };
    return s->rep ? s->rep : &no_memory;
}

void ituna_delivery_slot_complete(ituna_delivery_slot *s, const ituna_delivery_report *r) {
    ituna_dr_copy *rep = r->err ? calloc(1, sizeof *rep) : NULL;
    if (rep) ituna_dr_copy_set(rep, r);
    pthread_mutex_lock(&slots_mu);
    s->rep = rep;
    atomic_store(&s->state, r->err ? ITUNA_SLOT_FAILED : ITUNA_SLOT_DELIVERED);
    atomic_fetch_add(&epoch, 1);
    pthread_cond_broadcast(&slots_cv);
    pthread_mutex_unlock(&slots_mu);
    ituna_delivery_slot_release(s);
}

unsigned long ituna_delivery_epoch(void) {
    return atomic_load(&epoch);
}

int ituna_delivery_slot_wait(ituna_delivery_slot *s, int64_t deadline_ms) {
    int st = atomic_load(&s->state);
    if (st != ITUNA_SLOT_IN_FLIGHT) return st;
    pthread_mutex_lock(&slots_mu);
    while ((st = atomic_load(&s->state)) == ITUNA_SLOT_IN_FLIGHT) {
        int64_t now = ituna_kafka_mono_ms();
        if (now >= deadline_ms) break;
        int64_t until = deadline_ms - now < 100 ? deadline_ms - now : 100;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(until * 1000000);
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&slots_cv, &slots_mu, &ts);
    }
    pthread_mutex_unlock(&slots_mu);
    return st;
}

void ituna_message_track(ituna_message *m, ituna_delivery_slot *s) {
    s->next = m->slots;
    m->slots = s;
}

void ituna_message_untrack(ituna_message *m) {
    while (m->slots) {
        ituna_delivery_slot *s = m->slots;
        m->slots = s->next;
        ituna_delivery_slot_release(s);
    }
}

int ituna_message_settle(ituna_message *m, int64_t wait_until_ms, char *why, size_t why_size) {
    int64_t now = 0;
    int pending = 0;
    for (ituna_delivery_slot *s = m->slots; s; s = s->next) {
        int st = atomic_load(&s->state);
        if (st == ITUNA_SLOT_IN_FLIGHT) {
            if (!now) now = ituna_kafka_mono_ms();
            if (wait_until_ms > now)
                st = ituna_delivery_slot_wait(s, wait_until_ms < s->deadline_ms ? wait_until_ms
                                                                                : s->deadline_ms);
            if (st == ITUNA_SLOT_IN_FLIGHT && ituna_kafka_mono_ms() < s->deadline_ms) {
                pending = 1;
                continue;
            }
        }
        if (st == ITUNA_SLOT_DELIVERED) continue;
        /* the first failure found is the reason; the others' reports are not awaited */
        if (st == ITUNA_SLOT_IN_FLIGHT)
            snprintf(why, why_size, "publish %llu not confirmed in time", (unsigned long long)s->ticket);
        else {
            const ituna_dr_copy *rep = ituna_delivery_slot_report(s);
            snprintf(why, why_size, "delivery of publish %llu to %s [%d] failed: %s (%s)",
                     (unsigned long long)s->ticket, rep->topic, (int)rep->r.partition, rep->errstr,
                     rep->error_name);
        }
        ituna_message_untrack(m);
        return -1;
    }
    if (pending) return 0;
    ituna_message_untrack(m);
    return 1;
}

size_t ituna_delivery_take_failures(const ituna_message *owner, const void *producer, ituna_delivery_fn fn,
                                    void *opaque) {
    size_t n = 0;
    for (ituna_delivery_slot *s = owner->slots; s; s = s->next) {
        pthread_mutex_lock(&slots_mu);
        int failed = s->producer == producer && atomic_load(&s->state) == ITUNA_SLOT_FAILED && !s->taken;
        s->taken |= failed;
        pthread_mutex_unlock(&slots_mu);
        if (!failed) continue;
        ituna_delivery_report r = ituna_delivery_slot_report(s)->r;
        r.ticket = s->ticket; /* the generic report (no memory for a copy) still names its publish */
        fn(&r, opaque), n++;
    }
    return n;
}

/* ---- the thread's message ---------------------------------------------------- */

static _Thread_local ituna_message *tl_message;
static _Thread_local struct {
    ituna_message *prev;
    int ctx_token;
} tl_attach[64];
static _Thread_local int tl_depth;

ituna_message *ituna_message_current(void) {
    return tl_message;
}

ituna_err ituna_message_attach(ituna_message *m, int *token) {
    if (!m || !token || m->finished) return ITUNA_ERR_INVALID_ARG;
    if (tl_depth >= 64) return ITUNA_ERR_STATE;
    int ct = -1;
    ituna_err e = ituna_context_attach(&m->ctx, &ct);
    if (e) return e;
    tl_attach[tl_depth].prev = tl_message;
    tl_attach[tl_depth].ctx_token = ct;
    *token = tl_depth++;
    tl_message = m;
    return ITUNA_OK;
}

void ituna_message_detach(int token) {
    if (token < 0 || token >= tl_depth) return;
    tl_depth = token;
    tl_message = tl_attach[token].prev;
    ituna_context_detach(tl_attach[token].ctx_token);
}
