/* SPDX-License-Identifier: MIT */
/*
 * pool.pml: a SPIN model of the worker pool's claim and of its idle workers'
 * sleep and wake (src/work.c).
 *
 * Two submitters each push one job and then kick the pool (pool_kick); a
 * canceller cancels job 0; two workers take jobs, claim them, run them, and
 * when the queue is empty spin (may see work), then park under the pool lock
 * and sleep on its condition variable. A job's fn may block for ever (the
 * blocking I/O the pool exists for). Thread start, idle exit, batches longer
 * than one job and the teardown are not modelled.
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
 *
 * Every statement is one atomic step and memory is sequentially consistent:
 * the counters and the queue head are seq_cst atomics in work.c.
 */

#define NJ 2
#define NW 2
#define NONE 255

#define QUEUED 0
#define RUNNING 1
#define CANCELLED 2

byte state[NJ];      /* AioWork.state: the claim */
bool inq[NJ];        /* on the stack / ready list, not taken */
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

#define QUEUE_NONEMPTY (inq[0] || inq[1])

/* pthread_cond_signal: one waiter, if any, gets up. */
inline signal_one()
{
    if
    :: incond[0] -> incond[0] = false
    :: incond[1] -> incond[1] = false
    :: else -> skip
    fi
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
    atomic { inq[j] = true; submitted[j] = true };
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
    byte j;
    bool rest;
    bool owe = false; /* BUG_POOL_LATE_UNSPIN: nspinning still raised for us */

take:
    /* take_batch, one job (take_lock) */
    atomic {
        if
        :: inq[0] -> inq[0] = false; j = 0
        :: inq[1] -> inq[1] = false; j = 1
        :: else -> j = NONE
        fi;
        rest = QUEUE_NONEMPTY
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
    assert(!((inq[0] && state[0] == QUEUED) || (inq[1] && state[1] == QUEUED)) ||
           !(incond[0] || incond[1]))
}

init
{
    atomic {
        run worker(0);
        run worker(1);
        run submitter(0);
        run submitter(1)
    }
}
