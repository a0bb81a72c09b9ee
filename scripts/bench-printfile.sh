#!/usr/bin/env bash
# Benchmark of hearth-printfile's full analysis against OctoPrint 1.11's, on the same ~200 MB
# PrusaSlicer file, in the same run. Prints MB/s of both, our peak RSS, the ratio, and the time of
# metadata-only inspection. Not a test; figures go to BENCHMARKS.md.
#
# The file: the recipe of peers/README.md slices the 34 MB "wavy" STL with PrusaSlicer 2.5
# (~43 MB of G-code) and the result is repeated to ~200 MB. The script installs Debian's
# `prusa-slicer` when it runs as root and the package is missing; where it cannot, the
# PrusaSlicer 2.5 sample wavy_small (1.25 MB, real slicer output) is repeated to ~200 MB instead
# (say which in the results). BENCH_MB sets the size (default 200).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${BENCH_DIR:-${TMPDIR:-/tmp}/hearth-bench}
mb=${BENCH_MB:-200}
mkdir -p "$work"
if ! command -v prusa-slicer >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prusa-slicer >/dev/null ||
    echo "prusa-slicer could not be installed: using the repeated sample" >&2
fi
if command -v prusa-slicer >/dev/null; then src=wavy_big; else src=wavy_small; fi
big=$work/prusaslicer_${src}_${mb}mb.gcode
if [ ! -s "$big" ]; then
  if [ "$src" = wavy_big ]; then
    tools=${HEARTH_SHARED_DIR:-$root/../shared}/peers/tools
    python3 "$tools/gen_stl.py" wavy "$work/wavy_big.stl" 60 120 1440 240
    prusa-slicer --loglevel 1 --load "$tools/mk3s_like.ini" --layer-height 0.1 --export-gcode \
      --center 125,105 -o "$work/unit.gcode" "$work/wavy_big.stl"
  else
    cp "$root/crates/hearth-printfile/test_data/samples/wavy_small_prusaslicer_mk3s.gcode" "$work/unit.gcode"
  fi
  : > "$big"
  while [ "$(stat -c %s "$big")" -lt $((mb * 1000000)) ]; do cat "$work/unit.gcode" >> "$big"; done
fi
size=$(stat -c %s "$big")
echo "file: $big ($((size / 1000000)) MB, repeated from $src)"

(cd "$root" && cargo build -q --release -p hearth-printfile --example bench)
echo "--- hearth-printfile (one core)"
ours=$("$root/target/release/examples/bench" "$big" 3)
echo "$ours"
our_mbps=$(echo "$ours" | sed -n 's/^full_analysis_mb_per_s=//p')

echo "--- OctoPrint 1.11 (python -m octoprint analysis gcode)"
venv=$("$root/scripts/install-octoprint.sh")
start=$(date +%s.%N)
(cd "$work" && "$venv/bin/python" -m octoprint analysis gcode "$big" > "$work/octoprint.out" 2>&1)
end=$(date +%s.%N)
octo_s=$(echo "$end - $start" | bc -l)
octo_mbps=$(echo "$size / 1000000 / $octo_s" | bc -l)
printf 'octoprint_s=%.1f\noctoprint_mb_per_s=%.2f\n' "$octo_s" "$octo_mbps"
grep -A2 '^extrusion_length' "$work/octoprint.out" | tr '\n' ' '; echo
printf 'ratio=%.0fx\n' "$(echo "$our_mbps / $octo_mbps" | bc -l)"
