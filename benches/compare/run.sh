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
{
  echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores: wrk -t1 -c$CONNS -d${DUR}s, small GETs with a ROUTEID cookie, one worker per proxy."
  echo
  cat $WORK/table
} > $OUT
echo; cat $OUT
nginx -c $WORK/backend.conf -p $WORK -s stop 2>/dev/null || true
nginx -c $WORK/nginx.conf -p $WORK -s stop 2>/dev/null || true
APACHE_RUN_DIR=$WORK apache2 -f $WORK/httpd.conf -k stop 2>/dev/null || true
