#!/usr/bin/env bash
# One script for GPU work (the GPU machine has no package manager and keeps nothing).
#
#   here:            bash scripts/gpu_job.sh prepare
#                      downloads the Debian -dev packages the build needs into .deps/ (ignored by git)
#   on the GPU host: bash scripts/gpu_job.sh run [--no-tests] [--target T]... [--] [COMMAND...]
#                      unpacks .deps/ into a prefix, configures build-gpu/ (CUDA, sm_90a, Release),
#                      builds with ninja, runs the gpu-labelled tests (unless --no-tests), then runs
#                      COMMAND (a shell string run from the repo root with $BUILD set), and leaves
#                      logs and results in $OUT (or ./out when OUT is unset).
# With the device tool: run(command="bash scripts/gpu_job.sh run -- './build-gpu/bench_gemv'",
#                           carry=[".deps"]).
set -euo pipefail
cd "$(dirname "$0")/.."
DEB_PACKAGES=(libfmt-dev libfmt9 libcli11-dev catch2 nlohmann-json3-dev libxxhash-dev libpcre2-dev
              libpcre2-8-0)

prepare() {
  mkdir -p .deps
  (cd .deps && apt-get download "${DEB_PACKAGES[@]}")
  ls -la .deps
}

run() {
  local tests=1 targets=() cmd=""
  while (($#)); do
    case "$1" in
      --no-tests) tests=0 ;;
      --target) targets+=("$2"); shift ;;
      --) shift; cmd="$*"; break ;;
      *) echo "gpu_job: unknown option $1" >&2; exit 2 ;;
    esac
    shift
  done
  OUT=${OUT:-$PWD/out}
  mkdir -p "$OUT"
  local prefix=/tmp/gptoss-deps
  mkdir -p "$prefix"
  for f in .deps/*.deb; do dpkg -x "$f" "$prefix"; done
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem \
      --format=csv | tee "$OUT/device.txt"
  export BUILD=build-gpu
  local t0=$(date +%s)
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGPTOSS_GPU=CUDA \
        -DCMAKE_CUDA_ARCHITECTURES=90a -DGPTOSS_DEPS_PREFIX="$prefix" >"$OUT/configure.log" 2>&1 \
    || { tail -40 "$OUT/configure.log"; exit 1; }
  if ((${#targets[@]})); then
    ninja -C "$BUILD" -j16 "${targets[@]}" >"$OUT/build.log" 2>&1 || { grep -B2 -A20 -m3 "error" "$OUT/build.log" | head -80; exit 1; }
  else
    ninja -C "$BUILD" -j16 >"$OUT/build.log" 2>&1 || { grep -B2 -A20 -m3 "error" "$OUT/build.log" | head -80; exit 1; }
  fi
  echo "gpu_job: build took $(( $(date +%s) - t0 )) s"
  local rc=0
  if ((tests)); then
    (cd "$BUILD" && ctest -L gpu --output-on-failure) 2>&1 | tee "$OUT/gpu_tests.log" || rc=1
  fi
  if [ -n "$cmd" ]; then
    echo "gpu_job: running: $cmd"
    bash -c "$cmd" || rc=1
  fi
  return $rc
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
