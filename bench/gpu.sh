#!/usr/bin/env bash
# GPU figures for the README, recorded with the card's name:
#   - training: whisper-small (random weights, same FLOPs), bf16, full and LoRA fine-tuning, batch 32/64,
#     samples/s and model-FLOPs utilisation
#   - eval: whisper-base RTFx at batch 64, fp16, ours vs faster-whisper's CTranslate2 model on the same
#     batches (needs pretrained/whisper-base and pretrained/whisper-base-ct2 on the GPU machine; skipped,
#     saying so, when they are missing)
#
# Usage: bash bench/gpu.sh [results.txt]
set -euo pipefail
cd "$(dirname "$0")/.."
. local/path.sh   # .venv/ where it exists; a GPU machine's own python3 otherwise
out=${1:-/dev/stdout}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  for lora in false true; do
    for batch in 32 64; do
      python3 bench/bench_train.py --model_size small --dtype bf16 --batch_size "$batch" --steps 10 --warmup 3 --lora "$lora"
    done
  done
  if [ -f pretrained/whisper-base/config.json ] && [ -f pretrained/whisper-base-ct2/model.bin ]; then
    python3 bench/bench_eval.py --model pretrained/whisper-base --device cuda --dtype float16 --batch_size 64 \
      --num_utts 256
  else
    echo "eval RTFx skipped: pretrained/whisper-base(-ct2) missing (local/get_whisper_base.py; egrecho export-ct2)"
  fi
} 2>&1 | grep -v -i "warn" | tee "$out"
