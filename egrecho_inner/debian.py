"""Fetch Debian packages without installing them: the demos' natural text and real voices come from
Debian's archive (``apt-get download`` needs no root; ``dpkg-deb -x`` unpacks into a plain directory)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from egrecho_inner.errors import MissingInputError


def fetch_packages(workdir: Path, packages: tuple[str, ...]) -> list[str]:
    """Download ``packages`` into ``workdir/debs`` and unpack them into ``workdir/root``.

    Returns:
        the packages' ``name_version_arch`` strings, sorted.

    Raises:
        MissingInputError: apt-get could not download them (no package lists: run ``apt-get update``).
    """
    debs = Path(workdir) / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["apt-get", "download", *packages], cwd=debs, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MissingInputError(f"apt-get download {' '.join(packages)} failed (run apt-get update?): "
                                f"{proc.stderr.strip()}")
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(workdir) / "root")], check=True)
    return sorted(deb.stem for deb in debs.glob("*.deb"))
