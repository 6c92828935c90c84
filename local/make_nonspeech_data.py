#!/usr/bin/env python3
"""Write a Kaldi dir of non-speech clips (silence, noise, hum) with empty transcripts, for measuring
whether a model writes text where nobody speaks.

Usage:
    ./local/make_nonspeech_data.py --out_dir data/kaldi/nonspeech [--num_clips 24] [--language vi]

Clips of 1 to 8 s, 16 kHz: digital silence, low-level and loud white, pink and brown noise, mains hum
with harmonics, and noise bursts, each kind in turn, levels and lengths drawn from ``seed``. ``text``
holds each id alone (an empty transcript): ``egrecho eval --kaldi_dir`` scores such cuts apart as
non-speech (``nonspeech_with_text`` in errs-<part>.json). ``utt2lang`` names ``--language`` (the language
a fine-tune targets; it is not used to decode them when ``gen_args.language`` is null).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from egrecho_inner.utils import run_cli  # noqa: E402

SAMPLING_RATE = 16000
KINDS = ("silence", "white", "pink", "brown", "hum", "bursts")


def _coloured(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power falling as 1/f**exponent (0 white, 1 pink, 2 brown), unit peak."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    signal = np.fft.irfft(spectrum / freqs ** (exponent / 2), n)
    return signal / np.abs(signal).max()


def make_clip(kind: str, seconds: float, level: float, rng: np.random.Generator) -> np.ndarray:
    """One clip of ``kind`` with peak amplitude ``level``."""
    n = int(seconds * SAMPLING_RATE)
    t = np.arange(n) / SAMPLING_RATE
    if kind == "silence":
        return np.zeros(n)
    if kind in ("white", "pink", "brown"):
        return level * _coloured(rng, n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])
    if kind == "hum":
        base = rng.choice([50.0, 60.0])
        return level * sum(np.sin(2 * np.pi * base * k * t) / k for k in (1, 2, 3)) / 1.84
    gate = (rng.random(n // 1600 + 1) < 0.3).repeat(1600)[:n]  # 100 ms bursts, 30% of the time
    return level * gate * _coloured(rng, n, 1.0)


def make_nonspeech_data(out_dir: str = "data/kaldi/nonspeech", num_clips: int = 24, language: str = "vi",
                        seed: int = 0) -> None:
    """Write the clips and the Kaldi dir.

    Args:
        out_dir: the Kaldi dir (``wav.scp``, ``text``, ``utt2lang``); audio under ``<out_dir>/wavs``.
        num_clips: how many clips, the kinds taken in turn.
        language: what ``utt2lang`` says.
        seed: picks lengths and levels.
    """
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(num_clips):
        kind = KINDS[i % len(KINDS)]
        utt = f"nonspeech-{kind}-{i:03d}"
        level = float(rng.choice([0.01, 0.1, 0.5]))
        sf.write(out / "wavs" / f"{utt}.wav", make_clip(kind, float(rng.uniform(1.0, 8.0)), level, rng), SAMPLING_RATE)
        ids.append(utt)
    (out / "wav.scp").write_text("".join(f"{u} {(out / 'wavs' / f'{u}.wav').resolve()}\n" for u in ids))
    (out / "text").write_text("".join(f"{u}\n" for u in ids))
    (out / "utt2lang").write_text("".join(f"{u} {language}\n" for u in ids))
    print(f"make_nonspeech_data: wrote {num_clips} non-speech clips to {out}")


if __name__ == "__main__":
    run_cli(make_nonspeech_data)
