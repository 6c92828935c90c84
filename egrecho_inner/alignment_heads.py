"""``egrecho find-alignment-heads``: choose the decoder heads whose cross-attention times words best, for a model
that has no list of its own (fine-tuned, merged or new-language) or whose list fine-tuning may have moved.

On cuts with known word times (``supervision.alignment["word"]``, e.g. ``local/make_word_timed.py``), the true
text is fed to the decoder once per cut (teacher forcing) and every head's cross-attention is aligned alone by
DTW (``egrecho_inner.word_timing``): its word-start error is the distance from each true word start. Heads are
ranked by their median error; the list kept is the best ``k`` of that ranking whose averaged attention gives the
lowest median error (k up to ``max_heads``). It is written to the model's ``generation_config.alignment_heads``,
which transformers, ``egrecho transcribe --word_timestamps`` and CTranslate2's converter (so ``export-ct2`` and
faster-whisper) read. whisper.cpp files have no field for it (whisper.cpp takes heads at run time).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from lhotse import CutSet
from tabulate import tabulate

from egrecho_inner.constants import MAX_INPUT_SECONDS
from egrecho_inner.errors import InputError, MissingInputError
from egrecho_inner.features import load_cut_features, make_fbank_extractor
from egrecho_inner.model import load_whisper
from egrecho_inner.unpadded import enable_unpadded_inputs, resolve_unpadded
from egrecho_inner.utils import atomic_path
from egrecho_inner.word_timing import (Head, alignment_heads, cross_attention, first_window, sot_sequence, text_tokens,
                                       token_times)

log = logging.getLogger(__name__)


class TimedCut:
    """One cut's per-head attention rows over its true text, and where each true word starts (token row, seconds)."""

    def __init__(self, rows: torch.Tensor, word_rows: list[int], starts: list[float]):
        self.rows, self.word_rows, self.starts = rows, word_rows, np.asarray(starts)

    def errors_ms(self, heads: list[Head]) -> np.ndarray:
        """|found - true| start of each word, in ms, with ``heads`` averaged."""
        times = token_times(torch.stack([self.rows[layer, head] for layer, head in heads]))
        return np.abs(times[self.word_rows] - self.starts) * 1000


def timed_cuts(model, tokenizer, cuts: CutSet, unpadded: bool) -> list[TimedCut]:
    """:class:`TimedCut` of each cut up to 30 s with a word alignment (others are counted and left out)."""
    extractor = make_fbank_extractor(model.config.num_mel_bins)
    eot = model.generation_config.eos_token_id
    found, skipped = [], 0
    for cut in cuts:
        supervision = cut.supervisions[0] if cut.supervisions else None
        items = (supervision.alignment or {}).get("word") if supervision else None
        if not items or cut.duration > MAX_INPUT_SECONDS:
            skipped += 1
            continue
        pieces = [text_tokens(tokenizer, item.symbol) for item in items]
        word_rows = list(np.cumsum([0] + [len(p) for p in pieces[:-1]]))
        features, positions = first_window(load_cut_features(cut, extractor), unpadded)
        prefix = sot_sequence(model, supervision.language)
        weights, _ = cross_attention(model, features, positions, prefix + [t for p in pieces for t in p] + [eot])
        found.append(TimedCut(weights[:, :, len(prefix) - 1: -1], word_rows, [i.start - cut.start for i in items]))
    if skipped:
        log.warning("%d cuts without a word alignment or over 30 s left out", skipped)
    if not found:
        raise InputError("no cut up to 30 s with word times (supervision.alignment['word']): see "
                         "local/make_word_timed.py")
    return found


def score(cuts: list[TimedCut], heads: list[Head]) -> np.ndarray:
    """Word-start errors (ms) of all ``cuts`` with ``heads`` averaged."""
    return np.concatenate([c.errors_ms(heads) for c in cuts])


def choose_heads(cuts: list[TimedCut], layers: int, per_layer: int, max_heads: int) -> tuple[list[Head], np.ndarray]:
    """The best-k heads (see the module doc) and every head's median error ``(layers, per_layer)``."""
    medians = np.array([[np.median(score(cuts, [(layer, head)])) for head in range(per_layer)]
                        for layer in range(layers)])
    ranked = [divmod(int(i), per_layer) for i in np.argsort(medians, axis=None, kind="stable")]
    best_k = min(range(1, min(max_heads, len(ranked)) + 1), key=lambda k: np.median(score(cuts, ranked[:k])))
    return sorted(ranked[:best_k]), medians


def _row(name: str, heads: list[Head], cuts: list[TimedCut]) -> list:
    errors = score(cuts, heads)
    return [name, len(heads), round(float(np.median(errors)), 1), round(float(np.percentile(errors, 90)), 1)]


def find_alignment_heads(model_path: str, cuts: str, eval_cuts: Optional[str] = None, max_heads: int = 16,
                         write: bool = True, local_files_only: bool = True) -> list[list[int]]:
    """Choose a model's alignment heads on cuts with known word times and write them to its generation config.

    Args:
        model_path: a transformers Whisper dir (a full fine-tune or a merged LoRA); its generation_config.json
            is rewritten in place (atomically) when ``write``.
        cuts: a lhotse cut manifest whose supervisions carry word alignments (local/make_word_timed.py).
        eval_cuts: other such cuts (another voice or language) to report the chosen heads on; None: ``cuts``.
        max_heads: the most heads kept.
        write: write the heads into the model dir.
        local_files_only: never reach for the hub.
    """
    for path in (cuts, eval_cuts):
        if path and not Path(path).is_file():
            raise MissingInputError(f"{path} not found")
    model, processor = load_whisper(model_path, local_files_only)
    model.eval()
    unpadded = resolve_unpadded(model.generation_config, None, model_path)
    if unpadded:
        enable_unpadded_inputs(model)
    before = alignment_heads(model)
    chosen_on = timed_cuts(model, processor.tokenizer, CutSet.from_file(cuts), unpadded)
    heads, _ = choose_heads(chosen_on, model.config.decoder_layers, model.config.decoder_attention_heads, max_heads)
    scored_on = timed_cuts(model, processor.tokenizer, CutSet.from_file(eval_cuts), unpadded) if eval_cuts else chosen_on
    print(f"word-start error (ms) on {eval_cuts or cuts} ({sum(len(c.starts) for c in scored_on)} words; raw DTW, "
          "no VAD)")
    print(tabulate([_row("model's heads before", before, scored_on), _row("found heads", heads, scored_on)],
                   headers=["heads", "count", "median", "p90"], tablefmt="github"))
    found = [list(h) for h in heads]
    print(f"found: {found}")
    if write:
        config_file = Path(model_path) / "generation_config.json"
        config = json.loads(config_file.read_text())
        config["alignment_heads"] = found
        with atomic_path(config_file) as tmp:
            tmp.write_text(json.dumps(config, indent=2) + "\n")
        print(f"wrote alignment_heads to {config_file}")
    return found
