/* SPDX-License-Identifier: MIT */
/*
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
#define ENOTSOCK 88
#endif
#ifndef ETIMEDOUT
#define ETIMEDOUT 110
#endif

#if defined(_WIN32)
typedef SOCKET aio_fd_t;     /* a Winsock socket */
typedef HANDLE aio_handle_t; /* a waitable Win32 event */
#else
typedef int aio_fd_t;     /* any pollable file descriptor */
typedef int aio_handle_t; /* the pollable descriptor behind an event notifier */
#endif

typedef struct AioContext AioContext;
typedef struct AioBH AioBH;
typedef struct AioTimer AioTimer;
typedef struct AioEventNotifier AioEventNotifier;

/* A callback with the opaque pointer given at registration. */
typedef void AioHandler(void *opaque);
/* A busy-poll callback: return true when it found (and handled) work. */
typedef bool AioPollHandler(void *opaque);

/* ---- Version and errors ------------------------------------------------- */

/* "MAJOR.MINOR.PATCH" of the library actually linked. */
AIOPOLL_API const char *aiopoll_version(void);

/* A short English name for a negative (or positive) errno value, e.g.
 * aio_strerror(-EPERM) == "operation not permitted (EPERM)". Never NULL. */
AIOPOLL_API const char *aio_strerror(int err);

/* ---- Context and ownership ---------------------------------------------- */

/* Creates a context with one reference. The calling thread becomes its home
 * thread. The backend is chosen by the environment variable AIOPOLL_BACKEND
 * ("eventfd+ppoll", "pipe+poll", "epoll", "win32"); unset or empty picks the
 * platform default. An unknown or unavailable name makes this return NULL with
 * errno set to EINVAL, so that a test run never silently tests the wrong
 * backend. */
AIOPOLL_API AioContext *aio_context_new(void);

/* Reference counting. The last unref frees the context and everything still
 * attached to it: bottom halves (scheduled or not), timers, fd handlers and
 * notifier registrations. Handles to those objects are dangling afterwards.
 * The last unref must not race with any other use of the context.
 *
 * The last unref may come from inside a callback of the context (a bottom
 * half, timer, fd or notifier handler), on the thread that runs it: the
 * context then stays alive until the outermost aio_poll() of that thread
 * returns, and is freed on its way out. Until then the rest of that poll's
 * callbacks still run and may use the context, nested aio_poll() calls
 * included; if one of them takes a new reference, the context is kept
 * (the next last unref frees it). No other thread may use it meanwhile. */
AIOPOLL_API void aio_context_ref(AioContext *ctx);
AIOPOLL_API void aio_context_unref(AioContext *ctx);

/* fork(): a context belongs to the process that created it. In a child
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
 *    own descriptors), and never removes the parent's registrations.
 * This is libuv's uv_loop_fork() / libevent's event_reinit() policy; a child
 * that just execs needs none of it. Not applicable on Windows. */

/* In a child process created by fork(), gives the inherited ctx kernel
 * objects of its own (a new wake-up object and backend, every registration
 * made anew on it) and makes the calling thread its home thread; from then
 * on the child uses ctx like any context and the parent is unaffected.
 * Precondition: when fork() was called, no thread of the parent other than
 * the forking one was inside a call on ctx, and the forking thread was not
 * inside aio_poll(ctx) (fork between polls, not from a callback). Returns 0
 * (also in the process that created ctx, where it does nothing), -EINVAL for
 * NULL, or the error of re-creating the backend (the context then keeps
 * refusing polls) or of re-registering a descriptor (that one is then not
 * watched; the others are). */
AIOPOLL_API int aio_context_after_fork(AioContext *ctx);

/* Makes the calling thread the home thread. Returns 0, -EINVAL for NULL, or
 * -EBUSY while another thread is inside aio_poll(ctx, true). */
AIOPOLL_API int aio_context_set_home_thread(AioContext *ctx);

/* True when the calling thread is ctx's home thread (false for NULL). */
AIOPOLL_API bool aio_context_in_home_thread(const AioContext *ctx);

/* The name of the mechanism this context waits with now ("eventfd+ppoll",
 * "pipe+poll", "epoll", "win32"); "" for NULL. A context created with the
 * Linux default "eventfd+ppoll" moves to epoll once more than 8 descriptors
 * are registered (ppoll's cost grows with every descriptor, epoll's does not)
 * and reports "epoll" from then on; the move is one-way. Any thread. */
AIOPOLL_API const char *aio_context_backend(const AioContext *ctx);

/* ---- Polling and notification ------------------------------------------- */

/* Runs ready bottom halves, expired timers and ready handlers once.
 *
 * Returns 1 if any callback ran, 0 if none ran, or a negative error:
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
 * thread is dispatching, the call returns 0 having done nothing.
 *
 * Calling aio_poll() from inside a callback of the same context, on the
 * thread that runs it, is allowed (nested polling). Handlers are
 * level-triggered; when several threads poll, a handler can be called for a
 * descriptor another poll already drained, so use non-blocking descriptors. */
AIOPOLL_API int aio_poll(AioContext *ctx, bool blocking);

/* Wakes a blocking poll of ctx, or makes the next blocking poll return
 * without sleeping. Any thread; on POSIX also async-signal-safe. Costs no
 * system call when no poll is blocking (it is two atomic operations). */
AIOPOLL_API void aio_notify(AioContext *ctx);

/* ---- Bottom halves ------------------------------------------------------ */

/* A bottom half runs cb(opaque) once in a later aio_poll of ctx each time it
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
 * `while (!done) aio_poll(ctx, true);` for a BH scheduled before it. */
AIOPOLL_API AioBH *aio_bh_new(AioContext *ctx, AioHandler *cb, void *opaque);

/* Any thread. Scheduling an already scheduled BH is a no-op (it runs once).
 * Wakes the context. Lock-free, and free of system calls unless the home
 * thread sleeps. A BH that was cancelled and is scheduled again before the
 * dispatch reached it keeps its place and runs once. */
AIOPOLL_API void aio_bh_schedule(AioBH *bh);

/* Any thread. A cancelled BH does not run until scheduled again (same
 * guarantee as aio_bh_delete below). */
AIOPOLL_API void aio_bh_cancel(AioBH *bh);

/* Any thread, also from inside the BH's own callback. The BH never runs again;
 * the context frees it at its next dispatch (or when it is destroyed), so bh
 * must not be used afterwards. As with aio_timer_del: after this returns on
 * the dispatching thread (from inside any callback of ctx), the callback does
 * not run. From another thread it stops every run that has not begun; a run
 * that already began may still be in progress when this returns (it does not
 * wait), so free what the callback uses only once it is known to be done. */
AIOPOLL_API void aio_bh_delete(AioBH *bh);

/* Any thread. Runs cb(opaque) once; the BH is freed after it ran. Returns 0,
 * -EINVAL for NULL ctx or cb, -ENOMEM. */
AIOPOLL_API int aio_bh_schedule_oneshot(AioContext *ctx, AioHandler *cb, void *opaque);

/* ---- File descriptors (sockets on Windows) ------------------------------ */

/* Registers, replaces or (io_read, io_write and io_poll all NULL) removes the
 * handlers of fd. Any thread; takes effect at the next poll iteration.
 * Level-triggered: io_read runs while fd is readable (or hung up / in error),
 * io_write while it is writable. io_poll, if given, is called by adaptive
 * polling (aio_context_set_poll_params) before the context sleeps.
 * is_external handlers are suspended by aio_disable_external().
 * Removing or replacing a handler from inside any callback, its own
 * included, is safe: the old handler is not called again after this returns
 * on the dispatching thread.
 *
 * Removing is idempotent and works after the descriptor was closed.
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
 * Returns 0, or -EINVAL (NULL ctx, or a value that is never a descriptor: a
 * negative fd, INVALID_SOCKET), -EBADF (registering a descriptor that is not
 * open), -ENOTSOCK (Windows: registering a value that is not a socket),
 * -EMFILE (no descriptor left for the duplicate), -ECHILD (inherited through
 * fork()), -ENOMEM. */
AIOPOLL_API int aio_set_fd_handler(AioContext *ctx, aio_fd_t fd, bool is_external,
                                   AioHandler *io_read, AioHandler *io_write,
                                   AioPollHandler *io_poll, void *opaque);

/* ---- Event notifiers ---------------------------------------------------- */

/* A level-triggered, set/clear flag that a context can wait on: an eventfd on
 * Linux, a non-blocking pipe on other POSIX systems, a manual-reset event on
 * Windows. Returns NULL when out of descriptors or memory. */
AIOPOLL_API AioEventNotifier *aio_event_notifier_new(bool initially_set);

/* Frees n. No-op for NULL. Remove its registrations first
 * (aio_set_event_notifier with io_read NULL); n may be freed as soon as that
 * returns, also while other threads are inside aio_poll(): a context waits
 * on its own duplicate of n's waitable object, never on n's. */
AIOPOLL_API void aio_event_notifier_free(AioEventNotifier *n);

/* Any thread; async-signal-safe on POSIX. Setting a set notifier is a no-op.
 * Returns 0, -EINVAL for NULL, or the system error. */
AIOPOLL_API int aio_event_notifier_set(AioEventNotifier *n);

/* Clears n and returns whether it was set (false for NULL). */
AIOPOLL_API bool aio_event_notifier_test_and_clear(AioEventNotifier *n);

/* The waitable object behind n: the fd on POSIX, the HANDLE on Windows
 * (-1 / NULL for a NULL n). It stays owned by n. */
AIOPOLL_API aio_handle_t aio_event_notifier_get_handle(const AioEventNotifier *n);

/* Registers (io_read non-NULL), replaces or removes (io_read NULL) a handler
 * that runs while n is set. The handler normally calls
 * aio_event_notifier_test_and_clear(). Any thread; removing is idempotent.
 * Returns 0, -EINVAL (NULL ctx or n), -EMFILE (no descriptor or handle left
 * for the context's duplicate), -ECHILD (inherited through fork()),
 * -ENOMEM. */
AIOPOLL_API int aio_set_event_notifier(AioContext *ctx, AioEventNotifier *n,
                                       bool is_external, AioHandler *io_read,
                                       AioPollHandler *io_poll, void *opaque);

/* Nestable. While the disable count is positive, handlers registered with
 * is_external = true are neither polled nor dispatched (their events stay
 * pending, level-triggered). Enabling the last level wakes the context. Any
 * thread. */
AIOPOLL_API void aio_disable_external(AioContext *ctx);
AIOPOLL_API void aio_enable_external(AioContext *ctx);

/* ---- Timers ------------------------------------------------------------- */

/* Monotonic time in nanoseconds (CLOCK_MONOTONIC / QueryPerformanceCounter). */
AIOPOLL_API int64_t aio_clock_ns(void);

/* A timer of ctx; it is not armed. NULL for a NULL ctx or cb, or no memory. */
AIOPOLL_API AioTimer *aio_timer_new(AioContext *ctx, AioHandler *cb, void *opaque);

/* Arms (or re-arms) t to fire once at the absolute time expire_ns on
 * aio_clock_ns(). Any thread; wakes the context when the new deadline is the
 * earliest. A timer never fires before its deadline; timers with the same
 * deadline fire in the order they were armed. A deadline in the past fires at
 * the next poll. */
AIOPOLL_API void aio_timer_mod(AioTimer *t, int64_t expire_ns);

/* Disarms t. Any thread. After this returns on the dispatching thread, t's
 * callback does not run until re-armed. */
AIOPOLL_API void aio_timer_del(AioTimer *t);

/* True while t is armed and has not fired. */
AIOPOLL_API bool aio_timer_pending(const AioTimer *t);

/* Disarms and frees t. Also allowed from inside t's own callback. */
AIOPOLL_API void aio_timer_free(AioTimer *t);

/* ---- Adaptive polling --------------------------------------------------- */

/* max_ns == 0 (the default) disables busy polling. Otherwise a blocking poll
 * that would sleep first calls the io_poll handlers (and watches for
 * aio_notify, without a system call) for up to the current poll window; the
 * window grows by the factor grow when a poll succeeded only after the window
 * ran out, and shrinks by the factor shrink when polling found nothing, always
 * between 0 and max_ns. grow/shrink of 0 select the defaults (2 and 2).
 * Returns 0, or -EINVAL for NULL ctx, negative max_ns, or grow == 1 /
 * negative factors. */
AIOPOLL_API int aio_context_set_poll_params(AioContext *ctx, int64_t max_ns,
                                            int64_t grow, int64_t shrink);

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
 * on one HANDLE (MsgWaitForMultipleObjectsEx). pipe+poll has no aggregate:
 * query returns the wake-up descriptor plus one per watched registration.
 *
 * A prepare without a check (a host that skipped this source) is harmless:
 * the next prepare keeps the announcement; a check or dispatch without a
 * prepare works as a non-sleeping blocking poll. The calls may recurse (a
 * host iteration run from inside a callback of dispatch).
 */

/* What a host loop waits on. events: AIO_EMBED_READ and/or AIO_EMBED_WRITE. */
enum { AIO_EMBED_READ = 1, AIO_EMBED_WRITE = 2 };
typedef struct AioEmbedFd {
    aio_handle_t handle; /* a descriptor on POSIX, a waitable HANDLE on Windows */
    unsigned events;
} AioEmbedFd;

/* Marks ctx as driven by a host loop. host is the adapter's, returned by
 * aio_embed_host(). Home thread. Takes a reference on ctx, released by
 * aio_embed_detach(): an unref of an attached context leaves it alive (and
 * attached) until the detach. While attached, aio_context_set_home_thread()
 * is -EBUSY. Returns 0, -EINVAL (NULL ctx), -EPERM (not the home thread),
 * -EBUSY (already attached, to this or another loop), -ENOTSUP (a backend
 * that cannot be embedded), -ECHILD (inherited through fork()), -ENOMEM.
 * Nothing changes on failure. */
AIOPOLL_API int aio_embed_attach(AioContext *ctx, void *host);

/* Ends the embedding: lowers a pending announcement, closes what query
 * handed out, drops the attach's reference (which may free ctx). The adapter
 * must have removed query's descriptors from its host loop first. On the home
 * thread, also from inside a callback of dispatch; or on any thread once the
 * host loop can no longer call into ctx (a GSource's finalize). Returns 0,
 * -EINVAL (NULL ctx or not attached). */
AIOPOLL_API int aio_embed_detach(AioContext *ctx);

/* The host pointer given to aio_embed_attach(), or NULL when not attached. */
AIOPOLL_API void *aio_embed_host(const AioContext *ctx);

/* Before the host sleeps: announces the sleep (so that aio_notify() from now
 * on wakes it) and then looks for work, in that order. *timeout_ns gets how
 * long the host may sleep: 0 when work is pending, -1 for no limit, else the
 * nanoseconds to the earliest timer (round *up* to your host's resolution, or
 * the timer is seen early and the host sleeps again). Returns 1 when work is
 * pending (*timeout_ns == 0), 0 when the host may sleep, -EINVAL (NULL or not
 * attached), -EPERM (not the home thread), -ECHILD. */
AIOPOLL_API int aio_embed_prepare(AioContext *ctx, int64_t *timeout_ns);

/* Optional: cb(host) is called on the home thread when a nested blocking
 * poll, run by a host callback between prepare and the host's sleep, accepted
 * a notification: the timeout and descriptors the host is about to sleep on
 * may be stale (a timer armed there, a registration). cb must make the host
 * go round to prepare before it sleeps, with a signal of the host's own
 * (GLib: g_main_context_wakeup; libevent: event_active; libuv: a zero timer),
 * not by calling into ctx. Without one the context kicks the host's
 * descriptor once per announcement, which a further nested poll of a wait
 * loop may consume again: set one if your host runs callbacks between
 * prepare and its sleep. NULL removes it; detach forgets it. Returns 0,
 * -EINVAL, -EPERM. */
AIOPOLL_API int aio_embed_set_stale_handler(AioContext *ctx, AioHandler *cb);

/* What to wait on: fills up to n entries of fds and returns how many there
 * are (call again with room for that many if it is more than n; a call that
 * did not fit changes nothing). Home thread. In aggregated mode always 1 and
 * the same handle while attached. In descriptor-set mode the set follows the
 * registrations; call it after every prepare and update the host to exactly
 * the returned set; a descriptor that drops out stays open until the next
 * query, so remove it before the host waits again. The context owns the
 * descriptors: never read, write or close them. Returns the count or -EINVAL,
 * -EPERM, -ECHILD, -ENOMEM. */
AIOPOLL_API int aio_embed_query(AioContext *ctx, AioEmbedFd *fds, size_t n);

/* After the host's sleep (also when the host woke for something else):
 * lowers the announcement, consumes the wake-up, and says whether there is
 * anything to dispatch: 1 yes, 0 no (the host may go round to prepare), or
 * -EINVAL, -EPERM, -ECHILD. A negative backend error is returned by
 * dispatch, which then still runs bottom halves and timers. */
AIOPOLL_API int aio_embed_check(AioContext *ctx);

/* Runs what is ready (bottom halves, handlers, expired timers), with the
 * dispatch right, like the second half of a blocking aio_poll(). Calls check
 * first if the host did not. Home thread. Returns 1 if a callback ran, 0 if
 * none, or a negative error as aio_poll() does. */
AIOPOLL_API int aio_embed_dispatch(AioContext *ctx);

#ifdef __cplusplus
}
#endif

#endif /* AIOPOLL_AIO_H */
