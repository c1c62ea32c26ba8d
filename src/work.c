/* SPDX-License-Identifier: MIT */
/*
 * The worker pool: blocking work on worker threads, completions in the
 * context (QEMU util/thread-pool.c, libuv uv_queue_work).
 *
 * Submission and start go through one mutex (pool->lock): it makes "not
 * started" a single state that cancel and the worker that would take the
 * work agree on, which is what aio_work_cancel's 0 / -EBUSY promise needs.
 * Completion is lock-free, the way bottom halves are: a finished work item
 * is pushed on a Treiber stack (done_list) and only the push onto an empty
 * stack schedules the pool's BH. The BH takes the whole stack, so a burst
 * of completions costs one aio_bh_schedule(), and aio_bh_schedule() costs no
 * system call while the context is awake (aio_notify's notify_me rule).
 *
 * Workers start on demand (a submission that finds no idle worker not yet
 * woken, while fewer than max run) and exit after idle_ns without work when
 * more than min run. Exited threads are joined by the next submission that
 * starts one, or by the teardown; every thread is joined exactly once.
 */
#include <stdlib.h>

#include "aio-internal.h"

#define POOL_MAX_DEFAULT 64
#define POOL_IDLE_NS_DEFAULT (10 * 1000000000LL)

enum { WORK_QUEUED, WORK_RUNNING, WORK_CANCELLED };

struct AioWork {
    AioWorkPool *pool;
    AioWorkFunc *fn;
    void *arg;
    AioWorkDone *done;
    void *opaque;
    int ret;              /* written before the push that publishes it */
    int state;            /* pool->lock */
    AioWork *prev, *next; /* pool->queue, pool->lock, while WORK_QUEUED */
    AioWork *done_next;   /* pool->done_list; owned by whoever pushed it */
};

typedef struct PoolThread {
    AioWorkPool *pool;
    aio_thread_t thread;
    struct PoolThread *next;
} PoolThread;

struct AioWorkPool {
    AioContext *ctx;
    aio_mutex_t lock;
    aio_cond_t work_cond; /* idle workers wait here */
    /* Everything below up to done_list is under lock. */
    AioWork *head, *tail; /* not started, in submission order */
    int min_workers, max_workers;
    int nworkers;    /* started and not exited */
    int nidle;       /* waiting on work_cond */
    int nwakeups;    /* signals sent that no idle worker has taken yet */
    bool stopping;   /* the last unref is tearing the pool down */
    int64_t idle_ns;
    PoolThread *live;   /* running threads */
    PoolThread *exited; /* exited on their own, not joined yet */

    _Atomic(AioWork *) done_list; /* finished or cancelled, LIFO */
    AioBH *done_bh;
};

/* Pushes w on the completion stack; the push onto an empty stack schedules
 * the BH. bh_push's argument: a push that finds the stack non-empty is taken
 * by the same BH run as the item below it, whose pusher scheduled it (the BH
 * empties the stack with one exchange, so the item below cannot have been
 * taken before our CAS read it). */
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

static void pool_done_bh(void *opaque)
{
    AioWorkPool *pool = opaque;
    AioWork *lifo = atomic_exchange_explicit(&pool->done_list, NULL, memory_order_acquire);
    AioWork *fifo = NULL;
    while (lifo) {
        AioWork *next = lifo->done_next;
        lifo->done_next = fifo;
        fifo = lifo;
        lifo = next;
    }
    /* Completion order, as far as one batch goes. A done callback may
     * submit or cancel other work, or poll (nested): that BH run then takes
     * what was pushed since, never an item of this local list. */
    while (fifo) {
        AioWork *w = fifo;
        fifo = w->done_next;
        w->done(w->opaque, w->ret);
        aio__stats_inc(&pool->ctx->stats.work_completed);
        free(w);
    }
}

static void queue_unlink_locked(AioWorkPool *pool, AioWork *w)
{
    if (w->prev) {
        w->prev->next = w->next;
    } else {
        pool->head = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    } else {
        pool->tail = w->prev;
    }
    w->prev = w->next = NULL;
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

static void worker_main(void *opaque)
{
    PoolThread *self = opaque;
    AioWorkPool *pool = self->pool;
    aio__mutex_lock(&pool->lock);
    for (;;) {
        AioWork *w = pool->head;
        if (!w) {
            if (pool->stopping || pool->nworkers > pool->max_workers) {
                break;
            }
            pool->nidle++;
            bool woken = aio__cond_timedwait(&pool->work_cond, &pool->lock, pool->idle_ns);
            pool->nidle--;
            if (pool->nwakeups > 0) {
                pool->nwakeups--;
            }
            /* The queue is checked before leaving: a submission whose signal
             * raced with our timeout still finds a worker. */
            if (!woken && !pool->head && !pool->stopping &&
                pool->nworkers > pool->min_workers) {
                break;
            }
            continue;
        }
        queue_unlink_locked(pool, w);
        w->state = WORK_RUNNING;
        aio__mutex_unlock(&pool->lock);
        /* No state change after fn: running and finished both answer
         * -EBUSY, so cancel needs no second lock round here. */
        w->ret = w->fn(w->arg);
        work_complete(pool, w);
        aio__mutex_lock(&pool->lock);
    }
    pool->nworkers--;
    /* During teardown the tearing thread owns both lists (it took them
     * under this lock after setting stopping) and joins us from there. */
    if (!pool->stopping) {
        thread_list_remove(&pool->live, self);
        self->next = pool->exited;
        pool->exited = self;
    }
    aio__mutex_unlock(&pool->lock);
}

/* Under pool->lock: starts one worker. */
static int start_worker_locked(AioWorkPool *pool)
{
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
    pool->nworkers++;
    return 0;
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
    aio__mutex_init(&pool->lock);
    aio__cond_init(&pool->work_cond);
    pool->min_workers = 0;
    pool->max_workers = POOL_MAX_DEFAULT;
    pool->idle_ns = POOL_IDLE_NS_DEFAULT;
    atomic_init(&pool->done_list, NULL);
    return pool;
}

static void pool_free(AioWorkPool *pool)
{
    aio__cond_destroy(&pool->work_cond);
    aio__mutex_destroy(&pool->lock);
    free(pool);
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
        pool_free(fresh);
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
    *w = (AioWork){.pool = pool, .fn = fn, .arg = arg, .done = done, .opaque = opaque,
                   .state = WORK_QUEUED};

    aio__mutex_lock(&pool->lock);
    w->prev = pool->tail;
    if (pool->tail) {
        pool->tail->next = w;
    } else {
        pool->head = w;
    }
    pool->tail = w;
    if (pool->nidle > pool->nwakeups) {
        /* An idle worker that no earlier submission has claimed. */
        pool->nwakeups++;
        aio__cond_signal(&pool->work_cond);
    } else if (pool->nworkers < pool->max_workers) {
        int err = start_worker_locked(pool);
        if (err && pool->nworkers == 0) {
            /* Nobody would ever run it. With workers left it waits for
             * one of them instead. */
            queue_unlink_locked(pool, w);
            aio__mutex_unlock(&pool->lock);
            free(w);
            return NULL;
        }
    }
    PoolThread *exited = pool->exited;
    pool->exited = NULL;
    aio__mutex_unlock(&pool->lock);
    join_all(exited);
    return w;
}

int aio_work_cancel(AioWork *w)
{
    if (!w) {
        return -EINVAL;
    }
    AioWorkPool *pool = w->pool;
    aio__mutex_lock(&pool->lock);
    if (w->state != WORK_QUEUED) {
        aio__mutex_unlock(&pool->lock);
        return -EBUSY;
    }
    /* Out of the queue under the lock that a starting worker takes it
     * under: from here on no worker can see it, so fn never runs. */
    queue_unlink_locked(pool, w);
    w->state = WORK_CANCELLED;
    w->ret = -ECANCELED;
    aio__mutex_unlock(&pool->lock);
    /* done runs in the context, never inside this call (the caller may
     * hold a lock that done takes). */
    work_complete(pool, w);
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
    pool->max_workers = max_workers;
    /* Idle workers re-check: those above the new maximum exit. */
    aio__cond_broadcast(&pool->work_cond);
    aio__mutex_unlock(&pool->lock);
    return 0;
}

void aio__work_teardown(AioContext *ctx)
{
    AioWorkPool *pool = atomic_load_explicit(&ctx->pool, memory_order_acquire);
    if (!pool) {
        return;
    }
    if (aio__ctx_forked(ctx)) {
        /* The workers live in the parent; the lock may have been held by
         * one of them at fork(). The child leaks the pool's memory. */
        return;
    }
    aio__mutex_lock(&pool->lock);
    pool->stopping = true;
    /* Not started: dropped, fn never runs, done never runs (aio.h). */
    AioWork *w = pool->head;
    pool->head = pool->tail = NULL;
    PoolThread *threads = pool->live;
    PoolThread *exited = pool->exited;
    pool->live = pool->exited = NULL;
    aio__cond_broadcast(&pool->work_cond);
    aio__mutex_unlock(&pool->lock);
    while (w) {
        AioWork *next = w->next;
        free(w);
        w = next;
    }
    aio__call_hook(ctx, AIO_HOOK_POOL_STOPPING);
    /* Running fns finish first; their completions land on done_list (and
     * schedule the BH of a context that is still whole at this point). */
    join_all(threads);
    join_all(exited);
    AioWork *d = atomic_exchange_explicit(&pool->done_list, NULL, memory_order_acquire);
    while (d) {
        AioWork *next = d->done_next;
        free(d);
        d = next;
    }
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
    aio__cond_broadcast(&pool->work_cond);
    aio__mutex_unlock(&pool->lock);
    return 0;
}

int aio__test_pool_workers(AioContext *ctx)
{
    AioWorkPool *pool = ctx ? atomic_load_explicit(&ctx->pool, memory_order_acquire) : NULL;
    if (!pool) {
        return 0;
    }
    aio__mutex_lock(&pool->lock);
    int n = pool->nworkers;
    aio__mutex_unlock(&pool->lock);
    return n;
}
#endif
