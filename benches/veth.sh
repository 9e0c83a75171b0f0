#!/usr/bin/env bash
# Capture throughput on a veth pair: scramd against tcpdump and netsniff-ng under trafgen.
#
#   sudo benches/veth.sh                      # 3 rounds x 5 s per tool and profile (~5 minutes)
#   sudo benches/veth.sh --rounds 1 --seconds 1   # a quick look
#
# Needs root, trafgen and netsniff-ng (Debian netsniff-ng), tcpdump, python3; builds scramd in
# release mode first. Prints a Markdown table and a `SUMMARY {json}` line. See benches/veth.py.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
# Debian's python3 (python3-matplotlib draws the scaling plot), whatever else is on PATH.
exec /usr/bin/python3 benches/veth.py --scramd "$PWD/target/release/scramd" "$@"
