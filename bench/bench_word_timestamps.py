#!/usr/bin/env python3
"""Word-start error of word timestamps on real voices, for whisper-base and a fine-tune, against faster-whisper.

Usage:
    python bench/bench_word_timestamps.py [--models pretrained/whisper-base exp/.../checkpoint-final-lora-merge]

Recordings with known word times (``local/make_word_timed.py``): single words joined with pauses. Alignment
heads are chosen (``egrecho find-alignment-heads``' rule) on espeak-ng words (English words of Debian's GPL-3
text) and scored on real voices they never saw: the Asterisk English (en_US_f_Allison) and Italian
(it_IT_m_Carlo) single-word prompts. Each model decodes every recording (greedy, its language given), then its
words are timed with its own heads and with the found ones: raw DTW, and moved onto Silero VAD's speech (what
``egrecho transcribe --word_timestamps`` gives). Peer: faster-whisper's word timestamps with the CTranslate2
whisper-base (OpenAI's heads and its own post-processing). Only words that match the reference are timed; the
share timed is in the table. Writes ``results/word_timestamps.md``.

The Italian fine-tune (``bash run.sh``) was trained on the Italian voice's other prompts, so the Italian row is
not a held-out voice for it; its English row is.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # python bench/bench_word_timestamps.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "local"))
from bench.common import RECIPE_DIR, RUN_SH_CT2, RUN_SH_MODELS  # noqa: E402

WORD_SOURCE = Path("/usr/share/common-licenses/GPL-3")  # base-files: on every Debian system
SETS = {"espeak_en": ("espeak", "en"), "asterisk_en": ("asterisk", "en"), "asterisk_it": ("asterisk", "it")}


def ensure_sets(data_dir: Path, num_cuts: int) -> dict[str, Path]:
    """The word-timed cut manifests (made once)."""
    from make_word_timed import make_word_timed

    paths = {}
    for name, (source, language) in SETS.items():
        path = data_dir / name / "cuts.jsonl.gz"
        if not path.is_file():
            text_file = None
            if source == "espeak":
                words = [w for w in re.findall(r"[a-z]{3,}", WORD_SOURCE.read_text().lower())][200:]
                text_file = data_dir / "espeak_words.txt"
                text_file.parent.mkdir(parents=True, exist_ok=True)
                text_file.write_text(" ".join(words) + "\n")
            make_word_timed(source, language, str(path.parent), text_file=str(text_file) if text_file else None,
                            num_cuts=num_cuts, cache_dir=str(RECIPE_DIR / "data/cache"))
        paths[name] = path
    return paths


def summary(errors: list[float], words: int) -> list:
    return [f"{len(errors)}/{words}", round(float(np.median(errors)), 1), round(float(np.percentile(errors, 90)), 1)]


def score_model(model_path: str, sets: dict[str, Path], max_heads: int) -> list[list]:
    """Rows for one model: its own heads and the found ones, raw and on VAD speech, on each real set."""
    from lhotse import CutSet

    from egrecho_inner.alignment_heads import choose_heads, timed_cuts
    from egrecho_inner.decoder import DecodeArgs, WhisperDecoder
    from egrecho_inner.features import load_cut_features, make_fbank_extractor
    from egrecho_inner.scoring import normalize_text
    from egrecho_inner.seeking import Segment
    from egrecho_inner.timed_words import word_start_errors_ms
    from egrecho_inner.vad import speech_intervals
    from egrecho_inner.word_timing import align_segments, alignment_heads, snap_to_speech

    decoder = WhisperDecoder.load(DecodeArgs(model_path))
    model, tokenizer = decoder.model, decoder.processor.tokenizer
    chosen_on = timed_cuts(model, tokenizer, CutSet.from_file(sets["espeak_en"]), decoder.unpadded)
    found, _ = choose_heads(chosen_on, model.config.decoder_layers, model.config.decoder_attention_heads, max_heads)
    own = alignment_heads(model)
    extractor = make_fbank_extractor(decoder.num_mel_bins)
    rows = []
    for name in ("asterisk_en", "asterisk_it"):
        errors = {key: [] for key in ("own raw", "own vad", "found raw", "found vad")}
        cuts = CutSet.from_file(sets[name])
        total = 0
        for cut in cuts:
            language = cut.supervisions[0].language
            feats = load_cut_features(cut, extractor)
            segments = [Segment(0.0, cut.duration, decoder.transcribe_features(feats, language))]
            speech = speech_intervals(cut.load_audio()[0])
            reference = cut.supervisions[0].alignment["word"]
            total += len(reference)
            for label, heads in (("own", own), ("found", found)):
                words = align_segments(model, tokenizer, feats, segments, language, decoder.unpadded, heads)[0]
                for kind, timed in (("raw", words), ("vad", snap_to_speech(words, speech))):
                    errors[f"{label} {kind}"] += word_start_errors_ms(reference, timed,
                                                                       lambda w: normalize_text(w, language))
        for label, heads in (("own", own), ("found", found)):
            rows.append([model_path, f"{label} ({len(heads)})", name, *summary(errors[f"{label} raw"], total),
                         *summary(errors[f"{label} vad"], total)[1:]])
        print(f"{model_path} found heads {[list(h) for h in found]}", flush=True)
    return rows


def score_faster_whisper(ct2_path: str, sets: dict[str, Path]) -> list[list]:
    """faster-whisper's own word timestamps on each real set."""
    from faster_whisper import WhisperModel
    from lhotse import CutSet

    from egrecho_inner.scoring import normalize_text
    from egrecho_inner.timed_words import word_start_errors_ms
    from egrecho_inner.word_timing import Word

    model = WhisperModel(ct2_path, device="cpu", compute_type="float32")
    rows = []
    for name in ("asterisk_en", "asterisk_it"):
        errors, total = [], 0
        for cut in CutSet.from_file(sets[name]):
            language = cut.supervisions[0].language
            found, _ = model.transcribe(cut.load_audio()[0], language=language, beam_size=1, word_timestamps=True,
                                        condition_on_previous_text=False, temperature=0.0)
            words = [Word(w.start, w.end, w.word, w.probability) for s in found for w in s.words or []]
            reference = cut.supervisions[0].alignment["word"]
            total += len(reference)
            errors += word_start_errors_ms(reference, words, lambda w: normalize_text(w, language))
        rows.append([f"faster-whisper, {ct2_path}", "OpenAI's (8)", name, *summary(errors, total), "-", "-"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=RUN_SH_MODELS)
    parser.add_argument("--ct2", default=RUN_SH_CT2)
    parser.add_argument("--data_dir", default="data/word_timed")
    parser.add_argument("--num_cuts", type=int, default=20)
    parser.add_argument("--max_heads", type=int, default=16)
    parser.add_argument("--output", default=str(RECIPE_DIR / "results/word_timestamps.md"))
    args = parser.parse_args()
    from tabulate import tabulate

    from egrecho_inner.utils import atomic_path, git_commit

    start = time.perf_counter()
    sets = ensure_sets(Path(args.data_dir), args.num_cuts)
    rows = [row for model in args.models for row in score_model(model, sets, args.max_heads)]
    rows += score_faster_whisper(args.ct2, sets)
    table = tabulate(rows, headers=["model", "heads", "recordings", "words timed", "raw median ms", "raw p90 ms",
                                    "on VAD median ms", "on VAD p90 ms"], tablefmt="github")
    print(table)
    command = "python bench/bench_word_timestamps.py " + " ".join(sys.argv[1:])
    text = (f"# Word-start error of word timestamps\n\nWritten by `{command.strip()}` on {date.today()} at commit "
            f"{git_commit()} ({(time.perf_counter() - start) / 60:.1f} minutes). Heads \"found\" were chosen on "
            f"espeak-ng English words ({args.num_cuts} recordings of 8); the recordings scored are real voices "
            "(Asterisk prompts, single words joined with 0.15-0.6 s pauses). Raw: DTW over the heads' "
            "cross-attention; on VAD: words moved onto Silero VAD's speech regions (egrecho transcribe "
            "--word_timestamps). Words timed: reference words the transcript got right.\n\n" + table + "\n")
    with atomic_path(args.output) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
