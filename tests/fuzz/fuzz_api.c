/* SPDX-License-Identifier: MIT */
/*
 * A libFuzzer target that drives random sequences of the public API from a
 * byte string and checks the promises of aio.h against a model:
 *  - a scheduled BH runs exactly once unless cancelled or deleted, in
 *    scheduling order, also across nested polls; a deleted BH never runs;
 *  - no handler runs after its removal (or replacement) returned on the
 *    dispatching thread; a timer never fires early, nor after aio_timer_del;
 *  - no blocking poll sleeps while a BH is scheduled (an alarm() watchdog
 *    aborts it; when the model knows of no work, a guard timer bounds it);
 *  - nothing leaks (LeakSanitizer checks every input) or touches freed
 *    memory, also when the last reference is dropped inside a callback.
 * Callbacks take bytes from the same string to act from inside the dispatch
 * (nested polls, deleting, re-registering, unref), descriptors are closed
 * before their handlers are removed (with the file kept alive by a dup), and
 * some operations run on a second thread. The backend comes from
 * AIOPOLL_BACKEND, so one binary fuzzes every POSIX backend.
 *
 * Byte layout: each operation is one byte (its low 5 bits choose it) and
 * its arguments the following bytes; the input ends the run when it ends.
 */
#include <aiopoll/aio.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NBH 6
#define NTIMER 4
#define NPIPE 4
#define NNOTE 3
#define MAX_DEPTH 3
#define WATCHDOG_S 3

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "fuzz_api: invariant broken: " __VA_ARGS__);  \
            fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__);            \
            abort();                                                      \
        }                                                                 \
    } while (0)

typedef struct BhModel {
    AioBH *bh;
    bool live;
    bool pending;     /* scheduled and neither run nor cancelled since */
    bool order_known; /* its place in the order is known */
    bool cancelled;   /* cancelled since it last ran: it may still sit at
                       * its old place in the queue (aio.h) */
    uint64_t seq;
} BhModel;

typedef struct TimerModel {
    AioTimer *t;
    bool armed;
    int64_t deadline;
} TimerModel;

typedef struct PipeModel {
    int r, w;        /* the user's descriptors; r is -1 once closed */
    int keep;        /* our dup of the read end: the file outlives close(r) */
    int reg_fd;      /* the number it was registered under, -1 if not */
    unsigned token;  /* changes with every (re)registration and removal */
    bool rd, wr;     /* handlers registered */
} PipeModel;

typedef struct NoteModel {
    AioEventNotifier *n;
    bool registered;
    unsigned token;
} NoteModel;

typedef struct Fuzz {
    const uint8_t *data;
    size_t len, pos;
    AioContext *ctx;
    bool dying; /* the last reference was dropped inside a callback */
    int depth;
    BhModel bh[NBH];
    TimerModel tm[NTIMER];
    PipeModel pipe[NPIPE];
    NoteModel note[NNOTE];
    uint64_t next_seq, last_seq;
    int oneshots; /* scheduled and not yet run */
    unsigned next_token;
    AioTimer *guard;
    bool guard_armed;
} Fuzz;

static Fuzz F;

static uint8_t take(void)
{
    return F.pos < F.len ? F.data[F.pos++] : 0;
}

static bool alive(void)
{
    return F.ctx && !F.dying;
}

static void run_op(void);

/* From inside a callback: maybe act, with the next bytes. */
static void nested(void)
{
    if (F.depth < MAX_DEPTH && (take() & 3) == 3) {
        F.depth++;
        run_op();
        F.depth--;
    }
}

/* ---- callbacks ---------------------------------------------------------- */

static void bh_cb(void *opaque)
{
    int i = (int)(intptr_t)opaque;
    BhModel *m = &F.bh[i];
    CHECK(m->live, "BH %d ran after aio_bh_delete", i);
    CHECK(m->pending, "BH %d ran while not scheduled (twice, or after cancel)", i);
    if (m->order_known) {
        CHECK(m->seq > F.last_seq, "BH %d (scheduled #%llu) ran after #%llu: order", i,
              (unsigned long long)m->seq, (unsigned long long)F.last_seq);
        F.last_seq = m->seq;
    }
    m->pending = false;
    m->cancelled = false;
    nested();
}

static void oneshot_cb(void *opaque)
{
    (void)opaque;
    CHECK(F.oneshots > 0, "a oneshot BH ran twice");
    F.oneshots--;
    nested();
}

static void timer_cb(void *opaque)
{
    int i = (int)(intptr_t)opaque;
    TimerModel *m = &F.tm[i];
    CHECK(m->armed, "timer %d fired while disarmed", i);
    CHECK(aio_clock_ns() >= m->deadline, "timer %d fired early", i);
    m->armed = false;
    nested();
}

static void guard_cb(void *opaque)
{
    (void)opaque;
    F.guard_armed = false;
}

/* opaque encodes (index << 16 | token): a stale handler sees a stale token. */
static void *fd_opaque(int i, unsigned token)
{
    return (void *)(uintptr_t)(((unsigned)i << 16) | (token & 0xffff));
}

static void fd_check(void *opaque, bool want_rd)
{
    int i = (int)((uintptr_t)opaque >> 16);
    unsigned token = (unsigned)(uintptr_t)opaque & 0xffff;
    PipeModel *p = &F.pipe[i];
    CHECK((p->token & 0xffff) == token, "pipe %d: a removed or replaced handler ran", i);
    CHECK(want_rd ? p->rd : p->wr, "pipe %d: a handler that is not registered ran", i);
}

static void fd_read_cb(void *opaque)
{
    fd_check(opaque, true);
    int i = (int)((uintptr_t)opaque >> 16);
    char buf[64];
    if (take() & 1) { /* drain, or leave it level-triggered */
        while (read(F.pipe[i].keep, buf, sizeof(buf)) > 0) {
        }
    }
    nested();
}

static void fd_write_cb(void *opaque)
{
    fd_check(opaque, false);
    nested();
}

static void note_cb(void *opaque)
{
    int i = (int)((uintptr_t)opaque >> 16);
    unsigned token = (unsigned)(uintptr_t)opaque & 0xffff;
    CHECK(F.note[i].registered && (F.note[i].token & 0xffff) == token,
          "notifier %d: a removed handler ran", i);
    if (take() & 1) {
        aio_event_notifier_test_and_clear(F.note[i].n);
    }
    nested();
}

/* ---- the watchdog -------------------------------------------------------- */

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] =
        "fuzz_api: invariant broken: a blocking aio_poll slept with work pending\n";
    (void)!write(2, msg, sizeof(msg) - 1);
    abort();
}

/* Whether the model knows of work that must end a blocking poll at once. */
static bool work_pending(void)
{
    if (F.oneshots > 0) {
        return true;
    }
    for (int i = 0; i < NBH; i++) {
        if (F.bh[i].live && F.bh[i].pending) {
            return true;
        }
    }
    return false;
}

/* ---- operations ---------------------------------------------------------- */

static void model_schedule(BhModel *m)
{
    if (!m->pending) {
        m->pending = true;
        m->order_known = !m->cancelled;
        m->seq = ++F.next_seq;
    }
}

static void op_bh(uint8_t arg)
{
    int i = arg % NBH;
    BhModel *m = &F.bh[i];
    switch ((arg >> 3) & 3) {
    case 0:
        if (!m->live) {
            m->bh = aio_bh_new(F.ctx, bh_cb, (void *)(intptr_t)i);
            CHECK(m->bh, "aio_bh_new failed");
            *m = (BhModel){.bh = m->bh, .live = true};
        }
        break;
    case 1:
        if (m->live) {
            model_schedule(m);
            aio_bh_schedule(m->bh);
        }
        break;
    case 2:
        if (m->live) {
            aio_bh_cancel(m->bh);
            if (m->pending) {
                /* It may still run at its old place if re-scheduled before
                 * a dispatch drops it, or at a new one: do not check. */
                m->pending = false;
            }
            m->order_known = false;
            m->cancelled = true;
        }
        break;
    case 3:
        if (m->live) {
            aio_bh_delete(m->bh);
            m->live = false;
            m->pending = false;
        }
        break;
    }
}

static void op_timer(uint8_t arg)
{
    int i = arg % NTIMER;
    TimerModel *m = &F.tm[i];
    if (!m->t) {
        m->t = aio_timer_new(F.ctx, timer_cb, (void *)(intptr_t)i);
        CHECK(m->t, "aio_timer_new failed");
    }
    uint8_t when = take();
    if (arg & 0x20) {
        aio_timer_del(m->t);
        m->armed = false;
        return;
    }
    int64_t now = aio_clock_ns();
    /* In the past, exactly now, or up to ~1 ms ahead. */
    int64_t deadline = when < 16 ? now - when : now + (int64_t)(when - 16) * 4000;
    m->deadline = deadline;
    m->armed = true;
    aio_timer_mod(m->t, deadline);
}

static void pipe_open(PipeModel *p)
{
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe failed");
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    p->r = fds[0];
    p->w = fds[1];
    p->keep = dup(fds[0]);
    p->reg_fd = -1;
    p->rd = p->wr = false;
}

static void op_fd(uint8_t arg)
{
    int i = arg % NPIPE;
    PipeModel *p = &F.pipe[i];
    if (p->w < 0) {
        pipe_open(p);
    }
    switch ((arg >> 2) & 7) {
    case 0: /* register or replace */
    case 1: {
        if (p->r < 0 && p->reg_fd < 0) {
            break; /* closed and not registered: nothing to name */
        }
        int fd = p->reg_fd >= 0 ? p->reg_fd : p->r;
        bool rd = arg & 0x20, wr = arg & 0x40;
        if (!rd && !wr) {
            rd = true;
        }
        if (p->r < 0) {
            break; /* re-registering a closed number would name whatever reuses it */
        }
        /* The user's key is the number: a registration of another pipe
         * under a number reused since its close is replaced by this one. */
        for (int j = 0; j < NPIPE; j++) {
            if (j != i && F.pipe[j].reg_fd == fd) {
                F.pipe[j].token = ++F.next_token;
                F.pipe[j].rd = F.pipe[j].wr = false;
                F.pipe[j].reg_fd = -1;
            }
        }
        unsigned token = ++F.next_token;
        int ret = aio_set_fd_handler(F.ctx, fd, false, rd ? fd_read_cb : NULL,
                                     wr ? fd_write_cb : NULL, NULL, fd_opaque(i, token));
        CHECK(ret == 0, "aio_set_fd_handler: %s", aio_strerror(ret));
        p->token = token;
        p->reg_fd = fd;
        p->rd = rd;
        p->wr = wr;
        break;
    }
    case 2: /* remove (also after close) */
        if (p->reg_fd >= 0) {
            p->token = ++F.next_token;
            p->rd = p->wr = false;
            int ret = aio_set_fd_handler(F.ctx, p->reg_fd, false, NULL, NULL, NULL, NULL);
            CHECK(ret == 0, "removing a handler: %s", aio_strerror(ret));
            p->reg_fd = -1;
        }
        break;
    case 3: /* close the user's descriptor before removing the handler */
        if (p->r >= 0 && p->reg_fd >= 0) {
            close(p->r);
            p->r = -1;
        }
        break;
    case 4:
    case 5: {
        char c = 'x';
        (void)!write(p->w, &c, 1);
        break;
    }
    default: {
        char buf[64];
        while (read(p->keep, buf, sizeof(buf)) > 0) {
        }
        break;
    }
    }
}

static void op_note(uint8_t arg)
{
    int i = arg % NNOTE;
    NoteModel *m = &F.note[i];
    if (!m->n) {
        m->n = aio_event_notifier_new(false);
        CHECK(m->n, "aio_event_notifier_new failed");
    }
    switch ((arg >> 2) & 3) {
    case 0: {
        unsigned token = ++F.next_token;
        int ret = aio_set_event_notifier(F.ctx, m->n, false, note_cb, NULL,
                                         fd_opaque(i, token));
        CHECK(ret == 0, "aio_set_event_notifier: %s", aio_strerror(ret));
        m->token = token;
        m->registered = true;
        break;
    }
    case 1:
        m->token = ++F.next_token;
        m->registered = false;
        CHECK(aio_set_event_notifier(F.ctx, m->n, false, NULL, NULL, NULL) == 0,
              "removing a notifier");
        break;
    case 2:
        aio_event_notifier_set(m->n);
        break;
    default:
        /* Removal returned: the notifier may be freed at once. */
        if (!m->registered) {
            aio_event_notifier_free(m->n);
            m->n = NULL;
        }
        break;
    }
}

static void poll_blocking(void)
{
    if (!aio_context_in_home_thread(F.ctx)) {
        CHECK(aio_poll(F.ctx, true) == -EPERM, "a foreign blocking poll was not refused");
        return;
    }
    if (!work_pending()) {
        if (!F.guard) {
            F.guard = aio_timer_new(F.ctx, guard_cb, NULL);
        }
        aio_timer_mod(F.guard, aio_clock_ns() + 100 * 1000);
        F.guard_armed = true;
    }
    alarm(WATCHDOG_S);
    int ret = aio_poll(F.ctx, true);
    alarm(0);
    CHECK(ret >= 0, "aio_poll(true): %s", aio_strerror(ret));
}

typedef struct Remote {
    int what;
    int arg;
} Remote;

static void *remote_main(void *opaque)
{
    Remote *r = opaque;
    switch (r->what) {
    case 0:
        aio_notify(F.ctx);
        break;
    case 1:
        aio_bh_schedule(F.bh[r->arg].bh);
        break;
    default: {
        int ret = aio_poll(F.ctx, false); /* callbacks may run here */
        CHECK(ret >= 0, "foreign aio_poll(false): %s", aio_strerror(ret));
        if (!F.dying) { /* a callback here may have dropped the last reference */
            CHECK(aio_poll(F.ctx, true) == -EPERM, "a foreign blocking poll was not refused");
        }
        break;
    }
    }
    return NULL;
}

static void op_remote(uint8_t arg)
{
    if (F.depth > 0) {
        return; /* a callback waiting for another thread's poll would deadlock it */
    }
    Remote r = {.what = arg % 3, .arg = (arg >> 2) % NBH};
    if (r.what == 1) {
        BhModel *m = &F.bh[r.arg];
        if (!m->live) {
            return;
        }
        model_schedule(m);
    }
    pthread_t t;
    CHECK(pthread_create(&t, NULL, remote_main, &r) == 0, "pthread_create");
    pthread_join(t, NULL);
}

static void op_misc(uint8_t arg)
{
    switch (arg % 6) {
    case 0:
        if (aio_bh_schedule_oneshot(F.ctx, oneshot_cb, NULL) == 0) {
            F.oneshots++;
        }
        break;
    case 1:
        aio_disable_external(F.ctx);
        aio_enable_external(F.ctx);
        break;
    case 2: {
        int64_t max = (int64_t)take() * 1000;
        int64_t grow = take() == 255 ? INT64_MAX : (int64_t)(arg >> 3);
        int64_t shrink = (int64_t)(take() & 7);
        (void)aio_context_set_poll_params(F.ctx, max, grow == 1 ? 2 : grow, shrink);
        break;
    }
    case 3:
        aio_context_ref(F.ctx);
        aio_context_unref(F.ctx);
        break;
    case 4:
        /* The last reference, dropped from inside a callback: the context
         * must stay usable until the outermost aio_poll returns. */
        if (F.depth > 0) {
            F.dying = true;
            aio_context_unref(F.ctx);
        }
        break;
    default:
        aio_notify(F.ctx);
        break;
    }
}

static void run_op(void)
{
    if (!alive()) {
        return;
    }
    uint8_t op = take();
    uint8_t arg = take();
    switch (op % 9) {
    case 0:
        op_bh(arg);
        break;
    case 1:
        op_timer(arg);
        break;
    case 2:
        op_fd(arg);
        break;
    case 3:
        op_note(arg);
        break;
    case 4: {
        int ret = aio_poll(F.ctx, false);
        CHECK(ret >= 0, "aio_poll(false): %s", aio_strerror(ret));
        break;
    }
    case 5:
        poll_blocking();
        break;
    case 6:
        op_remote(arg);
        break;
    default:
        op_misc(arg);
        break;
    }
}

/* ---- one input --------------------------------------------------------------- */

static void forget_context_objects(void)
{
    /* The context freed its BHs, timers and registrations. */
    for (int i = 0; i < NBH; i++) {
        F.bh[i] = (BhModel){0};
    }
    for (int i = 0; i < NTIMER; i++) {
        F.tm[i] = (TimerModel){0};
    }
    F.guard = NULL;
    F.oneshots = 0;
    for (int i = 0; i < NPIPE; i++) {
        F.pipe[i].reg_fd = -1;
    }
    for (int i = 0; i < NNOTE; i++) {
        F.note[i].registered = false;
    }
    F.ctx = NULL;
}

static void finish(void)
{
    if (F.ctx && !F.dying) {
        /* Everything scheduled must run without any further help. */
        for (int i = 0; i < 64 && aio_poll(F.ctx, false) > 0; i++) {
        }
        if (!F.dying) {
            CHECK(!work_pending(), "a scheduled BH never ran (lost)");
            for (int i = 0; i < NBH; i++) {
                if (F.bh[i].live) {
                    aio_bh_delete(F.bh[i].bh);
                }
            }
            for (int i = 0; i < NTIMER; i++) {
                aio_timer_free(F.tm[i].t);
            }
            aio_timer_free(F.guard);
            for (int i = 0; i < NPIPE; i++) {
                if (F.pipe[i].reg_fd >= 0) {
                    aio_set_fd_handler(F.ctx, F.pipe[i].reg_fd, false, NULL, NULL, NULL, NULL);
                }
            }
            for (int i = 0; i < NNOTE; i++) {
                if (F.note[i].registered) {
                    aio_set_event_notifier(F.ctx, F.note[i].n, false, NULL, NULL, NULL);
                }
            }
            aio_context_unref(F.ctx);
        }
    }
    forget_context_objects();
    for (int i = 0; i < NPIPE; i++) {
        PipeModel *p = &F.pipe[i];
        if (p->w >= 0) {
            if (p->r >= 0) {
                close(p->r);
            }
            close(p->w);
            close(p->keep);
        }
    }
    for (int i = 0; i < NNOTE; i++) {
        aio_event_notifier_free(F.note[i].n);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    memset(&F, 0, sizeof(F));
    for (int i = 0; i < NPIPE; i++) {
        F.pipe[i].r = F.pipe[i].w = F.pipe[i].keep = F.pipe[i].reg_fd = -1;
    }
    F.data = data;
    F.len = len;
    F.ctx = aio_context_new();
    CHECK(F.ctx, "aio_context_new failed (AIOPOLL_BACKEND?)");
    while (F.pos < F.len && alive()) {
        run_op();
    }
    if (F.dying) {
        /* The outermost poll that ran the unref destroyed it on return. */
        F.ctx = NULL;
    }
    finish();
    return 0;
}
