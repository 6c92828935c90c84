"""Whisper decoding shared by ``egrecho eval`` and ``egrecho transcribe``: options, batched
generation grouped by language, un-padded generation, and audio over 30 s.

Audio over 30 s: sequential long-form decoding (``egrecho_inner.seeking``): windows of 30 s decoded
with timestamps, each starting where the last complete segment of the one before ended; an un-padded
model decodes a window shorter than 30 s (the last one) at its own length."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from egrecho_inner.constants import N_FRAMES
from egrecho_inner.errors import InputError
from egrecho_inner.features import pad_batch, pad_to_longest, pad_to_whisper_input
from egrecho_inner.new_language import generate_language
from egrecho_inner.seeking import LongFormResult, WindowsDecoder, seek_decode_batch
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
    """not supported (refused in one line): transformers' fallback needs input features, and the encoder runs once"""
    no_speech_threshold: Optional[float] = None
    compression_ratio_threshold: Optional[float] = None
    logprob_threshold: Optional[float] = None
    prompt_text: Optional[str] = None
    """text given to the decoder as previous context"""
    max_new_tokens: Optional[int] = None
    """cap on generated tokens (default: the model's 448-token limit)"""
    static_decoder: Optional[bool] = None
    """a static KV cache, with the decoding step compiled into CUDA graphs on a GPU (transformers'
    cache_implementation "static"): the decoder loop stops being bound by kernel launches. null: on when decoding
    on CUDA. The first batch of each new shape pays a compilation (seconds to a minute); outputs are unchanged"""


STATIC_FRAME_BUCKET = 200
"""With a static decoder, un-padded batches are padded up to a multiple of this many frames (2 s; masked, so the
text is the same): each new encoder length is a new cross-attention cache shape and a new compilation"""


def static_decoder(gen: GenArgs, device) -> bool:
    """Whether to decode with a static KV cache and a compiled decoding step (``GenArgs.static_decoder``)."""
    if gen.static_decoder is not None:
        return gen.static_decoder
    return torch.device(device).type == "cuda"


def generate_kwargs(gen: GenArgs, processor, device) -> dict:
    """``generate()`` keyword arguments for the options that are set."""
    kwargs = {"task": gen.task, "num_beams": gen.num_beams, "return_timestamps": gen.return_timestamps}
    # Whisper's generate counts max_length in generated tokens, so the cap goes there: as max_new_tokens it
    # would clash (a warning per call) with the 448-token max_length every Whisper generation config holds
    optional = {"no_speech_threshold": gen.no_speech_threshold, "logprob_threshold": gen.logprob_threshold,
                "compression_ratio_threshold": gen.compression_ratio_threshold, "max_length": gen.max_new_tokens}
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    if gen.temperature_fallback:
        # transformers re-decodes a failed row from its input features, which are not passed when the encoder
        # ran once here (generate_batch): the fallback would crash deep inside generate
        raise InputError("gen_args.temperature_fallback is not supported: egrecho runs the encoder once and hands "
                         "its output to generate, whose fallback needs the input features; leave it null")
    if gen.prompt_text:
        kwargs["prompt_ids"] = processor.get_prompt_ids(gen.prompt_text, return_tensors="pt").to(device)
    if static_decoder(gen, device):
        kwargs["cache_implementation"] = "static"
    return kwargs


def generate_batch(model, features: torch.Tensor, attention_mask: Optional[torch.Tensor], unpadded: bool,
                   language: Optional[str] | list[Optional[str]], **kwargs) -> tuple[object, list[str]]:
    """``generate`` on a batch of inputs up to 30 s; returns its output and each row's detected language.
    ``language``: one for all rows, or one per row; None: the row's detected one.

    The encoder runs once: on 3000 frames, or for a model adapted by ``egrecho_inner.unpadded`` on the
    batch's longest real length, with the padding masked in every decoder call. The language each row
    sounds like is detected from the encoder output (one decoder step): it scores language
    identification, and rows are decoded in it when ``language`` is None.
    """
    if attention_mask is None:
        attention_mask = torch.ones(features.shape[0], features.shape[-1], dtype=torch.long, device=features.device)
    if unpadded:
        features, attention_mask = _unpadded_input(features, attention_mask,
                                                   kwargs.get("cache_implementation") == "static")
    with frame_mask(model, attention_mask, model.dtype) if unpadded else contextlib.nullcontext():
        encoder_outputs = model.get_encoder()(features)
        detected = detected_language_tokens(model, encoder_outputs)
        # one window, one decoding: with timestamps generate would otherwise seek inside the window itself,
        # decoding the encoder output it was handed once more after the window's last complete segment
        # (its output then starts with the prompt)
        once = {"force_unique_generate_call": True} if kwargs.get("return_timestamps") else {}
        if isinstance(language, list):
            language = [generate_language(code) if code else found for code, found in zip(language, detected)]
        else:
            language = generate_language(language) if language else detected
        out = model.generate(encoder_outputs=encoder_outputs, attention_mask=attention_mask, language=language,
                             **once, **kwargs)
    return out, [token[2:-2] for token in detected]


def detected_language_tokens(model, encoder_outputs) -> list[str]:
    """The language token (``<|en|>``) each row of an encoder output sounds like (one decoder step)."""
    id_to_token = {i: token for token, i in model.generation_config.lang_to_id.items()}
    return [id_to_token[int(i)] for i in model.detect_language(encoder_outputs=encoder_outputs)]


def _unpadded_input(features: torch.Tensor, attention_mask: torch.Tensor,
                    bucketed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch cut to its longest real length (even, for the encoder's stride-2 convolution), or padded up to
    a multiple of ``STATIC_FRAME_BUCKET`` frames (at most 30 s) when ``bucketed``."""
    length = int(attention_mask.sum(1).max())
    length += length % 2
    if bucketed:
        length = min(N_FRAMES, -(-length // STATIC_FRAME_BUCKET) * STATIC_FRAME_BUCKET)
    if length > features.shape[-1]:
        extra = length - features.shape[-1]
        return (torch.nn.functional.pad(features, (0, extra)), torch.nn.functional.pad(attention_mask, (0, extra)))
    return features[..., :length], attention_mask[:, :length]


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


def window_input(window: torch.Tensor, unpadded: bool = False) -> torch.Tensor:
    """``(T, n_mels)`` features up to 30 s as one encoder input ``(1, n_mels, T')`` decoded on its own: padded to
    3000 frames as if it were a file of its own, or, for an un-padded model, kept at its own (even) length."""
    length = window.shape[0] + window.shape[0] % 2 if unpadded else N_FRAMES
    return pad_to_whisper_input(window, length)[None]


def whisper_windows(feats: torch.Tensor, unpadded: bool = False) -> list[np.ndarray]:
    """``(T, n_mels)`` features cut into consecutive 30 s windows, each a :func:`window_input` as a numpy array
    (engines without a frame mask)."""
    return [np.ascontiguousarray(window_input(window, unpadded).numpy()) for window in feats.split(N_FRAMES)]


def batch_input(feats: list[torch.Tensor], unpadded: bool, device,
                dtype: torch.dtype) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``(T_i, n_mels)`` features up to 30 s as one batch ``(B, n_mels, T')``: padded to 3000 frames, or for an
    un-padded model to the longest one's even count, with the frame mask ``(B, T')`` (None when padded)."""
    if not unpadded:
        return pad_batch(feats).to(device, dtype), None
    features, mask = pad_to_longest(feats)
    return features.to(device, dtype), mask.to(device)


def transcribe_features(model, processor, feats: torch.Tensor, language: Optional[str], kwargs: dict,
                        unpadded: bool, device, dtype: torch.dtype = torch.float32) -> str:
    """Text of one utterance's ``(T, n_mels)`` features of any length, decoded the way the model was trained;
    over 30 s sequentially, window by window (``egrecho_inner.seeking``)."""
    if feats.shape[0] > N_FRAMES:
        return long_form(model, processor, feats, language, kwargs, unpadded, device, dtype).text
    features, mask = batch_input([feats], unpadded, device, dtype)
    return transcribe_batch(model, processor, features, [language], kwargs, mask, unpadded)[0][0]


def windows_decoder(model, languages: list[Optional[str]], kwargs: dict, unpadded: bool, device, dtype: torch.dtype,
                    timestamp_begin: int) -> WindowsDecoder:
    """``seeking.seek_decode_batch``'s ``decode_windows`` for audios in ``languages``' order: their next
    ``(T_w, n_mels)`` windows up to 30 s -> the tokens one ``generate`` call gives each with timestamps (no
    prompt, no end-of-text), padded to 30 s, or for an un-padded model to the longest window. An audio's
    language None: detected on its first window and kept for the rest, as Whisper does."""
    state = list(languages)
    eos = model.generation_config.eos_token_id

    def decode(which: list[int], windows: list[torch.Tensor]) -> list[list[int]]:
        features, mask = batch_input(windows, unpadded, device, dtype)
        with torch.inference_mode():
            out, detected = generate_batch(model, features, mask, unpadded, [state[i] for i in which],
                                           **{**kwargs, "return_timestamps": True})
        rows = []
        for i, code, sequence in zip(which, detected, out["sequences"] if isinstance(out, dict) else out):
            state[i] = state[i] or code
            tokens = sequence.tolist()
            while tokens and eos <= tokens[0] < timestamp_begin:  # the prompt: start of transcript, language, task
                tokens.pop(0)
            rows.append([t for t in tokens if t != eos])  # eos also pads rows that ended first
        return rows

    return decode


def long_form_batch(model, processor, feats: list[torch.Tensor], languages: list[Optional[str]], kwargs: dict,
                    unpadded: bool, device, dtype: torch.dtype = torch.float32) -> list[LongFormResult]:
    """Timed segments of several utterances' ``(T, n_mels)`` features of any length (sequential decoding with
    timestamps, ``egrecho_inner.seeking``, the next window of each decoded in one batch) and whether each
    window came out well formed."""
    timestamp_begin = model.generation_config.no_timestamps_token_id + 1  # the id of <|0.00|>
    decode = windows_decoder(model, languages, kwargs, unpadded, device, dtype, timestamp_begin)
    return seek_decode_batch(feats, decode, lambda ids: processor.decode(ids, skip_special_tokens=True),
                             timestamp_begin)


def long_form(model, processor, feats: torch.Tensor, language: Optional[str], kwargs: dict, unpadded: bool,
              device, dtype: torch.dtype = torch.float32) -> LongFormResult:
    """:func:`long_form_batch` of one utterance."""
    return long_form_batch(model, processor, [feats], [language], kwargs, unpadded, device, dtype)[0]
