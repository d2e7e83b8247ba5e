#!/usr/bin/env bash
# Where the machine's CPU goes per small proxied GET: the proxy's user and system time, the
# backend's, the load generator's and the idle share, for the backend directly, HAProxy and
# balancerd in interleaved runs, and the throughput bound that follows.
#
#   benches/profile/small_cpu.sh [BINARY] [ROUNDS] [SECONDS]
#
#   BINARY   a balancerd release binary (default: target/release/balancerd, built if missing)
#   ROUNDS   rounds of direct, HAProxy, balancerd (default 3)
#   SECONDS  seconds per run (default 4)
#
# Issue 6 asks for 1.2x HAProxy's small-GET throughput at 64 connections. wrk, the backend and
# the proxy share the two cores, so throughput is (busy cores) / (all CPU per request). The
# bound printed at the end is what a proxy with no user-space time at all and HAProxy's
# kernel time would reach, with the backend and wrk costing what they cost behind HAProxy:
# what is left to gain by making balancerd's own code faster. Setup as in
# benches/compare/run.sh `small` (nginx backend from ../shared/bench-peers, one worker per
# proxy, ROUTEID stickiness, X-Forwarded-* added by both), ports 9501/9502 (backend),
# 8502 (HAProxy) and 8504 (balancerd).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/balancerd}
ROUNDS=${2:-3}
SECS=${3:-4}
for c in nginx haproxy wrk; do
  command -v $c >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx haproxy wrk >/dev/null
    break
  }
done
command -v /usr/bin/time >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
}
[ -x "$BIN" ] || cargo build --release --bin balancerd

W=$(mktemp -d /tmp/balancerd-smallcpu.XXXXXX)
cleanup() {
  [ -n "${BP:-}" ] && kill "$BP" 2>/dev/null || true
  [ -f "$W/haproxy.pid" ] && kill "$(cat "$W/haproxy.pid")" 2>/dev/null || true
  [ -f "$W/backend.pid" ] && nginx -c "$W/backend.conf" -p "$W" -s stop 2>/dev/null || true
}
trap cleanup EXIT

cat > "$W/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  option forwardfor
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:8502
  http-request add-header X-Forwarded-Host %[req.hdr(host)]
  http-request add-header X-Forwarded-Server %[hostname]
  use_backend t1rws if { path_beg /t1/api/ }
backend t1rws
  balance roundrobin
  http-request replace-path /t1/api/(.*) /api/\1
  cookie ROUTEID insert indirect nocache
  server s1 127.0.0.1:9501 cookie .T1RWS1
  server s2 127.0.0.1:9502 cookie .T1RWS2
CONF
# shellcheck source=benches/profile/small_setup.sh
. benches/profile/small_setup.sh
small_setup "$W" 9501 9502 8504
haproxy -f "$W/haproxy.cfg" -D -p "$W/haproxy.pid"
RUST_LOG=warn "$BIN" --threads 1 --config "$W/balancerd.conf" >/dev/null 2>"$W/balancerd.err" &
BP=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:8504/t1/api/x && break; sleep 0.2; done
sleep 0.5
BK=$(pgrep -P "$(cat "$W/backend.pid")" | head -1)

HZ=$(getconf CLK_TCK)
ut() { awk '{print $14, $15}' "/proc/$1/stat"; }                  # user, system ticks
vcsw() { awk '/^voluntary_ctxt/ {print $2}' "/proc/$1/status"; }   # sleeps
mach() { awk '/^cpu / {print $2+$3+$4+$7+$8, $5+$6}' /proc/stat; }  # busy, idle ticks

# measure TARGET PORT PROXY_PID: one wrk run, one line of per-request microseconds.
measure() {
  local t=$1 port=$2 pp=$3 pu0=0 ps0=0 pu1=0 ps1=0 bu0 bs0 bu1 bs1 bv0 bv1 m0 i0 m1 i1 wu ws n
  [ -n "$pp" ] && read -r pu0 ps0 < <(ut "$pp")
  read -r bu0 bs0 < <(ut "$BK"); bv0=$(vcsw "$BK"); read -r m0 i0 < <(mach)
  /usr/bin/time -f "%U %S" -o "$W/wrk.time" wrk -t1 -c64 -d"${SECS}s" -H 'Cookie: ROUTEID=.T1RWS1' \
    "http://127.0.0.1:$port/t1/api/x" >"$W/wrk.out" 2>&1
  [ -n "$pp" ] && read -r pu1 ps1 < <(ut "$pp")
  read -r bu1 bs1 < <(ut "$BK"); bv1=$(vcsw "$BK"); read -r m1 i1 < <(mach)
  read -r wu ws < "$W/wrk.time"
  n=$(awk '/requests in/ {print $1}' "$W/wrk.out")
  awk -v t="$t" -v n="$n" -v s="$SECS" -v hz="$HZ" -v pu=$((pu1 - pu0)) -v ps=$((ps1 - ps0)) \
    -v bu=$((bu1 - bu0)) -v bs=$((bs1 - bs0)) -v bv=$((bv1 - bv0)) -v wu="$wu" -v ws="$ws" \
    -v busy=$((m1 - m0)) -v idle=$((i1 - i0)) 'BEGIN {
      k = 1e6 / hz / n
      printf "%-9s %7.0f  %5.2f %5.2f   %5.2f %5.2f   %5.2f %5.2f   %6.2f  %5.2f   %5.0f\n", t, n / s,
        pu * k, ps * k, bu * k, bs * k, wu * 1e6 / n, ws * 1e6 / n, busy * k, idle * k, bv * 1000 / n
    }' | tee -a "$W/rows"
}

echo "per request, µs (backend sleeps: per 1,000 requests)"
printf '%-9s %7s  %11s   %11s   %11s   %6s  %5s   %s\n' "" "req/s" "proxy u/s" "backend u/s" "wrk u/s" \
  "busy" "idle" "backend sleeps"
for r in $(seq "$ROUNDS"); do
  # The order moves from round to round: on this machine the one before matters.
  case $((r % 3)) in
    1) order="direct haproxy balancerd" ;;
    2) order="haproxy balancerd direct" ;;
    0) order="balancerd direct haproxy" ;;
  esac
  for t in $order; do
    case $t in
      direct) measure direct 9501 "" ;;
      haproxy) measure haproxy 8502 "$(cat "$W/haproxy.pid")" ;;
      balancerd) measure balancerd 8504 "$BP" ;;
    esac
  done
done
echo
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { awk -v t="$1" -v c="$2" '$1 == t {print $c}' "$W/rows" | med; }
awk -v hr="$(col haproxy 2)" -v br="$(col balancerd 2)" -v hu="$(col haproxy 3)" -v hs="$(col haproxy 4)" \
  -v bu="$(col balancerd 3)" -v bs="$(col balancerd 4)" -v hb="$(col haproxy 9)" -v hi="$(col haproxy 10)" \
  -v bb="$(col balancerd 9)" 'BEGIN {
  printf "medians: balancerd %.0f req/s = %.2fx HAProxy; proxy CPU %.2f vs %.2f µs = %.2fx\n", br, br / hr, bu + bs, hu + hs, (bu + bs) / (hu + hs)
  printf "machine busy per request: %.2f µs behind balancerd, %.2f behind HAProxy\n", bb, hb
  printf "a proxy with no user-space time and HAProxy'"'"'s kernel time: %.2f µs busy per request,\n", hb - hu
  printf "  %.2fx HAProxy'"'"'s req/s at HAProxy'"'"'s idle share, %.2fx with no idle time at all\n", hb / (hb - hu), (hb + hi) / (hb - hu)
}'
