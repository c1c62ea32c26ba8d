/* SPDX-License-Identifier: MIT */
/*
 * The worker pool: blocking work on worker threads, completions in the
 * context (QEMU util/thread-pool.c, libuv uv_queue_work).
 *
 * Submission is lock-free: a Treiber push onto pool->stack. Workers take
 * jobs in batches under take_lock, which only workers contend for: every
 * take moves the whole stack (one exchange, reversed: submission order)
 * behind the ready list, then cuts its share of the ready list (ready /
 * max_workers, at least 1, at most BATCH_MAX), so a batch is longer than one
 * job only when there are more queued jobs than workers. Every take reads
 * the stack, also behind a ready list that is not empty: a submitter that
 * found a worker spinning skipped its wake on the promise that this worker
 * reads its job, and a take that served itself from the ready list alone
 * left the job on the stack, unseen, while workers parked or were never
 * started (work::push_behind_a_ready_list_is_taken_or_passed_on).
 *
 * The claim: a job's state goes QUEUED -> RUNNING (the worker, right before
 * fn) or QUEUED -> CANCELLED (aio_work_cancel) by one compare-and-swap, so
 * exactly one of them wins however their calls interleave, and a job sitting
 * in a worker's batch is still "not started". The queue never unlinks a
 * cancelled job: it stays where it is until a worker (whose CAS fails) or the
 * teardown drops it, while its completion runs done with -ECANCELED. Such a
 * job has two owners, the queue and the completion; the second one to let go
 * frees it (work_release), so neither can free memory the other still reads.
 *
 * Idle workers: a worker without work spins a little (one spinner at a time)
 * and then parks on pool->park (pool->lock). A submitter that finds a spinner
 * does nothing; else it wakes a parked worker, else starts one (below max).
 * The pairs that make this free of lost wake-ups are Dekker's (seq_cst on
 * both sides, docs/model/pool.pml):
 *
 *   submitter: push ; read nspinning ; read nsleeping ; read nworkers
 *   worker:    nsleeping++ ; nspinning-- ; read queue ; [sleep]
 *   exiting:   nworkers-- ; nsleeping-- ; read queue ; [exit]
 *
 * Whichever counter the submitter saw still counting the worker, the worker
 * changed it after the submitter's push and so reads the job afterwards.
 * While every worker is busy a submission is one CAS and three loads.
 *
 * Completion is lock-free, the way bottom halves are: a finished job is
 * pushed on a Treiber stack (done_list) and only the push onto an empty stack
 * schedules the pool's BH. The BH takes the whole stack, so a burst of
 * completions costs one aio_bh_schedule(), and that costs no system call
 * while the context is awake (aio_notify's notify_me rule). What it took
 * waits in the pool's done_taken queue, not in the run's locals, and the
 * run schedules the BH again while items are left: a done that polls (QEMU
 * drains a request's siblings from its completion) gets the completions of
 * its own batch from the nested run, as nested polls continue bh_taken.
 *
 * Workers exit after idle_ns parked when more than min run. Exited threads
 * are joined by the next thread start, or by the teardown; every thread is
 * joined exactly once.
 */
#include <stdio.h>
#include <stdlib.h>

#include "aio-internal.h"

#define POOL_MAX_DEFAULT 64
#define POOL_IDLE_NS_DEFAULT (10 * 1000000000LL)
/* Jobs one worker takes per acquisition of take_lock, at most. */
#define BATCH_MAX 32
/* Checks of the queue before a worker parks (each one cpu_relax apart). */
#define SPIN_ROUNDS 100

enum { WORK_QUEUED, WORK_RUNNING, WORK_CANCELLED };

struct AioWork {
    AioWorkPool *pool;
    AioWorkFunc *fn;
    void *arg;
    AioWorkDone *done;
    void *opaque;
    int ret;              /* written before the push that publishes it */
    atomic_int state;     /* the claim */
    atomic_bool let_go;   /* CANCELLED: one of its two owners is done with it */
    AioWork *next;        /* stack, ready list or a worker's batch */
    AioWork *done_next;   /* pool->done_list; owned by whoever pushed it */
};

typedef struct PoolThread {
    AioWorkPool *pool;
    aio_thread_t thread;
    /* Taken, not yet finished; the head is the one running. Only its worker
     * touches it, and a forked child that frees what the parent left. */
    AioWork *batch;
    /* aio__thread_id() of the worker, stored by the worker itself: only an
     * equality test by that same thread reads it (the teardown's misuse
     * check), and a thread always sees its own store. */
    _Atomic uint64_t tid;
    struct PoolThread *next;
} PoolThread;

struct AioWorkPool {
    AioContext *ctx;
    unsigned fork_gen; /* aio__fork_generation() of the process whose threads these are */

    _Atomic(AioWork *) stack; /* submitted, newest first */
    aio_mutex_t take_lock;    /* workers only */
    _Atomic(AioWork *) ready; /* take_lock; read without it to see work exists */
    AioWork *ready_tail;      /* take_lock; the last of ready when ready is set */
    int nready;               /* take_lock */

    atomic_int nspinning;  /* workers looking at the queue before they park */
    atomic_int nsleeping;  /* workers between their park and their wake */
    atomic_int nworkers;   /* started and not exiting; written under lock */
    atomic_int max_workers;
    atomic_bool stopping;  /* the last unref is tearing the pool down */

    aio_mutex_t lock;
    aio_cond_t park;       /* parked workers wait here */
    /* Everything below up to done_list is under lock. */
    int wakeups;           /* signals that no parked worker has taken yet */
    int min_workers;
    int64_t idle_ns;
    PoolThread *live;      /* running threads */
    PoolThread *exited;    /* exited on their own, not joined yet */

    _Atomic(AioWork *) done_list; /* finished or cancelled, LIFO */
    AioBH *done_bh;
    /* Taken from done_list, not run yet, in completion order. The pool's,
     * not one BH run's: a done that polls (aio_wait_while for a sibling of
     * its batch) runs done_bh again, nested, and that run must continue this
     * queue. ctx's dispatch-right holder only, like bh_taken (bh.c). */
    AioWork *done_taken, *done_taken_tail;
    /* A run of done_bh scheduled it again for what it left in done_taken
     * and no run has started since. Dispatch-right holder only. */
    bool done_resched;
};

/* A cancelled job's owners are its queue position and its completion; the
 * second of them to call this frees it. Anything else has one owner. */
static void work_release(AioWork *w)
{
    if (atomic_load_explicit(&w->state, memory_order_relaxed) != WORK_CANCELLED ||
        atomic_exchange_explicit(&w->let_go, true, memory_order_acq_rel)) {
        free(w);
    }
}

/* Pushes w on the completion stack; the push onto an empty stack schedules
 * the BH. A push that finds the stack non-empty is taken by the same BH run
 * as the item below it, whose pusher scheduled it (the BH empties the stack
 * with one exchange, so the item below cannot have been taken before our CAS
 * read it). */
static void work_complete(AioWorkPool *pool, AioWork *w)
{
    AioWork *head = atomic_load_explicit(&pool->done_list, memory_order_relaxed);
    do {
        w->done_next = head;
        /* release: the BH's acquire exchange sees ret and done_next. */
    } while (!atomic_compare_exchange_weak_explicit(&pool->done_list, &head, w,
                                                    memory_order_release,
                                                    memory_order_relaxed));
    if (!head) {
        aio_bh_schedule(pool->done_bh);
    }
}

static AioWork *list_reverse(AioWork *w, int *count)
{
    AioWork *fifo = NULL;
    int n = 0;
    while (w) {
        AioWork *next = w->next;
        w->next = fifo;
        fifo = w;
        w = next;
        n++;
    }
    if (count) {
        *count = n;
    }
    return fifo;
}

/* Dispatch-right holder only. */
static AioWork *done_taken_pop(AioWorkPool *pool)
{
    AioWork *w = pool->done_taken;
    if (w) {
        pool->done_taken = w->done_next;
        if (!w->done_next) {
            pool->done_taken_tail = NULL;
        }
    }
    return w;
}

static void pool_done_bh(void *opaque)
{
    AioWorkPool *pool = opaque;
    /* This is the run a reschedule below asked for, if any. */
    pool->done_resched = false;
    AioWork *lifo = atomic_exchange_explicit(&pool->done_list, NULL, memory_order_acquire);
    AioWork *fifo = NULL, *last = lifo;
    while (lifo) {
        AioWork *next = lifo->done_next;
        lifo->done_next = fifo;
        fifo = lifo;
        lifo = next;
    }
    if (fifo) {
        if (pool->done_taken_tail) {
            pool->done_taken_tail->done_next = fifo;
        } else {
            pool->done_taken = fifo;
        }
        pool->done_taken_tail = last;
    }
    /* Completion order, across the batches taken so far. No item is held
     * across a callback: a done may poll, and the nested run of this BH
     * then runs what is left (and whatever completed since) before we come
     * back, so the next item is always popped afresh. */
    AioWork *w;
    while ((w = done_taken_pop(pool))) {
        if (pool->done_taken && !pool->done_resched) {
            /* Something is left behind w: make the BH pending, so that a
             * poll inside w's done (which only runs BHs, descriptors and
             * timers) continues the queue instead of sleeping on a
             * completion that is already here. Once per run: a done that
             * does not poll leaves it scheduled for the items after it,
             * and the one spare run it costs per burst finds nothing. */
            pool->done_resched = true;
            aio_bh_schedule(pool->done_bh);
        }
        w->done(w->opaque, w->ret);
        aio__stats_inc(&pool->ctx->stats.work_completed);
        work_release(w);
    }
}

static void thread_list_remove(PoolThread **list, PoolThread *t)
{
    for (PoolThread **p = list; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            return;
        }
    }
}

static void join_all(PoolThread *list)
{
    while (list) {
        PoolThread *t = list;
        list = t->next;
        aio__thread_join(t->thread);
        free(t);
    }
}

/* seq_cst: the worker's half of the pairs in the header comment. */
static bool work_visible(AioWorkPool *pool)
{
    return atomic_load(&pool->stack) || atomic_load(&pool->ready);
}

/* Under lock: one parked worker gets up, unless one woken earlier has not
 * yet: that one reads the queue anyway, and chains the next wake when it
 * leaves work behind (take_batch), so a burst of submissions costs one
 * signal, not one per parked worker. The woken worker counts as spinning
 * from here (the waker raises nspinning for it) until it reads the queue, so
 * later submitters skip even this lock. */
static void wake_one_locked(AioWorkPool *pool)
{
    if (pool->wakeups == 0 && atomic_load(&pool->nsleeping) > 0) {
        pool->wakeups++;
        atomic_fetch_add(&pool->nspinning, 1);
        aio__cond_signal(&pool->park);
    }
}

static void worker_main(void *opaque);

/* Under lock: starts one worker unless max run. */
static int start_worker_locked(AioWorkPool *pool)
{
    /* stopping: the teardown takes the thread list under this lock once,
     * after setting it; a thread started later would never be joined. */
    if (atomic_load(&pool->stopping) ||
        atomic_load(&pool->nworkers) >= atomic_load(&pool->max_workers)) {
        return 0;
    }
    PoolThread *t = aio__calloc(1, sizeof(*t));
    if (!t) {
        return -ENOMEM;
    }
    t->pool = pool;
    int err = aio__thread_start(&t->thread, worker_main, t);
    if (err) {
        free(t);
        return err;
    }
    t->next = pool->live;
    pool->live = t;
    atomic_fetch_add(&pool->nworkers, 1);
    return 0;
}

/* After new work became visible (a push, or a batch cut that left some):
 * makes sure some worker will look at it. Returns a thread start's error when
 * no worker runs at all. */
static int pool_kick(AioWorkPool *pool)
{
    /* A spinner reads the queue after it stops spinning (header comment). */
    if (atomic_load(&pool->nspinning) > 0) {
        return 0;
    }
    bool sleepers = atomic_load(&pool->nsleeping) > 0;
    if (!sleepers && atomic_load(&pool->nworkers) >= atomic_load(&pool->max_workers)) {
        return 0;
    }
    aio__mutex_lock(&pool->lock);
    int err = 0;
    if (atomic_load(&pool->nsleeping) > 0) {
        wake_one_locked(pool);
    } else {
        err = start_worker_locked(pool);
        if (err && atomic_load(&pool->nworkers) > 0) {
            err = 0; /* the running ones come round to it */
        }
    }
    PoolThread *exited = pool->exited;
    pool->exited = NULL;
    aio__mutex_unlock(&pool->lock);
    join_all(exited);
    return err;
}

/* Moves this worker's share of the queue to self->batch. */
static bool take_batch(AioWorkPool *pool, PoolThread *self)
{
    aio__mutex_lock(&pool->take_lock);
    AioWork *r = atomic_load_explicit(&pool->ready, memory_order_relaxed);
    /* Always the stack too, also behind a non-empty ready list: a submitter
     * that saw us counted (spinning or woken) skipped its wake and relies on
     * this read to take its job, or to pass it on through the kick below.
     * seq_cst load: the worker's half of the pairs in the header comment;
     * acquire exchange: the submitters' fields, published by their CAS. */
    if (atomic_load(&pool->stack)) {
        AioWork *lifo = atomic_exchange_explicit(&pool->stack, NULL, memory_order_acquire);
        int n;
        AioWork *fifo = list_reverse(lifo, &n);
        if (r) {
            pool->ready_tail->next = fifo;
            pool->nready += n;
        } else {
            r = fifo;
            pool->nready = n;
        }
        pool->ready_tail = lifo; /* the newest, last after the reversal */
    }
    if (!r) {
        aio__mutex_unlock(&pool->take_lock);
        return false;
    }
    int k = pool->nready / atomic_load_explicit(&pool->max_workers, memory_order_relaxed);
    k = k < 1 ? 1 : k > BATCH_MAX ? BATCH_MAX : k;
    AioWork *tail = r;
    for (int i = 1; i < k; i++) {
        tail = tail->next;
    }
    AioWork *rest = tail->next;
    tail->next = NULL;
    pool->nready -= k;
    /* seq_cst: pairs with a parking worker's nsleeping++ (it reads ready
     * after, we read nsleeping after this, in pool_kick). */
    atomic_store(&pool->ready, rest);
    self->batch = r;
    aio__mutex_unlock(&pool->take_lock);
    if (rest) {
        pool_kick(pool);
    }
    return true;
}

static void run_batch(AioWorkPool *pool, PoolThread *self)
{
    AioWork *w;
    while ((w = self->batch)) {
        if (atomic_load_explicit(&pool->stopping, memory_order_acquire)) {
            return; /* the teardown drops what is left of the batch */
        }
        aio__call_hook(pool->ctx, AIO_HOOK_WORK_BEFORE_CLAIM);
        int expected = WORK_QUEUED;
        if (!atomic_compare_exchange_strong_explicit(&w->state, &expected, WORK_RUNNING,
                                                     memory_order_acq_rel,
                                                     memory_order_acquire)) {
            /* A cancel claimed it; its completion is under way. */
            self->batch = w->next;
            work_release(w);
            continue;
        }
        w->ret = w->fn(w->arg);
        /* Off the batch before the push: a fork in between makes the child
         * leak w, the other order would make it free w twice. */
        self->batch = w->next;
        work_complete(pool, w);
    }
}

/* Parks until work, a wake, stopping or the idle timeout. Returns false when
 * the worker leaves the pool (it is then no longer counted in nworkers). */
static bool park(AioWorkPool *pool)
{
    bool stay = true;
    aio__mutex_lock(&pool->lock);
    atomic_fetch_add(&pool->nsleeping, 1);
    atomic_fetch_sub(&pool->nspinning, 1);
    for (;;) {
        if (atomic_load(&pool->stopping)) {
            atomic_fetch_sub(&pool->nworkers, 1);
            stay = false;
            break;
        }
        if (atomic_load(&pool->nworkers) > atomic_load(&pool->max_workers)) {
            /* Above a lowered maximum. A wake meant for us, or work a
             * submitter saw us counted for, passes to another sleeper. */
            atomic_fetch_sub(&pool->nworkers, 1);
            atomic_fetch_sub(&pool->nsleeping, 1);
            if (pool->wakeups > 0) {
                pool->wakeups--;
                atomic_fetch_sub(&pool->nspinning, 1);
            }
            if (work_visible(pool)) {
                wake_one_locked(pool);
            }
            aio__mutex_unlock(&pool->lock);
            return false;
        }
        if (work_visible(pool) || pool->wakeups > 0) {
            break;
        }
        aio__call_hook(pool->ctx, AIO_HOOK_WORKER_SLEEP);
        bool woken = aio__cond_timedwait(&pool->park, &pool->lock, pool->idle_ns);
        if (!woken && pool->wakeups == 0 && atomic_load(&pool->nworkers) > pool->min_workers) {
            /* Leaving: uncounted first, then a last look (header comment),
             * so that a submitter that saw us has pushed before it. */
            atomic_fetch_sub(&pool->nworkers, 1);
            atomic_fetch_sub(&pool->nsleeping, 1);
            if (!work_visible(pool)) {
                aio__mutex_unlock(&pool->lock);
                return false;
            }
            atomic_fetch_add(&pool->nworkers, 1);
            atomic_fetch_add(&pool->nsleeping, 1);
            break;
        }
    }
    if (pool->wakeups > 0) {
        pool->wakeups--; /* nspinning was raised for us by the waker */
    } else if (stay) {
        /* Counted as spinning before we stop counting as sleeping: no
         * moment where a submitter could see neither. */
        atomic_fetch_add(&pool->nspinning, 1);
    }
    atomic_fetch_sub(&pool->nsleeping, 1);
    aio__mutex_unlock(&pool->lock);
    return stay;
}

/* One spinner at a time: the others would only take CPU from the threads
 * that produce the work. Returns true when work showed up. Leaves with
 * nspinning raised when it did not (park lowers it, in the right order). */
static bool spin(AioWorkPool *pool)
{
    int before = atomic_fetch_add(&pool->nspinning, 1);
    for (int i = 0; before == 0 && i < SPIN_ROUNDS; i++) {
        if (work_visible(pool)) {
            atomic_fetch_sub(&pool->nspinning, 1);
            return true;
        }
        aio__cpu_relax();
    }
    return false;
}

/* Between batches: a worker above a lowered maximum leaves instead of
 * taking more work (park() does the same for parked ones). Counted in
 * nworkers only here; the others (at least max of them) read the queue
 * before they park, and work already visible is passed to a sleeper. */
static bool leave_if_surplus(AioWorkPool *pool)
{
    if (atomic_load(&pool->nworkers) <= atomic_load(&pool->max_workers)) {
        return false;
    }
    aio__mutex_lock(&pool->lock);
    bool leave = atomic_load(&pool->nworkers) > atomic_load(&pool->max_workers);
    if (leave) {
        atomic_fetch_sub(&pool->nworkers, 1);
        if (work_visible(pool)) {
            wake_one_locked(pool);
        }
    }
    aio__mutex_unlock(&pool->lock);
    return leave;
}

static void worker_main(void *opaque)
{
    PoolThread *self = opaque;
    AioWorkPool *pool = self->pool;
    atomic_store_explicit(&self->tid, aio__thread_id(), memory_order_relaxed);
    for (;;) {
        if (atomic_load_explicit(&pool->stopping, memory_order_acquire)) {
            atomic_fetch_sub(&pool->nworkers, 1);
            break;
        }
        if (leave_if_surplus(pool)) {
            break;
        }
        if (take_batch(pool, self)) {
            run_batch(pool, self);
            continue;
        }
        if (spin(pool)) {
            continue;
        }
        aio__call_hook(pool->ctx, AIO_HOOK_WORKER_IDLE);
        if (!park(pool)) {
            break;
        }
        /* park left us counted in nspinning; the next take_batch reads the
         * queue after this (the counter pairs with the submitter's push). */
        atomic_fetch_sub(&pool->nspinning, 1);
    }
    aio__mutex_lock(&pool->lock);
    /* During teardown the tearing thread owns both lists (it took them
     * under this lock after setting stopping) and joins us from there. */
    if (!atomic_load(&pool->stopping)) {
        thread_list_remove(&pool->live, self);
        self->next = pool->exited;
        pool->exited = self;
    }
    aio__mutex_unlock(&pool->lock);
}

static AioWorkPool *pool_new(AioContext *ctx)
{
    AioWorkPool *pool = aio__calloc(1, sizeof(*pool));
    if (!pool) {
        return NULL;
    }
    pool->done_bh = aio_bh_new(ctx, pool_done_bh, pool);
    if (!pool->done_bh) {
        free(pool);
        return NULL;
    }
    pool->ctx = ctx;
    pool->fork_gen = aio__fork_generation();
    aio__mutex_init(&pool->take_lock);
    aio__mutex_init(&pool->lock);
    aio__cond_init(&pool->park);
    pool->min_workers = 0;
    atomic_init(&pool->max_workers, POOL_MAX_DEFAULT);
    pool->idle_ns = POOL_IDLE_NS_DEFAULT;
    atomic_init(&pool->stack, NULL);
    atomic_init(&pool->ready, NULL);
    atomic_init(&pool->done_list, NULL);
    return pool;
}

/* ctx's pool, made on first use. Two first users may race: the CAS picks
 * one pool, the other is discarded before anyone saw it. */
static AioWorkPool *pool_get(AioContext *ctx)
{
    AioWorkPool *pool = atomic_load_explicit(&ctx->pool, memory_order_acquire);
    if (pool) {
        return pool;
    }
    AioWorkPool *fresh = pool_new(ctx);
    if (!fresh) {
        return NULL;
    }
    /* acq_rel: the winner's initialisation is published with the pointer;
     * a loser reads the winner's. */
    if (!atomic_compare_exchange_strong_explicit(&ctx->pool, &pool, fresh,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        aio_bh_delete(fresh->done_bh);
        aio__cond_destroy(&fresh->park);
        aio__mutex_destroy(&fresh->lock);
        aio__mutex_destroy(&fresh->take_lock);
        free(fresh);
        return pool;
    }
    return fresh;
}

AioWork *aio_work_submit(AioContext *ctx, AioWorkFunc *fn, void *arg, AioWorkDone *done,
                         void *opaque)
{
    if (!ctx || !fn || !done) {
        return NULL;
    }
    AioWorkPool *pool = pool_get(ctx);
    AioWork *w = pool ? aio__calloc(1, sizeof(*w)) : NULL;
    if (!w) {
        return NULL;
    }
    *w = (AioWork){.pool = pool, .fn = fn, .arg = arg, .done = done, .opaque = opaque};
    atomic_init(&w->state, WORK_QUEUED);
    atomic_init(&w->let_go, false);

    AioWork *head = atomic_load_explicit(&pool->stack, memory_order_relaxed);
    do {
        w->next = head;
        /* seq_cst: the submitter's half of the pairs in the header comment;
         * also the release that publishes w's fields to the taker. */
    } while (!atomic_compare_exchange_weak_explicit(&pool->stack, &head, w,
                                                    memory_order_seq_cst,
                                                    memory_order_relaxed));
    if (pool_kick(pool)) {
        /* No worker runs and none could start: take the job back the way a
         * cancel would (one owner, the stack, keeps it until a worker or the
         * teardown drops it). A worker cannot have claimed it: none runs. */
        int expected = WORK_QUEUED;
        if (atomic_compare_exchange_strong(&w->state, &expected, WORK_CANCELLED)) {
            work_release(w);
            return NULL;
        }
    }
    return w;
}

int aio_work_cancel(AioWork *w)
{
    if (!w) {
        return -EINVAL;
    }
    int expected = WORK_QUEUED;
    /* The claim (header comment): a worker's CAS from QUEUED to RUNNING and
     * this one cannot both succeed. acq_rel: the worker that fails its CAS
     * sees ret, and the completion below is published after the claim. */
    if (!atomic_compare_exchange_strong_explicit(&w->state, &expected, WORK_CANCELLED,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        return -EBUSY;
    }
    w->ret = -ECANCELED;
    /* done runs in the context, never inside this call (the caller may
     * hold a lock that done takes). */
    work_complete(w->pool, w);
    return 0;
}

int aio_context_set_thread_pool_params(AioContext *ctx, int min_workers, int max_workers)
{
    if (!ctx || min_workers < 0 || max_workers < 1 || min_workers > max_workers) {
        return -EINVAL;
    }
    AioWorkPool *pool = pool_get(ctx);
    if (!pool) {
        return -ENOMEM;
    }
    aio__mutex_lock(&pool->lock);
    pool->min_workers = min_workers;
    atomic_store(&pool->max_workers, max_workers);
    /* Parked workers re-check: those above the new maximum exit. */
    aio__cond_broadcast(&pool->park);
    aio__mutex_unlock(&pool->lock);
    /* A higher maximum: queued work that found every worker busy gets one
     * (the kick starts one below the new maximum; its take chains on). */
    if (work_visible(pool)) {
        pool_kick(pool);
    }
    return 0;
}

static void release_list(AioWork *w)
{
    while (w) {
        AioWork *next = w->next;
        work_release(w);
        w = next;
    }
}

/* Frees every job the pool still holds, none of its fn or done runs: the
 * stack, the ready list and the batches (queue owners), and done_list
 * (completion owners). With consistent false (a forked child whose parent
 * was inside take_lock or lock at fork()), the lists those locks guard may
 * be torn: they are leaked rather than freed twice. */
static void pool_drop_jobs(AioWorkPool *pool, PoolThread *threads, bool consistent)
{
    release_list(atomic_exchange(&pool->stack, NULL));
    /* Taken by a done_bh run that did not finish: empty unless a run was
     * cut short (by a fork() from a done callback, which aio.h does not
     * allow); released all the same. */
    for (AioWork *d = pool->done_taken; d;) {
        AioWork *next = d->done_next;
        work_release(d);
        d = next;
    }
    pool->done_taken = pool->done_taken_tail = NULL;
    for (AioWork *d = atomic_exchange(&pool->done_list, NULL); d;) {
        AioWork *next = d->done_next;
        work_release(d);
        d = next;
    }
    if (!consistent) {
        return;
    }
    release_list(atomic_exchange(&pool->ready, NULL));
    for (PoolThread *t = threads; t; t = t->next) {
        release_list(t->batch);
        t->batch = NULL;
    }
}

static void free_threads(PoolThread *t)
{
    while (t) {
        PoolThread *next = t->next;
        free(t);
        t = next;
    }
}

static void pool_free(AioWorkPool *pool)
{
    aio__cond_destroy(&pool->park);
    aio__mutex_destroy(&pool->lock);
    aio__mutex_destroy(&pool->take_lock);
    free(pool);
}

/* A forked child's copy of the pool: its threads are the parent's and do
 * not exist here, so nothing is joined or waited for. The locks may have
 * been held by one of them at fork(): only a successful trylock shows that
 * the lists behind it are whole (and makes the lock safe to destroy). */
static void pool_discard_forked(AioWorkPool *pool)
{
    bool take_ok = aio__mutex_trylock(&pool->take_lock);
    bool lock_ok = aio__mutex_trylock(&pool->lock);
    pool_drop_jobs(pool, lock_ok ? pool->live : NULL, take_ok && lock_ok);
    if (lock_ok) {
        free_threads(pool->live);
        free_threads(pool->exited);
    }
    if (take_ok && lock_ok) {
        aio__mutex_unlock(&pool->lock);
        aio__mutex_unlock(&pool->take_lock);
        pool_free(pool);
        return;
    }
    free(pool); /* a held lock is never destroyed */
}

void aio__work_after_fork(AioContext *ctx)
{
    AioWorkPool *pool = atomic_load_explicit(&ctx->pool, memory_order_acquire);
    if (!pool || pool->fork_gen == aio__fork_generation()) {
        return;
    }
    /* The next submission makes a pool of this process's own. */
    atomic_store_explicit(&ctx->pool, NULL, memory_order_relaxed);
    aio_bh_delete(pool->done_bh);
    pool_discard_forked(pool);
}

void aio__work_teardown(AioContext *ctx)
{
    AioWorkPool *pool = atomic_load_explicit(&ctx->pool, memory_order_acquire);
    if (!pool) {
        return;
    }
    if (pool->fork_gen != aio__fork_generation()) {
        atomic_store_explicit(&ctx->pool, NULL, memory_order_relaxed);
        /* done_bh is one of ctx's BHs; the BH teardown that follows frees it. */
        pool_discard_forked(pool);
        return;
    }
    /* The last unref from inside fn, on one of our workers, would wait for
     * its own return (aio.h: it waits for every running fn), or free the
     * batch and the pool that fn returns into: say so and stop, rather than
     * hang or corrupt memory. Our own id can only match our own store. */
    uint64_t self = aio__thread_id();
    aio__mutex_lock(&pool->lock);
    for (PoolThread *t = pool->live; t; t = t->next) {
        if (atomic_load_explicit(&t->tid, memory_order_relaxed) == self) {
            fprintf(stderr, "aiopoll: the last aio_context_unref() of a context was called "
                            "from fn of that context's own worker pool (aio.h: it must not "
                            "be; it would wait for fn to return)\n");
            abort();
        }
    }
    aio__mutex_unlock(&pool->lock);
    /* From here no worker claims a job: each checks stopping before its
     * claim, and this thread is the one that sets it. A worker past its
     * check is running that job, and the join below waits for it. */
    atomic_store_explicit(&pool->stopping, true, memory_order_release);
    aio__mutex_lock(&pool->lock);
    PoolThread *threads = pool->live;
    PoolThread *exited = pool->exited;
    pool->live = pool->exited = NULL;
    aio__cond_broadcast(&pool->park);
    aio__mutex_unlock(&pool->lock);
    aio__call_hook(ctx, AIO_HOOK_POOL_STOPPING);
    /* Running fns finish first; their completions land on done_list (and
     * schedule the BH of a context that is still whole at this point). */
    for (PoolThread *t = threads; t; t = t->next) {
        aio__thread_join(t->thread);
    }
    /* Not started: dropped, fn never runs, done never runs (aio.h). */
    pool_drop_jobs(pool, threads, true);
    free_threads(threads);
    join_all(exited);
    /* done_bh is one of ctx's BHs; the BH teardown that follows frees it. */
    pool_free(pool);
    atomic_store_explicit(&ctx->pool, NULL, memory_order_relaxed);
}

#if AIOPOLL_TEST_HOOKS
int aio__set_test_pool_idle_ns(AioContext *ctx, int64_t ns)
{
    AioWorkPool *pool = ctx ? pool_get(ctx) : NULL;
    if (!pool) {
        return -EINVAL;
    }
    aio__mutex_lock(&pool->lock);
    pool->idle_ns = ns;
    aio__cond_broadcast(&pool->park);
    aio__mutex_unlock(&pool->lock);
    return 0;
}

int aio__test_pool_workers(AioContext *ctx)
{
    AioWorkPool *pool = ctx ? atomic_load_explicit(&ctx->pool, memory_order_acquire) : NULL;
    return pool ? atomic_load(&pool->nworkers) : 0;
}
#endif
