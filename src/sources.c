/* SPDX-License-Identifier: MIT */
/*
 * fd handlers and event-notifier registrations ("sources").
 *
 * The list is changed under ctx->list_lock from any thread. Pollers do not
 * hold the lock while they sleep or dispatch; instead each takes a snapshot
 * and counts itself as a walker. A removed source is marked deleted at once
 * (so no dispatcher calls it again) but is freed only when no walker is left,
 * because a sleeping poller's snapshot, or an epoll event, may still name it.
 * A poll whose cached snapshot is still current takes no lock at all: see
 * aio__sources_begin_walk for why that cannot hand it a freed source.
 * Replacing a handler is removal plus insertion of a new source, so the
 * callback fields of a source never change and dispatch reads them unlocked.
 *
 * Backends see a source only as its AioWatch: a never-reused id, the
 * context's own object (a private duplicate of the user's descriptor or
 * handle, opened here and closed when the source is freed) and an interest
 * mask. They report readiness by id and the core resolves ids against the
 * caller's snapshot only, so an event for a removed registration, however
 * late, finds nothing, and one for a new registration waits for the next
 * snapshot. Whether a registration still counts is decided here alone.
 */
#include <stdlib.h>

#include "aio-internal.h"
#include "source-index.h"

static bool external_disabled(AioContext *ctx)
{
    return atomic_load_explicit(&ctx->external_disable_cnt, memory_order_acquire) > 0;
}

static bool aio__source_dispatchable(AioContext *ctx, AioSource *src)
{
    return !atomic_load_explicit(&src->deleted, memory_order_acquire) &&
           !(src->is_external && external_disabled(ctx));
}

/* The index holds exactly the linked sources that are not deleted: a
 * source enters it when linked and leaves it when marked deleted, both
 * under list_lock. */
static AioSource *find_live_locked(AioContext *ctx, aio_fd_t fd, AioEventNotifier *n)
{
    return aio__srcidx_find(&ctx->src_index, fd, n);
}

/* Closes the source's own object and frees it: the end of every source,
 * linked or not. */
static void source_free(AioSource *src)
{
    aio__object_close(&src->watch.obj);
    free(src);
}

static void unlink_and_free_locked(AioContext *ctx, AioSource *src)
{
    ctx->nsources--;
    if (src->prev) {
        src->prev->next = src->next;
    } else {
        ctx->sources = src->next;
    }
    if (src->next) {
        src->next->prev = src->prev;
    }
    source_free(src);
}

static void unwatch_locked(AioContext *ctx, AioSource *src)
{
    if (src->watched && ctx->ops->unwatch) {
        ctx->ops->unwatch(ctx->be, &src->watch);
    }
    src->watched = false;
    src->active = false;
}

/* Makes src part of the snapshots: watched by the backend when it has an
 * interest (an io_poll-only source has nothing to wait for). */
static int watch_locked(AioContext *ctx, AioSource *src)
{
    int ret = 0;
    if (src->watch.interest && ctx->ops->watch) {
        ret = ctx->ops->watch(ctx->be, &src->watch);
        src->watched = ret == 0;
    }
    src->active = ret == 0;
    return ret;
}

/* Under list_lock, after any change of the dispatchable set. seq_cst: a
 * removal's bump is the store half of the Dekker pair in
 * aio__sources_begin_walk. Wraps from UINT_MAX to 1, never to 0: a zeroed
 * (never built) AioPollSet has generation 0 and must never match. */
static void bump_generation_locked(AioContext *ctx)
{
    unsigned g = atomic_load_explicit(&ctx->generation, memory_order_relaxed) + 1;
    atomic_store(&ctx->generation, g ? g : 1);
}

/* Under list_lock, with no walker: frees every removed source. */
static void purge_locked(AioContext *ctx)
{
    AioSource *src = ctx->sources;
    while (src) {
        AioSource *next = src->next;
        if (atomic_load_explicit(&src->deleted, memory_order_relaxed)) {
            unlink_and_free_locked(ctx, src);
        }
        src = next;
    }
    atomic_store_explicit(&ctx->purge_needed, false, memory_order_relaxed);
}

static void remove_locked(AioContext *ctx, AioSource *src)
{
    aio__srcidx_remove(&ctx->src_index, src);
    atomic_store_explicit(&src->deleted, true, memory_order_release);
    unwatch_locked(ctx, src);
    bump_generation_locked(ctx);
    /* Invariant (list_lock): purge_needed is true whenever a removed source
     * is still linked. Only lock holders write it, so a relaxed read here
     * says whether an earlier removal is still waiting. */
    bool earlier = atomic_load_explicit(&ctx->purge_needed, memory_order_relaxed);
    /* Store, then load, both seq_cst, against end_walk's fetch_sub of
     * walkers and load of purge_needed: either we see the last walker gone
     * and free here, or that walker sees purge_needed and purges. */
    atomic_store(&ctx->purge_needed, true);
    if (atomic_load(&ctx->walkers) == 0) {
        /* No walker holds a snapshot, and any walker that registers from
         * now on sees the bump above and rebuilds under this lock
         * (aio__sources_begin_walk), after we are done. */
        if (earlier) {
            purge_locked(ctx);
        } else {
            unlink_and_free_locked(ctx, src);
            atomic_store_explicit(&ctx->purge_needed, false, memory_order_relaxed);
        }
    }
}

static AioSource *source_new(aio_fd_t fd, AioEventNotifier *n, bool is_external,
                             AioHandler *io_read, AioHandler *io_write,
                             AioPollHandler *io_poll, void *opaque, int *err)
{
    AioSource *src = aio__calloc(1, sizeof(*src));
    if (!src) {
        *err = -ENOMEM;
        return NULL;
    }
    /* The context's own object, taken now: from here on nothing the user
     * does to fd or n can make a wait name something else. */
    *err = aio__object_open(&src->watch.obj, fd, n);
    if (*err < 0) {
        free(src);
        return NULL;
    }
    src->watch.interest = (io_read ? AIO_EV_READ : 0u) | (io_write ? AIO_EV_WRITE : 0u);
    src->fd = fd;
    src->notifier = n;
    src->is_external = is_external;
    src->io_read = io_read;
    src->io_write = io_write;
    src->io_poll = io_poll;
    src->opaque = opaque;
    atomic_init(&src->deleted, false);
    return src;
}

static int source_set(AioContext *ctx, aio_fd_t fd, AioEventNotifier *n, bool is_external,
                      AioHandler *io_read, AioHandler *io_write, AioPollHandler *io_poll,
                      void *opaque)
{
    bool removing = !io_read && !io_write && !io_poll;
    /* A value that can never be a descriptor is refused either way; a
     * closed one only when registering (aio__object_open says so), so that
     * removal after close() works. */
    if (!n && removing && aio__check_fd(fd) == -EINVAL) {
        return -EINVAL;
    }
    /* A child that inherited the context must not change registrations
     * that live in kernel objects it shares with the parent (aio.h,
     * "fork()"). */
    if (aio__ctx_forked(ctx)) {
        return -ECHILD;
    }
    int ret = 0;
    AioSource *src = NULL;
    if (!removing) {
        src = source_new(fd, n, is_external, io_read, io_write, io_poll, opaque, &ret);
        if (!src) {
            return ret;
        }
    }

    aio__mutex_lock(&ctx->list_lock);
    /* Room in the index first: past this point a registration fails only
     * in the backend's watch(). */
    if (src && aio__srcidx_reserve(&ctx->src_index) < 0) {
        aio__mutex_unlock(&ctx->list_lock);
        source_free(src);
        return -ENOMEM;
    }
    AioSource *old = find_live_locked(ctx, fd, n);
    if (src) {
        /* The new registration first, the old one's removal after: a
         * replacement the backend refuses (no kernel memory, ENOSPC from
         * epoll's max_user_watches) fails as a whole and leaves the old
         * handler in place. For that moment the backend has the same file
         * watched twice (backend.h): on POSIX through two private
         * duplicates, on Windows as the one socket. */
        src->watch.id = ++ctx->next_id;
        if (!(is_external && external_disabled(ctx))) {
            ret = watch_locked(ctx, src);
        }
        if (ret < 0) {
            source_free(src); /* never linked, never in a snapshot */
            old = NULL;
        }
    }
    if (old) {
        remove_locked(ctx, old);
    }
    if (src && ret == 0) {
        src->next = ctx->sources;
        if (ctx->sources) {
            ctx->sources->prev = src;
        }
        ctx->sources = src;
        ctx->nsources++;
        aio__srcidx_insert(&ctx->src_index, src);
        bump_generation_locked(ctx);
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
     * would stay set and make every poll return at once. Notifier sources
     * are matched by pointer; the fd key is unused. */
    return source_set(ctx, (aio_fd_t)0, n, is_external, io_read, NULL,
                      io_read ? io_poll : NULL, opaque);
}

static void set_external_watch_locked(AioContext *ctx, bool watch)
{
    if (aio__ctx_forked(ctx)) {
        return; /* the watches live in kernel state shared with the parent */
    }
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
    bump_generation_locked(ctx);
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
    /* cap, not a pointer: cap is set only once every array is, so a
     * reservation that failed half-way is redone in full (a NULL map
     * behind a non-NULL srcs used to crash the next poll's map_build). */
    if (n <= set->cap && set->cap > 0) {
        return 0;
    }
    size_t cap = set->cap ? set->cap : 8;
    while (cap < n) {
        cap *= 2;
    }
    AioSource **srcs = aio__realloc(set->srcs, cap * sizeof(*srcs));
    if (!srcs) {
        return -ENOMEM;
    }
    set->srcs = srcs;
    AioWatch **watches = aio__realloc(set->watches, cap * sizeof(*watches));
    if (!watches) {
        return -ENOMEM;
    }
    set->watches = watches;
    AioReady *ready = aio__realloc(set->ws.ready, cap * sizeof(*ready));
    if (!ready) {
        return -ENOMEM;
    }
    set->ws.ready = ready;
    /* The map stays at most half full, so a probe always ends. */
    AioSource **map = aio__realloc(set->map, 2 * cap * sizeof(*map));
    if (!map) {
        return -ENOMEM;
    }
    set->map = map;
    set->map_mask = 2 * cap - 1;
    set->cap = cap;
    return 0;
}

static size_t id_hash(AioSourceId id, size_t mask)
{
    id *= UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(id >> 32) & mask;
}

static void map_build(AioPollSet *set)
{
    for (size_t i = 0; i <= set->map_mask; i++) {
        set->map[i] = NULL;
    }
    for (size_t i = 0; i < set->ws.n; i++) {
        AioSource *src = set->srcs[i];
        size_t j = id_hash(src->watch.id, set->map_mask);
        while (set->map[j]) {
            j = (j + 1) & set->map_mask;
        }
        set->map[j] = src;
    }
}

/* The source of this snapshot with that id, or NULL: an id the backend
 * reports for a registration the snapshot does not have (newer than it, or
 * removed before it was taken) is nobody's business in this poll. */
static AioSource *map_find(const AioPollSet *set, AioSourceId id)
{
    for (size_t j = id_hash(id, set->map_mask);; j = (j + 1) & set->map_mask) {
        AioSource *src = set->map[j];
        if (!src || src->watch.id == id) {
            return src;
        }
    }
}

/*
 * The walker count and the snapshot check take no lock when the cached
 * snapshot is current, which is every steady-state poll of the home thread.
 * This is Dekker's pattern, all four operations seq_cst:
 *
 *   walker (here)                    remover (remove_locked, under the lock)
 *   fetch_add(walkers)               mark deleted; store(generation + 1)
 *   load(generation)                 load(walkers): free only if 0
 *
 * In the single total order of seq_cst operations, either our load of
 * generation comes after the remover's store, so we see a generation our
 * snapshot does not have and rebuild under list_lock (which the remover
 * holds while it frees, so we rebuild from the list without the source),
 * or it comes before, and then so does our fetch_add, which precedes the
 * remover's load of walkers: the remover sees us and leaves the source for
 * the last walker's purge (end_walk).
 *
 * The same holds against a purge in end_walk: the purger re-checks walkers
 * == 0 under list_lock, after (happens-before, through the lock) the bump
 * of every removal it frees. A walker whose fetch_add comes after that
 * check therefore loads a newer generation than any snapshot that could
 * name a purged source, takes the lock and waits for the purge to finish.
 * A walker whose fetch_add comes before it makes the check fail, and the
 * purge is left to that walker's end_walk (purge_needed stays true).
 *
 * "Newer" relies on generations not repeating. They are 32-bit and wrap,
 * so a snapshot exactly 2^32 changes stale would pass; the locked check
 * this replaces had the same exposure. Only the home thread's cached
 * home_set is ever compared after a gap (local sets start at 0, which no
 * generation takes), and the home thread would have to skip polling across
 * four billion registration changes, each of which notifies it.
 *
 * Everything read outside the lock here is atomic; the snapshot itself
 * (set) belongs to the caller, who holds the dispatch right for home_set.
 */
int aio__sources_begin_walk(AioContext *ctx, AioPollSet *set)
{
    set->ws.nready = 0;
    /* A current snapshot that holds no source has nothing a remover could
     * free under it, so it needs no walker registration: a context that only
     * runs BHs and timers pays no locked instruction here. What a remover
     * frees was linked after generation g, the one this snapshot was taken
     * at (a source linked at g is in it), and a source added since is
     * simply not seen by this poll, as with any snapshot that was current
     * when its poll began. */
    if (set->nsrcs == 0 && set->ws.generation == atomic_load(&ctx->generation)) {
        set->walking = false;
        return 0;
    }
    atomic_fetch_add(&ctx->walkers, 1);
    set->walking = true;
    if (set->ws.generation == atomic_load(&ctx->generation)) {
        return 0;
    }

    int ret = 0;
    aio__mutex_lock(&ctx->list_lock);
    unsigned gen = atomic_load_explicit(&ctx->generation, memory_order_relaxed);
    /* One walk of the list: room for every linked source (removed ones
     * included), then the dispatchable ones. */
    ret = pollset_reserve(set, ctx->nsources);
    if (ret == 0) {
        /* srcs[0, nw) are the sources with an interest, in the order of
         * watches[]; the io_poll-only ones follow them, last linked first. */
        size_t nw = 0, npoll = 0;
        AioSource **polls = set->srcs + ctx->nsources;
        for (AioSource *src = ctx->sources; src; src = src->next) {
            if (!src->active || atomic_load_explicit(&src->deleted, memory_order_relaxed)) {
                continue;
            }
            if (src->watch.interest) {
                set->watches[nw] = &src->watch;
                set->srcs[nw++] = src;
            } else {
                *--polls = src;
                npoll++;
            }
        }
        /* Close the gap between the two groups (a forward copy: the
         * destination never lies after its source). */
        for (size_t i = 0; i < npoll; i++) {
            set->srcs[nw + i] = polls[i];
        }
        size_t n = nw + npoll;
        set->nsrcs = n;
        set->ws.watches = set->watches;
        set->ws.n = nw;
        set->ws.generation = gen;
        map_build(set);
    }
    aio__mutex_unlock(&ctx->list_lock);
    if (ret < 0) {
        aio__sources_end_walk(ctx, set);
    }
    return ret;
}

void aio__sources_end_walk(AioContext *ctx, AioPollSet *set)
{
    if (!set->walking) {
        return;
    }
    set->walking = false;
    /* fetch_sub, then load, both seq_cst: the other half of the pair in
     * remove_locked. The fetch_sub also releases our reads of the snapshot's
     * sources to whoever frees them. */
    if (atomic_fetch_sub(&ctx->walkers, 1) != 1 || !atomic_load(&ctx->purge_needed)) {
        return;
    }
    aio__mutex_lock(&ctx->list_lock);
    /* A walker may have registered since our decrement; then it purges. */
    if (atomic_load(&ctx->walkers) == 0 &&
        atomic_load_explicit(&ctx->purge_needed, memory_order_relaxed)) {
        purge_locked(ctx);
    }
    aio__mutex_unlock(&ctx->list_lock);
}

bool aio__sources_dispatch(AioContext *ctx, AioPollSet *set)
{
    bool progress = false;
    for (size_t i = 0; i < set->ws.nready; i++) {
        AioSource *src = map_find(set, set->ws.ready[i].id);
        if (!src) {
            continue;
        }
        unsigned ev = set->ws.ready[i].events & src->watch.interest;
        /* Re-checked before each callback: an earlier callback of this
         * round may have removed this source or disabled external ones. */
        if ((ev & AIO_EV_READ) && aio__source_dispatchable(ctx, src)) {
            aio__stats_call(ctx, src->io_read, src->opaque, &ctx->stats.handlers_run);
            progress = true;
        }
        if ((ev & AIO_EV_WRITE) && aio__source_dispatchable(ctx, src)) {
            aio__stats_call(ctx, src->io_write, src->opaque, &ctx->stats.handlers_run);
            progress = true;
        }
    }
    return progress;
}

bool aio__sources_poll(AioContext *ctx, AioPollSet *set)
{
    bool progress = false;
    for (size_t i = 0; i < set->nsrcs; i++) {
        AioSource *src = set->srcs[i];
        if (src->io_poll && aio__source_dispatchable(ctx, src) && src->io_poll(src->opaque)) {
            progress = true;
        }
    }
    return progress;
}

void aio__pollset_fini(AioContext *ctx, AioPollSet *set)
{
    if (ctx->ops->waitset_fini) {
        ctx->ops->waitset_fini(ctx->be, &set->ws);
    }
    free(set->srcs);
    free(set->watches);
    free(set->ws.ready);
    free(set->map);
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
    aio__srcidx_fini(&ctx->src_index);
}

void aio__sources_unwatch_all(AioContext *ctx)
{
    aio__mutex_lock(&ctx->list_lock);
    for (AioSource *src = ctx->sources; src; src = src->next) {
        unwatch_locked(ctx, src);
    }
    bump_generation_locked(ctx);
    aio__mutex_unlock(&ctx->list_lock);
}

int aio__sources_watch_all(AioContext *ctx)
{
    int first_err = 0;
    aio__mutex_lock(&ctx->list_lock);
    for (AioSource *src = ctx->sources; src; src = src->next) {
        if (atomic_load_explicit(&src->deleted, memory_order_relaxed) ||
            (src->is_external && external_disabled(ctx))) {
            continue;
        }
        /* A failure leaves the source unwatched, as a failed re-enable
         * does; the caller reports the first one. */
        int err = watch_locked(ctx, src);
        if (err < 0 && first_err == 0) {
            first_err = err;
        }
    }
    bump_generation_locked(ctx);
    aio__mutex_unlock(&ctx->list_lock);
    return first_err;
}
