"""kl_to_base, the forgetting guard (egrecho_inner/kl_guard.py): zero at LoRA's initialisation, positive once
the adapter moved, gradients only into adapter weights, cuts without transcripts, and the training mix."""

from __future__ import annotations

import pytest
import torch
from lhotse import load_manifest
from peft import LoraConfig, get_peft_model
from transformers import WhisperConfig, WhisperForConditionalGeneration

from egrecho_inner.constants import IGNORE_INDEX
from egrecho_inner.data_module import DataArgs, mark_kl_to_base, training_cuts
from egrecho_inner.dataset import WhisperDataset, WhisperLabeler, is_kl_to_base
from egrecho_inner.kl_guard import base_logits, guarded_loss


def tiny_lora(seed: int = 0):
    torch.manual_seed(seed)
    config = WhisperConfig(vocab_size=120, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                           max_source_positions=50, max_target_positions=32, decoder_start_token_id=1,
                           pad_token_id=0, eos_token_id=2)
    model = WhisperForConditionalGeneration(config)
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1,
                                            target_modules=["q_proj", "v_proj", "fc1"]))


def batch(rows: int = 3, length: int = 6) -> dict:
    generator = torch.Generator().manual_seed(1)
    labels = torch.randint(3, 120, (rows, length), generator=generator)
    labels[0, 4:] = IGNORE_INDEX  # a shorter row
    return {"input_features": torch.randn(rows, 80, 100, generator=generator), "labels": labels}


def step_loss(model, inputs: dict, kl_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    teacher = base_logits(model, inputs, kl_rows)
    return guarded_loss(model(**inputs).logits, inputs["labels"], kl_rows, teacher)


def test_kl_is_zero_at_initialisation_and_positive_after_a_step():
    model = tiny_lora()
    model.train()  # LoRA dropout on: the adapter's B = 0 still makes the two models one function
    inputs, kl_rows = batch(), torch.tensor([True, False, True])
    loss, kl = step_loss(model, inputs, kl_rows)
    assert kl.item() == 0.0
    loss.backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert "lora_" in name
        else:
            assert param.grad is None, f"{name} got a gradient"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5).step()
    _, kl_after = step_loss(model, inputs, kl_rows)
    assert kl_after.item() > 1e-6


def test_the_base_sees_unpadded_rows_as_whisper_does():
    """Un-padded rows reach the base padded to the full window (HF's padding value) without a frame mask: its
    logits equal those of the plain model on that padded input, not on the un-padded one."""
    from egrecho_inner.features import pad_batch, pad_to_longest
    from egrecho_inner.unpadded import enable_unpadded_inputs

    model = tiny_lora()
    model.eval()
    plain = WhisperForConditionalGeneration(model.get_base_model().config)
    plain.load_state_dict({k.replace(".base_layer", ""): v for k, v in model.get_base_model().state_dict().items()
                           if "lora_" not in k})
    plain.eval()
    enable_unpadded_inputs(model)
    generator = torch.Generator().manual_seed(2)
    feats = [torch.randn(t, 80, generator=generator) for t in (40, 64)]
    unpadded, frames = pad_to_longest(feats)
    labels = torch.randint(3, 120, (2, 5), generator=generator)
    rows = torch.tensor([True, True])
    teacher = base_logits(model, {"input_features": unpadded, "attention_mask": frames, "labels": labels}, rows)
    with torch.no_grad():
        expected = plain(input_features=pad_batch(feats, 100), labels=labels).logits
        unpadded_view = model(input_features=unpadded, attention_mask=frames, labels=labels).logits
    assert torch.allclose(teacher, expected, atol=1e-5)
    assert not torch.allclose(teacher, unpadded_view, atol=1e-3)


def test_without_marked_rows_the_loss_is_whispers_own():
    model = tiny_lora()
    model.eval()
    inputs = batch()
    own = model(**inputs).loss
    loss, _ = guarded_loss(model(**inputs).logits, inputs["labels"], torch.zeros(3, dtype=torch.bool),
                           torch.empty(0, 6, 120))
    assert torch.allclose(loss, own, atol=1e-6)


def test_marked_rows_ignore_their_labels_and_match_a_hand_computed_kl():
    model = tiny_lora()
    with torch.no_grad():  # move the adapter so the two models differ
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    model.eval()
    inputs, kl_rows = batch(), torch.tensor([False, True, False])
    loss, kl = step_loss(model, inputs, kl_rows)
    logits = model(**inputs).logits
    with model.disable_adapter():
        teacher = model(**inputs).logits
    p_t = teacher[1].log_softmax(-1)
    expected_kl = (p_t.exp() * (p_t - logits[1].log_softmax(-1))).sum(-1).mean()
    assert torch.allclose(kl, expected_kl, atol=1e-5)
    ce = torch.nn.functional.cross_entropy(logits[[0, 2]].reshape(-1, 120), inputs["labels"][[0, 2]].reshape(-1),
                                           ignore_index=IGNORE_INDEX, reduction="sum")
    tokens = (inputs["labels"] != IGNORE_INDEX).sum()
    assert torch.allclose(loss, (ce + expected_kl * 6) / tokens, atol=1e-5)


def test_cuts_without_transcripts_are_marked_batched_and_mixed(prepared_demo, whisper_tokenizer, tmp_path,
                                                               monkeypatch):
    """A kl_to_base manifest needs no text: its cuts get the prompt and end-of-text as labels, and the
    dataset marks their rows; the training mix draws them at their share."""
    monkeypatch.chdir(prepared_demo)
    fbank = prepared_demo / "data/fbank_whisper80"
    untranscribed = tmp_path / "no_text_cuts.jsonl.gz"
    cuts = load_manifest(fbank / "demo_vi_cuts_val.jsonl.gz")
    for cut in cuts:
        cut.supervisions[0].text = ""
    cuts.to_file(untranscribed)
    args = DataArgs(manifest_dir=str(fbank), prefix_name="demo_vi", kl_to_base=[str(untranscribed)],
                    kl_to_base_prob=0.4)
    mixed = list(training_cuts(args))
    marked = [cut for cut in mixed if is_kl_to_base(cut)]
    assert 0 < len(marked) < len(mixed) and all(cut.supervisions[0].text == "" for cut in marked)
    labeler = WhisperLabeler(whisper_tokenizer)
    dataset = WhisperDataset(labeler)
    from lhotse import CutSet

    out = dataset[CutSet.from_cuts([mixed[0] if not is_kl_to_base(mixed[0]) else mixed[-1], marked[0]])]
    assert out["kl_rows"].tolist() == [False, True]
    assert (out["labels"][1] != IGNORE_INDEX).sum() == 4  # <|vi|> <|transcribe|> <|notimestamps|> <|endoftext|>
    plain = dataset[CutSet.from_cuts([c for c in mixed if not is_kl_to_base(c)][:2])]
    assert "kl_rows" not in plain


def test_full_fine_tuning_refuses_kl_to_base(prepared_demo, tiny_model, tmp_path, monkeypatch):
    from egrecho_inner import full
    from egrecho_inner.errors import InputError
    from egrecho_inner.trainer import run_training

    monkeypatch.chdir(prepared_demo)
    args = full.FullArgs(base_model=str(tiny_model), output_dir=str(tmp_path / "full"), max_cuts=2, num_workers=0,
                         max_steps=1, kl_to_base=["data/fbank_whisper80/demo_vi_cuts_val.jsonl.gz"])
    with pytest.raises(InputError, match="kl_to_base needs LoRA"):
        run_training(args, full.prepare_model, save_config=lambda path: None)


@pytest.mark.slow
def test_lora_training_logs_the_guard(prepared_demo, tiny_model, tmp_path, monkeypatch):
    """The trainer takes kl_rows off the batch, adds the KL term and logs it beside the loss."""
    from egrecho_inner import lora
    from egrecho_inner.trainer import run_training

    monkeypatch.chdir(prepared_demo)
    args = lora.LoraArgs(base_model=str(tiny_model), output_dir=str(tmp_path / "kl"), manifest_dir="data/fbank_whisper80",
                         prefix_name="demo_vi", max_cuts=4, num_workers=0, logging_steps=1, warmup_steps=0,
                         eval_steps=1000, save_steps=1000, max_steps=6, learning_rate=3e-3,
                         kl_to_base=["data/fbank_whisper80/demo_vi_cuts_test.jsonl.gz"], kl_to_base_prob=0.5)
    trainer = run_training(args, lora.prepare_model, save_config=lambda path: None)
    logged = [entry["kl_to_base"] for entry in trainer.state.log_history if "kl_to_base" in entry]
    assert logged and logged[0] == 0.0 and max(logged) > 0  # zero while the adapter is at its start


def test_mark_keeps_other_custom_fields(prepared_demo):
    cut = next(iter(load_manifest(prepared_demo / "data/fbank_whisper80/demo_vi_cuts_val.jsonl.gz")))
    cut.supervisions[0].custom = {"speaker_age": 30}
    marked = mark_kl_to_base(cut)
    assert is_kl_to_base(marked) and marked.supervisions[0].custom["speaker_age"] == 30
