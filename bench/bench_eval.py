#!/usr/bin/env python3
"""Evaluation speed on CPU: ``egrecho eval`` vs faster-whisper (CTranslate2 fp32, int8) vs plain HF generate.

Usage:
    python local/get_whisper_base.py --output_dir pretrained/whisper-base   # once
    python bench/bench_eval.py --model pretrained/whisper-base --threads 2 [--num_utts 24]

All runs decode the same espeak-ng English utterances greedily (beam 1, no timestamps, temperature 0,
language given) with the same number of threads, and their wall time includes feature extraction.
faster-whisper transcribes one file at a time with VAD off, as its README's basic usage does; ours
and plain HF batch ``--batch_size`` utterances. Each line prints the time ratio against faster-whisper fp32.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lhotse import CutSet, Recording, SupervisionSegment  # noqa: E402

SENTENCES = json.loads((Path(__file__).resolve().parent.parent / "local/demo_grammar.json").read_text())["en"]["slots"]


def make_cuts(num_utts: int, workdir: Path) -> CutSet:
    rng = np.random.default_rng(0)
    cuts = []
    for i in range(num_utts):
        text = " ".join(str(rng.choice(slot)) for slot in SENTENCES) + "."
        wav = workdir / f"u{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(wav), text], check=True)
        rec = Recording.from_file(wav, recording_id=f"u{i}")
        cut = rec.to_cut()
        cut.supervisions = [SupervisionSegment(f"u{i}", f"u{i}", 0.0, rec.duration, text=text, language="en")]
        cuts.append(cut)
    return CutSet.from_cuts(cuts).resample(16000)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pretrained/whisper-base", help="transformers model dir")
    parser.add_argument("--ct2_model", help="CTranslate2 dir of the same model (default: <model>-ct2)")
    parser.add_argument("--num_utts", type=int, default=24)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    ct2_dir = args.ct2_model or args.model.rstrip("/") + "-ct2"
    torch.set_num_threads(args.threads)

    from faster_whisper import WhisperModel
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from egrecho_inner.evaluate import GenArgs, evaluate

    with tempfile.TemporaryDirectory() as tmp:
        cuts = make_cuts(args.num_utts, Path(tmp)).to_eager()
        cuts.to_file(Path(tmp) / "cuts.jsonl.gz")
        audios = [c.load_audio()[0] for c in cuts]
        seconds = sum(len(a) for a in audios) / 16000
        results = {}

        def ours():
            evaluate(model_path=args.model, outdir=tmp, cuts=str(Path(tmp) / "cuts.jsonl.gz"), on_the_fly_feats=True,
                     max_cuts=args.batch_size, num_workers=0, device="cpu", gen_args=GenArgs(language="en"))
        results["egrecho eval (HF model, fp32)"] = timed(ours)

        model = WhisperForConditionalGeneration.from_pretrained(args.model).eval()
        processor = WhisperProcessor.from_pretrained(args.model)

        def plain_hf():
            for i in range(0, len(audios), args.batch_size):
                feats = processor(audios[i:i + args.batch_size], sampling_rate=16000, return_tensors="pt").input_features
                with torch.inference_mode():
                    model.generate(feats, language="en", task="transcribe")
        results["plain HF generate (fp32)"] = timed(plain_hf)

        for compute_type in ("float32", "int8"):
            fw = WhisperModel(ct2_dir, device="cpu", compute_type=compute_type, cpu_threads=args.threads)

            def faster():
                for audio in audios:
                    segments, _ = fw.transcribe(audio, language="en", beam_size=1, without_timestamps=True,
                                                vad_filter=False, temperature=0.0, condition_on_previous_text=False)
                    list(segments)
            results[f"faster-whisper ({compute_type})"] = timed(faster)

    base = results["faster-whisper (float32)"]
    print(f"{args.num_utts} utterances, {seconds:.1f} s of audio, {args.threads} threads, greedy, whisper model {args.model}")
    print(f"{'run':34s} {'seconds':>8s} {'RTF':>7s} {'time vs faster-whisper fp32':>28s}")
    for name, t in results.items():
        print(f"{name:34s} {t:8.2f} {t / seconds:7.3f} {t / base:27.2f}x")


if __name__ == "__main__":
    main()
