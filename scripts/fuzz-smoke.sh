#!/usr/bin/env bash
# Short fuzzing session of hearth-printfile's three targets (gcode, bgcode, threemf), on the stable
# toolchain. By default each target is built as a coverage-guided libFuzzer binary: the same
# instrumentation flags cargo-fuzz uses (all stable -C options), minus the AddressSanitizer that
# needs nightly (the crate forbids unsafe code, so ASan has little to find). Seeds are the test
# samples. FUZZ_SECONDS per target (default 10, so ~30 s in all).
#   FUZZ_MODE=stable   use the plain mutation harness instead (no C++ compiler needed)
# A crash leaves its input under fuzz/artifacts/<target>/ and makes the script fail.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
secs=${FUZZ_SECONDS:-10}
mode=${FUZZ_MODE:-libfuzzer}
samples=$root/crates/hearth-printfile/test_data/samples
# Wherever cargo puts the binaries (CARGO_TARGET_DIR, a config file, or ./target).
tdir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
for t in gcode bgcode threemf; do
  mkdir -p "corpus/$t"
  case $t in
    gcode) cp -n "$samples"/*.gcode "$root"/crates/hearth-printfile/test_data/metadata/*.gcode "corpus/$t/" ;;
    bgcode) cp -n "$samples"/*.bgcode "corpus/$t/" ;;
    threemf) cp -n "$samples"/*.3mf "corpus/$t/" ;;
  esac
done
if [ "$mode" = libfuzzer ]; then
  export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
  # An explicit --target keeps the instrumentation flags away from build scripts and proc macros.
  host=$(rustc -vV | sed -n 's/^host: //p')
  cargo build --release --features libfuzzer --bins --target "$host"
  for t in gcode bgcode threemf; do
    mkdir -p "artifacts/$t"
    "$tdir/$host/release/$t" -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -max_len=65536 \
      -artifact_prefix="artifacts/$t/" "corpus/$t" 2>&1 | tail -n 3
  done
else
  cargo build --release --bins
  for t in gcode bgcode threemf; do
    FUZZ_SECONDS=$secs "$tdir/release/$t" "corpus/$t"
  done
fi
echo "fuzz-smoke: no crash in ${secs}s per target ($mode)"
