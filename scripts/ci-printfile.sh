#!/usr/bin/env bash
# CI steps for hearth-printfile and the hearth CLI: formatting, lints, tests with the real
# OctoPrint peer required, and a short fuzzing session. Run from anywhere.
#   SKIP_FUZZ=1  leave out the fuzz session (it compiles libFuzzer, ~2 min the first time)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-octoprint.sh >/dev/null          # OctoPrint 1.11 venv for the live test
cargo fmt --all --check
cargo clippy -p hearth-printfile -p hearth-cli --all-targets -- -D warnings
HEARTH_REQUIRE_PEERS=1 cargo test -p hearth-printfile -p hearth-cli
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  scripts/fuzz-smoke.sh
fi
