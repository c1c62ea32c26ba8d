/* SPDX-License-Identifier: MIT */
/*
 * The clocks: REALTIME (monotonic), HOST (wall clock) and the process-wide
 * VIRTUAL clock that the application stops, starts and sets (QEMU's
 * QEMU_CLOCK_REALTIME / _HOST / _VIRTUAL).
 *
 * The virtual clock is REALTIME plus an offset while it runs, and a frozen
 * value while it is stopped, both under vclock_lock: a reader that raced
 * with stop() could otherwise compute REALTIME + offset after stop() froze
 * a smaller value and see the clock go backwards. Only contexts with VIRTUAL
 * timers read it on their poll path.
 *
 * Every change of the virtual clock notifies each context on the vclock
 * list (those that ever created a VIRTUAL timer) after the change is made.
 * That is the same Dekker pair as any aio_notify(): a poll announces itself
 * (notify_me) before it reads the virtual clock for its timeout, the
 * changer writes the clock before it notifies, so either the poll sees
 * the new clock or the changer sees the poll and kicks it.
 */
#include "aio-internal.h"

static aio_mutex_t vclock_lock = AIO_MUTEX_INITIALIZER;
static bool vclock_stopped;    /* vclock_lock */
static int64_t vclock_offset;  /* running: value = REALTIME + offset */
static int64_t vclock_frozen;  /* stopped: the value */

static aio_mutex_t vlist_lock = AIO_MUTEX_INITIALIZER;
static AioContext *vlist;

/* Saturates at INT64_MAX: set_ns() accepts any ns up to it, and a running
 * clock set near it must stand there, not wrap to INT64_MIN. */
static int64_t vclock_now_locked(void)
{
    if (vclock_stopped) {
        return vclock_frozen;
    }
    int64_t rt = aio__clock_ns();
    return vclock_offset > INT64_MAX - rt ? INT64_MAX : rt + vclock_offset;
}

/* Every public entry point that takes one of the process-wide locks first
 * makes sure the fork handlers that keep them whole are registered
 * (src/fork.c): the virtual clock may be used before any context exists. */
static void vclock_lock_acquire(void)
{
    aio__platform_init();
    aio__mutex_lock(&vclock_lock);
}

void aio__clock_fork_lock(void)
{
    aio__mutex_lock(&vlist_lock);
    aio__mutex_lock(&vclock_lock);
}

void aio__clock_fork_unlock(void)
{
    aio__mutex_unlock(&vclock_lock);
    aio__mutex_unlock(&vlist_lock);
}

static int64_t vclock_now(void)
{
    vclock_lock_acquire();
    int64_t now = vclock_now_locked();
    aio__mutex_unlock(&vclock_lock);
    return now;
}

int64_t aio_clock_ns(void)
{
    return aio__clock_ns();
}

int64_t aio_clock_get_ns(AioClockType type)
{
    switch (type) {
    case AIO_CLOCK_REALTIME: return aio__clock_ns();
    case AIO_CLOCK_HOST: return aio__wall_clock_ns();
    case AIO_CLOCK_VIRTUAL: return vclock_now();
    }
    return INT64_MIN;
}

int64_t aio__timer_clock_now(AioContext *ctx, AioClockType type)
{
    /* Only REALTIME honours the test clock: the tests of the other clocks
     * control them through the public API. */
    return type == AIO_CLOCK_REALTIME ? aio__timers_now(ctx) : aio_clock_get_ns(type);
}

int64_t aio__virtual_clock_read(bool *stopped)
{
    aio__mutex_lock(&vclock_lock);
    int64_t now = vclock_now_locked();
    *stopped = vclock_stopped;
    aio__mutex_unlock(&vclock_lock);
    return now;
}

void aio__virtual_clock_register(AioContext *ctx)
{
    aio__mutex_lock(&vlist_lock);
    if (!ctx->vclock_listed) {
        ctx->vclock_listed = true;
        ctx->vclock_prev = NULL;
        ctx->vclock_next = vlist;
        if (vlist) {
            vlist->vclock_prev = ctx;
        }
        vlist = ctx;
    }
    aio__mutex_unlock(&vlist_lock);
}

void aio__virtual_clock_unregister(AioContext *ctx)
{
    aio__mutex_lock(&vlist_lock);
    if (ctx->vclock_listed) {
        if (ctx->vclock_prev) {
            ctx->vclock_prev->vclock_next = ctx->vclock_next;
        } else {
            vlist = ctx->vclock_next;
        }
        if (ctx->vclock_next) {
            ctx->vclock_next->vclock_prev = ctx->vclock_prev;
        }
        ctx->vclock_listed = false;
    }
    aio__mutex_unlock(&vlist_lock);
}

/* After a change of the virtual clock: every context that may sleep on a
 * virtual deadline computes its timeout again (and fires what is due). The
 * list lock keeps each listed context alive while we notify it: its
 * destruction unregisters under the same lock first. */
static void vclock_changed(void)
{
    aio__mutex_lock(&vlist_lock);
    for (AioContext *ctx = vlist; ctx; ctx = ctx->vclock_next) {
        aio__call_hook(ctx, AIO_HOOK_VCLOCK_NOTIFY);
        aio_notify(ctx);
    }
    aio__mutex_unlock(&vlist_lock);
}

void aio_virtual_clock_stop(void)
{
    vclock_lock_acquire();
    bool changed = !vclock_stopped;
    if (changed) {
        vclock_frozen = vclock_now_locked();
        vclock_stopped = true;
    }
    aio__mutex_unlock(&vclock_lock);
    /* A sleeping poll's timeout counted a virtual deadline that will not
     * come now: waking it is not needed for correctness (it would find
     * nothing due and sleep again), but it keeps sleeps honest. */
    if (changed) {
        vclock_changed();
    }
}

void aio_virtual_clock_start(void)
{
    vclock_lock_acquire();
    bool changed = vclock_stopped;
    if (changed) {
        /* Continue from the frozen value: the stopped time is not added. */
        vclock_offset = vclock_frozen - aio__clock_ns();
        vclock_stopped = false;
    }
    aio__mutex_unlock(&vclock_lock);
    /* Needed: a poll that sleeps while the clock is stopped counted no
     * virtual deadline at all and may sleep forever. */
    if (changed) {
        vclock_changed();
    }
}

int aio_virtual_clock_set_ns(int64_t ns)
{
    vclock_lock_acquire();
    if (ns < vclock_now_locked()) {
        aio__mutex_unlock(&vclock_lock);
        return -EINVAL;
    }
    if (vclock_stopped) {
        vclock_frozen = ns;
    } else {
        vclock_offset = ns - aio__clock_ns();
    }
    aio__mutex_unlock(&vclock_lock);
    vclock_changed();
    return 0;
}
