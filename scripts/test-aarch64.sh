#!/usr/bin/env bash
# Runs hearth-printfile's tests built for aarch64 (the Raspberry Pi an edge agent usually runs on)
# under user-mode QEMU, so the code paths for processors other than x86-64 (byte-at-a-time
# classification, the planner's portable build) run somewhere. Installs what it needs when it
# runs as root: Rust's aarch64 standard library (rustup), a cross linker and qemu-user (Debian).
# Takes ~2 minutes on 2 cores. Not part of .ci/run: rustup's download server is not one of the
# registries a CI machine is promised.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=aarch64-unknown-linux-gnu
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
fi
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
cd "$root"
cargo clippy -q --target "$target" -p hearth-printfile --all-targets -- -D warnings
cargo test -q --target "$target" -p hearth-printfile
