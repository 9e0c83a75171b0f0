#!/usr/bin/env bash
# Wall-clock nanoseconds per packet of decode + route + detect, on one pinned core, without the
# kernel, the ring or a traffic generator: examples/pipeline_loop at two round counts, the
# difference divided by the difference in packets (set-up cancels out), median of 5.
#
#   benches/wall.sh                  # udp64k, udp64 and mixed
#   benches/wall.sh udp64k           # one corpus
#
# udp64k (65,536 flows, as benches/veth.sh's 64-byte profile) shows what waiting for memory
# costs, which callgrind's instruction counts cannot; udp64 (4,096 flows) stays in cache.
# Timings on a shared machine move by several percent: compare builds in one run, alternating.
set -euo pipefail
cd "$(dirname "$0")/.."
# The binary and the two round counts (benches/pipeline_loop.sh).
. benches/pipeline_loop.sh "4 44"
cpu=$(( $(nproc) - 1 ))
ns() { date +%s%N; }
corpora=("$@")
[ ${#corpora[@]} -gt 0 ] || corpora=(udp64k udp64 mixed)
summary=()
for corpus in "${corpora[@]}"; do
  runs=()
  for _ in 1 2 3 4 5; do
    s1=$(ns); p1=$(taskset -c "$cpu" "$bin" "$r1" "$corpus"); e1=$(ns)
    s2=$(ns); p2=$(taskset -c "$cpu" "$bin" "$r2" "$corpus"); e2=$(ns)
    runs+=($(( ((e2 - s2) - (e1 - s1)) * 10 / (p2 - p1) )))
  done
  median=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 3p | awk '{printf "%.1f", $1 / 10}')
  echo "$corpus: $median ns per packet (median of 5, CPU $cpu)"
  summary+=("\"$corpus\": $median")
done
echo "SUMMARY {\"ns_per_packet\": {$(IFS=,; echo "${summary[*]}")}}"
