#!/usr/bin/env bash
# A local cluster on loopback: one redis-server (persistence off) and three ringcast
# nodes sharing rooms through it. Prints every URL; Ctrl-C stops everything this
# script started, by PID.
# Usage: scripts/cluster.sh [extra `serve` flags, e.g. --history 1000]
# Ports: REDIS_PORT (6390), nodes BASE_PORT..+2 (9001..9003), metrics METRICS_BASE..+2
# (9101..9103). Binary: target/release/ringcast (built by `make cluster`).
set -euo pipefail
cd "$(dirname "$0")/.."
REDIS_PORT=${REDIS_PORT:-6390}
BASE_PORT=${BASE_PORT:-9001}
METRICS_BASE=${METRICS_BASE:-9101}
BIN=${BIN:-target/release/ringcast}
command -v redis-server >/dev/null || { echo "redis-server not found (apt-get install redis-server)" >&2; exit 1; }
[[ -x $BIN ]] || { echo "$BIN not built (make cluster builds it)" >&2; exit 1; }

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "cluster stopped"
}
trap stop INT TERM EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --loglevel warning >/dev/null &
pids+=($!)
for _ in $(seq 100); do
  redis-cli -p "$REDIS_PORT" PING 2>/dev/null | grep -q PONG && break
  sleep 0.05
done
echo "redis    redis://127.0.0.1:$REDIS_PORT"

for i in 0 1 2; do
  port=$((BASE_PORT + i)) mport=$((METRICS_BASE + i))
  "$BIN" serve --addr "127.0.0.1:$port" --metrics-addr "127.0.0.1:$mport" \
    --broker "redis://127.0.0.1:$REDIS_PORT" --node-id "node$i" --log-level warn "$@" \
    >/dev/null &
  pids+=($!)
  echo "node$i    ws://127.0.0.1:$port/ws/{room}   metrics http://127.0.0.1:$mport/metrics   (pid ${pids[-1]})"
done
echo "Ctrl-C stops all"
wait -n "${pids[@]}" || true
echo "a process of the cluster exited" >&2
