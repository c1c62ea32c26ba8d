/* SPDX-License-Identifier: MIT */
/*
 * The libuv adapter: uv_run()'s own prepare -> poll -> check order is the
 * embedding API's. The prepare callback runs after the loop's timers and
 * before uv_backend_timeout() is computed, so the timer it starts decides
 * the poll's timeout (0 when work is pending).
 */
/* The adapter is ISO C (C_EXTENSIONS OFF), where <uv.h>'s POSIX types
 * (pthread_rwlock_t) are hidden unless asked for. */
#define _POSIX_C_SOURCE 200809L

#include <aiopoll/libuv.h>

#include <stddef.h>
#include <stdlib.h>

#include "host-fds.h"

static const char libuv_kind[] = "libuv";

typedef struct AioUvHost {
    const void *kind; /* libuv_kind; aio_embed_host() points here */
    AioContext *ctx;  /* NULL once detached */
    uv_loop_t *loop;
    uv_prepare_t prepare;
    uv_check_t check;
    uv_timer_t timer;
    uv_poll_t **polls; /* parallel to fds.cur */
    size_t npolls;
    AioHostFds fds;
    unsigned open_handles; /* freed when the last one has closed */
    int reported_off_home;
} AioUvHost;

static void host_free(AioUvHost *h)
{
    free(h->polls);
    aio_host_fds_fini(&h->fds);
    free(h);
}

static void handle_closed(uv_handle_t *handle)
{
    AioUvHost *h = handle->data;
    if (handle->type == UV_POLL) {
        free(handle);
    }
    if (--h->open_handles == 0) {
        host_free(h);
    }
}

static void close_polls(AioUvHost *h)
{
    /* uv_close() of a uv_poll_t removes the descriptor from the kernel at
     * once, before aio_embed_query() / detach can close it. */
    for (size_t i = 0; i < h->npolls; i++) {
        uv_close((uv_handle_t *)h->polls[i], handle_closed);
    }
    h->npolls = 0;
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)p;
    (void)status;
    (void)events; /* the check handle does the work */
}

static int sync_polls(AioUvHost *h)
{
    int r = aio_host_fds_update(h->ctx, &h->fds);
    if (r <= 0) {
        return r;
    }
    close_polls(h);
    uv_poll_t **polls = realloc(h->polls, h->fds.ncur * sizeof(*polls));
    if (!polls) {
        return -ENOMEM;
    }
    h->polls = polls;
    for (size_t i = 0; i < h->fds.ncur; i++) {
        uv_poll_t *p = malloc(sizeof(*p));
        if (!p || uv_poll_init(h->loop, p, h->fds.cur[i].handle) != 0) {
            free(p);
            return -ENOMEM;
        }
        p->data = h;
        h->open_handles++;
        h->polls[h->npolls++] = p;
        int ev = (h->fds.cur[i].events & AIO_EMBED_READ ? UV_READABLE : 0) |
                 (h->fds.cur[i].events & AIO_EMBED_WRITE ? UV_WRITABLE : 0);
        uv_poll_start(p, ev, on_poll);
    }
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    (void)t;
}

static void on_prepare(uv_prepare_t *p)
{
    AioUvHost *h = p->data;
    int64_t ns;
    int r = aio_embed_prepare(h->ctx, &ns);
    if (r == -EPERM) {
        /* uv_run on a thread that is not ctx's home: unwatch (the loop would
         * spin on a readable aggregate) and say so. The prepare handle
         * stays, so the home thread's next iteration watches again. */
        aio_host_report_off_home("libuv", h->ctx, &h->reported_off_home);
        close_polls(h);
        aio_host_fds_fini(&h->fds);
    } else if (r >= 0 && sync_polls(h) < 0) {
        /* Without its descriptors the loop would not wake for the context:
         * poll again soon instead. */
        r = 0;
        ns = 1000000;
    }
    if (r < 0 || ns < 0) {
        uv_timer_stop(&h->timer);
    } else {
        uv_timer_start(&h->timer, on_timer, (uint64_t)aio_host_timeout_ms(ns, INT64_MAX), 0);
    }
}

static void on_check(uv_check_t *c)
{
    AioUvHost *h = c->data;
    if (h->ctx && aio_embed_check(h->ctx) > 0) {
        aio_embed_dispatch(h->ctx);
    }
}

/* A prepare callback after ours ran a nested blocking poll: a zero timer
 * makes this iteration's poll return at once, so that we prepare again. */
static void stale(void *host)
{
    AioUvHost *h = (AioUvHost *)(void *)((char *)host - offsetof(AioUvHost, kind));
    uv_timer_start(&h->timer, on_timer, 0, 0);
}

int aio_context_attach_uv_loop(AioContext *ctx, uv_loop_t *loop)
{
    if (!ctx || !loop) {
        return -EINVAL;
    }
    AioUvHost *h = calloc(1, sizeof(*h));
    if (!h) {
        return -ENOMEM;
    }
    h->kind = libuv_kind;
    h->ctx = ctx;
    h->loop = loop;
    int err = aio_embed_attach(ctx, &h->kind);
    if (err) {
        free(h);
        return err;
    }
    uv_prepare_init(loop, &h->prepare);
    uv_check_init(loop, &h->check);
    uv_timer_init(loop, &h->timer);
    h->prepare.data = h->check.data = h->timer.data = h;
    h->open_handles = 3;
    aio_embed_set_stale_handler(ctx, stale);
    uv_prepare_start(&h->prepare, on_prepare);
    uv_check_start(&h->check, on_check);
    return 0;
}

void aio_context_detach_uv_loop(AioContext *ctx)
{
    const void *const *k = aio_embed_host(ctx);
    if (!k || *k != libuv_kind) {
        return;
    }
    AioUvHost *h = (AioUvHost *)(void *)((char *)k - offsetof(AioUvHost, kind));
    close_polls(h);
    uv_close((uv_handle_t *)&h->prepare, handle_closed);
    uv_close((uv_handle_t *)&h->check, handle_closed);
    uv_close((uv_handle_t *)&h->timer, handle_closed);
    h->ctx = NULL; /* a check already queued in this iteration does nothing */
    aio_embed_detach(ctx);
}
