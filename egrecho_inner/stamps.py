"""Stamps: what produced an output, so that a rerun skips what is up to date and redoes what changed.

A stamp is a small JSON file next to an output holding the identity of each input and the options that
shape the output. Files up to 64 MiB are identified by a content hash (an edited transcript with the same
size and a restored mtime still counts as changed); larger files by size and mtime; a directory by the
size and mtime of every file in it (a model dir, MUSAN). ``stale_reason`` compares a stamp with the
current inputs and options and says in words what changed; an output whose stamp matches is up to date.
Stamps are written last and atomically, so an interrupted step has no stamp and reruns.

From the shell (``finetune.sh``, ``run.sh``, ``prepare.sh``'s MUSAN stage)::

    python3 -m egrecho_inner.stamps check STAMP --inputs A B --outputs C --options k=v   # exit 0: up to date
    python3 -m egrecho_inner.stamps write STAMP --inputs A B --options k=v
    python3 -m egrecho_inner.stamps run STAMP --inputs A B --outputs C -- COMMAND ARGS    # check, run, write
    python3 -m egrecho_inner.stamps training-inputs RESOLVED_TRAIN_YAML   # the extra data files training reads

``run`` counts the command line among the options, so a changed argument reruns the step.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Optional

from egrecho_inner.constants import MUSAN_CUTS, SHAR_DIR
from egrecho_inner.utils import Pathlike, atomic_path

log = logging.getLogger(__name__)

HASH_LIMIT = 64 << 20  # bytes: files up to this size are hashed, larger ones identified by size + mtime


def file_identity(path: Path) -> str:
    stat = path.stat()
    if stat.st_size <= HASH_LIMIT:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return f"size:{stat.st_size},mtime_ns:{stat.st_mtime_ns}"


def input_identity(path: Pathlike) -> str:
    """How an input is recognised: missing, a file's hash (or size + mtime), a directory's file stats."""
    path = Path(path)
    if path.is_file():
        return file_identity(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            stat = f.stat()
            digest.update(f"{f.relative_to(path)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        return "dir:" + digest.hexdigest()
    return "missing"


def listed_audio_identity(wav_scp: Pathlike) -> str:
    """Size and mtime of every audio file a ``wav.scp`` names (pipes are covered by the wav.scp itself)."""
    digest = hashlib.sha256()
    path = Path(wav_scp)
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            fields = line.split(maxsplit=1)
            if len(fields) == 2 and not fields[1].rstrip().endswith("|") and Path(fields[1].strip()).is_file():
                stat = Path(fields[1].strip()).stat()
                digest.update(f"{fields[1].strip()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return "audio:" + digest.hexdigest()


def fingerprint(inputs: Iterable[Pathlike], options: Optional[dict] = None, extra: Optional[dict] = None) -> dict:
    """The stamp content: input path -> identity (plus ``extra`` name -> identity) and the options."""
    identities = {str(p): input_identity(p) for p in inputs}
    identities.update(extra or {})
    return {"inputs": identities, "options": {k: v for k, v in sorted((options or {}).items())}}


def stale_reason(stamp: Pathlike, current: dict, outputs: Iterable[Pathlike] = ()) -> Optional[str]:
    """None when ``stamp`` records ``current`` and every output exists; otherwise what changed, in words."""
    stamp, outputs = Path(stamp), [str(p) for p in outputs]
    missing = [p for p in outputs if not Path(p).exists()]
    if not stamp.is_file():
        return "not run before" if len(missing) == len(outputs) else "no stamp (an interrupted run, or one before stamps)"
    if missing:
        return f"output missing: {', '.join(missing)}"
    try:
        old = json.loads(stamp.read_text())
    except ValueError:
        return f"unreadable stamp {stamp}"
    changes = [f"{name} changed" for name, identity in current["inputs"].items()
               if old.get("inputs", {}).get(name) != identity]
    changes += [f"{name} {old.get('options', {}).get(name)!r} -> {value!r}" for name, value in current["options"].items()
                if old.get("options", {}).get(name) != value]
    # an option or input set before and absent now is a change too (options only recorded when set, e.g.
    # pack_segments, would otherwise keep the last run's output)
    changes += [f"{name} {value!r} -> not set" for name, value in old.get("options", {}).items()
                if name not in current["options"]]
    changes += [f"{name} no longer an input" for name in old.get("inputs", {}) if name not in current["inputs"]]
    return "; ".join(changes) or None


def should_run(stamp: Pathlike, current: dict, outputs: Iterable[Pathlike], what: str, doing: str) -> bool:
    """A step's stamp check: logs "<what> up to date" and returns False, or logs "<doing> (<reason>)",
    removes the stamp (none while the outputs are being replaced) and returns True; ``write_stamp`` after."""
    reason = stale_reason(stamp, current, outputs)
    if reason is None:
        log.info("%s up to date (%s), skipping", what, stamp)
        return False
    log.info("%s (%s)", doing, reason)
    Path(stamp).unlink(missing_ok=True)
    return True


def write_stamp(stamp: Pathlike, current: dict) -> None:
    """Record ``current`` (call it after the outputs are complete)."""
    with atomic_path(stamp) as tmp:
        tmp.write_text(json.dumps(current, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def training_data_inputs(config: Pathlike) -> list[str]:
    """The data files a resolved training config (``lora.py``/``full.py`` ``--print_config``) reads beyond its
    train and val manifests: replay, kl_to_base and non-speech manifests, MUSAN's cuts, the Shar shards."""
    import yaml

    cfg = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
    manifest_dir = Path(cfg.get("manifest_dir") or ".")
    found = [*(cfg.get("replay") or []), *(cfg.get("kl_to_base") or []), cfg.get("nospeech_cuts")]
    if cfg.get("enable_musan"):
        found.append(manifest_dir / MUSAN_CUTS)
    if cfg.get("shar"):
        found.append(manifest_dir / SHAR_DIR.format(prefix=cfg.get("prefix_name"), part="train"))
    return [str(path) for path in found if path]


def _options(pairs: list[str]) -> dict:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"stamps: an option is KEY=VALUE, got {pair!r}")
        parsed[key] = value
    return parsed


def main(argv: Optional[list[str]] = None) -> None:
    """``check`` exits 0 when up to date (printing "up to date") and 1 with the reason otherwise; ``run``
    runs the command after ``--`` unless up to date and writes the stamp when it succeeds."""
    parser = argparse.ArgumentParser(prog="python3 -m egrecho_inner.stamps", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("check", "write", "run", "training-inputs"))
    parser.add_argument("stamp", help="the stamp file (training-inputs: the resolved training config)")
    parser.add_argument("--inputs", nargs="*", default=[])
    parser.add_argument("--outputs", nargs="*", default=[])
    parser.add_argument("--options", nargs="*", default=[])
    argv = sys.argv[1:] if argv is None else argv
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.action == "training-inputs":
        print("\n".join(training_data_inputs(args.stamp)))
        return
    options = _options(args.options)
    if command:  # the command line is an option too: any change of its arguments reruns it
        options["command"] = shlex.join(command)
    current = fingerprint(args.inputs, options)
    if args.action == "write":
        write_stamp(args.stamp, current)
        return
    reason = stale_reason(args.stamp, current, args.outputs)
    if args.action == "check":
        print("up to date" if reason is None else reason)
        sys.exit(0 if reason is None else 1)
    if not command:
        raise SystemExit("stamps run: give the command after --")
    if reason is None:
        print(f"up to date ({args.stamp}): {shlex.join(command)}", flush=True)
        return
    print(f"running ({reason}): {shlex.join(command)}", flush=True)
    Path(args.stamp).unlink(missing_ok=True)
    returncode = subprocess.run(command).returncode
    if returncode != 0:
        sys.exit(returncode)
    write_stamp(args.stamp, current)


if __name__ == "__main__":
    main()
