/* export_tee.c - one exporter feeding two: every batch goes to a local OTLP
 * JSON-lines copy first (fast, never retried), then to the primary exporter
 * (OTLP/HTTP or console), whose outcome is the batch's. Lets a run keep a file
 * for ituna-report while its spans go to a collector. */
#include <stdio.h>
#include <stdlib.h>

#include "export_file.h"

typedef struct tee_state {
    ituna_exporter *primary, *copy;
    int copy_failed_logged;
} tee_state;

static ituna_err tee_export(ituna_exporter *e, ituna_span *const *spans, size_t n, const ituna_resource *res,
                            uint64_t deadline_ns, ituna_export_result *out) {
    tee_state *t = e->state;
    ituna_export_result copy_res;
    ituna_err ce = t->copy->export_batch(t->copy, spans, n, res, deadline_ns, &copy_res);
    if (ce && !t->copy_failed_logged) { /* the copy is a convenience: say so once, go on */
        ituna_log(ITUNA_LOG_WARN, "traces copy to %s failed: %s", ituna_exporter_file_path(t->copy),
                  copy_res.message);
        t->copy_failed_logged = 1;
    }
    return t->primary->export_batch(t->primary, spans, n, res, deadline_ns, out);
}

static void tee_set_cap(ituna_exporter *e, uint64_t cap_ns) {
    tee_state *t = e->state;
    ituna_exporter_set_cap(t->primary, cap_ns);
    ituna_exporter_set_cap(t->copy, cap_ns);
}

static void tee_destroy(ituna_exporter *e) {
    if (!e) return;
    tee_state *t = e->state;
    if (t) {
        t->primary->destroy(t->primary);
        t->copy->destroy(t->copy);
        free(t);
    }
    free(e);
}

ituna_err ituna_exporter_tee_create(ituna_exporter *primary, ituna_exporter *copy, ituna_exporter **out,
                                    char *errstr, size_t errstr_size) {
    if (!out || !primary || !copy)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG,
                             "primary, copy and out are required");
    *out = NULL;
    ituna_exporter *e = calloc(1, sizeof *e);
    tee_state *t = calloc(1, sizeof *t);
    if (!e || !t) {
        free(e);
        free(t);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    }
    t->primary = primary;
    t->copy = copy;
    e->state = t;
    e->export_batch = tee_export;
    e->set_cap = tee_set_cap;
    e->destroy = tee_destroy;
    *out = e;
    return ITUNA_OK;
}
