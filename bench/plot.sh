#!/bin/sh
# SPDX-License-Identifier: MIT
# Turns aiopoll-bench's CSV into a chart (needs gnuplot; gnuplot-nox will do).
#
#   bench/plot.sh perf.csv [docs/perf.svg]
#
# Left: round-trip medians (log scale) of the latency scenarios, one bar per
# contender. Right: bottom-half throughput (ops/s). The output format follows
# the file name: .svg or .png. A CSV appended over several commits (the commit
# column) is plotted for its last commit only.
set -eu

csv=${1:?usage: plot.sh FILE.csv [OUT.svg|OUT.png]}
out=${2:-docs/perf.svg}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not found" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The rows of the last commit in the file (all rows of a file without one).
awk -F, '
  NR == 1 { for (i = 1; i <= NF; i++) if ($i == "commit") c = i; hdr = $0; next }
  { row[NR] = $0; com[NR] = c ? $c : ""; last = com[NR] }
  END { print hdr; for (i = 2; i <= NR; i++) if (com[i] == last) print row[i] }
  ' "$csv" > "$tmp/last.csv"
csv=$tmp/last.csv

# Latency table: one row per scenario/param, columns aiopoll, libevent, libuv,
# GLib, libev, floor (the best floor of the row: eventfd+ppoll, futex,
# lazy eventfd, epoll_wait or spin), in microseconds.
awk -F, '
  NR == 1 { next }
  $5 == "ns" && $4 == "round trip" && ($1 == "wakeup" || $1 == "idle" || $1 == "adaptive") {
    key = $1 ($2 == "-" ? "" : " " $2)
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    v = $6 / 1000
    if ($3 == "aiopoll") a[key] = v
    else if ($3 == "libevent" || $3 == "aiopoll-sleeping") l[key] = v
    else if ($3 == "libuv") u[key] = v
    else if ($3 == "glib") g[key] = v
    else if ($3 == "libev") e[key] = v
    else if ($3 ~ /^floor/ && (!(key in f) || v < f[key])) f[key] = v
  }
  function val(arr, k) { return (k in arr) ? arr[k] : "NaN" }
  END {
    for (i = 1; i <= n; i++) {
      k = order[i]
      printf "\"%s\" %s %s %s %s %s %s\n", k, val(a, k), val(l, k), val(u, k), val(g, k),
             val(e, k), val(f, k)
    }
  }' "$csv" > "$tmp/lat.dat"

awk -F, '
  NR == 1 { next }
  $1 == "bh" && $4 == "ops/s" {
    if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 }
    if ($3 == "aiopoll") a[$2] = $6 / 1e6; else l[$2] = $6 / 1e6
  }
  END { for (i = 1; i <= n; i++) printf "\"%s\" %s %s\n", order[i], a[order[i]], l[order[i]] }
  ' "$csv" > "$tmp/bh.dat"

case $out in
  *.png) term="pngcairo size 1400,600 font 'sans,10'" ;;
  *) term="svg size 1400,600 dynamic font 'sans,10'" ;;
esac

gnuplot <<EOF
set terminal $term
set output '$out'
set multiplot layout 1,2 title "aiopoll-bench (medians; see docs/performance.md). In 'adaptive', the libevent bar is aiopoll without polling."
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top left
set xtics rotate by -30 noenhanced
set logscale y
set ylabel "round trip, microseconds (log)"
set title "Wake-up round trips"
plot '$tmp/lat.dat' using 2:xtic(1) title 'aiopoll' lc rgb '#1f77b4', \
     '' using 3 title 'libevent' lc rgb '#ff7f0e', \
     '' using 4 title 'libuv' lc rgb '#2ca02c', \
     '' using 5 title 'GLib' lc rgb '#d62728', \
     '' using 6 title 'libev' lc rgb '#9467bd', \
     '' using 7 title 'best raw syscall / spin floor' lc rgb '#7f7f7f'
unset logscale y
set ylabel "million callbacks per second"
set title "Bottom halves on one thread (schedule + dispatch)"
plot '$tmp/bh.dat' using 2:xtic(1) title 'aiopoll' lc rgb '#1f77b4', \
     '' using 3 title 'libevent event\_active' lc rgb '#ff7f0e'
unset multiplot
EOF
echo "wrote $out"
