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
