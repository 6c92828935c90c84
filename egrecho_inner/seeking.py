"""Sequential long-form decoding, whatever the engine: Whisper's own algorithm for audio over 30 s.

A 30 s window is decoded with timestamps; the window's last complete segment says where the next window
starts (the seek), so an utterance the window boundary cuts is decoded whole in the next window instead of
being split in two. A window whose output ends on a lone timestamp is done (no speech after it); one with
no complete segment (a model that emits no timestamps) falls back to the next 30 s. The engine only has to
decode one window into tokens (``decode_window``); parsing and seeking are here, shared by ``egrecho
eval``, the hf engine and the onnx engine of ``egrecho transcribe``.

Each window is also checked: well formed means it starts with a timestamp, timestamps pair up around text
(``<|t0|> text <|t1|>``, at most one unfinished segment at the end), never go back and stay inside the
window. ``egrecho eval`` reports the share of well-formed windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from egrecho_inner.constants import HOP_LENGTH, N_FRAMES, SAMPLING_RATE, TIMESTAMP_STEP

FRAMES_PER_STEP = round(TIMESTAMP_STEP * SAMPLING_RATE / HOP_LENGTH)  # 2 feature frames per timestamp step
MIN_WINDOW_FRAMES = 20  # a tail shorter than 0.2 s is not decoded (Whisper hallucinates on near-empty input)

Segment = tuple[float, float, str]  # start and end in seconds from the start of the audio, text


@dataclass
class ParsedWindow:
    """One window's output: segments in timestamp steps from the window's start, ``(start, end, tokens)``."""

    segments: list[tuple[int, int, list[int]]] = field(default_factory=list)
    unfinished: tuple[int, list[int]] | None = None  # (start, tokens) of text the window cut off
    well_formed: bool = True
    ends_on_single_timestamp: bool = False  # all speech in the window is inside complete segments


def parse_window(tokens: list[int], timestamp_begin: int, window_steps: int) -> ParsedWindow:
    """Segments of one window's generated tokens (no prompt, no end-of-text); ``timestamp_begin`` is the id
    of ``<|0.00|>``, ``window_steps`` the window's length in timestamp steps."""
    parsed = ParsedWindow(well_formed=bool(tokens) and tokens[0] >= timestamp_begin)
    start, text, last = None, [], 0
    for token in tokens:
        if token < timestamp_begin:
            if start is None:  # text after a closing timestamp, without an opening one
                parsed.well_formed = False
                start = last
            text.append(token)
            continue
        step = token - timestamp_begin
        if step < last or step > window_steps + 1:
            parsed.well_formed = False
        last = max(step, last)
        if start is not None and text:
            parsed.segments.append((start, step, text))
            start, text = None, []
        else:
            start = step  # an opening timestamp (a second one in a row replaces the first)
    if text:
        parsed.unfinished = (start, text)
    parsed.ends_on_single_timestamp = start is None and bool(parsed.segments)
    parsed.well_formed = parsed.well_formed and bool(parsed.segments)
    return parsed


@dataclass
class LongFormResult:
    """Segments of the whole audio, and whether each decoded window was well formed."""

    segments: list[Segment]
    windows_well_formed: list[bool]

    @property
    def text(self) -> str:
        return joined_text(self.segments)


def joined_text(segments: list[Segment]) -> str:
    """The text of timed segments, joined by single spaces."""
    return " ".join(text.strip() for _, _, text in segments if text.strip())


def seek_decode(feats: torch.Tensor, decode_window: Callable[[torch.Tensor], list[int]],
                decode_text: Callable[[list[int]], str], timestamp_begin: int) -> LongFormResult:
    """Decode ``(T, n_mels)`` features of any length window by window, seeking as Whisper does.

    Args:
        feats: the features of the whole audio.
        decode_window: ``(T_w, n_mels)`` window (``T_w`` up to 3000) -> its generated tokens with timestamps.
        decode_text: token ids -> text.
        timestamp_begin: the id of ``<|0.00|>``.
    """
    total, seek = feats.shape[0], 0
    segments, well_formed = [], []
    while total - seek >= MIN_WINDOW_FRAMES or seek == 0:
        window = feats[seek: seek + N_FRAMES]
        length = window.shape[0]
        offset = seek * HOP_LENGTH / SAMPLING_RATE
        parsed = parse_window(decode_window(window), timestamp_begin, length // FRAMES_PER_STEP)
        well_formed.append(parsed.well_formed)
        for start, end, tokens in parsed.segments:
            segments.append((offset + start * TIMESTAMP_STEP, offset + end * TIMESTAMP_STEP, decode_text(tokens).strip()))
        last_window = seek + length >= total
        advance = length  # whole window: all speech is in complete segments, or none is
        if parsed.segments and not parsed.ends_on_single_timestamp and not last_window:
            # text the window cut off (or a segment it only opened) is decoded again from its start
            advance = (parsed.unfinished[0] if parsed.unfinished else parsed.segments[-1][1]) * FRAMES_PER_STEP
        elif parsed.unfinished:  # the audio's end, or no complete segment: keep the text, move on a whole window
            start, tokens = parsed.unfinished
            end = offset + length * HOP_LENGTH / SAMPLING_RATE
            segments.append((offset + start * TIMESTAMP_STEP, end, decode_text(tokens).strip()))
        seek += advance if 0 < advance <= length else length
        if seek >= total:
            break
    return LongFormResult([s for s in segments if s[2]], well_formed)
