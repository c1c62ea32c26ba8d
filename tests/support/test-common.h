/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the aiopoll test suite: context creation that checks the
 * backend under test, bounded thread joins, a watchdog that rescues (and
 * reports) a lost wake-up, bounded blocking polls, a test-hook "gate" that
 * forces interleavings, and small counting callbacks. Portable: threads are
 * pthreads (winpthreads on MinGW); OS differences stay in test-support.h.
 *
 * Functions documented "test thread" may use Criterion assertions and must
 * be called from the thread that runs the test; everything else is safe on
 * helper threads.
 */
#ifndef AIOPOLL_TEST_COMMON_H
#define AIOPOLL_TEST_COMMON_H

#include <aiopoll/aio.h>
#include <criterion/criterion.h>

#include "aio-test-hooks.h"
#include "test-support.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* How long a test waits for something that must happen "promptly" (a
 * wake-up, a callback) before declaring it lost. Generous: sanitizers, Wine
 * and a loaded 2-core CI machine are all much slower than a desktop. */
#define TC_BOUND_MS 3000
/* A wake-up that is "prompt" returns well before the watchdog bound. */
#define TC_PROMPT_MS 1000

/* ---- Contexts (test thread) --------------------------------------------- */

/* aio_context_new(), asserting success and that the context runs on the
 * backend named by AIOPOLL_BACKEND when that is set, so that a run can never
 * silently test the wrong backend. The calling thread becomes home. */
AioContext *tc_ctx_new(void);

/* ---- Threads ------------------------------------------------------------ */

typedef struct tc_thread tc_thread;

/* Starts fn(arg) on a new thread. Test thread (asserts on failure). */
tc_thread *tc_thread_start(void (*fn)(void *), void *arg);
/* Joins t if it finishes within ms and frees it; returns false (leaving the
 * thread running and its record leaked) if it does not, so that a thread
 * stuck in the poll loop never hangs the test. */
bool tc_thread_join(tc_thread *t, int ms);

/* ---- Watchdog ----------------------------------------------------------- */

typedef struct tc_watchdog tc_watchdog;

/* After ms milliseconds, marks itself fired and calls aio_notify(ctx) every
 * 20 ms until stopped, so that a poll that lost its wake-up returns and the
 * test can report it instead of hanging. */
tc_watchdog *tc_watchdog_start(AioContext *ctx, int ms);
bool tc_watchdog_fired(tc_watchdog *w);
/* Stops, joins and frees w; returns whether it fired. */
bool tc_watchdog_stop(tc_watchdog *w);

/* ---- Bounded polling (home thread) -------------------------------------- */

typedef struct tc_poll_result {
    int ret;            /* aio_poll's return value */
    int64_t elapsed_ms; /* how long the call took */
    bool rescued;       /* the watchdog had to wake it */
} tc_poll_result;

/* One aio_poll(ctx, true) with a watchdog of ms milliseconds. */
tc_poll_result tc_poll_blocking_bounded(AioContext *ctx, int ms);

/* Loops aio_poll(ctx, true) until *v >= want. Returns true if that happened
 * within ms without the watchdog having to wake the poll (test thread:
 * asserts that aio_poll never fails). */
bool tc_poll_until(AioContext *ctx, atomic_int *v, int want, int ms);

/* Runs aio_poll(ctx, false) until it returns 0 (at most max times); returns
 * how many calls returned 1 (test thread). */
int tc_poll_idle(AioContext *ctx, int max);

/* ---- Hook gate: forcing an interleaving --------------------------------- */

/* Installed as ctx's test hook, a gate reacts to the first call at `point`
 * (after tc_gate_arm, again to the next one): it records that the poller
 * got there and, if `hold`, keeps the poller there until tc_gate_release or
 * for at most TC_GATE_HOLD_MS (then records a timeout and lets it go). */
#define TC_GATE_HOLD_MS 5000

typedef struct tc_gate {
    AioHookPoint point;
    bool hold;
    atomic_int armed;
    atomic_int reached;
    atomic_int released;
    atomic_int timed_out;
    atomic_int calls; /* every hook call at `point` */
} tc_gate;

/* Installs g on ctx (call while no thread polls ctx) and arms it. */
void tc_gate_install(AioContext *ctx, tc_gate *g, AioHookPoint point, bool hold);
/* Re-arms g for the next call at its point. */
void tc_gate_arm(tc_gate *g);
bool tc_gate_wait_reached(tc_gate *g, int ms);
void tc_gate_release(tc_gate *g);
/* Removes the hook of ctx (releasing g first). */
void tc_gate_remove(AioContext *ctx, tc_gate *g);

/* ---- Remote actions on a sleeping home thread --------------------------- */

typedef void tc_action(void *arg);

/* Starts a thread that waits until the home thread reaches g (installed with
 * hold = true at AIO_HOOK_BEFORE_SLEEP), then:
 *  - asleep_ms == 0: runs fn(arg) while the home thread is held just before
 *    its sleep, then releases it;
 *  - asleep_ms > 0: releases it, waits asleep_ms so that it is really asleep
 *    in the backend, then runs fn(arg).
 * If the gate is not reached within TC_BOUND_MS it runs fn anyway and sets
 * *missed (when missed is not NULL). */
tc_thread *tc_remote_when_sleeping(tc_gate *g, int asleep_ms, tc_action *fn, void *arg,
                                   atomic_int *missed);

/* The standard "a remote event must wake the blocked home thread" check, on
 * the test thread of a context it is home of: installs a gate, starts
 * tc_remote_when_sleeping(fn, arg), polls blocking until *v >= want and
 * fails with "<what>: home thread still asleep after N ms: lost wake-up" if
 * that needed the watchdog. Also asserts that the home thread did get to the
 * point of sleeping (so the scenario was really exercised). */
void tc_expect_wake(AioContext *ctx, atomic_int *v, int want, int asleep_ms, tc_action *fn,
                    void *arg, const char *what);

/* ---- Callbacks ----------------------------------------------------------- */

/* opaque is an atomic_int counter. */
void tc_count_cb(void *opaque);

/* An order log: each callback appends its id. */
#define TC_LOG_MAX 64
typedef struct tc_log {
    atomic_int n;
    int ids[TC_LOG_MAX];
} tc_log;
typedef struct tc_log_item {
    tc_log *log;
    int id;
} tc_log_item;
void tc_log_cb(void *opaque); /* opaque is a tc_log_item */
/* Asserts the log is exactly ids[0..n) (test thread). */
void tc_log_expect(tc_log *log, const int *ids, int n);

/* ---- Misc ---------------------------------------------------------------- */

/* ctx's loop metrics (aio_context_get_stats, asserted to succeed). */
AioContextStats tc_stats(AioContext *ctx);

/* An integer environment variable, or dflt if unset/invalid. */
long tc_env_long(const char *name, long dflt);

/* A small deterministic PRNG (xorshift32); *state must be non-zero. */
uint32_t tc_rand(uint32_t *state);

#endif
