/* SPDX-License-Identifier: MIT */
/*
 * Loop metrics (libuv's uv_metrics_info / uv_metrics_idle_time, more of
 * them). The counters live in ctx->stats (aio-internal.h says who writes
 * which); this file reads them out and times callbacks.
 */
#include <string.h>

#include "aio-internal.h"

int64_t aio__stats_cb_begin(AioContext *ctx)
{
    ctx->stats.cb_depth++;
    return aio__clock_ns();
}

void aio__stats_cb_end(AioContext *ctx, AioHandler *cb, int64_t start)
{
    int64_t d = aio__clock_ns() - start;
    /* callback_ns counts outermost callbacks only: the time of a callback
     * nested in another one's aio_poll() is already inside its caller's. */
    if (--ctx->stats.cb_depth == 0) {
        aio__stats_add_ns(&ctx->stats.callback_ns, d);
    }
    if (d > atomic_load_explicit(&ctx->stats.longest_callback_ns, memory_order_relaxed)) {
        atomic_store_explicit(&ctx->stats.longest_callback_ns, d, memory_order_relaxed);
        atomic_store_explicit(&ctx->stats.longest_callback, cb, memory_order_relaxed);
    }
}

int aio_context_set_stats_timing(AioContext *ctx, bool enable)
{
    if (!ctx) {
        return -EINVAL;
    }
    atomic_store_explicit(&ctx->stats.timing, enable, memory_order_relaxed);
    return 0;
}

int aio_context_get_stats(const AioContext *cctx, AioContextStats *out)
{
    if (!cctx || !out ||
        out->size < offsetof(AioContextStats, longest_callback_ns) + sizeof(int64_t)) {
        return -EINVAL;
    }
    AioContext *ctx = (AioContext *)cctx;
    const AioStatsCounters *c = &ctx->stats;
    AioContextStats s;
    memset(&s, 0, sizeof(s));
    s.size = out->size < sizeof(s) ? out->size : sizeof(s);
#define RD(f) atomic_load_explicit(&((AioStatsCounters *)c)->f, memory_order_relaxed)
    s.iterations = RD(iterations);
    s.sleeps = RD(sleeps);
    s.wakeups_notify = RD(wakeups_notify);
    s.wakeups_fd = RD(wakeups_fd);
    s.wakeups_timer = RD(wakeups_timer);
    s.notify_syscalls = RD(notify_syscalls);
    s.bhs_run = RD(bhs_run);
    s.sleep_ns = RD(sleep_ns);
    s.callback_ns = RD(callback_ns);
    s.longest_callback_ns = RD(longest_callback_ns);
    s.longest_callback = RD(longest_callback);
    s.timers_run = RD(timers_run);
    s.handlers_run = RD(handlers_run);
    s.work_completed = RD(work_completed);
#undef RD
    /* A caller built against an older, smaller struct gets its prefix; one
     * built against a newer one keeps what it set beyond ours. */
    memcpy(out, &s, s.size);
    return 0;
}
