/* attrs.c - attribute values: the public constructors, and copying a caller's
 * attribute into span (or resource) arena memory under the length limit. */
#include <stdint.h>

#include "internal.h"

/* Designated initialisers zero the rest without a memset call: these sit on the
 * span hot path. */
ituna_attr ituna_attr_str(const char *key, const char *value) {
    return (ituna_attr){ .key = key, .type = ITUNA_ATTR_STRING, .v.s = { value, SIZE_MAX } };
}
ituna_attr ituna_attr_int(const char *key, int64_t value) {
    return (ituna_attr){ .key = key, .type = ITUNA_ATTR_INT, .v.i = value };
}
ituna_attr ituna_attr_double(const char *key, double value) {
    return (ituna_attr){ .key = key, .type = ITUNA_ATTR_DOUBLE, .v.d = value };
}
ituna_attr ituna_attr_bool(const char *key, int value) {
    return (ituna_attr){ .key = key, .type = ITUNA_ATTR_BOOL, .v.b = value ? 1 : 0 };
}

ituna_attr ituna_attr_strn(const char *key, size_t key_len, const char *value, size_t len) {
    return (ituna_attr){ .key = key, .key_len = key_len, .type = ITUNA_ATTR_STRING, .v.s = { value, len } };
}

const char *ituna_attr_key_error(const char *key, size_t len) {
    if (!key || !len) return "key is empty";
    /* keys are names; a NUL would be cut by every C-string consumer downstream */
    if (memchr(key, 0, len)) return "key contains a NUL byte";
    return NULL;
}

size_t ituna_attr_array_size(size_t n) {
    /* the largest layout: a string's pointer, and its length after all pointers */
    return n * (sizeof(const char *) + sizeof(size_t)) + 1;
}

int ituna_attr_array_build(ituna_attr *a, size_t n, ituna_attr_item_fn get, void *list, int mix_numbers,
                           void *storage, size_t *bad) {
    const char **strs = storage;
    size_t *lens = (size_t *)(strs + n);
    int64_t *ints = storage;
    double *dbls = storage;
    int *bools = storage;
    ituna_attr_type type = ITUNA_ATTR_STRING;
    for (size_t i = 0; i < n; i++) {
        ituna_attr_item it;
        int rc = get(list, i, &it);
        if (rc < 0) return -1;
        if (rc == 0 && i == 0) type = it.type;
        if (rc == 0 && mix_numbers && it.type != type) {
            if (type == ITUNA_ATTR_DOUBLE && it.type == ITUNA_ATTR_INT) { /* an integer among floats */
                it.type = ITUNA_ATTR_DOUBLE;
                it.v.d = (double)it.v.i;
            } else if (type == ITUNA_ATTR_INT && it.type == ITUNA_ATTR_DOUBLE) { /* the integers before too */
                for (size_t j = 0; j < i; j++) dbls[j] = (double)ints[j];
                type = ITUNA_ATTR_DOUBLE;
            }
        }
        if (rc != 0 || it.type != type) {
            *bad = i;
            return 1;
        }
        switch (type) {
        case ITUNA_ATTR_STRING:
            strs[i] = it.v.s.ptr;
            lens[i] = it.v.s.len;
            break;
        case ITUNA_ATTR_INT: ints[i] = it.v.i; break;
        case ITUNA_ATTR_DOUBLE: dbls[i] = it.v.d; break;
        case ITUNA_ATTR_BOOL: bools[i] = it.v.b ? 1 : 0; break;
        default: *bad = i; return 1;
        }
    }
    switch (type) {
    case ITUNA_ATTR_INT:
        a->type = ITUNA_ATTR_INT_ARRAY;
        a->v.iarr.items = ints;
        a->v.iarr.count = n;
        break;
    case ITUNA_ATTR_DOUBLE:
        a->type = ITUNA_ATTR_DOUBLE_ARRAY;
        a->v.darr.items = dbls;
        a->v.darr.count = n;
        break;
    case ITUNA_ATTR_BOOL:
        a->type = ITUNA_ATTR_BOOL_ARRAY;
        a->v.barr.items = bools;
        a->v.barr.count = n;
        break;
    default: /* strings, or no items */
        a->type = ITUNA_ATTR_STRING_ARRAY;
        a->v.sarr.items = strs;
        a->v.sarr.count = n;
        a->v.sarr.lens = lens;
    }
    return 0;
}

size_t ituna_attr_klen(const ituna_attr *a) {
    return a->key_len ? a->key_len : strlen(a->key);
}

static uint32_t utf8_cut(const char *s, size_t len, size_t limit) {
    if (!limit || len <= limit) return (uint32_t)len;
    size_t n = limit;
    while (n > 0 && ((uint8_t)s[n] & 0xC0) == 0x80) n--; /* don't split a code point */
    return (uint32_t)n;
}

int ituna_kv_copy_k(ituna_arena *a, ituna_kv *out, const ituna_attr *in, size_t klen, uint32_t len_limit,
                    int *truncated, int lit) {
    out->key = (lit & ITUNA_LIT_KEY) ? in->key : ituna_arena_strndup(a, in->key, klen);
    if (!out->key) return 0;
    out->key_len = (uint32_t)klen;
    out->type = (uint8_t)in->type;
    switch (in->type) {
    case ITUNA_ATTR_STRING: {
        const char *p = in->v.s.ptr ? in->v.s.ptr : "";
        size_t len = in->v.s.len == SIZE_MAX ? strlen(p) : in->v.s.len;
        uint32_t n = utf8_cut(p, len, len_limit);
        if (n < len) *truncated = 1;
        out->v.s.ptr = (lit & ITUNA_LIT_VALUE) && n == len ? p : ituna_arena_strndup(a, p, n);
        out->v.s.len = n;
        return out->v.s.ptr != NULL;
    }
    case ITUNA_ATTR_INT: out->v.i = in->v.i; return 1;
    case ITUNA_ATTR_DOUBLE: out->v.d = in->v.d; return 1;
    case ITUNA_ATTR_BOOL: out->v.b = in->v.b ? 1 : 0; return 1;
    case ITUNA_ATTR_STRING_ARRAY: {
        size_t n = in->v.sarr.count;
        ituna_str *items = ituna_arena_alloc(a, n * sizeof *items + 1);
        if (!items) return 0;
        for (size_t i = 0; i < n; i++) {
            const char *p = in->v.sarr.items[i] ? in->v.sarr.items[i] : "";
            size_t len = in->v.sarr.lens && in->v.sarr.items[i] ? in->v.sarr.lens[i] : strlen(p);
            uint32_t cut = utf8_cut(p, len, len_limit);
            if (cut < len) *truncated = 1;
            items[i].ptr = ituna_arena_strndup(a, p, cut);
            items[i].len = cut;
            if (!items[i].ptr) return 0;
        }
        out->v.arr.items = items;
        out->v.arr.count = (uint32_t)n;
        return 1;
    }
    case ITUNA_ATTR_INT_ARRAY:
    case ITUNA_ATTR_DOUBLE_ARRAY: {
        size_t n = in->v.iarr.count, sz = n * 8;
        void *items = ituna_arena_alloc(a, sz + 1);
        if (!items) return 0;
        if (sz)
            memcpy(items,
                   in->type == ITUNA_ATTR_INT_ARRAY ? (const void *)in->v.iarr.items
                                                    : (const void *)in->v.darr.items,
                   sz);
        out->v.arr.items = items;
        out->v.arr.count = (uint32_t)n;
        return 1;
    }
    case ITUNA_ATTR_BOOL_ARRAY: {
        size_t n = in->v.barr.count;
        int *items = ituna_arena_alloc(a, n * sizeof(int) + 1);
        if (!items) return 0;
        for (size_t i = 0; i < n; i++) items[i] = in->v.barr.items[i] ? 1 : 0;
        out->v.arr.items = items;
        out->v.arr.count = (uint32_t)n;
        return 1;
    }
    }
    return 0;
}

int ituna_kv_copy_limit(ituna_arena *a, ituna_kv *out, const ituna_attr *in, uint32_t len_limit,
                        int *truncated) {
    return ituna_kv_copy_k(a, out, in, ituna_attr_klen(in), len_limit, truncated, 0);
}

int ituna_kv_copy(ituna_arena *a, ituna_kv *out, const ituna_attr *in) {
    int trunc = 0;
    return ituna_kv_copy_limit(a, out, in, 0, &trunc);
}

int ituna_attr_ok(const ituna_attr *a) {
    return a && a->key && !ituna_attr_key_error(a->key, ituna_attr_klen(a)) &&
           (unsigned)a->type <= ITUNA_ATTR_BOOL_ARRAY;
}

ituna_kv *ituna_kv_list_copy(ituna_arena *a, const ituna_attr *attrs, size_t n, uint32_t count_limit,
                             uint32_t len_limit, uint32_t *n_out, uint32_t *dropped, uint32_t *truncated) {
    *n_out = 0;
    *dropped = 0;
    *truncated = 0;
    if (!n) return NULL;
    size_t keep = n < count_limit ? n : count_limit;
    ituna_kv *kv = ituna_arena_alloc(a, keep * sizeof *kv + 1);
    if (!kv) return NULL;
    for (size_t i = 0; i < n; i++) {
        int trunc = 0;
        if (!ituna_attr_ok(&attrs[i]) || *n_out >= keep) { /* invalid or over the limit: counted */
            (*dropped)++;
            continue;
        }
        if (ituna_kv_copy_limit(a, &kv[*n_out], &attrs[i], len_limit, &trunc)) (*n_out)++;
        if (trunc) (*truncated)++;
    }
    return kv;
}
