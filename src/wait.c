/* SPDX-License-Identifier: MIT */
/*
 * aio_wait_while() / aio_wait_kick(): waiting, in one context, for a
 * condition that another thread or context makes false (QEMU's
 * AIO_WAIT_WHILE and aio_wait_kick()).
 *
 * A waiter registers itself (its context) on a process-wide list and raises
 * a process-wide count, then checks the condition before every blocking
 * poll. A kicker has made the condition false, then loads the count; only
 * when somebody waits does it take the list lock and aio_notify() every
 * waiting context. The pair is Dekker's again (docs/wakeup-protocol.md,
 * "Waiting for another context"), with a seq_cst fence on each side because
 * the condition is the caller's memory, not an atomic of ours:
 *
 *   waiter: count++ ; fence ; read cond ; [sleep]
 *   kicker: write cond ; fence ; read count ; notify each listed context
 *
 * Either the kicker sees the count (then the waiter is on the list, or is
 * still going to check the condition under a lock the kicker released after
 * its write) and notifies, or the waiter's read sees the write. A kick that
 * lands between the waiter's check and its sleep is not lost: aio_notify()
 * leaves a notification pending, and the blocking poll does not sleep on
 * it. No generation counter is needed on top: the context's notify_seq,
 * ahead of what its home thread accepted, is already the "something
 * happened since you looked" state, per context.
 */
#include "aio-internal.h"

typedef struct Waiter {
    AioContext *ctx;
    struct Waiter *prev, *next;
} Waiter;

static aio_mutex_t waiters_lock = AIO_MUTEX_INITIALIZER;
static Waiter *waiters;       /* waiters_lock */
static atomic_uint nwaiters;  /* read without the lock by aio_wait_kick */

static void waiter_link(Waiter *w)
{
    aio__mutex_lock(&waiters_lock);
    w->prev = NULL;
    w->next = waiters;
    if (waiters) {
        waiters->prev = w;
    }
    waiters = w;
    atomic_fetch_add(&nwaiters, 1);
    aio__mutex_unlock(&waiters_lock);
    /* The waiter's half of the pair: the count is visible before the
     * condition is read. */
    atomic_thread_fence(memory_order_seq_cst);
}

static void waiter_unlink(Waiter *w)
{
    aio__mutex_lock(&waiters_lock);
    if (w->prev) {
        w->prev->next = w->next;
    } else {
        waiters = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    }
    atomic_fetch_sub(&nwaiters, 1);
    aio__mutex_unlock(&waiters_lock);
}

/* src/fork.c. */
void aio__wait_fork_lock(void)
{
    aio__mutex_lock(&waiters_lock);
}

void aio__wait_fork_unlock(void)
{
    aio__mutex_unlock(&waiters_lock);
}

int aio_wait_while(AioContext *ctx, bool (*cond)(void *opaque), void *opaque)
{
    if (!ctx || !cond) {
        return -EINVAL;
    }
    if (!aio_context_in_home_thread(ctx)) {
        return -EPERM;
    }
    if (!cond(opaque)) {
        return 0;
    }
    /* A callback of ours may drop the last reference; the list must not
     * name a freed context, so the context lives until we are off it. */
    aio_context_ref(ctx);
    Waiter w = {.ctx = ctx};
    waiter_link(&w);
    int ret = 0;
    while (cond(opaque)) {
        int r = aio_poll(ctx, true);
        if (r < 0) {
            ret = r;
            break;
        }
    }
    waiter_unlink(&w);
    aio_context_unref(ctx);
    return ret;
}

void aio_wait_kick(void)
{
    /* The kicker's half of the pair: the caller's change of the condition
     * is visible before we read the count. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&nwaiters, memory_order_relaxed) == 0) {
        return;
    }
    aio__mutex_lock(&waiters_lock);
    /* Nested waits of one context appear once per wait: notifying twice
     * is harmless (the second only counts one more notification). */
    for (Waiter *w = waiters; w; w = w->next) {
        aio__call_hook(w->ctx, AIO_HOOK_WAIT_KICK);
        aio_notify(w->ctx);
    }
    aio__mutex_unlock(&waiters_lock);
}
