#!/usr/bin/env bash
# Side-by-side load comparison: nginx, HAProxy, httpd and balancerd in front of the same
# loopback backends (a small nginx), same load, one run. Prints requests/s, proxy CPU time
# per request, and p50/p99 latency; writes the table to benches/compare/results.md.
#
#   benches/compare/run.sh [SECONDS] [CONNECTIONS]
#
# Fairness: every proxy runs one worker/thread, keep-alive to the backends, logging off.
# The machine is shared and noisy: compare ratios taken in the same run.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10}
CONNS=${2:-64}
PEERS=../shared/bench-peers
OUT=benches/compare/results.md
WORK=$(mktemp -d /tmp/balancerd-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; for p in $WORK/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done; sleep 0.5' EXIT

need=()
for c in nginx haproxy apache2 wrk; do command -v $c >/dev/null 2>&1 || need+=($c); done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx haproxy apache2 wrk >/dev/null
fi
cargo build --release -q
BAL=target/release/balancerd

# Backends.
head -c 1048576 /dev/urandom > /tmp/bench-big.bin
sed "s#/tmp/bench-backend-nginx.pid#$WORK/backend.pid#" $PEERS/backend-nginx.conf > $WORK/backend.conf
nginx -c $WORK/backend.conf -p $WORK -g 'daemon on;'

# Proxies.
sed "s#/tmp/bench-proxy-nginx.pid#$WORK/nginx.pid#; s#/tmp/bench-proxy-nginx.err#$WORK/nginx.err#" $PEERS/proxy-nginx.conf > $WORK/nginx.conf
nginx -c $WORK/nginx.conf -p $WORK -g 'daemon on;'
sed "s/nbthread 1/nbthread 1\n  pidfile $(echo $WORK | sed 's#/#\\/#g')\/haproxy.pid/" $PEERS/proxy-haproxy.cfg > $WORK/haproxy.cfg
haproxy -f $WORK/haproxy.cfg -D -p $WORK/haproxy.pid
sed "s#/tmp/bench-proxy-httpd.pid#$WORK/httpd.pid#; s#/tmp/bench-proxy-httpd.err#$WORK/httpd.err#; s#^User .*##; s#^Group .*##" $PEERS/proxy-httpd.conf > $WORK/httpd.conf
APACHE_RUN_DIR=$WORK apache2 -f $WORK/httpd.conf -k start
cat > $WORK/balancerd.conf <<CONF
Listen 127.0.0.1:8204
KeepAliveTimeout 60
MaxKeepAliveRequests 0
<Proxy balancer://t1rws>
BalancerMember http://127.0.0.1:9101 route=T1RWS1
BalancerMember http://127.0.0.1:9102 route=T1RWS2
Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/t1" env=BALANCER_ROUTE_CHANGED
ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass /t1/api balancer://t1rws/api
CONF
RUST_LOG=warn $BAL --threads 1 --config $WORK/balancerd.conf 2>$WORK/balancerd.err &
echo $! > $WORK/balancerd.pid
sleep 1

pid_of() { # name -> pid of the process doing the proxying
  case $1 in
    nginx) pgrep -P "$(cat $WORK/nginx.pid)" | head -1 ;;
    haproxy) cat $WORK/haproxy.pid ;;
    httpd) pgrep -P "$(cat $WORK/httpd.pid)" | head -1 ;;
    balancerd) cat $WORK/balancerd.pid ;;
    direct) echo "" ;;
  esac
}
cpu_ticks() { [ -z "$1" ] && { echo 0; return; }; awk '{print $14+$15}' /proc/$1/stat; }
HZ=$(getconf CLK_TCK)

declare -A URL=([direct]=http://127.0.0.1:9101/api/x [nginx]=http://127.0.0.1:8201/t1/api/x [haproxy]=http://127.0.0.1:8202/t1/api/x [httpd]=http://127.0.0.1:8203/t1/api/x [balancerd]=http://127.0.0.1:8204/t1/api/x)
printf "| target | req/s | proxy CPU µs/req | p50 | p99 |\n|---|---|---|---|---|\n" > $WORK/table
for t in direct nginx haproxy httpd balancerd; do
  curl -sf -o /dev/null "${URL[$t]}" -H 'Cookie: ROUTEID=.T1RWS1' || { echo "$t not answering"; continue; }
  pid=$(pid_of $t)
  c0=$(cpu_ticks "$pid")
  wrk -t1 -c$CONNS -d${DUR}s --latency -H 'Cookie: ROUTEID=.T1RWS1' "${URL[$t]}" > $WORK/$t.wrk
  c1=$(cpu_ticks "$pid")
  rps=$(awk '/Requests\/sec/ {print $2}' $WORK/$t.wrk)
  total=$(awk '/requests in/ {print $1}' $WORK/$t.wrk)
  p50=$(awk '$1=="50%" {print $2}' $WORK/$t.wrk)
  p99=$(awk '$1=="99%" {print $2}' $WORK/$t.wrk)
  if [ "$t" = direct ]; then cpu="-"; else cpu=$(awk -v a=$c0 -v b=$c1 -v n=$total -v hz=$HZ 'BEGIN{printf "%.1f", (b-a)/hz*1e6/n}'); fi
  printf "| %s | %s | %s | %s | %s |\n" $t $rps $cpu $p50 $p99 >> $WORK/table
  echo "$t: $rps req/s, $cpu µs CPU/req, p50 $p50, p99 $p99"
done
# ---- TLS on the front: keep-alive requests/s and full handshakes/s (Connection: close).
$BAL gen-certs $WORK/certs >/dev/null
cat $WORK/certs/localhost.pem $WORK/certs/localhost.key > $WORK/certs/combined.pem
cat > $WORK/nginx-tls.conf <<CONF
worker_processes 1;
pid $WORK/nginx-tls.pid;
error_log $WORK/nginx-tls.err warn;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream t1rws { server 127.0.0.1:9101; server 127.0.0.1:9102; keepalive 128; }
  server { listen 127.0.0.1:8211 ssl; ssl_certificate $WORK/certs/localhost.pem; ssl_certificate_key $WORK/certs/localhost.key;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:S:10m;
    location /t1/api/ { proxy_pass http://t1rws/api/; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF
nginx -c $WORK/nginx-tls.conf -p $WORK -g 'daemon on;'
cat > $WORK/haproxy-tls.cfg <<CONF
global
  nbthread 1
  maxconn 9000

defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:8212 ssl crt $WORK/certs/combined.pem
  use_backend t1rws if { path_beg /t1/api/ }
backend t1rws
  balance roundrobin
  http-request replace-path /t1/api/(.*) /api/\1
  cookie ROUTEID insert indirect nocache
  server s1 127.0.0.1:9101 cookie T1RWS1
  server s2 127.0.0.1:9102 cookie T1RWS2
CONF
haproxy -f $WORK/haproxy-tls.cfg -D -p $WORK/haproxy-tls.pid
cat > $WORK/balancerd-tls.conf <<CONF
Listen 127.0.0.1:8214 https
KeepAliveTimeout 60
MaxKeepAliveRequests 0
SSLEngine on
SSLCertificateFile $WORK/certs/localhost.pem
SSLCertificateKeyFile $WORK/certs/localhost.key
<Proxy balancer://t1rws>
BalancerMember http://127.0.0.1:9101 route=T1RWS1
BalancerMember http://127.0.0.1:9102 route=T1RWS2
Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/t1" env=BALANCER_ROUTE_CHANGED
ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass /t1/api balancer://t1rws/api
CONF
RUST_LOG=warn $BAL --threads 1 --config $WORK/balancerd-tls.conf 2>$WORK/balancerd-tls.err &
echo $! > $WORK/balancerd-tls.pid
sleep 1
declare -A TURL=([nginx]=https://127.0.0.1:8211/t1/api/x [haproxy]=https://127.0.0.1:8212/t1/api/x [balancerd]=https://127.0.0.1:8214/t1/api/x)
declare -A TPID=([nginx]="$(pgrep -P "$(cat $WORK/nginx-tls.pid)" | head -1)" [haproxy]="$(cat $WORK/haproxy-tls.pid)" [balancerd]="$(cat $WORK/balancerd-tls.pid)")
printf "| target | keep-alive req/s | CPU µs/req | handshakes/s (Connection: close) | CPU µs/handshake |\n|---|---|---|---|---|\n" > $WORK/tls-table
for t in nginx haproxy balancerd; do
  curl -skf -o /dev/null "${TURL[$t]}" || { echo "$t (TLS) not answering"; continue; }
  pid=${TPID[$t]}
  c0=$(cpu_ticks "$pid")
  wrk -t1 -c$CONNS -d${DUR}s -H 'Cookie: ROUTEID=.T1RWS1' "${TURL[$t]}" > $WORK/$t-tls.wrk
  c1=$(cpu_ticks "$pid")
  krps=$(awk '/Requests\/sec/ {print $2}' $WORK/$t-tls.wrk)
  kn=$(awk '/requests in/ {print $1}' $WORK/$t-tls.wrk)
  kcpu=$(awk -v a=$c0 -v b=$c1 -v n=$kn -v hz=$HZ 'BEGIN{printf "%.1f", (b-a)/hz*1e6/n}')
  c0=$(cpu_ticks "$pid")
  wrk -t1 -c16 -d${DUR}s -H 'Connection: close' "${TURL[$t]}" > $WORK/$t-hs.wrk
  c1=$(cpu_ticks "$pid")
  hrps=$(awk '/Requests\/sec/ {print $2}' $WORK/$t-hs.wrk)
  hn=$(awk '/requests in/ {print $1}' $WORK/$t-hs.wrk)
  hcpu=$(awk -v a=$c0 -v b=$c1 -v n=$hn -v hz=$HZ 'BEGIN{printf "%.1f", (b-a)/hz*1e6/n}')
  printf "| %s | %s | %s | %s | %s |\n" $t $krps $kcpu $hrps $hcpu >> $WORK/tls-table
  echo "$t TLS: $krps keep-alive req/s ($kcpu µs CPU/req), $hrps handshakes/s ($hcpu µs CPU/handshake)"
done
nginx -c $WORK/nginx-tls.conf -p $WORK -s stop 2>/dev/null || true
kill "$(cat $WORK/haproxy-tls.pid)" 2>/dev/null || true

{
  echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores: wrk -t1 -c$CONNS -d${DUR}s, small GETs with a ROUTEID cookie, one worker per proxy."
  echo
  cat $WORK/table
  echo
  echo "TLS on the front (TLS 1.3, same backends; handshakes measured with 16 connections and Connection: close):"
  echo
  cat $WORK/tls-table
} > $OUT
echo; cat $OUT
nginx -c $WORK/backend.conf -p $WORK -s stop 2>/dev/null || true
nginx -c $WORK/nginx.conf -p $WORK -s stop 2>/dev/null || true
APACHE_RUN_DIR=$WORK apache2 -f $WORK/httpd.conf -k stop 2>/dev/null || true
