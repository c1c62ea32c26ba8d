/* SPDX-License-Identifier: MIT */
/*
 * The "win32" backend (docs/win32-backend.md).
 *
 *  - Wake-up object: a manual-reset event. kick() sets it, clear_kick()
 *    resets it, and nothing else changes it: waiting on a manual-reset event
 *    does not reset it, so wait() can observe a kick without consuming it.
 *    It is in the wait list only when with_kick (blocking polls).
 *  - Event notifiers: the context's duplicate of each notifier's
 *    manual-reset event (AioObject.handle, aio__object_open) is waited on
 *    directly; signalled means READ. The backend only ever waits on the
 *    objects of the AioWaitSet it is given (plus its own wake-up event,
 *    socket events and helper-thread controls), never on a user's value.
 *  - Sockets: one WSAEVENT per watched socket, associated with
 *    WSAEventSelect (FD_READ|FD_ACCEPT|FD_CLOSE for read interest,
 *    FD_WRITE|FD_CONNECT for write interest). The event only says "something
 *    may have changed"; readiness itself comes from a zero-timeout select()
 *    on the watched sockets before every sleep and after every wake-up, which
 *    makes sockets level-triggered as on POSIX.
 *  - More than 64 handles: helper threads (win32-waiters.c).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "platform.h"
#include "win32-internal.h"
#include "win32-waiters.h"

/* A socket with write interest that select() calls unwritable is re-checked
 * at least this often while sleeping: FD_WRITE is only re-armed by a send()
 * that failed with WSAEWOULDBLOCK, so a send buffer that filled up without
 * one would otherwise never be reported writable again. */
#define WRITE_RECHECK_NS (50 * 1000 * 1000)

/* The socket part of a watch: w->backend_data. Reference counted, because a
 * poller's handle array may still name the event after the watch was
 * unwatched; the event is closed only when no array uses it. */
typedef struct SockRec {
    SOCKET s;
    WSAEVENT ev;
    unsigned interest; /* AIO_EV_READ / AIO_EV_WRITE */
    atomic_long refs;
    /* Set by unwatch(): the user may close the socket from then on (and
     * Winsock may give its value to a new socket), so scans leave it out. */
    atomic_bool unwatched;
    /* The event may be signalled for a reason already accounted for: reset
     * it (and only then re-check the socket) before the next sleep. */
    atomic_bool dirty;
} SockRec;

struct AioBackend {
    HANDLE wake; /* manual-reset */
    /* Guards w->backend_data against unwatch() while a poller takes a
     * reference to the record. */
    SRWLOCK rec_lock;
    AioWaiterPool waiters;
};

/* An fd_set of any size: Winsock's select() reads fd_count entries,
 * FD_SETSIZE only sizes the declared array. */
typedef struct BigFdSet {
    u_int fd_count;
    SOCKET fd_array[];
} BigFdSet;
_Static_assert(offsetof(BigFdSet, fd_array) == offsetof(fd_set, fd_array),
               "BigFdSet must have fd_set's layout");

/* Per wait set: built from set->watches when the snapshot changes. */
typedef struct Scratch {
    unsigned generation; /* the AioWaitSet generation this was built from */
    bool valid;
    size_t cap;
    /* wh[0] is the wake-up event, wh[1 .. 1+nn) the notifiers' handles,
     * wh[1+nn .. 1+nn+ns) the sockets' events. */
    HANDLE *wh;
    size_t nn, ns;
    AioSourceId *nid; /* the watch of each notifier handle */
    AioSourceId *sid; /* ... and of each socket */
    SockRec **srec;
    size_t *fired;    /* aio__waiters_threads(1 + cap) entries */
    unsigned *ev; /* readiness found by a scan: [0, nn) notifiers, [nn, nn+ns) sockets */
    BigFdSet *rd, *wr, *ex;
    size_t *rmap, *wmap, *xmap; /* fd_array slot -> socket index */
} Scratch;

/* ---- socket records ------------------------------------------------------ */

static void rec_unref(SockRec *rec)
{
    if (atomic_fetch_sub(&rec->refs, 1) == 1) {
        WSACloseEvent(rec->ev);
        free(rec);
    }
}

static int w32_watch(AioBackend *be, AioWatch *w)
{
    if (w->obj.is_event) {
        return 0; /* waited on through its handle; nothing to register */
    }
    SockRec *rec = aio__calloc(1, sizeof(*rec));
    if (!rec) {
        return -ENOMEM;
    }
    rec->s = w->obj.fd;
    rec->interest = w->interest;
    rec->ev = AIO_FAULT_CALL(AIO_FAULT_WSA_CREATE_EVENT, WSA_INVALID_EVENT, WSACreateEvent());
    if (rec->ev == WSA_INVALID_EVENT) {
        free(rec);
        return -ENOMEM;
    }
    long mask = 0;
    if (rec->interest & AIO_EV_READ) {
        mask |= FD_READ | FD_ACCEPT | FD_CLOSE;
    }
    if (rec->interest & AIO_EV_WRITE) {
        mask |= FD_WRITE | FD_CONNECT;
    }
    /* Also makes the socket non-blocking, for good (docs/win32-backend.md). */
    if (AIO_FAULT_CALL(AIO_FAULT_WSA_EVENT_SELECT, SOCKET_ERROR,
                       WSAEventSelect(rec->s, rec->ev, mask)) == SOCKET_ERROR) {
        int err = aio__win32_wsa_errno(WSAGetLastError());
        WSACloseEvent(rec->ev);
        free(rec);
        return err == -EIO ? -EBADF : err;
    }
    atomic_init(&rec->refs, 1);
    atomic_init(&rec->dirty, true);
    atomic_init(&rec->unwatched, false);
    AcquireSRWLockExclusive(&be->rec_lock);
    w->backend_data = rec;
    ReleaseSRWLockExclusive(&be->rec_lock);
    return 0;
}

static void w32_unwatch(AioBackend *be, AioWatch *w)
{
    AcquireSRWLockExclusive(&be->rec_lock);
    SockRec *rec = w->backend_data;
    w->backend_data = NULL;
    ReleaseSRWLockExclusive(&be->rec_lock);
    if (!rec) {
        return;
    }
    atomic_store_explicit(&rec->unwatched, true, memory_order_relaxed);
    /* Cancel the association while the socket may still be open, so that
     * Winsock never signals an event we are about to close. This fails
     * harmlessly when the socket was closed already (closesocket cancels it
     * itself). */
    WSAEventSelect(rec->s, NULL, 0);
    rec_unref(rec);
}

/* ---- the context's wake-up event ----------------------------------------- */

static AioBackend *w32_create(void)
{
    int err = aio__win32_winsock_init();
    if (err) {
        errno = -err;
        return NULL;
    }
    AioBackend *be = aio__calloc(1, sizeof(*be));
    if (!be) {
        errno = ENOMEM;
        return NULL;
    }
    InitializeSRWLock(&be->rec_lock);
    be->wake = AIO_FAULT_CALL(AIO_FAULT_CREATE_EVENT, NULL, CreateEventW(NULL, TRUE, FALSE, NULL));
    if (!be->wake || aio__waiters_init(&be->waiters) < 0) {
        if (be->wake) {
            CloseHandle(be->wake);
        }
        free(be);
        errno = ENOMEM;
        return NULL;
    }
    return be;
}

static void w32_destroy(AioBackend *be)
{
    aio__waiters_destroy(&be->waiters);
    CloseHandle(be->wake);
    free(be);
}

static void w32_kick(AioBackend *be)
{
    SetEvent(be->wake);
}

static void w32_clear_kick(AioBackend *be)
{
    ResetEvent(be->wake);
}

/* ---- per-set scratch -------------------------------------------------- */

static void scratch_release_recs(Scratch *sc)
{
    for (size_t i = 0; i < sc->ns; i++) {
        rec_unref(sc->srec[i]);
    }
    sc->ns = 0;
    sc->nn = 0;
}

static void scratch_free(Scratch *sc)
{
    scratch_release_recs(sc);
    free(sc->wh);
    free(sc->nid);
    free(sc->sid);
    free(sc->srec);
    free(sc->fired);
    free(sc->ev);
    free(sc->rd);
    free(sc->wr);
    free(sc->ex);
    free(sc->rmap);
    free(sc->wmap);
    free(sc->xmap);
    free(sc);
}

static int scratch_reserve(Scratch *sc, size_t n)
{
    /* cap, not a pointer: cap is set only once every array is, so a
     * reservation that failed half-way is redone in full. */
    if (n <= sc->cap && sc->cap > 0) {
        return 0;
    }
    size_t cap = sc->cap ? sc->cap : 8;
    while (cap < n) {
        cap *= 2;
    }
#define GROW(field, count)                                          \
    do {                                                            \
        void *p_ = aio__realloc(sc->field, (count) * sizeof(*sc->field)); \
        if (!p_) {                                                  \
            return -ENOMEM;                                         \
        }                                                           \
        sc->field = p_;                                             \
    } while (0)
    GROW(wh, cap + 1);
    GROW(nid, cap);
    GROW(sid, cap);
    GROW(srec, cap);
    GROW(fired, aio__waiters_threads(cap + 1));
    GROW(ev, cap);
    GROW(rmap, cap);
    GROW(wmap, cap);
    GROW(xmap, cap);
#undef GROW
    size_t setsz = offsetof(BigFdSet, fd_array) + cap * sizeof(SOCKET);
    BigFdSet **sets[3] = {&sc->rd, &sc->wr, &sc->ex};
    for (int i = 0; i < 3; i++) {
        BigFdSet *p = aio__realloc(*sets[i], setsz);
        if (!p) {
            return -ENOMEM;
        }
        *sets[i] = p;
    }
    sc->cap = cap;
    return 0;
}

static int scratch_build(AioBackend *be, AioWaitSet *set)
{
    Scratch *sc = set->scratch;
    if (!sc) {
        sc = aio__calloc(1, sizeof(*sc));
        if (!sc) {
            return -ENOMEM;
        }
        set->scratch = sc;
    }
    scratch_release_recs(sc);
    sc->valid = false;
    int err = scratch_reserve(sc, set->n);
    if (err) {
        return err;
    }

    /* Every watch of the set stays valid, its object open, until the set
     * is gone (backend.h), whatever the user did with their notifier or
     * socket meanwhile: nothing here needs to know whether it was removed
     * since the snapshot. A socket's record may be gone (unwatched): then
     * its watch is left out, it no longer counts. */
    AcquireSRWLockShared(&be->rec_lock);
    for (size_t i = 0; i < set->n; i++) {
        AioWatch *w = set->watches[i];
        if (w->obj.is_event) {
            sc->nid[sc->nn] = w->id;
            sc->wh[1 + sc->nn++] = w->obj.handle;
            continue;
        }
        SockRec *rec = w->backend_data;
        if (rec) {
            atomic_fetch_add(&rec->refs, 1);
            sc->sid[sc->ns] = w->id;
            sc->srec[sc->ns++] = rec;
        }
    }
    ReleaseSRWLockShared(&be->rec_lock);

    sc->wh[0] = be->wake;
    for (size_t i = 0; i < sc->ns; i++) {
        sc->wh[1 + sc->nn + i] = sc->srec[i]->ev;
    }
    sc->generation = set->generation;
    sc->valid = true;
    return 0;
}

static void w32_waitset_fini(AioBackend *be, AioWaitSet *set)
{
    (void)be;
    if (set->scratch) {
        scratch_free(set->scratch);
    }
    set->scratch = NULL;
}

/* ---- readiness ------------------------------------------------------------ */

/* A wait on the context's own objects failed. Each of them is open for as
 * long as a set can name it: the notifiers' duplicates are closed by the core
 * only when no snapshot names their watch any more, the wake-up, socket and
 * helper events are the backend's. Only a CloseHandle() of one of those
 * private values from outside the library can get here: an error, not a
 * readiness report. */
#define WAIT_BROKEN (-EIO)

/* Marks in sc->ev the signalled handles among h[0..n); index i of h is
 * notifier i - off (off = 1 when h starts with the wake-up event). Each
 * zero-timeout WaitForMultipleObjects reports the lowest signalled handle,
 * so a chunk of 64 costs one call plus one per signalled handle. */
static int scan_handles(Scratch *sc, const HANDLE *h, size_t n, size_t off, bool *kicked)
{
    for (size_t base = 0; base < n; base += MAXIMUM_WAIT_OBJECTS) {
        size_t cnt = n - base < MAXIMUM_WAIT_OBJECTS ? n - base : MAXIMUM_WAIT_OBJECTS;
        size_t pos = 0;
        while (pos < cnt) {
            DWORD r = AIO_FAULT_CALL(
                AIO_FAULT_WAIT, WAIT_FAILED,
                WaitForMultipleObjects((DWORD)(cnt - pos), &h[base + pos], FALSE, 0));
            if (r == WAIT_TIMEOUT) {
                break;
            }
            /* Events only: never WAIT_ABANDONED. */
            if (r >= WAIT_OBJECT_0 + (cnt - pos)) {
                return WAIT_BROKEN;
            }
            size_t hit = pos + (r - WAIT_OBJECT_0);
            size_t g = base + hit;
            if (g < off) {
                *kicked = true;
            } else {
                sc->ev[g - off] |= AIO_EV_READ;
            }
            pos = hit + 1;
        }
    }
    return 0;
}
/* Finds the socket index of each socket select() left in res. select()
 * keeps the order of its input, so a moving cursor finds each in O(1)
 * amortized; the wrap-around only guards against an implementation that
 * does not. */
static void mark_sockets(Scratch *sc, const BigFdSet *res, const size_t *map, size_t nin,
                         unsigned bits)
{
    size_t cur = 0;
    for (u_int i = 0; i < res->fd_count && nin > 0; i++) {
        SOCKET s = res->fd_array[i];
        for (size_t step = 0; step < nin; step++) {
            size_t k = (cur + step) % nin;
            if (sc->srec[map[k]]->s == s) {
                sc->ev[sc->nn + map[k]] |= bits;
                cur = k + 1;
                break;
            }
        }
    }
}

static void scan_one_socket(Scratch *sc, size_t i)
{
    SockRec *rec = sc->srec[i];
    fd_set rd, wr, ex;
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_ZERO(&ex);
    if (rec->interest & AIO_EV_READ) {
        FD_SET(rec->s, &rd);
    }
    if (rec->interest & AIO_EV_WRITE) {
        FD_SET(rec->s, &wr);
        FD_SET(rec->s, &ex);
    }
    struct timeval zero = {0, 0};
    int r = select(0, &rd, &wr, &ex, &zero);
    unsigned ev = 0;
    if (r == SOCKET_ERROR) {
        ev = rec->interest; /* closed under us: like POLLNVAL */
    } else {
        if (rd.fd_count) {
            ev |= AIO_EV_READ;
        }
        if (wr.fd_count) {
            ev |= AIO_EV_WRITE;
        }
        if (ex.fd_count) {
            ev |= rec->interest; /* a failed connect: an error for both */
        }
    }
    sc->ev[sc->nn + i] |= ev;
}

static bool rec_unwatched(const SockRec *rec)
{
    return atomic_load_explicit(&rec->unwatched, memory_order_relaxed);
}

static void scan_sockets(Scratch *sc)
{
    BigFdSet *rd = sc->rd, *wr = sc->wr, *ex = sc->ex;
    rd->fd_count = wr->fd_count = ex->fd_count = 0;
    size_t nr = 0, nw = 0;
    for (size_t i = 0; i < sc->ns; i++) {
        SockRec *rec = sc->srec[i];
        if (rec_unwatched(rec)) {
            continue; /* its socket may be closed, its value reused */
        }
        if (rec->interest & AIO_EV_READ) {
            sc->rmap[nr] = i;
            rd->fd_array[nr++] = rec->s;
        }
        if (rec->interest & AIO_EV_WRITE) {
            /* A failed non-blocking connect shows up in exceptfds only.
             * Read-only sockets stay out of it: out-of-band data would
             * otherwise make them ready forever. */
            sc->wmap[nw] = i;
            sc->xmap[nw] = i;
            wr->fd_array[nw] = rec->s;
            ex->fd_array[nw++] = rec->s;
        }
    }
    if (nr + nw == 0) {
        return;
    }
    rd->fd_count = (u_int)nr;
    wr->fd_count = ex->fd_count = (u_int)nw;
    struct timeval zero = {0, 0};
    int r = select(0, (fd_set *)rd, (fd_set *)wr, (fd_set *)ex, &zero);
    if (r == SOCKET_ERROR) {
        /* Typically WSAENOTSOCK: the user closed a socket while it was still
         * registered (the context cannot own a duplicate of a socket).
         * Find out one by one. */
        for (size_t i = 0; i < sc->ns; i++) {
            if (!rec_unwatched(sc->srec[i])) {
                scan_one_socket(sc, i);
            }
        }
        return;
    }
    if (r == 0) {
        return;
    }
    mark_sockets(sc, rd, sc->rmap, nr, AIO_EV_READ);
    mark_sockets(sc, wr, sc->wmap, nw, AIO_EV_WRITE);
    /* Exceptional: the connect failed; report it to every handler. */
    size_t cur = 0;
    for (u_int i = 0; i < ex->fd_count; i++) {
        for (size_t step = 0; step < nw; step++) {
            size_t k = (cur + step) % nw;
            SockRec *rec = sc->srec[sc->xmap[k]];
            if (rec->s == ex->fd_array[i]) {
                sc->ev[sc->nn + sc->xmap[k]] |= rec->interest;
                cur = k + 1;
                break;
            }
        }
    }
}

/* Fills set->ready from the current state of every watch (and *kicked from
 * the wake-up event when with_kick). *starved: a socket with write interest
 * is not writable. Changes no event's state. Returns 0 or WAIT_BROKEN. */
static int scan(AioWaitSet *set, Scratch *sc, bool with_kick, bool *kicked, bool *starved)
{
    memset(sc->ev, 0, (sc->nn + sc->ns) * sizeof(*sc->ev));
    int err = with_kick ? scan_handles(sc, sc->wh, sc->nn + 1, 1, kicked)
                        : scan_handles(sc, sc->wh + 1, sc->nn, 0, kicked);
    if (err) {
        return err;
    }
    scan_sockets(sc);

    set->nready = 0;
    for (size_t i = 0; i < sc->nn; i++) {
        if (sc->ev[i]) {
            set->ready[set->nready].id = sc->nid[i];
            set->ready[set->nready].events = AIO_EV_READ;
            set->nready++;
        }
    }
    *starved = false;
    for (size_t i = 0; i < sc->ns; i++) {
        SockRec *rec = sc->srec[i];
        unsigned ev = sc->ev[sc->nn + i] & rec->interest;
        if ((rec->interest & AIO_EV_WRITE) && !(ev & AIO_EV_WRITE) && !rec_unwatched(rec)) {
            *starved = true;
        }
        if (ev) {
            /* Its event is (or will be) signalled for this: reset it
             * before the next sleep. */
            atomic_store_explicit(&rec->dirty, true, memory_order_relaxed);
            set->ready[set->nready].id = sc->sid[i];
            set->ready[set->nready].events = ev;
            set->nready++;
        }
    }
    return 0;
}
/* Before a sleep: reset the events that may be signalled for readiness the
 * scan that follows will see anyway. Reset *then* scan: a network event
 * after the reset signals the event again, one before it is seen by the
 * scan, so none falls between the two. (FD_READ, FD_ACCEPT: not re-posted
 * until recv/accept, but then the socket is still readable and the scan
 * says so. FD_WRITE: see WRITE_RECHECK_NS.) */
static void reset_dirty(Scratch *sc)
{
    for (size_t i = 0; i < sc->ns; i++) {
        SockRec *rec = sc->srec[i];
        if (atomic_exchange_explicit(&rec->dirty, false, memory_order_relaxed)) {
            WSAResetEvent(rec->ev);
        }
    }
}

static int w32_wait(AioBackend *be, AioWaitSet *set, int64_t timeout_ns, bool with_kick,
                    bool *kicked)
{
    *kicked = false;
    set->nready = 0;
    Scratch *cur = set->scratch;
    if (!cur || !cur->valid || cur->generation != set->generation) {
        int err = scratch_build(be, set);
        if (err) {
            return err;
        }
    }
    Scratch *sc = set->scratch;

    bool may_sleep = timeout_ns != 0;
    int64_t deadline = -1;
    if (timeout_ns > 0) {
        int64_t now = aio__clock_ns();
        deadline = timeout_ns > INT64_MAX - now ? -1 : now + timeout_ns;
    }
    for (;;) {
        if (may_sleep) {
            /* Only the sleeping (home) thread resets events; non-blocking
             * polls on other threads just look. */
            reset_dirty(sc);
        }
        bool starved;
        int err = scan(set, sc, with_kick, kicked, &starved);
        if (err) {
            return err;
        }
        if (set->nready > 0 || *kicked || !may_sleep) {
            return 0;
        }

        int64_t slice = -1;
        if (deadline >= 0) {
            slice = deadline - aio__clock_ns();
            if (slice <= 0) {
                return 0;
            }
        }
        if (starved && (slice < 0 || slice > WRITE_RECHECK_NS)) {
            slice = WRITE_RECHECK_NS;
        }
        /* Rounded up: the wait ends at or after the deadline as far as the
         * system timer allows. If it still ends early (timer granularity),
         * the loop sleeps again for the rest, at least 1 ms per round, so
         * an early return never becomes a busy loop. */
        DWORD ms = aio__win32_timeout_ms_ceil(slice);
        const HANDLE *h = with_kick ? sc->wh : sc->wh + 1;
        size_t n = sc->nn + sc->ns + (with_kick ? 1 : 0);
        if (n == 0 && ms == INFINITE) {
            return 0; /* nothing could end this sleep; not a core call pattern */
        }
        AioWaitResult res = {.fired = sc->fired};
        err = aio__waiters_wait(&be->waiters, h, n, ms, &res);
        if (err) {
            return err;
        }
        if (res.failed) {
            return WAIT_BROKEN;
        }
        size_t off = with_kick ? 1 : 0;
        for (size_t i = 0; i < res.nfired; i++) {
            size_t g = res.fired[i];
            if (g >= off + sc->nn) {
                atomic_store_explicit(&sc->srec[g - off - sc->nn]->dirty, true,
                                      memory_order_relaxed);
            }
        }
    }
}

const AioBackendOps aio__backend_win32 = {
    .name = "win32",
    .create = w32_create,
    .destroy = w32_destroy,
    .kick = w32_kick,
    .clear_kick = w32_clear_kick,
    .watch = w32_watch,
    .unwatch = w32_unwatch,
    .wait = w32_wait,
    .waitset_fini = w32_waitset_fini,
    .forked = NULL, /* nothing is shared with another process */
};
