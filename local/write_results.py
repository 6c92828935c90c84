#!/usr/bin/env python3
"""Write the before/after table of a fine-tuning run (the original recipe's Results form).

Usage:
    ./local/write_results.py --name base-lora --model pretrained/whisper-base \
        --original exp/whisper-base/orig/errs-test.json --tuned exp/whisper-base/lora/errs-test.json \
        --output exp/whisper-base/RESULTS.md [--wall_seconds 1500] [--notes "..."]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from egrecho_inner.utils import atomic_path, run_cli  # noqa: E402


def _percent(x: float) -> str:
    return f"{100 * x:.2f}"


def write_results(name: str, model: str, original: str, tuned: str, output: str,
                  wall_seconds: Optional[float] = None, notes: str = "") -> str:
    """Render and save the table; returns it.

    Args:
        name: row label, e.g. base-lora.
        model: the base model dir (its parameter count is shown).
        original: errs-<part>.json of the model before fine-tuning.
        tuned: errs-<part>.json after fine-tuning.
        output: the Markdown file to write.
        wall_seconds: wall time of the whole run, if known.
        notes: free text appended under the table.
    """
    from safetensors import safe_open

    with safe_open(str(Path(model) / "model.safetensors"), "pt") as f:
        params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    before, after = (json.loads(Path(p).read_text()) for p in (original, tuned))
    relative = 1 - after["error_rate"] / before["error_rate"] if before["error_rate"] else 0.0
    metric = after["metric"].upper()
    lines = [
        f"| model | params | original | {metric} (ins, del, sub) |",
        "| :----- | :-----: | :--------: | :------- |",
        f"| {name} | {params / 1e6:.1f}M | {_percent(before['error_rate'])} | **{_percent(after['error_rate'])}** "
        f"({_percent(after['ins_rate'])}, {_percent(after['del_rate'])}, {_percent(after['sub_rate'])}) |",
        "",
        f"{metric} in %, on {after['num_utts']} test utterances ({after['total']} reference units, "
        f"{after['audio_seconds']:.0f} s of audio); relative reduction {100 * relative:.1f}%; "
        f"RTF {before['RTF']} before, {after['RTF']} after.",
    ]
    if wall_seconds is not None:
        lines.append(f"Wall time of the whole run: {wall_seconds / 60:.1f} min.")
    if notes:
        lines += ["", notes]
    text = "\n".join(lines) + "\n"
    with atomic_path(output) as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(text)
    return text


if __name__ == "__main__":
    run_cli(write_results)
