#!/usr/bin/env bash
# Screenshot of the live dashboard under load: starts the release binary on ephemeral
# ports, opens 50 WebSocket clients (from a headless Chromium page, each sending one
# message a second to /ws/demo), loads the dashboard and saves bench-results/dashboard.png.
# Needs: `apt-get install -y chromium` and `npm ci --prefix tests/dashboard`.
# Usage: scripts/dashboard-shot.sh [CLIENTS] (run by `make dashboard-shot`).
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS="${1:-50}"
BIN="${RINGCAST_BIN:-${CARGO_TARGET_DIR:-target}/release/ringcast}"
OUT_DIR=bench-results
mkdir -p "$OUT_DIR"

[ -x "$BIN" ] || cargo build --release --bin ringcast
[ -x /usr/bin/chromium ] || { echo "chromium missing: apt-get install -y chromium" >&2; exit 1; }
[ -d tests/dashboard/node_modules/playwright-core ] || npm ci --prefix tests/dashboard

LOG="$(mktemp)"
"$BIN" serve --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --no-pin >"$LOG" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -f "$LOG"' EXIT

WS="" HTTP=""
for _ in $(seq 100); do
  WS="$(sed -n 's|^ringcast listening on ws://\([^ /]*\).*|\1|p' "$LOG" | head -1)"
  HTTP="$(sed -n 's|^metrics on http://\([^ /]*\).*|\1|p' "$LOG" | head -1)"
  [ -n "$WS" ] && [ -n "$HTTP" ] && break
  kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
  sleep 0.1
done
[ -n "$WS" ] && [ -n "$HTTP" ] || { echo "no address lines from ringcast:" >&2; cat "$LOG" >&2; exit 1; }

node tests/dashboard/check.mjs --url "http://$HTTP/" --expect "$CLIENTS" \
  --clients "$CLIENTS" --ws "ws://$WS/ws/demo" --send-interval 1000 \
  --settle 6000 --screenshot "$OUT_DIR/dashboard.png"
echo "saved $OUT_DIR/dashboard.png"
