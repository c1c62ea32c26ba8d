/* SPDX-License-Identifier: MIT */
/* The POSIX implementation of platform.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "platform.h"
#include "posix-internal.h"

void aio__mutex_init(aio_mutex_t *m)
{
    pthread_mutex_init(m, NULL);
}

void aio__mutex_destroy(aio_mutex_t *m)
{
    pthread_mutex_destroy(m);
}

void aio__mutex_lock(aio_mutex_t *m)
{
    pthread_mutex_lock(m);
}

bool aio__mutex_trylock(aio_mutex_t *m)
{
    return pthread_mutex_trylock(m) == 0;
}

void aio__mutex_unlock(aio_mutex_t *m)
{
    pthread_mutex_unlock(m);
}

void aio__cond_init(aio_cond_t *c)
{
#if defined(__APPLE__)
    pthread_cond_init(c, NULL); /* timedwait uses the relative variant */
#else
    /* Timeouts on the monotonic clock: a worker's idle timeout must not
     * stretch or collapse when someone sets the wall clock. */
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
#endif
}

void aio__cond_destroy(aio_cond_t *c)
{
    pthread_cond_destroy(c);
}

void aio__cond_wait(aio_cond_t *c, aio_mutex_t *m)
{
    pthread_cond_wait(c, m);
}

bool aio__cond_timedwait(aio_cond_t *c, aio_mutex_t *m, int64_t timeout_ns)
{
#if defined(__APPLE__)
    struct timespec rel = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
    return pthread_cond_timedwait_relative_np(c, m, &rel) != ETIMEDOUT;
#else
    int64_t deadline = aio__clock_ns() + timeout_ns;
    struct timespec abs = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
    return pthread_cond_timedwait(c, m, &abs) != ETIMEDOUT;
#endif
}

void aio__cond_signal(aio_cond_t *c)
{
    pthread_cond_signal(c);
}

void aio__cond_broadcast(aio_cond_t *c)
{
    pthread_cond_broadcast(c);
}

typedef struct thread_start {
    void (*fn)(void *);
    void *arg;
} thread_start;

static void *thread_main(void *p)
{
    thread_start ts = *(thread_start *)p;
    free(p);
    ts.fn(ts.arg);
    return NULL;
}

int aio__thread_start(aio_thread_t *t, void (*fn)(void *), void *arg)
{
    thread_start *ts = aio__malloc(sizeof(*ts));
    if (!ts) {
        return -ENOMEM;
    }
    ts->fn = fn;
    ts->arg = arg;
    int err = pthread_create(t, NULL, thread_main, ts);
    if (err) {
        free(ts);
        return -err;
    }
    return 0;
}

void aio__thread_join(aio_thread_t t)
{
    pthread_join(t, NULL);
}

uint64_t aio__thread_id(void)
{
    /* A counter rather than pthread_self(): pthread_t is opaque (a struct on
     * some systems), and these ids are never reused within a process. */
    static atomic_uint_fast64_t next_id = 1;
    static _Thread_local uint64_t id;
    if (id == 0) {
        id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    }
    return id;
}

int64_t aio__clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t aio__wall_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int aio__check_fd(aio_fd_t fd)
{
    if (fd < 0) {
        return -EINVAL;
    }
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
        return -EBADF;
    }
    return 0;
}

void aio__cpu_relax(void)
{
/* GNU builtins and asm only where the compiler is GNU-compatible; any
 * other compiler just spins. */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

const char *aio__backend_env(void)
{
    const char *v = getenv("AIOPOLL_BACKEND");
    return v && *v ? v : NULL;
}

int aio__timeout_ms_ceil(int64_t timeout_ns)
{
    if (timeout_ns < 0) {
        return -1;
    }
    int64_t ms = timeout_ns / 1000000 + (timeout_ns % 1000000 != 0);
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

int aio__object_open(AioObject *o, aio_fd_t fd, const AioEventNotifier *n)
{
    int src = n ? n->rfd : fd;
    if (src < 0) {
        return -EINVAL;
    }
    /* A private duplicate, so that the registration names an open file of
     * its own: the user may close fd (or free n) before removing the
     * handler, and the number may then be reused for anything, but this
     * descriptor stays what the backend waits on and, for epoll, the key
     * that EPOLL_CTL_DEL always finds (docs/design.md, "Owned objects"). */
    int d = AIO_FAULT_CALL(AIO_FAULT_FCNTL, -1, fcntl(src, F_DUPFD_CLOEXEC, 0));
    if (d < 0) {
        return errno == EINVAL ? -EBADF : -errno;
    }
    o->is_event = n != NULL;
    o->fd = n ? -1 : d;
    o->handle = n ? d : -1;
    return 0;
}

void aio__object_close(AioObject *o)
{
    int d = o->is_event ? o->handle : o->fd;
    if (d >= 0) {
        close(d);
    }
    o->fd = o->handle = -1;
}

/* Bumped in the child by pthread_atfork: a context created before the fork
 * sees a generation other than its own there (platform.h argues why the
 * reader's relaxed load is enough). */
atomic_uint aio__fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add_explicit(&aio__fork_gen, 1, memory_order_relaxed);
    aio__fork_child();
}

static void fork_register(void)
{
    /* Failure (ENOMEM) leaves fork undetected: children then behave as the
     * parent would, which is what the library did before it had a policy. */
    (void)pthread_atfork(aio__fork_prepare, aio__fork_parent, on_fork_child);
}

#if AIOPOLL_TEST_HOOKS
void aio__fault_set_error(int err)
{
    errno = err;
}
#endif

void aio__platform_init(void)
{
    /* Before the first context exists nothing can be inherited, so a fork
     * before this point needs no detection; every context's fork_gen is
     * read after this returns. */
    pthread_once(&fork_once, fork_register);
}
