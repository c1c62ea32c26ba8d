/* SPDX-License-Identifier: MIT */
/*
 * Header-only helper of the adapters (integrations/): the descriptor set a
 * host loop must watch for an embedded context, kept in step with
 * aio_embed_query(). Public API only, so that it doubles as the example for
 * adapter writers (docs/embedding.md).
 *
 * After every aio_embed_prepare() call aio_host_fds_update(): when it returns
 * 1 the set changed, and the adapter unregisters every entry of ->old (they
 * stay open until the next query, see aio.h) and registers every entry of
 * ->cur before the host waits. In aggregated mode the set is one descriptor
 * that never changes, so this is one comparison per iteration.
 */
#ifndef AIOPOLL_INTEGRATIONS_HOST_FDS_H
#define AIOPOLL_INTEGRATIONS_HOST_FDS_H

#include <aiopoll/aio.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct AioHostFds {
    AioEmbedFd *cur; /* what the host watches now */
    size_t ncur;
    AioEmbedFd *old; /* after an update that returned 1: what it watched */
    size_t nold;
    size_t cap_cur, cap_old;
} AioHostFds;

/* 1: changed (unregister old[], register cur[]), 0: unchanged, or a
 * negative errno from aio_embed_query() or -ENOMEM. */
static inline int aio_host_fds_update(AioContext *ctx, AioHostFds *s)
{
    for (;;) {
        /* Query into the spare buffer; cur stays what the host has. */
        int n = aio_embed_query(ctx, s->old, s->cap_old);
        if (n < 0) {
            return n;
        }
        if ((size_t)n <= s->cap_old) {
            size_t same = 0;
            while (same < s->ncur && same < (size_t)n && s->old[same].handle == s->cur[same].handle &&
                   s->old[same].events == s->cur[same].events) {
                same++;
            }
            if ((size_t)n == s->ncur && same == s->ncur) {
                s->nold = 0;
                return 0;
            }
            AioEmbedFd *t = s->cur;
            size_t tc = s->cap_cur;
            s->nold = s->ncur;
            s->cur = s->old;
            s->ncur = (size_t)n;
            s->cap_cur = s->cap_old;
            s->old = t;
            s->cap_old = tc;
            return 1;
        }
        AioEmbedFd *b = (AioEmbedFd *)realloc(s->old, (size_t)n * sizeof(*b));
        if (!b) {
            return -ENOMEM;
        }
        s->old = b;
        s->cap_old = (size_t)n;
    }
}

static inline void aio_host_fds_fini(AioHostFds *s)
{
    free(s->cur);
    free(s->old);
    memset(s, 0, sizeof(*s));
}

/* The embedding API refuses a host loop run off the context's home thread
 * (-EPERM from prepare and check). Left alone, the host then either sleeps
 * for ever with nothing dispatched or, once a kick has made the aggregate
 * readable, calls the adapter back on it without end (nobody may clear it):
 * a spin. An adapter seeing -EPERM unregisters its descriptors and says so,
 * once, on stderr (hosts without a logging call of their own). */
static inline void aio_host_report_off_home(const char *adapter, const AioContext *ctx,
                                            int *reported)
{
    if (!*reported) {
        *reported = 1;
        fprintf(stderr,
                "aiopoll-%s: host loop run off the home thread of AioContext %p: "
                "the context is not dispatched from it\n",
                adapter, (const void *)ctx);
    }
}

/* Nanoseconds to whole milliseconds, rounded up (a timer must never be seen
 * early), clamped to max; -1 stays -1. */
static inline long long aio_host_timeout_ms(int64_t ns, long long max)
{
    if (ns < 0) {
        return -1;
    }
    long long ms = (long long)(ns / 1000000 + (ns % 1000000 != 0));
    return ms > max ? max : ms;
}

#endif
