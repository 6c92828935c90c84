#!/usr/bin/env python3
"""Feature extraction and loading speed, single thread, on the same espeak-ng speech.

Usage:
    python bench/bench_features.py [--num_utts 40] [--repeats 3]

Prints times real-time (audio seconds processed per wall second) for:
  ours: lhotse WhisperFbank on each utterance (what prepare.sh stores)
  HF torch / HF numpy: WhisperFeatureExtractor's two backends, as HF runs them (audio padded to 30 s)
  HF torch unpadded: the same on the utterance alone, the like-for-like baseline
  load: reading our lilcom_chunky features back (what training does per batch)
and each one's ratio to ours. Targets: extraction >= 2,500x, loading >= 5,000x real time.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet, LilcomChunkyWriter, Recording
from transformers import WhisperFeatureExtractor

from egrecho_inner.features import make_fbank_extractor

WORDS = "tôi chúng anh cô bạn mẹ bố đọc sách ăn cơm uống trà đi học làm việc xem phim ở nhà trường chợ".split()


def make_audio(num_utts: int, workdir: Path) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    recordings = []
    for i in range(num_utts):
        wav = workdir / f"{i}.wav"
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(6, 30))))
        subprocess.run(["espeak-ng", "-v", "vi", "-w", str(wav), text], check=True)
        recordings.append(Recording.from_file(wav).resample(16000))
    return [r.load_audio()[0] for r in recordings]


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_utts", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        audios = make_audio(args.num_utts, Path(tmp))
        seconds = sum(len(a) for a in audios) / 16000
        ours = make_fbank_extractor(80)
        hf = WhisperFeatureExtractor()
        padded = [np.pad(a, (0, hf.n_samples - len(a))) for a in audios]

        results = {
            "ours (lhotse WhisperFbank)": best_of(args.repeats, lambda: [ours.extract(a, 16000) for a in audios]),
            "HF torch backend (30 s padded)": best_of(
                args.repeats, lambda: [hf._torch_extract_fbank_features(p[None], "cpu") for p in padded]),
            "HF numpy backend (30 s padded)": best_of(
                args.repeats, lambda: [hf._np_extract_fbank_features(p[None], "cpu") for p in padded]),
            "HF torch backend (unpadded)": best_of(
                args.repeats, lambda: [hf._torch_extract_fbank_features(a[None], "cpu") for a in audios]),
        }
        cuts = CutSet.from_cuts(
            Recording.from_file(Path(tmp) / f"{i}.wav").resample(16000).to_cut() for i in range(args.num_utts)
        ).compute_and_store_features(ours, Path(tmp) / "feats", storage_type=LilcomChunkyWriter, progress_bar=False)
        cuts = cuts.to_eager()
        load_time = best_of(args.repeats, lambda: [c.load_features() for c in cuts])

    print(f"{args.num_utts} utterances, {seconds:.1f} s of audio, 1 thread, best of {args.repeats}")
    base = results["ours (lhotse WhisperFbank)"]
    print(f"{'figure':34s} {'x real time':>12s} {'time vs ours':>13s}")
    for name, t in results.items():
        print(f"{name:34s} {seconds / t:12,.0f} {t / base:12.2f}x")
    print(f"{'load lilcom features (ours)':34s} {seconds / load_time:12,.0f} {load_time / base:12.2f}x")


if __name__ == "__main__":
    main()
