/* SPDX-License-Identifier: MIT */
/*
 * aiopoll::glib: an aiopoll context as a GSource (link aiopoll::glib, or
 * pkg-config aiopoll-glib).
 *
 *     GSource *s = aio_context_gsource_new(ctx);   // on ctx's home thread
 *     g_source_attach(s, main_context);            // iterated by that thread
 *     g_source_unref(s);                           // the GMainContext holds it
 *     ...
 *     g_source_destroy(s);                         // detaches ctx
 *
 * The GMainContext must be iterated by the context's home thread, and only
 * by it. Iterated on another thread, the source dispatches nothing and adds
 * no wake-up (the embedding API refuses it with -EPERM), and the first such
 * iteration says so with one g_critical() per source; the source stays
 * attached and works again when the home thread iterates the GMainContext. Everything the context dispatches (bottom halves, fd handlers,
 * event notifiers, timers) runs from the source's dispatch; aio_notify()
 * from any thread wakes the main loop; a nested aio_poll(ctx, true) from any
 * GLib callback on the home thread works. The source may recurse
 * (g_source_set_can_recurse): a callback of ctx may run a nested main loop
 * that waits for more of ctx's work.
 */
#ifndef AIOPOLL_GLIB_H
#define AIOPOLL_GLIB_H

#include <aiopoll/aio.h>
#include <glib.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A new GSource driving ctx (aio_embed_attach()): it holds a reference on ctx
 * until it is finalized. NULL off ctx's home thread, while another GSource (or
 * another host loop) drives ctx, for NULL ctx, or for a backend that cannot
 * be embedded. Its priority is G_PRIORITY_DEFAULT. */
GSource *aio_context_gsource_new(AioContext *ctx);

#ifdef __cplusplus
}
#endif

#endif
