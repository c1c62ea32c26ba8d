/* SPDX-License-Identifier: MIT */
/*
 * A host loop written from docs/embedding.md alone, for tests/test_embed.c
 * and tests/test_embed_win32.c: on poll() (POSIX), on
 * WaitForMultipleObjects (Windows; the win32 backend always gives one
 * HANDLE); and the small records its tests share. Test thread only (it
 * asserts).
 */
#ifndef AIOPOLL_TEST_EMBED_HOST_H
#define AIOPOLL_TEST_EMBED_HOST_H

#include "test-common.h" /* first: aio.h includes winsock2.h before windows.h */

#include <stdio.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <poll.h>
#include <unistd.h>
#endif

/* A host sleep never lasts longer than this; one that runs into it although
 * the context asked for longer is a lost wake-up. */
#define HOST_BOUND_MS TC_BOUND_MS
#define HOST_MAX_FDS 64

typedef struct host_iter {
    int64_t timeout_ns; /* what prepare said */
    bool lost;          /* the sleep ran into HOST_BOUND_MS */
    int check;
    int dispatch;
} host_iter;

typedef struct remote_bh {
    AioContext *ctx;
    atomic_int *counter;
} remote_bh;

typedef struct fd_reader {
    AioContext *ctx;  /* for a registration from another thread */
    aio_fd_t p[2];    /* a pipe (Windows: a socket pair); p[0] is registered */
    atomic_int reads; /* a byte was there */
    atomic_int empty; /* called with nothing to read */
} fd_reader;

typedef struct notifier_reader {
    AioEventNotifier *n;
    atomic_int count;
} notifier_reader;

/* The host's own sleep on what query returned: > 0 when something is
 * ready, 0 when ms passed. */
static inline int host_wait(const AioEmbedFd *fds, int n, int ms)
{
#ifdef _WIN32
    HANDLE h[HOST_MAX_FDS];
    for (int i = 0; i < n; i++) {
        h[i] = fds[i].handle;
    }
    DWORD r = WaitForMultipleObjects((DWORD)n, h, FALSE, (DWORD)ms);
    cr_assert(r < WAIT_OBJECT_0 + (DWORD)n || r == WAIT_TIMEOUT, "WaitForMultipleObjects: %lu",
              (unsigned long)r);
    return r != WAIT_TIMEOUT;
#else
    struct pollfd pfd[HOST_MAX_FDS];
    for (int i = 0; i < n; i++) {
        pfd[i].fd = fds[i].handle;
        pfd[i].events = (short)((fds[i].events & AIO_EMBED_READ ? POLLIN : 0) |
                                (fds[i].events & AIO_EMBED_WRITE ? POLLOUT : 0));
        pfd[i].revents = 0;
    }
    int r = poll(pfd, (nfds_t)n, ms);
    cr_assert(r >= 0, "poll: %d", r);
    return r;
#endif
}

/* The host's sleep, then check and (if it says so) dispatch; prepare done. */
static inline host_iter host_sleep_check_dispatch(AioContext *ctx, int64_t ns, int bound_ms)
{
    host_iter it = {.timeout_ns = ns};
    AioEmbedFd fds[HOST_MAX_FDS];
    int n = aio_embed_query(ctx, fds, HOST_MAX_FDS);
    cr_assert(n >= 1 && n <= HOST_MAX_FDS, "aio_embed_query: %d", n);
    /* Round up: a timer seen early only makes the host sleep again, but
     * that is the adapter's rule to follow. */
    int64_t ms = ns < 0 ? -1 : ns / 1000000 + (ns % 1000000 != 0);
    bool capped = ms < 0 || ms > bound_ms;
    int r = host_wait(fds, n, capped ? bound_ms : (int)ms);
    it.lost = r == 0 && capped;
    it.check = aio_embed_check(ctx);
    cr_assert_geq(it.check, 0, "aio_embed_check: %d", it.check);
    if (it.check > 0) {
        it.dispatch = aio_embed_dispatch(ctx);
        cr_assert_geq(it.dispatch, 0, "aio_embed_dispatch: %d", it.dispatch);
    }
    return it;
}

/* One host iteration: prepare, query, sleep, check, dispatch. */
static inline host_iter host_iterate(AioContext *ctx, int bound_ms)
{
    int64_t ns = -2;
    int r = aio_embed_prepare(ctx, &ns);
    cr_assert_geq(r, 0, "aio_embed_prepare: %d", r);
    cr_assert_eq(r == 1, ns == 0);
    return host_sleep_check_dispatch(ctx, ns, bound_ms);
}

/* Iterates until *v >= want; false if a host sleep lost its wake-up. */
static inline bool host_run_until(AioContext *ctx, atomic_int *v, int want)
{
    while (atomic_load(v) < want) {
        if (host_iterate(ctx, HOST_BOUND_MS).lost) {
            return false;
        }
    }
    return true;
}

/* Iterates while prepare says there is work (at most 100 times). */
static inline bool host_run_idle(AioContext *ctx)
{
    for (int i = 0; i < 100; i++) {
        int64_t ns;
        if (aio_embed_prepare(ctx, &ns) == 0) {
            return aio_embed_check(ctx) >= 0;
        }
        host_sleep_check_dispatch(ctx, 0, HOST_BOUND_MS);
    }
    return false;
}

#ifndef _WIN32
/* What an adapter writes to stderr between begin and end (its off-home
 * report: tests/test_embed_libevent.c, _libuv.c; POSIX, as they are). */
typedef struct stderr_capture {
    int saved;
    aio_fd_t p[2];
} stderr_capture;

static inline void stderr_capture_begin(stderr_capture *c)
{
    fflush(stderr);
    cr_assert_eq(tsup_pipe(c->p), 0);
    c->saved = dup(2);
    cr_assert(c->saved >= 0 && dup2(c->p[1], 2) == 2);
}

/* How often needle occurs in what was written. */
static inline int stderr_capture_end(stderr_capture *c, const char *needle)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    char buf[4096];
    ssize_t n = read(c->p[0], buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    tsup_close(c->p[0]);
    tsup_close(c->p[1]);
    int count = 0;
    for (const char *at = buf; (at = strstr(at, needle)) != NULL; at += strlen(needle)) {
        count++;
    }
    return count;
}

#endif

/* ---- Callbacks and small scenarios the embedding tests share ---------- */

/* A new context, attached (no adapter: the test is the host). */
static inline AioContext *embedded_new(void)
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(aio_embed_attach(ctx, NULL), 0);
    return ctx;
}

static inline void embedded_free(AioContext *ctx)
{
    cr_assert_eq(aio_embed_detach(ctx), 0);
    aio_context_unref(ctx);
}

static inline void schedule_later(void *p)
{
    remote_bh *r = p;
    tsup_sleep_ms(50);
    aio_bh_schedule_oneshot(r->ctx, tc_count_cb, r->counter);
}

static inline void read_one(void *p)
{
    fd_reader *r = p;
    char c;
#ifdef _WIN32
    bool got = recv(r->p[0], &c, 1, 0) == 1;
#else
    bool got = read(r->p[0], &c, 1) == 1;
#endif
    atomic_fetch_add(got ? &r->reads : &r->empty, 1);
}

/* A pipe (Windows: a loopback socket pair): p[0] reads what p[1] writes. */
static inline int host_pair(aio_fd_t p[2])
{
#ifdef _WIN32
    return tsup_socketpair(p);
#else
    return tsup_pipe(p);
#endif
}

/* A pair whose read end has read_one registered in ctx. */
static inline void reader_open(AioContext *ctx, fd_reader *r)
{
    *r = (fd_reader){0};
    cr_assert_eq(host_pair(r->p), 0);
    cr_assert_eq(aio_set_fd_handler(ctx, r->p[0], false, read_one, NULL, NULL, r), 0);
}

static inline void reader_close(AioContext *ctx, fd_reader *r)
{
    cr_assert_eq(aio_set_fd_handler(ctx, r->p[0], false, NULL, NULL, NULL, NULL), 0);
    tsup_close(r->p[0]);
    tsup_close(r->p[1]);
}

static inline void notifier_cb(void *p)
{
    notifier_reader *r = p;
    if (aio_event_notifier_test_and_clear(r->n)) {
        atomic_fetch_add(&r->count, 1);
    }
}

static inline void set_notifier_later(void *p)
{
    tsup_sleep_ms(30);
    aio_event_notifier_set(p);
}

typedef struct timer_probe {
    int64_t deadline, fired_at;
    atomic_int fired;
} timer_probe;

static inline void timer_cb(void *p)
{
    timer_probe *t = p;
    t->fired_at = aio_clock_ns();
    atomic_store(&t->fired, 1);
}

static inline void notify_and_foreign_poll(void *p)
{
    AioContext *ctx = p;
    aio_notify(ctx);
    /* Must not consume what the host's sleep needs (QEMU b37548fcd1). */
    aio_poll(ctx, false);
    aio_poll(ctx, false);
}

/* Another thread schedules a BH on ctx 50 ms from now, while
 * run(arg, v, want) drives the host loop until *v >= want. */
static inline bool later_bh_runs(AioContext *ctx, atomic_int *v, int want,
                                 bool (*run)(void *, atomic_int *, int), void *arg)
{
    remote_bh r = {ctx, v};
    tc_thread *t = tc_thread_start(schedule_later, &r);
    bool ok = run(arg, v, want);
    bool joined = tc_thread_join(t, TC_BOUND_MS);
    return ok && joined;
}

static inline bool host_runner(void *ctx, atomic_int *v, int want)
{
    return host_run_until(ctx, v, want);
}

/* Blocking aio_poll()s of ctx (nested, from a host callback). */
static inline bool poll_runner(void *ctx, atomic_int *v, int want)
{
    return tc_poll_until(ctx, v, want, TC_BOUND_MS);
}

/* Cross-thread round trips: a producer schedules a BH and waits until it
 * ran before the next; the host loop under test runs them. */
typedef struct pingpong {
    AioContext *ctx;
    atomic_int done, stuck;
    long rounds;
} pingpong;

static inline void producer(void *p)
{
    pingpong *pp = p;
    for (long i = 0; i < pp->rounds; i++) {
        aio_bh_schedule_oneshot(pp->ctx, tc_count_cb, &pp->done);
        if (!tsup_wait_at_least(&pp->done, (int)(i + 1), TC_BOUND_MS * 2)) {
            atomic_store(&pp->stuck, 1);
            return;
        }
    }
}

#endif
