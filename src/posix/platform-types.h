/* SPDX-License-Identifier: MIT */
#ifndef AIOPOLL_POSIX_PLATFORM_TYPES_H
#define AIOPOLL_POSIX_PLATFORM_TYPES_H

#include <pthread.h>

typedef pthread_mutex_t aio_mutex_t;
/* For the core's few process-wide locks (static storage). */
#define AIO_MUTEX_INITIALIZER PTHREAD_MUTEX_INITIALIZER
typedef pthread_cond_t aio_cond_t;
typedef pthread_t aio_thread_t;

#endif
