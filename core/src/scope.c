/* scope.c - instrumentation scopes (OTLP InstrumentationScope: name, version,
 * schema_url, attributes) per tracer: made on first use, kept in a push-only
 * list until the tracer is destroyed, so spans and the export thread read them
 * without locks. The encoders group a batch's spans by scope. */
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

static int same(const char *a, uint32_t alen, const char *b) {
    if (!a || !b) return !a && !b;
    return strlen(b) == alen && memcmp(a, b, alen) == 0;
}

static const ituna_scope *find(const ituna_scope *s, const char *name, const char *version,
                               const char *schema_url) {
    for (; s; s = s->next)
        if (same(s->name, s->name_len, name) && same(s->version, s->version_len, version) &&
            same(s->schema_url, s->schema_url_len, schema_url))
            return s;
    return NULL;
}

static void scope_free(ituna_scope *s) {
    ituna_arena_free(&s->arena);
    free(s);
}

static const char *dup(ituna_scope *s, const char *v, uint32_t *len, int *oom) {
    if (!v) return NULL;
    size_t n = strlen(v);
    char *c = ituna_arena_strndup(&s->arena, v, n);
    if (!c) *oom = 1;
    *len = (uint32_t)n;
    return c;
}

ituna_err ituna_tracer_scope(ituna_tracer *t, const char *name, const char *version, const char *schema_url,
                             const ituna_attr *attrs, size_t n_attrs, const ituna_scope **out) {
    if (!out) return ITUNA_ERR_INVALID_ARG;
    *out = NULL;
    if (!t || !name || (n_attrs && !attrs)) return ITUNA_ERR_INVALID_ARG;
    ituna_scope *head = atomic_load(&t->scopes);
    if ((*out = find(head, name, version, schema_url))) return ITUNA_OK;
    ituna_scope *s = calloc(1, sizeof *s);
    if (!s) return ITUNA_ERR_NOMEM;
    int oom = 0;
    s->name = dup(s, name, &s->name_len, &oom);
    s->version = dup(s, version, &s->version_len, &oom);
    s->schema_url = dup(s, schema_url, &s->schema_url_len, &oom);
    if (n_attrs && !oom) {
        s->attrs = ituna_arena_alloc(&s->arena, n_attrs * sizeof *s->attrs);
        if (!s->attrs) oom = 1;
        for (size_t i = 0; !oom && i < n_attrs; i++) {
            if (!ituna_attr_ok(&attrs[i])) continue; /* the bindings refuse a bad key first */
            if (!ituna_kv_copy(&s->arena, &s->attrs[s->n_attrs], &attrs[i]))
                oom = 1;
            else
                s->n_attrs++;
        }
    }
    if (oom) {
        scope_free(s);
        return ITUNA_ERR_NOMEM;
    }
    /* push; if another thread pushed meanwhile, it may have made the same scope */
    for (;;) {
        s->next = head;
        if (atomic_compare_exchange_weak(&t->scopes, &head, s)) break;
        const ituna_scope *other = find(head, name, version, schema_url);
        if (other) {
            scope_free(s);
            *out = other;
            return ITUNA_OK;
        }
    }
    *out = s;
    return ITUNA_OK;
}

void ituna_scopes_free(ituna_tracer *t) {
    ituna_scope *s = atomic_exchange(&t->scopes, NULL);
    while (s) {
        ituna_scope *next = s->next;
        scope_free(s);
        s = next;
    }
}
