/* export_file.c - the OTLP JSON-lines file exporter: each batch becomes one
 * ExportTraceServiceRequest on one line (the format of the OpenTelemetry
 * Collector's file exporter, readable by its otlpjson file receiver and by our
 * report). The file is opened with O_APPEND and each line goes out in one
 * write(), so several processes may share a file, and a reader sees whole lines
 * as soon as a batch is exported (nothing is buffered in this process). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "export_file.h"
#include "otlp_util.h"

typedef struct file_state {
    int fd;
    char *path;
    ituna_buf line;
} file_state;

static void file_destroy(ituna_exporter *e) {
    if (!e) return;
    file_state *f = e->state;
    if (f) {
        if (f->fd >= 0) close(f->fd);
        free(f->path);
        ituna_buf_free(&f->line);
        free(f);
    }
    free(e);
}

static ituna_err file_export(ituna_exporter *e, ituna_span *const *spans, size_t n, const ituna_resource *res,
                             uint64_t deadline_ns, ituna_export_result *out) {
    (void)deadline_ns;
    file_state *f = e->state;
    memset(out, 0, sizeof *out);
    if (!n) return ITUNA_OK;
    f->line.len = 0;
    f->line.oom = 0;
    if (!ituna_otlp_encode_json(spans, n, res, &f->line)) {
        snprintf(out->message, sizeof out->message, "out of memory encoding %zu spans", n);
        return ITUNA_ERR_NOMEM;
    }
    ituna_buf_putc(&f->line, '\n');
    if (f->line.oom) {
        snprintf(out->message, sizeof out->message, "out of memory encoding %zu spans", n);
        return ITUNA_ERR_NOMEM;
    }
    const uint8_t *p = f->line.data;
    size_t left = f->line.len;
    while (left) {
        ssize_t w = write(f->fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            snprintf(out->message, sizeof out->message, "write to %s failed: %s", f->path, strerror(errno));
            return ITUNA_ERR_IO;
        }
        p += w;
        left -= (size_t)w;
    }
    return ITUNA_OK;
}

const char *ituna_exporter_file_path(ituna_exporter *e) {
    if (!e || e->export_batch != file_export) return NULL;
    return ((file_state *)e->state)->path;
}

/* Default: ./ituna-traces-<service>-<pid>.jsonl, so concurrent services never
 * share a file by accident and a restart does not mix runs. */
static char *default_path(const ituna_config *cfg) {
    const char *svc = ituna_config_str(cfg, "tracer", "service-name", NULL);
    if (!svc || !*svc) svc = program_invocation_short_name;
    char clean[64];
    size_t j = 0;
    for (const char *s = svc; *s && j < sizeof clean - 1; s++) {
        char c = *s;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                 c == '_' || c == '.';
        clean[j++] = ok ? c : '_';
    }
    clean[j] = '\0';
    if (!j) strcpy(clean, "unknown");
    char *p;
    if (asprintf(&p, "./ituna-traces-%s-%ld.jsonl", clean, (long)getpid()) < 0) return NULL;
    return p;
}

ituna_err ituna_exporter_file_create(const ituna_config *cfg, ituna_exporter **out, char *errstr,
                                     size_t errstr_size) {
    return ituna_exporter_file_open(cfg, ituna_config_str(cfg, "exporter", "file", NULL), out, errstr,
                                    errstr_size);
}

ituna_err ituna_exporter_file_open(const ituna_config *cfg, const char *path, ituna_exporter **out,
                                   char *errstr, size_t errstr_size) {
    if (!out) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    ituna_exporter *e = calloc(1, sizeof *e);
    file_state *f = calloc(1, sizeof *f);
    if (!e || !f) {
        free(e);
        free(f);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    }
    f->fd = -1;
    e->state = f;
    e->export_batch = file_export;
    e->destroy = file_destroy;
    f->path = path && *path ? strdup(path) : default_path(cfg);
    if (!f->path) {
        file_destroy(e);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    }
    f->fd = open(f->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        ituna_err err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_IO, "cannot open traces file '%s': %s",
                                      f->path, strerror(errno));
        file_destroy(e);
        return err;
    }
    *out = e;
    return ITUNA_OK;
}
