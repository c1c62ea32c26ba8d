/* SPDX-License-Identifier: MIT */
/*
 * The dispatch right's slow path: the home thread waits for a non-blocking
 * poll of another thread to let go (src/dispatch.h).
 */
#include "aio-internal.h"

void aio__dispatch_wait(AioContext *ctx, uint64_t self)
{
    for (;;) {
        uint64_t w = atomic_load_explicit(&ctx->dispatch_owner, memory_order_relaxed);
        if (w == 0) {
            /* acquire: pairs with the release of the holder's let-go, so
             * that we see what its callbacks wrote. */
            if (atomic_compare_exchange_weak_explicit(&ctx->dispatch_owner, &w, self,
                                                      memory_order_acquire,
                                                      memory_order_relaxed)) {
                return;
            }
            continue;
        }
        aio__call_hook(ctx, AIO_HOOK_DISPATCH_BEFORE_MARK);
        /* The mark goes on the word the holder will exchange, in one CAS
         * against the holder we saw: a holder that let go since (the word
         * is 0, or another thread's) fails it and we look again. A plain
         * store here could revive a holder that is gone, and nobody would
         * ever wake us (the model's BUG_DISPATCH_MARK_STORE). */
        if (!(w & AIO_DISPATCH_WAITER) &&
            !atomic_compare_exchange_strong_explicit(&ctx->dispatch_owner, &w,
                                                     w | AIO_DISPATCH_WAITER,
                                                     memory_order_relaxed,
                                                     memory_order_relaxed)) {
            continue;
        }
        aio__call_hook(ctx, AIO_HOOK_DISPATCH_WAIT);
        /* The holder's exchange saw our mark, so its wake comes: it sets the
         * hand-off under the lock, before or after we get here. */
        aio__mutex_lock(&ctx->dispatch_lock);
        while (!ctx->dispatch_handoff) {
            aio__cond_wait(&ctx->dispatch_cond, &ctx->dispatch_lock);
        }
        ctx->dispatch_handoff = false;
        aio__mutex_unlock(&ctx->dispatch_lock);
    }
}

void aio__dispatch_wake(AioContext *ctx)
{
    aio__mutex_lock(&ctx->dispatch_lock);
    ctx->dispatch_handoff = true;
    aio__cond_signal(&ctx->dispatch_cond);
    aio__mutex_unlock(&ctx->dispatch_lock);
}
