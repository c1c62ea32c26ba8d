/* SPDX-License-Identifier: MIT */
/* Scenario "work": the worker pool against libuv and GLib (bench-work.c). */
#ifndef AIOPOLL_BENCH_WORK_H
#define AIOPOLL_BENCH_WORK_H

#include <stdbool.h>

void bench_work(bool quick);

#endif
