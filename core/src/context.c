/* context.c - the thread's current span context: a small per-thread stack that
 * attach pushes and detach pops by token. */
#include <stdlib.h>

#include "internal.h"

/* Thread-local current-context stack. */
#define CTX_STACK_MAX 64
typedef struct {
    ituna_span_context ctx;
    int token;
} ctx_entry;
static ITUNA_TLS ctx_entry *ctx_stack = NULL;
static ITUNA_TLS int ctx_depth = 0;
static ITUNA_TLS int ctx_next_token = 1;

const ituna_span_context *ituna_context_top(void) {
    return ctx_depth > 0 ? &ctx_stack[ctx_depth - 1].ctx : NULL;
}

/* The stack is allocated once per thread and freed when the thread exits (a
 * pthread key destructor), not each time it empties: top-level spans are common. */
static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static void ctx_free(void *p) {
    free(p);
}
static void ctx_key_init(void) {
    pthread_key_create(&ctx_key, ctx_free);
}

ituna_err ituna_context_attach(const ituna_span_context *ctx, int *token) {
    if (!ctx || !token) return ITUNA_ERR_INVALID_ARG;
    if (!ctx_stack) {
        pthread_once(&ctx_once, ctx_key_init);
        ctx_stack = malloc(CTX_STACK_MAX * sizeof *ctx_stack);
        if (!ctx_stack) return ITUNA_ERR_NOMEM;
        pthread_setspecific(ctx_key, ctx_stack);
    }
    if (ctx_depth >= CTX_STACK_MAX) return ITUNA_ERR_STATE;
    ctx_entry *e = &ctx_stack[ctx_depth];
    memcpy(&e->ctx, ctx, offsetof(ituna_span_context, tracestate));
    memcpy(e->ctx.tracestate, ctx->tracestate, ctx->tracestate_len);
    e->ctx.tracestate[ctx->tracestate_len] = '\0';
    e->token = ctx_next_token++;
    if (ctx_next_token <= 0) ctx_next_token = 1;
    ctx_depth++;
    *token = e->token;
    return ITUNA_OK;
}

ituna_err ituna_context_detach(int token) {
    for (int i = ctx_depth - 1; i >= 0; i--) {
        if (ctx_stack[i].token == token) {
            if (i != ctx_depth - 1)
                ituna_log(ITUNA_LOG_DEBUG, "context detached out of order; %d newer entries dropped",
                          ctx_depth - 1 - i);
            ctx_depth = i;
            return ITUNA_OK;
        }
    }
    return ITUNA_ERR_STATE;
}

int ituna_context_current(ituna_span_context *out) {
    const ituna_span_context *c = ituna_context_top();
    if (!c) return 0;
    if (out) {
        memcpy(out, c, offsetof(ituna_span_context, tracestate));
        memcpy(out->tracestate, c->tracestate, c->tracestate_len);
        out->tracestate[c->tracestate_len] = '\0';
    }
    return 1;
}
