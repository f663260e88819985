#!/usr/bin/env bash
# Configures and builds into build/ (CUDA backend when nvcc is found, else CPU-only).
# Extra arguments go to cmake's configure step, e.g. -DGPTOSS_GPU=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
cmake -S . -B build -G Ninja "$@" >/dev/null
cmake --build build -j "$(nproc)"
