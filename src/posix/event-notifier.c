/* SPDX-License-Identifier: MIT */
/* Event notifiers: eventfd where the system has it, else a non-blocking pipe. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if AIOPOLL_HAVE_EVENTFD
#include <sys/eventfd.h>
#endif

#include "platform.h"
#include "posix-internal.h"

static int set_cloexec_nonblock(int fd)
{
    int fl = AIO_FAULT_CALL(AIO_FAULT_FCNTL, -1, fcntl(fd, F_GETFL));
    if (fl < 0 || AIO_FAULT_CALL(AIO_FAULT_FCNTL, -1, fcntl(fd, F_SETFL, fl | O_NONBLOCK)) < 0) {
        return -errno;
    }
    int fdfl = AIO_FAULT_CALL(AIO_FAULT_FCNTL, -1, fcntl(fd, F_GETFD));
    if (fdfl < 0 || AIO_FAULT_CALL(AIO_FAULT_FCNTL, -1, fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC)) < 0) {
        return -errno;
    }
    return 0;
}

int aio__notifier_open(AioEventNotifier *n, bool use_pipe, bool initially_set)
{
    n->rfd = n->wfd = -1;
#if AIOPOLL_HAVE_EVENTFD
    if (!use_pipe) {
        int fd = AIO_FAULT_CALL(AIO_FAULT_EVENTFD, -1, eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
        if (fd < 0) {
            return -errno;
        }
        n->rfd = n->wfd = fd;
    }
#else
    use_pipe = true;
#endif
    if (use_pipe) {
        int fds[2];
        if (AIO_FAULT_CALL(AIO_FAULT_PIPE, -1, pipe(fds)) < 0) {
            return -errno;
        }
        n->rfd = fds[0];
        n->wfd = fds[1];
        int err = set_cloexec_nonblock(fds[0]);
        if (!err) {
            err = set_cloexec_nonblock(fds[1]);
        }
        if (err) {
            aio__notifier_close(n);
            return err;
        }
    }
    if (initially_set) {
        aio__notifier_set(n);
    }
    return 0;
}

void aio__notifier_close(AioEventNotifier *n)
{
    if (n->wfd >= 0 && n->wfd != n->rfd) {
        close(n->wfd);
    }
    if (n->rfd >= 0) {
        close(n->rfd);
    }
    n->rfd = n->wfd = -1;
}

int aio__notifier_set(AioEventNotifier *n)
{
    /* eventfd wants 8 bytes, a pipe takes the first of them; only write()
     * is used, so this stays async-signal-safe. EAGAIN means a full pipe or
     * counter: the notifier is set already, which is all we want. */
    static const uint64_t one = 1;
    size_t len = n->rfd == n->wfd ? sizeof(one) : 1;
    for (;;) {
        ssize_t r = AIO_FAULT_CALL(AIO_FAULT_WRITE, -1, write(n->wfd, &one, len));
        if (r >= 0 || errno == EAGAIN) {
            return 0;
        }
        if (errno != EINTR) {
            return -errno;
        }
    }
}

bool aio__notifier_test_and_clear(AioEventNotifier *n)
{
    bool was_set = false;
    char buf[512];
    for (;;) {
        ssize_t r = AIO_FAULT_CALL(AIO_FAULT_READ, -1, read(n->rfd, buf, sizeof(buf)));
        if (r > 0) {
            was_set = true;
            if (n->rfd == n->wfd) {
                break; /* eventfd: one read resets the counter */
            }
            continue; /* pipe: drain every byte */
        }
        if (r < 0 && errno == EINTR) {
            continue;
        }
        break;
    }
    return was_set;
}

static bool public_notifiers_use_pipe(void)
{
    /* The pipe+poll backend stands for systems without eventfd; its test run
     * on Linux should exercise pipe notifiers as well. */
    const char *b = aio__backend_env();
    return b && strcmp(b, "pipe+poll") == 0;
}

AioEventNotifier *aio_event_notifier_new(bool initially_set)
{
    AioEventNotifier *n = aio__malloc(sizeof(*n));
    if (!n) {
        errno = ENOMEM;
        return NULL;
    }
    int err = aio__notifier_open(n, public_notifiers_use_pipe(), initially_set);
    if (err) {
        free(n);
        errno = -err;
        return NULL;
    }
    return n;
}

void aio_event_notifier_free(AioEventNotifier *n)
{
    if (n) {
        aio__notifier_close(n);
        free(n);
    }
}

int aio_event_notifier_set(AioEventNotifier *n)
{
    return n ? aio__notifier_set(n) : -EINVAL;
}

bool aio_event_notifier_test_and_clear(AioEventNotifier *n)
{
    return n ? aio__notifier_test_and_clear(n) : false;
}

aio_handle_t aio_event_notifier_get_handle(const AioEventNotifier *n)
{
    return n ? n->rfd : -1;
}
