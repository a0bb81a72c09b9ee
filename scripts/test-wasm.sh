#!/usr/bin/env bash
# Runs hearth-printfile's tests built for WebAssembly (wasm32-wasip1) under Node.js's WASI, the
# way the browser-side flow will run the analysis: a 32-bit target without the x86 vector builds,
# so the portable classification and planner must give the same reports as the expected files.
# Needs Node.js (on this machine kind) and Rust's wasm32-wasip1 standard library, which it adds
# with rustup when missing. `--bench FILE` also times the full analysis of FILE in Node.js.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=wasm32-wasip1
command -v node >/dev/null || { echo "test-wasm: Node.js is needed" >&2; exit 1; }
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
export CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $root/scripts/wasi-run.mjs"
cd "$root"
if [ "${1:-}" = --bench ]; then
  cargo build -q --release -p hearth-printfile --example bench --target "$target"
  tdir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  # clock_ghz and cycles_per_line mean nothing under a JIT; the rest is what the browser gets.
  node --no-warnings scripts/wasi-run.mjs "$tdir/$target/release/examples/bench.wasm" "$2" 3
else
  cargo test -q -p hearth-printfile --target "$target"
fi
