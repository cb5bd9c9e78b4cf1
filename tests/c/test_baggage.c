/* test_baggage.c - W3C Baggage vectors (valid and invalid), limits, the
 * "invalid input leaves the baggage unchanged" rule, percent-encoding and
 * round trips through format and parse. */
#include <stdlib.h>

#include "internal.h"
#include "testutil.h"

typedef struct {
    const char *key, *value, *meta; /* meta NULL: no properties */
} kv;

typedef struct {
    const char *in;
    int n; /* expected entries; -1: rejected */
    kv want[4];
    const char *reason;
} bg_case;

static const bg_case bg_cases[] = {
    { "userId=alice,serverNode=DF%2028,isProduction=false",
      3,
      { { "userId", "alice", NULL }, { "serverNode", "DF 28", NULL }, { "isProduction", "false", NULL } },
      NULL },
    { "userId =   alice, serverNode = DF%2028 ,\tisProduction = false",
      3,
      { { "userId", "alice", NULL }, { "serverNode", "DF 28", NULL }, { "isProduction", "false", NULL } },
      NULL },
    { "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue",
      3,
      { { "key1", "value1", "property1;property2" },
        { "key2", "value2", NULL },
        { "key3", "value3", "propertyKey=propertyValue" } },
      NULL },
    { "k=v ; p1 = x ; p2 ", 1, { { "k", "v", "p1=x;p2" } }, NULL },
    { "k=a=b==", 1, { { "k", "a=b==", NULL } }, NULL }, /* '=' inside a value */
    { "k=", 1, { { "k", "", NULL } }, NULL },           /* empty value */
    { "k= ;p", 1, { { "k", "", "p" } }, NULL },
    { "!#$%&'*+-.^_`|~09AZaz=v", 1, { { "!#$%&'*+-.^_`|~09AZaz", "v", NULL } }, NULL }, /* every tchar */
    { "k=%E2%82%AC%e2%82%ac",
      1,
      { { "k", "\xe2\x82\xac\xe2\x82\xac", NULL } },
      NULL },                                                  /* UTF-8, both hex cases */
    { "k=%FF", 1, { { "k", "\xef\xbf\xbd", NULL } }, NULL },   /* not UTF-8 -> U+FFFD */
    { "k=a%C3", 1, { { "k", "a\xef\xbf\xbd", NULL } }, NULL }, /* cut sequence */
    { "k=%ED%A0%80", 1, { { "k", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", NULL } }, NULL }, /* surrogate */
    { "k=%25%2C%3B", 1, { { "k", "%,;", NULL } }, NULL },
    { "a=1,,b=2, ,", 2, { { "a", "1", NULL }, { "b", "2", NULL } }, NULL }, /* empty members skipped */
    { "", 0, { { 0 } }, NULL },
    { " \t", 0, { { 0 } }, NULL },
    { "k=1,k=2", 1, { { "k", "2", NULL } }, NULL }, /* last one wins */

    { "k", -1, { { 0 } }, "baggage: list-member without '='" },
    { "k;p=1", -1, { { 0 } }, "baggage: list-member without '='" },
    { "=v", -1, { { 0 } }, "baggage: invalid key" },
    { "k y=1", -1, { { 0 } }, "baggage: invalid key" },
    { "k@x=1", -1, { { 0 } }, "baggage: invalid key" },
    { "k\"=1", -1, { { 0 } }, "baggage: invalid key" },
    { "a=1,k=a b", -1, { { 0 } }, "baggage: invalid value character" },
    { "k=\"x\"", -1, { { 0 } }, "baggage: invalid value character" },
    { "k=a\\b", -1, { { 0 } }, "baggage: invalid value character" },
    { "k=\xc3\xa9", -1, { { 0 } }, "baggage: invalid value character" },
    { "k=a\tb", -1, { { 0 } }, "baggage: invalid value character" },
    { "k=%zz", -1, { { 0 } }, "baggage: bad percent-encoding" },
    { "k=%4", -1, { { 0 } }, "baggage: bad percent-encoding" },
    { "k=abc%", -1, { { 0 } }, "baggage: bad percent-encoding" },
    { "k=%00", -1, { { 0 } }, "baggage: value contains %00" },
    { "k=1;", -1, { { 0 } }, "baggage: invalid property" },
    { "k=1;;p", -1, { { 0 } }, "baggage: invalid property" },
    { "k=1;p q", -1, { { 0 } }, "baggage: invalid property" },
    { "k=1;=v", -1, { { 0 } }, "baggage: invalid property" },
    { "k=1;p=a\"b", -1, { { 0 } }, "baggage: invalid property" },
};

static int baggage_vectors_parse_as_the_spec_says(void) {
    for (size_t i = 0; i < sizeof(bg_cases) / sizeof(bg_cases[0]); i++) {
        const bg_case *c = &bg_cases[i];
        ituna_baggage *b = ituna_baggage_new();
        REQUIRE(b);
        REQUIRE(ituna_baggage_set(b, "pre", "existing", NULL) == ITUNA_OK);
        const char *reason = "unset";
        ituna_err err = ituna_baggage_parse(b, c->in, strlen(c->in), &reason);
        if (c->n >= 0) {
            if (err != ITUNA_OK) fprintf(stderr, "  case %zu \"%s\": %s\n", i, c->in, reason);
            CHECK(err == ITUNA_OK);
            CHECK(reason == NULL);
            CHECK(ituna_baggage_count(b) == (size_t)c->n + 1);
            for (int j = 0; j < c->n; j++) {
                const char *k, *v, *m;
                CHECK(ituna_baggage_entry(b, (size_t)j + 1, &k, &v, &m) == 1);
                CHECK_STR(k, c->want[j].key);
                CHECK_STR(v, c->want[j].value);
                if (c->want[j].meta)
                    CHECK_STR(m, c->want[j].meta);
                else
                    CHECK(m == NULL);
                CHECK_STR(ituna_baggage_get(b, c->want[j].key), c->want[j].value);
            }
        } else {
            if (err != ITUNA_ERR_PARSE) fprintf(stderr, "  case %zu \"%s\" was accepted\n", i, c->in);
            CHECK(err == ITUNA_ERR_PARSE);
            CHECK_STR(reason, c->reason);
            /* unchanged */
            CHECK(ituna_baggage_count(b) == 1);
            CHECK_STR(ituna_baggage_get(b, "pre"), "existing");
        }
        ituna_baggage_destroy(b);
    }
    return 0;
}

static int baggage_parse_adds_to_and_replaces_what_is_there(void) {
    ituna_baggage *b = ituna_baggage_new();
    REQUIRE(b);
    CHECK(ituna_baggage_parse(b, "a=1,b=2", 7, NULL) == ITUNA_OK);
    CHECK(ituna_baggage_parse(b, "b=3;p,c=4", 9, NULL) == ITUNA_OK);
    CHECK(ituna_baggage_count(b) == 3);
    const char *k, *v, *m;
    CHECK(ituna_baggage_entry(b, 1, &k, &v, &m) && strcmp(k, "b") == 0 && strcmp(v, "3") == 0 && m &&
          strcmp(m, "p") == 0);
    CHECK_STR(ituna_baggage_get(b, "c"), "4");
    CHECK(ituna_baggage_get(b, "nope") == NULL);
    CHECK(ituna_baggage_entry(b, 3, &k, &v, &m) == 0);
    /* A failure in the second member leaves even the valid first one out. */
    CHECK(ituna_baggage_parse(b, "d=5,e=%G0", 9, NULL) == ITUNA_ERR_PARSE);
    CHECK(ituna_baggage_get(b, "d") == NULL);
    CHECK(ituna_baggage_count(b) == 3);
    CHECK(ituna_baggage_parse(NULL, "a=1", 3, NULL) == ITUNA_ERR_INVALID_ARG);
    ituna_baggage_destroy(b);
    ituna_baggage_destroy(NULL);
    return 0;
}

static int baggage_enforces_180_members_and_8192_bytes(void) {
    char *s = malloc(20000);
    REQUIRE(s);
    size_t n = 0;
    for (int i = 0; i < 181; i++) n += (size_t)sprintf(s + n, "%sk%03d=v", i ? "," : "", i);
    ituna_baggage *b = ituna_baggage_new();
    const char *reason = NULL;
    CHECK(ituna_baggage_parse(b, s, n, &reason) == ITUNA_ERR_PARSE);
    CHECK_STR(reason, "baggage: more than 180 list-members");
    CHECK(ituna_baggage_count(b) == 0);
    char *last = strrchr(s, ',');
    *last = '\0';
    CHECK(ituna_baggage_parse(b, s, strlen(s), &reason) == ITUNA_OK);
    CHECK(ituna_baggage_count(b) == 180);
    /* Full: a new key is refused by parse and by set; replacing one is fine. */
    CHECK(ituna_baggage_parse(b, "new=1", 5, &reason) == ITUNA_ERR_PARSE);
    CHECK_STR(reason, "baggage: more than 180 list-members");
    CHECK(ituna_baggage_set(b, "new", "1", NULL) == ITUNA_ERR_INVALID_ARG);
    CHECK(ituna_baggage_parse(b, "k000=replaced", 13, &reason) == ITUNA_OK);
    CHECK_STR(ituna_baggage_get(b, "k000"), "replaced");
    CHECK(ituna_baggage_count(b) == 180);
    ituna_baggage_destroy(b);

    /* 8192 bytes accepted, 8193 not. */
    b = ituna_baggage_new();
    memset(s, 'x', 8192);
    memcpy(s, "k=", 2);
    CHECK(ituna_baggage_parse(b, s, 8192, &reason) == ITUNA_OK);
    CHECK(strlen(ituna_baggage_get(b, "k")) == 8190);
    s[8192] = 'x';
    CHECK(ituna_baggage_parse(b, s, 8193, &reason) == ITUNA_ERR_PARSE);
    CHECK_STR(reason, "baggage: longer than 8192 bytes");
    ituna_baggage_destroy(b);
    free(s);
    return 0;
}

static int baggage_format_percent_encodes_values(void) {
    ituna_baggage *b = ituna_baggage_new();
    REQUIRE(b);
    CHECK(ituna_baggage_set(b, "a", "hello world, ; % \"\xc3\xa9\"\\", NULL) == ITUNA_OK);
    CHECK(ituna_baggage_set(b, "userId", "alice", " p1 ;p2 = v ") == ITUNA_OK);
    CHECK(ituna_baggage_set(b, "empty", "", NULL) == ITUNA_OK);
    char buf[256];
    const char *want = "a=hello%20world%2C%20%3B%20%25%20%22%C3%A9%22%5C,userId=alice;p1;p2=v,empty=";
    size_t n = ituna_baggage_format(b, buf, sizeof(buf));
    CHECK(n == strlen(want));
    CHECK_STR(buf, want);
    /* snprintf-like: the full length is returned, the buffer holds a NUL-terminated prefix. */
    char small[10];
    CHECK(ituna_baggage_format(b, small, sizeof(small)) == strlen(want));
    CHECK(strlen(small) == 9 && strncmp(small, want, 9) == 0);
    CHECK(ituna_baggage_format(b, NULL, 0) == strlen(want));
    /* set validates key and metadata; replacing keeps the position */
    CHECK(ituna_baggage_set(b, "bad key", "v", NULL) == ITUNA_ERR_INVALID_ARG);
    CHECK(ituna_baggage_set(b, "", "v", NULL) == ITUNA_ERR_INVALID_ARG);
    CHECK(ituna_baggage_set(b, "k", "v", "p;") == ITUNA_ERR_INVALID_ARG);
    CHECK(ituna_baggage_set(b, "k", NULL, NULL) == ITUNA_ERR_INVALID_ARG);
    CHECK(ituna_baggage_set(b, "a", "x", "") == ITUNA_OK); /* "" = no properties */
    n = ituna_baggage_format(b, buf, sizeof(buf));
    CHECK_STR(buf, "a=x,userId=alice;p1;p2=v,empty=");
    ituna_baggage_destroy(b);
    return 0;
}

static int baggage_round_trips_every_byte(void) {
    /* Every ASCII byte 0x01-0x7f in a value, plus multi-byte UTF-8, survives
     * format -> parse (invalid UTF-8 excluded: it becomes U+FFFD by design). */
    char val[200];
    size_t n = 0;
    for (int c = 1; c < 0x80; c++) val[n++] = (char)c;
    memcpy(val + n, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x8d\xa3", 9);
    n += 9;
    val[n] = '\0';
    ituna_baggage *a = ituna_baggage_new(), *b = ituna_baggage_new();
    REQUIRE(a && b);
    CHECK(ituna_baggage_set(a, "all", val, "p=1") == ITUNA_OK);
    CHECK(ituna_baggage_set(a, "second", "2", NULL) == ITUNA_OK);
    size_t need = ituna_baggage_format(a, NULL, 0);
    char *buf = malloc(need + 1);
    REQUIRE(buf);
    CHECK(ituna_baggage_format(a, buf, need + 1) == need);
    const char *reason = NULL;
    CHECK(ituna_baggage_parse(b, buf, need, &reason) == ITUNA_OK);
    CHECK(ituna_baggage_count(b) == 2);
    CHECK_STR(ituna_baggage_get(b, "all"), val);
    const char *k, *v, *m;
    CHECK(ituna_baggage_entry(b, 0, &k, &v, &m) && m && strcmp(m, "p=1") == 0);
    /* and formatting the parsed copy gives the same header */
    char *again = malloc(need + 1);
    REQUIRE(again);
    CHECK(ituna_baggage_format(b, again, need + 1) == need);
    CHECK_STR(again, buf);
    free(buf);
    free(again);
    ituna_baggage_destroy(a);
    ituna_baggage_destroy(b);
    return 0;
}

static uint32_t rng_state = 88172645u;
static uint32_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Mutated input: a rejected header leaves the baggage as it was; an accepted
 * one formats to a header that parses back to the same entries. Inputs are
 * heap copies of exactly len bytes, so ASan catches any overread. */
static int baggage_parse_survives_mutated_input(void) {
    static const char alphabet[] = "=,;% \t\"\\abcXYZ09%%E2%82%ACzz\x80\xff";
    const char *seeds[] = { "userId=alice,serverNode=DF%2028;p=1;q", "k=%E2%82%AC, a = b ;x", "a=1,,b=2" };
    int accepted = 0;
    for (int n = 0; n < 30000; n++) {
        const char *seed = seeds[n % 3];
        size_t len = strlen(seed);
        char tmp[96];
        memcpy(tmp, seed, len);
        for (int e = 0, edits = 1 + (int)(rng() % 3); e < edits; e++) {
            uint32_t r = rng();
            char c = (r & 0x100000) ? (char)(r >> 24) : alphabet[(r >> 12) % (sizeof(alphabet) - 1)];
            if (r % 3 == 0 && len)
                tmp[r / 3 % len] = c;
            else if (r % 3 == 1 && len)
                len--;
            else if (len < sizeof(tmp))
                tmp[len++] = c;
        }
        char *in = malloc(len ? len : 1);
        REQUIRE(in);
        memcpy(in, tmp, len);
        ituna_baggage *b = ituna_baggage_new(), *c2 = ituna_baggage_new();
        REQUIRE(b && c2);
        REQUIRE(ituna_baggage_set(b, "pre", "x", NULL) == ITUNA_OK);
        const char *reason = NULL;
        if (ituna_baggage_parse(b, in, len, &reason) == ITUNA_OK) {
            accepted++;
            char out[1024];
            size_t need = ituna_baggage_format(b, out, sizeof(out));
            REQUIRE(need < sizeof(out));
            CHECK(ituna_baggage_parse(c2, out, need, NULL) == ITUNA_OK);
            CHECK(ituna_baggage_count(c2) == ituna_baggage_count(b));
            for (size_t i = 0; i < ituna_baggage_count(b); i++) {
                const char *k, *v, *m, *k2, *v2, *m2;
                ituna_baggage_entry(b, i, &k, &v, &m);
                CHECK(ituna_baggage_entry(c2, i, &k2, &v2, &m2) == 1);
                CHECK_STR(k, k2);
                CHECK_STR(v, v2);
                CHECK((m == NULL) == (m2 == NULL));
                if (m && m2) CHECK_STR(m, m2);
            }
        } else {
            CHECK(reason != NULL && strncmp(reason, "baggage: ", 9) == 0);
            CHECK(ituna_baggage_count(b) == 1);
            CHECK_STR(ituna_baggage_get(b, "pre"), "x");
        }
        ituna_baggage_destroy(b);
        ituna_baggage_destroy(c2);
        free(in);
    }
    CHECK(accepted > 100 && accepted < 29000);
    return 0;
}

int main(void) {
    RUN(baggage_vectors_parse_as_the_spec_says);
    RUN(baggage_parse_adds_to_and_replaces_what_is_there);
    RUN(baggage_enforces_180_members_and_8192_bytes);
    RUN(baggage_format_percent_encodes_values);
    RUN(baggage_round_trips_every_byte);
    RUN(baggage_parse_survives_mutated_input);
    TEST_MAIN_END();
}
