/* SPDX-License-Identifier: MIT */
/*
 * Test-only knobs of the poll loop. Not part of the public API, and not part
 * of the installed library at all: they exist only when the library is built
 * with AIOPOLL_TEST_HOOKS=1, which only the test suite's copy of it
 * (aiopoll_testing, see CMakeLists.txt) is. They let the tests force the
 * interleavings that the wake-up protocol exists to survive
 * (docs/wakeup-protocol.md) instead of hoping that timing produces them, put
 * the timers on a clock the test controls, and make the backend's wait fail.
 * In the installed library every hook call compiles to nothing.
 */
#ifndef AIOPOLL_TEST_HOOKS_H
#define AIOPOLL_TEST_HOOKS_H

#include <aiopoll/aio.h>

#ifndef AIOPOLL_TEST_HOOKS
#define AIOPOLL_TEST_HOOKS 0
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum AioHookPoint {
    /* Blocking poll, home thread: the poller has announced itself (the
     * "about to block" counter is raised), has checked for pending work and
     * computed its timeout, and is about to enter the backend's sleep
     * (ppoll / poll / epoll_wait / WaitForMultipleObjects). A notification
     * that arrives from here on must still end the sleep. The outermost poll
     * no longer holds the dispatch right here when it is going to sleep.
     * Also at the end of aio_embed_prepare(): the host loop's sleep follows. */
    AIO_HOOK_BEFORE_SLEEP,
    /* Blocking poll, home thread: the backend's sleep returned (or was
     * skipped because the poll had nothing to sleep for); the poller has not
     * yet lowered the counter nor accepted the wake-up. Also at the start of
     * aio_embed_check(), after the host loop's sleep. */
    AIO_HOOK_AFTER_SLEEP,
    /* Non-blocking poll, any thread: it holds the dispatch right (so a home
     * thread that wants to dispatch now waits for it) and is about to look
     * for ready handlers. */
    AIO_HOOK_NONBLOCKING_DISPATCH,
} AioHookPoint;

typedef void AioTestHook(AioContext *ctx, AioHookPoint point, void *opaque);
/* A replacement for the monotonic clock of a context's timers. */
typedef int64_t AioTestClock(void *opaque);

#if AIOPOLL_TEST_HOOKS

/* Installs (or with NULL removes) the hook of ctx. Call it while no thread
 * polls ctx. The hook runs on the polling thread with no aiopoll mutex held
 * (only the dispatch right, at AIO_HOOK_NONBLOCKING_DISPATCH), so it may block
 * on a barrier and may call aio_notify() or aio_poll(ctx, false) itself. */
AIOPOLL_API void aio__set_test_hook(AioContext *ctx, AioTestHook *hook, void *opaque);

/* Puts ctx's timers on clock(opaque) instead of aio_clock_ns() (NULL: back
 * to it): deadlines are compared with it, and a blocking poll's timeout is
 * computed from it (the sleep itself is real time). aio_clock_ns() and
 * adaptive polling keep the real clock. Call it while no thread polls ctx. */
AIOPOLL_API void aio__set_test_clock(AioContext *ctx, AioTestClock *clock, void *opaque);

/* From now on every wait of ctx's backend fails with err (a negative errno)
 * without waiting; 0 restores real waits. Any thread. */
AIOPOLL_API void aio__set_test_wait_error(AioContext *ctx, int err);

#endif

#ifdef __cplusplus
}
#endif

/* ---- Inside the library ------------------------------------------------- */
#ifdef AIOPOLL_BUILDING
#include <stdatomic.h>

#include "platform.h"

#if AIOPOLL_TEST_HOOKS
/* Embedded in struct AioContext. */
typedef struct AioTestState {
    _Atomic(AioTestHook *) hook;
    void *hook_opaque;
    _Atomic(AioTestClock *) clock;
    void *clock_opaque;
    atomic_int wait_error;
} AioTestState;

void aio__call_hook(AioContext *ctx, AioHookPoint point);
int64_t aio__timers_now(AioContext *ctx);
int aio__test_wait_error(AioContext *ctx);
#else
static inline void aio__call_hook(AioContext *ctx, AioHookPoint point)
{
    (void)ctx;
    (void)point;
}

static inline int64_t aio__timers_now(AioContext *ctx)
{
    (void)ctx;
    return aio__clock_ns();
}

static inline int aio__test_wait_error(AioContext *ctx)
{
    (void)ctx;
    return 0;
}
#endif
#endif /* AIOPOLL_BUILDING */

#endif
