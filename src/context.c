/* SPDX-License-Identifier: MIT */
/* Context lifetime, backend selection and home-thread ownership. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aio-internal.h"

static const AioBackendOps *select_backend(void)
{
    const char *want = aio__backend_env();
    if (!want) {
        return aio__backends[0];
    }
    for (size_t i = 0; aio__backends[i]; i++) {
        if (strcmp(aio__backends[i]->name, want) == 0) {
            return aio__backends[i];
        }
    }
    /* An unknown name is an error rather than a fallback: a test run that
     * asked for pipe+poll must never quietly exercise eventfd+ppoll. */
    return NULL;
}

AioContext *aio_context_new(void)
{
    aio__platform_init();
    const AioBackendOps *ops = select_backend();
    if (!ops) {
        errno = EINVAL;
        return NULL;
    }
    uint64_t self = aio__thread_id();
    if (!aio__home_id_fits(self)) {
        errno = EOVERFLOW; /* src/home.h: an id the home word cannot hold */
        return NULL;
    }
    AioContext *ctx = aio__calloc(1, sizeof(*ctx));
    if (!ctx) {
        errno = ENOMEM;
        return NULL;
    }
    ctx->be = ops->create();
    if (!ctx->be) {
        int saved = errno;
        free(ctx);
        errno = saved ? saved : ENOMEM;
        return NULL;
    }
    ctx->ops = ops;
    atomic_init(&ctx->refcnt, 1);
    atomic_init(&ctx->home, aio__home_make(self));
    atomic_init(&ctx->notify_me, 0);
    atomic_init(&ctx->notify_seq, 0);
    atomic_init(&ctx->kick_pending, false);
    aio__mutex_init(&ctx->dispatch_lock);
    aio__cond_init(&ctx->dispatch_cond);
    atomic_init(&ctx->dispatch_owner, 0);
    atomic_init(&ctx->bh_pending, NULL);
    aio__mutex_init(&ctx->bh_lock);
    aio__mutex_init(&ctx->list_lock);
    atomic_init(&ctx->external_disable_cnt, 0);
    atomic_init(&ctx->walkers, 0);
    atomic_init(&ctx->generation, 1); /* a zeroed AioPollSet never matches */
    atomic_init(&ctx->purge_needed, false);
    aio__mutex_init(&ctx->timer_lock);
    for (int c = 0; c < AIO_NCLOCKS; c++) {
        atomic_init(&ctx->timers[c].earliest_ns, INT64_MAX);
    }
    atomic_init(&ctx->timers_armed, 0);
    atomic_init(&ctx->pool, NULL);
    atomic_init(&ctx->poll_max_ns, 0);
    atomic_init(&ctx->poll_grow, 0);
    atomic_init(&ctx->poll_shrink, 0);
#if AIOPOLL_TEST_HOOKS
    atomic_init(&ctx->test.hook, NULL);
    atomic_init(&ctx->test.clock, NULL);
    atomic_init(&ctx->test.wait_error, 0);
#endif
    ctx->fork_gen = aio__fork_generation();
    return ctx;
}

void aio_context_ref(AioContext *ctx)
{
    if (ctx) {
        atomic_fetch_add_explicit(&ctx->refcnt, 1, memory_order_relaxed);
    }
}

void aio_context_unref(AioContext *ctx)
{
    if (!ctx) {
        return;
    }
    /* acq_rel: every other holder's last use of the context happens before
     * the teardown below. */
    if (atomic_fetch_sub_explicit(&ctx->refcnt, 1, memory_order_acq_rel) != 1) {
        return;
    }
    /* From inside a callback, the aio_poll running it (and the callbacks
     * still to come in its round, and the polls it is nested in) use ctx
     * after we return: the outermost poll of this thread destroys it on its
     * way out instead. Only the holder ever stores its own id in
     * dispatch_owner, so a relaxed load cannot mistake another thread's
     * right for ours; a poll that is asleep holds no right and runs no
     * callback, so 0 there is the truth too. The fast path of aio_poll pays
     * one plain load of destroy_pending for this, no atomic RMW. */
    if (aio__dispatch_held_by(atomic_load_explicit(&ctx->dispatch_owner, memory_order_relaxed),
                              aio__thread_id())) {
        ctx->destroy_pending = true;
        return;
    }
    aio__context_destroy(ctx);
}

void aio__context_destroy(AioContext *ctx)
{
    if (aio__ctx_forked(ctx) && ctx->ops->forked) {
        /* Free this process's copies only: the parent's registrations live
         * in the same kernel objects. */
        ctx->ops->forked(ctx->be);
    }
    /* First: running work completes into a context that is still whole. */
    aio__work_teardown(ctx);
    aio__bh_teardown(ctx);
    aio__timers_teardown(ctx);
    aio__sources_teardown(ctx);
    ctx->ops->destroy(ctx->be);
    aio__mutex_destroy(&ctx->timer_lock);
    aio__mutex_destroy(&ctx->list_lock);
    aio__mutex_destroy(&ctx->bh_lock);
    aio__cond_destroy(&ctx->dispatch_cond);
    aio__mutex_destroy(&ctx->dispatch_lock);
    free(ctx);
}

int aio_context_after_fork(AioContext *ctx)
{
    if (!ctx) {
        return -EINVAL;
    }
    if (!aio__ctx_forked(ctx)) {
        return 0;
    }
    /* An embedding inherited from the parent names the parent's objects
     * (the host polls the parent's epoll set or descriptors) and holds a
     * count on the home word and, maybe, an announcement in notify_me, both
     * of which the reset below would drop under it. The child detaches first
     * (aio_embed_detach touches only the child's memory) and attaches again
     * after. */
    if (ctx->embed.attached) {
        return -EBUSY;
    }
    AioBackend *fresh = ctx->ops->create();
    if (!fresh) {
        return errno ? -errno : -ENOMEM;
    }
    /* The inherited backend goes without touching what it shares with the
     * parent (forked): its epoll set's interest list, its wake-up object. */
    if (ctx->ops->forked) {
        ctx->ops->forked(ctx->be);
    }
    aio__work_after_fork(ctx);
    aio__sources_unwatch_all(ctx);
    ctx->ops->destroy(ctx->be);
    ctx->be = fresh;
    ctx->fork_gen = aio__fork_generation();
    /* No poll of this process is sleeping (the header's precondition), so
     * nobody owes or awaits a kick on the new object. notify_seq and
     * notify_seen stay as inherited: every aio_notify() the forking thread
     * made (before or after fork) is in notify_seq, and no other thread was
     * between publishing news and notifying (the precondition again), so a
     * notification the child needs is pending already and none is made up. */
    atomic_store(&ctx->notify_me, 0);
    atomic_store(&ctx->kick_pending, false);
    /* The forking thread is the child's only thread, and nothing blocks. */
    atomic_store(&ctx->home, aio__home_make(aio__thread_id()));
    return aio__sources_watch_all(ctx);
}

int aio_context_set_home_thread(AioContext *ctx)
{
    if (!ctx) {
        return -EINVAL;
    }
    /* A blocking poll in progress belongs to the old home thread; moving
     * ownership under it would let two threads block at once, and two
     * blocking pollers steal each other's wake-ups: -EBUSY. */
    return aio__home_set(&ctx->home, aio__thread_id());
}

bool aio_context_in_home_thread(const AioContext *ctx)
{
    return ctx && aio__home_is(&((AioContext *)ctx)->home, aio__thread_id());
}

const char *aio_context_backend(const AioContext *ctx)
{
    if (!ctx) {
        return "";
    }
    return ctx->ops->current_name ? ctx->ops->current_name(ctx->be) : ctx->ops->name;
}

int aio_context_set_poll_params(AioContext *ctx, int64_t max_ns, int64_t grow, int64_t shrink)
{
    if (!ctx || max_ns < 0 || grow < 0 || shrink < 0 || grow == 1) {
        return -EINVAL;
    }
    atomic_store(&ctx->poll_max_ns, max_ns);
    atomic_store(&ctx->poll_grow, grow);
    atomic_store(&ctx->poll_shrink, shrink);
    /* The window itself is clamped by the next blocking poll (it belongs to
     * the dispatch-right holder); a wake-up makes that happen promptly. */
    aio_notify(ctx);
    return 0;
}

#if AIOPOLL_TEST_HOOKS
void aio__set_test_hook(AioContext *ctx, AioTestHook *hook, void *opaque)
{
    if (!ctx) {
        return;
    }
    ctx->test.hook_opaque = opaque;
    /* release: a poller that sees the hook also sees its opaque. */
    atomic_store_explicit(&ctx->test.hook, hook, memory_order_release);
}

void aio__test_premise(bool holds, const char *what)
{
    if (!holds) {
        fprintf(stderr, "aiopoll: premise broken: %s\n", what);
        abort();
    }
}

void aio__call_hook(AioContext *ctx, AioHookPoint point)
{
    AioTestHook *hook = atomic_load_explicit(&ctx->test.hook, memory_order_acquire);
    if (hook) {
        hook(ctx, point, ctx->test.hook_opaque);
    }
}

void aio__set_test_clock(AioContext *ctx, AioTestClock *clock, void *opaque)
{
    if (!ctx) {
        return;
    }
    ctx->test.clock_opaque = opaque;
    /* release: as for the hook. */
    atomic_store_explicit(&ctx->test.clock, clock, memory_order_release);
    /* A sleeping poll computed its timeout on the old clock. */
    aio_notify(ctx);
}

int64_t aio__timers_now(AioContext *ctx)
{
    AioTestClock *clock = atomic_load_explicit(&ctx->test.clock, memory_order_acquire);
    return clock ? clock(ctx->test.clock_opaque) : aio__clock_ns();
}

void aio__set_test_wait_error(AioContext *ctx, int err)
{
    if (ctx) {
        atomic_store_explicit(&ctx->test.wait_error, err, memory_order_relaxed);
    }
}

int aio__test_wait_error(AioContext *ctx)
{
    return atomic_load_explicit(&ctx->test.wait_error, memory_order_relaxed);
}
#endif

#if AIOPOLL_TEST_HOOKS
/* The fault table (aio-test-hooks.h). any_armed keeps the unarmed cost of
 * an injection point at one relaxed load: the whole test suite runs on this
 * build, and most of it never arms anything. */
typedef struct FaultSlot {
    atomic_uint nth; /* 0: disarmed */
    atomic_uint count;
    atomic_int err;
    atomic_bool fired;
} FaultSlot;

static FaultSlot fault_slots[AIO_FAULT_KINDS];
static atomic_bool fault_any_armed;

void aio__fault_arm(AioFaultKind kind, unsigned nth, int err)
{
    if ((unsigned)kind >= AIO_FAULT_KINDS) {
        return;
    }
    FaultSlot *s = &fault_slots[kind];
    atomic_store(&s->nth, 0);
    atomic_store(&s->count, 0);
    atomic_store(&s->fired, false);
    atomic_store(&s->err, err);
    /* nth last: an operation that sees it armed also sees the count reset
     * and the error (seq_cst). */
    atomic_store(&s->nth, nth);
    atomic_store(&fault_any_armed, nth != 0 || atomic_load(&fault_any_armed));
}

void aio__fault_disarm(void)
{
    atomic_store(&fault_any_armed, false);
    for (int k = 0; k < AIO_FAULT_KINDS; k++) {
        atomic_store(&fault_slots[k].nth, 0);
    }
}

bool aio__fault_fired(AioFaultKind kind)
{
    return (unsigned)kind < AIO_FAULT_KINDS && atomic_load(&fault_slots[kind].fired);
}

unsigned aio__fault_count(AioFaultKind kind)
{
    return (unsigned)kind < AIO_FAULT_KINDS ? atomic_load(&fault_slots[kind].count) : 0;
}

const char *aio__fault_name(AioFaultKind kind)
{
    static const char *const names[AIO_FAULT_KINDS] = {
        [AIO_FAULT_ALLOC] = "alloc",
        [AIO_FAULT_EVENTFD] = "eventfd",
        [AIO_FAULT_PIPE] = "pipe",
        [AIO_FAULT_FCNTL] = "fcntl",
        [AIO_FAULT_EPOLL_CREATE] = "epoll_create1",
        [AIO_FAULT_EPOLL_CTL] = "epoll_ctl",
        [AIO_FAULT_WAIT] = "wait",
        [AIO_FAULT_READ] = "read",
        [AIO_FAULT_WRITE] = "write",
        [AIO_FAULT_THREAD] = "thread",
        [AIO_FAULT_CREATE_EVENT] = "CreateEvent",
        [AIO_FAULT_DUPLICATE_HANDLE] = "DuplicateHandle",
        [AIO_FAULT_WSA_CREATE_EVENT] = "WSACreateEvent",
        [AIO_FAULT_WSA_EVENT_SELECT] = "WSAEventSelect",
        [AIO_FAULT_IO_URING_SETUP] = "io_uring_setup",
    };
    return (unsigned)kind < AIO_FAULT_KINDS ? names[kind] : "?";
}

int aio__fault_hit(AioFaultKind kind)
{
    if (!atomic_load_explicit(&fault_any_armed, memory_order_relaxed)) {
        return 0;
    }
    FaultSlot *s = &fault_slots[kind];
    unsigned nth = atomic_load(&s->nth);
    if (nth == 0) {
        return 0;
    }
    /* fetch_add: of two threads racing here exactly one gets the nth. */
    if (atomic_fetch_add(&s->count, 1) + 1 != nth) {
        return 0;
    }
    atomic_store(&s->fired, true);
    return atomic_load(&s->err);
}
#endif
