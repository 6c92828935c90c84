#!/usr/bin/env bash
# GPU training figures for the README: whisper-small (random weights, same FLOPs), bf16, full and
# LoRA fine-tuning, samples/s and model-FLOPs utilisation, with the card's name.
#
# Usage: bash bench/gpu.sh [results.txt]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/dev/stdout}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  for lora in false true; do
    for batch in 32 64; do
      python3 bench/bench_train.py --model_size small --dtype bf16 --batch_size "$batch" --steps 10 --warmup 3 --lora "$lora"
    done
  done
} 2>&1 | grep -v -i "warn" | tee "$out"
