/* testutil.h - a minimal assertion harness for the C tests: CHECK keeps going,
 * REQUIRE stops the test; main() returns non-zero if anything failed. */
#ifndef ITUNA_TESTUTIL_H
#define ITUNA_TESTUTIL_H
#include <stdio.h>
#include <string.h>

static int tu_failures = 0;
static int tu_checks = 0;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        tu_checks++;                                                                                         \
        if (!(cond)) {                                                                                       \
            tu_failures++;                                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
        }                                                                                                    \
    } while (0)
#define CHECK_STR(a, b)                                                                                      \
    do {                                                                                                     \
        const char *tu_a = (a), *tu_b = (b);                                                                 \
        tu_checks++;                                                                                         \
        if (!tu_a || !tu_b || strcmp(tu_a, tu_b) != 0) {                                                     \
            tu_failures++;                                                                                   \
            fprintf(stderr, "%s:%d: CHECK_STR failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__,               \
                    tu_a ? tu_a : "(null)", tu_b ? tu_b : "(null)");                                         \
        }                                                                                                    \
    } while (0)
#define REQUIRE(cond)                                                                                        \
    do {                                                                                                     \
        tu_checks++;                                                                                         \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond);                       \
            return 1;                                                                                        \
        }                                                                                                    \
    } while (0)
#define RUN(test)                                                                                            \
    do {                                                                                                     \
        int tu_before = tu_failures;                                                                         \
        if (test() != 0) tu_failures++;                                                                      \
        fprintf(stderr, "%s %s\n", tu_failures == tu_before ? "ok  " : "FAIL", #test);                       \
    } while (0)
#define TEST_MAIN_END()                                                                                      \
    fprintf(stderr, "%d checks, %d failures\n", tu_checks, tu_failures);                                     \
    return tu_failures ? 1 : 0
#endif
