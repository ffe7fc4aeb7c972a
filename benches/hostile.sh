#!/usr/bin/env bash
# The hostile clients' witness, measured (issue #23): does a well-behaved client keep its
# delivery rate within 20% while each attack of tests/hostile.rs runs?
#
#   bash benches/hostile.sh             # RUNS=3 rounds; the lines in target/hostile/rates.txt
#
# The test suite checks what each attacker gets and that the witness loses nothing; it prints the
# witness's rate before and during each attack (`witness-rate` lines) but never judges a timing.
# This script runs that suite in release mode, one test at a time, RUNS times, and judges the
# median of each attack's ratio (rate during / rate before): FAIL below 0.80. The witness runs on
# a thread of its own; its rate is bound by round trips and group commits (a receipted
# persistent SEND, then the MESSAGE and its ACK), so run this on a quiet machine: other load
# moves the figure more than any attack does.
#
# Tunables (environment): RUNS (3), FLOOR (0.80), OUT (target/hostile).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
FLOOR=${FLOOR:-0.80}
OUT=${OUT:-$ROOT/target/hostile}
mkdir -p "$OUT"
RATES="$OUT/rates.txt"
: > "$RATES"

cd "$ROOT"
cargo test --release --test hostile --no-run >&2
for run in $(seq 1 "$RUNS"); do
    echo "==> round $run of $RUNS (load average: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    # A test's line comes after `test <name> ... ` when the test prints before its verdict:
    # the witness's line is taken wherever it starts.
    cargo test --release --test hostile -- --nocapture --test-threads 1 2>&1 \
        | tee "$OUT/run-$run.log" \
        | grep -o 'witness-rate .*' >> "$RATES" \
        || { echo "round $run: the suite failed, see $OUT/run-$run.log" >&2; exit 1; }
done

# One line per attack: the median ratio and the median rates, judged against the floor.
awk -v floor="$FLOOR" '
    function median(list,    n, i, j, v, t) {
        n = split(list, v, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    {
        name = $2
        for (f = 3; f <= NF; f++) { split($f, kv, "="); field[kv[1]] = kv[2] }
        ratios[name] = ratios[name] " " field["ratio"]
        befores[name] = befores[name] " " field["before"]
        durings[name] = durings[name] " " field["during"]
        if (!(name in seen)) { seen[name] = 1; order[++count] = name }
    }
    END {
        printf "%-22s %12s %12s %8s  %s\n", "attack", "before msg/s", "during msg/s", "ratio", "verdict"
        failed = 0
        for (i = 1; i <= count; i++) {
            name = order[i]
            ratio = median(ratios[name])
            verdict = ratio >= floor ? "ok" : "FAIL"
            if (verdict == "FAIL") failed++
            printf "%-22s %12.0f %12.0f %8.2f  %s\n", name, median(befores[name]), median(durings[name]), ratio, verdict
        }
        exit failed > 0
    }
' "$RATES"
