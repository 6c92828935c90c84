"""Timed transcripts out of ``egrecho transcribe``: SRT, WebVTT and JSON from (start, end, text) segments."""

from __future__ import annotations

import json

from egrecho_inner.seeking import Segment, joined_text

OUTPUT_FORMATS = ("txt", "srt", "vtt", "json")


def _clock(seconds: float, decimal: str) -> str:
    ms = max(round(seconds * 1000), 0)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{decimal}{ms % 1000:03d}"


def to_srt(segments: list[Segment]) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``."""
    cues = [f"{i}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{text.strip()}\n"
            for i, (start, end, text) in enumerate(segments, 1)]
    return "\n".join(cues)


def to_vtt(segments: list[Segment]) -> str:
    """WebVTT: a header, then ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` cues."""
    cues = [f"{_clock(start, '.')} --> {_clock(end, '.')}\n{text.strip()}\n" for start, end, text in segments]
    return "\n".join(["WEBVTT\n", *cues])


def to_json(utt_id: str, segments: list[Segment]) -> str:
    """One line: the id, the whole text and the segments with start, end (seconds) and text."""
    return json.dumps({"id": utt_id, "text": joined_text(segments),
                       "segments": [{"start": round(s, 3), "end": round(e, 3), "text": t.strip()}
                                    for s, e, t in segments]}, ensure_ascii=False)


def render(output_format: str, utt_id: str, segments: list[Segment]) -> str:
    """The text of ``segments`` in ``output_format`` (srt, vtt or json)."""
    if output_format == "json":
        return to_json(utt_id, segments) + "\n"
    return (to_srt if output_format == "srt" else to_vtt)(segments)
