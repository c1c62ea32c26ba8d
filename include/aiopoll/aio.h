/* SPDX-License-Identifier: MIT */
/**
 * @file aio.h
 * @brief The aiopoll API.
 *
 * aiopoll: one event-loop API for emulators, hypervisors and other long-running
 * native programs, on Linux, macOS/BSD and Windows.
 *
 * The model is QEMU's AioContext. A context has a *home thread*; only the home
 * thread may block in aio_poll(ctx, true), and only a blocking poll consumes
 * ("accepts") a wake-up. Any thread may notify, schedule bottom halves, arm
 * timers, register handlers and run non-blocking polls. These two rules are
 * what make a lost wake-up impossible; docs/wakeup-protocol.md explains why.
 *
 * Conventions
 *  - Functions that can fail return int: 0 (or a documented positive value) on
 *    success, a negative errno value on failure. The values are the host's
 *    <errno.h> constants; EPERM, EINVAL, ENOMEM, EBADF, EBUSY and EAGAIN have
 *    the same numbers on every supported platform. aio_strerror() names them.
 *  - Constructors return NULL on failure.
 *  - A NULL object pointer gets -EINVAL from int functions and is a no-op for
 *    void functions; it never crashes.
 *  - "Any thread" means the call may race with aio_poll() on the home thread
 *    and with other callers; everything else is home-thread or
 *    single-threaded use.
 */
#ifndef AIOPOLL_AIO_H
#define AIOPOLL_AIO_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#include <winsock2.h>
#include <windows.h>
#endif

#include <aiopoll/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @def AIOPOLL_API
 * Marks a function of the public API: exported from the shared library
 * (visibility "default"; dllexport while building the DLL), imported by a
 * consumer of the DLL that defines AIOPOLL_SHARED (the CMake target
 * aiopoll::shared does), nothing otherwise.
 */
#if defined(_WIN32) && defined(AIOPOLL_SHARED)
#if defined(AIOPOLL_BUILDING)
#define AIOPOLL_API __declspec(dllexport)
#else
#define AIOPOLL_API __declspec(dllimport)
#endif
#elif defined(AIOPOLL_BUILDING) && (defined(__GNUC__) || defined(__clang__))
#define AIOPOLL_API __attribute__((visibility("default")))
#else
#define AIOPOLL_API
#endif

/* Fallbacks for C libraries whose <errno.h> lacks these (Linux values). */
#ifndef ENOTSOCK
/** Not a socket (fallback: the Linux value). */
#define ENOTSOCK 88
#endif
#ifndef ETIMEDOUT
/** Timed out (fallback: the Linux value). */
#define ETIMEDOUT 110
#endif
#ifndef ECANCELED
/** Cancelled (fallback: the Linux value). */
#define ECANCELED 125
#endif

#if defined(_WIN32)
typedef SOCKET aio_fd_t;     /**< a Winsock socket (POSIX: any pollable file descriptor) */
typedef HANDLE aio_handle_t; /**< a waitable Win32 event (POSIX: a descriptor) */
#else
typedef int aio_fd_t;     /**< any pollable file descriptor (Windows: a Winsock socket) */
typedef int aio_handle_t; /**< the pollable descriptor behind an event notifier */
#endif

/** An event loop: its handlers, bottom halves, timers and home thread. */
typedef struct AioContext AioContext;
/** A bottom half: a callback a later aio_poll() runs once per scheduling. */
typedef struct AioBH AioBH;
/** A one-shot timer on aio_clock_ns(). */
typedef struct AioTimer AioTimer;
/** A level-triggered set/clear flag that a context can wait on. */
typedef struct AioEventNotifier AioEventNotifier;
/** A job handed to the context's worker pool (aio_work_submit()). */
typedef struct AioWork AioWork;

/** A callback with the opaque pointer given at registration. */
typedef void AioHandler(void *opaque);
/** A busy-poll callback: return true when it found (and handled) work. */
typedef bool AioPollHandler(void *opaque);

/* ---- Version and errors ------------------------------------------------- */

/** @return "MAJOR.MINOR.PATCH" of the library actually linked. */
AIOPOLL_API const char *aiopoll_version(void);

/** A short English name for a negative (or positive) errno value, e.g.
 * aio_strerror(-EPERM) == "operation not permitted (EPERM)".
 * @param err an errno value, negative or positive
 * @return the name; never NULL. */
AIOPOLL_API const char *aio_strerror(int err);

/* ---- Context and ownership ---------------------------------------------- */

/** Creates a context with one reference. The calling thread becomes its home
 * thread. The backend is chosen by the environment variable AIOPOLL_BACKEND
 * ("eventfd+ppoll", "pipe+poll", "epoll", "io_uring", "win32"); unset or
 * empty picks the platform default ("eventfd+ppoll" on Linux, "pipe+poll" on
 * other POSIX systems, "win32"). An unknown name, or one this build does not
 * have, makes this return NULL with errno set to EINVAL, so that a test run
 * never silently tests the wrong backend. A backend the system refuses at run
 * time makes it return NULL with the system's errno: "io_uring" gives ENOSYS
 * on kernels without io_uring (or older than 5.11) and EPERM where it is
 * disabled (kernel.io_uring_disabled, a seccomp filter); it is never
 * replaced by another backend when asked for by name. Out of memory or
 * descriptors it returns NULL with errno set to the system's error (ENOMEM,
 * EMFILE, ENFILE). On a thread created after the first 2^44 threads of the
 * process (whose id the context's ownership word cannot hold) it returns
 * NULL with errno set to EOVERFLOW.
 * @return the context, or NULL as above. */
AIOPOLL_API AioContext *aio_context_new(void);

/** Reference counting: takes a reference. The last unref frees the context and everything still
 * attached to it: bottom halves (scheduled or not), timers, fd handlers and
 * notifier registrations. Handles to those objects are dangling afterwards.
 * The last unref must not race with any other use of the context. A
 * callback having run does not mean that the call which queued it has
 * returned: aio_bh_schedule(), aio_bh_schedule_oneshot() and
 * aio_work_cancel() (whose -ECANCELED completion is queued the same way)
 * notify after the push, so a thread that frees its context as soon as a
 * "stop" BH or a cancelled work's done ran races with the caller still
 * inside that call (a use after free). Free such a context after joining
 * its thread (examples/iothread-demo.c), or have that thread hold a
 * reference of its own across the call. The last unref must not come from
 * fn of the context's own worker pool: it waits for every running fn to
 * return, so it would wait for itself (the library aborts with a message).
 *
 * The last unref may come from inside a callback of the context (a bottom
 * half, timer, fd or notifier handler), on the thread that runs it: the
 * context then stays alive until the outermost aio_poll() of that thread
 * returns, and is freed on its way out. Until then the rest of that poll's
 * callbacks still run and may use the context, nested aio_poll() calls
 * included; if one of them takes a new reference, the context is kept
 * (the next last unref frees it). No other thread may use it meanwhile.
 * @param ctx the context (no-op for NULL) */
AIOPOLL_API void aio_context_ref(AioContext *ctx);
/** Drops a reference; the last one frees ctx (see aio_context_ref()).
 * @param ctx the context (no-op for NULL) */
AIOPOLL_API void aio_context_unref(AioContext *ctx);

/** @name fork()
 * fork(): a context belongs to the process that created it. In a child
 * process, an inherited context shares its kernel objects (the wake-up
 * eventfd or pipe, the epoll set) with the parent, so until the child calls
 * aio_context_after_fork() the library guarantees that nothing the child
 * does with it harms the parent:
 *  - aio_poll() returns -ECHILD having touched nothing;
 *  - aio_set_fd_handler() and aio_set_event_notifier() return -ECHILD;
 *  - aio_notify() (and whatever calls it: scheduling, arming) records the
 *    news in the child's memory only, and never writes to the parent's
 *    wake-up object;
 *  - aio_context_unref() frees the child's copy only (its memory and its
 *    own descriptors), and never removes the parent's registrations;
 *  - the worker pool's threads exist only in the parent: the child's
 *    aio_context_unref() and aio_context_after_fork() discard the inherited
 *    pool without waiting for anything (no fn or done of its work runs in
 *    the child), and after aio_context_after_fork() the next
 *    aio_work_submit() starts workers of the child's own;
 *  - the process-wide state (the virtual clock and its list of contexts,
 *    the waiters of aio_wait_while()) is whole and unlocked in the child,
 *    whatever other threads of the parent were doing with it at fork().
 * This is libuv's uv_loop_fork() / libevent's event_reinit() policy; a child
 * that just execs needs none of it. Not applicable on Windows.
 * @{ */

/** In a child process created by fork(), gives the inherited ctx kernel
 * objects of its own (a new wake-up object and backend, every registration
 * made anew on it) and makes the calling thread its home thread; from then
 * on the child uses ctx like any context and the parent is unaffected.
 * Precondition: when fork() was called, no thread of the parent other than
 * the forking one was inside a call on ctx, and the forking thread was not
 * inside aio_poll(ctx) (fork between polls, not from a callback). Returns 0
 * (also in the process that created ctx, where it does nothing), -EINVAL for
 * NULL, -EBUSY while ctx is attached to a host loop (aio_embed_attach(): the
 * embedding names the parent's objects; call aio_embed_detach() in the child
 * first, which leaves the parent untouched, and attach again after), or the
 * error of re-creating the backend (the context then keeps
 * refusing polls) or of re-registering a descriptor (that one is then not
 * watched; the others are).
 * @param ctx the inherited context
 * @return 0 or a negative errno value, as above. */
AIOPOLL_API int aio_context_after_fork(AioContext *ctx);
/** @} */

/** Makes the calling thread the home thread.
 * @param ctx the context
 * @return 0, -EINVAL for NULL, -EBUSY while another thread is inside
 * aio_poll(ctx, true) or aio_embed_dispatch(ctx) (or its host loop is
 * attached, aio_embed_attach()), or
 * -EOVERFLOW on a thread created after the first 2^44 of the process (see
 * aio_context_new()). */
AIOPOLL_API int aio_context_set_home_thread(AioContext *ctx);

/** @param ctx the context
 * @return true when the calling thread is ctx's home thread (false for NULL). */
AIOPOLL_API bool aio_context_in_home_thread(const AioContext *ctx);

/** The name of the mechanism this context waits with now ("eventfd+ppoll",
 * "pipe+poll", "epoll", "io_uring", "win32"); "" for NULL. A context created with the
 * Linux default "eventfd+ppoll" moves to epoll once more than 8 descriptors
 * are registered (ppoll's cost grows with every descriptor, epoll's does not)
 * and reports "epoll" from then on; the move is one-way. The environment
 * variable AIOPOLL_EPOLL_THRESHOLD, read by aio_context_new, tunes that
 * number for such a context ("off": never move; a decimal count otherwise;
 * anything else: the default), for users who measured their own crossover
 * (docs/performance.md). Any thread.
 * @param ctx the context
 * @return the backend's name, never NULL. */
AIOPOLL_API const char *aio_context_backend(const AioContext *ctx);

/* ---- Polling and notification ------------------------------------------- */

/** Runs ready bottom halves, expired timers and ready handlers once.
 *
 * @param ctx the context
 * @param blocking whether the call may sleep (home thread only)
 * @return 1 if any callback ran, 0 if none ran, or a negative error:
 *  -EINVAL  ctx is NULL;
 *  -EPERM   blocking is true and the caller is not the home thread; the call
 *           returns at once having touched nothing, in particular not a
 *           pending wake-up, which stays for the home thread.
 *  -ECHILD  ctx was inherited through fork() (see aio_context_after_fork).
 *  other    the system's wait failed (e.g. -EINVAL from poll() when more
 *           descriptors are registered than RLIMIT_NOFILE allows, -ENOMEM).
 *           Bottom halves and expired timers have still run (a failing
 *           wait cannot stall them); fd and notifier handlers have not,
 *           since nothing said which were ready. The call returns at once; the
 *           context stays usable, and the next poll tries the wait again.
 *
 * blocking == true (home thread only): when nothing is ready, sleeps until a
 * handler becomes ready, the earliest timer expires, or aio_notify() is called
 * (also before the call: a notification is never lost). It never sleeps while
 * a bottom half is scheduled. A blocking poll may return 0 after a wake-up
 * that found no work; callers loop. Only a blocking poll consumes a wake-up.
 *
 * blocking == false (any thread): never sleeps and never consumes a wake-up.
 * Callbacks of one context never run on two threads at once: if another
 * thread is dispatching, the call returns 0 having done nothing. On a thread
 * other than the home thread, a call that ran bottom halves notifies the
 * context afterwards (as aio_notify() does), so that a home thread waiting in
 * `while (!done) aio_poll(ctx, true)` for what they did comes round.
 *
 * Calling aio_poll() from inside a callback of the same context, on the
 * thread that runs it, is allowed (nested polling). Handlers are
 * level-triggered; when several threads poll, a handler can be called for a
 * descriptor another poll already drained, so use non-blocking descriptors. */
AIOPOLL_API int aio_poll(AioContext *ctx, bool blocking);

/** Wakes a blocking poll of ctx, or makes the next blocking poll return
 * without sleeping. Any thread; on POSIX also async-signal-safe. Costs no
 * system call when no poll is blocking (it is two atomic operations).
 * @param ctx the context (no-op for NULL) */
AIOPOLL_API void aio_notify(AioContext *ctx);

/* ---- Bottom halves ------------------------------------------------------ */

/** A bottom half runs cb(opaque) once in a later aio_poll of ctx each time it
 * is scheduled. Returns NULL for a NULL ctx or cb, or when out of memory.
 *
 * Order. An aio_poll call takes every BH scheduled so far and runs them in
 * the order they were scheduled. A BH scheduled from inside a BH (also
 * itself) is not taken by the call that is running it: it runs in the next
 * aio_poll call, which does not sleep, so a self-rescheduling BH cannot
 * starve the loop.
 *
 * Nested polls. An aio_poll called from inside a callback (a BH's or any
 * other) continues the BHs that the outer calls took and have not run yet,
 * in their order, and then runs the BHs scheduled since, in scheduling
 * order; when it returns, none of them is left for the outer call. So with
 * A and B scheduled, a nested poll in A's callback runs B (A B order), and
 * if A also scheduled C first, it runs B then C. A nested blocking poll does
 * not sleep while any of these is still to run, so a callback may wait with
 * `while (!done) aio_poll(ctx, true);` for a BH scheduled before it.
 * @param ctx the context whose polls run it
 * @param cb the callback
 * @param opaque passed to cb
 * @return the bottom half, not scheduled, or NULL as above. */
AIOPOLL_API AioBH *aio_bh_new(AioContext *ctx, AioHandler *cb, void *opaque);

/** Any thread. Scheduling an already scheduled BH is a no-op (it runs once).
 * Wakes the context. Lock-free, and free of system calls unless the home
 * thread sleeps; onto a loop that is awake it stores nothing but the BH's
 * flag word and the pending queue (a poll looks at the queue before it
 * sleeps, so there is no notification to store). A BH that was cancelled
 * and is scheduled again before the dispatch reached it keeps its place and
 * runs once.
 * @param bh the bottom half (no-op for NULL) */
AIOPOLL_API void aio_bh_schedule(AioBH *bh);

/** Any thread. A cancelled BH does not run until scheduled again (same
 * guarantee as aio_bh_delete() below).
 * @param bh the bottom half (no-op for NULL) */
AIOPOLL_API void aio_bh_cancel(AioBH *bh);

/** Any thread, also from inside the BH's own callback. The BH never runs again;
 * the context frees it at its next dispatch (or when it is destroyed), so bh
 * must not be used afterwards. As with aio_timer_del: after this returns on
 * the dispatching thread (from inside any callback of ctx), the callback does
 * not run. From another thread it stops every run that has not begun; a run
 * that already began may still be in progress when this returns (it does not
 * wait), so free what the callback uses only once it is known to be done.
 * @param bh the bottom half (no-op for NULL) */
AIOPOLL_API void aio_bh_delete(AioBH *bh);

/** Any thread. Runs cb(opaque) once; the BH is freed after it ran.
 * @param ctx the context whose next poll runs it
 * @param cb the callback
 * @param opaque passed to cb
 * @return 0, -EINVAL for NULL ctx or cb, -ENOMEM. */
AIOPOLL_API int aio_bh_schedule_oneshot(AioContext *ctx, AioHandler *cb, void *opaque);

/* ---- File descriptors (sockets on Windows) ------------------------------ */

/** Registers, replaces or (io_read, io_write and io_poll all NULL) removes the
 * handlers of fd. Any thread; takes effect at the next poll iteration.
 * Level-triggered: io_read runs while fd is readable (or hung up / in error),
 * io_write while it is writable. io_poll, if given, is called by adaptive
 * polling (aio_context_set_poll_params) before the context sleeps.
 * is_external handlers are suspended by aio_disable_external().
 * Removing or replacing a handler from inside any callback, its own
 * included, is safe: the old handler is not called again after this returns
 * on the dispatching thread.
 *
 * Removing is idempotent and works after the descriptor was closed. A
 * replacement that fails (any error below) leaves the handlers it was to
 * replace registered and running, as if it had not been made.
 *
 * The context watches a private duplicate of fd (POSIX: one descriptor per
 * registration, made with F_DUPFD_CLOEXEC), so a registration names the open
 * file fd named when it was made, whatever happens to the number later.
 * Closing fd before removing the handler is allowed: until the removal, the
 * handler keeps running for that file (which stays open through the
 * duplicate, so e.g. a peer sees no EOF yet); after the removal returns, the
 * file never wakes the loop again, even when it lives on elsewhere (dup(),
 * a child process). On Windows the socket itself is watched; a socket closed
 * before removal is reported ready (read and write, as an error) until the
 * handler is removed.
 *
 * Descriptors that cannot be polled (regular files, directories, /dev/null)
 * are accepted and are always ready for reading and writing, on every
 * backend, as poll() and select() report them.
 *
 * @param ctx the context
 * @param fd the descriptor (Windows: the socket)
 * @param is_external whether aio_disable_external() suspends these handlers
 * @param io_read called while fd is readable, or NULL
 * @param io_write called while fd is writable, or NULL
 * @param io_poll called by adaptive polling, or NULL
 * @param opaque passed to the handlers
 * @return 0, or -EINVAL (NULL ctx, or a value that is never a descriptor: a
 * negative fd, INVALID_SOCKET), -EBADF (registering a descriptor that is not
 * open), -ENOTSOCK (Windows: registering a value that is not a socket),
 * -EMFILE (no descriptor left for the duplicate), -ECHILD (inherited through
 * fork()), -ENOSPC (epoll: the user's limit of watched descriptors,
 * fs.epoll.max_user_watches, is reached), -ENOMEM (also kernel memory). */
AIOPOLL_API int aio_set_fd_handler(AioContext *ctx, aio_fd_t fd, bool is_external,
                                   AioHandler *io_read, AioHandler *io_write,
                                   AioPollHandler *io_poll, void *opaque);

/* ---- Event notifiers ---------------------------------------------------- */

/** A level-triggered, set/clear flag that a context can wait on: an eventfd on
 * Linux, a non-blocking pipe on other POSIX systems, a manual-reset event on
 * Windows.
 * @param initially_set whether the new notifier starts set
 * @return the notifier, or NULL when out of descriptors or memory. */
AIOPOLL_API AioEventNotifier *aio_event_notifier_new(bool initially_set);

/** Frees n. No-op for NULL. Remove its registrations first
 * (aio_set_event_notifier with io_read NULL); n may be freed as soon as that
 * returns, also while other threads are inside aio_poll(): a context waits
 * on its own duplicate of n's waitable object, never on n's.
 * @param n the notifier */
AIOPOLL_API void aio_event_notifier_free(AioEventNotifier *n);

/** Sets n. Any thread; async-signal-safe on POSIX. Setting a set notifier is
 * a no-op.
 * @param n the notifier
 * @return 0, -EINVAL for NULL, or the system error. */
AIOPOLL_API int aio_event_notifier_set(AioEventNotifier *n);

/** Clears n.
 * @param n the notifier
 * @return whether it was set (false for NULL). */
AIOPOLL_API bool aio_event_notifier_test_and_clear(AioEventNotifier *n);

/** The waitable object behind n. It stays owned by n.
 * @param n the notifier
 * @return the fd on POSIX, the HANDLE on Windows (-1 / NULL for a NULL n). */
AIOPOLL_API aio_handle_t aio_event_notifier_get_handle(const AioEventNotifier *n);

/** Registers (io_read non-NULL), replaces or removes (io_read NULL) a handler
 * that runs while n is set. The handler normally calls
 * aio_event_notifier_test_and_clear(). Any thread; removing is idempotent;
 * a replacement that fails leaves the old handler registered.
 * @param ctx the context
 * @param n the notifier
 * @param is_external whether aio_disable_external() suspends the handler
 * @param io_read called while n is set, or NULL to remove
 * @param io_poll called by adaptive polling, or NULL
 * @param opaque passed to the handlers
 * @return 0, -EINVAL (NULL ctx or n), -EMFILE (no descriptor or handle left
 * for the context's duplicate), -ECHILD (inherited through fork()), -ENOSPC
 * (as for aio_set_fd_handler), -ENOMEM. */
AIOPOLL_API int aio_set_event_notifier(AioContext *ctx, AioEventNotifier *n,
                                       bool is_external, AioHandler *io_read,
                                       AioPollHandler *io_poll, void *opaque);

/** Nestable. While the disable count is positive, handlers registered with
 * is_external = true are neither polled nor dispatched (their events stay
 * pending, level-triggered). Enabling the last level wakes the context. Any
 * thread. Backends that register descriptors with the kernel (epoll, Win32
 * sockets) do so again on enabling; one that fails there for lack of
 * kernel memory stays suspended until its handler is registered again.
 * @param ctx the context; this raises its disable count */
AIOPOLL_API void aio_disable_external(AioContext *ctx);
/** Lowers the disable count raised by aio_disable_external().
 * @param ctx the context */
AIOPOLL_API void aio_enable_external(AioContext *ctx);

/* ---- Timers ------------------------------------------------------------- */

/** @return monotonic time in nanoseconds (CLOCK_MONOTONIC / QueryPerformanceCounter). */
AIOPOLL_API int64_t aio_clock_ns(void);

/** A timer of ctx; it is not armed.
 * @param ctx the context whose polls fire it
 * @param cb the callback
 * @param opaque passed to cb
 * @return the timer, or NULL for a NULL ctx or cb, or no memory. */
AIOPOLL_API AioTimer *aio_timer_new(AioContext *ctx, AioHandler *cb, void *opaque);

/** Arms (or re-arms) t to fire once at the absolute time expire_ns on the
 * timer's clock (aio_clock_ns() for aio_timer_new()). Any thread; wakes the
 * context when the new deadline is the earliest. A timer never fires before its deadline; timers with the same
 * deadline fire in the order they were armed. A deadline in the past fires at
 * the next poll. When the timer list cannot grow (out of memory), t is left
 * disarmed: aio_timer_pending(t) says whether it was armed.
 * @param t the timer (no-op for NULL)
 * @param expire_ns the deadline, on the timer's clock */
AIOPOLL_API void aio_timer_mod(AioTimer *t, int64_t expire_ns);

/** Disarms t. Any thread. After this returns on the dispatching thread, t's
 * callback does not run until re-armed.
 * @param t the timer (no-op for NULL) */
AIOPOLL_API void aio_timer_del(AioTimer *t);

/** @param t the timer
 * @return true while t is armed and has not fired. */
AIOPOLL_API bool aio_timer_pending(const AioTimer *t);

/** Disarms and frees t. Also allowed from inside t's own callback.
 * @param t the timer (no-op for NULL) */
AIOPOLL_API void aio_timer_free(AioTimer *t);

/* ---- Adaptive polling --------------------------------------------------- */

/** Adaptive polling. max_ns == 0 (the default) disables busy polling. Otherwise a blocking poll
 * that would sleep first calls the io_poll handlers (and watches for
 * aio_notify, without a system call) for up to the current poll window; the
 * window grows by the factor grow when a poll succeeded only after the window
 * ran out, and shrinks by the factor shrink when polling found nothing, always
 * between 0 and max_ns. grow/shrink of 0 select the defaults (2 and 2).
 * @param ctx the context
 * @param max_ns the largest poll window in nanoseconds, 0 to disable
 * @param grow the window's growth factor (0: 2)
 * @param shrink the window's shrink factor (0: 2)
 * @return 0, or -EINVAL for NULL ctx, negative max_ns, or grow == 1 /
 * negative factors. */
AIOPOLL_API int aio_context_set_poll_params(AioContext *ctx, int64_t max_ns,
                                            int64_t grow, int64_t shrink);

/* ---- Worker pool -------------------------------------------------------- */

/** Runs on a worker thread of the context's pool, never on a thread that
 * dispatches the context. Its return value is handed to the AioWorkDone.
 * @param arg the arg given to aio_work_submit() */
typedef int AioWorkFunc(void *arg);
/** Runs in the context (inside aio_poll, on the thread that dispatches it),
 * with fn's return value, or -ECANCELED when the work was cancelled before
 * it started.
 * @param opaque the opaque given to aio_work_submit()
 * @param ret fn's return value, or -ECANCELED */
typedef void AioWorkDone(void *opaque, int ret);

/** Queues fn(arg) on ctx's worker pool; done(opaque, ret) runs in ctx once fn
 * returned. Any thread. Work is taken in submission order (it may finish in
 * any order); while more work is queued than the pool has workers, a worker
 * takes its share of the queue at once, so work taken by different workers
 * may start in either order. A worker is started when none is idle and fewer than the
 * maximum run. Completions reach the context as one bottom half per batch:
 * when the context is awake (not asleep in aio_poll) a completion costs no
 * system call, and many completions that finish together cost one wake-up.
 * done may submit and cancel work and poll ctx (aio_wait_while() for other
 * work, also for work that completed in the same batch: the nested poll runs
 * the rest of the batch, in completion order).
 * @param ctx the context whose polls run done
 * @param fn the work, run on a worker thread
 * @param arg passed to fn
 * @param done the completion, run in ctx
 * @param opaque passed to done
 * @return the work's handle, valid until its done has returned; NULL for a
 * NULL ctx, fn or done, no memory, or no worker thread could be started
 * while none exists. */
AIOPOLL_API AioWork *aio_work_submit(AioContext *ctx, AioWorkFunc *fn, void *arg,
                                     AioWorkDone *done, void *opaque);

/** Cancels w if it has not started. Any thread (also from done callbacks of
 * other work). w must be valid (its done has not returned yet).
 * @param w the work
 * @return 0 when it had not started: fn never runs and done runs
 * with -ECANCELED in a later aio_poll (never inside this call); -EBUSY when
 * fn is running or has returned (done runs normally with fn's value);
 * -EINVAL for NULL. */
AIOPOLL_API int aio_work_cancel(AioWork *w);

/** Sizes ctx's pool: workers are started on demand up to max_workers, and an
 * idle worker above min_workers exits after 10 s without work (min_workers
 * are kept once started; none are started in advance). Any thread; a lower
 * maximum does not stop running work: surplus workers exit, idle ones at
 * once, busy ones when their current batch is done (work already cut into
 * a batch under the old maximum runs on it), and take no new work; a
 * higher one starts workers for work that is queued. Defaults 0 and 64.
 * @param ctx the context
 * @param min_workers idle workers kept
 * @param max_workers the most workers that run at once
 * @return 0, or -EINVAL for NULL ctx, min_workers < 0,
 * max_workers < 1 or min_workers > max_workers, or -ENOMEM when the pool
 * (made on first use) could not be allocated. */
AIOPOLL_API int aio_context_set_thread_pool_params(AioContext *ctx, int min_workers,
                                                   int max_workers);

/* (Not a declaration: the rule for) the last aio_context_unref() of a
 * context whose pool has work:
 *  - work that has not started is dropped: its fn never runs;
 *  - the unref waits for every fn that is running to return;
 *  - no done callback runs any more, neither for the dropped work nor for
 *    work that finished and whose done had not run yet: done runs only
 *    inside aio_poll() of a live context. Anything fn or done would have
 *    released (opaque, arg) is the caller's to release; drain first (for
 *    example with aio_wait_while() on a count of outstanding work) when
 *    done must run.
 * Work handles are dangling afterwards, like every other handle. */

/* ---- Waiting for another context ---------------------------------------- */

/** Runs blocking polls of ctx while cond(opaque) is true (QEMU's
 * AIO_WAIT_WHILE); returns 0 as soon as cond(opaque) is false (at once when
 * it is false on entry, without polling). Home thread of ctx only: -EPERM on
 * any other thread, -EINVAL for NULL ctx or cond; a failing aio_poll ends
 * the wait with its error. Allowed from inside a callback of ctx (a nested
 * poll) and of any other context. cond is called on this thread, between
 * polls. Whoever makes cond false from another thread or context must call
 * aio_wait_kick() afterwards; code that makes it false in a callback of ctx
 * itself need not (every poll re-checks).
 * @param ctx the context to poll (its home thread calls this)
 * @param cond the condition, called on this thread between polls
 * @param opaque passed to cond
 * @return 0, -EPERM, -EINVAL, or a failing aio_poll's error. */
AIOPOLL_API int aio_wait_while(AioContext *ctx, bool (*cond)(void *opaque), void *opaque);

/** Makes every aio_wait_while() in the process re-check its condition: each
 * waiting context is notified. Any thread. Call it after the change the
 * waiter waits for (the call orders that change before the waiters'
 * re-check). With nobody waiting it costs a memory fence and one load: no
 * lock, no system call. */
AIOPOLL_API void aio_wait_kick(void);

/* ---- Clocks -------------------------------------------------------------- */

/** The clocks a timer can run on. */
typedef enum AioClockType {
    /** Monotonic (aio_clock_ns()); timers default to it. */
    AIO_CLOCK_REALTIME,
    /** The wall clock, nanoseconds since 1970. It jumps when the system time
     * is set; a timer fires when the wall clock reads its deadline, so
     * timers follow the jump. A forward jump is noticed within 100 ms by a
     * sleeping context (a poll with a HOST timer armed sleeps at most that
     * long at a time); a backward one delays the timer by the jump. */
    AIO_CLOCK_HOST,
    /** One process-wide clock the application controls (see
     * aio_virtual_clock_stop()). Initially running and equal to REALTIME. */
    AIO_CLOCK_VIRTUAL,
} AioClockType;

/** The current time of a clock. Any thread.
 * @param type the clock
 * @return nanoseconds; INT64_MIN for an unknown type. */
AIOPOLL_API int64_t aio_clock_get_ns(AioClockType type);

/** A timer of ctx on clock type: aio_timer_mod() takes absolute deadlines on
 * that clock. aio_timer_new() is aio_timer_new_on(AIO_CLOCK_REALTIME). On
 * every clock and backend a timer never fires before aio_clock_get_ns(type)
 * reaches its deadline.
 * @param ctx the context whose polls fire it
 * @param type the clock
 * @param cb the callback
 * @param opaque passed to cb
 * @return the timer, or NULL for a NULL ctx or cb, an unknown type, or no
 * memory. */
AIOPOLL_API AioTimer *aio_timer_new_on(AioContext *ctx, AioClockType type, AioHandler *cb,
                                       void *opaque);

/** Stops the virtual clock. Running, it advances at REALTIME's rate; stopped, it
 * stands still and its timers do not fire by the passing of real time.
 * aio_virtual_clock_start() continues from where it stopped (the stopped
 * time is not added back). Stop and start do not nest: stopping a stopped
 * clock or starting a running one does nothing. Any thread; both wake every
 * context with a VIRTUAL timer, so that sleeping polls re-compute their
 * timeouts. */
AIOPOLL_API void aio_virtual_clock_stop(void);
/** Starts the virtual clock again, from where it stopped (see
 * aio_virtual_clock_stop()). Any thread; wakes every context with a VIRTUAL
 * timer. */
AIOPOLL_API void aio_virtual_clock_start(void);
/** Sets the virtual clock to ns, running or stopped (it stays so): the timers
 * that became due fire in their contexts, each of which is woken. Any
 * thread.
 * @param ns the new reading
 * A running clock set close to INT64_MAX stops advancing there (it never
 * wraps), and a timer at INT64_MAX fires once the clock reads INT64_MAX.
 * @return 0, or -EINVAL when ns is before the clock's current value (it only
 * moves forward). */
AIOPOLL_API int aio_virtual_clock_set_ns(int64_t ns);

/* ---- Loop metrics -------------------------------------------------------- */

/** Counters since the context was created. Versioned by size: the caller sets
 * size = sizeof(AioContextStats); a library that knows more fields than the
 * caller fills only the first size bytes, and one that knows fewer leaves
 * the rest as the caller set them. */
typedef struct AioContextStats {
    size_t size;              /**< sizeof(AioContextStats), set by the caller */
    uint64_t iterations;      /**< aio_poll() calls that dispatched */
    uint64_t sleeps;          /**< blocking polls that slept in the backend */
    uint64_t wakeups_notify;  /**< sleeps ended by aio_notify() */
    uint64_t wakeups_fd;      /**< sleeps ended by a ready handler */
    uint64_t wakeups_timer;   /**< sleeps ended by their timeout */
    /** aio_notify() calls that kicked an announced blocking poll: a system
     * call, except on eventfd+ppoll and epoll when that poll had not reached
     * its wait yet (then the kick is a store that its wait reads). */
    uint64_t notify_syscalls;
    uint64_t bhs_run;         /**< bottom-half callbacks run */
    int64_t sleep_ns;         /**< time spent asleep in the backend */
    /** With aio_context_set_stats_timing() on (else 0): time spent in
     * callbacks (BH, fd, timer; nested ones counted once, in their outer
     * callback). */
    int64_t callback_ns;
    /** The longest single callback (timing on), in ns. */
    int64_t longest_callback_ns;
    /** The function of that callback (an AioHandler), for a debugger or
     * dladdr(); NULL when none ran. */
    void (*longest_callback)(void *opaque);
    uint64_t timers_run;     /**< timer callbacks run */
    uint64_t handlers_run;   /**< fd and notifier callbacks run */
    uint64_t work_completed; /**< AioWorkDone callbacks run */
} AioContextStats;

/** Copies ctx's counters into out (out->size bytes of it, at most the size
 * of this library's struct; out->size is set to the number filled). Any
 * thread; the values are read without stopping the loop, each one atomically
 * but not as one snapshot. Collecting them costs the loop no system call and
 * no lock.
 * @param ctx the context
 * @param out where to copy them; out->size set by the caller
 * @return 0, or -EINVAL for NULL ctx or out, or out->size smaller than the
 * fields up to longest_callback_ns. */
AIOPOLL_API int aio_context_get_stats(const AioContext *ctx, AioContextStats *out);

/** Turns the timing of every callback (callback_ns, longest_callback_ns,
 * longest_callback) on or off; off by default. Any thread; takes effect from
 * the next callback. The counters are always collected; timing costs two
 * monotonic clock reads per callback (no system call: vDSO or
 * QueryPerformanceCounter), which on a loop that runs millions of tiny
 * callbacks a second is more than the rest of the metrics together
 * (docs/performance.md, "Loop metrics"). libuv makes the same choice for
 * uv_metrics_idle_time (UV_METRICS_IDLE_TIME).
 * @param ctx the context
 * @param enable on or off
 * @return 0 or -EINVAL. */
AIOPOLL_API int aio_context_set_stats_timing(AioContext *ctx, bool enable);

/* ---- Embedding in another event loop ------------------------------------ */
/*
 * A host loop (GLib, libevent, libuv, a Win32 message pump, your own) can
 * drive a context instead of aio_poll(ctx, true). docs/embedding.md is the
 * adapter writer's guide; <aiopoll/glib.h>, <aiopoll/libevent.h> and
 * <aiopoll/libuv.h> are ready-made adapters. One iteration of the host loop,
 * on the context's home thread:
 *
 *     int64_t ns;
 *     aio_embed_prepare(ctx, &ns);          // announce the sleep; 0: work now
 *     n = aio_embed_query(ctx, fds, cap);   // what to wait on (usually 1)
 *     host_wait(fds, n, ns rounded *up*);   // the host's own sleep
 *     if (aio_embed_check(ctx) > 0)         // end of the sleep; accept
 *         aio_embed_dispatch(ctx);          // run BHs, handlers, timers
 *
 * While a context is attached, the host's sleep *is* its blocking poll and
 * the wake-up rules are unchanged: aio_notify() from any thread makes the
 * descriptor returned by query readable (so it wakes the host), only the
 * home thread's check accepts, a non-blocking aio_poll() from another thread
 * never steals the host's wake-up, and a nested aio_poll(ctx, true) from a
 * host callback on the home thread (between any two of these calls or inside
 * dispatch) works and leaves the host with a correct answer at its next
 * prepare. Adaptive polling is not done in embedded mode (the host decides
 * how to wait); io_poll handlers still run in nested blocking polls.
 *
 * Aggregation: on epoll (and eventfd+ppoll, which attach moves to epoll) the
 * host waits on one descriptor, readable when anything is ready; on Windows
 * on one manual-reset event HANDLE, signalled when anything is ready, for a
 * message loop's MsgWaitForMultipleObjectsEx (a backend thread per attached
 * context watches the notifiers and sockets; prepare re-arms it, so prepare
 * before every sleep; docs/embedding.md, "Windows"). pipe+poll has no aggregate:
 * query returns the wake-up descriptor plus one per watched registration.
 *
 * A prepare without a check (a host that skipped this source) is harmless:
 * the next prepare keeps the announcement; a check or dispatch without a
 * prepare works as a non-sleeping blocking poll. The calls may recurse (a
 * host iteration run from inside a callback of dispatch).
 */

/** The events an AioEmbedFd asks the host to wait for. */
enum { AIO_EMBED_READ = 1, AIO_EMBED_WRITE = 2 };
/** What a host loop waits on (aio_embed_query()). */
typedef struct AioEmbedFd {
    aio_handle_t handle; /**< a descriptor on POSIX, a waitable HANDLE on Windows */
    unsigned events;     /**< AIO_EMBED_READ and/or AIO_EMBED_WRITE */
} AioEmbedFd;

/** Marks ctx as driven by a host loop. host is the adapter's, returned by
 * aio_embed_host(). Home thread. Takes a reference on ctx, released by
 * aio_embed_detach(): an unref of an attached context leaves it alive (and
 * attached) until the detach. While attached, aio_context_set_home_thread()
 * is -EBUSY. Nothing changes on failure. Every backend can be embedded
 * (docs/embedding.md says how each one waits). On "win32" every attach
 * starts the context's watcher thread (the detach stops it) and may fail
 * with -EAGAIN (no thread) or -ENOMEM (no event, handle or memory).
 * @param ctx the context
 * @param host the adapter's pointer, returned by aio_embed_host()
 * @return 0, -EINVAL (NULL ctx), -EPERM (not the home thread),
 * -EBUSY (already attached, to this or another loop), -ENOTSUP (a backend
 * that cannot be embedded), -ECHILD (inherited through fork()), -ENOMEM,
 * -EAGAIN (win32: no watcher thread). */
AIOPOLL_API int aio_embed_attach(AioContext *ctx, void *host);

/** Ends the embedding: lowers a pending announcement, closes what query
 * handed out, drops the attach's reference (which may free ctx). The adapter
 * must have removed query's descriptors from its host loop first. On the home
 * thread, also from inside a callback of dispatch (the thread then stays the
 * home thread until that aio_embed_dispatch() returns: another thread's
 * aio_context_set_home_thread() is -EBUSY until then); or on any thread once
 * the host loop can no longer call into ctx (a GSource's finalize).
 * @param ctx the context
 * @return 0, -EINVAL (NULL ctx or not attached). */
AIOPOLL_API int aio_embed_detach(AioContext *ctx);

/** The host pointer given to aio_embed_attach().
 * @param ctx the context
 * @return the pointer, or NULL when not attached. */
AIOPOLL_API void *aio_embed_host(const AioContext *ctx);

/** Before the host sleeps: announces the sleep (so that aio_notify() from now
 * on wakes it) and then looks for work, in that order. *timeout_ns gets how
 * long the host may sleep: 0 when work is pending, -1 for no limit, else the
 * nanoseconds to the earliest timer (round *up* to your host's resolution, or
 * the timer is seen early and the host sleeps again).
 * @param ctx the context
 * @param timeout_ns receives how long the host may sleep
 * @return 1 when work is pending (*timeout_ns == 0), 0 when the host may
 * sleep, -EINVAL (NULL or not attached), -EPERM (not the home thread),
 * -ECHILD. */
AIOPOLL_API int aio_embed_prepare(AioContext *ctx, int64_t *timeout_ns);

/** Optional: cb(host) is called on the home thread when a nested blocking
 * poll, run by a host callback between prepare and the host's sleep, accepted
 * a notification: the timeout and descriptors the host is about to sleep on
 * may be stale (a timer armed there, a registration). cb must make the host
 * go round to prepare before it sleeps, with a signal of the host's own
 * (GLib: g_main_context_wakeup; libevent: event_active; libuv: a zero timer),
 * not by calling into ctx. Without one the context kicks the host's
 * descriptor once per announcement, which a further nested poll of a wait
 * loop may consume again: set one if your host runs callbacks between
 * prepare and its sleep. NULL removes it; detach forgets it.
 * @param ctx the context
 * @param cb the handler, called with the host pointer; NULL removes it
 * @return 0, -EINVAL, -EPERM. */
AIOPOLL_API int aio_embed_set_stale_handler(AioContext *ctx, AioHandler *cb);

/** What to wait on: fills up to n entries of fds and returns how many there
 * are (call again with room for that many if it is more than n; a call that
 * did not fit changes nothing). Home thread. In aggregated mode always 1 and
 * the same handle while attached. In descriptor-set mode the set follows the
 * registrations; call it after every prepare and update the host to exactly
 * the returned set; a descriptor that drops out stays open until the next
 * query, so remove it before the host waits again. The context owns the
 * descriptors: never read, write or close them.
 * @param ctx the context
 * @param fds where to write the set
 * @param n the room in fds
 * @return the count or -EINVAL, -EPERM, -ECHILD, -ENOMEM. */
AIOPOLL_API int aio_embed_query(AioContext *ctx, AioEmbedFd *fds, size_t n);

/** After the host's sleep (also when the host woke for something else):
 * lowers the announcement, consumes the wake-up, and says whether there is
 * anything to dispatch: 1 yes, 0 no (the host may go round to prepare), or
 * -EINVAL, -EPERM, -ECHILD. A negative backend error is returned by
 * dispatch, which then still runs bottom halves and timers.
 * @param ctx the context
 * @return 1, 0 or a negative error, as above. */
AIOPOLL_API int aio_embed_check(AioContext *ctx);

/** Runs what is ready (bottom halves, handlers, expired timers), with the
 * dispatch right, like the second half of a blocking aio_poll(). Calls check
 * first if the host did not. Home thread.
 * @param ctx the context
 * @return 1 if a callback ran, 0 if none, or a negative error as aio_poll()
 * does. */
AIOPOLL_API int aio_embed_dispatch(AioContext *ctx);

#ifdef __cplusplus
}
#endif

#endif /* AIOPOLL_AIO_H */
