/* SPDX-License-Identifier: MIT */
/*
 * The tests every host-loop adapter must pass, on a real instance of its
 * loop (tests/test_embed_glib.c, _libevent.c, _libuv.c). Each of those
 * defines HOST_SUITE and a driver, then includes this file:
 *
 *   typedef struct drv drv;                   one host loop
 *   drv *drv_new(void);  void drv_free(drv *);
 *   int drv_attach(drv *, AioContext *);      the adapter's attach: 0 or < 0
 *   void drv_detach(drv *, AioContext *);
 *   void drv_iterate(drv *);                  one blocking iteration
 *   void drv_drain(drv *);                    iterations that do not block,
 *                                             until nothing is ready
 *   void drv_watchdog(drv *, int ms, atomic_int *flag);  a host timer that
 *                                             sets *flag (and wakes the loop)
 *   void drv_watchdog_cancel(drv *);
 *   void drv_defer(drv *, void (*fn)(void *), void *arg);  fn from a host
 *                                             callback that is not ours
 *
 * A lost wake-up would leave the loop asleep; the host's own watchdog timer
 * (WATCHDOG_MS without progress) ends such a sleep and the test fails on it
 * instead of hanging. The home thread is the test thread throughout.
 */
#ifndef AIOPOLL_TEST_EMBED_HOSTS_H
#define AIOPOLL_TEST_EMBED_HOSTS_H

#include "test_embed_host.h"

#include <unistd.h>

#define WATCHDOG_MS TC_BOUND_MS

typedef struct loop {
    AioContext *ctx;
    drv *d;
    atomic_int fired; /* the watchdog ended a sleep */
} loop;

static void loop_init(loop *l)
{
    l->ctx = tc_ctx_new();
    l->d = drv_new();
    cr_assert_eq(drv_attach(l->d, l->ctx), 0);
    atomic_init(&l->fired, 0);
}

static void loop_fini(loop *l)
{
    drv_detach(l->d, l->ctx);
    drv_free(l->d);
    aio_context_unref(l->ctx);
}

/* Iterates until *v >= want; false if the watchdog had to end a sleep
 * (WATCHDOG_MS without progress). */
static bool run_until(loop *l, atomic_int *v, int want)
{
    while (atomic_load(v) < want) {
        int before = atomic_load(v);
        atomic_store(&l->fired, 0);
        drv_watchdog(l->d, WATCHDOG_MS, &l->fired);
        while (atomic_load(v) == before && !atomic_load(&l->fired)) {
            drv_iterate(l->d);
        }
        drv_watchdog_cancel(l->d);
        if (atomic_load(v) == before) {
            return false;
        }
    }
    return true;
}

static bool loop_runner(void *l, atomic_int *v, int want)
{
    return run_until(l, v, want);
}

Test(HOST_SUITE, bh_fd_notifier_and_timer_run_from_the_host_loop, .timeout = 30)
{
    loop l;
    loop_init(&l);
    atomic_int ran = 0;
    cr_assert(later_bh_runs(l.ctx, &ran, 1, loop_runner, &l), "cross-thread BH: host asleep: lost wake-up");

    fd_reader rd;
    reader_open(l.ctx, &rd);
    cr_assert_eq(tsup_write_byte(rd.p[1]), 1);
    cr_assert(run_until(&l, &rd.reads, 1));

    AioEventNotifier *n = aio_event_notifier_new(false);
    notifier_reader nr = {.n = n};
    cr_assert_eq(aio_set_event_notifier(l.ctx, n, false, notifier_cb, NULL, &nr), 0);
    tc_thread *t = tc_thread_start(set_notifier_later, n);
    cr_assert(run_until(&l, &nr.count, 1));
    cr_assert(tc_thread_join(t, TC_BOUND_MS));

    for (int i = 0; i < 3; i++) {
        timer_probe tp = {0};
        AioTimer *tm = aio_timer_new(l.ctx, timer_cb, &tp);
        tp.deadline = aio_clock_ns() + 15000000 + i * 700000;
        aio_timer_mod(tm, tp.deadline);
        cr_assert(run_until(&l, &tp.fired, 1));
        cr_assert_geq(tp.fired_at, tp.deadline, "timer fired %lld ns early",
                      (long long)(tp.deadline - tp.fired_at));
        aio_timer_free(tm);
    }
    cr_assert_eq(atomic_load(&rd.empty), 0, "a read handler ran with nothing to read");

    reader_close(l.ctx, &rd);
    aio_set_event_notifier(l.ctx, n, false, NULL, NULL, NULL);
    aio_event_notifier_free(n);
    loop_fini(&l);
}


/* QEMU b37548fcd1 with the host's sleep as the blocking poll: the adapter
 * has prepared (nothing to do: no timeout) and is held right after it, or
 * the host is asleep, while another thread notifies and polls without
 * blocking. The host's sleep must end, i.e. a check must follow, before the
 * host's watchdog. */
typedef struct seed {
    AioContext *ctx;
    int asleep_ms;
    atomic_int reached, released, fn_started, woke, missed, trigger;
} seed;

static void seed_hook(AioContext *ctx, AioHookPoint pt, void *opaque)
{
    (void)ctx;
    seed *s = opaque;
    if (pt == AIO_HOOK_BEFORE_SLEEP && !atomic_exchange(&s->reached, 1)) {
        tsup_wait_flag(&s->released, TC_GATE_HOLD_MS);
    } else if (pt == AIO_HOOK_AFTER_SLEEP && atomic_load(&s->fn_started)) {
        /* A check after the notification: the host's sleep ended. */
        atomic_store(&s->woke, 1);
    }
}

static void seed_remote(void *p)
{
    seed *s = p;
    if (!tsup_wait_flag(&s->reached, TC_BOUND_MS)) {
        atomic_store(&s->missed, 1);
    }
    if (s->asleep_ms) {
        atomic_store(&s->released, 1);
        tsup_sleep_ms(s->asleep_ms);
    }
    atomic_store(&s->fn_started, 1);
    notify_and_foreign_poll(s->ctx);
    atomic_store(&s->released, 1);
}

static void seed_case(int asleep_ms)
{
    loop l;
    loop_init(&l);
    atomic_store(&l.fired, 0);
    drv_watchdog(l.d, WATCHDOG_MS + TC_BOUND_MS, &l.fired);
    /* Settle: run what attaching (and arming the watchdog) made ready and
     * accept whatever it notified, so that nothing ends the host's next
     * sleep but the notification under test, and the next prepare computes
     * an infinite sleep. */
    drv_drain(l.d);
    aio_notify(l.ctx);
    cr_assert_geq(aio_poll(l.ctx, true), 0);
    seed s = {.ctx = l.ctx, .asleep_ms = asleep_ms};
    aio__set_test_hook(l.ctx, seed_hook, &s);
#ifdef HOST_PREPARES_AFTER_CALLBACKS
    /* This adapter prepares at the end of its callbacks: make one run. */
    aio_bh_schedule_oneshot(l.ctx, tc_count_cb, &s.trigger);
#endif
    tc_thread *t = tc_thread_start(seed_remote, &s);
    while (!atomic_load(&s.woke) && !atomic_load(&l.fired)) {
        drv_iterate(l.d);
    }
    drv_watchdog_cancel(l.d);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    cr_assert_eq(atomic_load(&s.missed), 0, "the host loop never reached its sleep");
    cr_assert_eq(atomic_load(&l.fired), 0, "host loop still asleep: lost wake-up");
    aio__set_test_hook(l.ctx, NULL, NULL);
    loop_fini(&l);
}

Test(HOST_SUITE, b37548fcd1_notify_and_foreign_poll_before_sleep, .timeout = 30)
{
    seed_case(0);
}

Test(HOST_SUITE, notify_and_foreign_poll_while_asleep, .timeout = 30)
{
    seed_case(50);
}

typedef struct nested {
    AioContext *ctx;
    atomic_int inner, ran_nested;
    bool ok;
} nested;

/* AIO_WAIT_WHILE from main-loop code: a host callback that is not ours
 * waits in aio_poll(ctx, true) for work from another thread. */
static void nested_poll_cb(void *p)
{
    nested *n = p;
    n->ok = later_bh_runs(n->ctx, &n->inner, 1, poll_runner, n->ctx);
    atomic_store(&n->ran_nested, 1);
}

Test(HOST_SUITE, nested_blocking_poll_from_a_host_callback, .timeout = 30)
{
    loop l;
    loop_init(&l);
    nested n = {.ctx = l.ctx};
    drv_defer(l.d, nested_poll_cb, &n);
    cr_assert(run_until(&l, &n.ran_nested, 1));
    cr_assert(n.ok, "the nested blocking poll lost its wake-up");
    /* And the host is not left asleep with work pending. */
    atomic_int after = 0;
    cr_assert(later_bh_runs(l.ctx, &after, 1, loop_runner, &l), "host asleep after a nested poll: lost wake-up");
    loop_fini(&l);
}

typedef struct wait_loop {
    AioContext *ctx;
    timer_probe tp;
    AioTimer *timer;
    atomic_int inner, done;
    bool ok;
} wait_loop;

/* A host callback arms a timer of the context, then waits for another
 * thread in a loop of nested blocking polls (AIO_WAIT_WHILE). The first of
 * them accepts the timer's notification; the host, which prepared before
 * (libevent: at the end of our last callback), must still run the timer. */
static void wait_loop_cb(void *p)
{
    wait_loop *w = p;
    w->timer = aio_timer_new(w->ctx, timer_cb, &w->tp);
    /* Due after the wait below (the BH comes at 50 ms): the host fires it. */
    w->tp.deadline = aio_clock_ns() + 150000000;
    aio_timer_mod(w->timer, w->tp.deadline);
    w->ok = later_bh_runs(w->ctx, &w->inner, 1, poll_runner, w->ctx);
    atomic_store(&w->done, 1);
}

Test(HOST_SUITE, timer_armed_under_a_nested_wait_loop, .timeout = 30)
{
    loop l;
    loop_init(&l);
    /* An idle descriptor, so that the nested polls really wait (timeout 0
     * at first) and so see and consume the kick. */
    fd_reader rd;
    reader_open(l.ctx, &rd);
    /* Let the host take the registration in first, so that the deferred
     * callback below is the only thing its next iteration runs. */
    drv_drain(l.d);
    wait_loop w = {.ctx = l.ctx};
    drv_defer(l.d, wait_loop_cb, &w);
    cr_assert(run_until(&l, &w.done, 1));
    cr_assert(w.ok, "the nested wait loop lost its wake-up");
    cr_assert_eq(atomic_load(&w.tp.fired), 0, "the timer fired inside the wait loop");
    cr_assert(run_until(&l, &w.tp.fired, 1),
              "host slept past a timer armed under a nested wait loop: lost wake-up");
    cr_assert_geq(w.tp.fired_at, w.tp.deadline);
    aio_timer_free(w.timer);
    reader_close(l.ctx, &rd);
    loop_fini(&l);
}

typedef struct detach_in_cb {
    loop *l;
    atomic_int done;
} detach_in_cb;

static void detach_cb(void *p)
{
    detach_in_cb *x = p;
    drv_detach(x->l->d, x->l->ctx);
    atomic_store(&x->done, 1);
}

typedef struct other_attach {
    drv *d;
    AioContext *ctx;
    int ret;
} other_attach;

static void attach_elsewhere(void *p)
{
    other_attach *o = p;
    o->ret = drv_attach(o->d, o->ctx);
}

Test(HOST_SUITE, errors_detach_and_reattach, .timeout = 30)
{
    loop l;
    loop_init(&l);
    cr_assert_lt(drv_attach(l.d, l.ctx), 0, "attached twice");
    drv *d2 = drv_new();
    cr_assert_lt(drv_attach(d2, l.ctx), 0, "attached to a second loop");
    other_attach o = {d2, tc_ctx_new(), 0};
    cr_assert(tc_thread_join(tc_thread_start(attach_elsewhere, &o), TC_BOUND_MS));
    cr_assert_lt(o.ret, 0, "attached off the home thread");
    /* The refused attaches changed nothing. */
    atomic_int a = 0;
    cr_assert(later_bh_runs(l.ctx, &a, 1, loop_runner, &l));

    /* Several contexts on one loop. */
    AioContext *c2 = o.ctx;
    cr_assert_eq(drv_attach(l.d, c2), 0);
    atomic_int b = 0;
    cr_assert(later_bh_runs(c2, &b, 1, loop_runner, &l));

    /* Detach and attach again. */
    drv_detach(l.d, c2);
    cr_assert_null(aio_embed_host(c2), "still attached after detach");
    cr_assert_eq(drv_attach(d2, c2), 0, "re-attach (to another loop) after detach");
    drv_detach(d2, c2);
    cr_assert_eq(drv_attach(l.d, c2), 0, "re-attach after detach");
    cr_assert(later_bh_runs(c2, &b, 2, loop_runner, &l));
    /* unref of an attached context: alive and attached until the detach. */
    aio_context_unref(c2);
    aio_bh_schedule_oneshot(c2, tc_count_cb, &b);
    cr_assert(run_until(&l, &b, 3));
    drv_detach(l.d, c2);

    /* Detach from inside one of the context's own callbacks. */
    detach_in_cb x = {.l = &l};
    aio_bh_schedule_oneshot(l.ctx, detach_cb, &x);
    cr_assert(run_until(&l, &x.done, 1));
    cr_assert_null(aio_embed_host(l.ctx));
    cr_assert_eq(drv_attach(l.d, l.ctx), 0);
    loop_fini(&l);
    drv_free(d2);
}

#ifndef HOST_NO_RECURSION
typedef struct recursion {
    loop *l;
    atomic_int inner, done;
    bool ok;
} recursion;

/* A callback of the context runs the host loop recursively until more of
 * the context's work arrives from another thread. */
static void recursing_bh(void *p)
{
    recursion *r = p;
    r->ok = later_bh_runs(r->l->ctx, &r->inner, 1, loop_runner, r->l);
    atomic_store(&r->done, 1);
}

Test(HOST_SUITE, host_loop_recursing_from_a_callback, .timeout = 30)
{
    loop l;
    loop_init(&l);
    recursion r = {.l = &l};
    aio_bh_schedule_oneshot(l.ctx, recursing_bh, &r);
    cr_assert(run_until(&l, &r.done, 1));
    cr_assert(r.ok, "the recursive host loop lost its wake-up");
    loop_fini(&l);
}
#endif

Test(HOST_SUITE, cross_thread_round_trips, .timeout = 300)
{
    loop l;
    loop_init(&l);
    pingpong pp = {.ctx = l.ctx, .rounds = tc_env_long("AIOPOLL_STRESS_ROUNDS", 100000)};
    tc_thread *t = tc_thread_start(producer, &pp);
    cr_assert(run_until(&l, &pp.done, (int)pp.rounds), "lost wake-up after %d rounds",
              atomic_load(&pp.done));
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    cr_assert_eq(atomic_load(&pp.stuck), 0);
    loop_fini(&l);
}

#endif
