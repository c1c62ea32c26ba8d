/* SPDX-License-Identifier: MIT */
/*
 * Bad input: NULL in every object-pointer position of every public function
 * gets -EINVAL / NULL / false or is a no-op; invalid descriptors and poll
 * parameters are refused; tearing down a busy context frees everything
 * (checked by LeakSanitizer in the ASan build); aio_strerror and
 * aiopoll_version.
 */
#include "test-common.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

static void noop_cb(void *opaque)
{
    (void)opaque;
}

static bool noop_poll(void *opaque)
{
    (void)opaque;
    return false;
}

Test(badinput, version_matches_macros, .timeout = 10)
{
    char want[64];

    snprintf(want, sizeof(want), "%d.%d.%d", AIOPOLL_VERSION_MAJOR, AIOPOLL_VERSION_MINOR,
             AIOPOLL_VERSION_PATCH);
    cr_assert_not_null(aiopoll_version());
    cr_assert_str_eq(aiopoll_version(), want);
    cr_assert_eq(AIOPOLL_VERSION_HEX, (AIOPOLL_VERSION_MAJOR << 16) |
                                          (AIOPOLL_VERSION_MINOR << 8) | AIOPOLL_VERSION_PATCH);
}

Test(badinput, strerror_names_the_errors, .timeout = 10)
{
    static const struct {
        int err;
        const char *name;
    } known[] = {
        {EPERM, "EPERM"}, {EINVAL, "EINVAL"}, {EBADF, "EBADF"},
        {ENOMEM, "ENOMEM"}, {EBUSY, "EBUSY"}, {EAGAIN, "EAGAIN"},
        /* ... and every other code the public headers document. */
        {ECHILD, "ECHILD"}, {EMFILE, "EMFILE"}, {ENOTSOCK, "ENOTSOCK"},
        {ENOTSUP, "ENOTSUP"}, {EOVERFLOW, "EOVERFLOW"}, {ECANCELED, "ECANCELED"},
        {ENOSPC, "ENOSPC"},
    };

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        const char *neg = aio_strerror(-known[i].err);
        const char *pos = aio_strerror(known[i].err);
        cr_assert_not_null(neg);
        cr_assert_not_null(pos);
        cr_assert_not_null(strstr(neg, known[i].name), "aio_strerror(-%s) = \"%s\"",
                           known[i].name, neg);
        cr_assert_not_null(strstr(pos, known[i].name), "aio_strerror(%s) = \"%s\"",
                           known[i].name, pos);
    }
}

Test(badinput, strerror_unknown_numbers, .timeout = 10)
{
    static const int odd[] = {0, 1 << 20, -(1 << 20), 99999, -99999, INT_MAX, INT_MIN, -INT_MAX};

    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        const char *s = aio_strerror(odd[i]);
        cr_assert_not_null(s, "aio_strerror(%d) is NULL", odd[i]);
        cr_assert_geq(strlen(s), 1, "aio_strerror(%d) is empty", odd[i]);
    }
}

Test(badinput, null_context, .timeout = 10)
{
    atomic_int dummy;
    AioEventNotifier *n = aio_event_notifier_new(false);
    aio_fd_t p[2];

    atomic_init(&dummy, 0);
    cr_assert_eq(tsup_socketpair(p), 0);
    aio_context_ref(NULL);
    aio_context_unref(NULL);
    cr_assert_eq(aio_context_set_home_thread(NULL), -EINVAL);
    cr_assert(!aio_context_in_home_thread(NULL));
    cr_assert_not_null(aio_context_backend(NULL));
    cr_assert_str_eq(aio_context_backend(NULL), "");
    cr_assert_eq(aio_poll(NULL, true), -EINVAL);
    cr_assert_eq(aio_poll(NULL, false), -EINVAL);
    aio_notify(NULL);
    cr_assert_null(aio_bh_new(NULL, tc_count_cb, &dummy));
    cr_assert_eq(aio_bh_schedule_oneshot(NULL, tc_count_cb, &dummy), -EINVAL);
    cr_assert_eq(aio_set_fd_handler(NULL, p[0], false, noop_cb, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(aio_set_fd_handler(NULL, p[0], false, NULL, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(aio_set_event_notifier(NULL, n, false, noop_cb, NULL, NULL), -EINVAL);
    cr_assert_eq(aio_set_event_notifier(NULL, n, false, NULL, NULL, NULL), -EINVAL);
    aio_disable_external(NULL);
    aio_enable_external(NULL);
    cr_assert_null(aio_timer_new(NULL, tc_count_cb, &dummy));
    cr_assert_eq(aio_context_set_poll_params(NULL, 0, 0, 0), -EINVAL);
    cr_assert_eq(aio_context_set_poll_params(NULL, 1000, 2, 2), -EINVAL);
    cr_assert_eq(atomic_load(&dummy), 0);
    aio_event_notifier_free(n);
    tsup_close(p[0]);
    tsup_close(p[1]);
}

Test(badinput, null_callbacks_and_objects, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    AioBH *bh;

    /* NULL callback. */
    cr_assert_null(aio_bh_new(ctx, NULL, NULL));
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, NULL, NULL), -EINVAL);
    cr_assert_null(aio_timer_new(ctx, NULL, NULL));
    /* NULL opaque is fine. */
    bh = aio_bh_new(ctx, noop_cb, NULL);
    cr_assert_not_null(bh);
    aio_bh_delete(bh);
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, noop_cb, NULL), 0);
    /* NULL objects. */
    aio_bh_schedule(NULL);
    aio_bh_cancel(NULL);
    aio_bh_delete(NULL);
    aio_timer_mod(NULL, 0);
    aio_timer_del(NULL);
    aio_timer_free(NULL);
    cr_assert(!aio_timer_pending(NULL));
    aio_event_notifier_free(NULL);
    cr_assert_eq(aio_event_notifier_set(NULL), -EINVAL);
    cr_assert(!aio_event_notifier_test_and_clear(NULL));
#if defined(_WIN32)
    cr_assert_null(aio_event_notifier_get_handle(NULL));
#else
    cr_assert_eq(aio_event_notifier_get_handle(NULL), -1);
#endif
    cr_assert_eq(aio_set_event_notifier(ctx, NULL, false, noop_cb, NULL, NULL), -EINVAL);
    cr_assert_eq(aio_set_event_notifier(ctx, NULL, false, NULL, NULL, NULL), -EINVAL);
    /* The context is intact. */
    tc_poll_idle(ctx, 10);
    cr_assert_eq(aio_poll(ctx, false), 0);
    aio_context_unref(ctx);
}

Test(badinput, invalid_descriptors, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    int r;

    r = aio_set_fd_handler(ctx, TSUP_INVALID_FD, false, noop_cb, NULL, NULL, NULL);
    cr_assert_eq(r, -EINVAL, "invalid fd: %d (%s)", r, aio_strerror(r));
#if !defined(_WIN32)
    r = aio_set_fd_handler(ctx, -42, false, noop_cb, NULL, NULL, NULL);
    cr_assert_eq(r, -EINVAL, "negative fd: %d (%s)", r, aio_strerror(r));
#endif
    r = aio_set_fd_handler(ctx, tsup_closed_fd(), false, noop_cb, NULL, NULL, NULL);
    cr_assert(tsup_is_closed_fd_error(r), "closed fd: %d (%s)", r, aio_strerror(r));
    r = aio_set_fd_handler(ctx, tsup_closed_fd(), false, NULL, NULL, noop_poll, NULL);
    cr_assert(tsup_is_closed_fd_error(r), "closed fd (io_poll only): %d (%s)", r,
              aio_strerror(r));
    cr_assert_eq(aio_poll(ctx, false), 0);
    aio_context_unref(ctx);
}

Test(badinput, poll_params_validation, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();

    cr_assert_eq(aio_context_set_poll_params(ctx, -1, 0, 0), -EINVAL);
    cr_assert_eq(aio_context_set_poll_params(ctx, INT64_MIN, 0, 0), -EINVAL);
    cr_assert_eq(aio_context_set_poll_params(ctx, 1000, 1, 0), -EINVAL, "grow == 1 accepted");
    cr_assert_eq(aio_context_set_poll_params(ctx, 1000, -2, 0), -EINVAL);
    cr_assert_eq(aio_context_set_poll_params(ctx, 1000, 0, -2), -EINVAL);
    cr_assert_eq(aio_context_set_poll_params(ctx, 0, 0, 0), 0);
    cr_assert_eq(aio_context_set_poll_params(ctx, 50000, 0, 0), 0);
    cr_assert_eq(aio_context_set_poll_params(ctx, 1000, 4, 3), 0);
    cr_assert_eq(aio_context_set_poll_params(ctx, 0, 0, 0), 0);
    /* Still works after a refused call. */
    aio_notify(ctx);
    cr_assert(!tc_poll_blocking_bounded(ctx, TC_BOUND_MS).rescued);
    aio_context_unref(ctx);
}

static bool busy_poll_false(void *opaque)
{
    (void)opaque;
    return false;
}

/* Everything left attached to a context is freed with it; run under ASan,
 * LeakSanitizer reports anything that is not. */
Test(badinput, teardown_with_everything_attached, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int ran;
    aio_fd_t p[2], q[2];
    AioEventNotifier *n = aio_event_notifier_new(true);
    AioEventNotifier *n2 = aio_event_notifier_new(false);
    AioBH *scheduled = aio_bh_new(ctx, tc_count_cb, &ran);
    AioBH *idle = aio_bh_new(ctx, tc_count_cb, &ran);
    AioBH *cancelled = aio_bh_new(ctx, tc_count_cb, &ran);
    AioTimer *armed = aio_timer_new(ctx, tc_count_cb, &ran);
    AioTimer *armed_past = aio_timer_new(ctx, tc_count_cb, &ran);
    AioTimer *unarmed = aio_timer_new(ctx, tc_count_cb, &ran);
    AioBH *deleted = aio_bh_new(ctx, tc_count_cb, &ran);

    atomic_init(&ran, 0);
    cr_assert_eq(tsup_socketpair(p), 0);
    cr_assert_eq(tsup_socketpair(q), 0);
    (void)idle;
    (void)unarmed;
    aio_context_ref(ctx);
    aio_bh_schedule(scheduled);
    aio_bh_schedule(cancelled);
    aio_bh_cancel(cancelled);
    aio_bh_schedule(deleted);
    aio_bh_delete(deleted); /* freed by the context, not yet dispatched */
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &ran), 0);
    }
    aio_timer_mod(armed, aio_clock_ns() + 3600LL * 1000000000LL);
    aio_timer_mod(armed_past, 0);
    cr_assert_eq(aio_set_fd_handler(ctx, p[0], false, tc_count_cb, NULL, NULL, &ran), 0);
    cr_assert_eq(aio_set_fd_handler(ctx, q[1], true, NULL, tc_count_cb, busy_poll_false, &ran),
                 0);
    cr_assert_eq(aio_set_event_notifier(ctx, n, false, tc_count_cb, NULL, &ran), 0);
    cr_assert_eq(aio_set_event_notifier(ctx, n2, true, tc_count_cb, busy_poll_false, &ran), 0);
    cr_assert_eq(aio_context_set_poll_params(ctx, 10000, 0, 0), 0);
    aio_disable_external(ctx);
    aio_notify(ctx);
    aio_context_unref(ctx);
    aio_context_unref(ctx); /* the last one: frees everything above */
    cr_assert_eq(atomic_load(&ran), 0, "teardown ran callbacks");
    aio_event_notifier_free(n);
    aio_event_notifier_free(n2);
    tsup_close(p[0]);
    tsup_close(p[1]);
    tsup_close(q[0]);
    tsup_close(q[1]);
}

/* The same after the context ran for a while (lists in non-initial states). */
Test(badinput, teardown_after_use, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int ran;
    AioTimer *t = aio_timer_new(ctx, tc_count_cb, &ran);
    AioBH *bh = aio_bh_new(ctx, tc_count_cb, &ran);

    atomic_init(&ran, 0);
    aio_timer_mod(t, 0);
    aio_bh_schedule(bh);
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &ran), 0);
    cr_assert(tc_poll_until(ctx, &ran, 3, TC_BOUND_MS));
    aio_bh_schedule(bh);
    aio_timer_mod(t, aio_clock_ns() + 1000000000LL);
    aio_bh_delete(bh);
    aio_context_unref(ctx);
}
