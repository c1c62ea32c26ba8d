/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "bench-pairs.h"

#include <aiopoll/aio.h>
#include <event2/event.h>
#include <event2/thread.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench-util.h"

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void xpipe(int fds[2])
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        die("pipe2");
    }
}

static void xwrite1(int fd)
{
    char c = 1;
    if (write(fd, &c, 1) != 1) {
        die("write");
    }
}

static void drain1(int fd)
{
    char c;
    (void)!read(fd, &c, 1);
}

/* ---- idle descriptors ------------------------------------------------------ */

int bp_idle_open(bp_idle *idle, size_t n)
{
    memset(idle, 0, sizeof(*idle));
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    /* aiopoll holds a private duplicate of every registered descriptor
     * (docs/design.md, "Owned objects"), so n registrations cost n more
     * descriptors on top of the pipes. Whole pipes (read ends registered)
     * when the limit allows 3n, else both ends of n/2 pipes (a write end
     * polled for input is just as idle), else as many as fit (n shrinks:
     * callers label the scenario with idle->n). */
    rlim_t slack = 512;
    rlim_t need = (rlim_t)(3 * n) + slack;
    if (rl.rlim_cur < need && rl.rlim_max >= need) {
        rl.rlim_cur = need;
        setrlimit(RLIMIT_NOFILE, &rl);
    } else if (rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        idle->both_ends = true;
        if ((rlim_t)(2 * n) + slack > rl.rlim_cur) {
            n = rl.rlim_cur > 2 * slack ? (size_t)((rl.rlim_cur - slack) / 2) & ~(size_t)1 : 0;
        }
    }
    idle->fds = calloc(n ? n : 1, sizeof(int));
    idle->all = calloc(2 * n + 2, sizeof(int));
    if (!idle->fds || !idle->all) {
        return -ENOMEM;
    }
    while (idle->n < n) {
        int p[2];
        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
            return -errno;
        }
        idle->all[idle->nall++] = p[0];
        idle->all[idle->nall++] = p[1];
        idle->fds[idle->n++] = p[0];
        if (idle->both_ends && idle->n < n) {
            idle->fds[idle->n++] = p[1];
        }
    }
    return 0;
}

void bp_idle_close(bp_idle *idle)
{
    for (size_t i = 0; i < idle->nall; i++) {
        close(idle->all[i]);
    }
    free(idle->fds);
    free(idle->all);
    memset(idle, 0, sizeof(*idle));
}

/* ---- CPU placement ------------------------------------------------------------ */

int bp_cpu_b = -1;

void bp_pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu < 0) {
        for (int i = 0; i < CPU_SETSIZE && i < sysconf(_SC_NPROCESSORS_ONLN); i++) {
            CPU_SET(i, &set);
        }
    } else {
        CPU_SET(cpu % sysconf(_SC_NPROCESSORS_ONLN), &set);
    }
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* ---- the pair ---------------------------------------------------------------- */

typedef enum kind { K_AIOPOLL, K_LIBEVENT, K_FLOOR, K_SPIN, K_EXT } kind;

struct bp_pair {
    kind kind;
    bp_wake wake;
    pthread_t th;
    bool running;
    atomic_bool stop;
    atomic_int done;
    int pa[2], pb[2]; /* BP_WAKE_FD: A reads pa[0], B reads pb[0] */
    char desc[64];

    /* aiopoll */
    AioContext *a, *b;
    AioBH *bha, *bhb;

    /* libevent */
    struct event_base *la, *lb;
    struct event *eva, *evb;
    struct event **idle_ev;
    size_t nidle_ev;

    /* floors */
    int ea, eb;   /* eventfds */
    int epa, epb; /* epoll sets */
    bool use_ppoll;
    struct pollfd *pfds; /* side B, ppoll floor */
    size_t npfds;

    /* spin */
    atomic_int flag;

    /* side B's thread, for the counters */
    atomic_int tid_b;
    void *(*fn_b)(void *);

    /* K_EXT */
    const bp_ext_ops *ext;
    void *impl;
};

/* Records side B's thread id before it runs: the counters of the round
 * trip scenarios are opened on it from side A. */
static void *b_trampoline(void *op)
{
    bp_pair *p = op;
    atomic_store(&p->tid_b, bu_gettid());
    return p->fn_b(p);
}

static void start_thread(bp_pair *p, void *(*fn)(void *))
{
    atomic_store(&p->stop, false);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (bp_cpu_b >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(bp_cpu_b % sysconf(_SC_NPROCESSORS_ONLN), &set);
        pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
    }
    atomic_store(&p->tid_b, 0);
    p->fn_b = fn;
    int err = pthread_create(&p->th, &attr, b_trampoline, p);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        errno = err;
        die("pthread_create");
    }
    p->running = true;
}

static void join_thread(bp_pair *p)
{
    if (p->running) {
        pthread_join(p->th, NULL);
        p->running = false;
    }
}

/* ---- aiopoll --------------------------------------------------------------- */

static void a_bhb(void *op)
{
    bp_pair *p = op;
    aio_bh_schedule(p->bha);
}

static void a_bha(void *op)
{
    bp_pair *p = op;
    atomic_store_explicit(&p->done, 1, memory_order_relaxed);
}

static void a_fdb(void *op)
{
    bp_pair *p = op;
    drain1(p->pb[0]);
    xwrite1(p->pa[1]);
}

static void a_fda(void *op)
{
    bp_pair *p = op;
    drain1(p->pa[0]);
    atomic_store_explicit(&p->done, 1, memory_order_relaxed);
}

static void a_nop(void *op)
{
    (void)op;
}

static void *a_thread(void *op)
{
    bp_pair *p = op;
    if (aio_context_set_home_thread(p->b) != 0) {
        fprintf(stderr, "aio_context_set_home_thread failed\n");
        exit(1);
    }
    atomic_store(&p->done, 2);
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        aio_poll(p->b, true);
    }
    return NULL;
}

static void set_or_unset(const char *name, const char *value)
{
    if (value) {
        setenv(name, value, 1);
    } else {
        unsetenv(name);
    }
}

static AioContext *ctx_new(const bp_pair_opts *o)
{
    /* The environment is read by aio_context_new only; no other thread of
     * the bench reads it. */
    char *old_b = getenv("AIOPOLL_BACKEND"), *old_t = getenv("AIOPOLL_EPOLL_THRESHOLD");
    old_b = old_b ? strdup(old_b) : NULL;
    old_t = old_t ? strdup(old_t) : NULL;
    if (o->backend) {
        setenv("AIOPOLL_BACKEND", o->backend, 1);
    }
    if (o->threshold) {
        setenv("AIOPOLL_EPOLL_THRESHOLD", o->threshold, 1);
    }
    AioContext *ctx = aio_context_new();
    set_or_unset("AIOPOLL_BACKEND", old_b);
    set_or_unset("AIOPOLL_EPOLL_THRESHOLD", old_t);
    free(old_b);
    free(old_t);
    if (!ctx) {
        die("aio_context_new");
    }
    return ctx;
}

bp_pair *bp_aiopoll_new(const bp_pair_opts *o)
{
    bp_pair *p = calloc(1, sizeof(*p));
    p->kind = K_AIOPOLL;
    p->wake = o->wake;
    p->a = ctx_new(o);
    p->b = ctx_new(o);
    if (o->poll_max_ns) {
        aio_context_set_poll_params(p->a, o->poll_max_ns, 0, 0);
        aio_context_set_poll_params(p->b, o->poll_max_ns, 0, 0);
    }
    if (o->wake == BP_WAKE_FD) {
        xpipe(p->pa);
        xpipe(p->pb);
        if (aio_set_fd_handler(p->a, p->pa[0], false, a_fda, NULL, NULL, p) ||
            aio_set_fd_handler(p->b, p->pb[0], false, a_fdb, NULL, NULL, p)) {
            die("aio_set_fd_handler");
        }
    } else {
        p->bha = aio_bh_new(p->a, a_bha, p);
        p->bhb = aio_bh_new(p->b, a_bhb, p);
    }
    for (size_t i = 0; o->idle && i < o->idle->n; i++) {
        int err = aio_set_fd_handler(p->b, o->idle->fds[i], false, a_nop, NULL, NULL, NULL);
        if (err) {
            fprintf(stderr, "registering idle fd %zu: %s\n", i, aio_strerror(err));
            exit(1);
        }
    }
    /* Flush the registrations' notifications before B starts. */
    while (aio_poll(p->b, false) > 0) {
    }
    snprintf(p->desc, sizeof(p->desc), "%s", aio_context_backend(p->b));
    start_thread(p, a_thread);
    while (atomic_load(&p->done) != 2) {
        sched_yield();
    }
    atomic_store(&p->done, 0);
    return p;
}

/* ---- libevent -------------------------------------------------------------- */

static void l_evb(evutil_socket_t fd, short what, void *op)
{
    (void)fd, (void)what;
    bp_pair *p = op;
    event_active(p->eva, EV_READ, 0);
}

static void l_eva(evutil_socket_t fd, short what, void *op)
{
    (void)fd, (void)what;
    bp_pair *p = op;
    atomic_store_explicit(&p->done, 1, memory_order_relaxed);
}

static void l_fdb(evutil_socket_t fd, short what, void *op)
{
    (void)fd, (void)what;
    bp_pair *p = op;
    drain1(p->pb[0]);
    xwrite1(p->pa[1]);
}

static void l_fda(evutil_socket_t fd, short what, void *op)
{
    (void)fd, (void)what;
    bp_pair *p = op;
    drain1(p->pa[0]);
    atomic_store_explicit(&p->done, 1, memory_order_relaxed);
}

static void l_nop(evutil_socket_t fd, short what, void *op)
{
    (void)fd, (void)what, (void)op;
}

static void *l_thread(void *op)
{
    bp_pair *p = op;
    event_base_loop(p->lb, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

bp_pair *bp_libevent_new(const bp_pair_opts *o)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, (void (*)(void))evthread_use_pthreads);
    bp_pair *p = calloc(1, sizeof(*p));
    p->kind = K_LIBEVENT;
    p->wake = o->wake;
    p->la = event_base_new();
    p->lb = event_base_new();
    if (!p->la || !p->lb) {
        die("event_base_new");
    }
    if (o->wake == BP_WAKE_FD) {
        xpipe(p->pa);
        xpipe(p->pb);
        p->eva = event_new(p->la, p->pa[0], EV_READ | EV_PERSIST, l_fda, p);
        p->evb = event_new(p->lb, p->pb[0], EV_READ | EV_PERSIST, l_fdb, p);
        event_add(p->eva, NULL);
        event_add(p->evb, NULL);
    } else {
        p->eva = event_new(p->la, -1, EV_PERSIST, l_eva, p);
        p->evb = event_new(p->lb, -1, EV_PERSIST, l_evb, p);
    }
    if (o->idle && o->idle->n) {
        p->idle_ev = calloc(o->idle->n, sizeof(*p->idle_ev));
        for (size_t i = 0; i < o->idle->n; i++) {
            p->idle_ev[i] = event_new(p->lb, o->idle->fds[i], EV_READ | EV_PERSIST, l_nop, NULL);
            if (!p->idle_ev[i] || event_add(p->idle_ev[i], NULL) != 0) {
                fprintf(stderr, "libevent: registering idle fd %zu failed\n", i);
                exit(1);
            }
        }
        p->nidle_ev = o->idle->n;
    }
    snprintf(p->desc, sizeof(p->desc), "libevent %s (%s)", event_get_version(),
             event_base_get_method(p->lb));
    start_thread(p, l_thread);
    return p;
}

/* ---- floors: raw system calls ----------------------------------------------- */

static const uint64_t one = 1;

static void *f_thread_bh(void *op)
{
    bp_pair *p = op;
    struct pollfd pf = {.fd = p->eb, .events = POLLIN};
    for (;;) {
        if (ppoll(&pf, 1, NULL, NULL) < 0 && errno != EINTR) {
            die("ppoll");
        }
        uint64_t v;
        (void)!read(p->eb, &v, sizeof(v));
        if (atomic_load_explicit(&p->stop, memory_order_relaxed)) {
            return NULL;
        }
        (void)!write(p->ea, &one, sizeof(one));
    }
}

static void *f_thread_fd(void *op)
{
    bp_pair *p = op;
    struct epoll_event evs[64];
    for (;;) {
        bool mine = false;
        if (p->use_ppoll) {
            int r = ppoll(p->pfds, p->npfds, NULL, NULL);
            if (r < 0 && errno != EINTR) {
                die("ppoll");
            }
            /* Scan as an event loop must, to find the ready ones. */
            for (size_t i = 0; i < p->npfds; i++) {
                if (p->pfds[i].revents && p->pfds[i].fd == p->pb[0]) {
                    mine = true;
                }
            }
        } else {
            int r = epoll_wait(p->epb, evs, 64, -1);
            for (int i = 0; i < r; i++) {
                mine |= evs[i].data.fd == p->pb[0];
            }
        }
        if (mine) {
            drain1(p->pb[0]);
            if (atomic_load_explicit(&p->stop, memory_order_relaxed)) {
                return NULL;
            }
            xwrite1(p->pa[1]);
        }
    }
}

bp_pair *bp_floor_new(const bp_pair_opts *o)
{
    bp_pair *p = calloc(1, sizeof(*p));
    p->kind = K_FLOOR;
    p->wake = o->wake;
    p->ea = p->eb = p->epa = p->epb = -1;
    if (o->wake == BP_WAKE_BH) {
        p->ea = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        p->eb = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        snprintf(p->desc, sizeof(p->desc), "eventfd + ppoll");
        start_thread(p, f_thread_bh);
        return p;
    }
    xpipe(p->pa);
    xpipe(p->pb);
    size_t nidle = o->idle ? o->idle->n : 0;
    p->use_ppoll = o->floor_ppoll;
    if (p->use_ppoll) {
        p->npfds = nidle + 1;
        p->pfds = calloc(p->npfds, sizeof(*p->pfds));
        p->pfds[0] = (struct pollfd){.fd = p->pb[0], .events = POLLIN};
        for (size_t i = 0; i < nidle; i++) {
            p->pfds[i + 1] = (struct pollfd){.fd = o->idle->fds[i], .events = POLLIN};
        }
        snprintf(p->desc, sizeof(p->desc), "pipe + ppoll");
    } else {
        p->epb = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = p->pb[0]};
        epoll_ctl(p->epb, EPOLL_CTL_ADD, p->pb[0], &ev);
        for (size_t i = 0; i < nidle; i++) {
            ev.data.fd = o->idle->fds[i];
            if (epoll_ctl(p->epb, EPOLL_CTL_ADD, o->idle->fds[i], &ev) < 0) {
                die("epoll_ctl idle");
            }
        }
        snprintf(p->desc, sizeof(p->desc), "pipe + epoll_wait");
    }
    /* Side A waits the same way side B does. */
    p->epa = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = p->pa[0]};
    epoll_ctl(p->epa, EPOLL_CTL_ADD, p->pa[0], &ev);
    start_thread(p, f_thread_fd);
    return p;
}

/* ---- busy-spin floor ---------------------------------------------------------- */

static void *s_thread(void *op)
{
    bp_pair *p = op;
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        if (atomic_load_explicit(&p->flag, memory_order_acquire) == 1) {
            atomic_store_explicit(&p->flag, 2, memory_order_release);
        } else {
            bu_cpu_relax();
        }
    }
    return NULL;
}

bp_pair *bp_spin_new(void)
{
    bp_pair *p = calloc(1, sizeof(*p));
    p->kind = K_SPIN;
    snprintf(p->desc, sizeof(p->desc), "two threads spinning on an atomic");
    return p;
}

/* ---- pairs implemented elsewhere ---------------------------------------------- */

static void *e_thread(void *op)
{
    bp_pair *p = op;
    p->ext->b_loop(p->impl);
    return NULL;
}

bp_pair *bp_ext_new(const bp_ext_ops *ops, void *impl, const char *desc)
{
    bp_pair *p = calloc(1, sizeof(*p));
    if (!p) {
        die("calloc");
    }
    p->kind = K_EXT;
    p->ext = ops;
    p->impl = impl;
    snprintf(p->desc, sizeof(p->desc), "%s", desc);
    start_thread(p, e_thread);
    return p;
}

/* ---- common -------------------------------------------------------------------- */

void bp_ping(bp_pair *p)
{
    switch (p->kind) {
    case K_AIOPOLL:
        atomic_store_explicit(&p->done, 0, memory_order_relaxed);
        if (p->wake == BP_WAKE_FD) {
            xwrite1(p->pb[1]);
        } else {
            aio_bh_schedule(p->bhb);
        }
        while (!atomic_load_explicit(&p->done, memory_order_relaxed)) {
            aio_poll(p->a, true);
        }
        break;
    case K_LIBEVENT:
        atomic_store_explicit(&p->done, 0, memory_order_relaxed);
        if (p->wake == BP_WAKE_FD) {
            xwrite1(p->pb[1]);
        } else {
            event_active(p->evb, EV_READ, 0);
        }
        while (!atomic_load_explicit(&p->done, memory_order_relaxed)) {
            event_base_loop(p->la, EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY);
        }
        break;
    case K_FLOOR:
        if (p->wake == BP_WAKE_BH) {
            (void)!write(p->eb, &one, sizeof(one));
            struct pollfd pf = {.fd = p->ea, .events = POLLIN};
            for (;;) {
                int r = ppoll(&pf, 1, NULL, NULL);
                if (r > 0) {
                    break;
                }
            }
            uint64_t v;
            (void)!read(p->ea, &v, sizeof(v));
        } else {
            xwrite1(p->pb[1]);
            struct epoll_event ev;
            while (epoll_wait(p->epa, &ev, 1, -1) != 1) {
            }
            drain1(p->pa[0]);
        }
        break;
    case K_EXT:
        p->ext->ping(p->impl);
        break;
    case K_SPIN:
        atomic_store_explicit(&p->flag, 1, memory_order_release);
        while (atomic_load_explicit(&p->flag, memory_order_acquire) != 2) {
            bu_cpu_relax();
        }
        break;
    }
}

void bp_batch_begin(bp_pair *p)
{
    if (p->kind == K_SPIN) {
        atomic_store(&p->flag, 0);
        start_thread(p, s_thread);
    }
}

void bp_batch_end(bp_pair *p)
{
    if (p->kind == K_SPIN) {
        atomic_store(&p->stop, true);
        join_thread(p);
    }
}

const char *bp_describe(bp_pair *p)
{
    return p->desc;
}

int bp_tid_b(bp_pair *p)
{
    /* Side B publishes its id first thing in its thread. Waiting for it
     * keeps a counter from being opened on id 0, which perf_event_open
     * takes for the calling thread (side A counted twice, B not at all). */
    while (p->running && atomic_load(&p->tid_b) == 0) {
        sched_yield();
    }
    return p->running ? atomic_load(&p->tid_b) : 0;
}

static void close_if(int fd)
{
    if (fd >= 0) {
        close(fd);
    }
}

void bp_free(bp_pair *p)
{
    if (!p) {
        return;
    }
    atomic_store(&p->stop, true);
    switch (p->kind) {
    case K_AIOPOLL:
        aio_notify(p->b);
        join_thread(p);
        aio_context_unref(p->a);
        aio_context_unref(p->b);
        break;
    case K_LIBEVENT:
        event_base_loopbreak(p->lb);
        join_thread(p);
        for (size_t i = 0; i < p->nidle_ev; i++) {
            event_free(p->idle_ev[i]);
        }
        free(p->idle_ev);
        event_free(p->eva);
        event_free(p->evb);
        event_base_free(p->la);
        event_base_free(p->lb);
        break;
    case K_FLOOR:
        if (p->wake == BP_WAKE_BH) {
            (void)!write(p->eb, &one, sizeof(one));
        } else {
            xwrite1(p->pb[1]);
        }
        join_thread(p);
        close_if(p->ea);
        close_if(p->eb);
        close_if(p->epa);
        close_if(p->epb);
        free(p->pfds);
        break;
    case K_SPIN:
        join_thread(p);
        break;
    case K_EXT:
        p->ext->stop_b(p->impl);
        join_thread(p);
        p->ext->destroy(p->impl);
        break;
    }
    if (p->wake == BP_WAKE_FD && p->kind != K_SPIN && p->kind != K_EXT) {
        close(p->pa[0]);
        close(p->pa[1]);
        close(p->pb[0]);
        close(p->pb[1]);
    }
    free(p);
}
