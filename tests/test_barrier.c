/* SPDX-License-Identifier: MIT */
/*
 * The store->load barrier of the wake-up protocol (docs/wakeup-protocol.md,
 * "The weak-memory class of lost wake-ups").
 *
 * aio_notify() stores `notified` then loads `notify_me`; the blocking poll
 * raises `notify_me` then loads `notified`. If either side's load may pass
 * its store (x86 store buffers allow exactly this), both can miss each other
 * and the poller sleeps on a notification nobody will repeat.
 *
 * The window is a few tens of nanoseconds wide, so the test makes the two
 * sides meet there as often as possible: the notifier spins until the home
 * thread has finished one aio_poll and notifies at once, when the home thread
 * is re-entering the next one. Nothing else (no bottom-half CAS, no mutex)
 * stands between them to act as an accidental fence. With the barrier
 * weakened to relaxed order this loses a wake-up within a few thousand to a
 * few hundred thousand rounds on x86; a lost one never completes.
 */
#include <stdlib.h>

#include "test-common.h"

#define DEFAULT_ROUNDS 1000000
/* A round that has not completed after TC_BOUND_MS is given this much more
 * time before it counts as lost. Nothing in these tests can wake the home
 * thread except the notification under test, so a lost wake-up never
 * completes, while a round that is merely slow (a 2-core machine running
 * other spinning tests, or Wine's wineserver starved of CPU) does, and is
 * reported without failing. */
#define LOST_AFTER_MS 20000

/* Waits until *v != seen (or, with at_least, *v > seen); returns how long it
 * took in ms, or -1 if it did not happen within LOST_AFTER_MS. */
static int64_t wait_progress(atomic_int *v, int seen, bool at_least)
{
    int64_t start = tsup_now_ns();
    for (;;) {
        int now = atomic_load(v);
        if (at_least ? now > seen : now != seen) {
            return tsup_ms_since(start);
        }
        int64_t waited_ns = tsup_now_ns() - start;
        if (waited_ns > (int64_t)LOST_AFTER_MS * 1000000) {
            return -1;
        }
        /* Spin through a normal round trip (a few microseconds), so that the
         * next notification lands while the home thread re-enters its poll
         * (yielding sooner lets the scheduler put both threads on one CPU,
         * where the race under test cannot happen);
         * beyond that, give the CPU to the thread we are waiting for, which
         * on an oversubscribed machine may be runnable but not running. */
        if (waited_ns > (int64_t)TC_BOUND_MS * 1000000) {
            tsup_sleep_ms(1);
        } else if (waited_ns > 2000000) {
            tsup_yield();
        }
    }
}

typedef struct pingpong {
    AioContext *ctx;
    atomic_int polls_done; /* wraps harmlessly: only inequality is used */
    atomic_int stop;
} pingpong;

static void home_loop(void *arg)
{
    pingpong *pp = arg;
    cr_assert_eq(aio_context_set_home_thread(pp->ctx), 0);
    atomic_fetch_add(&pp->polls_done, 1); /* "I am home" */
    while (!atomic_load(&pp->stop)) {
        int r = aio_poll(pp->ctx, true);
        if (r < 0) {
            cr_assert_fail("aio_poll: %s", aio_strerror(r));
        }
        atomic_fetch_add(&pp->polls_done, 1);
    }
}

/* AIOPOLL_BARRIER_ROUNDS overrides the default; builds where a round is
 * much slower (sanitizers, Wine) lower it. */
static int rounds(void)
{
    const char *env = getenv("AIOPOLL_BARRIER_ROUNDS");
    int n = env ? atoi(env) : 0;
    return n > 0 ? n : DEFAULT_ROUNDS;
}

Test(barrier, notify_pingpong_never_loses_a_wakeup, .timeout = 150)
{
    pingpong pp = {.ctx = tc_ctx_new()};
    atomic_init(&pp.polls_done, 0);
    atomic_init(&pp.stop, 0);
    tc_thread *home = tc_thread_start(home_loop, &pp);
    cr_assert(tsup_wait_at_least(&pp.polls_done, 1, TC_BOUND_MS), "home thread did not start");

    int n = rounds();
    int slow = 0;
    for (int i = 0; i < n; i++) {
        int seen = atomic_load(&pp.polls_done);
        /* At once: the home thread is between finishing one poll and
         * announcing the next sleep. (Measured: a random delay here sweeps
         * past the window and finds a relaxed barrier far less often.) */
        aio_notify(pp.ctx);
        /* Spin, do not sleep: the next notify must land while the home
         * thread re-enters aio_poll, not long after it fell asleep. */
        int64_t ms = wait_progress(&pp.polls_done, seen, false);
        cr_assert_geq(ms, 0,
                      "round %d of %d: home thread still asleep after %d ms: "
                      "lost wake-up (store->load order broken?)",
                      i, n, LOST_AFTER_MS);
        slow += ms > TC_BOUND_MS;
    }
    if (slow) {
        cr_log_info("%d round(s) took over %d ms but completed (machine overloaded)", slow,
                    TC_BOUND_MS);
    }
    atomic_store(&pp.stop, 1);
    aio_notify(pp.ctx);
    cr_assert(tc_thread_join(home, TC_BOUND_MS));
    aio_context_unref(pp.ctx);
}

/* The same meeting point through aio_bh_schedule() from two producers, so
 * that the BH path's notification (after its push) is covered too, and each
 * BH must run exactly once. */
typedef struct bh_pingpong {
    pingpong pp;
    AioBH *bh[2];
    atomic_int ran[2];
} bh_pingpong;

static void bh_ran(void *opaque)
{
    atomic_fetch_add((atomic_int *)opaque, 1);
}

typedef struct producer {
    bh_pingpong *b;
    int idx;
    int rounds;
    atomic_int failed_round;
    atomic_int slow_rounds;
} producer;

static void producer_main(void *arg)
{
    producer *p = arg;
    for (int i = 0; i < p->rounds; i++) {
        aio_bh_schedule(p->b->bh[p->idx]);
        int64_t ms = wait_progress(&p->b->ran[p->idx], i, true);
        if (ms < 0) {
            atomic_store(&p->failed_round, i + 1);
            return;
        }
        atomic_fetch_add(&p->slow_rounds, ms > TC_BOUND_MS);
    }
}

Test(barrier, bh_pingpong_two_producers, .timeout = 150)
{
    bh_pingpong b = {.pp.ctx = tc_ctx_new()};
    atomic_init(&b.pp.polls_done, 0);
    atomic_init(&b.pp.stop, 0);
    for (int i = 0; i < 2; i++) {
        atomic_init(&b.ran[i], 0);
        b.bh[i] = aio_bh_new(b.pp.ctx, bh_ran, &b.ran[i]);
        cr_assert_not_null(b.bh[i]);
    }
    tc_thread *home = tc_thread_start(home_loop, &b.pp);
    cr_assert(tsup_wait_at_least(&b.pp.polls_done, 1, TC_BOUND_MS), "home thread did not start");

    int n = rounds() / 3;
    producer p[2];
    tc_thread *t[2];
    for (int i = 0; i < 2; i++) {
        p[i] = (producer){.b = &b, .idx = i, .rounds = n};
        atomic_init(&p[i].failed_round, 0);
        atomic_init(&p[i].slow_rounds, 0);
        t[i] = tc_thread_start(producer_main, &p[i]);
    }
    for (int i = 0; i < 2; i++) {
        cr_assert(tc_thread_join(t[i], 100000), "producer %d did not finish", i);
        cr_assert_eq(atomic_load(&p[i].failed_round), 0,
                     "producer %d, round %d: its BH did not run within %d ms: lost wake-up", i,
                     atomic_load(&p[i].failed_round), LOST_AFTER_MS);
        if (atomic_load(&p[i].slow_rounds)) {
            cr_log_info("producer %d: %d round(s) took over %d ms but completed", i,
                        atomic_load(&p[i].slow_rounds), TC_BOUND_MS);
        }
        cr_assert_eq(atomic_load(&b.ran[i]), n, "BH %d ran %d times for %d schedules", i,
                     atomic_load(&b.ran[i]), n);
    }
    atomic_store(&b.pp.stop, 1);
    aio_notify(b.pp.ctx);
    cr_assert(tc_thread_join(home, TC_BOUND_MS));
    aio_context_unref(b.pp.ctx);
}
