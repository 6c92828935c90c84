"""What the benchmarks share: result rows with a same-process baseline, timing, and espeak-ng speech."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from egrecho_inner.speech_synth import espeak

RECIPE_DIR = Path(__file__).resolve().parent.parent
# What run.sh makes, for the benches that measure on real voices after it: whisper-base and its Italian fine-tune,
# and the CTranslate2 original of whisper-base that get_whisper_base.py leaves beside it
RUN_SH_MODELS = ["pretrained/whisper-base", "exp/whisper-base-it/lora/checkpoint-final-lora-merge"]
RUN_SH_CT2 = "pretrained/whisper-base-ct2"
if str(RECIPE_DIR) not in sys.path:  # run as a script: python bench/bench_x.py
    sys.path.insert(0, str(RECIPE_DIR))

GRAMMAR = json.loads((RECIPE_DIR / "local/demo_grammar.json").read_text(encoding="utf-8"))


@dataclass
class Row:
    """One figure: our throughput and a baseline's, measured in the same process (higher is better)."""

    figure: str
    unit: str
    ours: float
    baseline: float
    baseline_name: str

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline


def print_rows(rows: list[Row]) -> None:
    print(f"{'figure':58s} {'ours':>10s} {'baseline':>10s} {'ratio':>7s}  unit / baseline")
    for r in rows:
        print(f"{r.figure:58s} {r.ours:10,.2f} {r.baseline:10,.2f} {r.ratio:6.2f}x  {r.unit} / {r.baseline_name}")


def markdown_table(rows: list[Row]) -> str:
    lines = ["| figure | ours | baseline | ratio (ours / baseline) |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.figure} ({r.unit}) | {r.ours:,.2f} | {r.baseline:,.2f} ({r.baseline_name}) | "
                     f"{r.ratio:.2f}x |")
    return "\n".join(lines)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    return min(timed(fn) for _ in range(repeats))


def espeak_cuts(num_utts: int, workdir: Path, language: str = "en", seed: int = 0):
    """16 kHz lhotse cuts of :func:`espeak_sentences`, each with its transcript and language."""
    from lhotse import CutSet, Recording, SupervisionSegment

    cuts = []
    for wav, text in espeak_sentences(num_utts, workdir, language, seed):
        recording = Recording.from_file(wav)
        cut = recording.to_cut()
        cut.supervisions = [SupervisionSegment(cut.id, recording.id, 0.0, recording.duration, text=text,
                                               language=language)]
        cuts.append(cut)
    return CutSet.from_cuts(cuts).resample(16000).to_eager()


def espeak_sentences(num_utts: int, workdir: Path, language: str = "en", seed: int = 0) -> list[tuple[Path, str]]:
    """``num_utts`` (wav, transcript) pairs: demo-grammar sentences spoken by espeak-ng (22.05 kHz)."""
    spec = GRAMMAR[language]
    rng = np.random.default_rng(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(num_utts):
        text = " ".join(str(rng.choice(slot)) for slot in spec["slots"]) + "."
        wav = workdir / f"{language}{i:04d}.wav"
        espeak(text, wav, spec["voice"])
        out.append((wav, text))
    return out
