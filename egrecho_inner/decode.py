"""Whisper decoding shared by ``egrecho eval`` and ``egrecho transcribe``: options, batched
generation grouped by language, and long-form input for audio over 30 s."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from lhotse.cut import Cut

from egrecho_inner.constants import N_FRAMES
from egrecho_inner.features import load_cut_features, pad_to_whisper_input, padding_value
from egrecho_inner.new_language import generate_language


@dataclass
class GenArgs:
    """Decoding options (Hugging Face ``WhisperForConditionalGeneration.generate``)."""

    language: Optional[str] = None
    """language of cuts that name none (each cut's own language is used otherwise); None: detect"""
    task: str = "transcribe"
    num_beams: int = 1
    return_timestamps: bool = False
    temperature_fallback: Optional[list[float]] = None
    """e.g. [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]: re-decode hotter when the thresholds below fail"""
    no_speech_threshold: Optional[float] = None
    compression_ratio_threshold: Optional[float] = None
    logprob_threshold: Optional[float] = None
    prompt_text: Optional[str] = None
    """text given to the decoder as previous context"""
    max_new_tokens: Optional[int] = None
    """cap on generated tokens (default: the model's 448-token limit)"""


def generate_kwargs(gen: GenArgs, processor, device) -> dict:
    """``generate()`` keyword arguments for the options that are set."""
    kwargs = {"task": gen.task, "num_beams": gen.num_beams, "return_timestamps": gen.return_timestamps}
    optional = {"no_speech_threshold": gen.no_speech_threshold, "logprob_threshold": gen.logprob_threshold,
                "compression_ratio_threshold": gen.compression_ratio_threshold, "max_new_tokens": gen.max_new_tokens}
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    if gen.temperature_fallback:
        kwargs["temperature"] = tuple(gen.temperature_fallback)
    if gen.prompt_text:
        kwargs["prompt_ids"] = processor.get_prompt_ids(gen.prompt_text, return_tensors="pt").to(device)
    return kwargs


def transcribe_batch(model, processor, features, languages: list, kwargs: dict, attention_mask=None) -> list[str]:
    """Texts of a batch ``(B, n_mels, T)``, one generate call per language group (None: detect)."""
    texts = [""] * len(languages)
    groups = defaultdict(list)
    for i, language in enumerate(languages):
        groups[language].append(i)
    for language, idx in groups.items():
        extra = {"attention_mask": attention_mask[idx]} if attention_mask is not None else {}
        with torch.inference_mode():
            out = model.generate(features[idx], language=generate_language(language), **kwargs, **extra)
        sequences = out["sequences"] if isinstance(out, dict) else out
        for i, text in zip(idx, processor.batch_decode(sequences, skip_special_tokens=True)):
            texts[i] = text.strip()
    return texts


def whisper_windows(feats: torch.Tensor) -> np.ndarray:
    """``(T, n_mels)`` features cut into consecutive 30 s windows ``(W, n_mels, 3000)``, each padded as if
    it were a file of its own (for engines that decode windows independently)."""
    return torch.stack([pad_to_whisper_input(w) for w in feats.split(N_FRAMES)]).numpy()


def long_form_features(cut: Cut, extractor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Un-truncated features of a long cut, padded to whole 30 s windows, and their frame mask."""
    feats = load_cut_features(cut, extractor)  # (T, n_mels)
    total = math.ceil(feats.shape[0] / N_FRAMES) * N_FRAMES
    padded = torch.full((total, feats.shape[1]), padding_value(feats))
    padded[: feats.shape[0]] = feats
    mask = torch.zeros(1, total, dtype=torch.long)
    mask[0, : feats.shape[0]] = 1
    return padded.T.unsqueeze(0).to(dtype), mask
