/* SPDX-License-Identifier: MIT */
/*
 * Test builds only (AIOPOLL_TEST_HOOKS): a hold point in the win32 backend's
 * embed watcher thread, so that tests/test_embed_win32.c can force the
 * interleavings between the watcher and the home thread instead of hoping
 * for them (docs/win32-backend.md, "Embedding").
 */
#ifndef AIOPOLL_WIN32_TEST_HOOKS_H
#define AIOPOLL_WIN32_TEST_HOOKS_H

#include <aiopoll/aio.h>

#if AIOPOLL_TEST_HOOKS
/* Called by every context's watcher after it scanned its sockets and found
 * nothing, right before it sleeps on its handles (what it waits on is fixed
 * by then). Process-wide; NULL removes it. The hook may block. */
typedef void AioWin32WatcherHook(void *opaque);
AIOPOLL_API void aio__win32_set_watcher_hook(AioWin32WatcherHook *hook, void *opaque);
#endif

#endif
