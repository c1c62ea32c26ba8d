/* SPDX-License-Identifier: MIT */
/*
 * Stress: two producer threads schedule bottom halves (their own BH and
 * oneshots) and notify while the home thread loops aio_poll(ctx, true) and a
 * third thread loops aio_poll(ctx, false). A round = a producer schedules and
 * waits (bounded) until its callback ran. Checks: no lost wake-up (a watchdog
 * fails the test if no progress is made for 5 s, naming the round), every
 * callback runs exactly once, and callbacks never run on two threads at once.
 *
 * AIOPOLL_STRESS_ROUNDS (default 100000) is the total number of rounds,
 * split between the producers. tools/run-tests.sh soak runs 10^7.
 *
 * The EINTR storm (POSIX) runs the same rounds while another thread sends
 * the home thread a signal, whose handler is installed without SA_RESTART,
 * every few microseconds: its waits keep failing with EINTR, which must
 * never be an error nor lose a wake-up. AIOPOLL_STORM_ROUNDS (default: the
 * stress rounds, at most 50000).
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "test-common.h"

#include <string.h>

#if !defined(_WIN32)
#include <pthread.h>
#include <signal.h>
#define STRESS_HAVE_STORM 1
#else
#define STRESS_HAVE_STORM 0
#endif

/* The Criterion bound of one stress run; the soak raises it. */
#ifndef AIOPOLL_STRESS_TIMEOUT_S
#define AIOPOLL_STRESS_TIMEOUT_S 600
#endif

#define STALL_MS 5000

typedef struct stress stress;

typedef struct producer {
    stress *st;
    int id;
    int rounds;
    AioBH *bh;
    atomic_int ran;     /* callbacks of this producer that ran */
    atomic_int round;   /* current round (progress) */
    atomic_int stalled; /* round at which its callback never came */
    atomic_int extra;   /* callbacks beyond the expected count */
    uint32_t seed;
} producer;

struct stress {
    AioContext *ctx;
    atomic_int stop;
    atomic_int in_callback; /* detects concurrent dispatch */
    atomic_int overlaps;
    atomic_int home_ready;
    atomic_int home_done;
    atomic_int home_err;
    atomic_int nb_done;
    atomic_int nb_err;
    atomic_long nb_polls;
    atomic_long nb_ran;
    atomic_long home_polls;
    producer prod[2];
#if STRESS_HAVE_STORM
    pthread_t home_tid;
    atomic_long signals_sent;
#endif
};

static void stress_cb(void *opaque)
{
    producer *p = opaque;
    stress *st = p->st;

    if (atomic_exchange(&st->in_callback, 1)) {
        atomic_fetch_add(&st->overlaps, 1);
    }
    atomic_fetch_add(&p->ran, 1);
    atomic_store(&st->in_callback, 0);
}

static void producer_main(void *arg)
{
    producer *p = arg;
    stress *st = p->st;

    for (int i = 1; i <= p->rounds && !atomic_load(&st->stop); i++) {
        uint32_t r = tc_rand(&p->seed);

        atomic_store(&p->round, i);
        switch (r % 4) {
        case 0:
        case 1:
            aio_bh_schedule(p->bh);
            break;
        case 2:
            aio_bh_schedule_oneshot(st->ctx, stress_cb, p);
            break;
        default:
            aio_notify(st->ctx); /* a notify with no work, then the work */
            aio_bh_schedule(p->bh);
            if (r & 0x100) {
                aio_notify(st->ctx);
            }
            break;
        }
        if (!tsup_wait_at_least(&p->ran, i, STALL_MS)) {
            atomic_store(&p->stalled, i);
            return;
        }
        if (atomic_load(&p->ran) > i) {
            atomic_fetch_add(&p->extra, 1);
        }
    }
}

static void home_main(void *arg)
{
    stress *st = arg;

#if STRESS_HAVE_STORM
    st->home_tid = pthread_self(); /* read by the storm after home_ready */
#endif
    if (aio_context_set_home_thread(st->ctx) != 0) {
        atomic_store(&st->home_err, -1);
    } else {
        atomic_store(&st->home_ready, 1);
        while (!atomic_load(&st->stop)) {
            int r = aio_poll(st->ctx, true);
            atomic_fetch_add(&st->home_polls, 1);
            if (r < 0) {
                atomic_store(&st->home_err, r);
                break;
            }
        }
    }
    atomic_store(&st->home_done, 1);
}

static void nb_main(void *arg)
{
    stress *st = arg;

    while (!atomic_load(&st->stop)) {
        int r = aio_poll(st->ctx, false);
        atomic_fetch_add(&st->nb_polls, 1);
        if (r < 0) {
            atomic_store(&st->nb_err, r);
            break;
        }
        atomic_fetch_add(&st->nb_ran, r);
        tsup_yield();
    }
    atomic_store(&st->nb_done, 1);
}

static int stress_progress(stress *st)
{
    return atomic_load(&st->prod[0].ran) + atomic_load(&st->prod[1].ran);
}

#if STRESS_HAVE_STORM
static atomic_long signals_handled;

static void storm_handler(int sig)
{
    (void)sig;
    /* Lock-free: async-signal-safe. */
    atomic_fetch_add_explicit(&signals_handled, 1, memory_order_relaxed);
}

static void storm_main(void *arg)
{
    stress *st = arg;
    while (!atomic_load(&st->stop) && !atomic_load(&st->home_done)) {
        if (pthread_kill(st->home_tid, SIGUSR1) != 0) {
            break;
        }
        atomic_fetch_add_explicit(&st->signals_sent, 1, memory_order_relaxed);
        tsup_spin_us(3);
    }
}
#endif

static void run_stress(long total, bool storm)
{
    stress st;
    tc_thread *home, *nb, *pt[2], *storm_thread = NULL;
    int64_t t0 = tsup_now_ns();
    int last = -1;
    int64_t last_change = tsup_now_ns();

    memset(&st, 0, sizeof(st));
    st.ctx = tc_ctx_new();
    for (int i = 0; i < 2; i++) {
        producer *p = &st.prod[i];
        p->st = &st;
        p->id = i;
        p->rounds = (int)(total / 2 + (i == 0 ? total % 2 : 0));
        p->seed = 0x1234567u + (uint32_t)i * 7919u;
        p->bh = aio_bh_new(st.ctx, stress_cb, p);
        cr_assert_not_null(p->bh);
    }

    home = tc_thread_start(home_main, &st);
    nb = tc_thread_start(nb_main, &st);
    /* Let the new home thread take over before anybody schedules. */
    cr_assert(tsup_wait_flag(&st.home_ready, TC_BOUND_MS), "home thread did not start");
#if STRESS_HAVE_STORM
    if (storm) {
        storm_thread = tc_thread_start(storm_main, &st);
    }
#else
    (void)storm;
#endif
    for (int i = 0; i < 2; i++) {
        pt[i] = tc_thread_start(producer_main, &st.prod[i]);
    }

    /* Watchdog: progress must be made at least every STALL_MS. */
    for (;;) {
        int now = stress_progress(&st);
        bool finished = true;
        for (int i = 0; i < 2; i++) {
            finished = finished && (atomic_load(&st.prod[i].ran) >= st.prod[i].rounds ||
                                    atomic_load(&st.prod[i].stalled));
        }
        if (finished || atomic_load(&st.home_done)) {
            break;
        }
        if (now != last) {
            last = now;
            last_change = tsup_now_ns();
        } else if (tsup_ms_since(last_change) > STALL_MS + 1000) {
            cr_assert_fail("no progress for %d ms: producer rounds %d/%d, %d/%d; "
                           "home thread still asleep: lost wake-up",
                           STALL_MS, atomic_load(&st.prod[0].round), st.prod[0].rounds,
                           atomic_load(&st.prod[1].round), st.prod[1].rounds);
        }
        tsup_sleep_ms(10);
    }

    for (int i = 0; i < 2; i++) {
        producer *p = &st.prod[i];
        cr_assert_eq(atomic_load(&p->stalled), 0,
                     "producer %d, round %d: its bottom half did not run within %d ms: "
                     "lost wake-up (home polls %ld, non-blocking polls %ld)",
                     i, atomic_load(&p->stalled), STALL_MS, (long)atomic_load(&st.home_polls),
                     (long)atomic_load(&st.nb_polls));
    }
    cr_assert_eq(atomic_load(&st.home_err), 0, "home thread: %s",
                 aio_strerror(atomic_load(&st.home_err)));
    for (int i = 0; i < 2; i++) {
        cr_assert(tc_thread_join(pt[i], TC_BOUND_MS), "producer %d did not finish", i);
    }
    atomic_store(&st.stop, 1);
    if (storm_thread) {
        cr_assert(tc_thread_join(storm_thread, TC_BOUND_MS), "the signal storm did not stop");
    }
    aio_notify(st.ctx);
    cr_assert(tsup_wait_flag(&st.home_done, TC_BOUND_MS),
              "home thread still asleep %d ms after the final notify: lost wake-up",
              TC_BOUND_MS);
    cr_assert(tc_thread_join(home, TC_BOUND_MS));
    cr_assert(tc_thread_join(nb, TC_BOUND_MS));
    cr_assert_eq(atomic_load(&st.nb_err), 0, "non-blocking poller: %s",
                 aio_strerror(atomic_load(&st.nb_err)));
    cr_assert_eq(atomic_load(&st.overlaps), 0,
                 "callbacks ran on two threads at once %d times", atomic_load(&st.overlaps));

    /* Exactly once: after everything settled, no callback ran twice. */
    cr_assert_eq(aio_context_set_home_thread(st.ctx), 0);
    tc_poll_idle(st.ctx, 100);
    for (int i = 0; i < 2; i++) {
        producer *p = &st.prod[i];
        cr_assert_eq(atomic_load(&p->extra), 0, "producer %d: a callback ran twice", i);
        cr_assert_eq(atomic_load(&p->ran), p->rounds, "producer %d: %d callbacks for %d rounds",
                     i, atomic_load(&p->ran), p->rounds);
        aio_bh_delete(p->bh);
    }
    int64_t ms = tsup_ms_since(t0);
    cr_log_info("%s%s: %ld rounds in %lld ms (%.0f rounds/s); home polls %ld, "
                "non-blocking polls %ld (ran %ld)",
                aio_context_backend(st.ctx), storm ? " (EINTR storm)" : "", total,
                (long long)ms, (double)total * 1000.0 / (double)(ms > 0 ? ms : 1),
                (long)atomic_load(&st.home_polls), (long)atomic_load(&st.nb_polls),
                (long)atomic_load(&st.nb_ran));
#if STRESS_HAVE_STORM
    if (storm) {
        long sent = atomic_load(&st.signals_sent);
        long handled = atomic_load(&signals_handled);
        cr_log_info("EINTR storm: %ld signals sent to the home thread, %ld handled", sent,
                    handled);
        /* Otherwise the storm tested nothing. */
        cr_assert_gt(handled, 0, "no signal reached the home thread");
    }
#endif
    aio_context_unref(st.ctx);
}

Test(stress, producers_home_and_nonblocking_poller, .timeout = AIOPOLL_STRESS_TIMEOUT_S)
{
    run_stress(tc_env_long("AIOPOLL_STRESS_ROUNDS", 100000), false);
}

Test(stress, eintr_storm, .timeout = AIOPOLL_STRESS_TIMEOUT_S)
{
#if STRESS_HAVE_STORM
    long stress_rounds = tc_env_long("AIOPOLL_STRESS_ROUNDS", 100000);
    long rounds = tc_env_long("AIOPOLL_STORM_ROUNDS", stress_rounds < 50000 ? stress_rounds : 50000);
    /* No SA_RESTART: every wait the signal interrupts fails with EINTR. */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = storm_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    cr_assert_eq(sigaction(SIGUSR1, &sa, &old), 0);
    atomic_store(&signals_handled, 0);
    run_stress(rounds, true);
    sigaction(SIGUSR1, &old, NULL);
#else
    cr_skip_test("no signals on Windows");
#endif
}
