#!/usr/bin/env bash
# Fine-tune Whisper on the cuts prepare.sh wrote (stage 0), then evaluate it (stage 1).
#
# Usage:
#   bash finetune.sh --model_name whisper-small --is_lora true [--num_gpus 2] [--deepspeed z2]
#   bash finetune.sh --stage 1 --stop_stage 1 --model_name whisper-small --is_lora false
#   bash finetune.sh --model_name whisper-small -- --learning_rate 5e-4 --max_steps 2000   # extra training options
#   bash finetune.sh --num_gpus 8 --num_machines 2 --machine_rank 0 --main_process_ip 10.0.0.1  # on each machine,
#                                                                       # with its own --machine_rank
#
# --model_name is looked up as <pretrained_dir>/<model_name>, or used as a path. Output goes to
# exp/<model_name>/<lora|full>/. LoRA runs end stage 0 by merging the adapter into the base model.
set -euo pipefail

stage=0
stop_stage=1
model_name=whisper-small
pretrained_dir=pretrained       # where hf_download.sh puts models
is_lora=true
num_gpus=1                      # processes per machine; on a machine without GPUs they run on the CPU (gloo)
num_machines=1                  # several: run finetune.sh on each machine with the same options but --machine_rank
machine_rank=0                  # 0 is the main machine: it alone merges and evaluates
main_process_ip=                # machine 0's address, reachable from every machine (needed with num_machines > 1)
main_process_port=29500         # a free TCP port on machine 0 for the rendezvous
deepspeed=none                  # none | z1 | z2 | z3 (config/ds_config_z*.json)
allocator=tcmalloc              # tcmalloc (preloaded for training when installed) | system (glibc malloc)
manifest_dir=data/fbank_whisper80
prefix=demo_vi
exp_dir=                        # default: exp/<model_name>/<lora|full>
train_config=                   # default: config/<lora|full>.yaml
merge_scale=1                   # LoRA: the share of the adapter's update merged (egrecho merge-lora-whisper --scale)
merge_encoder_scale=            # LoRA: the encoder's share (--encoder_scale); default: merge_scale
help_message="Usage: bash finetune.sh [--stage 0] [--stop_stage 1] [--model_name NAME|PATH] [--is_lora true|false]
  [--num_gpus N] [--num_machines M --machine_rank R --main_process_ip IP [--main_process_port P]]
  [--deepspeed none|z1|z2|z3] [--allocator tcmalloc|system] [--manifest_dir DIR] [--prefix NAME] [--exp_dir DIR]
  [--train_config YAML] [--merge_scale 1] [--merge_encoder_scale S] [-- TRAINING OPTIONS]"

recipe_dir=$(cd "$(dirname "$0")" && pwd)
. "$recipe_dir/local/parse_options.sh"
[ "${1:-}" = "--" ] && shift
extra_args=("$@")               # passed on to lora.py / full.py
. "$recipe_dir/local/path.sh"   # the recipe's Python env (.venv/) and PYTHONPATH

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

if [ -d "$pretrained_dir/$model_name" ]; then base_model=$pretrained_dir/$model_name; else base_model=$model_name; fi
tag=$(basename "$model_name")
if [ "$is_lora" = true ]; then mode=lora; else mode=full; fi
exp_dir=${exp_dir:-exp/$tag/$mode}
train_config=${train_config:-$recipe_dir/config/$mode.yaml}

num_processes=$(( num_gpus * num_machines ))   # accelerate counts processes over all machines
launch=(accelerate launch --num_machines "$num_machines" --num_processes "$num_processes" --dynamo_backend no
        --mixed_precision no)
if [ "$num_machines" -gt 1 ]; then
  [ -n "$main_process_ip" ] || { echo "$0: --num_machines $num_machines needs --main_process_ip (machine 0's address)" >&2; exit 1; }
  launch+=(--machine_rank "$machine_rank" --main_process_ip "$main_process_ip" --main_process_port "$main_process_port")
fi
if ! command -v nvidia-smi >/dev/null 2>&1; then  # CPU only: share the cores (accelerate would give each process 1)
  launch+=(--num_cpu_threads_per_process "$(( $(nproc) / num_gpus > 0 ? $(nproc) / num_gpus : 1 ))")
  export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu}   # what DeepSpeed would otherwise probe for, with a warning
fi
[ "$num_processes" -gt 1 ] && launch+=(--multi_gpu)   # torchrun-style launch: NCCL on GPUs, gloo on CPUs
ds_opt=()
if [ "$deepspeed" != none ]; then
  ds_config=$recipe_dir/config/ds_config_${deepspeed}.json
  [ -f "$ds_config" ] || { echo "$0: no DeepSpeed config $ds_config (use none, z1, z2 or z3)" >&2; exit 1; }
  ds_opt=(--deepspeed "$ds_config")
fi

# glibc's malloc keeps the blocks freed after each batch larger than any before in its heap, so with
# un-padded batches of varying shapes training's resident memory only climbs (local/run_vi_demo.sh: 6.1 GB); tcmalloc
# reuses them (2.5 GB, steps as fast). docs/scale.md: "Peak memory of the synthetic demo".
if [ "$allocator" = tcmalloc ] && [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  if tcmalloc=$(bash "$recipe_dir/local/find_library.sh" libtcmalloc_minimal.so.4); then
    export LD_PRELOAD=${LD_PRELOAD:+$LD_PRELOAD:}$tcmalloc
  else
    log "tcmalloc is not installed (local/install_deps.sh installs it): training with glibc's malloc, more memory"
  fi
elif [ "$allocator" != tcmalloc ] && [ "$allocator" != system ]; then
  echo "$0: --allocator $allocator: use tcmalloc or system" >&2; exit 1
fi

# Each step runs unless its stamp (egrecho_inner/stamps.py) says its inputs and options are unchanged:
# new data (train/val cuts, and the replay, kl_to_base, non-speech, MUSAN manifests and Shar shards the resolved
# config names), config, base model, DeepSpeed config (its contents) or options retrain; a changed checkpoint
# is merged and evaluated again.
stamped=(python3 -m egrecho_inner.stamps run)
if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "Stage 0: $mode fine-tuning of $base_model -> $exp_dir"
  mkdir -p "$exp_dir"
  train_opts=(-c "$train_config" --base_model "$base_model" --output_dir "$exp_dir" --manifest_dir "$manifest_dir"
              --prefix_name "$prefix" "${ds_opt[@]}" "${extra_args[@]}")
  resolved=$exp_dir/.train-resolved.yaml   # the options as training will read them: which data files it opens
  python3 "$recipe_dir/egrecho_inner/$mode.py" "${train_opts[@]}" --print_config > "$resolved.tmp"
  mv "$resolved.tmp" "$resolved"
  listed=$(python3 -m egrecho_inner.stamps training-inputs "$resolved")
  data_inputs=()
  [ -z "$listed" ] || mapfile -t data_inputs <<< "$listed"
  "${stamped[@]}" "$exp_dir/.train.stamp.json" --outputs "$exp_dir/checkpoint-final" \
    --inputs "$train_config" "$base_model" "$manifest_dir/${prefix}_cuts_train.jsonl.gz" \
      "$manifest_dir/${prefix}_cuts_val.jsonl.gz" "${ds_opt[@]:1}" "${data_inputs[@]}" -- \
    "${launch[@]}" "$recipe_dir/egrecho_inner/$mode.py" "${train_opts[@]}"
  if [ "$mode" = lora ] && [ "$machine_rank" -eq 0 ]; then
    log "Merging the adapter into $base_model"
    scale_opt=()
    [ "$merge_scale" = 1 ] || scale_opt=(--scale "$merge_scale")
    [ -z "$merge_encoder_scale" ] || scale_opt+=(--encoder_scale "$merge_encoder_scale")
    "${stamped[@]}" "$exp_dir/.merge.stamp.json" --outputs "$exp_dir/checkpoint-final-lora-merge" \
      --inputs "$exp_dir/checkpoint-final" "$base_model" -- \
      egrecho merge-lora-whisper --lora_model "$exp_dir/checkpoint-final" --output_dir "$exp_dir" "${scale_opt[@]}"
  fi
  log "tensorboard --logdir $exp_dir/tensorboard"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ] && [ "$machine_rank" -ne 0 ]; then
  log "Stage 1: machine 0 evaluates"
elif [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  model_path=$exp_dir/checkpoint-final
  [ "$mode" = lora ] && model_path=$exp_dir/checkpoint-final-lora-merge
  log "Stage 1: evaluating $model_path"
  "${stamped[@]}" "$exp_dir/.eval.stamp.json" --outputs "$exp_dir/errs-test.json" \
    --inputs "$model_path" "$recipe_dir/config/eval.yaml" "$manifest_dir/${prefix}_cuts_test.jsonl.gz" -- \
    egrecho eval -c "$recipe_dir/config/eval.yaml" --model_path "$model_path" --outdir "$exp_dir" \
      --manifest_dir "$manifest_dir" --prefix_name "$prefix"
fi
