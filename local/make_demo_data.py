#!/usr/bin/env python3
"""Synthesise a small Kaldi-style corpus with espeak-ng (nothing is downloaded).

Usage:
    ./local/make_demo_data.py --out_dir data/kaldi/demo
    ./local/make_demo_data.py --out_dir data/kaldi/demo_multi --languages vi,en,zh --num_train 300
    ./local/make_demo_data.py --out_dir data/kaldi/demo --languages vi --sentences data/text/vi.txt

Sentences come from the word lists in ``local/demo_grammar.json`` (every split shares the vocabulary
but no sentence), or with ``--sentences`` from a file of natural text, one sentence per line (see
``local/make_demo_text.py``), shuffled and cut into disjoint parts. Either way no sentence is in two
splits, and the test split is spoken by voice variants and at a speed that train and val never use,
so a model can't pass by memorising. ``<out_dir>/stats.json`` gives each split's size, vocabulary and
the test split's out-of-vocabulary rate against train. espeak-ng writes 22.05 kHz audio, which
``prepare.sh`` resamples to 16 kHz. Output: ``<out_dir>/{train,val,test}/{wav.scp,text,utt2lang}``
and the audio under ``<out_dir>/wavs/``.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jsonargparse import CLI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from egrecho_inner.speech_synth import espeak  # noqa: E402
from egrecho_inner.splits import split_stats  # noqa: E402

GRAMMAR_FILE = Path(__file__).with_name("demo_grammar.json")
SPLITS = ("train", "val", "test")


def _sentences(spec: dict) -> list[tuple[str, str]]:
    """All (transcript, text spoken by espeak-ng) pairs the grammar makes, capitalised and ended by a stop."""
    pairs = []
    for combo in itertools.product(*spec["slots"]):
        if isinstance(combo[0], list):  # zh: [characters, pinyin] items
            pairs.append(("".join(c[0] for c in combo) + "。", " ".join(c[1] for c in combo)))
        else:
            text = " ".join(combo)
            text = text[0].upper() + text[1:] + "."
            pairs.append((text, text))
    return pairs


def _text_sentences(path: str) -> list[tuple[str, str]]:
    """(transcript, spoken text) pairs from a file of sentences, one per line, duplicates dropped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    unique = sorted({" ".join(line.split()) for line in lines if line.strip()})
    return [(s, s) for s in unique]


def _synthesise(job: tuple[str, str, int, Path]) -> None:
    voice, spoken, speed, wav = job
    espeak(spoken, wav, voice, speed)


def make_demo_data(
    out_dir: str = "data/kaldi/demo",
    languages: str = "vi",
    num_train: int = 200,
    num_val: int = 20,
    num_test: int = 40,
    seed: int = 0,
    num_jobs: int = 2,
    sentences: str | None = None,
) -> None:
    """Write the demo corpus.

    Args:
        out_dir: where the Kaldi dirs and audio go.
        languages: comma-separated, from vi, en, zh, eo (not a Whisper language); utterances are split evenly between them.
        num_train: utterances in train (all languages together); likewise num_val, num_test.
        seed: picks the sentences, voices and speeds.
        num_jobs: parallel espeak-ng processes.
        sentences: a text file, one sentence per line, to draw from instead of the word lists (one language).
    """
    grammar = json.loads(GRAMMAR_FILE.read_text(encoding="utf-8"))
    langs = [lang.strip() for lang in languages.split(",") if lang.strip()]
    unknown = [lang for lang in langs if lang not in grammar or lang == "voices"]
    if unknown:
        raise SystemExit(f"make_demo_data: no word lists for {unknown}; choose from {[k for k in grammar if k not in ('voices', '_comment')]}")
    if sentences and len(langs) != 1:
        raise SystemExit("make_demo_data: --sentences takes one language (--languages vi)")
    rng = random.Random(seed)
    sizes = {"train": num_train, "val": num_val, "test": num_test}
    jobs, out = [], Path(out_dir)
    for lang in langs:
        pool = _text_sentences(sentences) if sentences else _sentences(grammar[lang])
        rng.shuffle(pool)  # then consecutive slices: no sentence is in two splits
        offset = 0
        for split in SPLITS:
            count = sizes[split] // len(langs) + (1 if langs.index(lang) < sizes[split] % len(langs) else 0)
            if offset + count > len(pool):
                raise SystemExit(f"make_demo_data: {lang} has only {len(pool)} sentences")
            voices = grammar["voices"][split]
            for i, (text, spoken) in enumerate(pool[offset : offset + count]):
                utt = f"{lang}-{split}-{i:05d}"
                wav = out / "wavs" / split / f"{utt}.wav"
                voice = grammar[lang]["voice"] + rng.choice(voices["variants"])
                jobs.append((split, utt, lang, text, (voice, spoken, rng.choice(voices["speeds"]), wav)))
            offset += count

    for split in SPLITS:
        (out / "wavs" / split).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=num_jobs) as ex:
        list(ex.map(_synthesise, [job[-1] for job in jobs]))

    for split in SPLITS:
        rows = sorted(job for job in jobs if job[0] == split)
        d = out / split
        d.mkdir(parents=True, exist_ok=True)
        (d / "wav.scp").write_text("".join(f"{u} {j[3].resolve()}\n" for _, u, _, _, j in rows), encoding="utf-8")
        (d / "text").write_text("".join(f"{u} {t}\n" for _, u, _, t, _ in rows), encoding="utf-8")
        (d / "utt2lang").write_text("".join(f"{u} {lang}\n" for _, u, lang, _, _ in rows), encoding="utf-8")
    stats = split_stats({split: [j[3] for j in jobs if j[0] == split] for split in SPLITS})
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    print(f"make_demo_data: wrote {len(jobs)} utterances ({', '.join(langs)}) to {out}; test OOV rate "
          f"{100 * stats['test_oov_rate']:.1f}%, {stats['test_sentences_in_train']} test sentences in train")


if __name__ == "__main__":
    CLI(make_demo_data, as_positional=False)
