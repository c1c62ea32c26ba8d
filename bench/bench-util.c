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
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

int64_t bu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t bu_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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

double bu_median_copy(const double *v, size_t n)
{
    if (n == 0) {
        return NAN;
    }
    bu_samples c = {0};
    for (size_t i = 0; i < n; i++) {
        bu_add(&c, v[i]);
    }
    double m = bu_quantile(&c, 0.5);
    bu_free(&c);
    return m;
}

void bu_free(bu_samples *s)
{
    free(s->v);
    *s = (bu_samples){0};
}

typedef struct row {
    char scenario[40], param[24], variant[24], metric[32], unit[16];
    double median, tail, spread, syscalls, vcsw, ivcsw;
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
    r->spread = r->syscalls = r->vcsw = r->ivcsw = NAN;
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
    char m[32], t[32], extra[96] = "";
    fmt_value(m, sizeof(m), r->median, r->unit);
    size_t len = 0;
    if (!isnan(r->spread)) {
        len += (size_t)snprintf(extra + len, sizeof(extra) - len, "  spread %.1f%%",
                                100 * r->spread);
    }
    if (!isnan(r->syscalls)) {
        len += (size_t)snprintf(extra + len, sizeof(extra) - len, "  sc %.2f", r->syscalls);
    }
    if (!isnan(r->vcsw)) {
        snprintf(extra + len, sizeof(extra) - len, "  cs %.2f+%.2f", r->vcsw, r->ivcsw);
    }
    if (r->single) {
        printf("  %-10s %-22s %-24s %14s%s\n", r->param, r->variant, r->metric, m, extra);
    } else {
        fmt_value(t, sizeof(t), r->tail, r->unit);
        printf("  %-10s %-22s %-24s %14s %14s  (n=%zu)%s\n", r->param, r->variant, r->metric, m,
               t, r->n, extra);
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

void bu_report_ex(const char *scenario, const char *param, const char *variant,
                  const char *metric, const char *unit, bool higher_better, bu_samples *s,
                  const bu_extra *x)
{
    row *r = new_labelled_row(scenario, param, variant, metric, unit);
    r->higher_better = higher_better;
    r->n = s->n;
    r->median = bu_quantile(s, 0.5);
    r->tail = bu_quantile(s, higher_better ? 0.01 : 0.99);
    if (x) {
        if (x->reps && x->reps->n >= 2) {
            double mid = bu_quantile(x->reps, 0.5);
            r->spread = (x->reps->v[x->reps->n - 1] - x->reps->v[0]) / mid;
        }
        r->syscalls = x->syscalls;
        r->vcsw = x->vcsw;
        r->ivcsw = x->ivcsw;
    }
    print_row(r);
}

void bu_report(const char *scenario, const char *param, const char *variant, const char *metric,
               const char *unit, bool higher_better, bu_samples *s)
{
    bu_report_ex(scenario, param, variant, metric, unit, higher_better, s, NULL);
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

static const char csv_header[] = "scenario,param,variant,metric,unit,median,tail,samples,"
                                  "spread,syscalls,vcsw,ivcsw,commit,machine,mode\n";

/* A CSV field from free text: the bench writes no quoting, so a comma
 * becomes a semicolon (and a line break a space). */
static void csv_field(char *s)
{
    for (; *s; s++) {
        *s = *s == ',' ? ';' : *s == '\n' || *s == '\r' ? ' ' : *s;
    }
}

const char *bu_machine(void)
{
    static char id[256];
    if (id[0]) {
        return id;
    }
    char model[128] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof(line), f)) {
            if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
                const char *v = strchr(line, ':') + 1;
                v += strspn(v, " \t");
                snprintf(model, sizeof(model), "%.*s", (int)strcspn(v, "\n"), v);
                break;
            }
        }
        fclose(f);
    }
    struct utsname u;
    if (uname(&u) != 0) {
        snprintf(u.sysname, sizeof(u.sysname), "?");
        snprintf(u.release, sizeof(u.release), "?");
    }
    snprintf(id, sizeof(id), "%s/%ld CPUs/%s %s", model, sysconf(_SC_NPROCESSORS_ONLN), u.sysname,
             u.release);
    csv_field(id);
    return id;
}

int bu_write_csv(const char *path, const char *commit, const char *mode)
{
    char first[256] = "";
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(first, sizeof(first), f)) {
            first[0] = '\0';
        }
        fclose(f);
        /* An older layout would shift every column under plot.sh and
         * --compare: start a new file instead of mixing them. */
        if (first[0] && strcmp(first, csv_header) != 0) {
            return -EINVAL;
        }
    }
    f = fopen(path, "a");
    if (!f) {
        return -errno;
    }
    if (!first[0]) {
        fputs(csv_header, f);
    }
    for (size_t i = 0; i < nrows; i++) {
        const row *r = &rows[i];
        fprintf(f, "%s,%s,%s,%s,%s,%.6g,%.6g,%zu,%.4g,%.4g,%.4g,%.4g,%s,%s,%s\n", r->scenario,
                r->param, r->variant, r->metric, r->unit, r->median, r->tail, r->n, r->spread,
                r->syscalls, r->vcsw, r->ivcsw, commit, bu_machine(), mode);
    }
    return fclose(f) == 0 ? 0 : -errno;
}

/* Splits a CSV line (no quoting: the bench writes none) in place. */
static int split_csv(char *line, char **field, int max)
{
    int n = 0;
    line[strcspn(line, "\r\n")] = '\0';
    for (char *s = line; n < max;) {
        field[n++] = s;
        char *c = strchr(s, ',');
        if (!c) {
            break;
        }
        *c = '\0';
        s = c + 1;
    }
    return n;
}

static bool hot_path_row(const row *r)
{
    static const char *scen[] = {"wakeup", "flood", "hot", "bh", "idle"};
    bool ours = !strncmp(r->variant, "aiopoll", 7) || !strncmp(r->variant, "aio_", 4) ||
                !strcmp(r->scenario, "hot");
    if (!ours || strstr(r->metric, "syscalls")) {
        return false;
    }
    for (size_t i = 0; i < sizeof(scen) / sizeof(scen[0]); i++) {
        if (!strcmp(r->scenario, scen[i])) {
            return true;
        }
    }
    return false;
}

int bu_compare(const char *path, const char *mode)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return -errno;
    }
    double *old = malloc((nrows ? nrows : 1) * sizeof(*old));
    char (*oldc)[48] = calloc(nrows ? nrows : 1, sizeof(*oldc));
    if (!old || !oldc) {
        fclose(f);
        free(old);
        free(oldc);
        return -ENOMEM;
    }
    for (size_t i = 0; i < nrows; i++) {
        old[i] = NAN;
    }
    char line[512];
    /* Older files have no commit column; columns are found by name. */
    int c_scen = -1, c_param = -1, c_var = -1, c_metric = -1, c_med = -1, c_commit = -1;
    int c_machine = -1, c_mode = -1;
    if (fgets(line, sizeof(line), f)) {
        char *fl[16];
        int n = split_csv(line, fl, 16);
        for (int i = 0; i < n; i++) {
            c_scen = strcmp(fl[i], "scenario") ? c_scen : i;
            c_param = strcmp(fl[i], "param") ? c_param : i;
            c_var = strcmp(fl[i], "variant") ? c_var : i;
            c_metric = strcmp(fl[i], "metric") ? c_metric : i;
            c_med = strcmp(fl[i], "median") ? c_med : i;
            c_commit = strcmp(fl[i], "commit") ? c_commit : i;
            c_machine = strcmp(fl[i], "machine") ? c_machine : i;
            c_mode = strcmp(fl[i], "mode") ? c_mode : i;
        }
    }
    if (c_scen < 0 || c_param < 0 || c_var < 0 || c_metric < 0 || c_med < 0) {
        fclose(f);
        free(old);
        free(oldc);
        return -EINVAL;
    }
    /* The file is appended per commit: the last row of a key is the newest.
     * Only rows measured on this machine are a baseline. A figure from
     * another CPU or kernel differs by more than any spread (stop 16's AMD
     * VM against the Intel one: a system call cost half as much), so
     * comparing across machines flags "regressions" that are the machine,
     * and hides real ones. */
    const char *machine = bu_machine();
    size_t other = 0, mine = 0;
    char base_mode[16] = "";
    while (fgets(line, sizeof(line), f)) {
        char *fl[16];
        int n = split_csv(line, fl, 16);
        if (n <= c_med || n <= c_metric) {
            continue;
        }
        if (c_machine >= 0 && (n <= c_machine || strcmp(fl[c_machine], machine) != 0)) {
            other++;
            continue;
        }
        mine++;
        if (c_mode >= 0 && c_mode < n) {
            snprintf(base_mode, sizeof(base_mode), "%s", fl[c_mode]);
        }
        const row *r = find_row(fl[c_scen], fl[c_param], fl[c_var], fl[c_metric]);
        if (r) {
            old[r - rows] = strtod(fl[c_med], NULL);
            snprintf(oldc[r - rows], sizeof(oldc[0]), "%s",
                     c_commit >= 0 && c_commit < n ? fl[c_commit] : "?");
        }
    }
    fclose(f);
    printf("\n== compare with %s (change of the median; spread = (max-min)/median of this "
           "run's repetitions)\n",
           path);
    if (c_machine < 0) {
        printf("  # %s records no machine: every row is taken as this machine's\n", path);
    } else {
        printf("  # this machine: %s; %zu row(s) of the file are from it, %zu from other "
               "machines (not compared)\n",
               machine, mine, other);
        if (mine && base_mode[0] && strcmp(base_mode, mode) != 0) {
            printf("  # the newest baseline rows are from a %s run, this is a %s run: fewer "
                   "samples, wider spread\n",
                   base_mode, mode);
        }
    }
    printf("  %-9s %-10s %-22s %-22s %12s %12s %8s %8s  %s\n", "scenario", "param", "variant",
           "metric", "before", "now", "change", "spread", "verdict");
    int regressed = 0;
    for (size_t i = 0; i < nrows; i++) {
        const row *r = &rows[i];
        if (isnan(old[i]) || isnan(r->median) || old[i] == 0) {
            continue;
        }
        double change = (r->median - old[i]) / old[i];
        double worse = r->higher_better ? -change : change;
        const char *verdict;
        if (isnan(r->spread)) {
            verdict = "no spread measured";
        } else if (fabs(change) <= r->spread) {
            verdict = "within spread";
        } else if (worse > 0) {
            bool hot = hot_path_row(r);
            regressed += hot;
            verdict = hot ? "REGRESSED (hot path)" : "worse";
        } else {
            verdict = "better";
        }
        char b[32], n[32], sp[16] = "-";
        fmt_value(b, sizeof(b), old[i], r->unit);
        fmt_value(n, sizeof(n), r->median, r->unit);
        if (!isnan(r->spread)) {
            snprintf(sp, sizeof(sp), "%.1f%%", 100 * r->spread);
        }
        printf("  %-9s %-10s %-22s %-22s %12s %12s %+7.1f%% %8s  %s (vs %s)\n", r->scenario,
               r->param, r->variant, r->metric, b, n, 100 * change, sp, verdict, oldc[i]);
    }
    printf("  %d hot-path row(s) regressed beyond their spread\n", regressed);
    free(old);
    free(oldc);
    return regressed;
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
static char sc_why[160];

int bu_sc_open_tid(int tid)
{
    int id = tracepoint_id();
    if (id < 0) {
        sc_state = -1;
        snprintf(sc_why, sizeof(sc_why),
                 "n/a: no raw_syscalls/sys_enter in tracefs (mount it: mount -t tracefs "
                 "nodev /sys/kernel/tracing)");
        return -1;
    }
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.size = sizeof(attr);
    attr.config = (uint64_t)id;
    attr.sample_period = 0;
    attr.disabled = 0;
    int fd = (int)syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        int paranoid = -9;
        FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "r");
        if (f) {
            if (fscanf(f, "%d", &paranoid) != 1) {
                paranoid = -9;
            }
            fclose(f);
        }
        snprintf(sc_why, sizeof(sc_why),
                 "n/a: perf_event_open refused (%s; kernel.perf_event_paranoid=%d, seccomp "
                 "or missing CAP_PERFMON)",
                 strerror(err), paranoid);
    }
    sc_state = fd >= 0 ? 1 : -1;
    return fd;
}

int bu_sc_open(void)
{
    return bu_sc_open_tid(0);
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
    return sc_state > 0 ? "perf tracepoint raw_syscalls:sys_enter per thread (exact)"
           : sc_why[0]  ? sc_why
                        : "n/a: not tried";
}

int bu_gettid(void)
{
    return (int)syscall(SYS_gettid);
}

int bu_ctxsw_read(int tid, long *vol, long *invol)
{
    char path[64], line[128];
    snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    int found = 0;
    while (fgets(line, sizeof(line), f)) {
        found += sscanf(line, "voluntary_ctxt_switches: %ld", vol) == 1;
        found += sscanf(line, "nonvoluntary_ctxt_switches: %ld", invol) == 1;
    }
    fclose(f);
    return found == 2 ? 0 : -1;
}
