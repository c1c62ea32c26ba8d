/* SPDX-License-Identifier: MIT */
/* Pieces the POSIX backends share. */
#ifndef AIOPOLL_POSIX_INTERNAL_H
#define AIOPOLL_POSIX_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <aiopoll/aio.h>

#include "aio-test-hooks.h" /* fault-injection wrappers (no-ops outside tests) */
#include "backend.h"
#include "platform.h"

/* An event notifier is an eventfd (rfd == wfd) or a non-blocking pipe. */
struct AioEventNotifier {
    int rfd;
    int wfd;
};

/* Opens n in place. use_pipe forces the pipe flavour (what systems without
 * eventfd get, and what the pipe+poll backend uses everywhere so that the
 * flavour is tested on Linux too). Returns 0 or a negative errno. */
int aio__notifier_open(AioEventNotifier *n, bool use_pipe, bool initially_set);
void aio__notifier_close(AioEventNotifier *n);
/* async-signal-safe */
int aio__notifier_set(AioEventNotifier *n);
bool aio__notifier_test_and_clear(AioEventNotifier *n);

/* The descriptor a POSIX backend waits on for w: the context's own. */
static inline int aio__watch_fd(const AioWatch *w)
{
    return w->obj.is_event ? w->obj.handle : w->obj.fd;
}

/* Timeout conversions that round *up*, so that no timer fires early. */
int aio__timeout_ms_ceil(int64_t timeout_ns);

#endif
