#!/usr/bin/env bash
# Slow-consumer soak (`make soak`): fan-out to 5k subscribers of which 10 % are slow, on
# both backends under each `--slow-policy`, SOAK_SECONDS of publishing per run (default
# 300 s: 6 runs, ~31 min in all). Writes bench-results/soak-<YYYY-MM-DD-HHMM>.md (one
# table row per run) and the raw generator reports (JSON + summary) and server logs
# under bench-results/soak-<stamp>/. Exit status 1 when any run was not clean: above
# all when a fast subscriber lost a frame, but also a fast subscriber dropped, the
# server closing more connections as slow consumers than there are slow ones, frames
# missing in slow sequences beyond what the server counted as dropped, or a run that
# did not finish; 2 when the binaries are missing. RSS flatness is reported, not
# enforced (see the README's "Soak" section on the steps seen on this shared machine).
#
# Each run: a fresh server `--threads 1` pinned to core 0 (`taskset -c 0`) with
#   --slow-policy P --max-queue-bytes MAX_QUEUE_BYTES (64 KiB)
#   --socket-send-buffer SOCKET_SEND_BUFFER (32 KiB)   bounds what the kernel holds per
#                                                      stalled socket before our queue
#   --ping-interval PING_INTERVAL (0: off)             a stalled reader cannot answer a
#       ping, so with heartbeats on the server closes it as `pong_timeout` after
#       ping-interval + pong-timeout whatever the policy; off, the policy alone acts for
#       the whole run (PING_INTERVAL=30s shows the heartbeat at work instead)
# and the generator, one thread pinned to core 1:
#   ringcast-load fanout --subscribers 5000 --slow-fraction 0.1 --slow-mode M
#     --rate RATE (10 msg/s) --size SIZE (1 KiB) --duration SOAK_SECONDS
#     --src-ips 127.0.0.1-127.0.0.16 --server-pid PID --metrics-url .../metrics
#     --rss-interval 10s --rss-warmup RSS_WARMUP (60 s; SOAK_SECONDS/2 below 120 s)
# Rate: 10 msg/s × 4,500 fast subscribers = 45k frames/s (46 MB/s), about a third of
# what one pinned core delivers at one frame per send (142k frames/s, `make compare`),
# so a core shared with other work keeps up; each subscriber gets 10 KiB/s, so a
# stalled one fills its socket buffers (~190 KB on loopback) and 64 KiB queue within
# ~25 s and the policy is at work inside the first minute (the RSS warm-up).
# Slow modes: `stall` (never reads after the upgrade) and `trickle` (TRICKLE_BYTES,
# default 512, every TRICKLE_INTERVAL, default 1 s: 5 % of the publish bandwidth). The
# six runs alternate the modes (SLOW_MODES="stall trickle" in turn, backend by backend),
# so every policy meets both modes once, one on each backend: uring close/stall,
# uring drop-newest/trickle, uring drop-oldest/stall, epoll close/trickle,
# epoll drop-newest/stall, epoll drop-oldest/trickle. SLOW_MODES=stall forces one mode.
#
# RSS: sampled every 10 s from the first publish. "Flat" means no late growth: the
# samples after the warm-up split in two halves by time, the second half's maximum is
# at most RSS_FLAT_PCT (2 %) above the first half's (a leak keeps making new highs; a
# one-time step just after the warm-up does not). The growth of the maximum over the
# RSS at the end of the warm-up is in the table too.
#
# Every wait is a bounded loop; the generator runs under `timeout` (SOAK_SECONDS + 90 s);
# every process started here is stopped by its PID on exit (trap).
#
# Usage: scripts/soak.sh                  (6 × 300 s)
#        SOAK_SECONDS=60 scripts/soak.sh  (6 × 60 s, ~8 min)
#        scripts/soak.sh --report DIR     (rebuild DIR.md from the runs in DIR)
# Environment: SOAK_SECONDS, SUBSCRIBERS, SLOW_FRACTION, RATE, SIZE, MAX_QUEUE_BYTES,
# SOCKET_SEND_BUFFER, PING_INTERVAL, SLOW_MODES, POLICIES, BACKENDS, TRICKLE_BYTES,
# TRICKLE_INTERVAL, RSS_WARMUP, RSS_FLAT_PCT (2: the "flat" column's threshold),
# PORT_BASE (9470), OUT_DIR (bench-results), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS=${SOAK_SECONDS:-300}
SUBSCRIBERS=${SUBSCRIBERS:-5000}
SLOW_FRACTION=${SLOW_FRACTION:-0.1}
RATE=${RATE:-10}
SIZE=${SIZE:-1KiB}
MAX_QUEUE_BYTES=${MAX_QUEUE_BYTES:-64KiB}
SOCKET_SEND_BUFFER=${SOCKET_SEND_BUFFER:-32KiB}
PING_INTERVAL=${PING_INTERVAL:-0}
read -r -a SLOW_MODES <<<"${SLOW_MODES:-stall trickle}"
read -r -a POLICIES <<<"${POLICIES:-close drop-newest drop-oldest}"
read -r -a BACKENDS <<<"${BACKENDS:-uring epoll}"
TRICKLE_BYTES=${TRICKLE_BYTES:-512}
TRICKLE_INTERVAL=${TRICKLE_INTERVAL:-1s}
if ((SOAK_SECONDS >= 120)); then RSS_WARMUP=${RSS_WARMUP:-60}; else RSS_WARMUP=${RSS_WARMUP:-$((SOAK_SECONDS / 2))}; fi
RSS_FLAT_PCT=${RSS_FLAT_PCT:-2}
PORT_BASE=${PORT_BASE:-9470}
OUT_DIR=${OUT_DIR:-bench-results}
SRC_IPS=127.0.0.1-127.0.0.16
BIN=${CARGO_TARGET_DIR:-target}/release
SERVER=$BIN/ringcast
LOAD=$BIN/ringcast-load

REBUILD=""
if [[ ${1:-} == --report ]]; then
  REBUILD=${2:?usage: $0 --report DIR}
  RAW=${REBUILD%/}
  REPORT=$RAW.md
  STAMP=${RAW##*/soak-}
else
  for tool in "$SERVER" "$LOAD"; do
    [[ -x $tool ]] || { echo "missing $tool: run 'make release' first" >&2; exit 2; }
  done
  STAMP=$(date +%Y-%m-%d-%H%M)
  RAW=$OUT_DIR/soak-$STAMP
  REPORT=$OUT_DIR/soak-$STAMP.md
  mkdir -p "$RAW"
fi
SETTINGS=(SOAK_SECONDS SUBSCRIBERS SLOW_FRACTION RATE SIZE MAX_QUEUE_BYTES SOCKET_SEND_BUFFER
  PING_INTERVAL TRICKLE_BYTES TRICKLE_INTERVAL RSS_WARMUP)
if [[ -n $REBUILD ]]; then
  # The run's own settings (the environment's count only where the run left none).
  # shellcheck disable=SC1091
  if [[ -f $RAW/settings.env ]]; then source "$RAW/settings.env"; fi
else
  for v in "${SETTINGS[@]}"; do printf '%s=%q\n' "$v" "${!v}"; done >"$RAW/settings.env"
fi

SERVER_PID=""
GEN_PID=""
cleanup() {
  if [[ -n $GEN_PID ]]; then kill "$GEN_PID" 2>/dev/null || true; wait "$GEN_PID" 2>/dev/null || true; fi
  if [[ -n $SERVER_PID ]]; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  GEN_PID="" SERVER_PID=""
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; cleanup; exit 130' INT TERM

# stop_server: SIGINT, SIGKILL after 10 s (scripts/lib/stop-server.sh).
# shellcheck source=lib/stop-server.sh
source scripts/lib/stop-server.sh

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

FAILED=0
RUN=0
START=$SECONDS

# The table row of one finished run, from its report and its .meta (backend, policy,
# mode, load average before and after, generator exit code). Sets FAILED when the run
# was not clean.
row_of() {
  local name=$1 backend policy mode load0 load1 rc
  IFS=$'\t' read -r backend policy mode load0 load1 rc <"$RAW/$name.meta"
  if [[ ! -s $RAW/$name.json ]]; then
    echo "| $backend | $policy | $mode | no report (exit $rc) |"
    return 0
  fi
  jq -r --arg b "$backend" --arg p "$policy" --arg m "$mode" \
    --arg load "$load0 → $load1" --argjson flat "$RSS_FLAT_PCT" '
    def kib: if . == null then "n/a" else "\(. / 1024 * 10 | round / 10) MiB" end;
    def pct: if . == null then "n/a" else "\(. * 10 | round / 10) %" end;
    def reasons: if . == null or . == {} then "none" else to_entries | map("\(.key) \(.value)") | join(", ") end;
    # Late growth (see the header), from the samples.
    def late($w): [.[] | select(.secs >= $w)] as $a
      | if ($a | length) < 4 then null else
          (($a[0].secs + $a[-1].secs) / 2) as $mid
          | ([$a[] | select(.secs <= $mid) | .rss_kib] | max) as $x
          | ([$a[] | select(.secs > $mid) | .rss_kib] | max) as $y
          | ($y - $x) / $x * 100 end;
    . as $r | .traffic as $t | .slow as $s | .server.rss_over_time as $rss
    | ($rss.samples | late($rss.warmup_secs)) as $late
    | "| \($b) | \($p) | \($m) | \($t.messages_sent) | \($t.receivers) | \($t.expected_frames) | \($t.received_frames) | **\($t.lost_frames)** | "
    + "\($s.subscribers) | \($s.received_frames) | \($s.missing_in_sequence) | \($s.not_received) | "
    + "\(.server_counters.connections_closed | reasons) | \(.server_counters.frames_dropped | reasons) | "
    + "\($s.ended | reasons); open \($s.open_at_end) | "
    + "\($rss.at_warmup_end_kib | kib) | \($rss.end_kib | kib) | \($rss.max_after_warmup_kib | kib) | "
    + "\($rss.growth_after_warmup_pct | pct) | \($late | pct)"
    + (if $late == null then "" elif $late <= $flat then " (flat)" else " (**NOT flat**)" end)
    + " | \(if $r.latency.p99_us == null then "n/a" else "\($r.latency.p99_us / 100 | round / 10) ms" end) | \($load) | "
    + (if $r.ok then "OK" else "FAILED: " + ($r.problems | join("; ") | gsub("\\|"; "/")) end) + " |"
    ' "$RAW/$name.json"
}

# Whether a run was not clean (no report, a problem in it, or a non-zero exit).
run_failed() {
  local rc
  rc=$(cut -f6 "$RAW/$1.meta")
  [[ ! -s $RAW/$1.json || $(jq -r '.ok' "$RAW/$1.json") != true || $rc != 0 ]]
}

write_report() {
  local rows=() name
  for name in "${NAMES[@]}"; do
    rows+=("$(row_of "$name")")
    if run_failed "$name"; then FAILED=1; fi
  done
  {
    echo "# Slow-consumer soak, $STAMP"
    echo
    echo "\`scripts/soak.sh\` with SOAK_SECONDS=$SOAK_SECONDS: $SUBSCRIBERS subscribers, $SLOW_FRACTION slow,"
    echo "$RATE msg/s of $SIZE, server \`--threads 1\` on core 0 (\`--max-queue-bytes $MAX_QUEUE_BYTES"
    echo "--socket-send-buffer $SOCKET_SEND_BUFFER --ping-interval $PING_INTERVAL\`), generator one thread on"
    echo "core 1; trickle = $TRICKLE_BYTES B every $TRICKLE_INTERVAL; RSS warm-up ${RSS_WARMUP} s. Machine:"
    echo "$(nproc) cores, $(uname -r), shared with other work (load average before → after each run"
    echo "in the table)."
    echo
    echo "Fast = every publish expected at each of them; **lost** must be 0. Slow: received,"
    echo "missing in sequence (dropped before a later frame arrived), not received (after a"
    echo "close, still buffered, or dropped at the tail). Server counters: increase of"
    echo "\`connections_closed_total\` and \`frames_dropped_total\` by reason over the run."
    echo "RSS: at the end of the warm-up, at the end, the maximum after the warm-up and its"
    echo "growth over the first; late growth = second half's maximum after the warm-up over the"
    echo "first half's (flat: ≤ $RSS_FLAT_PCT %)."
    echo
    echo "| backend | policy | slow mode | published | fast subs | fast expected | fast received | fast lost | slow subs | slow received | slow missing in seq. | slow not received | server closed | server dropped | slow ended (client view) | RSS at warm-up end | RSS end | RSS max after | growth | late growth | fast p99 | load avg | result |"
    echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    printf '%s\n' "${rows[@]}"
  } >"$REPORT"
  echo "report: $REPORT" >&2
}

NAMES=()
if [[ -n $REBUILD ]]; then
  # Run order: each run's .meta is written when it ends.
  while IFS= read -r meta; do
    name=${meta##*/}
    NAMES+=("${name%.meta}")
  done < <(ls -tr "$RAW"/*.meta)
  write_report
  exit "$FAILED"
fi

# One run: backend, policy, slow mode.
run_one() {
  local backend=$1 policy=$2 mode=$3
  local port=$((PORT_BASE + 2 * (RUN % 20))) mport=$((PORT_BASE + 2 * (RUN % 20) + 1))
  RUN=$((RUN + 1))
  local name=$backend-$policy-$mode
  taskset -c 0 "$SERVER" serve --addr "127.0.0.1:$port" --backend "$backend" --threads 1 \
    --metrics-addr "127.0.0.1:$mport" --slow-policy "$policy" \
    --max-queue-bytes "$MAX_QUEUE_BYTES" --socket-send-buffer "$SOCKET_SEND_BUFFER" \
    --ping-interval "$PING_INTERVAL" --log-level warn >"$RAW/$name.server.log" 2>&1 &
  SERVER_PID=$!
  local i ready=0
  for ((i = 0; i < 200; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    if grep -q '^metrics on ' "$RAW/$name.server.log" 2>/dev/null; then ready=1; break; fi
    sleep 0.05
  done
  NAMES+=("$name")
  if [[ $ready == 0 ]]; then
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$backend" "$policy" "$mode" "-" "-" \
      "server did not start: $(tail -n1 "$RAW/$name.server.log" | tr '|\t' '  ' | cut -c1-80)" >"$RAW/$name.meta"
    stop_server
    return 0
  fi
  local load0 rc=0
  load0=$(loadavg)
  echo "[$((SECONDS - START)) s] $name: ${SOAK_SECONDS} s publishing (load average $load0)" >&2
  local slow_read=()
  if [[ $mode == trickle ]]; then
    slow_read=(--slow-read-bytes "$TRICKLE_BYTES" --slow-read-interval "$TRICKLE_INTERVAL")
  fi
  timeout -k 5 "$((SOAK_SECONDS + 90))" "$LOAD" fanout \
    --url "ws://127.0.0.1:$port/ws/soak" --subscribers "$SUBSCRIBERS" \
    --slow-fraction "$SLOW_FRACTION" --slow-mode "$mode" "${slow_read[@]}" \
    --rate "$RATE" --size "$SIZE" --duration "${SOAK_SECONDS}s" \
    --timeout "$((SOAK_SECONDS + 80))s" --src-ips "$SRC_IPS" --threads 1 --pin-cpu 1 \
    --server-pid "$SERVER_PID" --metrics-url "http://127.0.0.1:$mport/metrics" \
    --rss-interval 10s --rss-warmup "${RSS_WARMUP}s" \
    --json "$RAW/$name.json" --no-progress >"$RAW/$name.txt" 2>&1 &
  GEN_PID=$!
  wait "$GEN_PID" || rc=$?
  GEN_PID=""
  stop_server
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$backend" "$policy" "$mode" "$load0" "$(loadavg)" "$rc" >"$RAW/$name.meta"
  echo "  $(tail -n1 "$RAW/$name.txt")" >&2
}

k=0
for backend in "${BACKENDS[@]}"; do
  for policy in "${POLICIES[@]}"; do
    mode=${SLOW_MODES[$((k % ${#SLOW_MODES[@]}))]}
    k=$((k + 1))
    run_one "$backend" "$policy" "$mode"
  done
done

write_report
exit "$FAILED"
