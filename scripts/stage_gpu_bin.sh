#!/usr/bin/env bash
# Stages the binaries built here for the GPU machine: build/gptoss and build/tests/test_gpu (plus
# any extra files given) into .gl/bin/, and the shared libraries the GPU machine lacks
# (cpp-httplib and its brotli dependencies; it has libedit, libssl and libstdc++) into
# .gl/bin/lib/, which scripts/lib_steps.sh puts on LD_LIBRARY_PATH. Then:
#   run(command="bash scripts/gpu_perf.sh", carry=[".gl/bin"])
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gl/bin/lib
cp build/gptoss build/tests/test_gpu "$@" .gl/bin/
for lib in libcpp-httplib.so.0.11 libbrotlidec.so.1 libbrotlienc.so.1 libbrotlicommon.so.1; do
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
  if [ -n "$path" ]; then cp -L "$path" .gl/bin/lib/; fi
done
du -sh .gl/bin
