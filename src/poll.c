/* SPDX-License-Identifier: MIT */
/*
 * aio_poll() and aio_notify(): the wake-up protocol.
 *
 * docs/wakeup-protocol.md is the long form. In short:
 *  - notify_me > 0 means "a blocking poll may be about to sleep or asleep";
 *    only then does aio_notify() pay for a system call (the backend's kick).
 *  - "notified", the sticky "something happened" state, is notify_seq
 *    ahead of notify_seen. aio_notify() bumps notify_seq before it looks at
 *    notify_me; a blocking poll that may sleep raises notify_me before it
 *    looks at notify_seq and the work queues. With both pairs sequentially
 *    consistent, at least one side sees the other: either the poller sees
 *    the news and does not sleep, or the notifier sees the poller and kicks.
 *    A poll that already knows it will not wait does not announce.
 *  - Only a blocking poll, which by construction runs on the home thread,
 *    accepts (stores notify_seen) and clears the kick. A non-blocking poll
 *    never touches either, so it cannot consume a wake-up that the home
 *    thread, asleep or about to be, still needs: QEMU's 2018 IOThread hang.
 *  - kick_pending makes one kick serve every notification until the poll
 *    that consumes it: under a notification flood against a sleeping loop
 *    only the first aio_notify() of each sleep pays for the system call.
 */
#include "aio-internal.h"
#include "embed-internal.h"

#define POLL_NS_INITIAL 4000 /* first busy-poll window once polling helps */
#define POLL_FACTOR_DEFAULT 2

void aio_notify(AioContext *ctx)
{
    if (!ctx) {
        return;
    }
    /* No "already notified" early return (docs/wakeup-protocol.md, "Why
     * aio_notify always stores"): without a fence it loses wake-ups (the
     * model's BUG_NOTIFY_SKIP_NO_FENCE), and with one it measured slower
     * than the store it saves. */
    /* Increment, then load: both seq_cst. This is the store->load pair of
     * Dekker's algorithm, the one reordering x86 also performs (through its
     * store buffer); weaker orders here reintroduce lost wake-ups on every
     * CPU. The increment is also a release of whatever the caller published
     * (a queued BH, an armed timer) before calling us. A read-modify-write,
     * not a store of a new value: two notifiers must not both store the
     * same one, or the poll that read the first would miss the second. */
    atomic_fetch_add(&ctx->notify_seq, 1);
    /* A child that inherited ctx through fork() shares the wake-up object
     * with the parent: kicking it would only wake the parent for nothing. */
    if (atomic_load(&ctx->notify_me) > 0 && !aio__ctx_forked(ctx)) {
        /* Somebody kicked and the kick has not been consumed yet: the
         * wake-up object is signalled (or about to be, by that notifier), so
         * the sleep ends anyway, and the poller re-reads notify_seq after it
         * re-arms kick_pending (consume_and_accept), so our news is not lost
         * either. seq_cst, after our increment. The plain load
         * first keeps a flood against a sleeping loop off the flag's cache
         * line: reading true is what the exchange would have read, and it
         * stores nothing. */
        if (!atomic_load(&ctx->kick_pending) && !atomic_exchange(&ctx->kick_pending, true)) {
            ctx->ops->kick(ctx->be);
            /* Any thread: an RMW, on a path that made a system call. */
            atomic_fetch_add_explicit(&ctx->stats.notify_syscalls, 1, memory_order_relaxed);
        }
    }
}

/* The dispatch right (src/dispatch.h). wait: the home thread in a blocking
 * poll or an embedded dispatch, the only callers that may wait for it. */
static bool dispatch_acquire(AioContext *ctx, uint64_t self, bool wait)
{
    uint64_t w = atomic_load_explicit(&ctx->dispatch_owner, memory_order_relaxed);
    /* Only this thread ever stores its own id (a waiter only adds its mark
     * to the holder's), so a relaxed load cannot mistake another holder for
     * us. */
    if (aio__dispatch_held_by(w, self)) {
        ctx->dispatch_depth++;
        return true;
    }
    /* acquire: pairs with the previous holder's release below, so that we
     * see what its callbacks wrote. A word that is not 0 is not tried: a
     * failing CAS would cost the RMW for nothing. */
    if (w != 0 || !atomic_compare_exchange_strong_explicit(&ctx->dispatch_owner, &w, self,
                                                           memory_order_acquire,
                                                           memory_order_relaxed)) {
        if (!wait) {
            return false;
        }
        aio__dispatch_wait(ctx, self);
    }
    ctx->dispatch_depth = 1;
    return true;
}

/* home_pinned: the caller holds a count on the home word from before it
 * took the right until after this release (a blocking poll; an embedded
 * dispatch, aio__dispatch_acquire below). Nobody can be waiting then: the
 * only waiter is the home thread, and the home cannot move while the count
 * is held. So a release store gives the right back; any other holder
 * exchanges, to see a waiter's mark. Dropping the right around a sleep thus
 * costs one CAS, not a lock pair. Test builds exchange here too and check
 * the premise. */
static void dispatch_release(AioContext *ctx, bool home_pinned)
{
    if (--ctx->dispatch_depth != 0) {
        return;
    }
    if (home_pinned && AIOPOLL_TEST_HOOKS) {
        uint64_t old = atomic_exchange_explicit(&ctx->dispatch_owner, 0, memory_order_release);
        aio__test_premise(!(old & AIO_DISPATCH_WAITER),
                          "the home thread's plain-store release of the dispatch right "
                          "found a waiter (the home moved while it held the right)");
    } else if (home_pinned) {
        atomic_store_explicit(&ctx->dispatch_owner, 0, memory_order_release);
    } else if (atomic_exchange_explicit(&ctx->dispatch_owner, 0, memory_order_release) &
               AIO_DISPATCH_WAITER) {
        aio__dispatch_wake(ctx);
    }
}

/* 0 when the poll must not sleep, else the timers' deadline (-1: none).
 * *seq: the notify_seq read (seq_cst), which an accept may store as seen.
 * Home thread. */
static int64_t sleep_timeout_seq(AioContext *ctx, uint64_t *seq)
{
    *seq = atomic_load(&ctx->notify_seq);
    if (*seq != ctx->notify_seen || aio__bh_pending(ctx)) {
        return 0;
    }
    return aio__timers_timeout_ns(ctx);
}

static int64_t sleep_timeout(AioContext *ctx)
{
    uint64_t seq;
    return sleep_timeout_seq(ctx, &seq);
}

/*
 * Adaptive polling: before sleeping, call the io_poll handlers for up to the
 * current window. notify_me stays 0 meanwhile, so aio_notify() costs the
 * notifier no system call; the loop sees its news in ctx->notify_seq instead.
 * Returns true when there is something to dispatch (do not sleep).
 */
static bool busy_poll(AioContext *ctx, AioPollSet *set, int64_t timeout, uint64_t *seq,
                      bool *progress)
{
    int64_t max = atomic_load_explicit(&ctx->poll_max_ns, memory_order_relaxed);
    if (ctx->poll_ns > max) {
        ctx->poll_ns = max;
    }
    int64_t window = ctx->poll_ns;
    if (window == 0) {
        return false;
    }
    if (timeout > 0 && timeout < window) {
        window = timeout;
    }
    int64_t now = aio__clock_ns();
    /* Saturated: max_ns may be anything up to INT64_MAX. */
    int64_t end = window < INT64_MAX - now ? now + window : INT64_MAX;
    do {
        if (aio__sources_poll(ctx, set)) {
            *progress = true;
            return true;
        }
        if (sleep_timeout_seq(ctx, seq) == 0) {
            return true;
        }
        aio__cpu_relax();
    } while (aio__clock_ns() < end);
    return false;
}

/* Grow the window when an event came soon after it ran out, shrink it when
 * events come too late for polling to pay. */
static void adapt_window(AioContext *ctx, int64_t block_ns)
{
    int64_t max = atomic_load_explicit(&ctx->poll_max_ns, memory_order_relaxed);
    if (max == 0) {
        ctx->poll_ns = 0;
        return;
    }
    if (block_ns <= ctx->poll_ns) {
        return; /* the window caught it */
    }
    if (block_ns > max) {
        int64_t shrink = atomic_load_explicit(&ctx->poll_shrink, memory_order_relaxed);
        ctx->poll_ns /= shrink ? shrink : POLL_FACTOR_DEFAULT;
        if (ctx->poll_ns < POLL_NS_INITIAL / 2) {
            ctx->poll_ns = 0;
        }
        return;
    }
    int64_t grow = atomic_load_explicit(&ctx->poll_grow, memory_order_relaxed);
    if (grow == 0) {
        grow = POLL_FACTOR_DEFAULT;
    }
    /* Saturate at max without computing poll_ns * grow when that would pass
     * it: any grow >= 2 is accepted, and the product overflows int64_t long
     * before max_ns = INT64_MAX (poll_ns > max / grow <=> poll_ns * grow >
     * max, for grow > 0). Shrinking divides and cannot overflow. */
    if (ctx->poll_ns == 0) {
        ctx->poll_ns = POLL_NS_INITIAL < max ? POLL_NS_INITIAL : max;
    } else if (ctx->poll_ns > max / grow) {
        ctx->poll_ns = max;
    } else {
        ctx->poll_ns *= grow;
    }
}

/* The backend's wait, or the failure a test injected instead of it. */
static int backend_wait(AioContext *ctx, AioPollSet *set, int64_t timeout, bool with_kick,
                        bool *kicked)
{
    int err = aio__test_wait_error(ctx);
    /* A child forked while this poll was under way (from a callback, a
     * signal handler) shares the backend's kernel objects, and with
     * io_uring the ring's memory, with the parent: waiting there could
     * consume the parent's completions and wake-up (aio.h, "fork()"). */
    if (!err && aio__ctx_forked(ctx)) {
        err = -ECHILD;
    }
    if (err) {
        *kicked = false;
        return err;
    }
    return ctx->ops->wait(ctx->be, &set->ws, timeout, with_kick, kicked);
}

/* A wait that may sleep, with its metrics. The two clock reads cost no
 * system call (vDSO / QueryPerformanceCounter) and are paid only by a poll
 * that sleeps, i.e. makes a system call anyway. The counters belong to the
 * home thread here: this poll gave up the dispatch right for its sleep,
 * but only the home thread sleeps. */
static int sleep_counted(AioContext *ctx, AioPollSet *set, int64_t timeout, bool *kicked)
{
    int64_t t0 = aio__clock_ns();
    int ret = backend_wait(ctx, set, timeout, true, kicked);
    aio__stats_add_ns(&ctx->stats.sleep_ns, aio__clock_ns() - t0);
    aio__stats_inc(&ctx->stats.sleeps);
    if (*kicked) {
        aio__stats_inc(&ctx->stats.wakeups_notify);
    } else if (ret == 0 && set->ws.nready > 0) {
        aio__stats_inc(&ctx->stats.wakeups_fd);
    } else if (ret == 0 && timeout > 0) {
        aio__stats_inc(&ctx->stats.wakeups_timer);
    }
    return ret;
}


/* N4 to N6: lowers one announcement and accepts. Blocking polls and an
 * embedded context's check (src/embed.c), home thread only. Returns whether
 * a notification was pending. */
/* N4: the sleep (or the host's) is over; release, so that nothing of the
 * dispatch to come is performed before a notifier can see it. */
static void lower(AioContext *ctx)
{
    atomic_fetch_sub_explicit(&ctx->notify_me, 1, memory_order_release);
}

/* N5 and N6. seq: a notify_seq value read (seq_cst) after the wait, or, by
 * a poll that did not announce, the one that told it not to wait. */
static bool consume_and_accept(AioContext *ctx, bool kicked, const uint64_t *seq)
{
    /* Consume the kick, then re-arm kick_pending, in this order: a notifier
     * that finds kick_pending false after the re-arm kicks again, and its
     * kick() comes after our clear_kick(), so the object stays signalled
     * and the invariant holds (clearing after re-arming could eat that
     * kick and leave kick_pending true over a silent object: a lost
     * wake-up). A notifier that still found it true skipped its kick; its
     * increment of notify_seq precedes its exchange, which precedes our
     * re-arm (all seq_cst), so the load of notify_seq below sees its news.
     * Without a kick we leave kick_pending alone: the object is still
     * signalled and the next sleep returns at once and re-arms. */
    if (kicked) {
        ctx->ops->clear_kick(ctx->be);
        atomic_store(&ctx->kick_pending, false);
    }

    /* Accept: everything up to the value read is seen. The load reads from
     * the notifiers' chain of read-modify-writes, a release sequence, so it
     * synchronizes with every aio_notify() counted in it: the work they
     * published is visible to the dispatch below. A notification counted
     * after it leaves notify_seq ahead of notify_seen, pending for the next
     * blocking poll. A load where there was an exchange of a flag: the
     * accept stores nothing on the notifiers' line, so a flood against an
     * awake loop loses that line once per loop iteration (this read), not
     * three or four times. An earlier read (a poll that did not announce
     * accepts the value that told it not to wait) only leaves more pending,
     * unless this poll consumed a kick: the kick's news may be counted after
     * that read, and the sleep the kick was for may be a host loop's that
     * is already announced on older parameters (src/embed.c), which only
     * an accept of that news passes on. So after a kick, read again, after
     * the re-arm (the model's embed-correct finds the lost wake-up
     * otherwise). */
    uint64_t now = seq && !kicked ? *seq : atomic_load(&ctx->notify_seq);
    bool was = now != ctx->notify_seen;
    ctx->notify_seen = now;
    /* An embedded check compares this to know whether a nested blocking
     * poll has run (and consumed readiness) since. */
    ctx->accepts++;
    return was;
}

static bool lower_and_accept(AioContext *ctx, bool kicked)
{
    lower(ctx);
    return consume_and_accept(ctx, kicked, NULL);
}

/* now: never sleep, but still look at the wake-up object (an embedded
 * context's dispatch outside the check/dispatch pair, src/embed.c), so that a
 * kick left signalled is consumed instead of waking the host loop again. */
static int poll_blocking(AioContext *ctx, uint64_t self, AioPollSet *set, bool now,
                         bool *progress)
{
    bool polling = !now && atomic_load_explicit(&ctx->poll_max_ns, memory_order_relaxed) > 0;
    int64_t start = polling ? aio__clock_ns() : 0;
    uint64_t seq = 0;
    int64_t timeout = now ? 0 : sleep_timeout_seq(ctx, &seq);
    if (timeout != 0 && polling && busy_poll(ctx, set, timeout, &seq, progress)) {
        timeout = 0;
    }
    /* A poll that already knows it will not wait does not announce: no
     * sleep follows, so no notifier needs to see it (N1 protects only a
     * sleep), and an awake loop then writes nothing that aio_notify() reads.
     * An embedded dispatch (now) still announces, as the host's check does:
     * every accept there lowers one announcement (src/embed.c). */
    bool announce = timeout != 0 || now;

    /* The outermost poll gives up the dispatch right while it sleeps, so
     * that other threads' non-blocking polls can make progress meanwhile.
     * A nested blocking poll keeps it: its caller is mid-dispatch. */
    bool drop_right = timeout != 0 && ctx->dispatch_depth == 1;
    if (drop_right) {
        dispatch_release(ctx, true);
    }

    /* Announce the sleep. A seq_cst read-modify-write: the loads of
     * notify_seq, the BH list and the timers in sleep_timeout() cannot be
     * performed before this increment is visible to aio_notify(). */
    if (announce) {
        atomic_fetch_add(&ctx->notify_me, 1);
    }
    if (timeout != 0) {
        timeout = sleep_timeout_seq(ctx, &seq);
    }
    aio__call_hook(ctx, AIO_HOOK_BEFORE_SLEEP);
    bool kicked = false;
    int ret = 0;
    /* With nothing to sleep for and nothing to watch, skip the system call;
     * a kick left behind is drained by the next real sleep. */
    if (timeout != 0 || set->ws.n > 0 || now) {
        if (timeout != 0) {
            ret = sleep_counted(ctx, set, timeout, &kicked);
        } else {
            ret = backend_wait(ctx, set, timeout, true, &kicked);
        }
    }
    aio__call_hook(ctx, AIO_HOOK_AFTER_SLEEP);
    bool accepted = announce ? lower_and_accept(ctx, kicked)
                             : consume_and_accept(ctx, kicked, &seq);
    if (ctx->embed.announced &&
        (accepted || (set->ws.nready > 0 && ctx->ops->embed_arm))) {
        /* A nested poll inside a host loop's announced sleep (src/embed.c):
         * the host computed its timeout and descriptor set before us, and
         * what we just accepted may have changed them (a new earliest
         * timer, a registration it does not watch). Without passing that on
         * the host sleeps on stale parameters (the model's
         * BUG_EMBED_NESTED_NO_PASS_ON). With embed_arm (io_uring) every
         * completion this wait reaped is re-armed only by the next
         * submission, which the host's sleep does not make: a descriptor
         * still ready would not show, so the host must come round to
         * prepare too. */
        aio__embed_stale(ctx);
    }

    if (drop_right) {
        dispatch_acquire(ctx, self, true);
    }
    if (polling) {
        adapt_window(ctx, aio__clock_ns() - start);
    }
    return ret;
}

static int poll_nonblocking(AioContext *ctx, AioPollSet *set)
{
    aio__call_hook(ctx, AIO_HOOK_NONBLOCKING_DISPATCH);
    bool kicked;
    /* with_kick false: the wake-up object is neither watched nor cleared
     * here, whichever thread this is. */
    return set->ws.n > 0 ? backend_wait(ctx, set, 0, false, &kicked) : 0;
}

/*
 * One round of callbacks. Without a snapshot or after a failed wait (set
 * NULL) the handlers wait for the next poll, since nothing says which are
 * ready; bottom halves and timers do not depend on the wait and run anyway,
 * so that a backend that keeps failing (poll() with more descriptors than
 * RLIMIT_NOFILE: EINVAL) cannot stall them.
 */
static bool dispatch_round(AioContext *ctx, AioPollSet *set, bool foreign)
{
    bool progress = aio__bh_dispatch(ctx);
    if (progress && foreign) {
        /* A BH scheduled onto an awake loop stores no notification
         * (bh.c, wake_sleeper): the stack is what the home thread's next
         * N2 looks at. But this thread is not home and took the stack, so
         * that N2 may find it empty while the home thread waits, in
         * `while (!done) aio_poll(ctx, true)`, for what the BHs we just ran
         * did. Pass the news on, after the callbacks: the home poll that
         * wakes for it returns only once it has the dispatch right back,
         * after this round (docs/wakeup-protocol.md, "Waking for a bottom
         * half"). Only foreign non-blocking polls get here. */
        aio_notify(ctx);
    }
    if (set) {
        progress |= aio__sources_dispatch(ctx, set);
    }
    progress |= aio__timers_dispatch(ctx);
    return progress;
}

/* Releases the dispatch right. Returns true when this was the thread's
 * outermost poll and one of its callbacks dropped the last reference: the
 * caller destroys ctx once it has finished with it. */
static bool dispatch_release_outermost(AioContext *ctx, bool home_pinned)
{
    bool destroy = false;
    if (ctx->dispatch_depth == 1 && ctx->destroy_pending) {
        ctx->destroy_pending = false;
        /* A later callback may have taken a new reference. */
        destroy = atomic_load(&ctx->refcnt) == 0;
    }
    dispatch_release(ctx, home_pinned);
    return destroy;
}

static int poll_common(AioContext *ctx, bool blocking, bool now)
{
    if (!ctx) {
        return -EINVAL;
    }
    /* The wake-up object and the kernel's registrations belong to the
     * parent (aio.h, "fork()"): a child's wait could only drain them. */
    if (aio__ctx_forked(ctx)) {
        return -ECHILD;
    }
    uint64_t self = aio__thread_id();
    /* First, before any shared state is touched: a refused blocking poll
     * must leave a pending wake-up exactly where it was. */
    if (blocking && !aio__home_enter(&ctx->home, self)) {
        return -EPERM;
    }
    if (!dispatch_acquire(ctx, self, blocking)) {
        return 0;
    }

    /* The home thread's outermost poll reuses a cached snapshot (and the
     * backend's pollfd/HANDLE array built from it); anything else builds a
     * private one. home_set_busy is only touched under the dispatch right. */
    AioPollSet local;
    AioPollSet *set = &ctx->home_set;
    /* A blocking poll is always home (checked above); a non-blocking one
     * may be foreign, and then passes BH news on (dispatch_round). */
    bool foreign = !aio__home_is(&ctx->home, self);
    if (!ctx->home_set_busy && !foreign) {
        ctx->home_set_busy = true;
    } else {
        /* Zeroed only here: the cached set's poll does not pay for it. */
        local = (AioPollSet){0};
        set = &local;
    }

    aio__stats_inc(&ctx->stats.iterations);
    bool progress = false;
    int ret = aio__sources_begin_walk(ctx, set);
    if (ret == 0) {
        ret = blocking ? poll_blocking(ctx, self, set, now, &progress)
                       : poll_nonblocking(ctx, set);
        progress |= dispatch_round(ctx, ret == 0 ? set : NULL, foreign);
        aio__sources_end_walk(ctx, set);
    } else {
        progress |= dispatch_round(ctx, NULL, foreign);
    }

    if (set == &ctx->home_set) {
        ctx->home_set_busy = false;
    } else {
        aio__pollset_fini(ctx, set);
    }
    bool destroy = dispatch_release_outermost(ctx, blocking);
    if (blocking) {
        aio__home_leave(&ctx->home);
    }
    if (destroy) {
        aio__context_destroy(ctx);
    }
    return ret < 0 ? ret : progress;
}

int aio_poll(AioContext *ctx, bool blocking)
{
    return poll_common(ctx, blocking, false);
}

/* ---- For src/embed.c: the same machinery, in the host loop's order ------ */

int aio__poll_now(AioContext *ctx)
{
    return poll_common(ctx, true, true);
}

void aio__announce(AioContext *ctx)
{
    /* N1, as in poll_blocking: seq_cst, so the caller's sleep_timeout()
     * loads cannot be performed before aio_notify() can see it. */
    atomic_fetch_add(&ctx->notify_me, 1);
}

bool aio__lower_and_accept(AioContext *ctx, bool kicked)
{
    return lower_and_accept(ctx, kicked);
}

void aio__lower(AioContext *ctx)
{
    /* N4 without N5/N6, as a blocking poll that saw no kick: the object
     * stays signalled if it was, and the notification pending for whoever
     * accepts next. */
    lower(ctx);
}

int64_t aio__sleep_timeout(AioContext *ctx)
{
    return sleep_timeout(ctx);
}

int aio__backend_wait(AioContext *ctx, AioPollSet *set, bool with_kick, bool *kicked)
{
    return backend_wait(ctx, set, 0, with_kick, kicked);
}

bool aio__dispatch_round(AioContext *ctx, AioPollSet *set)
{
    return dispatch_round(ctx, set, false); /* embedded: the home thread */
}

/* aio_embed_dispatch holds the home, like a blocking poll, from before it
 * takes the right until after it gives it back: the attach's count is not
 * enough, because a callback may detach and drop it, after which another
 * thread could become home, poll blocking, and wait for the right; the
 * plain-store release would then leave it asleep for ever. With the
 * dispatch's own count the home cannot move until the right is free
 * (aio_context_set_home_thread is -EBUSY meanwhile). */
bool aio__dispatch_acquire(AioContext *ctx)
{
    uint64_t self = aio__thread_id();
    if (!aio__home_enter(&ctx->home, self)) {
        return false;
    }
    dispatch_acquire(ctx, self, true);
    return true;
}

bool aio__dispatch_release_outermost(AioContext *ctx)
{
    bool destroy = dispatch_release_outermost(ctx, true);
    aio__home_leave(&ctx->home);
    return destroy;
}
