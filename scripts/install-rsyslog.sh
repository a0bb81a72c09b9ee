#!/usr/bin/env bash
# Installs rsyslog with its OpenSSL network driver (Debian packages `rsyslog`, `rsyslog-openssl`):
# the syslog collector hearthd's audit forwarding is tested against
# (crates/hearth-server/tests/it/syslog.rs). The tests start their own rsyslogd in the foreground
# with a configuration of their own; the package's own service is not needed.
set -euo pipefail
if [ -x /usr/sbin/rsyslogd ] && ls /usr/lib/*/rsyslog/lmnsd_ossl.so >/dev/null 2>&1; then
    /usr/sbin/rsyslogd -v | head -1
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends rsyslog rsyslog-openssl
/usr/sbin/rsyslogd -v | head -1
