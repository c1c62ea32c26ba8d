/* SPDX-License-Identifier: MIT */
/*
 * The wake-up object of the eventfd backends ("eventfd+ppoll" and "epoll"):
 * an eventfd, and on Linux a futex word beside it (docs/wakeup-protocol.md,
 * "Sleeping on a futex").
 *
 * A blocking poll that watches nothing (a context that only runs bottom
 * halves and timers, the IOThread case) has no descriptor to wait on but the
 * eventfd, and an eventfd costs the sleeper a ppoll/epoll_wait plus a read
 * to clear it. Such a wait sleeps on the word instead (FUTEX_WAIT), and a
 * kick that finds it there costs one FUTEX_WAKE and the clear a store: the
 * system calls of a bare futex hand-off. A wait that watches descriptors, or
 * whose context is embedded in a host loop that polls the eventfd, waits on
 * the eventfd as before.
 *
 * Which of the two the home thread looks at is published in 'on'. The kick
 * stores the word and then reads 'on'; a wait stores 'on' and then reads the
 * word. Both pairs are seq_cst (Dekker's pattern again), so a kick that read
 * the old place is seen by the new place's first look at the word, and a
 * wait that moved after reading 0 is found by the kick in its new place.
 * The word is therefore "kicked since the last clear" whatever the place,
 * and the eventfd only ever holds kicks made while the home thread looked
 * there (plus, after a move, one kick that read the old place: a spurious
 * wake-up of a later eventfd wait, never a lost one).
 *
 * The model: docs/model/wakeup.pml, -DFUTEX_KICK.
 */
#ifndef AIOPOLL_POSIX_KICK_H
#define AIOPOLL_POSIX_KICK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "posix-internal.h"

enum {
    AIO_KICK_ON_FD = 0,   /* the home thread's waits look at the eventfd */
    AIO_KICK_ON_WORD = 1, /* ... at the futex word */
};

typedef struct AioKick {
    AioEventNotifier fd; /* what ppoll, epoll and a host loop see */
    /* 1 from a kick until the home thread's clear: the futex word. */
    _Atomic uint32_t word;
    /* AIO_KICK_ON_*: written by the home thread's waits, read by kicks. */
    atomic_uint on;
    /* The word may be slept on: the system has futexes, the backend wants
     * them (word_wanted), and no host loop polls the eventfd
     * (aio__kick_pin_fd). */
    atomic_bool word_usable;
    bool word_wanted;
} AioKick;

/* Opens k; use_word: waits that watch nothing may sleep on the word (where
 * the system has futexes). 0 or a negative errno. */
int aio__kick_open(AioKick *k, bool use_pipe, bool use_word);
void aio__kick_close(AioKick *k);

/* ops->kick(): any thread, async-signal-safe. */
void aio__kick_signal(AioKick *k);

/* Home thread: whether a wait with the kick that watches nothing should
 * sleep on the word (aio__kick_wait_word) rather than on the eventfd. */
static inline bool aio__kick_use_word(AioKick *k)
{
    return atomic_load_explicit(&k->word_usable, memory_order_relaxed);
}

/* Home thread, a wait with the kick on the word: sleeps until a kick, a
 * signal or timeout_ns (-1 forever, 0 do not sleep). 0 or a negative errno. */
int aio__kick_wait_word(AioKick *k, int64_t timeout_ns, bool *kicked);

/* Home thread, before a wait with the kick on the eventfd: moves the home
 * thread's look there. Returns true when a kick came since the last clear,
 * which may have gone to the word: the wait must not sleep, and reports the
 * kick. */
bool aio__kick_look_at_fd(AioKick *k);

/* Home thread, clear_kick(): the kick is consumed. Returns true when the
 * waits look at the eventfd, which the backend then clears its own way (a
 * read for ppoll, nothing or an occasional read for epoll's edge). */
bool aio__kick_clear(AioKick *k);

/* Home thread (aio_embed_attach, list lock held): a host loop polls the
 * eventfd from now on, so every kick must reach it. A kick that went to the
 * word before is moved onto the eventfd. aio__kick_unpin_fd (any thread,
 * list lock held): the host is gone. */
void aio__kick_pin_fd(AioKick *k);
void aio__kick_unpin_fd(AioKick *k);

#endif
