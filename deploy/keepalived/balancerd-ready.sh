#!/bin/bash
# keepalived's check: balancerd's readiness handler answers 200 (no curl needed).
# Needs, in balancerd's config:
#   <Location /ready>
#     SetHandler ready
#     Require ip 127.0.0.1
#   </Location>
#   ProxyPass /ready !
exec 3<>/dev/tcp/127.0.0.1/80 || exit 1
printf 'GET /ready HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
read -t 1 status <&3
[[ "$status" == *' 200 '* ]]
