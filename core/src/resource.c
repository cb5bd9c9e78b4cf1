/* resource.c - the process's Resource: the SDK's own attributes, host, pid, a
 * random service.instance.id, OTEL_RESOURCE_ATTRIBUTES / [resource], and
 * service.name (OTEL_SERVICE_NAME wins). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

static int res_add(ituna_resource *r, uint32_t *cap, const char *key, const char *val, int64_t ival,
                   int is_int) {
    for (uint32_t i = 0; i < r->n_attrs; i++) { /* later sources win */
        if (strcmp(r->attrs[i].key, key) == 0) {
            memmove(&r->attrs[i], &r->attrs[i + 1], (r->n_attrs - i - 1) * sizeof *r->attrs);
            r->n_attrs--;
            break;
        }
    }
    if (r->n_attrs == *cap) {
        uint32_t ncap = *cap ? *cap * 2 : 16;
        ituna_kv *n = realloc(r->attrs, ncap * sizeof *n);
        if (!n) return 0;
        r->attrs = n;
        *cap = ncap;
    }
    ituna_attr a = is_int ? ituna_attr_int(key, ival) : ituna_attr_str(key, val);
    int trunc = 0;
    if (!ituna_kv_copy_limit(&r->arena, &r->attrs[r->n_attrs], &a, 0, &trunc)) return 0;
    r->n_attrs++;
    return 1;
}

static int pct_decode(char *s) { /* in place; 0 on a bad escape */
    char *w = s;
    for (char *p = s; *p; p++) {
        if (*p == '%') {
            uint8_t v;
            char hex[2] = { p[1], p[2] };
            if (!p[1] || !p[2]) return 0;
            if (hex[0] >= 'A' && hex[0] <= 'F') hex[0] = (char)(hex[0] + 32);
            if (hex[1] >= 'A' && hex[1] <= 'F') hex[1] = (char)(hex[1] + 32);
            if (!ituna_hex_decode_lower(hex, 1, &v)) return 0;
            *w++ = (char)v;
            p += 2;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    return 1;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    return s;
}

/* OTEL_RESOURCE_ATTRIBUTES: "k=v,k2=v2", values percent-encoded. */
static ituna_err add_resource_list(ituna_resource *r, uint32_t *cap, const char *list, char *errstr,
                                   size_t errstr_size) {
    char *copy = strdup(list);
    if (!copy) return ITUNA_ERR_NOMEM;
    ituna_err err = ITUNA_OK;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq) {
            err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG,
                                "resource attributes: '%s' is not key=value", item);
            break;
        }
        *eq = '\0';
        char *k = trim(item), *v = trim(eq + 1);
        if (!*k || !pct_decode(v)) {
            err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG,
                                "resource attributes: bad entry for key '%s'", k);
            break;
        }
        if (!res_add(r, cap, k, v, 0, 0)) {
            err = ITUNA_ERR_NOMEM;
            break;
        }
    }
    free(copy);
    return err;
}

ituna_err ituna_resource_build(ituna_resource *r, const ituna_config *cfg, const char **service_name,
                               char *errstr, size_t errstr_size) {
    uint32_t cap = 0;
    char host[256] = "";
    snprintf(r->scope_name, sizeof r->scope_name, "ituna-core");
    snprintf(r->scope_version, sizeof r->scope_version, "%s", ITUNA_VERSION_STRING);
    if (!res_add(r, &cap, "telemetry.sdk.name", "ituna-core", 0, 0) ||
        !res_add(r, &cap, "telemetry.sdk.language", "c", 0, 0) ||
        !res_add(r, &cap, "telemetry.sdk.version", ITUNA_VERSION_STRING, 0, 0) ||
        !res_add(r, &cap, "process.pid", NULL, (int64_t)getpid(), 1))
        return ITUNA_ERR_NOMEM;
    if (gethostname(host, sizeof host - 1) == 0 && host[0] && !res_add(r, &cap, "host.name", host, 0, 0))
        return ITUNA_ERR_NOMEM;
    /* Random per process start: distinguishes instances of one service (--scale). */
    uint8_t u[16];
    ituna_random_trace_id(u);
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    char hex[33], uuid[37];
    ituna_hex_encode(u, 16, hex);
    snprintf(uuid, sizeof uuid, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    if (!res_add(r, &cap, "service.instance.id", uuid, 0, 0)) return ITUNA_ERR_NOMEM;

    const char *list = ituna_config_str(cfg, "tracer", "resource-attributes", NULL);
    if (list) {
        ituna_err err = add_resource_list(r, &cap, list, errstr, errstr_size);
        if (err) return err;
    }
    size_t it = 0;
    const char *k, *v;
    while (ituna_config_next(cfg, "resource", &it, &k, &v))
        if (!res_add(r, &cap, k, v, 0, 0)) return ITUNA_ERR_NOMEM;

    /* service.name: OTEL_SERVICE_NAME / [tracer] service-name win over resource attributes. */
    const char *svc = ituna_config_str(cfg, "tracer", "service-name", NULL);
    const char *from_res = NULL;
    for (uint32_t i = 0; i < r->n_attrs; i++)
        if (strcmp(r->attrs[i].key, "service.name") == 0) from_res = r->attrs[i].v.s.ptr;
    char fallback[300];
    if (!svc && !from_res) {
        char exe[256] = "";
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        const char *base = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
        snprintf(fallback, sizeof fallback, "unknown_service:%s", base ? base + 1 : "c");
        svc = fallback;
    }
    if (svc && !res_add(r, &cap, "service.name", svc, 0, 0)) return ITUNA_ERR_NOMEM;
    for (uint32_t i = 0; i < r->n_attrs; i++)
        if (strcmp(r->attrs[i].key, "service.name") == 0) *service_name = r->attrs[i].v.s.ptr;
    return ITUNA_OK;
}

void ituna_resource_free(ituna_resource *r) {
    ituna_arena_free(&r->arena);
    free(r->attrs);
    r->attrs = NULL;
    r->n_attrs = 0;
}
