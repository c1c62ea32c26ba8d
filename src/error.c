/* SPDX-License-Identifier: MIT */
/* Error names and the version string. */
#include "aio-internal.h"

#define AIO_STR2(x) #x
#define AIO_STR(x) AIO_STR2(x)

const char *aiopoll_version(void)
{
    return AIO_STR(AIOPOLL_VERSION_MAJOR) "." AIO_STR(AIOPOLL_VERSION_MINOR) "." AIO_STR(
        AIOPOLL_VERSION_PATCH);
}

const char *aio_strerror(int err)
{
    /* A switch over the host's constants, not a table indexed by number:
     * the values differ between C libraries (ENOTSOCK is 88 on Linux, 10038
     * or 128 on Windows), the names do not. */
    /* Widened before negating: -INT_MIN does not fit in an int. */
    long long e = err;
    switch (e < 0 ? -e : e) {
    case 0: return "success";
    case EPERM: return "operation not permitted (EPERM)";
    case ECHILD: return "context inherited across fork() (ECHILD)";
    case ENOENT: return "no such entry (ENOENT)";
    case EINTR: return "interrupted (EINTR)";
    case EIO: return "input/output error (EIO)";
    case EBADF: return "bad file descriptor (EBADF)";
    case EAGAIN: return "resource temporarily unavailable (EAGAIN)";
    case ENOMEM: return "out of memory (ENOMEM)";
    case EBUSY: return "resource busy (EBUSY)";
    case EEXIST: return "already exists (EEXIST)";
    case EINVAL: return "invalid argument (EINVAL)";
    case EMFILE: return "too many open files (EMFILE)";
    case ENFILE: return "too many open files in system (ENFILE)";
    case ENOSYS: return "function not implemented (ENOSYS)";
    case ENOSPC: return "limit of watched objects reached (ENOSPC)";
    case ENOTSUP: return "not supported (ENOTSUP)";
    case ENOTSOCK: return "not a socket (ENOTSOCK)";
    case ETIMEDOUT: return "timed out (ETIMEDOUT)";
    case EOVERFLOW: return "value too large (EOVERFLOW)";
    case ECANCELED: return "cancelled (ECANCELED)";
    default: return "unknown error";
    }
}
