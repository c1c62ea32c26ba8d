/* SPDX-License-Identifier: MIT */
/*
 * Rules of aio_poll that nothing else checks, each forced deterministically
 * with the test-only knobs (src/aio-test-hooks.h): the dispatch right keeps
 * callbacks on one thread at a time and a sleeping home thread gives it up;
 * a sleep never ends before the timer it sleeps for; adaptive polling stops
 * busy-polling when it does not pay; a deadline equal to the current time is
 * due; and a failing backend wait still lets bottom halves and timers run.
 */
#include "test-common.h"

#include <string.h>

/* ---- The dispatch right ------------------------------------------------- */

typedef struct intruder {
    AioContext *ctx;
    atomic_int in_cb;    /* the home thread is inside a callback */
    atomic_int release;  /* ... and may leave it */
    atomic_int ran;      /* the intruder's BH */
    int poll_ret;        /* the intruder's aio_poll(ctx, false) */
    int ran_at_poll;     /* ran, right after that poll */
} intruder;

static void intruder_init(intruder *in, AioContext *ctx)
{
    memset(in, 0, sizeof(*in));
    in->ctx = ctx;
    atomic_init(&in->in_cb, 0);
    atomic_init(&in->release, 0);
    atomic_init(&in->ran, 0);
}

/* Schedules work, then polls without blocking from this other thread. */
static void intruder_poll(intruder *in)
{
    /* Helper thread: no assertions; a failed schedule shows as ran == 0. */
    aio_bh_schedule_oneshot(in->ctx, tc_count_cb, &in->ran);
    in->poll_ret = aio_poll(in->ctx, false);
    in->ran_at_poll = atomic_load(&in->ran);
}

static void intruder_after_callback_main(void *p)
{
    intruder *in = p;
    if (tsup_wait_flag(&in->in_cb, TC_BOUND_MS)) {
        intruder_poll(in);
    }
    atomic_store(&in->release, 1);
}

static void cb_hold_home(void *opaque)
{
    intruder *in = opaque;
    atomic_store(&in->in_cb, 1);
    tsup_wait_flag(&in->release, TC_BOUND_MS);
}

Test(rules, nonblocking_poll_runs_nothing_while_home_dispatches, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    intruder in;
    tc_thread *t;

    intruder_init(&in, ctx);
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, cb_hold_home, &in), 0);
    t = tc_thread_start(intruder_after_callback_main, &in);
    cr_assert_eq(aio_poll(ctx, false), 1);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    cr_assert(atomic_load(&in.in_cb), "the home thread never ran its callback");
    cr_assert_eq(in.poll_ret, 0,
                 "another thread's aio_poll(ctx, false) returned %d while the home thread was "
                 "inside a callback", in.poll_ret);
    cr_assert_eq(in.ran_at_poll, 0, "callbacks of one context ran on two threads at once");
    /* The work is still there for the next poll. */
    cr_assert_eq(aio_poll(ctx, false), 1);
    cr_assert_eq(atomic_load(&in.ran), 1);
    aio_context_unref(ctx);
}

typedef struct sleeper_intruder {
    intruder in;
    tc_gate *gate;
} sleeper_intruder;

static void intruder_while_asleep_main(void *p)
{
    sleeper_intruder *si = p;
    if (tc_gate_wait_reached(si->gate, TC_BOUND_MS)) {
        atomic_store(&si->in.in_cb, 1);
        intruder_poll(&si->in);
    }
    tc_gate_release(si->gate);
}

Test(rules, sleeping_home_thread_gives_up_dispatch_right, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    sleeper_intruder si;
    tc_gate gate;
    tc_thread *t;
    tc_poll_result res;

    intruder_init(&si.in, ctx);
    si.gate = &gate;
    /* Held just before its sleep: it has decided to sleep, and from then on
     * other threads' non-blocking polls must be able to dispatch. */
    tc_gate_install(ctx, &gate, AIO_HOOK_BEFORE_SLEEP, true);
    t = tc_thread_start(intruder_while_asleep_main, &si);
    res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    cr_assert(atomic_load(&si.in.in_cb), "the home thread never reached AIO_HOOK_BEFORE_SLEEP");
    cr_assert(!atomic_load(&gate.timed_out));
    cr_assert_eq(si.in.poll_ret, 1,
                 "aio_poll(ctx, false) returned %d while the home thread was going to sleep: "
                 "the sleeper kept the dispatch right", si.in.poll_ret);
    cr_assert_eq(si.in.ran_at_poll, 1);
    cr_assert(!res.rescued, "the BH's notification did not end the home thread's sleep");
    cr_assert_geq(res.ret, 0);
    tc_gate_remove(ctx, &gate);
    aio_context_unref(ctx);
}

/* ---- A sleep never ends before its timer -------------------------------- */

typedef struct early_wake {
    _Atomic int64_t deadline;
    atomic_int counting;
    atomic_int sleeps; /* blocking polls that came back from the backend */
    atomic_int early;  /* ... before the deadline */
} early_wake;

static void early_wake_hook(AioContext *ctx, AioHookPoint point, void *opaque)
{
    early_wake *e = opaque;
    (void)ctx;
    if (point != AIO_HOOK_AFTER_SLEEP || !atomic_load(&e->counting)) {
        return;
    }
    atomic_fetch_add(&e->sleeps, 1);
    if (aio_clock_ns() < atomic_load(&e->deadline)) {
        atomic_fetch_add(&e->early, 1);
    }
}

/* A deadline 10.9 ms ahead: a millisecond backend that rounds the timeout
 * down wakes up to 0.9 ms early, and the remaining fraction rounds to a
 * zero timeout, so the loop spins until the deadline. Rounded up, every
 * sleep ends at or after it. Nothing else notifies, so every blocking poll
 * that returns before the deadline is such an early wake. */
Test(rules, sleeps_never_end_before_the_timer_deadline, .timeout = 30)
{
    AioContext *ctx = tc_ctx_new();
    early_wake e;
    atomic_int fired;
    AioTimer *t = aio_timer_new(ctx, tc_count_cb, &fired);

    memset(&e, 0, sizeof(e));
    atomic_init(&e.deadline, 0);
    atomic_init(&e.counting, 0);
    atomic_init(&e.sleeps, 0);
    atomic_init(&e.early, 0);
    atomic_init(&fired, 0);
    aio__set_test_hook(ctx, early_wake_hook, &e);
    for (int round = 1; round <= 8; round++) {
        int64_t deadline = aio_clock_ns() + 10900000;
        atomic_store(&e.deadline, deadline);
        aio_timer_mod(t, deadline);
        /* Consume the notification of arming (not counted: it is one). */
        cr_assert(!tc_poll_blocking_bounded(ctx, TC_BOUND_MS).rescued);
        atomic_store(&e.counting, 1);
        cr_assert(tc_poll_until(ctx, &fired, round, TC_BOUND_MS), "round %d: timer lost", round);
        atomic_store(&e.counting, 0);
    }
    cr_assert_gt(atomic_load(&e.sleeps), 0);
    cr_assert_eq(atomic_load(&e.early), 0,
                 "%s: %d of %d sleeps ended before the timer's deadline (timeout rounded down?)",
                 aio_context_backend(ctx), atomic_load(&e.early), atomic_load(&e.sleeps));
    aio__set_test_hook(ctx, NULL, NULL);
    aio_timer_free(t);
    aio_context_unref(ctx);
}

/* ---- Adaptive polling shrinks ------------------------------------------- */

#define SHRINK_MAX_NS 10000000 /* 10 ms */

typedef struct late_events {
    atomic_int late;       /* make the next blocking poll's event come late */
    atomic_int poll_calls; /* io_poll invocations */
} late_events;

/* A "late event": the poll is held for twice max_ns just before its sleep,
 * then notified, so it blocked for longer than max_ns by construction. */
static void late_events_hook(AioContext *ctx, AioHookPoint point, void *opaque)
{
    late_events *le = opaque;
    if (point == AIO_HOOK_BEFORE_SLEEP && atomic_load(&le->late)) {
        tsup_spin_us(2 * SHRINK_MAX_NS / 1000);
        aio_notify(ctx);
    }
}

static bool late_events_io_poll(void *opaque)
{
    atomic_fetch_add(&((late_events *)opaque)->poll_calls, 1);
    return false;
}

static void late_events_io_read(void *opaque)
{
    (void)opaque; /* the notifier is never set */
}

/* io_poll calls of one blocking poll whose event comes late. */
static int late_poll(AioContext *ctx, late_events *le)
{
    int before = atomic_load(&le->poll_calls);
    atomic_store(&le->late, 1);
    cr_assert(!tc_poll_blocking_bounded(ctx, TC_BOUND_MS).rescued);
    atomic_store(&le->late, 0);
    return atomic_load(&le->poll_calls) - before;
}

Test(rules, busy_polling_stops_when_events_come_later_than_max_ns, .timeout = 60)
{
    AioContext *ctx = tc_ctx_new();
    AioEventNotifier *n = aio_event_notifier_new(false);
    late_events le;
    int calls = 0;
    int round;

    atomic_init(&le.late, 0);
    atomic_init(&le.poll_calls, 0);
    cr_assert_not_null(n);
    cr_assert_eq(aio_set_event_notifier(ctx, n, false, late_events_io_read, late_events_io_poll,
                                        &le), 0);
    cr_assert_eq(aio_context_set_poll_params(ctx, SHRINK_MAX_NS, 0, 0), 0);
    aio__set_test_hook(ctx, late_events_hook, &le);

    /* Open the window: notified polls wake within max_ns, which grows it.
     * The first late poll then busy-polls before it sleeps. */
    for (round = 0; round < 10 && calls == 0; round++) {
        for (int i = 0; i < 3; i++) {
            aio_notify(ctx);
            cr_assert(!tc_poll_blocking_bounded(ctx, TC_BOUND_MS).rescued);
        }
        calls = late_poll(ctx, &le);
    }
    cr_assert_gt(calls, 0, "the poll window never opened");

    /* Late events only: the window must close, and stay closed. */
    for (round = 0; round < 30 && calls > 0; round++) {
        calls = late_poll(ctx, &le);
    }
    cr_assert_eq(calls, 0, "still %d io_poll calls per poll after %d events later than max_ns",
                 calls, round);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(late_poll(ctx, &le), 0, "the closed window reopened on a late event");
    }

    aio__set_test_hook(ctx, NULL, NULL);
    cr_assert_eq(aio_set_event_notifier(ctx, n, false, NULL, NULL, NULL), 0);
    aio_event_notifier_free(n);
    aio_context_unref(ctx);
}

/* ---- A deadline equal to now is due ------------------------------------- */

static int64_t fixed_clock(void *opaque)
{
    return atomic_load((_Atomic int64_t *)opaque);
}

Test(rules, timer_at_exactly_now_is_due, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    _Atomic int64_t now;
    atomic_int ran;
    AioTimer *t = aio_timer_new(ctx, tc_count_cb, &ran);
    tc_poll_result res;

    atomic_init(&now, 1000000000000LL);
    atomic_init(&ran, 0);
    aio__set_test_clock(ctx, fixed_clock, &now);

    /* Non-blocking: dispatch compares the deadline with now. */
    aio_timer_mod(t, atomic_load(&now));
    cr_assert_eq(aio_poll(ctx, false), 1, "a timer whose deadline is now did not fire");
    cr_assert_eq(atomic_load(&ran), 1);

    /* Blocking: one tick ahead is not due; the poll only accepts the
     * arming notification. Then the clock reaches the deadline without any
     * notification: the timeout must be 0 and the timer fire. */
    aio_timer_mod(t, atomic_load(&now) + 1);
    res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert(!res.rescued);
    cr_assert_eq(atomic_load(&ran), 1, "a timer fired before its deadline");
    atomic_fetch_add(&now, 1);
    res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert(!res.rescued, "the poll slept although a deadline equal to now was due");
    cr_assert_eq(res.ret, 1);
    cr_assert_eq(atomic_load(&ran), 2);

    aio__set_test_clock(ctx, NULL, NULL);
    aio_timer_free(t);
    aio_context_unref(ctx);
}

/* ---- The backend's wait fails ------------------------------------------- */

Test(rules, failed_backend_wait_still_runs_bhs_and_timers, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    AioEventNotifier *n = aio_event_notifier_new(true);
    atomic_int bh_ran, timer_ran, handler_ran;
    AioTimer *t = aio_timer_new(ctx, tc_count_cb, &timer_ran);
    tc_poll_result res;

    atomic_init(&bh_ran, 0);
    atomic_init(&timer_ran, 0);
    atomic_init(&handler_ran, 0);
    cr_assert_not_null(n);
    /* Always ready (never cleared): the wait has a source to look at. */
    cr_assert_eq(aio_set_event_notifier(ctx, n, false, tc_count_cb, NULL, &handler_ran), 0);
    aio__set_test_wait_error(ctx, -EINVAL);

    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &bh_ran), 0);
    aio_timer_mod(t, aio_clock_ns() - 1);
    cr_assert_eq(aio_poll(ctx, false), -EINVAL, "the wait's error was not reported");
    cr_assert_eq(atomic_load(&bh_ran), 1, "a failed wait skipped the bottom halves");
    cr_assert_eq(atomic_load(&timer_ran), 1, "a failed wait skipped the expired timers");
    cr_assert_eq(atomic_load(&handler_ran), 0, "a handler ran although the wait failed");

    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &bh_ran), 0);
    aio_timer_mod(t, aio_clock_ns() - 1);
    res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert(!res.rescued);
    cr_assert_eq(res.ret, -EINVAL);
    cr_assert_eq(atomic_load(&bh_ran), 2, "a failed blocking wait skipped the bottom halves");
    cr_assert_eq(atomic_load(&timer_ran), 2, "a failed blocking wait skipped the timers");

    /* The context stays usable. */
    aio__set_test_wait_error(ctx, 0);
    cr_assert_eq(aio_poll(ctx, false), 1);
    cr_assert_gt(atomic_load(&handler_ran), 0);

    cr_assert_eq(aio_set_event_notifier(ctx, n, false, NULL, NULL, NULL), 0);
    aio_event_notifier_free(n);
    aio_timer_free(t);
    aio_context_unref(ctx);
}
