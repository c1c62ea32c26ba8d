/* SPDX-License-Identifier: MIT */
/*
 * Timers: a binary min-heap ordered by (deadline, arming sequence), under
 * ctx->timer_lock. The earliest deadline is mirrored in ctx->earliest_ns so
 * that a poll computes its timeout without taking the lock.
 */
#include <stdlib.h>

#include "aio-internal.h"

#define NOT_ARMED SIZE_MAX

static bool timer_before(const AioTimer *a, const AioTimer *b)
{
    return a->expire_ns < b->expire_ns || (a->expire_ns == b->expire_ns && a->seq < b->seq);
}

static void heap_place(AioContext *ctx, size_t i, AioTimer *t)
{
    ctx->heap[i] = t;
    t->heap_index = i;
}

static void heap_sift_up(AioContext *ctx, size_t i)
{
    AioTimer *t = ctx->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(t, ctx->heap[parent])) {
            break;
        }
        heap_place(ctx, i, ctx->heap[parent]);
        i = parent;
    }
    heap_place(ctx, i, t);
}

static void heap_sift_down(AioContext *ctx, size_t i)
{
    AioTimer *t = ctx->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= ctx->heap_len) {
            break;
        }
        if (child + 1 < ctx->heap_len && timer_before(ctx->heap[child + 1], ctx->heap[child])) {
            child++;
        }
        if (!timer_before(ctx->heap[child], t)) {
            break;
        }
        heap_place(ctx, i, ctx->heap[child]);
        i = child;
    }
    heap_place(ctx, i, t);
}

static void heap_remove(AioContext *ctx, AioTimer *t)
{
    size_t i = t->heap_index;
    AioTimer *last = ctx->heap[--ctx->heap_len];
    t->heap_index = NOT_ARMED;
    if (i == ctx->heap_len) {
        return;
    }
    heap_place(ctx, i, last);
    heap_sift_down(ctx, i);
    heap_sift_up(ctx, last->heap_index);
}

static void publish_earliest(AioContext *ctx)
{
    atomic_store(&ctx->earliest_ns, ctx->heap_len ? ctx->heap[0]->expire_ns : INT64_MAX);
}

AioTimer *aio_timer_new(AioContext *ctx, AioHandler *cb, void *opaque)
{
    if (!ctx || !cb) {
        return NULL;
    }
    AioTimer *t = aio__calloc(1, sizeof(*t));
    if (!t) {
        return NULL;
    }
    t->ctx = ctx;
    t->cb = cb;
    t->opaque = opaque;
    t->heap_index = NOT_ARMED;
    aio__mutex_lock(&ctx->timer_lock);
    t->all_next = ctx->timer_all;
    if (ctx->timer_all) {
        ctx->timer_all->all_prev = t;
    }
    ctx->timer_all = t;
    aio__mutex_unlock(&ctx->timer_lock);
    return t;
}

void aio_timer_mod(AioTimer *t, int64_t expire_ns)
{
    if (!t) {
        return;
    }
    AioContext *ctx = t->ctx;
    aio__mutex_lock(&ctx->timer_lock);
    if (t->heap_index != NOT_ARMED) {
        heap_remove(ctx, t);
    }
    if (ctx->heap_len == ctx->heap_cap) {
        size_t cap = ctx->heap_cap ? ctx->heap_cap * 2 : 16;
        AioTimer **heap = aio__realloc(ctx->heap, cap * sizeof(*heap));
        if (!heap) {
            /* Out of memory: the timer stays disarmed, the documented void
             * signature leaves no other way to report it. */
            publish_earliest(ctx);
            aio__mutex_unlock(&ctx->timer_lock);
            return;
        }
        ctx->heap = heap;
        ctx->heap_cap = cap;
    }
    t->expire_ns = expire_ns;
    t->seq = ctx->timer_seq++;
    ctx->heap_len++;
    heap_place(ctx, ctx->heap_len - 1, t);
    heap_sift_up(ctx, t->heap_index);
    bool earliest = t->heap_index == 0;
    publish_earliest(ctx);
    aio__mutex_unlock(&ctx->timer_lock);
    /* A sleeping poll computed its timeout from the old earliest deadline;
     * only a new earliest one can make that sleep too long. */
    if (earliest) {
        aio_notify(ctx);
    }
}

static void disarm_locked(AioContext *ctx, AioTimer *t)
{
    if (t->heap_index != NOT_ARMED) {
        heap_remove(ctx, t);
        publish_earliest(ctx);
    }
}

void aio_timer_del(AioTimer *t)
{
    if (!t) {
        return;
    }
    AioContext *ctx = t->ctx;
    aio__mutex_lock(&ctx->timer_lock);
    disarm_locked(ctx, t);
    aio__mutex_unlock(&ctx->timer_lock);
}

bool aio_timer_pending(const AioTimer *t)
{
    if (!t) {
        return false;
    }
    AioContext *ctx = t->ctx;
    aio__mutex_lock(&ctx->timer_lock);
    bool armed = t->heap_index != NOT_ARMED;
    aio__mutex_unlock(&ctx->timer_lock);
    return armed;
}

void aio_timer_free(AioTimer *t)
{
    if (!t) {
        return;
    }
    AioContext *ctx = t->ctx;
    aio__mutex_lock(&ctx->timer_lock);
    disarm_locked(ctx, t);
    if (t->all_prev) {
        t->all_prev->all_next = t->all_next;
    } else {
        ctx->timer_all = t->all_next;
    }
    if (t->all_next) {
        t->all_next->all_prev = t->all_prev;
    }
    aio__mutex_unlock(&ctx->timer_lock);
    free(t);
}

int64_t aio_clock_ns(void)
{
    return aio__clock_ns();
}

int64_t aio__timers_timeout_ns(AioContext *ctx)
{
    int64_t earliest = atomic_load(&ctx->earliest_ns);
    if (earliest == INT64_MAX) {
        return -1;
    }
    int64_t now = aio__timers_now(ctx);
    /* A deadline equal to now is due (0), like in dispatch below. */
    return earliest > now ? earliest - now : 0;
}

bool aio__timers_dispatch(AioContext *ctx)
{
    if (atomic_load_explicit(&ctx->earliest_ns, memory_order_relaxed) == INT64_MAX) {
        return false;
    }
    bool progress = false;
    int64_t now = aio__timers_now(ctx);
    aio__mutex_lock(&ctx->timer_lock);
    /* Fire only what was armed before this pass began: a callback that
     * re-arms its timer in the past runs at the next poll (which will not
     * sleep) instead of looping here forever. */
    uint64_t armed_before = ctx->timer_seq;
    while (ctx->heap_len && ctx->heap[0]->expire_ns <= now && ctx->heap[0]->seq < armed_before) {
        AioTimer *t = ctx->heap[0];
        heap_remove(ctx, t);
        publish_earliest(ctx);
        AioHandler *cb = t->cb;
        void *opaque = t->opaque;
        /* Unlocked around the callback: it may re-arm or free t, or arm
         * other timers. */
        aio__mutex_unlock(&ctx->timer_lock);
        cb(opaque);
        progress = true;
        aio__mutex_lock(&ctx->timer_lock);
    }
    aio__mutex_unlock(&ctx->timer_lock);
    return progress;
}

void aio__timers_teardown(AioContext *ctx)
{
    while (ctx->timer_all) {
        AioTimer *t = ctx->timer_all;
        ctx->timer_all = t->all_next;
        free(t);
    }
    free(ctx->heap);
    ctx->heap = NULL;
    ctx->heap_len = ctx->heap_cap = 0;
}
