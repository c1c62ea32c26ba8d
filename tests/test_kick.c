/* SPDX-License-Identifier: MIT */
/*
 * The eventfd backends' two-place wake-up object (src/posix/kick.h): a
 * blocking poll that watches nothing sleeps on a futex word, one that
 * watches descriptors on the eventfd, and a host loop pins it to the
 * eventfd. Linux only; registered for eventfd+ppoll and epoll
 * (tests/CMakeLists.txt).
 *
 * Every race test forces its interleaving: the core's hook gate holds the
 * home thread just before its wait, the kick's own hold point
 * (posix-test-hooks.h) holds a kick between its two halves, and
 * /proc/self/task/TID/syscall says when the home thread is really in
 * FUTEX_WAIT. A lost kick cannot be rescued with aio_notify (kick_pending
 * stays set over it, so every later notification skips its kick): these
 * tests end a stuck sleep with a timer or a descriptor instead, and fail on
 * how long that took.
 */
#define _GNU_SOURCE /* syscall(), SYS_gettid */
#include "test-common.h"

#include "posix/posix-test-hooks.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A stuck sleep ends after this (a timer or a descriptor); a kick that
 * reached it ends it at once. */
#define RESCUE_MS 2000

static long gettid_(void)
{
    return syscall(SYS_gettid);
}

/* The system call thread tid is blocked in now, or -1 (running, or no
 * /proc). */
static long blocked_in(long tid)
{
    char path[64], buf[128];
    snprintf(path, sizeof(path), "/proc/self/task/%ld/syscall", tid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    long nr = -1;
    if (fgets(buf, sizeof(buf), f) && buf[0] >= '0' && buf[0] <= '9') {
        nr = strtol(buf, NULL, 10);
    }
    fclose(f);
    return nr;
}

/* want: a system call number, or ANY_FD_WAIT for any of the descriptor
 * waits (ppoll, epoll_wait, epoll_pwait, epoll_pwait2). */
#define ANY_FD_WAIT (-1)

static bool is_wanted(long nr, long want)
{
    if (want != ANY_FD_WAIT) {
        return nr == want;
    }
    return nr == SYS_ppoll || nr == SYS_epoll_wait || nr == SYS_epoll_pwait
#ifdef SYS_epoll_pwait2
           || nr == SYS_epoll_pwait2
#endif
        ;
}

/* Whether thread tid gets blocked in `want` within ms; *last (if not NULL)
 * gets the system call it was last seen in. */
static bool wait_blocked_in(long tid, long want, int ms, long *last)
{
    int64_t start = tsup_now_ns();
    long nr = -1;
    bool found = false;
    while (!found && tsup_ms_since(start) < ms) {
        nr = blocked_in(tid);
        if (is_wanted(nr, want)) {
            /* Seen twice 2 ms apart: blocked, not passing through. */
            tsup_sleep_ms(2);
            found = blocked_in(tid) == nr;
        }
        if (!found) {
            tsup_sleep_ms(1);
        }
    }
    if (last) {
        *last = nr;
    }
    return found;
}

static void nop_cb(void *opaque)
{
    (void)opaque;
}

static uint64_t sleeps(AioContext *ctx)
{
    return tc_stats(ctx).sleeps;
}

/* Blocking polls until one of them slept in the backend and was ended by a
 * 2 ms timer: whatever was pending is accepted, and the kick's place is
 * that of a wait with the current registrations. One watchdog per try,
 * started before the timer is armed: a watchdog thread started per poll
 * (tc_poll_blocking_bounded) can take longer than the 2 ms to create under
 * TSan on a loaded machine, so that every poll found its timer already
 * expired and none slept (a CI failure, all 100 tries). */
static void sleep_once(AioContext *ctx)
{
    for (int tries = 0; tries < 100; tries++) {
        atomic_int fired;
        atomic_init(&fired, 0);
        AioTimer *t = aio_timer_new(ctx, tc_count_cb, &fired);
        cr_assert_not_null(t);
        tc_watchdog *w = tc_watchdog_start(ctx, TC_BOUND_MS);
        aio_timer_mod(t, aio_clock_ns() + 2000000);
        bool slept = false;
        while (!atomic_load(&fired)) {
            uint64_t before = sleeps(ctx);
            cr_assert_geq(aio_poll(ctx, true), 0);
            slept = sleeps(ctx) > before;
        }
        cr_assert(!tc_watchdog_stop(w), "a poll needed the watchdog beside a 2 ms timer");
        aio_timer_free(t);
        if (slept) {
            return;
        }
    }
    cr_assert_fail("no poll slept until its timer in 100 tries");
}

typedef struct fx {
    AioContext *ctx;
    long home_tid;
    aio_fd_t p[2];
    bool watched;
    AioTimer *rescue;
} fx;

static void fx_init(fx *f)
{
    memset(f, 0, sizeof(*f));
    f->ctx = tc_ctx_new();
    f->home_tid = gettid_();
    cr_assert_eq(tsup_pipe(f->p), 0);
}

static void watch(fx *f, bool on)
{
    cr_assert_eq(aio_set_fd_handler(f->ctx, f->p[0], false, on ? nop_cb : NULL, NULL, NULL, NULL),
                 0);
    f->watched = on;
    tc_poll_idle(f->ctx, 10);
}

/* A timer RESCUE_MS ahead: the only thing besides a kick that can end a
 * sleep on the word. */
static void arm_rescue(fx *f)
{
    f->rescue = aio_timer_new(f->ctx, nop_cb, NULL);
    cr_assert_not_null(f->rescue);
    aio_timer_mod(f->rescue, aio_clock_ns() + (int64_t)RESCUE_MS * 1000000);
}

static void fx_fini(fx *f)
{
    if (f->rescue) {
        aio_timer_del(f->rescue);
        aio_timer_free(f->rescue);
    }
    if (f->watched) {
        watch(f, false);
    }
    aio_context_unref(f->ctx);
    tsup_close(f->p[0]);
    tsup_close(f->p[1]);
}

/* ---- The place follows the registrations ---------------------------------- */

typedef struct probe {
    fx *f;
    long want;         /* a system call number, or ANY_FD_WAIT */
    atomic_int seen;   /* 1 once the home thread was blocked there */
    atomic_long other; /* what it was blocked in otherwise */
} probe;

static void probe_then_notify(void *arg)
{
    probe *p = arg;
    long last;
    atomic_store(&p->seen, wait_blocked_in(p->f->home_tid, p->want, TC_BOUND_MS, &last));
    atomic_store(&p->other, last);
    aio_notify(p->f->ctx);
}

static void expect_sleep_in(fx *f, long want, const char *what)
{
    /* A lost kick cannot be rescued by the watchdog's notifications: a
     * timer ends the sleep instead. */
    atomic_int rescued;
    atomic_init(&rescued, 0);
    AioTimer *rescue = aio_timer_new(f->ctx, tc_count_cb, &rescued);
    cr_assert_not_null(rescue);
    aio_timer_mod(rescue, aio_clock_ns() + (int64_t)(TC_BOUND_MS + RESCUE_MS) * 1000000);
    sleep_once(f->ctx); /* nothing pending (the arm's notification too) */
    probe p = {.f = f, .want = want};
    atomic_init(&p.seen, 0);
    atomic_init(&p.other, -1);
    tc_thread *t = tc_thread_start(probe_then_notify, &p);
    tc_poll_result r = tc_poll_blocking_bounded(f->ctx, TC_BOUND_MS * 3);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    aio_timer_free(rescue);
    cr_assert_geq(r.ret, 0);
    cr_assert(!r.rescued && !atomic_load(&rescued), "%s: the notification did not wake it", what);
    cr_assert(atomic_load(&p.seen), "%s: blocked in system call %ld instead", what,
              atomic_load(&p.other));
}

/* The point of the word: a context that watches nothing sleeps in
 * FUTEX_WAIT, one that watches a descriptor in ppoll/epoll_wait, and the
 * place moves both ways with the registrations. */
Test(kick, an_idle_context_sleeps_on_the_futex_and_moves_with_its_registrations)
{
    fx f;
    fx_init(&f);
    expect_sleep_in(&f, SYS_futex, "nothing watched");
    watch(&f, true);
    expect_sleep_in(&f, ANY_FD_WAIT, "a descriptor watched");
    watch(&f, false);
    expect_sleep_in(&f, SYS_futex, "nothing watched again");
    fx_fini(&f);
}

/* ---- Moving to the eventfd: the look at the word -------------------------- */

static void notify_ctx(void *arg)
{
    aio_notify(arg);
}

/* The last sleep watched nothing; then a descriptor is registered. The
 * registration's notification makes the next poll wait with timeout 0, on
 * the eventfd now; it is held just before that wait, awake, and a
 * notification then kicks: it stores the word and, finding the home thread
 * awake, writes nothing (the move to the eventfd happens in the wait). The
 * wait must see the word and consume the kick: without that look
 * (BUG_KICK_NO_RECHECK in the model) the kick
 * stays pending over a silent eventfd, kick_pending keeps every later
 * notification from kicking, and the next poll sleeps through them (here
 * until the rescue timer, RESCUE_MS later). */
Test(kick, a_kick_to_the_word_reaches_a_wait_that_moves_to_the_eventfd)
{
    fx f;
    fx_init(&f);
    sleep_once(f.ctx);
    watch(&f, true);
    /* Armed before the held poll, which accepts its notification with the
     * registration's. */
    arm_rescue(&f);
    tc_gate g;
    tc_gate_install(f.ctx, &g, AIO_HOOK_BEFORE_SLEEP, true);
    atomic_int missed;
    atomic_init(&missed, 0);
    tc_thread *t = tc_remote_when_sleeping(&g, 0, notify_ctx, f.ctx, &missed);
    tc_poll_result r1 = tc_poll_blocking_bounded(f.ctx, TC_BOUND_MS);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    cr_assert_geq(r1.ret, 0);
    cr_assert_eq(atomic_load(&missed), 0, "the poll never got to its wait");

    /* The next sleep, and a notification 50 ms into it. */
    tc_gate_arm(&g);
    t = tc_remote_when_sleeping(&g, 50, notify_ctx, f.ctx, &missed);
    int64_t start = tsup_now_ns();
    int ret = aio_poll(f.ctx, true);
    int64_t ms = tsup_ms_since(start);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    tc_gate_remove(f.ctx, &g);
    cr_assert_geq(ret, 0);
    cr_assert_lt(ms, TC_PROMPT_MS,
                 "the kick went to the word while the wait looked at the eventfd; the next "
                 "sleep took %lld ms (ended by the rescue timer): lost wake-up",
                 (long long)ms);
    fx_fini(&f);
}

/* ---- Moving to the word: the published place ------------------------------ */

/* The waits look at the eventfd (the last sleep watched a descriptor),
 * nothing is watched now, a rescue timer is armed, and nothing is pending:
 * the next blocking poll moves to the word and sleeps there. */
static void leave_on_the_eventfd(fx *f)
{
    watch(f, true);
    sleep_once(f->ctx);
    watch(f, false);
    arm_rescue(f);
    /* Accept the notifications of the removal and the timer: that poll has
     * nothing to watch and nothing to wait for, so it makes no wait, and
     * the place stays on the eventfd for the poll under test. */
    cr_assert_geq(aio_poll(f->ctx, true), 0);
}

typedef struct late_kick {
    fx *f;
    tc_gate *g;
    atomic_int in_futex;
} late_kick;

/* Waits for the home thread at its gate, lets it go, waits until it is in
 * FUTEX_WAIT, and notifies. */
static void kick_when_in_futex(void *arg)
{
    late_kick *lk = arg;
    tc_gate_wait_reached(lk->g, TC_BOUND_MS);
    tc_gate_release(lk->g);
    atomic_store(&lk->in_futex, wait_blocked_in(lk->f->home_tid, SYS_futex, TC_BOUND_MS, NULL));
    aio_notify(lk->f->ctx);
}

/* The waits looked at the eventfd (the last sleep watched a descriptor);
 * the descriptor is removed, and the next wait moves to the word and is
 * asleep in FUTEX_WAIT when the notification comes. The kick must find it
 * there: a wait that did not publish its move (BUG_KICK_WORD_NO_MOVE) gets
 * the eventfd written and sleeps on until the rescue timer. */
Test(kick, a_kick_finds_a_wait_that_moved_to_the_word)
{
    fx f;
    fx_init(&f);
    leave_on_the_eventfd(&f);
    tc_gate g;
    tc_gate_install(f.ctx, &g, AIO_HOOK_BEFORE_SLEEP, true);
    late_kick lk = {.f = &f, .g = &g};
    atomic_init(&lk.in_futex, 0);
    tc_thread *t = tc_thread_start(kick_when_in_futex, &lk);
    int64_t start = tsup_now_ns();
    int ret = aio_poll(f.ctx, true);
    int64_t ms = tsup_ms_since(start);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    tc_gate_remove(f.ctx, &g);
    cr_assert_geq(ret, 0);
    cr_assert(atomic_load(&lk.in_futex), "the home thread never slept in FUTEX_WAIT");
    cr_assert_lt(ms, TC_PROMPT_MS, "the kick wrote the eventfd while the wait slept on the word "
                                   "(%lld ms, ended by the rescue timer): lost wake-up",
                 (long long)ms);
    fx_fini(&f);
}

/* ---- The kick's own order ------------------------------------------------- */

typedef struct held_kick {
    atomic_int reached;
    atomic_int release;
} held_kick;

static void kick_hold(void *opaque)
{
    held_kick *h = opaque;
    atomic_store(&h->reached, 1);
    tsup_wait_flag(&h->release, TC_GATE_HOLD_MS);
}

typedef struct mid_kick {
    fx *f;
    tc_gate *g;
    held_kick *h;
    atomic_int kicker_held;
    atomic_int slept;
} mid_kick;

static void notify_main(void *arg)
{
    mid_kick *m = arg;
    aio_notify(m->f->ctx);
}

/* Holds the home thread at its gate, starts a notification and holds its
 * kick between its halves, lets the home thread wait, and after it has had
 * the chance to sleep on the word, lets the kick finish. */
static void kick_across_the_move(void *arg)
{
    mid_kick *m = arg;
    tc_gate_wait_reached(m->g, TC_BOUND_MS);
    tc_thread *k = tc_thread_start(notify_main, m);
    atomic_store(&m->kicker_held, tsup_wait_flag(&m->h->reached, TC_BOUND_MS));
    tc_gate_release(m->g);
    /* Correct order: the word is stored, the wait sees it and does not
     * sleep. Loading the place first: the kick read "eventfd" and the wait
     * goes to sleep on the word. */
    atomic_store(&m->slept, wait_blocked_in(m->f->home_tid, SYS_futex, 300, NULL));
    atomic_store(&m->h->release, 1);
    tc_thread_join(k, TC_BOUND_MS);
}

/* The kick stores the word before it reads where the home thread looks.
 * Held between its halves while the home thread moves from the eventfd to
 * the word, it must already have stored the word: read first, it would
 * write the eventfd after the home thread went to sleep on the word
 * (BUG_KICK_LOOK_FIRST). */
Test(kick, a_kick_held_between_its_halves_is_not_lost)
{
    fx f;
    fx_init(&f);
    leave_on_the_eventfd(&f);
    held_kick h;
    atomic_init(&h.reached, 0);
    atomic_init(&h.release, 0);
    aio__set_test_kick_hook(kick_hold, &h);
    tc_gate g;
    tc_gate_install(f.ctx, &g, AIO_HOOK_BEFORE_SLEEP, true);
    mid_kick m = {.f = &f, .g = &g, .h = &h};
    atomic_init(&m.kicker_held, 0);
    atomic_init(&m.slept, 0);
    tc_thread *t = tc_thread_start(kick_across_the_move, &m);
    int64_t start = tsup_now_ns();
    int ret = aio_poll(f.ctx, true);
    int64_t ms = tsup_ms_since(start);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    aio__set_test_kick_hook(NULL, NULL);
    tc_gate_remove(f.ctx, &g);
    cr_assert_geq(ret, 0);
    cr_assert(atomic_load(&m.kicker_held), "the kick never reached its hold point");
    cr_assert(!atomic_load(&m.slept), "the wait slept on the word with a kick half made");
    cr_assert_lt(ms, TC_PROMPT_MS, "lost wake-up: %lld ms, ended by the rescue timer",
                 (long long)ms);
    fx_fini(&f);
}

/* ---- A host loop pins the eventfd ----------------------------------------- */

typedef struct late_notify {
    int64_t deadline;
    atomic_int done;
} late_notify;

/* At the end of the wait that the deadline ended, before the poll lowers
 * its announcement: a notification now kicks (the poll is announced) after
 * the wait that could have reported it. */
static void notify_after_timeout(AioContext *ctx, AioHookPoint point, void *opaque)
{
    late_notify *ln = opaque;
    if (point == AIO_HOOK_AFTER_SLEEP && aio_clock_ns() >= ln->deadline &&
        !atomic_exchange(&ln->done, 1)) {
        aio_notify(ctx);
    }
}

/* A kick made while the waits looked at the word, after the wait that could
 * have seen it (here: a timeout, then a notification before the poll
 * lowered its announcement), stays pending: the word is set, kick_pending
 * too, and every later notification skips its kick. A host loop attached
 * now sleeps on the eventfd (in the aggregate), so the attach must move
 * that kick there: without it the host sleeps through it and through
 * everything after it. */
Test(kick, embed_attach_moves_a_pending_kick_onto_the_eventfd)
{
    fx f;
    fx_init(&f);
    sleep_once(f.ctx); /* the place: the word */
    late_notify ln;
    atomic_init(&ln.done, 0);
    atomic_int fired;
    atomic_init(&fired, 0);
    AioTimer *t = aio_timer_new(f.ctx, tc_count_cb, &fired);
    cr_assert_not_null(t);
    ln.deadline = aio_clock_ns() + 5000000;
    aio_timer_mod(t, ln.deadline);
    aio__set_test_hook(f.ctx, notify_after_timeout, &ln);
    while (!atomic_load(&fired)) {
        cr_assert_geq(aio_poll(f.ctx, true), 0);
    }
    aio__set_test_hook(f.ctx, NULL, NULL);
    aio_timer_free(t);
    cr_assert_eq(atomic_load(&ln.done), 1);

    cr_assert_eq(aio_embed_attach(f.ctx, NULL), 0);
    int64_t timeout = 0;
    cr_assert_geq(aio_embed_prepare(f.ctx, &timeout), 0);
    AioEmbedFd fds[4];
    int n = aio_embed_query(f.ctx, fds, 4);
    cr_assert_geq(n, 1);
    /* A later notification skips its kick (kick_pending), so what the host
     * sees now is what it would sleep on for ever. */
    aio_notify(f.ctx);
    struct pollfd pfd = {.fd = fds[0].handle, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 0), 1, "the host's descriptor is silent over a pending kick");
    cr_assert_geq(aio_embed_check(f.ctx), 0);
    cr_assert_geq(aio_embed_dispatch(f.ctx), 0);
    cr_assert_eq(aio_embed_detach(f.ctx), 0);
    /* Detached, the waits may use the word again. */
    expect_sleep_in(&f, SYS_futex, "detached");
    fx_fini(&f);
}

/* ---- Stress: the place moving under a stream of kicks --------------------- */

typedef struct stress {
    fx *f;
    AioBH *bh;
    AioTimer *rescue;
    atomic_int acks;
    atomic_int stop;
    atomic_int lost; /* the first round whose ack was not prompt */
} stress;

/* Home thread: acknowledges, and moves the place of the next sleep by adding
 * or removing the descriptor every other round. */
static void stress_bh(void *opaque)
{
    stress *s = opaque;
    int n = atomic_fetch_add(&s->acks, 1) + 1;
    if (n % 2 == 0) {
        bool on = !s->f->watched;
        aio_set_fd_handler(s->f->ctx, s->f->p[0], false, on ? nop_cb : NULL, NULL, NULL, NULL);
        s->f->watched = on;
    }
}

/* A lost kick leaves kick_pending set, so aio_notify (the suite's watchdog)
 * cannot end the sleep it was for; a timer can, and does every RESCUE_MS,
 * so that a loss shows as a late ack instead of a hang. */
static void stress_rescue(void *opaque)
{
    stress *s = opaque;
    aio_timer_mod(s->rescue, aio_clock_ns() + (int64_t)RESCUE_MS * 1000000);
}

static void stress_producer(void *arg)
{
    stress *s = arg;
    long rounds = tc_env_long("AIOPOLL_STRESS_ROUNDS", 20000);
    for (long i = 0; i < rounds && !atomic_load(&s->lost); i++) {
        int want = (int)i + 1;
        /* Vary where in the home thread's way to sleep the kick lands. */
        if (i % 2) {
            tsup_spin_us((int)(i % 7));
        }
        int64_t t0 = tsup_now_ns();
        aio_bh_schedule(s->bh);
        if (!tsup_wait_at_least(&s->acks, want, TC_BOUND_MS) || tsup_ms_since(t0) >= TC_PROMPT_MS) {
            atomic_store(&s->lost, want);
        }
    }
    atomic_store(&s->stop, 1);
    aio_bh_schedule(s->bh);
}

Test(kick, stress_the_place_moves_under_a_stream_of_kicks)
{
    fx f;
    fx_init(&f);
    stress s = {.f = &f};
    atomic_init(&s.acks, 0);
    atomic_init(&s.stop, 0);
    atomic_init(&s.lost, 0);
    s.bh = aio_bh_new(f.ctx, stress_bh, &s);
    cr_assert_not_null(s.bh);
    s.rescue = aio_timer_new(f.ctx, stress_rescue, &s);
    cr_assert_not_null(s.rescue);
    aio_timer_mod(s.rescue, aio_clock_ns() + (int64_t)RESCUE_MS * 1000000);
    tc_thread *t = tc_thread_start(stress_producer, &s);
    int64_t start = tsup_now_ns();
    while (!atomic_load(&s.stop) && tsup_ms_since(start) < 120000) {
        cr_assert_geq(aio_poll(f.ctx, true), 0);
    }
    cr_assert(tc_thread_join(t, TC_BOUND_MS * 2));
    tc_poll_idle(f.ctx, 10);
    cr_assert_eq(atomic_load(&s.lost), 0, "round %d: not woken within %d ms: lost wake-up",
                 atomic_load(&s.lost), TC_PROMPT_MS);
    aio_timer_del(s.rescue);
    aio_timer_free(s.rescue);
    aio_bh_delete(s.bh);
    fx_fini(&f);
}
