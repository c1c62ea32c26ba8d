/* SPDX-License-Identifier: MIT */
/*
 * Event notifiers: set / test_and_clear semantics, initially_set, the
 * waitable handle, dispatch through aio_set_event_notifier (level-triggered,
 * removal, is_external), and waking a blocked poll from another thread.
 */
#include "test-common.h"

Test(notifier, set_and_test_and_clear, .timeout = 10)
{
    AioEventNotifier *n = aio_event_notifier_new(false);

    cr_assert_not_null(n);
    cr_assert(!aio_event_notifier_test_and_clear(n));
    cr_assert_eq(aio_event_notifier_set(n), 0);
    cr_assert(aio_event_notifier_test_and_clear(n));
    cr_assert(!aio_event_notifier_test_and_clear(n), "test_and_clear did not clear");
    /* Setting a set notifier is a no-op: one set, one true. */
    cr_assert_eq(aio_event_notifier_set(n), 0);
    cr_assert_eq(aio_event_notifier_set(n), 0);
    cr_assert_eq(aio_event_notifier_set(n), 0);
    cr_assert(aio_event_notifier_test_and_clear(n));
    cr_assert(!aio_event_notifier_test_and_clear(n));
    aio_event_notifier_free(n);
}

Test(notifier, initially_set, .timeout = 10)
{
    AioEventNotifier *n = aio_event_notifier_new(true);

    cr_assert_not_null(n);
    cr_assert(aio_event_notifier_test_and_clear(n));
    cr_assert(!aio_event_notifier_test_and_clear(n));
    aio_event_notifier_free(n);
}

Test(notifier, handle_is_valid, .timeout = 10)
{
    AioEventNotifier *a = aio_event_notifier_new(false);
    AioEventNotifier *b = aio_event_notifier_new(false);

    cr_assert(tsup_handle_valid(aio_event_notifier_get_handle(a)));
    cr_assert(tsup_handle_valid(aio_event_notifier_get_handle(b)));
    cr_assert_neq(aio_event_notifier_get_handle(a), aio_event_notifier_get_handle(b));
    /* Stable. */
    cr_assert_eq(aio_event_notifier_get_handle(a), aio_event_notifier_get_handle(a));
    aio_event_notifier_free(a);
    aio_event_notifier_free(b);
}

Test(notifier, many_notifiers, .timeout = 10)
{
    enum { N = 200 };
    AioEventNotifier *n[N];

    for (int i = 0; i < N; i++) {
        n[i] = aio_event_notifier_new(i & 1);
        cr_assert_not_null(n[i]);
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(aio_event_notifier_test_and_clear(n[i]), (bool)(i & 1));
        aio_event_notifier_free(n[i]);
    }
}

typedef struct nh {
    AioEventNotifier *n;
    atomic_int calls;
    bool clear;
} nh;

static void nh_read(void *opaque)
{
    nh *h = opaque;
    atomic_fetch_add(&h->calls, 1);
    if (h->clear) {
        aio_event_notifier_test_and_clear(h->n);
    }
}

typedef struct n_env {
    AioContext *ctx;
    nh h;
} n_env;

static void n_env_init(n_env *e, bool clear, bool external)
{
    e->ctx = tc_ctx_new();
    e->h.n = aio_event_notifier_new(false);
    cr_assert_not_null(e->h.n);
    e->h.clear = clear;
    atomic_init(&e->h.calls, 0);
    cr_assert_eq(aio_set_event_notifier(e->ctx, e->h.n, external, nh_read, NULL, &e->h), 0);
}

static void n_env_fini(n_env *e)
{
    cr_assert_eq(aio_set_event_notifier(e->ctx, e->h.n, false, NULL, NULL, NULL), 0);
    aio_event_notifier_free(e->h.n);
    aio_context_unref(e->ctx);
}

Test(notifier, dispatches_while_set, .timeout = 10)
{
    n_env e;

    n_env_init(&e, true, false);
    cr_assert_eq(aio_poll(e.ctx, false), 0);
    cr_assert_eq(aio_event_notifier_set(e.h.n), 0);
    cr_assert_eq(aio_poll(e.ctx, false), 1);
    cr_assert_eq(atomic_load(&e.h.calls), 1);
    cr_assert_eq(aio_poll(e.ctx, false), 0);
    cr_assert_eq(atomic_load(&e.h.calls), 1);
    n_env_fini(&e);
}

Test(notifier, level_triggered_until_cleared, .timeout = 10)
{
    n_env e;

    n_env_init(&e, false, false);
    cr_assert_eq(aio_event_notifier_set(e.h.n), 0);
    for (int i = 1; i <= 3; i++) {
        cr_assert_eq(aio_poll(e.ctx, false), 1);
        cr_assert_eq(atomic_load(&e.h.calls), i);
    }
    cr_assert(aio_event_notifier_test_and_clear(e.h.n));
    cr_assert_eq(aio_poll(e.ctx, false), 0);
    n_env_fini(&e);
}

Test(notifier, initially_set_dispatches, .timeout = 10)
{
    AioContext *ctx = tc_ctx_new();
    nh h = {.n = aio_event_notifier_new(true), .clear = true};

    atomic_init(&h.calls, 0);
    cr_assert_eq(aio_set_event_notifier(ctx, h.n, false, nh_read, NULL, &h), 0);
    cr_assert(tc_poll_until(ctx, &h.calls, 1, TC_BOUND_MS));
    cr_assert_eq(aio_set_event_notifier(ctx, h.n, false, NULL, NULL, NULL), 0);
    aio_event_notifier_free(h.n);
    aio_context_unref(ctx);
}

Test(notifier, remove_is_idempotent, .timeout = 10)
{
    n_env e;

    n_env_init(&e, true, false);
    cr_assert_eq(aio_set_event_notifier(e.ctx, e.h.n, false, NULL, NULL, NULL), 0);
    cr_assert_eq(aio_set_event_notifier(e.ctx, e.h.n, false, NULL, NULL, NULL), 0);
    cr_assert_eq(aio_event_notifier_set(e.h.n), 0);
    cr_assert_eq(aio_poll(e.ctx, false), 0);
    cr_assert_eq(atomic_load(&e.h.calls), 0, "removed notifier handler ran");
    /* Still set: removal did not consume it. */
    cr_assert(aio_event_notifier_test_and_clear(e.h.n));
    n_env_fini(&e);
}

static void nh_remove_self(void *opaque)
{
    n_env *e = opaque;
    atomic_fetch_add(&e->h.calls, 1);
    aio_set_event_notifier(e->ctx, e->h.n, false, NULL, NULL, NULL);
}

Test(notifier, remove_in_own_callback, .timeout = 10)
{
    n_env e;

    n_env_init(&e, false, false);
    cr_assert_eq(aio_set_event_notifier(e.ctx, e.h.n, false, nh_remove_self, NULL, &e), 0);
    cr_assert_eq(aio_event_notifier_set(e.h.n), 0);
    cr_assert_eq(aio_poll(e.ctx, false), 1);
    cr_assert_eq(aio_poll(e.ctx, false), 0);
    cr_assert_eq(atomic_load(&e.h.calls), 1);
    n_env_fini(&e);
}

Test(notifier, replace_handler, .timeout = 10)
{
    n_env e;
    nh other;

    n_env_init(&e, true, false);
    other = (nh){.n = e.h.n, .clear = true};
    atomic_init(&other.calls, 0);
    cr_assert_eq(aio_set_event_notifier(e.ctx, e.h.n, false, nh_read, NULL, &other), 0);
    cr_assert_eq(aio_event_notifier_set(e.h.n), 0);
    cr_assert_eq(aio_poll(e.ctx, false), 1);
    cr_assert_eq(atomic_load(&e.h.calls), 0);
    cr_assert_eq(atomic_load(&other.calls), 1);
    n_env_fini(&e);
}

Test(notifier, external_suspended_while_disabled, .timeout = 10)
{
    n_env e;

    n_env_init(&e, true, true);
    aio_disable_external(e.ctx);
    aio_disable_external(e.ctx);
    cr_assert_eq(aio_event_notifier_set(e.h.n), 0);
    cr_assert_eq(aio_poll(e.ctx, false), 0);
    aio_enable_external(e.ctx);
    cr_assert_eq(aio_poll(e.ctx, false), 0);
    cr_assert_eq(atomic_load(&e.h.calls), 0, "external notifier dispatched while disabled");
    aio_enable_external(e.ctx);
    cr_assert(tc_poll_until(e.ctx, &e.h.calls, 1, TC_BOUND_MS),
              "external notifier not dispatched after enabling");
    n_env_fini(&e);
}

static void remote_set(void *p)
{
    aio_event_notifier_set(((n_env *)p)->h.n);
}

static void remote_enable(void *p)
{
    aio_enable_external(((n_env *)p)->ctx);
}

Test(notifier, set_from_other_thread_wakes_blocked_poll, .timeout = 20)
{
    n_env e;

    n_env_init(&e, true, false);
    tc_expect_wake(e.ctx, &e.h.calls, 1, 0, remote_set, &e, "notifier set before sleep");
    tc_expect_wake(e.ctx, &e.h.calls, 2, 50, remote_set, &e, "notifier set while asleep");
    n_env_fini(&e);
}

Test(notifier, enable_external_wakes_blocked_poll, .timeout = 20)
{
    n_env e;

    n_env_init(&e, true, true);
    aio_disable_external(e.ctx);
    cr_assert_eq(aio_event_notifier_set(e.h.n), 0);
    tc_expect_wake(e.ctx, &e.h.calls, 1, 50, remote_enable, &e, "enable_external while asleep");
    n_env_fini(&e);
}

/* One notifier in two contexts at once. */
Test(notifier, shared_between_contexts, .timeout = 10)
{
    AioContext *a = tc_ctx_new();
    AioContext *b = tc_ctx_new();
    nh ha = {.n = aio_event_notifier_new(false)}, hb;

    hb = (nh){.n = ha.n};
    atomic_init(&ha.calls, 0);
    atomic_init(&hb.calls, 0);
    cr_assert_eq(aio_set_event_notifier(a, ha.n, false, nh_read, NULL, &ha), 0);
    cr_assert_eq(aio_set_event_notifier(b, hb.n, false, nh_read, NULL, &hb), 0);
    cr_assert_eq(aio_event_notifier_set(ha.n), 0);
    cr_assert_eq(aio_poll(a, false), 1);
    cr_assert_eq(aio_poll(b, false), 1);
    cr_assert_eq(atomic_load(&ha.calls), 1);
    cr_assert_eq(atomic_load(&hb.calls), 1);
    cr_assert_eq(aio_set_event_notifier(a, ha.n, false, NULL, NULL, NULL), 0);
    cr_assert_eq(aio_set_event_notifier(b, hb.n, false, NULL, NULL, NULL), 0);
    aio_event_notifier_free(ha.n);
    aio_context_unref(a);
    aio_context_unref(b);
}

/* Registration churn over many notifiers: a deterministic pseudo-random
 * sequence of registrations, replacements (another opaque) and removals,
 * checked after every step against a model, by setting every notifier and
 * polling: each registered one runs exactly its current handler once, a
 * removed one never runs. The registrations are found by key through the
 * context's index (src/source-index.c), whose removals shift entries back:
 * a lost or misplaced entry shows as a handler that runs twice, runs for
 * the wrong opaque, or survives its removal. */
#define CHURN_N 200

typedef struct churn_slot {
    AioEventNotifier *n;
    int owner;      /* model: 0 unregistered, else the opaque's tag */
    atomic_int ran; /* runs since the last check, by its current tag */
    atomic_int wrong;
} churn_slot;

typedef struct churn_tag {
    churn_slot *slot;
    int tag;
} churn_tag;

static void churn_cb(void *opaque)
{
    churn_tag *t = opaque;
    aio_event_notifier_test_and_clear(t->slot->n);
    if (t->slot->owner == t->tag) {
        atomic_fetch_add(&t->slot->ran, 1);
    } else {
        atomic_fetch_add(&t->slot->wrong, 1);
    }
}

Test(notifier, registration_churn_over_many_keys, .timeout = 60)
{
    AioContext *ctx = tc_ctx_new();
    static churn_slot slot[CHURN_N];
    static churn_tag tags[CHURN_N][4];
    for (int i = 0; i < CHURN_N; i++) {
        slot[i] = (churn_slot){.n = aio_event_notifier_new(false)};
        cr_assert_not_null(slot[i].n);
        for (int t = 0; t < 4; t++) {
            tags[i][t] = (churn_tag){.slot = &slot[i], .tag = t + 1};
        }
    }
    uint32_t rnd = 12345;
    for (int step = 0; step < 3000; step++) {
        rnd = rnd * 1103515245u + 12345u;
        int i = (int)((rnd >> 8) % CHURN_N);
        int op = (int)((rnd >> 4) % 4); /* 0: remove, 1..3: (re)register with tag op */
        if (op == 0) {
            cr_assert_eq(aio_set_event_notifier(ctx, slot[i].n, false, NULL, NULL, NULL), 0);
            slot[i].owner = 0;
        } else {
            cr_assert_eq(aio_set_event_notifier(ctx, slot[i].n, false, churn_cb, NULL,
                                                &tags[i][op - 1]),
                         0);
            slot[i].owner = op;
        }
        if (step % 100 != 99) {
            continue;
        }
        for (int k = 0; k < CHURN_N; k++) {
            atomic_store(&slot[k].ran, 0);
            aio_event_notifier_set(slot[k].n);
        }
        while (aio_poll(ctx, false) > 0) {
        }
        for (int k = 0; k < CHURN_N; k++) {
            cr_assert_eq(atomic_load(&slot[k].wrong), 0, "step %d: notifier %d ran a replaced handler",
                         step, k);
            cr_assert_eq(atomic_load(&slot[k].ran), slot[k].owner ? 1 : 0,
                         "step %d: notifier %d (tag %d) ran %d times", step, k, slot[k].owner,
                         atomic_load(&slot[k].ran));
            aio_event_notifier_test_and_clear(slot[k].n);
        }
    }
    for (int i = 0; i < CHURN_N; i++) {
        cr_assert_eq(aio_set_event_notifier(ctx, slot[i].n, false, NULL, NULL, NULL), 0);
        aio_event_notifier_free(slot[i].n);
    }
    aio_context_unref(ctx);
}
