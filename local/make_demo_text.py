#!/usr/bin/env python3
"""Collect natural sentences from Debian's documentation, for the demo corpus.

Usage:
    ./local/make_demo_text.py --output data/text/vi.txt
    ./local/make_demo_text.py --language en --output data/text/en.txt
    ./local/make_demo_text.py --language eo --output data/text/eo.txt

Downloads (``apt-get download``: no install, no root needed) Debian packages of documentation, unpacks
them with ``dpkg-deb -x`` into a temporary dir, and keeps the sentences of their HTML paragraphs that
espeak-ng can read: 6 to 20 words, ending with ``. ? !``, no digits, markup or symbols.

- vi: ``libreoffice-help-vi`` and ``maint-guide-vi`` (help pages and the New Maintainers' Guide, in
  Vietnamese), and every syllable must be in the list of ``hunspell-vi`` (so English product names and
  commands are left out).
- en: ``maint-guide`` (the New Maintainers' Guide in English), every word plain letters.
- eo: ``fortunes-eo`` (Zamenhof's *Proverbaro Esperanta*, about 2,600 proverbs): 4 to 20 words, a
  dash read as a comma, quotes dropped, a full stop added where a proverb has no end mark.

Output: one sentence per line, sorted, no duplicates; the packages' versions are printed.
``local/make_demo_data.py --sentences`` splits them into text-disjoint parts.
"""

from __future__ import annotations

import html
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from egrecho_inner.debian import fetch_packages  # noqa: E402
from egrecho_inner.errors import InputError  # noqa: E402
from egrecho_inner.utils import atomic_path, run_cli  # noqa: E402

PACKAGES = {"vi": ("libreoffice-help-vi", "maint-guide-vi", "hunspell-vi"), "en": ("maint-guide",),
            "eo": ("fortunes-eo",)}
MIN_WORDS, MAX_WORDS = 6, 20
MIN_PROVERB_WORDS = 4  # proverbs are short: 6 words would keep only half of them
_UNWANTED = re.compile(r"[0-9/\\<>{}=_|$#@`~\[\]*+%&^\"]|--|\.\w")
_STRIP = ".,;:!?()'«»“”‘’…"


def vietnamese_syllables(dic: Path) -> set[str]:
    """Lower-cased syllables of hunspell-vi's word list (all-caps abbreviations such as GIF left out)."""
    words = dic.read_text(encoding="utf-8").split()[1:]  # first line: the count
    return {w.lower() for w in words if not w.isupper()}


def paragraphs(page: Path) -> list[str]:
    """The text of each ``<p>`` of an HTML page, markup removed."""
    text = re.sub(r"<(script|style|pre|code|tt)[^>]*>.*?</\1>", " ", page.read_text(encoding="utf-8"), flags=re.S)
    return [html.unescape(re.sub(r"<[^>]+>", " ", p)) for p in re.findall(r"<p[^>]*>(.*?)</p>", text, flags=re.S)]


def proverbs(fortune_file: Path) -> list[str]:
    """The entries of a ``fortune`` file (separated by ``%`` lines) as sentences: one line each, a dash
    read as a comma, quotes dropped, a full stop added where the entry has no end mark."""
    entries = fortune_file.read_text(encoding="utf-8").split("\n%\n")
    sentences = []
    for entry in entries:
        text = " ".join(entry.replace(" -- ", ", ").replace('"', "").split()).strip()
        if text and text != "%":
            sentences.append(text if text.endswith((".", "?", "!")) else text + ".")
    return sentences


def speakable(sentence: str, syllables: set[str] | None, min_words: int = MIN_WORDS, ascii_only: bool = True) -> bool:
    """Whether a sentence suits the demo: length, ending, no symbols, and every word a Vietnamese syllable
    (``syllables``) or, with None, letters only (plain ASCII ones with ``ascii_only``)."""
    words = sentence.split()
    if not min_words <= len(words) <= MAX_WORDS or not sentence.endswith((".", "?", "!")):
        return False
    if _UNWANTED.search(sentence):
        return False
    stripped = [w.strip(_STRIP) for w in words if w.strip(_STRIP)]
    if syllables is None:
        return all(w.isalpha() and (w.isascii() or not ascii_only) for w in stripped)
    return all(w.lower() in syllables for w in stripped)


def make_demo_text(output: str = "data/text/vi.txt", language: str = "vi") -> int:
    """Write the sentence list; returns how many sentences it holds.

    Args:
        output: the text file to write (one sentence per line).
        language: vi, en or eo.
    """
    if language not in PACKAGES:
        raise InputError(f"language must be one of {sorted(PACKAGES)}, got {language!r}")
    with tempfile.TemporaryDirectory() as tmp:
        versions = fetch_packages(Path(tmp), PACKAGES[language])
        root = Path(tmp) / "root/usr/share"
        syllables = vietnamese_syllables(root / "hunspell/vi_VN.dic") if language == "vi" else None
        if language == "eo":
            sources = sorted(p for p in (root / "games/fortunes/eo").iterdir() if p.suffix != ".dat" and not p.is_symlink())
            candidates = [s for source in sources for s in proverbs(source)]
            # Esperanto's ĉ ĝ ĥ ĵ ŝ ŭ are letters; an elided ending (hom', l') keeps its apostrophe
            sentences = {s for s in candidates if speakable(s, None, MIN_PROVERB_WORDS, ascii_only=False)}
        else:
            sources = sorted(root.rglob("*.html"))
            candidates = [sentence for page in sources for paragraph in paragraphs(page)
                          for sentence in re.split(r"(?<=[.!?])\s+", " ".join(paragraph.split()))]
            sentences = {s for s in candidates if speakable(s, syllables)}
    with atomic_path(output) as tmp_file:
        tmp_file.write_text("".join(f"{s}\n" for s in sorted(sentences)), encoding="utf-8")
    print(f"make_demo_text: {len(sentences)} sentences from {len(sources)} files of {', '.join(versions)} -> {output}")
    return len(sentences)


if __name__ == "__main__":
    run_cli(make_demo_text)
