/* SPDX-License-Identifier: MIT */
/*
 * aiopoll::libuv: an aiopoll context driven by a uv_loop_t (link
 * aiopoll::libuv, or pkg-config aiopoll-libuv). A uv_prepare_t announces the
 * loop's sleep and sets its timeout (a uv_timer_t), one uv_poll_t per
 * queried descriptor (one on epoll) wakes it, and a uv_check_t checks and
 * dispatches. The handles keep the loop alive while attached, as a GSource
 * keeps a GMainLoop running.
 *
 * The loop must be run by the context's home thread; attach and detach on
 * that thread (detach also from inside the context's callbacks). Run on
 * another thread, the adapter dispatches nothing, stops watching the
 * context's descriptors (the loop would otherwise spin on one nobody may
 * clear there) and writes one line to stderr; the home thread's next
 * uv_run() watches and dispatches again. Several
 * contexts may share one loop. After detach, the handles close with the
 * loop's next iteration (uv_close); run the loop once more before
 * uv_loop_close().
 */
#ifndef AIOPOLL_LIBUV_H
#define AIOPOLL_LIBUV_H

#include <aiopoll/aio.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns 0, -EINVAL (NULL ctx or loop), -EPERM (not ctx's home thread),
 * -EBUSY (already attached, to this or another loop), -ENOTSUP, -ENOMEM.
 * Nothing changes on failure. Holds a reference on ctx until the detach. */
int aio_context_attach_uv_loop(AioContext *ctx, uv_loop_t *loop);

/* Removes ctx from its loop. A no-op when ctx is not attached to a uv loop. */
void aio_context_detach_uv_loop(AioContext *ctx);

#ifdef __cplusplus
}
#endif

#endif
