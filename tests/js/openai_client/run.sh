#!/usr/bin/env bash
# run.sh GPTOSS — the ctest `serve_openai_js` (label cpu): installs the official `openai` npm
# client from package-lock.json (npm ci) when node_modules is missing or stale, starts `gptoss
# serve` on the tiny synthetic shape with an API key, and runs client_test.mjs against it.
# Without node and npm it exits 77, which ctest reports as skipped (SKIP_RETURN_CODE).
set -euo pipefail
bin=$(realpath "$1")
cd "$(dirname "$0")"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "skipped: node and npm are needed for the openai client test" >&2
  echo "hint: run scripts/setup.sh (it installs Debian's nodejs and npm when node is missing)" >&2
  exit 77
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
dir=$(mktemp -d)
trap 'kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$dir"' EXIT
source ../../server/serve_lib.sh
key="sk-js-$RANDOM$RANDOM"
start_server "$bin" "$dir" --api-key "$key"
node client_test.mjs "$BASE" "$key" || { cat "$dir/serve.err" >&2; exit 1; }
stop_server
