#!/usr/bin/env bash
# Server RSS per connection before, during and after a fan-out run, one backend:
#
#   scripts/fanout-rss.sh BIN BACKEND [SUBS] [IN_FLIGHT] [SIZE] [DUR]
#
# Samples VmRSS of the server (--threads 1, core 0; generator on core 1) before any
# connection, when the subscribers have just connected (during a 3 s --settle), near
# the end of the traffic, at the end of a HOLD-second pause after the traffic with
# every subscriber still connected (the generator's `--hold`, sampled by the generator
# through `--server-pid`; default 5 s), and 3 s after every subscriber left. Prints KiB
# per connection: idle, under traffic above idle, kept after the traffic (connections
# open) above idle, and what stays once all closed.
set -euo pipefail
BIN=$1 BE=$2 SUBS=${3:-10000} K=${4:-16} SIZE=${5:-64} DUR=${6:-6}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOAD=${RINGCAST_LOAD:-$ROOT/target/release/ringcast-load}
OUT=$(mktemp -d /tmp/fanout-rss.XXXX)
port=$((9700 + RANDOM % 200))
rss() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
taskset -c 0 "$BIN" serve --addr 127.0.0.1:$port --backend "$BE" --threads 1 \
  --metrics-addr off --log-level warn >"${SERVER_LOG:-$OUT/s.log}" 2>&1 &
sp=$!
cleanup() {
  kill "$sp" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$sp" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$sp" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
timeout -k 5 $((DUR + 90)) "$LOAD" fanout --url ws://127.0.0.1:$port/ws/bench --subscribers "$SUBS" \
  --in-flight "$K" --rate 0 --duration "${DUR}s" --size "$SIZE" --settle 3s \
  --src-ips 127.0.0.1-127.0.0.16 --threads 1 --pin-cpu 1 --no-progress \
  --hold "${HOLD:-5}s" --server-pid "$sp" --json "$OUT/g.json" >"$OUT/g.txt" 2>&1 &
gp=$!
before=$(rss $sp)
# Connected: the server holds an fd per subscriber (and the publisher).
for _ in $(seq 1200); do (($(ls /proc/$sp/fd | wc -l) > SUBS)) && break; sleep 0.05; done
sleep 1
connected=$(rss $sp)
sleep $((2 + DUR - 2))
traffic=$(rss $sp)
wait $gp || true
held=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["server"]["after_hold"]["rss_kib"])' "$OUT/g.json" 2>/dev/null || echo 0)
sleep 3
closed=$(rss $sp)
# SMAPS=1: the server's largest resident mappings once every subscriber left.
if [[ -n ${SMAPS:-} ]]; then
  awk '/^[0-9a-f]+-/{m=$1" "$6} /^Rss:/{print $2, m}' "/proc/$sp/smaps" | sort -rn | head -6
fi
awk -v n="$SUBS" -v b="$before" -v c="$connected" -v t="$traffic" -v h="$held" -v a="$closed" -v be="$BE" 'BEGIN{
  printf "%s subs=%d rss_kib before=%d connected=%d traffic=%d held=%d closed=%d | KiB/conn: idle %.2f, traffic over idle %.2f, kept after traffic %.2f, left after close %.2f\n",
    be, n, b, c, t, h, a, (c - b) / n, (t - c) / n, (h - c) / n, (a - b) / n }'
grep -E 'lost|delivered frames' "$OUT/g.txt" | head -2 | sed 's/^/  /'
