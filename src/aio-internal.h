/* SPDX-License-Identifier: MIT */
/* The context and the objects it owns, shared by the core's files. */
#ifndef AIOPOLL_AIO_INTERNAL_H
#define AIOPOLL_AIO_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <aiopoll/aio.h>

#include "aio-test-hooks.h"
#include "backend.h"
#include "dispatch.h"
#include "home.h"
#include "platform.h"

/* ---- Bottom halves (bh.c) ----------------------------------------------- */

enum {
    BH_QUEUED = 1u << 0,    /* on ctx->bh_pending or ctx->bh_taken, which
                             * own ->next; cleared by the dispatcher's claim */
    BH_SCHEDULED = 1u << 1, /* run the callback when dequeued */
    BH_DELETED = 1u << 2,   /* free when dequeued */
    BH_ONESHOT = 1u << 3,   /* free after the callback ran */
    BH_RUNNABLE = BH_QUEUED | BH_SCHEDULED, /* will run; the claim clears both */
};

struct AioBH {
    AioContext *ctx;
    AioHandler *cb;
    void *opaque;
    atomic_uint flags;
    AioBH *next;                 /* queue link, valid while QUEUED */
    AioBH *all_prev, *all_next;  /* ctx->bh_all, for teardown; not oneshots */
};

/* Appends the bottom halves pending now, in scheduling order, behind those
 * that outer dispatches (this call is nested in their callbacks) took and
 * have not run yet, and runs them all. Caller holds the dispatch right.
 * Returns true if a callback ran. */
bool aio__bh_dispatch(AioContext *ctx);
/* True when a bottom half is queued or taken by a dispatch in progress and
 * not yet run (possibly cancelled: costs one spurious non-sleeping poll at
 * most). Any thread; exact for the dispatch-right holder. */
bool aio__bh_pending(AioContext *ctx);
void aio__bh_teardown(AioContext *ctx);

/* ---- Timers (timers.c) --------------------------------------------------- */

#define AIO_NCLOCKS 3 /* AIO_CLOCK_REALTIME, _HOST, _VIRTUAL */

struct AioTimer {
    AioContext *ctx;
    AioHandler *cb;
    void *opaque;
    AioClockType clock; /* fixed at creation: picks the heap */
    int64_t expire_ns;
    uint64_t seq;      /* arming order: ties fire first-armed first */
    size_t heap_index; /* SIZE_MAX when not armed; under ctx->timer_lock */
    AioTimer *all_prev, *all_next;
};

/* One clock's armed timers (ctx->timers[clock]), under ctx->timer_lock. */
typedef struct AioTimerHeap {
    AioTimer **heap;
    size_t len, cap;
    _Atomic int64_t earliest_ns; /* INT64_MAX when none: read without lock */
} AioTimerHeap;

/* Nanoseconds until the earliest deadline on any clock (0 if due), or -1 if
 * none. A stopped virtual clock has no deadline; HOST ones are capped at
 * AIO_HOST_SLEEP_MAX_NS so that a wall-clock jump is noticed. */
int64_t aio__timers_timeout_ns(AioContext *ctx);
/* Fires every expired timer. Caller holds the dispatch right. */
bool aio__timers_dispatch(AioContext *ctx);
void aio__timers_teardown(AioContext *ctx);

/* ---- Clocks (clock.c) ---------------------------------------------------- */

#define AIO_HOST_SLEEP_MAX_NS (100 * 1000000LL)

/* The clock of ctx's timers of that type: REALTIME honours the test clock. */
int64_t aio__timer_clock_now(AioContext *ctx, AioClockType type);
/* The virtual clock's reading and whether it is stopped, read together.
 * Any thread. */
int64_t aio__virtual_clock_read(bool *stopped);
/* fork() (src/fork.c): the process-wide locks of clock.c and wait.c, taken
 * before a fork and released on both sides after it. */
void aio__clock_fork_lock(void);
void aio__clock_fork_unlock(void);
void aio__wait_fork_lock(void);
void aio__wait_fork_unlock(void);
/* Registers ctx as having VIRTUAL timers (woken by every change of the
 * virtual clock) once; the context's destruction unregisters it. */
void aio__virtual_clock_register(AioContext *ctx);
void aio__virtual_clock_unregister(AioContext *ctx);

/* ---- Worker pool (work.c) ------------------------------------------------ */

typedef struct AioWorkPool AioWorkPool;

/* Drops unstarted work, joins the workers, frees the pool (aio.h: "The last
 * aio_context_unref() of a context whose pool has work"). First thing of a
 * context's destruction: running work still completes into the context. */
void aio__work_teardown(AioContext *ctx);
/* aio_context_after_fork(): drops the pool inherited from the parent (its
 * threads do not exist here; its unstarted work and completions are freed,
 * no fn or done of theirs runs). The next submission makes a new pool. */
void aio__work_after_fork(AioContext *ctx);

/* ---- Loop metrics (stats.c) ---------------------------------------------- */

/* Counters are relaxed atomics so that aio_context_get_stats() may read them
 * from any thread; the dispatch-right holder, their only writer for most of
 * them, updates them with a load and a store (aio__stats_inc), which costs
 * what a plain increment does: no lock prefix, no system call. Only
 * notify_syscalls has writers on any thread and uses a fetch-add, on a path
 * that makes a system call anyway. */
typedef struct AioStatsCounters {
    _Atomic uint64_t iterations, sleeps, wakeups_notify, wakeups_fd, wakeups_timer;
    _Atomic uint64_t notify_syscalls, bhs_run, timers_run, handlers_run, work_completed;
    _Atomic int64_t sleep_ns, callback_ns, longest_callback_ns;
    _Atomic(AioHandler *) longest_callback;
    /* aio_context_set_stats_timing(): time every callback. Off by default:
     * two clock reads per callback cost more than the 5% the hot paths may
     * lose to metrics (docs/performance.md). Relaxed: a late view only
     * times one callback more or less. */
    atomic_bool timing;
    unsigned cb_depth; /* timed callbacks in progress; right holder only */
} AioStatsCounters;

static inline void aio__stats_inc(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static inline void aio__stats_add_ns(_Atomic int64_t *c, int64_t ns)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + ns,
                          memory_order_relaxed);
}

/* Around every BH, fd and timer callback, on the dispatch-right holder:
 * begin returns the start time, end accounts the callback. */
int64_t aio__stats_cb_begin(AioContext *ctx);
void aio__stats_cb_end(AioContext *ctx, AioHandler *cb, int64_t start);

/* ---- Sources: fd handlers and event notifiers (sources.c) --------------- */

typedef struct AioSource AioSource;

struct AioSource {
    AioSource *prev, *next; /* ctx->sources, under list_lock */
    /* What the backend sees. watch.obj is this source's own object
     * (aio__object_open), closed only when the source is freed, i.e. when
     * no snapshot can name it: a backend never waits on a value that may
     * name something else by then. */
    AioWatch watch;
    /* The user's key, for finding the registration to replace or remove;
     * never handed to a backend (the descriptor may be closed, the notifier
     * freed, by the time anyone waits). */
    aio_fd_t fd;
    AioEventNotifier *notifier; /* notifier registrations; NULL for fds */
    bool is_external;
    AioHandler *io_read;
    AioHandler *io_write;
    AioPollHandler *io_poll;
    void *opaque;
    /* Set (under list_lock) when removed or replaced. A dispatching thread
     * re-checks it before every callback, so a handler removed from inside a
     * callback is never called again in the same round. */
    atomic_bool deleted;
    bool active;  /* in snapshots: not external-disabled, and watched when
                   * it has an interest */
    bool watched; /* backend->watch() succeeded and unwatch() is owed */
};

/* The live sources by user key (source-index.h). */
typedef struct AioSourceIndex {
    AioSource **slot; /* NULL: empty */
    size_t mask;      /* slots - 1; 0 while slot is NULL */
    size_t n;
} AioSourceIndex;

/*
 * One poll's snapshot of the dispatchable sources. ws is the backend's view
 * (the watches of the sources with an interest); srcs[] (io_poll-only ones
 * included) and the id map are the core's. No source in it is freed until
 * the poll that took it calls aio__sources_end_walk().
 */
typedef struct AioPollSet {
    AioWaitSet ws;
    AioWatch **watches; /* storage behind ws.watches */
    AioSource **srcs;
    size_t nsrcs, cap;
    AioSource **map; /* open addressing by watch.id; NULL = empty */
    size_t map_mask;
    bool walking; /* begin_walk registered it in ctx->walkers */
} AioPollSet;

/* Takes a snapshot of the dispatchable sources into set (reusing it when
 * nothing changed) and registers the caller as a walker: no source is freed
 * until aio__sources_end_walk(ctx, set). */
int aio__sources_begin_walk(AioContext *ctx, AioPollSet *set);
void aio__sources_end_walk(AioContext *ctx, AioPollSet *set);
/* Runs the handlers of the ready sources in set. */
bool aio__sources_dispatch(AioContext *ctx, AioPollSet *set);
/* Calls every io_poll handler once; true if any made progress. */
bool aio__sources_poll(AioContext *ctx, AioPollSet *set);
void aio__sources_teardown(AioContext *ctx);
/* aio_context_after_fork(): every watch leaves the backend / is made anew
 * on the current one. */
void aio__sources_unwatch_all(AioContext *ctx);
int aio__sources_watch_all(AioContext *ctx);
void aio__pollset_fini(AioContext *ctx, AioPollSet *set);

/* ---- Embedding in a host loop (embed.c, docs/embedding.md) --------------- */

/* A descriptor the host loop watches in descriptor-set mode: a duplicate
 * of a watch's own, so that its lifetime is the adapter's rhythm (one query
 * after it left the set) and not the source's. */
typedef struct AioEmbedHostFd {
    AioSourceId id;
    AioObject obj;
    unsigned interest;
    bool retiring; /* left the set at the last query; closed at the next */
} AioEmbedHostFd;

/* Home thread only (detach: or wherever the host loop can no longer call in). */
typedef struct AioEmbedState {
    bool attached;
    void *host;
    bool aggregated;       /* the host waits on `handle` alone */
    aio_handle_t handle;
    bool announced;        /* prepare raised notify_me; check lowers it */
    bool passed_on;        /* the fallback kick of aio__embed_stale, once per
                            * announcement */
    AioHandler *stale_cb;  /* aio_embed_set_stale_handler(); gets host */
    bool walking;          /* check took a walker on `set`; dispatch ends it */
    bool check_ready;      /* what that check answered */
    bool set_ok;           /* its wait succeeded: set's readiness is valid */
    int check_err;         /* its failure, for dispatch to report */
    unsigned query_gen;    /* query_set's generation at the last answer */
    unsigned accepts_at_check;
    unsigned dispatching;  /* aio_embed_dispatch() frames on the stack */
    AioPollSet set;        /* check -> dispatch */
    AioPollSet query_set;  /* descriptor-set mode's snapshot */
    AioEmbedHostFd *fds;   /* descriptor-set mode; sorted by id */
    size_t nfds, fds_cap;
} AioEmbedState;

/* ---- The context --------------------------------------------------------- */

struct AioContext {
    atomic_int refcnt;
    const AioBackendOps *ops;
    AioBackend *be;

    /* Ownership (src/home.h): the home thread's aio__thread_id() and the
     * blocking polls in progress there, in one word, so that "am I home,
     * and am I now blocking" is one compare-and-swap that
     * set_home_thread cannot slip between. */
    _Atomic uint64_t home;

    /* The wake-up protocol (poll.c; docs/wakeup-protocol.md), on cache
     * lines of their own: what aio_notify() reads or writes while no poll
     * is announced, and nothing an awake loop writes. The pads keep every
     * other field at least 64 bytes away, so whichever lines these words
     * occupy hold nothing else: the loop's per-iteration stores (the home
     * word and the dispatch right above, the stats and the BH stack below)
     * never take them from a notifier, which loses them only when the loop
     * reads notify_seq. */
    char notify_pad_before[64];
    /* Bumped by every aio_notify(); a notification is pending while it
     * differs from notify_seen. Only notifiers write it: a loop that accepts
     * stores its own copy instead of clearing a flag here, so an accept
     * takes nothing away from a notifier that is flooding. */
    _Atomic uint64_t notify_seq;
    atomic_int notify_me;  /* >0: a blocking poll may be sleeping */
    /* True from the aio_notify() that decided to kick until the blocking
     * poll that consumed the kick re-arms it: later notifiers skip the
     * redundant system call. Invariant: while true, the wake-up object is
     * signalled or its signalling notifier is on its way to kick(). */
    atomic_bool kick_pending;
    char notify_pad_after[64];

    /* The dispatch right (src/dispatch.h): who may run callbacks. Recursive
     * for the thread that holds it, so nested aio_poll works. */
    _Atomic uint64_t dispatch_owner; /* 0, or holder | AIO_DISPATCH_WAITER */
    unsigned dispatch_depth;         /* only touched by the holder */
    /* The waiting home thread's hand-off (src/dispatch.c). */
    aio_mutex_t dispatch_lock;
    aio_cond_t dispatch_cond;
    bool dispatch_handoff; /* dispatch_lock */

    /* Bottom halves (bh.c). bh_pending is a lock-free LIFO of queued BHs;
     * the dispatcher takes it whole, reverses it and appends it to bh_taken,
     * the FIFO of BHs taken but not yet run, which every (nested) dispatch
     * continues. bh_taken and its tail are written only by the
     * dispatch-right holder; bh_taken is atomic (relaxed) so that
     * aio__bh_pending() may read it without the right. Zeroed by calloc. */
    _Atomic(AioBH *) bh_pending;
    _Atomic(AioBH *) bh_taken;
    AioBH *bh_taken_tail;
    aio_mutex_t bh_lock; /* bh_all only: creation and deletion */
    AioBH *bh_all;

    /* Sources (sources.c). */
    aio_mutex_t list_lock;
    AioSource *sources;
    size_t nsources;           /* linked, removed ones included; list_lock */
    AioSourceIndex src_index;  /* the live ones by key; list_lock */
    /* generation and purge_needed are written under list_lock, walkers by
     * the polls themselves without it; all three are read without it by a
     * poll whose snapshot is current (aio__sources_begin_walk argues why). */
    atomic_uint walkers;     /* polls holding a snapshot */
    atomic_uint generation;  /* bumped on any change of the dispatchable set;
                              * never 0 */
    atomic_bool purge_needed; /* a removed source awaits the last walker */
    atomic_int external_disable_cnt;
    AioSourceId next_id; /* list_lock; ids are never reused */
    AioPollSet home_set;  /* reused by the home thread's outermost poll */
    bool home_set_busy;   /* only touched by the dispatch-right holder */

    /* Timers (timers.c): one heap per clock. */
    aio_mutex_t timer_lock;
    AioTimerHeap timers[AIO_NCLOCKS];
    /* Bit c set while timers[c] is not empty; written with its earliest_ns
     * (timer_lock), read without the lock. The loop's fast path: a poll on
     * a context without timers reads this one word, not every clock's. */
    atomic_uint timers_armed;
    uint64_t timer_seq;
    AioTimer *timer_all;
    /* On clock.c's list of contexts with VIRTUAL timers (its lock). */
    bool vclock_listed;
    AioContext *vclock_prev, *vclock_next;

    /* The worker pool (work.c), made on first use. */
    _Atomic(AioWorkPool *) pool;

    /* Loop metrics (stats.c). */
    AioStatsCounters stats;

    /* Adaptive polling (poll.c). */
    _Atomic int64_t poll_max_ns;
    _Atomic int64_t poll_grow;
    _Atomic int64_t poll_shrink;
    int64_t poll_ns; /* current window; dispatch-right holder only */

    /* fork() (context.c): aio__fork_generation() when this process got
     * the context. Any other value means we are a child that inherited it,
     * and must not touch kernel state shared with the parent. Read by every
     * poll, and by aio_notify() only when it is about to kick. */
    unsigned fork_gen;

    /* Set by a last aio_context_unref() on the thread that holds the
     * dispatch right; the outermost aio_poll of that thread destroys the
     * context on its way out. Dispatch-right holder only. */
    bool destroy_pending;

    /* Accepts so far (poll.c); home thread only. */
    unsigned accepts;
    /* The notify_seq value the last accept read: notifications up to it are
     * accepted. Home thread only (blocking polls, an embedded check); a
     * move of the home is ordered by the home word's compare-and-swap. */
    uint64_t notify_seen;
    /* A host loop driving this context (embed.c). */
    AioEmbedState embed;

#if AIOPOLL_TEST_HOOKS
    AioTestState test; /* aio-test-hooks.h */
#endif
};

/* Frees ctx and everything attached to it (context.c). */
void aio__context_destroy(AioContext *ctx);

/* True in a child process that inherited ctx through fork(). */
static inline bool aio__ctx_forked(const AioContext *ctx)
{
    return aio__fork_generation() != ctx->fork_gen;
}

/* cb(opaque), counted in *count; timed when timing is on. Writing ctx after
 * the callback is safe even when it dropped the last reference: destruction
 * from inside a callback waits for the outermost aio_poll to return. */
static inline void aio__stats_call(AioContext *ctx, AioHandler *cb, void *opaque,
                                   _Atomic uint64_t *count)
{
    aio__stats_inc(count);
    if (!atomic_load_explicit(&ctx->stats.timing, memory_order_relaxed)) {
        cb(opaque);
        return;
    }
    int64_t start = aio__stats_cb_begin(ctx);
    cb(opaque);
    aio__stats_cb_end(ctx, cb, start);
}

#endif
