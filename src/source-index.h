/* SPDX-License-Identifier: MIT */
/*
 * The live sources of a context by their user key (a descriptor, or a
 * notifier's address), for aio_set_fd_handler / aio_set_event_notifier to
 * find the registration they replace or remove without walking every
 * source. Open addressing with linear probing, at most half full, removal by
 * backward shift (no tombstones, so a probe never outlives the table's
 * load). Owned by sources.c, under the context's list lock (the struct is
 * in aio-internal.h, inside AioContext).
 */
#ifndef AIOPOLL_SOURCE_INDEX_H
#define AIOPOLL_SOURCE_INDEX_H

#include <stddef.h>

#include "aio-internal.h"

/* Room for one more source, so that the insertion after it cannot fail:
 * 0 or -ENOMEM (then nothing changed). */
int aio__srcidx_reserve(AioSourceIndex *x);
/* The live source with src's key must not be in the index. */
void aio__srcidx_insert(AioSourceIndex *x, AioSource *src);
void aio__srcidx_remove(AioSourceIndex *x, const AioSource *src);
/* The source registered for fd (n NULL) or for n, or NULL. */
AioSource *aio__srcidx_find(const AioSourceIndex *x, aio_fd_t fd, const AioEventNotifier *n);
void aio__srcidx_fini(AioSourceIndex *x);

#endif
