"""The recipe's own exception types: bad input we detected ourselves.

Commands (``egrecho``, the training scripts, ``local/*.py``) print these as one actionable line that
names the file, line, utterance or option; any other exception, including a ValueError raised deep
inside transformers, lhotse or DeepSpeed, keeps its full traceback, because it may be a bug.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator


class InputError(ValueError):
    """Bad input (a value, a file's content, an option): the message says what and where to fix it."""


class MissingInputError(InputError, FileNotFoundError):
    """A file or directory the step needs is not there (the message names it and what makes it)."""


@contextlib.contextmanager
def one_line_errors(program: str) -> Iterator[None]:
    """Exit with ``<program>: error: <message>`` on an :class:`InputError`; let anything else raise."""
    try:
        yield
    except InputError as e:
        sys.exit(f"{program}: error: {e}")
