#!/usr/bin/env bash
# run.sh TEST_CPU OUT.jsonl — the ctest `tokenizer_vs_js_tiktoken` (label cpu): installs
# js-tiktoken from package-lock.json (npm ci) when node_modules is missing or stale, writes the
# js-tiktoken corpus to OUT.jsonl, then runs the hidden Catch2 case "[js-tiktoken]" on it.
set -euo pipefail
test_cpu=$(realpath "$1")
out=$(realpath -m "$2")
cd "$(dirname "$0")"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "error: node and npm are needed for the js-tiktoken comparison" >&2
  echo "hint: run scripts/setup.sh (it installs Debian's nodejs and npm when node is missing)" >&2
  exit 1
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node make_corpus.mjs "$out"
GPTOSS_JS_CORPUS="$out" "$test_cpu" "[js-tiktoken]"
