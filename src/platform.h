/* SPDX-License-Identifier: MIT */
/*
 * The operating-system layer under the shared core: locks, thread identity,
 * the clock, descriptor validation and event notifiers. src/posix/ and
 * src/win32/ each implement all of it; the build adds exactly one of them, and
 * that directory's platform-types.h supplies the concrete lock type, so the
 * core itself carries no platform #ifdef.
 */
#ifndef AIOPOLL_PLATFORM_H
#define AIOPOLL_PLATFORM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <aiopoll/aio.h>

#include "backend.h"        /* AioObject */
#include "platform-types.h" /* aio_mutex_t */

/* A non-recursive mutex. The core never holds one across a callback. */
void aio__mutex_init(aio_mutex_t *m);
void aio__mutex_destroy(aio_mutex_t *m);
void aio__mutex_lock(aio_mutex_t *m);
bool aio__mutex_trylock(aio_mutex_t *m);
void aio__mutex_unlock(aio_mutex_t *m);

/* A condition variable over an aio_mutex_t. timedwait returns false when
 * timeout_ns passed (it may also return true spuriously, like every wait
 * here: callers re-check their predicate). */
void aio__cond_init(aio_cond_t *c);
void aio__cond_destroy(aio_cond_t *c);
void aio__cond_wait(aio_cond_t *c, aio_mutex_t *m);
bool aio__cond_timedwait(aio_cond_t *c, aio_mutex_t *m, int64_t timeout_ns);
void aio__cond_signal(aio_cond_t *c);
void aio__cond_broadcast(aio_cond_t *c);

/* A joinable thread running fn(arg). 0 or a negative errno (-EAGAIN,
 * -ENOMEM). Every started thread is joined exactly once. */
int aio__thread_start(aio_thread_t *t, void (*fn)(void *), void *arg);
void aio__thread_join(aio_thread_t t);

/* A nonzero number that identifies the calling thread among live threads. */
uint64_t aio__thread_id(void);

/* Monotonic nanoseconds; the implementation of aio_clock_ns(). */
int64_t aio__clock_ns(void);
/* Wall-clock nanoseconds since 1970 (CLOCK_REALTIME, GetSystemTimeAsFileTime);
 * jumps when the system time is set. The implementation of AIO_CLOCK_HOST. */
int64_t aio__wall_clock_ns(void);

/* 0 when fd can be registered; -EINVAL for a value that is never a
 * descriptor (negative, INVALID_SOCKET), -EBADF for one that is not open,
 * -ENOTSOCK (Windows) for an open handle that is not a socket. */
int aio__check_fd(aio_fd_t fd);

/* Opens the context's own reference to what a registration waits on (see
 * AioObject in backend.h): for n == NULL a private duplicate of fd (on
 * Windows the socket itself), else one of n's waitable object. The user may
 * close fd or free n afterwards; o stays valid until aio__object_close(o).
 * Returns 0, -EINVAL (a value that is never a descriptor), -EBADF (fd not
 * open), -ENOTSOCK (Windows: not a socket), -EMFILE (no descriptor left)
 * or -ENOMEM. */
int aio__object_open(AioObject *o, aio_fd_t fd, const AioEventNotifier *n);
void aio__object_close(AioObject *o);

/* Once per process, before the first context is made (aio_context_new) and
 * before the first use of a process-wide lock (src/fork.c); idempotent and
 * safe from any thread. Registers what the fork generation below and the
 * core's fork handlers need (POSIX: the pthread_atfork handlers), so that
 * the getter is a plain load instead of a pthread_once on every aio_poll. */
void aio__platform_init(void);

/* The core's fork handlers (src/fork.c), for the platform layer to run
 * around every fork() once aio__platform_init() has run: prepare in the
 * parent before the fork, parent and child on each side after it. */
void aio__fork_prepare(void);
void aio__fork_parent(void);
void aio__fork_child(void);

/* The number of fork()s between the process's start and the calling
 * process: it changes in a child at the moment of fork(). Written only by
 * the platform layer (src/posix: the atfork child handler; never on Win32,
 * where it stays 0). */
extern atomic_uint aio__fork_gen;

/* Relaxed, not acquire: the value publishes no data. The only write happens
 * in a child, inside fork(), on the child's only thread, before fork()
 * returns there; every later read in the child is sequenced after it on
 * that thread or runs on a thread created after it (thread creation
 * synchronizes), and in the parent the value never changes at all. So
 * every read that can matter already happens after the write. */
static inline unsigned aio__fork_generation(void)
{
    return atomic_load_explicit(&aio__fork_gen, memory_order_relaxed);
}

/* Pause hint for busy-poll loops. */
void aio__cpu_relax(void);

/* The value of AIOPOLL_BACKEND, or NULL when unset or empty. */
const char *aio__backend_env(void);

#endif
