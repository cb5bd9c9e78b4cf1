/* trace.c - the tracer: configuration, limits, the resource, the sampler and
 * the exporter put together, the batch processor it feeds, flush, shutdown and
 * the counters. */
#include <limits.h>
#include <stdlib.h>

#include "config_schema.h"
#include "internal.h"

static _Atomic(ituna_tracer *) global_tracer = NULL;

void ituna_tracer_set_global(ituna_tracer *t) {
    atomic_store(&global_tracer, t);
}
ituna_tracer *ituna_tracer_global(void) {
    return atomic_load(&global_tracer);
}

/* The batch processor hands every span back here once exported or dropped. */
static void release_span(void *tracer, ituna_span *const *spans, size_t n) {
    ituna_span_recycle(tracer, spans, n);
}

static uint32_t limit_of(const ituna_config *cfg, const char *key, int64_t def) {
    int64_t v = ituna_config_int(cfg, "tracer", key, def);
    if (v <= 0 && strcmp(key, "attribute-value-length-limit") != 0) return 0;
    if (v < 0) return 0;
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

ituna_err ituna_tracer_create(const ituna_config *cfg, ituna_tracer **out, char *errstr, size_t errstr_size) {
    return ituna_tracer_create_ex(cfg, NULL, out, errstr, errstr_size);
}

ituna_err ituna_tracer_create_ex(const ituna_config *cfg, ituna_exporter *custom, ituna_tracer **out,
                                 char *errstr, size_t errstr_size) {
    if (!out) {
        if (custom) custom->destroy(custom);
        return ITUNA_ERR_INVALID_ARG;
    }
    *out = NULL;
    ituna_tracer *t = calloc(1, sizeof *t);
    if (!t) {
        if (custom) custom->destroy(custom);
        return ITUNA_ERR_NOMEM;
    }
    static _Atomic uint64_t next_id;
    t->id = atomic_fetch_add(&next_id, 1) + 1; /* never 0: an empty cache matches no tracer */
    ituna_err err;
    if (cfg) {
        t->cfg = ituna_config_dup(cfg);
    } else {
        t->cfg = ituna_config_new();
        if (t->cfg && (err = ituna_config_load_env(t->cfg, errstr, errstr_size)) != ITUNA_OK) goto fail;
    }
    if (!t->cfg) {
        err = ITUNA_ERR_NOMEM;
        goto fail;
    }
    cfg = t->cfg;

    /* Only a level actually set (file, env, API) applies: the schema default would
     * undo an earlier ituna_log_set_level() on every tracer creation. */
    const char *lvl = ituna_config_get(cfg, "tracer", "log-level");
    if (lvl) {
        static const char *names[] = { "debug", "info", "warn", "error", "none" };
        for (int i = 0; i < 5; i++)
            if (strcmp(lvl, names[i]) == 0) ituna_log_set_level((ituna_log_level)i);
    }
    if ((err = ituna_config_validate(cfg, errstr, errstr_size)) != ITUNA_OK) goto fail;
    t->disabled = ituna_config_bool(cfg, "tracer", "disabled", 0);
    if ((err = ituna_sampler_init(&t->sampler, cfg, errstr, errstr_size)) != ITUNA_OK) goto fail;

    t->attr_count_limit = limit_of(cfg, "attribute-count-limit", 128);
    t->attr_len_limit = limit_of(cfg, "attribute-value-length-limit", 0);
    t->event_count_limit = limit_of(cfg, "event-count-limit", 128);
    t->link_count_limit = limit_of(cfg, "link-count-limit", 128);
    t->event_attr_limit = limit_of(cfg, "event-attribute-count-limit", 128);
    t->link_attr_limit = limit_of(cfg, "link-attribute-count-limit", 128);

    if ((err = ituna_resource_build(&t->resource, cfg, &t->service_name, errstr, errstr_size)) != ITUNA_OK)
        goto fail;
    if (!ituna_span_pool_init(t)) {
        err = ITUNA_ERR_NOMEM;
        goto fail;
    }

    if (t->disabled && custom) {
        custom->destroy(custom);
        custom = NULL;
    }
    if (!t->disabled) {
        ituna_exporter *e = custom;
        custom = NULL;
        if (!e &&
            (err = ituna_exporter_from_config(cfg, t->service_name, &e, errstr, errstr_size)) != ITUNA_OK)
            goto fail;
        if (e) {
            int64_t q = ituna_config_int(cfg, "exporter", "max-queue-size", 2048);
            int64_t bsz = ituna_config_int(cfg, "exporter", "max-export-batch-size", 512);
            if (q < 1 || bsz < 1) {
                if (e->destroy) e->destroy(e);
                err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG,
                                    "queue and batch sizes must be >= 1");
                goto fail;
            }
            /* An explicit batch > queue was refused by ituna_config_validate(); the
             * default batch (512) follows a smaller queue. */
            if (bsz > q) bsz = q;
            ituna_batch_sink sink = {
                .exporter = e, .resource = &t->resource, .release = release_span, .ctx = t
            };
            err = ituna_batch_create(&sink, (size_t)q,
                                     ituna_config_int(cfg, "exporter", "schedule-delay", 5000),
                                     ituna_config_int(cfg, "exporter", "export-timeout", 30000), (size_t)bsz,
                                     &t->batch, errstr, errstr_size);
            if (err) goto fail;
        }
    }
    ituna_tracer_propagators(t); /* parsed now: an unsupported name is a warning at start */
    *out = t;
    return ITUNA_OK;
fail:
    if (custom) custom->destroy(custom);
    ituna_span_pool_free(t);
    ituna_resource_free(&t->resource);
    ituna_config_destroy(t->cfg);
    free(t);
    return err;
}

/* ---- per-thread span counts --------------------------------------------------- */

__thread struct ituna_count_cache ituna_count_cache;

ituna_count_slot *ituna_count_slot_find(ituna_tracer *t) {
    pthread_t self = pthread_self();
    ituna_count_slot *sl = atomic_load_explicit(&t->count_slots, memory_order_acquire);
    /* A slot stays with its tracer: a thread whose id the system reuses after an
     * earlier thread exited takes that thread's slot over, still one writer. */
    while (sl && !pthread_equal(sl->owner, self)) sl = sl->next;
    if (!sl) {
        sl = calloc(1, sizeof *sl);
        if (!sl) return NULL;
        sl->owner = self;
        ituna_count_slot *head = atomic_load_explicit(&t->count_slots, memory_order_relaxed);
        do sl->next = head;
        while (!atomic_compare_exchange_weak_explicit(&t->count_slots, &head, sl, memory_order_release,
                                                      memory_order_relaxed));
    }
    ituna_count_cache.tracer_id = t->id;
    ituna_count_cache.slot = sl;
    return sl;
}

void ituna_tracer_counts(ituna_tracer *t, uint64_t *started, uint64_t *ended) {
    uint64_t s = atomic_load_explicit(&t->spans_started, memory_order_relaxed);
    uint64_t e = atomic_load_explicit(&t->spans_ended, memory_order_relaxed);
    for (ituna_count_slot *sl = atomic_load_explicit(&t->count_slots, memory_order_acquire); sl;
         sl = sl->next) {
        s += atomic_load_explicit(&sl->started, memory_order_relaxed);
        e += atomic_load_explicit(&sl->ended, memory_order_relaxed);
    }
    *started = s;
    *ended = e;
}

static void count_slots_free(ituna_tracer *t) {
    ituna_count_slot *sl = atomic_load(&t->count_slots);
    while (sl) {
        ituna_count_slot *next = sl->next;
        free(sl);
        sl = next;
    }
    atomic_store(&t->count_slots, NULL);
}

/* Spans that ended and will never reach the collector: dropped (queue full or after
 * shutdown), given up after retries, or rejected by the collector (partial success). */
static uint64_t spans_lost(ituna_tracer *t, uint64_t *dropped, uint64_t *failed, uint64_t *rejected) {
    ituna_batch_stats b;
    ituna_batch_get_stats(t->batch, &b);
    *dropped = atomic_load(&t->spans_dropped);
    *failed = b.spans_export_failed;
    *rejected = b.export_partial_rejected;
    return *dropped + *failed + *rejected;
}

ituna_err ituna_tracer_flush(ituna_tracer *t, int timeout_ms) {
    if (!t) return ITUNA_ERR_INVALID_ARG;
    if (!t->batch) return ITUNA_OK;
    if (timeout_ms < 0) timeout_ms = (int)ituna_config_int(t->cfg, "exporter", "export-timeout", 30000);
    ituna_err rc = ituna_batch_flush(t->batch, timeout_ms);
    uint64_t d, f, r, lost = spans_lost(t, &d, &f, &r);
    uint64_t before = atomic_exchange(&t->lost_reported, lost);
    if (rc == ITUNA_OK && lost > before) {
        ituna_log(ITUNA_LOG_WARN,
                  "flush: %llu span(s) lost since the last flush (%llu in all: %llu dropped, "
                  "%llu export failed, %llu rejected by the collector)",
                  (unsigned long long)(lost - before), (unsigned long long)lost, (unsigned long long)d,
                  (unsigned long long)f, (unsigned long long)r);
        return ITUNA_ERR_EXPORT;
    }
    return rc;
}

ituna_err ituna_tracer_shutdown(ituna_tracer *t, int timeout_ms) {
    if (!t) return ITUNA_ERR_INVALID_ARG;
    if (atomic_exchange(&t->shut_down, 1)) return ITUNA_OK;
    if (!t->batch) return ITUNA_OK;
    if (timeout_ms < 0) timeout_ms = (int)ituna_config_int(t->cfg, "exporter", "export-timeout", 30000);
    ituna_err rc = ituna_batch_shutdown(t->batch, timeout_ms);
    /* After the join every queued span is exported or counted: the verdict on the whole run. */
    uint64_t d, f, r, lost = spans_lost(t, &d, &f, &r);
    atomic_store(&t->lost_reported, lost);
    if (lost) {
        uint64_t started, ended;
        ituna_tracer_counts(t, &started, &ended);
        ituna_log(ITUNA_LOG_WARN,
                  "%llu of %llu ended span(s) lost: %llu dropped, %llu export failed, %llu "
                  "rejected by the collector",
                  (unsigned long long)lost, (unsigned long long)ended, (unsigned long long)d,
                  (unsigned long long)f, (unsigned long long)r);
        return ITUNA_ERR_EXPORT;
    }
    return rc;
}

void ituna_tracer_destroy(ituna_tracer *t) {
    if (!t) return;
    ituna_tracer_shutdown(t, -1);
    if (ituna_tracer_global() == t) ituna_tracer_set_global(NULL);
    ituna_batch_destroy(t->batch);
    ituna_span_pool_free(t);
    ituna_resource_free(&t->resource);
    ituna_scopes_free(t);
    ituna_config_destroy(t->cfg);
    count_slots_free(t);
    free(t);
}

void ituna_tracer_get_stats(ituna_tracer *t, ituna_tracer_stats *o) {
    if (!t || !o) return;
#define LD(f) o->f = atomic_load_explicit(&t->f, memory_order_relaxed)
    ituna_tracer_counts(t, &o->spans_started, &o->spans_ended);
    LD(spans_not_sampled);
    LD(spans_dropped);
    /* Every span that ended was either enqueued or dropped. */
    o->spans_enqueued = o->spans_ended > o->spans_dropped ? o->spans_ended - o->spans_dropped : 0;
    ituna_batch_stats b = { 0 };
    ituna_batch_get_stats(t->batch, &b);
    o->spans_exported = b.spans_exported;
    o->spans_export_failed = b.spans_export_failed;
    o->export_requests = b.export_requests;
    o->export_retries = b.export_retries;
    o->export_partial_rejected = b.export_partial_rejected;
    LD(attributes_dropped);
    LD(attributes_truncated);
    LD(events_dropped);
    LD(links_dropped);
#undef LD
}

const char *ituna_tracer_service_name(const ituna_tracer *t) {
    return t ? t->service_name : NULL;
}

const ituna_config *ituna_tracer_config(const ituna_tracer *t) {
    return t ? t->cfg : NULL;
}
