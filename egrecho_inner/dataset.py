"""Turn lhotse cuts into Whisper batches: ``input_features`` and decoder ``labels``.

The full target sequence of a cut is::

    <|startoftranscript|> <|lang|> <|transcribe|> <|notimestamps|> text <|endoftext|>

with the cut's own language; with ``timestamp_probability`` > 0 that share of cuts gets each supervision
between its start and end times instead (quantised to 0.02 s, relative to the cut's start)::

    <|startoftranscript|> <|lang|> <|transcribe|> <|0.00|> text <|2.40|> <|2.80|> more text <|5.12|> <|endoftext|>
 The model prepends ``<|startoftranscript|>`` itself (its decoder
start token), so ``labels`` hold the sequence without it, padded with -100. Without ``language_loss`` the
language token's label is -100 too (not trained; ``kl_to_base`` cuts keep it), and the batch carries the
decoder's input ids, which the model would otherwise derive from the labels.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
from lhotse import CutSet
from lhotse.cut import Cut, MixedCut
from transformers import PreTrainedTokenizerBase

from egrecho_inner.constants import IGNORE_INDEX, MAX_INPUT_SECONDS, MAX_LABEL_TOKENS, TIMESTAMP_STEP
from egrecho_inner.errors import InputError
from egrecho_inner.features import load_cut_features, make_fbank_extractor, pad_batch, pad_to_longest

log = logging.getLogger(__name__)

KL_TO_BASE = "kl_to_base"  # supervision custom field: the cut trains towards the base model (data_module.kl_to_base)
LABEL_BUCKET = 8  # labels padded to a multiple of this many tokens when shapes are bucketed (compiled training)


def is_kl_to_base(cut: Cut) -> bool:
    """Whether ``cut`` (mixed with noise or not) came from a ``kl_to_base`` manifest."""
    return any((s.custom or {}).get(KL_TO_BASE) for s in cut.supervisions)


@dataclass
class WhisperLabeler:
    """Token ids of a cut's full target sequence (see the module docstring)."""

    tokenizer: PreTrainedTokenizerBase
    task: str = "transcribe"
    default_language: Optional[str] = None  # for cuts whose supervision names none
    timestamp_probability: float = 0.0  # share of cuts labelled with timestamps (the same cuts every epoch)
    seed: int = 0

    def language_of(self, cut: Cut) -> str:
        language = cut.supervisions[0].language if cut.supervisions else None
        language = language or self.default_language
        if not language:
            raise InputError(f"cut {cut.id} has no language and no default language is set")
        return language

    def __call__(self, cut: Cut) -> list[int]:
        return self.label_ids(cut, self.with_timestamps(cut))

    def with_timestamps(self, cut: Cut) -> bool:
        """Whether ``cut`` is labelled with timestamps: a hash of its id, so the choice is the same in every
        dataloader worker and epoch, and the share is ``timestamp_probability``."""
        if self.timestamp_probability <= 0:
            return False
        digest = hashlib.sha256(f"{self.seed}:{cut.id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.timestamp_probability

    def label_ids(self, cut: Cut, timestamps: bool) -> list[int]:
        """The target ids of ``cut``, with or without timestamps."""
        if not cut.supervisions:
            raise InputError(f"cut {cut.id} has no supervision (no transcript)")
        timestamps = timestamps and any(s.text for s in cut.supervisions)  # non-speech: the empty transcript
        language = self.language_of(cut)
        prefix = ["<|startoftranscript|>", f"<|{language}|>", f"<|{self.task}|>"]
        ids = self.tokenizer.convert_tokens_to_ids(prefix + ([] if timestamps else ["<|notimestamps|>"]))
        if self.tokenizer.unk_token_id in ids:  # a token the vocabulary lacks maps to <unk>
            raise InputError(f"cut {cut.id}: the tokenizer has no token for {prefix[1]} or {prefix[2]} "
                             f"(train a language Whisper lacks with new_language: {language})")
        if not timestamps:
            text = " ".join(s.text for s in cut.supervisions if s.text)
            return ids + self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]
        for i, sup in enumerate(s for s in sorted(cut.supervisions, key=lambda s: s.start) if s.text):
            text = sup.text if i == 0 else " " + sup.text
            ids += [self.timestamp_id(sup.start), *self.tokenizer.encode(text, add_special_tokens=False),
                    self.timestamp_id(min(sup.end, cut.duration))]
        return ids + [self.tokenizer.eos_token_id]

    def timestamp_id(self, seconds: float) -> int:
        """The id of ``<|t|>``, ``t`` rounded to Whisper's 0.02 s and kept within the 30 s window."""
        step = round(min(max(seconds, 0.0), MAX_INPUT_SECONDS) / TIMESTAMP_STEP)
        return self.tokenizer.convert_tokens_to_ids("<|0.00|>") + step


@dataclass
class TrainingCutFilter:
    """``CutSet.filter`` predicate that drops cuts Whisper can't train on, counting and logging each:
    cuts over 30 s (the encoder window) and targets over 448 tokens (the decoder's positions). ``log_drops``
    False: count only (a rank that sees the same cuts as rank 0, a pass that only counts batches)."""

    labeler: WhisperLabeler
    log_drops: bool = True
    dropped: dict = field(default_factory=lambda: {"over 30 s": 0, "over 448 tokens": 0})

    def __call__(self, cut: Cut) -> bool:
        if cut.duration > MAX_INPUT_SECONDS:
            return self._drop(cut, "over 30 s", f"{cut.duration:.2f} s")
        # the model is fed all but <|startoftranscript|>; the labels are the ones training will use (a cut
        # labelled with timestamps always is: the choice hashes its id)
        num_labels = len(self.labeler(cut)) - 1
        if num_labels > MAX_LABEL_TOKENS:
            return self._drop(cut, "over 448 tokens", f"{num_labels} tokens")
        return True

    def _drop(self, cut: Cut, reason: str, detail: str) -> bool:
        self.dropped[reason] += 1
        if self.log_drops:
            log.warning("dropping cut %s from training: %s (%s); dropped so far: %s", cut.id, reason, detail,
                        self.dropped)
        return False


class WhisperDataset(torch.utils.data.Dataset):
    """lhotse-style dataset: indexed by a ``CutSet`` (a batch from a sampler), returns a model batch.

    Cuts mixed with noise (``MixedCut`` from ``CutMix``) always get features from their mixed audio:
    Whisper's log-mel features can't be mixed in the feature domain.

    Args:
        labeler: makes each cut's target ids; None for inference (no ``labels`` in the batch).
        on_the_fly_feats: compute features from audio instead of reading stored ones.
        num_mel_bins: 80 or 128 (used with on-the-fly features and mixed cuts).
        cut_transforms: applied to each batch's CutSet first (e.g. lhotse ``CutMix``).
        spec_augment: applied to each cut's un-padded ``(T, n_mels)`` features.
        unpadded: pad only to the batch's longest cut (an even frame count) and return the frame
            ``attention_mask``, for a model adapted by ``egrecho_inner.unpadded``; default: Whisper's 3000.
        frame_bucket: with ``unpadded``, pad up to a multiple of this many frames (even); over 2, labels are
            also padded to a multiple of ``LABEL_BUCKET`` tokens: a compiled model then sees few shapes.
        language_loss: False: the language token of transcribed cuts is not a training target (labels -100
            there, ``decoder_input_ids`` in the batch), so a one-language fine-tune keeps language identification.
    """

    def __init__(
        self,
        labeler: Optional[WhisperLabeler],
        on_the_fly_feats: bool = False,
        num_mel_bins: int = 80,
        cut_transforms: Sequence[Callable[[CutSet], CutSet]] = (),
        spec_augment: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        unpadded: bool = False,
        frame_bucket: int = 2,
        language_loss: bool = True,
    ):
        self.labeler = labeler
        self.on_the_fly_feats = on_the_fly_feats
        self.extractor = make_fbank_extractor(num_mel_bins)
        self.cut_transforms = list(cut_transforms)
        self.spec_augment = spec_augment
        self.unpadded = unpadded
        self.frame_bucket = frame_bucket
        self.language_loss = language_loss

    def _features(self, cut: Cut) -> torch.Tensor:
        from_audio = self.on_the_fly_feats or isinstance(cut, MixedCut)
        feats = load_cut_features(cut, self.extractor if from_audio else None)  # (T, n_mels)
        if self.spec_augment is not None:
            feats = self.spec_augment(feats.unsqueeze(0))[0]
        return feats

    def __getitem__(self, cuts: CutSet) -> dict:
        for transform in self.cut_transforms:
            cuts = transform(cuts)
        feats = [self._features(cut) for cut in cuts]
        batch = {"cut_ids": [cut.id for cut in cuts]}  # not a model input: the trainer takes it off
        if self.unpadded:
            batch["input_features"], batch["attention_mask"] = pad_to_longest(feats, self.frame_bucket)  # (B, n_mels, T), (B, T)
        else:
            batch["input_features"] = pad_batch(feats)  # (B, n_mels, 3000)
        if self.labeler is not None:
            batch.update(self._targets(cuts))
        return batch

    def _targets(self, cuts: CutSet) -> dict:
        """``labels`` (B, L) and, when present, ``kl_rows`` (B,) and ``decoder_input_ids`` (B, L)."""
        full = [torch.tensor(self.labeler(cut)) for cut in cuts]  # <|startoftranscript|> ... <|endoftext|>
        multiple = LABEL_BUCKET if self.frame_bucket > 2 else 1
        labels = _pad_ids([ids[1:] for ids in full], IGNORE_INDEX, multiple)  # the model prepends the start token
        targets = {"labels": labels}
        kl_rows = torch.tensor([is_kl_to_base(cut) for cut in cuts])
        if kl_rows.any():  # not a model input: the trainer takes it off (egrecho_inner/kl_guard.py)
            targets["kl_rows"] = kl_rows
        if not self.language_loss:
            pad_id = self.labeler.tokenizer.pad_token_id
            pad_id = self.labeler.tokenizer.eos_token_id if pad_id is None else pad_id
            targets["decoder_input_ids"] = _pad_ids([ids[:-1] for ids in full], pad_id, multiple)
            labels[~kl_rows, 0] = IGNORE_INDEX  # position 0 predicts <|lang|> from <|startoftranscript|>
        return targets


def _pad_ids(rows: list[torch.Tensor], value: int, multiple: int = 1) -> torch.Tensor:
    """Rows of ids right-padded with ``value`` to the longest, rounded up to a multiple of ``multiple``."""
    padded = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=value)
    return torch.nn.functional.pad(padded, (0, -padded.shape[1] % multiple), value=value)
