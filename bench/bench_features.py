#!/usr/bin/env python3
"""Feature extraction and loading speed, single thread, on the same espeak-ng speech.

Usage:
    python bench/bench_features.py [--num_utts 40] [--repeats 3]

Figures, in audio seconds processed per wall second (x real time):
  extraction: ours (lhotse WhisperFbank, what prepare.sh stores) vs Hugging Face's
    WhisperFeatureExtractor as HF runs it (audio padded to 30 s; torch and numpy backends)
  loading: reading our stored lilcom_chunky features (what training does per batch) vs HF
    extracting them from the audio at batch time (what the HF examples' collators do)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # python bench/bench_features.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Row, best_of, espeak_sentences, print_rows


def run(num_utts: int = 40, repeats: int = 3) -> list[Row]:
    """Measure; returns one row per figure."""
    from lhotse import CutSet, LilcomChunkyWriter, Recording
    from transformers import WhisperFeatureExtractor

    from egrecho_inner.features import make_fbank_extractor

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        recordings = [Recording.from_file(wav).resample(16000)
                      for wav, _ in espeak_sentences(num_utts, Path(tmp), language="vi")]
        audios = [r.load_audio()[0] for r in recordings]
        seconds = sum(len(a) for a in audios) / 16000
        ours = make_fbank_extractor(80)
        hf = WhisperFeatureExtractor()
        padded = [np.pad(a, (0, hf.n_samples - len(a))) for a in audios]

        t_ours = best_of(repeats, lambda: [ours.extract(a, 16000) for a in audios])
        # what HF users pay (every clip padded to 30 s first) and the extractor itself on the same audio
        t_hf_torch = best_of(repeats, lambda: [hf._torch_extract_fbank_features(p[None], "cpu") for p in padded])
        t_hf_numpy = best_of(repeats, lambda: [hf._np_extract_fbank_features(p[None], "cpu") for p in padded])
        t_hf_torch_equal = best_of(repeats, lambda: [hf._torch_extract_fbank_features(a[None], "cpu") for a in audios])
        t_hf_numpy_equal = best_of(repeats, lambda: [hf._np_extract_fbank_features(a[None], "cpu") for a in audios])
        cuts = CutSet.from_cuts(r.to_cut() for r in recordings).compute_and_store_features(
            ours, Path(tmp) / "feats", storage_type=LilcomChunkyWriter, progress_bar=False).to_eager()
        t_load = best_of(repeats, lambda: [c.load_features() for c in cuts])
    speed = lambda t: seconds / t  # noqa: E731
    return [
        Row("fbank extraction, 1 thread, same audio", "x real time", speed(t_ours), speed(t_hf_torch_equal),
            "HF extractor, torch, without its 30 s padding"),
        Row("fbank extraction, 1 thread, same audio", "x real time", speed(t_ours), speed(t_hf_numpy_equal),
            "HF extractor, numpy, without its 30 s padding"),
        Row("fbank extraction, 1 thread, as used", "x real time", speed(t_ours), speed(t_hf_torch),
            "HF extractor, torch, padding each clip to 30 s as HF users do"),
        Row("fbank extraction, 1 thread, as used", "x real time", speed(t_ours), speed(t_hf_numpy),
            "HF extractor, numpy, padding each clip to 30 s"),
        Row("features per batch: stored lilcom vs extracted", "x real time", speed(t_load), speed(t_hf_torch),
            "HF extractor, torch"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_utts", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print_rows(run(args.num_utts, args.repeats))


if __name__ == "__main__":
    main()
