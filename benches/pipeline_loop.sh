# Sourced by benches/wall.sh and benches/callgrind.sh (from the repository's root): sets `bin` to
# the examples/pipeline_loop to run and `r1` `r2` to its two round counts.
#
# SCRAM_BENCH_BIN (a pipeline_loop built elsewhere) and SCRAM_BENCH_ROUNDS ("R1 R2") are for
# tests/benches.rs, which runs each script once, briefly, on a debug build. Without them: a
# release build made now, and the script's own round counts ($1).
bin="${SCRAM_BENCH_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --locked --quiet --example pipeline_loop
  bin=target/release/examples/pipeline_loop
fi
read -r r1 r2 <<< "${SCRAM_BENCH_ROUNDS:-$1}"
