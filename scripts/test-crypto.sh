#!/usr/bin/env bash
# CI for hearth-crypto: installs the stock `age` tool (interop peer), then format, lints and the
# tests with the peer required (its absence fails the run instead of skipping).
# The CCTV vectors are read from ../shared/vectors/age beside the repository, or HEARTH_SHARED_DIR.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
scripts/install-age.sh
cargo fmt --all --check
cargo clippy -p hearth-crypto --all-targets -- -D warnings
HEARTH_REQUIRE_PEERS=1 cargo test -p hearth-crypto
