#!/usr/bin/env bash
# Interleaved A/B fan-out: ab.sh BIN_A BIN_B [REPS] [SUBS] [INFLIGHT] [SIZE] [DUR]
# BACKENDS="uring epoll" by default; BACKEND_A=uring BACKEND_B=epoll BACKENDS=x compares
# the backends of one binary (A=B) instead. Server --threads 1 pinned to core 0, generator 1 thread pinned to core 1; ABBA order per backend.
# FLOOR=1: after each pair also run `ringcast-load floor` (the loopback floor: K frames of
# SIZE bytes per send to min(SUBS, 9900) sockets, sender on core 0, receiver on core 1)
# and print it as a third line "floor F ..." with its sender CPU per frame.
set -u
A=$1 B=$2 REPS=${3:-3} SUBS=${4:-5000} K=${5:-16} SIZE=${6:-64} DUR=${7:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOAD=${RINGCAST_LOAD:-$ROOT/target/release/ringcast-load}
J=$ROOT/scripts/compare/json-get.awk
OUT=$(mktemp -d /tmp/ab.XXXX); port=9470
run() { # bin backend tag
  port=$((port+1)); [[ $port -gt 9489 ]] && port=9471
  taskset -c 0 "$1" serve --addr 127.0.0.1:$port --backend $2 --threads 1 --metrics-addr off --log-level warn >$OUT/s.log 2>&1 & sp=$!
  for i in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
  timeout -k 5 $((DUR+40)) $LOAD fanout --url ws://127.0.0.1:$port/ws/bench --subscribers $SUBS --in-flight $K --rate 0 \
    --duration ${DUR}s --size $SIZE --src-ips 127.0.0.1-127.0.0.16 --threads 1 --pin-cpu 1 --json $OUT/r.json --no-progress >$OUT/g.txt 2>&1 & gp=$!
  for i in $(seq 1200); do grep -q '^\[publish\] start' $OUT/g.txt 2>/dev/null && break; sleep 0.05; done
  sleep 0.3; perf stat -x, -o $OUT/p.txt -e task-clock -p $sp -- sleep $((DUR-1)) >/dev/null 2>&1
  wait $gp
  kill $sp; wait $sp 2>/dev/null
  read -r fps lost < <(awk -v want="traffic.delivered_frames_per_sec traffic.lost_frames" -f $J $OUT/r.json | tr '\t' ' ')
  clk=$(awk -F, '/task-clock/{print $1}' $OUT/p.txt)
  us=$(awk -v c="$clk" -v f="$fps" -v w=$((DUR-1)) 'BEGIN{printf "%.3f", c*1000/(f*w)}')
  echo "$2 $3 $fps lost=$lost cpu_us_per_frame=$us"
}
floor() {
  local n=$((SUBS < 9900 ? SUBS : 9900))
  $LOAD floor --connections $n --frames-per-send $K --size $SIZE --duration $((DUR-1))s \
    --sender-cpu 0 --receiver-cpu 1 >$OUT/f.txt 2>&1 || { cat $OUT/f.txt >&2; return; }
  awk '/frames .* in /{fps=$6; sub(/\(/, "", fps)} /sender CPU/{us=$3} END{printf "floor F %s lost=0 cpu_us_per_frame=%s\n", fps, us}' $OUT/f.txt
}
for be in ${BACKENDS:-uring epoll}; do
  for r in $(seq $REPS); do
    if (( r % 2 )); then run $A ${BACKEND_A:-$be} A; run $B ${BACKEND_B:-$be} B; else run $B ${BACKEND_B:-$be} B; run $A ${BACKEND_A:-$be} A; fi
    [[ -n ${FLOOR:-} ]] && floor
  done
done | tee $OUT/all.txt
awk '{k=$1" "$2; s[k]+=$3; n[k]++; split($5,a,"="); c[k]+=a[2]} END{for (b in n) printf "%s mean fps %.0f cpu/frame %.3f us\n", b, s[b]/n[b], c[b]/n[b]}' $OUT/all.txt | sort
echo "raw: $OUT/all.txt"
