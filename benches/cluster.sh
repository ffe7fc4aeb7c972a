#!/usr/bin/env bash
# Across cluster nodes (issue #24): one nats-server and NODES stompede nodes (release build) on
# free loopback ports; the load tool's publisher(s) on node 1, its receivers (subscribers or
# queue consumers) spread over the other nodes (or node 1 itself when NODES is 1, the
# single-node figure to compare with).
#
#   benches/cluster.sh [NODES] [load flags...]     # e.g. benches/cluster.sh 3 --messages 50000
#   SCENARIO=queue JETSTREAM=3 benches/cluster.sh 3 --persistent --messages 20000
#
# SCENARIO is the load tool's scenario (default fanout). JETSTREAM=R runs R nats-servers with
# JetStream routed into one NATS cluster instead (queues kept with R replicas; node i on server
# i mod R). Needs nats-server (apt install nats-server). Prints the load tool's result line(s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NODES="${1:-3}"
shift || true
command -v nats-server >/dev/null || { echo "benches/cluster.sh: needs nats-server" >&2; exit 1; }

cargo build --release --bin stompede >&2
BIN="$PWD/target/release/stompede"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

SCENARIO="${SCENARIO:-fanout}"
JETSTREAM="${JETSTREAM:-0}"
NATS_PORTS=()
NATS_PIDS=()
CLUSTER_FLAGS=()
if [[ "$JETSTREAM" -gt 0 ]]; then
  ROUTE_PORTS=()
  for _ in $(seq "$JETSTREAM"); do NATS_PORTS+=("$(free_port)"); ROUTE_PORTS+=("$(free_port)"); done
  ROUTES="$(printf 'nats://127.0.0.1:%s,' "${ROUTE_PORTS[@]}")"
  for i in $(seq 0 $((JETSTREAM - 1))); do
    CLUSTERED=()
    if [[ "$JETSTREAM" -gt 1 ]]; then
      CLUSTERED=(--server_name "s$i" --cluster_name bench --cluster "nats://127.0.0.1:${ROUTE_PORTS[$i]}" --routes "${ROUTES%,}")
    fi
    nats-server -a 127.0.0.1 -p "${NATS_PORTS[$i]}" -js -sd "$WORK/js$i" "${CLUSTERED[@]}" \
      >"$WORK/nats$i.log" 2>&1 &
    NATS_PIDS+=("$!")
    PIDS+=("$!")
  done
  CLUSTER_FLAGS=(--cluster-replicas "$JETSTREAM")
else
  NATS_PORTS+=("$(free_port)")
  nats-server -a 127.0.0.1 -p "${NATS_PORTS[0]}" >"$WORK/nats.log" 2>&1 &
  NATS_PIDS+=("$!")
  PIDS+=("$!")
fi
for port in "${NATS_PORTS[@]}"; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
done

STOMP=()
NODE_PIDS=()
for i in $(seq 1 "$NODES"); do
  NATS_PORT="${NATS_PORTS[$(( (i - 1) % ${#NATS_PORTS[@]} ))]}"
  "$BIN" serve --stomp 127.0.0.1:0 --http off --log warn --heartbeat 0,0 \
    --data-dir "$WORK/n$i" --cluster "nats://127.0.0.1:$NATS_PORT" --node-name "n$i" \
    "${CLUSTER_FLAGS[@]}" >"$WORK/n$i.out" 2>"$WORK/n$i.err" &
  PIDS+=("$!")
  NODE_PIDS+=("$!")
  for _ in $(seq 200); do [[ -s "$WORK/n$i.out" ]] && break; sleep 0.05; done
  STOMP+=("$(grep -o '"stomp":"[^"]*"' "$WORK/n$i.out" | cut -d'"' -f4)")
done

RECEIVERS=()
if [[ "$NODES" -eq 1 ]]; then
  RECEIVERS+=(--receivers-at "${STOMP[0]}")
else
  for addr in "${STOMP[@]:1}"; do RECEIVERS+=(--receivers-at "$addr"); done
fi
cargo bench --bench load -- "$SCENARIO" --tcp "${STOMP[0]}" "${RECEIVERS[@]}" \
  --broker-pid "${NODE_PIDS[0]}" --label "cluster-$NODES-nodes" "$@"

# The load tool measures node 1 only: every process's CPU over its whole life (start-up
# included), from /proc/PID/stat's utime and stime.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
for i in $(seq 1 "$NODES"); do
  echo "node n$i: $(cpu_s "${NODE_PIDS[$((i - 1))]}") s CPU"
done
for i in "${!NATS_PIDS[@]}"; do
  echo "nats-server $i: $(cpu_s "${NATS_PIDS[$i]}") s CPU"
done
