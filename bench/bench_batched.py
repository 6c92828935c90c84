#!/usr/bin/env python3
"""VAD-batched long-form decoding against sequential decoding: speed and WER on long recordings of real voices.

Usage (after ``bash run.sh``, whose models and Italian long recordings it reads):
    python bench/bench_batched.py [--models pretrained/whisper-base exp/.../checkpoint-final-lora-merge]
        [--ct2 pretrained/whisper-base-ct2] [--batch_size 8] [--threads 2]
    python bench/bench_batched.py --sets val-it val-en val-en-tight --models pretrained/whisper-base \
        --span_seconds 30 25 20 15 --peer 0 --output results/batched_span_sweep.md   # how the span was chosen

Sets (Kaldi dirs of ``local/make_long_recordings.py``; the English ones are made here when missing):
  it:       run.sh's long Italian test recordings (16 prompts of the Italian voice each, 0.3-0.9 s pauses);
  en:       the 200 English test prompts (a voice never trained on), 40 per recording, 0.3-0.9 s pauses;
  en-tight: the same prompts with 0.05-0.25 s pauses, so the VAD must cut inside running speech.
The pauses are digital silence, which no real recording has: the VAD's job is easier here than on field audio.

Each set decoded as ``egrecho transcribe`` decodes its files, greedy, in each recording's language, features and
VAD inside the timed part: sequentially (one recording at a time, Whisper's 30 s windows with seeking, the
default), and batched (``--batched true``: VAD spans of up to ``--span_seconds``, ``batch_size`` at a time, the
spans of files taken together until they can fill a batch) with timestamps (timed output formats) and without
(txt). Peer: faster-whisper on the CTranslate2 whisper-base, sequential and its BatchedInferencePipeline (its
default: no timestamps; it batches the spans of one audio at a time), float32. WER: jiwer over each recording's joined reference, normalised as egrecho eval
does. Writes ``results/batched_long_form.md``.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Callable

import torch

if __package__ in (None, ""):  # python bench/bench_batched.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import RECIPE_DIR, RUN_SH_CT2, RUN_SH_MODELS  # noqa: E402
from egrecho_inner.batched_long_form import SPAN_SECONDS  # noqa: E402

SETS = {  # name -> (Kaldi dir, how to make it from a one-prompt-per-recording dir, or None: run.sh makes it)
    "it": ("data/kaldi/real_it_long/test", None),
    "en": ("data/kaldi/real_en_long/test", ("data/kaldi/real_en/test", 40, "[0.3, 0.9]")),
    "en-tight": ("data/kaldi/real_en_tight/test", ("data/kaldi/real_en/test", 40, "[0.05, 0.25]")),
    # validation prompts (text-disjoint from the tests): where egrecho_inner.batched_long_form.SPAN_SECONDS was chosen
    "val-it": ("data/kaldi/real_it_long/val", ("data/kaldi/real_it/val", 16, "[0.3, 0.9]")),
    "val-en": ("data/kaldi/real_en_long/val", ("data/kaldi/real_en/val", 40, "[0.3, 0.9]")),
    "val-en-tight": ("data/kaldi/real_en_tight/val", ("data/kaldi/real_en/val", 40, "[0.05, 0.25]")),
}
TEST_SETS = ["it", "en", "en-tight"]
Recording = tuple[str, "object", str, str]  # id, 16 kHz samples, joined reference, language


def load_set(name: str) -> list[Recording]:
    """The set's recordings with their joined references (made first if it is an English one and missing)."""
    from egrecho_inner.errors import MissingInputError
    from egrecho_inner.kaldi import load_kaldi_dir

    kaldi_dir, source = SETS[name]
    if not (RECIPE_DIR / kaldi_dir / "wav.scp").is_file():
        if source is None or not (RECIPE_DIR / source[0] / "wav.scp").is_file():
            raise MissingInputError(f"{kaldi_dir} not found: run bash run.sh first")
        subprocess.run([sys.executable, "local/make_long_recordings.py", "--kaldi_dir", source[0], "--out_dir",
                        kaldi_dir, "--per_recording", str(source[1]), "--pause_seconds", source[2]],
                       cwd=RECIPE_DIR, check=True)
    recordings, supervisions, _ = load_kaldi_dir(RECIPE_DIR / kaldi_dir)
    found = []
    for recording in recordings:
        sups = sorted((s for s in supervisions if s.recording_id == recording.id), key=lambda s: s.start)
        found.append((recording.id, recording.resample(16000).load_audio()[0],
                      " ".join(s.text for s in sups), sups[0].language))
    return found


def wer(recordings: list[Recording], hyps: list[str]) -> float:
    """Corpus WER (%) of ``hyps`` against the recordings' references, normalised per language (jiwer)."""
    import jiwer

    from egrecho_inner.scoring import normalize_text

    refs = [normalize_text(ref, lang) for _, _, ref, lang in recordings]
    return 100 * jiwer.wer(refs, [normalize_text(h, lang) for h, (_, _, _, lang) in zip(hyps, recordings)])


def hf_ways(model_path: str, batch_size: int, span_seconds: list[float]) -> dict[str, Callable]:
    """Ours: recordings -> texts, sequential (one recording at a time) and batched (spans of each of
    ``span_seconds``; recordings grouped as ``egrecho transcribe --batched`` groups its files), one loaded model."""
    from egrecho_inner.batched_long_form import duration_groups, transcribe_batched
    from egrecho_inner.decoder import DecodeArgs, WhisperDecoder
    from egrecho_inner.features import make_fbank_extractor

    decoder = WhisperDecoder.load(DecodeArgs(model_path, "cpu"))
    extractor = make_fbank_extractor(decoder.num_mel_bins)

    def feats(samples):
        return torch.from_numpy(extractor.extract(samples, 16000))

    def sequential(recordings: list[Recording]) -> list[str]:
        return [decoder.transcribe_long([feats(samples)], [lang])[0].text for _, samples, _, lang in recordings]

    def batched(timestamps: bool, seconds: float):
        def decode(recordings: list[Recording]) -> list[str]:
            texts = []
            for group in duration_groups(recordings, lambda r: len(r[1]) / 16000, batch_size * seconds):
                found = transcribe_batched(decoder, [feats(r[1]) for r in group], [r[1] for r in group],
                                           [r[3] for r in group], batch_size, timestamps, seconds)
                texts += [result.text for result in found]
            return texts
        return decode

    ways = {"sequential": sequential}
    for seconds in span_seconds:
        ways[f"batched, {seconds:g} s spans, timestamps"] = batched(True, seconds)
        ways[f"batched, {seconds:g} s spans, text only"] = batched(False, seconds)
    return ways


def ct2_ways(ct2_path: str, batch_size: int, threads: int) -> dict[str, Callable]:
    """faster-whisper: sequential (no VAD) and its batched pipeline (VAD, no timestamps: its defaults), one
    recording at a time (its pipeline batches the spans of one audio)."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(ct2_path, device="cpu", compute_type="float32", cpu_threads=threads)
    pipeline = BatchedInferencePipeline(model)
    options = {"beam_size": 1, "temperature": 0.0, "condition_on_previous_text": False}

    def each(transcribe: Callable) -> Callable:
        return lambda recordings: [" ".join(s.text.strip() for s in transcribe(samples, lang)[0])
                                   for _, samples, _, lang in recordings]

    return {"sequential": each(lambda samples, lang: model.transcribe(samples, language=lang, vad_filter=False,
                                                                      **options)),
            "batched, text only": each(lambda samples, lang: pipeline.transcribe(samples, language=lang,
                                                                                 batch_size=batch_size, **options))}


def measure(label: str, ways: dict[str, Callable], set_name: str, recordings: list[Recording]) -> list[list]:
    """Rows of one model on one set: each way's RTFx, its ratio to the sequential way, WER and its change."""
    audio = sum(len(samples) for _, samples, _, _ in recordings) / 16000
    ways["sequential"]([(recordings[-1][0], recordings[-1][1][:16000 * 5], "", recordings[-1][3])])  # warm-up
    rows, base = [], None
    for way, decode in ways.items():
        start = time.perf_counter()
        hyps = decode(recordings)
        rtfx, error = audio / (time.perf_counter() - start), wer(recordings, hyps)
        base = base or (rtfx, error)
        rows.append([label, set_name, f"{len(recordings)} x {audio / len(recordings):.0f} s", way, f"{rtfx:.1f}",
                     f"{rtfx / base[0]:.2f}x", f"{error:.2f}", f"{100 * (error - base[1]) / max(base[1], 1e-9):+.1f}%"])
        print(" | ".join(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=RUN_SH_MODELS)
    parser.add_argument("--ct2", default=RUN_SH_CT2)
    parser.add_argument("--sets", nargs="+", default=TEST_SETS, choices=list(SETS))
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--span_seconds", nargs="+", type=float, default=[SPAN_SECONDS],
                        help="longest VAD span (one batched row pair each)")
    parser.add_argument("--peer", type=int, default=1, help="0: leave faster-whisper out")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=str(RECIPE_DIR / "results/batched_long_form.md"))
    parser.add_argument("--note", default="", help="a sentence added to the results file (e.g. what else ran)")
    args = parser.parse_args()
    from tabulate import tabulate

    from egrecho_inner.utils import atomic_path, git_commit

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    sets = {name: load_set(name) for name in args.sets}
    rows = []
    for i, model in enumerate(args.models):  # a fine-tune is scored on its own language's set only
        ways = hf_ways(model, args.batch_size, args.span_seconds)
        rows += [row for name, recs in sets.items() if i == 0 or name.endswith("it")
                 for row in measure(model, ways, name, recs)]
    if args.peer:
        ways = ct2_ways(args.ct2, args.batch_size, args.threads)
        rows += [row for name, recs in sets.items() for row in measure(f"faster-whisper, {args.ct2}", ways, name, recs)]
    table = tabulate(rows, headers=["model", "set", "recordings", "decoding", "RTFx", "vs sequential", "WER %",
                                    "WER vs sequential"], tablefmt="github")
    print(table)
    command = "python bench/bench_batched.py " + shlex.join(sys.argv[1:])
    text = (f"# VAD-batched against sequential long-form decoding\n\nWritten by `{command.strip()}` on {date.today()} "
            f"at commit {git_commit()} ({(time.perf_counter() - start) / 60:.1f} minutes, {args.threads} threads, "
            f"batch size {args.batch_size}). Real voices: Asterisk prompts joined into long recordings with pauses of "
            "digital silence (it: 0.3-0.9 s, the Italian voice; en: 0.3-0.9 s, en-tight: 0.05-0.25 s, the English "
            "voice; val-*: the same from the validation prompts). Greedy, each recording in its language; batched: the "
            "spans of several files together as egrecho transcribe --batched takes them; RTFx: audio seconds per wall second, "
            "features and VAD included; the ratio and the WER change are against the same model's sequential row "
            f"in the same process. {args.note}\n\n" + table + "\n")
    with atomic_path(args.output) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
