#!/usr/bin/env bash
# The Python helpers of bench/ against real inputs: sweep_table.py on a recorded sweep CSV (and a
# file that is not one), serve_latency.py against `gptoss serve` on the tiny model (CPU backend).
# Usage: bench_scripts_test.sh GPTOSS_BINARY
set -euo pipefail
GPTOSS=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }

table=$(python3 "$ROOT/bench/sweep_table.py" "20b=$ROOT/docs/sweep/2026-12-04-h200-20b.csv")
rows=$(grep -c '^| 20b | ' <<<"$table" || true)
data=$(($(wc -l <"$ROOT/docs/sweep/2026-12-04-h200-20b.csv") - 1))
[ "$rows" -eq "$data" ] || fail "sweep_table.py printed $rows rows for $data CSV rows"
grep -q '^| 20b | bf16 | 128:128 | .*x) |' <<<"$table" || fail "no 128:128 row with a floor ratio: $table"
if out=$(python3 "$ROOT/bench/sweep_table.py" "x=$ROOT/README.md" 2>&1); then fail "README.md accepted as a CSV"; fi
grep -q "not a bench sweep CSV" <<<"$out" || fail "unclear message: $out"

port_file=$(mktemp)
"$GPTOSS" serve --synthetic tiny --backend cpu --threads 2 --port 0 --temp 0 --quiet 2>"$port_file" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$port_file"' EXIT
port=""
for _ in $(seq 1 120); do
  port=$(grep -oE '127\.0\.0\.1:[0-9]+' "$port_file" | head -1 | cut -d: -f2 || true)
  [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 1
done
[ -n "$port" ] || fail "serve did not print its port: $(cat "$port_file")"
out=$(python3 "$ROOT/bench/serve_latency.py" --port "$port" -n 4 --repeats 1)
grep -qE '^request 1: 5 chunks, finish length, TTFT [0-9.]+ ms, gap median [0-9.]+ ms' <<<"$out" || fail "serve_latency.py: $out"
if out=$(python3 "$ROOT/bench/serve_latency.py" --port 1 -n 4 --repeats 1 2>&1); then fail "no server, no error"; fi
grep -q "is gptoss serve running" <<<"$out" || fail "unclear message: $out"
echo "bench scripts: ok"
