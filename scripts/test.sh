#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every test with ctest
# (gpu-labelled tests show as skipped on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd build && ctest --output-on-failure -j "$(nproc)"
