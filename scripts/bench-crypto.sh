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
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
head -c $((SIZE_MB * 1000 * 1000)) /dev/urandom > "$W/plain"
BYTES=$(stat -c %s "$W/plain")

age-keygen -o "$W/age.id" 2>/dev/null
AGE_R=$(age-keygen -y "$W/age.id")
OUR_R=$("$OURS" keygen "$W/our.id")

# Each command runs RUNS times, interleaved round by round (stock age, ours, ...) so that load from
# other processes falls on both tools alike; for each we keep the fastest run's wall time (s,
# measured in ns around /usr/bin/time), its peak RSS (KiB) and CPU time (user+sys s).
declare -A BEST_T BEST_M BEST_C
run() {
    local key=$1 start end t m u s
    shift
    start=$(date +%s%N)
    /usr/bin/time -f "%M %U %S" -o "$W/t" "$@" >/dev/null
    end=$(date +%s%N)
    t=$(awk "BEGIN{printf \"%.4f\", ($end - $start) / 1e9}")
    read -r m u s < "$W/t"
    if [ -z "${BEST_T[$key]:-}" ] || awk "BEGIN{exit !($t < ${BEST_T[$key]})}"; then
        BEST_T[$key]=$t; BEST_M[$key]=$m; BEST_C[$key]=$(awk "BEGIN{printf \"%.2f\", $u + $s}")
    fi
}
for _ in $(seq "$RUNS"); do
    run age_seal age -r "$AGE_R" -o "$W/a.age" "$W/plain"
    run our_seal "$OURS" seal "$OUR_R" "$W/plain" "$W/o.age"
    run age_open age -d -i "$W/age.id" -o "$W/a.out" "$W/a.age"
    run our_open "$OURS" open "$W/our.id" "$W/o.age" "$W/o.out"
    # Diagnostics: the STREAM without the ciphertext SHA-256, and the SHA-256 alone.
    run raw_seal "$OURS" seal-unhashed "$OUR_R" "$W/plain" "$W/r.age"
    run hash "$OURS" hash "$W/o.age"
done
age_seal_t=${BEST_T[age_seal]}; age_seal_m=${BEST_M[age_seal]}; age_seal_c=${BEST_C[age_seal]}
age_open_t=${BEST_T[age_open]}; age_open_m=${BEST_M[age_open]}; age_open_c=${BEST_C[age_open]}
our_seal_t=${BEST_T[our_seal]}; our_seal_m=${BEST_M[our_seal]}; our_seal_c=${BEST_C[our_seal]}
our_open_t=${BEST_T[our_open]}; our_open_m=${BEST_M[our_open]}; our_open_c=${BEST_C[our_open]}
raw_seal_t=${BEST_T[raw_seal]}; raw_seal_m=${BEST_M[raw_seal]}; raw_seal_c=${BEST_C[raw_seal]}
hash_t=${BEST_T[hash]}; hash_m=${BEST_M[hash]}; hash_c=${BEST_C[hash]}

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
echo "file: $SIZE_MB MB of random data, best of $RUNS interleaved runs, $(nproc) cores, $(age --version | head -1) vs hearth-crypto"
echo
echo "| operation | stock age MB/s | hearth-crypto MB/s | ratio (ours/age) | age peak RSS | ours peak RSS | age CPU s | ours CPU s |"
echo "|---|---|---|---|---|---|---|---|"
echo "| seal | $AS | $OS | $(ratio "$OS" "$AS")x | $((age_seal_m / 1024)) MiB | $((our_seal_m / 1024)) MiB | $age_seal_c | $our_seal_c |"
echo "| open | $AO | $OO | $(ratio "$OO" "$AO")x | $((age_open_m / 1024)) MiB | $((our_open_m / 1024)) MiB | $age_open_c | $our_open_c |"
RS=$(mbps "$BYTES" "$raw_seal_t"); HS=$(mbps "$BYTES" "$hash_t")
echo "| seal without the ciphertext SHA-256 (diagnostic) | $AS | $RS | $(ratio "$RS" "$AS")x | | $((raw_seal_m / 1024)) MiB | | $raw_seal_c |"
echo "| SHA-256 of the ciphertext alone (diagnostic) | | $HS | | | $((hash_m / 1024)) MiB | | $hash_c |"
echo
echo "load average before the run: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
