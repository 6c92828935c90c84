#!/usr/bin/env python3
"""Draw the training and validation loss of a run from its TensorBoard log, as a PNG.

Usage:
    ./local/plot_loss.py --logdir exp/whisper-base/lora/tensorboard --output exp/whisper-base/loss.png

Reads the ``train/loss`` and ``eval/loss`` scalars that the Hugging Face Trainer logs (every event
file under ``logdir``, e.g. the runs of a resumed training, sorted by step).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from egrecho_inner.errors import InputError, MissingInputError  # noqa: E402
from egrecho_inner.utils import atomic_path, run_cli  # noqa: E402

CURVES = {"train/loss": "training loss", "eval/loss": "validation loss"}


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    """``(step, value)`` of each curve in :data:`CURVES`, from every event file under ``logdir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    dirs = sorted({p.parent for p in Path(logdir).rglob("events.out.tfevents.*")})
    if not dirs:
        raise MissingInputError(f"no TensorBoard event files under {logdir}")
    curves: dict[str, dict[int, float]] = {tag: {} for tag in CURVES}
    for d in dirs:
        events = EventAccumulator(str(d))
        events.Reload()
        for tag in CURVES:
            if tag in events.Tags()["scalars"]:
                curves[tag].update({e.step: e.value for e in events.Scalars(tag)})
    return {tag: sorted(points.items()) for tag, points in curves.items()}


def plot_loss(logdir: str, output: str, title: str = "") -> str:
    """Write the picture; returns its path.

    Args:
        logdir: the run's TensorBoard dir (``<exp_dir>/tensorboard``).
        output: the PNG to write.
        title: a title above the plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = read_scalars(logdir)
    if not any(curves.values()):
        raise InputError(f"{logdir} holds no train/loss or eval/loss scalars")
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for tag, points in curves.items():
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, marker="o" if tag == "eval/loss" else None, label=CURVES[tag])
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or logdir, fontsize=9)
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    print(f"plot_loss: wrote {output}")
    return output


if __name__ == "__main__":
    run_cli(plot_loss)
