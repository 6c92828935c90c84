"""Whisper decoding shared by ``egrecho eval`` and ``egrecho transcribe``: options, batched
generation grouped by language, un-padded generation, and audio over 30 s.

Audio over 30 s: a model trained on 30 s inputs gets Hugging Face's sequential long-form decoding
(timestamps, seeking); an un-padded model gets consecutive 30 s windows decoded as one batch, the
last window un-padded."""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from egrecho_inner.constants import N_FRAMES
from egrecho_inner.features import pad_to_longest, pad_to_whisper_input, padding_value
from egrecho_inner.new_language import generate_language
from egrecho_inner.unpadded import frame_mask


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
    # Whisper's generate counts max_length in generated tokens, so the cap goes there: as max_new_tokens it
    # would clash (a warning per call) with the 448-token max_length every Whisper generation config holds
    optional = {"no_speech_threshold": gen.no_speech_threshold, "logprob_threshold": gen.logprob_threshold,
                "compression_ratio_threshold": gen.compression_ratio_threshold, "max_length": gen.max_new_tokens}
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    if gen.temperature_fallback:
        kwargs["temperature"] = tuple(gen.temperature_fallback)
    if gen.prompt_text:
        kwargs["prompt_ids"] = processor.get_prompt_ids(gen.prompt_text, return_tensors="pt").to(device)
    return kwargs


def generate_batch(model, features: torch.Tensor, attention_mask: Optional[torch.Tensor], unpadded: bool,
                   language: Optional[str], **kwargs) -> tuple[object, list[str]]:
    """``generate`` on a batch of inputs up to 30 s; returns its output and each row's detected language.

    The encoder runs once: on 3000 frames, or for a model adapted by ``egrecho_inner.unpadded`` on the
    batch's longest real length, with the padding masked in every decoder call. The language each row
    sounds like is detected from the encoder output (one decoder step): it scores language
    identification, and rows are decoded in it when ``language`` is None.
    """
    if attention_mask is None:
        attention_mask = torch.ones(features.shape[0], features.shape[-1], dtype=torch.long, device=features.device)
    if unpadded:
        length = int(attention_mask.sum(1).max())
        length += length % 2  # the encoder's stride-2 convolution wants an even count
        features, attention_mask = features[..., :length], attention_mask[:, :length]
    with frame_mask(model, attention_mask) if unpadded else contextlib.nullcontext():
        encoder_outputs = model.get_encoder()(features)
        id_to_token = {i: token for token, i in model.generation_config.lang_to_id.items()}
        detected = [id_to_token[int(i)] for i in model.detect_language(encoder_outputs=encoder_outputs)]
        out = model.generate(encoder_outputs=encoder_outputs, attention_mask=attention_mask,
                             language=generate_language(language) if language else detected, **kwargs)
    return out, [token[2:-2] for token in detected]


def transcribe_batch(model, processor, features, languages: list, kwargs: dict, attention_mask=None,
                     unpadded: bool = False) -> tuple[list[str], list[str]]:
    """Texts and detected languages of a batch ``(B, n_mels, T)`` up to 30 s, one generate call per
    language group (None: decoded in the detected language)."""
    texts, detected = [""] * len(languages), [""] * len(languages)
    groups = defaultdict(list)
    for i, language in enumerate(languages):
        groups[language].append(i)
    for language, idx in groups.items():
        mask = attention_mask[idx] if attention_mask is not None else None
        with torch.inference_mode():
            out, codes = generate_batch(model, features[idx], mask, unpadded, language, **kwargs)
        sequences = out["sequences"] if isinstance(out, dict) else out
        for i, text, code in zip(idx, processor.batch_decode(sequences, skip_special_tokens=True), codes):
            texts[i], detected[i] = text.strip(), code
    return texts, detected


def long_form_text(model, processor, features: torch.Tensor, attention_mask: torch.Tensor, language: Optional[str],
                   kwargs: dict) -> str:
    """Hugging Face's sequential long-form decoding (timestamps, seeking) of one input over 30 s."""
    with torch.inference_mode():
        out = model.generate(features, attention_mask=attention_mask, language=generate_language(language),
                             **{**kwargs, "return_timestamps": True})
    sequences = out["sequences"] if isinstance(out, dict) else out
    return processor.batch_decode(sequences, skip_special_tokens=True)[0].strip()


def whisper_windows(feats: torch.Tensor, unpadded: bool = False) -> list[np.ndarray]:
    """``(T, n_mels)`` features cut into consecutive 30 s windows, each ``(1, n_mels, T_w)`` and decoded on
    its own (engines without a frame mask): padded to 3000 frames as if it were a file of its own, or, for
    an un-padded model, kept at its own (even) length."""
    windows = []
    for window in feats.split(N_FRAMES):
        length = window.shape[0] + window.shape[0] % 2 if unpadded else N_FRAMES
        windows.append(np.ascontiguousarray(pad_to_whisper_input(window, length)[None].numpy()))
    return windows


def unpadded_windows(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T, n_mels)`` features as consecutive 30 s windows ``(W, n_mels, T_w)`` for an un-padded model:
    ``T_w`` is 3000 when there are several windows, else the (even) length of the only one; the last
    window's padding is masked in the frame mask ``(W, T_w)``."""
    return pad_to_longest(feats.split(N_FRAMES))


def long_form_input(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Un-truncated ``(T, n_mels)`` features padded to whole 30 s windows ``(1, n_mels, T')``, and their
    frame mask, for Hugging Face's sequential long-form decoding."""
    total = math.ceil(feats.shape[0] / N_FRAMES) * N_FRAMES
    padded = torch.full((total, feats.shape[1]), padding_value(feats))
    padded[: feats.shape[0]] = feats
    mask = torch.zeros(1, total, dtype=torch.long)
    mask[0, : feats.shape[0]] = 1
    return padded.T.unsqueeze(0), mask


def transcribe_features(model, processor, feats: torch.Tensor, language: Optional[str], kwargs: dict,
                        unpadded: bool, device, dtype: torch.dtype = torch.float32) -> str:
    """Text of one utterance's ``(T, n_mels)`` features of any length, decoded the way the model was trained."""
    if unpadded:
        windows, mask = unpadded_windows(feats)
        texts, _ = transcribe_batch(model, processor, windows.to(device, dtype), [language] * len(windows), kwargs,
                                    mask.to(device), unpadded=True)
        return " ".join(t for t in texts if t)
    if feats.shape[0] > N_FRAMES:
        padded, mask = long_form_input(feats)
        return long_form_text(model, processor, padded.to(device, dtype), mask.to(device), language, kwargs)
    padded = pad_to_whisper_input(feats)[None]
    return transcribe_batch(model, processor, padded.to(device, dtype), [language], kwargs)[0][0]


def timed_segments(model, processor, feats: torch.Tensor, language: Optional[str], kwargs: dict, device,
                   dtype: torch.dtype = torch.float32) -> list[tuple[float, float, str]]:
    """(start, end, text) segments of one utterance's ``(T, n_mels)`` features of any length: ``generate``
    with timestamps, sequential long-form decoding over 30 s (each window seeks to its last timestamp)."""
    if feats.shape[0] > N_FRAMES:
        padded, mask = long_form_input(feats)
    else:
        padded = pad_to_whisper_input(feats)[None]
        mask = torch.ones(1, N_FRAMES, dtype=torch.long)
    with torch.inference_mode():
        out = model.generate(padded.to(device, dtype), attention_mask=mask.to(device),
                             language=generate_language(language),
                             **{**kwargs, "return_timestamps": True, "return_segments": True})
    return [(float(s["start"]), float(s["end"]), processor.decode(s["tokens"], skip_special_tokens=True).strip())
            for s in out["segments"][0]]
