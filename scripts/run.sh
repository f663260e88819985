#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, writes the tiny synthetic
# checkpoint (real widths and vocabulary, 4 layers, 8 experts; meaningless weights), converts it
# to an archive and decodes greedily from a harmony prompt: on the GPU when one is usable,
# otherwise on the CPU reference. Extra arguments go to `gptoss generate`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
mkdir -p out
if [ ! -f out/tiny-ckpt/model.safetensors.index.json ]; then
  ./build/gptoss synth --shape tiny --seed 1 -o out/tiny-ckpt
fi
if [ ! -f out/tiny.gptoss ]; then
  ./build/gptoss convert out/tiny-ckpt -o out/tiny.gptoss
fi
# --raw: the synthetic weights never produce harmony channel headers, so print the raw text.
./build/gptoss generate -m out/tiny.gptoss -p "The capital of France is" --raw -n 24 "$@"
echo
