/* SPDX-License-Identifier: MIT */
/*
 * What the peers of bench-peers.c and bench-libev.c share: the round-trip
 * state every pair needs (done/stop flags, the two pipes of the descriptor
 * round trip, side B's readiness), and the flood mode in which side A only
 * sends and side B only counts.
 */
#ifndef AIOPOLL_BENCH_PEERS_H
#define AIOPOLL_BENCH_PEERS_H

#include <stdatomic.h>
#include <stdbool.h>

#include "bench-pairs.h"

typedef enum bpe_mode {
    BPE_BH,    /* each side's cross-thread wake-up primitive */
    BPE_FD,    /* one byte through a pipe, a read watcher on each side */
    BPE_FLOOD, /* A sends as fast as it can, B counts what it dispatches */
} bpe_mode;

typedef struct bpe_base {
    bpe_mode mode;
    atomic_int done;
    atomic_bool stop;
    atomic_bool ready;              /* side B owns its loop */
    atomic_ullong *dispatches;      /* BPE_FLOOD */
    int pa[2], pb[2];               /* BPE_FD: A reads pa[0], B reads pb[0] */
} bpe_base;

void bpe_base_init(bpe_base *b, const bp_pair_opts *o);
void bpe_base_fini(bpe_base *b);
/* Side B's descriptor handler: take the byte, send one back. */
void bpe_fd_b(bpe_base *b);
/* Side A's descriptor handler: take the byte, end the round trip. */
void bpe_fd_a(bpe_base *b);
/* Starts side B (bp_ext_new) and waits until it announced that it owns its
 * loop. */
bp_pair *bpe_start(const bp_ext_ops *ops, void *impl, bpe_base *b, const char *desc);
/* Why libev is not available (NULL when it is). */
const char *bp_libev_missing(void);

#endif
