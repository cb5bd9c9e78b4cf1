/* sampler.c - the head sampler: always_on, always_off, traceidratio, each
 * optionally parent-based (OTEL_TRACES_SAMPLER / [tracer] sampler). */
#include <stdint.h>

#include "internal.h"

ituna_err ituna_sampler_init(ituna_sampler *s, const ituna_config *cfg, char *errstr, size_t errstr_size) {
    const char *name = ituna_config_str(cfg, "tracer", "sampler", "parentbased_always_on");
    s->parent_based = strncmp(name, "parentbased_", 12) == 0;
    const char *root = s->parent_based ? name + 12 : name;
    if (strcmp(root, "always_on") == 0)
        s->kind = ITUNA_SAMPLER_ALWAYS_ON;
    else if (strcmp(root, "always_off") == 0)
        s->kind = ITUNA_SAMPLER_ALWAYS_OFF;
    else if (strcmp(root, "traceidratio") == 0)
        s->kind = ITUNA_SAMPLER_RATIO;
    else
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG, "unknown sampler '%s'", name);
    double ratio = ituna_config_double(cfg, "tracer", "sampler-arg", 1.0);
    if (ratio < 0 || ratio > 1)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG, "sampler-arg %g is outside 0..1", ratio);
    s->ratio_all = ratio >= 1.0;
    s->ratio_bound = s->ratio_all ? UINT64_MAX : (uint64_t)(ratio * 18446744073709551616.0);
    return ITUNA_OK;
}

static int sample_ratio(const ituna_sampler *s, const uint8_t trace_id[16]) {
    if (s->ratio_all) return 1;
    uint64_t low = 0;
    for (int i = 8; i < 16; i++) low = low << 8 | trace_id[i];
    return low < s->ratio_bound;
}

int ituna_sampler_should_sample(const ituna_sampler *s, const ituna_span_context *parent,
                                const uint8_t trace_id[16]) {
    if (s->parent_based && parent) return (parent->trace_flags & ITUNA_TRACE_FLAG_SAMPLED) != 0;
    switch (s->kind) {
    case ITUNA_SAMPLER_ALWAYS_ON: return 1;
    case ITUNA_SAMPLER_ALWAYS_OFF: return 0;
    default: return sample_ratio(s, trace_id);
    }
}
