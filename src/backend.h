/* SPDX-License-Identifier: MIT */
/*
 * The interface between the shared core and an OS wait primitive
 * (docs/design.md, "Backends").
 *
 * A backend owns exactly two things: the context's wake-up object (an eventfd,
 * a pipe, a Win32 event) and the act of sleeping on that object plus the
 * registered sources. Everything about *when* to sleep and *who* may consume a
 * wake-up lives in the core (poll.c), so every backend obeys the same rules by
 * construction: a backend never decides to accept a wake-up, it only reports
 * whether its wake-up object was signalled and clears it when told to.
 *
 * Sources are described by what they wait on, not by how: an fd/SOCKET for
 * fd handlers, an AioEventNotifier for notifiers. A POSIX backend polls the
 * notifier's descriptor; the Win32 backend waits on its HANDLE.
 */
#ifndef AIOPOLL_BACKEND_H
#define AIOPOLL_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <aiopoll/aio.h>

typedef struct AioBackend AioBackend; /* backend-private state, one per context */
typedef struct AioSource AioSource;   /* defined in aio-internal.h */
typedef struct AioPollSet AioPollSet;

/* Readiness bits a backend reports for a source. */
enum {
    AIO_EV_READ = 1u << 0,  /* readable, hung up, in error, or notifier set */
    AIO_EV_WRITE = 1u << 1, /* writable, or in error */
};

/* The result of one wait: which sources are ready. */
typedef struct AioReady {
    AioSource *src;
    unsigned events;
} AioReady;

/*
 * One caller's view of the sources, built by the core under the list lock
 * and kept valid (no source in it is freed) until the caller's poll ends.
 * Several threads may wait at once (the home thread sleeping, others polling
 * without blocking), each with its own set, so per-wait state lives here and
 * not in the backend.
 */
struct AioPollSet {
    AioSource **srcs; /* watched, live sources at snapshot time */
    size_t n, cap;
    unsigned generation; /* ctx->generation the snapshot was taken at */

    AioReady *ready; /* filled by wait(); capacity >= n */
    size_t nready;

    /* Backend-owned state derived from srcs (a pollfd array, a HANDLE
     * array); the backend records which generation it was built from and
     * rebuilds it when that differs. NULL until the first wait(). */
    void *scratch;
};

typedef struct AioBackendOps {
    const char *name;

    /* Allocates the backend state and its wake-up object; NULL on failure. */
    AioBackend *(*create)(void);
    void (*destroy)(AioBackend *be);

    /* Signals the wake-up object. Any thread; async-signal-safe on POSIX.
     * The core calls it only when a blocking poll has announced itself. */
    void (*kick)(AioBackend *be);
    /* Clears the wake-up object. Called only by a blocking poll on the home
     * thread, after wait() reported it signalled ("accepting" the wake-up). */
    void (*clear_kick)(AioBackend *be);

    /* Start/stop delivering readiness for src (kernel-side registration, for
     * backends that keep one, e.g. epoll; NULL when the backend polls the
     * snapshot each time). Called with the context's list lock held. watch()
     * may fail with a negative errno; unwatch() cannot fail. */
    int (*watch)(AioBackend *be, AioSource *src);
    void (*unwatch)(AioBackend *be, AioSource *src);

    /* Sleeps until a source in set is ready, the wake-up object is signalled
     * (only when with_kick: blocking polls), or timeout_ns passes (-1 forever,
     * 0 do not sleep). Rounds the timeout *up* to the OS resolution so that
     * a timer never fires early. Fills set->ready / set->nready and *kicked.
     * Never consumes the wake-up object. Returns 0 or a negative errno;
     * EINTR is not an error (it returns 0 with nothing ready). */
    int (*wait)(AioBackend *be, AioPollSet *set, int64_t timeout_ns, bool with_kick,
                bool *kicked);

    /* Frees set->scratch. */
    void (*pollset_fini)(AioBackend *be, AioPollSet *set);

    /* Optional: the name to report now, for a backend that changes its
     * mechanism at run time ("eventfd+ppoll" becomes "epoll" once many
     * descriptors are watched). NULL: always name. Any thread. */
    const char *(*current_name)(AioBackend *be);
} AioBackendOps;

/* The backends compiled for this platform, default first, NULL-terminated
 * (src/posix/backends.c or src/win32/backends.c). */
extern const AioBackendOps *const aio__backends[];

#endif
