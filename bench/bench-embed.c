/* SPDX-License-Identifier: MIT */
/*
 * Scenario "embed": the cross-thread wake-up round trip of a context embedded
 * in a host loop (GLib, libevent, libuv), against aiopoll's own aio_poll and
 * against each host loop's native cross-thread primitive, in one run.
 *
 * Side A is an aiopoll context on the bench's main thread, blocked in
 * aio_poll(ctx, true). Side B is a helper thread running:
 *   aiopoll          aio_poll(ctx, true) in a loop            (wake: aio_bh_schedule)
 *   <host>-embedded  the host loop with a context attached    (wake: aio_bh_schedule)
 *   glib-native      g_main_loop_run                          (wake: g_main_context_invoke)
 *   libevent-native  event_base_loop, evthread_use_pthreads    (wake: event_active)
 *   libuv-native     uv_run                                   (wake: uv_async_send)
 * B's callback schedules a BH on A, so the way back is the same for every
 * contender and the difference is B's wake-up and dispatch alone.
 */
#define _GNU_SOURCE /* ISO C build: <uv.h> and sched.h need the POSIX/GNU names */

#include "bench-embed.h"

#include <aiopoll/aio.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench-pairs.h"
#include "bench-util.h"

#if BENCH_HAVE_GLIB
#include <aiopoll/glib.h>
#endif
#if BENCH_HAVE_LIBEVENT
#include <aiopoll/libevent.h>
#include <event2/event.h>
#endif
#if BENCH_HAVE_LIBUV
#include <aiopoll/libuv.h>
#endif

typedef enum host_kind {
    H_AIOPOLL,
    H_GLIB_EMBED,
    H_GLIB_NATIVE,
    H_EVENT_EMBED,
    H_EVENT_NATIVE,
    H_UV_EMBED,
    H_UV_NATIVE,
} host_kind;

typedef struct hpair {
    host_kind kind;
    const char *name;
    AioContext *a;
    AioBH *bha;
    atomic_int done;
    AioContext *b; /* side B's context (aiopoll and embedded kinds) */
    AioBH *bhb;
    pthread_t th;
    atomic_int ready;
    atomic_bool stop;
    bu_samples s;
#if BENCH_HAVE_GLIB
    GMainContext *mc;
    GMainLoop *ml;
#endif
#if BENCH_HAVE_LIBEVENT
    struct event_base *base;
    struct event *ev;
#endif
#if BENCH_HAVE_LIBUV
    uv_loop_t loop;
    uv_async_t async, stop_async;
#endif
} hpair;

static void a_cb(void *op)
{
    hpair *p = op;
    atomic_store_explicit(&p->done, 1, memory_order_relaxed);
}

/* Side B's work, whatever woke it: wake A. */
static void b_cb(void *op)
{
    hpair *p = op;
    aio_bh_schedule(p->bha);
}

static void b_ctx_new(hpair *p)
{
    p->b = aio_context_new();
    if (!p->b) {
        fprintf(stderr, "aio_context_new failed\n");
        exit(1);
    }
    p->bhb = aio_bh_new(p->b, b_cb, p);
}

static void b_ctx_free(hpair *p)
{
    if (p->b) {
        aio_bh_delete(p->bhb);
        aio_poll(p->b, false);
        aio_context_unref(p->b);
    }
}

#if BENCH_HAVE_GLIB
static gboolean glib_native_cb(gpointer op)
{
    b_cb(op);
    return G_SOURCE_REMOVE;
}

static void run_glib(hpair *p)
{
    p->mc = g_main_context_new();
    p->ml = g_main_loop_new(p->mc, FALSE);
    GSource *s = NULL;
    if (p->kind == H_GLIB_EMBED) {
        b_ctx_new(p);
        s = aio_context_gsource_new(p->b);
        g_source_attach(s, p->mc);
    }
    g_main_context_push_thread_default(p->mc);
    atomic_store(&p->ready, 1);
    g_main_loop_run(p->ml);
    if (s) {
        g_source_destroy(s);
        g_source_unref(s);
    }
    g_main_context_pop_thread_default(p->mc);
    g_main_loop_unref(p->ml);
    g_main_context_unref(p->mc);
    b_ctx_free(p);
}
#endif

#if BENCH_HAVE_LIBEVENT
static void event_native_cb(evutil_socket_t fd, short what, void *op)
{
    (void)fd, (void)what;
    b_cb(op);
}

static void run_libevent(hpair *p)
{
    p->base = event_base_new();
    if (p->kind == H_EVENT_EMBED) {
        b_ctx_new(p);
        aio_context_attach_event_base(p->b, p->base);
    } else {
        p->ev = event_new(p->base, -1, 0, event_native_cb, p);
    }
    atomic_store(&p->ready, 1);
    event_base_loop(p->base, EVLOOP_NO_EXIT_ON_EMPTY);
    if (p->b) {
        aio_context_detach_event_base(p->b);
    }
    if (p->ev) {
        event_free(p->ev);
    }
    event_base_free(p->base);
    b_ctx_free(p);
}
#endif

#if BENCH_HAVE_LIBUV
static void uv_native_cb(uv_async_t *a)
{
    b_cb(a->data);
}

static void uv_stop_cb(uv_async_t *a)
{
    hpair *p = a->data;
    if (p->b) {
        aio_context_detach_uv_loop(p->b);
    }
    uv_close((uv_handle_t *)&p->async, NULL);
    uv_close((uv_handle_t *)&p->stop_async, NULL);
}

static void run_libuv(hpair *p)
{
    uv_loop_init(&p->loop);
    uv_async_init(&p->loop, &p->stop_async, uv_stop_cb);
    uv_async_init(&p->loop, &p->async, uv_native_cb);
    p->async.data = p->stop_async.data = p;
    if (p->kind == H_UV_EMBED) {
        b_ctx_new(p);
        aio_context_attach_uv_loop(p->b, &p->loop);
    }
    atomic_store(&p->ready, 1);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_loop_close(&p->loop);
    b_ctx_free(p);
}
#endif

static void *b_thread(void *op)
{
    hpair *p = op;
    if (bp_cpu_b >= 0) {
        bp_pin_self(bp_cpu_b);
    }
    switch (p->kind) {
    case H_AIOPOLL:
        b_ctx_new(p);
        atomic_store(&p->ready, 1);
        while (!atomic_load(&p->stop)) {
            aio_poll(p->b, true);
        }
        /* Freed by hpair_stop after the join: its aio_notify() may still
         * be using the context when this loop sees stop. */
        break;
#if BENCH_HAVE_GLIB
    case H_GLIB_EMBED:
    case H_GLIB_NATIVE:
        run_glib(p);
        break;
#endif
#if BENCH_HAVE_LIBEVENT
    case H_EVENT_EMBED:
    case H_EVENT_NATIVE:
        run_libevent(p);
        break;
#endif
#if BENCH_HAVE_LIBUV
    case H_UV_EMBED:
    case H_UV_NATIVE:
        run_libuv(p);
        break;
#endif
    default:
        break;
    }
    return NULL;
}

static void hpair_start(hpair *p, host_kind kind, const char *name, AioContext *a)
{
    p->kind = kind;
    p->name = name;
    p->a = a;
    p->bha = aio_bh_new(a, a_cb, p);
    pthread_create(&p->th, NULL, b_thread, p);
    while (!atomic_load(&p->ready)) {
        sched_yield();
    }
}

static void wake_b(hpair *p)
{
    switch (p->kind) {
#if BENCH_HAVE_GLIB
    case H_GLIB_NATIVE:
        g_main_context_invoke(p->mc, glib_native_cb, p);
        return;
#endif
#if BENCH_HAVE_LIBEVENT
    case H_EVENT_NATIVE:
        event_active(p->ev, EV_READ, 0);
        return;
#endif
#if BENCH_HAVE_LIBUV
    case H_UV_NATIVE:
        uv_async_send(&p->async);
        return;
#endif
    default:
        aio_bh_schedule(p->bhb);
    }
}

static void ping(hpair *p)
{
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    wake_b(p);
    while (!atomic_load_explicit(&p->done, memory_order_relaxed)) {
        aio_poll(p->a, true);
    }
}

static void hpair_stop(hpair *p)
{
    switch (p->kind) {
#if BENCH_HAVE_GLIB
    case H_GLIB_EMBED:
    case H_GLIB_NATIVE:
        g_main_loop_quit(p->ml);
        break;
#endif
#if BENCH_HAVE_LIBEVENT
    case H_EVENT_EMBED:
    case H_EVENT_NATIVE:
        event_base_loopbreak(p->base);
        break;
#endif
#if BENCH_HAVE_LIBUV
    case H_UV_EMBED:
    case H_UV_NATIVE:
        uv_async_send(&p->stop_async);
        break;
#endif
    default:
        atomic_store(&p->stop, true);
        aio_notify(p->b);
    }
    pthread_join(p->th, NULL);
    if (p->kind == H_AIOPOLL) {
        b_ctx_free(p);
    }
    aio_bh_delete(p->bha);
}

void bench_scen_embed(bool quick)
{
    AioContext *a = aio_context_new();
    hpair p[7] = {{0}};
    int n = 0;
    hpair_start(&p[n++], H_AIOPOLL, "aiopoll", a);
#if BENCH_HAVE_GLIB
    hpair_start(&p[n++], H_GLIB_EMBED, "glib-embedded", a);
    hpair_start(&p[n++], H_GLIB_NATIVE, "glib-native", a);
#endif
#if BENCH_HAVE_LIBEVENT
    hpair_start(&p[n++], H_EVENT_EMBED, "libevent-embedded", a);
    hpair_start(&p[n++], H_EVENT_NATIVE, "libevent-native", a);
#endif
#if BENCH_HAVE_LIBUV
    hpair_start(&p[n++], H_UV_EMBED, "libuv-embedded", a);
    hpair_start(&p[n++], H_UV_NATIVE, "libuv-native", a);
#endif
    for (int i = 0; i < n; i++) {
        bu_note("%-18s side B on %s", p[i].name,
                p[i].b ? aio_context_backend(p[i].b) : "the host loop alone");
    }
    int reps = quick ? 10 : 40, per_batch = quick ? 300 : 1000;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < 200; j++) {
            ping(&p[i]); /* warm-up, not recorded */
        }
    }
    for (int r = 0; r < reps; r++) {
        for (int k = 0; k < n; k++) {
            hpair *x = &p[(r + k) % n];
            for (int j = 0; j < per_batch; j++) {
                int64_t t0 = bu_now_ns();
                ping(x);
                bu_add(&x->s, (double)(bu_now_ns() - t0));
            }
        }
    }
    for (int i = 0; i < n; i++) {
        bu_report("embed", "-", p[i].name, "round trip", "ns", false, &p[i].s);
        bu_free(&p[i].s);
        hpair_stop(&p[i]);
    }
    bu_print_ratios("embed", "-", "round trip", "aiopoll");
    static const char *const hosts[] = {"glib", "libevent", "libuv"};
    for (int h = 0; h < 3; h++) {
        char e[32], nat[32];
        snprintf(e, sizeof(e), "%s-embedded", hosts[h]);
        snprintf(nat, sizeof(nat), "%s-native", hosts[h]);
        double me = bu_median_of("embed", "-", e, "round trip");
        double mn = bu_median_of("embed", "-", nat, "round trip");
        double ma = bu_median_of("embed", "-", "aiopoll", "round trip");
        if (me == me && mn == mn) {
            bu_note("%-9s embedded/aiopoll %.2fx (target <= 1.2), embedded/native %.2fx "
                    "(target <= 1.0)",
                    hosts[h], me / ma, me / mn);
        }
    }
    aio_context_unref(a);
}
