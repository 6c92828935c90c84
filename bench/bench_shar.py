#!/usr/bin/env python3
"""Training data from Lhotse Shar shards against the lilcom feature dir: loader speed, and memory as the
corpus grows.

Usage:
    python bench/bench_shar.py [--num_utts 64] [--scale 100] [--epochs 5] [--num_workers 2] [--small_buffer 32]

Both loaders are ``data_module.train_loader`` on the same stored features (espeak-ng English, MUSAN-style
noise mixed in and SpecAugment on, as in bench_loader.py), once from the cut manifest and its lilcom_chunky
files and once with ``shar: true`` from Shar shards of the same cuts. Prints cuts/s of each (steady state over
``--epochs`` epochs). Then the memory: each loader in a fresh process counts its batches (a pass over the
cuts) and delivers a whole epoch, on the corpus and on one ``--scale`` times larger (the cuts repeated under
new ids, shards of 1,000 cuts); prints the peak resident memory of each, and the large corpus's over the
small one's. The bucketing sampler holds ``sampler_buffer_size`` cuts (Shar: with their features), so the
memory is flat only once the corpus is larger than that buffer: Shar is measured with lhotse's default
(20,000, more than the large corpus) and with ``--small_buffer`` (fewer than the small corpus).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # python bench/bench_shar.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_loader import cuts_per_second, make_corpus  # noqa: E402
from bench.common import RECIPE_DIR, Row, print_rows  # noqa: E402


DEFAULT_BUFFER = 20000  # DataArgs.sampler_buffer_size


def _args(manifest_dir: Path, shar: bool, num_workers: int, buffer: int = DEFAULT_BUFFER, batch_size: int = 8):
    from egrecho_inner.data_module import DataArgs

    return DataArgs(manifest_dir=str(manifest_dir), prefix_name="bench", max_cuts=batch_size, num_mel_bins=80,
                    num_buckets=4, enable_musan=True, musan_prob=0.5, enable_spec_aug=True, num_workers=num_workers,
                    shar=shar, sampler_buffer_size=buffer)


def _loader(manifest_dir: Path, shar: bool, num_workers: int, buffer: int = DEFAULT_BUFFER):
    from egrecho_inner.data_module import train_loader
    from egrecho_inner.dataset import WhisperLabeler
    from egrecho_inner.tokenizer import build_whisper_tokenizer

    return train_loader(_args(manifest_dir, shar, num_workers, buffer), WhisperLabeler(build_whisper_tokenizer()))


def deliver_epoch(loader) -> int:
    """Take every batch of one epoch from the loader; returns how many."""
    loader.set_epoch(0)
    return sum(1 for _ in loader)


def enlarge(manifest_dir: Path, scale: int) -> Path:
    """A copy of the corpus ``scale`` times larger: a manifest and Shar shards of the cuts repeated under
    new ids (the same feature files), and the noise cuts."""
    from lhotse import CutSet, load_manifest

    from egrecho_inner.storage import write_shar

    out = manifest_dir.parent / f"x{scale}"
    out.mkdir()
    cuts = load_manifest(manifest_dir / "bench_cuts_train.jsonl.gz")
    large = CutSet.from_cuts(c.with_id(f"{c.id}-r{r}") for r in range(scale) for c in cuts)
    large.to_file(out / "bench_cuts_train.jsonl.gz")
    write_shar(large, out / "bench_shar_train", shard_size=1000)
    (out / "musan_cuts.jsonl.gz").symlink_to(manifest_dir / "musan_cuts.jsonl.gz")
    return out


def peak_memory(manifest_dir: Path, shar: bool, num_workers: int, buffer: int) -> dict:
    """In a fresh process: count the loader's batches, deliver a whole epoch; peak RSS (MiB) of that process
    and of its largest dataloader worker (the workers are shut down first, so they count)."""
    code = (f"import json, resource, sys; sys.path.insert(0, {str(RECIPE_DIR)!r}); "
            "from bench.bench_shar import _loader, deliver_epoch; from pathlib import Path; "
            f"loader = _loader(Path({str(manifest_dir)!r}), {shar}, {num_workers}, {buffer}); n = len(loader); "
            "assert deliver_epoch(loader) == n; "
            "print(json.dumps({'batches': n, 'rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
            "'workers_rss_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(num_utts: int = 64, scale: int = 100, epochs: int = 5, num_workers: int = 2,
        small_buffer: int = 32) -> list[Row]:
    import torch
    from lhotse import load_manifest

    from egrecho_inner.storage import write_shar

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        small = make_corpus(Path(tmp) / "corpus", num_utts)
        write_shar(load_manifest(small / "bench_cuts_train.jsonl.gz"), small / "bench_shar_train", shard_size=16)
        shar_rate = cuts_per_second(_loader(small, True, num_workers), epochs)
        dir_rate = cuts_per_second(_loader(small, False, num_workers), epochs)
        rows.append(Row(f"training loader from Shar shards, MUSAN + SpecAugment, {num_workers} workers", "cuts/s",
                        shar_rate, dir_rate, "lilcom feature dir"))
        tars = list((small / "bench_shar_train").glob("features.*.tar"))
        seconds = sum(c.duration for c in load_manifest(small / "bench_cuts_train.jsonl.gz"))
        kib = sum(t.stat().st_size for t in tars) / 1024
        print(f"Shar features: {kib / num_utts:.1f} KiB per cut, {kib / seconds:.1f} KiB per second of audio "
              "(what the sampler's buffer holds per cut, besides the cut itself)")
        large = enlarge(small, scale)
        for shar, buffer in ((True, DEFAULT_BUFFER), (True, small_buffer), (False, DEFAULT_BUFFER)):
            kind = f"{'Shar shards' if shar else 'lilcom dir + manifest'}, sampler buffer {buffer:,} cuts"
            before, after = (peak_memory(d, shar, num_workers, buffer) for d in (small, large))
            print(f"{kind}: {num_utts} cuts {before}; {num_utts * scale} cuts {after}")
            rows.append(Row(f"loader peak memory, {kind}, {scale}x the cuts vs 1x", "MiB",
                            after["rss_mib"] + after["workers_rss_mib"], before["rss_mib"] + before["workers_rss_mib"],
                            f"{num_utts} cuts"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_utts", type=int, default=64)
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--small_buffer", type=int, default=32, help="a sampler buffer smaller than the corpus")
    args = parser.parse_args()
    print_rows(run(args.num_utts, args.scale, args.epochs, args.num_workers, args.small_buffer))


if __name__ == "__main__":
    main()
