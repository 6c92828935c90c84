#!/usr/bin/env bash
# Kaldi data dirs -> lhotse manifests -> Whisper fbank features.
#
# Usage:
#   bash prepare.sh --kaldi_dir data/kaldi/demo --prefix demo_vi [--stage 1] [--stop_stage 4]
#
# Each part of --kaldi_dir (default train,val,test) needs wav.scp, text and utt2lang (or pass
# --language); segments is optional. Each stage and part leaves a stamp of what it was run on (input
# hashes, options): a rerun of the same command skips what is up to date and redoes exactly what changed,
# saying why, and an interrupted run is finished by running it again. Two runs on one prefix at once:
# the second refuses (a lock in the manifest dir).
set -euo pipefail

stage=1
stop_stage=4
nj=2                         # parallel jobs
kaldi_dir=data/kaldi/demo    # holds one Kaldi data dir per part
prefix=demo_vi               # manifest name, e.g. aishell_vi
parts=train,val,test
num_mel_bins=80              # 80 for whisper v1/v2, 128 for large-v3
perturb_speed=false          # add 0.9x/1.1x copies of train
musandir=                    # MUSAN corpus dir; MUSAN stages are skipped when empty or absent
on_the_fly_feats=false       # true: cuts only, features computed at batch time
language=                    # language of utterances that utt2lang does not name
new_language=                # a language code Whisper lacks (e.g. eo), allowed in utt2lang; see docs/training.md (New language)
keep_empty_text=false        # true: empty transcripts are non-speech cuts (for training's nospeech_cuts)
pack_segments=false          # true: recordings with segments give windows of up to 30 s of consecutive segments
shar=false                   # true: also write each part as Lhotse Shar shards (<prefix>_shar_<part>/), for shar: true
shar_shard_size=1000         # cuts per Shar shard
audio_16k=false              # true: also store the cuts' audio at 16 kHz (<prefix>_audio16k_<part>/), read in training
manifest_dir=data/manifests
help_message="Usage: bash prepare.sh [--stage N] [--stop_stage N] [--nj N] [--kaldi_dir DIR] [--prefix NAME]
  [--parts train,val,test] [--num_mel_bins 80|128] [--perturb_speed true|false] [--musandir DIR]
  [--on_the_fly_feats true|false] [--language CODE] [--new_language CODE] [--keep_empty_text true|false]
  [--pack_segments true|false] [--shar true|false] [--shar_shard_size N] [--audio_16k true|false]"

recipe_dir=$(cd "$(dirname "$0")" && pwd)
. "$recipe_dir/local/parse_options.sh"
. "$recipe_dir/local/path.sh"   # the recipe's Python env (.venv/) and PYTHONPATH

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

fbank_dir=data/fbank_whisper${num_mel_bins}
language_opt=()
[ -n "$language" ] && language_opt=(--language "$language")
[ -n "$new_language" ] && language_opt+=(--new_language "$new_language")
[ "$keep_empty_text" = true ] && language_opt+=(--keep_empty_text true)
have_musan=false
[ -n "$musandir" ] && [ -d "$musandir" ] && have_musan=true
[ -n "$musandir" ] && [ "$have_musan" = false ] && log "MUSAN dir $musandir not found: MUSAN stages skipped"

mkdir -p "$manifest_dir"
lock=$manifest_dir/.${prefix}.lock
exec 9>"$lock"
if ! flock -n 9; then
  echo "prepare.sh: another prepare.sh is working on prefix $prefix (it holds $lock); wait for it to finish" >&2
  exit 1
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "Stage 1: Kaldi dirs in $kaldi_dir -> manifests in $manifest_dir"
  python3 "$recipe_dir/local/kaldi2mani.py" --kaldi_dir "$kaldi_dir" --prefix "$prefix" --parts "$parts" \
    --output_dir "$manifest_dir" --nj "$nj" "${language_opt[@]}"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ] && [ "$have_musan" = true ]; then
  log "Stage 2: MUSAN manifests from $musandir"
  stamp=(python3 -m egrecho_inner.stamps)
  musan_stamp=(--inputs "$musandir" --outputs "$manifest_dir/musan_recordings_music.jsonl.gz")
  if reason=$("${stamp[@]}" check "$manifest_dir/.musan_manifests.stamp.json" "${musan_stamp[@]}"); then
    log "  up to date, skipping"
  else
    log "  $reason"
    lhotse prepare musan "$musandir" "$manifest_dir"
    "${stamp[@]}" write "$manifest_dir/.musan_manifests.stamp.json" "${musan_stamp[@]}"
  fi
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "Stage 3: cuts and ${num_mel_bins}-mel Whisper fbank in $fbank_dir"
  python3 "$recipe_dir/local/compute_fbank_subset.py" --manifest_dir "$manifest_dir" --prefix "$prefix" \
    --parts "$parts" --output_dir "$fbank_dir" --num_mel_bins "$num_mel_bins" \
    --perturb_speed "$perturb_speed" --on_the_fly_feats "$on_the_fly_feats" --pack_segments "$pack_segments" \
    --shar "$shar" --shar_shard_size "$shar_shard_size" --audio_16k "$audio_16k" --nj "$nj"
  if [ "$have_musan" = true ]; then
    python3 "$recipe_dir/local/compute_fbank_musan.py" --manifest_dir "$manifest_dir" --output_dir "$fbank_dir" \
      --num_mel_bins "$num_mel_bins" --nj "$nj"
  fi
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "Stage 4: statistics"
  for part in ${parts//,/ }; do
    python3 "$recipe_dir/local/display_manifests.py" "$fbank_dir/${prefix}_cuts_${part}.jsonl.gz"
  done
fi

log "Done: cuts in $fbank_dir"
