"""egrecho export-ct2 and egrecho transcribe on a tiny random Whisper: the CTranslate2 export decodes
the same tokens as the source model, and transcribe handles files, wav.scp and long audio."""

from __future__ import annotations

import json
from pathlib import Path

import ctranslate2
import numpy as np
import pytest
import torch
from lhotse import Recording
from transformers import WhisperForConditionalGeneration

from egrecho_inner.deploy.export_ct2 import export_ct2
from egrecho_inner.deploy.transcribe import transcribe
from egrecho_inner.features import make_fbank_extractor, pad_to_whisper_input
from egrecho_inner.new_language import prompt_ids
from tests.conftest import espeak

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("ct2") / "tiny-ct2"
    export_ct2(str(tiny_model), str(out), quantization="float32")
    return out


def assert_ct2_decodes_like(model_dir: Path, ct2_dir: Path, wav: Path, num_mel_bins: int = 80) -> None:
    """CTranslate2's greedy tokens for ``wav`` are transformers' ``generate`` tokens (first 20, language vi)."""
    audio = Recording.from_file(wav).resample(16000).load_audio()[0]
    feats = pad_to_whisper_input(torch.as_tensor(make_fbank_extractor(num_mel_bins).extract(audio, 16000)))[None]
    model = WhisperForConditionalGeneration.from_pretrained(model_dir).eval()
    generation = json.loads((Path(model_dir) / "generation_config.json").read_text())
    prompt = prompt_ids(generation, "vi")  # <|startoftranscript|><|vi|><|transcribe|><|notimestamps|>
    with torch.inference_mode():
        ours = model.generate(feats, language="vi", task="transcribe", max_new_tokens=20)[0].tolist()
    ct2 = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
    storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy()))
    theirs = ct2.generate(storage, [prompt], beam_size=1, max_length=20 + len(prompt), suppress_blank=False,
                          suppress_tokens=[])[0].sequences_ids[0]
    ours = [t for t in ours if t not in prompt and t != generation["eos_token_id"]]
    assert ours[: len(theirs)] == theirs and len(theirs) >= 5


def test_export_decodes_like_the_source(tiny_model, exported, tmp_path):
    assert {"model.bin", "tokenizer.json", "preprocessor_config.json"} <= {p.name for p in exported.iterdir()}
    assert_ct2_decodes_like(tiny_model, exported, espeak(tmp_path / "a.wav", "xin chào các bạn"))


def test_export_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        export_ct2(str(tmp_path / "none"), str(tmp_path / "out"))
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter/adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="merge it first"):
        export_ct2(str(tmp_path / "adapter"), str(tmp_path / "out"))


def test_transcribe_files_and_scp(tiny_model, exported, tmp_path, capsys):
    short = espeak(tmp_path / "short.wav", "xin chào")
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt-a {short}\nutt-b sox {short} -t wav - |\n")
    lines = transcribe(str(tiny_model), [str(short), str(scp)], language="vi")
    assert [u for u, _ in lines] == ["short", "utt-a", "utt-b"]
    assert lines[1][1] == lines[2][1] == lines[0][1]  # same audio, same text, whatever the route
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"short\t{lines[0][1]}"
    ct2_lines = transcribe(str(exported), [str(scp)], engine="ct2", language="vi")
    assert [u for u, _ in ct2_lines] == ["utt-a", "utt-b"] and ct2_lines[0][1] == ct2_lines[1][1]
    with pytest.raises(ValueError, match="engine must be one of"):
        transcribe(str(tiny_model), [str(short)], engine="tflite")
    # options an engine would ignore are refused, before any model is loaded
    with pytest.raises(ValueError, match="compute_type int8 is for engine ct2"):
        transcribe(str(tiny_model), [str(short)], engine="hf", compute_type="int8")
    with pytest.raises(ValueError, match="engine cpp runs whisper.cpp on the CPU"):
        transcribe(str(tiny_model), [str(short)], engine="cpp", device="cuda")
