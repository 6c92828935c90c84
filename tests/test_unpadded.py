"""Un-padded Whisper: padding in a batch does not leak into any cut's loss; off means plain Whisper."""

from __future__ import annotations

import copy

import pytest
import torch
from lhotse import CutSet, load_manifest
from transformers import WhisperForConditionalGeneration

from egrecho_inner.constants import IGNORE_INDEX
from egrecho_inner.dataset import WhisperDataset, WhisperLabeler
from egrecho_inner.unpadded import enable_unpadded_inputs


def per_cut_loss(model, batch) -> torch.Tensor:
    """Mean cross-entropy of each row's labels."""
    kwargs = {"attention_mask": batch["attention_mask"]} if "attention_mask" in batch else {}
    with torch.inference_mode():
        logits = model(input_features=batch["input_features"], labels=batch["labels"], **kwargs).logits
    labels = batch["labels"]
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
    return losses.sum(1) / (labels != IGNORE_INDEX).sum(1)


@pytest.fixture(scope="module")
def cuts(prepared_demo) -> CutSet:
    cutset = load_manifest(prepared_demo / "data/fbank_whisper80/demo_vi_cuts_train.jsonl.gz")
    cutset = cutset.with_features_path_prefix(str(prepared_demo)).sort_by_duration()
    picked = CutSet.from_cuts([cutset[0], cutset[len(cutset) // 2], cutset[len(cutset) - 1]])
    assert len({c.num_frames for c in picked}) == 3  # three different lengths
    return picked


def test_padding_does_not_leak(cuts, tiny_model, whisper_tokenizer):
    model = WhisperForConditionalGeneration.from_pretrained(tiny_model).eval()
    enable_unpadded_inputs(model)
    dataset = WhisperDataset(WhisperLabeler(whisper_tokenizer), unpadded=True)
    batch = dataset[cuts]
    longest = max(c.num_frames for c in cuts)
    assert batch["input_features"].shape[-1] == longest + longest % 2 < 3000
    together = per_cut_loss(model, batch)
    alone = torch.cat([per_cut_loss(model, dataset[CutSet.from_cuts([cut])]) for cut in cuts])
    assert torch.allclose(together, alone, atol=1e-4), (together, alone)
    # without the masks the padding would change the shorter cuts' losses
    unmasked = {k: v for k, v in batch.items() if k != "attention_mask"}
    model.base_model.encoder._unpadded_masks.frames = None
    assert not torch.allclose(per_cut_loss(model, unmasked)[:2], alone[:2], atol=1e-4)


def test_off_is_plain_whisper(cuts, tiny_model, whisper_tokenizer):
    plain = WhisperForConditionalGeneration.from_pretrained(tiny_model).eval()
    adapted = copy.deepcopy(plain)
    enable_unpadded_inputs(adapted)
    batch = WhisperDataset(WhisperLabeler(whisper_tokenizer))[cuts]
    assert batch["input_features"].shape[-1] == 3000 and "attention_mask" not in batch
    assert torch.allclose(per_cut_loss(plain, batch), per_cut_loss(adapted, batch), atol=1e-6)
