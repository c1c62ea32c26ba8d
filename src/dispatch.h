/* SPDX-License-Identifier: MIT */
/*
 * The dispatch right: which thread may run a context's callbacks
 * (docs/wakeup-protocol.md, "Serialising dispatch"). One word holds it:
 * 0 when free, else the holder's aio__thread_id(), plus
 * AIO_DISPATCH_WAITER when a thread waits for the holder to let go.
 *
 * Only the home thread ever waits for the right (a blocking poll, which
 * only the home thread may make, and aio_embed_dispatch, also home); every
 * other caller only tries it. So the waiter is one thread, known to be
 * nobody while the home thread itself holds the right in a blocking poll
 * or an embedded dispatch (the home cannot move under either: src/home.h).
 * That is what lets the home thread's hot path take the right with one
 * compare-and-swap and give it back with a plain store, and it is why the
 * wait needs no queue: a flag and a condition variable, touched only when
 * a non-blocking poll of another thread and the home thread overlap.
 * docs/model/dispatch.pml checks the word and the hand-off.
 */
#ifndef AIOPOLL_DISPATCH_H
#define AIOPOLL_DISPATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <aiopoll/aio.h>

/* Above every thread id (aio__thread_id() is below 2^44). */
#define AIO_DISPATCH_WAITER (UINT64_C(1) << 63)

/* The home thread, after a failed try: marks the word and sleeps until the
 * holder lets go, then takes the right. Returns holding it. */
void aio__dispatch_wait(AioContext *ctx, uint64_t self);
/* A releaser that found AIO_DISPATCH_WAITER: hands over to the waiter. */
void aio__dispatch_wake(AioContext *ctx);

static inline bool aio__dispatch_held_by(uint64_t word, uint64_t self)
{
    return (word & ~AIO_DISPATCH_WAITER) == self;
}

#endif
