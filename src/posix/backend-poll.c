/* SPDX-License-Identifier: MIT */
/*
 * The poll-array backends:
 *  - "eventfd+ppoll" (Linux): eventfd wake-up, ppoll() with nanosecond
 *    timeouts; a blocking poll that watches nothing sleeps on a futex word
 *    instead (kick.h);
 *  - "pipe+poll" (macOS, the BSDs, anything POSIX): non-blocking pipe
 *    wake-up, poll() with the timeout rounded up to whole milliseconds.
 * Both rebuild their pollfd array only when the core's snapshot changed;
 * slot 0 is the wake-up descriptor, disabled (fd -1) in non-blocking polls so
 * that they can never observe, let alone consume, a wake-up.
 *
 * "eventfd+ppoll" is also a hybrid: once more than EPOLL_THRESHOLD sources
 * are watched it moves them into an epoll set (backend-epoll.c) and waits
 * there from then on, reporting itself as "epoll". ppoll() costs time per
 * descriptor on every call, epoll_wait() does not but makes every
 * registration a system call; docs/performance.md has the crossover. The
 * switch happens inside watch(), under the context's list lock: every
 * watched source is added to the new set and the wake-up eventfd with it,
 * then the mode flag is published. A wait that read the old mode finishes on
 * its pollfd array, which stays valid (its snapshot keeps the sources alive
 * and their descriptors open); the core notifies after every registration,
 * so a home thread asleep in ppoll() comes round and its next wait is an
 * epoll_wait(). The switch is one-way: going back would save nothing a
 * context that once had this many descriptors is likely to need again, and
 * the epoll set costs nothing while idle.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

#include "kick.h"
#include "posix-internal.h"

#define HYBRID (AIOPOLL_HAVE_EVENTFD && AIOPOLL_HAVE_PPOLL && AIOPOLL_HAVE_EPOLL)

#if HYBRID
#include <stdatomic.h>
#include <string.h>

#include "epoll-internal.h"

/* Watched sources above which eventfd+ppoll moves to epoll. From the
 * crossover measured by aiopoll-bench (docs/performance.md): ppoll() costs
 * ~140 ns per watched descriptor on every wait, epoll_wait() nothing, but
 * with epoll every registration change is a system call (~0.8 us more per
 * add or remove). Up to 8 descriptors ppoll stays within ~25% of epoll and
 * registration stays free of system calls; beyond it the per-wait cost wins.
 * AIOPOLL_EPOLL_THRESHOLD overrides it ("off" never switches): a supported,
 * documented tuning knob (aio.h, aio_context_backend), which the benchmark
 * and the tests use too. */
#define EPOLL_THRESHOLD 8

/* A watch as the hybrid keeps it: w->backend_data, watch to unwatch. */
typedef struct PollReg {
    const AioWatch *w;
    size_t index; /* in be->watched */
} PollReg;
#endif

struct AioBackend {
    /* eventfd+ppoll: an eventfd and a futex word for waits that watch
     * nothing (kick.h); pipe+poll: a pipe only, as on systems without
     * either. */
    AioKick kick;
    bool use_ppoll;
#if HYBRID
    /* Everything below but epoll_mode is touched only in watch/unwatch,
     * under the context's list lock. */
    size_t threshold;       /* SIZE_MAX: never switch */
    bool epoll_failed;      /* the switch failed once; stay on ppoll */
    atomic_bool epoll_mode; /* release/acquire: the set is complete */
    AioEpoll ep;
    PollReg **watched;      /* every watch, for the switch */
    size_t nwatched, watched_cap;
#endif
};

/* Per-AioWaitSet scratch. */
typedef struct PollScratch {
    struct pollfd *pfd; /* slot 0 is the wake-up descriptor */
    size_t pfd_cap;
    unsigned generation;
    bool valid;
#if HYBRID
    AioEpollScratch ep;
#endif
} PollScratch;

static AioBackend *create_common(bool use_pipe, bool use_ppoll)
{
    AioBackend *be = aio__calloc(1, sizeof(*be));
    if (!be) {
        errno = ENOMEM;
        return NULL;
    }
    int err = aio__kick_open(&be->kick, use_pipe, !use_pipe);
    if (err) {
        free(be);
        errno = -err;
        return NULL;
    }
    be->use_ppoll = use_ppoll;
#if HYBRID
    /* For pipe+poll too, which never opens it: calloc's 0 made teardown's
     * aio__epoll_close close descriptor 0, someone else's. */
    be->ep.epfd = -1;
#endif
    return be;
}

static void poll_destroy(AioBackend *be)
{
#if HYBRID
    for (size_t i = 0; i < be->nwatched; i++) {
        free(be->watched[i]);
    }
    free(be->watched);
    aio__epoll_close(&be->ep);
#endif
    aio__kick_close(&be->kick);
    free(be);
}

static void poll_kick(AioBackend *be)
{
    aio__kick_signal(&be->kick);
}

static void poll_clear_kick(AioBackend *be)
{
    if (aio__kick_clear(&be->kick)) {
        aio__notifier_test_and_clear(&be->kick.fd);
    }
}

/* The host polls the eventfd from now on (src/embed.c calls this at every
 * query, on the home thread, before the host sleeps): pinning is idempotent,
 * and a context that embeds this way stays on the eventfd. */
static aio_handle_t poll_embed_kick_handle(AioBackend *be)
{
    aio__kick_pin_fd(&be->kick);
    return be->kick.fd.rfd;
}

static short interest(const AioWatch *w)
{
    return (short)((w->interest & AIO_EV_READ ? POLLIN : 0) |
                   (w->interest & AIO_EV_WRITE ? POLLOUT : 0));
}

static int build_pollfds(AioWaitSet *set, PollScratch *sc)
{
    size_t need = set->n + 1;
    if (need > sc->pfd_cap) {
        struct pollfd *p = aio__realloc(sc->pfd, need * sizeof(*p));
        if (!p) {
            return -ENOMEM;
        }
        sc->pfd = p;
        sc->pfd_cap = need;
    }
    struct pollfd *pfd = sc->pfd;
    for (size_t i = 0; i < set->n; i++) {
        const AioWatch *w = set->watches[i];
        pfd[i + 1].fd = aio__watch_fd(w);
        pfd[i + 1].events = interest(w);
    }
    sc->generation = set->generation;
    sc->valid = true;
    return 0;
}

static int poll_wait(AioBackend *be, AioWaitSet *set, int64_t timeout_ns, bool with_kick,
                     bool *kicked)
{
    *kicked = false;
    set->nready = 0;
    if (!set->scratch) {
        set->scratch = aio__calloc(1, sizeof(PollScratch));
        if (!set->scratch) {
            return -ENOMEM;
        }
    }
    PollScratch *sc = set->scratch;
#if HYBRID
    /* acquire: pairs with the switch's release, so the set is complete. The
     * engine sleeps on the futex word too when nothing is watched. */
    if (atomic_load_explicit(&be->epoll_mode, memory_order_acquire)) {
        return aio__epoll_wait(&be->ep, &be->kick, set, &sc->ep, timeout_ns, with_kick, kicked);
    }
#endif
    /* A blocking poll that watches nothing sleeps on the futex word: one
     * FUTEX_WAIT, and no read to clear it (kick.h). */
    if (with_kick && set->n == 0 && aio__kick_use_word(&be->kick)) {
        return aio__kick_wait_word(&be->kick, timeout_ns, kicked);
    }
    /* A kick that came while the home thread was awake (or at the word)
     * wrote nothing: it is reported now, and the wait does not sleep. */
    bool early = with_kick && aio__kick_enter_fd(&be->kick);
    if (early) {
        timeout_ns = 0;
    }
    if (!sc->valid || sc->generation != set->generation) {
        int err = build_pollfds(set, sc);
        if (err) {
            if (with_kick) {
                aio__kick_leave_fd(&be->kick);
            }
            *kicked = early;
            return err;
        }
    }
    struct pollfd *pfd = sc->pfd;
    pfd[0].fd = with_kick ? be->kick.fd.rfd : -1;
    pfd[0].events = POLLIN;
    nfds_t nfds = (nfds_t)(set->n + 1);

    int r;
#if AIOPOLL_HAVE_PPOLL
    if (be->use_ppoll) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = (time_t)(timeout_ns / 1000000000);
            ts.tv_nsec = (long)(timeout_ns % 1000000000);
            tsp = &ts;
        }
        r = AIO_FAULT_CALL(AIO_FAULT_WAIT, -1, ppoll(pfd, nfds, tsp, NULL));
    } else
#endif
    {
        r = AIO_FAULT_CALL(AIO_FAULT_WAIT, -1, poll(pfd, nfds, aio__timeout_ms_ceil(timeout_ns)));
    }
    if (with_kick) {
        aio__kick_leave_fd(&be->kick);
    }
    *kicked = early;
    if (r < 0) {
        return errno == EINTR || errno == EAGAIN ? 0 : -errno;
    }
    if (r == 0) {
        return 0;
    }
    *kicked = early || (with_kick && (pfd[0].revents & (POLLIN | POLLERR | POLLHUP)));
    for (size_t i = 0; i < set->n; i++) {
        short re = pfd[i + 1].revents;
        if (!re) {
            continue;
        }
        /* POLLNVAL cannot happen: the descriptor is the context's own. */
        unsigned ev = 0;
        if (re & (POLLIN | POLLHUP | POLLERR)) {
            ev |= AIO_EV_READ;
        }
        if (re & (POLLOUT | POLLERR)) {
            ev |= AIO_EV_WRITE;
        }
        if (ev) {
            set->ready[set->nready].id = set->watches[i]->id;
            set->ready[set->nready].events = ev;
            set->nready++;
        }
    }
    return 0;
}

static void poll_waitset_fini(AioBackend *be, AioWaitSet *set)
{
    (void)be;
    PollScratch *sc = set->scratch;
    if (sc) {
        free(sc->pfd);
#if HYBRID
        aio__epoll_scratch_fini(&sc->ep);
#endif
        free(sc);
    }
    set->scratch = NULL;
}

#if HYBRID
static size_t threshold_from_env(void)
{
    const char *v = getenv("AIOPOLL_EPOLL_THRESHOLD");
    if (!v || !*v) {
        return EPOLL_THRESHOLD;
    }
    if (strcmp(v, "off") == 0) {
        return SIZE_MAX;
    }
    char *end;
    long n = strtol(v, &end, 10);
    return *end || n < 0 ? EPOLL_THRESHOLD : (size_t)n;
}

/* Moves every watch into a new epoll set. List lock held. */
static void switch_to_epoll(AioBackend *be)
{
    if (aio__epoll_open(&be->ep, be->kick.fd.rfd) != 0) {
        be->epoll_failed = true;
        return;
    }
    for (size_t i = 0; i < be->nwatched; i++) {
        if (aio__epoll_add(&be->ep, be->watched[i]->w) != 0) {
            /* No kernel memory: ppoll handles everything, stay there. */
            while (i-- > 0) {
                aio__epoll_del(&be->ep, be->watched[i]->w);
            }
            aio__epoll_close(&be->ep);
            be->epoll_failed = true;
            return;
        }
    }
    atomic_store_explicit(&be->epoll_mode, true, memory_order_release);
}

static int hybrid_watch(AioBackend *be, AioWatch *w)
{
    if (be->nwatched == be->watched_cap) {
        size_t cap = be->watched_cap ? be->watched_cap * 2 : 16;
        PollReg **r = aio__realloc(be->watched, cap * sizeof(*r));
        if (!r) {
            return -ENOMEM;
        }
        be->watched = r;
        be->watched_cap = cap;
    }
    PollReg *reg = aio__malloc(sizeof(*reg));
    if (!reg) {
        return -ENOMEM;
    }
    reg->w = w;
    if (atomic_load_explicit(&be->epoll_mode, memory_order_relaxed)) {
        int err = aio__epoll_add(&be->ep, w);
        if (err) {
            free(reg);
            return err;
        }
    }
    reg->index = be->nwatched;
    be->watched[be->nwatched++] = reg;
    w->backend_data = reg;
    if (be->nwatched > be->threshold && !be->epoll_failed &&
        !atomic_load_explicit(&be->epoll_mode, memory_order_relaxed)) {
        switch_to_epoll(be);
    }
    return 0;
}

static void hybrid_unwatch(AioBackend *be, AioWatch *w)
{
    PollReg *reg = w->backend_data;
    if (atomic_load_explicit(&be->epoll_mode, memory_order_relaxed)) {
        aio__epoll_del(&be->ep, w);
    }
    PollReg *last = be->watched[--be->nwatched];
    last->index = reg->index;
    be->watched[reg->index] = last;
    free(reg);
    w->backend_data = NULL;
}

/* After the switch the eventfd is in the epoll set edge-triggered: the
 * wait that reported the kick consumed it, no read() is needed (the
 * engine's occasional drain aside). A kick seen by a ppoll wait that began
 * before the switch is left unread too: the counter stays up, which only
 * ppoll waits with the kick could mind, and there are none after the switch
 * (they are the home thread's, and this is the home thread, whose next wait
 * reads the new mode). */
static void hybrid_clear_kick(AioBackend *be)
{
    if (atomic_load_explicit(&be->epoll_mode, memory_order_acquire)) {
        aio__epoll_clear_kick(&be->ep, &be->kick);
    } else {
        poll_clear_kick(be);
    }
}

static void hybrid_forked(AioBackend *be)
{
    be->ep.forked = true;
}

/* Embedding: a host loop can wait on one descriptor only once we are on
 * epoll, so attaching forces the switch whatever the threshold (measured in
 * docs/embedding.md: the host's own wait replaces ppoll's per-descriptor
 * cost, and registrations pay epoll_ctl as they would past the threshold).
 * List lock held, as in watch(). */
static int hybrid_embed_aggregate(AioBackend *be, aio_handle_t *out)
{
    if (!atomic_load_explicit(&be->epoll_mode, memory_order_relaxed) && !be->epoll_failed) {
        switch_to_epoll(be);
    }
    if (!atomic_load_explicit(&be->epoll_mode, memory_order_relaxed)) {
        return -ENOTSUP; /* the core falls back to the descriptor set */
    }
    aio__epoll_set_embedded(&be->ep, true);
    aio__kick_pin_fd(&be->kick); /* the host polls epfd, which holds the eventfd */
    *out = be->ep.epfd;
    return 0;
}

/* Only ever after hybrid_embed_aggregate succeeded, so in epoll mode. */
static void hybrid_embed_release(AioBackend *be)
{
    aio__epoll_set_embedded(&be->ep, false);
    aio__kick_unpin_fd(&be->kick);
}

static bool hybrid_embed_busy(AioBackend *be)
{
    return atomic_load_explicit(&be->epoll_mode, memory_order_acquire) &&
           atomic_load_explicit(&be->ep.nalways, memory_order_relaxed) > 0;
}

static const char *hybrid_current_name(AioBackend *be)
{
    return atomic_load_explicit(&be->epoll_mode, memory_order_relaxed) ? "epoll"
                                                                        : "eventfd+ppoll";
}
#endif

#if AIOPOLL_HAVE_EVENTFD && AIOPOLL_HAVE_PPOLL
static AioBackend *ppoll_create(void)
{
    AioBackend *be = create_common(false, true);
#if HYBRID
    if (be) {
        be->threshold = threshold_from_env();
        atomic_init(&be->epoll_mode, false);
    }
#endif
    return be;
}

const AioBackendOps aio__backend_ppoll = {
    .name = "eventfd+ppoll",
    .create = ppoll_create,
    .destroy = poll_destroy,
    .kick = poll_kick,
#if HYBRID
    .clear_kick = hybrid_clear_kick,
    .watch = hybrid_watch,
    .unwatch = hybrid_unwatch,
    .current_name = hybrid_current_name,
    .forked = hybrid_forked,
    .embed_aggregate = hybrid_embed_aggregate,
    .embed_busy = hybrid_embed_busy,
    .embed_release = hybrid_embed_release,
#else
    .clear_kick = poll_clear_kick,
#endif
    .embed_kick_handle = poll_embed_kick_handle,
    .wait = poll_wait,
    .waitset_fini = poll_waitset_fini,
};
#endif

static AioBackend *pipe_poll_create(void)
{
    return create_common(true, false);
}

const AioBackendOps aio__backend_pipe_poll = {
    .name = "pipe+poll",
    .create = pipe_poll_create,
    .destroy = poll_destroy,
    .kick = poll_kick,
    .clear_kick = poll_clear_kick,
    .wait = poll_wait,
    .waitset_fini = poll_waitset_fini,
    .embed_kick_handle = poll_embed_kick_handle,
};
