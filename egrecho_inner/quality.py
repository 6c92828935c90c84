"""What a fine-tune did to the model besides its WER: language identification, runaway repetition and
text written on non-speech (the complaints users have about fine-tuned Whisper), as ``egrecho eval``
fields.

- ``lid_accuracy``: share of cuts whose language, detected from the audio (Whisper's language token
  after ``<|startoftranscript|>``, not forced), is the cut's own; over ``lid_cuts`` cuts (up to 30 s).
- ``repetition_rate``: share of outputs that loop, by Whisper's rule: the zlib compression ratio of the
  text is above 2.4.
- ``nonspeech_with_text``: share of the ``nonspeech_cuts`` (cuts whose reference is explicitly empty:
  noise, silence) that got any text: a letter or a digit. A lone "." is none: it is what a model that
  learned the empty transcript writes, since Whisper's decoding suppresses end-of-text as the first
  token (``begin_suppress_tokens``). None where a set has no such cuts.
"""

from __future__ import annotations

import zlib
from typing import Optional

REPETITION_COMPRESSION_RATIO = 2.4  # above it Whisper re-decodes hotter (compression_ratio_threshold)


def compression_ratio(text: str) -> float:
    """UTF-8 length over its zlib-compressed length (1.0 or so for ordinary text, high for loops)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def is_repetitive(text: str) -> bool:
    """Whisper's runaway-repetition rule: the compression ratio is above 2.4."""
    return compression_ratio(text) > REPETITION_COMPRESSION_RATIO


def has_text(hypothesis: str) -> bool:
    """Whether a hypothesis holds any word: a letter or a digit, not only punctuation or spaces."""
    return any(ch.isalnum() for ch in hypothesis)


def _share(hits: int, total: int) -> Optional[float]:
    return round(hits / total, 5) if total else None


def quality_fields(hyps: dict[str, str], nonspeech: set[str], expected_languages: dict[str, Optional[str]],
                   detected_languages: dict[str, str]) -> dict:
    """The fields above, from hypotheses by cut id, the non-speech cut ids, each cut's language (None:
    unknown) and the language detected for the cuts that were checked."""
    checked = [c for c in detected_languages if expected_languages.get(c)]
    lid_hits = sum(detected_languages[c] == expected_languages[c] for c in checked)
    loops = sum(is_repetitive(h) for h in hyps.values())
    with_text = sum(has_text(hyps[c]) for c in nonspeech)
    return {
        "lid_accuracy": _share(lid_hits, len(checked)), "lid_cuts": len(checked),
        "repetition_rate": _share(loops, len(hyps)),
        "nonspeech_cuts": len(nonspeech), "nonspeech_with_text": _share(with_text, len(nonspeech)),
    }


def segment_start_errors_ms(reference_starts: list[float], hypothesis_starts: list[float]) -> list[float]:
    """For each reference segment start (seconds), the distance in ms to the nearest hypothesis segment
    start; every reference start counts as missed by its distance to the audio's start when none came."""
    if not hypothesis_starts:
        return [1000.0 * start for start in reference_starts]
    return [1000.0 * min(abs(start - hyp) for hyp in hypothesis_starts) for start in reference_starts]


def timing_fields(errors_ms: list[float], cuts: int, key: str = "segment_start_error_ms",
                  unit: str = "segments") -> dict:
    """``key`` (``segment_start_error_ms``, or ``word_start_error_ms`` with unit words): median and 90th
    percentile over the reference ``unit`` of ``cuts`` cuts."""
    if not errors_ms:
        return {}
    ordered = sorted(errors_ms)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    median = (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2
    return {key: {"median": round(median, 1), "p90": round(p90, 1), unit: len(ordered), "cuts": cuts}}


def window_fields(well_formed: list[bool]) -> dict:
    """``timestamp_windows``: how many 30 s windows were decoded sequentially with timestamps (cuts over
    30 s, or with several reference segments) and the share whose timestamps were well formed
    (``egrecho_inner.seeking``); none when no cut was."""
    if not well_formed:
        return {}
    return {"timestamp_windows": {"windows": len(well_formed), "well_formed": _share(sum(well_formed), len(well_formed))}}
