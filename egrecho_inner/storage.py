"""Compute features for a CutSet and store them as ``<feats_dir>/feats-<job>.lca`` (lilcom_chunky),
writing the cut manifest atomically; ``cuts_stamp`` names the stamp (``egrecho_inner.stamps``) that the
callers write once a part is complete, so reruns skip finished work and redo changed work. ``write_shar``
writes a part as Lhotse Shar shards (cuts and their features or audio side by side in tar files), for
corpora read sequentially in shards rather than through one manifest and random access to feature files.
``store_audio`` writes the cuts' audio as it is read (resampled to 16 kHz), so batch-time audio (noise mixing,
on-the-fly features) need not resample every cut again."""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from lhotse import CutSet, LilcomChunkyWriter
from lhotse.features import FeatureExtractor

from egrecho_inner.utils import Pathlike, atomic_path, writable_dir

log = logging.getLogger(__name__)


def cuts_stamp(cuts_path: Pathlike) -> Path:
    """``data/x/foo_cuts_train.jsonl.gz`` -> ``data/x/.foo_cuts_train.stamp.json``."""
    cuts_path = Path(cuts_path)
    return cuts_path.with_name("." + cuts_path.name.split(".")[0] + ".stamp.json")


def fresh_dir(path: Pathlike) -> Path:
    """An empty, writable ``path``: one left by an earlier or interrupted run is removed first."""
    path = Path(path)
    if path.exists():
        log.info("removing %s left by an unfinished run", path)
        shutil.rmtree(path)
    writable_dir(path)
    return path


def _compute_shard(args: tuple[CutSet, FeatureExtractor, str]) -> CutSet:
    cuts, extractor, storage_path = args
    torch.set_num_threads(1)  # one thread per process: nj processes already fill the cores
    return cuts.compute_and_store_features(
        extractor=extractor, storage_path=storage_path, storage_type=LilcomChunkyWriter, num_jobs=1,
        progress_bar=False,
    )


def compute_and_store(
    cuts: CutSet, extractor: FeatureExtractor, feats_dir: Pathlike, cuts_path: Pathlike, num_jobs: int = 1
) -> CutSet:
    """Extract features for ``cuts`` with ``num_jobs`` processes and write the cut manifest.

    A feats dir left by an earlier or interrupted run is removed first.
    """
    feats_dir = fresh_dir(feats_dir)
    cuts = cuts.to_eager()
    shards = cuts.split(num_splits=max(1, min(num_jobs, len(cuts))))
    jobs = [(shard, extractor, str(feats_dir / f"feats-{i}")) for i, shard in enumerate(shards)]
    if len(jobs) == 1:
        results = [_compute_shard(jobs[0])]
    else:
        with ProcessPoolExecutor(max_workers=len(jobs)) as pool:
            results = list(pool.map(_compute_shard, jobs))
    with_feats = CutSet.from_cuts(cut for shard in results for cut in shard)
    write_cuts(with_feats, cuts_path)
    return with_feats


def store_audio(cuts: CutSet, audio_dir: Pathlike, num_jobs: int = 1) -> CutSet:
    """Write each cut's audio, as the cut reads it (its resampling and speed perturbation applied), to
    ``<audio_dir>/<first 3 characters of its id>/<id>.wav``; returns the cuts reading those files, in the same
    order. 32-bit float WAV (230 MB per hour at 16 kHz): resampling can overshoot full scale, which 16-bit
    flac would clip. An audio dir left by an earlier or interrupted run is removed first."""
    audio_dir = fresh_dir(audio_dir)
    return cuts.to_eager().save_audios(audio_dir, format="wav", encoding="FLOAT", num_jobs=num_jobs,
                                       progress_bar=False, shuffle_on_split=False)


def write_cuts(cuts: CutSet, cuts_path: Pathlike) -> None:
    """Write a cut manifest atomically."""
    with atomic_path(cuts_path) as tmp:
        cuts.to_file(tmp)


def write_shar(cuts: CutSet, shar_dir: Pathlike, shard_size: int = 1000, audio: bool = False) -> dict:
    """Write ``cuts`` as Lhotse Shar shards into ``shar_dir`` (replaced whole, via a temporary dir): per shard
    ``cuts.NNNNNN.jsonl.gz`` and ``features.NNNNNN.tar`` (the stored features re-encoded by lilcom: one more
    quantisation, at most 1/64 on the log-mel scale), or with ``audio`` ``recording.NNNNNN.tar``
    (flac) instead, for features computed at batch time. Returns lhotse's field -> shard paths."""
    shar_dir = Path(shar_dir)
    tmp = shar_dir.with_name(shar_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fields = {"recording": "flac"} if audio else {"features": "lilcom"}
    # the audio stays where it is (the cuts still name it) unless asked for: no warning about that
    written = cuts.to_shar(tmp, fields=fields, shard_size=shard_size, warn_unused_fields=False)
    shutil.rmtree(shar_dir, ignore_errors=True)
    tmp.rename(shar_dir)
    return {field: [str(shar_dir / Path(p).name) for p in paths] for field, paths in written.items()}
