/* SPDX-License-Identifier: MIT */
/*
 * Waiting on more than MAXIMUM_WAIT_OBJECTS (64) handles with persistent
 * helper threads (docs/win32-backend.md, "More than 64 handles").
 */
#ifndef AIOPOLL_WIN32_WAITERS_H
#define AIOPOLL_WIN32_WAITERS_H

#include <stdbool.h>
#include <stddef.h>

#include "platform-types.h"

typedef struct AioWaiter AioWaiter;

typedef struct AioWaiterPool {
    SRWLOCK lock;   /* one multi-waiter sleep at a time */
    HANDLE any;     /* manual-reset: "a helper saw one of its handles fire" */
    AioWaiter **w;  /* persistent helpers: only aio__waiters_stop_helpers ends them */
    HANDLE *done;   /* w[i]->done, contiguous for the wait-all */
    size_t n, cap;
} AioWaiterPool;

/* The outcome of one wait: which handles fired (indices into the array the
 * caller passed), whether it timed out, whether a handle was invalid. At
 * most one index per waiting thread is reported, and none may be reported
 * even though some handle is signalled: callers re-check readiness. */
typedef struct AioWaitResult {
    /* The caller's array of aio__waiters_threads(n) entries: one per
     * waiting thread, so no report is ever dropped (a fixed array of 65
     * silently lost the reports of helpers past the 64th, i.e. of handles
     * past 4095). */
    size_t *fired;
    size_t nfired;
    bool timed_out;
    bool failed;
} AioWaitResult;

int aio__waiters_init(AioWaiterPool *p);
void aio__waiters_destroy(AioWaiterPool *p);
/* Ends the helper threads but keeps the pool usable (a later wait starts
 * new ones). No wait through the pool may be in progress. */
void aio__waiters_stop_helpers(AioWaiterPool *p);

/* How many threads (the caller and its helpers) a wait on n handles uses:
 * the most indices it can report. */
size_t aio__waiters_threads(size_t n);

/* Waits until one of h[0..n) is signalled or ms (INFINITE allowed) pass,
 * with helpers when n > MAXIMUM_WAIT_OBJECTS. Never changes the state of a
 * manual-reset event in h. res->fired must hold aio__waiters_threads(n)
 * entries. Returns 0, -ENOMEM (no helper thread) or -EINVAL (n == 0 and
 * ms == INFINITE). */
int aio__waiters_wait(AioWaiterPool *p, const HANDLE *h, size_t n, DWORD ms,
                      AioWaitResult *res);

#endif
