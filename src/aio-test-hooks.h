/* SPDX-License-Identifier: MIT */
/*
 * Test-only hooks into the poll loop. Not part of the public API: the symbols
 * are exported so that the test suite can force the interleavings that the
 * wake-up protocol exists to survive (docs/wakeup-protocol.md), instead of
 * hoping that timing produces them. Production cost: one relaxed atomic load
 * of a pointer per blocking poll.
 */
#ifndef AIOPOLL_TEST_HOOKS_H
#define AIOPOLL_TEST_HOOKS_H

#include <aiopoll/aio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum AioHookPoint {
    /* Blocking poll, home thread: the poller has announced itself (the
     * "about to block" counter is raised), has checked for pending work and
     * computed its timeout, and is about to enter the backend's sleep
     * (ppoll / poll / epoll_wait / WaitForMultipleObjects). A notification
     * that arrives from here on must still end the sleep. */
    AIO_HOOK_BEFORE_SLEEP,
    /* Blocking poll, home thread: the backend's sleep returned; the poller
     * has not yet lowered the counter nor accepted the wake-up. */
    AIO_HOOK_AFTER_SLEEP,
    /* Non-blocking poll, any thread: it holds the dispatch right (so a home
     * thread that wants to dispatch now waits for it) and is about to look
     * for ready handlers. */
    AIO_HOOK_NONBLOCKING_DISPATCH,
} AioHookPoint;

typedef void AioTestHook(AioContext *ctx, AioHookPoint point, void *opaque);

/* Installs (or with NULL removes) the hook of ctx. Call it while no thread
 * polls ctx. The hook runs on the polling thread with no aiopoll mutex held
 * (only the dispatch right, at AIO_HOOK_NONBLOCKING_DISPATCH), so it may block
 * on a barrier and may call aio_notify() or aio_poll(ctx, false) itself. */
AIOPOLL_API void aio__set_test_hook(AioContext *ctx, AioTestHook *hook, void *opaque);

#ifdef __cplusplus
}
#endif

#endif
