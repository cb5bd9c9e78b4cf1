/* propagate.c - W3C Trace Context: traceparent parse/format, tracestate
 * validation/normalisation/truncation, and inject/extract over a carrier.
 *
 * Spec decisions (W3C Trace Context Level 1 REC, with Level 2 where it agrees):
 * - Leading/trailing SP/HTAB around a whole traceparent value is ignored (HTTP
 *   field OWS; the W3C test suite sends it). Nothing else is tolerated.
 * - Version 00: exactly 55 chars. Versions 01..fe: at least 55, and char 55 (if
 *   any) must be '-'; only the version-00 fields are read. Version ff invalid.
 * - Flags: version 00 keeps the received byte in ctx.trace_flags (it is the
 *   caller's recommendation, visible to the application); a higher version
 *   keeps only the sampled bit (the spec says parse "the sampled bit").
 *   Formatting always writes version 00 with only the sampled bit, since the
 *   other bits are reserved and "Vendors MUST set those to zero".
 * - tracestate keys use the Level 1 grammar (simple-key, or tenant@system with
 *   tenant <= 241 and system <= 14 chars), which the W3C test suite checks.
 *   Any invalid member drops the whole tracestate (the suite expects that).
 * - Truncation to ITUNA_TRACESTATE_MAX removes whole entries: entries over 128
 *   chars first, scanning from the end, then entries from the end, stopping as
 *   soon as it fits.
 * - *reason on an ITUNA_OK result: NULL, or (tracestate_parse, extract) why the
 *   tracestate was dropped or truncated, so callers can log it.
 */
#include "internal.h"

/* ---- traceparent ----------------------------------------------------------- */

static inline int is_ows(char c) {
    return c == ' ' || c == '\t';
}

/* 1 when all n bytes are zero; n is 8 or 16. */
static inline int all_zero(const uint8_t *p, size_t n) {
    uint64_t acc = 0, w;
    for (size_t i = 0; i < n; i += 8) {
        memcpy(&w, p + i, 8);
        acc |= w;
    }
    return acc == 0;
}

static ituna_err tp_fail(ituna_span_context *out, const char **reason, const char *why) {
    memset(out, 0, sizeof(*out));
    if (reason) *reason = why;
    return ITUNA_ERR_PARSE;
}

ituna_err ituna_traceparent_parse(const char *s, size_t len, ituna_span_context *out, const char **reason) {
    if (!out) {
        if (reason) *reason = "traceparent: no output context";
        return ITUNA_ERR_INVALID_ARG;
    }
    if (!s) return tp_fail(out, reason, "traceparent: missing");
    while (len > 0 && is_ows(*s)) s++, len--;
    while (len > 0 && is_ows(s[len - 1])) len--;
    if (len < 3 || s[2] != '-') {
        /* Not "2 hex + dash": the version prefix itself is unparseable. */
        return tp_fail(out, reason, len < 3 ? "traceparent: wrong length" : "traceparent: bad version");
    }
    uint8_t version;
    if (!ituna_hex_decode_lower(s, 1, &version)) return tp_fail(out, reason, "traceparent: bad version");
    if (version == 0xff) return tp_fail(out, reason, "traceparent: invalid version ff");
    if (version == 0x00) {
        if (len != ITUNA_TRACEPARENT_LEN) return tp_fail(out, reason, "traceparent: wrong length");
    } else {
        if (len < ITUNA_TRACEPARENT_LEN) return tp_fail(out, reason, "traceparent: wrong length");
        if (len > ITUNA_TRACEPARENT_LEN && s[ITUNA_TRACEPARENT_LEN] != '-')
            return tp_fail(out, reason, "traceparent: bad data after flags");
    }
    if (s[35] != '-' || s[52] != '-') return tp_fail(out, reason, "traceparent: bad delimiter");

    uint8_t tid[16], sid[8], flags;
    if (!ituna_hex_decode_lower(s + 3, 16, tid)) return tp_fail(out, reason, "traceparent: bad trace-id");
    if (!ituna_hex_decode_lower(s + 36, 8, sid)) return tp_fail(out, reason, "traceparent: bad parent-id");
    if (!ituna_hex_decode_lower(s + 53, 1, &flags)) return tp_fail(out, reason, "traceparent: bad flags");
    if (all_zero(tid, 16)) return tp_fail(out, reason, "traceparent: all-zero trace-id");
    if (all_zero(sid, 8)) return tp_fail(out, reason, "traceparent: all-zero parent-id");

    /* Only now touch *out: a failure above never leaves it half-filled.
     * The 513-byte tracestate buffer is cleared by its length, not memset. */
    memcpy(out->trace_id, tid, 16);
    memcpy(out->span_id, sid, 8);
    out->trace_flags = version == 0 ? flags : (uint8_t)(flags & ITUNA_TRACE_FLAG_SAMPLED);
    out->is_remote = 1;
    out->tracestate_len = 0;
    out->tracestate[0] = '\0';
    if (reason) *reason = NULL;
    return ITUNA_OK;
}

size_t ituna_traceparent_format(const ituna_span_context *ctx, char *buf, size_t buf_size) {
    if (!ctx || !buf || buf_size < ITUNA_TRACEPARENT_LEN + 1) return 0;
    if (all_zero(ctx->trace_id, 16) || all_zero(ctx->span_id, 8)) return 0;
    static const char hexd[] = "0123456789abcdef";
    buf[0] = '0';
    buf[1] = '0';
    buf[2] = '-';
    ituna_hex_encode(ctx->trace_id, 16, buf + 3);
    buf[35] = '-';
    ituna_hex_encode(ctx->span_id, 8, buf + 36);
    buf[52] = '-';
    buf[53] = '0';
    buf[54] = hexd[ctx->trace_flags & ITUNA_TRACE_FLAG_SAMPLED];
    buf[55] = '\0';
    return ITUNA_TRACEPARENT_LEN;
}

ituna_err ituna_span_context_from_hex(const char *trace_id, const char *span_id, int trace_flags,
                                      const char *tracestate, ituna_span_context *out, const char **reason) {
    if (reason) *reason = NULL;
    if (!out) return ITUNA_ERR_INVALID_ARG;
    uint8_t tid[16], sid[8];
    const char *why = NULL;
    if (!trace_id || strlen(trace_id) != 32 || !ituna_hex_decode_lower(trace_id, 16, tid))
        why = "trace_id must be 32 lowercase hex digits";
    else if (!span_id || strlen(span_id) != 16 || !ituna_hex_decode_lower(span_id, 8, sid))
        why = "span_id must be 16 lowercase hex digits";
    else if (all_zero(tid, 16) || all_zero(sid, 8))
        why = "all-zero trace_id or span_id";
    else if (trace_flags < 0 || trace_flags > 255)
        why = "trace_flags must be 0..255";
    if (why) {
        if (reason) *reason = why;
        return ITUNA_ERR_PARSE;
    }
    ituna_span_context c = { .trace_flags = (uint8_t)trace_flags, .is_remote = 1 };
    memcpy(c.trace_id, tid, 16);
    memcpy(c.span_id, sid, 8);
    if (tracestate && *tracestate) {
        ituna_err e = ituna_tracestate_parse(tracestate, strlen(tracestate), &c, reason);
        if (e) return e;
    }
    *out = c;
    return ITUNA_OK;
}

/* ---- tracestate ------------------------------------------------------------ */

#define TS_MAX_MEMBERS 32
#define TS_LONG_ENTRY  128 /* entries longer than this are truncated away first */

/* Character classes for keys: 1 = lcalpha, 2 = DIGIT, 4 = "_-*\/". */
static const uint8_t key_class[256] = {
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1, ['0'] = 2, ['1'] = 2, ['2'] = 2, ['3'] = 2, ['4'] = 2, ['5'] = 2,
    ['6'] = 2, ['7'] = 2, ['8'] = 2, ['9'] = 2, ['_'] = 4, ['-'] = 4, ['*'] = 4, ['/'] = 4,
};

/* first: classes allowed for the first char; min/max total length. */
static int key_part_ok(const char *k, size_t n, uint8_t first, size_t max) {
    if (n == 0 || n > max) return 0;
    if (!(key_class[(uint8_t)k[0]] & first)) return 0;
    for (size_t i = 1; i < n; i++)
        if (!key_class[(uint8_t)k[i]]) return 0;
    return 1;
}

static int ts_key_ok(const char *k, size_t n) {
    const char *at = memchr(k, '@', n);
    if (!at) return key_part_ok(k, n, 1, 256);
    size_t tn = (size_t)(at - k);
    /* tenant-id: (lcalpha/DIGIT) 0*240 keychar; system-id: lcalpha 0*13 keychar.
     * A second '@' fails the system-id character check. */
    return key_part_ok(k, tn, 1 | 2, 241) && key_part_ok(at + 1, n - tn - 1, 1, 14);
}

/* value = 0*255(chr) nblk-chr; chr = 0x20-0x7E except ',' and '='. */
static int ts_value_ok(const char *v, size_t n) {
    if (n == 0 || n > 256 || v[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return 0;
    }
    return 1;
}

static ituna_err ts_fail(ituna_span_context *out, const char **reason, const char *why) {
    out->tracestate_len = 0;
    out->tracestate[0] = '\0';
    if (reason) *reason = why;
    return ITUNA_ERR_PARSE;
}

ituna_err ituna_tracestate_parse(const char *s, size_t len, ituna_span_context *out, const char **reason) {
    if (!out) {
        if (reason) *reason = "tracestate: no output context";
        return ITUNA_ERR_INVALID_ARG;
    }
    if (reason) *reason = NULL;
    out->tracestate_len = 0;
    out->tracestate[0] = '\0';
    if (!s || len == 0) return ITUNA_OK; /* empty header: accepted, nothing kept */

    struct {
        const char *p;
        size_t n, klen;
    } m[TS_MAX_MEMBERS];
    size_t count = 0;
    const char *end = s + len, *cur = s;
    for (;;) {
        const char *comma = memchr(cur, ',', (size_t)(end - cur));
        const char *a = cur, *b = comma ? comma : end;
        while (a < b && is_ows(*a)) a++;
        while (b > a && is_ows(b[-1])) b--;
        if (a < b) { /* empty and whitespace-only members are allowed and dropped */
            if (count == TS_MAX_MEMBERS) return ts_fail(out, reason, "tracestate: more than 32 list-members");
            const char *eq = memchr(a, '=', (size_t)(b - a));
            if (!eq) return ts_fail(out, reason, "tracestate: list-member without '='");
            size_t klen = (size_t)(eq - a);
            if (!ts_key_ok(a, klen)) return ts_fail(out, reason, "tracestate: invalid key");
            if (!ts_value_ok(eq + 1, (size_t)(b - eq - 1)))
                return ts_fail(out, reason, "tracestate: invalid value");
            for (size_t i = 0; i < count; i++)
                if (m[i].klen == klen && memcmp(m[i].p, a, klen) == 0)
                    return ts_fail(out, reason, "tracestate: duplicate key");
            m[count].p = a;
            m[count].n = (size_t)(b - a);
            m[count].klen = klen;
            count++;
        }
        if (!comma) break;
        cur = comma + 1;
    }

    /* Normalised length: members joined by single commas. Truncate whole entries
     * per W3C: drop entries over 128 chars (from the end) first, then drop from
     * the end, until it fits. */
    uint8_t keep[TS_MAX_MEMBERS];
    size_t total = 0, kept = 0;
    for (size_t i = 0; i < count; i++) {
        keep[i] = 1;
        total += m[i].n;
    }
    kept = count;
#define TS_LEN() (total + (kept ? kept - 1 : 0))
    for (size_t i = count; i-- > 0 && TS_LEN() > ITUNA_TRACESTATE_MAX;) {
        if (m[i].n > TS_LONG_ENTRY) {
            keep[i] = 0;
            total -= m[i].n;
            kept--;
        }
    }
    for (size_t i = count; i-- > 0 && TS_LEN() > ITUNA_TRACESTATE_MAX;) {
        if (keep[i]) {
            keep[i] = 0;
            total -= m[i].n;
            kept--;
        }
    }
#undef TS_LEN

    size_t pos = 0;
    for (size_t i = 0; i < count; i++) {
        if (!keep[i]) continue;
        if (pos) out->tracestate[pos++] = ',';
        memcpy(out->tracestate + pos, m[i].p, m[i].n);
        pos += m[i].n;
    }
    out->tracestate[pos] = '\0';
    out->tracestate_len = (uint16_t)pos;
    if (kept < count && reason) *reason = "tracestate: truncated to 512 chars";
    return ITUNA_OK;
}

/* ---- inject / extract ------------------------------------------------------ */

ituna_err ituna_inject(const ituna_span_context *ctx, ituna_carrier_set_fn set, void *carrier) {
    if (!set) return ITUNA_ERR_INVALID_ARG;
    ituna_span_context cur;
    if (!ctx) {
        if (!ituna_context_current(&cur)) return ITUNA_ERR_NOT_FOUND;
        ctx = &cur;
    }
    char tp[ITUNA_TRACEPARENT_LEN + 1];
    if (ituna_traceparent_format(ctx, tp, sizeof(tp)) == 0) return ITUNA_ERR_NOT_FOUND;
    set(carrier, "traceparent", tp);
    /* The length is checked so a hand-filled context cannot make us read past
     * its buffer. */
    if (ctx->tracestate_len > 0 && ctx->tracestate_len <= ITUNA_TRACESTATE_MAX &&
        ctx->tracestate[ctx->tracestate_len] == '\0')
        set(carrier, "tracestate", ctx->tracestate);
    return ITUNA_OK;
}

ituna_err ituna_extract(ituna_carrier_get_fn get, void *carrier, ituna_span_context *out,
                        const char **reason) {
    if (!get || !out) {
        if (out) memset(out, 0, sizeof(*out));
        if (reason) *reason = "extract: NULL argument";
        return ITUNA_ERR_INVALID_ARG;
    }
    const char *tp = get(carrier, "traceparent");
    if (!tp) {
        memset(out, 0, sizeof(*out));
        if (reason) *reason = "no traceparent";
        return ITUNA_ERR_NOT_FOUND;
    }
    ituna_err err = ituna_traceparent_parse(tp, strlen(tp), out, reason);
    if (err != ITUNA_OK) return err;
    /* A tracestate is only read after a valid traceparent (W3C); an invalid one
     * is dropped alone, and *reason then says why although the result is OK. */
    const char *ts = get(carrier, "tracestate");
    if (ts) {
        const char *why = NULL;
        if (ituna_tracestate_parse(ts, strlen(ts), out, &why) != ITUNA_OK)
            ituna_log(ITUNA_LOG_DEBUG, "tracestate dropped: %s", why);
        if (reason) *reason = why;
    }
    return ITUNA_OK;
}
