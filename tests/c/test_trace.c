/* test_trace.c - the tracer: ids, nesting and the current span across threads,
 * sampling decisions, span limits and their counters, status rules, the batch
 * queue (full-queue drops counted exactly, flush loses nothing, span end does
 * not wait on a stuck exporter). Spans are captured by an in-memory exporter. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

/* ---- an in-memory exporter ---------------------------------------------------- */
typedef struct {
    pthread_mutex_t mu;
    ituna_span *spans[4096]; /* kept alive by copying what the tests read */
    size_t n;
    int block; /* 1: export waits until unblocked */
    pthread_cond_t cv;
    int exports;
} mem_state;

typedef struct {
    char name[64];
    uint8_t trace_id[16], span_id[8], parent[8];
    int has_parent, kind, status, n_attrs, dropped_attrs, n_events, dropped_events, n_links, dropped_links;
    char first_str[600];
} captured;

static captured cap[8192];
static size_t ncap;
static pthread_mutex_t cap_mu = PTHREAD_MUTEX_INITIALIZER;

static ituna_err mem_export(ituna_exporter *e, ituna_span *const *spans, size_t n, const ituna_resource *res,
                            uint64_t deadline_ns, ituna_export_result *out) {
    (void)res;
    (void)out;
    mem_state *st = e->state;
    pthread_mutex_lock(&st->mu);
    st->exports++;
    while (st->block && ituna_now_ns() < deadline_ns) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&st->cv, &st->mu, &ts);
    }
    pthread_mutex_unlock(&st->mu);
    pthread_mutex_lock(&cap_mu);
    for (size_t i = 0; i < n && ncap < sizeof cap / sizeof cap[0]; i++) {
        const ituna_span *s = spans[i];
        captured *c = &cap[ncap++];
        memset(c, 0, sizeof *c);
        snprintf(c->name, sizeof c->name, "%.*s", (int)s->name_len, s->name);
        memcpy(c->trace_id, s->ctx.trace_id, 16);
        memcpy(c->span_id, s->ctx.span_id, 8);
        memcpy(c->parent, s->parent_span_id, 8);
        c->has_parent = s->has_parent;
        c->kind = s->kind;
        c->status = s->status_code;
        c->n_attrs = (int)s->n_attrs;
        c->dropped_attrs = (int)s->dropped_attrs;
        c->n_events = (int)s->n_events;
        c->dropped_events = (int)s->dropped_events;
        c->n_links = (int)s->n_links;
        c->dropped_links = (int)s->dropped_links;
        if (s->n_attrs && s->attrs[0].type == ITUNA_ATTR_STRING)
            snprintf(c->first_str, sizeof c->first_str, "%.*s", (int)s->attrs[0].v.s.len,
                     s->attrs[0].v.s.ptr);
    }
    pthread_mutex_unlock(&cap_mu);
    return ITUNA_OK;
}

static void mem_destroy(ituna_exporter *e) {
    mem_state *st = e->state;
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    free(st);
    free(e);
}

static mem_state *last_state;

static ituna_tracer *make_tracer(const char *const *kv, int block) {
    ituna_config *cfg = ituna_config_new();
    char err[256];
    for (; kv && kv[0]; kv += 2)
        if (ituna_config_set(cfg, kv[0], kv[1], err, sizeof err) != ITUNA_OK) {
            fprintf(stderr, "config %s: %s\n", kv[0], err);
            ituna_config_destroy(cfg);
            return NULL;
        }
    ituna_exporter *e = calloc(1, sizeof *e);
    mem_state *st = calloc(1, sizeof *st);
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    st->block = block;
    e->state = st;
    e->export_batch = mem_export;
    e->destroy = mem_destroy;
    last_state = st;
    ituna_tracer *t = NULL;
    ituna_err rc = ituna_tracer_create_ex(cfg, e, &t, err, sizeof err);
    if (rc) fprintf(stderr, "tracer: %s\n", err);
    ituna_config_destroy(cfg);
    ncap = 0;
    return t;
}

static captured *find(const char *name) {
    for (size_t i = 0; i < ncap; i++)
        if (strcmp(cap[i].name, name) == 0) return &cap[i];
    return NULL;
}

/* ---- tests ------------------------------------------------------------------------ */

static int test_ids_are_nonzero_and_unique(void) {
    enum { N = 20000 };
    static uint8_t ids[N][8];
    for (int i = 0; i < N; i++) {
        uint8_t tid[16];
        ituna_random_trace_id(tid);
        ituna_random_span_id(ids[i]);
        uint8_t z[16] = { 0 };
        CHECK(memcmp(tid, z, 16) != 0);
        CHECK(memcmp(ids[i], z, 8) != 0);
    }
    int dup = 0;
    for (int i = 1; i < N; i++) dup += memcmp(ids[i], ids[i - 1], 8) == 0;
    CHECK(dup == 0);
    return 0;
}

static int test_nesting_through_current_context(void) {
    const char *kv[] = { "tracer.service-name", "t", "exporter.schedule-delay", "50", NULL };
    ituna_tracer *t = make_tracer(kv, 0);
    REQUIRE(t);
    ituna_span *outer, *inner, *rootspan;
    REQUIRE(ituna_span_start(t, "outer", NULL, &outer) == ITUNA_OK);
    int tok;
    REQUIRE(ituna_context_attach(ituna_span_get_context(outer), &tok) == ITUNA_OK);
    REQUIRE(ituna_span_start(t, "inner", NULL, &inner) == ITUNA_OK);
    ituna_span_options ro = { .root = 1 };
    REQUIRE(ituna_span_start(t, "rooted", &ro, &rootspan) == ITUNA_OK);
    ituna_span_context cur;
    CHECK(ituna_context_current(&cur) == 1);
    CHECK(memcmp(cur.span_id, ituna_span_get_context(outer)->span_id, 8) == 0);
    ituna_span_end(inner, 0);
    ituna_span_end(rootspan, 0);
    CHECK(ituna_context_detach(tok) == ITUNA_OK);
    CHECK(ituna_context_current(NULL) == 0);
    CHECK(ituna_context_detach(tok) == ITUNA_ERR_STATE);
    ituna_span_end(outer, 0);
    CHECK(ituna_tracer_flush(t, 2000) == ITUNA_OK);
    captured *o = find("outer"), *i = find("inner"), *r = find("rooted");
    REQUIRE(o && i && r);
    CHECK(!o->has_parent);
    CHECK(i->has_parent && memcmp(i->parent, o->span_id, 8) == 0);
    CHECK(memcmp(i->trace_id, o->trace_id, 16) == 0);
    CHECK(!r->has_parent && memcmp(r->trace_id, o->trace_id, 16) != 0);
    ituna_tracer_destroy(t);
    return 0;
}

static int test_explicit_remote_parent(void) {
    const char *kv[] = { "tracer.service-name", "t", NULL };
    ituna_tracer *t = make_tracer(kv, 0);
    REQUIRE(t);
    ituna_span_context remote;
    memset(&remote, 0, sizeof remote);
    for (int k = 0; k < 16; k++) remote.trace_id[k] = (uint8_t)(k + 1);
    for (int k = 0; k < 8; k++) remote.span_id[k] = (uint8_t)(0xa0 + k);
    remote.trace_flags = 1;
    remote.is_remote = 1;
    strcpy(remote.tracestate, "ven=1");
    remote.tracestate_len = 5;
    ituna_span_options o = { .parent = &remote, .kind = ITUNA_SPAN_KIND_CONSUMER };
    ituna_span *s;
    REQUIRE(ituna_span_start(t, "process x", &o, &s) == ITUNA_OK);
    const ituna_span_context *c = ituna_span_get_context(s);
    CHECK(memcmp(c->trace_id, remote.trace_id, 16) == 0);
    CHECK_STR(c->tracestate, "ven=1");
    CHECK(c->is_remote == 0);
    ituna_span_end(s, 0);
    ituna_tracer_flush(t, 2000);
    captured *p = find("process x");
    REQUIRE(p);
    CHECK(p->kind == ITUNA_SPAN_KIND_CONSUMER);
    CHECK(memcmp(p->parent, remote.span_id, 8) == 0);
    ituna_tracer_destroy(t);
    return 0;
}

static int test_disabled_passes_the_parent_context_through(void) {
    const char *kv[] = { "tracer.service-name", "t", "tracer.disabled", "true", NULL };
    ituna_tracer *t = make_tracer(kv, 0);
    REQUIRE(t);
    ituna_span_context remote;
    REQUIRE(ituna_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 55, &remote,
                                    NULL) == ITUNA_OK);
    ituna_tracestate_parse("ven=1", 5, &remote, NULL);
    ituna_span_options o = { .parent = &remote };
    ituna_span *s, *child, *root;
    REQUIRE(ituna_span_start(t, "middle", &o, &s) == ITUNA_OK);
    CHECK(!ituna_span_is_recording(s));
    const ituna_span_context *c = ituna_span_get_context(s);
    /* the parent's context unchanged: ids, sampled flag, tracestate */
    CHECK(memcmp(c->trace_id, remote.trace_id, 16) == 0 && memcmp(c->span_id, remote.span_id, 8) == 0);
    CHECK(c->trace_flags == 1);
    CHECK_STR(c->tracestate, "ven=1");
    int tok;
    REQUIRE(ituna_context_attach(c, &tok) == ITUNA_OK);
    REQUIRE(ituna_span_start(t, "nested", NULL, &child) == ITUNA_OK);
    CHECK(memcmp(ituna_span_get_context(child)->span_id, remote.span_id, 8) == 0);
    ituna_span_end(child, 0);
    ituna_context_detach(tok);
    ituna_span_end(s, 0);
    /* without a parent: a context that is not sampled, so nothing downstream records under it */
    REQUIRE(ituna_span_start(t, "root", NULL, &root) == ITUNA_OK);
    CHECK(ituna_span_context_is_valid(ituna_span_get_context(root)));
    CHECK(!(ituna_span_get_context(root)->trace_flags & 1));
    ituna_span_end(root, 0);
    ituna_tracer_stats st;
    ituna_tracer_get_stats(t, &st);
    CHECK(st.spans_started == 0 && st.spans_exported == 0);
    ituna_tracer_destroy(t);
    return 0;
}

typedef struct {
    ituna_tracer *t;
    ituna_span_context seen;
    int had_current;
} thr_arg;

static void *other_thread(void *p) {
    thr_arg *a = p;
    a->had_current = ituna_context_current(&a->seen);
    ituna_span *s;
    ituna_span_start(a->t, "other-thread", NULL, &s);
    ituna_span_end(s, 0);
    return NULL;
}

static int test_current_span_is_per_thread(void) {
    const char *kv[] = { "tracer.service-name", "t", NULL };
    ituna_tracer *t = make_tracer(kv, 0);
    REQUIRE(t);
    ituna_span *main_span;
    ituna_span_start(t, "main-thread", NULL, &main_span);
    int tok;
    ituna_context_attach(ituna_span_get_context(main_span), &tok);
    thr_arg a = { .t = t };
    pthread_t th;
    pthread_create(&th, NULL, other_thread, &a);
    pthread_join(th, NULL);
    CHECK(a.had_current == 0);
    ituna_context_detach(tok);
    ituna_span_end(main_span, 0);
    ituna_tracer_flush(t, 2000);
    captured *o = find("other-thread");
    REQUIRE(o);
    CHECK(!o->has_parent);
    ituna_tracer_destroy(t);
    return 0;
}

/* Roots recorded out of 20000 from a ratio sampler of 0.25: about a quarter. */
static int count_recorded_roots(ituna_tracer *t) {
    int rec = 0;
    ituna_span *s;
    for (int i = 0; i < 20000; i++) {
        ituna_span_start(t, "r", NULL, &s);
        rec += ituna_span_is_recording(s);
        ituna_span_end(s, 0);
    }
    return rec;
}

static int test_sampling_decisions(void) {
    const char *off[] = { "tracer.sampler", "always_off", NULL };
    ituna_tracer *t = make_tracer(off, 0);
    REQUIRE(t);
    ituna_span *s;
    ituna_span_start(t, "x", NULL, &s);
    CHECK(!ituna_span_is_recording(s));
    CHECK((ituna_span_get_context(s)->trace_flags & 1) == 0);
    CHECK(ituna_span_context_is_valid(ituna_span_get_context(s)));
    ituna_span_end(s, 0);
    ituna_tracer_destroy(t);

    const char *ratio[] = { "tracer.sampler", "traceidratio", "tracer.sampler-arg", "0.25", NULL };
    t = make_tracer(ratio, 0);
    REQUIRE(t);
    int rec = count_recorded_roots(t);
    CHECK(rec > 4500 && rec < 5500);
    /* traceidratio ignores the parent's flag; the decision follows the trace id. */
    ituna_span_context p;
    memset(&p, 0, sizeof p);
    p.trace_id[0] = 1; /* low 64 bits zero: always below the bound */
    p.span_id[0] = 1;
    ituna_span_options o = { .parent = &p };
    ituna_span_start(t, "r", &o, &s);
    CHECK(ituna_span_is_recording(s));
    ituna_span_end(s, 0);
    ituna_tracer_destroy(t);

    const char *pb[] = { "tracer.sampler", "parentbased_always_on", NULL };
    t = make_tracer(pb, 0);
    REQUIRE(t);
    p.trace_flags = 0; /* unsampled remote parent: child not recorded, flag propagates */
    ituna_span_start(t, "c", &o, &s);
    CHECK(!ituna_span_is_recording(s));
    CHECK((ituna_span_get_context(s)->trace_flags & 1) == 0);
    ituna_span_end(s, 0);
    p.trace_flags = 1;
    ituna_span_start(t, "c", &o, &s);
    CHECK(ituna_span_is_recording(s));
    CHECK((ituna_span_get_context(s)->trace_flags & 1) == 1);
    ituna_span_end(s, 0);
    ituna_tracer_destroy(t);

    const char *pboff[] = { "tracer.sampler", "parentbased_always_off", NULL };
    t = make_tracer(pboff, 0);
    REQUIRE(t);
    ituna_span_start(t, "root", NULL, &s);
    CHECK(!ituna_span_is_recording(s));
    ituna_span_end(s, 0);
    ituna_span_start(t, "c", &o, &s); /* sampled parent still wins */
    CHECK(ituna_span_is_recording(s));
    ituna_span_end(s, 0);
    ituna_tracer_destroy(t);
    return 0;
}

static int test_limits_drop_and_count(void) {
    const char *kv[] = { "tracer.attribute-count-limit",
                         "3",
                         "tracer.attribute-value-length-limit",
                         "5",
                         "tracer.event-count-limit",
                         "2",
                         "tracer.link-count-limit",
                         "1",
                         NULL };
    ituna_tracer *t = make_tracer(kv, 0);
    REQUIRE(t);
    ituna_span *s;
    ituna_span_start(t, "limited", NULL, &s);
    ituna_span_set_str(s, "a", "0123456789");
    ituna_span_set_int(s, "b", 1);
    ituna_span_set_int(s, "c", 2);
    ituna_span_set_int(s, "d", 3); /* dropped */
    ituna_span_set_int(s, "b", 5); /* replace: not a drop */
    for (int i = 0; i < 4; i++) ituna_span_add_event(s, "e", NULL, 0, 0);
    ituna_span_context l;
    memset(&l, 0, sizeof l);
    l.trace_id[3] = 9;
    l.span_id[2] = 9;
    ituna_span_add_link(s, &l, NULL, 0);
    ituna_span_add_link(s, &l, NULL, 0);
    ituna_span_end(s, 0);
    ituna_tracer_flush(t, 2000);
    captured *c = find("limited");
    REQUIRE(c);
    CHECK(c->n_attrs == 3 && c->dropped_attrs == 1);
    CHECK_STR(c->first_str, "01234");
    CHECK(c->n_events == 2 && c->dropped_events == 2);
    CHECK(c->n_links == 1 && c->dropped_links == 1);
    ituna_tracer_stats st;
    ituna_tracer_get_stats(t, &st);
    CHECK(st.attributes_dropped == 1);
    CHECK(st.attributes_truncated == 1);
    CHECK(st.events_dropped == 2);
    CHECK(st.links_dropped == 1);
    ituna_tracer_destroy(t);
    return 0;
}

/* A list as a binding hands it to ituna_attr_array_build: a kind letter an item
 * (s string, i int, d double, b bool, x another value, ! the binding failed). */
typedef struct {
    const char *kinds;
    int reads;
} fake_list;

static int fake_item(void *list, size_t i, ituna_attr_item *it) {
    fake_list *l = list;
    static const char *const words[] = { "zero", "one\0x", "two" };
    l->reads++;
    switch (l->kinds[i]) {
    case 's':
        it->type = ITUNA_ATTR_STRING;
        it->v.s.ptr = words[i % 3];
        it->v.s.len = i % 3 == 1 ? 5 : strlen(words[i % 3]);
        return 0;
    case 'i':
        it->type = ITUNA_ATTR_INT;
        it->v.i = (int64_t)i - 1;
        return 0;
    case 'd':
        it->type = ITUNA_ATTR_DOUBLE;
        it->v.d = (double)i + 0.5;
        return 0;
    case 'b':
        it->type = ITUNA_ATTR_BOOL;
        it->v.b = (int)i * 7;
        return 0;
    case '!': return -1;
    default: return 1;
    }
}

/* Build an array attribute from kinds; returns the builder's result. */
static int build(const char *kinds, int mix, ituna_attr *a, void *storage, size_t *bad, int *reads) {
    fake_list l = { kinds, 0 };
    memset(a, 0, sizeof *a);
    a->key = "k";
    *bad = 99;
    int rc = ituna_attr_array_build(a, strlen(kinds), fake_item, &l, mix, storage, bad);
    *reads = l.reads;
    return rc;
}

/* The array attributes of both bindings: one type per array, found in one pass;
 * Lua's integers and floats together make floats; the first item that does not fit
 * is named; a binding's failure stops the build. */
static int test_array_attribute_builder(void) {
    ituna_attr a;
    size_t bad;
    int reads;
    void *st = malloc(ituna_attr_array_size(8));
    REQUIRE(st && ituna_attr_array_size(8) >= 8 * sizeof(int64_t));
    CHECK(build("", 0, &a, st, &bad, &reads) == 0 && a.type == ITUNA_ATTR_STRING_ARRAY &&
          a.v.sarr.count == 0);
    CHECK(build("sss", 0, &a, st, &bad, &reads) == 0 && a.type == ITUNA_ATTR_STRING_ARRAY);
    CHECK(a.v.sarr.count == 3 && a.v.sarr.lens[1] == 5 && memcmp(a.v.sarr.items[1], "one\0x", 5) == 0);
    CHECK(a.v.sarr.lens[2] == 3 && strcmp(a.v.sarr.items[2], "two") == 0 && strcmp(a.key, "k") == 0);
    CHECK(build("iii", 0, &a, st, &bad, &reads) == 0 && a.type == ITUNA_ATTR_INT_ARRAY);
    CHECK(a.v.iarr.count == 3 && a.v.iarr.items[0] == -1 && a.v.iarr.items[2] == 1);
    CHECK(build("bb", 0, &a, st, &bad, &reads) == 0 && a.type == ITUNA_ATTR_BOOL_ARRAY);
    CHECK(a.v.barr.items[0] == 0 && a.v.barr.items[1] == 1); /* 0/1 whatever the binding gave */
    CHECK(build("dd", 0, &a, st, &bad, &reads) == 0 && a.type == ITUNA_ATTR_DOUBLE_ARRAY);
    CHECK(a.v.darr.items[0] == 0.5 && a.v.darr.items[1] == 1.5);
    /* Lua: integers before a float become floats, an integer after one too */
    CHECK(build("iidi", 1, &a, st, &bad, &reads) == 0 && a.type == ITUNA_ATTR_DOUBLE_ARRAY);
    CHECK(a.v.darr.count == 4 && a.v.darr.items[0] == -1.0 && a.v.darr.items[1] == 0.0);
    CHECK(a.v.darr.items[2] == 2.5 && a.v.darr.items[3] == 2.0);
    CHECK(build("ii", 1, &a, st, &bad, &reads) == 0 && a.type == ITUNA_ATTR_INT_ARRAY);
    /* Python: int and float are two types; the first misfit is named, nothing after it read */
    a.type = ITUNA_ATTR_STRING;
    CHECK(build("iidi", 0, &a, st, &bad, &reads) == 1 && bad == 2 && reads == 3);
    CHECK(a.type == ITUNA_ATTR_STRING); /* a is left alone */
    CHECK(build("sbs", 1, &a, st, &bad, &reads) == 1 && bad == 1);
    CHECK(build("ib", 1, &a, st, &bad, &reads) == 1 && bad == 1);
    CHECK(build("xs", 0, &a, st, &bad, &reads) == 1 && bad == 0);
    CHECK(build("ssx", 0, &a, st, &bad, &reads) == 1 && bad == 2);
    CHECK(build("s!s", 0, &a, st, &bad, &reads) == -1 && reads == 2 && bad == 99);
    /* what it builds is a span's attribute like any other */
    ituna_tracer *t = make_tracer(NULL, 0);
    REQUIRE(t);
    ituna_span *s = NULL;
    REQUIRE(ituna_span_start(t, "arrays", NULL, &s) == ITUNA_OK);
    CHECK(build("sss", 0, &a, st, &bad, &reads) == 0 && ituna_span_set_attr(s, &a) == ITUNA_OK);
    CHECK(build("idd", 1, &a, st, &bad, &reads) == 0 && ituna_span_set_attr(s, &a) == ITUNA_OK);
    REQUIRE(s->n_attrs == 1); /* the same key: the last value */
    CHECK(s->attrs[0].type == ITUNA_ATTR_DOUBLE_ARRAY && s->attrs[0].v.arr.count == 3);
    CHECK(((const double *)s->attrs[0].v.arr.items)[0] == -1.0);
    ituna_span_end(s, 0);
    ituna_tracer_destroy(t);
    free(st);
    return 0;
}

/* Counted strings: values and string-array items keep an embedded NUL; a key holding
 * one (or empty) is refused by set_attr and dropped-and-counted in lists. */
static int test_attribute_lengths_and_bad_keys(void) {
    ituna_tracer *t = make_tracer(NULL, 0);
    REQUIRE(t);
    CHECK(ituna_attr_key_error("ok", 2) == NULL);
    CHECK(ituna_attr_key_error("", 0) != NULL && ituna_attr_key_error(NULL, 3) != NULL);
    CHECK(ituna_attr_key_error("a\0b", 3) && strstr(ituna_attr_key_error("a\0b", 3), "NUL"));
    ituna_attr start[2] = { ituna_attr_strn("ok", 2, "v\0w", 3), ituna_attr_strn("b\0d", 3, "x", 1) };
    ituna_span_options o = { .attrs = start, .n_attrs = 2 };
    ituna_span *s = NULL;
    REQUIRE(ituna_span_start(t, "lengths", &o, &s) == ITUNA_OK);
    CHECK(s->n_attrs == 1 && s->dropped_attrs == 1);
    CHECK(s->attrs[0].v.s.len == 3 && memcmp(s->attrs[0].v.s.ptr, "v\0w", 3) == 0);
    ituna_attr bad = ituna_attr_strn("k\0", 2, "v", 1), empty = ituna_attr_strn("k", 0, "v", 1);
    empty.key = "";
    CHECK(ituna_span_set_attr(s, &bad) == ITUNA_ERR_INVALID_ARG);
    CHECK(ituna_span_set_attr(s, &empty) == ITUNA_ERR_INVALID_ARG);
    const char *items[] = { "a\0b", "plain", NULL };
    size_t lens[] = { 3, 5, 0 };
    ituna_attr arr = { .key = "arr", .type = ITUNA_ATTR_STRING_ARRAY, .v.sarr = { items, 3, lens } };
    ituna_attr arr0 = { .key = "arr0", .type = ITUNA_ATTR_STRING_ARRAY, .v.sarr = { items, 2, NULL } };
    ituna_attr part = ituna_attr_strn("dupkey", 3, "1", 1); /* the key is "dup" */
    CHECK(ituna_span_set_attr(s, &arr) == ITUNA_OK && ituna_span_set_attr(s, &arr0) == ITUNA_OK);
    CHECK(ituna_span_set_attr(s, &part) == ITUNA_OK && ituna_span_set_attr(s, &part) == ITUNA_OK);
    REQUIRE(s->n_attrs == 4);
    const ituna_str *it = s->attrs[1].v.arr.items;
    CHECK(s->attrs[1].v.arr.count == 3 && it[0].len == 3 && memcmp(it[0].ptr, "a\0b", 3) == 0);
    CHECK(it[1].len == 5 && memcmp(it[1].ptr, "plain", 5) == 0 && it[2].len == 0);
    it = s->attrs[2].v.arr.items;
    CHECK(s->attrs[2].v.arr.count == 2 && it[0].len == 1 && it[1].len == 5); /* NUL-terminated items */
    CHECK(s->attrs[3].key_len == 3 && memcmp(s->attrs[3].key, "dup", 3) == 0);
    ituna_attr ev[2] = { ituna_attr_strn("e\0", 2, "x", 1), ituna_attr_int("n", 1) };
    CHECK(ituna_span_add_event(s, "ev", ev, 2, 0) == ITUNA_OK);
    CHECK(s->events[0].n_attrs == 1 && s->events[0].dropped_attrs == 1);
    ituna_span_end(s, 0);
    ituna_tracer_stats st;
    ituna_tracer_get_stats(t, &st);
    CHECK(st.attributes_dropped == 2);
    ituna_tracer_destroy(t);
    return 0;
}

/* A discarded span is neither exported nor counted: the decorator case. */
static int test_discarded_span_leaves_no_trace(void) {
    ituna_tracer *t = make_tracer(NULL, 0);
    REQUIRE(t);
    ituna_span *s = NULL;
    REQUIRE(ituna_span_start(t, "dropped", NULL, &s) == ITUNA_OK);
    ituna_span_set_str(s, "a", "b");
    ituna_span_discard(s);
    REQUIRE(ituna_span_start(t, "kept", NULL, &s) == ITUNA_OK);
    ituna_span_end(s, 0);
    ituna_span_discard(NULL);
    ituna_tracer_flush(t, 2000);
    CHECK(find("kept") != NULL && find("dropped") == NULL);
    ituna_tracer_stats st;
    ituna_tracer_get_stats(t, &st);
    CHECK(st.spans_started == 1 && st.spans_ended == 1 && st.spans_not_sampled == 0);
    ituna_tracer_destroy(t);
    return 0;
}

/* A span's memory is reused after export (pool), emptied but keeping its heap
 * arrays and one arena block: nothing of its previous life shows in the next. */
static int reused_span_body(ituna_tracer *t) {
    ituna_span *a;
    REQUIRE(ituna_span_start(t, "first", NULL, &a) == ITUNA_OK);
    char big[3000], key[16];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ituna_span_set_str(a, "k0", big); /* past the inline memory: a heap block */
    for (int i = 1; i < 40; i++) {    /* past the inline attributes */
        snprintf(key, sizeof key, "k%d", i);
        ituna_span_set_str(a, key, "a value long enough to use up the inline arena...............");
    }
    ituna_span_add_event(a, "ev", NULL, 0, 0);
    ituna_span_context l;
    REQUIRE(ituna_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 55, &l,
                                    NULL) == ITUNA_OK);
    ituna_span_add_link(a, &l, NULL, 0);
    ituna_span_set_status(a, ITUNA_STATUS_ERROR, "boom");
    ituna_span_end(a, 0);
    REQUIRE(ituna_tracer_flush(t, 2000) == ITUNA_OK);
    captured *c = find("first");
    REQUIRE(c);
    CHECK(c->n_attrs == 40 && c->n_events == 1 && c->n_links == 1 && (int)strlen(c->first_str) == 599);

    ituna_span *b;
    REQUIRE(ituna_span_start(t, "second", NULL, &b) == ITUNA_OK);
    CHECK(b == a); /* the pool gave the exported span back */
    CHECK(b->n_attrs == 0 && b->n_events == 0 && b->n_links == 0 && b->status_code == ITUNA_STATUS_UNSET);
    CHECK(b->status_msg == NULL && b->dropped_attrs == 0 && !b->has_parent);
    CHECK(b->arena.spare != NULL && b->arena.chunks == NULL); /* one block kept, the big one freed */
    /* 3/4 of the inline memory: the first fits there, the second does not */
    const char *mid = big + sizeof big - 1 - ITUNA_SPAN_INLINE_MEM * 3 / 4;
    ituna_span_set_str(b, "only", mid);
    ituna_span_set_str(b, "two", mid); /* past the inline memory: the kept block, no malloc */
    CHECK(b->arena.spare == NULL && b->arena.chunks != NULL && b->arena.chunks->next == NULL);
    ituna_span_end(b, 0);
    REQUIRE(ituna_tracer_flush(t, 2000) == ITUNA_OK);
    c = find("second");
    REQUIRE(c);
    CHECK(c->n_attrs == 2 && c->n_events == 0 && c->n_links == 0 && c->status == ITUNA_STATUS_UNSET);
    CHECK(strlen(c->first_str) ==
              (ITUNA_SPAN_INLINE_MEM * 3 / 4 < 599 ? ITUNA_SPAN_INLINE_MEM * 3 / 4 : 599) &&
          c->first_str[0] == 'x');
    return 0;
}

static void *reused_span_thread(void *arg) {
    static int rc;
    rc = reused_span_body(arg);
    return &rc;
}

static int test_reused_span_starts_empty(void) {
    ituna_tracer *t = make_tracer(NULL, 0);
    REQUIRE(t);
    /* on a new thread: its span cache starts empty, so the reuse comes from the pool */
    pthread_t th;
    void *res = NULL;
    REQUIRE(pthread_create(&th, NULL, reused_span_thread, t) == 0);
    pthread_join(th, &res);
    CHECK(res && *(int *)res == 0);
    ituna_tracer_destroy(t);
    return 0;
}

static void *end_on_other_thread(void *p) {
    ituna_span_end(p, 0);
    return NULL;
}

/* Non-recording spans (not sampled): only a context, attribute calls are no-ops,
 * and they may end in any order and on any thread. */
static int test_non_recording_spans_are_context_only(void) {
    const char *kv[] = { "tracer.sampler", "always_off", NULL };
    ituna_tracer *t = make_tracer(kv, 0);
    REQUIRE(t);
    ituna_span *s[200];
    int toks[200];
    for (int i = 0; i < 200; i++) {
        REQUIRE(ituna_span_start(t, "n", NULL, &s[i]) == ITUNA_OK);
        CHECK(!ituna_span_is_recording(s[i]));
        CHECK(ituna_span_set_str(s[i], "k", "v") == ITUNA_OK);
        CHECK(ituna_span_add_event(s[i], "e", NULL, 0, 0) == ITUNA_OK);
        CHECK(ituna_span_update_name(s[i], "m") == ITUNA_OK);
        ituna_span_set_status(s[i], ITUNA_STATUS_ERROR, "x");
        toks[i] = -1;
        if (i < 32) CHECK(ituna_context_attach(ituna_span_get_context(s[i]), &toks[i]) == ITUNA_OK);
    }
    /* nested: one trace, each span a child of the one before (then the rest under the 32nd) */
    CHECK(memcmp(s[31]->ctx.trace_id, s[0]->ctx.trace_id, 16) == 0);
    CHECK(s[31]->has_parent && memcmp(s[31]->parent_span_id, s[30]->ctx.span_id, 8) == 0);
    for (int i = 31; i >= 0; i--) CHECK(ituna_context_detach(toks[i]) == ITUNA_OK);
    for (int i = 0; i < 100; i++) ituna_span_end(s[i], 0);
    pthread_t th[100];
    for (int i = 100; i < 200; i++) pthread_create(&th[i - 100], NULL, end_on_other_thread, s[i]);
    for (int i = 0; i < 100; i++) pthread_join(th[i], NULL);
    REQUIRE(ituna_span_start(t, "d", NULL, &s[0]) == ITUNA_OK);
    ituna_span_discard(s[0]);
    ituna_tracer_stats st;
    ituna_tracer_get_stats(t, &st);
    CHECK(st.spans_not_sampled == 200 && st.spans_started == 0 && st.spans_ended == 0);
    ituna_tracer_destroy(t);
    return 0;
}

static int test_status_rules(void) {
    ituna_tracer *t = make_tracer(NULL, 0);
    REQUIRE(t);
    ituna_span *s;
    ituna_span_start(t, "st", NULL, &s);
    ituna_span_set_status(s, ITUNA_STATUS_ERROR, "boom");
    CHECK(s->status_code == ITUNA_STATUS_ERROR && s->status_msg && strcmp(s->status_msg, "boom") == 0);
    ituna_span_set_status(s, ITUNA_STATUS_UNSET, NULL); /* ignored */
    CHECK(s->status_code == ITUNA_STATUS_ERROR);
    ituna_span_set_status(s, ITUNA_STATUS_OK, "ignored description");
    CHECK(s->status_code == ITUNA_STATUS_OK && s->status_msg == NULL);
    ituna_span_set_status(s, ITUNA_STATUS_ERROR, "late"); /* OK is final */
    CHECK(s->status_code == ITUNA_STATUS_OK);
    CHECK(ituna_span_record_exception(s, "ValueError", "bad", "trace") == ITUNA_OK);
    CHECK(s->n_events == 1 && strcmp(s->events[0].name, "exception") == 0 && s->events[0].n_attrs == 3);
    ituna_span_end(s, 0);
    /* bad input is an error, not a crash */
    CHECK(ituna_span_start(t, NULL, NULL, &s) == ITUNA_ERR_INVALID_ARG);
    CHECK(ituna_span_start(NULL, "x", NULL, &s) == ITUNA_ERR_INVALID_ARG);
    ituna_tracer_destroy(t);
    return 0;
}

static int test_full_queue_drops_are_counted_exactly(void) {
    const char *kv[] = { "exporter.max-queue-size",
                         "64",
                         "exporter.max-export-batch-size",
                         "16",
                         "exporter.schedule-delay",
                         "10",
                         NULL };
    ituna_tracer *t = make_tracer(kv, 1); /* exporter blocks */
    REQUIRE(t);
    mem_state *st = last_state;
    for (int i = 0; i < 1000; i++) {
        ituna_span *s;
        ituna_span_start(t, "q", NULL, &s);
        ituna_span_end(s, 0);
    }
    pthread_mutex_lock(&st->mu);
    st->block = 0;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    /* everything queued was exported, but the drops are losses: flush says so, once */
    CHECK(ituna_tracer_flush(t, 5000) == ITUNA_ERR_EXPORT);
    CHECK(ituna_tracer_flush(t, 5000) == ITUNA_OK);
    ituna_tracer_stats s;
    ituna_tracer_get_stats(t, &s);
    CHECK(s.spans_ended == 1000);
    CHECK(s.spans_enqueued + s.spans_dropped == 1000);
    CHECK(s.spans_dropped > 0);
    CHECK(s.spans_exported == s.spans_enqueued);
    CHECK(ncap == s.spans_enqueued);
    /* at most queue + one batch in the exporter's hands can be in flight */
    CHECK(s.spans_enqueued <= 64 + 16);
    ituna_tracer_destroy(t);
    return 0;
}

static int test_shutdown_flushes_everything_that_fit(void) {
    const char *kv[] = { "exporter.max-queue-size", "4096", "exporter.schedule-delay", "60000", NULL };
    ituna_tracer *t = make_tracer(kv, 0);
    REQUIRE(t);
    for (int i = 0; i < 3000; i++) {
        ituna_span *s;
        ituna_span_start(t, "f", NULL, &s);
        ituna_span_end(s, 0);
    }
    CHECK(ituna_tracer_shutdown(t, 5000) == ITUNA_OK);
    ituna_tracer_stats s;
    ituna_tracer_get_stats(t, &s);
    CHECK(s.spans_dropped == 0);
    CHECK(s.spans_exported == 3000);
    CHECK(ncap == 3000);
    /* a span started after shutdown is a no-op span, counted as not sampled */
    ituna_span *late;
    ituna_span_start(t, "late", NULL, &late);
    CHECK(!ituna_span_is_recording(late));
    ituna_span_end(late, 0);
    ituna_tracer_get_stats(t, &s);
    CHECK(s.spans_exported == 3000);
    CHECK(s.spans_not_sampled == 1);
    CHECK(s.spans_dropped == 0);
    ituna_tracer_destroy(t);
    return 0;
}

static int test_span_ended_after_shutdown_is_counted_as_dropped(void) {
    ituna_tracer *t = make_tracer(NULL, 0);
    REQUIRE(t);
    ituna_span *open_span, *done;
    ituna_span_start(t, "done-before", NULL, &done);
    ituna_span_end(done, 0);
    ituna_span_start(t, "ends-after", NULL, &open_span);
    REQUIRE(ituna_span_is_recording(open_span));
    CHECK(ituna_tracer_shutdown(t, 5000) == ITUNA_OK);
    ituna_span_end(open_span, 0); /* the queue is closed: dropped and counted, not lost silently */
    ituna_tracer_stats s;
    ituna_tracer_get_stats(t, &s);
    CHECK(s.spans_started == 2 && s.spans_ended == 2);
    CHECK(s.spans_exported == 1);
    CHECK(s.spans_dropped == 1);
    CHECK(s.spans_enqueued + s.spans_dropped == s.spans_ended);
    CHECK(find("done-before") != NULL && find("ends-after") == NULL);
    ituna_tracer_destroy(t);
    return 0;
}

/* Started/ended are counted per thread (no atomic add per span): the sums must be
 * exact across threads, across two tracers a thread alternates between, with
 * discarded spans, and a tracer created after another was destroyed (perhaps at the
 * same address) must start from zero. */
typedef struct count_job {
    ituna_tracer *a, *b;
    int n;
} count_job;

static void *count_worker(void *arg) {
    count_job *j = arg;
    for (int i = 0; i < j->n; i++) {
        ituna_span *s, *d;
        ituna_span_start(i % 2 ? j->b : j->a, "c", NULL, &s);
        ituna_span_start(j->a, "discarded", NULL, &d);
        ituna_span_discard(d);
        ituna_span_end(s, 0);
    }
    return NULL;
}

static int test_span_counts_per_thread_sum_exactly(void) {
    const char *kv[] = { "exporter.max-queue-size", "65536", NULL };
    ituna_tracer *a = make_tracer(kv, 0), *b = make_tracer(kv, 0);
    REQUIRE(a && b);
    enum { THREADS = 4, N = 5000 };
    pthread_t th[THREADS];
    count_job job = { a, b, N };
    for (int i = 0; i < THREADS; i++) REQUIRE(pthread_create(&th[i], NULL, count_worker, &job) == 0);
    count_worker(&job); /* this thread too */
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    ituna_tracer_stats sa, sb;
    ituna_tracer_get_stats(a, &sa);
    ituna_tracer_get_stats(b, &sb);
    CHECK(sa.spans_started == (THREADS + 1) * N / 2 && sa.spans_ended == (THREADS + 1) * N / 2);
    CHECK(sb.spans_started == (THREADS + 1) * N / 2 && sb.spans_ended == (THREADS + 1) * N / 2);
    CHECK(sa.spans_enqueued + sa.spans_dropped == sa.spans_ended);
    ituna_tracer_destroy(a);
    ituna_tracer_destroy(b);
    for (int k = 0; k < 3; k++) { /* each new tracer may reuse the last one's memory */
        ituna_tracer *c = make_tracer(NULL, 0);
        REQUIRE(c);
        ituna_tracer_stats sc;
        ituna_tracer_get_stats(c, &sc);
        CHECK(sc.spans_started == 0 && sc.spans_ended == 0);
        ituna_span *s;
        ituna_span_start(c, "one", NULL, &s);
        ituna_span_end(s, 0);
        ituna_tracer_get_stats(c, &sc);
        CHECK(sc.spans_started == 1 && sc.spans_ended == 1);
        ituna_tracer_destroy(c);
    }
    return 0;
}

static int test_parentbased_traceidratio(void) {
    /* ratio 0: a root is never sampled, a child follows its parent's flag */
    const char *zero[] = { "tracer.sampler", "parentbased_traceidratio", "tracer.sampler-arg", "0", NULL };
    ituna_tracer *t = make_tracer(zero, 0);
    REQUIRE(t);
    ituna_span *s;
    ituna_span_start(t, "root", NULL, &s);
    CHECK(!ituna_span_is_recording(s));
    CHECK((ituna_span_get_context(s)->trace_flags & 1) == 0);
    ituna_span_end(s, 0);
    ituna_span_context p;
    memset(&p, 0, sizeof p);
    p.trace_id[0] = 1; /* low 64 bits zero: a root with this id would be sampled at any ratio > 0 */
    p.span_id[0] = 1;
    p.is_remote = 1;
    p.trace_flags = 1;
    ituna_span_options o = { .parent = &p };
    ituna_span_start(t, "sampled-parent", &o, &s);
    CHECK(ituna_span_is_recording(s));
    CHECK((ituna_span_get_context(s)->trace_flags & 1) == 1);
    ituna_span_end(s, 0);
    ituna_tracer_destroy(t);

    /* ratio 1 for roots; an unsampled parent still wins */
    const char *one[] = { "tracer.sampler", "parentbased_traceidratio", "tracer.sampler-arg", "1", NULL };
    t = make_tracer(one, 0);
    REQUIRE(t);
    ituna_span_start(t, "root", NULL, &s);
    CHECK(ituna_span_is_recording(s));
    ituna_span *local_child;
    ituna_span_options lo = { .parent = ituna_span_get_context(s) };
    ituna_span_start(t, "local-child", &lo, &local_child);
    CHECK(ituna_span_is_recording(local_child));
    ituna_span_end(local_child, 0);
    ituna_span_end(s, 0);
    p.trace_flags = 0;
    ituna_span_start(t, "unsampled-parent", &o, &s);
    CHECK(!ituna_span_is_recording(s));
    CHECK((ituna_span_get_context(s)->trace_flags & 1) == 0);
    ituna_span_end(s, 0);
    ituna_tracer_destroy(t);

    /* ratio 0.25: about a quarter of the roots, decided by the trace id */
    const char *q[] = { "tracer.sampler", "parentbased_traceidratio", "tracer.sampler-arg", "0.25", NULL };
    t = make_tracer(q, 0);
    REQUIRE(t);
    int rec = count_recorded_roots(t);
    CHECK(rec > 4500 && rec < 5500);
    ituna_tracer_stats st;
    ituna_tracer_get_stats(t, &st);
    CHECK(st.spans_not_sampled == (uint64_t)(20000 - rec));
    ituna_tracer_destroy(t);
    return 0;
}

/* OTEL_LOG_LEVEL applies only when set: a tracer without it keeps the level the
 * program chose with ituna_log_set_level(). */
static int nlogged[5];
static void count_log(ituna_log_level level, const char *msg, void *opaque) {
    (void)msg, (void)opaque;
    if ((int)level >= 0 && (int)level < 5) nlogged[level]++;
}

static int log_probe(void) { /* which of debug and error get through, as bits 1 and 2 */
    memset(nlogged, 0, sizeof nlogged);
    ituna_log(ITUNA_LOG_DEBUG, "probe");
    ituna_log(ITUNA_LOG_ERROR, "probe");
    return (nlogged[ITUNA_LOG_DEBUG] ? 1 : 0) | (nlogged[ITUNA_LOG_ERROR] ? 2 : 0);
}

static int test_log_level_applies_only_when_set(void) {
    ituna_log_set_handler(count_log, NULL);
    ituna_log_set_level(ITUNA_LOG_DEBUG);
    CHECK(log_probe() == 3);
    ituna_tracer *t = make_tracer(NULL, 0); /* log-level unset */
    REQUIRE(t);
    CHECK(log_probe() == 3); /* still debug: the schema default "warn" did not apply */
    ituna_tracer_destroy(t);
    const char *err_only[] = { "tracer.log-level", "error", NULL };
    t = make_tracer(err_only, 0);
    REQUIRE(t);
    CHECK(log_probe() == 2); /* set: debug is now filtered, error passes */
    ituna_tracer_destroy(t);
    ituna_log_set_level(ITUNA_LOG_ERROR);
    t = make_tracer(NULL, 0);
    REQUIRE(t);
    CHECK(log_probe() == 2); /* and a tracer without it does not lower it back to warn */
    ituna_tracer_destroy(t);
    const char *dbg[] = { "tracer.log-level", "debug", NULL };
    t = make_tracer(dbg, 0);
    REQUIRE(t);
    CHECK(log_probe() == 3);
    ituna_tracer_destroy(t);
    ituna_log_set_level(ITUNA_LOG_WARN);
    ituna_log_set_handler(NULL, NULL);
    return 0;
}

static int test_batch_above_queue_is_a_config_error(void) {
    /* an explicit batch size above the queue: creation fails naming both keys */
    ituna_config *cfg = ituna_config_new();
    REQUIRE(cfg);
    char err[512] = "";
    REQUIRE(ituna_config_load_string(cfg, "bsp.ini",
                                     "[exporter]\nmax-queue-size = 64\nmax-export-batch-size = 128\n", err,
                                     sizeof err) == ITUNA_OK);
    ituna_tracer *t = NULL;
    ituna_exporter *e = calloc(1, sizeof *e);
    mem_state *st = calloc(1, sizeof *st);
    REQUIRE(e && st);
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    e->state = st;
    e->export_batch = mem_export;
    e->destroy = mem_destroy;
    CHECK(ituna_tracer_create_ex(cfg, e, &t, err, sizeof err) == ITUNA_ERR_CONFIG); /* frees e */
    CHECK(t == NULL);
    CHECK(strstr(
        err,
        "bsp.ini:3: [exporter] max-export-batch-size 128 must not exceed max-queue-size (64, bsp.ini:2)"));
    fprintf(stderr, "  %s\n", err);
    ituna_config_destroy(cfg);
    /* the default batch (512) follows a smaller queue */
    const char *small[] = { "exporter.max-queue-size", "100", NULL };
    t = make_tracer(small, 0);
    CHECK(t != NULL);
    ituna_tracer_destroy(t);
    return 0;
}

static int test_span_end_does_not_wait_on_a_stuck_exporter(void) {
    const char *kv[] = { "exporter.max-queue-size",
                         "256",
                         "exporter.max-export-batch-size",
                         "8",
                         "exporter.export-timeout",
                         "200",
                         NULL };
    ituna_tracer *t = make_tracer(kv, 1);
    REQUIRE(t);
    uint64_t t0 = ituna_now_ns();
    for (int i = 0; i < 100000; i++) {
        ituna_span *s;
        ituna_span_start(t, "fast", NULL, &s);
        ituna_span_end(s, 0);
    }
    double per = (double)(ituna_now_ns() - t0) / 100000.0;
    fprintf(stderr, "  span start+end while the exporter is stuck: %.0f ns\n", per);
    CHECK(per < 20000); /* generous: only proves no waiting on the exporter's 200 ms */
    uint64_t s0 = ituna_now_ns();
    ituna_tracer_shutdown(t, 300);
    CHECK(ituna_now_ns() - s0 < 3000000000ull);
    ituna_tracer_destroy(t);
    return 0;
}

int main(void) {
    RUN(test_ids_are_nonzero_and_unique);
    RUN(test_nesting_through_current_context);
    RUN(test_explicit_remote_parent);
    RUN(test_disabled_passes_the_parent_context_through);
    RUN(test_current_span_is_per_thread);
    RUN(test_sampling_decisions);
    RUN(test_limits_drop_and_count);
    RUN(test_attribute_lengths_and_bad_keys);
    RUN(test_array_attribute_builder);
    RUN(test_discarded_span_leaves_no_trace);
    RUN(test_reused_span_starts_empty);
    RUN(test_non_recording_spans_are_context_only);
    RUN(test_status_rules);
    RUN(test_full_queue_drops_are_counted_exactly);
    RUN(test_shutdown_flushes_everything_that_fit);
    RUN(test_span_ended_after_shutdown_is_counted_as_dropped);
    RUN(test_span_counts_per_thread_sum_exactly);
    RUN(test_parentbased_traceidratio);
    RUN(test_log_level_applies_only_when_set);
    RUN(test_batch_above_queue_is_a_config_error);
    RUN(test_span_end_does_not_wait_on_a_stuck_exporter);
    TEST_MAIN_END();
}
