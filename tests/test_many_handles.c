/* SPDX-License-Identifier: MIT */
/*
 * Many waitable objects in one context. On Windows this is past
 * MAXIMUM_WAIT_OBJECTS (64), the limit of WaitForMultipleObjects that caps
 * QEMU's and GLib's Windows loops; aiopoll's win32 backend spreads the extra
 * handles over helper waiter threads (docs/win32-backend.md). The indices
 * below straddle every 63-handle chunk boundary. On POSIX the same tests
 * cover large pollfd arrays and the eventfd+ppoll -> epoll switch.
 */
#include <stdio.h>
#include <stdlib.h>

#include "test-common.h"

#define NOTIFIERS 500
#define PAIRS 100

static const int probe_indices[] = {0, 1, 62, 63, 64, 125, 126, 127, 200, 437, 498, 499};
#define NPROBES (int)(sizeof(probe_indices) / sizeof(probe_indices[0]))

typedef struct slot {
    AioEventNotifier *n;
    atomic_int *hits;
    int idx;
    atomic_int *last_idx;
} slot;

typedef struct many {
    AioContext *ctx;
    slot *slots;
    int count;
    atomic_int hits;
    atomic_int last_idx;
} many;

static void slot_read(void *opaque)
{
    slot *s = opaque;
    if (aio_event_notifier_test_and_clear(s->n)) {
        atomic_store(s->last_idx, s->idx);
        atomic_fetch_add(s->hits, 1);
    }
}

static void many_init(many *m, int count)
{
    m->ctx = tc_ctx_new();
    m->slots = calloc((size_t)count, sizeof(*m->slots));
    cr_assert_not_null(m->slots);
    m->count = count;
    atomic_init(&m->hits, 0);
    atomic_init(&m->last_idx, -1);
    for (int i = 0; i < count; i++) {
        slot *s = &m->slots[i];
        s->n = aio_event_notifier_new(false);
        cr_assert_not_null(s->n, "notifier %d", i);
        s->hits = &m->hits;
        s->idx = i;
        s->last_idx = &m->last_idx;
        cr_assert_eq(aio_set_event_notifier(m->ctx, s->n, false, slot_read, NULL, s), 0);
    }
    tc_poll_idle(m->ctx, 10);
}

static void many_fini(many *m)
{
    for (int i = 0; i < m->count; i++) {
        cr_assert_eq(aio_set_event_notifier(m->ctx, m->slots[i].n, false, NULL, NULL, NULL), 0);
        aio_event_notifier_free(m->slots[i].n);
    }
    free(m->slots);
    aio_context_unref(m->ctx);
}

static void set_notifier(void *arg)
{
    aio_event_notifier_set(arg);
}

/* Each probe, set from another thread, must wake the sleeping home thread
 * and be the one dispatched. */
static void expect_probes_wake(many *m, const int *probes, int nprobes)
{
    for (int p = 0; p < nprobes; p++) {
        int idx = probes[p];
        char what[64];
        snprintf(what, sizeof(what), "notifier %d of %d", idx, m->count);
        tc_expect_wake(m->ctx, &m->hits, p + 1, 20, set_notifier, m->slots[idx].n, what);
        cr_assert_eq(atomic_load(&m->last_idx), idx, "woke for %d, dispatched %d", idx,
                     atomic_load(&m->last_idx));
    }
}

Test(many_handles, set_from_another_thread_wakes_blocked_poll, .timeout = 120)
{
    many m;
    many_init(&m, NOTIFIERS);
    expect_probes_wake(&m, probe_indices, NPROBES);
    many_fini(&m);
}

/* On Windows, 65 waiting threads (the poller and 64 helpers) of 63 handles
 * each cover 4095; past that the helpers' reports must still all count. The
 * registration order may be the reverse of the wait order, so the probes
 * straddle 4095 from both ends (5000 - 4095 = 905). */
#define BIG 5000
static const int big_probes[] = {0, 1, 903, 904, 905, 906, 2500, 4094, 4095, 4096, 4999};

Test(many_handles, five_thousand_notifiers, .timeout = 240)
{
    many m;
    /* Each notifier is a descriptor (two for a pipe) and each registration
     * holds a duplicate of it (docs/design.md, "Owned objects"). */
    long need = 3L * BIG + 64;
    cr_assert_eq(tsup_reserve_handles(need), 0,
                 "this test needs %ld open descriptors; raise the hard RLIMIT_NOFILE", need);
    many_init(&m, BIG);
    expect_probes_wake(&m, big_probes, (int)(sizeof(big_probes) / sizeof(big_probes[0])));
    many_fini(&m);
}

Test(many_handles, all_set_at_once_dispatch_in_one_poll, .timeout = 120)
{
    many m;
    many_init(&m, NOTIFIERS);
    for (int i = 0; i < NOTIFIERS; i++) {
        cr_assert_eq(aio_event_notifier_set(m.slots[i].n), 0);
    }
    tc_poll_result r = tc_poll_blocking_bounded(m.ctx, TC_BOUND_MS);
    cr_assert_eq(r.ret, 1);
    cr_assert(!r.rescued);
    cr_assert_eq(atomic_load(&m.hits), NOTIFIERS, "one poll dispatched %d of %d set notifiers",
                 atomic_load(&m.hits), NOTIFIERS);
    /* Level-triggered and cleared: nothing left. */
    cr_assert_eq(aio_poll(m.ctx, false), 0);
    many_fini(&m);
}

Test(many_handles, remove_half_while_asleep_then_wake_survivor, .timeout = 120)
{
    many m;
    many_init(&m, NOTIFIERS);
    /* Removing sources changes the set a sleeping poller waits on; the core
     * must wake it to take a new snapshot, and the survivors must work. */
    for (int i = 0; i < NOTIFIERS; i += 2) {
        cr_assert_eq(aio_set_event_notifier(m.ctx, m.slots[i].n, false, NULL, NULL, NULL), 0);
    }
    tc_poll_idle(m.ctx, 10);
    tc_expect_wake(m.ctx, &m.hits, 1, 20, set_notifier, m.slots[NOTIFIERS - 1].n,
                   "odd notifier after removing the even ones");
    /* A removed one no longer dispatches. */
    aio_event_notifier_set(m.slots[0].n);
    cr_assert_eq(aio_poll(m.ctx, false), 0);
    cr_assert_eq(atomic_load(&m.hits), 1);
    aio_event_notifier_test_and_clear(m.slots[0].n);
    many_fini(&m);
}

typedef struct pair_slot {
    aio_fd_t fds[2];
    int idx;
    atomic_int *hits;
    atomic_int *last_idx;
} pair_slot;

static void pair_read(void *opaque)
{
    pair_slot *p = opaque;
    if (tsup_drain(p->fds[0]) > 0) {
        atomic_store(p->last_idx, p->idx);
        atomic_fetch_add(p->hits, 1);
    }
}

static void write_byte(void *arg)
{
    tsup_write_byte(*(aio_fd_t *)arg);
}

Test(many_handles, socket_pairs_past_64, .timeout = 120)
{
    static pair_slot pairs[PAIRS];
    atomic_int hits, last_idx;
    atomic_init(&hits, 0);
    atomic_init(&last_idx, -1);
    AioContext *ctx = tc_ctx_new();
    for (int i = 0; i < PAIRS; i++) {
        cr_assert_eq(tsup_socketpair(pairs[i].fds), 0, "socket pair %d", i);
        pairs[i].idx = i;
        pairs[i].hits = &hits;
        pairs[i].last_idx = &last_idx;
        cr_assert_eq(aio_set_fd_handler(ctx, pairs[i].fds[0], false, pair_read, NULL, NULL,
                                        &pairs[i]),
                     0);
    }
    tc_poll_idle(ctx, 10);
    static const int probes[] = {0, 62, 63, 64, 70, 99};
    for (int p = 0; p < (int)(sizeof(probes) / sizeof(probes[0])); p++) {
        int idx = probes[p];
        char what[64];
        snprintf(what, sizeof(what), "socket pair %d of %d", idx, PAIRS);
        tc_expect_wake(ctx, &hits, p + 1, 20, write_byte, &pairs[idx].fds[1], what);
        cr_assert_eq(atomic_load(&last_idx), idx);
    }
    for (int i = 0; i < PAIRS; i++) {
        cr_assert_eq(aio_set_fd_handler(ctx, pairs[i].fds[0], false, NULL, NULL, NULL, NULL), 0);
        tsup_close(pairs[i].fds[0]);
        tsup_close(pairs[i].fds[1]);
    }
    aio_context_unref(ctx);
}
