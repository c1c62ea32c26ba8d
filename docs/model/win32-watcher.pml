/* SPDX-License-Identifier: MIT */
/*
 * win32-watcher.pml: a SPIN model of the win32 backend's embedding
 * (src/win32/backend-win32.c, "Embedding"; docs/win32-backend.md): a host
 * loop (a Win32 message loop) sleeps on one manual-reset "aggregate" event,
 * which a watcher thread of ours sets when one of the objects a wait() would
 * sleep on fires.
 *
 * What is modelled, one atomic step per statement, sequentially consistent
 * (every variable below is a Win32 event or a seq_cst atomic in the code):
 *  - the home thread's host loop: prepare = embed_arm (reset the aggregate,
 *    reset the socket's event if dirty, arm_seq++, poke), then "look for
 *    work" (the core's N2: a host with work pending does not sleep), the
 *    host's sleep on the aggregate, check (consume the kick, dispatch the
 *    queue and the socket's handler). Between prepare and the sleep the host
 *    may run a nested blocking poll (a host callback: AIO_WAIT_WHILE), which
 *    resets the socket's event, runs the handler (which may leave data
 *    unread) and pokes the watcher to rescan;
 *  - a producer that queues work and kicks (the kick object is level: the
 *    backend's manual-reset wake-up event; the kick-only-when-announced rule
 *    is wakeup.pml's, so here every hand-over signals it), and a peer that
 *    sends data on the watched socket (its event is signalled on arrival);
 *  - the watcher: disarmed (arm_seq == fired_seq) it waits for a poke; armed
 *    it scans the socket (select(): readable now), then waits on the kick,
 *    the socket's event and the poke, and fires (set the aggregate, then
 *    fired_seq = the arming it served) when one of the first two fires.
 *
 * Property: no lost wake-up. When nothing can move any more (SPIN's
 * timeout), the host is not asleep on a reset aggregate while work is queued
 * or the socket has data (assertion), and no process is stuck elsewhere
 * (invalid end states).
 *
 * Correct model (must verify):
 *   spin -a win32-watcher.pml && gcc -O2 -DSAFETY -o pan pan.c && ./pan
 * Bug variants (must each produce a counterexample):
 *   BUG_W32_ARMED_FLAG    armed is a flag the watcher clears when it fires,
 *                         not arm_seq != fired_seq: a fire for an old arming
 *                         disarms the new one whose reset came after it
 *   BUG_W32_RESET_AFTER_ARM  embed_arm resets the aggregate after arming, so
 *                         it can erase what the new arming just fired
 *   BUG_W32_NO_RESCAN     the nested poll resets the socket's event without
 *                         poking the watcher, which sleeps on the reset event
 *                         while the data it left is still there
 */

#ifndef ROUNDS
#define ROUNDS 3
#endif
#define NWORK 2

bool kick;        /* the backend's wake-up event (manual-reset) */
byte queued;      /* work handed over, not yet dispatched */
bool sock_data;   /* the socket is readable */
bool sock_ev;     /* its WSAEVENT (manual-reset, signalled on arrival) */
bool sock_dirty;  /* its event may be signalled for data already seen */

bool agg;         /* the aggregate event (manual-reset) */
bool poke;        /* the watcher's auto-reset control event */
byte arm_seq;     /* home thread */
byte fired_seq;   /* watcher */
#ifdef BUG_W32_ARMED_FLAG
bool armed;
#endif

bool host_asleep;
bool producers_done;
byte nproducers;

#define WORK_PENDING (queued > 0 || sock_data)

inline embed_arm()
{
#ifndef BUG_W32_RESET_AFTER_ARM
    agg = false;
#endif
    if
    :: sock_dirty -> sock_dirty = false; sock_ev = false
    :: else
    fi;
#ifdef BUG_W32_ARMED_FLAG
    armed = true;
#else
    arm_seq = (arm_seq + 1) % 4;
#endif
    poke = true;
#ifdef BUG_W32_RESET_AFTER_ARM
    agg = false;
#endif
}

/* The socket's handler: reads some or all of what is there. */
inline handler()
{
    if
    :: sock_data -> if
                    :: sock_data = false /* drained */
                    :: skip              /* left some for the next call */
                    fi
    :: else
    fi
}

active proctype host()
{
    byte r = 0;
    do
    :: r < ROUNDS ->
       r++;
       embed_arm();
       /* A host callback between prepare and the sleep runs a nested
        * blocking poll (its own wait(): reset the dirty event, scan, run). */
       if
       :: sock_ev || sock_data ->
          sock_ev = false;
          sock_dirty = false;
#ifndef BUG_W32_NO_RESCAN
#ifdef BUG_W32_ARMED_FLAG
          if :: armed -> poke = true :: else fi;
#else
          if :: arm_seq != fired_seq -> poke = true :: else fi;
#endif
#endif
          handler();
          kick = false;        /* it accepted whatever was signalled */
          if :: queued > 0 -> queued-- :: else fi
       :: skip
       fi;
       /* N2: prepare looks for work; then the host sleeps unless some. */
       if
       :: queued > 0 -> skip
       :: else ->
          host_asleep = true;
end_hsleep: if
          :: agg -> skip
          fi;
          host_asleep = false
       fi;
       /* check + dispatch: consume the kick, then the work (in this order:
        * a hand-over after the reset signals again). */
       kick = false;
       queued = 0;
       handler()
    :: r >= ROUNDS && producers_done && !WORK_PENDING -> break
    :: r >= ROUNDS && !(producers_done && !WORK_PENDING) ->
       /* Keep going until everything handed over was seen, so that a
        * finite run ends only when nothing is owed. */
       r--
    od
}

active proctype producer()
{
    byte i = 0;
    do
    :: i < NWORK -> atomic { queued++; kick = true }; i++
    :: i >= NWORK -> break
    od;
    atomic { nproducers++; producers_done = (nproducers == 2) }
}

active proctype peer()
{
    atomic { sock_data = true; sock_ev = true };
    atomic { nproducers++; producers_done = (nproducers == 2) }
}

active proctype watcher()
{
    byte seq;
    do
    ::
#ifdef BUG_W32_ARMED_FLAG
       if
       :: !armed ->
end_idle:   atomic { poke -> poke = false }
       :: else ->
#else
       seq = arm_seq;
       if
       :: seq == fired_seq ->
end_idle:   atomic { poke -> poke = false }
       :: else ->
#endif
          /* The round: scan first (the reset socket event may be for data
           * still there), then sleep on the kick, the socket event, the
           * poke. */
          if
          :: sock_data -> sock_dirty = true; goto fire
          :: else
          fi;
end_wait: if
          :: kick -> goto fire
          :: sock_ev -> sock_dirty = true; goto fire
          :: atomic { poke -> poke = false }  /* rebuild, rescan */
          fi;
          goto next;
fire:     agg = true;   /* SetEvent, then disarm (watcher_fire) */
#ifdef BUG_W32_ARMED_FLAG
          armed = false;
#else
          fired_seq = seq;
#endif
next:     skip
       fi
    od
}

/* When nothing can move: a host asleep on a reset aggregate must owe
 * nothing. SPIN's timeout is true only in a state with no enabled step. */
active proctype monitor()
{
    timeout -> assert(!(host_asleep && !agg && WORK_PENDING))
}
