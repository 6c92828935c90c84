#!/usr/bin/env python3
"""Evaluation speed: ``egrecho eval`` vs faster-whisper (CTranslate2) vs plain HF generate.

Usage:
    python local/get_whisper_base.py --output_dir pretrained/whisper-base   # once
    python bench/bench_eval.py --model pretrained/whisper-base --threads 2 [--num_utts 24]
    python bench/bench_eval.py --device cuda --dtype float16 --batch_size 64 --num_utts 256   # a GPU

All runs decode the same espeak-ng English utterances greedily (beam 1, no timestamps, temperature 0,
language given), and their wall time includes feature extraction. On a CPU faster-whisper transcribes one
file at a time with VAD off, as its README's basic usage does; on a GPU its CTranslate2 model decodes
batches of ``--batch_size`` files, as ours and plain HF do everywhere. Figures are RTFx: audio seconds
decoded per wall second.

The un-padded row decodes the same clips with the encoder run on each batch's own length
(``remove_whisper_encoder_input_length_restriction``), as a model fine-tuned un-padded is decoded. Here it
is forced on the original whisper-base, which was trained on 30 s windows, so the row also gives both WERs:
the speed is what an un-padded fine-tune gets, the accuracy is not.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

if __package__ in (None, ""):  # python bench/bench_eval.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Row, espeak_cuts, print_rows, timed  # noqa: E402


def run(model: str = "pretrained/whisper-base", ct2_model: str | None = None, num_utts: int = 24,
        batch_size: int = 8, threads: int = 2, device: str = "cpu", dtype: str = "float32") -> list[Row]:
    """RTFx of egrecho eval, plain HF generate and faster-whisper on the same audio."""
    import ctranslate2
    import numpy as np
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from egrecho_inner.evaluate import GenArgs, evaluate

    ct2_dir = ct2_model or model.rstrip("/") + "-ct2"
    if not Path(ct2_dir).is_dir():
        raise FileNotFoundError(f"{ct2_dir} not found: egrecho export-ct2 --model_path {model} --output_dir {ct2_dir}")
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        cuts = espeak_cuts(num_utts, Path(tmp))
        cuts.to_file(Path(tmp) / "cuts.jsonl.gz")
        audios = [c.load_audio()[0] for c in cuts]
        seconds = sum(len(a) for a in audios) / 16000

        results = {}

        def ours(unpadded: bool):
            results[unpadded] = evaluate(
                model_path=model, outdir=tmp, cuts=str(Path(tmp) / "cuts.jsonl.gz"), on_the_fly_feats=True,
                max_cuts=batch_size, num_workers=0, device=device, dtype=dtype, gen_args=GenArgs(language="en"),
                remove_whisper_encoder_input_length_restriction=unpadded)
        t_ours = timed(lambda: ours(False))
        t_unpadded = timed(lambda: ours(True))

        hf = WhisperForConditionalGeneration.from_pretrained(model, dtype=getattr(torch, dtype)).to(device).eval()
        processor = WhisperProcessor.from_pretrained(model)

        def plain_hf():
            for i in range(0, len(audios), batch_size):
                feats = processor(audios[i:i + batch_size], sampling_rate=16000, return_tensors="pt").input_features
                with torch.inference_mode():
                    hf.generate(feats.to(device, getattr(torch, dtype)), language="en", task="transcribe")
        t_hf = timed(plain_hf)

        compute_type = "float32" if dtype == "float32" else "float16"
        fw = WhisperModel(ct2_dir, device=device, compute_type=compute_type, cpu_threads=threads)
        options = dict(language="en", beam_size=1, without_timestamps=True, vad_filter=False, temperature=0.0,
                       condition_on_previous_text=False)

        def faster():
            if device.startswith("cuda"):  # its CTranslate2 model on batches of files, as we batch
                tokenizer = Tokenizer(fw.hf_tokenizer, True, task="transcribe", language="en")
                prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
                for i in range(0, len(audios), batch_size):
                    feats = np.stack([pad_or_trim(fw.feature_extractor(a)) for a in audios[i:i + batch_size]])
                    fw.model.generate(ctranslate2.StorageView.from_array(feats.astype(np.float32)),
                                      [prompt] * len(feats), beam_size=1)
            else:  # one file at a time, as faster-whisper's README transcribes
                for audio in audios:
                    hyps.append(" ".join(s.text for s in fw.transcribe(audio, **options)[0]))
        hyps: list[str] = []
        t_fw = timed(faster)
        fw_wer = word_error_rate([c.supervisions[0].text for c in cuts], hyps) if hyps else float("nan")
    rtfx = lambda t: seconds / t  # noqa: E731
    where = f"{device} {dtype}, batch {batch_size}"
    wers = f"WER {100 * results[True]['error_rate']:.1f} un-padded, {100 * results[False]['error_rate']:.1f} " \
           f"padded, {100 * fw_wer:.1f} faster-whisper"
    return [Row(f"eval whisper-base RTFx, {where}", "audio s per s", rtfx(t_ours), rtfx(t_fw),
                f"faster-whisper {compute_type}"),
            Row(f"eval whisper-base RTFx, {where}", "audio s per s", rtfx(t_ours), rtfx(t_hf), "plain HF generate"),
            Row(f"eval RTFx decoding un-padded, {seconds / len(audios):.1f} s clips, {where} ({wers})",
                "audio s per s", rtfx(t_unpadded), rtfx(t_fw), f"faster-whisper {compute_type}")]


def word_error_rate(refs: list[str], hyps: list[str]) -> float:
    """WER with the same normalisation and alignment as ``egrecho eval``."""
    from egrecho_inner.scoring import ErrorCounts, align, normalize_text

    totals = ErrorCounts()
    for ref, hyp in zip(refs, hyps):
        totals.add(align(normalize_text(ref, "en").split(), normalize_text(hyp, "en").split())[0])
    return totals.rates()["error_rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pretrained/whisper-base", help="transformers model dir")
    parser.add_argument("--ct2_model", help="CTranslate2 dir of the same model (default: <model>-ct2)")
    parser.add_argument("--num_utts", type=int, default=24)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    args = parser.parse_args()
    print_rows(run(args.model, args.ct2_model, args.num_utts, args.batch_size, args.threads, args.device, args.dtype))


if __name__ == "__main__":
    main()
