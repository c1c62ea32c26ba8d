/* SPDX-License-Identifier: MIT */
/*
 * dispatch.pml: a SPIN model of the dispatch right (src/dispatch.h,
 * src/dispatch.c, dispatch_acquire/dispatch_release in src/poll.c): one
 * word, 0 or the holder's id plus a waiter's mark, taken by compare-and-swap;
 * the home thread, the only one that waits, marks the word and sleeps on a
 * hand-off flag (a condition variable under a mutex in the C code) that the
 * holder sets when its exchange finds the mark.
 *
 * The home thread makes blocking polls (take the right, waiting if needed;
 * drop it around the sleep with a plain store; take it again; give it back
 * with a plain store) and non-blocking ones (try; give back by exchange).
 * FOREIGN other threads make non-blocking polls only (try; exchange).
 * home.pml checks that the home cannot move under a blocking poll, which is
 * what makes the plain-store release safe; here the home is fixed, except
 * with -DADOPT: the home thread makes one embedded dispatch instead, whose
 * callback detaches (drops the attach's count on the home word), and an
 * adopter thread moves the home to itself as soon as the depth allows
 * (aio_context_set_home_thread, -EBUSY before) and polls blocking.
 *
 * Properties (assertions and end states; -DSAFETY):
 *   - at most one thread holds the right ('holders');
 *   - a plain-store release finds no mark (nobody waits for the home);
 *   - nobody sleeps for ever: a hand-off lost, or a mark left on a word
 *     whose holder is gone, leaves the home thread blocked when everyone
 *     else has finished, an invalid end state;
 *   - when all are done the right is free.
 *
 * Correct model (must verify):
 *   spin -a dispatch.pml && gcc -O2 -DSAFETY -o pan pan.c && ./pan
 * Bug variants (must each produce a counterexample):
 *   BUG_DISPATCH_MARK_STORE    the mark is a plain store of the word read
 *                              before (holder | mark), not a CAS against it:
 *                              a holder that let go meanwhile is revived,
 *                              and nobody ever hands over
 *   BUG_DISPATCH_RELEASE_STORE a non-blocking poll gives the right back with
 *                              a plain store, never seeing the mark
 *   BUG_DISPATCH_NO_HANDOFF    the waiter sleeps on the condition variable
 *                              without the hand-off flag: a wake that comes
 *                              between its mark and its sleep is lost
 *   BUG_EMBED_DISPATCH_NO_COUNT (with -DADOPT) the embedded dispatch relies on
 *                              the attach's count, which its callback's
 *                              detach drops while it holds the right: the
 *                              adopter marks the right, and the plain-store
 *                              release finds the mark (found by review)
 */

#ifndef FOREIGN
#define FOREIGN 2
#endif
#ifndef ROUNDS
#define ROUNDS 2
#endif

#define HOME 1
#define MARK 8 /* above every id: HOME and 2 .. FOREIGN + 1 */

byte word;      /* ctx->dispatch_owner */
bool handoff;   /* ctx->dispatch_handoff, under dispatch_lock */
bool sleeping;  /* BUG_DISPATCH_NO_HANDOFF: the waiter is in cond_wait */
bool woken;     /* BUG_DISPATCH_NO_HANDOFF: a signal it has not consumed */
byte holders;   /* ghost: threads holding the right */
#ifdef ADOPT
#define ADOPTER (FOREIGN + 2)
byte home_id = HOME; /* the home word: its id ... */
byte depth = 1;      /* ... and its count; 1: the attach's */
#endif

/* What a holder does with the right: callbacks run by one thread at most. */
inline hold()
{
    atomic {
        holders++;
        assert(holders == 1)
    };
    holders--
}

/* dispatch_acquire's fast path: a load, then a CAS only on a free word. */
inline try_take(me, ok)
{
    atomic {
        if
        :: word == 0 -> word = me; ok = true
        :: else -> ok = false
        fi
    }
}

/* aio__dispatch_wake */
inline wake()
{
#ifdef BUG_DISPATCH_NO_HANDOFF
    atomic {
        if
        :: sleeping -> woken = true
        :: else -> skip /* a signal with nobody waiting is lost */
        fi
    }
#else
    handoff = true
#endif
}

/* aio__dispatch_wait: home only; returns holding the right. */
inline wait_take(me)
{
    got = false;
    do
    :: got -> break
    :: else ->
        w = word;
        if
        :: w == 0 ->
            atomic {
                if
                :: word == 0 -> word = me; got = true
                :: else -> skip
                fi
            }
        :: w != 0 ->
            marked = false;
#ifdef BUG_DISPATCH_MARK_STORE
            word = w | MARK;
            marked = true;
#else
            atomic {
                if
                :: word == w -> word = w | MARK; marked = true
                :: else -> skip /* let go, or another holder: look again */
                fi
            };
#endif
            if
            :: marked ->
#ifdef BUG_DISPATCH_NO_HANDOFF
                sleeping = true;
                atomic { woken -> woken = false; sleeping = false }
#else
                atomic { handoff -> handoff = false }
#endif
            :: else -> skip
            fi
        fi
    od
}

/* dispatch_acquire(ctx, self, true) */
inline take_waiting(me)
{
    try_take(me, ok);
    if
    :: ok -> skip
    :: else -> wait_take(me)
    fi
}

/* dispatch_release(ctx, true): the home thread, pinned. */
inline give_back_pinned(me)
{
    atomic {
        assert(word == me); /* no mark: nobody waits for the home */
        word = 0
    }
}

/* dispatch_release(ctx, false): exchange, hand over to a marked waiter. */
inline give_back_exchanging()
{
#ifdef BUG_DISPATCH_RELEASE_STORE
    word = 0
#else
    atomic {
        old = word;
        word = 0
    };
    if
    :: old & MARK -> wake()
    :: else -> skip
    fi
#endif
}

#ifdef ADOPT
/* aio_embed_dispatch whose callback detaches. */
proctype home()
{
    byte w, old;
    bool ok, got, marked;
#ifndef BUG_EMBED_DISPATCH_NO_COUNT
    atomic { assert(home_id == HOME); depth++ }; /* the dispatch's own count */
#endif
    take_waiting(HOME);
    hold();
    depth--; /* the callback's aio_embed_detach */
    give_back_pinned(HOME);
#ifndef BUG_EMBED_DISPATCH_NO_COUNT
    depth--
#endif
}

/* aio_context_set_home_thread (retried while -EBUSY), then aio_poll(ctx, true). */
proctype adopter()
{
    byte w, old;
    bool ok, got, marked;
    atomic { depth == 0 -> home_id = ADOPTER };
    atomic { assert(home_id == ADOPTER); depth++ };
    take_waiting(ADOPTER);
    hold();
    give_back_pinned(ADOPTER);
    depth--
}
#else
proctype home()
{
    byte r = 0, w, old;
    bool ok, got, marked;
    do
    :: r < ROUNDS ->
        if
        :: skip -> /* aio_poll(ctx, true) that sleeps */
            take_waiting(HOME);
            hold();
            give_back_pinned(HOME);
            /* the sleep: other threads' non-blocking polls dispatch */
            take_waiting(HOME);
            hold();
            give_back_pinned(HOME)
        :: skip -> /* aio_poll(ctx, false) */
            try_take(HOME, ok);
            if
            :: ok -> hold(); give_back_exchanging()
            :: else -> skip
            fi
        fi;
        r++
    :: else -> break
    od
}
#endif

proctype foreign(byte me)
{
    byte r = 0, old;
    bool ok;
    do
    :: r < ROUNDS ->
        try_take(me, ok);
        if
        :: ok -> hold(); give_back_exchanging()
        :: else -> skip /* aio_poll(ctx, false) returns 0 */
        fi;
        r++
    :: else -> break
    od
}

init {
    byte i;
    atomic {
        run home();
#ifdef ADOPT
        run adopter();
#endif
        for (i : 1 .. FOREIGN) {
            run foreign(i + 1)
        }
    }
    (_nr_pr == 1);
    assert(word == 0 && holders == 0)
}
