/* SPDX-License-Identifier: MIT */
/*
 * aiopoll-bench: aiopoll against libevent, libuv, GLib and libev and against
 * the raw system-call floors, in one process run. Each scenario sets up all of its contenders
 * first, then runs them in interleaved batches (the order rotates every
 * repetition), so that frequency scaling, noisy neighbours and cache drift
 * hit every contender alike. Prints median and tail per contender and the
 * ratio aiopoll/peer; --csv writes the same rows for bench/plot.sh.
 *
 *   aiopoll-bench [--quick] [--csv FILE] [--commit ID] [--compare FILE
 *                 [--compare-fail]] [--reps R] [--only LIST] [--pin none]
 *
 * By default threads are pinned (see placement()); --pin none leaves them to
 * the scheduler.
 * LIST is a comma-separated subset of: wakeup, flood, hot, bh, idle, timers,
 * adaptive, crossover, work.
 */
#define _GNU_SOURCE
#include <aiopoll/aio.h>
#include <event2/event.h>
#include <event2/thread.h>

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench-embed.h"
#include "bench-pairs.h"
#include "bench-peers.h"
#include "bench-work.h"
#include "bench-util.h"

static bool quick;
static int reps_opt; /* --reps: repetitions of the round-trip, flood, hot and bh scenarios */

static int nreps(int quick_n, int full_n)
{
    return reps_opt > 0 ? reps_opt : quick ? quick_n : full_n;
}
static bool pin = true; /* --pin none clears it */

/* Places side B: on side A's CPU ("same": a wake-up is a context switch,
 * which measures the software path), or on the other one ("split": needed
 * by busy polling and floods). Without pinning, whether a sleeping thread's
 * CPU is idle (and, in a VM, halted: ~40 us to wake through the hypervisor)
 * decides the result more than the code under test does. */
static void placement(bool split)
{
    if (!pin) {
        bp_cpu_b = -1;
        bp_pin_self(-1);
        return;
    }
    bp_pin_self(0);
    bp_cpu_b = split ? 1 : 0;
    bu_note("placement: side A on CPU 0, side B on CPU %d%s", bp_cpu_b,
            split ? "" : " (same CPU: each wake-up is a context switch)");
}
static const char *csv_path;
static const char *compare_path;
static bool compare_fail;
static const char *commit;
static const char *only;

static bool want(const char *name)
{
    if (!only) {
        return true;
    }
    size_t len = strlen(name);
    for (const char *s = only; (s = strstr(s, name)); s += len) {
        if ((s == only || s[-1] == ',') && (s[len] == ',' || s[len] == '\0')) {
            return true;
        }
    }
    return false;
}

static void header(const char *title, const char *how)
{
    printf("\n== %s\n", title);
    if (how) {
        printf("  # %s\n", how);
    }
    printf("  %-10s %-22s %-24s %14s %14s\n", "param", "variant", "metric", "median", "tail");
    fflush(stdout);
}

/* ---- round trips, interleaved ------------------------------------------------ */

typedef struct contender {
    const char *name;
    bp_pair *pair;
    bu_samples s;
    bu_samples reps; /* median of each repetition's batch: the spread */
    int64_t sc, vcs, ivcs, ops;
    bool counted;    /* system calls counted in its counted batch */
} contender;

/* The counters around one untimed batch: system calls of both threads (perf
 * tracepoint, per thread) and their context switches (/proc). Never open
 * while a batch is timed: with a tracepoint counter attached every system
 * call of the thread takes the kernel's traced entry path, which on the
 * 6.18 Firecracker VM made a same-CPU round trip 45-53 % slower (three runs
 * each: 7.5-8.5 against 5.2-5.5 us) and favoured the contenders that make
 * fewer calls (docs/performance.md). */
typedef struct evidence {
    int fa, fb, tid_b;
    int64_t a0, b0;
    long va, ia, vb, ib;
    bool cs;
} evidence;

static void evidence_begin(evidence *e, bp_pair *p)
{
    e->fa = bu_sc_open();
    e->tid_b = bp_tid_b(p);
    e->fb = e->tid_b > 0 && e->fa >= 0 ? bu_sc_open_tid(e->tid_b) : -1;
    e->cs = e->tid_b > 0 && bu_ctxsw_read(bu_gettid(), &e->va, &e->ia) == 0 &&
            bu_ctxsw_read(e->tid_b, &e->vb, &e->ib) == 0;
    /* A's own reading last, so that nothing of the setup falls inside. */
    e->b0 = bu_sc_read(e->fb);
    e->a0 = bu_sc_read(e->fa);
}

static void evidence_end(evidence *e, contender *x, int ops)
{
    int64_t a1 = bu_sc_read(e->fa), b1 = bu_sc_read(e->fb);
    if (e->a0 >= 0 && a1 >= 0 && e->b0 >= 0 && b1 >= 0) {
        /* The tracepoint fires on entry: a1's own read() is inside A's
         * window, the B readings (A's system calls too) are outside it. */
        x->sc += (a1 - e->a0 - 1) + (b1 - e->b0);
    } else {
        x->counted = false;
    }
    long va, ia, vb, ib;
    if (e->cs && bu_ctxsw_read(bu_gettid(), &va, &ia) == 0 &&
        bu_ctxsw_read(e->tid_b, &vb, &ib) == 0) {
        x->vcs += (va - e->va) + (vb - e->vb);
        x->ivcs += (ia - e->ia) + (ib - e->ib);
    }
    x->ops += ops;
    bu_sc_close(e->fb);
    bu_sc_close(e->fa);
}

/* One batch with the counters on, not timed. */
static void count_batch(contender *x, int per_batch)
{
    bp_batch_begin(x->pair);
    evidence e;
    evidence_begin(&e, x->pair);
    for (int j = 0; j < per_batch; j++) {
        bp_ping(x->pair);
    }
    evidence_end(&e, x, per_batch);
    bp_batch_end(x->pair);
}

static void run_round_trips(contender *c, int nc, int reps, int per_batch)
{
    /* Warm-up: caches, page faults, the adaptive window. Not recorded. */
    for (int i = 0; i < nc; i++) {
        bp_batch_begin(c[i].pair);
        for (int j = 0; j < 200; j++) {
            bp_ping(c[i].pair);
        }
        bp_batch_end(c[i].pair);
        c[i].counted = true;
        count_batch(&c[i], per_batch);
    }
    for (int r = 0; r < reps; r++) {
        for (int k = 0; k < nc; k++) {
            contender *x = &c[(r + k) % nc];
            bp_batch_begin(x->pair);
            size_t first = x->s.n;
            for (int j = 0; j < per_batch; j++) {
                int64_t t0 = bu_now_ns();
                bp_ping(x->pair);
                bu_add(&x->s, (double)(bu_now_ns() - t0));
            }
            bp_batch_end(x->pair);
            bu_add(&x->reps, bu_median_copy(x->s.v + first, x->s.n - first));
        }
    }
}

static void report_round_trips(const char *scen, const char *param, contender *c, int nc)
{
    for (int i = 0; i < nc; i++) {
        bu_extra x = BU_EXTRA_NONE;
        x.reps = &c[i].reps;
        if (c[i].ops) {
            x.syscalls = c[i].counted ? (double)c[i].sc / (double)c[i].ops : NAN;
            x.vcsw = (double)c[i].vcs / (double)c[i].ops;
            x.ivcsw = (double)c[i].ivcs / (double)c[i].ops;
        }
        bu_report_ex(scen, param, c[i].name, "round trip", "ns", false, &c[i].s, &x);
        bu_free(&c[i].s);
        bu_free(&c[i].reps);
    }
    bu_print_ratios(scen, param, "round trip", "aiopoll");
    for (int i = 0; i < nc; i++) {
        bp_free(c[i].pair);
        c[i].pair = NULL;
    }
}

/* Drops the contenders whose constructor declined (a peer this build lacks,
 * or one a scenario leaves out), saying so; returns how many remain. */
static int keep_present(contender *c, int nc, const char *param)
{
    int n = 0;
    for (int i = 0; i < nc; i++) {
        if (c[i].pair) {
            c[n++] = c[i];
        } else {
            bu_note("%s: %s skipped (%s)", param, c[i].name,
                    !strcmp(c[i].name, "libev") && bp_libev_missing() ? bp_libev_missing()
                                                                      : "not run in this scenario");
        }
    }
    return n;
}

static void describe(const contender *c, int nc)
{
    for (int i = 0; i < nc; i++) {
        bu_note("%-14s runs on %s", c[i].name, bp_describe(c[i].pair));
    }
}

static void counted_note(void)
{
    bu_sc_close(bu_sc_open()); /* for bu_sc_method()'s answer */
    bu_note("per round trip, both threads, from one untimed batch: 'sc' system calls (%s), "
            "'cs' voluntary+involuntary context switches (/proc/self/task/*/status); spread = "
            "(max-min)/median of the repetitions' medians",
            bu_sc_method());
}

/* ---- 1. cross-thread wake-up round trip ------------------------------------------ */

static void wakeup_round(const char *param, bool split, bool batch)
{
    struct sched_param sp = {0};
    if (batch && sched_setscheduler(0, SCHED_BATCH, &sp) != 0) {
        bu_note("%s: skipped: sched_setscheduler(SCHED_BATCH) refused (%s)", param,
                strerror(errno));
        return;
    }
    placement(split);
    bp_pair_opts o = {.wake = BP_WAKE_BH};
    /* Every side B is created after the policy change and inherits it
     * (PTHREAD_INHERIT_SCHED, the default). */
    contender c[] = {
        {.name = "aiopoll", .pair = bp_aiopoll_new(&o)},
        {.name = "libevent", .pair = bp_libevent_new(&o)},
        {.name = "libuv", .pair = bp_libuv_new(&o)},
        {.name = "glib", .pair = bp_glib_new(&o)},
        {.name = "libev", .pair = bp_libev_new(&o)},
        {.name = "floor-eventfd", .pair = bp_floor_new(&o)},
        {.name = "floor-futex", .pair = bp_futex_new()},
        {.name = "floor-lazy-efd", .pair = bp_lazy_eventfd_new()},
    };
    int nc = keep_present(c, (int)(sizeof(c) / sizeof(c[0])), param);
    if (batch) {
        for (int i = 0; i < nc; i++) {
            if (sched_getscheduler(bp_tid_b(c[i].pair)) != SCHED_BATCH) {
                bu_note("%s: side B of %s is not SCHED_BATCH", param, c[i].name);
            }
        }
    }
    describe(c, nc);
    /* Split placement wakes an idle vCPU (~50 us): fewer round trips. */
    int reps = nreps(10, 30), per = quick ? 300 : split ? 300 : 1000;
    run_round_trips(c, nc, reps, per);
    report_round_trips("wakeup", param, c, nc);
    if (batch) {
        sched_setscheduler(0, SCHED_OTHER, &sp);
    }
}

static void scen_wakeup(void)
{
    header("1. cross-thread wake-up round trip",
           "two threads each blocked in its own loop wake each other: aiopoll "
           "aio_bh_schedule across contexts, libevent event_active (evthread_use_pthreads), "
           "libuv uv_async_send, GLib g_main_context_invoke (its wakeup), libev ev_async_send; "
           "floors: eventfd write + ppoll + read always, a futex word and an eventfd written "
           "only to a sleeper that announced itself");
    counted_note();
    wakeup_round("same-CPU", false, false);
    wakeup_round("split-CPU", true, false);
    wakeup_round("same-batch", false, true);
}

/* A row whose samples are one per repetition (rates of whole slices, the hot
 * paths' per-repetition averages): the samples are their own spread. */
static void report_reps(const char *scen, const char *param, const char *variant,
                        const char *metric, const char *unit, bool higher_better, bu_samples *s)
{
    bu_extra x = BU_EXTRA_NONE;
    x.reps = s;
    bu_report_ex(scen, param, variant, metric, unit, higher_better, s, &x);
}

/* ---- 2. notify flood ---------------------------------------------------------------- */

typedef enum flood_kind { FL_NOTIFY, FL_BH, FL_LIBEVENT, FL_FLOOR, FL_PEER } flood_kind;

typedef struct flood {
    flood_kind kind;
    const char *name;
    pthread_t th;
    atomic_bool stop;
    atomic_ullong dispatches; /* callbacks run (BH, event) or eventfd reads */
    atomic_ullong loops;      /* loop iterations of side B */
    AioContext *ctx;
    AioBH *bh;
    struct event_base *base;
    struct event *ev;
    int efd;
    bp_pair *(*peer_new)(const bp_pair_opts *o); /* FL_PEER, in flood mode */
    bp_pair *peer;
    bu_samples calls, disp, sc;
} flood;

static void fl_bh_cb(void *op)
{
    flood *f = op;
    atomic_fetch_add_explicit(&f->dispatches, 1, memory_order_relaxed);
}

static void fl_ev_cb(evutil_socket_t fd, short what, void *op)
{
    (void)fd, (void)what;
    flood *f = op;
    atomic_fetch_add_explicit(&f->dispatches, 1, memory_order_relaxed);
}

static void *fl_thread(void *op)
{
    flood *f = op;
    switch (f->kind) {
    case FL_NOTIFY:
    case FL_BH:
        aio_context_set_home_thread(f->ctx);
        while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
            aio_poll(f->ctx, true);
            atomic_fetch_add_explicit(&f->loops, 1, memory_order_relaxed);
        }
        break;
    case FL_LIBEVENT:
        event_base_loop(f->base, EVLOOP_NO_EXIT_ON_EMPTY);
        break;
    case FL_PEER: /* runs its own thread */
        break;
    case FL_FLOOR:
        for (;;) {
            struct pollfd pf = {.fd = f->efd, .events = POLLIN};
            ppoll(&pf, 1, NULL, NULL);
            uint64_t v;
            if (read(f->efd, &v, sizeof(v)) == sizeof(v)) {
                atomic_fetch_add_explicit(&f->dispatches, 1, memory_order_relaxed);
            }
            if (atomic_load_explicit(&f->stop, memory_order_relaxed)) {
                break;
            }
        }
        break;
    }
    return NULL;
}

static void flood_start(flood *f)
{
    switch (f->kind) {
    case FL_NOTIFY:
    case FL_BH:
        f->ctx = aio_context_new();
        f->bh = aio_bh_new(f->ctx, fl_bh_cb, f);
        break;
    case FL_LIBEVENT:
        f->base = event_base_new();
        f->ev = event_new(f->base, -1, EV_PERSIST, fl_ev_cb, f);
        break;
    case FL_FLOOR:
        f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        break;
    case FL_PEER:
        /* The pair runs (and pins) its own side B. */
        f->peer = f->peer_new(&(bp_pair_opts){.wake = BP_WAKE_BH, .flood = &f->dispatches});
        return;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (bp_cpu_b >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(bp_cpu_b, &set);
        pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
    }
    pthread_create(&f->th, &attr, fl_thread, f);
    pthread_attr_destroy(&attr);
}

static void flood_stop(flood *f)
{
    atomic_store(&f->stop, true);
    static const uint64_t one = 1;
    switch (f->kind) {
    case FL_NOTIFY:
    case FL_BH:
        aio_notify(f->ctx);
        pthread_join(f->th, NULL);
        aio_context_unref(f->ctx);
        break;
    case FL_LIBEVENT:
        event_base_loopbreak(f->base);
        pthread_join(f->th, NULL);
        event_free(f->ev);
        event_base_free(f->base);
        break;
    case FL_FLOOR:
        (void)!write(f->efd, &one, sizeof(one));
        pthread_join(f->th, NULL);
        close(f->efd);
        break;
    case FL_PEER:
        bp_free(f->peer);
        break;
    }
}

static bool flood_live(const flood *f)
{
    return f->kind != FL_PEER || f->peer;
}

/* A timed slice (scfd < 0: no counter attached, see evidence above), or a
 * counted one that records only the system calls. */
static void flood_slice(flood *f, int64_t slice_ns, int scfd)
{
    static const uint64_t one = 1;
    uint64_t calls = 0;
    /* aio_notify has no callback: count side B's loop iterations. */
    atomic_ullong *counter = f->kind == FL_NOTIFY ? &f->loops : &f->dispatches;
    unsigned long long d0 = atomic_load(counter);
    int64_t sc0 = bu_sc_read(scfd);
    int64_t t0 = bu_now_ns(), t1;
    for (;;) {
        for (int i = 0; i < 256; i++) {
            switch (f->kind) {
            case FL_NOTIFY:
                aio_notify(f->ctx);
                break;
            case FL_BH:
                aio_bh_schedule(f->bh);
                break;
            case FL_LIBEVENT:
                event_active(f->ev, EV_READ, 0);
                break;
            case FL_FLOOR:
                (void)!write(f->efd, &one, sizeof(one));
                break;
            case FL_PEER:
                bp_ping(f->peer);
                break;
            }
        }
        calls += 256;
        t1 = bu_now_ns();
        if (t1 - t0 >= slice_ns) {
            break;
        }
    }
    int64_t sc1 = bu_sc_read(scfd);
    unsigned long long d1 = atomic_load(counter);
    double secs = (double)(t1 - t0) / 1e9;
    if (scfd < 0) {
        bu_add(&f->calls, (double)calls / secs);
        bu_add(&f->disp, (double)(d1 - d0) / secs);
    } else if (sc0 >= 0 && sc1 >= 0) {
        /* minus the one read() of the counter that falls inside */
        bu_add(&f->sc, (double)(sc1 - sc0 - 1) * 1000.0 / (double)calls);
    }
}

static void scen_flood(void)
{
    header("2. notify flood (one thread notifies as fast as it can while the loop runs)",
           NULL);
    placement(true);
    bu_sc_close(bu_sc_open()); /* for bu_sc_method()'s answer */
    bu_note("system calls of the notifying thread counted with: %s, in one untimed slice",
            bu_sc_method());
    bu_note("aio_notify has nothing to dispatch: its 'dispatches' are loop iterations");
    bu_note("libuv, GLib and libev are called through one indirect call (bp_ping), ~1 ns");
    bu_note("GLib's g_main_context_wakeup has nothing to dispatch either: loop iterations");
    flood f[] = {
        {.kind = FL_NOTIFY, .name = "aiopoll aio_notify"},
        {.kind = FL_BH, .name = "aiopoll aio_bh_schedule"},
        {.kind = FL_LIBEVENT, .name = "libevent event_active"},
        {.kind = FL_PEER, .name = "libuv uv_async_send", .peer_new = bp_libuv_new},
        {.kind = FL_PEER, .name = "glib wakeup", .peer_new = bp_glib_new},
        {.kind = FL_PEER, .name = "libev ev_async_send", .peer_new = bp_libev_new},
        {.kind = FL_FLOOR, .name = "floor eventfd write"},
    };
    int nf = (int)(sizeof(f) / sizeof(f[0]));
    for (int i = 0; i < nf; i++) {
        flood_start(&f[i]);
    }
    /* A peer this build lacks stays in the array (the running side B
     * threads hold pointers into it) and is skipped. */
    for (int i = 0; i < nf; i++) {
        if (!flood_live(&f[i])) {
            bu_note("%s skipped (%s)", f[i].name, bp_libev_missing());
        }
    }
    int reps = nreps(5, 15);
    int64_t slice = (quick ? 40 : 150) * 1000000LL;
    for (int r = 0; r < reps; r++) {
        for (int k = 0; k < nf; k++) {
            flood *x = &f[(r + k) % nf];
            if (flood_live(x)) {
                flood_slice(x, slice, -1);
            }
        }
    }
    for (int i = 0; i < nf; i++) {
        int scfd = flood_live(&f[i]) ? bu_sc_open() : -1;
        if (scfd >= 0) {
            flood_slice(&f[i], slice / 4, scfd);
            bu_sc_close(scfd);
        }
    }
    for (int i = 0; i < nf; i++) {
        if (flood_live(&f[i])) {
            flood_stop(&f[i]);
        }
    }
    for (int i = 0; i < nf; i++) {
        if (!flood_live(&f[i])) {
            continue;
        }
        report_reps("flood", "-", f[i].name, "calls/s", "/s", true, &f[i].calls);
        report_reps("flood", "-", f[i].name, "dispatches/s", "/s", true, &f[i].disp);
        if (f[i].sc.n) {
            bu_report("flood", "-", f[i].name, "syscalls/1000 calls", "", false, &f[i].sc);
        }
        bu_free(&f[i].calls);
        bu_free(&f[i].disp);
        bu_free(&f[i].sc);
    }
    bu_print_ratios("flood", "-", "calls/s", "aiopoll aio_notify");
    bu_print_ratios("flood", "-", "calls/s", "aiopoll aio_bh_schedule");
}

/* ---- D. hot paths, single thread, nobody polling ---------------------------------- */

static void nop_bh(void *op)
{
    (void)op;
}

static void scen_hot(void)
{
    header("D. hot paths (one thread, no poller asleep)",
           "ns of the thread's CPU time per call (other processes' load does not count); "
           "system calls per call counted on the calling thread");
    int scfd = bu_sc_open();
    bu_note("system calls counted with: %s", bu_sc_method());
    AioContext *ctx = aio_context_new();
    enum { NBH = 64 };
    AioBH *bhs[NBH];
    for (int i = 0; i < NBH; i++) {
        bhs[i] = aio_bh_new(ctx, nop_bh, NULL);
    }
    const long n = quick ? 2000000 : 10000000;
    int reps = nreps(5, 15);
    bu_samples s_notify = {0}, s_resched = {0}, s_disp = {0}, s_pollb = {0};
    int64_t sc_notify = 0, sc_resched = 0, sc_disp = 0, sc_pollb = 0;
    long ops_notify = 0, ops_resched = 0, ops_disp = 0, ops_pollb = 0;
    for (int r = 0; r < reps; r++) {
        /* aio_notify, nobody blocked */
        int64_t t0 = bu_cpu_ns(), c0 = bu_sc_read(scfd);
        for (long i = 0; i < n; i++) {
            aio_notify(ctx);
        }
        int64_t c1 = bu_sc_read(scfd), t1 = bu_cpu_ns();
        bu_add(&s_notify, (double)(t1 - t0) / (double)n);
        sc_notify += c1 - c0 - 1;
        ops_notify += n;

        /* aio_bh_schedule of a BH that is already pending */
        aio_bh_schedule(bhs[0]);
        t0 = bu_cpu_ns(), c0 = bu_sc_read(scfd);
        for (long i = 0; i < n; i++) {
            aio_bh_schedule(bhs[0]);
        }
        c1 = bu_sc_read(scfd), t1 = bu_cpu_ns();
        bu_add(&s_resched, (double)(t1 - t0) / (double)n);
        sc_resched += c1 - c0 - 1;
        ops_resched += n;
        while (aio_poll(ctx, false) > 0) {
        }

        /* schedule 64 BHs and dispatch them with a non-blocking poll */
        long rounds = n / NBH / 4;
        t0 = bu_cpu_ns(), c0 = bu_sc_read(scfd);
        for (long i = 0; i < rounds; i++) {
            for (int j = 0; j < NBH; j++) {
                aio_bh_schedule(bhs[j]);
            }
            aio_poll(ctx, false);
        }
        c1 = bu_sc_read(scfd), t1 = bu_cpu_ns();
        bu_add(&s_disp, (double)(t1 - t0) / (double)(rounds * NBH));
        sc_disp += c1 - c0 - 1;
        ops_disp += rounds * NBH;

        /* a blocking poll with a BH pending never sleeps */
        rounds = n / 64;
        t0 = bu_cpu_ns(), c0 = bu_sc_read(scfd);
        for (long i = 0; i < rounds; i++) {
            aio_bh_schedule(bhs[0]);
            aio_poll(ctx, true);
        }
        c1 = bu_sc_read(scfd), t1 = bu_cpu_ns();
        bu_add(&s_pollb, (double)(t1 - t0) / (double)rounds);
        sc_pollb += c1 - c0 - 1;
        ops_pollb += rounds;
    }
    report_reps("hot", "-", "aio_notify", "time/call", "ns", false, &s_notify);
    report_reps("hot", "-", "bh_schedule(pending)", "time/call", "ns", false, &s_resched);
    report_reps("hot", "-", "bh 64x sched+dispatch", "time/BH", "ns", false, &s_disp);
    report_reps("hot", "-", "bh sched+poll(true)", "time/round", "ns", false, &s_pollb);
    if (scfd >= 0) {
        bu_report_value("hot", "-", "aio_notify", "syscalls/call", "",
                        (double)sc_notify / (double)ops_notify);
        bu_report_value("hot", "-", "bh_schedule(pending)", "syscalls/call", "",
                        (double)sc_resched / (double)ops_resched);
        bu_report_value("hot", "-", "bh 64x sched+dispatch", "syscalls/BH", "",
                        (double)sc_disp / (double)ops_disp);
        bu_report_value("hot", "-", "bh sched+poll(true)", "syscalls/round", "",
                        (double)sc_pollb / (double)ops_pollb);
    }
    bu_note("locks: aio_notify, aio_bh_schedule and the BH dispatch loop take none "
            "(atomics only); aio_poll itself takes uncontended mutexes around them "
            "(dispatch right, source list), which cost no system call");
    bu_free(&s_notify);
    bu_free(&s_resched);
    bu_free(&s_disp);
    bu_free(&s_pollb);
    aio_context_unref(ctx);
    bu_sc_close(scfd);
}

/* ---- 3. bottom-half throughput, one thread ------------------------------------------ */

static void lev_nop(evutil_socket_t fd, short what, void *op)
{
    (void)fd, (void)what, (void)op;
}

static void scen_bh(void)
{
    header("3. bottom-half throughput on one thread (schedule + dispatch)",
           "aiopoll: aio_bh_schedule x K + aio_poll(ctx, false); libevent: event_active x K "
           "+ event_base_loop(EVLOOP_NONBLOCK); ops/s = callbacks run per second of the "
           "thread's CPU time");
    AioContext *ctx = aio_context_new();
    struct event_base *base = event_base_new();
    enum { K = 64 };
    AioBH *bhs[K];
    struct event *evs[K];
    for (int i = 0; i < K; i++) {
        bhs[i] = aio_bh_new(ctx, nop_bh, NULL);
        evs[i] = event_new(base, -1, 0, lev_nop, NULL);
    }
    static const int ks[] = {1, K};
    int reps = nreps(8, 30);
    long ops_per_sample = quick ? 20000 : 100000;
    for (size_t ki = 0; ki < 2; ki++) {
        int k = ks[ki];
        bu_samples sa = {0}, sl = {0};
        long rounds = ops_per_sample / k;
        for (int r = 0; r < reps; r++) {
            for (int v = 0; v < 2; v++) {
                int which = (r + v) % 2;
                int64_t t0 = bu_cpu_ns();
                if (which == 0) {
                    for (long i = 0; i < rounds; i++) {
                        for (int j = 0; j < k; j++) {
                            aio_bh_schedule(bhs[j]);
                        }
                        aio_poll(ctx, false);
                    }
                } else {
                    for (long i = 0; i < rounds; i++) {
                        for (int j = 0; j < k; j++) {
                            event_active(evs[j], EV_READ, 0);
                        }
                        event_base_loop(base, EVLOOP_NONBLOCK);
                    }
                }
                double secs = (double)(bu_cpu_ns() - t0) / 1e9;
                bu_add(which == 0 ? &sa : &sl, (double)(rounds * k) / secs);
            }
        }
        char param[16];
        snprintf(param, sizeof(param), "K=%d", k);
        report_reps("bh", param, "aiopoll", "ops/s", "/s", true, &sa);
        report_reps("bh", param, "libevent", "ops/s", "/s", true, &sl);
        bu_print_ratios("bh", param, "ops/s", "aiopoll");
        bu_free(&sa);
        bu_free(&sl);
    }
    for (int i = 0; i < K; i++) {
        event_free(evs[i]);
    }
    event_base_free(base);
    aio_context_unref(ctx);
}

/* ---- 4. idle descriptors ----------------------------------------------------------- */

static void scen_idle(void)
{
    header("4. round trip with N idle descriptors registered in the woken loop",
           "pipe ping-pong between two loops; aiopoll default backend (auto-switching), "
           "libevent (epoll), libuv uv_poll_t, GLib g_unix_fd_source_new, libev ev_io; floors: "
           "raw epoll_wait and raw ppoll over the same descriptors");
    counted_note();
    placement(false);
    static const size_t ns[] = {1, 64, 1024, 10000};
    for (size_t ni = 0; ni < sizeof(ns) / sizeof(ns[0]); ni++) {
        size_t n = ns[ni];
        bp_idle idle;
        if (bp_idle_open(&idle, n) != 0) {
            bu_note("N=%zu: cannot open the descriptors (%s), skipped", n, strerror(errno));
            bp_idle_close(&idle);
            continue;
        }
        bp_pair_opts o = {.wake = BP_WAKE_FD, .idle = &idle};
        bp_pair_opts op = o;
        op.floor_ppoll = true;
        char param[16];
        snprintf(param, sizeof(param), "N=%zu", n);
        contender c[] = {
            {.name = "aiopoll", .pair = bp_aiopoll_new(&o)},
            {.name = "libevent", .pair = bp_libevent_new(&o)},
            {.name = "libuv", .pair = bp_libuv_new(&o)},
            /* GLib polls every descriptor on every wait (poll(2)): at
             * N=10000 that is ~0.5 ms a round trip, the ppoll floor's. */
            {.name = "glib", .pair = n <= 1024 ? bp_glib_new(&o) : NULL},
            {.name = "libev", .pair = bp_libev_new(&o)},
            {.name = "floor-epoll", .pair = bp_floor_new(&o)},
            {.name = "floor-ppoll", .pair = bp_floor_new(&op)},
        };
        int nc = keep_present(c, (int)(sizeof(c) / sizeof(c[0])), param);
        bu_note("%s: aiopoll runs on \"%s\"%s", param, bp_describe(c[0].pair),
                idle.both_ends ? "; both ends of each pipe registered (RLIMIT_NOFILE)" : "");
        if (idle.n != n) {
            bu_note("%s: only %zu descriptors fit in RLIMIT_NOFILE (each registration "
                    "also holds aiopoll's duplicate)", param, idle.n);
        }
        int per = quick ? 100 : 500, reps = nreps(5, 20);
        if (n >= 10000) {
            per /= 5;
        }
        run_round_trips(c, nc, reps, per);
        report_round_trips("idle", param, c, nc);
        bp_idle_close(&idle);
    }
    double r1 = bu_median_of("idle", "N=1", "aiopoll", "round trip");
    double r1024 = bu_median_of("idle", "N=1024", "aiopoll", "round trip");
    double r10k = bu_median_of("idle", "N=10000", "aiopoll", "round trip");
    bu_note("aiopoll N=1024 / N=1: %.2fx, N=10000 / N=1: %.2fx", r1024 / r1, r10k / r1);
}

/* ---- 7. ppoll/epoll crossover (the switch threshold) -------------------------------- */

/* ns per add+remove of fd's handler in ctx, optionally each followed by a
 * non-blocking poll (which rebuilds the snapshot the change made stale). */
static double time_add_remove(AioContext *ctx, aio_fd_t fd, int per, bool poll)
{
    int64_t t0 = bu_now_ns();
    for (int i = 0; i < per; i++) {
        aio_set_fd_handler(ctx, fd, false, nop_bh, NULL, NULL, NULL);
        aio_set_fd_handler(ctx, fd, false, NULL, NULL, NULL, NULL);
        if (poll) {
            aio_poll(ctx, false);
        }
    }
    return (double)(bu_now_ns() - t0) / per;
}

/* One registration changed while 1024 others stay (the default backend,
 * on epoll past its threshold): finding the registration is O(1) (the
 * source index), the next poll's snapshot walks every source. */
static void register_among_many(void)
{
    enum { OTHERS = 1024 };
    bp_idle idle;
    if (bp_idle_open(&idle, OTHERS + 1) != 0) {
        bu_note("register among %d: skipped (RLIMIT_NOFILE)", OTHERS);
        bp_idle_close(&idle);
        return;
    }
    AioContext *ctx = aio_context_new();
    for (int i = 1; i <= OTHERS; i++) {
        aio_set_fd_handler(ctx, idle.fds[i], false, nop_bh, NULL, NULL, NULL);
    }
    bu_samples s_reg = {0}, s_poll = {0};
    int reps = quick ? 5 : 15, per = 500;
    for (int r = 0; r < reps; r++) {
        bu_add(&s_reg, time_add_remove(ctx, idle.fds[0], per, false));
        bu_add(&s_poll, time_add_remove(ctx, idle.fds[0], per, true));
    }
    bu_report("crossover", "register-1024", "aiopoll", "add+remove handler", "ns", false, &s_reg);
    bu_report("crossover", "register-1024", "aiopoll", "add+remove+poll(false)", "ns", false,
              &s_poll);
    bu_free(&s_reg);
    bu_free(&s_poll);
    aio_context_unref(ctx);
    bp_idle_close(&idle);
}

static void scen_crossover(void)
{
    header("7. ppoll vs epoll crossover (sets the eventfd+ppoll -> epoll switch threshold)",
           "aiopoll pipe round trip, N idle descriptors; 'aiopoll-ppoll' has the switch "
           "disabled (AIOPOLL_EPOLL_THRESHOLD=off), 'aiopoll-epoll' is AIOPOLL_BACKEND=epoll");
    placement(false);
    static const size_t ns_full[] = {1, 8, 16, 24, 32, 48, 64, 128, 256};
    static const size_t ns_quick[] = {1, 32, 128};
    const size_t *ns = quick ? ns_quick : ns_full;
    size_t count = quick ? 3 : sizeof(ns_full) / sizeof(ns_full[0]);
    for (size_t ni = 0; ni < count; ni++) {
        bp_idle idle;
        if (bp_idle_open(&idle, ns[ni]) != 0) {
            bp_idle_close(&idle);
            continue;
        }
        bp_pair_opts pp = {.wake = BP_WAKE_FD, .idle = &idle, .threshold = "off"};
        bp_pair_opts ep = {.wake = BP_WAKE_FD, .idle = &idle, .backend = "epoll"};
        contender c[] = {
            {.name = "aiopoll-ppoll", .pair = bp_aiopoll_new(&pp)},
            {.name = "aiopoll-epoll", .pair = bp_aiopoll_new(&ep)},
        };
        run_round_trips(c, 2, quick ? 5 : 15, quick ? 100 : 400);
        char param[16];
        snprintf(param, sizeof(param), "N=%zu", ns[ni]);
        for (int i = 0; i < 2; i++) {
            bu_report("crossover", param, c[i].name, "round trip", "ns", false, &c[i].s);
            bu_free(&c[i].s);
            bp_free(c[i].pair);
        }
        bp_idle_close(&idle);
    }
    /* What the switch costs in the other direction: registration. */
    bu_samples sp = {0}, se = {0};
    bp_idle idle;
    bp_idle_open(&idle, 1);
    int reps = quick ? 5 : 15, per = 2000;
    for (int r = 0; r < reps; r++) {
        for (int v = 0; v < 2; v++) {
            int which = (r + v) % 2;
            if (which == 0) {
                setenv("AIOPOLL_EPOLL_THRESHOLD", "off", 1);
            } else {
                setenv("AIOPOLL_BACKEND", "epoll", 1);
            }
            AioContext *ctx = aio_context_new();
            unsetenv("AIOPOLL_EPOLL_THRESHOLD");
            unsetenv("AIOPOLL_BACKEND");
            bu_add(which == 0 ? &sp : &se, time_add_remove(ctx, idle.fds[0], per, false));
            aio_context_unref(ctx);
        }
    }
    bu_report("crossover", "register", "aiopoll-ppoll", "add+remove handler", "ns", false, &sp);
    bu_report("crossover", "register", "aiopoll-epoll", "add+remove handler", "ns", false, &se);
    bu_free(&sp);
    bu_free(&se);
    bp_idle_close(&idle);
    register_among_many();
}

/* ---- 5. timers ------------------------------------------------------------------------ */

static void timer_cb(void *op)
{
    (void)op;
}

static void lev_timer_cb(evutil_socket_t fd, short what, void *op)
{
    (void)fd, (void)what, (void)op;
}

static void scen_timers(void)
{
    enum { NT = 100000, NPOLL = 1000 };
    header("5. timers: 100000 armed timers",
           "arm = aio_timer_mod / evtimer_add, cancel = aio_timer_del / evtimer_del, "
           "deadlines random in [1 h, 2 h]; poll = aio_poll(ctx, false) / "
           "event_base_loop(EVLOOP_NONBLOCK) with them pending");
    AioContext *ctx = aio_context_new();
    struct event_base *base = event_base_new();
    AioTimer **at = malloc(NT * sizeof(*at));
    struct event **et = malloc(NT * sizeof(*et));
    int64_t *dl = malloc(NT * sizeof(*dl));
    uint32_t seed = 12345;
    for (int i = 0; i < NT; i++) {
        at[i] = aio_timer_new(ctx, timer_cb, NULL);
        et[i] = evtimer_new(base, lev_timer_cb, NULL);
        seed = seed * 1664525u + 1013904223u;
        dl[i] = 3600LL * 1000000000 + (int64_t)(seed % 3600000000u) * 1000;
    }
    bu_samples s[2][3] = {{{0}}};
    int reps = quick ? 3 : 10;
    for (int r = 0; r < reps; r++) {
        for (int v = 0; v < 2; v++) {
            int which = (r + v) % 2;
            int64_t now = aio_clock_ns();
            int64_t t0 = bu_now_ns();
            if (which == 0) {
                for (int i = 0; i < NT; i++) {
                    aio_timer_mod(at[i], now + dl[i]);
                }
            } else {
                for (int i = 0; i < NT; i++) {
                    struct timeval tv = {.tv_sec = (time_t)(dl[i] / 1000000000),
                                         .tv_usec = (suseconds_t)(dl[i] % 1000000000 / 1000)};
                    evtimer_add(et[i], &tv);
                }
            }
            int64_t t1 = bu_now_ns();
            for (int i = 0; i < NPOLL; i++) {
                if (which == 0) {
                    aio_poll(ctx, false);
                } else {
                    event_base_loop(base, EVLOOP_NONBLOCK);
                }
            }
            int64_t t2 = bu_now_ns();
            if (which == 0) {
                for (int i = 0; i < NT; i++) {
                    aio_timer_del(at[i]);
                }
            } else {
                for (int i = 0; i < NT; i++) {
                    evtimer_del(et[i]);
                }
            }
            int64_t t3 = bu_now_ns();
            bu_add(&s[which][0], (double)(t1 - t0) / NT);
            bu_add(&s[which][1], (double)(t3 - t2) / NT);
            bu_add(&s[which][2], (double)(t2 - t1) / NPOLL);
        }
    }
    /* No commas in names: the CSV has no quoting. */
    static const char *metric[] = {"arm", "cancel", "poll with timers pending"};
    for (int m = 0; m < 3; m++) {
        bu_report("timers", "N=100000", "aiopoll", metric[m], "ns", false, &s[0][m]);
        bu_report("timers", "N=100000", "libevent", metric[m], "ns", false, &s[1][m]);
        bu_print_ratios("timers", "N=100000", metric[m], "aiopoll");
        bu_free(&s[0][m]);
        bu_free(&s[1][m]);
    }
    bu_note("libevent's non-blocking loop makes an epoll_wait(0) call each time; aiopoll's "
            "non-blocking poll of a context without descriptors makes none");
    for (int i = 0; i < NT; i++) {
        aio_timer_free(at[i]);
        event_free(et[i]);
    }
    free(at);
    free(et);
    free(dl);
    event_base_free(base);
    aio_context_unref(ctx);
}

/* ---- 6. adaptive polling --------------------------------------------------------------- */

static void scen_adaptive(void)
{
    header("6. adaptive polling: cross-thread BH round trip",
           "aiopoll with aio_context_set_poll_params(ctx, 64 us, 0, 0) on both contexts, "
           "vs the same without polling, vs two threads spinning on an atomic");
    placement(true);
    bp_pair_opts off = {.wake = BP_WAKE_BH};
    bp_pair_opts on = {.wake = BP_WAKE_BH, .poll_max_ns = 64000};
    contender c[] = {
        {.name = "aiopoll", .pair = bp_aiopoll_new(&on)},
        {.name = "aiopoll-sleeping", .pair = bp_aiopoll_new(&off)},
        {.name = "floor-spin", .pair = bp_spin_new()},
    };
    run_round_trips(c, 3, quick ? 10 : 40, quick ? 300 : 1000);
    report_round_trips("adaptive", "-", c, 3);
}

/* ---- issue 12's targets ------------------------------------------------------------- */

/* One target: the ratio aiopoll/peer of two reported medians against a
 * bound (at most for latencies, at least for rates). */
static int target(const char *what, const char *scen, const char *param, const char *metric,
                  const char *ours, const char *peer, bool at_least, double bound)
{
    double a = bu_median_of(scen, param, ours, metric);
    double b = bu_median_of(scen, param, peer, metric);
    double r = a / b;
    if (isnan(r)) {
        printf("  %-48s %s %.2fx  n/a (not run)\n", what, at_least ? ">=" : "<=", bound);
        return 0;
    }
    bool met = at_least ? r >= bound : r <= bound;
    printf("  %-48s %s %.2fx  measured %.2fx  %s\n", what, at_least ? ">=" : "<=", bound, r,
           met ? "met" : "NOT MET");
    return !met;
}

static void print_targets(void)
{
    printf("\n== targets (issue 12; medians of this run, aiopoll/peer)\n");
    int missed = 0;
    missed += target("same-CPU round trip / futex floor", "wakeup", "same-CPU", "round trip",
                     "aiopoll", "floor-futex", false, 1.0);
    missed += target("same-CPU round trip / lazy-eventfd floor", "wakeup", "same-CPU",
                     "round trip", "aiopoll", "floor-lazy-efd", false, 0.9);
    missed += target("SCHED_BATCH round trip / eventfd+ppoll floor", "wakeup", "same-batch",
                     "round trip", "aiopoll", "floor-eventfd", false, 0.9);
    static const char *ns[] = {"N=1", "N=64", "N=1024"};
    for (int i = 0; i < 3; i++) {
        char what[64];
        snprintf(what, sizeof(what), "descriptor round trip %s / libevent", ns[i]);
        missed += target(what, "idle", ns[i], "round trip", "aiopoll", "libevent", false, 0.90);
    }
    missed += target("BH throughput K=1 / libevent", "bh", "K=1", "ops/s", "aiopoll", "libevent",
                     true, 5.0);
    missed += target("BH throughput K=64 / libevent", "bh", "K=64", "ops/s", "aiopoll",
                     "libevent", true, 3.0);
    missed += target("notify flood calls/s / libuv uv_async_send", "flood", "-", "calls/s",
                     "aiopoll aio_notify", "libuv uv_async_send", true, 1.0);
    double da = bu_median_of("flood", "-", "aiopoll aio_notify", "dispatches/s");
    double du = bu_median_of("flood", "-", "libuv uv_async_send", "dispatches/s");
    if (!isnan(da / du)) {
        printf("  %-48s %.3g M/s vs %.3g M/s (%.2fx)\n",
               "  dispatched: loop iterations vs callbacks run", da / 1e6, du / 1e6, da / du);
    }
    printf("  %d target(s) not met (a benchmark reports; it does not fail on them)\n", missed);
}

/* ---- main ----------------------------------------------------------------------------- */

/* The machine's load: the numbers mean little if other work shares the CPUs
 * (busy polling suffers most), so every run says what it ran next to. */
static void print_load(const char *when)
{
    char buf[128] = "unknown";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(buf, sizeof(buf), f)) {
            snprintf(buf, sizeof(buf), "unknown");
        }
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    printf("load average %s: %s\n", when, buf);
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--quick] [--csv FILE] [--commit ID] [--compare FILE [--compare-fail]]\n"
            "          [--reps R] [--only LIST] [--pin none]\n"
            "  --reps R: interleaved repetitions per contender (the spread's sample)\n"
            "  --csv appends this run's rows, labelled with --commit (default: $AIOPOLL_COMMIT,\n"
            "  else 'unknown') and this machine; --compare prints each row's change against\n"
            "  the newest row of the same key measured on this machine in FILE; --compare-fail\n"
            "  exits 3 when an aiopoll hot-path row got worse by more than this run's spread\n"
            "  LIST: comma-separated subset of wakeup,flood,hot,bh,idle,timers,adaptive,"
            "crossover,work,embed\n",
            argv0);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = true;
        } else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
            csv_path = argv[++i];
        } else if (!strcmp(argv[i], "--commit") && i + 1 < argc) {
            commit = argv[++i];
        } else if (!strcmp(argv[i], "--compare") && i + 1 < argc) {
            compare_path = argv[++i];
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps_opt = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--compare-fail")) {
            compare_fail = true;
        } else if (!strcmp(argv[i], "--pin") && i + 1 < argc) {
            pin = strcmp(argv[++i], "none") != 0;
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else {
            usage(argv[0]);
            return 2;
        }
    }
    /* Before any event base exists: libevent's cross-thread activation. */
    evthread_use_pthreads();

    struct utsname u;
    uname(&u);
    printf("aiopoll-bench: aiopoll %s, libevent %s, %s %s, %ld CPUs%s\n", aiopoll_version(),
           event_get_version(), u.sysname, u.release, sysconf(_SC_NPROCESSORS_ONLN),
           quick ? ", --quick" : "");
    printf("machine: %s\n", bu_machine());
    printf("latencies: median and 99th percentile; rates: median and 1st percentile "
           "(the slow tail). Contenders run in interleaved batches.\n");
    print_load("at start");
    fflush(stdout);

    int64_t t0 = bu_now_ns();
    if (want("wakeup")) {
        scen_wakeup();
    }
    if (want("flood")) {
        scen_flood();
    }
    if (want("hot")) {
        scen_hot();
    }
    if (want("bh")) {
        scen_bh();
    }
    if (want("idle")) {
        scen_idle();
    }
    if (want("timers")) {
        scen_timers();
    }
    if (want("adaptive")) {
        scen_adaptive();
    }
    if (want("crossover")) {
        scen_crossover();
    }
    if (want("work")) {
        bench_work(quick);
    }
    if (want("embed")) {
        header("9. embedded round trip",
               "side B is a context embedded in a host loop, or the host loop woken by its own "
               "cross-thread primitive, or aiopoll's aio_poll; the way back is an aiopoll BH");
        placement(false);
        bench_scen_embed(quick);
    }
    print_targets();
    printf("\ntotal time %.1f s\n", (double)(bu_now_ns() - t0) / 1e9);
    print_load("at end");
    int status = 0;
    if (compare_path) {
        int regressed = bu_compare(compare_path, quick ? "quick" : "full");
        if (regressed < 0) {
            fprintf(stderr, "reading %s: %s\n", compare_path, strerror(-regressed));
            return 1;
        }
        status = compare_fail && regressed > 0 ? 3 : 0;
    }
    if (csv_path) {
        if (!commit) {
            commit = getenv("AIOPOLL_COMMIT");
        }
        int err = bu_write_csv(csv_path, commit && *commit ? commit : "unknown",
                               quick ? "quick" : "full");
        if (err) {
            fprintf(stderr, "writing %s: %s%s\n", csv_path, strerror(-err),
                    err == -EINVAL ? " (another CSV layout: use a new file)" : "");
            return 1;
        }
        printf("appended to %s\n", csv_path);
    }
    return status;
}
