#!/usr/bin/env python3
"""Write the before/after table of a fine-tuning run (the original recipe's Results form).

Usage:
    ./local/write_results.py --name base-lora --model pretrained/whisper-base \
        --original exp/whisper-base/orig/errs-test.json --tuned exp/whisper-base/lora/errs-test.json \
        --output exp/whisper-base/RESULTS.md [--command "bash run.sh"] [--wall_seconds 1500] [--notes "..."] \
        [--retention_original exp/whisper-base/orig/errs-en.json --retention_tuned exp/whisper-base/lora/errs-en.json] \
        [--nonspeech_original exp/whisper-base/orig/errs-nonspeech.json --nonspeech_tuned ...] [--loss_curve loss.png]
        [--longform_original exp/whisper-base/orig/errs-long.json --longform_tuned exp/whisper-base/lora/errs-long.json]

The first table is the original recipe's (WER before and after on the target test set); the second
puts next to it what else the fine-tune changed: WER on a language it did not target (retention),
language identification on both, text written on non-speech clips and runaway repetition (the fields
of ``egrecho_inner.quality``); the third, long-form decoding of recordings that join the test utterances:
its WER against the short-form one, well-formed timestamp windows and segment-start error.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional, Union

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from egrecho_inner.errors import InputError  # noqa: E402
from egrecho_inner.utils import atomic_path, run_cli, source_line  # noqa: E402


def _percent(x: float) -> str:
    return f"{100 * x:.2f}"


def _decoding(errs: dict) -> str:
    return "un-padded" if errs.get("unpadded") else "padded to 30 s"


def _rate(value: Optional[float]) -> str:
    return "n/a" if value is None else _percent(value)


def side_effects_table(before: dict, after: dict, retention: list[tuple[str, dict, dict]],
                       nonspeech: Optional[tuple[dict, dict]]) -> list[str]:
    """Markdown rows: retention WER per retained language, language identification, non-speech text,
    repetition; before/after."""
    rows = []
    for name, orig, tuned in retention:
        rows += [(f"{orig['metric'].upper()}, {name} (not fine-tuned on; {orig['num_utts']} utterances)",
                  orig["error_rate"], tuned["error_rate"]),
                 (f"language identification accuracy, {name}", orig["lid_accuracy"], tuned["lid_accuracy"])]
    rows += [("language identification accuracy, target test set", before["lid_accuracy"], after["lid_accuracy"]),
             ("outputs with runaway repetition (compression ratio > 2.4), target test set",
              before["repetition_rate"], after["repetition_rate"])]
    if nonspeech:
        rows.append((f"non-speech clips that got any text ({nonspeech[1]['nonspeech_cuts']} clips)",
                     nonspeech[0]["nonspeech_with_text"], nonspeech[1]["nonspeech_with_text"]))
    lines = ["| what else changed (%) | original | fine-tuned |", "| :----- | ---: | ---: |"]
    return lines + [f"| {label} | {_rate(a)} | {_rate(b)} |" for label, a, b in rows]


def long_form_table(short: tuple[dict, dict], long: tuple[dict, dict]) -> list[str]:
    """Markdown rows, original and fine-tuned: WER of the long recordings decoded in long form next to the
    same utterances' short-form WER, the well-formed share of the 30 s windows decoded and the
    segment-start error against the recordings' Kaldi segments."""
    def relative(s: dict, lf: dict) -> str:
        return f"{100 * (lf['error_rate'] / s['error_rate'] - 1):+.1f}%" if s["error_rate"] else "n/a"

    def windows(e: dict) -> str:
        w = e.get("timestamp_windows")
        return f"{100 * w['well_formed']:.1f} (of {w['windows']})" if w else "n/a"

    def starts(e: dict) -> str:
        t = e.get("segment_start_error_ms")
        return f"{t['median']:.0f} / {t['p90']:.0f}" if t else "n/a"

    metric = long[1]["metric"].upper()
    rows = [(f"{metric} (%), long form ({long[1]['num_utts']} recordings, {long[1]['audio_seconds']:.0f} s)",
             _percent(long[0]["error_rate"]), _percent(long[1]["error_rate"])),
            (f"{metric} (%), short form (the same utterances one by one)",
             _percent(short[0]["error_rate"]), _percent(short[1]["error_rate"])),
            ("long form against short form, relative", relative(short[0], long[0]), relative(short[1], long[1])),
            ("30 s windows with well-formed timestamps (%)", windows(long[0]), windows(long[1])),
            ("segment-start error, median / p90 (ms)", starts(long[0]), starts(long[1]))]
    lines = ["| long recordings | original | fine-tuned |", "| :----- | ---: | ---: |"]
    return lines + [f"| {label} | {a} | {b} |" for label, a, b in rows]


def _load(path: Optional[str]) -> Optional[dict]:
    return json.loads(Path(path).read_text()) if path else None


def _retention(original: Union[str, list[str], None], tuned: Union[str, list[str], None],
               names: Optional[list[str]]) -> list[tuple[str, dict, dict]]:
    """(name, original errs, tuned errs) of each retention set."""
    as_list = lambda x: [] if not x else [x] if isinstance(x, str) else list(x)  # noqa: E731
    original, tuned = as_list(original), as_list(tuned)
    names = list(names or ["retained language"] * len(original))
    if not len(original) == len(tuned) == len(names):
        raise InputError(f"retention: {len(original)} original, {len(tuned)} tuned files and {len(names)} names")
    return [(name, _load(a), _load(b)) for name, a, b in zip(names, original, tuned)]


def write_results(name: str, model: str, original: str, tuned: str, output: str,
                  wall_seconds: Optional[float] = None, notes: str = "",
                  retention_original: Union[str, list[str], None] = None,
                  retention_tuned: Union[str, list[str], None] = None, retention_names: Optional[list[str]] = None,
                  nonspeech_original: Optional[str] = None, nonspeech_tuned: Optional[str] = None,
                  loss_curve: Optional[str] = None, longform_original: Optional[str] = None,
                  longform_tuned: Optional[str] = None, command: str = "") -> str:
    """Render and save the table; returns it.

    Args:
        name: row label, e.g. base-lora.
        model: the base model dir (its parameter count is shown).
        original: errs-<part>.json of the model before fine-tuning.
        tuned: errs-<part>.json after fine-tuning.
        output: the Markdown file to write.
        wall_seconds: wall time of the whole run, if known.
        notes: free text appended under the table.
        retention_original: errs-<part>.json of the original on a language the fine-tune did not target (or a
            list of them, one per language).
        retention_tuned: the same for the fine-tuned model, in the same order.
        retention_names: what each retention set is, e.g. "English (en_US_f_Allison)" (default: retained language).
        nonspeech_original: errs-<part>.json of the original on non-speech clips.
        nonspeech_tuned: the same for the fine-tuned model.
        loss_curve: a picture to link under the tables (path relative to the output's dir).
        longform_original: errs-<part>.json of the original on long recordings of the test utterances (eval
            with ``gen_args.return_timestamps``).
        longform_tuned: the same for the fine-tuned model.
        command: the command that ran the whole experiment (e.g. ``bash run.sh``); the first line names it and
            the checkout's commit, so that a copy under results/ says where its figures come from.
    """
    from safetensors import safe_open

    with safe_open(str(Path(model) / "model.safetensors"), "pt") as f:
        params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    before, after = (json.loads(Path(p).read_text()) for p in (original, tuned))
    relative = 1 - after["error_rate"] / before["error_rate"] if before["error_rate"] else 0.0
    metric = after["metric"].upper()
    lines = [
        source_line(command),
        "",
        f"| model | params | original | {metric} (ins, del, sub) |",
        "| :----- | :-----: | :--------: | :------- |",
        f"| {name} | {params / 1e6:.1f}M | {_percent(before['error_rate'])} | **{_percent(after['error_rate'])}** "
        f"({_percent(after['ins_rate'])}, {_percent(after['del_rate'])}, {_percent(after['sub_rate'])}) |",
        "",
        f"{metric} in %, on {after['num_utts']} test utterances ({after['total']} reference units, "
        f"{after['audio_seconds']:.0f} s of audio); relative reduction {100 * relative:.1f}%; "
        f"RTF {before['RTF']} before ({_decoding(before)}), {after['RTF']} after ({_decoding(after)}).",
    ]
    if "lid_accuracy" in after:  # written by an egrecho eval that reports egrecho_inner.quality's fields
        pair = lambda a, b: (_load(a), _load(b)) if a and b else None  # noqa: E731
        lines += [""] + side_effects_table(before, after,
                                           _retention(retention_original, retention_tuned, retention_names),
                                           pair(nonspeech_original, nonspeech_tuned))
    if longform_original and longform_tuned:
        lines += [""] + long_form_table((before, after), (_load(longform_original), _load(longform_tuned)))
    if loss_curve:
        lines += ["", f"![training and validation loss]({loss_curve})"]
    if wall_seconds is not None:
        lines += ["", f"Wall time of the whole run: {wall_seconds / 60:.1f} min."]
    if notes:
        lines += ["", notes]
    text = "\n".join(lines) + "\n"
    with atomic_path(output) as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(text)
    return text


if __name__ == "__main__":
    run_cli(write_results)
