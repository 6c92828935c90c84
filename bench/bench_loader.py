#!/usr/bin/env python3
"""Training data loading speed per dataloader worker, with MUSAN-style noise mixing and SpecAugment on.

Usage:
    python bench/bench_loader.py [--num_utts 256] [--batch_size 8] [--epochs 2] [--num_workers 2]
        [--sampling_rate 16000] [--consumer_samples_per_s 800 --consumer "H100 ..."]

Our training loader (``data_module.train_loader``: stored features, mixed cuts re-extracted from their
mixed audio, SpecAugment, labels; padded to 30 s, and un-padded) against lhotse's own ASR loader
(``K2SpeechRecognitionDataset``) on the same cuts, sampler settings and workers, twice: on the same stored
features (lhotse then mixes the noise's stored features into the speech's in the feature domain: cheaper,
but not what Whisper's normalised log-mel allows, see WhisperDataset) and with every feature computed from
audio (noise mixed into the audio, as we do for mixed cuts). The noise is generated (white and brown noise,
a hum) in MUSAN's layout: 10 s cuts with stored features. The speech is espeak-ng English stored at
``--sampling_rate`` (most ASR corpora are 16 kHz; at any other rate each mixed cut is resampled as it is
loaded).

Rates are steady-state: cuts/s from each epoch's first batch to its end (worker start-up, about 0.1 s per
epoch here, is left out: a real epoch is hours long). "Per worker" is measured with one worker, which then
has a core to itself (the main process, running the sampler, has the other). With
``--consumer_samples_per_s`` it also prints how many workers that consumer (a GPU's training step) needs.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

if __package__ in (None, ""):  # python bench/bench_loader.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Row, espeak_cuts, print_rows  # noqa: E402

# un-padded whisper-small on one H100, 5 s clips: the target of bench/gpu.sh, not (yet) measured
H100_UNPADDED_SMALL_SAMPLES_PER_S = 800.0


def make_corpus(workdir: Path, num_utts: int, sampling_rate: int = 16000) -> Path:
    """A manifest dir with ``bench_cuts_train.jsonl.gz`` (espeak-ng English stored at ``sampling_rate``) and
    ``musan_cuts.jsonl.gz``."""
    from lhotse import CutSet, Recording

    from egrecho_inner.features import make_fbank_extractor
    from egrecho_inner.storage import compute_and_store, store_audio

    extractor = make_fbank_extractor(80)
    # stored as prepare.sh --audio_16k stores it (at sampling_rate here): files the cuts read as they are
    speech = store_audio(espeak_cuts(num_utts, workdir / "speech").resample(sampling_rate), workdir / "stored")
    rng = np.random.default_rng(0)
    noises = {"white": rng.normal(0, 0.1, 160000), "brown": np.cumsum(rng.normal(0, 0.01, 160000)),
              "hum": 0.2 * np.sin(2 * np.pi * 50 * np.arange(160000) / 16000)}
    noise_cuts = []
    for name, signal in noises.items():
        path = workdir / f"noise-{name}.wav"
        sf.write(path, (signal / np.abs(signal).max() * 0.3).astype(np.float32), 16000)
        noise_cuts.append(Recording.from_file(path).to_cut())
    out = workdir / "fbank"
    cuts = speech.resample(16000)  # features are computed at 16 kHz whatever is stored
    compute_and_store(cuts, extractor, out / "bench_feats_train", out / "bench_cuts_train.jsonl.gz", 1)
    compute_and_store(CutSet.from_cuts(noise_cuts), extractor, out / "musan_feats", out / "musan_cuts.jsonl.gz", 1)
    return out


def _batch_size(batch: dict) -> int:
    return len(batch["input_features"] if "input_features" in batch else batch["inputs"])


def cuts_per_second(loader, epochs: int) -> float:
    """Steady-state cuts/s over ``epochs`` epochs: from each epoch's first delivered batch to its end."""
    seen, elapsed = 0, 0.0
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        batches = iter(loader)
        next(batches)  # the workers are up
        start = time.perf_counter()
        seen += sum(_batch_size(batch) for batch in batches)
        elapsed += time.perf_counter() - start
    return seen / elapsed


def run(num_utts: int = 256, batch_size: int = 8, epochs: int = 2, num_workers: int = 2,
        sampling_rate: int = 16000, consumer_samples_per_s: float = H100_UNPADDED_SMALL_SAMPLES_PER_S,
        consumer: str = "one H100, un-padded whisper-small 5 s clips (gpu.sh target, not measured)",
        training_samples_per_s: float | None = None) -> list[Row]:
    """Ours vs lhotse's loader in cuts/s, per worker and with ``num_workers``; the workers the consumer needs;
    with ``training_samples_per_s``, also the loader's headroom over what training here consumes."""
    import torch
    from lhotse import load_manifest, load_manifest_lazy
    from lhotse.dataset import (CutMix, K2SpeechRecognitionDataset, OnTheFlyFeatures, PrecomputedFeatures,
                                SpecAugment)

    from egrecho_inner.data_module import DataArgs, LhotseLoader, make_sampler, train_loader
    from egrecho_inner.dataset import WhisperLabeler
    from egrecho_inner.features import make_fbank_extractor
    from egrecho_inner.tokenizer import build_whisper_tokenizer

    torch.set_num_threads(1)
    labeler = WhisperLabeler(build_whisper_tokenizer())
    with tempfile.TemporaryDirectory() as tmp:
        manifest_dir = make_corpus(Path(tmp), num_utts, sampling_rate)
        musan = load_manifest(manifest_dir / "musan_cuts.jsonl.gz")

        def ours(workers: int, unpadded: bool = False) -> LhotseLoader:
            args = DataArgs(manifest_dir=str(manifest_dir), prefix_name="bench", max_cuts=batch_size,
                            num_mel_bins=80, num_buckets=4, enable_musan=True, musan_prob=0.5,
                            enable_spec_aug=True, num_workers=workers,
                            remove_whisper_encoder_input_length_restriction=unpadded)
            return train_loader(args, labeler)

        def lhotse_loader(workers: int, stored: bool) -> LhotseLoader:
            dataset = K2SpeechRecognitionDataset(
                cut_transforms=[CutMix(musan, p=0.5, snr=(10, 20), pad_to_longest=False, preserve_id=True)],
                input_strategy=PrecomputedFeatures() if stored else OnTheFlyFeatures(make_fbank_extractor(80)),
                input_transforms=[SpecAugment(time_warp_factor=80, num_frame_masks=2)])
            args = DataArgs(max_cuts=batch_size, num_buckets=4)
            sampler = make_sampler(load_manifest_lazy(manifest_dir / "bench_cuts_train.jsonl.gz"), args,
                                   shuffle=True, world_size=1, rank=0, seed=42)
            return LhotseLoader(sampler, dataset, workers)

        padded = cuts_per_second(ours(1), epochs)
        unpadded = cuts_per_second(ours(1, unpadded=True), epochs)
        lhotse_stored = cuts_per_second(lhotse_loader(1, stored=True), epochs)
        lhotse_audio = cuts_per_second(lhotse_loader(1, stored=False), epochs)
        padded_n = cuts_per_second(ours(num_workers), epochs)
        lhotse_stored_n = cuts_per_second(lhotse_loader(num_workers, stored=True), epochs)

    stored_name = "lhotse K2SpeechRecognitionDataset, same stored features, noise mixed in the feature domain"
    audio_name = "lhotse K2SpeechRecognitionDataset, all features from audio"
    each = "MUSAN + SpecAugment, 1 worker"
    rows = [Row(f"training loader, padded to 30 s, {each}", "cuts/s per worker", padded, lhotse_stored, stored_name),
            Row(f"training loader, padded to 30 s, {each}", "cuts/s per worker", padded, lhotse_audio, audio_name),
            Row(f"training loader, un-padded, {each}", "cuts/s per worker", unpadded, lhotse_stored, stored_name),
            Row(f"training loader, padded to 30 s, MUSAN + SpecAugment, {num_workers} workers", "cuts/s", padded_n,
                lhotse_stored_n, stored_name)]
    workers = math.ceil(consumer_samples_per_s / unpadded)
    print(f"workers needed to feed {consumer}: {consumer_samples_per_s:g} samples/s / {unpadded:.1f} cuts/s per "
          f"un-padded worker = {workers}")
    rows.append(Row(f"workers needed to feed {consumer}", "workers", workers, 1, "one worker"))
    if training_samples_per_s:
        rows.append(Row(f"training loader vs whisper-base training step ({num_workers} workers)", "cuts/s",
                        padded_n, training_samples_per_s, "training consumes"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_utts", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--sampling_rate", type=int, default=16000, help="of the stored speech")
    parser.add_argument("--consumer_samples_per_s", type=float, default=H100_UNPADDED_SMALL_SAMPLES_PER_S,
                        help="samples/s a training step consumes (e.g. measured by bench_train.py on a GPU)")
    parser.add_argument("--consumer", default="one H100, un-padded whisper-small 5 s clips (gpu.sh target, not measured)")
    args = parser.parse_args()
    print_rows(run(args.num_utts, args.batch_size, args.epochs, args.num_workers, args.sampling_rate,
                   args.consumer_samples_per_s, args.consumer))


if __name__ == "__main__":
    main()
