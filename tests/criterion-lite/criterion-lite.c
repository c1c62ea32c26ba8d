/* SPDX-License-Identifier: MIT */
/* The runner behind criterion/criterion.h (POSIX: one child process a test). */
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "criterion/criterion.h"

#define DEFAULT_TIMEOUT_S 60
#define FAIL_EXIT_CODE 3 /* a child that exits with this failed an assertion */

static struct crl_test *tests;

void crl_register(struct crl_test *t)
{
    /* Constructors run in reverse definition order with some toolchains and
     * in order with others; keep definition order by appending. */
    struct crl_test **tail = &tests;
    while (*tail) {
        tail = &(*tail)->next;
    }
    *tail = t;
}

void crl_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    fprintf(stderr, "[----] %s:%d: Assertion Failed\n[----]   ", file, line);
    va_list ap;
    va_start(ap, fmt);
    if (*fmt) {
        vfprintf(stderr, fmt, ap);
    } else {
        fprintf(stderr, "The expression %s is false.", expr);
    }
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    _exit(FAIL_EXIT_CODE);
}

void crl_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[----] ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

enum outcome { PASSED, FAILED, CRASHED };

static enum outcome run_one(const struct crl_test *t)
{
    double timeout = t->opts.timeout > 0 ? t->opts.timeout : DEFAULT_TIMEOUT_S;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return CRASHED;
    }
    if (pid == 0) {
        /* SIGALRM's default action ends the child wherever it is stuck,
         * for example a thread asleep in ppoll after a lost wake-up. */
        alarm((unsigned)(timeout + 0.999));
        t->fn();
        fflush(NULL);
        _exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (WIFEXITED(status)) {
        if (WEXITSTATUS(status) == 0) {
            return PASSED;
        }
        if (WEXITSTATUS(status) != FAIL_EXIT_CODE) {
            fprintf(stderr, "[----] %s::%s: exited with status %d\n", t->suite, t->name,
                    WEXITSTATUS(status));
        }
        return FAILED;
    }
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
        fprintf(stderr, "[----] %s::%s: Timed out. (%.2fs)\n", t->suite, t->name, timeout);
        return FAILED;
    }
    fprintf(stderr, "[----] %s::%s: CRASH! (signal %d)\n", t->suite, t->name,
            WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    return CRASHED;
}

int main(int argc, char **argv)
{
    const char *filter = NULL; /* "suite/name" or "suite/*", as Criterion */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
            filter = argv[++i];
        } else if (strncmp(argv[i], "--filter=", 9) == 0) {
            filter = argv[i] + 9;
        }
        /* -jN and the rest are accepted and ignored: tests run one by one. */
    }
    int tested = 0, passing = 0, failing = 0, crashing = 0;
    for (struct crl_test *t = tests; t; t = t->next) {
        if (filter) {
            char full[256];
            snprintf(full, sizeof(full), "%s/%s", t->suite, t->name);
            size_t n = strlen(filter);
            bool wildcard = n > 0 && filter[n - 1] == '*';
            if (wildcard ? strncmp(full, filter, n - 1) != 0 : strcmp(full, filter) != 0) {
                continue;
            }
        }
        tested++;
        switch (run_one(t)) {
        case PASSED:
            passing++;
            break;
        case FAILED:
            failing++;
            fprintf(stderr, "[FAIL] %s::%s\n", t->suite, t->name);
            break;
        case CRASHED:
            crashing++;
            fprintf(stderr, "[FAIL] %s::%s (crashed)\n", t->suite, t->name);
            break;
        }
    }
    fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d \n",
            tested, passing, failing, crashing);
    return failing || crashing ? 1 : 0;
}
