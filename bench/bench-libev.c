/* SPDX-License-Identifier: MIT */
/*
 * libev as a peer (ev_async_send, ev_io), in a translation unit of its own:
 * ev.h and libevent's event2 headers define the same EV_* names.
 *
 * libev.so also exports libevent's API (its compatibility layer:
 * event_base_new, event_active, ...). Linked normally, whichever library
 * comes first would serve both peers' event_* calls, so libev is loaded with
 * dlopen(RTLD_LOCAL) and only its ev_* functions are looked up. Without the
 * header (BENCH_HAVE_LIBEV=0) or the library, the constructors return NULL
 * and bp_libev_missing() says why.
 */
#define _GNU_SOURCE
#include "bench-peers.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#if BENCH_HAVE_LIBEV
#include <ev.h>

static struct {
    struct ev_loop *(*loop_new)(unsigned);
    void (*loop_destroy)(struct ev_loop *);
    int (*run)(struct ev_loop *, int);
    void (*brk)(struct ev_loop *, int);
    void (*async_start)(struct ev_loop *, ev_async *);
    void (*async_send)(struct ev_loop *, ev_async *);
    void (*io_start)(struct ev_loop *, ev_io *);
    unsigned (*backend)(struct ev_loop *);
    int (*major)(void), (*minor)(void);
} evf;
static char ev_missing[160];

static bool ev_load(void)
{
    static int state; /* 0 not tried, 1 loaded, -1 missing */
    if (state) {
        return state > 0;
    }
    state = -1;
    void *h = dlopen("libev.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(ev_missing, sizeof(ev_missing), "dlopen: %s", dlerror());
        return false;
    }
    struct {
        void **fn;
        const char *name;
    } sym[] = {
        {(void **)&evf.loop_new, "ev_loop_new"},
        {(void **)&evf.loop_destroy, "ev_loop_destroy"},
        {(void **)&evf.run, "ev_run"},
        {(void **)&evf.brk, "ev_break"},
        {(void **)&evf.async_start, "ev_async_start"},
        {(void **)&evf.async_send, "ev_async_send"},
        {(void **)&evf.io_start, "ev_io_start"},
        {(void **)&evf.backend, "ev_backend"},
        {(void **)&evf.major, "ev_version_major"},
        {(void **)&evf.minor, "ev_version_minor"},
    };
    for (size_t i = 0; i < sizeof(sym) / sizeof(sym[0]); i++) {
        *sym[i].fn = dlsym(h, sym[i].name);
        if (!*sym[i].fn) {
            snprintf(ev_missing, sizeof(ev_missing), "libev.so.4 has no %s", sym[i].name);
            return false;
        }
    }
    state = 1;
    return true;
}

const char *bp_libev_missing(void)
{
    return ev_load() ? NULL : ev_missing;
}

typedef struct evp {
    bpe_base b;
    struct ev_loop *la, *lb;
    ev_async asa, asb; /* asb also carries the stop request */
    ev_io ioa, iob;
    ev_io *idle;
    size_t nidle;
} evp;

static void ev_asb_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)revents;
    evp *e = w->data;
    if (atomic_load_explicit(&e->b.stop, memory_order_relaxed)) {
        evf.brk(loop, EVBREAK_ALL);
    } else if (e->b.mode == BPE_FLOOD) {
        atomic_fetch_add_explicit(e->b.dispatches, 1, memory_order_relaxed);
    } else if (e->b.mode == BPE_BH) {
        evf.async_send(e->la, &e->asa);
    }
}

static void ev_asa_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop, (void)revents;
    evp *e = w->data;
    atomic_store_explicit(&e->b.done, 1, memory_order_relaxed);
}

static void ev_iob_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    bpe_fd_b(&((evp *)w->data)->b);
}

static void ev_ioa_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    bpe_fd_a(&((evp *)w->data)->b);
}

static void ev_nop_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)w, (void)revents;
}

static void evp_b_loop(void *op)
{
    evp *e = op;
    atomic_store(&e->b.ready, true);
    evf.run(e->lb, 0);
}

static void evp_ping(void *op)
{
    evp *e = op;
    if (e->b.mode == BPE_FLOOD) {
        evf.async_send(e->lb, &e->asb);
        return;
    }
    atomic_store_explicit(&e->b.done, 0, memory_order_relaxed);
    if (e->b.mode == BPE_FD) {
        if (write(e->b.pb[1], "x", 1) != 1) {
            perror("write");
            exit(1);
        }
    } else {
        evf.async_send(e->lb, &e->asb);
    }
    while (!atomic_load_explicit(&e->b.done, memory_order_relaxed)) {
        evf.run(e->la, EVRUN_ONCE);
    }
}

static void evp_stop_b(void *op)
{
    evp *e = op;
    atomic_store(&e->b.stop, true);
    evf.async_send(e->lb, &e->asb);
}

static void evp_destroy(void *op)
{
    evp *e = op;
    evf.loop_destroy(e->la);
    evf.loop_destroy(e->lb);
    bpe_base_fini(&e->b);
    free(e->idle);
    free(e);
}

static const bp_ext_ops evp_ops = {evp_b_loop, evp_ping, evp_stop_b, evp_destroy};

static const char *backend_name(unsigned b)
{
    return b == EVBACKEND_EPOLL    ? "epoll"
           : b == EVBACKEND_POLL   ? "poll"
           : b == EVBACKEND_SELECT ? "select"
                                   : "other";
}

bp_pair *bp_libev_new(const bp_pair_opts *o)
{
    if (!ev_load()) {
        return NULL;
    }
    evp *e = calloc(1, sizeof(*e));
    if (!e) {
        perror("calloc");
        exit(1);
    }
    bpe_base_init(&e->b, o);
    e->la = evf.loop_new(EVFLAG_AUTO);
    e->lb = evf.loop_new(EVFLAG_AUTO);
    if (!e->la || !e->lb) {
        fprintf(stderr, "ev_loop_new failed\n");
        exit(1);
    }
    ev_async_init(&e->asa, ev_asa_cb);
    ev_async_init(&e->asb, ev_asb_cb);
    e->asa.data = e->asb.data = e;
    evf.async_start(e->la, &e->asa);
    evf.async_start(e->lb, &e->asb);
    if (e->b.mode == BPE_FD) {
        ev_io_init(&e->ioa, ev_ioa_cb, e->b.pa[0], EV_READ);
        ev_io_init(&e->iob, ev_iob_cb, e->b.pb[0], EV_READ);
        e->ioa.data = e->iob.data = e;
        evf.io_start(e->la, &e->ioa);
        evf.io_start(e->lb, &e->iob);
    }
    if (o->idle && o->idle->n) {
        e->idle = calloc(o->idle->n, sizeof(*e->idle));
        for (size_t i = 0; i < o->idle->n; i++) {
            ev_io_init(&e->idle[i], ev_nop_cb, o->idle->fds[i], EV_READ);
            evf.io_start(e->lb, &e->idle[i]);
        }
        e->nidle = o->idle->n;
    }
    char desc[64];
    snprintf(desc, sizeof(desc), "libev %d.%d (%s)", evf.major(), evf.minor(),
             backend_name(evf.backend(e->lb)));
    return bpe_start(&evp_ops, e, &e->b, desc);
}

#else

const char *bp_libev_missing(void)
{
    return "ev.h was missing when the bench was configured (libev-dev)";
}

bp_pair *bp_libev_new(const bp_pair_opts *o)
{
    (void)o;
    return NULL;
}

#endif
