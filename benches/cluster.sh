#!/usr/bin/env bash
# Fan-out across cluster nodes (issue #24): one nats-server and NODES stompede nodes (release
# build) on free loopback ports; the load tool's publisher on node 1, its receivers spread over
# the other nodes (or node 1 itself when NODES is 1, the single-node figure to compare with).
#
#   benches/cluster.sh [NODES] [load flags...]     # e.g. benches/cluster.sh 3 --messages 50000
#
# Needs nats-server (apt install nats-server). Prints the load tool's result line(s).
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

NATS_PORT="$(free_port)"
nats-server -a 127.0.0.1 -p "$NATS_PORT" >"$WORK/nats.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break; sleep 0.05; done

STOMP=()
NODE_PIDS=()
for i in $(seq 1 "$NODES"); do
  "$BIN" serve --stomp 127.0.0.1:0 --http off --log warn --heartbeat 0,0 \
    --data-dir "$WORK/n$i" --cluster "nats://127.0.0.1:$NATS_PORT" --node-name "n$i" \
    >"$WORK/n$i.out" 2>"$WORK/n$i.err" &
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
cargo bench --bench load -- fanout --tcp "${STOMP[0]}" "${RECEIVERS[@]}" \
  --broker-pid "${NODE_PIDS[0]}" --label "cluster-$NODES-nodes" "$@"

# The load tool measures node 1 only: every process's CPU over its whole life (start-up
# included), from /proc/PID/stat's utime and stime.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
for i in $(seq 1 "$NODES"); do
  echo "node n$i: $(cpu_s "${NODE_PIDS[$((i - 1))]}") s CPU"
done
echo "nats-server: $(cpu_s "${PIDS[0]}") s CPU"
