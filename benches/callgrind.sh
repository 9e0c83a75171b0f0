#!/usr/bin/env bash
# Instructions per packet of decode + classify + detect, counted by callgrind: stable where
# wall-clock timings are noisy. Runs examples/pipeline_loop at two round counts and divides the
# difference by the difference in packets, so set-up (corpus, tables) cancels out.
#
#   benches/callgrind.sh            # mixed (craft::mixed_corpus), udp64 and udp64v6 (the same
#                                   # flood over IPv6)
#
# Needs valgrind (Debian valgrind). Prints one line per corpus and a `SUMMARY {json}` line.
set -euo pipefail
cd "$(dirname "$0")/.."
# The binary and the two round counts (benches/pipeline_loop.sh).
. benches/pipeline_loop.sh "10 60"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
summary=()
for corpus in mixed udp64 udp64v6; do
  declare -A ir packets
  for rounds in "$r1" "$r2"; do
    packets[$rounds]=$(valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" "$rounds" "$corpus" 2>"$out/log")
    ir[$rounds]=$(grep -o 'Collected : [0-9]*' "$out/log" | grep -o '[0-9]*$')
  done
  per=$(( (ir[$r2] - ir[$r1]) / (packets[$r2] - packets[$r1]) ))
  echo "$corpus: $per instructions per packet (decode + route + detect, every detector on)"
  summary+=("\"$corpus\": $per")
done
echo "SUMMARY {\"instructions_per_packet\": {$(IFS=,; echo "${summary[*]}")}}"
