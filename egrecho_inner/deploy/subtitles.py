"""Timed transcripts out of ``egrecho transcribe``: SRT, WebVTT and JSON from (start, end, text) segments, with
their words' times when ``--word_timestamps`` found them (JSON: a ``words`` list per segment; WebVTT: a timestamp
tag before each word, karaoke style; SRT, which has no such tags: cue times from the first and last word)."""

from __future__ import annotations

import json

from typing import Optional

from egrecho_inner.seeking import Segment, joined_text
from egrecho_inner.word_timing import Word

Words = Optional[list[list[Word]]]  # per segment, or None without word timestamps

OUTPUT_FORMATS = ("txt", "srt", "vtt", "json")


def _clock(seconds: float, decimal: str) -> str:
    ms = max(round(seconds * 1000), 0)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{decimal}{ms % 1000:03d}"


def _span(segment: Segment, words: list[Word]) -> tuple[float, float]:
    """A cue's start and end: its words' first start and last end, else the segment's (``(start, end, text)``)."""
    return (words[0].start, words[-1].end) if words else (segment[0], segment[1])


def to_srt(segments: list[Segment], words: Words = None) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``."""
    cues = []
    for i, (segment, found) in enumerate(zip(segments, words or [[]] * len(segments)), 1):
        start, end = _span(segment, found)
        cues.append(f"{i}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{segment[2].strip()}\n")
    return "\n".join(cues)


def to_vtt(segments: list[Segment], words: Words = None) -> str:
    """WebVTT: a header, then ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` cues; with words, ``<HH:MM:SS.mmm>`` before each
    word after the first (WebVTT's karaoke timestamps)."""
    cues = []
    for segment, found in zip(segments, words or [[]] * len(segments)):
        start, end = _span(segment, found)
        text = segment[2].strip()
        if found:
            text = " ".join([found[0].word] + [f"<{_clock(w.start, '.')}>{w.word}" for w in found[1:]])
        cues.append(f"{_clock(start, '.')} --> {_clock(end, '.')}\n{text}\n")
    return "\n".join(["WEBVTT\n", *cues])


def to_json(utt_id: str, segments: list[Segment], words: Words = None) -> str:
    """One line: the id, the whole text and the segments with start, end (seconds) and text, and with word
    timestamps each segment's ``words`` (word, start, end, probability)."""
    items = []
    for i, (start, end, text) in enumerate(segments):
        item = {"start": round(start, 3), "end": round(end, 3), "text": text.strip()}
        if words is not None:
            item["words"] = [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3),
                              "probability": round(w.probability, 4)} for w in words[i]]
        items.append(item)
    return json.dumps({"id": utt_id, "text": joined_text(segments), "segments": items}, ensure_ascii=False)


def render(output_format: str, utt_id: str, segments: list[Segment], words: Words = None) -> str:
    """The text of ``segments`` (with their ``words``' times when given) in ``output_format`` (srt, vtt or json)."""
    if output_format == "json":
        return to_json(utt_id, segments, words) + "\n"
    return (to_srt if output_format == "srt" else to_vtt)(segments, words)
