#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 30) on its corpus (fuzz/corpus/T, grown
# from the committed seeds in fuzz/seeds/T) and fails on the first crash. Needs a nightly
# toolchain and cargo-fuzz (`.ci/run` installs both). A crash leaves its input in
# fuzz/artifacts/T/: turn it into a regression test, then fix.
#   fuzz/run.sh 45                # CI's smoke run
#   fuzz/run.sh 0 h1_server       # no time limit, one target (stop with ^C), or:
#   RUNS=10000000 SANITIZER=none fuzz/run.sh 0 h1_chunked   # a 10^7-execution campaign
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(h1_request_head h1_chunked h1_response_body h1_server route_normalize ajp_packets httpd_config toml_config)
fi
# AddressSanitizer by default (balancerd has a little unsafe code); SANITIZER=none runs
# several times faster for long campaigns.
san=${SANITIZER:-address}
cargo +nightly fuzz build -O -s "$san"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  args=(-max_len=16384 -print_final_stats=1)
  [ "$secs" -gt 0 ] && args+=(-max_total_time="$secs")
  [ -n "${RUNS:-}" ] && args+=(-runs="$RUNS")
  echo "== $t"
  if ! cargo +nightly fuzz run -O -s "$san" "$t" "corpus/$t" "seeds/$t" -- "${args[@]}" >"artifacts/$t/log.txt" 2>&1; then
    tail -40 "artifacts/$t/log.txt"
    echo "fuzz target $t failed: see fuzz/artifacts/$t/"
    exit 1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "artifacts/$t/log.txt" | tr '\n' ' '
  echo
done
