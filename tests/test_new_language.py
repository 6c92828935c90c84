"""New-language fine-tune: a tiny Whisper learns Esperanto (``eo``, a language Whisper lacks) from
espeak-ng speech; the added ``<|eo|>`` token survives save/load, merge, eval, transcribe and both exports."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from lhotse import load_manifest
from peft import PeftModel
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from egrecho_inner import full, lora
from egrecho_inner.dataset import WhisperDataset
from egrecho_inner.deploy.export_ct2 import export_ct2
from egrecho_inner.deploy.export_onnx import export_onnx
from egrecho_inner.deploy.onnx_decode import OnnxWhisper
from egrecho_inner.deploy.transcribe import transcribe
from egrecho_inner.evaluate import evaluate
from egrecho_inner.merge_lora import merge_lora_whisper
from egrecho_inner.model import load_whisper
from egrecho_inner.new_language import add_language
from egrecho_inner.text import WHISPER_LANGUAGE_CODES
from tests.conftest import RECIPE_DIR, espeak, run_script, write_kaldi_dir
from tests.test_train import loss_ratio, train

pytestmark = pytest.mark.slow

SUBJECTS = ["la hundo", "mia amiko", "la instruisto", "nia patrino"]
VERBS = ["manĝas", "vidas", "amas"]
OBJECTS = ["la panon", "la libron", "la domon"]


def test_esperanto_is_not_a_whisper_language():
    assert "eo" not in WHISPER_LANGUAGE_CODES  # else this file tests nothing new


def test_add_language(tiny_model, tmp_path):
    model, processor = load_whisper(str(tiny_model))
    tokenizer = processor.tokenizer
    vocab = model.config.vocab_size
    new_id = add_language(model, tokenizer, "eo", init_from="es")
    embedding = model.get_input_embeddings().weight
    assert new_id == vocab and model.config.vocab_size == vocab + 1
    assert torch.equal(embedding[new_id], embedding[tokenizer.convert_tokens_to_ids("<|es|>")])
    assert model.proj_out.weight.data_ptr() == embedding.data_ptr()  # still tied: the output row is the same
    assert model.generation_config.lang_to_id["<|eo|>"] == new_id
    assert tokenizer.decode([50258, new_id, 50359], skip_special_tokens=True) == ""  # special, not text
    assert add_language(model, tokenizer, "eo") == new_id and model.config.vocab_size == vocab + 1  # idempotent
    for code, init, message in [("vi", None, "Whisper language already"), ("Esperanto!", None, "not a language code"),
                                ("tok", "xx", "not a language of this model")]:
        with pytest.raises(ValueError, match=message):
            add_language(model, tokenizer, code, init)


@pytest.fixture(scope="module")
def esperanto(tmp_path_factory) -> Path:
    """A recipe dir with demo_eo cuts (16 train, 2 val, 3 test) prepared with --new_language eo."""
    work = tmp_path_factory.mktemp("eo")
    sentences = [" ".join(s) for s in itertools.product(SUBJECTS, VERBS, OBJECTS)]
    splits = {"train": sentences[:16], "val": sentences[16:18], "test": sentences[18:21]}
    for part, texts in splits.items():
        utts = {}
        for i, text in enumerate(texts):
            wav = espeak(work / "wav" / f"{part}{i}.wav", text, voice="eo")
            utts[f"eo-{part}-{i:02d}"] = (str(wav), text, "eo")
        write_kaldi_dir(work / "kaldi" / part, utts)
    bad = run_script(str(RECIPE_DIR / "prepare.sh"), "--kaldi_dir", "kaldi", "--prefix", "demo_eo",
                     "--stop_stage", "1", cwd=work, check=False)
    assert bad.returncode != 0 and "new_language" in bad.stderr  # eo is refused unless declared
    run_script(str(RECIPE_DIR / "prepare.sh"), "--kaldi_dir", "kaldi", "--prefix", "demo_eo", "--new_language", "eo",
               "--stop_stage", "3", cwd=work)
    return work


def test_full_fine_tune_learns_new_language(esperanto, tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(esperanto)
    # 80 steps: enough for the tiny model to end its transcripts (runaway repeats hit each engine's
    # own length cap, and those caps differ)
    trainer = train(full, esperanto, tiny_model, tmp_path / "full", prefix_name="demo_eo", learning_rate=5e-3,
                    new_language="eo", new_language_init="es", max_steps=80)
    assert loss_ratio(trainer) < 0.5
    final = tmp_path / "full/checkpoint-final"
    model = WhisperForConditionalGeneration.from_pretrained(final).eval()
    tokenizer = WhisperProcessor.from_pretrained(final).tokenizer
    eo_id = tokenizer.convert_tokens_to_ids("<|eo|>")
    assert eo_id == model.config.vocab_size - 1 == model.generation_config.lang_to_id["<|eo|>"]
    # the model itself now emits <|eo|> right after <|startoftranscript|> on Esperanto speech
    feats = WhisperDataset(None)[load_manifest("data/fbank_whisper80/demo_eo_cuts_test.jsonl.gz")]["input_features"]
    with torch.inference_mode():
        first = model(input_features=feats, decoder_input_ids=torch.full((len(feats), 1), 50258)).logits[:, -1]
    assert first.argmax(-1).tolist() == [eo_id] * len(feats)

    # eval with language eo (cuts carry it); transcribe and both exports decode the same text
    result = evaluate(model_path=str(final), outdir=str(tmp_path / "eval"), prefix_name="demo_eo", num_workers=0)
    assert result["num_utts"] == 3
    wav = str(esperanto / "wav/test0.wav")
    hf = transcribe(str(final), [wav], language="eo")[0][1]
    assert 0 < len(tokenizer.encode(hf)) < 100
    export_onnx(str(final), str(tmp_path / "onnx"))
    export_ct2(str(final), str(tmp_path / "ct2"))
    assert transcribe(str(tmp_path / "onnx"), [wav], engine="onnx", language="eo")[0][1] == hf
    assert transcribe(str(tmp_path / "ct2"), [wav], engine="ct2", language="eo")[0][1] == hf
    # forced: the onnx runtime's prompt holds <|eo|>, and its tokens equal generate(language="<|eo|>")'s
    assert OnnxWhisper(str(tmp_path / "onnx")).prompt("eo")[1] == eo_id
    recogs = (tmp_path / "eval/recogs-test.txt").read_text()
    assert "eo-test-00" in recogs


def test_lora_trains_the_new_row_and_merges(esperanto, tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(esperanto)
    train(lora, esperanto, tiny_model, tmp_path / "lora", prefix_name="demo_eo", learning_rate=2e-2, max_steps=5,
          new_language="eo", new_language_init="es")
    ckpt = tmp_path / "lora/checkpoint-final"
    assert "<|eo|>" in json.loads((ckpt / "generation_config.json").read_text())["lang_to_id"]
    merged_dir = merge_lora_whisper(str(ckpt))
    merged = WhisperForConditionalGeneration.from_pretrained(merged_dir).eval()
    eo_id = merged.generation_config.lang_to_id["<|eo|>"]
    base, processor = load_whisper(str(tiny_model))
    es_row = base.get_input_embeddings().weight[processor.tokenizer.convert_tokens_to_ids("<|es|>")]
    assert not torch.allclose(merged.get_input_embeddings().weight[eo_id], es_row)  # the row trained

    base.resize_token_embeddings(merged.config.vocab_size, mean_resizing=False)
    adapter = PeftModel.from_pretrained(base, ckpt).eval()
    features = torch.randn(1, 80, 3000)
    prompt = torch.tensor([[50258, eo_id, 50359, 50363]])
    with torch.inference_mode():
        a = adapter(input_features=features, decoder_input_ids=prompt).logits
        m = merged(input_features=features, decoder_input_ids=prompt).logits
    assert (a - m).abs().max() < 1e-4
