/* SPDX-License-Identifier: MIT */
/* aiopoll::libuv on a real uv_loop_t: the shared host-loop tests. */
/* ISO C build: <uv.h> needs the POSIX types it uses asked for. */
#define _POSIX_C_SOURCE 200809L

#include <aiopoll/libuv.h>

#include "test-common.h"

#include <stdlib.h>

#define HOST_SUITE embed_libuv
#define HOST_NO_RECURSION /* uv_run() must not nest */

typedef struct drv {
    uv_loop_t loop;
    uv_timer_t watchdog;
    atomic_int *flag;
} drv;

static drv *drv_new(void)
{
    drv *d = calloc(1, sizeof(*d));
    uv_loop_init(&d->loop);
    uv_timer_init(&d->loop, &d->watchdog);
    d->watchdog.data = d;
    return d;
}

static void drv_free(drv *d)
{
    uv_close((uv_handle_t *)&d->watchdog, NULL);
    /* Let detached adapters' handles finish closing. */
    uv_run(&d->loop, UV_RUN_NOWAIT);
    cr_assert_eq(uv_loop_close(&d->loop), 0, "a handle of a detached context is left");
    free(d);
}

static int drv_attach(drv *d, AioContext *ctx)
{
    return aio_context_attach_uv_loop(ctx, &d->loop);
}

static void drv_detach(drv *d, AioContext *ctx)
{
    (void)d;
    aio_context_detach_uv_loop(ctx);
}

static void drv_iterate(drv *d)
{
    uv_run(&d->loop, UV_RUN_ONCE);
}

static void drv_drain(drv *d)
{
    uv_run(&d->loop, UV_RUN_NOWAIT);
}

static void flag_cb(uv_timer_t *t)
{
    drv *d = t->data;
    atomic_store(d->flag, 1);
}

static void drv_watchdog_cancel(drv *d)
{
    uv_timer_stop(&d->watchdog);
}

static void drv_watchdog(drv *d, int ms, atomic_int *flag)
{
    d->flag = flag;
    uv_timer_start(&d->watchdog, flag_cb, (uint64_t)ms, 0);
}

typedef struct deferred {
    uv_timer_t t;
    void (*fn)(void *);
    void *arg;
} deferred;

static void deferred_closed(uv_handle_t *h)
{
    free(h);
}

static void deferred_cb(uv_timer_t *t)
{
    deferred *x = (deferred *)t;
    x->fn(x->arg);
    uv_close((uv_handle_t *)t, deferred_closed);
}

static void drv_defer(drv *d, void (*fn)(void *), void *arg)
{
    deferred *x = malloc(sizeof(*x));
    x->fn = fn;
    x->arg = arg;
    uv_timer_init(&d->loop, &x->t);
    uv_timer_start(&x->t, deferred_cb, 0, 0);
}

#include "test_embed_hosts.h"

Test(embed_libuv, attach_refusals, .timeout = 30)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    cr_assert_eq(aio_context_attach_uv_loop(NULL, &loop), -EINVAL);
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_attach_uv_loop(ctx, NULL), -EINVAL);
    aio_context_detach_uv_loop(ctx); /* not attached: no-op */
    aio_context_detach_uv_loop(NULL);
    cr_assert_eq(aio_embed_attach(ctx, NULL), 0);
    cr_assert_eq(aio_context_attach_uv_loop(ctx, &loop), -EBUSY);
    cr_assert_eq(aio_embed_detach(ctx), 0);
    aio_context_unref(ctx);
    cr_assert_eq(uv_loop_close(&loop), 0, "a refused attach left a handle");
}

static void run_three_times_nowait(void *p)
{
    for (int i = 0; i < 3; i++) {
        uv_run(p, UV_RUN_NOWAIT);
    }
}

/* uv_run on a thread that is not ctx's home: nothing is dispatched, the
 * adapter unwatches (or the loop would spin on a readable aggregate) and says
 * so once; the home thread's next uv_run watches and dispatches again. */
Test(embed_libuv, run_off_the_home_thread_says_so_once, .timeout = 30)
{
    AioContext *ctx = tc_ctx_new();
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(aio_context_attach_uv_loop(ctx, &loop), 0);
    uv_run(&loop, UV_RUN_NOWAIT); /* home: the aggregate watched */
    atomic_int ran = 0;
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &ran), 0);
    stderr_capture c;
    stderr_capture_begin(&c);
    bool joined = tc_thread_join(tc_thread_start(run_three_times_nowait, &loop), TC_BOUND_MS);
    int said = stderr_capture_end(&c, "off the home thread");
    cr_assert(joined);
    cr_assert_eq(said, 1, "run off the home thread: %d reports", said);
    cr_assert_eq(atomic_load(&ran), 0, "dispatched off the home thread");
    for (int i = 0; i < 100 && atomic_load(&ran) == 0; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    cr_assert_eq(atomic_load(&ran), 1, "the home thread's uv_run no longer dispatches");
    aio_context_detach_uv_loop(ctx);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    aio_context_unref(ctx);
}
