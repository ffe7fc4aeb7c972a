#!/usr/bin/env bash
# Job engines side by side (issue #25): stompede's `jobs` scenario of the load tool against BullMQ
# on Redis, on this machine, in one run.
#
#   bash benches/compare-jobs.sh        # RUNS=3 rounds; results in target/compare/jobs.*
#
# Each round runs every part against a fresh server, alternating the two so that drifts of the
# machine hit both alike:
# * stompede: the release binary, spawned by the load tool with --bench-job-types (the `noop`
#   job type) and a config of job-concurrency 50, quotas and retention out of the way; parts
#   submit (a, d), complete (b), progress (c); over WebSocket and over TCP.
# * BullMQ (npm `bullmq`, installed into target/bullmq) on redis-server (Debian's package,
#   installed when missing), on 127.0.0.1 with a fresh directory, appendonly yes and appendfsync
#   always (a write is answered once it is in the fsynced AOF), no RDB snapshots. Driven by
#   benches/bullmq/bench.mjs the same way: 64 callers each awaiting its add(), 100,000 trivial
#   jobs completed by a Worker of concurrency 50, progress latency to a QueueEvents listener,
#   Redis's used_memory and RSS growth per 100,000 waiting jobs.
#
# Tunables (environment): RUNS (3), JOBS (100000), TRANSPORTS ("ws tcp"), PARTS
# ("submit complete progress"), OUT (target/compare), INSTALL_ONLY=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
JOBS=${JOBS:-100000}
TRANSPORTS=${TRANSPORTS:-"ws tcp"}
PARTS=${PARTS:-"submit complete progress"}
OUT=${OUT:-$ROOT/target/compare}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
NODE_DIR=$CARGO_TARGET_DIR/bullmq
mkdir -p "$OUT"
RESULTS="$OUT/jobs.jsonl"
: > "$RESULTS"
WORK=$(mktemp -d)
REDIS_PID=""

cleanup() {
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "compare-jobs: $*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

install_missing() {
    if ! command -v redis-server >/dev/null; then
        log "installing redis-server from Debian's packages"
        local policy_created=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            # Keep the package's service from starting (we start our own, on loopback).
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod +x /usr/sbin/policy-rc.d
            policy_created=1
        fi
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server
        [ $policy_created -eq 1 ] && rm -f /usr/sbin/policy-rc.d
        service redis-server stop >/dev/null 2>&1 || true
    fi
    command -v node >/dev/null || { log "node is needed for BullMQ"; exit 1; }
    if [ ! -d "$NODE_DIR/node_modules/bullmq" ] || [ ! -d "$NODE_DIR/node_modules/ioredis" ]; then
        log "installing bullmq from npm into $NODE_DIR"
        mkdir -p "$NODE_DIR"
        [ -f "$NODE_DIR/package.json" ] || echo '{"name":"jobs-bench","private":true,"type":"module"}' > "$NODE_DIR/package.json"
        (cd "$NODE_DIR" && npm install --no-audit --no-fund bullmq@6.7.0 ioredis@5)
    fi
    cp "$ROOT/benches/bullmq/bench.mjs" "$NODE_DIR/bench.mjs"
}

LOAD=()
build() {
    log "building stompede and the load tool (release)"
    (cd "$ROOT" && cargo build --release --quiet && cargo bench --bench load --no-run --quiet)
    local exe
    exe=$(cd "$ROOT" && cargo bench --bench load --no-run --message-format=json 2>/dev/null \
        | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="load" and m.get("executable"): print(m["executable"])' | tail -1)
    LOAD=("$exe")
}

start_redis() {
    local dir=$WORK/redis-$1 port
    mkdir -p "$dir"
    port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --appendonly yes \
        --appendfsync always --save '' --daemonize no --logfile "$dir/redis.log" &
    REDIS_PID=$!
    for _ in $(seq 1 50); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    REDIS_PORT=$port
}

stop_redis() {
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
}

run_stompede() { # round part transport
    log "stompede $3 $2 (round $1)"
    "${LOAD[@]}" jobs --part "$2" --jobs "$JOBS" --transport "$3" \
        --spawn "$CARGO_TARGET_DIR/release/stompede" --timeout 600 --json \
        | sed "s/\"run\":1/\"run\":$1/" >> "$RESULTS" || log "stompede $3 $2: not ok (recorded)"
}

run_bullmq() { # round part
    log "bullmq $2 (round $1)"
    start_redis "$1-$2"
    (cd "$NODE_DIR" && node bench.mjs --part "$2" --port "$REDIS_PORT" --redis-pid "$REDIS_PID" \
        --jobs "$JOBS" --run "$1") >> "$RESULTS" || log "bullmq $2: not ok (recorded)"
    stop_redis
}

summarize() {
    python3 - "$RESULTS" > "$OUT/jobs-summary.md" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
groups = {}
for r in rows:
    groups.setdefault((r["part"], r["broker"], r["transport"]), []).append(r)
def med(rs, k):
    v = [r[k] for r in rs if isinstance(r.get(k), (int, float))]
    return statistics.median(v) if v else None
fmt = lambda x, f: "-" if x is None else f.format(x)
print("| part | server | transport | runs ok | per s | vs BullMQ | server CPU us/job | MiB/100k waiting | p50 ms | p99 ms | load |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (part, br, tr), rs in sorted(groups.items()):
    base = next((v for (p, b, _), v in groups.items() if p == part and b == "bullmq"), None)
    rate, brate = med(rs, "per_s"), med(base, "per_s") if base else None
    ratio = rate / brate if rate and brate else None
    if part == "progress":
        p99, bp99 = med(rs, "latency_p99_ms"), med(base, "latency_p99_ms") if base else None
        ratio = None
    print(f"| {part} | {br} | {tr} | {sum(1 for r in rs if r.get('ok'))}/{len(rs)} | "
          f"{fmt(rate if part != 'progress' else None, '{:,.0f}')} | {fmt(ratio, '{:.2f}x')} | "
          f"{fmt(med(rs, 'broker_cpu_us_per_job'), '{:.1f}')} | {fmt(med(rs, 'rss_mib_per_100k_waiting'), '{:.1f}')} | "
          f"{fmt(med(rs, 'latency_p50_ms'), '{:.2f}')} | {fmt(med(rs, 'latency_p99_ms'), '{:.2f}')} | {fmt(med(rs, 'load_1m'), '{:.1f}')} |")
PY
    cat "$OUT/jobs-summary.md"
}

install_missing
[ "${INSTALL_ONLY:-0}" = 1 ] && exit 0
build
for r in $(seq 1 "$RUNS"); do
    log "round $r of $RUNS (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    for part in $PARTS; do
        for t in $TRANSPORTS; do run_stompede "$r" "$part" "$t"; done
        run_bullmq "$r" "$part"
    done
done
summarize
