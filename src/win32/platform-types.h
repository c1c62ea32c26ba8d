/* SPDX-License-Identifier: MIT */
#ifndef AIOPOLL_WIN32_PLATFORM_TYPES_H
#define AIOPOLL_WIN32_PLATFORM_TYPES_H

#include <winsock2.h>
#include <windows.h>

/* A slim reader/writer lock used in exclusive mode only: no allocation, no
 * destruction, and TryAcquireSRWLockExclusive (Windows 7) for trylock. */
typedef SRWLOCK aio_mutex_t;
/* For the core's few process-wide locks (static storage). */
#define AIO_MUTEX_INITIALIZER SRWLOCK_INIT
/* Sleeps on an aio_mutex_t (SleepConditionVariableSRW); no destruction. */
typedef CONDITION_VARIABLE aio_cond_t;
typedef HANDLE aio_thread_t;

#endif
