#!/usr/bin/env bash
# GPU figures for the README, recorded with the card's name and the pinned versions:
#   - training: whisper-small (random weights, same FLOPs), bf16, full and LoRA fine-tuning: padded 30 s
#     inputs at batch 32/64, and un-padded 5 s clips at batch 128/256 (FLOPs counted from the input fed);
#     samples/s and model-FLOPs utilisation; one padded run with torch.compile
#   - eval: whisper-base-sized RTFx at batch 64, fp16, ours vs faster-whisper's CTranslate2 model on the same
#     batches: random weights generating a fixed 32 tokens per clip (no model files needed on the GPU
#     machine), padded and un-padded; with pretrained/whisper-base(-ct2) present, the real model too
#   - loader: dataloader workers needed to feed the un-padded full fine-tuning rate measured above
#
# Usage: bash bench/gpu.sh [results.txt]
set -euo pipefail
cd "$(dirname "$0")/.."
. local/path.sh   # .venv/ where it exists; a GPU machine's own python3 otherwise
out=${1:-/dev/stdout}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers, ctranslate2; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'ctranslate2', ctranslate2.__version__)"
  for lora in false true; do
    for batch in 32 64; do
      python3 bench/bench_train.py --model_size small --dtype bf16 --batch_size "$batch" --steps 10 --warmup 3 --lora "$lora"
    done
    for batch in 128 256; do
      line=$(python3 bench/bench_train.py --model_size small --dtype bf16 --batch_size "$batch" --steps 10 \
        --warmup 3 --lora "$lora" --unpadded_seconds 5 2>&1 | grep -v -i "warn")
      echo "$line"
      [ "$lora" = false ] && unpadded_rate=$(sed -n 's/.*: \([0-9.]*\) samples\/s.*/\1/p' <<< "$line" | tail -1)
    done
  done
  # the dataloader workers (this machine's CPU) one such GPU needs: bench_loader's per-worker rate
  if command -v espeak-ng > /dev/null && [ -n "${unpadded_rate:-}" ]; then
    python3 bench/bench_loader.py --consumer_samples_per_s "$unpadded_rate" \
      --consumer "this GPU, un-padded whisper-small 5 s clips, full fine-tuning bf16 batch 256 (measured above)"
  else
    echo "loader rows skipped: espeak-ng (bench corpus) missing or no un-padded training rate"
  fi
  python3 bench/bench_train.py --model_size small --dtype bf16 --batch_size 64 --steps 10 --warmup 5 --compile true
  python3 bench/bench_eval.py --random_size base --decode_tokens 32 --device cuda --dtype float16 --batch_size 64 \
    --num_utts 256
  if [ -f pretrained/whisper-base/config.json ] && [ -f pretrained/whisper-base-ct2/model.bin ]; then
    python3 bench/bench_eval.py --model pretrained/whisper-base --device cuda --dtype float16 --batch_size 64 \
      --num_utts 256
  else
    echo "real whisper-base eval skipped: pretrained/whisper-base(-ct2) missing (local/get_whisper_base.py; egrecho export-ct2)"
  fi
} 2>&1 | grep -v -i "warn" | tee "$out"
