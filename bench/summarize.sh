#!/bin/sh
# SPDX-License-Identifier: MIT
# Summarises repeated aiopoll-bench runs (docs/performance.md, "Reproducing"):
# per row, the median of the runs' medians, their lowest and highest, the
# spread across runs ((max-min)/median), the largest spread within a run
# (the one --compare uses) and the counted system calls and context switches
# per operation of the last run.
#
#   bench/summarize.sh run1.csv run2.csv run3.csv [| grep wakeup]
set -eu
[ $# -ge 1 ] || { echo "usage: summarize.sh RUN.csv..." >&2; exit 2; }
awk -F, '
  FNR == 1 {
    for (i = 1; i <= NF; i++) col[$i] = i
    next
  }
  {
    key = $col["scenario"] "|" $col["param"] "|" $col["variant"] "|" $col["metric"]
    if (!(key in n)) order[++nk] = key
    v[key, ++n[key]] = $col["median"] + 0
    unit[key] = $col["unit"]
    if (("spread" in col) && $col["spread"] != "nan" && (!(key in ins) || $col["spread"] > ins[key]))
      ins[key] = $col["spread"] + 0
    sc[key] = ("syscalls" in col) ? $col["syscalls"] : "nan"
    cs[key] = ("vcsw" in col) ? $col["vcsw"] "+" $col["ivcsw"] : "nan"
  }
  END {
    printf "%-10s %-11s %-24s %-20s %11s %11s %11s %7s %7s %7s %s\n", "scenario", "param",
           "variant", "metric", "median", "min", "max", "runs", "in-run", "sc/op", "cs/op"
    for (k = 1; k <= nk; k++) {
      key = order[k]; m = n[key]
      for (i = 1; i <= m; i++) s[i] = v[key, i]
      for (i = 2; i <= m; i++) for (j = i; j > 1 && s[j - 1] > s[j]; j--) {
        t = s[j]; s[j] = s[j - 1]; s[j - 1] = t
      }
      mid = (m % 2) ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
      split(key, f, "|")
      inrun = (key in ins) ? sprintf("%6.1f%%", 100 * ins[key]) : "    n/a"
      printf "%-10s %-11s %-24s %-20s %11.4g %11.4g %11.4g %6.1f%% %7s %7s %s\n", f[1], f[2],
             f[3], f[4], mid, s[1], s[m], mid ? 100 * (s[m] - s[1]) / mid : 0, inrun, sc[key],
             cs[key]
    }
  }' "$@"
