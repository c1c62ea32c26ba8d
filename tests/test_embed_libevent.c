/* SPDX-License-Identifier: MIT */
/* aiopoll::libevent on a real event_base: the shared host-loop tests. */
#include <aiopoll/libevent.h>
#include <event2/event.h>

#include "test-common.h"

#include <stdlib.h>

#define HOST_SUITE embed_libevent
#define HOST_NO_RECURSION /* event_base_loop() refuses to nest */
#define HOST_PREPARES_AFTER_CALLBACKS

typedef struct drv {
    struct event_base *base;
    struct event *watchdog;
} drv;

static drv *drv_new(void)
{
    drv *d = calloc(1, sizeof(*d));
    d->base = event_base_new();
    return d;
}

static void drv_free(drv *d)
{
    if (d->watchdog) {
        event_free(d->watchdog);
    }
    event_base_free(d->base);
    free(d);
}

static int drv_attach(drv *d, AioContext *ctx)
{
    return aio_context_attach_event_base(ctx, d->base);
}

static void drv_detach(drv *d, AioContext *ctx)
{
    (void)d;
    aio_context_detach_event_base(ctx);
}

static void drv_iterate(drv *d)
{
    event_base_loop(d->base, EVLOOP_ONCE);
}

static void drv_drain(drv *d)
{
    event_base_loop(d->base, EVLOOP_NONBLOCK);
}

static void flag_cb(evutil_socket_t fd, short what, void *p)
{
    (void)fd;
    (void)what;
    atomic_store((atomic_int *)p, 1);
}

static void drv_watchdog_cancel(drv *d)
{
    if (d->watchdog) {
        event_free(d->watchdog);
        d->watchdog = NULL;
    }
}

static void drv_watchdog(drv *d, int ms, atomic_int *flag)
{
    drv_watchdog_cancel(d);
    d->watchdog = evtimer_new(d->base, flag_cb, flag);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(d->watchdog, &tv);
}

typedef struct deferred {
    void (*fn)(void *);
    void *arg;
} deferred;

static void deferred_cb(evutil_socket_t fd, short what, void *p)
{
    (void)fd;
    (void)what;
    deferred *x = p;
    x->fn(x->arg);
    free(x);
}

static void drv_defer(drv *d, void (*fn)(void *), void *arg)
{
    deferred *x = malloc(sizeof(*x));
    x->fn = fn;
    x->arg = arg;
    struct timeval zero = {0, 0};
    event_base_once(d->base, -1, EV_TIMEOUT, deferred_cb, x, &zero);
}

#include "test_embed_hosts.h"

Test(embed_libevent, attach_refusals, .timeout = 30)
{
    struct event_base *base = event_base_new();
    cr_assert_eq(aio_context_attach_event_base(NULL, base), -EINVAL);
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_attach_event_base(ctx, NULL), -EINVAL);
    aio_context_detach_event_base(ctx); /* not attached: no-op */
    aio_context_detach_event_base(NULL);
    cr_assert_eq(aio_embed_attach(ctx, NULL), 0);
    aio_context_detach_event_base(ctx); /* attached to something else: no-op */
    cr_assert_null(aio_embed_host(ctx), "the generic host pointer is NULL");
    cr_assert_eq(aio_context_attach_event_base(ctx, base), -EBUSY);
    cr_assert_eq(aio_embed_detach(ctx), 0);
    aio_context_unref(ctx);
    event_base_free(base);
}

static void loop_three_times_nonblocking(void *p)
{
    for (int i = 0; i < 3; i++) {
        event_base_loop(p, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
}

/* The base run on a thread that is not ctx's home: nothing is dispatched
 * (the rule), and instead of spinning on the aggregate a kick left readable
 * (which nobody may clear there) the adapter unregisters and says so once;
 * detach and a new attach on the home thread work. */
Test(embed_libevent, run_off_the_home_thread_stops_and_says_so, .timeout = 30)
{
    AioContext *ctx = tc_ctx_new();
    struct event_base *base = event_base_new();
    cr_assert_eq(aio_context_attach_event_base(ctx, base), 0);
    atomic_int ran = 0;
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &ran), 0); /* kicks */
    stderr_capture c;
    stderr_capture_begin(&c);
    bool joined = tc_thread_join(tc_thread_start(loop_three_times_nonblocking, base), TC_BOUND_MS);
    int said = stderr_capture_end(&c, "off the home thread");
    cr_assert(joined);
    cr_assert_eq(said, 1, "run off the home thread: %d reports", said);
    cr_assert_eq(atomic_load(&ran), 0, "dispatched off the home thread");
    cr_assert_eq(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0,
                 "still watching: the base spins on the readable aggregate");
    aio_context_detach_event_base(ctx);
    cr_assert_eq(aio_context_attach_event_base(ctx, base), 0);
    for (int i = 0; i < 100 && atomic_load(&ran) == 0; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    cr_assert_eq(atomic_load(&ran), 1, "a new attach on the home thread does not dispatch");
    aio_context_detach_event_base(ctx);
    aio_context_unref(ctx);
    event_base_free(base);
}
