/* SPDX-License-Identifier: MIT */
/*
 * Waiting on more than 64 handles.
 *
 * WaitForMultipleObjects takes at most MAXIMUM_WAIT_OBJECTS (64) handles. For
 * a larger set the calling thread waits on the first 63 handles plus the
 * pool's "any" event, and each helper thread waits on a group of up to 63
 * further handles plus its own "stop" event. One round:
 *
 *   caller                                 helper i
 *   ResetEvent(any)
 *   fill group i; SetEvent(go_i)   ---->   WaitForSingleObject(go_i)
 *                                          WaitForMultipleObjects(stop_i + group)
 *                                            a handle fired: fired_i = index;
 *                                              SetEvent(any); wait for stop_i
 *                                            stop_i fired: fired_i = none
 *   WaitForMultipleObjects(63 + any)  <--  (any)
 *   SetEvent(stop_i) for every helper ---->
 *   wait for all done_i             <----  SetEvent(done_i)
 *   ResetEvent(any) is next round's
 *
 * go, stop and done are auto-reset events, each consumed exactly once per
 * round: go and done by their single waiter; stop either by the helper's
 * group wait (it returns "stop") or by its wait after reporting. When the
 * caller returns, every helper is parked on go again, so no helper still
 * looks at the caller's handles (which may be closed right after) and none
 * can signal "any" after the next round's reset.
 *
 * Waiting does not change a manual-reset event's state, so a helper that
 * sees a handle fire consumes nothing; the caller re-checks readiness
 * itself. The helpers are created on first need and kept until the pool is
 * destroyed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aio-test-hooks.h"
#include "win32-waiters.h"

#define GROUP (MAXIMUM_WAIT_OBJECTS - 1) /* handles per thread, plus one control */

enum { CMD_WAIT, CMD_EXIT };

struct AioWaiter {
    HANDLE thread;
    HANDLE go, stop, done; /* auto-reset */
    HANDLE any;            /* the pool's */
    /* Written by the caller before SetEvent(go), read by the helper after
     * its wait on go returns, and back again through done: the wait
     * functions and SetEvent are full memory barriers. */
    int cmd;
    DWORD count;                           /* handles in use, stop included */
    HANDLE handles[MAXIMUM_WAIT_OBJECTS];  /* [0] = stop */
    size_t base;                           /* index of handles[1] for the caller */
    long fired;                            /* >0: handles[fired]; 0: none; <0: failed */
};

static DWORD WINAPI waiter_main(LPVOID arg)
{
    AioWaiter *w = arg;
    for (;;) {
        WaitForSingleObject(w->go, INFINITE);
        if (w->cmd == CMD_EXIT) {
            return 0;
        }
        DWORD r = WaitForMultipleObjects(w->count, w->handles, FALSE, INFINITE);
        if (r == WAIT_OBJECT_0) {
            w->fired = 0; /* stopped: the round is over */
        } else {
            if (r > WAIT_OBJECT_0 && r < WAIT_OBJECT_0 + w->count) {
                w->fired = (long)(r - WAIT_OBJECT_0);
            } else if (r > WAIT_ABANDONED_0 && r < WAIT_ABANDONED_0 + w->count) {
                w->fired = (long)(r - WAIT_ABANDONED_0);
            } else {
                w->fired = -1; /* WAIT_FAILED: an invalid handle */
            }
            SetEvent(w->any);
            WaitForSingleObject(w->stop, INFINITE);
        }
        SetEvent(w->done);
    }
}

static void waiter_free(AioWaiter *w)
{
    if (w->thread) {
        w->cmd = CMD_EXIT;
        SetEvent(w->go);
        WaitForSingleObject(w->thread, INFINITE);
        CloseHandle(w->thread);
    }
    if (w->go) {
        CloseHandle(w->go);
    }
    if (w->stop) {
        CloseHandle(w->stop);
    }
    if (w->done) {
        CloseHandle(w->done);
    }
    free(w);
}

static AioWaiter *waiter_new(HANDLE any)
{
    AioWaiter *w = aio__calloc(1, sizeof(*w));
    if (!w) {
        return NULL;
    }
    w->any = any;
    w->go = AIO_FAULT_CALL(AIO_FAULT_CREATE_EVENT, NULL, CreateEventW(NULL, FALSE, FALSE, NULL));
    w->stop = AIO_FAULT_CALL(AIO_FAULT_CREATE_EVENT, NULL, CreateEventW(NULL, FALSE, FALSE, NULL));
    w->done = AIO_FAULT_CALL(AIO_FAULT_CREATE_EVENT, NULL, CreateEventW(NULL, FALSE, FALSE, NULL));
    if (!w->go || !w->stop || !w->done) {
        waiter_free(w);
        return NULL;
    }
    w->handles[0] = w->stop;
    /* The helpers only wait: a small stack reservation is plenty. */
    w->thread = AIO_FAULT_CALL(AIO_FAULT_THREAD, NULL,
                               CreateThread(NULL, 64 * 1024, waiter_main, w,
                                            STACK_SIZE_PARAM_IS_A_RESERVATION, NULL));
    if (!w->thread) {
        waiter_free(w);
        return NULL;
    }
    return w;
}

int aio__waiters_init(AioWaiterPool *p)
{
    memset(p, 0, sizeof(*p));
    InitializeSRWLock(&p->lock);
    p->any = AIO_FAULT_CALL(AIO_FAULT_CREATE_EVENT, NULL, CreateEventW(NULL, TRUE, FALSE, NULL));
    return p->any ? 0 : -ENOMEM;
}

void aio__waiters_stop_helpers(AioWaiterPool *p)
{
    /* Nobody waits through the pool (its caller saw to that), so every
     * helper is parked on its go event and exits at CMD_EXIT. */
    for (size_t i = 0; i < p->n; i++) {
        waiter_free(p->w[i]);
    }
    p->n = 0;
}

void aio__waiters_destroy(AioWaiterPool *p)
{
    aio__waiters_stop_helpers(p);
    free(p->w);
    free(p->done);
    if (p->any) {
        CloseHandle(p->any);
    }
    memset(p, 0, sizeof(*p));
}

static int pool_reserve(AioWaiterPool *p, size_t want)
{
    if (want > p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 4;
        while (cap < want) {
            cap *= 2;
        }
        AioWaiter **w = aio__realloc(p->w, cap * sizeof(*w));
        if (!w) {
            return -ENOMEM;
        }
        p->w = w;
        HANDLE *done = aio__realloc(p->done, cap * sizeof(*done));
        if (!done) {
            return -ENOMEM;
        }
        p->done = done;
        p->cap = cap;
    }
    while (p->n < want) {
        AioWaiter *w = waiter_new(p->any);
        if (!w) {
            return -ENOMEM;
        }
        p->done[p->n] = w->done;
        p->w[p->n++] = w;
    }
    return 0;
}

/* res->fired has one entry per waiting thread, and each reports at most
 * one index per round. */
static void add_fired(AioWaitResult *res, size_t idx)
{
    res->fired[res->nfired++] = idx;
}

static size_t helpers_for(size_t n)
{
    return n <= MAXIMUM_WAIT_OBJECTS ? 0 : (n - GROUP + GROUP - 1) / GROUP;
}

size_t aio__waiters_threads(size_t n)
{
    return 1 + helpers_for(n);
}

/* WAIT_OBJECT_0 + i or WAIT_ABANDONED_0 + i -> i; else SIZE_MAX. */
static size_t signalled_index(DWORD r, DWORD n)
{
    if (r < WAIT_OBJECT_0 + n) {
        return (size_t)(r - WAIT_OBJECT_0);
    }
    if (r >= WAIT_ABANDONED_0 && r < WAIT_ABANDONED_0 + n) {
        return (size_t)(r - WAIT_ABANDONED_0);
    }
    return SIZE_MAX;
}

static void classify(DWORD r, DWORD n, AioWaitResult *res)
{
    size_t i = signalled_index(r, n);
    if (i != SIZE_MAX) {
        add_fired(res, i);
    } else if (r == WAIT_TIMEOUT) {
        res->timed_out = true;
    } else {
        res->failed = true;
    }
}

int aio__waiters_wait(AioWaiterPool *p, const HANDLE *h, size_t n, DWORD ms,
                      AioWaitResult *res)
{
    res->nfired = 0;
    res->timed_out = false;
    res->failed = false;

    if (n == 0) {
        if (ms == INFINITE) {
            return -EINVAL; /* nothing could ever end this sleep */
        }
        Sleep(ms);
        res->timed_out = true;
        return 0;
    }
    if (n <= MAXIMUM_WAIT_OBJECTS) {
        classify(AIO_FAULT_CALL(AIO_FAULT_WAIT, WAIT_FAILED,
                                WaitForMultipleObjects((DWORD)n, h, FALSE, ms)),
                 (DWORD)n, res);
        return 0;
    }

    size_t helpers = helpers_for(n);
    AcquireSRWLockExclusive(&p->lock);
    int err = pool_reserve(p, helpers);
    if (err) {
        ReleaseSRWLockExclusive(&p->lock);
        return err;
    }

    ResetEvent(p->any);
    for (size_t i = 0; i < helpers; i++) {
        AioWaiter *w = p->w[i];
        size_t base = GROUP + i * GROUP;
        size_t cnt = n - base < GROUP ? n - base : GROUP;
        memcpy(&w->handles[1], &h[base], cnt * sizeof(HANDLE));
        w->count = (DWORD)(cnt + 1);
        w->base = base;
        w->fired = 0;
        w->cmd = CMD_WAIT;
        SetEvent(w->go);
    }

    HANDLE mine[MAXIMUM_WAIT_OBJECTS];
    memcpy(mine, h, GROUP * sizeof(HANDLE));
    mine[GROUP] = p->any;
    DWORD r = AIO_FAULT_CALL(AIO_FAULT_WAIT, WAIT_FAILED,
                             WaitForMultipleObjects(MAXIMUM_WAIT_OBJECTS, mine, FALSE, ms));
    size_t i0 = signalled_index(r, MAXIMUM_WAIT_OBJECTS);
    if (i0 != SIZE_MAX) {
        if (i0 < GROUP) {
            add_fired(res, i0);
        } /* else "any": the helpers say which below */
    } else if (r == WAIT_TIMEOUT) {
        res->timed_out = true;
    } else {
        res->failed = true;
    }

    /* End the round: every helper gets exactly one stop and answers with
     * exactly one done. */
    for (size_t i = 0; i < helpers; i++) {
        SetEvent(p->w[i]->stop);
    }
    for (size_t i = 0; i < helpers; i += MAXIMUM_WAIT_OBJECTS) {
        size_t cnt = helpers - i < MAXIMUM_WAIT_OBJECTS ? helpers - i : MAXIMUM_WAIT_OBJECTS;
        WaitForMultipleObjects((DWORD)cnt, &p->done[i], TRUE, INFINITE);
    }
    for (size_t i = 0; i < helpers; i++) {
        AioWaiter *w = p->w[i];
        if (w->fired > 0) {
            add_fired(res, w->base + (size_t)w->fired - 1);
            res->timed_out = false;
        } else if (w->fired < 0) {
            res->failed = true;
        }
    }
    ReleaseSRWLockExclusive(&p->lock);
    return 0;
}
