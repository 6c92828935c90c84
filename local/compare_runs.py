#!/usr/bin/env python3
"""Compare fine-tuning runs side by side: training time and every score they share.

Usage:
    ./local/compare_runs.py --runs "[un-padded=exp/whisper-base/lora, padded=exp/whisper-base/lora_padded]" \
        --output exp/whisper-base/PADDING.md [--title "..."] [--notes "..."] [--command "bash run.sh ..."]

Each run dir holds the ``errs-<part>.json`` files of ``egrecho eval`` and, for a fine-tune,
``train_results.json`` (written by training: ``train_runtime``, steps); a dir without it is a model that was
not trained (the original: its training cells read "-"). The table has one column per run: training wall
time, steps, the error rate and quality fields of each part present in every run, and how each was decoded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from egrecho_inner.errors import InputError, MissingInputError  # noqa: E402
from egrecho_inner.utils import atomic_path, run_cli, source_line  # noqa: E402

QUALITY_ROWS = (("lid_accuracy", "language identification accuracy"),
                ("nonspeech_with_text", "non-speech clips that got any text"),
                ("repetition_rate", "outputs with runaway repetition"))


def _run(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise InputError(f"a run is NAME=DIR, got {spec!r}")
    run_dir = Path(path)
    if not any(run_dir.glob("errs-*.json")):
        raise MissingInputError(f"{run_dir} holds no errs-*.json (evaluate the run first)")
    return name, run_dir


def _cell(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def comparison_table(runs: list[tuple[str, Path]]) -> list[str]:
    """Markdown table rows: training time, steps, then per shared eval part its error rate and quality fields."""
    trained = [json.loads((d / "train_results.json").read_text()) if (d / "train_results.json").is_file() else None
               for _, d in runs]
    parts = sorted(set.intersection(*({p.stem.removeprefix("errs-") for p in d.glob("errs-*.json")} for _, d in runs)))
    errs = [{part: json.loads((d / f"errs-{part}.json").read_text()) for part in parts} for _, d in runs]
    rows = [("training wall time (min)", [f"{t['train_runtime'] / 60:.1f}" if t else "-" for t in trained]),
            ("training steps per second", [f"{t['train_steps_per_second']:.3f}" if t else "-" for t in trained])]
    for part in parts:
        first = errs[0][part]
        if first.get("total"):  # non-speech sets have no words to score
            rows.append((f"{first['metric'].upper()} (%), {part}", [_cell(e[part]["error_rate"]) for e in errs]))
        for key, label in QUALITY_ROWS:
            if any(e[part].get(key) is not None for e in errs):
                rows.append((f"{label} (%), {part}", [_cell(e[part].get(key)) for e in errs]))
        if any("timestamp_windows" in e[part] for e in errs):
            rows.append((f"30 s windows with well-formed timestamps (%), {part}",
                         [_cell(e[part].get("timestamp_windows", {}).get("well_formed")) for e in errs]))
        if any("segment_start_error_ms" in e[part] for e in errs):
            rows.append((f"segment-start error, median (ms), {part}",
                         [str(e[part].get("segment_start_error_ms", {}).get("median", "n/a")) for e in errs]))
        rows.append((f"decoded, {part}", ["un-padded" if e[part].get("unpadded") else "padded to 30 s" for e in errs]))
    header = ["| | " + " | ".join(name for name, _ in runs) + " |", "| :----- |" + " ---: |" * len(runs)]
    return header + [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]


def compare_runs(runs: list[str], output: str, title: str = "Runs compared", notes: str = "",
                 command: str = "") -> None:
    """Write the comparison of ``runs`` (NAME=DIR each) to ``output`` and print it.

    Args:
        runs: NAME=DIR, one per run (the first is the reference column).
        output: the Markdown file to write.
        title: its heading.
        notes: a paragraph under the table (what differs between the runs).
        command: the command that ran the experiment; written under the title with the checkout's commit.
    """
    parsed = [_run(spec) for spec in runs]
    if len(parsed) < 2:
        raise InputError("give at least two runs")
    text = "\n".join([f"# {title}", "", source_line(command), "", *comparison_table(parsed), "", notes]).rstrip() + "\n"
    with atomic_path(output) as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    run_cli(compare_runs)
