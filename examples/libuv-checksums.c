/* SPDX-License-Identifier: MIT */
/*
 * A libuv program whose uv_loop_t also drives an aiopoll context: the loop's
 * own timer hands checksum jobs to the context's worker pool, whose
 * completions the loop dispatches; a plain thread signals an event notifier
 * of the context; an aiopoll timer fires through the loop's timeout, and
 * ends the program by detaching the context from inside its own callback.
 */
#include <aiopoll/libuv.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOBS 4
#define BLOCK (1 << 20)

typedef struct App {
    uv_loop_t loop;
    uv_timer_t tick;      /* libuv's own: one job per tick */
    AioContext *ctx;      /* driven by the loop */
    AioEventNotifier *ev; /* set by the signalling thread */
    AioTimer *finish;     /* aiopoll's own, through the loop's timeout */
    int submitted, completed, notified;
    int64_t finish_at;
} App;

typedef struct Job {
    App *app;
    int n;
    unsigned char *data;
    uint32_t sum;
} Job;

/* A worker thread of the context's pool: Adler-32 of one block. */
static int checksum(void *arg)
{
    Job *j = arg;
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < BLOCK; i++) {
        a = (a + j->data[i]) % 65521;
        b = (b + a) % 65521;
    }
    j->sum = b << 16 | a;
    return 0;
}

static void finish_cb(void *opaque)
{
    App *app = opaque;
    printf("aiopoll timer: fired %s its deadline\n",
           aio_clock_ns() >= app->finish_at ? "at or after" : "BEFORE");
    aio_timer_free(app->finish);
    app->finish = NULL;
    /* From inside the context's own callback: the adapter's handles close
     * with the loop's next iteration, and nothing else keeps it running. */
    aio_context_detach_uv_loop(app->ctx);
}

/* The loop's thread, dispatched through the context. */
static void job_done(void *opaque, int ret)
{
    Job *j = opaque;
    App *app = j->app;
    printf("job %d: adler32 %08x (ret %d)\n", j->n, (unsigned)j->sum, ret);
    free(j->data);
    free(j);
    if (++app->completed == JOBS) {
        app->finish_at = aio_clock_ns() + 20 * 1000 * 1000;
        app->finish = aio_timer_new(app->ctx, finish_cb, app);
        aio_timer_mod(app->finish, app->finish_at);
    }
}

/* libuv's timer callback: a plain libuv callback handing work to aiopoll. */
static void on_tick(uv_timer_t *t)
{
    App *app = t->data;
    Job *j = calloc(1, sizeof(*j));
    j->app = app;
    j->n = app->submitted;
    j->data = malloc(BLOCK);
    if (!j->data) {
        fprintf(stderr, "no memory for job %d\n", j->n);
        exit(1);
    }
    /* Filled before the submission: a worker may start on it at once. */
    memset(j->data, 'a' + j->n, BLOCK);
    if (!aio_work_submit(app->ctx, checksum, j, job_done, j)) {
        fprintf(stderr, "cannot submit job %d\n", j->n);
        exit(1);
    }
    if (++app->submitted == JOBS) {
        uv_close((uv_handle_t *)t, NULL);
    }
}

static void on_notified(void *opaque)
{
    App *app = opaque;
    if (aio_event_notifier_test_and_clear(app->ev)) {
        app->notified++;
        printf("event notifier: set by another thread, seen on the loop's thread\n");
    }
}

static void *signaller(void *opaque)
{
    App *app = opaque;
    aio_event_notifier_set(app->ev);
    return NULL;
}

int main(void)
{
    App app = {0};
    uv_loop_init(&app.loop);
    app.ctx = aio_context_new();
    if (!app.ctx) {
        perror("aio_context_new");
        return 1;
    }
    int err = aio_context_attach_uv_loop(app.ctx, &app.loop);
    if (err) {
        fprintf(stderr, "attach: %s\n", aio_strerror(err));
        return 1;
    }
    printf("context on %s, driven by libuv %s\n", aio_context_backend(app.ctx),
           uv_version_string());
    app.ev = aio_event_notifier_new(false);
    aio_set_event_notifier(app.ctx, app.ev, false, on_notified, NULL, &app);
    pthread_t t;
    pthread_create(&t, NULL, signaller, &app);

    uv_timer_init(&app.loop, &app.tick);
    app.tick.data = &app;
    uv_timer_start(&app.tick, on_tick, 5, 5);

    uv_run(&app.loop, UV_RUN_DEFAULT);
    uv_run(&app.loop, UV_RUN_DEFAULT); /* the adapter's closing handles */
    pthread_join(t, NULL);

    aio_set_event_notifier(app.ctx, app.ev, false, NULL, NULL, NULL);
    aio_event_notifier_free(app.ev);
    aio_context_unref(app.ctx);
    int closed = uv_loop_close(&app.loop);
    printf("done: %d checksums, %d notification, loop %s\n", app.completed, app.notified,
           closed == 0 ? "closed" : "busy");
    return app.completed == JOBS && app.notified == 1 && closed == 0 ? 0 : 1;
}
