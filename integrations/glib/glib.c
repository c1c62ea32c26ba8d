/* SPDX-License-Identifier: MIT */
/* aio_context_gsource_new(): the generic embedding API in GLib's own shape. */
#include <aiopoll/glib.h>

#include <errno.h>
#include <limits.h>
#include <stddef.h>

#include "host-fds.h"

/* The host pointer every adapter hands aio_embed_attach() points to the
 * address of its own tag, so that another adapter's detach(ctx) can tell
 * that ctx is not attached to it (docs/embedding.md). */
static const char glib_kind[] = "glib";

typedef struct AioGSource {
    GSource source;
    const void *kind; /* glib_kind */
    AioContext *ctx;
    AioHostFds fds;
    gpointer *tags; /* g_source_add_unix_fd() tags, parallel to fds.cur */
    size_t ntags;
    gboolean warned_off_home;
} AioGSource;

/* The embedding API refuses every call off the context's home thread
 * (-EPERM), which left a GMainContext iterated elsewhere sleeping for ever
 * without a word: the notifications never kick (nothing is announced) and
 * nothing is dispatched. Say so once per source; the source stays attached
 * and inert (glib.h), and works again once the home thread iterates it. */
static void off_home(AioGSource *g, int r)
{
    if (r == -EPERM && !g->warned_off_home) {
        g->warned_off_home = TRUE;
        g_critical("aiopoll: GMainContext %p iterated off the home thread of AioContext %p: "
                   "the context is not dispatched from this GSource (aio_context_gsource_new)",
                   (void *)g_source_get_context(&g->source), (void *)g->ctx);
    }
}

static GIOCondition condition(const AioEmbedFd *f)
{
    return (GIOCondition)((f->events & AIO_EMBED_READ ? G_IO_IN : 0) |
                          (f->events & AIO_EMBED_WRITE ? G_IO_OUT : 0));
}

/* The host must watch exactly what the last query returned. */
static void sync_fds(AioGSource *g)
{
    if (aio_host_fds_update(g->ctx, &g->fds) <= 0) {
        return; /* unchanged, or failed: keep the old set, check still runs */
    }
    for (size_t i = 0; i < g->ntags; i++) {
        g_source_remove_unix_fd(&g->source, g->tags[i]);
    }
    g->tags = g_renew(gpointer, g->tags, g->fds.ncur);
    for (size_t i = 0; i < g->fds.ncur; i++) {
        g->tags[i] = g_source_add_unix_fd(&g->source, g->fds.cur[i].handle,
                                          condition(&g->fds.cur[i]));
    }
    g->ntags = g->fds.ncur;
}

static gboolean gs_prepare(GSource *source, gint *timeout)
{
    AioGSource *g = (AioGSource *)source;
    int64_t ns = -1;
    int r = aio_embed_prepare(g->ctx, &ns);
    off_home(g, r);
    sync_fds(g);
    *timeout = r < 0 ? -1 : (gint)aio_host_timeout_ms(ns, INT_MAX);
    return r > 0;
}

static gboolean gs_check(GSource *source)
{
    AioGSource *g = (AioGSource *)source;
    int r = aio_embed_check(g->ctx);
    off_home(g, r);
    return r > 0;
}

static gboolean gs_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    (void)cb;
    (void)data;
    aio_embed_dispatch(((AioGSource *)source)->ctx);
    return G_SOURCE_CONTINUE;
}

/* GLib never runs it concurrently with our other callbacks, so detaching
 * here is allowed on whichever thread dropped the last reference. GLib has
 * already forgotten the unix fds. */
static void gs_finalize(GSource *source)
{
    AioGSource *g = (AioGSource *)source;
    aio_embed_detach(g->ctx);
    aio_host_fds_fini(&g->fds);
    g_free(g->tags);
}

static GSourceFuncs aio_gsource_funcs = {
    .prepare = gs_prepare,
    .check = gs_check,
    .dispatch = gs_dispatch,
    .finalize = gs_finalize,
};

/* A nested blocking poll between our prepare and GLib's poll (another
 * source's prepare) accepted a notification: make GLib's coming poll return
 * at once, with GLib's own wake-up, so that we prepare again. */
static void gs_stale(void *host)
{
    AioGSource *g = (AioGSource *)(void *)((char *)host - offsetof(AioGSource, kind));
    g_main_context_wakeup(g_source_get_context(&g->source));
}

GSource *aio_context_gsource_new(AioContext *ctx)
{
    if (!ctx) {
        return NULL;
    }
    GSource *source = g_source_new(&aio_gsource_funcs, sizeof(AioGSource));
    AioGSource *g = (AioGSource *)source;
    g->ctx = ctx;
    g->kind = glib_kind;
    if (aio_embed_attach(ctx, &g->kind) != 0) {
        g->ctx = NULL; /* finalize must not detach what we never attached */
        g_source_unref(source);
        return NULL;
    }
    aio_embed_set_stale_handler(ctx, gs_stale);
    g_source_set_name(source, "aiopoll");
    /* A callback of ctx may run a nested main loop that waits for more of
     * ctx's work (QEMU does the same with its AioContext source). */
    g_source_set_can_recurse(source, TRUE);
    return source;
}
