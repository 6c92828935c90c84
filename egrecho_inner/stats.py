"""Duration statistics of a manifest, in the layout of lhotse's ``CutSet.describe()``."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Union

import numpy as np
from lhotse import CutSet, RecordingSet, SupervisionSet, load_manifest
from tabulate import tabulate

from egrecho_inner.errors import MissingInputError
from egrecho_inner.utils import Pathlike

Manifest = Union[CutSet, RecordingSet, SupervisionSet]
PERCENTILES = (25, 50, 75, 99, 99.5, 99.9)
_SPEED_SUFFIX = re.compile(r"_sp(\d+(\.\d+)?)$")


def format_hms(seconds: float) -> str:
    """Seconds as ``hh:mm:ss`` (hours may exceed 24)."""
    total = int(round(seconds))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _items(manifest: Manifest) -> tuple[str, list]:
    if isinstance(manifest, CutSet):
        return "Cuts", list(manifest)
    if isinstance(manifest, RecordingSet):
        return "Recordings", list(manifest)
    if isinstance(manifest, SupervisionSet):
        return "Supervisions", list(manifest)
    raise TypeError(f"can't describe a {type(manifest).__name__}")


def _language(item) -> str:
    sups = getattr(item, "supervisions", None)
    if sups is not None:  # a cut
        return (sups[0].language if sups else None) or "unknown"
    return getattr(item, "language", None) or "n/a"  # supervisions; recordings have none


def describe_rows(manifest: Manifest) -> list[tuple[str, str]]:
    """Rows of (label, value): count, total, mean, std, min, percentiles, max, language mix and,
    if speed-perturbed copies (``_sp0.9``-style ids) are present, the unperturbed duration."""
    kind, items = _items(manifest)
    if not items:
        return [(f"{kind} count:", "0")]
    durations = np.array([item.duration for item in items], dtype=np.float64)
    rows = [
        (f"{kind} count:", str(len(items))),
        ("Total duration (hh:mm:ss)", format_hms(durations.sum())),
        ("mean", f"{durations.mean():.1f}"),
        ("std", f"{durations.std():.1f}"),
        ("min", f"{durations.min():.1f}"),
    ]
    rows += [(f"{p:g}%", f"{np.percentile(durations, p):.1f}") for p in PERCENTILES]
    rows.append(("max", f"{durations.max():.1f}"))
    languages = Counter(_language(item) for item in items)
    if set(languages) != {"n/a"}:
        mix = ", ".join(f"{lang} {n} ({100 * n / len(items):.1f}%)" for lang, n in languages.most_common())
        rows.append(("Languages", mix))
    perturbed = [bool(_SPEED_SUFFIX.search(item.id)) for item in items]
    if any(perturbed):
        original = durations[~np.array(perturbed)].sum()
        rows.append(("Without speed perturbation (hh:mm:ss)", format_hms(original)))
    return rows


def describe(manifest_path: Pathlike) -> str:
    """The ``fancy_grid`` statistics table of a manifest file."""
    return tabulate(describe_rows(load_manifest(manifest_path)), tablefmt="fancy_grid")


def print_stats(manifest: str) -> None:
    """Print the statistics table of a manifest.

    Args:
        manifest: a cut, recording or supervision manifest (.jsonl or .jsonl.gz).
    """
    if not Path(manifest).is_file():
        raise MissingInputError(f"{manifest} not found")
    print(manifest)
    print(describe(manifest))
