"""large-v3 and large-v3-turbo shapes (128 mel bins, 100 languages, a decoder much shallower than the encoder)
through prepare, LoRA training, merge, eval and both exports, with a tiny random model of those shapes; and
features whose mel-bin count differs from the model's stopped at start, in one line."""

from __future__ import annotations

import json

import pytest

from egrecho_inner import lora
from egrecho_inner.deploy.export_ct2 import export_ct2
from egrecho_inner.deploy.export_onnx import export_onnx
from egrecho_inner.deploy.transcribe import transcribe
from egrecho_inner.evaluate import evaluate
from egrecho_inner.merge_lora import merge_lora_whisper
from egrecho_inner.model import save_tiny_whisper
from tests.conftest import RECIPE_DIR, espeak, run_script
from tests.deploy.test_export_transcribe import assert_ct2_decodes_like
from tests.test_train import train

pytestmark = pytest.mark.slow


def test_turbo_shapes_end_to_end(demo_corpus, prepared_demo, tmp_path, monkeypatch):
    turbo = tmp_path / "tiny-large-v3-turbo"
    save_tiny_whisper(str(turbo), num_mel_bins=128, layers=2, decoder_layers=4)
    config = json.loads((turbo / "config.json").read_text())
    assert (config["num_mel_bins"], config["encoder_layers"], config["decoder_layers"]) == (128, 2, 4)
    monkeypatch.chdir(prepared_demo)
    run_script(str(RECIPE_DIR / "prepare.sh"), "--kaldi_dir", str(demo_corpus), "--prefix", "demo_vi",
               "--stage", "3", "--stop_stage", "3", "--num_mel_bins", "128", cwd=prepared_demo)

    # Features of the wrong size stop training and eval before any work, naming both counts and the fix.
    with pytest.raises(ValueError, match="holds 80-bin features but .* takes 128 mel bins: prepare.sh --num_mel_bins 128"):
        train(lora, prepared_demo, turbo, tmp_path / "wrong", max_steps=1)
    with pytest.raises(ValueError, match="num_mel_bins is 80 but .* takes 128"):
        train(lora, prepared_demo, turbo, tmp_path / "wrong", max_steps=1, manifest_dir="data/fbank_whisper128",
              num_mel_bins=80)

    # num_mel_bins: null (the default) takes the model's, also for features computed at batch time
    train(lora, prepared_demo, turbo, tmp_path / "lora", max_steps=2, manifest_dir="data/fbank_whisper128",
          learning_rate=1e-2, on_the_fly_feats=True)
    merged = merge_lora_whisper(str(tmp_path / "lora/checkpoint-final"))
    result = evaluate(model_path=merged, outdir=str(tmp_path / "eval"), manifest_dir="data/fbank_whisper128",
                      num_workers=0)
    assert result["num_utts"] == 3
    with pytest.raises(ValueError, match="holds 80-bin features"):
        evaluate(model_path=merged, outdir=str(tmp_path / "eval80"), num_workers=0)

    # Both exports decode as transformers does (the same greedy tokens).
    export_ct2(merged, str(tmp_path / "ct2"))
    export_onnx(merged, str(tmp_path / "onnx"))
    wav = espeak(tmp_path / "a.wav", "một hai ba")
    assert_ct2_decodes_like(merged, tmp_path / "ct2", wav, num_mel_bins=128)
    hf = transcribe(merged, [str(wav)], language="vi")
    assert transcribe(str(tmp_path / "onnx"), [str(wav)], engine="onnx", language="vi") == hf and hf[0][1]
