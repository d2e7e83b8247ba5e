getent group balancerd >/dev/null || groupadd -r balancerd
getent passwd balancerd >/dev/null || useradd -r -g balancerd -d /nonexistent -s /sbin/nologin balancerd
mkdir -p /var/log/balancerd && chown balancerd:balancerd /var/log/balancerd
systemctl daemon-reload >/dev/null 2>&1 || true
