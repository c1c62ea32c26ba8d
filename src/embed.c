/* SPDX-License-Identifier: MIT */
/*
 * Embedding a context in a host loop: aio_embed_prepare / query / check /
 * dispatch (docs/embedding.md; the protocol argument is in
 * docs/wakeup-protocol.md, "Embedded contexts").
 *
 * The host's sleep replaces the blocking poll's sleep and nothing else:
 *  - prepare is N1 and N2 of poll_blocking (announce, then look for work);
 *  - the host sleeps on the backend's aggregate object (or the descriptor
 *    set) instead of wait(): it is readable whenever wait() would return;
 *  - check is a wait() with timeout 0 on the wake-up object and the watches
 *    (N3 without sleeping: it learns the kick and the readiness), then
 *    N4..N6 (lower, consume the kick, accept) from poll.c itself;
 *  - dispatch is the blocking poll's dispatch, under the dispatch right.
 * All four run on the home thread only, so "only the home thread's blocking
 * poll accepts" stays true with the host's iteration as that poll. While
 * attached, the home word (src/home.h) counts the host as a blocking poller,
 * which keeps aio_context_set_home_thread() from moving the home under it.
 */
#include <stdint.h>
#include <stdlib.h>

#include "aio-internal.h"
#include "embed-internal.h"

static int enter(AioContext *ctx)
{
    if (!ctx) {
        return -EINVAL;
    }
    if (aio__ctx_forked(ctx)) {
        return -ECHILD;
    }
    /* Home first: the embed state is the home thread's, and another thread
     * must not even read it. */
    if (!aio__home_is(&ctx->home, aio__thread_id())) {
        return -EPERM;
    }
    return ctx->embed.attached ? 0 : -EINVAL;
}

static void end_check_walk(AioContext *ctx)
{
    if (ctx->embed.walking) {
        ctx->embed.walking = false;
        aio__sources_end_walk(ctx, &ctx->embed.set);
    }
}

/* Everything attach/prepare/query/check left behind. Not while a dispatch
 * uses set. */
static void embed_release(AioContext *ctx)
{
    AioEmbedState *e = &ctx->embed;
    if (e->aggregated && ctx->ops->embed_release) {
        /* Under the list lock, as embed_aggregate: win32 drops the watcher's
         * references to the watches, which watch()/unwatch() maintain. */
        aio__mutex_lock(&ctx->list_lock);
        ctx->ops->embed_release(ctx->be);
        aio__mutex_unlock(&ctx->list_lock);
    }
    end_check_walk(ctx);
    aio__pollset_fini(ctx, &e->set);
    aio__pollset_fini(ctx, &e->query_set);
    for (size_t i = 0; i < e->nfds; i++) {
        aio__object_close(&e->fds[i].obj);
    }
    free(e->fds);
    e->fds = NULL;
    e->nfds = e->fds_cap = 0;
    e->check_ready = e->set_ok = false;
    e->check_err = 0;
    e->query_gen = 0;
    e->stale_cb = NULL;
}

/* Takes the host's announcement back without accepting (N4 alone): no host
 * sleep follows it. A kick it caused stays signalled and the notification
 * pending, for the next blocking poll to accept. */
static void lower_announcement(AioContext *ctx)
{
    if (ctx->embed.announced) {
        ctx->embed.announced = false;
        aio__lower(ctx);
    }
}

int aio_embed_attach(AioContext *ctx, void *host)
{
    if (!ctx) {
        return -EINVAL;
    }
    if (aio__ctx_forked(ctx)) {
        return -ECHILD;
    }
    AioEmbedState *e = &ctx->embed;
    int ret = 0;
    /* Entered like a blocking poll: "am I home" and "the host now counts
     * as blocking" are one step for set_home_thread() (src/home.h). The
     * attach holds that count until the detach, or gives it back below. */
    if (!aio__home_enter(&ctx->home, aio__thread_id())) {
        return -EPERM;
    }
    if (e->attached || e->dispatching) {
        ret = -EBUSY;
    } else if (!ctx->ops->embed_aggregate && !ctx->ops->embed_kick_handle) {
        ret = -ENOTSUP;
    }
    if (ret == 0) {
        aio_handle_t h;
        int r = -ENOTSUP;
        if (ctx->ops->embed_aggregate) {
            /* The switch to an aggregating mode moves the watches: under the
             * list lock, as every watch() is. */
            aio__mutex_lock(&ctx->list_lock);
            r = ctx->ops->embed_aggregate(ctx->be, &h);
            aio__mutex_unlock(&ctx->list_lock);
        }
        if (r == 0) {
            e->aggregated = true;
            e->handle = h;
        } else if (r == -ENOTSUP && ctx->ops->embed_kick_handle) {
            e->aggregated = false;
        } else {
            ret = r;
        }
    }
    if (ret == 0) {
        e->attached = true;
        e->host = host;
        aio_context_ref(ctx);
    } else {
        aio__home_leave(&ctx->home);
    }
    return ret;
}

int aio_embed_detach(AioContext *ctx)
{
    if (!ctx) {
        return -EINVAL;
    }
    AioEmbedState *e = &ctx->embed;
    /* No lock against attach: both run where the host loop cannot call
     * into ctx (aio.h), which orders them through the host's own handover. */
    if (!e->attached) {
        return -EINVAL;
    }
    e->attached = false;
    e->host = NULL;
    aio__home_leave(&ctx->home);
    lower_announcement(ctx);
    if (!e->dispatching) {
        embed_release(ctx);
    } /* else the dispatch on the stack releases on its way out */
    aio_context_unref(ctx);
    return 0;
}

void *aio_embed_host(const AioContext *ctx)
{
    return ctx && ctx->embed.attached ? ctx->embed.host : NULL;
}

int aio_embed_prepare(AioContext *ctx, int64_t *timeout_ns)
{
    int err = enter(ctx);
    if (err) {
        return err;
    }
    AioEmbedState *e = &ctx->embed;
    bool pending = false;
    if (e->walking && !e->dispatching) {
        /* A check whose dispatch never came (the host dropped us between
         * them): what it found is still to do. */
        pending = e->check_ready;
        end_check_walk(ctx);
    }
    /* N1, then N2. A second prepare without a check keeps the one
     * announcement: notify_me counts sleepers, and there is one host. */
    if (!e->announced) {
        aio__announce(ctx);
        e->announced = true;
        e->passed_on = false;
    }
    /* After the announcement: a kick from here on must show on the
     * aggregate, so what makes it show is armed first (aio_notify() kicks
     * only while announced, and the sleep comes after this). */
    bool arm_failed = false;
    if (e->aggregated && ctx->ops->embed_arm) {
        arm_failed = ctx->ops->embed_arm(ctx->be) < 0;
    }
    int64_t t = pending || arm_failed ? 0 : aio__sleep_timeout(ctx);
    if (t != 0 && e->aggregated && ctx->ops->embed_busy && ctx->ops->embed_busy(ctx->be)) {
        t = 0; /* readiness the aggregate object cannot show */
    }
    aio__call_hook(ctx, AIO_HOOK_BEFORE_SLEEP);
    if (timeout_ns) {
        *timeout_ns = t;
    }
    return t == 0;
}

static aio_handle_t host_handle_of(const AioObject *o)
{
    return (aio_handle_t)(intptr_t)o->fd;
}

static AioEmbedHostFd *find_host_fd(AioEmbedState *e, AioSourceId id)
{
    size_t lo = 0, hi = e->nfds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->fds[mid].id == id) {
            return &e->fds[mid];
        }
        if (e->fds[mid].id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

static int cmp_host_fd(const void *a, const void *b)
{
    AioSourceId x = ((const AioEmbedHostFd *)a)->id, y = ((const AioEmbedHostFd *)b)->id;
    return x < y ? -1 : x > y;
}

/* Brings e->fds to the watches of qs: a duplicate for every new watch
 * (first, so that a failure changes nothing), then the duplicates that left
 * at the previous query are closed and those leaving now start retiring. The
 * host still polls a leaving descriptor until the adapter has seen this
 * query's answer, so it must stay open until the next one. */
static int sync_host_fds(AioContext *ctx, AioPollSet *qs)
{
    AioEmbedState *e = &ctx->embed;
    size_t n = qs->ws.n;
    if (e->nfds + n > e->fds_cap) {
        size_t cap = e->nfds + n + 8;
        AioEmbedHostFd *f = realloc(e->fds, cap * sizeof(*f));
        if (!f) {
            return -ENOMEM;
        }
        e->fds = f;
        e->fds_cap = cap;
    }
    size_t added = 0;
    for (size_t i = 0; i < n; i++) {
        const AioWatch *w = qs->ws.watches[i];
        if (find_host_fd(e, w->id)) {
            continue;
        }
        AioEmbedHostFd *h = &e->fds[e->nfds + added];
        aio_fd_t fd = w->obj.is_event ? (aio_fd_t)(intptr_t)w->obj.handle : w->obj.fd;
        int err = aio__object_open(&h->obj, fd, NULL);
        if (err) {
            while (added-- > 0) {
                aio__object_close(&e->fds[e->nfds + added].obj);
            }
            return err;
        }
        h->id = w->id;
        h->interest = w->interest;
        h->retiring = false;
        added++;
    }
    /* Commit. The old retirees go, everything else retires unless seen. */
    size_t keep = 0;
    for (size_t i = 0; i < e->nfds; i++) {
        if (e->fds[i].retiring) {
            aio__object_close(&e->fds[i].obj);
        } else {
            e->fds[i].retiring = true;
            e->fds[keep++] = e->fds[i];
        }
    }
    for (size_t i = 0; i < added; i++) {
        e->fds[keep++] = e->fds[e->nfds + i];
    }
    e->nfds = keep;
    if (added) {
        qsort(e->fds, e->nfds, sizeof(*e->fds), cmp_host_fd);
    }
    for (size_t i = 0; i < n; i++) {
        find_host_fd(e, qs->ws.watches[i]->id)->retiring = false;
    }
    return 0;
}

static bool any_retiring(const AioEmbedState *e)
{
    for (size_t i = 0; i < e->nfds; i++) {
        if (e->fds[i].retiring) {
            return true;
        }
    }
    return false;
}

static int query_set(AioContext *ctx, AioEmbedFd *fds, size_t cap)
{
    AioEmbedState *e = &ctx->embed;
    AioPollSet *qs = &e->query_set;
    /* The walker keeps the watches' own descriptors open while we duplicate
     * them; the duplicates outlive it. */
    int ret = aio__sources_begin_walk(ctx, qs);
    if (ret) {
        return ret;
    }
    size_t need = qs->ws.n + 1;
    if (need > INT32_MAX) {
        ret = -ENOMEM;
    } else if (cap >= need) {
        /* Unchanged since the last answer that fit: the table is it. */
        if (qs->ws.generation != e->query_gen || any_retiring(e)) {
            ret = sync_host_fds(ctx, qs);
        }
        if (ret == 0) {
            e->query_gen = qs->ws.generation;
            fds[0].handle = ctx->ops->embed_kick_handle(ctx->be);
            fds[0].events = AIO_EMBED_READ;
            size_t k = 1;
            for (size_t i = 0; i < e->nfds; i++) {
                if (!e->fds[i].retiring) {
                    fds[k].handle = host_handle_of(&e->fds[i].obj);
                    fds[k].events = (e->fds[i].interest & AIO_EV_READ ? AIO_EMBED_READ : 0u) |
                                    (e->fds[i].interest & AIO_EV_WRITE ? AIO_EMBED_WRITE : 0u);
                    k++;
                }
            }
        }
    }
    aio__sources_end_walk(ctx, qs);
    return ret < 0 ? ret : (int)need;
}

int aio_embed_set_stale_handler(AioContext *ctx, AioHandler *cb)
{
    int err = enter(ctx);
    if (err) {
        return err;
    }
    ctx->embed.stale_cb = cb;
    return 0;
}

void aio__embed_stale(AioContext *ctx)
{
    AioEmbedState *e = &ctx->embed;
    if (e->stale_cb) {
        /* The adapter makes its host prepare again before it sleeps, with a
         * signal of the host's own (an active event, a zero timer, GLib's
         * wake-up): nothing that nested polls wait on, so a loop of them
         * (AIO_WAIT_WHILE) still sleeps. */
        e->stale_cb(e->host);
        return;
    }
    if (e->passed_on) {
        return;
    }
    e->passed_on = true;
    /* Fallback: one kick, without a notification (notifying would make
     * every further nested poll of a wait loop accept it and kick again: a
     * spin). kick_pending's invariant holds: set, then signalled. A later
     * nested poll of a loop may consume this kick; hosts that run callbacks
     * between prepare and their sleep set a stale handler (aio.h). */
    if (!atomic_exchange(&ctx->kick_pending, true)) {
        ctx->ops->kick(ctx->be);
    }
}

int aio_embed_query(AioContext *ctx, AioEmbedFd *fds, size_t n)
{
    int err = enter(ctx);
    if (err) {
        return err;
    }
    if (!fds && n) {
        return -EINVAL;
    }
    if (!ctx->embed.aggregated) {
        return query_set(ctx, fds, n);
    }
    if (n >= 1) {
        fds[0].handle = ctx->embed.handle;
        fds[0].events = AIO_EMBED_READ;
    }
    return 1;
}

int aio_embed_check(AioContext *ctx)
{
    int err = enter(ctx);
    if (err) {
        return err;
    }
    AioEmbedState *e = &ctx->embed;
    aio__call_hook(ctx, AIO_HOOK_AFTER_SLEEP);
    if (e->dispatching) {
        /* A host iteration run from inside our own dispatch: that dispatch
         * owns e->set. Lower only (N4 without accepting, as a blocking poll
         * that saw no kick) and let this level's dispatch be a whole
         * non-sleeping blocking poll, which accepts. */
        lower_announcement(ctx);
        return 1;
    }
    end_check_walk(ctx); /* a second check without a dispatch */
    /* A check without a prepare announces now, so that the accept below is
     * a blocking poll's: every accept lowers exactly one announcement. */
    if (!e->announced) {
        aio__announce(ctx);
        e->announced = true;
    }
    bool kicked = false;
    int ret = aio__sources_begin_walk(ctx, &e->set);
    if (ret == 0) {
        e->walking = true;
        /* N3 without sleeping: the host slept for us. The wake-up object is
         * in this wait, so a kick is seen (and consumed below) here, on the
         * home thread, and only here. */
        if (e->set.ws.n == 0 && !ctx->ops->embed_arm && atomic_load(&ctx->kick_pending)) {
            /* Nothing is watched, so the wait could only report the kick,
             * and kick_pending says a notifier kicks (or has kicked): skip
             * the zero-timeout wait, the round trip's one system call more
             * than aio_poll's. Accepting on kick_pending is safe: it is set
             * before the kick (seq_cst), after the notification's increment
             * of notify_seq, which our accept therefore reads; and
             * clear_kick before the re-arm of kick_pending below can at worst miss a kick still on its way,
             * which then stays signalled with kick_pending false: a spurious
             * wake-up of the next sleep, never a lost one (the converse,
             * kick_pending true over a silent object, cannot arise). Not
             * with embed_arm (io_uring): its kick is a completion that only
             * the wait reaps, and leaving it queued would re-arm the
             * wake-up request twice. */
            e->set.ws.nready = 0;
            kicked = true;
        } else {
            ret = aio__backend_wait(ctx, &e->set, true, &kicked);
        }
    }
    e->set_ok = ret == 0;
    e->check_err = ret;
    e->announced = false;
    bool notified = aio__lower_and_accept(ctx, kicked);
    e->accepts_at_check = ctx->accepts;
    e->check_ready = notified || ret < 0 || (e->set_ok && e->set.ws.nready > 0) ||
                     aio__sleep_timeout(ctx) == 0;
    return e->check_ready;
}

int aio_embed_dispatch(AioContext *ctx)
{
    int err = enter(ctx);
    if (err) {
        return err;
    }
    AioEmbedState *e = &ctx->embed;
    if (e->dispatching) {
        /* Recursion (see check): a whole blocking poll that does not sleep. */
        lower_announcement(ctx);
        return aio__poll_now(ctx);
    }
    if (!e->walking && !e->check_err) {
        /* No check since the last dispatch (the host dispatched straight
         * after a prepare that said "ready"): do it now. */
        err = aio_embed_check(ctx);
        if (err < 0) {
            return err;
        }
    }
    bool walked = e->walking;
    e->walking = false; /* this frame's now: a recursive prepare leaves it */
    int ret = e->check_err;
    e->check_err = 0;
    AioPollSet *set = e->set_ok ? &e->set : NULL;
    e->set_ok = false;

    if (!aio__dispatch_acquire(ctx)) {
        if (walked) {
            aio__sources_end_walk(ctx, &e->set);
        }
        return -EBUSY; /* nested AIO_HOME_DEPTH_MAX deep */
    }
    e->dispatching++;
    if (set && ctx->accepts != e->accepts_at_check) {
        /* A nested blocking poll (a host callback between check and us) ran
         * the handlers that were ready then, and level-triggered handlers
         * must not be called for what it already consumed: look again,
         * without the wake-up object, which that poll accepted. */
        bool kicked;
        if (aio__backend_wait(ctx, set, false, &kicked) != 0) {
            set = NULL;
        }
    }
    bool progress = aio__dispatch_round(ctx, set);
    e->dispatching--;
    if (walked) {
        aio__sources_end_walk(ctx, &e->set);
    }
    if (!e->attached && !e->dispatching) {
        embed_release(ctx); /* detached from one of the callbacks */
    }
    if (aio__dispatch_release_outermost(ctx)) {
        aio__context_destroy(ctx);
    }
    return ret < 0 ? ret : progress;
}
