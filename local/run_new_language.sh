#!/usr/bin/env bash
# New-language demo: teach whisper-base Esperanto (eo), a language Whisper was not trained on.
#   1. natural Esperanto text: Zamenhof's proverbs from Debian's fortunes-eo (local/make_demo_text.py),
#      spoken by espeak-ng, text-disjoint train/val/test              (local/make_demo_data.py --languages eo)
#   2. prepare it, declaring the new code                             (prepare.sh --new_language eo)
#   3. baseline: the original model, decoding the test split as Spanish (egrecho eval --gen_args.language es)
#   4. LoRA fine-tune adding <|eo|> (row copied from <|es|>), un-padded, with the synthetic Vietnamese demo's English replay
#      and non-speech cuts; merge; evaluate un-padded with eo, on English (retention) and on non-speech clips
#   5. the before/after tables                                        (exp/whisper-base/lora_eo/RESULTS.md)
#   6. with --compare_padding true: the same fine-tune trained padded to 30 s (about an hour more on 2 cores),
#      evaluated padded, and the two runs side by side                (exp/whisper-base/lora_eo/PADDING.md)
# Needs the synthetic Vietnamese demo first (bash local/run_vi_demo.sh): its install, pretrained/whisper-base, the English and non-speech
# sets and the original model's scores on them (exp/whisper-base/orig). Rerunning reuses finished stages.
# Usage: bash local/run_new_language.sh [--compare_padding true]
set -euo pipefail
cd "$(dirname "$0")/.."
compare_padding=false
help_message="Usage: bash local/run_new_language.sh [--compare_padding true]"
run_command="bash local/run_new_language.sh${*:+ $*}"  # named with the commit in the results files it writes
. local/parse_options.sh
export HF_HUB_OFFLINE=1
. local/path.sh   # the recipe's Python env (.venv/ from local/install_deps.sh)
start=$(date +%s)
kaldi=data/kaldi/demo_eo
exp=exp/whisper-base/lora_eo
orig=exp/whisper-base/orig
fbank=data/fbank_whisper80
for need in pretrained/whisper-base $orig/errs-en.json $orig/errs-nonspeech.json \
    $fbank/demo_en_cuts_train.jsonl.gz $fbank/nonspeech_cuts_train.jsonl.gz; do
  [ -e $need ] || { echo "run_new_language.sh: $need is missing; run the synthetic Vietnamese demo first: bash local/run_vi_demo.sh" >&2; exit 1; }
done

stamped=(python3 -m egrecho_inner.stamps run)   # each step reruns only when its inputs or command changed
"${stamped[@]}" data/text/.eo.stamp.json --outputs data/text/eo.txt --inputs local/make_demo_text.py -- \
  python3 local/make_demo_text.py --language eo --output data/text/eo.txt
"${stamped[@]}" $kaldi/.stamp.json --outputs $kaldi --inputs local/make_demo_data.py data/text/eo.txt -- \
  python3 local/make_demo_data.py --out_dir $kaldi --languages eo --sentences data/text/eo.txt \
    --num_train 800 --num_val 20 --num_test 60
bash prepare.sh --kaldi_dir $kaldi --prefix demo_eo --new_language eo --nj 2

eval_opts=(-c config/eval.yaml --num_workers 1 --gen_args.max_new_tokens 120)
# whisper-base has no <|eo|>: score it as Spanish, its closest guess
mkdir -p $kaldi/test_as_es && cp $kaldi/test/{wav.scp,text} $kaldi/test_as_es/
"${stamped[@]}" $exp/orig/.eval-test.stamp.json --outputs $exp/orig/errs-test.json \
  --inputs pretrained/whisper-base $kaldi/test_as_es -- \
  egrecho eval "${eval_opts[@]}" --model_path pretrained/whisper-base --outdir $exp/orig \
    --kaldi_dir $kaldi/test_as_es --gen_args.language es
train_opts=(--new_language eo --new_language_init es --replay "[$fbank/demo_en_cuts_train.jsonl.gz]" --replay_prob 0.2
            --nospeech_cuts $fbank/nonspeech_cuts_train.jsonl.gz --nospeech_prob 0.1)
bash finetune.sh --model_name whisper-base --is_lora true --prefix demo_eo --exp_dir $exp \
  --train_config config/demo_lora.yaml --stop_stage 0 -- "${train_opts[@]}"

score() {  # the merged model in $1 on the eo test split, English (retention) and non-speech clips, into $1/..
  local out=$2 model=$1
  local opts=("${eval_opts[@]}" --model_path $model --outdir $out)
  "${stamped[@]}" $out/.eval-test.stamp.json --outputs $out/errs-test.json \
    --inputs $model $fbank/demo_eo_cuts_test.jsonl.gz -- egrecho eval "${opts[@]}" --prefix_name demo_eo
  "${stamped[@]}" $out/.eval-en.stamp.json --outputs $out/errs-en.json --inputs $model data/kaldi/en_docs/test -- \
    egrecho eval "${opts[@]}" --kaldi_dir data/kaldi/en_docs/test --part en
  "${stamped[@]}" $out/.eval-nonspeech.stamp.json --outputs $out/errs-nonspeech.json \
    --inputs $model data/kaldi/nonspeech/test -- egrecho eval "${opts[@]}" --kaldi_dir data/kaldi/nonspeech/test --part nonspeech
}
score $exp/checkpoint-final-lora-merge $exp

python3 local/plot_loss.py --logdir $exp/tensorboard --output $exp/loss.png --title "run_new_language.sh: whisper-base LoRA, eo"
stats=$(python3 -c "import json; s = json.load(open('$kaldi/stats.json')); t = s['splits']; print(f\"{t['train']['utterances']} train / {t['val']['utterances']} val / {t['test']['utterances']} test utterances, no sentence in two splits, test out-of-vocabulary rate against train {100 * s['test_oov_rate']:.1f}% of its words\")")
python3 local/write_results.py --name base-lora-eo --model pretrained/whisper-base \
  --original $exp/orig/errs-test.json --tuned $exp/errs-test.json \
  --retention_original $orig/errs-en.json --retention_tuned $exp/errs-en.json \
  --nonspeech_original $orig/errs-nonspeech.json --nonspeech_tuned $exp/errs-nonspeech.json \
  --loss_curve loss.png --output $exp/RESULTS.md --command "$run_command" --wall_seconds $(( $(date +%s) - start )) \
  --notes "New language: Esperanto (eo) proverbs (Debian's fortunes-eo) spoken by espeak-ng; $stats; test voices and speed unseen in training. Before = whisper-base decoding the test split as es (it has no <|eo|>, so its eo language identification is 0 by construction); after = LoRA + <|eo|> (row initialised from <|es|>), un-padded, config/demo_lora.yaml, replay_prob 0.2 (the synthetic Vietnamese demo's English word lists), nospeech_prob 0.1. Retention and non-speech sets: the synthetic Vietnamese demo's (synthetic speech)."

if [ "$compare_padding" = true ]; then  # same data, steps and seed; only the input length differs
  bash finetune.sh --model_name whisper-base --is_lora true --prefix demo_eo --exp_dir ${exp}_padded \
    --train_config config/demo_lora.yaml --stop_stage 0 -- "${train_opts[@]}" \
    --remove_whisper_encoder_input_length_restriction false
  score ${exp}_padded/checkpoint-final-lora-merge ${exp}_padded
  python3 local/compare_runs.py --runs "[un-padded=$exp, padded to 30 s=${exp}_padded]" \
    --output $exp/PADDING.md --command "$run_command" --title "run_new_language.sh --compare_padding true: eo LoRA trained un-padded vs padded" \
    --notes "Same data (Esperanto proverbs, 20% English replay, 10% non-speech), steps and seed; each model decoded the way it was trained. Training wall time: train_runtime of the HF Trainer, this machine."
fi
