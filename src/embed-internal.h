/* SPDX-License-Identifier: MIT */
/*
 * What src/embed.c borrows from src/poll.c: the blocking poll's steps, so
 * that a host loop driving a context runs the same protocol and not a copy of
 * it (docs/embedding.md, docs/wakeup-protocol.md "Embedded").
 */
#ifndef AIOPOLL_EMBED_INTERNAL_H
#define AIOPOLL_EMBED_INTERNAL_H

#include "aio-internal.h"

/* A blocking poll that never sleeps but waits (timeout 0) on the wake-up
 * object too, so it accepts. Home thread. */
int aio__poll_now(AioContext *ctx);
/* N1: raise notify_me. */
void aio__announce(AioContext *ctx);
/* N4..N6: lower, consume the kick if kicked, accept. Returns the accepted
 * notified. Home thread. */
bool aio__lower_and_accept(AioContext *ctx, bool kicked);
/* N4 alone. */
void aio__lower(AioContext *ctx);
/* 0 when work is pending, else the timers' timeout (-1: none). */
int64_t aio__sleep_timeout(AioContext *ctx);
/* The backend's wait with timeout 0 (or the failure a test injected). */
int aio__backend_wait(AioContext *ctx, AioPollSet *set, bool with_kick, bool *kicked);
bool aio__dispatch_round(AioContext *ctx, AioPollSet *set);
/* The dispatch right, waiting for it, and a count on the home word of the
 * dispatch's own (false, nothing taken: the nesting limit of the home
 * word). Home thread. */
bool aio__dispatch_acquire(AioContext *ctx);
/* Releases both; true when the caller must destroy ctx (a callback dropped
 * the last reference). */
bool aio__dispatch_release_outermost(AioContext *ctx);

/* In embed.c, for poll.c: a nested blocking poll accepted a notification
 * while the host's sleep is announced. Home thread. */
void aio__embed_stale(AioContext *ctx);

#endif
