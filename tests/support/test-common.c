/* SPDX-License-Identifier: MIT */
#include "test-common.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- Contexts ------------------------------------------------------------ */

AioContext *tc_ctx_new(void)
{
    const char *want = getenv("AIOPOLL_BACKEND");
    AioContext *ctx = aio_context_new();

    cr_assert_not_null(ctx, "aio_context_new() failed (AIOPOLL_BACKEND=%s, errno %d)",
                       want ? want : "(unset)", errno);
    if (want && *want) {
        cr_assert_str_eq(aio_context_backend(ctx), want,
                         "context runs on backend \"%s\" but AIOPOLL_BACKEND=\"%s\"",
                         aio_context_backend(ctx), want);
    }
    cr_assert(aio_context_in_home_thread(ctx), "the creating thread is not home");
    return ctx;
}

/* ---- Threads ------------------------------------------------------------- */

struct tc_thread {
    pthread_t tid;
    void (*fn)(void *);
    void *arg;
    atomic_int done;
};

static void *tc_thread_main(void *p)
{
    tc_thread *t = p;
    t->fn(t->arg);
    atomic_store(&t->done, 1);
    return NULL;
}

tc_thread *tc_thread_start(void (*fn)(void *), void *arg)
{
    tc_thread *t = calloc(1, sizeof(*t));
    int err;

    cr_assert_not_null(t);
    t->fn = fn;
    t->arg = arg;
    atomic_init(&t->done, 0);
    err = pthread_create(&t->tid, NULL, tc_thread_main, t);
    cr_assert_eq(err, 0, "pthread_create: %d", err);
    return t;
}

bool tc_thread_join(tc_thread *t, int ms)
{
    if (!tsup_wait_flag(&t->done, ms)) {
        return false;
    }
    pthread_join(t->tid, NULL);
    free(t);
    return true;
}

/* ---- Watchdog ------------------------------------------------------------ */

struct tc_watchdog {
    AioContext *ctx;
    int ms;
    atomic_int stop;
    atomic_int fired;
    tc_thread *thread;
};

static void tc_watchdog_main(void *p)
{
    tc_watchdog *w = p;
    int64_t deadline = tsup_now_ns() + (int64_t)w->ms * 1000000;

    while (!atomic_load(&w->stop)) {
        if (tsup_now_ns() >= deadline) {
            atomic_store(&w->fired, 1);
            aio_notify(w->ctx);
            tsup_sleep_ms(20);
        } else {
            tsup_sleep_ms(2);
        }
    }
}

tc_watchdog *tc_watchdog_start(AioContext *ctx, int ms)
{
    tc_watchdog *w = calloc(1, sizeof(*w));

    cr_assert_not_null(w);
    w->ctx = ctx;
    w->ms = ms;
    atomic_init(&w->stop, 0);
    atomic_init(&w->fired, 0);
    w->thread = tc_thread_start(tc_watchdog_main, w);
    return w;
}

bool tc_watchdog_fired(tc_watchdog *w)
{
    return atomic_load(&w->fired) != 0;
}

bool tc_watchdog_stop(tc_watchdog *w)
{
    bool fired;

    atomic_store(&w->stop, 1);
    /* The watchdog only sleeps and notifies; it always finishes. */
    cr_assert(tc_thread_join(w->thread, 10000), "watchdog thread did not stop");
    fired = atomic_load(&w->fired) != 0;
    free(w);
    return fired;
}

/* ---- Bounded polling ----------------------------------------------------- */

tc_poll_result tc_poll_blocking_bounded(AioContext *ctx, int ms)
{
    tc_poll_result res;
    tc_watchdog *w = tc_watchdog_start(ctx, ms);
    int64_t t0 = tsup_now_ns();

    res.ret = aio_poll(ctx, true);
    res.elapsed_ms = tsup_ms_since(t0);
    res.rescued = tc_watchdog_stop(w);
    return res;
}

bool tc_poll_until(AioContext *ctx, atomic_int *v, int want, int ms)
{
    tc_watchdog *w = tc_watchdog_start(ctx, ms);
    bool fired;

    while (atomic_load(v) < want && !tc_watchdog_fired(w)) {
        int r = aio_poll(ctx, true);
        if (r < 0) {
            tc_watchdog_stop(w);
            cr_assert_fail("aio_poll(ctx, true) failed: %s", aio_strerror(r));
        }
    }
    fired = tc_watchdog_stop(w);
    return atomic_load(v) >= want && !fired;
}

int tc_poll_idle(AioContext *ctx, int max)
{
    int ran = 0;

    for (int i = 0; i < max; i++) {
        int r = aio_poll(ctx, false);
        cr_assert_geq(r, 0, "aio_poll(ctx, false) failed: %s", aio_strerror(r));
        if (r == 0) {
            break;
        }
        ran++;
    }
    return ran;
}

/* ---- Hook gate ----------------------------------------------------------- */

static void tc_gate_hook(AioContext *ctx, AioHookPoint point, void *opaque)
{
    tc_gate *g = opaque;

    (void)ctx;
    if (point != g->point) {
        return;
    }
    atomic_fetch_add(&g->calls, 1);
    if (!atomic_exchange(&g->armed, 0)) {
        return;
    }
    atomic_store(&g->reached, 1);
    if (g->hold && !tsup_wait_flag(&g->released, TC_GATE_HOLD_MS)) {
        atomic_store(&g->timed_out, 1);
    }
}

void tc_gate_arm(tc_gate *g)
{
    atomic_store(&g->reached, 0);
    atomic_store(&g->released, 0);
    atomic_store(&g->armed, 1);
}

void tc_gate_install(AioContext *ctx, tc_gate *g, AioHookPoint point, bool hold)
{
    memset(g, 0, sizeof(*g));
    g->point = point;
    g->hold = hold;
    atomic_init(&g->armed, 0);
    atomic_init(&g->reached, 0);
    atomic_init(&g->released, 0);
    atomic_init(&g->timed_out, 0);
    atomic_init(&g->calls, 0);
    tc_gate_arm(g);
    aio__set_test_hook(ctx, tc_gate_hook, g);
}

bool tc_gate_wait_reached(tc_gate *g, int ms)
{
    return tsup_wait_flag(&g->reached, ms);
}

void tc_gate_release(tc_gate *g)
{
    atomic_store(&g->released, 1);
}

void tc_gate_remove(AioContext *ctx, tc_gate *g)
{
    tc_gate_release(g);
    aio__set_test_hook(ctx, NULL, NULL);
}

/* ---- Remote actions -------------------------------------------------------- */

typedef struct tc_remote {
    tc_gate *gate;
    int asleep_ms;
    tc_action *fn;
    void *arg;
    atomic_int *missed;
} tc_remote;

static void tc_remote_main(void *p)
{
    tc_remote *r = p;

    if (!tc_gate_wait_reached(r->gate, TC_BOUND_MS) && r->missed) {
        atomic_store(r->missed, 1);
    }
    if (r->asleep_ms > 0) {
        tc_gate_release(r->gate);
        tsup_sleep_ms(r->asleep_ms);
        r->fn(r->arg);
    } else {
        r->fn(r->arg);
        tc_gate_release(r->gate);
    }
    free(r);
}

tc_thread *tc_remote_when_sleeping(tc_gate *g, int asleep_ms, tc_action *fn, void *arg,
                                   atomic_int *missed)
{
    tc_remote *r = calloc(1, sizeof(*r));

    cr_assert_not_null(r);
    r->gate = g;
    r->asleep_ms = asleep_ms;
    r->fn = fn;
    r->arg = arg;
    r->missed = missed;
    return tc_thread_start(tc_remote_main, r);
}

void tc_expect_wake(AioContext *ctx, atomic_int *v, int want, int asleep_ms, tc_action *fn,
                    void *arg, const char *what)
{
    tc_gate gate;
    atomic_int missed;
    tc_thread *t;
    bool woke;

    atomic_init(&missed, 0);
    tc_gate_install(ctx, &gate, AIO_HOOK_BEFORE_SLEEP, true);
    t = tc_remote_when_sleeping(&gate, asleep_ms, fn, arg, &missed);
    woke = tc_poll_until(ctx, v, want, TC_BOUND_MS);
    cr_assert(woke, "%s: home thread still asleep after %d ms: lost wake-up", what, TC_BOUND_MS);
    cr_assert(tc_thread_join(t, TC_BOUND_MS), "%s: remote thread did not finish", what);
    cr_assert(!atomic_load(&missed), "%s: home thread never reached AIO_HOOK_BEFORE_SLEEP", what);
    cr_assert(!atomic_load(&gate.timed_out), "%s: gate held the home thread until timeout",
              what);
    tc_gate_remove(ctx, &gate);
}

/* ---- Callbacks ----------------------------------------------------------- */

void tc_count_cb(void *opaque)
{
    atomic_fetch_add((atomic_int *)opaque, 1);
}

void tc_log_cb(void *opaque)
{
    tc_log_item *it = opaque;
    int i = atomic_fetch_add(&it->log->n, 1);

    if (i < TC_LOG_MAX) {
        it->log->ids[i] = it->id;
    }
}

void tc_log_expect(tc_log *log, const int *ids, int n)
{
    int got = atomic_load(&log->n);

    cr_assert_eq(got, n, "expected %d callbacks, got %d", n, got);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(log->ids[i], ids[i], "callback #%d: expected id %d, got %d", i, ids[i],
                     log->ids[i]);
    }
}

/* ---- Misc ---------------------------------------------------------------- */

AioContextStats tc_stats(AioContext *ctx)
{
    AioContextStats s;
    memset(&s, 0, sizeof(s));
    s.size = sizeof(s);
    cr_assert_eq(aio_context_get_stats(ctx, &s), 0);
    return s;
}

long tc_env_long(const char *name, long dflt)
{
    const char *s = getenv(name);
    char *end;
    long v;

    if (!s || !*s) {
        return dflt;
    }
    v = strtol(s, &end, 10);
    return (*end == '\0' && v > 0) ? v : dflt;
}

uint32_t tc_rand(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}
