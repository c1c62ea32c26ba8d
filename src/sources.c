/* SPDX-License-Identifier: MIT */
/*
 * fd handlers and event-notifier registrations ("sources").
 *
 * The list is changed under ctx->list_lock from any thread. Pollers do not
 * hold the lock while they sleep or dispatch; instead each takes a snapshot
 * and counts itself as a walker. A removed source is marked deleted at once
 * (so no dispatcher calls it again) but is freed only when no walker is left,
 * because a sleeping poller's snapshot, or an epoll event, may still name it.
 * Replacing a handler is removal plus insertion of a new source, so the
 * callback fields of a source never change and dispatch reads them unlocked.
 */
#include <stdlib.h>

#include "aio-internal.h"

static bool external_disabled(AioContext *ctx)
{
    return atomic_load_explicit(&ctx->external_disable_cnt, memory_order_acquire) > 0;
}

bool aio__source_dispatchable(AioContext *ctx, AioSource *src)
{
    return !atomic_load_explicit(&src->deleted, memory_order_acquire) &&
           !(src->is_external && external_disabled(ctx));
}

static AioSource *find_live_locked(AioContext *ctx, aio_fd_t fd, AioEventNotifier *n)
{
    for (AioSource *src = ctx->sources; src; src = src->next) {
        if (atomic_load_explicit(&src->deleted, memory_order_relaxed)) {
            continue;
        }
        if (n ? src->notifier == n : (!src->notifier && src->fd == fd)) {
            return src;
        }
    }
    return NULL;
}

static void unlink_and_free_locked(AioContext *ctx, AioSource *src)
{
    if (src->prev) {
        src->prev->next = src->next;
    } else {
        ctx->sources = src->next;
    }
    if (src->next) {
        src->next->prev = src->prev;
    }
    free(src);
}

static void unwatch_locked(AioContext *ctx, AioSource *src)
{
    if (src->watched && ctx->ops->unwatch) {
        ctx->ops->unwatch(ctx->be, src);
    }
    src->watched = false;
}

static int watch_locked(AioContext *ctx, AioSource *src)
{
    int ret = ctx->ops->watch ? ctx->ops->watch(ctx->be, src) : 0;
    src->watched = ret == 0;
    return ret;
}

static void remove_locked(AioContext *ctx, AioSource *src)
{
    atomic_store_explicit(&src->deleted, true, memory_order_release);
    unwatch_locked(ctx, src);
    ctx->generation++;
    if (ctx->walkers == 0) {
        unlink_and_free_locked(ctx, src);
    } else {
        ctx->purge_needed = true;
    }
}

static int source_set(AioContext *ctx, aio_fd_t fd, AioEventNotifier *n, bool is_external,
                      AioHandler *io_read, AioHandler *io_write, AioPollHandler *io_poll,
                      void *opaque)
{
    bool removing = !io_read && !io_write && !io_poll;
    AioSource *src = NULL;
    /* A value that can never be a descriptor is refused either way; a
     * closed one only when registering, so that removal after close()
     * works. */
    int err = n ? 0 : aio__check_fd(fd);
    if (err == -EINVAL || (err < 0 && !removing)) {
        return err;
    }
    if (!removing) {
        src = calloc(1, sizeof(*src));
        if (!src) {
            return -ENOMEM;
        }
        src->fd = fd;
        src->notifier = n;
        if (n) {
            src->handle = aio_event_notifier_get_handle(n);
        }
        src->is_external = is_external;
        src->io_read = io_read;
        src->io_write = io_write;
        src->io_poll = io_poll;
        src->opaque = opaque;
        atomic_init(&src->deleted, false);
    }

    int ret = 0;
    aio__mutex_lock(&ctx->list_lock);
    AioSource *old = find_live_locked(ctx, fd, n);
    if (old) {
        remove_locked(ctx, old);
    }
    if (src) {
        if (!(is_external && external_disabled(ctx))) {
            ret = watch_locked(ctx, src);
        }
        if (ret < 0) {
            free(src);
        } else {
            src->next = ctx->sources;
            if (ctx->sources) {
                ctx->sources->prev = src;
            }
            ctx->sources = src;
            ctx->generation++;
        }
    }
    aio__mutex_unlock(&ctx->list_lock);

    /* A poller asleep on the old set must come round and take a new
     * snapshot for the change to take effect. */
    if (old || (src && ret == 0)) {
        aio_notify(ctx);
    }
    return ret;
}

int aio_set_fd_handler(AioContext *ctx, aio_fd_t fd, bool is_external, AioHandler *io_read,
                       AioHandler *io_write, AioPollHandler *io_poll, void *opaque)
{
    if (!ctx) {
        return -EINVAL;
    }
    return source_set(ctx, fd, NULL, is_external, io_read, io_write, io_poll, opaque);
}

int aio_set_event_notifier(AioContext *ctx, AioEventNotifier *n, bool is_external,
                           AioHandler *io_read, AioPollHandler *io_poll, void *opaque)
{
    if (!ctx || !n) {
        return -EINVAL;
    }
    /* io_read NULL removes, as in QEMU: a notifier without a read handler
     * would stay set and make every poll return at once. */
    /* The fd field is unused for notifier sources: they are matched by
     * pointer, and each backend waits on the notifier its own way. */
    return source_set(ctx, (aio_fd_t)0, n, is_external, io_read, NULL,
                      io_read ? io_poll : NULL, opaque);
}

static void set_external_watch_locked(AioContext *ctx, bool watch)
{
    for (AioSource *src = ctx->sources; src; src = src->next) {
        if (!src->is_external || atomic_load_explicit(&src->deleted, memory_order_relaxed)) {
            continue;
        }
        if (watch) {
            /* Failure (no kernel memory) leaves the source unwatched: it is
             * not polled, as while disabled, until re-registered. */
            (void)watch_locked(ctx, src);
        } else {
            unwatch_locked(ctx, src);
        }
    }
    ctx->generation++;
}

void aio_disable_external(AioContext *ctx)
{
    if (!ctx) {
        return;
    }
    /* The count changes under the list lock so that concurrent disable and
     * enable calls apply their watch changes in the order of their counts. */
    aio__mutex_lock(&ctx->list_lock);
    if (atomic_fetch_add(&ctx->external_disable_cnt, 1) == 0) {
        set_external_watch_locked(ctx, false);
    }
    aio__mutex_unlock(&ctx->list_lock);
}

void aio_enable_external(AioContext *ctx)
{
    if (!ctx) {
        return;
    }
    bool enabled = false;
    aio__mutex_lock(&ctx->list_lock);
    int cnt = atomic_load(&ctx->external_disable_cnt);
    if (cnt > 0) { /* unbalanced enables are ignored */
        atomic_store(&ctx->external_disable_cnt, cnt - 1);
        if (cnt == 1) {
            set_external_watch_locked(ctx, true);
            enabled = true;
        }
    }
    aio__mutex_unlock(&ctx->list_lock);
    if (enabled) {
        aio_notify(ctx);
    }
}

static int pollset_reserve(AioPollSet *set, size_t n)
{
    if (n <= set->cap) {
        return 0;
    }
    size_t cap = set->cap ? set->cap : 8;
    while (cap < n) {
        cap *= 2;
    }
    AioSource **srcs = realloc(set->srcs, cap * sizeof(*srcs));
    if (!srcs) {
        return -ENOMEM;
    }
    set->srcs = srcs;
    AioReady *ready = realloc(set->ready, cap * sizeof(*ready));
    if (!ready) {
        return -ENOMEM;
    }
    set->ready = ready;
    set->cap = cap;
    return 0;
}

int aio__sources_begin_walk(AioContext *ctx, AioPollSet *set)
{
    int ret = 0;
    aio__mutex_lock(&ctx->list_lock);
    ctx->walkers++;
    /* ctx->generation starts at 1, so a zeroed set is always rebuilt. */
    if (set->generation != ctx->generation) {
        size_t n = 0;
        for (AioSource *src = ctx->sources; src; src = src->next) {
            n += src->watched && !atomic_load_explicit(&src->deleted, memory_order_relaxed);
        }
        ret = pollset_reserve(set, n);
        if (ret == 0) {
            set->n = 0;
            for (AioSource *src = ctx->sources; src; src = src->next) {
                if (src->watched && !atomic_load_explicit(&src->deleted, memory_order_relaxed)) {
                    set->srcs[set->n++] = src;
                }
            }
            set->generation = ctx->generation;
        } else {
            ctx->walkers--;
        }
    }
    set->nready = 0;
    aio__mutex_unlock(&ctx->list_lock);
    return ret;
}

void aio__sources_end_walk(AioContext *ctx)
{
    aio__mutex_lock(&ctx->list_lock);
    if (--ctx->walkers == 0 && ctx->purge_needed) {
        AioSource *src = ctx->sources;
        while (src) {
            AioSource *next = src->next;
            if (atomic_load_explicit(&src->deleted, memory_order_relaxed)) {
                unlink_and_free_locked(ctx, src);
            }
            src = next;
        }
        ctx->purge_needed = false;
    }
    aio__mutex_unlock(&ctx->list_lock);
}

bool aio__sources_dispatch(AioContext *ctx, AioPollSet *set)
{
    bool progress = false;
    for (size_t i = 0; i < set->nready; i++) {
        AioSource *src = set->ready[i].src;
        unsigned ev = set->ready[i].events;
        /* Re-checked before each callback: an earlier callback of this
         * round may have removed this source or disabled external ones. */
        if ((ev & AIO_EV_READ) && src->io_read && aio__source_dispatchable(ctx, src)) {
            src->io_read(src->opaque);
            progress = true;
        }
        if ((ev & AIO_EV_WRITE) && src->io_write && aio__source_dispatchable(ctx, src)) {
            src->io_write(src->opaque);
            progress = true;
        }
    }
    return progress;
}

bool aio__sources_poll(AioContext *ctx, AioPollSet *set)
{
    bool progress = false;
    for (size_t i = 0; i < set->n; i++) {
        AioSource *src = set->srcs[i];
        if (src->io_poll && aio__source_dispatchable(ctx, src) && src->io_poll(src->opaque)) {
            progress = true;
        }
    }
    return progress;
}

void aio__pollset_fini(AioContext *ctx, AioPollSet *set)
{
    if (ctx->ops->pollset_fini) {
        ctx->ops->pollset_fini(ctx->be, set);
    }
    free(set->srcs);
    free(set->ready);
    *set = (AioPollSet){0};
}

void aio__sources_teardown(AioContext *ctx)
{
    aio__pollset_fini(ctx, &ctx->home_set);
    while (ctx->sources) {
        AioSource *src = ctx->sources;
        unwatch_locked(ctx, src);
        unlink_and_free_locked(ctx, src);
    }
}
