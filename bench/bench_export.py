#!/usr/bin/env python3
"""Greedy decoding speed on CPU of the exports against the transformers model they came from.

Usage:
    python bench/bench_export.py --model pretrained/whisper-base [--num_utts 12] [--threads 2]

The model is exported with ``egrecho export-onnx`` and ``egrecho export-ct2`` (float32 and int8) into
a temporary dir; then each engine decodes the same precomputed log-mel features one utterance at a
time (greedy, language given, no timestamps): HF ``generate``, onnxruntime (our decoding loop), and
CTranslate2; whisper.cpp (``egrecho export-ggml``, f16) decodes the audio with its own log-mel front end, which
is included in its time. Feature extraction is otherwise left out: the other engines share it. Prints RTFx (audio seconds per
wall second) against HF, and how many transcripts equal HF's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # python bench/bench_export.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Row, espeak_sentences, print_rows, timed  # noqa: E402


def run(model: str = "pretrained/whisper-base", num_utts: int = 12, threads: int = 2) -> list[Row]:
    """RTFx of ONNX, CTranslate2 (float32, int8) and whisper.cpp exports vs HF generate on the same audio."""
    import ctranslate2
    from pywhispercpp.model import Model
    from pywhispercpp.utils import redirect_stderr
    from lhotse import Recording
    from transformers import AutoTokenizer, WhisperForConditionalGeneration

    from egrecho_inner.deploy.export_ct2 import export_ct2
    from egrecho_inner.deploy.export_ggml import export_ggml
    from egrecho_inner.deploy.export_onnx import export_onnx
    from egrecho_inner.deploy.onnx_decode import OnnxWhisper
    from egrecho_inner.features import make_fbank_extractor, pad_to_whisper_input

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with contextlib.redirect_stdout(io.StringIO()):
            export_onnx(model, str(tmp / "onnx"))
            for quantization in ("float32", "int8"):
                export_ct2(model, str(tmp / f"ct2-{quantization}"), quantization=quantization)
            export_ggml(model, str(tmp / "ggml"))
        extractor = make_fbank_extractor(80)
        audios = [Recording.from_file(wav).resample(16000).load_audio()[0]
                  for wav, _ in espeak_sentences(num_utts, tmp / "wav")]
        seconds = sum(len(a) for a in audios) / 16000
        feats = [pad_to_whisper_input(torch.as_tensor(extractor.extract(a, 16000)))[None] for a in audios]
        tokenizer = AutoTokenizer.from_pretrained(model)
        texts: dict[str, list[str]] = {}

        hf = WhisperForConditionalGeneration.from_pretrained(model).eval()

        def decode_hf():
            with torch.inference_mode():
                texts["hf"] = [tokenizer.decode(hf.generate(f, language="en", task="transcribe")[0],
                                                skip_special_tokens=True).strip() for f in feats]
        t_hf = timed(decode_hf)

        onnx = OnnxWhisper(str(tmp / "onnx"), threads=threads)
        prompt = onnx.prompt("en")

        def decode_onnx():
            texts["onnx"] = [tokenizer.decode(onnx.greedy(onnx.encode(f.numpy()), prompt)[0],
                                              skip_special_tokens=True).strip() for f in feats]
        times = {"ONNX (onnxruntime)": timed(decode_onnx)}
        for quantization in ("float32", "int8"):
            ct2 = ctranslate2.models.Whisper(str(tmp / f"ct2-{quantization}"), device="cpu",
                                             compute_type=quantization, intra_threads=threads)

            def decode_ct2():
                out = []
                for f in feats:
                    result = ct2.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(f.numpy())),
                                          [prompt], beam_size=1)[0]
                    out.append(tokenizer.decode(result.sequences_ids[0], skip_special_tokens=True).strip())
                texts[f"ct2 {quantization}"] = out
            times[f"CTranslate2 {quantization}"] = timed(decode_ct2)
        cpp = Model(str(tmp / "ggml/ggml-model.bin"), redirect_whispercpp_logs_to=None, print_progress=False,
                    print_realtime=False, n_threads=threads, temperature_inc=0.0)

        def decode_cpp():
            with redirect_stderr(to=None):
                texts["cpp"] = [" ".join(s.text.strip() for s in cpp.transcribe(
                    a.astype(np.float32), language="en", no_timestamps=True)).strip() for a in audios]
        times["whisper.cpp f16 (its own log-mel included)"] = timed(decode_cpp)
    rows = []
    for (name, t), key in zip(times.items(), ("onnx", "ct2 float32", "ct2 int8", "cpp")):
        same = sum(a == b for a, b in zip(texts[key], texts["hf"]))
        rows.append(Row(f"greedy decoding, CPU {threads} threads: {name} export ({same}/{num_utts} same text)",
                        "audio s per s", seconds / t, seconds / t_hf, "HF generate, fp32"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pretrained/whisper-base", help="transformers model dir")
    parser.add_argument("--num_utts", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print_rows(run(args.model, args.num_utts, args.threads))


if __name__ == "__main__":
    main()
