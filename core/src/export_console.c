/* export_console.c - the console exporter for humans: one line per span on
 * stderr with service, name, kind, ids, duration, status and attributes (events
 * and links counted). A batch is written with one fwrite so lines from other
 * threads do not cut into it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "otlp_util.h"

typedef struct console_state {
    FILE *fp;
    ituna_buf out;
} console_state;

static const char *kind_name(unsigned k) {
    static const char *const names[] = { "INTERNAL", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER" };
    return k < 6 ? names[k] : "INTERNAL";
}

/* Printable text: control characters and ill-formed UTF-8 shown as '?'. */
static void put_text(ituna_buf *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        if (*p < 0x20 || *p == 0x7f) {
            ituna_buf_putc(b, '?');
            p++;
            continue;
        }
        unsigned l = ituna_utf8_seq_len(p, (size_t)(end - p));
        if (!l) {
            ituna_buf_putc(b, '?');
            p++;
            continue;
        }
        ituna_buf_append(b, p, l);
        p += l;
    }
}

static void put_value(ituna_buf *b, const ituna_kv *kv) {
    switch (kv->type) {
    case ITUNA_ATTR_STRING:
        ituna_buf_putc(b, '"');
        put_text(b, kv->v.s.ptr ? kv->v.s.ptr : "", kv->v.s.ptr ? kv->v.s.len : 0);
        ituna_buf_putc(b, '"');
        break;
    case ITUNA_ATTR_INT: ituna_buf_printf(b, "%" PRId64, kv->v.i); break;
    case ITUNA_ATTR_DOUBLE: ituna_buf_printf(b, "%g", kv->v.d); break;
    case ITUNA_ATTR_BOOL: ituna_buf_puts(b, kv->v.b ? "true" : "false"); break;
    default:
        ituna_buf_putc(b, '[');
        for (uint32_t i = 0; i < kv->v.arr.count; i++) {
            if (i) ituna_buf_putc(b, ',');
            if (kv->type == ITUNA_ATTR_STRING_ARRAY) {
                const ituna_str *it = (const ituna_str *)kv->v.arr.items + i;
                ituna_buf_putc(b, '"');
                put_text(b, it->ptr ? it->ptr : "", it->ptr ? it->len : 0);
                ituna_buf_putc(b, '"');
            } else if (kv->type == ITUNA_ATTR_INT_ARRAY) {
                ituna_buf_printf(b, "%" PRId64, ((const int64_t *)kv->v.arr.items)[i]);
            } else if (kv->type == ITUNA_ATTR_DOUBLE_ARRAY) {
                ituna_buf_printf(b, "%g", ((const double *)kv->v.arr.items)[i]);
            } else {
                ituna_buf_puts(b, ((const ITUNA_BOOL_ITEM *)kv->v.arr.items)[i] ? "true" : "false");
            }
        }
        ituna_buf_putc(b, ']');
    }
}

static const ituna_kv *find_attr(const ituna_resource *res, const char *key) {
    if (!res) return NULL;
    for (uint32_t i = 0; i < res->n_attrs; i++)
        if (res->attrs[i].key && strlen(key) == res->attrs[i].key_len &&
            memcmp(res->attrs[i].key, key, res->attrs[i].key_len) == 0)
            return &res->attrs[i];
    return NULL;
}

static ituna_err console_export(ituna_exporter *e, ituna_span *const *spans, size_t n,
                                const ituna_resource *res, uint64_t deadline_ns, ituna_export_result *out) {
    (void)deadline_ns;
    console_state *c = e->state;
    memset(out, 0, sizeof *out);
    ituna_buf *b = &c->out;
    b->len = 0;
    b->oom = 0;
    const ituna_kv *svc = find_attr(res, "service.name");
    for (size_t i = 0; i < n; i++) {
        const ituna_span *s = spans[i];
        if (!s) continue;
        char tid[33], sid[17], pid[17];
        ituna_hex_encode(s->ctx.trace_id, 16, tid);
        ituna_hex_encode(s->ctx.span_id, 8, sid);
        tid[32] = sid[16] = '\0';
        if (s->has_parent) {
            ituna_hex_encode(s->parent_span_id, 8, pid);
            pid[16] = '\0';
        } else {
            strcpy(pid, "-");
        }
        ituna_buf_puts(b, "[ituna] ");
        if (svc && svc->type == ITUNA_ATTR_STRING)
            put_text(b, svc->v.s.ptr, svc->v.s.len);
        else
            ituna_buf_putc(b, '-');
        ituna_buf_puts(b, " \"");
        put_text(b, s->name ? s->name : "", s->name ? s->name_len : 0);
        double ms = s->end_ns >= s->start_ns ? (double)(s->end_ns - s->start_ns) / 1e6 : 0.0;
        ituna_buf_printf(b, "\" %s trace=%s span=%s parent=%s%s %.3fms", kind_name(ituna_otlp_kind(s)), tid,
                         sid, pid, s->has_parent && s->parent_is_remote ? "(remote)" : "", ms);
        if (s->status_code == ITUNA_STATUS_ERROR) {
            ituna_buf_puts(b, " status=ERROR");
            if (s->status_msg && s->status_msg_len) {
                ituna_buf_puts(b, "(\"");
                put_text(b, s->status_msg, s->status_msg_len);
                ituna_buf_puts(b, "\")");
            }
        } else if (s->status_code == ITUNA_STATUS_OK) {
            ituna_buf_puts(b, " status=OK");
        }
        if (s->n_attrs) {
            ituna_buf_puts(b, " {");
            for (uint32_t k = 0; k < s->n_attrs; k++) {
                const ituna_kv *kv = &s->attrs[k];
                if (k) ituna_buf_puts(b, ", ");
                put_text(b, kv->key ? kv->key : "", kv->key ? kv->key_len : 0);
                ituna_buf_putc(b, '=');
                put_value(b, kv);
            }
            ituna_buf_putc(b, '}');
        }
        if (s->n_events) {
            ituna_buf_printf(b, " events=%u[", s->n_events);
            for (uint32_t k = 0; k < s->n_events; k++) {
                if (k) ituna_buf_putc(b, ',');
                put_text(b, s->events[k].name ? s->events[k].name : "",
                         s->events[k].name ? s->events[k].name_len : 0);
            }
            ituna_buf_putc(b, ']');
        }
        if (s->n_links) ituna_buf_printf(b, " links=%u", s->n_links);
        if (s->dropped_attrs || s->dropped_events || s->dropped_links)
            ituna_buf_printf(b, " dropped(attrs=%u events=%u links=%u)", s->dropped_attrs, s->dropped_events,
                             s->dropped_links);
        ituna_buf_putc(b, '\n');
    }
    if (b->oom) {
        snprintf(out->message, sizeof out->message, "out of memory formatting %zu spans", n);
        return ITUNA_ERR_NOMEM;
    }
    if (b->len && (fwrite(b->data, 1, b->len, c->fp) != b->len || fflush(c->fp) != 0)) {
        snprintf(out->message, sizeof out->message, "writing to stderr failed");
        return ITUNA_ERR_IO;
    }
    return ITUNA_OK;
}

static void console_destroy(ituna_exporter *e) {
    if (!e) return;
    console_state *c = e->state;
    if (c) {
        ituna_buf_free(&c->out);
        free(c);
    }
    free(e);
}

ituna_err ituna_exporter_console_create(const ituna_config *cfg, ituna_exporter **out, char *errstr,
                                        size_t errstr_size) {
    (void)cfg;
    if (!out) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "out is NULL");
    ituna_exporter *e = calloc(1, sizeof *e);
    console_state *c = calloc(1, sizeof *c);
    if (!e || !c) {
        free(e);
        free(c);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    }
    c->fp = stderr;
    e->state = c;
    e->export_batch = console_export;
    e->destroy = console_destroy;
    *out = e;
    return ITUNA_OK;
}
