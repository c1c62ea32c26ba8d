/* SPDX-License-Identifier: MIT */
/*
 * Windows only: a context embedded in a real Win32 message loop, and the
 * win32 backend's embed watcher (docs/win32-backend.md, "Embedding").
 *
 * The loop is a GUI thread's: a message-only window, and
 * MsgWaitForMultipleObjectsEx on the one HANDLE aio_embed_query() returns,
 * then PeekMessage/DispatchMessage, aio_embed_check and aio_embed_dispatch.
 * Other threads post window messages, set notifiers (more than 64 are
 * registered, so the watcher needs its helper threads), write to a socket
 * and schedule BHs, each one at a time and waiting until the loop saw it, so
 * that every one needs its own wake-up; a wake-up that is lost shows as a
 * producer or a host sleep that runs into its bound.
 *
 * The watcher's hold point (win32-test-hooks.h) forces its interleavings
 * with the home thread: a nested blocking poll that resets a socket event
 * the watcher is about to sleep on, and a notifier removed (and its handle
 * value reused) while the watcher is about to sleep on its duplicate.
 */
#include "test_embed_host.h"

#include <tlhelp32.h>

#include "win32/win32-test-hooks.h"

#define NOTIFIERS 100 /* > MAXIMUM_WAIT_OBJECTS */
#define WM_PING (WM_APP + 1)

/* ---- The message loop ----------------------------------------------------- */

typedef struct gui {
    AioContext *ctx;
    HWND wnd;
    atomic_int messages; /* WM_PING seen by the window procedure */
} gui;

static LRESULT CALLBACK wnd_proc(HWND wnd, UINT msg, WPARAM wp, LPARAM lp)
{
    if (msg == WM_PING) {
        gui *g = (gui *)GetWindowLongPtrW(wnd, GWLP_USERDATA);
        atomic_fetch_add(&g->messages, 1);
        return 0;
    }
    return DefWindowProcW(wnd, msg, wp, lp);
}

static void gui_open(gui *g)
{
    WNDCLASSW wc = {0};
    wc.lpfnWndProc = wnd_proc;
    wc.hInstance = GetModuleHandleW(NULL);
    wc.lpszClassName = L"aiopoll-embed-test";
    RegisterClassW(&wc); /* again in the next test: already there, fine */
    g->wnd = CreateWindowExW(0, wc.lpszClassName, L"", 0, 0, 0, 0, 0, HWND_MESSAGE, NULL,
                             wc.hInstance, NULL);
    cr_assert_not_null(g->wnd, "CreateWindowExW: %lu", (unsigned long)GetLastError());
    SetWindowLongPtrW(g->wnd, GWLP_USERDATA, (LONG_PTR)g);
}

/* One iteration of the GUI thread's loop. false: its sleep ran into the
 * bound although the context asked for longer (a lost wake-up). */
static bool gui_iterate(gui *g)
{
    int64_t ns;
    cr_assert_geq(aio_embed_prepare(g->ctx, &ns), 0);
    AioEmbedFd fd;
    cr_assert_eq(aio_embed_query(g->ctx, &fd, 1), 1, "win32 gives the host one HANDLE");
    HANDLE h = fd.handle;
    int64_t ms = ns < 0 ? -1 : ns / 1000000 + (ns % 1000000 != 0);
    bool capped = ms < 0 || ms > HOST_BOUND_MS;
    DWORD r = MsgWaitForMultipleObjectsEx(1, &h, capped ? HOST_BOUND_MS : (DWORD)ms, QS_ALLINPUT,
                                          MWMO_INPUTAVAILABLE);
    cr_assert(r == WAIT_OBJECT_0 || r == WAIT_OBJECT_0 + 1 || r == WAIT_TIMEOUT,
              "MsgWaitForMultipleObjectsEx: %lu", (unsigned long)r);
    MSG m;
    while (PeekMessageW(&m, NULL, 0, 0, PM_REMOVE)) {
        TranslateMessage(&m);
        DispatchMessageW(&m);
    }
    if (aio_embed_check(g->ctx) > 0) {
        cr_assert_geq(aio_embed_dispatch(g->ctx), 0);
    }
    return !(r == WAIT_TIMEOUT && capped);
}

/* ---- Producers: one item at a time, each waited for ---------------------- */

typedef struct producer_state {
    gui *g;
    long rounds;
    AioEventNotifier **n;
    atomic_int *notified; /* handled notifier sets */
    aio_fd_t sock;        /* write end */
    atomic_int *reads;
    atomic_int bhs;
    atomic_int stuck; /* which producer gave up, 0 none */
} producer_state;

static bool wait_for(producer_state *p, atomic_int *v, long want, int who)
{
    if (!tsup_wait_at_least(v, (int)want, TC_BOUND_MS * 2)) {
        atomic_store(&p->stuck, who);
        return false;
    }
    return true;
}

static void post_messages(void *arg)
{
    producer_state *p = arg;
    for (long i = 0; i < p->rounds; i++) {
        cr_assert(PostMessageW(p->g->wnd, WM_PING, 0, 0));
        if (!wait_for(p, &p->g->messages, i + 1, 1)) {
            return;
        }
    }
}

static void schedule_bhs(void *arg)
{
    producer_state *p = arg;
    for (long i = 0; i < p->rounds; i++) {
        aio_bh_schedule_oneshot(p->g->ctx, tc_count_cb, &p->bhs);
        if (!wait_for(p, &p->bhs, i + 1, 2)) {
            return;
        }
    }
}

static void set_notifiers(void *arg)
{
    producer_state *p = arg;
    for (long i = 0; i < p->rounds; i++) {
        /* Spread over all of them: past the 63 the watcher's own thread
         * waits on, its helpers' groups must report too. */
        aio_event_notifier_set(p->n[(i * 37) % NOTIFIERS]);
        if (!wait_for(p, p->notified, i + 1, 3)) {
            return;
        }
    }
}

static void write_socket(void *arg)
{
    producer_state *p = arg;
    for (long i = 0; i < p->rounds; i++) {
        cr_assert_eq(tsup_write_byte(p->sock), 1);
        if (!wait_for(p, p->reads, i + 1, 4)) {
            return;
        }
    }
}

typedef struct counted_notifier {
    AioEventNotifier *n;
    atomic_int *count;
} counted_notifier;

static void counted_notifier_cb(void *arg)
{
    counted_notifier *c = arg;
    if (aio_event_notifier_test_and_clear(c->n)) {
        atomic_fetch_add(c->count, 1);
    }
}

Test(embed_win32, message_loop_sees_every_message_bh_notifier_and_byte, .timeout = 300)
{
    gui g = {.ctx = embedded_new()};
    gui_open(&g);
    atomic_int notified = 0;
    AioEventNotifier *n[NOTIFIERS];
    counted_notifier cn[NOTIFIERS];
    for (int i = 0; i < NOTIFIERS; i++) {
        n[i] = aio_event_notifier_new(false);
        cn[i] = (counted_notifier){n[i], &notified};
        cr_assert_eq(aio_set_event_notifier(g.ctx, n[i], false, counted_notifier_cb, NULL, &cn[i]),
                     0);
    }
    fd_reader rd;
    reader_open(g.ctx, &rd);
    producer_state p = {.g = &g,
                        .rounds = tc_env_long("AIOPOLL_STRESS_ROUNDS", 100000) / 50,
                        .n = n,
                        .notified = &notified,
                        .sock = rd.p[1],
                        .reads = &rd.reads};
    if (p.rounds < 100) {
        p.rounds = 100;
    }
    tc_thread *t[4] = {tc_thread_start(post_messages, &p), tc_thread_start(schedule_bhs, &p),
                       tc_thread_start(set_notifiers, &p), tc_thread_start(write_socket, &p)};
    bool ok = true;
    while (ok && atomic_load(&p.stuck) == 0 &&
           (atomic_load(&g.messages) < p.rounds || atomic_load(&p.bhs) < p.rounds ||
            atomic_load(&notified) < p.rounds || atomic_load(&rd.reads) < p.rounds)) {
        ok = gui_iterate(&g);
    }
    for (int i = 0; i < 4; i++) {
        cr_assert(tc_thread_join(t[i], TC_BOUND_MS * 3));
    }
    cr_assert(ok, "the GUI thread's sleep lost its wake-up (messages %d, BHs %d, notifiers %d, "
                  "bytes %d of %ld)",
              atomic_load(&g.messages), atomic_load(&p.bhs), atomic_load(&notified),
              atomic_load(&rd.reads), p.rounds);
    cr_assert_eq(atomic_load(&p.stuck), 0, "producer %d waited in vain", atomic_load(&p.stuck));
    cr_assert_eq(atomic_load(&g.messages), (int)p.rounds, "window messages lost or doubled");
    cr_assert_eq(atomic_load(&p.bhs), (int)p.rounds);
    cr_assert_eq(atomic_load(&notified), (int)p.rounds);
    cr_assert_eq(atomic_load(&rd.empty), 0, "a read handler ran with nothing to read");

    reader_close(g.ctx, &rd);
    for (int i = 0; i < NOTIFIERS; i++) {
        cr_assert_eq(aio_set_event_notifier(g.ctx, n[i], false, NULL, NULL, NULL), 0);
        aio_event_notifier_free(n[i]);
    }
    DestroyWindow(g.wnd);
    embedded_free(g.ctx);
}

/* ---- The watcher's interleavings ----------------------------------------- */

/* Holds the watcher once, right before its sleep, until released. */
typedef struct watcher_gate {
    atomic_int hold;    /* the next sleep is held */
    atomic_int reached; /* the watcher is held */
    atomic_int release;
} watcher_gate;

static void watcher_gate_hook(void *opaque)
{
    watcher_gate *w = opaque;
    int one = 1;
    if (atomic_compare_exchange_strong(&w->hold, &one, 0)) {
        atomic_store(&w->reached, 1);
        /* Bounded: a test that fails before releasing must not wedge the
         * watcher (and so the context's destroy) for ever. */
        tsup_wait_flag(&w->release, TC_GATE_HOLD_MS);
    }
}

static void watcher_gate_install(watcher_gate *w)
{
    *w = (watcher_gate){0};
    aio__win32_set_watcher_hook(watcher_gate_hook, w);
}

static void watcher_gate_remove(watcher_gate *w)
{
    atomic_store(&w->release, 1);
    aio__win32_set_watcher_hook(NULL, NULL);
}

static void count_only(void *p)
{
    atomic_fetch_add((atomic_int *)p, 1);
}

/* The watcher has scanned (nothing) and is held right before its sleep on
 * the socket's event. A byte arrives (the event is signalled); a host
 * callback runs two nested blocking polls whose handler does not read, so
 * the second resets the event and the socket stays readable, without a
 * recv that would make Winsock signal it again. Released, the watcher sleeps
 * on a reset event: only the nested poll's poke (rescan) makes it look at
 * the socket again and show the host that it is readable. (Under Wine the
 * nested poll's own select() signals the event again, which Windows does
 * not: there the test passes without the poke too; docs/win32-backend.md.) */
Test(embed_win32, socket_event_reset_by_a_nested_poll_is_rescanned, .timeout = 30)
{
    AioContext *ctx = embedded_new();
    aio_fd_t sp[2];
    cr_assert_eq(tsup_socketpair(sp), 0);
    atomic_int calls = 0;
    cr_assert_eq(aio_set_fd_handler(ctx, sp[0], false, count_only, NULL, NULL, &calls), 0);
    cr_assert(host_run_idle(ctx));

    watcher_gate w;
    watcher_gate_install(&w);
    atomic_store(&w.hold, 1);
    int64_t ns;
    cr_assert_eq(aio_embed_prepare(ctx, &ns), 0);
    cr_assert_eq(ns, -1);
    cr_assert(tsup_wait_flag(&w.reached, TC_BOUND_MS), "the watcher never reached its sleep");
    /* The host callback. */
    cr_assert_eq(tsup_write_byte(sp[1]), 1);
    cr_assert(tc_poll_until(ctx, &calls, 1, TC_BOUND_MS), "the byte never arrived");
    cr_assert_eq(aio_poll(ctx, true), 1);
    cr_assert_eq(atomic_load(&calls), 2);
    atomic_store(&w.release, 1);
    /* The host sleeps with what prepare said. */
    host_iter it = host_sleep_check_dispatch(ctx, ns, HOST_BOUND_MS);
    cr_assert(!(it.lost), "host slept on a readable socket: the watcher was not poked");
    cr_assert_eq(atomic_load(&calls), 3);

    watcher_gate_remove(&w);
    tsup_drain(sp[0]);
    cr_assert_eq(aio_set_fd_handler(ctx, sp[0], false, NULL, NULL, NULL, NULL), 0);
    tsup_close(sp[0]);
    tsup_close(sp[1]);
    embedded_free(ctx);
}

/* The watcher is held right before its sleep on a notifier's duplicate.
 * The notifier is removed and freed, and foreign auto-reset events are
 * created (Windows hands them the freed values at once) and signalled.
 * Released, the watcher must still wait on the notifier's event, never on
 * a foreign one: a wait on that would consume its signal. Several rounds,
 * so that a round in which the value was not reused cannot hide it. */
Test(embed_win32, notifier_removed_under_the_watcher_keeps_its_handle, .timeout = 60)
{
    AioContext *ctx = embedded_new();
    watcher_gate w;
    watcher_gate_install(&w);
    for (int round = 0; round < 20; round++) {
        AioEventNotifier *n = aio_event_notifier_new(false);
        notifier_reader nr = {.n = n};
        cr_assert_eq(aio_set_event_notifier(ctx, n, false, notifier_cb, NULL, &nr), 0);
        cr_assert(host_run_idle(ctx));
        atomic_store(&w.reached, 0);
        atomic_store(&w.release, 0);
        atomic_store(&w.hold, 1);
        int64_t ns;
        cr_assert_eq(aio_embed_prepare(ctx, &ns), 0);
        cr_assert(tsup_wait_flag(&w.reached, TC_BOUND_MS), "the watcher never reached its sleep");
        /* The host callback. */
        cr_assert_eq(aio_set_event_notifier(ctx, n, false, NULL, NULL, NULL), 0);
        aio_event_notifier_free(n);
        HANDLE foreign[4];
        for (int i = 0; i < 4; i++) {
            foreign[i] = CreateEventW(NULL, FALSE, TRUE, NULL);
            cr_assert_not_null(foreign[i]);
        }
        atomic_store(&w.release, 1);
        /* Give the watcher its sleep: its registry changed, so it goes
         * round once more and then sleeps on what is left. Bounded by the
         * host's own sleep; nothing is pending, so it times out. */
        host_iter it = host_sleep_check_dispatch(ctx, 200 * 1000000, HOST_BOUND_MS);
        (void)it;
        for (int i = 0; i < 4; i++) {
            cr_assert_eq(WaitForSingleObject(foreign[i], 0), WAIT_OBJECT_0,
                         "round %d: the watcher consumed a foreign event's signal", round);
            CloseHandle(foreign[i]);
        }
    }
    watcher_gate_remove(&w);
    embedded_free(ctx);
}

/* ---- Detach ---------------------------------------------------------------- */

/* Threads of this process, as Windows lists them. */
static int thread_count(void)
{
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
    cr_assert_neq(snap, INVALID_HANDLE_VALUE);
    THREADENTRY32 te = {.dwSize = sizeof(te)};
    int n = 0;
    for (BOOL ok = Thread32First(snap, &te); ok; ok = Thread32Next(snap, &te)) {
        n += te.th32OwnerProcessID == GetCurrentProcessId();
    }
    CloseHandle(snap);
    return n;
}

/* How many handles (of any process) name the object h names: what a
 * duplicate that was never closed leaves behind. NtQueryObject's basic
 * information, which Wine implements (GetProcessHandleCount is always 0
 * there). */
typedef struct object_basic_info {
    ULONG attributes;
    ACCESS_MASK granted_access;
    ULONG handle_count;
    ULONG pointer_count;
    ULONG reserved[10];
} object_basic_info;
typedef LONG(NTAPI nt_query_object_fn)(HANDLE, int, void *, ULONG, ULONG *);

static unsigned long handles_to(HANDLE h)
{
    nt_query_object_fn *query = (nt_query_object_fn *)(void (*)(void))GetProcAddress(
        GetModuleHandleW(L"ntdll.dll"), "NtQueryObject");
    cr_assert_not_null(query);
    object_basic_info info;
    ULONG len;
    cr_assert_eq(query(h, 0 /* ObjectBasicInformation */, &info, sizeof(info), &len), 0);
    return info.handle_count;
}

/* One notifier of many set from another thread, seen through poll (the host
 * when attached, else aio_poll): a sleep over all of them. */
static void one_notification(AioContext *ctx, AioEventNotifier **n, atomic_int *count, int i,
                             bool embedded)
{
    int want = atomic_load(count) + 1;
    tc_thread *t = tc_thread_start(set_notifier_later, n[(i * 37) % NOTIFIERS]);
    if (embedded) {
        cr_assert(host_run_until(ctx, count, want));
    } else {
        cr_assert(tc_poll_until(ctx, count, want, TC_BOUND_MS));
    }
    cr_assert(tc_thread_join(t, TC_BOUND_MS));
}

/* The watcher thread and its helpers (more than 64 handles) exist while a
 * host loop is attached, and only then: detach stops them and closes the
 * watcher's duplicate of every notifier's event, re-attach starts them
 * again over the same aggregate handle, and the context works in between as
 * one never embedded. */
Test(embed_win32, detach_stops_the_watcher_and_its_helpers, .timeout = 60)
{
    AioContext *ctx = tc_ctx_new();
    AioEventNotifier *n[NOTIFIERS];
    counted_notifier cn[NOTIFIERS];
    atomic_int count = 0;
    for (int i = 0; i < NOTIFIERS; i++) {
        n[i] = aio_event_notifier_new(false);
        cn[i] = (counted_notifier){.n = n[i], .count = &count};
        cr_assert_eq(aio_set_event_notifier(ctx, n[i], false, counted_notifier_cb, NULL, &cn[i]),
                     0);
    }
    /* The context's own helpers, for its blocking polls, exist from here on. */
    one_notification(ctx, n, &count, 0, false);
    int base = thread_count();
    unsigned long refs_base = handles_to(aio_event_notifier_get_handle(n[0]));
    aio_handle_t first = NULL;
    for (int round = 1; round <= 3; round++) {
        cr_assert_eq(aio_embed_attach(ctx, NULL), 0);
        AioEmbedFd fd;
        cr_assert_eq(aio_embed_query(ctx, &fd, 1), 1);
        if (round == 1) {
            first = fd.handle;
        }
        cr_assert_eq(fd.handle, first, "round %d: re-attach changed the aggregate handle", round);
        one_notification(ctx, n, &count, round, true);
        cr_assert_eq(handles_to(aio_event_notifier_get_handle(n[0])), refs_base + 1,
                     "round %d: the watcher holds no duplicate of a notifier's event", round);
        int attached = thread_count();
        cr_assert_geq(attached, base + 2,
                      "round %d: %d threads attached, %d before: no watcher and helper", round,
                      attached, base);
        cr_assert_eq(aio_embed_detach(ctx), 0);
        cr_assert_eq(thread_count(), base, "round %d: threads left after detach", round);
        for (int i = 0; i < NOTIFIERS; i++) {
            unsigned long refs = handles_to(aio_event_notifier_get_handle(n[i]));
            cr_assert_eq(refs, refs_base,
                         "round %d: notifier %d's event has %lu handles after detach, %lu before",
                         round, i, refs, refs_base);
        }
        one_notification(ctx, n, &count, round + 10, false);
    }
    for (int i = 0; i < NOTIFIERS; i++) {
        cr_assert_eq(aio_set_event_notifier(ctx, n[i], false, NULL, NULL, NULL), 0);
        aio_event_notifier_free(n[i]);
    }
    aio_context_unref(ctx);
}

/* ---- Errors ---------------------------------------------------------------- */

/* attach with no thread, no event or no duplicate for the watcher: a
 * negative errno, nothing attached, the context as usable as before. */
Test(embed_win32, attach_fails_cleanly_without_thread_event_or_duplicate, .timeout = 30)
{
    static const struct {
        AioFaultKind kind;
        int err;
    } faults[] = {
        {AIO_FAULT_THREAD, ERROR_NOT_ENOUGH_MEMORY},
        {AIO_FAULT_CREATE_EVENT, ERROR_NOT_ENOUGH_MEMORY},
        {AIO_FAULT_DUPLICATE_HANDLE, ERROR_NOT_ENOUGH_MEMORY},
        {AIO_FAULT_ALLOC, ENOMEM},
    };
    for (size_t f = 0; f < sizeof(faults) / sizeof(faults[0]); f++) {
        AioContext *ctx = tc_ctx_new();
        AioEventNotifier *n = aio_event_notifier_new(false);
        notifier_reader nr = {.n = n};
        cr_assert_eq(aio_set_event_notifier(ctx, n, false, notifier_cb, NULL, &nr), 0);
        aio__fault_arm(faults[f].kind, 1, faults[f].err);
        int r = aio_embed_attach(ctx, NULL);
        bool fired = aio__fault_fired(faults[f].kind);
        aio__fault_disarm();
        cr_assert(fired, "%s: no such call in attach", aio__fault_name(faults[f].kind));
        cr_assert_lt(r, 0, "%s: attach succeeded", aio__fault_name(faults[f].kind));
        cr_assert_null(aio_embed_host(ctx));
        int64_t ns;
        cr_assert_eq(aio_embed_prepare(ctx, &ns), -EINVAL, "attached after a failed attach");
        /* Usable as before, then attachable. */
        atomic_int ran = 0;
        aio_bh_schedule_oneshot(ctx, tc_count_cb, &ran);
        cr_assert(tc_poll_until(ctx, &ran, 1, TC_BOUND_MS));
        cr_assert_eq(aio_embed_attach(ctx, NULL), 0);
        tc_thread *t = tc_thread_start(set_notifier_later, n);
        cr_assert(host_run_until(ctx, &nr.count, 1));
        cr_assert(tc_thread_join(t, TC_BOUND_MS));
        cr_assert_eq(aio_set_event_notifier(ctx, n, false, NULL, NULL, NULL), 0);
        aio_event_notifier_free(n);
        embedded_free(ctx);
    }
}

/* A re-attach starts the watcher again, so it can fail the same way: no
 * thread, no duplicate of a notifier's handle. It changes nothing then, and
 * the next one works. */
Test(embed_win32, reattach_fails_cleanly_without_thread_or_duplicate, .timeout = 30)
{
    static const AioFaultKind kinds[] = {AIO_FAULT_THREAD, AIO_FAULT_DUPLICATE_HANDLE};
    for (size_t f = 0; f < sizeof(kinds) / sizeof(kinds[0]); f++) {
        AioContext *ctx = tc_ctx_new();
        AioEventNotifier *n = aio_event_notifier_new(false);
        notifier_reader nr = {.n = n};
        cr_assert_eq(aio_set_event_notifier(ctx, n, false, notifier_cb, NULL, &nr), 0);
        cr_assert_eq(aio_embed_attach(ctx, NULL), 0);
        cr_assert_eq(aio_embed_detach(ctx), 0);
        aio__fault_arm(kinds[f], 1, ERROR_NOT_ENOUGH_MEMORY);
        int r = aio_embed_attach(ctx, NULL);
        bool fired = aio__fault_fired(kinds[f]);
        aio__fault_disarm();
        cr_assert(fired, "%s: no such call in a re-attach", aio__fault_name(kinds[f]));
        cr_assert_lt(r, 0, "%s: re-attach succeeded", aio__fault_name(kinds[f]));
        cr_assert_null(aio_embed_host(ctx));
        tc_thread *t = tc_thread_start(set_notifier_later, n);
        cr_assert(tc_poll_until(ctx, &nr.count, 1, TC_BOUND_MS));
        cr_assert(tc_thread_join(t, TC_BOUND_MS));
        cr_assert_eq(aio_embed_attach(ctx, NULL), 0);
        t = tc_thread_start(set_notifier_later, n);
        cr_assert(host_run_until(ctx, &nr.count, 2));
        cr_assert(tc_thread_join(t, TC_BOUND_MS));
        cr_assert_eq(aio_set_event_notifier(ctx, n, false, NULL, NULL, NULL), 0);
        aio_event_notifier_free(n);
        embedded_free(ctx);
    }
}
