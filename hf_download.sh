#!/usr/bin/env bash
# Download a model from the Hugging Face hub for offline use.
#
# Usage: bash hf_download.sh openai/whisper-small [pretrained/whisper-small]
#
# Honours HF_ENDPOINT (a mirror) and HF_TOKEN. Only the safetensors weights are fetched (not the
# TensorFlow, Flax or duplicate PyTorch .bin copies). Then: bash finetune.sh --model_name whisper-small
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -lt 1 ] && exit 1 || exit 0
fi
. "$(dirname "$0")/local/path.sh"   # huggingface_hub from the recipe's Python env
repo_id=$1
local_dir=${2:-pretrained/$(basename "$repo_id")}

python3 - "$repo_id" "$local_dir" <<'PY'
import sys

from huggingface_hub import snapshot_download

repo_id, local_dir = sys.argv[1], sys.argv[2]
try:
    path = snapshot_download(
        repo_id,
        local_dir=local_dir,
        ignore_patterns=["*.h5", "*.msgpack", "*.ot", "flax_model*", "tf_model*", "*.onnx", "pytorch_model*.bin"],
    )
except Exception as e:  # offline, unknown repo, no access: one clear line instead of a traceback
    sys.exit(f"hf_download.sh: could not download {repo_id}: {type(e).__name__}: {str(e).splitlines()[0]}\n"
             "Check the network (or set HF_ENDPOINT to a mirror) and the repo id.")
print(f"downloaded {repo_id} to {path}")
PY
