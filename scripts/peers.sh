#!/usr/bin/env bash
# Installs the real peers that integration tests talk to: OctoPrint 1.11.x (with its virtual
# printer) and Moonraker 0.11 for hearth-drivers; for hearthd's notifications, the Standard Webhooks
# reference library (Python) that checks webhook signatures and aiosmtpd, an SMTP server that
# receives its e-mail; and paho-mqtt for the Bambu Lab printer simulator
# (crates/hearth-drivers/tests/it/bambu_printer_sim.py, which runs the system's Mosquitto as the
# printer's broker); and PrusaLink 0.8.1 (the Raspberry Pi build; only its HTTP API is used, run by
# crates/hearth-drivers/tests/it/prusalink_peer.py), which needs the Debian packages libcap-dev (to
# build python-prctl), libturbojpeg0 and libmagic1; and oath-toolkit's `oathtool`, which makes the
# TOTP codes of the second-factor tests: the Debian packages are apt-get installed when missing and we
# are root, otherwise the script says so and goes on; each in its own venv under
# ${HEARTH_PEERS_DIR:-$HOME/.cache/hearth-peers}/{octoprint,moonraker,standardwebhooks,aiosmtpd,bambusim,prusalink},
# plus the `octotest` system user that OctoPrint needs because it refuses to run as root.
# Idempotent: a peer whose venv already has the right version is left alone.
set -euo pipefail

DIR="${HEARTH_PEERS_DIR:-$HOME/.cache/hearth-peers}"
PY=/usr/bin/python3
OCTOPRINT_SPEC='octoprint>=1.11,<1.12'
MOONRAKER_SPEC='moonraker>=0.11,<0.12'
STANDARDWEBHOOKS_SPEC='standardwebhooks==1.3.0'
AIOSMTPD_SPEC='aiosmtpd==1.4.6'
BAMBUSIM_SPEC='paho-mqtt==2.1.0'
PRUSALINK_SPEC='prusalink==0.8.1'
PRUSALINK_APT='libcap-dev libturbojpeg0 libmagic1'

mkdir -p "$DIR"

if [ "$(id -u)" = 0 ] && ! id octotest >/dev/null 2>&1; then
    useradd --system --create-home --shell /usr/sbin/nologin octotest
fi

ensure_apt() { # debian-package...
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} = 0 ] && return
    if [ "$(id -u)" != 0 ]; then
        echo "peers: not root, not installing Debian packages ${missing[*]}; install them by hand" >&2
        return
    fi
    echo "peers: apt-get installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}

install_peer() { # name pip-spec import-check
    local name=$1 spec=$2 check=$3 venv="$DIR/$1"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
        echo "peers: $name already installed in $venv"
        return
    fi
    echo "peers: installing $spec into $venv"
    rm -rf "$venv"
    "$PY" -m venv "$venv"
    "$venv/bin/pip" install --quiet "$spec"
    "$venv/bin/python" -c "$check"
}

install_peer octoprint "$OCTOPRINT_SPEC" \
    'import octoprint, sys; v = octoprint.__version__; sys.exit(0 if v.startswith("1.11.") else 1)'
install_peer moonraker "$MOONRAKER_SPEC" \
    'import importlib.metadata as m, sys; sys.exit(0 if m.version("moonraker").startswith("0.11.") else 1)'
install_peer standardwebhooks "$STANDARDWEBHOOKS_SPEC" \
    'import importlib.metadata as m, sys; sys.exit(0 if m.version("standardwebhooks") == "1.3.0" else 1)'
install_peer aiosmtpd "$AIOSMTPD_SPEC" \
    'import importlib.metadata as m, sys; sys.exit(0 if m.version("aiosmtpd") == "1.4.6" else 1)'
install_peer bambusim "$BAMBUSIM_SPEC" \
    'import paho.mqtt.client, importlib.metadata as m, sys; sys.exit(0 if m.version("paho-mqtt") == "2.1.0" else 1)'
# oath-toolkit's oathtool: the reference TOTP generator the second-factor tests take codes from.
ensure_apt oathtool
# shellcheck disable=SC2086 # a list of package names
ensure_apt $PRUSALINK_APT
install_peer prusalink "$PRUSALINK_SPEC" \
    'import prusa.link.web, importlib.metadata as m, sys; sys.exit(0 if m.version("prusalink") == "0.8.1" else 1)'

# OctoPrint runs as octotest and must be able to traverse to its venv.
chmod -R a+rX "$DIR"
d="$DIR"
while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
echo "peers: ready in $DIR"
