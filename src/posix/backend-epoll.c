/* SPDX-License-Identifier: MIT */
/*
 * The epoll engine and the "epoll" backend (Linux).
 *
 * Registration follows the core's watch()/unwatch() calls, which come under
 * the context's list lock; the kernel keeps the interest list, so a wait costs
 * the same with 1 or 10000 idle descriptors. Several threads may wait on the
 * one epoll set at once (the home thread asleep, others polling with timeout
 * 0): level-triggered delivery lets each of them see a ready descriptor, and
 * every per-call array lives in the caller's AioPollSet.
 *
 * Event data is the AioSource pointer, but wait() dereferences only pointers
 * that are in the caller's snapshot (a hash of it is kept in the scratch),
 * because those are the sources guaranteed alive until the caller's poll
 * ends. Anything else is skipped: a source registered after the snapshot
 * (the core notifies, so a blocking poll comes round and picks it up), or a
 * registration the kernel kept after the user closed a descriptor whose file
 * lives on elsewhere (dup, fork) and that EPOLL_CTL_DEL can therefore no
 * longer name. The latter is a kernel limitation shared by every epoll user;
 * remove handlers before closing descriptors that are shared.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "aio-internal.h"
#include "epoll-internal.h"
#include "posix-internal.h"

/* ---- the engine ----------------------------------------------------------- */

int aio__epoll_open(AioEpoll *ep, int wake_fd)
{
    ep->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ep->epfd < 0) {
        return -errno;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = ep};
    if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, wake_fd, &ev) < 0) {
        int err = -errno;
        close(ep->epfd);
        ep->epfd = -1;
        return err;
    }
    atomic_store_explicit(&ep->nregistered, 1, memory_order_relaxed);
    return 0;
}

void aio__epoll_close(AioEpoll *ep)
{
    if (ep->epfd >= 0) {
        close(ep->epfd);
    }
    ep->epfd = -1;
}

static uint32_t interest(const AioSource *src)
{
    return (src->io_read ? EPOLLIN : 0u) | (src->io_write ? EPOLLOUT : 0u);
}

int aio__epoll_add(AioEpoll *ep, AioEpollReg *reg)
{
    AioSource *src = reg->src;
    reg->fd = -1;
    reg->dup = false;
    uint32_t events = interest(src);
    if (!events) {
        return 0;
    }
    struct epoll_event ev = {.events = events, .data.ptr = src};
    int fd = aio__source_fd(src);
    if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, fd, &ev) == 0) {
        reg->fd = fd;
    } else if (errno == EEXIST) {
        /* The same (file, descriptor) pair is already in the set under
         * another source: an fd handler on an event notifier's descriptor.
         * The kernel keys registrations by descriptor number too, so a
         * private duplicate gets its own. */
        int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (dfd < 0) {
            return -errno;
        }
        if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, dfd, &ev) < 0) {
            int err = -errno;
            close(dfd);
            return err;
        }
        reg->fd = dfd;
        reg->dup = true;
    } else {
        return -errno;
    }
    atomic_fetch_add_explicit(&ep->nregistered, 1, memory_order_relaxed);
    return 0;
}

void aio__epoll_del(AioEpoll *ep, AioEpollReg *reg)
{
    if (reg->fd < 0) {
        return;
    }
    /* EBADF/ENOENT: the user closed the descriptor first (allowed), and
     * closing removed the registration already, unless the file is still
     * open elsewhere (see the top of this file). */
    (void)epoll_ctl(ep->epfd, EPOLL_CTL_DEL, reg->fd, NULL);
    if (reg->dup) {
        close(reg->fd);
    }
    reg->fd = -1;
    reg->dup = false;
    atomic_fetch_sub_explicit(&ep->nregistered, 1, memory_order_relaxed);
}

static size_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 29;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 32;
    return (size_t)x;
}

static int build_hash(AioPollSet *set, AioEpollScratch *sc)
{
    size_t size = 16;
    while (size < 2 * set->n) {
        size *= 2;
    }
    if (!sc->hash || sc->hash_mask + 1 != size) {
        AioSource **h = malloc(size * sizeof(*h));
        if (!h) {
            return -ENOMEM;
        }
        free(sc->hash);
        sc->hash = h;
        sc->hash_mask = size - 1;
    }
    for (size_t i = 0; i < size; i++) {
        sc->hash[i] = NULL;
    }
    for (size_t i = 0; i < set->n; i++) {
        size_t j = ptr_hash(set->srcs[i]) & sc->hash_mask;
        while (sc->hash[j]) {
            j = (j + 1) & sc->hash_mask;
        }
        sc->hash[j] = set->srcs[i];
    }
    sc->generation = set->generation;
    sc->valid = true;
    return 0;
}

static bool in_snapshot(const AioEpollScratch *sc, const AioSource *src)
{
    for (size_t j = ptr_hash(src) & sc->hash_mask;; j = (j + 1) & sc->hash_mask) {
        if (sc->hash[j] == src) {
            return true;
        }
        if (!sc->hash[j]) {
            return false;
        }
    }
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
        int r = epoll_pwait2(epfd, evs, max, &ts, NULL);
        if (r >= 0 || errno != ENOSYS) {
            return r;
        }
        atomic_store_explicit(&have_pwait2, false, memory_order_relaxed);
    }
#endif
    /* 0 and -1 need no conversion; anything else is rounded up to whole
     * milliseconds so that no timer fires early. */
    return epoll_wait(epfd, evs, max, aio__timeout_ms_ceil(timeout_ns));
}

int aio__epoll_wait(AioEpoll *ep, AioPollSet *set, AioEpollScratch *sc, int64_t timeout_ns,
                    bool with_kick, bool *kicked)
{
    *kicked = false;
    set->nready = 0;
    if (!sc->valid || sc->generation != set->generation) {
        int err = build_hash(set, sc);
        if (err) {
            return err;
        }
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
        void *evs = realloc(sc->events, cap * sizeof(struct epoll_event));
        if (!evs) {
            return -ENOMEM;
        }
        sc->events = evs;
        sc->events_cap = cap;
    }
    int max = sc->events_cap > INT32_MAX ? INT32_MAX : (int)sc->events_cap;
    struct epoll_event *evs = sc->events;
    int r = do_epoll_wait(ep->epfd, evs, max, timeout_ns);
    if (r < 0) {
        return errno == EINTR ? 0 : -errno;
    }
    for (int i = 0; i < r; i++) {
        void *p = evs[i].data.ptr;
        if (p == ep) {
            /* The wake-up eventfd: only a blocking wait may report it. It
             * is not read here either way. */
            *kicked |= with_kick;
            continue;
        }
        AioSource *src = p;
        if (!in_snapshot(sc, src)) {
            continue;
        }
        uint32_t re = evs[i].events;
        unsigned ev = 0;
        if (src->io_read && (re & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))) {
            ev |= AIO_EV_READ;
        }
        if (src->io_write && (re & (EPOLLOUT | EPOLLERR))) {
            ev |= AIO_EV_WRITE;
        }
        /* Each registration is reported at most once per call and every
         * one that passes the check is in the snapshot: at most set->n. */
        if (ev && set->nready < set->n) {
            set->ready[set->nready].src = src;
            set->ready[set->nready].events = ev;
            set->nready++;
        }
    }
    return 0;
}

void aio__epoll_scratch_fini(AioEpollScratch *sc)
{
    free(sc->events);
    free(sc->hash);
    *sc = (AioEpollScratch){0};
}

/* ---- the "epoll" backend ---------------------------------------------------- */

struct AioBackend {
    AioEventNotifier wake; /* an eventfd */
    AioEpoll ep;
};

static AioBackend *epoll_create_be(void)
{
    AioBackend *be = calloc(1, sizeof(*be));
    if (!be) {
        errno = ENOMEM;
        return NULL;
    }
    int err = aio__notifier_open(&be->wake, false, false);
    if (!err) {
        err = aio__epoll_open(&be->ep, be->wake.rfd);
        if (err) {
            aio__notifier_close(&be->wake);
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
    aio__notifier_close(&be->wake);
    free(be);
}

static void epoll_kick(AioBackend *be)
{
    aio__notifier_set(&be->wake);
}

static void epoll_clear_kick(AioBackend *be)
{
    aio__notifier_test_and_clear(&be->wake);
}

static int epoll_watch(AioBackend *be, AioSource *src)
{
    AioEpollReg *reg = malloc(sizeof(*reg));
    if (!reg) {
        return -ENOMEM;
    }
    reg->src = src;
    int err = aio__epoll_add(&be->ep, reg);
    if (err) {
        free(reg);
        return err;
    }
    src->backend_data = reg;
    return 0;
}

static void epoll_unwatch(AioBackend *be, AioSource *src)
{
    AioEpollReg *reg = src->backend_data;
    if (reg) {
        aio__epoll_del(&be->ep, reg);
        free(reg);
        src->backend_data = NULL;
    }
}

static int epoll_be_wait(AioBackend *be, AioPollSet *set, int64_t timeout_ns, bool with_kick,
                         bool *kicked)
{
    if (!set->scratch) {
        set->scratch = calloc(1, sizeof(AioEpollScratch));
        if (!set->scratch) {
            *kicked = false;
            set->nready = 0;
            return -ENOMEM;
        }
    }
    return aio__epoll_wait(&be->ep, set, set->scratch, timeout_ns, with_kick, kicked);
}

static void epoll_pollset_fini(AioBackend *be, AioPollSet *set)
{
    (void)be;
    if (set->scratch) {
        aio__epoll_scratch_fini(set->scratch);
        free(set->scratch);
        set->scratch = NULL;
    }
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
    .pollset_fini = epoll_pollset_fini,
};
