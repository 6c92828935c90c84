"""egrecho export-onnx and the onnx engine: onnxruntime decodes the same tokens as transformers, for the
source model and for a merged LoRA model (whose CTranslate2 export is checked too), and long audio is
decoded window by window."""

from __future__ import annotations

import ctranslate2
import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import Recording
from peft import LoraConfig, get_peft_model
from transformers import WhisperForConditionalGeneration

from egrecho_inner.deploy.export_ct2 import export_ct2
from egrecho_inner.deploy.export_onnx import export_onnx
from egrecho_inner.deploy.onnx_decode import OnnxWhisper
from egrecho_inner.deploy.transcribe import transcribe
from egrecho_inner.features import make_fbank_extractor, pad_to_whisper_input
from egrecho_inner.merge_lora import merge_lora_whisper
from egrecho_inner.model import load_whisper
from tests.conftest import espeak

pytestmark = pytest.mark.slow


def features(wav) -> torch.Tensor:
    audio = Recording.from_file(wav).resample(16000).load_audio()[0]
    return pad_to_whisper_input(torch.as_tensor(make_fbank_extractor(80).extract(audio, 16000)))


def assert_onnx_matches(model_dir, onnx_dir, feats: torch.Tensor, language: str = "vi"):
    """Encoder within 1e-4 and greedy tokens equal to ``generate`` for every row of ``feats``."""
    model = WhisperForConditionalGeneration.from_pretrained(model_dir).eval()
    runtime = OnnxWhisper(str(onnx_dir))
    prompt = runtime.prompt(language)
    with torch.inference_mode():
        hidden = model.get_encoder()(feats).last_hidden_state.numpy()
        expected = model.generate(feats, language=language, task="transcribe", max_new_tokens=30).tolist()
    ours = runtime.encode(feats.numpy())
    assert np.abs(ours - hidden).max() < 1e-4
    tokens = runtime.greedy(ours, prompt, max_new_tokens=30)
    # generate() returns the generated tokens only (no prompt), padded with end-of-text
    expected = [[t for t in row if t != runtime.generation["eos_token_id"]] for row in expected]
    assert tokens == expected and min(len(t) for t in tokens) >= 5


@pytest.fixture(scope="module")
def onnx_dir(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tiny-onnx"
    export_onnx(str(tiny_model), str(out))
    return out


def test_export_layout(onnx_dir):
    names = {p.name for p in onnx_dir.iterdir()}
    assert {"encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx", "tokenizer.json",
            "preprocessor_config.json", "generation_config.json", "config.json"} <= names
    assert not any(p.name.startswith(".tmp") for p in onnx_dir.parent.iterdir())


def test_onnx_greedy_equals_transformers(tiny_model, onnx_dir, tmp_path):
    a = features(espeak(tmp_path / "a.wav", "xin chào các bạn"))
    b = features(espeak(tmp_path / "b.wav", "hôm nay trời đẹp quá", speed=120))
    assert_onnx_matches(tiny_model, onnx_dir, torch.stack([a, b]))  # a batch of two different lengths


def test_merged_lora_exports(tiny_model, tmp_path):
    base, processor = load_whisper(str(tiny_model))
    torch.manual_seed(1)
    adapter = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "fc1"]))
    for name, param in adapter.named_parameters():
        if "lora_B" in name:  # trained-looking adapter: zero B would merge to the base model unchanged
            torch.nn.init.normal_(param, std=0.5)
    adapter.save_pretrained(tmp_path / "checkpoint-final")
    merged = merge_lora_whisper(str(tmp_path / "checkpoint-final"))
    export_onnx(merged, str(tmp_path / "merged-onnx"))
    feats = features(espeak(tmp_path / "a.wav", "xin chào các bạn"))[None]
    assert_onnx_matches(merged, tmp_path / "merged-onnx", feats)
    # and the CTranslate2 export of the merged model decodes as it does
    export_ct2(merged, str(tmp_path / "merged-ct2"))
    model = WhisperForConditionalGeneration.from_pretrained(merged).eval()
    with torch.inference_mode():
        expected = [t for t in model.generate(feats, language="vi", task="transcribe", max_new_tokens=30)[0].tolist()
                    if t != 50257]
    ct2 = ctranslate2.models.Whisper(str(tmp_path / "merged-ct2"), device="cpu", compute_type="float32")
    result = ct2.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy())),
                          [[50258, 50278, 50359, 50363]], beam_size=1, max_length=34, suppress_blank=False,
                          suppress_tokens=[])[0].sequences_ids[0]
    assert result == expected[: len(result)] and len(result) >= 5


def test_transcribe_onnx_engine(tiny_model, onnx_dir, tmp_path):
    short = espeak(tmp_path / "short.wav", "xin chào các bạn")
    hf = transcribe(str(tiny_model), [str(short)], language="vi")
    assert transcribe(str(onnx_dir), [str(short)], engine="onnx", language="vi") == hf
    # 40 s of audio: decoded sequentially, window after window, as the hf engine does (seeking.py)
    audio, sr = sf.read(espeak(tmp_path / "speech.wav", "một hai ba bốn năm sáu bảy tám chín mười " * 8))
    long = np.tile(audio, int(np.ceil(40 * sr / len(audio))))[: 40 * sr]
    sf.write(tmp_path / "long.wav", long, sr)
    [(_, ours)] = transcribe(str(onnx_dir), [str(tmp_path / "long.wav")], engine="onnx", language="vi")
    [(_, theirs)] = transcribe(str(tiny_model), [str(tmp_path / "long.wav")], language="vi")
    assert ours == theirs and ours


def test_onnx_errors(tiny_model, onnx_dir, tmp_path):
    wav = espeak(tmp_path / "a.wav", "xin chào")
    with pytest.raises(FileNotFoundError, match="not an ONNX Whisper dir"):
        transcribe(str(tiny_model), [str(wav)], engine="onnx")
    with pytest.raises(ValueError, match="decodes greedily"):
        transcribe(str(onnx_dir), [str(wav)], engine="onnx", num_beams=4)
    with pytest.raises(ValueError, match="merge it first"):
        (tmp_path / "adapter").mkdir()
        (tmp_path / "adapter/adapter_config.json").write_text("{}")
        export_onnx(str(tmp_path / "adapter"), str(tmp_path / "out"))
