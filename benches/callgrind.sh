#!/usr/bin/env bash
# Instructions per packet of decode + classify + detect, counted by callgrind: stable where
# wall-clock timings are noisy. Runs examples/pipeline_loop at two round counts and divides the
# difference by the difference in packets, so set-up (corpus, tables) cancels out.
#
#   benches/callgrind.sh            # mixed (craft::mixed_corpus), udp64 and udp64v6 (the same
#                                   # flood over IPv6), udp64k (65,536 source ports cycling
#                                   # through a flow table of as many slots, as benches/veth.sh's
#                                   # 64-byte profile sends: most packets open a flow and evict
#                                   # one), spoofed (131,072 sources, twice the flow table:
#                                   # nearly every packet a new source and a new flow),
#                                   # udp64-2w (udp64 with two workers, frames spread by
#                                   # address pair and ports as a flow-hash fanout does, the
#                                   # flood's two hosts in different shards: what routing
#                                   # between the workers costs; `pipeline_loop R mixed 2` is
#                                   # not counted here: which shard owns each of its addresses
#                                   # follows the process's random seed, which moves its count
#                                   # by a few percent from run to run), victims (one host's
#                                   # 64-byte UDP datagrams to 4,096 others, one each a round,
#                                   # as a busy server's answers to many clients) and
#                                   # victims-2w (the same with two workers, the default on two
#                                   # cores: half the datagrams cross to their destination's
#                                   # worker one by one, too few to a host for a tally)
#
# Needs valgrind (Debian valgrind). Prints one line per corpus and a `SUMMARY {json}` line.
set -euo pipefail
cd "$(dirname "$0")/.."
# The binary and the two round counts (benches/pipeline_loop.sh).
. benches/pipeline_loop.sh "10 60"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
summary=()
for corpus in mixed udp64 udp64v6 udp64k spoofed udp64-2w victims victims-2w; do
  # The larger corpora have more frames a round (udp64k 16 times udp64's, spoofed 32 times):
  # fewer rounds, two at least apart.
  case "$corpus" in
    udp64k) d=8 ;;
    spoofed) d=16 ;;
    *) d=1 ;;
  esac
  k1=$(( (r1 + d - 1) / d ))
  k2=$(( (r2 + d - 1) / d ))
  rounds_of=("$k1" "$(( k2 > k1 ? k2 : k1 + 1 ))")
  unset ir packets
  declare -A ir packets
  for rounds in "${rounds_of[@]}"; do
    packets[$rounds]=$(valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" "$rounds" \
      "${corpus%-2w}" "$([ "$corpus" = "${corpus%-2w}" ] && echo 1 || echo 2)" 2>"$out/log")
    ir[$rounds]=$(grep -o 'Collected : [0-9]*' "$out/log" | grep -o '[0-9]*$')
  done
  a=${rounds_of[0]} b=${rounds_of[1]}
  per=$(( (ir[$b] - ir[$a]) / (packets[$b] - packets[$a]) ))
  echo "$corpus: $per instructions per packet (decode + route + detect, every detector on)"
  summary+=("\"$corpus\": $per")
done
echo "SUMMARY {\"instructions_per_packet\": {$(IFS=,; echo "${summary[*]}")}}"
