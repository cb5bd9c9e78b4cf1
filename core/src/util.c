/* util.c - small shared pieces: error strings, errstr formatting, the byte
 * buffer, the per-span arena, hex, the clock and ituna's own logging. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

const char *ituna_err2str(ituna_err err) {
    switch (err) {
    case ITUNA_OK: return "success";
    case ITUNA_ERR_INVALID_ARG: return "invalid argument";
    case ITUNA_ERR_NOMEM: return "out of memory";
    case ITUNA_ERR_PARSE: return "malformed input";
    case ITUNA_ERR_CONFIG: return "configuration error";
    case ITUNA_ERR_IO: return "I/O error";
    case ITUNA_ERR_TIMEOUT: return "timed out";
    case ITUNA_ERR_QUEUE_FULL: return "queue full";
    case ITUNA_ERR_STATE: return "invalid state";
    case ITUNA_ERR_KAFKA: return "Kafka error";
    case ITUNA_ERR_EXPORT: return "export failed";
    case ITUNA_ERR_NOT_FOUND: return "not found";
    case ITUNA_ERR_MALFORMED: return "malformed payload";
    case ITUNA_ERR_UNSUPPORTED: return "not supported";
    }
    return "unknown error";
}

const char *ituna_err2name(ituna_err err) {
    switch (err) {
    case ITUNA_OK: return "ITUNA_OK";
    case ITUNA_ERR_INVALID_ARG: return "ITUNA_ERR_INVALID_ARG";
    case ITUNA_ERR_NOMEM: return "ITUNA_ERR_NOMEM";
    case ITUNA_ERR_PARSE: return "ITUNA_ERR_PARSE";
    case ITUNA_ERR_CONFIG: return "ITUNA_ERR_CONFIG";
    case ITUNA_ERR_IO: return "ITUNA_ERR_IO";
    case ITUNA_ERR_TIMEOUT: return "ITUNA_ERR_TIMEOUT";
    case ITUNA_ERR_QUEUE_FULL: return "ITUNA_ERR_QUEUE_FULL";
    case ITUNA_ERR_STATE: return "ITUNA_ERR_STATE";
    case ITUNA_ERR_KAFKA: return "ITUNA_ERR_KAFKA";
    case ITUNA_ERR_EXPORT: return "ITUNA_ERR_EXPORT";
    case ITUNA_ERR_NOT_FOUND: return "ITUNA_ERR_NOT_FOUND";
    case ITUNA_ERR_MALFORMED: return "ITUNA_ERR_MALFORMED";
    case ITUNA_ERR_UNSUPPORTED: return "ITUNA_ERR_UNSUPPORTED";
    }
    return "ITUNA_ERR_UNKNOWN";
}

const char *ituna_version(void) {
    return ITUNA_VERSION_STRING;
}

ituna_err ituna_set_err(char *buf, size_t size, ituna_err err, const char *fmt, ...) {
    if (buf && size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, size, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* ---- logging ---------------------------------------------------------------- */

static _Atomic(ituna_log_fn) log_fn; /* NULL: static storage is zeroed (clang refuses "= NULL" here) */
static void *_Atomic log_opaque;
static atomic_int log_level = ITUNA_LOG_WARN;

void ituna_log_set_handler(ituna_log_fn fn, void *opaque) {
    atomic_store(&log_opaque, opaque);
    atomic_store(&log_fn, fn);
}

void ituna_log_set_level(ituna_log_level level) {
    atomic_store(&log_level, (int)level);
}

void ituna_log(ituna_log_level level, const char *fmt, ...) {
    if ((int)level < atomic_load_explicit(&log_level, memory_order_relaxed) || level >= ITUNA_LOG_NONE)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ituna_log_fn fn = atomic_load(&log_fn);
    if (fn) {
        fn(level, msg, atomic_load(&log_opaque));
        return;
    }
    static const char *names[] = { "debug", "info", "warn", "error" };
    fprintf(stderr, "ituna %s: %s\n", names[level], msg);
}

/* ---- byte buffer ------------------------------------------------------------ */

void ituna_buf_init(ituna_buf *b) {
    memset(b, 0, sizeof *b);
}

void ituna_buf_free(ituna_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

int ituna_buf_reserve(ituna_buf *b, size_t extra) {
    if (b->oom) return 0;
    if (b->cap - b->len >= extra) return 1;
    size_t ncap = b->cap ? b->cap * 2 : 256;
    while (ncap - b->len < extra) ncap *= 2;
    uint8_t *n = realloc(b->data, ncap);
    if (!n) {
        b->oom = 1;
        return 0;
    }
    b->data = n;
    b->cap = ncap;
    return 1;
}

void ituna_buf_append(ituna_buf *b, const void *p, size_t n) {
    if (!n || !ituna_buf_reserve(b, n)) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void ituna_buf_putc(ituna_buf *b, char c) {
    if (!ituna_buf_reserve(b, 1)) return;
    b->data[b->len++] = (uint8_t)c;
}

void ituna_buf_puts(ituna_buf *b, const char *s) {
    ituna_buf_append(b, s, strlen(s));
}

void ituna_buf_printf(ituna_buf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        ituna_buf_append(b, tmp, (size_t)n);
        return;
    }
    if (!ituna_buf_reserve(b, (size_t)n + 1)) return;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ---- arena ------------------------------------------------------------------ */

void *ituna_arena_alloc(ituna_arena *a, size_t n) {
    void *p = ituna_arena_take(a, n);
    if (p) return p;
    n = (n + 7) & ~(size_t)7;
    /* New block: big requests get their own; small ones a standard block. */
    size_t body = n > ITUNA_ARENA_BLOCK ? n : ITUNA_ARENA_BLOCK;
    ituna_arena_chunk *c;
    if (body == ITUNA_ARENA_BLOCK && a->spare) {
        c = a->spare;
        a->spare = NULL;
    } else {
        c = malloc(sizeof(ituna_arena_chunk) + 8 + body);
        if (!c) return NULL;
        c->size = body;
    }
    c->next = a->chunks;
    a->chunks = c;
    char *start = (char *)c + ((sizeof(ituna_arena_chunk) + 7) & ~(size_t)7);
    if (n == body) return start; /* keep the old block's free space for later */
    a->cur = start + n;
    a->end = start + body;
    return start;
}

char *ituna_arena_strndup(ituna_arena *a, const char *s, size_t n) {
    char *p = ituna_arena_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void ituna_arena_free(ituna_arena *a) {
    ituna_arena_reset(a, NULL, 0);
    free(a->spare);
    a->spare = NULL;
}

void ituna_arena_reset(ituna_arena *a, char *mem, size_t size) {
    ituna_arena_chunk *c = a->chunks;
    while (c) {
        ituna_arena_chunk *next = c->next;
        if (!a->spare && c->size == ITUNA_ARENA_BLOCK)
            a->spare = c;
        else
            free(c);
        c = next;
    }
    a->chunks = NULL;
    a->cur = mem;
    a->end = mem ? mem + size : NULL;
}

/* ---- hex -------------------------------------------------------------------- */

static const char hexdigits[] = "0123456789abcdef";

void ituna_hex_encode(const uint8_t *in, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdigits[in[i] >> 4];
        out[2 * i + 1] = hexdigits[in[i] & 15];
    }
}

/* 255 marks anything but lowercase hex. */
static const uint8_t hexval[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 10,  11,  12,
    13,  14,  15,  255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};

int ituna_hex_decode_lower(const char *in, size_t n, uint8_t *out) {
    uint8_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t hi = hexval[(uint8_t)in[2 * i]], lo = hexval[(uint8_t)in[2 * i + 1]];
        bad |= (hi | lo) & 0xf0;
        out[i] = (uint8_t)(hi << 4 | (lo & 15));
    }
    return !bad;
}
