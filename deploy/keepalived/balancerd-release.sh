#!/bin/bash
# keepalived's notify: reset the client connections accepted on the address ($1) that left
# this node. balancerd needs CAP_NET_ADMIN for the resets to leave once the address is gone
# (keepalived removes it before it notifies); root has it.
/usr/bin/balancerd ctl --config /etc/balancerd/balancerd.conf release "$1"
exit 0
