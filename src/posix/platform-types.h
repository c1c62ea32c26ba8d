/* SPDX-License-Identifier: MIT */
#ifndef AIOPOLL_POSIX_PLATFORM_TYPES_H
#define AIOPOLL_POSIX_PLATFORM_TYPES_H

#include <pthread.h>

typedef pthread_mutex_t aio_mutex_t;

#endif
