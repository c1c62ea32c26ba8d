/* SPDX-License-Identifier: MIT */
/*
 * aiopoll::libevent: an aiopoll context driven by a libevent event_base
 * (link aiopoll::libevent, or pkg-config aiopoll-libevent). Works with
 * libevent 2.1, which has no prepare/check watchers: the adapter announces
 * the next sleep at the end of each of its callbacks instead of just before
 * the sleep (docs/embedding.md, "libevent"), so while attached every
 * aio_notify() that finds no kick pending costs one system call, as it does
 * for a context asleep in aio_poll().
 *
 * The event_base must be run by the context's home thread. Attach and detach
 * on that thread; detach is also allowed from inside the context's own
 * callbacks. Several contexts may share one base. Run on another thread,
 * the adapter dispatches nothing: at its first callback there it removes
 * its events from the base (which would otherwise spin on a descriptor
 * nobody may clear there) and writes one line to stderr; detach and attach
 * again on the home thread to resume.
 */
#ifndef AIOPOLL_LIBEVENT_H
#define AIOPOLL_LIBEVENT_H

#include <aiopoll/aio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

/* Returns 0, -EINVAL (NULL ctx or base), -EPERM (not ctx's home thread),
 * -EBUSY (ctx is already attached, to this or another loop), -ENOTSUP,
 * -ENOMEM. Nothing changes on failure. Holds a reference on ctx until the
 * detach. */
int aio_context_attach_event_base(AioContext *ctx, struct event_base *base);

/* Removes everything of ctx from its base. A no-op when ctx is not attached
 * to an event_base. */
void aio_context_detach_event_base(AioContext *ctx);

#ifdef __cplusplus
}
#endif

#endif
