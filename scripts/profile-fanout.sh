#!/usr/bin/env bash
# Profile one server at a fan-out load: where its CPU goes, and syscalls/SQEs/CQEs per
# delivered frame. Server --threads 1 pinned to core 0, generator 1 thread pinned to core 1.
#
#   scripts/profile-fanout.sh BACKEND [SUBS] [IN_FLIGHT] [SIZE] [DUR] [OUT_DIR]
#
# Writes OUT_DIR/<backend>.perf.data (perf record -g), <backend>.report.txt (top
# symbols, children excluded), <backend>.counts.txt (task-clock and tracepoint counts
# over the window) and prints per-frame figures. RINGCAST_BIN / RINGCAST_LOAD override
# the binaries (default: this tree's target/release).
set -euo pipefail
BE=$1 SUBS=${2:-10000} K=${3:-16} SIZE=${4:-64} DUR=${5:-6}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${6:-$ROOT/bench-results/profile-$(date -u +%Y%m%d)}
BIN=${RINGCAST_BIN:-$ROOT/target/release/ringcast}
LOAD=${RINGCAST_LOAD:-$ROOT/target/release/ringcast-load}
J=$ROOT/scripts/compare/json-get.awk
mkdir -p "$OUT"
port=$((9500 + RANDOM % 200))
taskset -c 0 "$BIN" serve --addr 127.0.0.1:$port --backend "$BE" --threads 1 \
  --metrics-addr off --log-level warn >"$OUT/$BE.server.log" 2>&1 &
sp=$!
trap 'kill $sp 2>/dev/null || true' EXIT
for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
timeout -k 5 $((DUR + 60)) "$LOAD" fanout --url ws://127.0.0.1:$port/ws/bench --subscribers "$SUBS" \
  --in-flight "$K" --rate 0 --duration "$((DUR + 2))s" --size "$SIZE" --src-ips 127.0.0.1-127.0.0.16 \
  --threads 1 --pin-cpu 1 --json "$OUT/$BE.load.json" --no-progress >"$OUT/$BE.load.txt" 2>&1 &
gp=$!
for _ in $(seq 1200); do grep -q '^\[publish\] start' "$OUT/$BE.load.txt" 2>/dev/null && break; sleep 0.05; done
sleep 0.5
W=$(( (DUR - 1) / 2 ))
perf stat -x, -o "$OUT/$BE.counts.txt" -p $sp \
  -e task-clock,raw_syscalls:sys_enter,io_uring:io_uring_submit_req,io_uring:io_uring_complete,io_uring:io_uring_task_work_run,io_uring:io_uring_poll_arm,io_uring:io_uring_queue_async_work,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_sendmsg,syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read \
  -- sleep "$W" >/dev/null 2>&1
perf record -g -o "$OUT/$BE.perf.data" -p $sp -- sleep "$W" >/dev/null 2>&1
wait $gp
fps=$(awk -v want="traffic.delivered_frames_per_sec" -f "$J" "$OUT/$BE.load.json")
lost=$(awk -v want="traffic.lost_frames" -f "$J" "$OUT/$BE.load.json")
perf report -i "$OUT/$BE.perf.data" --no-children --percent-limit 0.7 --stdio \
  --sort dso,symbol -g none 2>/dev/null | grep -v '^#' | grep -v '^$' >"$OUT/$BE.report.txt" || true
frames=$(awk -v f="$fps" -v w="$W" 'BEGIN{print f*w}')
echo "$BE subs=$SUBS k=$K size=$SIZE fps=$fps lost=$lost window=${W}s"
awk -F, -v fr="$frames" '$1 ~ /^[0-9.]+$/ && $1 > 0 {
  if ($3 == "task-clock") printf "  %-40s %10.3f us/frame\n", $3, $1 * 1000 / fr;
  else printf "  %-40s %10.4f per frame (%d)\n", $3, $1 / fr, $1 }' "$OUT/$BE.counts.txt"
