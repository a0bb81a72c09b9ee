#!/usr/bin/env bash
# What the web dashboard's browser test needs: Debian's Chromium (when run as root and it is
# missing) and playwright-core, pinned by web/tests/package-lock.json, which drives that Chromium
# (it downloads no browser of its own); and oidc-provider, the OpenID Connect provider the single
# sign-on tests log in through (web/tests/oidc-peer.mjs). Safe to run again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
npm ci --prefix "$root/web/tests" --no-audit --no-fund --loglevel=error
