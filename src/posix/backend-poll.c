/* SPDX-License-Identifier: MIT */
/*
 * The poll-array backends:
 *  - "eventfd+ppoll" (Linux): eventfd wake-up, ppoll() with nanosecond
 *    timeouts;
 *  - "pipe+poll" (macOS, the BSDs, anything POSIX): non-blocking pipe
 *    wake-up, poll() with the timeout rounded up to whole milliseconds.
 * Both rebuild their pollfd array only when the core's snapshot changed;
 * slot 0 is the wake-up descriptor, disabled (fd -1) in non-blocking polls so
 * that they can never observe, let alone consume, a wake-up.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

#include "aio-internal.h"
#include "posix-internal.h"

struct AioBackend {
    AioEventNotifier wake;
    bool use_ppoll;
};

static AioBackend *create_common(bool use_pipe, bool use_ppoll)
{
    AioBackend *be = calloc(1, sizeof(*be));
    if (!be) {
        errno = ENOMEM;
        return NULL;
    }
    int err = aio__notifier_open(&be->wake, use_pipe, false);
    if (err) {
        free(be);
        errno = -err;
        return NULL;
    }
    be->use_ppoll = use_ppoll;
    return be;
}

static void poll_destroy(AioBackend *be)
{
    aio__notifier_close(&be->wake);
    free(be);
}

static void poll_kick(AioBackend *be)
{
    aio__notifier_set(&be->wake);
}

static void poll_clear_kick(AioBackend *be)
{
    aio__notifier_test_and_clear(&be->wake);
}

static int source_fd(const AioSource *src)
{
    return src->notifier ? aio_event_notifier_get_handle(src->notifier) : src->fd;
}

static short interest(const AioSource *src)
{
    return (short)((src->io_read ? POLLIN : 0) | (src->io_write ? POLLOUT : 0));
}

static int build_pollfds(AioPollSet *set)
{
    size_t need = set->n + 1;
    if (need > set->scratch_cap) {
        struct pollfd *p = realloc(set->scratch, need * sizeof(*p));
        if (!p) {
            return -ENOMEM;
        }
        set->scratch = p;
        set->scratch_cap = need;
    }
    struct pollfd *pfd = set->scratch;
    for (size_t i = 0; i < set->n; i++) {
        AioSource *src = set->srcs[i];
        short ev = interest(src);
        /* No interest: leave it out, or its POLLHUP would end every sleep
         * with nothing for anyone to dispatch. */
        pfd[i + 1].fd = ev ? source_fd(src) : -1;
        pfd[i + 1].events = ev;
    }
    set->scratch_generation = set->generation;
    set->scratch_valid = true;
    return 0;
}

static int poll_wait(AioBackend *be, AioPollSet *set, int64_t timeout_ns, bool with_kick,
                     bool *kicked)
{
    *kicked = false;
    set->nready = 0;
    if (!set->scratch_valid || set->scratch_generation != set->generation) {
        int err = build_pollfds(set);
        if (err) {
            return err;
        }
    }
    struct pollfd *pfd = set->scratch;
    pfd[0].fd = with_kick ? be->wake.rfd : -1;
    pfd[0].events = POLLIN;
    nfds_t nfds = (nfds_t)(set->n + 1);

    int r;
#if AIOPOLL_HAVE_PPOLL
    if (be->use_ppoll) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = (time_t)(timeout_ns / 1000000000);
            ts.tv_nsec = (long)(timeout_ns % 1000000000);
            tsp = &ts;
        }
        r = ppoll(pfd, nfds, tsp, NULL);
    } else
#endif
    {
        r = poll(pfd, nfds, aio__timeout_ms_ceil(timeout_ns));
    }
    if (r < 0) {
        return errno == EINTR || errno == EAGAIN ? 0 : -errno;
    }
    if (r == 0) {
        return 0;
    }
    *kicked = with_kick && (pfd[0].revents & (POLLIN | POLLERR | POLLHUP));
    for (size_t i = 0; i < set->n; i++) {
        short re = pfd[i + 1].revents;
        if (!re) {
            continue;
        }
        AioSource *src = set->srcs[i];
        unsigned ev = 0;
        if (src->io_read && (re & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
            ev |= AIO_EV_READ;
        }
        if (src->io_write && (re & (POLLOUT | POLLERR | POLLNVAL))) {
            ev |= AIO_EV_WRITE;
        }
        if (ev) {
            set->ready[set->nready].src = src;
            set->ready[set->nready].events = ev;
            set->nready++;
        }
    }
    return 0;
}

static void poll_pollset_fini(AioBackend *be, AioPollSet *set)
{
    (void)be;
    free(set->scratch);
    set->scratch = NULL;
    set->scratch_cap = 0;
    set->scratch_valid = false;
}

#if AIOPOLL_HAVE_EVENTFD && AIOPOLL_HAVE_PPOLL
static AioBackend *ppoll_create(void)
{
    return create_common(false, true);
}

const AioBackendOps aio__backend_ppoll = {
    .name = "eventfd+ppoll",
    .create = ppoll_create,
    .destroy = poll_destroy,
    .kick = poll_kick,
    .clear_kick = poll_clear_kick,
    .wait = poll_wait,
    .pollset_fini = poll_pollset_fini,
};
#endif

static AioBackend *pipe_poll_create(void)
{
    return create_common(true, false);
}

const AioBackendOps aio__backend_pipe_poll = {
    .name = "pipe+poll",
    .create = pipe_poll_create,
    .destroy = poll_destroy,
    .kick = poll_kick,
    .clear_kick = poll_clear_kick,
    .wait = poll_wait,
    .pollset_fini = poll_pollset_fini,
};
