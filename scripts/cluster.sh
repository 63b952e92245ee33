#!/usr/bin/env bash
# A local cluster on loopback: one redis-server (persistence off) and three ringcast
# nodes sharing rooms through it. Prints every URL; Ctrl-C stops everything this
# script started, by PID.
# CLUSTER=1: a Redis Cluster instead (three cluster-enabled redis-servers on
# REDIS_PORT..+2, masters only, joined with `redis-cli --cluster create`; nodes use
# --broker redis+cluster://…, sharded pub/sub).
# Usage: [CLUSTER=1] scripts/cluster.sh [extra `serve` flags, e.g. --history 1000]
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
  [[ -n ${conf_dir:-} ]] && rm -rf "$conf_dir"
  echo "cluster stopped"
  exit 0
}
trap stop INT TERM EXIT

# Start redis-server on port $1 (extra flags after it) and wait for PING.
start_redis() {
  local port=$1
  shift
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --loglevel warning "$@" >/dev/null &
  pids+=($!)
  for _ in $(seq 100); do
    redis-cli -p "$port" PING 2>/dev/null | grep -q PONG && return
    sleep 0.05
  done
  echo "redis-server on port $port did not answer" >&2
  exit 1
}

if [[ ${CLUSTER:-0} == 1 ]]; then
  conf_dir=$(mktemp -d)
  hosts=()
  for i in 0 1 2; do
    port=$((REDIS_PORT + i))
    start_redis "$port" --cluster-enabled yes --cluster-config-file "$conf_dir/nodes-$port.conf"
    hosts+=("127.0.0.1:$port")
  done
  redis-cli --cluster create "${hosts[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
  for _ in $(seq 200); do
    ok=1
    for h in "${hosts[@]}"; do
      redis-cli -p "${h#*:}" CLUSTER INFO | grep -q cluster_state:ok || ok=0
    done
    [[ $ok == 1 ]] && break
    sleep 0.05
  done
  [[ $ok == 1 ]] || { echo "redis cluster did not reach cluster_state:ok" >&2; exit 1; }
  BROKER="redis+cluster://$(IFS=,; echo "${hosts[*]}")"
else
  start_redis "$REDIS_PORT"
  BROKER="redis://127.0.0.1:$REDIS_PORT"
fi
echo "redis    $BROKER"

for i in 0 1 2; do
  port=$((BASE_PORT + i)) mport=$((METRICS_BASE + i))
  "$BIN" serve --addr "127.0.0.1:$port" --metrics-addr "127.0.0.1:$mport" \
    --broker "$BROKER" --node-id "node$i" --log-level warn "$@" \
    >/dev/null &
  pids+=($!)
  echo "node$i    ws://127.0.0.1:$port/ws/{room}   metrics http://127.0.0.1:$mport/metrics   (pid ${pids[-1]})"
done
echo "Ctrl-C stops all"
wait -n "${pids[@]}" || true
echo "a process of the cluster exited; stopping the rest" >&2
exit 1
