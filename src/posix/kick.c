/* SPDX-License-Identifier: MIT */
/* The eventfd backends' wake-up object: an eventfd and a futex word (kick.h). */
#include <errno.h>
#include <time.h>

#if AIOPOLL_HAVE_FUTEX
#include <sys/syscall.h>
#include <unistd.h>
/* futex(2)'s operations, with FUTEX_PRIVATE_FLAG (128): the kernel's ABI,
 * spelled here because not every C library ships <linux/futex.h> (musl's
 * headers do not). */
#define AIO_FUTEX_WAIT_PRIVATE (0 | 128)
#define AIO_FUTEX_WAKE_PRIVATE (1 | 128)
#endif

#include "kick.h"
#include "posix-test-hooks.h"

#if AIOPOLL_TEST_HOOKS
static _Atomic(AioKickHook *) kick_hook;
static void *_Atomic kick_hook_opaque;

void aio__set_test_kick_hook(AioKickHook *hook, void *opaque)
{
    atomic_store(&kick_hook_opaque, opaque);
    atomic_store(&kick_hook, hook);
}

static void call_kick_hook(void)
{
    AioKickHook *h = atomic_load(&kick_hook);
    if (h) {
        h(atomic_load(&kick_hook_opaque));
    }
}
#else
#define call_kick_hook() ((void)0)
#endif

int aio__kick_open(AioKick *k, bool use_pipe, bool use_word)
{
    int err = aio__notifier_open(&k->fd, use_pipe, false);
    if (err) {
        return err;
    }
    atomic_init(&k->word, 0);
    k->word_wanted = use_word && AIOPOLL_HAVE_FUTEX;
    atomic_init(&k->on, k->word_wanted ? AIO_KICK_AWAKE : AIO_KICK_ON_FD);
    atomic_init(&k->word_usable, k->word_wanted);
    k->last_fd = !k->word_wanted;
    return 0;
}

void aio__kick_close(AioKick *k)
{
    aio__notifier_close(&k->fd);
}

void aio__kick_signal(AioKick *k)
{
    if (!k->word_wanted) {
        aio__notifier_set(&k->fd);
        return;
    }
    /* seq_cst store, then seq_cst load: the kick's half of the pair (kick.h).
     * Loading 'on' first could read "eventfd" or "awake" while the home
     * thread moves to the word and, finding the word still 0, goes to sleep
     * there; our write would then wake nobody (the model's
     * BUG_KICK_LOOK_FIRST). */
    atomic_store(&k->word, 1);
    call_kick_hook();
    unsigned on = atomic_load(&k->on);
#if AIOPOLL_HAVE_FUTEX
    if (on == AIO_KICK_ON_WORD) {
        /* Wakes the sleeper, or nobody: a wait that has not reached the
         * kernel yet compares the word there and does not sleep. */
        (void)syscall(SYS_futex, &k->word, AIO_FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        return;
    }
#endif
    if (on == AIO_KICK_ON_FD) {
        aio__notifier_set(&k->fd);
    }
    /* Awake: the word is all it needs; its next wait looks at it first. */
}

int aio__kick_wait_word(AioKick *k, int64_t timeout_ns, bool *kicked)
{
#if AIOPOLL_HAVE_FUTEX
    /* The wait's half of the pair (kick.h): a kick that read "awake" or
     * "eventfd" before this store has stored the word already, and the
     * load below (or the kernel's compare) sees it; one after it finds us
     * here and wakes the futex. */
    atomic_store(&k->on, AIO_KICK_ON_WORD);
    k->last_fd = false;
    if (timeout_ns != 0) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns > 0) {
            /* Relative, on CLOCK_MONOTONIC, and the kernel never ends it
             * early: no timer fires before its deadline. */
            ts.tv_sec = (time_t)(timeout_ns / 1000000000);
            ts.tv_nsec = (long)(timeout_ns % 1000000000);
            tsp = &ts;
        }
        /* seq_cst load: a kick already stored the word, no system call. (An
         * injected failure replaces the look and the wait alike, as it
         * replaces ppoll's.) */
        long r = AIO_FAULT_CALL(
            AIO_FAULT_WAIT, -1,
            atomic_load(&k->word) != 0
                ? 0
                : syscall(SYS_futex, &k->word, AIO_FUTEX_WAIT_PRIVATE, 0, tsp, NULL, 0));
        /* EAGAIN: the word was no longer 0 (a kick came first); ETIMEDOUT,
         * EINTR: no kick; a wake-up without a kick (futexes allow them) is
         * reported as nothing, and the core simply polls again. */
        if (r < 0 && errno != EAGAIN && errno != ETIMEDOUT && errno != EINTR) {
            int err = -errno;
            atomic_store_explicit(&k->on, AIO_KICK_AWAKE, memory_order_release);
            *kicked = false;
            return err;
        }
    }
    /* Awake again: kicks from now on only store the word. Release is
     * enough: a kick that reads this store is ordered before our next
     * wait's seq_cst store of its place (coherence), so that wait's load
     * of the word sees the kick's store. */
    atomic_store_explicit(&k->on, AIO_KICK_AWAKE, memory_order_release);
    *kicked = atomic_load(&k->word) != 0;
    return 0;
#else
    (void)k;
    (void)timeout_ns;
    *kicked = false;
    return -ENOSYS; /* never called: word_usable is false */
#endif
}

bool aio__kick_enter_fd(AioKick *k)
{
    if (!k->word_wanted) {
        return false; /* every kick writes the eventfd */
    }
    k->last_fd = true;
    if (!aio__kick_use_word(k)) {
        /* Pinned: 'on' stays "eventfd" (aio__kick_pin_fd), and every kick
         * since the pin wrote it; the word still says whether one came. */
        return atomic_load(&k->word) != 0;
    }
    /* The wait's half of the pair (kick.h): a kick that read "awake" or
     * "word" has stored the word, and the load below sees it. Without it
     * that kick made no write, and this wait would sleep on a silent
     * eventfd (the model's BUG_KICK_NO_RECHECK). */
    atomic_store(&k->on, AIO_KICK_ON_FD);
    return atomic_load(&k->word) != 0;
}

void aio__kick_leave_fd(AioKick *k)
{
    /* Not while pinned: the host loop polls the eventfd between our waits
     * too. (An unpin on another thread may race with this load; either
     * answer is safe, as the place is published before every wait.) */
    if (k->word_wanted && aio__kick_use_word(k)) {
        atomic_store_explicit(&k->on, AIO_KICK_AWAKE, memory_order_release);
    }
}

bool aio__kick_clear(AioKick *k)
{
    if (!k->word_wanted) {
        return true;
    }
    /* Relaxed: the core's re-arm of kick_pending, a seq_cst store, follows
     * (src/poll.c, lower_and_accept), and a kick that reads that re-arm
     * stores the word after this store. */
    atomic_store_explicit(&k->word, 0, memory_order_relaxed);
    return k->last_fd;
}

void aio__kick_pin_fd(AioKick *k)
{
    if (!k->word_wanted) {
        return;
    }
    atomic_store_explicit(&k->word_usable, false, memory_order_relaxed);
    /* A kick made while the home thread was awake or at the word, and not
     * yet cleared, wrote nothing: the host would sleep on the eventfd
     * through it, and kick_pending keeps every later notifier from kicking
     * again. Publish the place, then move that kick there. */
    atomic_store(&k->on, AIO_KICK_ON_FD);
    k->last_fd = true;
    if (atomic_load(&k->word) != 0) {
        aio__notifier_set(&k->fd);
    }
}

void aio__kick_unpin_fd(AioKick *k)
{
    atomic_store_explicit(&k->word_usable, k->word_wanted, memory_order_relaxed);
}
