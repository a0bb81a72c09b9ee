#!/usr/bin/env bash
# Installs the stock `age` tool (Go, Debian package `age`), the interoperability peer of
# hearth-crypto's tests (tests/it/interop_age_cli.rs) and the baseline of scripts/bench-crypto.sh.
set -euo pipefail
if command -v age >/dev/null && command -v age-keygen >/dev/null; then
    age --version
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
$SUDO apt-get install -y age
age --version
