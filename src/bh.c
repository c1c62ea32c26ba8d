/* SPDX-License-Identifier: MIT */
/*
 * Bottom halves.
 *
 * Scheduling is lock-free: one atomic fetch-or on the BH's flags decides
 * whether this call is the one that queues it, and the winner pushes it on
 * ctx->bh_pending (a Treiber stack) with a CAS. The dispatcher swaps the whole
 * stack out at once and reverses it, which restores scheduling order. A BH is
 * on the stack at most once (BH_QUEUED), so ->next has a single owner.
 */
#include <stdlib.h>

#include "aio-internal.h"

static void bh_all_link(AioContext *ctx, AioBH *bh)
{
    aio__mutex_lock(&ctx->bh_lock);
    bh->all_prev = NULL;
    bh->all_next = ctx->bh_all;
    if (ctx->bh_all) {
        ctx->bh_all->all_prev = bh;
    }
    ctx->bh_all = bh;
    aio__mutex_unlock(&ctx->bh_lock);
}

static void bh_all_unlink(AioContext *ctx, AioBH *bh)
{
    aio__mutex_lock(&ctx->bh_lock);
    if (bh->all_prev) {
        bh->all_prev->all_next = bh->all_next;
    } else {
        ctx->bh_all = bh->all_next;
    }
    if (bh->all_next) {
        bh->all_next->all_prev = bh->all_prev;
    }
    aio__mutex_unlock(&ctx->bh_lock);
}

static AioBH *bh_alloc(AioContext *ctx, AioHandler *cb, void *opaque, unsigned flags)
{
    AioBH *bh = calloc(1, sizeof(*bh));
    if (!bh) {
        return NULL;
    }
    bh->ctx = ctx;
    bh->cb = cb;
    bh->opaque = opaque;
    atomic_init(&bh->flags, flags);
    return bh;
}

/* Pushes bh and returns whether the stack was empty. Rule: whoever pushes
 * onto an empty stack calls aio_notify() afterwards. A push onto a non-empty
 * stack may then skip it: the CAS read the previous head, so no dispatcher
 * has taken the stack since that head was pushed, and the first one that
 * does (which that head's pusher's notification guarantees) takes ours with
 * it. */
static bool bh_push(AioContext *ctx, AioBH *bh)
{
    AioBH *head = atomic_load_explicit(&ctx->bh_pending, memory_order_relaxed);
    do {
        bh->next = head;
        /* release: the dispatcher that takes the stack (acquire) sees ->next
         * and everything the scheduler wrote before scheduling. */
    } while (!atomic_compare_exchange_weak_explicit(&ctx->bh_pending, &head, bh,
                                                    memory_order_release,
                                                    memory_order_relaxed));
    return head == NULL;
}

AioBH *aio_bh_new(AioContext *ctx, AioHandler *cb, void *opaque)
{
    if (!ctx || !cb) {
        return NULL;
    }
    AioBH *bh = bh_alloc(ctx, cb, opaque, 0);
    if (bh) {
        bh_all_link(ctx, bh);
    }
    return bh;
}

void aio_bh_schedule(AioBH *bh)
{
    if (!bh) {
        return;
    }
    AioContext *ctx = bh->ctx;
    unsigned old = atomic_fetch_or(&bh->flags, BH_QUEUED | BH_SCHEDULED);
    if (!(old & BH_QUEUED)) {
        /* Pushed behind other pending BHs: their notification covers it. */
        if (bh_push(ctx, bh)) {
            aio_notify(ctx);
        }
    } else if (!(old & BH_SCHEDULED)) {
        /* Queued but cancelled: the notification its queuing made may have
         * been consumed already, by a dispatch that saw it cancelled. */
        aio_notify(ctx);
    }
    /* Already scheduled: somebody already notified for it, and the run that
     * notification causes has not cleared BH_SCHEDULED yet. No system call,
     * no store to shared state beyond the flag word. */
}

void aio_bh_cancel(AioBH *bh)
{
    if (bh) {
        /* It stays queued; the dispatcher drops it when it sees the flag
         * clear. */
        atomic_fetch_and(&bh->flags, ~(unsigned)BH_SCHEDULED);
    }
}

void aio_bh_delete(AioBH *bh)
{
    if (!bh) {
        return;
    }
    AioContext *ctx = bh->ctx;
    /* Leave the teardown list first: from here on only the pending stack
     * refers to the BH, and the dispatcher (or teardown) frees it there. */
    bh_all_unlink(ctx, bh);
    atomic_fetch_and(&bh->flags, ~(unsigned)BH_SCHEDULED);
    /* This must be the last access unless we queue it ourselves: if the BH
     * was already queued, a dispatcher may free it the moment it sees
     * BH_DELETED. */
    unsigned old = atomic_fetch_or(&bh->flags, BH_QUEUED | BH_DELETED);
    if (!(old & BH_QUEUED) && bh_push(ctx, bh)) {
        /* bh_push's rule: a later schedule pushed behind this one skips its
         * notification. (ctx outlives bh; we no longer touch bh.) */
        aio_notify(ctx);
    }
}

int aio_bh_schedule_oneshot(AioContext *ctx, AioHandler *cb, void *opaque)
{
    if (!ctx || !cb) {
        return -EINVAL;
    }
    AioBH *bh = bh_alloc(ctx, cb, opaque, BH_QUEUED | BH_SCHEDULED | BH_ONESHOT);
    if (!bh) {
        return -ENOMEM;
    }
    if (bh_push(ctx, bh)) {
        aio_notify(ctx);
    }
    return 0;
}

bool aio__bh_pending(AioContext *ctx)
{
    return atomic_load(&ctx->bh_pending) != NULL;
}

static AioBH *bh_take_all_in_order(AioContext *ctx)
{
    /* acquire: pairs with bh_push's release. */
    AioBH *lifo = atomic_exchange_explicit(&ctx->bh_pending, NULL, memory_order_acquire);
    AioBH *fifo = NULL;
    while (lifo) {
        AioBH *next = lifo->next;
        lifo->next = fifo;
        fifo = lifo;
        lifo = next;
    }
    return fifo;
}

bool aio__bh_dispatch(AioContext *ctx)
{
    bool progress = false;
    AioBH *bh = bh_take_all_in_order(ctx);
    while (bh) {
        /* Read the link before giving up BH_QUEUED: once the flag is clear
         * another thread may queue the BH again and rewrite ->next. */
        AioBH *next = bh->next;
        unsigned old = atomic_fetch_and(&bh->flags, ~(unsigned)(BH_QUEUED | BH_SCHEDULED));
        if (old & BH_DELETED) {
            free(bh);
        } else if (old & BH_SCHEDULED) {
            /* The callback may delete or reschedule bh; neither touches
             * memory we read after it, except for oneshots, which nobody
             * else can name. */
            bh->cb(bh->opaque);
            progress = true;
            if (old & BH_ONESHOT) {
                free(bh);
            }
        } else if (old & BH_ONESHOT) {
            free(bh); /* unreachable today: oneshots cannot be cancelled */
        }
        bh = next;
    }
    return progress;
}

void aio__bh_teardown(AioContext *ctx)
{
    AioBH *bh = bh_take_all_in_order(ctx);
    while (bh) {
        AioBH *next = bh->next;
        unsigned flags = atomic_load(&bh->flags);
        /* Live BHs are freed below through bh_all; these are the ones only
         * the pending stack still names. */
        if (flags & (BH_DELETED | BH_ONESHOT)) {
            free(bh);
        }
        bh = next;
    }
    while (ctx->bh_all) {
        AioBH *b = ctx->bh_all;
        ctx->bh_all = b->all_next;
        free(b);
    }
}
