/* exporter_config.c - which exporter a tracer gets: [exporter] type (otlp,
 * console, file, none), else OTLP when an endpoint is set, else the JSON-lines
 * file; plus a local copy file beside otlp/console ([exporter] copy-file). */
#include <stdio.h>

#include "export_file.h"
#include "internal.h"

static ituna_err make_primary(const ituna_config *cfg, const char *service_name, ituna_exporter **out,
                              char *errstr, size_t errstr_size) {
    const char *type = ituna_config_str(cfg, "exporter", "type", NULL);
    *out = NULL;
    if (!type) {
        /* Embedded default: an endpoint means OTLP, otherwise a JSON-lines file. */
        if (ituna_config_get(cfg, "exporter", "endpoint") ||
            ituna_config_get(cfg, "exporter", "traces-endpoint"))
            type = "otlp";
        else
            type = "file";
    }
    if (strcmp(type, "none") == 0) return ITUNA_OK;
    if (strcmp(type, "otlp") == 0) return ituna_exporter_otlp_http_create(cfg, out, errstr, errstr_size);
    if (strcmp(type, "console") == 0) return ituna_exporter_console_create(cfg, out, errstr, errstr_size);
    if (strcmp(type, "file") == 0) {
        ituna_err err = ituna_exporter_file_create(cfg, out, errstr, errstr_size);
        if (err == ITUNA_OK && !ituna_config_get(cfg, "exporter", "type"))
            fprintf(stderr, "ituna: no OTLP endpoint set; %s traces go to %s\n", service_name,
                    ituna_exporter_file_path(*out));
        return err;
    }
    return ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG, "exporter type '%s' is not supported", type);
}

/* The configured exporter, plus a local JSON-lines copy of each batch when
 * [exporter] copy-file is set beside otlp or console. */
ituna_err ituna_exporter_from_config(const ituna_config *cfg, const char *service_name, ituna_exporter **out,
                                     char *errstr, size_t errstr_size) {
    ituna_err err = make_primary(cfg, service_name, out, errstr, errstr_size);
    const char *copy = ituna_config_get(cfg, "exporter", "copy-file");
    if (err || !*out || !copy || !*copy || ituna_exporter_file_path(*out)) return err;
    ituna_exporter *f = NULL, *tee = NULL;
    err = ituna_exporter_file_open(cfg, copy, &f, errstr, errstr_size);
    if (!err) err = ituna_exporter_tee_create(*out, f, &tee, errstr, errstr_size);
    if (err) {
        if (f) f->destroy(f);
        (*out)->destroy(*out);
        *out = NULL;
        return err;
    }
    *out = tee;
    return ITUNA_OK;
}
