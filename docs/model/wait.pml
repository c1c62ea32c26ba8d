/* SPDX-License-Identifier: MIT */
/*
 * wait.pml: a SPIN model of aio_wait_while() / aio_wait_kick() (src/wait.c)
 * on top of the blocking poll's half of the wake-up protocol (wakeup.pml
 * models that half in full; here it is reduced to what the waiter needs:
 * announce, check notified, sleep until kicked, accept).
 *
 * The waiter (the context's home thread) waits while cond holds; a kicker on
 * another thread makes cond false and calls aio_wait_kick(). The waiter must
 * always finish: a waiter asleep for ever with cond false is the lost
 * wake-up (an invalid end state; the waiter has no end label while asleep).
 *
 * Correct model (must verify):
 *   spin -a wait.pml && gcc -O2 -DSAFETY -o pan pan.c && ./pan
 * Bug variants (must each produce a counterexample):
 *   BUG_WAIT_NO_COUNT      the waiter never raises the waiter count, so the
 *                          kicker's fast path always skips the notify
 *   BUG_WAIT_LATE_COUNT    the waiter raises the count only after its first
 *                          check of cond (the check-then-register race)
 *   BUG_WAIT_NO_FENCE      no seq_cst fences: the waiter's read of cond may
 *                          pass its count increment, the kicker's read of the
 *                          count may pass its write of cond (store buffers)
 *
 * Every statement is one atomic step; the BUG_WAIT_NO_FENCE variant adds a
 * one-entry store buffer on each side, as wakeup.pml does for its pair.
 */

#ifndef KICKS
#define KICKS 1
#endif

bool cond = true;      /* the caller's condition */
byte nwaiters;         /* atomic_uint nwaiters */
bool notified;         /* ctx->notified */
byte notify_me;        /* ctx->notify_me */
bool kick;             /* the wake-up object */

#ifdef BUG_WAIT_NO_FENCE
/* Store buffers: a buffered store is visible to its own thread at once and
 * to the other one only when drained. */
bool w_buf_count;      /* the waiter's pending nwaiters++ */
bool k_buf_cond;       /* the kicker's pending cond = false */
#endif

inline aio_notify()
{
    notified = true;
    if
    :: notify_me > 0 -> kick = true
    :: else -> skip
    fi
}

active proctype waiter()
{
#ifndef BUG_WAIT_LATE_COUNT
register_w:
#ifndef BUG_WAIT_NO_COUNT
#ifdef BUG_WAIT_NO_FENCE
    w_buf_count = true;      /* the increment sits in the store buffer */
#else
    nwaiters++;
#endif
#endif
#endif

loop:
    /* while (cond(opaque)) */
    if
    :: cond == false -> goto done
    :: else -> skip
    fi;
#ifdef BUG_WAIT_LATE_COUNT
    if
    :: nwaiters == 0 -> nwaiters++
    :: else -> skip
    fi;
#endif
    /* aio_poll(ctx, true): N1 announce, N2 check, N3 sleep, N5 accept */
    notify_me++;
    if
    :: notified -> skip
    :: else ->
sleep:
        kick == true
    fi;
    notify_me--;
    kick = false;
    notified = false;
    goto loop;

done:
#ifdef BUG_WAIT_NO_FENCE
    if
    :: w_buf_count -> w_buf_count = false; nwaiters++
    :: else -> skip
    fi;
#endif
    skip
}

active proctype kicker()
{
    byte k = 0;
    do
    :: k < KICKS ->
#ifdef BUG_WAIT_NO_FENCE
        k_buf_cond = true;   /* cond = false, buffered */
        if                   /* the load of the count may run first */
        :: nwaiters > 0 -> aio_notify()
        :: else -> skip
        fi;
        k_buf_cond = false;
        cond = false;
#else
        cond = false;        /* the caller's change of the condition */
        if                   /* fence; load(nwaiters) */
        :: nwaiters > 0 -> aio_notify()
        :: else -> skip
        fi;
#endif
        k++
    :: else -> break
    od
}

#ifdef BUG_WAIT_NO_FENCE
/* The waiter's store buffer drains at any time. */
active proctype drain()
{
end_drain:
    do
    :: atomic { w_buf_count -> w_buf_count = false; nwaiters++ }
    od
}
#endif
