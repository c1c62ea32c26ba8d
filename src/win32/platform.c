/* SPDX-License-Identifier: MIT */
/* The Win32 implementation of platform.h. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "platform.h"
#include "win32-internal.h"

void aio__mutex_init(aio_mutex_t *m)
{
    InitializeSRWLock(m);
}

void aio__mutex_destroy(aio_mutex_t *m)
{
    (void)m; /* an SRW lock owns no resources */
}

void aio__mutex_lock(aio_mutex_t *m)
{
    AcquireSRWLockExclusive(m);
}

bool aio__mutex_trylock(aio_mutex_t *m)
{
    return TryAcquireSRWLockExclusive(m) != 0;
}

void aio__mutex_unlock(aio_mutex_t *m)
{
    ReleaseSRWLockExclusive(m);
}

/* MSVC's C11 mode spells thread-local storage __declspec(thread) (it has no
 * _Thread_local); every other compiler here takes the C11 keyword. */
#if defined(_MSC_VER) && !defined(__clang__)
#define AIO_THREAD_LOCAL __declspec(thread)
#else
#define AIO_THREAD_LOCAL _Thread_local
#endif

void aio__cond_init(aio_cond_t *c)
{
    InitializeConditionVariable(c);
}

void aio__cond_destroy(aio_cond_t *c)
{
    (void)c; /* owns no resources */
}

void aio__cond_wait(aio_cond_t *c, aio_mutex_t *m)
{
    SleepConditionVariableSRW(c, m, INFINITE, 0);
}

bool aio__cond_timedwait(aio_cond_t *c, aio_mutex_t *m, int64_t timeout_ns)
{
    if (!SleepConditionVariableSRW(c, m, aio__win32_timeout_ms_ceil(timeout_ns), 0)) {
        return GetLastError() != ERROR_TIMEOUT;
    }
    return true;
}

void aio__cond_signal(aio_cond_t *c)
{
    WakeConditionVariable(c);
}

void aio__cond_broadcast(aio_cond_t *c)
{
    WakeAllConditionVariable(c);
}

typedef struct thread_start {
    void (*fn)(void *);
    void *arg;
} thread_start;

static DWORD WINAPI thread_main(LPVOID p)
{
    thread_start ts = *(thread_start *)p;
    free(p);
    ts.fn(ts.arg);
    return 0;
}

int aio__thread_start(aio_thread_t *t, void (*fn)(void *), void *arg)
{
    thread_start *ts = aio__malloc(sizeof(*ts));
    if (!ts) {
        return -ENOMEM;
    }
    ts->fn = fn;
    ts->arg = arg;
    /* CreateThread, not _beginthreadex: fn is library code that uses no CRT
     * per-thread state beyond what the UCRT/msvcrt set up lazily. */
    HANDLE h = CreateThread(NULL, 0, thread_main, ts, 0, NULL);
    if (!h) {
        free(ts);
        return GetLastError() == ERROR_NOT_ENOUGH_MEMORY ? -ENOMEM : -EAGAIN;
    }
    *t = h;
    return 0;
}

void aio__thread_join(aio_thread_t t)
{
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
}

uint64_t aio__thread_id(void)
{
    /* Not GetCurrentThreadId(): Windows hands a dead thread's id to the next
     * thread at once, which would then inherit the dead thread's contexts as
     * their home thread. A process-wide counter never repeats (as on POSIX);
     * relaxed is enough because only the uniqueness of the value matters. */
    static atomic_uint_fast64_t next_id = 1;
    static AIO_THREAD_LOCAL uint64_t id;
    if (id == 0) {
        id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    }
    return id;
}

static LARGE_INTEGER qpc_freq; /* set once by qpc_init */
static INIT_ONCE qpc_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK qpc_init(PINIT_ONCE once, PVOID param, PVOID *context)
{
    (void)once;
    (void)param;
    (void)context;
    /* Cannot fail on Windows XP and later; the frequency is fixed at boot. */
    QueryPerformanceFrequency(&qpc_freq);
    return TRUE;
}

int64_t aio__clock_ns(void)
{
    InitOnceExecuteOnce(&qpc_once, qpc_init, NULL, NULL);
    LARGE_INTEGER now;
    QueryPerformanceCounter(&now);
    /* ticks * 1e9 / freq overflows int64 after ~10 days at 10 MHz. Split
     * into whole seconds and a remainder: rem < freq, so rem * 1e9 stays
     * below 2^63 for any frequency under 9.2 GHz. */
    int64_t freq = qpc_freq.QuadPart;
    int64_t ticks = now.QuadPart;
    int64_t sec = ticks / freq;
    int64_t rem = ticks % freq;
    return sec * 1000000000 + rem * 1000000000 / freq;
}

int64_t aio__wall_clock_ns(void)
{
    /* 100 ns units since 1601; 11644473600 s separate 1601 from 1970.
     * Not the Precise variant (Windows 8): the build targets Windows 7, and
     * HOST timers compare against this same reading, so its coarser steps
     * can delay a timer by one tick but never fire it early. */
    FILETIME ft;
    GetSystemTimeAsFileTime(&ft);
    int64_t t = (int64_t)(((uint64_t)ft.dwHighDateTime << 32) | ft.dwLowDateTime);
    return (t - 116444736000000000LL) * 100;
}

int aio__check_fd(aio_fd_t fd)
{
    if (fd == INVALID_SOCKET) {
        return -EINVAL; /* never a descriptor (platform.h) */
    }
    int err = aio__win32_winsock_init();
    if (err) {
        return err;
    }
    int type = 0;
    int len = (int)sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, (char *)&type, &len) == SOCKET_ERROR) {
        /* Winsock cannot tell a closed socket from a value that never was
         * one: both are WSAENOTSOCK. */
        return WSAGetLastError() == WSAENOTSOCK ? -ENOTSOCK : -EBADF;
    }
    return 0;
}

int aio__object_open(AioObject *o, aio_fd_t fd, const AioEventNotifier *n)
{
    if (!n) {
        /* Winsock cannot duplicate a socket within a process (WSADuplicateSocket
         * makes a second socket whose event association is separate), so the
         * context uses the socket itself; what it waits on is the backend's
         * own WSAEVENT, which no user action can close. */
        int err = aio__check_fd(fd);
        if (err < 0) {
            return err;
        }
        *o = (AioObject){.is_event = false, .fd = fd, .handle = NULL};
        return 0;
    }
    /* A private reference to the notifier's event: freeing the notifier
     * closes the user's value, which Windows hands to the next object
     * created, but this one keeps the event alive and names only it.
     * SYNCHRONIZE only: the context waits on it and can do nothing else
     * (setting and resetting stay the notifier's). */
    HANDLE dup = NULL;
    if (!AIO_FAULT_CALL(AIO_FAULT_DUPLICATE_HANDLE, FALSE,
                        DuplicateHandle(GetCurrentProcess(), n->event, GetCurrentProcess(), &dup,
                                        SYNCHRONIZE, FALSE, 0))) {
        DWORD e = GetLastError();
        if (e == ERROR_INVALID_HANDLE) {
            return -EBADF;
        }
        /* aio.h: -EMFILE when no handle is left for the duplicate. */
        return e == ERROR_TOO_MANY_OPEN_FILES ? -EMFILE : -ENOMEM;
    }
    *o = (AioObject){.is_event = true, .fd = INVALID_SOCKET, .handle = dup};
    return 0;
}

void aio__object_close(AioObject *o)
{
    if (o->is_event && o->handle) {
        CloseHandle(o->handle);
    }
    o->handle = NULL;
}

#if AIOPOLL_TEST_HOOKS
void aio__fault_set_error(int err)
{
    /* WSAGetLastError() reads the same per-thread value. */
    SetLastError((DWORD)err);
}
#endif

/* No fork() on Windows: never written, always 0. */
atomic_uint aio__fork_gen;

void aio__platform_init(void)
{
}

void aio__cpu_relax(void)
{
    YieldProcessor();
}

const char *aio__backend_env(void)
{
    const char *v = getenv("AIOPOLL_BACKEND");
    return v && *v ? v : NULL;
}

/* ---- win32-internal.h ---------------------------------------------------- */

static INIT_ONCE wsa_once = INIT_ONCE_STATIC_INIT;
static int wsa_result;

static BOOL CALLBACK wsa_init(PINIT_ONCE once, PVOID param, PVOID *context)
{
    (void)once;
    (void)param;
    (void)context;
    WSADATA data;
    int r = WSAStartup(MAKEWORD(2, 2), &data);
    wsa_result = r == 0 ? 0 : aio__win32_wsa_errno(r);
    return TRUE;
}

int aio__win32_winsock_init(void)
{
    /* Process lifetime: WSAStartup is reference counted, and a library
     * cannot know when the application's last socket call is, so the
     * matching WSACleanup is left to process exit. */
    InitOnceExecuteOnce(&wsa_once, wsa_init, NULL, NULL);
    return wsa_result;
}

DWORD aio__win32_timeout_ms_ceil(int64_t timeout_ns)
{
    if (timeout_ns < 0) {
        return INFINITE;
    }
    int64_t ms = timeout_ns / 1000000 + (timeout_ns % 1000000 != 0);
    /* INFINITE is 0xFFFFFFFF; stay below it so a finite wait stays finite. */
    return ms >= (int64_t)INFINITE ? INFINITE - 1 : (DWORD)ms;
}

int aio__win32_wsa_errno(int wsa_error)
{
    switch (wsa_error) {
    case WSAENOTSOCK: return -ENOTSOCK;
    case WSAEBADF: return -EBADF;
    case WSAEINVAL: return -EINVAL;
    case WSAEINTR: return -EINTR;
    case WSAEWOULDBLOCK: return -EAGAIN;
    case WSAENOBUFS: return -ENOMEM;
    case WSA_NOT_ENOUGH_MEMORY: return -ENOMEM;
    case WSAEMFILE: return -EMFILE;
    case WSASYSNOTREADY:
    case WSAVERNOTSUPPORTED:
    case WSAEPROCLIM:
    case WSANOTINITIALISED: return -ENOSYS;
    default: return -EIO;
    }
}
