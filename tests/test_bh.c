/* SPDX-License-Identifier: MIT */
/*
 * Bottom halves: order, coalescing, cancel, delete (also from inside the
 * callback and while scheduled), oneshots, scheduling from inside a BH, and
 * waking a blocked poll from another thread. aio_poll's 1/0 return value.
 * Cancel and re-schedule (also from another thread, at forced points of the
 * home thread's dispatch) runs once; deleting from another thread just
 * before or during the BH's run.
 */
#include "test-common.h"

#include <string.h>

Test(bh, poll_returns_zero_when_idle_and_one_after_work, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int ran;
    AioBH *bh = aio_bh_new(ctx, tc_count_cb, &ran);

    atomic_init(&ran, 0);
    cr_assert_not_null(bh);
    cr_assert_eq(aio_poll(ctx, false), 0);
    aio_bh_schedule(bh);
    cr_assert_eq(aio_poll(ctx, false), 1);
    cr_assert_eq(atomic_load(&ran), 1);
    cr_assert_eq(aio_poll(ctx, false), 0);
    cr_assert_eq(atomic_load(&ran), 1);
    aio_bh_delete(bh);
    aio_context_unref(ctx);
}

Test(bh, run_in_scheduling_order, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    tc_log log = {0};
    tc_log_item it[4];
    AioBH *bh[4];
    static const int order[] = {2, 0, 3, 1};

    for (int i = 0; i < 4; i++) {
        it[i] = (tc_log_item){&log, i};
        bh[i] = aio_bh_new(ctx, tc_log_cb, &it[i]);
        cr_assert_not_null(bh[i]);
    }
    for (int i = 0; i < 4; i++) {
        aio_bh_schedule(bh[order[i]]);
    }
    cr_assert_eq(aio_poll(ctx, false), 1);
    tc_log_expect(&log, order, 4);

    /* And again in another order, mixed with oneshots. */
    atomic_store(&log.n, 0);
    tc_log_item one = {&log, 9};
    aio_bh_schedule(bh[3]);
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_log_cb, &one), 0);
    aio_bh_schedule(bh[0]);
    cr_assert_eq(aio_poll(ctx, false), 1);
    static const int order2[] = {3, 9, 0};
    tc_log_expect(&log, order2, 3);
    for (int i = 0; i < 4; i++) {
        aio_bh_delete(bh[i]);
    }
    aio_context_unref(ctx);
}

Test(bh, scheduling_twice_runs_once, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int ran;
    AioBH *bh = aio_bh_new(ctx, tc_count_cb, &ran);

    atomic_init(&ran, 0);
    aio_bh_schedule(bh);
    aio_bh_schedule(bh);
    aio_bh_schedule(bh);
    cr_assert_eq(aio_poll(ctx, false), 1);
    cr_assert_eq(aio_poll(ctx, false), 0);
    cr_assert_eq(atomic_load(&ran), 1);
    /* Once it ran it can be scheduled again. */
    aio_bh_schedule(bh);
    cr_assert_eq(tc_poll_idle(ctx, 10), 1);
    cr_assert_eq(atomic_load(&ran), 2);
    aio_bh_delete(bh);
    aio_context_unref(ctx);
}

Test(bh, cancel, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int ran;
    AioBH *bh = aio_bh_new(ctx, tc_count_cb, &ran);

    atomic_init(&ran, 0);
    aio_bh_schedule(bh);
    aio_bh_cancel(bh);
    cr_assert_eq(aio_poll(ctx, false), 0);
    cr_assert_eq(atomic_load(&ran), 0);
    aio_bh_cancel(bh); /* cancelling an idle BH is harmless */
    aio_bh_schedule(bh);
    cr_assert_eq(aio_poll(ctx, false), 1);
    cr_assert_eq(atomic_load(&ran), 1);
    aio_bh_delete(bh);
    aio_context_unref(ctx);
}

/* A cancelled BH does not keep a blocking poll awake either. */
Test(bh, cancelled_bh_lets_blocking_poll_sleep, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int ran;
    AioBH *bh = aio_bh_new(ctx, tc_count_cb, &ran);
    tc_poll_result res;

    atomic_init(&ran, 0);
    aio_bh_schedule(bh);
    aio_bh_cancel(bh);
    /* The schedule may have left a wake-up; allow one spurious return. */
    res = tc_poll_blocking_bounded(ctx, 200);
    if (!res.rescued) {
        res = tc_poll_blocking_bounded(ctx, 200);
    }
    cr_assert(res.rescued, "blocking poll does not sleep after cancel");
    cr_assert_eq(atomic_load(&ran), 0);
    aio_bh_delete(bh);
    aio_context_unref(ctx);
}

Test(bh, delete_scheduled_never_runs, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int ran;
    AioBH *bh = aio_bh_new(ctx, tc_count_cb, &ran);

    atomic_init(&ran, 0);
    aio_bh_schedule(bh);
    aio_bh_delete(bh);
    cr_assert_eq(aio_poll(ctx, false), 0);
    tc_poll_idle(ctx, 10);
    cr_assert_eq(atomic_load(&ran), 0);
    aio_context_unref(ctx);
}

Test(bh, delete_unscheduled, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int ran;
    AioBH *bh = aio_bh_new(ctx, tc_count_cb, &ran);

    atomic_init(&ran, 0);
    aio_bh_delete(bh);
    cr_assert_eq(aio_poll(ctx, false), 0);
    aio_context_unref(ctx);
}

typedef struct self_bh {
    AioBH *bh;
    AioContext *ctx;
    atomic_int ran;
    int limit;
    AioBH *other;
} self_bh;

static void cb_delete_self(void *opaque)
{
    self_bh *s = opaque;
    atomic_fetch_add(&s->ran, 1);
    aio_bh_schedule(s->bh); /* scheduled again, then deleted: never runs */
    aio_bh_delete(s->bh);
}

Test(bh, delete_from_own_callback, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    self_bh s = {.ctx = ctx};

    atomic_init(&s.ran, 0);
    s.bh = aio_bh_new(ctx, cb_delete_self, &s);
    aio_bh_schedule(s.bh);
    cr_assert_eq(aio_poll(ctx, false), 1);
    tc_poll_idle(ctx, 10);
    cr_assert_eq(atomic_load(&s.ran), 1);
    aio_context_unref(ctx);
}

static void cb_delete_other(void *opaque)
{
    self_bh *s = opaque;
    atomic_fetch_add(&s->ran, 1);
    aio_bh_delete(s->other);
}

/* A BH deletes another one that is scheduled behind it in the same round. */
Test(bh, delete_other_scheduled_from_callback, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    self_bh s = {.ctx = ctx};
    atomic_int other_ran;

    atomic_init(&s.ran, 0);
    atomic_init(&other_ran, 0);
    s.bh = aio_bh_new(ctx, cb_delete_other, &s);
    s.other = aio_bh_new(ctx, tc_count_cb, &other_ran);
    aio_bh_schedule(s.bh);
    aio_bh_schedule(s.other);
    cr_assert_eq(aio_poll(ctx, false), 1);
    tc_poll_idle(ctx, 10);
    cr_assert_eq(atomic_load(&s.ran), 1);
    cr_assert_eq(atomic_load(&other_ran), 0, "a BH deleted while scheduled still ran");
    aio_bh_delete(s.bh);
    aio_context_unref(ctx);
}

static void cb_schedule_other(void *opaque)
{
    self_bh *s = opaque;
    atomic_fetch_add(&s->ran, 1);
    aio_bh_schedule(s->other);
}

Test(bh, schedule_other_from_callback, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    self_bh s = {.ctx = ctx};
    atomic_int other_ran;

    atomic_init(&s.ran, 0);
    atomic_init(&other_ran, 0);
    s.bh = aio_bh_new(ctx, cb_schedule_other, &s);
    s.other = aio_bh_new(ctx, tc_count_cb, &other_ran);
    aio_bh_schedule(s.bh);
    cr_assert_eq(aio_poll(ctx, false), 1);
    /* It runs in the next aio_poll call (aio.h), and that blocking poll must
     * not sleep while it is pending. */
    cr_assert(tc_poll_until(ctx, &other_ran, 1, TC_BOUND_MS),
              "BH scheduled from inside a BH did not run (blocking poll slept)");
    cr_assert_eq(atomic_load(&s.ran), 1);
    cr_assert_eq(atomic_load(&other_ran), 1);
    aio_bh_delete(s.bh);
    aio_bh_delete(s.other);
    aio_context_unref(ctx);
}

static void cb_reschedule_self(void *opaque)
{
    self_bh *s = opaque;
    if (atomic_fetch_add(&s->ran, 1) + 1 < s->limit) {
        aio_bh_schedule(s->bh);
    }
}

/* A BH that reschedules itself runs again, every aio_poll call returns (it
 * does not spin inside one call), and a blocking poll never sleeps while it
 * is scheduled. */
Test(bh, reschedule_self_from_callback, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    self_bh s = {.ctx = ctx, .limit = 50};
    int calls = 0;

    atomic_init(&s.ran, 0);
    s.bh = aio_bh_new(ctx, cb_reschedule_self, &s);
    aio_bh_schedule(s.bh);
    while (atomic_load(&s.ran) < s.limit) {
        tc_poll_result res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
        cr_assert(!res.rescued, "blocking poll slept with a BH scheduled (run %d)",
                  atomic_load(&s.ran));
        cr_assert_eq(res.ret, 1);
        cr_assert_lt(++calls, 1000);
    }
    cr_assert_eq(tc_poll_idle(ctx, 10), 0);
    cr_assert_eq(atomic_load(&s.ran), s.limit);
    aio_bh_delete(s.bh);
    aio_context_unref(ctx);
}

static void cb_reschedule_forever(void *opaque)
{
    self_bh *s = opaque;
    atomic_fetch_add(&s->ran, 1);
    aio_bh_schedule(s->bh);
}

Test(bh, endless_self_reschedule_does_not_trap_aio_poll, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    self_bh s = {.ctx = ctx};

    atomic_init(&s.ran, 0);
    s.bh = aio_bh_new(ctx, cb_reschedule_forever, &s);
    aio_bh_schedule(s.bh);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(aio_poll(ctx, false), 1);
    }
    cr_assert_geq(atomic_load(&s.ran), 5);
    aio_bh_delete(s.bh); /* deleting a scheduled BH stops it */
    tc_poll_idle(ctx, 10);
    int after = atomic_load(&s.ran);
    cr_assert_eq(aio_poll(ctx, false), 0);
    cr_assert_eq(atomic_load(&s.ran), after);
    aio_context_unref(ctx);
}

Test(bh, oneshot_runs_once, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int ran;

    atomic_init(&ran, 0);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &ran), 0);
    }
    cr_assert_eq(aio_poll(ctx, false), 1);
    tc_poll_idle(ctx, 10);
    cr_assert_eq(atomic_load(&ran), 100);
    cr_assert_eq(aio_poll(ctx, false), 0);
    aio_context_unref(ctx);
}

/* ---- Waking a blocked poll from another thread --------------------------- */

typedef struct bh_remote {
    AioContext *ctx;
    AioBH *bh;
    atomic_int ran;
} bh_remote;

static void remote_oneshot(void *p)
{
    bh_remote *r = p;
    aio_bh_schedule_oneshot(r->ctx, tc_count_cb, &r->ran);
}

static void remote_schedule(void *p)
{
    bh_remote *r = p;
    aio_bh_schedule(r->bh);
}

static void remote_wake_case(tc_action *fn, int asleep_ms, const char *what)
{
    bh_remote r;

    r.ctx = tc_ctx_new();
    atomic_init(&r.ran, 0);
    r.bh = aio_bh_new(r.ctx, tc_count_cb, &r.ran);
    tc_expect_wake(r.ctx, &r.ran, 1, asleep_ms, fn, &r, what);
    cr_assert_eq(atomic_load(&r.ran), 1);
    aio_bh_delete(r.bh);
    aio_context_unref(r.ctx);
}

Test(bh, oneshot_from_other_thread_wakes_before_sleep, .timeout = 20)
{
    remote_wake_case(remote_oneshot, 0, "oneshot before sleep");
}

Test(bh, oneshot_from_other_thread_wakes_asleep, .timeout = 20)
{
    remote_wake_case(remote_oneshot, 50, "oneshot while asleep");
}

Test(bh, schedule_from_other_thread_wakes_before_sleep, .timeout = 20)
{
    remote_wake_case(remote_schedule, 0, "aio_bh_schedule before sleep");
}

Test(bh, schedule_from_other_thread_wakes_asleep, .timeout = 20)
{
    remote_wake_case(remote_schedule, 50, "aio_bh_schedule while asleep");
}

/* A BH scheduled before the blocking poll: it must not sleep at all. */
Test(bh, blocking_poll_never_sleeps_with_bh_scheduled, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int ran;
    tc_poll_result res;

    atomic_init(&ran, 0);
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &ran), 0);
    res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert(!res.rescued);
    cr_assert_eq(res.ret, 1);
    cr_assert_eq(atomic_load(&ran), 1);
    aio_context_unref(ctx);
}

/* A BH scheduled from another thread while the home thread is awake (inside
 * a callback, notify_me 0) makes no kick and stores no notification: the
 * pending stack is what the next poll reads before it sleeps (bh.c,
 * wake_sleeper; docs/wakeup-protocol.md, "Waking for a bottom half"). That
 * poll must then not sleep. Without its look at the stack it would, until
 * the watchdog: the interleaving the skipped notification relies on, forced
 * with the callback holding the home thread awake. */
typedef struct awake_case {
    AioBH *x;
    atomic_int go, done, ran_x, ran_a;
} awake_case;

static void awake_scheduler(void *p)
{
    awake_case *c = p;
    if (tsup_wait_flag(&c->go, TC_BOUND_MS)) {
        aio_bh_schedule(c->x);
    }
    atomic_store(&c->done, 1);
}

static void awake_cb(void *p)
{
    awake_case *c = p;
    atomic_fetch_add(&c->ran_a, 1);
    atomic_store(&c->go, 1);
    (void)tsup_wait_flag(&c->done, TC_BOUND_MS);
}

Test(bh, schedule_onto_an_awake_loop_costs_no_kick_and_is_not_slept_over, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    awake_case c;
    atomic_init(&c.go, 0);
    atomic_init(&c.done, 0);
    atomic_init(&c.ran_x, 0);
    atomic_init(&c.ran_a, 0);
    c.x = aio_bh_new(ctx, tc_count_cb, &c.ran_x);
    AioBH *a = aio_bh_new(ctx, awake_cb, &c);
    tc_thread *t = tc_thread_start(awake_scheduler, &c);

    aio_bh_schedule(a);
    cr_assert_eq(aio_poll(ctx, true), 1);
    cr_assert_eq(atomic_load(&c.done), 1, "the other thread never scheduled");
    AioContextStats s0 = tc_stats(ctx);
    cr_assert_eq(s0.notify_syscalls, 0, "a schedule onto an awake loop kicked it");

    tc_poll_result res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert(!res.rescued, "the poll slept with a BH queued: lost wake-up");
    cr_assert_eq(res.ret, 1);
    cr_assert_eq(atomic_load(&c.ran_x), 1);
    AioContextStats s1 = tc_stats(ctx);
    cr_assert_eq(s1.sleeps, s0.sleeps, "the poll slept although a BH was queued");
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    aio_bh_delete(a);
    aio_bh_delete(c.x);
    aio_context_unref(ctx);
}

/* ---- Deleting from another thread -------------------------------------- */

static void remote_delete(void *p)
{
    bh_remote *r = p;
    aio_bh_delete(r->bh);
}

Test(bh, delete_from_other_thread, .timeout = 10)
{
    bh_remote r;
    tc_thread *t;

    r.ctx = tc_ctx_new();
    atomic_init(&r.ran, 0);
    r.bh = aio_bh_new(r.ctx, tc_count_cb, &r.ran);
    aio_bh_schedule(r.bh);
    t = tc_thread_start(remote_delete, &r);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    tc_poll_idle(r.ctx, 10);
    cr_assert_eq(atomic_load(&r.ran), 0);
    aio_context_unref(r.ctx);
}

/* ---- Cancel, then schedule again: exactly one run ------------------------ */

Test(bh, cancel_then_reschedule_runs_once, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int ran;
    AioBH *bh = aio_bh_new(ctx, tc_count_cb, &ran);

    atomic_init(&ran, 0);
    for (int round = 1; round <= 3; round++) {
        aio_bh_schedule(bh);
        aio_bh_cancel(bh);
        aio_bh_schedule(bh);
        cr_assert_eq(tc_poll_idle(ctx, 10), 1);
        cr_assert_eq(atomic_load(&ran), round, "round %d: ran %d times", round,
                     atomic_load(&ran));
    }
    /* And through blocking polls: the re-schedule must still wake. */
    aio_bh_schedule(bh);
    aio_bh_cancel(bh);
    aio_bh_schedule(bh);
    cr_assert(tc_poll_until(ctx, &ran, 4, TC_BOUND_MS), "re-scheduled BH did not run");
    cr_assert_eq(tc_poll_idle(ctx, 10), 0);
    cr_assert_eq(atomic_load(&ran), 4);
    aio_bh_delete(bh);
    aio_context_unref(ctx);
}

/* ---- Races with a dispatching home thread, forced ----------------------- */

/* The home thread runs a non-blocking poll. Either a gate holds it at
 * AIO_HOOK_NONBLOCKING_DISPATCH (before it takes the BHs), or a "holder" BH
 * scheduled before the target holds it in its callback (the target is taken
 * and next in line), or the target's own callback holds it (its run has
 * begun). Meanwhile another thread runs action(race) and then lets go. */
typedef enum race_at { RACE_AT_GATE, RACE_BEFORE_RUN, RACE_DURING_RUN } race_at;

typedef struct bh_race {
    AioContext *ctx;
    AioBH *holder;
    AioBH *target;
    AioBH *after;          /* scheduled behind the target */
    tc_gate gate;
    race_at at;
    tc_action *action;
    atomic_int started;    /* the home thread is held */
    atomic_int acted;      /* the action returned */
    atomic_int target_ran;
    atomic_int after_ran;
    atomic_int missed;     /* the home thread was never held */
    bool held_ok;          /* a callback hold ended because the action returned */
} bh_race;

static void race_hold(bh_race *r)
{
    atomic_store(&r->started, 1);
    r->held_ok = tsup_wait_flag(&r->acted, TC_BOUND_MS);
}

static void race_holder_cb(void *p)
{
    race_hold(p);
}

static void race_target_cb(void *p)
{
    bh_race *r = p;
    atomic_fetch_add(&r->target_ran, 1);
    if (r->at == RACE_DURING_RUN && atomic_load(&r->target_ran) == 1) {
        race_hold(r);
    }
}

static void race_remote(void *p)
{
    bh_race *r = p;
    bool held = r->at == RACE_AT_GATE ? tc_gate_wait_reached(&r->gate, TC_BOUND_MS)
                                      : tsup_wait_flag(&r->started, TC_BOUND_MS);
    if (!held) {
        atomic_store(&r->missed, 1);
    }
    r->action(r);
    atomic_store(&r->acted, 1);
    if (r->at == RACE_AT_GATE) {
        tc_gate_release(&r->gate);
    }
}

/* Runs the race; returns with the target's runs in r->target_ran and the
 * context idle, having checked that the BH scheduled behind the target ran
 * once. The caller deletes r->target (unless the action did) and
 * unrefs r->ctx. */
static void race_run(bh_race *r, race_at at, tc_action *action)
{
    tc_thread *t;

    memset(r, 0, sizeof(*r));
    r->ctx = tc_ctx_new();
    r->at = at;
    r->action = action;
    atomic_init(&r->started, 0);
    atomic_init(&r->acted, 0);
    atomic_init(&r->target_ran, 0);
    atomic_init(&r->after_ran, 0);
    atomic_init(&r->missed, 0);
    r->held_ok = true;
    r->target = aio_bh_new(r->ctx, race_target_cb, r);
    if (at == RACE_BEFORE_RUN) {
        r->holder = aio_bh_new(r->ctx, race_holder_cb, r);
        aio_bh_schedule(r->holder);
    }
    aio_bh_schedule(r->target);
    r->after = aio_bh_new(r->ctx, tc_count_cb, &r->after_ran);
    aio_bh_schedule(r->after);
    if (at == RACE_AT_GATE) {
        tc_gate_install(r->ctx, &r->gate, AIO_HOOK_NONBLOCKING_DISPATCH, true);
    }
    t = tc_thread_start(race_remote, r);
    cr_assert_geq(aio_poll(r->ctx, false), 0);
    cr_assert(tc_thread_join(t, TC_BOUND_MS), "the remote thread did not finish");
    if (at == RACE_AT_GATE) {
        cr_assert(!atomic_load(&r->gate.timed_out), "the gate held the poll until timeout");
        tc_gate_remove(r->ctx, &r->gate);
    }
    cr_assert(!atomic_load(&r->missed), "the home thread was never held");
    cr_assert(r->held_ok, "the remote action did not return while the home thread was held");
    tc_poll_idle(r->ctx, 10);
    /* Whatever happened to the target, the queue behind it is intact. */
    cr_assert_eq(atomic_load(&r->after_ran), 1, "the BH behind the target ran %d times",
                 atomic_load(&r->after_ran));
    aio_bh_delete(r->holder);
    aio_bh_delete(r->after);
}

static void race_cancel_reschedule(void *p)
{
    bh_race *r = p;
    aio_bh_cancel(r->target);
    aio_bh_schedule(r->target);
}

static void race_cancel_reschedule_case(race_at at)
{
    bh_race r;

    race_run(&r, at, race_cancel_reschedule);
    cr_assert_eq(atomic_load(&r.target_ran), 1, "cancelled and re-scheduled BH ran %d times",
                 atomic_load(&r.target_ran));
    aio_bh_delete(r.target);
    aio_context_unref(r.ctx);
}

Test(bh, cancel_reschedule_from_other_thread_before_dispatch_runs_once, .timeout = 20)
{
    race_cancel_reschedule_case(RACE_AT_GATE);
}

Test(bh, cancel_reschedule_from_other_thread_when_taken_runs_once, .timeout = 20)
{
    race_cancel_reschedule_case(RACE_BEFORE_RUN);
}

static void race_delete(void *p)
{
    bh_race *r = p;
    aio_bh_delete(r->target);
}

/* Taken by the dispatch and next in line: deleted from another thread, it
 * does not run (and is freed: LeakSanitizer). */
Test(bh, delete_from_other_thread_before_its_run, .timeout = 20)
{
    bh_race r;

    race_run(&r, RACE_BEFORE_RUN, race_delete);
    cr_assert_eq(atomic_load(&r.target_ran), 0, "a BH deleted before its run ran");
    aio_context_unref(r.ctx);
}

/* Deleted from another thread while its callback runs: aio_bh_delete returns
 * without waiting for the run, the run finishes safely (ASan), and it never
 * runs again. */
Test(bh, delete_from_other_thread_during_its_run, .timeout = 20)
{
    bh_race r;

    race_run(&r, RACE_DURING_RUN, race_delete);
    cr_assert_eq(atomic_load(&r.target_ran), 1);
    cr_assert_eq(aio_poll(r.ctx, false), 0);
    cr_assert_eq(atomic_load(&r.target_ran), 1);
    aio_context_unref(r.ctx);
}

/* ---- Scheduling a BH that is already scheduled (the fast path) ---------- */

/* aio_bh_schedule() of a BH it finds QUEUED and SCHEDULED returns without
 * writing anything (src/bh.c). Here the dispatch has taken the stack and is
 * held just before its claim of the BH while another thread writes a
 * payload and schedules again: the run that follows must see the payload
 * (the skip's fence against the claim), a cancel before the schedule must
 * not be skipped (QUEUED alone is no scheduled BH), and once the claim has
 * cleared the bits a schedule from the callback must queue the BH again. */
typedef struct claim_race {
    AioContext *ctx;
    AioBH *bh;
    tc_gate gate;
    bool cancel_first;
    int payload;   /* plain: the remote thread's write, read by the callback */
    int seen[3];   /* payload at each run */
    atomic_int ran;
    atomic_int missed;
} claim_race;

static void claim_race_cb(void *opaque)
{
    claim_race *c = opaque;
    int n = atomic_load(&c->ran);
    if (n < 3) {
        c->seen[n] = c->payload;
    }
    atomic_store(&c->ran, n + 1);
    if (n == 0) {
        /* After the claim: both bits are clear, so this must queue again. */
        c->payload = 7;
        aio_bh_schedule(c->bh);
    }
}

static void claim_race_remote(void *p)
{
    claim_race *c = p;
    if (!tc_gate_wait_reached(&c->gate, TC_BOUND_MS)) {
        atomic_store(&c->missed, 1);
    }
    if (c->cancel_first) {
        aio_bh_cancel(c->bh);
    }
    c->payload = 42;
    aio_bh_schedule(c->bh);
    tc_gate_release(&c->gate);
}

static void claim_race_case(bool cancel_first)
{
    claim_race c;
    memset(&c, 0, sizeof(c));
    c.ctx = tc_ctx_new();
    c.cancel_first = cancel_first;
    atomic_init(&c.ran, 0);
    atomic_init(&c.missed, 0);
    c.bh = aio_bh_new(c.ctx, claim_race_cb, &c);
    cr_assert_not_null(c.bh);
    aio_bh_schedule(c.bh);
    tc_gate_install(c.ctx, &c.gate, AIO_HOOK_BH_BEFORE_CLAIM, true);
    tc_thread *t = tc_thread_start(claim_race_remote, &c);
    cr_assert_eq(aio_poll(c.ctx, false), 1);
    cr_assert(tc_thread_join(t, TC_BOUND_MS), "the remote thread did not finish");
    cr_assert(!atomic_load(&c.missed), "the dispatch never reached its claim");
    cr_assert(!atomic_load(&c.gate.timed_out), "the gate held the dispatch until timeout");
    tc_gate_remove(c.ctx, &c.gate);
    cr_assert_eq(atomic_load(&c.ran), 1, "the schedule before the claim ran %d times, not once",
                 atomic_load(&c.ran));
    cr_assert_eq(c.seen[0], 42, "the run after a skipped schedule missed its write (saw %d)",
                 c.seen[0]);
    /* The callback's own schedule, after the claim, is a new run. */
    cr_assert_eq(tc_poll_idle(c.ctx, 10), 1);
    cr_assert_eq(atomic_load(&c.ran), 2, "the schedule after the claim ran %d times, not once",
                 atomic_load(&c.ran) - 1);
    cr_assert_eq(c.seen[1], 7);
    aio_bh_delete(c.bh);
    aio_context_unref(c.ctx);
}

Test(bh, schedule_of_a_scheduled_bh_before_its_claim_runs_once_with_the_write, .timeout = 20)
{
    claim_race_case(false);
}

Test(bh, cancel_then_schedule_before_the_claim_is_not_skipped, .timeout = 20)
{
    claim_race_case(true);
}
