/* SPDX-License-Identifier: MIT */
/*
 * wakeup.pml: a SPIN model of aiopoll's wake-up protocol.
 *
 * docs/wakeup-protocol.md is the protocol and its proof sketch; the section
 * "Model checking" there maps every statement below to src/poll.c and
 * src/bh.c.  Labels A1..A4 (aio_notify) and N0..N7 (the blocking poll) are the
 * steps of that page.  tools/check-model.sh runs every check.
 *
 * Correct model (must verify):
 *   spin -a wakeup.pml && gcc -O2 -DSAFETY -o pan pan.c && ./pan
 *   spin -a -DLTL wakeup.pml && gcc -O2 -o pan pan.c && ./pan -a -f
 * Bug variants (must each produce a counterexample): add -DBUG_... to spin -a
 *   BUG_NONBLOCKING_ACCEPT  the non-blocking poll accepts (clears kick, notified)
 *   BUG_NO_BARRIER          store->load reordering on both sides (store buffer);
 *                           BUG_NO_BARRIER_NOTIFY / BUG_NO_BARRIER_POLL: one side
 *   BUG_CLEAR_AFTER_REARM   N5 re-arms kick_pending before clearing the kick
 *   BUG_TWO_BLOCKERS        a second thread also does blocking polls
 *   BUG_NB_NO_RIGHT         the non-blocking poll dispatches without the
 *                           dispatch right        (shows property (c) bites)
 *   BUG_TAKE_NOT_ATOMIC     the BH stack is taken with a load and a store
 *                           instead of an exchange (shows property (b) bites)
 *   -DET_KICK: the kick is edge-triggered (epoll); with it
 *   BUG_NB_SEES_ET_KICK     the non-blocking poll fetches the kick's edge
 *   BUG_BH_WAKE_LOAD_FIRST  aio_bh_schedule's wake_sleeper() loads
 *                           notify_me before its push is visible
 *   -DPASS_ON: also check that the home thread is woken for what a BH
 *   run by the non-blocking thread did (the ghost 'unseen' joins
 *   'outstanding'); with it
 *   BUG_NB_NO_PASS_ON       a non-blocking poll on another thread that ran
 *                           BHs does not notify: the home thread sleeps
 *                           while its caller waits for what they did
 *   BUG_ANNOUNCE_AFTER_CHECK  the poll announces only once N0 found that it
 *                           will sleep, and does not look again (N2) after
 *                           announcing: the wrong form of "a poll that will
 *                           not wait does not announce"
 *   BUG_NOTIFY_SKIP_NO_FENCE  aio_notify() returns early when it loads
 *                           notified set, with no fence before the load: the
 *                           caller's work may become visible after the load
 *                           that decided to return (why aio_notify always
 *                           stores; -DHC_LAST is its control)
 *
 * -DEMBED: the home thread is a host loop driving an embedded context
 * (src/embed.c): prepare (N1 once, N2), the host's own sleep on the
 * aggregate object, check (wait with timeout 0, N4..N6), dispatch, and up to
 * NESTED nested blocking polls from host callbacks (before the host's sleep
 * or between check and dispatch).  Bug variants with -DEMBED:
 *   BUG_EMBED_NO_ANNOUNCE        prepare does not raise notify_me
 *   BUG_EMBED_ANNOUNCE_FLAG      notify_me is a flag, not a count: a nested
 *                                poll's N4 lowers the host's announcement
 *   BUG_EMBED_NESTED_NO_PASS_ON  a nested poll inside an announced host sleep
 *                                accepts without passing the news on: the host
 *                                sleeps on a timeout/descriptor set from
 *                                before it
 *   BUG_NONBLOCKING_ACCEPT       as above, against the host's sleep
 *   BUG_EMBED_ANNOUNCE_LATE      prepare looks for work (N2) before it
 *                                announces (N1)
 *   BUG_STALE_ACCEPT_AFTER_KICK  a nested poll that did not announce consumes
 *                                the kick and accepts only what N0 read: the
 *                                kick's news, counted later, is not passed on
 *                                to the host's announced sleep
 * The liveness form runs with -DEMBED too (-DLTL, pan -a -f), with one
 * work item per producer (-DROUNDS=1) to keep it to seconds.
 * -DFUTEX_KICK: the eventfd backends' two-place wake-up object
 * (src/posix/kick.h): a blocking wait that watches nothing sleeps on a futex
 * word, one that watches descriptors on the eventfd ('kick'); the home
 * thread publishes where it waits in 'place' (the word, the eventfd, or
 * awake between waits), the kick stores the word and then reads 'place',
 * and wakes only a place somebody waits at.  Each wait picks its place
 * freely (in the C code the place follows from the snapshot, so this covers
 * every order of registrations).  With -DET_KICK too for the epoll engine.
 * Bugs:
 *   BUG_KICK_NO_RECHECK          a wait that moves to the eventfd does not
 *                                look at the word: a kick that still read
 *                                "word" woke nobody
 *   BUG_KICK_LOOK_FIRST          the kick reads 'place' before it stores
 *                                the word
 *   BUG_KICK_WORD_NO_MOVE        a wait on the word does not publish it
 * (Not with -DEMBED: an embedded context's waits are pinned to the eventfd,
 * which is the model without FUTEX_KICK; the pin's hand-over of a kick that
 * went to the word is tests/test_kick.c's.)
 * -DEMBED -DURING: the backend is io_uring (see the state below).  Bugs:
 *   BUG_URING_NO_ARM             prepare does not submit (embed_arm)
 *   BUG_URING_CLEAR_NO_REARM     clear_kick leaves the wake-up request for
 *                                the next wait instead of re-submitting it
 *
 * Properties:
 *   (a) no lost wake-up.  Safety form: no thread has an end label; the home
 *       thread may only leave its sleep without the kick (and terminate) when
 *       every producer and the non-blocking thread are done and nothing is
 *       outstanding (no queued BH, no handler change its snapshot lacks).  A
 *       home thread blocked at 'sleep' for ever with work outstanding is an
 *       invalid end state.  -DSTRICT also requires that no aio_notify() came
 *       after its N2 (even one whose work another thread has done).
 *       Liveness form (-DLTL, pan -a -f): [] (outstanding -> <> !outstanding).
 *   (b) every BH runs exactly once: assert at dispatch (never twice) and at
 *       the end (ran == pushed).
 *   (c) callbacks never run on two threads at once: assert(in_cb == 1).
 *
 * Every statement is one atomic step and the steps of all threads interleave:
 * sequential consistency, which is what the seq_cst atomics of the C code give
 * for the operations modelled here.  The BUG_NO_BARRIER* variants add a
 * one-entry store buffer on each side of the Dekker pair.
 * pan needs -DNFAIR=3 for -f with BUG_TWO_BLOCKERS (six processes).
 */

#ifdef BUG_NO_BARRIER          /* both halves of Dekker's pattern */
#define BUG_NO_BARRIER_NOTIFY   /* aio_notify(): A2's load may pass A1's store */
#define BUG_NO_BARRIER_POLL     /* blocking poll: N2's loads may pass N1's store */
#endif

/* -DET_KICK: the epoll engine's kick (src/posix/backend-epoll.c), an
 * eventfd in the home set edge-triggered: the wait that fetches the edge
 * consumes it (clear_kick() reads nothing, but for an occasional drain, which
 * N5's "kick = false" still models).  Level-triggered otherwise: a wait only
 * sees the kick, and N5's clear_kick() consumes it.  BUG_NB_SEES_ET_KICK: the
 * non-blocking poll's wait is on the set with the kick and fetches (and so
 * consumes) an edge it does not report: what the side set excludes. */
#ifdef BUG_NB_SEES_ET_KICK
#define ET_KICK
#endif
#ifdef ET_KICK
#define FETCH_KICK atomic { kick -> kicked = true; kick = false }
#define PEEK_KICK  atomic { kicked = kick; kick = false }
#else
#define FETCH_KICK kick -> kicked = true
#define PEEK_KICK  kicked = kick
#endif

#ifndef NPROD
#define NPROD 2          /* producer threads */
#endif
#ifndef ROUNDS
#define ROUNDS 2         /* work items each producer hands over */
#endif
#ifndef NB_POLLS
#define NB_POLLS 2       /* aio_poll(ctx, false) calls of the non-blocking thread */
#endif
#ifndef B_ROUNDS
#define B_ROUNDS 2       /* blocking polls of the intruder (BUG_TWO_BLOCKERS) */
#endif
#ifndef FD_WAKES
#define FD_WAKES 1       /* sleeps that may end for a descriptor, without the kick */
#endif

/* What producer p hands over in round r.  Default: producer 0 schedules two
 * bottom halves, producer 1 changes a handler and then schedules a bottom
 * half.  -DANY_WORK lets every round be either (a larger state space). */
#ifdef ANY_WORK
#define IS_BH(p, r) true
#define IS_HC(p, r) true
#elif defined(HC_LAST) || defined(BUG_NOTIFY_SKIP_NO_FENCE)
/* The handler change last: a later notification of the same producer would
 * otherwise bring the home thread round to the late generation bump. */
#define IS_HC(p, r) ((p) == 1 && (r) == ROUNDS - 1)
#define IS_BH(p, r) (!IS_HC(p, r))
#else
#define IS_HC(p, r) ((p) == 1 && (r) == 0)
#define IS_BH(p, r) (!IS_HC(p, r))
#endif

#define NITEMS (NPROD * ROUNDS)   /* <= 8: items are bits of a byte */
#define NFIN   (NPROD + 1)        /* threads that terminate: producers + non-blocking */

/* ---- shared state (struct AioContext) ------------------------------------ */
byte notify_me;          /* atomic_int notify_me */
bool notified;           /* atomic_bool notified */
bool kick;               /* the eventfd / pipe / Win32 event: level-triggered */
#ifdef URING
/* -DEMBED -DURING: io_uring (src/posix/backend-io-uring.c).  kick is the
 * futex word; the host sleeps on the ring, readable while a completion
 * waits (cqe).  The word only makes a completion through a FUTEX_WAIT
 * request in the kernel (req), armed by a submission (ARM: prepare's
 * embed_arm, every blocking wait, clear_kick when embedded); a request
 * armed while the word is set completes at once. */
bool req;                /* the FUTEX_WAIT is in the kernel */
bool cqe;                /* its completion waits in the CQ: the ring is readable */
bool armed;              /* be->wake_armed */
#endif
bool kick_pending;       /* atomic_bool kick_pending */
byte stack;              /* ctx->bh_pending: the set of queued oneshot BHs (bit i = item i) */
bool hc_pending;         /* ctx->generation moved past the home thread's snapshot */
bool dispatch_lock;      /* the dispatch right (ctx->dispatch_lock) */

/* ---- bookkeeping for the properties (not in the C code) ------------------ */
byte pushed;             /* BHs scheduled so far (bit i = item i) */
byte ran;                /* BHs whose callback has run (bit i = item i) */
byte in_cb;              /* callbacks running right now */
byte finished;           /* producers and non-blocking thread that have terminated */
bool owed;               /* an A1 happened after the home thread's N2 read 'notified' */
/* A BH ran on the non-blocking thread and the home thread has not come back
 * from a poll since: its caller, in `while (!done) aio_poll(ctx, true)`,
 * has not seen what that BH did.  The producer's wake-up skipped the
 * notification (the loop was awake), so only the non-blocking poll's
 * pass-on (dispatch_round in src/poll.c) can wake it for that. */
bool unseen;
/* notified holds a store of that pass-on (made after the BH ran, so an
 * accept that reads it also sees what the BH did). */
bool news;
byte fd_wakes = FD_WAKES;

#ifdef PASS_ON
#define outstanding (stack != 0 || hc_pending || unseen)
#define GHOST(x) x
#else
#define outstanding (stack != 0 || hc_pending)
#define GHOST(x) skip
#endif

#ifdef FUTEX_KICK
#ifdef EMBED
#error "FUTEX_KICK models a context that is not embedded"
#endif
#define AWAKE   0        /* AIO_KICK_AWAKE */
#define AT_FD   1        /* AIO_KICK_ON_FD */
#define AT_WORD 2        /* AIO_KICK_ON_WORD */
bool word;               /* AioKick.word, the futex word */
byte place;              /* AioKick.on */
bool last_fd;            /* AioKick.last_fd: the last wait was on the eventfd */
bool fwait;              /* the home thread is queued in FUTEX_WAIT */
#endif

#ifdef URING
#define WAKE cqe
/* ops->kick(): store the word, then FUTEX_WAKE the request if armed. */
#define KICK() kick = true; atomic { if :: req -> req = false; cqe = true :: else fi }
/* prep_wake() + io_uring_submit(): FUTEX_WAIT(word == 0). */
#define ARM() atomic { if :: !armed -> armed = true; if :: kick -> cqe = true :: else -> req = true fi :: else fi }
/* reap(): the wake-up completion is the kick. */
#define REAP(k) atomic { k = cqe; cqe = false }
#elif defined(FUTEX_KICK)
#define WAKE (kick || word)
/* FUTEX_WAKE: dequeues the sleeper if it is queued. */
#define FWAKE() atomic { if :: fwait -> fwait = false :: else fi }
#ifdef BUG_KICK_LOOK_FIRST
#define KICK() if \
    :: place == AT_WORD -> word = true; FWAKE() \
    :: place == AT_FD -> word = true; kick = true \
    :: place == AWAKE -> word = true \
    fi
#else
/* aio__kick_signal(): seq_cst store of the word, then the load of 'on';
 * onto an awake home thread the word is all. */
#define KICK() word = true; if \
    :: place == AT_WORD -> FWAKE() \
    :: place == AT_FD -> kick = true \
    :: place == AWAKE \
    fi
#endif
#define REAP(k) PEEK_KICK
#else
#define WAKE kick
#define KICK() kick = true
#define REAP(k) PEEK_KICK /* k is always kicked */
#endif

/* -DSTRICT: also count a notification as owed after the home thread decided
 * to sleep, even if its work has been dealt with by another thread by now
 * ("every aio_notify() after N2 ends the sleep"). */
#ifdef STRICT
#define OWED_OK (!owed)
#else
#define OWED_OK true
#endif

#ifdef LTL
/* (a) as liveness: whatever is handed over is eventually dealt with. */
ltl no_lost_wakeup { [] (outstanding -> <> !outstanding) }
#endif

/* ---- aio_notify() (src/poll.c) -------------------------------------------- */
inline aio_notify()
{
#ifdef BUG_NO_BARRIER_NOTIFY
    /* No full barrier between A1 and A2: the store may sit in the store
     * buffer while the load is performed.  Either order can happen. */
    if
    :: atomic { notified = true; owed = true; GHOST(news = news || passing) };  /* A1 */
       seen = notify_me                              /* A2 (load) */
    :: seen = notify_me;                             /* A2 performed first */
       atomic { notified = true; owed = true; GHOST(news = news || passing) }   /* A1 drains later */
    fi;
#else
    atomic { notified = true; owed = true; GHOST(news = news || passing) };  /* A1: seq_cst store */
    seen = notify_me;                                /* A2: seq_cst load */
#endif
    if
    :: seen > 0 ->
       if
       :: kick_pending -> skip                       /* A3': plain load: a kick is on its way */
       :: else ->
          atomic { old = kick_pending; kick_pending = true };  /* A3: exchange */
          if
          :: !old -> KICK()                          /* A4: ops->kick() */
          :: else
          fi
       fi
    :: else
    fi;
    seen = 0; old = false
}

/* ---- aio__bh_dispatch() on the stack taken by the caller ------------------ */
inline dispatch_run(nb)
{
#ifdef BUG_TAKE_NOT_ATOMIC
    mine = stack;                                    /* load ... */
    stack = 0;                                       /* ... then store: a push in between is lost */
#else
    atomic { mine = stack; stack = 0 };              /* atomic_exchange(&bh_pending, NULL) */
#endif
    /* The callbacks of the batch run one after the other on this thread; the
     * model runs the batch as one step between entering and leaving. */
    if
    :: mine != 0 ->
       in_cb++;
       atomic {
           assert(in_cb == 1);                       /* (c) never two threads in callbacks */
           assert((ran & mine) == 0);                /* (b) at most once */
           ran = ran | mine;
           GHOST(if
           :: nb -> unseen = true                    /* bookkeeping: ran off the home thread */
           :: else
           fi)
       };
       in_cb--
    :: else
    fi
}

inline dispatch()
{
    dispatch_run(false);
    mine = 0
}

/* ---- producers: aio_bh_schedule_oneshot() / aio_set_fd_handler() ---------- */
proctype Producer(byte p)
{
    byte r = 0;
    bool was_empty, old;
    bool passing;                                    /* always false: not a pass-on */
    byte seen, bseen;
    do
    :: r < ROUNDS ->
       if
       :: IS_BH(p, r) ->
          /* a oneshot bottom half (src/bh.c): bh_push is a seq_cst CAS;
           * only a push onto an empty stack wakes, and only a poll that has
           * announced itself (wake_sleeper: the pending stack is what N2
           * reads, so a BH needs no 'notified'). */
#ifdef BUG_BH_WAKE_LOAD_FIRST
          /* wake_sleeper's load of notify_me performed before the push (a
           * release CAS and a relaxed load allow it on weak CPUs). */
          bseen = notify_me;
#endif
          atomic {
              was_empty = (stack == 0);
              stack = stack | (1 << (p * ROUNDS + r));
              pushed = pushed | (1 << (p * ROUNDS + r))
          };
#ifndef BUG_BH_WAKE_LOAD_FIRST
          bseen = notify_me;                         /* wake_sleeper: seq_cst load */
#endif
          if
          :: was_empty && bseen > 0 -> aio_notify()
          :: else                                    /* awake (sees the stack at N2), or
                                                      * covered by the head's wake-up */
          fi;
          was_empty = false; bseen = 0
       :: IS_HC(p, r) ->
          /* a handler change (src/sources.c source_set): generation++ under
           * list_lock, then always aio_notify(): the home thread must come
           * round and take a new snapshot.  Only the home thread can. */
#ifdef BUG_NOTIFY_SKIP_NO_FENCE
          /* An "already notified" early return in aio_notify() (libuv's
           * uv_async_send check) without a fence before its load: the load
           * may be performed while the generation bump still sits in the
           * store buffer; it drains after the return. */
          if
          :: notified -> hc_pending = true
          :: else -> hc_pending = true; aio_notify()
          fi
#else
          hc_pending = true;
          aio_notify()
#endif
       fi;
       r++
    :: else -> break
    od;
    finished++
}

/* ---- one aio_poll(ctx, true) on the home thread (and, in BUG_TWO_BLOCKERS,
 *      an intruder running the same code): N0..N7.  Expanded once in
 *      Blocking and once in Host (a nested blocking poll from a host-loop
 *      callback), which declare its locals. ---------------------------------- */
inline blocking_poll(home, pass_on)
{
    atomic { !dispatch_lock -> dispatch_lock = true };   /* dispatch_acquire(wait) */
    if
    :: home -> hc_pending = false                    /* sources_begin_walk: new snapshot */
    :: else
    fi;
N0: /* first sleep_timeout(): decides drop_right and the announcement.
     * 'notified' is notify_seq != notify_seen: notifiers only bump the
     * counter and only this thread stores notify_seen, so a load of the
     * counter that finds it ahead is an exchange of the flag when the poll
     * then stores what it read.  A poll that will not wait does exactly
     * that, at this load: it accepts here and does not announce (pann). */
    if
    :: atomic { notified -> notified = false; acc = true; sleepy = false;
                GHOST(if                             /* reading the pass-on's store */
                :: home && news -> unseen = false; news = false
                :: else
                fi) }
    :: else ->
       if
       :: stack != 0 -> sleepy = false
       :: else -> sleepy = true
       fi
    fi;
    pann = sleepy;
    if
    :: sleepy -> dropped = true; dispatch_lock = false   /* release the right while asleep */
    :: else
    fi;
N1: /* only a poll that may sleep announces */
    if
    :: pann ->
#if defined(BUG_EMBED_ANNOUNCE_FLAG)
       notify_me = 1;                                /* a flag, not a count */
#elif defined(BUG_NO_BARRIER_POLL)
       /* The raise may stay in the store buffer past the loads of N2. */
       if
       :: notify_me++; n1done = true
       :: n1done = false
       fi;
#else
       notify_me++;                                  /* seq_cst RMW */
#endif
       skip
    :: else
    fi;
N2: /* second sleep_timeout(), only if the first said "may sleep" */
    if
#ifdef BUG_ANNOUNCE_AFTER_CHECK
    /* Announced because N0 found nothing, with no second look: a
     * notification or a BH between N0 and N1 saw notify_me == 0. */
    :: sleepy -> skip
    :: false ->
#else
    :: sleepy ->
#endif
       atomic {
           if
           :: home -> owed = false                   /* from here on, a notify must wake us */
           :: else
           fi;
           if
           :: notified -> sleepy = false
           :: else
           fi
       };
#ifdef BUG_NO_BARRIER_POLL
       if
       :: !n1done -> notify_me++; n1done = true      /* drains between the two loads */
       :: true
       fi;
#endif
       if
       :: sleepy && stack != 0 -> sleepy = false
       :: else
       fi
    :: else
    fi;
#ifdef BUG_NO_BARRIER_POLL
    if
    :: pann && !n1done -> notify_me++                /* the system call drains it at the latest */
    :: else
    fi;
    n1done = false;
#endif
N3:
    if
    :: sleepy ->
#ifdef URING
       ARM();                                        /* io_uring: the wait submits first */
#endif
#ifdef FUTEX_KICK
       if
       :: true ->                                    /* nothing watched: the word */
#ifndef BUG_KICK_WORD_NO_MOVE
          place = AT_WORD;                           /* seq_cst store of 'on' */
#endif
          last_fd = false;
          if
          :: word -> kicked = true                   /* seq_cst load: kicked already */
          :: else ->
             /* FUTEX_WAIT(word, 0): the kernel compares and queues in one step */
             atomic { if :: !word -> fwait = true :: else fi };
fsleep:      if
             :: !fwait -> kicked = word              /* woken, or the compare failed */
             :: atomic { fwait && fd_wakes > 0 -> fd_wakes--; fwait = false }  /* its timeout */
             :: finished == NFIN && !outstanding && OWED_OK && !word && !dispatch_lock ->
                if
                :: home -> assert(ran == pushed && in_cb == 0)
                :: else
                fi;
                goto idle
             fi
          fi
       :: true ->                                    /* descriptors watched: the eventfd */
          place = AT_FD;                             /* aio__kick_enter_fd: seq_cst store */
          last_fd = true;
#ifndef BUG_KICK_NO_RECHECK
          if
          :: word -> kicked = true                   /* a kick that read "word": no sleep */
          :: else ->
#endif
sleep:       if
             :: FETCH_KICK
             :: atomic { fd_wakes > 0 -> fd_wakes-- }
             :: finished == NFIN && !outstanding && OWED_OK && !kick && !word && !dispatch_lock ->
                /* A word set here with the eventfd silent is the lost kick. */
                if
                :: home -> assert(ran == pushed && in_cb == 0)
                :: else
                fi;
                goto idle
             fi
#ifndef BUG_KICK_NO_RECHECK
          fi
#endif
       fi;
       place = AWAKE                                 /* after the wait: release store */
#else
sleep:  /* ops->wait(timeout -1, with_kick): blocks until the kick is set */
       if
#ifdef URING
       :: WAKE -> REAP(kicked)
#else
       :: FETCH_KICK
#endif
       :: atomic { fd_wakes > 0 -> fd_wakes-- }      /* a descriptor ended the sleep first */
       :: finished == NFIN && !outstanding && OWED_OK && !WAKE && !dispatch_lock ->
          /* Nothing was handed over that this sleep still owes: from here on
           * sleeping forever is correct.  Any other sleep that never ends
           * (stuck at 'sleep') is an invalid end state: a lost wake-up. */
          if
          :: home -> assert(ran == pushed && in_cb == 0)   /* (b) at least once */
          :: else
          fi;
          goto idle
       fi
#endif
    :: else ->
       if
       :: true                                       /* nothing to watch: no system call */
#ifdef URING
       :: ARM(); REAP(kicked)                        /* wait(timeout 0) over the fds */
#elif defined(FUTEX_KICK)
       :: place = AT_FD; last_fd = true;             /* wait(timeout 0) over the fds */
          if
          :: word -> kicked = true
          :: else -> PEEK_KICK
          fi;
          place = AWAKE
       :: place = AT_WORD; last_fd = false;          /* wait(timeout 0), nothing watched */
          kicked = word;
          place = AWAKE
#else
       :: PEEK_KICK                                  /* wait(timeout 0) over the fds */
#endif
       fi
    fi;
N4: /* only what N1 raised */
    if
    :: pann ->
#ifdef BUG_EMBED_ANNOUNCE_FLAG
       notify_me = 0;                                /* takes the host's down too */
#else
       notify_me--;                                  /* release */
#endif
       skip
    :: else
    fi;
N5:
    if
    :: kicked ->
#ifdef BUG_CLEAR_AFTER_REARM
       kick_pending = false;
#ifdef FUTEX_KICK
       word = false;
#endif
       kick = false
#else
#ifdef FUTEX_KICK
       word = false;                                 /* aio__kick_clear() */
       if
       :: last_fd -> kick = false                    /* the backend's read (ET: the drain) */
       :: else
       fi;
#else
       kick = false;                                 /* ops->clear_kick() */
#endif
#ifdef URING
       armed = false;
#ifndef BUG_URING_CLEAR_NO_REARM
       ARM();                                        /* embedded: re-submit at once */
#endif
#endif
       kick_pending = false                          /* then re-arm */
#endif
    :: else
    fi;
N6: /* accept: the load of notify_seq, then notify_seen = what it read (the
     * flag's exchange); a poll that did not announce accepted at N0, and
     * accepts again after consuming a kick, whose news may have come since */
    if
#ifdef BUG_STALE_ACCEPT_AFTER_KICK
    :: pann ->
#else
    :: pann || kicked ->
#endif
       atomic {
           GHOST(if                                  /* reading the pass-on's store */
           :: home && notified && news -> unseen = false; news = false
           :: else
           fi);
           acc = acc || notified;                    /* N0's accept and this one: the code's
                                                      * one comparison with notify_seen */
           notified = false
       }
    :: else
    fi;
#ifndef BUG_EMBED_NESTED_NO_PASS_ON
    if
    :: pass_on && acc ->                             /* a host sleep is announced on
                                                      * parameters from before this
                                                      * poll: pass the news on, a
                                                      * kick without notified */
       atomic { old = kick_pending; kick_pending = true };
       if
       :: !old -> KICK()
       :: else
       fi;
       old = false
    :: else
    fi;
#endif
    acc = false;
    if
    :: dropped -> atomic { !dispatch_lock -> dispatch_lock = true }
    :: else
    fi;
N7: dispatch();
    GHOST(if
    :: home -> unseen = false                        /* the caller looks at what ran */
    :: else
    fi);
    dispatch_lock = false;                           /* dispatch_release */
    sleepy = false; kicked = false; dropped = false; pann = false;
}

proctype Blocking(bool home)
{
    bool sleepy, kicked, dropped, n1done, acc, old, pann;
    byte mine, seen;
    byte rounds = 0;

poll:
    if
    :: !home && rounds == B_ROUNDS -> goto out
    :: else
    fi;
    blocking_poll(home, false);
    if
    :: !home -> rounds++
    :: else
    fi;
    goto poll;
idle:   /* terminate: a valid end state.  The model has no end labels: a
         * thread blocked anywhere at the end is an invalid end state. */
    skip;
out:
    skip
}

#ifdef EMBED
/* ---- -DEMBED: the home thread is a host loop driving the context
 *      (src/embed.c, docs/wakeup-protocol.md "Embedded contexts") --------- */
#ifndef NESTED
#define NESTED 1         /* nested blocking polls from host-loop callbacks */
#endif

proctype Host()
{
    bool sleepy, kicked, dropped, n1done, acc, old, pann;   /* the nested poll's */
    bool announced, hsleepy;
    byte mine, seen;
    byte nested = NESTED;

prepare:  /* aio_embed_prepare(): N1 once per announcement, then N2 */
#ifdef BUG_EMBED_ANNOUNCE_LATE
    /* Looks for work before announcing: a notification between the look
     * and the announcement sees notify_me == 0 and does not kick. */
    atomic {
        owed = false;
        hsleepy = !notified
    };
    if
    :: hsleepy && stack != 0 -> hsleepy = false
    :: else
    fi;
#endif
#ifndef BUG_EMBED_NO_ANNOUNCE
    if
    :: !announced ->
#ifdef BUG_EMBED_ANNOUNCE_FLAG
       notify_me = 1;
#else
       notify_me++;                                  /* aio__announce: seq_cst RMW */
#endif
       announced = true
    :: else
    fi;
#endif
#ifndef BUG_EMBED_ANNOUNCE_LATE
    atomic {
        owed = false;                                /* from here on, a notify must wake the host */
        hsleepy = !notified
    };
    if
    :: hsleepy && stack != 0 -> hsleepy = false      /* sleep_timeout(): BHs */
    :: else
    fi;
#endif
#if defined(URING) && !defined(BUG_URING_NO_ARM)
    ARM();                                           /* embed_arm, after the announcement */
#endif
    hc_pending = false;                              /* query: the set the host waits on */
cb1:  /* host callbacks before the host sleeps: AIO_WAIT_WHILE from main-loop code */
    if
    :: nested > 0 -> nested--; blocking_poll(true, announced)
    :: true
    fi;
host_sleep:  /* the host's own wait on the aggregate object (or the set) */
    if
    :: hsleepy ->
hsleep:
       if
       :: WAKE -> skip                               /* the aggregate is readable */
       :: atomic { fd_wakes > 0 -> fd_wakes-- }      /* another source or a descriptor */
       :: finished == NFIN && !outstanding && OWED_OK && !WAKE && !dispatch_lock ->
          assert(ran == pushed && in_cb == 0);
          goto idle
       fi
    :: else
    fi;
check:  /* aio_embed_check(): wait(timeout 0, with_kick), then N4, N5, N6 */
#ifdef URING
    ARM();
#endif
    REAP(kicked);
    if
    :: announced ->
#ifdef BUG_EMBED_ANNOUNCE_FLAG
       notify_me = 0;
#else
       notify_me--;                                  /* release */
#endif
       announced = false
    :: else
    fi;
    if
#ifdef URING
    :: kicked -> kick = false; armed = false;
#ifndef BUG_URING_CLEAR_NO_REARM
       ARM();
#endif
       kick_pending = false
#else
    :: kicked -> kick = false; kick_pending = false  /* clear, then re-arm */
#endif
    :: else
    fi;
    atomic {                                         /* accept */
        GHOST(if
        :: notified && news -> unseen = false; news = false
        :: else
        fi);
        notified = false
    };
    kicked = false;
    hc_pending = false;                              /* check's snapshot */
cb2:  /* a host callback between check and dispatch */
    if
    :: nested > 0 -> nested--; blocking_poll(true, announced)
    :: true
    fi;
dispatch_:  /* aio_embed_dispatch(): under the dispatch right */
    atomic { !dispatch_lock -> dispatch_lock = true };
    dispatch();
    GHOST(unseen = false);                           /* host callbacks run from here */
    dispatch_lock = false;
    goto prepare;
idle:
    skip
}
#endif

/* ---- aio_poll(ctx, false) on another thread ------------------------------- */
proctype NonBlocking()
{
    byte n = 0;
    bool got, old, passing;
    byte seen;
    byte mine;
    do
    :: n < NB_POLLS ->
#ifdef BUG_NB_NO_RIGHT
       got = true;
#else
       atomic {                                      /* dispatch_acquire(trylock) */
           if
           :: !dispatch_lock -> dispatch_lock = true; got = true
           :: else -> got = false
           fi
       };
#endif
       if
       :: got ->
#ifdef BUG_NONBLOCKING_ACCEPT
          /* QEMU before b37548fcd1: the non-blocking poll waits with the kick
           * and accepts, exactly as N5/N6 do. */
          if
          :: kick -> kick = false; kick_pending = false
          :: else
          fi;
          notified = false;
#endif
#ifdef BUG_NB_SEES_ET_KICK
          atomic { kick -> kick = false };           /* fetched, not reported */
#endif
          /* poll_nonblocking(): with_kick false, touches neither notified
           * nor the kick; then the same dispatch as N7. */
          dispatch_run(true);
          if
          :: mine != 0 ->
#ifndef BUG_NB_NO_PASS_ON
             /* dispatch_round: a foreign poll that ran BHs passes the news
              * on, before it gives the dispatch right back. */
             /* One step: the interleavings of aio_notify()'s own steps are
              * explored through the producers'; what matters here is only
              * that it comes after the run and before the right is given
              * back (the non-atomic form stores 15 % more states and finds
              * nothing else). */
             atomic { passing = true; aio_notify(); passing = false };
#endif
             mine = 0
          :: else
          fi;
#ifndef BUG_NB_NO_RIGHT
          dispatch_lock = false;
#endif
          got = false
       :: else                                       /* somebody dispatches: return 0 */
       fi;
       n++
    :: else -> break
    od;
    finished++
}

init
{
    byte p = 0;
    atomic {
#ifdef EMBED
        run Host();                                  /* the home thread drives a host loop */
#else
        run Blocking(true);                          /* the home thread */
#endif
#ifdef BUG_TWO_BLOCKERS
        run Blocking(false);                         /* a second blocking poller */
#endif
        run NonBlocking();
        do
        :: p < NPROD -> run Producer(p); p++
        :: else -> break
        od
    }
}
