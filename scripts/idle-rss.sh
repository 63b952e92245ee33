#!/usr/bin/env bash
# RSS per idle connection on each backend: N upgraded, idle connections to /ws/idle,
# measured from the server's /proc/PID/status by ringcast-load (after a warm-up).
# Usage: scripts/idle-rss.sh [N=10000]; TLS=1 measures wss:// connections (a fresh
# self-signed pair from `ringcast-load cert`); TRANSPORT=sse measures Server-Sent Events
# subscribers on /sse/idle instead (`ringcast-load fanout --transport sse --messages 1`:
# the RSS per connection is taken with every stream open, before the one publish; the
# count includes the one WebSocket publisher).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
PORT=${PORT:-9411}
cargo build --release -q --workspace --features ringcast/tls
scheme=ws tls_server=() tls_client=()
if [[ ${TLS:-0} == 1 ]]; then
  dir=$(mktemp -d)
  target/release/ringcast-load cert --out-dir "$dir" >/dev/null
  scheme=wss
  tls_server=(--tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem")
  tls_client=(--tls-ca "$dir/cert.pem")
fi
for backend in uring epoll; do
  target/release/ringcast serve --addr "127.0.0.1:$PORT" --backend "$backend" --log-level warn --metrics-addr off "${tls_server[@]}" >/dev/null &
  pid=$!
  trap 'kill $pid 2>/dev/null' EXIT
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
  target/release/ringcast-load connect --url "$scheme://127.0.0.1:$PORT/ws/idle" "${tls_client[@]}" \
    --connections 1000 --cycles 2 --src-ips 127.0.0.1-127.0.0.16 --no-progress >/dev/null
  if [[ ${TRANSPORT:-ws} == sse ]]; then
    echo "== $backend: $N idle SSE streams ($scheme:// URL mapped to /sse/idle)"
    target/release/ringcast-load fanout --url "$scheme://127.0.0.1:$PORT/ws/idle" "${tls_client[@]}" \
      --transport sse --subscribers "$N" --messages 1 --src-ips 127.0.0.1-127.0.0.16 \
      --server-pid "$pid" --no-progress | grep -E "server (before|after connect|RSS per)|connect rate"
  else
    echo "== $backend: $N idle $scheme:// connections"
    target/release/ringcast-load connect --url "$scheme://127.0.0.1:$PORT/ws/idle" "${tls_client[@]}" \
      --connections "$N" \
      --cycles 1 --hold 2s --src-ips 127.0.0.1-127.0.0.16 --server-pid "$pid" --no-progress \
      | grep -E "server|connect rate"
  fi
  kill -INT "$pid"; wait "$pid" || true
  trap - EXIT
done
