/* SPDX-License-Identifier: MIT */
/*
 * A libFuzzer target for what an emulator builds on a loop: the worker pool,
 * aio_wait_while(), the virtual clock, and wake-ups that reach a blocking
 * poll from another thread while it sleeps. A byte string drives random
 * sequences of those calls, with nested calls from inside callbacks, and a
 * model checks the promises of aio.h:
 *  - every submitted work's done runs exactly once, in the context, never
 *    inside aio_work_cancel(); with -ECANCELED exactly when a cancel returned
 *    0, and then fn never ran; otherwise with fn's return value;
 *  - aio_work_cancel() returns 0 or -EBUSY, and after -EBUSY fn does run;
 *  - aio_wait_while() returns once its condition is false, and with work
 *    outstanding a blocking poll is woken by the completion (no guard timer:
 *    an alarm() watchdog aborts a poll that sleeps through it);
 *  - a VIRTUAL timer never fires before aio_clock_get_ns(AIO_CLOCK_VIRTUAL)
 *    reaches its deadline, also across stop, start and set;
 *  - a BH schedule, an aio_notify(), a virtual clock set past an armed
 *    deadline, or a completion, made by another thread while the home
 *    thread sleeps, ends that sleep (watchdog again);
 *  - nothing leaks (LeakSanitizer) or touches freed memory, also when the
 *    last reference goes with work still queued or running.
 * fuzz_api.c covers BHs, fd handlers, notifiers and realtime timers in
 * depth; this target keeps its own byte layout so that neither corpus
 * changes meaning when the other grows.
 *
 * Byte layout: each operation is one byte (op) and an argument byte; some
 * take more bytes; the input ends the run when it ends.
 */
#include <aiopoll/aio.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NWORK 4
#define NVT 3
#define NBH 2 /* the home thread's; a third one only the other thread schedules */
#define MAX_DEPTH 3
#define WATCHDOG_S 5

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_pool: invariant broken: " __VA_ARGS__);      \
            fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__);                 \
            abort();                                                           \
        }                                                                      \
    } while (0)

enum { NOT_CANCELLED = 1 };

typedef struct WorkModel {
    AioWork *w;       /* valid while outstanding */
    bool outstanding; /* submitted, done not run yet */
    int cancel_ret;   /* NOT_CANCELLED, 0 or -EBUSY */
    int value;        /* what fn returns */
    unsigned sleep_us; /* fn sleeps this long first: completes while we sleep */
    atomic_bool fn_started; /* set by fn, on a worker thread */
} WorkModel;

typedef struct VTimerModel {
    AioTimer *t;
    bool armed;
    int64_t deadline;
} VTimerModel;

typedef struct BhModel {
    AioBH *bh;
    bool pending;
} BhModel;

typedef struct Fuzz {
    const uint8_t *data;
    size_t len, pos;
    AioContext *ctx;
    bool dying; /* the last reference was dropped inside a callback */
    int depth;
    bool in_cancel;
    WorkModel work[NWORK];
    int outstanding;
    VTimerModel vt[NVT];
    BhModel bh[NBH + 1];
    AioTimer *guard;
} Fuzz;

static Fuzz F;

static uint8_t take(void)
{
    return F.pos < F.len ? F.data[F.pos++] : 0;
}

static bool alive(void)
{
    return F.ctx && !F.dying;
}

static void run_op(void);

static void nested(void)
{
    if (F.depth < MAX_DEPTH && (take() & 3) == 3) {
        F.depth++;
        run_op();
        F.depth--;
    }
}

/* The watchdog. A nested blocking poll re-arms it and its return disarms it;
 * the outer poll then runs unguarded by the alarm, as in fuzz_api.c: the
 * outermost polls are the ones the corpus exercises most. */
static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] =
        "fuzz_pool: invariant broken: a blocking poll slept through a wake-up\n";
    (void)!write(2, msg, sizeof(msg) - 1);
    abort();
}

static int watched_poll(void)
{
    alarm(WATCHDOG_S);
    int ret = aio_poll(F.ctx, true);
    alarm(0);
    return ret;
}

/* ---- callbacks ---------------------------------------------------------- */

static int work_fn(void *arg)
{
    WorkModel *m = arg;
    /* Only atomics and what submit published: the model is the home
     * thread's. */
    atomic_store(&m->fn_started, true);
    if (m->sleep_us) {
        struct timespec ts = {0, (long)m->sleep_us * 1000};
        nanosleep(&ts, NULL);
    }
    return m->value;
}

static void work_done(void *opaque, int ret)
{
    WorkModel *m = opaque;
    int i = (int)(m - F.work);
    CHECK(m->outstanding, "work %d: done ran twice", i);
    CHECK(!F.in_cancel, "work %d: done ran inside aio_work_cancel", i);
    CHECK(aio_context_in_home_thread(F.ctx), "work %d: done ran off the home thread", i);
    if (m->cancel_ret == 0) {
        CHECK(ret == -ECANCELED, "work %d: cancelled (0) but done got %d", i, ret);
        CHECK(!atomic_load(&m->fn_started), "work %d: cancelled (0) but fn ran", i);
    } else {
        CHECK(ret == m->value, "work %d: done got %d, fn returns %d", i, ret, m->value);
        CHECK(atomic_load(&m->fn_started), "work %d: done with a value but fn never ran", i);
    }
    m->outstanding = false;
    m->w = NULL;
    F.outstanding--;
    nested();
}

static void vtimer_cb(void *opaque)
{
    VTimerModel *m = opaque;
    int i = (int)(m - F.vt);
    CHECK(m->armed, "virtual timer %d fired while disarmed", i);
    int64_t now = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    CHECK(now >= m->deadline, "virtual timer %d fired early: clock %lld, deadline %lld", i,
          (long long)now, (long long)m->deadline);
    m->armed = false;
    nested();
}

static void bh_cb(void *opaque)
{
    BhModel *m = opaque;
    CHECK(m->pending, "BH %d ran while not scheduled", (int)(m - F.bh));
    m->pending = false;
    nested();
}

static void guard_cb(void *opaque)
{
    (void)opaque;
}

/* ---- operations ---------------------------------------------------------- */

static void work_submit(WorkModel *m, unsigned sleep_us)
{
    m->value = take() % 101;
    m->sleep_us = sleep_us;
    m->cancel_ret = NOT_CANCELLED;
    atomic_store(&m->fn_started, false);
    m->w = aio_work_submit(F.ctx, work_fn, m, work_done, m);
    CHECK(m->w, "aio_work_submit failed");
    m->outstanding = true;
    F.outstanding++;
}

static void op_work(uint8_t arg)
{
    WorkModel *m = &F.work[arg % NWORK];
    switch ((arg >> 2) & 7) {
    case 0:
    case 1:
        if (!m->outstanding) {
            work_submit(m, 0);
        }
        break;
    case 2:
        if (!m->outstanding) {
            work_submit(m, 20 + (take() & 0x7f) * 2);
        }
        break;
    case 3:
    case 4:
        if (m->outstanding && m->cancel_ret == NOT_CANCELLED) {
            F.in_cancel = true;
            int ret = aio_work_cancel(m->w);
            F.in_cancel = false;
            /* -EBUSY: the worker's claim came first. fn_started may still
             * be false (the claim is right before the call); done then
             * proves that fn ran. */
            CHECK(ret == 0 || ret == -EBUSY, "aio_work_cancel: %d", ret);
            m->cancel_ret = ret;
        }
        break;
    case 5: {
        int min = take() % 4, max = take() % 5;
        int ret = aio_context_set_thread_pool_params(F.ctx, min, max);
        bool valid = max >= 1 && min <= max;
        CHECK(ret == (valid ? 0 : -EINVAL), "set_thread_pool_params(%d, %d): %d", min, max,
              ret);
        break;
    }
    default:
        /* Drain: what an emulator does before it tears a device down. */
        if (aio_context_in_home_thread(F.ctx) && F.outstanding > 0) {
            alarm(WATCHDOG_S);
            int ret = aio_wait_while(F.ctx, NULL, NULL);
            alarm(0);
            CHECK(ret == -EINVAL, "aio_wait_while(NULL cond): %d", ret);
        }
        break;
    }
}

static bool work_outstanding(void *opaque)
{
    WorkModel *m = opaque;
    return m->outstanding;
}

static void op_wait(uint8_t arg)
{
    WorkModel *m = &F.work[arg % NWORK];
    if (!m->outstanding) {
        return;
    }
    alarm(WATCHDOG_S);
    int ret = aio_wait_while(F.ctx, work_outstanding, m);
    alarm(0);
    if (F.dying) {
        return;
    }
    CHECK(ret == 0, "aio_wait_while: %s", aio_strerror(ret));
    CHECK(!m->outstanding, "aio_wait_while returned with its condition true");
}

static int64_t vnow(void)
{
    return aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
}

static void op_vclock(uint8_t arg)
{
    VTimerModel *m = &F.vt[arg % NVT];
    if (!m->t) {
        m->t = aio_timer_new_on(F.ctx, AIO_CLOCK_VIRTUAL, vtimer_cb, m);
        CHECK(m->t, "aio_timer_new_on(VIRTUAL) failed");
    }
    switch ((arg >> 2) & 7) {
    case 0:
    case 1: {
        uint8_t when = take();
        int64_t now = vnow();
        /* In the past, now, or up to ~1 ms ahead on the virtual clock. */
        m->deadline = when < 16 ? now - when : now + (int64_t)(when - 16) * 4000;
        m->armed = true;
        aio_timer_mod(m->t, m->deadline);
        break;
    }
    case 2:
        aio_timer_del(m->t);
        m->armed = false;
        break;
    case 3:
        aio_virtual_clock_stop();
        break;
    case 4:
        aio_virtual_clock_start();
        break;
    case 5: {
        /* A running clock may pass the target between the read and the
         * set; then, and only then, the set is backwards. */
        int64_t target = vnow() + (int64_t)take() * 4000;
        int ret = aio_virtual_clock_set_ns(target);
        CHECK(ret == 0 || (ret == -EINVAL && vnow() > target),
              "aio_virtual_clock_set_ns forward: %d", ret);
        break;
    }
    case 6: {
        int64_t back = vnow() - 1 - take();
        CHECK(aio_virtual_clock_set_ns(back) == -EINVAL, "set_ns backwards was accepted");
        break;
    }
    default:
        CHECK(aio_timer_pending(m->t) == m->armed, "aio_timer_pending disagrees");
        break;
    }
}

static void op_bh(uint8_t arg)
{
    BhModel *m = &F.bh[arg % NBH];
    m->pending = true;
    aio_bh_schedule(m->bh);
}

/* A blocking poll; with nothing known that will end it, a realtime guard
 * timer bounds it. Outstanding work is known to end it: its completion. */
static void op_poll(void)
{
    if (!aio_context_in_home_thread(F.ctx)) {
        return;
    }
    bool known = F.outstanding > 0;
    for (int i = 0; i <= NBH; i++) {
        known |= F.bh[i].pending;
    }
    if (!known) {
        aio_timer_mod(F.guard, aio_clock_ns() + 100 * 1000);
    }
    int ret = watched_poll();
    if (!F.dying) {
        CHECK(ret >= 0, "aio_poll(true): %s", aio_strerror(ret));
    }
}

/* ---- another thread, while the home thread sleeps ----------------------- */

typedef struct Remote {
    int what;
    int64_t vset;
    unsigned delay_us;
} Remote;

static void *remote_main(void *opaque)
{
    Remote *r = opaque;
    struct timespec ts = {0, (long)r->delay_us * 1000};
    nanosleep(&ts, NULL);
    switch (r->what) {
    case 0:
        aio_notify(F.ctx);
        break;
    case 1:
        aio_bh_schedule(F.bh[NBH].bh);
        break;
    case 2:
        CHECK(aio_virtual_clock_set_ns(r->vset) == 0 || vnow() >= r->vset,
              "remote set_ns failed");
        break;
    default:
        /* Starting the clock past a deadline it already passed while
         * stopped at a set: the stop may have frozen it before. */
        aio_virtual_clock_start();
        CHECK(aio_virtual_clock_set_ns(r->vset) == 0 || vnow() >= r->vset,
              "remote set_ns failed");
        break;
    }
    return NULL;
}

/* The home thread blocks with no guard timer while another thread, a little
 * later, does something that must end the sleep. */
static void op_remote_wake(uint8_t arg)
{
    if (F.depth > 0 || !aio_context_in_home_thread(F.ctx)) {
        return;
    }
    Remote r = {.what = arg % 4, .delay_us = 50 + take() * 2};
    if (r.what >= 2) {
        /* Only a context with an armed VIRTUAL timer is woken by a set. */
        int armed = -1;
        for (int i = 0; i < NVT; i++) {
            if (F.vt[i].armed) {
                armed = i;
            }
        }
        if (armed < 0) {
            r.what = 0;
        } else {
            int64_t d = F.vt[armed].deadline, now = vnow();
            r.vset = d > now ? d : now + 1;
        }
    }
    if (r.what == 1) {
        /* A BH only that thread schedules: ours could run in our poll
         * before its schedule, which would then be a second run. Pending
         * from an earlier remote schedule, it would not end the sleep. */
        if (F.bh[NBH].pending) {
            r.what = 0;
        } else {
            F.bh[NBH].pending = true;
        }
    }
    /* The other thread's reference: a callback of our poll may drop the
     * last one of ours; the context then goes at the unref below. */
    aio_context_ref(F.ctx);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, remote_main, &r) == 0, "pthread_create");
    int ret = watched_poll();
    pthread_join(t, NULL);
    aio_context_unref(F.ctx);
    if (!F.dying) {
        CHECK(ret >= 0, "aio_poll(true): %s", aio_strerror(ret));
    }
}

static void op_misc(uint8_t arg)
{
    switch (arg % 4) {
    case 0:
        if (F.depth > 0) {
            /* The last reference inside a callback, with work maybe queued
             * or running: dropped work never runs, no done runs after it. */
            F.dying = true;
            aio_context_unref(F.ctx);
        }
        break;
    case 1: {
        int ret = aio_poll(F.ctx, false);
        CHECK(ret >= 0, "aio_poll(false): %s", aio_strerror(ret));
        break;
    }
    case 2:
        aio_wait_kick();
        break;
    default: {
        AioContextStats s = {.size = sizeof(s)};
        CHECK(aio_context_get_stats(F.ctx, &s) == 0, "aio_context_get_stats");
        break;
    }
    }
}

static void run_op(void)
{
    if (!alive()) {
        return;
    }
    uint8_t op = take();
    uint8_t arg = take();
    switch (op % 8) {
    case 0:
    case 1:
        op_work(arg);
        break;
    case 2:
        op_wait(arg);
        break;
    case 3:
        op_vclock(arg);
        break;
    case 4:
        op_bh(arg);
        break;
    case 5:
        op_poll();
        break;
    case 6:
        op_remote_wake(arg);
        break;
    default:
        op_misc(arg);
        break;
    }
}

/* ---- one input --------------------------------------------------------------- */

static void finish(void)
{
    if (alive()) {
        /* Every completion must arrive without help: blocking polls with
         * no guard, under the watchdog. */
        while (F.outstanding > 0 && alive()) {
            int ret = watched_poll();
            CHECK(ret >= 0, "draining: aio_poll(true): %s", aio_strerror(ret));
        }
    }
    if (alive()) {
        for (int i = 0; i < NVT; i++) {
            aio_timer_free(F.vt[i].t);
        }
        aio_timer_free(F.guard);
        for (int i = 0; i <= NBH; i++) {
            aio_bh_delete(F.bh[i].bh);
        }
        aio_context_unref(F.ctx);
    }
    /* A dying context was destroyed by the outermost poll on its return,
     * with its timers, BHs and queued work. */
    F.ctx = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGALRM, on_alarm);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    memset(&F, 0, sizeof(F));
    F.data = data;
    F.len = len;
    /* The virtual clock is the process's: each input starts it running. */
    aio_virtual_clock_start();
    F.ctx = aio_context_new();
    CHECK(F.ctx, "aio_context_new failed (AIOPOLL_BACKEND?)");
    F.guard = aio_timer_new(F.ctx, guard_cb, NULL);
    for (int i = 0; i <= NBH; i++) {
        F.bh[i].bh = aio_bh_new(F.ctx, bh_cb, &F.bh[i]);
        CHECK(F.guard && F.bh[i].bh, "setup failed");
    }
    while (F.pos < F.len && alive()) {
        run_op();
    }
    finish();
    return 0;
}
