#!/usr/bin/env bash
# bench_tokenizer.sh [GPTOSS_BINARY] [MB] — encode speed of gptoss's tokenizer beside
# js-tiktoken on the same text, in one run: MB megabytes (default 2) of mixed text (prose, code,
# CJK and other scripts, emoji; tests/js/text_gen.mjs) and of English prose + code. gptoss checks
# its ids against js-tiktoken's before reporting. Needs node (scripts/setup.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${1:-$root/build/gptoss}")
mb=${2:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root/tests/js"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
for kinds in english,english,english,code,code,cjk,other,emoji english,code; do
  echo "== $mb MB of $kinds"
  node bench.mjs make "$tmp/text.txt" "$mb" "$kinds"
  node bench.mjs encode "$tmp/text.txt" "$tmp/ids.txt"
  "$bin" tokenizer-bench "$tmp/text.txt" --ids "$tmp/ids.txt"
done
