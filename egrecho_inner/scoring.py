"""Error rates as Whisper users report them: per-language normalisation, then jiwer alignment.

Normalisation (applied identically to references and hypotheses): zh: punctuation removed and
traditional characters converted to simplified; en: Whisper's English normaliser; other languages:
Whisper's basic normaliser (lower case, symbols and punctuation to spaces, diacritics kept) after
numbers written in digits are spelled out in the language (num2words: ``premere 1`` and ``premere uno``
score the same, as English's normaliser makes ``one`` and ``1`` the same).
Languages written without spaces are scored by characters (spaces ignored), others by words.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jiwer
from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

from egrecho_inner.constants import NO_SPACE_LANGUAGES
from egrecho_inner.errors import InputError
from egrecho_inner.text import to_half_width

METRICS = ("auto", "wer", "cer")


@lru_cache(maxsize=1)
def _english_normalizer() -> EnglishTextNormalizer:
    import importlib.util

    spec = importlib.util.find_spec("whisper")  # openai-whisper ships the spelling map
    mapping = json.loads((Path(spec.origin).parent / "normalizers" / "english.json").read_text())
    return EnglishTextNormalizer(mapping)


def _normalize_zh(text: str) -> str:
    import zhconv

    text = zhconv.convert(to_half_width(text), "zh-cn")
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith(("P", "S", "Z")))


_INTEGER = re.compile(r"\d+")


def spell_numbers(text: str, language: str | None) -> str:
    """Integers written in digits spelled out in ``language`` (unchanged where num2words lacks the language)."""
    from num2words import num2words

    def spell(match: re.Match) -> str:
        try:
            return f" {num2words(int(match.group()), lang=language)} "
        except (NotImplementedError, OverflowError, TypeError):
            return match.group()

    return _INTEGER.sub(spell, text) if language else text


def normalize_text(text: str, language: str | None) -> str:
    """Whisper-style normalisation of one transcript for scoring."""
    if language in ("zh", "yue"):
        return _normalize_zh(text)
    if language == "en":
        return _english_normalizer()(text)
    return BasicTextNormalizer()(spell_numbers(text, language)).strip()


def scoring_units(text: str, by_char: bool) -> list[str]:
    """Words, or characters without spaces."""
    return list(text.replace(" ", "")) if by_char else text.split()


def by_characters(metric: str, language: str | None) -> bool:
    if metric not in METRICS:
        raise InputError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric == "cer" or (metric == "auto" and language in NO_SPACE_LANGUAGES)


@dataclass
class Alignment:
    ref: list[str]
    hyp: list[str]
    ops: list[tuple[str, list[str], list[str]]]  # (equal|substitute|delete|insert, ref units, hyp units)

    def text(self) -> str:
        """``a (b->x) c (d->*) (*->e)``: errors in brackets, * for nothing."""
        parts = []
        for op, ref, hyp in self.ops:
            if op == "equal":
                parts.append(" ".join(ref))
            elif op == "substitute":
                parts += [f"({r}->{h})" for r, h in zip(ref, hyp)]
            elif op == "delete":
                parts += [f"({r}->*)" for r in ref]
            else:
                parts += [f"(*->{h})" for h in hyp]
        return " ".join(parts)


@dataclass
class ErrorCounts:
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    hits: int = 0

    @property
    def total(self) -> int:  # reference length
        return self.substitutions + self.deletions + self.hits

    def add(self, other: "ErrorCounts") -> None:
        self.substitutions += other.substitutions
        self.deletions += other.deletions
        self.insertions += other.insertions
        self.hits += other.hits

    def rates(self, digits: int = 5) -> dict:
        n = max(self.total, 1)
        errors = self.substitutions + self.deletions + self.insertions
        return {
            "error_rate": round(errors / n, digits), "ins_rate": round(self.insertions / n, digits),
            "del_rate": round(self.deletions / n, digits), "sub_rate": round(self.substitutions / n, digits),
            "total": self.total,
        }


def align(ref_units: list[str], hyp_units: list[str]) -> tuple[ErrorCounts, Alignment]:
    """Levenshtein alignment of two unit sequences (jiwer)."""
    if not ref_units:
        return ErrorCounts(insertions=len(hyp_units)), Alignment([], hyp_units, [("insert", [], hyp_units)] if hyp_units else [])
    out = jiwer.process_words(" ".join(ref_units), " ".join(hyp_units) if hyp_units else "")
    counts = ErrorCounts(out.substitutions, out.deletions, out.insertions, out.hits)
    ops = [(c.type, ref_units[c.ref_start_idx:c.ref_end_idx], hyp_units[c.hyp_start_idx:c.hyp_end_idx])
           for c in out.alignments[0]]
    return counts, Alignment(ref_units, hyp_units, ops)
