/* SPDX-License-Identifier: MIT */
/*
 * Scenario "work": the worker pool against libuv's uv_queue_work and GLib's
 * GThreadPool + g_main_context_invoke, in the same run. Each contender keeps
 * a window of W no-op jobs in flight (every completion, in the loop thread,
 * submits the next) until N have completed: throughput in jobs/s. Then one
 * job at a time: latency of submit -> fn -> completion callback in the loop.
 * Four worker threads each (libuv's default pool size). Contenders run in
 * interleaved repetitions.
 */
#define _GNU_SOURCE
#include <aiopoll/aio.h>
#include <glib.h>
#include <uv.h>

#include <stdatomic.h>
#include <stdlib.h>

#include "bench-work.h"
#include "bench-util.h"

#define WORKERS 4
#define WINDOW 256

typedef struct job_run {
    long target;    /* completions wanted */
    long submitted;
    long completed;
    long window;
} job_run;

/* ---- aiopoll -------------------------------------------------------------- */

typedef struct ap_state {
    AioContext *ctx;
    job_run run;
} ap_state;

static volatile int sink;

static int ap_fn(void *arg)
{
    (void)arg;
    sink++;
    return 0;
}

static void ap_done(void *opaque, int ret);

static void ap_submit(ap_state *s)
{
    s->run.submitted++;
    aio_work_submit(s->ctx, ap_fn, NULL, ap_done, s);
}

static void ap_done(void *opaque, int ret)
{
    (void)ret;
    ap_state *s = opaque;
    s->run.completed++;
    if (s->run.submitted < s->run.target) {
        ap_submit(s);
    }
}

static double ap_throughput(ap_state *s, long n, long window)
{
    s->run = (job_run){.target = n, .window = window};
    int64_t t0 = bu_now_ns();
    for (long i = 0; i < window && i < n; i++) {
        ap_submit(s);
    }
    while (s->run.completed < n) {
        aio_poll(s->ctx, true);
    }
    return (double)n / ((double)(bu_now_ns() - t0) / 1e9);
}

/* ---- libuv ------------------------------------------------------------------ */

typedef struct uv_state {
    uv_loop_t loop;
    job_run run;
    uv_work_t *reqs;
} uv_state;

static void uvb_work(uv_work_t *req)
{
    (void)req;
    sink++;
}

static void uvb_after(uv_work_t *req, int status);

static void uvb_submit(uv_state *s, uv_work_t *req)
{
    s->run.submitted++;
    req->data = s;
    uv_queue_work(&s->loop, req, uvb_work, uvb_after);
}

static void uvb_after(uv_work_t *req, int status)
{
    (void)status;
    uv_state *s = req->data;
    s->run.completed++;
    if (s->run.submitted < s->run.target) {
        uvb_submit(s, req); /* the request is free again after this call */
    }
}

static double uv_throughput(uv_state *s, long n, long window)
{
    s->run = (job_run){.target = n, .window = window};
    int64_t t0 = bu_now_ns();
    for (long i = 0; i < window && i < n; i++) {
        uvb_submit(s, &s->reqs[i]);
    }
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return (double)n / ((double)(bu_now_ns() - t0) / 1e9);
}

/* ---- GLib ------------------------------------------------------------------- */

typedef struct gl_state {
    GMainContext *ctx;
    GThreadPool *pool;
    job_run run;
} gl_state;

static gboolean gl_done(gpointer data)
{
    gl_state *s = data;
    s->run.completed++;
    if (s->run.submitted < s->run.target) {
        s->run.submitted++;
        g_thread_pool_push(s->pool, s, NULL);
    }
    return G_SOURCE_REMOVE;
}

static void gl_fn(gpointer data, gpointer user)
{
    (void)user;
    gl_state *s = data;
    sink++;
    g_main_context_invoke(s->ctx, gl_done, s);
}

static double gl_throughput(gl_state *s, long n, long window)
{
    s->run = (job_run){.target = n, .window = window};
    int64_t t0 = bu_now_ns();
    for (long i = 0; i < window && i < n; i++) {
        s->run.submitted++;
        g_thread_pool_push(s->pool, s, NULL);
    }
    while (s->run.completed < n) {
        g_main_context_iteration(s->ctx, TRUE);
    }
    return (double)n / ((double)(bu_now_ns() - t0) / 1e9);
}

/* ---- the scenario ------------------------------------------------------------ */

void bench_work(bool quick)
{
    printf("\n== work pool: submit + complete (4 workers; window %d in flight for "
           "throughput, 1 for latency) ==\n",
           WINDOW);
    ap_state ap = {.ctx = aio_context_new()};
    aio_context_set_thread_pool_params(ap.ctx, 0, WORKERS);
    uv_state uvs;
    setenv("UV_THREADPOOL_SIZE", "4", 1);
    uv_loop_init(&uvs.loop);
    uvs.reqs = calloc(WINDOW, sizeof(*uvs.reqs));
    gl_state gl = {.ctx = g_main_context_new()};
    gl.pool = g_thread_pool_new(gl_fn, NULL, WORKERS, FALSE, NULL);
    /* The thread that iterates gl.ctx must own it, or g_main_context_invoke
     * runs the callback on the calling worker thread. */
    g_main_context_push_thread_default(gl.ctx);
    g_main_context_acquire(gl.ctx);

    long n = quick ? 20000 : 200000;
    int reps = quick ? 3 : 9;
    bu_samples t_ap = {0}, t_uv = {0}, t_gl = {0};
    bu_samples l_ap = {0}, l_uv = {0}, l_gl = {0};
    /* Warm-up: start every pool's threads. */
    ap_throughput(&ap, 1000, WINDOW);
    uv_throughput(&uvs, 1000, WINDOW);
    gl_throughput(&gl, 1000, WINDOW);
    for (int r = 0; r < reps; r++) {
        for (int k = 0; k < 3; k++) {
            switch ((r + k) % 3) {
            case 0: bu_add(&t_ap, ap_throughput(&ap, n, WINDOW)); break;
            case 1: bu_add(&t_uv, uv_throughput(&uvs, n, WINDOW)); break;
            case 2: bu_add(&t_gl, gl_throughput(&gl, n, WINDOW)); break;
            }
        }
        long m = quick ? 200 : 2000;
        for (int k = 0; k < 3; k++) {
            int which = (r + k) % 3;
            for (long i = 0; i < m; i++) {
                int64_t t0 = bu_now_ns();
                switch (which) {
                case 0: ap_throughput(&ap, 1, 1); break;
                case 1: uv_throughput(&uvs, 1, 1); break;
                case 2: gl_throughput(&gl, 1, 1); break;
                }
                double us = (double)(bu_now_ns() - t0) / 1e3;
                bu_add(which == 0 ? &l_ap : which == 1 ? &l_uv : &l_gl, us);
            }
        }
    }
    bu_report("work", "W=256", "aiopoll", "throughput", "jobs/s", true, &t_ap);
    bu_report("work", "W=256", "libuv", "throughput", "jobs/s", true, &t_uv);
    bu_report("work", "W=256", "glib", "throughput", "jobs/s", true, &t_gl);
    bu_print_ratios("work", "W=256", "throughput", "aiopoll");
    bu_report("work", "W=1", "aiopoll", "latency", "us", false, &l_ap);
    bu_report("work", "W=1", "libuv", "latency", "us", false, &l_uv);
    bu_report("work", "W=1", "glib", "latency", "us", false, &l_gl);
    bu_print_ratios("work", "W=1", "latency", "aiopoll");

    g_main_context_release(gl.ctx);
    g_main_context_pop_thread_default(gl.ctx);
    g_thread_pool_free(gl.pool, FALSE, TRUE);
    /* Completions the pool queued after the last run. */
    while (g_main_context_iteration(gl.ctx, FALSE)) {
    }
    g_main_context_unref(gl.ctx);
    uv_loop_close(&uvs.loop);
    free(uvs.reqs);
    aio_context_unref(ap.ctx);
    bu_free(&t_ap), bu_free(&t_uv), bu_free(&t_gl);
    bu_free(&l_ap), bu_free(&l_uv), bu_free(&l_gl);
}
