/* SPDX-License-Identifier: MIT */
/*
 * Loop metrics: bad arguments and the size rule (a smaller caller struct
 * gets its prefix and nothing beyond); iterations and BHs; a sleep ended by
 * a notification from another thread (sleeps, wakeups_notify, one notify
 * system call), by a ready descriptor, by a timer; notifications to an
 * awake context cost no system call; the longest callback and its function;
 * callback time of nested callbacks counted once.
 */
#include "test-common.h"

#include <stddef.h>
#include <string.h>

static void st_drain(void *opaque)
{
    tsup_drain(*(aio_fd_t *)opaque);
}

static void st_write(void *arg)
{
    tsup_write_byte(*(aio_fd_t *)arg);
}

Test(stats, bad_arguments_and_size_rule, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    AioContextStats s = {.size = sizeof(s)};
    cr_assert_eq(aio_context_get_stats(NULL, &s), -EINVAL);
    cr_assert_eq(aio_context_get_stats(ctx, NULL), -EINVAL);
    s.size = offsetof(AioContextStats, longest_callback_ns); /* one field short */
    cr_assert_eq(aio_context_get_stats(ctx, &s), -EINVAL);
    /* The contract's prefix only: nothing past it is written. */
    atomic_int n = 0;
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &n), 0);
    cr_assert_eq(tc_poll_idle(ctx, 5), 1);
    unsigned char buf[sizeof(AioContextStats) + 16];
    memset(buf, 0xA5, sizeof(buf));
    AioContextStats *p = (AioContextStats *)(void *)buf;
    size_t prefix = offsetof(AioContextStats, longest_callback_ns) + sizeof(int64_t);
    p->size = prefix;
    cr_assert_eq(aio_context_get_stats(ctx, p), 0);
    cr_assert_eq(p->size, prefix);
    cr_assert_eq(p->bhs_run, 1);
    for (size_t i = prefix; i < sizeof(buf); i++) {
        cr_assert_eq(buf[i], 0xA5, "byte %zu past the caller's size was written", i);
    }
    /* A bigger (newer) caller struct: ours is filled, size says how much. */
    memset(buf, 0xA5, sizeof(buf));
    p->size = sizeof(buf);
    cr_assert_eq(aio_context_get_stats(ctx, p), 0);
    cr_assert_eq(p->size, sizeof(AioContextStats));
    cr_assert_eq(buf[sizeof(AioContextStats)], 0xA5);
    aio_context_unref(ctx);
}

Test(stats, iterations_and_bhs, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    AioContextStats a = tc_stats(ctx);
    atomic_int n = 0;
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &n), 0);
    }
    cr_assert_eq(aio_poll(ctx, false), 1);
    cr_assert_eq(aio_poll(ctx, false), 0);
    AioContextStats b = tc_stats(ctx);
    cr_assert_eq(b.iterations - a.iterations, 2);
    cr_assert_eq(b.bhs_run - a.bhs_run, 10);
    cr_assert_eq(b.sleeps, 0);
    cr_assert_eq(b.notify_syscalls, 0, "notifications to an awake context made a system call");
    aio_context_unref(ctx);
}

static void st_notify(void *arg)
{
    aio_notify(arg);
}

Test(stats, sleep_ended_by_notify, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    AioContextStats a = tc_stats(ctx);
    tc_gate gate;
    tc_gate_install(ctx, &gate, AIO_HOOK_BEFORE_SLEEP, true);
    atomic_int missed = 0;
    tc_thread *t = tc_remote_when_sleeping(&gate, 30, st_notify, ctx, &missed);
    tc_poll_result r = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    tc_gate_remove(ctx, &gate);
    cr_assert(!r.rescued && !atomic_load(&missed));
    AioContextStats b = tc_stats(ctx);
    cr_assert_eq(b.sleeps - a.sleeps, 1);
    cr_assert_eq(b.wakeups_notify - a.wakeups_notify, 1);
    cr_assert_eq(b.notify_syscalls - a.notify_syscalls, 1);
    cr_assert_gt(b.sleep_ns - a.sleep_ns, 0);
    aio_context_unref(ctx);
}

Test(stats, sleep_ended_by_timer_and_by_fd, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int fired = 0;
    AioTimer *t = aio_timer_new(ctx, tc_count_cb, &fired);
    /* A sleep ended by the timer needs the poll to reach its sleep before
     * the deadline, which no scheduler promises (a loaded TSan run missed
     * 5 ms): when the poll found the timer already due it did not sleep and
     * there is no timer wake-up to count, so try again with a longer delay.
     * Nothing else can end these sleeps, so one that happened is the
     * timer's. */
    bool slept = false;
    for (int64_t delay = 5000000; delay <= 320000000 && !slept; delay *= 4) {
        AioContextStats s0 = tc_stats(ctx);
        atomic_store(&fired, 0);
        aio_timer_mod(t, aio_clock_ns() + delay);
        cr_assert(tc_poll_until(ctx, &fired, 1, TC_BOUND_MS));
        AioContextStats s1 = tc_stats(ctx);
        cr_assert_eq(s1.timers_run - s0.timers_run, 1);
        slept = s1.sleeps > s0.sleeps;
        if (slept) {
            cr_assert_geq(s1.wakeups_timer - s0.wakeups_timer, 1, "a sleep ended by the timer");
        }
    }
    cr_assert(slept, "never reached a sleep before a 320 ms deadline");
    AioContextStats a = tc_stats(ctx);
    cr_assert_eq(a.wakeups_fd, 0);
    aio_timer_free(t);

    static aio_fd_t fds[2];
    cr_assert_eq(tsup_socketpair(fds), 0);
    atomic_int reads = 0;
    cr_assert_eq(aio_set_fd_handler(ctx, fds[0], false, st_drain, NULL, NULL, &fds[0]), 0);
    /* Accept the registration's notification first. */
    cr_assert_geq(tc_poll_blocking_bounded(ctx, TC_BOUND_MS).ret, 0);
    AioContextStats b = tc_stats(ctx);
    tc_gate gate;
    tc_gate_install(ctx, &gate, AIO_HOOK_BEFORE_SLEEP, true);
    atomic_int missed = 0;
    tc_thread *th = tc_remote_when_sleeping(&gate, 30, st_write, &fds[1], &missed);
    tc_poll_result r = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert(tc_thread_join(th, TC_BOUND_MS));
    tc_gate_remove(ctx, &gate);
    cr_assert(!r.rescued && !atomic_load(&missed));
    AioContextStats c = tc_stats(ctx);
    cr_assert_eq(c.wakeups_fd - b.wakeups_fd, 1);
    cr_assert_eq(c.handlers_run - b.handlers_run, 1);
    (void)reads;
    cr_assert_eq(aio_set_fd_handler(ctx, fds[0], false, NULL, NULL, NULL, NULL), 0);
    aio_context_unref(ctx);
    tsup_close(fds[0]);
    tsup_close(fds[1]);
}

static void st_spin_bh(void *opaque)
{
    (void)opaque;
    int64_t start = tsup_now_ns();
    while (tsup_ms_since(start) < 5) {
    }
}

/* Nested: the outer BH polls, running the inner one. */
static void st_outer_bh(void *opaque)
{
    AioContext *ctx = opaque;
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, st_spin_bh, NULL), 0);
    cr_assert_eq(aio_poll(ctx, false), 1);
}

Test(stats, longest_callback_and_nested_time_once, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_set_stats_timing(NULL, true), -EINVAL);
    /* Off by default: nothing timed. */
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, st_spin_bh, NULL), 0);
    cr_assert_eq(tc_poll_idle(ctx, 5), 1);
    AioContextStats a = tc_stats(ctx);
    cr_assert_eq(a.callback_ns, 0);
    cr_assert_null(a.longest_callback);
    cr_assert_eq(aio_context_set_stats_timing(ctx, true), 0);
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, st_spin_bh, NULL), 0);
    cr_assert_eq(tc_poll_idle(ctx, 5), 1);
    AioContextStats b = tc_stats(ctx);
    cr_assert_geq(b.longest_callback_ns, 5000000);
    cr_assert(b.longest_callback == st_spin_bh, "the longest callback is not the spinning one");
    cr_assert_geq(b.callback_ns, b.longest_callback_ns);
    aio_context_unref(ctx);
    /* Outer (containing the inner 5 ms), on a fresh context: callback_ns
     * grows by the outer's time only, not by both. */
    ctx = tc_ctx_new();
    cr_assert_eq(aio_context_set_stats_timing(ctx, true), 0);
    b = tc_stats(ctx);
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, st_outer_bh, ctx), 0);
    cr_assert_eq(tc_poll_idle(ctx, 5), 1);
    AioContextStats c = tc_stats(ctx);
    cr_assert_eq(c.bhs_run - b.bhs_run, 2);
    cr_assert(c.longest_callback == st_outer_bh, "the outer callback took longest");
    int64_t grew = c.callback_ns - b.callback_ns;
    cr_assert_geq(grew, 5000000);
    cr_assert_leq(grew, c.longest_callback_ns, "nested callback time counted twice");
    aio_context_unref(ctx);
}
