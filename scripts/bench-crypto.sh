#!/usr/bin/env bash
# Seals and opens one file (200 MB of random data by default) with the stock `age` tool and with
# hearth-crypto in the same run, and prints MB/s, the ratio ours/age (>1 means we are faster) and
# peak RSS. Usage: scripts/bench-crypto.sh [SIZE_MB] [RUNS]
set -euo pipefail
SIZE_MB=${1:-200}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v age >/dev/null || { echo "the stock age tool is missing: scripts/install-age.sh" >&2; exit 1; }
cargo build -q --release -p hearth-crypto --example seal_bench --manifest-path "$ROOT/Cargo.toml"
OURS="$ROOT/target/release/examples/seal_bench"
# tmpfs when available, so disk writeback does not blur the comparison
if [ -d /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR==2{print $4}')" -gt $((SIZE_MB * 5000)) ]; then W=$(mktemp -d -p /dev/shm); else W=$(mktemp -d); fi
trap 'rm -rf "$W"' EXIT
head -c $((SIZE_MB * 1000 * 1000)) /dev/urandom > "$W/plain"
BYTES=$(stat -c %s "$W/plain")

age-keygen -o "$W/age.id" 2>/dev/null
AGE_R=$(age-keygen -y "$W/age.id")
OUR_R=$("$OURS" keygen "$W/our.id")

# best-of-RUNS wall time (s), the peak RSS (KiB) and CPU time (user+sys s) of that run
best() {
    local best_t="" best_m="" best_c=""
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f "%e %M %U %S" -o "$W/t" "$@" >/dev/null
        read -r t m u s < "$W/t"
        if [ -z "$best_t" ] || awk "BEGIN{exit !($t < $best_t)}"; then
            best_t=$t; best_m=$m; best_c=$(awk "BEGIN{printf \"%.2f\", $u + $s}")
        fi
    done
    echo "$best_t $best_m $best_c"
}

read -r age_seal_t age_seal_m age_seal_c < <(best age -r "$AGE_R" -o "$W/a.age" "$W/plain")
read -r age_open_t age_open_m age_open_c < <(best age -d -i "$W/age.id" -o "$W/a.out" "$W/a.age")
read -r our_seal_t our_seal_m our_seal_c < <(best "$OURS" seal "$OUR_R" "$W/plain" "$W/o.age")
read -r our_open_t our_open_m our_open_c < <(best "$OURS" open "$W/our.id" "$W/o.age" "$W/o.out")
# Diagnostics: the STREAM without the ciphertext SHA-256, and the SHA-256 alone.
read -r raw_seal_t raw_seal_m raw_seal_c < <(best "$OURS" seal-unhashed "$OUR_R" "$W/plain" "$W/r.age")
read -r hash_t hash_m hash_c < <(best "$OURS" hash "$W/o.age")

# Cross-check: each side opens the other's output, and the plaintext survived.
age -d -i "$W/our.id" -o "$W/x1" "$W/o.age"
cmp -s "$W/plain" "$W/x1" || { echo "stock age could not open our output correctly" >&2; exit 1; }
"$OURS" open "$W/age.id" "$W/a.age" "$W/x2" >/dev/null
cmp -s "$W/plain" "$W/x2" || { echo "we could not open stock age output correctly" >&2; exit 1; }
cmp -s "$W/plain" "$W/o.out" || { echo "round trip failed" >&2; exit 1; }

mbps() { awk "BEGIN{t=$2; if (t<0.001) t=0.001; printf \"%.0f\", $1/1e6/t}"; }
ratio() { awk "BEGIN{printf \"%.2f\", $1/$2}"; }
AS=$(mbps "$BYTES" "$age_seal_t"); AO=$(mbps "$BYTES" "$age_open_t")
OS=$(mbps "$BYTES" "$our_seal_t"); OO=$(mbps "$BYTES" "$our_open_t")
echo "file: $SIZE_MB MB of random data, best of $RUNS runs, $(nproc) cores, $(age --version | head -1) vs hearth-crypto"
echo
echo "| operation | stock age MB/s | hearth-crypto MB/s | ratio (ours/age) | age peak RSS | ours peak RSS | age CPU s | ours CPU s |"
echo "|---|---|---|---|---|---|---|---|"
echo "| seal | $AS | $OS | $(ratio "$OS" "$AS")x | $((age_seal_m / 1024)) MiB | $((our_seal_m / 1024)) MiB | $age_seal_c | $our_seal_c |"
echo "| open | $AO | $OO | $(ratio "$OO" "$AO")x | $((age_open_m / 1024)) MiB | $((our_open_m / 1024)) MiB | $age_open_c | $our_open_c |"
RS=$(mbps "$BYTES" "$raw_seal_t"); HS=$(mbps "$BYTES" "$hash_t")
echo "| seal without the ciphertext SHA-256 (diagnostic) | $AS | $RS | $(ratio "$RS" "$AS")x | | $((raw_seal_m / 1024)) MiB | | $raw_seal_c |"
echo "| SHA-256 of the ciphertext alone (diagnostic) | | $HS | | | $((hash_m / 1024)) MiB | | $hash_c |"
echo
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
