/* SPDX-License-Identifier: MIT */
/*
 * The epoll engine (backend-epoll.c), shared by the "epoll" backend and by
 * "eventfd+ppoll", which switches to it when many descriptors are watched.
 * Linux only.
 */
#ifndef AIOPOLL_EPOLL_INTERNAL_H
#define AIOPOLL_EPOLL_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "kick.h"
#include "platform.h"

/*
 * One kernel epoll set holding the watched descriptors and the wake-up
 * eventfd.
 *
 * Event data is the watch's id (never 0, never reused) and 0 for the
 * wake-up eventfd. Each watch's descriptor is the context's private
 * duplicate, so EPOLL_CTL_DEL always names it, and after unwatch() returns
 * the kernel delivers nothing for it; an event fetched just before can only
 * carry an id that the core no longer resolves.
 *
 * Wake-up design: the wake-up eventfd is in epfd only, edge-triggered, so
 * the wait that fetches its edge has consumed the kick and accepting needs no
 * read(): a cross-thread wake-up is one write() and one epoll_wait(). An edge
 * is delivered once, to whichever wait fetches it, so the class "another
 * wait takes the edge the sleeper needs" (QEMU's 2018 hang in another form)
 * is excluded by construction: waits without the kick (with_kick false:
 * every non-blocking poll, on any thread, the home thread's too) wait on
 * side_epfd, a second set with the same watches and no eventfd, and only the
 * home thread's blocking polls wait on epfd. The cost is one more epoll_ctl
 * per registration change and one more descriptor per context. The counter
 * of the never-read eventfd is drained every AIO_EPOLL_DRAIN_EVERY accepted
 * kicks (aio__epoll_clear_kick).
 *
 * Descriptors epoll refuses (EPERM: regular files, directories, /dev/null)
 * are what poll() calls always ready; the engine keeps their ids in a list
 * and reports them ready on every wait, so every backend agrees
 * (docs/design.md, "Descriptors that cannot be polled").
 */
#define AIO_EPOLL_DRAIN_EVERY 4096

typedef struct AioEpoll {
    int epfd;                  /* -1 until opened; watches + the kick (ET) */
    int side_epfd;             /* the same watches, no kick: with_kick false */
    unsigned kicks_undrained;  /* accepted kicks since the last read; home thread */
    atomic_size_t nregistered; /* descriptors in the set, wake-up included */
    bool forked;               /* a child's copy: never touch the set */
    /* epfd is a host loop's aggregate (aio__epoll_set_embedded): accepting
     * reads the eventfd again. Home thread. */
    atomic_bool embedded;

    /* Always-ready watches: written in add/del (under the context's list
     * lock), read by waits on any thread, hence the engine's own lock. */
    aio_mutex_t always_lock;
    AioSourceId *always;
    size_t nalways_cap;
    atomic_size_t nalways;
} AioEpoll;

/* Per-AioWaitSet scratch: the event array. */
typedef struct AioEpollScratch {
    void *events; /* struct epoll_event[] */
    size_t events_cap;
} AioEpollScratch;

/* Creates the epoll set and adds wake_fd (the kick eventfd) to it. 0 or -errno. */
int aio__epoll_open(AioEpoll *ep, int wake_fd);
void aio__epoll_close(AioEpoll *ep);

/* Adds w to the set (or to the always-ready list). 0 or -errno. */
int aio__epoll_add(AioEpoll *ep, const AioWatch *w);
/* Removes it again; cannot fail. */
void aio__epoll_del(AioEpoll *ep, const AioWatch *w);

/* clear_kick(): the home thread's blocking poll accepted a kick that a wait
 * of this engine reported. A kick taken from the futex word needs nothing
 * more; one from the eventfd no system call either, but now and then a
 * read that keeps its counter bounded. */
void aio__epoll_clear_kick(AioEpoll *ep, AioKick *kick);
/* epfd becomes a host loop's aggregate, until the engine is closed. */
/* on: a host loop now polls epfd (embed_aggregate, home thread); off: it is
 * gone (embed_release, any thread). */
void aio__epoll_set_embedded(AioEpoll *ep, bool on);

/* Waits on the set: the wait() backend op. A wait with the kick that
 * watches nothing sleeps on kick's futex word instead (kick.h); kick's
 * eventfd is the one the set holds. */
int aio__epoll_wait(AioEpoll *ep, AioKick *kick, AioWaitSet *set, AioEpollScratch *sc,
                    int64_t timeout_ns, bool with_kick, bool *kicked);
void aio__epoll_scratch_fini(AioEpollScratch *sc);

#endif
