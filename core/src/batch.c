/* batch.c - the batch span processor: a bounded lock-free multi-producer ring
 * (Vyukov's sequence-per-cell queue) that span end pushes into without a lock,
 * and one worker thread that drains it in batches into the exporter. The worker
 * holds no lock while exporting, so a slow collector never blocks span end. */
#include <errno.h>
#include <semaphore.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"
#include "ring.h"

struct ituna_batch {
    ituna_batch_sink sink; /* sink.exporter is NULL once destroyed */
    ituna_exporter *exporter;
    ituna_ring ring;
    size_t max_queue; /* logical bound (OTEL_BSP_MAX_QUEUE_SIZE) */
    size_t max_batch;
    int64_t delay_ms, export_timeout_ms;

    _Alignas(64) atomic_int wake_pending; /* a sem_post is outstanding */

    sem_t wake;
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    _Atomic int64_t stop_deadline_ns;

    pthread_mutex_t mu; /* guards the done counter for flush waiters only */
    pthread_cond_t cv;
    uint64_t done; /* spans taken off the ring and handled (exported, failed or dropped) */
    ituna_span **scratch;

    /* Written by the worker only. */
    _Alignas(64) _Atomic uint64_t spans_exported, spans_export_failed, export_requests, export_retries,
        export_partial_rejected;
};

#define ADD(b, f, n) atomic_fetch_add_explicit(&(b)->f, (n), memory_order_relaxed)

static void release_all(ituna_batch *b, size_t n) {
    b->sink.release(b->sink.ctx, b->scratch, n);
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int ituna_batch_push(ituna_batch *b, ituna_span *s) {
    if (atomic_load_explicit(&b->stop, memory_order_relaxed)) return 0;
    size_t pos = ituna_ring_push(&b->ring, s, b->max_queue);
    if (!pos) return 0;
    /* Wake the worker each time another batch's worth has come in; sem_post
     * needs no lock, and the position alone decides, so no shared read here. */
    if (pos % b->max_batch == 0 && !atomic_exchange_explicit(&b->wake_pending, 1, memory_order_acq_rel))
        sem_post(&b->wake);
    return 1;
}

static ituna_span *pop(ituna_batch *b) {
    return ituna_ring_pop(&b->ring);
}

static void mark_done(ituna_batch *b, size_t n) {
    pthread_mutex_lock(&b->mu);
    b->done += n;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void export_one_batch(ituna_batch *b, size_t n, uint64_t deadline_wall) {
    ituna_export_result res;
    memset(&res, 0, sizeof res);
    ituna_err err =
        b->exporter->export_batch(b->exporter, b->scratch, n, b->sink.resource, deadline_wall, &res);
    ADD(b, export_requests, 1u + (unsigned)res.retries);
    ADD(b, export_retries, (unsigned)res.retries);
    if (err == ITUNA_OK) {
        ADD(b, spans_exported, n - (res.rejected_spans < n ? res.rejected_spans : n));
        if (res.rejected_spans) {
            ADD(b, export_partial_rejected, res.rejected_spans);
            ituna_log(ITUNA_LOG_WARN, "collector rejected %llu of %zu spans: %s",
                      (unsigned long long)res.rejected_spans, n, res.message);
        }
    } else {
        ADD(b, spans_export_failed, n);
        ituna_log(ITUNA_LOG_WARN, "export of %zu spans failed (%s): %s", n, ituna_err2str(err), res.message);
    }
    release_all(b, n);
}

/* Drain the ring in batches. Past the stop deadline, what is left is dropped. */
static void drain(ituna_batch *b) {
    for (;;) {
        size_t n = 0;
        while (n < b->max_batch) {
            ituna_span *s = pop(b);
            if (!s) break;
            b->scratch[n++] = s;
        }
        if (!n) return;
        int64_t stop_dl = atomic_load(&b->stop_deadline_ns);
        uint64_t now_mono = mono_ns();
        if (stop_dl && now_mono >= (uint64_t)stop_dl) {
            ADD(b, spans_export_failed, n); /* given up at shutdown */
            release_all(b, n);
        } else {
            uint64_t budget = (uint64_t)b->export_timeout_ms * 1000000ull;
            if (stop_dl && (uint64_t)stop_dl - now_mono < budget) budget = (uint64_t)stop_dl - now_mono;
            export_one_batch(b, n, ituna_now_ns() + budget);
        }
        mark_done(b, n);
    }
}

static void *worker(void *arg) {
    ituna_batch *b = arg;
    while (!atomic_load(&b->stop)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += b->delay_ms / 1000;
        ts.tv_nsec += (b->delay_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (sem_timedwait(&b->wake, &ts) != 0 && errno == EINTR) {}
        atomic_store(&b->wake_pending, 0);
        drain(b);
    }
    drain(b);
    return NULL;
}

ituna_err ituna_batch_create(const ituna_batch_sink *sink, size_t max_queue, int64_t delay_ms,
                             int64_t export_timeout_ms, size_t max_batch, ituna_batch **out, char *errstr,
                             size_t errstr_size) {
    ituna_exporter *e = sink->exporter;
    *out = NULL;
    ituna_batch *b = calloc(1, sizeof *b);
    if (!b) {
        e->destroy(e);
        return ITUNA_ERR_NOMEM;
    }
    b->scratch = calloc(max_batch, sizeof *b->scratch);
    if (!b->scratch || !ituna_ring_init(&b->ring, max_queue)) {
        ituna_ring_free(&b->ring);
        free(b->scratch);
        free(b);
        e->destroy(e);
        return ITUNA_ERR_NOMEM;
    }
    b->sink = *sink;
    b->exporter = e;
    b->max_queue = max_queue;
    b->max_batch = max_batch;
    b->delay_ms = delay_ms > 0 ? delay_ms : 1;
    b->export_timeout_ms = export_timeout_ms > 0 ? export_timeout_ms : 30000;
    sem_init(&b->wake, 0, 0);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    if (pthread_create(&b->thread, NULL, worker, b) != 0) {
        ituna_batch_destroy(b);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "cannot start the export thread");
    }
    b->thread_started = 1;
    *out = b;
    return ITUNA_OK;
}

static void deadline_ts(struct timespec *ts, uint64_t deadline_mono) {
    /* pthread_cond_timedwait uses CLOCK_REALTIME by default; convert. */
    uint64_t now = mono_ns(), wall = ituna_now_ns();
    uint64_t target = wall + (deadline_mono > now ? deadline_mono - now : 0);
    ts->tv_sec = (time_t)(target / 1000000000ull);
    ts->tv_nsec = (long)(target % 1000000000ull);
}

ituna_err ituna_batch_flush(ituna_batch *b, int64_t timeout_ms) {
    if (!b) return ITUNA_OK;
    uint64_t target = atomic_load(&b->ring.enq);
    uint64_t deadline = mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
    if (!atomic_exchange(&b->wake_pending, 1)) sem_post(&b->wake);
    pthread_mutex_lock(&b->mu);
    while (b->done < target) {
        if (!b->thread_started || mono_ns() >= deadline) break;
        /* A push may have raced with the worker clearing wake_pending: re-post on each wait. */
        pthread_mutex_unlock(&b->mu);
        if (!atomic_exchange(&b->wake_pending, 1)) sem_post(&b->wake);
        pthread_mutex_lock(&b->mu);
        struct timespec ts;
        uint64_t step = mono_ns() + 50000000ull;
        deadline_ts(&ts, step < deadline ? step : deadline);
        pthread_cond_timedwait(&b->cv, &b->mu, &ts);
    }
    int ok = b->done >= target;
    pthread_mutex_unlock(&b->mu);
    return ok ? ITUNA_OK : ITUNA_ERR_TIMEOUT;
}

ituna_err ituna_batch_shutdown(ituna_batch *b, int64_t timeout_ms) {
    if (!b || !b->thread_started) return ITUNA_OK;
    /* One deadline for the whole shutdown: batches exported from now on get only
     * what is left of it, and whatever is still queued at the deadline is dropped. */
    uint64_t budget = (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
    atomic_store(&b->stop_deadline_ns, (int64_t)(mono_ns() + budget));
    if (b->exporter) ituna_exporter_set_cap(b->exporter, ituna_now_ns() + budget);
    ituna_err err = ituna_batch_flush(b, timeout_ms);
    atomic_store(&b->stop, 1);
    sem_post(&b->wake);
    pthread_join(b->thread, NULL);
    b->thread_started = 0;
    if (b->exporter) {
        b->exporter->destroy(b->exporter);
        b->exporter = NULL;
    }
    return err;
}

void ituna_batch_destroy(ituna_batch *b) {
    if (!b) return;
    ituna_batch_shutdown(b, 0);
    /* Anything pushed after the worker stopped (a race with shutdown) is freed here. */
    ituna_span *s;
    while ((s = pop(b)) != NULL) b->sink.release(b->sink.ctx, &s, 1);
    if (b->exporter) b->exporter->destroy(b->exporter);
    sem_destroy(&b->wake);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    ituna_ring_free(&b->ring);
    free(b->scratch);
    free(b);
}

void ituna_batch_get_stats(ituna_batch *b, ituna_batch_stats *o) {
    memset(o, 0, sizeof *o);
    if (!b) return;
#define LD(f) o->f = atomic_load_explicit(&b->f, memory_order_relaxed)
    LD(spans_exported);
    LD(spans_export_failed);
    LD(export_requests);
    LD(export_retries);
    LD(export_partial_rejected);
#undef LD
}
