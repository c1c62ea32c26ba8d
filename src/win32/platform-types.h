/* SPDX-License-Identifier: MIT */
#ifndef AIOPOLL_WIN32_PLATFORM_TYPES_H
#define AIOPOLL_WIN32_PLATFORM_TYPES_H

#include <winsock2.h>
#include <windows.h>

/* A slim reader/writer lock used in exclusive mode only: no allocation, no
 * destruction, and TryAcquireSRWLockExclusive (Windows 7) for trylock. */
typedef SRWLOCK aio_mutex_t;

#endif
