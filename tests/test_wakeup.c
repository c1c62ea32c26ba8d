/* SPDX-License-Identifier: MIT */
/*
 * The lost wake-up of QEMU commit b37548fcd1 (2018), reproduced
 * deterministically with the test hook, and its variants.
 *
 * The home thread is blocked (or about to block) in aio_poll(ctx, true);
 * another thread calls aio_notify() and then aio_poll(ctx, false). In QEMU
 * the non-blocking poll cleared ("accepted") the notification that the
 * blocked thread needed, and the IOThread slept forever. Here only a blocking
 * poll accepts a wake-up, so the home thread must return every time.
 *
 * In every test the home thread is the test thread and a watchdog rescues a
 * poll that lost its wake-up after TC_BOUND_MS, so a regression fails with a
 * clear message instead of hanging.
 */
#include "test-common.h"

/* ---- A tiny script language for the "other" thread ---------------------- */

enum step {
    S_END,
    S_WAIT_GATE,   /* wait until the home thread is held at the gate */
    S_RELEASE,     /* let it go on into its sleep */
    S_SLEEP,       /* 50 ms: the home thread is really asleep now */
    S_NOTIFY,      /* aio_notify(ctx) */
    S_NB_POLL,     /* aio_poll(ctx, false): must be 0 (nothing to do) */
    S_BLOCK_EPERM, /* aio_poll(ctx, true): must be -EPERM */
};

typedef struct script {
    AioContext *ctx;
    tc_gate *gate;
    const enum step *steps;
    atomic_int errors;
    atomic_int gate_missed;
    int bad_ret; /* the last unexpected aio_poll return value */
} script;

static void script_run(void *p)
{
    script *s = p;

    for (const enum step *st = s->steps; *st != S_END; st++) {
        int r;
        switch (*st) {
        case S_WAIT_GATE:
            if (!tc_gate_wait_reached(s->gate, TC_BOUND_MS)) {
                atomic_store(&s->gate_missed, 1);
            }
            break;
        case S_RELEASE:
            tc_gate_release(s->gate);
            break;
        case S_SLEEP:
            tsup_sleep_ms(50);
            break;
        case S_NOTIFY:
            aio_notify(s->ctx);
            break;
        case S_NB_POLL:
            r = aio_poll(s->ctx, false);
            if (r != 0) {
                s->bad_ret = r;
                atomic_fetch_add(&s->errors, 1);
            }
            break;
        case S_BLOCK_EPERM:
            r = aio_poll(s->ctx, true);
            if (r != -EPERM) {
                s->bad_ret = r;
                atomic_fetch_add(&s->errors, 1);
            }
            break;
        case S_END:
            break;
        }
    }
    /* Never leave the home thread parked at the gate. */
    tc_gate_release(s->gate);
}

static void never_called(void *opaque)
{
    (void)opaque;
    cr_assert_fail("an idle source was dispatched");
}

/* Idle sources make every poll go into the backend's wait: a context with no
 * sources lets a non-blocking poll skip the system call, and then only the
 * core's rules are exercised, not the backend's (a backend whose
 * non-blocking wait consumed the wake-up object would go unnoticed). QEMU's
 * IOThread always had descriptors registered. */
typedef struct idle_sources {
    AioEventNotifier *n;
    aio_fd_t fds[2];
} idle_sources;

static void idle_sources_add(AioContext *ctx, idle_sources *is)
{
    is->n = aio_event_notifier_new(false);
    cr_assert_not_null(is->n);
    cr_assert_eq(aio_set_event_notifier(ctx, is->n, false, never_called, NULL, NULL), 0);
    cr_assert_eq(tsup_socketpair(is->fds), 0);
    cr_assert_eq(aio_set_fd_handler(ctx, is->fds[0], false, never_called, NULL, NULL, NULL), 0);
    /* Let the registrations' own notifications be consumed first. */
    tc_poll_idle(ctx, 10);
    tc_poll_blocking_bounded(ctx, 50);
}

static void idle_sources_remove(AioContext *ctx, idle_sources *is)
{
    cr_assert_eq(aio_set_event_notifier(ctx, is->n, false, NULL, NULL, NULL), 0);
    aio_event_notifier_free(is->n);
    cr_assert_eq(aio_set_fd_handler(ctx, is->fds[0], false, NULL, NULL, NULL, NULL), 0);
    tsup_close(is->fds[0]);
    tsup_close(is->fds[1]);
}

/*
 * Runs the home side: one blocking poll, while (concurrent) or before
 * (!concurrent) the other thread runs `steps`. The blocking poll must return
 * within TC_BOUND_MS without the watchdog's help. With sources, idle ones
 * are registered first (see idle_sources).
 */
static void run_case_once(const enum step *steps, bool concurrent, bool with_sources)
{
    const char *variant = with_sources ? "with idle sources" : "no sources";
    AioContext *ctx = tc_ctx_new();
    idle_sources is;
    if (with_sources) {
        idle_sources_add(ctx, &is);
    }
    tc_gate gate;
    script s = {.ctx = ctx, .gate = &gate, .steps = steps};
    tc_thread *t;
    tc_poll_result res;

    atomic_init(&s.errors, 0);
    atomic_init(&s.gate_missed, 0);
    /* Held only when the other thread runs concurrently with the poll. */
    tc_gate_install(ctx, &gate, AIO_HOOK_BEFORE_SLEEP, concurrent);

    t = tc_thread_start(script_run, &s);
    if (!concurrent) {
        cr_assert(tc_thread_join(t, TC_BOUND_MS), "other thread did not finish");
    }
    res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert(!res.rescued,
              "%s: home thread still asleep after %d ms: lost wake-up (aio_poll returned %d)",
              variant, TC_BOUND_MS, res.ret);
    cr_assert_geq(res.ret, 0, "aio_poll(ctx, true): %s", aio_strerror(res.ret));
    if (concurrent) {
        cr_assert(tc_thread_join(t, TC_BOUND_MS), "other thread did not finish");
        cr_assert(!atomic_load(&s.gate_missed),
                  "home thread never reached AIO_HOOK_BEFORE_SLEEP");
    }
    cr_assert(!atomic_load(&gate.timed_out), "gate held the home thread until timeout");
    cr_assert_eq(atomic_load(&s.errors), 0, "other thread: unexpected aio_poll result %d (%s)",
                 s.bad_ret, aio_strerror(s.bad_ret));
    tc_gate_remove(ctx, &gate);
    if (with_sources) {
        idle_sources_remove(ctx, &is);
    }
    aio_context_unref(ctx);
}

static void run_case(const enum step *steps, bool concurrent)
{
    run_case_once(steps, concurrent, false);
    run_case_once(steps, concurrent, true);
}

/* The exact 2018 interleaving: home has announced itself and is about to
 * sleep; notify + non-blocking poll happen in that window. */
Test(wakeup, b37548fcd1_notify_and_nonblocking_poll_before_sleep, .timeout = 30)
{
    static const enum step steps[] = {S_WAIT_GATE, S_NOTIFY, S_NB_POLL, S_RELEASE, S_END};
    run_case(steps, true);
}

/* The same, with the home thread really asleep in the backend. */
Test(wakeup, notify_and_nonblocking_poll_while_asleep, .timeout = 30)
{
    static const enum step steps[] = {S_WAIT_GATE, S_RELEASE, S_SLEEP,
                                      S_NOTIFY,    S_NB_POLL, S_END};
    run_case(steps, true);
}

/* Notify in the window before the sleep, non-blocking poll while asleep. */
Test(wakeup, notify_before_sleep_nonblocking_poll_while_asleep, .timeout = 30)
{
    static const enum step steps[] = {S_WAIT_GATE, S_NOTIFY,  S_RELEASE,
                                      S_SLEEP,     S_NB_POLL, S_END};
    run_case(steps, true);
}

/* Several non-blocking polls around the notify, before the sleep. */
Test(wakeup, nonblocking_polls_around_notify, .timeout = 30)
{
    static const enum step steps[] = {S_WAIT_GATE, S_NB_POLL, S_NOTIFY, S_NB_POLL,
                                      S_NB_POLL,   S_RELEASE, S_SLEEP,  S_NB_POLL, S_END};
    run_case(steps, true);
}

/* A blocking poll from the other thread is refused and must not consume the
 * wake-up either. */
Test(wakeup, notify_then_foreign_blocking_poll_before_sleep, .timeout = 30)
{
    static const enum step steps[] = {S_WAIT_GATE, S_NOTIFY, S_BLOCK_EPERM, S_NB_POLL,
                                      S_RELEASE,   S_END};
    run_case(steps, true);
}

/* Notify + non-blocking poll on another thread before the home thread even
 * starts its blocking poll: the notification is pending and must make the
 * blocking poll return without sleeping. */
Test(wakeup, notify_and_nonblocking_poll_before_blocking_call, .timeout = 30)
{
    static const enum step steps[] = {S_NOTIFY, S_NB_POLL, S_BLOCK_EPERM, S_NB_POLL, S_END};
    run_case(steps, false);
}

/* The home thread's own non-blocking poll after a notify does not consume it
 * either: the next blocking poll must not sleep. */
Test(wakeup, own_nonblocking_poll_keeps_wakeup, .timeout = 30)
{
    AioContext *ctx = tc_ctx_new();
    tc_poll_result res;

    aio_notify(ctx);
    cr_assert_eq(aio_poll(ctx, false), 0);
    cr_assert_eq(aio_poll(ctx, false), 0);
    res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert(!res.rescued, "blocking poll slept for %d ms although aio_notify() was pending",
              TC_BOUND_MS);
    cr_assert_lt(res.elapsed_ms, TC_PROMPT_MS, "blocking poll took %lld ms",
                 (long long)res.elapsed_ms);
    aio_context_unref(ctx);
}

/* A notification made while nothing polls is not lost either. */
Test(wakeup, notify_while_idle_then_block, .timeout = 30)
{
    AioContext *ctx = tc_ctx_new();
    tc_poll_result res;

    aio_notify(ctx);
    aio_notify(ctx);
    res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert(!res.rescued, "blocking poll slept although aio_notify() was pending");
    cr_assert_lt(res.elapsed_ms, TC_PROMPT_MS);
    aio_context_unref(ctx);
}

/* A wake-up is accepted by the blocking poll that consumed it: notifications
 * do not accumulate into spurious returns forever. After one notify and one
 * blocking poll, the next blocking poll sleeps until the watchdog. */
Test(wakeup, wakeup_is_consumed_by_blocking_poll, .timeout = 30)
{
    AioContext *ctx = tc_ctx_new();
    tc_poll_result res;

    aio_notify(ctx);
    aio_notify(ctx);
    res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert(!res.rescued);
    /* A second blocking poll may return 0 once more (a wake-up that found
     * no work), but not indefinitely; the third must sleep. */
    res = tc_poll_blocking_bounded(ctx, 200);
    if (!res.rescued) {
        res = tc_poll_blocking_bounded(ctx, 200);
    }
    cr_assert(res.rescued, "blocking polls keep returning without any notification");
    aio_context_unref(ctx);
}

/* A blocking poll that finds a notification pending will not wait, so it
 * does not announce itself (N1): a notification made meanwhile costs no
 * system call, since nothing sleeps. It accepts only what it read before it
 * decided (its wait, if any, consumed no kick), so the later notification
 * stays pending: the next blocking poll returns without sleeping, and the
 * one after sleeps (rescued by the bound). The hook notifies from the home
 * thread itself, at AIO_HOOK_BEFORE_SLEEP, which a poll reaches whether or
 * not it sleeps. */
static void notify_at_before_sleep(AioContext *ctx, AioHookPoint point, void *opaque)
{
    atomic_int *left = opaque;
    if (point == AIO_HOOK_BEFORE_SLEEP && atomic_fetch_sub(left, 1) > 0) {
        aio_notify(ctx);
    }
}

Test(wakeup, poll_that_will_not_wait_does_not_announce, .timeout = 30)
{
    AioContext *ctx = tc_ctx_new();
    AioContextStats a = tc_stats(ctx);
    aio_notify(ctx);
    atomic_int left = 1;
    aio__set_test_hook(ctx, notify_at_before_sleep, &left);
    cr_assert_geq(aio_poll(ctx, true), 0);
    aio__set_test_hook(ctx, NULL, NULL);
    cr_assert_leq(atomic_load(&left), 0, "the poll never reached AIO_HOOK_BEFORE_SLEEP");
    AioContextStats b = tc_stats(ctx);
    cr_assert_eq(b.notify_syscalls - a.notify_syscalls, 0,
                 "a notification during a poll that had news kicked: it announced itself");
    cr_assert_eq(b.sleeps - a.sleeps, 0);
    tc_poll_result res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert(!res.rescued, "the notification made during the first poll was lost");
    AioContextStats c = tc_stats(ctx);
    cr_assert_eq(c.sleeps - b.sleeps, 0, "the second poll slept although a notification was pending");
    res = tc_poll_blocking_bounded(ctx, 200);
    cr_assert(res.rescued, "blocking polls keep returning without any notification");
    aio_context_unref(ctx);
}

/* ---- The same race with real timing, many rounds ------------------------- */

typedef struct race {
    AioContext *ctx;
    int rounds;
    atomic_int round; /* the home thread is about to poll for this round */
    atomic_int done;  /* ... and returned from it */
    atomic_int lost;  /* round whose wake-up was lost (rescued) */
    atomic_int errors;
    uint32_t seed;
} race;

static void race_delay(uint32_t r)
{
    switch (r % 4) {
    case 0:
        break;
    case 1:
        tsup_yield();
        break;
    case 2:
        tsup_sleep_us(20 + (int)(r % 100));
        break;
    default:
        tsup_sleep_us(300);
        break;
    }
}

static void race_other(void *p)
{
    race *rc = p;

    for (int i = 1; i <= rc->rounds; i++) {
        uint32_t r = tc_rand(&rc->seed);
        if (!tsup_wait_at_least(&rc->round, i, 10000)) {
            atomic_fetch_add(&rc->errors, 1);
            return;
        }
        race_delay(r);
        if (r & 0x10) {
            if (aio_poll(rc->ctx, false) < 0) {
                atomic_fetch_add(&rc->errors, 1);
            }
        }
        aio_notify(rc->ctx);
        race_delay(r >> 8);
        if (aio_poll(rc->ctx, false) < 0) {
            atomic_fetch_add(&rc->errors, 1);
        }
        if (!tsup_wait_at_least(&rc->done, i, TC_BOUND_MS)) {
            /* Lost: report it, then rescue the home thread so the test
             * can fail cleanly. */
            atomic_store(&rc->lost, i);
            while (atomic_load(&rc->done) < i) {
                aio_notify(rc->ctx);
                tsup_sleep_ms(10);
            }
            return;
        }
    }
}

Test(wakeup, race_with_real_timing, .timeout = 120)
{
    race rc = {.rounds = (int)tc_env_long("AIOPOLL_RACE_ROUNDS", 400), .seed = 0x9e3779b9u};
    tc_thread *t;

    rc.ctx = tc_ctx_new();
    atomic_init(&rc.round, 0);
    atomic_init(&rc.done, 0);
    atomic_init(&rc.lost, 0);
    atomic_init(&rc.errors, 0);
    t = tc_thread_start(race_other, &rc);
    for (int i = 1; i <= rc.rounds; i++) {
        int r;
        atomic_store(&rc.round, i);
        r = aio_poll(rc.ctx, true);
        atomic_store(&rc.done, i);
        cr_assert_geq(r, 0, "round %d: aio_poll: %s", i, aio_strerror(r));
        cr_assert_eq(atomic_load(&rc.lost), 0,
                     "round %d: home thread still asleep after %d ms: lost wake-up",
                     atomic_load(&rc.lost), TC_BOUND_MS);
    }
    cr_assert(tc_thread_join(t, TC_BOUND_MS), "other thread did not finish");
    cr_assert_eq(atomic_load(&rc.errors), 0, "other thread saw aio_poll errors");
    aio_context_unref(rc.ctx);
}

/* ---- Notifications only, in bursts, against a home loop ------------------ */

/* A notifier stores a round number and notifies one to three times, with
 * random gaps; the home thread loops aio_poll(ctx, true) and acknowledges
 * the number it reads after each return. A burst leaves news pending, so
 * the next blocking poll does not wait and does not announce, and accepts
 * only what it read first; the notifications after that read must still
 * bring a later poll back. A lost one leaves the home thread asleep with
 * the round unacknowledged: the notifier's bounded wait names the round,
 * then rescues it. AIOPOLL_NOTIFY_BURST_ROUNDS (default 20000). */
typedef struct burst {
    AioContext *ctx;
    int rounds;
    atomic_int value;
    atomic_int ack;
    atomic_int lost;
    uint32_t seed;
} burst;

static void burst_notifier(void *p)
{
    burst *b = p;
    for (int i = 1; i <= b->rounds; i++) {
        uint32_t r = tc_rand(&b->seed);
        atomic_store(&b->value, i);
        for (int k = 0; k <= (int)(r % 3); k++) {
            aio_notify(b->ctx);
            if (r & (0x10u << k)) {
                tsup_yield();
            }
        }
        if (!tsup_wait_at_least(&b->ack, i, TC_BOUND_MS)) {
            atomic_store(&b->lost, i);
            while (atomic_load(&b->ack) < i) {
                aio_notify(b->ctx);
                tsup_sleep_ms(10);
            }
        }
        if ((r >> 8) % 8 == 0) {
            tsup_sleep_us((int)((r >> 12) % 50));
        }
    }
}

Test(wakeup, stress_notification_bursts_against_a_home_loop, .timeout = 120)
{
    burst b = {.rounds = (int)tc_env_long("AIOPOLL_NOTIFY_BURST_ROUNDS", 20000),
               .seed = 0x2545f491u};
    b.ctx = tc_ctx_new();
    tc_thread *t = tc_thread_start(burst_notifier, &b);
    while (atomic_load(&b.ack) < b.rounds) {
        int r = aio_poll(b.ctx, true);
        cr_assert_geq(r, 0, "aio_poll: %s", aio_strerror(r));
        atomic_store(&b.ack, atomic_load(&b.value));
    }
    cr_assert(tc_thread_join(t, TC_BOUND_MS), "the notifier did not finish");
    cr_assert_eq(atomic_load(&b.lost), 0,
                 "round %d: home thread still asleep %d ms after its notifications: "
                 "lost wake-up", atomic_load(&b.lost), TC_BOUND_MS);
    aio_context_unref(b.ctx);
}

/* ---- Dispatch-right contention ------------------------------------------- */

typedef struct contention {
    AioContext *ctx;
    tc_gate *gate;
    atomic_int nb_ret;
    atomic_int nb_done;
} contention;

static void contention_nb_poll(void *p)
{
    contention *c = p;
    atomic_store(&c->nb_ret, aio_poll(c->ctx, false));
    atomic_store(&c->nb_done, 1);
}

static void contention_release_later(void *p)
{
    contention *c = p;
    tsup_sleep_ms(100);
    tc_gate_release(c->gate);
}

/* A non-blocking poll on another thread holds the dispatch right (parked at
 * AIO_HOOK_NONBLOCKING_DISPATCH) while a BH is scheduled and the home thread
 * polls blocking. The BH must run exactly once, on one of them, and the home
 * thread must not sleep forever waiting for the dispatch right. */
Test(wakeup, home_blocks_while_nonblocking_poll_holds_dispatch, .timeout = 30)
{
    AioContext *ctx = tc_ctx_new();
    tc_gate gate;
    contention c = {.ctx = ctx, .gate = &gate};
    atomic_int ran;
    AioBH *bh = aio_bh_new(ctx, tc_count_cb, &ran);
    tc_thread *nb, *rel;

    atomic_init(&ran, 0);
    atomic_init(&c.nb_ret, -1);
    atomic_init(&c.nb_done, 0);
    tc_gate_install(ctx, &gate, AIO_HOOK_NONBLOCKING_DISPATCH, true);
    nb = tc_thread_start(contention_nb_poll, &c);
    cr_assert(tc_gate_wait_reached(&gate, TC_BOUND_MS),
              "non-blocking poll never reached AIO_HOOK_NONBLOCKING_DISPATCH");
    aio_bh_schedule(bh);
    rel = tc_thread_start(contention_release_later, &c);
    cr_assert(tc_poll_until(ctx, &ran, 1, TC_BOUND_MS),
              "home thread still asleep after %d ms with a BH scheduled", TC_BOUND_MS);
    cr_assert(tc_thread_join(rel, TC_BOUND_MS));
    cr_assert(tc_thread_join(nb, TC_BOUND_MS), "non-blocking poll did not return");
    cr_assert_geq(atomic_load(&c.nb_ret), 0);
    tc_poll_idle(ctx, 10);
    cr_assert_eq(atomic_load(&ran), 1, "BH ran %d times", atomic_load(&ran));
    tc_gate_remove(ctx, &gate);
    aio_bh_delete(bh);
    aio_context_unref(ctx);
}

/* ---- The dispatch right's hand-off (src/dispatch.c) --------------------- */

/* A non-blocking poll on another thread holds the dispatch right (held at
 * AIO_HOOK_NONBLOCKING_DISPATCH) when the home thread's blocking poll wants
 * it. The home thread marks the right as awaited and sleeps; the holder's
 * let-go must hand it over, whichever moment it comes at:
 *  - HANDOFF_BEFORE_MARK: after the home thread saw the holder, before its
 *    mark (a mark stored blindly would revive the gone holder, and nobody
 *    would ever wake the home thread);
 *  - HANDOFF_BEFORE_SLEEP: after the mark, before the home thread sleeps
 *    (a wake without the hand-off flag would find nobody asleep: lost);
 *  - HANDOFF_ASLEEP: 20 ms after the mark (the home thread is, almost
 *    certainly, asleep on the condition variable; either way it must wake).
 * The home thread polls on a helper thread, so that one stuck for ever
 * fails the test at the join instead of hanging it. */
enum { HANDOFF_BEFORE_MARK, HANDOFF_BEFORE_SLEEP, HANDOFF_ASLEEP };

typedef struct handoff {
    AioContext *ctx;
    int when;
    atomic_int nb_holds;  /* the non-blocking poll holds the right */
    atomic_int let_go;    /* ... and may give it back */
    atomic_int nb_done;   /* its aio_poll returned */
    atomic_int saw_holder; /* the home thread reached BEFORE_MARK */
    atomic_int marked;     /* the home thread reached DISPATCH_WAIT */
    atomic_int home_ret;
} handoff;

/* Runs on the thread that reached the point. */
static void handoff_hook(AioContext *ctx, AioHookPoint point, void *opaque)
{
    (void)ctx;
    handoff *h = opaque;
    if (point == AIO_HOOK_NONBLOCKING_DISPATCH && !atomic_exchange(&h->nb_holds, 1)) {
        tsup_wait_flag(&h->let_go, TC_BOUND_MS);
    } else if (point == AIO_HOOK_DISPATCH_BEFORE_MARK && !atomic_exchange(&h->saw_holder, 1)) {
        if (h->when == HANDOFF_BEFORE_MARK) {
            atomic_store(&h->let_go, 1);
            tsup_wait_flag(&h->nb_done, TC_BOUND_MS);
        }
    } else if (point == AIO_HOOK_DISPATCH_WAIT && !atomic_exchange(&h->marked, 1)) {
        if (h->when == HANDOFF_BEFORE_SLEEP) {
            atomic_store(&h->let_go, 1);
            tsup_wait_flag(&h->nb_done, TC_BOUND_MS);
        }
    }
}

static void handoff_nb_poll(void *p)
{
    handoff *h = p;
    aio_poll(h->ctx, false);
    atomic_store(&h->nb_done, 1);
}

static void handoff_home_poll(void *p)
{
    handoff *h = p;
    int ret = aio_context_set_home_thread(h->ctx);
    atomic_store(&h->home_ret, ret == 0 ? aio_poll(h->ctx, true) : ret);
}

static void run_handoff(int when)
{
    handoff h = {.ctx = tc_ctx_new(), .when = when};
    atomic_init(&h.home_ret, -1000);
    aio__set_test_hook(h.ctx, handoff_hook, &h);
    tc_thread *nb = tc_thread_start(handoff_nb_poll, &h);
    cr_assert(tsup_wait_flag(&h.nb_holds, TC_BOUND_MS), "the non-blocking poll never held the right");
    tc_thread *home = tc_thread_start(handoff_home_poll, &h);
    if (when == HANDOFF_ASLEEP) {
        cr_assert(tsup_wait_flag(&h.marked, TC_BOUND_MS), "the home thread never waited");
        tsup_sleep_ms(20);
        atomic_store(&h.let_go, 1);
    }
    cr_assert(tc_thread_join(nb, TC_BOUND_MS), "the non-blocking poll did not return");
    /* The home thread's poll, once it has the right, has nothing to do:
     * this notification ends it (pending, or as a kick of its sleep). */
    aio_notify(h.ctx);
    cr_assert(tc_thread_join(home, TC_BOUND_MS),
              "the home thread still waits for the dispatch right %d ms after its holder "
              "let go: the hand-off was lost", TC_BOUND_MS);
    cr_assert_geq(atomic_load(&h.home_ret), 0, "home thread's poll: %s",
                  aio_strerror(atomic_load(&h.home_ret)));
    cr_assert(atomic_load(&h.saw_holder), "the home thread never found the right held");
    if (when == HANDOFF_BEFORE_MARK) {
        cr_assert(!atomic_load(&h.marked),
                  "the home thread marked a right whose holder had let go");
    } else {
        cr_assert(atomic_load(&h.marked), "the home thread never marked the right");
    }
    aio__set_test_hook(h.ctx, NULL, NULL);
    aio_context_unref(h.ctx);
}

Test(wakeup, dispatch_right_let_go_before_the_home_threads_mark, .timeout = 30)
{
    run_handoff(HANDOFF_BEFORE_MARK);
}

Test(wakeup, dispatch_right_handed_over_between_mark_and_sleep, .timeout = 30)
{
    run_handoff(HANDOFF_BEFORE_SLEEP);
}

Test(wakeup, dispatch_right_handed_over_to_a_sleeping_home_thread, .timeout = 30)
{
    run_handoff(HANDOFF_ASLEEP);
}

/* ---- The epoll engine's edge-triggered kick (issue 12) ------------------- */

static void wk_schedule(void *arg)
{
    aio_bh_schedule(arg);
}

/* On epoll the wait that fetches the kick's edge has consumed it: accepting
 * a cross-thread wake-up reads nothing from the eventfd (the level-triggered
 * kick needed one read() per accept). Counted with the fault table's read()
 * counter, which no failure is armed to hit. */
Test(wakeup, epoll_accepts_a_cross_thread_kick_without_a_read, .timeout = 30)
{
    AioContext *ctx = tc_ctx_new();
    if (strcmp(aio_context_backend(ctx), "epoll") != 0) {
        aio_context_unref(ctx); /* the epoll engine only; nothing to check */
        return;
    }
    atomic_int ran;
    atomic_init(&ran, 0);
    AioBH *bh = aio_bh_new(ctx, tc_count_cb, &ran);

    aio__fault_arm(AIO_FAULT_READ, 1u << 30, EIO);
    for (int i = 1; i <= 3; i++) {
        tc_expect_wake(ctx, &ran, i, 0, wk_schedule, bh, "cross-thread bottom half");
    }
    unsigned reads = aio__fault_count(AIO_FAULT_READ);
    aio__fault_disarm();
    AioContextStats st = tc_stats(ctx);
    cr_assert_geq(st.notify_syscalls, 3, "the wake-ups made %llu kicks, not 3: not exercised",
                  (unsigned long long)st.notify_syscalls);
    cr_assert_eq(reads, 0, "accepting 3 kicks made %u read()s", reads);
    aio_bh_delete(bh);
    aio_context_unref(ctx);
}
