/* SPDX-License-Identifier: MIT */
/*
 * The first program to run: a main thread and an "IOThread", as in QEMU.
 *
 * The IOThread owns a context and sleeps in aio_poll(ctx, true). The main
 * thread hands it work with bottom halves (aio_bh_schedule_oneshot) from its
 * own thread, changes a setting and wakes it with aio_notify(), a timer ticks
 * inside the IOThread, the main thread shows that it may poll the IOThread's
 * context without blocking but may not block in it, and a final bottom half
 * asks the IOThread to stop.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aiopoll/aio.h>

#define JOBS 5
#define TICK_MS 20

typedef struct IOThread {
    pthread_t thread;
    AioContext *ctx;
    AioTimer *tick;
    int ticks;
    atomic_int jobs_done;
    atomic_bool stopping;
    atomic_int tick_ms;  /* a setting the main thread changes */
    int seen_tick_ms;    /* IOThread only */
    pthread_mutex_t lock;
    pthread_cond_t ready;
    bool started;
} IOThread;

static void on_tick(void *opaque)
{
    IOThread *io = opaque;
    io->ticks++;
    printf("  [iothread] timer tick %d\n", io->ticks);
    aio_timer_mod(io->tick, aio_clock_ns() + (int64_t)atomic_load(&io->tick_ms) * 1000000);
}

static void do_job(void *opaque)
{
    IOThread *io = opaque;
    int n = atomic_fetch_add(&io->jobs_done, 1) + 1;
    /* Whoever holds the context's dispatch right runs its callbacks: usually
     * the IOThread, sometimes the main thread's non-blocking poll. Never
     * both at once. */
    printf("  [%s] ran job %d\n",
           aio_context_in_home_thread(io->ctx) ? "iothread" : "main thread, non-blocking poll", n);
}

static void do_stop(void *opaque)
{
    IOThread *io = opaque;
    printf("  [iothread] stop requested\n");
    atomic_store(&io->stopping, true);
}

static void *iothread_run(void *opaque)
{
    IOThread *io = opaque;
    /* The context is created here so that this thread is its home: the only
     * thread allowed to block in it. */
    io->ctx = aio_context_new();
    if (!io->ctx) {
        perror("aio_context_new");
        exit(1);
    }
    io->tick = aio_timer_new(io->ctx, on_tick, io);
    io->seen_tick_ms = atomic_load(&io->tick_ms);
    aio_timer_mod(io->tick, aio_clock_ns() + (int64_t)io->seen_tick_ms * 1000000);

    pthread_mutex_lock(&io->lock);
    io->started = true;
    pthread_cond_signal(&io->ready);
    pthread_mutex_unlock(&io->lock);

    while (!atomic_load(&io->stopping)) {
        int r = aio_poll(io->ctx, true);
        if (r < 0) {
            fprintf(stderr, "aio_poll: %s\n", aio_strerror(r));
            exit(1);
        }
        /* A plain aio_notify() runs no callback: the poll returns (0 when
         * nothing else was ready) and the loop looks at what changed. */
        int tick_ms = atomic_load(&io->tick_ms);
        if (tick_ms != io->seen_tick_ms) {
            printf("  [iothread] woken by aio_notify (aio_poll = %d): tick interval %d -> %d ms\n",
                   r, io->seen_tick_ms, tick_ms);
            io->seen_tick_ms = tick_ms;
            aio_timer_mod(io->tick, aio_clock_ns() + (int64_t)tick_ms * 1000000);
        }
    }
    aio_timer_free(io->tick);
    return NULL;
}

int main(void)
{
    IOThread io = {.lock = PTHREAD_MUTEX_INITIALIZER, .ready = PTHREAD_COND_INITIALIZER};
    atomic_init(&io.tick_ms, TICK_MS);
    printf("aiopoll %s iothread demo\n", aiopoll_version());

    pthread_create(&io.thread, NULL, iothread_run, &io);
    pthread_mutex_lock(&io.lock);
    while (!io.started) {
        pthread_cond_wait(&io.ready, &io.lock);
    }
    pthread_mutex_unlock(&io.lock);
    printf("backend: %s\n", aio_context_backend(io.ctx));

    /* Rule 1: only the home thread may block. The main thread is refused at
     * once, and its attempt leaves the IOThread's wake-ups alone. */
    int r = aio_poll(io.ctx, true);
    printf("main thread: aio_poll(iothread ctx, blocking) = %d (%s)\n", r, aio_strerror(r));

    for (int i = 0; i < JOBS; i++) {
        aio_bh_schedule_oneshot(io.ctx, do_job, &io);
        printf("main thread: handed over job %d\n", i + 1);
        if (i == 0) {
            /* Rule 2: a non-blocking poll from another thread is allowed,
             * never sleeps and never consumes the IOThread's wake-up. It may
             * run the job itself, or return 0 when the IOThread already
             * holds the right to dispatch. */
            r = aio_poll(io.ctx, false);
            printf("main thread: non-blocking poll of the iothread's context = %d\n", r);
        }
        struct timespec ts = {0, 15 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }

    /* Rule 3: aio_notify() is never lost. Change a setting, then wake the
     * IOThread so that it looks at it now rather than at its next event. */
    atomic_store(&io.tick_ms, TICK_MS / 2);
    aio_notify(io.ctx);
    printf("main thread: tick interval set to %d ms, aio_notify()\n", TICK_MS / 2);
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    while (atomic_load(&io.jobs_done) < JOBS) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }

    aio_bh_schedule_oneshot(io.ctx, do_stop, &io);
    pthread_join(io.thread, NULL);
    printf("done: %d jobs ran, %d timer ticks, backend %s\n",
           atomic_load(&io.jobs_done), io.ticks, aio_context_backend(io.ctx));
    aio_context_unref(io.ctx);
    return atomic_load(&io.jobs_done) == JOBS && io.ticks > 0 ? 0 : 1;
}
