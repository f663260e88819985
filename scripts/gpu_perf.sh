#!/usr/bin/env bash
# One megakernel iteration on the GPU machine in a single call: correctness first (the
# [megakernel] tests against the CPU reference, compute-sanitizer on tiny), then TPOT on
# synthetic weights and the per-phase profile. Binaries are built on the development machine and
# staged by scripts/stage_gpu_bin.sh (CUDA 13, sm_90a), then carried, which saves device time:
#   run(command="bash scripts/gpu_perf.sh", carry=[".gl/bin"])
# Environment (defaults): BIN (.gl/bin), TESTS ("[megakernel]"; empty skips), SANITIZE (1),
# SHAPES ("20b 120b"), CONTEXTS (1024,8192), EXPERTS (bf16,fp8), PROFILE (1: the kernel's phase
# timeline, `bench tpot --phase-times`, of every shape at context 1024), BENCH_FLAGS (extra
# `bench tpot` options for the TPOT runs, e.g. --phase-times). Logs and steps.txt land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.gl/bin}
source scripts/lib_steps.sh
TESTS=${TESTS-[megakernel]}
SANITIZE=${SANITIZE:-1}
SHAPES=${SHAPES:-20b 120b}
CONTEXTS=${CONTEXTS:-1024,8192}
EXPERTS=${EXPERTS:-bf16,fp8}
PROFILE=${PROFILE:-1}
BENCH_FLAGS=${BENCH_FLAGS:-}
machine_info
"$BIN/gptoss" --version >>"$OUT/machine.txt" 2>&1

[ -n "$TESTS" ] && step tests 300 "$BIN/test_gpu" "$TESTS"
[ "$SANITIZE" = 1 ] && sanitize_tiny "$BIN/gptoss"
for shape in $SHAPES; do
  step "bench_$shape" 400 "$BIN/gptoss" bench tpot --synthetic "$shape" --experts "$EXPERTS" \
    --context "$CONTEXTS" -n 128 --json $BENCH_FLAGS
done
if [ "$PROFILE" = 1 ]; then
  for shape in $SHAPES; do
    step "phases_$shape" 120 "$BIN/gptoss" bench tpot --synthetic "$shape" --experts "$EXPERTS" \
      --context 1024 -n 128 --phase-times
  done
fi
echo "total: $(elapsed "$start") s" | tee -a "$OUT/steps.txt"
