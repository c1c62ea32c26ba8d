/* SPDX-License-Identifier: MIT */
/*
 * Windows only: the context waits only on objects it owns.
 *
 * aio_set_event_notifier(ctx, n, ..., NULL, ...) followed by
 * aio_event_notifier_free(n) is allowed at any time, also while the home
 * thread sleeps on a snapshot that still names n, or another thread polls.
 * Windows hands the freed HANDLE value to the next object created, at once.
 * A backend that still waited on the value would then wait on that unrelated
 * object: a zero-timeout WaitForMultipleObjects consumes an auto-reset
 * event's signal and *acquires* a mutex, on the loop thread. Each round here
 * frees a registered notifier at one of those moments, creates a foreign
 * auto-reset event or mutex (which usually takes the freed value), signals
 * it, runs every kind of poll, and checks that the event is still signalled
 * and that no polling thread owns the mutex. More than 64 other notifiers are
 * registered throughout, so blocking polls use the helper threads.
 */
#include "test-common.h" /* first: aio.h includes winsock2.h before windows.h */

#include <windows.h>

#include <stdio.h>
#include <stdlib.h>

#define ROUNDS 1000
#define OTHERS 100 /* > MAXIMUM_WAIT_OBJECTS: helper threads */

enum when {
    HELD_BEFORE_SLEEP,  /* another thread, home held just before its sleep */
    ASLEEP,             /* another thread, home asleep in the backend */
    HOME_NONBLOCKING,   /* in the home thread's own non-blocking poll */
    OTHER_NONBLOCKING,  /* in another thread's non-blocking poll */
    BETWEEN_POLLS,      /* on the home thread, between two polls */
    NWHEN
};
static const char *const when_name[NWHEN] = {
    "held before sleep", "asleep", "home non-blocking poll", "other thread's non-blocking poll",
    "between polls",
};

typedef struct round {
    AioContext *ctx;
    AioEventNotifier *n;
    HANDLE freed_value;
    bool mutex; /* the foreign object is a mutex, else an auto-reset event */
    HANDLE foreign;
    atomic_int removed;
    int remove_ret;
    bool other_owned_mutex; /* a poll on another thread acquired it */
    int other_poll_ret;
} round;

static void notifier_read(void *opaque)
{
    aio_event_notifier_test_and_clear(opaque);
}

/* Remove, free, and create (and signal) the foreign object, back to back, so
 * that the foreign object can take the freed value. */
static void remove_free_create(void *arg)
{
    round *r = arg;
    if (atomic_exchange(&r->removed, 1)) {
        return;
    }
    r->freed_value = aio_event_notifier_get_handle(r->n);
    r->remove_ret = aio_set_event_notifier(r->ctx, r->n, false, NULL, NULL, NULL);
    aio_event_notifier_free(r->n);
    r->n = NULL;
    if (r->mutex) {
        r->foreign = CreateMutexW(NULL, FALSE, NULL);
    } else {
        r->foreign = CreateEventW(NULL, FALSE, FALSE, NULL);
        if (r->foreign) {
            SetEvent(r->foreign);
        }
    }
}

static void hook_remove(AioContext *ctx, AioHookPoint point, void *opaque)
{
    (void)ctx;
    if (point == AIO_HOOK_NONBLOCKING_DISPATCH) {
        remove_free_create(opaque);
    }
}

/* A non-blocking poll on this (non-home) thread; then, since a mutex is
 * owned per thread, whether this thread now owns the foreign mutex. */
static void other_thread_poll(void *arg)
{
    round *r = arg;
    r->other_poll_ret = aio_poll(r->ctx, false);
    if (r->mutex && r->foreign && ReleaseMutex(r->foreign)) {
        r->other_owned_mutex = true;
    }
}

static void run_other_thread_poll(round *r)
{
    tc_thread *t = tc_thread_start(other_thread_poll, r);
    cr_assert(tc_thread_join(t, TC_BOUND_MS), "a non-blocking poll on another thread hung");
    cr_assert_geq(r->other_poll_ret, 0, "aio_poll(ctx, false): %s",
                  aio_strerror(r->other_poll_ret));
}

static void timer_cb(void *opaque)
{
    atomic_fetch_add((atomic_int *)opaque, 1);
}

/* One blocking poll that a short timer bounds even if nothing else is
 * ready. */
static void short_blocking_poll(AioContext *ctx, AioTimer *timer)
{
    aio_timer_mod(timer, aio_clock_ns() + 2 * 1000 * 1000);
    tc_poll_result res = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    cr_assert_geq(res.ret, 0, "aio_poll(ctx, true): %s", aio_strerror(res.ret));
    cr_assert(!res.rescued, "blocking poll with a 2 ms timer needed the watchdog");
    aio_timer_del(timer);
}

Test(win32_handles, freed_notifier_value_reused_by_foreign_objects, .timeout = 300)
{
    AioContext *ctx = tc_ctx_new();
    AioEventNotifier *others[OTHERS];
    for (int i = 0; i < OTHERS; i++) {
        others[i] = aio_event_notifier_new(false);
        cr_assert_not_null(others[i]);
        cr_assert_eq(aio_set_event_notifier(ctx, others[i], false, notifier_read, NULL,
                                            others[i]),
                     0);
    }
    atomic_int fired;
    atomic_init(&fired, 0);
    AioTimer *timer = aio_timer_new(ctx, timer_cb, &fired);
    cr_assert_not_null(timer);

    int reused[NWHEN] = {0};
    for (int i = 0; i < ROUNDS; i++) {
        enum when when = (enum when)(i % NWHEN);
        round r = {.ctx = ctx, .mutex = (i / NWHEN) % 2 == 1};
        atomic_init(&r.removed, 0);
        r.n = aio_event_notifier_new(false);
        cr_assert_not_null(r.n);
        cr_assert_eq(aio_set_event_notifier(ctx, r.n, false, notifier_read, NULL, r.n), 0);
        /* The home thread's cached snapshot (and the backend's handle
         * array) now names the notifier. */
        tc_poll_idle(ctx, 10);

        tc_gate gate;
        atomic_int missed;
        atomic_init(&missed, 0);
        tc_thread *remote;
        switch (when) {
        case HELD_BEFORE_SLEEP:
        case ASLEEP:
            tc_gate_install(ctx, &gate, AIO_HOOK_BEFORE_SLEEP, true);
            remote = tc_remote_when_sleeping(&gate, when == ASLEEP ? 5 : 0, remove_free_create,
                                             &r, &missed);
            /* The removal notifies: the poll ends. */
            cr_assert(tc_poll_until(ctx, &r.removed, 1, TC_BOUND_MS),
                      "round %d: home thread not woken by the removal", i);
            cr_assert(tc_thread_join(remote, TC_BOUND_MS));
            tc_gate_remove(ctx, &gate);
            cr_assert(!atomic_load(&missed), "round %d: home never reached its sleep", i);
            break;
        case HOME_NONBLOCKING:
            aio__set_test_hook(ctx, hook_remove, &r);
            cr_assert_geq(aio_poll(ctx, false), 0);
            aio__set_test_hook(ctx, NULL, NULL);
            break;
        case OTHER_NONBLOCKING:
            aio__set_test_hook(ctx, hook_remove, &r);
            run_other_thread_poll(&r);
            aio__set_test_hook(ctx, NULL, NULL);
            break;
        case BETWEEN_POLLS:
        default:
            remove_free_create(&r);
            break;
        }
        cr_assert_eq(atomic_load(&r.removed), 1, "round %d (%s): nothing removed", i,
                     when_name[when]);
        cr_assert_eq(r.remove_ret, 0, "round %d: removal: %s", i, aio_strerror(r.remove_ret));
        cr_assert_not_null(r.foreign, "round %d: creating the foreign object failed", i);
        reused[when] += r.foreign == r.freed_value;

        /* Every kind of poll, with the foreign object signalled. */
        short_blocking_poll(ctx, timer);
        cr_assert_geq(aio_poll(ctx, false), 0);
        run_other_thread_poll(&r);
        short_blocking_poll(ctx, timer);

        const char *what = r.mutex ? "mutex" : "auto-reset event";
        bool same = r.foreign == r.freed_value;
        if (r.mutex) {
            /* ReleaseMutex succeeds only for the owner: the loop thread. */
            cr_assert(!ReleaseMutex(r.foreign) && !r.other_owned_mutex,
                      "round %d (%s, %s value): a poll on the %s thread acquired a foreign "
                      "mutex",
                      i, when_name[when], same ? "reused" : "fresh",
                      r.other_owned_mutex ? "other" : "home");
        } else {
            cr_assert_eq(WaitForSingleObject(r.foreign, 0), WAIT_OBJECT_0,
                         "round %d (%s, %s value): a poll consumed the signal of a foreign %s",
                         i, when_name[when], same ? "reused" : "fresh", what);
        }
        CloseHandle(r.foreign);
    }

    /* Proof that the rounds exercised what they are about. */
    for (int w = 0; w < NWHEN; w++) {
        cr_assert_gt(reused[w], 0, "%s: the freed value was never reused in %d rounds",
                     when_name[w], ROUNDS / NWHEN);
    }
    cr_log_info("freed value reused: %d, %d, %d, %d, %d of %d rounds each", reused[0],
                reused[1], reused[2], reused[3], reused[4], ROUNDS / NWHEN);

    aio_timer_free(timer);
    for (int i = 0; i < OTHERS; i++) {
        cr_assert_eq(aio_set_event_notifier(ctx, others[i], false, NULL, NULL, NULL), 0);
        aio_event_notifier_free(others[i]);
    }
    aio_context_unref(ctx);
}
