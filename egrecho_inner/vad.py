"""Speech regions of a recording from Silero VAD (the ONNX model faster-whisper's wheel ships, run by its own
``get_speech_timestamps``), and spans of up to 30 s cut at its pauses for batched decoding."""

from __future__ import annotations

import numpy as np

from egrecho_inner.constants import MAX_INPUT_SECONDS, SAMPLING_RATE

Interval = tuple[float, float]  # (start, end) seconds


def speech_intervals(samples: np.ndarray, min_silence_ms: int = 100, threshold: float = 0.5, pad_ms: int = 0,
                     max_speech_seconds: float = float("inf")) -> list[Interval]:
    """Seconds of speech in 16 kHz mono ``samples``; pauses shorter than ``min_silence_ms`` do not split speech,
    each region is widened by ``pad_ms`` on both sides, and speech longer than ``max_speech_seconds`` is split (at
    its quietest point, else where it reaches the limit)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(threshold=threshold, min_silence_duration_ms=min_silence_ms, speech_pad_ms=pad_ms,
                         max_speech_duration_s=max_speech_seconds)
    found = get_speech_timestamps(np.asarray(samples, dtype=np.float32), options, sampling_rate=SAMPLING_RATE)
    return [(c["start"] / SAMPLING_RATE, c["end"] / SAMPLING_RATE) for c in found]


def speech_chunks(samples: np.ndarray, max_seconds: float = MAX_INPUT_SECONDS, min_silence_ms: int = 160,
                  pad_ms: int = 200) -> list[Interval]:
    """Contiguous spans of the recording, each at most ``max_seconds`` long, that together hold all its speech:
    consecutive speech regions are merged while the span from the first one's start to the last one's end fits
    (the pauses inside a span stay, so a span's times are the recording's plus its start); the silence between
    spans is left out. Defaults as faster-whisper's batched pipeline: pauses of 160 ms split, 200 ms padding."""
    chunks: list[Interval] = []
    for start, end in speech_intervals(samples, min_silence_ms, pad_ms=pad_ms, max_speech_seconds=max_seconds):
        if chunks and end - chunks[-1][0] <= max_seconds:
            chunks[-1] = (chunks[-1][0], end)
        else:
            chunks.append((start, end))
    return chunks
