/* propagators.c - the OTEL_PROPAGATORS set (tracecontext, baggage, b3, b3multi)
 * and inject/extract through it over length-aware carriers, B3 (single header and
 * X-B3-* headers) parse/format. W3C Trace Context and Baggage parsing stay in
 * propagate.c and baggage.c.
 *
 * Decisions where the specs leave room:
 * - Extract: the first propagator of tracecontext, b3, b3multi (in that order,
 *   whatever the list's order) that yields a valid context wins; baggage is read
 *   whenever "baggage" is in the set.
 * - B3: 16 or 32 hex trace ids (16 are left-padded with zeros), either case;
 *   sampling state 1, d (debug: sampled) or 0, or absent (deferred: sampled, as
 *   OpenTelemetry's B3 propagator reads it); a parent span id is ignored. The
 *   single-header forms "0", "1" and "d" carry no context.
 * - Inject writes "b3: <trace>-<span>-<0|1>", and X-B3-TraceId, X-B3-SpanId,
 *   X-B3-Sampled for b3multi, as OpenTelemetry's B3 propagators do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "config_schema.h"
#include "internal.h"

static const struct {
    const char *name;
    unsigned bit;
} NAMES[] = {
    { "tracecontext", ITUNA_PROPAGATOR_TRACECONTEXT },
    { "baggage", ITUNA_PROPAGATOR_BAGGAGE },
    { "b3", ITUNA_PROPAGATOR_B3 },
    { "b3multi", ITUNA_PROPAGATOR_B3MULTI },
};

unsigned ituna_propagators_parse(const char *list, const char **unknown, size_t *unknown_len) {
    unsigned mask = 0;
    if (unknown) *unknown = NULL;
    if (unknown_len) *unknown_len = 0;
    if (!list) return ITUNA_PROPAGATOR_TRACECONTEXT | ITUNA_PROPAGATOR_BAGGAGE;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *b = p;
        while (*p && *p != ',') p++;
        const char *e = p;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
        size_t n = (size_t)(e - b);
        if (!n) continue;
        size_t i;
        for (i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
            if (strlen(NAMES[i].name) == n && strncasecmp(NAMES[i].name, b, n) == 0) break;
        if (i < sizeof NAMES / sizeof NAMES[0])
            mask |= NAMES[i].bit;
        else if (!(n == 4 && strncasecmp(b, "none", 4) == 0) && unknown && !*unknown) {
            *unknown = b;
            if (unknown_len) *unknown_len = n;
        }
    }
    return mask;
}

#define PROPS_READY 0x80000000u

unsigned ituna_tracer_propagators(const ituna_tracer *t) {
    if (!t) return ITUNA_PROPAGATOR_TRACECONTEXT | ITUNA_PROPAGATOR_BAGGAGE;
    ituna_tracer *w = (ituna_tracer *)t; /* a cache of the tracer's own config */
    unsigned v = atomic_load_explicit(&w->propagators, memory_order_relaxed);
    if (v) return v & ~PROPS_READY;
    const char *unknown = NULL;
    size_t ulen = 0;
    const char *list = ituna_config_str(t->cfg, "tracer", "propagators", NULL);
    v = ituna_propagators_parse(list, &unknown, &ulen);
    if (unknown) /* the SDK rule: warn, keep the rest */
        ituna_log(ITUNA_LOG_WARN,
                  "%s: propagator '%.*s' is not supported (tracecontext, baggage, b3, b3multi)",
                  ituna_config_source(t->cfg, "tracer", "propagators") == ITUNA_CFG_SRC_ENV
                      ? "environment OTEL_PROPAGATORS"
                      : "[tracer] propagators",
                  (int)ulen, unknown);
    atomic_store_explicit(&w->propagators, v | PROPS_READY, memory_order_relaxed);
    return v;
}

/* ---- B3 ------------------------------------------------------------------- */

static int hex_any(const char *s, size_t n, uint8_t *out) { /* n bytes from 2n chars, either case */
    char low[32];
    if (2 * n > sizeof low) return 0;
    for (size_t i = 0; i < 2 * n; i++) low[i] = (char)((s[i] >= 'A' && s[i] <= 'F') ? s[i] + 32 : s[i]);
    return ituna_hex_decode_lower(low, n, out);
}

/* Trace id of 16 or 32 hex chars, span id of 16; 0 when malformed or all-zero. */
static int b3_ids(const char *tid, size_t tlen, const char *sid, size_t slen, ituna_span_context *out) {
    memset(out->trace_id, 0, 16);
    if (!(tlen == 32 || tlen == 16) || slen != 16) return 0;
    if (!hex_any(tid, tlen / 2, out->trace_id + (tlen == 16 ? 8 : 0))) return 0;
    if (!hex_any(sid, 8, out->span_id)) return 0;
    return ituna_span_context_is_valid(out);
}

static void ctx_fill(ituna_span_context *out, int sampled) {
    out->trace_flags = sampled ? ITUNA_TRACE_FLAG_SAMPLED : 0;
    out->is_remote = 1;
    out->tracestate_len = 0;
    out->tracestate[0] = '\0';
}

ituna_err ituna_b3_parse(const char *s, size_t len, ituna_span_context *out, const char **reason) {
    if (!out) return ITUNA_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out - sizeof out->tracestate);
    out->tracestate[0] = '\0';
    if (!s) {
        if (reason) *reason = "b3: missing";
        return ITUNA_ERR_NOT_FOUND;
    }
    while (len && (*s == ' ' || *s == '\t')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    const char *d1 = memchr(s, '-', len);
    if (!d1) {
        if (reason) *reason = "b3: a sampling decision only, no context";
        return ITUNA_ERR_NOT_FOUND;
    }
    const char *rest = d1 + 1, *end = s + len;
    const char *d2 = memchr(rest, '-', (size_t)(end - rest));
    const char *sid_end = d2 ? d2 : end;
    int sampled = 1;
    if (d2) {
        const char *st = d2 + 1, *d3 = memchr(st, '-', (size_t)(end - st));
        size_t stn = (size_t)((d3 ? d3 : end) - st);
        if (stn != 1 || !(*st == '0' || *st == '1' || *st == 'd')) {
            memset(out, 0, sizeof *out - sizeof out->tracestate);
            if (reason) *reason = "b3: bad sampling state";
            return ITUNA_ERR_PARSE;
        }
        sampled = *st != '0';
        if (d3 && (size_t)(end - d3 - 1) != 16) {
            memset(out, 0, sizeof *out - sizeof out->tracestate);
            if (reason) *reason = "b3: bad parent span id";
            return ITUNA_ERR_PARSE;
        }
    }
    if (!b3_ids(s, (size_t)(d1 - s), rest, (size_t)(sid_end - rest), out)) {
        memset(out, 0, sizeof *out - sizeof out->tracestate);
        if (reason) *reason = "b3: bad trace or span id";
        return ITUNA_ERR_PARSE;
    }
    ctx_fill(out, sampled);
    if (reason) *reason = NULL;
    return ITUNA_OK;
}

static int b3multi_extract(ituna_carrier_getn_fn get, void *carrier, ituna_span_context *out) {
    size_t tl = 0, sl = 0, fl = 0, fll = 0;
    const char *t = get(carrier, "x-b3-traceid", &tl), *s = get(carrier, "x-b3-spanid", &sl);
    if (!t || !s || !b3_ids(t, tl, s, sl, out)) return 0;
    const char *f = get(carrier, "x-b3-sampled", &fl), *dbg = get(carrier, "x-b3-flags", &fll);
    int sampled = 1;
    if (f) sampled = (fl == 1 && *f == '1') || (fl == 4 && strncasecmp(f, "true", 4) == 0);
    if (dbg && fll == 1 && *dbg == '1') sampled = 1;
    ctx_fill(out, sampled);
    return 1;
}

/* ---- inject / extract through the set ------------------------------------------ */

ituna_err ituna_inject_with(unsigned props, const ituna_span_context *ctx, const ituna_baggage *bag,
                            ituna_carrier_set_fn set, void *carrier) {
    if (!set) return ITUNA_ERR_INVALID_ARG;
    ituna_span_context cur;
    if (!ctx && ituna_context_current(&cur)) ctx = &cur;
    int valid = ctx && ituna_span_context_is_valid(ctx);
    if (valid && (props & ITUNA_PROPAGATOR_TRACECONTEXT)) ituna_inject(ctx, set, carrier);
    if (valid && (props & (ITUNA_PROPAGATOR_B3 | ITUNA_PROPAGATOR_B3MULTI))) {
        char tid[33], sid[17], one[52];
        ituna_trace_id_hex(ctx, tid);
        ituna_span_id_hex(ctx, sid);
        const char *smp = (ctx->trace_flags & ITUNA_TRACE_FLAG_SAMPLED) ? "1" : "0";
        if (props & ITUNA_PROPAGATOR_B3) {
            snprintf(one, sizeof one, "%s-%s-%s", tid, sid, smp);
            set(carrier, "b3", one);
        }
        if (props & ITUNA_PROPAGATOR_B3MULTI) {
            set(carrier, "X-B3-TraceId", tid);
            set(carrier, "X-B3-SpanId", sid);
            set(carrier, "X-B3-Sampled", smp);
        }
    }
    if (bag && (props & ITUNA_PROPAGATOR_BAGGAGE) && ituna_baggage_count(bag)) {
        size_t need = ituna_baggage_format(bag, NULL, 0);
        char small[512], *buf = need < sizeof small ? small : malloc(need + 1);
        if (!buf) return ITUNA_ERR_NOMEM;
        ituna_baggage_format(bag, buf, need + 1);
        set(carrier, "baggage", buf);
        if (buf != small) free(buf);
    }
    return valid ? ITUNA_OK : ITUNA_ERR_NOT_FOUND;
}

ituna_err ituna_extract_with(unsigned props, ituna_carrier_getn_fn get, void *carrier,
                             ituna_span_context *out, ituna_baggage *bag, const char **reason) {
    if (!get || !out) {
        if (out) memset(out, 0, sizeof *out);
        if (reason) *reason = "extract: NULL argument";
        return ITUNA_ERR_INVALID_ARG;
    }
    const char *why = "no traceparent", *r = NULL;
    ituna_err err = ITUNA_ERR_NOT_FOUND;
    size_t n = 0;
    if (props & ITUNA_PROPAGATOR_TRACECONTEXT) {
        const char *tp = get(carrier, "traceparent", &n);
        if (tp) {
            err = ituna_traceparent_parse(tp, n, out, &why);
            if (err == ITUNA_OK) {
                why = NULL;
                const char *ts = get(carrier, "tracestate", &n);
                if (ts && ituna_tracestate_parse(ts, n, out, &r) != ITUNA_OK)
                    ituna_log(ITUNA_LOG_DEBUG, "tracestate dropped: %s", r);
                why = r;
            }
        }
    }
    if (err != ITUNA_OK && (props & ITUNA_PROPAGATOR_B3)) {
        const char *b3 = get(carrier, "b3", &n);
        if (b3) {
            ituna_err e = ituna_b3_parse(b3, n, out, &r);
            if (e == ITUNA_OK || err == ITUNA_ERR_NOT_FOUND) err = e, why = r;
        }
    }
    if (err != ITUNA_OK && (props & ITUNA_PROPAGATOR_B3MULTI)) {
        if (b3multi_extract(get, carrier, out))
            err = ITUNA_OK, why = NULL;
        else if (err == ITUNA_ERR_NOT_FOUND && get(carrier, "x-b3-traceid", &n))
            err = ITUNA_ERR_PARSE, why = "x-b3: bad trace or span id";
    }
    if (err != ITUNA_OK) memset(out, 0, sizeof *out - sizeof out->tracestate), out->tracestate[0] = '\0';
    if (bag && (props & ITUNA_PROPAGATOR_BAGGAGE)) {
        const char *b = get(carrier, "baggage", &n);
        if (b && ituna_baggage_parse(bag, b, n, &r) != ITUNA_OK)
            ituna_log(ITUNA_LOG_DEBUG, "baggage dropped: %s", r);
    }
    if (reason) *reason = err == ITUNA_OK ? why : (why ? why : ituna_err2str(err));
    return err;
}
