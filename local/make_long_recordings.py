#!/usr/bin/env python3
"""Join the utterances of a Kaldi data dir into long recordings, with Kaldi ``segments`` giving the joins.

Usage:
    ./local/make_long_recordings.py --kaldi_dir data/kaldi/demo/test --out_dir data/kaldi/demo_long/test \
        [--per_recording 10] [--pause_seconds "[0.3, 0.9]"] [--seed 0]

Consecutive utterances of one language (in id order) are joined, ``per_recording`` at a time, with a pause
of random length in ``pause_seconds`` between them, into 16 kHz recordings ``<out_dir>/wavs/<id>.wav``.
The output dir holds ``wav.scp``, ``segments`` (each utterance's place in its recording), ``text`` and
``utt2lang`` under the original utterance ids: long-form decoding is scored on it (``egrecho eval
--kaldi_dir``, one cut per recording with a reference segment per utterance), and ``prepare.sh
--pack_segments true`` makes ≤ 30 s training windows of it.
"""

from __future__ import annotations

import random
import sys
from itertools import groupby
from pathlib import Path

import numpy as np
import soundfile
from lhotse import CutSet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from egrecho_inner.constants import SAMPLING_RATE  # noqa: E402
from egrecho_inner.errors import InputError  # noqa: E402
from egrecho_inner.kaldi import load_kaldi_dir  # noqa: E402
from egrecho_inner.utils import atomic_path, run_cli  # noqa: E402


def make_long_recordings(kaldi_dir: str, out_dir: str, per_recording: int = 10,
                         pause_seconds: tuple[float, float] = (0.3, 0.9), seed: int = 0) -> None:
    """Write the joined recordings and their Kaldi files (see the module docstring).

    Args:
        kaldi_dir: a Kaldi data dir of one utterance per recording (``wav.scp``, ``text``, ``utt2lang``).
        out_dir: where the long recordings' Kaldi dir goes.
        per_recording: utterances per recording (the last recording of a language may hold fewer).
        pause_seconds: range of the pause between two utterances.
        seed: seed of the pause lengths.
    """
    if per_recording < 1:
        raise InputError(f"per_recording must be at least 1, got {per_recording}")
    recordings, supervisions, report = load_kaldi_dir(kaldi_dir)
    if len(supervisions) != len(recordings):
        raise InputError(f"{kaldi_dir}: has segments already (join only dirs of one utterance per recording)")
    cuts = sorted(CutSet.from_manifests(recordings=recordings, supervisions=supervisions).resample(SAMPLING_RATE),
                  key=lambda c: (c.supervisions[0].language or "", c.id))
    rng = random.Random(seed)
    out, wavs = Path(out_dir), Path(out_dir) / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    files = {name: [] for name in ("wav.scp", "segments", "text", "utt2lang")}
    for language, group in groupby(cuts, key=lambda c: c.supervisions[0].language or ""):
        group = list(group)
        for first in range(0, len(group), per_recording):
            members = group[first: first + per_recording]
            reco_id = f"long_{language}_{first // per_recording:04d}"
            pieces, offset = [], 0.0
            for i, cut in enumerate(members):
                if i:
                    pause = np.zeros(round(rng.uniform(*pause_seconds) * SAMPLING_RATE), dtype=np.float32)
                    pieces.append(pause)
                    offset += len(pause) / SAMPLING_RATE
                audio = cut.load_audio()[0]
                sup = cut.supervisions[0]
                files["segments"].append(f"{sup.id} {reco_id} {offset:.3f} {offset + len(audio) / SAMPLING_RATE:.3f}")
                files["text"].append(f"{sup.id} {sup.text}")
                files["utt2lang"].append(f"{sup.id} {sup.language}")
                pieces.append(audio)
                offset += len(audio) / SAMPLING_RATE
            wav = wavs / f"{reco_id}.wav"
            with atomic_path(wav) as tmp:
                soundfile.write(tmp, np.concatenate(pieces), SAMPLING_RATE, format="WAV")
            files["wav.scp"].append(f"{reco_id} {wav.resolve()}")
    for name, lines in files.items():
        with atomic_path(out / name) as tmp:
            tmp.write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")
    print(f"{out_dir}: {len(files['wav.scp'])} recordings of {len(files['text'])} utterances "
          f"({report.summary()})")


if __name__ == "__main__":
    run_cli(make_long_recordings)
