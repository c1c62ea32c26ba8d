/* SPDX-License-Identifier: MIT */
/*
 * The interface between the shared core and an OS wait primitive
 * (docs/design.md, "Backends").
 *
 * A backend owns exactly two things: the context's wake-up object (an eventfd,
 * a pipe, a Win32 event) and the act of sleeping on that object plus the
 * watched objects. Everything about *when* to sleep, *who* may consume a
 * wake-up and *whether* a registration still counts lives in the core
 * (poll.c, sources.c), so every backend obeys the same rules by construction:
 * a backend never decides to accept a wake-up, it only reports whether its
 * wake-up object was signalled and clears it when told to.
 *
 * What a backend sees of a registration is what libuv's platform code sees
 * of a handle: an object, an interest mask and a stable id (AioWatch). It
 * never sees the core's source records, callbacks or deletion state, and it
 * reports readiness by id. Two properties make the classes of defect that a
 * value outliving what it names causes impossible here:
 *  - the object is the context's own (a private duplicate of the user's
 *    descriptor or handle, platform.h aio__object_open), closed by the core
 *    only when no poll can look at it any more, so a backend may wait on
 *    every object of its snapshot whatever the user did with their fd,
 *    socket or notifier meanwhile;
 *  - ids are never given to another registration within a context, so an
 *    event that arrives late (an epoll event queued before the removal) can
 *    only name the registration it was for; the core drops ids it does not
 *    know. One registration can be watched again after its unwatch(), with
 *    the same id (aio_enable_external): a backend whose kernel requests
 *    carry a value back in their completions (io_uring) carries a tag of
 *    its own per watch() instead, so that a completion of the earlier
 *    watch cannot be taken for the later one.
 * A replacement watches the new registration before it unwatches the old
 * (so that a refused replacement keeps the old handler): for that moment
 * the same file is watched twice, through two duplicates on POSIX, as the
 * same socket on Windows, and unwatching the older must leave the newer
 * working.
 * Backend sources include this header and platform.h, never aio-internal.h,
 * so the compiler holds the boundary.
 */
#ifndef AIOPOLL_BACKEND_H
#define AIOPOLL_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <aiopoll/aio.h>

typedef struct AioBackend AioBackend; /* backend-private state, one per context */

/* Readiness and interest bits. */
enum {
    AIO_EV_READ = 1u << 0,  /* readable, hung up, in error, or notifier set */
    AIO_EV_WRITE = 1u << 1, /* writable, or in error */
};

/* Identifies one registration for the life of its context. Never 0. */
typedef uint64_t AioSourceId;

/*
 * The object a registration waits on, owned by the context.
 *  - is_event == false: fd is a descriptor (POSIX: a private duplicate of
 *    the user's descriptor; Windows: the user's socket itself, which Winsock
 *    cannot duplicate within a process; the backend's per-socket event is
 *    what the context owns there).
 *  - is_event == true: handle is an event notifier's waitable (POSIX: a
 *    private duplicate of its read descriptor; Windows: a DuplicateHandle of
 *    its event).
 */
typedef struct AioObject {
    bool is_event;
    aio_fd_t fd;
    aio_handle_t handle;
} AioObject;

/*
 * A registration as the backend sees it. The core allocates, fills and frees
 * it. Lifetime: from before watch() until after unwatch() *and* the last
 * snapshot (AioWaitSet) that names it is gone, so wait() may read every
 * watch of its set.
 */
typedef struct AioWatch {
    AioSourceId id;
    AioObject obj;
    unsigned interest; /* AIO_EV_READ | AIO_EV_WRITE, never 0, fixed */
    /* The backend's, between watch() and unwatch(). unwatch() can run while
     * a wait() on another thread still has this watch in its set: a backend
     * that reads backend_data in wait() synchronises with its own unwatch(). */
    void *backend_data;
} AioWatch;

/* One ready registration. */
typedef struct AioReady {
    AioSourceId id;
    unsigned events; /* AIO_EV_*; the core masks them with the interest */
} AioReady;

/*
 * One caller's view of the watched registrations, built by the core and kept
 * valid until the caller's poll ends. Several threads may wait at once (the
 * home thread sleeping, others polling without blocking), each with its own
 * set, so per-wait state lives here and not in the backend.
 */
typedef struct AioWaitSet {
    AioWatch *const *watches; /* watched at snapshot time */
    size_t n;
    unsigned generation; /* changes whenever watches[] does; never 0 */

    AioReady *ready; /* filled by wait(); capacity >= n */
    size_t nready;

    /* Backend-owned state derived from watches[] (a pollfd array, a HANDLE
     * array); the backend records which generation it was built from and
     * rebuilds it when that differs. NULL until the first wait(). */
    void *scratch;
} AioWaitSet;

typedef struct AioBackendOps {
    const char *name;

    /* Allocates the backend state and its wake-up object; NULL on failure
     * (errno set). */
    AioBackend *(*create)(void);
    /* Frees it. Every watch was unwatched before. */
    void (*destroy)(AioBackend *be);

    /* Signals the wake-up object. Any thread; async-signal-safe on POSIX.
     * The core calls it only when a blocking poll has announced itself. */
    void (*kick)(AioBackend *be);
    /* Clears the wake-up object. Called only by a blocking poll on the home
     * thread, after wait() reported it signalled ("accepting" the wake-up). */
    void (*clear_kick)(AioBackend *be);

    /* Start/stop delivering readiness for w (kernel-side registration, for
     * backends that keep one; NULL when the backend polls its snapshot each
     * time). Called under the context's list lock, so never concurrently
     * with each other. watch() may fail with a negative errno (and then
     * leaves nothing behind); unwatch() cannot fail and is called exactly
     * once for every watch() that succeeded. */
    int (*watch)(AioBackend *be, AioWatch *w);
    void (*unwatch)(AioBackend *be, AioWatch *w);

    /* Sleeps until a watch in set is ready, the wake-up object is signalled
     * (only when with_kick: blocking polls), or timeout_ns passes (-1 forever,
     * 0 do not sleep). Rounds the timeout *up* to the OS resolution so that
     * a timer never fires early. Fills set->ready / set->nready (ids of
     * set's watches, or of watches the backend registered in the kernel:
     * the core ignores ids it does not know) and *kicked. Never consumes the
     * wake-up object. Returns 0 or a negative errno; EINTR is not an error
     * (it returns 0 with nothing ready). */
    int (*wait)(AioBackend *be, AioWaitSet *set, int64_t timeout_ns, bool with_kick,
                bool *kicked);

    /* Frees set->scratch. */
    void (*waitset_fini)(AioBackend *be, AioWaitSet *set);

    /* Optional: the name to report now, for a backend that changes its
     * mechanism at run time ("eventfd+ppoll" becomes "epoll" once many
     * descriptors are watched). NULL: always name. Any thread. */
    const char *(*current_name)(AioBackend *be);

    /* Optional (POSIX): called in a child process on a backend inherited
     * through fork(). From then on the backend must not change any kernel
     * state it shares with the parent (an epoll set's interest list, the
     * wake-up object's counter): unwatch() and destroy() only free memory
     * and close this process's descriptors. NULL: nothing is shared. */
    void (*forked)(AioBackend *be);

    /* ---- Embedding in a host loop (src/embed.c, docs/embedding.md) ----
     * A backend offers one of the two forms below, or neither (then
     * aio_embed_attach() is -ENOTSUP). */

    /* Optional: makes the backend sleep on one object that is ready whenever
     * a watch is ready or the wake-up object is signalled (an epoll set),
     * switching to it first if it has such a mode, and returns it. From then
     * on, until destroy(), wait() must keep using it. -ENOTSUP when there is
     * none (the core then asks for embed_fds). Home thread, list lock held.
     * Called again after embed_release() for a re-attach. */
    int (*embed_aggregate)(AioBackend *be, aio_handle_t *out);
    /* Optional, with embed_aggregate: true when a wait would report a watch
     * ready that the aggregate object does not show (epoll's always-ready
     * files), so the host must not sleep. Any thread. */
    bool (*embed_busy)(AioBackend *be);
    /* Optional, for backends without an aggregate: the descriptor of the
     * wake-up object, readable while it is signalled. */
    aio_handle_t (*embed_kick_handle)(AioBackend *be);
    /* Optional, with embed_aggregate: called by aio_embed_prepare on the
     * home thread after the announcement and before the host sleeps on the
     * aggregate object. Makes that object show, from now until the next
     * wait(), everything a wait() would report (io_uring: submits the
     * pending poll requests; win32: resets the aggregate event and re-arms
     * the watcher thread). A negative errno makes prepare answer "timeout
     * 0", so the host comes straight back. */
    int (*embed_arm)(AioBackend *be);
    /* Optional, with embed_aggregate: the host loop is gone (the last
     * aio_embed_detach, on any thread; list lock held). Undoes what
     * embed_aggregate turned on for the host's sake, so that a context once
     * embedded pays no more per wake-up, and holds no more threads or
     * handles, than one never embedded (win32: the watcher thread stops);
     * the aggregate object itself stays, and a later embed_aggregate
     * returns it again (a mode switch like eventfd+ppoll's to epoll is
     * one-way). The home thread's accept, or a wait of its own, may read
     * the state concurrently: atomic, or behind the backend's own lock. */
    void (*embed_release)(AioBackend *be);
} AioBackendOps;

/* The backends compiled for this platform, default first, NULL-terminated
 * (src/posix/backends.c or src/win32/backends.c). */
extern const AioBackendOps *const aio__backends[];

#endif
