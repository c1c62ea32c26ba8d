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
 * Wake-up design: level-triggered epoll_wait() never reads or resets a
 * descriptor, so a wait that sees id 0 consumes nothing; a non-blocking wait
 * (with_kick false) skips it, and only a blocking poll's clear_kick() reads
 * the eventfd. That keeps a cross-thread wake-up at one epoll_wait() and one
 * read(), the same system calls as the eventfd+ppoll floor.
 *
 * Descriptors epoll refuses (EPERM: regular files, directories, /dev/null)
 * are what poll() calls always ready; the engine keeps their ids in a list
 * and reports them ready on every wait, so every backend agrees
 * (docs/design.md, "Descriptors that cannot be polled").
 */
typedef struct AioEpoll {
    int epfd;                  /* -1 until opened */
    atomic_size_t nregistered; /* descriptors in the set, wake-up included */
    bool forked;               /* a child's copy: never touch the set */

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

/* Waits on the set: the wait() backend op. */
int aio__epoll_wait(AioEpoll *ep, AioWaitSet *set, AioEpollScratch *sc, int64_t timeout_ns,
                    bool with_kick, bool *kicked);
void aio__epoll_scratch_fini(AioEpollScratch *sc);

#endif
