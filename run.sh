#!/usr/bin/env bash
# Quick start on a fresh machine: install, synthesise the Vietnamese demo corpus with espeak-ng,
# and prepare it (manifests, 80-mel Whisper fbank, statistics). Rerunning reuses finished stages.
#
# Usage: bash run.sh
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 PIP_ROOT_USER_ACTION=ignore

bash local/install_deps.sh

if [ ! -f data/kaldi/demo/.done ]; then
  python3 local/make_demo_data.py --out_dir data/kaldi/demo --languages vi \
    --num_train 200 --num_val 20 --num_test 40
  touch data/kaldi/demo/.done
fi
bash prepare.sh --kaldi_dir data/kaldi/demo --prefix demo_vi --nj 2
