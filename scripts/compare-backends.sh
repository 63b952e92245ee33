#!/usr/bin/env bash
# io_uring vs epoll fan-out comparison (`make compare`). Writes
# bench-results/compare-<YYYY-MM-DD-HHMM>.md (side-by-side tables with uring/epoll
# ratios), one SVG bar chart per matrix and message size next to it, and the raw
# generator reports (JSON, latency SVG, stdout), perf output and server logs per run
# under bench-results/compare-<stamp>/.
#
# Matrices (cells: subscribers {1k, 5k, 15k} × size {64 B, 1 KiB} × in flight {1, 16}):
#   t1-pinned    server `--threads 1`, pinned to core 0 (taskset -c 0); generator one
#                thread pinned to core 1 (--pin-cpu 1).
#   t2-unpinned  server `--threads 2 --no-pin`; generator one thread, not pinned.
# Both backends get the same flags (`--metrics-addr off --log-level warn`), the same
# closed-loop load (`ringcast-load fanout --rate 0 --in-flight K --duration D`, one
# publisher, 16 source addresses) and the same duration per cell.
#
# TLS section (t1-tls, run first): one cell, 5k subscribers × 64 B × 16 in flight (1k
# with QUICK=1), pinned as in t1-pinned, on each backend over ws:// and over wss://
# (server `--tls-cert/--tls-key`, generator `wss://` + `--tls-ca`, with a fresh
# self-signed pair from `ringcast-load cert` in the run's directory). Order uring ws,
# uring wss, epoll wss, epoll ws: each backend's ws and wss runs are adjacent. The
# encryption cost per delivered frame = server CPU µs per frame over wss − over ws (perf
# task-clock ÷ delivered frames; handshakes are outside the window, see below).
#
# Method:
# * Interleaved: each cell runs on both backends back to back (uring, epoll; the next
#   cell epoll, uring, ...: ABBA order, so neither backend always runs first) rather than
#   one whole matrix per backend, because absolute figures drift by ±35 % over minutes
#   on this machine; the ratio of two adjacent runs is what the table trusts.
# * A fresh server per backend per cell (not one reused per backend): every run starts
#   from the same state (no slab, queue or buffer-ring memory grown by an earlier cell,
#   no connections of the previous cell still closing), the perf counters attach to a
#   process that serves only that cell, and a crashed server costs one cell. Startup is
#   ~0.1 s; each run uses its own port so a lingering socket cannot interfere.
# * Server syscalls and CPU: `perf stat -e raw_syscalls:sys_enter,
#   io_uring:io_uring_submit_req,task-clock -p PID -- sleep W` during the steady part:
#   it starts 0.3 s after the generator starts publishing (its "[publish] start" progress
#   line: every connection has finished its upgrade, and with wss:// its TLS handshake,
#   by then), and W = D − 1 s ends before the publishing does. Per delivered frame = count / (delivered frames/s ×
#   W). epoll sends are syscalls (every syscall counted: sends, epoll_wait, reads);
#   io_uring sends are SQEs (every SQE submitted: sendmsg, recv re-arms, eventfd reads),
#   with its syscall count (io_uring_enter and everything else) next to it. No perf:
#   "n/a".
# * Time budget: the whole default run stays under 15 minutes. The per-cell duration D
#   is recomputed before each cell from the budget left (BUDGET_SECS, default 780 s for
#   the 52 runs: 48 in the matrices, 4 in the TLS section) minus the measured per-run
#   overhead (connect, drain, server start and
#   stop), clamped to [MIN_DURATION, MAX_DURATION]; a cell (both backends) that would
#   end past HARD_LIMIT_SECS (default 870 s) is not started and shows as skipped. Every
#   wait is a bounded loop; the generator runs under `timeout` (D + 30 s, less near the
#   end of the budget); every process started here (server, generator, perf) is
#   stopped on exit (trap), and SIGINT/SIGTERM still write the report of the runs done.
#
# Usage: scripts/compare-backends.sh            (full run, < 15 min)
#        QUICK=1 scripts/compare-backends.sh    (1k subscribers only, ~2 s per run, ~1.5 min)
# The server must be built with TLS (`make release` does); without it the four TLS runs
# show "server did not start" and everything else runs as usual.
# Environment: QUICK, BUDGET_SECS, HARD_LIMIT_SECS, MIN_DURATION, MAX_DURATION,
# PORT_BASE (default 9430; 20 ports from there), OUT_DIR (default bench-results),
# CARGO_TARGET_DIR (binaries from $CARGO_TARGET_DIR/release, default target/release;
# `make compare` builds them first).
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=scripts/compare

QUICK=${QUICK:-0}
BUDGET_SECS=${BUDGET_SECS:-780}
HARD_LIMIT_SECS=${HARD_LIMIT_SECS:-870}
MIN_DURATION=${MIN_DURATION:-3}
MAX_DURATION=${MAX_DURATION:-20}
OVERHEAD_GUESS=${OVERHEAD_GUESS:-4}
PORT_BASE=${PORT_BASE:-9430}
OUT_DIR=${OUT_DIR:-bench-results}
SRC_IPS=127.0.0.1-127.0.0.16
BIN=${CARGO_TARGET_DIR:-target}/release
SERVER=$BIN/ringcast
LOAD=$BIN/ringcast-load

SUBSCRIBERS=(1000 5000 15000)
SIZES=(64 1024)
IN_FLIGHT=(1 16)
MATRICES=(t1-pinned t2-unpinned)
TLS_SUBS=5000
if [[ $QUICK == 1 ]]; then
  SUBSCRIBERS=(1000)
  TLS_SUBS=1000
  MIN_DURATION=2
  MAX_DURATION=2
fi

for tool in "$SERVER" "$LOAD"; do
  [[ -x $tool ]] || { echo "missing $tool: run 'make release' first" >&2; exit 2; }
done

STAMP=$(date +%Y-%m-%d-%H%M)
RAW=$OUT_DIR/compare-$STAMP
REPORT=$OUT_DIR/compare-$STAMP.md
TSV=$RAW/runs.tsv
mkdir -p "$RAW"
printf 'matrix\tsubs\tsize\tinflight\tbackend\tframes_per_sec\tp50_us\tp99_us\tlost\tserver_cpu_pct\tsyscalls_per_frame\tsqes_per_frame\tgenerator_cpu_pct\tstatus\tduration_s\ttransport\n' >"$TSV"
COMMAND_LINE="$0${*:+ $*}"
if [[ $QUICK == 1 ]]; then COMMAND_LINE="QUICK=1 $COMMAND_LINE"; fi

SERVER_PID=""
GEN_PID=""
PERF_PID=""
cleanup() {
  local pid
  for pid in $PERF_PID $GEN_PID; do kill "$pid" 2>/dev/null || true; done
  if [[ -n $SERVER_PID ]]; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  PERF_PID="" GEN_PID="" SERVER_PID=""
}
trap cleanup EXIT
INTERRUPTED=1
on_signal() {
  echo "interrupted: writing the report of the runs done so far" >&2
  trap - INT TERM
  cleanup
  if [[ $INTERRUPTED == 1 && -n ${START:-} ]]; then write_report; fi
  exit 130
}
trap on_signal INT TERM

# perf usable? (tracepoints need root or perf_event_paranoid <= -1)
PERF_OK=0
if command -v perf >/dev/null &&
  perf stat -x, -e raw_syscalls:sys_enter,io_uring:io_uring_submit_req,task-clock -- true \
    >/dev/null 2>&1; then
  PERF_OK=1
fi

# stop_server: SIGINT, SIGKILL after 10 s (scripts/lib/stop-server.sh).
# shellcheck source=lib/stop-server.sh
source scripts/lib/stop-server.sh

# perf -x, output → "syscalls sqes task_clock_ms" ("n/a" each when not counted).
perf_fields() {
  awk -F, '
    $3 == "raw_syscalls:sys_enter" { s = $1 }
    $3 == "io_uring:io_uring_submit_req" { q = $1 }
    $3 == "task-clock" { t = $1 }
    END {
      if (s !~ /^[0-9.]+$/) s = "n/a"; if (q !~ /^[0-9.]+$/) q = "n/a"; if (t !~ /^[0-9.]+$/) t = "n/a"
      print s, q, t
    }' "$1" 2>/dev/null || echo "n/a n/a n/a"
}

# TSV line of a run that did not happen: skipped_row MATRIX SUBS SIZE INFLIGHT BACKEND
# TRANSPORT STATUS.
skipped_row() {
  printf '%s\t%s\t%s\t%s\t%s\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a\t%s\t0\t%s\n' \
    "$1" "$2" "$3" "$4" "$5" "$7" "$6" >>"$TSV"
}

RUN_INDEX=0
# run_one MATRIX SUBS SIZE INFLIGHT BACKEND DURATION TRANSPORT: one server, one generator
# run, one TSV line. TRANSPORT is ws or wss (wss: the server serves TLS with $TLS_DIR's
# pair, the generator trusts its certificate).
run_one() {
  local matrix=$1 subs=$2 size=$3 inflight=$4 backend=$5 dur=$6 transport=$7
  local port=$((PORT_BASE + RUN_INDEX % 20))
  RUN_INDEX=$((RUN_INDEX + 1))
  local name=$matrix-$backend-s$subs-b$size-k$inflight
  local server_cmd=("$SERVER" serve --addr "127.0.0.1:$port" --backend "$backend"
    --metrics-addr off --log-level warn)
  local url=ws://127.0.0.1:$port/ws/bench tls_ca=()
  if [[ $transport == wss ]]; then
    name=$matrix-$backend-wss-s$subs-b$size-k$inflight
    server_cmd+=(--tls-cert "$TLS_DIR/cert.pem" --tls-key "$TLS_DIR/key.pem")
    url=wss://127.0.0.1:$port/ws/bench
    tls_ca=(--tls-ca "$TLS_DIR/cert.pem")
  elif [[ $matrix == t1-tls ]]; then
    name=$matrix-$backend-ws-s$subs-b$size-k$inflight
  fi
  local gen_pin=()
  if [[ $matrix == t1-* ]]; then
    server_cmd=(taskset -c 0 "${server_cmd[@]}" --threads 1)
    gen_pin=(--pin-cpu 1)
  else
    server_cmd+=(--threads 2 --no-pin)
  fi
  local status=ok
  "${server_cmd[@]}" >"$RAW/$name.server.log" 2>&1 &
  SERVER_PID=$!
  local i ready=0
  for ((i = 0; i < 200; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then ready=1; break; fi
    sleep 0.05
  done
  if [[ $ready == 0 ]]; then
    local why
    why=$(grep -m1 '^error' "$RAW/$name.server.log" || tail -n1 "$RAW/$name.server.log")
    status="server did not start: $(tr '\t|' '  ' <<<"$why" | cut -c1-80)"
    stop_server
    skipped_row "$matrix" "$subs" "$size" "$inflight" "$backend" "$transport" "$status"
    echo "  $name: $status" >&2
    return 0
  fi
  # Generator limit: D + 30 s, less near the end of the budget (but at least D + 5 s).
  local limit=$((dur + 30)) room=$((HARD_LIMIT_SECS + 25 - (SECONDS - START)))
  if ((room < limit)); then limit=$room; fi
  if ((limit < dur + 5)); then limit=$((dur + 5)); fi
  timeout -k 5 "$limit" "$LOAD" fanout --url "$url" "${tls_ca[@]}" \
    --subscribers "$subs" --in-flight "$inflight" --rate 0 --duration "${dur}s" \
    --timeout "$((limit - 3))s" \
    --size "$size" --src-ips "$SRC_IPS" --threads 1 "${gen_pin[@]}" \
    --server-pid "$SERVER_PID" --json "$RAW/$name.json" --plot "$RAW/$name.svg" \
    --no-progress >"$RAW/$name.txt" 2>&1 &
  GEN_PID=$!
  # Steady part: the publishing has started (every connection upgraded), plus 0.3 s.
  local steady=0
  for ((i = 0; i < 1200; i++)); do
    if grep -q '^\[publish\] start' "$RAW/$name.txt" 2>/dev/null; then steady=1; break; fi
    kill -0 "$GEN_PID" 2>/dev/null || break
    sleep 0.05
  done
  local window=$((dur > 1 ? dur - 1 : 1))
  if [[ $steady == 1 && $PERF_OK == 1 ]]; then
    sleep 0.3
    perf stat -x, -o "$RAW/$name.perf" \
      -e raw_syscalls:sys_enter,io_uring:io_uring_submit_req,task-clock \
      -p "$SERVER_PID" -- sleep "$window" >/dev/null 2>&1 &
    PERF_PID=$!
    wait "$PERF_PID" || true
    PERF_PID=""
  fi
  local rc=0
  wait "$GEN_PID" || rc=$?
  GEN_PID=""
  stop_server
  case $rc in
    0) ;;
    1) status="generator reported problems (see $name.txt)" ;;
    124 | 137) status="generator timed out" ;;
    *) status="generator exit $rc" ;;
  esac
  local fps p50 p99 lost gen
  if [[ -s $RAW/$name.json ]]; then
    read -r fps p50 p99 lost gen < <(awk -v want="traffic.delivered_frames_per_sec \
latency.p50_us latency.p99_us traffic.lost_frames generator.cpu_pct_of_one_core" \
      -f "$HERE/json-get.awk" "$RAW/$name.json" | tr '\t' ' ')
  else
    fps=n/a p50=n/a p99=n/a lost=n/a gen=n/a
    if [[ $status == ok ]]; then status="no report"; fi
  fi
  local sys=n/a sqe=n/a clk=n/a sys_pf=n/a sqe_pf=n/a cpu=n/a
  if [[ -s $RAW/$name.perf ]]; then
    read -r sys sqe clk < <(perf_fields "$RAW/$name.perf")
    read -r sys_pf sqe_pf cpu < <(awk -v s="$sys" -v q="$sqe" -v t="$clk" -v f="$fps" -v w="$window" '
      function per(x) { return (x ~ /^[0-9.]+$/ && f ~ /^[0-9.]+$/ && f > 0) ? x / (f * w) : "n/a" }
      BEGIN { print per(s), per(q), (t ~ /^[0-9.]+$/ ? t / (w * 10) : "n/a") }')
    # Only meaningful for the backend that submits SQEs.
    if [[ $backend == epoll ]]; then sqe_pf=n/a; fi
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$matrix" \
    "$subs" "$size" "$inflight" "$backend" "$fps" "$p50" "$p99" "$lost" "$cpu" "$sys_pf" "$sqe_pf" \
    "$gen" "$status" "$dur" "$transport" >>"$TSV"
  printf '  %-44s %10s frames/s  p50 %s µs  p99 %s µs  lost %s  cpu %s%%  %s\n' "$name" \
    "${fps%.*}" "$p50" "$p99" "$lost" "${cpu%.*}" "$status"
}

# "D s per run, N runs" of one matrix, from runs.tsv.
durations() {
  awk -F'\t' -v m="$1" '$1 == m && $15 > 0 { if (!n++ || $15 < lo) lo = $15; if ($15 > hi) hi = $15 }
    END { print (n ? (lo == hi ? lo : lo "–" hi) " s per run, " n " runs" : "no runs") }' "$TSV"
}

# The markdown report, the per-size SVGs (from whatever runs.tsv holds so far).
write_report() {
  local TOTAL_SECS=$((SECONDS - START)) matrix size svg cpu_model commit
  cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  git diff --quiet HEAD -- 2>/dev/null || commit="$commit (with uncommitted changes)"
  {
    echo "# io_uring vs epoll fan-out — $STAMP"
    echo
    echo "* command: \`$COMMAND_LINE\` (total ${TOTAL_SECS} s, $TOTAL_RUNS runs)"
    echo "* commit: $commit; binaries: \`$SERVER\`, \`$LOAD\`"
    echo "* machine: Linux $(uname -r), $(nproc) CPUs (${cpu_model:-unknown model}), RLIMIT_NOFILE hard $(ulimit -Hn)"
    echo "* perf: $([[ $PERF_OK == 1 ]] && echo "$(perf --version 2>/dev/null)" || echo "not usable (columns from perf are n/a)")"
    echo "* load: \`ringcast-load fanout --url ws://127.0.0.1:PORT/ws/bench --subscribers N --in-flight K --rate 0 --duration D --size S --src-ips $SRC_IPS --threads 1 [--pin-cpu 1] --server-pid PID --json … --plot …\`; one publisher, closed loop"
    echo "* server: \`ringcast serve --addr 127.0.0.1:PORT --backend uring|epoll --metrics-addr off --log-level warn\` plus the matrix's flags; a fresh server per backend per cell"
    echo "* order: each cell runs on both backends back to back (ABBA), so each ratio compares two adjacent runs; absolute figures drift by up to ±35 % over minutes here"
    echo
    echo "Columns: frames/s = frames delivered to subscribers per second (generator); p50/p99 ="
    echo "publish → receive latency; server CPU % of one core and the per-frame counts come from"
    echo "\`perf stat -p PID\` over the steady part (window = D − 1 s), divided by frames/s × window."
    echo "epoll: all server syscalls per delivered frame; io_uring: SQEs submitted per delivered"
    echo "frame (all SQE kinds), with its syscalls per frame in brackets. lost = expected − received."
    echo "Generator CPU near 100 % means the generator, not the server, may be the limit."
    for matrix in "${MATRICES[@]}"; do
      echo
      case $matrix in
        t1-pinned) echo "## --threads 1, server pinned to core 0 (\`taskset -c 0\`), generator pinned to core 1" ;;
        t2-unpinned) echo "## --threads 2 --no-pin, generator not pinned" ;;
      esac
      echo
      echo "Duration D: $(durations "$matrix"); raw reports in \`compare-$STAMP/$matrix-*\`."
      echo
      awk -v matrix="$matrix" -f "$HERE/table.awk" "$TSV"
      for size in "${SIZES[@]}"; do
        svg=compare-$STAMP-$matrix-${size}B.svg
        awk -v matrix="$matrix" -v size="$size" \
          -v title="$matrix, ${size} B messages: delivered frames/s (io_uring vs epoll)" \
          -f "$HERE/bars-svg.awk" "$TSV" >"$OUT_DIR/$svg"
        echo
        echo "![$matrix ${size} B]($svg)"
      done
    done
    echo
    echo "## TLS: ws:// vs wss://, $TLS_SUBS subscribers × 64 B × 16 in flight, --threads 1 pinned as in t1"
    echo
    echo "Server \`--tls-cert/--tls-key\` with a fresh self-signed ECDSA P-256 pair from"
    echo "\`ringcast-load cert\`; generator \`--url wss://… --tls-ca cert.pem\` (rustls, ring). Order"
    echo "uring ws, uring wss, epoll wss, epoll ws: each backend's two runs are adjacent. µs per"
    echo "frame = server CPU (perf task-clock over the window) ÷ delivered frames; the encryption"
    echo "cost is its wss − ws difference: what the server's TLS record path adds per delivered"
    echo "frame (TLS handshakes are over before the window starts). Frames/s over wss may be"
    echo "limited by the single generator thread decrypting (see generator CPU); the per-frame"
    echo "cost does not depend on that. Duration D: $(durations t1-tls); raw reports in"
    echo "\`compare-$STAMP/t1-tls-*\`."
    echo
    awk -f "$HERE/tls-table.awk" "$TSV"
    echo
    echo "Every run (with its duration, status and transport): \`compare-$STAMP/runs.tsv\`."
  } >"$REPORT"
  echo "wrote $REPORT (${TOTAL_SECS} s)"
}

# cell_plan RUNS: the duration D of the next cell's runs from the budget left (DUR) and
# whether a cell of RUNS runs still ends before HARD_LIMIT_SECS (FITS: 1 or 0). A cell
# runs whole or not at all (a lone run has no ratio).
cell_plan() {
  local elapsed=$((SECONDS - START)) left_runs=$((TOTAL_RUNS - RUNS_DONE)) overhead=$OVERHEAD_GUESS
  if ((RUNS_DONE > 0)); then overhead=$(((OVERHEAD_SUM + RUNS_DONE - 1) / RUNS_DONE)); fi
  DUR=$(((BUDGET_SECS - elapsed) / left_runs - overhead))
  if ((DUR > MAX_DURATION)); then DUR=$MAX_DURATION; fi
  if ((DUR < MIN_DURATION)); then DUR=$MIN_DURATION; fi
  FITS=1
  if ((elapsed + $1 * (DUR + overhead) > HARD_LIMIT_SECS)); then FITS=0; fi
}

# timed_run ARGS...: run_one ARGS and account for its time beyond D in the overhead.
timed_run() {
  local t0=$SECONDS spent
  run_one "$@"
  spent=$((SECONDS - t0 - $6))
  OVERHEAD_SUM=$((OVERHEAD_SUM + (spent > 0 ? spent : 0)))
  RUNS_DONE=$((RUNS_DONE + 1))
}

CELLS=$((${#SUBSCRIBERS[@]} * ${#SIZES[@]} * ${#IN_FLIGHT[@]}))
TLS_RUNS=4
TOTAL_RUNS=$((${#MATRICES[@]} * CELLS * 2 + TLS_RUNS))
START=$SECONDS
RUNS_DONE=0
OVERHEAD_SUM=0
CELL_NO=0
echo "compare: $TOTAL_RUNS runs, budget ${BUDGET_SECS}s, output $REPORT"

echo "== TLS: ws vs wss, $TLS_SUBS subscribers × 64 B × 16 in flight, t1 pinned"
TLS_DIR=$RAW/tls
tls_status=""
if ! "$LOAD" cert --out-dir "$TLS_DIR" >"$RAW/tls-cert.txt" 2>&1; then
  tls_status="no certificate: $(tail -n1 "$RAW/tls-cert.txt" | tr '\t|' '  ' | cut -c1-80)"
  echo "  $tls_status" >&2
fi
cell_plan $TLS_RUNS
if ((FITS == 0)); then tls_status="skipped (time budget)"; fi
for run in "uring ws" "uring wss" "epoll wss" "epoll ws"; do
  read -r backend transport <<<"$run"
  if [[ -n $tls_status ]]; then
    skipped_row t1-tls "$TLS_SUBS" 64 16 "$backend" "$transport" "$tls_status"
    RUNS_DONE=$((RUNS_DONE + 1))
    continue
  fi
  timed_run t1-tls "$TLS_SUBS" 64 16 "$backend" "$DUR" "$transport"
done

for matrix in "${MATRICES[@]}"; do
  echo "== matrix $matrix"
  for subs in "${SUBSCRIBERS[@]}"; do
    for size in "${SIZES[@]}"; do
      for inflight in "${IN_FLIGHT[@]}"; do
        CELL_NO=$((CELL_NO + 1))
        cell_plan 2
        order=(uring epoll)
        if ((CELL_NO % 2 == 0)); then order=(epoll uring); fi
        for backend in "${order[@]}"; do
          if ((FITS == 0)); then
            skipped_row "$matrix" "$subs" "$size" "$inflight" "$backend" ws "skipped (time budget)"
            RUNS_DONE=$((RUNS_DONE + 1))
            continue
          fi
          timed_run "$matrix" "$subs" "$size" "$inflight" "$backend" "$DUR" ws
        done
      done
    done
  done
done
INTERRUPTED=0
write_report
