#!/usr/bin/env bash
# Autobahn|Testsuite, strict, cases 1.* to 10.* plus the permessage-deflate cases 12.*
# and 13.* (about 9 min of the ~10 per backend) against /echo, once per backend.
# Needs ../shared/conformance/autobahn (setup.sh is run first; idempotent).
# Reports: bench-results/autobahn-<backend>/index.html. Fails unless both pass.
set -euo pipefail
cd "$(dirname "$0")/.."
AB=${AB:-../shared/conformance/autobahn}
BIN=${BIN:-target/release/ringcast}
PORT=${PORT:-9301}
CASES=${CASES:-}
[ -x "$BIN" ] || cargo build --release --bin ringcast
if [ "$(id -u)" = 0 ]; then bash "$AB/setup.sh"; else sudo bash "$AB/setup.sh"; fi
mkdir -p bench-results
status=0
for backend in uring epoll; do
  "$BIN" serve --addr "127.0.0.1:$PORT" --backend "$backend" --log-level warn --metrics-addr off &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
  echo "== autobahn ($backend)"
  if ! "$AB/run.sh" --strict --with-deflate --path /echo 127.0.0.1 "$PORT" "bench-results/autobahn-$backend" $CASES; then
    status=1
  fi
  kill -INT "$pid"; wait "$pid" || status=1
done
exit $status
