"""Whisper log-mel features: lhotse's ``WhisperFbank`` for extraction, and padding to the
encoder's 30 s window exactly as Hugging Face's ``WhisperFeatureExtractor`` would.

HF pads the *audio* with zeros to 30 s before the STFT. Silent frames have power 0, are clamped to
the log floor and then raised to Whisper's dynamic-range floor ``max - 8`` (log10 units). After the
``(x + 4) / 4`` normalisation a padded frame therefore holds ``max(m - 2.0, -1.5)``, where ``m`` is
the utterance's largest normalised value. Padding with 0 (as the original recipe did) feeds the
model frames louder than the utterance's own silence.
"""

from __future__ import annotations

from itertools import islice
from typing import Optional, Sequence

import numpy as np
import torch
from lhotse import WhisperFbank, WhisperFbankConfig
from lhotse.cut import Cut

from egrecho_inner.constants import DYNAMIC_RANGE, LOG_MEL_FLOOR, MEL_BINS, N_FRAMES, SAMPLING_RATE
from egrecho_inner.errors import InputError


def make_fbank_extractor(num_mel_bins: int = 80, device: str = "cpu") -> WhisperFbank:
    """lhotse's Whisper fbank extractor for 80 (v1/v2) or 128 (large-v3) mel bins."""
    if num_mel_bins not in MEL_BINS:
        raise InputError(f"num_mel_bins must be one of {MEL_BINS}, got {num_mel_bins}")
    return WhisperFbank(WhisperFbankConfig(num_filters=num_mel_bins, device=device))


def check_mel_bins(cuts, where: str, model_bins: int, model_name: str, option_bins: Optional[int] = None) -> None:
    """Stop before any work when features (stored in ``cuts``, or asked for by a ``num_mel_bins`` option)
    have another mel-bin count than the model takes, naming both and the prepare.sh option that fixes it."""
    fix = (f"prepare.sh --num_mel_bins {model_bins} writes data/fbank_whisper{model_bins} (or compute them on the fly: "
           "on_the_fly_feats: true)")
    if option_bins is not None and option_bins != model_bins:
        raise InputError(f"num_mel_bins is {option_bins} but {model_name} takes {model_bins} mel bins: set "
                         f"num_mel_bins: {model_bins}; {fix}")
    stored = next((cut.num_features for cut in islice(cuts, 1) if cut.has_features), model_bins)
    if stored != model_bins:
        raise InputError(f"{where} holds {stored}-bin features but {model_name} takes {model_bins} mel bins: {fix}")


def padding_value(feats: torch.Tensor) -> float:
    """The value HF's extractor gives frames of zero-padded audio: ``max(m - 2.0, -1.5)``."""
    return max(float(feats.max()) - DYNAMIC_RANGE, LOG_MEL_FLOOR)


def pad_to_whisper_input(feats: torch.Tensor, num_frames: int = N_FRAMES) -> torch.Tensor:
    """Pad ``(T, n_mels)`` features to ``(n_mels, num_frames)`` like HF's audio padding does.

    Raises:
        InputError: if the features are longer than ``num_frames``.
    """
    return pad_batch([feats], num_frames)[0]


def pad_batch(feats: Sequence[torch.Tensor], num_frames: int = N_FRAMES) -> torch.Tensor:
    """``(T_i, n_mels)`` features padded (as HF pads, :func:`padding_value`) into one ``(B, n_mels, num_frames)``
    batch, written in place: no per-cut padded copy and no stacking (a training batch of 30 s inputs is
    8 MB per 8 cuts; copying it twice took about 15% of a dataloader worker's time).

    Raises:
        InputError: if any features are longer than ``num_frames``.
    """
    out = torch.empty(len(feats), feats[0].shape[1], num_frames, dtype=torch.float32)
    for row, f in zip(out, feats):
        t = f.shape[0]
        if t > num_frames:
            raise InputError(f"{t} frames do not fit Whisper's {num_frames}-frame window")
        row[:, :t] = f.T
        row[:, t:] = padding_value(f)
    return out


def pad_to_longest(feats: Sequence[torch.Tensor], multiple: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Un-padded batching: ``(T_i, n_mels)`` features padded (as HF pads) to the longest, rounded up to a
    ``multiple`` (even: the encoder's stride-2 convolution wants an even count; at most 3000),
    ``(B, n_mels, T)``, and the frame mask ``(B, T)``."""
    if multiple < 2 or multiple % 2:
        raise InputError(f"un-padded frame multiple must be even and >= 2, got {multiple}")
    longest = max(f.shape[0] for f in feats)
    longest += longest % 2
    length = max(longest, min(N_FRAMES, -(-longest // multiple) * multiple))
    mask = torch.zeros(len(feats), length, dtype=torch.long)
    for i, f in enumerate(feats):
        mask[i, : f.shape[0]] = 1
    return pad_batch(feats, length), mask


def load_cut_features(cut: Cut, extractor: WhisperFbank | None = None) -> torch.Tensor:
    """Features of one cut, ``(T, n_mels)``: read from storage, or computed from its audio
    (resampled to 16 kHz, multi-channel audio averaged) when ``extractor`` is given."""
    if extractor is None:
        if not cut.has_features:
            raise InputError(f"cut {cut.id} has no stored features; use on-the-fly features")
        return torch.from_numpy(np.ascontiguousarray(cut.load_features()))
    if cut.sampling_rate != SAMPLING_RATE:
        cut = cut.resample(SAMPLING_RATE)
    audio = cut.load_audio()  # (channels, samples)
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    return torch.as_tensor(extractor.extract(mono.astype(np.float32), SAMPLING_RATE))
