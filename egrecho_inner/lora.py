#!/usr/bin/env python3
"""LoRA (or AdaLoRA) fine-tuning of Whisper on lhotse cuts.

Usage:
    accelerate launch egrecho_inner/lora.py -c config/lora.yaml \
        --base_model pretrained/whisper-small --output_dir exp/whisper-small/lora
    python egrecho_inner/lora.py -c config/lora.yaml --print_config

Base weights stay frozen; checkpoints hold the adapter. Merge it into the base model with
``egrecho merge-lora-whisper --lora_model <output_dir>/checkpoint-final``.
"""

from __future__ import annotations

import functools
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script (accelerate launch egrecho_inner/lora.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peft import AdaLoraConfig, LoraConfig, get_peft_model
from transformers import TrainerCallback

from egrecho_inner.new_language import language_token
from egrecho_inner.trainer import TrainArgs, main_cli

log = logging.getLogger(__name__)


@dataclass
class LoraArgs(TrainArgs):
    """Training options plus the adapter's."""

    use_adalora: bool = False
    """AdaLoRA: adapt the rank of each module during training"""
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"])
    init_r: int = 12
    """AdaLoRA: initial rank"""
    target_r: int = 4
    """AdaLoRA: average target rank"""


class AdaLoraAllocator(TrainerCallback):
    """AdaLoRA re-allocates ranks from the gradients: after backward, before the optimizer step."""

    def __init__(self, peft_model):
        self.peft_model = peft_model

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.peft_model.base_model.update_and_allocate(state.global_step)


def skip_adapter_input_casts(model) -> None:
    """Stop peft casting each adapter's input to the adapters' fp32 under autocast: autocast runs the adapter
    matmuls in bf16/fp16 anyway, so the cast only adds a full-width copy of every adapted layer's input (on an
    H200 the recipe's LoRA step ran 136 -> 167 samples/s with this and no dropout; bench/RESULTS-gpu.md)."""
    for module in model.modules():
        if hasattr(module, "cast_input_dtype_enabled"):
            module.cast_input_dtype_enabled = False


def prepare_model(model, args: LoraArgs, total_steps: int) -> tuple:
    """Wrap the model with a LoRA (or AdaLoRA) adapter; only adapter weights train.

    Returns:
        the PEFT model and the trainer callbacks it needs (AdaLoRA's rank allocator).
    """
    if args.use_adalora:
        config = AdaLoraConfig(init_r=args.init_r, target_r=args.target_r, lora_alpha=args.lora_alpha,
                               lora_dropout=args.lora_dropout, target_modules=args.target_modules,
                               total_step=total_steps, tinit=total_steps // 10, tfinal=total_steps // 5)
    else:
        config = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                            target_modules=args.target_modules, bias="none")
    if args.new_language:  # the added language's embedding row trains too (the output layer shares it)
        new_id = model.generation_config.lang_to_id[language_token(args.new_language)]
        config.trainable_token_indices = {"embed_tokens": [new_id]}
    base = Path(args.base_model).expanduser()
    model = get_peft_model(model, config)
    if args.bf16 or args.fp16:
        skip_adapter_input_casts(model)
    # The embedding never trains whole: an added language's row is in the trainable-token weights and merge
    # grows the base itself. peft's default would save the grown embedding (twice: tied input and output)
    # in every checkpoint, and for a hub-id base look the model up on the hub (a warning when offline).
    model.save_pretrained = functools.partial(model.save_pretrained, save_embedding_layers=False)
    # record an absolute base path so the merge step finds it from any working dir
    model.peft_config["default"].base_model_name_or_path = str(base.resolve()) if base.is_dir() else args.base_model
    trainable, total = model.get_nb_trainable_parameters()
    log.info("LoRA: %s of %s parameters train (%.2f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)
    return model, [AdaLoraAllocator(model)] if args.use_adalora else []


if __name__ == "__main__":
    main_cli(LoraArgs, prepare_model, __doc__)
