/* SPDX-License-Identifier: MIT */
/* Scenario "embed" of aiopoll-bench (bench-embed.c). */
#ifndef AIOPOLL_BENCH_EMBED_H
#define AIOPOLL_BENCH_EMBED_H

#include <stdbool.h>

void bench_scen_embed(bool quick);

#endif
