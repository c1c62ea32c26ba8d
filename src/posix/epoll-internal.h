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

/*
 * One kernel epoll set holding the watched sources and the wake-up eventfd.
 *
 * Wake-up design: the eventfd is in the same set, tagged with a pointer that
 * is no source (the AioEpoll itself). Level-triggered epoll_wait() never
 * reads or resets a descriptor, so a wait that sees the tag consumes nothing;
 * a non-blocking wait (with_kick false) simply skips the tag and never
 * reports it, and only a blocking poll's clear_kick() reads the eventfd. That
 * keeps a cross-thread wake-up at one epoll_wait() and one read(), the same
 * system calls as the eventfd+ppoll floor; the alternatives (a second epoll
 * set nesting this one, or ppoll on {epfd, eventfd}) need a second wait for
 * every descriptor event. docs/performance.md has the measurements.
 */
typedef struct AioEpoll {
    int epfd;                    /* -1 until opened */
    atomic_size_t nregistered;   /* descriptors in the set, wake-up included */
} AioEpoll;

/* Per-registration state, owned by the backend between watch and unwatch and
 * touched only under the context's list lock (never by wait()). */
typedef struct AioEpollReg {
    AioSource *src;
    int fd;        /* the descriptor in the epoll set (a dup on collision), -1 if none */
    bool dup;      /* fd is our own dup and must be closed */
    size_t index;  /* position in the hybrid backend's watched array */
} AioEpollReg;

/* Per-AioPollSet scratch: the event array and a hash of the snapshot, so that
 * only sources of this caller's snapshot (which are guaranteed alive) are
 * ever dereferenced. */
typedef struct AioEpollScratch {
    void *events; /* struct epoll_event[] */
    size_t events_cap;
    AioSource **hash; /* open addressing, power-of-two size, NULL = empty */
    size_t hash_mask;
    unsigned generation;
    bool valid;
} AioEpollScratch;

/* Creates the epoll set and adds wake_fd (the kick eventfd) to it. 0 or -errno. */
int aio__epoll_open(AioEpoll *ep, int wake_fd);
void aio__epoll_close(AioEpoll *ep);

/* Adds reg->src (reg->src set by the caller) to the set. A source with no
 * read/write interest is not added (its POLLHUP would end every sleep) but
 * succeeds. 0 or -errno (-EPERM: the descriptor does not support epoll, e.g.
 * a regular file). */
int aio__epoll_add(AioEpoll *ep, AioEpollReg *reg);
/* Removes it again; cannot fail (a descriptor the user already closed has
 * left the set by itself). */
void aio__epoll_del(AioEpoll *ep, AioEpollReg *reg);

/* Waits on the set: the wait() backend op. */
int aio__epoll_wait(AioEpoll *ep, AioPollSet *set, AioEpollScratch *sc, int64_t timeout_ns,
                    bool with_kick, bool *kicked);
void aio__epoll_scratch_fini(AioEpollScratch *sc);

#endif
