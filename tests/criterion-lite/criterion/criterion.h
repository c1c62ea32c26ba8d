/* SPDX-License-Identifier: MIT */
/*
 * criterion-lite: the subset of Criterion's API that aiopoll's tests use, for
 * builds where real Criterion cannot run. Its sandboxing library (BoxFort)
 * maps its shared arena at random addresses in 0x2000'0000'0000 to
 * 0x7f00'0000'0000, almost all of which ThreadSanitizer reserves for its
 * shadow memory, so a TSan-instrumented Criterion binary aborts before the
 * first test ("Could not initialize inheritable arena", Criterion issue 274).
 *
 * The test sources are the same: only this header and runner stand in for
 * libcriterion. Each test runs in its own child process with its .timeout
 * enforced, and the runner prints Criterion's "Synthesis" line.
 */
#ifndef CRITERION_LITE_CRITERION_H
#define CRITERION_LITE_CRITERION_H

#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

struct crl_options {
    int crl_reserved; /* lets Test() take an empty option list */
    double timeout;   /* seconds; 0: the runner's default */
};

struct crl_test {
    const char *suite;
    const char *name;
    void (*fn)(void);
    struct crl_options opts;
    struct crl_test *next;
};

void crl_register(struct crl_test *t);
void crl_fail(const char *file, int line, const char *expr, const char *fmt, ...);
void crl_log(const char *fmt, ...);

/* Registration runs from a constructor, as Criterion's section-based
 * registration effectively does. */
/* One level of indirection so that a suite name given by a macro (as in
 * fd-cases.inc) is expanded before it is pasted. */
#define Test(...) CRL_TEST_(__VA_ARGS__)
#define CRL_TEST_(suite, name, ...)                                                        \
    static void crl_fn_##suite##_##name(void);                                             \
    static struct crl_test crl_test_##suite##_##name = {                                   \
        #suite, #name, crl_fn_##suite##_##name, {.crl_reserved = 0, __VA_ARGS__}, NULL};  \
    __attribute__((constructor)) static void crl_reg_##suite##_##name(void)                \
    {                                                                                      \
        crl_register(&crl_test_##suite##_##name);                                          \
    }                                                                                      \
    static void crl_fn_##suite##_##name(void)

/* The trailing "" gives every message a format even when the caller wrote
 * none (cr_assert(x)); extra arguments are ignored by the formatter. */
#define cr_assert(...) CRL_ASSERT_(__VA_ARGS__, "")
#define CRL_ASSERT_(cond, ...)                                       \
    do {                                                             \
        if (!(cond)) {                                               \
            crl_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);        \
        }                                                            \
    } while (0)

#define CRL_CMP_(op, a, b, ...)                                      \
    do {                                                             \
        if (!((a)op(b))) {                                           \
            crl_fail(__FILE__, __LINE__, #a " " #op " " #b, __VA_ARGS__); \
        }                                                            \
    } while (0)

#define cr_assert_eq(...) CRL_CMP_(==, __VA_ARGS__, "")
#define cr_assert_neq(...) CRL_CMP_(!=, __VA_ARGS__, "")
#define cr_assert_lt(...) CRL_CMP_(<, __VA_ARGS__, "")
#define cr_assert_leq(...) CRL_CMP_(<=, __VA_ARGS__, "")
#define cr_assert_gt(...) CRL_CMP_(>, __VA_ARGS__, "")
#define cr_assert_geq(...) CRL_CMP_(>=, __VA_ARGS__, "")
#define cr_assert_null(...) CRL_ASSERT_NULL_(==, __VA_ARGS__, "")
#define cr_assert_not_null(...) CRL_ASSERT_NULL_(!=, __VA_ARGS__, "")
#define CRL_ASSERT_NULL_(op, p, ...) CRL_CMP_(op, (const void *)(p), (const void *)0, __VA_ARGS__)
#define cr_assert_str_eq(...) CRL_STR_EQ_(__VA_ARGS__, "")
#define CRL_STR_EQ_(a, b, ...)                                       \
    do {                                                             \
        if (strcmp((a), (b)) != 0) {                                 \
            crl_fail(__FILE__, __LINE__, #a " equals " #b, __VA_ARGS__); \
        }                                                            \
    } while (0)
#define cr_assert_fail(...) crl_fail(__FILE__, __LINE__, "cr_assert_fail", __VA_ARGS__, "")

#define cr_log_info(...) crl_log(__VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif
