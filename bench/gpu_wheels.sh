#!/usr/bin/env bash
# Wheels a bare GPU machine (Python 3.12 with torch, accelerate, tokenizers, huggingface_hub and numpy, but no
# registry) needs to run bench/gpu.sh: transformers and peft at the recipe's pins, lhotse and its small
# dependencies. About 20 MB; run on a machine that reaches PyPI, then copy the folder over.
#
# Usage: bash bench/gpu_wheels.sh [dir=.whl] [python_version=3.12]
# There: python3 -m pip install --no-index --no-deps --target /tmp/site <dir>/*.whl && export PYTHONPATH=/tmp/site
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.whl}
pyver=${2:-3.12}
mkdir -p "$dir"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
pins() { grep -E "^($1)==" requirements.txt; }
# binary wheels for that Python (pure ones match any)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
  "${platforms[@]}" -d "$dir" $(pins "transformers|peft|lhotse|lilcom") cytoolz soundfile cffi pycparser audioread
# intervaltree is published as source only: build its (pure Python) wheel here
python3 -m pip wheel -q --no-deps -w "$dir" intervaltree
du -sh "$dir" && ls "$dir"
# Whisper's generation config (language ids, ...) for bench_decode.py, which cannot build the tokenizer there
. local/path.sh
python3 -c "
from egrecho_inner.model import whisper_generation_config
from egrecho_inner.tokenizer import build_whisper_tokenizer
whisper_generation_config(build_whisper_tokenizer()).save_pretrained('$dir/whisper-generation')"
