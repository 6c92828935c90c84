#!/usr/bin/env python3
"""Kaldi dirs of real recorded speech: the Asterisk PBX core prompts from Debian's archive.

Usage:
    ./local/make_real_data.py --language it --out_dir data/kaldi/real_it --num_val 40 --num_test 120
    ./local/make_real_data.py --language en --out_dir data/kaldi/real_en --num_train 0 --num_val 0 --num_test 150

Each language is one professional voice (it: it_IT_m_Carlo, en: en_US_f_Allison, es: es_MX_f_Allison,
fr: fr_CA_f_June, ru: ru_RU_f_IvrvoiceRU) reading about 600 telephone-menu prompts (voicemail,
conference, digits). ``asterisk-core-sounds-XX-g722`` holds the audio (16 kHz G.722, decoded here with
the ``g722`` package into 16-bit WAV under ``<out_dir>/wavs/``) and ``asterisk-core-sounds-XX`` the text
of every prompt (``name: text`` lines). Both are fetched with ``apt-get download`` (no install, no root)
and cached under ``--cache_dir``.

Prompt texts are cleaned for training and scoring, and a prompt is left out (counted by reason in
``stats.json``) when its text can't be trusted:
- non-speech: tones, beeps and silences (by name, or a text that describes a sound: ``[ascending tones]``);
- uncertain: words in brackets (``[tentativo di] Parcheggio ...``); a bracketed symbol is removed (``dash [-]``);
- garbled: an accented letter the prompt list lost to ``?`` (``pu? essere`` for ``può essere``);
- a single letter (``letters/x``): no word to score;
- no audio file for the name.
Ellipses marking fragments (``...to mute or unmute yourself.``) and stray quotes are removed. Digits are
kept as written: Whisper writes them as digits, and ``egrecho eval`` spells numbers out on both sides
before scoring (``premere 1`` and ``premere uno`` score the same).

Splits are disjoint by text (prompts whose words are the same stay in one split); ``--num_train -1``
takes all prompts left after val and test. Output: ``<out_dir>/{train,val,test}/{wav.scp,text,utt2lang}``
(an empty split is not written) and ``<out_dir>/stats.json`` (sizes, hours, test out-of-vocabulary rate,
dropped prompts by reason, the packages' versions).
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from egrecho_inner.debian import fetch_packages  # noqa: E402
from egrecho_inner.errors import InputError, MissingInputError  # noqa: E402
from egrecho_inner.splits import split_by_text, split_stats  # noqa: E402
from egrecho_inner.utils import atomic_path, run_cli  # noqa: E402

VOICES = {"en": "en_US_f_Allison", "es": "es_MX_f_Allison", "fr": "fr_CA_f_June", "it": "it_IT_m_Carlo",
          "ru": "ru_RU_f_IvrvoiceRU"}
SAMPLING_RATE = 16000
G722_BITRATE = 64000  # the Asterisk prompts' G.722 mode
_NONSPEECH_NAME = re.compile(r"^(silence/|beep)|-2tone$")
_DESCRIPTION = re.compile(r"^\s*(\[[^]]*\]|\([^)]*\)|<[^>]*>)\s*$")  # the whole text in brackets: a sound described
_SYMBOL = re.compile(r"\[\W*\]")  # letters/dash: "dash [-]"
_BRACKETS = re.compile(r"[\[\]<>(){}]")
_GARBLED = re.compile(r"\w\?\w|\s\?\s|\w\?\s+[a-zà-ÿ]")  # '?' standing for a lost accented letter
_ELLIPSIS = re.compile(r"\.{2,}|…")
_QUOTES = re.compile(r"[\"“”«»]")


def read_prompt_list(path: Path) -> list[tuple[str, str]]:
    """``(name, text)`` of each ``name: text`` line of a core-sounds-XX.txt(.gz) file (``;`` comments skipped)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig") as f:
        lines = f.read().splitlines()
    prompts = []
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        name, sep, text = line.partition(":")
        if not sep or not name.strip():
            raise InputError(f"{path}:{lineno}: expected 'name: text', got {line[:80]!r}")
        prompts.append((name.strip(), text.strip()))
    return prompts


AMBIGUOUS = "name listed more than once with different texts"


def ambiguous_names(prompts: list[tuple[str, str]]) -> set[str]:
    """Names the prompt list gives more than one text (all their lines are left out: the audio says only one)."""
    texts: dict[str, set[str]] = {}
    for name, text in prompts:
        texts.setdefault(name, set()).add(text)
    return {name for name, seen in texts.items() if len(seen) > 1}


def clean_prompt(name: str, text: str) -> tuple[str, str]:
    """The prompt's text for training and scoring and ``""``, or ``""`` and why it is left out."""
    if _NONSPEECH_NAME.search(name) or _DESCRIPTION.match(text):
        return "", "non-speech"
    if _GARBLED.search(text):
        return "", "garbled text"
    text = _SYMBOL.sub(" ", text)
    if _BRACKETS.search(text):  # "[tentativo di] Parcheggio ...": words the voice may or may not say
        return "", "uncertain words in brackets"
    text = " ".join(_QUOTES.sub("", _ELLIPSIS.sub(" ", text)).split()).strip(" ,;")
    if len(re.sub(r"\W", "", text)) <= 1:
        return "", "empty or a single letter"
    return text, ""


def decode_g722(src: Path, dst: Path) -> float:
    """Decode a 16 kHz G.722 file to 16-bit WAV (written atomically); returns its duration in seconds."""
    import G722  # the g722 package

    pcm = np.asarray(G722.G722(SAMPLING_RATE, G722_BITRATE).decode(src.read_bytes()), dtype=np.int16)
    with atomic_path(dst) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLING_RATE)
            w.writeframes(pcm.tobytes())
    return len(pcm) / SAMPLING_RATE


def fetch_voice(language: str, cache_dir: Path) -> tuple[Path, Path, list[str]]:
    """The voice's sound dir and prompt list, downloading the two packages once into ``cache_dir``."""
    root = cache_dir / f"asterisk-{language}"
    packages = (f"asterisk-core-sounds-{language}", f"asterisk-core-sounds-{language}-g722")
    versions_file = root / "versions.txt"
    if not versions_file.is_file():
        with atomic_path(root) as tmp:
            versions = fetch_packages(tmp, packages)
            (tmp / "versions.txt").write_text("\n".join(versions) + "\n")
    sounds = root / "root/usr/share/asterisk/sounds" / VOICES[language]
    prompt_list = root / f"root/usr/share/doc/{packages[0]}/core-sounds-{language}.txt.gz"
    if not sounds.is_dir() or not prompt_list.is_file():
        raise MissingInputError(f"{root}: {packages} hold no {sounds.name} audio or prompt list (remove it to refetch)")
    return sounds, prompt_list, versions_file.read_text().split()


def make_real_data(
    language: str = "it",
    out_dir: str = "data/kaldi/real_it",
    num_train: int = -1,
    num_val: int = 40,
    num_test: int = 120,
    seed: int = 0,
    cache_dir: str = "data/cache",
) -> dict:
    """Write Kaldi dirs of one Asterisk voice; returns the stats written to ``<out_dir>/stats.json``.

    Args:
        language: it, en, es, fr or ru.
        out_dir: where the Kaldi dirs, the decoded audio and stats.json go.
        num_train: prompts in train (-1: all left after val and test); likewise num_val, num_test.
        seed: picks the prompts of each split.
        cache_dir: where the downloaded packages are kept.
    """
    if language not in VOICES:
        raise InputError(f"language must be one of {sorted(VOICES)}, got {language!r}")
    sounds, prompt_list, versions = fetch_voice(language, Path(cache_dir))
    kept, dropped, seen = [], {}, set()
    prompts = read_prompt_list(prompt_list)
    ambiguous = ambiguous_names(prompts)
    for name, raw in prompts:
        if name in seen:  # one recording per name: a repeated line adds nothing
            continue
        seen.add(name)
        text, reason = clean_prompt(name, raw)
        if not (sounds / f"{name}.g722").is_file():
            reason = "no audio"
        elif name in ambiguous:  # e.g. es lists digits/0 as "cero" and as "diez": which one the audio says is unknown
            reason = AMBIGUOUS
        if reason:
            dropped.setdefault(reason, []).append(name)
        else:
            kept.append((f"{language}-{name.replace('/', '-')}", text, name))
    names = {utt: name for utt, _, name in kept}
    sizes = {"test": num_test, "val": num_val, "train": num_train}
    if sum(max(n, 0) for n in sizes.values()) > len(kept):
        raise InputError(f"{language}: {len(kept)} usable prompts, fewer than asked for ({sizes})")
    splits = split_by_text([(utt, text) for utt, text, _ in kept], sizes, seed)

    out = Path(out_dir)
    hours = {}
    for split, rows in splits.items():
        if not rows:
            continue
        seconds = sum(decode_g722(sounds / f"{names[u]}.g722", out / "wavs" / f"{u}.wav") for u, _ in rows)
        hours[split] = round(seconds / 3600, 4)
        with atomic_path(out / split) as tmp:
            tmp.mkdir()
            (tmp / "wav.scp").write_text("".join(f"{u} {(out / 'wavs' / f'{u}.wav').resolve()}\n" for u, _ in rows))
            (tmp / "text").write_text("".join(f"{u} {t}\n" for u, t in rows), encoding="utf-8")
            (tmp / "utt2lang").write_text("".join(f"{u} {language}\n" for u, _ in rows))
    stats = split_stats({split: [t for _, t in rows] for split, rows in splits.items()})
    stats.update(voice=VOICES[language], language=language, packages=versions, hours=hours,
                 dropped={reason: {"count": len(v), "names": v} for reason, v in sorted(dropped.items())})
    with atomic_path(out / "stats.json") as tmp:
        tmp.write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"make_real_data: {VOICES[language]}: " + ", ".join(f"{s} {len(r)}" for s, r in splits.items())
          + f" prompts -> {out}; left out: " + (", ".join(f"{r} {len(v)}" for r, v in sorted(dropped.items())) or "none"))
    return stats


if __name__ == "__main__":
    run_cli(make_real_data)
