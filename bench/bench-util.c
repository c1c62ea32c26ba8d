/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "bench-util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int64_t bu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bu_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void bu_add(bu_samples *s, double x)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof(*s->v));
        if (!s->v) {
            perror("realloc");
            exit(1);
        }
    }
    s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bu_quantile(bu_samples *s, double q)
{
    if (s->n == 0) {
        return NAN;
    }
    qsort(s->v, s->n, sizeof(*s->v), cmp_double);
    size_t rank = (size_t)ceil(q * (double)s->n);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > s->n) {
        rank = s->n;
    }
    return s->v[rank - 1];
}

void bu_free(bu_samples *s)
{
    free(s->v);
    *s = (bu_samples){0};
}

typedef struct row {
    char scenario[40], param[24], variant[24], metric[32], unit[16];
    double median, tail;
    size_t n;
    bool higher_better, single;
} row;

static row *rows;
static size_t nrows, caprows;

static row *new_row(void)
{
    if (nrows == caprows) {
        caprows = caprows ? caprows * 2 : 64;
        rows = realloc(rows, caprows * sizeof(*rows));
        if (!rows) {
            perror("realloc");
            exit(1);
        }
    }
    row *r = &rows[nrows++];
    memset(r, 0, sizeof(*r));
    return r;
}

static void fmt_value(char *buf, size_t len, double v, const char *unit)
{
    if (isnan(v)) {
        snprintf(buf, len, "n/a");
    } else if (strcmp(unit, "ns") == 0 && v >= 10000) {
        snprintf(buf, len, "%.2f us", v / 1000);
    } else if (strcmp(unit, "ns") == 0) {
        snprintf(buf, len, "%.1f ns", v);
    } else if (strcmp(unit, "/s") == 0) {
        snprintf(buf, len, "%.3g M/s", v / 1e6);
    } else {
        snprintf(buf, len, "%.4g %s", v, unit);
    }
}

static void print_row(const row *r)
{
    char m[32], t[32];
    fmt_value(m, sizeof(m), r->median, r->unit);
    if (r->single) {
        printf("  %-10s %-22s %-24s %14s\n", r->param, r->variant, r->metric, m);
    } else {
        fmt_value(t, sizeof(t), r->tail, r->unit);
        printf("  %-10s %-22s %-24s %14s %14s  (n=%zu)\n", r->param, r->variant, r->metric, m,
               t, r->n);
    }
    fflush(stdout);
}

static row *new_labelled_row(const char *scenario, const char *param, const char *variant,
                             const char *metric, const char *unit)
{
    row *r = new_row();
    snprintf(r->scenario, sizeof(r->scenario), "%s", scenario);
    snprintf(r->param, sizeof(r->param), "%s", param);
    snprintf(r->variant, sizeof(r->variant), "%s", variant);
    snprintf(r->metric, sizeof(r->metric), "%s", metric);
    snprintf(r->unit, sizeof(r->unit), "%s", unit);
    return r;
}

void bu_report(const char *scenario, const char *param, const char *variant, const char *metric,
               const char *unit, bool higher_better, bu_samples *s)
{
    row *r = new_labelled_row(scenario, param, variant, metric, unit);
    r->higher_better = higher_better;
    r->n = s->n;
    r->median = bu_quantile(s, 0.5);
    r->tail = bu_quantile(s, higher_better ? 0.01 : 0.99);
    print_row(r);
}

void bu_report_value(const char *scenario, const char *param, const char *variant,
                     const char *metric, const char *unit, double value)
{
    row *r = new_labelled_row(scenario, param, variant, metric, unit);
    r->median = r->tail = value;
    r->n = 1;
    r->single = true;
    print_row(r);
}

static const row *find_row(const char *scenario, const char *param, const char *variant,
                           const char *metric)
{
    for (size_t i = nrows; i-- > 0;) {
        const row *r = &rows[i];
        if (!strcmp(r->scenario, scenario) && !strcmp(r->param, param) &&
            !strcmp(r->variant, variant) && !strcmp(r->metric, metric)) {
            return r;
        }
    }
    return NULL;
}

double bu_median_of(const char *scenario, const char *param, const char *variant,
                    const char *metric)
{
    const row *r = find_row(scenario, param, variant, metric);
    return r ? r->median : NAN;
}

void bu_print_ratios(const char *scenario, const char *param, const char *metric,
                     const char *base_variant)
{
    const row *base = find_row(scenario, param, base_variant, metric);
    if (!base) {
        return;
    }
    printf("  %-10s ratio %s/peer (%s, medians):", param, base_variant, metric);
    for (size_t i = 0; i < nrows; i++) {
        const row *r = &rows[i];
        if (r == base || strcmp(r->scenario, scenario) || strcmp(r->param, param) ||
            strcmp(r->metric, metric) || !strcmp(r->variant, base_variant)) {
            continue;
        }
        printf("  vs %s %.2fx", r->variant, base->median / r->median);
    }
    printf("%s\n", base->higher_better ? "  (higher is better)" : "  (lower is better)");
    fflush(stdout);
}

void bu_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  # ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

int bu_write_csv(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        return -errno;
    }
    fprintf(f, "scenario,param,variant,metric,unit,median,tail,samples\n");
    for (size_t i = 0; i < nrows; i++) {
        const row *r = &rows[i];
        fprintf(f, "%s,%s,%s,%s,%s,%.6g,%.6g,%zu\n", r->scenario, r->param, r->variant,
                r->metric, r->unit, r->median, r->tail, r->n);
    }
    return fclose(f) == 0 ? 0 : -errno;
}

static int tracepoint_id(void)
{
    static const char *paths[] = {
        "/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
        "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        FILE *f = fopen(paths[i], "r");
        if (f) {
            int id = -1;
            if (fscanf(f, "%d", &id) != 1) {
                id = -1;
            }
            fclose(f);
            if (id >= 0) {
                return id;
            }
        }
    }
    return -1;
}

static int sc_state; /* 0 unknown, 1 works, -1 unavailable */

int bu_sc_open(void)
{
    int id = tracepoint_id();
    if (id < 0) {
        sc_state = -1;
        return -1;
    }
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.size = sizeof(attr);
    attr.config = (uint64_t)id;
    attr.sample_period = 0;
    attr.disabled = 0;
    int fd = (int)syscall(SYS_perf_event_open, &attr, 0 /* this thread */, -1, -1,
                          PERF_FLAG_FD_CLOEXEC);
    sc_state = fd >= 0 ? 1 : -1;
    return fd;
}

int64_t bu_sc_read(int fd)
{
    if (fd < 0) {
        return -1;
    }
    uint64_t v;
    /* This read() is itself a system call and the tracepoint fires on entry,
     * so every reading counts itself: callers subtract one per reading, or
     * the result of an empty measurement. */
    if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v)) {
        return -1;
    }
    return (int64_t)v;
}

void bu_sc_close(int fd)
{
    if (fd >= 0) {
        close(fd);
    }
}

const char *bu_sc_method(void)
{
    return sc_state > 0 ? "perf tracepoint raw_syscalls:sys_enter on the calling thread (exact)"
                        : "unavailable (no perf_event_open/tracefs); run under 'strace -c -f'";
}
