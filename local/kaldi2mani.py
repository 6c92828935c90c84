#!/usr/bin/env python3
"""Convert Kaldi data dirs into lhotse recordings/supervisions manifests.

Usage:
    ./local/kaldi2mani.py --kaldi_dir data/kaldi/demo --prefix demo_vi \
        --parts train,val,test --output_dir data/manifests --nj 2

Reads ``<kaldi_dir>/<part>/{wav.scp,text,utt2lang[,segments]}`` and writes
``<output_dir>/<prefix>_recordings_<part>.jsonl`` and ``<prefix>_supervisions_<part>.jsonl``.
Transcripts get full-width forms mapped to half width, and spaces removed for languages written
without them. Utterances that can't be used are logged one by one and counted in a summary.
Each part leaves a stamp (``<output_dir>/.<prefix>_<part>.stamp.json``: its Kaldi files' hashes, its
audio files' sizes and mtimes, the options); a rerun skips a part whose stamp matches and redoes one
whose files or options changed, saying what changed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional


from egrecho_inner.kaldi import load_kaldi_dir
from egrecho_inner.stamps import fingerprint, listed_audio_identity, should_run, write_stamp
from egrecho_inner.utils import atomic_path, run_cli


KALDI_FILES = ("wav.scp", "text", "utt2lang", "segments")


def kaldi2mani(
    kaldi_dir: str,
    prefix: str,
    parts: str = "train,val,test",
    output_dir: str = "data/manifests",
    language: Optional[str] = None,
    new_language: Optional[str] = None,
    nj: int = 1,
    keep_empty_text: bool = False,
) -> None:
    """Write manifests for each part.

    Args:
        kaldi_dir: dir holding one Kaldi data dir per part.
        prefix: name of the output manifests (e.g. aishell_vi).
        parts: comma-separated part names.
        output_dir: where the manifests go.
        language: language of utterances that utt2lang does not name (required without utt2lang).
        new_language: a code Whisper lacks, accepted in utt2lang (fine-tune with new_language: CODE).
        nj: threads reading audio headers.
        keep_empty_text: keep utterances with an empty transcript as non-speech (for nospeech_cuts).
    """
    new_languages = (new_language,) if new_language else ()
    options = {"language": language, "new_language": new_language, "keep_empty_text": keep_empty_text}
    for part in [p.strip() for p in parts.split(",") if p.strip()]:
        part_dir = Path(kaldi_dir) / part
        outputs = [Path(output_dir) / f"{prefix}_{kind}_{part}.jsonl" for kind in ("recordings", "supervisions")]
        stamp = Path(output_dir) / f".{prefix}_{part}.stamp.json"
        current = fingerprint([part_dir / name for name in KALDI_FILES], options,
                              {"audio files": listed_audio_identity(part_dir / "wav.scp")})
        if not should_run(stamp, current, outputs, f"{part}: manifests", f"{part}: writing manifests"):
            continue
        recordings, supervisions, report = load_kaldi_dir(part_dir, language, nj, new_languages, keep_empty_text)
        for manifest, path in zip((recordings, supervisions), outputs):
            with atomic_path(path) as tmp:
                manifest.to_file(tmp)
        write_stamp(stamp, current)
        hours = sum(s.duration for s in supervisions) / 3600
        logging.info("%s: %d utterances (%.2f h) written; %s", part, len(supervisions), hours, report.summary())


if __name__ == "__main__":
    run_cli(kaldi2mani)
