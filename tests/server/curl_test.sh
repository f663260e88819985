#!/usr/bin/env bash
# curl_test.sh GPTOSS — the ctest `serve_curl` (label cpu): `gptoss serve` on the tiny synthetic
# shape driven by curl (jq reads the JSON): health, a chat completion whole and streamed (the same
# text for the same seed, ending with data: [DONE]), a completion, models, metrics, malformed JSON
# (400 with OpenAI's error JSON, the server still serving), and SIGTERM mid-stream: the stream
# finishes with [DONE] and the server exits 0.
set -euo pipefail
bin=$(realpath "$1")
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed (scripts/setup.sh)" >&2; exit 1; }
done
dir=$(mktemp -d)
trap 'kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$dir"' EXIT
source "$(dirname "$0")/serve_lib.sh"
start_server "$bin" "$dir"
fail() { echo "FAIL: $*" >&2; cat "$dir/serve.err" >&2; exit 1; }
post() { curl -sS "$BASE$1" -H 'Content-Type: application/json' -d "$2"; }

curl -sSf "$BASE/health" | jq -e '.status == "ok"' >/dev/null || fail "health"
chat='{"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"temperature":1,"seed":11'
post /v1/chat/completions "$chat}" > "$dir/a.json"
jq -e '.object == "chat.completion" and .usage.completion_tokens == 3 and .choices[0].finish_reason == "length"
       and (.choices[0].message.content | type) == "string"' "$dir/a.json" >/dev/null \
  || fail "chat completion: $(cat "$dir/a.json")"
curl -sSN "$BASE/v1/chat/completions" -H 'Content-Type: application/json' -d "$chat,\"stream\":true}" \
  > "$dir/s.txt"
[ "$(grep '^data: ' "$dir/s.txt" | tail -1)" = "data: [DONE]" ] || fail "stream without [DONE]"
streamed=$(grep '^data: {' "$dir/s.txt" | sed 's/^data: //' | jq -j '.choices[0].delta.content // ""')
[ "$streamed" = "$(jq -j '.choices[0].message.content' "$dir/a.json")" ] \
  || fail "streamed text differs from the whole reply"
post /v1/completions '{"prompt":"Once","max_tokens":2}' | jq -e '.choices[0].text | type == "string"' \
  >/dev/null || fail "completion"
curl -sSf "$BASE/v1/models" | jq -e '.data[0].id == "gpt-oss"' >/dev/null || fail "models"
curl -sSf "$BASE/metrics" | grep -q '^gptoss_completion_tokens_total 8$' || fail "metrics"
code=$(curl -sS -o "$dir/e.json" -w '%{http_code}' "$BASE/v1/chat/completions" -d '{bad')
[ "$code" = 400 ] || fail "malformed JSON gave HTTP $code"
jq -e '.error.message | test("not valid JSON")' "$dir/e.json" >/dev/null || fail "error JSON: $(cat "$dir/e.json")"
curl -sSf "$BASE/health" >/dev/null || fail "not serving after a bad request"

# SIGTERM while a stream runs: it ends with [DONE], then the server exits 0.
curl -sSN "$BASE/v1/chat/completions" -H 'Content-Type: application/json' \
  -d "$chat,\"max_tokens\":6,\"stream\":true}" > "$dir/t.txt" &
curl_pid=$!
for _ in $(seq 600); do grep -q '^data: ' "$dir/t.txt" 2>/dev/null && break; sleep 0.1; done
rc=0
stop_server || rc=$?
wait "$curl_pid" || fail "the stream's curl failed"
[ "$rc" = 0 ] || fail "serve exited $rc after SIGTERM"
[ "$(grep '^data: ' "$dir/t.txt" | tail -1)" = "data: [DONE]" ] || fail "the stream was cut by SIGTERM"
grep -q "SIGTERM: finishing the running request" "$dir/serve.err" || fail "no shutdown message"
echo "serve_curl: all checks passed"
