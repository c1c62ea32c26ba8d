/* SPDX-License-Identifier: MIT */
/*
 * Timers: one binary min-heap per clock (ctx->timers[type]), each ordered by
 * (deadline, arming sequence), all under ctx->timer_lock. Deadlines on
 * different clocks cannot be compared, so each clock has its heap and the
 * poll takes the nearest of their timeouts. Each heap's earliest deadline
 * is mirrored in its earliest_ns so that a poll computes its timeout without
 * taking the lock.
 */
#include <stdlib.h>

#include "aio-internal.h"

#define NOT_ARMED SIZE_MAX

static bool timer_before(const AioTimer *a, const AioTimer *b)
{
    return a->expire_ns < b->expire_ns || (a->expire_ns == b->expire_ns && a->seq < b->seq);
}

static void heap_place(AioTimerHeap *h, size_t i, AioTimer *t)
{
    h->heap[i] = t;
    t->heap_index = i;
}

static void heap_sift_up(AioTimerHeap *h, size_t i)
{
    AioTimer *t = h->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(t, h->heap[parent])) {
            break;
        }
        heap_place(h, i, h->heap[parent]);
        i = parent;
    }
    heap_place(h, i, t);
}

static void heap_sift_down(AioTimerHeap *h, size_t i)
{
    AioTimer *t = h->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len) {
            break;
        }
        if (child + 1 < h->len && timer_before(h->heap[child + 1], h->heap[child])) {
            child++;
        }
        if (!timer_before(h->heap[child], t)) {
            break;
        }
        heap_place(h, i, h->heap[child]);
        i = child;
    }
    heap_place(h, i, t);
}

static void heap_remove(AioTimerHeap *h, AioTimer *t)
{
    size_t i = t->heap_index;
    AioTimer *last = h->heap[--h->len];
    t->heap_index = NOT_ARMED;
    if (i == h->len) {
        return;
    }
    heap_place(h, i, last);
    heap_sift_down(h, i);
    heap_sift_up(h, last->heap_index);
}

/* Under timer_lock. Both stores come before the unlock and so before the
 * aio_notify() of the arming that needs it (seq_cst, as the poll's loads of
 * them after its announcement): a poll that misses the bit is one that
 * aio_notify() will see announced. The deadline is stored first, so that a
 * reader that sees the bit also sees the deadline that set it. */
static void publish_earliest(AioContext *ctx, AioTimerHeap *h)
{
    atomic_store(&h->earliest_ns, h->len ? h->heap[0]->expire_ns : INT64_MAX);
    unsigned bit = 1u << (unsigned)(h - ctx->timers);
    unsigned armed = atomic_load_explicit(&ctx->timers_armed, memory_order_relaxed);
    unsigned want = h->len ? armed | bit : armed & ~bit;
    if (want != armed) {
        atomic_store(&ctx->timers_armed, want);
    }
}

static AioTimerHeap *timer_heap(AioTimer *t)
{
    return &t->ctx->timers[t->clock];
}

AioTimer *aio_timer_new(AioContext *ctx, AioHandler *cb, void *opaque)
{
    return aio_timer_new_on(ctx, AIO_CLOCK_REALTIME, cb, opaque);
}

AioTimer *aio_timer_new_on(AioContext *ctx, AioClockType type, AioHandler *cb, void *opaque)
{
    if (!ctx || !cb || (unsigned)type >= AIO_NCLOCKS) {
        return NULL;
    }
    AioTimer *t = aio__calloc(1, sizeof(*t));
    if (!t) {
        return NULL;
    }
    t->ctx = ctx;
    t->cb = cb;
    t->opaque = opaque;
    t->clock = type;
    t->heap_index = NOT_ARMED;
    if (type == AIO_CLOCK_VIRTUAL) {
        /* Before the timer can be armed: a change of the virtual clock
         * must find every context that may sleep on a virtual deadline. */
        aio__virtual_clock_register(ctx);
    }
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
    AioTimerHeap *h = timer_heap(t);
    aio__mutex_lock(&ctx->timer_lock);
    if (t->heap_index != NOT_ARMED) {
        heap_remove(h, t);
    }
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        AioTimer **heap = aio__realloc(h->heap, cap * sizeof(*heap));
        if (!heap) {
            /* Out of memory: the timer stays disarmed, the documented void
             * signature leaves no other way to report it. */
            publish_earliest(ctx, h);
            aio__mutex_unlock(&ctx->timer_lock);
            return;
        }
        h->heap = heap;
        h->cap = cap;
    }
    t->expire_ns = expire_ns;
    t->seq = ctx->timer_seq++;
    h->len++;
    heap_place(h, h->len - 1, t);
    heap_sift_up(h, t->heap_index);
    bool earliest = t->heap_index == 0;
    publish_earliest(ctx, h);
    aio__mutex_unlock(&ctx->timer_lock);
    /* A sleeping poll computed its timeout from the old earliest deadline
     * of this clock; only a new earliest one can make that sleep too long. */
    if (earliest) {
        aio_notify(ctx);
    }
}

static void disarm_locked(AioTimer *t)
{
    if (t->heap_index != NOT_ARMED) {
        AioTimerHeap *h = timer_heap(t);
        heap_remove(h, t);
        publish_earliest(t->ctx, h);
    }
}

void aio_timer_del(AioTimer *t)
{
    if (!t) {
        return;
    }
    AioContext *ctx = t->ctx;
    aio__mutex_lock(&ctx->timer_lock);
    disarm_locked(t);
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
    disarm_locked(t);
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

int64_t aio__timers_timeout_ns(AioContext *ctx)
{
    int64_t best = -1;
    /* The bit, not earliest_ns == INT64_MAX, says whether a clock has timers:
     * INT64_MAX is a deadline too, which the virtual clock can reach. */
    unsigned armed = atomic_load(&ctx->timers_armed);
    for (int c = 0; armed; c++, armed >>= 1) {
        if (!(armed & 1u)) {
            continue;
        }
        int64_t earliest = atomic_load(&ctx->timers[c].earliest_ns);
        bool stopped = false;
        int64_t now = c == AIO_CLOCK_VIRTUAL ? aio__virtual_clock_read(&stopped)
                                             : aio__timer_clock_now(ctx, (AioClockType)c);
        int64_t d;
        if (earliest <= now) {
            /* A deadline equal to now is due (0), like in dispatch below,
             * on a stopped virtual clock too. */
            d = 0;
        } else if (stopped) {
            /* Stopped, the virtual clock reaches no future deadline by the
             * passing of time; starting or setting it notifies this
             * context, after which this is computed again. */
            continue;
        } else {
            /* earliest > now; a clock that reads below 0 (a wall clock set
             * before 1970) must not overflow the difference. */
            d = now < 0 && earliest > INT64_MAX + now ? INT64_MAX : earliest - now;
        }
        /* The wall clock may jump while we sleep on a relative timeout:
         * wake up often enough to see where it went. */
        if (c == AIO_CLOCK_HOST && d > AIO_HOST_SLEEP_MAX_NS) {
            d = AIO_HOST_SLEEP_MAX_NS;
        }
        if (best < 0 || d < best) {
            best = d;
        }
    }
    return best;
}

bool aio__timers_dispatch(AioContext *ctx)
{
    bool progress = false;
    /* Fire only what was armed before this pass began: a callback that
     * re-arms its timer in the past runs at the next poll (which will not
     * sleep) instead of looping here forever. Read under the lock below. */
    uint64_t armed_before = 0;
    bool have_seq = false;
    unsigned armed = atomic_load_explicit(&ctx->timers_armed, memory_order_relaxed);
    for (int c = 0; armed; c++, armed >>= 1) {
        AioTimerHeap *h = &ctx->timers[c];
        if (!(armed & 1u)) {
            continue;
        }
        /* A stopped virtual clock still fires what is due at its standing
         * value: that is how aio_virtual_clock_set_ns() fires timers. */
        int64_t now = aio__timer_clock_now(ctx, (AioClockType)c);
        aio__mutex_lock(&ctx->timer_lock);
        if (!have_seq) {
            armed_before = ctx->timer_seq;
            have_seq = true;
        }
        while (h->len && h->heap[0]->expire_ns <= now && h->heap[0]->seq < armed_before) {
            AioTimer *t = h->heap[0];
            heap_remove(h, t);
            publish_earliest(ctx, h);
            AioHandler *cb = t->cb;
            void *opaque = t->opaque;
            /* Unlocked around the callback: it may re-arm or free t, or arm
             * other timers. */
            aio__mutex_unlock(&ctx->timer_lock);
            aio__stats_call(ctx, cb, opaque, &ctx->stats.timers_run);
            progress = true;
            aio__mutex_lock(&ctx->timer_lock);
        }
        aio__mutex_unlock(&ctx->timer_lock);
    }
    return progress;
}

void aio__timers_teardown(AioContext *ctx)
{
    aio__virtual_clock_unregister(ctx);
    while (ctx->timer_all) {
        AioTimer *t = ctx->timer_all;
        ctx->timer_all = t->all_next;
        free(t);
    }
    for (int c = 0; c < AIO_NCLOCKS; c++) {
        free(ctx->timers[c].heap);
        ctx->timers[c].heap = NULL;
        ctx->timers[c].len = ctx->timers[c].cap = 0;
    }
}
