/* SPDX-License-Identifier: MIT */
/*
 * aio_wait_while / aio_wait_kick: bad arguments and -EPERM; a false
 * condition returns without polling; the lost-wake-up interleaving (the
 * condition changes and the kick comes while the waiter is held just before
 * its sleep, and while it is really asleep); nested use from a callback;
 * work done in another context on another thread; completions of the pool;
 * a kick with nobody waiting; and a stress run with a watchdog.
 */
#include "test-common.h"

static bool wt_flag_set(void *opaque)
{
    return atomic_load((atomic_int *)opaque) != 0;
}

typedef struct wt_change {
    atomic_int *cond;  /* set to 0, then kick */
    atomic_int *seen;  /* bumped after the kick (for tc_expect_wake) */
} wt_change;

static void wt_clear_and_kick(void *arg)
{
    wt_change *c = arg;
    atomic_store(c->cond, 0);
    aio_wait_kick();
    if (c->seen) {
        atomic_fetch_add(c->seen, 1);
    }
}

Test(wait, bad_arguments_and_eperm, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int cond = 1;
    cr_assert_eq(aio_wait_while(NULL, wt_flag_set, &cond), -EINVAL);
    cr_assert_eq(aio_wait_while(ctx, NULL, &cond), -EINVAL);
    aio_wait_kick(); /* nobody waits: nothing happens */
    aio_context_unref(ctx);
}

typedef struct wt_foreign {
    AioContext *ctx;
    atomic_int cond;
    int ret;
} wt_foreign;

static void wt_foreign_main(void *arg)
{
    wt_foreign *f = arg;
    f->ret = aio_wait_while(f->ctx, wt_flag_set, &f->cond);
}

Test(wait, other_thread_gets_eperm, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    wt_foreign f = {.ctx = ctx};
    atomic_init(&f.cond, 1);
    tc_thread *t = tc_thread_start(wt_foreign_main, &f);
    cr_assert(tc_thread_join(t, TC_BOUND_MS), "a foreign aio_wait_while blocked");
    cr_assert_eq(f.ret, -EPERM);
    aio_context_unref(ctx);
}

Test(wait, false_condition_returns_without_polling, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int ran = 0;
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &ran), 0);
    atomic_int cond = 0;
    cr_assert_eq(aio_wait_while(ctx, wt_flag_set, &cond), 0);
    cr_assert_eq(atomic_load(&ran), 0, "aio_wait_while polled with a false condition");
    cr_assert_eq(tc_poll_idle(ctx, 5), 1);
    aio_context_unref(ctx);
}

/* The waiter is held at AIO_HOOK_BEFORE_SLEEP (it checked the condition,
 * announced itself and is about to sleep) or really asleep when another
 * thread clears the condition and kicks: the wait must end promptly. */
static void wt_kick_case(int asleep_ms)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int cond = 1, kicked = 0, missed = 0;
    wt_change ch = {.cond = &cond, .seen = &kicked};
    tc_gate gate;
    tc_gate_install(ctx, &gate, AIO_HOOK_BEFORE_SLEEP, true);
    tc_thread *t = tc_remote_when_sleeping(&gate, asleep_ms, wt_clear_and_kick, &ch, &missed);
    tc_watchdog *wd = tc_watchdog_start(ctx, TC_BOUND_MS);
    int ret = aio_wait_while(ctx, wt_flag_set, &cond);
    bool fired = tc_watchdog_stop(wd);
    cr_assert_eq(ret, 0);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    cr_assert(!atomic_load(&missed), "the waiter never reached its sleep");
    cr_assert(!fired, "aio_wait_while slept through aio_wait_kick (asleep_ms=%d): lost wake-up",
              asleep_ms);
    cr_assert_eq(atomic_load(&kicked), 1);
    tc_gate_remove(ctx, &gate);
    aio_context_unref(ctx);
}

Test(wait, kick_just_before_sleep_is_not_lost, .timeout = 20)
{
    wt_kick_case(0);
}

Test(wait, kick_while_asleep_wakes, .timeout = 20)
{
    wt_kick_case(50);
}

/* Nested: a BH of ctx waits (on ctx) for a thread that kicks. */
typedef struct wt_nested {
    AioContext *ctx;
    atomic_int cond;
    atomic_int done;
    int ret;
    tc_thread *t;
} wt_nested;

static void wt_late_clear(void *arg)
{
    wt_nested *n = arg;
    tsup_sleep_ms(20);
    atomic_store(&n->cond, 0);
    aio_wait_kick();
}

static void wt_nested_bh(void *opaque)
{
    wt_nested *n = opaque;
    n->t = tc_thread_start(wt_late_clear, n);
    n->ret = aio_wait_while(n->ctx, wt_flag_set, &n->cond);
    atomic_store(&n->done, 1);
}

Test(wait, nested_in_a_callback, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    wt_nested n = {.ctx = ctx};
    atomic_init(&n.cond, 1);
    atomic_init(&n.done, 0);
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, wt_nested_bh, &n), 0);
    cr_assert(tc_poll_until(ctx, &n.done, 1, TC_BOUND_MS), "nested aio_wait_while never ended");
    cr_assert_eq(n.ret, 0);
    cr_assert(tc_thread_join(n.t, TC_BOUND_MS));
    aio_context_unref(ctx);
}

/* An IOThread: its own context on its own thread, running requests that
 * the main context waits for. */
typedef struct wt_iothread {
    AioContext *ctx;
    atomic_int ready;
    atomic_int stop;
    atomic_int inflight; /* the main thread waits while > 0 */
} wt_iothread;

static void wt_iothread_main(void *arg)
{
    wt_iothread *io = arg;
    io->ctx = aio_context_new();
    atomic_store(&io->ready, 1);
    while (!atomic_load(&io->stop)) {
        aio_poll(io->ctx, true);
    }
    /* Run what was scheduled before stop was seen. */
    while (aio_poll(io->ctx, false) > 0) {
    }
}

static void wt_stop_bh(void *opaque)
{
    atomic_store(&((wt_iothread *)opaque)->stop, 1);
}

static void wt_iothread_stop(wt_iothread *io, tc_thread *t)
{
    cr_assert_eq(aio_bh_schedule_oneshot(io->ctx, wt_stop_bh, io), 0);
    cr_assert(tc_thread_join(t, TC_BOUND_MS), "the iothread did not stop");
    aio_context_unref(io->ctx);
}

static tc_thread *wt_iothread_start(wt_iothread *io)
{
    atomic_init(&io->ready, 0);
    atomic_init(&io->stop, 0);
    atomic_init(&io->inflight, 0);
    tc_thread *t = tc_thread_start(wt_iothread_main, io);
    cr_assert(tsup_wait_flag(&io->ready, TC_BOUND_MS));
    return t;
}

static void wt_request_bh(void *opaque)
{
    wt_iothread *io = opaque;
    /* The change, then the kick (aio.h: kick after the change). */
    atomic_fetch_sub(&io->inflight, 1);
    aio_wait_kick();
}

static bool wt_inflight(void *opaque)
{
    return atomic_load(&((wt_iothread *)opaque)->inflight) > 0;
}

Test(wait, work_in_another_context_on_another_thread, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    wt_iothread io;
    tc_thread *t = wt_iothread_start(&io);
    enum { N = 100 };
    atomic_store(&io.inflight, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(aio_bh_schedule_oneshot(io.ctx, wt_request_bh, &io), 0);
    }
    tc_watchdog *wd = tc_watchdog_start(ctx, TC_BOUND_MS);
    cr_assert_eq(aio_wait_while(ctx, wt_inflight, &io), 0);
    cr_assert(!tc_watchdog_stop(wd), "lost wake-up: the waiter needed the watchdog");
    cr_assert_eq(atomic_load(&io.inflight), 0);
    wt_iothread_stop(&io, t);
    aio_context_unref(ctx);
}

/* Waiting for the pool's completions: done runs in ctx itself, so the
 * polls re-check after it and no kick is needed. */
static int wt_fn(void *arg)
{
    (void)arg;
    return 0;
}

static void wt_done(void *opaque, int ret)
{
    (void)ret;
    atomic_fetch_sub((atomic_int *)opaque, 1);
}

static bool wt_positive(void *opaque)
{
    return atomic_load((atomic_int *)opaque) > 0;
}

Test(wait, drain_the_pool, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    enum { N = 500 };
    atomic_int outstanding = N;
    for (int i = 0; i < N; i++) {
        cr_assert_not_null(aio_work_submit(ctx, wt_fn, NULL, wt_done, &outstanding));
    }
    tc_watchdog *wd = tc_watchdog_start(ctx, TC_BOUND_MS);
    cr_assert_eq(aio_wait_while(ctx, wt_positive, &outstanding), 0);
    cr_assert(!tc_watchdog_stop(wd));
    cr_assert_eq(atomic_load(&outstanding), 0);
    aio_context_unref(ctx);
}

/* Stress: the main context waits for one request at a time that the
 * iothread completes, so that every round has a kick racing the waiter's
 * check and sleep. A lost kick leaves the waiter asleep until the
 * watchdog, which the test reports. */
Test(wait, stress_kick_races_waiter, .timeout = 120)
{
    AioContext *ctx = tc_ctx_new();
    wt_iothread io;
    tc_thread *t = wt_iothread_start(&io);
    long rounds = tc_env_long("AIOPOLL_STRESS_ROUNDS", 100000) / 5;
    tc_watchdog *wd = tc_watchdog_start(ctx, 60000);
    long r;
    for (r = 0; r < rounds && !tc_watchdog_fired(wd); r++) {
        atomic_store(&io.inflight, 1);
        cr_assert_eq(aio_bh_schedule_oneshot(io.ctx, wt_request_bh, &io), 0);
        cr_assert_eq(aio_wait_while(ctx, wt_inflight, &io), 0);
    }
    bool fired = tc_watchdog_stop(wd);
    cr_assert(!fired, "lost wake-up after %ld of %ld rounds", r, rounds);
    wt_iothread_stop(&io, t);
    aio_context_unref(ctx);
}

/* ---- the embedded path ---------------------------------------------------- */
#ifndef _WIN32
#include "test_embed_host.h"

/* A host callback (a BH of an embedded ctx, run by aio_embed_dispatch from the
 * host loop of test_embed_host.h) waits with aio_wait_while for requests that
 * an IOThread (another context, another thread) completes. The completion and
 * its kick come while the nested wait is held just before its sleep
 * (asleep_ms 0) or while it is really asleep. */
typedef struct wt_embedded {
    AioContext *ctx;
    wt_iothread *io;
    int asleep_ms;
    tc_gate gate;
    atomic_int missed;
    atomic_int done;
    int ret;
    tc_thread *remote;
} wt_embedded;

/* On the remote thread, while the waiter is held or asleep: one request
 * through the IOThread, waited for, so that the change and its kick are over
 * before the waiter goes on. */
static void wt_complete_on_iothread(void *arg)
{
    wt_embedded *e = arg;
    cr_assert_eq(aio_bh_schedule_oneshot(e->io->ctx, wt_request_bh, e->io), 0);
    int64_t start = tsup_now_ns();
    while (atomic_load(&e->io->inflight) > 0 && tsup_ms_since(start) < TC_BOUND_MS) {
        tsup_sleep_ms(1);
    }
}

static void wt_embedded_wait_bh(void *opaque)
{
    wt_embedded *e = opaque;
    /* Installed here, in the host callback: the next sleep of ctx is the
     * nested wait's, not the host loop's. */
    tc_gate_install(e->ctx, &e->gate, AIO_HOOK_BEFORE_SLEEP, true);
    e->remote = tc_remote_when_sleeping(&e->gate, e->asleep_ms, wt_complete_on_iothread, e,
                                        &e->missed);
    e->ret = aio_wait_while(e->ctx, wt_inflight, e->io);
    tc_gate_remove(e->ctx, &e->gate);
    atomic_store(&e->done, 1);
}

static void wt_embedded_case(int asleep_ms)
{
    AioContext *ctx = tc_ctx_new();
    int r = aio_embed_attach(ctx, NULL);
    if (r == -ENOTSUP) {
        aio_context_unref(ctx); /* io_uring refuses embedding (docs/embedding.md) */
        return;
    }
    cr_assert_eq(r, 0);
    wt_iothread io;
    tc_thread *t = wt_iothread_start(&io);
    atomic_store(&io.inflight, 1);
    wt_embedded e = {.ctx = ctx, .io = &io, .asleep_ms = asleep_ms};
    atomic_init(&e.missed, 0);
    atomic_init(&e.done, 0);
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, wt_embedded_wait_bh, &e), 0);
    tc_watchdog *wd = tc_watchdog_start(ctx, TC_BOUND_MS);
    bool ran = host_run_until(ctx, &e.done, 1);
    bool fired = tc_watchdog_stop(wd);
    cr_assert(ran, "the host loop lost a wake-up");
    cr_assert(!fired, "aio_wait_while in a host callback slept through the kick (asleep_ms=%d)",
              asleep_ms);
    cr_assert_eq(e.ret, 0);
    cr_assert(tc_thread_join(e.remote, TC_BOUND_MS));
    cr_assert(!atomic_load(&e.missed), "the nested wait never reached its sleep");
    cr_assert_eq(atomic_load(&io.inflight), 0);
    wt_iothread_stop(&io, t);
    cr_assert_eq(aio_embed_detach(ctx), 0);
    aio_context_unref(ctx);
}

Test(wait, embedded_host_callback_kick_just_before_sleep, .timeout = 20)
{
    wt_embedded_case(0);
}

Test(wait, embedded_host_callback_kick_while_asleep, .timeout = 20)
{
    wt_embedded_case(50);
}
#endif
