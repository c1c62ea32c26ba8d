/* SPDX-License-Identifier: MIT */
/*
 * The core's process-wide locks around fork().
 *
 * Almost everything the library locks belongs to one context, and a fork
 * while another thread is inside a call on that context is outside aio.h's
 * fork precondition. Three mutexes are the process's, not any context's:
 * the virtual clock's value, its list of contexts, and aio_wait_while's
 * list of waiters. A thread of the parent inside aio_virtual_clock_set_ns()
 * or aio_wait_kick() when another thread forks holds one of them, and the
 * child, which has no such thread, would find it locked for ever (its
 * aio_context_unref() of an inherited context with a VIRTUAL timer, its
 * next aio_wait_while(), its clock reads). So the platform's fork handlers
 * (src/posix: pthread_atfork; there is no fork on Win32) take all three
 * before the fork and let go of them on both sides after it: the child
 * inherits them unlocked, and the lists and the clock as they were between
 * two whole operations. No code path holds two of them at once, so the
 * order here is the only one and cannot deadlock.
 */
#include "aio-internal.h"

void aio__fork_prepare(void)
{
    aio__wait_fork_lock();
    aio__clock_fork_lock();
}

void aio__fork_parent(void)
{
    aio__clock_fork_unlock();
    aio__wait_fork_unlock();
}

void aio__fork_child(void)
{
    aio__clock_fork_unlock();
    aio__wait_fork_unlock();
}
