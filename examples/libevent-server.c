/* SPDX-License-Identifier: MIT */
/*
 * A libevent server that hands work to aiopoll contexts. The event_base
 * serves connections (here: a few local socket pairs acting as clients) on
 * the main thread and also drives the main aiopoll context; each request is
 * handed to a worker context on a thread of its own, which computes the
 * answer and hands it back with a bottom half that the event_base
 * dispatches. The server writes the reply from there.
 */
#include <aiopoll/libevent.h>
#include <event2/event.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENTS 3

typedef struct Server {
    struct event_base *base;
    AioContext *main_ctx; /* driven by the event_base */
    AioContext *worker;   /* the worker thread's */
    pthread_t worker_thread;
    atomic_int worker_ready;
    atomic_bool worker_stop;
    int replies;
} Server;

typedef struct Conn {
    Server *srv;
    int fd;     /* server end */
    int client; /* the client's end */
    struct event *ev;
    char req[64];
    char reply[96];
} Conn;

static void *worker_main(void *opaque)
{
    Server *srv = opaque;
    srv->worker = aio_context_new();
    atomic_store(&srv->worker_ready, 1);
    while (!atomic_load(&srv->worker_stop)) {
        aio_poll(srv->worker, true);
    }
    /* Not freed here: the thread that scheduled the stop BH may still be
     * inside aio_bh_schedule_oneshot() on this context when the BH has run
     * (it notifies after the push). The main thread frees it after the
     * join. */
    return NULL;
}

/* Main thread, dispatched by the event_base through the main context. */
static void reply_ready(void *opaque)
{
    Conn *c = opaque;
    if (write(c->fd, c->reply, strlen(c->reply)) < 0) {
        perror("write");
    }
    char buf[128];
    ssize_t n = read(c->client, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    printf("client %d got: %s\n", c->client, buf);
    if (++c->srv->replies == CLIENTS) {
        event_base_loopbreak(c->srv->base);
    }
}

/* Worker thread. */
static void handle_request(void *opaque)
{
    Conn *c = opaque;
    size_t len = strlen(c->req);
    snprintf(c->reply, sizeof(c->reply), "%zu bytes, reversed: ", len);
    size_t off = strlen(c->reply);
    for (size_t i = 0; i < len && off + 1 < sizeof(c->reply); i++) {
        c->reply[off++] = c->req[len - 1 - i];
    }
    c->reply[off] = '\0';
    aio_bh_schedule_oneshot(c->srv->main_ctx, reply_ready, c);
}

/* Main thread, a plain libevent callback. */
static void on_readable(evutil_socket_t fd, short what, void *opaque)
{
    (void)what;
    Conn *c = opaque;
    ssize_t n = read(fd, c->req, sizeof(c->req) - 1);
    if (n <= 0) {
        event_del(c->ev);
        return;
    }
    c->req[n] = '\0';
    printf("server: request \"%s\" handed to the worker\n", c->req);
    aio_bh_schedule_oneshot(c->srv->worker, handle_request, c);
}

static void worker_stop(void *opaque)
{
    atomic_store(&((Server *)opaque)->worker_stop, true);
}

int main(void)
{
    Server srv = {0};
    srv.base = event_base_new();
    srv.main_ctx = aio_context_new();
    int err = aio_context_attach_event_base(srv.main_ctx, srv.base);
    if (err) {
        fprintf(stderr, "attach: %s\n", aio_strerror(err));
        return 1;
    }
    printf("main context on %s, driven by libevent %s (%s)\n",
           aio_context_backend(srv.main_ctx), event_get_version(),
           event_base_get_method(srv.base));
    pthread_create(&srv.worker_thread, NULL, worker_main, &srv);
    while (!atomic_load(&srv.worker_ready)) {
        sched_yield();
    }

    Conn conns[CLIENTS];
    static const char *const reqs[CLIENTS] = {"hello", "aiopoll", "libevent"};
    for (int i = 0; i < CLIENTS; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
            perror("socketpair");
            return 1;
        }
        conns[i] = (Conn){.srv = &srv, .fd = sv[0], .client = sv[1]};
        conns[i].ev = event_new(srv.base, sv[0], EV_READ | EV_PERSIST, on_readable, &conns[i]);
        event_add(conns[i].ev, NULL);
        if (write(sv[1], reqs[i], strlen(reqs[i])) < 0) {
            perror("write");
        }
    }

    event_base_dispatch(srv.base);

    aio_bh_schedule_oneshot(srv.worker, worker_stop, &srv);
    pthread_join(srv.worker_thread, NULL);
    aio_context_unref(srv.worker);
    for (int i = 0; i < CLIENTS; i++) {
        event_free(conns[i].ev);
        close(conns[i].fd);
        close(conns[i].client);
    }
    aio_context_detach_event_base(srv.main_ctx);
    aio_context_unref(srv.main_ctx);
    event_base_free(srv.base);
    printf("done: %d replies\n", srv.replies);
    return 0;
}
