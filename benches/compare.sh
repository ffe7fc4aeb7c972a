#!/usr/bin/env bash
# Side-by-side broker comparison on this machine: stompede against RabbitMQ (STOMP over WebSocket
# through rabbitmq_web_stomp, and plain STOMP), ActiveMQ Classic (STOMP over TCP) and NATS (its own
# protocol, over WebSocket and TCP, through the load tool's NATS client), with the same load tool.
#
#   bash benches/compare.sh            # RUNS=3 rounds; results in target/compare/
#
# Each round starts every broker fresh, on 127.0.0.1 only, from a temporary directory with its own
# loopback-only configuration, runs the fan-out and queue scenarios against it, and stops it; the
# brokers alternate within a round so that drifts of the machine hit them all alike. Medians of
# the rounds and ratios to stompede are written to target/compare/summary.md.
#
# Missing brokers are installed from Debian's packages (apt-get update first); their services are
# kept from starting on install (policy-rc.d), so nothing listens beyond what this script starts.
#
# Settings that differ from the packages' defaults, and why:
# * RabbitMQ: the file-descriptor limit is raised to the hard limit (run under its wrapper it
#   drops to 1024, too few for the connection counts here); Erlang distribution and epmd are
#   bound to 127.0.0.1.
# * NATS: max_pending is raised from 64 MiB to 1 GiB, so an unpaced fan-out measures throughput
#   instead of NATS cutting off subscribers that fall behind (NATS drops slow consumers; it never
#   paces a publisher). websocket needs no_tls: true on loopback.
# * ActiveMQ: one stomp://127.0.0.1 connector, no web console, no JMX connector.
#
# Job engines: at the end, benches/compare-jobs.sh runs the load tool's `jobs` scenario beside
# BullMQ on Redis (appendfsync always) in the same run (JOBS_COMPARE=0 to leave it out).
#
# Tunables (environment): INSTALL_ONLY=1 (install and stop), RUNS (3), FANOUT_ARGS, QUEUE_ARGS,
# PACED_ARGS, PACED_BROKERS ("stompede nats"), BROKERS ("stompede rabbitmq activemq nats"), OUT
# (target/compare).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
OUT=${OUT:-$ROOT/target/compare}
BROKERS=${BROKERS:-"stompede rabbitmq activemq nats"}
# RabbitMQ fans out ~25,000-30,000 deliveries/s here, so 10,000 messages x 100 subscribers take
# ~40 s: its Web-STOMP closes a WebSocket that it has not read from for 60 s, and a publisher it
# holds back by flow control for longer than that is cut off before its receipt.
# --queues splits the fan-out's latency by kernel socket queue; its sampling (a walk of the
# kernel's connection table every 100 ms) would disturb the paced run's sub-ms latencies, so
# only the unpaced fan-out, whose latency is backlog, has it.
FANOUT_ARGS=${FANOUT_ARGS:-"--subscribers 100 --messages 10000 --size 256 --queues"}
QUEUE_ARGS=${QUEUE_ARGS:-"--producers 4 --consumers 4 --messages 100000 --size 256 --prefetch 100 --window 10000"}
# The paced fan-out (10 publishers x 1,000 msgs/s to 100 subscribers: 1,000,000 deliveries/s)
# measures per-message latency, so it only runs on brokers that keep that pace here; RabbitMQ
# and ActiveMQ deliver under 200,000 msgs/s on this machine and would only measure a backlog.
PACED_ARGS=${PACED_ARGS:-"--publishers 10 --rate 10000 --messages 100000 --subscribers 100 --size 256"}
PACED_BROKERS=${PACED_BROKERS:-"stompede nats"}
TIMEOUT=${TIMEOUT:-300}

mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
WORK=$(mktemp -d)
STARTED_PIDS=()

cleanup() {
    for pid in "${STARTED_PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "compare: $*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The pid listening on 127.0.0.1:$1 (the broker process whose CPU and memory we read).
listener_pid() {
    ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1
}

wait_port() { # port seconds
    local deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        [ -n "$(listener_pid "$1")" ] && return 0
        sleep 0.5
    done
    return 1
}

stop_pid() {
    local pid=$1
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# Installation

install_missing() {
    local pkgs=()
    [[ " $BROKERS " == *" rabbitmq "* ]] && [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && pkgs+=(rabbitmq-server)
    [[ " $BROKERS " == *" activemq "* ]] && [ ! -d /usr/share/activemq ] && pkgs+=(activemq)
    [[ " $BROKERS " == *" nats "* ]] && ! command -v nats-server >/dev/null && pkgs+=(nats-server)
    [ ${#pkgs[@]} -eq 0 ] && return 0
    log "installing ${pkgs[*]} from Debian's packages"
    local policy_created=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        # Keep the packages' services from starting (they would listen on every interface).
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        policy_created=1
    fi
    local epmd_before
    epmd_before=$(listener_pid 4369)
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"
    [ $policy_created -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    # A service the package started anyway is not ours to keep: Erlang's postinst leaves an
    # epmd listening on every interface.
    for svc in rabbitmq-server activemq nats-server; do
        service "$svc" stop >/dev/null 2>&1 || true
    done
    local epmd_after
    epmd_after=$(listener_pid 4369)
    if [ -n "$epmd_after" ] && [ "$epmd_after" != "$epmd_before" ]; then
        kill "$epmd_after" 2>/dev/null || true
    fi
}

# ---------------------------------------------------------------------------------------------
# Brokers: each start_* sets TARGET_WS / TARGET_TCP (load tool flags), BROKER_PID and STOP_PIDS.

start_stompede() {
    local dir=$WORK/stompede-$1 stomp http
    mkdir -p "$dir"
    stomp=$(free_port); http=$(free_port)
    "$ROOT/target/release/stompede" serve --data-dir "$dir/data" --stomp "127.0.0.1:$stomp" \
        --http "127.0.0.1:$http" > "$dir/out.log" 2> "$dir/err.log" &
    BROKER_PID=$!
    STARTED_PIDS+=("$BROKER_PID")
    STOP_PIDS=("$BROKER_PID")
    wait_port "$stomp" 30 && wait_port "$http" 30
    TARGET_WS="--url ws://127.0.0.1:$http/ws"
    TARGET_TCP="--tcp 127.0.0.1:$stomp"
}

start_rabbitmq() {
    local dir=$WORK/rabbitmq-$1 amqp stomp ws dist epmd
    mkdir -p "$dir/mnesia" "$dir/log" "$dir/home"
    amqp=$(free_port); stomp=$(free_port); ws=$(free_port); dist=$(free_port); epmd=$(free_port)
    cat > "$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$amqp
stomp.listeners.tcp.1 = 127.0.0.1:$stomp
web_stomp.tcp.ip = 127.0.0.1
web_stomp.tcp.port = $ws
loopback_users.guest = true
EOF
    local saved_home=$HOME
    export HOME=$dir/home RABBITMQ_CONF_ENV_FILE=/dev/null RABBITMQ_NODENAME=bench@localhost \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$amqp RABBITMQ_DIST_PORT=$dist \
        RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log \
        RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins \
        RABBITMQ_PID_FILE=$dir/rabbitmq.pid ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=$epmd \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    /usr/lib/rabbitmq/bin/rabbitmq-plugins --offline enable rabbitmq_web_stomp rabbitmq_stomp >/dev/null \
        || echo '[rabbitmq_stomp,rabbitmq_web_stomp].' > "$dir/enabled_plugins"
    # Run the server script directly (not the wrapper that switches user and drops the
    # file-descriptor limit to 1024), with the limit raised.
    ( ulimit -n "$(ulimit -Hn)"; exec /usr/lib/rabbitmq/bin/rabbitmq-server ) > "$dir/out.log" 2>&1 &
    STARTED_PIDS+=("$!")
    if ! wait_port "$ws" 120 || ! wait_port "$stomp" 60; then
        export HOME=$saved_home
        log "RabbitMQ did not start; see $dir/log"; tail -20 "$dir/out.log" >&2; return 1
    fi
    export HOME=$saved_home
    BROKER_PID=$(listener_pid "$stomp")
    STOP_PIDS=("$BROKER_PID" "$(listener_pid "$epmd")" "$!")
    TARGET_WS="--url ws://127.0.0.1:$ws/ws"
    TARGET_TCP="--tcp 127.0.0.1:$stomp"
}

start_activemq() {
    local dir=$WORK/activemq-$1 stomp
    mkdir -p "$dir/conf" "$dir/data" "$dir/tmp"
    stomp=$(free_port)
    cp -r /usr/share/activemq/conf/. "$dir/conf/" 2>/dev/null || cp -r /etc/activemq/. "$dir/conf/" 2>/dev/null || true
    cat > "$dir/conf/activemq.xml" <<EOF
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
                           http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="bench" dataDirectory="$dir/data" useJmx="false">
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:$stomp"/>
    </transportConnectors>
  </broker>
</beans>
EOF
    local home=/usr/share/activemq
    ( ulimit -n "$(ulimit -Hn)"; exec java -Xms1G -Xmx1G -Djava.awt.headless=true \
        -Dactivemq.home=$home -Dactivemq.base=$dir -Dactivemq.conf=$dir/conf \
        -Dactivemq.data=$dir/data -Djava.io.tmpdir=$dir/tmp \
        -jar $home/bin/activemq.jar start "xbean:file:$dir/conf/activemq.xml" ) > "$dir/out.log" 2>&1 &
    STARTED_PIDS+=("$!")
    if ! wait_port "$stomp" 120; then
        log "ActiveMQ did not start"; tail -20 "$dir/out.log" >&2; return 1
    fi
    BROKER_PID=$(listener_pid "$stomp")
    STOP_PIDS=("$BROKER_PID")
    TARGET_WS=""
    TARGET_TCP="--tcp 127.0.0.1:$stomp"
}

start_nats() {
    local dir=$WORK/nats-$1 port ws
    mkdir -p "$dir"
    port=$(free_port); ws=$(free_port)
    cat > "$dir/nats.conf" <<EOF
listen: 127.0.0.1:$port
# Raised from 64 MiB so unpaced fan-out measures throughput, not slow-consumer cut-offs.
max_pending: 1073741824
websocket {
  listen: "127.0.0.1:$ws"
  no_tls: true
}
EOF
    nats-server -c "$dir/nats.conf" > "$dir/out.log" 2>&1 &
    BROKER_PID=$!
    STARTED_PIDS+=("$BROKER_PID")
    STOP_PIDS=("$BROKER_PID")
    wait_port "$port" 30 && wait_port "$ws" 30
    TARGET_WS="--proto nats --url ws://127.0.0.1:$ws/"
    TARGET_TCP="--proto nats --tcp 127.0.0.1:$port"
}

# ---------------------------------------------------------------------------------------------

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

# Waits (at most IDLE_WAIT seconds, default 120) until the machine is at least 85% idle over 2 s,
# so that a run does not start while something else is using the cores.
wait_idle() {
    local deadline=$((SECONDS + ${IDLE_WAIT:-120})) u n s i w x y z t1 i1 t2 i2
    while [ $SECONDS -lt $deadline ]; do
        read -r _ u n s i w x y z _ < /proc/stat; t1=$((u+n+s+i+w+x+y+z)); i1=$((i+w))
        sleep 2
        read -r _ u n s i w x y z _ < /proc/stat; t2=$((u+n+s+i+w+x+y+z)); i2=$((i+w))
        [ $((100 * (i2 - i1) / (t2 - t1 + 1))) -ge 85 ] && return 0
    done
    log "the machine is still busy; running anyway"
}

# run_load BROKER TRANSPORT SCENARIO TARGET-FLAGS ARGS...
run_load() {
    local broker=$1 transport=$2 scenario=$3 target=$4
    shift 4
    wait_idle
    log "$broker $transport $scenario"
    # shellcheck disable=SC2086
    "${LOAD[@]}" "$scenario" $target --broker-pid "$BROKER_PID" --label "$broker" \
        --timeout "$TIMEOUT" --json "$@" >> "$RESULTS" || log "$broker $transport $scenario: not ok (recorded)"
}

round() {
    local r=$1 b
    for b in $BROKERS; do
        if ! "start_$b" "$r"; then
            log "skipping $b in round $r"; continue
        fi
        # shellcheck disable=SC2086
        {
            [ -n "$TARGET_WS" ] && run_load "$b" ws fanout "$TARGET_WS" $FANOUT_ARGS
            run_load "$b" tcp fanout "$TARGET_TCP" $FANOUT_ARGS
            if [[ " $PACED_BROKERS " == *" $b "* ]]; then
                [ -n "$TARGET_WS" ] && run_load "$b" ws fanout "$TARGET_WS" $PACED_ARGS
                run_load "$b" tcp fanout "$TARGET_TCP" $PACED_ARGS
            fi
            if [ "$b" != nats ]; then
                [ -n "$TARGET_WS" ] && run_load "$b" ws queue "$TARGET_WS" $QUEUE_ARGS
                run_load "$b" tcp queue "$TARGET_TCP" $QUEUE_ARGS
            fi
        } || true
        for pid in "${STOP_PIDS[@]}"; do [ -n "$pid" ] && stop_pid "$pid"; done
    done
}

summarize() {
    python3 - "$RESULTS" > "$OUT/summary.md" <<'EOF'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
groups = {}
for r in rows:
    scenario = r["scenario"]
    if isinstance(r.get("rate"), (int, float)):
        scenario += f" paced {r['rate']:,.0f}/s"
    groups.setdefault((scenario, r["transport"], r["broker"]), []).append(r)
def med(rs, k):
    v = [r[k] for r in rs if isinstance(r.get(k), (int, float))]
    return statistics.median(v) if v else None
print("| scenario | transport | broker | runs ok | delivered msgs/s | vs stompede | p50 ms | p99 ms | lost | broker CPU us/delivery |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (sc, tr, br), rs in sorted(groups.items()):
    rate = med(rs, "delivered_per_s")
    base = groups.get((sc, tr, "stompede"))
    ratio = rate / med(base, "delivered_per_s") if base and rate and med(base, "delivered_per_s") else None
    cpu = med(rs, "broker_cpu_s_per_million")
    p99 = med(rs, "latency_p99_ms")
    ok = sum(1 for r in rs if r.get("ok"))
    fmt = lambda x, f: "-" if x is None else f.format(x)
    p50 = med(rs, "latency_p50_ms")
    print(f"| {sc} | {tr} | {br} | {ok}/{len(rs)} | {fmt(rate, '{:,.0f}')} | {fmt(ratio, '{:.2f}x')} | {fmt(p50, '{:,.2f}')} | {fmt(p99, '{:,.2f}')} | {fmt(med(rs, 'lost'), '{:,.0f}')} | {fmt(cpu, '{:.2f}')} |")
EOF
    cat "$OUT/summary.md"
}

install_missing
if [ "${INSTALL_ONLY:-0}" = 1 ]; then
    [ "${JOBS_COMPARE:-1}" = 1 ] && INSTALL_ONLY=1 bash "$ROOT/benches/compare-jobs.sh"
    exit 0
fi
build
for r in $(seq 1 "$RUNS"); do
    log "round $r of $RUNS"
    round "$r"
done
summarize
if [ "${JOBS_COMPARE:-1}" = 1 ]; then
    RUNS=$RUNS OUT=$OUT bash "$ROOT/benches/compare-jobs.sh"
fi
