/* SPDX-License-Identifier: MIT */
/*
 * Timers: firing order, never early (odd sub-millisecond deadlines catch a
 * timeout that is rounded down), deletion, aio_timer_pending, deadlines in
 * the past, re-arming from another thread to an earlier deadline waking a
 * poll that sleeps on a far one, aio_timer_free from inside the callback,
 * and 10^4 random timers firing in order.
 *
 * Order, deletion, re-arming and the 10^4 timers run on the stopped virtual
 * clock, moved forward by the test: no sleeping, and "fired exactly when due"
 * is checked at every step (nothing due is left, nothing early fires). The
 * REALTIME tests that stay prove never-early against the real clock through
 * real blocking sleeps (odd sub-millisecond deadlines) and the wake-ups from
 * other threads. Each test runs in its own process (Criterion and
 * criterion-lite both fork), so stopping the process-wide virtual clock
 * touches no other test.
 */
#include "test-common.h"

#include <stdlib.h>

#define MS (1000000LL)

typedef struct tm_rec {
    AioTimer *t;
    AioClockType clock;
    int64_t deadline;
    int id;
    int armed_seq;      /* order of arming, for ties */
    int64_t fired_at;   /* aio_clock_get_ns(clock) in the callback */
    int fired_count;
    struct tm_log *log;
    bool free_self;
} tm_rec;

typedef struct tm_log {
    atomic_int n;
    int early;         /* callbacks that ran before their deadline */
    int64_t worst_early_ns;
    int cap;
    tm_rec **order;    /* firing order */
} tm_log;

static void tm_cb(void *opaque)
{
    tm_rec *r = opaque;
    tm_log *log = r->log;
    int i;

    r->fired_at = aio_clock_get_ns(r->clock);
    r->fired_count++;
    if (r->fired_at < r->deadline) {
        log->early++;
        if (r->deadline - r->fired_at > log->worst_early_ns) {
            log->worst_early_ns = r->deadline - r->fired_at;
        }
    }
    i = atomic_load(&log->n);
    if (i < log->cap) {
        log->order[i] = r;
    }
    if (r->free_self) {
        aio_timer_free(r->t);
        r->t = NULL;
    }
    atomic_store(&log->n, i + 1);
}

static void tm_log_init(tm_log *log, int cap)
{
    atomic_init(&log->n, 0);
    log->early = 0;
    log->worst_early_ns = 0;
    log->cap = cap;
    log->order = calloc((size_t)cap, sizeof(*log->order));
    cr_assert_not_null(log->order);
}

static void tm_rec_init_on(tm_rec *r, AioContext *ctx, AioClockType clock, tm_log *log, int id)
{
    *r = (tm_rec){.id = id, .log = log, .clock = clock};
    r->t = aio_timer_new_on(ctx, clock, tm_cb, r);
    cr_assert_not_null(r->t);
}

static void tm_rec_init(tm_rec *r, AioContext *ctx, tm_log *log, int id)
{
    tm_rec_init_on(r, ctx, AIO_CLOCK_REALTIME, log, id);
}

/* The virtual clock, stopped: it moves only when tm_advance moves it. */
static int64_t tm_vstop(void)
{
    aio_virtual_clock_stop();
    return aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
}

/* Sets the stopped virtual clock to `to` and runs what became due: after
 * this, every timer whose deadline is <= to has fired (tm_cb checks that
 * none fired before its deadline). Non-blocking polls only: nothing here
 * waits for time to pass. */
static void tm_advance(AioContext *ctx, int64_t to)
{
    cr_assert_eq(aio_virtual_clock_set_ns(to), 0);
    cr_assert_eq(aio_clock_get_ns(AIO_CLOCK_VIRTUAL), to, "the stopped virtual clock moved");
    tc_poll_idle(ctx, 1000000);
}

static void tm_arm(tm_rec *r, int64_t deadline, int seq)
{
    r->deadline = deadline;
    r->armed_seq = seq;
    aio_timer_mod(r->t, deadline);
}

static void tm_expect_not_early(tm_log *log)
{
    cr_assert_eq(log->early, 0, "%d timers fired early (worst: %lld ns before the deadline)",
                 log->early, (long long)log->worst_early_ns);
}

/* Fire order is by deadline, ties in arming order. */
static void tm_expect_ordered(tm_log *log, int n)
{
    for (int i = 1; i < n; i++) {
        tm_rec *p = log->order[i - 1], *q = log->order[i];
        cr_assert(p->deadline < q->deadline ||
                      (p->deadline == q->deadline && p->armed_seq < q->armed_seq),
                  "timer #%d (deadline %lld, armed %d) fired after #%d (deadline %lld, armed %d)",
                  p->id, (long long)p->deadline, p->armed_seq, q->id, (long long)q->deadline,
                  q->armed_seq);
    }
}

Test(timer, clock_is_monotonic_ns, .timeout = 10)
{
    int64_t a = aio_clock_ns();
    int64_t b;

    tsup_sleep_ms(10);
    b = aio_clock_ns();
    cr_assert_gt(a, 0);
    cr_assert_geq(b - a, 9 * MS, "aio_clock_ns advanced %lld ns in 10 ms", (long long)(b - a));
    cr_assert_lt(b - a, 2000 * MS);
}

/* Virtual: the clock steps 1 µs short of each deadline (nothing new may
 * fire), then onto it (exactly that timer fires). */
Test(timer, fire_in_deadline_order_never_early, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    tm_log log;
    tm_rec r[6];
    /* Odd sub-millisecond offsets, in microseconds, armed out of order. */
    static const int64_t offs_us[6] = {2700, 1300, 900, 3100, 1301, 50};
    static const int64_t sorted_us[6] = {50, 900, 1300, 1301, 2700, 3100};
    int64_t now;

    tm_log_init(&log, 6);
    now = tm_vstop();
    for (int i = 0; i < 6; i++) {
        tm_rec_init_on(&r[i], ctx, AIO_CLOCK_VIRTUAL, &log, i);
        tm_arm(&r[i], now + offs_us[i] * 1000, i);
        cr_assert(aio_timer_pending(r[i].t));
    }
    for (int k = 0; k < 6; k++) {
        tm_advance(ctx, now + sorted_us[k] * 1000 - 1000);
        cr_assert_eq(atomic_load(&log.n), k, "a timer fired 1 us before its deadline");
        tm_advance(ctx, now + sorted_us[k] * 1000);
        cr_assert_eq(atomic_load(&log.n), k + 1, "the timer due at +%lld us did not fire",
                     (long long)sorted_us[k]);
        cr_assert_eq(log.order[k]->fired_at, log.order[k]->deadline);
    }
    tm_expect_not_early(&log);
    tm_expect_ordered(&log, 6);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(r[i].fired_count, 1);
        cr_assert(!aio_timer_pending(r[i].t), "timer still pending after it fired");
        aio_timer_free(r[i].t);
    }
    free(log.order);
    aio_context_unref(ctx);
}

/* A single blocking poll must not return and fire nothing because it slept
 * a rounded-down timeout, and must fire within a sane time. */
Test(timer, blocking_poll_sleeps_until_deadline, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    tm_log log;
    tm_rec r;

    tm_log_init(&log, 1);
    tm_rec_init(&r, ctx, &log, 0);
    for (int round = 0; round < 20; round++) {
        int64_t t0 = aio_clock_ns();
        tm_arm(&r, t0 + 1300 * 1000 + round * 37 * 1000, round);
        cr_assert(tc_poll_until(ctx, &log.n, round + 1, TC_BOUND_MS));
        tm_expect_not_early(&log);
        cr_assert_lt(r.fired_at - r.deadline, 500 * MS, "timer fired %lld ns late",
                     (long long)(r.fired_at - r.deadline));
        log.cap = 0; /* only the first round's order is kept */
    }
    aio_timer_free(r.t);
    free(log.order);
    aio_context_unref(ctx);
}

Test(timer, same_deadline_fires_in_arming_order, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    tm_log log;
    tm_rec r[5];
    int64_t deadline = tm_vstop() + 2 * MS;

    tm_log_init(&log, 5);
    for (int i = 0; i < 5; i++) {
        tm_rec_init_on(&r[i], ctx, AIO_CLOCK_VIRTUAL, &log, i);
    }
    for (int i = 0; i < 5; i++) {
        tm_arm(&r[(i * 3) % 5], deadline, i);
    }
    tm_advance(ctx, deadline);
    cr_assert_eq(atomic_load(&log.n), 5);
    tm_expect_ordered(&log, 5);
    for (int i = 0; i < 5; i++) {
        aio_timer_free(r[i].t);
    }
    free(log.order);
    aio_context_unref(ctx);
}

Test(timer, pending_and_delete, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    tm_log log;
    tm_rec r;

    tm_log_init(&log, 1);
    int64_t now = tm_vstop();
    tm_rec_init_on(&r, ctx, AIO_CLOCK_VIRTUAL, &log, 0);
    cr_assert(!aio_timer_pending(r.t), "a new timer is pending");
    tm_arm(&r, now + 2 * MS, 0);
    cr_assert(aio_timer_pending(r.t));
    aio_timer_del(r.t);
    cr_assert(!aio_timer_pending(r.t));
    aio_timer_del(r.t); /* idempotent */
    /* Well past the old deadline. */
    cr_assert_eq(aio_virtual_clock_set_ns(now + 10 * MS), 0);
    cr_assert_eq(aio_poll(ctx, false), 0);
    cr_assert_eq(atomic_load(&log.n), 0, "deleted timer fired");
    /* A deleted timer can be re-armed. */
    tm_arm(&r, now + 11 * MS, 1);
    tm_advance(ctx, now + 11 * MS);
    cr_assert_eq(atomic_load(&log.n), 1);
    cr_assert(!aio_timer_pending(r.t));
    aio_timer_free(r.t);
    free(log.order);
    aio_context_unref(ctx);
}

/* A deleted timer does not make a blocking poll return at its old deadline
 * either (no spurious wake-up loop; no callback). */
Test(timer, deleted_timer_does_not_fire_in_blocking_poll, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    tm_log log;
    tm_rec r;
    tc_poll_result res;

    tm_log_init(&log, 1);
    tm_rec_init(&r, ctx, &log, 0);
    tm_arm(&r, aio_clock_ns() + 5 * MS, 0);
    aio_timer_del(r.t);
    res = tc_poll_blocking_bounded(ctx, 100);
    cr_assert_geq(res.ret, 0);
    cr_assert_eq(atomic_load(&log.n), 0);
    aio_timer_free(r.t);
    free(log.order);
    aio_context_unref(ctx);
}

Test(timer, rearm_moves_deadline, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    tm_log log;
    tm_rec r;

    tm_log_init(&log, 2);
    int64_t now = tm_vstop();
    tm_rec_init_on(&r, ctx, AIO_CLOCK_VIRTUAL, &log, 0);
    tm_arm(&r, now + 60000 * MS, 0);
    tm_arm(&r, now + 3 * MS, 1); /* earlier */
    tm_advance(ctx, now + 3 * MS);
    cr_assert_eq(atomic_load(&log.n), 1, "re-armed earlier, did not fire at the new deadline");
    tm_arm(&r, now + 4 * MS, 2);
    tm_arm(&r, now + 7 * MS, 3); /* later */
    tm_advance(ctx, now + 4 * MS);
    cr_assert_eq(atomic_load(&log.n), 1, "re-armed later, fired at the old deadline");
    tm_advance(ctx, now + 7 * MS);
    cr_assert_eq(atomic_load(&log.n), 2);
    tm_expect_not_early(&log);
    cr_assert_eq(r.fired_count, 2, "re-armed timer fired %d times", r.fired_count);
    aio_timer_free(r.t);
    free(log.order);
    aio_context_unref(ctx);
}

Test(timer, past_deadline_fires_at_next_poll, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    tm_log log;
    tm_rec r;

    tm_log_init(&log, 1);
    tm_rec_init(&r, ctx, &log, 0);
    tm_arm(&r, aio_clock_ns() - 1000 * MS, 0);
    cr_assert_eq(aio_poll(ctx, false), 1);
    cr_assert_eq(atomic_load(&log.n), 1);
    tm_arm(&r, 0, 1);
    cr_assert_eq(aio_poll(ctx, false), 1);
    cr_assert_eq(atomic_load(&log.n), 2);
    aio_timer_free(r.t);
    free(log.order);
    aio_context_unref(ctx);
}

Test(timer, free_from_own_callback, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    tm_log log;
    tm_rec r;

    tm_log_init(&log, 1);
    int64_t now = tm_vstop();
    tm_rec_init_on(&r, ctx, AIO_CLOCK_VIRTUAL, &log, 0);
    r.free_self = true;
    tm_arm(&r, now + 1 * MS, 0);
    tm_advance(ctx, now + 1 * MS);
    cr_assert_eq(atomic_load(&log.n), 1);
    cr_assert_null(r.t);
    tc_poll_idle(ctx, 10);
    free(log.order);
    aio_context_unref(ctx);
}

static void remote_rearm_soon(void *p)
{
    tm_rec *r = p;
    tm_arm(r, aio_clock_ns() + 1 * MS, 1);
}

static void rearm_case(int asleep_ms, const char *what)
{
    AioContext *ctx = tc_ctx_new();
    tm_log log;
    tm_rec r;

    tm_log_init(&log, 1);
    tm_rec_init(&r, ctx, &log, 0);
    tm_arm(&r, aio_clock_ns() + 60000 * MS, 0); /* the poll sleeps on this */
    tc_expect_wake(ctx, &log.n, 1, asleep_ms, remote_rearm_soon, &r, what);
    tm_expect_not_early(&log);
    aio_timer_free(r.t);
    free(log.order);
    aio_context_unref(ctx);
}

Test(timer, rearm_earlier_from_other_thread_wakes_before_sleep, .timeout = 20)
{
    rearm_case(0, "re-arm to an earlier deadline before sleep");
}

Test(timer, rearm_earlier_from_other_thread_wakes_asleep, .timeout = 20)
{
    rearm_case(50, "re-arm to an earlier deadline while asleep");
}

static void remote_arm_new(void *p)
{
    tm_rec *r = p;
    tm_arm(r, aio_clock_ns() + 2 * MS, 0);
}

/* Arming the first timer of an idle context from another thread wakes it. */
Test(timer, arm_from_other_thread_wakes_idle_poll, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    tm_log log;
    tm_rec r;

    tm_log_init(&log, 1);
    tm_rec_init(&r, ctx, &log, 0);
    tc_expect_wake(ctx, &log.n, 1, 50, remote_arm_new, &r, "arm while asleep without timers");
    tm_expect_not_early(&log);
    aio_timer_free(r.t);
    free(log.order);
    aio_context_unref(ctx);
}

Test(timer, ten_thousand_random_timers_fire_in_order, .timeout = 60)
{
    enum { N = 10000 };
    AioContext *ctx = tc_ctx_new();
    tm_log log;
    tm_rec *r = calloc(N, sizeof(*r));
    uint32_t seed = 12345;
    int64_t now;

    cr_assert_not_null(r);
    tm_log_init(&log, N);
    now = tm_vstop();
    for (int i = 0; i < N; i++) {
        tm_rec_init_on(&r[i], ctx, AIO_CLOCK_VIRTUAL, &log, i);
    }
    for (int i = 0; i < N; i++) {
        /* 0..50 ms, at microsecond granularity so that ties happen too. */
        tm_arm(&r[i], now + (int64_t)(tc_rand(&seed) % 50000) * 1000, i);
    }
    /* Re-arm a tenth of them; the later arming is the one that counts. */
    for (int i = 0; i < N; i += 10) {
        tm_arm(&r[i], now + (int64_t)(tc_rand(&seed) % 50000) * 1000, N + i);
    }
    /* Random steps of 0..2 ms up to the last deadline; at each step exactly
     * the timers due by then have fired. */
    int64_t v = now;
    while (v < now + 50 * MS) {
        v += (int64_t)(tc_rand(&seed) % 2000) * 1000;
        tm_advance(ctx, v);
        int due = 0;
        for (int i = 0; i < N; i++) {
            due += r[i].deadline <= v;
        }
        cr_assert_eq(atomic_load(&log.n), due, "at +%lld ns: %d fired, %d due",
                     (long long)(v - now), atomic_load(&log.n), due);
    }
    cr_assert_eq(atomic_load(&log.n), N, "only %d of %d timers fired", atomic_load(&log.n), N);
    tm_expect_not_early(&log);
    tm_expect_ordered(&log, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(r[i].fired_count, 1, "timer %d fired %d times", i, r[i].fired_count);
        aio_timer_free(r[i].t);
    }
    free(r);
    free(log.order);
    aio_context_unref(ctx);
}
