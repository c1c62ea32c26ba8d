/* SPDX-License-Identifier: MIT */
/* Pieces the Win32 platform layer and backend share. */
#ifndef AIOPOLL_WIN32_INTERNAL_H
#define AIOPOLL_WIN32_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <aiopoll/aio.h>

#include "aio-test-hooks.h"
#include "platform-types.h"

/*
 * An event notifier: a manual-reset Win32 event plus an atomic flag.
 *
 * The flag is the notifier's state; the event mirrors it for waiters and is
 * what aio_event_notifier_get_handle() returns. The invariant (argued in
 * event-notifier.c) is: whenever the flag is set and no set() is half-way
 * through, the event is signalled. The event may also be signalled while the
 * flag is clear ("spurious"); a waiter then runs the handler once, whose
 * test_and_clear returns false and resets the event.
 */
struct AioEventNotifier {
    HANDLE event;
    atomic_int flag;
};

/* WSAStartup(2.2) once per process, never undone. 0 or a negative errno. */
int aio__win32_winsock_init(void);

/* A relative timeout in nanoseconds (-1: forever) as milliseconds for the
 * Wait functions, rounded up so that no deadline is reached early, and capped
 * below INFINITE. */
DWORD aio__win32_timeout_ms_ceil(int64_t timeout_ns);

/* A Winsock error as a negative errno value. */
int aio__win32_wsa_errno(int wsa_error);

#endif
