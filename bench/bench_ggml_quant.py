#!/usr/bin/env python3
"""whisper.cpp's quantized exports against its f16 one: file size and greedy decoding speed on CPU.

Usage:
    python bench/bench_ggml_quant.py --model pretrained/whisper-base [--num_utts 6] [--threads 2]

The model is exported with ``egrecho export-ggml`` as f16 (the baseline) and with ``--quant q8_0`` and
``--quant q5_0`` into a temporary dir; whisper.cpp (pywhispercpp) decodes the same espeak-ng English utterances
with each (greedy, language given, no timestamps, its own log-mel included), one utterance at a time and
the three models in turn on each utterance, so load from other processes falls on all three alike. Each
model decodes one utterance first, untimed. Prints size and RTFx (audio seconds per wall second) over f16's,
and how many transcripts equal f16's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # python bench/bench_ggml_quant.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Row, espeak_sentences, print_rows  # noqa: E402

QUANTS = ("q8_0", "q5_0")


def run(model: str = "pretrained/whisper-base", num_utts: int = 6, threads: int = 2) -> list[Row]:
    """Size and RTFx of q8_0 and q5_0 whisper.cpp exports vs the f16 export, decoding the same audio."""
    from lhotse import Recording
    from pywhispercpp.model import Model
    from pywhispercpp.utils import redirect_stderr

    from egrecho_inner.deploy.export_ggml import export_ggml

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {}
        with contextlib.redirect_stdout(io.StringIO()):
            for kind in ("f16", *QUANTS):
                files[kind] = Path(export_ggml(model, str(tmp / kind), quant=None if kind == "f16" else kind))
        audios = [Recording.from_file(wav).resample(16000).load_audio()[0].astype(np.float32)
                  for wav, _ in espeak_sentences(num_utts + 1, tmp / "wav")]
        warmup, audios = audios[0], audios[1:]
        seconds = sum(len(a) for a in audios) / 16000
        models = {kind: Model(str(path), redirect_whispercpp_logs_to=None, print_progress=False, print_realtime=False,
                              n_threads=threads, temperature_inc=0.0) for kind, path in files.items()}

        def decode(kind: str, audio: np.ndarray) -> str:
            with redirect_stderr(to=None):
                segments = models[kind].transcribe(audio, language="en", no_timestamps=True)
            return " ".join(s.text.strip() for s in segments).strip()

        for kind in models:
            decode(kind, warmup)
        times = dict.fromkeys(models, 0.0)
        texts: dict[str, list[str]] = {kind: [] for kind in models}
        for audio in audios:
            for kind in models:
                start = time.perf_counter()
                texts[kind].append(decode(kind, audio))
                times[kind] += time.perf_counter() - start
        sizes = {kind: path.stat().st_size / 1e6 for kind, path in files.items()}
    rows = []
    for kind in QUANTS:
        same = sum(a == b for a, b in zip(texts[kind], texts["f16"]))
        rows.append(Row(f"whisper.cpp export file size: {kind}", "MB", sizes[kind], sizes["f16"], "f16 export"))
        rows.append(Row(f"greedy decoding, CPU {threads} threads: whisper.cpp {kind} ({same}/{num_utts} same text "
                        "as f16)", "audio s per s", seconds / times[kind], seconds / times["f16"], "f16 export"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pretrained/whisper-base", help="transformers model dir")
    parser.add_argument("--num_utts", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print_rows(run(args.model, args.num_utts, args.threads))


if __name__ == "__main__":
    main()
