#!/usr/bin/env bash
# ringcast vs peer servers, fan-out (`make compare-peers`, issue 15 item 4). Writes
# bench-results/compare-peers-<YYYY-MM-DD-HHMM>.md (one table per cell: frames/s median,
# min–max, ratio to the fastest peer, server CPU per delivered frame), an SVG bar chart
# next to it, and every run's generator report, stdout and server log under
# bench-results/compare-peers-<stamp>/.
#
# Servers (each one thread of work, pinned to core 0 with `taskset -c 0`):
#   uring, epoll        ringcast serve --backend B --threads 1, subscribers on /ws/bench
#   bun                 peers/bun/server.js (Bun.serve, server.publish), on /
#   node-ws             peers/node-ws/server.js (Node ws, wss.clients.forEach send), on /
#   tokio-tungstenite   peers/tokio-tungstenite (current-thread runtime, broadcast channel), on /
#   uring-sse, epoll-sse  ringcast as uring / epoll, its subscribers Server-Sent Events
#                       streams (`ringcast-load fanout --transport sse`: GET /sse/bench);
#                       not in the default list (issue 17's SSE vs WebSocket comparison:
#                       PEERS="uring epoll uring-sse epoll-sse" SUBSCRIBERS=10000 SIZES=64)
# The peers broadcast every data message to every client, the publisher included; the
# generator needs no special mode for that (its publisher drains its own echoes).
# A peer that is not installed is skipped with a message and listed in the report:
# `make peers` installs the npm ones (pinned package-lock.json files), `make release`
# builds the Rust one.
#
# Load: `ringcast-load fanout --rate 0 --in-flight K --size S --subscribers N --threads 1
# --pin-cpu 1` (one publisher, closed loop, generator on core 1), matrix in flight {1, 16}
# × size {64 B, 1 KiB} × subscribers {1k, 10k}.
#
# Method:
# * Interleaved: for each cell, each repetition runs every server once, back to back;
#   the order rotates by one per repetition (and per cell), so no server always runs
#   first. Absolute figures drift by tens of per cent over minutes on this shared
#   machine; only ratios within one cell of one run are compared.
# * A fresh server per run, its own port; stopped by PID (SIGINT, SIGKILL after 10 s).
# * Median of REPS (default 3) repetitions over the runs with no loss. A run that lost
#   frames (or failed) is flagged in the table and left out of the median, never
#   averaged in silently.
# * Server CPU per delivered frame: utime + stime of the server process from
#   /proc/PID/stat (all threads) over a window of D − 1 s that starts 0.3 s after the
#   generator's "[publish] start" line (every connection is up), divided by
#   frames/s × window.
# * Idle RSS per connection: the generator's `server.rss_per_connection_kib` (server RSS
#   with every connection open, before the first publish, minus before any connection,
#   ÷ connections).
# * Every wait is a bounded loop; the generator runs under `timeout`; every process
#   started here is stopped on exit (trap); SIGINT/SIGTERM still write the report.
#
# Usage: scripts/compare-peers.sh            (full run: 8 cells × 5 servers × 3 reps, ~22 min)
#        QUICK=1 scripts/compare-peers.sh    (1k subscribers × 64 B, 1 and 16 in flight, 2 reps of 2 s runs, ~2 min)
# Environment: QUICK, REPS (default 3; QUICK 2), DURATION (s per run, default 5; QUICK
# 2), PEERS (space list, default the five above), SUBSCRIBERS, SIZES, IN_FLIGHT (space
# lists), PORT_BASE (default 9530; 20 ports from there), OUT_DIR (default bench-results),
# CARGO_TARGET_DIR (binaries from $CARGO_TARGET_DIR/release).
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=scripts/compare

QUICK=${QUICK:-0}
REPS=${REPS:-}
DURATION=${DURATION:-5}
PORT_BASE=${PORT_BASE:-9530}
OUT_DIR=${OUT_DIR:-bench-results}
SRC_IPS=127.0.0.1-127.0.0.16
BIN=${CARGO_TARGET_DIR:-target}/release
SERVER=$BIN/ringcast
LOAD=$BIN/ringcast-load
TOKIO_PEER=$BIN/peer-tokio-tungstenite
BUN=peers/bun/node_modules/.bin/bun
PEERS=(${PEERS:-uring epoll bun node-ws tokio-tungstenite})

SUBSCRIBERS=(${SUBSCRIBERS:-1000 10000})
SIZES=(${SIZES:-64 1024})
IN_FLIGHT=(${IN_FLIGHT:-1 16})
if [[ $QUICK == 1 ]]; then
  SUBSCRIBERS=(1000)
  SIZES=(64)
  DURATION=${QUICK_DURATION:-2}
  REPS=${REPS:-2}
fi
REPS=${REPS:-3}

[[ -x $LOAD ]] || { echo "missing $LOAD: run 'make release' first" >&2; exit 2; }
# 10k subscribers need 10k descriptors in every server (the peers do not raise it).
ulimit -n "$(ulimit -Hn)"

# installed NAME: 0 when the server can run here, else prints why not.
installed() {
  case $1 in
    uring | epoll | uring-sse | epoll-sse)
      [[ -x $SERVER ]] || { echo "$SERVER missing (make release)"; return 1; } ;;
    bun) [[ -x $BUN ]] || { echo "$BUN missing (make peers: npm ci --prefix peers/bun)"; return 1; } ;;
    node-ws)
      command -v node >/dev/null || { echo "node not on PATH"; return 1; }
      [[ -d peers/node-ws/node_modules/ws ]] ||
        { echo "peers/node-ws/node_modules/ws missing (make peers: npm ci --prefix peers/node-ws)"; return 1; }
      ;;
    tokio-tungstenite) [[ -x $TOKIO_PEER ]] || { echo "$TOKIO_PEER missing (make release)"; return 1; } ;;
    *) echo "unknown server"; return 1 ;;
  esac
}
SERVERS=()
SKIPPED=()
for p in "${PEERS[@]}"; do
  if why=$(installed "$p"); then SERVERS+=("$p"); else
    echo "skipping $p: $why" >&2
    SKIPPED+=("$p: $why")
  fi
done
((${#SERVERS[@]} > 0)) || { echo "no server to run" >&2; exit 2; }

STAMP=$(date +%Y-%m-%d-%H%M)
RAW=$OUT_DIR/compare-peers-$STAMP
REPORT=$OUT_DIR/compare-peers-$STAMP.md
SVG=compare-peers-$STAMP.svg
TSV=$RAW/runs.tsv
mkdir -p "$RAW"
printf 'subs\tsize\tinflight\tserver\trep\tframes_per_sec\tlost\tcpu_us_per_frame\tserver_cpu_pct\tgenerator_cpu_pct\tstatus\tload1\tidle_rss_kib_per_conn\n' >"$TSV"
COMMAND_LINE="$0${*:+ $*}"
if [[ $QUICK == 1 ]]; then COMMAND_LINE="QUICK=1 $COMMAND_LINE"; fi

SERVER_PID=""
GEN_PID=""
cleanup() {
  if [[ -n $GEN_PID ]]; then kill "$GEN_PID" 2>/dev/null || true; fi
  if [[ -n $SERVER_PID ]]; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  GEN_PID="" SERVER_PID=""
}
trap cleanup EXIT
on_signal() {
  echo "interrupted: writing the report of the runs done so far" >&2
  trap - INT TERM
  cleanup
  write_report
  exit 130
}
trap on_signal INT TERM

# stop_server: SIGINT, SIGKILL after 10 s (scripts/lib/stop-server.sh).
# shellcheck source=lib/stop-server.sh
source scripts/lib/stop-server.sh

CLK_TCK=$(getconf CLK_TCK)
# cpu_ticks PID: utime + stime of the whole process (fields 14 and 15 of /proc/PID/stat;
# the command name in field 2 may hold spaces, so count from after its ')').
cpu_ticks() {
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo n/a
}

RUN_INDEX=0
# run_one SERVER SUBS SIZE INFLIGHT REP: one server, one generator run, one TSV line.
run_one() {
  local srv=$1 subs=$2 size=$3 inflight=$4 rep=$5
  local port=$((PORT_BASE + RUN_INDEX % 20))
  RUN_INDEX=$((RUN_INDEX + 1))
  local name=$srv-s$subs-b$size-k$inflight-r$rep url=ws://127.0.0.1:$port/ cmd transport=()
  case $srv in
    uring | epoll | uring-sse | epoll-sse)
      cmd=("$SERVER" serve --addr "127.0.0.1:$port" --backend "${srv%-sse}" --threads 1
        --metrics-addr off --log-level warn)
      url=ws://127.0.0.1:$port/ws/bench
      if [[ $srv == *-sse ]]; then transport=(--transport sse); fi
      ;;
    bun) cmd=("$BUN" peers/bun/server.js "$port") ;;
    node-ws) cmd=(node peers/node-ws/server.js "$port") ;;
    tokio-tungstenite) cmd=("$TOKIO_PEER" "$port") ;;
  esac
  local load1 status=ok
  load1=$(cut -d' ' -f1 /proc/loadavg)
  taskset -c 0 "${cmd[@]}" >"$RAW/$name.server.log" 2>&1 &
  SERVER_PID=$!
  local i ready=0
  for ((i = 0; i < 300; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then ready=1; break; fi
    sleep 0.05
  done
  if [[ $ready == 0 ]]; then
    status="server did not start: $(tail -n1 "$RAW/$name.server.log" | tr '\t|' '  ' | cut -c1-80)"
    stop_server
    printf '%s\t%s\t%s\t%s\t%s\tn/a\tn/a\tn/a\tn/a\tn/a\t%s\t%s\tn/a\n' "$subs" "$size" "$inflight" \
      "$srv" "$rep" "$status" "$load1" >>"$TSV"
    echo "  $name: $status" >&2
    return 0
  fi
  local limit=$((DURATION + 90))
  timeout -k 5 "$limit" "$LOAD" fanout --url "$url" "${transport[@]}" \
    --subscribers "$subs" --in-flight "$inflight" --rate 0 --duration "${DURATION}s" \
    --timeout "$((limit - 3))s" --size "$size" --src-ips "$SRC_IPS" --threads 1 --pin-cpu 1 \
    --server-pid "$SERVER_PID" --json "$RAW/$name.json" --no-progress >"$RAW/$name.txt" 2>&1 &
  GEN_PID=$!
  local steady=0
  for ((i = 0; i < 2400; i++)); do
    if grep -q '^\[publish\] start' "$RAW/$name.txt" 2>/dev/null; then steady=1; break; fi
    kill -0 "$GEN_PID" 2>/dev/null || break
    sleep 0.05
  done
  local window=$((DURATION > 1 ? DURATION - 1 : 1)) t0 t1 c0=n/a c1=n/a
  if [[ $steady == 1 ]]; then
    sleep 0.3
    t0=$(date +%s%N) c0=$(cpu_ticks "$SERVER_PID")
    sleep "$window"
    t1=$(date +%s%N) c1=$(cpu_ticks "$SERVER_PID")
  fi
  local rc=0
  wait "$GEN_PID" || rc=$?
  GEN_PID=""
  stop_server
  case $rc in
    0) ;;
    1) status="generator reported problems" ;;
    124 | 137) status="generator timed out" ;;
    *) status="generator exit $rc" ;;
  esac
  local fps lost gen rss cpu_pf=n/a cpu_pct=n/a
  if [[ -s $RAW/$name.json ]]; then
    read -r fps lost gen rss < <(awk -v want="traffic.delivered_frames_per_sec traffic.lost_frames \
generator.cpu_pct_of_one_core server.rss_per_connection_kib" -f "$HERE/json-get.awk" "$RAW/$name.json" | tr '\t' ' ')
  else
    fps=n/a lost=n/a gen=n/a rss=n/a
    if [[ $status == ok ]]; then status="no report"; fi
  fi
  if [[ $c0 != n/a && $c1 != n/a ]]; then
    read -r cpu_pf cpu_pct < <(awk -v c="$((c1 - c0))" -v hz="$CLK_TCK" -v f="$fps" \
      -v w="$(((t1 - t0) / 1000))" 'BEGIN {
        s = c / hz; secs = w / 1e6
        pf = (f ~ /^[0-9.]+$/ && f > 0) ? sprintf("%.3f", s * 1e6 / (f * secs)) : "n/a"
        printf "%s %.0f\n", pf, 100 * s / secs }')
  fi
  if [[ $status == ok && $lost != 0 ]]; then status="lost $lost frames"; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$subs" "$size" "$inflight" "$srv" \
    "$rep" "$fps" "$lost" "$cpu_pf" "$cpu_pct" "$gen" "$status" "$load1" "$rss" >>"$TSV"
  printf '  %-36s %10s frames/s  cpu %s µs/frame (%s%%)  lost %s  load %s  %s\n' "$name" \
    "${fps%.*}" "$cpu_pf" "$cpu_pct" "$lost" "$load1" "$status"
}

write_report() {
  local total=$((SECONDS - START)) cpu_model commit
  cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  git diff --quiet HEAD -- 2>/dev/null || commit="$commit (with uncommitted changes)"
  awk -f "$HERE/peers-svg.awk" "$TSV" >"$OUT_DIR/$SVG"
  {
    echo "# ringcast vs peer servers, fan-out — $STAMP"
    echo
    echo "* command: \`$COMMAND_LINE\` (total ${total} s, $RUN_INDEX runs, $REPS repetitions, ${DURATION} s per run)"
    echo "* commit: $commit; machine: Linux $(uname -r), $(nproc) CPUs (${cpu_model:-unknown model}), shared with other builds (1-min load average at each run's start in runs.tsv: $(awk -F'\t' 'NR > 1 && $12 != "" { if (!n++ || $12 < lo) lo = $12; if ($12 > hi) hi = $12 } END { print (n ? lo "–" hi : "n/a") }' "$TSV"))"
    echo "* servers, each pinned to core 0 (\`taskset -c 0\`), a fresh one per run:"
    echo "  uring / epoll = \`ringcast serve --backend B --threads 1 --metrics-addr off --log-level warn\`;"
    echo "  bun = Bun $("$BUN" --version 2>/dev/null || echo "(not installed)") \`server.publish\` (peers/bun/server.js);"
    echo "  node-ws = Node $(node --version 2>/dev/null || echo "(not installed)") + ws $(awk -F'"' '/"version"/ { print $4; exit }' peers/node-ws/node_modules/ws/package.json 2>/dev/null || echo "?") broadcast loop (peers/node-ws/server.js);"
    echo "  tokio-tungstenite = peers/tokio-tungstenite (current-thread tokio, \`tokio::sync::broadcast\`);"
    echo "  uring-sse / epoll-sse (when listed) = ringcast as uring / epoll with Server-Sent Events subscribers (generator \`--transport sse\`)"
    if ((${#SKIPPED[@]} > 0)); then
      echo "* skipped (not installed): $(printf '%s; ' "${SKIPPED[@]}")"
    fi
    echo "* load: \`ringcast-load fanout --url URL --subscribers N --in-flight K --rate 0 --duration ${DURATION}s --size S --src-ips $SRC_IPS --threads 1 --pin-cpu 1\`; one publisher, closed loop"
    echo "* order: per cell, each repetition runs every server once, back to back, the order rotated by one per repetition"
    echo
    echo "frames/s = frames delivered to subscribers per second (median of the runs without"
    echo "loss; min–max over those runs). ratio = median ÷ the fastest peer's median in the same"
    echo "cell (peers: bun, node-ws, tokio-tungstenite). CPU µs/frame = server utime+stime"
    echo "(/proc/PID/stat) over the steady window ÷ frames delivered in it (median); server and"
    echo "generator CPU % of one core (generator near 100 %: the generator may be the limit). idle"
    echo "RSS = server RSS per connection with every connection open, before the first publish. clean ="
    echo "runs without loss or failure / runs; a run that lost frames or failed is listed under"
    echo "the table and not in the median."
    echo
    awk -f "$HERE/peers-table.awk" "$TSV"
    echo
    echo "![frames/s by server]($SVG)"
    echo
    echo "Every run (frames/s, loss, CPU, generator CPU, status, load): \`compare-peers-$STAMP/runs.tsv\`."
  } >"$REPORT"
  echo "wrote $REPORT (${total} s)"
}

CELLS=()
for inflight in "${IN_FLIGHT[@]}"; do
  for size in "${SIZES[@]}"; do
    for subs in "${SUBSCRIBERS[@]}"; do CELLS+=("$subs $size $inflight"); done
  done
done
START=$SECONDS
echo "compare-peers: ${#CELLS[@]} cells × ${#SERVERS[@]} servers × $REPS reps, ${DURATION} s per run, output $REPORT"
n=${#SERVERS[@]}
cell_no=0
for cell in "${CELLS[@]}"; do
  read -r subs size inflight <<<"$cell"
  echo "== $subs subscribers × $size B × $inflight in flight"
  for ((rep = 1; rep <= REPS; rep++)); do
    shift_by=$(((rep - 1 + cell_no) % n))
    for ((k = 0; k < n; k++)); do
      run_one "${SERVERS[(k + shift_by) % n]}" "$subs" "$size" "$inflight" "$rep"
    done
  done
  cell_no=$((cell_no + 1))
done
write_report
