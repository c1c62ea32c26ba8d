/* SPDX-License-Identifier: MIT */
/*
 * Nested aio_poll from inside a callback, on the home thread: non-blocking
 * and blocking, including a nested blocking poll woken from another thread.
 */
#include "test-common.h"

typedef struct nest {
    AioContext *ctx;
    atomic_int inner;   /* the inner work ran */
    atomic_int outer;   /* the outer callback finished */
    int nested_ret;
    bool nested_ok;     /* the nested wait succeeded */
    bool blocking;
    bool remote;        /* inner work comes from another thread */
    AioBH *inner_bh;
} nest;

static void remote_oneshot(void *p)
{
    nest *n = p;
    tsup_sleep_ms(30);
    aio_bh_schedule_oneshot(n->ctx, tc_count_cb, &n->inner);
}

static void outer_cb(void *opaque)
{
    nest *n = opaque;

    if (n->remote) {
        tc_thread *t = tc_thread_start(remote_oneshot, n);
        /* The nested wait is bounded like any other. */
        n->nested_ok = tc_poll_until(n->ctx, &n->inner, 1, TC_BOUND_MS);
        n->nested_ok = tc_thread_join(t, TC_BOUND_MS) && n->nested_ok;
    } else {
        aio_bh_schedule(n->inner_bh);
        n->nested_ret = aio_poll(n->ctx, n->blocking);
        n->nested_ok = atomic_load(&n->inner) == 1;
    }
    atomic_store(&n->outer, 1);
}

static void nest_case(bool blocking, bool remote)
{
    nest n = {.blocking = blocking, .remote = remote};

    n.ctx = tc_ctx_new();
    atomic_init(&n.inner, 0);
    atomic_init(&n.outer, 0);
    n.inner_bh = aio_bh_new(n.ctx, tc_count_cb, &n.inner);
    cr_assert_eq(aio_bh_schedule_oneshot(n.ctx, outer_cb, &n), 0);
    cr_assert(tc_poll_until(n.ctx, &n.outer, 1, TC_BOUND_MS * 2), "outer callback not finished");
    cr_assert(n.nested_ok, "the nested poll did not run the inner work");
    if (!remote) {
        cr_assert_eq(n.nested_ret, 1, "nested aio_poll returned %d", n.nested_ret);
    }
    cr_assert_eq(atomic_load(&n.inner), 1, "inner work ran %d times", atomic_load(&n.inner));
    tc_poll_idle(n.ctx, 10);
    aio_bh_delete(n.inner_bh);
    aio_context_unref(n.ctx);
}

Test(nested, nonblocking_poll_in_bh, .timeout = 10)
{
    nest_case(false, false);
}

Test(nested, blocking_poll_in_bh_with_work, .timeout = 10)
{
    nest_case(true, false);
}

Test(nested, blocking_poll_in_bh_woken_from_other_thread, .timeout = 20)
{
    nest_case(true, true);
}

/* A timer callback that polls for an fd-free event notifier. */
typedef struct nest_timer {
    AioContext *ctx;
    AioEventNotifier *n;
    atomic_int notified;
    atomic_int timer_done;
    int nested_ret;
} nest_timer;

static void nt_read(void *opaque)
{
    nest_timer *nt = opaque;
    aio_event_notifier_test_and_clear(nt->n);
    atomic_fetch_add(&nt->notified, 1);
}

static void nt_timer(void *opaque)
{
    nest_timer *nt = opaque;
    aio_event_notifier_set(nt->n);
    nt->nested_ret = aio_poll(nt->ctx, true);
    atomic_store(&nt->timer_done, 1);
}

Test(nested, blocking_poll_in_timer_dispatches_notifier, .timeout = 10)
{
    nest_timer nt;
    AioTimer *t;

    nt.ctx = tc_ctx_new();
    nt.n = aio_event_notifier_new(false);
    atomic_init(&nt.notified, 0);
    atomic_init(&nt.timer_done, 0);
    cr_assert_eq(aio_set_event_notifier(nt.ctx, nt.n, false, nt_read, NULL, &nt), 0);
    t = aio_timer_new(nt.ctx, nt_timer, &nt);
    aio_timer_mod(t, aio_clock_ns() + 1000000);
    cr_assert(tc_poll_until(nt.ctx, &nt.timer_done, 1, TC_BOUND_MS));
    cr_assert_eq(nt.nested_ret, 1);
    cr_assert_eq(atomic_load(&nt.notified), 1);
    aio_timer_free(t);
    cr_assert_eq(aio_set_event_notifier(nt.ctx, nt.n, false, NULL, NULL, NULL), 0);
    aio_event_notifier_free(nt.n);
    aio_context_unref(nt.ctx);
}
