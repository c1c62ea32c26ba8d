/* SPDX-License-Identifier: MIT */
/*
 * Event notifiers on Windows: a manual-reset event that waiters wait on, and
 * an atomic flag that holds the notifier's actual state.
 *
 * Why not the event alone? The obvious test_and_clear,
 *     was = WaitForSingleObject(h, 0) == WAIT_OBJECT_0; if (was) ResetEvent(h);
 * is two steps. Two clearers that both see "signalled" both return true for
 * one set, and nothing orders what a setter published before SetEvent()
 * against the clearer that reports it. Resetting first and then looking is
 * no better: after ResetEvent() the event no longer says whether it was set.
 *
 * With the flag:
 *     set:            if (exchange(flag, 1) == 0) SetEvent(h);        S1, S2
 *     test_and_clear: ResetEvent(h); return exchange(flag, 0) == 1;  R, X
 *
 * Each set is reported by exactly one test_and_clear: the sets whose S1
 * precedes a clearer's X (in the flag's single modification order) are
 * reported by that X, or coalesced with a set that is; X and S1 are atomic
 * read-modify-writes, so no set falls between two clearers.
 *
 * No set is lost to a sleeping waiter. Suppose a set's S1 follows a
 * clearer's X. Then R (sequenced before X) happens before S1 (which reads
 * X's value or a later one), which happens before S2: that reset cannot undo
 * this SetEvent. A later clearer's R could, but its X then reports the set.
 * A set that skips S2 because the flag was already 1 found an earlier set
 * whose S2 is either done (and the event stays signalled until a clearer's R,
 * whose X then consumes both) or still coming. So "flag set and no set
 * half-way through" implies "event signalled".
 *
 * The converse does not hold: a set whose S1 precedes X but whose S2 comes
 * after R leaves the event signalled with the flag clear. That costs one
 * spurious wake-up: the waiter runs the handler, test_and_clear returns
 * false and its ResetEvent removes the stale signal. It cannot spin.
 *
 * A consequence: the HANDLE is for waiting on. A SetEvent() on it by someone
 * else wakes waiters, but test_and_clear does not count it as a set.
 */
#include <errno.h>
#include <stdlib.h>

#include "platform.h"
#include "win32-internal.h"

AioEventNotifier *aio_event_notifier_new(bool initially_set)
{
    AioEventNotifier *n = aio__malloc(sizeof(*n));
    if (!n) {
        errno = ENOMEM;
        return NULL;
    }
    n->event = AIO_FAULT_CALL(AIO_FAULT_CREATE_EVENT, NULL,
                              CreateEventW(NULL, TRUE, initially_set ? TRUE : FALSE, NULL));
    if (!n->event) {
        free(n);
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&n->flag, initially_set ? 1 : 0);
    return n;
}

void aio_event_notifier_free(AioEventNotifier *n)
{
    if (n) {
        CloseHandle(n->event);
        free(n);
    }
}

int aio_event_notifier_set(AioEventNotifier *n)
{
    if (!n) {
        return -EINVAL;
    }
    /* seq_cst exchange: also releases what the caller published before
     * setting, to the clearer whose exchange reads this 1. */
    if (atomic_exchange(&n->flag, 1) == 0) {
        if (!SetEvent(n->event)) {
            return -EIO;
        }
    }
    return 0;
}

bool aio_event_notifier_test_and_clear(AioEventNotifier *n)
{
    if (!n) {
        return false;
    }
    /* Reset first, then take the flag: see the comment at the top. */
    ResetEvent(n->event);
    return atomic_exchange(&n->flag, 0) != 0;
}

aio_handle_t aio_event_notifier_get_handle(const AioEventNotifier *n)
{
    return n ? n->event : NULL;
}
