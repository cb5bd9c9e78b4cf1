/* otlp_util.c - UTF-8 validation and repair for the OTLP encoders (proto3
 * strings must be valid UTF-8, and so must JSON text). */
#include "otlp_util.h"

unsigned ituna_utf8_seq_len(const unsigned char *s, size_t avail) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0; /* continuation byte or overlong 2-byte lead */
    if (c < 0xE0) {
        if (avail < 2 || (s[1] & 0xC0) != 0x80) return 0;
        return 2;
    }
    if (c < 0xF0) {
        if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
        if (c == 0xED && s[1] >= 0xA0) return 0; /* UTF-16 surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
        if (c == 0xF4 && s[1] >= 0x90) return 0; /* > U+10FFFF */
        return 4;
    }
    return 0;
}

int ituna_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    /* ASCII fast path, 8 bytes at a time. */
    while (end - p >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v & 0x8080808080808080ull) break;
        p += 8;
    }
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        unsigned l = ituna_utf8_seq_len(p, (size_t)(end - p));
        if (!l) return 0;
        p += l;
    }
    return 1;
}

size_t ituna_utf8_sanitize(char *dst, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    size_t out = 0;
    while (p < end) {
        unsigned l = ituna_utf8_seq_len(p, (size_t)(end - p));
        if (l) {
            if (dst) memcpy(dst + out, p, l);
            out += l;
            p += l;
        } else {
            if (dst) memcpy(dst + out, "\xEF\xBF\xBD", 3);
            out += 3;
            p++;
        }
    }
    return out;
}
