/* SPDX-License-Identifier: MIT */
/*
 * pool.pml: a SPIN model of the worker pool's claim and of its idle workers'
 * sleep and wake (src/work.c).
 *
 * NJ submitters each push one job and then kick the pool (pool_kick); a
 * canceller cancels job 0; NW workers take jobs, claim them, run them, and
 * when the queue is empty spin (may see work), then park under the pool lock
 * and sleep on its condition variable. A job's fn may block for ever (the
 * blocking I/O the pool exists for). The queue is the submitters' stack and
 * the workers' ready list: a take moves the stack behind the ready list and
 * takes one job of it (in any order: a superset of the FIFO cut), and kicks
 * when it leaves jobs behind. Thread start, idle exit, batches longer than
 * one job and the teardown are not modelled. NJ = NW = 2 by default;
 * -DTHREE makes it 3 and 3, the smallest pool in which a take that serves
 * itself from the ready list alone strands a job on the stack.
 *
 * Properties:
 *  - the claim: no job both runs and is reported cancelled (assertion);
 *  - no lost wake-up: when nothing can move any more (SPIN's timeout), no
 *    job sits unclaimed in the queue while a worker sleeps; a worker blocked
 *    in fn is no excuse for the other one sleeping on the job (assertion);
 *  - no deadlock (invalid end states).
 *
 * Correct model (must verify):
 *   spin -a pool.pml && gcc -O2 -DSAFETY -o pan pan.c && ./pan
 * and, by hand (1.35e8 states, 3.5 min, 6.8 GB with -DCOLLAPSE -DMEMLIM=8192
 * in stop 23; too big for CI, which checks its bug variant only):
 *   spin -a -DTHREE pool.pml && gcc -O2 -DSAFETY -DCOLLAPSE -DMEMLIM=8192 -o pan pan.c && ./pan
 * Bug variants (must each produce a counterexample):
 *   BUG_POOL_CLAIM_NOT_ATOMIC  worker and cancel read the state, then write
 *                              it (two steps): both can claim a job
 *   BUG_POOL_NO_WAKE           the submitter's kick wakes nobody
 *   BUG_POOL_NO_RECHECK        a parking worker sleeps without looking at the
 *                              queue after counting itself asleep
 *   BUG_POOL_LATE_UNSPIN       a woken worker stays counted as spinning until
 *                              its fn returns, so submitters skip the wake
 *   BUG_POOL_NO_CHAIN          a worker that leaves work behind in the queue
 *                              kicks nobody (submitters that saw it spinning
 *                              skipped their wake: one wake per burst)
 *   BUG_POOL_TAKE_READY_ONLY   (-DTHREE) a take reads the stack only when the
 *                              ready list is empty: a push made while a
 *                              spinner was counted (so its kick was skipped)
 *                              stays on the stack while a worker sleeps
 *
 * Every statement is one atomic step and memory is sequentially consistent:
 * the counters and the queue head are seq_cst atomics in work.c.
 */

#ifdef THREE
#define NJ 3
#define NW 3
#else
#define NJ 2
#define NW 2
#endif
#define NONE 255

#define QUEUED 0
#define RUNNING 1
#define CANCELLED 2

byte state[NJ];      /* AioWork.state: the claim */
bool instack[NJ];    /* pushed, on pool->stack */
bool inready[NJ];    /* moved to pool->ready by a take, not taken yet */
bool submitted[NJ];
bool ran[NJ];        /* fn started */
bool cancel_ok[NJ];  /* aio_work_cancel returned 0 */

byte nspinning;      /* pool->nspinning */
byte nsleeping;      /* pool->nsleeping */
byte wakeups;        /* pool->wakeups (pool->lock) */
bool lock;           /* pool->lock */
bool incond[NW];     /* waiting on pool->park */

inline lock_acquire()
{
    atomic { lock == false -> lock = true }
}

#if NJ > 2
#define ANY(a) (a[0] || a[1] || a[2])
#define QUEUED_IN(j) ((instack[j] || inready[j]) && state[j] == QUEUED)
#define LOST (QUEUED_IN(0) || QUEUED_IN(1) || QUEUED_IN(2))
#else
#define ANY(a) (a[0] || a[1])
#define QUEUED_IN(j) ((instack[j] || inready[j]) && state[j] == QUEUED)
#define LOST (QUEUED_IN(0) || QUEUED_IN(1))
#endif
/* work_visible(): both lists */
#define QUEUE_NONEMPTY (ANY(instack) || ANY(inready))

/* pthread_cond_signal: one waiter, if any, gets up. */
inline signal_one()
{
    if
    :: incond[0] -> incond[0] = false
    :: incond[1] -> incond[1] = false
#if NW > 2
    :: incond[2] -> incond[2] = false
#endif
    :: else -> skip
    fi
}

/* take_batch's move of the stack (one exchange) behind the ready list. */
inline drain_stack()
{
    i = 0;
    do
    :: i < NJ ->
        if
        :: instack[i] -> instack[i] = false; inready[i] = true
        :: else -> skip
        fi;
        i++
    :: else -> break
    od
}

/* pool_kick() after a push or a take that left work (thread start
 * omitted: both workers exist). */
inline kick()
{
#ifndef BUG_POOL_NO_WAKE
    if
    :: nspinning > 0 -> skip
    :: else ->
        if
        :: nsleeping > 0 ->
            lock_acquire();
            /* wake_one_locked */
            if
            :: wakeups == 0 && nsleeping > 0 ->
                wakeups++;
                nspinning++;
                signal_one()
            :: else -> skip
            fi;
            lock = false
        :: else -> skip
        fi
    fi
#else
    skip
#endif
}

proctype submitter(byte j)
{
    /* the Treiber push (seq_cst CAS) */
    atomic { instack[j] = true; submitted[j] = true };
    kick()
}

active proctype canceller()
{
    submitted[0];
#ifdef BUG_POOL_CLAIM_NOT_ATOMIC
    byte s = state[0];
    if
    :: s == QUEUED -> state[0] = CANCELLED; cancel_ok[0] = true
    :: else -> skip
    fi;
#else
    atomic {
        if
        :: state[0] == QUEUED -> state[0] = CANCELLED; cancel_ok[0] = true
        :: else -> skip
        fi
    };
#endif
    assert(!(cancel_ok[0] && ran[0]))
}

proctype worker(byte me)
{
    byte j, i;
    bool rest;
    bool owe = false; /* BUG_POOL_LATE_UNSPIN: nspinning still raised for us */

take:
    /* take_batch, one job (take_lock) */
    atomic {
#ifdef BUG_POOL_TAKE_READY_ONLY
        if
        :: !ANY(inready) -> drain_stack()
        :: else -> skip
        fi;
#else
        drain_stack();
#endif
        if
        :: inready[0] -> inready[0] = false; j = 0
        :: inready[1] -> inready[1] = false; j = 1
#if NJ > 2
        :: inready[2] -> inready[2] = false; j = 2
#endif
        :: else -> j = NONE
        fi;
        rest = ANY(inready)   /* what the cut left: `if (rest) pool_kick()` */
    };
    if
    :: j == NONE -> goto idle
    :: else -> skip
    fi;
#ifndef BUG_POOL_NO_CHAIN
    /* work left behind: the next worker is kicked (one wake at a time) */
    if
    :: rest -> kick()
    :: else -> skip
    fi;
#endif

    /* run_batch: the claim */
#ifdef BUG_POOL_CLAIM_NOT_ATOMIC
    byte s = state[j];
    if
    :: s == QUEUED -> state[j] = RUNNING
    :: else -> j = NONE
    fi;
#else
    atomic {
        if
        :: state[j] == QUEUED -> state[j] = RUNNING
        :: else -> j = NONE
        fi
    };
#endif
    if
    :: j == NONE -> goto take      /* a cancel won: dropped */
    :: else -> skip
    fi;
    ran[j] = true;
    assert(!cancel_ok[j]);
    /* fn returns, or blocks for ever */
    if
    :: true
    :: true ->
end_blocked:
        false
    fi;
    if
    :: owe -> owe = false; nspinning--
    :: else -> skip
    fi;
    goto take;

idle:
    /* spin(): counted as spinning; may see the work */
    nspinning++;
    if
    :: QUEUE_NONEMPTY -> nspinning--; goto take
    :: true -> skip
    fi;

    /* park() */
    lock_acquire();
    nsleeping++;
    nspinning--;
parkloop:
    if
#ifdef BUG_POOL_NO_RECHECK
    :: wakeups > 0 -> goto unpark
#else
    :: QUEUE_NONEMPTY || wakeups > 0 -> goto unpark
#endif
    :: else ->
        /* cond_wait: unlock and wait as one step */
        atomic { incond[me] = true; lock = false };
end_sleep:
        incond[me] == false;
        lock_acquire();
        goto parkloop
    fi;
unpark:
    if
    :: wakeups > 0 -> wakeups--    /* the waker raised nspinning for us */
    :: else -> nspinning++
    fi;
    nsleeping--;
    lock = false;
#ifdef BUG_POOL_LATE_UNSPIN
    owe = true;
#else
    nspinning--;                   /* before take_batch reads the queue */
#endif
    goto take
}

/* When nothing can move: a job left QUEUED in the queue while a worker
 * sleeps is a lost wake-up. */
active proctype monitor()
{
    timeout ->
#if NW > 2
    assert(!LOST || !(incond[0] || incond[1] || incond[2]))
#else
    assert(!LOST || !(incond[0] || incond[1]))
#endif
}

init
{
    atomic {
        run worker(0);
        run worker(1);
#if NW > 2
        run worker(2);
#endif
        run submitter(0);
        run submitter(1);
#if NJ > 2
        run submitter(2)
#endif
    }
}
