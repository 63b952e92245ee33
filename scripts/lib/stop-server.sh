# Sourced by the bench scripts (compare-backends.sh, soak.sh): stop the server whose pid
# is in $SERVER_PID gracefully (SIGINT), SIGKILL after 10 s, reap it, clear SERVER_PID.
stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  kill -INT "$SERVER_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 200; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
