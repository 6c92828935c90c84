"""Load a Whisper model and processor from a local dir (or the hub), and build tiny random
Whispers for tests and CPU demos."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import torch
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
)

from egrecho_inner.constants import MAX_LABEL_TOKENS
from egrecho_inner.errors import InputError, MissingInputError
from egrecho_inner.text import WHISPER_LANGUAGE_CODES

log = logging.getLogger(__name__)


def _looks_like_path(name: str) -> bool:
    return Path(name).exists() or name.startswith((".", "/", "~")) or name.count("/") != 1


MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def check_model_dir(path: Path) -> None:
    """Fail early, naming the dir, when it is not a complete transformers model (or LoRA adapter) dir."""
    if (path / "adapter_config.json").is_file():
        weights = ADAPTER_WEIGHTS
    elif (path / "config.json").is_file():
        weights = MODEL_WEIGHTS
    else:
        raise MissingInputError(f"{path} has no config.json: not a Hugging Face model dir")
    if not any((path / w).is_file() for w in weights):
        raise MissingInputError(f"{path} has its config but no weights ({weights[0]}): a half-written save? "
                                "Rerun the step that wrote it (training, merge-lora-whisper, import-ct2)")


def hub_cache_dir() -> str:
    """The Hugging Face hub cache searched for model ids (``HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def resolve_model(name: str, local_files_only: bool = True, check: bool = True) -> str:
    """A local dir for ``name``: the dir itself, or a hub id's snapshot in the Hugging Face cache.

    Hub ids (``openai/whisper-small``) are looked up in the cache only, unless ``local_files_only`` is
    false, when a missing model is downloaded there.

    Args:
        name: a model dir or a hub id.
        local_files_only: never reach for the hub.
        check: also check the dir holds a complete transformers model or LoRA adapter (off for
            CTranslate2 and ONNX dirs, which their engines check).

    Returns:
        the model dir.
    """
    path = Path(name).expanduser()
    if not path.is_dir():
        if _looks_like_path(name):
            raise MissingInputError(f"model dir {name} not found")
        path = Path(_hub_snapshot(name, local_files_only))
    if check:
        check_model_dir(path)
    return str(path)


def resolve_full_model(name: str, local_files_only: bool = True) -> str:
    """:func:`resolve_model` for the steps that need a whole model (exports): a LoRA adapter is refused."""
    path = resolve_model(name, local_files_only, check=False)
    if (Path(path) / "adapter_config.json").is_file():
        raise InputError(f"{path} is a LoRA adapter: merge it first (egrecho merge-lora-whisper --lora_model {path})")
    check_model_dir(Path(path))
    return path


def _hub_snapshot(repo_id: str, local_files_only: bool) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, HfHubHTTPError, LocalEntryNotFoundError

    cache = hub_cache_dir()
    try:
        return snapshot_download(repo_id, cache_dir=cache, local_files_only=local_files_only)
    except (LocalEntryNotFoundError, HfHubHTTPError, HFValidationError, OSError) as e:
        how = ("nothing is downloaded with local_files_only: true" if local_files_only
               else f"the download failed: {str(e).splitlines()[0]}")
        raise MissingInputError(
            f"model {repo_id!r}: no such dir, and not in the Hugging Face cache {cache} ({how}); fetch it with "
            f"bash hf_download.sh {repo_id} pretrained/{repo_id.split('/')[-1]} and pass that dir"
        ) from None


def load_whisper(name: str, local_files_only: bool = True) -> tuple[WhisperForConditionalGeneration, WhisperProcessor]:
    """Model and processor, ready for fine-tuning: no forced decoder ids (labels carry the prefix)."""
    path = resolve_model(name, local_files_only)
    model = WhisperForConditionalGeneration.from_pretrained(path, local_files_only=True)
    processor = WhisperProcessor.from_pretrained(path, local_files_only=True)
    if not Path(name).expanduser().is_dir():  # a hub id: adapters and logs name it so, not by its cache path
        model.name_or_path = model.config._name_or_path = name
    model.config.forced_decoder_ids = None
    model.generation_config.forced_decoder_ids = None
    return model, processor


def save_processor(processor: WhisperProcessor, output_dir) -> None:
    """Save the processor and, as their own files, its feature extractor (preprocessor_config.json)
    and tokenizer, so tools that read only one of them (converters, older transformers) find it."""
    processor.save_pretrained(output_dir)
    processor.feature_extractor.save_pretrained(output_dir)
    processor.tokenizer.save_pretrained(output_dir)


def tiny_whisper_config(tokenizer_len: int, num_mel_bins: int = 80, d_model: int = 64, layers: int = 2,
                        decoder_layers: Optional[int] = None) -> WhisperConfig:
    """A Whisper small enough to train on a CPU in seconds, with the real vocabulary and ids."""
    return WhisperConfig(
        vocab_size=tokenizer_len, num_mel_bins=num_mel_bins, d_model=d_model,
        encoder_layers=layers, decoder_layers=decoder_layers or layers, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=4 * d_model, decoder_ffn_dim=4 * d_model, max_source_positions=1500,
        max_target_positions=MAX_LABEL_TOKENS, decoder_start_token_id=50258, pad_token_id=50257,
        bos_token_id=50257, eos_token_id=50257, begin_suppress_tokens=[220, 50257],
        # 1/sqrt(d) instead of 0.02: with d_model=64 and a frozen, tied output layer the default leaves
        # logits too small to fit anything, so adapters (LoRA) could not learn
        init_std=d_model**-0.5,
    )


def save_tiny_whisper(
    output_dir: str, num_mel_bins: int = 80, d_model: int = 64, layers: int = 2, seed: int = 0,
    decoder_layers: Optional[int] = None,
) -> None:
    """Save a tiny randomly initialised multilingual Whisper (model, processor, generation config).

    Args:
        output_dir: where the model dir goes.
        num_mel_bins: 80, or 128 like large-v3.
        d_model: hidden size.
        layers: encoder and decoder layers each.
        seed: initialisation seed.
        decoder_layers: decoder layers, if not ``layers`` (large-v3-turbo: 4 decoder layers under 32 encoder ones).
    """
    from egrecho_inner.tokenizer import build_whisper_tokenizer

    tokenizer = build_whisper_tokenizer(num_languages=100 if num_mel_bins == 128 else 99)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(tiny_whisper_config(len(tokenizer), num_mel_bins, d_model, layers,
                                                                decoder_layers))
    model.generation_config = whisper_generation_config(tokenizer)
    model.save_pretrained(output_dir)
    save_processor(WhisperProcessor(WhisperFeatureExtractor(feature_size=num_mel_bins), tokenizer), output_dir)
    print(f"saved a tiny random Whisper ({sum(p.numel() for p in model.parameters()):,} parameters) to {output_dir}")


def whisper_generation_config(tokenizer) -> GenerationConfig:
    """The multilingual generation config (language and task maps) for a Whisper tokenizer."""
    ids = tokenizer.convert_tokens_to_ids
    lang_to_id = {f"<|{c}|>": ids(f"<|{c}|>") for c in WHISPER_LANGUAGE_CODES if ids(f"<|{c}|>") != tokenizer.unk_token_id}
    return GenerationConfig(
        decoder_start_token_id=ids("<|startoftranscript|>"), bos_token_id=ids("<|endoftext|>"),
        eos_token_id=ids("<|endoftext|>"), pad_token_id=ids("<|endoftext|>"), max_length=MAX_LABEL_TOKENS,
        is_multilingual=True, lang_to_id=lang_to_id,
        task_to_id={"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")},
        no_timestamps_token_id=ids("<|notimestamps|>"), prev_sot_token_id=ids("<|startofprev|>"),
        begin_suppress_tokens=[220, ids("<|endoftext|>")], suppress_tokens=[],
    )
