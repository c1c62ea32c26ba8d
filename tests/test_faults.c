/* SPDX-License-Identifier: MIT */
/*
 * Fault injection (docs/testing.md). For every public entry point that can
 * fail, every kind of operation the library performs and N = 1, 2, ...: arm
 * the fault table so that the Nth operation of that kind fails with a real
 * error, make the call, disarm, and check that
 *  (a) it returned success or the error aio.h documents for that failure
 *      (transparent errors, EINTR above all, must not surface at all);
 *  (b) the context still works: a bottom half, an event notifier and a
 *      descriptor each make a round trip, and work queued before the call
 *      is still delivered (no lost wake-up);
 *  (c) nothing leaked: the process has as many descriptors (Windows:
 *      handles) open as before; the asan stage's LeakSanitizer checks the
 *      memory.
 * The sweep of a kind ends at the first N the call completes without
 * reaching. A defect the sweep found has a named regression test below.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "test-common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(_WIN32)
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

/* ---- What fails, and what the caller must see --------------------------- */

typedef struct fault_case {
    AioFaultKind kind;
    int inject; /* what the failing operation reports (errno / Win32 code) */
    int expect; /* the errno the entry point may return; 0: must not fail */
} fault_case;

static const fault_case faults[] = {
    {AIO_FAULT_ALLOC, ENOMEM, ENOMEM},
#if defined(_WIN32)
    {AIO_FAULT_CREATE_EVENT, ERROR_NOT_ENOUGH_MEMORY, ENOMEM},
    {AIO_FAULT_CREATE_EVENT, ERROR_NO_SYSTEM_RESOURCES, ENOMEM},
    {AIO_FAULT_DUPLICATE_HANDLE, ERROR_NOT_ENOUGH_MEMORY, ENOMEM},
    {AIO_FAULT_DUPLICATE_HANDLE, ERROR_TOO_MANY_OPEN_FILES, EMFILE},
    {AIO_FAULT_WSA_CREATE_EVENT, WSA_NOT_ENOUGH_MEMORY, ENOMEM},
    {AIO_FAULT_WSA_EVENT_SELECT, WSAENOBUFS, ENOMEM},
    /* A wait on the context's own handles can only fail when one was closed
     * behind its back: the backend reports that as -EIO. */
    {AIO_FAULT_WAIT, ERROR_INVALID_HANDLE, EIO},
    {AIO_FAULT_THREAD, ERROR_NOT_ENOUGH_MEMORY, ENOMEM},
#else
    {AIO_FAULT_EVENTFD, EMFILE, EMFILE},
    {AIO_FAULT_PIPE, EMFILE, EMFILE},
    {AIO_FAULT_PIPE, ENFILE, ENFILE},
    {AIO_FAULT_FCNTL, EMFILE, EMFILE},
    {AIO_FAULT_EPOLL_CREATE, EMFILE, EMFILE},
    {AIO_FAULT_EPOLL_CTL, ENOMEM, ENOMEM},
    {AIO_FAULT_EPOLL_CTL, ENOSPC, ENOSPC},
    {AIO_FAULT_WAIT, EINTR, 0},
    {AIO_FAULT_WAIT, ENOMEM, ENOMEM},
    /* poll() on some systems: "try again"; epoll never says it. */
    {AIO_FAULT_WAIT, EAGAIN, EAGAIN},
    {AIO_FAULT_READ, EINTR, 0},
    {AIO_FAULT_READ, EAGAIN, 0},
    {AIO_FAULT_WRITE, EINTR, 0},
    {AIO_FAULT_IO_URING_SETUP, ENOMEM, ENOMEM},
    {AIO_FAULT_IO_URING_SETUP, EMFILE, EMFILE},
#endif
};
#define NFAULTS (sizeof(faults) / sizeof(faults[0]))

/* ---- The fixture ---------------------------------------------------------- */

#define MANY 70 /* past MAXIMUM_WAIT_OBJECTS (helper threads) and the epoll switch */
#define FD_PAIRS 8

typedef struct notifier_src {
    AioEventNotifier *n;
    atomic_int ran;
} notifier_src;

typedef struct fd_src {
    aio_fd_t fds[2];
    atomic_int ran;
} fd_src;

typedef struct fx {
    AioContext *ctx;
    /* Work queued before the call, which must still be delivered. */
    notifier_src pre_n;
    fd_src pre_fd;
    AioBH *pre_bh;
    atomic_int pre_bh_ran;
    int want_pre; /* bit 0 BH, 1 notifier, 2 fd */
    /* What the call makes or works on. */
    AioContext *made_ctx;
    AioBH *bh;
    AioTimer *timer;
    AioTimer *timers[16];
    notifier_src n;
    fd_src fd;
    fd_src pairs[FD_PAIRS];
    notifier_src many[MANY];
    AioBH *hook_bh;
    atomic_int hook_bh_ran;
    atomic_int hook_once;
} fx;

static void notifier_cb(void *opaque)
{
    notifier_src *s = opaque;
    aio_event_notifier_test_and_clear(s->n);
    atomic_fetch_add(&s->ran, 1);
}

static void fd_cb(void *opaque)
{
    fd_src *s = opaque;
    tsup_drain(s->fds[0]);
    atomic_fetch_add(&s->ran, 1);
}

static void noop_cb(void *opaque)
{
    (void)opaque;
}

static bool poll_cb(void *opaque)
{
    (void)opaque;
    return false;
}

/* Registration helpers; false on failure (asserting is the caller's). */
static bool notifier_add(AioContext *ctx, notifier_src *s, bool external)
{
    atomic_store(&s->ran, 0);
    s->n = aio_event_notifier_new(false);
    return s->n && aio_set_event_notifier(ctx, s->n, external, notifier_cb, NULL, s) == 0;
}

static void notifier_del(AioContext *ctx, notifier_src *s)
{
    if (s->n) {
        aio_set_event_notifier(ctx, s->n, false, NULL, NULL, NULL);
        aio_event_notifier_free(s->n);
        s->n = NULL;
    }
}

static bool fd_open(fd_src *s)
{
    atomic_store(&s->ran, 0);
    if (tsup_socketpair(s->fds) != 0) {
        s->fds[0] = s->fds[1] = TSUP_INVALID_FD;
        return false;
    }
    return true;
}

static bool fd_add(AioContext *ctx, fd_src *s, bool external)
{
    return fd_open(s) &&
           aio_set_fd_handler(ctx, s->fds[0], external, fd_cb, NULL, NULL, s) == 0;
}

static void fd_del(AioContext *ctx, fd_src *s)
{
    if (s->fds[0] != TSUP_INVALID_FD) {
        aio_set_fd_handler(ctx, s->fds[0], false, NULL, NULL, NULL, NULL);
        tsup_close(s->fds[0]);
        tsup_close(s->fds[1]);
        s->fds[0] = s->fds[1] = TSUP_INVALID_FD;
    }
}

static void fx_init(fx *f)
{
    memset(f, 0, sizeof(*f));
    f->pre_fd.fds[0] = f->pre_fd.fds[1] = TSUP_INVALID_FD;
    f->fd.fds[0] = f->fd.fds[1] = TSUP_INVALID_FD;
    for (int i = 0; i < FD_PAIRS; i++) {
        f->pairs[i].fds[0] = f->pairs[i].fds[1] = TSUP_INVALID_FD;
    }
    f->ctx = tc_ctx_new();
}

/* Queues a BH, sets a notifier and makes a descriptor readable, all
 * registered before the call. */
static void fx_queue_work(fx *f)
{
    cr_assert(notifier_add(f->ctx, &f->pre_n, false));
    cr_assert(fd_add(f->ctx, &f->pre_fd, false));
    f->pre_bh = aio_bh_new(f->ctx, tc_count_cb, &f->pre_bh_ran);
    cr_assert_not_null(f->pre_bh);
    aio_bh_schedule(f->pre_bh);
    cr_assert_eq(aio_event_notifier_set(f->pre_n.n), 0);
    cr_assert_eq(tsup_write_byte(f->pre_fd.fds[1]), 1);
    f->want_pre = 7;
}

static void fx_fini(fx *f)
{
    notifier_del(f->ctx, &f->pre_n);
    fd_del(f->ctx, &f->pre_fd);
    notifier_del(f->ctx, &f->n);
    fd_del(f->ctx, &f->fd);
    for (int i = 0; i < FD_PAIRS; i++) {
        fd_del(f->ctx, &f->pairs[i]);
    }
    for (int i = 0; i < MANY; i++) {
        notifier_del(f->ctx, &f->many[i]);
    }
    if (f->pre_bh) {
        aio_bh_delete(f->pre_bh);
    }
    if (f->bh) {
        aio_bh_delete(f->bh);
    }
    if (f->hook_bh) {
        aio_bh_delete(f->hook_bh);
    }
    aio_timer_free(f->timer);
    for (int i = 0; i < 16; i++) {
        aio_timer_free(f->timers[i]);
    }
    aio__set_test_hook(f->ctx, NULL, NULL);
    aio_context_unref(f->ctx);
    aio_context_unref(f->made_ctx);
}

/* ---- Checks that do not assert (also usable in a forked child) ---------- */

/* Blocking polls of ctx until *v >= want, bounded by a watchdog. */
static const char *poll_until(AioContext *ctx, atomic_int *v, int want)
{
    tc_watchdog *w = tc_watchdog_start(ctx, TC_BOUND_MS);
    const char *err = NULL;
    while (atomic_load(v) < want && !err) {
        int r = aio_poll(ctx, true);
        if (r < 0) {
            err = "aio_poll failed with no fault armed";
        } else if (tc_watchdog_fired(w)) {
            err = "lost wake-up: nothing came within the bound";
        }
    }
    tc_watchdog_stop(w);
    return err;
}

static void count_bh(void *opaque)
{
    atomic_fetch_add((atomic_int *)opaque, 1);
}

/* A BH, a notifier and a descriptor round trip on ctx; NULL when all work. */
static const char *usable(AioContext *ctx)
{
    const char *err = NULL;
    atomic_int bh_ran = 0;
    if (aio_bh_schedule_oneshot(ctx, count_bh, &bh_ran) != 0) {
        return "BH round trip: aio_bh_schedule_oneshot failed";
    }
    if ((err = poll_until(ctx, &bh_ran, 1)) != NULL) {
        return err;
    }

    notifier_src n = {0};
    if (!notifier_add(ctx, &n, false)) {
        err = "notifier round trip: registration failed";
    } else if (aio_event_notifier_set(n.n) != 0) {
        err = "notifier round trip: set failed";
    } else {
        err = poll_until(ctx, &n.ran, 1);
    }
    notifier_del(ctx, &n);
    if (err) {
        return err;
    }

    fd_src s = {.fds = {TSUP_INVALID_FD, TSUP_INVALID_FD}};
    if (!fd_add(ctx, &s, false)) {
        err = "fd round trip: registration failed";
    } else if (tsup_write_byte(s.fds[1]) != 1) {
        err = "fd round trip: write failed";
    } else {
        err = poll_until(ctx, &s.ran, 1);
    }
    fd_del(ctx, &s);
    return err;
}

/* (a): 0 when ret is what the header allows after fault fc did (fired) or
 * did not happen. */
static const char *check_ret(const fault_case *fc, bool fired, int ret)
{
    if (ret >= 0) {
        return NULL;
    }
    if (!fired) {
        return "failed although no fault happened";
    }
    if (fc->expect == 0) {
        return "returned an error for a failure it must absorb";
    }
    return ret == -fc->expect ? NULL : "returned another error than documented";
}

/* ---- Entry points ---------------------------------------------------------- */

typedef struct entry {
    const char *name;
    void (*setup)(fx *f);  /* state before the call, faults disarmed */
    int (*call)(fx *f);    /* 0 or a negative errno */
    void (*post)(fx *f, int ret); /* extra checks after disarming */
} entry;

static int call_context_new(fx *f)
{
    errno = 0;
    f->made_ctx = aio_context_new();
    return f->made_ctx ? 0 : -errno;
}

static int call_bh_new(fx *f)
{
    f->bh = aio_bh_new(f->ctx, noop_cb, NULL);
    return f->bh ? 0 : -ENOMEM;
}

static int call_bh_oneshot(fx *f)
{
    return aio_bh_schedule_oneshot(f->ctx, noop_cb, NULL);
}

static int call_timer_new(fx *f)
{
    f->timer = aio_timer_new(f->ctx, noop_cb, NULL);
    return f->timer ? 0 : -ENOMEM;
}

static void setup_timer(fx *f)
{
    f->timer = aio_timer_new(f->ctx, noop_cb, NULL);
    cr_assert_not_null(f->timer);
}

/* 16 armed timers fill the heap's first allocation. */
static void setup_timer_full_heap(fx *f)
{
    setup_timer(f);
    for (int i = 0; i < 16; i++) {
        f->timers[i] = aio_timer_new(f->ctx, noop_cb, NULL);
        cr_assert_not_null(f->timers[i]);
        aio_timer_mod(f->timers[i], aio_clock_ns() + INT64_C(3600000000000));
    }
}

/* aio_timer_mod is void: aio.h says a timer that could not be armed is not
 * pending. */
static int call_timer_mod(fx *f)
{
    aio_timer_mod(f->timer, aio_clock_ns() + INT64_C(3600000000000));
    return aio_timer_pending(f->timer) ? 0 : -ENOMEM;
}

static void setup_fd(fx *f)
{
    cr_assert(fd_open(&f->fd));
}

static int call_set_fd_handler(fx *f)
{
    return aio_set_fd_handler(f->ctx, f->fd.fds[0], false, fd_cb, NULL, NULL, &f->fd);
}

static void setup_fd_registered(fx *f)
{
    cr_assert(fd_add(f->ctx, &f->fd, false));
}

static int call_replace_fd_handler(fx *f)
{
    return aio_set_fd_handler(f->ctx, f->fd.fds[0], false, fd_cb, NULL, poll_cb, &f->fd);
}

/* Failed or not, the descriptor has a read handler that runs: a failed
 * replacement keeps the old one (aio.h). */
static void post_replace_fd_handler(fx *f, int ret)
{
    cr_assert_eq(tsup_write_byte(f->fd.fds[1]), 1);
    const char *err = poll_until(f->ctx, &f->fd.ran, 1);
    cr_assert_null(err, "after a replacement that returned %d (%s): %s", ret, aio_strerror(ret),
                   err);
}

/* The 9th descriptor moves eventfd+ppoll to epoll (backend-poll.c). */
static void setup_fd_switch(fx *f)
{
    for (int i = 0; i < FD_PAIRS; i++) {
        cr_assert(fd_add(f->ctx, &f->pairs[i], false));
    }
    setup_fd(f);
}

static void setup_notifier(fx *f)
{
    f->n.n = aio_event_notifier_new(false);
    cr_assert_not_null(f->n.n);
}

static int call_set_event_notifier(fx *f)
{
    return aio_set_event_notifier(f->ctx, f->n.n, false, notifier_cb, NULL, &f->n);
}

static int call_event_notifier_new(fx *f)
{
    errno = 0;
    f->n.n = aio_event_notifier_new(true);
    return f->n.n ? 0 : -errno;
}

static int call_event_notifier_set(fx *f)
{
    return aio_event_notifier_set(f->n.n);
}

static void post_event_notifier_set(fx *f, int ret)
{
    if (ret == 0) {
        cr_assert(aio_event_notifier_test_and_clear(f->n.n),
                  "aio_event_notifier_set returned 0 but the notifier is not set");
    }
}

static int call_poll_nonblocking(fx *f)
{
    int r = aio_poll(f->ctx, false);
    return r < 0 ? r : 0;
}

/* Bounded: a blocking poll that lost its wake-up is rescued, and fails. */
static int call_poll_blocking(fx *f)
{
    tc_poll_result r = tc_poll_blocking_bounded(f->ctx, TC_BOUND_MS);
    cr_assert(!r.rescued, "aio_poll(ctx, true) slept through its wake-up");
    return r.ret < 0 ? r.ret : 0;
}

/* Wakes the poll from inside its sleep announcement: the kick is written
 * (and, after the wait, read) by the poll's own operations. */
static void wake_hook(AioContext *ctx, AioHookPoint point, void *opaque)
{
    fx *f = opaque;
    (void)ctx;
    if (point == AIO_HOOK_BEFORE_SLEEP && atomic_exchange(&f->hook_once, 0)) {
        aio_bh_schedule(f->hook_bh);
    }
}

/* Accepts the notifications that creating the context and its
 * registrations made, so that the next blocking poll really sleeps: only
 * a blocking poll accepts, and the notify makes sure it does not sleep. */
static void settle(AioContext *ctx)
{
    aio_notify(ctx);
    cr_assert_geq(aio_poll(ctx, true), 0);
}

static void setup_poll_woken(fx *f)
{
    f->hook_bh = aio_bh_new(f->ctx, tc_count_cb, &f->hook_bh_ran);
    cr_assert_not_null(f->hook_bh);
    settle(f->ctx);
    aio__set_test_hook(f->ctx, wake_hook, f);
    atomic_store(&f->hook_once, 1);
}

static void post_poll_woken(fx *f, int ret)
{
    (void)ret;
    const char *err = poll_until(f->ctx, &f->hook_bh_ran, 1);
    cr_assert_null(err, "the BH scheduled while the poll went to sleep: %s", err);
}

/* MANY notifiers and a timer 50 ms away (far enough that a slow machine
 * still sleeps): the blocking poll really sleeps on all of them (Windows:
 * with a helper thread). */
static void setup_poll_many(fx *f)
{
    for (int i = 0; i < MANY; i++) {
        cr_assert(notifier_add(f->ctx, &f->many[i], false));
    }
    setup_timer(f);
    aio_timer_mod(f->timer, aio_clock_ns() + 50000000);
    settle(f->ctx);
}

static void setup_external(fx *f)
{
    cr_assert(notifier_add(f->ctx, &f->n, true));
    cr_assert(fd_add(f->ctx, &f->fd, true));
    aio_disable_external(f->ctx);
}

static int call_enable_external(fx *f)
{
    aio_enable_external(f->ctx);
    return 0;
}

/* ---- The sweep ---------------------------------------------------------- */

static void check_pre_work(fx *f, const char *where)
{
    const char *err = NULL;
    if ((f->want_pre & 1) && (err = poll_until(f->ctx, &f->pre_bh_ran, 1)) != NULL) {
        cr_assert_fail("%s: the BH queued before: %s", where, err);
    }
    if ((f->want_pre & 2) && (err = poll_until(f->ctx, &f->pre_n.ran, 1)) != NULL) {
        cr_assert_fail("%s: the notifier set before: %s", where, err);
    }
    if ((f->want_pre & 4) && (err = poll_until(f->ctx, &f->pre_fd.ran, 1)) != NULL) {
        cr_assert_fail("%s: the descriptor made readable before: %s", where, err);
    }
}

static void sweep(const entry *e, bool queue_work)
{
    unsigned injected = 0;
    for (size_t k = 0; k < NFAULTS; k++) {
        const fault_case *fc = &faults[k];
        for (unsigned nth = 1;; nth++) {
            char where[160];
            snprintf(where, sizeof(where), "%s, %s #%u failing with %d", e->name,
                     aio__fault_name(fc->kind), nth, fc->inject);
            cr_assert(nth < 1000, "%s: the sweep does not end", where);

            long handles = tsup_open_handles();
            fx f;
            fx_init(&f);
            if (queue_work) {
                fx_queue_work(&f);
            }
            if (e->setup) {
                e->setup(&f);
            }
            aio__fault_arm(fc->kind, nth, fc->inject);
            int ret = e->call(&f);
            aio__fault_disarm();
            bool fired = aio__fault_fired(fc->kind);
            injected += fired;

            const char *err = check_ret(fc, fired, ret);
            cr_assert_null(err, "%s: %s (%s)", where, err, aio_strerror(ret));
            if (e->post) {
                e->post(&f, ret);
            }
            check_pre_work(&f, where);
            err = usable(f.ctx);
            cr_assert_null(err, "%s: context no longer usable: %s", where, err);
            if (f.made_ctx) {
                err = usable(f.made_ctx);
                cr_assert_null(err, "%s: the new context is not usable: %s", where, err);
            }
            fx_fini(&f);
            long after = tsup_open_handles();
            cr_assert_eq(after, handles, "%s: %ld descriptors/handles open before, %ld after",
                         where, handles, after);
            if (!fired) {
                break;
            }
        }
    }
    cr_log_info("%s (%s): %u injected failures", e->name, getenv("AIOPOLL_BACKEND"), injected);
}

#define SWEEP(test, queue, ...)                      \
    Test(faults, test, .timeout = 300)               \
    {                                                \
        static const entry e = __VA_ARGS__;          \
        sweep(&e, queue);                            \
    }

SWEEP(context_new, false, {"aio_context_new", NULL, call_context_new, NULL})
SWEEP(bh_new, false, {"aio_bh_new", NULL, call_bh_new, NULL})
SWEEP(bh_schedule_oneshot, false, {"aio_bh_schedule_oneshot", NULL, call_bh_oneshot, NULL})
SWEEP(timer_new, false, {"aio_timer_new", NULL, call_timer_new, NULL})
SWEEP(timer_mod, false, {"aio_timer_mod", setup_timer, call_timer_mod, NULL})
SWEEP(timer_mod_heap_growth, false,
      {"aio_timer_mod (heap growth)", setup_timer_full_heap, call_timer_mod, NULL})
SWEEP(set_fd_handler, false, {"aio_set_fd_handler", setup_fd, call_set_fd_handler, NULL})
SWEEP(set_fd_handler_replace, false,
      {"aio_set_fd_handler (replace)", setup_fd_registered, call_replace_fd_handler,
       post_replace_fd_handler})
SWEEP(set_fd_handler_epoll_switch, false,
      {"aio_set_fd_handler (9th: epoll switch)", setup_fd_switch, call_set_fd_handler, NULL})
SWEEP(set_event_notifier, false,
      {"aio_set_event_notifier", setup_notifier, call_set_event_notifier, NULL})
SWEEP(event_notifier_new, false,
      {"aio_event_notifier_new", NULL, call_event_notifier_new, NULL})
SWEEP(event_notifier_set, false,
      {"aio_event_notifier_set", setup_notifier, call_event_notifier_set,
       post_event_notifier_set})
SWEEP(poll_first, false, {"aio_poll(false), the first", NULL, call_poll_nonblocking, NULL})
SWEEP(poll_nonblocking, true, {"aio_poll(false)", NULL, call_poll_nonblocking, NULL})
SWEEP(poll_blocking, true, {"aio_poll(true)", NULL, call_poll_blocking, NULL})
SWEEP(poll_woken_from_sleep, false,
      {"aio_poll(true) woken on its way to sleep", setup_poll_woken, call_poll_blocking,
       post_poll_woken})
SWEEP(poll_many_sleeping, false,
      {"aio_poll(true) asleep on 70 notifiers", setup_poll_many, call_poll_blocking, NULL})
SWEEP(enable_external, true,
      {"aio_enable_external (re-watch)", setup_external, call_enable_external, NULL})

/* ---- fork() ---------------------------------------------------------------- */
#if !defined(_WIN32)

/* In a child: after_fork with the fault armed, then (a) (b) (c) without
 * Criterion (a forked child must not report through it). Exit status 0:
 * checked, the fault happened; 1: checked, it did not; 2: failure, with
 * the message on the pipe. */
static void after_fork_child(AioContext *ctx, fx *f, const fault_case *fc, unsigned nth,
                             long handles, int report)
{
    aio__fault_arm(fc->kind, nth, fc->inject);
    int ret = aio_context_after_fork(ctx);
    aio__fault_disarm();
    bool fired = aio__fault_fired(fc->kind);
    const char *err = check_ret(fc, fired, ret);
    /* A failed re-creation of the backend leaves the context refusing
     * polls (aio.h); the call may be made again. */
    if (!err && ret < 0 && aio_context_after_fork(ctx) != 0) {
        err = "a second aio_context_after_fork failed with no fault armed";
    }
    if (!err) {
        err = usable(ctx);
    }
    if (!err) {
        /* The registrations made before the fork were made anew: what was
         * queued for them still arrives, unless re-registering them failed
         * (aio.h: that one is then not watched). */
        if ((err = poll_until(ctx, &f->pre_bh_ran, 1)) == NULL && ret == 0) {
            if ((err = poll_until(ctx, &f->pre_n.ran, 1)) == NULL) {
                err = poll_until(ctx, &f->pre_fd.ran, 1);
            }
        }
    }
    if (!err) {
        aio_bh_delete(f->pre_bh);
        notifier_del(ctx, &f->pre_n);
        fd_del(ctx, &f->pre_fd);
        aio_context_unref(ctx);
        /* + 1: the report pipe's write end. */
        if (tsup_open_handles() != handles + 1) {
            err = "descriptors leaked";
        }
    }
    if (err) {
        char msg[200];
        int len = snprintf(msg, sizeof(msg), "%s (returned %s)", err, aio_strerror(ret));
        ssize_t w = write(report, msg, (size_t)len);
        (void)w;
        _exit(2);
    }
    _exit(fired ? 0 : 1);
}

/* Waits for the child, bounded; returns its exit status or -1. */
static int wait_child(pid_t pid)
{
    int64_t start = tsup_now_ns();
    int status;
    while (tsup_ms_since(start) < 4 * TC_BOUND_MS) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        tsup_sleep_ms(1);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

Test(faults, context_after_fork, .timeout = 300)
{
    unsigned injected = 0;
    for (size_t k = 0; k < NFAULTS; k++) {
        const fault_case *fc = &faults[k];
        for (unsigned nth = 1;; nth++) {
            char where[160];
            snprintf(where, sizeof(where), "aio_context_after_fork, %s #%u failing with %d",
                     aio__fault_name(fc->kind), nth, fc->inject);
            cr_assert(nth < 1000, "%s: the sweep does not end", where);
            long handles = tsup_open_handles();
            fx f;
            fx_init(&f);
            fx_queue_work(&f);
            int pfd[2];
            cr_assert_eq(pipe(pfd), 0);
            pid_t pid = fork();
            cr_assert_neq(pid, -1);
            if (pid == 0) {
                close(pfd[0]);
                after_fork_child(f.ctx, &f, fc, nth, handles, pfd[1]);
            }
            close(pfd[1]);
            int status = wait_child(pid);
            char msg[201] = "";
            ssize_t n = read(pfd[0], msg, sizeof(msg) - 1);
            msg[n > 0 ? n : 0] = '\0';
            close(pfd[0]);
            cr_assert(status == 0 || status == 1, "%s: child %s: %s", where,
                      status < 0 ? "crashed or hung" : "failed", msg);
            fx_fini(&f);
            cr_assert_eq(tsup_open_handles(), handles, "%s: the parent leaked", where);
            injected += status == 0;
            if (status == 1) {
                break;
            }
        }
    }
    cr_log_info("aio_context_after_fork (%s): %u injected failures", getenv("AIOPOLL_BACKEND"),
                injected);
}
#endif

/* ---- Regressions the sweep found ----------------------------------------- */

static void schedule_count(void *arg)
{
    fx *f = arg;
    aio_bh_schedule(f->hook_bh);
}

/* The snapshot arrays (sources.c pollset_reserve) and the Win32 backend's
 * scratch arrays (scratch_reserve) are grown one after the other; one that
 * failed half-way used to leave the set with a capacity of 0 but its first
 * array allocated, which the next reservation of 0 sources took for
 * "reserved": the next poll crashed in map_build (NULL map) or, on Windows,
 * writing the wait result to a NULL array once woken while asleep. Each
 * allocation of the first sleeping poll fails once; then a remote wake-up
 * must reach a sleeping, empty context. */
Test(faults, regress_half_failed_reservation, .timeout = 120)
{
    for (unsigned nth = 1;; nth++) {
        cr_assert(nth < 100);
        fx f;
        fx_init(&f);
        f.hook_bh = aio_bh_new(f.ctx, tc_count_cb, &f.hook_bh_ran);
        cr_assert_not_null(f.hook_bh);
        setup_timer(&f);
        /* The first polls of the context, so that they build its set: the
         * first accepts the timer's notification, the second sleeps until
         * the timer, 50 ms away. */
        aio_timer_mod(f.timer, aio_clock_ns() + 50000000);
        aio__fault_arm(AIO_FAULT_ALLOC, nth, ENOMEM);
        int ret = aio_poll(f.ctx, true);
        if (ret >= 0 || ret == -ENOMEM) {
            int again = aio_poll(f.ctx, true);
            ret = ret < 0 ? ret : again;
        }
        aio__fault_disarm();
        bool fired = aio__fault_fired(AIO_FAULT_ALLOC);
        cr_assert(ret >= 0 || ret == -ENOMEM, "allocation #%u: %s", nth, aio_strerror(ret));
        aio_timer_del(f.timer);
        tc_poll_idle(f.ctx, 10);
        tc_expect_wake(f.ctx, &f.hook_bh_ran, 1, 50, schedule_count, &f,
                       "a BH scheduled after a failed reservation");
        fx_fini(&f);
        if (!fired) {
            break;
        }
    }
}

/* EINTR from the wait is no error and loses nothing: the kick written
 * while the poll was on its way to sleep stays signalled, so the next
 * blocking poll returns at once and delivers the BH. */
Test(faults, eintr_wait_keeps_the_wake_up)
{
#if defined(_WIN32)
    cr_skip_test("no EINTR on Windows");
#else
    fx f;
    fx_init(&f);
    setup_poll_woken(&f);
    aio__fault_arm(AIO_FAULT_WAIT, 1, EINTR);
    tc_poll_result r = tc_poll_blocking_bounded(f.ctx, TC_BOUND_MS);
    aio__fault_disarm();
    cr_assert(aio__fault_fired(AIO_FAULT_WAIT));
    cr_assert_geq(r.ret, 0, "EINTR surfaced: %s", aio_strerror(r.ret));
    cr_assert(!r.rescued);
    post_poll_woken(&f, r.ret);
    fx_fini(&f);
#endif
}

/* The pipe+poll backend shares its struct with the hybrid eventfd+ppoll
 * one, whose epoll descriptor it never opens; left at calloc's 0, the
 * teardown closed descriptor 0, which belongs to someone else (the leak
 * check of the sweep saw one descriptor fewer after than before). */
Test(faults, regress_teardown_closes_no_foreign_descriptor)
{
#if defined(_WIN32)
    cr_skip_test("POSIX descriptors");
#else
    int probe = dup(1);
    cr_assert_geq(probe, 0);
    /* Make descriptor 0 one of ours whatever the runner left there. */
    cr_assert_eq(dup2(probe, 0), 0);
    AioContext *ctx = tc_ctx_new();
    aio_context_unref(ctx);
    cr_assert_neq(fcntl(0, F_GETFD), -1, "the context's teardown closed descriptor 0");
    close(probe);
#endif
}
