"""Transcript clean-up and Whisper language codes."""

from __future__ import annotations

import re
from typing import Iterable

from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

from egrecho_inner.constants import NO_SPACE_LANGUAGES
from egrecho_inner.errors import InputError

# Whisper's language codes (99 for v1/v2 models, plus "yue" for large-v3).
WHISPER_LANGUAGE_CODES: tuple[str, ...] = tuple(LANGUAGES)

_FULL_WIDTH_OFFSET = 0xFEE0  # U+FF01..U+FF5E map onto ASCII U+0021..U+007E
_HALF_WIDTH_TABLE = {code: code - _FULL_WIDTH_OFFSET for code in range(0xFF01, 0xFF5F)}
_HALF_WIDTH_TABLE[0x3000] = ord(" ")  # ideographic space
_WHITESPACE = re.compile(r"\s+")


def to_half_width(text: str) -> str:
    """Map full-width ASCII forms (``ＡＢＣ１２３！``) and the ideographic space to half width."""
    return text.translate(_HALF_WIDTH_TABLE)


def normalize_transcript(text: str, language: str) -> str:
    """Clean a transcript for training: half-width forms, single spaces, no spaces where the
    language is written without them (zh, ja, th, lo, my, yue)."""
    text = _WHITESPACE.sub(" ", to_half_width(text)).strip()
    if language in NO_SPACE_LANGUAGES:
        text = text.replace(" ", "")
    return text


def resolve_language(value: str, where: str = "", extra: Iterable[str] = ()) -> str:
    """Return the Whisper code for ``value`` (a code such as ``vi`` or a name such as ``vietnamese``).

    ``extra``: codes accepted besides Whisper's (languages added by ``new_language``).

    Raises:
        ValueError: naming ``where`` (file and line, or option) and listing the valid codes.
    """
    key = value.strip().lower()
    if key in LANGUAGES:
        return key
    if key in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[key]
    if key in extra:
        return key
    location = f"{where}: " if where else ""
    raise InputError(
        f"{location}unknown language {value!r}. Valid Whisper language codes: {', '.join(WHISPER_LANGUAGE_CODES)}"
        f"{''.join(', ' + c for c in extra if c not in LANGUAGES)} (a language Whisper lacks needs new_language)"
    )
