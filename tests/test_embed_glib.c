/* SPDX-License-Identifier: MIT */
/* aiopoll::glib on a real GMainContext: the shared host-loop tests. */
#include <aiopoll/glib.h>

#include "test-common.h"

#define HOST_SUITE embed_glib
#define DRV_MAX 4

typedef struct drv {
    GMainContext *mc;
    AioContext *ctx[DRV_MAX];
    GSource *src[DRV_MAX];
    GSource *watchdog;
} drv;

static drv *drv_new(void)
{
    drv *d = calloc(1, sizeof(*d));
    d->mc = g_main_context_new();
    return d;
}

static void drv_free(drv *d)
{
    g_main_context_unref(d->mc);
    free(d);
}

static int drv_attach(drv *d, AioContext *ctx)
{
    for (int i = 0; i < DRV_MAX; i++) {
        if (!d->src[i]) {
            d->src[i] = aio_context_gsource_new(ctx);
            if (!d->src[i]) {
                return -EBUSY; /* NULL is all GLib's constructor says */
            }
            d->ctx[i] = ctx;
            g_source_attach(d->src[i], d->mc);
            return 0;
        }
    }
    return -ENOMEM;
}

static void drv_detach(drv *d, AioContext *ctx)
{
    for (int i = 0; i < DRV_MAX; i++) {
        if (d->src[i] && d->ctx[i] == ctx) {
            g_source_destroy(d->src[i]);
            g_source_unref(d->src[i]);
            d->src[i] = NULL;
            return;
        }
    }
}

static void drv_iterate(drv *d)
{
    g_main_context_iteration(d->mc, TRUE);
}

static void drv_drain(drv *d)
{
    while (g_main_context_iteration(d->mc, FALSE)) {
    }
}

static gboolean flag_cb(gpointer p)
{
    atomic_store((atomic_int *)p, 1);
    return G_SOURCE_REMOVE;
}

static void drv_watchdog_cancel(drv *d)
{
    if (d->watchdog) {
        g_source_destroy(d->watchdog);
        g_source_unref(d->watchdog);
        d->watchdog = NULL;
    }
}

static void drv_watchdog(drv *d, int ms, atomic_int *flag)
{
    drv_watchdog_cancel(d);
    d->watchdog = g_timeout_source_new((guint)ms);
    g_source_set_callback(d->watchdog, flag_cb, flag, NULL);
    g_source_attach(d->watchdog, d->mc);
}

typedef struct deferred {
    void (*fn)(void *);
    void *arg;
} deferred;

static gboolean deferred_cb(gpointer p)
{
    deferred *x = p;
    x->fn(x->arg);
    return G_SOURCE_REMOVE;
}

static void drv_defer(drv *d, void (*fn)(void *), void *arg)
{
    deferred *x = g_new(deferred, 1);
    x->fn = fn;
    x->arg = arg;
    GSource *idle = g_idle_source_new();
    g_source_set_callback(idle, deferred_cb, x, g_free);
    g_source_attach(idle, d->mc);
    g_source_unref(idle);
}

#include "test_embed_hosts.h"

/* GLib's own contract: NULL for NULL, and for a second GSource. */
Test(embed_glib, gsource_new_refusals, .timeout = 30)
{
    cr_assert_null(aio_context_gsource_new(NULL));
    AioContext *ctx = tc_ctx_new();
    GSource *s = aio_context_gsource_new(ctx);
    cr_assert_not_null(s);
    cr_assert_null(aio_context_gsource_new(ctx), "two GSources for one context");
    cr_assert_eq(aio_embed_attach(ctx, NULL), -EBUSY);
    g_source_unref(s); /* never attached: finalize detaches */
    cr_assert_null(aio_embed_host(ctx));
    aio_context_unref(ctx);
}

static void count_off_home(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer p)
{
    (void)domain;
    if ((level & G_LOG_LEVEL_CRITICAL) && strstr(msg, "off the home thread")) {
        atomic_fetch_add((atomic_int *)p, 1);
    }
}

static void iterate_three_times(void *p)
{
    for (int i = 0; i < 3; i++) {
        g_main_context_iteration(p, FALSE);
    }
}

/* Iterated on a thread that is not ctx's home: nothing is dispatched (the
 * rule), and the adapter says so once instead of sleeping in silence; the
 * home thread's iteration then works as before. */
Test(embed_glib, iterated_off_the_home_thread_says_so_once, .timeout = 30)
{
    AioContext *ctx = tc_ctx_new();
    GMainContext *mc = g_main_context_new();
    GSource *s = aio_context_gsource_new(ctx);
    cr_assert_not_null(s);
    g_source_attach(s, mc);
    atomic_int crit = 0, ran = 0;
    guint id = g_log_set_handler(NULL, G_LOG_LEVEL_CRITICAL, count_off_home, &crit);
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &ran), 0);
    cr_assert(tc_thread_join(tc_thread_start(iterate_three_times, mc), TC_BOUND_MS));
    g_log_remove_handler(NULL, id);
    cr_assert_eq(atomic_load(&crit), 1, "iterated off the home thread: %d criticals",
                 atomic_load(&crit));
    cr_assert_eq(atomic_load(&ran), 0, "dispatched off the home thread");
    for (int i = 0; i < 100 && atomic_load(&ran) == 0; i++) {
        g_main_context_iteration(mc, FALSE);
    }
    cr_assert_eq(atomic_load(&ran), 1, "the home thread's iteration no longer dispatches");
    g_source_destroy(s);
    g_source_unref(s);
    g_main_context_unref(mc);
    aio_context_unref(ctx);
}

/* ---- aio_wait_while from a GLib callback ----------------------------------- */

/* An IOThread: its own context on its own thread, completing requests that
 * the embedded context waits for. */
typedef struct gl_iothread {
    AioContext *ctx;
    atomic_int ready, stop, inflight;
} gl_iothread;

static void gl_iothread_main(void *arg)
{
    gl_iothread *io = arg;
    io->ctx = aio_context_new();
    atomic_store(&io->ready, 1);
    while (!atomic_load(&io->stop)) {
        aio_poll(io->ctx, true);
    }
}

static void gl_iothread_stop_bh(void *opaque)
{
    atomic_store(&((gl_iothread *)opaque)->stop, 1);
}

static void gl_request_bh(void *opaque)
{
    gl_iothread *io = opaque;
    atomic_fetch_sub(&io->inflight, 1); /* the change, then the kick */
    aio_wait_kick();
}

static bool gl_inflight(void *opaque)
{
    return atomic_load(&((gl_iothread *)opaque)->inflight) > 0;
}

typedef struct gl_waiter {
    AioContext *ctx;
    gl_iothread *io;
    int ret;
    atomic_int done;
} gl_waiter;

/* A GLib idle callback (not one of ours, run by g_main_context_iteration
 * while the context is attached as a GSource) sends requests to the IOThread
 * and waits for them (AIO_WAIT_WHILE from main-loop code). */
static void gl_wait_cb(void *p)
{
    gl_waiter *w = p;
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(aio_bh_schedule_oneshot(w->io->ctx, gl_request_bh, w->io), 0);
    }
    w->ret = aio_wait_while(w->ctx, gl_inflight, w->io);
    atomic_store(&w->done, 1);
}

Test(embed_glib, wait_while_in_a_glib_callback_for_an_iothread, .timeout = 30)
{
    loop l;
    loop_init(&l);
    gl_iothread io = {0};
    atomic_init(&io.ready, 0);
    atomic_init(&io.stop, 0);
    atomic_init(&io.inflight, 20);
    tc_thread *t = tc_thread_start(gl_iothread_main, &io);
    cr_assert(tsup_wait_flag(&io.ready, TC_BOUND_MS));
    gl_waiter w = {.ctx = l.ctx, .io = &io};
    atomic_init(&w.done, 0);
    tc_watchdog *wd = tc_watchdog_start(l.ctx, TC_BOUND_MS);
    drv_defer(l.d, gl_wait_cb, &w);
    bool ran = run_until(&l, &w.done, 1);
    bool fired = tc_watchdog_stop(wd);
    cr_assert(ran, "the GLib loop lost a wake-up");
    cr_assert(!fired, "aio_wait_while in a GLib callback needed the watchdog: lost wake-up");
    cr_assert_eq(w.ret, 0);
    cr_assert_eq(atomic_load(&io.inflight), 0);
    cr_assert_eq(aio_bh_schedule_oneshot(io.ctx, gl_iothread_stop_bh, &io), 0);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    aio_context_unref(io.ctx);
    loop_fini(&l);
}
