"""Small helpers shared by the recipe's scripts: logging, atomic file output and the commit a result came from."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Union

Pathlike = Union[str, Path]

LOG_FORMAT = "%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Configure root logging once, with time, file and line on each record."""
    logging.basicConfig(level=level, format=LOG_FORMAT, force=True)
    quiet_library_warnings()


# Warnings raised inside the libraries on calls we make correctly; nothing on our side can remove their cause.
# Each names the code that raises it. Everything else still prints.
LIBRARY_WARNINGS = (
    # peft.PeftModel.__init__ reads transformers' deprecated ``is_gradient_checkpointing`` (peft 0.21, transformers 5.24)
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
    # DeepSpeed 0.19's ZeRO collectives call torch 2.13's deprecated names (once per bucket: hundreds of lines)
    (FutureWarning, r"`torch\.distributed\.(all_gather_into_tensor|reduce_scatter_tensor)` is deprecated"),
)
LIBRARY_LOG_WARNINGS = {
    # WhisperGenerationMixin.generate itself passes suppress_tokens next to its generation_config (transformers 5.24)
    "transformers.generation.utils": "Passing `generation_config` together with generation-related arguments",
    # the HF Trainer accumulates gradients itself (plugin: 1) and hands DeepSpeed the real count (accelerate 1.15)
    "accelerate.accelerator": "Gradient accumulation steps mismatch",
    # checkpoints saved within a second of each other (short runs) make the Trainer sort them by step instead
    "transformers.trainer_utils": "mtime may not be reliable on this filesystem",
}


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet_library_warnings() -> None:
    """Hide the library warnings in :data:`LIBRARY_WARNINGS` / :data:`LIBRARY_LOG_WARNINGS`, and on a machine
    without a GPU tell DeepSpeed so (``DS_ACCELERATOR=cpu``) instead of letting it probe and warn. Idempotent."""
    import warnings

    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    for category, message in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, text in LIBRARY_LOG_WARNINGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.text == text for f in logger.filters):
            logger.addFilter(_DropMessage(text))


def writable_dir(path: Pathlike) -> Path:
    """Create ``path`` (and its parents) and check that a file can be written in it; an
    ``errors.InputError`` naming the dir otherwise (a file where a dir should be, a read-only disk)."""
    from egrecho_inner.errors import InputError

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise InputError(f"can't write in {path}: {e.strerror or e}") from None
    return path


@contextlib.contextmanager
def atomic_path(target: Pathlike) -> Iterator[Path]:
    """Yield a temporary path (file or directory) beside ``target``; rename it onto ``target`` on success.

    The temporary name keeps the target's suffixes (``.jsonl.gz`` stays compressed), so writers
    that choose a format from the extension behave the same. On error the temporary file or
    directory is removed and ``target`` is left untouched.
    """
    target = Path(target)
    writable_dir(target.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{target.stem}-", suffix="".join(target.suffixes), dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if tmp.is_dir() and target.is_dir():  # a directory can't be renamed onto a non-empty one
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def git_commit(repo: Pathlike = Path(__file__).resolve().parent.parent) -> str:
    """The checkout's short commit, with ``+dirty`` when tracked files differ from it (``unknown`` outside git):
    what a results file names so that its figures can be traced to the code that made them."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except OSError:  # no git installed
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty else "") if head.returncode == 0 else "unknown"


def source_line(command: str) -> str:
    """A results file's first line: the command that made it (when given) and the checkout's commit, which
    ``local/render_docs.py`` quotes under every table it copies into the docs."""
    if not command:
        return f"Written at commit {git_commit()} (the command was not given: --command)."
    return f"Written by `{command}` at commit {git_commit()}."


def run_cli(func: Callable) -> None:
    """Run ``func`` as a jsonargparse CLI (``--name value`` options, ``-h``, ``--print_config``),
    with logging set up and our input errors (``errors.InputError``) reported in one line, not a traceback."""
    from jsonargparse import CLI

    from egrecho_inner.errors import one_line_errors

    setup_logging()
    with one_line_errors(Path(sys.argv[0]).name):
        CLI(func, as_positional=False)
