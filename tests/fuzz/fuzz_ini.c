/* fuzz_ini.c - libFuzzer target for the INI parser and schema checks
 * (ituna_config_load_string): any text loads or fails with a message, never crashes
 * or leaks; a failure names the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ituna/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* load_file refuses NUL bytes before this point */
    ituna_config *cfg = ituna_config_new();
    if (!cfg) abort();
    char err[512] = "";
    ituna_err rc = ituna_config_load_string(cfg, "fuzz.ini", text, err, sizeof err);
    if (rc != ITUNA_OK && strncmp(err, "fuzz.ini", 8) != 0 && rc != ITUNA_ERR_NOMEM) abort();
    if (rc == ITUNA_OK) { /* walk what was stored */
        size_t it = 0;
        const char *k, *v;
        while (ituna_config_next(cfg, "exporter", &it, &k, &v))
            if (!k || !v) abort();
        (void)ituna_config_bootstrap(cfg, NULL);
    }
    ituna_config_destroy(cfg);
    free(text);
    return 0;
}
