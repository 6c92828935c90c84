#!/usr/bin/env python3
"""Make cut manifests and Whisper fbank features for the parts of a corpus.

Usage:
    ./local/compute_fbank_subset.py --manifest_dir data/manifests --prefix demo_vi \
        --output_dir data/fbank_whisper80 --num_mel_bins 80 --perturb_speed true --nj 2

Writes ``<output_dir>/<prefix>_cuts_<part>.jsonl.gz`` and the features under
``<output_dir>/<prefix>_feats_<part>/`` (lilcom_chunky). Audio is resampled to 16 kHz. With
``--perturb_speed true`` the train part also gets 0.9 and 1.1 speed copies (ids ``..._sp0.9``).
With ``--on_the_fly_feats true`` only the cuts are written; features are computed at batch time.
Recordings with Kaldi ``segments`` give one cut per segment, or with ``--pack_segments true`` windows of
up to 30 s of consecutive segments, each cut holding its segments as supervisions (``egrecho_inner.windows``:
what long-form decoding sees, trained with ``timestamp_probability``). With ``--shar true`` each part is also
written as Lhotse Shar shards, ``<output_dir>/<prefix>_shar_<part>/`` (features, or with on-the-fly
features the audio), which training reads lazily with ``shar: true``. With ``--audio_16k true`` the cuts' audio
is also stored at 16 kHz (``<output_dir>/<prefix>_audio16k_<part>/``, float WAV) and the cuts read it from there:
for corpora at other rates, so that noise mixing and on-the-fly features in training don't resample each cut.
Each part leaves a stamp (``.<prefix>_cuts_<part>.stamp.json``: its manifests' hashes and the options);
a rerun skips a part whose stamp matches and redoes one whose manifests or options changed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lhotse import CutSet, RecordingSet, SupervisionSet

from egrecho_inner.constants import SAMPLING_RATE, SHAR_DIR
from egrecho_inner.errors import MissingInputError
from egrecho_inner.features import make_fbank_extractor
from egrecho_inner.stamps import fingerprint, should_run, write_stamp
from egrecho_inner.storage import compute_and_store, cuts_stamp, store_audio, write_cuts, write_shar
from egrecho_inner.utils import run_cli
from egrecho_inner.windows import pack_segments as pack_windows


def make_cuts(manifest_dir: Path, prefix: str, part: str, pack: bool = False) -> CutSet:
    """16 kHz cuts of ``<prefix>_{recordings,supervisions}_<part>.jsonl``: one per supervision, or with
    ``pack`` windows of up to 30 s of consecutive supervisions of a recording."""
    paths = [manifest_dir / f"{prefix}_{kind}_{part}.jsonl" for kind in ("recordings", "supervisions")]
    for path in paths:
        if not path.is_file():
            raise MissingInputError(f"{path} not found; run prepare.sh stage 1 (kaldi2mani) first")
    recordings, supervisions = RecordingSet.from_file(paths[0]), SupervisionSet.from_file(paths[1])
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    if pack:
        cuts = pack_windows(cuts)
    elif len(supervisions) > len(recordings):  # Kaldi segments: several utterances per recording
        cuts = cuts.trim_to_supervisions(keep_overlapping=False)
    return cuts.resample(SAMPLING_RATE)


def compute_fbank_subset(
    manifest_dir: str = "data/manifests",
    prefix: str = "demo_vi",
    parts: str = "train,val,test",
    output_dir: str = "data/fbank_whisper80",
    num_mel_bins: int = 80,
    perturb_speed: bool = False,
    on_the_fly_feats: bool = False,
    pack_segments: bool = False,
    shar: bool = False,
    shar_shard_size: int = 1000,
    audio_16k: bool = False,
    nj: int = 1,
) -> None:
    """Write cuts (and features) for each part.

    Args:
        manifest_dir: where kaldi2mani wrote the manifests.
        prefix: corpus name used in the manifest names.
        parts: comma-separated part names.
        output_dir: where cuts and features go.
        num_mel_bins: 80 (Whisper v1/v2) or 128 (large-v3).
        perturb_speed: add 0.9x and 1.1x copies of the train part.
        on_the_fly_feats: write cuts without features.
        pack_segments: windows of up to 30 s of consecutive segments instead of one cut per segment.
        shar: also write the part as Lhotse Shar shards.
        shar_shard_size: cuts per Shar shard.
        audio_16k: also store the cuts' audio at 16 kHz (float WAV) and point the cuts at it.
        nj: parallel processes.
    """
    extractor = make_fbank_extractor(num_mel_bins)
    for part in [p.strip() for p in parts.split(",") if p.strip()]:
        cuts_path = Path(output_dir) / f"{prefix}_cuts_{part}.jsonl.gz"
        feats_dir = Path(output_dir) / f"{prefix}_feats_{part}"
        shar_dir = Path(output_dir) / SHAR_DIR.format(prefix=prefix, part=part)
        audio_dir = Path(output_dir) / f"{prefix}_audio16k_{part}"
        inputs = [Path(manifest_dir) / f"{prefix}_{kind}_{part}.jsonl" for kind in ("recordings", "supervisions")]
        options = {"num_mel_bins": num_mel_bins, "on_the_fly_feats": on_the_fly_feats,
                   "perturb_speed": perturb_speed and part == "train", **({"pack_segments": True} if pack_segments else {}),
                   **({"shar_shard_size": shar_shard_size} if shar else {}),
                   **({"audio_16k": True} if audio_16k else {})}
        current = fingerprint(inputs, options)
        outputs = ([cuts_path] + ([] if on_the_fly_feats else [feats_dir]) + ([shar_dir] if shar else [])
                   + ([audio_dir] if audio_16k else []))
        if not should_run(cuts_stamp(cuts_path), current, outputs, f"{part}: cuts", f"{part}: computing cuts"):
            continue
        cuts = make_cuts(Path(manifest_dir), prefix, part, pack_segments)
        if perturb_speed and part == "train":
            logging.info("%s: adding 0.9x and 1.1x speed perturbed copies", part)
            cuts = cuts + cuts.perturb_speed(0.9) + cuts.perturb_speed(1.1)
        if audio_16k:
            cuts = store_audio(cuts, audio_dir, nj)
            logging.info("%s: stored the audio of %d cuts at 16 kHz in %s", part, len(cuts), audio_dir)
        if on_the_fly_feats:
            write_cuts(cuts, cuts_path)
        else:
            cuts = compute_and_store(cuts, extractor, feats_dir, cuts_path, nj)
        if shar:
            shards = write_shar(cuts, shar_dir, shar_shard_size, audio=on_the_fly_feats)
            logging.info("%s: wrote %d Shar shards to %s", part, len(shards["cuts"]), shar_dir)
        write_stamp(cuts_stamp(cuts_path), current)
        logging.info("%s: wrote %d cuts to %s", part, len(cuts), cuts_path)


if __name__ == "__main__":
    run_cli(compute_fbank_subset)
