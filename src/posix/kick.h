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
 * Where the home thread waits is published in 'on': the word, the eventfd,
 * or neither (awake, between waits). The kick stores the word and then
 * reads 'on', and makes a system call only for a place somebody waits at;
 * a wait stores its place and then reads the word. Both pairs are seq_cst
 * (Dekker's pattern again), so either the kick sees the place, or the wait
 * sees the word and does not sleep. The word is therefore "kicked since the
 * last clear" whatever the place, and a kick onto an awake loop costs the
 * kicker no system call at all (a notification flood against a loop that
 * keeps coming round: each FUTEX_WAKE there would stall the notifier for a
 * microsecond, which lets the loop find nothing new and try to sleep again,
 * which invites the next kick). The eventfd only ever holds kicks made
 * while the home thread waited there (plus, after the wait ended, at most
 * one kick that read "eventfd" late: a spurious wake-up of a later eventfd
 * wait, never a lost one).
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
    AIO_KICK_AWAKE = 0,   /* the home thread is between waits */
    AIO_KICK_ON_FD = 1,   /* it waits on the eventfd */
    AIO_KICK_ON_WORD = 2, /* it waits on the futex word */
};

typedef struct AioKick {
    AioEventNotifier fd; /* what ppoll, epoll and a host loop see */
    /* 1 from a kick until the home thread's clear: the futex word. */
    _Atomic uint32_t word;
    /* AIO_KICK_*: written by the home thread's waits, read by kicks. */
    atomic_uint on;
    /* The word may be slept on, and the home thread may be "awake": the
     * system has futexes, the backend wants them (word_wanted), and no host
     * loop polls the eventfd (aio__kick_pin_fd). */
    atomic_bool word_usable;
    bool word_wanted;
    bool last_fd; /* home thread: the last wait with the kick was on the eventfd */
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

/* Home thread, around a wait with the kick on the eventfd. enter publishes
 * the place and returns true when a kick came since the last clear (it may
 * have found the home thread awake, or at the word): the wait must not
 * sleep, and reports the kick. leave, right after the wait, publishes that
 * the home thread is awake again. */
bool aio__kick_enter_fd(AioKick *k);
void aio__kick_leave_fd(AioKick *k);

/* Home thread, clear_kick(): the kick is consumed. Returns true when the
 * last wait was on the eventfd, which the backend then clears its own way
 * (a read for ppoll, nothing or an occasional read for epoll's edge). */
bool aio__kick_clear(AioKick *k);

/* Home thread (aio_embed_attach, list lock held): a host loop polls the
 * eventfd from now on, so every kick must reach it: the place stays "the
 * eventfd" whatever the waits do, and a kick that went elsewhere before is
 * moved onto it. aio__kick_unpin_fd (any thread, list lock held): the host
 * is gone. */
void aio__kick_pin_fd(AioKick *k);
void aio__kick_unpin_fd(AioKick *k);

#endif
