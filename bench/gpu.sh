#!/usr/bin/env bash
# GPU figures, written with the card's name and the package versions to bench/RESULTS-gpu.md:
#   - eval: the decoder loop (bench_decode.py): random-weight whisper-base, fp16, batch 64, 5 s clips, 32 tokens per
#     clip: plain HF generate vs ours padded, un-padded, and with the static decoder (CUDA graphs)
#   - training (bench_train.py): whisper-small random weights, bf16: full and LoRA (the recipe's r 32, dropout
#     0.05), 30 s padded batch 64 and 5 s un-padded batch 256, compiled (the default on CUDA) and eager, samples/s
#     and model-FLOPs utilisation; a profile of the LoRA step
#   - rows that need what the machine lacks (espeak-ng for the loader's corpus, ctranslate2 for faster-whisper,
#     pretrained/whisper-base) are skipped with a line saying why; a row that fails or runs over its time says so
#     and the script goes on
# A bare GPU machine (torch, no registry): carry the wheels bench/gpu_wheels.sh downloads (bench/README.md says how).
#
# Usage: bash bench/gpu.sh [wheels_dir=.whl] [results=bench/RESULTS-gpu.md]
# A whole run takes about 20 minutes on an H200 (estimated: each compiled training row compiles for 1-4 minutes).
set -uo pipefail
cd "$(dirname "$0")/.."
wheels=${1:-.whl}
results=${2:-bench/RESULTS-gpu.md}
[ -f .venv/bin/activate ] && . local/path.sh   # else the machine's own python3
if compgen -G "$wheels/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/egrecho-site "$wheels"/*.whl \
    && export PYTHONPATH=/tmp/egrecho-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
log=${GPU_LOG:-$(mktemp)}  # GPU_LOG: keep the rows as they come (a run stopped early still has them)
[ -z "${GPU_LOG:-}" ] && trap 'rm -f "$log"' EXIT

# row TITLE SECONDS COMMAND...: run one bench with a time limit; its output goes to the log whatever happens
# GPU_ROWS=regex: only the rows whose title matches (e.g. GPU_ROWS='LoRA.*compiled|un-padded' for the rows a
# stopped run did not reach)
row() {
  local title=$1 limit=$2; shift 2
  if [ -n "${GPU_ROWS:-}" ] && ! [[ $title =~ $GPU_ROWS ]]; then return 0; fi
  echo "### $title" | tee -a "$log"
  timeout "$limit" "$@" 2>&1 | grep --line-buffered -v -i -E "warn|deprecat" | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] && echo "row stopped: over its ${limit} s" | tee -a "$log"
  [ "$rc" != 0 ] && [ "$rc" != 124 ] && echo "row failed (exit $rc)" | tee -a "$log"
  return 0
}
skip() { echo "### $1" >> "$log"; echo "skipped: $2" | tee -a "$log"; }

versions() {
  echo "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2> /dev/null || echo 'no nvidia-smi'),"
  python3 -c "import torch, transformers, peft; print(f'torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}.')" 2>&1 | tail -1
}
versions | tee -a "$log"   # first, so that a run stopped early still says where it ran
gen=(--model_size base)
[ -f "$wheels/whisper-generation/generation_config.json" ] && gen+=(--generation_config "$wheels/whisper-generation")
train=(python3 bench/bench_train.py --model_size small --dtype bf16 --steps 10 --warmup 3)
row "eval: decoder loop, whisper-base fp16, batch 64, 5 s clips" 240 \
  python3 bench/bench_decode.py --dtype float16 --batch_size 64 --clip_seconds 5 "${gen[@]}"
row "training: full, 30 s padded, batch 64, compiled (default)" 180 "${train[@]}" --batch_size 64 --compile true
row "training: LoRA, 30 s padded, batch 64, compiled (default)" 300 "${train[@]}" --batch_size 64 --compile true --lora true
row "training: full, 30 s padded, batch 64, eager" 60 "${train[@]}" --batch_size 64
row "training: LoRA, 30 s padded, batch 64, eager" 60 "${train[@]}" --batch_size 64 --lora true
row "training: LoRA, 30 s padded, batch 64, eager, dropout 0, no fp32 input cast" 60 \
  "${train[@]}" --batch_size 64 --lora true --lora_dropout 0 --lora_cast_input false
row "training: full, 5 s un-padded, batch 256, compiled (default)" 180 \
  "${train[@]}" --batch_size 256 --unpadded_seconds 5 --compile true
row "training: LoRA, 5 s un-padded, batch 256, compiled (default)" 300 \
  "${train[@]}" --batch_size 256 --unpadded_seconds 5 --compile true --lora true
row "profile: LoRA, 30 s padded, batch 64, eager (top operators by device time)" 120 \
  "${train[@]}" --batch_size 64 --lora true --steps 2 --warmup 1 --profile 2
if command -v espeak-ng > /dev/null; then
  row "loader: workers one such GPU needs" 300 python3 bench/bench_loader.py --consumer_samples_per_s 1300 \
    --consumer "un-padded whisper-small 5 s clips, full fine-tuning bf16 (this script's target)"
else
  skip "loader" "espeak-ng (the bench corpus) is not installed"
fi
if python3 -c "import ctranslate2, faster_whisper" 2> /dev/null && [ -f pretrained/whisper-base/config.json ]; then
  row "eval: real whisper-base vs faster-whisper" 300 python3 bench/bench_eval.py --model pretrained/whisper-base \
    --device cuda --dtype float16 --batch_size 64 --num_utts 256
else
  skip "eval: real whisper-base vs faster-whisper" "needs ctranslate2 + faster-whisper with CUDA and pretrained/whisper-base"
fi

# the report: card, versions, the command, then every row's output
{
  echo "# GPU benchmark results"
  echo
  echo "Written by \`bash bench/gpu.sh\` on $(date -u +%Y-%m-%d) at commit ${GIT_COMMIT:-$(python3 -c 'from egrecho_inner.utils import git_commit; print(git_commit())')}:"
  versions
  echo "Random weights of the real models' sizes; training rows: 10 timed steps after 3 warm-up steps (which hold the"
  echo "compilation); eval rows: 4 timed batches after 3 warm-up batches. See bench/README.md for how to read them."
  echo
  echo '```'
  cat "$log"
  echo '```'
} > "$results.tmp" && mv "$results.tmp" "$results"
echo "wrote $results"
