/* SPDX-License-Identifier: MIT */
/* The POSIX implementation of platform.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "platform.h"
#include "posix-internal.h"

void aio__mutex_init(aio_mutex_t *m)
{
    pthread_mutex_init(m, NULL);
}

void aio__mutex_destroy(aio_mutex_t *m)
{
    pthread_mutex_destroy(m);
}

void aio__mutex_lock(aio_mutex_t *m)
{
    pthread_mutex_lock(m);
}

bool aio__mutex_trylock(aio_mutex_t *m)
{
    return pthread_mutex_trylock(m) == 0;
}

void aio__mutex_unlock(aio_mutex_t *m)
{
    pthread_mutex_unlock(m);
}

uint64_t aio__thread_id(void)
{
    /* A counter rather than pthread_self(): pthread_t is opaque (a struct on
     * some systems), and these ids are never reused within a process. */
    static atomic_uint_fast64_t next_id = 1;
    static _Thread_local uint64_t id;
    if (id == 0) {
        id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    }
    return id;
}

int64_t aio__clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int aio__check_fd(aio_fd_t fd)
{
    if (fd < 0) {
        return -EINVAL;
    }
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
        return -EBADF;
    }
    return 0;
}

void aio__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

const char *aio__backend_env(void)
{
    const char *v = getenv("AIOPOLL_BACKEND");
    return v && *v ? v : NULL;
}

int aio__timeout_ms_ceil(int64_t timeout_ns)
{
    if (timeout_ns < 0) {
        return -1;
    }
    int64_t ms = timeout_ns / 1000000 + (timeout_ns % 1000000 != 0);
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}
