#!/usr/bin/env bash
# Server CPU per echoed message, io_uring vs epoll (`make echo-cpu`): N active clients
# (default 1000) each keep one message in flight against /echo of a `--threads 1`
# server pinned to core 0; the generator (one thread) is pinned to core 1. Runs go in
# ABBA order (uring, epoll, epoll, uring) so neither backend always runs first.
#
# During the steady part (from 0.3 s after the generator prints "[echo] start" for
# WINDOW seconds) `perf stat -e task-clock,raw_syscalls:sys_enter,
# io_uring:io_uring_submit_req -p PID` counts the server's CPU, syscalls and submitted
# SQEs. Per message = count ÷ (round trips/s × window); a round trip is one frame in
# and one frame out. Without perf the CPU comes from /proc/PID/stat over the same
# window and the syscall columns say n/a.
#
# Output: a Markdown table on stdout and bench-results/echo-cpu-<stamp>.md; raw
# generator reports in bench-results/echo-cpu-<stamp>/. Every wait is bounded; every
# process started here is stopped on exit.
#
# Environment: CLIENTS (1000), WINDOW (4 s), PORT (9470), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-1000}
WINDOW=${WINDOW:-4}
PORT=${PORT:-9470}
BIN=${CARGO_TARGET_DIR:-target}/release
SERVER=$BIN/ringcast
LOAD=$BIN/ringcast-load
STAMP=$(date +%Y-%m-%d-%H%M)
OUT=bench-results/echo-cpu-$STAMP
mkdir -p "$OUT"
for b in "$SERVER" "$LOAD"; do
  [[ -x $b ]] || { echo "missing $b: run make release" >&2; exit 1; }
done
PERF=0
if command -v perf >/dev/null &&
  perf stat -x, -e task-clock,raw_syscalls:sys_enter,io_uring:io_uring_submit_req -- true \
    >/dev/null 2>&1; then
  PERF=1
fi
TICK=$(getconf CLK_TCK)

SERVER_PID="" GEN_PID=""
cleanup() {
  [[ -n $GEN_PID ]] && kill "$GEN_PID" 2>/dev/null || true
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Enough messages for connect + settle + window + margin at ~100k round trips/s.
MESSAGES=$(((WINDOW + 3) * 150000 / CLIENTS + 50))
ROWS=()
for backend in uring epoll epoll uring; do
  name=$backend-$((${#ROWS[@]} + 1))
  taskset -c 0 "$SERVER" serve --addr "127.0.0.1:$PORT" --backend "$backend" --threads 1 \
    --metrics-addr off --log-level warn >"$OUT/$name.server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 200); do
    grep -q "listening on" "$OUT/$name.server.log" 2>/dev/null && break
    sleep 0.05
  done
  timeout -k 5 120 "$LOAD" echo --url "ws://127.0.0.1:$PORT/echo" --connections "$CLIENTS" \
    --messages "$MESSAGES" --in-flight 1 --size 64 --threads 1 --pin-cpu 1 \
    --src-ips 127.0.0.1-127.0.0.16 --timeout 100s --no-progress \
    --json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 &
  GEN_PID=$!
  for _ in $(seq 600); do
    grep -q "\[echo\] start" "$OUT/$name.txt" 2>/dev/null && break
    sleep 0.05
  done
  sleep 0.3
  t0=$(cpu_ticks "$SERVER_PID")
  if [[ $PERF == 1 ]]; then
    perf stat -x, -o "$OUT/$name.perf" \
      -e task-clock,raw_syscalls:sys_enter,io_uring:io_uring_submit_req \
      -p "$SERVER_PID" -- sleep "$WINDOW" 2>/dev/null || true
  else
    sleep "$WINDOW"
  fi
  t1=$(cpu_ticks "$SERVER_PID")
  wait "$GEN_PID" || true
  GEN_PID=""
  kill -INT "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  rate=$(jq -r '.traffic.delivered_frames_per_sec // 0' "$OUT/$name.json" 2>/dev/null || echo 0)
  lost=$(jq -r '.traffic.lost_frames // "n/a"' "$OUT/$name.json" 2>/dev/null || echo n/a)
  read -r clock sys sqe < <(awk -F, '
    $3 == "task-clock" { t = $1 } $3 == "raw_syscalls:sys_enter" { s = $1 }
    $3 == "io_uring:io_uring_submit_req" { q = $1 }
    END { print (t ? t : "n/a"), (s ? s : "n/a"), (q ? q : "n/a") }' "$OUT/$name.perf" 2>/dev/null ||
    echo "n/a n/a n/a")
  ROWS+=("$(awk -v b="$backend" -v r="$rate" -v w="$WINDOW" -v c="$clock" -v s="$sys" \
    -v q="$sqe" -v t0="$t0" -v t1="$t1" -v tick="$TICK" -v lost="$lost" 'BEGIN {
      n = r * w
      if (c == "n/a") us = (t1 - t0) / tick * 1e6 / n; else us = c * 1e3 / n
      sp = (s == "n/a") ? "n/a" : sprintf("%.3f", s / n)
      qp = (q == "n/a") ? "n/a" : sprintf("%.3f", q / n)
      printf "| %s | %.0f | %.2f | %s | %s | %s |", b, r, us, sp, qp, lost
    }')")
done

{
  echo "## Server CPU per echoed message, $CLIENTS clients × 1 in flight × 64 B ($STAMP)"
  echo
  echo "\`scripts/echo-cpu.sh\`: server \`--threads 1\` pinned to core 0, generator pinned to"
  echo "core 1, ${WINDOW} s perf window per run, runs in ABBA order. A message is one frame in"
  echo "and one out."
  echo
  echo "| backend | round trips/s | server CPU µs per message | syscalls per message | SQEs per message | lost |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${ROWS[@]}"
} | tee "$OUT.md"
