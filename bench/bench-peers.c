/* SPDX-License-Identifier: MIT */
/*
 * The peers a user would pick instead of aiopoll, through their public APIs
 * only: libuv (uv_async_send, uv_poll_t) and GLib (g_main_context_invoke,
 * g_unix_fd_source_new, g_main_context_wakeup); and the floors with
 * aiopoll's economy (futex and lazy eventfd). libev is in bench-libev.c.
 */
#define _GNU_SOURCE
#include "bench-peers.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <glib.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* ---- shared state ------------------------------------------------------------ */

void bpe_base_init(bpe_base *b, const bp_pair_opts *o)
{
    memset(b, 0, sizeof(*b));
    b->mode = o->flood ? BPE_FLOOD : o->wake == BP_WAKE_FD ? BPE_FD : BPE_BH;
    b->dispatches = o->flood;
    b->pa[0] = b->pa[1] = b->pb[0] = b->pb[1] = -1;
    if (b->mode == BPE_FD &&
        (pipe2(b->pa, O_NONBLOCK | O_CLOEXEC) < 0 || pipe2(b->pb, O_NONBLOCK | O_CLOEXEC) < 0)) {
        die("pipe2");
    }
}

void bpe_base_fini(bpe_base *b)
{
    for (int i = 0; i < 2; i++) {
        if (b->pa[i] >= 0) {
            close(b->pa[i]);
        }
        if (b->pb[i] >= 0) {
            close(b->pb[i]);
        }
    }
}

void bpe_fd_b(bpe_base *b)
{
    char c;
    (void)!read(b->pb[0], &c, 1);
    if (write(b->pa[1], &c, 1) != 1) {
        die("write");
    }
}

void bpe_fd_a(bpe_base *b)
{
    char c;
    (void)!read(b->pa[0], &c, 1);
    atomic_store_explicit(&b->done, 1, memory_order_relaxed);
}

bp_pair *bpe_start(const bp_ext_ops *ops, void *impl, bpe_base *b, const char *desc)
{
    bp_pair *p = bp_ext_new(ops, impl, desc);
    while (!atomic_load(&b->ready)) {
        sched_yield();
    }
    return p;
}

static void start_fd(bpe_base *b)
{
    atomic_store_explicit(&b->done, 0, memory_order_relaxed);
    if (write(b->pb[1], "x", 1) != 1) {
        die("write");
    }
}

/* ---- libuv ------------------------------------------------------------------- */

typedef struct uvp {
    bpe_base b;
    uv_loop_t la, lb;
    uv_async_t asa, asb; /* asb also carries the stop request */
    uv_poll_t pa, pb;
    uv_poll_t *idle;
    size_t nidle;
} uvp;

static void uv_asb_cb(uv_async_t *h)
{
    uvp *u = h->data;
    if (atomic_load_explicit(&u->b.stop, memory_order_relaxed)) {
        uv_stop(&u->lb);
    } else if (u->b.mode == BPE_FLOOD) {
        atomic_fetch_add_explicit(u->b.dispatches, 1, memory_order_relaxed);
    } else if (u->b.mode == BPE_BH) {
        uv_async_send(&u->asa);
    }
}

static void uv_asa_cb(uv_async_t *h)
{
    uvp *u = h->data;
    atomic_store_explicit(&u->b.done, 1, memory_order_relaxed);
}

static void uv_pb_cb(uv_poll_t *h, int status, int events)
{
    (void)status, (void)events;
    bpe_fd_b(&((uvp *)h->data)->b);
}

static void uv_pa_cb(uv_poll_t *h, int status, int events)
{
    (void)status, (void)events;
    bpe_fd_a(&((uvp *)h->data)->b);
}

static void uv_nop_cb(uv_poll_t *h, int status, int events)
{
    (void)h, (void)status, (void)events;
}

static void uvp_b_loop(void *op)
{
    uvp *u = op;
    atomic_store(&u->b.ready, true);
    uv_run(&u->lb, UV_RUN_DEFAULT);
}

static void uvp_ping(void *op)
{
    uvp *u = op;
    if (u->b.mode == BPE_FLOOD) {
        uv_async_send(&u->asb);
        return;
    }
    if (u->b.mode == BPE_FD) {
        start_fd(&u->b);
    } else {
        atomic_store_explicit(&u->b.done, 0, memory_order_relaxed);
        uv_async_send(&u->asb);
    }
    while (!atomic_load_explicit(&u->b.done, memory_order_relaxed)) {
        uv_run(&u->la, UV_RUN_ONCE);
    }
}

static void uvp_stop_b(void *op)
{
    uvp *u = op;
    atomic_store(&u->b.stop, true);
    uv_async_send(&u->asb);
}

static void uvp_destroy(void *op)
{
    uvp *u = op;
    uv_close((uv_handle_t *)&u->asa, NULL);
    uv_close((uv_handle_t *)&u->asb, NULL);
    if (u->b.mode == BPE_FD) {
        uv_close((uv_handle_t *)&u->pa, NULL);
        uv_close((uv_handle_t *)&u->pb, NULL);
    }
    for (size_t i = 0; i < u->nidle; i++) {
        uv_close((uv_handle_t *)&u->idle[i], NULL);
    }
    uv_run(&u->la, UV_RUN_DEFAULT);
    uv_run(&u->lb, UV_RUN_DEFAULT);
    uv_loop_close(&u->la);
    uv_loop_close(&u->lb);
    bpe_base_fini(&u->b);
    free(u->idle);
    free(u);
}

static const bp_ext_ops uvp_ops = {uvp_b_loop, uvp_ping, uvp_stop_b, uvp_destroy};

static void uv_poll_or_die(uv_loop_t *l, uv_poll_t *h, int fd, uv_poll_cb cb, void *data)
{
    if (uv_poll_init(l, h, fd) != 0) {
        die("uv_poll_init");
    }
    h->data = data;
    uv_poll_start(h, UV_READABLE, cb);
}

bp_pair *bp_libuv_new(const bp_pair_opts *o)
{
    uvp *u = calloc(1, sizeof(*u));
    if (!u || uv_loop_init(&u->la) || uv_loop_init(&u->lb)) {
        die("uv_loop_init");
    }
    bpe_base_init(&u->b, o);
    uv_async_init(&u->la, &u->asa, uv_asa_cb);
    uv_async_init(&u->lb, &u->asb, uv_asb_cb);
    u->asa.data = u->asb.data = u;
    if (u->b.mode == BPE_FD) {
        uv_poll_or_die(&u->la, &u->pa, u->b.pa[0], uv_pa_cb, u);
        uv_poll_or_die(&u->lb, &u->pb, u->b.pb[0], uv_pb_cb, u);
    }
    if (o->idle && o->idle->n) {
        u->idle = calloc(o->idle->n, sizeof(*u->idle));
        for (size_t i = 0; i < o->idle->n; i++) {
            uv_poll_or_die(&u->lb, &u->idle[i], o->idle->fds[i], uv_nop_cb, u);
        }
        u->nidle = o->idle->n;
    }
    char desc[64];
    snprintf(desc, sizeof(desc), "libuv %s (epoll)", uv_version_string());
    return bpe_start(&uvp_ops, u, &u->b, desc);
}



/* ---- GLib -------------------------------------------------------------------- */

typedef struct glp {
    bpe_base b;
    GMainContext *ca, *cb;
    GSource *sa, *sb;
    GSource **idle;
    size_t nidle;
} glp;

static gboolean gl_a_cb(gpointer op)
{
    glp *g = op;
    atomic_store_explicit(&g->b.done, 1, memory_order_relaxed);
    return G_SOURCE_REMOVE;
}

static gboolean gl_b_cb(gpointer op)
{
    glp *g = op;
    g_main_context_invoke(g->ca, gl_a_cb, g);
    return G_SOURCE_REMOVE;
}

static gboolean gl_fd_b(gint fd, GIOCondition c, gpointer op)
{
    (void)fd, (void)c;
    bpe_fd_b(&((glp *)op)->b);
    return G_SOURCE_CONTINUE;
}

static gboolean gl_fd_a(gint fd, GIOCondition c, gpointer op)
{
    (void)fd, (void)c;
    bpe_fd_a(&((glp *)op)->b);
    return G_SOURCE_CONTINUE;
}

static gboolean gl_nop(gint fd, GIOCondition c, gpointer op)
{
    (void)fd, (void)c, (void)op;
    return G_SOURCE_CONTINUE;
}

static void glp_b_loop(void *op)
{
    glp *g = op;
    /* Owned for good: g_main_context_invoke runs the function in the
     * *caller's* thread when it can acquire the target context, so an
     * unowned context would turn the round trip into a function call. */
    g_main_context_acquire(g->cb);
    atomic_store(&g->b.ready, true);
    while (!atomic_load_explicit(&g->b.stop, memory_order_relaxed)) {
        g_main_context_iteration(g->cb, TRUE);
        if (g->b.mode == BPE_FLOOD) {
            atomic_fetch_add_explicit(g->b.dispatches, 1, memory_order_relaxed);
        }
    }
    g_main_context_release(g->cb);
}

static void glp_ping(void *op)
{
    glp *g = op;
    if (g->b.mode == BPE_FLOOD) {
        g_main_context_wakeup(g->cb);
        return;
    }
    if (g->b.mode == BPE_FD) {
        start_fd(&g->b);
    } else {
        atomic_store_explicit(&g->b.done, 0, memory_order_relaxed);
        g_main_context_invoke(g->cb, gl_b_cb, g);
    }
    while (!atomic_load_explicit(&g->b.done, memory_order_relaxed)) {
        g_main_context_iteration(g->ca, TRUE);
    }
}

static void glp_stop_b(void *op)
{
    glp *g = op;
    atomic_store(&g->b.stop, true);
    g_main_context_wakeup(g->cb);
}

static void glp_destroy(void *op)
{
    glp *g = op;
    for (size_t i = 0; i < g->nidle; i++) {
        g_source_destroy(g->idle[i]);
        g_source_unref(g->idle[i]);
    }
    if (g->sa) {
        g_source_destroy(g->sa);
        g_source_unref(g->sa);
        g_source_destroy(g->sb);
        g_source_unref(g->sb);
    }
    g_main_context_release(g->ca);
    g_main_context_unref(g->ca);
    g_main_context_unref(g->cb);
    bpe_base_fini(&g->b);
    free(g->idle);
    free(g);
}

static const bp_ext_ops glp_ops = {glp_b_loop, glp_ping, glp_stop_b, glp_destroy};

static GSource *gl_fd_source(GMainContext *c, int fd, GUnixFDSourceFunc fn, void *data)
{
    /* g_unix_fd_source_new is a GSource with one g_source_add_unix_fd tag. */
    GSource *s = g_unix_fd_source_new(fd, G_IO_IN);
    g_source_set_callback(s, (GSourceFunc)(void (*)(void))fn, data, NULL);
    g_source_attach(s, c);
    return s;
}

bp_pair *bp_glib_new(const bp_pair_opts *o)
{
    glp *g = calloc(1, sizeof(*g));
    if (!g) {
        die("calloc");
    }
    bpe_base_init(&g->b, o);
    g->ca = g_main_context_new();
    g->cb = g_main_context_new();
    /* Side A is the calling thread; see glp_b_loop for why it must own it. */
    g_main_context_acquire(g->ca);
    if (g->b.mode == BPE_FD) {
        g->sa = gl_fd_source(g->ca, g->b.pa[0], gl_fd_a, g);
        g->sb = gl_fd_source(g->cb, g->b.pb[0], gl_fd_b, g);
    }
    if (o->idle && o->idle->n) {
        g->idle = calloc(o->idle->n, sizeof(*g->idle));
        for (size_t i = 0; i < o->idle->n; i++) {
            g->idle[i] = gl_fd_source(g->cb, o->idle->fds[i], gl_nop, g);
        }
        g->nidle = o->idle->n;
    }
    char desc[64];
    snprintf(desc, sizeof(desc), "GLib %u.%u.%u (poll)", glib_major_version, glib_minor_version,
             glib_micro_version);
    return bpe_start(&glp_ops, g, &g->b, desc);
}



/* ---- floors with aiopoll's economy ---------------------------------------------- */

/*
 * One word per side: 0 nothing, 1 posted, 2 its owner announced that it
 * sleeps. The poster's exchange sees 2 only if the sleeper's CAS came first,
 * and then the sleeper is in (or about to enter) its wait, which the system
 * call of the poster ends; a sleeper that finds 1 consumes it without any
 * system call. That is aiopoll's notify_me economy with the bookkeeping of
 * a real loop removed: the least a lazily-kicked loop can pay.
 */
typedef struct lazy {
    bpe_base b;
    bool futex;
    atomic_int w[2]; /* 0: side A's word, 1: side B's */
    int efd[2];
} lazy;

static void lazy_post(lazy *l, int side)
{
    static const uint64_t one = 1;
    if (atomic_exchange(&l->w[side], 1) != 2) {
        return;
    }
    if (l->futex) {
        syscall(SYS_futex, &l->w[side], FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    } else if (write(l->efd[side], &one, sizeof(one)) != sizeof(one)) {
        die("write");
    }
}

static void lazy_wait(lazy *l, int side)
{
    for (;;) {
        if (atomic_exchange(&l->w[side], 0) == 1) {
            return;
        }
        int idle = 0;
        if (!atomic_compare_exchange_strong(&l->w[side], &idle, 2)) {
            continue; /* posted since the exchange */
        }
        if (l->futex) {
            /* Returns at once (EAGAIN) if the poster already replaced the 2. */
            syscall(SYS_futex, &l->w[side], FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
        } else {
            struct pollfd pf = {.fd = l->efd[side], .events = POLLIN};
            if (ppoll(&pf, 1, NULL, NULL) > 0) {
                uint64_t v;
                (void)!read(l->efd[side], &v, sizeof(v));
            }
        }
    }
}

static void lazy_b_loop(void *op)
{
    lazy *l = op;
    for (;;) {
        lazy_wait(l, 1);
        if (atomic_load_explicit(&l->b.stop, memory_order_relaxed)) {
            return;
        }
        lazy_post(l, 0);
    }
}

static void lazy_ping(void *op)
{
    lazy *l = op;
    lazy_post(l, 1);
    lazy_wait(l, 0);
}

static void lazy_stop_b(void *op)
{
    lazy *l = op;
    atomic_store(&l->b.stop, true);
    lazy_post(l, 1);
}

static void lazy_destroy(void *op)
{
    lazy *l = op;
    if (!l->futex) {
        close(l->efd[0]);
        close(l->efd[1]);
    }
    free(l);
}

static const bp_ext_ops lazy_ops = {lazy_b_loop, lazy_ping, lazy_stop_b, lazy_destroy};

static bp_pair *lazy_new(bool futex)
{
    lazy *l = calloc(1, sizeof(*l));
    if (!l) {
        die("calloc");
    }
    l->futex = futex;
    if (!futex) {
        l->efd[0] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        l->efd[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (l->efd[0] < 0 || l->efd[1] < 0) {
            die("eventfd");
        }
    }
    return bp_ext_new(&lazy_ops, l,
                      futex ? "futex word, wake only an announced sleeper"
                            : "eventfd + ppoll, written only to an announced sleeper");
}

bp_pair *bp_futex_new(void)
{
    return lazy_new(true);
}

bp_pair *bp_lazy_eventfd_new(void)
{
    return lazy_new(false);
}
