#!/usr/bin/env bash
# A/B timing of hearth-printfile's full analysis across commits, for shared machines whose speed
# drifts: every commit's benchmark is built once, then all of them run in interleaved rounds on
# the same file, so a slow minute falls on each alike. Prints, per commit, the best and median
# time and the median cycles per line (time × the clock measured around the run, which does not
# drift with the clock).
#   scripts/ab-printfile.sh FILE ROUNDS REV [REV...]     (REV: a commit, or WORKTREE for the
#                                                          uncommitted state of this checkout)
# Example: scripts/ab-printfile.sh /tmp/hearth-bench/unit.gcode 10 HEAD~3 HEAD WORKTREE
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
file=$1 rounds=$2
shift 2
work=${TMPDIR:-/tmp}/hearth-ab
mkdir -p "$work"
bins=()
for rev in "$@"; do
  if [ "$rev" = WORKTREE ]; then
    (cd "$root" && cargo build -q --release -p hearth-printfile --example bench)
    cp "$root/target/release/examples/bench" "$work/bench-WORKTREE"
    bins+=("$work/bench-WORKTREE")
    continue
  fi
  id=$(cd "$root" && git rev-parse --short "$rev")
  if [ ! -x "$work/bench-$id" ]; then
    tree="$work/tree-$id"
    rm -rf "$tree"
    (cd "$root" && git worktree add -f --detach "$tree" "$id" >/dev/null 2>&1)
    # One target directory for every commit: dependencies build once.
    (cd "$tree" && CARGO_TARGET_DIR="$work/target" cargo build -q --release -p hearth-printfile --example bench)
    cp "$work/target/release/examples/bench" "$work/bench-$id"
    (cd "$root" && git worktree remove --force "$tree")
  fi
  bins+=("$work/bench-$id")
done
declare -A secs cycles
for _ in $(seq "$rounds"); do
  for b in "${bins[@]}"; do
    out=$("$b" "$file" 3)
    secs[$b]+=" $(sed -n 's/^full_analysis_s=//p' <<<"$out")"
    cycles[$b]+=" $(sed -n 's/^cycles_per_line=//p' <<<"$out")"
  done
done
stats() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{a[NR]=$1} END {printf "best %s median %s", a[1], a[int((NR+1)/2)]}'; }
for b in "${bins[@]}"; do
  printf '%s: time %s s; cycles/line %s\n' "${b##*/bench-}" "$(stats <<<"${secs[$b]}")" \
    "$(stats <<<"${cycles[$b]:-}")"
done
