/* SPDX-License-Identifier: MIT */
/*
 * home.pml: a SPIN model of the home word (src/home.h): the home thread's
 * id and the depth of blocking polls in progress, changed together by one
 * compare-and-swap, against aio_context_set_home_thread() on any thread.
 *
 * Rule 2 of docs/wakeup-protocol.md: only the home thread blocks, because
 * two blocking pollers steal each other's wake-ups. wakeup.pml checks what
 * one blocker does with a wake-up; this model checks that there is only
 * ever one: every thread polls blocking (nested, sometimes) and moves the
 * home to itself, from outside any poll or from inside its own (a callback
 * that calls set_home_thread), in every interleaving of ROUNDS rounds each.
 *
 * Properties (assertions; -DSAFETY):
 *   - at most one thread is inside a blocking poll ('blockers');
 *   - the depth is the number of polls in progress (it never wraps, and a
 *     thread whose polls are all over can always take the home: no leak).
 *
 * Correct model (must verify):
 *   spin -a home.pml && gcc -O2 -DSAFETY -o pan pan.c && ./pan
 * Bug variants (must each produce a counterexample):
 *   BUG_HOME_CHECK_THEN_ADD     the entry reads "am I home" and raises the
 *                               depth in two steps (the mutex's job, before
 *                               the word): a move slips between them
 *   BUG_HOME_SET_IGNORES_DEPTH  set_home_thread moves the home under a poll
 *   BUG_HOME_SET_RESETS_DEPTH   set_home_thread by the home thread itself,
 *                               from inside its poll, drops the depth: the
 *                               poll's leave then takes it below zero
 */

#ifndef THREADS
#define THREADS 2
#endif
#ifndef ROUNDS
#define ROUNDS 2
#endif

byte home_id = 1;   /* the word's id half: thread ids 1..THREADS */
byte depth;         /* the word's depth half */
byte blockers;      /* ghost: threads inside a blocking poll */
byte inside[THREADS + 1]; /* ghost: per thread, its polls in progress */

/* aio__home_set: one compare-and-swap of both halves. */
inline set_home(me)
{
    atomic {
#ifdef BUG_HOME_SET_IGNORES_DEPTH
        if
        :: home_id != me -> home_id = me
        :: else -> skip
        fi
#else
        if
        :: home_id != me && depth > 0 -> skip /* -EBUSY */
        :: home_id != me && depth == 0 -> home_id = me
        :: home_id == me ->
#ifdef BUG_HOME_SET_RESETS_DEPTH
            depth = 0
#else
            skip
#endif
        fi
#endif
    }
}

/* aio__home_enter; ok tells whether the poll may block. */
inline enter(me, ok)
{
#ifdef BUG_HOME_CHECK_THEN_ADD
    ok = (home_id == me);
    if
    :: ok -> depth++
    :: else -> skip
    fi
#else
    atomic {
        ok = (home_id == me);
        if
        :: ok -> depth++
        :: else -> skip
        fi
    }
#endif
}

/* The blocking poll's body, as the wake-up protocol sees its owner. */
inline begin_blocking(me)
{
    atomic {
        if
        :: inside[me] == 0 -> blockers++
        :: else -> skip
        fi;
        inside[me]++;
        assert(blockers <= 1)
    }
}

inline end_blocking(me)
{
    atomic {
        inside[me]--;
        if
        :: inside[me] == 0 -> blockers--
        :: else -> skip
        fi
    }
}

/* aio__home_leave: a fetch_sub; the depth must hold this poll. */
inline leave()
{
    atomic {
        assert(depth > 0);
        depth--
    }
}

proctype thread(byte me)
{
    byte r = 0;
    bool ok, ok2;
    do
    :: r < ROUNDS ->
        if
        :: set_home(me)
        :: skip
        fi;
        enter(me, ok);
        if
        :: ok ->
            begin_blocking(me);
            if
            :: set_home(me)   /* from a callback of its own poll */
            :: enter(me, ok2);  /* a nested blocking poll */
               if
               :: ok2 -> begin_blocking(me); end_blocking(me); leave()
               :: else -> assert(false) /* home can never move under us */
               fi
            :: skip
            fi;
            end_blocking(me);
            leave()
        :: else -> skip /* -EPERM */
        fi;
        r++
    :: else -> break
    od;
    /* Every poll is over: the depth counts polls of other threads only, so
     * once they are over too the home can move (checked by the last
     * thread to finish, below). */
}

init {
    byte i;
    atomic {
        for (i : 1 .. THREADS) {
            run thread(i)
        }
    }
    /* All threads done: no poll is in progress, so the depth is 0. */
    (_nr_pr == 1);
    assert(depth == 0 && blockers == 0)
}
