/* ituna/common.h - error codes, export macro, version, clock and logging.
 *
 * Phrase set used on every public function (one line each):
 *   "Thread-safe."                      may be called from any thread at once.
 *   "Not thread-safe: one thread at a time per handle."
 *   "Does not block." / "May block up to timeout_ms."
 *   "The caller owns *out and must destroy it with X()."  (only on ITUNA_OK)
 *   "Borrowed: valid until ..."          the returned pointer is owned by ituna.
 * Functions that can fail return ituna_err and, where a message helps, fill
 * the caller's errstr buffer (always NUL-terminated when errstr_size > 0).
 * Nothing aborts on bad input.
 */
#ifndef ITUNA_COMMON_H
#define ITUNA_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define ITUNA_API __declspec(dllexport)
#else
#define ITUNA_API __attribute__((visibility("default")))
#endif

#if defined(__GNUC__)
#define ITUNA_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define ITUNA_PRINTF(fmt, args)
#endif

#define ITUNA_VERSION_MAJOR  0
#define ITUNA_VERSION_MINOR  1
#define ITUNA_VERSION_PATCH  0
#define ITUNA_VERSION_STRING "0.1.0"

typedef enum ituna_err {
    ITUNA_OK = 0,
    ITUNA_ERR_INVALID_ARG = 1, /* NULL or out-of-range argument */
    ITUNA_ERR_NOMEM = 2,
    ITUNA_ERR_PARSE = 3,  /* malformed input: header, payload, INI syntax */
    ITUNA_ERR_CONFIG = 4, /* unknown key or bad value */
    ITUNA_ERR_IO = 5,     /* file or OS error */
    ITUNA_ERR_TIMEOUT = 6,
    ITUNA_ERR_QUEUE_FULL = 7,
    ITUNA_ERR_STATE = 8,   /* closed handle, span already ended, ... */
    ITUNA_ERR_KAFKA = 9,   /* error reported by librdkafka or the broker */
    ITUNA_ERR_EXPORT = 10, /* export to the collector failed */
    ITUNA_ERR_NOT_FOUND = 11,
    ITUNA_ERR_MALFORMED = 12, /* a message payload rejected as malformed */
    ITUNA_ERR_UNSUPPORTED = 13
} ituna_err;

/* Short fixed description of an error code. Thread-safe. Borrowed: static storage. */
ITUNA_API const char *ituna_err2str(ituna_err err);
/* Enum name of an error code ("ITUNA_ERR_PARSE"). Thread-safe. Borrowed: static storage. */
ITUNA_API const char *ituna_err2name(ituna_err err);

/* Runtime version string, e.g. "0.1.0". Thread-safe. Borrowed: static storage. */
ITUNA_API const char *ituna_version(void);

/* Wall-clock time in ns since the Unix epoch: CLOCK_REALTIME, extrapolated from
 * the TSC between re-reads every 50 ms where the kernel keeps time on an
 * invariant TSC (ITUNA_CLOCK=syscall turns that off). Thread-safe. Does not block. */
ITUNA_API uint64_t ituna_now_ns(void);

typedef enum ituna_log_level {
    ITUNA_LOG_DEBUG = 0,
    ITUNA_LOG_INFO = 1,
    ITUNA_LOG_WARN = 2,
    ITUNA_LOG_ERROR = 3,
    ITUNA_LOG_NONE = 4
} ituna_log_level;

/* Receives ituna's own diagnostics. May be called from any ituna thread (exporter,
 * Kafka delivery thread), so the handler must be thread-safe and must not block long. */
typedef void (*ituna_log_fn)(ituna_log_level level, const char *message, void *opaque);

/* Route ituna's diagnostics to fn (NULL restores the default: stderr).
 * Thread-safe. Call before creating tracers to catch all messages. */
ITUNA_API void ituna_log_set_handler(ituna_log_fn fn, void *opaque);
/* Minimum level logged (default WARN; OTEL_LOG_LEVEL sets it via the tracer config). Thread-safe. */
ITUNA_API void ituna_log_set_level(ituna_log_level level);
/* Log through ituna's handler. Thread-safe. */
ITUNA_API void ituna_log(ituna_log_level level, const char *fmt, ...) ITUNA_PRINTF(2, 3);

#ifdef __cplusplus
}
#endif
#endif
