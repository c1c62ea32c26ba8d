/* SPDX-License-Identifier: MIT */
/*
 * A host loop on poll(), written from docs/embedding.md alone, for
 * tests/test_embed.c; and the small records its tests share. Test thread
 * only (it asserts).
 */
#ifndef AIOPOLL_TEST_EMBED_HOST_H
#define AIOPOLL_TEST_EMBED_HOST_H

#include "test-common.h"

#include <poll.h>

/* A host sleep never lasts longer than this; one that runs into it although
 * the context asked for longer is a lost wake-up. */
#define HOST_BOUND_MS TC_BOUND_MS
#define HOST_MAX_FDS 64

typedef struct host_iter {
    int64_t timeout_ns; /* what prepare said */
    bool lost;          /* the sleep ran into HOST_BOUND_MS */
    int check;
    int dispatch;
} host_iter;

typedef struct remote_bh {
    AioContext *ctx;
    atomic_int *counter;
} remote_bh;

typedef struct fd_reader {
    aio_fd_t fd;
    atomic_int reads; /* a byte was there */
    atomic_int empty; /* called with nothing to read */
} fd_reader;

typedef struct notifier_reader {
    AioEventNotifier *n;
    atomic_int count;
} notifier_reader;

/* The host's sleep, then check and (if it says so) dispatch; prepare done. */
static inline host_iter host_sleep_check_dispatch(AioContext *ctx, int64_t ns, int bound_ms)
{
    host_iter it = {.timeout_ns = ns};
    AioEmbedFd fds[HOST_MAX_FDS];
    int n = aio_embed_query(ctx, fds, HOST_MAX_FDS);
    cr_assert(n >= 1 && n <= HOST_MAX_FDS, "aio_embed_query: %d", n);
    struct pollfd pfd[HOST_MAX_FDS];
    for (int i = 0; i < n; i++) {
        pfd[i].fd = fds[i].handle;
        pfd[i].events = (short)((fds[i].events & AIO_EMBED_READ ? POLLIN : 0) |
                                (fds[i].events & AIO_EMBED_WRITE ? POLLOUT : 0));
        pfd[i].revents = 0;
    }
    /* Round up: a timer seen early only makes the host sleep again, but
     * that is the adapter's rule to follow. */
    int64_t ms = ns < 0 ? -1 : ns / 1000000 + (ns % 1000000 != 0);
    bool capped = ms < 0 || ms > bound_ms;
    int r = poll(pfd, (nfds_t)n, capped ? bound_ms : (int)ms);
    cr_assert(r >= 0, "poll: %d", r);
    it.lost = r == 0 && capped;
    it.check = aio_embed_check(ctx);
    cr_assert_geq(it.check, 0, "aio_embed_check: %d", it.check);
    if (it.check > 0) {
        it.dispatch = aio_embed_dispatch(ctx);
        cr_assert_geq(it.dispatch, 0, "aio_embed_dispatch: %d", it.dispatch);
    }
    return it;
}

/* One host iteration: prepare, query, sleep, check, dispatch. */
static inline host_iter host_iterate(AioContext *ctx, int bound_ms)
{
    int64_t ns = -2;
    int r = aio_embed_prepare(ctx, &ns);
    cr_assert_geq(r, 0, "aio_embed_prepare: %d", r);
    cr_assert_eq(r == 1, ns == 0);
    return host_sleep_check_dispatch(ctx, ns, bound_ms);
}

/* Iterates until *v >= want; false if a host sleep lost its wake-up. */
static inline bool host_run_until(AioContext *ctx, atomic_int *v, int want)
{
    while (atomic_load(v) < want) {
        if (host_iterate(ctx, HOST_BOUND_MS).lost) {
            return false;
        }
    }
    return true;
}

/* Iterates while prepare says there is work (at most 100 times). */
static inline bool host_run_idle(AioContext *ctx)
{
    for (int i = 0; i < 100; i++) {
        int64_t ns;
        if (aio_embed_prepare(ctx, &ns) == 0) {
            return aio_embed_check(ctx) >= 0;
        }
        host_sleep_check_dispatch(ctx, 0, HOST_BOUND_MS);
    }
    return false;
}

#endif
