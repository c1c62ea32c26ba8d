/* SPDX-License-Identifier: MIT */
/*
 * An IOThread that offloads pread() to its context's worker pool: the
 * blocking read runs on a worker, the completion runs in the IOThread's
 * context, and the main thread waits for every request with
 * aio_wait_while() (QEMU's block layer in miniature: thread-pool.c plus
 * AIO_WAIT_WHILE). Reads a file (default: this executable) in 4 KiB blocks
 * and checks an order-independent checksum against a synchronous read.
 */
#include <aiopoll/aio.h>

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK 4096

typedef struct Request {
    int fd;
    off_t offset;
    ssize_t got;
    unsigned char buf[BLOCK];
} Request;

static AioContext *iothread_ctx;
static atomic_int iothread_ready, iothread_stop;
static atomic_long remaining;  /* the main thread waits while > 0 */
static unsigned long checksum; /* only the IOThread's context touches it */
static int file_fd;
static off_t file_size;

static unsigned long block_sum(off_t offset, const unsigned char *p, ssize_t n)
{
    unsigned long h = 0;
    for (ssize_t i = 0; i < n; i++) {
        h = h * 31 + p[i];
    }
    return h * (unsigned long)(offset / BLOCK + 1);
}

/* A worker thread: the blocking system call, nothing else. */
static int do_pread(void *arg)
{
    Request *r = arg;
    r->got = pread(r->fd, r->buf, BLOCK, r->offset);
    return r->got < 0 ? -1 : 0;
}

/* The IOThread, in its context. */
static void pread_done(void *opaque, int ret)
{
    Request *r = opaque;
    if (ret == 0) {
        checksum += block_sum(r->offset, r->buf, r->got);
    }
    free(r);
    atomic_fetch_sub(&remaining, 1);
    /* The main thread waits in another context: make it re-check. */
    aio_wait_kick();
}

/* A BH in the IOThread: submit every block. */
static void submit_all(void *opaque)
{
    (void)opaque;
    for (off_t off = 0; off < file_size; off += BLOCK) {
        Request *r = calloc(1, sizeof(*r));
        if (!r) {
            atomic_fetch_sub(&remaining, 1);
            continue;
        }
        r->fd = file_fd;
        r->offset = off;
        if (!aio_work_submit(iothread_ctx, do_pread, r, pread_done, r)) {
            free(r);
            atomic_fetch_sub(&remaining, 1);
        }
    }
    aio_wait_kick();
}

static void stop_bh(void *opaque)
{
    (void)opaque;
    atomic_store(&iothread_stop, 1);
}

static void *iothread_main(void *arg)
{
    (void)arg;
    iothread_ctx = aio_context_new();
    aio_context_set_thread_pool_params(iothread_ctx, 0, 4);
    atomic_store(&iothread_ready, 1);
    while (!atomic_load(&iothread_stop)) {
        aio_poll(iothread_ctx, true);
    }
    /* Not freed here: the thread that scheduled the stop BH may still be
     * inside aio_bh_schedule_oneshot() on this context when the BH has run
     * (it notifies after the push). The main thread frees it after the
     * join. */
    return NULL;
}

static bool reading(void *opaque)
{
    (void)opaque;
    return atomic_load(&remaining) > 0;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : argv[0];
    struct stat st;
    file_fd = open(path, O_RDONLY);
    if (file_fd < 0 || fstat(file_fd, &st) < 0) {
        perror(path);
        return 1;
    }
    file_size = st.st_size;
    atomic_store(&remaining, (long)((file_size + BLOCK - 1) / BLOCK));

    AioContext *main_ctx = aio_context_new();
    pthread_t t;
    pthread_create(&t, NULL, iothread_main, NULL);
    while (!atomic_load(&iothread_ready)) {
        sched_yield();
    }
    aio_bh_schedule_oneshot(iothread_ctx, submit_all, NULL);
    /* The main loop (which could be running its own handlers meanwhile)
     * waits for the IOThread's requests to drain. */
    int ret = aio_wait_while(main_ctx, reading, NULL);
    aio_bh_schedule_oneshot(iothread_ctx, stop_bh, NULL);
    pthread_join(t, NULL);
    aio_context_unref(iothread_ctx);

    unsigned long want = 0;
    unsigned char buf[BLOCK];
    ssize_t n;
    for (off_t off = 0; (n = pread(file_fd, buf, BLOCK, off)) > 0; off += n) {
        want += block_sum(off, buf, n);
    }
    bool ok = ret == 0 && checksum == want;
    printf("%s: %lld bytes in %lld pool reads, checksum %lx (synchronous %lx): %s\n", path,
           (long long)file_size, (long long)((file_size + BLOCK - 1) / BLOCK), checksum, want,
           ok ? "ok" : "MISMATCH");
    close(file_fd);
    aio_context_unref(main_ctx);
    return ok ? 0 : 1;
}
