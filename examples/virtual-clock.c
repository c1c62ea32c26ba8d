/* SPDX-License-Identifier: MIT */
/*
 * A paused virtual clock: a "device" timer ticks every 10 ms of virtual
 * time. The guest is paused (aio_virtual_clock_stop) for 100 ms of real
 * time, during which no tick fires; after the resume the clock continues
 * where it stopped, so the device never sees the pause. Then the clock is
 * stepped by hand (aio_virtual_clock_set_ns), as a record/replay or a test
 * would, firing exactly the ticks that became due.
 */
#include <aiopoll/aio.h>

#include <stdio.h>

#define MS 1000000LL

typedef struct Device {
    AioTimer *tick;
    int64_t next;
    int ticks;
} Device;

static void on_tick(void *opaque)
{
    Device *d = opaque;
    d->ticks++;
    d->next += 10 * MS;
    aio_timer_mod(d->tick, d->next);
}

static void on_wall(void *opaque)
{
    *(int *)opaque = 1;
}

/* Runs the loop for ms of real time. */
static void run_for(AioContext *ctx, int64_t ms)
{
    int done = 0;
    AioTimer *t = aio_timer_new(ctx, on_wall, &done);
    aio_timer_mod(t, aio_clock_ns() + ms * MS);
    while (!done) {
        aio_poll(ctx, true);
    }
    aio_timer_free(t);
}

int main(void)
{
    AioContext *ctx = aio_context_new();
    Device d = {0};
    d.tick = aio_timer_new_on(ctx, AIO_CLOCK_VIRTUAL, on_tick, &d);
    d.next = aio_clock_get_ns(AIO_CLOCK_VIRTUAL) + 10 * MS;
    aio_timer_mod(d.tick, d.next);

    run_for(ctx, 55);
    int running = d.ticks;
    aio_virtual_clock_stop();
    int64_t frozen = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    run_for(ctx, 100);
    int paused = d.ticks - running;
    int64_t after_pause = aio_clock_get_ns(AIO_CLOCK_VIRTUAL);
    aio_virtual_clock_start();
    run_for(ctx, 25);
    int resumed = d.ticks - running - paused;

    /* Stepping by hand: stop, then jump 50 ms of virtual time. */
    aio_virtual_clock_stop();
    int before_step = d.ticks;
    aio_virtual_clock_set_ns(d.next + 40 * MS); /* five ticks become due */
    while (aio_poll(ctx, false) > 0) {
    }
    int stepped = d.ticks - before_step;

    printf("running 55 ms: %d ticks; paused 100 ms: %d ticks (virtual clock stood at %lld, "
           "still %lld); resumed 25 ms: %d ticks; stepped 50 ms: %d ticks\n",
           running, paused, (long long)frozen, (long long)after_pause, resumed, stepped);
    aio_timer_free(d.tick);
    aio_context_unref(ctx);
    return paused == 0 && frozen == after_pause && stepped == 5 ? 0 : 1;
}
