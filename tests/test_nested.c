/* SPDX-License-Identifier: MIT */
/*
 * Nested aio_poll from inside a callback, on the home thread: non-blocking
 * and blocking, including a nested blocking poll woken from another thread.
 * A nested poll continues the bottom halves the outer dispatch took: it
 * never sleeps while they are still to run, runs them before those scheduled
 * since, and skips the ones cancelled or deleted meanwhile.
 */
#include "test-common.h"

#include <string.h>

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

/* ---- Nested polls continue the outer dispatch's bottom halves ----------- */

/* Each BH of a case logs its id, runs the case's body for it (usually a
 * nested poll) and then counts itself in ran[id]. */
#define SC_MAX 8

typedef struct slice_case slice_case;
struct slice_case {
    tc_log log; /* first: a tc_log_item's log pointer leads back here */
    AioContext *ctx;
    tc_log_item item[SC_MAX];
    AioBH *bh[SC_MAX];
    atomic_int ran[SC_MAX];
    int depth, max_depth;
    bool waits_ok; /* every nested wait finished without the watchdog */
    int nested_ret, nested_ret2;
    int seen[SC_MAX]; /* ran[] as the body saw it after its nested poll */
    void (*body)(slice_case *c, int id);
};

static void slice_cb(void *opaque)
{
    tc_log_item *it = opaque;
    slice_case *c = (slice_case *)it->log;

    tc_log_cb(it);
    if (++c->depth > c->max_depth) {
        c->max_depth = c->depth;
    }
    c->body(c, it->id);
    c->depth--;
    atomic_fetch_add(&c->ran[it->id], 1);
}

static void slice_setup(slice_case *c, void (*body)(slice_case *, int))
{
    memset(c, 0, sizeof(*c));
    c->ctx = tc_ctx_new();
    c->body = body;
    c->waits_ok = true;
    atomic_init(&c->log.n, 0);
    for (int i = 0; i < SC_MAX; i++) {
        atomic_init(&c->ran[i], 0);
        c->item[i] = (tc_log_item){&c->log, i};
        c->bh[i] = aio_bh_new(c->ctx, slice_cb, &c->item[i]);
        cr_assert_not_null(c->bh[i]);
    }
}

static void slice_schedule(slice_case *c, int n)
{
    for (int i = 0; i < n; i++) {
        aio_bh_schedule(c->bh[i]);
    }
}

/* Deletes the BHs the case did not delete itself (bh[i] set to NULL). */
static void slice_teardown(slice_case *c)
{
    cr_assert_eq(tc_poll_idle(c->ctx, 10), 0, "bottom halves left over after the case");
    for (int i = 0; i < SC_MAX; i++) {
        aio_bh_delete(c->bh[i]);
    }
    aio_context_unref(c->ctx);
}

static void slice_snapshot(slice_case *c)
{
    for (int i = 0; i < SC_MAX; i++) {
        c->seen[i] = atomic_load(&c->ran[i]);
    }
}

/* BH 0 waits in a nested blocking poll for BH 1, which was scheduled before
 * the wait began and which the outer dispatch had already taken. */
static void body_wait_for_next(slice_case *c, int id)
{
    if (id == 0) {
        c->waits_ok = tc_poll_until(c->ctx, &c->ran[1], 1, TC_BOUND_MS);
    }
}

Test(nested, blocking_wait_for_bh_taken_by_outer_dispatch, .timeout = 20)
{
    slice_case c;
    static const int order[] = {0, 1};

    slice_setup(&c, body_wait_for_next);
    slice_schedule(&c, 2);
    cr_assert(tc_poll_until(c.ctx, &c.ran[0], 1, TC_BOUND_MS * 2), "outer BH not finished");
    cr_assert(c.waits_ok, "the nested blocking poll slept with BH 1 still to run "
                          "(the watchdog had to wake it)");
    tc_log_expect(&c.log, order, 2);
    slice_teardown(&c);
}

/* A and B scheduled; A schedules C and runs one nested blocking poll: the
 * order is A B C (the outer dispatch's rest first, then what came since). */
static void body_schedule_then_poll_blocking(slice_case *c, int id)
{
    if (id == 0) {
        aio_bh_schedule(c->bh[2]);
        tc_poll_result res = tc_poll_blocking_bounded(c->ctx, TC_BOUND_MS);
        c->waits_ok = !res.rescued;
        c->nested_ret = res.ret;
        slice_snapshot(c);
    }
}

/* Schedules A and B, runs one outer poll and checks the A B C order and
 * that B and C ran inside A's nested poll. Returns with c set up. */
static void abc_case(slice_case *c, void (*body)(slice_case *, int))
{
    static const int order[] = {0, 1, 2};

    slice_setup(c, body);
    slice_schedule(c, 2);
    cr_assert_eq(aio_poll(c->ctx, false), 1);
    tc_log_expect(&c->log, order, 3);
    cr_assert(c->seen[1] == 1 && c->seen[2] == 1, "the nested poll did not run B and C");
    cr_assert_eq(c->nested_ret, 1, "the nested poll returned %d", c->nested_ret);
}

Test(nested, blocking_poll_keeps_scheduling_order, .timeout = 20)
{
    slice_case c;

    abc_case(&c, body_schedule_then_poll_blocking);
    cr_assert(c.waits_ok, "the nested blocking poll slept with BHs to run");
    slice_teardown(&c);
}

/* The same with a nested non-blocking poll; a second one finds nothing. */
static void body_schedule_then_poll_nonblocking(slice_case *c, int id)
{
    if (id == 0) {
        aio_bh_schedule(c->bh[2]);
        c->nested_ret = aio_poll(c->ctx, false);
        slice_snapshot(c);
        c->nested_ret2 = aio_poll(c->ctx, false);
    }
}

Test(nested, nonblocking_poll_continues_outer_dispatch, .timeout = 10)
{
    slice_case c;

    abc_case(&c, body_schedule_then_poll_nonblocking);
    cr_assert_eq(c.nested_ret2, 0, "a second nested poll ran something again");
    slice_teardown(&c);
}

/* A cancels B and deletes C, both taken by the outer dispatch, then polls:
 * only D runs. */
static void body_cancel_delete_then_poll(slice_case *c, int id)
{
    if (id == 0) {
        aio_bh_cancel(c->bh[1]);
        aio_bh_delete(c->bh[2]);
        c->bh[2] = NULL;
        c->nested_ret = aio_poll(c->ctx, false);
        slice_snapshot(c);
    }
}

Test(nested, bh_cancelled_or_deleted_in_outer_dispatch_does_not_run, .timeout = 10)
{
    slice_case c;
    static const int order[] = {0, 3};
    static const int order2[] = {0, 3, 1};

    slice_setup(&c, body_cancel_delete_then_poll);
    slice_schedule(&c, 4);
    cr_assert_eq(aio_poll(c.ctx, false), 1);
    cr_assert_eq(c.nested_ret, 1);
    cr_assert_eq(c.seen[3], 1, "the nested poll did not run D");
    tc_log_expect(&c.log, order, 2);
    cr_assert_eq(tc_poll_idle(c.ctx, 10), 0);
    cr_assert_eq(atomic_load(&c.ran[1]), 0, "a cancelled BH ran");
    cr_assert_eq(atomic_load(&c.ran[2]), 0, "a deleted BH ran");
    /* The cancelled one is intact and runs once when scheduled again. */
    aio_bh_schedule(c.bh[1]);
    cr_assert_eq(tc_poll_idle(c.ctx, 10), 1);
    tc_log_expect(&c.log, order2, 3);
    slice_teardown(&c);
}

/* A, B, C, D scheduled. A, B and C each schedule one more BH (X, Y, Z) and
 * wait in a nested blocking poll for D: three nested levels, each continuing
 * the one outside it. D X Y Z run in C's poll, in that order. */
static void body_deep(slice_case *c, int id)
{
    if (id <= 2) {
        aio_bh_schedule(c->bh[4 + id]);
        c->waits_ok = tc_poll_until(c->ctx, &c->ran[3], 1, TC_BOUND_MS) && c->waits_ok;
    }
}

Test(nested, three_levels_continue_in_order, .timeout = 40)
{
    slice_case c;
    static const int order[] = {0, 1, 2, 3, 4, 5, 6};

    slice_setup(&c, body_deep);
    slice_schedule(&c, 4);
    cr_assert(tc_poll_until(c.ctx, &c.ran[0], 1, TC_BOUND_MS * 4), "outer BH not finished");
    cr_assert(c.waits_ok, "a nested blocking poll slept with BHs to run");
    tc_log_expect(&c.log, order, 7);
    cr_assert_eq(c.max_depth, 4, "D ran at depth %d, not inside C's poll", c.max_depth);
    slice_teardown(&c);
}

/* A's nested poll runs B, which deletes C (still in the outer dispatch's
 * queue) and A (whose callback is still running). Memory-safe under ASan; C
 * never runs; both are freed. */
static void body_delete_from_nested(slice_case *c, int id)
{
    if (id == 0) {
        tc_poll_result res = tc_poll_blocking_bounded(c->ctx, TC_BOUND_MS);
        c->waits_ok = !res.rescued;
        c->nested_ret = res.ret;
    } else if (id == 1) {
        aio_bh_delete(c->bh[2]);
        c->bh[2] = NULL;
        aio_bh_delete(c->bh[0]);
        c->bh[0] = NULL;
    }
}

Test(nested, delete_outer_dispatch_bh_from_nested_callback, .timeout = 20)
{
    slice_case c;
    static const int order[] = {0, 1};

    slice_setup(&c, body_delete_from_nested);
    slice_schedule(&c, 3);
    cr_assert_eq(aio_poll(c.ctx, false), 1);
    cr_assert(c.waits_ok, "the nested blocking poll slept with BHs to run");
    cr_assert_eq(c.nested_ret, 1);
    cr_assert_eq(tc_poll_idle(c.ctx, 10), 0);
    tc_log_expect(&c.log, order, 2);
    cr_assert_eq(atomic_load(&c.ran[2]), 0, "a deleted BH ran");
    slice_teardown(&c);
}
