/* SPDX-License-Identifier: MIT */
/*
 * What a registration names, and for how long (POSIX: descriptors and
 * fork()). aio.h promises:
 *  - a descriptor closed before its handler is removed keeps being watched
 *    as the file it named, the same way on every backend, and after the
 *    removal returns it never wakes the loop again, even when the file
 *    lives on elsewhere;
 *  - descriptors that cannot be polled (regular files, /dev/null) are
 *    always ready on every backend, whatever the context's history;
 *  - a child that inherited a context cannot harm the parent through it,
 *    whatever it does: free it, poll it, notify it; aio_context_after_fork
 *    gives it a context of its own (keeping the notifications it has, making
 *    none up), and refuses one still attached to a host loop.
 */
/* mkstemp() and O_CLOEXEC are POSIX.1-2008, hidden by a strict -std=c11. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "test-common.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

/* A blocking poll loop until *fired, counting the polls: a loop that spins
 * on a descriptor it should no longer watch makes thousands. */
static int polls_until(AioContext *ctx, atomic_int *fired, int64_t bound_ms)
{
    int64_t start = tsup_now_ns();
    int polls = 0;
    while (!atomic_load(fired) && tsup_ms_since(start) < bound_ms) {
        cr_assert_geq(aio_poll(ctx, true), 0);
        polls++;
    }
    cr_assert(atomic_load(fired), "timer did not fire within %lld ms", (long long)bound_ms);
    return polls;
}

static void set_flag(void *opaque)
{
    atomic_store((atomic_int *)opaque, 1);
}

/* Defect: epoll kept a descriptor closed before removal in its set when the
 * file lived on (here: a dup), its events named the freed source, the loop
 * spun, and once the address was reused an unrelated handler ran. */
Test(lifetime, removed_after_close_never_wakes_even_if_file_lives_on, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    for (int round = 0; round < 50; round++) {
        aio_fd_t p[2], q[2];
        cr_assert_eq(tsup_pipe(p), 0);
        int keep = dup(p[0]); /* the open file outlives the user's close */
        cr_assert_geq(keep, 0);
        atomic_int hits = 0, qhits = 0;
        cr_assert_eq(aio_set_fd_handler(ctx, p[0], false, tc_count_cb, NULL, NULL, &hits), 0);
        cr_assert_eq(aio_poll(ctx, false), 0);
        close(p[0]);
        cr_assert_eq(aio_set_fd_handler(ctx, p[0], false, NULL, NULL, NULL, NULL), 0);
        cr_assert_eq(tsup_write_byte(p[1]), 1); /* readable through keep */

        /* Likely reuses p[0]'s number (and the freed record's memory). */
        cr_assert_eq(tsup_pipe(q), 0);
        cr_assert_eq(aio_set_fd_handler(ctx, q[0], false, tc_count_cb, NULL, NULL, &qhits), 0);
        int ran = 0;
        for (int i = 0; i < 20; i++) {
            ran += aio_poll(ctx, false) == 1;
        }
        cr_assert_eq(ran, 0, "round %d: %d non-blocking polls ran a callback", round, ran);
        cr_assert_eq(atomic_load(&hits), 0, "removed handler ran");
        cr_assert_eq(atomic_load(&qhits), 0, "an unrelated handler ran for the removed file");

        /* And a blocking poll sleeps until its timer instead of spinning. */
        if (round % 10 == 0) {
            atomic_int fired = 0;
            AioTimer *t = aio_timer_new(ctx, set_flag, &fired);
            aio_timer_mod(t, aio_clock_ns() + 20 * 1000 * 1000);
            int polls = polls_until(ctx, &fired, TC_BOUND_MS);
            cr_assert_leq(polls, 3, "round %d: %d blocking polls before a 20 ms timer", round,
                          polls);
            aio_timer_free(t);
        }
        cr_assert_eq(aio_set_fd_handler(ctx, q[0], false, NULL, NULL, NULL, NULL), 0);
        close(q[0]);
        close(q[1]);
        close(keep);
        close(p[1]);
    }
    aio_context_unref(ctx);
}

/* Closed but not yet removed: the same on every backend. The registration
 * watches the file it was made for (no spurious "invalid descriptor"
 * readiness, no silent loss of real events), until it is removed. */
Test(lifetime, closed_but_registered_watches_its_file_on_every_backend, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    aio_fd_t p[2];
    cr_assert_eq(tsup_pipe(p), 0);
    aio_fd_t rfd = p[0];
    atomic_int hits = 0;
    cr_assert_eq(aio_set_fd_handler(ctx, rfd, false, tc_count_cb, NULL, NULL, &hits), 0);
    close(rfd);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(aio_poll(ctx, false), 0, "a closed descriptor with no data made a poll run");
    }
    cr_assert_eq(atomic_load(&hits), 0);

    cr_assert_eq(tsup_write_byte(p[1]), 1);
    cr_assert(tc_poll_until(ctx, &hits, 1, TC_BOUND_MS),
              "data on the file of a closed, still registered descriptor was not reported");

    cr_assert_eq(aio_set_fd_handler(ctx, rfd, false, NULL, NULL, NULL, NULL), 0);
    int before = atomic_load(&hits);
    cr_assert_eq(tc_poll_idle(ctx, 10), 0);
    cr_assert_eq(atomic_load(&hits), before, "handler ran after its removal returned");
    close(p[1]);
    aio_context_unref(ctx);
}

/* ---- descriptors that cannot be polled ---------------------------------- */

static int open_tmpfile(void)
{
    char path[] = "/tmp/aiopoll-lifetime-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    return fd;
}

static void expect_always_ready(AioContext *ctx, int fd, const char *what)
{
    atomic_int rd = 0, wr = 0;
    int ret = aio_set_fd_handler(ctx, fd, false, tc_count_cb, tc_count_cb, NULL, &rd);
    cr_assert_eq(ret, 0, "%s on %s: registering returned %s", what, aio_context_backend(ctx),
                 aio_strerror(ret));
    cr_assert_eq(aio_set_fd_handler(ctx, fd, false, tc_count_cb, NULL, NULL, &rd), 0);
    cr_assert_eq(aio_poll(ctx, false), 1, "%s is not reported ready", what);
    cr_assert_geq(atomic_load(&rd), 1);
    cr_assert_eq(aio_set_fd_handler(ctx, fd, false, NULL, tc_count_cb, NULL, &wr), 0);
    cr_assert_eq(aio_poll(ctx, false), 1, "%s is not reported writable", what);
    cr_assert_geq(atomic_load(&wr), 1);
    cr_assert_eq(aio_set_fd_handler(ctx, fd, false, NULL, NULL, NULL, NULL), 0);
    cr_assert_eq(tc_poll_idle(ctx, 10), 0, "%s still reported after removal", what);
}

static void unpollable_case(bool many_first)
{
    AioContext *ctx = tc_ctx_new();
    enum { MANY = 12 }; /* above the eventfd+ppoll -> epoll switch */
    aio_fd_t pipes[MANY][2];
    atomic_int idle = 0;
    if (many_first) {
        for (int i = 0; i < MANY; i++) {
            cr_assert_eq(tsup_pipe(pipes[i]), 0);
            cr_assert_eq(aio_set_fd_handler(ctx, pipes[i][0], false, tc_count_cb, NULL, NULL,
                                            &idle), 0);
        }
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    cr_assert_geq(devnull, 0);
    int file = open_tmpfile();
    expect_always_ready(ctx, devnull, "/dev/null");
    expect_always_ready(ctx, file, "a regular file");
    if (!many_first) {
        /* Registered before the switch, still there after it. */
        atomic_int rd = 0;
        cr_assert_eq(aio_set_fd_handler(ctx, file, false, tc_count_cb, NULL, NULL, &rd), 0);
        for (int i = 0; i < MANY; i++) {
            cr_assert_eq(tsup_pipe(pipes[i]), 0);
            cr_assert_eq(aio_set_fd_handler(ctx, pipes[i][0], false, tc_count_cb, NULL, NULL,
                                            &idle), 0);
        }
        cr_assert_eq(aio_poll(ctx, false), 1, "a regular file registered before %d pipes",
                     MANY);
        cr_assert_geq(atomic_load(&rd), 1);
        cr_assert_eq(aio_set_fd_handler(ctx, file, false, NULL, NULL, NULL, NULL), 0);
    }
    cr_assert_eq(atomic_load(&idle), 0);
    for (int i = 0; i < MANY; i++) {
        cr_assert_eq(aio_set_fd_handler(ctx, pipes[i][0], false, NULL, NULL, NULL, NULL), 0);
        close(pipes[i][0]);
        close(pipes[i][1]);
    }
    close(devnull);
    close(file);
    aio_context_unref(ctx);
}

Test(lifetime, unpollable_descriptors_always_ready, .timeout = 20)
{
    unpollable_case(false);
}

Test(lifetime, unpollable_descriptors_always_ready_after_many, .timeout = 20)
{
    unpollable_case(true);
}

/* ---- fork() ------------------------------------------------------------------ */

/* A context whose handler counts the readable events of a pipe's read end
 * into *hits; ctx_reading_free() removes it and closes the pipe. */
static AioContext *ctx_reading(aio_fd_t p[2], atomic_int *hits)
{
    AioContext *ctx = tc_ctx_new();
    cr_assert_eq(tsup_pipe(p), 0);
    cr_assert_eq(aio_set_fd_handler(ctx, p[0], false, tc_count_cb, NULL, NULL, hits), 0);
    return ctx;
}

static void ctx_reading_free(AioContext *ctx, aio_fd_t p[2])
{
    cr_assert_eq(aio_set_fd_handler(ctx, p[0], false, NULL, NULL, NULL, NULL), 0);
    close(p[0]);
    close(p[1]);
    aio_context_unref(ctx);
}

static int wait_child(pid_t pid)
{
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "child did not exit normally");
    return WEXITSTATUS(status);
}

Test(lifetime, fork_child_free_leaves_parent_registrations, .timeout = 20)
{
    aio_fd_t p[2];
    atomic_int hits = 0;
    AioContext *ctx = ctx_reading(p, &hits);
    cr_assert_eq(aio_poll(ctx, false), 0);

    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        aio_context_unref(ctx);
        _exit(0);
    }
    cr_assert_eq(wait_child(pid), 0);

    cr_assert_eq(tsup_write_byte(p[1]), 1);
    cr_assert(tc_poll_until(ctx, &hits, 1, TC_BOUND_MS),
              "parent's handler never ran after the child freed its copy");
    ctx_reading_free(ctx, p);
}

/* The child is forked at the worst moment: the parent's home thread has
 * announced its sleep, a notification has kicked the shared wake-up object,
 * and the sleep has not begun. The child then goes on with that poll (it
 * returns from the hook like the parent), calls everything it may on the
 * context, and frees it. Whatever it does, the parent's sleep must end at
 * once and its registrations must stay. */
typedef struct fork_probe {
    aio_fd_t p[2];
    atomic_int done;
    pid_t parent, child;
    int child_bad;
} fork_probe;

enum {
    CHILD_BLOCKING_POLL_RAN = 1,
    CHILD_NONBLOCKING_POLL_RAN = 2,
    CHILD_REGISTERED = 4,
};

static void fork_before_sleep_hook(AioContext *ctx, AioHookPoint point, void *opaque)
{
    fork_probe *fp = opaque;
    if (point != AIO_HOOK_BEFORE_SLEEP || atomic_exchange(&fp->done, 1)) {
        return;
    }
    aio_notify(ctx); /* the poll has announced itself: this kicks */
    fp->child = fork();
    if (fp->child == 0) {
        /* Nested in the inherited poll, as a callback would be. */
        if (aio_poll(ctx, true) != -ECHILD) {
            fp->child_bad |= CHILD_BLOCKING_POLL_RAN;
        }
        if (aio_poll(ctx, false) != -ECHILD) {
            fp->child_bad |= CHILD_NONBLOCKING_POLL_RAN;
        }
        aio_notify(ctx);
        if (aio_set_fd_handler(ctx, fp->p[0], false, NULL, NULL, NULL, NULL) != -ECHILD) {
            fp->child_bad |= CHILD_REGISTERED;
        }
        return; /* the child's copy of the outer poll goes on and waits */
    }
    int status = 0;
    fp->child_bad = fp->child > 0 && waitpid(fp->child, &status, 0) == fp->child &&
                            WIFEXITED(status)
                        ? WEXITSTATUS(status)
                        : 255;
}

Test(lifetime, fork_child_poll_notify_unref_leave_parent_wakeup, .timeout = 20)
{
    AioContext *ctx = tc_ctx_new();
    fork_probe fp = {.done = 0, .parent = getpid()};
    cr_assert_eq(tsup_pipe(fp.p), 0);
    atomic_int hits = 0, fired = 0;
    cr_assert_eq(aio_set_fd_handler(ctx, fp.p[0], false, tc_count_cb, NULL, NULL, &hits), 0);
    cr_assert_eq(aio_poll(ctx, false), 0);
    /* Bounds the parent's sleep (no watchdog thread: the child has none). */
    AioTimer *t = aio_timer_new(ctx, set_flag, &fired);
    aio_timer_mod(t, aio_clock_ns() + (int64_t)TC_BOUND_MS * 1000 * 1000);
    /* Accept the arming's notification, so that the next poll means to
     * sleep (until the timer) when it reaches the hook. */
    cr_assert_eq(aio_poll(ctx, true), 0);
    aio__set_test_hook(ctx, fork_before_sleep_hook, &fp);
    int64_t start = tsup_now_ns();
    int ret = aio_poll(ctx, true);
    if (getpid() != fp.parent) {
        aio_context_unref(ctx);
        _exit(fp.child_bad);
    }
    int64_t ms = tsup_ms_since(start);
    aio__set_test_hook(ctx, NULL, NULL);
    cr_assert_geq(ret, 0);
    cr_assert_eq(atomic_load(&fp.done), 1, "the poll never got to sleep");
    cr_assert_eq(fp.child_bad, 0, "child: calls on the inherited context were not refused "
                                  "(flags %d)", fp.child_bad);
    cr_assert(!atomic_load(&fired), "parent slept %lld ms, until its timer, after the child "
                                    "had its wake-up: lost", (long long)ms);
    aio_timer_free(t);

    cr_assert_eq(tsup_write_byte(fp.p[1]), 1);
    cr_assert(tc_poll_until(ctx, &hits, 1, TC_BOUND_MS), "parent's registration was lost");
    cr_assert_eq(aio_set_fd_handler(ctx, fp.p[0], false, NULL, NULL, NULL, NULL), 0);
    close(fp.p[0]);
    close(fp.p[1]);
    aio_context_unref(ctx);
}

static void child_uses_reinit(AioContext *ctx, aio_fd_t p[2], atomic_int *hits)
{
    int bad = 0;
    atomic_int bh_ran = 0;
    if (aio_context_after_fork(ctx) != 0) {
        _exit(1);
    }
    if (aio_bh_schedule_oneshot(ctx, tc_count_cb, &bh_ran) != 0) {
        _exit(2);
    }
    for (int i = 0; i < 100 && !atomic_load(&bh_ran); i++) {
        aio_poll(ctx, true);
    }
    bad |= atomic_load(&bh_ran) ? 0 : 4;
    if (tsup_write_byte(p[1]) != 1) {
        _exit(8);
    }
    /* A bounded blocking wait for the handler: a timer ends it. */
    atomic_int fired = 0;
    AioTimer *t = aio_timer_new(ctx, set_flag, &fired);
    aio_timer_mod(t, aio_clock_ns() + 2000LL * 1000 * 1000);
    while (!atomic_load(hits) && !atomic_load(&fired)) {
        aio_poll(ctx, true);
    }
    bad |= atomic_load(hits) ? 0 : 16;
    aio_timer_free(t);
    if (aio_set_fd_handler(ctx, p[0], false, NULL, NULL, NULL, NULL) != 0) {
        bad |= 32;
    }
    aio_context_unref(ctx);
    _exit(bad);
}

Test(lifetime, after_fork_gives_the_child_its_own_context, .timeout = 30)
{
    aio_fd_t p[2];
    atomic_int hits = 0;
    AioContext *ctx = ctx_reading(p, &hits);
    cr_assert_eq(aio_context_after_fork(ctx), 0, "no-op in the process that made it");
    cr_assert_eq(aio_poll(ctx, false), 0);

    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        child_uses_reinit(ctx, p, &hits);
    }
    cr_assert_eq(wait_child(pid), 0, "the child's re-initialised context failed");
    /* The child left a byte in the pipe: the parent's registration (never
     * touched by the child's removal) reports it. */
    cr_assert(tc_poll_until(ctx, &hits, 1, TC_BOUND_MS), "parent's registration was lost");
    ctx_reading_free(ctx, p);
}

/* aio_context_after_fork() hands the child the notifications it has and
 * makes none up. Made up, the child's first blocking poll returns at once
 * with nothing to do; lost (say, the inherited counters reset as if
 * everything were accepted), a notification the child made before the call
 * never ends a wait. Each child polls once, against a timer armed and
 * accepted in the parent, so that only the notification can end its wait
 * early. */
enum {
    CHILD_REINIT_FAILED = 1,
    CHILD_POLL_FAILED = 2,
    CHILD_WOKE_FOR_NOTHING = 4,
    CHILD_LOST_ITS_NOTIFICATION = 8,
};

static int child_polls_once_after_reinit(AioContext *ctx, bool notify_first,
                                          atomic_int *fired)
{
    int bad = 0;
    if (notify_first) {
        aio_notify(ctx); /* recorded in the child's memory only (aio.h) */
    }
    if (aio_context_after_fork(ctx) != 0) {
        return CHILD_REINIT_FAILED;
    }
    if (aio_poll(ctx, true) < 0) {
        bad |= CHILD_POLL_FAILED;
    }
    if (!notify_first && !atomic_load(fired)) {
        bad |= CHILD_WOKE_FOR_NOTHING;
    }
    if (notify_first && atomic_load(fired)) {
        bad |= CHILD_LOST_ITS_NOTIFICATION;
    }
    return bad;
}

static int fork_and_poll_once(AioContext *ctx, bool notify_first, atomic_int *fired)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        _exit(child_polls_once_after_reinit(ctx, notify_first, fired));
    }
    return wait_child(pid);
}

Test(lifetime, after_fork_keeps_the_childs_notifications_and_makes_none_up, .timeout = 30)
{
    AioContext *ctx = tc_ctx_new();
    atomic_int fired = 0;
    AioTimer *t = aio_timer_new(ctx, set_flag, &fired);

    /* Accept the arming's notification: nothing is pending at the fork. */
    aio_timer_mod(t, aio_clock_ns() + 200LL * 1000 * 1000);
    cr_assert_eq(aio_poll(ctx, true), 0);
    cr_assert(!atomic_load(&fired));
    int bad = fork_and_poll_once(ctx, false, &fired);
    cr_assert_eq(bad, 0, "the child's first blocking poll after aio_context_after_fork: "
                         "flags %d", bad);

    aio_timer_mod(t, aio_clock_ns() + (int64_t)TC_BOUND_MS * 1000 * 1000);
    cr_assert_eq(aio_poll(ctx, true), 0);
    cr_assert(!atomic_load(&fired));
    bad = fork_and_poll_once(ctx, true, &fired);
    cr_assert_eq(bad, 0, "a notification the child made before aio_context_after_fork: "
                         "flags %d", bad);

    aio_timer_free(t);
    aio_context_unref(ctx);
}

/* A context attached to a host loop when the process forked: the child's
 * aio_context_after_fork() refuses (-EBUSY) instead of resetting the home
 * word and the announcement under the inherited embedding; the child
 * detaches (its own memory only), re-initialises, polls, and attaches
 * again; the parent's embedding and registration are untouched. */
enum {
    CHILD_REINIT_NOT_REFUSED = 1,
    CHILD_DETACH_FAILED = 2,
    CHILD_REINIT_AFTER_DETACH = 4,
    CHILD_BH_NEVER_RAN = 8,
    CHILD_REATTACH_FAILED = 16,
};

static int child_detaches_then_reinits(AioContext *ctx)
{
    int bad = 0;
    atomic_int ran = 0;
    if (aio_context_after_fork(ctx) != -EBUSY) {
        bad |= CHILD_REINIT_NOT_REFUSED;
    }
    if (aio_embed_detach(ctx) != 0) {
        bad |= CHILD_DETACH_FAILED;
    }
    if (aio_context_after_fork(ctx) != 0) {
        return bad | CHILD_REINIT_AFTER_DETACH;
    }
    if (aio_bh_schedule_oneshot(ctx, tc_count_cb, &ran) != 0 || aio_poll(ctx, true) != 1 ||
        !atomic_load(&ran)) {
        bad |= CHILD_BH_NEVER_RAN;
    }
    if (aio_embed_attach(ctx, NULL) != 0 || aio_embed_detach(ctx) != 0) {
        bad |= CHILD_REATTACH_FAILED;
    }
    return bad;
}

Test(lifetime, after_fork_refuses_an_attached_context_until_the_child_detaches, .timeout = 30)
{
    aio_fd_t p[2];
    atomic_int hits = 0;
    AioContext *ctx = ctx_reading(p, &hits);
    cr_assert_eq(aio_embed_attach(ctx, NULL), 0);
    int64_t ns;
    cr_assert_geq(aio_embed_prepare(ctx, &ns), 0); /* announced at the fork */

    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int bad = child_detaches_then_reinits(ctx);
        aio_context_unref(ctx);
        _exit(bad);
    }
    int bad = wait_child(pid);
    cr_assert_eq(bad, 0, "the child's detach and re-initialisation: flags %d", bad);
    /* The parent's host iteration goes on: the byte wakes its check. */
    cr_assert_eq(tsup_write_byte(p[1]), 1);
    cr_assert_eq(aio_embed_check(ctx), 1, "the parent's embedding lost its readiness");
    cr_assert_geq(aio_embed_dispatch(ctx), 1);
    cr_assert_eq(atomic_load(&hits), 1);
    cr_assert_eq(aio_embed_detach(ctx), 0);
    ctx_reading_free(ctx, p);
}

/* ---- fork() while another thread holds a process-wide lock --------------- */

/* The virtual clock's locks and aio_wait_while's waiter list are the
 * process's, not a context's, so aio.h's fork precondition (no other thread
 * inside a call on *the* context) does not keep them free. A thread of the
 * parent is held, by a hook, inside aio_virtual_clock_set_ns() (list lock
 * held, notifying) or inside aio_wait_kick() (waiter lock held) while the
 * test thread forks. The hook lets go once the fork happened, or after
 * 300 ms: with the fork handlers (src/fork.c) the fork itself waits for the
 * lock, so the hook times out and the child gets the locks free; without
 * them the child inherits them held and its calls below hang until the
 * alarm kills it. */
typedef struct fork_locked {
    AioHookPoint point;
    atomic_int inside, forked, release;
    AioContext *waiting; /* the aio_wait_while context (AIO_HOOK_WAIT_KICK) */
} fork_locked;

static void fork_locked_hook(AioContext *ctx, AioHookPoint point, void *opaque)
{
    (void)ctx;
    fork_locked *fl = opaque;
    if (point == fl->point && !atomic_exchange(&fl->inside, 1)) {
        (void)tsup_wait_flag(&fl->forked, 300);
    }
}

static void fork_locked_set(void *arg)
{
    (void)arg;
    /* Stopped (fork_while_held): setting it to its reading always succeeds,
     * and so always notifies. */
    cr_assert_eq(aio_virtual_clock_set_ns(aio_clock_get_ns(AIO_CLOCK_VIRTUAL)), 0);
}

static void fork_locked_kick(void *arg)
{
    (void)arg;
    aio_wait_kick();
}

static bool fork_locked_not_released(void *opaque)
{
    return !atomic_load(&((fork_locked *)opaque)->release);
}

static void fork_locked_wait(void *arg)
{
    fork_locked *fl = arg;
    cr_assert_eq(aio_context_set_home_thread(fl->waiting), 0);
    cr_assert_eq(aio_wait_while(fl->waiting, fork_locked_not_released, fl), 0);
}

/* Detached, with a done flag instead of a join: the child of a fork made
 * while such a thread runs inherits no joinable thread that it could be
 * told it leaked (TSan checks the child's threads at its exit). */
typedef struct fork_thread {
    void (*fn)(void *);
    void *arg;
    atomic_int done;
} fork_thread;

static void *fork_thread_main(void *opaque)
{
    fork_thread *ft = opaque;
    ft->fn(ft->arg);
    atomic_store(&ft->done, 1);
    return NULL;
}

static void fork_thread_start(fork_thread *ft, void (*fn)(void *), void *arg)
{
    *ft = (fork_thread){.fn = fn, .arg = arg};
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    cr_assert_eq(pthread_create(&t, &attr, fork_thread_main, ft), 0);
    pthread_attr_destroy(&attr);
}

static void fork_while_held(AioHookPoint point)
{
    fork_locked fl = {.point = point};
    aio_virtual_clock_stop();
    /* Inherited by the child: a context with a VIRTUAL timer, whose unref
     * there unlists it (the list lock). */
    AioContext *inherited = tc_ctx_new();
    AioTimer *vt = aio_timer_new_on(inherited, AIO_CLOCK_VIRTUAL, tc_count_cb, NULL);
    cr_assert_not_null(vt);
    fork_thread waiter = {0}, holder = {0};
    bool waiting = point == AIO_HOOK_WAIT_KICK;
    if (waiting) {
        fl.waiting = aio_context_new();
        cr_assert_not_null(fl.waiting);
        aio__set_test_hook(fl.waiting, fork_locked_hook, &fl);
        fork_thread_start(&waiter, fork_locked_wait, &fl);
    } else {
        aio__set_test_hook(inherited, fork_locked_hook, &fl);
    }
    /* aio_wait_kick notifies only once the waiter is listed: kick (or set)
     * again until the hook says it was reached. */
    for (int i = 0; i < 200 && !atomic_load(&fl.inside); i++) {
        if (i > 0) {
            cr_assert(tsup_wait_flag(&holder.done, TC_BOUND_MS));
        }
        fork_thread_start(&holder, waiting ? fork_locked_kick : fork_locked_set, NULL);
        tsup_sleep_ms(5);
    }
    cr_assert(atomic_load(&fl.inside), "the hook was never reached");

    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        alarm(3);
        (void)aio_clock_get_ns(AIO_CLOCK_VIRTUAL);  /* the clock's lock */
        aio_timer_free(vt);
        aio_context_unref(inherited);               /* the list lock */
        aio_wait_kick();                            /* the waiter lock */
        AioContext *own = aio_context_new();
        AioTimer *t = aio_timer_new_on(own, AIO_CLOCK_VIRTUAL, tc_count_cb, NULL);
        aio_timer_free(t);
        aio_context_unref(own);
        _exit(0);
    }
    atomic_store(&fl.forked, 1);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(tsup_wait_flag(&holder.done, TC_BOUND_MS));
    if (waiting) {
        atomic_store(&fl.release, 1);
        aio_wait_kick();
        cr_assert(tsup_wait_flag(&waiter.done, TC_BOUND_MS));
        aio_context_unref(fl.waiting);
    }
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the child hung on a lock the parent's other thread held at fork() (%s)",
              WIFSIGNALED(status) ? "killed by the alarm" : "bad exit");
    aio_timer_free(vt);
    aio_context_unref(inherited);
    aio_virtual_clock_start();
}

Test(lifetime, fork_during_a_virtual_clock_change_leaves_the_child_usable, .timeout = 30)
{
    fork_while_held(AIO_HOOK_VCLOCK_NOTIFY);
}

Test(lifetime, fork_during_a_wait_kick_leaves_the_child_usable, .timeout = 30)
{
    fork_while_held(AIO_HOOK_WAIT_KICK);
}
