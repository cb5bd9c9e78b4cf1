/* baggage.c - W3C Baggage: the opaque growable entry list, header parsing
 * (percent-decoding values, validating and keeping properties as metadata) and
 * formatting (percent-encoding values).
 *
 * Decisions where the spec leaves room:
 * - Limits: a header over 8192 bytes, or more than 180 list-members in it or in
 *   the merged result, is rejected whole (b unchanged).
 * - Empty / whitespace-only list-members (what joining several headers tends
 *   to produce) are skipped rather than failing the whole header.
 * - A repeated key replaces the earlier value in place (last one wins).
 * - Values: a malformed %-escape or %00 makes the header invalid; decoded bytes
 *   that are not UTF-8 become U+FFFD, as the spec asks.
 * - Metadata is the properties after the first ';', each validated and stored
 *   with the OWS around ';' and '=' removed (the spec says to trim it), e.g.
 *   "k1=v1;flag".
 */
#include "internal.h"

#include <stdlib.h>

#define BAGGAGE_MAX_MEMBERS 180
#define BAGGAGE_MAX_BYTES   8192

typedef struct bg_entry {
    char *key; /* one allocation: key\0value\0meta\0 */
    char *value;
    char *meta; /* NULL when there are no properties */
} bg_entry;

struct ituna_baggage {
    bg_entry *items;
    size_t count, cap;
};

/* ---- character classes ----------------------------------------------------- */

/* RFC 7230 tchar. */
static int is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~': return 1;
    default: return 0;
    }
}

/* baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E */
static int is_boctet(unsigned char c) {
    return c >= 0x21 && c <= 0x7e && c != '"' && c != ',' && c != ';' && c != '\\';
}

static int is_ows(char c) {
    return c == ' ' || c == '\t';
}

static int token_ok(const char *p, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)p[i])) return 0;
    return 1;
}

static int octets_ok(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_boctet((unsigned char)p[i])) return 0;
    return 1;
}

static void trim(const char **a, const char **b) {
    while (*a < *b && is_ows(**a)) (*a)++;
    while (*b > *a && is_ows((*b)[-1])) (*b)--;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Length of a valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n) {
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0; /* no overlongs */
        if (c == 0xed) hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f; /* <= U+10FFFF */
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf) return 0;
    return len;
}

/* Percent-decode v[0..n) into out (room for 3n+1 bytes), replacing invalid
 * UTF-8 with U+FFFD. Returns the decoded length or (size_t)-1 with *why set. */
static size_t pct_decode(const char *v, size_t n, char *out, const char **why) {
    /* Pass 1: raw bytes (decoded in place into the tail of out). */
    char *raw = out + 2 * n; /* n bytes of room at the end, decoded <= n */
    size_t rn = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '%') {
            if (i + 2 >= n) {
                *why = "baggage: bad percent-encoding";
                return (size_t)-1;
            }
            int hv = hexval(v[i + 1]), lv = hexval(v[i + 2]);
            if (hv < 0 || lv < 0) {
                *why = "baggage: bad percent-encoding";
                return (size_t)-1;
            }
            char c = (char)(hv * 16 + lv);
            if (c == '\0') {
                *why = "baggage: value contains %00";
                return (size_t)-1;
            }
            raw[rn++] = c;
            i += 2;
        } else {
            raw[rn++] = v[i];
        }
    }
    /* Pass 2: copy to the front, validating UTF-8. Writes never overtake the
     * raw cursor: each raw byte produces at most 3 output bytes and the raw
     * data starts 2n bytes in. */
    size_t o = 0;
    const unsigned char *r = (const unsigned char *)raw;
    for (size_t i = 0; i < rn;) {
        size_t l = utf8_seq(r + i, rn - i);
        if (l == 0) {
            out[o++] = (char)0xef;
            out[o++] = (char)0xbf;
            out[o++] = (char)0xbd;
            i++;
        } else {
            memmove(out + o, r + i, l);
            o += l;
            i += l;
        }
    }
    out[o] = '\0';
    return o;
}

/* Validate properties p[0..n) (text after the first ';') and write the
 * normalised form to out (room for n+1). Returns length or (size_t)-1. */
static size_t props_normalise(const char *p, size_t n, char *out) {
    size_t o = 0;
    const char *end = p + n, *cur = p;
    for (;;) {
        const char *semi = memchr(cur, ';', (size_t)(end - cur));
        const char *a = cur, *b = semi ? semi : end;
        trim(&a, &b);
        const char *eq = memchr(a, '=', (size_t)(b - a));
        const char *ka = a, *kb = eq ? eq : b;
        trim(&ka, &kb);
        if (!token_ok(ka, (size_t)(kb - ka))) return (size_t)-1;
        if (o) out[o++] = ';';
        memcpy(out + o, ka, (size_t)(kb - ka));
        o += (size_t)(kb - ka);
        if (eq) {
            const char *va = eq + 1, *vb = b;
            trim(&va, &vb);
            if (!octets_ok(va, (size_t)(vb - va))) return (size_t)-1;
            out[o++] = '=';
            memcpy(out + o, va, (size_t)(vb - va));
            o += (size_t)(vb - va);
        }
        if (!semi) break;
        cur = semi + 1;
    }
    out[o] = '\0';
    return o;
}

/* ---- entry list -------------------------------------------------------------- */

static int entry_make(bg_entry *e, const char *k, size_t kn, const char *v, size_t vn, const char *m,
                      size_t mn, int has_meta) {
    char *blk = malloc(kn + vn + mn + 3);
    if (!blk) return 0;
    memcpy(blk, k, kn);
    blk[kn] = '\0';
    memcpy(blk + kn + 1, v, vn);
    blk[kn + 1 + vn] = '\0';
    memcpy(blk + kn + vn + 2, m, mn);
    blk[kn + vn + 2 + mn] = '\0';
    e->key = blk;
    e->value = blk + kn + 1;
    e->meta = has_meta ? blk + kn + vn + 2 : NULL;
    return 1;
}

static long find_key(const bg_entry *items, size_t count, const char *key) {
    for (size_t i = 0; i < count; i++)
        if (strcmp(items[i].key, key) == 0) return (long)i;
    return -1;
}

static int reserve(ituna_baggage *b, size_t need) {
    if (need <= b->cap) return 1;
    size_t cap = b->cap ? b->cap * 2 : 8;
    while (cap < need) cap *= 2;
    bg_entry *n = realloc(b->items, cap * sizeof(*n));
    if (!n) return 0;
    b->items = n;
    b->cap = cap;
    return 1;
}

/* Put e into b, replacing an entry with the same key (b takes e's block).
 * Capacity for one more must already be reserved when the key is new. */
static void put_entry(ituna_baggage *b, bg_entry e) {
    long i = find_key(b->items, b->count, e.key);
    if (i >= 0) {
        free(b->items[i].key);
        b->items[i] = e;
    } else {
        b->items[b->count++] = e;
    }
}

ituna_baggage *ituna_baggage_new(void) {
    return calloc(1, sizeof(ituna_baggage));
}

void ituna_baggage_destroy(ituna_baggage *b) {
    if (!b) return;
    for (size_t i = 0; i < b->count; i++) free(b->items[i].key);
    free(b->items);
    free(b);
}

ituna_err ituna_baggage_set(ituna_baggage *b, const char *key, const char *value, const char *metadata) {
    if (!b || !key || !value || !token_ok(key, strlen(key))) return ITUNA_ERR_INVALID_ARG;
    size_t kn = strlen(key), vn = strlen(value), mn = 0;
    char *meta = NULL;
    if (metadata && *metadata) { /* "" means no properties, like NULL */
        size_t n = strlen(metadata);
        meta = malloc(n + 1);
        if (!meta) return ITUNA_ERR_NOMEM;
        mn = props_normalise(metadata, n, meta);
        if (mn == (size_t)-1) {
            free(meta);
            return ITUNA_ERR_INVALID_ARG;
        }
    }
    int is_new = find_key(b->items, b->count, key) < 0;
    if (is_new && b->count >= BAGGAGE_MAX_MEMBERS) {
        free(meta);
        return ITUNA_ERR_INVALID_ARG;
    }
    bg_entry e;
    if (!reserve(b, b->count + 1) ||
        !entry_make(&e, key, kn, value, vn, meta ? meta : "", mn, meta != NULL)) {
        free(meta);
        return ITUNA_ERR_NOMEM;
    }
    free(meta);
    put_entry(b, e);
    return ITUNA_OK;
}

const char *ituna_baggage_get(const ituna_baggage *b, const char *key) {
    if (!b || !key) return NULL;
    long i = find_key(b->items, b->count, key);
    return i >= 0 ? b->items[i].value : NULL;
}

size_t ituna_baggage_count(const ituna_baggage *b) {
    return b ? b->count : 0;
}

/* Returns 1 and fills the outputs (each may be NULL) for a valid index, else 0.
 * *metadata is NULL when the entry has no properties. */
int ituna_baggage_entry(const ituna_baggage *b, size_t i, const char **key, const char **value,
                        const char **metadata) {
    if (!b || i >= b->count) return 0;
    if (key) *key = b->items[i].key;
    if (value) *value = b->items[i].value;
    if (metadata) *metadata = b->items[i].meta;
    return 1;
}

/* ---- parse -------------------------------------------------------------------- */

static void free_entries(bg_entry *items, size_t n) {
    for (size_t i = 0; i < n; i++) free(items[i].key);
}

ituna_err ituna_baggage_parse(ituna_baggage *b, const char *s, size_t len, const char **reason) {
    const char *why = NULL;
    if (!b || (!s && len)) {
        if (reason) *reason = "baggage: NULL argument";
        return ITUNA_ERR_INVALID_ARG;
    }
    if (reason) *reason = NULL;
    if (len > BAGGAGE_MAX_BYTES) {
        if (reason) *reason = "baggage: longer than 8192 bytes";
        return ITUNA_ERR_PARSE;
    }
    if (len == 0) return ITUNA_OK;

    /* Parse everything into a private list first so that invalid input leaves
     * b untouched. scratch holds one decoded value or property list at a time. */
    bg_entry tmp[BAGGAGE_MAX_MEMBERS];
    size_t nt = 0;
    char *scratch = malloc(3 * len + 2), *mscratch = malloc(len + 1);
    ituna_err err = ITUNA_ERR_PARSE;
    if (!scratch || !mscratch) {
        why = "baggage: out of memory";
        err = ITUNA_ERR_NOMEM;
        goto fail;
    }
    const char *end = s + len, *cur = s;
    size_t members = 0;
    for (;;) {
        const char *comma = memchr(cur, ',', (size_t)(end - cur));
        const char *a = cur, *bnd = comma ? comma : end;
        trim(&a, &bnd);
        if (a < bnd) {
            if (++members > BAGGAGE_MAX_MEMBERS) {
                why = "baggage: more than 180 list-members";
                goto fail;
            }
            const char *semi = memchr(a, ';', (size_t)(bnd - a));
            const char *kvend = semi ? semi : bnd;
            const char *eq = memchr(a, '=', (size_t)(kvend - a));
            if (!eq) {
                why = "baggage: list-member without '='";
                goto fail;
            }
            const char *ka = a, *kb = eq, *va = eq + 1, *vb = kvend;
            trim(&ka, &kb);
            trim(&va, &vb);
            if (!token_ok(ka, (size_t)(kb - ka))) {
                why = "baggage: invalid key";
                goto fail;
            }
            if (!octets_ok(va, (size_t)(vb - va))) {
                why = "baggage: invalid value character";
                goto fail;
            }
            size_t vn = pct_decode(va, (size_t)(vb - va), scratch, &why);
            if (vn == (size_t)-1) goto fail;
            size_t mn = 0;
            if (semi) {
                mn = props_normalise(semi + 1, (size_t)(bnd - semi - 1), mscratch);
                if (mn == (size_t)-1) {
                    why = "baggage: invalid property";
                    goto fail;
                }
            }
            /* Key copied into a NUL-terminated form for the duplicate lookup. */
            bg_entry e;
            if (!entry_make(&e, ka, (size_t)(kb - ka), scratch, vn, semi ? mscratch : "", mn, semi != NULL)) {
                why = "baggage: out of memory";
                err = ITUNA_ERR_NOMEM;
                goto fail;
            }
            long d = find_key(tmp, nt, e.key);
            if (d >= 0) {
                free(tmp[d].key);
                tmp[d] = e;
            } else {
                tmp[nt++] = e;
            }
        }
        if (!comma) break;
        cur = comma + 1;
    }

    size_t added = 0;
    for (size_t i = 0; i < nt; i++)
        if (find_key(b->items, b->count, tmp[i].key) < 0) added++;
    if (b->count + added > BAGGAGE_MAX_MEMBERS) {
        why = "baggage: more than 180 list-members";
        goto fail;
    }
    if (!reserve(b, b->count + added)) {
        why = "baggage: out of memory";
        err = ITUNA_ERR_NOMEM;
        goto fail;
    }
    for (size_t i = 0; i < nt; i++) put_entry(b, tmp[i]); /* cannot fail now */
    free(scratch);
    free(mscratch);
    return ITUNA_OK;

fail:
    free_entries(tmp, nt);
    free(scratch);
    free(mscratch);
    if (reason) *reason = why;
    return err;
}

/* ---- format -------------------------------------------------------------------- */

/* Appends like snprintf: counts everything, writes what fits. */
typedef struct {
    char *buf;
    size_t size, len;
} out_t;

static void out_put(out_t *o, const char *p, size_t n) {
    if (o->len < o->size) {
        size_t room = o->size - o->len;
        memcpy(o->buf + o->len, p, n < room ? n : room);
    }
    o->len += n;
}

size_t ituna_baggage_format(const ituna_baggage *b, char *buf, size_t buf_size) {
    static const char hexd[] = "0123456789ABCDEF";
    out_t o = { buf, buf ? buf_size : 0, 0 };
    size_t n = b ? b->count : 0;
    for (size_t i = 0; i < n; i++) {
        const bg_entry *e = &b->items[i];
        if (i) out_put(&o, ",", 1);
        out_put(&o, e->key, strlen(e->key));
        out_put(&o, "=", 1);
        for (const unsigned char *p = (const unsigned char *)e->value; *p; p++) {
            if (is_boctet(*p) && *p != '%') {
                out_put(&o, (const char *)p, 1);
            } else {
                char esc[3] = { '%', hexd[*p >> 4], hexd[*p & 15] };
                out_put(&o, esc, 3);
            }
        }
        if (e->meta) {
            out_put(&o, ";", 1);
            out_put(&o, e->meta, strlen(e->meta));
        }
    }
    if (o.size) o.buf[o.len < o.size ? o.len : o.size - 1] = '\0';
    return o.len;
}
