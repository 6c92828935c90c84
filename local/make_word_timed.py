#!/usr/bin/env python3
"""Recordings with known word times, for word timestamps and ``egrecho find-alignment-heads``.

Usage:
    ./local/make_word_timed.py --source asterisk --language en --out_dir data/word_timed/asterisk_en
    ./local/make_word_timed.py --source espeak --voice en --language en --text_file my.txt --out_dir data/word_timed/espeak_en

Single words, each recorded alone, are trimmed of silence and joined with random pauses of 0.15-0.6 s
(``egrecho_inner.timed_words``); each word's start is then known exactly. Sources:
- asterisk: a real speaker, the single-word prompts of an Asterisk voice (``local/make_real_data.py``; en has
  about 200: weekdays, ordinals, menu words), numbers written as digits left out;
- espeak: espeak-ng's ``--voice`` speaking each word of ``--text_file`` in order.
Output: ``<out_dir>/cuts.jsonl.gz`` (word times in ``supervision.alignment["word"]``) and ``<out_dir>/wavs/``.
"""

from __future__ import annotations

import random
import re
import sys
import tempfile
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))  # make_real_data beside this file
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from make_real_data import VOICES, ambiguous_names, clean_prompt, decode_g722, fetch_voice, read_prompt_list  # noqa: E402

from egrecho_inner.errors import InputError, MissingInputError  # noqa: E402
from egrecho_inner.timed_words import espeak_word_clips, load_trimmed, word_clip_cuts  # noqa: E402
from egrecho_inner.utils import atomic_path, run_cli  # noqa: E402

_NUMBER = re.compile(r"^digits/\d+$")


def asterisk_word_clips(language: str, cache_dir: Path) -> list:
    """``(word, samples)`` of each usable single-word prompt of the language's Asterisk voice."""
    sounds, prompt_list, _ = fetch_voice(language, cache_dir)
    prompts = read_prompt_list(prompt_list)
    ambiguous, seen, clips = ambiguous_names(prompts), set(), []
    with tempfile.TemporaryDirectory() as tmp:
        for name, raw in prompts:
            text, reason = clean_prompt(name, raw)
            text = text.strip(".!?,;: ")
            if reason or name in seen or name in ambiguous or _NUMBER.match(name) or len(text.split()) != 1:
                continue
            seen.add(name)
            if (sounds / f"{name}.g722").is_file():
                wav = Path(tmp) / f"{len(clips)}.wav"
                decode_g722(sounds / f"{name}.g722", wav)
                clips.append((text, load_trimmed(wav)))
    return clips


def make_word_timed(source: str = "asterisk", language: str = "en", out_dir: str = "data/word_timed/asterisk_en",
                    voice: Optional[str] = None, text_file: Optional[str] = None, words_per_cut: int = 8,
                    num_cuts: int = 20, seed: int = 0, cache_dir: str = "data/cache") -> str:
    """Write ``<out_dir>/cuts.jsonl.gz`` of recordings joined from single words; returns its path.

    Args:
        source: asterisk (a real voice's single-word prompts) or espeak (espeak-ng speaking ``text_file``).
        language: the cuts' language (asterisk: it, en, es, fr or ru).
        out_dir: where cuts.jsonl.gz and wavs/ go.
        voice: espeak-ng voice (default: ``language``).
        text_file: espeak: the words, in order.
        words_per_cut: words joined into each recording.
        num_cuts: the most recordings written.
        seed: asterisk: the shuffle of the words; both: the pauses.
        cache_dir: where the Asterisk packages are kept.
    """
    if source == "asterisk":
        if language not in VOICES:
            raise InputError(f"--language must be one of {sorted(VOICES)} for asterisk, got {language!r}")
        clips = asterisk_word_clips(language, Path(cache_dir))
        random.Random(seed).shuffle(clips)
    elif source == "espeak":
        if not text_file or not Path(text_file).is_file():
            raise MissingInputError(f"--text_file {text_file}: espeak needs a text file of words")
        words = Path(text_file).read_text(encoding="utf-8").split()[: words_per_cut * num_cuts]
        clips = espeak_word_clips(words, voice or language)
    else:
        raise InputError(f"--source must be asterisk or espeak, got {source!r}")
    clips = clips[: words_per_cut * num_cuts]
    if len(clips) < words_per_cut:
        raise InputError(f"{source}: {len(clips)} words, fewer than --words_per_cut {words_per_cut}")
    out = Path(out_dir)
    cuts = word_clip_cuts(clips, words_per_cut, language, out / "wavs", seed, prefix=f"{source}-{language}")
    with atomic_path(out / "cuts.jsonl.gz") as tmp:
        cuts.to_file(tmp)
    print(f"make_word_timed: {len(cuts)} recordings of {words_per_cut} words ({source}, {language}) -> "
          f"{out / 'cuts.jsonl.gz'}")
    return str(out / "cuts.jsonl.gz")


if __name__ == "__main__":
    run_cli(make_word_timed)
