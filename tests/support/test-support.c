/* SPDX-License-Identifier: MIT */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "test-support.h"

#include <string.h>
#include <time.h>

#if defined(_WIN32)
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#else
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

/* ---- Descriptors: Windows ---------------------------------------------- */
#if defined(_WIN32)

static INIT_ONCE tsup_once = INIT_ONCE_STATIC_INIT;
static int tsup_init_result = -1;

static BOOL CALLBACK tsup_do_init(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    WSADATA wsa;
    (void)once;
    (void)param;
    (void)ctx;
    tsup_init_result = WSAStartup(MAKEWORD(2, 2), &wsa) == 0 ? 0 : -1;
    return TRUE;
}

int tsup_init(void)
{
    InitOnceExecuteOnce(&tsup_once, tsup_do_init, NULL, NULL);
    return tsup_init_result;
}

int tsup_reserve_handles(long n)
{
    (void)n; /* handles are limited only by memory */
    return 0;
}

static int tsup_set_nonblocking(SOCKET s)
{
    u_long on = 1;
    return ioctlsocket(s, FIONBIO, &on) == 0 ? 0 : -1;
}

/* socketpair() emulation: a listening socket on 127.0.0.1, an ephemeral
 * port, connect, accept, then close the listener. */
int tsup_socketpair(aio_fd_t fds[2])
{
    SOCKET listener = INVALID_SOCKET, a = INVALID_SOCKET, b = INVALID_SOCKET;
    struct sockaddr_in addr;
    int addrlen = (int)sizeof(addr);
    BOOL nodelay = TRUE;

    if (tsup_init() < 0) {
        return -1;
    }
    listener = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (listener == INVALID_SOCKET) {
        goto fail;
    }
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(listener, (struct sockaddr *)&addr, (int)sizeof(addr)) != 0 ||
        getsockname(listener, (struct sockaddr *)&addr, &addrlen) != 0 ||
        listen(listener, 1) != 0) {
        goto fail;
    }
    a = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (a == INVALID_SOCKET ||
        connect(a, (struct sockaddr *)&addr, (int)sizeof(addr)) != 0) {
        goto fail;
    }
    b = accept(listener, NULL, NULL);
    if (b == INVALID_SOCKET) {
        goto fail;
    }
    closesocket(listener);
    setsockopt(a, IPPROTO_TCP, TCP_NODELAY, (const char *)&nodelay, (int)sizeof(nodelay));
    setsockopt(b, IPPROTO_TCP, TCP_NODELAY, (const char *)&nodelay, (int)sizeof(nodelay));
    if (tsup_set_nonblocking(a) < 0 || tsup_set_nonblocking(b) < 0) {
        closesocket(a);
        closesocket(b);
        return -1;
    }
    fds[0] = a;
    fds[1] = b;
    return 0;

fail:
    if (listener != INVALID_SOCKET) {
        closesocket(listener);
    }
    if (a != INVALID_SOCKET) {
        closesocket(a);
    }
    if (b != INVALID_SOCKET) {
        closesocket(b);
    }
    return -1;
}

int tsup_write_byte(aio_fd_t fd)
{
    char c = 'x';
    int n = send(fd, &c, 1, 0);
    if (n == 1) {
        return 1;
    }
    return WSAGetLastError() == WSAEWOULDBLOCK ? 0 : -1;
}

long tsup_fill(aio_fd_t fd)
{
    static const char buf[4096];
    long total = 0;
    for (;;) {
        int n = send(fd, buf, (int)sizeof(buf), 0);
        if (n <= 0) {
            return total;
        }
        total += n;
    }
}

long tsup_drain(aio_fd_t fd)
{
    char buf[4096];
    long total = 0;
    for (;;) {
        int n = recv(fd, buf, (int)sizeof(buf), 0);
        if (n <= 0) {
            return total;
        }
        total += n;
    }
}

void tsup_close(aio_fd_t fd)
{
    if (fd != INVALID_SOCKET) {
        closesocket(fd);
    }
}

aio_fd_t tsup_closed_fd(void)
{
    SOCKET s;
    tsup_init();
    s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    closesocket(s);
    return s;
}

bool tsup_is_closed_fd_error(int err)
{
    return err == -EBADF || err == -ENOTSOCK;
}

bool tsup_handle_valid(aio_handle_t h)
{
    return h != NULL && h != INVALID_HANDLE_VALUE;
}

int64_t tsup_now_ns(void)
{
    static LARGE_INTEGER freq;
    LARGE_INTEGER now;
    if (freq.QuadPart == 0) {
        QueryPerformanceFrequency(&freq);
    }
    QueryPerformanceCounter(&now);
    return (int64_t)((now.QuadPart / freq.QuadPart) * 1000000000LL +
                     (now.QuadPart % freq.QuadPart) * 1000000000LL / freq.QuadPart);
}

void tsup_sleep_ms(int ms)
{
    Sleep((DWORD)(ms < 0 ? 0 : ms));
}

void tsup_sleep_us(int us)
{
    /* Windows sleeps have millisecond granularity at best. */
    if (us <= 0) {
        SwitchToThread();
    } else {
        Sleep((DWORD)((us + 999) / 1000));
    }
}

void tsup_yield(void)
{
    SwitchToThread();
}

long tsup_open_handles(void)
{
    DWORD n = 0;
    return GetProcessHandleCount(GetCurrentProcess(), &n) ? (long)n : -1;
}

uint64_t tsup_os_thread_id(void)
{
    return (uint64_t)GetCurrentThreadId();
}

/* ---- Descriptors: POSIX ------------------------------------------------ */
#else

int tsup_init(void)
{
    return 0;
}

int tsup_reserve_handles(long n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return -1;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)n) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)n ? (rlim_t)n
                                                                              : rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)n ? 0 : -1;
}

static int tsup_prepare_fd(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        return -1;
    }
    return fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ? -1 : 0;
}

static int tsup_prepare_pair(int fds[2])
{
    if (tsup_prepare_fd(fds[0]) < 0 || tsup_prepare_fd(fds[1]) < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    return 0;
}

int tsup_pipe(aio_fd_t fds[2])
{
    if (pipe(fds) < 0) {
        return -1;
    }
    return tsup_prepare_pair(fds);
}

int tsup_socketpair(aio_fd_t fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0) {
        return -1;
    }
    return tsup_prepare_pair(fds);
}

int tsup_write_byte(aio_fd_t fd)
{
    char c = 'x';
    ssize_t n = write(fd, &c, 1);
    if (n == 1) {
        return 1;
    }
    return (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) ? 0 : -1;
}

long tsup_fill(aio_fd_t fd)
{
    static const char buf[4096];
    long total = 0;
    for (;;) {
        ssize_t n = write(fd, buf, sizeof(buf));
        if (n <= 0) {
            return total;
        }
        total += (long)n;
    }
}

long tsup_drain(aio_fd_t fd)
{
    char buf[4096];
    long total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            return total;
        }
        total += (long)n;
    }
}

void tsup_close(aio_fd_t fd)
{
    if (fd >= 0) {
        close(fd);
    }
}

aio_fd_t tsup_closed_fd(void)
{
    int fds[2];
    if (pipe(fds) < 0) {
        return 1000000; /* far above any open descriptor in a test */
    }
    close(fds[0]);
    close(fds[1]);
    return fds[1];
}

bool tsup_is_closed_fd_error(int err)
{
    return err == -EBADF;
}

bool tsup_handle_valid(aio_handle_t h)
{
    return h >= 0 && fcntl(h, F_GETFD) >= 0;
}

int64_t tsup_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void tsup_sleep_us(int us)
{
    struct timespec ts;
    if (us <= 0) {
        sched_yield();
        return;
    }
    ts.tv_sec = us / 1000000;
    ts.tv_nsec = (long)(us % 1000000) * 1000L;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

void tsup_sleep_ms(int ms)
{
    tsup_sleep_us(ms < 0 ? 0 : ms * 1000);
}

void tsup_yield(void)
{
    sched_yield();
}

long tsup_open_handles(void)
{
    /* The directory's own descriptor is one of the entries, in every count
     * alike. */
    static const char *const dirs[] = {"/proc/self/fd", "/dev/fd"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        DIR *d = opendir(dirs[i]);
        if (!d) {
            continue;
        }
        long n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            n += e->d_name[0] != '.';
        }
        closedir(d);
        return n;
    }
    return -1;
}

uint64_t tsup_os_thread_id(void)
{
    /* A pointer or an integer on every POSIX system aiopoll supports. */
    return (uint64_t)(uintptr_t)pthread_self();
}

#endif

/* ---- Portable ------------------------------------------------------------ */

int64_t tsup_ms_since(int64_t start_ns)
{
    return (tsup_now_ns() - start_ns) / 1000000;
}

void tsup_spin_us(int us)
{
    int64_t end = tsup_now_ns() + (int64_t)us * 1000;
    while (tsup_now_ns() < end) {
    }
}

static bool tsup_pred_at_least(atomic_int *v, int want)
{
    return atomic_load(v) >= want;
}

static bool tsup_pred_nonzero(atomic_int *v, int unused)
{
    (void)unused;
    return atomic_load(v) != 0;
}

static bool tsup_wait_until(bool (*pred)(atomic_int *, int), atomic_int *v, int arg, int ms)
{
    int64_t deadline = tsup_now_ns() + (int64_t)ms * 1000000;
    unsigned spins = 0;

    while (!pred(v, arg)) {
        if (tsup_now_ns() >= deadline) {
            return pred(v, arg);
        }
        /* Spin briefly (the common case is a wake-up a few microseconds
         * away), then back off to short sleeps to leave the CPU to the
         * threads being waited for. */
        if (++spins < 200) {
            tsup_yield();
        } else {
            tsup_sleep_us(200);
        }
    }
    return true;
}

bool tsup_wait_at_least(atomic_int *v, int want, int ms)
{
    return tsup_wait_until(tsup_pred_at_least, v, want, ms);
}

bool tsup_wait_flag(atomic_int *flag, int ms)
{
    return tsup_wait_until(tsup_pred_nonzero, flag, 0, ms);
}
