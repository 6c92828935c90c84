"""Training windows of long recordings: consecutive Kaldi segments packed into cuts of up to 30 s.

Long-form decoding feeds Whisper 30 s windows that hold several utterances and the pauses between them;
a model fine-tuned only on single utterances has never seen that input. ``pack_segments`` makes it: each
window is one lhotse cut of its recording, holding the supervisions of the consecutive segments it spans
(timestamped labels give each segment's start and end relative to the window, ``egrecho_inner.dataset``).
A window starts in the pause before its first segment and ends in the pause after its last one (half the
pause, at most ``PAUSE_MARGIN`` seconds), so its first timestamp is not always ``<|0.00|>``.
"""

from __future__ import annotations

from lhotse import CutSet
from lhotse.cut import Cut

from egrecho_inner.constants import MAX_INPUT_SECONDS

PAUSE_MARGIN = 1.0  # seconds of the surrounding pause a window may take on each side


def _bounds(supervisions: list, duration: float) -> list[tuple[float, float]]:
    """(earliest start, latest end) of the context around each supervision: half the pause to its
    neighbours (the recording's edge at the ends), at most ``PAUSE_MARGIN``."""
    bounds = []
    for i, sup in enumerate(supervisions):
        before = supervisions[i - 1].end if i else 0.0
        after = supervisions[i + 1].start if i + 1 < len(supervisions) else duration
        bounds.append((max(before, sup.start - PAUSE_MARGIN, (before + sup.start) / 2 if i else 0.0),
                       min(after, sup.end + PAUSE_MARGIN, (sup.end + after) / 2 if i + 1 < len(supervisions)
                           else duration)))
    return bounds


def recording_windows(cut: Cut, max_seconds: float = MAX_INPUT_SECONDS) -> list[Cut]:
    """The windows of one recording's cut (see the module docstring), ids ``<cut id>-w<NNNN>``. Greedy:
    a window takes consecutive segments while they end within ``max_seconds`` of its start; a segment
    longer than that is a window of its own (training drops it, counted)."""
    sups = sorted((s for s in cut.supervisions), key=lambda s: (s.start, s.end))
    bounds = _bounds(sups, cut.duration)
    windows, first = [], 0
    while first < len(sups):
        last = first
        while last + 1 < len(sups) and sups[last + 1].end - sups[first].start <= max_seconds:
            last += 1
        span = sups[last].end - sups[first].start
        start = sups[first].start if span > max_seconds else max(bounds[first][0], sups[last].end - max_seconds)
        end = max(min(bounds[last][1], start + max_seconds), sups[last].end)
        window = cut.truncate(offset=start, duration=end - start, keep_excessive_supervisions=False)
        windows.append(window.with_id(f"{cut.id}-w{len(windows):04d}"))
        first = last + 1
    return windows


def pack_segments(cuts: CutSet, max_seconds: float = MAX_INPUT_SECONDS) -> CutSet:
    """Each recording's cut (all its supervisions, e.g. ``CutSet.from_manifests``) as windows of up to
    ``max_seconds`` of consecutive segments."""
    return CutSet.from_cuts(window for cut in cuts for window in recording_windows(cut, max_seconds))
