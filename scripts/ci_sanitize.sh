#!/usr/bin/env bash
# CI step of issue #10 (docs/RELIABILITY.md): host code under AddressSanitizer +
# UndefinedBehaviorSanitizer and the libFuzzer targets, CPU only (no GPU needed).
#   1. build-asan/: gcc, -DGPTOSS_GPU=OFF -DGPTOSS_SANITIZE=ON, then `ctest -L cpu` (must be clean);
#   2. build-fuzz/: clang, -DGPTOSS_FUZZ=ON, then every fuzz/<target>.cpp for FUZZ_SECONDS each
#      (default 20) from its seed corpus fuzz/corpus/<target>/ (copied: the repo is not written).
# A crash leaves its input in build-fuzz/crashes/<target>/; keep it under fuzz/regressions/<target>/
# after the fix (test_cpu replays that folder in every build). Installs clang, libclang-rt-14-dev
# and llvm-14 (symbolizer) with apt-get only when missing. Prints the wall time of each step.
# Usage: bash scripts/ci_sanitize.sh [--no-fuzz] [--no-tests]   (env: FUZZ_SECONDS, JOBS)
set -euo pipefail
cd "$(dirname "$0")/.."
run_tests=1 run_fuzz=1
for arg in "$@"; do
  case "$arg" in
    --no-fuzz) run_fuzz=0 ;;
    --no-tests) run_tests=0 ;;
    *) echo "usage: $0 [--no-fuzz] [--no-tests]" >&2; exit 2 ;;
  esac
done
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
JOBS=${JOBS:-$(nproc)}
script_start=$(date +%s)
step_start=$script_start
step() {  # step NAME: prints the wall time of the previous step
  local now; now=$(date +%s)
  [ -n "${step_name:-}" ] && echo "ci_sanitize: step '$step_name' took $((now - step_start)) s"
  step_name=$1 step_start=$now
  echo "ci_sanitize: == $1"
}

step "setup"
bash scripts/setup.sh
PKGS=(clang libclang-rt-14-dev llvm-14)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "ci_sanitize: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
SYMBOLIZER=$(command -v llvm-symbolizer || echo /usr/lib/llvm-14/bin/llvm-symbolizer)
export ASAN_SYMBOLIZER_PATH=$SYMBOLIZER
# Leaks are checked too (LeakSanitizer is part of ASan on Linux).
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

if ((run_tests)); then
  step "asan+ubsan build (build-asan, gcc -O1)"
  cmake -S . -B build-asan -G Ninja -DGPTOSS_GPU=OFF -DGPTOSS_SANITIZE=ON \
        -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -g1" >/dev/null
  cmake --build build-asan -j "$JOBS"

  step "asan+ubsan ctest -L cpu"
  (cd build-asan && ctest -L cpu --output-on-failure -j "$JOBS")
fi

if ((run_fuzz)); then
  step "fuzz build (build-fuzz, clang -O1)"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DGPTOSS_GPU=OFF -DGPTOSS_FUZZ=ON \
        -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -gline-tables-only" >/dev/null
  cmake --build build-fuzz -j "$JOBS" --target fuzz_all

  failed=()
  for dir in fuzz/corpus/*/; do
    t=$(basename "$dir")
    step "fuzz $t (${FUZZ_SECONDS} s)"
    work=build-fuzz/work/$t crashes=build-fuzz/crashes/$t
    rm -rf "$work"
    mkdir -p "$work" "$crashes"
    cp "$dir"* "$work"/
    # -rss_limit_mb: the tokenizer targets hold the 200k-token tables (about 0.5 GB with ASan).
    if ! build-fuzz/fuzz/fuzz_"$t" "$work" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
         -rss_limit_mb=4096 -max_len=200000 -print_final_stats=1 \
         -artifact_prefix="$crashes/" 2>build-fuzz/fuzz_"$t".log; then
      failed+=("$t")
      tail -n 60 build-fuzz/fuzz_"$t".log
    fi
    grep -E "^stat::number_of_executed_runs|^#[0-9]+.*DONE" build-fuzz/fuzz_"$t".log | tail -n 2 || true
  done
fi
step "done"
echo "ci_sanitize: total $(( $(date +%s) - script_start )) s"
if ((run_fuzz)) && ((${#failed[@]})); then
  echo "ci_sanitize: fuzz targets failed: ${failed[*]} (inputs in build-fuzz/crashes/)" >&2
  exit 1
fi
