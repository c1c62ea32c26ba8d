/* SPDX-License-Identifier: MIT */
/* Statistics, result table, CSV and system-call counting for aiopoll-bench. */
#ifndef AIOPOLL_BENCH_UTIL_H
#define AIOPOLL_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- time ----------------------------------------------------------------- */

int64_t bu_now_ns(void);
/* The calling thread's CPU time: for the one-thread scenarios, so that the
 * time other processes run on this CPU does not count (a system call, not
 * vDSO: read it outside the timed loop only). */
int64_t bu_cpu_ns(void);
void bu_cpu_relax(void);

/* ---- samples ---------------------------------------------------------------- */

typedef struct bu_samples {
    double *v;
    size_t n, cap;
} bu_samples;

void bu_add(bu_samples *s, double x);
/* The q-quantile (0..1) by nearest rank; sorts s in place. NaN when empty. */
double bu_quantile(bu_samples *s, double q);
void bu_free(bu_samples *s);
/* Median of v[0..n) without reordering it. NaN when n == 0. */
double bu_median_copy(const double *v, size_t n);

/* ---- results ---------------------------------------------------------------- */

/* One line of output: a scenario, a parameter (e.g. "N=1024"), a variant
 * ("aiopoll", "libevent", "floor", ...), a metric and its unit. For rates
 * (higher_better) the tail column is the 1st percentile (the slow tail), for
 * latencies the 99th. */
void bu_report(const char *scenario, const char *param, const char *variant, const char *metric,
               const char *unit, bool higher_better, bu_samples *s);
/* What a row can carry beside its distribution. */
typedef struct bu_extra {
    /* The medians of the repetitions, for the run-to-run spread
     * (max - min) / median that --compare judges changes against; NULL when
     * the row has no repetitions. */
    bu_samples *reps;
    /* Counted per operation over every thread of the contender; NaN when
     * not counted. */
    double syscalls, vcsw, ivcsw;
} bu_extra;
#define BU_EXTRA_NONE ((bu_extra){.syscalls = NAN, .vcsw = NAN, .ivcsw = NAN})
void bu_report_ex(const char *scenario, const char *param, const char *variant,
                  const char *metric, const char *unit, bool higher_better, bu_samples *s,
                  const bu_extra *x);
/* Like bu_report for a single measured value (no distribution). */
void bu_report_value(const char *scenario, const char *param, const char *variant,
                     const char *metric, const char *unit, double value);
/* Prints "ratio aiopoll/<peer>" lines for the rows of (scenario, param,
 * metric) reported so far. */
void bu_print_ratios(const char *scenario, const char *param, const char *metric,
                     const char *base_variant);
/* Median of a reported row, NaN if none. */
double bu_median_of(const char *scenario, const char *param, const char *variant,
                    const char *metric);
void bu_note(const char *fmt, ...);
/* This machine, as the CSV's machine column names it: CPU model, online
 * CPUs, kernel ("AMD EPYC/2 CPUs/Linux 6.18.44-fc-v1098"). */
const char *bu_machine(void);
/* Appends the rows to path, labelled with commit, this machine and mode
 * ("full" or "quick"). A new file gets the header; an existing one must
 * have the same header. */
int bu_write_csv(const char *path, const char *commit, const char *mode);
/* --compare: prints every row of this run against the newest row with the
 * same key measured on this machine in path (a previous --csv), with the
 * change and this run's spread; mode is this run's, for the header. Returns
 * the number of aiopoll hot-path rows (scenarios wakeup, flood, hot, bh,
 * idle) that got worse by more than their spread, or a negative errno. */
int bu_compare(const char *path, const char *mode);

/* ---- system-call counting ------------------------------------------------- */

/* Counts the system calls the calling thread enters, through the perf
 * tracepoint raw_syscalls:sys_enter (exact; needs perf_event_open permission
 * and tracefs). bu_sc_open returns -1 when unavailable. */
int bu_sc_open(void);
/* The same for thread tid of this process (0: the calling thread). */
int bu_sc_open_tid(int tid);
int64_t bu_sc_read(int fd); /* -1 on error */
void bu_sc_close(int fd);
/* How syscalls are counted in this run, or why they are not, for the output. */
const char *bu_sc_method(void);

/* Voluntary and involuntary context switches of thread tid of this process
 * so far (/proc/self/task/TID/status); -1 when unreadable. */
int bu_ctxsw_read(int tid, long *vol, long *invol);
int bu_gettid(void);

#endif
