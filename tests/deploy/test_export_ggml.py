"""egrecho export-ggml checked by whisper.cpp itself (pywhispercpp): whisper-base and a merged new-language
fine-tune exported by us load and transcribe generated speech as the transformers model does; whisper-base
quantized to q8_0 and q5_0 transcribes it as the f16 export does, in smaller files; a tiny model of any shape
loads, quantized too; the cpp engine refuses what this whisper.cpp can't run. And subtitles (egrecho transcribe
--output_format) from the hf, ct2 and cpp engines on one generated recording."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import jiwer
import numpy as np
import soundfile as sf
import pytest
from pywhispercpp.model import Model

from egrecho_inner.deploy.export_ggml import GGML_FILE, export_ggml, ggml_name
from egrecho_inner.deploy.transcribe import transcribe
from egrecho_inner.errors import InputError
from egrecho_inner.model import save_tiny_whisper
from egrecho_inner.scoring import normalize_text
from tests.conftest import espeak

pytestmark = pytest.mark.slow
ENGLISH = ["The quick brown fox jumps over the lazy dog.", "I like to read books in the evening.",
           "Please call Stella. Ask her to bring these things with her from the store."]


def wer(references: list[str], hypotheses: list[str]) -> float:
    return jiwer.wer([normalize_text(t, "en") for t in references], [normalize_text(t, "en") for t in hypotheses])


def load_in_whisper_cpp(model_dir: Path, log: Path) -> Model:
    """whisper.cpp's model from an export dir; if whisper.cpp refuses the file, the test fails with its words
    (pywhispercpp returns a context either way, so its log is the only sign)."""
    model = Model(str(model_dir / GGML_FILE), redirect_whispercpp_logs_to=str(log))
    said = log.read_text(errors="replace")
    if "failed to load model" in said:
        why = [line for line in said.splitlines() if any(w in line for w in ("wrong", "invalid", "unknown tensor",
                                                                            "ERROR", "failed", "not all"))]
        pytest.fail(f"whisper.cpp refused {model_dir / GGML_FILE}: " + " | ".join(why))
    return model


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


@pytest.mark.parametrize("dtype,quant", [("f16", None), ("f32", None), ("f16", "q4_0")])
def test_tiny_turbo_shape_loads(tmp_path, dtype, quant):
    """Any shape (128 mel bins, 100 languages, 2 encoder and 4 decoder layers) loads in whisper.cpp, which
    checks every tensor's name and size for the type the header's ftype implies; a q4_0 export decodes (q8_0
    and q5_0: test_quantized_whisper_base); an f32 export is refused by the cpp engine in one line (this
    whisper.cpp aborts the process on f32 convolution weights)."""
    save_tiny_whisper(str(tmp_path / "tiny"), num_mel_bins=128, layers=2, decoder_layers=4)
    export_ggml(str(tmp_path / "tiny"), str(tmp_path / "ggml"), dtype=dtype, quant=quant)
    load_in_whisper_cpp(tmp_path / "ggml", tmp_path / "load.log")
    wav = str(espeak(tmp_path / "a.wav", "xin chào"))
    if dtype == "f32":
        with pytest.raises(ValueError, match="export with --dtype f16"):
            transcribe(str(tmp_path / "ggml"), [wav], engine="cpp", language="vi")
    if quant:
        [(_, text)] = transcribe(str(tmp_path / "ggml"), [wav], engine="cpp", language="vi")
        assert isinstance(text, str)  # random weights: any text, but whisper.cpp ran its quantized matrices


def test_quantized_whisper_base(whisper_base, ggml_base, tmp_path):
    """whisper-base as q8_0 and q5_0: whisper.cpp loads each and transcribes the three generated English sentences
    within 0.05 of the f16 export's word error rate; q8_0 is under 0.6x the f16 file and q5_0 under q8_0; the
    header carries whisper.cpp quantize's ftype (2000 + 7 or 8)."""
    wavs = [str(espeak(tmp_path / f"{i}.wav", text, voice="en-us")) for i, text in enumerate(ENGLISH)]
    f16 = [text for _, text in transcribe(str(ggml_base), wavs, engine="cpp", language="en")]
    sizes = {"f16": (ggml_base / GGML_FILE).stat().st_size}
    for quant, ftype in [("q8_0", 2007), ("q5_0", 2008)]:
        export_ggml(str(whisper_base), str(tmp_path / quant), quant=quant)
        sizes[quant] = (tmp_path / quant / GGML_FILE).stat().st_size
        with open(tmp_path / quant / GGML_FILE, "rb") as f:
            assert struct.unpack("12i", f.read(48))[11] == ftype  # magic, 10 hyper-parameters, ftype
        load_in_whisper_cpp(tmp_path / quant, tmp_path / f"{quant}.log")
        texts = [text for _, text in transcribe(str(tmp_path / quant), wavs, engine="cpp", language="en")]
        assert wer(ENGLISH, texts) <= wer(ENGLISH, f16) + 0.05, (quant, f16, texts)
    assert sizes["q8_0"] < 0.6 * sizes["f16"] and sizes["q5_0"] < sizes["q8_0"], sizes


def test_quant_needs_rows_of_whole_blocks(tmp_path):
    """whisper.cpp quantizes every weight matrix, so a d_model that is not a multiple of 32 is refused up front."""
    save_tiny_whisper(str(tmp_path / "tiny"), d_model=48, layers=1)
    with pytest.raises(InputError, match="d_model to be a multiple of 32.*got 48"):
        export_ggml(str(tmp_path / "tiny"), str(tmp_path / "ggml"), quant="q8_0")
    assert not (tmp_path / "ggml").exists()


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

