"""Merge a LoRA adapter saved by ``lora.py`` into its base Whisper model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from peft import PeftConfig, PeftModel
from peft.tuners.lora import LoraLayer
from transformers import GenerationConfig, WhisperProcessor

from egrecho_inner.errors import InputError, MissingInputError
from egrecho_inner.model import check_model_dir, load_whisper, save_processor
from egrecho_inner.utils import atomic_path

log = logging.getLogger(__name__)


def merge_lora_whisper(lora_model: str, output_dir: Optional[str] = None, scale: float = 1.0,
                       encoder_scale: Optional[float] = None, local_files_only: bool = True) -> str:
    """Merge a LoRA checkpoint into the base model named in its adapter config.

    Args:
        lora_model: an adapter dir written by lora.py (e.g. exp/whisper-small/lora/checkpoint-final).
        output_dir: where ``<basename>-lora-merge`` goes; default: the checkpoint's parent dir.
        scale: the share of the adapter's update merged: each adapted weight becomes W + scale * dW, the
            fine-tune's weights interpolated towards the original's (as WiSE-FT does for full fine-tunes).
            Below 1 it trades some of the gain for less forgetting of what the fine-tune never saw; choose it on
            validation data (local/sweep_settings.py). Rows of added tokens (new_language) merge whole.
        encoder_scale: the share merged into the encoder's adapted weights (default: ``scale``); the decoder's
            take ``scale``. What the decoder learns from a small share of the cuts (no text on non-speech) fades
            first when the whole model is scaled down; scaling the encoder alone keeps it.
        local_files_only: load the base model from local files only.

    Returns:
        the merged model dir (model, feature extractor, tokenizer, processor, generation config).
    """
    ckpt = Path(lora_model)
    encoder_scale = scale if encoder_scale is None else encoder_scale
    for option, value in (("--scale", scale), ("--encoder_scale", encoder_scale)):
        if not 0 < value <= 1:
            raise InputError(f"{option} {value}: the share of the adapter's update to merge must be in (0, 1]")
    if not ckpt.is_dir():
        raise MissingInputError(f"LoRA checkpoint {ckpt} not found")
    if not (ckpt / "adapter_config.json").is_file():
        raise InputError(f"{ckpt} is not a LoRA checkpoint (no adapter_config.json); full fine-tunes need no merge")
    check_model_dir(ckpt)  # adapter weights there
    base = PeftConfig.from_pretrained(ckpt).base_model_name_or_path
    model, processor = load_whisper(base, local_files_only)
    if (ckpt / "tokenizer_config.json").is_file():  # the processor saved with the adapter wins
        processor = WhisperProcessor.from_pretrained(ckpt)
    if (ckpt / "generation_config.json").is_file():  # carries languages added in training (new_language)
        model.generation_config = GenerationConfig.from_pretrained(ckpt)
        model.generation_config.forced_decoder_ids = None
    if len(processor.tokenizer) > model.config.vocab_size:  # rows of added tokens, trained in the adapter
        model.resize_token_embeddings(len(processor.tokenizer), mean_resizing=False)
    adapted = PeftModel.from_pretrained(model, ckpt)
    for name, layer in adapted.named_modules():
        if isinstance(layer, LoraLayer):  # scaling (alpha / r) times the share: get_delta_weight gives share * dW
            layer.scale_layer(encoder_scale if ".encoder." in name else scale)
    merged = adapted.merge_and_unload()
    target = Path(output_dir or ckpt.parent) / f"{ckpt.name}-lora-merge"
    with atomic_path(target) as tmp:
        merged.save_pretrained(tmp)
        save_processor(processor, tmp)
    share = "" if scale == encoder_scale == 1 else f" at scale {scale} (encoder {encoder_scale})"
    print(f"merged {ckpt} into {base}{share}: {target}")
    return str(target)
