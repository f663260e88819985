# lib_steps.sh — sourced by the GPU-machine scripts: `step NAME TIMEOUT CMD...` runs CMD with a
# time limit, logs its output to $OUT/NAME.log and appends "NAME: rc=..., T s" to $OUT/steps.txt.
OUT=${OUT:-$PWD/out}
# Shared libraries staged beside the carried binaries (scripts/stage_gpu_bin.sh).
if [ -d "${BIN:-.gl/bin}/lib" ]; then
  export LD_LIBRARY_PATH=$(cd "${BIN:-.gl/bin}/lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
mkdir -p "$OUT"
start=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() {
  local name=$1 limit=$2
  shift 2
  local t0
  t0=$(date +%s.%N)
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: rc=$rc, $(elapsed "$t0") s (at $(elapsed "$start") s)" | tee -a "$OUT/steps.txt"
  return $rc
}
machine_info() {
  {
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv
    lscpu | grep -E "Model name|^CPU\(s\)"
  } >"$OUT/machine.txt" 2>&1
  cat "$OUT/machine.txt"
}
# sanitize_tiny GPTOSS: compute-sanitizer memcheck, racecheck and synccheck on a short tiny
# decode (the command is recorded in $OUT/sanitizer_command.txt).
sanitize_tiny() {
  local cs cmd
  cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  cmd=("$1" generate --synthetic tiny --seed 1 --backend cuda --tokens 1,2,3 -n 2)
  echo "compute-sanitizer --tool T ${cmd[*]}" >"$OUT/sanitizer_command.txt"
  step memcheck 90 "$cs" --tool memcheck --error-exitcode 1 "${cmd[@]}"
  step racecheck 120 "$cs" --tool racecheck --error-exitcode 1 "${cmd[@]}"
  step synccheck 90 "$cs" --tool synccheck --error-exitcode 1 "${cmd[@]}"
}
