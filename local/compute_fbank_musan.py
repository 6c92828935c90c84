#!/usr/bin/env python3
"""Cut MUSAN into 10 s windows and compute Whisper fbank features for noise mixing.

Usage:
    ./local/compute_fbank_musan.py --manifest_dir data/manifests \
        --output_dir data/fbank_whisper80 --num_mel_bins 80 --nj 2

Reads ``<manifest_dir>/musan_recordings_{music,noise,speech}.jsonl.gz`` (as written by
``lhotse prepare musan``) and writes ``<output_dir>/musan_cuts.jsonl.gz`` and ``musan_feats/``.
Windows shorter than 5 s (file ends) are dropped, as in icefall.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lhotse import CutSet, RecordingSet, combine

from egrecho_inner.constants import MUSAN_CUTS, SAMPLING_RATE
from egrecho_inner.errors import MissingInputError
from egrecho_inner.features import make_fbank_extractor
from egrecho_inner.stamps import fingerprint, should_run, write_stamp
from egrecho_inner.storage import compute_and_store, cuts_stamp
from egrecho_inner.utils import run_cli

MUSAN_PARTS = ("music", "noise", "speech")
WINDOW_SECONDS = 10.0
MIN_WINDOW_SECONDS = 5.0


def compute_fbank_musan(
    manifest_dir: str = "data/manifests", output_dir: str = "data/fbank_whisper80", num_mel_bins: int = 80, nj: int = 1
) -> None:
    """Write MUSAN cuts with features.

    Args:
        manifest_dir: where the MUSAN recordings manifests are.
        output_dir: where musan_cuts.jsonl.gz and musan_feats/ go.
        num_mel_bins: 80 or 128, as for the speech features.
        nj: parallel processes.
    """
    cuts_path = Path(output_dir) / MUSAN_CUTS
    paths = [Path(manifest_dir) / f"musan_recordings_{part}.jsonl.gz" for part in MUSAN_PARTS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise MissingInputError(f"MUSAN manifests not found: {', '.join(missing)}; run prepare.sh stage 2")
    current = fingerprint(paths, {"num_mel_bins": num_mel_bins})
    if not should_run(cuts_stamp(cuts_path), current, [cuts_path, Path(output_dir) / "musan_feats"],
                      str(cuts_path), "computing MUSAN cuts"):
        return
    recordings = combine(RecordingSet.from_file(p) for p in paths)
    cuts = (
        CutSet.from_manifests(recordings=recordings)
        .cut_into_windows(WINDOW_SECONDS)
        .filter(lambda c: c.duration > MIN_WINDOW_SECONDS)
        .resample(SAMPLING_RATE)
    )
    cuts = compute_and_store(cuts, make_fbank_extractor(num_mel_bins), Path(output_dir) / "musan_feats", cuts_path, nj)
    write_stamp(cuts_stamp(cuts_path), current)
    logging.info("wrote %d MUSAN cuts to %s", len(cuts), cuts_path)


if __name__ == "__main__":
    run_cli(compute_fbank_musan)
