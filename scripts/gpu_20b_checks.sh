#!/usr/bin/env bash
# Full-scale checks on the GPU machine (one call; results and logs under $OUT):
#   1. `gptoss synth --shape 20b --seed 7` (HF layout) and `gptoss convert` of it: throughput.
#   2. transformers 5.x loads the same checkpoint (BF16 on an H100, FP32 on an H200) and records teacher-forced
#      logits over 140 positions + 8 greedy steps (tests/fixtures/make_hf_fixture.py --precision).
#   3. test_gpu "[.full]": --synthetic 20b == the uploaded archive (XXH64 per tensor), upload
#      throughput, and the megakernel's greedy decoding against the CPU reference on this machine's
#      CPUs (tests/gpu_test_20b.cpp).
#   4. test_cpu "[.e2e_archive]": the CPU reference against the transformers fixture of step 2.
# The binaries are built on the development machine (same CUDA 13, sm_90a) and carried in
# $BIN (default .gl/bin: gptoss, test_gpu, test_cpu), which saves the build's device time:
#   run(command="bash scripts/gpu_20b_checks.sh", carry=[".gl/bin"])            (H100, BF16)
#   run(command="PRECISION=fp32 BENCH='20b 120b' bash scripts/gpu_20b_checks.sh", kind=nvidia-h200)
#   run(command="HF=0 SUITE=1 SANITIZE=1 bash scripts/gpu_20b_checks.sh", ...)  (+ the whole gpu
#     test suite and compute-sanitizer memcheck/racecheck/synccheck on tiny, logs in $OUT)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.gl/bin}
source scripts/lib_steps.sh
SHAPE=${SHAPE:-20b}
SEED=${SEED:-7}
PRECISION=${PRECISION:-bf16}  # transformers: bf16 fits an H100, fp32 needs an H200
FIXTURE=$OUT/hf_${SHAPE}_seed${SEED}_${PRECISION}.json
HF=${HF:-1}            # 0: skip the transformers fixture and the [.e2e_archive] comparison
SUITE=${SUITE:-0}      # 1: also run the whole default gpu test suite (alongside synth/convert)
SANITIZE=${SANITIZE:-0}  # 1: also compute-sanitizer memcheck, racecheck, synccheck on tiny
CK=/tmp/ck-$SHAPE
AR=/tmp/$SHAPE.gptoss
machine_info
{ df -h /tmp | tail -1; free -g | head -2; } | tee -a "$OUT/machine.txt"

if [ "$SUITE" = 1 ]; then
  step gpu_suite 400 "$BIN/test_gpu" &
  suite_pid=$!
fi
if [ "$SANITIZE" = 1 ]; then
  sanitize_tiny "$BIN/gptoss" &
  san_pid=$!
fi
step synth 120 "$BIN/gptoss" synth --shape "$SHAPE" --seed "$SEED" -o "$CK" || exit 1
du -sb "$CK" | tee -a "$OUT/steps.txt"

# transformers (GPU, ~42 GB in BF16) and convert + the engine checks (CPU, then GPU) in parallel.
[ "$HF" = 1 ] && step hf_fixture 240 python3 tests/fixtures/make_hf_fixture.py --checkpoint "$CK" --shape "$SHAPE" \
  --seed "$SEED" --positions 140 --full-rows 0,139 --greedy 8 --precision "$PRECISION" \
  --out "$FIXTURE" &
hf_pid=$!

if step convert 120 "$BIN/gptoss" convert "$CK" -o "$AR" --no-tokenizer; then
  ls -l "$AR" | tee -a "$OUT/steps.txt"
  # the upload throughput is measured on an otherwise idle machine
  [ "$SUITE" = 1 ] && wait "$suite_pid"
  [ "$SANITIZE" = 1 ] && wait "$san_pid"
  step full_gpu 180 env GPTOSS_FULL_ARCHIVE="$AR" GPTOSS_FULL_SEED="$SEED" GPTOSS_FULL_STEPS=32 \
    "$BIN/test_gpu" "[.full]"
fi
wait
if [ -f "$FIXTURE" ] && [ -f "$AR" ]; then
  step e2e_archive 200 env GPTOSS_HF_FIXTURE="$FIXTURE" \
    GPTOSS_HF_ARCHIVE="$AR" "$BIN/test_cpu" "[.e2e_archive]"
fi
rm -rf "$CK" "$AR"
if [ -n "${BENCH:-}" ]; then  # e.g. BENCH="20b 120b": TPOT on this device, synthetic weights
  for b in $BENCH; do
    step "bench_$b" 120 "$BIN/gptoss" bench tpot --synthetic "$b" --context 1024,8192 --json
  done
fi
echo "total: $(elapsed "$start") s" | tee -a "$OUT/steps.txt"
