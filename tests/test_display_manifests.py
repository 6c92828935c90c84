"""local/display_manifests.py numbers against numpy on durations read by lhotse's own reader."""

from __future__ import annotations

import re

import numpy as np
import pytest
from lhotse import CutSet, load_manifest
from lhotse.testing.dummies import dummy_cut, dummy_supervision

from tests.conftest import RECIPE_DIR, run_script


def parse_table(text: str) -> dict[str, str]:
    """The fancy_grid rows as {label: value}."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("│").split("│")] if line.startswith("│") else []
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    return rows


@pytest.fixture
def cuts_file(tmp_path):
    rng = np.random.default_rng(1)
    cuts = []
    for i, duration in enumerate(rng.uniform(0.5, 20.0, size=57).round(3)):
        cut = dummy_cut(i, duration=float(duration), supervisions=[dummy_supervision(i, duration=float(duration))])
        cut.supervisions[0].language = "vi" if i % 3 else "en"
        cuts.append(cut)
    cutset = CutSet.from_cuts(cuts)
    cutset = cutset + cutset.perturb_speed(0.9) + cutset.perturb_speed(1.1)
    path = tmp_path / "x_cuts_train.jsonl.gz"
    cutset.to_file(path)
    return path


def hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def test_numbers_match_numpy(cuts_file):
    proc = run_script(str(RECIPE_DIR / "local/display_manifests.py"), str(cuts_file))
    assert "╒" in proc.stdout and "╘" in proc.stdout  # tabulate fancy_grid
    rows = parse_table(proc.stdout)
    cuts = load_manifest(cuts_file)
    d = np.array([c.duration for c in cuts])
    assert rows["Cuts count:"] == str(len(d)) == "171"
    assert rows["Total duration (hh:mm:ss)"] == hms(d.sum())
    for label, value in [("mean", d.mean()), ("std", d.std()), ("min", d.min()), ("max", d.max())]:
        assert rows[label] == f"{value:.1f}", label
    for p in (25, 50, 75, 99, 99.5, 99.9):
        assert rows[f"{p:g}%"] == f"{np.percentile(d, p):.1f}", p
    unperturbed = sum(c.duration for c in cuts if not re.search(r"_sp[\d.]+$", c.id))
    assert rows["Without speed perturbation (hh:mm:ss)"] == hms(unperturbed)
    n_vi = sum(c.supervisions[0].language == "vi" for c in cuts)
    assert rows["Languages"] == f"vi {n_vi} ({100 * n_vi / 171:.1f}%), en {171 - n_vi} ({100 * (171 - n_vi) / 171:.1f}%)"


def test_several_files_no_prompt_and_missing_file(cuts_file, tmp_path):
    sups = tmp_path / "sups.jsonl"
    load_manifest(cuts_file).decompose()[1].to_file(sups)
    proc = run_script(str(RECIPE_DIR / "local/display_manifests.py"), str(cuts_file), str(sups))
    assert proc.stdout.count("╒") == 2 and "Supervisions count:" in proc.stdout
    proc = run_script(str(RECIPE_DIR / "local/display_manifests.py"), str(tmp_path / "none.jsonl"), check=False)
    assert proc.returncode == 1 and "none.jsonl not found" in proc.stderr
