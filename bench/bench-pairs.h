/* SPDX-License-Identifier: MIT */
/*
 * Round-trip "pairs": two threads, each blocked in its own event loop, that
 * wake each other. The bench's main thread is side A; a helper thread runs
 * side B. ping() performs one round trip from A: wake B, B's callback wakes
 * A, A's loop runs A's callback. Implementations: aiopoll, libevent, the
 * raw-syscall floors and a busy-spin floor.
 */
#ifndef AIOPOLL_BENCH_PAIRS_H
#define AIOPOLL_BENCH_PAIRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Idle descriptors, shared by every pair of a scenario (each registers all
 * of them in its side-B loop, read interest, never ready). */
typedef struct bp_idle {
    int *fds;      /* the registered descriptors */
    size_t n;
    int *all;      /* every descriptor opened, to close */
    size_t nall;
    bool both_ends; /* both ends of each pipe are registered */
} bp_idle;

int bp_idle_open(bp_idle *idle, size_t n);
void bp_idle_close(bp_idle *idle);

typedef enum bp_wake {
    BP_WAKE_BH, /* aiopoll: BH; libevent: event_active; floor: eventfd + ppoll */
    BP_WAKE_FD, /* one byte through a pipe, read handler on each side */
} bp_wake;

typedef struct bp_pair bp_pair;

/* CPU placement: the calling (side A) thread is pinned to CPU 0 by
 * bp_pin_self(0); side-B helper threads started afterwards pin themselves to
 * bp_cpu_b (-1: no pinning at all, for --pin none). */
extern int bp_cpu_b;
void bp_pin_self(int cpu);

typedef struct bp_pair_opts {
    bp_wake wake;
    const bp_idle *idle;      /* may be NULL */
    const char *backend;      /* aiopoll: AIOPOLL_BACKEND, NULL = default */
    const char *threshold;    /* aiopoll: AIOPOLL_EPOLL_THRESHOLD, NULL = default */
    int64_t poll_max_ns;      /* aiopoll: adaptive polling window, 0 = off */
    bool floor_ppoll;         /* floor, BP_WAKE_FD: ppoll over all descriptors
                               * instead of epoll */
    /* libuv, GLib, libev: the flood mode instead of round trips. bp_ping()
     * is then one send (uv_async_send, g_main_context_wakeup,
     * ev_async_send), and side B adds each callback (GLib: each loop
     * iteration) to *flood. */
    _Atomic unsigned long long *flood;
} bp_pair_opts;

/* A pair implemented outside bench-pairs.c (the peers in bench-peers.c and
 * bench-libev.c: libev's ev.h and libevent's headers cannot share a
 * translation unit). bp_pair runs side B's thread and captures its id. */
typedef struct bp_ext_ops {
    void (*b_loop)(void *impl);   /* side B: run until stop_b */
    void (*ping)(void *impl);     /* side A: one round trip */
    void (*stop_b)(void *impl);   /* from A: make b_loop return */
    void (*destroy)(void *impl);  /* after B returned */
} bp_ext_ops;
bp_pair *bp_ext_new(const bp_ext_ops *ops, void *impl, const char *desc);

bp_pair *bp_aiopoll_new(const bp_pair_opts *o);
/* The peers return NULL (after a note saying why) when the build lacks them
 * or the wake kind makes no sense for them. */
bp_pair *bp_libuv_new(const bp_pair_opts *o);
bp_pair *bp_glib_new(const bp_pair_opts *o);
bp_pair *bp_libev_new(const bp_pair_opts *o);
/* Floors with aiopoll's economy: the waker makes a system call only for a
 * sleeper that announced itself (futex word, or an eventfd + ppoll). */
bp_pair *bp_futex_new(void);
bp_pair *bp_lazy_eventfd_new(void);
bp_pair *bp_libevent_new(const bp_pair_opts *o);
bp_pair *bp_floor_new(const bp_pair_opts *o);
bp_pair *bp_spin_new(void);

void bp_ping(bp_pair *p);
/* Called around each batch of pings (the spin floor runs its helper thread
 * only inside a batch, so that it never steals a core from the others). */
void bp_batch_begin(bp_pair *p);
void bp_batch_end(bp_pair *p);
/* What the pair actually runs on (the aiopoll backend, libevent's method). */
const char *bp_describe(bp_pair *p);
/* Side B's thread id (0 while it has none: the spin floor between batches). */
int bp_tid_b(bp_pair *p);
void bp_free(bp_pair *p);

#endif
