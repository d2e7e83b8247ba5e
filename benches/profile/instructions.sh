#!/usr/bin/env bash
# User-space instructions per proxied GET, counted by callgrind over a fixed number of
# requests. Instruction counts barely move on a noisy shared machine (run to run: ±150 of
# ~18,000), where wall-clock and CPU time move by 10–30%: this is how the per-request trims
# in the README's "chosen by measurement" table were measured.
#
#   benches/profile/instructions.sh [BINARY] [REQUESTS]
#
#   BINARY    a balancerd release binary (default: target/release/balancerd, built if missing)
#   REQUESTS  requests counted (default 20000), over 64 keep-alive connections (h2load)
#
# Environment: REQ=api (default: the benchmark's small GET with a ROUTEID cookie) or
# REQ=browser (the same with browser-sized User-Agent, Accept and Accept-Language fields and
# a 450-byte cookie: a change can win on one and lose on the other, as httparse's SIMD does).
# TOP=N also prints the N costliest functions (self cost).
#
# balancerd runs with one worker behind a sticky balancer of two small nginx backends, as in
# benches/compare/run.sh. Instrumentation is switched on after 2,000 warm-up requests, so
# start-up and connection set-up are not counted. The callgrind file is kept for
# `callgrind_annotate` (its path is printed).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/balancerd}
N=${2:-20000}
REQ=${REQ:-api}

need=()
for c in valgrind nginx h2load; do command -v $c >/dev/null 2>&1 || need+=($c); done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${need[@]}" | sed 's/^h2load$/nghttp2-client/' | tr '\n' ' ')
  echo "installing: $pkgs" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
fi
[ -x "$BIN" ] || cargo build --release --bin balancerd

W=$(mktemp -d /tmp/balancerd-instr.XXXXXX)
cleanup() {
  [ -n "${BP:-}" ] && kill "$BP" 2>/dev/null || true
  [ -f "$W/backend.pid" ] && nginx -c "$W/backend.conf" -p "$W" -s stop 2>/dev/null || true
}
trap cleanup EXIT

# shellcheck source=benches/profile/small_setup.sh
. benches/profile/small_setup.sh
small_setup "$W" 9301 9302 8304

headers=(-H 'Cookie: ROUTEID=.T1RWS1')
if [ "$REQ" = browser ]; then
  pad=$(printf 'a%.0s' $(seq 450))
  headers=(
    -H "Cookie: pref=$pad; ROUTEID=.T1RWS1"
    -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36'
    -H 'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
    -H 'Accept-Language: en-GB,en;q=0.9'
  )
fi
URL=http://127.0.0.1:8304/t1/api/x

RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$W/callgrind.out" \
  "$BIN" --threads 1 --config "$W/balancerd.conf" 2>"$W/valgrind.err" &
BP=$!
for _ in $(seq 100); do curl -sf -o /dev/null "$URL" && break; sleep 0.3; done
h2load --h1 -n 2000 -c 64 "${headers[@]}" "$URL" >/dev/null
callgrind_control -i on "$BP" >/dev/null
done_line=$(h2load --h1 -n "$N" -c 64 "${headers[@]}" "$URL" | grep -E '^requests:')
callgrind_control -i off "$BP" >/dev/null
kill "$BP"; wait "$BP" 2>/dev/null || true
BP=
echo "$done_line"
case "$done_line" in *"$N succeeded"*) ;; *) echo "not every request succeeded" >&2; exit 1 ;; esac
total=$(callgrind_annotate "$W/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "REQ=$REQ: $((total / N)) instructions per proxied GET ($N requests; $W/callgrind.out)"
if [ -n "${TOP:-}" ]; then
  callgrind_annotate "$W/callgrind.out" 2>/dev/null | awk '/file:function/ {p=1; next} p && NF && !/^-/' | head -n "$TOP" | cut -c1-160
fi
