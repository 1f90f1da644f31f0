/* harness.h - the one shared test harness: numbered cases, checks that count, a closing line
 * "N passed, N failed" that CI reads, and exit 77 for a clean skip.
 *
 * Use:
 *   int main(void) {
 *       CASE("tok-1.1", "empty string gives only BOS");
 *       CHECK_EQ(n, 1);
 *       return h_finish();
 *   }
 */
#ifndef AWQ_TEST_HARNESS_H
#define AWQ_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int h_pass, h_fail;
static const char *h_case = "?";

#define CASE(id, what)                                   \
    do {                                                 \
        h_case = (id);                                   \
        fprintf(stderr, "-- %s: %s\n", (id), (what));    \
    } while (0)

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (cond) {                                                                        \
            h_pass++;                                                                      \
        } else {                                                                           \
            h_fail++;                                                                      \
            fprintf(stderr, "FAIL %s %s:%d: %s\n", h_case, __FILE__, __LINE__, #cond);     \
        }                                                                                  \
    } while (0)

#define CHECK_EQ(a, b)                                                                     \
    do {                                                                                   \
        long long _a = (long long)(a), _b = (long long)(b);                                \
        if (_a == _b) {                                                                    \
            h_pass++;                                                                      \
        } else {                                                                           \
            h_fail++;                                                                      \
            fprintf(stderr, "FAIL %s %s:%d: %s == %s (%lld vs %lld)\n", h_case, __FILE__,  \
                    __LINE__, #a, #b, _a, _b);                                             \
        }                                                                                  \
    } while (0)

#define CHECK_STR(a, b)                                                                    \
    do {                                                                                   \
        const char *_a = (a), *_b = (b);                                                   \
        if (_a && _b && strcmp(_a, _b) == 0) {                                             \
            h_pass++;                                                                      \
        } else {                                                                           \
            h_fail++;                                                                      \
            fprintf(stderr, "FAIL %s %s:%d: %s == %s (\"%s\" vs \"%s\")\n", h_case,        \
                    __FILE__, __LINE__, #a, #b, _a ? _a : "(null)", _b ? _b : "(null)");   \
        }                                                                                  \
    } while (0)

/* substring check, for error messages */
#define CHECK_CONTAINS(hay, needle)                                                        \
    do {                                                                                   \
        const char *_h = (hay), *_n = (needle);                                            \
        if (_h && _n && strstr(_h, _n)) {                                                  \
            h_pass++;                                                                      \
        } else {                                                                           \
            h_fail++;                                                                      \
            fprintf(stderr, "FAIL %s %s:%d: \"%s\" should contain \"%s\"\n", h_case,       \
                    __FILE__, __LINE__, _h ? _h : "(null)", _n ? _n : "(null)");           \
        }                                                                                  \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                              \
    do {                                                                                   \
        double _a = (double)(a), _b = (double)(b), _t = (double)(tol);                     \
        if ((_a - _b) <= _t && (_b - _a) <= _t) {                                          \
            h_pass++;                                                                      \
        } else {                                                                           \
            h_fail++;                                                                      \
            fprintf(stderr, "FAIL %s %s:%d: %s ~ %s (%g vs %g, tol %g)\n", h_case,         \
                    __FILE__, __LINE__, #a, #b, _a, _b, _t);                               \
        }                                                                                  \
    } while (0)

/* Exit 77 (ctest SKIP_RETURN_CODE) with a reason, e.g. no GPU or no fetched tokenizer. */
#define SKIP(why)                                                                          \
    do {                                                                                   \
        printf("SKIP: %s\n", (why));                                                       \
        exit(77);                                                                          \
    } while (0)

static inline int h_finish(void) {
    (void)h_case; /* a test that skips before its first CASE never reads it */
    printf("%d passed, %d failed\n", h_pass, h_fail);
    return h_fail ? 1 : 0;
}

/* An environment variable set by CTest (AWQ_SRC, AWQ_BUILD, AWQ_BIN, AWQ_TOKENIZER), or NULL. */
static inline const char *h_env(const char *name) {
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

#endif
