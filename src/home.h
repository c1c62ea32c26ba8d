/* SPDX-License-Identifier: MIT */
/*
 * The home word: which thread a context belongs to, and how many blocking
 * polls (and attached host loops, src/embed.c) are in progress there, in one
 * atomic word.
 *
 * Why one word: aio_context_set_home_thread() must not move the context
 * from under a blocking poll (two threads blocking at once steal each
 * other's wake-ups), so "am I home" and "I am now blocking" must be one
 * step. A mutex made them one (two lock/unlock pairs per blocking poll); a
 * compare-and-swap of both halves at once makes them one with a single
 * uncontended read-modify-write on entry and one on leave, and no lock.
 *
 * Thread ids are aio__thread_id()'s counter, never reused within a process;
 * AIO_HOME_ID_BITS of them last a process creating a thread every
 * microsecond for 200 days. An id that does not fit is refused, never
 * truncated: a truncated id could alias another thread's.
 */
#ifndef AIOPOLL_HOME_H
#define AIOPOLL_HOME_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define AIO_HOME_DEPTH_BITS 20
#define AIO_HOME_ID_BITS (64 - AIO_HOME_DEPTH_BITS)
#define AIO_HOME_DEPTH_MAX ((UINT64_C(1) << AIO_HOME_DEPTH_BITS) - 1)
#define AIO_HOME_ID_MAX ((UINT64_C(1) << AIO_HOME_ID_BITS) - 1)

static inline uint64_t aio__home_id(uint64_t word)
{
    return word >> AIO_HOME_DEPTH_BITS;
}

static inline uint64_t aio__home_depth(uint64_t word)
{
    return word & AIO_HOME_DEPTH_MAX;
}

/* Whether `self` fits the word's id half (aio_context_new refuses a
 * thread whose id does not, as aio__home_set does). */
static inline bool aio__home_id_fits(uint64_t self)
{
    return self <= AIO_HOME_ID_MAX;
}

/* The word of a context owned by `self` with nothing blocking. */
static inline uint64_t aio__home_make(uint64_t self)
{
    return self << AIO_HOME_DEPTH_BITS;
}

static inline bool aio__home_is(_Atomic uint64_t *home, uint64_t self)
{
    /* Relaxed is enough for the answer itself: only `self` can make it
     * true (set_home_thread runs on the thread it names), so a stale value
     * can only be another id, and callers that then touch home-thread
     * state order that through aio__home_enter or the dispatch right. */
    return aio__home_id(atomic_load_explicit(home, memory_order_relaxed)) == self;
}

/* Enters a blocking poll (or attaches a host loop): true when `self` is
 * home, and then the depth counts it until aio__home_leave. Acquire: the
 * thread that was home before a set_home_thread() released what it did
 * with the context's home-thread state when it left (or never entered),
 * and set_home_thread's exchange carried that on to this thread. */
static inline bool aio__home_enter(_Atomic uint64_t *home, uint64_t self)
{
    uint64_t w = atomic_load_explicit(home, memory_order_relaxed);
    do {
        if (aio__home_id(w) != self || aio__home_depth(w) == AIO_HOME_DEPTH_MAX) {
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(home, &w, w + 1, memory_order_acquire,
                                                    memory_order_relaxed));
    return true;
}

/* Release: pairs with the next owner's set_home_thread (above). */
static inline void aio__home_leave(_Atomic uint64_t *home)
{
    atomic_fetch_sub_explicit(home, 1, memory_order_release);
}

/* Makes `self` home: 0, or -EBUSY while a blocking poll of another thread
 * is in progress, or -EOVERFLOW for an id that does not fit. The depth
 * carries over when self is already home (a set from inside its own
 * callback). acq_rel: acquires the old owner's leave, releases to this
 * thread's later enters and to whoever takes the context next. */
static inline int aio__home_set(_Atomic uint64_t *home, uint64_t self)
{
    if (!aio__home_id_fits(self)) {
        return -EOVERFLOW;
    }
    uint64_t w = atomic_load_explicit(home, memory_order_relaxed);
    uint64_t next;
    do {
        if (aio__home_id(w) != self && aio__home_depth(w) > 0) {
            return -EBUSY;
        }
        next = aio__home_make(self) | (aio__home_id(w) == self ? aio__home_depth(w) : 0);
    } while (!atomic_compare_exchange_weak_explicit(home, &w, next, memory_order_acq_rel,
                                                    memory_order_relaxed));
    return 0;
}

#endif
