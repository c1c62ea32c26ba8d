/* SPDX-License-Identifier: MIT */
/*
 * The libevent adapter. libevent 2.1 has no hook before its sleep, so the
 * context is announced (aio_embed_prepare) at attach and again at the end of
 * every callback of ours: from then until our next callback the base's sleep
 * is covered, whatever other events run meanwhile (a nested aio_poll(ctx,
 * true) from one of them only adds and removes its own announcement). A
 * persistent event per queried descriptor and one timer event (the
 * prepare's timeout; made active at once when work is pending) bring the
 * base back to us.
 */
#include <aiopoll/libevent.h>

#include <event2/event.h>
#include <stddef.h>
#include <stdlib.h>

#include "host-fds.h"

static const char libevent_kind[] = "libevent";

typedef struct AioEventHost {
    const void *kind; /* libevent_kind; aio_embed_host() points here */
    AioContext *ctx;
    struct event_base *base;
    struct event *timer;
    struct event **evs; /* parallel to fds.cur */
    size_t nevs;
    AioHostFds fds;
    unsigned in_cb;
    bool detached; /* while in_cb: free on the way out */
    int reported_off_home;
} AioEventHost;

static void on_ready(evutil_socket_t fd, short what, void *arg);

static void free_evs(AioEventHost *h)
{
    /* event_free() unregisters at once (no changelist by default): done
     * before aio_embed_query() / detach can close the descriptor. */
    for (size_t i = 0; i < h->nevs; i++) {
        event_free(h->evs[i]);
    }
    h->nevs = 0;
}

static int sync_events(AioEventHost *h)
{
    int r = aio_host_fds_update(h->ctx, &h->fds);
    if (r <= 0) {
        return r;
    }
    free_evs(h);
    struct event **evs = realloc(h->evs, h->fds.ncur * sizeof(*evs));
    if (!evs) {
        return -ENOMEM;
    }
    h->evs = evs;
    for (size_t i = 0; i < h->fds.ncur; i++) {
        short what = (short)(EV_PERSIST | (h->fds.cur[i].events & AIO_EMBED_READ ? EV_READ : 0) |
                             (h->fds.cur[i].events & AIO_EMBED_WRITE ? EV_WRITE : 0));
        struct event *ev = event_new(h->base, h->fds.cur[i].handle, what, on_ready, h);
        if (!ev || event_add(ev, NULL) != 0) {
            if (ev) {
                event_free(ev);
            }
            return -ENOMEM;
        }
        h->evs[h->nevs++] = ev;
    }
    return 0;
}

/* The next sleep of the base is the context's blocking poll from here on. */
static int rearm(AioEventHost *h)
{
    int64_t ns;
    int r = aio_embed_prepare(h->ctx, &ns);
    if (r < 0) {
        return r;
    }
    int err = sync_events(h);
    if (err < 0) {
        /* Without its descriptors the base would not wake for the
         * context: poll again soon instead. */
        r = 0;
        ns = 1000000;
    }
    if (r > 0) {
        event_active(h->timer, EV_TIMEOUT, 1);
    } else if (ns >= 0) {
        int64_t us = ns / 1000 + (ns % 1000 != 0); /* round up: never early */
        struct timeval tv = {(time_t)(us / 1000000), (long)(us % 1000000)};
        evtimer_add(h->timer, &tv);
    } else {
        evtimer_del(h->timer);
    }
    return err;
}

static void host_free(AioEventHost *h)
{
    free_evs(h);
    free(h->evs);
    event_free(h->timer);
    aio_host_fds_fini(&h->fds);
    free(h);
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    AioEventHost *h = arg;
    h->in_cb++;
    int c = aio_embed_check(h->ctx);
    if (c > 0) {
        aio_embed_dispatch(h->ctx);
    }
    h->in_cb--;
    if (c == -EPERM && !h->detached) {
        /* The base runs on a thread that is not ctx's home: stop (the base
         * would spin on a readable aggregate) and say so. Nothing calls us
         * again; libevent.h says to detach and attach again. */
        aio_host_report_off_home("libevent", h->ctx, &h->reported_off_home);
        free_evs(h);
        evtimer_del(h->timer);
        aio_host_fds_fini(&h->fds);
        return;
    }
    if (h->detached) {
        /* Detached from a callback: ctx may be gone, h is ours to free. */
        if (h->in_cb == 0) {
            host_free(h);
        }
        return;
    }
    rearm(h);
}

/* Every libevent callback runs between our prepare and the base's sleep:
 * one that ran a nested blocking poll may have made our timer or events
 * stale. An active event makes the base run us before it sleeps, and costs
 * the nested polls nothing (they never wait on it). */
static void stale(void *host)
{
    AioEventHost *h = (AioEventHost *)(void *)((char *)host - offsetof(AioEventHost, kind));
    event_active(h->timer, EV_TIMEOUT, 1);
}

int aio_context_attach_event_base(AioContext *ctx, struct event_base *base)
{
    if (!ctx || !base) {
        return -EINVAL;
    }
    AioEventHost *h = calloc(1, sizeof(*h));
    if (!h) {
        return -ENOMEM;
    }
    h->kind = libevent_kind;
    h->ctx = ctx;
    h->base = base;
    h->timer = evtimer_new(base, on_ready, h);
    if (!h->timer) {
        free(h);
        return -ENOMEM;
    }
    int err = aio_embed_attach(ctx, &h->kind);
    if (err == 0) {
        aio_embed_set_stale_handler(ctx, stale);
        err = rearm(h);
        if (err) {
            free_evs(h);
            aio_embed_detach(ctx);
        }
    }
    if (err) {
        host_free(h);
    }
    return err;
}

void aio_context_detach_event_base(AioContext *ctx)
{
    const void *const *k = aio_embed_host(ctx);
    if (!k || *k != libevent_kind) {
        return;
    }
    AioEventHost *h = (AioEventHost *)(void *)((char *)k - offsetof(AioEventHost, kind));
    /* Unregister first: detach closes the descriptors the events name. */
    free_evs(h);
    evtimer_del(h->timer);
    aio_embed_detach(ctx);
    if (h->in_cb) {
        h->detached = true;
    } else {
        host_free(h);
    }
}
