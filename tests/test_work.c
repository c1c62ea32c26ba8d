/* SPDX-License-Identifier: MIT */
/*
 * The worker pool: fn on a worker, done in the context with fn's value;
 * cancel before the start (fn never runs, done gets -ECANCELED) and after it
 * (-EBUSY, done runs normally); workers on demand up to max, idle exit above
 * min; a burst of completions is one BH and no system call while the
 * context is awake; the last unref with work running and queued; bad
 * arguments; and a stress run of 10^5 submissions from four threads with
 * cancels racing the starts.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* kill() under a strict -std=c11 */
#endif
#include "test-common.h"

#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define WK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WK_ASAN 1
#endif
#endif
#ifdef WK_ASAN
#include <sanitizer/lsan_interface.h>
#endif
/* TSan refuses to start threads in the child of a multi-threaded fork(). */
#if defined(__SANITIZE_THREAD__)
#define WK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WK_TSAN 1
#endif
#endif

typedef struct wk_item {
    atomic_int *release;   /* fn blocks until *release (NULL: no blocking) */
    atomic_int started;
    atomic_int fn_ran;
    atomic_int done_runs;
    atomic_int *done_total; /* bumped by done */
    int done_ret;
    int value;              /* what fn returns */
    uint64_t fn_thread;
    bool done_in_home;
    AioContext *ctx;
} wk_item;

static uint64_t wk_thread_id(void)
{
    return tsup_os_thread_id();
}

static int wk_fn(void *arg)
{
    wk_item *it = arg;
    it->fn_thread = wk_thread_id();
    atomic_store(&it->started, 1);
    if (it->release) {
        /* Bounded: a test that forgot to release fails instead of hanging. */
        tsup_wait_flag(it->release, TC_BOUND_MS * 2);
    }
    atomic_store(&it->fn_ran, 1);
    return it->value;
}

static void wk_done(void *opaque, int ret)
{
    wk_item *it = opaque;
    it->done_ret = ret;
    it->done_in_home = aio_context_in_home_thread(it->ctx);
    atomic_fetch_add(&it->done_runs, 1);
    if (it->done_total) {
        atomic_fetch_add(it->done_total, 1);
    }
}

static void wk_init(wk_item *it, AioContext *ctx, atomic_int *release, atomic_int *total,
                    int value)
{
    *it = (wk_item){.release = release, .done_total = total, .value = value, .ctx = ctx};
}

static AioWork *wk_submit(AioContext *ctx, wk_item *it)
{
    AioWork *w = aio_work_submit(ctx, wk_fn, it, wk_done, it);
    cr_assert_not_null(w, "aio_work_submit failed");
    return w;
}

Test(work, fn_on_worker_done_in_context, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int total = 0;
    wk_item it;
    wk_init(&it, ctx, NULL, &total, 42);
    wk_submit(ctx, &it);
    cr_assert(tc_poll_until(ctx, &total, 1, TC_BOUND_MS), "done never ran");
    cr_assert_eq(it.done_ret, 42);
    cr_assert(it.done_in_home, "done ran outside the context's thread");
    cr_assert_neq(it.fn_thread, wk_thread_id(), "fn ran on the context's thread");
    cr_assert_eq(atomic_load(&it.done_runs), 1);
    aio_context_unref(ctx);
}

Test(work, bad_arguments, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    wk_item it;
    wk_init(&it, ctx, NULL, NULL, 0);
    cr_assert_null(aio_work_submit(NULL, wk_fn, &it, wk_done, &it));
    cr_assert_null(aio_work_submit(ctx, NULL, &it, wk_done, &it));
    cr_assert_null(aio_work_submit(ctx, wk_fn, &it, NULL, &it));
    cr_assert_eq(aio_work_cancel(NULL), -EINVAL);
    cr_assert_eq(aio_context_set_thread_pool_params(NULL, 0, 1), -EINVAL);
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, -1, 1), -EINVAL);
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 0), -EINVAL);
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 3, 2), -EINVAL);
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 2, 2), 0);
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 1), 0);
    cr_assert(strcmp(aio_strerror(-ECANCELED), "unknown error") != 0);
    /* Still usable. */
    atomic_int total = 0;
    wk_item ok;
    wk_init(&ok, ctx, NULL, &total, 7);
    wk_submit(ctx, &ok);
    cr_assert(tc_poll_until(ctx, &total, 1, TC_BOUND_MS));
    cr_assert_eq(ok.done_ret, 7);
    aio_context_unref(ctx);
}

Test(work, cancel_before_start_and_while_running, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 1), 0);
    atomic_int release = 0, total = 0;
    wk_item running, queued, behind;
    wk_init(&running, ctx, &release, &total, 1);
    wk_init(&queued, ctx, NULL, &total, 2);
    wk_init(&behind, ctx, NULL, &total, 3);
    AioWork *wr = wk_submit(ctx, &running);
    cr_assert(tsup_wait_flag(&running.started, TC_BOUND_MS), "first work never started");
    /* One worker, busy: these two cannot have started. */
    AioWork *wq = wk_submit(ctx, &queued);
    wk_submit(ctx, &behind);
    cr_assert_eq(aio_work_cancel(wq), 0);
    cr_assert_eq(aio_work_cancel(wr), -EBUSY);
    /* done of a cancelled work runs in a later poll, not inside cancel. */
    cr_assert_eq(atomic_load(&queued.done_runs), 0);
    atomic_store(&release, 1);
    cr_assert(tc_poll_until(ctx, &total, 3, TC_BOUND_MS), "a done never ran");
    cr_assert_eq(queued.done_ret, -ECANCELED);
    cr_assert_eq(atomic_load(&queued.fn_ran), 0, "cancelled work ran");
    cr_assert_eq(running.done_ret, 1);
    cr_assert_eq(behind.done_ret, 3, "the work behind a cancelled one did not run");
    cr_assert_eq(atomic_load(&queued.done_runs), 1);
    aio_context_unref(ctx);
}

Test(work, cancel_after_finish_is_ebusy, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int total = 0;
    wk_item it;
    wk_init(&it, ctx, NULL, &total, 5);
    AioWork *w = aio_work_submit(ctx, wk_fn, &it, wk_done, &it);
    cr_assert_not_null(w);
    cr_assert(tsup_wait_flag(&it.fn_ran, TC_BOUND_MS));
    /* fn returned; done has not run (nobody polled): still a valid handle. */
    cr_assert_eq(aio_work_cancel(w), -EBUSY);
    cr_assert(tc_poll_until(ctx, &total, 1, TC_BOUND_MS));
    cr_assert_eq(it.done_ret, 5);
    aio_context_unref(ctx);
}

Test(work, workers_on_demand_up_to_max_and_idle_exit, .timeout = 30)
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 1, 3), 0);
    cr_assert_eq(aio__set_test_pool_idle_ns(ctx, 20 * 1000000LL), 0);
    cr_assert_eq(aio__test_pool_workers(ctx), 0, "workers started in advance");
    enum { N = 5 };
    atomic_int release = 0, total = 0;
    wk_item it[N];
    for (int i = 0; i < N; i++) {
        wk_init(&it[i], ctx, &release, &total, i);
        wk_submit(ctx, &it[i]);
    }
    for (int i = 0; i < 3; i++) {
        cr_assert(tsup_wait_flag(&it[i].started, TC_BOUND_MS), "work %d never started", i);
    }
    cr_assert_eq(aio__test_pool_workers(ctx), 3, "pool went past its maximum");
    cr_assert_eq(atomic_load(&it[3].started) + atomic_load(&it[4].started), 0,
                 "more work running than workers");
    atomic_store(&release, 1);
    cr_assert(tc_poll_until(ctx, &total, N, TC_BOUND_MS));
    /* Idle above min: two of the three exit after 20 ms; one stays. */
    int64_t start = tsup_now_ns();
    while (aio__test_pool_workers(ctx) > 1 && tsup_ms_since(start) < TC_BOUND_MS) {
        tsup_sleep_ms(5);
    }
    cr_assert_eq(aio__test_pool_workers(ctx), 1, "idle workers above min did not exit");
    /* And the survivor (plus new ones) still serve. */
    atomic_store(&release, 0);
    wk_item again;
    wk_init(&again, ctx, NULL, &total, 9);
    wk_submit(ctx, &again);
    cr_assert(tc_poll_until(ctx, &total, N + 1, TC_BOUND_MS));
    aio_context_unref(ctx);
}

/* A burst: max 1 worker, held by a blocker, N more queued behind it; while
 * the context does not poll, all finish onto the completion list. */
Test(work, burst_is_one_bh_and_no_syscall_while_awake, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 1), 0);
    enum { N = 50 };
    atomic_int release = 0, total = 0;
    wk_item blocker, it[N];
    wk_init(&blocker, ctx, &release, &total, -1);
    wk_submit(ctx, &blocker);
    for (int i = 0; i < N; i++) {
        wk_init(&it[i], ctx, NULL, &total, i);
        wk_submit(ctx, &it[i]);
    }
    /* A sentinel behind them: when its fn runs, the only worker has pushed
     * every completion before it (same thread, in order). */
    wk_item sentinel;
    wk_init(&sentinel, ctx, NULL, &total, 0);
    wk_submit(ctx, &sentinel);
    AioContextStats before = tc_stats(ctx);
    atomic_store(&release, 1);
    cr_assert(tsup_wait_flag(&sentinel.started, TC_BOUND_MS));
    cr_assert_eq(aio_poll(ctx, false), 1);
    cr_assert_geq(atomic_load(&total), N + 1, "one poll ran %d of %d completions",
                  atomic_load(&total), N + 1);
    AioContextStats after = tc_stats(ctx);
    cr_assert_eq(after.bhs_run - before.bhs_run, 1, "%d completions took %llu BHs", N + 1,
                 (unsigned long long)(after.bhs_run - before.bhs_run));
    cr_assert_eq(after.notify_syscalls - before.notify_syscalls, 0,
                 "completions to an awake context made a system call");
    cr_assert_geq(after.work_completed - before.work_completed, N + 1);
    cr_assert(tc_poll_until(ctx, &total, N + 2, TC_BOUND_MS));
    for (int i = 0; i < N; i++) {
        cr_assert_eq(it[i].done_ret, i);
    }
    aio_context_unref(ctx);
}

/* A done that waits (aio_wait_while, a nested poll) for work that completed
 * in the same batch: QEMU's block layer does this when a request's
 * completion drains its siblings. The BH run that called the first done has
 * taken the second one's completion from the stack, so only a nested run of
 * the BH that continues the same queue can deliver it; without it the wait
 * sleeps until the guard timer. One worker and a sentinel behind both make
 * the batch deterministic (burst_is_one_bh_... above). */
typedef struct wk_waiter {
    AioContext *ctx;
    wk_item *sibling;
    atomic_int gave_up;
    int wait_ret;
    int sibling_runs_inside;
    atomic_int finished;
} wk_waiter;

static bool wk_sibling_pending(void *opaque)
{
    wk_waiter *wt = opaque;
    return atomic_load(&wt->sibling->done_runs) == 0 && !atomic_load(&wt->gave_up);
}

static void wk_waiting_done(void *opaque, int ret)
{
    wk_waiter *wt = opaque;
    (void)ret;
    wt->wait_ret = aio_wait_while(wt->ctx, wk_sibling_pending, wt);
    wt->sibling_runs_inside = atomic_load(&wt->sibling->done_runs);
    atomic_store(&wt->finished, 1);
}

static void wk_give_up(void *opaque)
{
    atomic_store((atomic_int *)opaque, 1);
}

Test(work, done_waits_for_a_completion_of_its_own_batch, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 1), 0);
    atomic_int total = 0;
    wk_item first, sibling, sentinel;
    wk_init(&first, ctx, NULL, NULL, 1);
    wk_init(&sibling, ctx, NULL, &total, 2);
    wk_init(&sentinel, ctx, NULL, &total, 3);
    wk_waiter wt = {.ctx = ctx, .sibling = &sibling};
    cr_assert_not_null(aio_work_submit(ctx, wk_fn, &first, wk_waiting_done, &wt));
    wk_submit(ctx, &sibling);
    wk_submit(ctx, &sentinel);
    /* The only worker ran first and sibling, and pushed both completions,
     * before it started the sentinel. */
    cr_assert(tsup_wait_flag(&sentinel.started, TC_BOUND_MS));
    AioTimer *guard = aio_timer_new(ctx, wk_give_up, &wt.gave_up);
    aio_timer_mod(guard, aio_clock_ns() + (int64_t)TC_BOUND_MS * 1000000);
    cr_assert_eq(aio_poll(ctx, false), 1);
    cr_assert(atomic_load(&wt.finished), "the waiting done did not run in that poll");
    cr_assert_eq(wt.wait_ret, 0);
    cr_assert(!atomic_load(&wt.gave_up),
                  "the nested wait never got its sibling's completion (guard timer fired)");
    cr_assert_eq(wt.sibling_runs_inside, 1);
    cr_assert_eq(sibling.done_ret, 2);
    cr_assert(tc_poll_until(ctx, &total, 2, TC_BOUND_MS));
    cr_assert_eq(atomic_load(&sibling.done_runs), 1, "a completion ran twice");
    aio_timer_free(guard);
    aio_context_unref(ctx);
}

/* done callbacks that submit the next work: a chain, all in the context. */
typedef struct wk_chain {
    AioContext *ctx;
    atomic_int left;
    atomic_int finished;
} wk_chain;

static int wk_chain_fn(void *arg)
{
    (void)arg;
    return 1;
}

static void wk_chain_done(void *opaque, int ret)
{
    wk_chain *c = opaque;
    cr_assert_eq(ret, 1);
    if (atomic_fetch_sub(&c->left, 1) > 1) {
        cr_assert_not_null(aio_work_submit(c->ctx, wk_chain_fn, c, wk_chain_done, c));
    } else {
        atomic_store(&c->finished, 1);
    }
}

Test(work, done_submits_more_work, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    wk_chain c = {.ctx = ctx};
    atomic_init(&c.left, 200);
    atomic_init(&c.finished, 0);
    cr_assert_not_null(aio_work_submit(ctx, wk_chain_fn, &c, wk_chain_done, &c));
    cr_assert(tc_poll_until(ctx, &c.finished, 1, TC_BOUND_MS * 3));
    aio_context_unref(ctx);
}

/* The last unref: the running fn finishes, the queued one never runs, no
 * done runs. The hook releases the running work only once the pool has
 * dropped the queue, so the outcome does not depend on timing. */
static void wk_release_hook(AioContext *ctx, AioHookPoint point, void *opaque)
{
    (void)ctx;
    if (point == AIO_HOOK_POOL_STOPPING) {
        atomic_store((atomic_int *)opaque, 1);
    }
}

Test(work, last_unref_waits_running_drops_queued_runs_no_done, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 1), 0);
    atomic_int release = 0, total = 0;
    static wk_item running, queued[3], finished;
    wk_init(&finished, ctx, NULL, &total, 0);
    wk_submit(ctx, &finished);
    cr_assert(tsup_wait_flag(&finished.fn_ran, TC_BOUND_MS));
    wk_init(&running, ctx, &release, &total, 0);
    wk_submit(ctx, &running);
    cr_assert(tsup_wait_flag(&running.started, TC_BOUND_MS));
    for (int i = 0; i < 3; i++) {
        wk_init(&queued[i], ctx, NULL, &total, 0);
        wk_submit(ctx, &queued[i]);
    }
    aio__set_test_hook(ctx, wk_release_hook, &release);
    aio_context_unref(ctx);
    cr_assert_eq(atomic_load(&running.fn_ran), 1, "unref did not wait for the running fn");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(atomic_load(&queued[i].fn_ran), 0, "queued work ran after the last unref");
    }
    cr_assert_eq(atomic_load(&total), 0, "a done ran after the last unref");
}

/* ---- the claim and the idle workers' sleep --------------------------------- */

/* A context whose pool has one worker, a gate at point, and two items that
 * return 1 and 2 into *total. */
static AioContext *wk_one_worker_gated(tc_gate *g, AioHookPoint point, bool hold,
                                       atomic_int *total, wk_item *a, wk_item *b)
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 1), 0);
    tc_gate_install(ctx, g, point, hold);
    wk_init(a, ctx, NULL, total, 1);
    wk_init(b, ctx, NULL, total, 2);
    return ctx;
}

/* The worker has the job in its batch and is about to claim it; the cancel
 * comes first and wins. The worker's claim must then fail: fn never runs, done
 * runs once with -ECANCELED, and the job (owned by both the batch and the
 * completion) is freed once (ASan). */
Test(work, cancel_between_take_and_claim_wins, .timeout = 20)
{
    tc_gate gate;
    atomic_int total = 0;
    wk_item victim, after;
    AioContext *ctx = wk_one_worker_gated(&gate, AIO_HOOK_WORK_BEFORE_CLAIM, true, &total,
                                          &victim, &after);
    AioWork *w = wk_submit(ctx, &victim);
    cr_assert(tc_gate_wait_reached(&gate, TC_BOUND_MS), "the worker never took the job");
    cr_assert_eq(aio_work_cancel(w), 0, "not started, yet not cancellable");
    cr_assert_eq(aio_work_cancel(w), -EBUSY, "cancelled twice");
    tc_gate_release(&gate);
    cr_assert(tc_poll_until(ctx, &total, 1, TC_BOUND_MS));
    cr_assert_eq(victim.done_ret, -ECANCELED);
    /* The worker goes on: the next job runs (through the same gate, armed
     * again, which it passes at once). */
    tc_gate_arm(&gate);
    tc_gate_release(&gate);
    wk_submit(ctx, &after);
    cr_assert(tc_poll_until(ctx, &total, 2, TC_BOUND_MS));
    cr_assert_eq(atomic_load(&victim.fn_ran), 0, "cancel returned 0 and fn ran");
    cr_assert_eq(atomic_load(&victim.done_runs), 1);
    cr_assert_eq(after.done_ret, 2);
    cr_assert(!atomic_load(&gate.timed_out));
    /* The gate stays installed (released): workers may be calling it, and
     * replacing a hook under them races on its opaque. */
    aio_context_unref(ctx);
}

/* The worker is parked, just about to sleep (under the pool's lock): a
 * submission now must wake it. With the wake lost it would sleep its idle
 * timeout (10 s), far past the bound. */
Test(work, submission_wakes_parked_worker, .timeout = 20)
{
    tc_gate gate;
    atomic_int total = 0;
    wk_item first, second;
    AioContext *ctx = wk_one_worker_gated(&gate, AIO_HOOK_WORKER_SLEEP, false, &total, &first,
                                          &second);
    wk_submit(ctx, &first);
    cr_assert(tc_poll_until(ctx, &total, 1, TC_BOUND_MS));
    cr_assert(tc_gate_wait_reached(&gate, TC_BOUND_MS), "the worker never parked");
    wk_submit(ctx, &second);
    cr_assert(tc_poll_until(ctx, &total, 2, TC_BOUND_MS),
              "parked worker never woke for new work: lost wake-up");
    cr_assert_eq(second.done_ret, 2);
    aio_context_unref(ctx); /* the gate stays: see above */
}

/* The push lands while the worker heads for its sleep: it has found the queue
 * empty and still counts as spinning, so the submitter wakes nobody. The
 * worker must see the job when it parks, or it sleeps on it. */
typedef struct wk_idle_push {
    AioContext *ctx;
    wk_item *it;
    atomic_int armed;
    atomic_int pushed;
} wk_idle_push;

static void wk_idle_push_hook(AioContext *ctx, AioHookPoint point, void *opaque)
{
    (void)ctx;
    wk_idle_push *ip = opaque;
    if (point == AIO_HOOK_WORKER_IDLE && atomic_exchange(&ip->armed, 0)) {
        cr_assert_not_null(aio_work_submit(ip->ctx, wk_fn, ip->it, wk_done, ip->it));
        atomic_store(&ip->pushed, 1);
    }
}

Test(work, push_while_worker_heads_to_sleep_is_seen, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 1), 0);
    atomic_int total = 0;
    wk_item first, second;
    wk_init(&first, ctx, NULL, &total, 1);
    wk_init(&second, ctx, NULL, &total, 2);
    wk_idle_push ip = {.ctx = ctx, .it = &second};
    atomic_init(&ip.armed, 1);
    atomic_init(&ip.pushed, 0);
    aio__set_test_hook(ctx, wk_idle_push_hook, &ip);
    wk_submit(ctx, &first);
    cr_assert(tc_poll_until(ctx, &total, 2, TC_BOUND_MS),
              "a job pushed while the worker went to sleep was never run: lost wake-up");
    cr_assert_eq(atomic_load(&ip.pushed), 1);
    cr_assert_eq(second.done_ret, 2);
    aio_context_unref(ctx);
}

/* ---- fork() --------------------------------------------------------------- */
#ifndef _WIN32

/* Nonzero when LeakSanitizer finds memory that nothing points to any more
 * (0 in builds without it: the exit code then only carries the rest). */
static int wk_leaks(void)
{
#ifdef WK_ASAN
    return __lsan_do_recoverable_leak_check();
#else
    return 0;
#endif
}

/* The child's exit status, or fails (after killing it) when it does not
 * exit within the bound: a child joining threads it does not have hangs. */
static int wk_wait_child(pid_t pid)
{
    int status = 0;
    int64_t start = tsup_now_ns();
    pid_t got;
    while ((got = waitpid(pid, &status, WNOHANG)) == 0 && tsup_ms_since(start) < TC_BOUND_MS) {
        tsup_sleep_ms(2);
    }
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        cr_assert_fail("the child hung (waiting for the parent's workers?)");
    }
    cr_assert_eq(got, pid);
    cr_assert(WIFEXITED(status), "child did not exit normally");
    return WEXITSTATUS(status);
}

enum { WK_CHILD_LEAKED = 1, WK_CHILD_SUBMIT_FAILED = 2, WK_CHILD_NEVER_DONE = 4,
       WK_CHILD_AFTER_FORK_FAILED = 8 };

/* Work of every kind at fork(): one running (blocked in fn), three queued,
 * one cancelled (its completion pending). Returns the context. */
static wk_item wk_f_running, wk_f_queued[3], wk_f_cancelled;
static atomic_int wk_f_release, wk_f_total;

static AioContext *wk_fork_setup(void)
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 1), 0);
    atomic_store(&wk_f_release, 0);
    atomic_store(&wk_f_total, 0);
    wk_init(&wk_f_running, ctx, &wk_f_release, &wk_f_total, 1);
    wk_submit(ctx, &wk_f_running);
    cr_assert(tsup_wait_flag(&wk_f_running.started, TC_BOUND_MS));
    for (int i = 0; i < 3; i++) {
        wk_init(&wk_f_queued[i], ctx, NULL, &wk_f_total, 2);
        wk_submit(ctx, &wk_f_queued[i]);
    }
    wk_init(&wk_f_cancelled, ctx, NULL, &wk_f_total, 3);
    cr_assert_eq(aio_work_cancel(wk_submit(ctx, &wk_f_cancelled)), 0);
    return ctx;
}

/* The parent's pool is untouched by whatever the child did. */
static void wk_fork_parent_finish(AioContext *ctx)
{
    atomic_store(&wk_f_release, 1);
    cr_assert(tc_poll_until(ctx, &wk_f_total, 5, TC_BOUND_MS), "parent's work lost");
    cr_assert_eq(wk_f_cancelled.done_ret, -ECANCELED);
    cr_assert_eq(wk_f_queued[2].done_ret, 2);
    aio_context_unref(ctx);
}

/* The child's last unref: no worker of the pool exists in it, so nothing is
 * waited for or joined, and all the pool's memory is freed (LeakSanitizer,
 * in the child, decides the exit code). */
Test(work, fork_child_unref_frees_pool_without_joining, .timeout = 20)
{
    AioContext *ctx = wk_fork_setup();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        aio_context_unref(ctx);
        _exit(wk_leaks() ? WK_CHILD_LEAKED : 0);
    }
    cr_assert_eq(wk_wait_child(pid), 0, "child: 1 leaked");
    wk_fork_parent_finish(ctx);
}

#ifndef WK_TSAN
static int wk_child_fn(void *arg)
{
    (void)arg;
    return 42;
}

static void wk_child_done(void *opaque, int ret)
{
    *(int *)opaque = ret;
}
#endif

/* after_fork gives the child a pool of its own: a submission runs on a
 * worker of the child, and the last unref frees everything. */
Test(work, fork_child_after_fork_submits_on_own_pool, .timeout = 20)
{
    AioContext *ctx = wk_fork_setup();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int rc = 0, got = 0;
        if (aio_context_after_fork(ctx) != 0) {
            rc |= WK_CHILD_AFTER_FORK_FAILED;
        }
#ifdef WK_TSAN
        got = 42; /* no worker can start here: after_fork and unref only */
#else
        if (!aio_work_submit(ctx, wk_child_fn, NULL, wk_child_done, &got)) {
            rc |= WK_CHILD_SUBMIT_FAILED;
        }
#endif
        int64_t start = tsup_now_ns();
        while (got != 42 && tsup_ms_since(start) < TC_BOUND_MS / 2) {
            aio_poll(ctx, false);
            tsup_sleep_ms(1);
        }
        if (got != 42) {
            rc |= WK_CHILD_NEVER_DONE;
        }
        aio_context_unref(ctx);
        _exit(rc | (wk_leaks() ? WK_CHILD_LEAKED : 0));
    }
    cr_assert_eq(wk_wait_child(pid), 0,
                 "child: 1 leaked, 2 submit failed, 4 work never done, 8 after_fork failed");
    wk_fork_parent_finish(ctx);
}
#endif

/* ---- stress -------------------------------------------------------------- */

typedef struct wk_rec {
    atomic_int fn_ran;
    atomic_int done_runs;
    atomic_int cancel_tried; /* done waits for it when a cancel is coming */
    int done_ret;
    int cancel_ret;
    bool will_cancel;
    struct wk_stress *stress;
} wk_rec;

typedef struct wk_stress {
    AioContext *ctx;
    wk_rec *recs;
    int per_thread;
    atomic_int done_total;
    atomic_int submit_failed;
} wk_stress;

typedef struct wk_submitter {
    wk_stress *s;
    int first;
} wk_submitter;

static int wk_rec_fn(void *arg)
{
    wk_rec *r = arg;
    atomic_store(&r->fn_ran, 1);
    return 1;
}

static void wk_rec_done(void *opaque, int ret)
{
    wk_rec *r = opaque;
    /* The handle must stay valid until the submitter's cancel is over:
     * hold done until it has been tried (bounded). */
    if (r->will_cancel) {
        tsup_wait_flag(&r->cancel_tried, TC_BOUND_MS);
    }
    r->done_ret = ret;
    atomic_fetch_add(&r->done_runs, 1);
    atomic_fetch_add(&r->stress->done_total, 1);
}

static void wk_submitter_main(void *arg)
{
    wk_submitter *sub = arg;
    wk_stress *s = sub->s;
    for (int i = 0; i < s->per_thread; i++) {
        wk_rec *r = &s->recs[sub->first + i];
        r->stress = s;
        r->will_cancel = (i % 3) == 0;
        AioWork *w = aio_work_submit(s->ctx, wk_rec_fn, r, wk_rec_done, r);
        if (!w) {
            atomic_fetch_add(&s->submit_failed, 1);
            continue;
        }
        if (r->will_cancel) {
            r->cancel_ret = aio_work_cancel(w);
            atomic_store(&r->cancel_tried, 1);
        }
    }
}

/* Every record: done ran once; a cancel that returned 0 means fn never ran
 * and done got -ECANCELED; otherwise fn ran and done got its value. */
static void wk_stress_check(wk_stress *s, int total)
{
    cr_assert_eq(atomic_load(&s->submit_failed), 0);
    int cancelled = 0, busy = 0;
    for (int i = 0; i < total; i++) {
        wk_rec *r = &s->recs[i];
        cr_assert_eq(atomic_load(&r->done_runs), 1, "work %d: done ran %d times", i,
                     atomic_load(&r->done_runs));
        if (r->will_cancel && r->cancel_ret == 0) {
            cancelled++;
            cr_assert_eq(r->done_ret, -ECANCELED, "work %d", i);
            cr_assert_eq(atomic_load(&r->fn_ran), 0, "work %d: cancelled but ran", i);
        } else {
            if (r->will_cancel) {
                busy++;
                cr_assert_eq(r->cancel_ret, -EBUSY, "work %d", i);
            }
            cr_assert_eq(r->done_ret, 1, "work %d", i);
            cr_assert_eq(atomic_load(&r->fn_ran), 1, "work %d", i);
        }
    }
    cr_assert_gt(cancelled + busy, 0);
}

/* T submitter threads each run main over its share of rounds; the home
 * thread dispatches completions until every done ran (the watchdog inside
 * tc_poll_until turns a lost completion or a lost worker wake-up into a
 * failure, not a hang); then every record is checked. */
static void wk_stress_run(int nthreads, int max_workers, void (*main)(void *))
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, max_workers), 0);
    long rounds = tc_env_long("AIOPOLL_STRESS_ROUNDS", 100000);
    wk_stress s = {.ctx = ctx, .per_thread = (int)(rounds / nthreads)};
    atomic_init(&s.done_total, 0);
    atomic_init(&s.submit_failed, 0);
    int total = s.per_thread * nthreads;
    s.recs = calloc((size_t)total, sizeof(*s.recs));
    wk_submitter *subs = calloc((size_t)nthreads, sizeof(*subs));
    tc_thread **th = calloc((size_t)nthreads, sizeof(*th));
    cr_assert(s.recs && subs && th);
    for (int i = 0; i < nthreads; i++) {
        subs[i] = (wk_submitter){.s = &s, .first = i * s.per_thread};
        th[i] = tc_thread_start(main, &subs[i]);
    }
    bool all = tc_poll_until(ctx, &s.done_total, total, 60000);
    for (int i = 0; i < nthreads; i++) {
        cr_assert(tc_thread_join(th[i], TC_BOUND_MS));
    }
    cr_assert(all, "completions lost: %d of %d done", atomic_load(&s.done_total), total);
    wk_stress_check(&s, total);
    free(th);
    free(subs);
    free(s.recs);
    aio_context_unref(ctx);
}

Test(work, stress_submit_cancel_race, .timeout = 120)
{
    wk_stress_run(4, 4, wk_submitter_main);
}

/* Bursts: each submitter submits a few jobs, cancels every other one while
 * the workers take and start them, then waits for the burst's completions.
 * Between bursts the workers run dry, so they keep parking and being woken
 * (and chaining wakes) while eight threads push: the lost wake-up of a
 * parking worker shows as a burst that never completes. */
static void wk_burst_submitter_main(void *arg)
{
    wk_submitter *sub = arg;
    wk_stress *s = sub->s;
    enum { BURST = 6 };
    AioWork *w[BURST];
    for (int i = 0; i < s->per_thread; i += BURST) {
        int n = s->per_thread - i < BURST ? s->per_thread - i : BURST;
        for (int k = 0; k < n; k++) {
            wk_rec *r = &s->recs[sub->first + i + k];
            r->stress = s;
            r->will_cancel = (k % 2) == 1;
            w[k] = aio_work_submit(s->ctx, wk_rec_fn, r, wk_rec_done, r);
            if (!w[k]) {
                atomic_fetch_add(&s->submit_failed, 1);
                return; /* the home thread's bound reports the missing ones */
            }
        }
        for (int k = 1; k < n; k += 2) {
            wk_rec *r = &s->recs[sub->first + i + k];
            r->cancel_ret = aio_work_cancel(w[k]);
            atomic_store(&r->cancel_tried, 1);
        }
        for (int k = 0; k < n; k++) {
            if (!tsup_wait_flag(&s->recs[sub->first + i + k].done_runs, TC_BOUND_MS)) {
                return; /* lost: the home thread's bound reports it */
            }
        }
    }
}

Test(work, stress_bursts_park_and_wake_many_submitters, .timeout = 120)
{
    wk_stress_run(8, 3, wk_burst_submitter_main);
}

/* ---- From a review of the pool (stop 23) ------------------------------------ */

/* A job that waits (bounded) for *gate and records whether it opened. */
typedef struct wk_gated {
    atomic_int *gate; /* NULL: returns at once */
    int wait_ms;
    atomic_int started;
    atomic_int gate_seen;
    atomic_int done_runs;
    int value;
} wk_gated;

static int wk_gated_fn(void *arg)
{
    wk_gated *g = arg;
    atomic_store(&g->started, 1);
    if (g->gate) {
        atomic_store(&g->gate_seen, tsup_wait_flag(g->gate, g->wait_ms) ? 1 : 0);
    }
    return g->value;
}

static void wk_gated_done(void *opaque, int ret)
{
    wk_gated *g = opaque;
    cr_assert_eq(ret, g->value);
    atomic_fetch_add(&g->done_runs, 1);
}

static void wk_gated_init(wk_gated *g, atomic_int *gate, int wait_ms, int value)
{
    memset(g, 0, sizeof(*g));
    g->gate = gate;
    g->wait_ms = wait_ms;
    g->value = value;
}

static void wk_gated_submit(AioContext *ctx, wk_gated *g)
{
    cr_assert_not_null(aio_work_submit(ctx, wk_gated_fn, g, wk_gated_done, g));
}

static void wk_gated_poll_until(AioContext *ctx, wk_gated **gs, int n, int ms)
{
    int64_t t0 = tsup_now_ns();
    for (;;) {
        int done = 0;
        for (int i = 0; i < n; i++) {
            done += atomic_load(&gs[i]->done_runs);
        }
        if (done >= n || tsup_ms_since(t0) > ms) {
            break;
        }
        aio_poll(ctx, false);
        tsup_sleep_ms(1);
    }
}

/* A push that a spinning worker was counted for, made while the ready list
 * is not empty: the worker's next take served itself from the ready list
 * and never read the stack, so S waited for a busy worker with a slot free
 * (max 3, 2 running: A1 and A2 each wait for S to start, 1.5 s). The hook
 * holds worker X where it still counts as spinning, so every submission
 * and Z's cut skip their wake-ups. */
typedef struct wk_strand {
    AioContext *ctx;
    atomic_int armed, reached;
    atomic_int *rel0;
    wk_gated *a1, *a2, *s;
} wk_strand;

static void wk_strand_hook(AioContext *ctx, AioHookPoint point, void *opaque)
{
    (void)ctx;
    wk_strand *st = opaque;
    if (point != AIO_HOOK_WORKER_IDLE || !atomic_exchange(&st->armed, 0)) {
        return;
    }
    /* X: no work, nspinning 1 (Z is blocked in J0). */
    wk_gated_submit(st->ctx, st->a1);
    wk_gated_submit(st->ctx, st->a2);
    /* Z comes back, takes [A1, A2], cuts A1 (2 / 3 workers: 1 each) and
     * leaves ready = [A2]; its kick sees X spinning. */
    atomic_store(st->rel0, 1);
    if (!tsup_wait_flag(&st->a1->started, TC_BOUND_MS)) {
        return;
    }
    wk_gated_submit(st->ctx, st->s); /* on the stack, behind ready = [A2] */
    atomic_store(&st->reached, 1);
    /* X goes on: finds work, takes A2 from ready, and (before the fix)
     * never looks at the stack. */
}

Test(work, push_behind_a_ready_list_is_taken_or_passed_on, .timeout = 30)
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 3), 0);
    atomic_int rel0 = 0;
    static wk_gated j0, j1, a1, a2, s;
    wk_gated_init(&j0, &rel0, TC_BOUND_MS, 0);
    wk_gated_init(&j1, NULL, 0, 1);
    wk_gated_init(&a1, &s.started, 1500, 2);
    wk_gated_init(&a2, &s.started, 1500, 3);
    wk_gated_init(&s, NULL, 0, 4);
    wk_strand st = {.ctx = ctx, .rel0 = &rel0, .a1 = &a1, .a2 = &a2, .s = &s};
    atomic_init(&st.armed, 1);
    atomic_init(&st.reached, 0);
    aio__set_test_hook(ctx, wk_strand_hook, &st);
    wk_gated_submit(ctx, &j0); /* worker Z, blocked in J0 */
    cr_assert(tsup_wait_flag(&j0.started, TC_BOUND_MS));
    wk_gated_submit(ctx, &j1); /* worker X: J1, then idle, the hook */
    wk_gated *all[] = {&j0, &j1, &a1, &a2, &s};
    wk_gated_poll_until(ctx, all, 5, 3 * TC_BOUND_MS);
    cr_assert(atomic_load(&st.reached), "the interleaving was not reached");
    cr_assert(atomic_load(&a1.gate_seen) && atomic_load(&a2.gate_seen),
              "S sat on the stack while 2 of 3 workers ran (A1 saw it start: %d, A2: %d)",
              atomic_load(&a1.gate_seen), atomic_load(&a2.gate_seen));
    aio_context_unref(ctx);
}

/* A higher maximum starts a worker for work queued behind busy ones: B was
 * queued with the only worker busy in A, which waits for B to start. */
Test(work, raised_max_serves_queued_work, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 1), 0);
    static wk_gated a, b;
    wk_gated_init(&b, NULL, 0, 2);
    wk_gated_init(&a, &b.started, 1500, 1);
    wk_gated_submit(ctx, &a);
    cr_assert(tsup_wait_flag(&a.started, TC_BOUND_MS));
    wk_gated_submit(ctx, &b);
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 2), 0);
    wk_gated *all[] = {&a, &b};
    wk_gated_poll_until(ctx, all, 2, TC_BOUND_MS);
    cr_assert(atomic_load(&a.gate_seen), "max raised to 2, yet B waited for A (workers %d)",
              aio__test_pool_workers(ctx));
    aio_context_unref(ctx);
}

/* A lower maximum: busy workers above it leave when their batch is done
 * instead of taking new work. Three busy, the maximum lowered to 1, Q1
 * queued: two of them come back and must leave (before the fix the first
 * one back ran Q1 beside the third, still busy); Q1 runs only on the last
 * worker, once its own job is done. */
Test(work, lowered_max_stops_busy_surplus_workers_taking_work, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 3), 0);
    static atomic_int rel[3];
    static wk_gated blk[3], q1;
    for (int i = 0; i < 3; i++) {
        atomic_store(&rel[i], 0);
        wk_gated_init(&blk[i], &rel[i], TC_BOUND_MS, 0);
        wk_gated_submit(ctx, &blk[i]);
        cr_assert(tsup_wait_flag(&blk[i].started, TC_BOUND_MS));
    }
    cr_assert_eq(aio__test_pool_workers(ctx), 3);
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 1), 0);
    wk_gated_init(&q1, NULL, 0, 1);
    wk_gated_submit(ctx, &q1);
    atomic_store(&rel[0], 1);
    atomic_store(&rel[1], 1);
    int64_t t0 = tsup_now_ns();
    while (aio__test_pool_workers(ctx) > 1 && tsup_ms_since(t0) < TC_BOUND_MS) {
        tsup_sleep_ms(1);
    }
    cr_assert_eq(aio__test_pool_workers(ctx), 1, "surplus workers did not leave");
    bool early = tsup_wait_flag(&q1.started, 200);
    atomic_store(&rel[2], 1);
    wk_gated *all[] = {&blk[0], &blk[1], &blk[2], &q1};
    wk_gated_poll_until(ctx, all, 4, TC_BOUND_MS);
    cr_assert(!early, "max 1, yet Q1 started while a surplus worker still ran its job");
    cr_assert_eq(atomic_load(&q1.done_runs), 1, "Q1 never ran on the remaining worker");
    aio_context_unref(ctx);
}

Test(work, set_thread_pool_params_without_memory_is_enomem, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    aio__fault_arm(AIO_FAULT_ALLOC, 1, ENOMEM);
    int ret = aio_context_set_thread_pool_params(ctx, 0, 2);
    aio__fault_disarm();
    cr_assert_eq(ret, -ENOMEM, "the pool's allocation failed, the call returned %d", ret);
    cr_assert_eq(aio_context_set_thread_pool_params(ctx, 0, 2), 0, "not usable afterwards");
    aio_context_unref(ctx);
}

#if !defined(_WIN32) && !defined(WK_TSAN)
/* The last unref from fn of the context's own pool would wait for itself:
 * the library says so and aborts (in a child, so that the test sees it). */
static int wk_unref_from_fn(void *arg)
{
    aio_context_unref(arg);
    return 0;
}

static void wk_never(void *opaque, int ret)
{
    (void)opaque;
    (void)ret;
}

Test(work, last_unref_from_fn_of_its_own_pool_aborts_with_a_message, .timeout = 20)
{
    int err[2];
    cr_assert_eq(pipe(err), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(err[1], 2);
        AioContext *ctx = aio_context_new();
        if (ctx && aio_work_submit(ctx, wk_unref_from_fn, ctx, wk_never, NULL)) {
            sleep(5); /* the abort comes first */
        }
        _exit(0);
    }
    close(err[1]);
    char buf[512] = {0};
    size_t got = 0;
    ssize_t n;
    while (got < sizeof(buf) - 1 && (n = read(err[0], buf + got, sizeof(buf) - 1 - got)) > 0) {
        got += (size_t)n;
    }
    close(err[0]);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
              "the child did not abort (status %d)", status);
    cr_assert(strstr(buf, "from fn of that context's own worker pool") != NULL,
              "no message on stderr: '%s'", buf);
}
#endif
