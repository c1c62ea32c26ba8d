/* SPDX-License-Identifier: MIT */
/*
 * Context life cycle, the backend under test, and home-thread ownership:
 * only the home thread may block (others get -EPERM at once, touching
 * nothing), aio_context_set_home_thread moves ownership and is refused with
 * -EBUSY while the home thread is inside a blocking poll.
 */
#include "test-common.h"

#include <stdlib.h>
#include <string.h>

Test(context, backend_is_the_one_requested, .timeout = 10)
{
    const char *want = getenv("AIOPOLL_BACKEND");
    AioContext *ctx = aio_context_new();

    cr_assert_not_null(ctx, "aio_context_new failed for AIOPOLL_BACKEND=%s", want ? want : "");
    cr_assert_not_null(aio_context_backend(ctx));
    cr_assert_gt(strlen(aio_context_backend(ctx)), 0, "empty backend name");
    if (want && *want) {
        cr_assert(strcmp(aio_context_backend(ctx), want) == 0,
                  "testing backend \"%s\" but AIOPOLL_BACKEND=\"%s\"", aio_context_backend(ctx),
                  want);
    }
    aio_context_unref(ctx);
}

Test(context, ref_and_unref, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int ran;

    atomic_init(&ran, 0);
    aio_context_ref(ctx);
    aio_context_unref(ctx);
    /* Still alive: one reference left. */
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &ran), 0);
    cr_assert_eq(aio_poll(ctx, false), 1);
    cr_assert_eq(atomic_load(&ran), 1);
    aio_context_unref(ctx);
}

Test(context, two_contexts_are_independent, .timeout = 10)
{
    AioContext *a = tc_ctx_new();
    AioContext *b = tc_ctx_new();
    atomic_int ran;

    atomic_init(&ran, 0);
    cr_assert_eq(aio_bh_schedule_oneshot(a, tc_count_cb, &ran), 0);
    cr_assert_eq(aio_poll(b, false), 0, "b ran a's bottom half");
    cr_assert_eq(aio_poll(a, false), 1);
    cr_assert_eq(atomic_load(&ran), 1);
    aio_context_unref(b);
    aio_context_unref(a);
}

/* ---- A helper thread that runs one operation and records the result ----- */

typedef struct foreign {
    AioContext *ctx;
    int ret;
    int64_t elapsed_ms;
    bool in_home;
    int set_home_ret;
} foreign;

static void foreign_blocking_poll(void *p)
{
    foreign *f = p;
    int64_t t0 = tsup_now_ns();

    f->in_home = aio_context_in_home_thread(f->ctx);
    f->ret = aio_poll(f->ctx, true);
    f->elapsed_ms = tsup_ms_since(t0);
}

static void foreign_nonblocking_poll(void *p)
{
    foreign *f = p;
    f->ret = aio_poll(f->ctx, false);
}

static foreign run_foreign(AioContext *ctx, tc_action *fn)
{
    foreign f = {.ctx = ctx, .ret = 12345};
    tc_thread *t = tc_thread_start(fn, &f);

    cr_assert(tc_thread_join(t, TC_BOUND_MS),
              "a non-home thread is still inside aio_poll after %d ms", TC_BOUND_MS);
    return f;
}

Test(context, in_home_thread, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    foreign f;

    cr_assert(aio_context_in_home_thread(ctx));
    f = run_foreign(ctx, foreign_blocking_poll);
    cr_assert(!f.in_home, "a helper thread claims to be home");
    aio_context_unref(ctx);
}

Test(context, foreign_blocking_poll_is_eperm_at_once, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int ran;
    foreign f;

    atomic_init(&ran, 0);
    /* Something to do: the refused call must not do it. */
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &ran), 0);
    f = run_foreign(ctx, foreign_blocking_poll);
    cr_assert_eq(f.ret, -EPERM, "aio_poll(ctx, true) on a non-home thread returned %d (%s)",
                 f.ret, aio_strerror(f.ret));
    cr_assert_lt(f.elapsed_ms, 500, "the refused call took %lld ms", (long long)f.elapsed_ms);
    cr_assert_eq(atomic_load(&ran), 0, "the refused blocking poll ran a bottom half");
    cr_assert_eq(aio_poll(ctx, false), 1);
    cr_assert_eq(atomic_load(&ran), 1);
    aio_context_unref(ctx);
}

Test(context, foreign_blocking_poll_leaves_wakeup_pending, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    foreign f;
    tc_poll_result res;

    aio_notify(ctx);
    f = run_foreign(ctx, foreign_blocking_poll);
    cr_assert_eq(f.ret, -EPERM);
    res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert(!res.rescued,
              "home thread slept %d ms: the refused foreign poll consumed the wake-up",
              TC_BOUND_MS);
    cr_assert_lt(res.elapsed_ms, TC_PROMPT_MS, "home thread's poll took %lld ms",
                 (long long)res.elapsed_ms);
    cr_assert_geq(res.ret, 0);
    aio_context_unref(ctx);
}

static void cb_record_home(void *opaque)
{
    foreign *f = opaque;
    f->in_home = aio_context_in_home_thread(f->ctx);
    f->set_home_ret = 1; /* ran */
}

Test(context, foreign_nonblocking_poll_dispatches, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    foreign seen = {.ctx = ctx, .in_home = true};
    foreign f;

    cr_assert_eq(aio_bh_schedule_oneshot(ctx, cb_record_home, &seen), 0);
    f = run_foreign(ctx, foreign_nonblocking_poll);
    cr_assert_eq(f.ret, 1, "idle context: non-home aio_poll(ctx, false) returned %d", f.ret);
    cr_assert_eq(seen.set_home_ret, 1, "BH did not run");
    cr_assert(!seen.in_home, "BH ran on the home thread instead of the polling thread");
    f = run_foreign(ctx, foreign_nonblocking_poll);
    cr_assert_eq(f.ret, 0);
    aio_context_unref(ctx);
}

/* ---- Moving the home thread --------------------------------------------- */

typedef struct new_home {
    AioContext *ctx;
    atomic_int stop;
    atomic_int started;
    atomic_int finished;
    atomic_int ran;
    int set_ret;
    bool in_home;
    int poll_err;
    int64_t bound_ns;
} new_home;

/* Becomes home, then polls blocking until stop (bounded by its own clock:
 * if it is stuck the test sees `finished` never set). */
static void new_home_main(void *p)
{
    new_home *h = p;

    h->set_ret = aio_context_set_home_thread(h->ctx);
    h->in_home = aio_context_in_home_thread(h->ctx);
    atomic_store(&h->started, 1);
    if (h->set_ret == 0) {
        while (!atomic_load(&h->stop)) {
            int r = aio_poll(h->ctx, true);
            if (r < 0) {
                h->poll_err = r;
                break;
            }
        }
    }
    atomic_store(&h->finished, 1);
}

static void new_home_stop(new_home *h)
{
    atomic_store(&h->stop, 1);
    aio_notify(h->ctx);
    cr_assert(tsup_wait_flag(&h->finished, TC_BOUND_MS),
              "new home thread still asleep after %d ms: lost wake-up", TC_BOUND_MS);
}

static void new_home_init(new_home *h, AioContext *ctx)
{
    memset(h, 0, sizeof(*h));
    h->ctx = ctx;
    atomic_init(&h->stop, 0);
    atomic_init(&h->started, 0);
    atomic_init(&h->finished, 0);
    atomic_init(&h->ran, 0);
}

Test(context, set_home_thread_moves_ownership, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    new_home h;
    tc_thread *t;
    int r;
    int64_t t0;

    new_home_init(&h, ctx);
    t = tc_thread_start(new_home_main, &h);
    cr_assert(tsup_wait_flag(&h.started, TC_BOUND_MS));
    cr_assert_eq(h.set_ret, 0, "aio_context_set_home_thread: %s", aio_strerror(h.set_ret));
    cr_assert(h.in_home, "new home thread is not in_home after set_home_thread");
    cr_assert(!aio_context_in_home_thread(ctx), "old home still claims to be home");

    /* The old home may no longer block. */
    t0 = tsup_now_ns();
    r = aio_poll(ctx, true);
    cr_assert_eq(r, -EPERM, "old home's blocking poll returned %d", r);
    cr_assert_lt(tsup_ms_since(t0), 500);

    /* The new home is woken by work from the old one. */
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &h.ran), 0);
    cr_assert(tsup_wait_flag(&h.ran, TC_BOUND_MS),
              "new home thread still asleep after %d ms: lost wake-up", TC_BOUND_MS);
    new_home_stop(&h);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    cr_assert_eq(h.poll_err, 0, "new home's poll failed: %s", aio_strerror(h.poll_err));

    /* Take it back. */
    cr_assert_eq(aio_context_set_home_thread(ctx), 0);
    cr_assert(aio_context_in_home_thread(ctx));
    aio_notify(ctx);
    cr_assert(!tc_poll_blocking_bounded(ctx, TC_BOUND_MS).rescued);
    aio_context_unref(ctx);
}

Test(context, set_home_thread_is_ebusy_during_blocking_poll, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    tc_gate gate;
    new_home h;
    tc_thread *t;

    new_home_init(&h, ctx);
    tc_gate_install(ctx, &gate, AIO_HOOK_BEFORE_SLEEP, true);
    t = tc_thread_start(new_home_main, &h);
    cr_assert(tc_gate_wait_reached(&gate, TC_BOUND_MS),
              "new home never reached AIO_HOOK_BEFORE_SLEEP");
    cr_assert_eq(h.set_ret, 0);

    /* Inside the blocking poll, about to sleep. */
    cr_assert_eq(aio_context_set_home_thread(ctx), -EBUSY);
    cr_assert(!aio_context_in_home_thread(ctx));
    tc_gate_release(&gate);

    /* Really asleep. */
    tsup_sleep_ms(50);
    cr_assert_eq(aio_context_set_home_thread(ctx), -EBUSY);
    cr_assert(!aio_context_in_home_thread(ctx));
    cr_assert_eq(aio_poll(ctx, true), -EPERM);

    new_home_stop(&h);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    cr_assert_eq(aio_context_set_home_thread(ctx), 0, "set_home_thread after the poll ended");
    cr_assert(aio_context_in_home_thread(ctx));
    tc_gate_remove(ctx, &gate);
    aio_context_unref(ctx);
}

Test(context, set_home_thread_on_home_is_noop, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();

    cr_assert_eq(aio_context_set_home_thread(ctx), 0);
    cr_assert(aio_context_in_home_thread(ctx));
    aio_notify(ctx);
    cr_assert(!tc_poll_blocking_bounded(ctx, TC_BOUND_MS).rescued);
    aio_context_unref(ctx);
}

/* ---- The last reference dropped from inside a callback ------------------ */

/* Each test gives the context a single reference and drops it from inside a
 * callback, then lets more callbacks of the same round (and nested polls)
 * use the context. The poll must keep it alive until it returns and free it
 * then: AddressSanitizer reports any use after the free, LeakSanitizer a
 * context that was never freed. After the poll the test touches nothing of
 * the context any more. */
typedef struct last_ref {
    AioContext *ctx;
    atomic_int dropped;
    atomic_int later;  /* callbacks that ran after the drop */
    int nested_ret;
    aio_fd_t fds[2];
    AioEventNotifier *n;
    AioTimer *timer;
} last_ref;

static void last_ref_init(last_ref *l)
{
    memset(l, 0, sizeof(*l));
    l->ctx = tc_ctx_new();
    atomic_init(&l->dropped, 0);
    atomic_init(&l->later, 0);
}

static void cb_drop_last_ref(void *opaque)
{
    last_ref *l = opaque;
    aio_context_unref(l->ctx);
    atomic_store(&l->dropped, 1);
}

/* Runs after the drop and uses the context: schedules work on it and
 * re-arms a timer, which the deferred teardown must then free. */
static void cb_after_drop(void *opaque)
{
    last_ref *l = opaque;
    if (atomic_load(&l->dropped)) {
        atomic_fetch_add(&l->later, 1);
    }
    aio_bh_schedule_oneshot(l->ctx, tc_count_cb, &l->later);
    if (l->timer) {
        aio_timer_mod(l->timer, aio_clock_ns() + 1000000000LL);
    }
}

Test(context, last_unref_in_bh, .timeout = 10)
{
    last_ref l;

    last_ref_init(&l);
    l.timer = aio_timer_new(l.ctx, tc_count_cb, &l.later);
    cr_assert_eq(aio_bh_schedule_oneshot(l.ctx, cb_drop_last_ref, &l), 0);
    cr_assert_eq(aio_bh_schedule_oneshot(l.ctx, cb_after_drop, &l), 0);
    cr_assert_eq(aio_poll(l.ctx, false), 1);
    cr_assert_eq(atomic_load(&l.later), 1, "the BH after the drop did not run");
}

Test(context, last_unref_in_timer, .timeout = 10)
{
    last_ref l;
    AioTimer *first;
    AioTimer *second;
    int64_t when;

    last_ref_init(&l);
    first = aio_timer_new(l.ctx, cb_drop_last_ref, &l);
    second = aio_timer_new(l.ctx, cb_after_drop, &l);
    l.timer = second;
    when = aio_clock_ns() - 1; /* due; same deadline: armed order */
    aio_timer_mod(first, when);
    aio_timer_mod(second, when);
    cr_assert_eq(aio_poll(l.ctx, false), 1);
    cr_assert_eq(atomic_load(&l.later), 1, "the timer after the drop did not run");
}

Test(context, last_unref_in_fd_handler, .timeout = 10)
{
    last_ref l;
    AioTimer *t;

    last_ref_init(&l);
    cr_assert_eq(tsup_socketpair(l.fds), 0);
    cr_assert_eq(tsup_write_byte(l.fds[1]), 1);
    cr_assert_eq(aio_set_fd_handler(l.ctx, l.fds[0], false, cb_drop_last_ref, NULL, NULL, &l), 0);
    /* Timers run after handlers, in the same round. */
    t = aio_timer_new(l.ctx, cb_after_drop, &l);
    aio_timer_mod(t, aio_clock_ns() - 1);
    cr_assert_eq(aio_poll(l.ctx, false), 1);
    cr_assert_eq(atomic_load(&l.later), 1, "the timer after the drop did not run");
    tsup_close(l.fds[0]);
    tsup_close(l.fds[1]);
}

Test(context, last_unref_in_notifier_handler, .timeout = 10)
{
    last_ref l;
    AioTimer *t;

    last_ref_init(&l);
    l.n = aio_event_notifier_new(true);
    cr_assert_not_null(l.n);
    cr_assert_eq(aio_set_event_notifier(l.ctx, l.n, false, cb_drop_last_ref, NULL, &l), 0);
    t = aio_timer_new(l.ctx, cb_after_drop, &l);
    aio_timer_mod(t, aio_clock_ns() - 1);
    cr_assert_eq(aio_poll(l.ctx, false), 1);
    cr_assert_eq(atomic_load(&l.later), 1, "the timer after the drop did not run");
    /* The teardown removed the registration; the notifier is ours. */
    aio_event_notifier_free(l.n);
}

static void cb_drop_then_nest(void *opaque)
{
    last_ref *l = opaque;
    cb_drop_last_ref(l);
    aio_bh_schedule_oneshot(l->ctx, cb_after_drop, l);
    l->nested_ret = aio_poll(l->ctx, false);
}

Test(context, last_unref_then_nested_poll, .timeout = 10)
{
    last_ref l;

    last_ref_init(&l);
    cr_assert_eq(aio_bh_schedule_oneshot(l.ctx, cb_drop_then_nest, &l), 0);
    /* Blocking: it does not sleep while a BH is scheduled. */
    cr_assert_eq(aio_poll(l.ctx, true), 1);
    cr_assert_eq(l.nested_ret, 1, "the nested poll after the drop returned %d", l.nested_ret);
    cr_assert_eq(atomic_load(&l.later), 1, "the nested poll did not run its BH");
}

Test(context, last_unref_in_callback_of_foreign_poll, .timeout = 10)
{
    last_ref l;
    foreign f;

    last_ref_init(&l);
    cr_assert_eq(aio_bh_schedule_oneshot(l.ctx, cb_drop_last_ref, &l), 0);
    cr_assert_eq(aio_bh_schedule_oneshot(l.ctx, cb_after_drop, &l), 0);
    f = run_foreign(l.ctx, foreign_nonblocking_poll);
    cr_assert_eq(f.ret, 1);
    cr_assert_eq(atomic_load(&l.later), 1, "the BH after the drop did not run");
}

static void cb_drop_and_take_again(void *opaque)
{
    last_ref *l = opaque;
    cb_drop_last_ref(l);
    aio_context_ref(l->ctx);
}

/* A callback that takes a new reference after dropping the last one keeps
 * the context: it is destroyed by the next last unref instead. */
Test(context, last_unref_then_ref_in_callback_keeps_context, .timeout = 10)
{
    last_ref l;

    last_ref_init(&l);
    cr_assert_eq(aio_bh_schedule_oneshot(l.ctx, cb_drop_and_take_again, &l), 0);
    cr_assert_eq(aio_poll(l.ctx, false), 1);
    cr_assert_eq(aio_bh_schedule_oneshot(l.ctx, tc_count_cb, &l.later), 0);
    cr_assert_eq(aio_poll(l.ctx, false), 1);
    cr_assert_eq(atomic_load(&l.later), 1);
    aio_context_unref(l.ctx);
}

/* ---- Thread ids are never reused ---------------------------------------- */

typedef struct dead_home {
    AioContext *ctx;
    uint64_t os_id;
    bool in_home;
    int poll_ret;
} dead_home;

static void create_and_exit(void *p)
{
    dead_home *d = p;
    d->ctx = aio_context_new();
    d->os_id = tsup_os_thread_id();
}

static void probe_home(void *p)
{
    dead_home *d = p;
    d->os_id = tsup_os_thread_id();
    d->in_home = aio_context_in_home_thread(d->ctx);
    /* A thread wrongly taken for home would sleep here: the notification
     * makes that sleep end at once, so the probe reports it instead of
     * hanging. */
    aio_notify(d->ctx);
    d->poll_ret = aio_poll(d->ctx, true);
}

/* Windows gives a dead thread's id to a new thread at once; a context whose
 * home thread exited must not adopt whichever thread gets the id next. */
Test(context, new_thread_never_inherits_a_dead_home, .timeout = 60)
{
    dead_home d = {0};
    tc_thread *t = tc_thread_start(create_and_exit, &d);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    cr_assert_not_null(d.ctx, "aio_context_new on a helper thread failed");
    cr_assert(!aio_context_in_home_thread(d.ctx));

    /* Until the dead thread's OS id comes back (on Wine after a few hundred
     * threads). */
    int reused = 0, probes = 0;
    for (; probes < 5000 && reused == 0; probes++) {
        dead_home p = {.ctx = d.ctx, .poll_ret = 12345};
        t = tc_thread_start(probe_home, &p);
        cr_assert(tc_thread_join(t, TC_BOUND_MS), "probe thread %d stuck in aio_poll", probes);
        reused += p.os_id == d.os_id;
        cr_assert(!p.in_home, "thread %d (OS id %llu%s) claims to be the dead thread's home",
                  probes, (unsigned long long)p.os_id,
                  p.os_id == d.os_id ? ", the dead home's" : "");
        cr_assert_eq(p.poll_ret, -EPERM, "thread %d: blocking poll returned %d, not -EPERM",
                     probes, p.poll_ret);
    }
    if (TSUP_OS_THREAD_IDS_REUSED) {
        cr_assert_gt(reused, 0, "the OS id %llu never came back in %d threads: the test did "
                     "not exercise reuse", (unsigned long long)d.os_id, probes);
    }
    cr_assert_eq(aio_context_set_home_thread(d.ctx), 0);
    aio_context_unref(d.ctx);
}

/* The home thread moving its own home from inside its blocking poll (a
 * callback calling aio_context_set_home_thread) keeps that poll counted:
 * were the count dropped, the poll's leave would take it below zero, and
 * the context would look busy (or owned by another id) for ever after. */
static void set_home_from_callback(void *p)
{
    AioContext *ctx = p;
    cr_assert_eq(aio_context_set_home_thread(ctx), 0);
}

Test(context, set_home_thread_inside_its_own_blocking_poll_keeps_the_count, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    AioBH *bh = aio_bh_new(ctx, set_home_from_callback, ctx);
    for (int nested = 0; nested < 3; nested++) {
        aio_bh_schedule(bh);
        cr_assert(!tc_poll_blocking_bounded(ctx, TC_BOUND_MS).rescued);
    }
    new_home h;
    new_home_init(&h, ctx);
    tc_thread *t = tc_thread_start(new_home_main, &h);
    cr_assert(tsup_wait_flag(&h.started, TC_BOUND_MS));
    cr_assert_eq(h.set_ret, 0, "the blocking polls are over, yet: %s", aio_strerror(h.set_ret));
    cr_assert(h.in_home);
    cr_assert(!aio_context_in_home_thread(ctx));
    cr_assert_eq(aio_poll(ctx, true), -EPERM);
    new_home_stop(&h);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    cr_assert_eq(h.poll_err, 0, "new home's poll failed: %s", aio_strerror(h.poll_err));
    aio_bh_delete(bh);
    aio_context_unref(ctx);
}

/* Two threads take the home from each other as fast as they can while
 * each polls blocking whenever it is home, and a third keeps notifying so
 * that every sleep ends. Ownership must never move under a poll: the sleep
 * hooks count the polls between "about to sleep" and "woke", and two at
 * once is the double blocker that steals wake-ups. The hook lingers a
 * little before the sleep to widen the window a move would slip into. */
typedef struct {
    AioContext *ctx;
    atomic_int inside;
    atomic_int overlaps;
    atomic_int stop;
    atomic_int stop_notifier;
    atomic_int blocked[2];
    atomic_int moved[2];
    atomic_int next;
    atomic_int errors;
} home_race;

static void home_race_hook(AioContext *ctx, AioHookPoint point, void *opaque)
{
    home_race *r = opaque;
    (void)ctx;
    if (point == AIO_HOOK_BEFORE_SLEEP) {
        if (atomic_fetch_add(&r->inside, 1) != 0) {
            atomic_fetch_add(&r->overlaps, 1);
        }
        tsup_spin_us(2);
    } else if (point == AIO_HOOK_AFTER_SLEEP) {
        atomic_fetch_sub(&r->inside, 1);
    }
}

static void home_racer(void *p)
{
    home_race *r = p;
    int me = atomic_fetch_add(&r->next, 1);
    while (!atomic_load(&r->stop)) {
        int s = aio_context_set_home_thread(r->ctx);
        if (s == 0) {
            atomic_fetch_add(&r->moved[me], 1);
        } else if (s != -EBUSY) {
            atomic_fetch_add(&r->errors, 1);
        }
        bool was_home = false;
        for (int i = 0; i < 4; i++) {
            int ret = aio_poll(r->ctx, true);
            if (ret >= 0) {
                atomic_fetch_add(&r->blocked[me], 1);
                was_home = true;
            } else if (ret != -EPERM) {
                atomic_fetch_add(&r->errors, 1);
            }
        }
        if (was_home) {
            /* Between two of the owner's polls the depth is 0 for a few
             * instructions only, and when both racers share a CPU the
             * other one runs only while the owner sleeps, i.e. inside a
             * poll: its moves would all find the depth non-zero and starve
             * for the whole run. A sleep outside the poll gives it the
             * CPU while the home is free to take. */
            tsup_sleep_us(20);
        }
    }
}

static void home_race_notifier(void *p)
{
    home_race *r = p;
    while (!atomic_load(&r->stop_notifier)) {
        aio_notify(r->ctx);
        tsup_sleep_us(20);
    }
}

Test(context, stress_home_moves_never_land_under_a_blocking_poll, .timeout = 60)
{
    home_race r;
    memset(&r, 0, sizeof(r));
    r.ctx = tc_ctx_new();
    aio__set_test_hook(r.ctx, home_race_hook, &r);
    tc_thread *n = tc_thread_start(home_race_notifier, &r);
    tc_thread *a = tc_thread_start(home_racer, &r);
    tc_thread *b = tc_thread_start(home_racer, &r);
    /* At least the run's length, and on until both racers have owned the
     * context and blocked in it (otherwise the run proved nothing), within
     * a bound: a racer that cannot take an idle home for that long fails. */
    int64_t run_ns = tc_env_long("AIOPOLL_HOME_RACE_MS", 1500) * 1000000;
    int64_t start = tsup_now_ns();
    while (tsup_now_ns() - start < run_ns ||
           !(atomic_load(&r.moved[0]) && atomic_load(&r.moved[1]) &&
             atomic_load(&r.blocked[0]) && atomic_load(&r.blocked[1]))) {
        if (tsup_now_ns() - start > run_ns + (int64_t)TC_BOUND_MS * 1000000) {
            break;
        }
        tsup_sleep_ms(10);
    }
    atomic_store(&r.stop, 1);
    /* The notifier goes on until both racers are out: a racer's sleep that
     * its notifications do not end within the bound is a lost wake-up. */
    bool a_out = tc_thread_join(a, TC_BOUND_MS);
    bool b_out = tc_thread_join(b, TC_BOUND_MS);
    atomic_store(&r.stop_notifier, 1);
    cr_assert(tc_thread_join(n, TC_BOUND_MS));
    cr_assert(a_out && b_out, "a racer is still asleep: lost wake-up");
    aio__set_test_hook(r.ctx, NULL, NULL);
    cr_assert_eq(atomic_load(&r.errors), 0);
    cr_assert_eq(atomic_load(&r.overlaps), 0,
                 "%d sleeps began while another thread's blocking poll was asleep",
                 atomic_load(&r.overlaps));
    /* Otherwise the run proved nothing: both must have owned and blocked. */
    for (int i = 0; i < 2; i++) {
        cr_assert_gt(atomic_load(&r.moved[i]), 0, "racer %d never became home", i);
        cr_assert_gt(atomic_load(&r.blocked[i]), 0, "racer %d never polled as home", i);
    }
    aio_context_unref(r.ctx);
}
