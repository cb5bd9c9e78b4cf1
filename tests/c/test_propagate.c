/* test_propagate.c - W3C Trace Context vectors (traceparent and tracestate,
 * valid and invalid, from the spec's rules and the W3C test suite's cases),
 * round trips, and inject/extract over a small string-map carrier. */
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>

#include "internal.h"
#include "testutil.h"

#define TID  "4bf92f3577b34da6a3ce929d0e0e4736"
#define SID  "00f067aa0ba902b7"
#define TID2 "12345678901234567890123456789012"
#define SID2 "1234567890123456"

/* 1 if every byte of the context is zero (what a failed parse must leave). */
static int ctx_is_zero(const ituna_span_context *c) {
    const unsigned char *p = (const unsigned char *)c;
    for (size_t i = 0; i < sizeof(*c); i++)
        if (p[i]) return 0;
    return 1;
}

static void hex_of(const uint8_t *b, size_t n, char *out) {
    static const char h[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = h[b[i] >> 4];
        out[2 * i + 1] = h[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- traceparent ----------------------------------------------------------- */

typedef struct {
    const char *in;
    const char *trace_id; /* NULL: must be rejected */
    const char *span_id;
    int flags;
    const char *reason; /* for rejected inputs */
} tp_case;

static const tp_case tp_cases[] = {
    /* valid, version 00 */
    { "00-" TID "-" SID "-01", TID, SID, 0x01, NULL },
    { "00-" TID "-" SID "-00", TID, SID, 0x00, NULL },
    { "00-" TID2 "-" SID2 "-09", TID2, SID2, 0x09, NULL }, /* unknown bits kept on parse (v00) */
    { "00-" TID2 "-" SID2 "-ff", TID2, SID2, 0xff, NULL },
    { "00-00000000000000000000000000000001-0000000000000001-01", "00000000000000000000000000000001",
      "0000000000000001", 0x01, NULL },
    /* HTTP OWS around the field value */
    { " 00-" TID2 "-" SID2 "-01", TID2, SID2, 0x01, NULL },
    { "\t00-" TID2 "-" SID2 "-01", TID2, SID2, 0x01, NULL },
    { "00-" TID2 "-" SID2 "-01 ", TID2, SID2, 0x01, NULL },
    { "\t 00-" TID2 "-" SID2 "-01 \t", TID2, SID2, 0x01, NULL },
    /* future versions: version-00 prefix rules, only the sampled bit */
    { "cc-" TID2 "-" SID2 "-01", TID2, SID2, 0x01, NULL },
    { "cc-" TID2 "-" SID2 "-01-what-the-future-will-be-like", TID2, SID2, 0x01, NULL },
    { "01-" TID2 "-" SID2 "-03", TID2, SID2, 0x01, NULL },
    { "fe-" TID2 "-" SID2 "-02-", TID2, SID2, 0x00, NULL },

    /* invalid: version */
    { "ff-" TID2 "-" SID2 "-01", NULL, NULL, 0, "traceparent: invalid version ff" },
    { "ff-" TID2 "-" SID2 "-01-extra", NULL, NULL, 0, "traceparent: invalid version ff" },
    { ".0-" TID2 "-" SID2 "-01", NULL, NULL, 0, "traceparent: bad version" },
    { "0.-" TID2 "-" SID2 "-01", NULL, NULL, 0, "traceparent: bad version" },
    { "000-" TID2 "-" SID2 "-01", NULL, NULL, 0, "traceparent: bad version" },
    { "0000-" TID2 "-" SID2 "-01", NULL, NULL, 0, "traceparent: bad version" },
    { "0-" TID2 "-" SID2 "-01", NULL, NULL, 0, "traceparent: bad version" },
    { "CC-" TID2 "-" SID2 "-01", NULL, NULL, 0, "traceparent: bad version" },
    { "0A-" TID2 "-" SID2 "-01", NULL, NULL, 0, "traceparent: bad version" },
    /* invalid: lengths */
    { "", NULL, NULL, 0, "traceparent: wrong length" },
    { "00", NULL, NULL, 0, "traceparent: wrong length" },
    { "00-" TID2 "-" SID2 "-01.", NULL, NULL, 0, "traceparent: wrong length" },
    { "00-" TID2 "-" SID2 "-01-what-the-future-will-be-like", NULL, NULL, 0, "traceparent: wrong length" },
    { "00-" TID2 "-" SID2 "-01-", NULL, NULL, 0, "traceparent: wrong length" },
    { "00-" TID2 "3-" SID2 "-01", NULL, NULL, 0, "traceparent: wrong length" },
    { "00-1234567890123456789012345678901-" SID2 "-01", NULL, NULL, 0, "traceparent: wrong length" },
    { "00-" TID2 "-" SID2 "7-01", NULL, NULL, 0, "traceparent: wrong length" },
    { "00-" TID2 "-123456789012345-01", NULL, NULL, 0, "traceparent: wrong length" },
    { "00-" TID2 "-" SID2 "-001", NULL, NULL, 0, "traceparent: wrong length" },
    { "00-" TID2 "-" SID2 "-1", NULL, NULL, 0, "traceparent: wrong length" },
    { "cc-" TID2 "-" SID2 "-1", NULL, NULL, 0, "traceparent: wrong length" },
    { "cc-" TID2 "-" SID2 "-01.what-the-future-will-be-like", NULL, NULL, 0,
      "traceparent: bad data after flags" },
    { "cc-" TID2 "-" SID2 "-010", NULL, NULL, 0, "traceparent: bad data after flags" },
    /* invalid: delimiters */
    { "00-" TID2 "x" SID2 "-01", NULL, NULL, 0, "traceparent: bad delimiter" },
    { "00-" TID2 "-" SID2 "_01", NULL, NULL, 0, "traceparent: bad delimiter" },
    { "cc-" TID2 "-" SID2 "+01-x", NULL, NULL, 0, "traceparent: bad delimiter" },
    /* invalid: characters and case */
    { "00-.2345678901234567890123456789012-" SID2 "-01", NULL, NULL, 0, "traceparent: bad trace-id" },
    { "00-1234567890123456789012345678901.-" SID2 "-01", NULL, NULL, 0, "traceparent: bad trace-id" },
    { "00-4BF92F3577B34DA6A3CE929D0E0E4736-" SID "-01", NULL, NULL, 0, "traceparent: bad trace-id" },
    { "00-4bf92f3577b34da6a3ce929d0e0e473G-" SID "-01", NULL, NULL, 0, "traceparent: bad trace-id" },
    { "00-" TID2 "-.234567890123456-01", NULL, NULL, 0, "traceparent: bad parent-id" },
    { "00-" TID2 "-123456789012345.-01", NULL, NULL, 0, "traceparent: bad parent-id" },
    { "00-" TID "-00F067AA0BA902B7-01", NULL, NULL, 0, "traceparent: bad parent-id" },
    { "00-" TID2 "-" SID2 "-.0", NULL, NULL, 0, "traceparent: bad flags" },
    { "00-" TID2 "-" SID2 "-0.", NULL, NULL, 0, "traceparent: bad flags" },
    { "00-" TID2 "-" SID2 "-0A", NULL, NULL, 0, "traceparent: bad flags" },
    { "00-" TID2 "-" SID2 "- 1", NULL, NULL, 0, "traceparent: bad flags" },
    /* invalid: all-zero ids */
    { "00-00000000000000000000000000000000-" SID2 "-01", NULL, NULL, 0, "traceparent: all-zero trace-id" },
    { "00-" TID2 "-0000000000000000-01", NULL, NULL, 0, "traceparent: all-zero parent-id" },
    { "cc-00000000000000000000000000000000-" SID2 "-01-x", NULL, NULL, 0, "traceparent: all-zero trace-id" },
};

static int traceparent_vectors_parse_as_the_spec_says(void) {
    for (size_t i = 0; i < sizeof(tp_cases) / sizeof(tp_cases[0]); i++) {
        const tp_case *c = &tp_cases[i];
        ituna_span_context ctx;
        memset(&ctx, 0xab, sizeof(ctx)); /* garbage that a failure must wipe */
        const char *reason = "unset";
        ituna_err err = ituna_traceparent_parse(c->in, strlen(c->in), &ctx, &reason);
        if (c->trace_id) {
            if (err != ITUNA_OK) fprintf(stderr, "  case %zu \"%s\": %s\n", i, c->in, reason);
            CHECK(err == ITUNA_OK);
            CHECK(reason == NULL);
            char t[33], s[17];
            hex_of(ctx.trace_id, 16, t);
            hex_of(ctx.span_id, 8, s);
            CHECK_STR(t, c->trace_id);
            CHECK_STR(s, c->span_id);
            CHECK(ctx.trace_flags == c->flags);
            CHECK(ctx.is_remote == 1);
            CHECK(ctx.tracestate_len == 0 && ctx.tracestate[0] == '\0');
        } else {
            if (err != ITUNA_ERR_PARSE) fprintf(stderr, "  case %zu \"%s\" was accepted\n", i, c->in);
            CHECK(err == ITUNA_ERR_PARSE);
            CHECK(ctx_is_zero(&ctx));
            CHECK_STR(reason, c->reason);
        }
    }
    return 0;
}

static int traceparent_len_bounds_the_read(void) {
    /* The value is read only within len: a valid header cut short is rejected
     * even though the bytes after it are there. */
    const char *full = "00-" TID "-" SID "-01";
    ituna_span_context ctx;
    const char *reason = NULL;
    CHECK(ituna_traceparent_parse(full, 54, &ctx, &reason) == ITUNA_ERR_PARSE);
    CHECK_STR(reason, "traceparent: wrong length");
    /* An embedded NUL is a bad character, not an end of string. */
    char buf[56];
    memcpy(buf, full, 56);
    buf[10] = '\0';
    CHECK(ituna_traceparent_parse(buf, 55, &ctx, &reason) == ITUNA_ERR_PARSE);
    CHECK_STR(reason, "traceparent: bad trace-id");
    CHECK(ituna_traceparent_parse(NULL, 0, &ctx, &reason) == ITUNA_ERR_PARSE);
    CHECK(ctx_is_zero(&ctx));
    CHECK(ituna_traceparent_parse(full, 55, NULL, &reason) == ITUNA_ERR_INVALID_ARG);
    CHECK(ituna_traceparent_parse(full, 55, &ctx, NULL) == ITUNA_OK); /* reason is optional */
    return 0;
}

static int traceparent_format_writes_version_00_and_only_the_sampled_bit(void) {
    ituna_span_context ctx;
    char buf[64];
    const char *in[] = { "00-" TID "-" SID "-01", "00-" TID "-" SID "-00", "00-" TID "-" SID "-ff",
                         "00-" TID "-" SID "-fe", "cc-" TID "-" SID "-03-future" };
    const char *want[] = { "00-" TID "-" SID "-01", "00-" TID "-" SID "-00", "00-" TID "-" SID "-01",
                           "00-" TID "-" SID "-00", "00-" TID "-" SID "-01" };
    for (size_t i = 0; i < 5; i++) {
        REQUIRE(ituna_traceparent_parse(in[i], strlen(in[i]), &ctx, NULL) == ITUNA_OK);
        memset(buf, 'x', sizeof(buf));
        CHECK(ituna_traceparent_format(&ctx, buf, sizeof(buf)) == 55);
        CHECK_STR(buf, want[i]);
    }
    /* Too small a buffer or an invalid context: nothing written, 0 returned. */
    memset(buf, 'x', sizeof(buf));
    CHECK(ituna_traceparent_format(&ctx, buf, 55) == 0);
    CHECK(buf[0] == 'x');
    CHECK(ituna_traceparent_format(&ctx, buf, 56) == 55);
    ituna_span_context zero;
    memset(&zero, 0, sizeof(zero));
    CHECK(ituna_traceparent_format(&zero, buf, sizeof(buf)) == 0);
    memcpy(zero.trace_id, ctx.trace_id, 16); /* span id still zero */
    CHECK(ituna_traceparent_format(&zero, buf, sizeof(buf)) == 0);
    CHECK(ituna_traceparent_format(NULL, buf, sizeof(buf)) == 0);
    return 0;
}

static int traceparent_round_trips_random_ids(void) {
    srand(12345);
    for (int n = 0; n < 2000; n++) {
        ituna_span_context a, b;
        memset(&a, 0, sizeof(a));
        for (int i = 0; i < 16; i++) a.trace_id[i] = (uint8_t)rand();
        for (int i = 0; i < 8; i++) a.span_id[i] = (uint8_t)rand();
        a.trace_id[n % 16] |= 1; /* never all-zero */
        a.span_id[n % 8] |= 1;
        a.trace_flags = (uint8_t)(n & 1);
        char buf[56];
        REQUIRE(ituna_traceparent_format(&a, buf, sizeof(buf)) == 55);
        REQUIRE(strlen(buf) == 55);
        REQUIRE(ituna_traceparent_parse(buf, 55, &b, NULL) == ITUNA_OK);
        CHECK(memcmp(a.trace_id, b.trace_id, 16) == 0);
        CHECK(memcmp(a.span_id, b.span_id, 8) == 0);
        CHECK(a.trace_flags == b.trace_flags);
        char again[56];
        CHECK(ituna_traceparent_format(&b, again, sizeof(again)) == 55 && strcmp(buf, again) == 0);
    }
    return 0;
}

/* ---- tracestate ------------------------------------------------------------ */

typedef struct {
    const char *in;
    const char *want;   /* normalised form; NULL: rejected */
    const char *reason; /* expected reason when rejected */
} ts_case;

static const ts_case ts_cases[] = {
    { "", "", NULL },
    { "foo=1", "foo=1", NULL },
    { "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", NULL },
    /* OWS around members */
    { "foo=1 \t , \t bar=2, \t baz=3", "foo=1,bar=2,baz=3", NULL },
    { "foo=1\t \t,\t \tbar=2,\t \tbaz=3", "foo=1,bar=2,baz=3", NULL },
    { " foo=1", "foo=1", NULL },
    { "\tfoo=1", "foo=1", NULL },
    { "foo=1 ", "foo=1", NULL },
    { "foo=1\t", "foo=1", NULL },
    { "\t foo=1 \t", "foo=1", NULL },
    /* empty and whitespace-only members are dropped */
    { ",", "", NULL },
    { " , \t,", "", NULL },
    { ",,foo=1, ,\t,bar=2,", "foo=1,bar=2", NULL },
    /* leading spaces of a value are part of it; inner spaces too */
    { "foo=  a b", "foo=  a b", NULL },
    /* keys */
    { "abcdefghijklmnopqrstuvwxyz0123456789_-*/=1", "abcdefghijklmnopqrstuvwxyz0123456789_-*/=1", NULL },
    { "abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/=1",
      "abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/=1", NULL },
    { "1tenant@vendor=x", "1tenant@vendor=x", NULL }, /* tenant-id may start with a digit */
    { "t@v=x", "t@v=x", NULL },
    { "foo =1", NULL, "tracestate: invalid key" },
    { "FOO=1", NULL, "tracestate: invalid key" },
    { "Foo=1", NULL, "tracestate: invalid key" },
    { "foo.bar=1", NULL, "tracestate: invalid key" },
    { "1foo=1", NULL, "tracestate: invalid key" }, /* simple-key starts with lcalpha */
    { "_foo=1", NULL, "tracestate: invalid key" },
    { "=1", NULL, "tracestate: invalid key" },
    { "foo@=1,bar=2", NULL, "tracestate: invalid key" },
    { "@foo=1,bar=2", NULL, "tracestate: invalid key" },
    { "foo@@bar=1,bar=2", NULL, "tracestate: invalid key" },
    { "foo@bar@baz=1,bar=2", NULL, "tracestate: invalid key" },
    { "t@1v=1", NULL, "tracestate: invalid key" }, /* system-id starts with lcalpha */
    { "_t@v=1", NULL, "tracestate: invalid key" },
    /* values */
    { "foo=bar=baz", NULL, "tracestate: invalid value" },
    { "foo=,bar=3", NULL, "tracestate: invalid value" },
    { "foo= ", NULL, "tracestate: invalid value" },
    { "foo=a\tb", NULL, "tracestate: invalid value" },
    { "foo=a\x7f", NULL, "tracestate: invalid value" },
    { "foo=\xc3\xa9", NULL, "tracestate: invalid value" },
    { "foo=a\nb", NULL, "tracestate: invalid value" },
    { "foo", NULL, "tracestate: list-member without '='" },
    { "foo=1,bar", NULL, "tracestate: list-member without '='" },
    /* duplicates */
    { "foo=1,foo=1", NULL, "tracestate: duplicate key" },
    { "foo=1,foo=2", NULL, "tracestate: duplicate key" },
    { "a@b=1,bar=2,a@b=3", NULL, "tracestate: duplicate key" },
    { "foo=1,foo@x=2", "foo=1,foo@x=2", NULL }, /* different keys */
};

static int tracestate_vectors_parse_as_the_spec_says(void) {
    for (size_t i = 0; i < sizeof(ts_cases) / sizeof(ts_cases[0]); i++) {
        const ts_case *c = &ts_cases[i];
        ituna_span_context ctx;
        memset(&ctx, 0, sizeof(ctx));
        strcpy(ctx.tracestate, "old=1");
        ctx.tracestate_len = 5;
        ctx.trace_id[0] = 7;
        const char *reason = "unset";
        ituna_err err = ituna_tracestate_parse(c->in, strlen(c->in), &ctx, &reason);
        CHECK(ctx.trace_id[0] == 7); /* ids untouched */
        if (c->want) {
            if (err != ITUNA_OK) fprintf(stderr, "  case %zu \"%s\": %s\n", i, c->in, reason);
            CHECK(err == ITUNA_OK);
            CHECK(reason == NULL);
            CHECK_STR(ctx.tracestate, c->want);
            CHECK(ctx.tracestate_len == strlen(c->want));
        } else {
            if (err != ITUNA_ERR_PARSE) fprintf(stderr, "  case %zu \"%s\" was accepted\n", i, c->in);
            CHECK(err == ITUNA_ERR_PARSE);
            CHECK_STR(reason, c->reason);
            CHECK(ctx.tracestate_len == 0 && ctx.tracestate[0] == '\0');
        }
    }
    return 0;
}

static ituna_err ts_parse_str(const char *s, ituna_span_context *ctx, const char **reason) {
    memset(ctx, 0, sizeof(*ctx));
    return ituna_tracestate_parse(s, strlen(s), ctx, reason);
}

static int tracestate_allows_32_members_and_rejects_33(void) {
    char buf[1024];
    size_t n = 0;
    for (int i = 1; i <= 33; i++) n += (size_t)sprintf(buf + n, "%sbar%02d=%02d", i > 1 ? "," : "", i, i);
    ituna_span_context ctx;
    const char *reason = NULL;
    CHECK(ts_parse_str(buf, &ctx, &reason) == ITUNA_ERR_PARSE);
    CHECK_STR(reason, "tracestate: more than 32 list-members");
    /* Cut the 33rd: valid, all 32 kept in order. */
    char *last = strrchr(buf, ',');
    *last = '\0';
    CHECK(ts_parse_str(buf, &ctx, &reason) == ITUNA_OK);
    CHECK_STR(ctx.tracestate, buf);
    CHECK(strncmp(ctx.tracestate, "bar01=01,", 9) == 0);
    /* Empty members do not count towards the limit. */
    char padded[1100];
    snprintf(padded, sizeof(padded), ",, ,%s, ,", buf);
    CHECK(ts_parse_str(padded, &ctx, &reason) == ITUNA_OK);
    CHECK_STR(ctx.tracestate, buf);
    return 0;
}

static int tracestate_enforces_key_and_value_lengths(void) {
    char buf[1200];
    ituna_span_context ctx;
    const char *reason;
    /* simple-key: 256 ok, 257 not */
    memset(buf, 'z', 256);
    strcpy(buf + 256, "=1");
    CHECK(ts_parse_str(buf, &ctx, &reason) == ITUNA_OK);
    CHECK(ctx.tracestate_len == 258);
    memset(buf, 'z', 257);
    strcpy(buf + 257, "=1");
    CHECK(ts_parse_str(buf, &ctx, &reason) == ITUNA_ERR_PARSE);
    /* tenant 241 + system 14 ok */
    memset(buf, 't', 241);
    buf[241] = '@';
    memset(buf + 242, 'v', 14);
    strcpy(buf + 256, "=1");
    CHECK(ts_parse_str(buf, &ctx, &reason) == ITUNA_OK);
    /* tenant 242 not */
    memset(buf, 't', 242);
    strcpy(buf + 242, "@v=1");
    CHECK(ts_parse_str(buf, &ctx, &reason) == ITUNA_ERR_PARSE);
    CHECK_STR(reason, "tracestate: invalid key");
    /* system 15 not */
    strcpy(buf, "t@");
    memset(buf + 2, 'v', 15);
    strcpy(buf + 17, "=1");
    CHECK(ts_parse_str(buf, &ctx, &reason) == ITUNA_ERR_PARSE);
    /* value: 256 ok, 257 not; every allowed character */
    strcpy(buf, "k=");
    memset(buf + 2, 'v', 256);
    buf[258] = '\0';
    CHECK(ts_parse_str(buf, &ctx, &reason) == ITUNA_OK);
    CHECK(ctx.tracestate_len == 258);
    strcpy(buf, "k=");
    memset(buf + 2, 'v', 257);
    buf[259] = '\0';
    CHECK(ts_parse_str(buf, &ctx, &reason) == ITUNA_ERR_PARSE);
    CHECK_STR(reason, "tracestate: invalid value");
    size_t n = 0;
    n += (size_t)sprintf(buf, "foo=");
    for (int c = 0x20; c <= 0x7e; c++)
        if (c != ',' && c != '=') buf[n++] = (char)c;
    buf[n] = '\0';
    CHECK(ts_parse_str(buf, &ctx, &reason) == ITUNA_OK);
    CHECK_STR(ctx.tracestate, buf); /* leading space of the value kept */
    return 0;
}

/* An entry "<key>=<value>" of exactly len chars. */
static void entry_of(char *out, const char *key, size_t len) {
    size_t kl = strlen(key);
    memcpy(out, key, kl);
    out[kl] = '=';
    memset(out + kl + 1, 'x', len - kl - 1);
    out[len] = '\0';
}

static int tracestate_truncates_long_entries_first_then_from_the_end(void) {
    char in[2048], want[2048], e[8][300];
    ituna_span_context ctx;
    const char *reason;

    /* a(10) L(200) b(100) c(100) d(100): 514 chars -> drop L. */
    entry_of(e[0], "a", 10);
    entry_of(e[1], "l", 200);
    entry_of(e[2], "b", 100);
    entry_of(e[3], "c", 100);
    entry_of(e[4], "d", 100);
    snprintf(in, sizeof(in), "%s,%s,%s,%s,%s", e[0], e[1], e[2], e[3], e[4]);
    REQUIRE(strlen(in) == 514);
    snprintf(want, sizeof(want), "%s,%s,%s,%s", e[0], e[2], e[3], e[4]);
    CHECK(ts_parse_str(in, &ctx, &reason) == ITUNA_OK);
    CHECK_STR(ctx.tracestate, want);
    CHECK_STR(reason, "tracestate: truncated to 512 chars");

    /* L1(200) s(50) L2(200) t(60): 513 -> drop only the last long one, L2. */
    entry_of(e[0], "la", 200);
    entry_of(e[1], "s", 50);
    entry_of(e[2], "lb", 200);
    entry_of(e[3], "t", 60);
    snprintf(in, sizeof(in), "%s,%s,%s,%s", e[0], e[1], e[2], e[3]);
    REQUIRE(strlen(in) == 513);
    snprintf(want, sizeof(want), "%s,%s,%s", e[0], e[1], e[3]);
    CHECK(ts_parse_str(in, &ctx, &reason) == ITUNA_OK);
    CHECK_STR(ctx.tracestate, want);

    /* No long entries: 5 x 120 = 604 -> drop from the end to 4 (483). */
    for (int i = 0; i < 5; i++) {
        char k[4] = { 'k', (char)('a' + i), 0 };
        entry_of(e[i], k, 120);
    }
    snprintf(in, sizeof(in), "%s,%s,%s,%s,%s", e[0], e[1], e[2], e[3], e[4]);
    snprintf(want, sizeof(want), "%s,%s,%s,%s", e[0], e[1], e[2], e[3]);
    CHECK(ts_parse_str(in, &ctx, &reason) == ITUNA_OK);
    CHECK_STR(ctx.tracestate, want);

    /* Exactly 512 after normalisation (OWS removed) is kept whole. */
    entry_of(e[0], "a", 255);
    entry_of(e[1], "b", 256);
    snprintf(in, sizeof(in), " %s ,\t%s ", e[0], e[1]);
    CHECK(ts_parse_str(in, &ctx, &reason) == ITUNA_OK);
    CHECK(reason == NULL);
    CHECK(ctx.tracestate_len == 512);
    CHECK(ctx.tracestate[512] == '\0');

    /* Many long entries, 32 x 258 chars: only what fits from the front survives. */
    size_t n = 0;
    for (int i = 0; i < 32; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%02d", i);
        entry_of(e[0], k, 258);
        n += (size_t)snprintf(in + n, sizeof(in) - n, "%s%s", i ? "," : "", e[0]);
        if (n >= sizeof(in) - 300) break;
    }
    CHECK(ts_parse_str(in, &ctx, &reason) == ITUNA_OK);
    CHECK(ctx.tracestate_len <= ITUNA_TRACESTATE_MAX);
    CHECK(strncmp(ctx.tracestate, "k00=", 4) == 0);
    return 0;
}

/* ---- inject / extract ------------------------------------------------------ */

typedef struct {
    char key[8][32];
    char *value[8];
    int n;
} map_carrier;

static void map_set(void *c, const char *key, const char *value) {
    map_carrier *m = c;
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->key[i], key) == 0) {
            free(m->value[i]);
            m->value[i] = strdup(value);
            return;
        }
    if (m->n == 8) return;
    snprintf(m->key[m->n], sizeof(m->key[0]), "%s", key);
    m->value[m->n++] = strdup(value);
}

static const char *map_get(void *c, const char *key) {
    map_carrier *m = c;
    for (int i = 0; i < m->n; i++)
        if (strcasecmp(m->key[i], key) == 0) return m->value[i];
    return NULL;
}

static void map_free(map_carrier *m) {
    for (int i = 0; i < m->n; i++) free(m->value[i]);
    m->n = 0;
}

/* length-aware lookup: a value's length is what the carrier says, NUL or not */
static size_t nul_len = 0; /* when set, the traceparent value is this long */
static const char *map_getn(void *c, const char *key, size_t *len) {
    const char *v = map_get(c, key);
    if (v) *len = (nul_len && strcmp(key, "traceparent") == 0) ? nul_len : strlen(v);
    return v;
}

static int b3_single_and_multi_round_trip_and_parse(void) {
    ituna_span_context c, out;
    const char *why = NULL;
    REQUIRE(ituna_traceparent_parse("00-" TID "-" SID "-01", 55, &c, NULL) == ITUNA_OK);
    map_carrier m = { 0 };
    unsigned all = ITUNA_PROPAGATOR_B3 | ITUNA_PROPAGATOR_B3MULTI;
    CHECK(ituna_inject_with(all, &c, NULL, map_set, &m) == ITUNA_OK);
    CHECK_STR(map_get(&m, "b3"), TID "-" SID "-1");
    CHECK_STR(map_get(&m, "X-B3-TraceId"), TID);
    CHECK_STR(map_get(&m, "X-B3-SpanId"), SID);
    CHECK_STR(map_get(&m, "X-B3-Sampled"), "1");
    CHECK(map_get(&m, "traceparent") == NULL);
    CHECK(ituna_extract_with(ITUNA_PROPAGATOR_B3MULTI, map_getn, &m, &out, NULL, &why) == ITUNA_OK);
    CHECK(memcmp(out.trace_id, c.trace_id, 16) == 0 && memcmp(out.span_id, c.span_id, 8) == 0);
    CHECK(out.trace_flags == 1 && out.is_remote == 1);
    map_free(&m);
    /* single header forms */
    CHECK(ituna_b3_parse(TID "-" SID, strlen(TID "-" SID), &out, &why) == ITUNA_OK && out.trace_flags == 1);
    CHECK(ituna_b3_parse(TID "-" SID "-0", strlen(TID "-" SID "-0"), &out, &why) == ITUNA_OK &&
          out.trace_flags == 0);
    CHECK(ituna_b3_parse(TID "-" SID "-d-" SID2, strlen(TID "-" SID "-d-" SID2), &out, &why) == ITUNA_OK &&
          out.trace_flags == 1);
    CHECK(ituna_b3_parse("a3ce929d0e0e4736-" SID "-1", 35, &out, &why) == ITUNA_OK);
    CHECK(out.trace_id[0] == 0 && out.trace_id[7] == 0 && out.trace_id[8] == 0xa3); /* 64-bit id padded */
    CHECK(ituna_b3_parse("4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-1", 51, &out, &why) == ITUNA_OK);
    CHECK(ituna_b3_parse("1", 1, &out, &why) == ITUNA_ERR_NOT_FOUND);
    static const char *bad[] = { TID "-" SID "-x",        TID "-" SID "-1-12",
                                 "xyz-" SID "-1",         "00000000000000000000000000000000-" SID "-1",
                                 TID "-0000000000000000", TID "-" SID "0-1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(ituna_b3_parse(bad[i], strlen(bad[i]), &out, &why) == ITUNA_ERR_PARSE);
        CHECK(!ituna_span_context_is_valid(&out) && why != NULL);
    }
    /* X-B3-Flags: 1 (debug) samples; X-B3-Sampled: 0 does not */
    map_set(&m, "X-B3-TraceId", TID);
    map_set(&m, "X-B3-SpanId", SID);
    map_set(&m, "X-B3-Sampled", "0");
    CHECK(ituna_extract_with(all, map_getn, &m, &out, NULL, &why) == ITUNA_OK && out.trace_flags == 0);
    map_set(&m, "X-B3-Flags", "1");
    CHECK(ituna_extract_with(all, map_getn, &m, &out, NULL, &why) == ITUNA_OK && out.trace_flags == 1);
    map_free(&m);
    return 0;
}

static int propagator_set_parses_and_orders_extraction(void) {
    const char *unk = NULL;
    size_t ulen = 0;
    CHECK(ituna_propagators_parse(NULL, &unk, &ulen) ==
          (ITUNA_PROPAGATOR_TRACECONTEXT | ITUNA_PROPAGATOR_BAGGAGE));
    CHECK(ituna_propagators_parse(" TraceContext , b3,B3MULTI,,baggage ", &unk, &ulen) == 0xfu && !unk);
    CHECK(ituna_propagators_parse("none", &unk, &ulen) == 0 && !unk);
    CHECK(ituna_propagators_parse("b3,jaeger,xray", &unk, &ulen) == ITUNA_PROPAGATOR_B3);
    CHECK(unk && ulen == 6 && strncmp(unk, "jaeger", 6) == 0);
    /* tracecontext wins over b3 when both are there; b3 alone when the set lacks it */
    map_carrier m = { 0 };
    map_set(&m, "traceparent", "00-" TID "-" SID "-01");
    map_set(&m, "b3", TID2 "-" SID2 "-1");
    map_set(&m, "baggage", "user=alice,tier=gold%20plus");
    ituna_span_context out;
    ituna_baggage *bag = ituna_baggage_new();
    const char *why;
    CHECK(ituna_extract_with(0xfu, map_getn, &m, &out, bag, &why) == ITUNA_OK && out.span_id[0] == 0x00);
    CHECK_STR(ituna_baggage_get(bag, "tier"), "gold plus");
    CHECK(ituna_extract_with(ITUNA_PROPAGATOR_B3, map_getn, &m, &out, NULL, &why) == ITUNA_OK &&
          out.span_id[0] == 0x12);
    CHECK(ituna_extract_with(ITUNA_PROPAGATOR_BAGGAGE, map_getn, &m, &out, NULL, &why) ==
          ITUNA_ERR_NOT_FOUND);
    /* a trailing NUL inside the value's length makes it invalid (lengths, not C strings) */
    nul_len = 56;
    CHECK(ituna_extract_with(ITUNA_PROPAGATOR_TRACECONTEXT, map_getn, &m, &out, NULL, &why) ==
          ITUNA_ERR_PARSE);
    nul_len = 0;
    /* inject writes the baggage too */
    map_carrier w = { 0 };
    CHECK(ituna_inject_with(0xfu, &out, bag, map_set, &w) ==
          ITUNA_ERR_NOT_FOUND); /* no context: baggage only */
    CHECK(map_get(&w, "baggage") && strstr(map_get(&w, "baggage"), "tier=gold%20plus"));
    ituna_baggage_destroy(bag);
    map_free(&w);
    map_free(&m);
    return 0;
}

static int extract_reports_missing_and_invalid_traceparent(void) {
    map_carrier m = { 0 };
    ituna_span_context ctx;
    const char *reason = NULL;
    memset(&ctx, 0x5a, sizeof(ctx));
    CHECK(ituna_extract(map_get, &m, &ctx, &reason) == ITUNA_ERR_NOT_FOUND);
    CHECK_STR(reason, "no traceparent");
    CHECK(ctx_is_zero(&ctx));

    /* tracestate alone is ignored */
    map_set(&m, "tracestate", "foo=1");
    CHECK(ituna_extract(map_get, &m, &ctx, &reason) == ITUNA_ERR_NOT_FOUND);
    CHECK(ctx_is_zero(&ctx));

    map_set(&m, "traceparent", "ff-" TID "-" SID "-01");
    memset(&ctx, 0x5a, sizeof(ctx));
    CHECK(ituna_extract(map_get, &m, &ctx, &reason) == ITUNA_ERR_PARSE);
    CHECK_STR(reason, "traceparent: invalid version ff");
    CHECK(ctx_is_zero(&ctx)); /* the valid tracestate is not kept either */

    CHECK(ituna_extract(NULL, &m, &ctx, &reason) == ITUNA_ERR_INVALID_ARG);
    CHECK(ituna_extract(map_get, &m, NULL, &reason) == ITUNA_ERR_INVALID_ARG);
    map_free(&m);
    return 0;
}

static int extract_keeps_traceparent_when_tracestate_is_invalid(void) {
    map_carrier m = { 0 };
    ituna_span_context ctx;
    const char *reason = NULL;
    map_set(&m, "TraceParent", "00-" TID2 "-" SID2 "-00");
    map_set(&m, "TRACESTATE", "foo=1,foo=2");
    CHECK(ituna_extract(map_get, &m, &ctx, &reason) == ITUNA_OK);
    CHECK_STR(reason, "tracestate: duplicate key");
    CHECK(ituna_span_context_is_valid(&ctx));
    CHECK(ctx.tracestate_len == 0);
    char t[33];
    hex_of(ctx.trace_id, 16, t);
    CHECK_STR(t, TID2);

    map_set(&m, "TRACESTATE", " foo=1 , bar=2 ,");
    CHECK(ituna_extract(map_get, &m, &ctx, &reason) == ITUNA_OK);
    CHECK(reason == NULL);
    CHECK_STR(ctx.tracestate, "foo=1,bar=2");
    CHECK(ctx.is_remote == 1);
    map_free(&m);
    return 0;
}

static int inject_then_extract_round_trips(void) {
    map_carrier m = { 0 };
    ituna_span_context a, b;
    REQUIRE(ituna_traceparent_parse("00-" TID "-" SID "-01", 55, &a, NULL) == ITUNA_OK);
    REQUIRE(ituna_tracestate_parse("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", 39, &a, NULL) == ITUNA_OK);
    CHECK(ituna_inject(&a, map_set, &m) == ITUNA_OK);
    CHECK_STR(map_get(&m, "traceparent"), "00-" TID "-" SID "-01");
    CHECK_STR(map_get(&m, "tracestate"), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    CHECK(ituna_extract(map_get, &m, &b, NULL) == ITUNA_OK);
    CHECK(memcmp(a.trace_id, b.trace_id, 16) == 0 && memcmp(a.span_id, b.span_id, 8) == 0);
    CHECK(a.trace_flags == b.trace_flags);
    CHECK_STR(a.tracestate, b.tracestate);
    map_free(&m);

    /* No tracestate: only traceparent is written. */
    a.tracestate_len = 0;
    a.tracestate[0] = '\0';
    CHECK(ituna_inject(&a, map_set, &m) == ITUNA_OK);
    CHECK(m.n == 1 && map_get(&m, "tracestate") == NULL);
    map_free(&m);

    /* Invalid context: nothing written. */
    memset(&a, 0, sizeof(a));
    CHECK(ituna_inject(&a, map_set, &m) == ITUNA_ERR_NOT_FOUND);
    CHECK(m.n == 0);
    CHECK(ituna_inject(&a, NULL, &m) == ITUNA_ERR_INVALID_ARG);
    return 0;
}

static int inject_null_uses_the_current_context(void) {
    map_carrier m = { 0 };
    ituna_span_context cur;
    if (!ituna_context_current(&cur)) {
        CHECK(ituna_inject(NULL, map_set, &m) == ITUNA_ERR_NOT_FOUND);
        CHECK(m.n == 0);
    }
    ituna_span_context a;
    REQUIRE(ituna_traceparent_parse("00-" TID2 "-" SID2 "-01", 55, &a, NULL) == ITUNA_OK);
    int token = -1;
    REQUIRE(ituna_context_attach(&a, &token) == ITUNA_OK);
    CHECK(ituna_inject(NULL, map_set, &m) == ITUNA_OK);
    CHECK_STR(map_get(&m, "traceparent"), "00-" TID2 "-" SID2 "-01");
    CHECK(ituna_context_detach(token) == ITUNA_OK);
    map_free(&m);
    return 0;
}

/* ---- robustness ------------------------------------------------------------- */

static uint32_t rng_state = 2463534242u;
static uint32_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Mutated and random inputs: a failure must leave a zeroed context, a success
 * must re-format and re-parse to the same ids; tracestate normalisation must be
 * idempotent and within 512 chars. Run under ASan this also proves no overreads
 * (inputs are heap copies of exactly len bytes). */
static int parsers_survive_mutated_input(void) {
    static const char alphabet[] = "0123456789abcdefABCDEF-=,@ \t_*/xz;%\x7f\x80";
    const char *seeds[] = { "00-" TID "-" SID "-01", "cc-" TID2 "-" SID2 "-01-future",
                            "foo=1,bar@baz=2 , x=y z", "a=1,,b= 2\t" };
    int accepted_tp = 0, accepted_ts = 0;
    for (int n = 0; n < 40000; n++) {
        const char *seed = seeds[n % 4];
        size_t len = strlen(seed);
        char tmp[128];
        memcpy(tmp, seed, len);
        int edits = 1 + (int)(rng() % 3);
        for (int e = 0; e < edits; e++) {
            uint32_t r = rng();
            switch (r % 4) {
            case 0:
                if (len) tmp[r / 4 % len] = alphabet[(r >> 12) % (sizeof(alphabet) - 1)];
                break;
            case 1:
                if (len) len--;
                break; /* cut the end */
            case 2:
                if (len < sizeof(tmp) - 1) tmp[len++] = alphabet[(r >> 12) % (sizeof(alphabet) - 1)];
                break;
            default:
                if (len) tmp[r / 4 % len] = (char)(r >> 16);
                break;
            }
        }
        char *in = malloc(len ? len : 1);
        REQUIRE(in);
        memcpy(in, tmp, len);
        ituna_span_context ctx, again;
        const char *reason = NULL;
        if (ituna_traceparent_parse(in, len, &ctx, &reason) == ITUNA_OK) {
            accepted_tp++;
            char buf[56];
            CHECK(ituna_traceparent_format(&ctx, buf, sizeof(buf)) == 55);
            CHECK(ituna_traceparent_parse(buf, 55, &again, NULL) == ITUNA_OK);
            CHECK(memcmp(ctx.trace_id, again.trace_id, 24) == 0);
        } else {
            CHECK(ctx_is_zero(&ctx));
            CHECK(reason != NULL && strncmp(reason, "traceparent: ", 13) == 0);
        }
        memset(&ctx, 0, sizeof(ctx));
        if (ituna_tracestate_parse(in, len, &ctx, &reason) == ITUNA_OK) {
            accepted_ts++;
            CHECK(ctx.tracestate_len <= ITUNA_TRACESTATE_MAX && strlen(ctx.tracestate) == ctx.tracestate_len);
            memset(&again, 0, sizeof(again));
            CHECK(ituna_tracestate_parse(ctx.tracestate, ctx.tracestate_len, &again, NULL) == ITUNA_OK);
            CHECK_STR(again.tracestate, ctx.tracestate);
        } else {
            CHECK(ctx.tracestate_len == 0 && reason != NULL);
        }
        free(in);
    }
    /* Both outcomes were exercised, or the loop proved nothing. */
    CHECK(accepted_tp > 100 && accepted_tp < 20000);
    CHECK(accepted_ts > 100 && accepted_ts < 40000);
    return 0;
}

static int span_context_from_hex_checks_ids_without_a_traceparent(void) {
    ituna_span_context c;
    const char *why = NULL;
    CHECK(ituna_span_context_from_hex("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1, "k=v", &c,
                                      &why) == ITUNA_OK);
    char tid[33], sid[17];
    ituna_trace_id_hex(&c, tid);
    ituna_span_id_hex(&c, sid);
    CHECK_STR(tid, "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK_STR(sid, "00f067aa0ba902b7");
    char raw[18]; /* ids a binding keeps as bytes: no NUL written */
    memset(raw, '#', sizeof raw);
    ituna_hex_encode(c.span_id, 8, raw);
    CHECK(memcmp(raw, "00f067aa0ba902b7##", 18) == 0);
    CHECK(c.trace_flags == 1 && c.is_remote == 1);
    CHECK_STR(c.tracestate, "k=v");
    CHECK(ituna_span_context_from_hex("4BF92F3577B34DA6A3CE929D0E0E4736", "00f067aa0ba902b7", 1, NULL, &c,
                                      &why) == ITUNA_ERR_PARSE);
    CHECK(why && strstr(why, "trace_id"));
    CHECK(ituna_span_context_from_hex("4bf92f3577b34da6a3ce929d0e0e4736", "0000000000000000", 1, NULL, &c,
                                      &why) == ITUNA_ERR_PARSE);
    CHECK(ituna_span_context_from_hex("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7-", 1, NULL, &c,
                                      &why) == ITUNA_ERR_PARSE);
    CHECK(ituna_span_context_from_hex("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 256, NULL, &c,
                                      &why) == ITUNA_ERR_PARSE);
    return 0;
}

int main(void) {
    RUN(traceparent_vectors_parse_as_the_spec_says);
    RUN(traceparent_len_bounds_the_read);
    RUN(traceparent_format_writes_version_00_and_only_the_sampled_bit);
    RUN(traceparent_round_trips_random_ids);
    RUN(tracestate_vectors_parse_as_the_spec_says);
    RUN(tracestate_allows_32_members_and_rejects_33);
    RUN(tracestate_enforces_key_and_value_lengths);
    RUN(tracestate_truncates_long_entries_first_then_from_the_end);
    RUN(extract_reports_missing_and_invalid_traceparent);
    RUN(extract_keeps_traceparent_when_tracestate_is_invalid);
    RUN(inject_then_extract_round_trips);
    RUN(inject_null_uses_the_current_context);
    RUN(parsers_survive_mutated_input);
    RUN(b3_single_and_multi_round_trip_and_parse);
    RUN(propagator_set_parses_and_orders_extraction);
    RUN(span_context_from_hex_checks_ids_without_a_traceparent);
    TEST_MAIN_END();
}
