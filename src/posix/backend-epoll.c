/* SPDX-License-Identifier: MIT */
/*
 * The epoll engine and the "epoll" backend (Linux).
 *
 * Registration follows the core's watch()/unwatch() calls, which come under
 * the context's list lock; the kernel keeps the interest list, so a wait costs
 * the same with 1 or 10000 idle descriptors. Several threads may wait at once
 * (the home thread asleep on the set with the kick, others polling with
 * timeout 0 on the side set without it): level-triggered delivery of the
 * descriptors lets each of them see a ready one, and every per-call array
 * lives in the caller's AioWaitSet.
 *
 * Event data is the watch's id and each watch's descriptor is the context's
 * private duplicate (epoll-internal.h): removal always takes it out of the
 * kernel's set, also when the user closed their descriptor first and the
 * file lives on elsewhere (dup, a child process), and an event that raced
 * with the removal names an id the core no longer resolves.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "epoll-internal.h"
#include "kick.h"
#include "posix-internal.h"

/* ---- the engine ----------------------------------------------------------- */

#define WAKE_ID 0 /* no watch has id 0 */

int aio__epoll_open(AioEpoll *ep, int wake_fd)
{
    ep->epfd = AIO_FAULT_CALL(AIO_FAULT_EPOLL_CREATE, -1, epoll_create1(EPOLL_CLOEXEC));
    if (ep->epfd < 0) {
        return -errno;
    }
    ep->side_epfd = AIO_FAULT_CALL(AIO_FAULT_EPOLL_CREATE, -1, epoll_create1(EPOLL_CLOEXEC));
    if (ep->side_epfd < 0) {
        int err = -errno;
        close(ep->epfd);
        ep->epfd = -1;
        return err;
    }
    /* Edge-triggered: a blocking wait that fetches the kick has consumed it,
     * so accepting needs no read(). Only waits with the kick ever fetch from
     * this set (the home thread's blocking polls); every other wait uses
     * side_epfd, which does not hold the eventfd, so no other thread can
     * take the one edge a sleeper needs (epoll-internal.h). */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = WAKE_ID};
    if (AIO_FAULT_CALL(AIO_FAULT_EPOLL_CTL, -1, epoll_ctl(ep->epfd, EPOLL_CTL_ADD, wake_fd, &ev)) < 0) {
        int err = -errno;
        close(ep->side_epfd);
        close(ep->epfd);
        ep->epfd = ep->side_epfd = -1;
        return err;
    }
    ep->forked = false;
    atomic_init(&ep->embedded, false);
    ep->kicks_undrained = 0;
    aio__mutex_init(&ep->always_lock);
    ep->always = NULL;
    ep->nalways_cap = 0;
    atomic_init(&ep->nalways, 0);
    atomic_store_explicit(&ep->nregistered, 1, memory_order_relaxed);
    return 0;
}

void aio__epoll_close(AioEpoll *ep)
{
    if (ep->epfd >= 0) {
        close(ep->epfd);
        close(ep->side_epfd);
        aio__mutex_destroy(&ep->always_lock);
        free(ep->always);
        ep->always = NULL;
    }
    ep->epfd = ep->side_epfd = -1;
}

void aio__epoll_clear_kick(AioEpoll *ep, AioKick *kick)
{
    if (!aio__kick_clear(kick)) {
        return; /* the wait was on the word: nothing to read */
    }
    /* The edge was consumed by the wait that reported it; the eventfd's
     * counter only grows. Read it every AIO_EPOLL_DRAIN_EVERY kicks so that
     * it stays small (a write can never reach the 2^64 - 2 limit and fail
     * with EAGAIN). Safe at this point of the protocol: between the wait
     * that fetched the edge and the re-arm of kick_pending that follows,
     * no notifier writes (kick_pending is still true), so the read eats no
     * edge that anybody still needs. */
    /* Relaxed: either answer is safe once the host is gone (an extra read
     * only costs), and while one is attached the flag was set on this
     * thread before its first check. */
    if (atomic_load_explicit(&ep->embedded, memory_order_relaxed) ||
        ++ep->kicks_undrained >= AIO_EPOLL_DRAIN_EVERY) {
        ep->kicks_undrained = 0;
        aio__notifier_test_and_clear(&kick->fd);
    }
}

void aio__epoll_set_embedded(AioEpoll *ep, bool on)
{
    /* A host polls epfd itself, and poll(2) on an epoll descriptor calls it
     * readable while an item on its ready list still polls ready: the kick
     * eventfd's edge stays on that list until a wait fetches it, and an
     * unread counter keeps it polling ready. aio_embed_check() may accept
     * a kick without a wait (src/embed.c), so from here on accepting reads
     * the counter to zero, which lets the next poll of epfd drop the stale
     * item instead of waking the host again at once, for ever
     * (embed::kick_accepted_without_a_wait_is_consumed). The read is the
     * one system call check's skipped epoll_wait would have cost. Once
     * the host is gone nobody polls epfd, so the read is dropped again
     * (embed::detached_context_pays_no_embedding_cost_per_wake). */
    atomic_store_explicit(&ep->embedded, on, memory_order_relaxed);
}

static uint32_t interest_events(const AioWatch *w)
{
    return (w->interest & AIO_EV_READ ? EPOLLIN : 0u) | (w->interest & AIO_EV_WRITE ? EPOLLOUT : 0u);
}

static int always_add(AioEpoll *ep, AioSourceId id)
{
    aio__mutex_lock(&ep->always_lock);
    size_t n = atomic_load_explicit(&ep->nalways, memory_order_relaxed);
    if (n == ep->nalways_cap) {
        size_t cap = ep->nalways_cap ? ep->nalways_cap * 2 : 4;
        AioSourceId *a = aio__realloc(ep->always, cap * sizeof(*a));
        if (!a) {
            aio__mutex_unlock(&ep->always_lock);
            return -ENOMEM;
        }
        ep->always = a;
        ep->nalways_cap = cap;
    }
    ep->always[n] = id;
    atomic_store_explicit(&ep->nalways, n + 1, memory_order_relaxed);
    aio__mutex_unlock(&ep->always_lock);
    return 0;
}

static bool always_del(AioEpoll *ep, AioSourceId id)
{
    if (atomic_load_explicit(&ep->nalways, memory_order_relaxed) == 0) {
        return false; /* only add/del write it, and they are serialised */
    }
    bool found = false;
    aio__mutex_lock(&ep->always_lock);
    size_t n = atomic_load_explicit(&ep->nalways, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        if (ep->always[i] == id) {
            ep->always[i] = ep->always[n - 1];
            atomic_store_explicit(&ep->nalways, n - 1, memory_order_relaxed);
            found = true;
            break;
        }
    }
    aio__mutex_unlock(&ep->always_lock);
    return found;
}

int aio__epoll_add(AioEpoll *ep, const AioWatch *w)
{
    struct epoll_event ev = {.events = interest_events(w), .data.u64 = w->id};
    int fd = aio__watch_fd(w);
    if (AIO_FAULT_CALL(AIO_FAULT_EPOLL_CTL, -1, epoll_ctl(ep->epfd, EPOLL_CTL_ADD, fd, &ev)) < 0) {
        /* EPERM: a file epoll cannot watch, which poll() reports ready for
         * both directions at all times; report it the same way. */
        return errno == EPERM ? always_add(ep, w->id) : -errno;
    }
    /* The same watch in the set of the waits without the kick. */
    if (AIO_FAULT_CALL(AIO_FAULT_EPOLL_CTL, -1, epoll_ctl(ep->side_epfd, EPOLL_CTL_ADD, fd, &ev)) < 0) {
        int err = -errno;
        (void)epoll_ctl(ep->epfd, EPOLL_CTL_DEL, fd, NULL);
        return err;
    }
    atomic_fetch_add_explicit(&ep->nregistered, 1, memory_order_relaxed);
    return 0;
}

void aio__epoll_del(AioEpoll *ep, const AioWatch *w)
{
    if (always_del(ep, w->id)) {
        return;
    }
    atomic_fetch_sub_explicit(&ep->nregistered, 1, memory_order_relaxed);
    if (ep->forked) {
        /* The sets are shared with the parent, whose registration of this
         * (file, descriptor) pair is the same entry: leave them alone. */
        return;
    }
    /* Cannot fail: the descriptor is the context's own and still open, so
     * the kernel still has it under exactly this number in both sets. */
    (void)epoll_ctl(ep->epfd, EPOLL_CTL_DEL, aio__watch_fd(w), NULL);
    (void)epoll_ctl(ep->side_epfd, EPOLL_CTL_DEL, aio__watch_fd(w), NULL);
}

/* Appends the always-ready watches; true if there are any. */
static bool report_always(AioEpoll *ep, AioWaitSet *set)
{
    if (atomic_load_explicit(&ep->nalways, memory_order_relaxed) == 0) {
        return false;
    }
    aio__mutex_lock(&ep->always_lock);
    size_t n = atomic_load_explicit(&ep->nalways, memory_order_relaxed);
    for (size_t i = 0; i < n && set->nready < set->n; i++) {
        set->ready[set->nready].id = ep->always[i];
        set->ready[set->nready].events = AIO_EV_READ | AIO_EV_WRITE;
        set->nready++;
    }
    aio__mutex_unlock(&ep->always_lock);
    return n > 0;
}

#if AIOPOLL_HAVE_EPOLL_PWAIT2
/* Cleared at run time when the kernel is older than 5.11. */
static atomic_bool have_pwait2 = true;
#endif

static int do_epoll_wait(int epfd, struct epoll_event *evs, int max, int64_t timeout_ns)
{
#if AIOPOLL_HAVE_EPOLL_PWAIT2
    if (timeout_ns > 0 && atomic_load_explicit(&have_pwait2, memory_order_relaxed)) {
        struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000),
                              .tv_nsec = (long)(timeout_ns % 1000000000)};
        int r = AIO_FAULT_CALL(AIO_FAULT_WAIT, -1, epoll_pwait2(epfd, evs, max, &ts, NULL));
        if (r >= 0 || errno != ENOSYS) {
            return r;
        }
        atomic_store_explicit(&have_pwait2, false, memory_order_relaxed);
    }
#endif
    /* 0 and -1 need no conversion; anything else is rounded up to whole
     * milliseconds so that no timer fires early. */
    return AIO_FAULT_CALL(AIO_FAULT_WAIT, -1,
                          epoll_wait(epfd, evs, max, aio__timeout_ms_ceil(timeout_ns)));
}

static int wait_set(AioEpoll *ep, AioWaitSet *set, AioEpollScratch *sc, int64_t timeout_ns,
                    bool with_kick, bool *kicked)
{
    *kicked = false;
    set->nready = 0;
    /* Always-ready descriptors first: a wait must not sleep past them. An id
     * that is not in this caller's snapshot is dropped by the core. */
    if (report_always(ep, set)) {
        timeout_ns = 0;
    }
    /* Room for every registered descriptor, so that one call reports all
     * that are ready. The count may grow under us; what does not fit now is
     * still ready (level-triggered) at the next call. */
    size_t want = atomic_load_explicit(&ep->nregistered, memory_order_relaxed) + 1;
    if (want > sc->events_cap) {
        size_t cap = sc->events_cap ? sc->events_cap : 16;
        while (cap < want) {
            cap *= 2;
        }
        void *evs = aio__realloc(sc->events, cap * sizeof(struct epoll_event));
        if (!evs) {
            return -ENOMEM;
        }
        sc->events = evs;
        sc->events_cap = cap;
    }
    int max = sc->events_cap > INT32_MAX ? INT32_MAX : (int)sc->events_cap;
    struct epoll_event *evs = sc->events;
    /* Rule 1 by construction: a wait without the kick cannot even receive
     * its edge (an edge is delivered once; fetched here it would be lost to
     * the home thread's sleep). */
    int r = do_epoll_wait(with_kick ? ep->epfd : ep->side_epfd, evs, max, timeout_ns);
    if (r < 0) {
        return errno == EINTR ? 0 : -errno;
    }
    for (int i = 0; i < r; i++) {
        AioSourceId id = evs[i].data.u64;
        if (id == WAKE_ID) {
            /* Only in the set of waits with the kick. */
            *kicked = true;
            continue;
        }
        uint32_t re = evs[i].events;
        unsigned ev = 0;
        if (re & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
            ev |= AIO_EV_READ;
        }
        if (re & (EPOLLOUT | EPOLLERR)) {
            ev |= AIO_EV_WRITE;
        }
        /* Ids the snapshot lacks (registered since) may take a slot; what
         * is crowded out stays ready for the next call. */
        if (set->nready < set->n) {
            set->ready[set->nready].id = id;
            set->ready[set->nready].events = ev;
            set->nready++;
        }
    }
    return 0;
}

int aio__epoll_wait(AioEpoll *ep, AioKick *kick, AioWaitSet *set, AioEpollScratch *sc,
                    int64_t timeout_ns, bool with_kick, bool *kicked)
{
    /* A blocking poll that watches nothing sleeps on the futex word: one
     * FUTEX_WAIT, and nothing to clear (kick.h). */
    if (with_kick && set->n == 0 && aio__kick_use_word(kick)) {
        set->nready = 0;
        return aio__kick_wait_word(kick, timeout_ns, kicked);
    }
    /* A kick that came while the home thread was awake (or at the word)
     * wrote nothing: it is reported now, and the wait does not sleep. */
    bool early = with_kick && aio__kick_enter_fd(kick);
    int r = wait_set(ep, set, sc, early ? 0 : timeout_ns, with_kick, kicked);
    if (with_kick) {
        aio__kick_leave_fd(kick);
    }
    *kicked = *kicked || early;
    return r;
}

void aio__epoll_scratch_fini(AioEpollScratch *sc)
{
    free(sc->events);
    *sc = (AioEpollScratch){0};
}

/* ---- the "epoll" backend ---------------------------------------------------- */

struct AioBackend {
    AioKick kick; /* an eventfd in ep, and the futex word (kick.h) */
    AioEpoll ep;
};

static AioBackend *epoll_create_be(void)
{
    AioBackend *be = aio__calloc(1, sizeof(*be));
    if (!be) {
        errno = ENOMEM;
        return NULL;
    }
    int err = aio__kick_open(&be->kick, false, true);
    if (!err) {
        err = aio__epoll_open(&be->ep, be->kick.fd.rfd);
        if (err) {
            aio__kick_close(&be->kick);
        }
    }
    if (err) {
        free(be);
        errno = -err;
        return NULL;
    }
    return be;
}

static void epoll_destroy(AioBackend *be)
{
    aio__epoll_close(&be->ep);
    aio__kick_close(&be->kick);
    free(be);
}

static void epoll_kick(AioBackend *be)
{
    aio__kick_signal(&be->kick);
}

static void epoll_clear_kick(AioBackend *be)
{
    aio__epoll_clear_kick(&be->ep, &be->kick);
}

static int epoll_watch(AioBackend *be, AioWatch *w)
{
    return aio__epoll_add(&be->ep, w);
}

static void epoll_unwatch(AioBackend *be, AioWatch *w)
{
    aio__epoll_del(&be->ep, w);
}

static void epoll_forked(AioBackend *be)
{
    be->ep.forked = true;
}

static int epoll_be_wait(AioBackend *be, AioWaitSet *set, int64_t timeout_ns, bool with_kick,
                         bool *kicked)
{
    if (!set->scratch) {
        set->scratch = aio__calloc(1, sizeof(AioEpollScratch));
        if (!set->scratch) {
            *kicked = false;
            set->nready = 0;
            return -ENOMEM;
        }
    }
    return aio__epoll_wait(&be->ep, &be->kick, set, set->scratch, timeout_ns, with_kick, kicked);
}

static void epoll_waitset_fini(AioBackend *be, AioWaitSet *set)
{
    (void)be;
    if (set->scratch) {
        aio__epoll_scratch_fini(set->scratch);
        free(set->scratch);
        set->scratch = NULL;
    }
}

/* Embedding: the epoll set holds every watch and the wake-up eventfd, so it
 * is readable exactly when a wait would return something. */
static int epoll_embed_aggregate(AioBackend *be, aio_handle_t *out)
{
    aio__epoll_set_embedded(&be->ep, true);
    aio__kick_pin_fd(&be->kick);
    *out = be->ep.epfd;
    return 0;
}

static bool epoll_embed_busy(AioBackend *be)
{
    return atomic_load_explicit(&be->ep.nalways, memory_order_relaxed) > 0;
}

static void epoll_embed_release(AioBackend *be)
{
    aio__epoll_set_embedded(&be->ep, false);
    aio__kick_unpin_fd(&be->kick);
}

const AioBackendOps aio__backend_epoll = {
    .name = "epoll",
    .create = epoll_create_be,
    .destroy = epoll_destroy,
    .kick = epoll_kick,
    .clear_kick = epoll_clear_kick,
    .watch = epoll_watch,
    .unwatch = epoll_unwatch,
    .wait = epoll_be_wait,
    .waitset_fini = epoll_waitset_fini,
    .forked = epoll_forked,
    .embed_aggregate = epoll_embed_aggregate,
    .embed_busy = epoll_embed_busy,
    .embed_release = epoll_embed_release,
};
