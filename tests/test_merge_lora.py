"""egrecho merge-lora-whisper: the merged model computes what the adapter model computes."""

from __future__ import annotations

import subprocess

import pytest
import torch
from lhotse import load_manifest
from peft import PeftModel
from transformers import WhisperForConditionalGeneration

from egrecho_inner import lora
from egrecho_inner.dataset import WhisperDataset, WhisperLabeler
from egrecho_inner.model import load_whisper
from tests.test_train import train

pytestmark = pytest.mark.slow


def test_merged_equals_adapter(prepared_demo, tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(prepared_demo)
    train(lora, prepared_demo, tiny_model, tmp_path / "lora", max_steps=5, learning_rate=2e-2)
    ckpt = tmp_path / "lora/checkpoint-final"
    proc = subprocess.run(["egrecho", "mlw", "--lora_model", str(ckpt)], capture_output=True, text=True, check=True)
    merged_dir = tmp_path / "lora/checkpoint-final-lora-merge"
    assert str(merged_dir) in proc.stdout
    for name in ("model.safetensors", "tokenizer.json", "preprocessor_config.json", "generation_config.json"):
        assert (merged_dir / name).is_file(), name

    base, processor = load_whisper(str(tiny_model))
    adapter = PeftModel.from_pretrained(base, ckpt).eval()
    merged = WhisperForConditionalGeneration.from_pretrained(merged_dir).eval()
    cuts = load_manifest("data/fbank_whisper80/demo_vi_cuts_test.jsonl.gz")
    batch = WhisperDataset(WhisperLabeler(processor.tokenizer))[cuts]
    with torch.inference_mode():
        a = adapter(input_features=batch["input_features"], labels=batch["labels"]).logits
        m = merged(input_features=batch["input_features"], labels=batch["labels"]).logits
        assert (a - m).abs().max() < 1e-4
        with adapter.disable_adapter():  # the adapter must matter, or the comparison proves nothing
            b = adapter(input_features=batch["input_features"], labels=batch["labels"]).logits
        assert (a - b).abs().max() > 1e-2
        kwargs = dict(language="vi", task="transcribe", max_new_tokens=10)
        greedy_a = adapter.generate(input_features=batch["input_features"], **kwargs)
        greedy_m = merged.generate(input_features=batch["input_features"], **kwargs)
    assert torch.equal(greedy_a, greedy_m)

    # --scale 0.5 merges half the update: every weight halfway between the base's and the full merge's
    subprocess.run(["egrecho", "mlw", "--lora_model", str(ckpt), "--output_dir", str(tmp_path / "half"), "--scale", "0.5"],
                   check=True, capture_output=True)
    half = WhisperForConditionalGeneration.from_pretrained(tmp_path / "half/checkpoint-final-lora-merge").state_dict()
    full, original = merged.state_dict(), load_whisper(str(tiny_model))[0].state_dict()
    changed = [name for name in full if not torch.equal(full[name], original[name])]
    assert len(changed) >= 24, changed  # the adapted linears of every layer
    for name in full:
        torch.testing.assert_close(half[name], original[name] + 0.5 * (full[name] - original[name]), atol=1e-6, rtol=0)

    # --encoder_scale 0.5 alone: the encoder's weights at the midpoint, the decoder's those of the full merge
    subprocess.run(["egrecho", "mlw", "--lora_model", str(ckpt), "--output_dir", str(tmp_path / "enc"),
                    "--encoder_scale", "0.5"], check=True, capture_output=True)
    enc = WhisperForConditionalGeneration.from_pretrained(tmp_path / "enc/checkpoint-final-lora-merge").state_dict()
    assert any(".encoder." in n for n in changed) and any(".decoder." in n for n in changed), changed
    for name in full:
        expected = half[name] if ".encoder." in name else full[name]
        torch.testing.assert_close(enc[name], expected, atol=1e-6, rtol=0)


def test_merge_errors(tiny_model, tmp_path):
    for path, extra, message in [(tmp_path / "none", [], "not found"), (tiny_model, [], "is not a LoRA checkpoint"),
                                 (tiny_model, ["--scale", "0"], "--scale 0.0: the share"),
                                 (tiny_model, ["--encoder_scale", "1.5"], "--encoder_scale 1.5: the share")]:
        proc = subprocess.run(["egrecho", "merge-lora-whisper", "--lora_model", str(path), *extra],
                              capture_output=True, text=True)
        assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr
