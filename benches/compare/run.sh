#!/usr/bin/env bash
# Side-by-side load comparison: balancerd, HAProxy, nginx and httpd in front of the same
# loopback backends, plus the backend directly (the ceiling), in one run, on one machine.
#
#   benches/compare/run.sh [ROUNDS] [WORKLOADS]
#
#   ROUNDS     rounds of every workload (default 3); tables show medians
#   WORKLOADS  comma list (default all): small,small-tls,rate,rate-tls,longpoll,longpoll-tls,
#              idle,bulk,h2,handshake; or serve (set up and hold, see below)
#
# TLS workloads (-tls, h2, handshake, the TLS bulk rows) use the same ECDSA P-256 certificate
# on every proxy (balancerd gen-certs), TLS 1.3 (every client offers it and every proxy picks
# it) and session resumption on (HAProxy's and nginx's defaults, httpd's SSLSessionCache,
# balancerd's ticket key). wrk sends no ALPN, so HTTP/1.1 over TLS; h2load asks for h2.
#
# Environment: DUR (seconds per closed-loop run, 10), LP_CONNS (8000), LP_SECS (40), HOLD (30),
# API_RATE (200), BULK_CONNS (20), BULK_BYTES (104857600), RATE (fixed constant rate; default
# 50% of the slowest proxy's small-GET maximum measured in round 1), PROXIES (subset of
# "haproxy nginx httpd balancerd" to run, for a quick check; the report needs all four),
# BENCH_CC (TCP congestion control of every proxy's own sockets, default cubic; empty keeps
# the system's everywhere).
#
# Congestion control: on a host whose default is bbr with no fq qdisc (this one), the kernel
# paces every bbr socket with timers, and 100 MB transfers through a proxy lose half their
# speed to it (README, "Socket options"). balancerd sets BENCH_CC with --congestion; HAProxy
# 2.6, nginx and httpd have no such setting, so they get it from cc_shim.c (LD_PRELOAD: the
# same setsockopt on each TCP socket they open, before it listens or connects). Clients,
# backends and the direct runs keep the system's algorithm.
#
# Fairness: one worker process/thread per proxy (nginx worker_processes 1, HAProxy nbthread 1,
# httpd one child, balancerd --threads 1), keep-alive to the backends, logging off, bodies
# streamed (nginx proxy_buffering/proxy_request_buffering off). Configs derive from
# ../shared/bench-peers/. The machine is shared and noisy: compare ratios from the same run.
# Equivalent work: every proxy adds X-Forwarded-For/-Host/-Server (httpd's and balancerd's
# default, ProxyAddHeaders On) and keeps a client with ROUTEID=.T1RWS1 on member 1 (HAProxy
# with that cookie value, nginx through a map of the cookie to a one-member upstream).
# Output: one table per workload with ratios, in benches/compare/results.md. Memory
# workloads (idle, longpoll) restart every proxy first, so RSS per connection is measured
# from a fresh process.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
WORKLOADS=${2:-small,small-tls,rate,rate-tls,longpoll,longpoll-tls,idle,bulk,h2,handshake}
DUR=${DUR:-10}
LP_CONNS=${LP_CONNS:-8000}
LP_SECS=${LP_SECS:-40}
API_RATE=${API_RATE:-200}
BULK_CONNS=${BULK_CONNS:-20}
BULK_BYTES=${BULK_BYTES:-104857600}
OUT=benches/compare/results.md
WORK=$(mktemp -d /tmp/balancerd-bench.XXXXXX)
RES=$WORK/results.txt
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$WORK"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 0.5
}
trap cleanup EXIT
want() { [[ ",$WORKLOADS," == *",$1,"* ]]; }

need=()
for c in nginx haproxy apache2 wrk h2load; do command -v $c >/dev/null 2>&1 || need+=($c); done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing peers and load tools"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx haproxy apache2 wrk nghttp2-client >/dev/null
fi
cargo build --release -q --bin balancerd --example loadgen
BAL=target/release/balancerd
BENCH_CC=${BENCH_CC-cubic}
PRE=() BAL_CC=()
if [ -n "$BENCH_CC" ]; then
  cc -O2 -shared -fPIC -o $WORK/cc_shim.so benches/compare/cc_shim.c -ldl
  PRE=(env LD_PRELOAD=$WORK/cc_shim.so BENCH_CC=$BENCH_CC)
  BAL_CC=(--congestion $BENCH_CC)
fi
LG=target/release/examples/loadgen
$BAL gen-certs $WORK/certs >/dev/null
cat $WORK/certs/localhost.pem $WORK/certs/localhost.key > $WORK/certs/combined.pem
CERT=$WORK/certs/localhost.pem KEY=$WORK/certs/localhost.key CA=$WORK/certs/ca.pem

# ---- Backends: nginx for small answers (as in bench-peers), loadgen for held long-polls,
# large bodies and PUT sinks.
sed "s#/tmp/bench-backend-nginx.pid#$WORK/backend.pid#; s#/tmp/bench-backend-nginx.err#$WORK/backend.err#" \
  ../shared/bench-peers/backend-nginx.conf > $WORK/backend.conf
nginx -c $WORK/backend.conf -p $WORK -g 'daemon on;'
$LG backend --listen 127.0.0.1:9111 --listen 127.0.0.1:9112 --hold ${HOLD:-30} --blob-bytes $BULK_BYTES --threads 1 &
PIDS+=($!)

# ---- Proxies. Ports: plain 820x, TLS (HTTP/1.1 + h2) 821x; x = 1 nginx, 2 HAProxy, 3 httpd,
# 4 balancerd.
cat > $WORK/nginx.conf <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream t1rws { server 127.0.0.1:9101; server 127.0.0.1:9102; keepalive 128; }
  # Stickiness as httpd does it: the member named after the ROUTEID cookie's first dot.
  upstream t1rws1 { server 127.0.0.1:9101; keepalive 128; }
  upstream t1rws2 { server 127.0.0.1:9102; keepalive 128; }
  map \$cookie_ROUTEID \$t1rws_sticky { ~^[^.]*\\.T1RWS1$ t1rws1; ~^[^.]*\\.T1RWS2$ t1rws2; default t1rws; }
  upstream t1lp { server 127.0.0.1:9111; server 127.0.0.1:9112; keepalive 128; }
  upstream t1dav { server 127.0.0.1:9111; server 127.0.0.1:9112 backup; keepalive 128; }
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  # What httpd and balancerd add by default (ProxyAddHeaders On).
  proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
  proxy_set_header X-Forwarded-Host \$http_host;
  proxy_set_header X-Forwarded-Server \$hostname;
  proxy_buffering off;
  proxy_request_buffering off;
  client_max_body_size 0;
  proxy_read_timeout 60s;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:S:10m;
  server { listen 127.0.0.1:8201; listen 127.0.0.1:8211 ssl http2;
    ssl_certificate $CERT; ssl_certificate_key $KEY;
    location /t1/api/ { rewrite ^/t1/api/(.*)\$ /api/\$1 break; proxy_pass http://\$t1rws_sticky; }
    location /t1/lp/ { proxy_pass http://t1lp/; }
    location /t1/recordings/ { proxy_pass http://t1dav/recordings/; }
  }
}
CONF

cat > $WORK/haproxy.cfg <<CONF
global
  nbthread 1
  maxconn 9000

defaults
  mode http
  # What httpd and balancerd add by default (ProxyAddHeaders On); Host and Server in the frontend.
  option forwardfor
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:8202
  bind 127.0.0.1:8212 ssl crt $WORK/certs/combined.pem alpn h2,http/1.1
  http-request add-header X-Forwarded-Host %[req.hdr(host)]
  http-request add-header X-Forwarded-Server %[hostname]
  use_backend t1rws if { path_beg /t1/api/ }
  use_backend t1lp if { path_beg /t1/lp/ }
  use_backend t1dav if { path_beg /t1/recordings/ }
backend t1rws
  balance roundrobin
  http-request replace-path /t1/api/(.*) /api/\1
  # The client's cookie is httpd's (ROUTEID=.T1RWS1): with the vendor's values (T1RWS1)
  # HAProxy never matched it, balanced round robin and set a cookie on every answer.
  cookie ROUTEID insert indirect nocache
  server s1 127.0.0.1:9101 cookie .T1RWS1
  server s2 127.0.0.1:9102 cookie .T1RWS2
backend t1lp
  balance roundrobin
  http-request replace-path /t1/lp/(.*) /\1
  server s1 127.0.0.1:9111
  server s2 127.0.0.1:9112
backend t1dav
  http-request replace-path /t1/recordings/(.*) /recordings/\1
  server s1 127.0.0.1:9111
  server s2 127.0.0.1:9112 backup
CONF

# The routes every httpd-dialect proxy gets (httpd itself and balancerd read the same text).
cat > $WORK/routes.conf <<CONF
<Proxy balancer://t1rws>
BalancerMember http://127.0.0.1:9101 route=T1RWS1
BalancerMember http://127.0.0.1:9102 route=T1RWS2
Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/t1" env=BALANCER_ROUTE_CHANGED
ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass /t1/api balancer://t1rws/api
<Proxy balancer://t1lp>
BalancerMember http://127.0.0.1:9111
BalancerMember http://127.0.0.1:9112
</Proxy>
ProxyPass /t1/lp balancer://t1lp
<Proxy balancer://t1dav>
BalancerMember http://127.0.0.1:9111
BalancerMember http://127.0.0.1:9112 status=+H
</Proxy>
ProxyPass /t1/recordings balancer://t1dav/recordings
CONF
sed "s#/tmp/bench-proxy-httpd.pid#$WORK/httpd.pid#; s#/tmp/bench-proxy-httpd.err#$WORK/httpd.err#; s#^User .*##; s#^Group .*##; /^<Proxy/,\$d" \
  ../shared/bench-peers/proxy-httpd.conf > $WORK/httpd.conf
cat >> $WORK/httpd.conf <<CONF
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
LoadModule http2_module /usr/lib/apache2/modules/mod_http2.so
LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
SSLSessionCache shmcb:$WORK/ssl_scache(512000)
Listen 127.0.0.1:8213 https
<VirtualHost 127.0.0.1:8213>
  SSLEngine on
  SSLCertificateFile $CERT
  SSLCertificateKeyFile $KEY
  Protocols h2 http/1.1
  Include $WORK/routes.conf
</VirtualHost>
Include $WORK/routes.conf
CONF

cat > $WORK/balancerd.conf <<CONF
Listen 127.0.0.1:8204
Listen 127.0.0.1:8214 https
KeepAliveTimeout 60
MaxKeepAliveRequests 0
<VirtualHost 127.0.0.1:8214>
  SSLEngine on
  SSLCertificateFile $CERT
  SSLCertificateKeyFile $KEY
</VirtualHost>
Include $WORK/routes.conf
CONF

start_proxies() {
  "${PRE[@]}" nginx -c $WORK/nginx.conf -p $WORK -g 'daemon on;'
  "${PRE[@]}" haproxy -f $WORK/haproxy.cfg -D -p $WORK/haproxy.pid
  APACHE_RUN_DIR=$WORK "${PRE[@]}" apache2 -f $WORK/httpd.conf -k start
  RUST_LOG=warn $BAL --threads 1 "${BAL_CC[@]}" --config $WORK/balancerd.conf 2>>$WORK/balancerd.err &
  echo $! > $WORK/balancerd.pid
  sleep 1.5
}
stop_proxies() {
  local p
  nginx -c $WORK/nginx.conf -p $WORK -s stop 2>/dev/null || true
  kill "$(cat $WORK/haproxy.pid)" 2>/dev/null || true
  APACHE_RUN_DIR=$WORK apache2 -f $WORK/httpd.conf -k stop 2>/dev/null || true
  kill "$(cat $WORK/balancerd.pid)" 2>/dev/null || true
  for _ in $(seq 100); do
    p=$(pgrep -f "$WORK/(nginx|haproxy|httpd|balancerd)" || true)
    [ -z "$p" ] && break
    sleep 0.1
  done
  rm -f $WORK/nginx.pid $WORK/haproxy.pid $WORK/httpd.pid $WORK/balancerd.pid
}
# Memory is measured on freshly started proxies: RSS never shrinks back after a peak in most
# allocators, so a second measurement in the same process would only see the increment.
restart_proxies() { stop_proxies; start_proxies; }
start_proxies

pid_of() { # target -> the pid(s) doing the proxying
  case $1 in
    nginx) pgrep -P "$(cat $WORK/nginx.pid)" | head -1 ;;
    haproxy) cat $WORK/haproxy.pid ;;
    httpd) pgrep -P "$(cat $WORK/httpd.pid)" | head -1 ;;
    balancerd) cat $WORK/balancerd.pid ;;
    *) echo "" ;;
  esac
}
cpu_ticks() { [ -z "$1" ] && { echo 0; return; }; awk '{print $14+$15}' /proc/$1/stat; }
HZ=$(getconf CLK_TCK)
PROXIES=${PROXIES:-"haproxy nginx httpd balancerd"}
declare -A PORT=([nginx]=8201 [haproxy]=8202 [httpd]=8203 [balancerd]=8204)
declare -A TPORT=([nginx]=8211 [haproxy]=8212 [httpd]=8213 [balancerd]=8214)
base() { # target path-kind -> base URL
  local t=$1 kind=$2
  case "$t:$kind" in
    direct:api) echo http://127.0.0.1:9101/api ;;
    direct:lp) echo http://127.0.0.1:9111 ;;
    direct:dav) echo http://127.0.0.1:9111/recordings ;;
    *:api) echo http://127.0.0.1:${PORT[$t]}/t1/api ;;
    *:lp) echo http://127.0.0.1:${PORT[$t]}/t1/lp ;;
    *:dav) echo http://127.0.0.1:${PORT[$t]}/t1/recordings ;;
  esac
}
for t in $PROXIES; do
  curl -sf -o /dev/null "$(base $t api)/x" || { echo "$t is not answering; see $WORK"; exit 1; }
done
# `run.sh 1 serve`: set everything up, print the ports and pids, and hold it for SERVE_SECS
# (600) for a profile by hand (perf, strace, A/B runs of two builds) against the same setup;
# other workloads listed with it are not run.
if want serve; then
  for t in $PROXIES; do echo "$t plain=${PORT[$t]} tls=${TPORT[$t]} pid=$(pid_of $t)"; done
  echo "serving for ${SERVE_SECS:-600} s; work dir $WORK"
  sleep "${SERVE_SECS:-600}"
  exit 0
fi
pidargs() { local p; p=$(pid_of $1); [ -n "$p" ] && echo "--pid $p"; }
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.3f", v}'; }

# slice_order N TARGET... -> the targets in the order for slice N: stepping through the list
# by a step coprime with its length, from a start that moves, so that over the slices each
# target follows each other target about equally often (the step decides who follows whom).
slice_order() {
  local n=$1; shift
  local -a ts=("$@") steps=(1)
  local len=${#ts[@]} k a b r i
  for ((k = 2; k < len; k++)); do
    a=$k b=$len
    while ((b)); do r=$((a % b)) a=$b b=$r; done
    ((a == 1)) && steps+=($k)
  done
  k=${steps[$((n % ${#steps[@]}))]}
  for ((i = 0; i < len; i++)); do echo "${ts[$(((n / ${#steps[@]} + i * k) % len))]}"; done
}

small() { # round [tls]
  # The targets take turns in 2-second wrk runs (SMALL_SLICE) for DUR seconds each, so a
  # burst of the shared machine's other work lands on every target alike (run one after
  # another, the same build measured 0.80x and 1.01x HAProxy's CPU in two rounds). The
  # order changes from slice to slice (slice_order), so no target always runs right after
  # the same other one: in a fixed order, balancerd always followed httpd and measured
  # 50-51k req/s there, 62k right after HAProxy, in back-to-back runs of one build.
  # With "tls", the same over TLS to each proxy's TLS port (no direct row: the backend
  # speaks plain HTTP only).
  local slice=${SMALL_SLICE:-2} slices s t name=small targets="direct $PROXIES" url
  [ "${2:-}" = tls ] && { name=small-tls; targets="$PROXIES"; }
  slices=$(( (DUR + slice - 1) / slice ))
  local -A reqs secs ticks
  for t in $targets; do reqs[$t]=0; secs[$t]=0; ticks[$t]=0; : > $WORK/small-$t.lat; done
  for s in $(seq $slices); do
    for t in $(slice_order $(( (s - 1) + ($1 - 1) * slices )) $targets); do
      local pid; pid=$(pid_of $t); local c0; c0=$(cpu_ticks "$pid")
      url="$(base $t api)/x"
      [ $name = small-tls ] && url=https://127.0.0.1:${TPORT[$t]}/t1/api/x
      wrk -t1 -c64 -d${slice}s --latency -H 'Cookie: ROUTEID=.T1RWS1' "$url" > $WORK/wrk.out
      local c1; c1=$(cpu_ticks "$pid")
      reqs[$t]=$(( ${reqs[$t]} + $(awk '/requests in/ {print $1}' $WORK/wrk.out) ))
      secs[$t]=$(awk -v a=${secs[$t]} '/requests in/ {v=$4; sub(/s,$/,"",v); printf "%.3f", a+v}' $WORK/wrk.out)
      ticks[$t]=$(( ${ticks[$t]} + c1 - c0 ))
      echo "$(awk '$1=="50%" {print $2}' $WORK/wrk.out | to_ms) $(awk '$1=="99%" {print $2}' $WORK/wrk.out | to_ms)" >> $WORK/small-$t.lat
    done
  done
  for t in $targets; do
    local n=${reqs[$t]} rps p50 p99 cpu
    rps=$(awk -v n=$n -v d=${secs[$t]} 'BEGIN{printf "%.0f", n/d}')
    # Latency: the median of the slices' percentiles.
    p50=$(sort -n -k1 $WORK/small-$t.lat | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
    p99=$(sort -n -k2 $WORK/small-$t.lat | awk '{a[NR]=$2} END{print a[int((NR+1)/2)]}')
    cpu=$(awk -v t=${ticks[$t]} -v n=$n -v hz=$HZ 'BEGIN{printf "%.1f", t/hz*1e6/n}')
    [ "$t" = direct ] && cpu=-
    echo "$name $t round=$1 rps=$rps cpu_us=$cpu p50_ms=$p50 p99_ms=$p99" | tee -a $RES
  done
}

rate() { # round
  if [ -z "${RATE:-}" ]; then
    RATE=$(awk '$1=="small" && $2!="direct" {v=substr($4,5)+0; if (min=="" || v<min) min=v} END {printf "%d", min/2}' $RES)
    [ -z "$RATE" ] || [ "$RATE" = 0 ] && RATE=5000
    echo "constant rate: $RATE req/s (50% of the slowest proxy's maximum)"
  fi
  # All targets in one interleaved run (1-second slices, connections kept): a burst of the
  # machine's other work then lands on every target alike.
  local targets=()
  for t in direct $PROXIES; do targets+=(--target "$t=$(base $t api)/x"); done
  for t in $PROXIES; do targets+=(--cpu-pid "$t=$(pid_of $t)"); done
  $LG rate-mix --workload rate "${targets[@]}" --rate $RATE --duration $DUR --slices $DUR --conns 64 \
    --header 'Cookie: ROUTEID=.T1RWS1' --out $RES
}

rate_tls() { # round
  # The rate is half the slowest proxy's small-tls maximum (RATE_TLS to fix it).
  if [ -z "${RATE_TLS:-}" ]; then
    RATE_TLS=$(awk '$1=="small-tls" {v=substr($4,5)+0; if (min=="" || v<min) min=v} END {printf "%d", min/2}' $RES)
    [ -z "$RATE_TLS" ] || [ "$RATE_TLS" = 0 ] && RATE_TLS=3000
    echo "constant rate over TLS: $RATE_TLS req/s (50% of the slowest proxy's small-tls maximum)"
  fi
  local targets=()
  for t in $PROXIES; do targets+=(--target "$t=https://127.0.0.1:${TPORT[$t]}/t1/api/x" --cpu-pid "$t=$(pid_of $t)"); done
  $LG rate-mix --workload rate-tls "${targets[@]}" --ca $CA --rate $RATE_TLS --duration $DUR --slices $DUR --conns 64 \
    --header 'Cookie: ROUTEID=.T1RWS1' --out $RES
}

longpoll() { # [tls]
  restart_proxies
  local name=longpoll targets="direct $PROXIES" lp
  [ "${1:-}" = tls ] && { name=longpoll-tls; targets="$PROXIES"; }
  for t in $targets; do
    lp=$(base $t lp)
    [ $name = longpoll-tls ] && lp=https://127.0.0.1:${TPORT[$t]}/t1/lp
    $LG longpoll --workload $name --label $t --poll-url "$lp/cometd/poll" --api-url "$lp/api/v2/me" --ca $CA \
      --conns $LP_CONNS --duration $LP_SECS --api-rate $API_RATE $(pidargs $t) --out $RES
    sleep 2
  done
}

handshake() { # round
  # New connections as fast as 16 loops make them: full handshakes, then resumed ones.
  for t in $(slice_order $(($1 - 1)) $PROXIES); do
    for resume in 0 1; do
      local name=handshake-full
      [ $resume = 1 ] && name=handshake-resumed
      $LG handshake --workload $name --label $t --url https://127.0.0.1:${TPORT[$t]}/t1/api/x --ca $CA \
        --resume $resume --conns 16 --duration $DUR $(pidargs $t) --out $RES
    done
  done
}

idle() {
  for n in 1000 8000; do
    restart_proxies
    for t in $PROXIES; do
      $LG idle --workload idle-$n --label $t --url "$(base $t lp)/x" --conns $n --hold 2 $(pidargs $t) --out $RES
      sleep 1
    done
  done
}

bulk() { # round
  # The order moves from round to round, as in small: run in a fixed order, each target
  # always came right after the same other one.
  for t in $(slice_order $(($1 - 1)) direct $PROXIES); do
    $LG bulk --workload put --label $t --url "$(base $t dav)/upload.mp3" --method PUT --conns $BULK_CONNS --bytes $BULK_BYTES $(pidargs $t) --out $RES
    $LG bulk --workload get --label $t --url "$(base $t dav)/blob.mp3" --method GET --conns $BULK_CONNS --bytes $BULK_BYTES $(pidargs $t) --out $RES
  done
  for t in $(slice_order $(($1 - 1)) $PROXIES); do
    local u=https://127.0.0.1:${TPORT[$t]}/t1/recordings
    $LG bulk --workload put-tls --label $t --url "$u/upload.mp3" --ca $CA --method PUT --conns $BULK_CONNS --bytes $BULK_BYTES $(pidargs $t) --out $RES
    $LG bulk --workload get-tls --label $t --url "$u/blob.mp3" --ca $CA --method GET --conns $BULK_CONNS --bytes $BULK_BYTES $(pidargs $t) --out $RES
  done
}

h2() {
  for t in $PROXIES; do
    local pid; pid=$(pid_of $t); local c0; c0=$(cpu_ticks "$pid")
    h2load -n 200000 -c 64 -m 10 -H 'Cookie: ROUTEID=.T1RWS1' "https://127.0.0.1:${TPORT[$t]}/t1/api/x" > $WORK/h2.out 2>&1 || true
    local c1; c1=$(cpu_ticks "$pid")
    local rps ok failed cpu proto
    rps=$(awk '/finished in/ {print $4}' $WORK/h2.out)
    ok=$(awk '/^requests:/ {print $8}' $WORK/h2.out)
    failed=$(awk '/^requests:/ {print $10+$12+$14}' $WORK/h2.out)
    proto=$(awk '/Application protocol:/ {print $3}' $WORK/h2.out)
    cpu=$(awk -v a=$c0 -v b=$c1 -v n=${ok:-0} -v hz=$HZ 'BEGIN{ if (n>0) printf "%.1f", (b-a)/hz*1e6/n; else print 0}')
    echo "h2 $t rps=${rps:-0} cpu_us=$cpu errors=${failed:-200000} proto=${proto:-none}" | tee -a $RES
  done
}

for r in $(seq 1 $ROUNDS); do
  echo "== round $r/$ROUNDS"
  want small && small $r
  want small-tls && small $r tls
  want rate && rate $r
  want rate-tls && rate_tls $r
  want idle && idle $r
  want longpoll && longpoll
  want longpoll-tls && longpoll tls
  want bulk && bulk $r
  want h2 && h2 $r
  want handshake && handshake $r
done

{
  echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(uname -r)), $ROUNDS round(s), with"
  echo "\`benches/compare/run.sh $ROUNDS $WORKLOADS\`. One worker per proxy; backends and load"
  echo "generators share the same two cores. The last column is balancerd's ratio against that"
  echo "row on the first metric, oriented so that above 1.00× means balancerd is better."
  sys_cc=$(cat /proc/sys/net/ipv4/tcp_congestion_control)
  echo "TCP congestion control of every proxy's own sockets: ${BENCH_CC:-$sys_cc}; clients, backends"
  echo "and the direct runs keep the system default, $sys_cc (see cc_shim.c)."
  echo
  $LG report --in $RES
  echo "Versions: $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | awk '{print "HAProxy " $3}'), $(apache2 -v | head -1 | sed 's/.*: //'), balancerd $(git rev-parse --short HEAD)."
} > $OUT
cp $RES benches/compare/results.raw.txt
echo; cat $OUT
