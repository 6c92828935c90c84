"""Synthetic speech for demos, tests and benchmarks: one espeak-ng call, used by all of them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from egrecho_inner.utils import Pathlike


def espeak(text: str, wav: Pathlike, voice: str = "vi", speed: int = 160) -> Path:
    """Speak ``text`` with espeak-ng's ``voice`` (e.g. ``vi``, ``en+f3``, ``cmn-latn-pinyin``) at ``speed``
    words per minute into ``wav`` (22.05 kHz, 16-bit mono); returns the path."""
    wav = Path(wav)
    wav.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True)
    return wav
