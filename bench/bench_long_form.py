#!/usr/bin/env python3
"""Long-form decoding speed: recordings decoded together (the next 30 s window of each in one batch, as
``egrecho eval`` does) against one by one, same model, recordings and options, in one process.

Usage (after ``bash local/run_vi_demo.sh``, whose long test recordings and models it reads):
    python bench/bench_long_form.py [--models pretrained/whisper-base exp/whisper-base/lora/checkpoint-final-lora-merge]
        [--kaldi_dir data/kaldi/demo_long/test] [--max_cuts 16] [--max_new_tokens 440] [--threads 2]

Each model is decoded as it was trained (run_vi_demo.sh's original padded to 30 s, its fine-tune un-padded), greedy,
with timestamps, in each recording's language, as local/run_vi_demo.sh scores its long-form set. Prints audio seconds
per wall second (RTFx) both ways and their ratio, and fails if any recording's segments differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):  # python bench/bench_long_form.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Row, print_rows, timed  # noqa: E402
from egrecho_inner.decode import GenArgs  # noqa: E402
from egrecho_inner.decoder import DecodeArgs, WhisperDecoder  # noqa: E402
from egrecho_inner.errors import MissingInputError  # noqa: E402
from egrecho_inner.evaluate import load_eval_cuts  # noqa: E402
from egrecho_inner.features import load_cut_features, make_fbank_extractor  # noqa: E402
from egrecho_inner.new_language import model_languages  # noqa: E402


def run(model_path: str, kaldi_dir: str, max_cuts: int, max_new_tokens: int) -> Row:
    """One model: its long-form set decoded in batches of ``max_cuts`` recordings and one by one."""
    if not Path(model_path).is_dir():
        raise MissingInputError(f"{model_path} not found: run bash local/run_vi_demo.sh first")
    decoder = WhisperDecoder.load(DecodeArgs(model_path, "cpu", gen_args=GenArgs(return_timestamps=True,
                                                                                 max_new_tokens=max_new_tokens)))
    cuts, _ = load_eval_cuts(None, kaldi_dir, "", "", "test", None, model_languages(model_path))
    cuts = sorted(cuts, key=lambda c: -c.duration)  # as egrecho eval orders them
    extractor = make_fbank_extractor(decoder.num_mel_bins)
    feats = [load_cut_features(c, extractor) for c in cuts]
    languages = [c.supervisions[0].language for c in cuts]

    def together():
        found = []
        for start in range(0, len(feats), max_cuts):
            found += decoder.transcribe_long(feats[start: start + max_cuts], languages[start: start + max_cuts])
        return found

    decoder.transcribe_long([feats[-1][:3000]], languages[-1:])  # warm-up, untimed
    results = {}
    seconds_alone = timed(lambda: results.setdefault(
        "alone", [decoder.transcribe_long([f], [lang])[0] for f, lang in zip(feats, languages)]))
    seconds_together = timed(lambda: results.setdefault("together", together()))
    differ = [c.id for c, a, b in zip(cuts, results["alone"], results["together"]) if a.segments != b.segments]
    if differ:
        raise SystemExit(f"{model_path}: segments differ between batched and one-by-one decoding: {differ}")
    audio = sum(c.duration for c in cuts)
    how = "un-padded" if decoder.unpadded else "padded"
    return Row(f"long form, {len(cuts)} recordings of {audio / len(cuts):.0f} s, {Path(model_path).name} ({how})",
               "RTFx", audio / seconds_together, audio / seconds_alone, "one recording at a time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+",
                        default=["pretrained/whisper-base", "exp/whisper-base/lora/checkpoint-final-lora-merge"])
    parser.add_argument("--kaldi_dir", default="data/kaldi/demo_long/test")
    parser.add_argument("--max_cuts", type=int, default=16, help="recordings per batch (egrecho eval's max_cuts)")
    parser.add_argument("--max_new_tokens", type=int, default=440, help="per 30 s window (run_vi_demo.sh's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print_rows([run(m, args.kaldi_dir, args.max_cuts, args.max_new_tokens) for m in args.models])


if __name__ == "__main__":
    main()
