/* SPDX-License-Identifier: MIT */
/* The live sources by user key (source-index.h). */
#include "source-index.h"

#include <stdint.h>
#include <stdlib.h>

/* A notifier and a descriptor never share a key: the low bit says which
 * (descriptors are shifted, notifiers are at least 2-aligned). */
static uintptr_t key_of(aio_fd_t fd, const AioEventNotifier *n)
{
    return n ? (uintptr_t)n | 1u : (uintptr_t)fd << 1;
}

static uintptr_t src_key(const AioSource *src)
{
    return key_of(src->fd, src->notifier);
}

static size_t hash(uintptr_t k, size_t mask)
{
    uint64_t h = (uint64_t)k * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(h >> 29) & mask;
}

static void place(AioSource **slot, size_t mask, AioSource *src)
{
    size_t j = hash(src_key(src), mask);
    while (slot[j]) {
        j = (j + 1) & mask;
    }
    slot[j] = src;
}

int aio__srcidx_reserve(AioSourceIndex *x)
{
    size_t slots = x->slot ? x->mask + 1 : 0;
    if (2 * (x->n + 1) <= slots) {
        return 0;
    }
    size_t grown = slots ? 2 * slots : 16;
    AioSource **slot = aio__calloc(grown, sizeof(*slot));
    if (!slot) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < slots; i++) {
        if (x->slot[i]) {
            place(slot, grown - 1, x->slot[i]);
        }
    }
    free(x->slot);
    x->slot = slot;
    x->mask = grown - 1;
    return 0;
}

void aio__srcidx_insert(AioSourceIndex *x, AioSource *src)
{
    place(x->slot, x->mask, src);
    x->n++;
}

void aio__srcidx_remove(AioSourceIndex *x, const AioSource *src)
{
    if (!x->slot) {
        return;
    }
    size_t j = hash(src_key(src), x->mask);
    while (x->slot[j] && x->slot[j] != src) {
        j = (j + 1) & x->mask;
    }
    if (!x->slot[j]) {
        return; /* never inserted */
    }
    x->slot[j] = NULL;
    x->n--;
    /* Backward shift: every entry of the run after the hole that may not
     * stay behind it (its home slot is not cyclically in (hole, here])
     * moves into the hole, so no probe meets an empty slot before its key. */
    for (size_t i = (j + 1) & x->mask; x->slot[i]; i = (i + 1) & x->mask) {
        size_t home = hash(src_key(x->slot[i]), x->mask);
        bool stays = j <= i ? (j < home && home <= i) : (j < home || home <= i);
        if (!stays) {
            x->slot[j] = x->slot[i];
            x->slot[i] = NULL;
            j = i;
        }
    }
}

AioSource *aio__srcidx_find(const AioSourceIndex *x, aio_fd_t fd, const AioEventNotifier *n)
{
    if (!x->slot) {
        return NULL;
    }
    uintptr_t k = key_of(fd, n);
    for (size_t j = hash(k, x->mask); x->slot[j]; j = (j + 1) & x->mask) {
        if (src_key(x->slot[j]) == k) {
            return x->slot[j];
        }
    }
    return NULL;
}

void aio__srcidx_fini(AioSourceIndex *x)
{
    free(x->slot);
    *x = (AioSourceIndex){0};
}
