"""Text-disjoint splits of a corpus and the statistics that show they are disjoint."""

from __future__ import annotations

import random
from typing import Sequence

_STRIP = ".,;:!?()\"'«»“”‘’…"


def words(text: str) -> list[str]:
    """Lower-cased words of ``text``, surrounding punctuation removed."""
    return [w.strip(_STRIP).lower() for w in text.split() if w.strip(_STRIP)]


def split_by_text(items: Sequence[tuple[str, str]], sizes: dict[str, int], seed: int) -> dict[str, list[tuple[str, str]]]:
    """Deal ``(id, text)`` items into splits so that no text (compared by its words) is in two splits.

    ``sizes`` maps each split to its number of items, in order; a size of -1 takes all that is left
    (one split at most, and it must come last). Items sharing a text stay together, so a split may
    end up to one group larger than asked.
    """
    groups: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for item in sorted(items):
        groups.setdefault(tuple(words(item[1])), []).append(item)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    out, position = {}, 0
    for split, size in sizes.items():
        taken: list[tuple[str, str]] = []
        while position < len(keys) and (size < 0 or len(taken) < size):
            taken += groups[keys[position]]
            position += 1
        out[split] = sorted(taken)
    return out


def split_stats(texts: dict[str, list[str]]) -> dict:
    """Utterances, distinct sentences and vocabulary per split; the test split's out-of-vocabulary rate
    against train (share of test words never seen in train), the same for word pairs (in Vietnamese a
    word is one syllable, so new pairs show new words better) and how many test sentences train holds."""
    vocab = {split: {w for t in rows for w in words(t)} for split, rows in texts.items()}
    test_words = [w for t in texts["test"] for w in words(t)]
    oov = sum(w not in vocab["train"] for w in test_words)
    train_pairs = {pair for t in texts["train"] for pair in zip(words(t), words(t)[1:])}
    test_pairs = [pair for t in texts["test"] for pair in zip(words(t), words(t)[1:])]
    return {
        "splits": {split: {"utterances": len(rows), "sentences": len(set(rows)), "vocabulary": len(vocab[split])}
                   for split, rows in texts.items()},
        "test_oov_rate": round(oov / max(len(test_words), 1), 4),
        "test_word_pair_oov_rate": round(sum(p not in train_pairs for p in test_pairs) / max(len(test_pairs), 1), 4),
        "test_sentences_in_train": len(set(texts["test"]) & set(texts["train"])),
    }
