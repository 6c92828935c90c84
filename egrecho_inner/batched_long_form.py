"""VAD-batched long-form decoding: recordings cut at speech pauses into spans of up to ``SPAN_SECONDS``
(``vad.speech_chunks``), the spans of all recordings decoded in batches, and their segments put back on each
recording's time line.

Faster than the sequential decoding of ``egrecho_inner.seeking`` (windows of one recording wait for each other
there), but not the same: a span starts and ends where the VAD says, not where the model's last segment ended,
and speech the VAD misses is not decoded. Spans are kept under 30 s (``SPAN_SECONDS``): Whisper drops
sentences from windows packed full of speech. The sequential path stays the default; ``bench/bench_batched.py``
compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, TypeVar

import numpy as np
import torch

from egrecho_inner.constants import FRAMES_PER_SECOND, N_FRAMES
from egrecho_inner.decode import batch_input
from egrecho_inner.seeking import LongFormResult, Segment
from egrecho_inner.vad import speech_chunks
from egrecho_inner.word_timing import detect_language

T = TypeVar("T")
SPAN_SECONDS = 25.0
"""Longest span decoded at once. Full 30 s spans lost speech with timestamps on (whisper-base skipped sentences:
WER 8.7% against 3.8% sequential on English validation recordings); 25 s kept it within sequential's WER and
decodes fewer spans than 20 or 15 (results/batched_span_sweep.md, validation prompts, not the bench's tests)"""


def duration_groups(items: Iterable[T], seconds_of: Callable[[T], float], seconds: float) -> Iterator[list[T]]:
    """``items`` in order, in groups that just reach ``seconds`` of audio (the last may hold less): short files
    are decoded together so that a batch of spans can be full, and long ones alone."""
    group, total = [], 0.0
    for item in items:
        group.append(item)
        total += seconds_of(item)
        if total >= seconds:
            yield group
            group, total = [], 0.0
    if group:
        yield group


@dataclass
class Span:
    """A span of one recording to decode: which recording, and its first and last feature frame."""

    recording: int
    start: int
    end: int

    @property
    def seconds(self) -> tuple[float, float]:
        return self.start / FRAMES_PER_SECOND, self.end / FRAMES_PER_SECOND


def plan_spans(samples: list[np.ndarray], num_frames: list[int], max_seconds: float = SPAN_SECONDS) -> list[Span]:
    """Each recording's speech spans (``vad.speech_chunks``) as feature frame ranges of at most ``max_seconds``."""
    spans = []
    for index, (audio, frames) in enumerate(zip(samples, num_frames)):
        for start, end in speech_chunks(audio, max_seconds):
            first = min(int(start * FRAMES_PER_SECOND), frames)
            last = min(int(np.ceil(end * FRAMES_PER_SECOND)), frames, first + N_FRAMES)
            if last > first:
                spans.append(Span(index, first, last))
    return spans


def transcribe_batched(decoder, feats: list[torch.Tensor], samples: list[np.ndarray],
                       languages: list[Optional[str]], batch_size: int = 8,
                       timestamps: bool = True, max_seconds: float = SPAN_SECONDS) -> list[LongFormResult]:
    """Segments of each recording, its VAD spans decoded ``batch_size`` at a time by ``decoder`` (a
    ``decoder.WhisperDecoder``).

    Args:
        feats: each recording's ``(T, n_mels)`` features (sliced per span, so every span is normalised as the
            sequential path normalises the whole recording).
        samples: each recording's 16 kHz audio, for the VAD.
        languages: each recording's language; None: detected on its first span and kept for the others.
        batch_size: spans per ``generate`` call.
        timestamps: decode with timestamps (segments inside a span); False: one segment per span, text only.
        max_seconds: longest span (at most 30).
    """
    spans = plan_spans(samples, [f.shape[0] for f in feats], max_seconds)
    languages = list(languages)
    for span in spans:  # the first span of a recording in no known language says which it is
        if languages[span.recording] is None:
            window = feats[span.recording][span.start: span.end]
            languages[span.recording] = detect_language(decoder.model, window, decoder.unpadded)
    spans.sort(key=lambda s: s.start - s.end)  # longest first: an un-padded batch carries little padding
    segments: list[list[Segment]] = [[] for _ in feats]
    well_formed: list[list[bool]] = [[] for _ in feats]
    for first in range(0, len(spans), batch_size):
        batch = spans[first: first + batch_size]
        windows = [feats[s.recording][s.start: s.end] for s in batch]
        for span, found in zip(batch, _decode(decoder, windows, [languages[s.recording] for s in batch], timestamps)):
            segments[span.recording] += _on_time_line(found.segments, *span.seconds)
            well_formed[span.recording] += found.windows_well_formed
    return [LongFormResult(sorted(s), w) for s, w in zip(segments, well_formed)]


def _decode(decoder, windows: list[torch.Tensor], languages: list[str], timestamps: bool) -> list[LongFormResult]:
    """One batch of spans: timed segments from the span's start, or one segment spanning it."""
    if timestamps:
        return decoder.transcribe_long(windows, languages)
    features, mask = batch_input(windows, decoder.unpadded, decoder.device, decoder.dtype)
    texts, _ = decoder.transcribe_batch(features, languages, mask)
    return [LongFormResult([Segment(0.0, w.shape[0] / FRAMES_PER_SECOND, text)] if text else [], [])
            for w, text in zip(windows, texts)]


def _on_time_line(segments: list[Segment], start: float, end: float) -> list[Segment]:
    """A span's segments (seconds from its start) on its recording's time line, ending inside the span."""
    return [Segment(round(start + s.start, 2), round(min(start + s.end, end), 2), s.text) for s in segments]
