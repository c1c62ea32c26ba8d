/* SPDX-License-Identifier: MIT */
/* The POSIX backends this build has, the platform default first. */
#include "backend.h"

#if AIOPOLL_HAVE_EVENTFD && AIOPOLL_HAVE_PPOLL
extern const AioBackendOps aio__backend_ppoll;
#endif
#if AIOPOLL_HAVE_EPOLL
extern const AioBackendOps aio__backend_epoll;
#endif
#if AIOPOLL_HAVE_IO_URING
extern const AioBackendOps aio__backend_io_uring;
#endif
extern const AioBackendOps aio__backend_pipe_poll;

const AioBackendOps *const aio__backends[] = {
#if AIOPOLL_HAVE_EVENTFD && AIOPOLL_HAVE_PPOLL
    &aio__backend_ppoll,
#endif
#if AIOPOLL_HAVE_EPOLL
    &aio__backend_epoll,
#endif
    &aio__backend_pipe_poll,
#if AIOPOLL_HAVE_IO_URING
    &aio__backend_io_uring,
#endif
    NULL,
};
