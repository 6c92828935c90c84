"""Settings for GPU speed: shape buckets keep a compiled model's recompilations to a few, and the padding they add
is masked (each cut's loss is the one it gets without buckets); ``use_compile`` defaults on CUDA only; LoRA
adapters skip peft's fp32 input casts under autocast without changing the loss."""

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

    for dynamic, most in ((False, len({shapes(b) for b in binned})), (None, 3)):
        # static shapes: one graph per bucket; the Trainer's default (automatic dynamic shapes): the first shape,
        # then one recompilation as each varying dimension (frames, labels) turns dynamic
        graphs.clear()
        torch._dynamo.reset()
        compiled = torch.compile(model, backend=counting_backend, dynamic=dynamic)
        for batch in binned:  # a training step's forward and backward
            compiled(input_features=batch["input_features"], labels=batch["labels"],
                     attention_mask=batch["attention_mask"]).loss.backward()
        assert 0 < len(graphs) <= most < len(binned)
        if dynamic is False:  # one whole graph per shape: no graph break in the un-padded masks
            assert len(graphs) == most


def test_compile_default_follows_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert compiles(TrainArgs()) and not compiles(TrainArgs(deepspeed="config/ds_config_z2.json"))
    assert not compiles(TrainArgs(use_compile=False))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not compiles(TrainArgs()) and compiles(TrainArgs(use_compile=True))


def test_lora_without_input_casts_keeps_the_loss(tiny_model, batches_of_cuts, whisper_tokenizer):
    """Under bf16 autocast the adapters' matmuls run in bf16 either way: skipping peft's cast of their inputs to
    fp32 saves a copy per adapted layer and leaves the loss and its gradients as they were."""
    from peft import LoraConfig, get_peft_model

    from egrecho_inner.lora import skip_adapter_input_casts

    model, _ = load_whisper(str(tiny_model))
    torch.manual_seed(0)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "fc1", "fc2"],
                                            init_lora_weights=False))  # B != 0: the adapter path counts
    lora.eval()
    batch = WhisperDataset(WhisperLabeler(whisper_tokenizer))[batches_of_cuts[0]]

    def loss_and_grad() -> tuple[torch.Tensor, torch.Tensor]:
        lora.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = lora(input_features=batch["input_features"], labels=batch["labels"]).loss
        loss.backward()
        grad = next(p.grad for n, p in lora.named_parameters() if "lora_A" in n)
        return loss.detach(), grad.clone()

    cast = loss_and_grad()
    skip_adapter_input_casts(lora)
    assert not any(getattr(m, "cast_input_dtype_enabled", False) for m in lora.modules())
    skipped = loss_and_grad()
    torch.testing.assert_close(skipped[0], cast[0])
    torch.testing.assert_close(skipped[1], cast[1])
