"""egrecho export-ggml checked by whisper.cpp itself (pywhispercpp): whisper-base and a merged new-language
fine-tune exported by us load and transcribe generated speech as the transformers model does; a tiny model of any
shape loads; the cpp engine refuses what this whisper.cpp can't run. And subtitles (egrecho transcribe
--output_format) from the hf, ct2 and cpp engines on one generated recording."""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import numpy as np
import soundfile as sf
import pytest
from pywhispercpp.model import Model

from egrecho_inner.deploy.export_ggml import export_ggml, ggml_name
from egrecho_inner.deploy.transcribe import transcribe
from egrecho_inner.model import save_tiny_whisper
from egrecho_inner.scoring import normalize_text
from tests.conftest import espeak

pytestmark = pytest.mark.slow
ENGLISH = ["The quick brown fox jumps over the lazy dog.", "I like to read books in the evening.",
           "Please call Stella. Ask her to bring these things with her from the store."]


def wer(references: list[str], hypotheses: list[str]) -> float:
    return jiwer.wer([normalize_text(t, "en") for t in references], [normalize_text(t, "en") for t in hypotheses])


@pytest.fixture(scope="module")
def ggml_base(whisper_base, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ggml") / "whisper-base"
    ggml_file = export_ggml(str(whisper_base), str(out))
    # the layout of OpenAI's own ggml-base.bin from whisper.cpp's converter: same hyper-parameters, filters,
    # vocabulary and tensors give the same size to the byte
    assert Path(ggml_file).stat().st_size == 147_951_465 and ggml_file == str(out / "ggml-model.bin")
    return out


def test_merged_new_language_fine_tune(whisper_base, prepared_demo, tmp_path, monkeypatch):
    """A LoRA fine-tune of whisper-base by the recipe with an added <|eo|> (one step on the demo corpus; the new
    row starts as the mean language row, unlike any Whisper language), merged and exported with eo in es's slot:
    whisper.cpp transcribes English as transformers does on the merged model, and prompted with eo it decodes
    as transformers prompted with <|eo|>, not as with <|es|>."""
    from egrecho_inner import lora
    from egrecho_inner.merge_lora import merge_lora_whisper
    from tests.test_train import train

    monkeypatch.chdir(prepared_demo)
    train(lora, prepared_demo, whisper_base, tmp_path / "lora", max_steps=1, max_cuts=2, learning_rate=1e-4,
          new_language="eo")
    merged = merge_lora_whisper(str(tmp_path / "lora/checkpoint-final"))
    export_ggml(merged, str(tmp_path / "slot"), language_slot="es")
    assert json.loads((tmp_path / "slot/ggml_export.json").read_text())["language_slots"] == {"eo": "es"}
    wavs = [str(espeak(tmp_path / f"{i}.wav", text, voice="en-us")) for i, text in enumerate(ENGLISH)]
    hf = [text for _, text in transcribe(merged, wavs, language="en")]
    cpp = [text for _, text in transcribe(str(tmp_path / "slot"), wavs, engine="cpp", language="en")]
    assert wer(ENGLISH, cpp) <= wer(ENGLISH, hf) + 0.1 and wer(ENGLISH, cpp) < 0.25, (hf, cpp)

    wav = str(espeak(tmp_path / "eo.wav", "La hundo kuras en la parko kun la infanoj.", voice="eo"))
    [(_, hf_eo)] = transcribe(merged, [wav], language="eo")
    [(_, cpp_eo)] = transcribe(str(tmp_path / "slot"), [wav], engine="cpp", language="eo")
    [(_, hf_es)] = transcribe(merged, [wav], language="es")
    assert hf_eo != hf_es  # the prompts differ, so the comparison below can tell them apart
    assert jiwer.wer(hf_eo.lower(), cpp_eo.lower()) < jiwer.wer(hf_es.lower(), cpp_eo.lower())
    export_ggml(merged, str(tmp_path / "drop"))  # no slot: the row is dropped, eo refused
    with pytest.raises(ValueError, match="this export dropped it"):
        transcribe(str(tmp_path / "drop"), [wav], engine="cpp", language="eo")


@pytest.mark.parametrize("dtype", ["f16", "f32"])
def test_tiny_turbo_shape_loads(tmp_path, dtype):
    """Any shape (128 mel bins, 100 languages, 2 encoder and 4 decoder layers) loads in whisper.cpp, which
    checks every tensor's name, type and shape; an f32 export is refused by the cpp engine in one line
    (this whisper.cpp aborts the process on f32 convolution weights)."""
    save_tiny_whisper(str(tmp_path / "tiny"), num_mel_bins=128, layers=2, decoder_layers=4)
    export_ggml(str(tmp_path / "tiny"), str(tmp_path / "ggml"), dtype=dtype)
    model = Model(str(tmp_path / "ggml/ggml-model.bin"), redirect_whispercpp_logs_to=None)
    assert model._ctx is not None
    wav = str(espeak(tmp_path / "a.wav", "xin chào"))
    if dtype == "f32":
        with pytest.raises(ValueError, match="export with --dtype f16"):
            transcribe(str(tmp_path / "ggml"), [wav], engine="cpp", language="vi")


def test_tensor_names():
    assert ggml_name("model.encoder.layers.3.self_attn.k_proj.weight") == "encoder.blocks.3.attn.key.weight"
    assert ggml_name("model.decoder.layers.0.encoder_attn_layer_norm.bias") == "decoder.blocks.0.cross_attn_ln.bias"
    assert ggml_name("model.decoder.layers.1.fc2.weight") == "decoder.blocks.1.mlp.2.weight"
    assert ggml_name("model.decoder.embed_tokens.weight") == "decoder.token_embedding.weight"
    assert ggml_name("model.encoder.layer_norm.weight") == "encoder.ln_post.weight"


def test_subtitles_agree_across_engines(whisper_base, whisper_base_exports, ggml_base, tmp_path, capsys):
    """A generated recording of three sentences with pauses: hf, ct2 (faster-whisper), onnx (our loop with the
    timestamp rules) and cpp (whisper.cpp) each give one segment per sentence, starting within 0.3 s of where
    the sentence was joined in; onnx's segments are transformers' exactly."""
    clips = [sf.read(espeak(tmp_path / f"s{i}.wav", text, voice="en-us")) for i, text in enumerate(ENGLISH)]
    rate = clips[0][1]
    pause = np.zeros(int(0.6 * rate))
    starts, pieces, t = [], [], 0.0
    for audio, _ in clips:
        starts.append(t)
        pieces += [audio, pause]
        t += (len(audio) + len(pause)) / rate
    sf.write(tmp_path / "three.wav", np.concatenate(pieces), rate)
    wav = [str(tmp_path / "three.wav")]
    found = {}
    for engine, model_dir in [("hf", whisper_base), ("ct2", whisper_base_exports["ct2"]),
                              ("onnx", whisper_base_exports["onnx"]), ("cpp", ggml_base)]:
        capsys.readouterr()
        transcribe(str(model_dir), wav, engine=engine, language="en", output_format="json")
        segments = found[engine] = json.loads(capsys.readouterr().out)["segments"]
        assert len(segments) == 3, (engine, segments)
        assert all(abs(s["start"] - join) <= 0.3 for s, join in zip(segments, starts)), (engine, segments, starts)
        assert wer(ENGLISH, [s["text"] for s in segments]) < 0.25, (engine, segments)
    assert found["onnx"] == found["hf"]
    transcribe(str(ggml_base), wav, engine="cpp", output_format="srt", output_dir=str(tmp_path / "subs"))  # detected
    subtitles = (tmp_path / "subs/three.srt").read_text()
    assert subtitles.startswith("1\n00:00:00,") and "evening" in subtitles.lower()

