#!/usr/bin/env bash
# New-language demo: teach whisper-base Esperanto (eo), a language Whisper was not trained on.
#   1. synthesise an Esperanto corpus with espeak-ng          (local/make_demo_data.py --languages eo)
#   2. prepare it, declaring the new code                     (prepare.sh --new_language eo)
#   3. baseline: the original model, decoding as Spanish      (egrecho eval --gen_args.language es)
#   4. LoRA fine-tune adding <|eo|> (row copied from <|es|>), un-padded, merge, evaluate (un-padded) with eo
#   5. write the before/after table                           (exp/whisper-base/lora_eo/RESULTS.md)
# Needs the quick start's install and pretrained/whisper-base (bash run.sh, or its first two steps).
# Rerunning reuses finished stages. Usage: bash local/run_new_language.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
. local/path.sh   # the recipe's Python env (.venv/ from local/install_deps.sh)
start=$(date +%s)
kaldi=data/kaldi/demo_eo
exp=exp/whisper-base/lora_eo

if [ ! -f $kaldi/.done ]; then
  python3 local/make_demo_data.py --out_dir $kaldi --languages eo --num_train 200 --num_val 20 --num_test 40
  touch $kaldi/.done
fi
bash prepare.sh --kaldi_dir $kaldi --prefix demo_eo --new_language eo --nj 2

if [ ! -f $exp/orig/errs-test.json ]; then  # whisper-base has no <|eo|>: score it as Spanish, its closest guess
  mkdir -p $kaldi/test_as_es && cp $kaldi/test/{wav.scp,text} $kaldi/test_as_es/
  egrecho eval -c config/eval.yaml --model_path pretrained/whisper-base --outdir $exp/orig \
    --kaldi_dir $kaldi/test_as_es --gen_args.language es --num_workers 1
fi
bash finetune.sh --model_name whisper-base --is_lora true --prefix demo_eo --exp_dir $exp \
  --train_config config/demo_lora.yaml -- --new_language eo --new_language_init es --max_steps 60

python3 local/write_results.py --name base-lora-eo --model pretrained/whisper-base \
  --original $exp/orig/errs-test.json --tuned $exp/errs-test.json \
  --output $exp/RESULTS.md --wall_seconds $(( $(date +%s) - start )) \
  --notes "New language: espeak-ng Esperanto (eo), 200 train / 20 val / 40 test utterances; before = whisper-base decoding as es; after = LoRA + <|eo|> (init from <|es|>), un-padded batches, 60 steps."
