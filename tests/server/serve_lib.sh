# serve_lib.sh — sourced by the `gptoss serve` script tests (curl_test.sh, ../js/openai_client/run.sh):
# start_server GPTOSS DIR [ARGS...] starts `gptoss serve` on the tiny synthetic shape (CPU, context
# 128) on a free loopback port, waits for its "listening on" line and sets SERVER_PID and BASE
# (http://127.0.0.1:PORT); stop_server sends SIGTERM and returns the exit code.
start_server() {
  local bin=$1 dir=$2
  shift 2
  "$bin" serve --synthetic tiny --backend cpu --threads 2 --max-context 128 --port 0 "$@" \
    2> "$dir/serve.err" &
  SERVER_PID=$!
  local port=""
  for _ in $(seq 1200); do
    port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$dir/serve.err")
    [ -n "$port" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "error: gptoss serve exited before listening:" >&2
      cat "$dir/serve.err" >&2
      return 1
    fi
    sleep 0.5
  done
  [ -n "$port" ] || { echo "error: gptoss serve did not listen within 10 minutes" >&2; return 1; }
  BASE="http://127.0.0.1:$port"
}

stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  local rc=0
  wait "$SERVER_PID" || rc=$?
  return $rc
}
