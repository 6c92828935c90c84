"""Compiled training: shape buckets keep a compiled model's recompilations to a few, and the padding they add is
masked (each cut's loss is the one it gets without buckets); ``use_compile`` defaults on CUDA only."""

from __future__ import annotations

import pytest
import torch
from lhotse import CutSet, load_manifest

from egrecho_inner.constants import IGNORE_INDEX
from egrecho_inner.dataset import LABEL_BUCKET, WhisperDataset, WhisperLabeler
from egrecho_inner.model import load_whisper
from egrecho_inner.trainer import COMPILED_FRAME_BUCKET, TrainArgs, compiles
from egrecho_inner.unpadded import enable_unpadded_inputs


@pytest.fixture(scope="module")
def batches_of_cuts(prepared_demo) -> list[CutSet]:
    """Six batches of two cuts each, of different longest lengths."""
    cutset = load_manifest(prepared_demo / "data/fbank_whisper80/demo_vi_cuts_train.jsonl.gz")
    cuts = list(cutset.with_features_path_prefix(str(prepared_demo)).sort_by_duration())
    return [CutSet.from_cuts(cuts[i:i + 2]) for i in range(0, 12, 2)]


def per_cut_loss(model, batch) -> torch.Tensor:
    logits = model(input_features=batch["input_features"], labels=batch["labels"],
                   attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"]
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX,
                                               reduction="none")
    return losses.sum(1) / (labels != IGNORE_INDEX).sum(1)


def shapes(batch: dict) -> tuple:
    return tuple(batch["input_features"].shape), tuple(batch["labels"].shape)


def test_buckets_bound_recompilations_and_keep_the_loss(tiny_model, batches_of_cuts, whisper_tokenizer):
    model, _ = load_whisper(str(tiny_model))
    enable_unpadded_inputs(model)
    model.train()
    labeler = WhisperLabeler(whisper_tokenizer)
    plain = WhisperDataset(labeler, unpadded=True)
    bucketed = WhisperDataset(labeler, unpadded=True, frame_bucket=COMPILED_FRAME_BUCKET)
    raw = [plain[cuts] for cuts in batches_of_cuts]
    binned = [bucketed[cuts] for cuts in batches_of_cuts]
    assert all(b["input_features"].shape[-1] % COMPILED_FRAME_BUCKET == 0 for b in binned)
    assert all(b["labels"].shape[-1] % LABEL_BUCKET == 0 for b in binned)
    assert len({shapes(b) for b in binned}) < len({shapes(b) for b in raw})

    torch.manual_seed(0)
    model.config.dropout = 0.0
    model.eval()  # no dropout: the same loss twice
    for r, b in zip(raw, binned):  # the added frames and label slots are masked
        torch.testing.assert_close(per_cut_loss(model, b), per_cut_loss(model, r), rtol=1e-4, atol=1e-4)

    model.train()
    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    torch._dynamo.reset()
    compiled = torch.compile(model, backend=counting_backend, dynamic=False)  # one graph per input shape
    for batch in binned:  # a training step's forward and backward, whole graph
        compiled(input_features=batch["input_features"], labels=batch["labels"],
                 attention_mask=batch["attention_mask"]).loss.backward()
    assert 0 < len(graphs) == len({shapes(b) for b in binned})


def test_compile_default_follows_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert compiles(TrainArgs()) and not compiles(TrainArgs(deepspeed="config/ds_config_z2.json"))
    assert not compiles(TrainArgs(use_compile=False))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not compiles(TrainArgs()) and compiles(TrainArgs(use_compile=True))
