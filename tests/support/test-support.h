/* SPDX-License-Identifier: MIT */
/*
 * The thin operating-system layer of the test suite. Every difference between
 * POSIX and Windows that a test needs lives here (and in test-support.c), so
 * that the test files themselves are the same sources on every platform.
 *
 * Nothing here depends on Criterion or on aiopoll internals; it only uses the
 * public types aio_fd_t / aio_handle_t.
 */
#ifndef AIOPOLL_TEST_SUPPORT_H
#define AIOPOLL_TEST_SUPPORT_H

#include <aiopoll/aio.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define TSUP_INVALID_FD ((aio_fd_t)INVALID_SOCKET)
#define TSUP_HAVE_PIPE 0
#else
#define TSUP_INVALID_FD ((aio_fd_t)-1)
#define TSUP_HAVE_PIPE 1
#endif

/* Process-wide set-up (WSAStartup on Windows); idempotent, called by the
 * descriptor helpers themselves. Returns 0 or -1. */
int tsup_init(void);

/* Makes room for n open descriptors (POSIX: raises the RLIMIT_NOFILE soft
 * limit towards the hard one); 0 when there is room, -1 when the hard limit
 * is lower. Windows has no such limit. */
int tsup_reserve_handles(long n);

#if TSUP_HAVE_PIPE
/* POSIX only: pipe(); fds[0] is the read end, fds[1] the write end; both are
 * non-blocking and close-on-exec. Returns 0 or -1. */
int tsup_pipe(aio_fd_t fds[2]);
#endif

/* A connected pair of non-blocking stream sockets: socketpair(AF_UNIX) on
 * POSIX, a loopback TCP connection on Windows. Bytes written to either end
 * are readable at the other; by convention fds[0] is read, fds[1] written.
 * Returns 0 or -1. */
int tsup_socketpair(aio_fd_t fds[2]);

/* A function of the shape of tsup_pipe / tsup_socketpair. */
typedef int tsup_pair_fn(aio_fd_t fds[2]);

/* Writes one byte: 1 on success, 0 if it would block, -1 on error. */
int tsup_write_byte(aio_fd_t fd);
/* Writes until the descriptor would block; returns the number of bytes. */
long tsup_fill(aio_fd_t fd);
/* Reads everything that is available now; returns the number of bytes. */
long tsup_drain(aio_fd_t fd);
void tsup_close(aio_fd_t fd);

/* A value that was an open descriptor (socket on Windows) and is closed now. */
aio_fd_t tsup_closed_fd(void);
/* Whether err is what registering a closed descriptor returns on this
 * platform: -EBADF, or on Windows also -ENOTSOCK. */
bool tsup_is_closed_fd_error(int err);

/* Whether h looks like a valid waitable handle (fd >= 0 / non-NULL HANDLE). */
bool tsup_handle_valid(aio_handle_t h);

/* Time. tsup_now_ns() reads the OS monotonic clock directly, independently
 * of the library's aio_clock_ns(). */
int64_t tsup_now_ns(void);
int64_t tsup_ms_since(int64_t start_ns);
void tsup_sleep_ms(int ms);
void tsup_sleep_us(int us);
void tsup_yield(void);
/* Busy-waits us microseconds (for delays below the sleep granularity). */
void tsup_spin_us(int us);

/* The operating system's own id of the calling thread (GetCurrentThreadId on
 * Windows, pthread_self elsewhere), which it may hand to a new thread once
 * this one has exited. TSUP_OS_THREAD_IDS_REUSED: quickly enough that a test
 * can count on seeing it happen. */
uint64_t tsup_os_thread_id(void);
#if defined(_WIN32)
#define TSUP_OS_THREAD_IDS_REUSED 1
#else
#define TSUP_OS_THREAD_IDS_REUSED 0
#endif

/* How many descriptors (POSIX: entries of /proc/self/fd or /dev/fd) or
 * kernel handles (Windows: GetProcessHandleCount) the process has open now,
 * or -1 when the system cannot say. For leak checks: compare two counts
 * taken with the same set of threads alive. */
long tsup_open_handles(void);

/* Bounded waits on an atomic written by another thread. They return true as
 * soon as the condition holds, false after ms milliseconds. */
bool tsup_wait_flag(atomic_int *flag, int ms);            /* *flag != 0 */
bool tsup_wait_at_least(atomic_int *v, int want, int ms); /* *v >= want */

#ifdef __cplusplus
}
#endif

#endif
