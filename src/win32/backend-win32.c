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
#include "win32-test-hooks.h"
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

/* One watched registration in the backend's registry (see "Embedding"
 * below). dup and rec are the embedding's own references, taken while the
 * watcher runs; after unwatch() the entry is "gone" and only the watcher
 * (or its stop) releases them, once no wait of its own can name them. */
typedef struct RegEntry {
    AioSourceId id;
    AioWatch *w;   /* while watched; the watch outlives unwatch() only for the core */
    HANDLE dup;    /* a notifier: our DuplicateHandle of its (the context's) handle */
    SockRec *rec;  /* a socket: our reference on its record */
    bool gone;
} RegEntry;

typedef struct Embed Embed;

struct AioBackend {
    HANDLE wake; /* manual-reset */
    /* Guards w->backend_data against unwatch() while a poller takes a
     * reference to the record. */
    SRWLOCK rec_lock;
    AioWaiterPool waiters;
    /* Every watched registration, kept whether or not a host loop is
     * attached: embed_aggregate() runs after watches exist and must know
     * them all, and backends never read the core's source lists. */
    SRWLOCK reg_lock;
    RegEntry *reg;
    size_t nreg, reg_cap;
    /* Set by the first embed_aggregate() (under the list lock, on the home
     * thread) and kept until destroy(), so that a wait of the home thread
     * may always look at it; its watcher thread runs only while attached
     * (em->running). */
    Embed *em;
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

/* The embedding's registry (defined with the watcher below). */
static int reg_reserve(AioBackend *be);
static int reg_add(AioBackend *be, AioWatch *w);
static void reg_remove(AioBackend *be, const AioWatch *w);
static bool socket_watched_elsewhere(AioBackend *be, const AioWatch *w);

static int w32_watch(AioBackend *be, AioWatch *w)
{
    /* Room first: after the socket's association nothing may fail. */
    int err = reg_reserve(be);
    if (err) {
        return err;
    }
    if (w->obj.is_event) {
        /* Waited on through its handle; only the registry learns of it. */
        return reg_add(be, w);
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
        err = aio__win32_wsa_errno(WSAGetLastError());
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
    return reg_add(be, w); /* cannot fail for a socket: room was reserved */
}

static void w32_unwatch(AioBackend *be, AioWatch *w)
{
    reg_remove(be, w);
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
     * itself). Not when a replacement watched the socket again first
     * (backend.h): its WSAEventSelect replaced ours, and cancelling would
     * silence the new registration. */
    if (!socket_watched_elsewhere(be, w)) {
        WSAEventSelect(rec->s, NULL, 0);
    }
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
    InitializeSRWLock(&be->reg_lock);
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

static void embed_destroy(AioBackend *be);

static void w32_destroy(AioBackend *be)
{
    embed_destroy(be);
    free(be->reg);
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
static bool reset_dirty(Scratch *sc)
{
    bool any = false;
    for (size_t i = 0; i < sc->ns; i++) {
        SockRec *rec = sc->srec[i];
        if (atomic_exchange_explicit(&rec->dirty, false, memory_order_relaxed)) {
            WSAResetEvent(rec->ev);
            any = true;
        }
    }
    return any;
}

static void embed_rescan(AioBackend *be);

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
            if (reset_dirty(sc)) {
                /* A nested blocking poll under an armed embedding: the
                 * watcher may be asleep on an event just reset for
                 * readiness that is still there (a handler that did not
                 * drain its socket). The scan below looks again for us;
                 * the watcher must too, after this reset. */
                embed_rescan(be);
            }
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

/* ---- Embedding: one HANDLE for a host loop -------------------------------
 *
 * A host (a Win32 message loop) sleeps on one manual-reset "aggregate" event.
 * A watcher thread of ours sleeps, while armed, on everything wait() would:
 * the wake-up event, every notifier and every socket event (through its own
 * AioWaiterPool past 63), and sets the aggregate and disarms when one fires.
 * The core's snapshots live only while a poll walks them, so the watcher
 * waits on the registry's own references instead (RegEntry), which only the
 * watcher releases, between two of its waits: no handle it waits on is
 * closed under it. Every object waited on is level (manual-reset events;
 * sockets re-scanned by select() after their event was reset), so a watcher
 * that looks late still sees what happened before it looked. Only the home
 * thread resets socket events (embed_arm, its own blocking waits), as
 * without embedding; the watcher only marks them dirty. The argument is in
 * docs/wakeup-protocol.md, "Embedded contexts".
 */

struct Embed {
    AioBackend *be;
    HANDLE aggregate; /* manual-reset: what the host waits on */
    HANDLE poke;      /* auto-reset: armed, registry changed, rescan, quit */
    HANDLE thread;
    /* Armed while arm_seq != fired_seq. A counter, not a flag: a watcher
     * that fires for an arming must not disarm a later one whose reset of
     * the aggregate came after its SetEvent (the host would sleep on a reset
     * aggregate with nobody watching). */
    atomic_uint arm_seq;   /* home thread */
    atomic_uint fired_seq; /* watcher */
    atomic_bool quit;
    /* The watcher thread exists and the registry's entries hold its
     * references (list lock; set by watcher_start, cleared by
     * watcher_stop). */
    bool running;
    /* Not the backend's pool: a nested blocking poll on the home thread
     * takes that one for its own sleep while the watcher sleeps. */
    AioWaiterPool pool;
    /* The watcher's: wh[0 .. nn) the notifier duplicates, then ns socket
     * events, the wake-up event and the poke. The controls come last
     * because a wait for any reports, and acquires, only the lowest
     * signalled object: a poke or kick never hides which registration fired,
     * nor would it mask a handle closed under the watcher (its value reused
     * by an auto-reset event, whose signal the wait would then consume:
     * embed_win32::notifier_removed_under_the_watcher_keeps_its_handle).
     * srec is borrowed from the registry. */
    Scratch *sc;
};

#if AIOPOLL_TEST_HOOKS
static _Atomic(AioWin32WatcherHook *) watcher_hook;
static void *_Atomic watcher_hook_opaque;

void aio__win32_set_watcher_hook(AioWin32WatcherHook *hook, void *opaque)
{
    atomic_store(&watcher_hook_opaque, opaque);
    atomic_store(&watcher_hook, hook);
}

static void call_watcher_hook(void)
{
    AioWin32WatcherHook *h = atomic_load(&watcher_hook);
    if (h) {
        h(atomic_load(&watcher_hook_opaque));
    }
}
#else
static void call_watcher_hook(void)
{
}
#endif

static int dup_for_watcher(HANDLE h, HANDLE *out)
{
    if (!AIO_FAULT_CALL(AIO_FAULT_DUPLICATE_HANDLE, FALSE,
                        DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), out,
                                        SYNCHRONIZE, FALSE, 0))) {
        return GetLastError() == ERROR_INVALID_HANDLE ? -EBADF : -ENOMEM;
    }
    return 0;
}

/* The embedding's references for one watched entry. List lock held. */
static int entry_take(RegEntry *e)
{
    if (e->w->obj.is_event) {
        return dup_for_watcher(e->w->obj.handle, &e->dup);
    }
    /* Under the list lock, as every watch()/unwatch(): backend_data is
     * stable here. */
    e->rec = e->w->backend_data;
    atomic_fetch_add(&e->rec->refs, 1);
    return 0;
}

static void entry_release(RegEntry *e)
{
    if (e->dup) {
        CloseHandle(e->dup);
        e->dup = NULL;
    }
    if (e->rec) {
        rec_unref(e->rec);
        e->rec = NULL;
    }
}

static int reg_reserve(AioBackend *be)
{
    /* Under the lock: the watcher compacts the array (nreg) under it. */
    AcquireSRWLockExclusive(&be->reg_lock);
    int err = 0;
    if (be->nreg == be->reg_cap) {
        size_t cap = be->reg_cap ? be->reg_cap * 2 : 16;
        RegEntry *r = aio__realloc(be->reg, cap * sizeof(*r));
        if (r) {
            be->reg = r;
            be->reg_cap = cap;
        } else {
            err = -ENOMEM;
        }
    }
    ReleaseSRWLockExclusive(&be->reg_lock);
    return err;
}

static int reg_add(AioBackend *be, AioWatch *w)
{
    RegEntry e = {.id = w->id, .w = w};
    bool watching = be->em && be->em->running;
    if (watching) {
        int err = entry_take(&e);
        if (err) {
            return err; /* only a notifier's duplicate can fail */
        }
    }
    AcquireSRWLockExclusive(&be->reg_lock);
    be->reg[be->nreg++] = e;
    ReleaseSRWLockExclusive(&be->reg_lock);
    if (watching) {
        SetEvent(be->em->poke); /* wait on it from now on */
    }
    return 0;
}

static void reg_remove(AioBackend *be, const AioWatch *w)
{
    bool watching = be->em && be->em->running;
    AcquireSRWLockExclusive(&be->reg_lock);
    for (size_t i = 0; i < be->nreg; i++) {
        RegEntry *e = &be->reg[i];
        if (e->gone || e->id != w->id) {
            continue;
        }
        if (watching) {
            /* The watcher may be asleep on e->dup / e->rec->ev right now:
             * it releases them itself once it no longer waits on them
             * (closing the duplicate here would let Windows hand its value
             * to the next object created, which the watcher would then wait
             * on, and consume, in our name). */
            e->gone = true;
            e->w = NULL;
        } else {
            *e = be->reg[--be->nreg]; /* holds nothing */
        }
        break;
    }
    ReleaseSRWLockExclusive(&be->reg_lock);
    if (watching) {
        SetEvent(be->em->poke); /* so that it lets go soon */
    }
}

/* Whether another registration than w watches w's socket: the moment of a
 * replacement, whose new watch() comes before the old unwatch() (the
 * registry holds watched registrations only, and the core's watches outlive
 * their unwatch()). */
static bool socket_watched_elsewhere(AioBackend *be, const AioWatch *w)
{
    bool found = false;
    AcquireSRWLockShared(&be->reg_lock);
    for (size_t i = 0; i < be->nreg && !found; i++) {
        const RegEntry *e = &be->reg[i];
        found = !e->gone && e->w && e->w != w && !e->w->obj.is_event &&
                e->w->obj.fd == w->obj.fd;
    }
    ReleaseSRWLockShared(&be->reg_lock);
    return found;
}

/* Watcher, between two waits: releases the gone entries (no wait of ours
 * names them now) and lays out sc for the next wait. */
static int watcher_build(Embed *em)
{
    AioBackend *be = em->be;
    Scratch *sc = em->sc;
    AcquireSRWLockExclusive(&be->reg_lock);
    size_t keep = 0;
    for (size_t i = 0; i < be->nreg; i++) {
        if (be->reg[i].gone) {
            entry_release(&be->reg[i]);
        } else {
            be->reg[keep++] = be->reg[i];
        }
    }
    be->nreg = keep;
    sc->nn = sc->ns = 0;
    /* One more than needed: scratch_reserve sizes wh for cap + 1 handles,
     * we need two controls. */
    int err = scratch_reserve(sc, be->nreg + 1);
    if (err == 0) {
        for (size_t i = 0; i < be->nreg; i++) {
            if (be->reg[i].dup) {
                sc->wh[sc->nn++] = be->reg[i].dup;
            } else {
                sc->srec[sc->ns++] = be->reg[i].rec;
            }
        }
        for (size_t i = 0; i < sc->ns; i++) {
            sc->wh[sc->nn + i] = sc->srec[i]->ev;
        }
        sc->wh[sc->nn + sc->ns] = be->wake;
        sc->wh[sc->nn + sc->ns + 1] = em->poke;
    }
    ReleaseSRWLockExclusive(&be->reg_lock);
    return err;
}

static bool watcher_armed(Embed *em)
{
    return atomic_load(&em->arm_seq) != atomic_load(&em->fired_seq);
}

/* Shows the host what this arming (seq) found. Set, then disarm: the
 * aggregate is never left reset with the watcher disarmed for seq. */
static void watcher_fire(Embed *em, unsigned seq)
{
    SetEvent(em->aggregate);
    atomic_store(&em->fired_seq, seq);
}

/* One armed round: false when it found something (and fired). */
static bool watcher_round(Embed *em, unsigned seq)
{
    Scratch *sc = em->sc;
    memset(sc->ev, 0, (sc->nn + sc->ns) * sizeof(*sc->ev));
    /* After the home thread's reset of the dirty events (embed_arm, or the
     * nested poll that poked us): a network event since then signals its
     * event again, one before it shows here. */
    scan_sockets(sc);
    bool ready = false, starved = false;
    for (size_t i = 0; i < sc->ns; i++) {
        SockRec *rec = sc->srec[i];
        unsigned ev = sc->ev[sc->nn + i] & rec->interest;
        if (ev) {
            /* Its event is (or will be) signalled for this: the next arm
             * resets it. */
            atomic_store_explicit(&rec->dirty, true, memory_order_relaxed);
            ready = true;
        } else if ((rec->interest & AIO_EV_WRITE) && !rec_unwatched(rec)) {
            starved = true;
        }
    }
    if (ready) {
        watcher_fire(em, seq);
        return false;
    }
    call_watcher_hook();
    DWORD ms = starved ? aio__win32_timeout_ms_ceil(WRITE_RECHECK_NS) : INFINITE;
    AioWaitResult res = {.fired = sc->fired};
    size_t poke = sc->nn + sc->ns + 1;
    int err = aio__waiters_wait(&em->pool, sc->wh, poke + 1, ms, &res);
    if (err || res.failed) {
        /* No helper thread, or a handle of ours closed from outside: the
         * host's check does a wait() that reports it. */
        watcher_fire(em, seq);
        return false;
    }
    bool hit = false;
    for (size_t i = 0; i < res.nfired; i++) {
        size_t g = res.fired[i];
        if (g == poke) {
            continue; /* rebuild and rescan */
        }
        hit = true;
        if (g >= sc->nn && g < sc->nn + sc->ns) {
            atomic_store_explicit(&sc->srec[g - sc->nn]->dirty, true, memory_order_relaxed);
        }
    }
    if (hit) {
        watcher_fire(em, seq);
        return false;
    }
    return true;
}

static DWORD WINAPI watcher_main(LPVOID arg)
{
    Embed *em = arg;
    while (!atomic_load(&em->quit)) {
        int err = watcher_build(em);
        unsigned seq = atomic_load(&em->arm_seq);
        if (seq == atomic_load(&em->fired_seq)) {
            WaitForSingleObject(em->poke, INFINITE);
        } else if (err) {
            watcher_fire(em, seq); /* the host's check finds out */
        } else {
            watcher_round(em, seq);
        }
    }
    return 0;
}

/* Home thread, in a sleeping wait() that just reset socket events. */
static void embed_rescan(AioBackend *be)
{
    if (be->em && watcher_armed(be->em)) {
        SetEvent(be->em->poke);
    }
}

static void embed_free(Embed *em)
{
    if (em->sc) {
        em->sc->ns = 0; /* its records are the registry's */
        scratch_free(em->sc);
    }
    aio__waiters_destroy(&em->pool);
    if (em->aggregate) {
        CloseHandle(em->aggregate);
    }
    if (em->poke) {
        CloseHandle(em->poke);
    }
    free(em);
}

/* Takes the watcher's references to every watch and starts it. List lock
 * held (no watch comes or goes); nothing changes on failure. */
static int watcher_start(AioBackend *be, Embed *em)
{
    int err = 0;
    size_t taken = 0;
    for (; taken < be->nreg; taken++) {
        err = entry_take(&be->reg[taken]);
        if (err) {
            break;
        }
    }
    if (err == 0) {
        atomic_store(&em->quit, false);
        em->thread = AIO_FAULT_CALL(AIO_FAULT_THREAD, NULL,
                                    CreateThread(NULL, 64 * 1024, watcher_main, em,
                                                 STACK_SIZE_PARAM_IS_A_RESERVATION, NULL));
        if (!em->thread) {
            err = GetLastError() == ERROR_NOT_ENOUGH_MEMORY ? -ENOMEM : -EAGAIN;
        }
    }
    if (err) {
        while (taken-- > 0) {
            entry_release(&be->reg[taken]);
        }
        return err;
    }
    em->running = true;
    return 0;
}

/* Stops the watcher and its helper threads and gives back every reference
 * it held; the entries of watches still registered stay, without them.
 * List lock held, so no watch()/unwatch() runs meanwhile; a wait of the
 * home thread may still look at em (embed_rescan), which stays. */
static void watcher_stop(AioBackend *be, Embed *em)
{
    if (!em->running) {
        return;
    }
    atomic_store(&em->quit, true);
    SetEvent(em->poke);
    WaitForSingleObject(em->thread, INFINITE);
    CloseHandle(em->thread);
    em->thread = NULL;
    aio__waiters_stop_helpers(&em->pool);
    /* No wait of the watcher names the entries any more. */
    AcquireSRWLockExclusive(&be->reg_lock);
    size_t keep = 0;
    for (size_t i = 0; i < be->nreg; i++) {
        entry_release(&be->reg[i]);
        if (!be->reg[i].gone) {
            be->reg[keep++] = be->reg[i];
        }
    }
    be->nreg = keep;
    ReleaseSRWLockExclusive(&be->reg_lock);
    /* Disarmed: embed_rescan() pokes nobody, and the next start waits for
     * an arming of its own. */
    atomic_store(&em->fired_seq, atomic_load(&em->arm_seq));
    em->running = false;
}

/* The embedding's record, made by the first attach: NULL without memory or
 * an event. */
static Embed *embed_new(AioBackend *be)
{
    Embed *em = aio__calloc(1, sizeof(*em));
    if (!em) {
        return NULL;
    }
    em->be = be;
    atomic_init(&em->arm_seq, 0);
    atomic_init(&em->fired_seq, 0);
    atomic_init(&em->quit, false);
    em->aggregate =
        AIO_FAULT_CALL(AIO_FAULT_CREATE_EVENT, NULL, CreateEventW(NULL, TRUE, FALSE, NULL));
    em->poke = AIO_FAULT_CALL(AIO_FAULT_CREATE_EVENT, NULL, CreateEventW(NULL, FALSE, FALSE, NULL));
    em->sc = aio__calloc(1, sizeof(*em->sc));
    int err = aio__waiters_init(&em->pool);
    if (!em->aggregate || !em->poke || !em->sc || err) {
        embed_free(em);
        return NULL;
    }
    return em;
}

static int w32_embed_aggregate(AioBackend *be, aio_handle_t *out)
{
    Embed *em = be->em ? be->em : embed_new(be);
    if (!em) {
        return -ENOMEM;
    }
    int err = watcher_start(be, em);
    if (err) {
        if (em != be->em) {
            embed_free(em); /* attach fails and changes nothing */
        }
        return err;
    }
    be->em = em; /* re-attached: the same aggregate as before */
    *out = em->aggregate;
    return 0;
}

static int w32_embed_arm(AioBackend *be)
{
    Embed *em = be->em;
    if (!em) {
        return -EINVAL;
    }
    /* Reset before arming: whatever set it was already seen by the host or
     * is level and will be found again by the armed watcher. */
    ResetEvent(em->aggregate);
    /* Here, on the home thread, not in the watcher: a blocking wait() of
     * the home thread relies on nobody else resetting the events it sleeps
     * on; its own resets are followed by a scan of its own (and a poke). */
    AcquireSRWLockShared(&be->reg_lock);
    for (size_t i = 0; i < be->nreg; i++) {
        SockRec *rec = be->reg[i].rec;
        if (rec && !be->reg[i].gone &&
            atomic_exchange_explicit(&rec->dirty, false, memory_order_relaxed)) {
            WSAResetEvent(rec->ev);
        }
    }
    ReleaseSRWLockShared(&be->reg_lock);
    /* SetEvent is a full barrier: the watcher's scan comes after the resets. */
    atomic_fetch_add(&em->arm_seq, 1);
    SetEvent(em->poke);
    return 0;
}

/* The last detach: the watcher goes, with its threads and references. */
static void w32_embed_release(AioBackend *be)
{
    if (be->em) {
        watcher_stop(be, be->em);
    }
}

static void embed_destroy(AioBackend *be)
{
    Embed *em = be->em;
    if (!em) {
        return;
    }
    /* Every watch was unwatched: the stop releases every entry. */
    watcher_stop(be, em);
    be->nreg = 0;
    be->em = NULL;
    embed_free(em);
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
    .embed_aggregate = w32_embed_aggregate,
    .embed_arm = w32_embed_arm,
    .embed_release = w32_embed_release,
};
