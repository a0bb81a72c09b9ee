#!/usr/bin/env bash
# Makes sure OctoPrint 1.11 is installed in its venv and prints the venv path.
# Location: ${HEARTH_PEERS_DIR:-$HOME/.cache/hearth-peers}/octoprint (created with /usr/bin/python3).
set -euo pipefail
venv=${HEARTH_PEERS_DIR:-$HOME/.cache/hearth-peers}/octoprint
if [ ! -x "$venv/bin/octoprint" ]; then
  mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q 'octoprint==1.11.*' >&2
fi
echo "$venv"
