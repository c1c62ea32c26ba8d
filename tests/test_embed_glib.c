/* SPDX-License-Identifier: MIT */
/*
 * aiopoll::glib: a context as a GSource of a real GMainContext, iterated by
 * the home thread (the test thread). A lost wake-up would leave
 * g_main_context_iteration() asleep; a GLib timeout source (WATCHDOG_MS)
 * ends such a sleep and the test fails on it instead of hanging.
 */
#include <aiopoll/glib.h>

#include "test_embed_host.h"

#include <unistd.h>

#define WATCHDOG_MS TC_BOUND_MS

typedef struct loop {
    AioContext *ctx;
    GMainContext *mc;
    GSource *src;
    atomic_int fired; /* the watchdog ended a sleep */
} loop;

static void loop_init(loop *l)
{
    l->ctx = tc_ctx_new();
    l->mc = g_main_context_new();
    l->src = aio_context_gsource_new(l->ctx);
    cr_assert_not_null(l->src);
    g_source_attach(l->src, l->mc);
    atomic_init(&l->fired, 0);
}

static void loop_fini(loop *l)
{
    g_source_destroy(l->src);
    g_source_unref(l->src);
    g_main_context_unref(l->mc);
    aio_context_unref(l->ctx);
}

static gboolean watchdog_cb(gpointer p)
{
    atomic_store((atomic_int *)p, 1);
    return G_SOURCE_REMOVE;
}

/* Iterates l->mc until *v >= want; false if the watchdog had to end a sleep
 * (WATCHDOG_MS without progress). */
static bool run_until(loop *l, atomic_int *v, int want)
{
    while (atomic_load(v) < want) {
        int before = atomic_load(v);
        GSource *wd = g_timeout_source_new(WATCHDOG_MS);
        atomic_store(&l->fired, 0);
        g_source_set_callback(wd, watchdog_cb, &l->fired, NULL);
        g_source_attach(wd, l->mc);
        while (atomic_load(v) == before && !atomic_load(&l->fired)) {
            g_main_context_iteration(l->mc, TRUE);
        }
        g_source_destroy(wd);
        g_source_unref(wd);
        if (atomic_load(v) == before) {
            return false;
        }
    }
    return true;
}

static void schedule_later(void *p)
{
    remote_bh *r = p;
    tsup_sleep_ms(50);
    aio_bh_schedule_oneshot(r->ctx, tc_count_cb, r->counter);
}

static void read_one(void *p)
{
    fd_reader *r = p;
    char c;
    atomic_fetch_add(read(r->fd, &c, 1) == 1 ? &r->reads : &r->empty, 1);
}

static void notifier_cb(void *p)
{
    notifier_reader *r = p;
    if (aio_event_notifier_test_and_clear(r->n)) {
        atomic_fetch_add(&r->count, 1);
    }
}

static void set_notifier_later(void *p)
{
    tsup_sleep_ms(30);
    aio_event_notifier_set(p);
}

typedef struct timer_probe {
    int64_t deadline, fired_at;
    atomic_int fired;
} timer_probe;

static void timer_cb(void *p)
{
    timer_probe *t = p;
    t->fired_at = aio_clock_ns();
    atomic_store(&t->fired, 1);
}

Test(embed_glib, bh_fd_notifier_and_timer_run_from_the_main_loop, .timeout = 30)
{
    loop l;
    loop_init(&l);
    atomic_int ran = 0;
    remote_bh r = {l.ctx, &ran};
    tc_thread *t = tc_thread_start(schedule_later, &r);
    cr_assert(run_until(&l, &ran, 1), "cross-thread BH: main loop asleep: lost wake-up");
    cr_assert(tc_thread_join(t, TC_BOUND_MS));

    aio_fd_t p[2];
    cr_assert_eq(tsup_pipe(p), 0);
    fd_reader rd = {.fd = p[0]};
    cr_assert_eq(aio_set_fd_handler(l.ctx, p[0], false, read_one, NULL, NULL, &rd), 0);
    cr_assert_eq(tsup_write_byte(p[1]), 1);
    cr_assert(run_until(&l, &rd.reads, 1));

    AioEventNotifier *n = aio_event_notifier_new(false);
    notifier_reader nr = {.n = n};
    cr_assert_eq(aio_set_event_notifier(l.ctx, n, false, notifier_cb, NULL, &nr), 0);
    t = tc_thread_start(set_notifier_later, n);
    cr_assert(run_until(&l, &nr.count, 1));
    cr_assert(tc_thread_join(t, TC_BOUND_MS));

    for (int i = 0; i < 3; i++) {
        timer_probe tp = {0};
        AioTimer *tm = aio_timer_new(l.ctx, timer_cb, &tp);
        tp.deadline = aio_clock_ns() + 15000000 + i * 700000;
        aio_timer_mod(tm, tp.deadline);
        cr_assert(run_until(&l, &tp.fired, 1));
        cr_assert_geq(tp.fired_at, tp.deadline, "timer fired %lld ns early",
                      (long long)(tp.deadline - tp.fired_at));
        aio_timer_free(tm);
    }
    cr_assert_eq(atomic_load(&rd.empty), 0);

    aio_set_fd_handler(l.ctx, p[0], false, NULL, NULL, NULL, NULL);
    aio_set_event_notifier(l.ctx, n, false, NULL, NULL, NULL);
    aio_event_notifier_free(n);
    tsup_close(p[0]);
    tsup_close(p[1]);
    loop_fini(&l);
}

static void notify_and_foreign_poll(void *p)
{
    AioContext *ctx = p;
    aio_notify(ctx);
    aio_poll(ctx, false);
    aio_poll(ctx, false);
}

static gboolean quit_flag_cb(gpointer p)
{
    atomic_store((atomic_int *)p, 1);
    return G_SOURCE_REMOVE;
}

/* QEMU b37548fcd1 with GLib's sleep as the blocking poll: the source has
 * prepared (nothing to do: infinite timeout) and is held before the poll,
 * or GLib is asleep, while another thread notifies and polls without
 * blocking. The main loop's sleep must end. */
static void seed_case(int asleep_ms)
{
    loop l;
    loop_init(&l);
    /* Settle: the attach-time work (none) and a first idle prepare. */
    while (g_main_context_iteration(l.mc, FALSE)) {
    }
    tc_gate g;
    tc_gate_install(l.ctx, &g, AIO_HOOK_BEFORE_SLEEP, true);
    atomic_int missed = 0, wd = 0;
    tc_thread *t = tc_remote_when_sleeping(&g, asleep_ms, notify_and_foreign_poll, l.ctx, &missed);
    GSource *w = g_timeout_source_new(WATCHDOG_MS);
    g_source_set_callback(w, quit_flag_cb, &wd, NULL);
    g_source_attach(w, l.mc);
    g_main_context_iteration(l.mc, TRUE);
    cr_assert_eq(atomic_load(&wd), 0, "main loop still asleep after %d ms: lost wake-up",
                 WATCHDOG_MS);
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    cr_assert_eq(atomic_load(&missed), 0, "the main loop never reached its sleep");
    tc_gate_remove(l.ctx, &g);
    g_source_destroy(w);
    g_source_unref(w);
    loop_fini(&l);
}

Test(embed_glib, b37548fcd1_notify_and_foreign_poll_before_sleep, .timeout = 30)
{
    seed_case(0);
}

Test(embed_glib, notify_and_foreign_poll_while_asleep, .timeout = 30)
{
    seed_case(50);
}

typedef struct nested {
    loop *l;
    atomic_int inner, ran_nested;
    bool ok;
} nested;

/* AIO_WAIT_WHILE from main-loop code: a GLib callback that is not ours
 * waits in aio_poll(ctx, true) for work from another thread. */
static gboolean idle_nested_poll(gpointer p)
{
    nested *n = p;
    remote_bh r = {n->l->ctx, &n->inner};
    tc_thread *t = tc_thread_start(schedule_later, &r);
    n->ok = tc_poll_until(n->l->ctx, &n->inner, 1, TC_BOUND_MS);
    tc_thread_join(t, TC_BOUND_MS);
    atomic_store(&n->ran_nested, 1);
    return G_SOURCE_REMOVE;
}

Test(embed_glib, nested_blocking_poll_from_a_main_loop_callback, .timeout = 30)
{
    loop l;
    loop_init(&l);
    nested n = {.l = &l};
    GSource *idle = g_idle_source_new();
    g_source_set_callback(idle, idle_nested_poll, &n, NULL);
    g_source_attach(idle, l.mc);
    g_source_unref(idle);
    cr_assert(run_until(&l, &n.ran_nested, 1));
    cr_assert(n.ok, "the nested blocking poll lost its wake-up");
    /* And the main loop is not left asleep with work pending. */
    atomic_int after = 0;
    remote_bh r = {l.ctx, &after};
    tc_thread *t = tc_thread_start(schedule_later, &r);
    cr_assert(run_until(&l, &after, 1), "main loop asleep after a nested poll: lost wake-up");
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    loop_fini(&l);
}

typedef struct recursion {
    loop *l;
    atomic_int inner, done;
    bool ok;
} recursion;

/* A callback of the context runs the main loop recursively (our source can
 * recurse) until more of the context's work arrives from another thread. */
static void recursing_bh(void *p)
{
    recursion *r = p;
    remote_bh rb = {r->l->ctx, &r->inner};
    tc_thread *t = tc_thread_start(schedule_later, &rb);
    r->ok = run_until(r->l, &r->inner, 1);
    tc_thread_join(t, TC_BOUND_MS);
    atomic_store(&r->done, 1);
}

Test(embed_glib, main_loop_recursing_from_a_callback, .timeout = 30)
{
    loop l;
    loop_init(&l);
    recursion r = {.l = &l};
    aio_bh_schedule_oneshot(l.ctx, recursing_bh, &r);
    cr_assert(run_until(&l, &r.done, 1));
    cr_assert(r.ok, "the recursive main loop lost its wake-up");
    loop_fini(&l);
}

typedef struct other_thread_new {
    AioContext *ctx;
    GSource *got;
} other_thread_new;

static void gsource_new_elsewhere(void *p)
{
    other_thread_new *o = p;
    o->got = aio_context_gsource_new(o->ctx);
}

Test(embed_glib, errors_detach_and_reattach, .timeout = 30)
{
    cr_assert_null(aio_context_gsource_new(NULL));
    loop l;
    loop_init(&l);
    cr_assert_null(aio_context_gsource_new(l.ctx), "two GSources for one context");
    other_thread_new o = {l.ctx, NULL};
    cr_assert(tc_thread_join(tc_thread_start(gsource_new_elsewhere, &o), TC_BOUND_MS));
    cr_assert_null(o.got, "a GSource made off the home thread");
    cr_assert_eq(aio_embed_attach(l.ctx, NULL), -EBUSY, "attached to a second loop");

    /* Several contexts share one GMainContext. */
    AioContext *c2 = tc_ctx_new();
    GSource *s2 = aio_context_gsource_new(c2);
    cr_assert_not_null(s2);
    g_source_attach(s2, l.mc);
    atomic_int a = 0, b = 0;
    aio_bh_schedule_oneshot(l.ctx, tc_count_cb, &a);
    aio_bh_schedule_oneshot(c2, tc_count_cb, &b);
    cr_assert(run_until(&l, &a, 1));
    cr_assert(run_until(&l, &b, 1));

    /* Detach (destroy + the last GSource ref) then attach again. */
    g_source_destroy(s2);
    g_source_unref(s2);
    cr_assert_null(aio_embed_host(c2), "still attached after the GSource was finalized");
    s2 = aio_context_gsource_new(c2);
    cr_assert_not_null(s2, "re-attach after detach");
    g_source_attach(s2, l.mc);
    remote_bh r = {c2, &b};
    tc_thread *t = tc_thread_start(schedule_later, &r);
    cr_assert(run_until(&l, &b, 2));
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    /* unref of an attached context: alive until its GSource goes. */
    aio_context_unref(c2);
    aio_bh_schedule_oneshot(c2, tc_count_cb, &b);
    cr_assert(run_until(&l, &b, 3));
    g_source_destroy(s2);
    g_source_unref(s2);
    loop_fini(&l);
}

typedef struct pingpong {
    AioContext *ctx;
    atomic_int done, stuck;
    long rounds;
} pingpong;

static void producer(void *p)
{
    pingpong *pp = p;
    for (long i = 0; i < pp->rounds; i++) {
        aio_bh_schedule_oneshot(pp->ctx, tc_count_cb, &pp->done);
        if (!tsup_wait_at_least(&pp->done, (int)(i + 1), TC_BOUND_MS * 2)) {
            atomic_store(&pp->stuck, 1);
            return;
        }
    }
}

Test(embed_glib, cross_thread_round_trips, .timeout = 300)
{
    loop l;
    loop_init(&l);
    pingpong pp = {.ctx = l.ctx, .rounds = tc_env_long("AIOPOLL_STRESS_ROUNDS", 100000)};
    tc_thread *t = tc_thread_start(producer, &pp);
    cr_assert(run_until(&l, &pp.done, (int)pp.rounds), "lost wake-up after %d rounds",
              atomic_load(&pp.done));
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
    cr_assert_eq(atomic_load(&pp.stuck), 0);
    loop_fini(&l);
}
