#!/usr/bin/env python3
"""Training data loading speed, with MUSAN-style noise mixing and SpecAugment on.

Usage:
    python bench/bench_loader.py [--num_utts 64] [--batch_size 8] [--num_workers 2] [--batches 24]

Our training loader (``data_module.train_loader``: stored features, mixed cuts re-extracted from
their mixed audio, SpecAugment, labels, 30 s padding) against lhotse's own ASR loader
(``K2SpeechRecognitionDataset``, features computed from audio, the same CutMix and SpecAugment) on
the same cuts, sampler settings and workers. The noise is generated (white and brown noise, a hum)
in MUSAN's layout: 10 s cuts with stored features. Prints cuts/s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

if __package__ in (None, ""):  # python bench/bench_loader.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Row, espeak_cuts, print_rows  # noqa: E402


def make_corpus(workdir: Path, num_utts: int) -> Path:
    """A manifest dir with ``bench_cuts_train.jsonl.gz`` (espeak-ng English) and ``musan_cuts.jsonl.gz``."""
    from lhotse import CutSet, Recording

    from egrecho_inner.features import make_fbank_extractor
    from egrecho_inner.storage import compute_and_store

    extractor = make_fbank_extractor(80)
    cuts = espeak_cuts(num_utts, workdir / "speech")
    rng = np.random.default_rng(0)
    noises = {"white": rng.normal(0, 0.1, 160000), "brown": np.cumsum(rng.normal(0, 0.01, 160000)),
              "hum": 0.2 * np.sin(2 * np.pi * 50 * np.arange(160000) / 16000)}
    noise_cuts = []
    for name, signal in noises.items():
        path = workdir / f"noise-{name}.wav"
        sf.write(path, (signal / np.abs(signal).max() * 0.3).astype(np.float32), 16000)
        noise_cuts.append(Recording.from_file(path).to_cut())
    out = workdir / "fbank"
    compute_and_store(cuts, extractor, out / "bench_feats_train", out / "bench_cuts_train.jsonl.gz", 1)
    compute_and_store(CutSet.from_cuts(noise_cuts), extractor, out / "musan_feats", out / "musan_cuts.jsonl.gz", 1)
    return out


def cuts_per_second(loader, num_cuts: int) -> float:
    """Cuts/s over epochs (worker start-up included, as in training) until ``num_cuts`` were delivered."""
    seen, epoch = 0, 0
    start = time.perf_counter()
    while seen < num_cuts:
        loader.set_epoch(epoch)
        for batch in loader:
            seen += len(batch["input_features"] if "input_features" in batch else batch["inputs"])
            if seen >= num_cuts:
                break
        epoch += 1
    return seen / (time.perf_counter() - start)


def run(num_utts: int = 64, batch_size: int = 8, num_workers: int = 2, batches: int = 24,
        training_samples_per_s: float | None = None) -> list[Row]:
    """Our loader vs lhotse's, in cuts/s; with ``training_samples_per_s``, also the loader's headroom
    over what training consumes."""
    import torch
    from lhotse import load_manifest, load_manifest_lazy
    from lhotse.dataset import CutMix, K2SpeechRecognitionDataset, OnTheFlyFeatures, SpecAugment

    from egrecho_inner.data_module import DataArgs, LhotseLoader, make_sampler, train_loader
    from egrecho_inner.dataset import WhisperLabeler
    from egrecho_inner.features import make_fbank_extractor
    from egrecho_inner.tokenizer import build_whisper_tokenizer

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        manifest_dir = make_corpus(Path(tmp), num_utts)
        args = DataArgs(manifest_dir=str(manifest_dir), prefix_name="bench", max_cuts=batch_size, num_mel_bins=80, num_buckets=4,
                        enable_musan=True, musan_prob=0.5, enable_spec_aug=True, num_workers=num_workers)
        ours = train_loader(args, WhisperLabeler(build_whisper_tokenizer()))

        musan = load_manifest(manifest_dir / "musan_cuts.jsonl.gz")
        dataset = K2SpeechRecognitionDataset(
            cut_transforms=[CutMix(musan, p=0.5, snr=(10, 20), pad_to_longest=False, preserve_id=True)],
            input_strategy=OnTheFlyFeatures(make_fbank_extractor(80)),
            input_transforms=[SpecAugment(time_warp_factor=80, num_frame_masks=2)])
        sampler = make_sampler(load_manifest_lazy(manifest_dir / "bench_cuts_train.jsonl.gz"), args, shuffle=True,
                               world_size=1, rank=0, seed=42)
        baseline = LhotseLoader(sampler, dataset, num_workers)
        ours_rate = cuts_per_second(ours, batches * batch_size)
        lhotse_rate = cuts_per_second(baseline, batches * batch_size)
    rows = [Row(f"training loader, MUSAN + SpecAugment, {num_workers} workers", "cuts/s", ours_rate, lhotse_rate,
                "lhotse K2SpeechRecognitionDataset")]
    if training_samples_per_s:
        rows.append(Row(f"training loader vs whisper-base training step ({num_workers} workers)", "cuts/s",
                        ours_rate, training_samples_per_s, "training consumes"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_utts", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=24)
    args = parser.parse_args()
    print_rows(run(args.num_utts, args.batch_size, args.num_workers, args.batches))


if __name__ == "__main__":
    main()
