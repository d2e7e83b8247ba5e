# Sourced by instructions.sh and small_cpu.sh: the small-GET setup of benches/compare/run.sh
# `small` — one nginx worker answering on two ports (as in ../shared/bench-peers) and a
# balancerd config keeping `ROUTEID=.T1RWS1` on member 1.
#
#   small_setup DIR BACKEND_PORT_1 BACKEND_PORT_2 BALANCERD_PORT
#
# writes DIR/backend.conf and DIR/balancerd.conf and starts the backend (stop it with
# `nginx -c DIR/backend.conf -p DIR -s stop`).
small_setup() {
  local w=$1 b1=$2 b2=$3 port=$4
  cat > "$w/backend.conf" <<CONF
worker_processes 1;
pid $w/backend.pid;
error_log $w/backend.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$b1; location / { return 200 "backend-1 ok\n"; } }
  server { listen 127.0.0.1:$b2; location / { return 200 "backend-2 ok\n"; } }
}
CONF
  cat > "$w/balancerd.conf" <<CONF
Listen 127.0.0.1:$port
KeepAliveTimeout 60
MaxKeepAliveRequests 0
<Proxy balancer://t1rws>
BalancerMember http://127.0.0.1:$b1 route=T1RWS1
BalancerMember http://127.0.0.1:$b2 route=T1RWS2
Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/t1" env=BALANCER_ROUTE_CHANGED
ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass /t1/api balancer://t1rws/api
CONF
  nginx -c "$w/backend.conf" -p "$w" -g 'daemon on;'
}
