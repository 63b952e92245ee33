#!/usr/bin/env bash
# permessage-deflate on vs off, same run: SUBS (10k) subscribers of one room,
# `ringcast-load fanout [--deflate]`, SIZE (1 KiB) JSON-like messages, closed loop with 1
# and 16 messages in flight, one io_uring server with its default 2 shards.
# Measured over the publish phase only (from the generator's "[publish] start" line to
# its end), from the server's /metrics and /proc/PID/stat:
#   frames/s              frames_sent_total delta / seconds
#   server CPU per frame  (utime + stime) delta / frames_sent_total delta
#   wire B per message    bytes_sent_total delta / frames_sent_total delta
#   compressions/publish  deflate_compressions_total delta / messages_published_total delta
# Usage: scripts/deflate-bench.sh   (SUBS, DUR seconds, SIZE, PORT, MPORT to override)
set -euo pipefail
cd "$(dirname "$0")/.."
SUBS=${SUBS:-10000} DUR=${DUR:-10} SIZE=${SIZE:-1024} PORT=${PORT:-9451} MPORT=${MPORT:-9452}
cargo build --release -q --workspace --features ringcast/tls
TICK=$(getconf CLK_TCK)
OUT=$(mktemp -d)
metric() {
  curl -s "http://127.0.0.1:$MPORT/metrics" |
    awk -v n="ringcast_$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f", s }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
sample() { echo "$(date +%s.%N) $(cpu_ticks "$1") $(metric frames_sent_total) $(metric bytes_sent_total) $(metric deflate_compressions_total) $(metric messages_published_total)"; }
echo "| deflate | in flight | frames/s | server CPU per frame | wire bytes per message | compressions per publish |"
echo "| --- | --- | --- | --- | --- | --- |"
for inflight in 1 16; do
  for deflate in off on; do
    target/release/ringcast serve --addr "127.0.0.1:$PORT" --metrics-addr "127.0.0.1:$MPORT" \
      --backend uring --log-level warn >"$OUT/server.log" 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null' EXIT
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
    flag=()
    [[ $deflate == on ]] && flag=(--deflate)
    target/release/ringcast-load fanout --url "ws://127.0.0.1:$PORT/ws/bench" "${flag[@]}" \
      --subscribers "$SUBS" --in-flight "$inflight" --rate 0 --duration "${DUR}s" --size "$SIZE" \
      --src-ips 127.0.0.1-127.0.0.16 --threads 1 --no-progress >"$OUT/load.txt" 2>&1 &
    gen=$!
    for _ in $(seq 1200); do
      grep -q '^\[publish\] start' "$OUT/load.txt" 2>/dev/null && break
      kill -0 "$gen" 2>/dev/null || break
      sleep 0.05
    done
    read -r t0 c0 f0 b0 z0 p0 < <(sample "$pid")
    sleep "$((DUR - 1))"
    read -r t1 c1 f1 b1 z1 p1 < <(sample "$pid")
    wait "$gen" || { echo "generator failed:"; tail -5 "$OUT/load.txt"; }
    kill -INT "$pid"; wait "$pid" || true
    trap - EXIT
    awk -v d="$deflate" -v k="$inflight" -v t="$(echo "$t1 - $t0" | bc)" -v c=$((c1 - c0)) \
      -v f=$((f1 - f0)) -v b=$((b1 - b0)) -v z=$((z1 - z0)) -v p=$((p1 - p0)) -v tick="$TICK" \
      'BEGIN { printf "| %s | %d | %.0f | %.2f µs | %.0f | %s |\n", d, k, f / t, c * 1e6 / tick / f, b / f, p ? sprintf("%.2f", z / p) : "-" }'
  done
done
rm -rf "$OUT"
