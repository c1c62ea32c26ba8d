/* SPDX-License-Identifier: MIT */
/*
 * The io_uring backend where the system refuses io_uring (Linux only):
 * asked for by name, aio_context_new fails with the system's error and
 * never falls back; the default backend is unaffected. The refusal is a
 * seccomp filter on io_uring_setup, as container runtimes install, with the
 * two answers seen in the field: EPERM (policy, kernel.io_uring_disabled)
 * and ENOSYS (a kernel without io_uring). Also what only this backend has:
 * its ring's descriptor as the embedding's aggregate, and a removal racing
 * the submission of its poll (held there by a test hook).
 */
#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv */
#include "test-common.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "posix/posix-test-hooks.h"

static void refuse_io_uring_setup(int err)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
    cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    cr_assert_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

static void refused_case(int err)
{
    refuse_io_uring_setup(err);
    setenv("AIOPOLL_BACKEND", "io_uring", 1);
    errno = 0;
    AioContext *ctx = aio_context_new();
    cr_assert_null(ctx, "io_uring was refused, yet a context was made on \"%s\"",
                   ctx ? aio_context_backend(ctx) : "");
    cr_assert_eq(errno, err, "errno %d (%s), expected %d", errno, strerror(errno), err);

    unsetenv("AIOPOLL_BACKEND");
    ctx = aio_context_new();
    cr_assert_not_null(ctx, "the default backend failed too");
    cr_assert(strcmp(aio_context_backend(ctx), "io_uring") != 0, "fell back to io_uring");
    atomic_int ran = 0;
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &ran), 0);
    cr_assert_eq(aio_poll(ctx, true), 1);
    cr_assert_eq(atomic_load(&ran), 1);
    aio_context_unref(ctx);
}

Test(io_uring, refused_with_eperm_fails_by_name_only, .timeout = 10)
{
    refused_case(EPERM);
}

Test(io_uring, refused_with_enosys_fails_by_name_only, .timeout = 10)
{
    refused_case(ENOSYS);
}

/* Embeddable (docs/embedding.md): the ring's descriptor is the aggregate,
 * silent while nothing is to reap and readable once aio_notify() kicked the
 * wake-up request that prepare armed in the ring. */
Test(io_uring, embedding_sleeps_on_the_ring_descriptor, .timeout = 10)
{
    setenv("AIOPOLL_BACKEND", "io_uring", 1);
    AioContext *ctx = aio_context_new();
    cr_assert_not_null(ctx, "io_uring: %s", strerror(errno));
    int tag = 0;
    cr_assert_eq(aio_embed_attach(ctx, &tag), 0);
    cr_assert_str_eq(aio_context_backend(ctx), "io_uring");
    int64_t ns;
    cr_assert_eq(aio_embed_prepare(ctx, &ns), 0);
    cr_assert_eq(ns, -1);
    AioEmbedFd f[4];
    cr_assert_eq(aio_embed_query(ctx, f, 4), 1);
    struct pollfd p = {.fd = f[0].handle, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 0), 0, "the ring is readable with nothing to reap");
    aio_notify(ctx);
    cr_assert_eq(poll(&p, 1, TC_BOUND_MS), 1, "the kick did not make the ring readable");
    cr_assert_eq(aio_embed_check(ctx), 1);
    cr_assert_geq(aio_embed_dispatch(ctx), 0);
    /* Consumed: the next sleep is quiet again. */
    cr_assert_eq(aio_embed_prepare(ctx, &ns), 0);
    p.revents = 0;
    cr_assert_eq(poll(&p, 1, 0), 0, "the kick was left on the ring");
    cr_assert_eq(aio_embed_check(ctx), 0);
    cr_assert_eq(aio_embed_detach(ctx), 0);
    atomic_int ran = 0;
    cr_assert_eq(aio_bh_schedule_oneshot(ctx, tc_count_cb, &ran), 0);
    cr_assert_eq(aio_poll(ctx, true), 1);
    cr_assert_eq(atomic_load(&ran), 1);
    aio_context_unref(ctx);
}

/* A removal that finds its poll prepared by the home thread's wait but not
 * yet submitted: the synchronous cancel has nothing to cancel, the enter
 * then puts the poll in the kernel, and the wait must cancel it right
 * after, or the poll keeps the file open (the peer sees no close) until a
 * later blocking poll, which a loop with nothing left to watch never makes. */
typedef struct remove_window {
    AioContext *ctx;
    int fd;
    atomic_int pending;
} remove_window;

static void ignore_cb(void *opaque)
{
    (void)opaque;
}

static void remove_before_submit(void *opaque)
{
    remove_window *w = opaque;
    if (atomic_exchange(&w->pending, 0)) {
        cr_assert_eq(aio_set_fd_handler(w->ctx, w->fd, false, NULL, NULL, NULL, NULL), 0);
        cr_assert_eq(close(w->fd), 0);
    }
}

Test(io_uring, removal_between_prepare_and_submit_releases_the_file, .timeout = 10)
{
    setenv("AIOPOLL_BACKEND", "io_uring", 1);
    AioContext *ctx = aio_context_new();
    cr_assert_not_null(ctx, "io_uring: %s", strerror(errno));
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* Read interest on an end nothing is written to. */
    cr_assert_eq(aio_set_fd_handler(ctx, sv[0], false, ignore_cb, NULL, NULL, NULL), 0);
    remove_window w = {.ctx = ctx, .fd = sv[0]};
    atomic_init(&w.pending, 1);
    aio__set_test_uring_submit_hook(remove_before_submit, &w);
    /* The removal notifies the poll, which returns without sleeping long. */
    tc_poll_result r = tc_poll_blocking_bounded(ctx, TC_BOUND_MS);
    aio__set_test_uring_submit_hook(NULL, NULL);
    cr_assert_eq(atomic_load(&w.pending), 0, "the wait never reached its submission");
    cr_assert_geq(r.ret, 0);
    cr_assert(!r.rescued, "the removal's notification was lost");
    struct pollfd p = {.fd = sv[1], .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 0), 1, "the peer sees no close: a poll in the ring holds the file");
    char c;
    cr_assert_eq(read(sv[1], &c, 1), 0);
    close(sv[1]);
    aio_context_unref(ctx);
}
