#!/usr/bin/env bash
# CI step for the HIP/ROCm build: configures build-hip/ with -DGPTOSS_GPU=HIP and builds the GPU
# targets (the device-op tests, the megakernel, the engine in the CLI, the GEMV bench) with
# Debian 12's hipcc + libamdhip64-dev (ROCm 5.2.3), installing them first if missing.
# Compile only: there is no AMD GPU in CI, so nothing is run. Prints the wall time.
# Usage: bash scripts/ci_hip.sh [extra cmake configure args, e.g. -DCMAKE_HIP_ARCHITECTURES=gfx908]
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

bash scripts/setup.sh  # the build's other Debian packages (cmake, ninja, fmt, ...); idempotent
PKGS=(hipcc libamdhip64-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "ci_hip: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build-hip -G Ninja -DGPTOSS_GPU=HIP "$@"
cmake --build build-hip -j "$(nproc)" --target gptoss test_gpu bench_gemv
echo "ci_hip: HIP targets built for $(sed -n 's/^CMAKE_HIP_ARCHITECTURES:[A-Z]*=//p' \
  build-hip/CMakeCache.txt) (compile only, not run) in $(($(date +%s) - start)) s wall time"
