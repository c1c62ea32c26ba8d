/* SPDX-License-Identifier: MIT */
/*
 * The "io_uring" backend (Linux 5.11+, liburing).
 *
 * One ring per context. The home thread's blocking waits submit and wait in
 * a single io_uring_enter(): the registrations made since the last wait
 * (POLL_ADD), the removals (POLL_REMOVE), the re-arming of every poll that
 * completed last time and of the wake-up request, and a nanosecond timeout
 * (IORING_ENTER_EXT_ARG). Registration costs no system call at all: watch()
 * and unwatch() only queue work for the next submission (the core notifies a
 * sleeping home thread after every change, so the submission is prompt).
 *
 * Level-triggered, as aio.h promises, by single-shot POLL_ADD re-armed after
 * each completion: a re-armed poll on a descriptor that is still ready
 * completes at once. A multishot poll would save preparing the re-arm SQE
 * (no system call either way, it rides on the next enter), but it reports
 * wake-ups, not states: a handler that leaves data unread would never hear
 * of it again, and a second poll(2) to recheck would cost a system call per
 * event. So: single-shot.
 *
 * The wake-up costs the waker one system call and the sleeper none beyond
 * its wait: on kernels with IORING_OP_FUTEX_WAIT (6.7+) the wake-up object is
 * a futex word that the ring waits on (kick: store 1 and FUTEX_WAKE;
 * clear_kick: store 0, and the next submission re-arms the wait, which
 * completes at once if the word was set again meanwhile); elsewhere an
 * eventfd read *by the ring* (IORING_OP_READ): its completion is the wake-up
 * and has already consumed the count, so there is no separate read(2).
 *
 * Only blocking waits (with_kick: the home thread, one at a time) touch the
 * ring's completion queue: a completion consumed by one thread is gone for
 * the others, so a foreign non-blocking poll reaping them could take the
 * home thread's wake-up (the 2018 hang) or an event its own snapshot drops.
 * Non-blocking waits use a zero-timeout poll(2) over their snapshot instead:
 * it consumes nothing and is level-triggered by nature.
 *
 * Completions carry a tag of the backend's own, one per watch() (never
 * reused; 0 is the wake-up), not the core's id: aio_enable_external()
 * watches the same id again, and a completion of the earlier poll (its
 * cancellation's -ECANCELED, say) must not pass for the later registration,
 * which it would re-arm twice (a poll leaked in the kernel) and report
 * ready in error. A completion whose tag is gone is dropped; re-arming
 * looks the tag up in the backend's own table.
 *
 * A removal cancels an armed poll at once, synchronously
 * (IORING_REGISTER_SYNC_CANCEL, from the removing thread): the poll holds a
 * reference to the file, and a POLL_REMOVE queued for the next submission
 * would keep the file open (a peer sees no EOF) until the home thread next
 * enters the ring, which a loop with nothing left to watch may never do.
 */
#include <errno.h>
#include <liburing.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "posix-internal.h"
#include "posix-test-hooks.h"

#if AIOPOLL_TEST_HOOKS
static _Atomic(AioUringSubmitHook *) submit_hook;
static void *_Atomic submit_hook_opaque;

void aio__set_test_uring_submit_hook(AioUringSubmitHook *hook, void *opaque)
{
    atomic_store(&submit_hook_opaque, opaque);
    atomic_store(&submit_hook, hook);
}

static void call_submit_hook(void)
{
    AioUringSubmitHook *h = atomic_load(&submit_hook);
    if (h) {
        h(atomic_load(&submit_hook_opaque));
    }
}
#else
#define call_submit_hook() ((void)0)
#endif

#define RING_ENTRIES 256
#define WAKE_UD 0 /* no watch has id 0 */
/* A POLL_REMOVE's own completion: ignored. Ids count up from 1 and never
 * get near this. */
#define REMOVE_UD UINT64_MAX

/* IORING_OP_FUTEX_WAIT and its flags, for liburing/kernel headers older
 * than the kernel we may run on (the probe decides). */
#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif
#ifndef FUTEX2_PRIVATE
#define FUTEX2_PRIVATE 128
#endif
#ifndef FUTEX_BITSET_MATCH_ANY
#define FUTEX_BITSET_MATCH_ANY 0xffffffff
#endif

/* One registration: w->backend_data, and keyed by tag in the backend's
 * table. */
typedef struct Reg {
    uint64_t tag; /* this watch()'s, in every SQE and CQE of its polls */
    AioSourceId id;
    int fd;
    short events;
    bool armed;   /* a POLL_ADD is in the kernel */
    bool queued;  /* on the to-arm list */
    struct Reg *next; /* hash chain */
} Reg;

struct AioBackend {
    struct io_uring ring;
    bool forked;

    /* The wake-up object. */
    bool use_futex;
    _Atomic uint32_t futex_word; /* 1: kicked (futex mode) */
    int efd;                     /* eventfd (eventfd mode) */
    uint64_t efd_buf;            /* the ring reads the count into it */
    bool wake_armed;             /* home thread only */
    atomic_bool embedded;        /* a host loop sleeps on ring_fd; read by the home
                                  * thread, cleared by embed_release (any thread) */

    /* Registrations: watch()/unwatch() (under the context's list lock) and
     * the waiting home thread meet here, under lock. */
    aio_mutex_t lock;
    Reg **table;
    size_t table_mask, nregs;
    uint64_t next_tag;
    uint64_t *to_arm; /* tags to POLL_ADD at the next submission */
    size_t nto_arm, to_arm_cap;
    uint64_t *to_remove; /* tags whose poll may be in the kernel */
    size_t nto_remove, to_remove_cap;
    /* to_remove holds a tag that a synchronous cancel did not find (its poll
     * prepared by the home thread and not yet submitted): the home thread
     * tries again right after its enter. Written under lock, read without
     * by the home thread after its wake-up (a stale false only leaves the
     * removal to the next submission's POLL_REMOVE). */
    atomic_bool retry_cancel;
    bool no_sync_cancel; /* the kernel lacks it (before 6.0): POLL_REMOVE only */
};

/* ---- the registration table ------------------------------------------------ */

static size_t slot(const AioBackend *be, uint64_t tag)
{
    return (size_t)((tag * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & be->table_mask;
}

static Reg *reg_find(AioBackend *be, uint64_t tag)
{
    for (Reg *r = be->table[slot(be, tag)]; r; r = r->next) {
        if (r->tag == tag) {
            return r;
        }
    }
    return NULL;
}

static int table_grow(AioBackend *be)
{
    size_t size = (be->table_mask + 1) * 2;
    Reg **t = aio__calloc(size, sizeof(*t));
    if (!t) {
        return -ENOMEM;
    }
    Reg **old = be->table;
    size_t old_size = be->table_mask + 1;
    be->table = t;
    be->table_mask = size - 1;
    for (size_t i = 0; i < old_size; i++) {
        while (old[i]) {
            Reg *r = old[i];
            old[i] = r->next;
            size_t j = slot(be, r->tag);
            r->next = t[j];
            t[j] = r;
        }
    }
    free(old);
    return 0;
}

static int tag_push(uint64_t **v, size_t *n, size_t *cap, uint64_t tag)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        uint64_t *p = aio__realloc(*v, c * sizeof(*p));
        if (!p) {
            return -ENOMEM;
        }
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = tag;
    return 0;
}

/* ---- create / destroy ----------------------------------------------------------- */

static bool probe_futex_wait(struct io_uring *ring)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    if (!p) {
        return false;
    }
    bool ok = io_uring_opcode_supported(p, IORING_OP_FUTEX_WAIT);
    io_uring_free_probe(p);
    return ok;
}

static bool force_eventfd(void)
{
#if AIOPOLL_TEST_HOOKS
    /* Test builds run the suite on the eventfd wake-up too. */
    const char *v = getenv("AIOPOLL_TEST_IO_URING_EVENTFD");
    return v && *v == '1';
#else
    return false;
#endif
}

static AioBackend *uring_create(void)
{
    AioBackend *be = aio__calloc(1, sizeof(*be));
    if (!be) {
        errno = ENOMEM;
        return NULL;
    }
    be->efd = -1;
    be->table = aio__calloc(64, sizeof(*be->table));
    if (!be->table) {
        free(be);
        errno = ENOMEM;
        return NULL;
    }
    be->table_mask = 63;
    /* Refused by the kernel (ENOSYS: too old or not built in; EPERM:
     * kernel.io_uring_disabled or a seccomp filter): the context asked for
     * us by name, so it fails with that error rather than run elsewhere. */
    int err = AIO_FAULT_CALL(AIO_FAULT_IO_URING_SETUP, -errno,
                             io_uring_queue_init(RING_ENTRIES, &be->ring, 0));
    if (err < 0) {
        free(be->table);
        free(be);
        errno = -err;
        return NULL;
    }
    /* One enter that submits and waits with a timeout, and no dropped
     * completions: without them the design above does not hold. */
    unsigned need = IORING_FEAT_EXT_ARG | IORING_FEAT_NODROP;
    if ((be->ring.features & need) != need) {
        io_uring_queue_exit(&be->ring);
        free(be->table);
        free(be);
        errno = ENOSYS;
        return NULL;
    }
    be->use_futex = probe_futex_wait(&be->ring) && !force_eventfd();
    if (!be->use_futex) {
        be->efd = AIO_FAULT_CALL(AIO_FAULT_EVENTFD, -1, eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
        if (be->efd < 0) {
            int e = errno;
            io_uring_queue_exit(&be->ring);
            free(be->table);
            free(be);
            errno = e;
            return NULL;
        }
    }
    atomic_init(&be->futex_word, 0);
    atomic_init(&be->retry_cancel, false);
    be->next_tag = 1;
    aio__mutex_init(&be->lock);
    return be;
}

static void uring_destroy(AioBackend *be)
{
    /* Tearing the ring down cancels whatever is still armed. In a forked
     * child this only unmaps and closes the child's copies. */
    io_uring_queue_exit(&be->ring);
    for (size_t i = 0; i <= be->table_mask; i++) {
        while (be->table[i]) {
            Reg *r = be->table[i];
            be->table[i] = r->next;
            free(r);
        }
    }
    free(be->table);
    free(be->to_arm);
    free(be->to_remove);
    if (be->efd >= 0) {
        close(be->efd);
    }
    aio__mutex_destroy(&be->lock);
    free(be);
}

static void uring_forked(AioBackend *be)
{
    /* The ring's queues are shared memory with the parent: never submit
     * to or reap from them again. */
    be->forked = true;
}

/* ---- the wake-up object ------------------------------------------------------- */

static void uring_kick(AioBackend *be)
{
    if (be->use_futex) {
        /* seq_cst store before the wake: the ring's FUTEX_WAIT compares the
         * word with 0 in the kernel; either it sees 1 and completes, or it
         * is queued on the futex and our wake finds it. */
        atomic_store(&be->futex_word, 1);
        (void)syscall(SYS_futex, &be->futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    } else {
        static const uint64_t one = 1;
        /* async-signal-safe: one write(); EAGAIN means already signalled. */
        (void)!write(be->efd, &one, sizeof(one));
    }
}

static void prep_wake(AioBackend *be);

static void uring_clear_kick(AioBackend *be)
{
    /* The ring's completion was the wake-up (and, with the eventfd, its read
     * as well): only the word needs resetting, and the request re-arming at
     * the next submission. A kick after this store re-sets the word, which
     * the re-armed FUTEX_WAIT then finds at once. */
    if (be->use_futex) {
        atomic_store(&be->futex_word, 0);
    }
    be->wake_armed = false;
    /* Relaxed: after the host is gone an extra submission only costs. */
    if (atomic_load_explicit(&be->embedded, memory_order_relaxed)) {
        /* A host loop may sleep on ring_fd without our wait() before it
         * (a nested blocking poll between aio_embed_prepare and the host's
         * sleep accepted this kick): the next kick must end in a completion
         * from now on, not from the next submission. Costs nothing extra per
         * round trip: prepare's embed_arm then finds nothing to submit. */
        prep_wake(be);
        (void)AIO_FAULT_CALL(AIO_FAULT_WAIT, -errno, io_uring_submit(&be->ring));
    }
}

/* ---- watch / unwatch ------------------------------------------------------------ */

static int uring_watch(AioBackend *be, AioWatch *w)
{
    Reg *r = aio__calloc(1, sizeof(*r));
    if (!r) {
        return -ENOMEM;
    }
    r->id = w->id;
    r->fd = aio__watch_fd(w);
    r->events = (short)((w->interest & AIO_EV_READ ? POLLIN : 0) |
                        (w->interest & AIO_EV_WRITE ? POLLOUT : 0));
    aio__mutex_lock(&be->lock);
    r->tag = be->next_tag++;
    int err = 0;
    if (be->nregs + 1 > (be->table_mask + 1) / 2) {
        err = table_grow(be);
    }
    if (!err) {
        err = tag_push(&be->to_arm, &be->nto_arm, &be->to_arm_cap, r->tag);
    }
    if (err) {
        aio__mutex_unlock(&be->lock);
        free(r);
        return err;
    }
    r->queued = true;
    size_t j = slot(be, r->tag);
    r->next = be->table[j];
    be->table[j] = r;
    be->nregs++;
    aio__mutex_unlock(&be->lock);
    /* watch() and unwatch() run under the context's list lock, never at
     * once, and wait() never reads it. */
    w->backend_data = r;
    return 0;
}

/* Cancels the poll of tag in the kernel now, dropping its reference to the
 * file; false when there was none to cancel (not submitted yet, completed
 * already) or the kernel cannot. Under be->lock. */
static bool cancel_now(AioBackend *be, uint64_t tag)
{
    if (be->forked || be->no_sync_cancel) {
        return false; /* a child must not touch the parent's polls */
    }
    struct io_uring_sync_cancel_reg reg = {.addr = tag, .timeout = {.tv_sec = -1, .tv_nsec = -1}};
    int r = io_uring_register_sync_cancel(&be->ring, &reg);
    if (r == -EINVAL || r == -EOPNOTSUPP || r == -ENOSYS) {
        be->no_sync_cancel = true;
    }
    return r >= 0;
}

static void uring_unwatch(AioBackend *be, AioWatch *w)
{
    Reg *r = w->backend_data;
    w->backend_data = NULL;
    aio__mutex_lock(&be->lock);
    Reg **pp = &be->table[slot(be, r->tag)];
    while (*pp != r) {
        pp = &(*pp)->next;
    }
    *pp = r->next;
    be->nregs--;
    /* An armed poll holds a reference to the file: cancel it now (its
     * -ECANCELED completion names a tag that is gone). When the cancel
     * finds nothing, the poll may be prepared and not yet submitted: the
     * home thread tries again after its enter, and failing that a
     * POLL_REMOVE goes with the next submission. If the list cannot grow,
     * the completion comes at the latest when the descriptor is ready. */
    if (r->armed && !cancel_now(be, r->tag) &&
        tag_push(&be->to_remove, &be->nto_remove, &be->to_remove_cap, r->tag) == 0) {
        atomic_store_explicit(&be->retry_cancel, true, memory_order_relaxed);
    }
    free(r);
    aio__mutex_unlock(&be->lock);
}

/* Home thread, after an enter that submitted what prep_pending prepared:
 * the removals whose synchronous cancel came too early. */
static void retry_cancels(AioBackend *be)
{
    aio__mutex_lock(&be->lock);
    atomic_store_explicit(&be->retry_cancel, false, memory_order_relaxed);
    size_t kept = 0;
    for (size_t i = 0; i < be->nto_remove; i++) {
        if (!cancel_now(be, be->to_remove[i])) {
            be->to_remove[kept++] = be->to_remove[i]; /* POLL_REMOVE next time */
        }
    }
    be->nto_remove = kept;
    aio__mutex_unlock(&be->lock);
}

/* ---- submission ------------------------------------------------------------------- */

static struct io_uring_sqe *get_sqe(AioBackend *be)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&be->ring);
    if (!sqe) {
        /* Full: push what we have (no wait) and take a fresh one. */
        (void)io_uring_submit(&be->ring);
        sqe = io_uring_get_sqe(&be->ring);
    }
    return sqe;
}

static void prep_wake(AioBackend *be)
{
    struct io_uring_sqe *sqe = get_sqe(be);
    if (!sqe) {
        return; /* retried at the next submission (wake_armed stays false) */
    }
    if (be->use_futex) {
        io_uring_prep_rw(IORING_OP_FUTEX_WAIT, sqe, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
                         (const void *)&be->futex_word, 0, 0 /* expected value */);
        sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
    } else {
        io_uring_prep_read(sqe, be->efd, &be->efd_buf, sizeof(be->efd_buf), 0);
    }
    io_uring_sqe_set_data64(sqe, WAKE_UD);
    be->wake_armed = true;
}

/* Queues everything owed to the kernel. Home thread, blocking waits only. */
static void prep_pending(AioBackend *be, bool with_kick)
{
    if (with_kick && !be->wake_armed) {
        prep_wake(be);
    }
    aio__mutex_lock(&be->lock);
    for (size_t i = 0; i < be->nto_remove; i++) {
        struct io_uring_sqe *sqe = get_sqe(be);
        if (!sqe) {
            break;
        }
        io_uring_prep_poll_remove(sqe, be->to_remove[i]);
        io_uring_sqe_set_data64(sqe, REMOVE_UD);
    }
    be->nto_remove = 0;
    atomic_store_explicit(&be->retry_cancel, false, memory_order_relaxed);
    size_t kept = 0;
    for (size_t i = 0; i < be->nto_arm; i++) {
        Reg *r = reg_find(be, be->to_arm[i]);
        if (!r) {
            continue; /* unwatched since it was queued */
        }
        struct io_uring_sqe *sqe = get_sqe(be);
        if (!sqe) {
            be->to_arm[kept++] = r->tag; /* next time */
            continue;
        }
        io_uring_prep_poll_add(sqe, r->fd, (unsigned)r->events);
        io_uring_sqe_set_data64(sqe, r->tag);
        r->armed = true;
        r->queued = false;
    }
    be->nto_arm = kept;
    aio__mutex_unlock(&be->lock);
}

static int timeout_wait(AioBackend *be, int64_t timeout_ns)
{
    struct io_uring_cqe *cqe = NULL;
    int r;
    if (timeout_ns < 0) {
        r = AIO_FAULT_CALL(AIO_FAULT_WAIT, -errno, io_uring_submit_and_wait(&be->ring, 1));
    } else if (timeout_ns == 0) {
        r = AIO_FAULT_CALL(AIO_FAULT_WAIT, -errno, io_uring_submit(&be->ring));
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000,
                                       .tv_nsec = timeout_ns % 1000000000};
        r = AIO_FAULT_CALL(AIO_FAULT_WAIT, -errno,
                           io_uring_submit_and_wait_timeout(&be->ring, &cqe, 1, &ts, NULL));
    }
    if (r == -ETIME || r == -EINTR || r == -EAGAIN || r == -EBUSY) {
        return 0; /* timed out, interrupted, or the CQ is backed up: reap */
    }
    return r < 0 ? r : 0;
}

/* Takes the completions that fit into set->ready. */
static void reap(AioBackend *be, AioWaitSet *set, bool *kicked)
{
    struct io_uring_cqe *cqes[64];
    for (;;) {
        unsigned n = io_uring_peek_batch_cqe(&be->ring, cqes, 64);
        if (n == 0) {
            return;
        }
        unsigned used = 0;
        aio__mutex_lock(&be->lock);
        for (; used < n; used++) {
            struct io_uring_cqe *c = cqes[used];
            uint64_t ud = io_uring_cqe_get_data64(c);
            if (ud == WAKE_UD) {
                /* Futex: 0 (woken) or -EAGAIN (the word was 1 already).
                 * Eventfd: the count read. Either way the kick. */
                *kicked = true;
                continue;
            }
            if (ud == REMOVE_UD) {
                continue;
            }
            Reg *r = reg_find(be, ud);
            if (!r) {
                continue; /* its watch was removed */
            }
            if (set->nready == set->n) {
                break; /* leave it for the next wait */
            }
            r->armed = false;
            /* Level-triggered: arm again with the next submission; if the
             * descriptor is still ready, that poll completes at once. */
            if (!r->queued && tag_push(&be->to_arm, &be->nto_arm, &be->to_arm_cap, r->tag) == 0) {
                r->queued = true;
            }
            int res = c->res;
            unsigned ev = 0;
            if (res < 0) {
                ev = AIO_EV_READ | AIO_EV_WRITE; /* as POLLERR */
            } else {
                if (res & (POLLIN | POLLHUP | POLLERR)) {
                    ev |= AIO_EV_READ;
                }
                if (res & (POLLOUT | POLLERR)) {
                    ev |= AIO_EV_WRITE;
                }
            }
            set->ready[set->nready].id = r->id;
            set->ready[set->nready].events = ev;
            set->nready++;
        }
        aio__mutex_unlock(&be->lock);
        io_uring_cq_advance(&be->ring, used);
        if (used < n) {
            return;
        }
    }
}

/* Non-blocking waits from any thread: look, consume nothing. */
static int scan_nonblocking(AioWaitSet *set)
{
    struct pollfd stack[64];
    struct pollfd *pfd = set->n <= 64 ? stack : aio__malloc(set->n * sizeof(*pfd));
    if (!pfd) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < set->n; i++) {
        pfd[i].fd = aio__watch_fd(set->watches[i]);
        pfd[i].events = (short)((set->watches[i]->interest & AIO_EV_READ ? POLLIN : 0) |
                                (set->watches[i]->interest & AIO_EV_WRITE ? POLLOUT : 0));
        pfd[i].revents = 0;
    }
    int r = AIO_FAULT_CALL(AIO_FAULT_WAIT, -1, poll(pfd, (nfds_t)set->n, 0));
    int err = r < 0 && errno != EINTR && errno != EAGAIN ? -errno : 0;
    for (size_t i = 0; r > 0 && i < set->n; i++) {
        short re = pfd[i].revents;
        unsigned ev = (re & (POLLIN | POLLHUP | POLLERR) ? AIO_EV_READ : 0u) |
                      (re & (POLLOUT | POLLERR) ? AIO_EV_WRITE : 0u);
        if (ev) {
            set->ready[set->nready].id = set->watches[i]->id;
            set->ready[set->nready].events = ev;
            set->nready++;
        }
    }
    if (pfd != stack) {
        free(pfd);
    }
    return err;
}

static int uring_wait(AioBackend *be, AioWaitSet *set, int64_t timeout_ns, bool with_kick,
                      bool *kicked)
{
    *kicked = false;
    set->nready = 0;
    if (!with_kick) {
        return set->n ? scan_nonblocking(set) : 0;
    }
    if (be->forked) {
        return -ECHILD; /* the core never gets here; belt and braces */
    }
    prep_pending(be, true);
    call_submit_hook();
    /* Completions already queued (from an earlier wait that had no room,
     * or the kick) must not wait out the timeout. */
    if (io_uring_cq_ready(&be->ring)) {
        timeout_ns = 0;
    }
    int err = timeout_wait(be, timeout_ns);
    if (atomic_load_explicit(&be->retry_cancel, memory_order_relaxed)) {
        retry_cancels(be);
    }
    reap(be, set, kicked);
    return err;
}

/* ---- embedding ----------------------------------------------------------------------
 * The ring's descriptor is the aggregate: poll(2) on it reports it readable
 * exactly while a completion is waiting, and every wake-up source of a wait()
 * ends as a completion (a descriptor's POLL_ADD, the FUTEX_WAIT or eventfd
 * READ on the wake-up object). What a host sleeping on it cannot do is the
 * submission our own wait() makes first, so embed_arm makes it. */

static int uring_embed_aggregate(AioBackend *be, aio_handle_t *out)
{
    atomic_store_explicit(&be->embedded, true, memory_order_relaxed);
    *out = be->ring.ring_fd;
    return 0;
}

/* No host sleeps on ring_fd any more: the wake-up request goes back to being
 * submitted by the next wait(), not by every clear_kick. */
static void uring_embed_release(AioBackend *be)
{
    atomic_store_explicit(&be->embedded, false, memory_order_relaxed);
}

static bool uring_embed_busy(AioBackend *be)
{
    (void)be;
    /* Nothing a wait() reports bypasses the completion queue. */
    return false;
}

static int uring_embed_arm(AioBackend *be)
{
    if (be->forked) {
        return -ECHILD;
    }
    /* The wake-up request too: after a check accepted a kick the next one
     * must end in a completion, or aio_notify() during the host's sleep
     * would signal a futex nobody waits on and the ring fd stay silent. */
    prep_pending(be, true);
    if (io_uring_sq_ready(&be->ring) == 0) {
        return 0; /* the common round trip: everything is in the kernel */
    }
    int r = AIO_FAULT_CALL(AIO_FAULT_WAIT, -errno, io_uring_submit(&be->ring));
    /* -EBUSY/-EAGAIN: the completion queue is backed up, so the ring fd is
     * readable anyway and the host comes back to reap; the SQEs stay queued
     * for the next enter. */
    if (r == -EBUSY || r == -EAGAIN || r == -EINTR) {
        return 0;
    }
    return r < 0 ? r : 0;
}

static void uring_waitset_fini(AioBackend *be, AioWaitSet *set)
{
    (void)be;
    (void)set; /* no per-set state */
}

const AioBackendOps aio__backend_io_uring = {
    .name = "io_uring",
    .create = uring_create,
    .destroy = uring_destroy,
    .kick = uring_kick,
    .clear_kick = uring_clear_kick,
    .watch = uring_watch,
    .unwatch = uring_unwatch,
    .wait = uring_wait,
    .waitset_fini = uring_waitset_fini,
    .forked = uring_forked,
    .embed_release = uring_embed_release,
    .embed_aggregate = uring_embed_aggregate,
    .embed_busy = uring_embed_busy,
    .embed_arm = uring_embed_arm,
};
