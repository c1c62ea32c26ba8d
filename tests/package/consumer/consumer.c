/* SPDX-License-Identifier: MIT */
/* Uses the library only through the installed header and target. */
#include <stdio.h>
#include <string.h>

#include <aiopoll/aio.h>

static void bh_cb(void *opaque)
{
    ++*(int *)opaque;
}

int main(void)
{
    char expect[32];
    snprintf(expect, sizeof(expect), "%d.%d.%d", AIOPOLL_VERSION_MAJOR, AIOPOLL_VERSION_MINOR,
             AIOPOLL_VERSION_PATCH);
    if (strcmp(expect, aiopoll_version()) != 0) {
        fprintf(stderr, "header %s but library %s\n", expect, aiopoll_version());
        return 1;
    }
    AioContext *ctx = aio_context_new();
    if (!ctx) {
        return 1;
    }
    int ran = 0;
    aio_bh_schedule_oneshot(ctx, bh_cb, &ran);
    int r = aio_poll(ctx, true);
    printf("consumer: aiopoll %s, backend %s, aio_poll=%d, bh ran %d time(s)\n", aiopoll_version(),
           aio_context_backend(ctx), r, ran);
    aio_context_unref(ctx);
    return r == 1 && ran == 1 ? 0 : 1;
}
