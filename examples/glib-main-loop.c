/* SPDX-License-Identifier: MIT */
/*
 * A GLib application whose main loop also drives an aiopoll context, next to
 * an IOThread-style context on a thread of its own (QEMU's shape: the main
 * loop's AioContext is a GSource, each IOThread sleeps in aio_poll).
 *
 * The main loop hands jobs to the IOThread with bottom halves; the IOThread
 * "completes" each one and hands the result back to the main context with a
 * bottom half, which GLib dispatches. A timer of the main context ticks
 * through GLib's timeout, and a GLib idle callback waits for the IOThread in
 * a nested aio_poll(main_ctx, true), as QEMU's AIO_WAIT_WHILE does.
 */
#include <aiopoll/glib.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>

#define JOBS 5

typedef struct App {
    GMainLoop *loop;
    AioContext *main_ctx; /* driven by the GLib main loop */
    AioContext *io_ctx;   /* the IOThread's */
    pthread_t io_thread;
    atomic_bool io_stop;
    atomic_int io_ready;
    int completed;
    int ticks;
    AioTimer *tick;
    atomic_int waited;
} App;

typedef struct Job {
    App *app;
    int n;
    int result;
} Job;

static void *io_main(void *opaque)
{
    App *app = opaque;
    app->io_ctx = aio_context_new(); /* this thread is its home */
    atomic_store(&app->io_ready, 1);
    while (!atomic_load(&app->io_stop)) {
        aio_poll(app->io_ctx, true);
    }
    /* Not freed here: the thread that scheduled the stop BH may still be
     * inside aio_bh_schedule_oneshot() on this context when the BH has run
     * (it notifies after the push). The main thread frees it after the
     * join. */
    return NULL;
}

/* Main context, from GLib's dispatch of our GSource. */
static void job_done(void *opaque)
{
    Job *job = opaque;
    App *app = job->app;
    printf("main loop: job %d -> %d\n", job->n, job->result);
    g_free(job);
    if (++app->completed == JOBS) {
        g_main_loop_quit(app->loop);
    }
}

/* IOThread. */
static void job_run(void *opaque)
{
    Job *job = opaque;
    job->result = job->n * job->n;
    aio_bh_schedule_oneshot(job->app->main_ctx, job_done, job);
}

static void on_tick(void *opaque)
{
    App *app = opaque;
    printf("main loop: tick %d (an aiopoll timer, through GLib's timeout)\n", ++app->ticks);
    if (app->ticks < 3) {
        aio_timer_mod(app->tick, aio_clock_ns() + 10 * 1000000);
    }
}

static void io_ping(void *opaque)
{
    App *app = opaque;
    atomic_store(&app->waited, 1);
    aio_notify(app->main_ctx);
}

/* Not one of aiopoll's callbacks: an ordinary GLib idle callback that waits
 * for the IOThread in a nested blocking poll of the main context. */
static gboolean wait_for_iothread(gpointer opaque)
{
    App *app = opaque;
    aio_bh_schedule_oneshot(app->io_ctx, io_ping, app);
    while (!atomic_load(&app->waited)) {
        aio_poll(app->main_ctx, true);
    }
    printf("main loop: the IOThread answered a nested blocking poll\n");
    for (int i = 1; i <= JOBS; i++) {
        Job *job = g_new0(Job, 1);
        job->app = app;
        job->n = i;
        aio_bh_schedule_oneshot(app->io_ctx, job_run, job);
    }
    return G_SOURCE_REMOVE;
}

static void io_stop(void *opaque)
{
    atomic_store(&((App *)opaque)->io_stop, true);
}

int main(void)
{
    App app = {0};
    app.loop = g_main_loop_new(NULL, FALSE);
    app.main_ctx = aio_context_new();
    GSource *src = aio_context_gsource_new(app.main_ctx);
    if (!src) {
        fprintf(stderr, "aio_context_gsource_new failed (backend %s)\n",
                aio_context_backend(app.main_ctx));
        return 1;
    }
    g_source_attach(src, NULL);
    printf("main context on %s, driven by GLib\n", aio_context_backend(app.main_ctx));

    pthread_create(&app.io_thread, NULL, io_main, &app);
    while (!atomic_load(&app.io_ready)) {
        sched_yield();
    }
    app.tick = aio_timer_new(app.main_ctx, on_tick, &app);
    aio_timer_mod(app.tick, aio_clock_ns() + 10 * 1000000);
    g_idle_add(wait_for_iothread, &app);

    g_main_loop_run(app.loop);
    while (app.ticks < 3) {
        g_main_context_iteration(NULL, TRUE);
    }

    aio_bh_schedule_oneshot(app.io_ctx, io_stop, &app);
    pthread_join(app.io_thread, NULL);
    aio_context_unref(app.io_ctx);
    aio_timer_free(app.tick);
    g_source_destroy(src);
    g_source_unref(src);
    aio_context_unref(app.main_ctx);
    g_main_loop_unref(app.loop);
    printf("done: %d jobs, %d ticks\n", app.completed, app.ticks);
    return 0;
}
