#!/bin/sh
# SPDX-License-Identifier: MIT
# Turns aiopoll-bench's CSV into a chart (needs gnuplot; gnuplot-nox will do).
#
#   bench/plot.sh perf.csv [docs/perf.svg]
#
# Left: round-trip medians (log scale) of the latency scenarios, one bar per
# contender. Right: bottom-half throughput (ops/s). The output format follows
# the file name: .svg or .png.
set -eu

csv=${1:?usage: plot.sh FILE.csv [OUT.svg|OUT.png]}
out=${2:-docs/perf.svg}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not found" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Latency table: one row per scenario/param, columns aiopoll, libevent, floor
# (the best floor of the row: eventfd+ppoll, epoll_wait or spin), in microseconds.
awk -F, '
  NR == 1 { next }
  $5 == "ns" && $4 == "round trip" && ($1 == "wakeup" || $1 == "idle" || $1 == "adaptive") {
    key = $1 ($2 == "-" ? "" : " " $2)
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    v = $6 / 1000
    if ($3 == "aiopoll") a[key] = v
    else if ($3 == "libevent") l[key] = v
    else if ($3 ~ /^floor/ && (!(key in f) || v < f[key])) f[key] = v
    else if ($3 == "aiopoll-sleeping") l[key] = v
  }
  END {
    for (i = 1; i <= n; i++) {
      k = order[i]
      printf "\"%s\" %s %s %s\n", k, (k in a) ? a[k] : "NaN", (k in l) ? l[k] : "NaN",
             (k in f) ? f[k] : "NaN"
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
set multiplot layout 1,2 title "aiopoll-bench (medians; see docs/performance.md). In 'adaptive', the middle bar is aiopoll without polling."
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
     '' using 4 title 'raw syscall / spin floor' lc rgb '#7f7f7f'
unset logscale y
set ylabel "million callbacks per second"
set title "Bottom halves on one thread (schedule + dispatch)"
plot '$tmp/bh.dat' using 2:xtic(1) title 'aiopoll' lc rgb '#1f77b4', \
     '' using 3 title 'libevent event\_active' lc rgb '#ff7f0e'
unset multiplot
EOF
echo "wrote $out"
