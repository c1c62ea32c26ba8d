/* SPDX-License-Identifier: MIT */
/*
 * Bottom halves.
 *
 * Scheduling is lock-free: one atomic fetch-or on the BH's flags decides
 * whether this call is the one that queues it, and the winner pushes it on
 * ctx->bh_pending (a Treiber stack) with a CAS. A BH is queued at most once
 * (BH_QUEUED), so ->next has a single owner.
 *
 * A dispatch swaps the whole stack out, reverses it (scheduling order) and
 * appends it to ctx->bh_taken, a FIFO that belongs to the context, not to the
 * dispatch: it is owned by the dispatch-right holder, and every poll of the
 * context sees it. A callback that polls again (on the same thread, the only
 * one that can hold the right meanwhile) therefore continues the outer
 * dispatch where it stopped, and sleep_timeout() sees those BHs through
 * aio__bh_pending(): no nested poll sleeps on, or overtakes, a BH that an
 * outer dispatch took but has not run (QEMU solves the same problem with a
 * list of "slices"; here the slices are concatenated into one queue). Every
 * dispatch runs until bh_taken is empty, so the queue is empty whenever no
 * dispatch is in progress, and a dispatch only ever appends the stack it took
 * itself: BHs scheduled from inside a callback wait on the stack for the next
 * aio_poll call.
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
    AioBH *bh = aio__calloc(1, sizeof(*bh));
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
 * onto an empty stack calls wake_sleeper() afterwards. A push onto a
 * non-empty stack may then skip it: the CAS read the previous head, so no
 * dispatcher has taken the stack since that head was pushed, and the first
 * one that does (which that head's pusher's wake-up guarantees) takes ours
 * with it. */
static bool bh_push(AioContext *ctx, AioBH *bh)
{
    AioBH *head = atomic_load_explicit(&ctx->bh_pending, memory_order_relaxed);
    do {
        bh->next = head;
        /* seq_cst: a release, so that the dispatcher that takes the stack
         * (acquire) sees ->next and everything the scheduler wrote before
         * scheduling, and the store half of wake_sleeper()'s Dekker pair. */
    } while (!atomic_compare_exchange_weak_explicit(&ctx->bh_pending, &head, bh,
                                                    memory_order_seq_cst,
                                                    memory_order_relaxed));
    return head == NULL;
}

/* A queued BH needs no `notified`: the pending stack is itself what a
 * blocking poll reads before it sleeps (N2 looks at bh_pending after N1
 * raised notify_me), and an embedded context's prepare and check do the
 * same. So only a poll that may already be past its N2 needs waking: the
 * push (or the fetch-or of a cancelled BH still queued), a seq_cst
 * read-modify-write, then this seq_cst load of notify_me, against N1's
 * seq_cst increment, then N2's seq_cst load of bh_pending. Dekker's pattern
 * again: either we see the announcement and notify, or the poll sees the BH
 * and does not sleep. A loop that is awake (dispatching, running the
 * scheduling callback itself, busy-polling) thus costs a schedule no store
 * to the context's notification line (docs/wakeup-protocol.md, "Waking for
 * a bottom half"; the model's BUG_BH_WAKE_LOAD_FIRST is this load done
 * before the push). */
static void wake_sleeper(AioContext *ctx)
{
    if (atomic_load(&ctx->notify_me) > 0) {
        aio_notify(ctx);
    }
}

/* Queues bh and wakes a sleeper for it. Pushed behind other pending BHs,
 * it needs no wake-up of its own: theirs covers it. */
static void push_and_wake(AioContext *ctx, AioBH *bh)
{
    bool first = bh_push(ctx, bh);
    aio__call_hook(ctx, AIO_HOOK_BH_AFTER_PUSH);
    if (first) {
        wake_sleeper(ctx);
    }
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
    /* Always the fetch-or, also for a BH that is already scheduled: its
     * release is what makes the caller's writes visible to the run that
     * the claim starts. A plain-load check that skips it needs a full fence
     * against the claim (Dekker's pattern), and load + fence measured
     * slower than the fetch-or (docs/wakeup-protocol.md, "Scheduling a
     * scheduled BH"). */
    unsigned old = atomic_fetch_or(&bh->flags, BH_RUNNABLE);
    if (!(old & BH_QUEUED)) {
        push_and_wake(ctx, bh);
    } else if (!(old & BH_SCHEDULED)) {
        /* Queued but cancelled: the wake-up its queuing made may have been
         * consumed already, by a poll that then found it cancelled. It is
         * still queued, so a poll that has not slept yet sees it pending. */
        wake_sleeper(ctx);
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
    /* Leave the teardown list first: from here on only the queue (the
     * pending stack or bh_taken) refers to the BH, and the dispatcher (or
     * teardown) frees it there. */
    bh_all_unlink(ctx, bh);
    /* Before the claim of a dispatcher about to run it, this stops the run
     * (the guarantee on the dispatching thread, where it always comes before
     * the claim); after the claim the run has begun and may still be in
     * progress on the dispatching thread when we return. */
    atomic_fetch_and(&bh->flags, ~(unsigned)BH_SCHEDULED);
    /* This must be the last access unless we queue it ourselves: if the BH
     * was already queued, a dispatcher may free it the moment it sees
     * BH_DELETED. */
    unsigned old = atomic_fetch_or(&bh->flags, BH_QUEUED | BH_DELETED);
    if (!(old & BH_QUEUED) && bh_push(ctx, bh)) {
        /* bh_push's rule: a later schedule pushed behind this one skips its
         * wake-up. (ctx outlives bh; we no longer touch bh.) */
        wake_sleeper(ctx);
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
    push_and_wake(ctx, bh);
    return 0;
}

bool aio__bh_pending(AioContext *ctx)
{
    /* bh_taken is relaxed: it is only non-empty during a dispatch, and a
     * dispatching thread reads its own stores. Any other reader (a blocking
     * poll that has given up the right for its sleep) can at most see
     * another thread's dispatch in progress and skip one sleep for it. */
    return atomic_load(&ctx->bh_pending) != NULL ||
           atomic_load_explicit(&ctx->bh_taken, memory_order_relaxed) != NULL;
}

/* Moves the pending stack, in scheduling order, behind the BHs that outer
 * dispatches took and have not run yet. Dispatch-right holder only. */
static void bh_take_pending(AioContext *ctx)
{
    /* A plain load first: most polls find no BH (a descriptor or a kick
     * woke them), and reading NULL here is what an exchange a moment
     * earlier would have read; a push that this misses is still on the
     * stack for the next poll, whose N2 (bh_pending, seq_cst) sees it. */
    if (!atomic_load_explicit(&ctx->bh_pending, memory_order_relaxed)) {
        return;
    }
    /* acquire: pairs with bh_push's release. */
    AioBH *lifo = atomic_exchange_explicit(&ctx->bh_pending, NULL, memory_order_acquire);
    if (!lifo) {
        return;
    }
    AioBH *last = lifo, *fifo = NULL;
    while (lifo) {
        AioBH *next = lifo->next;
        lifo->next = fifo;
        fifo = lifo;
        lifo = next;
    }
    if (ctx->bh_taken_tail) {
        ctx->bh_taken_tail->next = fifo;
    } else {
        atomic_store_explicit(&ctx->bh_taken, fifo, memory_order_relaxed);
    }
    ctx->bh_taken_tail = last;
}

/* Dispatch-right holder only. The link is read before the caller gives up
 * BH_QUEUED: once the flag is clear another thread may queue the BH again
 * and rewrite ->next. */
static AioBH *bh_taken_pop(AioContext *ctx)
{
    AioBH *bh = atomic_load_explicit(&ctx->bh_taken, memory_order_relaxed);
    if (bh) {
        atomic_store_explicit(&ctx->bh_taken, bh->next, memory_order_relaxed);
        if (!bh->next) {
            ctx->bh_taken_tail = NULL;
        }
    }
    return bh;
}

bool aio__bh_dispatch(AioContext *ctx)
{
    bool progress = false;
    bh_take_pending(ctx);
    /* No BH pointer is kept across a callback: a nested poll inside it may
     * run and free any BH still in the queue, so the next one is always
     * popped from ctx afterwards. */
    AioBH *bh;
    while ((bh = bh_taken_pop(ctx))) {
        /* The claim. A cancel or delete whose store precedes it in the flag
         * word's order stops the run; one that follows it finds BH_QUEUED
         * clear and leaves the run alone (it "already began"). */
        aio__call_hook(ctx, AIO_HOOK_BH_BEFORE_CLAIM);
        unsigned old = atomic_fetch_and(&bh->flags, ~(unsigned)BH_RUNNABLE);
        if (old & BH_DELETED) {
            free(bh);
        } else if (old & BH_SCHEDULED) {
            /* After the claim the BH can only be freed by a later dispatch:
             * a deletion from here on pushes it again (its fetch-or sees
             * BH_QUEUED clear), and only this thread dispatches until we
             * return. So reading cb and opaque is safe, and nothing of bh is
             * read after the callback except for oneshots, which nobody else
             * can name. */
            aio__stats_call(ctx, bh->cb, bh->opaque, &ctx->stats.bhs_run);
            progress = true;
            if (old & BH_ONESHOT) {
                free(bh);
            }
        } else if (old & BH_ONESHOT) {
            free(bh); /* unreachable today: oneshots cannot be cancelled */
        }
    }
    return progress;
}

void aio__bh_teardown(AioContext *ctx)
{
    /* No dispatch is in progress (the last unref does not race with any
     * use), so bh_taken is empty and this moves every queued BH into it. */
    bh_take_pending(ctx);
    AioBH *bh;
    while ((bh = bh_taken_pop(ctx))) {
        /* Live BHs are freed below through bh_all; these are the ones only
         * the queue still names. */
        if (atomic_load(&bh->flags) & (BH_DELETED | BH_ONESHOT)) {
            free(bh);
        }
    }
    while (ctx->bh_all) {
        AioBH *b = ctx->bh_all;
        ctx->bh_all = b->all_next;
        free(b);
    }
}
