/* SPDX-License-Identifier: MIT */
/* Context lifetime, backend selection and home-thread ownership. */
#include <stdlib.h>
#include <string.h>

#include "aio-internal.h"

static const AioBackendOps *select_backend(void)
{
    const char *want = aio__backend_env();
    if (!want) {
        return aio__backends[0];
    }
    for (size_t i = 0; aio__backends[i]; i++) {
        if (strcmp(aio__backends[i]->name, want) == 0) {
            return aio__backends[i];
        }
    }
    /* An unknown name is an error rather than a fallback: a test run that
     * asked for pipe+poll must never quietly exercise eventfd+ppoll. */
    return NULL;
}

AioContext *aio_context_new(void)
{
    const AioBackendOps *ops = select_backend();
    if (!ops) {
        errno = EINVAL;
        return NULL;
    }
    AioContext *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        errno = ENOMEM;
        return NULL;
    }
    ctx->be = ops->create();
    if (!ctx->be) {
        int saved = errno;
        free(ctx);
        errno = saved ? saved : ENOMEM;
        return NULL;
    }
    ctx->ops = ops;
    atomic_init(&ctx->refcnt, 1);
    aio__mutex_init(&ctx->home_lock);
    atomic_init(&ctx->home, aio__thread_id());
    atomic_init(&ctx->notify_me, 0);
    atomic_init(&ctx->notified, false);
    atomic_init(&ctx->kick_pending, false);
    aio__mutex_init(&ctx->dispatch_lock);
    atomic_init(&ctx->dispatch_owner, 0);
    atomic_init(&ctx->bh_pending, NULL);
    aio__mutex_init(&ctx->bh_lock);
    aio__mutex_init(&ctx->list_lock);
    atomic_init(&ctx->external_disable_cnt, 0);
    atomic_init(&ctx->walkers, 0);
    atomic_init(&ctx->generation, 1); /* a zeroed AioPollSet never matches */
    atomic_init(&ctx->purge_needed, false);
    aio__mutex_init(&ctx->timer_lock);
    atomic_init(&ctx->earliest_ns, INT64_MAX);
    atomic_init(&ctx->poll_max_ns, 0);
    atomic_init(&ctx->poll_grow, 0);
    atomic_init(&ctx->poll_shrink, 0);
    atomic_init(&ctx->hook, NULL);
    ctx->fork_gen = aio__fork_generation();
    return ctx;
}

void aio_context_ref(AioContext *ctx)
{
    if (ctx) {
        atomic_fetch_add_explicit(&ctx->refcnt, 1, memory_order_relaxed);
    }
}

void aio_context_unref(AioContext *ctx)
{
    if (!ctx) {
        return;
    }
    /* acq_rel: every other holder's last use of the context happens before
     * the teardown below. */
    if (atomic_fetch_sub_explicit(&ctx->refcnt, 1, memory_order_acq_rel) != 1) {
        return;
    }
    if (aio__ctx_forked(ctx) && ctx->ops->forked) {
        /* Free this process's copies only: the parent's registrations live
         * in the same kernel objects. */
        ctx->ops->forked(ctx->be);
    }
    aio__bh_teardown(ctx);
    aio__timers_teardown(ctx);
    aio__sources_teardown(ctx);
    ctx->ops->destroy(ctx->be);
    aio__mutex_destroy(&ctx->timer_lock);
    aio__mutex_destroy(&ctx->list_lock);
    aio__mutex_destroy(&ctx->bh_lock);
    aio__mutex_destroy(&ctx->dispatch_lock);
    aio__mutex_destroy(&ctx->home_lock);
    free(ctx);
}

int aio_context_set_home_thread(AioContext *ctx)
{
    if (!ctx) {
        return -EINVAL;
    }
    uint64_t self = aio__thread_id();
    int ret = 0;
    aio__mutex_lock(&ctx->home_lock);
    /* A blocking poll in progress belongs to the old home thread; moving
     * ownership under it would let two threads block at once, and two
     * blocking pollers steal each other's wake-ups. */
    if (ctx->blocking_depth > 0 && atomic_load(&ctx->home) != self) {
        ret = -EBUSY;
    } else {
        atomic_store(&ctx->home, self);
    }
    aio__mutex_unlock(&ctx->home_lock);
    return ret;
}

bool aio_context_in_home_thread(const AioContext *ctx)
{
    return ctx && atomic_load(&((AioContext *)ctx)->home) == aio__thread_id();
}

const char *aio_context_backend(const AioContext *ctx)
{
    if (!ctx) {
        return "";
    }
    return ctx->ops->current_name ? ctx->ops->current_name(ctx->be) : ctx->ops->name;
}

int aio_context_set_poll_params(AioContext *ctx, int64_t max_ns, int64_t grow, int64_t shrink)
{
    if (!ctx || max_ns < 0 || grow < 0 || shrink < 0 || grow == 1) {
        return -EINVAL;
    }
    atomic_store(&ctx->poll_max_ns, max_ns);
    atomic_store(&ctx->poll_grow, grow);
    atomic_store(&ctx->poll_shrink, shrink);
    /* The window itself is clamped by the next blocking poll (it belongs to
     * the dispatch-right holder); a wake-up makes that happen promptly. */
    aio_notify(ctx);
    return 0;
}

void aio__set_test_hook(AioContext *ctx, AioTestHook *hook, void *opaque)
{
    if (!ctx) {
        return;
    }
    ctx->hook_opaque = opaque;
    /* release: a poller that sees the hook also sees its opaque. */
    atomic_store_explicit(&ctx->hook, hook, memory_order_release);
}

void aio__call_hook(AioContext *ctx, AioHookPoint point)
{
    AioTestHook *hook = atomic_load_explicit(&ctx->hook, memory_order_acquire);
    if (hook) {
        hook(ctx, point, ctx->hook_opaque);
    }
}
