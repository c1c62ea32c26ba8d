/* SPDX-License-Identifier: MIT */
/*
 * Adaptive (busy) polling: with aio_context_set_poll_params(ctx, max, 0, 0)
 * io_poll handlers get their work done, a notification from another thread
 * during busy polling ends the poll, and busy polling off (max 0) still
 * dispatches normally.
 */
#include "test-common.h"

typedef struct busy {
    AioContext *ctx;
    AioEventNotifier *n;
    atomic_int work;       /* work items posted by the producer */
    atomic_int done;       /* ... and consumed by either handler */
    atomic_int by_poll;    /* consumed by io_poll */
    atomic_int by_read;    /* consumed by io_read */
    atomic_int poll_calls; /* io_poll invocations */
} busy;

static void busy_consume(busy *b, atomic_int *by)
{
    int w = atomic_load(&b->work);
    int d = atomic_load(&b->done);
    if (w > d) {
        atomic_store(&b->done, w);
        atomic_fetch_add(by, w - d);
    }
}

static bool busy_io_poll(void *opaque)
{
    busy *b = opaque;
    bool found;

    atomic_fetch_add(&b->poll_calls, 1);
    found = atomic_load(&b->work) > atomic_load(&b->done);
    if (found) {
        aio_event_notifier_test_and_clear(b->n);
        busy_consume(b, &b->by_poll);
    }
    return found;
}

static void busy_io_read(void *opaque)
{
    busy *b = opaque;
    aio_event_notifier_test_and_clear(b->n);
    busy_consume(b, &b->by_read);
}

static void busy_init(busy *b, int64_t max_ns)
{
    b->ctx = tc_ctx_new();
    b->n = aio_event_notifier_new(false);
    cr_assert_not_null(b->n);
    atomic_init(&b->work, 0);
    atomic_init(&b->done, 0);
    atomic_init(&b->by_poll, 0);
    atomic_init(&b->by_read, 0);
    atomic_init(&b->poll_calls, 0);
    cr_assert_eq(aio_context_set_poll_params(b->ctx, max_ns, 0, 0), 0);
    cr_assert_eq(aio_set_event_notifier(b->ctx, b->n, false, busy_io_read, busy_io_poll, b), 0);
}

static void busy_fini(busy *b)
{
    cr_assert_eq(aio_set_event_notifier(b->ctx, b->n, false, NULL, NULL, NULL), 0);
    aio_event_notifier_free(b->n);
    aio_context_unref(b->ctx);
}

/* The producer posts a work item: first only in memory (visible to io_poll
 * without any system call), then, after a short busy delay, also through the
 * notifier, so that the work gets done whether or not busy polling sees it.
 * Events that come within max_ns of the start of a poll grow the window
 * until busy polling catches them. */
typedef struct producer {
    busy *b;
    int items;
    int delay_us;
} producer;

static void producer_main(void *p)
{
    producer *pr = p;
    busy *b = pr->b;

    for (int i = 1; i <= pr->items; i++) {
        atomic_store(&b->work, i);
        tsup_spin_us(pr->delay_us);
        if (atomic_load(&b->done) < i) {
            aio_event_notifier_set(b->n);
        }
        if (!tsup_wait_at_least(&b->done, i, TC_BOUND_MS)) {
            return;
        }
    }
}

static void run_producer(busy *b, int items, int delay_us)
{
    producer pr = {b, items, delay_us};
    tc_thread *t = tc_thread_start(producer_main, &pr);

    cr_assert(tc_poll_until(b->ctx, &b->done, items, 20000),
              "only %d of %d work items done (home thread asleep: lost wake-up?)",
              atomic_load(&b->done), items);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
}

Test(adaptive, io_poll_handler_gets_work_done, .timeout = 60)
{
    busy b;

    /* max_ns 1 ms: the window only grows when an event arrives within
     * max_ns of the poll's start, and a cross-thread wake-up takes longer
     * than 50 us under Wine or a loaded VM; 1 ms lets the window open on
     * every platform this runs on. */
    busy_init(&b, 1000000);
    run_producer(&b, 300, 10);
    cr_assert_eq(atomic_load(&b.done), 300);
    cr_assert_gt(atomic_load(&b.poll_calls), 0, "io_poll was never called with max_ns 1 ms");
    /* How much busy polling found depends on scheduling (on a loaded 2-core
     * machine the producer may not run while the home thread spins); that
     * it finds work at all is checked by io_poll_finds_work_without_event. */
    cr_log_info("%s: by io_poll %d, by io_read %d, io_poll calls %d",
                aio_context_backend(b.ctx), atomic_load(&b.by_poll), atomic_load(&b.by_read),
                atomic_load(&b.poll_calls));
    busy_fini(&b);
}

/* Work visible only to io_poll, posted before a blocking poll: a poll that
 * busy-polls must find it without any event. Repeated to let the window
 * adapt; a watchdog bounds every round. */
Test(adaptive, io_poll_finds_work_without_event, .timeout = 30)
{
    busy b;
    int found = 0;

    busy_init(&b, 1000000); /* 1 ms window at most */
    /* Open the window: a wake-up that comes right away (before the window,
     * 0 at first, ran out) makes it grow. */
    for (int i = 0; i < 3; i++) {
        aio_notify(b.ctx);
        cr_assert(!tc_poll_blocking_bounded(b.ctx, TC_BOUND_MS).rescued);
    }
    for (int i = 1; i <= 50; i++) {
        tc_poll_result res;
        atomic_store(&b.work, i);
        res = tc_poll_blocking_bounded(b.ctx, 200);
        cr_assert_geq(res.ret, 0);
        if (atomic_load(&b.done) >= i && !res.rescued) {
            found++;
        }
        atomic_store(&b.done, i);
    }
    cr_assert_gt(found, 0, "no blocking poll found io_poll work by busy polling");
    busy_fini(&b);
}

Test(adaptive, polling_disabled_still_dispatches, .timeout = 30)
{
    busy b;

    busy_init(&b, 0);
    run_producer(&b, 100, 10);
    cr_assert_eq(atomic_load(&b.done), 100);
    busy_fini(&b);
}

/* ---- Notify during busy polling ------------------------------------------ */

typedef struct spin {
    AioContext *ctx;
    atomic_int polling; /* io_poll has been called: busy polling is on */
    atomic_int calls;
} spin;

static bool spin_io_poll(void *opaque)
{
    spin *s = opaque;
    atomic_fetch_add(&s->calls, 1);
    atomic_store(&s->polling, 1);
    return false;
}

static void spin_io_read(void *opaque)
{
    (void)opaque; /* the notifier is never set */
}

typedef struct spin_notifier {
    spin *s;
    tc_gate *gate;
    atomic_int notified;
} spin_notifier;

/* Notifies as soon as the home thread busy-polls (io_poll called) or, if the
 * window is still 0, reaches the point of sleeping. */
static void spin_notifier_main(void *p)
{
    spin_notifier *sn = p;
    int64_t deadline = tsup_now_ns() + (int64_t)TC_BOUND_MS * 1000000;

    while (!atomic_load(&sn->s->polling) && !atomic_load(&sn->gate->reached) &&
           tsup_now_ns() < deadline) {
        tsup_yield();
    }
    aio_notify(sn->s->ctx);
    atomic_store(&sn->notified, 1);
    tc_gate_release(sn->gate);
}

Test(adaptive, notify_during_busy_polling_wakes, .timeout = 60)
{
    spin s;
    AioEventNotifier *n = aio_event_notifier_new(false);
    tc_gate gate;

    s.ctx = tc_ctx_new();
    atomic_init(&s.polling, 0);
    atomic_init(&s.calls, 0);
    /* A long window: the notify must end busy polling, not the window. */
    cr_assert_eq(aio_context_set_poll_params(s.ctx, 2000000000LL, 0, 0), 0);
    cr_assert_eq(aio_set_event_notifier(s.ctx, n, false, spin_io_read, spin_io_poll, &s), 0);
    for (int round = 0; round < 20; round++) {
        spin_notifier sn = {.s = &s, .gate = &gate};
        tc_thread *t;
        tc_poll_result res;

        atomic_init(&sn.notified, 0);
        atomic_store(&s.polling, 0);
        tc_gate_install(s.ctx, &gate, AIO_HOOK_BEFORE_SLEEP, true);
        t = tc_thread_start(spin_notifier_main, &sn);
        res = tc_poll_blocking_bounded(s.ctx, TC_BOUND_MS);
        cr_assert(!res.rescued,
                  "round %d: home thread still busy-polling/asleep after %d ms: lost wake-up",
                  round, TC_BOUND_MS);
        cr_assert_geq(res.ret, 0);
        cr_assert(tc_thread_join(t, TC_BOUND_MS));
        tc_gate_remove(s.ctx, &gate);
    }
    cr_assert_eq(aio_set_event_notifier(s.ctx, n, false, NULL, NULL, NULL), 0);
    aio_event_notifier_free(n);
    aio_context_unref(s.ctx);
}

/* io_poll handlers of is_external registrations are not polled while
 * external handlers are disabled. */
Test(adaptive, external_io_poll_suspended, .timeout = 20)
{
    spin s;
    AioEventNotifier *n = aio_event_notifier_new(false);

    s.ctx = tc_ctx_new();
    atomic_init(&s.polling, 0);
    atomic_init(&s.calls, 0);
    cr_assert_eq(aio_context_set_poll_params(s.ctx, 100000, 0, 0), 0);
    cr_assert_eq(aio_set_event_notifier(s.ctx, n, true, spin_io_read, spin_io_poll, &s), 0);
    aio_disable_external(s.ctx);
    for (int i = 0; i < 20; i++) {
        tc_poll_blocking_bounded(s.ctx, 5);
    }
    cr_assert_eq(atomic_load(&s.calls), 0, "external io_poll called %d times while disabled",
                 atomic_load(&s.calls));
    aio_enable_external(s.ctx);
    cr_assert_eq(aio_set_event_notifier(s.ctx, n, false, NULL, NULL, NULL), 0);
    aio_event_notifier_free(n);
    aio_context_unref(s.ctx);
}

/* ---- Window arithmetic at the limits ------------------------------------- */

typedef struct slow_sleep {
    int spin_us;           /* spent at AIO_HOOK_BEFORE_SLEEP: the poll "blocks" */
    atomic_int poll_calls; /* io_poll invocations */
    int succeed_every;     /* io_poll reports progress on every Nth call */
} slow_sleep;

static void slow_sleep_hook(AioContext *ctx, AioHookPoint point, void *opaque)
{
    slow_sleep *s = opaque;
    (void)ctx;
    if (point == AIO_HOOK_BEFORE_SLEEP && s->spin_us > 0) {
        tsup_spin_us(s->spin_us);
    }
}

static bool slow_sleep_io_poll(void *opaque)
{
    slow_sleep *s = opaque;
    int n = atomic_fetch_add(&s->poll_calls, 1) + 1;
    return s->succeed_every > 0 && n % s->succeed_every == 0;
}

/* The largest accepted factors: growing the window must saturate at max_ns
 * instead of overflowing poll_ns * grow (UBSan: "signed integer overflow"),
 * and a window of INT64_MAX must not overflow the busy-poll deadline. */
Test(adaptive, huge_grow_factor_saturates, .timeout = 30)
{
    AioContext *ctx = tc_ctx_new();
    AioEventNotifier *n = aio_event_notifier_new(false);
    slow_sleep s = {.succeed_every = 3};
    tc_poll_result res;

    atomic_init(&s.poll_calls, 0);
    cr_assert_not_null(n);
    cr_assert_eq(aio_set_event_notifier(ctx, n, false, spin_io_read, slow_sleep_io_poll, &s), 0);
    cr_assert_eq(aio_context_set_poll_params(ctx, INT64_MAX, INT64_MAX, INT64_MAX), 0);
    aio__set_test_hook(ctx, slow_sleep_hook, &s);

    /* A notified poll does not busy-poll; it "blocks" for a moment, which
     * opens the window (to POLL_NS_INITIAL, 4 us)... */
    aio_notify(ctx);
    cr_assert(!tc_poll_blocking_bounded(ctx, TC_BOUND_MS).rescued);
    /* ...and a wait longer than the window grows it by INT64_MAX. */
    s.spin_us = 100;
    aio_notify(ctx);
    cr_assert(!tc_poll_blocking_bounded(ctx, TC_BOUND_MS).rescued);
    s.spin_us = 0;

    /* Now the window is max_ns: busy polling runs until io_poll succeeds. */
    for (int i = 0; i < 3; i++) {
        res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
        cr_assert(!res.rescued, "poll %d: busy polling did not end when io_poll succeeded", i);
        cr_assert_eq(res.ret, 1);
    }
    cr_assert_geq(atomic_load(&s.poll_calls), 9);

    aio__set_test_hook(ctx, NULL, NULL);
    cr_assert_eq(aio_set_event_notifier(ctx, n, false, NULL, NULL, NULL), 0);
    aio_event_notifier_free(n);
    aio_context_unref(ctx);
}
