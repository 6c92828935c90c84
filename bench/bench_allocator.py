#!/usr/bin/env python3
"""Peak memory and speed of run_vi_demo.sh's LoRA training under each C allocator.

Usage (after ``bash local/run_vi_demo.sh``, whose data and whisper-base it trains on):
    python bench/bench_allocator.py [--max_steps 100] [--allocators system tcmalloc jemalloc]

Runs the training ``local/run_vi_demo.sh`` runs (``config/demo_lora.yaml``, its English replay, packed 30 s windows and
non-speech cuts, un-padded) for ``--max_steps`` steps once per allocator, one after another: ``system`` is
glibc's malloc, ``tcmalloc`` and ``jemalloc`` are preloaded as ``finetune.sh --allocator`` does (Debian:
libtcmalloc-minimal4, libjemalloc2). Prints each run's peak resident memory (the training process and the
loader worker it waited for) and ``train_runtime``, and both against glibc's. The machine's speed drifts
over an hour, so compare the runs of one invocation, not figures of different days.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RECIPE_DIR = Path(__file__).resolve().parent.parent
FBANK = "data/fbank_whisper80"
PRELOAD = {"tcmalloc": "libtcmalloc_minimal.so.4", "jemalloc": "libjemalloc.so.2"}
# run_vi_demo.sh's training (its mix_opts), spelled out here: keep the two in step
RUN_SH_TRAINING = ["-c", "config/demo_lora.yaml", "--base_model", "pretrained/whisper-base",
                   "--manifest_dir", FBANK, "--prefix_name", "demo_vi",
                   "--replay", f"[{FBANK}/demo_en_cuts_train.jsonl.gz, {FBANK}/demo_vi_long_cuts_train.jsonl.gz]",
                   "--replay_prob", "[0.2, 0.1]", "--nospeech_cuts", f"{FBANK}/nonspeech_cuts_train.jsonl.gz",
                   "--nospeech_prob", "0.1"]


def library_path(soname: str) -> str | None:
    """Where the dynamic linker finds ``soname`` (``local/find_library.sh``, as finetune.sh asks), or None."""
    found = subprocess.run(["bash", str(RECIPE_DIR / "local/find_library.sh"), soname],
                           capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None


def train_once(allocator: str, max_steps: int, output_dir: Path) -> tuple[float, float]:
    """One training run; returns (peak resident memory in GiB, train_runtime in s)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("LD_PRELOAD", None)
    if allocator != "system":
        path = library_path(PRELOAD[allocator])
        if path is None:
            sys.exit(f"bench_allocator: {PRELOAD[allocator]} is not installed (apt-get install "
                     f"{'libtcmalloc-minimal4' if allocator == 'tcmalloc' else 'libjemalloc2'})")
        env["LD_PRELOAD"] = path
    cmd = [sys.executable, "egrecho_inner/lora.py", *RUN_SH_TRAINING, "--max_steps", str(max_steps),
           "--eval_steps", str(max_steps), "--save_steps", str(max_steps), "--output_dir", str(output_dir)]
    with open(output_dir.parent / f"{allocator}.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=RECIPE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"bench_allocator: training with {allocator} failed, see {log.name}")
    runtime = json.loads((output_dir / "train_results.json").read_text())["train_runtime"]
    return usage.ru_maxrss / 2**20, runtime  # ru_maxrss: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max_steps", type=int, default=100)
    parser.add_argument("--allocators", nargs="+", default=["system", "tcmalloc", "jemalloc"],
                        choices=["system", *PRELOAD])
    args = parser.parse_args()
    for need in ("pretrained/whisper-base", f"{FBANK}/demo_vi_long_cuts_train.jsonl.gz"):
        if not (RECIPE_DIR / need).exists():
            sys.exit(f"bench_allocator: {need} is missing: run bash local/run_vi_demo.sh first")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_allocator_") as tmp:
        for allocator in args.allocators:
            results[allocator] = train_once(allocator, args.max_steps, Path(tmp) / allocator)
            print(f"{allocator}: peak {results[allocator][0]:.2f} GiB, train_runtime {results[allocator][1]:.1f} s",
                  flush=True)
    base = results.get("system")
    print(f"\n| allocator ({args.max_steps} steps of run_vi_demo.sh's training) | peak memory (GiB) | train_runtime (s) |"
          + (" memory / glibc | time / glibc |" if base else ""))
    print("|---|---:|---:|" + ("---:|---:|" if base else ""))
    for allocator, (peak, runtime) in results.items():
        ratios = f" {peak / base[0]:.2f}x | {runtime / base[1]:.2f}x |" if base else ""
        print(f"| {allocator} | {peak:.2f} | {runtime:.1f} |{ratios}")


if __name__ == "__main__":
    main()
