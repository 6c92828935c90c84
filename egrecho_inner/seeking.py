"""Sequential long-form decoding, whatever the engine: Whisper's own algorithm for audio over 30 s.

A 30 s window is decoded with timestamps; the window's last complete segment says where the next window
starts (the seek), so an utterance the window boundary cuts is decoded whole in the next window instead of
being split in two. A window whose output ends on a lone timestamp is done (no speech after it); one with
no complete segment (a model that emits no timestamps) falls back to the next 30 s. The engine only has to
decode windows into tokens (``decode_window``, or ``decode_windows`` for the next window of several audios
at once); parsing and seeking are here, shared by ``egrecho eval`` (a batch of recordings), the hf engine
and the onnx engine of ``egrecho transcribe``.

Each window is also checked: well formed means it starts with a timestamp, timestamps pair up around text
(``<|t0|> text <|t1|>``, at most one unfinished segment at the end), never go back and stay inside the
window. ``egrecho eval`` reports the share of well-formed windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch

from egrecho_inner.constants import HOP_LENGTH, N_FRAMES, SAMPLING_RATE, TIMESTAMP_STEP

FRAMES_PER_STEP = round(TIMESTAMP_STEP * SAMPLING_RATE / HOP_LENGTH)  # 2 feature frames per timestamp step
MIN_WINDOW_FRAMES = 20  # a tail shorter than 0.2 s is not decoded (Whisper hallucinates on near-empty input)


class Segment(NamedTuple):
    """A timed piece of transcript: start and end in seconds from the start of the audio, and its text (a
    tuple, so ``start, end, text = segment`` and comparisons with plain tuples work)."""

    start: float
    end: float
    text: str


# (positions of the audios in the batch, their windows) -> each window's tokens: see seek_decode_batch
WindowsDecoder = Callable[[list[int], list[torch.Tensor]], list[list[int]]]


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


@dataclass
class _Seek:
    """One audio's progress through sequential decoding: where its next window starts, what it gave so far."""

    feats: torch.Tensor
    seek: int = 0
    done: bool = False
    segments: list[Segment] = field(default_factory=list)
    well_formed: list[bool] = field(default_factory=list)

    def window(self) -> torch.Tensor:
        return self.feats[self.seek: self.seek + N_FRAMES]

    def advance(self, tokens: list[int], decode_text: Callable[[list[int]], str], timestamp_begin: int) -> None:
        """Take the decoded window's segments and move the seek as Whisper does."""
        total, length = self.feats.shape[0], self.window().shape[0]
        offset = self.seek * HOP_LENGTH / SAMPLING_RATE
        parsed = parse_window(tokens, timestamp_begin, length // FRAMES_PER_STEP)
        self.well_formed.append(parsed.well_formed)
        for start, end, text in parsed.segments:
            self.segments.append(Segment(offset + start * TIMESTAMP_STEP, offset + end * TIMESTAMP_STEP,
                                         decode_text(text).strip()))
        last_window = self.seek + length >= total
        advance = length  # whole window: all speech is in complete segments, or none is
        if parsed.segments and not parsed.ends_on_single_timestamp and not last_window:
            # text the window cut off (or a segment it only opened) is decoded again from its start
            advance = (parsed.unfinished[0] if parsed.unfinished else parsed.segments[-1][1]) * FRAMES_PER_STEP
        elif parsed.unfinished:  # the audio's end, or no complete segment: keep the text, move on a whole window
            start, text = parsed.unfinished
            end = offset + length * HOP_LENGTH / SAMPLING_RATE
            self.segments.append(Segment(offset + start * TIMESTAMP_STEP, end, decode_text(text).strip()))
        self.seek += advance if 0 < advance <= length else length
        self.done = self.seek >= total or total - self.seek < MIN_WINDOW_FRAMES


def seek_decode_batch(feats: list[torch.Tensor], decode_windows: WindowsDecoder,
                      decode_text: Callable[[list[int]], str], timestamp_begin: int) -> list[LongFormResult]:
    """Decode several audios' ``(T, n_mels)`` features window by window, seeking as Whisper does, the next
    window of every audio not yet done decoded together (one batch per round).

    Args:
        feats: the features of each whole audio.
        decode_windows: (positions of the audios in ``feats``, their ``(T_w, n_mels)`` windows, ``T_w`` up to
            3000) -> each window's generated tokens with timestamps (no prompt, no end-of-text).
        decode_text: token ids -> text.
        timestamp_begin: the id of ``<|0.00|>``.
    """
    seeks = [_Seek(f) for f in feats]
    while active := [i for i, s in enumerate(seeks) if not s.done]:
        for i, tokens in zip(active, decode_windows(active, [seeks[i].window() for i in active])):
            seeks[i].advance(tokens, decode_text, timestamp_begin)
    return [LongFormResult([x for x in s.segments if x.text], s.well_formed) for s in seeks]


def seek_decode(feats: torch.Tensor, decode_window: Callable[[torch.Tensor], list[int]],
                decode_text: Callable[[list[int]], str], timestamp_begin: int) -> LongFormResult:
    """:func:`seek_decode_batch` of one audio, its windows decoded by ``decode_window`` (window -> tokens)."""
    return seek_decode_batch([feats], lambda _, windows: [decode_window(windows[0])], decode_text, timestamp_begin)[0]
