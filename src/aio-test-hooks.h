/* SPDX-License-Identifier: MIT */
/*
 * Test-only knobs of the poll loop. Not part of the public API, and not part
 * of the installed library at all: they exist only when the library is built
 * with AIOPOLL_TEST_HOOKS=1, which only the test suite's copy of it
 * (aiopoll_testing, see CMakeLists.txt) is. They let the tests force the
 * interleavings that the wake-up protocol exists to survive
 * (docs/wakeup-protocol.md) instead of hoping that timing produces them, put
 * the timers on a clock the test controls, make the backend's wait fail, and
 * make the Nth allocation or system call of a kind fail (the fault table,
 * docs/testing.md). In the installed library every hook call compiles to
 * nothing and every wrapper to the plain call.
 */
#ifndef AIOPOLL_TEST_HOOKS_H
#define AIOPOLL_TEST_HOOKS_H

#include <aiopoll/aio.h>

#ifndef AIOPOLL_TEST_HOOKS
#define AIOPOLL_TEST_HOOKS 0
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum AioHookPoint {
    /* Blocking poll, home thread: the poller has announced itself (the
     * "about to block" counter is raised), has checked for pending work and
     * computed its timeout, and is about to enter the backend's sleep
     * (ppoll / poll / epoll_wait / WaitForMultipleObjects). A notification
     * that arrives from here on must still end the sleep. The outermost poll
     * no longer holds the dispatch right here when it is going to sleep.
     * Also at the end of aio_embed_prepare(): the host loop's sleep follows. */
    AIO_HOOK_BEFORE_SLEEP,
    /* Blocking poll, home thread: the backend's sleep returned (or was
     * skipped because the poll had nothing to sleep for); the poller has not
     * yet lowered the counter nor accepted the wake-up. Also at the start of
     * aio_embed_check(), after the host loop's sleep. */
    AIO_HOOK_AFTER_SLEEP,
    /* Non-blocking poll, any thread: it holds the dispatch right (so a home
     * thread that wants to dispatch now waits for it) and is about to look
     * for ready handlers. */
    AIO_HOOK_NONBLOCKING_DISPATCH,
    /* The home thread, in a blocking poll or aio_embed_dispatch(): another
     * thread's non-blocking poll holds the dispatch right, and the home
     * thread is about to mark the right as awaited (src/dispatch.c). A
     * holder that lets go from here on must not be waited for. */
    AIO_HOOK_DISPATCH_BEFORE_MARK,
    /* The home thread: it has marked the dispatch right as awaited and is
     * about to sleep until the holder hands it over. */
    AIO_HOOK_DISPATCH_WAIT,
    /* The dispatch-right holder has taken the pending stack and popped one
     * BH from the queue, and is about to claim it (clear QUEUED and
     * SCHEDULED) and run it: a schedule from here on finds it scheduled
     * and adds nothing but its writes to the coming run. */
    AIO_HOOK_BH_BEFORE_CLAIM,
    /* aio_bh_schedule() and aio_bh_schedule_oneshot(), the scheduling
     * thread, after a push (not for a BH already queued): the BH is on the
     * pending stack, and the wake-up (the load of notify_me and, if a poll
     * is announced, the notification) is still to come. A poll that looks
     * from here on finds the BH but not yet its notification. */
    AIO_HOOK_BH_AFTER_PUSH,
    /* The last unref, on its thread: the worker pool is stopping (no worker
     * claims a job from here on) and is about to wait for the running work,
     * then drop the work that had not started. */
    AIO_HOOK_POOL_STOPPING,
    /* A worker thread of the pool: it has taken a job into its batch and is
     * about to claim it (QUEUED -> RUNNING) and run fn. No lock held. */
    AIO_HOOK_WORK_BEFORE_CLAIM,
    /* A worker thread: it found no work and stopped spinning, and is about to
     * park (it still counts as spinning). No lock held: the hook may submit. */
    AIO_HOOK_WORKER_IDLE,
    /* A worker thread, under the pool's lock: parked, it found no work and is
     * about to sleep. The hook must not call into the pool. */
    AIO_HOOK_WORKER_SLEEP,
    /* aio_virtual_clock_stop/start/set_ns, on the changing thread, under the
     * process-wide list lock of the virtual clock, about to notify this
     * context (one of those with VIRTUAL timers). The hook must not call
     * into the virtual clock; a fork() made meanwhile by another thread is
     * what src/fork.c is for. */
    AIO_HOOK_VCLOCK_NOTIFY,
    /* aio_wait_kick(), on the kicking thread, under the process-wide lock
     * of the waiter list, about to notify this context (one that waits in
     * aio_wait_while()). The same rules as AIO_HOOK_VCLOCK_NOTIFY. */
    AIO_HOOK_WAIT_KICK,
} AioHookPoint;

typedef void AioTestHook(AioContext *ctx, AioHookPoint point, void *opaque);

/* The operations the fault table can make fail, process-wide. Every kind
 * exists on every platform; one the platform never performs never fires.
 * The error is what the failing call reports: an errno value on POSIX, a
 * GetLastError()/WSAGetLastError() code on Windows. */
typedef enum AioFaultKind {
    AIO_FAULT_ALLOC,            /* malloc, calloc, realloc of the library */
    AIO_FAULT_EVENTFD,          /* eventfd() */
    AIO_FAULT_PIPE,             /* pipe() */
    AIO_FAULT_FCNTL,            /* fcntl(): F_DUPFD_CLOEXEC of a registration's
                                 * private duplicate, the pipe flag changes */
    AIO_FAULT_EPOLL_CREATE,     /* epoll_create1() */
    AIO_FAULT_EPOLL_CTL,        /* epoll_ctl(EPOLL_CTL_ADD); DEL cannot fail */
    AIO_FAULT_WAIT,             /* poll(), ppoll(), epoll_wait(), epoll_pwait2();
                                 * WaitForMultipleObjects() on the polling thread */
    AIO_FAULT_READ,             /* read() of a notifier or wake-up object */
    AIO_FAULT_WRITE,            /* write() to one */
    AIO_FAULT_THREAD,           /* CreateThread() (POSIX starts no thread) */
    AIO_FAULT_CREATE_EVENT,     /* CreateEventW() */
    AIO_FAULT_DUPLICATE_HANDLE, /* DuplicateHandle() */
    AIO_FAULT_WSA_CREATE_EVENT, /* WSACreateEvent() */
    AIO_FAULT_WSA_EVENT_SELECT, /* WSAEventSelect() that registers a socket */
    AIO_FAULT_IO_URING_SETUP,   /* io_uring_queue_init() */
    AIO_FAULT_KINDS
} AioFaultKind;
/* A replacement for the monotonic clock of a context's timers. */
typedef int64_t AioTestClock(void *opaque);

#if AIOPOLL_TEST_HOOKS

/* Installs (or with NULL removes) the hook of ctx. Call it while no thread
 * polls ctx. The hook runs on the polling thread with no aiopoll mutex held
 * (only the dispatch right, at AIO_HOOK_NONBLOCKING_DISPATCH), so it may block
 * on a barrier and may call aio_notify() or aio_poll(ctx, false) itself. */
AIOPOLL_API void aio__set_test_hook(AioContext *ctx, AioTestHook *hook, void *opaque);

/* Puts ctx's timers on clock(opaque) instead of aio_clock_ns() (NULL: back
 * to it): deadlines are compared with it, and a blocking poll's timeout is
 * computed from it (the sleep itself is real time). aio_clock_ns() and
 * adaptive polling keep the real clock. Call it while no thread polls ctx. */
AIOPOLL_API void aio__set_test_clock(AioContext *ctx, AioTestClock *clock, void *opaque);

/* From now on every wait of ctx's backend fails with err (a negative errno)
 * without waiting; 0 restores real waits. Any thread. */
AIOPOLL_API void aio__set_test_wait_error(AioContext *ctx, int err);

/* The fault table. aio__fault_arm makes the nth operation of kind (counted
 * from this call, 1 = the next one) fail with err instead of being made;
 * later ones succeed again. Kinds are armed independently; arming a kind
 * again restarts its count. Process-wide and any thread, but the count is
 * only deterministic while one thread uses the library: arm, make one call,
 * disarm. */
AIOPOLL_API void aio__fault_arm(AioFaultKind kind, unsigned nth, int err);
/* Disarms every kind (counts and fired flags are kept for the queries). */
AIOPOLL_API void aio__fault_disarm(void);
/* Whether the armed failure of kind happened since it was armed. */
AIOPOLL_API bool aio__fault_fired(AioFaultKind kind);
/* Operations of kind counted since it was armed. */
AIOPOLL_API unsigned aio__fault_count(AioFaultKind kind);
/* A short name ("alloc", "epoll_ctl"...), for messages. */
AIOPOLL_API const char *aio__fault_name(AioFaultKind kind);

/* The worker pool's idle timeout (default 10 s) for ctx's pool, which this
 * makes if needed: a test of idle exit need not wait 10 s. 0 or -EINVAL. */
AIOPOLL_API int aio__set_test_pool_idle_ns(AioContext *ctx, int64_t ns);
/* How many worker threads ctx's pool runs now. */
AIOPOLL_API int aio__test_pool_workers(AioContext *ctx);

#endif

#ifdef __cplusplus
}
#endif

/* ---- Inside the library ------------------------------------------------- */
#ifdef AIOPOLL_BUILDING
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "platform.h"

#if AIOPOLL_TEST_HOOKS
/* Embedded in struct AioContext. */
typedef struct AioTestState {
    _Atomic(AioTestHook *) hook;
    void *hook_opaque;
    _Atomic(AioTestClock *) clock;
    void *clock_opaque;
    atomic_int wait_error;
} AioTestState;

void aio__call_hook(AioContext *ctx, AioHookPoint point);
/* A premise of the code that the installed library takes on trust: test
 * builds check it where it is used and abort, naming it, when it is false,
 * so that a breach fails the test that made it instead of hanging it. */
void aio__test_premise(bool holds, const char *what);
int64_t aio__timers_now(AioContext *ctx);
int aio__test_wait_error(AioContext *ctx);

/* The error to inject into this operation of kind, or 0 to make it. */
int aio__fault_hit(AioFaultKind kind);

/* Every allocation of the library goes through these, so that the fault
 * table sees it. A failure looks like the C library's: NULL, errno ENOMEM. */
static inline void *aio__alloc_fault(void)
{
    errno = ENOMEM;
    return NULL;
}
#define aio__malloc(size) (aio__fault_hit(AIO_FAULT_ALLOC) ? aio__alloc_fault() : malloc(size))
#define aio__calloc(n, size) \
    (aio__fault_hit(AIO_FAULT_ALLOC) ? aio__alloc_fault() : calloc((n), (size)))
#define aio__realloc(p, size) \
    (aio__fault_hit(AIO_FAULT_ALLOC) ? aio__alloc_fault() : realloc((p), (size)))

/* The injection point of a system call, for the platform layer and the
 * backends: AIO_FAULT_CALL(kind, failed, call) evaluates to failed, with
 * the injected error stored where the caller looks for it (errno on POSIX,
 * SetLastError on Windows: aio__fault_set_error in platform.c), when the
 * table says this operation fails, and to call otherwise. */
void aio__fault_set_error(int err);
static inline bool aio__fault_inject(AioFaultKind kind)
{
    int err = aio__fault_hit(kind);
    if (err) {
        aio__fault_set_error(err);
    }
    return err != 0;
}
#define AIO_FAULT_CALL(kind, failed, call) (aio__fault_inject(kind) ? (failed) : (call))
#else
static inline void aio__call_hook(AioContext *ctx, AioHookPoint point)
{
    (void)ctx;
    (void)point;
}

static inline int64_t aio__timers_now(AioContext *ctx)
{
    (void)ctx;
    return aio__clock_ns();
}

static inline int aio__test_wait_error(AioContext *ctx)
{
    (void)ctx;
    return 0;
}

static inline void aio__test_premise(bool holds, const char *what)
{
    (void)holds;
    (void)what;
}

/* Macros, not inline functions: the plain calls even at -O0. */
#define aio__malloc(size) malloc(size)
#define aio__calloc(n, size) calloc((n), (size))
#define aio__realloc(p, size) realloc((p), (size))
#define AIO_FAULT_CALL(kind, failed, call) (call)
#endif
#endif /* AIOPOLL_BUILDING */

#endif
