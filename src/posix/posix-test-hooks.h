/* SPDX-License-Identifier: MIT */
/*
 * Test builds only (AIOPOLL_TEST_HOOKS): a hold point inside the eventfd
 * backends' kick (src/posix/kick.c), between its two halves, so that
 * tests/test_kick.c can force the interleavings between a kick and a home
 * thread that moves between the futex word and the eventfd instead of
 * hoping for them (docs/wakeup-protocol.md, "Sleeping on a futex"); and one
 * inside the io_uring backend's wait, between preparing and submitting
 * (tests/test_io_uring.c).
 */
#ifndef AIOPOLL_POSIX_TEST_HOOKS_H
#define AIOPOLL_POSIX_TEST_HOOKS_H

#include <aiopoll/aio.h>

#if AIOPOLL_TEST_HOOKS
/* Called by every kick of every context after the kick's first step (the
 * store of the futex word) and before its second (the look at where the
 * home thread waits). Process-wide; NULL removes it. The hook may block. */
typedef void AioKickHook(void *opaque);
AIOPOLL_API void aio__set_test_kick_hook(AioKickHook *hook, void *opaque);

/* Called by every blocking wait of every io_uring context, on the home
 * thread, after the wait prepared what it owes the kernel (the POLL_ADDs of
 * new registrations) and before the enter that submits it: a removal from
 * here on finds its poll prepared but not yet in the kernel
 * (src/posix/backend-io-uring.c). Process-wide; NULL removes it. The hook
 * may change registrations and notify. */
typedef void AioUringSubmitHook(void *opaque);
AIOPOLL_API void aio__set_test_uring_submit_hook(AioUringSubmitHook *hook, void *opaque);
#endif

#endif
