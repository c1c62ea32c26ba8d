/* SPDX-License-Identifier: MIT */
/*
 * The eventfd+ppoll backend moves to epoll once more than a threshold of
 * sources is watched (src/posix/backend-poll.c). Linux only; registered to
 * run with AIOPOLL_BACKEND=eventfd+ppoll and AIOPOLL_EPOLL_THRESHOLD set
 * (tests/CMakeLists.txt), so that it tests the mechanism and not the value
 * of the default threshold.
 *
 * Documented behaviour: the switch is one-way. Once switched, the context
 * stays on epoll after sources are removed again.
 */
#include "test-common.h"

#include <stdlib.h>
#include <string.h>

#define MAXP 256

typedef struct pipe_src {
    aio_fd_t fds[2];
    atomic_int calls;
} pipe_src;

static pipe_src pipes[MAXP];

static void read_cb(void *opaque)
{
    pipe_src *p = opaque;
    tsup_drain(p->fds[0]);
    atomic_fetch_add(&p->calls, 1);
}

static long threshold(void)
{
    return tc_env_long("AIOPOLL_EPOLL_THRESHOLD", 8);
}

static void open_pipes(int n)
{
    for (int i = 0; i < n; i++) {
        cr_assert_eq(tsup_pipe(pipes[i].fds), 0);
        atomic_init(&pipes[i].calls, 0);
    }
}

static void close_pipes(int n)
{
    for (int i = 0; i < n; i++) {
        tsup_close(pipes[i].fds[0]);
        tsup_close(pipes[i].fds[1]);
    }
}

static void add(AioContext *ctx, int i)
{
    cr_assert_eq(aio_set_fd_handler(ctx, pipes[i].fds[0], false, read_cb, NULL, NULL, &pipes[i]),
                 0);
}

static void del(AioContext *ctx, int i)
{
    cr_assert_eq(aio_set_fd_handler(ctx, pipes[i].fds[0], false, NULL, NULL, NULL, NULL), 0);
}

/* Writes to every 'stride'-th of the first n pipes and checks that exactly
 * those handlers run, once each. */
static void check_dispatch(AioContext *ctx, int n, int stride)
{
    for (int i = 0; i < n; i++) {
        atomic_store(&pipes[i].calls, 0);
    }
    int want = 0;
    for (int i = 0; i < n; i += stride) {
        cr_assert_eq(tsup_write_byte(pipes[i].fds[1]), 1);
        want++;
    }
    int64_t start = tsup_now_ns();
    int got = 0;
    while (got < want && tsup_ms_since(start) < TC_BOUND_MS) {
        tc_poll_result r = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
        cr_assert_geq(r.ret, 0);
        got = 0;
        for (int i = 0; i < n; i++) {
            got += atomic_load(&pipes[i].calls) > 0;
        }
    }
    for (int i = 0; i < n; i++) {
        int c = atomic_load(&pipes[i].calls);
        if (i % stride == 0) {
            cr_assert_eq(c, 1, "pipe %d: handler ran %d times, want 1", i, c);
        } else {
            cr_assert_eq(c, 0, "pipe %d was not written but its handler ran", i);
        }
    }
}


Test(epoll_switch, switches_above_threshold_and_dispatches, .timeout = 30)
{
    long t = threshold();
    cr_assert(t >= 1 && t + 8 <= MAXP, "AIOPOLL_EPOLL_THRESHOLD=%ld out of the test's range", t);
    int n = (int)t + 8;
    AioContext *ctx = tc_ctx_new();
    open_pipes(n);

    for (int i = 0; i < t; i++) {
        add(ctx, i);
    }
    cr_assert_str_eq(aio_context_backend(ctx), "eventfd+ppoll",
                     "switched with only %ld sources watched", t);
    check_dispatch(ctx, (int)t, 3);

    add(ctx, (int)t); /* one more than the threshold */
    cr_assert_str_eq(aio_context_backend(ctx), "epoll");
    for (int i = (int)t + 1; i < n; i++) {
        add(ctx, i);
    }
    check_dispatch(ctx, n, 1);
    check_dispatch(ctx, n, 5);

    /* Replacing a handler after the switch keeps it working. */
    add(ctx, 0);
    check_dispatch(ctx, n, 2);

    /* One-way: removing sources keeps the context on epoll. */
    for (int i = 1; i < n; i++) {
        del(ctx, i);
    }
    cr_assert_str_eq(aio_context_backend(ctx), "epoll");
    check_dispatch(ctx, 1, 1);
    for (int i = 1; i < n; i++) {
        add(ctx, i);
    }
    check_dispatch(ctx, n, 4);

    aio_context_unref(ctx);
    close_pipes(n);
}

typedef struct remote_reg {
    AioContext *ctx;
    int from, to;     /* register pipes [from, to) */
    int write_index;  /* then write to this one */
} remote_reg;

static void remote_register(void *arg)
{
    remote_reg *r = arg;
    for (int i = r->from; i < r->to; i++) {
        aio_set_fd_handler(r->ctx, pipes[i].fds[0], false, read_cb, NULL, NULL, &pipes[i]);
    }
    tsup_write_byte(pipes[r->write_index].fds[1]);
}

Test(epoll_switch, switch_while_home_thread_sleeps_in_ppoll, .timeout = 30)
{
    long t = threshold();
    cr_assert(t >= 2 && t + 8 <= MAXP);
    int n = (int)t + 8;
    AioContext *ctx = tc_ctx_new();
    open_pipes(n);
    for (int i = 0; i < 2; i++) {
        add(ctx, i);
    }
    cr_assert_str_eq(aio_context_backend(ctx), "eventfd+ppoll");

    /* Another thread registers enough to switch while the home thread is
     * asleep in ppoll(), then makes one of the new descriptors ready. */
    remote_reg r = {.ctx = ctx, .from = 2, .to = n, .write_index = n - 1};
    tc_expect_wake(ctx, &pipes[n - 1].calls, 1, 50, remote_register, &r,
                   "registration that switched to epoll");
    cr_assert_str_eq(aio_context_backend(ctx), "epoll");
    check_dispatch(ctx, n, 3);

    aio_context_unref(ctx);
    close_pipes(n);
}

typedef struct np_arg {
    AioContext *ctx;
    atomic_int stop;
    atomic_int polls;
} np_arg;

static void nonblocking_poller(void *arg)
{
    np_arg *a = arg;
    while (!atomic_load(&a->stop)) {
        int r = aio_poll(a->ctx, false);
        if (r < 0) {
            break;
        }
        atomic_fetch_add(&a->polls, 1);
    }
}

Test(epoll_switch, switch_with_concurrent_nonblocking_polls, .timeout = 30)
{
    long t = threshold();
    cr_assert(t + 8 <= MAXP);
    int n = (int)t + 8;
    AioContext *ctx = tc_ctx_new();
    open_pipes(n);
    np_arg a = {.ctx = ctx};
    tc_thread *th = tc_thread_start(nonblocking_poller, &a);
    cr_assert(tsup_wait_at_least(&a.polls, 1, TC_BOUND_MS), "poller thread did not start");
    for (int i = 0; i < n; i++) {
        add(ctx, i);
        if (i % 4 == 0) {
            tsup_write_byte(pipes[i].fds[1]);
        }
    }
    cr_assert_str_eq(aio_context_backend(ctx), "epoll");
    /* Everything written so far is drained by one thread or the other. */
    int64_t start = tsup_now_ns();
    bool all = false;
    while (!all && tsup_ms_since(start) < TC_BOUND_MS) {
        aio_poll(ctx, false);
        all = true;
        for (int i = 0; i < n; i += 4) {
            all &= atomic_load(&pipes[i].calls) > 0;
        }
    }
    atomic_store(&a.stop, 1);
    cr_assert(tc_thread_join(th, TC_BOUND_MS), "non-blocking poller stuck");
    cr_assert(all, "a ready descriptor was not dispatched across the switch");
    check_dispatch(ctx, n, 2);
    aio_context_unref(ctx);
    close_pipes(n);
}
