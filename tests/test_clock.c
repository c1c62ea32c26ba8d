/* SPDX-License-Identifier: MIT */
/*
 * Clocks: REALTIME, HOST and VIRTUAL readings; unknown types; the virtual
 * clock's stop/start/set rules; a stopped virtual clock's timers never fire
 * by the passing of real time; setting it fires what became due and wakes
 * every context with a virtual timer (two contexts on two threads); start
 * wakes a context that sleeps with only a stopped virtual deadline; timers
 * on every clock never fire early; a HOST timer far away does not let a poll
 * sleep past the HOST bound (so a wall-clock jump is noticed).
 *
 * Each test runs in its own process (Criterion and criterion-lite both
 * fork), so the process-wide virtual clock starts fresh in each.
 */
#include "test-common.h"

#define MS (1000000LL)

typedef struct ck_timer {
    AioTimer *t;
    AioClockType type;
    int64_t deadline;
    int64_t fired_at; /* the timer's clock, read in the callback */
    atomic_int fired;
} ck_timer;

static void ck_cb(void *opaque)
{
    ck_timer *c = opaque;
    c->fired_at = aio_clock_get_ns(c->type);
    atomic_fetch_add(&c->fired, 1);
}

static void ck_init(ck_timer *c, AioContext *ctx, AioClockType type)
{
    *c = (ck_timer){.type = type};
    atomic_init(&c->fired, 0);
    c->t = aio_timer_new_on(ctx, type, ck_cb, c);
    cr_assert_not_null(c->t);
}

static void ck_arm(ck_timer *c, int64_t deadline)
{
    c->deadline = deadline;
    aio_timer_mod(c->t, deadline);
}

Test(clock, readings_and_unknown_types, .timeout = 10)
{
    int64_t rt = aio_clock_get_ns(AIO_CLOCK_REALTIME);
    int64_t v = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    int64_t rt2 = aio_clock_get_ns(AIO_CLOCK_REALTIME);
    /* Initially running and equal to REALTIME. */
    cr_assert(rt <= v && v <= rt2, "virtual %lld not between realtime %lld and %lld",
              (long long)v, (long long)rt, (long long)rt2);
    cr_assert_leq(rt, aio_clock_ns());
    /* HOST is the wall clock: after 2020-01-01 (1577836800 s). */
    cr_assert_gt(aio_clock_get_ns(AIO_CLOCK_HOST), 1577836800LL * 1000000000LL);
    cr_assert_eq(aio_clock_get_ns((AioClockType)7), INT64_MIN);
    AioContext *ctx = tc_ctx_new();
    atomic_int n = 0;
    cr_assert_null(aio_timer_new_on(ctx, (AioClockType)7, tc_count_cb, &n));
    cr_assert_null(aio_timer_new_on(ctx, (AioClockType)-1, tc_count_cb, &n));
    cr_assert_null(aio_timer_new_on(NULL, AIO_CLOCK_HOST, tc_count_cb, &n));
    cr_assert_null(aio_timer_new_on(ctx, AIO_CLOCK_HOST, NULL, &n));
    aio_context_unref(ctx);
}

Test(clock, virtual_stop_start_set_rules, .timeout = 10)
{
    aio_virtual_clock_stop();
    int64_t v0 = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    tsup_sleep_ms(5);
    cr_assert_eq(aio_clock_get_ns(AIO_CLOCK_VIRTUAL), v0, "a stopped clock moved");
    aio_virtual_clock_stop(); /* no nesting: no-op */
    cr_assert_eq(aio_virtual_clock_set_ns(v0 - 1), -EINVAL, "set moved the clock backwards");
    cr_assert_eq(aio_virtual_clock_set_ns(v0), 0);
    cr_assert_eq(aio_virtual_clock_set_ns(v0 + 1000 * MS), 0);
    cr_assert_eq(aio_clock_get_ns(AIO_CLOCK_VIRTUAL), v0 + 1000 * MS, "set while stopped");
    aio_virtual_clock_start();
    /* Continues from where it stood: the stopped real time is not added. */
    int64_t v1 = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    cr_assert_geq(v1, v0 + 1000 * MS);
    cr_assert_lt(v1, v0 + 1000 * MS + (int64_t)TC_BOUND_MS * MS);
    aio_virtual_clock_start(); /* no-op */
    int64_t v2 = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    cr_assert_geq(v2, v1, "the virtual clock went backwards");
    /* Running, it advances. */
    int64_t start = tsup_now_ns();
    while (aio_clock_get_ns(AIO_CLOCK_VIRTUAL) == v2 && tsup_ms_since(start) < TC_BOUND_MS) {
        tsup_yield();
    }
    cr_assert_gt(aio_clock_get_ns(AIO_CLOCK_VIRTUAL), v2, "a running clock stood still");
    /* A single stop after a running period stops it once. */
    aio_virtual_clock_stop();
    int64_t v3 = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    aio_virtual_clock_start();
    cr_assert_geq(aio_clock_get_ns(AIO_CLOCK_VIRTUAL), v3);
}

/* A REALTIME timer ends the poll; the stopped virtual timer, due by real
 * time long before, must not have fired. */
Test(clock, stopped_virtual_timer_never_fires_by_real_time, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    aio_virtual_clock_stop();
    ck_timer v, rt;
    ck_init(&v, ctx, AIO_CLOCK_VIRTUAL);
    ck_init(&rt, ctx, AIO_CLOCK_REALTIME);
    int64_t v0 = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    ck_arm(&v, v0 + 1 * MS);
    ck_arm(&rt, aio_clock_ns() + 30 * MS);
    cr_assert(tc_poll_until(ctx, &rt.fired, 1, TC_BOUND_MS));
    cr_assert_eq(atomic_load(&v.fired), 0, "a stopped virtual timer fired");
    cr_assert(aio_timer_pending(v.t));
    /* Setting the clock to the deadline fires it (this thread: the next
     * poll dispatches). */
    cr_assert_eq(aio_virtual_clock_set_ns(v0 + 1 * MS), 0);
    cr_assert(tc_poll_until(ctx, &v.fired, 1, TC_BOUND_MS));
    cr_assert_geq(v.fired_at, v.deadline, "fired early");
    aio_timer_free(v.t);
    aio_timer_free(rt.t);
    aio_context_unref(ctx);
}

typedef struct ck_set {
    int64_t ns;
    bool start; /* aio_virtual_clock_start() instead of set */
} ck_set;

static void ck_do_set(void *arg)
{
    ck_set *s = arg;
    if (s->start) {
        aio_virtual_clock_start();
    } else {
        cr_assert_eq(aio_virtual_clock_set_ns(s->ns), 0);
    }
}

/* The home thread sleeps with only a stopped virtual deadline (no timeout
 * at all); another thread sets the clock past it, held before the sleep
 * and really asleep. */
static void ck_set_wakes(int asleep_ms, bool start)
{
    AioContext *ctx = tc_ctx_new();
    aio_virtual_clock_stop();
    ck_timer v;
    ck_init(&v, ctx, AIO_CLOCK_VIRTUAL);
    int64_t v0 = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    ck_arm(&v, v0 + 1 * MS);
    ck_set s = {.ns = v0 + 1 * MS, .start = start};
    tc_expect_wake(ctx, &v.fired, 1, asleep_ms, ck_do_set, &s,
                   start ? "virtual clock start" : "virtual clock set");
    cr_assert_geq(v.fired_at, v.deadline, "fired early");
    aio_timer_free(v.t);
    aio_context_unref(ctx);
}

Test(clock, set_wakes_context_before_sleep, .timeout = 20)
{
    ck_set_wakes(0, false);
}

Test(clock, set_wakes_sleeping_context, .timeout = 20)
{
    ck_set_wakes(50, false);
}

Test(clock, start_wakes_context_sleeping_on_stopped_deadline, .timeout = 20)
{
    ck_set_wakes(50, true);
}

/* Two contexts on two threads, each with a virtual timer: one set wakes both. */
typedef struct ck_loop {
    AioContext *ctx;
    ck_timer v;
    int64_t deadline;
    atomic_int ready;
    bool ok;
} ck_loop;

static void ck_loop_main(void *arg)
{
    ck_loop *l = arg;
    l->ctx = aio_context_new();
    ck_init(&l->v, l->ctx, AIO_CLOCK_VIRTUAL);
    ck_arm(&l->v, l->deadline);
    atomic_store(&l->ready, 1);
    tc_watchdog *wd = tc_watchdog_start(l->ctx, TC_BOUND_MS);
    while (!atomic_load(&l->v.fired) && !tc_watchdog_fired(wd)) {
        aio_poll(l->ctx, true);
    }
    l->ok = !tc_watchdog_stop(wd) && atomic_load(&l->v.fired) == 1 &&
            l->v.fired_at >= l->v.deadline;
    aio_timer_free(l->v.t);
    aio_context_unref(l->ctx);
}

Test(clock, set_wakes_every_context_with_a_virtual_timer, .timeout = 20)
{
    aio_virtual_clock_stop();
    int64_t v0 = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    ck_loop a = {.deadline = v0 + 5 * MS}, b = {.deadline = v0 + 7 * MS};
    atomic_init(&a.ready, 0);
    atomic_init(&b.ready, 0);
    tc_thread *ta = tc_thread_start(ck_loop_main, &a);
    tc_thread *tb = tc_thread_start(ck_loop_main, &b);
    cr_assert(tsup_wait_flag(&a.ready, TC_BOUND_MS) && tsup_wait_flag(&b.ready, TC_BOUND_MS));
    tsup_sleep_ms(30); /* let both fall asleep (either way they must wake) */
    cr_assert_eq(aio_virtual_clock_set_ns(v0 + 10 * MS), 0);
    cr_assert(tc_thread_join(ta, TC_BOUND_MS * 2) && tc_thread_join(tb, TC_BOUND_MS * 2));
    cr_assert(a.ok, "context A: virtual timer lost or early");
    cr_assert(b.ok, "context B: virtual timer lost or early");
}

/* Odd sub-millisecond offsets catch a timeout rounded down. */
static void ck_never_early(AioClockType type)
{
    AioContext *ctx = tc_ctx_new();
    enum { N = 6 };
    ck_timer c[N];
    atomic_int fired = 0;
    int64_t now = aio_clock_get_ns(type);
    for (int i = 0; i < N; i++) {
        ck_init(&c[i], ctx, type);
        ck_arm(&c[i], now + (int64_t)(i + 1) * 1700000 + 333);
    }
    for (int i = 0; i < N; i++) {
        cr_assert(tc_poll_until(ctx, &c[i].fired, 1, TC_BOUND_MS), "timer %d lost", i);
        cr_assert_geq(c[i].fired_at, c[i].deadline, "timer %d fired %lld ns early", i,
                      (long long)(c[i].deadline - c[i].fired_at));
        atomic_fetch_add(&fired, 1);
    }
    for (int i = 0; i < N; i++) {
        aio_timer_free(c[i].t);
    }
    aio_context_unref(ctx);
}

Test(clock, realtime_timers_never_early, .timeout = 20)
{
    ck_never_early(AIO_CLOCK_REALTIME);
}

Test(clock, host_timers_never_early, .timeout = 20)
{
    ck_never_early(AIO_CLOCK_HOST);
}

Test(clock, virtual_timers_never_early_while_running, .timeout = 20)
{
    ck_never_early(AIO_CLOCK_VIRTUAL);
}

/* A HOST deadline an hour away: the poll still comes back within the HOST
 * bound (100 ms), so it would see a wall-clock jump to that deadline. The
 * watchdog is the failure path: it only rescues after TC_BOUND_MS. */
Test(clock, host_sleep_is_bounded, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    ck_timer h;
    ck_init(&h, ctx, AIO_CLOCK_HOST);
    ck_arm(&h, aio_clock_get_ns(AIO_CLOCK_HOST) + 3600LL * 1000 * MS);
    /* Accept the arming's notification, so that the next poll sleeps. */
    cr_assert_geq(tc_poll_blocking_bounded(ctx, TC_BOUND_MS).ret, 0);
    tc_poll_result r = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert_geq(r.ret, 0);
    cr_assert(!r.rescued, "a poll with a HOST timer slept %lld ms: a jump would go unseen",
              (long long)r.elapsed_ms);
    cr_assert_eq(atomic_load(&h.fired), 0);
    aio_timer_free(h.t);
    aio_context_unref(ctx);
}

/* Clocks are independent: a virtual timer set earlier than a realtime one
 * in raw value is ordered by its own clock, not by the number. */
Test(clock, heaps_per_clock_do_not_mix, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    aio_virtual_clock_stop();
    ck_timer v, rt;
    ck_init(&v, ctx, AIO_CLOCK_VIRTUAL);
    ck_init(&rt, ctx, AIO_CLOCK_REALTIME);
    int64_t v0 = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    cr_assert_eq(aio_virtual_clock_set_ns(v0 + 3600LL * 1000 * MS), 0);
    ck_arm(&v, v0 + 3600LL * 1000 * MS + 5 * MS); /* 5 ms of virtual time away */
    ck_arm(&rt, aio_clock_ns() + 5 * MS);         /* 5 ms of real time away */
    cr_assert(tc_poll_until(ctx, &rt.fired, 1, TC_BOUND_MS));
    cr_assert_eq(atomic_load(&v.fired), 0);
    aio_timer_del(v.t);
    cr_assert(!aio_timer_pending(v.t));
    aio_timer_free(v.t);
    aio_timer_free(rt.t);
    aio_context_unref(ctx);
}

/* ---- The virtual clock at its edges (a review of stop 23) ------------------ */

/* A due VIRTUAL timer that a dispatch pass left for the next poll: armed in
 * the pass (by a REALTIME callback, which runs first), so the pass's "armed
 * before it began" rule skips it, and not its heap's earliest (C is), so
 * nobody notified. The next blocking poll must not sleep over it, also when
 * the clock is stopped: a stopped clock still makes a reached deadline's
 * timeout 0. Before the fix the stopped case slept until the watchdog. */
typedef struct ck_late {
    ck_timer b;
    int64_t v;
    atomic_int a_fired;
} ck_late;

static void ck_late_arm(void *opaque)
{
    ck_late *s = opaque;
    ck_arm(&s->b, s->v);
    atomic_fetch_add(&s->a_fired, 1);
}

static void ck_due_left_for_next_poll(bool stopped)
{
    AioContext *ctx = tc_ctx_new();
    if (stopped) {
        aio_virtual_clock_stop();
    }
    ck_late s;
    atomic_init(&s.a_fired, 0);
    ck_timer c;
    ck_init(&c, ctx, AIO_CLOCK_VIRTUAL);
    ck_init(&s.b, ctx, AIO_CLOCK_VIRTUAL);
    AioTimer *a = aio_timer_new_on(ctx, AIO_CLOCK_REALTIME, ck_late_arm, &s);
    s.v = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    ck_arm(&c, s.v - 1);
    aio_timer_mod(a, aio_clock_ns());
    tc_poll_result r = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert_eq(r.ret, 1);
    cr_assert_eq(atomic_load(&s.a_fired), 1);
    cr_assert_eq(atomic_load(&c.fired), 1);
    cr_assert_eq(atomic_load(&s.b.fired), 0, "the pass fired a timer armed during it");
    cr_assert(aio_timer_pending(s.b.t));
    r = tc_poll_blocking_bounded(ctx, 500);
    cr_assert(!r.rescued,
              "the next blocking poll slept %lld ms with a due VIRTUAL timer (clock %s)",
              (long long)r.elapsed_ms, stopped ? "stopped" : "running");
    cr_assert_eq(atomic_load(&s.b.fired), 1);
    cr_assert_geq(s.b.fired_at, s.v);
    aio_timer_free(a);
    aio_timer_free(c.t);
    aio_timer_free(s.b.t);
    aio_context_unref(ctx);
}

Test(clock, due_virtual_timer_is_not_slept_over, .timeout = 20)
{
    ck_due_left_for_next_poll(false);
}

Test(clock, due_virtual_timer_on_a_stopped_clock_is_not_slept_over, .timeout = 20)
{
    ck_due_left_for_next_poll(true);
}

/* INT64_MAX is a deadline like any other (it used to be the "no timer"
 * value of a heap's earliest deadline too, and such a timer never fired). */
Test(clock, virtual_timer_at_int64_max_fires_when_the_clock_gets_there, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    aio_virtual_clock_stop();
    ck_timer t;
    ck_init(&t, ctx, AIO_CLOCK_VIRTUAL);
    ck_arm(&t, INT64_MAX);
    cr_assert(!tc_poll_until(ctx, &t.fired, 1, 50), "fired before the clock got there");
    cr_assert_eq(aio_virtual_clock_set_ns(INT64_MAX), 0);
    cr_assert_eq(aio_clock_get_ns(AIO_CLOCK_VIRTUAL), INT64_MAX);
    cr_assert(tc_poll_until(ctx, &t.fired, 1, TC_BOUND_MS),
              "due at INT64_MAX but not fired (pending %d)", aio_timer_pending(t.t));
    aio_timer_free(t.t);
    aio_context_unref(ctx);
}

/* Running, the clock is REALTIME plus an offset: set near INT64_MAX it must
 * stand there, not wrap negative (signed overflow: UBSan's complaint, then a
 * clock that went backwards and accepted a set to 0). */
Test(clock, running_virtual_clock_set_near_int64_max_saturates, .timeout = 20)
{
    cr_assert_eq(aio_virtual_clock_set_ns(INT64_MAX - 1000000), 0);
    int64_t v0 = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    tsup_sleep_ms(5);
    int64_t v1 = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    cr_assert_geq(v1, v0, "the virtual clock went backwards: %lld then %lld", (long long)v0,
                  (long long)v1);
    cr_assert_eq(v1, INT64_MAX, "5 ms past INT64_MAX - 1 ms it reads %lld", (long long)v1);
    cr_assert_eq(aio_virtual_clock_set_ns(0), -EINVAL);
    aio_virtual_clock_stop();
    cr_assert_eq(aio_clock_get_ns(AIO_CLOCK_VIRTUAL), INT64_MAX, "stop froze another value");
    aio_virtual_clock_start();
    cr_assert_eq(aio_clock_get_ns(AIO_CLOCK_VIRTUAL), INT64_MAX);
}

/* And a timer just short of INT64_MAX on such a running clock fires. */
Test(clock, virtual_timer_near_int64_max_fires_on_a_running_clock, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    ck_timer t;
    ck_init(&t, ctx, AIO_CLOCK_VIRTUAL);
    cr_assert_eq(aio_virtual_clock_set_ns(INT64_MAX - 5000000), 0);
    ck_arm(&t, INT64_MAX - 1);
    cr_assert(tc_poll_until(ctx, &t.fired, 1, TC_BOUND_MS),
              "5 ms of running virtual time away, not fired; the clock reads %lld",
              (long long)aio_clock_get_ns(AIO_CLOCK_VIRTUAL));
    cr_assert_geq(t.fired_at, INT64_MAX - 1);
    aio_timer_free(t.t);
    aio_context_unref(ctx);
}
