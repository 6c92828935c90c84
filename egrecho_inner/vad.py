"""Speech regions of a recording from Silero VAD (the ONNX model faster-whisper's wheel ships, run by its own
``get_speech_timestamps``)."""

from __future__ import annotations

import numpy as np

from egrecho_inner.constants import SAMPLING_RATE

Interval = tuple[float, float]  # (start, end) seconds


def speech_intervals(samples: np.ndarray, min_silence_ms: int = 100, threshold: float = 0.5) -> list[Interval]:
    """Seconds of speech in 16 kHz mono ``samples``; pauses shorter than ``min_silence_ms`` do not split speech."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(threshold=threshold, min_silence_duration_ms=min_silence_ms, speech_pad_ms=0)
    found = get_speech_timestamps(np.asarray(samples, dtype=np.float32), options, sampling_rate=SAMPLING_RATE)
    return [(c["start"] / SAMPLING_RATE, c["end"] / SAMPLING_RATE) for c in found]
